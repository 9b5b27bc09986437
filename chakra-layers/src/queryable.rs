//! `Queryable`: anything a request can run on — a [`Pool`](crate::Pool), a
//! [`Session`](crate::Session) or a [`Transaction`](crate::Transaction) — so front-ends
//! (and users' raw SQL) are written once for all three.

use std::future::Future;

use chakra_service::{Mode, Request, Response, Result, Row, RowStream, Statement, Value};

/// Runs requests through the layer stack, on a pooled connection or the handle's own.
pub trait Queryable: Send + Sync {
    /// Sends `request` down the stack; sessions and transactions pin it to their connection.
    fn run(&self, request: Request) -> impl Future<Output = Result<Response>> + Send;

    /// Every row of a parameterised (`$1`, `$2`, …) query.
    fn query(&self, sql: &str, params: Vec<Value>) -> impl Future<Output = Result<Vec<Row>>> + Send {
        let request = Request::new(Statement::new(sql, params), Mode::All);
        async move { self.run(request).await?.into_rows() }
    }

    /// Exactly one row: none is `NotFound`, several are `MultipleFound`.
    fn query_one(&self, sql: &str, params: Vec<Value>) -> impl Future<Output = Result<Row>> + Send {
        let request = Request::new(Statement::new(sql, params), Mode::One);
        async move { self.run(request).await?.into_row() }
    }

    /// At most one row.
    fn query_opt(&self, sql: &str, params: Vec<Value>) -> impl Future<Output = Result<Option<Row>>> + Send {
        let request = Request::new(Statement::new(sql, params), Mode::Optional);
        async move { self.run(request).await?.into_optional() }
    }

    /// Runs a statement and returns the number of rows it affected.
    fn execute(&self, sql: &str, params: Vec<Value>) -> impl Future<Output = Result<u64>> + Send {
        let request = Request::new(Statement::new(sql, params), Mode::Execute);
        async move { self.run(request).await?.rows_affected() }
    }

    /// Rows as they arrive from the server; the connection is held until the stream ends
    /// or is dropped.
    fn query_stream(&self, sql: &str, params: Vec<Value>) -> impl Future<Output = Result<RowStream>> + Send {
        let request = Request::new(Statement::new(sql, params), Mode::Stream);
        async move { self.run(request).await?.into_stream() }
    }
}

impl<Q: Queryable> Queryable for &Q {
    fn run(&self, request: Request) -> impl Future<Output = Result<Response>> + Send {
        (**self).run(request)
    }
}
