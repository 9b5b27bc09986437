//! The `Model` trait — a Rust struct mapped to a table — and the schema facts its derive
//! records about each field.

use std::borrow::Cow;
use std::future::Future;
use std::marker::PhantomData;

use chakra_layers::Queryable;
use chakra_service::chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chakra_service::rust_decimal::Decimal;
use chakra_service::uuid::Uuid;
use chakra_service::{
    copy_pipe, CopyRows, Encoded, Error, ErrorKind, FromSql, FromSqlOwned, Labels, Mode, PointLookup, Request, Result,
    Row, SharedStr, Statement, ToSql, Type, Value,
};

use crate::ast::{Assignment, BulkUpdate, CompareOp, Delete, Expr, Ident, Insert, Select, Update, Upsert};
use crate::column::Column;
use crate::compile;
use crate::ddl::{self, ForeignKey, OnDelete};
use crate::dialect::{Dialect, Postgres};
use crate::query::Query;
use crate::wire;

/// What the schema says about one field: enough to validate run-time lookups, to build
/// typed bulk inserts, and to create its column ([`ddl`](crate::ddl)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldInfo {
    /// The field's name, which is also its column's name unless `column` differs.
    pub name: Cow<'static, str>,
    pub column: Cow<'static, str>,
    /// The PostgreSQL type name (`int8`, `text`, `timestamptz`, …).
    pub sql_type: Cow<'static, str>,
    pub nullable: bool,
    pub primary_key: bool,
    /// The database generates the value (an identity or serial key): left out of inserts
    /// and read back with `RETURNING`.
    pub generated: bool,
    /// The column's type in `CREATE TABLE`, when not `sql_type` (`varchar(100)`).
    pub column_type: Option<Cow<'static, str>>,
    /// A `UNIQUE` column.
    pub unique: bool,
    /// A column with an index of its own.
    pub index: bool,
    /// A foreign key: the column it references, and what deleting that row does.
    pub references: Option<ForeignKey>,
    /// The column's `DEFAULT`, as SQL (`now()`, `0`, `'draft'`): what the database
    /// stores when an insert leaves the column out.
    pub default: Option<Cow<'static, str>>,
    /// A condition on the column's values, as SQL (`"status" IN ('draft', 'live')`):
    /// its `CHECK` constraint.
    pub check: Option<Cow<'static, str>>,
}

impl FieldInfo {
    /// Field `name` stored in column `column`.
    pub const fn new(name: &'static str, column: &'static str, sql_type: &'static str, nullable: bool) -> Self {
        FieldInfo {
            name: Cow::Borrowed(name),
            column: Cow::Borrowed(column),
            sql_type: Cow::Borrowed(sql_type),
            nullable,
            primary_key: false,
            generated: false,
            column_type: None,
            unique: false,
            index: false,
            references: None,
            default: None,
            check: None,
        }
    }

    pub const fn primary_key(mut self, generated: bool) -> Self {
        self.primary_key = true;
        self.generated = generated;
        self
    }

    /// The column is `UNIQUE` (these four are what `create_table` makes of a field).
    pub const fn unique(mut self) -> Self {
        self.unique = true;
        self
    }

    /// The column gets an index of its own.
    pub const fn indexed(mut self) -> Self {
        self.index = true;
        self
    }

    /// The column's type in `CREATE TABLE`, instead of `sql_type`.
    pub const fn column_type(mut self, column_type: &'static str) -> Self {
        // A const fn cannot drop the value it replaces; what `new` left there is `None`,
        // and forgetting it leaks nothing.
        std::mem::forget(self.column_type.replace(Cow::Borrowed(column_type)));
        self
    }

    /// The column's `DEFAULT` in `CREATE TABLE`, as SQL (`"now()"`).
    pub const fn db_default(mut self, sql: &'static str) -> Self {
        std::mem::forget(self.default.replace(Cow::Borrowed(sql)));
        self
    }

    /// A `CHECK` constraint on the column, as SQL (`"price >= 0"`).
    pub const fn check(mut self, sql: &'static str) -> Self {
        std::mem::forget(self.check.replace(Cow::Borrowed(sql)));
        self
    }

    /// A foreign key to `table`'s `column`.
    pub const fn references(mut self, table: &'static str, column: &'static str, on_delete: OnDelete) -> Self {
        let key = ForeignKey { table: Cow::Borrowed(table), column: Cow::Borrowed(column), on_delete };
        std::mem::forget(self.references.replace(key));
        self
    }
}

