"""``Session``: a unit of work on one connection.

::

    async with Session() as session:      # commits on success, rolls back on exception
        user = User(name="Alice")
        session.add(user)
        await session.commit()            # INSERT …; user.id is filled in
        user.name = "Alicia"
        await session.commit()            # UPDATE users SET name = $1 WHERE id = $2

A session takes a pooled connection on first use and keeps it until it closes; inside
its scope every query — ``User.objects…`` included — runs on that connection (a context
variable carries the session). The first write begins a transaction, which ``commit``
ends; ``begin()`` opens an explicit one, and a nested ``begin()`` is a savepoint.

The session keeps one instance per row (its identity map) and finds changed attributes
by comparing each instance with what was loaded, so a commit updates only the changed
columns. Attributes stay readable after a commit: nothing is expired or lazily reloaded.
After a rollback, instances keep their Python values; those written in the rolled-back
transaction count as unsaved changes again, and those inserted in it as never saved.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generator, Iterable, TypeVar

from . import _core
from ._bridge import Step, Steps, complete, run_async, run_sync
from .database import _RawQueries, resolve_database
from .errors import ProgrammingError
from .models import NOT_LOADED, _has, _stamp
from .signals import Send, Signal, post_delete, post_save, pre_delete, pre_save

if TYPE_CHECKING:
    from .database import Database
    from .models import Model

__all__ = ["Session", "Transaction", "atomic", "current_session", "on_commit"]

M = TypeVar("M", bound="Model")
F = TypeVar("F", bound=Callable[..., Any])

_CURRENT: ContextVar[Session | None] = ContextVar("chakra_session", default=None)
_LOG = logging.getLogger("chakra")


def current_session() -> Session | None:
    """The session whose ``async with`` / ``with`` block the caller is in, if any."""
    return _CURRENT.get()


class _Done:
    """An awaitable that has already happened: lets ``session.delete(obj)`` be awaited
    or not."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # pragma: no cover - makes this a generator


_DONE = _Done()


def _schema(obj: Any) -> _core.Schema:
    meta = getattr(type(obj), "_meta", None)
    if meta is None or meta.schema is None:
        raise TypeError(f"expected an instance of a concrete chakra Model, got {obj!r}")
    return meta.schema  # type: ignore[no-any-return]


def _loaded(obj: Any) -> tuple[Any, ...] | None:
    return getattr(obj, "_chakra_loaded", None)


# A transaction level's record of the instances it wrote: id(obj) → (obj, what was
# loaded before its first write in the level, and for an instance given values read back
# from the database, what its fields held before the first such read), to undo on
# rollback: those values came from writes the rollback undoes, unlike the user's own.
_Record = tuple[Any, Any, "tuple[Any, ...] | None"]
_Level = dict[int, _Record]


def _by_model(objs: Iterable[Any], signal: Signal) -> dict[type[Any], list[Any]]:
    """``objs`` by model, of the models ``signal`` has receivers for."""
    grouped: dict[type[Any], list[Any]] = {}
    if not signal.connected:
        return grouped
    for obj in objs:
        if signal.has_listeners(type(obj)):
            grouped.setdefault(type(obj), []).append(obj)
    return grouped


def _keep(level: _Level, record: _Record) -> None:
    """Adds ``record`` to ``level``: the earliest record of an instance wins, but for the
    fields' values, which the earliest record that has them gives."""
    obj, _, values = record
    old = level.get(id(obj))
    if old is None:
        level[id(obj)] = record
    elif old[2] is None and values is not None:
        level[id(obj)] = (obj, old[1], values)


def _field_values(obj: Any) -> tuple[Any, ...]:
    """``obj``'s fields' values (``NOT_LOADED`` for one a query left out)."""
    return tuple(getattr(obj, name) if _has(obj, name) else NOT_LOADED for name in type(obj)._meta.fields)


def _put_field_values(obj: Any, values: tuple[Any, ...]) -> None:
    for name, value in zip(type(obj)._meta.fields, values):
        if value is NOT_LOADED:
            if _has(obj, name):
                delattr(obj, name)
        else:
            setattr(obj, name, value)


