//! `DbSession`: one pooled connection pinned for the rest of the request.

use std::future::Future;
use std::ops::Deref;

use axum::extract::{FromRef, FromRequestParts};
use chakra::{Pool, Queryable, Session};
use http::request::Parts;

use crate::Error;

/// Runs a handler's statements on one connection, for what only holds per connection:
/// `SET` variables, temporary tables, advisory locks, `LISTEN`.
///
/// The connection is taken from the `Pool` in the router state (directly, or through
/// [`FromRef`]) when the handler is called, and goes back to the pool when the handler
/// drops the session. Statements run in autocommit mode; use [`Tx`](crate::Tx) for a
/// transaction. When no connection frees up within the pool's `acquire_timeout`, the
/// request is answered `503` (see [`Error`]).
///
/// It is [`Queryable`], and dereferences to [`chakra::Session`] for the rest
/// (`session.begin()`).
///
/// ```no_run
/// use axum::{routing::post, Router};
/// use chakra::{Pool, Queryable};
/// use chakra_axum::DbSession;
///
/// async fn import(session: DbSession) -> Result<(), chakra_axum::Error> {
///     session.execute("CREATE TEMPORARY TABLE staging (line text)", vec![]).await?;
///     session.execute("INSERT INTO staging VALUES ('a'), ('b')", vec![]).await?;
///     session.execute("INSERT INTO lines SELECT line FROM staging", vec![]).await?;
///     Ok(())
/// }
///
/// # fn app(pool: Pool) -> Router {
/// Router::new().route("/import", post(import)).with_state(pool)
/// # }
/// ```
#[derive(Debug)]
pub struct DbSession(Session);

impl DbSession {
    /// The session itself, to keep the connection past the handler (in a spawned task).
    ///
    /// ```no_run
    /// use chakra::Queryable;
    /// use chakra_axum::DbSession;
    ///
    /// async fn refresh(session: DbSession) {
    ///     let session = session.into_inner();
    ///     tokio::spawn(async move { session.execute("REFRESH MATERIALIZED VIEW stats", vec![]).await });
    /// }
    /// ```
    pub fn into_inner(self) -> Session {
        self.0
    }
}

impl Deref for DbSession {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.0
    }
}

impl Queryable for DbSession {
    fn run(&self, request: chakra::Request) -> impl Future<Output = chakra::Result<chakra::Response>> + Send {
        self.0.run(request)
    }
}

impl<S> FromRequestParts<S> for DbSession
where
    Pool: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(_parts: &mut Parts, state: &S) -> Result<Self, Error> {
        Ok(DbSession(Pool::from_ref(state).session().await?))
    }
}
