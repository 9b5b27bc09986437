//! `timeout`: a per-statement deadline that cancels the statement *on the server*.
//!
//! Dropping a future only stops waiting; the server would go on running the statement and
//! the connection would stay busy. On expiry this layer sends PostgreSQL a cancel request
//! for the running statement, then keeps driving the request for a short grace period so
//! the statement ends with `57014 query_canceled` and the connection comes back clean.
//! If the statement finished anyway the executor discards the connection, since the cancel
//! may still be on its way. Waiting for a connection counts toward the deadline too.
//!
//! A stream's statement runs until its last row, so the deadline goes on bounding it after
//! the stream is handed over — but only while the consumer is *waiting* for rows: the
//! server's time to produce the first row and every later wait count, the consumer's own
//! work between rows does not. A slow consumer of a fast query is never cut off; a query
//! that keeps its reader waiting longer than the deadline in all is cancelled like any other.
//!
//! The timer is made only when a request has to wait, and not while the request waits on
//! a statement whose deadline comes first (a lookup merged into its leader's by `batch`,
//! see [`CancelSlot`]): of 2,000 concurrent gets, a handful of statements are timed, not
//! 2,000 lookups, and each cancelled statement is every covered lookup's timeout.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use chakra_service::{CancelSlot, Error, ErrorKind, GuardAction, Request, Response, Result, SqlState, StreamGuard};
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
                deadline: Deadline { limit: Duration::ZERO, grace: self.layer.grace },
                cancelled: false,
            };
        };
        let slot = CancelSlot::with_deadline((Instant::now() + limit).into_std());
        request.cancel = Some(slot.clone());
        TimeoutFuture {
            inner: self.inner.call(request),
            sleep: None,
            slot: Some(slot),
            deadline: Deadline { limit, grace: self.layer.grace },
            cancelled: false,
        }
    }
}

/// Response future of [`Timeout`].
#[pin_project]
pub struct TimeoutFuture<F> {
    #[pin]
    inner: F,
    /// The timer for the slot's deadline, made when first needed: a request answered at once, or covered by
    /// another's deadline while it waits, never makes one.
    #[pin]
    sleep: Option<Sleep>,
    /// The request's cancel slot, which holds its deadline; `None` without one.
    slot: Option<CancelSlot>,
    deadline: Deadline,
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
        loop {
            if let Poll::Ready(output) = this.inner.as_mut().poll(cx) {
                return Poll::Ready(match output {
                    Err(e) => {
                        let covered = this.slot.as_ref().is_some_and(CancelSlot::was_cancelled_with_cover);
                        Err(this.deadline.failed(*this.cancelled || covered, e))
                    }
                    // The server may answer the statement's start only with its first rows,
                    // or with the cancellation itself: the stream goes on where this left off.
                    Ok(Response::Stream(mut rows)) => {
                        // Due next: the deadline, or the end of the grace period once cancelled.
                        let next =
                            this.sleep.as_ref().as_pin_ref().map(|sleep| sleep.deadline()).or_else(|| due(this.slot));
                        if let (Some(next), Some(slot)) = (next, this.slot.take()) {
                            rows.guard(StreamDeadline::new(slot, next, *this.deadline, *this.cancelled));
                        }
                        Ok(Response::Stream(rows))
                    }
                    other => other,
                });
            }
            let Some(due) = due(this.slot) else { return Poll::Pending };
            // Waiting on a statement whose deadline comes first (a batch member behind its
            // leader): that statement's timer covers this one, which would only cost a
            // timer per lookup. Once on its own again it arms its timer here.
            if this.slot.as_ref().is_some_and(CancelSlot::is_covered) {
                return Poll::Pending;
            }
            if this.sleep.is_none() {
                this.sleep.set(Some(tokio::time::sleep_until(due)));
            }
            let mut sleep = this.sleep.as_mut().as_pin_mut().expect("the timer was just made");
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // Given up on (the executor's connection is dropped in flight, so discarded),
            // or round again: polled now, the executor sends the server the cancel.
            this.deadline.expire(this.cancelled, this.slot.as_ref(), sleep)?;
        }
    }
}