class Session(_RawQueries):
    """A unit of work on one pinned connection; see the module documentation.

    ``Session()`` uses the default database (``chakra.configure``, else ``chakra.toml``,
    ``CHAKRA_DATABASE_URL`` or ``DATABASE_URL``); ``Session(url)`` or
    ``Session(database)`` another one.
    """

    def __init__(self, database: Database | str | None = None) -> None:
        self.database: Database = resolve_database(database)
        self._core_handle: _core.SessionHandle | None = None
        self._identity: dict[type[Any], dict[Any, Any]] = {}
        self._new: dict[int, Any] = {}
        self._deleted: dict[int, Any] = {}
        self._levels: list[_Level] = []
        self._tokens: list[Token[Session | None]] = []
        # Functions to call once the transaction commits: (the depth they were given
        # at, the function, robust).
        self._on_commit: list[tuple[int, Callable[[], Any], bool]] = []

    # ------------------------------------------------------------------ scope

    async def __aenter__(self) -> Session:
        self._enter()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None:
                await self.commit()
            else:
                await _quietly(self._rollback_steps())
        finally:
            release = self._exit()
            if release is not None:
                await release

    def __enter__(self) -> Session:
        self._enter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None:
                self.commit_sync()
            else:
                _quietly_sync(self._rollback_steps())
        finally:
            release = self._exit()
            if release is not None:
                release.wait_sync()

    def _enter(self) -> None:
        self._tokens.append(_CURRENT.set(self))

    def _exit(self) -> _core.Op | None:
        """Leaves the scope; when the outermost block ends, the op giving the connection
        back."""
        token = self._tokens.pop()
        try:
            _CURRENT.reset(token)
        except ValueError:
            # Exited in another context than it was entered in (some frameworks run
            # dependency teardown that way): put back what was current before.
            _CURRENT.set(token.old_value if token.old_value is not Token.MISSING else None)
        if self._tokens:
            return None
        handle = self._detach()
        return handle.release() if handle is not None else None

    def _detach(self) -> _core.SessionHandle | None:
        handle = self._core_handle
        self._core_handle = None
        self._new.clear()
        self._deleted.clear()
        self._levels.clear()
        self._on_commit.clear()
        return handle

    def close(self) -> None:
        """Returns the connection to the pool, rolling back anything uncommitted. The
        session's instances stay readable, and the session can be used again: it then
        takes a new connection."""
        handle = self._detach()
        if handle is not None:
            handle.close()

    def _handle(self) -> _core.SessionHandle:
        handle = self._core_handle
        if handle is None:
            handle = self._core_handle = self.database._core.session()
        return handle

    def _identity_map(self, model: type[Any]) -> dict[Any, Any]:
        identity = self._identity.get(model)
        if identity is None:
            identity = self._identity[model] = {}
        return identity

    # ------------------------------------------------------------------ tracking

    def add(self, obj: Model) -> None:
        """Adds ``obj``: inserted at the next flush if new, else watched for changes."""
        schema = _schema(obj)
        key = id(obj)
        self._deleted.pop(key, None)
        if _loaded(obj) is None:
            self._new[key] = obj
            return
        identity = self._identity_map(type(obj))
        pk = schema.loaded_pk(obj)
        existing = identity.get(pk)
        if existing is not None and existing is not obj:
            raise ProgrammingError(
                f"this session already holds another {type(obj).__name__} with primary key {pk!r}"
            )
        identity[pk] = obj

    def add_all(self, objs: Iterable[Model]) -> None:
        """Adds each of ``objs``."""
        for obj in objs:
            self.add(obj)

    add_sync = add
    add_all_sync = add_all

    def delete(self, obj: Model) -> _Done:
        """Marks ``obj`` for deletion at the next flush (awaiting the result is optional)."""
        _schema(obj)
        key = id(obj)
        if self._new.pop(key, None) is None:
            self._deleted[key] = obj
        return _DONE

    def delete_sync(self, obj: Model) -> None:
        self.delete(obj)

    def is_modified(self, obj: Model) -> bool:
        """Whether ``obj`` has changes the next flush would write."""
        changed = _schema(obj).changed_fields(obj)
        return changed is None or bool(changed) or id(obj) in self._deleted

    def __contains__(self, obj: object) -> bool:
        if id(obj) in self._new:
            return True
        identity = self._identity.get(type(obj))
        return identity is not None and any(o is obj for o in identity.values())

    def _track_inserted(self, objs: list[Any]) -> None:
        """Objects a queryset's ``create``/``bulk_create`` inserts inside this session."""
        level = self._current_level()
        for obj in objs:
            _keep(level, (obj, None, None))

    def _refresh_held(self, objs: list[Any]) -> None:
        """Gives the instances this session holds of the rows ``objs`` were read back
        from (an upsert's updated rows) those rows' values, as a refresh would; a rollback
        puts back what they held before."""
        self._sync_levels()
        level = self._current_level()
        for obj in objs:
            identity = self._identity.get(type(obj))
            held = identity.get(_schema(obj).loaded_pk(obj)) if identity is not None else None
            if held is None or held is obj:
                continue
            _keep(level, (held, _loaded(held), _field_values(held)))
            for name in type(obj)._meta.fields:
                setattr(held, name, getattr(obj, name))
            held._chakra_loaded = _loaded(obj)
            held._chakra_related = None

    def _forget_deleted(self, model: type[Any], keys: list[Any]) -> None:
        """Lets go of the instances held of the rows with primary keys ``keys``, which a
        delete by query removed, as a flush does of the instances it deletes."""
        identity = self._identity.get(model)
        if not identity:
            return
        self._sync_levels()
        level = self._current_level()
        for key in keys:
            obj = identity.pop(key, None)
            if obj is not None:
                _keep(level, (obj, _loaded(obj), None))
                _schema(obj).forget_loaded(obj)

    def _current_level(self) -> _Level:
        if not self._levels:
            self._levels.append({})
        return self._levels[-1]

    # ------------------------------------------------------------------ flush

    def _needs_flush(self) -> bool:
        if self._new or self._deleted:
            return True
        for model, identity in self._identity.items():
            if identity and model._meta.schema.any_changed(identity.values()):
                return True
        return False

    def _flush_steps(self) -> Steps[int]:
        if not self._needs_flush():
            return 0
        # Before anything is taken: a receiver's error leaves the session as it was, and
        # what a receiver adds or sets is written with the rest.
        yield from self._pre_signals()
        plan: list[tuple[str, Any, list[Any], dict[Any, Any] | None]] = []
        new = list(self._new.values())
        deleted = list(self._deleted.values())
        # Taken now, so that a concurrent flush (queries gathered in one session) does
        # not write them twice; put back if this flush fails.
        self._new.clear()
        self._deleted.clear()
        group: list[Any] = []
        for obj in new:
            if group and type(group[0]) is not type(obj):
                _stamp(group, adding=True)
                plan.append(("insert", _schema(group[0]), group, self._identity_map(type(group[0]))))
                group = []
            group.append(obj)
        if group:
            _stamp(group, adding=True)
            plan.append(("insert", _schema(group[0]), group, self._identity_map(type(group[0]))))
        deleting = {id(o) for o in deleted}
        for model, identity in self._identity.items():
            watched = [o for o in identity.values() if id(o) not in deleting]
            if watched:
                if model._meta.auto_now:
                    schema = model._meta.require_schema()
                    _stamp([o for o in watched if schema.changed_fields(o)], adding=False)
                plan.append(("update", model._meta.schema, watched, None))
        by_model: dict[type[Any], list[Any]] = {}
        for obj in deleted:
            by_model.setdefault(type(obj), []).append(obj)
        for model, objs in by_model.items():
            plan.append(("delete", model._meta.schema, objs, None))
        after = self._post_signals(new, deleted)
        before = {id(obj): (obj, _loaded(obj)) for _, _, objs, _ in plan for obj in objs}
        try:
            sent = yield _core.flush(self._handle(), plan)
        except BaseException:
            for obj in new:
                self._new.setdefault(id(obj), obj)
            for obj in deleted:
                self._deleted.setdefault(id(obj), obj)
            raise
        self._sync_levels()
        level = self._current_level()
        for obj, loaded in before.values():
            if _loaded(obj) is not loaded:
                _keep(level, (obj, loaded, None))
        for obj in deleted:
            held = self._identity.get(type(obj))
            if held is not None:
                pk = _schema(obj).loaded_pk(obj)
                if held.get(pk) is obj:
                    del held[pk]
            _keep(level, (obj, _loaded(obj), None))
            _schema(obj).forget_loaded(obj)
        for send in after:
            yield send
        return sent  # type: ignore[no-any-return]

    def _pre_signals(self) -> Steps[None]:
        """``pre_save`` for the instances the flush will insert or update, ``pre_delete``
        for those it will delete (only to models with receivers)."""
        for model, objs in _by_model(self._new.values(), pre_save).items():
            yield Send(pre_save, model, [{"instance": obj, "created": True} for obj in objs])
        deleting = {id(o) for o in self._deleted.values()}
        # Listed first: a receiver may load rows of another model into the session.
        for model, identity in list(self._identity.items()):
            if pre_save.has_listeners(model):
                schema = model._meta.require_schema()
                changed = [o for o in identity.values() if id(o) not in deleting and schema.changed_fields(o)]
                if changed:
                    yield Send(pre_save, model, [{"instance": obj, "created": False} for obj in changed])
        for model, objs in _by_model(self._deleted.values(), pre_delete).items():
            yield Send(pre_delete, model, [{"instance": obj} for obj in objs])

    def _post_signals(self, new: list[Any], deleted: list[Any]) -> list[Send]:
        """What to send once the flush has written ``new``, the changes of the instances
        held and ``deleted``: taken before it, while the changes are known."""
        sends = [
            Send(post_save, model, [{"instance": o, "created": True, "update_fields": None} for o in objs])
            for model, objs in _by_model(new, post_save).items()
        ]
        deleting = {id(o) for o in deleted}
        for model, identity in self._identity.items():
            if post_save.has_listeners(model):
                schema = model._meta.require_schema()
                each = []
                for obj in identity.values():
                    fields = schema.changed_fields(obj) if id(obj) not in deleting else None
                    if fields:
                        each.append({"instance": obj, "created": False, "update_fields": frozenset(fields)})
                if each:
                    sends.append(Send(post_save, model, each))
        sends += [
            Send(post_delete, model, [{"instance": obj} for obj in objs])
            for model, objs in _by_model(deleted, post_delete).items()
        ]
        return sends

    def _sync_levels(self) -> None:
        depth = self._core_handle.depth if self._core_handle is not None else 0
        while len(self._levels) < depth:
            self._levels.append({})

    def _autobegin_steps(self) -> Steps[None]:
        """Begins the session's transaction if none is open, as its first write would."""
        yield self._handle().autobegin()
        self._sync_levels()

    async def _autoflush(self) -> None:
        if self._needs_flush():
            await run_async(self._flush_steps())

    def _autoflush_sync(self) -> None:
        if self._needs_flush():
            run_sync(self._flush_steps())

    async def flush(self) -> int:
        """Writes pending inserts, changed columns and deletes, in that order, inside the
        session's transaction (begun if needed). Returns the number of statements sent."""
        return await run_async(self._flush_steps())

    def flush_sync(self) -> int:
        return run_sync(self._flush_steps())

    # ------------------------------------------------------------------ transactions

    def _commit_steps(self) -> Steps[None]:
        yield from self._flush_steps()
        if self._core_handle is not None and self._core_handle.depth:
            yield self._core_handle.commit(0)
        self._levels.clear()
        yield from self._committed_steps()

    def on_commit(self, callback: Callable[[], Any], robust: bool = False) -> None:
        """Calls ``callback`` (no arguments; an ``async def`` one is awaited) once the
        session's work so far is committed, as Django's ``transaction.on_commit``: after
        its next ``commit()`` (or the end of its ``async with`` block), never if it is
        rolled back (a savepoint's rollback drops those given inside it). Callbacks run
        in the order given; one's error propagates from the commit (which has happened)
        and the later ones are not called, unless ``robust=True``, which logs it."""
        if not callable(callback):
            raise TypeError(f"on_commit() takes a function of no arguments, not {callback!r}")
        depth = self._core_handle.depth if self._core_handle is not None else 0
        self._on_commit.append((depth, callback, robust))

    def _committed_steps(self) -> Steps[None]:
        """Calls the commit callbacks (taken first: one may give more, for the next
        commit)."""
        if self._on_commit:
            callbacks, self._on_commit = self._on_commit, []
            yield _Callbacks([(callback, robust) for _, callback, robust in callbacks])

    def _rollback_steps(self) -> Steps[None]:
        self._new.clear()
        self._deleted.clear()
        self._on_commit.clear()
        if self._core_handle is not None and self._core_handle.depth:
            try:
                yield self._core_handle.rollback(0)
            finally:
                self._undo_levels(0)
        else:
            self._undo_levels(0)

    def _undo_levels(self, depth: int) -> None:
        """Puts back what instances looked like saved before the levels above ``depth``."""
        while len(self._levels) > depth:
            for obj, loaded, values in self._levels.pop().values():
                if values is not None:
                    _put_field_values(obj, values)
                obj._chakra_loaded = loaded
                if loaded is None:
                    self._forget_inserted(obj)

    def _forget_inserted(self, obj: Any) -> None:
        meta = type(obj)._meta
        identity = self._identity.get(type(obj))
        pk = getattr(obj, meta.pk.name, None)
        if identity is not None and identity.get(pk) is obj:
            del identity[pk]
        if meta.pk.generated:
            setattr(obj, meta.pk.name, None)

    async def commit(self) -> None:
        """Flushes, then commits the transaction (and any savepoints in it)."""
        await run_async(self._commit_steps())

    def commit_sync(self) -> None:
        run_sync(self._commit_steps())

    async def rollback(self) -> None:
        """Rolls back the transaction and forgets unflushed changes."""
        await run_async(self._rollback_steps())

    def rollback_sync(self) -> None:
        run_sync(self._rollback_steps())

    def begin(self) -> Transaction:
        """An explicit transaction block — a savepoint if a transaction is open::

            async with session.begin():
                ...   # committed (or released) at the end, rolled back on exception
        """
        return Transaction(self)

    # ------------------------------------------------------------------ reads

    async def get(self, model: type[M], pk: Any) -> M | None:
        """The instance of ``model`` with primary key ``pk``, or ``None``. Served from the
        identity map when the session already holds it."""
        await self._autoflush()
        return await _core.get_by_pk(self._handle(), model._meta.require_schema(), pk, self._identity_map(model))  # type: ignore[no-any-return]

    def get_sync(self, model: type[M], pk: Any) -> M | None:
        self._autoflush_sync()
        return _core.get_by_pk(self._handle(), model._meta.require_schema(), pk, self._identity_map(model)).wait_sync()  # type: ignore[no-any-return]

    async def refresh(self, obj: Model) -> None:
        """Reloads ``obj``'s row into it, discarding unsaved attribute changes and the
        relations loaded with it (``prefetch_related``), as Django's ``refresh_from_db``."""
        await _core.refresh(self._handle(), obj, _schema(obj))
        obj._chakra_related = None

    def refresh_sync(self, obj: Model) -> None:
        _core.refresh(self._handle(), obj, _schema(obj)).wait_sync()
        obj._chakra_related = None

    # ------------------------------------------------------------------ raw SQL

    def _target(self) -> Any:
        """Raw SQL (``fetch``, ``execute``, …) runs on this session's connection, after
        its pending changes are flushed; writes begin its transaction."""
        self._autoflush_sync()
        return self._handle()

    async def _target_async(self) -> Any:
        await self._autoflush()
        return self._handle()

    def __repr__(self) -> str:
        state = f"depth={self._core_handle.depth}" if self._core_handle else "idle"
        return f"<Session {state} objects={sum(len(m) for m in self._identity.values())}>"


