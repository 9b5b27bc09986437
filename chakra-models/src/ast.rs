//! The query AST: what a query *means*, with no SQL in it. Rust models and the Python
//! front-end both build these nodes; a [`Dialect`](crate::Dialect) renders them.

use std::borrow::Cow;

use chakra_service::Value;

/// A column or table name as written in the schema; quoted by the dialect, never by hand.
pub type Ident = Cow<'static, str>;

/// Comparison operators between a column and a value or another column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl CompareOp {
    /// The operator between its operands, spaced.
    pub fn sql(self) -> &'static str {
        match self {
            CompareOp::Eq => " = ",
            CompareOp::Ne => " <> ",
            CompareOp::Gt => " > ",
            CompareOp::Gte => " >= ",
            CompareOp::Lt => " < ",
            CompareOp::Lte => " <= ",
        }
    }
}

/// Which part of a text a pattern lookup matches; user text is escaped, so `%`, `_` and
/// `\` in it match themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextMatch {
    Exact,
    StartsWith,
    EndsWith,
    Contains,
}

/// A boolean condition on a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `column <op> value`, where the value may be another column of the row or
    /// arithmetic on its columns (`balance < limit * 2`); comparing with a `NULL` value
    /// means `IS [NOT] NULL` (`Eq`/`Ne`), while a column that is `NULL` compares unknown,
    /// as in SQL.
    Compare {
        column: Ident,
        op: CompareOp,
        value: Operand,
    },
    /// `column` is one of `values` (`false` for an empty list).
    In {
        column: Ident,
        values: Vec<Value>,
        negated: bool,
    },
    /// `column [NOT] IN (subquery)`: among the values the subquery selects, one column
    /// of another query sent within the same statement. Negated, a `NULL` among those
    /// values makes the condition unknown for every row, as in SQL.
    InSelect {
        column: Ident,
        select: Box<Select>,
        negated: bool,
    },
    /// `column IS [NOT] NULL`.
    IsNull {
        column: Ident,
        negated: bool,
    },
    /// `column [I]LIKE pattern`: either a raw pattern (`like`, `ilike`, wildcards are the
    /// caller's) or user text matched literally at a position.
    Like {
        column: Ident,
        pattern: Pattern,
        case_insensitive: bool,
    },
    /// `aggregate <op> value`: a condition on a group of a grouped query (`HAVING
    /// count(*) > 5`); comparing with a `NULL` value means `IS [NOT] NULL`.
    AggregateCompare {
        aggregate: Aggregate,
        op: CompareOp,
        value: Value,
    },
    /// `scalar <op> value`: a condition on a value computed per row, such as how many
    /// books an author has; comparing with a `NULL` value means `IS [NOT] NULL`.
    ScalarCompare {
        scalar: Box<Scalar>,
        op: CompareOp,
        value: Operand,
    },
    /// `column BETWEEN low AND high`.
    Between {
        column: Ident,
        low: Value,
        high: Value,
    },
    And(Vec<Expr>),
    Or(Vec<Expr>),
    /// SQL `NOT`: three-valued, so rows where the inner condition is unknown (`NULL`)
    /// are excluded too.
    Not(Box<Expr>),
    /// The inner condition is not true — false *or unknown* — the way Django's `exclude`
    /// keeps rows whose column is `NULL`.
    NotTrue(Box<Expr>),
    /// A constant.
    Literal(bool),
    /// `[NOT] EXISTS (…)`: whether another query has any row. Its conditions may name
    /// the row of the query it is in ([`Operand::Outer`], Django's `OuterRef`), which
    /// makes it a correlated subquery asked once per row: does this author have a book
    /// from this year?
    Exists {
        select: Box<Select>,
        negated: bool,
    },
    /// A condition on a `jsonb` column, or on the value at `path` within it (`data #>
    /// '{owner,name}'`): Django's JSON lookups and key transforms.
    Json {
        column: Ident,
        path: Vec<String>,
        test: JsonTest,
        value: Value,
    },
}

/// What an [`Expr::Json`] asks of the JSON value, with its `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonTest {
    /// Compared as JSON (a JSON value): equal, or ordered (numbers by value, text by text).
    Compare(CompareOp),
    /// An object with this key (a text value).
    HasKey,
    /// An object with all of these keys (a text array).
    HasKeys,
    /// An object with any of these keys (a text array).
    HasAnyKeys,
    /// Holding this JSON value within it (`@>`).
    Contains,
    /// Held within this JSON value (`<@`).
    ContainedBy,
    /// Missing (the path leads nowhere), or, negated, present.
    IsNull { negated: bool },
}

/// The pattern of a [`Expr::Like`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// A LIKE pattern used as given.
    Raw(String),
    /// User text, escaped when rendered.
    Text(String, TextMatch),
    /// A POSIX regular expression (PostgreSQL's `~`, `~*`): Django's `regex`, `iregex`.
    Regex(String),
    /// Words to find in the text (full-text search: the text's lexemes match the query's,
    /// PostgreSQL's `to_tsvector(text) @@ plainto_tsquery(query)`): Django's `search`.
    Search(String),
}

impl Pattern {
    /// The LIKE pattern with `\` as the escape character (a regular expression or a
    /// search as given).
    pub fn to_like(&self) -> String {
        match self {
            Pattern::Raw(p) | Pattern::Regex(p) | Pattern::Search(p) => p.clone(),
            Pattern::Text(text, at) => {
                let mut out = String::with_capacity(text.len() + 2);
                if matches!(at, TextMatch::EndsWith | TextMatch::Contains) {
                    out.push('%');
                }
                for c in text.chars() {
                    if matches!(c, '%' | '_' | '\\') {
                        out.push('\\');
                    }
                    out.push(c);
                }
                if matches!(at, TextMatch::StartsWith | TextMatch::Contains) {
                    out.push('%');
                }
                out
            }
        }
    }
}

impl Expr {
    /// Adds the columns the condition names to `out` (once each).
    pub fn columns_into(&self, out: &mut Vec<Ident>) {
        let mut add = |column: &Ident| {
            if !out.contains(column) {
                out.push(column.clone());
            }
        };
        match self {
            Expr::Compare { column, value, .. } => {
                add(column);
                value.columns_into(out);
            }
            Expr::In { column, .. }
            | Expr::InSelect { column, .. }
            | Expr::IsNull { column, .. }
            | Expr::Like { column, .. }
            | Expr::Between { column, .. } => add(column),
            Expr::And(all) | Expr::Or(all) => all.iter().for_each(|e| e.columns_into(out)),
            Expr::Not(inner) | Expr::NotTrue(inner) => inner.columns_into(out),
            Expr::ScalarCompare { scalar, value, .. } => {
                scalar.columns_into(out);
                value.columns_into(out);
            }
            Expr::Exists { select, .. } => select.outer_columns_into(out),
            Expr::Json { column, .. } => add(column),
            Expr::AggregateCompare { .. } | Expr::Literal(_) => {}
        }
    }

    /// Calls `f` on each operand of the condition, subqueries' left out.
    pub fn for_each_operand(&self, f: &mut dyn FnMut(&Operand)) {
        match self {
            Expr::Compare { value, .. } | Expr::ScalarCompare { value, .. } => value.walk(f),
            Expr::And(all) | Expr::Or(all) => all.iter().for_each(|e| e.for_each_operand(f)),
            Expr::Not(inner) | Expr::NotTrue(inner) => inner.for_each_operand(f),
            _ => {}
        }
    }

