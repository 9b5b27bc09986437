//! PostgreSQL: `"quoted"` identifiers, `$n` placeholders, `= ANY($n)` for lists (one
//! array parameter, so the statement text — and its cached plan — does not depend on the
//! list's length), `ILIKE`, and bulk inserts as `UNNEST` of one array per column.

use chakra_service::Value;

use super::Dialect;
use crate::ast::{Ident, Insert};
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled_inside_identifiers() {
        let mut out = String::new();
        Postgres.quote(&mut out, r#"we"ird"#);
        assert_eq!(out, r#""we""ird""#);
    }
}
