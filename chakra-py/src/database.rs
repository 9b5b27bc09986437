//! `Database`: a database's configuration and its pool, opened on first use (and opened
//! again in a forked child); and [`Target`], where an operation runs — the pool, or a
//! session's pinned connection.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chakra::{Config, Error, Pool, PoolBuilder, Queryable, Request, Response};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyInt, PyString};
use tokio::sync::OnceCell;

use crate::errors::to_pyerr;
use crate::runtime;
use crate::session::{SessionHandle, SessionInner};

/// The shared part of a [`Database`].
pub(crate) struct DatabaseInner {
    config: Config,
    slot: Mutex<Slot>,
}

/// The pool of one process generation.
struct Slot {
    generation: u64,
    pool: Arc<OnceCell<Pool>>,
}

impl DatabaseInner {
    fn new(config: Config) -> Self {
        let slot = Slot { generation: runtime::generation(), pool: Arc::default() };
        DatabaseInner { config, slot: Mutex::new(slot) }
    }

    /// This generation's pool cell. A pool inherited across `fork` is leaked: its
    /// connections' sockets are the parent's.
    fn cell(&self) -> Arc<OnceCell<Pool>> {
        let generation = runtime::generation();
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if slot.generation != generation {
            let inherited = std::mem::take(&mut slot.pool);
            std::mem::forget(inherited);
            slot.generation = generation;
        }
        slot.pool.clone()
    }

    /// The pool in `cell`, opened first if needed.
    async fn open<'c>(&self, cell: &'c OnceCell<Pool>) -> chakra::Result<&'c Pool> {
        cell.get_or_try_init(|| {
            let builder = PoolBuilder::from_config(self.config.clone());
            match crate::telemetry::tracer() {
                Some(tracer) => builder.tracer(tracer),
                None => builder,
            }
            .build()
        })
        .await
    }

    /// A pinned connection from the pool.
    pub(crate) async fn session(&self) -> chakra::Result<chakra::Session> {
        let cell = self.cell();
        self.open(&cell).await?.session().await
    }

    pub(crate) async fn run(&self, request: Request) -> chakra::Result<Response> {
        let cell = self.cell();
        self.open(&cell).await?.run(request).await
    }

    fn close(&self) {
        let cell = std::mem::take(&mut self.slot.lock().unwrap_or_else(|e| e.into_inner()).pool);
        if let Some(pool) = cell.get() {
            pool.close();
        }
        runtime::drop_in_runtime(cell);
    }
}

/// Where an operation runs.
#[derive(Clone)]
pub(crate) enum Target {
    /// A pooled connection per statement.
    Pool(Arc<DatabaseInner>),
    /// A session's (or direct connection's) pinned connection.
    Session(Arc<SessionInner>),
}

impl Target {
    /// Runs `request`. A `write` on a session begins its transaction first if none is
    /// open, so that `rollback` (or leaving the session with an exception) undoes it.
    pub(crate) async fn run(&self, request: Request, write: bool) -> chakra::Result<Response> {
        match self {
            Target::Pool(db) => db.run(request).await,
            Target::Session(session) => session.run(request, write).await,
        }
    }

    /// The target an op given `obj` (a `Database` or a `SessionHandle`) runs on.
    pub(crate) fn extract(obj: &Bound<'_, PyAny>) -> PyResult<Target> {
        if let Ok(db) = obj.cast::<Database>() {
            return Ok(Target::Pool(db.get().inner.clone()));
        }
        if let Ok(session) = obj.cast::<SessionHandle>() {
            return Ok(Target::Session(session.get().inner.clone()));
        }
        Err(pyo3::exceptions::PyTypeError::new_err("expected a chakra Database or session handle"))
    }
}

/// A database: its configuration and, once used, its connection pool.
#[pyclass(module = "chakra._core", frozen)]
pub(crate) struct Database {
    pub(crate) inner: Arc<DatabaseInner>,
}

#[pymethods]
impl Database {
    /// `url` and pool options given in code; without a URL, `chakra.toml` in the working
    /// directory and the environment (`CHAKRA_DATABASE_URL`, `DATABASE_URL`, …).
    #[new]
    #[pyo3(signature = (url = None, options = None))]
    fn new(py: Python<'_>, url: Option<String>, options: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let mut config = match &url {
            Some(url) => Config::from_url(url.clone()),
            None => Config::load().map_err(|e| to_pyerr(py, e))?,
        };
        if let Some(options) = options {
            for (key, value) in options.iter() {
                apply_option(&mut config, &key.extract::<String>()?, &value).map_err(|e| to_pyerr(py, e))?;
            }
        }
        config.validate().map_err(|e| to_pyerr(py, e))?;
        config.pg_config().map_err(|e| to_pyerr(py, e))?;
        Ok(Database { inner: Arc::new(DatabaseInner::new(config)) })
    }

    /// The URL with any password replaced by `***`.
    #[getter]
    fn url(&self) -> Option<String> {
        self.inner.config.database.url.as_deref().map(mask_password)
    }

    /// Closes the pool's connections; the next query opens a new pool.
    fn close(&self) {
        self.inner.close();
    }

    /// Open, idle and in-use connections, and waiting requests (zeros before first use).
    fn status(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        let dict = PyDict::new(py);
        let cell = self.inner.cell();
        let (size, idle, in_use, waiting, max) = match cell.get() {
            Some(pool) => {
                let s = pool.status();
                (s.size, s.idle, s.in_use, s.waiting, s.max_size)
            }
            None => (0, 0, 0, 0, self.inner.config.pool.max_connections),
        };
        dict.set_item("size", size)?;
        dict.set_item("idle", idle)?;
        dict.set_item("in_use", in_use)?;
        dict.set_item("waiting", waiting)?;
        dict.set_item("max_size", max)?;
        Ok(dict.unbind())
    }

    /// A new session handle on this database (see `chakra.Session`).
    fn session(&self) -> SessionHandle {
        SessionHandle::pooled(self.inner.clone())
    }
}

