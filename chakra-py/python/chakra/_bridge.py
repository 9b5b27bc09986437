"""Glue between the awaitable and the blocking form of multi-step operations.

Operations that take several round trips (a flush, a commit) are written once, as
generators that yield :class:`chakra._core.Op` objects and receive their results. The
``async`` API awaits each op; the ``_sync`` API runs each to completion on the calling
thread. Either way the generator sees exceptions where the op failed. They also yield
:class:`Step` objects of their own (a signal sent, commit callbacks), which the
``async`` API awaits.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import warnings
from collections.abc import Generator
from types import FrameType
from typing import Any, TypeVar, cast

from ._core import Op
from .errors import ProgrammingError, SyncInAsyncWarning

T = TypeVar("T")


class Step:
    """A step of Python's own among the ops (signals, commit callbacks): run by the
    ``_sync`` API with :meth:`run_sync`, awaited by the ``async`` one with
    :meth:`run_async`, which awaits ``async`` functions it calls."""

    __slots__ = ()

    def run_sync(self) -> Any:
        raise NotImplementedError

    async def run_async(self) -> Any:
        raise NotImplementedError


Steps = Generator[Op | Step, Any, T]


def complete(awaitable: Any, what: str) -> Any:
    """Runs ``awaitable`` (from ``what``: an ``async`` function the ``_sync`` API was
    given) to completion, where no event loop runs in this thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_awaited(awaitable))
    if inspect.iscoroutine(awaitable):
        awaitable.close()
    raise ProgrammingError(
        f"an async {what} cannot run inside a _sync call made from a running event loop: "
        "await the async form of the call instead"
    )


async def _awaited(awaitable: Any) -> Any:
    return await awaitable

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


async def run_async(steps: Steps[T]) -> T:
    """Drives ``steps`` by awaiting each op it yields."""
    try:
        op = next(steps)
        while True:
            try:
                result = await (op.run_async() if isinstance(op, Step) else op)
            except BaseException as exc:  # noqa: BLE001 - handed to the generator
                op = steps.throw(exc)
            else:
                op = steps.send(result)
    except StopIteration as stop:
        return cast(T, stop.value)


def run_sync(steps: Steps[T]) -> T:
    """Drives ``steps`` by running each op it yields to completion on this thread."""
    try:
        op = next(steps)
        while True:
            try:
                result = op.run_sync() if isinstance(op, Step) else op.wait_sync()
            except BaseException as exc:  # noqa: BLE001 - handed to the generator
                op = steps.throw(exc)
            else:
                op = steps.send(result)
    except StopIteration as stop:
        return cast(T, stop.value)


def dev_mode() -> bool:
    """Whether development checks are on: ``python -X dev`` or ``CHAKRA_DEV=1``."""
    return sys.flags.dev_mode or os.environ.get("CHAKRA_DEV", "").lower() in ("1", "true", "yes", "on")


def warn_sync_in_async() -> None:
    """Called by ``Op.wait_sync`` when this thread's event loop is running."""
    if not dev_mode():
        return
    # Point the warning at the first caller outside this package.
    level = 2
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    warnings.warn(
        "a _sync database call blocks the running event loop until the database answers; "
        "await the async form instead (e.g. `await User.objects.get(...)`)",
        SyncInAsyncWarning,
        stacklevel=level,
    )
