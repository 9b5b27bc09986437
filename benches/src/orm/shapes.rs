//! The five shapes, each run the same way on every side through that side's own API.

use std::hint::black_box;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::alloc_count;
use crate::check::{self, Fingerprint};
use crate::data::{self, NewUser, User};
use crate::models::Models;
use crate::peer_diesel::Diesel;
use crate::peer_seaorm::SeaOrm;
use crate::peer_sqlx::Sqlx;
use crate::raw::Raw;
use crate::tables;
use crate::Result;

/// One contender: a way into the database, connected and warm before anything is timed.
pub enum Side {
    Raw(Raw),
    Chakra(Models),
    Sqlx(Sqlx),
    SeaOrm(SeaOrm),
    Diesel(Diesel),
}

pub struct Contender {
    /// The column heading.
    pub name: &'static str,
    /// The name `--sides` takes.
    pub key: &'static str,
    pub side: Side,
}

/// What the shapes read, write and expect, made before anything is timed.
pub struct Workload {
    pub sequential_ids: Vec<i64>,
    pub sequential_expected: Vec<Fingerprint>,
    pub concurrent_ids: Vec<i64>,
    pub concurrent_expected: Vec<Fingerprint>,
    pub fetch_expected: Fingerprint,
    pub stream_expected: Fingerprint,
    pub new_users: Vec<NewUser>,
    pub insert_expected: Fingerprint,
    /// Resets and checks, outside the timed parts.
    pub admin: Client,
}

impl Workload {
    pub fn new(admin: Client, sequential_ids: Vec<i64>, concurrent_ids: Vec<i64>, new_users: Vec<NewUser>) -> Workload {
        let each = |ids: &[i64]| ids.iter().map(|&id| Fingerprint::expected([id])).collect();
        // `TRUNCATE … RESTART IDENTITY` before each insert: the keys are 1..=n.
        let stored: Vec<User> = new_users
            .iter()
            .enumerate()
            .map(|(i, u)| User {
                id: i as i64 + 1,
                name: u.name.clone(),
                email: u.email.clone(),
                score: u.score,
                created: u.created,
            })
            .collect();
        Workload {
            sequential_expected: each(&sequential_ids),
            concurrent_expected: each(&concurrent_ids),
            fetch_expected: Fingerprint::expected(1..=data::FETCH_ROWS),
            stream_expected: Fingerprint::expected(1..=data::USERS),
            insert_expected: Fingerprint::of(&stored),
            sequential_ids,
            concurrent_ids,
            new_users,
            admin,
        }
    }
}

/// Get by primary key, one after another; returns the median get of the round (on a
/// shared machine a few gets are preempted for milliseconds, which says nothing about
/// the stack). Each answer is checked after its clock stops.
pub async fn sequential_get(w: &Workload, side: &Side) -> Result<Duration> {
    let mut latencies = Vec::with_capacity(w.sequential_ids.len());
    for (&id, expected) in w.sequential_ids.iter().zip(&w.sequential_expected) {
        let start = Instant::now();
        macro_rules! get {
            ($s:expr) => {{
                let user = $s.get(id).await?;
                latencies.push(start.elapsed());
                check::lookups(std::slice::from_ref(&user), &[id], std::slice::from_ref(expected))?;
            }};
        }
        match side {
            Side::Raw(s) => get!(s),
            Side::Chakra(s) => get!(s),
            Side::Sqlx(s) => get!(s),
            Side::SeaOrm(s) => get!(s),
            Side::Diesel(s) => get!(s),
        }
    }
    latencies.sort_unstable();
    Ok(latencies[latencies.len() / 2])
}

