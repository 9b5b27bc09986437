//! Values computed per row, in the same statement: from a relation's rows (how many books
//! each author has, the pages they come to: correlated subqueries), from the row a foreign
//! key leads to (each book's author's name), or from a part of a date (the year). To read
//! with each row ([`Query::annotate`]), to filter by (`filter(agg::count().related(…)
//! .gt(1))`), or to sort by (`order_by(Author::name().via(Book::author_id(), Author::id())
//! .asc())`).

use std::marker::PhantomData;

use chakra_layers::Queryable;
use chakra_service::chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chakra_service::{Error, FromSqlOwned, Result, Row, Value};

use crate::ast::{Aggregate, Annotation, CompareOp, DatePart, Expr, Hop, Ident, Operand, Order, Scalar, TruncUnit};
use crate::column::{agg, Column, Computed, Matches, ToOperand};
use crate::func::Expression;
use crate::model::Model;
use crate::query::{DecodedStream, Query};

/// A value computed for each row of `M`, decoding as `V`: an aggregate of its related
/// rows ([`agg::Of::related`]), a column of the row a foreign key leads to
/// ([`Column::via`]), or a part of a date or time ([`Column::year`], …).
pub struct RowValue<M, V> {
    scalar: Scalar,
    _types: PhantomData<fn() -> (M, V)>,
}

impl<M, V> Clone for RowValue<M, V> {
    fn clone(&self) -> Self {
        RowValue { scalar: self.scalar.clone(), _types: PhantomData }
    }
}

impl<M, V> std::fmt::Debug for RowValue<M, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RowValue").field(&self.scalar).finish()
    }
}

impl<V> agg::Of<V> {
    /// This aggregate over the rows of `N` whose `key` holds each `M` row's `outer`
    /// column: `agg::count().related(Book::author_id(), Author::id())` is how many books
    /// each author has, `agg::sum(Book::pages()).related(…)` their pages. The aggregate's
    /// [`filter`](agg::Of::filter) picks which related rows count; its columns and the
    /// aggregate's are `N`'s. The two key columns must have the same type, or one the
    /// `Option` of the other.
    pub fn related<N: Model, F: Matches<K>, M: Model, K>(
        self,
        key: Column<N, F>,
        outer: Column<M, K>,
    ) -> RowValue<M, V> {
        self.through(key, outer).value()
    }

    /// The first step of an aggregate across a chain of relations: the rows of `N` whose
    /// `key` holds the `outer` column of each row of `B`, which a further step leads to
    /// from the rows the value is for. Each author's reviews, through their books:
    /// `agg::count().through(Review::book_id(), Book::id()).related(Book::author_id(),
    /// Author::id())` (Django's `Count("books__reviews")`). Each row of `N` counts once
    /// per chain of rows that reaches it, as a join would count it; the aggregate's
    /// [`filter`](agg::Of::filter) and column are `N`'s.
    pub fn through<N: Model, F: Matches<K>, B: Model, K>(
        self,
        key: Column<N, F>,
        outer: Column<B, K>,
    ) -> Through<B, V> {
        let hop = Hop::new(outer.name(), N::TABLE, key.name());
        Through { aggregate: self.0, hops: vec![hop], _types: PhantomData }
    }
}

/// An aggregate of rows that relations lead to from each row of `B`, waiting for the
/// step that leads to `B`'s rows: see [`agg::Of::through`].
pub struct Through<B, V> {
    aggregate: Aggregate,
    /// From a row of `B` on (the first hop's `via` is `B`'s column).
    hops: Vec<Hop>,
    _types: PhantomData<fn() -> (B, V)>,
}

impl<B: Model, V> Through<B, V> {
    /// A further step: the rows of `B` whose `key` holds the `outer` column of each row
    /// of `C`.
    pub fn through<F: Matches<K>, C: Model, K>(mut self, key: Column<B, F>, outer: Column<C, K>) -> Through<C, V> {
        self.hops.insert(0, Hop::new(outer.name(), B::TABLE, key.name()));
        Through { aggregate: self.aggregate, hops: self.hops, _types: PhantomData }
    }

    /// The last step: the rows of `B` whose `key` holds each `M` row's `outer` column,
    /// giving the aggregate's value for each row of `M`.
    pub fn related<F: Matches<K>, M: Model, K>(self, key: Column<B, F>, outer: Column<M, K>) -> RowValue<M, V> {
        self.through(key, outer).value()
    }

