//! Functions computed by the database from a row's values, as Django's
//! `django.db.models.functions` and SeaORM's `Func`: each gives a [`Computed`] value, to
//! compare with, assign in an update, or read with each row ([`Computed::row_value`]).
//!
//! See the `chakra` crate's documentation for an example.

use std::marker::PhantomData;

use chakra_service::chrono::{DateTime, Utc};
use chakra_service::rust_decimal::Decimal;
use chakra_service::uuid::Uuid;
use chakra_service::{FromSqlOwned, Value};

use crate::annotate::RowValue;
use crate::ast::{Aggregate, Expr, Function, Operand, Order, Scalar, WindowFunction};
use crate::column::{agg, Column, Computed, Numeric, ToOperand};
use crate::model::Model;
use crate::query::{Query, Selected};

/// Text column types, with what their length is (`NULL` for `NULL` text).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not text",
    label = "not a text value",
    note = "text functions apply to String and Option<String>"
)]
pub trait Textual {
    type Length;
}

impl Textual for String {
    type Length = i32;
}

impl Textual for Option<String> {
    type Length = Option<i32>;
}

/// Number types that PostgreSQL rounds to their own type (`round` of an integer is a
/// `numeric`, of a `real` a `float8`), and whose roots, powers and logarithms are of
/// their own type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not rounded to its own type",
    note = "round, ceil, floor, sqrt, power, exp, ln and sign apply to f64 and Decimal (or Option of these)"
)]
pub trait Fractional {
    /// The PostgreSQL type, which [`round_to`]'s `numeric` result is converted back to.
    const SQL_TYPE: &'static str;
}

impl Fractional for f64 {
    const SQL_TYPE: &'static str = "float8";
}
impl Fractional for Option<f64> {
    const SQL_TYPE: &'static str = "float8";
}
impl Fractional for Decimal {
    const SQL_TYPE: &'static str = "numeric";
}
impl Fractional for Option<Decimal> {
    const SQL_TYPE: &'static str = "numeric";
}

/// Number types without a fraction's rounding error, which `mod` takes.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an integer or a Decimal",
    note = "modulo applies to i16, i32, i64 and Decimal (or Option of these)"
)]
pub trait Exact {}

impl Exact for i16 {}
impl Exact for Option<i16> {}
impl Exact for i32 {}
impl Exact for Option<i32> {}
impl Exact for i64 {}
impl Exact for Option<i64> {}
impl Exact for Decimal {}
impl Exact for Option<Decimal> {}

/// A value of type `T` computed from (or read in) a row of model `M`: a column, or a
/// [`Computed`] value. What the functions take first: its one type and model say the
/// call's (a column of `T` also stands for an `Option<T>` elsewhere, which would leave
/// `length(User::name())` ambiguous).
pub trait Expression<M, T>: ToOperand<M, T> {}

impl<M, T> Expression<M, T> for Column<M, T> {}

impl<M, T> Expression<M, T> for Computed<M, T> {}

fn call<M, T>(function: Function, args: Vec<Operand>) -> Computed<M, T> {
    Computed::new(Operand::Call { function, args })
}

/// `value`, or `fallback` where it is `NULL`: `coalesce(User::nick(), User::name())`.
pub fn coalesce<M, T>(value: impl Expression<M, Option<T>>, fallback: impl ToOperand<M, T>) -> Computed<M, T> {
    call(Function::Coalesce, vec![value.to_operand(), fallback.to_operand()])
}

/// `NULL` where `value` equals `other`, else `value`.
pub fn nullif<M, T>(value: impl Expression<M, T>, other: impl ToOperand<M, T>) -> Computed<M, Option<T>> {
    call(Function::NullIf, vec![value.to_operand(), other.to_operand()])
}

/// The larger of the two (`NULL`s are left out, as PostgreSQL's `greatest`).
pub fn greatest<M, T>(value: impl Expression<M, T>, other: impl ToOperand<M, T>) -> Computed<M, T> {
    call(Function::Greatest, vec![value.to_operand(), other.to_operand()])
}

/// The smaller of the two (`NULL`s are left out).
pub fn least<M, T>(value: impl Expression<M, T>, other: impl ToOperand<M, T>) -> Computed<M, T> {
    call(Function::Least, vec![value.to_operand(), other.to_operand()])
}

