//! Statement deadlines: the caller gets `Timeout` quickly, the server stops working, and the
//! connection is reusable.

use std::time::{Duration, Instant};

use chakra::{Error, ErrorKind, Mode, Pool, Queryable, Request, Statement};
use chakra_tests::{admin, backend_pid, backends, builder, database_url, eventually, unique};

/// A pool of one connection under `app`'s name, with a `limit` deadline per statement.
async fn one_connection(app: &str, limit: Duration) -> Pool {
    builder(&database_url(), app).max_connections(1).query_timeout(limit).build().await.unwrap()
}

/// `err` is a timeout that reached the server quickly (since `start`), and no backend of
/// `app` is still working on the statement.
async fn assert_cancelled_on_the_server(err: &Error, start: Instant, app: &str) {
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.to_string().contains("cancelled on the server"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
    let sessions = backends(&admin(&database_url()).await, app).await;
    assert!(sessions.iter().all(|(_, state, _)| state == "idle"), "still busy after the timeout: {sessions:?}");
}

#[tokio::test]
async fn timeout_cancels_the_statement_on_the_server() {
    let app = unique("timeout");
    let pool = one_connection(&app, Duration::from_millis(200)).await;
    let before = backend_pid(&pool).await;

    let start = Instant::now();
    let err = pool.query("SELECT pg_sleep(10)", vec![]).await.unwrap_err();
    assert_cancelled_on_the_server(&err, start, &app).await;
    // The same connection, clean, serves the next request.
    let after = backend_pid(&pool).await;
    assert_eq!(before, after, "the cancelled connection was replaced instead of reused");
}

#[tokio::test]
async fn a_request_can_set_its_own_deadline() {
    let pool =
        builder(&database_url(), &unique("timeout_req")).query_timeout(Duration::from_secs(30)).build().await.unwrap();
    let request =
        Request::new(Statement::new("SELECT pg_sleep(5)", vec![]), Mode::All).timeout(Duration::from_millis(100));
    let start = Instant::now();
    let err = pool.run(request).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_timeout_inside_a_transaction_leaves_no_open_transaction_behind() {
    let app = unique("timeout_tx");
    let table = unique("timeout_tx_t");
    let pool = builder(&database_url(), &app).query_timeout(Duration::from_millis(200)).build().await.unwrap();
    pool.execute(&format!("CREATE TABLE {table} (id int PRIMARY KEY)"), vec![]).await.unwrap();

    let tx = pool.begin().await.unwrap();
    tx.execute(&format!("INSERT INTO {table} VALUES (1)"), vec![]).await.unwrap();
    let err = tx.query("SELECT pg_sleep(10)", vec![]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    tx.rollback().await.unwrap();

    let admin = admin(&database_url()).await;
    eventually(Duration::from_secs(3), "no backend of the pool is left in a transaction", || async {
        let all = backends(&admin, &app).await;
        all.iter().all(|(_, state, _)| state == "idle").then_some(())
    })
    .await;
    let count = admin.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap().get::<_, i64>(0);
    assert_eq!(count, 0, "the rolled-back insert is visible");
    pool.execute(&format!("DROP TABLE {table}"), vec![]).await.unwrap();
}

#[tokio::test]
async fn a_zero_timeout_means_none() {
    let pool = builder(&database_url(), &unique("timeout_off")).query_timeout(Duration::ZERO).build().await.unwrap();
    pool.query("SELECT pg_sleep(0.3)", vec![]).await.expect("no deadline applies");
}

/// A stream's statement runs until its last row, so the deadline must bound it after the
/// stream is handed over, including the server's time to produce the first row.
#[tokio::test]
async fn a_stream_waiting_on_a_slow_statement_times_out_and_is_cancelled() {
    use futures::TryStreamExt;
    let app = unique("timeout_stream");
    let pool = one_connection(&app, Duration::from_millis(300)).await;
    let before = backend_pid(&pool).await;

    let start = Instant::now();
    // The rows come only after the sleep, long after the stream itself was handed over.
    let outcome = async {
        let rows = pool.query_stream("SELECT g, pg_sleep(10) FROM generate_series(1, 2) g", vec![]).await?;
        rows.try_collect::<Vec<_>>().await
    };
    let err = outcome.await.unwrap_err();
    assert_cancelled_on_the_server(&err, start, &app).await;
    let after = backend_pid(&pool).await;
    assert_eq!(before, after, "the cancelled connection was replaced instead of reused");
}

/// The deadline counts the time spent waiting for rows, not the consumer's own work: a slow
/// reader of a fast query is not cut off.
#[tokio::test]
async fn a_slow_consumer_of_a_fast_stream_is_not_cut_off() {
    use futures::TryStreamExt;
    let pool = builder(&database_url(), &unique("timeout_reader"))
        .query_timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    let mut rows = pool.query_stream("SELECT g FROM generate_series(1, 30) g", vec![]).await.unwrap();
    let start = Instant::now();
    let mut seen = 0_i32;
    while let Some(row) = rows.try_next().await.unwrap() {
        seen += 1;
        assert_eq!(row.get::<_, i32>(0), seen);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, 30);
    assert!(start.elapsed() > Duration::from_millis(200), "the reader was meant to outlast the deadline");
}

/// Rows already flowing do not end the deadline's watch: a statement that stalls half-way
/// through its rows is cancelled like one that never starts.
#[tokio::test]
async fn a_stream_that_stalls_after_its_first_rows_times_out_and_is_cancelled() {
    use futures::TryStreamExt;
    let app = unique("timeout_stall");
    let pool = one_connection(&app, Duration::from_millis(300)).await;
    // Wide rows, so the server flushes the first ones before it stalls on the third.
    let sql = "SELECT g, repeat('x', 20000) AS wide, CASE WHEN g = 3 THEN pg_sleep(10) END AS stall \
               FROM generate_series(1, 3) g";
    let mut rows = pool.query_stream(sql, vec![]).await.unwrap();
    let start = Instant::now();
    let mut seen = 0;
    let err = loop {
        match rows.try_next().await {
            Ok(Some(_)) => seen += 1,
            Ok(None) => panic!("the stalled statement ended without a timeout"),
            Err(e) => break e,
        }
    };
    assert_eq!(seen, 2, "the rows before the stall arrive");
    drop(rows);
    assert_cancelled_on_the_server(&err, start, &app).await;
    pool.query_one("SELECT 1", vec![]).await.expect("the connection is usable");
}

#[tokio::test]
async fn a_copy_past_its_deadline_is_cancelled_and_writes_nothing() {
    // A trigger that sleeps on the first row makes the COPY slow; with the statement
    // cache on and off (where the COPY runs in a transaction of its own).
    let table = unique("slow_copy");
    let setup = chakra_tests::pool().await;
    setup.execute(&format!("CREATE TABLE {table} (id int8)"), vec![]).await.unwrap();
    setup
        .execute(
            &format!(
                "CREATE FUNCTION {table}_slow() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN IF NEW.id = 0 THEN PERFORM pg_sleep(10); END IF; RETURN NEW; END $$"
            ),
            vec![],
        )
        .await
        .unwrap();
    setup
        .execute(
            &format!("CREATE TRIGGER slow BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {table}_slow()"),
            vec![],
        )
        .await
        .unwrap();
    let ids = chakra::Value::Array((0..100).map(chakra::Value::I64).collect());
    let rows = chakra::CopyRows::from_columns(&[ids]).unwrap();
    for cache in [true, false] {
        let app = unique("timeout_copy");
        let pool = builder(&database_url(), &app)
            .max_connections(1)
            .statement_cache(cache)
            .query_timeout(Duration::from_millis(200))
            .build()
            .await
            .unwrap();
        let before = backend_pid(&pool).await;
        let copy =
            Statement::new(format!("COPY {table} (id) FROM STDIN (FORMAT binary)"), vec![rows.clone().into_value()]);
        let start = Instant::now();
        let err = pool.run(Request::new(copy, Mode::CopyIn)).await.unwrap_err();
        assert_cancelled_on_the_server(&err, start, &app).await;
        assert_eq!(backend_pid(&pool).await, before, "cache {cache}: the connection was replaced, not reused");
        let count: i64 = pool.query_one(&format!("SELECT count(*) FROM {table}"), vec![]).await.unwrap().get(0);
        assert_eq!(count, 0, "cache {cache}: rows of the cancelled COPY were written");
    }
    setup.execute(&format!("DROP TABLE {table}"), vec![]).await.unwrap();
    setup.execute(&format!("DROP FUNCTION {table}_slow()"), vec![]).await.unwrap();
}

#[tokio::test]
async fn a_copy_whose_writer_stalls_is_aborted_at_its_deadline_and_writes_nothing() {
    let table = unique("stalled_copy");
    let app = unique("timeout_stalled_copy");
    let limit = Duration::from_millis(200);
    let pool = one_connection(&app, limit).await;
    pool.execute(&format!("CREATE TABLE {table} (id int8)"), vec![]).await.unwrap();

    // A header and two rows, then nothing more: the writer neither ends nor fails.
    let (mut writer, source) = chakra::copy_pipe();
    let copy =
        Request::new(Statement::new(format!("COPY {table} (id) FROM STDIN (FORMAT binary)"), vec![]), Mode::CopyIn)
            .copy_from(source);
    let ids = chakra::Value::Array(vec![chakra::Value::I64(1), chakra::Value::I64(2)]);
    let rows = chakra::CopyRows::piece_from_columns(&[ids]).unwrap().bytes();
    let stall = async {
        assert!(writer.send(Ok(bytes::Bytes::from_static(chakra::COPY_HEADER))).await);
        assert!(writer.send(Ok(rows)).await);
        std::future::pending::<()>().await
    };
    let start = Instant::now();
    let err = tokio::select! {
        result = pool.run(copy) => result.unwrap_err(),
        () = stall => unreachable!(),
    };
    // Aborted once the cancel was out, not after the grace period spent waiting for it.
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(start.elapsed() >= limit && start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());

    let count: i64 = pool.query_one(&format!("SELECT count(*) FROM {table}"), vec![]).await.unwrap().get(0);
    assert_eq!(count, 0, "rows of the aborted COPY were written");
    let sessions = backends(&admin(&database_url()).await, &app).await;
    assert!(sessions.iter().all(|(_, state, _)| state == "idle"), "still busy after the abort: {sessions:?}");
    pool.execute(&format!("DROP TABLE {table}"), vec![]).await.unwrap();
}