/// What a bulk insert does with rows a unique constraint refuses, for
/// [`Model::upsert_all`]: skip them ([`ignore`](Self::ignore)), or, for rows repeating
/// the columns of a unique constraint ([`on`](Self::on)), update the existing row's
/// columns named by [`update`](Self::update) with the new row's values (SQL's
/// `ON CONFLICT … DO UPDATE SET column = excluded.column`; Django's
/// `bulk_create(update_conflicts=True)`).
pub struct OnConflict<M> {
    upsert: Upsert,
    _model: PhantomData<fn() -> M>,
}

impl<M> OnConflict<M> {
    /// Rows any unique constraint refuses are skipped (`DO NOTHING`).
    pub fn ignore() -> Self {
        OnConflict { upsert: Upsert { conflict_target: Vec::new(), update: Vec::new() }, _model: PhantomData }
    }

    /// Rows repeating the value of `column` (of a unique constraint; called again, the
    /// constraint's further columns) conflict; skipped until [`update`](Self::update)
    /// names what to update.
    pub fn on<T>(column: Column<M, T>) -> Self {
        Self::ignore().and(column)
    }

    /// One more column of the conflicting unique constraint.
    pub fn and<T>(mut self, column: Column<M, T>) -> Self {
        self.upsert.conflict_target.push(column.name().into());
        self
    }

    /// The existing row's `column` takes the new row's value (called again, more
    /// columns).
    pub fn update<T>(mut self, column: Column<M, T>) -> Self {
        self.upsert.update.push(column.name().into());
        self
    }
}

impl<M> std::fmt::Debug for OnConflict<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("OnConflict").field(&self.upsert).finish()
    }
}

/// Rust types a model field may have, with the PostgreSQL type they map to.
///
/// A field of any other type is a compile error naming this trait at the field's type.
pub trait SqlType: Into<Value> + Clone + ToSql + Sync {
    const SQL_TYPE: &'static str;
    /// The array type a column of it travels as in a bulk insert (`text[]`, …).
    const ARRAY_TYPE: Type;
    const NULLABLE: bool = false;
    /// What a column is read as before it becomes the field: the type itself, or one of
    /// the shorter paths in [`wire`](crate::wire).
    type Wire: FromSqlOwned;

    /// The field's value from what was read.
    fn from_wire(wire: Self::Wire) -> Self;
}

macro_rules! sql_types {
    ($($t:ty => $name:literal $array:ident $(via $wire:ident)?),* $(,)?) => {$(
        impl SqlType for $t {
            const SQL_TYPE: &'static str = $name;
            const ARRAY_TYPE: Type = Type::$array;
            type Wire = sql_types!(@wire $t $(, $wire)?);

            fn from_wire(wire: Self::Wire) -> Self {
                sql_types!(@from wire $(, $wire)?)
            }
        }
    )*};
    (@wire $t:ty) => { $t };
    (@wire $t:ty, $wire:ident) => { wire::$wire };
    (@from $value:ident) => { $value };
    (@from $value:ident, $wire:ident) => { $value.0 };
}

sql_types! {
    bool => "bool" BOOL_ARRAY, i16 => "int2" INT2_ARRAY, i32 => "int4" INT4_ARRAY, i64 => "int8" INT8_ARRAY,
    f32 => "float4" FLOAT4_ARRAY, f64 => "float8" FLOAT8_ARRAY, String => "text" TEXT_ARRAY via Text,
    Vec<u8> => "bytea" BYTEA_ARRAY, Uuid => "uuid" UUID_ARRAY, chakra_service::serde_json::Value => "jsonb" JSONB_ARRAY,
    NaiveDate => "date" DATE_ARRAY, NaiveTime => "time" TIME_ARRAY,
    NaiveDateTime => "timestamp" TIMESTAMP_ARRAY via LocalTimestamp,
    DateTime<Utc> => "timestamptz" TIMESTAMPTZ_ARRAY via Timestamptz, Decimal => "numeric" NUMERIC_ARRAY,
}

impl<T: SqlType> SqlType for Option<T> {
    const SQL_TYPE: &'static str = T::SQL_TYPE;
    const ARRAY_TYPE: Type = T::ARRAY_TYPE;
    const NULLABLE: bool = true;
    type Wire = Option<T::Wire>;

