//! Chakra: an async-first ORM whose whole core is Rust on Tokio.
//!
//! Every database operation is a [`Request`] that travels down a `tower` stack — tracing,
//! metrics, timeout, retry, batching, connection acquire — to an executor running it on
//! PostgreSQL with tokio-postgres. This crate is the front door: [`connect`], [`Pool`],
//! `#[derive(Model)]` and the [`prelude`].
//!
//! ```no_run
//! use chakra::prelude::*;
//!
//! #[derive(Model, Debug, Clone)]
//! #[chakra(table = "users")]
//! pub struct User {
//!     #[chakra(primary_key)]
//!     pub id: i64,
//!     pub name: String,
//!     pub email: Option<String>,
//!     pub is_active: bool,
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<()> {
//!     let pool = chakra::connect("postgresql://localhost/app").await?;
//!
//!     let mut ada = User { id: 0, name: "Ada".into(), email: None, is_active: true };
//!     ada.insert(&pool).await?; // the generated id is read back
//!
//!     let active = User::query()
//!         .filter(User::is_active().eq(true) & User::name().starts_with("A"))
//!         .order_by(User::name().asc())
//!         .all(&pool)
//!         .await?;
//!     let same = User::get(&pool, ada.id).await?; // merged with concurrent gets
//!     assert_eq!(same.name, "Ada");
//!
//!     // Committed on Ok; the row lock holds until then.
//!     let id = ada.id;
//!     pool.transaction(|tx| async move {
//!         let mut user = User::query().filter(User::id().eq(id)).for_update().one(&tx).await?;
//!         user.is_active = false;
//!         user.save(&tx).await
//!     })
//!     .await?;
//!
//!     // Aggregates, typed as PostgreSQL returns them (`None` over no rows).
//!     let last: Option<String> = User::query().max(&pool, User::name()).await?;
//!     let with_email = User::query().count_of(&pool, User::email(), false).await?;
//!     println!("{last:?}, {with_email} with an email");
//!     // Several in one query, per group too.
//!     use chakra::models::agg;
//!     let per_state: Vec<(bool, (i64, Option<String>))> = User::query()
//!         .group_by(User::is_active())
//!         .aggregate(&pool, (agg::count(), agg::min(User::name())))
//!         .await?;
//!     println!("{per_state:?}");
//!
//!     // Raw SQL goes through the same stack.
//!     let rows = pool.query("SELECT count(*) FROM users WHERE is_active = $1", vec![true.into()]).await?;
//!     println!("{} active, {}", active.len(), rows[0].get::<_, i64>(0));
//!     Ok(())
//! }
//! ```
//!
//! ## Related rows
//!
//! The row each row refers to comes with it in one statement ([`Query::select_related`],
//! a `LEFT JOIN`); rows of another table load for many rows at once, in one query whatever
//! their number ([`Query::load_one`], [`Query::load_many`]); values computed from them
//! come with each row ([`Query::annotate`]):
//!
//! ```no_run
//! use chakra::prelude::*;
//!
//! #[derive(Model, Clone)]
//! #[chakra(table = "authors")]
//! pub struct Author {
//!     #[chakra(primary_key)]
//!     pub id: i64,
//!     pub name: String,
//! }
//!
//! #[derive(Model, Clone)]
//! #[chakra(table = "books")]
//! pub struct Book {
//!     #[chakra(primary_key)]
//!     pub id: i64,
//!     pub title: String,
//!     #[chakra(references = "authors.id", on_delete = "set null")]
//!     pub author_id: Option<i64>,
//! }
//!
//! async fn shelves(pool: &Pool) -> Result<()> {
//!     // Each book with its author (`None` where `author_id` is NULL), in one statement.
//!     let shelf: Vec<(Book, Option<Author>)> =
//!         Book::query().order_by(Book::title().asc()).select_related(Book::author_id(), Author::id()).all(pool).await?;
//!     // The same for books already fetched, with one more query.
//!     let books = Book::query().all(pool).await?;
//!     let authors = Author::query().load_one(pool, &books, Book::author_id(), Author::id()).await?;
//!     for (book, author) in books.iter().zip(&authors) {
//!         println!("{} by {}", book.title, author.as_ref().map_or("nobody", |a| a.name.as_str()));
//!     }
//!     // Each author's books, in the related query's order.
//!     let authors = Author::query().all(pool).await?;
//!     let books = Book::query()
//!         .order_by(Book::title().asc())
//!         .load_many(pool, &authors, Author::id(), Book::author_id())
//!         .await?;
//!     for (author, books) in authors.iter().zip(&books) {
//!         println!("{}: {} books", author.name, books.len());
//!     }
//!     // Or only how many, per author, as a correlated subquery of one statement.
//!     use chakra::models::agg;
//!     let books = || agg::count().related(Book::author_id(), Author::id());
//!     let counted: Vec<(Author, i64)> = Author::query().annotate(books()).order_by_value(true).all(pool).await?;
//!     let prolific: Vec<Author> = Author::query().filter(books().gt(10)).all(pool).await?;
//!     println!("{} authors, {} prolific", counted.len(), prolific.len());
//!     Ok(())
//! }
//! ```
//!
//! ## Computed values
//!
//! The functions of [`models::func`] (Django's `Coalesce`, `Lower`, `Case`/`When`, …) are
//! computed by the database row by row: compared with, assigned in updates, or read with
//! each row.
//!
//! ```no_run
//! use chakra::models::func;
//! use chakra::prelude::*;
//!
//! #[derive(Model, Clone)]
//! #[chakra(table = "customers")]
//! pub struct Customer {
//!     #[chakra(primary_key)]
//!     pub id: i64,
//!     pub name: String,
//!     pub nickname: Option<String>,
//!     pub spent: i32,
//! }
//!
//! async fn tiers(pool: &Pool) -> Result<()> {
//!     // Each customer as shown (the nickname, else the name) and their tier.
//!     let shown = func::coalesce(Customer::nickname(), Customer::name()).row_value();
//!     let tier = func::case(Customer::spent().gte(1000), "gold")
//!         .when(Customer::spent().gte(100), "silver")
//!         .otherwise("bronze")
//!         .row_value();
//!     let rows: Vec<(Customer, (String, String))> = Customer::query().annotate((shown, tier)).all(pool).await?;
//!     // Names stored trimmed, in one statement, whatever they were.
//!     Customer::query().update(pool, vec![Customer::name().set(func::trim(Customer::name()))]).await?;
//!     println!("{} customers", rows.len());
//!     Ok(())
//! }
//! ```

pub use chakra_layers::{
    acquire, batch, metrics, retry, timeout, trace, BoxService, IsolationLevel, Pool, PoolBuilder, Queryable, Session,
    Transaction, TransactionOptions,
};
pub use chakra_service::{
    chrono, copy_pipe, rust_decimal, serde_json, telemetry, uuid, Config, ConnectionPool, CopyRows, CopySource,
    CopyWriter, Error, ErrorKind, Labels, Mode, PinnedConn, PointLookup, PoolStatus, Request, Response, Result, Row,
    RowStream, SharedStr, SqlState, Statement, TxEffect, Value, COPY_HEADER, COPY_TRAILER,
};

/// Models and the query builder (`chakra_models`); `#[derive(Model)]` expands to paths
/// under here.
pub mod models {
    pub use chakra_models::*;
}

pub use chakra_models::{Column, Expr, Model, ModelStream, OnConflict, Order, Query, RowLock};
/// `#[derive(Model)]`: maps a struct to a table (see [`Model`]).
pub use chakra_models_derive::Model;
/// `#[derive(SqlEnum)]`: an enum of unit variants as a text column type.
pub use chakra_models_derive::SqlEnum;

/// Opens a pool for `url` with the default settings (see [`Config`]); use
/// [`Pool::builder`] or [`PoolBuilder::from_env`] for more.
pub async fn connect(url: &str) -> Result<Pool> {
    Pool::connect(url).await
}

/// Opens a single connection outside any pool; requests on it still go through the
/// layer stack. It closes when the last handle is dropped.
pub async fn connect_direct(url: &str) -> Result<Session> {
    Session::connect(&Config::from_url(url)).await
}

/// What most programs need: `use chakra::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Error, ErrorKind, Model, Pool, Query, Queryable, Result, Row, Session, SqlEnum, Transaction, Value,
    };
}
