//! `--diagnose`: where the stack spends its time. The same shapes run against stacks
//! assembled by hand from Chakra's own layers, adding one layer at a time in the
//! documented order (acquire → executor first, trace last), so the step from one row to
//! the next is what that layer costs. Every hand-built stack counts the queries that
//! reach `acquire`, which shows how well `batch` merged the concurrent lookups.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chakra::acquire::AcquireLayer;
use chakra::batch::{BatchLayer, DEFAULT_MAX_BATCH};
use chakra::metrics::MetricsLayer;
use chakra::retry::RetryLayer;
use chakra::timeout::TimeoutLayer;
use chakra::trace::TraceLayer;
use chakra::{Config, ConnectionPool, Request, Response};
use chakra_service::Executor;
use tower::util::{BoxCloneSyncService, MapRequestLayer};
use tower::ServiceBuilder;

use crate::harness::{format_duration, Measured, Table};
use crate::shapes::{Contender, Db, Delivery, Fanout, InsertBy, Lookups, Side, Workload};
use crate::{Plan, Result, Shape};

pub type BoxService = BoxCloneSyncService<Request, Response, chakra::Error>;

/// Which of the built-in layers a hand-built stack has (acquire and executor always).
#[derive(Debug, Clone, Copy, Default)]
struct Layers {
    /// `max_batch` of the batch layer; 0 leaves the layer out.
    batch: usize,
    retry: bool,
    timeout: bool,
    metrics: bool,
    trace: bool,
}

/// The stack `Pool::builder()` builds, minus the layers switched off in `layers`, with
/// the same settings. A missing layer is a `tower::util::Either` pass-through, which costs
/// a branch and no allocation, so it does not blur the comparison.
fn stack(connections: &ConnectionPool, layers: Layers, queries: Arc<AtomicU64>) -> BoxService {
    let config = connections.config();
    let service = ServiceBuilder::new()
        .option_layer(layers.trace.then(|| TraceLayer::new(connections.server().clone())))
        .option_layer(layers.metrics.then(MetricsLayer::new))
        .option_layer(layers.timeout.then(|| TimeoutLayer::new(Some(config.query.timeout))))
        .option_layer(layers.retry.then(|| RetryLayer::new(&config.retry)))
        .option_layer((layers.batch > 0).then(|| BatchLayer::new(layers.batch)))
        .layer(MapRequestLayer::new(move |request: Request| {
            queries.fetch_add(1, Ordering::Relaxed);
            request
        }))
        .layer(AcquireLayer::new(connections.clone()))
        .service(Executor);
    BoxCloneSyncService::new(service)
}

