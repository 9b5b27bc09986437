//! The compiler: walks an AST node once and writes SQL text plus parameters through a
//! [`Dialect`]. User values only ever become parameters.

use chakra_service::{Labels, Mode, Request, Result, Row, Statement, Value};

use crate::ast::{
    Aggregate, Annotation, BulkUpdate, CompareOp, DatePart, Delete, Expr, Function, Hop, Ident, Insert, JsonTest,
    Nulls, Operand, Order, Pattern, Projection, Scalar, Select, Takes, Update, WindowFunction,
};
use crate::dialect::Dialect;

/// The alias of a related table in an annotation's subquery (see [`Scalar::Related`]).
const RELATED: &str = "related";

/// SQL text under construction and its parameters, numbered as they are added.
pub struct SqlWriter<'d> {
    dialect: &'d dyn Dialect,
    sql: String,
    params: Vec<Value>,
    /// The names the tables of the queries being written go by, outermost first: where
    /// an [`Operand::Outer`] finds the row it names.
    scopes: Vec<Ident>,
}

impl<'d> SqlWriter<'d> {
    pub fn new(dialect: &'d dyn Dialect) -> Self {
        SqlWriter { dialect, sql: String::with_capacity(128), params: Vec::new(), scopes: Vec::new() }
    }

    /// Writes `body` as the query whose table goes by `name`, for the subqueries within
    /// to reach its row.
    fn scoped(&mut self, name: &Ident, body: impl FnOnce(&mut Self)) {
        self.scopes.push(name.clone());
        body(self);
        self.scopes.pop();
    }

    /// `select` as a subquery that may name the enclosing row ([`Operand::Outer`]),
    /// written by `write`: renamed when its table is one the enclosing queries already
    /// go by, so the names reach the row they mean.
    fn correlated(&mut self, select: &Select, write: impl FnOnce(&mut Self, &Select)) {
        if self.scopes.contains(&select.table) {
            let alias = Ident::from(format!("{SUBQUERY}{}", self.scopes.len()));
            write(self, &Select { alias: Some(alias), ..select.clone() });
        } else {
            write(self, select);
        }
    }

    /// Raw SQL text: keywords and punctuation only, never user data.
    pub fn push(&mut self, sql: &str) {
        self.sql.push_str(sql);
    }

    /// A quoted identifier.
    pub fn ident(&mut self, ident: &str) {
        self.dialect.quote(&mut self.sql, ident);
    }

    /// Identifiers separated by commas.
    pub fn idents<'a>(&mut self, idents: impl IntoIterator<Item = &'a Ident>) {
        for (i, ident) in idents.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.ident(ident);
        }
    }

    /// A parameter's placeholder; the value travels separately.
    pub fn param(&mut self, value: Value) {
        self.params.push(value);
        self.dialect.placeholder(&mut self.sql, self.params.len());
    }

    pub fn finish(self) -> Statement {
        Statement::new(self.sql, self.params)
    }

    /// Writes a condition.
    pub fn expr(&mut self, expr: &Expr) {
        match expr {
            Expr::Compare { column, op, value } => {
                self.ident(column);
                self.compared_to(*op, value);
            }
            Expr::AggregateCompare { aggregate, op, value } => {
                self.aggregate(aggregate);
                self.compared_to(*op, &Operand::Value(value.clone()));
            }
            Expr::In { values, negated, .. } if values.is_empty() => self.push(if *negated { "TRUE" } else { "FALSE" }),
            Expr::In { column, values, negated } => self.dialect.write_in(self, column, values, *negated),
            Expr::ScalarCompare { scalar, op, value } => {
                self.scalar(scalar);
                self.compared_to(*op, value);
            }
            Expr::InSelect { column, select, negated } => {
                self.ident(column);
                self.push(if *negated { " NOT IN (" } else { " IN (" });
                match select.projection {
                    Projection::Columns => self.selection(select, Selected::Bare),
                    _ => self.select(select),
                }
                self.push(")");
            }
            Expr::IsNull { column, negated } => {
                self.ident(column);
                self.push(if *negated { " IS NOT NULL" } else { " IS NULL" });
            }
            Expr::Like { column, pattern: Pattern::Regex(regex), case_insensitive } => {
                self.ident(column);
                self.push(self.dialect.regex_match(*case_insensitive));
                self.param(Value::Text(regex.clone()));
            }
            Expr::Like { column, pattern: Pattern::Search(query), .. } => {
                self.dialect.write_search(self, column, query)
            }
            Expr::Like { column, pattern, case_insensitive } => {
                self.ident(column);
                self.push(if *case_insensitive { self.dialect.ilike() } else { " LIKE " });
                self.param(Value::Text(pattern.to_like()));
                self.push(" ESCAPE '\\'");
            }
            Expr::Between { column, low, high } => {
                self.ident(column);
                self.push(" BETWEEN ");
                self.param(low.clone());
                self.push(" AND ");
                self.param(high.clone());
            }
            Expr::And(all) if all.is_empty() => self.push("TRUE"),
            Expr::Or(any) if any.is_empty() => self.push("FALSE"),
            Expr::And(all) => self.joined(all, " AND "),
            Expr::Or(any) => self.joined(any, " OR "),
            Expr::Not(inner) => {
                self.push("NOT (");
                self.expr(inner);
                self.push(")");
            }
            Expr::NotTrue(inner) => {
                self.push("(");
                self.expr(inner);
                self.push(") IS NOT TRUE");
            }
            Expr::Literal(value) => self.push(if *value { "TRUE" } else { "FALSE" }),
            Expr::Json { column, path, test, value } => {
                if path.is_empty() {
                    self.ident(column);
                } else {
                    self.push("(");
                    self.ident(column);
                    self.push(" #> ");
                    self.param(Value::Array(path.iter().map(|key| Value::Text(key.clone())).collect()));
                    self.push(")");
                }
                let op = match test {
                    JsonTest::Compare(op) => op.sql(),
                    JsonTest::HasKey => " ? ",
                    JsonTest::HasKeys => " ?& ",
                    JsonTest::HasAnyKeys => " ?| ",
                    JsonTest::Contains => " @> ",
                    JsonTest::ContainedBy => " <@ ",
                    JsonTest::IsNull { negated } => {
                        return self.push(if *negated { " IS NOT NULL" } else { " IS NULL" })
                    }
                };
                self.push(op);
                self.param(value.clone());
            }
            Expr::Exists { select, negated } => {
                self.push(if *negated { "NOT EXISTS (" } else { "EXISTS (" });
                self.correlated(select, |w, select| w.selection(select, Selected::One));
                self.push(")");
            }
        }
    }

    /// Writes a value as a parameter, a column by name, arithmetic in parentheses, a
    /// function call or a `CASE`.
    pub fn operand(&mut self, operand: &Operand) {
        match operand {
            Operand::Value(value) => self.param(value.clone()),
            Operand::Column(column) => self.ident(column),
            // Values typed: the column beside one would give it the column's type, and
            // `int_column / 2.5` must not send 2.5 as an integer.
            Operand::Arith { left, op, right } => {
                self.push("(");
                self.typed_operand(left);
                self.push(op.sql());
                self.typed_operand(right);
                self.push(")");
            }
            Operand::Outer(column) => self.outer(column),
            Operand::Scalar(scalar) => self.scalar(scalar),
            // One subquery joining the hops, each table under an alias of its own (the
            // row's table may recur along the way), naming the row as its query does.
            Operand::Referred { hops, column } => {
                let last = hop_alias(hops.len() - 1);
                let row = self.scopes.last().cloned().unwrap_or_default(); // every statement has one
                self.push("(SELECT ");
                self.qualified(&last, column);
                self.push(" ");
                self.hops(&row, hops, &last);
                self.push(")");
            }
            Operand::Convert { value, to } => self.convert(value, to),
            // Arguments as they are: the functions' own types (an `integer` offset, a
            // value of the column's type) tell the server theirs.
            Operand::Window { function, args, partition_by, order_by } => {
                self.push(function.sql());
                self.push("(");
                match (function, args.is_empty()) {
                    (WindowFunction::Aggregate(_), true) => self.push("*"),
                    _ => self.operands(args, Self::operand),
                }
                self.push(") OVER (");
                if !partition_by.is_empty() {
                    self.push("PARTITION BY ");
                    self.operands(partition_by, Self::operand);
                }
                if !order_by.is_empty() {
                    self.push(if partition_by.is_empty() { "ORDER BY " } else { " ORDER BY " });
                    self.order_terms(order_by, None);
                }
                self.push(")");
            }
            Operand::Subquery(select) => {
                self.push("(");
                self.correlated(select, |w, select| w.selection(select, Selected::Bare));
                self.push(")");
            }
            Operand::Condition(condition) => {
                self.push("(");
                self.expr(condition);
                self.push(")");
            }
            Operand::Call { function, args } => {
                self.push(function.sql());
                self.push("(");
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 {
                        self.push(", ");
                    }
                    // Positions and lengths are PostgreSQL `integer`s, which a `bigint`
                    // does not become by itself; `round` to places is `numeric`'s only.
                    let cast = match function.takes_at(i) {
                        Takes::Count => Some("int4"),
                        Takes::Number if *function == Function::Round && args.len() == 2 => Some("numeric"),
                        _ => None,
                    };
                    match cast {
                        Some(to) => self.convert(arg, to),
                        None => self.typed_operand(arg),
                    }
                }
                self.push(")");
            }
            Operand::Raw { parts, params } => {
                self.push("(");
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        self.param(params[i - 1].clone());
                    }
                    self.push(part);
                }
                self.push(")");
            }
            Operand::Case { branches, otherwise } => {
                self.push("CASE");
                for (condition, then) in branches {
                    self.push(" WHEN ");
                    self.expr(condition);
                    self.push(" THEN ");
                    self.typed_operand(then);
                }
                if let Some(otherwise) = otherwise {
                    self.push(" ELSE ");
                    self.typed_operand(otherwise);
                }
                self.push(" END");
            }
        }
    }

    /// Operands separated by commas, each written by `write`.
    fn operands(&mut self, operands: &[Operand], write: fn(&mut Self, &Operand)) {
        for (i, operand) in operands.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            write(self, operand);
        }
    }

    /// `CAST(operand AS to)`.
    fn convert(&mut self, operand: &Operand, to: &str) {
        self.push("CAST(");
        self.typed_operand(operand);
        self.push(" AS ");
        self.push(to);
        self.push(")");
    }

    /// An operand where nothing around it tells the server a parameter's type (a
    /// function's argument, a `CASE` branch): a value is cast to its own type, `NULL`
    /// written as such.
    fn typed_operand(&mut self, operand: &Operand) {
        match operand {
            Operand::Value(Value::Null) => self.push("NULL"),
            Operand::Value(value) => {
                let ty = value.natural_type();
                self.param(value.clone());
                self.push("::");
                self.push(ty.name());
            }
            other => self.operand(other),
        }
    }

    /// A column of the enclosing query's row (unqualified outside any query).
    fn outer(&mut self, column: &Ident) {
        match self.scopes.len().checked_sub(2).map(|i| self.scopes[i].clone()) {
            Some(outer) => self.qualified(&outer, column),
            None => self.ident(column),
        }
    }

    /// `<op> value` after a value just written, `IS [NOT] NULL` for a `NULL` value.
    /// ` <op> operand`, or ` IS [NOT] NULL` for `=`/`<>` a `NULL` value.
    fn compared_to(&mut self, op: CompareOp, operand: &Operand) {
        match (null_test(op), operand) {
            (Some(test), Operand::Value(Value::Null)) => self.push(test),
            _ => {
                self.push(op.sql());
                self.operand(operand);
            }
        }
    }

    fn joined(&mut self, exprs: &[Expr], separator: &str) {
        if let [only] = exprs {
            return self.expr(only);
        }
        self.push("(");
        for (i, expr) in exprs.iter().enumerate() {
            if i > 0 {
                self.push(separator);
            }
            self.expr(expr);
        }
        self.push(")");
    }

    fn filter(&mut self, filter: &Option<Expr>) {
        if let Some(expr) = filter {
            self.push(" WHERE ");
            self.expr(expr);
        }
    }
}

