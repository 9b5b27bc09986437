//! `Pool`, the handle users hold: a connection pool plus the layer stack every request
//! goes through; and `Session`, a connection pinned for a sequence of requests.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::task::{Context, Poll};
use std::time::Duration;

use chakra_service::{
    Config, ConnectionPool, Error, Executor, PinnedConn, PoolStatus, Request, Response, Result, ServerInfo,
};
use futures::future::Either;
use opentelemetry::global::BoxedTracer;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};
use tower_layer::Layer;
use tower_service::Service;

use crate::acquire::{Acquire, AcquireLayer};
use crate::batch::{Batch, BatchLayer, DEFAULT_MAX_BATCH};
use crate::metrics::{Metrics, MetricsLayer};
use crate::queryable::Queryable;
use crate::retry::{Retry, RetryLayer};
use crate::timeout::{Timeout, TimeoutLayer};
use crate::trace::{Trace, TraceLayer};
use crate::transaction::{Transaction, TransactionOptions};

/// A type-erased stack: what user layers wrap (see [`PoolBuilder::layer`]).
pub type BoxService = BoxCloneSyncService<Request, Response, Error>;

type UserLayer = Box<dyn FnOnce(BoxService) -> BoxService + Send>;

/// The built-in layers over the executor, as one concrete type.
type Builtin = Trace<Metrics<Timeout<Retry<Batch<Acquire<Executor>>>>>>;

/// What every request is sent to: the built-in stack as is — cloning it per request is a
/// few reference-count increments, calling it allocates nothing extra — or, once users add
/// layers, the type-erased stack they wrap.
#[derive(Clone)]
pub(crate) enum StackService {
    Builtin(Builtin),
    Custom(BoxService),
}

impl Service<Request> for StackService {
    type Response = Response;
    type Error = Error;
    type Future = Either<<Builtin as Service<Request>>::Future, <BoxService as Service<Request>>::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        match self {
            StackService::Builtin(s) => s.poll_ready(cx),
            StackService::Custom(s) => s.poll_ready(cx),
        }
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self {
            StackService::Builtin(s) => Either::Left(s.call(request)),
            StackService::Custom(s) => Either::Right(s.call(request)),
        }
    }
}

/// A pool of connections and the stack in front of them; cheap to clone and share
/// (it is `Clone + Send + Sync`, so it works as Axum state).
///
/// ```no_run
/// # async fn demo() -> chakra_service::Result<()> {
/// use chakra_layers::{Pool, Queryable};
/// let pool = Pool::connect("postgresql://localhost/app").await?;
/// let row = pool.query_one("SELECT $1::int8 + 1", vec![41_i64.into()]).await?;
/// assert_eq!(row.get::<_, i64>(0), 42);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Pool {
    connections: ConnectionPool,
    service: StackService,
}

impl Pool {
    /// Connects with every setting at its default but the URL.
    pub async fn connect(url: &str) -> Result<Pool> {
        Pool::builder().url(url).build().await
    }

    /// A builder starting from the defaults.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::from_config(Config::default())
    }

    /// The connection pool under the stack.
    pub fn connections(&self) -> &ConnectionPool {
        &self.connections
    }

    /// Open, idle, in-use connections and waiting requests.
    pub fn status(&self) -> PoolStatus {
        self.connections.status()
    }

    /// Starts a transaction on a connection of its own.
    pub async fn begin(&self) -> Result<Transaction> {
        self.begin_with(TransactionOptions::default()).await
    }

    /// Starts a transaction with an isolation level or access mode.
    pub async fn begin_with(&self, options: TransactionOptions) -> Result<Transaction> {
        let conn = PinnedConn::new(self.connections.acquire().await?);
        Transaction::begin(self.service.clone(), conn, options).await
    }

    /// Runs `body` in a transaction: committed when it returns `Ok`, rolled back when it
    /// returns `Err` (or panics, or is dropped).
    ///
    /// ```no_run
    /// # async fn demo(pool: chakra_layers::Pool) -> chakra_service::Result<()> {
    /// use chakra_layers::Queryable;
    /// let moved = pool
    ///     .transaction(|tx| async move {
    ///         tx.execute("UPDATE accounts SET balance = balance - 10 WHERE id = 1", vec![]).await?;
    ///         tx.execute("UPDATE accounts SET balance = balance + 10 WHERE id = 2", vec![]).await
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn transaction<T, F, Fut>(&self, body: F) -> Result<T>
    where
        F: FnMut(Transaction) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.transaction_with(TransactionOptions::default(), body).await
    }

    /// Like [`transaction`](Self::transaction), with options; with
    /// [`TransactionOptions::retries`], the whole body runs again (on a fresh transaction)
    /// after a serialization failure or deadlock, up to that many times.
    pub async fn transaction_with<T, F, Fut>(&self, options: TransactionOptions, mut body: F) -> Result<T>
    where
        F: FnMut(Transaction) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        loop {
            let tx = self.begin_with(options).await?;
            let outcome = match body(tx.clone()).await {
                Ok(value) => tx.commit().await.map(|()| value),
                Err(e) => {
                    // The body's error is the one worth reporting, whatever rollback says.
                    let _ = tx.rollback().await;
                    Err(e)
                }
            };
            match outcome {
                Err(e) if e.is_transaction_conflict() && attempt < options.retries => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(5 << attempt.min(6))).await;
                }
                other => return other,
            }
        }
    }

    /// Pins one connection for a sequence of requests (autocommit unless a transaction is
    /// begun on it); the connection returns to the pool when the last handle is dropped.
    pub async fn session(&self) -> Result<Session> {
        let conn = PinnedConn::new(self.connections.acquire().await?);
        Ok(Session { service: self.service.clone(), conn })
    }

    /// Closes the pool: idle connections now, busy ones as they come back.
    pub fn close(&self) {
        self.connections.close();
    }
}

