//! `chakra.toml`: one plain serde struct, loadable from a file, a string or the
//! environment, documented field by field.
//!
//! ```toml
//! [database]
//! url = "postgresql://localhost/app"
//! time_zone = "UTC"
//! [pool]
//! min_connections = 5
//! max_connections = 20
//! acquire_timeout = "30s"
//! idle_timeout = "10m"
//! max_lifetime = "30m"
//! [query]
//! timeout = "30s"
//! [retry]
//! max_attempts = 3
//! ```
//!
//! Environment variables override the file: `CHAKRA_<SECTION>_<KEY>` in upper case
//! (`CHAKRA_DATABASE_URL`, `CHAKRA_POOL_MAX_CONNECTIONS`, …). Every malformed value is a
//! [`ErrorKind::Config`](crate::ErrorKind::Config) error naming its key.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::error::{Error, Result};
use crate::tls::{self, Tls, TlsSettings};

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub database: DatabaseConfig,
    pub pool: PoolConfig,
    pub query: QueryConfig,
    pub retry: RetryConfig,
}

/// `[database]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgresql://user:password@host:port/dbname?options`. Required to connect.
    pub url: Option<String>,
    /// Prepare each distinct statement once per connection and reuse it (default `true`).
    /// Turn off behind PgBouncer in transaction mode: statements are then sent unnamed,
    /// with their parameter types, in a single round trip.
    pub statement_cache: bool,
    /// Prepared statements kept per connection (default 100, as sqlx and asyncpg): past
    /// it the least recently used is closed on the server.
    pub statement_cache_capacity: usize,
    /// Deadline for opening a new connection (default 10 s).
    #[serde(deserialize_with = "duration")]
    pub connect_timeout: Duration,
    /// The time zone every connection opens with (PostgreSQL's `TimeZone`, such as
    /// `"UTC"` or `"Europe/Paris"`; Django's `TIME_ZONE`): the one the date parts of a
    /// `timestamptz` (`created__year`, `Column::year()`) and `now()::date` are read in.
    /// Unset, the server's default. Timestamps with a time zone decode to the same
    /// instant either way.
    pub time_zone: Option<String>,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            statement_cache: true,
            statement_cache_capacity: 100,
            connect_timeout: Duration::from_secs(10),
            time_zone: None,
        }
    }
}

/// `[pool]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// Connections opened at start-up and kept open even when idle (default 0).
    pub min_connections: usize,
    /// Upper bound on open connections (default 10).
    pub max_connections: usize,
    /// How long a request may wait for a free connection before `PoolTimeout` (default 30 s).
    #[serde(deserialize_with = "duration")]
    pub acquire_timeout: Duration,
    /// Idle connections above `min_connections` are closed after this long (default 10 min).
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// Connections older than this are closed and replaced, idle ones in the background,
    /// busy ones when they come back (default 30 min, as sqlx and HikariCP; `"0s"` keeps
    /// them for ever). Load balancers and firewalls cut long-lived connections, a
    /// failed-over server is reached only by new ones, and a backend's caches only grow.
    /// Each connection's own lifetime is up to 5% shorter, so those opened together are
    /// not all replaced at once.
    #[serde(deserialize_with = "duration")]
    pub max_lifetime: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            min_connections: 0,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(1800),
        }
    }
}

/// `[query]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// Per-statement deadline; on expiry the statement is cancelled on the server.
    /// `"0s"` turns it off (default 30 s).
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig { timeout: Duration::from_secs(30) }
    }
}

/// `[retry]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts for an idempotent read outside a transaction that failed on a broken
    /// connection, including the first (default 3; 1 turns retrying off).
    pub max_attempts: u32,
    /// Delay before the first retry, doubled for each further one (default 20 ms).
    #[serde(deserialize_with = "duration")]
    pub backoff: Duration,
    /// Cap on the delay between attempts (default 1 s).
    #[serde(deserialize_with = "duration")]
    pub max_backoff: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig { max_attempts: 3, backoff: Duration::from_millis(20), max_backoff: Duration::from_secs(1) }
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration like \"250ms\", \"30s\" or \"10m\" ({e})"))
}

