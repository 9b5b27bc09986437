//! Connections and the state that decides whether one may be reused.
//!
//! The pool's checkout check ([`Connector`](crate::connection::Connector)) only asks "has
//! the connection ended?". A connection can be open and
//! still unfit for the next user: inside a transaction someone abandoned, or with a statement
//! still running whose caller went away. [`Conn`] tracks both and, when dropped dirty, never
//! hands the connection straight back:
//!
//! * inside a transaction (and nothing in flight): `ROLLBACK` runs on a spawned task, and
//!   only a clean connection returns to the pool; if that fails it is discarded;
//! * a statement in flight (its future or stream was dropped): the statement is cancelled
//!   on the server and the connection is discarded, because a cancel request may land
//!   on whatever the connection runs next;
//! * broken (a connection error was seen): discarded.
//!
//! Discarding closes the socket, which also makes the server roll back.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use deadpool::managed::Object;
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::connection::{Connector, PgConnection};
use crate::request::TxEffect;

/// The connection behind a [`Conn`]: pooled, or opened directly for one user.
pub(crate) enum Client {
    Pooled(Object<Connector>),
    Direct(Box<PgConnection>),
}

impl Deref for Client {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match self {
            Client::Pooled(obj) => obj,
            Client::Direct(client) => client,
        }
    }
}

impl DerefMut for Client {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            Client::Pooled(obj) => obj,
            Client::Direct(client) => client,
        }
    }
}

impl Client {
    /// Closes the connection instead of returning it to the pool.
    fn discard(self) {
        match self {
            Client::Pooled(obj) => drop(Object::take(obj)),
            Client::Direct(client) => drop(client),
        }
    }
}

/// One database connection checked out for a request, a session or a transaction.
pub struct Conn {
    client: Option<Client>,
    pub(crate) statement_cache: bool,
    pub(crate) in_transaction: bool,
    pub(crate) in_flight: bool,
    pub(crate) broken: bool,
}

impl Conn {
    pub(crate) fn new(client: Client, statement_cache: bool) -> Self {
        Conn { client: Some(client), statement_cache, in_transaction: false, in_flight: false, broken: false }
    }

    pub(crate) fn pg(&self) -> &PgConnection {
        // `client` is only `None` inside `drop`.
        self.client.as_ref().expect("connection used after release")
    }

    pub(crate) fn pg_mut(&mut self) -> &mut PgConnection {
        self.client.as_mut().expect("connection used after release")
    }

    /// Whether the connection is inside a transaction it began through a request.
    pub fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    /// Whether the connection has failed and will be discarded.
    pub fn is_broken(&self) -> bool {
        self.broken || self.client.as_ref().is_none_or(|c| c.is_closed())
    }

    /// The server process serving this connection (`pg_backend_pid()`), for diagnostics.
    pub fn cancel_token(&self) -> tokio_postgres::CancelToken {
        self.pg().client().cancel_token()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else { return };
        if self.in_flight && !client.is_closed() {
            // Checked before `broken`: a pinned connection whose statement was abandoned is
            // also marked broken, and its statement must still be stopped on the server.
            let token = client.client().cancel_token();
            client.discard();
            send_cancel(token);
        } else if self.broken || client.is_closed() {
            client.discard();
        } else if self.in_transaction {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(async move {
                        let mut client = client;
                        match client.batch_execute("ROLLBACK").await {
                            Ok(()) => drop(client),
                            Err(_) => client.discard(),
                        }
                    });
                }
                Err(_) => client.discard(),
            }
        } else {
            drop(client);
        }
    }
}

/// Asks the server, on a connection of its own, to cancel what `token`'s backend runs;
/// best effort (the statement may end first, or the server be gone).
pub(crate) fn send_cancel(token: tokio_postgres::CancelToken) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            let _ = token.cancel_query(tokio_postgres::NoTls).await;
        });
    }
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("in_transaction", &self.in_transaction)
            .field("in_flight", &self.in_flight)
            .field("broken", &self.broken)
            .finish()
    }
}

/// A connection held across requests by a session or transaction. Requests on it run one
/// at a time, in the order they reach the lock; cloning shares the same connection.
#[derive(Clone)]
pub struct PinnedConn(Arc<Pinned>);

struct Pinned {
    conn: Arc<Mutex<Conn>>,
    /// Statements owed before the next request, e.g. `ROLLBACK TO SAVEPOINT` for a savepoint
    /// whose handle was dropped: `Drop` cannot await, so the debt is paid on next use.
    deferred: std::sync::Mutex<Vec<(String, TxEffect)>>,
}

impl PinnedConn {
    pub fn new(conn: Conn) -> Self {
        PinnedConn(Arc::new(Pinned { conn: Arc::new(Mutex::new(conn)), deferred: Default::default() }))
    }

    /// Waits for the connection to be free and takes it for one request, first running any
    /// deferred statements.
    pub async fn lock(&self) -> crate::Result<Lease> {
        let mut guard = self.0.conn.clone().lock_owned().await;
        if guard.in_flight {
            // The previous request's future was dropped mid-statement: whether that
            // statement ran, and what state it left behind, is unknown.
            guard.broken = true;
        }
        let deferred = std::mem::take(&mut *self.0.deferred.lock().unwrap_or_else(|e| e.into_inner()));
        for (sql, effect) in deferred {
            if guard.is_broken() {
                break;
            }
            let result = guard.pg_mut().batch_execute(&sql).await.map_err(crate::Error::from);
            match (&result, effect) {
                (Ok(()), TxEffect::Begins) => guard.in_transaction = true,
                (_, TxEffect::Ends) => guard.in_transaction = false,
                _ => {}
            }
            if let Err(e) = result {
                guard.broken |= e.is_connection_broken();
                return Err(e);
            }
        }
        Ok(Lease::Pinned(guard))
    }

    /// Queues `sql` to run before the next request on this connection.
    pub fn defer(&self, sql: impl Into<String>, effect: TxEffect) {
        self.0.deferred.lock().unwrap_or_else(|e| e.into_inner()).push((sql.into(), effect));
    }

    /// Whether two handles share one connection.
    pub fn same(&self, other: &PinnedConn) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for PinnedConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PinnedConn")
    }
}

/// The right to run one request on a connection: owned for a pooled request, a lock on
/// a pinned one.
// Leases live for one request and move once or twice; boxing the owned `Conn` would cost
// an allocation per request to save a few memcpys.
#[allow(clippy::large_enum_variant)]
pub enum Lease {
    Owned(Conn),
    Pinned(OwnedMutexGuard<Conn>),
}

impl Deref for Lease {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        match self {
            Lease::Owned(c) => c,
            Lease::Pinned(g) => g,
        }
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Conn {
        match self {
            Lease::Owned(c) => c,
            Lease::Pinned(g) => g,
        }
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
