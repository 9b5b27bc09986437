"""Chakra: an async-first ORM whose core is Rust on Tokio.

::

    import asyncio
    from chakra import Session, Model, Field, String, Integer

    class User(Model):
        __tablename__ = "users"
        id = Field(Integer, primary_key=True)
        name = Field(String(100))

    async def main():
        async with Session() as session:
            session.add(User(name="Alice"))
            await session.commit()
            users = await User.objects.filter(name__startswith="A").all()

    asyncio.run(main())

Every awaitable has a blocking ``_sync`` twin (``User.objects.count_sync()``,
``session.commit_sync()``) for scripts and sync frameworks.
"""

from __future__ import annotations

import os as _os

from . import _core
from .aggregates import Aggregate, ArrayAgg, Avg, BoolAnd, BoolOr, Count, Max, Min, StdDev, StringAgg, Sum, Variance
from .functions import (
    Trunc,
    TruncDate,
    TruncDay,
    TruncHour,
    TruncMinute,
    TruncMonth,
    TruncQuarter,
    TruncSecond,
    TruncTime,
    TruncWeek,
    TruncYear,
)
from .database import (
    Connection,
    Database,
    configure,
    connect,
    create_all,
    create_all_sync,
    default_database,
    drop_all,
    drop_all_sync,
    execute,
    execute_sync,
    fetch,
    fetch_sync,
    fetchrow,
    fetchrow_sync,
    fetchval,
    fetchval_sync,
)
from .errors import (
    ConfigError,
    DataError,
    DoesNotExist,
    Error,
    FieldError,
    IntegrityError,
    MultipleObjectsReturned,
    OperationalError,
    PoolTimeout,
    ProgrammingError,
    QueryTimeout,
    SyncInAsyncWarning,
)
from .fields import (
    DB_DEFAULT,
    JSON,
    UUID,
    BigInteger,
    Boolean,
    Bytes,
    Date,
    DateTime,
    Field,
    Float,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    Time,
)
from .many import ManyRelated, ManyToMany
from .models import Model
from .expressions import Case, Exists, OuterRef, RawSQL, Subquery, Value, When, Window
from .query import F, Manager, Prefetch, Q, QuerySet, RawQuerySet
from .session import Session, Transaction, atomic, current_session, on_commit

__all__ = [
    "Aggregate",
    "ArrayAgg",
    "atomic",
    "Avg",
    "BigInteger",
    "BoolAnd",
    "Boolean",
    "BoolOr",
    "Bytes",
    "Case",
    "ConfigError",
    "configure",
    "connect",
    "Connection",
    "Count",
    "create_all",
    "create_all_sync",
    "current_session",
    "Database",
    "DataError",
    "Date",
    "DateTime",
    "DB_DEFAULT",
    "default_database",
    "DoesNotExist",
    "drop_all",
    "drop_all_sync",
    "Error",
    "execute",
    "execute_sync",
    "Exists",
    "F",
    "fetch",
    "fetch_sync",
    "fetchrow",
    "fetchrow_sync",
    "fetchval",
    "fetchval_sync",
    "Field",
    "FieldError",
    "Float",
    "Integer",
    "IntegrityError",
    "JSON",
    "Manager",
    "ManyRelated",
    "ManyToMany",
    "Max",
    "Min",
    "Model",
    "MultipleObjectsReturned",
    "Numeric",
    "on_commit",
    "OperationalError",
    "OuterRef",
    "PoolTimeout",
    "Prefetch",
    "ProgrammingError",
    "Q",
    "QuerySet",
    "QueryTimeout",
    "RawQuerySet",
    "RawSQL",
    "serve_metrics",
    "Session",
    "SmallInteger",
    "StdDev",
    "String",
    "StringAgg",
    "Subquery",
    "Sum",
    "SyncInAsyncWarning",
    "Text",
    "Time",
    "Transaction",
    "Trunc",
    "TruncDate",
    "TruncDay",
    "TruncHour",
    "TruncMinute",
    "TruncMonth",
    "TruncQuarter",
    "TruncSecond",
    "TruncTime",
    "TruncWeek",
    "TruncYear",
    "UUID",
    "Value",
    "Variance",
    "When",
    "Window",
]


def serve_metrics(address: str = "127.0.0.1:9464") -> None:
    """Serves Chakra's metrics — query latency histogram, query/error/retry counters by
    operation and table, pool gauges — at ``http://{address}/metrics`` in Prometheus text
    format, the names ``integrations/grafana/chakra-dashboard.json`` queries. Call once per
    process (in each worker after a fork)."""
    _core.serve_metrics(address)

# gunicorn/uvicorn workers fork: the child gets a runtime of its own and reopens pools.
if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_core._after_fork_in_child)
