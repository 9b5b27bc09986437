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

use crate::harness::{format_duration, Samples, Table};
use crate::shapes::{Contender, Db, Fanout, RawInsert, Side, Workload};
use crate::{Plan, Result, Shape};

pub type BoxService = BoxCloneSyncService<Request, Response, chakra::Error>;

/// Which of the built-in layers a hand-built stack has (acquire and executor always).
#[derive(Debug, Clone, Copy, Default)]
struct Layers {
    batch: bool,
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
        .option_layer(layers.batch.then(|| BatchLayer::new(DEFAULT_MAX_BATCH)))
        .layer(MapRequestLayer::new(move |request: Request| {
            queries.fetch_add(1, Ordering::Relaxed);
            request
        }))
        .layer(AcquireLayer::new(connections.clone()))
        .service(Executor);
    BoxCloneSyncService::new(service)
}

/// Builds the contenders, runs the diagnostic shapes and prints one table per shape.
pub async fn run(workload: &Workload, raw: Contender, url: &str, plan: &Plan) -> Result<()> {
    let mut config = Config::default();
    config.database.url = Some(url.to_owned());
    config.pool.max_connections = 10;
    config.pool.min_connections = 10;
    let connections = ConnectionPool::open(config).await?;

    let mut contenders = vec![raw];
    let default_pool = chakra::Pool::builder().url(url).max_connections(10).min_connections(10).build().await?;
    contenders.push(Contender { name: "Pool (default stack)".into(), side: Side::Chakra { db: Db::Pool(default_pool.clone()), batchable: true } });
    contenders.push(Contender {
        name: "Pool (default stack), lookups without PointLookup".into(),
        side: Side::Chakra { db: Db::Pool(default_pool), batchable: false },
    });
    let no_timeout = chakra::Pool::builder().url(url).max_connections(10).min_connections(10).query_timeout(Duration::ZERO).build().await?;
    contenders.push(Contender { name: "Pool, query_timeout(0)".into(), side: Side::Chakra { db: Db::Pool(no_timeout), batchable: true } });
    let steps = [
        ("acquire → executor", Layers::default()),
        ("+ batch", Layers { batch: true, ..Layers::default() }),
        ("+ retry", Layers { batch: true, retry: true, ..Layers::default() }),
        ("+ timeout", Layers { batch: true, retry: true, timeout: true, ..Layers::default() }),
        ("+ metrics", Layers { batch: true, retry: true, timeout: true, metrics: true, ..Layers::default() }),
        ("+ trace (= full stack)", Layers { batch: true, retry: true, timeout: true, metrics: true, trace: true }),
    ];
    for (name, layers) in steps {
        let queries = Arc::new(AtomicU64::new(0));
        let db = Db::Stack { service: stack(&connections, layers, queries.clone()), queries };
        contenders.push(Contender { name: format!("hand-built: {name}"), side: Side::Chakra { db, batchable: true } });
    }

    let shapes = [
        Shape::SequentialGet,
        Shape::ConcurrentGet(Fanout::Tasks),
        Shape::ConcurrentGet(Fanout::JoinAll),
    ];
    for shape in shapes.into_iter().filter(|s| plan.selects(*s)) {
        let (warmup, rounds) = plan.rounds(shape);
        println!("\n{} — {warmup} warm-up + {rounds} rounds, order rotating", shape.title());
        let before = query_counts(&contenders);
        let samples = crate::harness::compare(&contenders, warmup, rounds, |c| shape.run(workload, &c.side)).await?;
        let after = query_counts(&contenders);
        let runs = (warmup + rounds) as f64;
        let names: Vec<String> = contenders.iter().map(|c| c.name.clone()).collect();
        print_variants(&names, &samples, |i| match (shape, before[i], after[i]) {
            (Shape::ConcurrentGet(_), Some(b), Some(a)) => format!("{:.1}", (a - b) as f64 / runs),
            _ => String::new(),
        });
    }

    // Bulk insert, split three ways: how much of Chakra's ratio is UNNEST itself (against
    // COPY), and how much is the stack (against the same UNNEST on a raw client)?
    if plan.selects(Shape::BulkInsert) {
        let (warmup, rounds) = plan.rounds(Shape::BulkInsert);
        println!("\n{} — {warmup} warm-up + {rounds} rounds, order rotating", Shape::BulkInsert.title());
        let raw = contenders[0].side.clone();
        let variants = [
            ("raw tokio-postgres, COPY BINARY", raw.clone(), RawInsert::Copy),
            ("raw tokio-postgres, INSERT … UNNEST", raw, RawInsert::Unnest),
            ("Pool (default stack), INSERT … UNNEST", contenders[1].side.clone(), RawInsert::Copy),
        ];
        let samples = crate::harness::compare(&variants, warmup, rounds, |(_, side, method)| {
            crate::shapes::bulk_insert(workload, side, *method)
        })
        .await?;
        let names: Vec<String> = variants.iter().map(|(name, ..)| name.to_string()).collect();
        print_variants(&names, &samples, |_| String::new());
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

/// One row per contender: its median, its ratio to the first (raw) contender, its noise.
fn print_variants(names: &[String], samples: &[Samples], queries: impl Fn(usize) -> String) {
    let baseline = samples[0].median().as_secs_f64();
    let mut table = Table::new(&["contender", "median", "vs raw", "noise", "queries per run"]);
    for (i, (name, s)) in names.iter().zip(samples).enumerate() {
        table.row(vec![
            name.clone(),
            format_duration(s.median()),
            format!("{:.2}", s.median().as_secs_f64() / baseline),
            format!("±{:.1}%", s.spread() * 100.0),
            queries(i),
        ]);
    }
    table.print();
}
