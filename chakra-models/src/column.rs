//! Typed column handles — `User::is_active()` — whose methods build conditions.

use std::marker::PhantomData;

use chakra_service::chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chakra_service::rust_decimal::Decimal;
use chakra_service::{FromSqlOwned, Value};

use crate::annotate::RowValue;
use crate::ast::{ArithOp, Assignment, CompareOp, Expr, Operand, Order, Pattern, TextMatch};
use crate::model::Model;
use crate::query::Selected;

/// A column of model `M` holding values of type `T`; the derive generates one accessor
/// per field. Values are taken as `impl Into<Value>`, like SeaORM's columns; comparisons
/// and updates also take another column of the same type, or arithmetic on columns.
pub struct Column<M, T> {
    name: &'static str,
    _model: PhantomData<fn() -> (M, T)>,
}

impl<M, T> Clone for Column<M, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M, T> Copy for Column<M, T> {}

impl<M, T> std::fmt::Debug for Column<M, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Column({})", self.name)
    }
}

/// A column type whose values match those of a column of type `K`: the same type, or
/// either one the `Option` of the other (a nullable key, whose `NULL`s match nothing).
#[diagnostic::on_unimplemented(
    message = "a column of `{Self}` cannot be matched with a column of `{K}`",
    label = "not the other column's type",
    note = "the two columns must have the same type, or one the `Option` of the other"
)]
pub trait Matches<K> {}

impl<K> Matches<K> for K {}

impl<K> Matches<K> for Option<K> {}

impl<K> Matches<Option<K>> for K {}

impl<M, T> Column<M, T> {
    /// The handle of column `name` (what the derive generates).
    pub const fn new(name: &'static str) -> Self {
        Column { name, _model: PhantomData }
    }

    /// The column's name in the table.
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn compare(self, op: CompareOp, value: impl ToOperand<M, T>) -> Expr {
        Expr::Compare { column: self.name.into(), op, value: value.to_operand() }
    }

    /// `= value`; `eq(None)` means `IS NULL`. The value may be another column, or
    /// arithmetic on columns: `Account::balance().lt(Account::limit() * 2)`.
    pub fn eq(self, value: impl ToOperand<M, T>) -> Expr {
        self.compare(CompareOp::Eq, value)
    }

    /// `<> value` (SQL semantics: rows where the column is `NULL` do not match); `ne(None)`
    /// means `IS NOT NULL`.
    pub fn ne(self, value: impl ToOperand<M, T>) -> Expr {
        self.compare(CompareOp::Ne, value)
    }

    pub fn gt(self, value: impl ToOperand<M, T>) -> Expr {
        self.compare(CompareOp::Gt, value)
    }

    pub fn gte(self, value: impl ToOperand<M, T>) -> Expr {
        self.compare(CompareOp::Gte, value)
    }

    pub fn lt(self, value: impl ToOperand<M, T>) -> Expr {
        self.compare(CompareOp::Lt, value)
    }

    pub fn lte(self, value: impl ToOperand<M, T>) -> Expr {
        self.compare(CompareOp::Lte, value)
    }

    /// One of `values`; an empty list matches nothing.
    pub fn is_in<V: Into<Value>>(self, values: impl IntoIterator<Item = V>) -> Expr {
        Expr::In { column: self.name.into(), values: values.into_iter().map(Into::into).collect(), negated: false }
    }

    /// None of `values`; an empty list matches every non-`NULL` row.
    pub fn is_not_in<V: Into<Value>>(self, values: impl IntoIterator<Item = V>) -> Expr {
        Expr::In { column: self.name.into(), values: values.into_iter().map(Into::into).collect(), negated: true }
    }

    /// Among the values another query selects, sent as a subquery of the same statement
    /// (`IN (SELECT …)`): `Book::author_id().is_in_query(Author::query()
    /// .filter(Author::name().starts_with("A")).select(Author::id()))`. The two columns
    /// must hold the same type, or one the `Option` of the other.
    pub fn is_in_query<N: Model, U: Matches<T> + FromSqlOwned + Send>(self, query: Selected<N, Column<N, U>>) -> Expr {
        Expr::InSelect { column: self.name.into(), select: Box::new(query.subquery()), negated: false }
    }

    /// Not among the values another query selects (`NOT IN (SELECT …)`). As in SQL, a
    /// `NULL` among them matches no row: select from non-`NULL` values only.
    pub fn is_not_in_query<N: Model, U: Matches<T> + FromSqlOwned + Send>(
        self,
        query: Selected<N, Column<N, U>>,
    ) -> Expr {
        Expr::InSelect { column: self.name.into(), select: Box::new(query.subquery()), negated: true }
    }

