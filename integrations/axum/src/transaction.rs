//! A transaction per request: `TransactionLayer` (and its service) decides commit or
//! rollback from the response status; the `Tx` extractor hands the transaction to handlers.
//!
//! The layer puts an empty slot into each request's extensions; the first `Tx` extracted
//! begins the transaction and fills it, so routes that never ask for one never take a
//! connection. When the handler has answered, the layer commits for a 2xx/3xx status and
//! rolls back for any other.

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use chakra::{ErrorKind, Pool, Queryable, Transaction};
use http::request::Parts;
use http::StatusCode;
use tokio::sync::OnceCell;
use tower_layer::Layer;
use tower_service::Service;

use crate::Error;

/// Wraps routes so each request can have one transaction, committed when the handler
/// answers with a success (2xx) or redirect (3xx) status and rolled back otherwise.
///
/// The transaction begins only when a handler extracts [`Tx`]. If committing fails, the
/// handler's response is replaced by the commit's error response ([`Error`]: `409` for a
/// deferred constraint, `500` for the rest), so a client never sees a success that was
/// not stored. The commit happens before the response body is sent: a streamed body must
/// not use the transaction.
///
/// ```no_run
/// use axum::{routing::post, Router};
/// use chakra::{Pool, Queryable};
/// use chakra_axum::{TransactionLayer, Tx};
///
/// async fn transfer(tx: Tx) -> Result<(), chakra_axum::Error> {
///     tx.execute("UPDATE accounts SET balance = balance - 10 WHERE id = 1", vec![]).await?;
///     tx.execute("UPDATE accounts SET balance = balance + 10 WHERE id = 2", vec![]).await?;
///     Ok(())
/// }
///
/// # fn app(pool: Pool) -> Router {
/// Router::new()
///     .route("/transfer", post(transfer))
///     .layer(TransactionLayer::new(pool.clone()))
///     .with_state(pool)
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct TransactionLayer {
    pool: Pool,
}

impl TransactionLayer {
    /// Transactions for the routes under this layer will be begun on `pool`.
    ///
    /// ```no_run
    /// # async fn run() -> chakra::Result<()> {
    /// let pool = chakra::connect("postgresql://localhost/app").await?;
    /// let layer = chakra_axum::TransactionLayer::new(pool);
    /// # Ok(()) }
    /// ```
    pub fn new(pool: Pool) -> Self {
        TransactionLayer { pool }
    }
}

impl<S> Layer<S> for TransactionLayer {
    type Service = TransactionService<S>;

    fn layer(&self, inner: S) -> TransactionService<S> {
        TransactionService { inner, pool: self.pool.clone() }
    }
}

/// The service [`TransactionLayer`] wraps routes in; you do not name it except in types.
///
/// Its future may be dropped at any await (the client went away, an outer timeout fired)
/// or the handler may panic. Either way the transaction's last handle is dropped with it,
/// and Chakra rolls the transaction back before the connection is used again. Dropped
/// while `COMMIT` is in flight, the outcome is the server's (as for any client cut off
/// mid-commit); the connection is not reused with the statement in flight.
///
/// ```no_run
/// use axum::{extract::Request, handler::HandlerWithoutStateExt, response::Response};
/// use chakra::{Pool, Queryable};
/// use chakra_axum::{TransactionLayer, TransactionService, Tx};
/// use std::convert::Infallible;
/// use tower::{Layer, Service};
///
/// async fn ping(tx: Tx) -> Result<(), chakra_axum::Error> {
///     tx.execute("INSERT INTO pings DEFAULT VALUES", vec![]).await?;
///     Ok(())
/// }
///
/// // One handler served on its own, without a router, still in a transaction.
/// fn service(pool: Pool) -> TransactionService<impl Service<Request, Response = Response, Error = Infallible>> {
///     TransactionLayer::new(pool).layer(ping.into_service())
/// }
/// ```
#[derive(Clone, Debug)]
pub struct TransactionService<S> {
    inner: S,
    pool: Pool,
}

/// What the layer shares with the `Tx` extractors of one request.
struct Slot {
    pool: Pool,
    tx: OnceCell<Transaction>,
}

/// The request extension; private so only the layer can provide one.
#[derive(Clone)]
struct SlotExtension(Arc<Slot>);

impl<S, B> Service<http::Request<B>> for TransactionService<S>
where
    S: Service<http::Request<B>, Response = Response>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    /// Boxed because it awaits `Transaction::commit`, whose future has no nameable type;
    /// one allocation next to a database transaction.
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let slot = Arc::new(Slot { pool: self.pool.clone(), tx: OnceCell::new() });
        request.extensions_mut().insert(SlotExtension(slot.clone()));
        let handler = self.inner.call(request);
        Box::pin(async move {
            let response = handler.await?;
            Ok(finish(&slot, response).await)
        })
    }
}

