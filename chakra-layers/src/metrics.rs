//! `metrics`: how long requests take, how many run and how many fail, recorded through the
//! [`metrics`] facade under the names in [`chakra_service::telemetry`].
//!
//! Everything is recorded once, when the request completes — for a stream, when its last
//! row has been read — so a request's duration, count and failure always agree. A request
//! dropped before it completes (the caller gave up) is still counted and timed, with
//! `outcome = "cancelled"`: otherwise the statements callers abandon, often the slowest
//! ones, would vanish from the histogram.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use chakra_service::telemetry::{QUERIES, QUERY_DURATION, QUERY_ERRORS};
use chakra_service::{Error, ErrorKind, Labels, Request, Response, Result, SharedStr, StreamEnd};
use foldhash::HashMap;
use futures::ready;
use metrics::{Key, Label, Level, Metadata, SharedString};
use pin_project::{pin_project, pinned_drop};
use tower_layer::Layer;
use tower_service::Service;

/// Records [`QUERY_DURATION`], [`QUERIES`] and [`QUERY_ERRORS`] for every request, labelled
/// with the request's [`Labels`].
///
/// `QUERY_DURATION` (seconds) is labelled `operation`, `table` (empty when the request has
/// none) and `outcome` = `ok` | `error` | `cancelled`; `QUERIES` is labelled `operation` and
/// `table`; `QUERY_ERRORS` adds `kind`, the [`ErrorKind`] in snake_case (`pool_timeout`, …).
/// Keys are built once per label set, so with no recorder installed the cost is a lookup
/// and a clock read per request.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsLayer {
    _private: (),
}

impl MetricsLayer {
    /// Records to whichever recorder is installed when each request completes.
    pub fn new() -> Self {
        MetricsLayer { _private: () }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Metrics<S> {
        Metrics { inner }
    }
}

/// See [`MetricsLayer`].
#[derive(Debug, Clone)]
pub struct Metrics<S> {
    inner: S,
}

impl<S> Service<Request> for Metrics<S>
where
    S: Service<Request, Response = Response, Error = Error>,
{
    type Response = Response;
    type Error = Error;
    type Future = MetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> MetricsFuture<S::Future> {
        let start = Instant::now();
        let labels = QueryLabels::new(&request.labels);
        MetricsFuture { inner: self.inner.call(request), start, labels: Some(labels) }
    }
}

/// Response future of [`Metrics`].
#[pin_project(PinnedDrop)]
pub struct MetricsFuture<F> {
    #[pin]
    inner: F,
    start: Instant,
    /// Taken when the request is recorded, so it is recorded exactly once.
    labels: Option<QueryLabels>,
}

impl<F> Future for MetricsFuture<F>
where
    F: Future<Output = Result<Response>>,
{
    type Output = Result<Response>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = ready!(this.inner.poll(cx));
        let Some(labels) = this.labels.take() else { return Poll::Ready(output) };
        match output {
            // The statement runs until the stream's last row: time it until then.
            Ok(Response::Stream(mut rows)) => {
                let start = *this.start;
                rows.on_end(move |end| {
                    let outcome = match end {
                        StreamEnd::Finished => Outcome::Ok,
                        StreamEnd::Failed(error) => Outcome::Error(error.kind()),
                        StreamEnd::Dropped => Outcome::Cancelled,
                    };
                    labels.record(&start, outcome);
                });
                Poll::Ready(Ok(Response::Stream(rows)))
            }
            output => {
                labels.record(this.start, Outcome::of(&output));
                Poll::Ready(output)
            }
        }
    }
}

