//! `orm-bench`: Chakra's models against raw tokio-postgres (prepared statements, the
//! floor), sqlx, sea-orm and diesel-async on the spec's query shapes, in one run.
//!
//! ```text
//! cargo run --release -p chakra-benches --bin orm-bench [-- --quick] [--allocs] [--only SHAPE,…] [--sides SIDE,…]
//! ```
//!
//! See `benches/README.md` for what each shape measures and how to read the tables.

#[allow(dead_code)]
#[path = "../alloc_count.rs"]
mod alloc_count;
mod check;
#[allow(dead_code)]
#[path = "../data.rs"]
mod data;
#[allow(dead_code)]
#[path = "../harness.rs"]
mod harness;
mod models;
mod peer_diesel;
mod peer_seaorm;
mod peer_sqlx;
mod raw;
mod shapes;
mod tables;

use std::time::Duration;

use tokio_postgres::NoTls;

use crate::harness::{format_duration, Measured, Paired, Table, BLOCK, CONCURRENT_WARMUP};
use crate::shapes::{Contender, Side, Workload};

#[global_allocator]
static ALLOCATOR: alloc_count::CountingAllocator = alloc_count::CountingAllocator;

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Every side gets a pool (for raw: clients) of this many connections.
const POOL_SIZE: usize = 10;
const CONCURRENT_GETS: usize = 2_000;
const SEQUENTIAL_GETS: usize = 2_000;
const SIDES: [&str; 5] = ["raw", "chakra", "sqlx", "sea-orm", "diesel"];

const USAGE: &str = "usage: orm-bench [--quick] [--allocs] [--diagnose] [--peer-defaults] [--only SHAPE[,SHAPE…]] [--sides SIDE[,SIDE…]] [--rounds N] [--workers N]
  --quick          fewer rounds (a smoke run; the noise is larger)
  --allocs         count heap allocations and add a table of allocations per operation
  --diagnose       after the tables, split fetch (rows decoded as they arrive or after the
                   last, raw and chakra) and bulk insert (raw COPY, raw UNNEST with and
                   without RETURNING, insert_many and insert_all), with allocations counted
  --peer-defaults  sqlx, sea-orm and bb8 with their stock pool settings (a ping on every
                   checkout, sea-orm's statement logging) instead of matching Chakra's
  --only           only these shapes: get, concurrent, fetch, stream, insert
  --sides          only these sides: raw, chakra, sqlx, sea-orm, diesel (e.g. under a profiler)
  --rounds N       N timed rounds for every shape
  --workers N      Tokio worker threads (default 2, the reference box's cores)
environment: DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test; sslmode=disable unless it says)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Get,
    Concurrent,
    Fetch,
    Stream,
    Insert,
}

impl Shape {
    const ALL: [Shape; 5] = [Shape::Get, Shape::Concurrent, Shape::Fetch, Shape::Stream, Shape::Insert];

