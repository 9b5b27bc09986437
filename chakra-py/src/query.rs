//! `Query`: a `QuerySet`'s state — the core's `Select` AST — and its terminal operations.
//! Filters are resolved here by field and lookup name (`lookup::resolve`), so an unknown
//! field or lookup fails when `filter()` is called, long before any SQL exists.

use std::sync::Arc;

use chakra::models::ast::{
    Aggregate, AggregateFn, Annotation, ArithOp, Assignment, Cast, Combined, CompareOp, DatePart, Delete, Expr,
    Function, Gives, Hop, Ident, Join, Operand, Order, Projection, Reached, RowLock, Scalar, Select, SetOp, Takes,
    TruncUnit, Update, WindowFunction,
};
use chakra::models::{compile, lookup, FieldInfo, Postgres};
use chakra::{ErrorKind, Labels, Mode, PointLookup, Request, RowStream, Statement, Value};
use futures::StreamExt;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use tokio::sync::Mutex;

use crate::convert::{decimal_class, decode, to_value, to_value_untyped, value_to_py, Decoder, FieldKind};
use crate::database::Target;
use crate::errors::{self, to_pyerr_for};
use crate::load::{Joined, Loader};
use crate::op::{op, op_with_errors, Op};
use crate::schema::{Layout, Schema};

/// A lazy query over one model's table. Immutable: every refinement returns a new one.
#[pyclass(module = "chakra._core", frozen)]
pub(crate) struct Query {
    schema: Py<Schema>,
    select: Select,
    /// `select.joins`' relations, index for index.
    joins: Vec<Joined>,
}

pub(crate) fn field_error(py: Python<'_>, message: String) -> PyErr {
    errors::new(py, "FieldError", message)
}

/// The index of the field `name` (or `pk`); an unknown one is a `FieldError` that says
/// what the model has.
pub(crate) fn field_index(py: Python<'_>, schema: &Schema, name: &str) -> PyResult<usize> {
    schema.index_of(name).ok_or_else(|| {
        let message = lookup::field(&schema.fields, &schema.table, name).err().map(|e| e.message().to_owned());
        field_error(py, message.unwrap_or_else(|| format!("unknown field `{name}`")))
    })
}

/// The value a lookup compares with, converted by the field's type.
fn lookup_value(
    py: Python<'_>,
    schema: &Schema,
    field: usize,
    lookup: &str,
    value: &Bound<'_, PyAny>,
) -> PyResult<Value> {
    let ty = &schema.types[field];
    let label = schema.label(field);
    let name = &schema.fields[field].name;
    let is_sequence = |v: &Bound<'_, PyAny>| {
        !v.is_instance_of::<PyString>() && !v.is_instance_of::<PyBytes>() && v.try_iter().is_ok()
    };
    let json_only = matches!(lookup, "has_key" | "has_keys" | "has_any_keys" | "contained_by");
    if ty.kind == FieldKind::Json && (json_only || lookup == "contains") {
        return json_value(py, schema, field, lookup, value);
    }
    if json_only {
        return Err(field_error(py, format!("lookup `{name}__{lookup}` needs a JSON field; {label} is not one")));
    }
    Ok(match lookup {
        "in" => {
            if !is_sequence(value) {
                return Err(field_error(
                    py,
                    format!("lookup `{name}__in` needs a list of values, got {}", value.get_type().name()?),
                ));
            }
            let items = value.try_iter()?.map(|item| to_value(&item?, ty, &label)).collect::<PyResult<Vec<_>>>()?;
            Value::Array(items)
        }
        "range" => {
            let bounds = if is_sequence(value) { value.try_iter()?.collect::<PyResult<Vec<_>>>()? } else { Vec::new() };
            if bounds.len() != 2 {
                return Err(field_error(py, format!("lookup `{name}__range` needs two values, (low, high)")));
            }
            Value::Array(vec![to_value(&bounds[0], ty, &label)?, to_value(&bounds[1], ty, &label)?])
        }
        "isnull" => match value.cast::<PyBool>() {
            Ok(b) => Value::Bool(b.is_true()),
            Err(_) => return Err(field_error(py, format!("lookup `{name}__isnull` needs True or False"))),
        },
        "iexact" | "contains" | "icontains" | "startswith" | "istartswith" | "endswith" | "iendswith" => {
            if ty.kind != FieldKind::Text {
                return Err(field_error(
                    py,
                    format!("lookup `{name}__{lookup}` needs a text field; {label} is not one"),
                ));
            }
            match value.cast::<PyString>() {
                Ok(s) => Value::Text(s.to_str()?.to_owned()),
                Err(_) => {
                    return Err(field_error(
                        py,
                        format!("lookup `{name}__{lookup}` needs a str, got {}", value.get_type().name()?),
                    ))
                }
            }
        }
        _ => to_value(value, ty, &label)?,
    })
}

/// The value a JSON lookup on a `jsonb` field (or a key within it) takes: a key's text
/// (`has_key`), texts (`has_keys`, `has_any_keys`), true or false (`isnull`), else a JSON
/// value converted as the field's values are (`None` being JSON's `null`).
fn json_value(
    py: Python<'_>,
    schema: &Schema,
    field: usize,
    lookup: &str,
    value: &Bound<'_, PyAny>,
) -> PyResult<Value> {
    let text = |item: &Bound<'_, PyAny>| -> PyResult<Value> {
        match item.cast::<PyString>() {
            Ok(s) => Ok(Value::Text(s.to_str()?.to_owned())),
            Err(_) => {
                Err(field_error(py, format!("lookup `{lookup}` takes keys as str, got {}", item.get_type().name()?)))
            }
        }
    };
    Ok(match lookup {
        "has_key" => text(value)?,
        "has_keys" | "has_any_keys" if !value.is_instance_of::<PyString>() && value.try_iter().is_ok() => {
            Value::Array(value.try_iter()?.map(|item| text(&item?)).collect::<PyResult<_>>()?)
        }
        "has_keys" | "has_any_keys" => {
            return Err(field_error(
                py,
                format!("lookup `{lookup}` takes a list of keys, got {}", value.get_type().name()?),
            ))
        }
        "isnull" => match value.cast::<PyBool>() {
            Ok(b) => Value::Bool(b.is_true()),
            Err(_) => return Err(field_error(py, format!("lookup `{lookup}` needs True or False"))),
        },
        _ if value.is_none() => Value::Json(chakra::serde_json::Value::Null),
        _ => to_value(value, &schema.types[field], &schema.label(field))?,
    })
}

/// The condition for one `alias__lookup=value` keyword on an annotation: a comparison
/// (`exact`, `ne`, `gt`, `gte`, `lt`, `lte`; `None` is `IS [NOT] NULL`), `in` or `isnull`.
fn annotation_condition(
    py: Python<'_>,
    schema: &Schema,
    annotation: &Annotation,
    lookup: &str,
    value: &Bound<'_, PyAny>,
) -> PyResult<Expr> {
    let column = annotation.alias.clone();
    Ok(match (lookup::comparison(lookup), lookup) {
        // Compared with a value computed from the row (`n__gt=F("rank")`).
        (Some(op), _) if value.is_instance(f_class(py)?)? => {
            Expr::Compare { column, op, value: f_operand(py, schema, None, &value.getattr("_tree")?)? }
        }
        (Some(op), _) => Expr::Compare { column, op, value: to_value_untyped(value)?.into() },
        (None, "isnull") => match value.cast::<PyBool>() {
            Ok(b) => Expr::IsNull { column, negated: !b.is_true() },
            Err(_) => return Err(field_error(py, format!("lookup `{column}__isnull` needs True or False"))),
        },
        (None, "in") if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() => {
            let values = value.try_iter()?.map(|item| to_value_untyped(&item?)).collect::<PyResult<_>>()?;
            Expr::In { column, values, negated: false }
        }
        _ => {
            return Err(field_error(
                py,
                format!(
                    "lookup `{column}__{lookup}` is not one an annotation takes: exact, ne, gt, gte, lt, lte, in (a list) or isnull"
                ),
            ))
        }
    })
}

/// The `FieldError` for rows `distinct(fields)` keeps one of per combination, ordered by
/// `column` before those fields: PostgreSQL's `DISTINCT ON` takes the first row of each in
/// an order that begins with them.
fn distinct_on_order(py: Python<'_>, schema: &Schema, column: &Ident) -> PyErr {
    let name = schema.fields.iter().find(|f| f.column == *column).map_or(&**column, |f| &f.name);
    field_error(
        py,
        format!(
            "distinct(fields) keeps the first row of each combination of the fields' values, in an order that \
             begins with them; this one begins with `{name}`: order_by() those fields first"
        ),
    )
}

/// Whether `expr` names any of `annotations`.
fn names_annotation(expr: &Expr, annotations: &[Annotation]) -> bool {
    let mut named = Vec::new();
    expr.columns_into(&mut named);
    named.iter().any(|column| annotations.iter().any(|a| a.alias == *column))
}

/// The condition for one `field__lookup=value` keyword.
fn condition(py: Python<'_>, schema: &Schema, key: &str, value: &Bound<'_, PyAny>) -> PyResult<Expr> {
    let (name, lookup) = lookup::split_key(key);
    let Some(field) = schema.index_of(name) else {
        if let Some((field, part)) = lookup::split_part(&schema.fields, name) {
            return part_condition(py, schema, field, part, lookup, value);
        }
        if let Some((field, path)) = lookup::split_json(&schema.fields, name) {
            let index = field_index(py, schema, field)?;
            let value = json_value(py, schema, index, lookup, value)?;
            return lookup::resolve_json(&schema.fields, &schema.table, field, &path, lookup, value)
                .map_err(|e| field_error(py, format!("{} ({}.{key})", e.message(), schema.name)));
        }
        // `name__startswit`: the field exists, the lookup does not; say that.
        let known_field = key.rsplit_once("__").and_then(|(field, bad)| Some((schema.index_of(field)?, bad)));
        let err = match known_field {
            Some((field, bad)) => {
                lookup::resolve(&schema.fields, &schema.table, &schema.fields[field].name, bad, Value::Null)
            }
            None => lookup::field(&schema.fields, &schema.table, name).map(|_| Expr::Literal(true)),
        };
        let message = err.err().map_or_else(|| format!("unknown field `{name}`"), |e| e.message().to_owned());
        return Err(field_error(py, format!("{message} ({}.{key})", schema.name)));
    };
    if let Some(subquery) = subquery_of(value)? {
        return in_select(py, schema, field, lookup, subquery.get());
    }
    let value = match value.is_instance(f_class(py)?)? {
        true => f_operand(py, schema, Some(field), &value.getattr("_tree")?)?,
        false => lookup_value(py, schema, field, lookup, value)?.into(),
    };
    lookup::resolve(&schema.fields, &schema.table, &schema.fields[field].name, lookup, value)
        .map_err(|e| field_error(py, e.message().to_owned()))
}

/// `created__year__gte=2020`: a part of a date or time field (Django's transforms)
/// compared with a plain value.
fn part_condition(
    py: Python<'_>,
    schema: &Schema,
    field: &str,
    part: DatePart,
    lookup: &str,
    value: &Bound<'_, PyAny>,
) -> PyResult<Expr> {
    let key = format!("{}.{field}__{}__{lookup}", schema.name, part.name());
    if value.is_instance(f_class(py)?)? || subquery_of(value)?.is_some() {
        return Err(field_error(
            py,
            format!("{key}: a part of a date or time is compared with values, not expressions"),
        ));
    }
    let value = to_value_untyped(value)?;
    lookup::resolve_part(&schema.fields, &schema.table, field, part, lookup, value)
        .map_err(|e| field_error(py, format!("{} ({}.{field})", e.message(), schema.name)))
}

/// One field of another queryset's rows, to filter by as a subquery (`IN (SELECT …)`):
/// what a `QuerySet` (its primary key) or a one-field `values()` stands for as the value
/// of an `__in` lookup.
#[pyclass(module = "chakra._core", frozen)]
pub(crate) struct Subquery {
    schema: Py<Schema>,
    select: Select,
    field: usize,
}

/// The subquery `value` stands for, if it is a queryset: anything with a
/// `_chakra_subquery()` method (`QuerySet`, `Values`); lists and other values are not.
fn subquery_of<'py>(value: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, Subquery>>> {
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        return Ok(None);
    }
    let py = value.py();
    match value.getattr_opt(pyo3::intern!(py, "_chakra_subquery"))? {
        Some(method) => Ok(Some(method.call0()?.cast_into::<Subquery>()?)),
        None => Ok(None),
    }
}

/// The query a queryset stands for inside a query of `schema`'s rows (`Exists(…)`,
/// `Subquery(…)`): its `OuterRef("field")`s resolved to the columns of that row.
fn correlated_select(py: Python<'_>, schema: &Schema, queryset: &Bound<'_, PyAny>) -> PyResult<Select> {
    let Some(subquery) = subquery_of(queryset)? else {
        return Err(PyErr::new::<pyo3::exceptions::PyTypeError, _>(format!(
            "Exists() and Subquery() take a queryset, not {}",
            queryset.repr()?
        )));
    };
    let mut select = subquery.get().select.clone();
    select.resolve_outer::<PyErr>(&mut |name| {
        let field = match forward_key(py, schema, name)? {
            Some(key) => field_index(py, schema, &key),
            None => field_index(py, schema, name),
        };
        let field = field.map_err(|e| field_error(py, format!("OuterRef({:?}): {}", name.as_ref(), e.value(py))))?;
        Ok(schema.fields[field].column.clone())
    })?;
    Ok(select)
}

