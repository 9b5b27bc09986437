//! PostgreSQL: `"quoted"` identifiers, `$n` placeholders, `= ANY($n)` for lists (one
//! array parameter, so the statement text — and its cached plan — does not depend on the
//! list's length), `ILIKE`, bulk inserts as `UNNEST` of one array per column, and bulk
//! loads as binary `COPY`.

use chakra_service::{Statement, Value};

use super::{BulkLoad, Dialect};
use crate::ast::{BulkUpdate, Ident, Insert};
use crate::compile::SqlWriter;

/// The PostgreSQL dialect.
#[derive(Debug, Clone, Copy, Default)]
pub struct Postgres;

impl Dialect for Postgres {
    fn quote(&self, out: &mut String, ident: &str) {
        out.reserve(ident.len() + 2);
        out.push('"');
        for c in ident.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
    }

    fn placeholder(&self, out: &mut String, n: usize) {
        use std::fmt::Write;
        let _ = write!(out, "${n}");
    }

    fn write_in(&self, w: &mut SqlWriter<'_>, column: &Ident, values: &[Value], negated: bool) {
        if negated {
            w.push("NOT (");
        }
        w.ident(column);
        w.push(" = ANY(");
        w.param(Value::Array(values.to_vec()));
        w.push(")");
        if negated {
            w.push(")");
        }
    }

    fn ilike(&self) -> &'static str {
        " ILIKE "
    }

    fn explain(&self, analyze: bool) -> &'static str {
        if analyze {
            "EXPLAIN (ANALYZE, BUFFERS) "
        } else {
            "EXPLAIN "
        }
    }

    /// `UPDATE t SET a = r.a, … FROM (the arrays' rows, the last of each key) AS r WHERE
    /// t.key = r.key`: one statement, one cached plan, whatever the row count.
    fn write_bulk_update(&self, w: &mut SqlWriter<'_>, update: &BulkUpdate) {
        const ROWS: &str = "chakra_rows";
        const POSITION: &str = "chakra_position";
        let (key, set) = update.columns.split_first().expect("a bulk update has a key column");
        w.push("UPDATE ");
        w.ident(&update.table);
        w.push(" SET ");
        for (i, column) in set.iter().enumerate() {
            if i > 0 {
                w.push(", ");
            }
            w.ident(column);
            w.push(" = ");
            w.ident(ROWS);
            w.push(".");
            w.ident(column);
        }
        w.push(" FROM (SELECT DISTINCT ON (");
        w.ident(key);
        w.push(") * FROM UNNEST(");
        for (i, (array, ty)) in update.arrays.iter().zip(&update.column_types).enumerate() {
            if i > 0 {
                w.push(", ");
            }
            w.param(array.clone());
            w.push("::");
            w.push(ty);
            w.push("[]");
        }
        w.push(") WITH ORDINALITY AS ");
        w.ident(ROWS);
        w.push(" (");
        w.idents(&update.columns);
        w.push(", ");
        w.ident(POSITION);
        w.push(") ORDER BY ");
        w.ident(key);
        w.push(", ");
        w.ident(POSITION);
        w.push(" DESC) AS ");
        w.ident(ROWS);
        w.push(" WHERE ");
        w.ident(&update.table);
        w.push(".");
        w.ident(key);
        w.push(" = ");
        w.ident(ROWS);
        w.push(".");
        w.ident(key);
    }

    fn write_insert(&self, w: &mut SqlWriter<'_>, insert: &Insert) {
        w.push("INSERT INTO ");
        w.ident(&insert.table);
        if insert.columns.is_empty() {
            w.push(" DEFAULT VALUES");
        } else {
            w.push(" (");
            w.idents(&insert.columns);
            w.push(")");
            // Arrays given, or many rows of known types turned into them.
            let typed = insert.column_types.len() == insert.columns.len();
            let arrays = match (typed, insert.arrays.is_empty()) {
                (true, false) => Some(insert.arrays.clone()),
                (true, true) if insert.rows.len() > 1 => Some(
                    (0..insert.columns.len())
                        .map(|i| Value::Array(insert.rows.iter().map(|row| row[i].clone()).collect()))
                        .collect(),
                ),
                _ => None,
            };
            if let Some(arrays) = arrays {
                // One array per column, whatever the row count: four parameters for 10,000
                // rows instead of 40,000, and one cached statement for every batch size.
                w.push(" SELECT * FROM UNNEST(");
                for (i, (array, ty)) in arrays.into_iter().zip(&insert.column_types).enumerate() {
                    if i > 0 {
                        w.push(", ");
                    }
                    w.param(array);
                    w.push("::");
                    w.push(ty);
                    w.push("[]");
                }
                w.push(")");
            } else {
                w.push(" VALUES ");
                for (r, row) in insert.rows.iter().enumerate() {
                    if r > 0 {
                        w.push(", ");
                    }
                    w.push("(");
                    for (i, value) in row.iter().enumerate() {
                        if i > 0 {
                            w.push(", ");
                        }
                        w.param(value.clone());
                    }
                    w.push(")");
                }
            }
        }
        if let Some(upsert) = &insert.upsert {
            w.push(" ON CONFLICT (");
            w.idents(&upsert.conflict_target);
            if upsert.update.is_empty() {
                w.push(") DO NOTHING");
            } else {
                w.push(") DO UPDATE SET ");
                for (i, column) in upsert.update.iter().enumerate() {
                    if i > 0 {
                        w.push(", ");
                    }
                    w.ident(column);
                    w.push(" = EXCLUDED.");
                    w.ident(column);
                }
            }
        }
        if !insert.returning.is_empty() {
            w.push(" RETURNING ");
            w.idents(&insert.returning);
        }
    }

    fn bulk_load(&self, insert: &Insert, column_types: &[u32]) -> Option<BulkLoad> {
        if !insert.returning.is_empty() || insert.upsert.is_some() {
            return None;
        }
        let mut table = String::new();
        self.quote(&mut table, &insert.table);
        let mut load = format!("COPY {table} (");
        for (i, column) in insert.columns.iter().enumerate() {
            if i > 0 {
                load.push_str(", ");
            }
            self.quote(&mut load, column);
        }
        load.push_str(") FROM STDIN (FORMAT binary)");
        let columns = insert.columns.iter().map(|c| Value::Text(c.to_string())).collect();
        let types = column_types.iter().map(|&oid| Value::I64(oid.into())).collect();
        Some(BulkLoad {
            check: Statement::new(COPY_CHECK, vec![Value::Text(table), Value::Array(columns), Value::Array(types)]),
            load,
        })
    }
}

