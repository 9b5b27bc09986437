//! `trace`: one OpenTelemetry client span per request, following the database semantic
//! conventions (`db.system.name`, `db.query.text`, `db.operation.name`, …).
//!
//! The span's parent is the OpenTelemetry context current when the request is *called*,
//! not when it is first polled. Statements are always parameterised, so `db.query.text`
//! holds placeholders (`$1`) and parameter values never reach a span.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use chakra_service::{Error, Request, Response, Result, ServerInfo, SharedStr, StreamEnd};
use futures::ready;
use opentelemetry::global::{self, BoxedSpan, BoxedTracer};
use opentelemetry::trace::{SamplingDecision, SamplingResult, Span, SpanKind, Status, TraceState, Tracer};
use opentelemetry::KeyValue;
use pin_project::{pin_project, pinned_drop};
use tower_layer::Layer;
use tower_service::Service;

/// Set to `true` on a span whose request was dropped before it completed (the caller gave
/// up); such a span keeps status `Unset`, since giving up is not a database error.
const CANCELLED: &str = "chakra.cancelled";

/// Records every request as an OpenTelemetry span of kind `Client`.
///
/// The span is named `"{db.operation.name} {db.collection.name}"` (`SELECT users`), or just
/// the operation when the request has no table, and carries `db.system.name`,
/// `db.query.text`, `db.operation.name`, `db.collection.name`, `db.namespace`,
/// `server.address` and `server.port`. A failed request sets status `Error` with the error's message,
/// `error.type` (the [`ErrorKind`](chakra_service::ErrorKind) in snake_case, e.g.
/// `pool_timeout`) and, when the server reported one, `db.response.status_code` (the
/// SQLSTATE). A stream's span lasts until its last row (or error). A request dropped
/// before it completes, or a stream dropped before its end, ends its span with
/// `chakra.cancelled = true`.
///
/// Attributes are only built for spans that record, and with no tracer provider installed
/// (when the layer is built) no span is built at all.
#[derive(Debug, Clone)]
pub struct TraceLayer {
    /// `None` when the tracer is the API's no-op one: then no span is built at all, and
    /// no request clones an `Arc` (a shared counter two threads would pass back and forth).
    shared: Option<Arc<Shared>>,
}

#[derive(Debug)]
struct Shared {
    tracer: BoxedTracer,
    server: ServerInfo,
}

impl TraceLayer {
    /// Traces with the global tracer provider's `"chakra"` tracer.
    ///
    /// The tracer is taken from the provider installed *now*: install it (with
    /// [`opentelemetry::global::set_tracer_provider`]) before building the layer.
    pub fn new(server: ServerInfo) -> Self {
        TraceLayer::with_tracer(server, global::tracer("chakra"))
    }

    /// Traces with `tracer`, e.g. `BoxedTracer::new(Box::new(provider.tracer("chakra")))`
    /// for a provider that is not the global one.
    pub fn with_tracer(server: ServerInfo, tracer: BoxedTracer) -> Self {
        let shared = (!is_noop(&tracer)).then(|| Arc::new(Shared { tracer, server }));
        TraceLayer { shared }
    }
}

/// Whether `tracer` is the API's no-op tracer (what `global::tracer` gives while no
/// provider is installed), whose spans cost an allocation each and record nothing.
///
/// Without a parent, a no-op span has an invalid context, while a real tracer gives every
/// span valid ids, even one its sampler drops. The probe comes pre-sampled as dropped, so
/// a real tracer neither records nor exports it.
fn is_noop(tracer: &BoxedTracer) -> bool {
    let dropped =
        SamplingResult { decision: SamplingDecision::Drop, attributes: Vec::new(), trace_state: TraceState::NONE };
    let probe = tracer.span_builder("chakra.probe").with_sampling_result(dropped);
    !tracer.build_with_context(probe, &opentelemetry::Context::new()).span_context().is_valid()
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Trace<S> {
        Trace { inner, shared: self.shared.clone() }
    }
}