    fn key(self) -> &'static str {
        match self {
            Shape::Get => "get",
            Shape::Concurrent => "concurrent",
            Shape::Fetch => "fetch",
            Shape::Stream => "stream",
            Shape::Insert => "insert",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Shape::Get => "get by pk (median of 2,000 sequential)",
            Shape::Concurrent => "2,000 concurrent gets, pool of 10",
            Shape::Fetch => "filter + all, 10k rows",
            Shape::Stream => "stream 100k rows",
            Shape::Insert => "bulk insert 10k rows",
        }
    }

    /// Operations per run (CPU time and allocations are reported per operation).
    fn units(self) -> u32 {
        match self {
            Shape::Get => SEQUENTIAL_GETS as u32,
            _ => 1,
        }
    }

    /// The issue's target for chakra/raw, as text: within 10% everywhere, ahead of raw on
    /// the concurrent gets (through `batch`).
    fn target(self) -> &'static str {
        match self {
            Shape::Concurrent => "< 1.00",
            _ => "<= 1.10",
        }
    }

    fn meets_target(self, chakra_over_raw: f64) -> bool {
        match self {
            Shape::Concurrent => chakra_over_raw < 1.0,
            _ => chakra_over_raw <= 1.10,
        }
    }

    /// (warm-up, full, quick) rounds. Pools hand out their connections in turn, so the
    /// single-query shapes warm up more than ten times: every connection has its
    /// statements prepared before the clock starts.
    fn rounds(self) -> (usize, usize, usize) {
        match self {
            // The sides' gets differ by a few percent of a round trip whose per-round
            // median swings by ±9% on a small VM: the sign test needs ~100 pairs to tell.
            Shape::Get => (1, 100, 3),
            // Until each connection's merged lookup has its generic plan (see chakra-bench).
            Shape::Concurrent => (CONCURRENT_WARMUP, 30, 5),
            Shape::Fetch => (POOL_SIZE + 1, 40, 8),
            Shape::Stream => (POOL_SIZE + 1, 15, 3),
            // Timings swing ±20% with the server's background writes: twice the rounds.
            Shape::Insert => (POOL_SIZE + 1, 30, 3),
        }
    }

    async fn run(self, w: &Workload, side: &Side) -> Result<Duration> {
        match self {
            Shape::Get => shapes::sequential_get(w, side).await,
            Shape::Concurrent => shapes::concurrent_get(w, side).await,
            Shape::Fetch => shapes::fetch(w, side).await,
            Shape::Stream => shapes::stream(w, side).await,
            Shape::Insert => shapes::bulk_insert(w, side).await,
        }
    }
}

struct Args {
    quick: bool,
    allocs: bool,
    diagnose: bool,
    tuned: bool,
    rounds: Option<usize>,
    only: Option<Vec<Shape>>,
    sides: Vec<&'static str>,
    workers: usize,
}

fn parse_list<T: Copy>(
    list: &str,
    all: &[T],
    key: impl Fn(T) -> &'static str,
    what: &str,
) -> std::result::Result<Vec<T>, String> {
    list.split(',').map(|k| all.iter().copied().find(|x| key(*x) == k).ok_or(format!("unknown {what} `{k}`"))).collect()
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut args = Args {
        quick: false,
        allocs: false,
        diagnose: false,
        tuned: true,
        rounds: None,
        only: None,
        sides: SIDES.to_vec(),
        workers: 2,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--allocs" => args.allocs = true,
            "--diagnose" => args.diagnose = true,
            "--peer-defaults" => args.tuned = false,
            "--only" => {
                let list = argv.next().ok_or("--only needs a list of shapes")?;
                args.only = Some(parse_list(&list, &Shape::ALL, Shape::key, "shape")?);
            }
            "--sides" => {
                let list = argv.next().ok_or("--sides needs a list of sides")?;
                args.sides = parse_list(&list, &SIDES, |s| s, "side")?;
            }
            "--rounds" => {
                let n = argv.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0);
                args.rounds = Some(n.ok_or("--rounds needs a positive number")?);
            }
            "--workers" => {
                let n = argv.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0);
                args.workers = n.ok_or("--workers needs a positive number")?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(args)
}

fn main() {
    // The reference box has 2 cores, and the DESIGN sizes the runtime to the cores.
    harness::run_main("orm-bench", USAGE, parse_args, |args| args.workers, run);
}

/// The order of round `round`: rotated by one each round, and reversed on every other
/// cycle, so each side runs in every position and after different neighbours.
fn order(round: usize, n: usize) -> Vec<usize> {
    let mut order = harness::rotated(round, n);
    if (round / n) % 2 == 1 {
        order.reverse();
    }
    order
}

/// Every side of `args`, connected afresh.
async fn connect_all(args: &Args, url: &str) -> Result<Vec<Contender>> {
    let mut contenders = Vec::new();
    for key in &args.sides {
        contenders.push(connect(key, url, args.tuned).await?);
    }
    Ok(contenders)
}

