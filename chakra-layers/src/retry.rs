//! `retry`: runs an idempotent read again when its connection broke under it (server
//! restart, `pg_terminate_backend`, a reset socket), with exponential backoff and a cap.
//!
//! Only requests marked idempotent and routed to the pool are retried: a write may have
//! committed before the connection dropped, and a statement inside a transaction cannot
//! be repeated on another connection.
//!
//! Nothing is copied up front: the layers below hand a failed request back inside its
//! connection error ([`Error::with_request`]), and only then is it sent again.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use chakra_service::telemetry::QUERY_RETRIES;
use chakra_service::{Error, ErrorKind, Request, Response, Result, RetryConfig};
use pin_project::pin_project;
use tokio::time::Sleep;
use tower_layer::Layer;
use tower_service::Service;

use crate::metrics::QueryLabels;

/// Retries idempotent pooled reads on connection errors, `max_attempts` in all.
#[derive(Debug, Clone, Copy)]
pub struct RetryLayer {
    max_attempts: u32,
    backoff: Duration,
    max_backoff: Duration,
}

impl RetryLayer {
    /// From the `[retry]` section.
    pub fn new(config: &RetryConfig) -> Self {
        RetryLayer {
            max_attempts: config.max_attempts.max(1),
            backoff: config.backoff,
            max_backoff: config.max_backoff,
        }
    }

    fn delay(&self, retry: u32) -> Duration {
        self.backoff.saturating_mul(1 << retry.min(16)).min(self.max_backoff)
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry { inner, layer: *self }
    }
}

/// See [`RetryLayer`].
#[derive(Debug, Clone)]
pub struct Retry<S> {
    inner: S,
    layer: RetryLayer,
}

impl<S> Service<Request> for Retry<S>
where
    S: Service<Request, Response = Response, Error = Error> + Clone,
{
    type Response = Response;
    type Error = Error;
    type Future = RetryFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> RetryFuture<S> {
        let retryable = request.idempotent && !request.is_pinned() && self.layer.max_attempts > 1;
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let future = inner.call(request);
        RetryFuture { state: State::Calling { future }, inner, retryable, layer: self.layer, attempt: 1 }
    }
}

/// Response future of [`Retry`].
#[pin_project]
pub struct RetryFuture<S: Service<Request>> {
    #[pin]
    state: State<S::Future>,
    inner: S,
    /// Whether the request may be sent again (an idempotent pooled read).
    retryable: bool,
    layer: RetryLayer,
    attempt: u32,
}

#[pin_project(project = StateProj)]
enum State<F> {
    Calling {
        #[pin]
        future: F,
    },
    /// Rare, so kept small: this future is part of every request's.
    Backoff { sleep: Pin<Box<Sleep>>, request: Option<Box<Request>> },
}

impl<S> Future for RetryFuture<S>
where
    S: Service<Request, Response = Response, Error = Error>,
{
    type Output = Result<Response>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let mut error = match ready!(future.poll(cx)) {
                        Err(e) => e,
                        ok => return Poll::Ready(ok),
                    };
                    // Taken in any case: a failed request does not travel up with its error.
                    let request = error.take_request();
                    let again = *this.retryable
                        && error.kind() == ErrorKind::Connection
                        && *this.attempt < this.layer.max_attempts;
                    let Some(request) = request.filter(|_| again) else { return Poll::Ready(Err(error)) };
                    let labels = QueryLabels::new(&request.labels);
                    metrics::counter!(QUERY_RETRIES, "operation" => labels.operation(), "table" => labels.table())
                        .increment(1);
                    let sleep = Box::pin(tokio::time::sleep(this.layer.delay(*this.attempt - 1)));
                    this.state.set(State::Backoff { sleep, request: Some(Box::new(request)) });
                }
                StateProj::Backoff { sleep, request } => {
                    ready!(sleep.as_mut().poll(cx));
                    ready!(this.inner.poll_ready(cx))?;
                    *this.attempt += 1;
                    let request = request.take().expect("a backoff holds the request to send again");
                    let future = this.inner.call(*request);
                    this.state.set(State::Calling { future });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chakra_service::{Mode, Statement};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use tower::{service_fn, ServiceExt};

    fn layer(max_attempts: u32) -> RetryLayer {
        RetryLayer::new(&RetryConfig {
            max_attempts,
            backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
        })
    }

    /// A service failing with `kind` on the first `failures` calls, counting calls.
    fn flaky(
        failures: u32,
        kind: ErrorKind,
        calls: Arc<AtomicU32>,
    ) -> impl Service<Request, Response = Response, Error = Error, Future = impl Send> + Clone {
        service_fn(move |request: Request| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                match n < failures {
                    // As the executor does: a connection failure hands its request back.
                    true => Err(chakra_service::hand_back(Error::new(kind, "connection reset"), request)),
                    false => Ok(Response::Affected(7)),
                }
            }
        })
    }

    #[tokio::test]
    async fn reads_are_retried_until_they_succeed() {
        let calls = Arc::new(AtomicU32::new(0));
        let svc = layer(3).layer(flaky(2, ErrorKind::Connection, calls.clone()));
        let response = svc.oneshot(Request::new("SELECT 1".into(), Mode::All)).await.unwrap();
        assert_eq!(response.rows_affected().unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn attempts_are_capped() {
        let calls = Arc::new(AtomicU32::new(0));
        let svc = layer(3).layer(flaky(10, ErrorKind::Connection, calls.clone()));
        let mut err = svc.oneshot(Request::new("SELECT 1".into(), Mode::All)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(err.take_request().is_none(), "the failed request travelled up with its error");
    }

    #[tokio::test]
    async fn writes_and_other_errors_are_not_retried() {
        let calls = Arc::new(AtomicU32::new(0));
        let svc = layer(3).layer(flaky(1, ErrorKind::Connection, calls.clone()));
        let write = Request::new(Statement::new("UPDATE t SET a = 1", vec![]), Mode::Execute);
        assert!(svc.oneshot(write).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = Arc::new(AtomicU32::new(0));
        let svc = layer(3).layer(flaky(1, ErrorKind::Query, calls.clone()));
        assert!(svc.oneshot(Request::new("SELECT 1".into(), Mode::All)).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
