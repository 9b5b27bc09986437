//! The workloads, each written once per side in that side's idiomatic API: prepared
//! statements on bare tokio-postgres clients, and `chakra::Request`s or `Queryable`
//! calls through a Chakra stack.

use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chakra::{
    copy_pipe, CopyRows, Labels, Mode, PointLookup, Queryable, Request, Response, SharedStr, Statement, Value,
};
use futures::future::{join_all, Either};
use futures::TryStreamExt;
use tokio::sync::oneshot;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, Row};

use crate::data::{self, NewUser, User};
use crate::Result;

/// One prepared-statement client: the raw baseline's unit. Each statement is prepared
/// once, as an application caching its statements would.
pub struct RawClient {
    client: Client,
    get: tokio_postgres::Statement,
    /// `GET_BATCH_SQL`, for `--diagnose`'s hand-merged lookups.
    get_batch: tokio_postgres::Statement,
    fetch: tokio_postgres::Statement,
    stream: tokio_postgres::Statement,
    unnest: tokio_postgres::Statement,
    copy: tokio_postgres::Statement,
}

impl RawClient {
    pub async fn connect(url: &str) -> Result<RawClient> {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(RawClient {
            get: client.prepare(data::GET_SQL).await?,
            get_batch: client.prepare(data::GET_BATCH_SQL).await?,
            fetch: client.prepare(data::FETCH_SQL).await?,
            stream: client.prepare(data::STREAM_SQL).await?,
            unnest: client.prepare(data::UNNEST_SQL).await?,
            copy: client.prepare(data::COPY_SQL).await?,
            client,
        })
    }
}

/// A Chakra stack to send requests to: the pool users get from `Pool::builder()`, or a
/// stack assembled by hand (see `diagnose`), counting the queries that reach `acquire`.
#[derive(Clone)]
pub enum Db {
    Pool(chakra::Pool),
    Stack { service: crate::diagnose::BoxService, queries: Arc<AtomicU64> },
}

impl Queryable for Db {
    fn run(&self, request: Request) -> impl Future<Output = chakra::Result<Response>> + Send {
        match self {
            Db::Pool(pool) => Either::Left(pool.run(request)),
            Db::Stack { service, .. } => Either::Right(tower::ServiceExt::oneshot(service.clone(), request)),
        }
    }
}

/// The SQL a Rust model holds: text that lives as long as the program, which requests
/// share without counting references (the models keep theirs in a `static`).
#[derive(Clone)]
pub struct ModelSql {
    get: SharedStr,
    get_batch: SharedStr,
    table: SharedStr,
}

impl ModelSql {
    pub fn new() -> Self {
        ModelSql {
            get: SharedStr::from_static(data::GET_SQL),
            get_batch: SharedStr::from_static(data::GET_BATCH_SQL),
            table: SharedStr::from_static("bench_users"),
        }
    }

    /// `User::get(id)` as the models will send it: a one-row request the batch layer may
    /// merge with concurrent lookups on the same table.
    fn lookup(&self, id: i64, batchable: bool) -> Request {
        let labels = Labels::new("SELECT", Some(self.table.clone()));
        let request = Request::labelled(Statement::new(self.get.clone(), vec![id.into()]), Mode::One, labels);
        match batchable {
            true => {
                request.point_lookup(PointLookup { batch_sql: self.get_batch.clone(), key_column: 0, key: id.into() })
            }
            false => request,
        }
    }
}

/// Who runs a shape.
#[derive(Clone)]
pub enum Side {
    /// Bare tokio-postgres clients (the sequential shapes use the first).
    Raw(Vec<Arc<RawClient>>),
    /// A Chakra stack. `batchable: false` sends lookups without their `PointLookup`, so
    /// the batch layer passes them straight through.
    Chakra { db: Db, batchable: bool },
}

pub struct Contender {
    pub name: String,
    pub side: Side,
}

/// What every shape reads and writes, prepared before anything is timed.
pub struct Workload {
    pub sql: ModelSql,
    pub sequential_ids: Vec<i64>,
    pub concurrent_ids: Vec<i64>,
    pub new_users: Vec<NewUser>,
    /// For setup and resets, outside the timed parts.
    pub admin: Client,
}

impl Workload {
    /// `concurrent_ids` split into one share per raw client (each pipelining its own).
    fn shares(&self) -> Vec<Vec<i64>> {
        let share = self.concurrent_ids.len().div_ceil(CLIENTS);
        self.concurrent_ids.chunks(share).map(<[i64]>::to_vec).collect()
    }
}