/// The foreign key field a forward relation of `schema`'s model named `name` is declared
/// by (`"author"` → `"author_id"`), as Django's `OuterRef("author")` means it.
fn forward_key(py: Python<'_>, schema: &Schema, name: &str) -> PyResult<Option<String>> {
    let relations = schema.model.bind(py).getattr("_meta")?.getattr("relations")?;
    let relation = relations.call_method1("get", (name,))?;
    if relation.is_none() || relation.getattr("reverse")?.is_truthy()? {
        return Ok(None);
    }
    Ok(Some(relation.getattr("field")?.getattr("name")?.extract()?))
}

/// `field IN (subquery)`: only `__in` takes a queryset, of values of the field's kind
/// (integers of any width compare).
fn in_select(py: Python<'_>, schema: &Schema, field: usize, lookup: &str, subquery: &Subquery) -> PyResult<Expr> {
    let name = &schema.fields[field].name;
    if lookup != "in" {
        return Err(field_error(
            py,
            format!("lookup `{name}__{lookup}` takes a value, not a queryset (only `{name}__in` takes one)"),
        ));
    }
    let inner = subquery.schema.get();
    let integer = |kind| matches!(kind, FieldKind::SmallInt | FieldKind::Int | FieldKind::BigInt);
    let (outer_kind, inner_kind) = (schema.types[field].kind, inner.types[subquery.field].kind);
    if outer_kind != inner_kind && !(integer(outer_kind) && integer(inner_kind)) {
        return Err(field_error(
            py,
            format!(
                "`{}__in` takes a queryset of values of its type ({}), not of {} ({})",
                schema.label(field),
                schema.fields[field].sql_type,
                inner.label(subquery.field),
                inner.fields[subquery.field].sql_type,
            ),
        ));
    }
    let column = schema.fields[field].column.clone();
    Ok(Expr::InSelect { column, select: Box::new(subquery.select.clone()), negated: false })
}

/// A field an expression names: the row's own (its index), or across forward relations
/// (`F("author__name")`) the field of the row its foreign keys lead to.
enum FieldRef {
    Own(usize),
    /// Computed from the row: a field across relations, or a part of a date field.
    Derived {
        operand: Operand,
        kind: FieldKind,
        label: String,
    },
}

impl FieldRef {
    fn kind(&self, schema: &Schema) -> FieldKind {
        match self {
            FieldRef::Own(field) => schema.types[*field].kind,
            FieldRef::Derived { kind, .. } => *kind,
        }
    }

    fn label(&self, schema: &Schema) -> String {
        match self {
            FieldRef::Own(field) => schema.label(*field),
            FieldRef::Derived { label, .. } => label.clone(),
        }
    }
}

