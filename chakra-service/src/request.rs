//! `Request`: one database operation as plain data, built by a front-end and carried
//! down the layer stack to the executor.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::conn::PinnedConn;
use crate::copy::CopySource;
use crate::shared_str::SharedStr;
use crate::value::Value;

/// SQL text and its parameters. User data only ever travels in `params`.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: SharedStr,
    pub params: Vec<Value>,
}

impl Statement {
    /// A statement with `$1`-style placeholders bound to `params`.
    pub fn new(sql: impl Into<SharedStr>, params: Vec<Value>) -> Self {
        Statement { sql: sql.into(), params }
    }
}

impl From<&str> for Statement {
    fn from(sql: &str) -> Self {
        Statement::new(sql, Vec::new())
    }
}

/// What the caller wants back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every row, collected.
    All,
    /// Exactly one row: none is [`ErrorKind::NotFound`](crate::ErrorKind::NotFound), several
    /// are [`ErrorKind::MultipleFound`](crate::ErrorKind::MultipleFound).
    One,
    /// Zero or one row; several are `MultipleFound`.
    Optional,
    /// The number of rows affected.
    Execute,
    /// Rows as a stream, read from the socket as the caller consumes them.
    Stream,
    /// A `COPY … FROM STDIN (FORMAT binary)` whose one parameter is the data to send
    /// ([`CopyRows::into_value`](crate::CopyRows::into_value)); answers the number of rows written.
    CopyIn,
}

/// Which connection runs the request.
#[derive(Debug, Clone, Default)]
pub enum Route {
    /// Any connection from the pool, taken for this request only.
    #[default]
    Pool,
    /// The connection a session or transaction holds.
    Pinned(PinnedConn),
}

/// How a request changes the connection's transaction state; the executor tracks it so a
/// connection is never handed back to the pool inside a transaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TxEffect {
    #[default]
    None,
    /// `BEGIN` / `START TRANSACTION`.
    Begins,
    /// `COMMIT` / `ROLLBACK` (also when they fail: the server has ended the transaction).
    Ends,
}

impl TxEffect {
    /// What one raw statement does to the transaction, read from its leading keywords, so
    /// that a `BEGIN` sent as SQL is tracked like `pool.begin()`'s: a connection is then
    /// never handed back to the pool inside it (it is rolled back first). `BEGIN` and
    /// `START TRANSACTION` begin one; `COMMIT`, `END`, `ROLLBACK`, `ABORT` and `PREPARE
    /// TRANSACTION` end it, except `ROLLBACK TO` (a savepoint), `… PREPARED` (another
    /// transaction) and `… AND CHAIN` (which begins the next at once). A request holds
    /// one statement (the extended protocol takes no more), so its first words decide,
    /// after any leading comments.
    pub fn of_sql(sql: &str) -> TxEffect {
        let mut words =
            statement_text(sql).split(|c: char| c.is_ascii_whitespace() || c == ';').filter(|w| !w.is_empty());
        let is = |word: Option<&str>, keyword: &str| word.is_some_and(|w| w.eq_ignore_ascii_case(keyword));
        let (first, second) = (words.next(), words.next());
        let ending = ["COMMIT", "END", "ROLLBACK", "ABORT"].iter().any(|k| is(first, k));
        if is(first, "BEGIN") || (is(first, "START") && is(second, "TRANSACTION")) {
            TxEffect::Begins
        } else if is(first, "PREPARE") && is(second, "TRANSACTION") {
            TxEffect::Ends
        } else if !ending || is(second, "TO") || is(second, "PREPARED") {
            TxEffect::None
        } else {
            // `AND CHAIN` ends the transaction and begins the next; `AND NO CHAIN` just ends it.
            let rest: Vec<&str> = second.into_iter().chain(words).collect();
            let chained = rest.windows(2).any(|w| is(Some(w[0]), "AND") && is(Some(w[1]), "CHAIN"));
            if chained {
                TxEffect::None
            } else {
                TxEffect::Ends
            }
        }
    }
}

/// What a request is about, for tracing and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels {
    /// `SELECT`, `INSERT`, … (`db.operation.name`).
    pub operation: Cow<'static, str>,
    /// The main table (`db.collection.name`), when there is one.
    pub table: Option<SharedStr>,
}

impl Labels {
    /// Labels for an operation on a table.
    pub fn new(operation: impl Into<Cow<'static, str>>, table: Option<SharedStr>) -> Self {
        Labels { operation: operation.into(), table }
    }

