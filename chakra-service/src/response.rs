//! `Response`: what the executor hands back up the stack.

use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

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
///
/// Layers follow a stream without wrapping it, so a row passes through no code of theirs:
/// [`on_end`](Self::on_end) for what happens once the stream ends (a span, a duration),
/// [`guard`](Self::guard) for what watches its waits for rows (a deadline).
pub struct RowStream {
    /// `None` once the stream has ended or been ended by a guard.
    inner: Option<Pin<Box<dyn Stream<Item = Result<Row>> + Send>>>,
    on_end: Vec<EndHook>,
    guards: Vec<Pin<Box<dyn StreamGuard>>>,
    /// The last poll found no row ready.
    waiting: bool,
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

/// Watches a [`RowStream`]'s waits for rows, e.g. a deadline; called only while the
/// consumer waits, never for a row that is ready.
pub trait StreamGuard: Send {
    /// The stream has no row ready. `Pending` keeps waiting (with a wake-up arranged);
    /// [`GuardAction::PollAgain`] polls the stream again at once; [`GuardAction::End`]
    /// ends it with that error, dropping the rows still to come.
    fn poll_wait(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<GuardAction>;

    /// Rows are flowing again after a wait.
    fn resumed(self: Pin<&mut Self>);

    /// The stream failed with `error`: the error to report in its place.
    fn failed(self: Pin<&mut Self>, error: Error) -> Error {
        error
    }
}

/// What a [`StreamGuard`] wants done after a wait.
#[derive(Debug)]
pub enum GuardAction {
    PollAgain,
    End(Error),
}

impl RowStream {
    /// Wraps any stream of rows.
    pub fn new(stream: impl Stream<Item = Result<Row>> + Send + 'static) -> Self {
        RowStream { inner: Some(Box::pin(stream)), on_end: Vec::new(), guards: Vec::new(), waiting: false }
    }

    /// Runs `hook` once the stream ends, however it ends.
    pub fn on_end(&mut self, hook: impl FnOnce(StreamEnd<'_>) + Send + 'static) {
        self.on_end.push(Box::new(hook));
    }

    /// Adds a guard over the stream's waits for rows.
    pub fn guard(&mut self, guard: impl StreamGuard + 'static) {
        self.guards.push(Box::pin(guard));
    }

    fn end(&mut self, how: StreamEnd<'_>) {
        self.inner = None;
        for hook in self.on_end.drain(..) {
            hook(how);
        }
    }

    fn resumed(&mut self) {
        if std::mem::take(&mut self.waiting) {
            self.guards.iter_mut().for_each(|g| g.as_mut().resumed());
        }
    }

    /// Asks the guards about a wait: the first that ends the stream wins.
    fn poll_guards(&mut self, cx: &mut Context<'_>) -> Poll<GuardAction> {
        let mut again = false;
        for guard in &mut self.guards {
            match guard.as_mut().poll_wait(cx) {
                Poll::Ready(GuardAction::End(e)) => return Poll::Ready(GuardAction::End(e)),
                Poll::Ready(GuardAction::PollAgain) => again = true,
                Poll::Pending => {}
            }
        }
        if again {
            Poll::Ready(GuardAction::PollAgain)
        } else {
            Poll::Pending
        }
    }
}

impl Stream for RowStream {
    type Item = Result<Row>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
            match inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(row))) => {
                    if this.waiting {
                        this.resumed();
                    }
                    return Poll::Ready(Some(Ok(row)));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.resumed();
                    let e = this.guards.iter_mut().fold(e, |e, g| g.as_mut().failed(e));
                    this.end(StreamEnd::Failed(&e));
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.end(StreamEnd::Finished);
                    return Poll::Ready(None);
                }
                Poll::Pending if this.guards.is_empty() => return Poll::Pending,
                Poll::Pending => {
                    this.waiting = true;
                    match ready!(this.poll_guards(cx)) {
                        GuardAction::PollAgain => continue,
                        GuardAction::End(e) => {
                            this.end(StreamEnd::Failed(&e));
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                }
            }
        }
    }
}

impl Drop for RowStream {
    fn drop(&mut self) {
        if !self.on_end.is_empty() {
            self.end(StreamEnd::Dropped);
        }
    }
}
