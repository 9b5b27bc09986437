//! The one place where the core's [`chakra::Error`] becomes a Python exception.
//!
//! The classes live in `chakra/errors.py` (so they read and document like Python); this
//! module picks the class from the error's kind and copies its context onto it.

use chakra::ErrorKind;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// `chakra.errors.<name>`.
pub(crate) fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    let module = MODULE.get_or_try_init(py, || py.import("chakra.errors").map(Bound::unbind))?;
    Ok(module.bind(py).getattr(name)?.cast_into::<PyType>()?)
}

/// The Python class for an error of `kind`.
fn class_name(err: &chakra::Error) -> &'static str {
    match err.kind() {
        ErrorKind::Config => "ConfigError",
        ErrorKind::PoolTimeout => "PoolTimeout",
        ErrorKind::Timeout => "QueryTimeout",
        ErrorKind::Connection => "OperationalError",
        ErrorKind::Integrity => "IntegrityError",
        ErrorKind::NotFound => "DoesNotExist",
        ErrorKind::MultipleFound => "MultipleObjectsReturned",
        ErrorKind::Decode => "DataError",
        ErrorKind::Field => "FieldError",
        // The server could not complete it now, the statement itself being fine (PEP 249's
        // OperationalError, psycopg's classes): 40 serialization failure and deadlock (the
        // transaction may succeed if run again), 53 insufficient resources, 54 program
        // limit exceeded, 55 object not in prerequisite state (55P03 lock not available:
        // NOWAIT), 57 operator intervention, 58 system error.
        ErrorKind::Query
            if err.code().is_some_and(|c| matches!(&c.code()[..2], "40" | "53" | "54" | "55" | "57" | "58")) =>
        {
            "OperationalError"
        }
        ErrorKind::Query | ErrorKind::Usage => "ProgrammingError",
        _ => "Error",
    }
}

/// Converts a core error to the matching `chakra` exception.
pub(crate) fn to_pyerr(py: Python<'_>, err: chakra::Error) -> PyErr {
    build(py, &err, None).unwrap_or_else(|e| e)
}

/// Like [`to_pyerr`], raising `model.DoesNotExist` / `model.MultipleObjectsReturned`
/// (subclasses of the generic ones) when the error is about `model`'s rows.
pub(crate) fn to_pyerr_for(py: Python<'_>, err: chakra::Error, model: &Bound<'_, PyType>) -> PyErr {
    build(py, &err, Some(model)).unwrap_or_else(|e| e)
}

fn build(py: Python<'_>, err: &chakra::Error, model: Option<&Bound<'_, PyType>>) -> PyResult<PyErr> {
    let name = class_name(err);
    let cls = match (model, err.kind()) {
        (Some(model), ErrorKind::NotFound | ErrorKind::MultipleFound) => model.getattr(name)?.cast_into::<PyType>()?,
        _ => class(py, name)?,
    };
    let exc = cls.call1((err.message(),))?;
    exc.setattr("kind", err.kind().as_str())?;
    exc.setattr("code", err.code().map(|c| c.code()))?;
    exc.setattr("constraint", err.constraint())?;
    exc.setattr("key", err.key())?;
    exc.setattr("detail", err.detail())?;
    Ok(PyErr::from_value(exc))
}

/// A `chakra.<name>` exception with `message`, raised by the bindings themselves (bad
/// values, misuse) rather than by the core.
pub(crate) fn new(py: Python<'_>, name: &str, message: impl Into<String>) -> PyErr {
    let message = message.into();
    match class(py, name).and_then(|cls| cls.call1((message,))) {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => e,
    }
}

/// A `chakra.DataError` (a value that does not fit its field or parameter).
pub(crate) fn data_error(py: Python<'_>, message: impl Into<String>) -> PyErr {
    new(py, "DataError", message)
}
