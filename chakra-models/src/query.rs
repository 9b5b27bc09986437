//! `Query<M>`: a lazy, chainable query over a model's table. Building it sends nothing;
//! the terminal methods (`all`, `first`, `count`, `stream`, …) compile it once and run it
//! through the pool's (or transaction's) layer stack.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use chakra_layers::Queryable;
use chakra_service::{Error, ErrorKind, FromSqlOwned, Mode, Request, Result, Row, RowStream, Statement, Value};
use futures::{Stream, StreamExt, TryStreamExt};

use crate::annotate::{Annotations, RowValue};
use crate::ast::{
    Aggregate, Annotation, Assignment, Combined, Delete, Expr, Ident, Order, Projection, RowLock, Select, SetOp, Update,
};
use crate::column::{agg, Column, Numeric, Ordered};
use crate::compile;
use crate::dialect::Postgres;
use crate::lookup;
use crate::model::{columns, not_found, Model};

/// A query returning rows of `M`. Each refinement returns a new query.
pub struct Query<M> {
    select: Select,
    _model: PhantomData<fn() -> M>,
}

impl<M> Clone for Query<M> {
    fn clone(&self) -> Self {
        Query { select: self.select.clone(), _model: PhantomData }
    }
}

impl<M> std::fmt::Debug for Query<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Query").field(&self.select).finish()
    }
}

impl<M: Model> Default for Query<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M> Query<M> {
    /// The query's AST, for a front-end building on it (a subquery).
    pub(crate) fn into_select(self) -> Select {
        self.select
    }
}

impl<M: Model> Query<M> {
    /// Every row of `M`'s table.
    pub fn new() -> Self {
        let columns = M::FIELDS.iter().map(|f| f.column.clone());
        Query { select: Select::new(M::TABLE, columns), _model: PhantomData }
    }

    /// Keeps the rows matching `condition` (joined to earlier filters with `AND`).
    pub fn filter(mut self, condition: Expr) -> Self {
        self.select.filter(condition);
        self
    }

    /// Drops the rows matching `condition`; rows where it is unknown (`NULL`) are kept,
    /// as in Django's `exclude`.
    pub fn exclude(mut self, condition: Expr) -> Self {
        self.select.filter(Expr::NotTrue(Box::new(condition)));
        self
    }

    /// A filter named at run time: `filter_by("name", "startswith", "A".into())`. Unknown
    /// fields and lookups are `ErrorKind::Field` errors naming them.
    pub fn filter_by(self, field: &str, lookup: &str, value: Value) -> Result<Self> {
        let condition = lookup::resolve(M::FIELDS, M::TABLE, field, lookup, value)?;
        Ok(self.filter(condition))
    }

    /// Adds a sort key (later keys break ties of earlier ones).
    pub fn order_by(mut self, order: Order) -> Self {
        self.select.order.push(order);
        self
    }

    /// The first row, in the order, of each value of `column` (PostgreSQL's `DISTINCT
    /// ON`; several calls, of each combination): each author's longest book is
    /// `Book::query().order_by(Book::author_id().asc()).order_by(Book::pages().desc())
    /// .distinct_on(Book::author_id())`. The order must begin with those columns; any
    /// other is refused before anything is sent.
    pub fn distinct_on<T>(mut self, column: Column<M, T>) -> Self {
        self.select.distinct_on.push(column.name().into());
        self
    }

    /// A sort key named at run time: `"name"` ascending, `"-name"` descending.
    pub fn order_by_name(self, spec: &str) -> Result<Self> {
        let order = lookup::order(M::FIELDS, M::TABLE, spec)?;
        Ok(self.order_by(order))
    }

    pub fn limit(mut self, n: u64) -> Self {
        self.select.limit = Some(n);
        self
    }

    pub fn offset(mut self, n: u64) -> Self {
        self.select.offset = Some(n);
        self
    }

    /// Locks the matching rows until the transaction ends (`SELECT … FOR UPDATE`), so no
    /// other transaction changes them between this read and this transaction's writes.
    /// Run it on a transaction: on the pool it is a `Usage` error, since the locks would be
    /// released at once (on a session outside a transaction they last one statement).
    pub fn for_update(self) -> Self {
        self.lock(RowLock::update())
    }

