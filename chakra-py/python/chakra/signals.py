"""Model signals, as Django's: functions called around each write of an instance.

::

    from chakra.signals import post_save, receiver

    @receiver(post_save, sender=Order)
    async def notify(sender, instance, created, **kwargs):
        if created:
            await queue.publish("order.created", instance.id)

- ``pre_save(sender, instance, created)``: before an instance's row is inserted or
  updated (a session's flush, ``create()``, ``get_or_create()``); what the receiver sets
  on the instance is saved with it.
- ``post_save(sender, instance, created, update_fields)``: after its statement succeeded
  (in the same transaction); ``update_fields`` is the set of fields an update wrote,
  ``None`` for an insert.
- ``pre_delete(sender, instance)`` and ``post_delete(sender, instance)``: around the delete
  of an instance (``session.delete(obj)``) or of each row ``QuerySet.delete()`` deletes;
  with receivers connected for the model, that delete reads the rows first, as Django's.

As in Django, ``bulk_create``, ``bulk_update``, ``QuerySet.update()`` and deletes by the
database's own ``ON DELETE CASCADE`` send none. Receivers take keyword arguments (accept
``**kwargs``: ``signal`` comes too); they may be ``async def`` functions, which the
awaitable API awaits (and the ``_sync`` API runs to completion when no event loop is
running in its thread). An exception a receiver raises propagates: a ``pre_*`` receiver's
stops the write before anything is sent. Receivers are held strongly (disconnect them
to let them go).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from ._bridge import Step, complete

__all__ = ["Signal", "post_delete", "post_save", "pre_delete", "pre_save", "receiver"]

Receiver = Callable[..., Any]
R = TypeVar("R", bound=Receiver)


class Signal:
    """A point where receivers are called, each for the senders (model classes) it was
    connected for, or for all."""

    __slots__ = ("_receivers", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._receivers: list[tuple[Receiver, type | None]] = []

    def connect(self, receiver: Receiver, sender: type | None = None) -> None:
        """Calls ``receiver`` when ``sender`` (any sender if ``None``) sends this signal;
        connecting it again for the same sender changes nothing."""
        if not callable(receiver):
            raise TypeError(f"{self.name}.connect() takes a function, not {receiver!r}")
        if (receiver, sender) not in self._receivers:
            self._receivers.append((receiver, sender))

    def disconnect(self, receiver: Receiver, sender: type | None = None) -> bool:
        """Stops calling ``receiver`` for ``sender``; whether it was connected."""
        try:
            self._receivers.remove((receiver, sender))
        except ValueError:
            return False
        return True

    def receivers_for(self, sender: type) -> list[Receiver]:
        """The receivers a send from ``sender`` calls, in the order connected."""
        return [r for r, s in self._receivers if s is None or s is sender]

    def has_listeners(self, sender: type) -> bool:
        return any(s is None or s is sender for _, s in self._receivers)

    @property
    def connected(self) -> bool:
        """Whether any receiver is connected, for any sender."""
        return bool(self._receivers)

    def send(self, sender: type, **kwargs: Any) -> list[tuple[Receiver, Any]]:
        """Calls the receivers for ``sender`` with ``kwargs``; their results. An ``async``
        receiver is run to completion (not from a thread running an event loop: use
        :meth:`asend` there)."""
        results = []
        for receiver in self.receivers_for(sender):
            result = receiver(signal=self, sender=sender, **kwargs)
            if inspect.isawaitable(result):
                result = complete(result, f"{self.name} receiver")
            results.append((receiver, result))
        return results

    async def asend(self, sender: type, **kwargs: Any) -> list[tuple[Receiver, Any]]:
        """Calls the receivers for ``sender`` with ``kwargs``, awaiting ``async`` ones, in
        the order connected; their results."""
        results = []
        for receiver in self.receivers_for(sender):
            result = receiver(signal=self, sender=sender, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            results.append((receiver, result))
        return results

    def __repr__(self) -> str:
        return f"<Signal {self.name}>"


def receiver(signal: Signal | list[Signal], *, sender: type | None = None) -> Callable[[R], R]:
    """Connects the decorated function to ``signal`` (or to each of a list) for
    ``sender``."""

    def connect(function: R) -> R:
        for each in signal if isinstance(signal, list) else [signal]:
            each.connect(function, sender)
        return function

    return connect


class Send(Step):
    """A step of a multi-step operation (see :mod:`chakra._bridge`): ``signal`` sent by
    ``sender`` once for each set of keyword arguments in ``each``."""

    __slots__ = ("each", "sender", "signal")

    def __init__(self, signal: Signal, sender: type, each: list[dict[str, Any]]) -> None:
        self.signal = signal
        self.sender = sender
        self.each = each

    def run_sync(self) -> list[tuple[Receiver, Any]]:
        """Sends it; the receivers' results."""
        return [result for kwargs in self.each for result in self.signal.send(self.sender, **kwargs)]

    async def run_async(self) -> list[tuple[Receiver, Any]]:
        """Sends it, awaiting ``async`` receivers; their results."""
        return [result for kwargs in self.each for result in await self.signal.asend(self.sender, **kwargs)]


pre_save = Signal("pre_save")
post_save = Signal("post_save")
pre_delete = Signal("pre_delete")
post_delete = Signal("post_delete")
