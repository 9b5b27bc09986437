//! SQL rendering. A [`Dialect`] decides everything that differs between databases —
//! identifier quoting, placeholders, how a list membership or a bulk insert is spelled,
//! `RETURNING` — while [`compile`](crate::compile) walks the AST once for all of them.

mod postgres;

pub use postgres::Postgres;

use crate::ast::{BulkUpdate, Ident, Insert, LockStrength, LockWait, RowLock};
use crate::compile::SqlWriter;
use chakra_service::{Statement, Value};

/// One database's SQL spelling.
pub trait Dialect: Send + Sync {
    /// Writes `ident` quoted so reserved words and mixed case survive (`"order"`).
    fn quote(&self, out: &mut String, ident: &str);

    /// Writes the placeholder of the `n`-th parameter (1-based).
    fn placeholder(&self, out: &mut String, n: usize);

    /// Writes `column [NOT] IN values` for a non-empty `values`.
    fn write_in(&self, w: &mut SqlWriter<'_>, column: &Ident, values: &[Value], negated: bool);

    /// What follows a generated key column's type in `CREATE TABLE` (with its leading
    /// space): the database assigns its values.
    fn generated_key(&self) -> &'static str;

    /// Writes a case-insensitive `LIKE` operator (with its leading space).
    fn ilike(&self) -> &'static str;

    /// The operator matching a text with a regular expression (spaced).
    fn regex_match(&self, case_insensitive: bool) -> &'static str;

    /// Writes the condition that `column`'s text holds the words of `query` (full-text
    /// search), the query as a parameter.
    fn write_search(&self, w: &mut SqlWriter<'_>, column: &Ident, query: &str);

    /// Writes the whole multi-row insert.
    fn write_insert(&self, w: &mut SqlWriter<'_>, insert: &Insert);

    /// What comes before a statement to have its plan instead of its rows: with
    /// `analyze`, the plan as run, with its timings (the statement runs).
    fn explain(&self, analyze: bool) -> &'static str;

    /// Writes the whole update of many rows to values of their own.
    fn write_bulk_update(&self, w: &mut SqlWriter<'_>, update: &BulkUpdate);

    /// Writes a `SELECT`'s row-locking clause (with its leading space), at its end. The
    /// default is the spelling PostgreSQL and MySQL 8 share.
    fn write_lock(&self, w: &mut SqlWriter<'_>, lock: &RowLock) {
        w.push(match lock.strength {
            LockStrength::Update => " FOR UPDATE",
            LockStrength::NoKeyUpdate => " FOR NO KEY UPDATE",
            LockStrength::Share => " FOR SHARE",
            LockStrength::KeyShare => " FOR KEY SHARE",
        });
        w.push(match lock.wait {
            LockWait::Wait => "",
            LockWait::NoWait => " NOWAIT",
            LockWait::SkipLocked => " SKIP LOCKED",
        });
    }

    /// The database's own bulk-load path for `insert`'s table and columns (nothing
    /// returned, no upsert), if it has one faster than the multi-row insert: PostgreSQL's
    /// binary `COPY` of rows whose columns have the types `column_types` (OIDs, as
    /// [`CopyRows::column_types`](chakra_service::CopyRows) gives them). `None` when it
    /// has none or `insert` is not of that kind.
    fn bulk_load(&self, insert: &Insert, column_types: &[u32]) -> Option<BulkLoad> {
        let _ = (insert, column_types);
        None
    }
}

/// A bulk load, and the question to ask the database before using it.
#[derive(Debug, Clone)]
pub struct BulkLoad {
    /// One row of one `bool`, or no row: whether the table takes the load exactly as the
    /// insert would be (no row: the table is missing, and the insert's error says so).
    pub check: Statement,
    /// The load's SQL: a [`Mode::CopyIn`](chakra_service::Mode::CopyIn) statement, whose
    /// data is the rows in binary `COPY` form ([`CopyRows`](chakra_service::CopyRows)).
    pub load: String,
}
