//! Loading related rows: each book's author, each author's books.
//!
//! For rows already fetched, one query for all of them, whatever their number (`key =
//! ANY($1)` over their distinct keys), never one per row: SeaORM's loader, Django's
//! `prefetch_related`. Or the row each row refers to, in the rows' own statement
//! ([`Query::select_related`], a `LEFT JOIN`): Django's `select_related`, SeaORM's
//! `find_also_related`.
//!
//! The related rows come from a [`Query`], so they can be filtered, ordered and locked like
//! any other (an example is in the `chakra` crate's documentation, under "Related rows").
//! The two key columns must have the same type, or one the `Option` of the other
//! ([`Matches`]), which the compiler checks.

use std::marker::PhantomData;

use chakra_layers::Queryable;
use chakra_service::{Error, ErrorKind, Key, Result, Row, Statement, Value};
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use crate::ast::{Expr, Join};
use crate::column::{Column, Matches};
use crate::model::Model;
use crate::query::{DecodedStream, Query};

impl<M: Model + Clone> Query<M> {
    /// For each of `rows`, the row of this query whose `key` equals the row's `by` (or
    /// `None`: a `NULL` foreign key, or a row the query leaves out), in `rows`' order.
    /// Rows sharing a key get clones of one row. A key matching several rows is
    /// `MultipleFound`: `key` should be unique (a primary key); else use
    /// [`load_many`](Self::load_many).
    pub async fn load_one<R: Model, K, F: Matches<K>, Q: Queryable>(
        &self,
        db: &Q,
        rows: &[R],
        by: Column<R, F>,
        key: Column<M, K>,
    ) -> Result<Vec<Option<M>>> {
        let keys = Keys::of(rows, by.name())?;
        let field = field_index::<M>(key.name());
        let mut found = HashMap::with_capacity(keys.distinct.len());
        for row in self.matching(db, &keys, key.name(), "load_one").await? {
            if let Some(k) = key_value::<M>(&row.field_value(field), key.name())? {
                if found.insert(k.clone(), row).is_some() {
                    return Err(Error::new(
                        ErrorKind::MultipleFound,
                        format!("load_one: several rows of `{}` have `{}` = {k}; use load_many", M::TABLE, key.name()),
                    ));
                }
            }
        }
        Ok(keys.per_row.iter().map(|k| k.as_ref().and_then(|k| found.get(k).cloned())).collect())
    }

    /// For each of `rows`, the rows of this query whose `by` equals the row's `key`, in the
    /// query's order (an empty list for none), in `rows`' order.
    pub async fn load_many<R: Model, K, F: Matches<K>, Q: Queryable>(
        &self,
        db: &Q,
        rows: &[R],
        key: Column<R, K>,
        by: Column<M, F>,
    ) -> Result<Vec<Vec<M>>> {
        let keys = Keys::of(rows, key.name())?;
        let field = field_index::<M>(by.name());
        let mut groups: HashMap<Key, Vec<M>> = HashMap::with_capacity(keys.distinct.len());
        for row in self.matching(db, &keys, by.name(), "load_many").await? {
            if let Some(k) = key_value::<M>(&row.field_value(field), by.name())? {
                groups.entry(k).or_default().push(row);
            }
        }
        // Each group moves to the last row with its key and is cloned for the others.
        let mut last = HashMap::with_capacity(groups.len());
        for (i, k) in keys.per_row.iter().enumerate() {
            if let Some(k) = k {
                last.insert(k, i);
            }
        }
        let per_row = keys.per_row.iter().enumerate().map(|(i, k)| match k {
            Some(k) if last.get(k) == Some(&i) => groups.remove(k).unwrap_or_default(),
            Some(k) => groups.get(k).cloned().unwrap_or_default(),
            None => Vec::new(),
        });
        Ok(per_row.collect())
    }

    /// This query's rows whose `column` is one of `keys`; none when there are no keys.
    async fn matching<Q: Queryable>(&self, db: &Q, keys: &Keys, column: &'static str, method: &str) -> Result<Vec<M>> {
        let select = self.ast();
        if select.limit.is_some() || select.offset.is_some() {
            return Err(Error::new(
                ErrorKind::Usage,
                format!("{method}: the query of `{}` has a limit or offset, which would apply to the rows of every key together", M::TABLE),
            ));
        }
        if keys.distinct.is_empty() {
            return Ok(Vec::new());
        }
        let among = Expr::In { column: column.into(), values: keys.distinct.clone(), negated: false };
        self.clone().filter(among).all(db).await
    }
}

