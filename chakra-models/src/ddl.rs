//! `CREATE TABLE` and `DROP TABLE` for a model, from its [`FieldInfo`]s: what both
//! front-ends' `create_table` send (Rust's `Model::create_table`, Python's
//! `db.create_all`). Enough to stand a schema up for an application, its tests and its
//! examples; migrations of a live schema are a tool's job, not this.

use std::borrow::Cow;

use chakra_service::Statement;

use crate::compile::SqlWriter;
use crate::dialect::Dialect;
use crate::model::FieldInfo;

/// A column referencing another table's column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    pub table: Cow<'static, str>,
    pub column: Cow<'static, str>,
    pub on_delete: OnDelete,
}

/// What deleting a referenced row does to the rows referencing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDelete {
    /// The delete fails while references remain (checked at the end of the statement).
    #[default]
    NoAction,
    /// The delete fails while references remain (checked at once).
    Restrict,
    /// The referencing rows are deleted too.
    Cascade,
    SetNull,
    SetDefault,
}

impl OnDelete {
    /// Every spelling [`parse`](Self::parse) takes, for messages.
    pub const NAMES: &'static [&'static str] = &["no action", "restrict", "cascade", "set null", "set default"];

    /// `"cascade"`, `"set null"`, … (any case; `_` for the space).
    pub fn parse(name: &str) -> Option<OnDelete> {
        match name.to_ascii_lowercase().replace('_', " ").as_str() {
            "no action" => Some(OnDelete::NoAction),
            "restrict" => Some(OnDelete::Restrict),
            "cascade" => Some(OnDelete::Cascade),
            "set null" => Some(OnDelete::SetNull),
            "set default" => Some(OnDelete::SetDefault),
            _ => None,
        }
    }

    fn sql(self) -> &'static str {
        match self {
            OnDelete::NoAction => "NO ACTION",
            OnDelete::Restrict => "RESTRICT",
            OnDelete::Cascade => "CASCADE",
            OnDelete::SetNull => "SET NULL",
            OnDelete::SetDefault => "SET DEFAULT",
        }
    }
}

/// `CREATE TABLE IF NOT EXISTS` for `table`'s `fields`, then a `CREATE INDEX IF NOT
/// EXISTS` for each field asking for an index of its own (a key or a unique column has
/// one already). Run them in order; running them again changes nothing.
pub fn create_table(dialect: &dyn Dialect, table: &str, fields: &[FieldInfo]) -> Vec<Statement> {
    let mut w = SqlWriter::new(dialect);
    w.push("CREATE TABLE IF NOT EXISTS ");
    w.ident(table);
    w.push(" (");
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            w.push(", ");
        }
        w.ident(&field.column);
        w.push(" ");
        w.push(field.column_type.as_deref().unwrap_or(&field.sql_type));
        if field.generated {
            w.push(dialect.generated_key());
        }
        if let Some(default) = &field.default {
            w.push(" DEFAULT ");
            w.push(default);
        }
        if field.primary_key {
            w.push(" PRIMARY KEY");
        } else if !field.nullable {
            w.push(" NOT NULL");
        }
        if field.unique && !field.primary_key {
            w.push(" UNIQUE");
        }
        if let Some(check) = &field.check {
            w.push(" CHECK (");
            w.push(check);
            w.push(")");
        }
        if let Some(key) = &field.references {
            w.push(" REFERENCES ");
            w.ident(&key.table);
            w.push(" (");
            w.ident(&key.column);
            w.push(") ON DELETE ");
            w.push(key.on_delete.sql());
        }
    }
    w.push(")");
    let mut statements = vec![w.finish()];
    for field in fields.iter().filter(|f| f.index && !f.unique && !f.primary_key) {
        let mut w = SqlWriter::new(dialect);
        w.push("CREATE INDEX IF NOT EXISTS ");
        w.ident(&format!("{table}_{}_idx", field.column));
        w.push(" ON ");
        w.ident(table);
        w.push(" (");
        w.ident(&field.column);
        w.push(")");
        statements.push(w.finish());
    }
    statements
}

/// `DROP TABLE IF EXISTS`.
pub fn drop_table(dialect: &dyn Dialect, table: &str) -> Statement {
    let mut w = SqlWriter::new(dialect);
    w.push("DROP TABLE IF EXISTS ");
    w.ident(table);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::Postgres;

    #[test]
    fn a_table_with_every_kind_of_column() {
        let fields = [
            FieldInfo::new("id", "id", "int8", false).primary_key(true),
            FieldInfo::new("name", "name", "text", false).unique().column_type("varchar(100)"),
            FieldInfo::new("author", "author_id", "int8", true).indexed().references(
                "authors",
                "id",
                OnDelete::Cascade,
            ),
            FieldInfo::new("rank", "order", "int4", false).indexed().unique(),
            FieldInfo::new("added", "added", "timestamptz", false).db_default("now()"),
            FieldInfo::new("state", "state", "text", true).check(r#""state" IN ('a', 'b')"#),
        ];
        let sql: Vec<String> =
            create_table(&Postgres, "books", &fields).into_iter().map(|s| s.sql.to_string()).collect();
        assert_eq!(
            sql,
            [
                r#"CREATE TABLE IF NOT EXISTS "books" ("id" int8 GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "name" varchar(100) NOT NULL UNIQUE, "author_id" int8 REFERENCES "authors" ("id") ON DELETE CASCADE, "order" int4 NOT NULL UNIQUE, "added" timestamptz DEFAULT now() NOT NULL, "state" text CHECK ("state" IN ('a', 'b')))"#,
                r#"CREATE INDEX IF NOT EXISTS "books_author_id_idx" ON "books" ("author_id")"#,
            ]
        );
        assert_eq!(&*drop_table(&Postgres, "my \"books\"").sql, r#"DROP TABLE IF EXISTS "my ""books""""#);
    }

    #[test]
    fn on_delete_reads_the_spellings_it_names() {
        for name in OnDelete::NAMES {
            assert_eq!(OnDelete::parse(name).map(|o| o.sql().to_lowercase()), Some(name.to_string()));
        }
        assert_eq!(OnDelete::parse("SET_NULL"), Some(OnDelete::SetNull));
        assert_eq!(OnDelete::parse("delete"), None);
    }
}
