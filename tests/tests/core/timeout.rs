//! Statement deadlines: the caller gets `Timeout` quickly, the server stops working, and the
//! connection is reusable.

use std::time::{Duration, Instant};

use chakra::{ErrorKind, Mode, Queryable, Request, Statement};
use chakra_tests::{admin, backends, builder, database_url, eventually, unique};

#[tokio::test]
async fn timeout_cancels_the_statement_on_the_server() {
    let app = unique("timeout");
    let pool = builder(&database_url(), &app)
        .max_connections(1)
        .query_timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    let before = pool.query_one("SELECT pg_backend_pid()", vec![]).await.unwrap().get::<_, i32>(0);

    let start = Instant::now();
    let err = pool.query("SELECT pg_sleep(10)", vec![]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.to_string().contains("cancelled on the server"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());

    let admin = admin(&database_url()).await;
    let sessions = backends(&admin, &app).await;
    assert!(
        sessions.iter().all(|(_, state, _)| state == "idle"),
        "the backend is still busy after the timeout: {sessions:?}"
    );
    // The same connection, clean, serves the next request.
    let after = pool.query_one("SELECT pg_backend_pid()", vec![]).await.unwrap().get::<_, i32>(0);
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
