//! Running contenders side by side and summarising what they measured.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::{alloc_count, Result};

/// The measurements of one contender on one shape.
#[derive(Debug, Clone, Default)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn median(&self) -> Duration {
        self.quantile(0.5)
    }

    pub fn min(&self) -> Duration {
        self.0.iter().copied().min().unwrap_or_default()
    }

    /// Half the interquartile range relative to the median: a rough "± noise" figure.
    pub fn spread(&self) -> f64 {
        let median = self.median().as_secs_f64();
        match median > 0.0 {
            true => (self.quantile(0.75).as_secs_f64() - self.quantile(0.25).as_secs_f64()) / 2.0 / median,
            false => 0.0,
        }
    }

    /// Linear interpolation between the nearest ranks.
    fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        match sorted.len() {
            0 => Duration::ZERO,
            n => {
                let rank = q * (n - 1) as f64;
                let (low, high) = (sorted[rank.floor() as usize], sorted[rank.ceil() as usize]);
                low + (high - low).mul_f64(rank.fract())
            }
        }
    }
}

impl Samples {
    /// How this contender fared against `other` round by round: every round ran both, so
    /// their times pair up, and the sign test tells a real lead from the noise of a shared
    /// machine.
    pub fn paired(&self, other: &Samples) -> Paired {
        let rounds = self.0.len().min(other.0.len());
        let faster = self.0.iter().zip(&other.0).filter(|(a, b)| a < b).count();
        Paired { faster, rounds, p: sign_test(faster, rounds) }
    }
}

/// One contender against another over the same rounds (see [`Samples::paired`]).
#[derive(Debug, Clone, Copy)]
pub struct Paired {
    /// Rounds in which the first was faster.
    pub faster: usize,
    pub rounds: usize,
    /// Two-sided sign-test p-value: the chance of a split at least this lopsided if
    /// neither contender were faster.
    pub p: f64,
}

// `ahead`/`behind` serve orm-bench's verdicts; chakra-bench prints the split itself.
#[allow(dead_code)]
impl Paired {
    /// Faster in more rounds than chance explains (p < 0.05).
    pub fn ahead(&self) -> bool {
        self.p < 0.05 && self.faster * 2 > self.rounds
    }

    /// Slower in more rounds than chance explains (p < 0.05).
    pub fn behind(&self) -> bool {
        self.p < 0.05 && self.faster * 2 < self.rounds
    }
}

/// Two-sided sign test: twice the probability of at most `min(k, n - k)` successes in `n`
/// fair coin flips, capped at 1.
fn sign_test(k: usize, n: usize) -> f64 {
    let tail = k.min(n - k);
    let (mut binomial, mut sum) = (1.0_f64, 1.0_f64);
    for i in 1..=tail {
        binomial = binomial * (n - i + 1) as f64 / i as f64;
        sum += binomial;
    }
    (2.0 * sum * 0.5_f64.powi(n as i32)).min(1.0)
}

/// What one contender measured on one shape: wall-clock time per unit of work, and the
/// CPU time the whole process spent per unit (every thread: the caller, the runtime's
/// workers, the connection tasks). On a shared, busy machine wall time is noisy; client
/// CPU per operation is what a stack's overhead really costs, and it moves much less.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub wall: Samples,
    pub cpu: Samples,
    /// Heap allocations per unit (zero unless counting is enabled, see `alloc_count`).
    pub allocations: Vec<f64>,
    /// Threads going to sleep per unit (see [`ProcessCounters::sleeps`]).
    pub sleeps: Vec<f64>,
    /// CPU time the server's processes spent per unit; empty unless [`watch_server`].
    pub server_cpu: Samples,
}

impl Measured {
    /// Appends `more` rounds, run after these (the pairing between contenders holds when
    /// each ran the same rounds).
    pub fn extend(&mut self, more: Measured) {
        self.wall.0.extend(more.wall.0);
        self.cpu.0.extend(more.cpu.0);
        self.allocations.extend(more.allocations);
        self.sleeps.extend(more.sleeps);
        self.server_cpu.0.extend(more.server_cpu.0);
    }

    /// The server's CPU time per unit, if it was watched.
    pub fn server_cpu(&self) -> Option<Duration> {
        (!self.server_cpu.0.is_empty()).then(|| self.server_cpu.median())
    }

    pub fn median_sleeps(&self) -> f64 {
        median(&self.sleeps)
    }

