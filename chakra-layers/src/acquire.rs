//! `acquire`: gives each request a connection — a pooled one for the request alone, or
//! the session's or transaction's pinned one — and hands it to the executor.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use chakra_service::{hand_back, ConnectionPool, Error, ErrorKind, Lease, Leased, Request, Response, Result, Route};
use pin_project::pin_project;
use tower_layer::Layer;
use tower_service::Service;

/// Leases connections from `pool` (waiting at most `pool.acquire_timeout`, then
/// `PoolTimeout`); pinned requests wait for their own connection instead.
#[derive(Clone)]
pub struct AcquireLayer {
    pool: Option<ConnectionPool>,
}

impl AcquireLayer {
    /// Leases from `pool`.
    pub fn new(pool: ConnectionPool) -> Self {
        AcquireLayer { pool: Some(pool) }
    }

    /// Serves pinned requests only (a direct connection); pooled ones are a usage error.
    pub fn pinned_only() -> Self {
        AcquireLayer { pool: None }
    }
}

impl<S> Layer<S> for AcquireLayer {
    type Service = Acquire<S>;

    fn layer(&self, inner: S) -> Acquire<S> {
        Acquire { inner, pool: self.pool.clone() }
    }
}

/// See [`AcquireLayer`].
#[derive(Clone)]
pub struct Acquire<S> {
    inner: S,
    pool: Option<ConnectionPool>,
}

type LeaseFuture = Pin<Box<dyn Future<Output = Result<Lease>> + Send>>;

impl<S> Service<Request> for Acquire<S>
where
    S: Service<Leased, Response = Response, Error = Error> + Clone,
{
    type Response = Response;
    type Error = Error;
    type Future = AcquireFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> AcquireFuture<S> {
        let lease: LeaseFuture = match (&request.route, &self.pool) {
            (Route::Pinned(conn), _) => {
                let conn = conn.clone();
                Box::pin(async move { conn.lock().await })
            }
            (Route::Pool, Some(pool)) => {
                let pool = pool.clone();
                Box::pin(async move { pool.acquire().await.map(Lease::Owned) })
            }
            (Route::Pool, None) => {
                let e = Error::new(ErrorKind::Usage, "this stack has no pool: only pinned requests can run on it");
                Box::pin(async move { Err(e) })
            }
        };
        // The clone that was driven to readiness serves this call (tower's usual dance).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        AcquireFuture { state: State::Leasing { lease, inner: Some(inner), request: Some(request) } }
    }
}

/// Response future of [`Acquire`]: first the lease, then the inner call.
#[pin_project]
pub struct AcquireFuture<S: Service<Leased>> {
    #[pin]
    state: State<S>,
}

// The request waits here for its connection, once per request: boxing it to even out the
// variants would cost an allocation per request to save a memcpy.
#[allow(clippy::large_enum_variant)]
#[pin_project(project = StateProj)]
enum State<S: Service<Leased>> {
    Leasing {
        lease: LeaseFuture,
        inner: Option<S>,
        request: Option<Request>,
    },
    Running {
        #[pin]
        future: S::Future,
    },
}

impl<S> Future for AcquireFuture<S>
where
    S: Service<Leased, Response = Response, Error = Error>,
{
    type Output = Result<Response>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Leasing { lease, inner, request } => {
                    let lease = ready!(lease.as_mut().poll(cx));
                    let (Some(mut inner), Some(request)) = (inner.take(), request.take()) else {
                        panic!("AcquireFuture polled after completion");
                    };
                    let lease = match lease {
                        Ok(lease) => lease,
                        Err(e) => return Poll::Ready(Err(hand_back(e, request))),
                    };
                    let future = inner.call(Leased { request, lease });
                    state.set(State::Running { future });
                }
                StateProj::Running { future } => return future.poll(cx),
            }
        }
    }
}