/// All of `concurrent_ids` at once over the side's 10 connections; the time until the
/// last answer.
pub async fn concurrent_get(w: &Workload, side: &Side) -> Result<Duration> {
    let ids = &w.concurrent_ids;
    let start = Instant::now();
    macro_rules! gets {
        ($s:expr) => {{
            let users = $s.concurrent_gets(ids).await?;
            let elapsed = start.elapsed();
            check::lookups(&users, ids, &w.concurrent_expected)?;
            elapsed
        }};
    }
    Ok(match side {
        Side::Raw(s) => gets!(s),
        Side::Chakra(s) => gets!(s),
        Side::Sqlx(s) => gets!(s),
        Side::SeaOrm(s) => gets!(s),
        Side::Diesel(s) => gets!(s),
    })
}

/// `WHERE id <= 10000`, every row into the side's struct, collected in a `Vec`.
pub async fn fetch(w: &Workload, side: &Side) -> Result<Duration> {
    let start = Instant::now();
    macro_rules! fetch {
        ($s:expr) => {{
            let users = $s.fetch(data::FETCH_ROWS).await?;
            let elapsed = start.elapsed();
            check::same("fetch", Fingerprint::of(&users), w.fetch_expected)?;
            black_box(users);
            elapsed
        }};
    }
    Ok(match side {
        Side::Raw(s) => fetch!(s),
        Side::Chakra(s) => fetch!(s),
        Side::Sqlx(s) => fetch!(s),
        Side::SeaOrm(s) => fetch!(s),
        Side::Diesel(s) => fetch!(s),
    })
}

/// The whole table as a stream, each row decoded, fingerprinted and dropped.
pub async fn stream(w: &Workload, side: &Side) -> Result<Duration> {
    let start = Instant::now();
    let fingerprint = match side {
        Side::Raw(s) => s.stream().await?,
        Side::Chakra(s) => s.stream().await?,
        Side::Sqlx(s) => s.stream().await?,
        Side::SeaOrm(s) => s.stream().await?,
        Side::Diesel(s) => s.stream().await?,
    };
    let elapsed = start.elapsed();
    check::same("stream", fingerprint, w.stream_expected)?;
    Ok(elapsed)
}

/// `INSERT_ROWS` rows into an empty `bench_orm_insert` through each side's bulk API. The
/// rows in the side's own input type are made before the timer (an application holds
/// its rows already); what the API does with them is timed. Afterwards the table is read
/// back and checked.
pub async fn bulk_insert(w: &Workload, side: &Side) -> Result<Duration> {
    alloc_count::pause(true);
    tables::reset_insert_table(&w.admin).await?;
    let rows = &w.new_users;
    let (written, elapsed) = match side {
        Side::Raw(s) => timed(s.insert(rows)).await?,
        Side::Chakra(s) => {
            let input = Models::insert_input(rows);
            timed(s.insert(&input)).await?
        }
        Side::Sqlx(s) => timed(s.insert(rows)).await?,
        Side::SeaOrm(s) => timed(s.insert(SeaOrm::insert_input(rows))).await?,
        Side::Diesel(s) => {
            let input = Diesel::insert_input(rows);
            timed(s.insert(&input)).await?
        }
    };
    check_inserted(w, written).await?;
    Ok(elapsed)
}