/// Commits or rolls back the request's transaction, if it began one.
async fn finish(slot: &Slot, response: Response) -> Response {
    let Some(tx) = slot.tx.get().cloned() else {
        return response;
    };
    let status = response.status();
    if status.is_success() || status.is_redirection() {
        match tx.commit().await {
            Ok(()) => response,
            // The handler already committed or rolled back itself: its answer stands.
            Err(e) if e.kind() == ErrorKind::Usage => response,
            Err(e) => Error::from(e).into_response(),
        }
    } else {
        // The response already reports a failure. Were this rollback to fail, the
        // connection would roll back (or be discarded) before its next use anyway.
        let _ = tx.rollback().await;
        response
    }
}

/// Gives a handler the request's transaction, begun on first extraction; needs a
/// [`TransactionLayer`] on the route.
///
/// It is [`Queryable`] (so `tx.execute(...)` works, and `&tx` can be passed to your own
/// functions taking `&impl Queryable`) and dereferences to [`chakra::Transaction`] for the
/// rest (`tx.savepoint()`).
/// Extracting `Tx` twice in one request (in a handler and an extractor of your own) gives
/// the same transaction. Leave committing to the layer: it decides from the response
/// status.
///
/// Without the layer, extraction fails with a `500` whose body names the missing layer
/// (see [`TxRejection`]); when no connection frees up in time, with the `503` of
/// [`Error`].
///
/// ```no_run
/// use axum::{extract::Path, http::StatusCode, routing::delete, Router};
/// use chakra::{Pool, Queryable};
/// use chakra_axum::{TransactionLayer, Tx};
///
/// async fn delete_user(tx: Tx, Path(id): Path<i64>) -> Result<StatusCode, chakra_axum::Error> {
///     tx.execute("DELETE FROM sessions WHERE user_id = $1", vec![id.into()]).await?;
///     let deleted = tx.execute("DELETE FROM users WHERE id = $1", vec![id.into()]).await?;
///     // A 404 rolls the session cleanup back too.
///     Ok(if deleted == 0 { StatusCode::NOT_FOUND } else { StatusCode::NO_CONTENT })
/// }
///
/// # fn app(pool: Pool) -> Router {
/// Router::new()
///     .route("/users/{id}", delete(delete_user))
///     .layer(TransactionLayer::new(pool))
/// # }
/// ```
#[derive(Debug)]
pub struct Tx(Transaction);

impl Deref for Tx {
    type Target = Transaction;

    fn deref(&self) -> &Transaction {
        &self.0
    }
}

impl Queryable for Tx {
    fn run(&self, request: chakra::Request) -> impl Future<Output = chakra::Result<chakra::Response>> + Send {
        self.0.run(request)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Tx {
    type Rejection = TxRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, TxRejection> {
        let Some(SlotExtension(slot)) = parts.extensions.get::<SlotExtension>().cloned() else {
            return Err(TxRejection(Rejection::MissingLayer));
        };
        match slot.tx.get_or_try_init(|| slot.pool.begin()).await {
            Ok(tx) => Ok(Tx(tx.clone())),
            Err(e) => Err(TxRejection(Rejection::Begin(Error::from(e)))),
        }
    }
}

/// Why a [`Tx`] could not be extracted: the route has no [`TransactionLayer`] (a `500`
/// naming it, since that is a bug in the router, not in the request), or the transaction
/// could not begin (the response of [`Error`], e.g. a `503` when the pool is exhausted).
///
/// ```
/// use axum::{body::Body, http::{Request, StatusCode}, routing::get, Router};
/// use chakra_axum::Tx;
/// use tower::ServiceExt;
///
/// async fn handler(_tx: Tx) {}
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // No TransactionLayer on this router.
/// let app = Router::new().route("/", get(handler));
/// let response = app.oneshot(Request::new(Body::empty())).await.unwrap();
/// assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
/// # }
/// ```
pub struct TxRejection(Rejection);

enum Rejection {
    MissingLayer,
    Begin(Error),
}

const MISSING_LAYER: &str =
    "`chakra_axum::Tx` needs `chakra_axum::TransactionLayer` on this route: add `.layer(TransactionLayer::new(pool))` to the router";

impl IntoResponse for TxRejection {
    fn into_response(self) -> Response {
        match self.0 {
            Rejection::MissingLayer => (StatusCode::INTERNAL_SERVER_ERROR, MISSING_LAYER).into_response(),
            Rejection::Begin(e) => e.into_response(),
        }
    }
}

impl fmt::Display for TxRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Rejection::MissingLayer => f.write_str(MISSING_LAYER),
            Rejection::Begin(e) => write!(f, "could not begin the request's transaction: {e}"),
        }
    }
}

impl fmt::Debug for TxRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Rejection::MissingLayer => f.write_str("TxRejection::MissingLayer"),
            Rejection::Begin(e) => f.debug_tuple("TxRejection::Begin").field(e).finish(),
        }
    }
}

impl std::error::Error for TxRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            Rejection::MissingLayer => None,
            Rejection::Begin(e) => Some(e),
        }
    }
}
