//! The quick-start demo: a pool, parameterised queries, a transaction, concurrent lookups
//! merged by the batch layer, and a streamed result — everything through Chakra's stack.
//!
//! Run it with `scripts/demo` (which starts a throwaway PostgreSQL when `DATABASE_URL` is
//! unset), or `DATABASE_URL=postgresql://... cargo run -p chakra --example quickstart`.

use std::time::Instant;

use chakra::prelude::*;
use chakra::{Labels, Mode, PointLookup, Request, SharedStr, Statement};
use futures::future::try_join_all;
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<()> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".into());
    let pool = chakra::Pool::builder().url(&url).min_connections(2).max_connections(10).build().await?;
    println!("connected: {:?}", pool.status());

    pool.execute("DROP TABLE IF EXISTS quickstart_users", vec![]).await?;
    pool.execute(
        "CREATE TABLE quickstart_users (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, is_active bool NOT NULL)",
        vec![],
    )
    .await?;

    // Bulk insert: one statement, the rows as arrays (UNNEST), not thousands of binds.
    let names: Vec<String> = (1..=1000).map(|i| format!("user{i:04}")).collect();
    let active: Vec<bool> = (1..=1000).map(|i| i % 3 != 0).collect();
    let inserted = pool
        .execute(
            "INSERT INTO quickstart_users (name, is_active) SELECT * FROM UNNEST($1::text[], $2::bool[])",
            vec![names.into(), active.into()],
        )
        .await?;
    println!("inserted {inserted} users in one statement");

    let rows = pool
        .query(
            "SELECT id, name FROM quickstart_users WHERE is_active = $1 AND name LIKE $2 ORDER BY id LIMIT 3",
            vec![true.into(), "user00%".into()],
        )
        .await?;
    for row in &rows {
        println!("  active user {} is {}", row.get::<_, i64>("id"), row.get::<_, String>("name"));
    }

    // A transaction that fails is rolled back, and the error names the constraint.
    let err = pool
        .transaction(|tx| async move {
            tx.execute("UPDATE quickstart_users SET is_active = false WHERE id = 1", vec![]).await?;
            tx.execute("INSERT INTO quickstart_users (name, is_active) VALUES ('user0002', true)", vec![]).await
        })
        .await
        .unwrap_err();
    println!("transaction rolled back: {:?} on constraint {:?}", err.kind(), err.constraint());
    let still_active: bool =
        pool.query_one("SELECT is_active FROM quickstart_users WHERE id = 1", vec![]).await?.get(0);
    println!("  user 1 still active: {still_active}");

    // 500 concurrent lookups by primary key: the batch layer merges them into a few
    // `= ANY($1)` queries, and each caller still gets its own row.
    // Text that lives as long as the program is shared without reference counting.
    let batch_sql = SharedStr::from_static("SELECT id, name FROM quickstart_users WHERE id = ANY($1)");
    let lookup = |id: i64| {
        let sql = SharedStr::from_static("SELECT id, name FROM quickstart_users WHERE id = $1");
        Request::new(Statement::new(sql, vec![id.into()]), Mode::One)
            .labels(Labels::new("SELECT", Some(SharedStr::from_static("quickstart_users"))))
            .point_lookup(PointLookup { batch_sql: batch_sql.clone(), key_column: 0, key: id.into() })
    };
    let start = Instant::now();
    let users = try_join_all((1..=500).map(|id| {
        let request = lookup(id);
        let pool = &pool;
        async move { pool.run(request).await?.into_row() }
    }))
    .await?;
    assert!(users.iter().zip(1..).all(|(row, id)| row.get::<_, i64>(0) == id));
    println!("500 concurrent gets answered in {:?}", start.elapsed());

    // Streaming: rows are decoded as they arrive, never all held in memory.
    let mut stream = pool.query_stream("SELECT id FROM quickstart_users ORDER BY id", vec![]).await?;
    let (mut count, mut sum) = (0, 0_i64);
    while let Some(row) = stream.next().await {
        sum += row?.get::<_, i64>(0);
        count += 1;
    }
    println!("streamed {count} rows (sum of ids {sum})");

    pool.execute("DROP TABLE quickstart_users", vec![]).await?;
    println!("done: {:?}", pool.status());
    Ok(())
}