impl<M: Model> Query<M> {
    /// Each row with the row of `R` whose `key` (its primary key, or a unique column)
    /// equals the row's `by`, or `None` for a `NULL` key, in one statement: a `LEFT JOIN`
    /// over the rows as this query picks, orders, slices and locks them (the joined rows
    /// are not locked). For rows already fetched, [`load_one`](Self::load_one) does it
    /// with one more query. A second relation joins too
    /// ([`Joined::select_related`], [`Joined::select_related_of`]).
    ///
    /// ```ignore
    /// let books: Vec<(Book, Option<Author>)> =
    ///     Book::query().order_by(Book::title().asc()).select_related(Book::author_id(), Author::id()).all(&pool).await?;
    /// ```
    pub fn select_related<R: Model, F: Matches<K>, K>(self, by: Column<M, F>, key: Column<R, K>) -> Joined<M, R> {
        Joined::<M, ()> { query: self, keys: Vec::new(), _joined: PhantomData }.join(None, by.name(), key)
    }
}

/// A query's rows, each with the rows it refers to: the row of `J`, or of each model of
/// `J = (R, S)`. See [`Query::select_related`].
pub struct Joined<M, J> {
    query: Query<M>,
    /// Each join's table and key, and whether the key is unique.
    keys: Vec<(&'static str, &'static str, bool)>,
    _joined: PhantomData<fn() -> J>,
}

impl<M: Model, J> Joined<M, J> {
    /// Adds the join of the row of `R` whose `key` equals `column` of the query's row
    /// (`from` `None`) or of an earlier join's.
    fn join<T, R: Model, K>(mut self, from: Option<usize>, column: &str, key: Column<R, K>) -> Joined<M, T> {
        self.query.ast_mut().joins.push(Join {
            table: R::TABLE.into(),
            columns: R::FIELDS.iter().map(|f| f.column.clone()).collect(),
            key: key.name().into(),
            from,
            column: column.to_owned().into(),
        });
        let unique = R::FIELDS.iter().any(|f| f.column == key.name() && (f.primary_key || f.unique));
        self.keys.push((R::TABLE, key.name(), unique));
        Joined { query: self.query, keys: self.keys, _joined: PhantomData }
    }

    /// A `Usage` error unless each key can match one row at most: else a row would
    /// repeat once per match.
    fn unique_keys(&self) -> Result<()> {
        match self.keys.iter().find(|(_, _, unique)| !unique) {
            None => Ok(()),
            Some((table, key, _)) => Err(Error::new(
                ErrorKind::Usage,
                format!(
                    "select_related: `{table}.{key}` is neither the primary key nor unique, so a row could match several; use load_many"
                ),
            )),
        }
    }
}

impl<M: Model, R: Model> Joined<M, R> {
    /// Also the row of `S` whose `key` equals the row's `by`: a second relation of the
    /// row itself (each book's author and its editor).
    pub fn select_related<S: Model, F: Matches<K>, K>(self, by: Column<M, F>, key: Column<S, K>) -> Joined<M, (R, S)> {
        self.join(None, by.name(), key)
    }

    /// Also the row of `S` whose `key` equals the joined row's `by`: a chain (each
    /// review's book, and the book's author; Django's `select_related("book__author")`).
    /// Where the first row is missing, so is the second.
    pub fn select_related_of<S: Model, F: Matches<K>, K>(
        self,
        by: Column<R, F>,
        key: Column<S, K>,
    ) -> Joined<M, (R, S)> {
        self.join(Some(0), by.name(), key)
    }
}

/// The models each row of a [`Joined`] query comes with, decoded after the row's own
/// columns, in order: one model (`(M, Option<R>)`), or two (`(M, Option<R>, Option<S>)`).
pub trait JoinedModels<M> {
    /// A row with the rows it refers to.
    type Row;
    fn decode(row: &Row) -> Result<Self::Row>;
}