    /// The aggregate's value for each row of `B`.
    fn value(self) -> RowValue<B, V> {
        RowValue::new(Scalar::Related { aggregate: self.aggregate, outer_table: B::TABLE.into(), hops: self.hops })
    }
}

impl<B, V> Clone for Through<B, V> {
    fn clone(&self) -> Self {
        Through { aggregate: self.aggregate.clone(), hops: self.hops.clone(), _types: PhantomData }
    }
}

impl<B, V> std::fmt::Debug for Through<B, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Through").field("aggregate", &self.aggregate).field("hops", &self.hops).finish()
    }
}

/// A row value goes wherever a computed value does: `func::lower(Author::name().via(…))`,
/// `func::coalesce(agg::max(Book::year()).related(…), 0)`.
impl<M, V> ToOperand<M, V> for RowValue<M, V> {
    fn to_operand(self) -> Operand {
        match self.scalar {
            Scalar::Operand(operand) => operand,
            scalar => Operand::Scalar(Box::new(scalar)),
        }
    }
}

impl<M, V> Expression<M, V> for RowValue<M, V> {}

impl<M, V> RowValue<M, V> {
    pub(crate) fn new(scalar: Scalar) -> Self {
        RowValue { scalar, _types: PhantomData }
    }

    fn compare(self, op: CompareOp, value: impl Into<Value>) -> Expr {
        Expr::ScalarCompare { scalar: Box::new(self.scalar), op, value: Operand::Value(value.into()) }
    }

    crate::column::value_comparisons!();

    /// The rows in ascending order of this value (NULLs last).
    pub fn asc(self) -> Order {
        self.order(false)
    }

    /// The rows in descending order of this value (NULLs first).
    pub fn desc(self) -> Order {
        self.order(true)
    }

    fn order(self, descending: bool) -> Order {
        Order::computed("computed", self.scalar, descending)
    }
}

impl<M, T> Computed<M, T> {
    /// The computed value as a value per row: to read with each row
    /// ([`Query::annotate`]), to filter by, or to sort by.
    pub fn row_value(self) -> RowValue<M, T> {
        RowValue::new(Scalar::Operand(self.into_operand()))
    }
}

impl<N, T> Column<N, T> {
    /// This column of the row of `N` whose `key` holds each `M` row's `by` column (`NULL`
    /// where `by` is `NULL` or leads nowhere): `Author::name().via(Book::author_id(),
    /// Author::id())` is each book's author's name, to sort books by, filter them by or
    /// read with them.
    pub fn via<M: Model, F: Matches<K>, K>(self, by: Column<M, F>, key: Column<N, K>) -> RowValue<M, Option<T>>
    where
        N: Model,
    {
        let hop = Hop::new(by.name(), N::TABLE, key.name());
        RowValue::new(Scalar::Operand(Operand::Referred { hops: vec![hop], column: self.name().into() }))
    }

    fn part<V>(self, part: DatePart) -> RowValue<N, V> {
        RowValue::new(Scalar::Part { part, column: self.name().into() })
    }
}

/// `jsonb` column types, whose values have keys (Django's `data__owner__name`).
#[diagnostic::on_unimplemented(
    message = "a column of `{Self}` is not JSON, with keys",
    note = "keys are those of serde_json::Value columns (or Option of one)"
)]
pub trait Json {}

impl Json for chakra_service::serde_json::Value {}
impl Json for Option<chakra_service::serde_json::Value> {}

impl<M, T: Json> Column<M, T> {
    /// The value at `key` of this JSON column (an array's item by its index, as digits),
    /// then at further keys with [`JsonPath::key`]: `Doc::data().key("owner").key("name")`.
    pub fn key(self, key: &str) -> JsonPath<M> {
        JsonPath { column: self.name(), path: vec![key.to_owned()], _model: PhantomData }
    }
}

/// A path of keys into a JSON column's values, from [`Column::key`]: read it as JSON with
/// [`row_value`](Self::row_value) or as text with [`text`](Self::text), either to sort by,
/// compare with or read with each row; `NULL` where the path leads nowhere.
pub struct JsonPath<M> {
    column: &'static str,
    path: Vec<String>,
    _model: PhantomData<fn() -> M>,
}

impl<M> JsonPath<M> {
    /// The value at `key` of the value so far.
    pub fn key(mut self, key: &str) -> Self {
        self.path.push(key.to_owned());
        self
    }

    /// The JSON value the path leads to (PostgreSQL's `#>`).
    pub fn row_value(self) -> RowValue<M, Option<chakra_service::serde_json::Value>> {
        self.scalar(false)
    }

