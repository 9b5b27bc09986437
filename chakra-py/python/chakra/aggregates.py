"""Aggregates for :meth:`QuerySet.aggregate <chakra.QuerySet.aggregate>`, as in Django::

    await Account.objects.filter(active=True).aggregate(total=Sum("balance"), n=Count("*"))
    # {"total": 1250, "n": 9}

Each skips NULLs, and all but ``Count`` are ``None`` over no values (``default=0`` gives
0 instead, as Django's, computed by the database). ``filter=Q(...)`` keeps
only the rows meeting it (SQL's ``FILTER (WHERE …)``), so one query can count several ways::

    await User.objects.aggregate(n=Count("*"), active=Count("*", filter=Q(is_active=True)))

The filter's lookups may span relations (``filter=Q(author__name="Ann")``). ``Sum`` and
``Avg`` take numeric fields, ``Min`` and ``Max`` numbers, text, dates and times; ``Avg`` of
an integer or float field is a float, of a ``Numeric`` field a ``Decimal``.

The field may be across relations, as in Django: ``Count("books")``,
``Sum("books__pages", filter=Q(books__year__gte=2000))``, ``Max("author__age")``. The rows
are then joined to the rows the relations lead to, so each row counts once per row it
reaches; two relations in one query multiply each other's rows, as Django's joins do
(``Count("books", distinct=True)`` counts each book once)::

    await Author.objects.values("country").annotate(books=Count("books"), pages=Sum("books__pages"))

Beyond Django's five: ``StdDev`` and ``Variance`` (of the population, or of a sample
with ``sample=True``), ``BoolAnd`` and ``BoolOr`` of a boolean field, and PostgreSQL's
``ArrayAgg`` (the values as a list) and ``StringAgg`` (texts joined), in the order of
their ``ordering=``; across relations, per row, as Django's::

    await Post.objects.annotate(tag_names=ArrayAgg("tags__name", ordering="tags__name"))

In ``aggregate()`` and ``values().annotate()`` the value aggregated may be computed from
each row (an ``F`` expression, a function, a ``Case``), named by its alias::

    await Line.objects.aggregate(total=Sum(F("price") * F("quantity")))
    await Order.objects.values("status").annotate(big=Sum(Case(When(total__gte=100, then=1), default=0)))
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .expressions import Expression, OrderBy

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import TypeAlias

    from chakra.models import Model

    Ordering: TypeAlias = str | Expression | OrderBy | Sequence[str | Expression | OrderBy]
    from chakra.query import Q

__all__ = [
    "Aggregate",
    "ArrayAgg",
    "Avg",
    "BoolAnd",
    "BoolOr",
    "Count",
    "Max",
    "Min",
    "StdDev",
    "StringAgg",
    "Sum",
    "Variance",
]

# What the core reads an aggregate as: (alias, function, field, distinct, filter, more),
# the filter a `Q` tree or None; the field a name, ("reach", hops, columns) for a column
# of the rows relations lead to (see `chakra.query._reached_spec`), or an expression;
# more: the further arguments' trees, the order specs and the default, or None.
AggregateSpec = tuple[
    str,
    str,
    "str | tuple[Any, ...] | Expression",
    bool,
    "tuple[str, bool, list[Any]] | None",
    "tuple[list[Any], list[Any], Any] | None",
]


_Operand = Expression | float | int | decimal.Decimal


def _arithmetic(op: str, reflected: bool = False) -> Callable[[Aggregate, _Operand], Expression]:
    """An operator of aggregates, the arithmetic of their values for each row
    (``Count("books") * 2``)."""

    def operator(self: Aggregate, other: _Operand) -> Expression:
        return self._as_expression()._op(op, other, reflected)

    return operator


class Aggregate:
    """An aggregate of one field (or of an expression of each row) over the selected
    rows."""

    __slots__ = ("default", "distinct", "field", "filter")

    function = ""

    def __init__(
        self, field: str | Expression, *, distinct: bool = False, filter: Q | None = None, default: Any = None
    ) -> None:
        from chakra.query import Q

        if not isinstance(field, (str, Expression)):
            raise TypeError(
                f"{type(self).__name__}() takes a field name or an expression, not {type(field).__name__}"
            )
        if filter is not None and not isinstance(filter, Q):
            raise TypeError(f"{type(self).__name__}(filter=) takes a Q, not {type(filter).__name__}")
        self.field = field
        self.distinct = distinct
        self.filter = filter
        self.default = default
        """What it is instead of ``None`` over no values (Django's ``default=``), computed
        by the database (``COALESCE``): filters and orders by it see it too."""

    @property
    def default_alias(self) -> str:
        """The key of a positional aggregate's result, Django's ``balance__sum``."""
        if self.field == "*" or isinstance(self.field, Expression):
            raise TypeError(f"{self!r} needs a name: aggregate(n={self!r})")
        return f"{self.field}__{type(self).__name__.lower()}"

    def _as_expression(self) -> Expression:
        """This aggregate where an expression goes, in ``annotate()``: its value for each
        row, over the rows relations lead to (``Coalesce(Sum("books__pages"), 0)``,
        ``Count("books") * 2``)."""
        return Expression._node(("aggregate", self))

    __add__ = _arithmetic("+")
    __radd__ = _arithmetic("+", reflected=True)
    __sub__ = _arithmetic("-")
    __rsub__ = _arithmetic("-", reflected=True)
    __mul__ = _arithmetic("*")
    __rmul__ = _arithmetic("*", reflected=True)
    __truediv__ = _arithmetic("/")
    __rtruediv__ = _arithmetic("/", reflected=True)

    def asc(self, *, nulls_first: bool = False, nulls_last: bool = False) -> OrderBy:
        """Ascending by its value for each row, for ``order_by``."""
        return self._as_expression().asc(nulls_first=nulls_first, nulls_last=nulls_last)

    def desc(self, *, nulls_first: bool = False, nulls_last: bool = False) -> OrderBy:
        """Descending by its value for each row, for ``order_by``."""
        return self._as_expression().desc(nulls_first=nulls_first, nulls_last=nulls_last)

    @property
    def ordering(self) -> list[str | Expression | OrderBy]:
        """The order it takes the values in (``ArrayAgg``, ``StringAgg``)."""
        return []

    def _args(self) -> list[Any]:
        """The trees of its arguments after the field."""
        return []

    def _more(self, order: list[Any]) -> tuple[list[Any], list[Any], Any] | None:
        """The spec's last item: further arguments, ``order`` (specs) and the default,
        if any."""
        args = self._args()
        return (args, order, self.default) if args or order or self.default is not None else None

    def _spec(self, alias: str, model: type[Model]) -> AggregateSpec:
        """The aggregate as the core takes it; ``filter`` lookups across ``model``'s
        relations become subqueries, as in ``QuerySet.filter``."""
        from chakra.query import _order_spec

        tree = self.filter._tree(model) if self.filter is not None else None
        order = [_order_spec(model, term, []) for term in self.ordering]
        return (alias, self.function, self.field, self.distinct, tree, self._more(order))

    def __repr__(self) -> str:
        distinct = ", distinct=True" if self.distinct else ""
        filtered = f", filter={self.filter!r}" if self.filter is not None else ""
        return f"{type(self).__name__}({self.field!r}{distinct}{filtered})"


class Count(Aggregate):
    """How many rows have a value in the field (``"*"``: how many rows), each distinct
    value once with ``distinct=True``."""

    __slots__ = ()
    function = "count"


class Sum(Aggregate):
    """The sum of a numeric field."""

    __slots__ = ()
    function = "sum"


class Avg(Aggregate):
    """The mean of a numeric field."""

    __slots__ = ()
    function = "avg"


class Min(Aggregate):
    """The smallest value of a field."""

    __slots__ = ()
    function = "min"


class Max(Aggregate):
    """The largest value of a field."""

    __slots__ = ()
    function = "max"


class StdDev(Aggregate):
    """The standard deviation of a numeric field: of the values as the whole population,
    or as a sample with ``sample=True`` (``None`` for fewer than two values). A float, a
    ``Decimal`` for a ``Numeric`` field."""

    __slots__ = ("sample",)

    def __init__(
        self,
        field: str | Expression,
        *,
        sample: bool = False,
        distinct: bool = False,
        filter: Q | None = None,
        default: Any = None,
    ) -> None:
        super().__init__(field, distinct=distinct, filter=filter, default=default)
        self.sample = sample

    @property
    def function(self) -> str:  # type: ignore[override]
        return "stddev_samp" if self.sample else "stddev_pop"


class Variance(StdDev):
    """The variance of a numeric field (of the population, or of a sample with
    ``sample=True``)."""

    __slots__ = ()

    @property
    def function(self) -> str:  # type: ignore[override]
        return "var_samp" if self.sample else "var_pop"


class BoolAnd(Aggregate):
    """Whether every value of a boolean field is true (``None`` over no rows)."""

    __slots__ = ()
    function = "bool_and"


class BoolOr(Aggregate):
    """Whether any value of a boolean field is true (``None`` over no rows)."""

    __slots__ = ()
    function = "bool_or"


class _Ordered(Aggregate):
    """An aggregate whose result shows the order of its values."""

    __slots__ = ("_ordering",)

    def __init__(
        self,
        field: str | Expression,
        *,
        distinct: bool = False,
        filter: Q | None = None,
        ordering: Ordering = (),
        default: Any = None,
    ) -> None:
        super().__init__(field, distinct=distinct, filter=filter, default=default)
        terms = [ordering] if isinstance(ordering, (str, Expression, OrderBy)) else list(ordering)
        for term in terms:
            if not isinstance(term, (str, Expression, OrderBy)):
                raise TypeError(f"{type(self).__name__}(ordering=) takes field names and expressions, not {term!r}")
        self._ordering = terms

    @property
    def ordering(self) -> list[str | Expression | OrderBy]:
        return self._ordering


class ArrayAgg(_Ordered):
    """The values of a field as a list, in the order of ``ordering`` (names and
    expressions, as ``order_by`` takes them): PostgreSQL's ``array_agg``, as Django's
    ``ArrayAgg``. ``None`` over no rows; ``NULL`` values are kept.
    ``Post.objects.annotate(tag_names=ArrayAgg("tags__name", ordering="tags__name"))``."""

    __slots__ = ()
    function = "array_agg"


class StringAgg(_Ordered):
    """The values of a text field joined, ``delimiter`` between them, in the order of
    ``ordering``: PostgreSQL's ``string_agg``, as Django's ``StringAgg``. ``None`` over
    no rows; ``NULL`` values are left out."""

    __slots__ = ("delimiter",)

    def __init__(
        self,
        field: str | Expression,
        delimiter: str,
        *,
        distinct: bool = False,
        filter: Q | None = None,
        ordering: Ordering = (),
        default: Any = None,
    ) -> None:
        super().__init__(field, distinct=distinct, filter=filter, ordering=ordering, default=default)
        if not isinstance(delimiter, str):
            raise TypeError(f"StringAgg() takes a str delimiter, not {type(delimiter).__name__}")
        self.delimiter = delimiter

    function = "string_agg"

    def _args(self) -> list[Any]:
        return [("value", self.delimiter)]
