"""Functions of a row's values, as Django's ``django.db.models.functions``: dates and
timestamps cut down to the start of a year, month, week, …, for time series::

    await Order.objects.values(month=TruncMonth("placed")).annotate(n=Count("id")).order_by("month")
    # [{"month": datetime(2024, 1, 1, tzinfo=...), "n": 31}, ...]

Each is computed by the database, in the same statement: read with ``annotate(month=...)``
(an attribute of each row) or ``values(month=...)``, then grouped by, filtered and ordered
by its name. A date stays a date; a timestamp with a time zone is cut in the connection's
zone (the ``time_zone`` option). A field that cannot be cut to that unit (a date to its
hour, a text) raises :class:`~chakra.FieldError`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
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
]

_KINDS = ("year", "quarter", "month", "week", "day", "hour", "minute", "second", "date", "time")


class Trunc:
    """``field`` cut down to the start of its ``kind``: ``"year"``, ``"quarter"``,
    ``"month"``, ``"week"`` (its Monday), ``"day"``, ``"hour"``, ``"minute"``,
    ``"second"``; or ``"date"`` and ``"time"``, a timestamp's date or time of day."""

    __slots__ = ("field", "kind")

    def __init__(self, field: str, kind: str) -> None:
        if not isinstance(field, str):
            raise TypeError(f"{type(self).__name__}() takes a field name, not {type(field).__name__}")
        if kind not in _KINDS:
            raise ValueError(f"Trunc kind {kind!r} is not one of {', '.join(_KINDS)}")
        self.field = field
        self.kind = kind

    @property
    def _spec(self) -> tuple[Any, ...]:
        """The value as the core's annotations take it; a date or a time is the field's
        part of that name (``created__date``)."""
        if self.kind in ("date", "time"):
            return ("named", f"{self.field}__{self.kind}")
        return ("trunc", self.field, self.kind)

    def __repr__(self) -> str:
        if type(self) is Trunc:
            return f"Trunc({self.field!r}, {self.kind!r})"
        return f"{type(self).__name__}({self.field!r})"


class _Fixed(Trunc):
    """A ``Trunc`` of one kind, named after it."""

    __slots__ = ()

    _kind = ""

    def __init__(self, field: str) -> None:
        super().__init__(field, self._kind)


class TruncYear(_Fixed):
    """``field`` cut down to the start of its year."""

    __slots__ = ()
    _kind = "year"


class TruncQuarter(_Fixed):
    """``field`` cut down to the start of its quarter."""

    __slots__ = ()
    _kind = "quarter"


class TruncMonth(_Fixed):
    """``field`` cut down to the start of its month."""

    __slots__ = ()
    _kind = "month"


class TruncWeek(_Fixed):
    """``field`` cut down to the start of its week (a Monday)."""

    __slots__ = ()
    _kind = "week"


class TruncDay(_Fixed):
    """``field`` cut down to the start of its day."""

    __slots__ = ()
    _kind = "day"


class TruncHour(_Fixed):
    """A timestamp cut down to the start of its hour."""

    __slots__ = ()
    _kind = "hour"


class TruncMinute(_Fixed):
    """A timestamp cut down to the start of its minute."""

    __slots__ = ()
    _kind = "minute"


class TruncSecond(_Fixed):
    """A timestamp cut down to the start of its second."""

    __slots__ = ()
    _kind = "second"


class TruncDate(_Fixed):
    """A timestamp's date."""

    __slots__ = ()
    _kind = "date"


class TruncTime(_Fixed):
    """A timestamp's time of day."""

    __slots__ = ()
    _kind = "time"