/// Builds the contenders, runs the diagnostic shapes and prints one table per shape.
/// `raw` and `chakra` are the headline's contenders, reused to keep connections down.
pub async fn run(workload: &Workload, raw: Contender, chakra: Contender, url: &str, plan: &Plan) -> Result<()> {
    let mut config = Config::default();
    config.database.url = Some(url.to_owned());
    config.pool.max_connections = 10;
    config.pool.min_connections = 10;
    let connections = ConnectionPool::open(config).await?;

    let Side::Chakra { db: default_pool, .. } = chakra.side.clone() else { unreachable!("the chakra contender") };
    let mut contenders = vec![raw];
    contenders.push(Contender { name: "Pool (default stack)".into(), side: chakra.side });
    contenders.push(Contender {
        name: "Pool (default stack), lookups without PointLookup".into(),
        side: Side::Chakra { db: default_pool, batchable: false },
    });
    let no_timeout = chakra::Pool::builder()
        .url(url)
        .max_connections(10)
        .min_connections(10)
        .query_timeout(Duration::ZERO)
        .build()
        .await?;
    contenders.push(Contender {
        name: "Pool, query_timeout(0)".into(),
        side: Side::Chakra { db: Db::Pool(no_timeout), batchable: true },
    });
    // Each step adds the next layer outwards, in the order `Pool` stacks them.
    let bare = Layers::default();
    let batch = Layers { batch: DEFAULT_MAX_BATCH, ..bare };
    let retry = Layers { retry: true, ..batch };
    let timeout = Layers { timeout: true, ..retry };
    let metrics = Layers { metrics: true, ..timeout };
    let full = Layers { trace: true, ..metrics };
    let steps = [
        ("acquire → executor", bare),
        ("+ batch", batch),
        ("+ retry", retry),
        ("+ timeout", timeout),
        ("+ metrics", metrics),
        ("+ trace (= full stack)", full),
        // Other group sizes: larger ones mean fewer statements, smaller ones spread a burst
        // over more connections (and server cores) and go out sooner.
        ("full stack, max_batch 1000", Layers { batch: 1000, ..full }),
        ("full stack, max_batch 100", Layers { batch: 100, ..full }),
    ];
    for (name, layers) in steps {
        let queries = Arc::new(AtomicU64::new(0));
        let db = Db::Stack { service: stack(&connections, layers, queries.clone()), queries };
        contenders.push(Contender { name: format!("hand-built: {name}"), side: Side::Chakra { db, batchable: true } });
    }

    let shapes = [Shape::SequentialGet, Shape::ConcurrentGet(Fanout::Tasks), Shape::ConcurrentGet(Fanout::JoinAll)];
    for shape in shapes.into_iter().filter(|s| plan.selects(*s)) {
        let (warmup, rounds) = plan.rounds(shape);
        let op = if shape.units() > 1 { "one get" } else { "one run of 2,000 gets" };
        println!("\n{} — {warmup} warm-up + {rounds} rounds, order rotating; an op is {op}", shape.title());
        let before = query_counts(&contenders);
        let measured =
            crate::harness::compare(&contenders, warmup, rounds, shape.units(), |c| shape.run(workload, &c.side))
                .await?;
        let after = query_counts(&contenders);
        let runs = (warmup + rounds) as f64;
        let names: Vec<String> = contenders.iter().map(|c| c.name.clone()).collect();
        print_variants(&names, &measured, |i| match (shape, before[i], after[i]) {
            (Shape::ConcurrentGet(_), Some(b), Some(a)) => format!("{:.1}", (a - b) as f64 / runs),
            _ => String::new(),
        });
    }

    // The floor under any batching client: each raw client's share as one `= ANY`
    // statement, no stack and no future per lookup. The concurrent target is a ratio to
    // raw's pipelined gets; a floor above it is out of any stack's reach on this machine.
    let shape = Shape::ConcurrentGet(Fanout::JoinAll);
    if plan.selects(shape) {
        let (warmup, rounds) = plan.rounds(shape);
        println!("\n{} — the floor under batching — {warmup} warm-up + {rounds} rounds, order rotating", shape.title());
        let Side::Raw(clients) = &contenders[0].side else { unreachable!("raw comes first") };
        // Each side runs the shape, unless it merges by hand.
        let (raw, pool) = (&contenders[0].side, &contenders[1].side);
        let variants = [
            ("raw tokio-postgres, one statement per get", raw, None),
            ("raw, hand-merged: one = ANY per client", raw, Some(Lookups::Merged)),
            ("raw, hand-merged, a future per lookup", raw, Some(Lookups::Futures)),
            ("Pool (default stack)", pool, None),
        ];
        let measured = crate::harness::compare(&variants, warmup, rounds, 1, |(_, side, lookups)| async move {
            match lookups {
                None => shape.run(workload, side).await,
                Some(lookups) => crate::shapes::concurrent_get_hand_merged(workload, clients, *lookups).await,
            }
        })
        .await?;
        let names: Vec<String> = variants.iter().map(|(name, ..)| name.to_string()).collect();
        let queries = |i: usize| variants[i].2.map_or(String::new(), |_| clients.len().to_string());
        print_variants(&names, &measured, queries);
    }

    // Fetch, split four ways: how much of Chakra's ratio is the stack, and how much is
    // `query` handing over rows only after the last one arrived?
    if plan.selects(Shape::Fetch) {
        let (warmup, rounds) = plan.rounds(Shape::Fetch);
        println!("\n{} — {warmup} warm-up + {rounds} rounds, order rotating", Shape::Fetch.title());
        let (raw, chakra) = (contenders[0].side.clone(), contenders[1].side.clone());
        let variants = [
            ("raw tokio-postgres, query_raw, decoded as rows arrive", raw.clone(), Delivery::AsTheyArrive),
            ("raw tokio-postgres, query (Vec<Row>), then decoded", raw, Delivery::Collected),
            ("Pool (default stack), query_stream, decoded as rows arrive", chakra.clone(), Delivery::AsTheyArrive),
            ("Pool (default stack), query (Vec<Row>), then decoded", chakra, Delivery::Collected),
        ];
        let measured = crate::harness::compare(&variants, warmup, rounds, 1, |(_, side, delivery)| {
            crate::shapes::fetch(side, *delivery)
        })
        .await?;
        let names: Vec<String> = variants.iter().map(|(name, ..)| name.to_string()).collect();
        print_variants(&names, &measured, |_| String::new());
    }

    // Bulk insert, split four ways: COPY against UNNEST on each side, so the stack's cost
    // shows apart from the statement's.
    if plan.selects(Shape::BulkInsert) {
        let (warmup, rounds) = plan.rounds(Shape::BulkInsert);
        println!("\n{} — {warmup} warm-up + {rounds} rounds, order rotating", Shape::BulkInsert.title());
        let (raw, chakra) = (contenders[0].side.clone(), contenders[1].side.clone());
        let variants = [
            ("raw tokio-postgres, COPY BINARY", raw.clone(), InsertBy::Copy),
            ("raw tokio-postgres, INSERT … UNNEST", raw, InsertBy::Unnest),
            ("Pool (default stack), COPY BINARY", chakra.clone(), InsertBy::Copy),
            ("Pool (default stack), COPY BINARY in pieces", chakra.clone(), InsertBy::CopyPieces),
            ("Pool (default stack), INSERT … UNNEST", chakra, InsertBy::Unnest),
        ];
        let measured = crate::harness::compare(&variants, warmup, rounds, 1, |(_, side, method)| {
            crate::shapes::bulk_insert(workload, side, *method)
        })
        .await?;
        let names: Vec<String> = variants.iter().map(|(name, ..)| name.to_string()).collect();
        print_variants(&names, &measured, |_| String::new());
    }
    Ok(())
}

