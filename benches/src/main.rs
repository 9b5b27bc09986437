//! `chakra-bench`: Chakra's full default stack against raw tokio-postgres with cached
//! prepared statements — same server, same queries, same decoding, one run.
//!
//! ```text
//! cargo run --release -p chakra-benches [-- --quick] [--diagnose] [--only SHAPE,…] [--rounds N]
//! ```
//!
//! See `benches/README.md` for what each shape measures and how to read the table.

mod alloc_count;
mod data;
mod diagnose;
mod harness;
mod shapes;

use std::sync::Arc;
use std::time::Duration;

use futures::future::try_join_all;
use tokio_postgres::NoTls;

use crate::harness::{format_duration, Table, BLOCK, CONCURRENT_WARMUP};
use crate::shapes::{Contender, Db, Delivery, Fanout, InsertBy, RawClient, Side, Workload};

#[global_allocator]
static ALLOCATOR: alloc_count::CountingAllocator = alloc_count::CountingAllocator;

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The issue's shape: 2,000 concurrent lookups over a pool of 10 connections.
const CONCURRENT_LOOKUPS: usize = 2_000;
const SEQUENTIAL_LOOKUPS: usize = 2_000;
const POOL_SIZE: usize = 10;

const USAGE: &str =
    "usage: chakra-bench [--quick] [--diagnose] [--only SHAPE[,SHAPE…]] [--rounds N] [--side raw|chakra] [--workers N]
  --quick      fewer rounds (a smoke run; the noise is larger)
  --diagnose   also time hand-built stacks, one layer added at a time
  --only       run only these shapes: seq-get, concurrent-tasks, concurrent-join, fetch, stream, insert
  --rounds N   N timed rounds for every shape (e.g. to profile one shape for longer)
  --side S     run one side only, raw or chakra (for a profiler; no ratios)
  --workers N  Tokio worker threads (default 2, the reference box's cores)
environment: DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test; sslmode=disable unless it says)";

/// One workload, run the same way on every side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    SequentialGet,
    ConcurrentGet(Fanout),
    Fetch,
    Stream,
    BulkInsert,
}

impl Shape {
    const ALL: [Shape; 6] = [
        Shape::SequentialGet,
        Shape::ConcurrentGet(Fanout::Tasks),
        Shape::ConcurrentGet(Fanout::JoinAll),
        Shape::Fetch,
        Shape::Stream,
        Shape::BulkInsert,
    ];

    fn key(self) -> &'static str {
        match self {
            Shape::SequentialGet => "seq-get",
            Shape::ConcurrentGet(Fanout::Tasks) => "concurrent-tasks",
            Shape::ConcurrentGet(Fanout::JoinAll) => "concurrent-join",
            Shape::Fetch => "fetch",
            Shape::Stream => "stream",
            Shape::BulkInsert => "insert",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Shape::SequentialGet => "point lookup by pk, sequential (median get)",
            Shape::ConcurrentGet(Fanout::Tasks) => "2,000 concurrent gets, pool of 10 (one task per get)",
            Shape::ConcurrentGet(Fanout::JoinAll) => "2,000 concurrent gets, pool of 10 (10 tasks x join_all(200))",
            Shape::Fetch => "fetch 10k rows",
            Shape::Stream => "stream 100k rows",
            Shape::BulkInsert => "bulk insert 10k rows (COPY BINARY)",
        }
    }

    /// How many operations one run does (client CPU is reported per operation).
    fn units(self) -> u32 {
        match self {
            Shape::SequentialGet => SEQUENTIAL_LOOKUPS as u32,
            _ => 1,
        }
    }

    /// The issue's target for chakra/raw, where it sets one.
    fn target(self) -> Option<f64> {
        match self {
            Shape::SequentialGet | Shape::Fetch => Some(1.10),
            Shape::ConcurrentGet(_) => Some(1.0 / 3.0),
            Shape::Stream | Shape::BulkInsert => None,
        }
    }

    async fn run(self, w: &Workload, side: &Side) -> Result<Duration> {
        match self {
            Shape::SequentialGet => shapes::sequential_get(w, side).await,
            Shape::ConcurrentGet(fanout) => shapes::concurrent_get(w, side, fanout).await,
            // Like for like: each side's API that decodes rows while later ones are still
            // on the wire (`--diagnose` also times both collecting first).
            Shape::Fetch => shapes::fetch(side, Delivery::AsTheyArrive).await,
            Shape::Stream => shapes::stream(side).await,
            Shape::BulkInsert => shapes::bulk_insert(w, side, InsertBy::CopyPieces).await,
        }
    }
}