    /// [`Expr::for_each_operand`], able to change them.
    pub fn for_each_operand_mut(&mut self, f: &mut dyn FnMut(&mut Operand)) {
        match self {
            Expr::Compare { value, .. } | Expr::ScalarCompare { value, .. } => value.walk_mut(f),
            Expr::And(all) | Expr::Or(all) => all.iter_mut().for_each(|e| e.for_each_operand_mut(f)),
            Expr::Not(inner) | Expr::NotTrue(inner) => inner.for_each_operand_mut(f),
            _ => {}
        }
    }

    /// Both conditions.
    pub fn and(self, other: Expr) -> Expr {
        match self {
            Expr::And(mut all) => {
                all.push(other);
                Expr::And(all)
            }
            first => Expr::And(vec![first, other]),
        }
    }

    /// Either condition.
    pub fn or(self, other: Expr) -> Expr {
        match self {
            Expr::Or(mut any) => {
                any.push(other);
                Expr::Or(any)
            }
            first => Expr::Or(vec![first, other]),
        }
    }

    /// Every condition (`true` for none).
    pub fn all(exprs: impl IntoIterator<Item = Expr>) -> Expr {
        Expr::And(exprs.into_iter().collect())
    }

    /// Any condition (`false` for none).
    pub fn any(exprs: impl IntoIterator<Item = Expr>) -> Expr {
        Expr::Or(exprs.into_iter().collect())
    }
}

impl std::ops::Not for Expr {
    type Output = Expr;

    fn not(self) -> Expr {
        Expr::Not(Box::new(self))
    }
}

impl std::ops::BitAnd for Expr {
    type Output = Expr;

    fn bitand(self, rhs: Expr) -> Expr {
        self.and(rhs)
    }
}

impl std::ops::BitOr for Expr {
    type Output = Expr;

    fn bitor(self, rhs: Expr) -> Expr {
        self.or(rhs)
    }
}

/// One `ORDER BY` term.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub column: Ident,
    pub descending: bool,
    /// A value computed per row to sort by instead (`column` then only names it, for
    /// messages): the column of the row the row's foreign keys lead to.
    pub value: Option<Box<Scalar>>,
    /// Where `NULL`s go.
    pub nulls: Nulls,
}

/// Where an [`Order`] puts `NULL`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Nulls {
    /// The database's way: PostgreSQL's sorts them as larger than any value, so last
    /// ascending and first descending.
    #[default]
    Default,
    First,
    Last,
}

impl Order {
    /// Adds the row's columns the order sorts by to `out` (once each): its column, or
    /// those its computed value reads.
    pub fn columns_into(&self, out: &mut Vec<Ident>) {
        match &self.value {
            Some(value) => value.columns_into(out),
            None if !out.contains(&self.column) => out.push(self.column.clone()),
            None => {}
        }
    }

    /// By `column`.
    pub fn column(column: impl Into<Ident>, descending: bool) -> Order {
        Order { column: column.into(), descending, value: None, nulls: Nulls::Default }
    }

    /// By a value computed per row, `name` naming it in messages.
    pub fn computed(name: impl Into<Ident>, value: Scalar, descending: bool) -> Order {
        Order { column: name.into(), descending, value: Some(Box::new(value)), nulls: Nulls::Default }
    }

    /// With `NULL`s before every value (`NULLS FIRST`).
    pub fn nulls_first(self) -> Order {
        Order { nulls: Nulls::First, ..self }
    }

    /// With `NULL`s after every value (`NULLS LAST`).
    pub fn nulls_last(self) -> Order {
        Order { nulls: Nulls::Last, ..self }
    }

    /// The opposite order: descending for ascending, and `NULL`s at the other end.
    pub fn reversed(self) -> Order {
        let nulls = match self.nulls {
            Nulls::Default => Nulls::Default,
            Nulls::First => Nulls::Last,
            Nulls::Last => Nulls::First,
        };
        Order { descending: !self.descending, nulls, ..self }
    }
}

/// What a `SELECT` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Projection {
    /// The listed columns.
    #[default]
    Columns,
    /// `count(*)` of the matching rows.
    Count,
    /// Whether any row matches.
    Exists,
    /// The [`Select::aggregates`] over the matching rows: one row, or with
    /// [`Select::group_by`] a row per group, its columns first.
    Aggregates,
}

/// An aggregate over the selected rows: `sum("balance")`, `count(DISTINCT "city")`,
/// `count(*) FILTER (WHERE "active")`, ….
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub function: AggregateFn,
    /// The value aggregated: a column, or computed from the row's columns
    /// (`sum(price * quantity)`); `None` counts rows (`count(*)`).
    pub value: Option<Operand>,
    /// Over the distinct values only.
    pub distinct: bool,
    /// The result column's name (`AS alias`), which `ORDER BY` of a grouped query can use.
    pub alias: Option<Ident>,
    /// Over the rows meeting this condition only (SQL's `FILTER (WHERE …)`), so several
    /// aggregates in one query can each count their own rows.
    pub filter: Option<Box<Expr>>,
    /// Further arguments after the value: `string_agg`'s separator.
    pub args: Vec<Operand>,
    /// The order the values are taken in, for those whose result shows it (`array_agg`,
    /// `string_agg`).
    pub order_by: Vec<Order>,
    /// What it is instead of `NULL` (over no values): `COALESCE(sum(…), 0)`, Django's
    /// `Sum(…, default=0)`.
    pub default: Option<Value>,
}

/// The functions of an [`Aggregate`]. Each skips `NULL`s, and all but `Count` are `NULL`
/// over no values (SQL's rules, which Django and SQLAlchemy keep).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateFn {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    /// The standard deviation of the values as a whole population.
    StdDevPop,
    /// The standard deviation of the values as a sample (`NULL` for one value).
    StdDevSamp,
    VarPop,
    VarSamp,
    /// Whether every value is true.
    BoolAnd,
    /// Whether any value is true.
    BoolOr,
    /// The texts joined, the separator between them.
    StringAgg,
    /// The values, as an array.
    ArrayAgg,
}

impl AggregateFn {
    const ALL: [AggregateFn; 13] = [
        AggregateFn::Count,
        AggregateFn::Sum,
        AggregateFn::Avg,
        AggregateFn::Min,
        AggregateFn::Max,
        AggregateFn::StdDevPop,
        AggregateFn::StdDevSamp,
        AggregateFn::VarPop,
        AggregateFn::VarSamp,
        AggregateFn::BoolAnd,
        AggregateFn::BoolOr,
        AggregateFn::StringAgg,
        AggregateFn::ArrayAgg,
    ];

    /// The function of a SQL name (`"sum"`).
    pub fn named(name: &str) -> Option<AggregateFn> {
        Self::ALL.into_iter().find(|f| f.sql() == name)
    }

    /// The SQL function's name.
    pub fn sql(self) -> &'static str {
        match self {
            AggregateFn::Count => "count",
            AggregateFn::Sum => "sum",
            AggregateFn::Avg => "avg",
            AggregateFn::Min => "min",
            AggregateFn::Max => "max",
            AggregateFn::StdDevPop => "stddev_pop",
            AggregateFn::StdDevSamp => "stddev_samp",
            AggregateFn::VarPop => "var_pop",
            AggregateFn::VarSamp => "var_samp",
            AggregateFn::BoolAnd => "bool_and",
            AggregateFn::BoolOr => "bool_or",
            AggregateFn::StringAgg => "string_agg",
            AggregateFn::ArrayAgg => "array_agg",
        }
    }

    /// How many arguments after the value it takes (`string_agg`'s separator).
    pub fn more_args(self) -> usize {
        match self {
            AggregateFn::StringAgg => 1,
            _ => 0,
        }
    }
}

impl Aggregate {
    /// `function(column)`.
    pub fn new(function: AggregateFn, column: impl Into<Ident>) -> Self {
        Aggregate::of(function, Operand::Column(column.into()))
    }

