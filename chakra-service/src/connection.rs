//! A PostgreSQL connection driven by the task that uses it.
//!
//! tokio-postgres splits a connection in two: a `Client` that sends requests over a
//! channel, and a `Connection` future that moves the bytes and must be polled for anything
//! to happen. The usual setup spawns that future as a task of its own, so every statement
//! crosses two tasks: the caller wakes the connection task to write, and the connection
//! task wakes the caller with the answer. A pooled connection, though, has exactly one
//! user at a time (the request, stream or transaction that leased it), so that user's task
//! can poll the `Connection` itself while it waits for an answer, as sqlx does, and no
//! statement crosses tasks; nor does it wake its own task (see [`Relay`]). Measured with
//! `chakra-bench` on 2-core machines with 2 Tokio workers, against raw tokio-postgres with
//! its connection spawned: a 10k-row fetch went from 1.03x of raw to 0.91–1.00x, and
//! streaming 100k rows from 1.07x to 0.79–0.97x, with one thread sleep per fetch against
//! raw's 23. A sequential point lookup costs 22.6k instructions against raw's 14.1k
//! (callgrind; sqlx 34.0k, diesel-async 31.3k) and about raw's time; its wall time is
//! dominated by waking an idle vCPU (per-get latencies on the measuring VM were bimodal,
//! 30 µs or 100+ µs, for every client alike).
//!
//! Between users nothing polls the socket. What the server sends meanwhile (a notice, or
//! the error and end of file of a terminated backend) waits in the socket's buffer; the
//! pool looks at it before handing the connection out again (see [`Connector`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use deadpool::managed::{Metrics, RecycleError, RecycleResult};
use futures::task::AtomicWaker;
use pin_project::pin_project;
use tokio_postgres::{Client, Socket, Statement};

use crate::config::ConnectSettings;
use crate::tls::TlsStream;

/// The socket side of a connection, which does the reading and writing when polled.
type Io = tokio_postgres::Connection<Socket, TlsStream>;

/// Prepared statements of one connection, by SQL text. Past its capacity the least
/// recently used one is dropped, which closes it on the server: an application sending
/// ever new SQL text (values spliced into it) must not grow every backend without bound.
pub(crate) type Statements = hashlink::LruCache<Box<str>, Statement, foldhash::fast::RandomState>;

/// A client, its socket and its prepared statements.
pub(crate) struct PgConnection {
    // Dropped before `io`, which then says goodbye (see `Goodbye`).
    client: Client,
    io: Goodbye,
    statements: Statements,
    relay: Relay,
}

/// The socket side of a connection; `None` once the connection has ended (closed by the
/// server, or failed): dropping it fails every answer still awaited, and the client's next
/// request at once.
///
/// Dropped after its client, it is polled one last time: with no client left and nothing
/// awaited, that sends the server a `Terminate` and closes the socket, as the connection
/// task of a spawned connection would, instead of leaving the server an unexplained EOF.
struct Goodbye(Option<Io>);

impl Goodbye {
    /// Polls the socket once without arranging a wake-up (see [`poll_io`]).
    fn poll_now(&mut self) -> bool {
        poll_io(&mut self.0, &mut Context::from_waker(Waker::noop()))
    }
}

/// Polls the socket once: it reads what has arrived and writes what is queued. Says
/// whether the connection has ended (the server closed it, or reading failed), dropping
/// the socket then: that is what tells the client, whose requests then fail as
/// "connection closed".
fn poll_io(io: &mut Option<Io>, cx: &mut Context<'_>) -> bool {
    let Some(socket) = io.as_mut() else { return true };
    let ended = Pin::new(socket).poll(cx).is_ready();
    if ended {
        *io = None;
    }
    ended
}

impl Drop for Goodbye {
    fn drop(&mut self) {
        self.poll_now();
    }
}

impl PgConnection {
    /// A connection keeping up to `statements` prepared statements.
    pub(crate) fn new(client: Client, io: Io, statements: usize) -> Self {
        let statements = Statements::with_hasher(statements.max(1), Default::default());
        PgConnection { client, io: Goodbye(Some(io)), statements, relay: Relay::new() }
    }

    /// Opens a connection, over TLS as `settings`' `sslmode` says.
    pub(crate) async fn connect(settings: &ConnectSettings) -> Result<Self, tokio_postgres::Error> {
        let (client, io) = match settings.pg.connect(settings.tls.clone()).await {
            // `sslmode=allow`, turned down without TLS: the server answered (an unreachable
            // one would not), so ask again with it, as libpq does.
            Err(e) if settings.retry_with_tls && e.as_db_error().is_some() => {
                let mut pg = settings.pg.clone();
                pg.ssl_mode(tokio_postgres::config::SslMode::Require);
                pg.connect(settings.tls.clone()).await?
            }
            connected => connected?,
        };
        Ok(PgConnection::new(client, io, settings.statement_cache_capacity))
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The client, the statement cache, and the driver that must wrap every future using
    /// them, borrowed apart so that one future can hold all three.
    pub(crate) fn parts(&mut self) -> (&Client, &mut Statements, Driver<'_>) {
        (&self.client, &mut self.statements, Driver { io: &mut self.io.0, relay: &self.relay })
    }

    /// Drops the prepared statement for `sql`, so the next use prepares it afresh.
    pub(crate) fn forget_statement(&mut self, sql: &str) {
        self.statements.remove(sql);
    }

    /// Whether the connection has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.io.0.is_none() || self.client.is_closed()
    }