    /// Locks the matching rows as `lock` says: `RowLock::update().skip_locked()` for a job
    /// queue's workers, `RowLock::share().nowait()`, …. The same rule as
    /// [`for_update`](Self::for_update) applies.
    pub fn lock(mut self, lock: RowLock) -> Self {
        self.select.lock = Some(lock);
        self
    }

    /// The AST, for front-ends that extend it.
    pub fn ast(&self) -> &Select {
        &self.select
    }

    /// The statement this query sends for `all`: SQL text and parameters.
    pub fn to_statement(&self) -> Statement {
        compile::select(&Postgres, &self.select)
    }

    pub(crate) fn ast_mut(&mut self) -> &mut Select {
        &mut self.select
    }

    /// The request running `select` (this query's, or one derived from it); refused if
    /// it names an enclosing query's row ([`Column::outer`]), which only a subquery has.
    pub(crate) fn request(&self, select: &Select, mode: Mode) -> Result<Request> {
        standalone(select)?;
        if let Some(order) = select.order_outside_rows().filter(|_| !select.distinct_on.is_empty()) {
            let field = M::FIELDS.iter().find(|f| *f.column == *order.column).map_or(&*order.column, |f| &f.name);
            return Err(Error::new(
                ErrorKind::Usage,
                format!(
                    "distinct_on() keeps the first row of each value of its columns, in an order that begins with them; this one begins with `{field}`: order by those columns first"
                ),
            ));
        }
        Ok(compile::select_request(&Postgres, select, mode, M::statements().labels("SELECT")))
    }

    /// Every matching row.
    ///
    /// Rows are decoded as they arrive, while later ones are still on the wire, rather than
    /// all at once after the last: the statement's deadline, span and metrics still cover
    /// the whole fetch.
    pub async fn all<Q: Queryable>(&self, db: &Q) -> Result<Vec<M>> {
        self.all_as(db, M::from_row).await
    }

    /// The first matching row in the query's order, if any.
    pub async fn first<Q: Queryable>(&self, db: &Q) -> Result<Option<M>> {
        self.first_as(db, M::from_row).await
    }

    /// [`all`](Self::all), each row decoded by `decode`: the model and what comes with it
    /// ([`Annotated`](crate::Annotated), [`Joined`](crate::Joined)).
    pub(crate) async fn all_as<T, Q: Queryable>(&self, db: &Q, decode: fn(&Row) -> Result<T>) -> Result<Vec<T>> {
        self.stream_as(db, decode).await?.try_collect().await
    }

    /// [`first`](Self::first), the row decoded by `decode`.
    pub(crate) async fn first_as<T, Q: Queryable>(&self, db: &Q, decode: fn(&Row) -> Result<T>) -> Result<Option<T>> {
        let mut select = self.select.clone();
        select.limit = Some(1);
        let row = db.run(self.request(&select, Mode::Optional)?).await?.into_optional()?;
        row.as_ref().map(decode).transpose()
    }

    /// [`stream`](Self::stream), each row decoded by `decode`.
    pub(crate) async fn stream_as<T, Q: Queryable>(
        &self,
        db: &Q,
        decode: fn(&Row) -> Result<T>,
    ) -> Result<DecodedStream<T>> {
        let rows = db.run(self.request(&self.select, Mode::Stream)?).await?.into_stream()?;
        Ok(DecodedStream { rows, decode })
    }

    /// The one matching row: `NotFound` if none, `MultipleFound` if several.
    pub async fn one<Q: Queryable>(&self, db: &Q) -> Result<M> {
        let mut select = self.select.clone();
        // Two rows are enough to know there is more than one.
        select.limit = Some(select.limit.map_or(2, |l| l.min(2)));
        let row = db.run(self.request(&select, Mode::One)?).await.map_err(not_found::<M>)?.into_row()?;
        M::from_row(&row)
    }

    /// Alias of [`one`](Self::one), in Django's words.
    pub async fn get<Q: Queryable>(&self, db: &Q) -> Result<M> {
        self.one(db).await
    }