    fn from_wire(wire: Option<T::Wire>) -> Self {
        wire.map(T::from_wire)
    }
}

/// One field of many rows as a single array parameter, encoded straight from the borrowed
/// values (what the derive's [`Model::column_array`] calls); `model` and `field` name the
/// culprit if a value cannot be sent.
pub fn encode_array<T: SqlType>(values: Vec<&T>, model: &str, field: &str) -> Result<Value> {
    // An array's header, then a length and (say) 12 bytes per element: fixed-width types
    // fit at once, text grows the buffer a time or two instead of a dozen.
    let size_hint = 24 + values.len() * 16;
    Encoded::new(&values, T::ARRAY_TYPE, size_hint)
        .map(Value::Encoded)
        .map_err(|e| Error::new(ErrorKind::Decode, format!("cannot send `{model}.{field}`: {e}")))
}

/// A struct mapped to a table. Derive it with `#[derive(Model)]`; the provided methods
/// (`query`, `get`, `insert`, …) are the model's API.
pub trait Model: Sized + Send + Sync + Unpin + 'static {
    /// The table's name.
    const TABLE: &'static str;
    /// Every field, in declaration order (the order of [`to_values`](Self::to_values) and
    /// of the columns [`from_row`](Self::from_row) reads).
    const FIELDS: &'static [FieldInfo];
    /// Index of the primary key in [`FIELDS`](Self::FIELDS).
    const PRIMARY_KEY: usize;

    /// Decodes a row whose columns are [`FIELDS`](Self::FIELDS), in order.
    #[inline]
    fn from_row(row: &Row) -> Result<Self> {
        Self::from_row_at(row, 0)
    }

    /// Decodes the columns of a longer row, from `at` on, that are
    /// [`FIELDS`](Self::FIELDS), in order (a joined row's).
    fn from_row_at(row: &Row, at: usize) -> Result<Self>;

    /// Every field's value, in [`FIELDS`](Self::FIELDS) order.
    fn to_values(&self) -> Vec<Value>;

    /// The primary key's value.
    fn primary_key(&self) -> Value;

    /// Field `field`'s value (an index into [`FIELDS`](Self::FIELDS)). The derive reads
    /// just that field; this default copies every field's value.
    fn field_value(&self, field: usize) -> Value {
        self.to_values().swap_remove(field)
    }

    /// Field `field` (an index into [`FIELDS`](Self::FIELDS)) of every row, as one array
    /// parameter for a bulk insert. The derive encodes it straight from the borrowed
    /// fields; this default copies each row's values.
    fn column_array(rows: &[Self], field: usize) -> Result<Value> {
        Ok(Value::Array(rows.iter().map(|row| row.to_values().swap_remove(field)).collect()))
    }

    /// The model's SQL, compiled once (the derive keeps it in a static).
    fn statements() -> &'static ModelSql;

    /// A query over every row, to refine with `filter`, `order_by`, …
    fn query() -> Query<Self> {
        Query::new()
    }

    /// Creates the table, with the indexes its fields ask for, unless it exists: for an
    /// application's first start, its tests, its examples. Run it in a transaction to
    /// have all of it or nothing.
    fn create_table<Q: Queryable>(db: &Q) -> impl Future<Output = Result<()>> + Send {
        let statements = ddl::create_table(&Postgres, Self::TABLE, Self::FIELDS);
        async move {
            for statement in statements {
                db.run(Request::new(statement, Mode::Execute)).await?;
            }
            Ok(())
        }
    }

    /// Drops the table if it exists.
    fn drop_table<Q: Queryable>(db: &Q) -> impl Future<Output = Result<()>> + Send {
        let request = Request::new(ddl::drop_table(&Postgres, Self::TABLE), Mode::Execute);
        async move { db.run(request).await.map(|_| ()) }
    }

    /// The row with primary key `key`, or `NotFound`. Concurrent `get`s on a pool are
    /// merged into one query by the batch layer.
    fn get<Q: Queryable>(db: &Q, key: impl Into<Value>) -> impl Future<Output = Result<Self>> + Send {
        let sql = Self::statements();
        let key = key.into();
        let request = Request::labelled(
            Statement::new(SharedStr::from_static(&sql.get), vec![key.clone()]),
            Mode::One,
            sql.labels("SELECT"),
        )
        .point_lookup(PointLookup {
            batch_sql: SharedStr::from_static(&sql.get_many),
            key_column: Self::PRIMARY_KEY,
            key,
        });
        async move {
            let row = db.run(request).await.map_err(|e| not_found::<Self>(e))?.into_row()?;
            Self::from_row(&row)
        }
    }

    /// Inserts this row; generated keys and defaults are read back into it.
    fn insert<Q: Queryable>(&mut self, db: &Q) -> impl Future<Output = Result<()>> + Send {
        let sql = Self::statements();
        let values = insert_values::<Self>(self.to_values());
        async move {
            let request = Request::labelled(
                Statement::new(SharedStr::from_static(&sql.insert), values),
                Mode::One,
                sql.labels("INSERT"),
            );
            let row = db.run(request).await?.into_row()?;
            // RETURNING every column: generated keys and column defaults come back too.
            *self = Self::from_row(&row)?;
            Ok(())
        }
    }

    /// Writes every field of this row (by primary key); `NotFound` if the row is gone.
    fn update<Q: Queryable>(&self, db: &Q) -> impl Future<Output = Result<()>> + Send {
        let sql = Self::statements();
        let mut values = self.to_values();
        let key = values.remove(Self::PRIMARY_KEY);
        values.push(key);
        async move {
            let request = Request::labelled(
                Statement::new(SharedStr::from_static(&sql.update), values),
                Mode::Execute,
                sql.labels("UPDATE"),
            );
            match db.run(request).await?.rows_affected()? {
                0 => Err(Error::new(
                    ErrorKind::NotFound,
                    format!("no row in `{}` to update with that primary key", Self::TABLE),
                )),
                _ => Ok(()),
            }
        }
    }

    /// Deletes this row (by primary key); `NotFound` if it was already gone.
    fn delete<Q: Queryable>(&self, db: &Q) -> impl Future<Output = Result<()>> + Send {
        let sql = Self::statements();
        let request = Request::labelled(
            Statement::new(SharedStr::from_static(&sql.delete), vec![self.primary_key()]),
            Mode::Execute,
            sql.labels("DELETE"),
        );
        async move {
            match db.run(request).await?.rows_affected()? {
                0 => Err(Error::new(
                    ErrorKind::NotFound,
                    format!("no row in `{}` to delete with that primary key", Self::TABLE),
                )),
                _ => Ok(()),
            }
        }
    }

    /// Inserts the row, or updates every field if its primary key exists (an upsert). A
    /// generated key that is still unset (zero) always inserts.
    fn save<Q: Queryable>(&mut self, db: &Q) -> impl Future<Output = Result<()>> + Send {
        let pk = &Self::FIELDS[Self::PRIMARY_KEY];
        let unset = pk.generated && matches!(self.primary_key(), Value::I16(0) | Value::I32(0) | Value::I64(0));
        async move {
            if unset {
                return self.insert(db).await;
            }
            let sql = Self::statements();
            let request = Request::labelled(
                Statement::new(SharedStr::from_static(&sql.upsert), self.to_values()),
                Mode::Execute,
                sql.labels("INSERT"),
            );
            db.run(request).await?.rows_affected().map(drop)
        }
    }

    /// Inserts many rows in one statement (one array per column), returning them as
    /// stored, generated keys and defaults included.
    fn insert_all<Q: Queryable>(db: &Q, rows: Vec<Self>) -> impl Future<Output = Result<Vec<Self>>> + Send {
        let insert = (!rows.is_empty()).then(|| bulk_insert::<Self>(&rows, true));
        async move {
            let Some(insert) = insert.transpose()? else { return Ok(Vec::new()) };
            let statement = compile::insert(&Postgres, &insert);
            let request = Request::labelled(statement, Mode::All, Self::statements().labels("INSERT"));
            db.run(request).await?.into_rows()?.iter().map(Self::from_row).collect()
        }
    }

    /// Inserts many rows in one statement, as [`insert_all`](Self::insert_all), doing
    /// what `on_conflict` says with those a unique constraint refuses (`ON CONFLICT`):
    /// skip them, or update the existing row. Returns the rows written as stored: the
    /// inserted and the updated ones, not the skipped.
    ///
    /// ```ignore
    /// let stored = User::upsert_all(&pool, rows, OnConflict::on(User::email()).update(User::name())).await?;
    /// ```
    fn upsert_all<Q: Queryable>(
        db: &Q,
        rows: Vec<Self>,
        on_conflict: OnConflict<Self>,
    ) -> impl Future<Output = Result<Vec<Self>>> + Send {
        let insert = (!rows.is_empty()).then(|| bulk_insert::<Self>(&rows, true));
        async move {
            let Some(mut insert) = insert.transpose()? else { return Ok(Vec::new()) };
            insert.upsert = Some(on_conflict.upsert);
            let statement = compile::insert(&Postgres, &insert);
            let request = Request::labelled(statement, Mode::All, Self::statements().labels("INSERT"));
            db.run(request).await?.into_rows()?.iter().map(Self::from_row).collect()
        }
    }

    /// Writes every field of each of `rows` to the row with its primary key, in one
    /// statement whatever their number (the rows travel as one array per column), and
    /// returns how many rows changed; rows whose key is gone are skipped. A key given
    /// twice takes its last row's values. Every row is written, or none.
    fn update_many<Q: Queryable>(db: &Q, rows: &[Self]) -> impl Future<Output = Result<u64>> + Send {
        async move {
            let set = (0..Self::FIELDS.len()).filter(|&i| i != Self::PRIMARY_KEY);
            let fields: Vec<usize> = std::iter::once(Self::PRIMARY_KEY).chain(set).collect();
            if rows.is_empty() || fields.len() == 1 {
                return Ok(0);
            }
            let update = BulkUpdate {
                table: Self::TABLE.into(),
                columns: fields.iter().map(|&i| Self::FIELDS[i].column.clone()).collect(),
                column_types: fields.iter().map(|&i| Self::FIELDS[i].sql_type.clone()).collect(),
                arrays: fields.iter().map(|&i| Self::column_array(rows, i)).collect::<Result<_>>()?,
            };
            let statement = compile::bulk_update(&Postgres, &update);
            let request = Request::labelled(statement, Mode::Execute, Self::statements().labels("UPDATE"));
            db.run(request).await?.rows_affected()
        }
    }

    /// Inserts many rows and returns how many were written. Nothing is read back, which
    /// makes it the fastest way in; use [`insert_all`](Self::insert_all) to get generated
    /// keys and defaults.
    ///
    /// From [`BULK_LOAD_MIN_ROWS`] rows on, when the table takes it exactly as it would
    /// the insert (a plain table whose columns have the fields' types), the rows go in by
    /// PostgreSQL's binary `COPY`, a third less time on 10k rows; that costs one catalog
    /// query first. The `COPY` goes in pieces of 1,000 rows, each encoded while the server
    /// writes the one before, so no more than two pieces are ever held encoded. Otherwise
    /// the rows go as one statement with one array per column. Either way one statement
    /// writes them: every row is written, or none.
    fn insert_many<Q: Queryable>(db: &Q, rows: &[Self]) -> impl Future<Output = Result<u64>> + Send {
        async move {
            if rows.is_empty() {
                return Ok(0);
            }
            let labels = |operation| Self::statements().labels(operation);
            if rows.len() >= BULK_LOAD_MIN_ROWS {
                // The first piece's encoding gives the column types the table must have.
                let (first, rest) = rows.split_at(COPY_PIECE_ROWS.min(rows.len()));
                let first = copy_piece(first)?;
                if let Some(load) = Postgres.bulk_load(&insert_shape::<Self>(false), first.column_types()) {
                    let check = Request::labelled(load.check, Mode::Optional, labels("SELECT"));
                    let takes_it = match db.run(check).await?.into_optional()? {
                        Some(row) => row.try_get::<_, Option<bool>>(0)?.unwrap_or(false),
                        None => false,
                    };
                    if takes_it {
                        return copy_in_pieces(
                            db,
                            Request::labelled(Statement::new(load.load, vec![]), Mode::CopyIn, labels("COPY")),
                            first,
                            rest,
                        )
                        .await;
                    }
                }
            }
            let statement = compile::insert(&Postgres, &bulk_insert::<Self>(rows, false)?);
            db.run(Request::labelled(statement, Mode::Execute, labels("INSERT"))).await?.rows_affected()
        }
    }
}

