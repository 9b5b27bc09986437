//! `query_stream`: rows read from the socket as the caller consumes them — complete and in
//! order, in bounded memory, and safe to abandon half-way.

use std::time::Duration;

use chakra::{Queryable, Value};
use chakra_tests::{admin, backends, builder, database_url, eventually, pool, unique};
use futures::{StreamExt, TryStreamExt};

#[tokio::test]
async fn streams_100k_rows_in_order_to_the_end() {
    let pool = pool().await;
    let mut rows = pool
        .query_stream("SELECT g FROM generate_series(1, $1::int4) g ORDER BY g", vec![100_000.into()])
        .await
        .expect("start the stream");
    let mut expected = 1_i32;
    while let Some(row) = rows.try_next().await.expect("read a row") {
        assert_eq!(row.get::<_, i32>(0), expected, "rows out of order or missing");
        expected += 1;
    }
    assert_eq!(expected - 1, 100_000, "the stream ended early");
    assert!(rows.next().await.is_none(), "a finished stream stays finished");
}

/// This process's resident set size, in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/self/status");
    let kb: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS in kB");
    kb * 1024
}

#[tokio::test]
async fn a_large_stream_is_read_in_bounded_memory() {
    const ROWS: i64 = 100_000;
    const WIDTH: usize = 2_000;
    // Buffered, the result would take ~200 MB; streamed, only a few rows are in memory.
    const LIMIT: u64 = 64 * 1024 * 1024;

    let pool = pool().await;
    let baseline = resident_bytes();
    let mut rows = pool
        .query_stream(
            "SELECT g, repeat('x', $1::int4) FROM generate_series(1, $2::int8) g",
            vec![(WIDTH as i32).into(), ROWS.into()],
        )
        .await
        .expect("start the stream");
    let (mut count, mut bytes, mut peak_growth) = (0_i64, 0_usize, 0_u64);
    while let Some(row) = rows.try_next().await.expect("read a row") {
        count += 1;
        assert_eq!(row.get::<_, i64>(0), count, "rows out of order");
        bytes += row.get::<_, &str>(1).len();
        if count % 5_000 == 0 {
            peak_growth = peak_growth.max(resident_bytes().saturating_sub(baseline));
        }
    }
    assert_eq!(count, ROWS, "the stream ended early");
    assert_eq!(bytes, ROWS as usize * WIDTH, "the stream lost data");
    assert!(
        peak_growth < LIMIT,
        "resident memory grew by {} MB while streaming {} MB",
        peak_growth / (1024 * 1024),
        bytes / (1024 * 1024)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_stream_half_way_stops_the_query_on_the_server() {
    let app = unique("stream_drop");
    let pool = builder(&database_url(), &app).max_connections(1).build().await.expect("connect");
    let check = admin(&database_url()).await;
    let running = |backends: &[(i32, String, String)]| {
        backends.iter().any(|(_, state, query)| state == "active" && query.contains("generate_series"))
    };

    let mut rows = pool
        // generate_series in the select list streams; in FROM it would first materialise.
        .query_stream("SELECT g, repeat('y', 500) FROM (SELECT generate_series(1, 50000000) AS g) s", vec![])
        .await
        .expect("start the stream");
    for i in 1..=1_000_i32 {
        let row = rows.try_next().await.expect("read a row").expect("the stream has more rows");
        assert_eq!(row.get::<_, i32>(0), i);
    }
    // The server is still producing the result (blocked on the socket we stopped reading).
    assert!(running(&backends(&check, &app).await), "the query was not running while streamed");

    drop(rows);
    eventually(Duration::from_secs(10), "the abandoned query stops on the server", || async {
        (!running(&backends(&check, &app).await)).then_some(())
    })
    .await;

    // The pool (of one connection) is free for the next request.
    let row = tokio::time::timeout(Duration::from_secs(10), pool.query_one("SELECT $1::int4 * 2", vec![21.into()]))
        .await
        .expect("the pool is still held by the dropped stream")
        .expect("a new query after the dropped stream");
    assert_eq!(row.get::<_, i32>(0), 42);
    assert_eq!(pool.status().in_use, 0, "{:?}", pool.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_inside_a_transaction_sees_its_writes_and_then_commits() {
    let pool = pool().await;
    let table = unique("stream_tx");
    pool.execute(&format!("CREATE TABLE {table} (id int8 PRIMARY KEY, note text)"), vec![])
        .await
        .expect("create table");

    let tx = pool.begin().await.expect("begin");
    tx.execute(
        &format!("INSERT INTO {table} (id, note) SELECT g, 'row ' || g FROM generate_series(1, 5000) g"),
        vec![],
    )
    .await
    .expect("insert in the transaction");
    let streamed = {
        let rows = tx
            .query_stream(&format!("SELECT id, note FROM {table} WHERE id > $1 ORDER BY id"), vec![Value::I64(0)])
            .await
            .expect("stream in the transaction");
        rows.map_ok(|row| row.get::<_, i64>(0)).try_collect::<Vec<_>>().await.expect("read the stream")
    };
    assert_eq!(streamed, (1..=5000).collect::<Vec<i64>>(), "the stream does not see the transaction's rows");

    tx.execute(&format!("INSERT INTO {table} (id, note) VALUES ($1, $2)"), vec![Value::I64(5001), "after".into()])
        .await
        .expect("the transaction goes on after the stream");
    tx.commit().await.expect("commit");

    let check = admin(&database_url()).await;
    let count: i64 = check.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.expect("count").get(0);
    assert_eq!(count, 5001, "the commit did not keep every row");
    pool.execute(&format!("DROP TABLE {table}"), vec![]).await.expect("drop table");
}

/// A stream read to its end has given the connection back, even while the variable that
/// holds it is still in scope — as it is after a `while let` loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_stream_does_not_hold_the_transaction() {
    let pool = pool().await;
    let tx = pool.begin().await.expect("begin");
    let mut rows = tx.query_stream("SELECT g FROM generate_series(1, 10) g", vec![]).await.expect("stream");
    let mut seen = 0;
    while let Some(row) = rows.try_next().await.expect("read a row") {
        seen += row.get::<_, i32>(0);
    }
    assert_eq!(seen, 55);

    let next = tokio::time::timeout(Duration::from_secs(5), tx.query_one("SELECT 1", vec![])).await;
    let row = next.expect("the next statement waits for the finished (but not dropped) stream").expect("select");
    assert_eq!(row.get::<_, i32>(0), 1);
    drop(rows);
    tx.commit().await.expect("commit");
}

/// The same for a pooled stream: the connection returns to the pool once the stream ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_stream_does_not_hold_a_pooled_connection() {
    let pool = builder(&database_url(), &unique("stream_done"))
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .build()
        .await
        .expect("connect");
    let mut rows = pool.query_stream("SELECT g FROM generate_series(1, 10) g", vec![]).await.expect("stream");
    while rows.try_next().await.expect("read a row").is_some() {}

    let row =
        pool.query_one("SELECT 2", vec![]).await.expect("the only connection is still held by the finished stream");
    assert_eq!(row.get::<_, i32>(0), 2);
    drop(rows);
}
