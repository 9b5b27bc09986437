"""Functions of a row's values, as Django's ``django.db.models.functions``, computed by
the database in the same statement.

Dates and timestamps cut down to the start of a year, month, week, …, for time series::

    await Order.objects.values(month=TruncMonth("placed")).annotate(n=Count("id")).order_by("month")
    # [{"month": datetime(2024, 1, 1, tzinfo=...), "n": 31}, ...]

Read with ``annotate(month=...)`` (an attribute of each row) or ``values(month=...)``,
then grouped by, filtered and ordered by its name. A date stays a date; a timestamp with
a time zone is cut in the connection's zone (the ``time_zone`` option). A field that
cannot be cut to that unit (a date to its hour, a text) raises
:class:`~chakra.FieldError`.

Functions of values (:class:`~chakra.expressions.Func`): ``Coalesce``, ``NullIf``,
``Greatest``, ``Least``; of text ``Lower``, ``Upper``, ``Length``, ``Trim``, ``LTrim``,
``RTrim``, ``Concat``, ``Substr``, ``Left``, ``Right``, ``Replace``, ``StrIndex``,
``LPad``, ``RPad``, ``Repeat``, ``Reverse``, ``MD5``; of numbers ``Abs``, ``Round``
(to places too), ``Ceil``, ``Floor``, ``Sign``, ``Mod``, ``Power``, ``Sqrt``, ``Exp``,
``Ln``; of dates ``Extract("created", "year")``, ``ExtractYear`` … ``ExtractSecond``
(``F("created__year")`` is the same); and ``Now()``, ``Pi()``, ``Random()``,
``RandomUUID()``::

    await User.objects.annotate(shown=Coalesce("nickname", "name")).order_by("shown")
    await User.objects.filter(id=1).update(email=Lower("email"))
    await User.objects.values_list("id", Substr("name", 1, 3), ExtractYear("joined"))

They go wherever ``F`` goes (see :mod:`chakra.expressions`); a string argument names a
field, ``Value("text")`` is text. Each gives what Django's gives on PostgreSQL: a square
root, a power or a sign is a float (a ``Decimal`` of a ``Numeric``), ``Round`` to places
is of the number's own type.

Window functions, computed in a :class:`~chakra.Window` over each row's partition:
``RowNumber``, ``Rank``, ``DenseRank``, ``PercentRank``, ``CumeDist``, ``Ntile(n)``,
``Lag(field, offset=1, default=None)``, ``Lead(...)``, ``FirstValue``, ``LastValue``,
``NthValue(field, n)``.
"""

from __future__ import annotations

from typing import Any

from .expressions import Expression, Func, Value, _argument
from .fields import FieldType

__all__ = [
    "Abs",
    "Cast",
    "Ceil",
    "Coalesce",
    "Concat",
    "CumeDist",
    "DenseRank",
    "Exp",
    "Extract",
    "ExtractDay",
    "ExtractHour",
    "ExtractIsoWeekDay",
    "ExtractIsoYear",
    "ExtractMinute",
    "ExtractMonth",
    "ExtractQuarter",
    "ExtractSecond",
    "ExtractWeek",
    "ExtractWeekDay",
    "ExtractYear",
    "FirstValue",
    "Floor",
    "Greatest",
    "JSONObject",
    "KT",
    "LPad",
    "LTrim",
    "Lag",
    "LastValue",
    "Lead",
    "Least",
    "Left",
    "Length",
    "Ln",
    "Lower",
    "MD5",
    "Mod",
    "Now",
    "NthValue",
    "Ntile",
    "NullIf",
    "PercentRank",
    "Pi",
    "Power",
    "RPad",
    "RTrim",
    "Random",
    "RandomUUID",
    "Rank",
    "Repeat",
    "Replace",
    "Reverse",
    "Right",
    "Round",
    "RowNumber",
    "Sign",
    "Sqrt",
    "StrIndex",
    "Substr",
    "Trim",
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
    "Upper",
]