/// See [`TraceLayer`].
#[derive(Debug, Clone)]
pub struct Trace<S> {
    inner: S,
    shared: Option<Arc<Shared>>,
}

impl<S> Service<Request> for Trace<S>
where
    S: Service<Request, Response = Response, Error = Error>,
{
    type Response = Response;
    type Error = Error;
    type Future = TraceFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> TraceFuture<S::Future> {
        let span = self.shared.as_ref().map(|shared| shared.start(&request));
        TraceFuture { inner: self.inner.call(request), span }
    }
}

impl Shared {
    fn start(&self, request: &Request) -> BoxedSpan {
        let (tracer, labels) = (&self.tracer, &request.labels);
        // Named after the operation alone at first: the full name is formatted only for a
        // span that records.
        let builder = tracer.span_builder(labels.operation.clone()).with_kind(SpanKind::Client);
        let mut span = tracer.build_with_context(builder, &opentelemetry::Context::current());
        if !span.is_recording() {
            return span;
        }
        span.set_attributes([
            KeyValue::new("db.system.name", "postgresql"),
            KeyValue::new("db.query.text", text(&request.statement.sql)),
            KeyValue::new("db.operation.name", labels.operation.clone()),
            KeyValue::new("server.address", self.server.address.clone()),
            KeyValue::new("server.port", i64::from(self.server.port)),
        ]);
        if let Some(database) = &self.server.database {
            span.set_attribute(KeyValue::new("db.namespace", database.clone()));
        }
        if let Some(table) = &labels.table {
            span.update_name(format!("{} {table}", labels.operation));
            span.set_attribute(KeyValue::new("db.collection.name", text(table)));
        }
        span
    }
}

/// An attribute's value, copying no text.
fn text(text: &SharedStr) -> opentelemetry::Value {
    match text {
        SharedStr::Static(text) => (*text).into(),
        SharedStr::Counted(text) => text.clone().into(),
    }
}

/// Response future of [`Trace`]; ends the span when the request completes or is dropped.
#[pin_project(PinnedDrop)]
pub struct TraceFuture<F> {
    #[pin]
    inner: F,
    /// Taken when the span is ended, so it is ended exactly once.
    span: Option<BoxedSpan>,
}

impl<F> Future for TraceFuture<F>
where
    F: Future<Output = Result<Response>>,
{
    type Output = Result<Response>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = ready!(this.inner.poll(cx));
        let Some(mut span) = this.span.take() else { return Poll::Ready(output) };
        match output {
            // The statement runs until the stream's last row: so does its span.
            Ok(Response::Stream(mut rows)) => {
                rows.on_end(move |end| {
                    match end {
                        StreamEnd::Finished => {}
                        StreamEnd::Failed(error) => record_error(&mut span, error),
                        StreamEnd::Dropped => span.set_attribute(KeyValue::new(CANCELLED, true)),
                    }
                    span.end();
                });
                return Poll::Ready(Ok(Response::Stream(rows)));
            }
            Err(ref error) => record_error(&mut span, error),
            Ok(_) => {}
        }
        span.end();
        Poll::Ready(output)
    }
}

#[pinned_drop]
impl<F> PinnedDrop for TraceFuture<F> {
    fn drop(self: Pin<&mut Self>) {
        if let Some(mut span) = self.project().span.take() {
            span.set_attribute(KeyValue::new(CANCELLED, true));
            span.end();
        }
    }
}

