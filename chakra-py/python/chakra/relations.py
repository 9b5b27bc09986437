"""Relations between models: declared by foreign keys, loaded by
``QuerySet.prefetch_related`` or (forward ones) ``QuerySet.select_related``.

``author_id = Field(Integer, references=Author)`` on ``Book`` declares ``Book.author``
(forward: the ``Author`` row, or ``None``) and ``Author.book_set`` (reverse: the list of
the author's books). A unique foreign key (``user_id = Field(Integer, references=User,
unique=True)`` on ``Profile``, Django's ``OneToOneField``) refers to a row at most once:
its reverse relation is that row, or ``None`` (``User.profile``)::

    books = await Book.objects.prefetch_related("author")             # 2 queries
    books[0].author.name
    authors = await Author.objects.prefetch_related("book_set__author")  # 3 queries
    books = await Book.objects.select_related("author")               # 1 query (a join)

Reading a relation that no queryset loaded raises :class:`~chakra.ProgrammingError`
instead of sending a query behind the caller's back: async code cannot load lazily, and a
query per row is what prefetching exists to avoid.

Type checkers do not see the relations the metaclass adds; annotate them in the class
body to have them checked (``author: Author | None``, ``book_set: list[Book]``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, overload

from .errors import ProgrammingError

if TYPE_CHECKING:
    from .fields import Field
    from .models import Model

__all__ = ["Relation"]


class Relation:
    """A relation of ``model``, named ``name``, through the foreign key ``field``: what
    ``model.<name>`` holds once a queryset has loaded it.

    Forward (declared by ``model``'s own ``field``): the ``target`` row whose primary key
    ``field`` holds, or ``None``. Reverse (``reverse``, declared by ``target``'s
    ``field``): the ``target`` rows whose ``field`` holds ``model``'s primary key, a list
    in primary key order (``many``), or for a unique ``field`` the one row or ``None``.

    On the class (``Book.author``) it is this object; on an instance, the loaded value.
    Assigning a row to a forward relation (``book.author = alice``) sets the foreign key
    too (``book.author_id = alice.id``).
    """

    __slots__ = ("field", "many", "model", "name", "reverse", "source_key", "target", "target_key")

    def __init__(self, name: str, model: type[Model], target: type[Model], field: Field[Any], reverse: bool) -> None:
        self.name = name
        self.model = model
        self.target = target
        self.field = field
        self.reverse = reverse
        self.many = reverse and not (field.unique or field.primary_key)
        """Whether it holds many rows: the reverse of a foreign key that is not unique."""
        # An instance's `source_key` attribute is matched with the `target_key` field of
        # the target's rows.
        self.source_key = _pk_name(model) if reverse else field.name
        self.target_key = field.name if reverse else _pk_name(target)

    @property
    def origin(self) -> str:
        """The foreign key declaring this relation, as ``Model.field``."""
        declaring = self.target if self.reverse else self.model
        return f"{declaring.__name__}.{self.field.name}"

    def keys(self, objs: Iterable[Model]) -> list[Any]:
        """The distinct non-``None`` keys of ``objs`` to look up, in first-seen order."""
        name = self.source_key
        # Read strictly: a key only() left out is an AttributeError naming it, not None.
        return list(dict.fromkeys(key for obj in objs if (key := getattr(obj, name)) is not None))

    def attach(self, objs: Iterable[Model], found: list[Any], to_attr: str | None = None) -> None:
        """Makes ``found`` (the target rows loaded for ``objs``' keys) the relation's
        value on each of ``objs``, or the value of their attribute ``to_attr`` (a plain
        value, read as a queryset's annotations are)."""
        source, target = self.source_key, self.target_key
        # The relation's own value, or (`to_attr`) a plain one beside the annotations.
        slot, name = ("_chakra_related", self.name) if to_attr is None else ("_chakra_annotations", to_attr)
        if self.many:
            groups: dict[Any, list[Any]] = {}
            for row in found:
                groups.setdefault(getattr(row, target), []).append(row)
            for obj in objs:
                _put(obj, slot, name, list(groups.get(getattr(obj, source), ())))
        else:
            by_key = {getattr(row, target): row for row in found}
            for obj in objs:
                key = getattr(obj, source)
                # The relation keeps the key it was loaded for, to tell a stale row.
                _put(obj, slot, name, (key, by_key.get(key)) if to_attr is None else by_key.get(key))

    def _joined(self, obj: Model, row: Any) -> None:
        """Makes ``row`` (or ``None``), which ``select_related`` loaded with ``obj`` in one
        statement, the (single-row) relation's value on ``obj``."""
        _put(obj, "_chakra_related", self.name, (getattr(obj, self.source_key), row))

    @overload
    def __get__(self, instance: None, owner: Any) -> Relation: ...

    @overload
    def __get__(self, instance: Model, owner: Any) -> Any: ...

    def __get__(self, instance: Model | None, owner: Any) -> Any:
        if instance is None:
            return self
        self._check_owner(instance)
        loaded = getattr(instance, "_chakra_related", None)
        if loaded is None or self.name not in loaded:
            raise ProgrammingError(
                f"{self.model.__name__}.{self.name} was not loaded: use "
                f'{self.model.__name__}.objects.prefetch_related("{self.name}")'
            )
        value = loaded[self.name]
        if self.many:
            return value
        key, row = value
        current = getattr(instance, self.source_key, None)
        if current != key:
            raise ProgrammingError(
                f"{self.model.__name__}.{self.name} was loaded for {self.source_key}={key!r}, but "
                f"{self.source_key} is now {current!r}: load it again with "
                f'{self.model.__name__}.objects.prefetch_related("{self.name}"), or assign it'
            )
        return row

    def __set__(self, instance: Model, value: Any) -> None:
        self._check_owner(instance)
        if self.reverse:
            each = " on each" if self.many else " on the"
            raise AttributeError(
                f"{self.model.__name__}.{self.name} cannot be assigned: set {self.origin}{each} "
                f"{self.target.__name__} instead"
            )
        if value is not None and type(value) is not self.target:
            raise TypeError(
                f"{self.model.__name__}.{self.name} takes an instance of {self.target.__name__} or None, got {value!r}"
            )
        key = None if value is None else value.pk
        if value is not None and key is None:
            raise ValueError(
                f"cannot assign an unsaved {self.target.__name__} to {self.model.__name__}.{self.name}: "
                "it has no primary key yet; save it first"
            )
        setattr(instance, self.field.name, key)
        _put(instance, "_chakra_related", self.name, (key, value))

    def _check_owner(self, instance: Model) -> None:
        # A concrete subclass has a table of its own: it inherits the attribute, not the
        # rows referring to its parent.
        if type(instance)._meta.relations.get(self.name) is not self:
            raise AttributeError(f"{type(instance).__name__} has no relation {self.name!r}")

    def __repr__(self) -> str:
        value = f"list[{self.target.__name__}]" if self.many else f"{self.target.__name__} | None"
        return f"<Relation {self.model.__name__}.{self.name}: {value} through {self.origin}>"


def _put(obj: Model, slot: str, name: str, value: Any) -> None:
    """Sets ``name`` in the dict in ``obj``'s ``slot``: ``_chakra_related`` for relations,
    ``_chakra_annotations`` (read by ``Model.__getattr__``) for a ``to_attr``. A new dict
    each time: a copy of ``obj`` (``copy.copy``) shares the old one."""
    loaded = getattr(obj, slot, None)
    setattr(obj, slot, {**loaded, name: value} if loaded else {name: value})


def _pk_name(model: type[Model]) -> str:
    pk = model._meta.pk
    assert pk is not None, "relations are declared between concrete models, which have primary keys"
    return pk.name