static REFERRED: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The field `name` names in an expression on a row of `schema`: one of its own, else one
/// across forward relations, whose path Python's `_referred` reads (a reverse relation
/// on the way is its `FieldError`).
fn field_ref(py: Python<'_>, schema: &Schema, name: &str) -> PyResult<FieldRef> {
    if let Some(field) = schema.index_of(name) {
        return Ok(FieldRef::Own(field));
    }
    // `F("data__owner__name")`: the JSON a key path of a `jsonb` field leads to.
    if let Some(json) = lookup::json_path(&schema.fields, name, false) {
        let label = format!("{}.{name}", schema.name);
        return Ok(FieldRef::Derived { operand: Operand::Scalar(Box::new(json)), kind: FieldKind::Json, label });
    }
    // `F("created__year")`, Django's `ExtractYear("created")`.
    if let Some((field, part)) = lookup::split_part(&schema.fields, name) {
        let scalar = lookup::part_of(&schema.fields, &schema.table, field, part)
            .map_err(|e| field_error(py, format!("{} ({})", e.message(), schema.name)))?;
        let kind = match part {
            DatePart::Date => FieldKind::Date,
            DatePart::Time => FieldKind::Time,
            _ => FieldKind::BigInt,
        };
        let label = format!("{}.{name}", schema.name);
        return Ok(FieldRef::Derived { operand: Operand::Scalar(Box::new(scalar)), kind, label });
    }
    if name.contains("__") {
        let referred =
            REFERRED.get_or_try_init(py, || py.import("chakra.query")?.getattr("_referred").map(Bound::unbind))?;
        let found = referred.bind(py).call1((schema.model.bind(py), name, "F", "read"))?;
        if !found.is_none() {
            let (path, field): (Vec<HopSpec<'_>>, String) = found.extract()?;
            let (hops, to, field) = hops_to_field(py, schema, name, &path, &field)?;
            let operand = Operand::Referred { hops, column: to.fields[field].column.clone() };
            return Ok(FieldRef::Derived { operand, kind: to.types[field].kind, label: to.label(field) });
        }
    }
    field_index(py, schema, name).map(FieldRef::Own)
}

static F_CLASS: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `chakra.query.F`, whose instances stand for a row's fields in filters and updates.
fn f_class(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    F_CLASS.import(py, "chakra.expressions", "Expression")
}

/// A `Q` tree — `(connector, negated, children)`, children being `(key, value)` pairs or
/// nested trees — as one condition.
fn tree(py: Python<'_>, schema: &Schema, annotations: &[Annotation], node: &Bound<'_, PyTuple>) -> PyResult<Expr> {
    let (connector, negated, children): (String, bool, Bound<'_, PyList>) = node.extract()?;
    let mut exprs = Vec::with_capacity(children.len());
    for child in children.iter() {
        let child = child.cast_into::<PyTuple>()?;
        let tag = child.get_item(0)?.extract::<String>().ok();
        exprs.push(match child.len() {
            3 if tag.as_deref() == Some("exists") => Expr::Exists {
                select: Box::new(correlated_select(py, schema, &child.get_item(1)?)?),
                negated: child.get_item(2)?.extract()?,
            },
            2 => {
                let key = child.get_item(0)?.extract::<String>()?;
                let (name, lookup) = lookup::split_key(&key);
                match annotations.iter().find(|a| a.alias == name) {
                    Some(annotation) => annotation_condition(py, schema, annotation, lookup, &child.get_item(1)?)?,
                    None => condition(py, schema, &key, &child.get_item(1)?)?,
                }
            }
            _ => tree(py, schema, annotations, &child)?,
        });
    }
    let expr = match (connector.as_str(), exprs.len()) {
        (_, 1) => exprs.pop().expect("one condition"),
        ("OR", _) => Expr::Or(exprs),
        ("XOR", _) => odd_number_of(exprs),
        _ => Expr::And(exprs),
    };
    Ok(if negated { Expr::Not(Box::new(expr)) } else { expr })
}

/// That an odd number of `conditions` holds, an unknown one counting as not: Django's
/// `Q(a) ^ Q(b)` on PostgreSQL, which has no `XOR`
/// (`mod(CASE WHEN a THEN 1 ELSE 0 END + …, 2) = 1`).
fn odd_number_of(conditions: Vec<Expr>) -> Expr {
    let one = |condition| Operand::Case {
        branches: vec![(condition, Value::I32(1).into())],
        otherwise: Some(Box::new(Value::I32(0).into())),
    };
    let holding = conditions.into_iter().map(one).reduce(|a, b| Operand::arith(a, ArithOp::Add, b));
    let parity = Operand::Call {
        function: Function::Mod,
        args: vec![holding.unwrap_or(Operand::Value(Value::I32(0))), Value::I32(2).into()],
    };
    Expr::ScalarCompare { scalar: Box::new(Scalar::Operand(parity)), op: CompareOp::Eq, value: Value::I32(1).into() }
}

fn labels(schema: &Schema, operation: &'static str) -> Labels {
    Labels::new(operation, Some(schema.table.clone()))
}

/// A point lookup by primary key: concurrent ones on the pool become one query.
pub(crate) fn pk_request(schema: &Schema, key: Value) -> Request {
    let (one, many) = &schema.by_pk;
    Request::new(Statement::new(one.clone(), vec![key.clone()]), Mode::Optional)
        .labels(labels(schema, "SELECT"))
        .point_lookup(PointLookup { batch_sql: many.clone(), key_column: schema.pk, key })
}

impl Query {
    fn derive(&self, py: Python<'_>, select: Select) -> Query {
        Query { schema: self.schema.clone_ref(py), select, joins: self.joins.iter().map(|j| j.clone_ref(py)).collect() }
    }

    /// What turns the rows of `select` (this query's, differently sliced or ordered) into
    /// instances: through the session's identity map of the model (`identity`) and of
    /// each joined model (`joined`, in join order) when given.
    fn loader(
        &self,
        py: Python<'_>,
        select: &Select,
        identity: Option<Py<PyDict>>,
        joined: Option<Vec<Py<PyDict>>>,
    ) -> PyResult<Loader> {
        let own = select.columns.len() + select.selected_aliases().count();
        let schema = self.schema.get();
        // Fields left out (`only()`, `defer()`): where each loaded one is.
        let all = select.columns.len() == schema.fields.len()
            && select.columns.iter().zip(&schema.fields).all(|(c, f)| *c == f.column);
        let layout = (!all).then(|| Layout {
            columns: schema.fields.iter().map(|f| select.columns.iter().position(|c| *c == f.column)).collect(),
            loaded: select.columns.len(),
        });
        let joins: Vec<_> = self.joins.iter().zip(&select.joins).map(|(j, join)| (j, join.from)).collect();
        Loader::new(py, &self.schema, identity, (own, layout), &joins, joined)
    }

    fn request(&self, select: &Select, mode: Mode) -> Request {
        compile::select_request(&Postgres, select, mode, labels(self.schema.get(), "SELECT"))
    }

    /// The request for the rows themselves (instances); a `FieldError` for rows ordered
    /// across a relation holding many rows (each row would come once per row reached),
    /// and for distinct rows ordered by a value they do not hold (a field across a
    /// relation), which PostgreSQL would refuse.
    fn rows_request(&self, py: Python<'_>, select: &Select, mode: Mode) -> PyResult<Request> {
        // Instances are the rows themselves, not one per row a relation leads to.
        if let Some(reached) = select.reached.first() {
            return Err(field_error(
                py,
                format!(
                    "the rows are ordered by `{}`, across a relation holding many rows, which gives a row no \
                     single value to sort by: read values(...) (a row per row reached), or annotate one (Min, \
                     Max) and order by it",
                    reached.alias
                ),
            ));
        }
        if let Some(order) = select.order_outside_rows() {
            if !select.distinct_on.is_empty() {
                return Err(distinct_on_order(py, self.schema.get(), &order.column));
            }
            let (what, drop) = match select.combined.is_empty() {
                true => ("distinct() rows", "drop distinct() or that order"),
                false => ("combined rows", "order them by the names of their fields or annotations"),
            };
            return Err(field_error(
                py,
                format!("{what} are ordered by `{}`, a value they do not hold: {drop}", order.column),
            ));
        }
        Ok(self.request(select, mode))
    }

    /// Refuses `what` on combined rows ([`Query::combine`]), which are read, not
    /// filtered, grouped or changed: as Django's `NotSupportedError` after `union()`.
    fn uncombined(&self, py: Python<'_>, what: &str) -> PyResult<()> {
        if self.select.combined.is_empty() {
            return Ok(());
        }
        Err(errors::new(
            py,
            "ProgrammingError",
            format!(
                "cannot {what} combined querysets (union, intersection, difference): they are read, ordered, \
                 sliced and counted"
            ),
        ))
    }

    fn unsliced(&self, py: Python<'_>, what: &str) -> PyResult<()> {
        if self.select.limit.is_some() || self.select.offset.is_some() {
            return Err(errors::new(
                py,
                "ProgrammingError",
                format!("cannot {what} a sliced or limited queryset; filter it instead"),
            ));
        }
        Ok(())
    }
}

/// Maps "no row" / "several rows" to the model's own `DoesNotExist` / `MultipleObjectsReturned`.
fn model_errors(
    py: Python<'_>,
    schema: &Py<Schema>,
) -> impl FnOnce(Python<'_>, chakra::Error) -> PyErr + Send + 'static {
    let model = schema.get().model.clone_ref(py);
    let name = schema.get().name.clone();
    move |py, err| {
        let err = match err.kind() {
            ErrorKind::NotFound => chakra::Error::new(ErrorKind::NotFound, format!("no {name} matches the query")),
            ErrorKind::MultipleFound => {
                chakra::Error::new(ErrorKind::MultipleFound, format!("more than one {name} matches the query"))
            }
            _ => err,
        };
        to_pyerr_for(py, err, model.bind(py))
    }
}

#[pymethods]
impl Query {
    #[new]
    fn new(schema: Bound<'_, Schema>) -> Query {
        let s = schema.get();
        let select = Select::new(s.table.to_string(), s.fields.iter().map(|f| f.column.clone()));
        Query { schema: schema.unbind(), select, joins: Vec::new() }
    }

    /// Adds the conditions of a `Q` tree (`negate` for `exclude`: rows where the tree is
    /// false *or unknown*).
    ///
    /// A tree naming an annotation is a condition on the annotated rows.
    fn filter(&self, py: Python<'_>, node: &Bound<'_, PyTuple>, negate: bool) -> PyResult<Query> {
        self.uncombined(py, "filter")?;
        let expr = tree(py, self.schema.get(), &self.select.annotations, node)?;
        let on_annotations = names_annotation(&expr, &self.select.annotations);
        let expr = if negate { Expr::NotTrue(Box::new(expr)) } else { expr };
        let mut select = self.select.clone();
        match on_annotations {
            true => {
                select.annotation_filter = Some(match select.annotation_filter.take() {
                    Some(earlier) => earlier.and(expr),
                    None => expr,
                })
            }
            false => select.filter(expr),
        }
        Ok(self.derive(py, select))
    }

    /// Adds `specs`: `(alias, value)` pairs, the value an `F` tree, `("related", hops,
    /// function, field or "*", distinct, filter)` for an aggregate of the rows a chain of
    /// relations leads to (each hop `(key field, schema, field there)`, `filter` a `Q`
    /// tree on the last model), `("referred", hops, field)`, `("named", name)` for a
    /// part of a date field (`"created__year"`), or `("trunc", field, kind)` for a date
    /// or timestamp cut down to a unit (`TruncMonth`). An average of a
    /// non-`Numeric` field reads as a float. Not `selected`, the rows do not hold them:
    /// they are only filtered and ordered by (Django's `alias()`).
    #[pyo3(signature = (specs, selected = true))]
    fn annotate(&self, py: Python<'_>, specs: Vec<(String, Bound<'_, PyAny>)>, selected: bool) -> PyResult<Query> {
        let schema = self.schema.get();
        let mut select = self.select.clone();
        for (alias, spec) in specs {
            if schema.index_of(&alias).is_some() || select.annotations.iter().any(|a| a.alias == alias) {
                return Err(field_error(
                    py,
                    format!(
                        "the annotation `{alias}` is named as a field or another annotation of {}: name it otherwise",
                        schema.name
                    ),
                ));
            }
            // A column's name would make the alias ambiguous in the statement, and filters
            // on that field would be read as filters on the annotation.
            if let Some(field) = schema.fields.iter().position(|f| f.column == alias.as_str()) {
                return Err(field_error(
                    py,
                    format!("the annotation `{alias}` is the column of {}: name it otherwise", schema.label(field)),
                ));
            }
            let value = annotation_value(py, schema, &alias, &spec)?;
            select.annotations.push(Annotation { selected, ..Annotation::new(alias, value) });
        }
        Ok(self.derive(py, select))
    }

    /// The query as a subquery selecting `field` (the primary key if `None`), for an
    /// `__in` lookup of another query. Its order goes, unless a slice picks rows by it.
    #[pyo3(signature = (field = None))]
    fn subquery(&self, py: Python<'_>, field: Option<&str>) -> PyResult<Subquery> {
        let schema = self.schema.get();
        let field = match field {
            Some(name) => field_index(py, schema, name)?,
            None => schema.pk,
        };
        let select = self.select.clone().subquery(vec![schema.fields[field].column.clone()]);
        Ok(Subquery { schema: self.schema.clone_ref(py), select, field })
    }

    /// The query as a subquery selecting `name`, a field across a relation holding many
    /// rows it is joined to ([`Query::reach`], `path` and `field` its hops and the field at
    /// their end): a value per row reached (Django's `values("books__id")` as the value of
    /// an `__in` lookup).
    fn reached_subquery(&self, py: Python<'_>, name: &str, path: Vec<HopSpec<'_>>, field: &str) -> PyResult<Subquery> {
        let schema = self.schema.get();
        let (_, _, field) = hops_to_field(py, schema, name, &path, field)?;
        let last = path.last().expect("hops_of refuses no hop").1.clone().unbind();
        if self.select.annotation_filter.is_some() {
            return Err(field_error(
                py,
                format!(
                    "values({name:?}) of rows filtered by an annotation cannot be a subquery: filter them otherwise"
                ),
            ));
        }
        let mut select = self.select.clone();
        select.annotations.clear();
        select.reached.retain(|r| r.alias == name);
        Ok(Subquery { schema: last, select: select.subquery(Vec::new()), field })
    }

    /// Replaces the ordering: `"name"` ascending, `"-name"` descending; `("referred",
    /// name, descending, hops, field)` for a field of the row foreign keys lead to
    /// (`"author__name"`), each hop `(key field, related schema, its key field)`;
    /// `("expression", tree, descending)` for a value computed from the row
    /// (`Lower("name")`); `("nulls", "first" or "last", spec)` for where `spec` puts NULLs.
    fn order_by(&self, py: Python<'_>, specs: Vec<Bound<'_, PyAny>>) -> PyResult<Query> {
        let schema = self.schema.get();
        let mut select = self.select.clone();
        select.order.clear();
        for spec in specs {
            let reached = spec.extract::<String>().ok().and_then(|spec| {
                let (name, descending) = lookup::order_spec(&spec);
                select.reached.iter().any(|r| r.alias == name).then(|| Order::column(name.to_owned(), descending))
            });
            let order = match reached {
                Some(order) => order,
                None => order_term(py, schema, &select.annotations, &spec)?,
            };
            select.order.push(order);
        }
        Ok(self.derive(py, select))
    }

    /// Locks the matching rows until the transaction ends (`FOR UPDATE`, or
    /// `FOR NO KEY UPDATE` with `no_key`), failing at once on rows another transaction
    /// holds (`nowait`) or leaving them out (`skip_locked`).
    #[pyo3(signature = (nowait = false, skip_locked = false, no_key = false))]
    fn select_for_update(&self, py: Python<'_>, nowait: bool, skip_locked: bool, no_key: bool) -> PyResult<Query> {
        self.uncombined(py, "lock")?;
        let lock = if no_key { RowLock::no_key_update() } else { RowLock::update() };
        let lock = match (nowait, skip_locked) {
            (false, false) => lock,
            (true, false) => lock.nowait(),
            (false, true) => lock.skip_locked(),
            (true, true) => {
                return Err(errors::new(
                    py,
                    "ProgrammingError",
                    "select_for_update: nowait and skip_locked exclude each other",
                ))
            }
        };
        let mut select = self.select.clone();
        select.lock = Some(lock);
        Ok(self.derive(py, select))
    }

    /// The same rows in the opposite order (the primary key's, descending, if unordered),
    /// as Django's `reverse()`; what `last()` takes the first of.
    fn reverse(&self, py: Python<'_>) -> PyResult<Query> {
        self.unsliced(py, "reverse")?;
        let schema = self.schema.get();
        let mut select = self.select.clone();
        if select.order.is_empty() {
            select.order.push(chakra::Order::column(schema.fields[schema.pk].column.clone(), true));
        } else {
            select.order = select.order.into_iter().map(Order::reversed).collect();
        }
        Ok(self.derive(py, select))
    }

    /// This query's rows combined with each of `others`' (`"union"`, `"intersection"` or
    /// `"difference"`; `all` keeps duplicates): Django's `qs.union(other)`. The queries
    /// are of one model, select the same annotations, and are neither locked nor joined
    /// to related rows; their orders go (order the combined rows instead), and a sliced
    /// one is the rows its slice picks.
    fn combine(&self, py: Python<'_>, op: &str, all: bool, others: Vec<PyRef<'_, Query>>) -> PyResult<Query> {
        let schema = self.schema.get();
        let op = match op {
            "union" => SetOp::Union,
            "intersection" => SetOp::Intersect,
            "difference" => SetOp::Except,
            _ => return Err(PyErr::new::<pyo3::exceptions::PyValueError, _>(format!("no set operation {op:?}"))),
        };
        let refuse = |why: String| Err(errors::new(py, "ProgrammingError", why));
        let aliases = |select: &Select| select.annotations.iter().map(|a| a.alias.clone()).collect::<Vec<_>>();
        let mut parts = Vec::with_capacity(others.len());
        for query in std::iter::once(self).chain(others.iter().map(|q| &**q)) {
            let (select, name) = (&query.select, &query.schema.get().name);
            if !query.schema.is(&self.schema) {
                return refuse(format!(
                    "cannot combine {} rows with {name} rows: combine querysets of one model",
                    schema.name
                ));
            }
            if select.lock.is_some() || !query.joins.is_empty() {
                return refuse(format!(
                    "cannot combine a locked or select_related() queryset of {name}: lock the rows before combining \
                     them, or load the related rows of the combined ones (prefetch_related)"
                ));
            }
            if let Some(reached) = select.reached.first() {
                return refuse(format!(
                    "cannot combine a queryset of {name} ordered across a relation holding many rows (`{}`): order \
                     the combined rows instead",
                    reached.alias
                ));
            }
            if aliases(select) != aliases(&self.select) {
                return refuse(format!(
                    "combined querysets of {name} select the same annotations (here {:?} and {:?})",
                    aliases(&self.select),
                    aliases(select)
                ));
            }
            parts.push(select.clone().into_part(&schema.fields[schema.pk].column));
        }
        let mut select = parts.remove(0);
        select.combined.extend(parts.into_iter().map(|select| Combined { op, all, select }));
        Ok(Query { schema: self.schema.clone_ref(py), select, joins: Vec::new() })
    }

    /// Loads only the fields `names` (and the primary key, and the keys of related rows
    /// `select_related` loads) into instances: Django's
    /// `only()`, SQLAlchemy's `load_only()`. The others are read when set, or when a later
    /// query of the session loads them.
    fn load_only(&self, py: Python<'_>, names: Vec<String>) -> PyResult<Query> {
        let schema = self.schema.get();
        // The primary key, and the keys select_related() attaches related rows by.
        let mut wanted: Vec<bool> = schema
            .fields
            .iter()
            .map(|f| self.select.joins.iter().any(|j| j.from.is_none() && j.column == f.column))
            .collect();
        wanted[schema.pk] = true;
        for name in &names {
            wanted[field_index(py, schema, name)?] = true;
        }
        let mut select = self.select.clone();
        select.columns = schema.fields.iter().zip(&wanted).filter(|(_, &w)| w).map(|(f, _)| f.column.clone()).collect();
        Ok(self.derive(py, select))
    }

    /// The fields instances get (see [`Query::load_only`]).
    #[getter]
    fn loaded_names(&self) -> Vec<String> {
        let schema = self.schema.get();
        let loaded = |f: &&FieldInfo| self.select.columns.contains(&f.column);
        schema.fields.iter().filter(loaded).map(|f| f.name.to_string()).collect()
    }

    /// Whether the rows are combined with other queries' ([`Query::combine`]).
    #[getter]
    fn combined(&self) -> bool {
        !self.select.combined.is_empty()
    }

    /// Whether each row, or combination of some columns' values, comes once
    /// (`distinct()`).
    #[getter]
    fn distinct_rows(&self) -> bool {
        self.select.distinct || !self.select.distinct_on.is_empty()
    }

    /// Each row once: `SELECT DISTINCT` over the selected fields (all of them, or those
    /// `values` names); with `fields` (or annotations), the first row in the order of
    /// each combination of their values (`DISTINCT ON`).
    #[pyo3(signature = (fields = Vec::new()))]
    fn distinct(&self, py: Python<'_>, fields: Vec<String>) -> PyResult<Query> {
        let schema = self.schema.get();
        let mut select = self.select.clone();
        select.distinct = fields.is_empty();
        select.distinct_on = fields
            .iter()
            .map(|name| match select.annotations.iter().find(|a| a.alias == name.as_str()) {
                Some(annotation) => Ok(annotation.alias.clone()),
                None => field_index(py, schema, name).map(|i| schema.fields[i].column.clone()),
            })
            .collect::<PyResult<_>>()?;
        Ok(self.derive(py, select))
    }

    /// Rows `start..stop` of this query (both relative to its current window).
    #[pyo3(signature = (start = None, stop = None))]
    fn slice(&self, py: Python<'_>, start: Option<u64>, stop: Option<u64>) -> Query {
        let mut select = self.select.clone();
        let start = start.unwrap_or(0);
        let offset = select.offset.unwrap_or(0) + start;
        let mut limit = stop.map(|stop| stop.saturating_sub(start));
        if let Some(current) = select.limit {
            let left = current.saturating_sub(start);
            limit = Some(limit.map_or(left, |l| l.min(left)));
        }
        select.offset = (offset > 0).then_some(offset);
        select.limit = limit;
        self.derive(py, select)
    }

    /// The aliases of the annotations, in order.
    #[getter]
    fn annotation_names(&self) -> Vec<String> {
        self.select.annotations.iter().map(|a| a.alias.to_string()).collect()
    }

    /// The names of the fields across relations holding many rows the rows are joined
    /// to ([`Query::reach`]).
    #[getter]
    fn reached_names(&self) -> Vec<String> {
        self.select.reached.iter().map(|r| r.alias.to_string()).collect()
    }

    /// This query without the joins to the rows `names` reach (to join them again, as a
    /// later filter asks).
    fn unreached(&self, py: Python<'_>, names: Vec<String>) -> Query {
        let mut select = self.select.clone();
        select.reached.retain(|r| !names.iter().any(|name| r.alias == name.as_str()));
        self.derive(py, select)
    }

    /// Joins the rows to those relations holding many reach (Django's
    /// `values("books__title")`): a row per row reached, or one with `NULL` where none
    /// is, the field read under its name. `specs` are `(name, hops, field, filters)`,
    /// `filters` a `Q` tree or `None` per hop, on the rows of that hop's model (what a
    /// filter across the same relation asked of them).
    fn reach(&self, py: Python<'_>, specs: Vec<ReachedSpec<'_>>) -> PyResult<Query> {
        self.uncombined(py, "join the rows relations reach to")?;
        let schema = self.schema.get();
        let mut select = self.select.clone();
        for (name, path, field, filters) in specs {
            let (mut hops, last, field) = hops_to_field(py, schema, &name, &path, &field)?;
            for ((hop, (_, to, _)), filter) in hops.iter_mut().zip(&path).zip(filters) {
                if let Some(node) = filter {
                    hop.filter = Some(Box::new(tree(py, to.get(), &[], &node)?));
                }
            }
            let column = last.fields[field].column.clone();
            select.reached.push(Reached { hops, column, alias: name.into() });
        }
        Ok(self.derive(py, select))
    }

    #[getter]
    fn ordered(&self) -> bool {
        !self.select.order.is_empty()
    }

    /// Whether the conditions name a field of an outer query's row (`OuterRef`): such a
    /// query runs only inside another (`Exists`, `Subquery`).
    #[getter]
    fn correlated(&self) -> bool {
        let mut outer = Vec::new();
        self.select.outer_columns_into(&mut outer);
        !outer.is_empty()
    }

    /// The statement `all()` sends: `(sql, params)`.
    fn statement(&self, py: Python<'_>) -> PyResult<(String, Vec<Py<PyAny>>)> {
        let st = compile::select(&Postgres, &self.select);
        let params = st.params.iter().map(|v| value_to_py(py, v).map(Bound::unbind)).collect::<PyResult<_>>()?;
        Ok((st.sql.to_string(), params))
    }

    /// Every matching row as a model instance (through `identity`, a session's map of
    /// the model, and `joined`, its maps of the joined models).
    #[pyo3(signature = (target, identity = None, joined = None))]
    fn all(
        &self,
        py: Python<'_>,
        target: &Bound<'_, PyAny>,
        identity: Option<Py<PyDict>>,
        joined: Option<Vec<Py<PyDict>>>,
    ) -> PyResult<Op> {
        let target = Target::extract(target)?;
        let request = self.rows_request(py, &self.select, Mode::All)?;
        let loader = self.loader(py, &self.select, identity, joined)?;
        Ok(op(async move { target.run(request, false).await?.into_rows() }, move |py, rows| {
            Ok(loader.all(py, &rows)?.into_any().unbind())
        }))
    }

    /// The first row in the query's order (the primary key's if none), or `None`.
    #[pyo3(signature = (target, identity = None, joined = None))]
    fn first(
        &self,
        py: Python<'_>,
        target: &Bound<'_, PyAny>,
        identity: Option<Py<PyDict>>,
        joined: Option<Vec<Py<PyDict>>>,
    ) -> PyResult<Op> {
        let target = Target::extract(target)?;
        let schema = self.schema.get();
        let mut select = self.select.clone();
        if select.order.is_empty() {
            select.order.push(chakra::Order::column(schema.fields[schema.pk].column.clone(), false));
        }
        select.limit = Some(select.limit.map_or(1, |l| l.min(1)));
        let request = self.rows_request(py, &select, Mode::Optional)?;
        let loader = self.loader(py, &select, identity, joined)?;
        Ok(op(async move { target.run(request, false).await?.into_optional() }, move |py, row| match row {
            Some(row) => Ok(loader.one(py, &row, &Decoder::for_row(&row))?.unbind()),
            None => Ok(py.None()),
        }))
    }

    /// The one matching row: `Model.DoesNotExist` if none, `Model.MultipleObjectsReturned`
    /// if several.
    #[pyo3(signature = (target, identity = None, joined = None))]
    fn get(
        &self,
        py: Python<'_>,
        target: &Bound<'_, PyAny>,
        identity: Option<Py<PyDict>>,
        joined: Option<Vec<Py<PyDict>>>,
    ) -> PyResult<Op> {
        let target = Target::extract(target)?;
        let mut select = self.select.clone();
        select.limit = Some(select.limit.map_or(2, |l| l.min(2)));
        let request = self.rows_request(py, &select, Mode::One)?;
        let on_error = model_errors(py, &self.schema);
        let loader = self.loader(py, &select, identity, joined)?;
        Ok(op_with_errors(
            async move { target.run(request, false).await?.into_row() },
            move |py, row| Ok(loader.one(py, &row, &Decoder::for_row(&row))?.unbind()),
            on_error,
        ))
    }

    /// How many rows match.
    fn count(&self, target: &Bound<'_, PyAny>) -> PyResult<Op> {
        let target = Target::extract(target)?;
        let mut select = self.select.clone();
        select.projection = Projection::Count;
        select.order.clear();
        let request = self.request(&select, Mode::One);
        Ok(op(
            async move {
                let row = target.run(request, false).await?.into_row()?;
                row.try_get::<_, i64>(0).map_err(chakra::Error::from)
            },
            |py, n| Ok(n.into_pyobject(py)?.into_any().unbind()),
        ))
    }

    /// The aggregates `specs` — `(alias, function, field, distinct, filter)`, function one of
    /// `count`, `sum`, `avg`, `min`, `max` and field `"*"` to count rows — over the
    /// matching rows, as a dict by alias.
    fn aggregate(&self, py: Python<'_>, target: &Bound<'_, PyAny>, specs: Vec<AggregateSpec>) -> PyResult<Op> {
        self.uncombined(py, "aggregate")?;
        if specs.is_empty() {
            return Err(field_error(py, "aggregate() needs at least one aggregate, such as Sum(\"field\")".into()));
        }
        let (aggregates, reads, reached) = aggregates_of(py, self.schema.get(), &specs, false)?;
        let mut select = self.select.clone();
        select.projection = Projection::Aggregates;
        select.aggregates = aggregates;
        select.reached = reached;
        let request = self.request(&select, Mode::One);
        let names: Vec<Py<PyString>> = specs.iter().map(|(alias, ..)| PyString::new(py, alias).unbind()).collect();
        let target = Target::extract(target)?;
        Ok(op(async move { target.run(request, false).await?.into_row() }, move |py, row| {
            let columns: Vec<usize> = (0..names.len()).collect();
            Ok(shape_rows(py, &[row], &names, &columns, "dict", &reads)?.get_item(0)?.unbind())
        }))
    }

    /// The database's plan for the query's rows, as text; with `analyze`, as run.
    fn explain(&self, target: &Bound<'_, PyAny>, analyze: bool) -> PyResult<Op> {
        let target = Target::extract(target)?;
        let request = compile::explain_request(&Postgres, &self.select, analyze, labels(self.schema.get(), "EXPLAIN"));
        Ok(op(async move { compile::plan_text(&target.run(request, false).await?.into_rows()?) }, |py, plan| {
            Ok(plan.into_pyobject(py)?.into_any().unbind())
        }))
    }

    /// Whether any row matches.
    fn exists(&self, target: &Bound<'_, PyAny>) -> PyResult<Op> {
        let target = Target::extract(target)?;
        let mut select = self.select.clone();
        select.projection = Projection::Exists;
        select.order.clear();
        let request = self.request(&select, Mode::One);
        Ok(op(
            async move {
                let row = target.run(request, false).await?.into_row()?;
                row.try_get::<_, bool>(0).map_err(chakra::Error::from)
            },
            |py, b| Ok(PyBool::new(py, b).to_owned().into_any().unbind()),
        ))
    }

    /// Sets `values` (field name → value) and `exprs` (field name → an `F` expression's
    /// tree, computed by the database from the row) on every matching row; resolves to
    /// the count, or with `returning` to the updated rows as new instances (for a
    /// session to refresh the ones it holds).
    #[pyo3(signature = (target, values, exprs = None, returning = false))]
    fn update(
        &self,
        py: Python<'_>,
        target: &Bound<'_, PyAny>,
        values: &Bound<'_, PyDict>,
        exprs: Option<&Bound<'_, PyDict>>,
        returning: bool,
    ) -> PyResult<Op> {
        self.uncombined(py, "update")?;
        self.unsliced(py, "update")?;
        let schema = self.schema.get();
        let exprs = exprs.map(|e| e.iter().collect::<Vec<_>>()).unwrap_or_default();
        if values.is_empty() && exprs.is_empty() {
            return Err(field_error(py, "update() needs at least one field=value".into()));
        }
        let mut set = Vec::with_capacity(values.len() + exprs.len());
        for (key, value) in values.iter() {
            let field = field_index(py, schema, &key.extract::<String>()?)?;
            set.push(Assignment {
                column: schema.fields[field].column.clone(),
                value: schema.written(field, &value)?.into(),
            });
        }
        for (key, tree) in exprs {
            let field = field_index(py, schema, &key.extract::<String>()?)?;
            let value = f_operand(py, schema, Some(field), &tree)?;
            set.push(Assignment { column: schema.fields[field].column.clone(), value });
        }
        let columns = || schema.fields.iter().map(|f| f.column.clone()).collect();
        let update = Update {
            table: schema.table.to_string().into(),
            set,
            filter: self.select.conditions(),
            returning: if returning { columns() } else { Vec::new() },
        };
        let mode = if returning { Mode::All } else { Mode::Execute };
        let request = Request::new(compile::update(&Postgres, &update), mode).labels(labels(schema, "UPDATE"));
        let target = Target::extract(target)?;
        if returning {
            let schema = self.schema.clone_ref(py);
            return Ok(op(async move { target.run(request, true).await?.into_rows() }, move |py, rows| {
                let loader = Loader::new(py, &schema, None, (schema.get().fields.len(), None), &[], None)?;
                Ok(loader.all(py, &rows)?.into_any().unbind())
            }));
        }
        Ok(op(async move { target.run(request, true).await?.rows_affected() }, |py, n| {
            Ok(n.into_pyobject(py)?.into_any().unbind())
        }))
    }

    /// Deletes every matching row; resolves to the count, or with `returning` to the
    /// deleted rows' primary keys (for a session to let go of its instances of them).
    #[pyo3(signature = (target, returning = false))]
    fn delete(&self, py: Python<'_>, target: &Bound<'_, PyAny>, returning: bool) -> PyResult<Op> {
        self.uncombined(py, "delete from")?;
        self.unsliced(py, "delete")?;
        let schema = self.schema.get();
        let key = schema.fields[schema.pk].column.clone();
        let delete = Delete {
            table: schema.table.to_string().into(),
            filter: self.select.conditions(),
            returning: if returning { vec![key] } else { Vec::new() },
        };
        let mode = if returning { Mode::All } else { Mode::Execute };
        let request = Request::new(compile::delete(&Postgres, &delete), mode).labels(labels(schema, "DELETE"));
        let target = Target::extract(target)?;
        if returning {
            return Ok(op(async move { target.run(request, true).await?.into_rows() }, |py, rows| {
                let keys = PyList::empty(py);
                if let Some(first) = rows.first() {
                    let decoder = Decoder::for_type(first.columns()[0].type_());
                    for row in &rows {
                        keys.append(decode(py, row, 0, &decoder)?)?;
                    }
                }
                Ok(keys.into_any().unbind())
            }));
        }
        Ok(op(async move { target.run(request, true).await?.rows_affected() }, |py, n| {
            Ok(n.into_pyobject(py)?.into_any().unbind())
        }))
    }

    /// The named fields (all when empty) of each row, shaped `"dict"`, `"tuple"` or
    /// `"flat"`. With `aggregates` (specs as [`aggregate`](Self::aggregate)'s), a row per
    /// group of the fields' values instead, the aggregates after the fields (Django's
    /// `values(…).annotate(…)`), ordered by `order`: the fields and the aggregates' aliases.
    /// `terminal` `"count"` gives how many rows (or groups) there are instead, `"exists"`
    /// whether there are any.
    #[pyo3(signature = (target, fields, shape, aggregates = None, order = None, having = None, terminal = None))]
    #[allow(clippy::too_many_arguments)] // Python's keywords, one by one
    fn values(
        &self,
        py: Python<'_>,
        target: &Bound<'_, PyAny>,
        fields: Vec<String>,
        shape: String,
        aggregates: Option<Vec<AggregateSpec>>,
        order: Option<Vec<String>>,
        having: Option<Vec<(String, Bound<'_, PyAny>)>>,
        terminal: Option<&str>,
    ) -> PyResult<Op> {
        let schema = self.schema.get();
        let specs = aggregates.unwrap_or_default();
        let annotations = &self.select.annotations;
        // What each name picks: a field, or (of an annotated queryset) an annotation;
        // no names pick every field, then every annotation the rows hold.
        let picks: Vec<Pick> = if fields.is_empty() {
            let held = (0..annotations.len()).filter(|&a| annotations[a].selected);
            (0..schema.fields.len()).map(Pick::Field).chain(held.map(Pick::Annotation)).collect()
        } else {
            let pick = |name: &String| {
                if let Some(a) = annotations.iter().position(|a| a.alias == name.as_str()) {
                    if !annotations[a].selected {
                        return Err(field_error(
                            py,
                            format!(
                                "cannot read the alias `{name}`: alias() values are for filtering and ordering; \
                                 annotate() it to read it"
                            ),
                        ));
                    }
                    return Ok(Pick::Annotation(a));
                }
                match self.select.reached.iter().position(|r| r.alias == name.as_str()) {
                    Some(r) => Ok(Pick::Reached(r)),
                    None => field_index(py, schema, name).map(Pick::Field),
                }
            };
            fields.iter().map(pick).collect::<PyResult<_>>()?
        };
        if shape == "flat" && picks.len() + specs.len() != 1 {
            return Err(field_error(py, "values_list(flat=True) needs exactly one field and no aggregates".into()));
        }
        let indices: Vec<usize> =
            picks.iter().filter_map(|p| if let Pick::Field(i) = p { Some(*i) } else { None }).collect();
        let mut select = self.select.clone();
        // Values are plain, not instances: `select_related` has nothing to attach to.
        select.joins.clear();
        select.columns = indices.iter().map(|&i| schema.fields[i].column.clone()).collect();
        // The annotations computed: all when some pick rows, else those named or ordered by.
        if select.annotation_filter.is_none() {
            let wanted = |a: &Annotation| {
                picks.iter().any(|p| matches!(p, Pick::Annotation(i) if annotations[*i].alias == a.alias))
                    || select.order.iter().any(|o| o.column == a.alias)
            };
            select.annotations = annotations.iter().filter(|a| wanted(a)).cloned().collect();
        }
        // Each name's column in the statement (the fields in order, then the
        // annotations), and its key in the rows.
        let mut next_field = 0;
        let (mut columns, mut names): (Vec<usize>, Vec<Py<PyString>>) = picks
            .iter()
            .map(|pick| match *pick {
                Pick::Field(i) => {
                    next_field += 1;
                    (next_field - 1, schema.names[i].clone_ref(py))
                }
                Pick::Annotation(a) => {
                    let alias = &annotations[a].alias;
                    let at = select.selected_aliases().position(|s| s == alias).expect("computed");
                    (indices.len() + at, PyString::new(py, alias).unbind())
                }
                // After the annotations: the reached columns are the joined rows'.
                Pick::Reached(r) => {
                    let at = indices.len() + select.selected_aliases().count() + r;
                    (at, PyString::new(py, &select.reached[r].alias).unbind())
                }
            })
            .unzip();
        let mut reads = Vec::new();
        if !specs.is_empty() {
            self.uncombined(py, "group")?;
            // Annotations the groups are keyed by, after the fields (values("author__name")
            // reads one); others would make each row a group of its own.
            let keyed = select.annotations.len() == picks.iter().filter(|p| matches!(p, Pick::Annotation(_))).count();
            let held = annotations.iter().filter(|a| a.selected).count();
            if select.annotation_filter.is_some() || select.annotations.len() < held || !keyed {
                return Err(errors::new(
                    py,
                    "ProgrammingError",
                    "cannot group an annotated queryset by other values than its annotations: name each in \
                     values(...), or call values(...).annotate(...) before annotating its rows",
                ));
            }
            let first = indices.len() + select.annotations.len() + select.reached.len();
            let (aggregates, read, reached) = aggregates_of(py, schema, &specs, true)?;
            let keys: Vec<_> = select.reached.iter().map(|r| r.alias.clone()).collect();
            select.reached.extend(reached);
            reads = read.into_iter().map(|(i, read)| (i + first, read)).collect();
            names.extend(specs.iter().map(|(alias, ..)| PyString::new(py, alias).unbind()));
            columns.extend(first..first + specs.len());
            if let Some(having) = having.filter(|h| !h.is_empty()) {
                let conditions = having
                    .iter()
                    .map(|(key, value)| having_condition(py, &specs, &aggregates, key, value))
                    .collect::<PyResult<Vec<_>>>()?;
                select.having = Some(Expr::And(conditions));
            }
            select.projection = Projection::Aggregates;
            select.aggregates = aggregates;
            // Every column stays selected for a locking query's subquery of rows.
            let every = schema.fields.iter().map(|f| f.column.clone()).collect();
            select.group_by = std::mem::replace(&mut select.columns, every);
            select.group_by.extend(select.annotations.iter().map(|a| a.alias.clone()));
            select.group_by.extend(keys);
            if let Some(order) = order {
                let keys = (&select.annotations[..], &select.reached[..]);
                let order = order.iter().map(|spec| group_order(py, schema, keys, &specs, spec));
                select.order = order.collect::<PyResult<_>>()?;
            }
        }
        // Say which field the rows are ordered by but do not hold.
        if let Some(order) = select.order_outside_rows() {
            if !select.distinct_on.is_empty() {
                return Err(distinct_on_order(py, schema, &order.column));
            }
            let field = schema.fields.iter().find(|f| f.column == order.column).map_or(&*order.column, |f| &f.name);
            let what = match (specs.is_empty(), select.combined.is_empty()) {
                (false, _) => "grouped values",
                (true, true) => "distinct() values",
                (true, false) => "combined values",
            };
            return Err(field_error(
                py,
                format!("{what} are ordered by `{field}`, which they do not include: add it to the fields or drop it from order_by()"),
            ));
        }
        let target = Target::extract(target)?;
        if terminal == Some("stream") {
            let request = self.request(&select, Mode::Stream);
            return Ok(cursor_op(target, request, Reader::Values { names, columns, shape, reads }));
        }
        if let Some(terminal) = terminal {
            // The order matters only to a window's rows.
            if select.limit.is_none() && select.offset.is_none() {
                select.order.clear();
            }
            let exists = terminal == "exists";
            let statement = compile::count_rows(&Postgres, &select, exists);
            let request = Request::labelled(statement, Mode::One, labels(schema, "SELECT"))
                .requires_transaction(select.lock.is_some());
            let answer = async move {
                let row = target.run(request, false).await?.into_row()?;
                Ok(match exists {
                    true => i64::from(row.try_get::<_, bool>(0)?),
                    false => row.try_get::<_, i64>(0)?,
                })
            };
            return Ok(op(answer, move |py, n: i64| {
                Ok(match exists {
                    true => PyBool::new(py, n != 0).to_owned().into_any().unbind(),
                    false => n.into_pyobject(py)?.into_any().unbind(),
                })
            }));
        }
        let request = self.request(&select, Mode::All);
        Ok(op(async move { target.run(request, false).await?.into_rows() }, move |py, rows| {
            Ok(shape_rows(py, &rows, &names, &columns, &shape, &reads)?.into_any().unbind())
        }))
    }

    /// Whether a window (slice, limit or offset) is set.
    fn sliced(&self) -> bool {
        self.select.limit.is_some() || self.select.offset.is_some()
    }

    /// Opens a server-side stream of the matching rows; resolves to a [`Cursor`].
    #[pyo3(signature = (target, identity = None, joined = None))]
    fn stream(
        &self,
        py: Python<'_>,
        target: &Bound<'_, PyAny>,
        identity: Option<Py<PyDict>>,
        joined: Option<Vec<Py<PyDict>>>,
    ) -> PyResult<Op> {
        let target = Target::extract(target)?;
        let request = self.rows_request(py, &self.select, Mode::Stream)?;
        let reader = Reader::Instances(self.loader(py, &self.select, identity, joined)?);
        Ok(cursor_op(target, request, reader))
    }

    /// Loads the relation `path` (one holding a row at most) in this query's statement:
    /// the row of `schema`'s model whose field `key` holds the value of the field
    /// `field` — of the query's row (`owner` `None`) or of the row of the earlier join
    /// `owner` — is selected with each row (`LEFT JOIN`), and `attach(owner, row or
    /// None)` makes it the relation's value.
    #[allow(clippy::too_many_arguments)] // the path, the two ends and how rows attach
    fn join(
        &self,
        py: Python<'_>,
        path: String,
        owner: Option<usize>,
        field: &str,
        schema: Bound<'_, Schema>,
        key: &str,
        attach: Py<PyAny>,
    ) -> PyResult<Query> {
        self.uncombined(py, "join the related rows of")?;
        let from = match owner {
            None => self.schema.get(),
            Some(i) => match self.joins.get(i) {
                Some(joined) => joined.schema.get(),
                None => {
                    return Err(PyErr::new::<pyo3::exceptions::PyIndexError, _>(format!("no join {i} to join from")))
                }
            },
        };
        let column = from.fields[field_index(py, from, field)?].column.clone();
        let target = schema.get();
        let join = Join {
            table: target.table.to_string().into(),
            columns: target.fields.iter().map(|f| f.column.clone()).collect(),
            key: target.fields[field_index(py, target, key)?].column.clone(),
            from: owner,
            column,
        };
        let mut query = self.derive(py, self.select.clone());
        // The instance holds the key its related row is attached by, even when only()
        // left it out.
        if owner.is_none() && !query.select.columns.contains(&join.column) {
            query.select.columns.push(join.column.clone());
        }
        query.select.joins.push(join);
        query.joins.push(Joined { path, schema: schema.unbind(), attach });
        Ok(query)
    }

    /// This query matching no row (Django's `none()`).
    fn none(&self, py: Python<'_>) -> PyResult<Query> {
        self.uncombined(py, "empty")?;
        let mut select = self.select.clone();
        select.filter(Expr::Literal(false));
        Ok(self.derive(py, select))
    }

    /// This query without its joins.
    fn unjoined(&self, py: Python<'_>) -> Query {
        let mut select = self.select.clone();
        select.joins.clear();
        Query { schema: self.schema.clone_ref(py), select, joins: Vec::new() }
    }

    /// The relations joined (`join`), in order: their paths and models.
    fn joined(&self, py: Python<'_>) -> Vec<(String, Py<PyType>)> {
        self.joins.iter().map(|j| (j.path.clone(), j.schema.get().model.clone_ref(py))).collect()
    }
}

/// An expression's tree — `("field", name)`, `("value", v)`, `("op", "+", left, right)`,
/// `("call", function, [args])` (`Coalesce`, `Lower`, …) or `("case", [(Q, then)],
/// default or None)` — as an operand. For field `target` (the one assigned or compared
/// with), its fields must hold values of the target's kind (numbers of any kind go
/// together) and its values are converted by the target's type; for none (an
/// annotation's own value), values are taken as Python gives them. Arithmetic needs
/// numeric fields, text functions text; anything else is a `FieldError` naming the culprit.
fn f_operand(py: Python<'_>, schema: &Schema, target: Option<usize>, tree: &Bound<'_, PyAny>) -> PyResult<Operand> {
    let bad = || PyErr::new::<pyo3::exceptions::PyTypeError, _>("not an F expression");
    let node = tree.cast::<PyTuple>().map_err(|_| bad())?;
    let tag: String = node.get_item(0)?.extract()?;
    Ok(match (tag.as_str(), node.len()) {
        ("field", 2) => {
            let name: String = node.get_item(1)?.extract()?;
            let field = field_ref(py, schema, &name)?;
            let kind = field.kind(schema);
            if let Some(target) = target.filter(|&t| !kind.compatible(schema.types[t].kind)) {
                return Err(field_error(
                    py,
                    format!("F(\"{name}\") cannot stand for {}: their types differ", schema.label(target)),
                ));
            }
            match field {
                FieldRef::Own(field) => Operand::Column(schema.fields[field].column.clone()),
                FieldRef::Derived { operand, .. } => operand,
            }
        }
        ("value", 2) => {
            let value = node.get_item(1)?;
            Operand::Value(match target {
                Some(target) => to_value(&value, &schema.types[target], &schema.label(target))?,
                None => to_value_untyped(&value)?,
            })
        }
        ("op", 4) => {
            let op = match node.get_item(1)?.extract::<String>()?.as_str() {
                "+" => ArithOp::Add,
                "-" => ArithOp::Sub,
                "*" => ArithOp::Mul,
                "/" => ArithOp::Div,
                _ => return Err(bad()),
            };
            let (left, right) = (node.get_item(2)?, node.get_item(3)?);
            // The fields computed with: the target's type, or (untyped) each field named.
            let mut fields = Vec::new();
            match target {
                Some(target) => fields.push(FieldRef::Own(target)),
                None => {
                    for side in [&left, &right] {
                        let side = side.cast::<PyTuple>().map_err(|_| bad())?;
                        if side.get_item(0)?.extract::<String>()? == "field" {
                            fields.push(field_ref(py, schema, &side.get_item(1)?.extract::<String>()?)?);
                        }
                    }
                }
            }
            if let Some(field) = fields.iter().find(|f| !f.kind(schema).is_numeric()) {
                return Err(field_error(
                    py,
                    format!("F arithmetic needs a numeric field; {} is not one", field.label(schema)),
                ));
            }
            // A number the target's type cannot hold (`F("stock") * 1.5` for an integer
            // field) goes as itself, as Django's does: the arithmetic widens.
            let side = |tree: &Bound<'_, PyAny>| match f_operand(py, schema, target, tree) {
                Err(_) if target.is_some() && tree_kind(py, schema, tree)?.is_some_and(FieldKind::is_numeric) => {
                    f_operand(py, schema, None, tree)
                }
                other => other,
            };
            Operand::arith(side(&left)?, op, side(&right)?)
        }
        ("cast", 4) => {
            let (to, sql_type): (String, String) = (node.get_item(2)?.extract()?, node.get_item(3)?.extract()?);
            stands_for(py, schema, target, FieldKind::from_sql_type(&sql_type), "Cast()")?;
            let value = f_operand(py, schema, None, &node.get_item(1)?)?;
            Operand::cast(value, &to).ok_or_else(|| field_error(py, format!("Cast() to {to:?}: not a type name")))?
        }
        // Checked against the outer query's field once this one is inside it.
        ("outer", 2) => Operand::Outer(node.get_item(1)?.extract::<String>()?.into()),
        // `F("n")` naming an annotation: its value, in place (as Django resolves it).
        ("annotation", 3) => {
            let alias: String = node.get_item(1)?.extract()?;
            match annotation_value(py, schema, &alias, &node.get_item(2)?)? {
                Scalar::Operand(operand) => operand,
                scalar => Operand::Scalar(Box::new(scalar)),
            }
        }
        // `RawSQL("similarity(name, %s)", ["x"], Float)`: SQL of the application's own.
        ("raw", 4) => {
            let (sql, params, sql_type): (String, Vec<Bound<'_, PyAny>>, Option<String>) =
                (node.get_item(1)?.extract()?, node.get_item(2)?.extract()?, node.get_item(3)?.extract()?);
            stands_for(py, schema, target, sql_type.as_deref().and_then(FieldKind::from_sql_type), "RawSQL()")?;
            let count = params.len();
            let params = params.iter().map(to_value_untyped).collect::<PyResult<_>>()?;
            Operand::raw(&sql, params).ok_or_else(|| {
                field_error(py, format!("RawSQL({sql:?}) has a different number of %s than its {count} params"))
            })?
        }
        // `KT("data__owner__name")`: the text a key path of a `jsonb` field leads to.
        ("keytext", 2) => {
            let name: String = node.get_item(1)?.extract()?;
            stands_for(py, schema, target, Some(FieldKind::Text), "KT()")?;
            let Some(text) = lookup::json_path(&schema.fields, &name, true) else {
                return Err(field_error(
                    py,
                    format!(
                        "KT({name:?}) takes a JSON field and keys, as KT(\"data__owner__name\"), on {}",
                        schema.name
                    ),
                ));
            };
            Operand::Scalar(Box::new(text))
        }
        ("exists", 3) => {
            stands_for(py, schema, target, Some(FieldKind::Bool), "Exists()")?;
            let select = correlated_select(py, schema, &node.get_item(1)?)?;
            Operand::Condition(Box::new(Expr::Exists {
                select: Box::new(select),
                negated: node.get_item(2)?.extract()?,
            }))
        }
        ("subquery", 2) => {
            stands_for(py, schema, target, tree_kind(py, schema, tree)?, "Subquery()")?;
            Operand::Subquery(Box::new(correlated_select(py, schema, &node.get_item(1)?)?))
        }
        ("window", 4) => {
            if target.is_some() {
                return Err(field_error(
                    py,
                    "a Window is read with annotate() (then filtered or sorted by its name), not compared or assigned"
                        .to_owned(),
                ));
            }
            let call = node.get_item(1)?;
            let call = call.cast::<PyTuple>().map_err(|_| bad())?;
            let (tag, name): (String, String) = (call.get_item(0)?.extract()?, call.get_item(1)?.extract()?);
            let function = match tag.as_str() {
                "aggregate" => AggregateFn::named(&name).map(WindowFunction::Aggregate),
                _ => WindowFunction::named(&name),
            };
            let Some(function) = function else {
                return Err(field_error(py, format!("{name}() is not a window function")));
            };
            let args: Vec<Bound<'_, PyAny>> = call.get_item(2)?.extract()?;
            let (least, most) = function.arity();
            if args.len() < least || args.len() > most {
                return Err(field_error(
                    py,
                    format!("{name}() in a Window takes {least} to {most} arguments, got {}", args.len()),
                ));
            }
            let args = args.iter().map(|arg| f_operand(py, schema, None, arg)).collect::<PyResult<_>>()?;
            let partition_by: Vec<Bound<'_, PyAny>> = node.get_item(2)?.extract()?;
            let partition_by =
                partition_by.iter().map(|key| f_operand(py, schema, None, key)).collect::<PyResult<_>>()?;
            let order_by: Vec<Bound<'_, PyAny>> = node.get_item(3)?.extract()?;
            let order_by = order_by.iter().map(|spec| order_term(py, schema, &[], spec)).collect::<PyResult<_>>()?;
            Operand::Window { function, args, partition_by, order_by }
        }
        ("call", 3) => {
            let name: String = node.get_item(1)?.extract()?;
            if WindowFunction::named(&name).is_some() {
                return Err(field_error(py, format!("{name}() is a window function: use it in Window({name}(), ...)")));
            }
            let function = Function::named(&name).ok_or_else(bad)?;
            let args: Vec<Bound<'_, PyAny>> = node.get_item(2)?.extract()?;
            match function.arity() {
                (least, most) if args.len() < least || most.is_some_and(|most| args.len() > most) => {
                    return Err(field_error(
                        py,
                        format!("{name}() takes {least} to {most:?} arguments, got {}", args.len()),
                    ));
                }
                _ => {}
            }
            // The arguments' kinds, where known, checked against what it takes.
            let mut alike: Option<FieldKind> = None;
            for (i, arg) in args.iter().enumerate() {
                let Some(kind) = tree_kind(py, schema, arg)? else { continue };
                let takes = function.takes_at(i);
                let fits = match takes {
                    Takes::Any => true,
                    Takes::Alike => alike.is_none_or(|seen| kind.compatible(seen)),
                    Takes::Text => kind == FieldKind::Text,
                    Takes::Number => kind.is_numeric(),
                    Takes::Exact => kind.is_numeric() && kind != FieldKind::Float,
                    Takes::Count => kind.is_integer(),
                };
                if !fits {
                    let wants = match (takes, alike) {
                        (Takes::Alike, Some(seen)) => {
                            format!("values of one type ({} and {})", kind_name(seen), kind_name(kind))
                        }
                        (Takes::Number, _) => "numbers".to_owned(),
                        (Takes::Exact, _) => "integers or decimals (not floats)".to_owned(),
                        (Takes::Count, _) => format!("an integer as argument {}", i + 1),
                        _ => "text".to_owned(),
                    };
                    return Err(field_error(py, format!("{name}() takes {wants}; it was given {}", describe(arg)?)));
                }
                if takes.is_alike() {
                    alike = alike.or(Some(kind));
                }
            }
            let gives = gives_kind(function.gives(), alike);
            stands_for(py, schema, target, gives, &format!("{name}()"))?;
            // Arguments of the result's own kind are converted as the target's values.
            let args = args
                .iter()
                .enumerate()
                .map(|(i, arg)| {
                    let own = match (function.takes_at(i), function.gives()) {
                        (takes, Gives::Alike) if takes.is_alike() => target,
                        (Takes::Text, Gives::Text) => target,
                        _ => None,
                    };
                    f_operand(py, schema, own, arg)
                })
                .collect::<PyResult<_>>()?;
            let call = Operand::Call { function, args };
            // Rounded to places as a `numeric`, then read as the type it rounds.
            match alike.and_then(FieldKind::sql_type) {
                Some(sql_type)
                    if function == Function::Round
                        && node.get_item(2)?.len()? == 2
                        && alike != Some(FieldKind::Numeric) =>
                {
                    Operand::cast(call, sql_type).ok_or_else(bad)?
                }
                _ => call,
            }
        }
        ("case", 3) => {
            let whens: Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)> = node.get_item(1)?.extract()?;
            let otherwise = node.get_item(2)?;
            let mut seen: Option<FieldKind> = None;
            for then in whens.iter().map(|(_, then)| then).chain((!otherwise.is_none()).then_some(&otherwise)) {
                if let Some(kind) = tree_kind(py, schema, then)? {
                    if let Some(other) = seen.filter(|s| !s.compatible(kind)) {
                        return Err(field_error(
                            py,
                            format!(
                                "Case() gives values of one type; its branches give {} and {}",
                                kind_name(other),
                                kind_name(kind)
                            ),
                        ));
                    }
                    seen = seen.or(Some(kind));
                }
            }
            stands_for(py, schema, target, seen, "Case()")?;
            let mut branches = Vec::with_capacity(whens.len());
            for (condition, then) in &whens {
                let condition = condition.call_method1("_tree", (schema.model.bind(py),))?;
                let condition = self::tree(py, schema, &[], condition.cast::<PyTuple>()?)?;
                branches.push((condition, f_operand(py, schema, target, then)?));
            }
            let otherwise = match otherwise.is_none() {
                true => None,
                false => Some(Box::new(f_operand(py, schema, target, &otherwise)?)),
            };
            Operand::Case { branches, otherwise }
        }
        _ => return Err(bad()),
    })
}

/// Refuses an expression giving values of `kind` (where known) for field `target`,
/// `what` naming the expression.
fn stands_for(
    py: Python<'_>,
    schema: &Schema,
    target: Option<usize>,
    kind: Option<FieldKind>,
    what: &str,
) -> PyResult<()> {
    // A timestamp with a zone and one without stand for each other: the database converts
    // between them in the connection's zone.
    let timestamp = |kind: FieldKind| matches!(kind, FieldKind::Timestamp | FieldKind::TimestampTz);
    match (target, kind) {
        (Some(target), Some(kind)) if timestamp(kind) && timestamp(schema.types[target].kind) => Ok(()),
        (Some(target), Some(kind)) if !schema.types[target].kind.compatible(kind) => Err(field_error(
            py,
            format!("{what} gives {}; it cannot stand for {}", kind_name(kind), schema.label(target)),
        )),
        _ => Ok(()),
    }
}

/// The kind of value an expression's tree gives, where its fields tell (a plain value
/// or arithmetic does not say).
fn tree_kind(py: Python<'_>, schema: &Schema, tree: &Bound<'_, PyAny>) -> PyResult<Option<FieldKind>> {
    let Ok(node) = tree.cast::<PyTuple>() else { return Ok(None) };
    let tag: String = node.get_item(0)?.extract()?;
    Ok(match tag.as_str() {
        "field" => Some(field_ref(py, schema, &node.get_item(1)?.extract::<String>()?)?.kind(schema)),
        "call" => match Function::named(&node.get_item(1)?.extract::<String>()?) {
            Some(function) => {
                let args = node.get_item(2)?;
                let alike = args.try_iter()?.enumerate().filter(|(i, _)| function.takes_at(*i).is_alike());
                gives_kind(function.gives(), first_kind(py, schema, alike.map(|(_, arg)| arg))?)
            }
            None => None,
        },
        "case" => {
            let whens = node.get_item(1)?.try_iter()?.map(|when| when?.get_item(1));
            let otherwise = node.get_item(2)?;
            first_kind(py, schema, whens.chain((!otherwise.is_none()).then_some(Ok(otherwise))))?
        }
        "exists" => Some(FieldKind::Bool),
        "annotation" => annotation_kind(py, schema, &node.get_item(1)?.extract::<String>()?, &node.get_item(2)?)?,
        "keytext" => Some(FieldKind::Text),
        "raw" => node.get_item(3)?.extract::<Option<String>>()?.as_deref().and_then(FieldKind::from_sql_type),
        "cast" => FieldKind::from_sql_type(&node.get_item(3)?.extract::<String>()?),
        "window" => {
            let call = node.get_item(1)?;
            let name: String = call.get_item(1)?.extract()?;
            match name.as_str() {
                "RowNumber" | "Rank" | "DenseRank" | "Ntile" | "count" => Some(FieldKind::BigInt),
                "PercentRank" | "CumeDist" => Some(FieldKind::Float),
                _ => first_kind(py, schema, call.get_item(2)?.try_iter()?)?,
            }
        }
        "subquery" => subquery_of(&node.get_item(1)?)?.map(|sub| {
            let sub = sub.get();
            sub.schema.get().types[sub.field].kind
        }),
        "value" => {
            let value = node.get_item(1)?;
            if value.is_instance_of::<PyBool>() {
                Some(FieldKind::Bool)
            } else if value.is_instance_of::<PyInt>() {
                Some(FieldKind::BigInt)
            } else if value.is_instance_of::<PyFloat>() {
                Some(FieldKind::Float)
            } else if value.is_instance_of::<PyString>() {
                Some(FieldKind::Text)
            } else if value.is_instance(decimal_class(py)?)? {
                Some(FieldKind::Numeric)
            } else {
                None
            }
        }
        // Arithmetic is as wide as its widest side: a decimal, else a float, else an integer.
        "op" => {
            let sides = [tree_kind(py, schema, &node.get_item(2)?)?, tree_kind(py, schema, &node.get_item(3)?)?];
            [FieldKind::Numeric, FieldKind::Float]
                .into_iter()
                .find(|wide| sides.contains(&Some(*wide)))
                .or_else(|| sides.into_iter().flatten().next())
        }
        _ => None,
    })
}

/// The kind a function giving `gives` gives, `alike` the kind of its arguments of the
/// kind it gives.
fn gives_kind(gives: Gives, alike: Option<FieldKind>) -> Option<FieldKind> {
    match gives {
        Gives::Alike => alike,
        Gives::Text => Some(FieldKind::Text),
        // `integer` as PostgreSQL gives it; an int either way to Python.
        Gives::Integer => Some(FieldKind::BigInt),
        Gives::Fraction if alike == Some(FieldKind::Numeric) => Some(FieldKind::Numeric),
        Gives::Fraction => Some(FieldKind::Float),
        Gives::Uuid => Some(FieldKind::Uuid),
        Gives::Timestamp => Some(FieldKind::TimestampTz),
        Gives::Json => Some(FieldKind::Json),
    }
}

/// The first kind among trees that tell one.
fn first_kind<'py>(
    py: Python<'py>,
    schema: &Schema,
    trees: impl Iterator<Item = PyResult<Bound<'py, PyAny>>>,
) -> PyResult<Option<FieldKind>> {
    for tree in trees {
        if let Some(kind) = tree_kind(py, schema, &tree?)? {
            return Ok(Some(kind));
        }
    }
    Ok(None)
}

/// An expression's tree as the user wrote it, for errors: `F("name")`, a value's repr.
fn describe(tree: &Bound<'_, PyAny>) -> PyResult<String> {
    let node = tree.cast::<PyTuple>()?;
    Ok(match node.get_item(0)?.extract::<String>()?.as_str() {
        "field" => format!("F({:?})", node.get_item(1)?.extract::<String>()?),
        "annotation" => format!("the annotation `{}`", node.get_item(1)?.extract::<String>()?),
        "value" => node.get_item(1)?.repr()?.to_string(),
        "call" => format!("{}(…)", node.get_item(1)?.extract::<String>()?),
        "case" => "Case(…)".to_owned(),
        "keytext" => format!("KT({:?})", node.get_item(1)?.extract::<String>()?),
        "raw" => format!("RawSQL({:?})", node.get_item(1)?.extract::<String>()?),
        "exists" => "Exists(…)".to_owned(),
        "cast" => "Cast(…)".to_owned(),
        "window" => "Window(…)".to_owned(),
        "subquery" => "Subquery(…)".to_owned(),
        _ => "arithmetic".to_owned(),
    })
}

/// A kind as errors name it.
fn kind_name(kind: FieldKind) -> &'static str {
    match kind {
        k if k.is_numeric() => "a number",
        FieldKind::Text => "text",
        FieldKind::Bool => "a bool",
        FieldKind::Timestamp | FieldKind::TimestampTz => "a timestamp",
        FieldKind::Date => "a date",
        FieldKind::Time => "a time",
        FieldKind::Uuid => "a uuid",
        FieldKind::Json => "JSON",
        _ => "bytes",
    }
}