/// How many rounds to run, and of what.
pub struct Plan {
    quick: bool,
    rounds: Option<usize>,
    only: Option<Vec<Shape>>,
}

impl Plan {
    /// (warm-up, timed) rounds. A round of a sequential shape is itself many queries, so
    /// fewer rounds suffice there than for the single-query shapes.
    fn rounds(&self, shape: Shape) -> (usize, usize) {
        let (warmup, full, quick) = match shape {
            Shape::SequentialGet => (1, 15, 3),
            // PostgreSQL plans a prepared statement afresh for its first five executions
            // on a connection (then settles on the generic plan): a run sends about one
            // merged lookup per connection, so it takes eight to reach a long-lived pool's
            // steady state on fresh connections.
            Shape::ConcurrentGet(_) => (CONCURRENT_WARMUP, 30, 5),
            Shape::Fetch => (3, 30, 8),
            Shape::Stream => (1, 10, 3),
            Shape::BulkInsert => (1, 10, 3),
        };
        (warmup, self.rounds.unwrap_or(if self.quick { quick } else { full }))
    }

    fn selects(&self, shape: Shape) -> bool {
        self.only.as_ref().is_none_or(|only| only.contains(&shape))
    }
}

struct Args {
    plan: Plan,
    diagnose: bool,
    workers: usize,
    /// Run one side only (`raw` or `chakra`), e.g. under a profiler.
    side: Option<String>,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut args =
        Args { plan: Plan { quick: false, rounds: None, only: None }, diagnose: false, workers: 2, side: None };
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--quick" => args.plan.quick = true,
            "--diagnose" => args.diagnose = true,
            "--only" => {
                let list = argv.next().ok_or("--only needs a list of shapes")?;
                let shapes = list
                    .split(',')
                    .map(|key| Shape::ALL.into_iter().find(|s| s.key() == key).ok_or(format!("unknown shape `{key}`")))
                    .collect::<std::result::Result<_, _>>()?;
                args.plan.only = Some(shapes);
            }
            "--rounds" => {
                let n = argv.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0);
                args.plan.rounds = Some(n.ok_or("--rounds needs a positive number")?);
            }
            "--workers" => {
                let n = argv.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0);
                args.workers = n.ok_or("--workers needs a positive number")?;
            }
            "--side" => match argv.next().as_deref() {
                Some(side @ ("raw" | "chakra")) => args.side = Some(side.to_owned()),
                _ => return Err("--side needs `raw` or `chakra`".into()),
            },
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(args)
}

fn main() {
    // The reference box has 2 cores, and the DESIGN sizes the runtime to the cores.
    harness::run_main("chakra-bench", USAGE, parse_args, |args| args.workers, run);
}

