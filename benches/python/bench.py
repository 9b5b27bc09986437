"""Chakra's Python API against asyncpg (raw), psqlpy, SQLAlchemy 2 (async ORM) and Tortoise ORM.

    .venv/bin/python benches/python/bench.py            # the full run (a few minutes)
    .venv/bin/python benches/python/bench.py --quick    # fewer rounds, a smoke test

One process, one event loop (plain asyncio, no uvloop), every library with a pool of 10
connections to the same server (``DATABASE_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``). The script drops and recreates its own
tables, ``bench_py_users`` (100k rows) and ``bench_py_insert``, and drops them at the end.

Shapes (issue 4, "Performance targets"):

* fetch    -- 10k rows (``id <= 10000``) into each library's own row objects
* get      -- 2,000 sequential gets by primary key
* gather   -- 2,000 concurrent gets by primary key (``asyncio.gather``)
* insert   -- bulk insert of 10k rows
* stream   -- 100k rows through each library's streaming API, one object at a time

Every answer is checked (row counts, ids, field values), outside the timed part: a fast
wrong answer stops the bench instead of winning it. Every round runs each library once;
the order rotates by one every round and is reversed every other cycle. The table shows
medians over the rounds and their ratio to asyncpg's.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import importlib.metadata
import os
import platform
import random
import statistics
import sys
import time
import traceback
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import psqlpy
import sqlalchemy as sa
from sqlalchemy import orm as sa_orm
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from tortoise import Tortoise
from tortoise import fields as tfields
from tortoise import models as tmodels

import chakra



def plain_transport(url: str) -> str:
    """``url`` with ``sslmode=disable`` unless it names an sslmode: every library must
    use the same transport, and asyncpg (so SQLAlchemy and Tortoise too) defaults to
    ``prefer``, which is TLS wherever the server offers it (Debian's does)."""
    if "sslmode=" in url:
        return url
    return url + ("&" if "?" in url else "?") + "sslmode=disable"


DATABASE_URL = plain_transport(os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
USERS = "bench_py_users"
INSERT = "bench_py_insert"
N_ROWS = 100_000
FETCH_ROWS = 10_000
N_GETS = 2_000
INSERT_ROWS = 10_000
STREAM_CHUNK = 500  # rows per round trip for every streaming API (Chakra's stream() uses 500)
POOL = 10
BASE_TIME = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)

COLUMNS = "id, name, email, score, created"
SQL_FETCH = f"SELECT {COLUMNS} FROM {USERS} WHERE id <= $1"
SQL_GET = f"SELECT {COLUMNS} FROM {USERS} WHERE id = $1"
SQL_STREAM = f"SELECT {COLUMNS} FROM {USERS}"
SQL_INSERT = f"INSERT INTO {INSERT} (name, email, score, created) VALUES ($1, $2, $3, $4)"


# ---------------------------------------------------------------- the data, by formula


def name_of(i: int) -> str:
    return f"user{i}"


def email_of(i: int) -> str:
    return f"user{i}@example.com"


def score_of(i: int) -> float:
    return (i % 1000) / 4.0  # exact in binary


def created_of(i: int) -> dt.datetime:
    return BASE_TIME + dt.timedelta(seconds=i)


def check_row(i: int, name: str, email: str, score: float, created: dt.datetime) -> None:
    if (name, email, score) != (name_of(i), email_of(i), score_of(i)) or created != created_of(i):
        raise AssertionError(f"row {i} came back wrong: {(name, email, score, created)!r}")


# ---------------------------------------------------------------- the models

# Chakra
class ChakraUser(chakra.Model):
    __tablename__ = USERS
    id = chakra.Field(chakra.BigInteger, primary_key=True)
    name = chakra.Field(chakra.Text)
    email = chakra.Field(chakra.Text)
    score = chakra.Field(chakra.Float)
    created = chakra.Field(chakra.DateTime(timezone=True))


class ChakraInsert(chakra.Model):
    __tablename__ = INSERT
    id = chakra.Field(chakra.BigInteger, primary_key=True)
    name = chakra.Field(chakra.Text)
    email = chakra.Field(chakra.Text)
    score = chakra.Field(chakra.Float)
    created = chakra.Field(chakra.DateTime(timezone=True))


# SQLAlchemy 2 (declarative, typed)
class SABase(sa_orm.DeclarativeBase):
    pass


class SAUser(SABase):
    __tablename__ = USERS
    id: sa_orm.Mapped[int] = sa_orm.mapped_column(sa.BigInteger, primary_key=True)
    name: sa_orm.Mapped[str] = sa_orm.mapped_column(sa.Text)
    email: sa_orm.Mapped[str] = sa_orm.mapped_column(sa.Text)
    score: sa_orm.Mapped[float] = sa_orm.mapped_column(sa.Float)
    created: sa_orm.Mapped[dt.datetime] = sa_orm.mapped_column(sa.DateTime(timezone=True))


class SAInsert(SABase):
    __tablename__ = INSERT
    id: sa_orm.Mapped[int] = sa_orm.mapped_column(sa.BigInteger, primary_key=True)
    name: sa_orm.Mapped[str] = sa_orm.mapped_column(sa.Text)
    email: sa_orm.Mapped[str] = sa_orm.mapped_column(sa.Text)
    score: sa_orm.Mapped[float] = sa_orm.mapped_column(sa.Float)
    created: sa_orm.Mapped[dt.datetime] = sa_orm.mapped_column(sa.DateTime(timezone=True))


# Tortoise
class TortoiseUser(tmodels.Model):
    id = tfields.BigIntField(primary_key=True)
    name = tfields.TextField()
    email = tfields.TextField()
    score = tfields.FloatField()
    created = tfields.DatetimeField()

    class Meta:
        table = USERS
        app = "bench"


class TortoiseInsert(tmodels.Model):
    id = tfields.BigIntField(primary_key=True)
    name = tfields.TextField()
    email = tfields.TextField()
    score = tfields.FloatField()
    created = tfields.DatetimeField()

    class Meta:
        table = INSERT
        app = "bench"


# ---------------------------------------------------------------- set-up


async def create_tables(admin: asyncpg.Connection) -> None:
    for table in (USERS, INSERT):
        await admin.execute(f"DROP TABLE IF EXISTS {table}")
    await admin.execute(
        f"""CREATE TABLE {USERS} (
              id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL,
              score float8 NOT NULL, created timestamptz NOT NULL)"""
    )
    await admin.execute(
        f"""CREATE TABLE {INSERT} (
              id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name text NOT NULL,
              email text NOT NULL, score float8 NOT NULL, created timestamptz NOT NULL)"""
    )
    # The same formulas as name_of/email_of/score_of/created_of.
    await admin.execute(
        f"""INSERT INTO {USERS} (id, name, email, score, created)
            SELECT i, 'user' || i, 'user' || i || '@example.com', (i % 1000) / 4.0,
                   timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second'
            FROM generate_series(1, $1::bigint) AS i""",
        N_ROWS,
    )
    await admin.execute(f"VACUUM ANALYZE {USERS}")
    await admin.execute(f"ANALYZE {INSERT}")


async def drop_tables(admin: asyncpg.Connection) -> None:
    for table in (USERS, INSERT):
        await admin.execute(f"DROP TABLE IF EXISTS {table}")


def tortoise_credentials(url: str) -> dict[str, Any]:
    u = urllib.parse.urlsplit(url)
    sslmode = urllib.parse.parse_qs(u.query).get("sslmode", ["disable"])[0]
    return {
        "host": u.hostname or "127.0.0.1",
        "port": u.port or 5432,
        "user": urllib.parse.unquote(u.username or "postgres"),
        "password": urllib.parse.unquote(u.password or ""),
        "database": (u.path or "/").lstrip("/") or "postgres",
        "minsize": POOL,
        "maxsize": POOL,
        "ssl": sslmode,
    }


def sqlalchemy_url(url: str) -> str:
    # SQLAlchemy's asyncpg dialect calls the TLS setting ``ssl``.
    scheme, rest = url.split("://", 1)
    return f"postgresql+asyncpg://{rest}".replace("sslmode=", "ssl=")


async def tls_connections(admin: asyncpg.Connection) -> int:
    """How many of this database's other connections use TLS."""
    return await admin.fetchval(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)"
        " WHERE s.ssl AND a.datname = current_database() AND a.pid <> pg_backend_pid()"
    )