/// An annotation's value as `spec` gives it (see [`Query::annotate`]): a tagged tuple,
/// else an `F` tree.
fn annotation_value(py: Python<'_>, schema: &Schema, alias: &str, spec: &Bound<'_, PyAny>) -> PyResult<Scalar> {
    let tagged = spec.cast::<PyTuple>().ok().and_then(|t| {
        let tag = t.get_item(0).ok()?.extract::<String>().ok()?;
        Some((tag, t))
    });
    Ok(match tagged.as_ref().map(|(tag, t)| (tag.as_str(), t.len(), t)) {
        Some(("related", 7, t)) => related_annotation(py, schema, alias, t)?,
        // A fourth item `True` reads a timestamp's start as a date (`dates()`).
        Some(("trunc", n @ (3 | 4), t)) => {
            let (field, kind): (String, String) = (t.get_item(1)?.extract()?, t.get_item(2)?.extract()?);
            let unit = TruncUnit::named(&kind).ok_or_else(|| field_error(py, format!("no Trunc kind {kind:?}")))?;
            let as_date = n == 4 && t.get_item(3)?.extract::<bool>()?;
            match lookup::trunc(&schema.fields, &schema.table, &field, unit) {
                Ok(Scalar::Trunc { unit, column, .. }) if as_date => Scalar::Trunc { unit, column, date: true },
                Ok(value) => value,
                Err(e) => return Err(field_error(py, format!("`{alias}`: {}", e.message()))),
            }
        }
        Some(("named", 2, t)) => {
            let name: String = t.get_item(1)?.extract()?;
            lookup::value(&schema.fields, &schema.table, &name).map_err(|e| field_error(py, e.message().to_owned()))?
        }
        Some(("referred", 3, t)) => {
            referred_value(py, schema, alias, t.get_item(1)?.extract()?, &t.get_item(2)?.extract::<String>()?)?
        }
        _ => Scalar::Operand(f_operand(py, schema, None, spec)?),
    })
}

