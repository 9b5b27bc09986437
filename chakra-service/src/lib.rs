//! Chakra's core: the values, requests, responses and errors every front-end speaks, and
//! the PostgreSQL side of the stack — connections, the pool, and the executor service.
//!
//! A front-end builds a [`Request`]; the layers in `chakra-layers` carry it to an
//! [`Executor`], which runs it on the connection it was leased.

mod config;
mod conn;
mod connection;
mod copy;
mod error;
mod executor;
mod pool;
mod request;
mod response;
mod shared_str;
pub mod telemetry;
mod tls;
mod value;

pub use config::{Config, DatabaseConfig, PoolConfig, QueryConfig, RetryConfig};
pub use conn::{Conn, Lease, PinnedConn};
pub use copy::{copy_pipe, CopyRows, CopySource, CopyWriter, COPY_HEADER, COPY_TRAILER};
pub use error::{Error, ErrorKind, Result};
pub use executor::{execute, hand_back, Executor, Leased};
pub use pool::{ConnectionPool, PoolStatus, ServerInfo};
pub use request::{CancelSlot, Labels, Mode, PointLookup, Request, Route, Statement, TxEffect};
pub use response::{GuardAction, Response, Row, RowStream, StreamEnd, StreamGuard};
pub use shared_str::SharedStr;
pub use value::{Encoded, Key, Value};

/// The crates whose types appear in [`Value`].
pub use {chrono, rust_decimal, serde_json, uuid};

/// The driver's conversion traits, for decoding columns into your own types.
pub use tokio_postgres::types::{FromSql, FromSqlOwned, IsNull, ToSql, Type};

/// The driver's SQLSTATE codes, for matching on [`Error::code`].
pub use tokio_postgres::error::SqlState;