    /// `function(value)`, of a value computed from each row.
    pub fn of(function: AggregateFn, value: Operand) -> Self {
        Aggregate {
            function,
            value: Some(value),
            distinct: false,
            alias: None,
            filter: None,
            args: Vec::new(),
            order_by: Vec::new(),
            default: None,
        }
    }

    /// `count(*)`.
    pub fn count_rows() -> Self {
        Aggregate { value: None, ..Aggregate::of(AggregateFn::Count, Operand::Value(Value::Null)) }
    }

    /// Over the rows meeting `condition` too (and any condition given before).
    pub fn filtered(mut self, condition: Expr) -> Self {
        self.filter = Some(Box::new(match self.filter.take() {
            None => condition,
            Some(before) => Expr::And(vec![*before, condition]),
        }));
        self
    }
}

/// The rows a `SELECT` locks until its transaction ends, and how it treats rows another
/// transaction has locked: `FOR UPDATE`, `FOR UPDATE SKIP LOCKED`, `FOR SHARE NOWAIT`, ….
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowLock {
    pub strength: LockStrength,
    pub wait: LockWait,
}

/// How strongly a [`RowLock`] locks (PostgreSQL's four row-level lock modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockStrength {
    /// `FOR UPDATE`: the rows will be updated or deleted.
    Update,
    /// `FOR NO KEY UPDATE`: updated, but not their key (foreign keys to them still insert).
    NoKeyUpdate,
    /// `FOR SHARE`: the rows must not change meanwhile.
    Share,
    /// `FOR KEY SHARE`: their key must not change meanwhile.
    KeyShare,
}

/// What a [`RowLock`] does about rows another transaction holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LockWait {
    /// Waits for them.
    #[default]
    Wait,
    /// Fails at once (SQLSTATE 55P03, lock not available).
    NoWait,
    /// Leaves them out: a queue's workers each take rows no other holds.
    SkipLocked,
}

impl RowLock {
    /// `FOR UPDATE`.
    pub fn update() -> Self {
        RowLock { strength: LockStrength::Update, wait: LockWait::Wait }
    }

    /// `FOR NO KEY UPDATE`.
    pub fn no_key_update() -> Self {
        RowLock { strength: LockStrength::NoKeyUpdate, wait: LockWait::Wait }
    }

    /// `FOR SHARE`.
    pub fn share() -> Self {
        RowLock { strength: LockStrength::Share, wait: LockWait::Wait }
    }

    /// `FOR KEY SHARE`.
    pub fn key_share() -> Self {
        RowLock { strength: LockStrength::KeyShare, wait: LockWait::Wait }
    }

    /// Fails instead of waiting for rows another transaction holds.
    pub fn nowait(self) -> Self {
        RowLock { wait: LockWait::NoWait, ..self }
    }

    /// Skips rows another transaction holds.
    pub fn skip_locked(self) -> Self {
        RowLock { wait: LockWait::SkipLocked, ..self }
    }
}

/// A `SELECT` from one table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Select {
    pub table: Ident,
    /// The name the table goes by in the query (`FROM table AS alias`): a subquery over
    /// the table of the query it is in is renamed, so that its [`Operand::Outer`]
    /// references reach the outer row.
    pub alias: Option<Ident>,
    pub columns: Vec<Ident>,
    pub projection: Projection,
    pub filter: Option<Expr>,
    pub order: Vec<Order>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    /// Rows locked until the transaction ends; such a query runs only inside one.
    pub lock: Option<RowLock>,
    /// `SELECT DISTINCT`: each combination of the columns' values once.
    pub distinct: bool,
    /// `SELECT DISTINCT ON (columns)`: the first row, in the order, of each combination
    /// of these columns' values (PostgreSQL's; Django's `distinct("customer")`). The
    /// order must begin with them (see [`Select::order_outside_rows`]).
    pub distinct_on: Vec<Ident>,
    /// What [`Projection::Aggregates`] computes, in order.
    pub aggregates: Vec<Aggregate>,
    /// `GROUP BY` these columns: [`Projection::Aggregates`] per combination of their
    /// values. Order, limit and offset then apply to the groups.
    pub group_by: Vec<Ident>,
    /// Which groups to keep (`HAVING`): conditions on aggregates
    /// ([`Expr::AggregateCompare`]) and the grouped columns.
    pub having: Option<Expr>,
    /// Values computed per row, selected after the columns under their aliases, which
    /// the order can name.
    pub annotations: Vec<Annotation>,
    /// Conditions naming annotations (and columns), kept apart from `filter` because SQL
    /// cannot name a select list's aliases in `WHERE`: the annotated rows become a
    /// derived table, and this its `WHERE`.
    pub annotation_filter: Option<Expr>,
    /// Rows of other tables the query's rows refer to, selected beside them in one
    /// statement (Django's `select_related`): each row's own columns come first, then
    /// each join's, in order. Only a selection of rows ([`Projection::Columns`]) reads
    /// them; counts, aggregates and subqueries leave them out.
    pub joins: Vec<Join>,
    /// Columns of the rows relations lead to from each row, for the aggregates
    /// ([`Projection::Aggregates`]) to run over under their aliases (Django's
    /// `values("country").annotate(n=Count("books"))`), or to be selected after the
    /// columns and annotations (Django's `values("name", "books__title")`, a row per
    /// row reached): the rows are `LEFT JOIN`ed to them, so each row counts once per row
    /// it reaches, as in Django. Chains sharing their first hops share those joins.
    /// Selected, they may be grouped and ordered by their aliases.
    pub reached: Vec<Reached>,
    /// Other queries' rows combined with this one's, each with those before it
    /// (Django's `qs.union(other)`, SQLAlchemy's `union()`): every part selects this
    /// query's columns and annotations, and this query's order, limit and offset are the
    /// combined rows'. A combined query is read (rows, a count, whether any), not
    /// aggregated, updated or deleted from.
    pub combined: Vec<Combined>,
}

/// A query whose rows combine with those of the query before it (see
/// [`Select::combined`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Combined {
    pub op: SetOp,
    /// Keeps every row (`UNION ALL`), where without it each row comes once.
    pub all: bool,
    pub select: Select,
}

/// How [`Select::combined`] combines two queries' rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOp {
    /// The rows of either.
    Union,
    /// The rows of both.
    Intersect,
    /// The rows of the first but not the second.
    Except,
}

impl SetOp {
    pub fn sql(self) -> &'static str {
        match self {
            SetOp::Union => "UNION",
            SetOp::Intersect => "INTERSECT",
            SetOp::Except => "EXCEPT",
        }
    }
}

/// A column of the rows a chain of relations leads to (see [`Select::reached`]): through
/// each hop, the rows of its `table` whose `key` holds the previous row's `via` column;
/// `column` of the last, as `alias`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reached {
    pub hops: Vec<Hop>,
    pub column: Ident,
    pub alias: Ident,
}

/// A row another table holds for each of a query's rows: the one whose `key` equals the
/// `column` of the query's row (`from: None`) or of an earlier join's row (`from:
/// Some(i)`), or NULLs where there is none (`LEFT JOIN`), so no row of the query is lost.
/// The key should be unique (a primary key), or a row would repeat once per match.
#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    pub table: Ident,
    /// The joined row's columns, selected in this order.
    pub columns: Vec<Ident>,
    pub key: Ident,
    pub from: Option<usize>,
    pub column: Ident,
}

/// A value computed for each row of a query: see [`Select::annotations`].
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    pub alias: Ident,
    pub value: Scalar,
    /// Whether the rows hold it. One they do not (Django's `alias()`) is only there to
    /// be filtered or ordered by, and is computed only when it is.
    pub selected: bool,
}