/// The type of the annotation `alias`'s value as `spec` gives it, where known.
fn annotation_kind(
    py: Python<'_>,
    schema: &Schema,
    alias: &str,
    spec: &Bound<'_, PyAny>,
) -> PyResult<Option<FieldKind>> {
    let tag = spec.cast::<PyTuple>().ok().and_then(|t| t.get_item(0).ok()?.extract::<String>().ok());
    Ok(match tag.as_deref() {
        Some("related") => {
            let path: Vec<HopSpec<'_>> = spec.get_item(1)?.extract()?;
            let (function, field): (String, String) = (spec.get_item(2)?.extract()?, spec.get_item(3)?.extract()?);
            let (_, related) = hops_of(py, schema, alias, &path)?;
            let input = match field.as_str() {
                "*" => None,
                name => Some(related.types[field_index(py, related, name)?].kind),
            };
            AggregateFn::named(&function).and_then(|function| aggregated_kind(function, input))
        }
        Some("trunc") if spec.len()? == 4 && spec.get_item(3)?.extract::<bool>()? => Some(FieldKind::Date),
        Some("trunc") => Some(field_ref(py, schema, &spec.get_item(1)?.extract::<String>()?)?.kind(schema)),
        _ => tree_kind(py, schema, spec)?,
    })
}

