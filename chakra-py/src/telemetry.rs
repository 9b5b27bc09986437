//! OpenTelemetry across the language boundary, off until `chakra.tracing` turns it on.
//!
//! * Parent: an op started while a Python span is current runs with that span (trace id,
//!   span id, flags) as its remote parent `Context`, attached around every poll, so the
//!   trace layer's `Context::current()` at call time makes the query span its child.
//! * Export: pools opened after [`enable_tracing`] trace with a provider of their own
//!   whose exporter only queues finished spans here — Tokio threads never take the GIL.
//!   Python drains the queue ([`take_spans`]) into its SDK's span processor.
//!
//! The sampler is parent-based with roots off: a query with no Python span current makes
//! no recorded span and nothing is queued.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::context::FutureExt;
use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider,
};
use opentelemetry::{Context, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyString};

use crate::completion::BoxFuture;

/// Finished spans kept for Python at most; beyond it the oldest are dropped (a process
/// that enabled tracing but never drains must not grow without bound).
const QUEUE_LIMIT: usize = 65_536;

static ENABLED: AtomicBool = AtomicBool::new(false);
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
static QUEUE: Mutex<VecDeque<SpanData>> = Mutex::new(VecDeque::new());
/// `chakra.tracing._current_span_ids`: the current Python span as `(trace_id, span_id,
/// flags)`, or `None`.
static CURRENT_IDS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Queues finished spans for [`take_spans`].
#[derive(Debug)]
struct QueueExporter;

impl SpanExporter for QueueExporter {
    fn export(&self, batch: Vec<SpanData>) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let mut queue = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
        queue.extend(batch);
        let excess = queue.len().saturating_sub(QUEUE_LIMIT);
        queue.drain(..excess);
        std::future::ready(Ok(()))
    }
}

fn provider() -> &'static SdkTracerProvider {
    PROVIDER.get_or_init(|| {
        SdkTracerProvider::builder()
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
            .with_simple_exporter(QueueExporter)
            .build()
    })
}

/// The tracer pools opened now should use, once tracing is enabled.
pub(crate) fn tracer() -> Option<BoxedTracer> {
    ENABLED.load(Ordering::Acquire).then(|| BoxedTracer::new(Box::new(provider().tracer("chakra"))))
}

/// A context whose (remote) span is the Python span `trace_id` / `span_id`.
fn parent_context(trace_id: u128, span_id: u64, flags: u8) -> Context {
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(trace_id),
        SpanId::from(span_id),
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    ))
}

/// `future`, run with the current Python span (if tracing is on and one is current) as
/// its OpenTelemetry parent. Called where an op starts, on the awaiting task's thread.
/// Tracing never fails a query: if the Python side cannot say, the query has no parent.
pub(crate) fn with_parent(py: Python<'_>, future: BoxFuture) -> BoxFuture {
    if !ENABLED.load(Ordering::Relaxed) {
        return future;
    }
    let ids = CURRENT_IDS
        .get(py)
        .and_then(|current| current.bind(py).call0().ok())
        .and_then(|ids| ids.extract::<Option<(u128, u64, u8)>>().ok().flatten());
    match ids {
        Some((trace_id, span_id, flags)) => Box::pin(future.with_context(parent_context(trace_id, span_id, flags))),
        None => future,
    }
}

/// Turns tracing on: `current_span_ids()` returns the current Python span's
/// `(trace_id, span_id, flags)` or `None`. Pools opened from now on record spans.
#[pyfunction]
pub(crate) fn enable_tracing(py: Python<'_>, current_span_ids: Py<PyAny>) -> PyResult<()> {
    CURRENT_IDS.get_or_init(py, || current_span_ids);
    provider();
    ENABLED.store(true, Ordering::Release);
    Ok(())
}

/// One finished span for Python: `(name, trace_id, span_id, parent_span_id, flags, kind,
/// start_ns, end_ns, attributes, status, status_description)`.
type SpanTuple = (String, u128, u64, u64, u8, &'static str, u64, u64, Vec<(String, Py<PyAny>)>, &'static str, String);

/// Takes every finished span queued so far.
#[pyfunction]
pub(crate) fn take_spans(py: Python<'_>) -> PyResult<Vec<SpanTuple>> {
    let spans: Vec<SpanData> = drain();
    spans.into_iter().map(|span| span_tuple(py, span)).collect()
}

fn drain() -> Vec<SpanData> {
    QUEUE.lock().unwrap_or_else(|e| e.into_inner()).drain(..).collect()
}

fn span_tuple(py: Python<'_>, span: SpanData) -> PyResult<SpanTuple> {
    let nanos = |t: SystemTime| t.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let attributes = span
        .attributes
        .iter()
        .map(|kv| Ok((kv.key.as_str().to_owned(), attribute(py, &kv.value)?)))
        .collect::<PyResult<_>>()?;
    let (status, description) = match &span.status {
        Status::Unset => ("unset", String::new()),
        Status::Ok => ("ok", String::new()),
        Status::Error { description } => ("error", description.to_string()),
    };
    let kind = match span.span_kind {
        SpanKind::Client => "client",
        SpanKind::Server => "server",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
    };
    Ok((
        span.name.into_owned(),
        u128::from_be_bytes(span.span_context.trace_id().to_bytes()),
        u64::from_be_bytes(span.span_context.span_id().to_bytes()),
        u64::from_be_bytes(span.parent_span_id.to_bytes()),
        span.span_context.trace_flags().to_u8(),
        kind,
        nanos(span.start_time),
        nanos(span.end_time),
        attributes,
        status,
        description,
    ))
}

fn attribute(py: Python<'_>, value: &Value) -> PyResult<Py<PyAny>> {
    Ok(match value {
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any().unbind(),
        Value::I64(i) => i.into_pyobject(py)?.into_any().unbind(),
        Value::F64(f) => f.into_pyobject(py)?.into_any().unbind(),
        other => PyString::new(py, other.as_str().as_ref()).into_any().unbind(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use opentelemetry::trace::{Span, Tracer};
    use opentelemetry_sdk::trace::InMemorySpanExporter;

    #[tokio::test]
    async fn span_started_under_the_python_parent_is_its_child() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
            .with_simple_exporter(exporter.clone())
            .build();
        let tracer = provider.tracer("test");
        let (trace_id, span_id) = (0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c_u128, 0xb7ad_6b71_6920_3331_u64);

        async { tracer.start("SELECT users").end() }.with_context(parent_context(trace_id, span_id, 1)).await;
        // No parent: a root, which the sampler drops.
        async { tracer.start("SELECT users").end() }.await;

        let spans = exporter.get_finished_spans().unwrap();
        assert_eq!(spans.len(), 1, "{spans:#?}");
        assert_eq!(u128::from_be_bytes(spans[0].span_context.trace_id().to_bytes()), trace_id);
        assert_eq!(u64::from_be_bytes(spans[0].parent_span_id.to_bytes()), span_id);
        assert!(spans[0].parent_span_is_remote);
    }

    #[test]
    fn exported_spans_are_queued_up_to_the_limit() {
        let tracer = provider().tracer("test");
        let parent = parent_context(7, 9, 1);
        for _ in 0..3 {
            tracer.start_with_context("q", &parent).end();
        }
        let drained = drain();
        assert_eq!(drained.len(), 3);
        assert!(drained.iter().all(|s| s.parent_span_id == SpanId::from(9)));
        assert!(drain().is_empty());
    }
}