    /// Labels guessed from raw SQL: the first keyword after any leading comments and
    /// opening parentheses, upper-cased, as the operation. Common keywords cost no
    /// allocation (this runs for every raw query).
    pub fn from_sql(sql: &str) -> Self {
        const KNOWN: &[&str] = &[
            "SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "BEGIN", "COMMIT", "ROLLBACK", "SHOW", "VALUES", "EXPLAIN",
            "TABLE",
        ];
        let text = statement_text(sql).trim_start_matches(|c: char| c == '(' || c.is_whitespace());
        let word = text.split(|c: char| !c.is_ascii_alphabetic()).next().unwrap_or("");
        let operation: Cow<'static, str> = match KNOWN.iter().find(|k| k.eq_ignore_ascii_case(word)) {
            Some(known) => Cow::Borrowed(known),
            None if word.is_empty() => Cow::Borrowed("UNKNOWN"),
            None => Cow::Owned(word.to_ascii_uppercase()),
        };
        Labels { operation, table: None }
    }
}

/// `sql` from its first keyword: past leading whitespace, `-- line` comments and
/// `/* block */` comments, which nest in PostgreSQL. Tools put comments first (a query's
/// origin, a tracing context), and the keyword behind them is what the statement does.
fn statement_text(mut sql: &str) -> &str {
    loop {
        sql = sql.trim_start();
        if let Some(comment) = sql.strip_prefix("--") {
            sql = comment.split_once('\n').map_or("", |(_, rest)| rest);
        } else if sql.starts_with("/*") {
            let (bytes, mut depth, mut at) = (sql.as_bytes(), 0, 0);
            loop {
                match bytes.get(at..at + 2) {
                    None => return "",
                    Some(b"/*") => (depth, at) = (depth + 1, at + 2),
                    Some(b"*/") if depth == 1 => break,
                    Some(b"*/") => (depth, at) = (depth - 1, at + 2),
                    Some(_) => at += 1,
                }
            }
            // Just past the closing `*/`: a character boundary.
            sql = &sql[at + 2..];
        } else {
            return sql;
        }
    }
}

/// Marks a request as a lookup of one row by key, which the batch layer may merge with
/// concurrent lookups of the same shape into one `= ANY($1)` query.
#[derive(Debug, Clone, PartialEq)]
pub struct PointLookup {
    /// The same query for many keys: one parameter, an array of keys (`… = ANY($1)`).
    /// Lookups merge when they share this text in memory (see [`SharedStr::same`], not
    /// merely equal text): build it once per shape, as the models do, and clone it into
    /// each request.
    pub batch_sql: SharedStr,
    /// Index of the key column in the rows the query returns.
    pub key_column: usize,
    /// This request's key.
    pub key: Value,
}

/// A hand-off point through which the timeout layer asks for the statement the executor
/// is running to be cancelled, without either knowing the other's types.
///
/// The executor marks the statement started; on expiry the timeout layer requests a cancel
/// and polls the request again; the executor, which holds the connection, then sends the
/// server the cancel. Nothing of the connection is copied unless a cancel is sent.
///
/// A request waiting on another's statement (a batch member behind its group's leader)
/// can be *covered* by that statement's deadline when it comes no later than its own: the
/// timeout layer then arms no timer of its own for it, since the statement it waits on is
/// cancelled first, and a statement cancelled that way counts as this request's timeout.
#[derive(Clone, Default)]
pub struct CancelSlot(Arc<SlotState>);

#[derive(Default)]
struct SlotState {
    state: AtomicU8,
    /// When the timeout layer gives up on the request.
    deadline: Option<Instant>,
    covered: AtomicBool,
}

const IDLE: u8 = 0;
const RUNNING: u8 = 1;
const REQUESTED: u8 = 2;
const SENT: u8 = 3;
/// Never started: the statement that covered it was cancelled by its own deadline.
const CANCELLED_WITH_COVER: u8 = 4;

impl std::fmt::Debug for CancelSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelSlot").field("sent", &self.was_sent()).field("deadline", &self.0.deadline).finish()
    }
}

impl CancelSlot {
    /// The slot of a request given up on at `deadline`.
    pub fn with_deadline(deadline: Instant) -> Self {
        CancelSlot(Arc::new(SlotState { deadline: Some(deadline), ..SlotState::default() }))
    }