class Transaction:
    """An explicit transaction (or savepoint) block of a session, from ``session.begin()``.

    Usable as ``async with`` / ``with``; or start it with ``await tx.start()`` and end it
    with ``commit()`` / ``rollback()``.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self._depth = 0

    @property
    def is_savepoint(self) -> bool:
        return self._depth > 1

    def _start_steps(self) -> Steps[Transaction]:
        session = self._session
        yield from session._flush_steps()
        self._depth = yield session._handle().begin()
        session._sync_levels()
        return self

    def _open(self) -> bool:
        handle = self._session._core_handle
        return self._depth > 0 and handle is not None and handle.depth >= self._depth

    def _commit_steps(self) -> Steps[None]:
        session = self._session
        yield from session._flush_steps()
        if not self._open():
            return
        yield session._handle().commit(self._depth - 1)
        # What this level (and any left open inside it) wrote now belongs to the level
        # around it: its rollback must undo that too. The earliest record of each wins.
        levels = session._levels
        merged: _Level = {}
        for level in levels[self._depth - 1 :]:
            for record in level.values():
                _keep(merged, record)
        del levels[self._depth - 1 :]
        if self._depth > 1:
            parent = session._current_level()
            for record in merged.values():
                _keep(parent, record)
            # The callbacks given inside now wait for the level around it.
            session._on_commit = [(min(d, self._depth - 1), f, r) for d, f, r in session._on_commit]
        else:
            yield from session._committed_steps()

    def _rollback_steps(self) -> Steps[None]:
        session = self._session
        session._new.clear()
        session._deleted.clear()
        session._on_commit = [c for c in session._on_commit if c[0] < self._depth]
        if not self._open():
            return
        try:
            yield session._handle().rollback(self._depth - 1)
        finally:
            session._undo_levels(self._depth - 1)

    async def start(self) -> Transaction:
        return await run_async(self._start_steps())

    def start_sync(self) -> Transaction:
        return run_sync(self._start_steps())

    async def commit(self) -> None:
        await run_async(self._commit_steps())

    def commit_sync(self) -> None:
        run_sync(self._commit_steps())

    async def rollback(self) -> None:
        await run_async(self._rollback_steps())

    def rollback_sync(self) -> None:
        run_sync(self._rollback_steps())

    async def __aenter__(self) -> Transaction:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            await self.commit()
        else:
            await _quietly(self._rollback_steps())

    def __enter__(self) -> Transaction:
        return self.start_sync()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit_sync()
        else:
            _quietly_sync(self._rollback_steps())


class _Callbacks(Step):
    """A step calling a session's commit callbacks in turn, awaiting ``async`` ones; a
    ``robust`` one's error is logged and the next one called."""

    __slots__ = ("calls",)

    def __init__(self, calls: list[tuple[Callable[[], Any], bool]]) -> None:
        self.calls = calls

    def run_sync(self) -> None:
        for callback, robust in self.calls:
            with _reported(callback, robust):
                result = callback()
                if inspect.isawaitable(result):
                    complete(result, "on_commit callback")

    async def run_async(self) -> None:
        for callback, robust in self.calls:
            with _reported(callback, robust):
                result = callback()
                if inspect.isawaitable(result):
                    await result


