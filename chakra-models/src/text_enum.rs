//! What `#[derive(SqlEnum)]` expands to: the types its `ToSql` and `FromSql` impls name,
//! and the error for a text that is no variant. Not for direct use.

pub use bytes::BytesMut;
use chakra_service::{Error, ErrorKind};
pub use chakra_service::{FromSql, IsNull, ToSql, Type};

/// What `ToSql::to_sql` gives.
pub type Written = Result<IsNull, Box<dyn std::error::Error + Sync + Send>>;

/// What `FromSql::from_sql` gives.
pub type Read<T> = Result<T, Box<dyn std::error::Error + Sync + Send>>;

/// `text` read for enum `name`, which none of its `values` is.
pub fn unknown(name: &str, text: &str, values: &[&str]) -> Error {
    Error::new(ErrorKind::Decode, format!("`{text}` is not a {name}: its texts are {}", values.join(", ")))
}