    pub fn median_allocations(&self) -> f64 {
        median(&self.allocations)
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// Rounds run on the same connections. Each block of rounds starts on fresh ones: where
/// the scheduler puts a side's server backends (on the client's CPU or the other, in a VM
/// whose idle CPUs are slow to wake) favours or handicaps that side for as long as they
/// live, and one set of connections for a whole run let that decide a verdict: two runs
/// of 100 sequential-get rounds put Chakra at 0.92 and at 1.06 of sqlx, each "significant".
/// What this cannot remove is the state of the machine for the whole process (where its
/// worker threads run, the host's load): compare verdicts across runs, not within one.
pub const BLOCK: usize = 10;

/// Warm-up rounds before each block of the concurrent shapes (see chakra-bench's plan).
pub const CONCURRENT_WARMUP: usize = 8;

/// Runs `warmup` untimed rounds and then `rounds` timed ones; every round runs each
/// contender once, so all contenders see the same server and machine state. `run`
/// returns the wall time it measured; `units` is how many operations one run does (CPU
/// time is divided by it).
///
/// The order rotates every round (with two contenders: AB, BA, AB, …), so slow drift —
/// a checkpoint, another client on the shared server, CPU frequency — lands on every
/// contender alike instead of on whichever always runs second.
pub async fn compare<'a, C, F, Fut>(
    contenders: &'a [C],
    warmup: usize,
    rounds: usize,
    units: u32,
    run: F,
) -> Result<Vec<Measured>>
where
    F: FnMut(&'a C) -> Fut,
    Fut: Future<Output = Result<Duration>>,
{
    compare_in_order(contenders, warmup, rounds, units, rotated, run).await
}

/// The order of round `round` for `n` contenders: rotated by one each round.
pub fn rotated(round: usize, n: usize) -> Vec<usize> {
    (0..n).map(|offset| (round + offset) % n).collect()
}

/// [`compare`] with the order of each round chosen by `order(round, contenders.len())`,
/// which must return every index once.
pub async fn compare_in_order<'a, C, F, Fut>(
    contenders: &'a [C],
    warmup: usize,
    rounds: usize,
    units: u32,
    order: impl Fn(usize, usize) -> Vec<usize>,
    mut run: F,
) -> Result<Vec<Measured>>
where
    F: FnMut(&'a C) -> Fut,
    Fut: Future<Output = Result<Duration>>,
{
    let mut measured = vec![Measured::default(); contenders.len()];
    // Found once: the contenders' connections, so their backends, live through the call.
    let server = ServerProcesses::find();
    for round in 0..warmup + rounds {
        for i in order(round, contenders.len()) {
            let server_before = server.as_ref().map(ServerProcesses::cpu);
            let (before, allocations_before) = (ProcessCounters::now(), alloc_count::allocations());
            let wall = run(&contenders[i]).await?;
            let (after, allocations_after) = (ProcessCounters::now(), alloc_count::allocations());
            let server_after = server.as_ref().map(ServerProcesses::cpu);
            if round >= warmup {
                let per_unit = |n: u64| n as f64 / f64::from(units);
                measured[i].wall.0.push(wall);
                measured[i].cpu.0.push(after.cpu.saturating_sub(before.cpu) / units);
                if let (Some(before), Some(after)) = (server_before, server_after) {
                    measured[i].server_cpu.0.push(after.saturating_sub(before) / units);
                }
                measured[i].sleeps.push(per_unit(after.sleeps - before.sleeps));
                measured[i].allocations.push(per_unit(allocations_after - allocations_before));
            }
        }
    }
    Ok(measured)
}

/// Totals over every thread of this process so far, from Linux's per-thread `/proc`
/// files (std has no getrusage binding, and schedstat has nanosecond resolution). All
/// zero where there is no `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessCounters {
    pub cpu: Duration,
    /// Times a thread went to sleep (parked, waited on a socket or a futex); each such
    /// sleep costs a wake-up later, so this counts cross-thread hand-offs.
    pub sleeps: u64,
}

impl ProcessCounters {
    pub fn now() -> ProcessCounters {
        let Ok(threads) = std::fs::read_dir("/proc/self/task") else { return ProcessCounters::default() };
        let mut total = ProcessCounters::default();
        for thread in threads.flatten() {
            let read = |file: &str| std::fs::read_to_string(thread.path().join(file)).unwrap_or_default();
            let nanos = read("schedstat").split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
            total.cpu += Duration::from_nanos(nanos);
            total.sleeps += read("status")
                .lines()
                .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        total
    }
}

static WATCHING_SERVER: AtomicBool = AtomicBool::new(false);

/// Measures the server's CPU time too, when the server at `url` runs on this machine (a
/// loopback or Unix-socket host) and its processes show in `/proc`. Of a shape whose wall
/// time is bound by CPU, client plus server CPU over the cores is the floor no client can
/// go below, which says how much of a target is left to the client at all. Backends of
/// other clients of the same server count too: watch a server nothing else is using.
pub fn watch_server(url: &str) -> bool {
    let local = url.parse::<tokio_postgres::Config>().is_ok_and(|config| {
        config.get_hosts().iter().all(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => matches!(name.as_str(), "127.0.0.1" | "localhost" | "::1"),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(_) => true,
        })
    });
    let watching = local && ServerProcesses::walk().is_some();
    WATCHING_SERVER.store(watching, Ordering::Relaxed);
    watching
}

/// The `schedstat` files of every process named `postgres` (the postmaster, its background
/// workers and every backend; each is single-threaded), found by one walk of `/proc` so
/// that each measurement reads only these: a walk of every process between two runs
/// costs milliseconds, some of which Linux books to the next run's client CPU.
struct ServerProcesses(Vec<std::path::PathBuf>);

impl ServerProcesses {
    /// `None` unless [`watch_server`] found the server on this machine.
    fn find() -> Option<ServerProcesses> {
        WATCHING_SERVER.load(Ordering::Relaxed).then(ServerProcesses::walk).flatten()
    }