/// When the request with `slot` is given up on.
fn due(slot: &Option<CancelSlot>) -> Option<Instant> {
    slot.as_ref().and_then(CancelSlot::deadline).map(Instant::from_std)
}

/// A statement's time limit, and how long a cancelled one may take to say so.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    limit: Duration,
    grace: Duration,
}

impl Deadline {
    /// The timer fired. The first time, asks for the statement to be cancelled and sets
    /// the timer for the grace period; after that, or with no statement started yet (still
    /// waiting for a connection: nothing to cancel), the statement is given up on.
    fn expire(&self, cancelled: &mut bool, slot: Option<&CancelSlot>, sleep: Pin<&mut Sleep>) -> Result<()> {
        if *cancelled || !slot.is_some_and(CancelSlot::cancel) {
            return Err(expired(self.limit, false));
        }
        *cancelled = true;
        sleep.reset(Instant::now() + self.grace);
        Ok(())
    }

    /// What a failure is reported as: the cancellation this deadline asked for is a timeout.
    fn failed(&self, cancelled: bool, error: Error) -> Error {
        match cancelled && error.code() == Some(&SqlState::QUERY_CANCELED) {
            true => expired(self.limit, true),
            false => error,
        }
    }
}

/// The deadline of a stream's statement, watching the stream's waits for rows. `left` is
/// the budget of waiting still allowed; it shrinks only while the consumer waits. The
/// timer is lazy: armed for the earliest possible expiry and, when it fires early because
/// the consumer spent time elsewhere, re-armed for the true one, so a row costs nothing.
#[pin_project]
struct StreamDeadline {
    #[pin]
    sleep: Sleep,
    slot: CancelSlot,
    left: Duration,
    /// When the current wait for rows began.
    waiting_since: Option<Instant>,
    deadline: Deadline,
    cancelled: bool,
}

impl StreamDeadline {
    /// `due` is when the timer fires next: the end of the budget, or of the grace period
    /// once `cancelled`.
    fn new(slot: CancelSlot, due: Instant, deadline: Deadline, cancelled: bool) -> Self {
        StreamDeadline {
            sleep: tokio::time::sleep_until(due),
            slot,
            left: due.saturating_duration_since(Instant::now()),
            waiting_since: None,
            deadline,
            cancelled,
        }
    }
}

impl StreamGuard for StreamDeadline {
    fn poll_wait(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<GuardAction> {
        let mut this = self.project();
        let since = *this.waiting_since.get_or_insert_with(Instant::now);
        loop {
            ready!(this.sleep.as_mut().poll(cx));
            let due = since + *this.left;
            if !*this.cancelled && Instant::now() < due {
                // Fired early: part of the budget went on the consumer's own work.
                this.sleep.as_mut().reset(due);
                continue;
            }
            // Given up on (the stream drops its rows, and the connection in flight is
            // discarded), or polled again now: the rows' connection sends the cancel.
            return Poll::Ready(match this.deadline.expire(this.cancelled, Some(this.slot), this.sleep.as_mut()) {
                Ok(()) => GuardAction::PollAgain,
                Err(e) => GuardAction::End(e),
            });
        }
    }

    fn resumed(self: Pin<&mut Self>) {
        let this = self.project();
        if let Some(since) = this.waiting_since.take() {
            *this.left = this.left.saturating_sub(since.elapsed());
        }
    }

    fn failed(self: Pin<&mut Self>, error: Error) -> Error {
        self.deadline.failed(self.cancelled, error)
    }
}

fn expired(limit: Duration, confirmed: bool) -> Error {
    let how = if confirmed { "was cancelled on the server" } else { "was abandoned" };
    Error::new(ErrorKind::Timeout, format!("statement exceeded its {limit:?} timeout (query.timeout) and {how}"))
}