    /// How many rows match (limit and offset applied).
    pub async fn count<Q: Queryable>(&self, db: &Q) -> Result<i64> {
        let mut select = self.select.clone();
        select.projection = Projection::Count;
        select.order.clear();
        let row = db.run(self.request(&select, Mode::One)?).await?.into_row()?;
        row.try_get(0).map_err(Error::from)
    }

    /// The sum of `column` over the matching rows (`None` when no value is not `NULL`),
    /// in PostgreSQL's wider type: `i64` for `i16`/`i32` columns, `Decimal` for `i64`.
    /// With a limit, offset or lock, over the rows the query selects.
    pub async fn sum<T: Numeric, Q: Queryable>(&self, db: &Q, column: Column<M, T>) -> Result<Option<T::Sum>> {
        self.aggregate(db, agg::sum(column)).await
    }

    /// The mean of `column`: `Decimal` for integer and decimal columns (exact, as
    /// PostgreSQL computes it), `f64` for floats; `None` when there are no values.
    pub async fn avg<T: Numeric, Q: Queryable>(&self, db: &Q, column: Column<M, T>) -> Result<Option<T::Avg>> {
        self.aggregate(db, agg::avg(column)).await
    }

    /// The smallest value of `column`; `None` when there are no values.
    pub async fn min<T: Ordered, Q: Queryable>(&self, db: &Q, column: Column<M, T>) -> Result<Option<T::Value>> {
        self.aggregate(db, agg::min(column)).await
    }

    /// The largest value of `column`; `None` when there are no values.
    pub async fn max<T: Ordered, Q: Queryable>(&self, db: &Q, column: Column<M, T>) -> Result<Option<T::Value>> {
        self.aggregate(db, agg::max(column)).await
    }

    /// How many matching rows have a value (not `NULL`) in `column`, each distinct value
    /// once when `distinct`.
    pub async fn count_of<T, Q: Queryable>(&self, db: &Q, column: Column<M, T>, distinct: bool) -> Result<i64> {
        self.aggregate(db, agg::count_of(column, distinct)).await
    }

    /// Aggregates over the matching rows, in one query: an [`agg`] aggregate, or a tuple of
    /// up to six, decoded as their types.
    /// `User::query().aggregate(&pool, (agg::count(), agg::sum(User::rank())))` is an
    /// `(i64, Option<i64>)` for an `i32` rank.
    pub async fn aggregate<A: Aggregates, Q: Queryable>(&self, db: &Q, aggregates: A) -> Result<A::Output> {
        let mut select = self.select.clone();
        select.projection = Projection::Aggregates;
        select.aggregates = aggregates.into_aggregates();
        let row = db.run(self.request(&select, Mode::One)?).await?.into_row()?;
        A::decode(&row, 0)
    }

    /// Only `columns` of the matching rows, decoded as their types: a column gives its
    /// values, a tuple of columns tuples, as Diesel's `select`:
    /// `User::query().select((User::id(), User::name())).all(&pool)` is a
    /// `Vec<(i64, String)>`. Filters, order, limit and offset apply as to the rows.
    pub fn select<S: Selection<M>>(self, columns: S) -> Selected<M, S> {
        Selected { query: self, columns, distinct: false }
    }

    /// The matching rows in groups by `key`'s value, for counts and aggregates per group
    /// (`GROUP BY`): `User::query().group_by(User::is_active()).count(&pool)`. Groups come
    /// ordered by the key; the query's limit and offset then apply to the groups. The key
    /// may be a value computed per row: a time series by month is
    /// `Order::query().group_by(Order::placed().trunc_month()).count(&pool)`.
    pub fn group_by<K: GroupKey<M>>(mut self, key: K) -> Grouped<M, K::Value> {
        let key = key.into_key(&mut self.select);
        Grouped { query: self, key, having: None, by_value: None, _key: PhantomData }
    }

    /// Whether any row matches.
    pub async fn exists<Q: Queryable>(&self, db: &Q) -> Result<bool> {
        let mut select = self.select.clone();
        select.projection = Projection::Exists;
        select.order.clear();
        let row = db.run(self.request(&select, Mode::One)?).await?.into_row()?;
        row.try_get(0).map_err(Error::from)
    }

