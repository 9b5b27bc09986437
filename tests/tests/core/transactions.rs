//! Transactions: commit, rollback, savepoints, the retrying closure form, and — the part
//! other libraries get wrong — connections never returned to the pool mid-transaction.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chakra::{ErrorKind, IsolationLevel, Pool, Queryable, TransactionOptions};
use chakra_tests::{admin, backends, builder, database_url, eventually, pool, unique};

async fn counter_table(pool: &Pool) -> String {
    let table = unique("tx");
    pool.execute(&format!("CREATE TABLE {table} (id int PRIMARY KEY, note text)"), vec![]).await.unwrap();
    table
}

async fn ids(pool: &Pool, table: &str) -> Vec<i32> {
    pool.query(&format!("SELECT id FROM {table} ORDER BY id"), vec![]).await.unwrap().iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn committed_work_is_visible_and_rolled_back_work_is_not() {
    let pool = pool().await;
    let table = counter_table(&pool).await;

    let tx = pool.begin().await.unwrap();
    tx.execute(&format!("INSERT INTO {table} VALUES (1)"), vec![]).await.unwrap();
    assert_eq!(ids(&pool, &table).await, Vec::<i32>::new(), "uncommitted row visible outside");
    tx.commit().await.unwrap();
    assert_eq!(ids(&pool, &table).await, vec![1]);

    let tx = pool.begin().await.unwrap();
    tx.execute(&format!("INSERT INTO {table} VALUES (2)"), vec![]).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(ids(&pool, &table).await, vec![1]);
    pool.execute(&format!("DROP TABLE {table}"), vec![]).await.unwrap();
}

#[tokio::test]
async fn a_savepoint_rolls_back_only_its_own_work() {
    let pool = pool().await;
    let table = counter_table(&pool).await;

    let tx = pool.begin().await.unwrap();
    tx.execute(&format!("INSERT INTO {table} VALUES (1)"), vec![]).await.unwrap();
    let inner = tx.savepoint().await.unwrap();
    assert!(inner.is_savepoint());
    inner.execute(&format!("INSERT INTO {table} VALUES (2)"), vec![]).await.unwrap();
    inner.rollback().await.unwrap();
    let kept = tx.savepoint().await.unwrap();
    kept.execute(&format!("INSERT INTO {table} VALUES (3)"), vec![]).await.unwrap();
    kept.commit().await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids(&pool, &table).await, vec![1, 3]);
    pool.execute(&format!("DROP TABLE {table}"), vec![]).await.unwrap();
}

#[tokio::test]
async fn a_dropped_savepoint_is_rolled_back_before_the_next_statement() {
    let pool = pool().await;
    let table = counter_table(&pool).await;
    let tx = pool.begin().await.unwrap();
    tx.execute(&format!("INSERT INTO {table} VALUES (1)"), vec![]).await.unwrap();
    {
        let inner = tx.savepoint().await.unwrap();
        inner.execute(&format!("INSERT INTO {table} VALUES (2)"), vec![]).await.unwrap();
    }
    let seen: Vec<i32> = tx
        .query(&format!("SELECT id FROM {table} ORDER BY id"), vec![])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(seen, vec![1]);
    tx.commit().await.unwrap();
    assert_eq!(ids(&pool, &table).await, vec![1]);
    pool.execute(&format!("DROP TABLE {table}"), vec![]).await.unwrap();
}