/// What comparing with `NULL` by `op` means: `IS NULL` for `=`, `IS NOT NULL` for `<>`
/// (SQL's `= NULL` is never true); `None` for the other operators.
fn null_test(op: CompareOp) -> Option<&'static str> {
    match op {
        CompareOp::Eq => Some(" IS NULL"),
        CompareOp::Ne => Some(" IS NOT NULL"),
        _ => None,
    }
}

/// Renders a `SELECT`.
pub fn select(dialect: &dyn Dialect, select: &Select) -> Statement {
    let mut w = SqlWriter::new(dialect);
    w.select(select);
    w.finish()
}

/// How many rows `select` gives, whatever it selects — groups, distinct values, a
/// window — as `SELECT count(*) FROM (…) AS counted`; or, with `exists`, whether it gives
/// any (`SELECT EXISTS (…)`).
pub fn count_rows(dialect: &dyn Dialect, select: &Select, exists: bool) -> Statement {
    let mut w = SqlWriter::new(dialect);
    w.push(if exists { "SELECT EXISTS (" } else { "SELECT count(*) FROM (" });
    w.select(select);
    w.push(if exists { ")" } else { ") AS counted" });
    w.finish()
}

impl SqlWriter<'_> {
    /// A whole `SELECT`: a statement's, or a subquery's (its parameters numbered on from
    /// the enclosing statement's).
    fn select(&mut self, select: &Select) {
        let name = select.alias.as_ref().unwrap_or(&select.table).clone();
        self.scoped(&name, |w| w.select_in_scope(select));
    }

    fn select_in_scope(&mut self, select: &Select) {
        match select.projection {
            Projection::Count if !select.combined.is_empty() => {
                self.push("SELECT count(*) FROM (");
                self.combination(select);
                self.push(") AS counted");
            }
            Projection::Exists if !select.combined.is_empty() => {
                self.push("SELECT EXISTS (");
                self.combination(select);
                self.push(")");
            }
            Projection::Columns if !select.reached.is_empty() => self.with_reached(select),
            Projection::Columns if !select.joins.is_empty() => self.with_joins(select),
            Projection::Columns => self.selection(select, Selected::Columns),
            Projection::Exists => {
                self.push("SELECT EXISTS (");
                self.selection(select, Selected::One);
                self.push(")");
            }
            // Groups: the aggregates per group, the groups ordered and sliced; over the locked
            // rows as a subquery (PostgreSQL locks no rows for a grouped query).
            // A group key may be an annotation (a value computed per row): computed here, or
            // by the subquery of rows, which then holds it as a column.
            Projection::Aggregates if !select.group_by.is_empty() => {
                let over_rows =
                    select.lock.is_some() || select.annotation_filter.is_some() || !select.reached.is_empty();
                self.push("SELECT ");
                for (i, key) in select.group_by.iter().enumerate() {
                    if i > 0 {
                        self.push(", ");
                    }
                    match select.annotations.iter().find(|a| a.alias == *key) {
                        Some(annotation) if !over_rows => {
                            self.scalar(&annotation.value);
                            self.push(" AS ");
                            self.ident(key);
                        }
                        _ => self.ident(key),
                    }
                }
                self.push(", ");
                self.aggregates(select);
                match over_rows {
                    // The locked or annotated rows: every one matching, the window being
                    // the groups'.
                    true => {
                        let held = select.holding_annotations(|_| true);
                        let rows = Select { limit: None, offset: None, order: Vec::new(), ..held };
                        let held = if select.annotations.is_empty() { Selected::Bare } else { Selected::Columns };
                        match select.reached.is_empty() {
                            true => self.rows(&rows, Some(held)),
                            false => self.reached_rows(&rows, None),
                        }
                    }
                    false => self.rows(select, None),
                }
                self.push(" GROUP BY ");
                self.idents(&select.group_by);
                if let Some(having) = &select.having {
                    self.push(" HAVING ");
                    self.expr(having);
                }
                self.order(&select.order, None);
                self.slice(select);
            }
            // Counts and aggregates of a limited, locking, distinct or annotation-filtered
            // selection are over the rows of that selection (PostgreSQL locks no rows for an
            // aggregate), so they run over it as a subquery; of the others, over the table's
            // matching rows.
            Projection::Count | Projection::Aggregates => {
                let over_selection = select.limit.is_some()
                    || select.offset.is_some()
                    || select.lock.is_some()
                    || select.distinct
                    || !select.distinct_on.is_empty()
                    || select.annotation_filter.is_some();
                self.push("SELECT ");
                self.aggregates(select);
                if select.projection == Projection::Aggregates && !select.reached.is_empty() {
                    return self.reached_rows(select, None);
                }
                let inner = match select.projection {
                    Projection::Count if !select.distinct => Selected::One,
                    _ => Selected::Bare,
                };
                self.rows(select, over_selection.then_some(inner));
            }
        }
    }
}