async fn connect(key: &str, url: &str, tuned: bool) -> Result<Contender> {
    let (name, side) = match key {
        "raw" => ("raw tokio-postgres", Side::Raw(raw::Raw::connect(url, POOL_SIZE).await?)),
        "chakra" => ("chakra", Side::Chakra(models::Models::connect(url, POOL_SIZE).await?)),
        "sqlx" => ("sqlx", Side::Sqlx(peer_sqlx::Sqlx::connect(url, POOL_SIZE, tuned).await?)),
        "sea-orm" => ("sea-orm", Side::SeaOrm(peer_seaorm::SeaOrm::connect(url, POOL_SIZE, tuned).await?)),
        "diesel" => ("diesel-async", Side::Diesel(peer_diesel::Diesel::connect(url, POOL_SIZE, tuned).await?)),
        other => unreachable!("unknown side {other}"),
    };
    let key = SIDES.into_iter().find(|s| *s == key).expect("a known side");
    Ok(Contender { name, key, side })
}

async fn run(args: Args) -> Result<()> {
    let url = harness::database_url();
    let (admin, connection) = tokio_postgres::connect(&url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let version: String = admin.query_one("SHOW server_version", &[]).await?.get(0);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "orm-bench: PostgreSQL {version}, {cpus} CPUs, Tokio runtime with {} workers, load average {}",
        args.workers,
        load_average()
    );
    println!(
        "peers' pools: {}",
        match args.tuned {
            true => "no ping on checkout, no statement logging (as Chakra's pool); --peer-defaults for their stock settings",
            false => "stock settings (--peer-defaults): sqlx, sea-orm and bb8 ping on every checkout; sea-orm logs statements",
        }
    );
    println!("setting up bench_orm_users ({} rows) and bench_orm_insert …", data::USERS);
    tables::setup(&admin).await?;

    harness::watch_server(&url);
    let mut contenders = connect_all(&args, &url).await?;
    let workload = Workload::new(
        admin,
        data::random_ids(SEQUENTIAL_GETS, 0x5eed_0001),
        data::random_ids(CONCURRENT_GETS, 0x5eed_0002),
        data::new_users(data::INSERT_ROWS),
    );
    if args.allocs {
        alloc_count::enable();
    }

    let mut results: Vec<(Shape, Vec<Measured>)> = Vec::new();
    for shape in Shape::ALL.into_iter().filter(|s| args.only.as_ref().is_none_or(|only| only.contains(s))) {
        let (warmup, full, quick) = shape.rounds();
        let rounds = args.rounds.unwrap_or(if args.quick { quick } else { full });
        eprintln!("  {} — {rounds} rounds in blocks of {BLOCK}, each after {warmup} warm-up", shape.title());
        let mut measured = vec![Measured::default(); contenders.len()];
        for start in (0..rounds).step_by(BLOCK) {
            if start > 0 {
                drop(contenders);
                contenders = connect_all(&args, &url).await?;
            }
            let block = harness::compare_in_order(
                &contenders,
                warmup,
                BLOCK.min(rounds - start),
                shape.units(),
                |round, n| order(start + round, n),
                |c| shape.run(&workload, &c.side),
            )
            .await?;
            for (all, more) in measured.iter_mut().zip(block) {
                all.extend(more);
            }
        }
        results.push((shape, measured));
    }
    print_tables(&contenders, &results, args.allocs);
    if args.diagnose {
        diagnose(&workload, &contenders, &args).await?;
    }
    println!("\nload average after the run: {}", load_average());
    tables::drop(&workload.admin).await?;
    Ok(())
}

fn median_secs(m: &Measured) -> f64 {
    m.wall.median().as_secs_f64()
}

/// Whether chakra is ahead of every peer, judged round by round (see [`Samples::paired`]).
fn peer_verdict(contenders: &[Contender], measured: &[Measured], chakra: usize, peers: &[usize]) -> String {
    if peers.is_empty() {
        return "-".to_owned();
    }
    let paired: Vec<(&str, Paired)> =
        peers.iter().map(|&i| (contenders[i].name, measured[chakra].wall.paired(&measured[i].wall))).collect();
    let split = |p: &Paired| format!("{}/{}", p.faster, p.rounds);
    if paired.iter().all(|(_, p)| p.ahead()) {
        let least = paired.iter().map(|(_, p)| p).min_by_key(|p| p.faster).expect("peers");
        return format!("yes (at least {})", split(least));
    }
    let list = |keep: fn(&Paired) -> bool| {
        paired.iter().filter(|(_, p)| keep(p)).map(|(name, p)| format!("{name} {}", split(p))).collect::<Vec<_>>()
    };
    let (behind, tied) = (list(Paired::behind), list(|p| !p.ahead() && !p.behind()));
    let mut parts = Vec::new();
    if !behind.is_empty() {
        parts.push(format!("behind {}", behind.join(", ")));
    }
    if !tied.is_empty() {
        parts.push(format!("tied with {}", tied.join(", ")));
    }
    format!("NO: {}", parts.join("; "))
}