    pub fn is_null(self) -> Expr {
        Expr::IsNull { column: self.name.into(), negated: false }
    }

    pub fn is_not_null(self) -> Expr {
        Expr::IsNull { column: self.name.into(), negated: true }
    }

    /// `BETWEEN low AND high`, both ends included.
    pub fn between(self, low: impl Into<Value>, high: impl Into<Value>) -> Expr {
        Expr::Between { column: self.name.into(), low: low.into(), high: high.into() }
    }

    /// `LIKE pattern`, with `%` and `_` as wildcards (and `\` escaping them).
    pub fn like(self, pattern: impl Into<String>) -> Expr {
        self.pattern(Pattern::Raw(pattern.into()), false)
    }

    /// Case-insensitive [`like`](Self::like).
    pub fn ilike(self, pattern: impl Into<String>) -> Expr {
        self.pattern(Pattern::Raw(pattern.into()), true)
    }

    /// Starts with `text`, taken literally (`%`, `_`, `\` in it match themselves).
    pub fn starts_with(self, text: impl Into<String>) -> Expr {
        self.pattern(Pattern::Text(text.into(), TextMatch::StartsWith), false)
    }

    /// Ends with `text`, taken literally.
    pub fn ends_with(self, text: impl Into<String>) -> Expr {
        self.pattern(Pattern::Text(text.into(), TextMatch::EndsWith), false)
    }

    /// Contains `text`, taken literally.
    pub fn contains(self, text: impl Into<String>) -> Expr {
        self.pattern(Pattern::Text(text.into(), TextMatch::Contains), false)
    }

    /// Matches the POSIX regular expression `regex` (PostgreSQL's `~`).
    pub fn regex(self, regex: impl Into<String>) -> Expr {
        self.pattern(Pattern::Regex(regex.into()), false)
    }

    /// Case-insensitive [`regex`](Self::regex) (`~*`).
    pub fn iregex(self, regex: impl Into<String>) -> Expr {
        self.pattern(Pattern::Regex(regex.into()), true)
    }

    /// Holds the words of `query` (full-text search, as Django's `search` lookup: the
    /// text's lexemes in the server's default configuration, `plainto_tsquery`).
    pub fn search(self, query: impl Into<String>) -> Expr {
        self.pattern(Pattern::Search(query.into()), false)
    }

    fn pattern(self, pattern: Pattern, case_insensitive: bool) -> Expr {
        Expr::Like { column: self.name.into(), pattern, case_insensitive }
    }

    /// Ascending order on this column.
    pub fn asc(self) -> Order {
        Order::column(self.name, false)
    }

    /// Descending order on this column.
    pub fn desc(self) -> Order {
        Order::column(self.name, true)
    }

    /// `SET column = value`, for [`Query::update`](crate::Query::update). The value may
    /// be computed by the database from the row's own columns, so concurrent updates do
    /// not overwrite each other: `Account::balance().set(Account::balance() - 10)`.
    pub fn set(self, value: impl ToOperand<M, T>) -> Assignment {
        Assignment { column: self.name.into(), value: value.to_operand() }
    }
}

/// A value of type `T` computed by the database from a row of model `M`: arithmetic on
/// numeric columns (`Account::balance() - 10`, `Item::price() * Item::quantity()`) or
/// the functions of [`func`](crate::func) (`func::lower(User::email())`). It stands for
/// a value in comparisons and updates; [`row_value`](Computed::row_value) reads it with
/// each row.
pub struct Computed<M, T> {
    operand: Operand,
    _model: PhantomData<fn() -> (M, T)>,
}

impl<M, T> Computed<M, T> {
    pub(crate) fn new(operand: Operand) -> Self {
        Computed { operand, _model: PhantomData }
    }

    pub(crate) fn into_operand(self) -> Operand {
        self.operand
    }
}

impl<M, T> Clone for Computed<M, T> {
    fn clone(&self) -> Self {
        Computed { operand: self.operand.clone(), _model: PhantomData }
    }
}

impl<M, T> std::fmt::Debug for Computed<M, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Computed({:?})", self.operand)
    }
}

/// A column of the row of an enclosing query of model `O`, in a subquery's conditions
/// (Django's `OuterRef`): `Book::author_id().eq(Author::id().outer())` inside
/// [`func::exists`](crate::func::exists) asks about each author.
pub struct Outer<O, T> {
    name: &'static str,
    _model: PhantomData<fn() -> (O, T)>,
}