impl SqlWriter<'_> {
    /// The query's rows with the rows its joins pick: `SELECT table.…, join_1.… FROM
    /// (the rows) AS table LEFT JOIN … AS join_1 ON …`. The rows are selected, filtered,
    /// sliced and locked as without joins, so joining changes neither which rows come
    /// nor what is locked (the joined rows are not); their order is set again outside,
    /// as a join need not keep it.
    fn with_joins(&mut self, select: &Select) {
        let table = &select.table;
        let alias = |i: usize| Ident::from(format!("{JOINED}{}", i + 1));
        self.push("SELECT ");
        let own = select.columns.iter().chain(select.selected_aliases());
        let joined = select.joins.iter().enumerate().flat_map(|(i, join)| join.columns.iter().map(move |c| (i, c)));
        for (n, (at, column)) in own.map(|c| (None, c)).chain(joined.map(|(i, c)| (Some(i), c))).enumerate() {
            if n > 0 {
                self.push(", ");
            }
            self.qualified(&at.map_or_else(|| table.clone(), alias), column);
        }
        // The rows hold the keys the joins start from, selected or not, and the
        // annotations the order names.
        let mut ordered = Vec::new();
        select.order.iter().for_each(|order| order.columns_into(&mut ordered));
        let mut rows = select.holding_annotations(|alias| ordered.contains(alias));
        for join in select.joins.iter().filter(|j| j.from.is_none()) {
            if !rows.columns.contains(&join.column) {
                rows.columns.push(join.column.clone());
            }
        }
        self.push(" FROM (");
        self.selection(&rows, Selected::Columns);
        self.push(") AS ");
        self.ident(table);
        for (i, join) in select.joins.iter().enumerate() {
            let from = join.from.map_or_else(|| table.clone(), alias);
            self.join(" LEFT JOIN ", &join.table, &alias(i), &join.key, (&from, &join.column));
        }
        self.order(&select.order, Some(table));
    }

    /// The query's rows combined with those of [`Select::combined`], each step in
    /// parentheses so the combinations run in the order given (SQL's `INTERSECT` would
    /// bind first): `((SELECT …) UNION (SELECT …)) EXCEPT (SELECT …) ORDER BY … LIMIT
    /// …`. Every part selects this query's columns and annotations (a part's own
    /// annotation of that name, else this query's); the order and slice are the
    /// combined rows'.
    fn combination(&mut self, select: &Select) {
        let first = Select { combined: Vec::new(), order: Vec::new(), limit: None, offset: None, ..select.clone() };
        for _ in 1..select.combined.len() {
            self.push("(");
        }
        self.part(&first, select);
        for (i, combined) in select.combined.iter().enumerate() {
            self.push(" ");
            self.push(combined.op.sql());
            self.push(if combined.all { " ALL " } else { " " });
            self.part(&combined.select, select);
            if i + 1 < select.combined.len() {
                self.push(")");
            }
        }
        self.order(&select.order, None);
        self.slice(select);
    }

    /// One part of a [`combination`](Self::combination), in parentheses, selecting what
    /// `outer` selects.
    fn part(&mut self, part: &Select, outer: &Select) {
        let annotations = outer
            .annotations
            .iter()
            .map(|a| match part.annotations.iter().find(|p| p.alias == a.alias) {
                Some(own) => Annotation { selected: a.selected, ..own.clone() },
                None => a.clone(),
            })
            .collect();
        let part = Select {
            columns: outer.columns.clone(),
            annotations,
            projection: Projection::Columns,
            joins: Vec::new(),
            ..part.clone()
        };
        self.push("(");
        self.select(&part);
        self.push(")");
    }

    /// The query's rows, each once per row [`Select::reached`] names (Django's
    /// `values("name", "books__title")`): `SELECT [DISTINCT] columns, annotations,
    /// reached columns FROM (the rows joined to them) AS table ORDER BY … LIMIT …`. The
    /// rows are filtered and locked as without the joins; the order, the slice and
    /// `DISTINCT` are the joined rows'. Joins ([`Select::joins`]) are left out.
    fn with_reached(&mut self, select: &Select) {
        // The rows hold the columns selected, those the joins start from and those the
        // order needs.
        let mut held = select.columns.clone();
        for first in select.reached.iter().filter_map(|r| r.hops.first()) {
            if !held.contains(&first.via) {
                held.push(first.via.clone());
            }
        }
        select.order.iter().for_each(|order| order.columns_into(&mut held));
        let holding = select.holding_annotations(|alias| held.contains(alias));
        let named = |column: &Ident| {
            select.annotations.iter().any(|a| a.alias == *column) || select.reached.iter().any(|r| r.alias == *column)
        };
        held.retain(|column| !named(column));
        let rows = Select {
            columns: held,
            order: Vec::new(),
            limit: None,
            offset: None,
            distinct: false,
            distinct_on: Vec::new(),
            joins: Vec::new(),
            ..holding
        };
        self.select_keyword(select, true);
        let mut selected: Vec<&Ident> = select.columns.iter().chain(select.selected_aliases()).collect();
        for reached in &select.reached {
            if !selected.contains(&&reached.alias) {
                selected.push(&reached.alias);
            }
        }
        self.idents(selected);
        // The joined rows go by the name the query's table does: a computed order names
        // them so. As a subquery, that name is not yet the innermost scope.
        let name = select.alias.as_ref().unwrap_or(&select.table).clone();
        self.reached_rows(&rows, Some(&name));
        match self.scopes.last() == Some(&name) {
            true => self.order(&select.order, None),
            false => self.scoped(&name, |w| w.order(&select.order, None)),
        }
        self.slice(select);
    }

    /// ` FROM` the query's rows (selected, filtered, sliced and locked as they would be)
    /// joined to the rows [`Select::reached`] names, each row once per row it reaches,
    /// with the reached columns under their aliases, as `name` (else as the table). A
    /// chain shares the joins of the hops it begins with with every other chain
    /// beginning so.
    fn reached_rows(&mut self, select: &Select, name: Option<&Ident>) {
        let table = &select.table;
        let mut chains: Vec<&[Hop]> = Vec::new();
        for reached in &select.reached {
            for end in 1..=reached.hops.len() {
                if !chains.contains(&&reached.hops[..end]) {
                    chains.push(&reached.hops[..end]);
                }
            }
        }
        let alias = |chain: &[Hop]| match chains.iter().position(|c| *c == chain) {
            Some(i) => Ident::from(format!("{REACHED}{}", i + 1)),
            None => table.clone(),
        };
        self.push(" FROM (SELECT ");
        self.ident(table);
        self.push(".*");
        let mut aliases: Vec<&Ident> = Vec::new();
        for reached in select.reached.iter().filter(|r| !r.hops.is_empty()) {
            if !aliases.contains(&&reached.alias) {
                aliases.push(&reached.alias);
                self.push(", ");
                self.qualified(&alias(&reached.hops), &reached.column);
                self.push(" AS ");
                self.ident(&reached.alias);
            }
        }
        self.push(" FROM (");
        self.selection(select, Selected::Columns);
        self.push(") AS ");
        self.ident(table);
        for chain in &chains {
            let (hop, from) = chain.split_last().expect("chains have a hop");
            match &hop.filter {
                None => self.join(" LEFT JOIN ", &hop.table, &alias(chain), &hop.key, (&alias(from), &hop.via)),
                // Only the rows meeting it, as a table of their own.
                Some(filter) => {
                    self.push(" LEFT JOIN (SELECT * FROM ");
                    self.ident(&hop.table);
                    self.push(" WHERE ");
                    self.scoped(&hop.table, |w| w.expr(filter));
                    self.push(")");
                    self.joined_as(&alias(chain), &hop.key, (&alias(from), &hop.via));
                }
            }
        }
        self.push(") AS ");
        self.ident(name.unwrap_or(select.alias.as_ref().unwrap_or(table)));
    }

    /// `<kind> table AS alias ON alias.key = from.column`.
    fn join(&mut self, kind: &str, table: &Ident, alias: &Ident, key: &Ident, from: (&Ident, &Ident)) {
        self.push(kind);
        self.ident(table);
        self.joined_as(alias, key, from);
    }

    /// ` AS alias ON alias.key = from.column`, after a joined table.
    fn joined_as(&mut self, alias: &Ident, key: &Ident, (from, column): (&Ident, &Ident)) {
        self.push(" AS ");
        self.ident(alias);
        self.push(" ON ");
        self.qualified(alias, key);
        self.push(" = ");
        self.qualified(from, column);
    }

    /// `"table"."column"`.
    fn qualified(&mut self, table: &Ident, column: &Ident) {
        self.ident(table);
        self.push(".");
        self.ident(column);
    }
}

/// The alias of the n-th join's table (from 1): a name no table of the model's is likely
/// to have, as the query's own table keeps its name.
const JOINED: &str = "chakra_join_";

/// The alias of a subquery over a table an enclosing query already names, by depth.
const SUBQUERY: &str = "chakra_sub_";

/// The alias of the n-th chain of hops (from 1) [`Select::reached`] joins.
const REACHED: &str = "chakra_reach_";

/// The alias of the n-th table (from 1) an [`Operand::Referred`] goes through.
const HOP: &str = "chakra_hop_";

/// The alias of hop `i` (from 0).
fn hop_alias(i: usize) -> Ident {
    Ident::from(format!("{HOP}{}", i + 1))
}

/// What [`SqlWriter::selection`] selects.
#[derive(Clone, Copy, PartialEq)]
enum Selected {
    /// The query's columns, then its annotations.
    Columns,
    /// The query's columns alone: a subquery's.
    Bare,
    /// `1` per row: for counting and `EXISTS`, which need no values.
    One,
}