/// The type of what `function` gives over values of type `input` (where known), as
/// Python reads it (see [`Read`]).
fn aggregated_kind(function: AggregateFn, input: Option<FieldKind>) -> Option<FieldKind> {
    match (function, Read::of(function, input)) {
        (_, Some(Read::Float)) => Some(FieldKind::Float),
        (_, Some(Read::Int)) | (AggregateFn::Count, _) => Some(FieldKind::BigInt),
        (AggregateFn::BoolAnd | AggregateFn::BoolOr, _) => Some(FieldKind::Bool),
        (AggregateFn::StringAgg, _) => Some(FieldKind::Text),
        (AggregateFn::ArrayAgg, _) => None,
        // min, max, and the sum or average of decimals: their values' type.
        _ => input,
    }
}

/// `("related", hops, function, field or "*", distinct, filter, more)`: an aggregate of
/// the rows the hops lead to from a row of `schema` (see [`Query::annotate`]), its field,
/// filter and order the last schema's.
fn related_annotation(py: Python<'_>, schema: &Schema, alias: &str, spec: &Bound<'_, PyTuple>) -> PyResult<Scalar> {
    let path: Vec<HopSpec<'_>> = spec.get_item(1)?.extract()?;
    let function: String = spec.get_item(2)?.extract()?;
    let (field, distinct): (Py<PyAny>, bool) = (spec.get_item(3)?.unbind(), spec.get_item(4)?.extract()?);
    let filter: Option<Py<PyTuple>> = spec.get_item(5)?.extract()?;
    let more: Option<MoreSpec> = spec.get_item(6)?.extract()?;
    let (hops, related) = hops_of(py, schema, alias, &path)?;
    let aggregate_spec = (alias.to_owned(), function, field, distinct, filter, more);
    let (mut aggregates, reads, _) = aggregates_of(py, related, std::slice::from_ref(&aggregate_spec), false)?;
    let aggregate = aggregates.pop().expect("one aggregate per spec");
    let related = Scalar::Related { aggregate, outer_table: schema.table.to_string().into(), hops };
    let to = match reads.first() {
        Some((_, Read::Float)) => Cast::Float8,
        Some((_, Read::Int)) => Cast::Int8,
        None => return Ok(related),
    };
    Ok(Scalar::Cast { value: Box::new(related), to })
}

