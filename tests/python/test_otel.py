"""OpenTelemetry from Python to Rust: a query run inside a Python span makes a core span
that is its child, exported through ``chakra.tracing.SpanProcessor`` beside the Python
SDK's own spans (here into the SDK's in-memory exporter)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

import chakra
import chakra.tracing
from chakra import Field, Integer, Model, String
from chakra_fastapi import Lifespan, SessionDep
from conftest import DATABASE_URL, SPANS as EXPORTER, TRACER_PROVIDER, recreate

SECRET = "secret-parameter-value"

TRACER = TRACER_PROVIDER.get_tracer("test_otel")


class Gadget(Model):
    __tablename__ = "otel_gadgets"
    id = Field(Integer, primary_key=True)
    name = Field(String(100))


@pytest.fixture
def db() -> Iterator[chakra.Database]:
    # Opened after tracing was enabled (conftest, at import), so its pool records spans.
    database = chakra.Database(DATABASE_URL)
    recreate(Gadget)
    Gadget.objects.using(database).bulk_create_sync([Gadget(name="lamp"), Gadget(name="fan")])
    chakra.tracing.core_spans()
    EXPORTER.clear()
    yield database
    database.close()


def make_app(db: chakra.Database) -> FastAPI:
    app = FastAPI(lifespan=Lifespan(db))

    @app.get("/gadgets/{gadget_id}")
    async def get_gadget(gadget_id: int, session: SessionDep):  # type: ignore[no-untyped-def]
        await Gadget.objects.filter(name=SECRET).count()
        return await Gadget.objects.get(id=gadget_id)

    async def traced(scope: Any, receive: Any, send: Any) -> None:
        """The HTTP server span an instrumentation such as opentelemetry-instrumentation-asgi
        would make."""
        if scope["type"] != "http":
            return await app(scope, receive, send)
        with TRACER.start_as_current_span(f"{scope['method']} /gadgets/{{gadget_id}}", kind=SpanKind.SERVER):
            await app(scope, receive, send)

    app.state.traced = traced
    return app


def query_spans(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if (s.attributes or {}).get("db.system.name") == "postgresql"]


async def test_http_request_span_is_the_parent_of_its_query_spans(db: chakra.Database) -> None:
    app = make_app(db)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app.state.traced)
        async with httpx.AsyncClient(transport=transport, base_url="http://asgi") as client:
            response = await client.get("/gadgets/2")
    assert response.status_code == 200 and response.json()["name"] == "fan"

    spans = list(EXPORTER.get_finished_spans())
    (http,) = [s for s in spans if s.kind == SpanKind.SERVER]
    queries = query_spans(spans)
    names = [s.name for s in queries]
    assert "SELECT otel_gadgets" in names, names
    assert len([n for n in names if n == "SELECT otel_gadgets"]) == 2, names
    assert http.context is not None
    for span in queries:
        assert span.context is not None and span.parent is not None
        assert span.context.trace_id == http.context.trace_id
        assert span.parent.span_id == http.context.span_id
        assert span.kind == SpanKind.CLIENT
        attributes = dict(span.attributes or {})
        assert attributes["db.operation.name"]
        assert attributes["server.address"] and attributes["server.port"]
        for value in attributes.values():
            assert SECRET not in str(value)
    selects = [dict(s.attributes or {}) for s in queries if s.name == "SELECT otel_gadgets"]
    assert all(a["db.collection.name"] == "otel_gadgets" for a in selects)
    assert any("$1" in str(a["db.query.text"]) for a in selects)
    assert all(a.get("db.namespace") for a in selects)


async def test_query_without_an_active_span_sends_nothing(db: chakra.Database) -> None:
    assert await Gadget.objects.using(db).count() == 2
    Gadget.objects.using(db).count_sync()
    assert chakra.tracing.core_spans() == []
    assert EXPORTER.get_finished_spans() == ()


def test_sync_query_inside_a_span_is_its_child(db: chakra.Database) -> None:
    with TRACER.start_as_current_span("job") as job:
        assert Gadget.objects.using(db).filter(name="lamp").count_sync() == 1
    spans = list(EXPORTER.get_finished_spans())
    (query,) = query_spans(spans)
    assert query.parent is not None and query.parent.span_id == job.get_span_context().span_id
    assert query.context is not None and query.context.trace_id == job.get_span_context().trace_id