impl<M, T> Column<M, T> {
    /// This column of the enclosing query's row, for a subquery (see [`Outer`]).
    pub fn outer(self) -> Outer<M, T> {
        Outer { name: self.name, _model: PhantomData }
    }
}

impl<O, T> Clone for Outer<O, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<O, T> Copy for Outer<O, T> {}

impl<O, T> std::fmt::Debug for Outer<O, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Outer({})", self.name)
    }
}

impl<M, O, T> ToOperand<M, T> for Outer<O, T> {
    fn to_operand(self) -> Operand {
        Operand::Outer(self.name.into())
    }
}

impl<M, O, T> ToOperand<M, Option<T>> for Outer<O, T> {
    fn to_operand(self) -> Operand {
        Operand::Outer(self.name.into())
    }
}

/// What can stand for a value of type `T` in a comparison or an update of model `M`'s
/// rows: a value, a column of `M` of that type (a column of `T` also stands for an
/// `Option<T>`), or a value computed from `M`'s columns ([`Computed`]). A column of
/// another model is refused: it is not in the statement.
pub trait ToOperand<M, T> {
    fn to_operand(self) -> Operand;
}

impl<M, T, V: Into<Value>> ToOperand<M, T> for V {
    fn to_operand(self) -> Operand {
        Operand::Value(self.into())
    }
}

impl<M, T> ToOperand<M, T> for Column<M, T> {
    fn to_operand(self) -> Operand {
        Operand::Column(self.name.into())
    }
}

impl<M, T> ToOperand<M, T> for Computed<M, T> {
    fn to_operand(self) -> Operand {
        self.operand
    }
}

impl<M, T> ToOperand<M, Option<T>> for Column<M, T> {
    fn to_operand(self) -> Operand {
        Operand::Column(self.name.into())
    }
}

impl<M, T> ToOperand<M, Option<T>> for Computed<M, T> {
    fn to_operand(self) -> Operand {
        self.operand
    }
}

/// Aggregates in conditions on groups, for [`Grouped::having`](crate::Grouped::having):
/// `agg::count().gt(1)`, `agg::sum(Order::total()).gte(100)`. Each skips `NULL`s, as SQL's.
pub mod agg {
    use std::fmt;
    use std::marker::PhantomData;

    use chakra_service::Value;

    use chakra_service::FromSqlOwned;

    use super::{Numeric, Ordered};
    use crate::ast::{Aggregate, AggregateFn, CompareOp, Expr, Operand, Order};
    use crate::func::{Expression, Textual};

    /// An aggregate of a group (or of all matching rows), whose value decodes as `V`: to
    /// compare with a value in `having`, or to compute with
    /// [`Query::aggregate`](crate::Query::aggregate) and
    /// [`Grouped::aggregate`](crate::Grouped::aggregate), alone or several in a tuple.
    /// These functions are also what `Query`'s and `Grouped`'s own aggregates are built
    /// from, each bound to the column types it applies to.
    pub struct Of<V>(pub(crate) Aggregate, PhantomData<fn() -> V>);

    impl<V> Of<V> {
        fn new(aggregate: Aggregate) -> Self {
            Of(aggregate, PhantomData)
        }
    }

    impl<V> Clone for Of<V> {
        fn clone(&self) -> Self {
            Of::new(self.0.clone())
        }
    }