    /// The database's plan for [`all`](Self::all), as text: how it will find the rows.
    /// With `analyze`, the query runs and the plan says what it took (PostgreSQL's
    /// `EXPLAIN (ANALYZE, BUFFERS)`).
    pub async fn explain<Q: Queryable>(&self, db: &Q, analyze: bool) -> Result<String> {
        standalone(&self.select)?;
        let request = compile::explain_request(&Postgres, &self.select, analyze, M::statements().labels("EXPLAIN"));
        compile::plan_text(&db.run(request).await?.into_rows()?)
    }

    /// Sets `assignments` on every matching row; returns how many changed. Limit, offset
    /// and order do not apply.
    pub async fn update<Q: Queryable>(&self, db: &Q, assignments: Vec<Assignment>) -> Result<u64> {
        let request = self.update_request(assignments, false)?;
        db.run(request).await?.rows_affected()
    }

    /// [`update`](Self::update), reading the changed rows back as stored (`RETURNING`),
    /// in one statement: what a concurrent writer left and this update made of them.
    pub async fn update_returning<Q: Queryable>(&self, db: &Q, assignments: Vec<Assignment>) -> Result<Vec<M>> {
        let request = self.update_request(assignments, true)?;
        db.run(request).await?.into_rows()?.iter().map(M::from_row).collect()
    }

    fn update_request(&self, assignments: Vec<Assignment>, returning: bool) -> Result<Request> {
        if assignments.is_empty() {
            return Err(Error::new(ErrorKind::Usage, "update needs at least one column to set"));
        }
        standalone(&self.select)?;
        let filter = self.select.conditions();
        let returning = if returning { columns::<M>() } else { Vec::new() };
        let update = Update { table: self.select.table.clone(), set: assignments, filter, returning };
        let mode = if update.returning.is_empty() { Mode::Execute } else { Mode::All };
        Ok(Request::labelled(compile::update(&Postgres, &update), mode, M::statements().labels("UPDATE")))
    }

    /// Deletes every matching row; returns how many.
    pub async fn delete<Q: Queryable>(&self, db: &Q) -> Result<u64> {
        let request = self.delete_request(false)?;
        db.run(request).await?.rows_affected()
    }

    /// [`delete`](Self::delete), reading the deleted rows back as they were
    /// (`RETURNING`), in one statement: a queue's worker taking its jobs.
    pub async fn delete_returning<Q: Queryable>(&self, db: &Q) -> Result<Vec<M>> {
        let request = self.delete_request(true)?;
        db.run(request).await?.into_rows()?.iter().map(M::from_row).collect()
    }

    fn delete_request(&self, returning: bool) -> Result<Request> {
        standalone(&self.select)?;
        let filter = self.select.conditions();
        let returning = if returning { columns::<M>() } else { Vec::new() };
        let mode = if returning.is_empty() { Mode::Execute } else { Mode::All };
        let delete = Delete { table: self.select.table.clone(), filter, returning };
        Ok(Request::labelled(compile::delete(&Postgres, &delete), mode, M::statements().labels("DELETE")))
    }

    /// Matching rows as a stream, decoded as they arrive from the server; memory stays
    /// bounded whatever the result's size. The connection is held until the stream ends
    /// or is dropped.
    pub async fn stream<Q: Queryable>(&self, db: &Q) -> Result<ModelStream<M>> {
        self.stream_as(db, M::from_row).await
    }
}

impl<M: Model> Query<M> {
    /// The rows of this query or `other`, each once: SQL's `UNION` (SQLAlchemy's
    /// `union`, Django's `union()`). Each query's order goes (order the combined rows),
    /// and a sliced one is the rows its slice picks.
    ///
    /// ```no_run
    /// # use chakra_models::{Model, Query};
    /// # async fn run<U: Model>(pool: &impl chakra_layers::Queryable, old: Query<U>, long: Query<U>) -> chakra_service::Result<()> {
    /// let either = old.union(long).limit(10).all(pool).await?;
    /// # Ok(()) }
    /// ```
    pub fn union(self, other: Query<M>) -> Combination<M> {
        Combination::of(self).union(other)
    }

