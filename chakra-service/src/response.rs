//! `Response`: what the executor hands back up the stack.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

use crate::error::{Error, ErrorKind, Result};
use crate::request::{Mode, Request};

/// A result row, decoded lazily column by column (`row.try_get::<_, T>(i)`).
pub type Row = tokio_postgres::Row;

/// The outcome of a [`Request`](crate::Request).
pub enum Response {
    /// Rows of `Mode::All`, `One` (exactly one) or `Optional` (at most one).
    Rows(Vec<Row>),
    /// Rows affected by `Mode::Execute`.
    Affected(u64),
    /// Rows of `Mode::Stream`; the stream holds its connection until it ends or is dropped.
    Stream(RowStream),
}

impl Response {
    /// Rows as `request.mode` wants them: `One` fails with `NotFound` on no rows, `One` and
    /// `Optional` fail with `MultipleFound` on several.
    pub fn for_request(rows: Vec<Row>, request: &Request) -> Result<Response> {
        let table = || request.labels.table.as_deref().map(|t| format!(" in `{t}`")).unwrap_or_default();
        match (request.mode, rows.len()) {
            (Mode::One, 0) => Err(Error::new(ErrorKind::NotFound, format!("no row found{}", table()))),
            (Mode::One | Mode::Optional, n) if n > 1 => {
                Err(Error::new(ErrorKind::MultipleFound, format!("expected one row{}, found {n}", table())))
            }
            _ => Ok(Response::Rows(rows)),
        }
    }

    /// The rows, for any row-returning mode but `Stream`.
    pub fn into_rows(self) -> Result<Vec<Row>> {
        match self {
            Response::Rows(rows) => Ok(rows),
            other => Err(unexpected("rows", &other)),
        }
    }

    /// The single row of a `Mode::One` request.
    pub fn into_row(self) -> Result<Row> {
        self.into_optional()?.ok_or_else(|| Error::new(ErrorKind::NotFound, "query returned no rows"))
    }

    /// The row of a `Mode::Optional` (or `One`) request, if any.
    pub fn into_optional(self) -> Result<Option<Row>> {
        let mut rows = self.into_rows()?;
        match rows.len() {
            0 | 1 => Ok(rows.pop()),
            n => Err(Error::new(ErrorKind::MultipleFound, format!("expected at most one row, query returned {n}"))),
        }
    }

    /// The affected-row count of a `Mode::Execute` request.
    pub fn rows_affected(self) -> Result<u64> {
        match self {
            Response::Affected(n) => Ok(n),
            other => Err(unexpected("a row count", &other)),
        }
    }

    /// The stream of a `Mode::Stream` request.
    pub fn into_stream(self) -> Result<RowStream> {
        match self {
            Response::Stream(s) => Ok(s),
            other => Err(unexpected("a row stream", &other)),
        }
    }
}

fn unexpected(wanted: &str, got: &Response) -> Error {
    Error::new(
        ErrorKind::Usage,
        format!("expected {wanted} from the executor, got {got:?} (request built with the wrong mode)"),
    )
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Response::Rows(rows) => write!(f, "Rows({} rows)", rows.len()),
            Response::Affected(n) => write!(f, "Affected({n})"),
            Response::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// Rows streamed from the server as the consumer reads them (no full buffering).
pub struct RowStream {
    inner: Pin<Box<dyn Stream<Item = Result<Row>> + Send>>,
    /// Called once when the stream ends (see [`on_end`](Self::on_end)).
    on_end: Vec<EndHook>,
}

type EndHook = Box<dyn FnOnce(StreamEnd<'_>) + Send>;

/// How a [`RowStream`] ended.
#[derive(Debug, Clone, Copy)]
pub enum StreamEnd<'a> {
    /// After its last row.
    Finished,
    /// With an error, its last item.
    Failed(&'a Error),
    /// Dropped by its consumer before its end.
    Dropped,
}

impl RowStream {
    /// Wraps any stream of rows (layers may transform one).
    pub fn new(stream: impl Stream<Item = Result<Row>> + Send + 'static) -> Self {
        RowStream { inner: Box::pin(stream), on_end: Vec::new() }
    }

    /// Runs `hook` once the stream ends, however it ends: how layers that only care about
    /// the end (a span, a duration) follow a stream without a wrapper every row passes through.
    pub fn on_end(&mut self, hook: impl FnOnce(StreamEnd<'_>) + Send + 'static) {
        self.on_end.push(Box::new(hook));
    }

    fn end(&mut self, how: StreamEnd<'_>) {
        for hook in self.on_end.drain(..) {
            hook(how);
        }
    }
}

impl Stream for RowStream {
    type Item = Result<Row>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = self.inner.as_mut().poll_next(cx);
        match &item {
            Poll::Ready(None) if !self.on_end.is_empty() => self.end(StreamEnd::Finished),
            Poll::Ready(Some(Err(e))) if !self.on_end.is_empty() => self.end(StreamEnd::Failed(e)),
            _ => {}
        }
        item
    }
}

impl Drop for RowStream {
    fn drop(&mut self) {
        self.end(StreamEnd::Dropped);
    }
}
