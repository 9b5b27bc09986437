//! `Transaction`: a transaction (or savepoint) on a pinned connection, whose statements go
//! through the same layer stack as everything else.
//!
//! Dropping a handle that was neither committed nor rolled back rolls back: a top-level
//! transaction that owned its connection is rolled back by the connection itself before it
//! returns to the pool (see `chakra_service::Conn`); a savepoint, or a transaction on a
//! session that lives on, owes a `ROLLBACK [TO SAVEPOINT]` that runs before the
//! connection's next request.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use chakra_service::{Error, ErrorKind, Labels, Mode, PinnedConn, Request, Response, Result, Statement, TxEffect};
use tower::ServiceExt;

use crate::pool::StackService;
use crate::queryable::Queryable;

/// SQL isolation levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationLevel {
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

/// How to begin a transaction, and how often the closure form may run it again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransactionOptions {
    pub isolation: Option<IsolationLevel>,
    pub read_only: bool,
    /// Extra runs of a `Pool::transaction_with` body after a serialization failure
    /// (`40001`) or deadlock (`40P01`); 0 (the default) never re-runs it.
    pub retries: u32,
}

impl TransactionOptions {
    pub fn isolation(mut self, level: IsolationLevel) -> Self {
        self.isolation = Some(level);
        self
    }

    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    fn begin_sql(&self) -> String {
        let mut sql = String::from("BEGIN");
        match self.isolation {
            Some(IsolationLevel::ReadCommitted) => sql.push_str(" ISOLATION LEVEL READ COMMITTED"),
            Some(IsolationLevel::RepeatableRead) => sql.push_str(" ISOLATION LEVEL REPEATABLE READ"),
            Some(IsolationLevel::Serializable) => sql.push_str(" ISOLATION LEVEL SERIALIZABLE"),
            None => {}
        }
        if self.read_only {
            sql.push_str(" READ ONLY");
        }
        sql
    }
}

/// An open transaction or savepoint. Clones share it; committing or rolling back through
/// any clone ends it for all.
#[derive(Clone)]
pub struct Transaction {
    shared: Arc<Shared>,
}

struct Shared {
    service: StackService,
    conn: PinnedConn,
    /// 0 for the transaction itself, n for the n-th nested savepoint.
    depth: u32,
    open: Mutex<bool>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if *self.open.get_mut().unwrap_or_else(|e| e.into_inner()) {
            let (sql, effect) = self.end_sql(false);
            self.conn.defer(sql, effect);
        }
    }
}

impl Shared {
    fn savepoint(&self) -> String {
        format!("chakra_sp_{}", self.depth)
    }

    fn end_sql(&self, commit: bool) -> (String, TxEffect) {
        match (self.depth, commit) {
            (0, true) => ("COMMIT".into(), TxEffect::Ends),
            (0, false) => ("ROLLBACK".into(), TxEffect::Ends),
            (_, true) => (format!("RELEASE SAVEPOINT {}", self.savepoint()), TxEffect::None),
            (_, false) => (format!("ROLLBACK TO SAVEPOINT {}", self.savepoint()), TxEffect::None),
        }
    }
}

fn control(sql: String, operation: &'static str, effect: TxEffect, conn: &PinnedConn) -> Request {
    Request::new(Statement::new(sql, Vec::new()), Mode::Execute)
        .labels(Labels::new(operation, None))
        .tx_effect(effect)
        .pinned(conn.clone())
}

impl Transaction {
    pub(crate) async fn begin(
        service: StackService,
        conn: PinnedConn,
        options: TransactionOptions,
    ) -> Result<Transaction> {
        let request = control(options.begin_sql(), "BEGIN", TxEffect::Begins, &conn);
        service.clone().oneshot(request).await?;
        Ok(Transaction { shared: Arc::new(Shared { service, conn, depth: 0, open: Mutex::new(true) }) })
    }

    /// Opens a savepoint inside this transaction; committing it releases the savepoint,
    /// rolling it back undoes only what ran since.
    pub async fn savepoint(&self) -> Result<Transaction> {
        self.ensure_open()?;
        let shared = &self.shared;
        let nested = Shared {
            service: shared.service.clone(),
            conn: shared.conn.clone(),
            depth: shared.depth + 1,
            open: Mutex::new(false),
        };
        let request = control(format!("SAVEPOINT {}", nested.savepoint()), "SAVEPOINT", TxEffect::None, &shared.conn);
        shared.service.clone().oneshot(request).await?;
        *nested.open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        Ok(Transaction { shared: Arc::new(nested) })
    }

    /// Commits (or releases the savepoint).
    pub async fn commit(self) -> Result<()> {
        self.end(true).await
    }

    /// Rolls back (to the savepoint, for a nested handle).
    pub async fn rollback(self) -> Result<()> {
        self.end(false).await
    }

    /// Whether this is a savepoint inside another transaction.
    pub fn is_savepoint(&self) -> bool {
        self.shared.depth > 0
    }

    async fn end(&self, commit: bool) -> Result<()> {
        self.ensure_open()?;
        *self.shared.open.lock().unwrap_or_else(|e| e.into_inner()) = false;
        let (sql, effect) = self.shared.end_sql(commit);
        let operation = match (commit, self.shared.depth) {
            (true, 0) => "COMMIT",
            (false, 0) => "ROLLBACK",
            (true, _) => "RELEASE SAVEPOINT",
            (false, _) => "ROLLBACK TO SAVEPOINT",
        };
        let request = control(sql, operation, effect, &self.shared.conn);
        match self.shared.service.clone().oneshot(request).await {
            Ok(_) => Ok(()),
            // A broken connection is discarded, and the server rolls back on disconnect:
            // the rollback the caller asked for has happened.
            Err(e) if !commit && e.kind() == ErrorKind::Connection => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn ensure_open(&self) -> Result<()> {
        match *self.shared.open.lock().unwrap_or_else(|e| e.into_inner()) {
            true => Ok(()),
            false => Err(Error::new(ErrorKind::Usage, "this transaction has already been committed or rolled back")),
        }
    }
}

impl Queryable for Transaction {
    fn run(&self, request: Request) -> impl Future<Output = Result<Response>> + Send {
        let open = self.ensure_open();
        let call = self.shared.service.clone().oneshot(request.pinned(self.shared.conn.clone()));
        async move {
            open?;
            call.await
        }
    }
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction").field("depth", &self.shared.depth).finish()
    }
}