@contextlib.contextmanager
def _reported(callback: Callable[[], Any], robust: bool) -> Iterator[None]:
    """Logs the error of a ``robust`` callback instead of raising it."""
    try:
        yield
    except Exception:
        if not robust:
            raise
        _LOG.exception("on_commit callback %r failed", callback)


def on_commit(callback: Callable[[], Any], robust: bool = False) -> None:
    """Calls ``callback`` once the current session's work is committed
    (:meth:`Session.on_commit`); outside a session, where each statement commits on its
    own, at once (an ``async def`` one is refused there: await it yourself)."""
    session = current_session()
    if session is not None:
        session.on_commit(callback, robust)
        return
    if inspect.iscoroutinefunction(callback):
        raise ProgrammingError(
            "on_commit() outside a session calls its callback at once, and cannot await an async one: "
            "await it yourself, or give it to a session"
        )
    with _reported(callback, robust):
        callback()


class atomic:
    """Django's ``transaction.atomic``: what runs inside commits together or not at all.

    ::

        async with chakra.atomic():
            await Account.objects.filter(id=1).update(balance=F("balance") - 10)
            await Account.objects.filter(id=2).update(balance=F("balance") + 10)

        @chakra.atomic()
        async def transfer(...): ...

    In a session (of ``database``, if given) it is ``session.begin()``: a transaction,
    or a savepoint inside one, committed or released at the end and rolled back on an
    exception. Elsewhere it opens a session of its own for the block, which its queries
    run in; the session commits at the end. ``with`` and plain functions too.
    """

    def __init__(self, database: Database | str | None = None) -> None:
        self._database = database
        self._scopes: list[Session | Transaction] = []

    def _scope(self) -> Session | Transaction:
        session = current_session()
        wanted = resolve_database(self._database) if self._database is not None else None
        if session is not None and (wanted is None or session.database is wanted):
            return session.begin()
        return Session(wanted)

    async def __aenter__(self) -> Session:
        scope = self._scope()
        self._scopes.append(scope)
        await scope.__aenter__()
        return scope if isinstance(scope, Session) else scope._session

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._scopes.pop().__aexit__(exc_type, exc, tb)

    def __enter__(self) -> Session:
        scope = self._scope()
        self._scopes.append(scope)
        scope.__enter__()
        return scope if isinstance(scope, Session) else scope._session

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._scopes.pop().__exit__(exc_type, exc, tb)

    def __call__(self, function: F) -> F:
        """As a decorator: each call of ``function`` runs in a block of its own."""
        database = self._database
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def run_async_block(*args: Any, **kwargs: Any) -> Any:
                async with atomic(database):
                    return await function(*args, **kwargs)

            return run_async_block  # type: ignore[return-value]

        @functools.wraps(function)
        def run_block(*args: Any, **kwargs: Any) -> Any:
            with atomic(database):
                return function(*args, **kwargs)

        return run_block  # type: ignore[return-value]


async def _quietly(steps: Steps[None]) -> None:
    """Runs cleanup after an exception: the exception in flight is the one to report."""
    try:
        await run_async(steps)
    except Exception:  # noqa: BLE001
        pass


def _quietly_sync(steps: Steps[None]) -> None:
    try:
        run_sync(steps)
    except Exception:  # noqa: BLE001
        pass