    /// [`union`](Self::union), keeping every row of both (`UNION ALL`).
    pub fn union_all(self, other: Query<M>) -> Combination<M> {
        Combination::of(self).union_all(other)
    }

    /// The rows of this query that `other` has too: SQL's `INTERSECT`.
    pub fn intersect(self, other: Query<M>) -> Combination<M> {
        Combination::of(self).intersect(other)
    }

    /// The rows of this query that `other` has not: SQL's `EXCEPT`.
    pub fn except(self, other: Query<M>) -> Combination<M> {
        Combination::of(self).except(other)
    }
}

/// Rows of `M` combined from several queries ([`Query::union`], [`Query::intersect`],
/// [`Query::except`]), each combination with the rows before it, in the order written.
/// Ordered, sliced, counted and read as a query's; filters and changes go on the queries
/// it combines.
pub struct Combination<M> {
    query: Query<M>,
}

impl<M> Clone for Combination<M> {
    fn clone(&self) -> Self {
        Combination { query: self.query.clone() }
    }
}

impl<M> std::fmt::Debug for Combination<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Combination").field(&self.query.select).finish()
    }
}

impl<M: Model> Combination<M> {
    fn of(query: Query<M>) -> Self {
        let select = query.select.into_part(&Self::key());
        Combination { query: Query { select, _model: PhantomData } }
    }

    /// The primary key's column, by which a sliced part picks its rows.
    fn key() -> Ident {
        M::FIELDS[M::PRIMARY_KEY].column.clone()
    }

    fn with(mut self, op: SetOp, all: bool, other: Query<M>) -> Self {
        let select = other.select.into_part(&Self::key());
        self.query.select.combined.push(Combined { op, all, select });
        self
    }

    /// These rows or `other`'s, each once (`UNION`).
    pub fn union(self, other: Query<M>) -> Self {
        self.with(SetOp::Union, false, other)
    }

    /// These rows and `other`'s, every one (`UNION ALL`).
    pub fn union_all(self, other: Query<M>) -> Self {
        self.with(SetOp::Union, true, other)
    }

    /// These rows that `other` has too (`INTERSECT`).
    pub fn intersect(self, other: Query<M>) -> Self {
        self.with(SetOp::Intersect, false, other)
    }

    /// These rows that `other` has not (`EXCEPT`).
    pub fn except(self, other: Query<M>) -> Self {
        self.with(SetOp::Except, false, other)
    }

    /// Sorts the combined rows by `order` (after earlier orders). A combination is sorted
    /// by its columns: an order by a computed value is refused when the rows are read.
    pub fn order_by(self, order: Order) -> Self {
        Combination { query: self.query.order_by(order) }
    }

    /// At most `n` of the combined rows.
    pub fn limit(self, n: u64) -> Self {
        Combination { query: self.query.limit(n) }
    }

    /// Skips the first `n` of the combined rows.
    pub fn offset(self, n: u64) -> Self {
        Combination { query: self.query.offset(n) }
    }

    /// Only `columns` of the combined rows, as [`Query::select`] (each part selects
    /// them, so `UNION` keeps each combination of their values once):
    /// `active.union(emailed).select(User::email()).all(&pool)`. The order must be by
    /// the selected columns.
    pub fn select<S: Selection<M>>(self, columns: S) -> Selected<M, S> {
        Selected { query: self.query, columns, distinct: false }
    }

    /// The statement [`all`](Self::all) sends.
    pub fn to_statement(&self) -> Statement {
        self.query.to_statement()
    }

    /// Every combined row.
    pub async fn all<Q: Queryable>(&self, db: &Q) -> Result<Vec<M>> {
        self.sortable()?;
        self.query.all(db).await
    }

    /// The first combined row in the order, if any.
    pub async fn first<Q: Queryable>(&self, db: &Q) -> Result<Option<M>> {
        self.sortable()?;
        self.query.first(db).await
    }

    /// How many combined rows there are (limit and offset applied).
    pub async fn count<Q: Queryable>(&self, db: &Q) -> Result<i64> {
        self.query.count(db).await
    }

    /// Whether there is any combined row.
    pub async fn exists<Q: Queryable>(&self, db: &Q) -> Result<bool> {
        self.query.exists(db).await
    }

