//! sqlx: `query_as` into a `#[derive(FromRow)]` struct over a `PgPool` (statements are
//! prepared and cached per connection, sqlx's default).

use chakra::chrono::{DateTime, Utc};
use futures::future::try_join_all;
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::check::{self, Fingerprint};
use crate::data::NewUser;
use crate::tables;
use crate::Result;

#[derive(Debug, sqlx::FromRow)]
pub struct SqlxUser {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub score: f64,
    pub created: DateTime<Utc>,
}

check::user_row!(SqlxUser);

pub struct Sqlx {
    pool: PgPool,
}

impl Sqlx {
    /// `tuned`: no ping on every checkout (`test_before_acquire(false)`), as Chakra's pool
    /// does not ping either; sqlx's default pings, one more round trip per acquire.
    pub async fn connect(url: &str, pool_size: usize, tuned: bool) -> Result<Sqlx> {
        let size = pool_size as u32;
        let pool = PgPoolOptions::new()
            .max_connections(size)
            .min_connections(size)
            .test_before_acquire(!tuned)
            .connect(url)
            .await?;
        Ok(Sqlx { pool })
    }

    pub async fn get(&self, id: i64) -> Result<SqlxUser> {
        Ok(sqlx::query_as::<_, SqlxUser>(tables::GET_SQL).bind(id).fetch_one(&self.pool).await?)
    }

    pub async fn concurrent_gets(&self, ids: &[i64]) -> Result<Vec<SqlxUser>> {
        try_join_all(ids.iter().map(|&id| self.get(id))).await
    }

    pub async fn fetch(&self, max_id: i64) -> Result<Vec<SqlxUser>> {
        Ok(sqlx::query_as::<_, SqlxUser>(tables::FETCH_SQL).bind(max_id).fetch_all(&self.pool).await?)
    }

    pub async fn stream(&self) -> Result<Fingerprint> {
        check::drain(sqlx::query_as::<_, SqlxUser>(tables::STREAM_SQL).fetch(&self.pool)).await
    }

    /// sqlx's recommended bulk insert for PostgreSQL: `UNNEST` of one array per column
    /// (the same statement as the raw side), the arrays built from the rows in the timed
    /// part. (`QueryBuilder::push_values` would send 40,000 parameters instead.)
    pub async fn insert(&self, rows: &[NewUser]) -> Result<u64> {
        let names: Vec<&str> = rows.iter().map(|u| u.name.as_str()).collect();
        let emails: Vec<&str> = rows.iter().map(|u| u.email.as_str()).collect();
        let scores: Vec<f64> = rows.iter().map(|u| u.score).collect();
        let created: Vec<DateTime<Utc>> = rows.iter().map(|u| u.created).collect();
        let done = sqlx::query(tables::UNNEST_SQL)
            .bind(&names)
            .bind(&emails)
            .bind(&scores)
            .bind(&created)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