# ---------------------------------------------------------------- the libraries


class Side:
    """One library: a method per shape returning what the check needs."""

    name = ""
    shapes = frozenset({"fetch", "get", "gather", "insert", "stream"})
    connections = POOL

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def fetch(self) -> list[Any]:
        raise NotImplementedError

    def get_one(self, i: int) -> Awaitable[Any]:
        """One get by primary key, through the library's own API."""
        raise NotImplementedError

    async def get(self, ids: list[int]) -> tuple[list[Any], list[float]]:
        """The gets one after another: the rows and how long each took."""
        get_one, clock = self.get_one, time.perf_counter
        rows, times = [], []
        for i in ids:
            t0 = clock()
            rows.append(await get_one(i))
            times.append(clock() - t0)
        return rows, times

    async def gather(self, ids: list[int]) -> list[Any]:
        return await asyncio.gather(*(self.get_one(i) for i in ids))

    def insert_input(self) -> Any:
        """The rows to insert, in this library's own input type (made before the clock)."""
        raise NotImplementedError

    async def insert(self, rows: Any) -> None:
        raise NotImplementedError

    async def stream(self) -> tuple[int, int]:
        """(rows seen, sum of their ids)."""
        raise NotImplementedError

    # How to read a row object of this library: (id, name, email, score, created).
    @staticmethod
    def fields(row: Any) -> tuple[int, str, str, float, dt.datetime]:
        return row.id, row.name, row.email, row.score, row.created


