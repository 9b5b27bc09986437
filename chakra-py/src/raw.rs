//! Raw SQL: parameterised (`$1`, `$2`, …) statements on a pool, a session or a direct
//! connection, with rows returned as dicts. Parameters convert by their Python type.

use chakra::{Labels, Mode, Request, Statement};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::convert::{decode, to_value_untyped, Decoder};
use crate::database::Target;
use crate::errors;
use crate::op::{op, Op};
use crate::schema::{Layout, Schema};

/// Whether a statement only reads, by the first keyword the core labelled it with;
/// anything else begins a session's transaction.
fn reads_only(labels: &Labels) -> bool {
    matches!(&*labels.operation, "SELECT" | "SHOW" | "VALUES" | "EXPLAIN" | "TABLE")
}

fn rows_to_dicts<'py>(py: Python<'py>, rows: &[chakra::Row]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    let Some(first) = rows.first() else {
        return Ok(list);
    };
    let decoders = Decoder::for_row(first);
    let names: Vec<Bound<'py, PyString>> = first.columns().iter().map(|c| PyString::intern(py, c.name())).collect();
    for row in rows {
        let dict = PyDict::new(py);
        for (i, name) in names.iter().enumerate() {
            dict.set_item(name, decode(py, row, i, &decoders[i])?)?;
        }
        list.append(dict)?;
    }
    Ok(list)
}

/// Runs `sql` with `params`; `mode` is `all` (list of dicts), `one` (a dict or `None`),
/// `val` (the first column of the first row, or `None`) or `execute` (rows affected).
#[pyfunction]
pub(crate) fn raw(target: &Bound<'_, PyAny>, sql: String, params: Vec<Bound<'_, PyAny>>, mode: &str) -> PyResult<Op> {
    let target = Target::extract(target)?;
    let params = params.iter().map(to_value_untyped).collect::<PyResult<Vec<_>>>()?;
    let request_mode = match mode {
        "execute" => Mode::Execute,
        "all" | "one" | "val" => Mode::All,
        other => return Err(PyValueError::new_err(format!("unknown raw query mode `{other}`"))),
    };
    let request = Request::new(Statement::new(sql, params), request_mode);
    let write = !reads_only(&request.labels);
    Ok(match request_mode {
        Mode::Execute => op(async move { target.run(request, write).await?.rows_affected() }, |py, n| {
            Ok(n.into_pyobject(py)?.into_any().unbind())
        }),
        _ => {
            let single = mode != "all";
            let mode = mode.to_owned();
            op(async move { target.run(request, write).await?.into_rows() }, move |py, rows| {
                if !single {
                    return Ok(rows_to_dicts(py, &rows)?.into_any().unbind());
                }
                let Some(row) = rows.first() else {
                    return Ok(py.None());
                };
                if mode == "val" {
                    return Ok(decode(py, row, 0, &Decoder::for_type(row.columns()[0].type_()))?.unbind());
                }
                Ok(rows_to_dicts(py, &rows[..1])?.get_item(0)?.unbind())
            })
        }
    })
}

/// Runs `sql` with `params`, each row an instance of `schema`'s model (Django's
/// `Manager.raw()`), through the session's identity map `identity` when given. Columns
/// are matched to fields by their column names: the primary key's is required, fields
/// without one are not loaded (as `only()` leaves them), and the other columns are read
/// as annotations. A statement that writes (`UPDATE … RETURNING *`) begins a session's
/// transaction.
#[pyfunction]
#[pyo3(signature = (target, schema, sql, params, identity = None))]
pub(crate) fn raw_models(
    target: &Bound<'_, PyAny>,
    schema: Bound<'_, Schema>,
    sql: String,
    params: Vec<Bound<'_, PyAny>>,
    identity: Option<Py<PyDict>>,
) -> PyResult<Op> {
    let target = Target::extract(target)?;
    let params = params.iter().map(to_value_untyped).collect::<PyResult<Vec<_>>>()?;
    let request = Request::new(Statement::new(sql, params), Mode::All);
    let write = !reads_only(&request.labels);
    let schema = schema.unbind();
    Ok(op(async move { target.run(request, write).await?.into_rows() }, move |py, rows| {
        let list = PyList::empty(py);
        let Some(first) = rows.first() else {
            return Ok(list.into_any().unbind());
        };
        let model = schema.get();
        let names: Vec<&str> = first.columns().iter().map(|c| c.name()).collect();
        let columns: Vec<Option<usize>> =
            model.fields.iter().map(|f| names.iter().position(|n| *n == &*f.column)).collect();
        if columns[model.pk].is_none() {
            let column = &model.fields[model.pk].column;
            return Err(errors::new(
                py,
                "FieldError",
                format!(
                    "raw(): the rows have no `{column}` column, {}'s primary key, which instances are known by \
                     (they have {})",
                    model.name,
                    names.join(", ")
                ),
            ));
        }
        let extra: Vec<usize> = (0..names.len()).filter(|i| !columns.contains(&Some(*i))).collect();
        let layout = Layout { loaded: columns.iter().flatten().count(), columns };
        let decoders = Decoder::for_row(first);
        let identity = identity.as_ref().map(|d| d.bind(py));
        for row in &rows {
            list.append(model.build_raw(py, row, &decoders, identity, (&layout, &extra))?)?;
        }
        Ok(list.into_any().unbind())
    }))
}

/// Runs `statements` in order (DDL), each on its own.
#[pyfunction]
pub(crate) fn execute_all(target: &Bound<'_, PyAny>, statements: Vec<String>) -> PyResult<Op> {
    let target = Target::extract(target)?;
    Ok(op(
        async move {
            for sql in statements {
                target.run(Request::new(Statement::new(sql, Vec::new()), Mode::Execute), true).await?;
            }
            Ok(())
        },
        |py, ()| Ok(py.None()),
    ))
}

#[cfg(test)]
mod tests {
    use chakra::Labels;

    use super::reads_only as reads_only_labels;

    fn reads_only(sql: &str) -> bool {
        reads_only_labels(&Labels::from_sql(sql))
    }

    #[test]
    fn only_reading_statements_skip_the_sessions_transaction() {
        assert!(reads_only("  select 1"));
        assert!(reads_only("(SELECT 1) UNION (SELECT 2)"));
        assert!(reads_only("SHOW server_version"));
        assert!(!reads_only("UPDATE t SET a = 1"));
        assert!(!reads_only("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d"));
        assert!(!reads_only("selectx"));
        assert!(reads_only("/* dashboard */ select 1"));
        assert!(!reads_only("-- select\ndelete from t"));
    }
}