/// How many rows [`Model::insert_many`] needs before it loads them by `COPY`: below it,
/// the catalog query `COPY` needs first costs more than `COPY` saves.
pub const BULK_LOAD_MIN_ROWS: usize = 1000;

/// Gives a `NotFound` the model's name.
pub(crate) fn not_found<M: Model>(e: Error) -> Error {
    match e.kind() {
        ErrorKind::NotFound => Error::new(ErrorKind::NotFound, format!("no `{}` row matches", M::TABLE)),
        ErrorKind::MultipleFound => {
            Error::new(ErrorKind::MultipleFound, format!("more than one `{}` row matches", M::TABLE))
        }
        _ => e,
    }
}

/// The values an insert sends: every field but a generated key.
fn insert_values<M: Model>(mut values: Vec<Value>) -> Vec<Value> {
    if M::FIELDS[M::PRIMARY_KEY].generated {
        values.remove(M::PRIMARY_KEY);
    }
    values
}

/// The fields an insert sends (every one but a generated key), with their indexes.
fn inserted_fields<M: Model>() -> impl Iterator<Item = (usize, &'static FieldInfo)> {
    M::FIELDS.iter().enumerate().filter(|(i, f)| !(f.generated && *i == M::PRIMARY_KEY))
}

pub(crate) fn columns<M: Model>() -> Vec<Ident> {
    M::FIELDS.iter().map(|f| f.column.clone()).collect()
}