/// Environment variables that override the file, with the key each one sets.
const ENV_KEYS: &[(&str, &str)] = &[
    ("CHAKRA_DATABASE_URL", "database.url"),
    ("CHAKRA_DATABASE_STATEMENT_CACHE", "database.statement_cache"),
    ("CHAKRA_DATABASE_STATEMENT_CACHE_CAPACITY", "database.statement_cache_capacity"),
    ("CHAKRA_DATABASE_CONNECT_TIMEOUT", "database.connect_timeout"),
    ("CHAKRA_DATABASE_TIME_ZONE", "database.time_zone"),
    ("CHAKRA_POOL_MIN_CONNECTIONS", "pool.min_connections"),
    ("CHAKRA_POOL_MAX_CONNECTIONS", "pool.max_connections"),
    ("CHAKRA_POOL_ACQUIRE_TIMEOUT", "pool.acquire_timeout"),
    ("CHAKRA_POOL_IDLE_TIMEOUT", "pool.idle_timeout"),
    ("CHAKRA_POOL_MAX_LIFETIME", "pool.max_lifetime"),
    ("CHAKRA_QUERY_TIMEOUT", "query.timeout"),
    ("CHAKRA_RETRY_MAX_ATTEMPTS", "retry.max_attempts"),
    ("CHAKRA_RETRY_BACKOFF", "retry.backoff"),
    ("CHAKRA_RETRY_MAX_BACKOFF", "retry.max_backoff"),
];

impl Config {
    /// A configuration for `url` with every other setting at its default.
    pub fn from_url(url: impl Into<String>) -> Self {
        let mut config = Config::default();
        config.database.url = Some(url.into());
        config
    }

    /// Parses TOML text; errors name the offending key.
    pub fn from_toml(text: &str) -> Result<Self> {
        let deserializer = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let message = inner.message().to_owned();
            Error::config(if key == "." { "chakra.toml".to_owned() } else { key }, message).with_source(inner)
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(path.display().to_string(), format!("cannot read file: {e}")))?;
        Self::from_toml(&text)
    }

    /// `chakra.toml` in the working directory if there is one (defaults otherwise),
    /// overridden by the `CHAKRA_*` environment; `DATABASE_URL` fills in a missing URL.
    pub fn load() -> Result<Self> {
        let mut config = match Path::new("chakra.toml").exists() {
            true => Self::from_file("chakra.toml")?,
            false => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        if config.database.url.is_none() {
            config.database.url = std::env::var("DATABASE_URL").ok();
        }
        Ok(config)
    }

    /// Applies `CHAKRA_*` overrides read through `lookup` (the process environment in
    /// [`load`](Self::load); a map in tests).
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<()> {
        for &(var, key) in ENV_KEYS {
            let Some(raw) = lookup(var) else { continue };
            let bad = |msg: String| Error::config(key, format!("{msg} (from environment variable {var})"));
            let number = |raw: &str| {
                raw.trim().parse::<usize>().map_err(|e| bad(format!("`{raw}` is not a whole number ({e})")))
            };
            let time = |raw: &str| parse_duration(raw).map_err(bad);
            match key {
                "database.url" => self.database.url = Some(raw),
                "database.statement_cache" => {
                    self.database.statement_cache = match raw.trim().to_ascii_lowercase().as_str() {
                        "1" | "true" | "on" | "yes" => true,
                        "0" | "false" | "off" | "no" => false,
                        _ => return Err(bad(format!("`{raw}` is not a boolean"))),
                    }
                }
                "database.statement_cache_capacity" => self.database.statement_cache_capacity = number(&raw)?,
                "database.connect_timeout" => self.database.connect_timeout = time(&raw)?,
                "database.time_zone" => self.database.time_zone = Some(raw),
                "pool.min_connections" => self.pool.min_connections = number(&raw)?,
                "pool.max_connections" => self.pool.max_connections = number(&raw)?,
                "pool.acquire_timeout" => self.pool.acquire_timeout = time(&raw)?,
                "pool.idle_timeout" => self.pool.idle_timeout = time(&raw)?,
                "pool.max_lifetime" => self.pool.max_lifetime = time(&raw)?,
                "query.timeout" => self.query.timeout = time(&raw)?,
                "retry.max_attempts" => {
                    self.retry.max_attempts = u32::try_from(number(&raw)?).map_err(|e| bad(e.to_string()))?
                }
                "retry.backoff" => self.retry.backoff = time(&raw)?,
                "retry.max_backoff" => self.retry.max_backoff = time(&raw)?,
                _ => unreachable!("every ENV_KEYS entry is handled"),
            }
        }
        self.validate()
    }

    /// Checks the relations between values that serde cannot express.
    pub fn validate(&self) -> Result<()> {
        if self.pool.max_connections == 0 {
            return Err(Error::config("pool.max_connections", "must be at least 1"));
        }
        if self.pool.min_connections > self.pool.max_connections {
            return Err(Error::config(
                "pool.min_connections",
                format!(
                    "{} is more than pool.max_connections ({})",
                    self.pool.min_connections, self.pool.max_connections
                ),
            ));
        }
        if self.database.statement_cache_capacity == 0 {
            return Err(Error::config(
                "database.statement_cache_capacity",
                "must be at least 1 (to prepare nothing, set database.statement_cache = false)",
            ));
        }
        if self.retry.max_attempts == 0 {
            return Err(Error::config("retry.max_attempts", "must be at least 1 (1 means no retries)"));
        }
        if let Some(zone) = &self.database.time_zone {
            check_time_zone(zone)?;
        }
        if let Some(url) = &self.database.url {
            parse_url(url)?;
        }
        Ok(())
    }

    /// The parsed connection settings; a missing or malformed URL names `database.url`.
    pub fn pg_config(&self) -> Result<tokio_postgres::Config> {
        self.connect_settings().map(|settings| settings.pg)
    }

    /// What opening a connection takes: the parsed URL, the TLS connector its `sslmode`
    /// and `sslrootcert` ask for (see [`crate::tls`]; problems with either name
    /// `database.url`), and the statement cache's capacity.
    pub(crate) fn connect_settings(&self) -> Result<ConnectSettings> {
        let url = self.database.url.as_deref().ok_or_else(|| {
            Error::config(
                "database.url",
                "no database URL (set it in chakra.toml, CHAKRA_DATABASE_URL or DATABASE_URL)",
            )
        })?;
        let (mut pg, tls) = parse_url(url)?;
        let retry_with_tls = tls.mode.retries_with_tls();
        let tls = tls.connector()?;
        if pg.get_application_name().is_none() {
            pg.application_name("chakra");
        }
        if let Some(zone) = &self.database.time_zone {
            // A startup option: set as the connection opens, at no extra round trip, and
            // never undone by a `RESET ALL`.
            check_time_zone(zone)?;
            let options = match pg.get_options() {
                Some(options) => format!("{options} -c TimeZone={zone}"),
                None => format!("-c TimeZone={zone}"),
            };
            pg.options(&options);
        }
        pg.connect_timeout(self.database.connect_timeout);
        Ok(ConnectSettings {
            pg,
            tls,
            retry_with_tls,
            statement_cache_capacity: self.database.statement_cache_capacity,
        })
    }
}

