//! diesel-async: the schema declared with `diesel::table!`, `Queryable`/`Selectable` and
//! `Insertable` structs, an `AsyncPgConnection` pool from bb8.

use chakra::chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::pooled_connection::bb8::Pool;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures::future::try_join_all;

use crate::check::{self, Fingerprint};
use crate::data::NewUser;
use crate::Result;

diesel::table! {
    bench_orm_users (id) {
        id -> Int8,
        name -> Text,
        email -> Text,
        score -> Float8,
        created -> Timestamptz,
    }
}

diesel::table! {
    bench_orm_insert (id) {
        id -> Int8,
        name -> Text,
        email -> Text,
        score -> Float8,
        created -> Timestamptz,
    }
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = bench_orm_users, check_for_backend(diesel::pg::Pg))]
pub struct DieselUser {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub score: f64,
    pub created: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = bench_orm_insert)]
pub struct DieselNewUser {
    pub name: String,
    pub email: String,
    pub score: f64,
    pub created: DateTime<Utc>,
}

check::user_row!(DieselUser);

pub struct Diesel {
    pool: Pool<AsyncPgConnection>,
}

impl Diesel {
    /// `tuned`: no `SELECT 1` on every checkout (`test_on_check_out(false)`), as Chakra's
    /// pool does not ping either; bb8's default tests each checkout.
    pub async fn connect(url: &str, pool_size: usize, tuned: bool) -> Result<Diesel> {
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
        let size = pool_size as u32;
        let pool = Pool::builder().max_size(size).min_idle(Some(size)).test_on_check_out(!tuned).build(manager).await?;
        Ok(Diesel { pool })
    }

    pub async fn get(&self, id: i64) -> Result<DieselUser> {
        let mut conn = self.pool.get().await?;
        Ok(bench_orm_users::table.find(id).select(DieselUser::as_select()).first(&mut conn).await?)
    }

    /// `try_join_all` of gets, each checking a connection out of the pool.
    pub async fn concurrent_gets(&self, ids: &[i64]) -> Result<Vec<DieselUser>> {
        try_join_all(ids.iter().map(|&id| self.get(id))).await
    }

    pub async fn fetch(&self, max_id: i64) -> Result<Vec<DieselUser>> {
        let mut conn = self.pool.get().await?;
        Ok(bench_orm_users::table
            .filter(bench_orm_users::id.le(max_id))
            .select(DieselUser::as_select())
            .load(&mut conn)
            .await?)
    }

    pub async fn stream(&self) -> Result<Fingerprint> {
        let mut conn = self.pool.get().await?;
        let rows = bench_orm_users::table.select(DieselUser::as_select()).load_stream::<DieselUser>(&mut conn).await?;
        check::drain(rows).await
    }

    /// The application's rows, as `insert_into(…).values(&rows)` takes them (made before
    /// the timer).
    pub fn insert_input(rows: &[NewUser]) -> Vec<DieselNewUser> {
        rows.iter()
            .map(|u| DieselNewUser { name: u.name.clone(), email: u.email.clone(), score: u.score, created: u.created })
            .collect()
    }

    /// `insert_into(bench_orm_insert).values(&rows)`: one multi-row `VALUES` statement.
    pub async fn insert(&self, rows: &[DieselNewUser]) -> Result<u64> {
        let mut conn = self.pool.get().await?;
        Ok(diesel::insert_into(bench_orm_insert::table).values(rows).execute(&mut conn).await? as u64)
    }
}
