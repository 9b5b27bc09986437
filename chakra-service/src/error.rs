//! The one error type every Chakra layer and front-end returns.
//!
//! Like `tokio_postgres::Error` it is opaque: callers branch on [`Error::kind`] and read
//! the context accessors (`code`, `constraint`, `key`) rather than matching a sprawling enum.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use tokio_postgres::error::SqlState;

use crate::request::Request;

type BoxError = Box<dyn StdError + Send + Sync>;

/// What went wrong, coarsely: enough to decide between retrying, reporting a 404,
/// a 409 or a 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A configuration file, key or value is invalid; [`Error::key`] names it.
    Config,
    /// No connection could be taken from the pool within `acquire_timeout`.
    PoolTimeout,
    /// A statement ran past its deadline and was cancelled on the server.
    Timeout,
    /// The connection failed, closed or the server shut it down.
    Connection,
    /// A unique, foreign-key, not-null, check or exclusion constraint was violated.
    Integrity,
    /// A query expected exactly one row and found none.
    NotFound,
    /// A query expected at most one row and found several.
    MultipleFound,
    /// The server rejected the statement; [`Error::code`] has the SQLSTATE.
    Query,
    /// A value could not be encoded as a parameter or decoded from a row.
    Decode,
    /// A query names a field or lookup the model does not have; raised before any SQL
    /// is sent.
    Field,
    /// The request cannot run as built (no connection to run it on, a finished transaction…).
    Usage,
}

impl ErrorKind {
    /// The kind in snake_case (`pool_timeout`), as metrics, spans and bindings name it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::PoolTimeout => "pool_timeout",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection",
            ErrorKind::Integrity => "integrity",
            ErrorKind::NotFound => "not_found",
            ErrorKind::MultipleFound => "multiple_found",
            ErrorKind::Query => "query",
            ErrorKind::Decode => "decode",
            ErrorKind::Field => "field",
            ErrorKind::Usage => "usage",
        }
    }
}

/// A Chakra error: a kind, a message a user can act on, and the underlying cause.
/// Cloning is cheap, so one failure can be reported to every caller it affected.
#[derive(Clone)]
pub struct Error {
    inner: Box<Inner>,
}

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    message: String,
    code: Option<SqlState>,
    constraint: Option<String>,
    key: Option<String>,
    detail: Option<String>,
    source: Option<Arc<dyn StdError + Send + Sync>>,
    /// The request that failed, handed back with a connection failure (see
    /// [`Error::with_request`]); never printed, since its parameters are user data.
    request: Option<Box<Request>>,
}

