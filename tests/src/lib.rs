//! Shared helpers for the end-to-end tests: which database to use, unique names so tests
//! can run in parallel on one server, and a plain tokio-postgres client to check what the
//! server really saw.
//!
//! `scripts/test` sets `DATABASE_URL` (a given server, or a throwaway cluster it started)
//! and always starts a throwaway cluster for fault tests (`CHAKRA_THROWAWAY_URL`, restarted
//! with `$CHAKRA_THROWAWAY_CTL restart`); fault tests never touch `DATABASE_URL`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chakra::{Config, Pool, PoolBuilder, Queryable};

/// The server process behind the connection `db` runs its next request on: equal pids
/// mean one connection served both.
pub async fn backend_pid(db: &impl Queryable) -> i32 {
    db.query_one("SELECT pg_backend_pid()", vec![]).await.expect("read pg_backend_pid()").get(0)
}

/// The database for ordinary tests.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".to_owned())
}

/// The throwaway cluster for fault tests, if the test command started one. Outside the
/// test command (a bare `cargo test`) fault tests are skipped with a message; under CI a
/// missing cluster is a failure.
pub fn throwaway_url() -> Option<String> {
    match std::env::var("CHAKRA_THROWAWAY_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("CHAKRA_THROWAWAY_URL is unset: run the tests with scripts/test")
        }
        Err(_) => {
            eprintln!("skipped: no throwaway cluster (run through scripts/test for fault tests)");
            None
        }
    }
}

/// The CA that signed the throwaway cluster's TLS certificate (for `127.0.0.1` and
/// `localhost`), as a path for `sslrootcert`.
pub fn throwaway_ca() -> String {
    std::env::var("CHAKRA_THROWAWAY_CA").expect("CHAKRA_THROWAWAY_CA is set by scripts/pg-throwaway start")
}

/// The client certificate and key with which role `chakra_cert` logs in to the throwaway
/// cluster (and without which it cannot).
pub fn throwaway_client_cert() -> (String, String) {
    let var =
        |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by scripts/pg-throwaway start"));
    (var("CHAKRA_THROWAWAY_CLIENT_CERT"), var("CHAKRA_THROWAWAY_CLIENT_KEY"))
}

/// Restarts the throwaway cluster (fast shutdown: every connection is cut).
pub fn restart_throwaway() {
    let ctl = std::env::var("CHAKRA_THROWAWAY_CTL").expect("CHAKRA_THROWAWAY_CTL is set by scripts/test");
    let status = std::process::Command::new("bash").arg(ctl).arg("restart").status().expect("run pg-throwaway");
    assert!(status.success(), "restarting the throwaway cluster failed");
}

/// A name no other test (or test run) uses: for tables and `application_name`s.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{}_{n}", std::process::id())
}

/// `url` with `application_name` set, so a test can find its own backends in
/// `pg_stat_activity`.
pub fn url_with_app(url: &str, app: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name={app}")
}

/// A pool builder on `url` whose connections are tagged `app`.
pub fn builder(url: &str, app: &str) -> PoolBuilder {
    PoolBuilder::from_config(Config::from_url(url_with_app(url, app)))
}

/// A default pool on the test database.
pub async fn pool() -> Pool {
    PoolBuilder::from_config(Config::from_url(database_url())).build().await.expect("connect to the test database")
}

/// A plain tokio-postgres connection, independent of everything under test.
pub async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("admin connection");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Backends of `app` in `pg_stat_activity`, as `(pid, state, query)`.
pub async fn backends(admin: &tokio_postgres::Client, app: &str) -> Vec<(i32, String, String)> {
    admin
        .query("SELECT pid, coalesce(state, ''), query FROM pg_stat_activity WHERE application_name = $1", &[&app])
        .await
        .expect("read pg_stat_activity")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Polls `check` until it returns `Some` or `limit` passes; the last `None` fails with
/// `what`. For server-side effects that follow a client action asynchronously.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting until {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