impl SqlWriter<'_> {
    /// `SELECT [DISTINCT] … FROM table WHERE … ORDER BY … LIMIT … OFFSET … FOR …`; with
    /// conditions on annotations, the annotated rows as a derived table of the table's
    /// name (`FROM (SELECT …, annotations FROM table WHERE … FOR …) AS table WHERE …`).
    fn selection(&mut self, select: &Select, selected: Selected) {
        if !select.combined.is_empty() {
            return self.combined_selection(select, selected);
        }
        // A subquery of what relations reach from each row (`IN (…)`): a value per row
        // reached.
        if !select.reached.is_empty() && selected == Selected::Bare {
            return self.with_reached(select);
        }
        let name = select.alias.as_ref().unwrap_or(&select.table).clone();
        self.scoped(&name, |w| w.selection_in_scope(select, selected));
    }

    /// [`selection`](Self::selection) of combined rows: a subquery's too (`IN (…)`,
    /// `EXISTS (…)`), so that it is every part's rows, not the first's.
    fn combined_selection(&mut self, select: &Select, selected: Selected) {
        match selected {
            Selected::Columns => self.combination(select),
            Selected::Bare => self.combination(&Select { annotations: Vec::new(), ..select.clone() }),
            Selected::One => {
                self.push("SELECT 1 FROM (");
                self.combination(select);
                self.push(") AS combined");
            }
        }
    }

    /// The query's table, `AS` its alias if it has one.
    fn table(&mut self, select: &Select) {
        self.ident(&select.table);
        if let Some(alias) = &select.alias {
            self.push(" AS ");
            self.ident(alias);
        }
    }

    fn selection_in_scope(&mut self, select: &Select, selected: Selected) {
        let rows = selected != Selected::One;
        // The annotations computed: those the rows hold, and those they do not but the
        // outer filter or order names.
        let mut named = select.distinct_on.clone();
        select.annotation_filter.iter().for_each(|condition| condition.columns_into(&mut named));
        select.order.iter().for_each(|order| order.columns_into(&mut named));
        let computed: Vec<&Annotation> =
            select.annotations.iter().filter(|a| a.selected || named.contains(&a.alias)).collect();
        // Filtered or ordered by annotations they do not hold, the rows are a derived table.
        let derived = select.annotation_filter.is_some() || computed.iter().any(|a| !a.selected);
        self.select_keyword(select, rows);
        match selected {
            Selected::Columns if !derived => self.annotated_columns(&select.columns, computed.iter().copied()),
            Selected::Columns => self.idents(select.columns.iter().chain(select.selected_aliases())),
            Selected::Bare => self.idents(&select.columns),
            Selected::One => self.push("1"),
        }
        self.push(" FROM ");
        match derived {
            false => {
                self.table(select);
                self.filter(&select.filter);
            }
            true => {
                // The derived table holds the columns selected, and those the outer query
                // orders and filters by, besides the annotations.
                let mut inner = select.columns.clone();
                for column in &named {
                    if !inner.contains(column) {
                        inner.push(column.clone());
                    }
                }
                inner.retain(|column| !select.annotations.iter().any(|a| a.alias == *column));
                self.push("(SELECT ");
                self.annotated_columns(&inner, computed.iter().copied());
                self.push(" FROM ");
                self.table(select);
                self.filter(&select.filter);
                self.lock(select);
                self.push(") AS ");
                self.ident(select.alias.as_ref().unwrap_or(&select.table));
                if let Some(condition) = &select.annotation_filter {
                    self.push(" WHERE ");
                    self.expr(condition);
                }
            }
        }
        // Order only picks rows when there is a limit or offset, or returns them.
        if rows || select.limit.is_some() || select.offset.is_some() {
            self.order(&select.order, None);
        }
        self.slice(select);
        if !derived {
            self.lock(select);
        }
    }

    /// `SELECT `, `SELECT DISTINCT ` (when it selects `rows`: one per row has nothing to
    /// tell apart) or `SELECT DISTINCT ON (…) `.
    fn select_keyword(&mut self, select: &Select, rows: bool) {
        if !select.distinct_on.is_empty() {
            self.push("SELECT DISTINCT ON (");
            self.idents(&select.distinct_on);
            self.push(") ");
        } else {
            self.push(if select.distinct && rows { "SELECT DISTINCT " } else { "SELECT " });
        }
    }

    fn lock(&mut self, select: &Select) {
        if let Some(lock) = &select.lock {
            self.dialect.write_lock(self, lock);
        }
    }

    /// The columns, then each annotation `AS` its alias.
    fn annotated_columns<'a>(&mut self, columns: &[Ident], annotations: impl IntoIterator<Item = &'a Annotation>) {
        self.idents(columns);
        for (i, annotation) in annotations.into_iter().enumerate() {
            if i > 0 || !columns.is_empty() {
                self.push(", ");
            }
            self.scalar(&annotation.value);
            self.push(" AS ");
            self.ident(&annotation.alias);
        }
    }

    /// A value per row.
    fn scalar(&mut self, scalar: &Scalar) {
        match scalar {
            Scalar::Operand(operand) => self.operand(operand),
            // The related table under an alias of its own, so that `table` names the
            // outer row even when both are one table (a tree's children).
            Scalar::Related { aggregate, outer_table, hops } => {
                let related = Ident::Borrowed(RELATED);
                self.push("(SELECT ");
                self.defaulted(aggregate, |w| w.aggregate_call(aggregate));
                self.push(" ");
                match hops.len() {
                    1 => self.hops(outer_table, hops, &related),
                    // The last table's rows, one per chain of joined rows leading to it,
                    // as a derived table of its columns alone: the filter and the
                    // aggregate then name them as they would with one hop.
                    _ => {
                        self.push("FROM (SELECT ");
                        self.ident(&related);
                        self.push(".* ");
                        self.hops(outer_table, hops, &related);
                        self.push(") AS ");
                        self.ident(&related);
                    }
                }
                if let Some(condition) = &aggregate.filter {
                    self.push(if hops.len() == 1 { " AND " } else { " WHERE " });
                    self.expr(condition);
                }
                self.push(")");
            }
            Scalar::Cast { value, to } => {
                self.push("CAST(");
                self.scalar(value);
                self.push(" AS ");
                self.push(to.sql());
                self.push(")");
            }
            Scalar::Part { part, column } => self.date_part(*part, column),
            Scalar::Json { column, path, text } => {
                self.push("(");
                self.ident(column);
                self.push(if *text { " #>> " } else { " #> " });
                self.param(Value::Array(path.iter().map(|key| Value::Text(key.clone())).collect()));
                self.push("::text[])");
            }
            Scalar::Trunc { unit, column, date } => {
                self.push(if *date { "CAST(date_trunc('" } else { "date_trunc('" });
                self.push(unit.name());
                self.push("', ");
                self.ident(column);
                self.push(if *date { ") AS date)" } else { ")" });
            }
        }
    }

    /// `FROM` the hops' tables joined in turn, each under an alias of its own (the outer
    /// row's table may recur along the way), the last under `last`, `WHERE` the first
    /// holds the outer row's column.
    fn hops(&mut self, outer_table: &Ident, hops: &[Hop], last: &Ident) {
        let alias = |i: usize| if i + 1 == hops.len() { last.clone() } else { hop_alias(i) };
        self.push("FROM ");
        self.ident(&hops[0].table);
        self.push(" AS ");
        self.ident(&alias(0));
        for (i, step) in hops.iter().enumerate().skip(1) {
            self.join(" JOIN ", &step.table, &alias(i), &step.key, (&alias(i - 1), &step.via));
        }
        self.push(" WHERE ");
        self.qualified(&alias(0), &hops[0].key);
        self.push(" = ");
        self.qualified(outer_table, &hops[0].via);
    }

    /// A part of a date or time column: its date or time as that type, the others as
    /// `int8` (`EXTRACT` gives `numeric`, which a Rust or Python integer does not bind to).
    fn date_part(&mut self, part: DatePart, column: &Ident) {
        let field = match part {
            DatePart::Date | DatePart::Time => {
                self.push("CAST(");
                self.ident(column);
                self.push(if part == DatePart::Date { " AS date)" } else { " AS time)" });
                return;
            }
            DatePart::Year => "YEAR",
            DatePart::IsoYear => "ISOYEAR",
            DatePart::Quarter => "QUARTER",
            DatePart::Month => "MONTH",
            DatePart::Week => "WEEK",
            DatePart::Day => "DAY",
            DatePart::WeekDay => "DOW",
            DatePart::IsoWeekDay => "ISODOW",
            DatePart::Hour => "HOUR",
            DatePart::Minute => "MINUTE",
            // With its fraction otherwise, which the cast would round.
            DatePart::Second => "SECOND",
        };
        self.push("CAST(floor(EXTRACT(");
        self.push(field);
        self.push(" FROM ");
        self.ident(column);
        // PostgreSQL counts days of the week from 0 (Sunday); Django from 1.
        self.push(if part == DatePart::WeekDay { ")) + 1 AS int8)" } else { ")) AS int8)" });
    }

    /// ` FROM` the rows an aggregate runs over: the table's matching rows, or, given what
    /// to select of them, the query's selection of rows as a subquery.
    fn rows(&mut self, select: &Select, subquery: Option<Selected>) {
        self.push(" FROM ");
        match subquery {
            // Named as the table, so that values computed from its rows (an annotation's,
            // in an aggregate) find their columns.
            Some(selected) => {
                self.push("(");
                self.selection(select, selected);
                self.push(") AS ");
                self.ident(select.alias.as_ref().unwrap_or(&select.table));
            }
            None => {
                self.ident(&select.table);
                self.filter(&select.filter);
            }
        }
    }

    /// ` ORDER BY …`, if there is an order; its columns those of `table` if given.
    fn order(&mut self, order: &[Order], table: Option<&Ident>) {
        if order.is_empty() {
            return;
        }
        self.push(" ORDER BY ");
        self.order_terms(order, table);
    }

    /// An order's terms, separated by commas.
    fn order_terms(&mut self, order: &[Order], table: Option<&Ident>) {
        for (i, term) in order.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            match (&term.value, table) {
                (Some(value), _) => self.scalar(value),
                (None, Some(table)) => self.qualified(table, &term.column),
                (None, None) => self.ident(&term.column),
            }
            self.push(if term.descending { " DESC" } else { " ASC" });
            match term.nulls {
                Nulls::Default => {}
                Nulls::First => self.push(" NULLS FIRST"),
                Nulls::Last => self.push(" NULLS LAST"),
            }
        }
    }

    /// ` LIMIT … OFFSET …`, as far as the query has them.
    fn slice(&mut self, select: &Select) {
        if let Some(limit) = select.limit {
            self.push(" LIMIT ");
            self.param(Value::I64(i64::try_from(limit).unwrap_or(i64::MAX)));
        }
        if let Some(offset) = select.offset {
            self.push(" OFFSET ");
            self.param(Value::I64(i64::try_from(offset).unwrap_or(i64::MAX)));
        }
    }

    /// `function([DISTINCT] column) [FILTER (WHERE condition)]`, without its alias.
    fn aggregate(&mut self, aggregate: &Aggregate) {
        self.defaulted(aggregate, |w| {
            w.aggregate_call(aggregate);
            if let Some(condition) = &aggregate.filter {
                w.push(" FILTER (WHERE ");
                w.expr(condition);
                w.push(")");
            }
        });
    }

    /// What `write` writes, in `COALESCE(…, default)` when the aggregate has a default
    /// (a parameter, whose type the server takes from the aggregate's).
    fn defaulted(&mut self, aggregate: &Aggregate, write: impl FnOnce(&mut Self)) {
        match &aggregate.default {
            None => write(self),
            Some(default) => {
                self.push("COALESCE(");
                write(self);
                self.push(", ");
                self.param(default.clone());
                self.push(")");
            }
        }
    }

    /// `function([DISTINCT] value)`, without its filter (which a related value's
    /// subquery puts in its `WHERE`) or alias.
    fn aggregate_call(&mut self, aggregate: &Aggregate) {
        self.push(aggregate.function.sql());
        self.push(if aggregate.distinct { "(DISTINCT " } else { "(" });
        match &aggregate.value {
            Some(value) => self.operand(value),
            None => self.push("*"),
        }
        for arg in &aggregate.args {
            self.push(", ");
            self.typed_operand(arg);
        }
        if !aggregate.order_by.is_empty() {
            self.push(" ORDER BY ");
            self.order_terms(&aggregate.order_by, None);
        }
        self.push(")");
    }

    /// `count(*)`, or the query's aggregates separated by commas.
    fn aggregates(&mut self, select: &Select) {
        if select.projection == Projection::Count {
            return self.push("count(*)");
        }
        for (i, aggregate) in select.aggregates.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.aggregate(aggregate);
            if let Some(alias) = &aggregate.alias {
                self.push(" AS ");
                self.ident(alias);
            }
        }
    }
}

/// A request running `query` in `mode`: marked as needing a transaction when it locks
/// rows, so it is refused where its locks would be released at once.
pub fn select_request(dialect: &dyn Dialect, query: &Select, mode: Mode, labels: Labels) -> Request {
    Request::labelled(select(dialect, query), mode, labels).requires_transaction(query.lock.is_some())
}

/// A request for `query`'s plan (see [`Dialect::explain`]), rows of text. It needs a
/// transaction when the query locks rows, as the query itself would.
pub fn explain_request(dialect: &dyn Dialect, query: &Select, analyze: bool, labels: Labels) -> Request {
    let plan = select(dialect, query);
    let statement = Statement::new(format!("{}{}", dialect.explain(analyze), plan.sql), plan.params);
    Request::labelled(statement, Mode::All, labels).requires_transaction(query.lock.is_some())
}

/// The plan as text, one line per row of the answer to an [`explain_request`].
pub fn plan_text(rows: &[Row]) -> Result<String> {
    let lines = rows.iter().map(|row| row.try_get::<_, String>(0)).collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(lines.join("\n"))
}

/// Renders an `UPDATE`.
pub fn update(dialect: &dyn Dialect, update: &Update) -> Statement {
    let mut w = SqlWriter::new(dialect);
    w.push("UPDATE ");
    w.ident(&update.table);
    w.push(" SET ");
    w.scoped(&update.table, |w| {
        for (i, assignment) in update.set.iter().enumerate() {
            if i > 0 {
                w.push(", ");
            }
            w.ident(&assignment.column);
            w.push(" = ");
            w.operand(&assignment.value);
        }
        w.filter(&update.filter);
    });
    if !update.returning.is_empty() {
        w.push(" RETURNING ");
        w.idents(&update.returning);
    }
    w.finish()
}

/// Renders a `DELETE`.
pub fn delete(dialect: &dyn Dialect, delete: &Delete) -> Statement {
    let mut w = SqlWriter::new(dialect);
    w.push("DELETE FROM ");
    w.ident(&delete.table);
    w.scoped(&delete.table, |w| w.filter(&delete.filter));
    if !delete.returning.is_empty() {
        w.push(" RETURNING ");
        w.idents(&delete.returning);
    }
    w.finish()
}

/// Renders an `UPDATE` of many rows to values of their own.
pub fn bulk_update(dialect: &dyn Dialect, update: &BulkUpdate) -> Statement {
    let mut w = SqlWriter::new(dialect);
    dialect.write_bulk_update(&mut w, update);
    w.finish()
}

