//! The connection pool: deadpool, holding connections driven by their users (see
//! [`crate::connection`]), plus what it leaves to its users — warm minimum connections,
//! reaping of idle ones above that minimum, replacing those older than `max_lifetime`,
//! acquire deadlines that surface as `PoolTimeout`, and pool gauges.

use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{QueueMode, TimeoutType, Timeouts};
use deadpool::Runtime;
use futures::future::try_join_all;

use crate::config::Config;
use crate::conn::{Client, Conn};
use crate::connection::{expired, Connector, PgConnection};
use crate::error::{Error, ErrorKind, Result};
use crate::telemetry;

/// How stale the pool gauges may get.
const GAUGE_PERIOD: Duration = Duration::from_secs(1);

/// Where the server is, for tracing (`server.address`, `server.port`, `db.namespace`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub address: Arc<str>,
    pub port: u16,
    /// The database name, when the configuration names one.
    pub database: Option<Arc<str>>,
}

/// A snapshot of the pool's occupancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    pub max_size: usize,
    /// Open connections.
    pub size: usize,
    /// Open connections waiting in the pool.
    pub idle: usize,
    /// Connections checked out.
    pub in_use: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
}

/// A pool of PostgreSQL connections; cheap to clone, closed when the last clone is dropped.
#[derive(Clone)]
pub struct ConnectionPool {
    shared: Arc<Shared>,
}

type Pool = deadpool::managed::Pool<Connector>;
type PoolError = deadpool::managed::PoolError<tokio_postgres::Error>;

struct Shared {
    pool: Pool,
    config: Config,
    server: ServerInfo,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.pool.close();
    }
}

impl ConnectionPool {
    /// Opens the pool and its `min_connections`; fails if the database cannot be reached.
    pub async fn open(config: Config) -> Result<Self> {
        config.validate()?;
        let settings = config.connect_settings()?;
        let server = ServerInfo::from_config(&settings.pg);
        let pool = Pool::builder(Connector::new(settings, max_lifetime(&config)))
            .max_size(config.pool.max_connections)
            // Reusing the most recently returned connection keeps a few backends hot
            // instead of rotating over cold ones.
            .queue_mode(QueueMode::Lifo)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.pool.acquire_timeout))
            .create_timeout(Some(config.database.connect_timeout))
            .build()
            .map_err(|e| Error::config("pool", e))?;
        let shared = Arc::new(Shared { pool, config, server });
        let this = ConnectionPool { shared };
        this.fill_to_minimum().await?;
        tokio::spawn(reap(Arc::downgrade(&this.shared)));
        Ok(this)
    }

    /// Takes a connection, waiting at most `acquire_timeout`.
    pub async fn acquire(&self) -> Result<Conn> {
        let pool = &self.shared.pool;
        // Try without waiting first: a free connection needs no deadline, and arming one
        // (a timer) is most of what an uncontended checkout would otherwise cost.
        let at_once = Timeouts { wait: Some(Duration::ZERO), ..pool.timeouts() };
        let obj = match pool.timeout_get(&at_once).await {
            Err(PoolError::Timeout(TimeoutType::Wait)) => pool.get().await,
            other => other,
        };
        let obj = obj.map_err(|e| pool_error(e, &self.shared.config))?;
        Ok(Conn::new(Client::Pooled(obj), self.shared.config.database.statement_cache))
    }

    /// Opens a connection outside the pool, closed when dropped, and says where it leads.
    pub async fn connect_direct(config: &Config) -> Result<(Conn, ServerInfo)> {
        let settings = config.connect_settings()?;
        let server = ServerInfo::from_config(&settings.pg);
        let pg = PgConnection::connect(&settings).await.map_err(|e| connect_error(e, config))?;
        Ok((Conn::new(Client::Direct(Box::new(pg)), config.database.statement_cache), server))
    }

    pub fn status(&self) -> PoolStatus {
        status(&self.shared.pool)
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    pub fn server(&self) -> &ServerInfo {
        &self.shared.server
    }

    /// Closes idle connections now and every other one when it is returned; later
    /// acquires fail.
    pub fn close(&self) {
        self.shared.pool.close();
    }

    async fn fill_to_minimum(&self) -> Result<()> {
        let missing = self.shared.config.pool.min_connections.saturating_sub(self.shared.pool.status().size);
        // Hold them all at once so each is a distinct new connection.
        let conns = try_join_all((0..missing).map(|_| self.shared.pool.get())).await;
        conns.map(drop).map_err(|e| pool_error(e, &self.shared.config))
    }
}