impl Annotation {
    /// A value the rows hold under `alias`.
    pub fn new(alias: impl Into<Ident>, value: Scalar) -> Self {
        Annotation { alias: alias.into(), value, selected: true }
    }
}

/// One value per row.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// Arithmetic on the row's columns and values.
    Operand(Operand),
    /// `aggregate` over the rows a chain of relations leads to from this row of
    /// `outer_table`, as a correlated subquery: through each hop, the rows of its `table`
    /// whose `key` holds the previous row's `via` column (at least one hop). One hop is a
    /// relation's rows, such as an author's books (`(SELECT count(*) FROM books WHERE
    /// books.author_id = authors.id)`); more reach further, as Django's
    /// `Count("books__reviews")`, each row of the last table counted once per chain that
    /// reaches it (as a join would). The aggregate's filter picks which of them count; its
    /// columns and the aggregate's are the last table's.
    Related { aggregate: Aggregate, outer_table: Ident, hops: Vec<Hop> },
    /// The value converted to another type: an average of integers to a `float8`, as
    /// Python reads one; a sum of integers (a `numeric`) to an `int8`, as Django does.
    Cast { value: Box<Scalar>, to: Cast },
    /// A part of a date, time or timestamp column (its year, its date, …): Django's
    /// transforms (`created__year=2024`). A timestamp with time zone's parts are read in
    /// the connection's time zone (PostgreSQL's `TimeZone`: `database.time_zone`).
    Part { part: DatePart, column: Ident },
    /// A date or timestamp column cut down to the start of its `unit` (Django's
    /// `TruncMonth("created")`): of the same type, a date for a date column (`date`). A
    /// timestamp with time zone is cut in the connection's time zone.
    Trunc { unit: TruncUnit, column: Ident, date: bool },
    /// The value a path of keys (array indexes as digits) leads to in a `jsonb` column
    /// (Django's `data__owner__name`): JSON (`#>`), or with `text` its text (`#>>`,
    /// Django's `KT()`); `NULL` where the path leads nowhere.
    Json { column: Ident, path: Vec<String>, text: bool },
}

/// What a [`Scalar::Cast`] converts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cast {
    Float8,
    Int8,
}

impl Cast {
    pub fn sql(self) -> &'static str {
        match self {
            Cast::Float8 => "float8",
            Cast::Int8 => "int8",
        }
    }
}

