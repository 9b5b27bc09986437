"""Expressions the database computes from a row, as Django's: ``F`` (a field, in
:mod:`chakra.query`), ``Value``, the functions of :mod:`chakra.functions`
(``Coalesce``, ``Lower``, …) and conditional values, ``Case`` and ``When``::

    Customer.objects.annotate(
        tier=Case(
            When(spent__gte=1000, then=Value("gold")),
            When(Q(spent__gte=100) | Q(orders__gte=5), then=Value("silver")),
            default=Value("bronze"),
        )
    ).filter(tier="gold")
    Customer.objects.update(nickname=Coalesce("nickname", "name"))

They go wherever ``F`` goes: ``annotate()`` and ``values()`` (then filtered and ordered
by their name), ``update()``, and the right side of a filter (``name=Lower("email")``).
They combine with ``+``, ``-``, ``*`` and ``/``. As in Django, a string among a
function's arguments (or a ``When``'s ``then``, a ``Case``'s ``default``) names a field;
any other plain value is a ``Value``. A type that does not fit (``Lower`` of a number,
``Case`` branches of different types, text assigned to a number) raises
:class:`~chakra.FieldError` naming it.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .query import Q

__all__ = ["Case", "Exists", "Expression", "Func", "OrderBy", "OuterRef", "RawSQL", "Subquery", "Value", "When", "Window"]


class Expression:
    """A value the database computes; ``_tree`` is what the core compiles."""

    __slots__ = ("_tree",)

    _tree: tuple[Any, ...]

    @classmethod
    def _node(cls, tree: tuple[Any, ...]) -> Expression:
        node = Expression.__new__(Expression)
        node._tree = tree
        return node

    def _op(self, op: str, other: Expression | float | int | decimal.Decimal, reflected: bool = False) -> Expression:
        if not isinstance(other, (Expression, int, float, decimal.Decimal)) or isinstance(other, bool):
            return NotImplemented  # type: ignore[no-any-return]  # the operator's own dunder returns it
        them = other._tree if isinstance(other, Expression) else ("value", other)
        return Expression._node(("op", op, them, self._tree) if reflected else ("op", op, self._tree, them))

    def __add__(self, other: Expression | float | int | decimal.Decimal) -> Expression:
        return self._op("+", other)

    def __radd__(self, other: float | int | decimal.Decimal) -> Expression:
        return self._op("+", other, reflected=True)

    def __sub__(self, other: Expression | float | int | decimal.Decimal) -> Expression:
        return self._op("-", other)

    def __rsub__(self, other: float | int | decimal.Decimal) -> Expression:
        return self._op("-", other, reflected=True)

    def __mul__(self, other: Expression | float | int | decimal.Decimal) -> Expression:
        return self._op("*", other)

    def __rmul__(self, other: float | int | decimal.Decimal) -> Expression:
        return self._op("*", other, reflected=True)

    def __truediv__(self, other: Expression | float | int | decimal.Decimal) -> Expression:
        return self._op("/", other)

    def __rtruediv__(self, other: float | int | decimal.Decimal) -> Expression:
        return self._op("/", other, reflected=True)

    def _call(self, function: str, other: Expression | float | int | decimal.Decimal, reflected: bool) -> Expression:
        """``function(self, other)`` (the other way round if ``reflected``)."""
        if not isinstance(other, (Expression, int, float, decimal.Decimal)) or isinstance(other, bool):
            return NotImplemented  # type: ignore[no-any-return]  # the operator's own dunder returns it
        them = _argument(other)
        return Expression._node(("call", function, [them, self._tree] if reflected else [self._tree, them]))

    def __mod__(self, other: Expression | int | decimal.Decimal) -> Expression:
        """The remainder (``Mod``): ``F("id") % 2``."""
        return self._call("Mod", other, reflected=False)

    def __rmod__(self, other: int | decimal.Decimal) -> Expression:
        return self._call("Mod", other, reflected=True)

    def __pow__(self, other: Expression | float | int | decimal.Decimal) -> Expression:
        """To the power of ``other`` (``Power``): ``F("side") ** 2``."""
        return self._call("Power", other, reflected=False)

    def __rpow__(self, other: float | int | decimal.Decimal) -> Expression:
        return self._call("Power", other, reflected=True)

    def asc(self, *, nulls_first: bool = False, nulls_last: bool = False) -> OrderBy:
        """Ascending, for ``order_by``; ``NULL``s last unless ``nulls_first``."""
        return OrderBy(self, descending=False, nulls_first=nulls_first, nulls_last=nulls_last)

    def desc(self, *, nulls_first: bool = False, nulls_last: bool = False) -> OrderBy:
        """Descending, for ``order_by``; ``NULL``s first unless ``nulls_last``."""
        return OrderBy(self, descending=True, nulls_first=nulls_first, nulls_last=nulls_last)

    def __repr__(self) -> str:
        return _show(self._tree)


class OrderBy:
    """An expression's order, from ``.asc()`` or ``.desc()``: ``order_by(F("score")
    .desc(nulls_last=True), Lower("name"))``."""

    __slots__ = ("descending", "expression", "nulls")

    def __init__(
        self, expression: Expression, *, descending: bool = False, nulls_first: bool = False, nulls_last: bool = False
    ) -> None:
        if nulls_first and nulls_last:
            raise ValueError("nulls_first and nulls_last cannot both be true")
        self.expression = expression
        self.descending = descending
        self.nulls = "first" if nulls_first else "last" if nulls_last else None

    def __repr__(self) -> str:
        nulls = f"nulls_{self.nulls}=True" if self.nulls else ""
        return f"{self.expression!r}.{'desc' if self.descending else 'asc'}({nulls})"


def _show(tree: tuple[Any, ...]) -> str:
    kind = tree[0]
    if kind == "field":
        return f"F({tree[1]!r})"
    if kind == "value":
        return repr(tree[1])
    if kind == "call":
        return f"{tree[1]}({', '.join(_show(arg) for arg in tree[2])})"
    if kind == "outer":
        return f"OuterRef({tree[1]!r})"
    if kind == "keytext":
        return f"KT({tree[1]!r})"
    if kind == "raw":
        return f"RawSQL({tree[1]!r}, {tree[2]!r})"
    if kind == "exists":
        return f"{'~' if tree[2] else ''}Exists({tree[1]!r})"
    if kind == "subquery":
        return f"Subquery({tree[1]!r})"
    if kind == "cast":
        return f"Cast({_show(tree[1])}, {tree[2]})"
    if kind == "window":
        return f"Window({tree[1][1]}(…))"
    if kind == "case":
        whens = [f"When({condition!r}, then={_show(then)})" for condition, then in tree[1]]
        default = [] if tree[2] is None else [f"default={_show(tree[2])}"]
        return f"Case({', '.join(whens + default)})"
    return f"({_show(tree[2])} {tree[1]} {_show(tree[3])})"


def _argument(value: Any) -> tuple[Any, ...]:
    """A function's argument as a tree: a string names a field (Django's rule), an
    expression is itself, an aggregate its value for each row (in ``annotate()``),
    anything else is a value."""
    from .aggregates import Aggregate  # which builds on this module

    if isinstance(value, Expression):
        return value._tree
    if isinstance(value, Aggregate):
        return value._as_expression()._tree
    if isinstance(value, str):
        return ("field", value)
    return ("value", value)


class Value(Expression):
    """A plain value as an expression: ``Value("gold")`` (a string alone would name a
    field), ``Value(None)`` for SQL ``NULL``."""

    __slots__ = ()

    def __init__(self, value: Any) -> None:
        self._tree = ("value", value)


class RawSQL(Expression):
    """SQL of your own where an expression goes, as Django's ``RawSQL``: ``%s`` where
    each of ``params`` goes (sent as parameters, never spliced in; ``%%`` for a ``%``),
    ``output_field`` the column type it gives, for the checks ``F`` gets::

        Book.objects.annotate(near=RawSQL("similarity(title, %s)", ["dune"], Float)).order_by("-near")

    It names the table's columns itself (``only()`` and ``defer()`` do not see them)."""

    __slots__ = ()

    def __init__(self, sql: str, params: Any = (), output_field: Any = None) -> None:
        from .fields import FieldType

        if not isinstance(sql, str):
            raise TypeError(f"RawSQL() takes SQL text, not {type(sql).__name__}")
        if isinstance(params, (str, bytes)) or not hasattr(params, "__iter__"):
            raise TypeError(f"RawSQL() takes its params as a list or tuple, not {params!r}")
        if isinstance(output_field, type) and issubclass(output_field, FieldType):
            output_field = output_field()
        if output_field is not None and not isinstance(output_field, FieldType):
            raise TypeError(f"RawSQL(output_field=) takes a column type such as Float, not {output_field!r}")
        sql_type = output_field.sql_type if output_field is not None else None
        self._tree = ("raw", sql, list(params), sql_type)


