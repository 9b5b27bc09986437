//! `timeout`: a per-statement deadline that cancels the statement *on the server*.
//!
//! Dropping a future only stops waiting; the server would go on running the statement and
//! the connection would stay busy. On expiry this layer sends PostgreSQL a cancel request
//! for the running statement, then keeps driving the request for a short grace period so
//! the statement ends with `57014 query_canceled` and the connection comes back clean.
//! If the statement finished anyway the executor discards the connection, since the cancel
//! may still be on its way. Waiting for a connection counts toward the deadline too.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use chakra_service::{CancelSlot, Error, ErrorKind, Request, Response, Result, SqlState};
use pin_project::pin_project;
use tokio::time::{Instant, Sleep};
use tower_layer::Layer;
use tower_service::Service;

/// How long a cancelled statement may take to report its cancellation before the
/// connection is given up on.
const DEFAULT_GRACE: Duration = Duration::from_secs(2);

/// Applies `query.timeout` (or [`Request::timeout`]) to every request.
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    default: Option<Duration>,
    grace: Duration,
}

impl TimeoutLayer {
    /// Requests without their own deadline get `default`; `None` or zero means none.
    pub fn new(default: Option<Duration>) -> Self {
        TimeoutLayer { default: default.filter(|d| !d.is_zero()), grace: DEFAULT_GRACE }
    }

    /// How long to wait for a cancelled statement to end before dropping it.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout { inner, layer: *self }
    }
}

/// See [`TimeoutLayer`].
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    layer: TimeoutLayer,
}

impl<S> Service<Request> for Timeout<S>
where
    S: Service<Request, Response = Response, Error = Error>,
{
    type Response = Response;
    type Error = Error;
    type Future = TimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> TimeoutFuture<S::Future> {
        let limit = request.timeout.filter(|d| !d.is_zero()).or(self.layer.default);
        let Some(limit) = limit else {
            return TimeoutFuture {
                inner: self.inner.call(request),
                sleep: None,
                slot: None,
                limit: Duration::ZERO,
                grace: self.layer.grace,
                cancelled: false,
            };
        };
        let slot = CancelSlot::default();
        request.cancel = Some(slot.clone());
        TimeoutFuture {
            inner: self.inner.call(request),
            sleep: Some(tokio::time::sleep(limit)),
            slot: Some(slot),
            limit,
            grace: self.layer.grace,
            cancelled: false,
        }
    }
}

/// Response future of [`Timeout`].
#[pin_project]
pub struct TimeoutFuture<F> {
    #[pin]
    inner: F,
    #[pin]
    sleep: Option<Sleep>,
    slot: Option<CancelSlot>,
    limit: Duration,
    grace: Duration,
    /// The deadline passed and a cancel request was sent; now within the grace period.
    cancelled: bool,
}

impl<F> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<Response>>,
{
    type Output = Result<Response>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(output) = this.inner.poll(cx) {
            return Poll::Ready(match output {
                Err(e) if *this.cancelled && e.code() == Some(&SqlState::QUERY_CANCELED) => {
                    Err(expired(*this.limit, true))
                }
                other => other,
            });
        }
        let Some(mut sleep) = this.sleep.as_mut().as_pin_mut() else { return Poll::Pending };
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if *this.cancelled {
            // The server did not confirm the cancel in time: give up on the statement. The
            // executor's connection is dropped in flight, so it is discarded, not reused.
            return Poll::Ready(Err(expired(*this.limit, false)));
        }
        let sent = this.slot.as_ref().is_some_and(CancelSlot::cancel);
        if !sent {
            // No statement started yet (still waiting for a connection): nothing to cancel.
            return Poll::Ready(Err(expired(*this.limit, false)));
        }
        *this.cancelled = true;
        sleep.as_mut().reset(Instant::now() + *this.grace);
        match sleep.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(expired(*this.limit, false))),
            Poll::Pending => Poll::Pending,
        }
    }
}

fn expired(limit: Duration, confirmed: bool) -> Error {
    let how = if confirmed { "was cancelled on the server" } else { "was abandoned" };
    Error::new(ErrorKind::Timeout, format!("statement exceeded its {limit:?} timeout (query.timeout) and {how}"))
}