/// The value a name table (`DatePart::ALL`, `TruncUnit::ALL`) gives `name`.
fn by_name<T: Copy>(all: &[(&'static str, T)], name: &str) -> Option<T> {
    all.iter().find(|(n, _)| *n == name).map(|&(_, value)| value)
}

/// `value`'s name in a name table.
fn name_in<T: PartialEq>(all: &[(&'static str, T)], value: T) -> &'static str {
    all.iter().find(|(_, v)| *v == value).map_or("", |(n, _)| n)
}

/// What [`Scalar::Trunc`] cuts a date or timestamp down to, as Django's `Trunc` kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TruncUnit {
    Year,
    Quarter,
    Month,
    /// The week's Monday, as ISO 8601.
    Week,
    Day,
    Hour,
    Minute,
    Second,
}

impl TruncUnit {
    /// Every unit, by its Django (and PostgreSQL `date_trunc`) name.
    pub const ALL: [(&'static str, TruncUnit); 8] = [
        ("year", TruncUnit::Year),
        ("quarter", TruncUnit::Quarter),
        ("month", TruncUnit::Month),
        ("week", TruncUnit::Week),
        ("day", TruncUnit::Day),
        ("hour", TruncUnit::Hour),
        ("minute", TruncUnit::Minute),
        ("second", TruncUnit::Second),
    ];

    pub fn named(name: &str) -> Option<TruncUnit> {
        by_name(&Self::ALL, name)
    }

    pub fn name(self) -> &'static str {
        name_in(&Self::ALL, self)
    }

    /// Whether a column of PostgreSQL type `sql_type` can be cut to this unit: dates to
    /// a day or longer, timestamps to any.
    pub fn applies_to(self, sql_type: &str) -> bool {
        match sql_type {
            "timestamp" | "timestamptz" => true,
            "date" => !matches!(self, TruncUnit::Hour | TruncUnit::Minute | TruncUnit::Second),
            _ => false,
        }
    }
}

/// One step of an [`Operand::Referred`] or a [`Scalar::Related`]: from the previous row's
/// `via` column to the rows of `table` whose `key` holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Hop {
    pub via: Ident,
    pub table: Ident,
    pub key: Ident,
    /// Only the rows of `table` meeting this condition on its columns, where rows reached
    /// are joined ([`Select::reached`]): what a filter across the same relation asked of
    /// them (Django's join reuse: `filter(books__title__startswith="a")
    /// .values("books__title")` gives the matching titles).
    pub filter: Option<Box<Expr>>,
}

impl Hop {
    /// From the previous row's `via` to the rows of `table` whose `key` holds it.
    pub fn new(via: impl Into<Ident>, table: impl Into<Ident>, key: impl Into<Ident>) -> Self {
        Hop { via: via.into(), table: table.into(), key: key.into(), filter: None }
    }
}

/// A part of a date or time, as Django's transforms name them: a number (`year`,
/// `month`, `week_day`, …), or the date or the time of day of a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatePart {
    Year,
    /// The ISO 8601 week-numbering year.
    IsoYear,
    /// 1 to 4.
    Quarter,
    Month,
    /// The ISO 8601 week of the year, 1 to 53.
    Week,
    Day,
    /// 1 (Sunday) to 7 (Saturday), as Django's `week_day`.
    WeekDay,
    /// 1 (Monday) to 7 (Sunday).
    IsoWeekDay,
    Hour,
    Minute,
    /// Whole seconds, 0 to 59.
    Second,
    Date,
    Time,
}

impl DatePart {
    /// Every part, by its Django name.
    pub const ALL: [(&'static str, DatePart); 13] = [
        ("year", DatePart::Year),
        ("iso_year", DatePart::IsoYear),
        ("quarter", DatePart::Quarter),
        ("month", DatePart::Month),
        ("week", DatePart::Week),
        ("day", DatePart::Day),
        ("week_day", DatePart::WeekDay),
        ("iso_week_day", DatePart::IsoWeekDay),
        ("hour", DatePart::Hour),
        ("minute", DatePart::Minute),
        ("second", DatePart::Second),
        ("date", DatePart::Date),
        ("time", DatePart::Time),
    ];

    /// The part Django calls `name`.
    pub fn named(name: &str) -> Option<DatePart> {
        by_name(&Self::ALL, name)
    }

    pub fn name(self) -> &'static str {
        name_in(&Self::ALL, self)
    }

    /// Whether a column of PostgreSQL type `sql_type` has this part: dates their calendar
    /// parts, times their clock parts, timestamps both and their date and time.
    pub fn applies_to(self, sql_type: &str) -> bool {
        let timestamp = matches!(sql_type, "timestamp" | "timestamptz");
        match self {
            DatePart::Hour | DatePart::Minute | DatePart::Second => timestamp || sql_type == "time",
            DatePart::Date | DatePart::Time => timestamp,
            _ => timestamp || sql_type == "date",
        }
    }
}

impl Scalar {
    /// Adds the row's columns the value is computed from to `out` (once each); a related
    /// aggregate's are the other table's, but for the row's own key.
    pub fn columns_into(&self, out: &mut Vec<Ident>) {
        match self {
            Scalar::Operand(operand) => operand.columns_into(out),
            Scalar::Cast { value, .. } => value.columns_into(out),
            Scalar::Related { hops, .. } => first_hop_into(hops, out),
            Scalar::Part { column, .. } | Scalar::Trunc { column, .. } | Scalar::Json { column, .. }
                if !out.contains(column) =>
            {
                out.push(column.clone())
            }
            Scalar::Part { .. } | Scalar::Trunc { .. } | Scalar::Json { .. } => {}
        }
    }
}

impl Select {
    /// `SELECT columns FROM table`.
    pub fn new(table: impl Into<Ident>, columns: impl IntoIterator<Item = impl Into<Ident>>) -> Self {
        Select { table: table.into(), columns: columns.into_iter().map(Into::into).collect(), ..Default::default() }
    }

    /// The columns of the enclosing query's row this query's conditions name
    /// ([`Operand::Outer`]), added to `out` (once each).
    pub fn outer_columns_into(&self, out: &mut Vec<Ident>) {
        let Some(filter) = &self.filter else { return };
        filter.for_each_operand(&mut |operand| {
            if let Operand::Outer(column) = operand {
                if !out.contains(column) {
                    out.push(column.clone());
                }
            }
        });
    }

    /// Replaces the names [`Operand::Outer`] holds in this query's conditions (fields of
    /// the query it goes into, as a front-end compiled them) by what `resolve` gives
    /// (their columns), or the first error it reports.
    pub fn resolve_outer<E>(&mut self, resolve: &mut dyn FnMut(&Ident) -> Result<Ident, E>) -> Result<(), E> {
        let mut failed = None;
        for condition in [self.filter.as_mut(), self.annotation_filter.as_mut()].into_iter().flatten() {
            condition.for_each_operand_mut(&mut |operand| {
                if let Operand::Outer(name) = operand {
                    match resolve(name) {
                        Ok(column) => *name = column,
                        Err(e) => failed = failed.take().or(Some(e)),
                    }
                }
            });
        }
        failed.map_or(Ok(()), Err)
    }

    /// The aliases of the annotations the rows hold (not those only filtered or ordered
    /// by), in order.
    pub fn selected_aliases(&self) -> impl Iterator<Item = &Ident> {
        self.annotations.iter().filter(|a| a.selected).map(|a| &a.alias)
    }

    /// This query with the annotations `named` picks held by its rows too: for rows an
    /// outer query reads (joins, groups), which may order or aggregate by those.
    pub fn holding_annotations(&self, named: impl Fn(&Ident) -> bool) -> Select {
        let held = |a: &Annotation| Annotation { selected: a.selected || named(&a.alias), ..a.clone() };
        Select { annotations: self.annotations.iter().map(held).collect(), ..self.clone() }
    }

    /// An order term the query's rows cannot be sorted by, as PostgreSQL sorts grouped
    /// rows only by what they hold (the grouped columns and the aggregates' aliases), and
    /// distinct or combined rows only by their columns (by name); `None` when every term
    /// is among those, or the query is none of these.
    pub fn order_outside_rows(&self) -> Option<&Order> {
        // `DISTINCT ON`: the order's first terms are the columns it names.
        if !self.distinct_on.is_empty() {
            let leading = self.order.iter().take(self.distinct_on.len());
            return leading.into_iter().find(|o| o.value.is_some() || !self.distinct_on.contains(&o.column));
        }
        let grouped = self.projection == Projection::Aggregates && !self.group_by.is_empty();
        let combined = !self.combined.is_empty();
        if !grouped && !self.distinct && !combined {
            return None;
        }
        if let Some(computed) = self.order.iter().find(|o| combined && o.value.is_some()) {
            return Some(computed);
        }
        let held = |column: &Ident| match grouped {
            true => self.group_by.contains(column) || self.aggregates.iter().any(|a| a.alias.as_ref() == Some(column)),
            false => {
                self.columns.contains(column)
                    || self.selected_aliases().any(|alias| alias == column)
                    || self.reached.iter().any(|r| r.alias == *column)
            }
        };
        self.order.iter().find(|o| !held(&o.column))
    }

    /// This query as one part of another's [`Select::combined`]: its order goes (the
    /// combined rows have their own). Sliced, it is the rows its slice picks, by their
    /// `key` (`key IN (this query, sliced)`), as the slice a part holds would be taken for
    /// the combined rows'.
    pub fn into_part(self, key: &Ident) -> Select {
        if self.limit.is_none() && self.offset.is_none() {
            return Select { order: Vec::new(), ..self };
        }
        let picked = self.clone().subquery(vec![key.clone()]);
        let filter = Expr::InSelect { column: key.clone(), select: Box::new(picked), negated: false };
        Select { filter: Some(filter), annotation_filter: None, order: Vec::new(), limit: None, offset: None, ..self }
    }

    /// This query as a subquery selecting `columns` (`IN (SELECT …)`): its order goes,
    /// unless a limit or offset picks rows by it.
    pub fn subquery(mut self, columns: Vec<Ident>) -> Select {
        self.columns = columns;
        if self.limit.is_none() && self.offset.is_none() {
            self.order.clear();
        }
        self
    }

    /// Every condition on the rows, `filter` and `annotation_filter` together, each
    /// annotation's value written in place of its alias: for statements that pick rows
    /// without selecting them first (updates and deletes by query).
    pub fn conditions(&self) -> Option<Expr> {
        let inline = self.annotation_filter.as_ref().map(|condition| self.inline(condition));
        match (self.filter.clone(), inline) {
            (Some(filter), Some(inline)) => Some(filter.and(inline)),
            (filter, inline) => filter.or(inline),
        }
    }

    /// `condition` with each annotation's value in place of its alias.
    fn inline(&self, condition: &Expr) -> Expr {
        let value_of = |column: &Ident| self.annotations.iter().find(|a| a.alias == *column).map(|a| &a.value);
        let compare =
            |scalar: &Scalar, op, value: Operand| Expr::ScalarCompare { scalar: Box::new(scalar.clone()), op, value };
        match condition {
            Expr::Compare { column, op, value } => match value_of(column) {
                Some(scalar) => compare(scalar, *op, value.clone()),
                None => condition.clone(),
            },
            Expr::IsNull { column, negated } => match value_of(column) {
                Some(scalar) => {
                    compare(scalar, if *negated { CompareOp::Ne } else { CompareOp::Eq }, Value::Null.into())
                }
                None => condition.clone(),
            },
            Expr::In { column, values, negated } => match value_of(column) {
                Some(scalar) => {
                    let any =
                        Expr::Or(values.iter().map(|v| compare(scalar, CompareOp::Eq, v.clone().into())).collect());
                    if *negated {
                        Expr::Not(Box::new(any))
                    } else {
                        any
                    }
                }
                None => condition.clone(),
            },
            Expr::And(all) => Expr::And(all.iter().map(|e| self.inline(e)).collect()),
            Expr::Or(any) => Expr::Or(any.iter().map(|e| self.inline(e)).collect()),
            Expr::Not(inner) => Expr::Not(Box::new(self.inline(inner))),
            Expr::NotTrue(inner) => Expr::NotTrue(Box::new(self.inline(inner))),
            other => other.clone(),
        }
    }

    /// Adds a condition, joined to the existing ones with `AND`.
    pub fn filter(&mut self, expr: Expr) {
        self.filter = Some(match self.filter.take() {
            Some(existing) => existing.and(expr),
            None => expr,
        });
    }
}

/// One `SET column = value` of an update.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub column: Ident,
    pub value: Operand,
}

/// A value, a column of the row, or arithmetic on the row's columns (`balance - 10`). In
/// an update the database computes it from the row as it updates it, so concurrent
/// updates do not overwrite each other's changes; in a condition it compares a row's
/// columns with each other.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Value(Value),
    Column(Ident),
    Arith {
        left: Box<Operand>,
        op: ArithOp,
        right: Box<Operand>,
    },
    /// A function of operands, as Django's `Coalesce("nickname", "name")` or
    /// `Lower("email")`. Values among its arguments are sent with their own type, since
    /// a function's arguments do not tell the server one.
    Call {
        function: Function,
        args: Vec<Operand>,
    },
    /// The value of the first branch whose condition holds, else `otherwise` (`NULL` when
    /// there is none): SQL's `CASE WHEN … THEN … ELSE … END`, Django's `Case(When(…))`.
    /// Values are sent with their own type, as a call's.
    Case {
        branches: Vec<(Expr, Operand)>,
        otherwise: Option<Box<Operand>>,
    },
    /// A column of the row of the query this one is a subquery of (Django's `OuterRef`):
    /// written qualified by the name that query's table goes by there. A front-end may
    /// hold a field's name here until it knows that query (see [`Select::resolve_outer`]).
    Outer(Ident),
    /// The first column of the first row another query selects, for each row (`NULL`
    /// where it selects none); its conditions may name the row ([`Operand::Outer`]):
    /// Django's `Subquery(Book.objects.filter(author=OuterRef("pk")).order_by("-year")
    /// .values("title")[:1])`, each author's latest title.
    Subquery(Box<Select>),
    /// Whether a condition holds for the row (`NULL` where it is unknown), as a value:
    /// Django's `annotate(has_books=Exists(...))`.
    Condition(Box<Expr>),
    /// A window function: computed for each row over the rows of its partition (those
    /// with its `partition_by` values), in `order_by` order: Django's `Window(Rank(),
    /// partition_by=F("dept"), order_by=F("salary").desc())`. Read with the rows (a
    /// select list's value), then filtered or sorted by its name.
    Window {
        function: WindowFunction,
        args: Vec<Operand>,
        partition_by: Vec<Operand>,
        order_by: Vec<Order>,
    },
    /// The value converted to another type (Django's `Cast("price", Integer())`):
    /// `CAST(value AS to)`. Build it with [`Operand::cast`], which takes only type names.
    Convert {
        value: Box<Operand>,
        to: String,
    },
    /// The `column` of the row a chain of foreign keys leads to from this row (Django's
    /// `F("author__publisher__name")`): through each hop, the row of its `table` whose
    /// `key` holds the previous row's `via` column (at least one hop); NULL where a key is
    /// NULL or leads nowhere. A subquery naming the row by the name its query's table goes
    /// by, so it goes wherever a column does.
    Referred {
        hops: Vec<Hop>,
        column: Ident,
    },
    /// A value per row that is no operand of its own (an aggregate of related rows, a part
    /// of a date), where an operand goes: inside a function, compared with.
    Scalar(Box<Scalar>),
    /// SQL written by the application (Django's `RawSQL`): `parts` with a parameter
    /// between each two (`params`, one fewer), in parentheses. It names the statement's
    /// columns itself, so nothing here knows which.
    Raw {
        parts: Vec<String>,
        params: Vec<Value>,
    },
}

