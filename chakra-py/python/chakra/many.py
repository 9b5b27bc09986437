"""Many-to-many relations, as Django's ``ManyToManyField``: rows of two models paired by a
table of their own::

    class Tag(Model):
        id = Field(Integer, primary_key=True)
        name = Field(String(30))

    class Post(Model):
        id = Field(Integer, primary_key=True)
        title = Field(String(100))
        tags = ManyToMany(Tag, related_name="posts")

    await post.tags.add(python, rust)                 # pairs them (once each)
    await post.tags.all()                             # [python, rust]: a queryset of tags
    await Post.objects.filter(tags__name="rust")      # lookups go through the pairs
    await Tag.objects.annotate(n=Count("posts"))      # and so do aggregates
    posts = await Post.objects.prefetch_related("tags")
    posts[0].tags[0].name                             # loaded: iterate, index, len()

The pairs live in a model of their own (``Post.tags.through``, table ``posts_tags`` unless
``through_table=`` names it) with a key to each side, deleted with either row (``ON DELETE
CASCADE``) and unique per pair; ``create_all`` creates it after both tables. Across the
pairs, lookups, aggregates and ``prefetch_related`` work as they do across foreign keys,
each pair being a row on the way (``Count("tags")`` counts an author's posts' tags once
per pair, as Django's join does).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from .errors import ProgrammingError

if TYPE_CHECKING:
    from ._bridge import Steps
    from .models import Model
    from .query import QuerySet
    from .session import Session

__all__ = ["ManyRelated", "ManyToMany"]

T = TypeVar("T", bound="Model")


class ManyToMany(Generic[T]):
    """Declares a many-to-many relation to ``to`` (a model, or ``"self"``), named by the
    attribute it is assigned to; ``related_name`` names the relation back (by default the
    model's name in snake_case with ``_set``; ``"+"`` for none). On an instance it is a
    :class:`ManyRelated`."""

    many = True

    def __init__(self, to: type[T] | str, *, related_name: str | None = None, through_table: str | None = None) -> None:
        if not (isinstance(to, type) or to == "self"):
            raise TypeError(f'ManyToMany() takes a model or "self", not {to!r}')
        self.to = to
        self.related_name = related_name
        self.through_table = through_table
        # Set when the model is defined (see `bind`).
        self.name = ""
        self.model: type[Model] = None  # type: ignore[assignment]
        self.target: type[T] = None  # type: ignore[assignment]
        self.through: type[Model] = None  # type: ignore[assignment]
        self.source_field = ""
        self.target_field = ""
        self.path = ""

    @classmethod
    def _side(
        cls, name: str, model: type[Model], target: type[Any], through: type[Model], source: str, other: str, back: str
    ) -> ManyToMany[Any]:
        """The relation back from ``target``'s side of a bound one (see :meth:`_bind`)."""
        return cls(target)._bind(name, model, target, through, source, other, back)

    def _bind(
        self, name: str, model: type[Model], target: type[Any], through: type[Model], source: str, other: str, back: str
    ) -> ManyToMany[T]:
        """Binds the relation ``model.<name>``: from ``model``'s rows through the pairs'
        ``source`` key to ``target``'s rows, their ``other`` key; ``back`` names the
        relation from ``model`` to the pairs."""
        self.name, self.model, self.target, self.through = name, model, target, through
        self.source_field, self.target_field = source, other
        self.path = f"{back}__{other.removesuffix('_id')}"
        return self

    @property
    def origin(self) -> str:
        """Where the relation is declared, for messages."""
        return f"{self.model.__name__}.{self.name}"

    @overload
    def __get__(self, instance: None, owner: Any) -> ManyToMany[T]: ...

    @overload
    def __get__(self, instance: Model, owner: Any) -> ManyRelated[T]: ...

    def __get__(self, instance: Model | None, owner: Any) -> ManyToMany[T] | ManyRelated[T]:
        if instance is None:
            return self
        return ManyRelated(self, instance)

    def __set__(self, instance: Model, value: Any) -> None:
        raise AttributeError(
            f"{self.origin} cannot be assigned: use {self.name}.set([...]), add(...) or remove(...)"
        )

    # ------------------------------------------------------------------ prefetch_related

    def _prefetch_steps(
        self, objs: list[Any], queryset: QuerySet[Any] | None, to_attr: str | None, session: Session | None
    ) -> Steps[list[Any]]:
        """Loads the related rows of all of ``objs`` (two queries: the pairs, then the rows
        they name, in ``queryset``'s order or by primary key) and makes each object's list
        of them its relation's value (or its ``to_attr``). Gives the rows loaded."""
        from .query import QuerySet

        pk = _pk(self.model)
        keys = list(dict.fromkeys(key for obj in objs if (key := getattr(obj, pk, None)) is not None))
        pairs: list[Any] = []
        if keys:
            links = QuerySet(self.through).filter(**{f"{self.source_field}__in": keys}).order_by("id")
            pairs = yield from links._load_steps(links._query.all)
        wanted = list(dict.fromkeys(getattr(pair, self.target_field) for pair in pairs))
        found: list[Any] = []
        if wanted:
            rows = (queryset if queryset is not None else QuerySet(self.target)).filter(pk__in=wanted)
            if not rows._query.ordered:
                rows = rows.order_by("pk")
            found = yield from rows._load_steps(rows._query.all)
        by_key = {getattr(row, _pk(self.target)): row for row in found}
        position = {id(row): i for i, row in enumerate(found)}
        groups: dict[Any, list[Any]] = {}
        for pair in pairs:
            row = by_key.get(getattr(pair, self.target_field))
            if row is not None:
                groups.setdefault(getattr(pair, self.source_field), []).append(row)
        from .relations import _put

        slot, name = ("_chakra_related", self.name) if to_attr is None else ("_chakra_annotations", to_attr)
        for obj in objs:
            paired = sorted(groups.get(getattr(obj, pk), ()), key=lambda row: position[id(row)])
            _put(obj, slot, name, paired)
        return found

    def __repr__(self) -> str:
        if self.model is None:
            return f"<ManyToMany to {self.to!r} (unbound)>"
        return f"<ManyToMany {self.origin}: {self.target.__name__} rows through {self.through._meta.table}>"


class ManyRelated(Generic[T]):
    """The rows an instance is paired with (``post.tags``): loaded by
    ``prefetch_related`` (then iterable, indexable, with a length), queried with
    :meth:`all` / :meth:`filter`, changed with :meth:`add`, :meth:`remove`,
    :meth:`clear` and :meth:`set` (each with a ``_sync`` twin). Changes run in the
    current session if there is one (part of its transaction), else each in a
    transaction of its own; they drop what ``prefetch_related`` loaded for the instance."""

    __slots__ = ("instance", "relation")

    def __init__(self, relation: ManyToMany[T], instance: Model) -> None:
        self.relation = relation
        self.instance = instance

    # ------------------------------------------------------------------ loaded rows

    def _loaded(self) -> list[T]:
        loaded = getattr(self.instance, "_chakra_related", None)
        if loaded is None or self.relation.name not in loaded:
            model, name = self.relation.model.__name__, self.relation.name
            raise ProgrammingError(
                f'{model}.{name} was not loaded: use {model}.objects.prefetch_related("{name}"), '
                f"or await {name}.all()"
            )
        return loaded[self.relation.name]  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[T]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())

    def __getitem__(self, index: int) -> T:
        return self._loaded()[index]

    # ------------------------------------------------------------------ queries

    def all(self) -> QuerySet[T]:
        """The paired rows, as a queryset of the related model (await it for the list)."""
        from .query import QuerySet

        pairs = QuerySet(self.relation.through).filter(**{self.relation.source_field: self._key()})
        rows = QuerySet(self.relation.target, None, self._database())
        return rows.filter(pk__in=pairs.values(self.relation.target_field))

    def filter(self, *conditions: Any, **lookups: Any) -> QuerySet[T]:
        """The paired rows matching, as ``QuerySet.filter``."""
        return self.all().filter(*conditions, **lookups)

    def count_sync(self) -> int:
        return self.all().count_sync()

    async def count(self) -> int:
        return await self.all().count()

    # ------------------------------------------------------------------ changes

    async def add(self, *objs: T | Any) -> None:
        """Pairs the instance with ``objs`` (instances or primary keys); pairs that exist
        stay as they are."""
        await self._run(self._add(objs))

    def add_sync(self, *objs: T | Any) -> None:
        self._run_sync(self._add(objs))

    async def remove(self, *objs: T | Any) -> None:
        """Unpairs the instance from ``objs``."""
        await self._run(self._remove(objs))

    def remove_sync(self, *objs: T | Any) -> None:
        self._run_sync(self._remove(objs))

    async def clear(self) -> None:
        """Unpairs the instance from every row."""
        await self._run(self._remove(None))

    def clear_sync(self) -> None:
        self._run_sync(self._remove(None))

    async def set(self, objs: Iterable[T | Any]) -> None:
        """Pairs the instance with exactly ``objs``: the others are unpaired, the new ones
        paired, in one transaction."""
        await self._run(self._set(objs))

    def set_sync(self, objs: Iterable[T | Any]) -> None:
        self._run_sync(self._set(objs))

    def _add(self, objs: Iterable[Any]) -> Steps[None]:
        from .query import QuerySet

        key, through = self._key(), self.relation.through
        pairs = [through(**{self.relation.source_field: key, self.relation.target_field: k}) for k in self._keys(objs)]
        if pairs:
            yield from QuerySet(through)._bulk_create_steps(pairs, ("ignore",))

    def _remove(self, objs: Iterable[Any] | None) -> Steps[None]:
        from .query import QuerySet

        pairs = QuerySet(self.relation.through).filter(**{self.relation.source_field: self._key()})
        if objs is not None:
            keys = self._keys(objs)
            if not keys:
                return
            pairs = pairs.filter(**{f"{self.relation.target_field}__in": keys})
        yield from pairs._delete_steps()

    def _set(self, objs: Iterable[Any]) -> Steps[None]:
        from .query import QuerySet

        keys = self._keys(objs)
        pairs = QuerySet(self.relation.through).filter(**{self.relation.source_field: self._key()})
        yield from pairs.exclude(**{f"{self.relation.target_field}__in": keys})._delete_steps()
        yield from self._add(keys)

    def _key(self) -> Any:
        key = getattr(self.instance, _pk(self.relation.model))
        if key is None:
            raise ValueError(f"{self.relation.origin}: the {self.relation.model.__name__} is not saved yet; save it first")
        return key

    def _keys(self, objs: Iterable[Any]) -> list[Any]:
        """The primary keys ``objs`` stand for, once each: instances of the related model
        (saved), or keys."""
        target = self.relation.target
        keys: list[Any] = []
        for obj in objs:
            if isinstance(obj, target):
                key = getattr(obj, _pk(target))
                if key is None:
                    raise ValueError(f"{self.relation.origin}: an unsaved {target.__name__} has no key to pair; save it first")
            elif isinstance(obj, _model_class()):
                raise TypeError(f"{self.relation.origin} pairs {target.__name__} rows, not {obj!r}")
            else:
                key = obj
            if key not in keys:
                keys.append(key)
        return keys

    async def _run(self, steps: Steps[None]) -> None:
        from ._bridge import run_async
        from .session import Session, current_session

        self._forget_loaded()
        if current_session() is not None:
            await run_async(steps)
            return
        async with Session(self._database()):
            await run_async(steps)

    def _run_sync(self, steps: Steps[None]) -> None:
        from ._bridge import run_sync
        from .session import Session, current_session

        self._forget_loaded()
        if current_session() is not None:
            run_sync(steps)
            return
        with Session(self._database()):
            run_sync(steps)

    def _database(self) -> Any:
        """The database the instance came from by ``using()`` (``None``: the default)."""
        return getattr(self.instance, "_chakra_db", None)

    def _forget_loaded(self) -> None:
        loaded = getattr(self.instance, "_chakra_related", None)
        if loaded and self.relation.name in loaded:
            self.instance._chakra_related = {k: v for k, v in loaded.items() if k != self.relation.name}

    def __repr__(self) -> str:
        return f"<ManyRelated {self.relation.origin} of {self.instance!r}>"


def _pk(model: type[Model]) -> str:
    pk = model._meta.pk
    assert pk is not None, "many-to-many relations pair concrete models, which have primary keys"
    return pk.name


def _model_class() -> type[Model]:
    from .models import Model

    return Model
