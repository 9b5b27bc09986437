//! The floor: bare tokio-postgres clients, every statement prepared once per client, rows
//! decoded by hand into `data::User`.

use std::sync::Arc;

use futures::future::{join_all, try_join_all};
use futures::TryStreamExt;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, Statement};

use crate::check::{self, Fingerprint};
use crate::data::{NewUser, User};
use crate::tables;
use crate::Result;

check::user_row!(User);

struct RawClient {
    client: Client,
    get: Statement,
    fetch: Statement,
    stream: Statement,
    copy: Statement,
    /// `INSERT … SELECT * FROM UNNEST(…)`, with and without `RETURNING` every column, for
    /// `--diagnose`.
    unnest: Statement,
    unnest_returning: Statement,
}

impl RawClient {
    async fn connect(url: &str) -> Result<RawClient> {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(RawClient {
            get: client.prepare(tables::GET_SQL).await?,
            fetch: client.prepare(tables::FETCH_SQL).await?,
            stream: client.prepare(tables::STREAM_SQL).await?,
            copy: client.prepare(tables::COPY_SQL).await?,
            unnest: client.prepare(tables::UNNEST_SQL).await?,
            unnest_returning: client.prepare(tables::UNNEST_RETURNING_SQL).await?,
            client,
        })
    }

    async fn get(&self, id: i64) -> Result<User> {
        let row = self.client.query_one(&self.get, &[&id]).await?;
        Ok(User::from_row(&row)?)
    }
}

/// `pool_size` clients. The single-query shapes use the first; the concurrent gets use
/// all of them, each pipelining its share.
pub struct Raw {
    clients: Vec<Arc<RawClient>>,
}

impl Raw {
    pub async fn connect(url: &str, pool_size: usize) -> Result<Raw> {
        let clients = try_join_all((0..pool_size).map(|_| RawClient::connect(url))).await?;
        Ok(Raw { clients: clients.into_iter().map(Arc::new).collect() })
    }

    pub async fn get(&self, id: i64) -> Result<User> {
        self.clients[0].get(id).await
    }

    /// Each client takes an equal share of `ids` in a task of its own and sends them all
    /// without waiting for replies (tokio-postgres pipelines queries on one connection).
    /// Answers come back in the order of `ids`.
    pub async fn concurrent_gets(&self, ids: &[i64]) -> Result<Vec<User>> {
        let share = ids.len().div_ceil(self.clients.len());
        let tasks = self.clients.iter().zip(ids.chunks(share)).map(|(client, ids)| {
            let (client, ids) = (client.clone(), ids.to_vec());
            tokio::spawn(async move {
                join_all(ids.iter().map(|&id| client.get(id))).await.into_iter().collect::<Result<Vec<User>>>()
            })
        });
        let mut users = Vec::with_capacity(ids.len());
        for task in join_all(tasks).await {
            users.extend(task??);
        }
        Ok(users)
    }

    /// `query_raw`, each row decoded as it arrives.
    pub async fn fetch(&self, max_id: i64) -> Result<Vec<User>> {
        let raw = &self.clients[0];
        let rows = raw.client.query_raw(&raw.fetch, [max_id]).await?;
        let mut rows = std::pin::pin!(rows);
        let mut users = Vec::new();
        while let Some(row) = rows.try_next().await? {
            users.push(User::from_row(&row)?);
        }
        Ok(users)
    }

    /// `query_raw`, rows counted and dropped undecoded (`--diagnose`: the floor under any
    /// client, the time the server takes to produce and send the rows).
    pub async fn fetch_undecoded(&self, max_id: i64) -> Result<usize> {
        let raw = &self.clients[0];
        let rows = raw.client.query_raw(&raw.fetch, [max_id]).await?;
        let mut rows = std::pin::pin!(rows);
        let mut count = 0;
        while rows.try_next().await?.is_some() {
            count += 1;
        }
        Ok(count)
    }

    /// `query`: every row collected first, then decoded (`--diagnose`: how Chakra's
    /// `all` receives rows).
    pub async fn fetch_collected(&self, max_id: i64) -> Result<Vec<User>> {
        let raw = &self.clients[0];
        let rows = raw.client.query(&raw.fetch, &[&max_id]).await?;
        Ok(rows.iter().map(User::from_row).collect::<std::result::Result<_, _>>()?)
    }

    pub async fn stream(&self) -> Result<Fingerprint> {
        let raw = &self.clients[0];
        let rows = raw.client.query_raw(&raw.stream, std::iter::empty::<i64>()).await?;
        check::drain(rows.and_then(|row| async move { User::from_row(&row) })).await
    }

    /// Binary `COPY … FROM STDIN`, the rows written by `BinaryCopyInWriter` inside the
    /// timed part: the fastest way in.
    pub async fn insert(&self, rows: &[NewUser]) -> Result<u64> {
        let raw = &self.clients[0];
        let sink = raw.client.copy_in(&raw.copy).await?;
        let types = [Type::TEXT, Type::TEXT, Type::FLOAT8, Type::TIMESTAMPTZ];
        let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
        for u in rows {
            writer.as_mut().write(&[&u.name, &u.email, &u.score, &u.created]).await?;
        }
        Ok(writer.finish().await?)
    }

    /// The prepared `INSERT … SELECT * FROM UNNEST($1::text[], …)`, one array per column
    /// built from the rows inside the timed part (`--diagnose`).
    pub async fn insert_unnest(&self, rows: &[NewUser]) -> Result<u64> {
        let raw = &self.clients[0];
        let names: Vec<&str> = rows.iter().map(|u| u.name.as_str()).collect();
        let emails: Vec<&str> = rows.iter().map(|u| u.email.as_str()).collect();
        let scores: Vec<f64> = rows.iter().map(|u| u.score).collect();
        let created: Vec<_> = rows.iter().map(|u| u.created).collect();
        Ok(raw.client.execute(&raw.unnest, &[&names, &emails, &scores, &created]).await?)
    }

    /// [`insert_unnest`](Self::insert_unnest) with `RETURNING` every column, the stored rows decoded
    /// into `User`s (`--diagnose`: the part of Chakra's bulk insert that is `RETURNING`).
    pub async fn insert_returning(&self, rows: &[NewUser]) -> Result<u64> {
        let raw = &self.clients[0];
        let names: Vec<&str> = rows.iter().map(|u| u.name.as_str()).collect();
        let emails: Vec<&str> = rows.iter().map(|u| u.email.as_str()).collect();
        let scores: Vec<f64> = rows.iter().map(|u| u.score).collect();
        let created: Vec<_> = rows.iter().map(|u| u.created).collect();
        let stored = raw.client.query(&raw.unnest_returning, &[&names, &emails, &scores, &created]).await?;
        let stored: Vec<User> = stored.iter().map(User::from_row).collect::<std::result::Result<_, _>>()?;
        Ok(stored.len() as u64)
    }
}