def insert_values(i: int) -> tuple[str, str, float, dt.datetime]:
    return name_of(i), email_of(i), score_of(i), created_of(i)


async def _keep_session_state(conn: asyncpg.Connection) -> None:
    """A pool ``reset`` that sends nothing (asyncpg still rolls back an open transaction)."""


class AsyncpgSide(Side):
    """The floor: asyncpg's pool, without the reset query the stock pool sends on every
    release (``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``, one
    more round trip per checkout). Chakra's pool does not reset session state either: it
    only rolls back (or discards) a connection left dirty. ``asyncpg-stock`` is the pool
    as it comes."""

    name = "asyncpg"
    reset: Any = staticmethod(_keep_session_state)

    async def open(self) -> None:
        self.pool = await asyncpg.create_pool(DATABASE_URL, min_size=POOL, max_size=POOL, reset=self.reset)

    async def close(self) -> None:
        await self.pool.close()

    @staticmethod
    def fields(row: Any) -> tuple[int, str, str, float, dt.datetime]:
        return row["id"], row["name"], row["email"], row["score"], row["created"]

    async def fetch(self) -> list[Any]:
        return await self.pool.fetch(SQL_FETCH, FETCH_ROWS)

    def get_one(self, i: int) -> Awaitable[Any]:
        return self.pool.fetchrow(SQL_GET, i)

    def insert_input(self) -> Any:
        return [insert_values(i) for i in range(1, INSERT_ROWS + 1)]

    async def insert(self, rows: Any) -> None:
        await self.pool.executemany(SQL_INSERT, rows)

    async def stream(self) -> tuple[int, int]:
        n = total = 0
        async with self.pool.acquire() as conn, conn.transaction():
            async for row in conn.cursor(SQL_STREAM, prefetch=STREAM_CHUNK):
                n += 1
                total += row["id"]
        return n, total


class AsyncpgStockSide(AsyncpgSide):
    """asyncpg's pool with its default reset on release."""

    name = "asyncpg-stock"
    reset = None


class AsyncpgConnSide(Side):
    """Sequential gets on one connection held throughout (no pool checkout per get),
    its prepared statement cached by asyncpg: the absolute floor for that shape, and
    what DESIGN.md's per-await numbers were measured against."""

    name = "asyncpg-1conn"
    shapes = frozenset({"get"})
    connections = 1

    async def open(self) -> None:
        self.conn = await asyncpg.connect(DATABASE_URL)

    async def close(self) -> None:
        await self.conn.close()

    fields = staticmethod(AsyncpgSide.fields)

    def get_one(self, i: int) -> Awaitable[Any]:
        return self.conn.fetchrow(SQL_GET, i)