fn mask_password(url: &str) -> String {
    // postgresql://user:secret@host/db → postgresql://user:***@host/db
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// A duration option: seconds as a number, or text such as `"250ms"`, `"30s"`, `"10m"`.
fn duration(key: &str, value: &Bound<'_, PyAny>) -> chakra::Result<Duration> {
    if value.is_instance_of::<PyInt>() || value.is_instance_of::<PyFloat>() {
        let seconds: f64 = value.extract().map_err(|e| Error::config(key, e))?;
        return Duration::try_from_secs_f64(seconds).map_err(|e| Error::config(key, format!("{seconds} seconds: {e}")));
    }
    if let Ok(td) = value.getattr("total_seconds").and_then(|f| f.call0()) {
        let seconds: f64 = td.extract().map_err(|e| Error::config(key, e))?;
        return Duration::try_from_secs_f64(seconds).map_err(|e| Error::config(key, format!("{seconds} seconds: {e}")));
    }
    let text = value
        .cast::<PyString>()
        .map_err(|_| Error::config(key, "expected seconds, a timedelta or a duration like \"30s\""))?;
    let text = text.to_str().map_err(|e| Error::config(key, e))?;
    // The same parser as chakra.toml, through a one-key document.
    let (section, field) = key.split_once('.').unwrap_or(("pool", key));
    let doc = format!("[{section}]\n{field} = \"{}\"\n", text.replace('\\', "\\\\").replace('"', "\\\""));
    let parsed = Config::from_toml(&doc)?;
    Ok(match key {
        "pool.acquire_timeout" => parsed.pool.acquire_timeout,
        "pool.idle_timeout" => parsed.pool.idle_timeout,
        "pool.max_lifetime" => parsed.pool.max_lifetime,
        "query.timeout" => parsed.query.timeout,
        "database.connect_timeout" => parsed.database.connect_timeout,
        _ => return Err(Error::config(key, "not a duration setting")),
    })
}

fn count(key: &str, value: &Bound<'_, PyAny>) -> chakra::Result<usize> {
    if value.is_instance_of::<pyo3::types::PyBool>() || !value.is_instance_of::<PyInt>() {
        return Err(Error::config(
            key,
            format!("expected a whole number, got {}", value.repr().map(|r| r.to_string()).unwrap_or_default()),
        ));
    }
    value.extract::<usize>().map_err(|_| Error::config(key, "must be a whole number of at least 0"))
}

/// Applies one keyword option of `chakra.configure` / `chakra.Database`.
fn apply_option(config: &mut Config, name: &str, value: &Bound<'_, PyAny>) -> chakra::Result<()> {
    match name {
        "min_connections" => config.pool.min_connections = count("pool.min_connections", value)?,
        "max_connections" => config.pool.max_connections = count("pool.max_connections", value)?,
        "acquire_timeout" => config.pool.acquire_timeout = duration("pool.acquire_timeout", value)?,
        "idle_timeout" => config.pool.idle_timeout = duration("pool.idle_timeout", value)?,
        "max_lifetime" => config.pool.max_lifetime = duration("pool.max_lifetime", value)?,
        "query_timeout" => config.query.timeout = duration("query.timeout", value)?,
        "connect_timeout" => config.database.connect_timeout = duration("database.connect_timeout", value)?,
        "retry_attempts" => {
            config.retry.max_attempts = u32::try_from(count("retry.max_attempts", value)?)
                .map_err(|e| Error::config("retry.max_attempts", e))?
        }
        "statement_cache" => {
            config.database.statement_cache = value
                .cast::<pyo3::types::PyBool>()
                .map_err(|_| Error::config("database.statement_cache", "expected True or False"))?
                .is_true()
        }
        "statement_cache_capacity" => {
            config.database.statement_cache_capacity = count("database.statement_cache_capacity", value)?
        }
        "time_zone" => {
            let zone = value.cast::<PyString>().map_err(|_| {
                Error::config("database.time_zone", "expected a time zone's name, such as \"UTC\" or \"Europe/Paris\"")
            })?;
            config.database.time_zone =
                Some(zone.to_str().map_err(|e| Error::config("database.time_zone", e))?.to_owned())
        }
        other => {
            return Err(Error::config(
                other,
                "unknown database option (options: min_connections, max_connections, acquire_timeout, \
                 idle_timeout, max_lifetime, query_timeout, connect_timeout, retry_attempts, statement_cache, \
                 statement_cache_capacity, time_zone)",
            ))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::mask_password;

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(mask_password("postgresql://app:s3cr@t@db:5432/x"), "postgresql://app:***@db:5432/x");
        assert_eq!(mask_password("postgresql://app@db/x"), "postgresql://app@db/x");
        assert_eq!(mask_password("postgresql:///x?host=/tmp"), "postgresql:///x?host=/tmp");
    }
}