/// How the concurrent lookups are issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fanout {
    /// One task per lookup, as 2,000 concurrent request handlers would.
    Tasks,
    /// 10 tasks, each awaiting its share with `join_all` (on one connection each for raw).
    JoinAll,
}

/// Raw clients pipelining: each client's share goes out without waiting for replies.
const CLIENTS: usize = 10;

/// Sequential point lookups; returns the median time of one. The median, not the mean:
/// on a shared machine a few lookups are preempted for milliseconds, and those say
/// nothing about the stack.
pub async fn sequential_get(w: &Workload, side: &Side) -> Result<Duration> {
    let mut latencies = Vec::with_capacity(w.sequential_ids.len());
    for &id in &w.sequential_ids {
        let start = Instant::now();
        let row = match side {
            Side::Raw(clients) => clients[0].client.query_one(&clients[0].get, &[&id]).await?,
            Side::Chakra { db, batchable } => db.run(w.sql.lookup(id, *batchable)).await?.into_row()?,
        };
        check_user(User::from_row(&row)?, id)?;
        latencies.push(start.elapsed());
    }
    latencies.sort_unstable();
    Ok(latencies[latencies.len() / 2])
}

/// All of `concurrent_ids` looked up at once; returns the time until the last answer.
pub async fn concurrent_get(w: &Workload, side: &Side, fanout: Fanout) -> Result<Duration> {
    let shares = w.shares();
    let start = Instant::now();
    match (side, fanout) {
        (Side::Raw(clients), _) => {
            let tasks = clients.iter().zip(shares).map(|(raw, ids)| {
                let raw = raw.clone();
                tokio::spawn(async move {
                    let lookups = ids.iter().map(|&id| {
                        let raw = &raw;
                        async move {
                            let row = raw.client.query_one(&raw.get, &[&id]).await?;
                            check_user(User::from_row(&row)?, id)
                        }
                    });
                    join_all(lookups).await.into_iter().collect::<Result<()>>()
                })
            });
            for task in join_all(tasks).await {
                task??;
            }
        }
        (Side::Chakra { db, batchable }, Fanout::Tasks) => {
            let tasks: Vec<_> = w
                .concurrent_ids
                .iter()
                .map(|&id| {
                    let (db, sql, batchable) = (db.clone(), w.sql.clone(), *batchable);
                    tokio::spawn(async move {
                        let row = db.run(sql.lookup(id, batchable)).await?.into_row()?;
                        check_user(User::from_row(&row)?, id)
                    })
                })
                .collect();
            for task in join_all(tasks).await {
                task??;
            }
        }
        (Side::Chakra { db, batchable }, Fanout::JoinAll) => {
            let tasks = shares.into_iter().map(|ids| {
                let (db, sql, batchable) = (db.clone(), w.sql.clone(), *batchable);
                tokio::spawn(async move {
                    let lookups = ids.iter().map(|&id| {
                        let request = sql.lookup(id, batchable);
                        let db = &db;
                        async move {
                            let row = db.run(request).await?.into_row()?;
                            check_user(User::from_row(&row)?, id)
                        }
                    });
                    join_all(lookups).await.into_iter().collect::<Result<()>>()
                })
            });
            for task in join_all(tasks).await {
                task??;
            }
        }
    }
    Ok(start.elapsed())
}