class PsqlpySide(Side):
    name = "psqlpy"

    async def open(self) -> None:
        self.pool = psqlpy.ConnectionPool(dsn=DATABASE_URL, max_db_pool_size=POOL)
        # psqlpy opens connections on demand: open all ten now.
        conns = [await self.pool.connection() for _ in range(POOL)]
        for conn in conns:
            await conn.execute("SELECT 1")
        for conn in conns:
            conn.close()

    async def close(self) -> None:
        self.pool.close()

    @staticmethod
    def fields(row: Any) -> tuple[int, str, str, float, dt.datetime]:
        return row["id"], row["name"], row["email"], row["score"], row["created"]

    async def fetch(self) -> list[Any]:
        async with self.pool.acquire() as conn:
            return (await conn.fetch(SQL_FETCH, [FETCH_ROWS])).result()

    async def get_one(self, i: int) -> Any:
        async with self.pool.acquire() as conn:
            return (await conn.fetch_row(SQL_GET, [i])).result()

    def insert_input(self) -> Any:
        return [list(insert_values(i)) for i in range(1, INSERT_ROWS + 1)]

    async def insert(self, rows: Any) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute_many(SQL_INSERT, rows)

    async def stream(self) -> tuple[int, int]:
        n = total = 0
        async with self.pool.acquire() as conn, conn.transaction():
            async with conn.cursor(SQL_STREAM, array_size=STREAM_CHUNK) as cursor:
                async for chunk in cursor:
                    for row in chunk.result():
                        n += 1
                        total += row["id"]
        return n, total


class SQLAlchemySide(Side):
    name = "sqlalchemy"

    async def open(self) -> None:
        self.engine = create_async_engine(sqlalchemy_url(DATABASE_URL), pool_size=POOL, max_overflow=0)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, class_=AsyncSession)
        conns = [await self.engine.connect() for _ in range(POOL)]
        for conn in conns:
            await conn.close()
        self.q_fetch = sa.select(SAUser).where(SAUser.id <= FETCH_ROWS)
        self.q_stream = sa.select(SAUser).execution_options(yield_per=STREAM_CHUNK)

    async def close(self) -> None:
        await self.engine.dispose()

    async def fetch(self) -> list[Any]:
        async with self.sessions() as session:
            return list((await session.execute(self.q_fetch)).scalars().all())

    async def get_one(self, i: int) -> Any:
        # A session per get (a session is one unit of work, and not for concurrent use);
        # one session for all 2,000 would answer repeated ids from its identity map.
        async with self.sessions() as session:
            return await session.get(SAUser, i)

    def insert_input(self) -> Any:
        return [
            SAInsert(name=n, email=e, score=s, created=c)
            for n, e, s, c in (insert_values(i) for i in range(1, INSERT_ROWS + 1))
        ]

    async def insert(self, rows: Any) -> None:
        async with self.sessions() as session:
            session.add_all(rows)
            await session.commit()

    async def stream(self) -> tuple[int, int]:
        n = total = 0
        async with self.sessions() as session:
            async for user in await session.stream_scalars(self.q_stream):
                n += 1
                total += user.id
        return n, total


class TortoiseSide(Side):
    name = "tortoise"

    async def open(self) -> None:
        await Tortoise.init(
            config={
                "connections": {
                    "default": {"engine": "tortoise.backends.asyncpg", "credentials": tortoise_credentials(DATABASE_URL)}
                },
                "apps": {"bench": {"models": [__name__], "default_connection": "default"}},
                "use_tz": True,
                "timezone": "UTC",
            }
        )
        await TortoiseUser.filter(id=1).first()

    async def close(self) -> None:
        await Tortoise.close_connections()

    async def fetch(self) -> list[Any]:
        return await TortoiseUser.filter(id__lte=FETCH_ROWS)

    def get_one(self, i: int) -> Awaitable[Any]:
        return TortoiseUser.get(id=i)

    def insert_input(self) -> Any:
        return [
            TortoiseInsert(name=n, email=e, score=s, created=c)
            for n, e, s, c in (insert_values(i) for i in range(1, INSERT_ROWS + 1))
        ]

    async def insert(self, rows: Any) -> None:
        await TortoiseInsert.bulk_create(rows)

    async def stream(self) -> tuple[int, int]:
        # Tortoise has no server-side cursor: `async for` over a queryset loads every row
        # first, then yields them.
        n = total = 0
        async for user in TortoiseUser.all():
            n += 1
            total += user.id
        return n, total