/// One `INSERT … SELECT * FROM UNNEST(…)` for `rows`, one array parameter per column.
fn bulk_insert<M: Model>(rows: &[M], returning: bool) -> Result<Insert> {
    Ok(Insert { arrays: column_arrays(rows)?, ..insert_shape::<M>(returning) })
}

/// Every inserted field of `rows`, one array per field.
fn column_arrays<M: Model>(rows: &[M]) -> Result<Vec<Value>> {
    inserted_fields::<M>().map(|(index, _)| M::column_array(rows, index)).collect()
}

/// A bulk insert's table and columns (every field but a generated key), without rows.
fn insert_shape<M: Model>(returning: bool) -> Insert {
    let fields = || inserted_fields::<M>().map(|(_, field)| field);
    Insert {
        table: M::TABLE.into(),
        columns: fields().map(|field| field.column.clone()).collect(),
        column_types: fields().map(|field| field.sql_type.clone()).collect(),
        rows: Vec::new(),
        arrays: Vec::new(),
        returning: if returning { columns::<M>() } else { Vec::new() },
        upsert: None,
    }
}

/// Rows a bulk load sends at a time: the server writes each piece while the next is
/// encoded (about 60 KB of a five-column table's rows).
const COPY_PIECE_ROWS: usize = 1000;

