//! Checking answers: every side decodes rows into its own struct, and every struct is
//! reduced to a [`Fingerprint`] that must equal the one the generator's formulas predict.
//! A fast wrong answer fails the bench instead of winning it.

use chakra::chrono::{DateTime, Utc};
use futures::{Stream, TryStreamExt};

use crate::Result;

/// The five columns of a `bench_orm_users` row, read from any side's own struct.
pub trait UserRow {
    fn id(&self) -> i64;
    fn name(&self) -> &str;
    fn email(&self) -> &str;
    fn score(&self) -> f64;
    fn created(&self) -> DateTime<Utc>;
}

/// Implements [`UserRow`] for a struct with the five fields under their column names.
macro_rules! user_row {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::check::UserRow for $t {
            fn id(&self) -> i64 { self.id }
            fn name(&self) -> &str { &self.name }
            fn email(&self) -> &str { &self.email }
            fn score(&self) -> f64 { self.score }
            fn created(&self) -> chakra::chrono::DateTime<chakra::chrono::Utc> { self.created }
        }
    )*};
}
pub(crate) use user_row;

/// Sums over a set of rows: cheap enough to take inside a timed stream (a few additions
/// per row), and it catches a wrong, missing, duplicated or mis-decoded row in any
/// column. Scores are quarters and sums of them stay exact in `f64`, so order does not
/// matter.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Fingerprint {
    rows: u64,
    ids: i64,
    name_bytes: u64,
    email_bytes: u64,
    scores: f64,
    created_secs: i64,
}

impl Fingerprint {
    pub fn add(&mut self, row: &impl UserRow) {
        self.rows += 1;
        self.ids += row.id();
        self.name_bytes += row.name().len() as u64;
        self.email_bytes += row.email().len() as u64;
        self.scores += row.score();
        self.created_secs += row.created().timestamp();
    }

    pub fn of<'a, R: UserRow + 'a>(rows: impl IntoIterator<Item = &'a R>) -> Self {
        let mut fingerprint = Fingerprint::default();
        for row in rows {
            fingerprint.add(row);
        }
        fingerprint
    }

    /// What `bench_orm_users` rows `ids` must add up to, from `tables::setup`'s formulas.
    pub fn expected(ids: impl IntoIterator<Item = i64>) -> Self {
        let epoch = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").expect("a valid date").timestamp();
        let mut f = Fingerprint::default();
        for id in ids {
            f.rows += 1;
            f.ids += id;
            f.name_bytes += format!("user {id}").len() as u64;
            f.email_bytes += format!("user{id}@example.com").len() as u64;
            f.scores += id as f64 * 0.25;
            f.created_secs += epoch + id * 60;
        }
        f
    }
}

/// `got` must be `expected`; `what` names the answer in the error.
pub fn same(what: &str, got: Fingerprint, expected: Fingerprint) -> Result<()> {
    match got == expected {
        true => Ok(()),
        false => Err(format!("{what}: wrong answer, got {got:?}, expected {expected:?}").into()),
    }
}

/// Lookups answered in the order asked: each row must be the one its id names.
pub fn lookups<R: UserRow>(rows: &[R], ids: &[i64], expected: &[Fingerprint]) -> Result<()> {
    if rows.len() != ids.len() {
        return Err(format!("{} lookups, {} answers", ids.len(), rows.len()).into());
    }
    for ((row, id), expected) in rows.iter().zip(ids).zip(expected) {
        if row.id() != *id {
            return Err(format!("asked for user {id}, got user {}", row.id()).into());
        }
        same("lookup", Fingerprint::of([row]), *expected)?;
    }
    Ok(())
}

/// Consumes a stream of rows, fingerprinting each one as it arrives and dropping it.
pub async fn drain<R, E>(rows: impl Stream<Item = std::result::Result<R, E>>) -> Result<Fingerprint>
where
    R: UserRow,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut rows = std::pin::pin!(rows);
    let mut fingerprint = Fingerprint::default();
    while let Some(row) = rows.try_next().await? {
        fingerprint.add(&row);
        std::hint::black_box(row);
    }
    Ok(fingerprint)
}
