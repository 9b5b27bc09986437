//! The executor: the innermost `tower::Service`, which runs one request on the connection
//! it was leased with tokio-postgres.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{SinkExt, Stream, StreamExt, TryStreamExt};
use pin_project::pin_project;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Client;
use tower_service::Service;

use crate::conn::{send_cancel, Conn, Lease};
use crate::connection::Statements;
use crate::error::{Error, ErrorKind, Result};
use crate::request::{CancelSlot, Mode, Request, TxEffect};
use crate::response::{Response, Row, RowStream};
use crate::value::Value;

/// A request together with the connection it will run on (see the acquire layer).
#[derive(Debug)]
pub struct Leased {
    pub request: Request,
    pub lease: Lease,
}

/// Runs leased requests with tokio-postgres: cached prepared statements by default,
/// unnamed typed statements when `database.statement_cache` is off, and true streaming
/// for `Mode::Stream`.
///
/// If its future is dropped mid-statement the connection is marked in flight and
/// [`Conn`] discards it (after cancelling the statement) instead of reusing it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Executor;

impl Service<Leased> for Executor {
    type Response = Response;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, leased: Leased) -> Self::Future {
        Box::pin(execute(leased))
    }
}

/// Runs one leased request (what [`Executor`] does, as a plain function).
pub async fn execute(Leased { request, mut lease }: Leased) -> Result<Response> {
    if lease.is_broken() {
        return Err(Error::new(
            ErrorKind::Connection,
            "this connection is unusable (an earlier statement on it failed with a connection error or was cancelled); start a new session or transaction",
        ));
    }
    let slot = request.cancel.as_ref();
    if let Some(slot) = slot {
        slot.start();
    }
    lease.in_flight = true;
    if request.requires_transaction && !lease.in_transaction {
        // A pooled connection is never inside a transaction. On a session, one Chakra did
        // not track may be open (begun by SQL it could not read: a function, a statement
        // after a comment), which only the server can tell.
        let open = if matches!(lease, Lease::Pinned(_)) { in_raw_transaction(&mut lease).await } else { Ok(false) };
        let outcome = match open {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::new(ErrorKind::Usage, NOT_IN_A_TRANSACTION)),
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            lease.in_flight = false;
            settle(&mut lease, &request, Err(&e));
            return Err(hand_back(e, request));
        }
    }
    if request.mode == Mode::Stream {
        return match start_stream(&mut lease, &request, slot).await {
            Ok(rows) => {
                let cancel = request.cancel.clone();
                Ok(Response::Stream(RowStream::new(LeasedRows { rows, lease: Some(lease), cancel })))
            }
            Err(e) => {
                lease.in_flight = false;
                settle(&mut lease, &request, Err(&e));
                Err(hand_back(e, request))
            }
        };
    }
    let mut result = run(&mut lease, &request, slot).await;
    if let Err(e) = &result {
        if is_stale_plan(e) && !lease.in_transaction {
            // The table changed shape since this connection prepared the statement
            // (SQLSTATE 0A000, "cached plan must not change result type"): prepare afresh.
            lease.pg_mut().forget_statement(&request.statement.sql);
            result = run(&mut lease, &request, slot).await;
        }
    }
    lease.in_flight = false;
    settle(&mut lease, &request, result.as_ref().map(|_| ()));
    match result {
        Ok(Response::Rows(rows)) => Response::for_request(rows, &request),
        Ok(other) => Ok(other),
        Err(e) => Err(hand_back(e, request)),
    }
}

/// Why a locking statement outside a transaction is refused.
const NOT_IN_A_TRANSACTION: &str = "this query locks rows until its transaction ends (FOR UPDATE / FOR \
     SHARE), but it is not in one: its locks would be released as soon as it returned. Run it in a transaction \
     (pool.begin(), session.begin() or pool.transaction(..); in Python, a Session, which begins one for it)";

/// Whether the connection is inside a transaction block Chakra did not track (see
/// [`TxEffect::of_sql`] for the `BEGIN`s it reads). A statement outside any block runs in
/// a transaction of its own, begun as it starts, so there `now()` (when the transaction
/// began) equals `statement_timestamp()`; sent as a simple query, since in the extended
/// protocol each message restamps the statement. One round trip, made only for a locking
/// statement on a session Chakra has seen no `BEGIN` on.
async fn in_raw_transaction(conn: &mut Conn) -> Result<bool> {
    let (client, _, driver) = conn.pg_mut().parts();
    let messages = driver.drive(client.simple_query("SELECT now() <> statement_timestamp()")).await?;
    let answer = messages.iter().find_map(|message| match message {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0),
        _ => None,
    });
    Ok(answer == Some("t"))
}

/// Gives a connection failure its request back, for the retry layer to send again.
pub fn hand_back(e: Error, request: Request) -> Error {
    match e.kind() {
        ErrorKind::Connection => e.with_request(request),
        _ => e,
    }
}

fn is_stale_plan(e: &Error) -> bool {
    e.code() == Some(&SqlState::FEATURE_NOT_SUPPORTED) && e.message().contains("cached plan")
}