    impl<V> fmt::Debug for Of<V> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_tuple("Of").field(&self.0).finish()
        }
    }

    /// How many rows the group has.
    pub fn count() -> Of<i64> {
        Of::new(Aggregate::count_rows())
    }

    /// How many rows of the group have a value in `value` (a column, or a value computed
    /// from the row: see [`Expression`]), each distinct one once when `distinct`.
    pub fn count_of<M, T>(value: impl Expression<M, T>, distinct: bool) -> Of<i64> {
        Of::new(Aggregate { distinct, ..Aggregate::of(AggregateFn::Count, value.to_operand()) })
    }

    /// The group's sum of `value`, in PostgreSQL's wider type (see [`Numeric`]); `None`
    /// when the group has no values. `agg::sum(Line::price() * Line::quantity())` sums a
    /// value computed from each row.
    pub fn sum<M, T: Numeric>(value: impl Expression<M, T>) -> Of<Option<T::Sum>> {
        Of::new(Aggregate::of(AggregateFn::Sum, value.to_operand()))
    }

    /// The group's mean of `value`.
    pub fn avg<M, T: Numeric>(value: impl Expression<M, T>) -> Of<Option<T::Avg>> {
        Of::new(Aggregate::of(AggregateFn::Avg, value.to_operand()))
    }

    /// The group's smallest `value`.
    pub fn min<M, T: Ordered>(value: impl Expression<M, T>) -> Of<Option<T::Value>> {
        Of::new(Aggregate::of(AggregateFn::Min, value.to_operand()))
    }

    /// The group's largest `value`.
    pub fn max<M, T: Ordered>(value: impl Expression<M, T>) -> Of<Option<T::Value>> {
        Of::new(Aggregate::of(AggregateFn::Max, value.to_operand()))
    }

    /// The standard deviation of the group's `value`s as the whole population, in `avg`'s
    /// type (a float for floats, a `Decimal` otherwise).
    pub fn stddev_pop<M, T: Numeric>(value: impl Expression<M, T>) -> Of<Option<T::Avg>> {
        Of::new(Aggregate::of(AggregateFn::StdDevPop, value.to_operand()))
    }

    /// The standard deviation of the group's `value`s as a sample (`None` for fewer than
    /// two).
    pub fn stddev_samp<M, T: Numeric>(value: impl Expression<M, T>) -> Of<Option<T::Avg>> {
        Of::new(Aggregate::of(AggregateFn::StdDevSamp, value.to_operand()))
    }

    /// The variance of the group's `value`s as the whole population.
    pub fn var_pop<M, T: Numeric>(value: impl Expression<M, T>) -> Of<Option<T::Avg>> {
        Of::new(Aggregate::of(AggregateFn::VarPop, value.to_operand()))
    }

    /// The variance of the group's `value`s as a sample.
    pub fn var_samp<M, T: Numeric>(value: impl Expression<M, T>) -> Of<Option<T::Avg>> {
        Of::new(Aggregate::of(AggregateFn::VarSamp, value.to_operand()))
    }

    /// Whether every `value` of the group is true.
    pub fn bool_and<M, T: Boolean>(value: impl Expression<M, T>) -> Of<Option<bool>> {
        Of::new(Aggregate::of(AggregateFn::BoolAnd, value.to_operand()))
    }

    /// Whether any `value` of the group is true.
    pub fn bool_or<M, T: Boolean>(value: impl Expression<M, T>) -> Of<Option<bool>> {
        Of::new(Aggregate::of(AggregateFn::BoolOr, value.to_operand()))
    }

    /// The group's `value`s as a `Vec` (`NULL`s kept, as `None` for an `Option` column),
    /// in the order [`order_by`](Of::order_by) gives: `agg::array_agg(Tag::name())
    /// .order_by(Tag::name().asc())`.
    pub fn array_agg<M, T: FromSqlOwned>(value: impl Expression<M, T>) -> Of<Option<Vec<T>>> {
        Of::new(Aggregate::of(AggregateFn::ArrayAgg, value.to_operand()))
    }

    /// The group's texts joined with `delimiter` between them (`NULL`s left out), in the
    /// order [`order_by`](Of::order_by) gives.
    pub fn string_agg<M, T: Textual>(value: impl Expression<M, T>, delimiter: &str) -> Of<Option<String>> {
        let mut aggregate = Aggregate::of(AggregateFn::StringAgg, value.to_operand());
        aggregate.args.push(Operand::Value(Value::Text(delimiter.into())));
        Of::new(aggregate)
    }

    /// Boolean column types.
    pub trait Boolean {}

    impl Boolean for bool {}
    impl Boolean for Option<bool> {}

    impl<T> Of<Option<T>> {
        /// `value` instead of `NULL` over no values (`COALESCE`, Django's `default=`):
        /// `agg::sum(Line::price()).or(Decimal::ZERO)` is a `Decimal`.
        pub fn or(self, value: impl Into<Value>) -> Of<T> {
            Of::new(Aggregate { default: Some(value.into()), ..self.0 })
        }
    }

    impl<V> Of<V> {
        /// The values taken in `order` (called again, more terms): what `array_agg` and
        /// `string_agg` show.
        pub fn order_by(mut self, order: Order) -> Self {
            self.0.order_by.push(order);
            self
        }

        /// Over the rows meeting `condition` only (SQL's `FILTER (WHERE …)`, Django's
        /// `filter=`), so one query can count, say, all rows and the active ones:
        /// `(agg::count(), agg::count().filter(User::is_active().eq(true)))`. Given
        /// twice, both conditions hold.
        pub fn filter(self, condition: Expr) -> Self {
            Of::new(self.0.filtered(condition))
        }

        fn compare(self, op: CompareOp, value: impl Into<Value>) -> Expr {
            Expr::AggregateCompare { aggregate: self.0, op, value: value.into() }
        }

        crate::column::value_comparisons!();
    }
}