/// `rows` as one piece of a binary `COPY` (no header or trailer).
fn copy_piece<M: Model>(rows: &[M]) -> Result<CopyRows> {
    CopyRows::piece_from_columns(&column_arrays(rows)?)
}

/// [`copy_piece`]'s bytes. (A function, not a closure: the future holding the iterator
/// must be `Send` for every lifetime of the rows it borrows.)
fn copy_piece_bytes<M: Model>(rows: &[M]) -> Result<bytes::Bytes> {
    copy_piece(rows).map(|piece| piece.bytes())
}

/// Runs `load` (a `COPY … FROM STDIN`) with `first`, already encoded, then the `rest` of
/// the rows, each piece encoded while the server writes the one before. An error encoding
/// a piece aborts the `COPY`: the table gets no row of it.
async fn copy_in_pieces<M: Model, Q: Queryable>(db: &Q, load: Request, first: CopyRows, rest: &[M]) -> Result<u64> {
    let (writer, source) = copy_pipe();
    let rest = rest.chunks(COPY_PIECE_ROWS).map(copy_piece_bytes::<M>);
    let make = writer.send_rows(std::iter::once(Ok(first.bytes())).chain(rest));
    let (copied, ()) = futures::join!(db.run(load.copy_from(source)), make);
    copied?.rows_affected()
}

/// A model's fixed statements, compiled once.
///
/// Each model keeps its `ModelSql` in a `static` (see [`Model::statements`]), so requests
/// carry its text as [`SharedStr::Static`], which no request counts references to.
#[derive(Debug)]
pub struct ModelSql {
    pub table: Box<str>,
    /// `SELECT <fields> FROM <table> WHERE <pk> = $1`.
    pub get: Box<str>,
    /// The same for many keys: `… WHERE <pk> = ANY($1)`.
    pub get_many: Box<str>,
    /// `INSERT … VALUES (…) RETURNING <fields>`.
    pub insert: Box<str>,
    /// `UPDATE … SET <every other field> WHERE <pk> = $n`.
    pub update: Box<str>,
    /// `DELETE … WHERE <pk> = $1`.
    pub delete: Box<str>,
    /// `INSERT … ON CONFLICT (<pk>) DO UPDATE SET …`, every field sent.
    pub upsert: Box<str>,
}