class Func(Expression):
    """A SQL function of expressions; the functions are its subclasses in
    :mod:`chakra.functions`, each taking ``arity`` arguments (``None``: two or more; a
    pair: from, to)."""

    __slots__ = ()

    arity: int | tuple[int, int] | None = 1

    def __init__(self, *expressions: Any) -> None:
        name = type(self).__name__
        arity = self.arity
        if arity is None and len(expressions) < 2:
            raise TypeError(f"{name}() takes at least two expressions, got {len(expressions)}")
        if isinstance(arity, int) and len(expressions) != arity:
            raise TypeError(f"{name}() takes {arity} expression{'s' * (arity != 1)}, got {len(expressions)}")
        if isinstance(arity, tuple) and not arity[0] <= len(expressions) <= arity[1]:
            raise TypeError(f"{name}() takes {arity[0]} to {arity[1]} expressions, got {len(expressions)}")
        self._tree = ("call", name, [_argument(e) for e in expressions])


class OuterRef(Expression):
    """A field of the row of the query a subquery is in (:class:`Exists`,
    :class:`Subquery`), as Django's: ``Book.objects.filter(author=OuterRef("pk"))`` is
    the books of each outer row's author. A queryset holding one runs only inside
    another."""

    __slots__ = ()

    def __init__(self, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"OuterRef() takes a field name, not {type(name).__name__}")
        self._tree = ("outer", name)


