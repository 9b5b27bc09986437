"""Databases, the default one, direct connections, raw SQL and DDL.

* ``chakra.configure(url=..., **pool_options)`` sets the default database in code.
  Without it, the default comes from ``chakra.toml`` in the working directory, else
  ``CHAKRA_DATABASE_URL`` / ``DATABASE_URL``.
* ``chakra.Database(url, **pool_options)`` is a database of its own, for programs that use
  several: ``Session(db)``, ``User.objects.using(db)``.
* ``async with chakra.connect(url) as conn`` opens one connection outside any pool.
* ``chakra.fetch / fetchrow / fetchval / execute`` run ``$1``-style parameterised SQL on
  the current session's connection, or on the default database's pool.
* ``await chakra.create_all()`` / ``drop_all()`` create or drop the declared models' tables.

Pool options: ``min_connections``, ``max_connections``, ``acquire_timeout``,
``idle_timeout``, ``max_lifetime`` (connections older are replaced; default 30 minutes,
``0`` keeps them), ``query_timeout``, ``connect_timeout`` (seconds, a ``timedelta`` or
text such as ``"30s"``), ``retry_attempts``, ``statement_cache``,
``statement_cache_capacity`` (prepared statements kept per connection, default 100),
``time_zone`` (the zone connections open with, such as ``"UTC"``, as Django's
``TIME_ZONE``: the one ``created__hour`` and the other date parts of a timestamp with a
time zone are read in; the server's default if unset).
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generator, Iterable

from . import _core
from .errors import ConfigError
from .errors import ProgrammingError

if TYPE_CHECKING:
    from .models import Model
    from .session import Session

__all__ = [
    "Connection",
    "Database",
    "configure",
    "connect",
    "create_all",
    "create_all_sync",
    "default_database",
    "drop_all",
    "drop_all_sync",
    "execute",
    "execute_sync",
    "fetch",
    "fetch_sync",
    "fetchrow",
    "fetchrow_sync",
    "fetchval",
    "fetchval_sync",
]


class _RawQueries:
    """``fetch`` / ``fetchrow`` / ``fetchval`` / ``execute`` and their ``_sync`` twins, run
    where ``_target()`` (``_target_async()`` for the awaitables) says."""

    def _target(self) -> Any:
        raise NotImplementedError

    async def _target_async(self) -> Any:
        return self._target()

    async def fetch(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        """Every row of a ``$1``-style parameterised query, as dicts."""
        return await _core.raw(await self._target_async(), sql, list(params), "all")  # type: ignore[no-any-return]

    def fetch_sync(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        return _core.raw(self._target(), sql, list(params), "all").wait_sync()  # type: ignore[no-any-return]

    async def fetchrow(self, sql: str, *params: Any) -> dict[str, Any] | None:
        """The first row, or ``None``."""
        return await _core.raw(await self._target_async(), sql, list(params), "one")  # type: ignore[no-any-return]

    def fetchrow_sync(self, sql: str, *params: Any) -> dict[str, Any] | None:
        return _core.raw(self._target(), sql, list(params), "one").wait_sync()  # type: ignore[no-any-return]

    async def fetchval(self, sql: str, *params: Any) -> Any:
        """The first column of the first row, or ``None``."""
        return await _core.raw(await self._target_async(), sql, list(params), "val")

    def fetchval_sync(self, sql: str, *params: Any) -> Any:
        return _core.raw(self._target(), sql, list(params), "val").wait_sync()

    async def execute(self, sql: str, *params: Any) -> int:
        """Runs a statement; returns the number of rows it affected."""
        return await _core.raw(await self._target_async(), sql, list(params), "execute")  # type: ignore[no-any-return]

    def execute_sync(self, sql: str, *params: Any) -> int:
        return _core.raw(self._target(), sql, list(params), "execute").wait_sync()  # type: ignore[no-any-return]


class Database(_RawQueries):
    """A database and its connection pool (opened on first use, and again in a forked
    child). Without ``url``, settings come from ``chakra.toml`` and the environment."""

    def __init__(self, url: str | None = None, **options: Any) -> None:
        self._core = _core.Database(url, options or None)

    def _target(self) -> Any:
        return self._core

    @property
    def url(self) -> str | None:
        """The URL, password masked."""
        return self._core.url

    def status(self) -> dict[str, int]:
        """The pool's ``size``, ``idle``, ``in_use``, ``waiting`` and ``max_size``."""
        return self._core.status()

    def session(self) -> Session:
        """A new :class:`~chakra.Session` on this database."""
        from .session import Session

        return Session(self)

    def close(self) -> None:
        """Closes the pool's connections; the next query opens a new pool."""
        self._core.close()

    async def create_all(self, models: Iterable[type[Model]] | None = None) -> None:
        """Creates the tables (and indexes) of ``models`` — every declared model by
        default — that do not exist yet."""
        await _core.execute_all(self._core, _create_sql(models))

    def create_all_sync(self, models: Iterable[type[Model]] | None = None) -> None:
        _core.execute_all(self._core, _create_sql(models)).wait_sync()

    async def drop_all(self, models: Iterable[type[Model]] | None = None) -> None:
        """Drops the tables of ``models`` (every declared model by default)."""
        await _core.execute_all(self._core, _drop_sql(models))

    def drop_all_sync(self, models: Iterable[type[Model]] | None = None) -> None:
        _core.execute_all(self._core, _drop_sql(models)).wait_sync()

    def __repr__(self) -> str:
        return f"<Database {self.url}>"