fn record_error(span: &mut BoxedSpan, error: &Error) {
    if !span.is_recording() {
        return;
    }
    span.set_attribute(KeyValue::new("error.type", error.kind().as_str()));
    if let Some(code) = error.code() {
        span.set_attribute(KeyValue::new("db.response.status_code", code.code().to_owned()));
    }
    span.set_status(Status::error(error.message().to_owned()));
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::future::{pending, ready, Ready};

    use chakra_service::{ErrorKind, Labels, Mode, Statement, Value};
    use opentelemetry::trace::{SpanId, TraceContextExt, TracerProvider};
    use opentelemetry::Value as AttributeValue;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
    use tower::util::ServiceFn;
    use tower::{service_fn, ServiceExt};

    const SECRET: &str = "secret-param-value";

    fn select_user() -> Request {
        Request::new(Statement::new("SELECT id FROM users WHERE name = $1", vec![Value::from(SECRET)]), Mode::All)
            .labels(Labels::new("SELECT", Some("users".into())))
    }

    fn server() -> ServerInfo {
        ServerInfo { address: "db.internal".into(), port: 6432, database: Some("app".into()) }
    }

    /// A provider private to one test, exporting each span as it ends.
    fn provider() -> (SdkTracerProvider, InMemorySpanExporter) {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        (provider, exporter)
    }

    fn layer(provider: &SdkTracerProvider) -> TraceLayer {
        TraceLayer::with_tracer(server(), BoxedTracer::new(Box::new(provider.tracer("test"))))
    }

    fn only_span(exporter: &InMemorySpanExporter) -> SpanData {
        let mut spans = exporter.get_finished_spans().unwrap();
        assert_eq!(spans.len(), 1, "spans: {spans:#?}");
        spans.pop().unwrap()
    }

    fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a AttributeValue> {
        span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| &kv.value)
    }

    async fn affected(_: Request) -> Result<Response> {
        Ok(Response::Affected(1))
    }

    fn failing(kind: ErrorKind, message: &'static str) -> ServiceFn<impl FnMut(Request) -> Ready<Result<Response>>> {
        service_fn(move |_: Request| ready(Err(Error::new(kind, message))))
    }

    #[test]
    fn only_the_no_op_tracer_is_skipped_and_the_probe_is_never_exported() {
        let noop = BoxedTracer::new(Box::new(opentelemetry::trace::noop::NoopTracer::new()));
        assert!(is_noop(&noop));
        let (provider, exporter) = provider();
        let sampled_out = SdkTracerProvider::builder()
            .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOff)
            .with_simple_exporter(exporter.clone())
            .build();
        for real in [&provider, &sampled_out] {
            assert!(!is_noop(&BoxedTracer::new(Box::new(real.tracer("test")))));
        }
        assert!(exporter.get_finished_spans().unwrap().is_empty(), "the probe was exported");
    }

    #[tokio::test]
    async fn span_follows_database_semantic_conventions() {
        let (provider, exporter) = provider();
        layer(&provider).layer(service_fn(affected)).oneshot(select_user()).await.unwrap();

        let span = only_span(&exporter);
        assert_eq!(span.name, "SELECT users");
        assert_eq!(span.span_kind, SpanKind::Client);
        assert_eq!(span.status, Status::Unset);
        assert_eq!(attribute(&span, "db.system.name"), Some(&"postgresql".into()));
        assert_eq!(attribute(&span, "db.query.text"), Some(&"SELECT id FROM users WHERE name = $1".into()));
        assert_eq!(attribute(&span, "db.operation.name"), Some(&"SELECT".into()));
        assert_eq!(attribute(&span, "db.collection.name"), Some(&"users".into()));
        assert_eq!(attribute(&span, "server.address"), Some(&"db.internal".into()));
        assert_eq!(attribute(&span, "db.namespace"), Some(&"app".into()));
        assert_eq!(attribute(&span, "server.port"), Some(&AttributeValue::I64(6432)));
        assert_eq!(attribute(&span, "error.type"), None);
        assert_eq!(attribute(&span, CANCELLED), None);
    }

    #[tokio::test]
    async fn parameter_values_never_reach_the_span() {
        let (provider, exporter) = provider();
        layer(&provider)
            .layer(failing(ErrorKind::Timeout, "statement timed out"))
            .oneshot(select_user())
            .await
            .unwrap_err();

        let span = only_span(&exporter);
        for kv in &span.attributes {
            assert!(!kv.value.as_str().contains(SECRET), "{} = {}", kv.key, kv.value);
        }
        assert!(!format!("{:?}", span.status).contains(SECRET));
        assert!(!span.name.contains(SECRET));
    }

    #[tokio::test]
    async fn span_without_table_is_named_after_the_operation() {
        let (provider, exporter) = provider();
        layer(&provider)
            .layer(service_fn(affected))
            .oneshot(Request::new("BEGIN".into(), Mode::Execute))
            .await
            .unwrap();

        let span = only_span(&exporter);
        assert_eq!(span.name, "BEGIN");
        assert_eq!(attribute(&span, "db.operation.name"), Some(&"BEGIN".into()));
        assert_eq!(attribute(&span, "db.collection.name"), None);
    }

    #[tokio::test]
    async fn failed_request_sets_error_status_and_type() {
        const MESSAGE: &str = "duplicate key value violates unique constraint \"users_name_key\"";
        let (provider, exporter) = provider();
        let svc = layer(&provider).layer(failing(ErrorKind::Integrity, MESSAGE));
        svc.oneshot(select_user()).await.unwrap_err();

        let span = only_span(&exporter);
        assert_eq!(span.status, Status::error(MESSAGE));
        assert_eq!(attribute(&span, "error.type"), Some(&"integrity".into()));
        // Only server-reported errors carry a SQLSTATE.
        assert_eq!(attribute(&span, "db.response.status_code"), None);
    }

    #[tokio::test]
    async fn pool_timeout_error_type_is_snake_case() {
        let (provider, exporter) = provider();
        let svc = layer(&provider).layer(failing(ErrorKind::PoolTimeout, "no connection within 5s"));
        svc.oneshot(select_user()).await.unwrap_err();

        assert_eq!(attribute(&only_span(&exporter), "error.type"), Some(&"pool_timeout".into()));
    }

    #[tokio::test]
    async fn span_is_a_child_of_the_context_current_at_call() {
        let (provider, exporter) = provider();
        let tracer = provider.tracer("outer");
        let outer = opentelemetry::Context::current_with_span(tracer.start("handler"));
        let outer_ids = outer.span().span_context().clone();

        let mut svc = layer(&provider).layer(service_fn(affected));
        let future = {
            let _entered = outer.clone().attach();
            svc.ready().await.unwrap().call(select_user())
        };
        future.await.unwrap();

        let span = only_span(&exporter);
        assert_eq!(span.parent_span_id, outer_ids.span_id());
        assert_eq!(span.span_context.trace_id(), outer_ids.trace_id());
    }

    #[tokio::test]
    async fn span_without_current_context_is_a_root() {
        let (provider, exporter) = provider();
        layer(&provider).layer(service_fn(affected)).oneshot(select_user()).await.unwrap();

        assert_eq!(only_span(&exporter).parent_span_id, SpanId::INVALID);
    }

    #[tokio::test]
    async fn dropped_request_ends_its_span_as_cancelled() {
        let (provider, exporter) = provider();
        let mut svc = layer(&provider).layer(service_fn(|_: Request| pending::<Result<Response>>()));
        let future = svc.ready().await.unwrap().call(select_user());
        assert!(tokio::time::timeout(std::time::Duration::from_millis(1), future).await.is_err());

        let span = only_span(&exporter);
        assert_eq!(span.name, "SELECT users");
        assert_eq!(attribute(&span, CANCELLED), Some(&true.into()));
        assert_eq!(span.status, Status::Unset);
    }

    #[tokio::test]
    async fn completed_request_ends_its_span_once() {
        let (provider, exporter) = provider();
        let mut svc = layer(&provider).layer(service_fn(affected));
        let mut future = Box::pin(svc.ready().await.unwrap().call(select_user()));
        (&mut future).await.unwrap();
        drop(future);

        assert_eq!(attribute(&only_span(&exporter), CANCELLED), None);
    }

    #[test]
    fn future_is_send_when_the_inner_future_is() {
        fn assert_send<T: Send>(_: &T) {}
        let (provider, _exporter) = provider();
        let mut svc = layer(&provider).layer(service_fn(affected));
        assert_send(&svc.call(select_user()));
    }
}
