//! The tables, the SQL, the rows and their decoding. Both sides share all of it, so the
//! only thing that differs between them is the path a query takes to the server.

use chakra::chrono::{DateTime, TimeZone, Utc};
use tokio_postgres::{Client, Row};

use crate::Result;

/// Rows in `bench_users`.
pub const USERS: i64 = 100_000;
/// Rows returned by the fetch shape.
pub const FETCH_ROWS: i64 = 10_000;
/// Rows written by the bulk-insert shape.
pub const INSERT_ROWS: usize = 10_000;

pub const GET_SQL: &str = "SELECT id, name, email, score, created FROM bench_users WHERE id = $1";
pub const GET_BATCH_SQL: &str = "SELECT id, name, email, score, created FROM bench_users WHERE id = ANY($1)";
pub const FETCH_SQL: &str = "SELECT id, name, email, score, created FROM bench_users WHERE id <= $1";
pub const STREAM_SQL: &str = "SELECT id, name, email, score, created FROM bench_users";
pub const UNNEST_SQL: &str = "INSERT INTO bench_insert (name, email, score, created) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::float8[], $4::timestamptz[])";
pub const COPY_SQL: &str = "COPY bench_insert (name, email, score, created) FROM STDIN BINARY";

/// Drops and recreates the `bench_` tables and fills `bench_users`. The rows are made by
/// the server in one statement: setup time is not what this bench is about.
pub async fn setup(admin: &Client) -> Result<()> {
    admin
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS bench_users, bench_insert;
             CREATE TABLE bench_users (
                 id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL,
                 score float8 NOT NULL, created timestamptz NOT NULL);
             CREATE TABLE bench_insert (
                 id bigserial PRIMARY KEY, name text NOT NULL, email text NOT NULL,
                 score float8 NOT NULL, created timestamptz NOT NULL);
             INSERT INTO bench_users
                 SELECT g, 'user ' || g, 'user' || g || '@example.com', g * 0.25,
                        timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute'
                 FROM generate_series(1, {USERS}) AS g;"
        ))
        .await?;
    // On its own: a multi-statement string runs as one transaction, which VACUUM refuses.
    admin.batch_execute("VACUUM ANALYZE bench_users").await?;
    Ok(())
}

/// Empties `bench_insert` between bulk-insert iterations (outside the timed part).
pub async fn reset_insert_table(admin: &Client) -> Result<()> {
    admin.batch_execute("TRUNCATE bench_insert RESTART IDENTITY").await?;
    Ok(())
}

/// One `bench_users` row, every column decoded into an owned Rust value: both sides pay
/// the full decoding cost, as an application using the rows would.
// Most fields are only handed to `black_box`: decoded to be paid for, never read.
#[allow(dead_code)]
#[derive(Debug)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub score: f64,
    pub created: DateTime<Utc>,
}

impl User {
    pub fn from_row(row: &Row) -> std::result::Result<User, tokio_postgres::Error> {
        Ok(User {
            id: row.try_get(0)?,
            name: row.try_get(1)?,
            email: row.try_get(2)?,
            score: row.try_get(3)?,
            created: row.try_get(4)?,
        })
    }
}

/// A row to insert (the table assigns `id`).
pub struct NewUser {
    pub name: String,
    pub email: String,
    pub score: f64,
    pub created: DateTime<Utc>,
}

pub fn new_users(n: usize) -> Vec<NewUser> {
    let epoch = Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).single().expect("a valid date");
    (0..n)
        .map(|i| NewUser {
            name: format!("new user {i}"),
            email: format!("new{i}@example.com"),
            score: i as f64 * 0.5,
            created: epoch + chakra::chrono::Duration::seconds(i as i64),
        })
        .collect()
}

/// `n` ids spread over the whole table, the same on every run. A fixed xorshift keeps the
/// bench free of a `rand` dependency and makes both sides read exactly the same rows.
pub fn random_ids(n: usize, seed: u64) -> Vec<i64> {
    let mut state = seed | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % USERS as u64) as i64 + 1
        })
        .collect()
}