/// Functions of one value of a type bounded by `$bound`, giving the same type.
macro_rules! unary {
    ($bound:ident: $($(#[$doc:meta])* $name:ident => $function:ident),* $(,)?) => {$(
        $(#[$doc])*
        pub fn $name<M, T: $bound>(value: impl Expression<M, T>) -> Computed<M, T> {
            call(Function::$function, vec![value.to_operand()])
        }
    )*};
}

unary! { Textual:
    /// Text in lower case.
    lower => Lower,
    /// Text in upper case.
    upper => Upper,
    /// Text without leading and trailing spaces.
    trim => Trim,
    /// Text without leading spaces.
    ltrim => LTrim,
    /// Text without trailing spaces.
    rtrim => RTrim,
}

unary! { Textual:
    /// Text with its characters in reverse order.
    reverse => Reverse,
    /// The MD5 digest of a text, in hexadecimal.
    md5 => Md5,
}

unary! { Numeric:
    /// A number's absolute value.
    abs => Abs,
}

unary! { Fractional:
    /// To the nearest integer (halves away from zero for `Decimal`, to even for `f64`).
    round => Round,
    /// The smallest integer not below the number.
    ceil => Ceil,
    /// The largest integer not above the number.
    floor => Floor,
    /// -1, 0 or 1 for a negative, zero or positive number.
    sign => Sign,
    /// The square root.
    sqrt => Sqrt,
    /// e to the power of the number.
    exp => Exp,
    /// The natural logarithm.
    ln => Ln,
}

/// To `places` decimal places (negative: to tens, hundreds, …), halves away from zero:
/// `round_to(Item::price(), 2)`. Computed as a `numeric`, as PostgreSQL rounds to places
/// only, and given back as the value's type.
pub fn round_to<M, T: Fractional>(value: impl Expression<M, T>, places: impl ToOperand<M, i32>) -> Computed<M, T> {
    let call = Operand::Call { function: Function::Round, args: vec![value.to_operand(), places.to_operand()] };
    match T::SQL_TYPE {
        "numeric" => Computed::new(call),
        to => Computed::new(Operand::cast(call, to).expect("a type name")),
    }
}

/// `value` to the power of `exponent`.
pub fn power<M, T: Fractional>(value: impl Expression<M, T>, exponent: impl ToOperand<M, T>) -> Computed<M, T> {
    call(Function::Power, vec![value.to_operand(), exponent.to_operand()])
}

/// The remainder of `value` divided by `divisor` (of the sign of `value`):
/// `modulo(Order::id(), 10)`.
pub fn modulo<M, T: Exact>(value: impl Expression<M, T>, divisor: impl ToOperand<M, T>) -> Computed<M, T> {
    call(Function::Mod, vec![value.to_operand(), divisor.to_operand()])
}

/// `count` characters of `text` from position `from` (from 1): `substr(User::name(), 1, 3)`.
pub fn substr<M, T: Textual>(
    text: impl Expression<M, T>,
    from: impl ToOperand<M, i32>,
    count: impl ToOperand<M, i32>,
) -> Computed<M, T> {
    call(Function::Substr, vec![text.to_operand(), from.to_operand(), count.to_operand()])
}

/// The first `count` characters of `text` (all but the last `-count` if negative).
pub fn left<M, T: Textual>(text: impl Expression<M, T>, count: impl ToOperand<M, i32>) -> Computed<M, T> {
    call(Function::Left, vec![text.to_operand(), count.to_operand()])
}

/// The last `count` characters of `text` (all but the first `-count` if negative).
pub fn right<M, T: Textual>(text: impl Expression<M, T>, count: impl ToOperand<M, i32>) -> Computed<M, T> {
    call(Function::Right, vec![text.to_operand(), count.to_operand()])
}

/// `text` with every occurrence of `from` replaced by `to`.
pub fn replace<M, T: Textual>(
    text: impl Expression<M, T>,
    from: impl ToOperand<M, String>,
    to: impl ToOperand<M, String>,
) -> Computed<M, T> {
    call(Function::Replace, vec![text.to_operand(), from.to_operand(), to.to_operand()])
}

/// Where `substring` starts in `text` (from 1), 0 if it is not in it.
pub fn strpos<M, T: Textual>(
    text: impl Expression<M, T>,
    substring: impl ToOperand<M, String>,
) -> Computed<M, T::Length> {
    call(Function::StrIndex, vec![text.to_operand(), substring.to_operand()])
}

/// `text` padded on the left with `fill` to `length` characters, or cut to them.
pub fn lpad<M, T: Textual>(
    text: impl Expression<M, T>,
    length: impl ToOperand<M, i32>,
    fill: impl ToOperand<M, String>,
) -> Computed<M, T> {
    call(Function::LPad, vec![text.to_operand(), length.to_operand(), fill.to_operand()])
}

/// `text` padded on the right with `fill` to `length` characters, or cut to them.
pub fn rpad<M, T: Textual>(
    text: impl Expression<M, T>,
    length: impl ToOperand<M, i32>,
    fill: impl ToOperand<M, String>,
) -> Computed<M, T> {
    call(Function::RPad, vec![text.to_operand(), length.to_operand(), fill.to_operand()])
}

/// `text` repeated `count` times.
pub fn repeat<M, T: Textual>(text: impl Expression<M, T>, count: impl ToOperand<M, i32>) -> Computed<M, T> {
    call(Function::Repeat, vec![text.to_operand(), count.to_operand()])
}

/// SQL of the application's own, of type `T`, where a value computed from the row goes
/// (Django's `RawSQL`): `%s` where each of `params` goes (sent as parameters, never
/// spliced in; `%%` for a `%`). It names the table's columns itself.
///
/// ```ignore
/// let near = func::raw::<Book, f64>("similarity(title, %s)", vec!["dune".into()])?;
/// Book::query().order_by(near.row_value().desc())
/// ```
///
/// An error of kind `Usage` if the `%s` and the parameters differ in number.
pub fn raw<M, T>(sql: &str, params: Vec<Value>) -> chakra_service::Result<Computed<M, T>> {
    let count = params.len();
    Operand::raw(sql, params).map(Computed::new).ok_or_else(|| {
        chakra_service::Error::new(
            chakra_service::ErrorKind::Usage,
            format!("raw SQL {sql:?} has a different number of %s than its {count} parameters"),
        )
    })
}

/// A JSON object of values named by keys, one per row (PostgreSQL's
/// `jsonb_build_object`, Django's `JSONObject`), built field by field:
/// `func::json_object().field("name", User::name()).field("books", books).value()`, a
/// `serde_json::Value` read with [`Computed::row_value`].
pub fn json_object<M>() -> JsonObject<M> {
    JsonObject { args: Vec::new(), _model: PhantomData }
}

/// What [`json_object`] builds.
pub struct JsonObject<M> {
    /// Each key (a text value), then its value.
    args: Vec<Operand>,
    _model: PhantomData<fn() -> M>,
}

impl<M> JsonObject<M> {
    /// `key` holding `value` (a column, a computed value, a value of related rows).
    pub fn field<T>(mut self, key: &str, value: impl Expression<M, T>) -> Self {
        self.args.push(Operand::Value(Value::Text(key.to_owned())));
        self.args.push(value.to_operand());
        self
    }

    /// The object, computed for each row.
    pub fn value(self) -> Computed<M, chakra_service::serde_json::Value> {
        call(Function::JsonObject, self.args)
    }
}

/// A random version 4 UUID, another for each row: `Session::token().set(func::random_uuid())`.
pub fn random_uuid<M>() -> Computed<M, Uuid> {
    call(Function::RandomUuid, Vec::new())
}

/// A random float from 0 (included) to 1, another for each row.
pub fn random<M>() -> Computed<M, f64> {
    call(Function::Random, Vec::new())
}

/// π.
pub fn pi<M>() -> Computed<M, f64> {
    call(Function::Pi, Vec::new())
}

/// When the transaction began (PostgreSQL's `now()`): `Event::at().lt(func::now())`,
/// `Event::seen().set(func::now())`.
pub fn now<M>() -> Computed<M, DateTime<Utc>> {
    call(Function::Now, Vec::new())
}

/// The number of characters of a text.
pub fn length<M, T: Textual>(text: impl Expression<M, T>) -> Computed<M, T::Length> {
    call(Function::Length, vec![text.to_operand()])
}

/// `then` where `condition` holds: the first branch of a [`Case`], whose value has type
/// `T`; more branches follow with [`Case::when`].
pub fn case<M, T>(condition: Expr, then: impl ToOperand<M, T>) -> Case<M, T> {
    Case { branches: vec![(condition, then.to_operand())], _types: PhantomData }
}

/// A value chosen by the first of its conditions that holds for the row (SQL's `CASE`,
/// Django's `Case(When(…))`); see [`case`].
pub struct Case<M, T> {
    branches: Vec<(Expr, Operand)>,
    _types: PhantomData<fn() -> (M, T)>,
}

impl<M, T> Case<M, T> {
    /// Another branch, tried after the earlier ones.
    pub fn when(mut self, condition: Expr, then: impl ToOperand<M, T>) -> Self {
        self.branches.push((condition, then.to_operand()));
        self
    }

    /// The value, `otherwise` where no condition holds.
    pub fn otherwise(self, otherwise: impl ToOperand<M, T>) -> Computed<M, T> {
        Computed::new(Operand::Case { branches: self.branches, otherwise: Some(Box::new(otherwise.to_operand())) })
    }

    /// The value, `NULL` where no condition holds.
    pub fn end(self) -> Computed<M, Option<T>> {
        Computed::new(Operand::Case { branches: self.branches, otherwise: None })
    }
}

impl<M, T> std::fmt::Debug for Case<M, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case").field("branches", &self.branches).finish()
    }
}