/// The functions of an [`Operand::Window`], by their Django names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowFunction {
    RowNumber,
    Rank,
    DenseRank,
    PercentRank,
    CumeDist,
    /// The bucket (1 to n) of the row, its partition split in n.
    Ntile,
    /// A value of the row `offset` (1) before, or `default` (`NULL`).
    Lag,
    /// A value of the row `offset` (1) after, or `default` (`NULL`).
    Lead,
    FirstValue,
    LastValue,
    NthValue,
    /// An aggregate over the partition's rows up to this one (with an order) or all of
    /// them: running totals.
    Aggregate(AggregateFn),
}

impl WindowFunction {
    /// Every function but the aggregates, by its Django name, with its SQL name and how
    /// many arguments it takes (at least, at most).
    pub const ALL: [(&'static str, WindowFunction, &'static str, (usize, usize)); 11] = [
        ("RowNumber", WindowFunction::RowNumber, "row_number", (0, 0)),
        ("Rank", WindowFunction::Rank, "rank", (0, 0)),
        ("DenseRank", WindowFunction::DenseRank, "dense_rank", (0, 0)),
        ("PercentRank", WindowFunction::PercentRank, "percent_rank", (0, 0)),
        ("CumeDist", WindowFunction::CumeDist, "cume_dist", (0, 0)),
        ("Ntile", WindowFunction::Ntile, "ntile", (1, 1)),
        ("Lag", WindowFunction::Lag, "lag", (1, 3)),
        ("Lead", WindowFunction::Lead, "lead", (1, 3)),
        ("FirstValue", WindowFunction::FirstValue, "first_value", (1, 1)),
        ("LastValue", WindowFunction::LastValue, "last_value", (1, 1)),
        ("NthValue", WindowFunction::NthValue, "nth_value", (2, 2)),
    ];

    pub fn named(name: &str) -> Option<WindowFunction> {
        Self::ALL.iter().find(|(n, ..)| *n == name).map(|&(_, f, ..)| f)
    }

    /// The SQL function it calls.
    pub fn sql(self) -> &'static str {
        match self {
            WindowFunction::Aggregate(aggregate) => aggregate.sql(),
            other => Self::ALL.iter().find(|(_, f, ..)| *f == other).map_or("", |&(_, _, sql, _)| sql),
        }
    }

    /// How many arguments it takes: at least, at most.
    pub fn arity(self) -> (usize, usize) {
        match self {
            WindowFunction::Aggregate(AggregateFn::Count) => (0, 1),
            WindowFunction::Aggregate(_) => (1, 1),
            other => Self::ALL.iter().find(|(_, f, ..)| *f == other).map_or((0, 0), |&(.., arity)| arity),
        }
    }
}

