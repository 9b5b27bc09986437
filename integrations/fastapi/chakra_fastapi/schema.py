"""Pydantic v2 schemas generated from a Chakra model's fields, so FastAPI validates request
bodies against the model and the OpenAPI document shows its real types."""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Iterable
from typing import Any, ClassVar, Generic, Literal, Optional, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict

from chakra import Model, fields

__all__ = ["ModelSchema", "schema"]

M = TypeVar("M", bound=Model)

_INTEGER_RANGES = {
    fields.SmallInteger: (-(2**15), 2**15 - 1),
    fields.Integer: (-(2**31), 2**31 - 1),
    fields.BigInteger: (-(2**63), 2**63 - 1),
}
_PYTHON_TYPES: dict[type[fields.FieldType[Any]], Any] = {
    fields.SmallInteger: int,
    fields.Integer: int,
    fields.BigInteger: int,
    fields.String: str,
    fields.Text: str,
    fields.Boolean: bool,
    fields.Float: float,
    fields.Numeric: decimal.Decimal,
    fields.DateTime: datetime.datetime,
    fields.Date: datetime.date,
    fields.Time: datetime.time,
    fields.UUID: uuid.UUID,
    fields.JSON: Any,
    fields.Bytes: bytes,
}


class ModelSchema(BaseModel, Generic[M]):
    """Base class of generated schemas; ``__chakra_model__`` is the model they describe.

    Reads from attributes, so an endpoint with ``response_model=schema(User)`` may return
    ``User`` instances."""

    model_config = ConfigDict(from_attributes=True)
    __chakra_model__: ClassVar[type[Model]]

    def to_model(self) -> M:
        """A new, unsaved model instance with the fields this body set (defaults for the
        rest)."""
        return self.__chakra_model__(**self.model_dump(exclude_unset=True))  # type: ignore[return-value]

    def apply(self, obj: M) -> M:
        """Sets the fields this body set on ``obj`` (a partial update); returns ``obj``."""
        for name, value in self.model_dump(exclude_unset=True).items():
            setattr(obj, name, value)
        return obj


_cache: dict[tuple[type[Model], str, frozenset[str]], type[ModelSchema[Any]]] = {}


def schema(
    model: type[M], *, create: bool = False, partial: bool = False, exclude: Iterable[str] = ()
) -> type[ModelSchema[M]]:
    """The pydantic schema of ``model``'s fields.

    * ``schema(User)`` — what a row looks like (a ``response_model``): every field,
      the primary key marked read-only;
    * ``schema(User, create=True)`` — a request body creating one (``UserCreate``): no
      database-generated primary key and no ``auto_now``/``auto_now_add`` field (the
      clock sets them), fields with defaults (``db_default`` too) optional;
    * ``schema(User, partial=True)`` — a partial update (``UserUpdate``): every field but
      the primary key and the clock's, all optional.

    Types follow the column types (``String(100)`` → ``str`` of at most 100 characters,
    ``Integer`` → a 32-bit ``int``, ``Numeric(10, 2)`` → ``Decimal``, ``UUID`` → ``UUID``…;
    a field with ``choices`` takes one of them);
    nullable fields accept ``None``. ``exclude`` leaves fields out (say, a foreign key
    the URL gives). Schemas are made once per model, kind and ``exclude``.
    """
    if create and partial:
        raise ValueError("schema(): choose create=True or partial=True, not both")
    kind = "create" if create else "partial" if partial else "read"
    excluded = frozenset(exclude)
    unknown = excluded - set(model._meta.fields)
    if unknown:
        raise ValueError(f"schema({model.__name__}): no field(s) {sorted(unknown)} to exclude")
    key = (model, kind, excluded)
    found = _cache.get(key)
    if found is not None:
        return found
    model._meta.require_schema()
    definitions: dict[str, Any] = {
        name: _definition(field, kind)
        for name, field in model._meta.fields.items()
        if name not in excluded
        and not (field.primary_key and kind == "partial")
        and not (field.generated and kind == "create")
        and not ((field.auto_now or field.auto_now_add) and kind != "read")
    }
    title = model.__name__ + {"read": "", "create": "Create", "partial": "Update"}[kind]
    if excluded:
        title += "Without" + "".join(part.title().replace("_", "") for part in sorted(excluded))
    made = pydantic.create_model(
        title,
        __base__=ModelSchema[model],  # type: ignore[valid-type]
        __module__=model.__module__,
        __doc__=f"{model.__name__} ({model.__tablename__}): {_PURPOSE[kind]}.",
        **definitions,
    )
    made.__chakra_model__ = model
    _cache[key] = made
    return made


_PURPOSE = {"read": "a stored row", "create": "fields to create one", "partial": "fields to change"}


def _definition(field: fields.Field[Any], kind: str) -> tuple[Any, Any]:
    """``(annotation, pydantic.Field(...))`` of one field in a schema of ``kind``."""
    annotation, constraints = _type_of(field)
    if field.nullable or kind == "partial":
        annotation = Optional[annotation]
    if kind == "read":
        extra: dict[str, Any] = {"json_schema_extra": {"readOnly": True}} if field.primary_key else {}
        return annotation, pydantic.Field(..., **constraints, **extra)
    if kind == "partial":
        return annotation, pydantic.Field(None, **constraints)
    if field.default is fields.MISSING:
        # Left out, a database default fills it in (`to_model` gives the field
        # `DB_DEFAULT`, as the model's constructor does).
        optional = field.nullable or field.db_default is not fields.MISSING
        return annotation, pydantic.Field(None if optional else ..., **constraints)
    if callable(field.default):
        return annotation, pydantic.Field(default_factory=field.default, **constraints)
    return annotation, pydantic.Field(field.default, **constraints)


def _type_of(field: fields.Field[Any]) -> tuple[Any, dict[str, Any]]:
    """The Python type of ``field``'s values and the pydantic constraints of its column."""
    column = field.type
    if field.choices:
        # One of them, as the OpenAPI document's enum says.
        return Literal[field.choices], {}
    python = next((t for cls, t in _PYTHON_TYPES.items() if isinstance(column, cls)), Any)
    constraints: dict[str, Any] = {}
    bounds = next((r for cls, r in _INTEGER_RANGES.items() if isinstance(column, cls)), None)
    if bounds is not None:
        constraints["ge"], constraints["le"] = bounds
    if isinstance(column, fields.String) and column.length is not None:
        constraints["max_length"] = column.length
    if isinstance(column, fields.Numeric) and column.precision is not None:
        constraints["max_digits"] = column.precision
        if column.scale is not None:
            constraints["decimal_places"] = column.scale
    return python, constraints