/// `--diagnose`'s floors for any batching client: the concurrent gets with no stack.
/// Each raw client sends its share of the ids as one `= ANY($1)` statement and matches
/// the rows to the ids through a map. `Lookups::Merged` decodes them in place, the least
/// work that answers every lookup: what is left is the server's work per key and the
/// decoding. `Lookups::Futures` keeps the application's shape, a future per lookup under
/// `join_all` as with the other sides: each gets its row through a oneshot channel and
/// decodes it, the least any stack answering `try_join_all` of gets can do.
pub async fn concurrent_get_hand_merged(
    w: &Workload,
    clients: &[Arc<RawClient>],
    lookups: Lookups,
) -> Result<Duration> {
    let shares = w.shares();
    let start = Instant::now();
    let tasks = clients.iter().zip(shares).map(|(raw, ids)| {
        let raw = raw.clone();
        tokio::spawn(async move {
            let fetch = async {
                let rows = raw.client.query(&raw.get_batch, &[&ids]).await?;
                let mut by_id = HashMap::with_capacity(rows.len());
                for row in rows {
                    by_id.insert(row.try_get::<_, i64>(0)?, row);
                }
                Result::Ok(by_id)
            };
            match lookups {
                Lookups::Merged => {
                    let by_id = fetch.await?;
                    for id in &ids {
                        let row = by_id.get(id).ok_or_else(|| format!("no row for user {id}"))?;
                        check_user(User::from_row(row)?, *id)?;
                    }
                }
                Lookups::Futures => {
                    let (senders, receivers): (Vec<_>, Vec<_>) = ids.iter().map(|_| oneshot::channel::<Row>()).unzip();
                    let answer = async {
                        let mut by_id = fetch.await?;
                        let mut wanting: HashMap<i64, usize> = HashMap::with_capacity(ids.len());
                        for id in &ids {
                            *wanting.entry(*id).or_default() += 1;
                        }
                        for (id, reply) in ids.iter().zip(senders) {
                            // The last lookup of an id takes its row; any before it get copies.
                            let left = wanting.get_mut(id).expect("counted");
                            *left -= 1;
                            let row = match *left {
                                0 => by_id.remove(id),
                                _ => by_id.get(id).cloned(),
                            };
                            let _ = reply.send(row.ok_or_else(|| format!("no row for user {id}"))?);
                        }
                        Result::Ok(())
                    };
                    let each = join_all(ids.iter().zip(receivers).map(|(&id, receiver)| async move {
                        let row = receiver.await.map_err(|_| format!("no answer for user {id}"))?;
                        check_user(User::from_row(&row)?, id)
                    }));
                    let (answered, checked) = futures::join!(answer, each);
                    answered?;
                    checked.into_iter().collect::<Result<()>>()?;
                }
            }
            Result::Ok(())
        })
    });
    for task in join_all(tasks).await {
        task??;
    }
    Ok(start.elapsed())
}

/// How `concurrent_get_hand_merged` answers its lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookups {
    /// In place, as the rows are matched to the ids.
    Merged,
    /// Through a future per lookup, each handed its row.
    Futures,
}

/// How the rows of a fetch reach the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Each row decoded as it arrives, while later rows are still on the wire.
    AsTheyArrive,
    /// All rows collected first (`Vec<Row>`), then decoded.
    Collected,
}

/// One query returning `FETCH_ROWS` rows, all decoded. The headline has both sides decode
/// rows as they arrive (raw `query_raw`, Chakra `query_stream`); `--diagnose` also runs
/// both collecting every row first (`query`).
pub async fn fetch(side: &Side, delivery: Delivery) -> Result<Duration> {
    let start = Instant::now();
    let mut users = Vec::new();
    match (side, delivery) {
        (Side::Raw(clients), Delivery::AsTheyArrive) => {
            let raw = &clients[0];
            let rows = raw.client.query_raw(&raw.fetch, [data::FETCH_ROWS]).await?;
            let mut rows = std::pin::pin!(rows);
            while let Some(row) = rows.try_next().await? {
                users.push(User::from_row(&row)?);
            }
        }
        (Side::Raw(clients), Delivery::Collected) => {
            let raw = &clients[0];
            for row in raw.client.query(&raw.fetch, &[&data::FETCH_ROWS]).await? {
                users.push(User::from_row(&row)?);
            }
        }
        (Side::Chakra { db, .. }, Delivery::AsTheyArrive) => {
            let mut rows = db.query_stream(data::FETCH_SQL, vec![data::FETCH_ROWS.into()]).await?;
            while let Some(row) = rows.try_next().await? {
                users.push(User::from_row(&row)?);
            }
        }
        (Side::Chakra { db, .. }, Delivery::Collected) => {
            for row in db.query(data::FETCH_SQL, vec![data::FETCH_ROWS.into()]).await? {
                users.push(User::from_row(&row)?);
            }
        }
    }
    let elapsed = start.elapsed();
    check_count(users.len(), data::FETCH_ROWS as usize)?;
    black_box(users);
    Ok(elapsed)
}

/// The whole table as a stream, each row decoded and dropped.
pub async fn stream(side: &Side) -> Result<Duration> {
    let start = Instant::now();
    let mut seen = 0_usize;
    let mut sum = 0_f64;
    let mut consume = |user: User| {
        seen += 1;
        sum += user.score;
        black_box(user);
    };
    match side {
        Side::Raw(clients) => {
            let raw = &clients[0];
            let rows = raw.client.query_raw(&raw.stream, std::iter::empty::<i64>()).await?;
            let mut rows = std::pin::pin!(rows);
            while let Some(row) = rows.try_next().await? {
                consume(User::from_row(&row)?);
            }
        }
        Side::Chakra { db, .. } => {
            let mut rows = db.query_stream(data::STREAM_SQL, Vec::new()).await?;
            while let Some(row) = rows.try_next().await? {
                consume(User::from_row(&row)?);
            }
        }
    }
    let elapsed = start.elapsed();
    black_box(sum);
    check_count(seen, data::USERS as usize)?;
    Ok(elapsed)
}