_PARTS = (
    "year",
    "iso_year",
    "quarter",
    "month",
    "week",
    "day",
    "week_day",
    "iso_week_day",
    "hour",
    "minute",
    "second",
)

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


class Extract(Expression):
    """A part of a date, time or timestamp field, as a number: ``"year"``,
    ``"iso_year"``, ``"quarter"``, ``"month"``, ``"week"``, ``"day"``, ``"week_day"``
    (1 is Sunday), ``"iso_week_day"`` (1 is Monday), ``"hour"``, ``"minute"``,
    ``"second"`` (a timestamp with a time zone's in the connection's zone). The same as
    ``F("created__year")``; it goes wherever ``F`` goes."""

    __slots__ = ()

    def __init__(self, field: str, lookup_name: str) -> None:
        if not isinstance(field, str):
            raise TypeError(f"{type(self).__name__}() takes a field name, not {type(field).__name__}")
        if lookup_name not in _PARTS:
            raise ValueError(f"Extract part {lookup_name!r} is not one of {', '.join(_PARTS)}")
        self._tree = ("field", f"{field}__{lookup_name}")


class KT(Expression):
    """The text a path of keys leads to in a ``JSON`` field, as Django's ``KT()``:
    ``KT("data__owner__name")`` is ``'ann'`` where ``F("data__owner__name")`` is the JSON
    value ``"ann"``; ``None`` where the path leads nowhere. Text, for text functions,
    lookups and sorting."""

    __slots__ = ()

    def __init__(self, path: str) -> None:
        if not isinstance(path, str) or "__" not in path:
            raise TypeError(f'KT() takes a JSON field and keys, as KT("data__owner__name"), not {path!r}')
        self._tree = ("keytext", path)


class _Part(Extract):
    """An ``Extract`` of one part, named after it."""

    __slots__ = ()
    _part = ""

    def __init__(self, field: str) -> None:
        super().__init__(field, self._part)


class ExtractYear(_Part):
    __slots__ = ()
    _part = "year"


class ExtractIsoYear(_Part):
    """The ISO 8601 week-numbering year."""

    __slots__ = ()
    _part = "iso_year"


class ExtractQuarter(_Part):
    __slots__ = ()
    _part = "quarter"


class ExtractMonth(_Part):
    __slots__ = ()
    _part = "month"


class ExtractWeek(_Part):
    """The ISO 8601 week of the year."""

    __slots__ = ()
    _part = "week"


class ExtractDay(_Part):
    __slots__ = ()
    _part = "day"


class ExtractWeekDay(_Part):
    """The day of the week, 1 (Sunday) to 7, as Django's."""

    __slots__ = ()
    _part = "week_day"


class ExtractIsoWeekDay(_Part):
    """The ISO day of the week, 1 (Monday) to 7."""

    __slots__ = ()
    _part = "iso_week_day"


class ExtractHour(_Part):
    __slots__ = ()
    _part = "hour"


class ExtractMinute(_Part):
    __slots__ = ()
    _part = "minute"


class ExtractSecond(_Part):
    __slots__ = ()
    _part = "second"


class Coalesce(Func):
    """The first of its arguments (two or more) that is not ``NULL``."""

    __slots__ = ()
    arity = None


class NullIf(Func):
    """``NULL`` where its two arguments are equal, else the first."""

    __slots__ = ()
    arity = 2


class Greatest(Func):
    """The largest of its arguments (two or more); ``NULL``s are left out, as
    PostgreSQL does."""

    __slots__ = ()
    arity = None


class Least(Func):
    """The smallest of its arguments (two or more); ``NULL``s are left out."""

    __slots__ = ()
    arity = None


class Lower(Func):
    """Text in lower case."""

    __slots__ = ()


class Upper(Func):
    """Text in upper case."""

    __slots__ = ()