/// `eq`, `ne`, `gt`, `gte`, `lt` and `lte` with a value, through the type's own
/// `compare(op, value)`: for the values of a group or a row that are no column.
macro_rules! value_comparisons {
    () => {
        /// `= value`; `eq(None)` means `IS NULL`.
        pub fn eq(self, value: impl Into<Value>) -> Expr {
            self.compare(CompareOp::Eq, value)
        }

        pub fn ne(self, value: impl Into<Value>) -> Expr {
            self.compare(CompareOp::Ne, value)
        }

        pub fn gt(self, value: impl Into<Value>) -> Expr {
            self.compare(CompareOp::Gt, value)
        }

        pub fn gte(self, value: impl Into<Value>) -> Expr {
            self.compare(CompareOp::Gte, value)
        }

        pub fn lt(self, value: impl Into<Value>) -> Expr {
            self.compare(CompareOp::Lt, value)
        }

        pub fn lte(self, value: impl Into<Value>) -> Expr {
            self.compare(CompareOp::Lte, value)
        }
    };
}
pub(crate) use value_comparisons;

/// Column types arithmetic, `sum` and `avg` apply to, with the types PostgreSQL's `sum`
/// and `avg` of them return (wider than the column's, so they do not overflow or round).
#[diagnostic::on_unimplemented(
    message = "arithmetic, sum and avg apply to numeric columns, and `{Self}` is not numeric",
    label = "not a numeric column",
    note = "numeric columns are i16, i32, i64, f32, f64 and Decimal (or Option of these)"
)]
pub trait Numeric {
    /// `sum`'s type: `int8` for smaller integers, `numeric` for `int8`.
    type Sum: FromSqlOwned;
    /// `avg`'s type: `numeric` for integers, `float8` for floats.
    type Avg: FromSqlOwned;
}

macro_rules! numeric {
    ($($t:ty => $sum:ty, $avg:ty);* $(;)?) => {$(
        impl Numeric for $t {
            type Sum = $sum;
            type Avg = $avg;
        }
    )*};
}

numeric! {
    i16 => i64, Decimal; i32 => i64, Decimal; i64 => Decimal, Decimal;
    f32 => f32, f64; f64 => f64, f64; Decimal => Decimal, Decimal;
}

impl<T: Numeric> Numeric for Option<T> {
    type Sum = T::Sum;
    type Avg = T::Avg;
}

/// Column types PostgreSQL's `min` and `max` apply to; `Value` is the column's type
/// without its `Option`.
#[diagnostic::on_unimplemented(
    message = "min and max apply to numbers, text, dates and times, and `{Self}` is none of these",
    label = "no order for min and max"
)]
pub trait Ordered {
    type Value: FromSqlOwned;
}

macro_rules! ordered {
    ($($t:ty),*) => {$(
        impl Ordered for $t {
            type Value = $t;
        }
    )*};
}

ordered!(i16, i32, i64, f32, f64, Decimal, String, NaiveDate, NaiveTime, NaiveDateTime, DateTime<Utc>);

impl<T: Ordered> Ordered for Option<T> {
    type Value = T::Value;
}

macro_rules! arithmetic {
    ($($trait:ident $method:ident $op:ident),*) => {$(
        impl<M, T: Numeric, R: ToOperand<M, T>> std::ops::$trait<R> for Column<M, T> {
            type Output = Computed<M, T>;

            fn $method(self, rhs: R) -> Computed<M, T> {
                Computed { operand: Operand::arith(Operand::Column(self.name.into()), ArithOp::$op, rhs.to_operand()), _model: PhantomData }
            }
        }

        impl<M, T: Numeric, R: ToOperand<M, T>> std::ops::$trait<R> for Computed<M, T> {
            type Output = Computed<M, T>;

            fn $method(self, rhs: R) -> Computed<M, T> {
                Computed { operand: Operand::arith(self.operand, ArithOp::$op, rhs.to_operand()), _model: PhantomData }
            }
        }

        /// Arithmetic on a value of each row's related rows or of the row a key leads
        /// to: `agg::count().related(…) * 2`.
        impl<M, T: Numeric, R: ToOperand<M, T>> std::ops::$trait<R> for RowValue<M, T> {
            type Output = Computed<M, T>;

            fn $method(self, rhs: R) -> Computed<M, T> {
                let operand = ToOperand::<M, T>::to_operand(self);
                Computed { operand: Operand::arith(operand, ArithOp::$op, rhs.to_operand()), _model: PhantomData }
            }
        }
    )*};
}

arithmetic!(Add add Add, Sub sub Sub, Mul mul Mul, Div div Div);