/// Updates the connection's state after a statement: transaction boundaries, and whether
/// it may be reused at all.
fn settle(conn: &mut Conn, request: &Request, outcome: std::result::Result<(), &Error>) {
    match (request.tx_effect, outcome) {
        (TxEffect::Begins, Ok(())) => conn.in_transaction = true,
        (TxEffect::Ends, _) => conn.in_transaction = false,
        _ => {}
    }
    settle_health(conn, request.cancel.as_ref(), outcome);
}

/// Marks the connection broken after a connection error, or when a cancel was sent but
/// the statement did not end by being cancelled: that cancel may still reach the server
/// and hit whatever the connection runs next.
fn settle_health(conn: &mut Conn, cancel: Option<&CancelSlot>, outcome: std::result::Result<(), &Error>) {
    if let Err(e) = outcome {
        conn.broken |= e.is_connection_broken();
    }
    if cancel.is_some_and(CancelSlot::was_sent)
        && !matches!(outcome, Err(e) if e.code() == Some(&SqlState::QUERY_CANCELED))
    {
        conn.broken = true;
    }
}

/// A statement's future that first sends the server a cancel for the statement when the
/// timeout layer has asked for one (see [`CancelSlot`]).
#[pin_project]
struct Cancellable<'a, F> {
    #[pin]
    statement: F,
    client: &'a Client,
    slot: Option<&'a CancelSlot>,
}

impl<F: Future> Future for Cancellable<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        send_cancel_if_asked(*this.slot, this.client);
        this.statement.poll(cx)
    }
}

/// Sends the server a cancel for the statement running on `client`'s connection if the
/// timeout layer asked for one through `slot` and none was sent yet.
fn send_cancel_if_asked(slot: Option<&CancelSlot>, client: &Client) {
    if slot.is_some_and(CancelSlot::take_request) {
        send_cancel(client.cancel_token());
    }
}

/// Parameters as the driver takes them, without collecting them into a `Vec` first.
fn params(values: &[Value]) -> impl ExactSizeIterator<Item = &(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync))
}

fn typed_params(values: &[Value]) -> impl ExactSizeIterator<Item = (&(dyn ToSql + Sync), Type)> {
    values.iter().map(|v| (v as &(dyn ToSql + Sync), v.natural_type()))
}

/// Runs a statement to its end on `conn`, driving the connection meanwhile.
async fn run(conn: &mut Conn, request: &Request, slot: Option<&CancelSlot>) -> Result<Response> {
    let (cache, in_transaction) = (conn.statement_cache, conn.in_transaction);
    let (client, statements, driver) = conn.pg_mut().parts();
    let (sql, values) = (&*request.statement.sql, &request.statement.params);
    let statement = async move {
        Ok(match request.mode {
            Mode::Execute if cache => {
                let statement = prepare_cached(client, statements, sql).await?;
                Response::Affected(client.execute_raw(&statement, params(values)).await?)
            }
            Mode::Execute => {
                Response::Affected(client.execute_typed(sql, &typed_params(values).collect::<Vec<_>>()).await?)
            }
            Mode::CopyIn => {
                let data = match &request.copy_source {
                    Some(source) => CopyData::Pieces { pieces: source.take()?, cancel: slot.cloned() },
                    None => CopyData::Whole(copy_data(values)?),
                };
                Response::Affected(copy_in(client, statements, cache, in_transaction, sql, data).await?)
            }
            _ => Response::Rows(rows(client, statements, cache, sql, values).await?.try_collect().await?),
        })
    };
    Cancellable { statement: driver.drive(statement), client, slot }.await
}

/// What a `COPY … FROM STDIN` sends.
enum CopyData {
    /// All of it, the request's one parameter.
    Whole(Bytes),
    /// Pieces as they are made (see [`copy_pipe`](crate::copy_pipe)), and the request's
    /// cancel slot: once a cancel is sent, waiting for a piece that may never come ends.
    Pieces { pieces: futures::channel::mpsc::Receiver<Result<Bytes>>, cancel: Option<CancelSlot> },
}

/// The data of a `Mode::CopyIn` request: its one parameter.
fn copy_data(values: &[Value]) -> Result<Bytes> {
    match values {
        [Value::Encoded(data)] => Ok(data.bytes().clone()),
        [Value::Bytes(data)] => Ok(Bytes::copy_from_slice(data)),
        _ => Err(Error::new(
            ErrorKind::Usage,
            "a COPY request takes one parameter: the data to send (CopyRows::into_value)",
        )),
    }
}

/// Runs a `COPY … FROM STDIN` with `data` and returns the number of rows written.
async fn copy_in(
    client: &Client,
    statements: &mut Statements,
    cache: bool,
    in_transaction: bool,
    sql: &str,
    data: CopyData,
) -> Result<u64> {
    // tokio-postgres runs a COPY through a named statement; without the cache it is
    // prepared for this one use. Behind PgBouncer in transaction mode (why the cache is
    // off) the preparation and the COPY reach the same server only inside one transaction.
    let own_transaction = !cache && !in_transaction;
    if own_transaction {
        client.batch_execute("BEGIN").await?;
    }
    let copied = async {
        let statement = match cache {
            true => prepare_cached(client, statements, sql).await?,
            false => client.prepare(sql).await?,
        };
        send_copy(client, &statement, data).await
    }
    .await;
    if !own_transaction {
        return copied;
    }
    let end = client.batch_execute(if copied.is_ok() { "COMMIT" } else { "ROLLBACK" }).await;
    match (copied, end) {
        (copied, Ok(())) => Ok(copied?),
        // A failed COMMIT is the insert's failure (a deferred constraint, say); a failed
        // ROLLBACK leaves the connection unusable, which its error says.
        (_, Err(e)) => Err(e.into()),
    }
}