impl<M: Model, R: Model> JoinedModels<M> for R {
    type Row = (M, Option<R>);

    fn decode(row: &Row) -> Result<Self::Row> {
        Ok((M::from_row(row)?, joined::<R>(row, M::FIELDS.len())?))
    }
}

impl<M: Model, R: Model, S: Model> JoinedModels<M> for (R, S) {
    type Row = (M, Option<R>, Option<S>);

    fn decode(row: &Row) -> Result<Self::Row> {
        let (at, then) = (M::FIELDS.len(), M::FIELDS.len() + R::FIELDS.len());
        Ok((M::from_row(row)?, joined::<R>(row, at)?, joined::<S>(row, then)?))
    }
}

/// The joined row of `R` whose columns start at `at`: `None` where the join found none,
/// which reads as all NULLs, its primary key too.
fn joined<R: Model>(row: &Row, at: usize) -> Result<Option<R>> {
    match row.try_get::<usize, Value>(at + R::PRIMARY_KEY)? {
        Value::Null => Ok(None),
        _ => R::from_row_at(row, at).map(Some),
    }
}

impl<M, J> Clone for Joined<M, J> {
    fn clone(&self) -> Self {
        Joined { query: self.query.clone(), keys: self.keys.clone(), _joined: PhantomData }
    }
}

impl<M, J> std::fmt::Debug for Joined<M, J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Joined").field("query", &self.query).finish()
    }
}

impl<M: Model, J: JoinedModels<M>> Joined<M, J> {
    /// Every matching row, with its related rows.
    pub async fn all<Q: Queryable>(&self, db: &Q) -> Result<Vec<J::Row>> {
        self.unique_keys()?;
        self.query.all_as(db, J::decode).await
    }

    /// The first matching row in the query's order, with its related rows.
    pub async fn first<Q: Queryable>(&self, db: &Q) -> Result<Option<J::Row>> {
        self.unique_keys()?;
        self.query.first_as(db, J::decode).await
    }

    /// The matching rows with their related rows as a stream (see [`Query::stream`]).
    pub async fn stream<Q: Queryable>(&self, db: &Q) -> Result<DecodedStream<J::Row>> {
        self.unique_keys()?;
        self.query.stream_as(db, J::decode).await
    }

    /// How many rows match (the joins change no number).
    pub async fn count<Q: Queryable>(&self, db: &Q) -> Result<i64> {
        self.query.count(db).await
    }

    /// The statement [`all`](Self::all) sends: SQL text and parameters.
    pub fn to_statement(&self) -> Statement {
        self.query.to_statement()
    }
}

/// The keys of some rows: each row's (`None` for `NULL`), and each distinct one once as
/// first met, to send.
struct Keys {
    per_row: Vec<Option<Key>>,
    distinct: Vec<Value>,
}

impl Keys {
    fn of<R: Model>(rows: &[R], column: &str) -> Result<Keys> {
        let field = field_index::<R>(column);
        let mut seen = HashSet::with_capacity(rows.len());
        let mut distinct = Vec::new();
        let per_row = rows
            .iter()
            .map(|row| {
                let value = row.field_value(field);
                let key = key_value::<R>(&value, column)?;
                if key.as_ref().is_some_and(|k| seen.insert(k.clone())) {
                    distinct.push(value);
                }
                Ok(key)
            })
            .collect::<Result<_>>()?;
        Ok(Keys { per_row, distinct })
    }
}

/// `value`'s key; `None` for `NULL`, an error for a type keys cannot have.
fn key_value<M: Model>(value: &Value, column: &str) -> Result<Option<Key>> {
    match (value, Key::of(value)) {
        (Value::Null, _) => Ok(None),
        (_, Some(key)) => Ok(Some(key)),
        (_, None) => Err(Error::new(
            ErrorKind::Field,
            format!(
                "`{}.{column}` holds {} values, which cannot match rows: keys are integers, text, uuids or bytes",
                M::TABLE,
                value.type_name()
            ),
        )),
    }
}

/// The index in `M::FIELDS` of the field whose column is `column` (a column handle of
/// `M` always names one).
fn field_index<M: Model>(column: &str) -> usize {
    M::FIELDS.iter().position(|f| f.column == column).expect("a Column<M, _> names a column of M")
}