_lock = threading.Lock()
_default: Database | None = None
_by_url: dict[str, Database] = {}


def configure(url: str | None = None, **options: Any) -> Database:
    """Sets the default database: ``chakra.configure(url="postgresql://…", max_connections=20)``.
    Without ``url``, reads ``chakra.toml`` and the environment, with ``options`` on top."""
    global _default
    database = Database(url, **options)
    with _lock:
        _default = database
    return database


def default_database() -> Database:
    """The default database (see :func:`configure`), created on first use."""
    global _default
    database = _default
    if database is None:
        with _lock:
            if _default is None:
                _default = Database()
            database = _default
    return database


def resolve_database(database: Database | str | None) -> Database:
    """``None`` → the default database; a URL → one database per URL; a Database → itself."""
    if database is None:
        return default_database()
    if isinstance(database, Database):
        return database
    if isinstance(database, str):
        with _lock:
            found = _by_url.get(database)
            if found is None:
                found = _by_url[database] = Database(database)
        return found
    raise TypeError(f"expected a chakra.Database or a URL, got {database!r}")


def _models(models: Iterable[type[Model]] | None) -> list[type[Model]]:
    """``models`` (every declared one by default) with the models of pairs their
    many-to-many relations go through."""
    from .models import registered_models

    chosen = list(models) if models is not None else registered_models()
    throughs = [through for model in chosen for through in model._meta.throughs if through not in chosen]
    return chosen + throughs


def _create_sql(models: Iterable[type[Model]] | None) -> list[str]:
    return [
        sql
        for model in _by_reference(_models(models))
        for sql in [*model._meta.require_schema().create_sql(), *model._meta.index_sql()]
    ]


def _drop_sql(models: Iterable[type[Model]] | None) -> list[str]:
    return [model._meta.require_schema().drop_sql() for model in reversed(_by_reference(_models(models)))]


def _by_reference(models: list[type[Model]]) -> list[type[Model]]:
    """``models`` with each after the ones its foreign keys refer to (otherwise in their
    order), so tables are created in that order and dropped in the reverse."""
    by_table = {model._meta.table: model for model in models}
    ordered: list[type[Model]] = []
    visiting: list[type[Model]] = []

    def visit(model: type[Model]) -> None:
        if model in ordered:
            return
        if model in visiting:
            cycle = " -> ".join(m.__name__ for m in [*visiting[visiting.index(model) :], model])
            raise ConfigError(f"foreign keys refer to each other in a cycle ({cycle}): create_all cannot order them")
        visiting.append(model)
        for field in model._meta.fields.values():
            reference = model._meta.reference(field)
            target = by_table.get(reference[0]) if reference else None
            if target is not None and target is not model:
                visit(target)
        visiting.pop()
        ordered.append(model)

    for model in models:
        visit(model)
    return ordered


