//! `SessionHandle`: the Rust side of `chakra.Session` and `chakra.connect`: one pinned
//! connection, taken on first use, and the stack of transactions and savepoints open on it.
//!
//! Cancellation: an operation aborted mid-statement drops its future while holding the
//! pinned connection; the connection is then unusable and, when the session is closed,
//! the core cancels the statement and discards the connection — the server rolls back
//! whatever was open. A session closed with a transaction still open drops its handles on
//! the runtime: the core runs `ROLLBACK` before the connection goes back to the pool.

use std::sync::Arc;

use chakra::{Config, Error, ErrorKind, Queryable, Request, Response, Transaction};
use pyo3::prelude::*;
use tokio::sync::Mutex;

use crate::database::DatabaseInner;
use crate::op::{op, Op};
use crate::runtime;

/// Where a session's connection comes from.
enum Source {
    Pool(Arc<DatabaseInner>),
    /// `chakra.connect(url)`: a connection of its own, outside any pool.
    Direct(Config),
}

/// A session's connection and transaction state, shared by its in-flight operations.
pub(crate) struct SessionInner {
    source: Source,
    /// Writes begin a transaction when none is open (`chakra.Session`); direct
    /// connections stay in autocommit until `begin()`.
    autobegin: bool,
    generation: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    conn: Option<chakra::Session>,
    /// The open transaction, then its savepoints, innermost last.
    transactions: Vec<Transaction>,
    closed: bool,
}

/// What a statement runs on: the innermost open transaction, or the bare connection.
enum Handle {
    Conn(chakra::Session),
    Tx(Transaction),
}

impl SessionInner {
    fn new(source: Source, autobegin: bool) -> Self {
        SessionInner { source, autobegin, generation: runtime::generation(), state: Mutex::new(State::default()) }
    }

    async fn connect(&self) -> chakra::Result<chakra::Session> {
        match &self.source {
            Source::Pool(db) => db.session().await,
            Source::Direct(config) => chakra::Session::connect(config).await,
        }
    }

    /// The state, with the connection taken if it was not yet.
    async fn ready(&self) -> chakra::Result<tokio::sync::MutexGuard<'_, State>> {
        if self.generation != runtime::generation() {
            return Err(Error::new(
                ErrorKind::Usage,
                "this session was opened before the process forked; open a new one in the child",
            ));
        }
        let mut state = self.state.lock().await;
        if state.closed {
            return Err(Error::new(ErrorKind::Usage, "this session is closed"));
        }
        if state.conn.is_none() {
            state.conn = Some(self.connect().await?);
        }
        Ok(state)
    }

    async fn handle(&self, write: bool) -> chakra::Result<Handle> {
        let mut state = self.ready().await?;
        if write && self.autobegin && state.transactions.is_empty() {
            let tx = state.conn.as_ref().expect("ready() connects").begin().await?;
            state.transactions.push(tx);
        }
        Ok(match state.transactions.last() {
            Some(tx) => Handle::Tx(tx.clone()),
            None => Handle::Conn(state.conn.clone().expect("ready() connects")),
        })
    }

    /// Runs `request` on the session's connection; a write, or a read that locks rows,
    /// first begins the session's transaction (the locks then last until it commits).
    pub(crate) async fn run(&self, request: Request, write: bool) -> chakra::Result<Response> {
        match self.handle(write || request.requires_transaction).await? {
            Handle::Conn(conn) => conn.run(request).await,
            Handle::Tx(tx) => tx.run(request).await,
        }
    }

    /// Opens a transaction, or a savepoint inside the open one; returns the new depth.
    async fn begin(&self) -> chakra::Result<usize> {
        let mut state = self.ready().await?;
        let tx = match state.transactions.last() {
            Some(outer) => outer.savepoint().await?,
            None => state.conn.as_ref().expect("ready() connects").begin().await?,
        };
        state.transactions.push(tx);
        Ok(state.transactions.len())
    }

    /// Commits (`commit`) or rolls back every level above `depth`, innermost first.
    async fn end(&self, depth: usize, commit: bool) -> chakra::Result<()> {
        let mut state = self.state.lock().await;
        while state.transactions.len() > depth {
            let tx = state.transactions.pop().expect("len > depth");
            // A failed COMMIT has ended the transaction on the server; the levels left
            // below a failed RELEASE are rolled back by whoever handles the error.
            if commit {
                tx.commit().await?
            } else {
                tx.rollback().await?
            }
        }
        Ok(())
    }

    fn depth(&self) -> usize {
        self.state.try_lock().map(|s| s.transactions.len()).unwrap_or(0)
    }
}