/// Whether `query` has any row, asked for each row of the query the condition goes into
/// (Django's `Exists`): its conditions name that row's columns through
/// [`Column::outer`](crate::Column::outer).
///
/// ```ignore
/// let recent = Book::query().filter(Book::author_id().eq(Author::id().outer()) & Book::year().gte(2020));
/// let active = Author::query().filter(func::exists(recent)).all(&pool).await?;
/// ```
pub fn exists<N>(query: Query<N>) -> Expr {
    Expr::Exists { select: Box::new(query.into_select()), negated: false }
}

/// Whether `query` has no row, for each row (see [`exists`]).
pub fn not_exists<N>(query: Query<N>) -> Expr {
    Expr::Exists { select: Box::new(query.into_select()), negated: true }
}

/// The column `query` selects from its first row, for each row of the query it is read
/// with (`None` where it has none): Django's `Subquery(...values("title")[:1])`. Order
/// and limit it to say which row: `Book::query().filter(Book::author_id().eq(Author::id()
/// .outer())).order_by(Book::year().desc()).limit(1).select(Book::title())`.
pub fn first<M, N: Model, T: FromSqlOwned + Send>(query: Selected<N, Column<N, T>>) -> RowValue<M, Option<T>> {
    RowValue::new(Scalar::Operand(Operand::Subquery(Box::new(query.subquery()))))
}

