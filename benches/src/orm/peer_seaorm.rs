//! sea-orm: entities written by hand (no codegen), `find`/`insert_many` over a
//! `DatabaseConnection` (sqlx's pool underneath).

use futures::future::try_join_all;
use sea_orm::{ActiveValue, ColumnTrait, ConnectOptions, Database, DatabaseConnection, EntityTrait, QueryFilter};

use crate::check::{self, Fingerprint};
use crate::data::NewUser;
use crate::Result;

pub mod bench_user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "bench_orm_users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i64,
        pub name: String,
        pub email: String,
        pub score: f64,
        pub created: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod bench_insert {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "bench_orm_insert")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub name: String,
        pub email: String,
        pub score: f64,
        pub created: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

check::user_row!(bench_user::Model);

pub struct SeaOrm {
    db: DatabaseConnection,
}

impl SeaOrm {
    /// `tuned`: no ping on every checkout and no statement logging; sea-orm's defaults do
    /// both.
    pub async fn connect(url: &str, pool_size: usize, tuned: bool) -> Result<SeaOrm> {
        let size = pool_size as u32;
        let mut options = ConnectOptions::new(url);
        options.max_connections(size).min_connections(size);
        if tuned {
            options.test_before_acquire(false).sqlx_logging(false);
        }
        Ok(SeaOrm { db: Database::connect(options).await? })
    }

    pub async fn get(&self, id: i64) -> Result<bench_user::Model> {
        let user = bench_user::Entity::find_by_id(id).one(&self.db).await?;
        user.ok_or_else(|| format!("sea-orm: no user {id}").into())
    }

    pub async fn concurrent_gets(&self, ids: &[i64]) -> Result<Vec<bench_user::Model>> {
        try_join_all(ids.iter().map(|&id| self.get(id))).await
    }

    pub async fn fetch(&self, max_id: i64) -> Result<Vec<bench_user::Model>> {
        Ok(bench_user::Entity::find().filter(bench_user::Column::Id.lte(max_id)).all(&self.db).await?)
    }

    pub async fn stream(&self) -> Result<Fingerprint> {
        check::drain(bench_user::Entity::find().stream(&self.db).await?).await
    }

    /// The application's rows, as `insert_many` takes them (made before the timer).
    pub fn insert_input(rows: &[NewUser]) -> Vec<bench_insert::ActiveModel> {
        rows.iter()
            .map(|u| bench_insert::ActiveModel {
                id: ActiveValue::NotSet,
                name: ActiveValue::Set(u.name.clone()),
                email: ActiveValue::Set(u.email.clone()),
                score: ActiveValue::Set(u.score),
                created: ActiveValue::Set(u.created),
            })
            .collect()
    }

    /// `insert_many(…).exec_without_returning`: one multi-row `VALUES` statement, the
    /// faster of its two calls (`exec` adds `RETURNING` the key).
    pub async fn insert(&self, rows: Vec<bench_insert::ActiveModel>) -> Result<u64> {
        Ok(bench_insert::Entity::insert_many(rows).exec_without_returning(&self.db).await?)
    }
}