    /// When the request is given up on, if the slot says.
    pub fn deadline(&self) -> Option<Instant> {
        self.0.deadline
    }

    /// Called by the executor as the statement is sent.
    pub fn start(&self) {
        let _ = self.0.state.compare_exchange(IDLE, RUNNING, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Asks for the running statement to be cancelled; `false` if none has started (there
    /// is nothing to cancel). The executor sends the cancel when it is next polled.
    pub fn cancel(&self) -> bool {
        self.0.state.compare_exchange(RUNNING, REQUESTED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// For the executor: whether a cancel was asked for and not sent yet (it is then
    /// counted as sent).
    pub fn take_request(&self) -> bool {
        self.0.state.compare_exchange(REQUESTED, SENT, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Whether a cancel was sent: it may still reach the server after the statement ended
    /// and hit whatever the connection runs next.
    pub fn was_sent(&self) -> bool {
        self.0.state.load(Ordering::Acquire) == SENT
    }

    /// Marks the request as waiting on a statement whose deadline comes no later than its
    /// own (`true`), or as on its own again (`false`).
    pub fn cover(&self, covered: bool) {
        self.0.covered.store(covered, Ordering::Release);
    }

    /// Whether another statement's deadline covers the request's (see [`cover`](Self::cover)).
    pub fn is_covered(&self) -> bool {
        self.0.covered.load(Ordering::Acquire)
    }

    /// For whoever ran the covering statement: it was cancelled by its deadline, so the
    /// request it covered (which never started a statement) has timed out too.
    pub fn cancel_with_cover(&self) {
        let _ = self.0.state.compare_exchange(IDLE, CANCELLED_WITH_COVER, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Whether the statement that covered the request was cancelled by its deadline.
    pub fn was_cancelled_with_cover(&self) -> bool {
        self.0.state.load(Ordering::Acquire) == CANCELLED_WITH_COVER
    }
}

/// One database operation.
#[derive(Debug, Clone)]
pub struct Request {
    pub statement: Statement,
    pub mode: Mode,
    pub route: Route,
    pub labels: Labels,
    /// Safe to run again after a connection failure: reads outside a transaction.
    pub idempotent: bool,
    pub tx_effect: TxEffect,
    pub point_lookup: Option<PointLookup>,
    /// Per-request deadline, overriding the timeout layer's default.
    pub timeout: Option<Duration>,
    /// Installed by the timeout layer.
    pub cancel: Option<CancelSlot>,
    /// A `Mode::CopyIn` request's data sent in pieces (see [`copy_pipe`](crate::copy_pipe)),
    /// instead of whole as its one parameter.
    pub copy_source: Option<CopySource>,
    /// The statement locks rows until its transaction ends (`SELECT … FOR UPDATE`): the
    /// executor refuses it outside a transaction (on a pooled connection of its own, or a
    /// session with no transaction open), where the locks would go at once.
    pub requires_transaction: bool,
}

impl Request {
    /// A request for `statement` on any pooled connection, labelled from its SQL.
    /// Reads (`Mode::All`, `One`, `Optional`, `Stream`) are marked idempotent.
    pub fn new(statement: Statement, mode: Mode) -> Self {
        let labels = Labels::from_sql(&statement.sql);
        let tx_effect = TxEffect::of_sql(&statement.sql);
        Request::labelled(statement, mode, labels).tx_effect(tx_effect)
    }

    /// A request whose front-end already knows its labels (no SQL sniffing). Reads
    /// (`SELECT` in any mode but `Execute`) are marked idempotent.
    pub fn labelled(statement: Statement, mode: Mode, labels: Labels) -> Self {
        let idempotent = !matches!(mode, Mode::Execute | Mode::CopyIn) && labels.operation == "SELECT";
        Request {
            statement,
            mode,
            route: Route::Pool,
            labels,
            idempotent,
            tx_effect: TxEffect::None,
            point_lookup: None,
            timeout: None,
            cancel: None,
            copy_source: None,
            requires_transaction: false,
        }
    }

    /// Runs on `conn` instead of a pooled connection; never retried.
    pub fn pinned(mut self, conn: PinnedConn) -> Self {
        self.route = Route::Pinned(conn);
        self.idempotent = false;
        self
    }

    pub fn labels(mut self, labels: Labels) -> Self {
        self.labels = labels;
        self
    }

    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    pub fn tx_effect(mut self, effect: TxEffect) -> Self {
        self.tx_effect = effect;
        self
    }

    pub fn point_lookup(mut self, lookup: PointLookup) -> Self {
        self.point_lookup = Some(lookup);
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends a `Mode::CopyIn` request's data in pieces from `source` as they are made
    /// (see [`copy_pipe`](crate::copy_pipe)); the statement then takes no parameter.
    pub fn copy_from(mut self, source: CopySource) -> Self {
        self.copy_source = Some(source);
        self
    }

    /// Marks a statement that locks rows until its transaction ends (see
    /// [`requires_transaction`](Self::requires_transaction)); it is never retried.
    pub fn requires_transaction(mut self, requires: bool) -> Self {
        self.requires_transaction = requires;
        self.idempotent &= !requires;
        self
    }

    /// Whether this request runs on a session's or transaction's connection.
    pub fn is_pinned(&self) -> bool {
        matches!(self.route, Route::Pinned(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_the_first_keyword() {
        assert_eq!(Labels::from_sql("  select 1").operation, "SELECT");
        assert_eq!(Labels::from_sql("(SELECT 1)").operation, "SELECT");
        assert_eq!(Labels::from_sql("vacuum t").operation, "VACUUM");
        assert_eq!(Labels::from_sql("/* app=web */ select 1").operation, "SELECT");
        assert_eq!(Labels::from_sql("-- report\n-- by day\nDELETE FROM t").operation, "DELETE");
        assert_eq!(Labels::from_sql("-- only a comment").operation, "UNKNOWN");
        assert_eq!(Labels::from_sql("( (select*from t))").operation, "SELECT");
    }

    #[test]
    fn leading_comments_are_passed_over() {
        let cases = [
            ("  SELECT 1", "SELECT 1"),
            ("/* a */SELECT 1", "SELECT 1"),
            ("/* a /* nested */ still a */ BEGIN", "BEGIN"),
            ("/**/BEGIN", "BEGIN"),
            ("/* a * b / c */ BEGIN", "BEGIN"),
            ("-- a\r\n\t/* b */ -- c\n COMMIT -- d", "COMMIT -- d"),
            ("SELECT 1 /* later */", "SELECT 1 /* later */"),
            ("/* never closed BEGIN", ""),
            ("-- no newline BEGIN", ""),
            ("/* é */ BEGIN", "BEGIN"),
            ("", ""),
        ];
        for (sql, text) in cases {
            assert_eq!(statement_text(sql), text, "{sql:?}");
        }
    }

    #[test]
    fn raw_transaction_control_is_read_from_its_keywords() {
        use TxEffect::{Begins, Ends, None};
        let cases = [
            ("BEGIN", Begins),
            ("  begin isolation level serializable;", Begins),
            ("START TRANSACTION READ ONLY", Begins),
            ("COMMIT", Ends),
            ("end work", Ends),
            ("ROLLBACK;", Ends),
            ("abort transaction", Ends),
            ("COMMIT AND NO CHAIN", Ends),
            ("PREPARE TRANSACTION 'tx1'", Ends),
            ("COMMIT AND CHAIN", None),
            ("ROLLBACK WORK AND CHAIN", None),
            ("ROLLBACK TO SAVEPOINT s1", None),
            ("rollback to s1", None),
            ("COMMIT PREPARED 'tx1'", None),
            ("SAVEPOINT s1", None),
            ("START", None),
            ("DO $$ BEGIN PERFORM 1; END $$", None),
            ("SELECT 'BEGIN'", None),
            ("", None),
            ("/* from the admin page */ BEGIN", Begins),
            ("-- close it\nCOMMIT", Ends),
            ("-- BEGIN\nSELECT 1", None),
        ];
        for (sql, effect) in cases {
            assert_eq!(TxEffect::of_sql(sql), effect, "{sql:?}");
        }
        let request = Request::new(Statement::new("begin", vec![]), Mode::Execute);
        assert_eq!(request.tx_effect, Begins);
    }

    #[test]
    fn only_reads_are_idempotent() {
        assert!(Request::new("SELECT 1".into(), Mode::All).idempotent);
        assert!(!Request::new("DELETE FROM t".into(), Mode::Execute).idempotent);
        assert!(!Request::new("INSERT INTO t VALUES (1) RETURNING id".into(), Mode::One).idempotent);
    }
}