fn print_tables(contenders: &[Contender], results: &[(Shape, Vec<Measured>)], allocs: bool) {
    let position = |key: &str| contenders.iter().position(|c| c.key == key);
    let (raw, chakra) = (position("raw"), position("chakra"));

    println!("\nmedian wall time per shape (ratio to raw tokio-postgres; below 1.00 is faster than raw)");
    let mut header = vec!["shape"];
    header.extend(contenders.iter().map(|c| c.name));
    let mut table = Table::new(&header);
    for (shape, measured) in results {
        let mut row = vec![shape.title().to_owned()];
        for m in measured {
            let time = format_duration(m.wall.median());
            row.push(match raw {
                Some(r) if !std::ptr::eq(m, &measured[r]) => {
                    format!("{time} ({:.2}x)", median_secs(m) / median_secs(&measured[r]))
                }
                _ => time,
            });
        }
        table.row(row);
    }
    table.print();

    if let Some(c) = chakra {
        println!(
            "\nchakra against each side (ratio of medians; below 1.00 means chakra is faster). Against the peers, \
             round by round: ahead or behind only when the sign test over the paired rounds says so (p < 0.05), \
             otherwise tied; k/n counts the rounds chakra was faster"
        );
        let others: Vec<usize> = (0..contenders.len()).filter(|&i| i != c).collect();
        let mut header = vec!["shape".to_owned()];
        header.extend(others.iter().map(|&i| format!("chakra/{}", contenders[i].name)));
        header.extend(["target vs raw".to_owned(), "ahead of every peer".to_owned()]);
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        let mut table = Table::new(&header);
        for (shape, measured) in results {
            let ratio = |i: usize| median_secs(&measured[c]) / median_secs(&measured[i]);
            let mut row = vec![shape.title().to_owned()];
            row.extend(others.iter().map(|&i| format!("{:.2}", ratio(i))));
            row.push(match raw {
                Some(r) if shape.meets_target(ratio(r)) => format!("{}: met", shape.target()),
                Some(_) => format!("{}: MISSED", shape.target()),
                None => "-".to_owned(),
            });
            let peers: Vec<usize> = others.iter().copied().filter(|&i| Some(i) != raw).collect();
            row.push(peer_verdict(contenders, measured, c, &peers));
            table.row(row);
        }
        table.print();
    }

    println!(
        "\nnoise (half the interquartile range over the rounds), client CPU per operation (every thread of the process; \
         the server's in parentheses when it runs on this machine) and thread sleeps per operation (each a wake-up to pay later)"
    );
    let mut table = Table::new(&header);
    for (shape, measured) in results {
        let mut row = vec![shape.title().to_owned()];
        row.extend(measured.iter().map(|m| {
            let sleeps = m.median_sleeps();
            let sleeps = if sleeps >= 100.0 { format!("{sleeps:.0}") } else { format!("{sleeps:.1}") };
            let server = m.server_cpu().map(|cpu| format!(" (server {})", format_duration(cpu))).unwrap_or_default();
            format!(
                "±{:.1}%, {} CPU{server}, {sleeps} sleeps",
                m.wall.spread() * 100.0,
                format_duration(m.cpu.median())
            )
        }));
        table.row(row);
    }
    table.print();

    if allocs {
        println!("\nheap allocations per operation (median over the rounds)");
        let mut table = Table::new(&header);
        for (shape, measured) in results {
            let mut row = vec![shape.title().to_owned()];
            row.extend(measured.iter().map(|m| format!("{:.0}", m.median_allocations())));
            table.row(row);
        }
        table.print();
    }
}