class Length(Func):
    """The number of characters of a text."""

    __slots__ = ()


class Trim(Func):
    """Text without its leading and trailing spaces."""

    __slots__ = ()


class LTrim(Func):
    """Text without its leading spaces."""

    __slots__ = ()


class RTrim(Func):
    """Text without its trailing spaces."""

    __slots__ = ()


class Concat(Func):
    """Its arguments (two or more, of any type) as text, joined; ``NULL``s count as
    empty text, as Django's ``Concat``."""

    __slots__ = ()
    arity = None


class JSONObject(Func):
    """A JSON object of the fields and expressions given by key, read as a dict:
    ``annotate(card=JSONObject(name="name", books=Count("books")))`` (Django's; a string
    names a field). PostgreSQL's ``jsonb_build_object``."""

    __slots__ = ()

    def __init__(self, **fields: Any) -> None:
        pairs = [tree for key, value in fields.items() for tree in (("value", key), _argument(value))]
        self._tree = ("call", "JSONObject", pairs)


class Abs(Func):
    """A number's absolute value."""

    __slots__ = ()


class Substr(Func):
    """``length`` characters of a text from position ``pos`` (from 1), or all from there
    without a length: ``Substr("name", 1, 3)``."""

    __slots__ = ()
    arity = (2, 3)

    def __init__(self, expression: Any, pos: Any, length: Any = None) -> None:
        super().__init__(expression, pos, *(() if length is None else (length,)))


class Left(Func):
    """The first ``length`` characters of a text."""

    __slots__ = ()
    arity = 2

    def __init__(self, expression: Any, length: Any) -> None:
        super().__init__(expression, length)


class Right(Func):
    """The last ``length`` characters of a text."""

    __slots__ = ()
    arity = 2

    def __init__(self, expression: Any, length: Any) -> None:
        super().__init__(expression, length)


class Replace(Func):
    """A text with every ``text`` in it replaced by ``replacement`` (removed without
    one): ``Replace("phone", Value("-"))``."""

    __slots__ = ()
    arity = 3

    def __init__(self, expression: Any, text: Any, replacement: Any = None) -> None:
        super().__init__(expression, text, Value("") if replacement is None else replacement)


class StrIndex(Func):
    """Where ``substring`` starts in ``string`` (from 1), 0 if it is not in it:
    ``StrIndex("email", Value("@"))``."""

    __slots__ = ()
    arity = 2

    def __init__(self, string: Any, substring: Any) -> None:
        super().__init__(string, substring)


class LPad(Func):
    """A text padded on its left with ``fill_text`` (spaces without one) to ``length``
    characters, or cut to them."""

    __slots__ = ()
    arity = 3

    def __init__(self, expression: Any, length: Any, fill_text: Any = None) -> None:
        super().__init__(expression, length, Value(" ") if fill_text is None else fill_text)


class RPad(LPad):
    """A text padded on its right with ``fill_text`` (spaces without one) to ``length``
    characters, or cut to them."""

    __slots__ = ()


class Repeat(Func):
    """A text repeated ``number`` times."""

    __slots__ = ()
    arity = 2

    def __init__(self, expression: Any, number: Any) -> None:
        super().__init__(expression, number)


class Reverse(Func):
    """A text's characters in reverse order."""

    __slots__ = ()


class MD5(Func):
    """The MD5 digest of a text, in hexadecimal."""

    __slots__ = ()


class Round(Func):
    """A number rounded to an integer, or to ``precision`` decimal places (negative:
    to tens, hundreds…), of the number's own type: ``Round("price", 2)`` (PostgreSQL's
    ``round``: halves away from zero, to even for floats without places)."""

    __slots__ = ()
    arity = (1, 2)

    def __init__(self, expression: Any, precision: Any = 0) -> None:
        super().__init__(expression, *((precision,) if precision != 0 else ()))