/// An aggregate as Python describes it: `(alias, function, field, distinct, filter,
/// more)`, `filter` a `Q` tree or `None`; `field` a field's name, `"*"`, or `("reach",
/// hops, columns)` for a column of the rows relations lead to (`Count("books")`), the
/// columns `(alias, field)` of the last model's that the aggregate (the first), its filter
/// and its order read; `more` its further arguments and order, if any.
type AggregateSpec = (String, String, Py<PyAny>, bool, Option<Py<PyTuple>>, Option<MoreSpec>);

/// An aggregate's further arguments (expression trees: `StringAgg`'s separator), the
/// order it takes its values in (as `order_by` takes it), and its default (`None`: none).
type MoreSpec = (Vec<Py<PyAny>>, Vec<Py<PyAny>>, Py<PyAny>);

/// `("reach", hops, columns)`: an [`AggregateSpec`]'s field across relations.
type ReachSpec<'py> = (String, Vec<HopSpec<'py>>, Vec<(String, String)>);

/// The aggregates `specs` describe, each checked against its field (`sum` and `avg` take
/// numbers, `min` and `max` ordered values, only `count` takes `"*"`: every row), or a
/// `FieldError` naming the alias and field; `aliased` names each result column by its
/// alias. With how Python reads some of them, by position (see [`Read`]): as in Django,
/// `avg` of an integer or float field is a float, of a decimal one a `Decimal`, and `sum`
/// of integers an int.
fn aggregates_of(
    py: Python<'_>,
    schema: &Schema,
    specs: &[AggregateSpec],
    aliased: bool,
) -> PyResult<(Vec<Aggregate>, Reads, Vec<Reached>)> {
    let mut aggregates = Vec::with_capacity(specs.len());
    let mut reads = Vec::new();
    let mut reached = Vec::new();
    for (i, (alias, function, field, distinct, filter, more)) in specs.iter().enumerate() {
        let function_name = function;
        let Some(function) = AggregateFn::named(function) else {
            return Err(field_error(py, format!("unknown aggregate `{function}` for `{alias}`")));
        };
        if aliased && schema.index_of(alias).is_some() {
            return Err(field_error(
                py,
                format!("the aggregate `{alias}` is named as a field of {}: name it otherwise", schema.name),
            ));
        }
        let alias_ident = aliased.then(|| alias.clone().into());
        // A value computed from each row (`Sum(F("price") * F("quantity"))`).
        if field.bind(py).is_instance(f_class(py)?)? {
            let expression = field.bind(py).getattr("_tree")?;
            let kind = tree_kind(py, schema, &expression)?;
            check_aggregated(
                py,
                function,
                kind,
                || format!("`{alias}`: {function_name}"),
                || Ok(format!("{} is not one", describe(&expression)?)),
            )?;
            reads.extend(Read::of(function, kind).map(|read| (i, read)));
            let filter = filter.as_ref().map(|node| tree(py, schema, &[], node.bind(py)).map(Box::new)).transpose()?;
            let value = Some(f_operand(py, schema, None, &expression)?);
            let more = aggregate_more(py, schema, &[], alias, function, more)?;
            aggregates.push(Aggregate { value, distinct: *distinct, alias: alias_ident, filter, ..more });
            continue;
        }
        // A column of rows relations lead to: the aggregate reads it (and its filter the
        // others) under its alias, from the rows joined to what they reach.
        let reach: Option<ReachSpec<'_>> = match field.bind(py).is_instance_of::<PyString>() {
            true => None,
            false => Some(field.extract(py)?),
        };
        let (field, target, read_as) = match &reach {
            None => (field.extract::<String>(py)?, schema, None),
            Some((_, path, columns)) => {
                let (hops, last) = hops_of(py, schema, alias, path)?;
                for (as_alias, name) in columns {
                    let column = last.fields[field_index(py, last, name)?].column.clone();
                    reached.push(Reached { hops: hops.clone(), column, alias: as_alias.clone().into() });
                }
                let (first_alias, first) =
                    columns.first().ok_or_else(|| field_error(py, format!("`{alias}` reads no column")))?;
                (first.clone(), last, Some(first_alias.clone()))
            }
        };
        // The reached columns, which the filter and the order may name, as names of the
        // rows.
        let named: Vec<Annotation> = reach
            .iter()
            .flat_map(|(_, _, columns)| columns)
            .map(|(name, _)| Annotation::new(name.clone(), Scalar::Operand(Operand::Column(name.clone().into()))))
            .collect();
        let filter = match filter {
            Some(node) => Some(Box::new(tree(py, schema, &named, node.bind(py))?)),
            None => None,
        };
        let more = aggregate_more(py, schema, &named, alias, function, more)?;
        let name = function;
        if field == "*" {
            if name != AggregateFn::Count || *distinct {
                return Err(field_error(
                    py,
                    format!("`{alias}`: only Count takes \"*\" (every row), without distinct"),
                ));
            }
            aggregates.push(Aggregate { value: None, distinct: false, alias: alias_ident, filter, ..more });
            continue;
        }
        let index = field_index(py, target, &field)?;
        let kind = target.types[index].kind;
        check_aggregated(
            py,
            name,
            Some(kind),
            || format!("`{alias}`: {function_name}"),
            || Ok(format!("{} is not one", target.label(index))),
        )?;
        reads.extend(Read::of(name, Some(kind)).map(|read| (i, read)));
        let column = read_as.map_or_else(|| target.fields[index].column.clone(), Into::into);
        let value = Some(Operand::Column(column));
        aggregates.push(Aggregate { value, distinct: *distinct, alias: alias_ident, filter, ..more });
    }
    Ok((aggregates, reads, reached))
}

/// `function` with its further arguments, the order it takes its values in and its
/// default, from `more` (the value, filter and alias for the caller to give): the
/// arguments of the row of `schema`, the order naming its fields or `named` columns.
fn aggregate_more(
    py: Python<'_>,
    schema: &Schema,
    named: &[Annotation],
    alias: &str,
    function: AggregateFn,
    more: &Option<MoreSpec>,
) -> PyResult<Aggregate> {
    let (args, order, default) = match more {
        Some((args, order, default)) => (args.as_slice(), order.as_slice(), Some(default.bind(py))),
        None => (&[][..], &[][..], None),
    };
    let default = default.filter(|d| !d.is_none()).map(to_value_untyped).transpose()?;
    if args.len() != function.more_args() {
        return Err(field_error(
            py,
            format!("`{alias}`: {} takes {} more arguments, got {}", function.sql(), function.more_args(), args.len()),
        ));
    }
    let args = args.iter().map(|arg| f_operand(py, schema, None, arg.bind(py))).collect::<PyResult<_>>()?;
    let order_by = order.iter().map(|spec| order_term(py, schema, named, spec.bind(py))).collect::<PyResult<_>>()?;
    Ok(Aggregate { args, order_by, default, ..Aggregate::of(function, Operand::Value(Value::Null)) })
}

/// How Python reads an aggregate whose PostgreSQL type is not Django's: `avg` of integers
/// or floats as a float (PostgreSQL's is a `numeric`), `sum` of integers as an int
/// (PostgreSQL's `sum` of an `int8` is a `numeric`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    Float,
    Int,
}

/// The result columns, by position, that Python reads otherwise than decoded.
type Reads = Vec<(usize, Read)>;

impl Read {
    fn of(function: AggregateFn, kind: Option<FieldKind>) -> Option<Read> {
        let integer = matches!(kind, Some(FieldKind::SmallInt | FieldKind::Int | FieldKind::BigInt));
        match function {
            AggregateFn::Avg
            | AggregateFn::StdDevPop
            | AggregateFn::StdDevSamp
            | AggregateFn::VarPop
            | AggregateFn::VarSamp
                if kind != Some(FieldKind::Numeric) =>
            {
                Some(Read::Float)
            }
            AggregateFn::Sum if integer => Some(Read::Int),
            _ => None,
        }
    }
}

