//! Chakra's models: `#[derive(Model)]` structs, queried through the default `Pool` and
//! its full stack (trace → metrics → timeout → retry → batch → acquire → executor).

use chakra::prelude::*;
use futures::future::try_join_all;
use futures::TryStreamExt;

use crate::check::{self, Fingerprint};
use crate::data::NewUser;

#[derive(Model, Debug, Clone)]
#[chakra(table = "bench_orm_users")]
pub struct BenchUser {
    #[chakra(primary_key, generated = false)]
    pub id: i64,
    pub name: String,
    pub email: String,
    pub score: f64,
    pub created: chakra::chrono::DateTime<chakra::chrono::Utc>,
}

/// A row of `bench_orm_insert`, whose `bigserial` key the database assigns.
#[derive(Model, Debug, Clone)]
#[chakra(table = "bench_orm_insert")]
pub struct BenchNewUser {
    #[chakra(primary_key)]
    pub id: i64,
    pub name: String,
    pub email: String,
    pub score: f64,
    pub created: chakra::chrono::DateTime<chakra::chrono::Utc>,
}

check::user_row!(BenchUser, BenchNewUser);

pub struct Models {
    pool: Pool,
}

impl Models {
    pub async fn connect(url: &str, pool_size: usize) -> crate::Result<Models> {
        let pool = Pool::builder().url(url).max_connections(pool_size).min_connections(pool_size).build().await?;
        Ok(Models { pool })
    }

    pub async fn get(&self, id: i64) -> crate::Result<BenchUser> {
        Ok(BenchUser::get(&self.pool, id).await?)
    }

    /// `try_join_all` of gets: the batch layer merges them into `= ANY($1)` queries.
    pub async fn concurrent_gets(&self, ids: &[i64]) -> crate::Result<Vec<BenchUser>> {
        Ok(try_join_all(ids.iter().map(|&id| BenchUser::get(&self.pool, id))).await?)
    }

    pub async fn fetch(&self, max_id: i64) -> crate::Result<Vec<BenchUser>> {
        Ok(BenchUser::query().filter(BenchUser::id().lte(max_id)).all(&self.pool).await?)
    }

    /// The same query through `stream`, collected (`--diagnose`: rows decoded as they
    /// arrive, where `all` decodes after the last one).
    pub async fn fetch_streamed(&self, max_id: i64) -> crate::Result<Vec<BenchUser>> {
        Ok(BenchUser::query().filter(BenchUser::id().lte(max_id)).stream(&self.pool).await?.try_collect().await?)
    }

    /// The fetch's SQL through `query_stream`, rows counted and dropped undecoded
    /// (`--diagnose`: Chakra's transport alone).
    pub async fn fetch_undecoded(&self, max_id: i64) -> crate::Result<usize> {
        let rows = self.pool.query_stream(crate::tables::FETCH_SQL, vec![max_id.into()]).await?;
        Ok(rows.try_fold(0, |n, _| async move { Ok(n + 1) }).await?)
    }

    pub async fn stream(&self) -> crate::Result<Fingerprint> {
        check::drain(BenchUser::query().stream(&self.pool).await?).await
    }

    /// The application's rows as model structs (made before the timer).
    pub fn insert_input(rows: &[NewUser]) -> Vec<BenchNewUser> {
        rows.iter()
            .map(|u| BenchNewUser {
                id: 0,
                name: u.name.clone(),
                email: u.email.clone(),
                score: u.score,
                created: u.created,
            })
            .collect()
    }

    /// `insert_many`: for 10k rows a catalog check, then one binary `COPY`; nothing read
    /// back, as with the peers' bulk inserts.
    pub async fn insert(&self, rows: &[BenchNewUser]) -> crate::Result<u64> {
        Ok(BenchNewUser::insert_many(&self.pool, rows).await?)
    }

    /// `insert_all` (`--diagnose`): one `INSERT … SELECT * FROM UNNEST(…) RETURNING` every
    /// column, the stored rows decoded back.
    pub async fn insert_returning(&self, rows: Vec<BenchNewUser>) -> crate::Result<u64> {
        let stored = BenchNewUser::insert_all(&self.pool, rows).await?;
        if stored.iter().any(|u| u.id == 0) {
            return Err("insert_all returned a row without its generated id".into());
        }
        Ok(stored.len() as u64)
    }
}
