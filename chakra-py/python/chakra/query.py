"""``QuerySet``: a lazy, immutable, chainable query over one model's table, and ``Q``
objects for conditions combined with ``|``, ``&`` and ``~``.

Nothing is sent until a terminal runs: ``await qs`` (or ``await qs.all()``), ``first``,
``last``, ``latest``, ``earliest``, ``in_bulk``, ``get``, ``count``, ``exists``,
``aggregate``, ``explain``, ``create``, ``get_or_create``, ``update_or_create``, ``update``,
``delete``, ``bulk_create``, ``bulk_update``, ``values``, ``values_list``, ``stream``. Each
has a blocking ``_sync`` twin. The query's state is the Rust core's query AST; field and
lookup names are checked when ``filter`` is called, so a typo raises
:class:`~chakra.FieldError` before any SQL exists.

``values()`` and ``values_list()`` return :class:`Values`, awaitable for the rows, whose
``annotate(...)`` groups them (Django's ``values("status").annotate(n=Count("*"))``).

``prefetch_related("author", "book_set__reviews")`` loads relations (see
:mod:`chakra.relations`) with the rows: one more query per relation named, whatever the
number of rows.

Inside a session's scope (``async with Session():``) every query runs on the session's
connection and returns the session's instances (one object per row); elsewhere each query
takes a pooled connection of its own.
"""

from __future__ import annotations

import collections
import copy
import functools
import operator
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, Literal, NoReturn, TypeVar, overload

from . import _core
from .aggregates import Aggregate, AggregateSpec
from ._bridge import Steps, run_async, run_sync
from .database import default_database
from . import errors as chakra_errors
from .errors import IntegrityError
from .expressions import Exists, Expression, OrderBy, _order
from .fields import DateTime
from .functions import Trunc
from .many import ManyToMany
from .models import _stamp
from .relations import Relation, _pk_name
from .session import Session, current_session
from .signals import Send, post_delete, post_save, pre_delete, pre_save

if TYPE_CHECKING:
    from .database import Database
    from .models import Model

__all__ = ["F", "Manager", "Prefetch", "Q", "QuerySet", "RawQuerySet", "Values"]

M = TypeVar("M", bound="Model")
# A terminal that loads instances: ``make(target, identity, joined)`` (see ``QuerySet._load``).
Load = Callable[[Any, Any, Any], _core.Op]

_STREAM_CHUNK = 500
# A stream holds its connection until it ends: the queries loading each chunk's relations
# could not run on it, so it refuses prefetch_related rather than ignore it.
_STREAM_INSTEAD = (
    "load the rows with all(), a slice at a time for many rows (qs[:1000], qs[1000:2000], …), "
    "or leave prefetch_related out"
)


class F(Expression):
    """A field's value in the row itself, for updates the database computes and filters
    that compare a row's fields with each other::

        Account.objects.filter(id=1).update(balance=F("balance") - 10)
        Account.objects.filter(balance__lt=F("limit") * 2)

    Unlike reading, subtracting and saving, the update loses no concurrent change. Combine
    with numbers and other expressions by ``+``, ``-``, ``*`` and ``/``. Filters take
    expressions in the comparisons: ``exact``, ``ne``, ``gt``, ``gte``, ``lt``, ``lte``. An
    unknown field, a field of another type, or arithmetic on a non-numeric field raises
    :class:`~chakra.FieldError`. ``F("author__name")`` reads a field of the row foreign
    keys lead to (``NULL`` where a key is), in arithmetic and functions too
    (``Lower("author__name")``); in ``annotate()``, ``F("created__year")`` reads a part of
    a date. The functions of :mod:`chakra.functions` and ``Case``
    (:mod:`chakra.expressions`) go wherever ``F`` goes.
    """

    __slots__ = ()

    def __init__(self, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"F() takes a field name, not {type(name).__name__}")
        self._tree = ("field", name)


def _create_values(model: type[Model], lookups: dict[str, Any], defaults: dict[str, Any] | None) -> dict[str, Any]:
    """A new row's values for ``get_or_create``: the exact lookups (``pk`` as the primary
    key's name), then the defaults."""
    pk = model._meta.pk
    values = {(pk.name if k == "pk" and pk is not None else k): v for k, v in lookups.items() if "__" not in k}
    values.update(_called(defaults))
    return values


def _assign(obj: Model, values: dict[str, Any] | None) -> None:
    """Sets ``values`` (callables called) on ``obj``, for its session to save."""
    for name, value in _called(values).items():
        setattr(obj, name, value)


def _called(defaults: dict[str, Any] | None) -> dict[str, Any]:
    """``defaults`` with each callable value replaced by what calling it returns."""
    return {k: v() if callable(v) else v for k, v in (defaults or {}).items()}


