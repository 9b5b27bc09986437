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
    /// with one more query.
    ///
    /// ```ignore
    /// let books: Vec<(Book, Option<Author>)> =
    ///     Book::query().order_by(Book::title().asc()).select_related(Book::author_id(), Author::id()).all(&pool).await?;
    /// ```
    pub fn select_related<R: Model, F: Matches<K>, K>(self, by: Column<M, F>, key: Column<R, K>) -> Joined<M, R> {
        let mut query = self;
        query.ast_mut().joins.push(Join {
            table: R::TABLE.into(),
            columns: R::FIELDS.iter().map(|f| f.column.clone()).collect(),
            key: key.name().into(),
            from: None,
            column: by.name().into(),
        });
        Joined { query, key: key.name(), _related: PhantomData }
    }
}

/// A query's rows, each with the row of `R` it refers to: see [`Query::select_related`].
pub struct Joined<M, R> {
    query: Query<M>,
    key: &'static str,
    _related: PhantomData<fn() -> R>,
}

impl<M, R> Clone for Joined<M, R> {
    fn clone(&self) -> Self {
        Joined { query: self.query.clone(), key: self.key, _related: PhantomData }
    }
}

impl<M, R> std::fmt::Debug for Joined<M, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Joined").field("query", &self.query).finish()
    }
}

impl<M: Model, R: Model> Joined<M, R> {
    /// Every matching row, with its related row.
    pub async fn all<Q: Queryable>(&self, db: &Q) -> Result<Vec<(M, Option<R>)>> {
        self.unique_key()?;
        self.query.all_as(db, Self::decode).await
    }

    /// The first matching row in the query's order, with its related row.
    pub async fn first<Q: Queryable>(&self, db: &Q) -> Result<Option<(M, Option<R>)>> {
        self.unique_key()?;
        self.query.first_as(db, Self::decode).await
    }

    /// The matching rows with their related rows as a stream (see [`Query::stream`]).
    pub async fn stream<Q: Queryable>(&self, db: &Q) -> Result<DecodedStream<(M, Option<R>)>> {
        self.unique_key()?;
        self.query.stream_as(db, Self::decode).await
    }

    /// How many rows match (the join changes no number).
    pub async fn count<Q: Queryable>(&self, db: &Q) -> Result<i64> {
        self.query.count(db).await
    }

    /// The statement [`all`](Self::all) sends: SQL text and parameters.
    pub fn to_statement(&self) -> Statement {
        self.query.to_statement()
    }

    fn decode(row: &Row) -> Result<(M, Option<R>)> {
        let at = M::FIELDS.len();
        // A row the join did not find is all NULLs, its primary key too.
        let related = match row.try_get::<usize, Value>(at + R::PRIMARY_KEY)? {
            Value::Null => None,
            _ => Some(R::from_row_at(row, at)?),
        };
        Ok((M::from_row(row)?, related))
    }

    /// A `Usage` error unless the key can match one row at most: else each row would
    /// repeat once per match.
    fn unique_key(&self) -> Result<()> {
        match R::FIELDS.iter().find(|f| f.column == self.key) {
            Some(field) if field.primary_key || field.unique => Ok(()),
            _ => Err(Error::new(
                ErrorKind::Usage,
                format!(
                    "select_related: `{}.{}` is neither the primary key nor unique, so a row could match several; use load_many",
                    R::TABLE,
                    self.key
                ),
            )),
        }
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
