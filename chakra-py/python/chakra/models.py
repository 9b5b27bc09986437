"""``Model``: a class mapped to a table.

The metaclass turns the declared :class:`~chakra.fields.Field` attributes into
``__slots__`` and registers the model's schema with the Rust core once. Rows are turned
into instances by Rust, which writes each column straight into its slot without calling
``__init__``; attribute reads and writes are plain slot accesses, with no descriptors or
hooks in the way. What was loaded is kept beside the values, so a session can tell which
columns changed.

Foreign keys to models declare relations (``Book.author``, ``Author.book_set``; see
:mod:`chakra.relations`), added to both classes when the referring one is defined; so do
``ManyToMany`` declarations (:mod:`chakra.many`), through a model of pairs made for them.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

from . import _core
from .errors import DoesNotExist, MultipleObjectsReturned
from .fields import BigInteger, Field
from .many import ManyToMany
from .relations import Relation

if TYPE_CHECKING:
    from ._bridge import Steps
    from .query import Manager, QuerySet

__all__ = ["Model", "ModelMeta", "registered_models"]

M = TypeVar("M", bound="Model")

class _NotLoaded:
    """What an instance's record of its loaded values holds for a field its query left
    out (``only()``, ``defer()``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<not loaded>"


NOT_LOADED = _NotLoaded()

_REGISTRY: list[type[Model]] = []
_RESERVED = frozenset(
    {
        "objects",
        "pk",
        "to_dict",
        "save",
        "save_sync",
        "delete",
        "delete_sync",
        "refresh_from_db",
        "refresh_from_db_sync",
        "asave",
        "adelete",
        "arefresh_from_db",
        "DoesNotExist",
        "MultipleObjectsReturned",
    }
)


def registered_models() -> list[type[Model]]:
    """Every concrete model class defined so far, in definition order."""
    return list(_REGISTRY)


def _snake_case(name: str) -> str:
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


class ModelOptions:
    """What a model class knows about itself: ``Model._meta``."""

    def __init__(
        self,
        model: type[Model],
        table: str,
        fields: dict[str, Field[Any]],
        abstract: bool,
        unique_together: list[tuple[str, ...]] | None = None,
    ) -> None:
        self.model = model
        self.table = table
        self.fields = fields
        self.abstract = abstract
        self.ordering: tuple[str, ...] = ()
        """The order its querysets take unless told otherwise (``__ordering__``, Django's
        ``Meta.ordering``); grouped and distinct values leave it out."""
        self.indexes: list[tuple[str, ...]] = []
        self.checks: dict[str, str] = {}
        self.unique_together = unique_together or []
        """Groups of fields whose values together are unique (``__unique_together__``),
        each a unique index ``create_all`` creates."""
        for group in self.unique_together:
            unknown = [name for name in group if name not in fields]
            if unknown or len(group) < 2:
                raise TypeError(
                    f"{model.__name__}.__unique_together__ takes groups of two or more of its fields, got {group!r}"
                )
        self.auto_now = [f for f in fields.values() if f.auto_now]
        """The fields set to the current time whenever their row is written."""
        self.auto_now_add = [f for f in fields.values() if f.auto_now_add]
        """The fields set to the current time when their row is inserted."""
        pks = [f for f in fields.values() if f.primary_key]
        self.pk: Field[Any] | None = pks[0] if pks else None
        self.schema: _core.Schema | None = None
        self.manager: Manager[Any] | None = None
        self.manager_class: type[Manager[Any]] | None = None
        """The class of ``objects`` (a ``Manager`` subclass), if the model declares one."""
        self.relations: dict[str, Relation | ManyToMany[Any]] = {}
        """The relations by name: those of this model's foreign keys, those back from
        the models referring to it, and its many-to-many ones."""
        self.throughs: list[type[Model]] = []
        """The models of pairs its ``ManyToMany`` declarations made."""

    @property
    def field_names(self) -> list[str]:
        return list(self.fields)

    def reference(self, field: Field[Any]) -> tuple[str, str, str] | None:
        """``field``'s foreign key: the referenced table and column, and ``on_delete``."""
        target = field.references
        if target is None:
            return None
        if isinstance(target, str):
            if target == "self":
                table, column = self.table, self._pk_column(self.model)
            else:
                table, column = target.split(".")
        else:
            meta = getattr(target, "_meta", None)
            if not isinstance(meta, ModelOptions) or meta.abstract:
                raise TypeError(f"{self.model.__name__}.{field.name}: references= needs a concrete model, got {target!r}")
            table, column = meta.table, self._pk_column(target)
        return (table, column, field.on_delete)

    @staticmethod
    def _pk_column(model: type[Model]) -> str:
        pk = model._meta.pk
        if pk is None:
            raise TypeError(f"{model.__name__} has no primary key to refer to")
        return pk.column or pk.name

    def set_indexes(self, indexes: list[tuple[str, ...]], checks: dict[str, str]) -> None:
        """Takes ``__indexes__`` (groups of field names, ``"-created"`` descending; Django's
        ``Meta.indexes``) and ``__checks__`` (constraint names to SQL conditions; Django's
        ``CheckConstraint``), checked against the fields."""
        for group in indexes:
            unknown = [name for name in group if name.lstrip("-") not in self.fields]
            if unknown or not group:
                raise TypeError(
                    f"{self.model.__name__}.__indexes__ takes groups of its field names (\"-created\" descending), "
                    f"got {group!r} (fields: {', '.join(self.fields)})"
                )
        for name, condition in checks.items():
            if not isinstance(name, str) or not name.isidentifier() or not isinstance(condition, str):
                raise TypeError(
                    f"{self.model.__name__}.__checks__ maps constraint names to SQL conditions, got {name!r}: {condition!r}"
                )
        self.indexes = indexes
        """Indexes over several fields (``__indexes__``), each made by ``create_all``."""
        self.checks = checks
        """``CHECK`` constraints by name (``__checks__``), each added by ``create_all``."""

    def index_sql(self) -> list[str]:
        """The unique indexes of ``unique_together``, the indexes of ``__indexes__`` and
        the constraints of ``__checks__``, each made unless it exists."""
        statements = []
        table = _quote(self.table)
        for unique, groups in ((True, self.unique_together), (False, self.indexes)):
            for group in groups:
                columns = [(self.fields[name.lstrip("-")].column or name.lstrip("-"), name.startswith("-")) for name in group]
                named = (f"{column}_desc" if desc else column for column, desc in columns)
                index = _quote("_".join([self.table, *named, "key" if unique else "idx"]))
                listed = ", ".join(_quote(column) + (" DESC" if desc else "") for column, desc in columns)
                kind = "UNIQUE INDEX" if unique else "INDEX"
                statements.append(f"CREATE {kind} IF NOT EXISTS {index} ON {table} ({listed})")
        for name, condition in self.checks.items():
            relation = table.replace("'", "''")
            exists = f"SELECT 1 FROM pg_constraint WHERE conname = '{name}' AND conrelid = '{relation}'::regclass"
            add = f"ALTER TABLE {table} ADD CONSTRAINT {_quote(name)} CHECK ({condition})"
            statements.append(f"DO $$ BEGIN IF NOT EXISTS ({exists}) THEN {add}; END IF; END $$")
        return statements

    def require_schema(self) -> _core.Schema:
        if self.schema is None:
            raise TypeError(f"{self.model.__name__} is abstract: declare a concrete subclass to query it")
        return self.schema

    def __repr__(self) -> str:
        return f"<ModelOptions {self.model.__name__} table={self.table!r}>"


class ModelMeta(type):
    """Turns declared fields into slots and registers the schema with the core."""

    def __new__(mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any) -> ModelMeta:
        if not any(isinstance(b, ModelMeta) for b in bases):
            # `Model` itself.
            return super().__new__(mcls, name, bases, namespace, **kwargs)
        inherited: dict[str, Field[Any]] = {}
        slotted: set[str] = set()
        for base in reversed(bases):
            meta = getattr(base, "_meta", None)
            if isinstance(meta, ModelOptions):
                inherited.update(meta.fields)
                if not meta.abstract:
                    slotted.update(meta.fields)
        declared = {key: value for key, value in namespace.items() if isinstance(value, Field)}
        for key in declared:
            if key in _RESERVED or key.startswith("_"):
                raise TypeError(f"{name}.{key}: field names cannot start with '_' or be one of {sorted(_RESERVED)}")
            del namespace[key]
            declared[key].name = key
        fields = {**inherited, **declared}
        abstract = bool(namespace.pop("__abstract__", False))
        namespace["__slots__"] = () if abstract else tuple(f for f in fields if f not in slotted)
        table = namespace.get("__tablename__") or _snake_case(name)
        namespace["__tablename__"] = table
        unique_together = [tuple(group) for group in namespace.pop("__unique_together__", ())]
        manager_class = _manager_class(name, namespace.pop("objects", None), bases)
        indexes = [(group,) if isinstance(group, str) else tuple(group) for group in namespace.pop("__indexes__", ())]
        checks = dict(namespace.pop("__checks__", {}))
        # Inherited from the first model base that has one, as Django's Meta.ordering.
        inherited_order = (
            base._meta.ordering for base in bases if isinstance(getattr(base, "_meta", None), ModelOptions)  # type: ignore[attr-defined]
        )
        ordering = namespace.pop("__ordering__", next((o for o in inherited_order if o), ()))
        ordering = (ordering,) if isinstance(ordering, str) else tuple(ordering)
        for term in ordering:
            # A name across relations is checked by the first queryset, once they exist.
            if not isinstance(term, str) or ("__" not in term and term.lstrip("-+") not in (*fields, "pk")):
                raise TypeError(
                    f"{name}.__ordering__ takes field names (\"-created\" descending), got {term!r} "
                    f"(fields: {', '.join(fields)})"
                )
        many = {key: value for key, value in namespace.items() if isinstance(value, ManyToMany)}
        cls = super().__new__(mcls, name, bases, namespace, **kwargs)
        meta = ModelOptions(cls, table, fields, abstract, unique_together)  # type: ignore[arg-type]
        meta.ordering = ordering
        meta.manager_class = manager_class
        meta.set_indexes(indexes, checks)
        cls._meta = meta  # type: ignore[attr-defined]
        qualname = namespace.get("__qualname__", name)
        for error in (DoesNotExist, MultipleObjectsReturned):
            parents = tuple(
                getattr(base, error.__name__)
                for base in bases
                if isinstance(getattr(base, "_meta", None), ModelOptions)
                and getattr(base, error.__name__) is not error
            ) or (error,)
            own = type(error.__name__, parents, {"__module__": cls.__module__, "__qualname__": f"{qualname}.{error.__name__}"})
            setattr(cls, error.__name__, own)
        if not abstract:
            if meta.pk is None:
                raise TypeError(f"{name} has no primary key: declare one field with primary_key=True")
            meta.schema = _core.Schema(
                cls,
                table,
                [
                    (
                        f.name,
                        f.column or f.name,
                        f.type.sql_type,
                        f.type.column_type(),
                        f.nullable,
                        f.primary_key,
                        f.generated,
                        f.unique,
                        f.index,
                        f.type.max_length,
                        meta.reference(f),
                        (_default_sql(name, f), _check_sql(name, f), list(f.choices) if f.choices else None),
                    )
                    for f in fields.values()
                ],
            )
            # Checked in full before any is added: a refused class leaves no trace.
            for key, pairing in many.items():
                _check_many(cls, key, pairing)  # type: ignore[arg-type]
            for relation in _relations(cls):  # type: ignore[arg-type]
                relation.model._meta.relations[relation.name] = relation
                setattr(relation.model, relation.name, relation)
            _REGISTRY.append(cls)  # type: ignore[arg-type]
            for key, pairing in many.items():
                _bind_many(cls, key, pairing)  # type: ignore[arg-type]
        return cls


def _manager_class(model: str, declared: Any, bases: tuple[type, ...]) -> Any:
    """The ``Manager`` subclass ``objects = ...`` declares (a class or an instance of
    one), else the one a model base declared, else ``None``."""
    from .query import Manager

    if declared is None:
        inherited = (getattr(base, "_meta", None) for base in bases)
        return next((m.manager_class for m in inherited if isinstance(m, ModelOptions) and m.manager_class), None)
    manager = declared if isinstance(declared, type) else type(declared)
    if not issubclass(manager, Manager):
        raise TypeError(
            f"{model}.objects takes a Manager subclass or instance (or QuerySet.as_manager()), not {declared!r}"
        )
    return manager


def _default_sql(model: str, field: Field[Any]) -> str | None:
    """``field``'s ``DEFAULT`` as SQL; the error names the field."""
    try:
        return field.default_sql()
    except (TypeError, ValueError) as error:
        raise type(error)(f"{model}.{field.name}: db_default= {error}") from None


def _check_sql(model: str, field: Field[Any]) -> str | None:
    """The ``CHECK`` condition limiting ``field`` to its ``choices``, as SQL."""
    if not field.choices:
        return None
    try:
        listed = ", ".join(field.type.literal(value) for value in field.choices)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{model}.{field.name}: choices= {error}") from None
    return f"{_quote(field.column or field.name)} IN ({listed})"


def _stamp(objs: list[Any], adding: bool) -> None:
    """Sets the ``auto_now`` fields of ``objs`` (instances of one model), and their
    ``auto_now_add`` ones if ``adding``, to the current time."""
    if not objs:
        return
    meta: ModelOptions = type(objs[0])._meta
    stamped = meta.auto_now + meta.auto_now_add if adding else meta.auto_now
    nows: dict[str, Any] = {}  # one time for all the fields of a type
    for field in stamped:
        kind = field.type.column_type()
        if kind not in nows:
            nows[kind] = field.type.now()  # type: ignore[attr-defined]
        now = nows[kind]
        for obj in objs:
            setattr(obj, field.name, now)


def _database_of(obj: Model) -> Any:
    """The database ``obj`` was loaded from or saved to by ``using()``, if not the
    default one (Django's ``obj._state.db``)."""
    return getattr(obj, "_chakra_db", None)


def _scope_of(obj: Model) -> tuple[Any, Any]:
    """Where ``obj``'s statements run: the current session (and it), else the database
    it came from (and ``None``)."""
    from .session import current_session

    session = current_session()
    if session is not None:
        return session._handle(), session
    target, _, _ = _queryset_of(obj)._scope()
    return target, None


def _queryset_of(obj: Model) -> QuerySet[Any]:
    """``obj``'s model's queryset, on the database ``obj`` came from."""
    manager = type(obj).objects
    database = _database_of(obj)
    return manager.using(database) if database is not None else manager


def _save_steps(obj: Model) -> Steps[None]:
    from .signals import Send, post_save, pre_save

    target, session = _scope_of(obj)
    if session is not None:
        session.add(obj)
        yield from session._flush_steps()
        return
    model = type(obj)
    schema = model._meta.require_schema()
    changed = schema.changed_fields(obj)
    if changed is None:
        yield from _queryset_of(obj)._insert_steps(obj)
        return
    if not changed:
        return
    if pre_save.has_listeners(model):
        yield Send(pre_save, model, [{"instance": obj, "created": False}])
    _stamp([obj], adding=False)
    fields = frozenset(schema.changed_fields(obj) or ())
    yield _core.flush(target, [("update", schema, [obj], None)])
    if post_save.has_listeners(model):
        yield Send(post_save, model, [{"instance": obj, "created": False, "update_fields": fields}])


def _delete_steps(obj: Model) -> Steps[None]:
    from .errors import ProgrammingError
    from .signals import Send, post_delete, pre_delete

    target, session = _scope_of(obj)
    if session is not None:
        session.delete(obj)
        yield from session._flush_steps()
        return
    model = type(obj)
    schema = model._meta.require_schema()
    if schema.changed_fields(obj) is None:
        raise ProgrammingError(f"{obj!r} has never been saved: there is no row to delete")
    if pre_delete.has_listeners(model):
        yield Send(pre_delete, model, [{"instance": obj}])
    yield _core.flush(target, [("delete", schema, [obj], None)])
    schema.forget_loaded(obj)
    if post_delete.has_listeners(model):
        yield Send(post_delete, model, [{"instance": obj}])


def _refresh_args(obj: Model) -> tuple[Any, Model, _core.Schema]:
    """``_core.refresh``'s arguments for ``obj``: where, what, and its schema."""
    target, _ = _scope_of(obj)
    return target, obj, type(obj)._meta.require_schema()


def _check_many(model: type[Model], name: str, declared: ManyToMany[Any]) -> None:
    """Refuses a ``ManyToMany`` whose relations' names are taken on their models."""
    target = model if declared.to == "self" else declared.to
    if declared.name:
        raise TypeError(f"{model.__name__}.{name}: this ManyToMany is declared already, as {declared.origin}")
    if not isinstance(getattr(target, "_meta", None), ModelOptions) or target._meta.abstract:  # type: ignore[union-attr]
        raise TypeError(f"{model.__name__}.{name}: ManyToMany needs a concrete model, got {target!r}")
    back = declared.related_name or f"{_snake_case(model.__name__)}_set"
    sides = [(model, name)] + ([] if back == "+" else [(target, back)])
    for owner, relation in sides:
        meta = owner._meta  # type: ignore[union-attr]
        existing = meta.relations.get(relation)
        # The same class defined anew (a module reloaded) takes the place of the old one.
        again = isinstance(existing, ManyToMany) and _where(existing.through) == (
            model.__module__,
            f"{model.__qualname__}.{name}.through",
        )
        if relation in meta.fields or (existing and not again) or relation.startswith("_") or relation in _RESERVED:
            raise TypeError(f"{model.__name__}.{name}: the relation {owner.__name__}.{relation} is taken; name it otherwise")  # type: ignore[union-attr]


def _bind_many(model: type[Model], name: str, declared: ManyToMany[Any]) -> None:
    """Makes the model of pairs ``model.<name>`` goes through (a key to each side,
    deleted with either row, unique per pair) and adds the relation to both models."""
    target: type[Model] = model if declared.to == "self" else declared.to  # type: ignore[assignment]
    source, other = _snake_case(model.__name__), _snake_case(target.__name__)
    if target is model:
        source, other = f"from_{source}", f"to_{other}"
    source_field, target_field = f"{source}_id", f"{other}_id"
    back = declared.related_name or f"{_snake_case(model.__name__)}_set"

    def key(to: type[Model], related: str) -> Field[Any]:
        pk = to._meta.pk
        assert pk is not None, "concrete models have primary keys"
        return Field(pk.type, references=to, on_delete="cascade", related_name=related, index=True)

    through: type[Model] = ModelMeta(  # type: ignore[assignment]
        f"{model.__name__}_{name}",
        (Model,),
        {
            "__module__": model.__module__,
            "__qualname__": f"{model.__qualname__}.{name}.through",
            "__tablename__": declared.through_table or f"{model._meta.table}_{name}",
            "__unique_together__": [(source_field, target_field)],
            "id": Field(BigInteger, primary_key=True),
            source_field: key(model, f"{name}_pairs"),
            target_field: key(target, "+" if back == "+" else f"{back}_pairs"),
        },
    )
    declared._bind(name, model, target, through, source_field, target_field, f"{name}_pairs")
    model._meta.relations[name] = declared
    model._meta.throughs.append(through)
    if back != "+":
        reverse = ManyToMany._side(back, target, model, through, target_field, source_field, f"{back}_pairs")
        target._meta.relations[back] = reverse
        setattr(target, back, reverse)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _relations(model: type[Model]) -> list[Relation]:
    """The relations ``model``'s foreign keys declare (on ``model`` and on the models they
    refer to); a name already taken on its model is a ``TypeError``."""
    declared: list[Relation] = []
    for field in model._meta.fields.values():
        target = model if field.references == "self" else field.references
        if not isinstance(target, type):
            continue
        forward = field.relation or (field.name[: -len("_id")] if field.name.endswith("_id") else None)
        if forward is not None:
            declared.append(Relation(forward, model, target, field, reverse=False))
        # A unique key refers to a row at most once (one-to-one): `user.profile`.
        single = field.unique or field.primary_key
        reverse = field.related_name or f"{_snake_case(model.__name__)}{'' if single else '_set'}"
        if reverse != "+":
            declared.append(Relation(reverse, target, model, field, reverse=True))
    taken: dict[tuple[type[Model], str], Relation] = {}
    for relation in declared:
        owner, name = relation.model, relation.name
        existing = owner._meta.relations.get(name)
        if isinstance(existing, ManyToMany):
            raise TypeError(f"{relation.origin}: its relation {owner.__name__}.{name} clashes with {existing!r}")
        clash = _clash(relation, taken.get((owner, name)) or existing)
        if clash is not None:
            keyword = 'related_name="..." (or "+" for none)' if relation.reverse else 'relation="..."'
            raise TypeError(
                f"{relation.origin}: its relation {owner.__name__}.{name} {clash}; name it with {keyword}"
            )
        taken[(owner, name)] = relation
    return declared


def _clash(relation: Relation, other: Relation | None) -> str | None:
    """Why ``relation``'s name is taken on its model, if it is."""
    owner, name = relation.model, relation.name
    if name in _RESERVED or name.startswith("_"):
        return f"cannot start with '_' or be one of {sorted(_RESERVED)}"
    if name in owner._meta.fields:
        return f"clashes with the field {owner.__name__}.{name}"
    if other is not None:
        if _redeclared(other, relation):
            return None
        return f"clashes with the relation {owner.__name__}.{name} of {other.origin}"
    existing = inspect.getattr_static(owner, name, None)
    if existing is not None and not isinstance(existing, Relation):
        return f"clashes with the attribute {owner.__name__}.{name}"
    return None


def _redeclared(old: Relation, new: Relation) -> bool:
    """Whether ``new`` is ``old`` declared again by the same class defined anew (a module
    reloaded, a test run twice), which then takes its place."""
    return (
        old.reverse == new.reverse
        and old.field.name == new.field.name
        and _where(old.model) == _where(new.model)
        and _where(old.target) == _where(new.target)
    )


def _where(model: type[Any]) -> tuple[str, str]:
    """Where a class is defined, to tell one defined anew."""
    return model.__module__, model.__qualname__


class _ManagerDescriptor:
    """``Model.objects``: the model's unfiltered queryset."""

    @overload
    def __get__(self, instance: None, owner: type[M]) -> Manager[M]: ...

    @overload
    def __get__(self, instance: M, owner: type[M]) -> Manager[M]: ...

    def __get__(self, instance: Any, owner: type[M]) -> Manager[M]:
        meta: ModelOptions = owner._meta
        if meta.manager is None:
            from .query import Manager

            meta.require_schema()
            meta.manager = (meta.manager_class or Manager)(owner)
        return meta.manager


class Model(metaclass=ModelMeta):
    """Base class of models. Declare fields as class attributes::

        class User(Model):
            __tablename__ = "users"
            id = Field(Integer, primary_key=True)
            name = Field(String(100))

    ``__tablename__`` defaults to the class name in snake_case. Set ``__abstract__ = True``
    for a base class that only shares fields.
    """

    __slots__ = ("_chakra_annotations", "_chakra_db", "_chakra_loaded", "_chakra_related")

    _chakra_related: dict[str, Any] | None
    """What querysets loaded of the relations, by name (unset until one does)."""
    _chakra_annotations: dict[str, Any]
    """The values ``QuerySet.annotate`` computed for this row, by name (unset until one
    does); read as attributes."""
    _meta: ClassVar[ModelOptions]
    __tablename__: ClassVar[str]
    objects: ClassVar[_ManagerDescriptor] = _ManagerDescriptor()
    DoesNotExist: ClassVar[type[DoesNotExist]] = DoesNotExist
    MultipleObjectsReturned: ClassVar[type[MultipleObjectsReturned]] = MultipleObjectsReturned

    def __init__(self, **values: Any) -> None:
        fields = self._meta.fields
        related = [key for key in values if key not in fields]
        for key in related:
            relation = self._meta.relations.get(key)
            if not isinstance(relation, Relation) or relation.reverse:
                raise TypeError(
                    f"{type(self).__name__}() got an unexpected field {key!r} (fields: {', '.join(fields)})"
                )
            if relation.field.name in values:
                raise TypeError(f"{type(self).__name__}() got both {key!r} and {relation.field.name!r}: give one")
        for name, field in fields.items():
            setattr(self, name, values[name] if name in values else field.initial())
        self._chakra_loaded = None
        # `Book(author=ann)`: the key from the row, which stays loaded as the relation.
        for key in related:
            setattr(self, key, values[key])

    @property
    def pk(self) -> Any:
        """The primary key's value (``None`` until the row is inserted, for generated keys)."""
        pk = self._meta.pk
        return getattr(self, pk.name, None) if pk is not None else None

    def to_dict(self) -> dict[str, Any]:
        """Every loaded field's value, by field name (a field ``only()`` or ``defer()``
        left out is left out here too)."""
        fields = self._meta.fields
        return {name: getattr(self, name) for name in fields if _has(self, name)}

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        """``(field, value)`` pairs, so ``dict(obj)`` works (and so do serialisers that
        try it, like FastAPI's ``jsonable_encoder``)."""
        return iter(self.to_dict().items())

    async def save(self) -> None:
        """Writes this instance, as Django's ``save()``: inserts its row if it was never
        saved (reading back a generated key and database defaults), else updates the
        fields changed since it was loaded or saved (nothing if none was). In a session
        it joins the session (``session.add``) and is written at once, in the session's
        transaction; elsewhere its statement commits on its own. Sends ``pre_save`` and
        ``post_save``; stamps ``auto_now`` fields."""
        from ._bridge import run_async

        await run_async(_save_steps(self))

    def save_sync(self) -> None:
        from ._bridge import run_sync

        run_sync(_save_steps(self))

    async def delete(self) -> None:
        """Deletes this instance's row, as Django's ``delete()`` (in a session, in its
        transaction and at once), and forgets that it was saved: a later ``save()``
        inserts it again. Sends ``pre_delete`` and ``post_delete``."""
        from ._bridge import run_async

        await run_async(_delete_steps(self))

    def delete_sync(self) -> None:
        from ._bridge import run_sync

        run_sync(_delete_steps(self))

    async def refresh_from_db(self) -> None:
        """Reloads the row into this instance, as Django's (unsaved changes and loaded
        relations are dropped); ``DoesNotExist`` if the row is gone."""
        await _core.refresh(*_refresh_args(self))
        self._chakra_related = None

    def refresh_from_db_sync(self) -> None:
        _core.refresh(*_refresh_args(self)).wait_sync()
        self._chakra_related = None

    # Django's async names.
    asave = save
    adelete = delete
    arefresh_from_db = refresh_from_db

    def __repr__(self) -> str:
        pk = self._meta.pk
        if pk is None:
            return f"<{type(self).__name__}>"
        return f"<{type(self).__name__} {pk.name}={getattr(self, pk.name, None)!r}>"

    if not TYPE_CHECKING:
        # Hidden from type checkers, which would otherwise accept any attribute of every
        # model (a misspelt field too); to have an annotation's name checked, declare it
        # in the class body (`n: int`).

        def __getattr__(self, name: str) -> Any:
            # Only for names that are not attributes: a queryset's annotations, as Django
            # sets them on its instances (`author.books__count`).
            if not name.startswith("_chakra"):
                try:
                    return self._chakra_annotations[name]
                except (AttributeError, KeyError):
                    pass
                # A relation that refused this instance: its own error, not a generic one.
                relation = inspect.getattr_static(type(self), name, None)
                if isinstance(relation, Relation):
                    return relation.__get__(self, type(self))
                if name.startswith("get_") and name.endswith("_display"):
                    field = self._meta.fields.get(name[4:-8])
                    if field is not None and field.choices:
                        labels = field.choice_labels
                        return lambda: labels.get(getattr(self, field.name), getattr(self, field.name))
                if name in self._meta.fields:
                    raise AttributeError(
                        f"{type(self).__name__}.{name} was not loaded (only() or defer() left it out): name it "
                        f"in only(), or refresh the instance (session.refresh(obj))"
                    )
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if type(other) is not type(self):
            return NotImplemented
        pk = self.pk
        return pk is not None and bool(pk == other.pk)

    def __hash__(self) -> int:
        pk = self.pk
        if pk is None:
            raise TypeError(f"unsaved {type(self).__name__} instances are unhashable (they have no primary key yet)")
        return hash((type(self), pk))


Model._meta = ModelOptions(Model, "", {}, abstract=True)


def _has(obj: Model, name: str) -> bool:
    """Whether field ``name`` of ``obj`` holds a value (one its query left out does not)."""
    try:
        object.__getattribute__(obj, name)
    except AttributeError:
        return False
    return True