class Sign(Func):
    """-1, 0 or 1 for a negative, zero or positive number (a float, or a decimal for a
    decimal)."""

    __slots__ = ()


class Mod(Func):
    """The remainder of dividing one integer or decimal by another."""

    __slots__ = ()
    arity = 2


class Power(Func):
    """A number to the power of another (a float, or a decimal for decimals)."""

    __slots__ = ()
    arity = 2


class Sqrt(Func):
    """A number's square root (a float, or a decimal for a decimal)."""

    __slots__ = ()


class Exp(Func):
    """e to the power of a number."""

    __slots__ = ()


class Ln(Func):
    """A number's natural logarithm."""

    __slots__ = ()


class Pi(Func):
    """π, a float."""

    __slots__ = ()
    arity = 0


class Random(Func):
    """A random float from 0 (included) to 1, another for each row:
    ``order_by(Random())``."""

    __slots__ = ()
    arity = 0


class RandomUUID(Func):
    """A random UUID (version 4), another for each row: ``update(token=RandomUUID())``,
    ``Field(UUID, primary_key=True, db_default=RandomUUID())``."""

    __slots__ = ()
    arity = 0


class Ceil(Func):
    """The smallest integer not below a number."""

    __slots__ = ()


class Floor(Func):
    """The largest integer not above a number."""

    __slots__ = ()


class Cast(Expression):
    """``expression`` converted to the type of ``output_field`` (a column type, as
    ``Field`` takes it): ``Cast("price", Integer)``, ``Cast(F("n") / 3, Numeric(10, 2))``,
    ``Cast("age", String(10))``."""

    __slots__ = ()

    def __init__(self, expression: Any, output_field: FieldType[Any] | type[FieldType[Any]]) -> None:
        if isinstance(output_field, type) and issubclass(output_field, FieldType):
            output_field = output_field()
        if not isinstance(output_field, FieldType):
            raise TypeError(f"Cast() takes a column type such as Integer or String(100), got {output_field!r}")
        self._tree = ("cast", _argument(expression), output_field.column_type(), output_field.sql_type)


class Now(Func):
    """When the transaction began (PostgreSQL's ``now()``), a timestamp with a time zone:
    ``update(seen=Now())``, ``filter(expires__lt=Now())``."""

    __slots__ = ()
    arity = 0


class RowNumber(Func):
    """The row's number in its partition, from 1 (a window function)."""

    __slots__ = ()
    arity = 0


class Rank(Func):
    """The row's rank in its partition, ties sharing one and leaving gaps (a window
    function)."""

    __slots__ = ()
    arity = 0


class DenseRank(Func):
    """The row's rank in its partition, ties sharing one, without gaps (a window
    function)."""

    __slots__ = ()
    arity = 0


class PercentRank(Func):
    """The row's relative rank in its partition, from 0 to 1 (a window function)."""

    __slots__ = ()
    arity = 0


class CumeDist(Func):
    """The share of its partition's rows up to the row's peers (a window function)."""

    __slots__ = ()
    arity = 0


class Ntile(Func):
    """The bucket, 1 to ``n``, of the row when its partition is split in ``n`` (a
    window function)."""

    __slots__ = ()
    arity = 1


class Lag(Func):
    """The value of the row ``offset`` (1) rows before in the partition, else ``default``
    (``None``): ``Lag("price")``, ``Lag("price", 2, 0)`` (a window function)."""

    __slots__ = ()
    arity = (1, 3)


class Lead(Func):
    """The value of the row ``offset`` (1) rows after in the partition, else ``default``
    (a window function)."""

    __slots__ = ()
    arity = (1, 3)


class FirstValue(Func):
    """The value of the partition's first row (a window function)."""

    __slots__ = ()


class LastValue(Func):
    """The value of the last row of the partition so far (a window function)."""

    __slots__ = ()


class NthValue(Func):
    """The value of the partition's ``n``-th row (a window function)."""

    __slots__ = ()
    arity = 2
