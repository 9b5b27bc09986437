//! Writing model instances: inserts (one row, or many as one `UNNEST` statement), updates
//! of the changed columns only, deletes by primary key, and re-reading an instance.
//!
//! Every value is converted before anything is sent, on the caller's thread: a value of
//! the wrong type is an error naming its field, and no statement of the flush has run.
//! The statements of one flush then run in order in one Tokio task; the instances are
//! updated from the results (generated keys, values as stored) when it completes.

use chakra::models::ast::{Assignment, BulkUpdate, CompareOp, Delete, Expr, Insert, Update, Upsert};
use chakra::models::compile;
use chakra::models::Postgres;
use chakra::{ErrorKind, Labels, Mode, Request, Response, Value};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::convert::Decoder;
use crate::database::Target;
use crate::errors::{self, to_pyerr_for};
use crate::op::{op, op_with_errors, Op};
use crate::query::{field_error, field_index, pk_request};
use crate::schema::Schema;

/// What to do with an instance once its statement has succeeded.
enum After {
    /// Read the inserted rows back into these instances (and register them; an upsert's
    /// only where the session holds no instance of the row yet, whose pending changes
    /// would otherwise be lost).
    Inserted { schema: Py<Schema>, objs: Vec<Py<PyAny>>, identity: Option<Py<PyDict>>, upsert: bool },
    /// These values are now the saved ones.
    Updated { schema: Py<Schema>, obj: Py<PyAny>, saved: Py<PyTuple> },
    /// Nothing to read back.
    Nothing,
}

fn labels(schema: &Schema, operation: &'static str) -> Labels {
    Labels::new(operation, Some(schema.table.clone()))
}

