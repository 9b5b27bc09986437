//! Fault tests on the throwaway cluster: reads survive a killed backend or a server
//! restart; writes are never repeated.

use std::time::Duration;

use chakra::{ErrorKind, Queryable};
use chakra_tests::{admin, backend_pid, backends, builder, eventually, restart_throwaway, throwaway_url, unique};

/// Terminates the backends of `app` once one of them is running `marker`, i.e. while a
/// statement is in flight, as a server restart or failover would.
async fn terminate_while_running(admin: &tokio_postgres::Client, app: &str, marker: &str) {
    eventually(Duration::from_secs(5), "the statement is running", || async {
        backends(admin, app).await.iter().any(|(_, state, q)| state == "active" && q.contains(marker)).then_some(())
    })
    .await;
    admin
        .query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", &[&app])
        .await
        .unwrap();
}

const SLOW_READ: &str = "SELECT 41 + 1 FROM pg_sleep(0.5) AS slow_read";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_read_succeeds_after_its_connection_was_terminated_mid_statement() {
    let Some(url) = throwaway_url() else { return };
    let app = unique("retry_read");
    let pool = builder(&url, &app).max_connections(2).build().await.unwrap();
    let read = tokio::spawn({
        let pool = pool.clone();
        async move { pool.query_one(SLOW_READ, vec![]).await }
    });
    let admin = admin(&url).await;
    terminate_while_running(&admin, &app, "slow_read").await;

    let row = read.await.unwrap().expect("the read is retried on a new connection");
    assert_eq!(row.get::<_, i32>(0), 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_without_retries_the_same_read_fails() {
    // The control for the test above: the same fault is visible when retrying is off,
    // so it is the retry that saves the read.
    let Some(url) = throwaway_url() else { return };
    let app = unique("retry_off");
    let pool = builder(&url, &app).max_connections(2).retry_attempts(1).build().await.unwrap();
    let read = tokio::spawn({
        let pool = pool.clone();
        async move { pool.query_one(SLOW_READ, vec![]).await }
    });
    let admin = admin(&url).await;
    terminate_while_running(&admin, &app, "slow_read").await;

    let err = read.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    pool.query_one("SELECT 1", vec![]).await.expect("the broken connection was discarded");
}

/// Between users nobody polls a pooled connection's socket, so a backend terminated while
/// its connection sits idle leaves only bytes in that socket. The pool reads them at
/// checkout and opens a new connection instead of handing out the dead one: even a read
/// that may not be retried succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_connection_terminated_while_idle_in_the_pool_is_not_handed_out() {
    let Some(url) = throwaway_url() else { return };
    let app = unique("idle_killed");
    let pool = builder(&url, &app).max_connections(1).retry_attempts(1).build().await.unwrap();
    let before = backend_pid(&pool).await;
    let admin = admin(&url).await;
    admin.query("SELECT pg_terminate_backend($1)", &[&before]).await.unwrap();
    eventually(Duration::from_secs(5), "the backend has exited", || async {
        backends(&admin, &app).await.is_empty().then_some(())
    })
    .await;

    // `backend_pid` fails the test if the read does: a new connection must serve it.
    assert_ne!(backend_pid(&pool).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_write_is_not_retried() {
    let Some(url) = throwaway_url() else { return };
    let app = unique("retry_write");
    let table = unique("retry_write_t");
    let pool = builder(&url, &app).max_connections(2).build().await.unwrap();
    pool.execute(&format!("CREATE TABLE {table} (id serial PRIMARY KEY, note text)"), vec![]).await.unwrap();
    let write = tokio::spawn({
        let (pool, table) = (pool.clone(), table.clone());
        async move {
            let sql = format!("INSERT INTO {table} (note) SELECT $1 FROM pg_sleep(0.5) AS slow_write");
            pool.execute(&sql, vec!["once".into()]).await
        }
    });
    let admin = admin(&url).await;
    terminate_while_running(&admin, &app, "slow_write").await;

    let err = write.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    // Give a (wrong) retry every chance to land before counting.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let count = admin.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap().get::<_, i64>(0);
    assert_eq!(count, 0, "the write was sent again on another connection");
    admin.execute(&format!("DROP TABLE {table}"), &[]).await.unwrap();
}

#[tokio::test]
async fn fault_the_pool_recovers_after_a_server_restart() {
    let Some(url) = throwaway_url() else { return };
    let pool = builder(&url, &unique("restart")).max_connections(3).min_connections(2).build().await.unwrap();
    pool.query("SELECT 1", vec![]).await.unwrap();

    restart_throwaway();

    // Every pooled connection died with the server; reads reconnect transparently.
    for _ in 0..5 {
        let row = pool.query_one("SELECT 2", vec![]).await.expect("reads work after the restart");
        assert_eq!(row.get::<_, i32>(0), 2);
    }
    let tx = pool.begin().await.expect("transactions work after the restart");
    tx.query_one("SELECT 1", vec![]).await.unwrap();
    tx.commit().await.unwrap();
}

/// Lookups merged into one query are retried too: when the merged query's connection dies,
/// each lookup gets its own request back and is sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_batched_lookups_succeed_after_the_merged_querys_connection_was_terminated() {
    use chakra::{Labels, Mode, PointLookup, Request, SharedStr, Statement};

    let Some(url) = throwaway_url() else { return };
    let app = unique("retry_batch");
    let pool = builder(&url, &app).max_connections(2).build().await.unwrap();
    // Lookups slow enough to be caught running: the first goes alone, the other 19 merge.
    let one: SharedStr = "SELECT $1::int8 AS id FROM pg_sleep(0.5) AS slow_lookup".into();
    let many: SharedStr = "SELECT g AS id FROM unnest($1::int8[]) AS g, pg_sleep(0.5) AS slow_lookup".into();
    let lookups = (1..=20_i64).map(|id| {
        let request =
            Request::labelled(Statement::new(one.clone(), vec![id.into()]), Mode::One, Labels::new("SELECT", None))
                .point_lookup(PointLookup { batch_sql: many.clone(), key_column: 0, key: id.into() });
        let pool = pool.clone();
        async move { pool.run(request).await?.into_row() }
    });
    let all = tokio::spawn(futures::future::try_join_all(lookups));

    let admin = admin(&url).await;
    eventually(Duration::from_secs(5), "the lone and the merged lookup are running", || async {
        let running = backends(&admin, &app).await;
        (running.iter().filter(|(_, state, q)| state == "active" && q.contains("slow_lookup")).count() == 2)
            .then_some(())
    })
    .await;
    admin
        .query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", &[&app])
        .await
        .unwrap();

    let rows = all.await.unwrap().expect("every lookup is retried on a new connection");
    let ids: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
    assert_eq!(ids, (1..=20).collect::<Vec<_>>(), "each lookup got its own row back");
}