/// Renders an `INSERT` of one or many rows.
pub fn insert(dialect: &dyn Dialect, insert: &Insert) -> Statement {
    let mut w = SqlWriter::new(dialect);
    dialect.write_insert(&mut w, insert);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::{
        AggregateFn, Annotation, ArithOp, Combined, Hop, Join, Pattern, Reached, RowLock, SetOp, TextMatch,
    };
    use crate::dialect::Postgres;

    /// `column = value`.
    fn eq(column: &'static str, value: i64) -> Expr {
        Expr::Compare { column: col(column), op: CompareOp::Eq, value: Value::from(value).into() }
    }

    fn col(name: &'static str) -> Ident {
        name.into()
    }

    #[test]
    fn select_quotes_every_identifier_and_numbers_parameters() {
        let mut s = Select::new("users", ["id", "order"]);
        s.filter(Expr::Compare { column: col("name"), op: CompareOp::Eq, value: Value::from("a").into() });
        s.filter(Expr::Compare { column: col("age"), op: CompareOp::Gte, value: Value::from(18_i64).into() });
        s.order.push(Order::column(col("order"), true));
        s.limit = Some(10);
        let st = select(&Postgres, &s);
        assert_eq!(
            &*st.sql,
            r#"SELECT "id", "order" FROM "users" WHERE ("name" = $1 AND "age" >= $2) ORDER BY "order" DESC LIMIT $3"#
        );
        assert_eq!(st.params, vec![Value::from("a"), Value::I64(18), Value::I64(10)]);
    }

    #[test]
    fn comparing_with_null_means_is_null() {
        let mut s = Select::new("t", ["id"]);
        s.filter(Expr::Compare { column: col("email"), op: CompareOp::Eq, value: Value::Null.into() });
        assert_eq!(&*select(&Postgres, &s).sql, r#"SELECT "id" FROM "t" WHERE "email" IS NULL"#);
    }

    #[test]
    fn user_text_in_patterns_is_escaped() {
        let p = Pattern::Text(r"50%_off\now".into(), TextMatch::Contains);
        assert_eq!(p.to_like(), r"%50\%\_off\\now%");
        let mut s = Select::new("t", ["id"]);
        s.filter(Expr::Like { column: col("name"), pattern: p, case_insensitive: true });
        assert_eq!(&*select(&Postgres, &s).sql, r#"SELECT "id" FROM "t" WHERE "name" ILIKE $1 ESCAPE '\'"#);
    }

    #[test]
    fn a_subquery_numbers_its_parameters_on_from_the_statements() {
        let mut authors = Select::new("authors", ["id"]);
        authors.filter(eq("rank", 2));
        authors.limit = Some(5);
        let mut s = Select::new("books", ["id"]);
        s.filter(eq("year", 1));
        s.filter(Expr::InSelect { column: col("author_id"), select: Box::new(authors), negated: true });
        s.filter(eq("pages", 4));
        let st = select(&Postgres, &s);
        assert_eq!(
            &*st.sql,
            r#"SELECT "id" FROM "books" WHERE ("year" = $1 AND "author_id" NOT IN (SELECT "id" FROM "authors" WHERE "rank" = $2 LIMIT $3) AND "pages" = $4)"#
        );
        assert_eq!(st.params, [1_i64, 2, 5, 4].map(Value::from));
    }

    #[test]
    fn annotations_are_selected_after_the_columns_and_filtered_over_a_derived_table() {
        let mut books = Aggregate::count_rows();
        books.filter = Some(Box::new(eq("year", 2)));
        let annotation = |alias, value| Annotation::new(col(alias), value);
        let mut s = Select::new("authors", ["id"]);
        s.filter(eq("rank", 1));
        s.annotations = vec![
            annotation(
                "books",
                Scalar::Related {
                    aggregate: books,
                    outer_table: col("authors"),
                    hops: vec![Hop::new(col("id"), col("books"), col("author_id"))],
                },
            ),
            annotation(
                "twice",
                Scalar::Cast {
                    value: Box::new(Scalar::Operand(Operand::arith(
                        Operand::Column(col("rank")),
                        ArithOp::Mul,
                        Operand::Value(Value::I64(3)),
                    ))),
                    to: crate::ast::Cast::Float8,
                },
            ),
        ];
        s.order = vec![Order::column(col("books"), true)];
        let related = r#"(SELECT count(*) FROM "books" AS "related" WHERE "related"."author_id" = "authors"."id" AND "year" = $1)"#;
        let twice = r#"CAST(("rank" * $2::int8) AS float8)"#;
        let st = select(&Postgres, &s);
        assert_eq!(
            &*st.sql,
            format!(
                r#"SELECT "id", {related} AS "books", {twice} AS "twice" FROM "authors" WHERE "rank" = $3 ORDER BY "books" DESC"#
            )
        );
        assert_eq!(st.params, [2_i64, 3, 1].map(Value::from), "numbered as written");

        s.annotation_filter =
            Some(Expr::Compare { column: col("books"), op: CompareOp::Gt, value: Value::from(4_i64).into() });
        s.limit = Some(5);
        let inner =
            format!(r#"SELECT "id", {related} AS "books", {twice} AS "twice" FROM "authors" WHERE "rank" = $3"#);
        let st = select(&Postgres, &s);
        assert_eq!(
            &*st.sql,
            format!(
                r#"SELECT "id", "books", "twice" FROM ({inner}) AS "authors" WHERE "books" > $4 ORDER BY "books" DESC LIMIT $5"#
            )
        );
        assert_eq!(st.params, [2_i64, 3, 1, 4, 5].map(Value::from));

        // Narrowed to the annotation (a values() of it), the derived table still holds
        // the columns the outer query orders by.
        let narrowed = Select { columns: vec![], order: vec![Order::column(col("name"), false)], ..s.clone() };
        let sql = select(&Postgres, &narrowed).sql;
        assert!(sql.starts_with(r#"SELECT "books", "twice" FROM (SELECT "name", (SELECT count(*)"#), "{sql}");

        s.projection = Projection::Count;
        let counted = select(&Postgres, &s).sql;
        assert_eq!(
            &*counted,
            format!(
                r#"SELECT count(*) FROM (SELECT 1 FROM ({inner}) AS "authors" WHERE "books" > $4 ORDER BY "books" DESC LIMIT $5) AS "authors""#
            )
        );
    }

    #[test]
    fn annotations_the_rows_do_not_hold_are_computed_only_for_the_filter_and_order_naming_them() {
        let rank = |alias| Annotation {
            selected: false,
            ..Annotation::new(col(alias), Scalar::Operand(Operand::Column(col("rank"))))
        };
        let mut s = Select::new("authors", ["id"]);
        s.annotations = vec![rank("r"), Annotation::new(col("shown"), Scalar::Operand(Operand::Column(col("rank"))))];
        // Named by nothing: not computed.
        assert_eq!(&*select(&Postgres, &s).sql, r#"SELECT "id", "rank" AS "shown" FROM "authors""#);
        // Ordered by: computed in a derived table the outer query sorts by, not selected.
        s.order = vec![Order::column(col("r"), true)];
        let inner = r#"SELECT "id", "rank" AS "r", "rank" AS "shown" FROM "authors""#;
        assert_eq!(
            &*select(&Postgres, &s).sql,
            format!(r#"SELECT "id", "shown" FROM ({inner}) AS "authors" ORDER BY "r" DESC"#)
        );
        // Filtered by too; counted, the filter alone needs it.
        s.annotation_filter = Some(eq("r", 2));
        assert_eq!(
            &*select(&Postgres, &s).sql,
            format!(r#"SELECT "id", "shown" FROM ({inner}) AS "authors" WHERE "r" = $1 ORDER BY "r" DESC"#)
        );
        s.projection = Projection::Count;
        s.order.clear();
        assert_eq!(
            &*select(&Postgres, &s).sql,
            format!(r#"SELECT count(*) FROM (SELECT 1 FROM ({inner}) AS "authors" WHERE "r" = $1) AS "authors""#)
        );
        // Rows joined to others hold what the order names.
        let mut joined = Select::new("authors", ["id"]);
        joined.annotations = vec![rank("r")];
        joined.order = vec![Order::column(col("r"), false)];
        joined.joins = vec![Join {
            table: col("cities"),
            columns: vec![col("id")],
            key: col("id"),
            from: None,
            column: col("city_id"),
        }];
        let rows = r#"SELECT "id", "city_id", "rank" AS "r" FROM "authors" ORDER BY "r" ASC"#;
        assert_eq!(
            &*select(&Postgres, &joined).sql,
            format!(
                r#"SELECT "authors"."id", "chakra_join_1"."id" FROM ({rows}) AS "authors" LEFT JOIN "cities" AS "chakra_join_1" ON "chakra_join_1"."id" = "authors"."city_id" ORDER BY "authors"."r" ASC"#
            )
        );
    }

    #[test]
    fn distinct_on_keeps_the_first_row_of_each_combination_and_counts_over_them() {
        let mut s = Select::new("orders", ["id", "customer", "placed"]);
        s.distinct_on = vec![col("customer")];
        s.order = vec![Order::column(col("customer"), false), Order::column(col("placed"), true)];
        let rows = r#"SELECT DISTINCT ON ("customer") "id", "customer", "placed" FROM "orders" ORDER BY "customer" ASC, "placed" DESC"#;
        assert_eq!(&*select(&Postgres, &s).sql, rows);
        assert_eq!(s.order_outside_rows(), None);
        s.projection = Projection::Count;
        assert_eq!(
            &*select(&Postgres, &s).sql,
            r#"SELECT count(*) FROM (SELECT DISTINCT ON ("customer") 1 FROM "orders") AS "orders""#,
            "one per customer, whichever the order"
        );
        // The order must begin with the columns: PostgreSQL refuses any other.
        s.order.reverse();
        assert_eq!(s.order_outside_rows().map(|o| o.column.to_string()), Some("placed".into()));
    }

    #[test]
    fn joined_rows_follow_the_rows_own_which_are_picked_and_locked_as_without_them() {
        let join = |table, columns: [&'static str; 2], from, column| Join {
            table: col(table),
            columns: columns.map(col).to_vec(),
            key: col("id"),
            from,
            column: col(column),
        };
        let mut s = Select::new("books", ["id", "author_id"]);
        s.filter(eq("year", 1));
        s.order.push(Order::column(col("id"), true));
        s.limit = Some(2);
        s.lock = Some(RowLock::update());
        s.joins = vec![
            join("authors", ["id", "publisher_id"], None, "author_id"),
            join("publishers", ["id", "name"], Some(0), "publisher_id"),
        ];
        let st = select(&Postgres, &s);
        assert_eq!(
            &*st.sql,
            concat!(
                r#"SELECT "books"."id", "books"."author_id", "chakra_join_1"."id", "chakra_join_1"."publisher_id", "chakra_join_2"."id", "chakra_join_2"."name" "#,
                r#"FROM (SELECT "id", "author_id" FROM "books" WHERE "year" = $1 ORDER BY "id" DESC LIMIT $2 FOR UPDATE) AS "books" "#,
                r#"LEFT JOIN "authors" AS "chakra_join_1" ON "chakra_join_1"."id" = "books"."author_id" "#,
                r#"LEFT JOIN "publishers" AS "chakra_join_2" ON "chakra_join_2"."id" = "chakra_join_1"."publisher_id" "#,
                r#"ORDER BY "books"."id" DESC"#
            )
        );
        assert_eq!(st.params, [1_i64, 2].map(Value::from));
        // Counting, and selecting keys for another query, leave the joins out.
        let count = Select { projection: Projection::Count, ..s.clone() };
        assert!(!select(&Postgres, &count).sql.contains("JOIN"));
        let mut outer = Select::new("reviews", ["id"]);
        outer.filter(Expr::InSelect { column: col("book_id"), select: Box::new(s), negated: false });
        assert!(!select(&Postgres, &outer).sql.contains("JOIN"));
    }

    #[test]
    fn rows_order_by_the_rows_their_foreign_keys_lead_to() {
        let hop = |via, table| Hop::new(col(via), col(table), col("id"));
        let publisher_name = Scalar::Operand(Operand::Referred {
            hops: vec![hop("author_id", "authors"), hop("publisher_id", "publishers")],
            column: col("name"),
        });
        let mut s = Select::new("books", ["id"]);
        s.order =
            vec![Order::computed(col("author__publisher__name"), publisher_name, true), Order::column("id", false)];
        s.limit = Some(3);
        let by = r#"(SELECT "chakra_hop_2"."name" FROM "authors" AS "chakra_hop_1" JOIN "publishers" AS "chakra_hop_2" ON "chakra_hop_2"."id" = "chakra_hop_1"."publisher_id" WHERE "chakra_hop_1"."id" = "books"."author_id")"#;
        assert_eq!(
            &*select(&Postgres, &s).sql,
            format!(r#"SELECT "id" FROM "books" ORDER BY {by} DESC, "id" ASC LIMIT $1"#)
        );
        // Over a derived table (a filter on an annotation), it holds the key the value needs.
        s.annotations = vec![Annotation::new(col("n"), Scalar::Operand(Operand::Column(col("id"))))];
        s.annotation_filter = Some(eq("n", 1));
        let sql = select(&Postgres, &s).sql;
        assert!(sql.contains(r#"FROM (SELECT "id", "author_id", "id" AS "n" FROM "books") AS "books""#), "{sql}");
    }

    #[test]
    fn an_aggregate_across_two_relations_counts_the_last_ones_rows_once_per_chain() {
        // Each author's reviews of their books rated 4 or more.
        let mut reviews = Aggregate::count_rows();
        reviews.filter = Some(Box::new(Expr::Compare {
            column: col("rating"),
            op: CompareOp::Gte,
            value: Value::from(4_i64).into(),
        }));
        let hops = vec![
            Hop::new(col("id"), col("books"), col("author_id")),
            Hop::new(col("id"), col("reviews"), col("book_id")),
        ];
        let mut s = Select::new("authors", ["id"]);
        s.annotations =
            vec![Annotation::new(col("n"), Scalar::Related { aggregate: reviews, outer_table: col("authors"), hops })];
        let rows = r#"SELECT "related".* FROM "books" AS "chakra_hop_1" JOIN "reviews" AS "related" ON "related"."book_id" = "chakra_hop_1"."id" WHERE "chakra_hop_1"."author_id" = "authors"."id""#;
        assert_eq!(
            &*select(&Postgres, &s).sql,
            format!(
                r#"SELECT "id", (SELECT count(*) FROM ({rows}) AS "related" WHERE "rating" >= $1) AS "n" FROM "authors""#
            )
        );
    }

    #[test]
    fn aggregates_across_relations_run_over_the_rows_joined_to_what_they_reach() {
        let novels = vec![Hop::new(col("id"), col("novels"), col("writer_id"))];
        let chapters = [novels.clone(), vec![Hop::new(col("id"), col("chapters"), col("novel_id"))]].concat();
        let reached =
            |hops: &Vec<Hop>, column, alias| Reached { hops: hops.clone(), column: col(column), alias: col(alias) };
        let of = |function, column: &'static str, alias: &'static str| Aggregate {
            alias: Some(col(alias)),
            ..Aggregate::new(function, column)
        };
        let mut s = Select::new("writers", ["id", "country"]);
        s.filter(eq("rank", 1));
        s.projection = Projection::Aggregates;
        s.group_by = vec![col("country")];
        s.aggregates =
            vec![of(AggregateFn::Count, "novels", "n"), of(AggregateFn::Sum, "novels__chapters__words", "w")];
        s.reached = vec![
            reached(&novels, "id", "novels"),
            reached(&chapters, "words", "novels__chapters__words"),
            reached(&novels, "id", "novels"),
        ];
        s.limit = Some(2);
        let rows = r#"SELECT "writers".*, "chakra_reach_1"."id" AS "novels", "chakra_reach_2"."words" AS "novels__chapters__words" FROM (SELECT "id", "country" FROM "writers" WHERE "rank" = $1) AS "writers" LEFT JOIN "novels" AS "chakra_reach_1" ON "chakra_reach_1"."writer_id" = "writers"."id" LEFT JOIN "chapters" AS "chakra_reach_2" ON "chakra_reach_2"."novel_id" = "chakra_reach_1"."id""#;
        assert_eq!(
            &*select(&Postgres, &s).sql,
            format!(
                r#"SELECT "country", count("novels") AS "n", sum("novels__chapters__words") AS "w" FROM ({rows}) AS "writers" GROUP BY "country" LIMIT $2"#
            )
        );
        // Without groups, over the rows the query picks.
        s.group_by.clear();
        let sql = select(&Postgres, &s).sql;
        assert!(
            sql.starts_with(
                r#"SELECT count("novels") AS "n", sum("novels__chapters__words") AS "w" FROM (SELECT "writers".*"#
            ),
            "{sql}"
        );
        assert!(sql.contains(r#"FROM "writers" WHERE "rank" = $1 LIMIT $2) AS "writers""#), "{sql}");
    }

    #[test]
    fn combined_queries_run_in_the_order_written_and_sliced_parts_pick_by_key() {
        let part = |column: &'static str| {
            let mut s = Select::new("t", ["id", "n"]);
            s.filter(eq(column, 1));
            s
        };
        let mut sliced = part("c");
        sliced.order = vec![Order::column("n", true)];
        sliced.limit = Some(2);
        let mut s = part("a").into_part(&col("id"));
        s.combined = vec![
            Combined { op: SetOp::Union, all: true, select: part("b").into_part(&col("id")) },
            Combined { op: SetOp::Intersect, all: false, select: sliced.into_part(&col("id")) },
        ];
        s.order = vec![Order::column("n", false)];
        s.limit = Some(5);
        let sql = select(&Postgres, &s).sql;
        assert_eq!(
            &*sql,
            r#"((SELECT "id", "n" FROM "t" WHERE "a" = $1) UNION ALL (SELECT "id", "n" FROM "t" WHERE "b" = $2)) INTERSECT (SELECT "id", "n" FROM "t" WHERE "id" IN (SELECT "id" FROM "t" WHERE "c" = $3 ORDER BY "n" DESC LIMIT $4)) ORDER BY "n" ASC LIMIT $5"#
        );
        s.projection = Projection::Count;
        let count = select(&Postgres, &s).sql;
        assert!(count.starts_with("SELECT count(*) FROM (((SELECT"), "{count}");
        assert!(count.ends_with(r#"ORDER BY "n" ASC LIMIT $5) AS counted"#), "{count}");
    }

    #[test]
    fn rows_selecting_what_relations_reach_come_once_per_row_reached() {
        // Django's values("country", "novels__title").distinct().order_by("novels__title")[:2]
        let novels = vec![Hop::new(col("id"), col("novels"), col("writer_id"))];
        let mut s = Select::new("writers", ["country"]);
        s.filter(eq("rank", 1));
        s.reached = vec![Reached { hops: novels, column: col("title"), alias: col("novels__title") }];
        s.order = vec![Order::column("novels__title", false)];
        s.distinct = true;
        s.limit = Some(2);
        // The rows hold the key the join starts from; order, slice and DISTINCT are the
        // joined rows'.
        let rows = r#"SELECT "writers".*, "chakra_reach_1"."title" AS "novels__title" FROM (SELECT "country", "id" FROM "writers" WHERE "rank" = $1) AS "writers" LEFT JOIN "novels" AS "chakra_reach_1" ON "chakra_reach_1"."writer_id" = "writers"."id""#;
        assert_eq!(
            &*select(&Postgres, &s).sql,
            format!(
                r#"SELECT DISTINCT "country", "novels__title" FROM ({rows}) AS "writers" ORDER BY "novels__title" ASC LIMIT $2"#
            )
        );
    }

    #[test]
    fn membership_is_one_array_parameter_and_empty_lists_match_nothing() {
        let mut s = Select::new("t", ["id"]);
        s.filter(Expr::In { column: col("id"), values: vec![1_i64.into(), 2_i64.into()], negated: false });
        let st = select(&Postgres, &s);
        assert_eq!(&*st.sql, r#"SELECT "id" FROM "t" WHERE "id" = ANY($1)"#);
        assert_eq!(st.params, vec![Value::Array(vec![1_i64.into(), 2_i64.into()])]);

        let mut s = Select::new("t", ["id"]);
        s.filter(Expr::In { column: col("id"), values: vec![], negated: false });
        assert_eq!(&*select(&Postgres, &s).sql, r#"SELECT "id" FROM "t" WHERE FALSE"#);
    }

    #[test]
    fn exclude_keeps_rows_where_the_condition_is_unknown() {
        let mut s = Select::new("t", ["id"]);
        s.filter(Expr::NotTrue(Box::new(Expr::Compare {
            column: col("a"),
            op: CompareOp::Eq,
            value: Value::from(1_i64).into(),
        })));
        assert_eq!(&*select(&Postgres, &s).sql, r#"SELECT "id" FROM "t" WHERE ("a" = $1) IS NOT TRUE"#);
    }

    #[test]
    fn count_and_exists_wrap_the_same_filter() {
        let mut s = Select::new("t", ["id"]);
        s.filter(Expr::IsNull { column: col("a"), negated: true });
        s.projection = Projection::Count;
        assert_eq!(&*select(&Postgres, &s).sql, r#"SELECT count(*) FROM "t" WHERE "a" IS NOT NULL"#);
        s.projection = Projection::Exists;
        assert_eq!(&*select(&Postgres, &s).sql, r#"SELECT EXISTS (SELECT 1 FROM "t" WHERE "a" IS NOT NULL)"#);
    }

    #[test]
    fn aggregates_run_over_the_table_or_over_a_limited_or_distinct_selection() {
        use crate::ast::{Aggregate, AggregateFn};
        let mut s = Select::new("t", ["id", "n"]);
        s.filter(Expr::IsNull { column: col("a"), negated: true });
        s.order.push(Order::column(col("n"), true));
        s.projection = Projection::Aggregates;
        s.aggregates = vec![
            Aggregate::new(AggregateFn::Sum, "n"),
            Aggregate { distinct: true, ..Aggregate::new(AggregateFn::Count, "n") },
            Aggregate::count_rows(),
            Aggregate {
                args: vec![Value::Text(", ".into()).into()],
                order_by: vec![Order::column(col("n"), true)],
                ..Aggregate::new(AggregateFn::StringAgg, "s")
            },
        ];
        assert_eq!(
            &*select(&Postgres, &s).sql,
            r#"SELECT sum("n"), count(DISTINCT "n"), count(*), string_agg("s", $1::text ORDER BY "n" DESC) FROM "t" WHERE "a" IS NOT NULL"#
        );
        s.aggregates.pop();
        // The top 3 by n: the order picks the rows, so it stays in the subquery.
        s.limit = Some(3);
        assert_eq!(
            &*select(&Postgres, &s).sql,
            r#"SELECT sum("n"), count(DISTINCT "n"), count(*) FROM (SELECT "id", "n" FROM "t" WHERE "a" IS NOT NULL ORDER BY "n" DESC LIMIT $1) AS "t""#
        );
        s.limit = None;
        s.order.clear();
        s.distinct = true;
        s.columns = vec![col("n")];
        assert_eq!(
            &*select(&Postgres, &s).sql,
            r#"SELECT sum("n"), count(DISTINCT "n"), count(*) FROM (SELECT DISTINCT "n" FROM "t" WHERE "a" IS NOT NULL) AS "t""#
        );
        s.projection = Projection::Count;
        assert_eq!(
            &*select(&Postgres, &s).sql,
            r#"SELECT count(*) FROM (SELECT DISTINCT "n" FROM "t" WHERE "a" IS NOT NULL) AS "t""#
        );
        s.projection = Projection::Columns;
        assert_eq!(&*select(&Postgres, &s).sql, r#"SELECT DISTINCT "n" FROM "t" WHERE "a" IS NOT NULL"#);
    }

    #[test]
    fn an_aggregate_counts_only_the_rows_its_filter_keeps() {
        use crate::ast::{Aggregate, AggregateFn};
        let active = || Expr::Compare { column: col("active"), op: CompareOp::Eq, value: Value::Bool(true).into() };
        let mut s = Select::new("t", ["id", "kind", "n", "active"]);
        s.filter(Expr::Compare { column: col("n"), op: CompareOp::Gt, value: Value::I64(0).into() });
        s.projection = Projection::Aggregates;
        s.group_by = vec![col("kind")];
        let big = Expr::Compare { column: col("n"), op: CompareOp::Gte, value: Value::I64(100).into() };
        s.aggregates = vec![
            Aggregate::count_rows(),
            Aggregate { alias: Some(col("live")), ..Aggregate::count_rows().filtered(active()) },
            Aggregate::new(AggregateFn::Sum, "n").filtered(active()).filtered(big),
        ];
        s.having = Some(Expr::AggregateCompare {
            aggregate: Aggregate::count_rows().filtered(active()),
            op: CompareOp::Gt,
            value: Value::I64(1),
        });
        let statement = select(&Postgres, &s);
        assert_eq!(
            &*statement.sql,
            r#"SELECT "kind", count(*), count(*) FILTER (WHERE "active" = $1) AS "live", sum("n") FILTER (WHERE ("active" = $2 AND "n" >= $3)) FROM "t" WHERE "n" > $4 GROUP BY "kind" HAVING count(*) FILTER (WHERE "active" = $5) > $6"#
        );
        assert_eq!(
            statement.params,
            [Value::Bool(true), Value::Bool(true), Value::I64(100), Value::I64(0), Value::Bool(true), Value::I64(1)]
        );
    }

    #[test]
    fn groups_are_ordered_and_sliced_and_locked_rows_grouped_in_a_subquery() {
        use crate::ast::{Aggregate, AggregateFn, RowLock};
        let mut s = Select::new("t", ["id", "kind", "n"]);
        s.filter(Expr::IsNull { column: col("n"), negated: true });
        s.projection = Projection::Aggregates;
        s.aggregates = vec![Aggregate { alias: Some(col("total")), ..Aggregate::new(AggregateFn::Sum, "n") }];
        s.group_by = vec![col("kind")];
        s.order = vec![Order::column(col("total"), true)];
        s.limit = Some(3);
        assert_eq!(
            &*select(&Postgres, &s).sql,
            r#"SELECT "kind", sum("n") AS "total" FROM "t" WHERE "n" IS NOT NULL GROUP BY "kind" ORDER BY "total" DESC LIMIT $1"#
        );
        s.lock = Some(RowLock::update());
        assert_eq!(
            &*select(&Postgres, &s).sql,
            r#"SELECT "kind", sum("n") AS "total" FROM (SELECT "id", "kind", "n" FROM "t" WHERE "n" IS NOT NULL FOR UPDATE) AS "t" GROUP BY "kind" ORDER BY "total" DESC LIMIT $1"#
        );
        s.lock = None;
        let count = Aggregate::count_rows();
        s.having = Some(Expr::AggregateCompare { aggregate: count, op: CompareOp::Gt, value: Value::I64(1) }.and(
            Expr::AggregateCompare {
                aggregate: Aggregate::new(AggregateFn::Max, "n"),
                op: CompareOp::Ne,
                value: Value::Null,
            },
        ));
        assert_eq!(
            &*select(&Postgres, &s).sql,
            r#"SELECT "kind", sum("n") AS "total" FROM "t" WHERE "n" IS NOT NULL GROUP BY "kind" HAVING (count(*) > $1 AND max("n") IS NOT NULL) ORDER BY "total" DESC LIMIT $2"#
        );
    }

    #[test]
    fn a_row_lock_ends_the_select_and_stays_inside_count_and_exists() {
        use crate::ast::RowLock;
        let mut s = Select::new("t", ["id"]);
        s.limit = Some(5);
        s.lock = Some(RowLock::update().skip_locked());
        assert_eq!(select(&Postgres, &s).sql.as_ref(), r#"SELECT "id" FROM "t" LIMIT $1 FOR UPDATE SKIP LOCKED"#);
        s.limit = None;
        s.lock = Some(RowLock::share().nowait());
        s.projection = Projection::Count;
        // PostgreSQL takes no row locks for an aggregate: count the locked selection.
        assert_eq!(
            select(&Postgres, &s).sql.as_ref(),
            r#"SELECT count(*) FROM (SELECT 1 FROM "t" FOR SHARE NOWAIT) AS "t""#
        );
        s.projection = Projection::Exists;
        s.lock = Some(RowLock::no_key_update());
        assert_eq!(select(&Postgres, &s).sql.as_ref(), r#"SELECT EXISTS (SELECT 1 FROM "t" FOR NO KEY UPDATE)"#);
        s.lock = Some(RowLock::key_share());
        s.projection = Projection::Columns;
        let request = select_request(&Postgres, &s, Mode::All, Labels::new("SELECT", None));
        assert!(request.statement.sql.ends_with(" FOR KEY SHARE"));
        assert!(request.requires_transaction && !request.idempotent, "never on a pooled connection, never retried");
        s.lock = None;
        let request = select_request(&Postgres, &s, Mode::All, Labels::new("SELECT", None));
        assert!(!request.requires_transaction && request.idempotent);
    }

    #[test]
    fn an_update_can_compute_from_the_rows_columns() {
        use crate::ast::{ArithOp, Assignment, Operand};
        let balance = || Operand::Column(col("balance"));
        let query = Update {
            table: col("accounts"),
            set: vec![
                Assignment {
                    column: col("balance"),
                    value: Operand::arith(
                        Operand::arith(balance(), ArithOp::Mul, Value::I64(2).into()),
                        ArithOp::Sub,
                        Value::I64(10).into(),
                    ),
                },
                Assignment { column: col("note"), value: Value::Text("x".into()).into() },
            ],
            filter: Some(Expr::Compare { column: col("id"), op: CompareOp::Eq, value: Value::I64(1).into() }),
            returning: Vec::new(),
        };
        let st = update(&Postgres, &query);
        assert_eq!(
            st.sql.as_ref(),
            r#"UPDATE "accounts" SET "balance" = (("balance" * $1::int8) - $2::int8), "note" = $3 WHERE "id" = $4"#
        );
        assert_eq!(st.params, vec![Value::I64(2), Value::I64(10), Value::Text("x".into()), Value::I64(1)]);
    }

    #[test]
    fn correlated_subqueries_name_the_row_they_are_about() {
        use crate::ast::{Annotation, Operand, Scalar};
        let of_author = |table: &'static str, key: &'static str| {
            let mut inner = Select::new(table, ["title"]);
            inner.filter(Expr::Compare { column: col(key), op: CompareOp::Eq, value: Operand::Outer(col("id")) });
            inner
        };
        let mut s = Select::new("authors", ["id"]);
        s.filter(Expr::Exists { select: Box::new(of_author("books", "author_id")), negated: false });
        let mut latest = of_author("books", "author_id");
        latest.order = vec![Order::column(col("year"), true)];
        latest.limit = Some(1);
        s.annotations = vec![Annotation::new(col("latest"), Scalar::Operand(Operand::Subquery(Box::new(latest))))];
        assert_eq!(
            select(&Postgres, &s).sql.as_ref(),
            r#"SELECT "id", (SELECT "title" FROM "books" WHERE "author_id" = "authors"."id" ORDER BY "year" DESC LIMIT $1) AS "latest" FROM "authors" WHERE EXISTS (SELECT 1 FROM "books" WHERE "author_id" = "authors"."id")"#
        );
        // Over the same table (a tree's nodes with children), the subquery is renamed.
        let mut nodes = Select::new("nodes", ["id"]);
        nodes.filter(Expr::Exists { select: Box::new(of_author("nodes", "parent_id")), negated: true });
        assert_eq!(
            select(&Postgres, &nodes).sql.as_ref(),
            r#"SELECT "id" FROM "nodes" WHERE NOT EXISTS (SELECT 1 FROM "nodes" AS "chakra_sub_2" WHERE "parent_id" = "nodes"."id")"#
        );
        let query = Delete { table: col("nodes"), filter: nodes.filter.clone(), returning: Vec::new() };
        assert_eq!(
            delete(&Postgres, &query).sql.as_ref(),
            r#"DELETE FROM "nodes" WHERE NOT EXISTS (SELECT 1 FROM "nodes" AS "chakra_sub_1" WHERE "parent_id" = "nodes"."id")"#
        );
        // A front-end's field names become columns.
        let mut named = of_author("books", "author_id");
        named
            .resolve_outer(&mut |name| Ok::<_, ()>(col(if name.as_ref() == "id" { "author_pk" } else { "x" })))
            .unwrap();
        let mut columns = Vec::new();
        named.outer_columns_into(&mut columns);
        assert_eq!(columns, vec![col("author_pk")]);
        // So do those a value computed per row is compared with.
        let rank = Scalar::Operand(Operand::Column(col("rank")));
        let mut compared = Select::new("books", ["id"]);
        compared.filter(Expr::ScalarCompare {
            scalar: Box::new(rank),
            op: CompareOp::Gt,
            value: Operand::Outer(col("id")),
        });
        compared.resolve_outer(&mut |_| Ok::<_, ()>(col("author_pk"))).unwrap();
        let mut columns = Vec::new();
        compared.outer_columns_into(&mut columns);
        assert_eq!(columns, vec![col("author_pk")]);
    }

    #[test]
    fn json_lookups_send_keys_and_values_as_parameters() {
        use crate::model::FieldInfo;
        use chakra_service::serde_json::json;
        let fields = [
            FieldInfo::new("id", "id", "int8", false),
            FieldInfo::new("data", "data", "jsonb", true),
            FieldInfo::new("note", "note", "json", true),
        ];
        let expr = |key: &str, lookup: &str, value: Value| {
            let (name, _) = crate::lookup::split_key(key);
            crate::lookup::resolve(&fields, "docs", name, lookup, value)
        };
        let mut s = Select::new("docs", ["id"]);
        s.filter(expr("data__owner__age", "gte", Value::Json(json!(18))).unwrap());
        s.filter(expr("data", "has_keys", Value::Array(vec!["a".into(), "b".into()])).unwrap());
        s.filter(expr("data__tags", "contains", Value::Json(json!(["x"]))).unwrap());
        s.filter(expr("data__owner", "exact", Value::Null).unwrap());
        let st = select(&Postgres, &s);
        assert_eq!(
            st.sql.as_ref(),
            r#"SELECT "id" FROM "docs" WHERE (("data" #> $1) >= $2 AND "data" ?& $3 AND ("data" #> $4) @> $5 AND ("data" #> $6) = $7)"#
        );
        assert_eq!(st.params[0], Value::Array(vec!["owner".into(), "age".into()]));
        assert_eq!(st.params[6], Value::Json(json!(null)), "None is JSON's null on a key");
        let e = expr("data__owner", "icontains", Value::Text("a".into())).unwrap_err();
        assert!(e.message().contains("is not one of a JSON value"), "{e}");
        let e =
            crate::lookup::resolve_json(&fields, "docs", "note", &["a"], "exact", Value::Json(json!(1))).unwrap_err();
        assert!(e.message().contains("keys and JSON lookups need a `jsonb` one"), "{e}");
        assert!(crate::lookup::split_json(&fields, "note__a").is_none(), "a json (not jsonb) column has no keys");
    }

    #[test]
    fn window_functions_compute_over_each_rows_partition() {
        use crate::ast::{AggregateFn, Annotation, Operand, Scalar, WindowFunction};
        let window = |function, args, partition_by: Vec<Operand>, order_by| {
            Scalar::Operand(Operand::Window { function, args, partition_by, order_by })
        };
        let mut s = Select::new("staff", ["id"]);
        s.annotations = vec![
            Annotation::new(
                col("rank"),
                window(
                    WindowFunction::Rank,
                    vec![],
                    vec![Operand::Column(col("dept"))],
                    vec![Order::column(col("salary"), true)],
                ),
            ),
            Annotation::new(
                col("running"),
                window(
                    WindowFunction::Aggregate(AggregateFn::Sum),
                    vec![Operand::Column(col("salary"))],
                    vec![],
                    vec![Order::column(col("id"), false)],
                ),
            ),
            Annotation::new(
                col("before"),
                window(WindowFunction::Lag, vec![Operand::Column(col("salary")), Value::I64(2).into()], vec![], vec![]),
            ),
        ];
        assert_eq!(
            select(&Postgres, &s).sql.as_ref(),
            r#"SELECT "id", rank() OVER (PARTITION BY "dept" ORDER BY "salary" DESC) AS "rank", sum("salary") OVER (ORDER BY "id" ASC) AS "running", lag("salary", $1) OVER () AS "before" FROM "staff""#
        );
        assert_eq!(WindowFunction::named("Lag").map(|f| (f.sql(), f.arity())), Some(("lag", (1, 3))));
    }

    #[test]
    fn orders_say_where_nulls_go_and_reverse_with_them() {
        let mut s = Select::new("t", ["id"]);
        s.order = vec![Order::column(col("a"), true).nulls_last(), Order::column(col("b"), false)];
        assert_eq!(select(&Postgres, &s).sql.as_ref(), r#"SELECT "id" FROM "t" ORDER BY "a" DESC NULLS LAST, "b" ASC"#);
        s.order = s.order.into_iter().map(Order::reversed).collect();
        assert_eq!(
            select(&Postgres, &s).sql.as_ref(),
            r#"SELECT "id" FROM "t" ORDER BY "a" ASC NULLS FIRST, "b" DESC"#
        );
    }

    #[test]
    fn functions_and_cases_send_their_values_typed() {
        use crate::ast::{Assignment, Function, Gives, Operand, Takes};
        let column = |name: &'static str| Operand::Column(col(name));
        let tier = Operand::Case {
            branches: vec![
                (
                    Expr::Compare { column: col("score"), op: CompareOp::Gte, value: Value::I64(90).into() },
                    Value::Text("gold".into()).into(),
                ),
                (Expr::IsNull { column: col("score"), negated: false }, Value::Null.into()),
            ],
            otherwise: Some(Box::new(Operand::Call { function: Function::Lower, args: vec![column("name")] })),
        };
        let query = Update {
            table: col("users"),
            set: vec![
                Assignment { column: col("tier"), value: tier },
                Assignment {
                    column: col("score"),
                    value: Operand::Call {
                        function: Function::Coalesce,
                        args: vec![column("score"), Value::I32(0).into()],
                    },
                },
            ],
            filter: None,
            returning: vec![col("id"), col("tier")],
        };
        let st = update(&Postgres, &query);
        assert_eq!(
            st.sql.as_ref(),
            r#"UPDATE "users" SET "tier" = CASE WHEN "score" >= $1 THEN $2::text WHEN "score" IS NULL THEN NULL ELSE lower("name") END, "score" = coalesce("score", $3::int4) RETURNING "id", "tier""#
        );
        assert_eq!(st.params, vec![Value::I64(90), Value::Text("gold".into()), Value::I32(0)]);
        let mut columns = Vec::new();
        query.set.iter().for_each(|a| a.value.columns_into(&mut columns));
        assert_eq!(columns, vec![col("score"), col("name")]);
        assert_eq!(Function::named("Length").map(Function::sql), Some("char_length"));
        let mut w = SqlWriter::new(&Postgres);
        w.operand(&Operand::Call { function: Function::Now, args: vec![] });
        assert_eq!(w.finish().sql.as_ref(), "now()");
        let mut w = SqlWriter::new(&Postgres);
        w.operand(&Operand::cast(Value::Text("42".into()).into(), "numeric(10, 2)").unwrap());
        assert_eq!(w.finish().sql.as_ref(), "CAST($1::text AS numeric(10, 2))");
        assert!(Operand::cast(column("name"), "int4); DROP TABLE x; --").is_none(), "only type names");
        assert!(Operand::cast(column("name"), "").is_none());
        assert_eq!(Function::Concat.arity(), (2, None));
        // Positions and counts as `integer`; `round` to places over a `numeric`.
        let mut w = SqlWriter::new(&Postgres);
        let args = vec![column("name"), Value::I64(2).into(), column("n")];
        w.operand(&Operand::Call { function: Function::Substr, args });
        w.push(" ");
        w.operand(&Operand::Call { function: Function::Round, args: vec![column("x"), Value::I32(2).into()] });
        w.push(" ");
        w.operand(&Operand::Call { function: Function::Round, args: vec![column("x")] });
        assert_eq!(
            w.finish().sql.as_ref(),
            r#"substr("name", CAST($1::int8 AS int4), CAST("n" AS int4)) round(CAST("x" AS numeric), CAST($2::int4 AS int4)) round("x")"#
        );
        assert_eq!(Function::named("RandomUUID").map(|f| (f.sql(), f.gives())), Some(("gen_random_uuid", Gives::Uuid)));
        assert_eq!(Function::StrIndex.takes_at(5), Takes::Text, "the last kind stands for any further argument");
        // Raw SQL: `%s` where each parameter goes (numbered on from the statement's), `%%` a `%`.
        let mut w = SqlWriter::new(&Postgres);
        w.param(Value::I64(7));
        w.push(" ");
        w.operand(&Operand::raw("f(%s, '%%', %s)", vec![Value::I64(1), Value::I64(2)]).unwrap());
        assert_eq!(w.finish().sql.as_ref(), "$1 (f($2, '%', $3))");
        assert!(Operand::raw("f(%s)", vec![]).is_none(), "a %s without its parameter");
    }

    #[test]
    fn many_rows_insert_as_one_array_per_column() {
        let insert_ast = Insert {
            table: col("users"),
            columns: vec![col("name"), col("score")],
            column_types: vec!["text".into(), "float8".into()],
            rows: vec![vec!["a".into(), 1.5_f64.into()], vec!["b".into(), 2.5_f64.into()]],
            arrays: Vec::new(),
            returning: vec![col("id")],
            upsert: None,
        };
        let st = insert(&Postgres, &insert_ast);
        assert_eq!(
            &*st.sql,
            r#"INSERT INTO "users" ("name", "score") SELECT * FROM UNNEST($1::text[], $2::float8[]) RETURNING "id""#
        );
        assert_eq!(st.params.len(), 2);
    }
}
