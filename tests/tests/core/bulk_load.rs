//! `insert_many` of many rows loads them by binary `COPY` where the table takes it exactly
//! as it would the `INSERT`, and falls back to the `INSERT` where it would not (a view,
//! row-level security, a column of another type than its field). Which one ran is read
//! off the operations the stack saw, through a layer of the test's own.

use std::sync::{Arc, Mutex};

use chakra::models::BULK_LOAD_MIN_ROWS;
use chakra::prelude::*;
use chakra::{ErrorKind, PoolBuilder, Request};
use tower::util::MapRequestLayer;

use crate::models::every_type::{self, EveryType};
use crate::models::{cleanup, db_with, user, User};
use chakra_tests::backend_pid;

/// The operation label (`SELECT`, `COPY`, `INSERT`, …) of every request the pool runs.
type Seen = Arc<Mutex<Vec<String>>>;

async fn recorded(configure: impl FnOnce(PoolBuilder) -> PoolBuilder) -> (Pool, String, Seen) {
    let seen = Seen::default();
    let record = seen.clone();
    let layer = MapRequestLayer::new(move |request: Request| {
        record.lock().unwrap().push(request.labels.operation.to_string());
        request
    });
    let (pool, schema) = db_with(|builder| configure(builder.layer(layer))).await;
    seen.lock().unwrap().clear();
    (pool, schema, seen)
}

fn taken(seen: &Seen) -> Vec<String> {
    std::mem::take(&mut *seen.lock().unwrap())
}

fn users(n: usize, prefix: &str) -> Vec<User> {
    (0..n).map(|i| user(&format!("{prefix}{i}"), (i % 3 == 0).then_some("x@y"), i % 2 == 0, i as i32)).collect()
}

/// What `model_users` holds, read with plain SQL (its `order` column may not be the
/// model's type).
async fn stored_users(pool: &Pool) -> Vec<(String, Option<String>, bool, i32)> {
    let sql = r#"SELECT name, email, is_active, "order"::int4 FROM model_users ORDER BY 4, 1"#;
    let rows = pool.query(sql, vec![]).await.unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect()
}

fn expected(rows: &[User]) -> Vec<(String, Option<String>, bool, i32)> {
    let mut rows: Vec<_> = rows.iter().map(|u| (u.name.clone(), u.email.clone(), u.is_active, u.rank)).collect();
    rows.sort_by(|a, b| (a.3, &a.0).cmp(&(b.3, &b.0)));
    rows
}

#[tokio::test]
async fn many_rows_go_in_by_copy_and_few_by_insert() {
    let (pool, schema, seen) = recorded(|b| b).await;
    let many = users(BULK_LOAD_MIN_ROWS + 1500, "m");
    assert_eq!(User::insert_many(&pool, &many).await.unwrap(), many.len() as u64);
    assert_eq!(taken(&seen), ["SELECT", "COPY"], "the catalog check, then the COPY");

    let few = users(BULK_LOAD_MIN_ROWS - 1, "f");
    assert_eq!(User::insert_many(&pool, &few).await.unwrap(), few.len() as u64);
    assert_eq!(taken(&seen), ["INSERT"], "below the threshold the catalog check is not worth it");

    let stored = stored_users(&pool).await;
    assert_eq!(stored, expected(&[many.clone(), few].concat()));
    // The generated keys were left to the database, as with the INSERT.
    let ids = User::query().all(&pool).await.unwrap().into_iter().map(|u| u.id);
    assert_eq!(ids.collect::<std::collections::HashSet<_>>().len(), stored.len());
    cleanup(schema).await;
}

#[tokio::test]
async fn every_supported_type_round_trips_through_copy() {
    let (pool, schema, seen) = recorded(|b| b).await;
    pool.execute(every_type::TABLE, vec![]).await.unwrap();
    let sample = every_type::sample();
    let rows: Vec<EveryType> = (0..BULK_LOAD_MIN_ROWS as u128)
        .map(|n| EveryType {
            id: chakra::uuid::Uuid::from_u128(n),
            maybe: (n % 2 == 0).then_some(n as i64),
            text: format!("{} {n}", sample.text),
            ..sample.clone()
        })
        .collect();
    taken(&seen);
    assert_eq!(EveryType::insert_many(&pool, &rows).await.unwrap(), rows.len() as u64);
    assert_eq!(taken(&seen), ["SELECT", "COPY"]);
    let mut stored = EveryType::query().all(&pool).await.unwrap();
    stored.sort_by_key(|r| r.id);
    assert_eq!(stored, rows);
    cleanup(schema).await;
}