impl Operand {
    /// `sql` with `%s` where each of `params` goes (`%%` for a `%`), as Django's `RawSQL`;
    /// `None` if the counts differ.
    pub fn raw(sql: &str, params: Vec<Value>) -> Option<Operand> {
        let mut parts = vec![String::new()];
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, chars.peek()) {
                ('%', Some('s')) => {
                    chars.next();
                    parts.push(String::new());
                }
                ('%', Some('%')) => {
                    chars.next();
                    parts.last_mut().expect("one part at least").push('%');
                }
                (c, _) => parts.last_mut().expect("one part at least").push(c),
            }
        }
        (parts.len() == params.len() + 1).then_some(Operand::Raw { parts, params })
    }

    /// Adds the columns the operand names to `out` (once each).
    pub fn columns_into(&self, out: &mut Vec<Ident>) {
        match self {
            Operand::Value(_) => {}
            Operand::Column(column) if !out.contains(column) => out.push(column.clone()),
            Operand::Column(_) => {}
            Operand::Arith { left, right, .. } => {
                left.columns_into(out);
                right.columns_into(out);
            }
            Operand::Call { args, .. } => args.iter().for_each(|arg| arg.columns_into(out)),
            Operand::Case { branches, otherwise } => {
                for (condition, then) in branches {
                    condition.columns_into(out);
                    then.columns_into(out);
                }
                if let Some(otherwise) = otherwise {
                    otherwise.columns_into(out);
                }
            }
            // Another query's row's.
            Operand::Outer(_) => {}
            Operand::Referred { hops, .. } => first_hop_into(hops, out),
            Operand::Scalar(scalar) => scalar.columns_into(out),
            Operand::Convert { value, .. } => value.columns_into(out),
            Operand::Window { args, partition_by, order_by, .. } => {
                args.iter().chain(partition_by).for_each(|operand| operand.columns_into(out));
                order_by.iter().for_each(|order| order.columns_into(out));
            }
            Operand::Subquery(select) => select.outer_columns_into(out),
            Operand::Condition(condition) => condition.columns_into(out),
            Operand::Raw { .. } => {}
        }
    }

    /// Calls `f` on this operand and each operand within it (a call's arguments, a case's
    /// branches and their conditions' operands).
    pub fn walk(&self, f: &mut dyn FnMut(&Operand)) {
        f(self);
        match self {
            Operand::Convert { value, .. } => value.walk(f),
            Operand::Condition(condition) => condition.for_each_operand(f),
            Operand::Arith { left, right, .. } => {
                left.walk(f);
                right.walk(f);
            }
            Operand::Call { args, .. } => args.iter().for_each(|arg| arg.walk(f)),
            Operand::Case { branches, otherwise } => {
                for (condition, then) in branches {
                    condition.for_each_operand(f);
                    then.walk(f);
                }
                if let Some(otherwise) = otherwise {
                    otherwise.walk(f);
                }
            }
            _ => {}
        }
    }

    /// [`Operand::walk`], able to change them.
    pub fn walk_mut(&mut self, f: &mut dyn FnMut(&mut Operand)) {
        f(self);
        match self {
            Operand::Convert { value, .. } => value.walk_mut(f),
            Operand::Condition(condition) => condition.for_each_operand_mut(f),
            Operand::Arith { left, right, .. } => {
                left.walk_mut(f);
                right.walk_mut(f);
            }
            Operand::Call { args, .. } => args.iter_mut().for_each(|arg| arg.walk_mut(f)),
            Operand::Case { branches, otherwise } => {
                for (condition, then) in branches {
                    condition.for_each_operand_mut(f);
                    then.walk_mut(f);
                }
                if let Some(otherwise) = otherwise {
                    otherwise.walk_mut(f);
                }
            }
            _ => {}
        }
    }
}

/// Adds the row's column the first of `hops` starts from to `out` (unless it is there).
fn first_hop_into(hops: &[Hop], out: &mut Vec<Ident>) {
    if let Some(first) = hops.first().filter(|first| !out.contains(&first.via)) {
        out.push(first.via.clone());
    }
}

/// The functions an [`Operand::Call`] applies, by their Django names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// The first argument that is not `NULL`.
    Coalesce,
    /// `NULL` if the two arguments are equal, else the first.
    NullIf,
    /// The largest argument, ignoring `NULL`s.
    Greatest,
    /// The smallest argument, ignoring `NULL`s.
    Least,
    Lower,
    Upper,
    /// The number of characters.
    Length,
    /// Without leading and trailing spaces.
    Trim,
    LTrim,
    RTrim,
    /// The arguments' text joined, `NULL`s as empty text.
    Concat,
    /// Characters from a position (from 1), as many as the third argument says or to the
    /// end.
    Substr,
    /// The first `n` characters.
    Left,
    /// The last `n` characters.
    Right,
    /// Every occurrence of the second argument replaced by the third.
    Replace,
    /// The position (from 1) of the second argument in the first, 0 if absent.
    StrIndex,
    /// Padded on the left to a length (cut to it if longer) with the third argument, or
    /// spaces.
    LPad,
    RPad,
    /// The text repeated `n` times.
    Repeat,
    Reverse,
    /// The MD5 digest of the text, in hex.
    Md5,
    Abs,
    /// To the nearest integer, or to the places of the second argument (PostgreSQL's
    /// `round`: halves away from zero for `numeric`, to even for floats; with places,
    /// computed as `numeric`).
    Round,
    Ceil,
    Floor,
    /// The sign of a number: -1, 0 or 1.
    Sign,
    /// The remainder of the first argument divided by the second.
    Mod,
    /// The first argument to the power of the second.
    Power,
    Sqrt,
    /// e to the power of the argument.
    Exp,
    /// The natural logarithm.
    Ln,
    /// When the transaction began (`now()`), a timestamp with time zone: the same for
    /// every statement of a transaction, as PostgreSQL's.
    Now,
    /// A random version 4 UUID (`gen_random_uuid()`).
    RandomUuid,
    /// A random float in [0, 1).
    Random,
    /// π, a float.
    Pi,
    /// A JSON object of key and value pairs, the keys text: Django's `JSONObject`.
    JsonObject,
}

/// What a function takes at one place, for the front-ends' checks and for the SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// Anything (`Concat`).
    Any,
    /// A value of the kind of the function's other `Alike` arguments (`Coalesce`).
    Alike,
    Text,
    /// A number.
    Number,
    /// An integer or a decimal, not a float (`Mod`).
    Exact,
    /// An integer (a position, a length, a count), sent as PostgreSQL's `integer`.
    Count,
}

impl Takes {
    /// Whether an argument taken here is of the kind a [`Gives::Alike`] function gives:
    /// the arguments that say the result's kind (`Coalesce`'s, `Abs`'s, `Mod`'s).
    pub fn is_alike(self) -> bool {
        matches!(self, Takes::Alike | Takes::Number | Takes::Exact)
    }
}

/// What a function gives, for the front-ends' checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gives {
    /// The kind of its arguments that [`Takes::is_alike`].
    Alike,
    Text,
    /// An integer.
    Integer,
    /// A decimal from a decimal argument, else a float (`Sqrt`, `Power`).
    Fraction,
    Uuid,
    /// A timestamp with time zone.
    Timestamp,
    /// A `jsonb` value.
    Json,
}

impl Function {
    /// Every function, by its Django name.
    pub const ALL: [(&'static str, Function); 36] = [
        ("Coalesce", Function::Coalesce),
        ("NullIf", Function::NullIf),
        ("Greatest", Function::Greatest),
        ("Least", Function::Least),
        ("Lower", Function::Lower),
        ("Upper", Function::Upper),
        ("Length", Function::Length),
        ("Trim", Function::Trim),
        ("LTrim", Function::LTrim),
        ("RTrim", Function::RTrim),
        ("Concat", Function::Concat),
        ("Substr", Function::Substr),
        ("Left", Function::Left),
        ("Right", Function::Right),
        ("Replace", Function::Replace),
        ("StrIndex", Function::StrIndex),
        ("LPad", Function::LPad),
        ("RPad", Function::RPad),
        ("Repeat", Function::Repeat),
        ("Reverse", Function::Reverse),
        ("MD5", Function::Md5),
        ("Abs", Function::Abs),
        ("Round", Function::Round),
        ("Ceil", Function::Ceil),
        ("Floor", Function::Floor),
        ("Sign", Function::Sign),
        ("Mod", Function::Mod),
        ("Power", Function::Power),
        ("Sqrt", Function::Sqrt),
        ("Exp", Function::Exp),
        ("Ln", Function::Ln),
        ("Now", Function::Now),
        ("RandomUUID", Function::RandomUuid),
        ("Random", Function::Random),
        ("Pi", Function::Pi),
        ("JSONObject", Function::JsonObject),
    ];

    pub fn named(name: &str) -> Option<Function> {
        by_name(&Self::ALL, name)
    }

    pub fn name(self) -> &'static str {
        name_in(&Self::ALL, self)
    }