class ChakraSide(Side):
    name = "chakra"

    async def open(self) -> None:
        self.db = chakra.configure(url=DATABASE_URL, min_connections=POOL, max_connections=POOL)
        await ChakraUser.objects.filter(id=1).first()
        status = self.db.status()
        if status["max_size"] != POOL:
            raise AssertionError(f"chakra pool: {status}")

    async def close(self) -> None:
        self.db.close()

    async def fetch(self) -> list[Any]:
        return await ChakraUser.objects.filter(id__lte=FETCH_ROWS).all()

    def get_one(self, i: int) -> Awaitable[Any]:
        return ChakraUser.objects.get(id=i)

    def insert_input(self) -> Any:
        return [
            ChakraInsert(name=n, email=e, score=s, created=c)
            for n, e, s, c in (insert_values(i) for i in range(1, INSERT_ROWS + 1))
        ]

    async def insert(self, rows: Any) -> None:
        await ChakraInsert.objects.bulk_create(rows)

    async def stream(self) -> tuple[int, int]:
        n = total = 0
        async for user in ChakraUser.objects.all().stream():
            n += 1
            total += user.id
        return n, total


ALL_SIDES: list[type[Side]] = [AsyncpgSide, AsyncpgStockSide, AsyncpgConnSide, PsqlpySide, SQLAlchemySide, TortoiseSide, ChakraSide]


# ---------------------------------------------------------------- checks


def check_fetch(side: Side, rows: list[Any]) -> None:
    if len(rows) != FETCH_ROWS:
        raise AssertionError(f"{side.name} fetch: {len(rows)} rows, expected {FETCH_ROWS}")
    ids = set()
    for row in rows:
        i, *rest = side.fields(row)
        check_row(i, *rest)
        ids.add(i)
    if ids != set(range(1, FETCH_ROWS + 1)):
        raise AssertionError(f"{side.name} fetch: wrong ids")


def check_gets(side: Side, ids: list[int], rows: list[Any]) -> None:
    if len(rows) != len(ids):
        raise AssertionError(f"{side.name} gets: {len(rows)} answers for {len(ids)} gets")
    for i, row in zip(ids, rows):
        got, *rest = side.fields(row)
        if got != i:
            raise AssertionError(f"{side.name} gets: asked for {i}, got {got}")
        check_row(i, *rest)