/// Sends `data` and ends the `COPY`. Returning early (an error, or a piece that is one)
/// drops the sink unfinished, which aborts the `COPY`: the server writes nothing.
async fn send_copy(client: &Client, statement: &tokio_postgres::Statement, data: CopyData) -> Result<u64> {
    let mut sink = std::pin::pin!(client.copy_in::<_, Bytes>(statement).await?);
    match data {
        CopyData::Whole(data) => sink.send(data).await?,
        CopyData::Pieces { mut pieces, cancel } => {
            // The server fails a cancelled COPY at once, but says so only in answer to its
            // end; a writer that stalls would keep the request waiting for a piece until
            // the timeout gave up on it. Once the cancel is out, the COPY is aborted here.
            let cancelled = || cancel.as_ref().is_some_and(CancelSlot::was_sent);
            loop {
                let next = std::future::poll_fn(|cx| match cancelled() {
                    true => Poll::Ready(None),
                    false => pieces.poll_next_unpin(cx).map(Some),
                });
                match next.await {
                    Some(Some(piece)) => sink.send(piece?).await?,
                    Some(None) => break,
                    None => {
                        return Err(Error::new(
                            ErrorKind::Timeout,
                            "COPY aborted: its deadline passed while it waited for the next piece of its data",
                        ))
                    }
                }
            }
        }
    }
    Ok(sink.finish().await?)
}

/// Sends a `Mode::Stream` statement and waits for the server to take it; the rows follow
/// as the stream is read.
async fn start_stream(
    conn: &mut Conn,
    request: &Request,
    slot: Option<&CancelSlot>,
) -> Result<tokio_postgres::RowStream> {
    let cache = conn.statement_cache;
    let (client, statements, driver) = conn.pg_mut().parts();
    let (sql, values) = (&*request.statement.sql, &request.statement.params);
    let statement = rows(client, statements, cache, sql, values);
    Ok(Cancellable { statement: driver.drive(statement), client, slot }.await?)
}

/// A query's rows as the server sends them: through this connection's prepared statement
/// for `sql`, or an unnamed one when the statement cache is off.
async fn rows(
    client: &Client,
    statements: &mut Statements,
    cache: bool,
    sql: &str,
    values: &[Value],
) -> std::result::Result<tokio_postgres::RowStream, tokio_postgres::Error> {
    if cache {
        let statement = prepare_cached(client, statements, sql).await?;
        client.query_raw(&statement, params(values)).await
    } else {
        client.query_typed_raw(sql, typed_params(values)).await
    }
}

/// This connection's prepared statement for `sql`, prepared on first use.
async fn prepare_cached(
    client: &Client,
    statements: &mut Statements,
    sql: &str,
) -> std::result::Result<tokio_postgres::Statement, tokio_postgres::Error> {
    if let Some(statement) = statements.get(sql) {
        return Ok(statement.clone());
    }
    let statement = client.prepare(sql).await?;
    statements.insert(sql.into(), statement.clone());
    Ok(statement)
}

/// Rows read from the socket as the consumer polls, holding the connection until the
/// last row — then it goes back at once — or until dropped, which discards a connection
/// whose statement is still in flight.
#[pin_project]
struct LeasedRows {
    #[pin]
    rows: tokio_postgres::RowStream,
    lease: Option<Lease>,
    /// The timeout layer's hand-off, to tell at the end whether a cancel is still on its way.
    cancel: Option<CancelSlot>,
}

impl Stream for LeasedRows {
    type Item = Result<Row>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let Some(lease) = this.lease.as_mut() else { return Poll::Ready(None) };
        let mut rows = this.rows;
        let item = match lease.pg_mut().poll_next_row(cx, |cx| rows.as_mut().poll_next(cx)) {
            Poll::Pending => {
                // Only a statement that keeps its reader waiting can need cancelling, so
                // the timeout layer's request is looked at here, not for every row.
                send_cancel_if_asked(this.cancel.as_ref(), lease.pg().client());
                return Poll::Pending;
            }
            Poll::Ready(Some(Ok(row))) => return Poll::Ready(Some(Ok(row))),
            Poll::Ready(Some(Err(e))) => Some(Err(Error::from(e))),
            Poll::Ready(None) => None,
        };
        lease.in_flight = false;
        let outcome = match &item {
            Some(Err(e)) => Err(e),
            _ => Ok(()),
        };
        settle_health(lease, this.cancel.as_ref(), outcome);
        *this.lease = None;
        Poll::Ready(item)
    }
}