impl Queryable for Pool {
    fn run(&self, request: Request) -> impl Future<Output = Result<Response>> + Send {
        // One allocation for the whole stack's state (about a kilobyte): callers then move a
        // pointer, not the state, as the future travels into `join_all`, tasks and the like.
        Box::pin(self.service.clone().oneshot(request))
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool").field("status", &self.status()).finish()
    }
}

/// Builds a [`Pool`]: configuration, the built-in layers' settings, and layers of your own.
pub struct PoolBuilder {
    config: Result<Config>,
    tracer: Option<BoxedTracer>,
    max_batch: usize,
    layers: Vec<UserLayer>,
}

impl PoolBuilder {
    /// Starts from `config`.
    pub fn from_config(config: Config) -> Self {
        PoolBuilder { config: Ok(config), tracer: None, max_batch: DEFAULT_MAX_BATCH, layers: Vec::new() }
    }

    /// Starts from `chakra.toml` in the working directory and the `CHAKRA_*` environment
    /// (see [`Config::load`]).
    pub fn from_env() -> Self {
        let mut builder = PoolBuilder::from_config(Config::default());
        builder.config = Config::load();
        builder
    }

    /// Starts from a TOML file, with the environment's overrides applied.
    pub fn from_file(path: impl AsRef<Path>) -> Self {
        let mut builder = PoolBuilder::from_config(Config::default());
        builder.config = Config::from_file(path).and_then(|mut c| c.apply_env(|v| std::env::var(v).ok()).map(|()| c));
        builder
    }

    fn set(mut self, apply: impl FnOnce(&mut Config)) -> Self {
        if let Ok(config) = &mut self.config {
            apply(config);
        }
        self
    }

    pub fn url(self, url: &str) -> Self {
        let url = url.to_owned();
        self.set(|c| c.database.url = Some(url))
    }

    pub fn min_connections(self, n: usize) -> Self {
        self.set(|c| c.pool.min_connections = n)
    }

    pub fn max_connections(self, n: usize) -> Self {
        self.set(|c| c.pool.max_connections = n)
    }

    pub fn acquire_timeout(self, d: Duration) -> Self {
        self.set(|c| c.pool.acquire_timeout = d)
    }

    pub fn idle_timeout(self, d: Duration) -> Self {
        self.set(|c| c.pool.idle_timeout = d)
    }

    /// Connections older than this are replaced; zero keeps them for ever.
    pub fn max_lifetime(self, d: Duration) -> Self {
        self.set(|c| c.pool.max_lifetime = d)
    }

    /// The time zone connections open with (see
    /// [`DatabaseConfig::time_zone`](chakra_service::DatabaseConfig::time_zone)).
    pub fn time_zone(self, zone: &str) -> Self {
        let zone = zone.to_owned();
        self.set(|c| c.database.time_zone = Some(zone))
    }

    /// Per-statement deadline; zero turns it off.
    pub fn query_timeout(self, d: Duration) -> Self {
        self.set(|c| c.query.timeout = d)
    }