class Exists(Expression):
    """Whether a queryset has any row, asked for each row of the query it is in (its
    ``OuterRef``s name that row): a condition for ``filter()`` (``~Exists(...)`` for
    none), or a boolean for ``annotate()``::

        recent = Book.objects.filter(author=OuterRef("pk"), year__gte=2020)
        await Author.objects.filter(Exists(recent))
        await Author.objects.annotate(active=Exists(recent))
    """

    __slots__ = ()

    def __init__(self, queryset: Any, *, negated: bool = False) -> None:
        if not hasattr(queryset, "_chakra_subquery"):
            raise TypeError(f"Exists() takes a queryset, not {queryset!r}")
        self._tree = ("exists", queryset, negated)

    def __invert__(self) -> Exists:
        return Exists(self._tree[1], negated=not self._tree[2])


class Subquery(Expression):
    """The value of a queryset's first row, for each row of the query it is in (its
    ``OuterRef``s name that row; ``None`` where it has no row): a ``values()`` of one
    field, or a queryset's primary key::

        latest = Book.objects.filter(author=OuterRef("pk")).order_by("-year")
        await Author.objects.annotate(latest_title=Subquery(latest.values("title")[:1]))
    """

    __slots__ = ()

    def __init__(self, queryset: Any) -> None:
        if not hasattr(queryset, "_chakra_subquery"):
            raise TypeError(f"Subquery() takes a queryset, not {queryset!r}")
        self._tree = ("subquery", queryset)