#[tokio::test]
async fn using_a_finished_transaction_is_an_error() {
    let pool = pool().await;
    let tx = pool.begin().await.unwrap();
    let clone = tx.clone();
    tx.commit().await.unwrap();
    let err = clone.query("SELECT 1", vec![]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
}

#[tokio::test]
async fn the_closure_form_commits_on_ok_and_rolls_back_on_err() {
    let pool = pool().await;
    let table = counter_table(&pool).await;
    let insert = format!("INSERT INTO {table} VALUES ($1)");

    let n = pool
        .transaction(|tx| {
            let insert = insert.clone();
            async move { tx.execute(&insert, vec![1_i32.into()]).await }
        })
        .await
        .unwrap();
    assert_eq!(n, 1);

    let err = pool
        .transaction(|tx| {
            let insert = insert.clone();
            async move {
                tx.execute(&insert, vec![2_i32.into()]).await?;
                tx.execute(&insert, vec![1_i32.into()]).await // duplicate key
            }
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert_eq!(ids(&pool, &table).await, vec![1], "the failed body's first insert survived");
    pool.execute(&format!("DROP TABLE {table}"), vec![]).await.unwrap();
}

const RAISE_SERIALIZATION_FAILURE: &str =
    "DO $$ BEGIN RAISE EXCEPTION 'simulated conflict' USING ERRCODE = 'serialization_failure'; END $$";

#[tokio::test]
async fn the_closure_form_reruns_the_body_after_a_serialization_failure_when_asked() {
    let pool = pool().await;
    let table = counter_table(&pool).await;
    let runs = Arc::new(AtomicU32::new(0));
    let options = TransactionOptions::default().isolation(IsolationLevel::Serializable).retries(3);

    pool.transaction_with(options, |tx| {
        let (runs, table) = (runs.clone(), table.clone());
        async move {
            tx.execute(&format!("INSERT INTO {table} VALUES (1)"), vec![]).await?;
            if runs.fetch_add(1, Ordering::SeqCst) < 2 {
                tx.execute(RAISE_SERIALIZATION_FAILURE, vec![]).await?;
            }
            Ok(())
        }
    })
    .await
    .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert_eq!(ids(&pool, &table).await, vec![1]);

    // Without opting in, the conflict is the caller's.
    let err =
        pool.transaction(|tx| async move { tx.execute(RAISE_SERIALIZATION_FAILURE, vec![]).await }).await.unwrap_err();
    assert!(err.is_transaction_conflict(), "{err}");
    pool.execute(&format!("DROP TABLE {table}"), vec![]).await.unwrap();
}

#[tokio::test]
async fn a_dropped_transaction_handle_is_rolled_back_before_its_connection_is_reused() {
    let app = unique("tx_drop");
    let pool = builder(&database_url(), &app).max_connections(1).build().await.unwrap();
    let table = counter_table(&pool).await;

    let tx = pool.begin().await.unwrap();
    tx.execute(&format!("INSERT INTO {table} VALUES (1)"), vec![]).await.unwrap();
    drop(tx);

    // The only connection must come back outside any transaction.
    let in_tx = pool.query_one("SELECT pg_current_xact_id_if_assigned() IS NOT NULL", vec![]).await.unwrap();
    assert!(!in_tx.get::<_, bool>(0), "the pool handed out a connection inside the dropped transaction");
    assert_eq!(ids(&pool, &table).await, Vec::<i32>::new());
    pool.execute(&format!("DROP TABLE {table}"), vec![]).await.unwrap();
}

#[tokio::test]
async fn a_transaction_begun_by_raw_sql_is_rolled_back_before_its_connection_is_reused() {
    let app = unique("tx_raw");
    let pool = builder(&database_url(), &app).max_connections(1).build().await.unwrap();
    let table = counter_table(&pool).await;
    // Whether the one connection is in a transaction that has written.
    let written = || async {
        let row = pool.query_one("SELECT pg_current_xact_id_if_assigned() IS NOT NULL", vec![]).await.unwrap();
        row.get::<_, bool>(0)
    };

    // A session left inside a BEGIN sent as SQL, then dropped.
    let session = pool.session().await.unwrap();
    session.execute("begin", vec![]).await.unwrap();
    session.execute(&format!("INSERT INTO {table} VALUES (1)"), vec![]).await.unwrap();
    drop(session);
    assert!(!written().await, "the pool handed out a connection inside the session's BEGIN");
    assert_eq!(ids(&pool, &table).await, Vec::<i32>::new(), "the insert was rolled back");

    // The same sent straight to the pool: its connection comes back without it, so the
    // next statement on it commits on its own.
    pool.execute("START TRANSACTION", vec![]).await.unwrap();
    pool.execute(&format!("INSERT INTO {table} VALUES (3)"), vec![]).await.unwrap();
    assert!(!written().await, "the pool handed out a connection inside the BEGIN");
    assert_eq!(ids(&pool, &table).await, vec![3]);

    // A BEGIN behind comments (a tool's tag) is a BEGIN all the same.
    let session = pool.session().await.unwrap();
    session.execute("/* job=nightly /* nested */ */ -- step 1\nBEGIN", vec![]).await.unwrap();
    session.execute(&format!("INSERT INTO {table} VALUES (4)"), vec![]).await.unwrap();
    drop(session);
    assert!(!written().await, "the pool handed out a connection inside the commented BEGIN");
    assert_eq!(ids(&pool, &table).await, vec![3]);

    // Ended by SQL, nothing is left to roll back, and the work stays.
    let session = pool.session().await.unwrap();
    session.execute("BEGIN", vec![]).await.unwrap();
    session.execute(&format!("INSERT INTO {table} VALUES (2)"), vec![]).await.unwrap();
    session.execute("COMMIT", vec![]).await.unwrap();
    drop(session);
    assert_eq!(ids(&pool, &table).await, vec![2, 3]);
    pool.execute(&format!("DROP TABLE {table}"), vec![]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_future_dropped_mid_statement_leaves_no_transaction_or_lock() {
    let app = unique("tx_cancel");
    let pool = builder(&database_url(), &app).max_connections(2).build().await.unwrap();
    let table = counter_table(&pool).await;
    pool.execute(&format!("INSERT INTO {table} VALUES (1, 'before')"), vec![]).await.unwrap();

    let task = {
        let (pool, table) = (pool.clone(), table.clone());
        tokio::spawn(async move {
            let tx = pool.begin().await.unwrap();
            tx.execute(&format!("UPDATE {table} SET note = 'locked' WHERE id = 1"), vec![]).await.unwrap();
            tx.query("SELECT pg_sleep(30)", vec![]).await.unwrap();
            tx.commit().await.unwrap();
        })
    };
    let admin = admin(&database_url()).await;
    eventually(Duration::from_secs(5), "the transaction is sleeping while holding its row lock", || async {
        backends(&admin, &app).await.iter().any(|(_, _, q)| q.contains("pg_sleep(30)")).then_some(())
    })
    .await;
    task.abort();
    let _ = task.await;

    eventually(Duration::from_secs(5), "no backend of the pool is in a transaction or running a statement", || async {
        backends(&admin, &app).await.iter().all(|(_, state, _)| state == "idle").then_some(())
    })
    .await;
    // The row lock is gone: another connection can update the row at once.
    admin.batch_execute("SET lock_timeout = '2s'").await.unwrap();
    let updated = admin.execute(&format!("UPDATE {table} SET note = 'after' WHERE id = 1"), &[]).await.unwrap();
    assert_eq!(updated, 1);
    let note: String = admin.query_one(&format!("SELECT note FROM {table}"), &[]).await.unwrap().get(0);
    assert_eq!(note, "after", "the aborted transaction's update was committed");
    pool.execute(&format!("DROP TABLE {table}"), vec![]).await.unwrap();
}

#[tokio::test]
async fn a_transaction_dropped_on_a_session_is_rolled_back_before_the_sessions_next_statement() {
    let pool = pool().await;
    let table = counter_table(&pool).await;
    let session = pool.session().await.unwrap();
    let tx = session.begin().await.unwrap();
    tx.execute(&format!("INSERT INTO {table} VALUES (1)"), vec![]).await.unwrap();
    drop(tx);

    let in_tx = session.query_one("SELECT pg_current_xact_id_if_assigned() IS NOT NULL", vec![]).await.unwrap();
    assert!(!in_tx.get::<_, bool>(0), "the session is still inside the dropped transaction");
    session.execute(&format!("INSERT INTO {table} VALUES (2)"), vec![]).await.unwrap();
    assert_eq!(ids(&pool, &table).await, vec![2]);
    pool.execute(&format!("DROP TABLE {table}"), vec![]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_abandoned_on_a_session_is_stopped_on_the_server_when_the_session_ends() {
    let app = unique("session_abandon");
    let pool = builder(&database_url(), &app).build().await.unwrap();
    let session = pool.session().await.unwrap();
    // The caller gives up (drops the future) while the statement runs.
    let abandoned =
        tokio::time::timeout(Duration::from_millis(300), session.query("SELECT pg_sleep(30)", vec![])).await;
    assert!(abandoned.is_err(), "the statement should still have been running");

    // What that statement left behind is unknown, so the session refuses to go on…
    let err = session.query("SELECT 1", vec![]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    drop(session);

    // …and ending it stops the statement on the server instead of letting it run on.
    let admin = admin(&database_url()).await;
    eventually(Duration::from_secs(5), "the abandoned pg_sleep is no longer running", || async {
        backends(&admin, &app).await.iter().all(|(_, _, q)| !q.contains("pg_sleep(30)")).then_some(())
    })
    .await;
}