/// `Result` with Chakra's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                code: None,
                constraint: None,
                key: None,
                detail: None,
                source: None,
                request: None,
            }),
        }
    }

    /// A configuration error naming the offending key (`pool.max_connections`, …).
    pub fn config(key: impl Into<String>, message: impl fmt::Display) -> Self {
        let key = key.into();
        let mut e = Error::new(ErrorKind::Config, format!("invalid configuration `{key}`: {message}"));
        e.inner.key = Some(key);
        e
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(Arc::from(source.into()));
        self
    }

    /// Hands `request` back with a failure, so that a retry layer above can send it again
    /// without copying every request up front in case it fails.
    pub fn with_request(mut self, request: Request) -> Self {
        self.inner.request = Some(Box::new(request));
        self
    }

    /// Takes back the request handed back with this error, if any.
    pub fn take_request(&mut self) -> Option<Request> {
        self.inner.request.take().map(|r| *r)
    }

    /// The coarse category of this error.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The SQLSTATE the server reported, if the server reported the error.
    pub fn code(&self) -> Option<&SqlState> {
        self.inner.code.as_ref()
    }

    /// The violated constraint's name, for [`ErrorKind::Integrity`].
    pub fn constraint(&self) -> Option<&str> {
        self.inner.constraint.as_deref()
    }

    /// A query error naming the unknown field or lookup.
    pub fn field(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Field, message)
    }

    /// The server's DETAIL line, which may quote row values: kept out of
    /// [`message`](Self::message) and `Display` so they do not reach logs by accident.
    pub fn detail(&self) -> Option<&str> {
        self.inner.detail.as_deref()
    }

    /// The configuration key at fault, for [`ErrorKind::Config`].
    pub fn key(&self) -> Option<&str> {
        self.inner.key.as_deref()
    }

    /// The human-readable message (without the cause chain).
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// Whether the connection this error came from must not be reused.
    pub fn is_connection_broken(&self) -> bool {
        self.inner.kind == ErrorKind::Connection
    }

    /// Whether a whole transaction may succeed if run again: a serialization failure
    /// (`40001`) or a detected deadlock (`40P01`).
    pub fn is_transaction_conflict(&self) -> bool {
        matches!(self.code(), Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED)
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(err: tokio_postgres::Error) -> Self {
        let Some(db) = err.as_db_error() else {
            // No server error: the socket failed or closed, or a value failed to convert.
            // tokio-postgres keeps its error kinds private; its Display text is stable API.
            let text = err.to_string();
            let kind = if err.is_closed()
                || err.source().is_some_and(|s| s.is::<std::io::Error>())
                || text.starts_with("error connecting")
                || text.starts_with("error performing TLS")
                || text.starts_with("error communicating")
                || text.starts_with("unexpected message")
                || text.starts_with("authentication error")
                || text.starts_with("timeout waiting")
            {
                ErrorKind::Connection
            } else if text.starts_with("invalid connection string") || text.starts_with("invalid configuration") {
                ErrorKind::Config
            } else if text.starts_with("error serializing") || text.starts_with("error deserializing") {
                ErrorKind::Decode
            } else {
                ErrorKind::Query
            };
            // tokio-postgres counts parameters from 0; the SQL says `$1`.
            let text = match text.strip_prefix("error serializing parameter ").and_then(|n| n.parse::<usize>().ok()) {
                Some(n) => format!("cannot send parameter ${}", n + 1),
                None => text,
            };
            let mut message = match err.source() {
                Some(source) => format!("{text}: {source}"),
                None => text,
            };
            if message.contains("UnknownIssuer") {
                message.push_str(
                    " (no trusted CA signed the server's certificate: give its CA as sslrootcert=<path> \
                     in database.url)",
                );
            }
            return Error::new(kind, message).with_source(err);
        };
        let code = db.code().clone();
        let class = &code.code()[..2];
        let kind = match class {
            "23" => ErrorKind::Integrity,
            // connection exceptions, operator intervention (admin shutdown, crash shutdown,
            // cannot connect now) except query_canceled, which is how a timeout surfaces.
            "08" => ErrorKind::Connection,
            // invalid authorization (a wrong password, a missing client certificate): the
            // connection could not be made, as psycopg and asyncpg classify it too.
            "28" => ErrorKind::Connection,
            "57" if code == SqlState::QUERY_CANCELED => ErrorKind::Timeout,
            "57" => ErrorKind::Connection,
            "22" => ErrorKind::Decode,
            _ => ErrorKind::Query,
        };
        // The server's DETAIL can quote row values (`Key (email)=(…) already exists`), so it
        // stays out of the message, which ends up in logs, spans and HTTP responses.
        let mut e = Error::new(kind, format!("{} [SQLSTATE {}]", db.message(), code.code()));
        e.inner.code = Some(code);
        e.inner.constraint = db.constraint().map(str::to_owned);
        e.inner.detail = db.detail().map(str::to_owned);
        // No source: the driver error's text repeats the DETAIL, and whatever prints cause
        // chains (anyhow, tracing) would print it. Its facts are all on this error.
        e
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind).field("message", &self.inner.message);
        if let Some(code) = &self.inner.code {
            d.field("code", &code.code());
        }
        if let Some(constraint) = &self.inner.constraint {
            d.field("constraint", constraint);
        }
        if let Some(key) = &self.inner.key {
            d.field("key", key);
        }
        d.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner.source.as_deref().map(|s| s as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_key() {
        let e = Error::config("pool.max_connections", "must be at least 1");
        assert_eq!(e.kind(), ErrorKind::Config);
        assert_eq!(e.key(), Some("pool.max_connections"));
        assert!(e.to_string().contains("pool.max_connections"));
    }
}