def check_stream(side: Side, result: tuple[int, int]) -> None:
    expected = (N_ROWS, N_ROWS * (N_ROWS + 1) // 2)
    if result != expected:
        raise AssertionError(f"{side.name} stream: (rows, sum of ids) = {result}, expected {expected}")


async def check_insert(side: Side, admin: asyncpg.Connection, rows: Any) -> None:
    got = await admin.fetchrow(
        f"""SELECT count(*) AS n, count(DISTINCT id) AS ids, sum(length(name)) AS names,
                   sum(length(email)) AS emails, sum(score) AS scores,
                   sum(extract(epoch FROM created - timestamptz '2024-01-01 00:00:00+00'))::bigint AS secs
            FROM {INSERT}"""
    )
    r = range(1, INSERT_ROWS + 1)
    expected = (
        INSERT_ROWS,
        INSERT_ROWS,
        sum(len(name_of(i)) for i in r),
        sum(len(email_of(i)) for i in r),
        sum(score_of(i) for i in r),
        sum(r),
    )
    if tuple(got) != expected:
        raise AssertionError(f"{side.name} insert: table holds {tuple(got)}, expected {expected}")
    if side.name in ("chakra", "sqlalchemy"):
        # These ORMs hand the generated primary keys back on the objects (Tortoise's
        # bulk_create is an executemany and leaves them unset).
        ids = sorted(obj.id for obj in rows)
        if ids != list(range(1, INSERT_ROWS + 1)):
            raise AssertionError(f"{side.name} insert: primary keys not filled in on the objects")


# ---------------------------------------------------------------- timing


@dataclass
class Sample:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    build: list[float] = field(default_factory=list)
    """Bulk insert only: building the 10k input objects, just before the timed call."""
    per_get: list[float] = field(default_factory=list)
    """Sequential gets only: the median get of each round."""


SHAPES = {
    "fetch": "fetch 10k rows into objects",
    "get": "sequential get by pk (us)",
    "gather": "2,000 concurrent gets (gather)",
    "insert": "bulk insert 10k rows",
    "insert+build": "  + building the 10k inputs",
    "stream": "stream 100k rows",
}


MEASURED = ["fetch", "get", "gather", "insert", "stream"]


def order_for(round_no: int, sides: list[Side]) -> list[Side]:
    """Rotate by one every round; reverse every other cycle."""
    n = len(sides)
    k = round_no % n
    order = sides[k:] + sides[:k]
    if (round_no // n) % 2 == 1:
        order.reverse()
    return order


async def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, float, Any]:
    gc.collect()
    c0 = time.process_time()
    t0 = time.perf_counter()
    result = await fn()
    t1 = time.perf_counter()
    c1 = time.process_time()
    return t1 - t0, c1 - c0, result


async def run_shape(
    shape: str, sides: list[Side], admin: asyncpg.Connection, rounds: int, warmup: int, rng: random.Random
) -> dict[str, Sample]:
    sides = [side for side in sides if shape in side.shapes]
    samples = {side.name: Sample() for side in sides}
    for r in range(warmup + rounds):
        ids = [rng.randint(1, N_ROWS) for _ in range(N_GETS)]
        for side in order_for(r, sides):
            if shape == "insert":
                await admin.execute(f"TRUNCATE {INSERT} RESTART IDENTITY")
                gc.collect()
                t0 = time.perf_counter()
                rows = side.insert_input()
                build = time.perf_counter() - t0
                wall, cpu, _ = await timed(lambda: side.insert(rows))
                await check_insert(side, admin, rows)
                del rows
            elif shape == "fetch":
                wall, cpu, result = await timed(side.fetch)
                check_fetch(side, result)
            elif shape == "get":
                wall, cpu, (result, times) = await timed(lambda: side.get(ids))
                check_gets(side, ids, result)
            elif shape == "gather":
                wall, cpu, result = await timed(lambda: side.gather(ids))
                check_gets(side, ids, result)
            elif shape == "stream":
                wall, cpu, result = await timed(side.stream)
                check_stream(side, result)
            else:
                raise ValueError(shape)
            result = None
            if r >= warmup:
                samples[side.name].wall.append(wall)
                samples[side.name].cpu.append(cpu)
                if shape == "insert":
                    samples[side.name].build.append(build)
                if shape == "get":
                    samples[side.name].per_get.append(median(times))
    return samples


# ---------------------------------------------------------------- report


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def noise(xs: list[float]) -> float:
    if len(xs) < 4:
        return float("nan")  # printed as "-"
    q = statistics.quantiles(xs, n=4)
    return (q[2] - q[0]) / 2 / statistics.median(xs)


def fmt_ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.1f}" if ms < 1000 else f"{ms:.0f}"


def metric(shape: str, sample: Sample) -> list[float]:
    """What the table shows: wall time per run, or for sequential gets the median get of
    each round (one slow burst on the shared box then moves one get, not the round)."""
    return sample.per_get if shape == "get" else sample.wall


def fmt_metric(shape: str, seconds: float) -> str:
    return f"{seconds * 1e6:.0f}" if shape == "get" else fmt_ms(seconds)