def _current_session() -> Session | None:
    # Imported here: session.py builds on this module.
    from .session import current_session

    return current_session()


class _Scope(_RawQueries):
    """Where module-level calls run: the current session's connection (after its pending
    changes are flushed), else the default database's pool."""

    def _target(self) -> Any:
        session = _current_session()
        return session._target() if session is not None else default_database()._core

    async def _target_async(self) -> Any:
        session = _current_session()
        return await session._target_async() if session is not None else default_database()._core


_scope = _Scope()


async def create_all(models: Iterable[type[Model]] | None = None) -> None:
    """Creates the tables of ``models`` (every declared model by default) that do not
    exist, on the current session's connection or the default database."""
    await _core.execute_all(await _scope._target_async(), _create_sql(models))


def create_all_sync(models: Iterable[type[Model]] | None = None) -> None:
    _core.execute_all(_scope._target(), _create_sql(models)).wait_sync()


async def drop_all(models: Iterable[type[Model]] | None = None) -> None:
    """Drops the tables of ``models`` (every declared model by default)."""
    await _core.execute_all(await _scope._target_async(), _drop_sql(models))


def drop_all_sync(models: Iterable[type[Model]] | None = None) -> None:
    _core.execute_all(_scope._target(), _drop_sql(models)).wait_sync()


fetch = _scope.fetch
fetch_sync = _scope.fetch_sync
fetchrow = _scope.fetchrow
fetchrow_sync = _scope.fetchrow_sync
fetchval = _scope.fetchval
fetchval_sync = _scope.fetchval_sync
execute = _scope.execute
execute_sync = _scope.execute_sync


class Connection(_RawQueries):
    """One connection outside any pool, from :func:`connect`; autocommit unless inside
    ``transaction()``. Closed when its ``async with`` / ``with`` block ends."""

    def __init__(self, handle: _core.SessionHandle) -> None:
        self._handle: _core.SessionHandle | None = handle

    def _target(self) -> Any:
        if self._handle is None:
            raise ProgrammingError("this connection is closed")
        return self._handle

    def transaction(self) -> ConnectionTransaction:
        """A transaction block (a savepoint when nested)."""
        return ConnectionTransaction(self._target())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ConnectionTransaction:
    """``async with conn.transaction():`` — committed at the end, rolled back on exception."""

    def __init__(self, handle: _core.SessionHandle) -> None:
        self._handle = handle
        self._depth = 0

    def _end(self, commit: bool) -> _core.Op | None:
        if self._depth == 0 or self._handle.depth < self._depth:
            return None
        return self._handle.commit(self._depth - 1) if commit else self._handle.rollback(self._depth - 1)

    async def __aenter__(self) -> ConnectionTransaction:
        self._depth = await self._handle.begin()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        op = self._end(exc_type is None)
        if op is not None:
            await op

    def __enter__(self) -> ConnectionTransaction:
        self._depth = self._handle.begin().wait_sync()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        op = self._end(exc_type is None)
        if op is not None:
            op.wait_sync()


class connect:  # noqa: N801 - used like a function: `async with chakra.connect(url) as conn`
    """Opens a connection of its own to ``url``, bypassing the pool::

        async with chakra.connect("postgresql://localhost/app") as conn:
            rows = await conn.fetch("SELECT id, name FROM users WHERE id = $1", 1)

    Also ``with chakra.connect(url) as conn`` in sync code, and ``conn = await
    chakra.connect(url)`` (then ``conn.close()``).
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self._connection: Connection | None = None

    def __await__(self) -> Generator[Any, None, Connection]:
        return self._open().__await__()

    async def _open(self) -> Connection:
        return Connection(await _core.connect_direct(self._url))

    async def __aenter__(self) -> Connection:
        self._connection = await self._open()
        return self._connection

    async def __aexit__(self, *exc: object) -> None:
        if self._connection is not None:
            self._connection.close()

    def __enter__(self) -> Connection:
        self._connection = Connection(_core.connect_direct(self._url).wait_sync())
        return self._connection

    def __exit__(self, *exc: object) -> None:
        if self._connection is not None:
            self._connection.close()