/// Whether `COPY` into table `$1` (quoted) does what the `INSERT` would: a plain or
/// partitioned table (a view takes no `COPY`), without row-level security (`COPY` refuses
/// it) or rules (`COPY` ignores them), whose columns `$2` have exactly the types `$3`
/// (binary `COPY` has no casts: an `int4` column cannot take an `int8` field's bytes).
const COPY_CHECK: &str = "SELECT c.relkind IN ('r', 'p') AND NOT c.relrowsecurity AND NOT c.relhasrules \
     AND ARRAY(SELECT a.atttypid::int8 FROM unnest($2::text[]) WITH ORDINALITY AS k(name, n) \
     LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = k.name AND a.attnum > 0 \
     AND NOT a.attisdropped ORDER BY k.n) = $3::int8[] \
     FROM pg_class c WHERE c.oid = to_regclass($1)";

#[cfg(test)]
mod tests {
    use super::*;
    use chakra_service::Type;

    #[test]
    fn quotes_are_doubled_inside_identifiers() {
        let mut out = String::new();
        Postgres.quote(&mut out, r#"we"ird"#);
        assert_eq!(out, r#""we""ird""#);
    }

    #[test]
    fn a_bulk_load_is_a_binary_copy_of_the_quoted_columns() {
        let mut insert = Insert {
            table: "users".into(),
            columns: vec!["name".into(), "order".into()],
            column_types: vec!["text".into(), "int4".into()],
            rows: Vec::new(),
            arrays: Vec::new(),
            returning: Vec::new(),
            upsert: None,
        };
        let types = [Type::TEXT.oid(), Type::INT4.oid()];
        let load = Postgres.bulk_load(&insert, &types).expect("a load");
        assert_eq!(load.load, r#"COPY "users" ("name", "order") FROM STDIN (FORMAT binary)"#);
        assert_eq!(load.check.params[0], Value::Text(r#""users""#.into()));
        let oids = vec![Value::I64(Type::TEXT.oid().into()), Value::I64(Type::INT4.oid().into())];
        assert_eq!(load.check.params[2], Value::Array(oids), "the element types the rows were encoded as");

        // COPY returns nothing and has no ON CONFLICT: those stay INSERTs.
        insert.returning = vec!["id".into()];
        assert!(Postgres.bulk_load(&insert, &types).is_none());
    }
}