def print_tables(results: dict[str, dict[str, Sample]], names: list[str], rounds: dict[str, int]) -> None:
    width = 32
    col = 15
    print()
    print("Median over the rounds of the wall time per run in ms (sequential get: of the median get")
    print("of each round, in us), with the ratio to asyncpg (below 1 is faster than asyncpg)")
    print("shape".ljust(width) + "".join(n.rjust(col) for n in names) + "rounds".rjust(8))
    for shape, samples in results.items():
        base = median(metric(shape, samples["asyncpg"])) if "asyncpg" in samples else None
        cells = []
        for n in names:
            if n not in samples:
                cells.append("-".rjust(col))
                continue
            m = median(metric(shape, samples[n]))
            ratio = f" ({m / base:.2f}x)" if base else ""
            cells.append(f"{fmt_metric(shape, m)}{ratio}".rjust(col))
        print(SHAPES[shape].ljust(width) + "".join(cells) + str(rounds[shape]).rjust(8))
    if "get" in results:
        per = "  ".join(
            f"{n} {fmt_ms(median(results['get'][n].wall))}" for n in names if n in results["get"]
        )
        print(f"  (2,000 sequential gets, whole round, ms: {per})")

    print()
    print("Process CPU time per run, ms (every thread: the event loop, Tokio workers, ...), median;")
    print("sequential gets: the whole round of 2,000")
    print("shape".ljust(width) + "".join(n.rjust(col) for n in names))
    for shape, samples in results.items():
        if not samples["asyncpg"].cpu:
            continue
        base = median(samples["asyncpg"].cpu) if "asyncpg" in samples else None
        cells = []
        for n in names:
            if n not in samples:
                cells.append("-".rjust(col))
                continue
            m = median(samples[n].cpu)
            ratio = f" ({m / base:.2f}x)" if base else ""
            cells.append(f"{fmt_ms(m)}{ratio}".rjust(col))
        label = "2,000 sequential gets by pk" if shape == "get" else SHAPES[shape]
        print(label.ljust(width) + "".join(cells))

    print()
    print("Noise: half the interquartile range over the rounds of the first table's values, relative to the median")
    print("shape".ljust(width) + "".join(n.rjust(col) for n in names))
    for shape, samples in results.items():
        cells = []
        for n in names:
            x = noise(metric(shape, samples[n])) if n in samples else float("nan")
            cells.append(("-" if x != x else f"{x * 100:.0f}%").rjust(col))
        print(SHAPES[shape].ljust(width) + "".join(cells))


def print_targets(results: dict[str, dict[str, Sample]]) -> None:
    def med(shape: str, side: str) -> float | None:
        samples = results.get(shape, {}).get(side)
        values = metric(shape, samples) if samples else []
        return median(values) if values else None

    targets = [
        ("fetch 10k: chakra within 1.5x of asyncpg", "fetch", "asyncpg", lambda r: r <= 1.5),
        ("fetch 10k: chakra >= 3x faster than SQLAlchemy ORM", "fetch", "sqlalchemy", lambda r: r <= 1 / 3),
        ("sequential get: chakra within 1.3x of asyncpg (pool)", "get", "asyncpg", lambda r: r <= 1.3),
        ("  (the same against one held asyncpg connection, no pool)", "get", "asyncpg-1conn", lambda r: r <= 1.3),
        ("concurrent gets: chakra faster than asyncpg", "gather", "asyncpg", lambda r: r < 1.0),
        ("bulk insert: chakra at least as fast as asyncpg executemany", "insert", "asyncpg", lambda r: r <= 1.0),
        ("  (the same, building the inputs included; not the issue's)", "insert+build", "asyncpg", lambda r: r <= 1.0),
    ]
    print()
    print("Issue 4 targets (chakra median / other side's median)")
    for label, shape, other, ok in targets:
        c, o = med(shape, "chakra"), med(shape, other)
        if c is None or o is None:
            print(f"  {label:62s} not run")
            continue
        ratio = c / o
        print(f"  {label:62s} {ratio:5.2f}x  {'MET' if ok(ratio) else 'NOT MET'}")


def versions() -> str:
    out = []
    for dist in ("asyncpg", "psqlpy", "SQLAlchemy", "tortoise-orm", "chakra-orm"):
        try:
            out.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{dist} ?")
    return ", ".join(out)


def chakra_build() -> str:
    """Which build of chakra._core is loaded: a debug build is no use for numbers."""
    path = chakra._core.__file__ or "?"
    try:
        with open(path, "rb") as f:
            data = f.read()
        # Debug builds carry DWARF sections and debug-assertion panic strings.
        debug = b".debug_info" in data and b"attempt to add with overflow" in data
        kind = "DEBUG build: rebuild with `maturin develop --release`" if debug else "release build"
        return f"{kind} ({path}, {len(data) / 1e6:.1f} MB)"
    except OSError:
        return path


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------- main


async def wait_for_connections(admin: asyncpg.Connection, needed: int, wait: float) -> None:
    """The server is shared: wait (up to ``wait`` seconds) until it has room for every pool."""

    async def free() -> int:
        limit = int(await admin.fetchval("SHOW max_connections"))
        used = await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
        return limit - used

    deadline = time.monotonic() + wait
    room = await free()
    if room >= needed:
        return
    print(f"the server has room for {room} more connections; the pools need {needed}: waiting", flush=True)
    while room < needed:
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up after {wait:.0f} s: the server has room for {room} connections, need {needed}")
        await asyncio.sleep(5)
        room = await free()
    print(f"  room for {room} connections now, load {loadavg()}", flush=True)



