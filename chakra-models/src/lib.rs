//! Models and the query builder: a Rust struct mapped to a table (`#[derive(Model)]`), typed
//! columns that build conditions, and [`Query`], which compiles the query AST through a
//! [`Dialect`] into a request for the layer stack.
//!
//! The AST ([`ast`]) and the run-time lookups ([`lookup`]) are public so other front-ends —
//! the Python API — build the same queries by field and lookup name.

mod annotate;
pub mod ast;
mod column;
pub mod compile;
pub mod ddl;
pub mod dialect;
pub mod func;
pub mod lookup;
mod model;
mod query;
mod related;
#[doc(hidden)]
pub mod text_enum;
pub mod wire;

pub use annotate::{Annotated, Annotations, Calendar, Clock, Json, JsonPath, RowValue, Through, Timestamp};
pub use ast::{
    Aggregate, AggregateFn, Annotation, ArithOp, Assignment, Cast, Combined, DatePart, Expr, Function, Gives, Hop,
    Join, LockStrength, LockWait, Nulls, Operand, Order, Reached, RowLock, Scalar, SetOp, Takes, TruncUnit,
    WindowFunction,
};
pub use column::{agg, Column, Computed, Matches, Numeric, Ordered, Outer, ToOperand};
pub use ddl::{ForeignKey, OnDelete};
pub use dialect::{BulkLoad, Dialect, Postgres};
pub use model::{decode, encode_array, FieldInfo, Model, ModelSql, OnConflict, SqlType, BULK_LOAD_MIN_ROWS};
pub use query::{Aggregates, Combination, DecodedStream, GroupKey, Grouped, ModelStream, Query, Selected, Selection};
pub use related::{Joined, JoinedModels};
