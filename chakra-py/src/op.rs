//! `Op`: one database operation, built on the caller's thread and not yet started; it
//! runs either awaited (`await op`, through the completion queue) or blocking
//! (`op.wait_sync()`, the `_sync` twins).

use std::sync::Mutex;

use pyo3::exceptions::{PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use crate::completion::{self, BoxFuture, Converter, Outcome, Ticket};
use crate::runtime;
use crate::telemetry;

/// An operation on the database: awaitable once, or run with [`Op::wait_sync`].
///
/// Dropping an op that is running — its task cancelled, its coroutine closed — aborts the
/// Tokio task; the core then cancels the statement and cleans the connection.
#[pyclass(module = "chakra._core")]
pub(crate) struct Op {
    state: Mutex<State>,
}

enum State {
    Ready(BoxFuture, Converter),
    Running(Ticket),
    Done,
}

impl Op {
    /// An op running `future`, whose result `convert` turns into a Python object.
    pub(crate) fn new(future: BoxFuture, convert: Converter) -> Op {
        Op { state: Mutex::new(State::Ready(future, convert)) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn step(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut state = self.state();
        match std::mem::replace(&mut *state, State::Done) {
            State::Ready(future, convert) => {
                let future = telemetry::with_parent(py, future);
                let ticket = completion::start(py, future, convert)?;
                let future = ticket.future.clone_ref(py);
                *state = State::Running(ticket);
                // What `asyncio.Future.__await__` does before yielding itself to the task.
                future.bind(py).setattr("_asyncio_future_blocking", true)?;
                Ok(future)
            }
            State::Running(ticket) => {
                let future = ticket.future.bind(py).clone();
                if !future.call_method0("done")?.is_truthy()? {
                    *state = State::Running(ticket);
                    future.setattr("_asyncio_future_blocking", true)?;
                    return Ok(future.unbind());
                }
                drop(state);
                let value = future.call_method0("result")?;
                Err(PyStopIteration::new_err((value.unbind(),)))
            }
            State::Done => Err(PyRuntimeError::new_err("this operation has already been awaited")),
        }
    }

    fn cancel(&self) {
        let previous = std::mem::replace(&mut *self.state(), State::Done);
        release(previous);
    }
}

/// Stops a started op, or drops one never started: its future (which may hold connection
/// handles) on the runtime, its converter (which holds Python objects) here, with the GIL.
fn release(state: State) {
    match state {
        State::Running(ticket) => ticket.cancel(),
        State::Ready(future, convert) => {
            drop(convert);
            runtime::drop_in_runtime(future);
        }
        State::Done => {}
    }
}

#[pymethods]
impl Op {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.step(py)
    }

    fn send(&self, py: Python<'_>, _value: Py<PyAny>) -> PyResult<Py<PyAny>> {
        self.step(py)
    }

    /// The awaiting task was cancelled (or had an exception thrown in): stop the work.
    #[pyo3(signature = (kind, value = None, _traceback = None))]
    fn throw(
        &self,
        kind: Bound<'_, PyAny>,
        value: Option<Bound<'_, PyAny>>,
        _traceback: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.cancel();
        let err = match kind.cast::<PyType>() {
            Ok(kind) => match value {
                Some(value) if value.is_instance(kind)? => PyErr::from_value(value),
                Some(value) if !value.is_none() => PyErr::from_value(kind.call1((value,))?),
                _ => PyErr::from_value(kind.call0()?),
            },
            Err(_) => PyErr::from_value(kind),
        };
        Err(err)
    }

    fn close(&self) {
        self.cancel();
    }

    /// Runs the operation to completion on this thread, with the GIL released.
    fn wait_sync(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let State::Ready(future, convert) = std::mem::replace(&mut *self.state(), State::Done) else {
            return Err(PyRuntimeError::new_err("this operation has already been started"));
        };
        warn_if_in_event_loop(py)?;
        let future = telemetry::with_parent(py, future);
        let outcome: Outcome = runtime::block_on(py, future)?;
        let _runtime = runtime::handle().enter();
        convert(py, outcome)
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        release(std::mem::replace(self.state.get_mut().unwrap_or_else(|e| e.into_inner()), State::Done));
    }
}

static WARN_SYNC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A `_sync` call on a thread whose event loop is running blocks that loop: say so in dev
/// mode (`python -X dev` or `CHAKRA_DEV=1`). The check is one C call when no loop runs.
fn warn_if_in_event_loop(py: Python<'_>) -> PyResult<()> {
    if completion::running_loop(py)?.is_none() {
        return Ok(());
    }
    let warn = WARN_SYNC
        .get_or_try_init(py, || py.import("chakra._bridge")?.getattr("warn_sync_in_async").map(Bound::unbind))?;
    warn.bind(py).call0()?;
    Ok(())
}

/// Wraps a typed future and converter as an [`Op`].
pub(crate) fn op<T, F, C>(future: F, convert: C) -> Op
where
    T: Send + 'static,
    F: std::future::Future<Output = chakra::Result<T>> + Send + 'static,
    C: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    op_with_errors(future, convert, crate::errors::to_pyerr)
}

/// Like [`op`], with a custom mapping of the core's errors (a model's own `DoesNotExist`).
pub(crate) fn op_with_errors<T, F, C, E>(future: F, convert: C, on_error: E) -> Op
where
    T: Send + 'static,
    F: std::future::Future<Output = chakra::Result<T>> + Send + 'static,
    C: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
    E: FnOnce(Python<'_>, chakra::Error) -> PyErr + Send + 'static,
{
    let future: BoxFuture =
        Box::pin(async move { future.await.map(|value| Box::new(value) as Box<dyn std::any::Any + Send>) });
    let convert: Converter = Box::new(move |py, outcome| match outcome {
        Ok(value) => match value.downcast::<T>() {
            Ok(value) => convert(py, *value),
            Err(_) => Err(PyRuntimeError::new_err("internal error: an operation returned the wrong type")),
        },
        Err(err) => Err(on_error(py, err)),
    });
    Op::new(future, convert)
}