fn query_counts(contenders: &[Contender]) -> Vec<Option<u64>> {
    contenders
        .iter()
        .map(|c| match &c.side {
            Side::Chakra { db: Db::Stack { queries, .. }, .. } => Some(queries.load(Ordering::Relaxed)),
            _ => None,
        })
        .collect()
}

/// One row per contender: its median, its ratio to the first (raw) contender, its noise,
/// the client and server CPU it burned per operation, how often a thread went to sleep per operation
/// (each sleep means a wake-up hand-off between threads), and its heap allocations per
/// operation.
fn print_variants(names: &[String], measured: &[Measured], queries: impl Fn(usize) -> String) {
    let baseline = measured[0].wall.median().as_secs_f64();
    let mut table = Table::new(&[
        "contender",
        "median",
        "vs raw",
        "noise",
        "min",
        "client CPU per op",
        "server CPU per op",
        "thread sleeps per op",
        "allocations per op",
        "queries per run",
    ]);
    for (i, (name, m)) in names.iter().zip(measured).enumerate() {
        table.row(vec![
            name.clone(),
            format_duration(m.wall.median()),
            format!("{:.2}", m.wall.median().as_secs_f64() / baseline),
            format!("±{:.1}%", m.wall.spread() * 100.0),
            format_duration(m.wall.min()),
            format_duration(m.cpu.median()),
            m.server_cpu().map_or("-".to_owned(), format_duration),
            format!("{:.2}", m.median_sleeps()),
            format!("{:.1}", m.median_allocations()),
            queries(i),
        ]);
    }
    table.print();
}