    /// Attempts for idempotent reads on broken connections, the first included.
    pub fn retry_attempts(self, n: u32) -> Self {
        self.set(|c| c.retry.max_attempts = n)
    }

    /// Turns prepared-statement caching on or off (off for PgBouncer transaction mode).
    pub fn statement_cache(self, on: bool) -> Self {
        self.set(|c| c.database.statement_cache = on)
    }

    /// Prepared statements kept per connection (default 100); past it the least recently
    /// used is closed on the server.
    pub fn statement_cache_capacity(self, n: usize) -> Self {
        self.set(|c| c.database.statement_cache_capacity = n)
    }

    /// The most point lookups the batch layer merges into one query.
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n;
        self
    }

    /// Spans go to `tracer` instead of the global tracer provider's.
    pub fn tracer(mut self, tracer: BoxedTracer) -> Self {
        self.tracer = Some(tracer);
        self
    }

    /// Adds a layer of your own around the built-in stack (outermost last added): it sees
    /// every request before tracing, metrics and the rest, so a cache in front of the
    /// database can answer without a span or a connection.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<BoxService> + Send + 'static,
        L::Service: Service<Request, Response = Response, Error = Error> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        self.layers.push(Box::new(move |inner| BoxCloneSyncService::new(layer.layer(inner))));
        self
    }

    /// Opens the pool (and its `min_connections`) and assembles the stack.
    pub async fn build(self) -> Result<Pool> {
        let config = self.config?;
        let connections = ConnectionPool::open(config.clone()).await?;
        let acquire = AcquireLayer::new(connections.clone());
        let stack = Stack {
            config: &config,
            server: connections.server().clone(),
            tracer: self.tracer,
            max_batch: self.max_batch,
        };
        let builtin = stack.build(acquire);
        let service = match self.layers.is_empty() {
            true => StackService::Builtin(builtin),
            false => StackService::Custom(
                self.layers.into_iter().fold(BoxCloneSyncService::new(builtin), |inner, wrap| wrap(inner)),
            ),
        };
        Ok(Pool { connections, service })
    }
}

/// The built-in layers, in their documented order.
struct Stack<'a> {
    config: &'a Config,
    server: ServerInfo,
    tracer: Option<BoxedTracer>,
    max_batch: usize,
}

impl Stack<'_> {
    fn build(self, acquire: AcquireLayer) -> Builtin {
        let trace = match self.tracer {
            Some(tracer) => TraceLayer::with_tracer(self.server, tracer),
            None => TraceLayer::new(self.server),
        };
        ServiceBuilder::new()
            .layer(trace)
            .layer(MetricsLayer::new())
            .layer(TimeoutLayer::new(Some(self.config.query.timeout)))
            .layer(RetryLayer::new(&self.config.retry))
            .layer(BatchLayer::new(self.max_batch))
            .layer(acquire)
            .service(Executor)
    }
}

/// One connection for a sequence of requests, in autocommit mode unless a transaction is
/// begun on it. Clones share the connection; requests on it run one at a time.
///
/// Dropping the last handle returns the connection to the pool; if a transaction begun on
/// it is still open, it is rolled back first.
#[derive(Clone)]
pub struct Session {
    service: StackService,
    conn: PinnedConn,
}

impl Session {
    /// Opens a connection of its own, outside any pool, with the same layer stack (the
    /// spec's `chakra.connect(url)`); it is closed when the last handle is dropped.
    pub async fn connect(config: &Config) -> Result<Session> {
        config.validate()?;
        let (conn, server) = ConnectionPool::connect_direct(config).await?;
        let stack = Stack { config, server, tracer: None, max_batch: DEFAULT_MAX_BATCH };
        let service = StackService::Builtin(stack.build(AcquireLayer::pinned_only()));
        Ok(Session { service, conn: PinnedConn::new(conn) })
    }

    /// Begins a transaction on this session's connection.
    pub async fn begin(&self) -> Result<Transaction> {
        self.begin_with(TransactionOptions::default()).await
    }

    pub async fn begin_with(&self, options: TransactionOptions) -> Result<Transaction> {
        Transaction::begin(self.service.clone(), self.conn.clone(), options).await
    }

    /// The pinned connection, for building requests by hand.
    pub fn connection(&self) -> &PinnedConn {
        &self.conn
    }
}

impl Queryable for Session {
    fn run(&self, request: Request) -> impl Future<Output = Result<Response>> + Send {
        Box::pin(self.service.clone().oneshot(request.pinned(self.conn.clone())))
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Session")
    }
}