/// `--diagnose`: where Chakra's fetch and bulk insert spend their time, against raw
/// variants that do the same extra work.
async fn diagnose(w: &Workload, contenders: &[Contender], args: &Args) -> Result<()> {
    let raw = contenders.iter().find_map(|c| match &c.side {
        Side::Raw(raw) => Some(raw),
        _ => None,
    });
    let chakra = contenders.iter().find_map(|c| match &c.side {
        Side::Chakra(models) => Some(models),
        _ => None,
    });
    let (Some(raw), Some(chakra)) = (raw, chakra) else {
        return Err("--diagnose needs the raw and chakra sides".into());
    };
    alloc_count::enable();
    let rounds = |shape: Shape| {
        let (warmup, full, quick) = shape.rounds();
        (warmup, args.rounds.unwrap_or(if args.quick { quick } else { full }))
    };

    let diesel = contenders.iter().find_map(|c| match &c.side {
        Side::Diesel(diesel) => Some(diesel),
        _ => None,
    });
    let mut fetches = vec![
        ("raw query_raw, rows decoded as they arrive", shapes::FetchSplit::RawArriving(raw)),
        ("raw query, rows decoded after the last", shapes::FetchSplit::RawCollected(raw)),
        ("raw query_raw, rows not decoded (the floor)", shapes::FetchSplit::RawUndecoded(raw)),
        ("chakra all()", shapes::FetchSplit::ChakraAll(chakra)),
        ("chakra stream(), collected", shapes::FetchSplit::ChakraStreamed(chakra)),
        ("chakra query_stream, rows not decoded", shapes::FetchSplit::ChakraUndecoded(chakra)),
    ];
    // The peer nearest the floor, in the same rounds: when it and Chakra both sit on the
    // floor, neither can be ahead of the other.
    if let Some(diesel) = diesel {
        fetches.push(("diesel-async load()", shapes::FetchSplit::Diesel(diesel)));
    }
    let (warmup, n) = rounds(Shape::Fetch);
    eprintln!("  --diagnose: fetch split — {warmup} warm-up + {n} rounds");
    let measured = harness::compare_in_order(&fetches, warmup, n, 1, order, |(_, v)| shapes::fetch_split(w, v)).await?;
    println!("\n--diagnose: fetch 10k rows, by how rows reach the decoder");
    print_split(&fetches.iter().map(|(name, _)| *name).collect::<Vec<_>>(), &measured);

    let inserts = [
        ("raw COPY", shapes::InsertSplit::Raw(raw)),
        ("raw UNNEST", shapes::InsertSplit::RawUnnest(raw)),
        ("raw UNNEST … RETURNING *, rows decoded", shapes::InsertSplit::RawReturning(raw)),
        ("chakra insert_many (catalog check + COPY)", shapes::InsertSplit::Chakra(chakra)),
        ("chakra insert_all (UNNEST … RETURNING *)", shapes::InsertSplit::ChakraReturning(chakra)),
    ];
    let (warmup, n) = rounds(Shape::Insert);
    eprintln!("  --diagnose: bulk insert split — {warmup} warm-up + {n} rounds");
    let measured =
        harness::compare_in_order(&inserts, warmup, n, 1, order, |(_, v)| shapes::insert_split(w, v)).await?;
    println!(
        "\n--diagnose: bulk insert 10k rows, with and without reading the rows back (allocations: timed part only)"
    );
    print_split(&inserts.map(|(name, _)| name), &measured);
    Ok(())
}

fn print_split(names: &[&str], measured: &[Measured]) {
    let mut table = Table::new(&["variant", "median", "ratio to the first", "noise", "client CPU", "allocations"]);
    for (name, m) in names.iter().zip(measured) {
        table.row(vec![
            (*name).to_owned(),
            format_duration(m.wall.median()),
            format!("{:.2}", median_secs(m) / median_secs(&measured[0])),
            format!("±{:.1}%", m.wall.spread() * 100.0),
            format_duration(m.cpu.median()),
            format!("{:.0}", m.median_allocations()),
        ]);
    }
    table.print();
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}
