//! `chakra._core`: the Rust half of Chakra's Python API.
//!
//! Python builds queries here (as the core's query AST, never as SQL text) and gets back
//! [`op::Op`]s: operations that run on the process's Tokio runtime through the same
//! `chakra::Pool` / `Session` / `Transaction` layer stack as the Rust API, awaited through
//! a completion queue ([`completion`]) or run blocking by the `_sync` methods.

mod completion;
mod convert;
mod database;
mod errors;
mod exporter;
mod load;
mod op;
mod query;
mod raw;
mod runtime;
mod schema;
mod session;
mod telemetry;
mod write;

use pyo3::prelude::*;

// Slot writes, the per-thread reactor and the converters rely on the GIL serialising
// Python-side work: declare it rather than run unguarded on free-threaded builds.
#[pymodule(gil_used = true)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<op::Op>()?;
    m.add_class::<database::Database>()?;
    m.add_class::<session::SessionHandle>()?;
    m.add_class::<schema::Schema>()?;
    m.add_class::<query::Query>()?;
    m.add_class::<query::Cursor>()?;
    m.add_class::<query::Subquery>()?;
    // The lookup names (`startswith`, …), for the Python side to tell them from fields.
    m.add("LOOKUPS", pyo3::types::PyTuple::new(m.py(), chakra::models::lookup::LOOKUPS)?)?;
    m.add_function(wrap_pyfunction!(query::get_by_pk, m)?)?;
    m.add_function(wrap_pyfunction!(write::flush, m)?)?;
    m.add_function(wrap_pyfunction!(write::bulk_update, m)?)?;
    m.add_function(wrap_pyfunction!(write::refresh, m)?)?;
    m.add_function(wrap_pyfunction!(raw::raw, m)?)?;
    m.add_function(wrap_pyfunction!(raw::raw_models, m)?)?;
    m.add_function(wrap_pyfunction!(raw::execute_all, m)?)?;
    m.add_function(wrap_pyfunction!(session::connect_direct, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::_after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(telemetry::enable_tracing, m)?)?;
    m.add_function(wrap_pyfunction!(telemetry::take_spans, m)?)?;
    m.add_function(wrap_pyfunction!(exporter::serve_metrics, m)?)?;
    Ok(())
}