class Window(Expression):
    """A window function, computed for each row over the rows of its partition (those
    with the same ``partition_by`` values), in ``order_by`` order, as Django's::

        Employee.objects.annotate(
            rank=Window(Rank(), partition_by="dept", order_by=F("salary").desc()),
            running=Window(Sum("salary"), order_by="hired"),
        ).filter(rank__lte=3)

    ``expression`` is one of :mod:`chakra.functions`' window functions (``RowNumber``,
    ``Rank``, ``DenseRank``, ``PercentRank``, ``CumeDist``, ``Ntile``, ``Lag``, ``Lead``,
    ``FirstValue``, ``LastValue``, ``NthValue``) or an aggregate (``Sum("salary")``, a
    running total with an order). Read it with ``annotate()``; filtering or sorting by
    its name then works on the rows it was computed over.
    """

    __slots__ = ()

    def __init__(self, expression: Any, partition_by: Any = None, order_by: Any = None) -> None:
        from .aggregates import Aggregate

        if isinstance(expression, Aggregate):
            if expression.distinct or expression.filter is not None:
                raise TypeError(f"Window() takes an aggregate without distinct or filter, got {expression!r}")
            field = expression.field
            args = [] if field == "*" else [_argument(field)]
            call: tuple[Any, ...] = ("aggregate", expression.function, args)
        elif isinstance(expression, Func):
            call = expression._tree
        else:
            raise TypeError(f"Window() takes a window function or an aggregate, got {expression!r}")
        self._tree = ("window", call, [_argument(e) for e in _listed(partition_by)], [_order(o) for o in _listed(order_by)])


def _listed(value: Any) -> list[Any]:
    """``None`` → nothing, a list or tuple → its items, anything else → itself alone."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _order(spec: Any, what: str = "a Window's order_by", named: Callable[[str], Any] = lambda name: name) -> Any:
    """An order term as the core takes it: a field's name (``"-salary"``) as ``named``
    gives it (as it is for a window: fields of the row's own model), an expression's
    tree, and where NULLs go around either. ``F("salary")`` is its name. ``what`` takes
    the terms, for the error."""
    if isinstance(spec, str):
        return named(spec)
    if isinstance(spec, Expression):
        spec = spec.asc()
    if not isinstance(spec, OrderBy):
        raise TypeError(f"{what} takes field names and expressions, not {spec!r}")
    tree = spec.expression._tree
    if tree[0] == "field":
        term = named(f"{'-' if spec.descending else ''}{tree[1]}")
    else:
        term = ("expression", tree, spec.descending)
    return term if spec.nulls is None else ("nulls", spec.nulls, term)


class When:
    """One branch of a :class:`Case`: its ``then`` where the condition holds. The
    condition is ``Q`` objects and keyword lookups, as ``filter()`` takes them."""

    __slots__ = ("condition", "then")

    def __init__(self, *conditions: Q | Exists, then: Any, **lookups: Any) -> None:
        from .query import Q  # the query module builds on this one

        if not conditions and not lookups:
            raise TypeError("When() needs a condition: Q objects or keyword lookups")
        self.condition: Q = Q(*conditions, **lookups)
        self.then = _argument(then)

    def __repr__(self) -> str:
        return f"When({self.condition!r}, then={_show(self.then)})"


class Case(Expression):
    """The ``then`` of the first :class:`When` whose condition holds for the row, else
    ``default`` (``NULL`` when not given)."""

    __slots__ = ()

    def __init__(self, *whens: When, default: Any = None) -> None:
        if not whens:
            raise TypeError("Case() needs at least one When()")
        for when in whens:
            if not isinstance(when, When):
                raise TypeError(f"Case() takes When() branches, got {when!r}")
        otherwise = None if default is None else _argument(default)
        self._tree = ("case", [(when.condition, when.then) for when in whens], otherwise)