#[pinned_drop]
impl<F> PinnedDrop for MetricsFuture<F> {
    fn drop(self: Pin<&mut Self>) {
        let this = self.project();
        if let Some(labels) = this.labels.take() {
            labels.record(this.start, Outcome::Cancelled);
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Ok,
    Error(ErrorKind),
    /// The response future was dropped before it completed.
    Cancelled,
}

impl Outcome {
    fn of(output: &Result<Response>) -> Outcome {
        match output {
            Ok(_) => Outcome::Ok,
            Err(error) => Outcome::Error(error.kind()),
        }
    }

    fn index(self) -> usize {
        match self {
            Outcome::Ok => 0,
            Outcome::Error(_) => 1,
            Outcome::Cancelled => 2,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error(_) => "error",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// A request's metric keys, looked up once at call time. A [`Key`] hashes its name and
/// labels when it is made; building three per request showed up as a tenth of a pooled
/// `get`'s own cost, so each label set's keys are built once and kept for the life of
/// the process, as interned strings are. A request then refers to them without touching
/// a reference count, a cache line every thread would otherwise pass back and forth.
/// Past [`MAX_LABEL_SETS`] label sets, each request builds keys of its own.
pub(crate) enum QueryLabels {
    Interned(&'static LabelKeys),
    Own(Box<LabelKeys>),
}

impl std::ops::Deref for QueryLabels {
    type Target = LabelKeys;

    fn deref(&self) -> &LabelKeys {
        match self {
            QueryLabels::Interned(keys) => keys,
            QueryLabels::Own(keys) => keys,
        }
    }
}

pub(crate) struct LabelKeys {
    operation: SharedString,
    table: SharedString,
    queries: Key,
    /// [`QUERY_DURATION`] by outcome, in [`Outcome::index`] order.
    durations: [Key; 3],
}

/// The key `counter!(name, label => value, …)` builds. (Named by kind, like the next one,
/// so that each metric's kind and labels read at the call, as with the macros; the Grafana
/// dashboard's test checks its queries against these calls.)
fn counter_key<const N: usize>(name: &'static str, labels: [(&'static str, SharedString); N]) -> Key {
    Key::from_parts(name, labels.map(|(key, value)| Label::new(key, value)).to_vec())
}

/// The key `histogram!(name, label => value, …)` builds.
fn histogram_key<const N: usize>(name: &'static str, labels: [(&'static str, SharedString); N]) -> Key {
    counter_key(name, labels)
}

/// Label sets kept; past this many, keys are built per request instead. (An application
/// has a label set per table and operation: a few hundred bytes each, kept for good.)
const MAX_LABEL_SETS: usize = 1024;

static LABEL_SETS: LazyLock<Mutex<HashMap<Labels, &'static LabelKeys>>> = LazyLock::new(Mutex::default);

thread_local! {
    static LAST_LABEL_SET: RefCell<Option<(Labels, &'static LabelKeys)>> = const { RefCell::new(None) };
}

static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

impl QueryLabels {
    pub(crate) fn new(labels: &Labels) -> Self {
        // Each thread remembers the last label set it saw: a run of requests of one kind
        // (the common case) then takes no lock shared with other threads.
        LAST_LABEL_SET.with_borrow_mut(|last| match last {
            Some((seen, keys)) if seen == labels => QueryLabels::Interned(keys),
            _ => match QueryLabels::interned(labels) {
                Some(keys) => {
                    *last = Some((labels.clone(), keys));
                    QueryLabels::Interned(keys)
                }
                None => QueryLabels::Own(Box::new(LabelKeys::build(labels))),
            },
        })
    }

    /// The label set's kept keys, kept now if there is room.
    fn interned(labels: &Labels) -> Option<&'static LabelKeys> {
        let mut sets = LABEL_SETS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(keys) = sets.get(labels) {
            return Some(keys);
        }
        if sets.len() >= MAX_LABEL_SETS {
            return None;
        }
        let keys: &'static LabelKeys = Box::leak(Box::new(LabelKeys::build(labels)));
        sets.insert(labels.clone(), keys);
        Some(keys)
    }

    pub(crate) fn operation(&self) -> SharedString {
        self.operation.clone()
    }

    pub(crate) fn table(&self) -> SharedString {
        self.table.clone()
    }

    fn record(self, start: &Instant, outcome: Outcome) {
        let keys = &*self;
        let seconds = start.elapsed().as_secs_f64();
        metrics::with_recorder(|recorder| {
            recorder.register_counter(&keys.queries, &METADATA).increment(1);
            if let Outcome::Error(kind) = outcome {
                let (operation, table, kind) = (keys.operation.clone(), keys.table.clone(), kind.as_str().into());
                let errors = counter_key(QUERY_ERRORS, [("operation", operation), ("table", table), ("kind", kind)]);
                recorder.register_counter(&errors, &METADATA).increment(1);
            }
            recorder.register_histogram(&keys.durations[outcome.index()], &METADATA).record(seconds);
        });
    }
}

impl LabelKeys {
    fn build(labels: &Labels) -> Self {
        let operation = SharedString::from(labels.operation.clone());
        let table = match &labels.table {
            None => SharedString::const_str(""),
            Some(SharedStr::Static(table)) => SharedString::const_str(table),
            Some(SharedStr::Counted(table)) => SharedString::from(table.clone()),
        };
        let (op, tb) = (|| operation.clone(), || table.clone());
        let queries = counter_key(QUERIES, [("operation", op()), ("table", tb())]);
        let durations = [Outcome::Ok, Outcome::Error(ErrorKind::Query), Outcome::Cancelled].map(|outcome| {
            let outcome = SharedString::const_str(outcome.as_str());
            histogram_key(QUERY_DURATION, [("operation", op()), ("table", tb()), ("outcome", outcome)])
        });
        LabelKeys { queries, durations, operation, table }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::future::pending;

    use chakra_service::{Mode, Statement, Value};
    use metrics::Key;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
    use metrics_util::MetricKind;
    use tower::{service_fn, ServiceExt};

    fn select_user() -> Request {
        Request::new(
            Statement::new("SELECT id FROM users WHERE name = $1", vec![Value::from("secret-param-value")]),
            Mode::All,
        )
        .labels(Labels::new("SELECT", Some("users".into())))
    }

    async fn affected(_: Request) -> Result<Response> {
        Ok(Response::Affected(1))
    }

    /// Runs `f` on a current-thread runtime with a fresh recorder, returning what it recorded.
    fn recorded<F: Future>(f: impl FnOnce() -> F) -> Vec<(MetricKind, Key, DebugValue)> {
        let recorder = DebuggingRecorder::new();
        let snapshotter: Snapshotter = recorder.snapshotter();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        metrics::with_local_recorder(&recorder, || runtime.block_on(f()));
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let (kind, key) = key.into_parts();
                (kind, key, value)
            })
            .collect()
    }

    fn find<'a>(snapshot: &'a [(MetricKind, Key, DebugValue)], name: &str) -> Vec<&'a (MetricKind, Key, DebugValue)> {
        snapshot.iter().filter(|(_, key, _)| key.name() == name).collect()
    }

    fn labels(key: &Key) -> Vec<(&str, &str)> {
        let mut labels: Vec<_> = key.labels().map(|l| (l.key(), l.value())).collect();
        labels.sort();
        labels
    }

    #[test]
    fn successful_query_is_counted_and_timed_as_ok() {
        let snapshot = recorded(|| async {
            let svc = MetricsLayer::new().layer(service_fn(affected));
            svc.oneshot(select_user()).await.unwrap();
        });

        let queries = find(&snapshot, QUERIES);
        assert_eq!(queries.len(), 1);
        let (kind, key, value) = queries[0];
        assert_eq!(*kind, MetricKind::Counter);
        assert_eq!(labels(key), [("operation", "SELECT"), ("table", "users")]);
        assert_eq!(*value, DebugValue::Counter(1));

        let durations = find(&snapshot, QUERY_DURATION);
        assert_eq!(durations.len(), 1);
        let (kind, key, value) = durations[0];
        assert_eq!(*kind, MetricKind::Histogram);
        assert_eq!(labels(key), [("operation", "SELECT"), ("outcome", "ok"), ("table", "users")]);
        let DebugValue::Histogram(samples) = value else { panic!("not a histogram: {value:?}") };
        assert_eq!(samples.len(), 1);
        assert!(samples[0].0 >= 0.0 && samples[0].0 < 5.0, "duration {} s", samples[0].0);

        assert!(find(&snapshot, QUERY_ERRORS).is_empty());
    }

    #[test]
    fn duration_covers_the_whole_request_in_seconds() {
        let snapshot = recorded(|| async {
            let svc = MetricsLayer::new().layer(service_fn(|_: Request| async {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                Ok::<_, Error>(Response::Affected(1))
            }));
            svc.oneshot(select_user()).await.unwrap();
        });

        let durations = find(&snapshot, QUERY_DURATION);
        let DebugValue::Histogram(samples) = &durations[0].2 else { panic!("not a histogram") };
        assert!(samples[0].0 >= 0.020 && samples[0].0 < 5.0, "duration {} s", samples[0].0);
    }

    #[test]
    fn failed_query_is_counted_as_an_error_of_its_kind() {
        let snapshot = recorded(|| async {
            let svc = MetricsLayer::new().layer(service_fn(|_: Request| async {
                Err::<Response, _>(Error::new(ErrorKind::Integrity, "duplicate key value violates unique constraint"))
            }));
            svc.oneshot(select_user()).await.unwrap_err();
        });

        let queries = find(&snapshot, QUERIES);
        assert_eq!(queries.len(), 1);
        assert_eq!(queries[0].2, DebugValue::Counter(1));

        let errors = find(&snapshot, QUERY_ERRORS);
        assert_eq!(errors.len(), 1);
        let (kind, key, value) = errors[0];
        assert_eq!(*kind, MetricKind::Counter);
        assert_eq!(labels(key), [("kind", "integrity"), ("operation", "SELECT"), ("table", "users")]);
        assert_eq!(*value, DebugValue::Counter(1));

        let durations = find(&snapshot, QUERY_DURATION);
        assert_eq!(durations.len(), 1);
        assert_eq!(labels(&durations[0].1), [("operation", "SELECT"), ("outcome", "error"), ("table", "users")]);
        let DebugValue::Histogram(samples) = &durations[0].2 else { panic!("not a histogram") };
        assert_eq!(samples.len(), 1);
    }

    #[test]
    fn ok_and_error_requests_are_separate_series() {
        let snapshot = recorded(|| async {
            let mut calls = 0;
            let mut svc = MetricsLayer::new().layer(service_fn(move |_: Request| {
                calls += 1;
                let fail = calls % 2 == 0;
                async move {
                    if fail {
                        Err(Error::new(ErrorKind::Timeout, "statement exceeded its 1s timeout"))
                    } else {
                        Ok(Response::Affected(1))
                    }
                }
            }));
            for _ in 0..3 {
                let _ = svc.ready().await.unwrap().call(select_user()).await;
            }
        });

        assert_eq!(find(&snapshot, QUERIES)[0].2, DebugValue::Counter(3));
        let errors = find(&snapshot, QUERY_ERRORS);
        assert_eq!(labels(&errors[0].1), [("kind", "timeout"), ("operation", "SELECT"), ("table", "users")]);
        assert_eq!(errors[0].2, DebugValue::Counter(1));
        let mut samples: Vec<(&str, usize)> = find(&snapshot, QUERY_DURATION)
            .into_iter()
            .map(|(_, key, value)| {
                let outcome = key.labels().find(|l| l.key() == "outcome").unwrap().value();
                let DebugValue::Histogram(samples) = value else { panic!("not a histogram") };
                (outcome, samples.len())
            })
            .collect();
        samples.sort();
        assert_eq!(samples, [("error", 1), ("ok", 2)]);
    }

    #[test]
    fn request_without_table_has_an_empty_table_label() {
        let snapshot = recorded(|| async {
            let svc = MetricsLayer::new().layer(service_fn(affected));
            svc.oneshot(Request::new("BEGIN".into(), Mode::Execute)).await.unwrap();
        });

        assert_eq!(labels(&find(&snapshot, QUERIES)[0].1), [("operation", "BEGIN"), ("table", "")]);
    }

    #[test]
    fn dropped_request_is_recorded_as_cancelled() {
        let snapshot = recorded(|| async {
            let mut svc = MetricsLayer::new().layer(service_fn(|_: Request| pending::<Result<Response>>()));
            let future = svc.ready().await.unwrap().call(select_user());
            let timed_out = tokio::time::timeout(std::time::Duration::from_millis(1), future).await;
            assert!(timed_out.is_err());
        });

        assert_eq!(find(&snapshot, QUERIES)[0].2, DebugValue::Counter(1));
        assert!(find(&snapshot, QUERY_ERRORS).is_empty());
        let durations = find(&snapshot, QUERY_DURATION);
        assert_eq!(durations.len(), 1);
        assert_eq!(labels(&durations[0].1), [("operation", "SELECT"), ("outcome", "cancelled"), ("table", "users")]);
    }

    #[test]
    fn completed_request_is_recorded_once() {
        let snapshot = recorded(|| async {
            let mut svc = MetricsLayer::new().layer(service_fn(affected));
            let mut future = Box::pin(svc.ready().await.unwrap().call(select_user()));
            (&mut future).await.unwrap();
            drop(future);
        });

        assert_eq!(find(&snapshot, QUERIES)[0].2, DebugValue::Counter(1));
        assert_eq!(find(&snapshot, QUERY_DURATION).len(), 1);
    }

    #[test]
    fn error_kinds_are_named_in_snake_case() {
        assert_eq!(ErrorKind::as_str(ErrorKind::PoolTimeout), "pool_timeout");
        assert_eq!(ErrorKind::as_str(ErrorKind::MultipleFound), "multiple_found");
        assert_eq!(ErrorKind::as_str(ErrorKind::NotFound), "not_found");
        assert_eq!(ErrorKind::as_str(ErrorKind::Integrity), "integrity");
    }

    #[test]
    fn future_is_send_when_the_inner_future_is() {
        fn assert_send<T: Send>(_: &T) {}
        let mut svc = MetricsLayer::new().layer(service_fn(affected));
        assert_send(&svc.call(select_user()));
    }
}
