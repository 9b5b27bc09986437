//! Spans and metrics of real queries, observed with in-memory exporters and recorders.

use chakra::{telemetry, ErrorKind, Queryable};
use chakra_tests::{builder, database_url, unique};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;
use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

fn attribute(span: &opentelemetry_sdk::trace::SpanData, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
}

#[tokio::test]
async fn each_query_is_a_client_span_with_database_conventions_under_the_callers_span() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let tracer = BoxedTracer::new(Box::new(provider.tracer("chakra-test")));
    let pool = builder(&database_url(), &unique("trace")).tracer(tracer).build().await.unwrap();

    let outer_tracer = provider.tracer("app");
    let outer = outer_tracer.start("GET /users/{id}");
    let cx = opentelemetry::Context::current_with_span(outer);
    {
        let _guard = cx.clone().attach();
        let row = pool.query_one("SELECT $1::text AS secret", vec!["secret-param-value".into()]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), "secret-param-value");
        let err = pool.execute("INSERT INTO no_such_table_for_tracing VALUES (1)", vec![]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Query);
    }
    cx.span().end();

    let spans = exporter.get_finished_spans().unwrap();
    let outer = spans.iter().find(|s| s.name == "GET /users/{id}").expect("the caller's span");
    let select = spans.iter().find(|s| s.name == "SELECT").expect("a span for the SELECT");
    assert_eq!(select.span_kind, SpanKind::Client);
    assert_eq!(select.parent_span_id, outer.span_context.span_id(), "the query span is not the caller's child");
    assert_eq!(select.span_context.trace_id(), outer.span_context.trace_id());
    assert_eq!(attribute(select, "db.system.name").as_deref(), Some("postgresql"));
    assert_eq!(attribute(select, "db.query.text").as_deref(), Some("SELECT $1::text AS secret"));
    assert_eq!(attribute(select, "db.operation.name").as_deref(), Some("SELECT"));
    assert_eq!(attribute(select, "server.address").as_deref(), Some("127.0.0.1"));
    assert!(attribute(select, "server.port").is_some());
    for span in &spans {
        for kv in &span.attributes {
            assert!(!kv.value.to_string().contains("secret-param-value"), "a parameter leaked into {}", kv.key);
        }
    }

    let insert = spans.iter().find(|s| s.name == "INSERT").expect("a span for the failed INSERT");
    assert!(matches!(insert.status, Status::Error { .. }), "{:?}", insert.status);
    assert_eq!(attribute(insert, "error.type").as_deref(), Some("query"));
    assert_eq!(attribute(insert, "db.response.status_code").as_deref(), Some("42P01"));
}

#[test]
fn query_durations_counts_errors_and_pool_gauges_reach_the_metrics_recorder() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let pool = builder(&database_url(), &unique("metrics")).build().await.unwrap();
            for _ in 0..3 {
                pool.query("SELECT 1", vec![]).await.unwrap();
            }
            pool.query("SELEC 1", vec![]).await.unwrap_err();
            // Pool gauges are sampled by the pool's housekeeping task, once a second.
            tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        })
    });

    let snapshot = snapshotter.snapshot().into_vec();
    let find = |kind: MetricKind, name: &str, labels: &[(&str, &str)]| {
        snapshot
            .iter()
            .find(|(key, _, _, _)| {
                key.kind() == kind
                    && key.key().name() == name
                    && labels.iter().all(|(k, v)| key.key().labels().any(|l| l.key() == *k && l.value() == *v))
            })
            .map(|(_, _, _, value)| value)
    };
    match find(MetricKind::Counter, telemetry::QUERIES, &[("operation", "SELECT")]) {
        Some(DebugValue::Counter(n)) => assert_eq!(*n, 3),
        other => panic!("no SELECT query counter: {other:?}"),
    }
    match find(MetricKind::Counter, telemetry::QUERY_ERRORS, &[("kind", "query")]) {
        Some(DebugValue::Counter(n)) => assert_eq!(*n, 1),
        other => panic!("no error counter: {other:?}"),
    }
    match find(MetricKind::Histogram, telemetry::QUERY_DURATION, &[("operation", "SELECT"), ("outcome", "ok")]) {
        Some(DebugValue::Histogram(samples)) => {
            assert_eq!(samples.len(), 3);
            assert!(samples.iter().all(|s| s.into_inner() > 0.0 && s.into_inner() < 10.0));
        }
        other => panic!("no duration histogram: {other:?}"),
    }
    match find(MetricKind::Gauge, telemetry::POOL_CONNECTIONS, &[("state", "idle")]) {
        Some(DebugValue::Gauge(n)) => assert_eq!(n.into_inner(), 1.0, "one idle connection after the queries"),
        other => panic!("no idle-connections gauge: {other:?}"),
    }
}

/// A stream's statement runs until its last row: its span and its metrics end there, and a
/// stream dropped half-read is marked cancelled.
#[test]
fn a_streams_span_and_duration_cover_every_row() {
    use futures::TryStreamExt;
    use std::time::Duration;
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let tracer = BoxedTracer::new(Box::new(provider.tracer("chakra-test")));
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sql = "SELECT g FROM generate_series(1, 3) g";
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let pool = builder(&database_url(), &unique("trace_stream")).tracer(tracer).build().await.unwrap();
            let mut rows = pool.query_stream(sql, vec![]).await.unwrap();
            assert!(exporter.get_finished_spans().unwrap().is_empty(), "the span ended before the rows were read");
            let mut n = 0;
            while rows.try_next().await.unwrap().is_some() {
                n += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert_eq!(n, 3);
            assert_eq!(exporter.get_finished_spans().unwrap().len(), 1, "the span did not end with the last row");

            let mut rows = pool.query_stream(sql, vec![]).await.unwrap();
            rows.try_next().await.unwrap().expect("a first row");
            drop(rows);
        })
    });

    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 2);
    let (read, dropped) = (&spans[0], &spans[1]);
    let lasted = read.end_time.duration_since(read.start_time).unwrap();
    assert!(lasted >= Duration::from_millis(100), "the span ended before the last row: {lasted:?}");
    assert_eq!(attribute(read, "chakra.cancelled"), None);
    assert_eq!(attribute(dropped, "chakra.cancelled").as_deref(), Some("true"));

    let snapshot = snapshotter.snapshot().into_vec();
    let durations = |outcome: &str| {
        snapshot.iter().find_map(|(key, _, _, value)| {
            let key = key.key();
            let matches = key.name() == telemetry::QUERY_DURATION
                && key.labels().any(|l| l.key() == "outcome" && l.value() == outcome);
            match (matches, value) {
                (true, DebugValue::Histogram(samples)) => {
                    Some(samples.iter().map(|s| s.into_inner()).collect::<Vec<_>>())
                }
                _ => None,
            }
        })
    };
    let ok = durations("ok").expect("the read stream's duration");
    assert_eq!(ok.len(), 1);
    assert!(ok[0] >= 0.1, "the duration stopped before the last row: {}s", ok[0]);
    assert_eq!(durations("cancelled").map(|d| d.len()), Some(1), "the dropped stream was not recorded");
}