/// How a side writes rows in bulk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertBy {
    /// `COPY … FROM STDIN (FORMAT binary)`, the fastest way in.
    Copy,
    /// The same `COPY` sent in pieces of 1,000 rows, each encoded while the server writes
    /// the one before (Chakra's `copy_pipe`; raw's `BinaryCopyInWriter` always does so).
    CopyPieces,
    /// `INSERT … SELECT * FROM UNNEST(arrays)`, one array per column.
    Unnest,
}

/// `INSERT_ROWS` rows into an empty table. Chakra converts the rows into array parameters
/// inside the timed part, as a bulk-insert API taking model objects would, and for `COPY`
/// those into rows with [`CopyRows`](chakra::CopyRows).
pub async fn bulk_insert(w: &Workload, side: &Side, method: InsertBy) -> Result<Duration> {
    data::reset_insert_table(&w.admin).await?;
    let rows = &w.new_users;
    let start = Instant::now();
    let written = match side {
        Side::Raw(clients) => {
            let raw = &clients[0];
            match method {
                InsertBy::Copy | InsertBy::CopyPieces => {
                    let sink = raw.client.copy_in(&raw.copy).await?;
                    let types = [Type::TEXT, Type::TEXT, Type::FLOAT8, Type::TIMESTAMPTZ];
                    let writer = BinaryCopyInWriter::new(sink, &types);
                    let mut writer = std::pin::pin!(writer);
                    for u in rows {
                        writer.as_mut().write(&[&u.name, &u.email, &u.score, &u.created]).await?;
                    }
                    writer.finish().await?
                }
                InsertBy::Unnest => {
                    let names: Vec<&str> = rows.iter().map(|u| u.name.as_str()).collect();
                    let emails: Vec<&str> = rows.iter().map(|u| u.email.as_str()).collect();
                    let scores: Vec<f64> = rows.iter().map(|u| u.score).collect();
                    let created: Vec<_> = rows.iter().map(|u| u.created).collect();
                    raw.client.execute(&raw.unnest, &[&names, &emails, &scores, &created]).await?
                }
            }
        }
        Side::Chakra { db, .. } => match method {
            InsertBy::Copy => {
                let rows = CopyRows::from_columns(&columns_of(rows))?;
                let statement = Statement::new(data::COPY_SQL, vec![rows.into_value()]);
                db.run(Request::new(statement, Mode::CopyIn)).await?.rows_affected()?
            }
            InsertBy::CopyPieces => {
                let (writer, source) = copy_pipe();
                let copy = Request::new(Statement::new(data::COPY_SQL, vec![]), Mode::CopyIn).copy_from(source);
                let make = writer.send_rows(rows.chunks(1000).map(copy_piece));
                let (written, ()) = futures::join!(db.run(copy), make);
                written?.rows_affected()?
            }
            InsertBy::Unnest => db.execute(data::UNNEST_SQL, columns_of(rows)).await?,
        },
    };
    let elapsed = start.elapsed();
    check_count(written as usize, rows.len())?;
    Ok(elapsed)
}

/// The rows' columns, one array parameter each, as Chakra's array and `COPY` parameters take them.
fn columns_of(rows: &[NewUser]) -> Vec<Value> {
    let mut columns: [Vec<Value>; 4] = std::array::from_fn(|_| Vec::with_capacity(rows.len()));
    for u in rows {
        columns[0].push(u.name.as_str().into());
        columns[1].push(u.email.as_str().into());
        columns[2].push(u.score.into());
        columns[3].push(u.created.into());
    }
    columns.into_iter().map(Value::Array).collect()
}

/// The rows as one piece of a binary `COPY`. (A function, not a closure: the future
/// holding the iterator must be `Send` for every lifetime of the rows it borrows.)
fn copy_piece(rows: &[NewUser]) -> chakra::Result<bytes::Bytes> {
    CopyRows::piece_from_columns(&columns_of(rows)).map(|piece| piece.bytes())
}

/// Every answer is checked: a fast wrong answer (say, a batch handing rows to the wrong
/// caller) must fail the bench, not win it.
fn check_user(user: User, id: i64) -> Result<()> {
    match user.id == id {
        true => {
            black_box(user);
            Ok(())
        }
        false => Err(format!("asked for user {id}, got user {}", user.id).into()),
    }
}

fn check_count(got: usize, expected: usize) -> Result<()> {
    match got == expected {
        true => Ok(()),
        false => Err(format!("expected {expected} rows, got {got}").into()),
    }
}
