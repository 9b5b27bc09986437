//! `Error`: a Chakra error as an HTTP response, without leaking what the database said.

use std::fmt;

use axum::response::{IntoResponse, Response};
use axum::Json;
use chakra::ErrorKind;
use http::{header, HeaderValue, StatusCode};
use serde_json::json;

/// Lets handlers use `?` on Chakra results and answers with the status the failure
/// deserves.
///
/// | [`ErrorKind`] | status | body |
/// |---|---|---|
/// | `NotFound` | 404 | `{"error":"not_found"}` |
/// | `Integrity` | 409 | `{"error":"conflict","constraint":"users_email_key"}` |
/// | `PoolTimeout` | 503, `Retry-After: 1` | `{"error":"unavailable"}` |
/// | `Timeout` | 504 | `{"error":"timeout"}` |
/// | anything else | 500 | `{"error":"internal"}` |
///
/// Bodies never carry SQL, parameter values or the database's message (a unique
/// violation's message quotes the duplicate value). The full [`chakra::Error`] rides in
/// the response's extensions instead, for a logging middleware to pick up with
/// `response.extensions().get::<chakra::Error>()`.
///
/// ```no_run
/// use axum::{extract::{Path, State}, routing::get, Router};
/// use chakra::{Pool, Queryable};
///
/// // A missing user is a 404, a pool under pressure a 503: `?` decides.
/// async fn user_name(State(pool): State<Pool>, Path(id): Path<i64>) -> Result<String, chakra_axum::Error> {
///     let row = pool.query_one("SELECT name FROM users WHERE id = $1", vec![id.into()]).await?;
///     Ok(row.get("name"))
/// }
///
/// # fn app(pool: Pool) -> Router {
/// Router::new().route("/users/{id}", get(user_name)).with_state(pool)
/// # }
/// ```
pub struct Error(chakra::Error);

impl Error {
    /// The Chakra error this response was made from, for logging or finer matching.
    ///
    /// ```
    /// use chakra::ErrorKind;
    /// let e = chakra_axum::Error::from(chakra::Error::new(ErrorKind::NotFound, "no user 7"));
    /// assert_eq!(e.inner().kind(), ErrorKind::NotFound);
    /// ```
    pub fn inner(&self) -> &chakra::Error {
        &self.0
    }

    /// Takes the Chakra error back out, to handle it yourself.
    ///
    /// ```
    /// use chakra::ErrorKind;
    /// let e = chakra_axum::Error::from(chakra::Error::new(ErrorKind::Timeout, "statement timed out"));
    /// let inner: chakra::Error = e.into_inner();
    /// assert_eq!(inner.kind(), ErrorKind::Timeout);
    /// ```
    pub fn into_inner(self) -> chakra::Error {
        self.0
    }
}

impl From<chakra::Error> for Error {
    fn from(error: chakra::Error) -> Self {
        Error(error)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let kind = self.0.kind();
        let (status, body) = match kind {
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, json!({ "error": "not_found" })),
            ErrorKind::Integrity => {
                let body = match self.0.constraint() {
                    Some(constraint) => json!({ "error": "conflict", "constraint": constraint }),
                    // NOT NULL violations name a column, not a constraint.
                    None => json!({ "error": "conflict" }),
                };
                (StatusCode::CONFLICT, body)
            }
            ErrorKind::PoolTimeout => (StatusCode::SERVICE_UNAVAILABLE, json!({ "error": "unavailable" })),
            ErrorKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, json!({ "error": "timeout" })),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, json!({ "error": "internal" })),
        };
        let mut response = (status, Json(body)).into_response();
        if kind == ErrorKind::PoolTimeout {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response.extensions_mut().insert(self.0);
        response
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(kind: ErrorKind) -> StatusCode {
        Error::from(chakra::Error::new(kind, "secret detail")).into_response().status()
    }

    #[test]
    fn kinds_map_to_statuses() {
        assert_eq!(status_of(ErrorKind::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(status_of(ErrorKind::Integrity), StatusCode::CONFLICT);
        assert_eq!(status_of(ErrorKind::PoolTimeout), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status_of(ErrorKind::Timeout), StatusCode::GATEWAY_TIMEOUT);
        for kind in [
            ErrorKind::Query,
            ErrorKind::Connection,
            ErrorKind::Decode,
            ErrorKind::Config,
            ErrorKind::Usage,
            ErrorKind::MultipleFound,
        ] {
            assert_eq!(status_of(kind), StatusCode::INTERNAL_SERVER_ERROR, "{kind:?}");
        }
    }
}