    /// Takes in what the server sent while nobody was polling, without waiting; `false` if
    /// the connection turns out to have ended.
    pub(crate) fn check(&mut self) -> bool {
        self.io.poll_now();
        !self.is_closed()
    }

    /// Polls a stream's next row the way [`Driven`] polls its future.
    ///
    /// The socket hands over rows thousands at a time, so the next one is nearly always
    /// waiting in the client's channel already: it is taken at once, without marking the
    /// connection as polled, and only a stream that must wait goes the whole way round.
    /// Nothing else polls the connection meanwhile, so no wake can come from there.
    pub(crate) fn poll_next_row<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut next: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        if let Poll::Ready(row) = next(&mut Context::from_waker(&self.relay.waker)) {
            return Poll::Ready(row);
        }
        poll_driven(&mut self.io.0, &self.relay, cx, next)
    }

    /// Runs `sql` (one or more statements, no parameters).
    pub(crate) async fn batch_execute(&mut self, sql: &str) -> Result<(), tokio_postgres::Error> {
        let (client, _, driver) = self.parts();
        driver.drive(client.batch_execute(sql)).await
    }
}

/// The right to poll a connection's socket, for the one future that uses it.
pub(crate) struct Driver<'a> {
    io: &'a mut Option<Io>,
    relay: &'a Relay,
}

impl<'a> Driver<'a> {
    /// `work`, with the connection polled whenever `work` waits.
    pub(crate) fn drive<F: Future>(self, work: F) -> Driven<'a, F> {
        Driven { work, io: self.io, relay: self.relay }
    }
}

/// A future using a connection, together with the connection's socket (see the module docs).
#[pin_project]
pub(crate) struct Driven<'a, F> {
    #[pin]
    work: F,
    io: &'a mut Option<Io>,
    relay: &'a Relay,
}

impl<F: Future> Future for Driven<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mut work = this.work;
        poll_driven(this.io, this.relay, cx, |cx| work.as_mut().poll(cx))
    }
}

/// How many times one poll goes round when its own polling keeps waking it (each round
/// moves an answer along); then it lets the scheduler run other tasks first.
const ROUNDS: usize = 16;

/// Polls `work`; if it has to wait, polls the socket (which writes what `work` sent and
/// hands over what the server answered), then `work` once more, going round again while
/// that polling woke the task. The socket keeps the relay's waker, so the task wakes when
/// the server sends more.
fn poll_driven<T>(
    io: &mut Option<Io>,
    relay: &Relay,
    cx: &mut Context<'_>,
    mut work: impl FnMut(&mut Context<'_>) -> Poll<T>,
) -> Poll<T> {
    let polling = relay.polling(cx.waker());
    let mut cx = Context::from_waker(&relay.waker);
    for _ in 0..ROUNDS {
        if let Poll::Ready(out) = work(&mut cx) {
            return Poll::Ready(out);
        }
        // With the socket gone the client fails every request and answer at once, so
        // `work` is not left waiting on it.
        if io.is_none() {
            return Poll::Pending;
        }
        poll_io(io, &mut cx);
        if let Poll::Ready(out) = work(&mut cx) {
            return Poll::Ready(out);
        }
        if polling.end_unless_woken() {
            return Poll::Pending;
        }
    }
    // Still moving (or Tokio's budget for this task is spent): queue the task again.
    drop(polling);
    relay.shared.task.wake();
    Poll::Pending
}

/// The waker a connection's socket and its client's channels are polled with.
///
/// Polling the socket hands the server's answers to the client's channels, which wake the
/// future waiting on them: the task doing the polling. A Tokio task woken while it runs is
/// queued again as if it had yielded, and another worker is woken to take it. With the
/// task's own waker that cost every statement a futex wake, an extra `epoll_wait` and a
/// spurious poll (`strace -c` over 2,000 sequential gets on 2 workers: 1.2 futex calls
/// per get, against none for raw tokio-postgres), and moved tasks between threads. Wakes
/// arriving while the task polls the connection are therefore only noted, and that poll
/// goes round again; wakes from outside (the socket turning readable) wake the task.
struct Relay {
    shared: Arc<RelayState>,
    /// `shared` as a waker, made once.
    waker: Waker,
}

struct RelayState {
    /// The task that polled the connection last.
    task: AtomicWaker,
    state: AtomicU8,
}

/// Nobody is polling the connection: a wake goes to the task.
const IDLE: u8 = 0;
/// The task is polling the connection: a wake is noted.
const POLLING: u8 = 1;
/// The task is polling the connection and was woken meanwhile.
const WOKEN: u8 = 2;

impl Relay {
    fn new() -> Self {
        let shared = Arc::new(RelayState { task: AtomicWaker::new(), state: AtomicU8::new(IDLE) });
        Relay { waker: Waker::from(shared.clone()), shared }
    }

    /// Marks the connection as being polled by the task `waker` wakes, until dropped.
    fn polling(&self, waker: &Waker) -> Polling<'_> {
        self.shared.task.register(waker);
        self.shared.state.store(POLLING, Ordering::Release);
        Polling(&self.shared)
    }
}