/// Refuses to aggregate a value of `kind` (where known) with `function`: `sum` and `avg`
/// take numbers, `min` and `max` ordered values. `what` names the aggregate, `culprit`
/// says what was given.
fn check_aggregated(
    py: Python<'_>,
    function: AggregateFn,
    kind: Option<FieldKind>,
    what: impl FnOnce() -> String,
    culprit: impl FnOnce() -> PyResult<String>,
) -> PyResult<()> {
    let Some(kind) = kind else { return Ok(()) };
    let needs = match function {
        AggregateFn::Count | AggregateFn::ArrayAgg => None,
        AggregateFn::Sum
        | AggregateFn::Avg
        | AggregateFn::StdDevPop
        | AggregateFn::StdDevSamp
        | AggregateFn::VarPop
        | AggregateFn::VarSamp => (!kind.is_numeric()).then_some("a numeric"),
        AggregateFn::Min | AggregateFn::Max => {
            (!kind.is_ordered()).then_some("an ordered (number, text, date or time)")
        }
        AggregateFn::BoolAnd | AggregateFn::BoolOr => (kind != FieldKind::Bool).then_some("a boolean"),
        AggregateFn::StringAgg => (kind != FieldKind::Text).then_some("a text"),
    };
    match needs {
        Some(needs) => Err(field_error(py, format!("{} needs {needs} field; {}", what(), culprit()?))),
        None => Ok(()),
    }
}

/// A condition on the groups of grouped values, `n__gt=5`: the aggregate named `n`
/// compared with a value (`exact`, `ne`, `gt`, `gte`, `lt`, `lte`; `None` is `IS NULL`).
fn having_condition(
    py: Python<'_>,
    specs: &[AggregateSpec],
    aggregates: &[Aggregate],
    key: &str,
    value: &Bound<'_, PyAny>,
) -> PyResult<Expr> {
    let (alias, lookup) = lookup::split_key(key);
    let Some(i) = specs.iter().position(|(name, ..)| name == alias) else {
        let names: Vec<&str> = specs.iter().map(|(name, ..)| name.as_str()).collect();
        return Err(field_error(
            py,
            format!("no aggregate named `{alias}` to filter on (aggregates: {})", names.join(", ")),
        ));
    };
    let Some(op) = lookup::comparison(lookup) else {
        return Err(field_error(
            py,
            format!("aggregate `{alias}` is filtered with exact, ne, gt, gte, lt or lte, not `{lookup}`"),
        ));
    };
    let aggregate = Aggregate { alias: None, ..aggregates[i].clone() };
    Ok(Expr::AggregateCompare { aggregate, op, value: to_value_untyped(value)? })
}

/// A relation to follow, as Python names it: the key field, the related schema, the field
/// there the key holds.
type HopSpec<'py> = (String, Bound<'py, Schema>, String);

/// `(name, hops, field, filters)`: rows reached, as [`Query::reach`] takes them.
type ReachedSpec<'py> = (String, Vec<HopSpec<'py>>, String, Vec<Option<Bound<'py, PyTuple>>>);

/// One term of an ordering (see [`Query::order_by`]).
fn order_term(
    py: Python<'_>,
    schema: &Schema,
    annotations: &[Annotation],
    spec: &Bound<'_, PyAny>,
) -> PyResult<chakra::Order> {
    let Ok(tagged) = spec.cast::<PyTuple>() else {
        let spec: String = spec.extract()?;
        let spec = match spec.trim_start_matches(['-', '+']) {
            "pk" => format!("{}{}", if spec.starts_with('-') { "-" } else { "" }, schema.fields[schema.pk].name),
            _ => spec,
        };
        let name = spec.trim_start_matches(['-', '+']);
        if let Some(annotation) = annotations.iter().find(|a| a.alias == name) {
            return Ok(Order::column(annotation.alias.clone(), spec.starts_with('-')));
        }
        return lookup::order(&schema.fields, &schema.table, &spec)
            .map_err(|e| field_error(py, e.message().to_owned()));
    };
    let tag: String = tagged.get_item(0)?.extract()?;
    match (tag.as_str(), tagged.len()) {
        ("referred", 5) => {
            let (_, name, descending, path, field): (String, String, bool, Vec<HopSpec<'_>>, String) =
                tagged.extract()?;
            let value = referred_value(py, schema, &name, path, &field)?;
            Ok(Order::computed(name, value, descending))
        }
        ("expression", 3) => {
            let tree = tagged.get_item(1)?;
            let value = Scalar::Operand(f_operand(py, schema, None, &tree)?);
            Ok(Order::computed(describe(&tree)?, value, tagged.get_item(2)?.extract()?))
        }
        ("nulls", 3) => {
            let order = order_term(py, schema, annotations, &tagged.get_item(2)?)?;
            Ok(match tagged.get_item(1)?.extract::<String>()?.as_str() {
                "first" => order.nulls_first(),
                _ => order.nulls_last(),
            })
        }
        _ => Err(PyErr::new::<pyo3::exceptions::PyTypeError, _>(format!("not an ordering: {spec}"))),
    }
}

/// `field` of the row the hops `path` lead to from a row of `schema` (`name`, the
/// lookup: `"author__name"`, for messages).
fn referred_value(
    py: Python<'_>,
    schema: &Schema,
    name: &str,
    path: Vec<HopSpec<'_>>,
    field: &str,
) -> PyResult<Scalar> {
    let (hops, to, field) = hops_to_field(py, schema, name, &path, field)?;
    Ok(Scalar::Operand(Operand::Referred { hops, column: to.fields[field].column.clone() }))
}

/// [`hops_of`], and the index of `field` in the schema the hops end at.
fn hops_to_field<'a>(
    py: Python<'_>,
    schema: &'a Schema,
    name: &str,
    path: &'a [HopSpec<'_>],
    field: &str,
) -> PyResult<(Vec<Hop>, &'a Schema, usize)> {
    let (hops, to) = hops_of(py, schema, name, path)?;
    Ok((hops, to, field_index(py, to, field)?))
}

/// The hops `path` takes from a row of `schema` (at least one), and the schema it ends at.
fn hops_of<'a>(
    py: Python<'_>,
    schema: &'a Schema,
    name: &str,
    path: &'a [HopSpec<'_>],
) -> PyResult<(Vec<Hop>, &'a Schema)> {
    let mut hops = Vec::with_capacity(path.len());
    let mut from = schema;
    for (via, to, key) in path {
        let to = to.get();
        hops.push(Hop::new(
            from.fields[field_index(py, from, via)?].column.clone(),
            to.table.to_string(),
            to.fields[field_index(py, to, key)?].column.clone(),
        ));
        from = to;
    }
    if hops.is_empty() {
        return Err(field_error(py, format!("`{name}` goes through no relation")));
    }
    Ok((hops, from))
}

/// An order term of grouped values: `"field"` or `"-alias"`, a grouped field (by its
/// column), a grouped annotation or field across relations (`keys`), or an aggregate (by
/// its alias).
fn group_order(
    py: Python<'_>,
    schema: &Schema,
    (keys, reached): (&[Annotation], &[Reached]),
    specs: &[AggregateSpec],
    spec: &str,
) -> PyResult<chakra::Order> {
    let (name, descending) = lookup::order_spec(spec);
    let key = keys.iter().any(|a| a.alias == name) || reached.iter().any(|r| r.alias == name);
    if key || specs.iter().any(|(alias, ..)| alias == name) {
        return Ok(chakra::Order::column(name.to_owned(), descending));
    }
    let field = field_index(py, schema, name)?;
    Ok(chakra::Order::column(schema.fields[field].column.clone(), descending))
}

/// Rows as dicts keyed by `names`, tuples, or (`flat`) the single value, of the columns
/// `columns` (`names[k]` is column `columns[k]`'s); the columns `reads` names read as
/// it says.
fn shape_rows<'py>(
    py: Python<'py>,
    rows: &[chakra::Row],
    names: &[Py<PyString>],
    columns: &[usize],
    shape: &str,
    reads: &[(usize, Read)],
) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    let Some(first) = rows.first() else {
        return Ok(list);
    };
    let decoders = Decoder::for_row(first);
    let value = |row: &chakra::Row, i: usize| -> PyResult<Bound<'py, PyAny>> {
        let decoded = decode(py, row, i, &decoders[i])?;
        match reads.iter().find(|(at, _)| *at == i).filter(|_| !decoded.is_none()) {
            Some((_, Read::Float)) => Ok(decoded.extract::<f64>()?.into_pyobject(py)?.into_any()),
            Some((_, Read::Int)) => py.get_type::<PyInt>().call1((decoded,)),
            None => Ok(decoded),
        }
    };
    for row in rows {
        let item = match shape {
            "flat" => value(row, columns[0])?,
            "tuple" => {
                PyTuple::new(py, columns.iter().map(|&i| value(row, i)).collect::<PyResult<Vec<_>>>()?)?.into_any()
            }
            _ => {
                let dict = PyDict::new(py);
                for (name, &i) in names.iter().zip(columns) {
                    dict.set_item(name.bind(py), value(row, i)?)?;
                }
                dict.into_any()
            }
        };
        list.append(item)?;
    }
    Ok(list)
}

/// The op opening a server-side stream of `request`'s rows, resolving to a [`Cursor`]
/// reading them with `reader`.
fn cursor_op(target: Target, request: Request, reader: Reader) -> Op {
    let reader = Arc::new(reader);
    op(async move { target.run(request, false).await?.into_stream() }, move |py, rows| {
        let cursor = Cursor { rows: Arc::new(Mutex::new(Some(rows))), reader };
        Ok(Py::new(py, cursor)?.into_any())
    })
}

/// What a name given to `values()` picks: a field, or an annotation (by index).
enum Pick {
    Field(usize),
    Annotation(usize),
    /// A field across relations holding many rows (see [`Query::reach`]).
    Reached(usize),
}

/// An open server-side stream of rows, read in chunks: as model instances, or as
/// `values()` rows.
///
/// The stream holds its connection until it is exhausted or closed; dropping it early
/// cancels the statement and discards the connection (see `chakra_service::executor`).
#[pyclass(module = "chakra._core", frozen)]
pub(crate) struct Cursor {
    rows: Arc<Mutex<Option<RowStream>>>,
    reader: Arc<Reader>,
}

/// How a [`Cursor`]'s rows become Python values.
enum Reader {
    Instances(Loader),
    /// As `values()` shapes its rows (see [`shape_rows`]).
    Values {
        names: Vec<Py<PyString>>,
        columns: Vec<usize>,
        shape: String,
        reads: Vec<(usize, Read)>,
    },
}

impl Reader {
    fn read(&self, py: Python<'_>, rows: &[chakra::Row]) -> PyResult<Py<PyAny>> {
        Ok(match self {
            Reader::Instances(loader) => loader.all(py, rows)?.into_any().unbind(),
            Reader::Values { names, columns, shape, reads } => {
                shape_rows(py, rows, names, columns, shape, reads)?.into_any().unbind()
            }
        })
    }
}

#[pymethods]
impl Cursor {
    /// The next `size` rows as instances (fewer at the end; an empty list once exhausted).
    fn next(&self, size: usize) -> Op {
        let rows = self.rows.clone();
        let size = size.max(1);
        let reader = self.reader.clone();
        op(
            async move {
                let mut guard = rows.lock().await;
                let mut chunk = Vec::with_capacity(size.min(4096));
                let Some(stream) = guard.as_mut() else {
                    return Ok(chunk);
                };
                while chunk.len() < size {
                    match stream.next().await {
                        Some(row) => chunk.push(row?),
                        None => {
                            // Exhausted: the connection has already gone back.
                            *guard = None;
                            break;
                        }
                    }
                }
                Ok(chunk)
            },
            move |py, chunk| reader.read(py, &chunk),
        )
    }

    /// Stops reading: the statement is cancelled if rows are left.
    fn close(&self) {
        let rows = self.rows.clone();
        crate::runtime::handle().spawn(async move {
            rows.lock().await.take();
        });
    }
}

impl Drop for Cursor {
    fn drop(&mut self) {
        let rows = self.rows.clone();
        crate::runtime::handle().spawn(async move {
            rows.lock().await.take();
        });
    }
}

/// The row of `schema` with primary key `key`, or `None`.
#[pyfunction]
#[pyo3(signature = (target, schema, key, identity = None))]
pub(crate) fn get_by_pk(
    py: Python<'_>,
    target: &Bound<'_, PyAny>,
    schema: Py<Schema>,
    key: &Bound<'_, PyAny>,
    identity: Option<Py<PyDict>>,
) -> PyResult<Op> {
    let s = schema.get();
    if let Some(map) = &identity {
        if let Some(existing) = map.bind(py).get_item(key)? {
            let existing = existing.unbind();
            return Ok(op(async { Ok(()) }, move |_, ()| Ok(existing)));
        }
    }
    let value = to_value(key, &s.types[s.pk], &s.label(s.pk))?;
    let request = pk_request(s, value);
    let target = Target::extract(target)?;
    Ok(op(async move { target.run(request, false).await?.into_optional() }, move |py, row| match row {
        Some(row) => {
            let identity = identity.as_ref().map(|d| d.bind(py));
            Ok(schema.get().build(py, &row, &Decoder::for_row(&row), identity)?.unbind())
        }
        None => Ok(py.None()),
    }))
}