    /// The SQL function it calls.
    pub fn sql(self) -> &'static str {
        match self {
            Function::Coalesce => "coalesce",
            Function::NullIf => "nullif",
            Function::Greatest => "greatest",
            Function::Least => "least",
            Function::Lower => "lower",
            Function::Upper => "upper",
            Function::Length => "char_length",
            Function::Trim => "btrim",
            Function::LTrim => "ltrim",
            Function::RTrim => "rtrim",
            Function::Concat => "concat",
            Function::Substr => "substr",
            Function::Left => "left",
            Function::Right => "right",
            Function::Replace => "replace",
            Function::StrIndex => "strpos",
            Function::LPad => "lpad",
            Function::RPad => "rpad",
            Function::Repeat => "repeat",
            Function::Reverse => "reverse",
            Function::Md5 => "md5",
            Function::Abs => "abs",
            Function::Round => "round",
            Function::Ceil => "ceil",
            Function::Floor => "floor",
            Function::Sign => "sign",
            Function::Mod => "mod",
            Function::Power => "power",
            Function::Sqrt => "sqrt",
            Function::Exp => "exp",
            Function::Ln => "ln",
            Function::Now => "now",
            Function::RandomUuid => "gen_random_uuid",
            Function::Random => "random",
            Function::Pi => "pi",
            Function::JsonObject => "jsonb_build_object",
        }
    }

    /// How many arguments it takes: at least, and at most (`None`: any number).
    pub fn arity(self) -> (usize, Option<usize>) {
        match self {
            Function::Coalesce | Function::Greatest | Function::Least | Function::Concat => (2, None),
            Function::NullIf
            | Function::Left
            | Function::Right
            | Function::StrIndex
            | Function::Repeat
            | Function::Mod
            | Function::Power => (2, Some(2)),
            Function::Substr | Function::LPad | Function::RPad => (2, Some(3)),
            Function::Replace => (3, Some(3)),
            Function::Round => (1, Some(2)),
            Function::Now | Function::RandomUuid | Function::Random | Function::Pi => (0, Some(0)),
            Function::JsonObject => (0, None),
            _ => (1, Some(1)),
        }
    }

    /// What it takes at each place; the last kind stands for every further argument.
    pub fn takes(self) -> &'static [Takes] {
        match self {
            Function::Coalesce | Function::NullIf | Function::Greatest | Function::Least => &[Takes::Alike],
            Function::Lower
            | Function::Upper
            | Function::Length
            | Function::Trim
            | Function::LTrim
            | Function::RTrim
            | Function::Reverse
            | Function::Md5
            | Function::Replace
            | Function::StrIndex => &[Takes::Text],
            Function::Concat | Function::JsonObject => &[Takes::Any],
            Function::Substr => &[Takes::Text, Takes::Count],
            Function::Left | Function::Right | Function::Repeat => &[Takes::Text, Takes::Count],
            Function::LPad | Function::RPad => &[Takes::Text, Takes::Count, Takes::Text],
            Function::Round => &[Takes::Number, Takes::Count],
            Function::Mod => &[Takes::Exact],
            Function::Abs
            | Function::Ceil
            | Function::Floor
            | Function::Sign
            | Function::Power
            | Function::Sqrt
            | Function::Exp
            | Function::Ln => &[Takes::Number],
            Function::Now | Function::RandomUuid | Function::Random | Function::Pi => &[],
        }
    }

    /// What it takes at argument `i`.
    pub fn takes_at(self, i: usize) -> Takes {
        let takes = self.takes();
        takes.get(i).or(takes.last()).copied().unwrap_or(Takes::Any)
    }

    pub fn gives(self) -> Gives {
        match self {
            Function::Coalesce
            | Function::NullIf
            | Function::Greatest
            | Function::Least
            | Function::Abs
            | Function::Round
            | Function::Ceil
            | Function::Floor
            | Function::Mod => Gives::Alike,
            Function::Lower
            | Function::Upper
            | Function::Trim
            | Function::LTrim
            | Function::RTrim
            | Function::Concat
            | Function::Substr
            | Function::Left
            | Function::Right
            | Function::Replace
            | Function::LPad
            | Function::RPad
            | Function::Repeat
            | Function::Reverse
            | Function::Md5 => Gives::Text,
            Function::Length | Function::StrIndex => Gives::Integer,
            Function::Sign | Function::Power | Function::Sqrt | Function::Exp | Function::Ln => Gives::Fraction,
            Function::Random | Function::Pi => Gives::Fraction,
            Function::Now => Gives::Timestamp,
            Function::RandomUuid => Gives::Uuid,
            Function::JsonObject => Gives::Json,
        }
    }
}

/// The arithmetic of an [`Operand`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl ArithOp {
    /// The operator between its operands, spaced.
    pub fn sql(self) -> &'static str {
        match self {
            ArithOp::Add => " + ",
            ArithOp::Sub => " - ",
            ArithOp::Mul => " * ",
            ArithOp::Div => " / ",
        }
    }
}

impl Operand {
    /// `value` converted to the PostgreSQL type `to` (`int4`, `varchar(20)`,
    /// `numeric(10, 2)`, `timestamptz`); `None` for anything but a type name, which is
    /// written into the SQL as it is.
    pub fn cast(value: Operand, to: &str) -> Option<Operand> {
        let base = to.split('(').next().unwrap_or_default().trim_end();
        let named = !base.is_empty()
            && base.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ' ');
        let sized = to[base.len()..].chars().all(|c| c.is_ascii_digit() || matches!(c, '(' | ')' | ',' | ' '));
        (named && sized).then(|| Operand::Convert { value: Box::new(value), to: to.to_owned() })
    }

    /// `left op right`.
    pub fn arith(left: Operand, op: ArithOp, right: Operand) -> Operand {
        Operand::Arith { left: Box::new(left), op, right: Box::new(right) }
    }
}

impl From<Value> for Operand {
    fn from(value: Value) -> Self {
        Operand::Value(value)
    }
}

/// An `UPDATE` of the rows matching `filter` (all rows when `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub table: Ident,
    pub set: Vec<Assignment>,
    pub filter: Option<Expr>,
    /// Columns of the updated rows to read back (`RETURNING`), none if empty.
    pub returning: Vec<Ident>,
}

/// A `DELETE` of the rows matching `filter` (all rows when `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct Delete {
    pub table: Ident,
    pub filter: Option<Expr>,
    /// Columns of the deleted rows to read back (`RETURNING`), none if empty.
    pub returning: Vec<Ident>,
}

/// An `INSERT` of one or many rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Insert {
    pub table: Ident,
    pub columns: Vec<Ident>,
    /// The SQL type of each column (`int8`, `text`, …): lets a dialect send many rows as
    /// one array per column instead of one parameter per value.
    pub column_types: Vec<Cow<'static, str>>,
    /// Values, row by row, in `columns` order.
    pub rows: Vec<Vec<Value>>,
    /// Or, for a bulk insert, one array per column, in `columns` order (rows unpacked
    /// with `UNNEST`); used instead of `rows` when not empty, with `column_types`.
    pub arrays: Vec<Value>,
    /// Columns to return from each inserted row (generated keys, defaults).
    pub returning: Vec<Ident>,
    /// Update these columns instead when a row with the same `conflict_target` exists.
    pub upsert: Option<Upsert>,
}

/// An `UPDATE` of many rows, each to values of its own, in one statement: the rows
/// travel as one array per column and are matched by `key` (given as the first column).
/// A key given more than once takes its last row's values.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkUpdate {
    pub table: Ident,
    /// The key column first, then the columns to set.
    pub columns: Vec<Ident>,
    /// The SQL type of each column (`int8`, `text`, …), in `columns` order.
    pub column_types: Vec<Cow<'static, str>>,
    /// One array per column, in `columns` order, all of the same length.
    pub arrays: Vec<Value>,
}

/// `ON CONFLICT (target) DO UPDATE SET column = excluded.column, …`; with nothing to
/// update, `DO NOTHING`, which needs no target (any unique constraint then counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upsert {
    pub conflict_target: Vec<Ident>,
    pub update: Vec<Ident>,
}