    /// The combined rows as a stream, decoded as they arrive.
    pub async fn stream<Q: Queryable>(&self, db: &Q) -> Result<ModelStream<M>> {
        self.sortable()?;
        self.query.stream(db).await
    }

    /// Refuses an order PostgreSQL cannot sort combined rows by (a computed value).
    fn sortable(&self) -> Result<()> {
        match self.query.select.order_outside_rows() {
            Some(order) => Err(Error::new(
                ErrorKind::Usage,
                format!("combined rows of `{}` are sorted by their columns, not by `{}`", M::TABLE, order.column),
            )),
            None => Ok(()),
        }
    }
}

/// Columns a query can return instead of whole rows: a [`Column`], or a tuple of up to
/// six columns of one model.
pub trait Selection<M>: Send + Sync {
    /// What one row of them decodes to.
    type Output: Send;
    /// Their names, in order.
    fn names(&self) -> Vec<Ident>;
    /// Decodes a row of exactly these columns.
    fn decode(row: &Row) -> Result<Self::Output>;
}

impl<M, T: FromSqlOwned + Send> Selection<M> for Column<M, T> {
    type Output = T;

    fn names(&self) -> Vec<Ident> {
        vec![self.name().into()]
    }

    fn decode(row: &Row) -> Result<T> {
        row.try_get(0).map_err(Error::from)
    }
}

macro_rules! selection_tuples {
    ($(($($t:ident $i:tt),+)),* $(,)?) => {$(
        impl<M, $($t: FromSqlOwned + Send),+> Selection<M> for ($(Column<M, $t>,)+) {
            type Output = ($($t,)+);

            fn names(&self) -> Vec<Ident> {
                vec![$(self.$i.name().into()),+]
            }

            fn decode(row: &Row) -> Result<Self::Output> {
                Ok(($(row.try_get::<_, $t>($i)?,)+))
            }
        }
    )*};
}

/// Invokes `$impl_tuples` with the tuples of one to six type parameters, each with its
/// index: what [`Selection`] and [`Aggregates`] are implemented for.
macro_rules! up_to_six {
    ($impl_tuples:ident) => {
        $impl_tuples! {
            (A 0),
            (A 0, B 1),
            (A 0, B 1, C 2),
            (A 0, B 1, C 2, D 3),
            (A 0, B 1, C 2, D 3, E 4),
            (A 0, B 1, C 2, D 3, E 4, F 5),
        }
    };
}

pub(crate) use up_to_six;

up_to_six!(selection_tuples);

/// Some columns of a query's rows: see [`Query::select`].
pub struct Selected<M, S> {
    query: Query<M>,
    columns: S,
    distinct: bool,
}

impl<M: Model, S: Selection<M>> Selected<M, S> {
    /// Each combination of the columns' values once (`SELECT DISTINCT`). Its order must
    /// be by the selected columns: PostgreSQL sorts distinct rows by what they hold.
    pub fn distinct(mut self) -> Self {
        self.distinct = true;
        self
    }

    /// The columns of every matching row, decoded as they arrive.
    pub async fn all<Q: Queryable>(&self, db: &Q) -> Result<Vec<S::Output>> {
        let select = self.ast()?;
        let rows = db.run(self.query.request(&select, Mode::Stream)?).await?.into_stream()?;
        rows.map(|row| row.and_then(|row| S::decode(&row))).try_collect().await
    }

    /// The columns of the first matching row in the query's order, if any.
    pub async fn first<Q: Queryable>(&self, db: &Q) -> Result<Option<S::Output>> {
        let mut select = self.ast()?;
        select.limit = Some(1);
        let row = db.run(self.query.request(&select, Mode::Optional)?).await?.into_optional()?;
        row.as_ref().map(S::decode).transpose()
    }

    /// The query as a subquery, for [`Column::is_in_query`]: its order dropped unless a
    /// limit or offset picks rows by it.
    pub(crate) fn subquery(self) -> Select {
        let mut select = self.query.select.subquery(self.columns.names());
        select.distinct = self.distinct;
        select
    }

