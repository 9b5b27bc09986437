//! Chakra: an async-first ORM whose whole core is Rust on Tokio.
//!
//! Every database operation is a [`Request`] that travels down a `tower` stack — tracing,
//! metrics, timeout, retry, batching, connection acquire — to an executor running it on
//! PostgreSQL with tokio-postgres. This crate is the front door: [`connect`], [`Pool`] and
//! the [`prelude`].
//!
//! ```no_run
//! use chakra::prelude::*;
//!
//! #[tokio::main]
//! async fn main() -> Result<()> {
//!     let pool = chakra::connect("postgresql://localhost/app").await?;
//!     let rows = pool.query("SELECT id, name FROM users WHERE is_active = $1", vec![true.into()]).await?;
//!     for row in rows {
//!         let name: String = row.get("name");
//!         println!("{name}");
//!     }
//!     Ok(())
//! }
//! ```

pub use chakra_layers::{
    acquire, batch, metrics, retry, timeout, trace, BoxService, IsolationLevel, Pool, PoolBuilder, Queryable, Session, Transaction,
    TransactionOptions,
};
pub use chakra_service::{
    chrono, rust_decimal, serde_json, telemetry, uuid, Config, ConnectionPool, Error, ErrorKind, Labels, Mode, PinnedConn,
    PointLookup, PoolStatus, Request, Response, Result, Row, RowStream, SqlState, Statement, TxEffect, Value,
};

/// Models and the query builder (`chakra_models`); `#[derive(Model)]` expands to paths
/// under here.
pub mod models {
    pub use chakra_models::*;
}

pub use chakra_models::{Column, Expr, Model, ModelStream, Order, Query};
/// `#[derive(Model)]`: maps a struct to a table (see [`Model`]).
pub use chakra_models_derive::Model;

/// Opens a pool for `url` with the default settings (see [`Config`]); use
/// [`Pool::builder`] or [`PoolBuilder::from_env`] for more.
pub async fn connect(url: &str) -> Result<Pool> {
    Pool::connect(url).await
}

/// Opens a single connection outside any pool; requests on it still go through the
/// layer stack. It closes when the last handle is dropped.
pub async fn connect_direct(url: &str) -> Result<Session> {
    Session::connect(&Config::from_url(url)).await
}

/// What most programs need: `use chakra::prelude::*;`.
pub mod prelude {
    pub use crate::{Error, ErrorKind, Model, Pool, Query, Queryable, Result, Row, Session, Transaction, Value};
}
