"""Shared fixtures: the database (``DATABASE_URL``, default
postgresql://postgres@127.0.0.1:5432/test) and per-module tables.

Every test module declares models with table names of its own and creates/drops them
through the ``tables`` helper, so modules never share state.

``SPANS`` receives the core's statement spans (and the Python spans of
``TRACER_PROVIDER``'s tracers): statements sent while one of those spans is current.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

os.environ.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
DATABASE_URL = os.environ["DATABASE_URL"]

import chakra  # noqa: E402
import chakra.tracing  # noqa: E402

# The process's one chakra.tracing.SpanProcessor, made at import: before any pool opens,
# so that every pool records its statements.
SPANS = InMemorySpanExporter()
TRACER_PROVIDER = TracerProvider()
TRACER_PROVIDER.add_span_processor(chakra.tracing.SpanProcessor(SimpleSpanProcessor(SPANS)))
TRACER = TRACER_PROVIDER.get_tracer("conftest")


@pytest.fixture(scope="session", autouse=True)
def database() -> Iterator[chakra.Database]:
    db = chakra.configure(DATABASE_URL)
    yield db


class Sent:
    """The statements sent in a ``sent()`` block: span names (``"SELECT pf_books"``) and
    texts, in order."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.texts: list[str] = []


@contextmanager
def sent() -> Iterator[Sent]:
    """Records what the core sends inside the block (filled in when it ends)."""
    chakra.tracing.core_spans()
    SPANS.clear()
    record = Sent()
    with TRACER.start_as_current_span("statements sent"):
        yield record
    for span in SPANS.get_finished_spans():
        attributes = dict(span.attributes or {})
        if attributes.get("db.system.name") == "postgresql":
            record.names.append(span.name)
            record.texts.append(str(attributes["db.query.text"]))


def recreate(*models: type[chakra.Model]) -> None:
    """Drops and creates the tables of ``models`` (blocking; fine outside event loops)."""
    chakra.drop_all_sync(models)
    chakra.create_all_sync(models)


def backend_pids_in_transaction() -> list[dict[str, object]]:
    """Chakra's connections that sit inside a transaction or run a statement, other than
    the one asking."""
    return chakra.fetch_sync(
        "SELECT pid, state, query FROM pg_stat_activity "
        "WHERE application_name = 'chakra' AND pid <> pg_backend_pid() "
        "AND (state LIKE 'idle in transaction%' OR state = 'active')"
    )


async def settled() -> list[dict[str, object]]:
    """Waits (up to 5 s) until none of Chakra's other connections is inside a transaction
    or running a statement; returns those still busy."""
    busy = await asyncio.to_thread(backend_pids_in_transaction)
    for _ in range(100):
        if not busy:
            break
        await asyncio.sleep(0.05)
        busy = await asyncio.to_thread(backend_pids_in_transaction)
    return busy