    fn ast(&self) -> Result<Select> {
        let mut select = self.query.select.clone();
        select.columns = self.columns.names();
        select.distinct = self.distinct;
        // `distinct_on()`'s order is the query's own to check, in `request`.
        if let Some(order) = select.order_outside_rows().filter(|_| select.distinct_on.is_empty()) {
            let what = if select.combined.is_empty() { "distinct columns" } else { "combined columns" };
            return Err(Error::new(
                ErrorKind::Usage,
                format!(
                    "{what} are ordered by `{}`, which is not among them: select it, or drop it from the order",
                    order.column
                ),
            ));
        }
        Ok(select)
    }
}

/// A query's rows in groups by one column's value: see [`Query::group_by`]. Each method
/// returns a `(key, value)` pair per group, the value typed as [`Query`]'s aggregates are.
pub struct Grouped<M, K> {
    query: Query<M>,
    /// The key's name in the statement.
    key: Ident,
    having: Option<Expr>,
    by_value: Option<bool>,
    _key: PhantomData<fn() -> K>,
}

/// What [`Query::group_by`] groups rows by: a [`Column`], or a [`RowValue`] computed per
/// row (a date cut down to its month, the name of the row a key leads to).
pub trait GroupKey<M> {
    /// What the key decodes to.
    type Value: FromSqlOwned;
    /// Readies `select` to be grouped by the key; its name in the statement.
    fn into_key(self, select: &mut Select) -> Ident;
}

impl<M, K: FromSqlOwned> GroupKey<M> for Column<M, K> {
    type Value = K;

    fn into_key(self, _: &mut Select) -> Ident {
        self.name().into()
    }
}

impl<M, V: FromSqlOwned> GroupKey<M> for RowValue<M, V> {
    type Value = V;

    fn into_key(self, select: &mut Select) -> Ident {
        // An annotation the grouped statement computes, and groups and sorts by its name.
        let alias: Ident = "chakra_key".into();
        let value = self.into_scalars().pop().expect("one value");
        select.annotations = vec![Annotation::new(alias.clone(), value)];
        alias
    }
}

impl<M: Model, K: FromSqlOwned> Grouped<M, K> {
    /// Keeps only the groups matching `condition` (`HAVING`), built from
    /// [`agg`](crate::agg): `.having(agg::count().gt(1))`. Joined to earlier ones with AND.
    pub fn having(mut self, condition: Expr) -> Self {
        self.having = Some(match self.having.take() {
            Some(earlier) => earlier.and(condition),
            None => condition,
        });
        self
    }

    /// Groups ordered by the aggregate's value rather than by the key, the largest first
    /// when `descending` (with a limit: the top groups). Ties keep the key's order.
    pub fn order_by_value(mut self, descending: bool) -> Self {
        self.by_value = Some(descending);
        self
    }

    /// How many rows each group has.
    pub async fn count<Q: Queryable>(&self, db: &Q) -> Result<Vec<(K, i64)>> {
        self.aggregate(db, agg::count()).await
    }

    /// How many rows of each group have a value in `column`, each distinct one once when
    /// `distinct`.
    pub async fn count_of<T, Q: Queryable>(
        &self,
        db: &Q,
        column: Column<M, T>,
        distinct: bool,
    ) -> Result<Vec<(K, i64)>> {
        self.aggregate(db, agg::count_of(column, distinct)).await
    }

    /// Each group's sum of `column`.
    pub async fn sum<T: Numeric, Q: Queryable>(
        &self,
        db: &Q,
        column: Column<M, T>,
    ) -> Result<Vec<(K, Option<T::Sum>)>> {
        self.aggregate(db, agg::sum(column)).await
    }

    /// Each group's mean of `column`.
    pub async fn avg<T: Numeric, Q: Queryable>(
        &self,
        db: &Q,
        column: Column<M, T>,
    ) -> Result<Vec<(K, Option<T::Avg>)>> {
        self.aggregate(db, agg::avg(column)).await
    }

    /// Each group's smallest value of `column`.
    pub async fn min<T: Ordered, Q: Queryable>(
        &self,
        db: &Q,
        column: Column<M, T>,
    ) -> Result<Vec<(K, Option<T::Value>)>> {
        self.aggregate(db, agg::min(column)).await
    }