    /// The text the path leads to (`#>>`, Django's `KT()`): a string's own text, another
    /// value's JSON text.
    pub fn text(self) -> RowValue<M, Option<String>> {
        self.scalar(true)
    }

    fn scalar<V>(self, text: bool) -> RowValue<M, V> {
        RowValue::new(Scalar::Json { column: self.column.into(), path: self.path, text })
    }
}

impl<M> std::fmt::Debug for JsonPath<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonPath").field("column", &self.column).field("path", &self.path).finish()
    }
}

/// Column types with calendar parts: dates and timestamps.
#[diagnostic::on_unimplemented(
    message = "a column of `{Self}` has no year, month or day",
    note = "calendar parts are those of dates and timestamps (NaiveDate, NaiveDateTime, DateTime<Utc>)"
)]
pub trait Calendar {
    /// Whether the column is a date (cut down to a unit, it stays one), not a timestamp.
    const DATE: bool = false;
}

/// Column types with clock parts: times and timestamps.
#[diagnostic::on_unimplemented(
    message = "a column of `{Self}` has no hour, minute or second",
    note = "clock parts are those of times and timestamps (NaiveTime, NaiveDateTime, DateTime<Utc>)"
)]
pub trait Clock {}

/// Timestamp column types, which have a date and a time of day.
#[diagnostic::on_unimplemented(
    message = "a column of `{Self}` is not a timestamp, with a date and a time of day",
    note = "timestamps are NaiveDateTime and DateTime<Utc>"
)]
pub trait Timestamp: Calendar + Clock {}

macro_rules! temporal {
    ($trait:ident: $($t:ty),*) => {$(
        impl $trait for $t {}
        impl $trait for Option<$t> {}
    )*};
}
temporal!(Calendar: NaiveDateTime, DateTime<Utc>);
impl Calendar for NaiveDate {
    const DATE: bool = true;
}
impl Calendar for Option<NaiveDate> {
    const DATE: bool = true;
}
temporal!(Clock: NaiveTime, NaiveDateTime, DateTime<Utc>);
temporal!(Timestamp: NaiveDateTime, DateTime<Utc>);