    /// `None` when no `postgres` process shows in `/proc`.
    fn walk() -> Option<ServerProcesses> {
        let mut found = Vec::new();
        for process in std::fs::read_dir("/proc").ok()?.flatten() {
            let path = process.path();
            let is_pid = process.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit());
            if is_pid && std::fs::read_to_string(path.join("comm")).is_ok_and(|comm| comm.trim_end() == "postgres") {
                found.push(path.join("schedstat"));
            }
        }
        (!found.is_empty()).then_some(ServerProcesses(found))
    }

    /// Their CPU time so far (a process that has exited since counts as none).
    fn cpu(&self) -> Duration {
        self.0
            .iter()
            .map(|schedstat| {
                let text = std::fs::read_to_string(schedstat).unwrap_or_default();
                Duration::from_nanos(text.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0))
            })
            .sum()
    }
}

/// `DATABASE_URL` (default: the local server's `test` database), with `sslmode=disable`
/// unless it names an sslmode: every side must use the same transport, raw tokio-postgres
/// runs with `NoTls`, and Chakra (as libpq) takes TLS wherever the server offers it.
/// A bench binary's `main`: parses the arguments (`parse` gives the message of a bad
/// one, or an empty one for `--help`, then the usage is printed), and runs `run` in a task
/// spawned on a Tokio runtime of `workers(&args)` threads — in a task, as a server's
/// handler runs: `block_on`'s own thread is not a worker, and a loop on it would pay a
/// cross-thread wake-up per query that no handler pays. An error exits 1 with its whole
/// chain (tokio-postgres says only "db error" at the top; the server's message is a source).
pub fn run_main<A, F>(
    name: &str,
    usage: &str,
    parse: impl FnOnce() -> std::result::Result<A, String>,
    workers: impl FnOnce(&A) -> usize,
    run: impl FnOnce(A) -> F,
) where
    F: Future<Output = Result<()>> + Send + 'static,
{
    let args = match parse() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("{name}: {message}");
            }
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers(&args))
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let outcome = runtime.block_on(async move { tokio::spawn(run(args)).await });
    if let Err(e) = outcome.map_err(Into::into).and_then(|r| r) {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(cause) = source {
            message += &format!(": {cause}");
            source = cause.source();
        }
        eprintln!("{name}: {message}");
        std::process::exit(1);
    }
}

pub fn database_url() -> String {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".to_owned());
    match url.contains("sslmode=") {
        true => url,
        false => format!("{url}{}sslmode=disable", if url.contains('?') { '&' } else { '?' }),
    }
}

/// `1.5 ms`, `47.2 us`: three significant figures in a unit that suits the value.
pub fn format_duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    let (value, unit) = match us {
        us if us >= 1e6 => (us / 1e6, "s"),
        us if us >= 1e3 => (us / 1e3, "ms"),
        us => (us, "us"),
    };
    let decimals = match value {
        v if v >= 100.0 => 0,
        v if v >= 10.0 => 1,
        _ => 2,
    };
    format!("{value:.decimals$} {unit}")
}

/// A plain-text table whose columns fit their widest cell.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self) {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r[c].chars().count())
                    .chain([self.header[c].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
            println!("| {} |", padded.join(" | "));
        };
        line(&self.header);
        println!("|{}|", widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("|"));
        for row in &self.rows {
            line(row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sign_test;

    #[test]
    fn sign_test_matches_the_binomial_tails() {
        // 15 of 20: 2 * P(X <= 5) = 2 * 21700 / 2^20.
        assert!((sign_test(15, 20) - 0.041389).abs() < 1e-5);
        assert!((sign_test(5, 20) - 0.041389).abs() < 1e-5);
        assert_eq!(sign_test(10, 20), 1.0);
        assert!(sign_test(20, 20) < 2e-6);
    }
}