/// The insert of `objs`, all leaving the same fields (`left`) to the database, with what
/// to do about rows that conflict with existing ones.
fn insert_request(
    schema: &Schema,
    objs: &[Bound<'_, PyAny>],
    left: &[usize],
    upsert: Option<Upsert>,
) -> PyResult<Request> {
    let included: Vec<usize> = (0..schema.fields.len()).filter(|i| !left.contains(i)).collect();
    let rows = objs
        .iter()
        .map(|obj| included.iter().map(|&i| schema.value(obj, i)).collect::<PyResult<Vec<Value>>>())
        .collect::<PyResult<Vec<_>>>()?;
    let insert = Insert {
        table: schema.table.to_string().into(),
        columns: included.iter().map(|&i| schema.fields[i].column.clone()).collect(),
        column_types: included.iter().map(|&i| schema.fields[i].sql_type.clone()).collect(),
        rows,
        arrays: Vec::new(),
        returning: schema.fields.iter().map(|f| f.column.clone()).collect(),
        upsert,
    };
    Ok(Request::new(compile::insert(&Postgres, &insert), Mode::All).labels(labels(schema, "INSERT")))
}

fn by_pk(schema: &Schema, key: Value) -> Expr {
    Expr::Compare { column: schema.fields[schema.pk].column.clone(), op: CompareOp::Eq, value: key.into() }
}

/// Adds the statements for one `(kind, schema, objs, identity)` step of a flush plan.
fn plan_step(
    py: Python<'_>,
    step: &Bound<'_, PyTuple>,
    requests: &mut Vec<Request>,
    after: &mut Vec<After>,
) -> PyResult<()> {
    let (kind, schema, objs, identity): (String, Bound<'_, Schema>, Bound<'_, PyList>, Option<Py<PyDict>>) =
        step.get_slice(0, 4).extract()?;
    let s = schema.get();
    let objs: Vec<Bound<'_, PyAny>> = objs.iter().collect();
    for obj in &objs {
        s.check(obj)?;
    }
    match kind.as_str() {
        "insert" => {
            let conflicts = match step.len() {
                5 => conflicts(py, s, &step.get_item(4)?)?,
                _ => None,
            };
            // Rows skipped as conflicting return nothing: the others cannot be matched
            // with what comes back.
            let read_back = conflicts.as_ref().is_none_or(|u| !u.update.is_empty());
            // One statement per set of columns left to the database (a generated key,
            // database defaults), in the order the sets first come.
            let mut groups: Vec<(Vec<usize>, Vec<Bound<'_, PyAny>>)> = Vec::new();
            for obj in objs {
                let left = s.left_to_database(&obj)?;
                match groups.iter_mut().find(|(l, _)| *l == left) {
                    Some((_, group)) => group.push(obj),
                    None => groups.push((left, vec![obj])),
                }
            }
            for (left, group) in groups {
                requests.push(insert_request(s, &group, &left, conflicts.clone())?);
                after.push(match read_back {
                    true => After::Inserted {
                        schema: schema.clone().unbind(),
                        objs: group.into_iter().map(Bound::unbind).collect(),
                        identity: identity.as_ref().map(|d| d.clone_ref(py)),
                        upsert: conflicts.is_some(),
                    },
                    false => After::Nothing,
                });
            }
        }
        "update" => {
            for obj in objs {
                let Some(changed) = s.changes(&obj)? else {
                    return Err(errors::new(
                        py,
                        "ProgrammingError",
                        format!("{} has never been saved: add it to a session to insert it", obj.repr()?),
                    ));
                };
                if changed.is_empty() {
                    continue;
                }
                let set = changed
                    .iter()
                    .map(|&i| Ok(Assignment { column: s.fields[i].column.clone(), value: s.value(&obj, i)?.into() }))
                    .collect::<PyResult<Vec<_>>>()?;
                let key = loaded_key(s, &obj)?;
                let filter = Some(by_pk(s, key));
                let update = Update { table: s.table.to_string().into(), set, filter, returning: Vec::new() };
                requests
                    .push(Request::new(compile::update(&Postgres, &update), Mode::Execute).labels(labels(s, "UPDATE")));
                let saved = s.saved_values(&obj)?.unbind();
                after.push(After::Updated { schema: schema.clone().unbind(), obj: obj.unbind(), saved });
            }
        }
        "delete" => {
            let keys = objs.iter().map(|obj| loaded_key(s, obj)).collect::<PyResult<Vec<_>>>()?;
            if keys.is_empty() {
                return Ok(());
            }
            let column = s.fields[s.pk].column.clone();
            let delete = Delete {
                table: s.table.to_string().into(),
                filter: Some(Expr::In { column, values: keys, negated: false }),
                returning: Vec::new(),
            };
            requests.push(Request::new(compile::delete(&Postgres, &delete), Mode::Execute).labels(labels(s, "DELETE")));
            after.push(After::Nothing);
        }
        other => return Err(pyo3::exceptions::PyValueError::new_err(format!("unknown flush step `{other}`"))),
    }
    Ok(())
}

/// What an insert does with rows conflicting with existing ones: `None` (fail),
/// `("ignore",)` (skip them), or `("update", unique fields, fields to update)` (update the
/// existing row: an upsert).
fn conflicts(py: Python<'_>, schema: &Schema, spec: &Bound<'_, PyAny>) -> PyResult<Option<Upsert>> {
    if spec.is_none() {
        return Ok(None);
    }
    let (kind, unique, update): (String, Vec<String>, Vec<String>) = match spec.len()? {
        1 => (spec.get_item(0)?.extract()?, Vec::new(), Vec::new()),
        _ => spec.extract()?,
    };
    let index = |name: &String| match name.as_str() {
        "pk" => Ok(schema.pk),
        _ => field_index(py, schema, name),
    };
    let columns = |names: &[String]| -> PyResult<Vec<_>> {
        names.iter().map(|name| Ok(schema.fields[index(name)?].column.clone())).collect()
    };
    match kind.as_str() {
        "ignore" => Ok(Some(Upsert { conflict_target: Vec::new(), update: Vec::new() })),
        "update" if unique.is_empty() || update.is_empty() => Err(field_error(
            py,
            "bulk_create(update_conflicts=True) needs unique_fields (what makes a row conflict) and update_fields \
             (what to write to it)"
                .into(),
        )),
        "update" => {
            if let Some(pk) = update.iter().find(|name| index(name).is_ok_and(|i| i == schema.pk)) {
                return Err(field_error(
                    py,
                    format!("bulk_create() cannot update the primary key `{pk}` of a conflicting row"),
                ));
            }
            Ok(Some(Upsert { conflict_target: columns(&unique)?, update: columns(&update)? }))
        }
        other => Err(pyo3::exceptions::PyValueError::new_err(format!("unknown conflict handling `{other}`"))),
    }
}

/// The primary key that identifies `obj`'s row: as loaded (it may have been edited since).
fn loaded_key(schema: &Schema, obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    let key = match schema.loaded_pk(obj)? {
        Some(key) => key.into_bound(obj.py()),
        None => schema.get(obj, schema.pk),
    };
    crate::convert::to_value(&key, &schema.types[schema.pk], &schema.label(schema.pk))
}

/// Runs a flush plan — `[(kind, schema, objs, identity), …]` with kind `insert`,
/// `update` or `delete` — in order; resolves to the number of statements sent.
#[pyfunction]
pub(crate) fn flush(py: Python<'_>, target: &Bound<'_, PyAny>, plan: Vec<Bound<'_, PyTuple>>) -> PyResult<Op> {
    let target = Target::extract(target)?;
    let mut requests = Vec::new();
    let mut after = Vec::new();
    for step in &plan {
        plan_step(py, step, &mut requests, &mut after)?;
    }
    Ok(op(
        async move {
            let mut responses = Vec::with_capacity(requests.len());
            for request in requests {
                responses.push(target.run(request, true).await?);
            }
            Ok(responses)
        },
        move |py, responses| {
            let sent = responses.len();
            for (response, after) in responses.into_iter().zip(after) {
                apply(py, response, after)?;
            }
            Ok(sent.into_pyobject(py)?.into_any().unbind())
        },
    ))
}

/// Writes `fields` of each of `objs` to the row with its primary key, in one statement
/// (one array per column) whatever their number; resolves to how many rows changed.
/// Every value is converted first: a wrong one is an error naming its field, and nothing
/// is sent. The instances are left as they are, as Django's `bulk_update` leaves them.
#[pyfunction]
pub(crate) fn bulk_update(
    py: Python<'_>,
    target: &Bound<'_, PyAny>,
    schema: &Bound<'_, Schema>,
    objs: Vec<Bound<'_, PyAny>>,
    fields: Vec<String>,
) -> PyResult<Op> {
    let s = schema.get();
    if fields.is_empty() {
        return Err(field_error(py, "bulk_update() needs the fields to write".into()));
    }
    let mut indices = vec![s.pk];
    for name in &fields {
        let i = field_index(py, s, name)?;
        if i == s.pk {
            return Err(field_error(py, format!("bulk_update() finds rows by {}: it cannot change it", s.label(i))));
        }
        if !indices.contains(&i) {
            indices.push(i);
        }
    }
    let mut columns: Vec<Vec<Value>> = vec![Vec::with_capacity(objs.len()); indices.len()];
    for obj in &objs {
        s.check(obj)?;
        if s.get(obj, s.pk).is_none() {
            return Err(errors::new(
                py,
                "ProgrammingError",
                format!("bulk_update() needs saved objects: {} has no primary key", obj.repr()?),
            ));
        }
        for (column, &i) in columns.iter_mut().zip(&indices) {
            column.push(s.value(obj, i)?);
        }
    }
    let target = Target::extract(target)?;
    if objs.is_empty() {
        return Ok(op(async { Ok(0_u64) }, |py, n| Ok(n.into_pyobject(py)?.into_any().unbind())));
    }
    let update = BulkUpdate {
        table: s.table.to_string().into(),
        columns: indices.iter().map(|&i| s.fields[i].column.clone()).collect(),
        column_types: indices.iter().map(|&i| s.fields[i].sql_type.clone()).collect(),
        arrays: columns.into_iter().map(Value::Array).collect(),
    };
    let request = Request::new(compile::bulk_update(&Postgres, &update), Mode::Execute).labels(labels(s, "UPDATE"));
    Ok(op(async move { target.run(request, true).await?.rows_affected() }, |py, n| {
        Ok(n.into_pyobject(py)?.into_any().unbind())
    }))
}

fn apply(py: Python<'_>, response: Response, after: After) -> PyResult<()> {
    match after {
        After::Inserted { schema, objs, identity, upsert } => {
            let rows = response.into_rows().map_err(|e| errors::to_pyerr(py, e))?;
            let s = schema.get();
            let Some(first) = rows.first() else {
                return Ok(());
            };
            let decoders = Decoder::for_row(first);
            for (row, obj) in rows.iter().zip(objs) {
                let obj = obj.into_bound(py);
                s.fill(py, Some(&obj), row, 0, &decoders, None, None)?;
                if let Some(map) = identity.as_ref().map(|m| m.bind(py)) {
                    let key = s.get(&obj, s.pk);
                    if !upsert || !map.contains(&key)? {
                        map.set_item(key, &obj)?;
                    }
                }
            }
        }
        After::Updated { schema, obj, saved } => {
            let obj = obj.into_bound(py);
            schema.get().set_saved(&obj, saved.into_bound(py))?;
        }
        After::Nothing => {}
    }
    Ok(())
}

/// Reads `obj`'s row again into it; `Model.DoesNotExist` if the row is gone.
#[pyfunction]
pub(crate) fn refresh(
    py: Python<'_>,
    target: &Bound<'_, PyAny>,
    obj: &Bound<'_, PyAny>,
    schema: Py<Schema>,
) -> PyResult<Op> {
    let s = schema.get();
    s.check(obj)?;
    let request = pk_request(s, loaded_key(s, obj)?);
    let target = Target::extract(target)?;
    let model = s.model.clone_ref(py);
    let name = s.name.clone();
    let obj = obj.clone().unbind();
    Ok(op_with_errors(
        async move {
            let row = target.run(request, false).await?.into_optional()?;
            row.ok_or_else(|| chakra::Error::new(ErrorKind::NotFound, format!("the {name} row was deleted")))
        },
        move |py, row| {
            let obj = obj.into_bound(py);
            schema.get().fill(py, Some(&obj), &row, 0, &Decoder::for_row(&row), None, None)?;
            Ok(obj.unbind())
        },
        move |py, err| to_pyerr_for(py, err, model.bind(py)),
    ))
}