macro_rules! parts {
    ($trait:ident: $($(#[$doc:meta])* $name:ident => $part:ident),* $(,)?) => {
        impl<M, T: $trait> Column<M, T> {$(
            $(#[$doc])*
            pub fn $name(self) -> RowValue<M, i64> {
                self.part(DatePart::$part)
            }
        )*}
    };
}

parts!(Calendar:
    /// The year (`created__year` in Django).
    year => Year,
    /// The ISO 8601 week-numbering year.
    iso_year => IsoYear,
    /// 1 to 4.
    quarter => Quarter,
    month => Month,
    /// The ISO 8601 week, 1 to 53.
    week => Week,
    day => Day,
    /// 1 (Sunday) to 7 (Saturday), as Django's `week_day`.
    week_day => WeekDay,
    /// 1 (Monday) to 7 (Sunday).
    iso_week_day => IsoWeekDay,
);
parts!(Clock:
    hour => Hour,
    minute => Minute,
    /// Whole seconds.
    second => Second,
);

macro_rules! truncations {
    ($trait:ident: $($(#[$doc:meta])* $name:ident => $unit:ident),* $(,)?) => {
        impl<M, T: $trait> Column<M, T> {$(
            $(#[$doc])*
            pub fn $name(self) -> RowValue<M, T> {
                let date = <T as Calendar>::DATE;
                RowValue::new(Scalar::Trunc { unit: TruncUnit::$unit, column: self.name().into(), date })
            }
        )*}
    };
}

truncations!(Calendar:
    /// The date or timestamp cut down to the start of its year, of the same type (Django's
    /// `TruncYear`): to group rows by, as a time series (`Grouped` keys, `annotate`), to
    /// sort by or to filter by. A `DateTime<Utc>` is cut in the connection's time zone.
    trunc_year => Year,
    /// Cut down to the start of its quarter (see [`trunc_year`](Self::trunc_year)).
    trunc_quarter => Quarter,
    /// Cut down to the start of its month (see [`trunc_year`](Self::trunc_year)).
    trunc_month => Month,
    /// Cut down to the start of its ISO week, a Monday (see [`trunc_year`](Self::trunc_year)).
    trunc_week => Week,
    /// Cut down to the start of its day (see [`trunc_year`](Self::trunc_year)).
    trunc_day => Day,
);
truncations!(Timestamp:
    /// The timestamp cut down to the start of its hour (see [`trunc_year`](Self::trunc_year)).
    trunc_hour => Hour,
    /// Cut down to the start of its minute.
    trunc_minute => Minute,
    /// Cut down to the start of its second.
    trunc_second => Second,
);

impl<M, T: Timestamp> Column<M, T> {
    /// The timestamp's date (in the connection's time zone for a `DateTime<Utc>`).
    pub fn date(self) -> RowValue<M, NaiveDate> {
        self.part(DatePart::Date)
    }

    /// The timestamp's time of day.
    pub fn time(self) -> RowValue<M, NaiveTime> {
        self.part(DatePart::Time)
    }
}

/// What [`Query::annotate`] computes for each row of `M`: a [`RowValue`], or a tuple of
/// up to six.
pub trait Annotations<M> {
    /// What they decode to: the value's type, or a tuple of them.
    type Output;
    /// The values, in order (never empty).
    fn into_scalars(self) -> Vec<Scalar>;
    /// Decodes them from `row`, the first at column `first`.
    fn decode(row: &Row, first: usize) -> Result<Self::Output>;
}

impl<M, V: FromSqlOwned> Annotations<M> for RowValue<M, V> {
    type Output = V;

    fn into_scalars(self) -> Vec<Scalar> {
        vec![self.scalar]
    }

    fn decode(row: &Row, first: usize) -> Result<V> {
        row.try_get(first).map_err(Error::from)
    }
}

macro_rules! annotation_tuples {
    ($(($($t:ident $i:tt),+)),* $(,)?) => {$(
        impl<M, $($t: FromSqlOwned),+> Annotations<M> for ($(RowValue<M, $t>,)+) {
            type Output = ($($t,)+);

            fn into_scalars(self) -> Vec<Scalar> {
                vec![$(self.$i.scalar),+]
            }

            fn decode(row: &Row, first: usize) -> Result<Self::Output> {
                Ok(($(row.try_get::<_, $t>(first + $i)?,)+))
            }
        }
    )*};
}

crate::query::up_to_six!(annotation_tuples);

/// The alias of the `i`th annotation.
fn alias(i: usize) -> Ident {
    format!("chakra_annotation_{i}").into()
}

impl<M: Model> Query<M> {
    /// Each row with values computed for it from related rows, in the same statement:
    /// `Author::query().annotate((agg::count().related(Book::author_id(), Author::id()),
    /// agg::sum(Book::pages()).related(Book::author_id(), Author::id())))` reads as
    /// `Vec<(Author, (i64, Option<i64>))>`. To keep only some rows by such a value,
    /// filter by it: `.filter(agg::count().related(…).gt(1))`.
    pub fn annotate<A: Annotations<M>>(self, annotations: A) -> Annotated<M, A> {
        let mut query = self;
        let scalars = annotations.into_scalars();
        let select = query.ast_mut();
        select.annotations =
            scalars.into_iter().enumerate().map(|(i, value)| Annotation::new(alias(i), value)).collect();
        Annotated { query, _annotations: PhantomData }
    }
}

/// A query's rows, each with the values [`Query::annotate`] computes for it.
pub struct Annotated<M, A> {
    query: Query<M>,
    _annotations: PhantomData<fn() -> A>,
}

impl<M: Model, A: Annotations<M>> Annotated<M, A> {
    /// Ordered by the first value, the largest first when `descending` (with a limit: the
    /// top rows); ties keep the query's order.
    pub fn order_by_value(mut self, descending: bool) -> Self {
        self.query.ast_mut().order.insert(0, Order::column(alias(0), descending));
        self
    }

    /// Every matching row with its values, decoded as they arrive.
    pub async fn all<Q: Queryable>(&self, db: &Q) -> Result<Vec<(M, A::Output)>> {
        self.query.all_as(db, Self::decode).await
    }

    /// The first matching row in the query's order, with its values.
    pub async fn first<Q: Queryable>(&self, db: &Q) -> Result<Option<(M, A::Output)>> {
        self.query.first_as(db, Self::decode).await
    }

    /// The matching rows with their values as a stream (see [`Query::stream`]).
    pub async fn stream<Q: Queryable>(&self, db: &Q) -> Result<DecodedStream<(M, A::Output)>> {
        self.query.stream_as(db, Self::decode).await
    }

    /// How many rows match.
    pub async fn count<Q: Queryable>(&self, db: &Q) -> Result<i64> {
        self.query.count(db).await
    }

    fn decode(row: &Row) -> Result<(M, A::Output)> {
        Ok((M::from_row(row)?, A::decode(row, M::FIELDS.len())?))
    }
}