/// `--diagnose`: Chakra's fetch against raw, each receiving rows two ways.
pub enum FetchSplit<'a> {
    /// `query_raw`, decoded as rows arrive (the headline's raw side).
    RawArriving(&'a Raw),
    /// `query`, decoded after the last row.
    RawCollected(&'a Raw),
    /// `query_raw`, rows counted and not decoded: the floor under every side.
    RawUndecoded(&'a Raw),
    /// `all` (the headline's chakra side).
    ChakraAll(&'a Models),
    /// `stream`, collected.
    ChakraStreamed(&'a Models),
    /// `query_stream` of the same SQL, rows counted and not decoded: Chakra's transport
    /// alone, against `RawUndecoded`.
    ChakraUndecoded(&'a Models),
    /// diesel-async's `load` (the headline's diesel side).
    Diesel(&'a Diesel),
}

pub async fn fetch_split(w: &Workload, variant: &FetchSplit<'_>) -> Result<Duration> {
    let start = Instant::now();
    macro_rules! fetch {
        ($f:expr) => {{
            let users = $f.await?;
            let elapsed = start.elapsed();
            check::same("fetch", Fingerprint::of(&users), w.fetch_expected)?;
            black_box(users);
            elapsed
        }};
    }
    Ok(match variant {
        FetchSplit::RawArriving(s) => fetch!(s.fetch(data::FETCH_ROWS)),
        FetchSplit::RawCollected(s) => fetch!(s.fetch_collected(data::FETCH_ROWS)),
        FetchSplit::RawUndecoded(s) => counted(start, s.fetch_undecoded(data::FETCH_ROWS).await?)?,
        FetchSplit::ChakraUndecoded(s) => counted(start, s.fetch_undecoded(data::FETCH_ROWS).await?)?,
        FetchSplit::ChakraAll(s) => fetch!(s.fetch(data::FETCH_ROWS)),
        FetchSplit::ChakraStreamed(s) => fetch!(s.fetch_streamed(data::FETCH_ROWS)),
        FetchSplit::Diesel(s) => fetch!(s.fetch(data::FETCH_ROWS)),
    })
}

/// The time since `start`, once `count` is the fetch's number of rows.
fn counted(start: Instant, count: usize) -> Result<Duration> {
    let elapsed = start.elapsed();
    if count != data::FETCH_ROWS as usize {
        return Err(format!("fetch: {count} rows, expected {}", data::FETCH_ROWS).into());
    }
    Ok(elapsed)
}

/// `--diagnose`: bulk inserts by `COPY` and by `UNNEST` with and without `RETURNING`, raw
/// and Chakra (`insert_many` loads by `COPY` and reads nothing back, `insert_all` is one
/// `UNNEST … RETURNING` reading back every stored row).
pub enum InsertSplit<'a> {
    Raw(&'a Raw),
    RawUnnest(&'a Raw),
    RawReturning(&'a Raw),
    Chakra(&'a Models),
    ChakraReturning(&'a Models),
}

pub async fn insert_split(w: &Workload, variant: &InsertSplit<'_>) -> Result<Duration> {
    alloc_count::pause(true);
    tables::reset_insert_table(&w.admin).await?;
    let rows = &w.new_users;
    let (written, elapsed) = match variant {
        InsertSplit::Raw(s) => timed(s.insert(rows)).await?,
        InsertSplit::RawUnnest(s) => timed(s.insert_unnest(rows)).await?,
        InsertSplit::RawReturning(s) => timed(s.insert_returning(rows)).await?,
        InsertSplit::Chakra(s) => {
            let input = Models::insert_input(rows);
            timed(s.insert(&input)).await?
        }
        InsertSplit::ChakraReturning(s) => timed(s.insert_returning(Models::insert_input(rows))).await?,
    };
    check_inserted(w, written).await?;
    Ok(elapsed)
}

/// Runs `insert`, timing only that: its argument (the rows in the side's input type) is
/// made before, since a future does nothing until polled.
/// Allocations are counted (under `--allocs`) only while it runs.
async fn timed(insert: impl std::future::Future<Output = Result<u64>>) -> Result<(u64, Duration)> {
    alloc_count::pause(false);
    let start = Instant::now();
    let written = insert.await;
    let elapsed = start.elapsed();
    alloc_count::pause(true);
    Ok((written?, elapsed))
}

/// The insert said it wrote every row, and the table holds exactly them.
async fn check_inserted(w: &Workload, written: u64) -> Result<()> {
    if written != w.new_users.len() as u64 {
        return Err(format!("bulk insert: {written} rows written, expected {}", w.new_users.len()).into());
    }
    let stored: Vec<User> = w
        .admin
        .query(tables::INSERTED_SQL, &[])
        .await?
        .iter()
        .map(User::from_row)
        .collect::<std::result::Result<_, _>>()?;
    let checked = check::same("bulk insert", Fingerprint::of(&stored), w.insert_expected);
    alloc_count::pause(false);
    checked
}