def _split_exprs(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Plain values, and expressions (``F``, functions, ``Case``) as the trees the core
    compiles."""
    exprs = {k: v._tree for k, v in values.items() if isinstance(v, Expression)}
    if not exprs:
        return values, None
    return {k: v for k, v in values.items() if k not in exprs}, exprs


class Q:
    """A condition: keyword lookups joined with AND, combinable with ``|`` (or), ``&``
    (and) and ``~`` (not)::

        User.objects.filter(Q(name__startswith="A") | ~Q(age__lt=18))
    """

    __slots__ = ("children", "connector", "negated")

    AND = "AND"
    OR = "OR"
    XOR = "XOR"

    def __init__(self, *conditions: Q | Exists, **lookups: Any) -> None:
        for condition in conditions:
            if not isinstance(condition, (Q, Exists)):
                raise TypeError(f"Q() takes Q objects, Exists() and keyword lookups, got {condition!r}")
        self.children: list[Q | Exists | tuple[str, Any]] = [*conditions, *lookups.items()]
        self.connector = Q.AND
        self.negated = False

    @classmethod
    def _combine(cls, connector: str, children: list[Q | Exists | tuple[str, Any]], negated: bool = False) -> Q:
        q = cls()
        q.children = children
        q.connector = connector
        q.negated = negated
        return q

    def __or__(self, other: Q) -> Q:
        if not isinstance(other, Q):
            return NotImplemented
        return Q._combine(Q.OR, [self, other])

    def __and__(self, other: Q) -> Q:
        if not isinstance(other, Q):
            return NotImplemented
        return Q._combine(Q.AND, [self, other])

    def __xor__(self, other: Q) -> Q:
        """Exactly one of the two holds (Django's ``^``; of several, an odd number, an
        unknown one counting as not)."""
        if not isinstance(other, Q):
            return NotImplemented
        return Q._combine(Q.XOR, [self, other])

    def __invert__(self) -> Q:
        return Q._combine(self.connector, list(self.children), not self.negated)

    def _tree(self, model: type[Model] | None = None, annotations: Iterable[str] = ()) -> tuple[str, bool, list[Any]]:
        """The tree the core compiles; with ``model``, lookups across its relations
        (``author__name="Ann"``) become subqueries of the related model (see
        :func:`_across`), except those naming ``annotations``."""
        annotations = tuple(annotations)
        nested = (Q, Exists)
        children = [child for child in self.children if isinstance(child, nested) or model is None]
        if model is not None:
            lookups = [child for child in self.children if not isinstance(child, nested)]
            children += _across(model, lookups, self.connector == Q.AND, annotations)
        return (
            self.connector,
            self.negated,
            [
                child._tree(model, annotations) if isinstance(child, Q) else child._tree if isinstance(child, Exists) else child
                for child in children
            ],
        )

    def __repr__(self) -> str:
        inner = f" {self.connector} ".join(
            f"{c[0]}={c[1]!r}" if isinstance(c, tuple) else repr(c) for c in self.children
        )
        return f"{'~' if self.negated else ''}Q({inner})"


def _across(
    model: type[Model], lookups: list[tuple[str, Any]], together: bool, annotations: tuple[str, ...] = ()
) -> list[Any]:
    """``lookups`` of ``model`` with those across its relations as subqueries, as Django
    spans relations (with joins there):

    - ``author__name="Ann"`` (a forward relation): ``author_id__in=Author.objects.filter(name="Ann")``;
      ``author=ann`` and ``author__in=[ann, bob]`` compare the key with the rows' primary keys.
    - ``books__title="x"`` (a reverse one): ``id__in=Book.objects.filter(title="x").values("author_id")``.
      Lookups on one reverse relation joined by AND (``together``, the keywords of one
      ``filter()`` call) must hold for the same related row, as in Django: they share one
      subquery. ``books=book`` and ``books__in=[...]`` compare the related rows' primary
      keys; ``books__isnull=True`` keeps the rows no row refers to.
    """
    out: list[Any] = []
    reverse: dict[str, dict[str, Any]] = {}
    for key, value in lookups:
        # An annotation's name as given (`tags__name`, an aggregate's column), before a
        # many-to-many relation in it is spelled through its pairs.
        if any(key == alias or key.startswith(f"{alias}__") for alias in annotations):
            out.append((key, value))
            continue
        key = _through_pairs(model, key)
        name, _, rest = key.partition("__")
        relation = _key_relation(model, name)
        if relation is None or name in model._meta.fields:
            out.append((key, value))
        elif not relation.reverse:
            out.append(_forward(relation, rest, value))
        elif rest == "isnull":
            # Whether any row refers to it (Django's `books__isnull=True`: none does).
            target = QuerySet(relation.target).filter(**{f"{relation.field.name}__isnull": False})
            referred = Q(**{f"{relation.source_key}__in": target.values(relation.field.name)})
            out.append(~referred if value else referred)
        else:
            # `books=book`, `books__in=[...]`: the related rows' primary keys.
            target_pk = _pk_name(relation.target)
            head, _, tail = rest.partition("__")
            if not rest or (head in _core.LOOKUPS and not tail):
                rest, value = (f"{target_pk}__{rest}" if rest else target_pk), _keys_of(relation.target, value)
            if together:
                reverse.setdefault(name, {})[rest] = value
            else:
                out.append(_backward(relation, {rest: value}))
    for name, related in reverse.items():
        relation = _key_relation(model, name)
        assert relation is not None, "gathered from relations"
        out.append(_backward(relation, related))
    return out


def _key_relation(model: type[Model], name: str) -> Relation | None:
    """``model``'s relation ``name`` declared by a foreign key, if it has one."""
    relation = model._meta.relations.get(name)
    return relation if isinstance(relation, Relation) else None


def _forward_relation(model: type[Model], name: str) -> Relation | None:
    """``model``'s relation ``name`` if its own foreign key declares it (``"author"`` of
    a book; not the reverse of another model's key, one-to-one ones included)."""
    relation = _key_relation(model, name) if name not in model._meta.fields else None
    return relation if relation is not None and not relation.reverse else None


def _key_name(model: type[Model], name: str) -> str:
    """``name``, or for a forward relation's name the key field it is declared by
    (``"customer"`` → ``"customer_id"``), as Django reads a relation's name in
    ``distinct()``."""
    relation = _forward_relation(model, name)
    return name if relation is None else relation.source_key


def _through_pairs(model: type[Model], name: str) -> str:
    """``name`` with each many-to-many relation on its way spelled as the two relations
    it goes through (``"tags__name"`` → ``"tags_pairs__tag__name"``), for lookups and
    aggregates to follow as they follow foreign keys."""
    parts = name.split("__")
    for i, part in enumerate(parts):
        relation = model._meta.relations.get(part) if part not in model._meta.fields else None
        if relation is None:
            break
        if isinstance(relation, ManyToMany):
            parts[i] = relation.path
        model = relation.target
    return "__".join(parts)


Hops = list[tuple[str, "_core.Schema", str]]


def _reach(model: type[Model], name: str) -> tuple[Hops, type[Model], str, list[str], bool]:
    """The relations ``name`` (``"books__reviews__stars"``) goes through from ``model``,
    each as a hop (the key, the related schema, the field there it holds), the model
    they lead to, their path (``"books__reviews"``), the names after them
    (``["stars"]``), and whether any of them holds many rows."""
    names = _through_pairs(model, name).split("__")
    hops: Hops = []
    current = model
    many = False
    while names and names[0] in current._meta.relations and names[0] not in current._meta.fields:
        relation = _key_relation(current, names.pop(0))
        assert relation is not None, "many-to-many relations are spelled through their pairs"
        many = many or relation.many
        hops.append((relation.source_key, relation.target._meta.require_schema(), relation.target_key))
        current = relation.target
    # The names after the relations are the same in both spellings; a many-to-many
    # relation is one name of the path, two hops.
    parts = name.split("__")
    return hops, current, "__".join(parts[: len(parts) - len(names)]), names, many


def _joined_conditions(
    model: type[Model], conditions: tuple[Q | Exists, ...], lookups: dict[str, Any]
) -> Iterator[tuple[str, Q]]:
    """``(path, condition)`` for each of a ``filter()`` call's conditions on the rows of
    one path of relations holding many rows (``books__title__startswith="a"``, or a ``Q``
    whose every lookup names the fields of the same such rows), which Django applies to
    the one join of that path; a negated ``Q`` is a subquery in Django, and picks rows
    only."""
    for key, value in lookups.items():
        if (path := _many_path(model, key)) is not None:
            yield path, Q(**{key: value})
    for condition in conditions:
        if isinstance(condition, Q) and not _negated(condition):
            paths = {_many_path(model, key) for key in _lookup_keys(condition)}
            if len(paths) == 1 and (path := paths.pop()) is not None:
                yield path, condition


def _many_path(model: type[Model], key: str) -> str | None:
    """The path of relations to rows holding many a lookup names a field of
    (``"books__reviews"`` for ``books__reviews__stars__gte``); ``None`` for any other."""
    head = key.split("__")[0]
    if "__" not in key or head in model._meta.fields or head not in model._meta.relations:
        return None
    _, _, path, names, many = _reach(model, key)
    return path if many and names else None


def _negated(q: Q) -> bool:
    """Whether ``q`` or a ``Q`` inside it is negated, or holds an ``Exists``."""
    return q.negated or any(isinstance(c, Exists) or (isinstance(c, Q) and _negated(c)) for c in q.children)


def _many_reach(model: type[Model], name: str, method: str) -> tuple[Hops, str] | None:
    """For a field across relations one of which holds many rows (``"books__title"``,
    ``"tags__name"``, ``"author__books"``): the hops to the rows it names and their
    field (the primary key for a relation's own name); ``None`` for any other name."""
    if "__" not in name and not isinstance(model._meta.relations.get(name), (Relation, ManyToMany)):
        return None
    hops, current, path, names, many = _reach(model, name)
    if not many:
        return None
    if len(names) > 1 or (names and names[0] not in current._meta.fields and names[0] != "pk"):
        raise chakra_errors.FieldError(
            f"{method}({name!r}): {'__'.join(names)!r} is not a field of {current.__name__}, "
            f"which {path} leads to (its fields: {', '.join(current._meta.field_names)})"
        )
    pk = current._meta.pk
    assert pk is not None, "relations join concrete models"
    return hops, pk.name if not names or names[0] == "pk" else names[0]


def _related_aggregate(
    model: type[Model], alias: str, agg: Aggregate, joined: tuple[tuple[str, Q], ...] = ()
) -> tuple[Any, ...]:
    """``Count("books")``, ``Sum("books__pages", filter=Q(books__year__gte=2000))``,
    ``Count("books__reviews")`` on ``model``: the aggregate of the rows a chain of
    relations leads to, as the core's annotation spec, its filter's lookups relative to
    the last related model (each of its rows counts once per chain reaching it, as in
    Django's join); the rows meet what ``filter()`` asked of that relation's rows
    (``joined``), as Django's join reuse has them."""
    if isinstance(agg.field, Expression):
        raise chakra_errors.FieldError(
            f"`{alias}`: annotate() aggregates the rows relations lead to; an aggregate of {agg.field!r} "
            "goes in aggregate() or values(...).annotate()"
        )
    hops, current, path, names, _ = _reach(model, agg.field)
    if not hops or len(names) > 1:
        known = ", ".join(model._meta.relations) or "none"
        raise chakra_errors.FieldError(
            f"`{alias}`: annotate() aggregates the rows relations lead to, as Count(\"relation\"), "
            f'Sum("relation__field") or Count("relation__relation"); got {agg.field!r} '
            f"(relations of {model.__name__}: {known})"
        )
    pk = current._meta.pk
    assert pk is not None, "relations join concrete models"
    condition = None
    effective = _joined_filter(agg.filter, path, joined)
    if effective is not None:
        condition = _relative(effective, path, alias)._tree(current)
    field = names[0] if names else pk.name
    order = [f"{'-' * name.startswith('-')}{reached}" for name, reached in _reached_order(agg, path, alias)]
    return ("related", hops, agg.function, field, agg.distinct, condition, agg._more(order))


def _reached_order(agg: Aggregate, path: str, alias: str) -> list[tuple[str, str]]:
    """The terms of ``agg``'s ordering across ``path`` (``"-tags__name"``), each with
    the field of the rows it reaches (``"name"``)."""
    terms: list[tuple[str, str]] = []
    for term in agg.ordering:
        name = term.lstrip("-+") if isinstance(term, str) else ""
        if not isinstance(term, str) or not name.startswith(f"{path}__") or "__" in name[len(path) + 2 :]:
            raise chakra_errors.FieldError(
                f"`{alias}`: the ordering of an aggregate across {path} names fields of the rows it reaches "
                f"({path}__field or -{path}__field); got {term!r}"
            )
        terms.append((term, name[len(path) + 2 :]))
    return terms


def _joined_filter(condition: Q | None, path: str, joined: tuple[tuple[str, Q], ...]) -> Q | None:
    """``condition`` and what ``filter()`` asked of the rows of ``path`` (Django counts
    only the rows its join kept), in the model's spelling."""
    kept = [q for on, q in joined if on == path]
    if condition is not None:
        kept.append(condition)
    return functools.reduce(operator.and_, kept) if kept else None


def _reached_spec(
    model: type[Model], alias: str, agg: Aggregate, joined: tuple[tuple[str, Q], ...] = ()
) -> AggregateSpec:
    """An aggregate of the rows of a group, or of all the rows, as the core takes it. One
    across relations (``Count("books")``, ``Sum("books__pages")``) reads a column of the
    rows they lead to, joined to each row as Django joins them (each row counting once
    per row it reaches), and its filter may name their fields the same way
    (``filter=Q(books__pages__gt=100)``)."""
    if isinstance(agg.field, Expression):
        return agg._spec(alias, model)
    hops, last, path, names, _ = _reach(model, agg.field)
    if not hops:
        return agg._spec(alias, model)
    if len(names) > 1:
        raise chakra_errors.FieldError(
            f"`{alias}`: {names[0]!r} is not a field of {last.__name__} to aggregate ({agg.field!r})"
        )
    pk = last._meta.pk
    assert pk is not None, "relations join concrete models"
    columns = [(agg.field, names[0] if names else pk.name)]
    effective = _joined_filter(agg.filter, path, joined)
    for key in _lookup_keys(effective) if effective is not None else []:
        if key.startswith(f"{path}__"):
            field = key[len(path) + 2 :].split("__")[0]
            if field not in last._meta.fields and field != "pk":
                raise chakra_errors.FieldError(
                    f"`{alias}`: the filter of an aggregate across {path} names fields of the rows it reaches "
                    f"({path}__field__lookup); {key!r} does not name a field of {last.__name__}"
                )
            reached = (f"{path}__{field}", pk.name if field == "pk" else field)
            if reached not in columns:
                columns.append(reached)
    order = []
    for term, field in _reached_order(agg, path, alias):
        if field not in last._meta.fields and field != "pk":
            raise chakra_errors.FieldError(f"`{alias}`: {term!r} does not name a field of {last.__name__}")
        reached = (f"{path}__{field}", pk.name if field == "pk" else field)
        if reached not in columns:
            columns.append(reached)
        order.append(term)
    tree = effective._tree(model, [a for a, _ in columns]) if effective is not None else None
    return (alias, agg.function, ("reach", hops, columns), agg.distinct, tree, agg._more(order))


def _f_value(model: type[Model], f: F) -> Any:
    """An ``F`` annotation as the core takes it: arithmetic on the row's fields, or one
    name across forward relations (``F("author__name")``, read as ``values()`` reads it)
    or of a part of a date (``F("created__year")``)."""
    kind, *rest = f._tree
    named = _named_spec(model, rest[0], "F") if kind == "field" else None
    return f._tree if named is None else named


def _resolve(tree: Any, annotated: dict[str, Any], aggregate: Callable[[Aggregate], Any]) -> Any:
    """An expression tree with each field ``annotated`` names as ``("annotation", name,
    value)``, the annotation's value, and each aggregate in it (``Count("books") * 2``)
    as ``aggregate`` gives it (see ``QuerySet._resolved``); the same tree object when it
    names neither."""
    if not isinstance(tree, tuple) or not tree:
        return tree
    tag = tree[0]
    if tag == "field" and tree[1] in annotated:
        return ("annotation", tree[1], annotated[tree[1]])
    if tag == "aggregate":
        return aggregate(tree[1])

    def each(parts: Iterable[Any]) -> tuple[list[Any], bool]:
        parts = list(parts)
        resolved = [_resolve(part, annotated, aggregate) for part in parts]
        return resolved, any(new is not old for new, old in zip(resolved, parts))

    if tag == "op":
        (left, right), changed = each(tree[2:4])
        return ("op", tree[1], left, right) if changed else tree
    if tag == "call":
        args, changed = each(tree[2])
        return ("call", tree[1], args) if changed else tree
    if tag == "cast":
        (value,), changed = each(tree[1:2])
        return ("cast", value, *tree[2:]) if changed else tree
    if tag == "case":
        thens, changed = each([then for _, then in tree[1]] + [tree[2]])
        whens = [(condition, then) for (condition, _), then in zip(tree[1], thens)]
        return ("case", whens, thens[-1]) if changed else tree
    return tree


def _resolve_condition(
    tree: tuple[str, bool, list[Any]], resolve: Callable[[Any], Any]
) -> tuple[str, bool, list[Any]]:
    """A ``Q`` tree with the expressions it compares with as ``resolve`` gives them
    (``rank__lte=F("n")``, ``n`` an annotation); the same tree when none changes."""
    connector, negated, children = tree
    resolved: list[Any] = []
    for child in children:
        if len(child) == 2 and isinstance(child[1], Expression):
            value = resolve(child[1]._tree)
            child = child if value is child[1]._tree else (child[0], Expression._node(value))
        elif len(child) == 3 and child[0] != "exists":
            child = _resolve_condition(child, resolve)
        resolved.append(child)
    changed = any(new is not old for new, old in zip(resolved, children))
    return (connector, negated, resolved) if changed else tree


def _named_spec(model: type[Model], name: str, method: str) -> tuple[Any, ...] | None:
    """What a name that is not a field reads, as the core's annotations take it: a field
    across forward relations (``"author__name"``) or a part of a date
    (``"created__year"``); ``None`` for a field's own name."""
    if "__" not in name or name in model._meta.fields:
        return None
    referred = _referred(model, name, method, "read")
    return ("named", name) if referred is None else ("referred", *referred)


def _conflicts(
    ignore: bool, update: bool, update_fields: Iterable[str] | None, unique_fields: Iterable[str] | None
) -> tuple[Any, ...] | None:
    """``bulk_create``'s handling of rows that conflict with existing ones, as the core
    takes it."""
    if ignore and update:
        raise ValueError("bulk_create() takes ignore_conflicts or update_conflicts, not both")
    for name, fields in (("update_fields", update_fields), ("unique_fields", unique_fields)):
        if isinstance(fields, str):
            raise TypeError(f"bulk_create({name}=) takes a list of field names, not one string")
        if fields is not None and not update:
            raise ValueError(f"bulk_create({name}=) goes with update_conflicts=True")
    if ignore:
        return ("ignore",)
    if update:
        return ("update", list(unique_fields or []), list(update_fields or []))
    return None


def _lookup_keys(q: Q) -> Iterator[str]:
    """Every lookup's key in ``q``, nested ones too."""
    for child in q.children:
        if isinstance(child, Q):
            yield from _lookup_keys(child)
        elif isinstance(child, tuple):
            yield child[0]


def _rekeyed(q: Q, key: Callable[[str], str]) -> Q:
    """``q`` with each lookup's key as ``key`` gives it."""
    children: list[Q | Exists | tuple[str, Any]] = [
        _rekeyed(c, key) if isinstance(c, Q) else c if isinstance(c, Exists) else (key(c[0]), c[1]) for c in q.children
    ]
    return Q._combine(q.connector, children, q.negated)


def _relative(q: Q, relation: str, alias: str) -> Q:
    """``q``'s lookups on ``relation__…`` as lookups on the related model: what an
    annotation's filter means (``Q(books__year__gte=2000)`` → ``Q(year__gte=2000)``)."""
    prefix = f"{relation}__"
    children: list[Q | Exists | tuple[str, Any]] = []
    for child in q.children:
        if isinstance(child, Q):
            children.append(_relative(child, relation, alias))
        elif isinstance(child, Exists):
            raise chakra_errors.FieldError(f"`{alias}`: the filter of an aggregate of {relation} takes no Exists()")
        elif child[0].startswith(prefix):
            children.append((child[0][len(prefix) :], child[1]))
        else:
            raise chakra_errors.FieldError(
                f"`{alias}`: the filter of an aggregate of {relation} names its rows' fields as "
                f"{relation}__field; got {child[0]!r}"
            )
    return Q._combine(q.connector, children, q.negated)


def _forward(relation: Relation, rest: str, value: Any) -> tuple[str, Any]:
    """A lookup across a forward relation: on the key itself when it names the target's
    primary key or only a lookup (``author=ann``, ``author__id__gt=3``,
    ``author__in=[ann, bob]``, ``author__isnull=True``), else a subquery of the target."""
    key = relation.field.name
    target = relation.target
    pk = target._meta.pk
    head, _, tail = rest.partition("__")
    if not rest:
        return (key, _keys_of(target, value))
    if head in ("pk", pk.name if pk is not None else "pk") and tail in ("", *_core.LOOKUPS):
        return (f"{key}__{tail}" if tail else key, _keys_of(target, value))
    if head in _core.LOOKUPS and not tail:
        return (f"{key}__{head}", _keys_of(target, value))
    return (f"{key}__in", QuerySet(target).filter(**{rest: value}))


def _backward(relation: Relation, lookups: dict[str, Any]) -> tuple[str, Any]:
    """Lookups across a reverse relation: the rows some related row matching them all
    refers to."""
    related = QuerySet(relation.target).filter(**lookups).values(relation.field.name)
    return (f"{relation.source_key}__in", related)


def _batches(objs: list[Any], size: int | None) -> list[list[Any]]:
    """``objs`` in lists of ``size`` (all in one without a size; none for no objects)."""
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
        raise ValueError(f"batch_size must be a positive int, got {size!r}")
    if not objs:
        return []
    step = size or len(objs)
    return [objs[i : i + step] for i in range(0, len(objs), step)]


def _keys_of(model: type[Model], value: Any) -> Any:
    """``value`` with ``model`` instances as their primary keys (lists too)."""
    if isinstance(value, model):
        return value.pk
    if isinstance(value, (list, tuple, set, frozenset)):
        return [item.pk if isinstance(item, model) else item for item in value]
    return value


class QuerySet(Generic[M]):
    """A query over ``model``'s table. Refinements return new querysets; ``await qs``
    runs it and returns the list of instances."""

    __slots__ = ("_annotated", "_db", "_default_order", "_joined", "_model", "_prefetch", "_query")

    def __init__(
        self,
        model: type[M],
        query: _core.Query | None = None,
        db: Database | None = None,
        prefetch: tuple[Prefetch, ...] = (),
        default_order: bool = False,
    ) -> None:
        self._model = model
        self._joined: tuple[tuple[str, Q], ...] = ()
        """``(path, condition)`` of what ``filter()`` asked of the rows of relations
        holding many rows, which the rows those relations reach for ``values()`` and
        aggregates meet too, as Django's join does."""
        self._annotated: dict[str, Any] = {}
        """The values ``annotate()`` and ``alias()`` named, as the core takes them, by
        name: what ``F(name)`` in later expressions and aggregates stands for."""
        self._default_order = default_order
        """Whether its order is the model's ``__ordering__``, which grouped and distinct
        values leave out (as Django's ``Meta.ordering``)."""
        if query is None:
            query = _core.Query(model._meta.require_schema())
            if model._meta.ordering:
                query = query.order_by([_order_spec(model, term, []) for term in model._meta.ordering])
                self._default_order = True
        self._query = query
        self._db = db
        self._prefetch = prefetch

    def _clone(
        self,
        query: _core.Query | None = None,
        *,
        prefetch: tuple[Prefetch, ...] | None = None,
        default_order: bool | None = None,
    ) -> QuerySet[M]:
        """A queryset derived from this one, of its chain class: ``query`` and the
        ``prefetch`` and ``default_order`` given, the rest as this one has them."""
        made = self._chain_class()(
            self._model,
            self._query if query is None else query,
            self._db,
            self._prefetch if prefetch is None else prefetch,
            self._default_order if default_order is None else default_order,
        )
        made._joined = self._joined
        made._annotated = self._annotated
        return made

    def _reached(self, name: str, hops: Hops, field: str) -> tuple[str, Hops, str, list[Any]]:
        """The rows ``name`` reaches across relations holding many rows, as the core's
        ``reach`` takes them: each hop's rows meeting what ``filter()`` asked of the rows
        at the end of that path (Django reuses that join, whose rows all meet it): the
        last hop's, the condition itself; an earlier one's (a relation before it, the
        pairs of a many-to-many one), that they lead to such rows."""
        _, _, path, _, _ = _reach(self._model, name)
        filters: list[Any] = [None] * len(hops)
        kept = _joined_filter(None, path, self._joined)
        if kept is not None:
            # Spelled through the pairs, each hop is a relation of the path.
            kept = _rekeyed(kept, lambda key: _through_pairs(self._model, key))
            names = _through_pairs(self._model, path).split("__")
            for end in range(1, len(names) + 1):
                prefix = "__".join(names[:end])
                before, model, _, _, _ = _reach(self._model, prefix)
                filters[len(before) - 1] = _relative(kept, prefix, name)._tree(model)
        return (name, hops, field, filters)

    @classmethod
    def _chain_class(cls) -> type[QuerySet[Any]]:
        """The class of the querysets refinements make: this one, so a subclass's own
        methods chain (``Post.objects.filter(...).published()``); a manager's, its
        queryset class."""
        return cls

    @classmethod
    def as_manager(cls) -> Any:
        """A manager for ``objects`` whose querysets are of this class, with its methods,
        as Django's ``QuerySet.as_manager()`` (typed ``Any``: a type checker then takes
        this class's methods on ``Post.objects``)::

            class PostQuerySet(QuerySet):
                def published(self):
                    return self.filter(status="live")

            class Post(Model):
                objects = PostQuerySet.as_manager()
                ...

            await Post.objects.published().order_by("-id")
        """
        own = {
            name: value
            for klass in reversed(cls.__mro__)
            if issubclass(klass, QuerySet) and klass is not QuerySet and not issubclass(klass, Manager)
            for name, value in vars(klass).items()
            if callable(value) and not name.startswith("__")
        }
        manager = type(f"{cls.__name__}Manager", (Manager,), {**own, "_queryset_class": cls, "__slots__": ()})
        return manager()

    @property
    def model(self) -> type[M]:
        return self._model

    # ------------------------------------------------------------------ refinements

    def all(self) -> QuerySet[M]:
        """This queryset (await it for the list of rows)."""
        return self._clone()

    def none(self) -> QuerySet[M]:
        """A queryset matching no row, as Django's: for code that must return a queryset
        whatever it found (``WHERE FALSE``; counts are 0, updates and deletes touch
        nothing)."""
        return self._clone(self._query.none())

    def filter(self, *conditions: Q | Exists, **lookups: Any) -> QuerySet[M]:
        """Rows matching every condition: ``filter(name__startswith="A", age__gte=18)``.

        Lookups: ``exact`` (the default), ``iexact``, ``contains``, ``icontains``,
        ``startswith``, ``istartswith``, ``endswith``, ``iendswith``, ``gt``, ``gte``,
        ``lt``, ``lte``, ``ne``, ``in``, ``isnull``, ``range``. The comparisons also take
        another field of the row: ``filter(balance__lt=F("limit"))``. ``in`` also takes
        another queryset, sent as a subquery of the same statement: its primary keys, or
        the one field of its ``values("field")`` / ``values_list("field", flat=True)``::

            Book.objects.filter(author_id__in=Author.objects.filter(name__startswith="A"))

        Lookups span relations (see :mod:`chakra.relations`), each relation as such a
        subquery: ``Book.objects.filter(author__name="Ann")``,
        ``Author.objects.filter(books__title__startswith="b")``.
        """
        if not conditions and not lookups:
            return self._clone()
        filtered = self._clone(self._query.filter(self._q(conditions, lookups), False))
        filtered._joined += tuple(_joined_conditions(self._model, conditions, lookups))
        return filtered

    def only(self, *fields: str) -> QuerySet[M]:
        """Instances with only ``fields`` (and the primary key) loaded: Django's
        ``only()``, SQLAlchemy's ``load_only()``, for rows with large columns not needed
        here. Reading a field left out is an ``AttributeError`` naming it (nothing is
        fetched behind your back); setting one saves it as set; a later query of the
        session that loads it fills it in. Replaces an earlier ``only()`` or
        ``defer()``."""
        self._plain_fields(fields, "only")
        return self._clone(self._query.load_only(list(fields)))

    def defer(self, *fields: str | None) -> QuerySet[M]:
        """Instances without ``fields`` loaded (added to those already left out), as
        :meth:`only` leaves them; ``defer(None)`` loads every field again."""
        if fields == (None,):
            return self._clone(self._query.load_only(list(self._model._meta.fields)))
        names = [f for f in fields if f is not None]
        self._plain_fields(names, "defer")
        pk = self._model._meta.pk
        if pk is not None and (pk.name in names or "pk" in names):
            raise chakra_errors.FieldError(f"defer({pk.name!r}): the primary key is always loaded")
        return self._clone(self._query.load_only([f for f in self._query.loaded_names if f not in names]))

    def _plain_fields(self, fields: Iterable[str], method: str) -> None:
        """Refuses what is not a field of the model's own: ``only`` and ``defer`` choose
        among its columns."""
        model = self._model
        for name in fields:
            if not isinstance(name, str):
                raise TypeError(f"{method}() takes field names, not {name!r}")
            if name != "pk" and name not in model._meta.fields:
                raise chakra_errors.FieldError(
                    f"{method}({name!r}): not a field of {model.__name__} (its fields: "
                    f"{', '.join(model._meta.field_names)})"
                )

    def union(self, *others: QuerySet[M], all: bool = False) -> QuerySet[M]:
        """The rows of this queryset or any of ``others`` (of the same model), each once
        unless ``all``: SQL's ``UNION``, Django's ``union()``. The result is ordered,
        sliced, counted, read (as instances or ``values()``); its parts' orders go, and
        filters, annotations and changes go on the parts before combining them::

            await Book.objects.filter(year__lt=1900).union(Book.objects.filter(pages__gt=900)).order_by("title")[:10]
        """
        return self._combine("union", others, all)

    def intersection(self, *others: QuerySet[M], all: bool = False) -> QuerySet[M]:
        """The rows of this queryset that each of ``others`` has too: SQL's ``INTERSECT``."""
        return self._combine("intersection", others, all)

    def difference(self, *others: QuerySet[M], all: bool = False) -> QuerySet[M]:
        """The rows of this queryset that none of ``others`` has: SQL's ``EXCEPT``."""
        return self._combine("difference", others, all)

    def _combine(self, op: str, others: tuple[QuerySet[M], ...], all: bool) -> QuerySet[M]:
        for other in others:
            if not isinstance(other, QuerySet):
                raise TypeError(f"{op}() combines querysets, not {other!r}")
            other._refuse_prefetch(op, "prefetch_related() on the combined queryset")
        return self._clone(self._query.combine(op, all, [other._query for other in others]))

    def _q(self, conditions: tuple[Q | Exists, ...], lookups: dict[str, Any]) -> tuple[str, bool, list[Any]]:
        """The conditions as the tree the core compiles, across relations and annotations."""
        tree = Q(*conditions, **lookups)._tree(self._model, self._query.annotation_names)
        return _resolve_condition(tree, self._resolved)

    def annotate(self, *args: Aggregate, **kwargs: Aggregate | Expression | Trunc) -> QuerySet[M]:
        """Adds a value computed for each row, read as an attribute of its instance, as
        Django's: an aggregate of a relation's rows (one correlated subquery each, in the
        same statement), or arithmetic on the row's fields::

            authors = await Author.objects.annotate(
                n=Count("books"), recent=Count("books", filter=Q(books__year__gte=2000)),
                pages=Sum("books__pages"),
            ).filter(n__gt=1).order_by("-n")
            authors[0].n

        The path may go on through further relations, forward or reverse
        (``Count("books__reviews")``, ``Sum("books__reviews__stars")``): each row at its
        end counts once per chain of rows reaching it, as with Django's joins, and the
        filter names that last model's fields (``books__reviews__stars__gte=4``).

        A positional aggregate is named ``relation__function`` (``books__count``).
        ``filter``, ``exclude``, ``order_by``, ``values`` and ``values_list`` then take the
        names (and ``update`` and ``delete`` the rows they pick). ``Avg`` of an integer or
        float field is a float. ``TruncMonth("created")``, the other functions of
        :mod:`chakra.functions` (``Coalesce("nickname", "name")``, ``Lower("email")``) and
        ``Case(When(...), default=...)`` are values per row too.
        """
        return self._annotating(self._annotation_specs("annotate", args, kwargs), True)

    def alias(self, *args: Aggregate, **kwargs: Aggregate | Expression | Trunc) -> QuerySet[M]:
        """Names values as :meth:`annotate` does, to be filtered and ordered by (and
        built on by later annotations and aggregates) but not read: the instances and
        values do not hold them, and one nothing names is not computed. Django's
        ``alias()``::

            authors = await Author.objects.alias(n=Count("books")).filter(n__gt=1).order_by("-n")
        """
        return self._annotating(self._annotation_specs("alias", args, kwargs), False)

    def _annotating(self, specs: list[tuple[str, Any]], selected: bool) -> QuerySet[M]:
        made = self._clone(self._query.annotate(specs, selected))
        made._annotated = {**self._annotated, **dict(specs)}
        return made

    def _annotation_specs(
        self, method: str, args: tuple[Aggregate, ...], kwargs: dict[str, Aggregate | Expression | Trunc]
    ) -> list[tuple[str, Any]]:
        """``annotate()``'s or ``alias()``'s values as the core takes them."""
        if self._query.combined:
            raise chakra_errors.ProgrammingError(
                f"cannot {method} combined querysets (union, intersection, difference): {method} the querysets "
                "they combine, alike"
            )
        named: dict[str, Aggregate | Expression | Trunc] = {}
        for agg in args:
            if not isinstance(agg, Aggregate):
                raise TypeError(
                    f"{method}() takes aggregates by position, and other expressions by name; got {agg!r}"
                )
            named[agg.default_alias] = agg
        named.update(kwargs)
        specs: list[tuple[str, Any]] = []
        for alias, value in named.items():
            taken = alias in self._model._meta.relations or alias.startswith("_") or hasattr(self._model, alias)
            if taken and alias not in self._model._meta.fields:  # a field's name: the core says so
                raise chakra_errors.FieldError(
                    f"the annotation `{alias}` is named as a relation or attribute of {self._model.__name__}: "
                    "name it otherwise"
                )
            if isinstance(value, Expression) and (resolved := self._resolved(value._tree)) is not value._tree:
                specs.append((alias, resolved))
            elif isinstance(value, F):
                specs.append((alias, _f_value(self._model, value)))
            elif isinstance(value, Expression):
                specs.append((alias, value._tree))
            elif isinstance(value, Trunc):
                specs.append((alias, value._spec))
            elif isinstance(value, Aggregate):
                specs.append((alias, _related_aggregate(self._model, alias, value, self._joined)))
            else:
                raise TypeError(
                    f"{method}() takes aggregates (Count, Sum, …), F, functions, Case or Trunc; got {alias}={value!r}"
                )
        return specs

    def exclude(self, *conditions: Q | Exists, **lookups: Any) -> QuerySet[M]:
        """Rows not matching the conditions (rows where they are unknown, i.e. NULL, are kept)."""
        if not conditions and not lookups:
            return self._clone()
        return self._clone(self._query.filter(self._q(conditions, lookups), True))

    def order_by(self, *fields: str | Expression | OrderBy) -> QuerySet[M]:
        """Sorted by ``fields`` (``"-name"`` descending); replaces any earlier ordering.
        A field of the row foreign keys lead to sorts by that row's (``"author__name"``,
        ``"-author__publisher__name"``; rows whose key is NULL sort as NULL: last
        ascending, first descending), and a part of a date by that part
        (``"-created__year"``). An expression sorts by its value (``Lower("name")``),
        and ``F("score").desc(nulls_last=True)`` says where NULLs go; ``"?"`` sorts at
        random, as Django's. A foreign key's relation (``"author"``) sorts by the related
        model's ``__ordering__``, else by the key, as Django's."""
        fields = tuple(term for spec in fields for term in _by_relation(self._model, spec))
        query = self._query
        names = [*query.annotation_names, *query.reached_names]
        # A field across a relation holding many rows joins them, for values() to read a
        # row per row reached (instances refuse such an order).
        for spec in fields:
            name = spec.lstrip("-+") if isinstance(spec, str) else None
            if name is not None and name not in names and (many := _many_reach(self._model, name, "order_by")):
                query = query.reach([self._reached(name, *many)])
                names.append(name)
        order = query.order_by([self._resolved_order(_order_spec(self._model, f, names)) for f in fields])
        return self._clone(order, default_order=False)

    def select_for_update(self, nowait: bool = False, skip_locked: bool = False, no_key: bool = False) -> QuerySet[M]:
        """Locks the matching rows until the transaction ends (``SELECT … FOR UPDATE``), so
        no other transaction changes them before this one writes. In a session, reading
        begins the session's transaction (as a write does); outside one it raises
        ``ProgrammingError``, since the locks would be released at once. ``nowait`` fails
        at once on rows another transaction holds, ``skip_locked`` leaves them out (a job
        queue's workers), ``no_key`` takes ``FOR NO KEY UPDATE``."""
        return self._clone(self._query.select_for_update(nowait, skip_locked, no_key))

    def reverse(self) -> QuerySet[M]:
        """The same rows in the opposite order (the primary key's, descending, if
        unordered). A sliced queryset cannot be reversed."""
        return self._clone(self._query.reverse())

    @property
    def ordered(self) -> bool:
        """Whether the rows come in an order (``order_by()``, or the model's
        ``__ordering__``), as Django's: slices and streams of an unordered queryset take
        the rows as the database finds them (``first()`` and ``last()`` go by the primary
        key)."""
        return self._query.ordered

    def distinct(self, *fields: str) -> QuerySet[M]:
        """Each row once (``SELECT DISTINCT``): with ``values``/``values_list``, each
        combination of the named fields' values once. Ordering must use those fields (the
        model's default order is left out where it names fields across relations).

        With ``fields`` (PostgreSQL's ``DISTINCT ON``, as Django's), the first row of each
        combination of their values, in an order that begins with them: each customer's
        latest order is ``Order.objects.order_by("customer", "-placed").distinct("customer")``.
        A forward relation's name stands for its key."""
        across = self._default_order and any("__" in term for term in self._model._meta.ordering)
        # The model's default order does not begin with the fields: DISTINCT ON refuses it.
        base = self.order_by() if across or (fields and self._default_order) else self
        return base._clone(base._query.distinct([_key_name(self._model, name) for name in fields]))

    def limit(self, n: int) -> QuerySet[M]:
        """At most ``n`` rows."""
        if n < 0:
            raise ValueError("limit must be >= 0")
        return self._clone(self._query.slice(0, n))

    def offset(self, n: int) -> QuerySet[M]:
        """Skips the first ``n`` rows."""
        if n < 0:
            raise ValueError("offset must be >= 0")
        return self._clone(self._query.slice(n, None))

    def using(self, database: Database) -> QuerySet[M]:
        """Runs on ``database``'s pool, whatever session is current."""
        made = self._clone()
        made._db = database
        return made

    def prefetch_related(self, *lookups: str | Prefetch | None) -> QuerySet[M]:
        """Loads the named relations with the rows, as Django's: one more query per
        relation (``WHERE key = ANY(...)`` over the keys of all the rows), whatever their
        number, on the connection the rows came from::

            books = await Book.objects.prefetch_related("author")
            books[0].author            # the Author (None for a NULL key); no query

        ``"author__book_set"`` goes on from the loaded rows (one query per level).
        Reverse relations are lists in primary key order, or in the order of the queryset
        a :class:`Prefetch` gives (``Prefetch("books", Book.objects.filter(...))``, whose
        filter picks the related rows loaded). Calls add up; ``prefetch_related(None)``
        forgets them. Used by ``all``, ``first``, ``last``, ``latest``, ``earliest``,
        ``get``, ``in_bulk`` and ``get_or_create``; ``stream()`` and ``values()`` refuse
        it. An unknown name raises :class:`~chakra.FieldError` here, before any SQL."""
        if lookups == (None,):
            return self._clone(prefetch=())
        merged = {p.key: p for p in self._prefetch}
        for lookup in lookups:
            if isinstance(lookup, str):
                lookup = Prefetch(lookup)
            if not isinstance(lookup, Prefetch):
                raise TypeError(
                    "prefetch_related() takes relation names and Prefetch objects (or None alone, to forget "
                    f"them), got {lookup!r}"
                )
            lookup._check(self._model)
            seen = merged.get(lookup.key)
            if seen is not None and seen.queryset is not None and lookup.queryset is not None:
                if seen.queryset is not lookup.queryset:
                    raise ValueError(f"{lookup.key!r} is prefetched twice, with two querysets: give it once")
            if seen is None or seen.queryset is None:
                merged[lookup.key] = lookup
        return self._clone(prefetch=tuple(merged.values()))

    def select_related(self, *names: str | None) -> QuerySet[M]:
        """Loads the rows foreign keys refer to (``"author"``, ``"author__publisher"``)
        in the rows' own statement, as Django's: one ``LEFT JOIN`` per relation, so a
        NULL or dangling key gives ``None`` and no row is lost::

            books = await Book.objects.select_related("author__publisher")   # 1 query
            books[0].author.publisher.name

        The rows are picked, sliced and locked (``select_for_update``: theirs only) as
        without it. No names: every relation through a non-nullable foreign key, and on
        from those rows likewise; ``select_related(None)`` forgets them. Reverse relations
        hold many rows: name those in ``prefetch_related``. Used by the terminals that
        return instances, ``stream()`` included; ``values()`` ignores it."""
        if names == (None,):
            return self._clone(self._query.unjoined())
        lookups = names or tuple(_non_null_paths(self._model, ()))
        query = self._query
        joined = {path: i for i, (path, _) in enumerate(query.joined())}
        for lookup in lookups:
            if not isinstance(lookup, str):
                raise TypeError(
                    f"select_related() takes relation names (or None alone, to forget them), got {lookup!r}"
                )
            path = ""
            for relation in _relation_path(self._model, lookup, "to join"):
                if not isinstance(relation, Relation) or relation.many:
                    kind = "many-to-many" if isinstance(relation, ManyToMany) else "reverse"
                    raise chakra_errors.FieldError(
                        f"select_related({lookup!r}): {relation.model.__name__}.{relation.name} is a {kind} "
                        f'relation (many rows); use prefetch_related("{lookup}")'
                    )
                owner, path = joined.get(path), f"{path}__{relation.name}" if path else relation.name
                if path not in joined:
                    schema = relation.target._meta.require_schema()
                    query = query.join(
                        path, owner, relation.source_key, schema, relation.target_key, relation._joined
                    )
                    joined[path] = len(joined)
        return self._clone(query)

    def __getitem__(self, key: slice) -> QuerySet[M]:
        if not isinstance(key, slice):
            raise TypeError(
                "querysets are sliced, not indexed: use qs[i:i + 1], or await qs.offset(i).first()"
            )
        if key.step is not None:
            raise ValueError("querysets cannot be sliced with a step")
        if (key.start is not None and key.start < 0) or (key.stop is not None and key.stop < 0):
            raise ValueError("querysets cannot be sliced with negative indices")
        return self._clone(self._query.slice(key.start, key.stop))

    def sql(self) -> tuple[str, list[Any]]:
        """The statement ``all()`` would send: ``(sql, params)``."""
        return self._query.statement()

    def _chakra_subquery(self) -> _core.Subquery:
        """The primary keys of the rows, as the value of another query's ``__in``."""
        return self._query.subquery()

    def __repr__(self) -> str:
        prefetch = f" prefetching {', '.join(p.lookup for p in self._prefetch)}" if self._prefetch else ""
        return f"<QuerySet {self._model.__name__}: {self._query.statement()[0]}{prefetch}>"

    # ------------------------------------------------------------------ where it runs

    def _session(self) -> Session | None:
        """The session this queryset runs in: the caller's, unless it names another database."""
        session = current_session()
        if session is not None and (self._db is None or self._db is session.database):
            return session
        return None

    def _scope(self) -> tuple[Any, dict[Any, Any] | None, Session | None]:
        """The target to run on, the session's identity map for the model, the session."""
        if self._query.correlated:
            raise chakra_errors.ProgrammingError(
                f"this {self._model.__name__} queryset names an outer query's row (OuterRef): "
                "it runs inside another query, as Exists(...) or Subquery(...)"
            )
        session = self._session()
        if session is not None:
            return session._handle(), session._identity_map(self._model), session
        return (self._db or default_database())._core, None, None

    # ------------------------------------------------------------------ terminals

    async def _run(self, make: Callable[[Any, Any], _core.Op]) -> Any:
        """Awaits the op ``make(target, identity)`` builds, once the session (if any) has
        sent its pending changes, so the query sees them (autoflush)."""
        target, identity, session = self._scope()
        if session is not None:
            await session._autoflush()
        return await make(target, identity)

    def _run_sync(self, make: Callable[[Any, Any], _core.Op]) -> Any:
        """:meth:`_run`, blocking."""
        target, identity, session = self._scope()
        if session is not None:
            session._autoflush_sync()
        return make(target, identity).wait_sync()

    async def _load(self, make: Load) -> Any:
        """:meth:`_run` for the terminals that return instances (a list, one, or ``None``),
        which ``make(target, identity, joined)`` loads through the session's identity maps
        of the model and of the joined models (``select_related``); then
        ``prefetch_related``'s queries over them."""
        if not self._prefetch:
            return self._from_database(await self._run(self._with_joined(make)))
        return self._from_database(await run_async(self._load_steps(make)))

    def _load_sync(self, make: Load) -> Any:
        """:meth:`_load`, blocking."""
        if not self._prefetch:
            return self._from_database(self._run_sync(self._with_joined(make)))
        return self._from_database(run_sync(self._load_steps(make)))

    def _from_database(self, found: Any) -> Any:
        """``found`` (instances, one, or ``None``), each marked with the database
        ``using()`` named, which its ``save()`` and ``delete()`` then write to."""
        if self._db is not None and found is not None:
            for obj in found if isinstance(found, list) else [found]:
                obj._chakra_db = self._db
        return found

    def _with_joined(self, make: Load) -> Callable[[Any, Any], _core.Op]:
        """``make`` as :meth:`_run` calls it, given the session's maps of the joined models."""
        return lambda target, identity: make(target, identity, _joined_maps(self._query, self._session()))

    def _load_steps(self, make: Load) -> Steps[Any]:
        target, identity, session = self._scope()
        if session is not None and session._needs_flush():
            yield from session._flush_steps()
        found = yield make(target, identity, _joined_maps(self._query, session))
        if self._prefetch:
            rows = found if isinstance(found, list) else [] if found is None else [found]
            joined = {path for path, _ in self._query.joined()}
            yield from _prefetch_steps(self._model, rows, _relation_tree(self._prefetch), target, session, joined)
        return found

    def __await__(self) -> Generator[Any, None, list[M]]:
        return self._fetch().__await__()

    def __bool__(self) -> bool:
        # Django's `if qs:` runs the query; here that is an await, which truth cannot do,
        # and a queryset that is always true would hide the mistake.
        raise TypeError(
            "a queryset has no truth value of its own: ask `await qs.exists()` (or `qs.exists_sync()`)"
        )

    def __len__(self) -> int:
        raise TypeError("a queryset has no len(): ask `await qs.count()`, or len() of `await qs`")

    def __iter__(self) -> NoReturn:
        # Django's `for obj in qs` runs the query; here that is an await.
        raise TypeError(
            "a queryset is read with `async for obj in qs` (or `await qs` for the list); "
            "blocking code iterates `qs.iterator()` or `qs.all_sync()`"
        )

    async def _fetch(self) -> list[M]:
        return await self._load(self._query.all)  # type: ignore[no-any-return]

    def all_sync(self) -> list[M]:
        """Every matching row (blocking)."""
        return self._load_sync(self._query.all)  # type: ignore[no-any-return]

    async def first(self) -> M | None:
        """The first row in the queryset's order (the primary key's if unordered), or ``None``."""
        return await self._load(self._query.first)  # type: ignore[no-any-return]

    def first_sync(self) -> M | None:
        return self._load_sync(self._query.first)  # type: ignore[no-any-return]

    def _get_op(
        self, conditions: tuple[Q, ...], lookups: dict[str, Any], target: Any, identity: Any, joined: Any
    ) -> _core.Op:
        model = self._model
        pk = model._meta.pk
        if not conditions and len(lookups) == 1 and self._is_unfiltered():
            ((key, value),) = lookups.items()
            if pk is not None and key in (pk.name, "pk", f"{pk.name}__exact", "pk__exact") and not isinstance(value, Expression):
                return _core.get_by_pk(target, model._meta.require_schema(), value, identity)
        return self.filter(*conditions, **lookups)._query.get(target, identity, joined)

    def _is_unfiltered(self) -> bool:
        manager = self._model._meta.manager
        return manager is not None and self._query is manager._query

    async def last(self) -> M | None:
        """The last row in the queryset's order (the primary key's if unordered), or ``None``."""
        return await self.reverse().first()

    def last_sync(self) -> M | None:
        return self.reverse().first_sync()

    def _by(self, fields: tuple[str, ...], latest: bool) -> QuerySet[M]:
        """Ordered so that the first row is the earliest (or the latest) by ``fields``."""
        if not fields:
            raise chakra_errors.FieldError("latest() and earliest() need at least one field to order by")
        return self.order_by(*((f[1:] if f.startswith("-") else f"-{f}") if latest else f for f in fields))

    async def latest(self, *fields: str) -> M:
        """The row with the greatest ``fields`` (``"-field"``: the smallest); raises
        ``Model.DoesNotExist`` if there is none."""
        return _found(self._model, await self._by(fields, True).first())

    def latest_sync(self, *fields: str) -> M:
        return _found(self._model, self._by(fields, True).first_sync())

    async def earliest(self, *fields: str) -> M:
        """The row with the smallest ``fields``; raises ``Model.DoesNotExist`` if none."""
        return _found(self._model, await self._by(fields, False).first())

    def earliest_sync(self, *fields: str) -> M:
        return _found(self._model, self._by(fields, False).first_sync())

    async def in_bulk(self, id_list: Iterable[Any] | None = None, *, field_name: str = "pk") -> dict[Any, M]:
        """The matching rows by primary key (or by ``field_name``, a unique field); with
        ``id_list``, only those keys (missing ones are left out)."""
        qs, name = self._bulk_by(id_list, field_name)
        return {getattr(obj, name): obj for obj in await qs}

    def in_bulk_sync(self, id_list: Iterable[Any] | None = None, *, field_name: str = "pk") -> dict[Any, M]:
        qs, name = self._bulk_by(id_list, field_name)
        return {getattr(obj, name): obj for obj in qs.all_sync()}

    def _bulk_by(self, id_list: Iterable[Any] | None, field_name: str) -> tuple[QuerySet[M], str]:
        """``in_bulk``'s query and the field its rows are keyed by, which must be unique:
        rows sharing a value would hide each other."""
        meta = self._model._meta
        pk = meta.pk
        name = pk.name if field_name == "pk" and pk is not None else field_name
        field = meta.fields.get(name)
        if field is None or not (field.primary_key or field.unique):
            raise chakra_errors.FieldError(
                f"in_bulk(field_name={field_name!r}): {self._model.__name__}.{name} is not a unique field"
            )
        return (self if id_list is None else self.filter(**{f"{name}__in": list(id_list)})), name

    def dates(self, field: str, kind: str, order: str = "ASC") -> Values[Any]:
        """The distinct dates of ``field`` (a date or timestamp) cut down to ``kind`` —
        ``"year"``, ``"month"``, ``"week"`` or ``"day"`` — as ``datetime.date`` values in
        ``order`` (``"ASC"`` or ``"DESC"``), as Django's ``dates()``: an archive's months.
        A timestamp's are its dates in the connection's time zone. Await it for the list."""
        if kind not in ("year", "month", "week", "day"):
            raise ValueError(f"dates() kind is 'year', 'month', 'week' or 'day', not {kind!r}")
        return self._truncated(field, ("trunc", field, kind, True), order, "dates")

    def datetimes(self, field: str, kind: str, order: str = "ASC") -> Values[Any]:
        """The distinct timestamps of ``field`` (a timestamp) cut down to ``kind`` —
        ``"year"``, ``"month"``, ``"week"``, ``"day"``, ``"hour"``, ``"minute"`` or
        ``"second"`` — in ``order``, as Django's ``datetimes()``."""
        if kind not in ("year", "month", "week", "day", "hour", "minute", "second"):
            raise ValueError(f"datetimes() kind is one of year, month, week, day, hour, minute, second, not {kind!r}")
        spec = self._model._meta.fields.get(field)
        if spec is not None and not isinstance(spec.type, DateTime):
            raise chakra_errors.FieldError(f"datetimes({field!r}): {self._model.__name__}.{field} is not a DateTime")
        return self._truncated(field, ("trunc", field, kind), order, "datetimes")

    def _truncated(self, field: str, spec: tuple[Any, ...], order: str, method: str) -> Values[Any]:
        if order not in ("ASC", "DESC"):
            raise ValueError(f"{method}() order is 'ASC' or 'DESC', not {order!r}")
        name = f"chakra_{method}"
        values: Values[Any] = Values(self._clone(self._query.annotate([(name, spec)])), (name,), "flat").distinct()
        return values.order_by(name if order == "ASC" else f"-{name}")

    async def contains(self, obj: M) -> bool:
        """Whether ``obj``'s row is among the matching rows (one ``EXISTS`` query), as
        Django's ``contains()``."""
        return await self._containing(obj).exists()

    def contains_sync(self, obj: M) -> bool:
        return self._containing(obj).exists_sync()

    def _containing(self, obj: M) -> QuerySet[M]:
        if type(obj) is not self._model:
            raise TypeError(f"contains() takes an instance of {self._model.__name__}, not {obj!r}")
        if obj.pk is None:
            raise ValueError(f"contains() takes a saved {self._model.__name__}: this one has no primary key yet")
        return self.filter(pk=obj.pk)

    async def get(self, *conditions: Q, **lookups: Any) -> M:
        """The one row matching: raises ``Model.DoesNotExist`` if none,
        ``Model.MultipleObjectsReturned`` if several."""
        found: M | None = await self._load(partial(self._get_op, conditions, lookups))
        return _found(self._model, found)

    def get_sync(self, *conditions: Q, **lookups: Any) -> M:
        found: M | None = self._load_sync(partial(self._get_op, conditions, lookups))
        return _found(self._model, found)

    async def count(self) -> int:
        """How many rows match."""
        return await self._run(lambda target, _: self._query.count(target))  # type: ignore[no-any-return]

    def count_sync(self) -> int:
        return self._run_sync(lambda target, _: self._query.count(target))  # type: ignore[no-any-return]

    async def exists(self) -> bool:
        """Whether any row matches."""
        return await self._run(lambda target, _: self._query.exists(target))  # type: ignore[no-any-return]

    def exists_sync(self) -> bool:
        return self._run_sync(lambda target, _: self._query.exists(target))  # type: ignore[no-any-return]

    async def explain(self, analyze: bool = False) -> str:
        """The database's plan for this queryset's rows, as text; with ``analyze=True``
        the query runs and the plan says what each step took."""
        return await self._run(lambda target, _: self._query.explain(target, analyze))  # type: ignore[no-any-return]

    def explain_sync(self, analyze: bool = False) -> str:
        return self._run_sync(lambda target, _: self._query.explain(target, analyze))  # type: ignore[no-any-return]

    def _aggregate_specs(self, args: tuple[Aggregate, ...], kwargs: dict[str, Aggregate]) -> list[AggregateSpec]:
        for agg in (*args, *kwargs.values()):
            if not isinstance(agg, Aggregate):
                raise TypeError(f"aggregate() takes aggregates (Count, Sum, Avg, Min, Max, …), got {agg!r}")
        named = {agg.default_alias: agg for agg in args}
        named.update(kwargs)
        return [
            _reached_spec(self._model, alias, self._over_annotations(agg), self._joined)
            for alias, agg in named.items()
        ]

    def _resolved(self, tree: Any) -> Any:
        """``tree`` with each field naming an annotation in place of its value (Django
        resolves ``F()`` to annotations first), and each aggregate as the value it has
        for each row; ``tree`` itself when it holds neither."""
        return _resolve(tree, self._annotated, self._aggregate_value)

    def _aggregate_value(self, agg: Aggregate) -> tuple[Any, ...]:
        """An aggregate inside an expression (``Coalesce(Sum("books__pages"), 0)``) as
        the annotation it stands for: its value for each row."""
        name = repr(agg)
        return ("annotation", name, _related_aggregate(self._model, name, agg, self._joined))

    def _resolved_order(self, term: Any) -> Any:
        """An order term with its expression resolved (``order_by(F("n") * -1)``)."""
        if not isinstance(term, tuple):
            return term
        if term[0] == "expression":
            tree = self._resolved(term[1])
            return term if tree is term[1] else ("expression", tree, term[2])
        if term[0] == "nulls":
            inner = self._resolved_order(term[2])
            return term if inner is term[2] else ("nulls", term[1], inner)
        return term

    def _over_annotations(self, agg: Aggregate) -> Aggregate:
        """``agg``, or a copy of it aggregating the annotations its field names
        (``annotate(n=Count("books")).aggregate(Avg("n"))``)."""
        tree = ("field", agg.field) if isinstance(agg.field, str) else agg.field._tree
        resolved = self._resolved(tree)
        if resolved is tree:
            return agg
        over = copy.copy(agg)
        over.field = Expression._node(resolved)
        return over

    async def aggregate(self, *args: Aggregate, **kwargs: Aggregate) -> dict[str, Any]:
        """Aggregates over the matching rows, as a dict by name::

            await Account.objects.aggregate(Sum("balance"), top=Max("balance"))
            # {"balance__sum": 1250, "top": 400}

        A positional aggregate is named ``field__function``. With a slice, a lock or
        ``distinct()``, over the rows the query selects."""
        return await self._run(  # type: ignore[no-any-return]
            lambda target, _: self._query.aggregate(target, self._aggregate_specs(args, kwargs))
        )

    def aggregate_sync(self, *args: Aggregate, **kwargs: Aggregate) -> dict[str, Any]:
        return self._run_sync(  # type: ignore[no-any-return]
            lambda target, _: self._query.aggregate(target, self._aggregate_specs(args, kwargs))
        )

    async def create(self, **values: Any) -> M:
        """Inserts a row and returns it, primary key and column values as stored."""
        return await run_async(self._create_steps(values))

    def create_sync(self, **values: Any) -> M:
        return run_sync(self._create_steps(values))

    def _create_steps(self, values: dict[str, Any]) -> Steps[M]:
        obj = self._model(**values)
        yield from self._insert_steps(obj)
        return obj

    def _insert_steps(self, obj: M) -> Steps[None]:
        """The insert of one instance, with its ``pre_save`` and ``post_save`` signals."""
        model = self._model
        if pre_save.has_listeners(model):
            yield Send(pre_save, model, [{"instance": obj, "created": True}])
        yield self._insert_op([obj])
        if post_save.has_listeners(model):
            yield Send(post_save, model, [{"instance": obj, "created": True, "update_fields": None}])

    async def get_or_create(self, defaults: dict[str, Any] | None = None, **lookups: Any) -> tuple[M, bool]:
        """The one row matching ``lookups`` and ``False``; if there is none, a new row made
        of ``lookups`` (those without ``__``) and ``defaults`` (callables are called) and
        ``True``. As in Django, a unique constraint over ``lookups`` makes it safe against a
        concurrent creator: its row is returned instead of the insert's ``IntegrityError``.
        In a session the insert is part of the session's transaction (begun if need be),
        inside a savepoint, so a lost race leaves that transaction usable."""
        return await run_async(self._get_or_create_steps(defaults, lookups))

    def get_or_create_sync(self, defaults: dict[str, Any] | None = None, **lookups: Any) -> tuple[M, bool]:
        return run_sync(self._get_or_create_steps(defaults, lookups))

    async def update_or_create(
        self,
        defaults: dict[str, Any] | None = None,
        create_defaults: dict[str, Any] | None = None,
        **lookups: Any,
    ) -> tuple[M, bool]:
        """As Django's: the row matching ``lookups``, locked (``select_for_update``), with
        ``defaults`` set on it and saved, and ``False``; if there is none, a new row made as
        :meth:`get_or_create` makes it (``create_defaults``, else ``defaults``), and
        ``True``. Concurrent calls for one row take turns on its lock. In a session it is
        part of the session's transaction (the locking read begins it; the lock holds until
        it ends); elsewhere it runs in a session of its own, committed at once."""
        return await self._atomic(partial(self._update_or_create_steps, defaults, create_defaults, lookups))

    def update_or_create_sync(
        self,
        defaults: dict[str, Any] | None = None,
        create_defaults: dict[str, Any] | None = None,
        **lookups: Any,
    ) -> tuple[M, bool]:
        return self._atomic_sync(partial(self._update_or_create_steps, defaults, create_defaults, lookups))

    async def _atomic(self, steps: Callable[[], Steps[T]], several: bool = True) -> T:
        """Runs ``steps``; when they send ``several`` statements outside a session, in a
        session of their own, so that they all commit or none does."""
        if several and self._session() is None:
            async with Session(self._db or default_database()):
                return await run_async(steps())
        return await run_async(steps())

    def _atomic_sync(self, steps: Callable[[], Steps[T]], several: bool = True) -> T:
        if several and self._session() is None:
            with Session(self._db or default_database()):
                return run_sync(steps())
        return run_sync(steps())

    def _get_steps(self, lookups: dict[str, Any]) -> Steps[M | None]:
        """``get``'s steps, with ``None`` for no row."""
        try:
            found: M | None = yield from self._load_steps(partial(self._get_op, (), lookups))
        except self._model.DoesNotExist:
            return None
        return found

    def _get_or_create_steps(self, defaults: dict[str, Any] | None, lookups: dict[str, Any]) -> Steps[tuple[M, bool]]:
        found = yield from self._get_steps(lookups)
        if found is not None:
            return found, False
        obj = self._model(**_create_values(self._model, lookups, defaults))
        session = self._session()
        try:
            if session is None:
                yield from self._insert_steps(obj)
                return obj, True
            # The session's transaction (begun as a write would), and a savepoint in it.
            yield from session._autobegin_steps()
            savepoint = yield from session.begin()._start_steps()
            try:
                yield from self._insert_steps(obj)
            except BaseException:
                try:
                    yield from savepoint._rollback_steps()
                except Exception:  # noqa: BLE001 - the insert's error is the one to report
                    pass
                raise
            yield from savepoint._commit_steps()
            return obj, True
        except IntegrityError as lost:
            found = yield from self._get_steps(lookups)
            if found is None:
                raise lost
            return found, False

    def _update_or_create_steps(
        self, defaults: dict[str, Any] | None, create_defaults: dict[str, Any] | None, lookups: dict[str, Any]
    ) -> Steps[tuple[M, bool]]:
        session = self._session()
        assert session is not None, "update_or_create runs in a session"
        creating = defaults if create_defaults is None else create_defaults
        obj, created = yield from self.select_for_update()._get_or_create_steps(creating, lookups)
        if not created:
            _assign(obj, defaults)
            yield from session._flush_steps()
        return obj, created

    async def bulk_create(
        self,
        objs: Iterable[M],
        batch_size: int | None = None,
        *,
        ignore_conflicts: bool = False,
        update_conflicts: bool = False,
        update_fields: Iterable[str] | None = None,
        unique_fields: Iterable[str] | None = None,
    ) -> list[M]:
        """Inserts many rows in one statement; fills in their primary keys and column
        values as stored, and returns them. As Django's, ``ignore_conflicts=True`` skips
        rows that would break a unique constraint (their primary keys are then left
        unset), and ``update_conflicts=True`` updates ``update_fields`` of the existing
        row whose ``unique_fields`` a row repeats instead (an upsert: ``ON CONFLICT …
        DO UPDATE``), every instance then holding its row as stored. ``batch_size``
        sends a statement per that many rows, all in one transaction (the session's, or
        one of their own)."""
        conflicts = _conflicts(ignore_conflicts, update_conflicts, update_fields, unique_fields)
        rows = list(objs)
        steps = partial(self._bulk_create_steps, rows, conflicts, batch_size)
        return await self._atomic(steps, len(_batches(rows, batch_size)) > 1)

    def bulk_create_sync(
        self,
        objs: Iterable[M],
        batch_size: int | None = None,
        *,
        ignore_conflicts: bool = False,
        update_conflicts: bool = False,
        update_fields: Iterable[str] | None = None,
        unique_fields: Iterable[str] | None = None,
    ) -> list[M]:
        conflicts = _conflicts(ignore_conflicts, update_conflicts, update_fields, unique_fields)
        rows = list(objs)
        steps = partial(self._bulk_create_steps, rows, conflicts, batch_size)
        return self._atomic_sync(steps, len(_batches(rows, batch_size)) > 1)

    def _bulk_create_steps(
        self, objs: list[M], conflicts: tuple[Any, ...] | None, batch_size: int | None = None
    ) -> Steps[list[M]]:
        session = self._session()
        if objs and conflicts is not None and session is not None:
            # The rows may exist: a session's pending changes to them go first.
            yield from session._flush_steps()
        for batch in _batches(objs, batch_size):
            yield self._insert_op(batch, conflicts)
        if session is not None and conflicts is not None and conflicts[0] == "update":
            # The session's own instance of a row the upsert updated holds it as stored.
            session._refresh_held(objs)
        return objs

    async def bulk_update(self, objs: Iterable[M], fields: Iterable[str], batch_size: int | None = None) -> int:
        """Writes ``fields`` of each of ``objs`` to its row (by primary key) in one
        statement whatever their number, and returns how many rows changed, as Django's.
        A wrong value is an error naming its field, before anything is sent.
        ``batch_size`` sends a statement per that many rows, in one transaction."""
        rows = list(objs)
        steps = partial(self._bulk_update_steps, rows, fields, batch_size)
        return await self._atomic(steps, len(_batches(rows, batch_size)) > 1)

    def bulk_update_sync(self, objs: Iterable[M], fields: Iterable[str], batch_size: int | None = None) -> int:
        rows = list(objs)
        steps = partial(self._bulk_update_steps, rows, fields, batch_size)
        return self._atomic_sync(steps, len(_batches(rows, batch_size)) > 1)

    def _bulk_update_steps(self, objs: list[M], fields: Iterable[str], batch_size: int | None) -> Steps[int]:
        if isinstance(fields, str):
            raise TypeError("bulk_update() takes a list of field names, not one string")
        names = list(fields)
        target, _, session = self._scope()
        if session is not None:
            yield from session._flush_steps()
        changed = 0
        # No rows still checks the fields named.
        for batch in _batches(objs, batch_size) or [[]]:
            changed += yield self._bulk_update_op(target, batch, names)
        return changed

    def _bulk_update_op(self, target: Any, objs: list[M], fields: list[str]) -> _core.Op:
        fields = list(fields)
        stamped = [f.name for f in self._model._meta.auto_now if f.name not in fields]
        if stamped and objs:
            _stamp(objs, adding=False)
            fields += stamped
        return _core.bulk_update(target, self._model._meta.require_schema(), objs, fields)

    def _insert_op(self, objs: list[M], conflicts: tuple[Any, ...] | None = None) -> _core.Op:
        target, identity, session = self._scope()
        schema = self._model._meta.require_schema()
        _stamp(objs, adding=True)
        self._from_database(objs)
        op = _core.flush(target, [("insert", schema, objs, identity, conflicts)])
        # Skipped rows leave their instances unsaved, and which they are is not known.
        if session is not None and conflicts != ("ignore",):
            session._track_inserted(objs)
        return op

    async def update(self, **values: Any) -> int:
        """Sets ``values`` on every matching row; returns how many rows changed. A value
        may be computed by the database from the row: ``balance=F("balance") - 10``. In a
        session holding instances of the model, the rows are read back (``RETURNING``)
        and the instances of them it holds get their new values, as SQLAlchemy's
        ``synchronize_session``; a rollback puts back what they held."""
        return await run_async(self._update_steps(values))

    def update_sync(self, **values: Any) -> int:
        return run_sync(self._update_steps(values))

    def _update_steps(self, values: dict[str, Any]) -> Steps[int]:
        stamped = {f.name: f.type.now() for f in self._model._meta.auto_now if f.name not in values}  # type: ignore[attr-defined]
        values = {**stamped, **values}
        target, identity, session = self._scope()
        if session is not None:
            yield from session._flush_steps()
        plain, exprs = _split_exprs(values)
        if exprs is not None:
            exprs = {name: self._resolved(tree) for name, tree in exprs.items()}
        if session is None or not identity:
            changed: int = yield self._query.update(target, plain, exprs)
            return changed
        rows: list[M] = yield self._query.update(target, plain, exprs, True)
        session._refresh_held(rows)
        return len(rows)

    async def delete(self) -> int:
        """Deletes every matching row; returns how many. In a session holding instances
        of the model, it lets go of those of the deleted rows (``obj in session`` is then
        false, and changing one saves nothing), as its own ``delete(obj)`` does."""
        return await run_async(self._delete_steps())

    def delete_sync(self) -> int:
        return run_sync(self._delete_steps())

    # Django's names for the awaitable terminals (its async API), so code written for
    # it runs as it is: `await qs.acount()` is `await qs.count()`.
    aget = get
    afirst = first
    alast = last
    alatest = latest
    aearliest = earliest
    acount = count
    aexists = exists
    acontains = contains
    ain_bulk = in_bulk
    aaggregate = aggregate
    acreate = create
    aget_or_create = get_or_create
    aupdate_or_create = update_or_create
    abulk_create = bulk_create
    abulk_update = bulk_update
    aupdate = update
    adelete = delete
    aexplain = explain

    def _delete_steps(self) -> Steps[int]:
        _, _, session = self._scope()
        if session is not None:
            yield from session._flush_steps()
        model = self._model
        if not (pre_delete.has_listeners(model) or post_delete.has_listeners(model)):
            return (yield from self._delete_rows_steps())
        # As Django's: the rows are read first, for the receivers, then deleted by key.
        objs: list[M] = yield from self._load_steps(self._query.all)
        if not objs:
            return 0
        yield Send(pre_delete, model, [{"instance": obj} for obj in objs])
        pk = model._meta.pk
        assert pk is not None, "concrete models have a primary key"
        by_key = QuerySet(model, None, self._db).filter(**{f"{pk.name}__in": [obj.pk for obj in objs]})
        deleted = yield from by_key._delete_rows_steps()
        yield Send(post_delete, model, [{"instance": obj} for obj in objs])
        return deleted

    def _delete_rows_steps(self) -> Steps[int]:
        """The ``DELETE``; a session holding instances of the model lets go of those of
        the deleted rows."""
        target, identity, session = self._scope()
        if session is None or not identity:
            deleted: int = yield self._query.delete(target)
            return deleted
        keys: list[Any] = yield self._query.delete(target, True)
        session._forget_deleted(self._model, keys)
        return len(keys)

    def values(self, *fields: str, **expressions: Expression | Trunc) -> Values[dict[str, Any]]:
        """Rows as dicts of the named fields (all fields when none are named) and of the
        named expressions (``month=TruncMonth("created")``): await it for the list. A
        field across a relation holding many rows (``"books__title"``, ``"tags__name"``)
        gives a row per row reached, as Django's join (``None`` where there is none).
        ``.annotate(n=Count("*"))`` makes it a row per group of those values instead,
        with the aggregates, as Django's ``values().annotate()``."""
        qs, fields = self._with_expressions(fields, expressions)
        return Values(qs, fields, "dict")

    def values_sync(self, *fields: str, **expressions: Expression | Trunc) -> list[dict[str, Any]]:
        return self.values(*fields, **expressions).all_sync()

    def _with_expressions(
        self, fields: tuple[str, ...], expressions: dict[str, Expression | Trunc]
    ) -> tuple[QuerySet[M], tuple[str, ...]]:
        """This queryset with ``expressions`` annotated, and ``fields`` with their names:
        what ``values(month=TruncMonth("created"))`` reads."""
        if not expressions:
            return self, fields
        return self.annotate(**expressions), (*fields, *expressions)

    @overload
    def values_list(
        self, *fields: str | Expression | Trunc, flat: Literal[False] = ..., named: bool = ...
    ) -> Values[tuple[Any, ...]]: ...

    @overload
    def values_list(self, *fields: str | Expression | Trunc, flat: Literal[True], named: bool = ...) -> Values[Any]: ...

    def values_list(self, *fields: str | Expression | Trunc, flat: bool = False, named: bool = False) -> Values[Any]:
        """Rows as tuples of the named fields and of expressions
        (``values_list("id", Lower("name"))``); ``flat=True`` with one gives its values,
        ``named=True`` named tuples (``row.name``), as Django's. Await it for the list;
        ``.annotate(...)`` groups as ``values`` does."""
        if flat and named:
            raise TypeError("values_list(): flat=True and named=True do not go together")
        qs, names = self._with_positional(fields)
        return Values(qs, names, "flat" if flat else "named" if named else "tuple")

    def values_list_sync(self, *fields: str | Expression | Trunc, flat: bool = False, named: bool = False) -> list[Any]:
        return self.values_list(*fields, flat=flat, named=named).all_sync()  # type: ignore[call-overload, no-any-return]

    def _with_positional(self, fields: tuple[str | Expression | Trunc, ...]) -> tuple[QuerySet[M], tuple[str, ...]]:
        """This queryset with the expressions among ``fields`` annotated, each under a
        name of its own (its class's, numbered, as Django's), and the names in order."""
        taken = {*(f for f in fields if isinstance(f, str)), *self._query.annotation_names, *self._model._meta.fields}
        names: list[str] = []
        expressions: dict[str, Expression | Trunc] = {}
        for field in fields:
            if isinstance(field, str):
                names.append(field)
                continue
            if not isinstance(field, (Expression, Trunc)):
                raise TypeError(f"values_list() takes field names and expressions, not {type(field).__name__}")
            prefix, n = type(field).__name__.lower(), 1
            while f"{prefix}{n}" in taken:
                n += 1
            name = f"{prefix}{n}"
            taken.add(name)
            expressions[name] = field
            names.append(name)
        return (self.annotate(**expressions) if expressions else self), tuple(names)

    @overload
    def stream(self, batch_size: None = None) -> RowStream[M]: ...

    @overload
    def stream(self, batch_size: int) -> BatchStream[M]: ...

    def stream(self, batch_size: int | None = None) -> RowStream[M] | BatchStream[M]:
        """Rows as they arrive from the server, for ``async for``; memory stays bounded
        whatever the result's size. With ``batch_size``, yields lists of that many rows.
        The connection is held until the iteration ends (breaking out early cancels the
        statement)."""
        self._refuse_prefetch("stream", _STREAM_INSTEAD)
        return _stream(self, batch_size)

    @overload
    def stream_sync(self, batch_size: None = None) -> Iterator[M]: ...

    @overload
    def stream_sync(self, batch_size: int) -> Iterator[list[M]]: ...

    def stream_sync(self, batch_size: int | None = None) -> Iterator[M] | Iterator[list[M]]:
        """``stream`` for a plain ``for`` loop (blocking)."""
        self._refuse_prefetch("stream_sync", _STREAM_INSTEAD)
        return _stream_sync(self, batch_size)

    def __aiter__(self) -> AsyncIterator[M]:
        return self.stream().__aiter__()

    def aiterator(self, chunk_size: int = _STREAM_CHUNK) -> RowStream[M]:
        """Django's name for :meth:`stream`: the rows as they arrive, ``chunk_size`` at a
        time from the server, for ``async for``."""
        self._refuse_prefetch("aiterator", _STREAM_INSTEAD)
        return _stream(self, None, chunk_size)

    def iterator(self, chunk_size: int = _STREAM_CHUNK) -> Iterator[M]:
        """Django's name for :meth:`stream_sync`: the rows as they arrive, ``chunk_size``
        at a time from the server, for a plain ``for`` loop (blocking)."""
        self._refuse_prefetch("iterator", _STREAM_INSTEAD)
        return _stream_sync(self, None, chunk_size)

    def _refuse_prefetch(self, terminal: str, instead: str) -> None:
        """Raises ``ProgrammingError`` for a terminal that would ignore ``prefetch_related``."""
        if self._prefetch:
            raise chakra_errors.ProgrammingError(
                f"{terminal}() does not prefetch: prefetch_related({', '.join(repr(p.lookup) for p in self._prefetch)}) "
                f"on {self._model.__name__} would be ignored; {instead}"
            )


T = TypeVar("T")


@functools.lru_cache(maxsize=256)
def _named_row(fields: tuple[str, ...]) -> Any:
    """The named tuple class of ``values_list(..., named=True)`` rows of ``fields``."""
    return collections.namedtuple("Row", fields, rename=True)


class Values(Generic[T]):
    """A queryset's rows as dicts, tuples or single values: what ``values()`` and
    ``values_list()`` return. Await it, or call ``all_sync()``, for the list.

    ``annotate(...)`` groups the rows by the named fields and adds aggregates per group;
    ``filter`` on an aggregate's name then keeps groups (``HAVING``), ``order_by`` orders
    them by those fields or the aggregates' names, and a slice picks groups::

        await Order.objects.values("status").annotate(n=Count("*")).filter(n__gt=1).order_by("-n")[:3]
        # [{"status": "paid", "n": 120}, {"status": "new", "n": 31}, ...]
    """

    __slots__ = ("_aggregates", "_fields", "_having", "_order", "_qs", "_shape")

    def __init__(
        self,
        qs: QuerySet[Any],
        fields: tuple[str, ...],
        shape: str,
        aggregates: list[AggregateSpec] | None = None,
        order: list[str] | None = None,
        having: list[tuple[str, Any]] | None = None,
    ) -> None:
        method = "values" if shape == "dict" else "values_list"
        qs._refuse_prefetch(method, "leave prefetch_related out, or load instances with all()")
        # Fields across forward relations ("author__name"): each the value of a correlated
        # subquery, computed per row as an annotation is; so are parts of dates
        # ("created__month"). A forward relation's own name ("author") reads its key,
        # under that name, as in Django.
        # Fields across relations that hold many rows ("books__title", "tags__name"): a
        # row per row reached, as Django's join gives (None where there is none).
        taken = [*qs._query.annotation_names, *qs._query.reached_names]
        relations = qs.model._meta.relations
        computed: list[tuple[str, Any]] = []
        reached: list[tuple[str, Hops, str, list[Any]]] = []
        for name in fields:
            if name in taken:
                continue
            taken.append(name)
            relation = relations.get(name)
            if isinstance(relation, Relation) and relation.reverse and not relation.many:
                # The key of the row referring to it (Django's), read across the relation.
                computed.append((name, _named_spec(qs.model, f"{name}__{_pk_name(relation.target)}", method)))
            elif relation is not None and not relation.many and name not in qs.model._meta.fields:
                computed.append((name, ("field", relation.field.name)))
            elif (many := _many_reach(qs.model, name, method)) is not None:
                reached.append(qs._reached(name, *many))
            elif (spec := _named_spec(qs.model, name, method)) is not None:
                computed.append((name, spec))
        if computed:
            qs = qs._clone(qs._query.annotate(computed))
        if reached:
            qs = qs._clone(qs._query.reach(reached))
        self._qs = qs
        self._fields = fields
        self._shape = shape
        self._aggregates = aggregates
        self._order = order
        self._having = having

    def _with(self, qs: QuerySet[Any] | None = None, **changes: Any) -> Values[T]:
        state = {"aggregates": self._aggregates, "order": self._order, "having": self._having, **changes}
        return Values(qs if qs is not None else self._qs, self._fields, self._shape, **state)

    def annotate(self, *args: Aggregate, **kwargs: Aggregate) -> Values[T]:
        """A row per group of the fields' values, with these aggregates after the fields
        (a positional one named ``field__function``)."""
        if self._qs._query.sliced():
            raise chakra_errors.ProgrammingError("cannot group a sliced queryset: slice the annotated values instead")
        specs = self._qs._aggregate_specs(args, kwargs)
        if not specs:
            raise chakra_errors.FieldError("annotate() needs at least one aggregate, such as Count(\"*\")")
        return self._with(self._unordered(), aggregates=[*(self._aggregates or []), *specs])

    def _unordered(self) -> QuerySet[Any]:
        """The queryset without the model's default order, which groups and distinct
        values leave out (as Django's ``Meta.ordering``): an order by fields they do not
        hold would change what they are."""
        qs = self._qs
        return qs.order_by() if qs._default_order else qs

    def order_by(self, *fields: str | Expression | OrderBy) -> Values[T]:
        """Ordered by ``fields`` (``"-name"`` descending, or expressions, as
        ``QuerySet.order_by``): of annotated values, the grouped fields and the aggregates'
        names."""
        if self._aggregates is None:
            return self._with(self._qs.order_by(*fields))
        names = [field for field in fields if isinstance(field, str)]
        if len(names) < len(fields):
            raise TypeError("grouped values are ordered by the names of their fields and aggregates")
        return self._with(order=names)

    def filter(self, *conditions: Q | Exists, **lookups: Any) -> Values[T]:
        """Only the rows matching, as ``QuerySet.filter``; after ``annotate``, a keyword
        naming an aggregate keeps only the groups matching (``HAVING``), Django's
        ``values("status").annotate(n=Count("*")).filter(n__gt=5)``."""
        aliases = [alias for alias, *_ in self._aggregates or []]
        on_groups = {k: v for k, v in lookups.items() if any(k == a or k.startswith(f"{a}__") for a in aliases)}
        rows = {k: v for k, v in lookups.items() if k not in on_groups}
        qs = self._qs.filter(*conditions, **rows) if conditions or rows else self._qs
        # The rows a field of these values reaches across the filtered relation are
        # joined again, to the rows the filter keeps (as a filter before values()).
        paths = {path for path, _ in _joined_conditions(qs.model, conditions, rows)}
        again = [name for name in self._fields if name in qs._query.reached_names and _reach(qs.model, name)[2] in paths]
        if again:
            qs = qs._clone(qs._query.unreached(again))
        return self._with(qs, having=[*(self._having or []), *on_groups.items()])

    def exclude(self, *conditions: Q | Exists, **lookups: Any) -> Values[T]:
        """Without the rows matching (before any grouping): as ``QuerySet.exclude``."""
        return self._with(self._qs.exclude(*conditions, **lookups))

    def distinct(self, *fields: str) -> Values[T]:
        """Each combination of the values once; with ``fields``, the first row of each
        combination of those fields' values (``QuerySet.distinct``)."""
        return self._with(self._unordered().distinct(*fields))

    def __getitem__(self, key: slice) -> Values[T]:
        return self._with(self._qs[key])

    def reverse(self) -> Values[T]:
        """The same rows in the opposite order; groups in the opposite order of their
        ``order_by`` (of their fields, if none)."""
        if self._aggregates is None:
            return self._with(self._qs.reverse())
        order = self._order or list(self._fields)
        return self._with(order=[name[1:] if name.startswith("-") else f"-{name}" for name in order])

    def union(self, *others: Values[T], all: bool = False) -> Values[T]:
        """These rows or those of ``others`` (values of the same fields, of the same
        model), as ``QuerySet.union``."""
        return self._combine("union", others, all)

    def intersection(self, *others: Values[T], all: bool = False) -> Values[T]:
        """These rows that each of ``others`` has too (SQL's ``INTERSECT``)."""
        return self._combine("intersection", others, all)

    def difference(self, *others: Values[T], all: bool = False) -> Values[T]:
        """These rows that none of ``others`` has (SQL's ``EXCEPT``)."""
        return self._combine("difference", others, all)

    def _combine(self, op: str, others: tuple[Values[T], ...], all: bool) -> Values[T]:
        for other in (self, *others):
            if not isinstance(other, Values) or other._fields != self._fields:
                raise TypeError(f"{op}() combines values of the same fields ({', '.join(self._fields)}), not {other!r}")
            if other._aggregates is not None:
                raise chakra_errors.ProgrammingError(f"cannot {op} grouped values: group the combined values instead")
        return self._with(self._qs._combine(op, tuple(other._qs for other in others), all))

    def _chakra_subquery(self) -> _core.Subquery:
        """The one field's values, as the value of another query's ``__in``."""
        if len(self._fields) != 1 or self._aggregates:
            raise chakra_errors.FieldError(
                f"a subquery selects one field: values({', '.join(map(repr, self._fields))})"
                f"{' with aggregates' if self._aggregates else ''} cannot be the value of an __in lookup"
            )
        (field,) = self._fields
        query = self._qs._query
        if field in query.reached_names:
            many = _many_reach(self._qs.model, field, "values")
            assert many is not None, "a reached name reaches"
            return query.reached_subquery(field, *many)
        return query.subquery(field)

    def _op(self, target: Any, terminal: str | None = None) -> _core.Op:
        query = self._qs._query
        fields = list(self._fields)
        shape = "tuple" if self._shape == "named" else self._shape
        return query.values(target, fields, shape, self._aggregates, self._order, self._having, terminal)

    async def all(self) -> list[T]:
        """The rows."""
        return self._rows(await self._qs._run(lambda target, _: self._op(target)))

    def all_sync(self) -> list[T]:
        return self._rows(self._qs._run_sync(lambda target, _: self._op(target)))

    def _rows(self, rows: list[Any]) -> list[T]:
        """The rows as the shape asks: named tuples are made here of the tuples."""
        if self._shape != "named":
            return rows
        fields = (*self._fields, *(alias for alias, *_ in self._aggregates or []))
        row = _named_row(fields)
        return [row._make(values) for values in rows]

    async def count(self) -> int:
        """How many rows there are: after ``annotate``, groups; after ``distinct``,
        distinct values (one statement either way)."""
        return await self._qs._run(lambda target, _: self._op(target, "count"))  # type: ignore[no-any-return]

    def count_sync(self) -> int:
        return self._qs._run_sync(lambda target, _: self._op(target, "count"))  # type: ignore[no-any-return]

    async def exists(self) -> bool:
        """Whether there is any row (or group)."""
        return await self._qs._run(lambda target, _: self._op(target, "exists"))  # type: ignore[no-any-return]

    def exists_sync(self) -> bool:
        return self._qs._run_sync(lambda target, _: self._op(target, "exists"))  # type: ignore[no-any-return]

    async def aggregate(self, *args: Aggregate, **kwargs: Aggregate) -> dict[str, Any]:
        """Aggregates over the rows, as ``QuerySet.aggregate`` (Django's
        ``values("country").aggregate(...)``: the fields named do not change what it
        reads). Of grouped, distinct or joined values, a ``ProgrammingError``."""
        return await self._rows_queryset("aggregate").aggregate(*args, **kwargs)

    def aggregate_sync(self, *args: Aggregate, **kwargs: Aggregate) -> dict[str, Any]:
        return self._rows_queryset("aggregate").aggregate_sync(*args, **kwargs)

    def _rows_queryset(self, method: str) -> QuerySet[Any]:
        """The queryset whose rows these values are, one value row per row: what
        ``method`` runs on. Grouped, distinct or joined to rows relations reach, they are
        not its rows, and ``method`` is refused."""
        query = self._qs._query
        if self._aggregates is not None or query.distinct_rows or query.reached_names:
            raise chakra_errors.ProgrammingError(
                f"{method}() of grouped, distinct or joined values (values(...).annotate(...), distinct(), a field "
                f"across a relation holding many rows) is not supported: call {method}() on the queryset before "
                "values()"
            )
        return self._qs

    async def first(self) -> T | None:
        """The first row in the order, or ``None``; unordered, the primary key's order
        (of groups, their fields')."""
        rows = await self._first()
        return rows[0] if rows else None

    def first_sync(self) -> T | None:
        rows = self._first().all_sync()
        return rows[0] if rows else None

    async def last(self) -> T | None:
        """The last row in the order (see :meth:`first`), or ``None``."""
        return await self.reverse().first()

    def last_sync(self) -> T | None:
        return self.reverse().first_sync()

    def _first(self) -> Values[T]:
        grouped = self._aggregates is not None
        if self._order if grouped else self._qs._query.ordered:
            return self[:1]
        pk = self._qs.model._meta.pk
        by = [pk.name] if pk is not None else []
        return self.order_by(*(self._fields if grouped and self._fields else by))[:1]

    async def get(self, *conditions: Q, **lookups: Any) -> T:
        """The one row matching: ``Model.DoesNotExist`` if none,
        ``Model.MultipleObjectsReturned`` if several."""
        return self._one(await self.filter(*conditions, **lookups)[:2])

    def get_sync(self, *conditions: Q, **lookups: Any) -> T:
        return self._one(self.filter(*conditions, **lookups)[:2].all_sync())

    def stream(self, batch_size: int | None = None) -> Any:
        """The rows as they arrive from the server, for ``async for`` (lists of
        ``batch_size`` rows with one): memory stays bounded whatever their number, as
        ``QuerySet.stream``'s."""
        return _stream(self._qs, batch_size, values=self)

    def stream_sync(self, batch_size: int | None = None) -> Iterator[Any]:
        """``stream`` for a plain ``for`` loop (blocking)."""
        return _stream_sync(self._qs, batch_size, values=self)

    def __aiter__(self) -> AsyncIterator[T]:
        return self.stream().__aiter__()  # type: ignore[no-any-return]

    def __bool__(self) -> bool:
        raise TypeError("values have no truth value of their own: ask `await values.exists()`")

    def __len__(self) -> int:
        raise TypeError("values have no len(): ask `await values.count()`, or len() of `await values`")

    def __iter__(self) -> NoReturn:
        raise TypeError(
            "values are read with `async for row in values` (or `await values` for the list); "
            "blocking code iterates `values.iterator()` or `values.all_sync()`"
        )

    def aiterator(self, chunk_size: int = _STREAM_CHUNK) -> AsyncIterator[T]:
        """Django's name for :meth:`stream`, ``chunk_size`` rows fetched at a time."""
        return _stream(self._qs, None, chunk_size, self)

    def iterator(self, chunk_size: int = _STREAM_CHUNK) -> Iterator[T]:
        """Django's name for :meth:`stream_sync`, ``chunk_size`` rows fetched at a time."""
        return _stream_sync(self._qs, None, chunk_size, self)

    # Django's async names (see QuerySet's).
    aget = get
    afirst = first
    alast = last
    acount = count
    aexists = exists
    aaggregate = aggregate

    def _one(self, rows: list[T]) -> T:
        model = self._qs.model
        if not rows:
            raise model.DoesNotExist(f"no {model.__name__} values match the query")
        if len(rows) > 1:
            raise model.MultipleObjectsReturned(f"more than one {model.__name__} values match the query")
        return rows[0]

    def __await__(self) -> Generator[Any, None, list[T]]:
        return self.all().__await__()

    def __repr__(self) -> str:
        grouped = f" grouped with {[a for a, *_ in self._aggregates]}" if self._aggregates else ""
        return f"<Values {self._qs.model.__name__} {list(self._fields)}{grouped}>"


def _by_relation(model: type[Model], spec: str | Expression | OrderBy) -> Iterator[str | Expression | OrderBy]:
    """An order term, or for a forward relation's name (``"-author"``) the terms it
    stands for: the related model's default order across it, else its key."""
    name = spec.lstrip("-+") if isinstance(spec, str) else ""
    relation = _forward_relation(model, name)
    if not isinstance(spec, str) or relation is None:
        yield spec
        return
    descending = spec.startswith("-")
    ordering = relation.target._meta.ordering
    if not ordering:
        yield f"{'-' * descending}{relation.source_key}"
    for term in ordering:
        flipped = descending != term.startswith("-")
        yield f"{'-' * flipped}{name}__{term.lstrip('-+')}"


def _order_spec(model: type[Model], spec: str | Expression | OrderBy, annotations: list[str]) -> Any:
    """An ``order_by`` term as the core takes it: the name itself, or for a field across
    forward relations (``"author__name"``) the relations' keys to follow; an expression's
    tree; where NULLs go around any of these. ``F("name")`` is its name."""
    if not isinstance(spec, str):
        return _order(spec, "order_by()", lambda name: _order_spec(model, name, annotations))
    if spec == "?":
        return ("expression", ("call", "Random", []), False)
    name = spec.lstrip("-+")
    referred = None if name in annotations else _referred(model, name, "order_by", "sort by")
    return spec if referred is None else ("referred", name, spec.startswith("-"), *referred)


def _referred(
    model: type[Model], name: str, method: str, purpose: str
) -> tuple[list[tuple[str, _core.Schema, str]], str] | None:
    """For a field across forward relations (``"author__publisher__name"``): each
    relation's key, model and the key's target, and the field; ``None`` for a name that
    does not start with a relation. A reverse relation on the way is a ``FieldError``."""
    head, _, rest = name.partition("__")
    if not rest or head in model._meta.fields or head not in model._meta.relations:
        return None
    *names, field = name.split("__")
    hops: list[tuple[str, _core.Schema, str]] = []
    for relation in _relation_path(model, "__".join(names), f"to {purpose}"):
        if not isinstance(relation, Relation) or relation.many:
            raise chakra_errors.FieldError(
                f"{method}({name!r}): {relation.model.__name__}.{relation.name} holds many rows, which give a row "
                f"no single value to {purpose}; annotate one (Min, Max, Count) and use it"
            )
        hops.append((relation.source_key, relation.target._meta.require_schema(), relation.target_key))
    return hops, field


def _relation_path(model: type[Model], lookup: str, purpose: str = "to prefetch") -> list[Relation | ManyToMany[Any]]:
    """The relations ``lookup`` (``"author"``, ``"author__book_set"``) goes through from
    ``model``; a :class:`~chakra.FieldError` (saying what the relation was wanted for)
    unless each of its names is a relation of the model the one before leads to."""
    path: list[Relation | ManyToMany[Any]] = []
    for name in lookup.split("__"):
        relation = model._meta.relations.get(name)
        if relation is None:
            where = f" in {lookup!r}" if name != lookup else ""
            known = ", ".join(model._meta.relations) or "none (foreign keys to models declare them)"
            raise chakra_errors.FieldError(
                f"{model.__name__} has no relation {name!r}{where} {purpose}{_field_hint(model, name)}; "
                f"its relations: {known}"
            )
        path.append(relation)
        model = relation.target
    return path


def _field_hint(model: type[Model], name: str) -> str:
    """For a foreign key's name given where its relation's belongs: the relation's."""
    for relation in model._meta.relations.values():
        if isinstance(relation, Relation) and not relation.reverse and relation.field.name == name:
            return f" ({name!r} is a field; its relation is {relation.name!r})"
    return ""


class Prefetch:
    """A relation for ``prefetch_related`` loaded through ``queryset`` (of the relation's
    model), as Django's: its filter picks the related rows loaded, its order orders them,
    its own ``prefetch_related`` goes on from them::

        Author.objects.prefetch_related(Prefetch("books", Book.objects.filter(year__gte=2000).order_by("-year")))

    With ``to_attr``, the rows go to that attribute instead (a list, or the row or
    ``None``), so a filtered set sits beside the relation's own:
    ``Prefetch("books", recent, to_attr="recent_books")``.

    The queryset cannot be sliced: a limit would apply to the rows of every key together.
    """

    __slots__ = ("lookup", "queryset", "to_attr")

    def __init__(self, lookup: str, queryset: QuerySet[Any] | None = None, to_attr: str | None = None) -> None:
        if not isinstance(lookup, str):
            raise TypeError(f"Prefetch() takes a relation name first, got {lookup!r}")
        if to_attr is not None and (not isinstance(to_attr, str) or not to_attr.isidentifier()):
            raise ValueError(f"Prefetch(to_attr=) takes an identifier, got {to_attr!r}")
        if queryset is not None and not isinstance(queryset, QuerySet):
            raise TypeError(f"Prefetch(queryset=) takes a QuerySet, got {queryset!r}")
        if queryset is not None and queryset._query.sliced():
            raise chakra_errors.ProgrammingError(
                f"Prefetch({lookup!r}) cannot take a sliced queryset: its limit would apply to the rows of every "
                "key together"
            )
        self.lookup = lookup
        self.queryset = queryset
        self.to_attr = to_attr

    @property
    def key(self) -> str:
        """The lookup as where its rows go: the relation's path, its last name replaced by
        ``to_attr`` if given."""
        if self.to_attr is None:
            return self.lookup
        head, _, _ = self.lookup.rpartition("__")
        return f"{head}__{self.to_attr}" if head else self.to_attr

    def _check(self, model: type[Model]) -> None:
        """A ``FieldError`` unless the lookup leads from ``model`` to the queryset's model;
        a ``to_attr`` naming something the owning model has is one too."""
        last = _relation_path(model, self.lookup)[-1]
        target = last.target
        if self.queryset is not None and self.queryset.model is not target:
            raise TypeError(
                f"Prefetch({self.lookup!r}) loads {target.__name__} rows, not {self.queryset.model.__name__}: "
                f"give it a {target.__name__} queryset"
            )
        if self.to_attr is not None:
            owner = last.model
            if self.to_attr in owner._meta.fields or hasattr(owner, self.to_attr) or self.to_attr.startswith("_"):
                raise chakra_errors.FieldError(
                    f"Prefetch(to_attr={self.to_attr!r}) names a field, relation or attribute of "
                    f"{owner.__name__}: name it otherwise"
                )

    def __repr__(self) -> str:
        through = f", {self.queryset!r}" if self.queryset is not None else ""
        to_attr = f", to_attr={self.to_attr!r}" if self.to_attr is not None else ""
        return f"Prefetch({self.lookup!r}{through}{to_attr})"


class _Node:
    """One relation to load: which (``relation``), through which queryset (``None``: the
    whole table), into which attribute (``None``: the relation's own), and the relations
    below it."""

    __slots__ = ("below", "queryset", "relation", "to_attr")

    def __init__(self, relation: str) -> None:
        self.relation = relation
        self.queryset: QuerySet[Any] | None = None
        self.to_attr: str | None = None
        self.below: dict[str, _Node] = {}


def _relation_tree(prefetches: tuple[Prefetch, ...]) -> dict[str, _Node]:
    """``author``, ``author__book_set`` and ``tags`` as ``{"author": {"book_set": {}},
    "tags": {}}``: each relation once, however many lookups pass through it, with the
    queryset a ``Prefetch`` gave it (and that queryset's own prefetches below it); a
    ``to_attr`` is a node of its own, keyed by the attribute."""
    tree: dict[str, _Node] = {}
    for prefetch in prefetches:
        nodes = tree
        names = prefetch.lookup.split("__")
        for i, name in enumerate(names):
            last = i == len(names) - 1
            key = prefetch.to_attr if last and prefetch.to_attr is not None else name
            node = nodes.setdefault(key, _Node(name))
            nodes = node.below
        node.to_attr = prefetch.to_attr
        if prefetch.queryset is not None:
            node.queryset = prefetch.queryset
            for name, below in _relation_tree(prefetch.queryset._prefetch).items():
                node.below.setdefault(name, below)
    return tree


def _prefetch_steps(
    model: type[Model],
    objs: list[Any],
    tree: dict[str, _Node],
    target: Any,
    session: Session | None,
    joined: set[str],
    prefix: str = "",
) -> Steps[None]:
    """Loads each relation of ``tree`` for all of ``objs`` in one query on ``target`` (the
    connection ``objs`` came from), then the relations below it for the rows it loaded.
    No keys, no query; a relation the rows' statement joined (``joined``: paths from the
    queryset's model, ``prefix`` the path to ``model``) is there already."""
    for node in tree.values():
        relation = model._meta.relations[node.relation]
        path = prefix + node.relation
        found: list[Any] = []
        if isinstance(relation, ManyToMany):
            found = yield from relation._prefetch_steps(objs, node.queryset, node.to_attr, session)
        elif path in joined and node.queryset is None and node.to_attr is None:
            loaded = (getattr(obj, relation.name) for obj in objs)
            found = list({id(row): row for row in loaded if row is not None}.values())
        else:
            keys = relation.keys(objs)
            if keys:
                related = relation.target
                pk = related._meta.pk
                assert pk is not None, "relations join concrete models"
                base = node.queryset if node.queryset is not None else QuerySet(related)
                qs = base.filter(**{f"{relation.target_key}__in": keys})
                query = qs._query if qs._query.ordered else qs.order_by(pk.name)._query
                identity = session._identity_map(related) if session is not None else None
                found = yield query.all(target, identity, _joined_maps(query, session))
            relation.attach(objs, found, node.to_attr)
        if node.below:
            yield from _prefetch_steps(relation.target, found, node.below, target, session, joined, f"{path}__")


def _joined_maps(query: _core.Query, session: Session | None) -> list[dict[Any, Any]] | None:
    """``session``'s identity maps of the models ``query`` joins (``select_related``)."""
    if session is None:
        return None
    joined = query.joined()
    return [session._identity_map(model) for _, model in joined] if joined else None


def _non_null_paths(model: type[Model], seen: tuple[type[Model], ...], prefix: str = "") -> Iterator[str]:
    """``select_related()``'s relations: through each non-nullable foreign key of
    ``model``, and on from the model it leads to, never back to a model on the way."""
    for relation in model._meta.relations.values():
        if not isinstance(relation, Relation) or relation.reverse or relation.field.nullable:
            continue
        if relation.target in (model, *seen):
            continue
        path = prefix + relation.name
        yield path
        yield from _non_null_paths(relation.target, (*seen, model), f"{path}__")


def _found(model: type[M], obj: M | None) -> M:
    if obj is None:
        raise model.DoesNotExist(f"no {model.__name__} matches the query")
    return obj


class _Stream(Generic[M]):
    __slots__ = ("_cursor", "_done", "_qs", "_size", "_values")

    def __init__(self, qs: QuerySet[Any], size: int, values: Values[Any] | None = None) -> None:
        self._qs = qs
        self._size = size
        self._values = values
        """Streams these values' rows, not the queryset's instances."""
        self._cursor: _core.Cursor | None = None
        self._done = False

    async def _chunk(self) -> list[M]:
        if self._done:
            return []
        if self._cursor is None:
            target, identity, session = self._qs._scope()
            if session is not None:
                await session._autoflush()
            self._cursor = await _open_cursor(self._qs, self._values, target, identity, session)
        chunk: list[Any] = await self._cursor.next(self._size)
        if len(chunk) < self._size:
            self._done = True
            self._cursor = None
        return self._values._rows(chunk) if self._values is not None else chunk

    async def aclose(self) -> None:
        """Stops early: the statement is cancelled and the connection cleaned."""
        self._done = True
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None


class RowStream(_Stream[M]):
    """``async for obj in qs.stream()``: one instance at a time, read in chunks."""

    __slots__ = ("_buffer",)

    def __init__(self, qs: QuerySet[Any], size: int, values: Values[Any] | None = None) -> None:
        super().__init__(qs, size, values)
        self._buffer: deque[M] = deque()

    def __aiter__(self) -> RowStream[M]:
        return self

    async def __anext__(self) -> M:
        if not self._buffer:
            self._buffer.extend(await self._chunk())
            if not self._buffer:
                raise StopAsyncIteration
        return self._buffer.popleft()


class BatchStream(_Stream[M]):
    """``async for batch in qs.stream(batch_size=n)``: lists of ``n`` instances (the last
    one may be shorter)."""

    def __aiter__(self) -> BatchStream[M]:
        return self

    async def __anext__(self) -> list[M]:
        chunk = await self._chunk()
        if not chunk:
            raise StopAsyncIteration
        return chunk


def _open_cursor(qs: QuerySet[Any], values: Values[Any] | None, target: Any, identity: Any, session: Any) -> _core.Op:
    """The op opening a server-side stream of ``qs``'s instances, or of ``values``'s rows."""
    if values is not None:
        return values._op(target, "stream")
    return qs._query.stream(target, identity, _joined_maps(qs._query, session))


def _check_sizes(batch_size: int | None, fetch: int) -> None:
    """Refuses a ``batch_size`` or ``chunk_size`` (``fetch``) below one, when the stream
    is asked for rather than when it is first read."""
    for name, size in (("batch_size", batch_size), ("chunk_size", fetch)):
        if size is not None and size < 1:
            raise ValueError(f"{name} must be at least 1")


@overload
def _stream(
    qs: QuerySet[Any], batch_size: None, fetch: int = ..., values: Values[Any] | None = ...
) -> RowStream[Any]: ...


@overload
def _stream(
    qs: QuerySet[Any], batch_size: int | None, fetch: int = ..., values: Values[Any] | None = ...
) -> RowStream[Any] | BatchStream[Any]: ...


def _stream(
    qs: QuerySet[Any], batch_size: int | None, fetch: int = _STREAM_CHUNK, values: Values[Any] | None = None
) -> RowStream[Any] | BatchStream[Any]:
    """The rows of ``qs`` (of ``values`` if given) for ``async for``: one at a time,
    ``fetch`` read at a time, or lists of ``batch_size``."""
    _check_sizes(batch_size, fetch)
    if batch_size is None:
        return RowStream(qs, fetch, values)
    return BatchStream(qs, batch_size, values)


def _stream_sync(
    qs: QuerySet[Any], batch_size: int | None, fetch: int = _STREAM_CHUNK, values: Values[Any] | None = None
) -> Iterator[Any]:
    """:func:`_stream` for a plain ``for`` loop."""
    _check_sizes(batch_size, fetch)
    return _read_sync(qs, batch_size, fetch, values)


def _read_sync(qs: QuerySet[Any], batch_size: int | None, fetch: int, values: Values[Any] | None) -> Iterator[Any]:
    size = batch_size or fetch
    target, identity, session = qs._scope()
    if session is not None:
        session._autoflush_sync()
    cursor = _open_cursor(qs, values, target, identity, session).wait_sync()
    try:
        while True:
            fetched = cursor.next(size).wait_sync()
            chunk = values._rows(fetched) if values is not None else fetched
            if batch_size is not None:
                if chunk:
                    yield chunk
            else:
                yield from chunk
            if len(chunk) < size:
                return
    finally:
        cursor.close()


class Manager(QuerySet[M]):
    """``Model.objects``: the unfiltered queryset, with every terminal available directly
    (``User.objects.get(id=1)``, ``User.objects.count_sync()``).

    A model may declare its own: ``objects = PostManager()`` (a subclass, with methods of
    its own) or ``objects = PostQuerySet.as_manager()``; refinements give querysets of
    ``_queryset_class``."""

    __slots__ = ()

    _queryset_class: type[QuerySet[Any]] = QuerySet

    def __init__(
        self,
        model: type[M] | None = None,
        query: _core.Query | None = None,
        db: Database | None = None,
        prefetch: tuple[Prefetch, ...] = (),
        default_order: bool = False,
    ) -> None:
        # `objects = PostManager()` in a class body: the model binds its class later.
        if model is not None:
            super().__init__(model, query, db, prefetch, default_order)

    @classmethod
    def _chain_class(cls) -> type[QuerySet[Any]]:
        return cls._queryset_class

    def raw(self, sql: str, *params: Any) -> RawQuerySet[M]:
        """Instances from raw SQL, as Django's ``Manager.raw()``::

            await Book.objects.raw("SELECT * FROM books WHERE title ~ $1 ORDER BY id", "^D")

        Columns match fields by column name; the primary key's is required, a field with
        no column is not loaded (as ``only()`` leaves it out), and other columns are read
        as attributes, as annotations are (``SELECT *, rank() OVER (…) AS rank``)."""
        return RawQuerySet(self, sql, params)

    def __repr__(self) -> str:
        return f"<Manager {self._model.__name__}>"


class RawQuerySet(Generic[M]):
    """The rows of raw SQL as instances (:meth:`Manager.raw`): await it, or call
    ``all_sync()``, for the list. They come through the session's identity map as a
    queryset's do, and ``prefetch_related`` loads their relations."""

    __slots__ = ("_params", "_qs", "_sql")

    def __init__(self, qs: QuerySet[M], sql: str, params: tuple[Any, ...]) -> None:
        if not isinstance(sql, str):
            raise TypeError(f"raw() takes SQL text, not {type(sql).__name__}")
        self._qs = qs
        self._sql = sql
        self._params = params

    def using(self, database: Database) -> RawQuerySet[M]:
        """Runs on ``database``'s pool, whatever session is current."""
        return RawQuerySet(self._qs.using(database), self._sql, self._params)

    def prefetch_related(self, *lookups: str | Prefetch | None) -> RawQuerySet[M]:
        """Loads these relations of the rows, as ``QuerySet.prefetch_related``."""
        return RawQuerySet(self._qs.prefetch_related(*lookups), self._sql, self._params)

    def _make(self, target: Any, identity: Any, joined: Any) -> _core.Op:
        schema = self._qs.model._meta.require_schema()
        return _core.raw_models(target, schema, self._sql, list(self._params), identity)

    async def all(self) -> list[M]:
        return await self._qs._load(self._make)  # type: ignore[no-any-return]

    def all_sync(self) -> list[M]:
        return self._qs._load_sync(self._make)  # type: ignore[no-any-return]

    def __await__(self) -> Generator[Any, None, list[M]]:
        return self.all().__await__()

    def __repr__(self) -> str:
        return f"<RawQuerySet {self._qs.model.__name__}: {self._sql}>"
