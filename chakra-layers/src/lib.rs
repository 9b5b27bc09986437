//! The tower layers every Chakra request passes through, one module per layer, and the
//! [`Pool`] that composes them over the executor:
//!
//! ```text
//! trace → metrics → timeout → retry → batch → acquire → executor
//! ```
//!
//! Each layer is usable on its own: an `XLayer` (configuration, cheap to clone), an `X<S>`
//! service wrapping `inner: S`, and a pin-projected response future.

pub mod acquire;
pub mod batch;
pub mod metrics;
pub mod retry;
pub mod timeout;
pub mod trace;

mod pool;
mod queryable;
mod transaction;

pub use pool::{BoxService, Pool, PoolBuilder, Session};
pub use queryable::Queryable;
pub use transaction::{IsolationLevel, Transaction, TransactionOptions};