impl ServerInfo {
    /// The first host and port of a connection configuration.
    pub fn from_config(pg: &tokio_postgres::Config) -> ServerInfo {
        use tokio_postgres::config::Host;
        let address = match pg.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            #[cfg(unix)]
            Some(Host::Unix(path)) => path.display().to_string(),
            None => "localhost".to_owned(),
        };
        let port = pg.get_ports().first().copied().unwrap_or(5432);
        ServerInfo { address: address.into(), port, database: pg.get_dbname().map(Into::into) }
    }
}

/// `pool.max_lifetime`, `None` when zero (connections kept for ever).
fn max_lifetime(config: &Config) -> Option<Duration> {
    Some(config.pool.max_lifetime).filter(|d| !d.is_zero())
}

fn status(pool: &Pool) -> PoolStatus {
    let s = pool.status();
    PoolStatus {
        max_size: s.max_size,
        size: s.size,
        idle: s.available,
        in_use: s.size - s.available,
        waiting: s.waiting,
    }
}

fn publish(pool: &Pool) {
    let s = status(pool);
    metrics::gauge!(telemetry::POOL_CONNECTIONS, "state" => "in_use").set(s.in_use as f64);
    metrics::gauge!(telemetry::POOL_CONNECTIONS, "state" => "idle").set(s.idle as f64);
    metrics::gauge!(telemetry::POOL_WAITING).set(s.waiting as f64);
}

/// A failure to open a connection; the server turning down `database.time_zone` names
/// that key.
fn connect_error(e: tokio_postgres::Error, config: &Config) -> Error {
    let refused_zone = e.as_db_error().filter(|db| {
        *db.code() == tokio_postgres::error::SqlState::INVALID_PARAMETER_VALUE && db.message().contains("\"TimeZone\"")
    });
    match (refused_zone, &config.database.time_zone) {
        (Some(db), Some(zone)) => {
            let message = format!("the server does not know the time zone `{zone}` ({})", db.message());
            Error::config("database.time_zone", message).with_source(e)
        }
        _ => Error::from(e),
    }
}

fn pool_error(e: PoolError, config: &Config) -> Error {
    match e {
        PoolError::Timeout(TimeoutType::Wait) => Error::new(
            ErrorKind::PoolTimeout,
            format!(
                "no connection became free within pool.acquire_timeout ({:?}; pool.max_connections = {})",
                config.pool.acquire_timeout, config.pool.max_connections
            ),
        ),
        PoolError::Timeout(_) => Error::new(
            ErrorKind::Connection,
            format!("could not connect within database.connect_timeout ({:?})", config.database.connect_timeout),
        ),
        PoolError::Backend(e) => connect_error(e, config),
        PoolError::Closed => Error::new(ErrorKind::Usage, "the pool is closed"),
        other => Error::new(ErrorKind::Connection, other.to_string()),
    }
}

/// The pool's housekeeping, every second at most: publishes the pool gauges (sampled
/// here rather than on every acquire, which would tax each request for a number scraped
/// every few seconds), closes idle connections above the minimum once they have been
/// unused for `idle_timeout` and idle ones older than `max_lifetime` (so requests seldom
/// wait for a replacement), and reopens connections when fewer than the minimum remain.
/// Stops when the pool is dropped.
async fn reap(shared: std::sync::Weak<Shared>) {
    let (period, max_lifetime) = match shared.upgrade() {
        Some(s) => {
            let max_lifetime = max_lifetime(&s.config);
            let shortest = max_lifetime.map_or(s.config.pool.idle_timeout, |l| l.min(s.config.pool.idle_timeout));
            ((shortest / 4).clamp(Duration::from_millis(50), GAUGE_PERIOD), max_lifetime)
        }
        None => return,
    };
    loop {
        tokio::time::sleep(period).await;
        let Some(shared) = shared.upgrade() else { return };
        if shared.pool.is_closed() {
            return;
        }
        let (min, idle_timeout) = (shared.config.pool.min_connections, shared.config.pool.idle_timeout);
        let mut excess = shared.pool.status().size.saturating_sub(min);
        let removed = shared.pool.retain(|_, metrics| {
            let reap = expired(&metrics, max_lifetime) || (excess > 0 && metrics.last_used() >= idle_timeout);
            excess = excess.saturating_sub(usize::from(reap));
            !reap
        });
        drop(removed);
        publish(&shared.pool);
        // Errors here (server down) are retried on the next tick; requests report their own.
        let _ = ConnectionPool { shared }.fill_to_minimum().await;
    }
}
