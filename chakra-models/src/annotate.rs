//! Values computed per row from a relation's rows — how many books each author has, the
//! pages they come to — as correlated subqueries of the same statement: to read with each
//! row ([`Query::annotate`]), or to filter by (`filter(agg::count().related(…).gt(1))`).

use std::marker::PhantomData;

use chakra_layers::Queryable;
use chakra_service::{Error, FromSqlOwned, Result, Row, Value};

use crate::ast::{Annotation, CompareOp, Expr, Ident, Order, Scalar};
use crate::column::{agg, Column, Matches};
use crate::model::Model;
use crate::query::{DecodedStream, Query};

/// An aggregate of the rows related to each row of `M`, decoding as `V`: built by
/// [`agg::Of::related`].
pub struct Related<M, V> {
    scalar: Scalar,
    _types: PhantomData<fn() -> (M, V)>,
}

impl<M, V> Clone for Related<M, V> {
    fn clone(&self) -> Self {
        Related { scalar: self.scalar.clone(), _types: PhantomData }
    }
}

impl<M, V> std::fmt::Debug for Related<M, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Related").field(&self.scalar).finish()
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
    ) -> Related<M, V> {
        let scalar = Scalar::Related {
            aggregate: self.0,
            table: N::TABLE.into(),
            key: key.name().into(),
            outer_table: M::TABLE.into(),
            outer: outer.name().into(),
        };
        Related { scalar, _types: PhantomData }
    }
}

impl<M, V> Related<M, V> {
    fn compare(self, op: CompareOp, value: impl Into<Value>) -> Expr {
        Expr::ScalarCompare { scalar: Box::new(self.scalar), op, value: value.into() }
    }

    crate::column::value_comparisons!();
}

/// What [`Query::annotate`] computes for each row of `M`: a [`Related`], or a tuple of
/// up to six.
pub trait Annotations<M> {
    /// What they decode to: the value's type, or a tuple of them.
    type Output;
    /// The values, in order (never empty).
    fn into_scalars(self) -> Vec<Scalar>;
    /// Decodes them from `row`, the first at column `first`.
    fn decode(row: &Row, first: usize) -> Result<Self::Output>;
}

impl<M, V: FromSqlOwned> Annotations<M> for Related<M, V> {
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
        impl<M, $($t: FromSqlOwned),+> Annotations<M> for ($(Related<M, $t>,)+) {
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
            scalars.into_iter().enumerate().map(|(i, value)| Annotation { alias: alias(i), value }).collect();
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
