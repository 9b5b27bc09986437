//! Chakra in Axum handlers: the pool as router state, a pinned connection or a
//! transaction per request as extractors, and [`Error`] to answer database failures with
//! the right status code.
//!
//! | you want | use |
//! |---|---|
//! | statements on any pooled connection | `State<Pool>` (below) |
//! | several statements on one connection | [`DbSession`] |
//! | the whole request in one transaction | [`TransactionLayer`] + [`Tx`] |
//! | `?` on Chakra results in handlers | [`Error`] |
//!
//! # The pool as state
//!
//! [`chakra::Pool`] is cheap to clone and `Send + Sync`, so it is router state as it is:
//!
//! ```no_run
//! use axum::{extract::State, routing::get, Router};
//! use chakra::{Pool, Queryable};
//!
//! async fn user_count(State(pool): State<Pool>) -> Result<String, chakra_axum::Error> {
//!     let row = pool.query_one("SELECT count(*) FROM users", vec![]).await?;
//!     Ok(row.get::<_, i64>(0).to_string())
//! }
//!
//! # async fn run() -> chakra::Result<()> {
//! let pool = chakra::connect("postgresql://localhost/app").await?;
//! let app: Router = Router::new().route("/users/count", get(user_count)).with_state(pool);
//! # Ok(()) }
//! ```
//!
//! When the state is a struct of your own, implement [`FromRef`](axum::extract::FromRef)
//! for the pool (or derive it with axum's `macros` feature): handlers can then take
//! `State<Pool>` alone, and [`DbSession`] finds the pool on its own.
//!
//! ```no_run
//! use axum::{extract::{FromRef, State}, routing::get, Router};
//! use chakra::{Pool, Queryable};
//!
//! #[derive(Clone)]
//! struct AppState {
//!     pool: Pool,
//!     greeting: String,
//! }
//!
//! impl FromRef<AppState> for Pool {
//!     fn from_ref(state: &AppState) -> Pool {
//!         state.pool.clone()
//!     }
//! }
//!
//! async fn server_version(State(pool): State<Pool>) -> Result<String, chakra_axum::Error> {
//!     let row = pool.query_one("SHOW server_version", vec![]).await?;
//!     Ok(row.get(0))
//! }
//!
//! # async fn run() -> chakra::Result<()> {
//! let pool = chakra::connect("postgresql://localhost/app").await?;
//! let state = AppState { pool, greeting: "hello".into() };
//! let app: Router = Router::new().route("/version", get(server_version)).with_state(state);
//! # Ok(()) }
//! ```

mod error;
mod session;
mod transaction;

pub use error::Error;
pub use session::DbSession;
pub use transaction::{TransactionLayer, TransactionService, Tx, TxRejection};