async fn run(args: Args) -> Result<()> {
    let workers = args.workers;
    let url = harness::database_url();
    let (admin, connection) = tokio_postgres::connect(&url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let version: String = admin.query_one("SHOW server_version", &[]).await?.get(0);
    println!("chakra-bench: PostgreSQL {version}, {} CPUs, Tokio runtime with {workers} workers", num_cpus());
    if harness::watch_server(&url) {
        println!("the server runs on this machine: its CPU time is measured too (from /proc)");
    }
    println!("setting up bench_users ({} rows) and bench_insert …", data::USERS);
    data::setup(&admin).await?;

    let mut contenders = connect_both(&url).await?;
    let workload = Workload {
        sql: shapes::ModelSql::new(),
        sequential_ids: data::random_ids(SEQUENTIAL_LOOKUPS, 0x5eed_0001),
        concurrent_ids: data::random_ids(CONCURRENT_LOOKUPS, 0x5eed_0002),
        new_users: data::new_users(data::INSERT_ROWS),
        admin,
    };
    // Under `--side`, the other side's column stays empty.
    let runs = |c: &Contender| {
        matches!(
            (args.side.as_deref(), &c.side),
            (None, _) | (Some("raw"), Side::Raw(_)) | (Some("chakra"), Side::Chakra { .. })
        )
    };

    let mut table = Table::new(&[
        "shape",
        "raw tokio-postgres",
        "chakra",
        "chakra/raw",
        "target",
        "rounds chakra was faster",
        "noise raw / chakra",
        "client CPU per op raw / chakra",
        "server CPU per op raw / chakra",
    ]);
    for shape in Shape::ALL.into_iter().filter(|s| args.plan.selects(*s)) {
        let (warmup, rounds) = args.plan.rounds(shape);
        eprintln!("  {} — {rounds} rounds in blocks of {BLOCK}, each after {warmup} warm-up", shape.title());
        let chosen = contenders.iter().filter(|c| runs(c)).count();
        let mut measured = vec![harness::Measured::default(); chosen];
        for start in (0..rounds).step_by(BLOCK) {
            if start > 0 {
                drop(contenders);
                contenders = connect_both(&url).await?;
            }
            let chosen: Vec<&Contender> = contenders.iter().filter(|c| runs(c)).collect();
            let block = harness::compare_in_order(
                &chosen,
                warmup,
                BLOCK.min(rounds - start),
                shape.units(),
                |round, n| harness::rotated(start + round, n),
                |c| shape.run(&workload, &c.side),
            )
            .await?;
            for (all, more) in measured.iter_mut().zip(block) {
                all.extend(more);
            }
        }
        let mut measured = measured.iter();
        let mut by_side = contenders.iter().map(|c| runs(c).then(|| measured.next()).flatten());
        let (raw, chakra) = (by_side.next().flatten(), by_side.next().flatten());
        let cell =
            |m: Option<&harness::Measured>, f: &dyn Fn(&harness::Measured) -> String| m.map_or("-".to_owned(), f);
        let rounds_faster = match (raw, chakra) {
            (Some(raw), Some(chakra)) => {
                let paired = chakra.wall.paired(&raw.wall);
                let p = match paired.p < 0.01 {
                    true => "< 0.01".to_owned(),
                    false => format!("= {:.2}", paired.p),
                };
                format!("{}/{} (sign test p {p})", paired.faster, paired.rounds)
            }
            _ => "-".to_owned(),
        };
        let (ratio, target) = match (raw, chakra) {
            (Some(raw), Some(chakra)) => {
                let ratio = chakra.wall.median().as_secs_f64() / raw.wall.median().as_secs_f64();
                let target = match shape.target() {
                    Some(t) if ratio <= t => format!("<= {t:.2}, met"),
                    Some(t) => format!("<= {t:.2}, MISSED"),
                    None => "-".to_owned(),
                };
                (format!("{ratio:.2}"), target)
            }
            _ => ("-".to_owned(), "-".to_owned()),
        };
        table.row(vec![
            shape.title().to_owned(),
            cell(raw, &|m| format_duration(m.wall.median())),
            cell(chakra, &|m| format_duration(m.wall.median())),
            ratio,
            target,
            rounds_faster,
            format!(
                "{} / {}",
                cell(raw, &|m| format!("±{:.1}%", m.wall.spread() * 100.0)),
                cell(chakra, &|m| format!("±{:.1}%", m.wall.spread() * 100.0))
            ),
            format!(
                "{} / {}",
                cell(raw, &|m| format_duration(m.cpu.median())),
                cell(chakra, &|m| format_duration(m.cpu.median()))
            ),
            format!("{} / {}", cell(raw, &server_cpu), cell(chakra, &server_cpu)),
        ]);
    }
    println!(
        "\nmedians of wall time; chakra/raw < 1 means chakra is faster; each round ran both sides, and the sign test \
         over those pairs says how likely so lopsided a split would be by chance; noise is half the interquartile range"
    );
    table.print();

    if args.diagnose {
        println!("\n--diagnose: the same shapes on hand-built stacks, one layer added per row");
        alloc_count::enable();
        let [raw, chakra] = contenders;
        diagnose::run(&workload, raw, chakra, &url, &args.plan).await?;
    }
    Ok(())
}

/// Both sides on fresh connections: the pool warm (min = max) and every raw client's
/// statements prepared before anything is timed.
async fn connect_both(url: &str) -> Result<[Contender; 2]> {
    let raw: Vec<Arc<RawClient>> =
        try_join_all((0..POOL_SIZE).map(|_| RawClient::connect(url))).await?.into_iter().map(Arc::new).collect();
    let pool = chakra::Pool::builder().url(url).max_connections(POOL_SIZE).min_connections(POOL_SIZE).build().await?;
    Ok([
        Contender { name: "raw tokio-postgres".into(), side: Side::Raw(raw) },
        Contender { name: "chakra".into(), side: Side::Chakra { db: Db::Pool(pool), batchable: true } },
    ])
}

/// The server's CPU time per operation, or `-` when it was not watched.
fn server_cpu(m: &harness::Measured) -> String {
    m.server_cpu().map_or("-".to_owned(), format_duration)
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