/// A time zone's name as PostgreSQL's startup options can carry it; whether the server
/// knows it is for the server to say, as the connection opens.
fn check_time_zone(zone: &str) -> Result<()> {
    let bad = zone.chars().find(|c| c.is_whitespace() || c.is_control() || matches!(c, '\\' | '\'' | '"'));
    match (zone.is_empty(), bad) {
        (true, _) => Err(Error::config("database.time_zone", "is empty (leave it out for the server's default)")),
        (_, Some(c)) => Err(Error::config(
            "database.time_zone",
            format!("`{zone}` is not a time zone name (it holds {c:?}): use one such as \"UTC\" or \"Europe/Paris\""),
        )),
        _ => Ok(()),
    }
}

/// See [`Config::connect_settings`].
#[derive(Clone)]
pub(crate) struct ConnectSettings {
    pub pg: tokio_postgres::Config,
    pub tls: Tls,
    /// `sslmode=allow`: a connection the server turns down without TLS is tried with it.
    pub retry_with_tls: bool,
    pub statement_cache_capacity: usize,
}

/// tokio-postgres's settings and the TLS ones of a database URL.
fn parse_url(url: &str) -> Result<(tokio_postgres::Config, TlsSettings)> {
    let (rest, tls) = tls::split_url(url)?;
    let mut pg: tokio_postgres::Config =
        rest.parse().map_err(|e| Error::config("database.url", format!("not a PostgreSQL URL: {e}")))?;
    pg.ssl_mode(tls.mode.for_tokio_postgres());
    Ok((pg, tls))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn every_sslmode_of_libpq_is_accepted() {
        for mode in ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] {
            let pg = Config::from_url(format!("postgresql://db.example.com/app?sslmode={mode}")).pg_config().unwrap();
            assert_eq!(pg.get_hosts().len(), 1, "{mode}");
        }
        assert_eq!(
            Config::from_url("postgresql://db/app?sslmode=alow").validate().unwrap_err().key(),
            Some("database.url")
        );
    }

    #[test]
    fn reads_every_section() {
        let c = Config::from_toml(
            r#"
            [database]
            url = "postgresql://localhost/app"
            statement_cache = false
            statement_cache_capacity = 20
            [pool]
            min_connections = 5
            max_connections = 20
            acquire_timeout = "30s"
            idle_timeout = "10m"
            max_lifetime = "1h"
            [query]
            timeout = "250ms"
            [retry]
            max_attempts = 4
            "#,
        )
        .unwrap();
        assert_eq!(c.database.url.as_deref(), Some("postgresql://localhost/app"));
        assert!(!c.database.statement_cache);
        assert_eq!(c.database.statement_cache_capacity, 20);
        assert_eq!(c.pool.min_connections, 5);
        assert_eq!(c.pool.idle_timeout, Duration::from_secs(600));
        assert_eq!(c.pool.max_lifetime, Duration::from_secs(3600));
        assert_eq!(c.query.timeout, Duration::from_millis(250));
        assert_eq!(c.retry.max_attempts, 4);
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let e = Config::from_toml("[pool]\nmax_connections = \"many\"\n").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert_eq!(e.key(), Some("pool.max_connections"));

        let e = Config::from_toml("[pool]\nacquire_timeout = \"soon\"\n").unwrap_err();
        assert_eq!(e.key(), Some("pool.acquire_timeout"));
        assert!(e.to_string().contains("soon"), "{e}");
    }

    #[test]
    fn an_unknown_key_is_an_error_not_ignored() {
        let e = Config::from_toml("[pool]\nmax_conections = 3\n").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("max_conections"), "{e}");
    }

    #[test]
    fn relations_between_values_are_checked() {
        let e = Config::from_toml("[pool]\nmin_connections = 5\nmax_connections = 2\n").unwrap_err();
        assert_eq!(e.key(), Some("pool.min_connections"));
        let e = Config::from_toml("[database]\nurl = \"mysql://x\"\n").unwrap_err();
        assert_eq!(e.key(), Some("database.url"));
        let e = Config::from_toml("[database]\nstatement_cache_capacity = 0\n").unwrap_err();
        assert_eq!(e.key(), Some("database.statement_cache_capacity"));
        assert!(e.to_string().contains("statement_cache = false"), "{e}");
    }

    #[test]
    fn a_time_zone_is_a_startup_option() {
        let c = Config::from_toml(
            "[database]\nurl = \"postgresql://db/app?options=-c%20work_mem%3D8MB\"\ntime_zone = \"Europe/Paris\"\n",
        );
        let pg = c.unwrap().pg_config().unwrap();
        assert_eq!(pg.get_options(), Some("-c work_mem=8MB -c TimeZone=Europe/Paris"), "added to the URL's");
        let pg = Config {
            database: DatabaseConfig { time_zone: None, ..Config::from_url("postgresql://db/app").database },
            ..Config::default()
        };
        assert_eq!(pg.pg_config().unwrap().get_options(), None, "unset: the server's default");
        for bad in ["", "Europe/ Paris", "UTC\\", "x'y"] {
            let e = Config::from_toml(&format!("[database]\ntime_zone = {bad:?}\n")).unwrap_err();
            assert_eq!(e.key(), Some("database.time_zone"), "{bad:?}: {e}");
        }
        let mut c = Config::default();
        c.apply_env(|v| (v == "CHAKRA_DATABASE_TIME_ZONE").then(|| "Asia/Tokyo".to_owned())).unwrap();
        assert_eq!(c.database.time_zone.as_deref(), Some("Asia/Tokyo"));
    }

    #[test]
    fn environment_overrides_the_file_and_names_the_variable() {
        let mut c = Config::from_toml("[pool]\nmax_connections = 20\n").unwrap();
        c.apply_env(|v| (v == "CHAKRA_POOL_MAX_CONNECTIONS").then(|| "7".to_owned())).unwrap();
        assert_eq!(c.pool.max_connections, 7);
        c.apply_env(|v| (v == "CHAKRA_DATABASE_STATEMENT_CACHE_CAPACITY").then(|| "30".to_owned())).unwrap();
        assert_eq!(c.database.statement_cache_capacity, 30);

        assert_eq!(c.pool.max_lifetime, Duration::from_secs(1800), "the default");
        c.apply_env(|v| (v == "CHAKRA_POOL_MAX_LIFETIME").then(|| "0s".to_owned())).unwrap();
        assert_eq!(c.pool.max_lifetime, Duration::ZERO, "0s: kept for ever");
        let e = c.apply_env(|v| (v == "CHAKRA_POOL_MAX_LIFETIME").then(|| "a while".to_owned())).unwrap_err();
        assert_eq!(e.key(), Some("pool.max_lifetime"));

        let e = c.apply_env(|v| (v == "CHAKRA_QUERY_TIMEOUT").then(|| "forever".to_owned())).unwrap_err();
        assert_eq!(e.key(), Some("query.timeout"));
        assert!(e.to_string().contains("CHAKRA_QUERY_TIMEOUT"), "{e}");
    }
}
