"""OpenTelemetry for Chakra's queries, from Python to the Rust core and back.

The core records every statement as an OpenTelemetry ``Client`` span following the
database semantic conventions (``db.system.name``, ``db.query.text`` with ``$1``
placeholders and never parameter values, ``db.operation.name``, ``db.collection.name``,
``db.namespace``, ``server.address``, ``server.port``). Wrap the span processor your
tracer provider uses in :class:`SpanProcessor` and those spans join your traces::

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    import chakra.tracing

    provider = TracerProvider()
    provider.add_span_processor(chakra.tracing.SpanProcessor(BatchSpanProcessor(exporter)))
    trace.set_tracer_provider(provider)

A query awaited (or run ``_sync``) while a Python span is current becomes that span's
child: same trace id, parent = the Python span. With no span current, the core records
nothing (its sampler is parent-based with roots off) and sends nothing to Python.

How the spans travel: the core's exporter only queues finished spans in Rust (Tokio
threads never take the GIL); the queue is drained into the wrapped processor whenever a
Python span ends, and on ``force_flush()`` / ``shutdown()``. Pools opened before the
first :class:`SpanProcessor` was made keep tracing off: create it before the first query,
or ``database.close()`` to have the pool reopened with tracing. One ``SpanProcessor`` per
process: the queue is drained by whichever one runs.

Needs ``opentelemetry-sdk`` (``opentelemetry-api`` alone propagates nothing).
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import SpanProcessor as _SdkSpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from . import _core

__all__ = ["SpanProcessor", "core_spans"]

_SCOPE = InstrumentationScope("chakra")
_KINDS = {
    "client": SpanKind.CLIENT,
    "server": SpanKind.SERVER,
    "producer": SpanKind.PRODUCER,
    "consumer": SpanKind.CONSUMER,
    "internal": SpanKind.INTERNAL,
}
_STATUS = {"unset": StatusCode.UNSET, "ok": StatusCode.OK, "error": StatusCode.ERROR}


def _current_span_ids() -> tuple[int, int, int] | None:
    """The current Python span as ``(trace_id, span_id, flags)``, or ``None``; called by
    the core where an operation starts."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return context.trace_id, context.span_id, int(context.trace_flags)


def core_spans() -> list[ReadableSpan]:
    """Takes the core's finished spans (those not handed to a processor yet)."""
    spans = []
    for (name, trace_id, span_id, parent_id, flags, kind, start, end, attributes, status, description) in (
        _core.take_spans()
    ):
        own = SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(flags))
        parent = (
            SpanContext(trace_id, parent_id, is_remote=True, trace_flags=TraceFlags(flags)) if parent_id else None
        )
        spans.append(
            ReadableSpan(
                name,
                context=own,
                parent=parent,
                attributes=dict(attributes),
                kind=_KINDS.get(kind, SpanKind.CLIENT),
                status=Status(_STATUS.get(status, StatusCode.UNSET), description or None),
                start_time=start,
                end_time=end,
                instrumentation_scope=_SCOPE,
            )
        )
    return spans


class SpanProcessor(_SdkSpanProcessor):
    """Wraps ``delegate`` (the processor your provider would use) so it also receives the
    core's query spans; making one turns the core's tracing on."""

    def __init__(self, delegate: _SdkSpanProcessor) -> None:
        self._delegate = delegate
        _core.enable_tracing(_current_span_ids)

    def _export_core_spans(self) -> None:
        for span in core_spans():
            self._delegate.on_end(span)

    def on_start(self, span: Any, parent_context: otel_context.Context | None = None) -> None:
        self._delegate.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        # The core's spans first: they ended before the Python span that contains them.
        self._export_core_spans()
        self._delegate.on_end(span)

    def shutdown(self) -> None:
        self._export_core_spans()
        self._delegate.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self._export_core_spans()
        return bool(self._delegate.force_flush(timeout_millis))