async def main(args: argparse.Namespace) -> int:
    shapes = [s for s in MEASURED if s in args.only] if args.only else list(MEASURED)
    wanted = [cls for cls in ALL_SIDES if not args.sides or cls.name in args.sides]
    # With six libraries (seven for gets), six (seven) rounds put each in each position once.
    default_rounds = {"fetch": 12, "get": 7, "gather": 6, "insert": 12, "stream": 6}
    if args.quick:
        default_rounds = {s: 3 for s in MEASURED}
    rounds = {s: args.rounds or default_rounds[s] for s in shapes}
    warmup = 1 if args.quick else 2

    print(f"Chakra Python bench: {DATABASE_URL.split('@')[-1]}, pool of {POOL} per library, plain asyncio")
    print(f"python {platform.python_version()}, {versions()}")
    print(f"chakra._core: {chakra_build()}")
    print(f"load average at start: {loadavg()} ({os.cpu_count()} cpus)")

    admin = await asyncpg.connect(DATABASE_URL)
    try:
        t0 = time.perf_counter()
        await create_tables(admin)
        print(f"tables {USERS} ({N_ROWS} rows) and {INSERT} created in {time.perf_counter() - t0:.1f} s")

        await wait_for_connections(admin, sum(cls.connections for cls in wanted), args.wait)
        sides: list[Side] = []
        plain = "sslmode=disable" in DATABASE_URL
        for cls in wanted:
            side = cls()
            await side.open()
            sides.append(side)
            if plain and (tls := await tls_connections(admin)):
                raise SystemExit(f"{side.name}: {tls} connections use TLS; every library must use the same transport")
        print(f"transport: {'plain TCP for every library' if plain else 'as DATABASE_URL says'}")
        names = [s.name for s in sides]

        rng = random.Random(args.seed)
        results: dict[str, dict[str, Sample]] = {}
        for shape in shapes:
            t0 = time.perf_counter()
            results[shape] = await run_shape(shape, sides, admin, rounds[shape], warmup, rng)
            print(
                f"  {SHAPES[shape]}: {rounds[shape]} rounds (+{warmup} warm-up) in "
                f"{time.perf_counter() - t0:.0f} s, load {loadavg()}",
                flush=True,
            )
        if "insert" in results:
            # The insert as a program sees it: the rows built as the library's input
            # objects, then inserted (per round, build + call).
            with_build = {
                name: Sample(wall=[b + w for b, w in zip(sample.build, sample.wall)], cpu=[])
                for name, sample in results["insert"].items()
            }
            results = {
                **{k: v for k, v in results.items() if k != "stream"},
                "insert+build": with_build,
                **({"stream": results["stream"]} if "stream" in results else {}),
            }
            rounds["insert+build"] = rounds["insert"]

        print_tables(results, names, rounds)
        print_targets(results)
        print()
        print(f"load average at end: {loadavg()}")

        for side in sides:
            await side.close()
        if not args.keep:
            await drop_tables(admin)
    finally:
        await admin.close()
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3 rounds per shape, 1 warm-up: a smoke test")
    p.add_argument("--rounds", type=int, help="timed rounds for every shape")
    p.add_argument("--only", type=lambda s: s.split(","), help=f"shapes, comma-separated: {','.join(MEASURED)}")
    p.add_argument(
        "--sides", type=lambda s: s.split(","), help=f"libraries: {','.join(c.name for c in ALL_SIDES)}"
    )
    p.add_argument("--seed", type=int, default=4, help="seed for the random ids")
    p.add_argument("--keep", action="store_true", help="leave the tables behind")
    p.add_argument(
        "--wait", type=float, default=600, help="seconds to wait for a busy server to have room for the pools"
    )
    args = p.parse_args(argv)
    if args.sides and "asyncpg" not in args.sides:
        p.error("--sides must include asyncpg (the table's reference)")
    for s in args.only or []:
        if s not in MEASURED:
            p.error(f"unknown shape {s!r}")
    return args


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main(parse_args(sys.argv[1:]))))
    except AssertionError:
        traceback.print_exc()
        print("bench stopped: a wrong answer", file=sys.stderr)
        sys.exit(1)
