//! `orm-bench`'s own tables and raw SQL. Their names are its own (`bench_orm_*`): the
//! server is shared, and other benches create a `bench_users` of their own shape.

use tokio_postgres::Client;

use crate::data;
use crate::Result;

pub const GET_SQL: &str = "SELECT id, name, email, score, created FROM bench_orm_users WHERE id = $1";
pub const FETCH_SQL: &str = "SELECT id, name, email, score, created FROM bench_orm_users WHERE id <= $1";
pub const STREAM_SQL: &str = "SELECT id, name, email, score, created FROM bench_orm_users";
pub const UNNEST_SQL: &str = "INSERT INTO bench_orm_insert (name, email, score, created) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::float8[], $4::timestamptz[])";
/// [`UNNEST_SQL`] reading every stored row back, as Chakra's `insert_all` does.
pub const UNNEST_RETURNING_SQL: &str = "INSERT INTO bench_orm_insert (name, email, score, created) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::float8[], $4::timestamptz[]) \
     RETURNING id, name, email, score, created";
/// The raw side's bulk insert: binary `COPY`, what Chakra's `insert_many` sends for as
/// many rows.
pub const COPY_SQL: &str = "COPY bench_orm_insert (name, email, score, created) FROM STDIN (FORMAT binary)";
/// Reads back what a bulk insert stored, to check it.
pub const INSERTED_SQL: &str = "SELECT id, name, email, score, created FROM bench_orm_insert";

/// Drops and recreates `bench_orm_users` (filled by the server in one statement, with
/// `data::setup`'s rows) and an empty `bench_orm_insert`.
pub async fn setup(admin: &Client) -> Result<()> {
    admin
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS bench_orm_users, bench_orm_insert;
             CREATE TABLE bench_orm_users (
                 id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL,
                 score float8 NOT NULL, created timestamptz NOT NULL);
             CREATE TABLE bench_orm_insert (
                 id bigserial PRIMARY KEY, name text NOT NULL, email text NOT NULL,
                 score float8 NOT NULL, created timestamptz NOT NULL);
             INSERT INTO bench_orm_users
                 SELECT g, 'user ' || g, 'user' || g || '@example.com', g * 0.25,
                        timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute'
                 FROM generate_series(1, {}) AS g;",
            data::USERS
        ))
        .await?;
    admin.batch_execute("VACUUM ANALYZE bench_orm_users").await?;
    Ok(())
}

/// Empties `bench_orm_insert` before each bulk insert (outside the timed part); the keys
/// start again at 1.
pub async fn reset_insert_table(admin: &Client) -> Result<()> {
    admin.batch_execute("TRUNCATE bench_orm_insert RESTART IDENTITY").await?;
    Ok(())
}

/// Drops both tables at the end of a run.
pub async fn drop(admin: &Client) -> Result<()> {
    admin.batch_execute("DROP TABLE IF EXISTS bench_orm_users, bench_orm_insert").await?;
    Ok(())
}