#[tokio::test]
async fn tables_copy_would_treat_differently_get_the_insert() {
    // Each setup leaves `model_users` something `COPY` would not fill as the INSERT does.
    let setups: [&[&str]; 3] = [
        // An updatable view: `COPY` refuses views.
        &["ALTER TABLE model_users RENAME TO base_users", "CREATE VIEW model_users AS SELECT * FROM base_users"],
        // Row-level security: `COPY` refuses it where it applies.
        &["ALTER TABLE model_users ENABLE ROW LEVEL SECURITY"],
        // A column wider than its field: binary `COPY` has no casts, the INSERT does.
        &[r#"ALTER TABLE model_users ALTER COLUMN "order" TYPE int8"#],
    ];
    for setup in setups {
        let (pool, schema, seen) = recorded(|b| b).await;
        for statement in setup {
            pool.execute(statement, vec![]).await.unwrap();
        }
        taken(&seen);
        let rows = users(BULK_LOAD_MIN_ROWS, "v");
        assert_eq!(User::insert_many(&pool, &rows).await.unwrap(), rows.len() as u64, "{setup:?}");
        assert_eq!(taken(&seen), ["SELECT", "INSERT"], "{setup:?}");
        assert_eq!(stored_users(&pool).await, expected(&rows), "{setup:?}");
        cleanup(schema).await;
    }
}

#[tokio::test]
async fn a_violation_during_copy_writes_nothing_and_names_its_constraint() {
    let (pool, schema, seen) = recorded(|b| b).await;
    let mut rows = users(BULK_LOAD_MIN_ROWS + 10, "c");
    rows.last_mut().unwrap().name = "c3".into();
    let err = User::insert_many(&pool, &rows).await.unwrap_err();
    assert_eq!(taken(&seen), ["SELECT", "COPY"]);
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert_eq!(err.constraint(), Some("model_users_name_key"));
    assert_eq!(User::query().count(&pool).await.unwrap(), 0, "half of the rows were written");
    cleanup(schema).await;
}

#[tokio::test]
async fn copy_inside_a_transaction_commits_and_rolls_back_with_it() {
    let (pool, schema, seen) = recorded(|b| b).await;
    let rows = users(BULK_LOAD_MIN_ROWS, "t");
    let tx = pool.begin().await.unwrap();
    assert_eq!(User::insert_many(&tx, &rows).await.unwrap(), rows.len() as u64);
    assert_eq!(User::query().count(&tx).await.unwrap(), rows.len() as i64);
    tx.rollback().await.unwrap();
    assert_eq!(User::query().count(&pool).await.unwrap(), 0);

    let tx = pool.begin().await.unwrap();
    User::insert_many(&tx, &rows).await.unwrap();
    tx.commit().await.unwrap();
    assert!(taken(&seen).contains(&"COPY".to_owned()));
    assert_eq!(stored_users(&pool).await, expected(&rows));
    cleanup(schema).await;
}

#[tokio::test]
async fn copy_without_the_statement_cache_leaves_no_transaction_open() {
    // Without the cache (PgBouncer in transaction mode) the COPY runs in a transaction of
    // its own; on a failure as on a success, the connection must come back out of it.
    let (pool, schema, seen) = recorded(|b| b.statement_cache(false).max_connections(1)).await;
    let rows = users(BULK_LOAD_MIN_ROWS, "n");
    assert_eq!(User::insert_many(&pool, &rows).await.unwrap(), rows.len() as u64);
    assert_eq!(taken(&seen), ["SELECT", "COPY"]);
    let err = User::insert_many(&pool, &rows).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity);
    // One connection: the one both COPYs ran on, idle and outside any transaction.
    let pid = backend_pid(&pool).await;
    let state: String = chakra_tests::pool()
        .await
        .query_one("SELECT state FROM pg_stat_activity WHERE pid = $1", vec![pid.into()])
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "idle", "the connection was left inside a transaction");
    assert_eq!(stored_users(&pool).await, expected(&rows));
    cleanup(schema).await;
}