impl Wake for RelayState {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Err(IDLE) = self.state.compare_exchange(POLLING, WOKEN, Ordering::AcqRel, Ordering::Acquire) {
            self.task.wake();
        }
    }
}

/// A poll of the connection in progress (see [`Relay`]).
struct Polling<'a>(&'a RelayState);

impl Polling<'_> {
    /// Ends the poll (later wakes go to the task) and says so, unless the task was woken
    /// meanwhile: then the poll goes on, and must go round again.
    fn end_unless_woken(&self) -> bool {
        match self.0.state.compare_exchange(POLLING, IDLE, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => true,
            Err(_) => {
                self.0.state.store(POLLING, Ordering::Release);
                false
            }
        }
    }
}

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        // Reached with the work done (the task runs on, so a wake noted now is moot), after
        // `end_unless_woken`, or before waking the task itself.
        self.0.state.store(IDLE, Ordering::Release);
    }
}

/// Opens and vets the pool's connections: a connection goes out again only if what the
/// server sent while it sat idle does not show it ended, and it is younger than its
/// lifetime (`pool.max_lifetime`, less a jitter of up to 5%).
pub(crate) struct Connector {
    settings: ConnectSettings,
    max_lifetime: Option<Duration>,
}

impl Connector {
    pub(crate) fn new(settings: ConnectSettings, max_lifetime: Option<Duration>) -> Self {
        Connector { settings, max_lifetime }
    }
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").field("config", &self.settings.pg).finish_non_exhaustive()
    }
}

impl deadpool::managed::Manager for Connector {
    // Boxed: deadpool moves a pooled object about ten times per checkout and return, and
    // inline a connection is hundreds of bytes (tokio-postgres's framing state and ours).
    type Type = Box<PgConnection>;
    type Error = tokio_postgres::Error;

    // Boxed: deadpool keeps this future inside every checkout's (it may have to connect),
    // and unboxed it is 2 KB of the 6.8 KB that each checkout built and moved, though
    // connecting is rare.
    fn create(&self) -> impl Future<Output = Result<Box<PgConnection>, tokio_postgres::Error>> + Send {
        Box::pin(async { PgConnection::connect(&self.settings).await.map(Box::new) })
    }

    async fn recycle(&self, conn: &mut Box<PgConnection>, metrics: &Metrics) -> RecycleResult<tokio_postgres::Error> {
        if expired(metrics, self.max_lifetime) {
            // Most are closed idle by the pool's housekeeping; this catches the busy ones.
            return Err(RecycleError::message("the connection reached pool.max_lifetime"));
        }
        match conn.check() {
            true => Ok(()),
            false => Err(RecycleError::message("the connection was closed")),
        }
    }
}

/// Whether a pooled connection has outlived `pool.max_lifetime` (`None`: never).
pub(crate) fn expired(metrics: &Metrics, max_lifetime: Option<Duration>) -> bool {
    max_lifetime.is_some_and(|max| metrics.age() >= lifetime(metrics.created, max))
}

/// A connection's own lifetime: `max` less up to 5% (HikariCP's practice), fixed by when
/// it was opened. The connections a pool opens together at start would otherwise all
/// expire together, and the pool reconnect all of them at once every `max_lifetime`.
fn lifetime(created: std::time::Instant, max: Duration) -> Duration {
    use std::hash::BuildHasher;
    // The same opening instant always hashes alike (a fixed seed): a steady lifetime. It
    // is hashed at every checkout, so with a fast hash.
    let spread = foldhash::fast::FixedState::default().hash_one(created) % 1000;
    max.saturating_sub((max / 20_000).saturating_mul(u32::try_from(spread).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn lifetimes_spread_over_the_last_twentieth_and_stay_put() {
        let max = Duration::from_secs(1800);
        let start = Instant::now();
        // Connections opened a few microseconds apart, as a pool opens its minimum.
        let lifetimes: Vec<Duration> = (0..50).map(|i| lifetime(start + Duration::from_micros(i * 7), max)).collect();
        assert!(lifetimes.iter().all(|l| *l <= max && *l > max - max / 20), "{lifetimes:?}");
        let (shortest, longest) = (lifetimes.iter().min().unwrap(), lifetimes.iter().max().unwrap());
        assert!(longest.saturating_sub(*shortest) > max / 40, "spread over the jitter: {shortest:?}..{longest:?}");
        assert_eq!(lifetime(start, max), lifetimes[0], "one connection, one lifetime");
        assert!(lifetime(start, Duration::MAX) > Duration::MAX / 2, "no overflow");
    }
}