impl ModelSql {
    /// Compiles `M`'s statements with `dialect`.
    pub fn new<M: Model>(dialect: &dyn Dialect) -> ModelSql {
        // Only the SQL text is kept: the values below stand in for parameters (non-NULL
        // where NULL would render `IS NULL`) and are never sent.
        let pk = &M::FIELDS[M::PRIMARY_KEY];
        let by_key =
            |value: Value| Some(Expr::Compare { column: pk.column.clone(), op: CompareOp::Eq, value: value.into() });
        let mut get = Select::new(M::TABLE, columns::<M>());
        get.filter = by_key(Value::I64(0));
        let mut get_many = Select::new(M::TABLE, columns::<M>());
        get_many.filter = Some(Expr::In { column: pk.column.clone(), values: vec![Value::I64(0)], negated: false });
        let inserted: Vec<&FieldInfo> = inserted_fields::<M>().map(|(_, f)| f).collect();
        let insert = Insert {
            table: M::TABLE.into(),
            columns: inserted.iter().map(|f| f.column.clone()).collect(),
            column_types: Vec::new(),
            rows: vec![inserted.iter().map(|_| Value::Null).collect()],
            arrays: Vec::new(),
            returning: columns::<M>(),
            upsert: None,
        };
        let others = M::FIELDS.iter().enumerate().filter(|(i, _)| *i != M::PRIMARY_KEY);
        let update = Update {
            table: M::TABLE.into(),
            set: others
                .clone()
                .map(|(_, f)| Assignment { column: f.column.clone(), value: Value::Null.into() })
                .collect(),
            filter: by_key(Value::I64(0)),
            returning: Vec::new(),
        };
        let delete = Delete { table: M::TABLE.into(), filter: by_key(Value::I64(0)), returning: Vec::new() };
        let upsert = Insert {
            table: M::TABLE.into(),
            columns: columns::<M>(),
            column_types: Vec::new(),
            rows: vec![M::FIELDS.iter().map(|_| Value::Null).collect()],
            arrays: Vec::new(),
            returning: Vec::new(),
            upsert: Some(Upsert {
                conflict_target: vec![pk.column.clone()],
                update: others.map(|(_, f)| f.column.clone()).collect(),
            }),
        };
        let text = |statement: Statement| Box::<str>::from(statement.sql.as_str());
        ModelSql {
            table: M::TABLE.into(),
            get: text(compile::select(dialect, &get)),
            get_many: text(compile::select(dialect, &get_many)),
            insert: text(compile::insert(dialect, &insert)),
            update: text(compile::update(dialect, &update)),
            delete: text(compile::delete(dialect, &delete)),
            upsert: text(compile::insert(dialect, &upsert)),
        }
    }

    /// Labels for an operation on the model's table.
    pub fn labels(&'static self, operation: &'static str) -> Labels {
        Labels::new(operation, Some(SharedStr::from_static(&self.table)))
    }
}

/// Decodes column `index` of `row` into a field, naming the field on failure.
pub fn decode<T: SqlType>(row: &Row, index: usize, model: &str, field: &str) -> Result<T> {
    match row.try_get::<usize, T::Wire>(index) {
        Ok(wire) => Ok(T::from_wire(wire)),
        Err(e) => Err(decode_error::<T, _>(row, index, model, field, e)),
    }
}

/// Why column `index` could not become `model.field`. A column of another type is told
/// in the field's own type, not the one it is read through.
#[cold]
fn decode_error<T: SqlType, E>(row: &Row, index: usize, model: &str, field: &str, e: E) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    let message = match row.columns().get(index).map(|c| c.type_()) {
        Some(ty) if !T::Wire::accepts(ty) => format!(
            "cannot read `{model}.{field}`: its column is `{ty}`, which a field of type `{}` cannot hold",
            std::any::type_name::<T>()
        ),
        // What the type's decoder said, which the driver's own message leaves out.
        _ => match std::error::Error::source(&e) {
            Some(cause) => format!("cannot read `{model}.{field}`: {e}: {cause}"),
            None => format!("cannot read `{model}.{field}`: {e}"),
        },
    };
    Error::new(ErrorKind::Decode, message).with_source(e)
}