    /// Each group's largest value of `column`.
    pub async fn max<T: Ordered, Q: Queryable>(
        &self,
        db: &Q,
        column: Column<M, T>,
    ) -> Result<Vec<(K, Option<T::Value>)>> {
        self.aggregate(db, agg::max(column)).await
    }

    /// Aggregates per group, in one query: an [`agg`] aggregate, or a tuple of up to six,
    /// each group's decoded as their types next to its key.
    /// [`order_by_value`](Self::order_by_value) orders by the first.
    /// `User::query().group_by(User::is_active()).aggregate(&pool, (agg::count(),
    /// agg::avg(User::rank())))` is a `Vec<(bool, (i64, Option<Decimal>))>`.
    pub async fn aggregate<A: Aggregates, Q: Queryable>(&self, db: &Q, aggregates: A) -> Result<Vec<(K, A::Output)>> {
        const VALUE: &str = "chakra_value";
        let mut select = self.query.select.clone();
        select.projection = Projection::Aggregates;
        select.aggregates = aggregates.into_aggregates();
        select.aggregates[0].alias = Some(VALUE.into());
        select.group_by = vec![self.key.clone()];
        select.having = self.having.clone();
        let by_key = Order::column(self.key.clone(), false);
        select.order = match self.by_value {
            Some(descending) => vec![Order::column(VALUE, descending), by_key],
            None => vec![by_key],
        };
        let rows = db.run(self.query.request(&select, Mode::All)?).await?.into_rows()?;
        rows.iter().map(|row| Ok((row.try_get(0)?, A::decode(row, 1)?))).collect()
    }
}

/// What [`Query::aggregate`] and [`Grouped::aggregate`] compute: an [`agg::Of`], or a
/// tuple of up to six.
pub trait Aggregates {
    /// What they decode to: the aggregate's type, or a tuple of them.
    type Output;
    /// The aggregates, in order (never empty).
    fn into_aggregates(self) -> Vec<Aggregate>;
    /// Decodes them from `row`, the first at column `first`.
    fn decode(row: &Row, first: usize) -> Result<Self::Output>;
}

impl<V: FromSqlOwned> Aggregates for agg::Of<V> {
    type Output = V;

    fn into_aggregates(self) -> Vec<Aggregate> {
        vec![self.0]
    }

    fn decode(row: &Row, first: usize) -> Result<V> {
        row.try_get(first).map_err(Error::from)
    }
}

macro_rules! aggregate_tuples {
    ($(($($t:ident $i:tt),+)),* $(,)?) => {$(
        impl<$($t: FromSqlOwned),+> Aggregates for ($(agg::Of<$t>,)+) {
            type Output = ($($t,)+);

            fn into_aggregates(self) -> Vec<Aggregate> {
                vec![$(self.$i.0),+]
            }

            fn decode(row: &Row, first: usize) -> Result<Self::Output> {
                Ok(($(row.try_get::<_, $t>(first + $i)?,)+))
            }
        }
    )*};
}

up_to_six!(aggregate_tuples);

/// Rows of `M` decoded one by one from a server-side stream.
pub type ModelStream<M> = DecodedStream<M>;

/// Rows decoded one by one from a server-side stream, as models, or models with what
/// comes with them ([`Annotated::stream`](crate::Annotated::stream),
/// [`Joined::stream`](crate::Joined::stream)).
pub struct DecodedStream<T> {
    rows: RowStream,
    decode: fn(&Row) -> Result<T>,
}

impl<T> Stream for DecodedStream<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let decode = self.decode;
        Pin::new(&mut self.rows).poll_next(cx).map(|row| row.map(|row| row.and_then(|row| decode(&row))))
    }
}

/// Refuses a query naming an enclosing query's row ([`Column::outer`]) outside one:
/// alone, the name would reach its own row instead.
fn standalone(select: &Select) -> Result<()> {
    let mut outer = Vec::new();
    select.outer_columns_into(&mut outer);
    match outer.first() {
        None => Ok(()),
        Some(column) => Err(Error::new(
            ErrorKind::Usage,
            format!(
                "this query names `{column}` of an enclosing query's row (`outer()`): it runs only inside another, through func::exists or func::first"
            ),
        )),
    }
}