/// A pinned connection and its transactions, as seen from Python.
#[pyclass(module = "chakra._core", frozen)]
pub(crate) struct SessionHandle {
    pub(crate) inner: Arc<SessionInner>,
}

impl SessionHandle {
    pub(crate) fn pooled(db: Arc<DatabaseInner>) -> Self {
        SessionHandle { inner: Arc::new(SessionInner::new(Source::Pool(db), true)) }
    }
}

#[pymethods]
impl SessionHandle {
    /// Opens a transaction (or a savepoint in the open one); resolves to the new depth.
    fn begin(&self) -> Op {
        let inner = self.inner.clone();
        op(async move { inner.begin().await }, |py, depth| Ok(depth.into_pyobject(py)?.into_any().unbind()))
    }

    /// Begins the session's transaction if none is open, as its first write would (in a
    /// session that begins one on its own); resolves to the depth.
    fn autobegin(&self) -> Op {
        let inner = self.inner.clone();
        op(
            async move {
                inner.handle(true).await?;
                Ok(inner.depth())
            },
            |py, depth| Ok(depth.into_pyobject(py)?.into_any().unbind()),
        )
    }

    /// Commits every level above `depth` (0: the whole transaction).
    #[pyo3(signature = (depth = 0))]
    fn commit(&self, depth: usize) -> Op {
        let inner = self.inner.clone();
        op(async move { inner.end(depth, true).await }, |py, ()| Ok(py.None()))
    }

    /// Rolls back every level above `depth` (0: the whole transaction).
    #[pyo3(signature = (depth = 0))]
    fn rollback(&self, depth: usize) -> Op {
        let inner = self.inner.clone();
        op(async move { inner.end(depth, false).await }, |py, ()| Ok(py.None()))
    }

    /// Open transaction levels: 0 in autocommit, 1 in a transaction, more in savepoints.
    #[getter]
    fn depth(&self) -> usize {
        self.inner.depth()
    }

    /// Returns the connection (rolling back what is still open) in the background.
    fn close(&self) {
        close(&self.inner);
    }

    /// Returns the connection, resolving once it is back in the pool (or discarded).
    fn release(&self) -> Op {
        let inner = self.inner.clone();
        op(
            async move {
                let mut state = inner.state.lock().await;
                state.closed = true;
                // Transactions first: a dropped open one queues its ROLLBACK on the
                // connection, which the core runs before the connection is reused; a
                // statement abandoned mid-flight is cancelled and the connection discarded.
                drop(std::mem::take(&mut state.transactions));
                drop(state.conn.take());
                Ok(())
            },
            |py, ()| Ok(py.None()),
        )
    }
}

impl Drop for SessionHandle {
    /// A session dropped without being closed (garbage-collected) still gives its
    /// connection back, at once (see [`runtime::drop_in_runtime`]).
    fn drop(&mut self) {
        close(&self.inner);
    }
}

/// Gives the connection back; transactions still open are rolled back by the core before
/// the connection is reused. If an operation holds the state right now (one just
/// cancelled, or running on another thread), the close waits for it on the runtime.
fn close(inner: &Arc<SessionInner>) {
    let release = |state: &mut State, generation: u64| {
        state.closed = true;
        if state.conn.is_none() && state.transactions.is_empty() {
            return;
        }
        let handles = (std::mem::take(&mut state.transactions), state.conn.take());
        if generation == runtime::generation() {
            runtime::drop_in_runtime(handles);
        } else {
            // The parent's connection, inherited across fork: its socket is not ours.
            std::mem::forget(handles);
        }
    };
    if let Ok(mut state) = inner.state.try_lock() {
        release(&mut state, inner.generation);
        return;
    }
    let inner = inner.clone();
    runtime::handle().spawn(async move {
        let mut state = inner.state.lock().await;
        release(&mut state, inner.generation);
    });
}

/// `chakra.connect(url)`: opens a connection outside any pool (autocommit until `begin`).
#[pyfunction]
pub(crate) fn connect_direct(py: Python<'_>, url: String) -> PyResult<Op> {
    let config = Config::from_url(url);
    config.validate().map_err(|e| crate::errors::to_pyerr(py, e))?;
    let inner = Arc::new(SessionInner::new(Source::Direct(config), false));
    Ok(op(
        async move {
            // Connect now, so a bad URL or an unreachable server fails here.
            drop(inner.ready().await?);
            Ok(inner)
        },
        |py, inner| Ok(Py::new(py, SessionHandle { inner })?.into_any()),
    ))
}
