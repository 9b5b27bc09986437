"""Aggregates for :meth:`QuerySet.aggregate <chakra.QuerySet.aggregate>`, as in Django::

    await Account.objects.filter(active=True).aggregate(total=Sum("balance"), n=Count("*"))
    # {"total": 1250, "n": 9}

Each skips NULLs, and all but ``Count`` are ``None`` over no values. ``filter=Q(...)`` keeps
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

In ``aggregate()`` and ``values().annotate()`` the value aggregated may be computed from
each row (an ``F`` expression, a function, a ``Case``), named by its alias::

    await Line.objects.aggregate(total=Sum(F("price") * F("quantity")))
    await Order.objects.values("status").annotate(big=Sum(Case(When(total__gte=100, then=1), default=0)))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .expressions import Expression

if TYPE_CHECKING:
    from chakra.models import Model
    from chakra.query import Q

__all__ = ["Aggregate", "Avg", "Count", "Max", "Min", "Sum"]

# What the core reads an aggregate as: (alias, function, field, distinct, filter), the
# filter a `Q` tree or None; the field a name, ("reach", hops, columns) for a column of
# the rows relations lead to (see `chakra.query._reached_spec`), or an expression.
AggregateSpec = tuple[str, str, "str | tuple[Any, ...] | Expression", bool, "tuple[str, bool, list[Any]] | None"]


class Aggregate:
    """An aggregate of one field (or of an expression of each row) over the selected
    rows."""

    __slots__ = ("distinct", "field", "filter")

    function = ""

    def __init__(self, field: str | Expression, *, distinct: bool = False, filter: Q | None = None) -> None:
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

    @property
    def default_alias(self) -> str:
        """The key of a positional aggregate's result, Django's ``balance__sum``."""
        if self.field == "*" or isinstance(self.field, Expression):
            raise TypeError(f"{self!r} needs a name: aggregate(n={self!r})")
        return f"{self.field}__{self.function}"

    def _spec(self, alias: str, model: type[Model]) -> AggregateSpec:
        """The aggregate as the core takes it; ``filter`` lookups across ``model``'s
        relations become subqueries, as in ``QuerySet.filter``."""
        tree = self.filter._tree(model) if self.filter is not None else None
        return (alias, self.function, self.field, self.distinct, tree)

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