/// A window function: computed for each row over the rows of its partition, in its order
/// (Django's `Window`). Say the partition and order, then read it with
/// [`row_value`](Window::row_value):
/// `func::rank().partition_by(Staff::dept()).order_by(Staff::salary().desc()).row_value()`.
pub struct Window<M, V> {
    function: WindowFunction,
    args: Vec<Operand>,
    partition_by: Vec<Operand>,
    order_by: Vec<Order>,
    _types: PhantomData<fn() -> (M, V)>,
}

impl<M, V> Window<M, V> {
    fn new(function: WindowFunction, args: Vec<Operand>) -> Self {
        Window { function, args, partition_by: Vec::new(), order_by: Vec::new(), _types: PhantomData }
    }

    /// Over the rows with the same `key` (called again, more keys).
    pub fn partition_by<T>(mut self, key: impl Expression<M, T>) -> Self {
        self.partition_by.push(key.to_operand());
        self
    }

    /// In `order` within the partition (called again, more terms).
    pub fn order_by(mut self, order: Order) -> Self {
        self.order_by.push(order);
        self
    }

    /// The value per row, to read with [`Query::annotate`](crate::Query::annotate) and
    /// sort by; not to filter by, as SQL computes windows after `WHERE` (Python's
    /// `filter()` by an annotation's name wraps the rows for it).
    pub fn row_value(self) -> RowValue<M, V> {
        let Window { function, args, partition_by, order_by, .. } = self;
        RowValue::new(Scalar::Operand(Operand::Window { function, args, partition_by, order_by }))
    }
}

impl<M, V> std::fmt::Debug for Window<M, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window").field("function", &self.function).field("args", &self.args).finish()
    }
}

/// The row's number in its partition, from 1.
pub fn row_number<M>() -> Window<M, i64> {
    Window::new(WindowFunction::RowNumber, Vec::new())
}

/// The row's rank in its partition, ties sharing one and leaving gaps.
pub fn rank<M>() -> Window<M, i64> {
    Window::new(WindowFunction::Rank, Vec::new())
}

/// The row's rank in its partition, ties sharing one, without gaps.
pub fn dense_rank<M>() -> Window<M, i64> {
    Window::new(WindowFunction::DenseRank, Vec::new())
}

/// The bucket (1 to `n`) of the row when its partition is split in `n`.
pub fn ntile<M>(n: i32) -> Window<M, i32> {
    Window::new(WindowFunction::Ntile, vec![Operand::Value(n.into())])
}

/// `value` of the row before in the partition (`None` for the first).
pub fn lag<M, T>(value: impl Expression<M, T>) -> Window<M, Option<T>> {
    Window::new(WindowFunction::Lag, vec![value.to_operand()])
}

/// `value` of the row after in the partition (`None` for the last).
pub fn lead<M, T>(value: impl Expression<M, T>) -> Window<M, Option<T>> {
    Window::new(WindowFunction::Lead, vec![value.to_operand()])
}

/// `value` of the partition's first row.
pub fn first_value<M, T>(value: impl Expression<M, T>) -> Window<M, T> {
    Window::new(WindowFunction::FirstValue, vec![value.to_operand()])
}

impl<V> agg::Of<V> {
    /// This aggregate over each row's partition instead of the whole group: a running
    /// total with an order (`agg::sum(Sale::amount()).over().order_by(Sale::at().asc())`).
    /// An aggregate with a filter counts every row of the partition: filter the query.
    pub fn over<M>(self) -> Window<M, V> {
        let Aggregate { function, value, .. } = self.0;
        Window::new(WindowFunction::Aggregate(function), value.into_iter().collect())
    }
}
