//! Lookups by name, resolved at run time against a model's fields: `("name", "startswith")`
//! the way Django spells them. The Python front-end and dynamic Rust code build their
//! conditions here; an unknown field or lookup is a `Field` error before any SQL exists.

use chakra_service::{Error, Result, Value};

use crate::ast::{CompareOp, Expr, Operand, Order, Pattern, TextMatch};
use crate::model::FieldInfo;

/// Every lookup name, in the order error messages list them.
pub const LOOKUPS: &[&str] = &[
    "exact",
    "iexact",
    "contains",
    "icontains",
    "startswith",
    "istartswith",
    "endswith",
    "iendswith",
    "gt",
    "gte",
    "lt",
    "lte",
    "ne",
    "in",
    "isnull",
    "range",
];

/// Splits a Django-style key: `"name__startswith"` → `("name", "startswith")`,
/// `"name"` → `("name", "exact")`.
pub fn split_key(key: &str) -> (&str, &str) {
    match key.rsplit_once("__") {
        Some((field, lookup)) if LOOKUPS.contains(&lookup) => (field, lookup),
        _ => (key, "exact"),
    }
}

/// The field called `name`, or a `Field` error listing the ones that exist.
pub fn field<'f>(fields: &'f [FieldInfo], table: &str, name: &str) -> Result<&'f FieldInfo> {
    fields.iter().find(|f| f.name == name).ok_or_else(|| {
        let known: Vec<&str> = fields.iter().map(|f| &*f.name).collect();
        Error::field(format!("unknown field `{name}` on `{table}` (fields: {})", known.join(", ")))
    })
}

/// The comparison a lookup names: `exact`, `ne`, `gt`, `gte`, `lt`, `lte`.
pub fn comparison(lookup: &str) -> Option<CompareOp> {
    Some(match lookup {
        "exact" => CompareOp::Eq,
        "ne" => CompareOp::Ne,
        "gt" => CompareOp::Gt,
        "gte" => CompareOp::Gte,
        "lt" => CompareOp::Lt,
        "lte" => CompareOp::Lte,
        _ => return None,
    })
}

/// Builds the condition `field <lookup> value`. The comparisons (`exact`, `ne`, `gt`,
/// `gte`, `lt`, `lte`) also take another column or arithmetic on columns, Django's
/// `filter(balance__lt=F("limit"))`; the other lookups take a value.
pub fn resolve(
    fields: &[FieldInfo],
    table: &str,
    field_name: &str,
    lookup: &str,
    value: impl Into<Operand>,
) -> Result<Expr> {
    let field = field(fields, table, field_name)?;
    let column = field.column.clone();
    let value = match (comparison(lookup), value.into()) {
        (Some(op), value) => return Ok(Expr::Compare { column, op, value }),
        (None, Operand::Value(value)) => value,
        (None, _) if LOOKUPS.contains(&lookup) => {
            return Err(Error::field(format!(
                "lookup `{field_name}__{lookup}` takes a value, not a column expression \
                 (only exact, ne, gt, gte, lt and lte compare with other columns)"
            )))
        }
        (None, _) => Value::Null,
    };
    let text = |value: Value| match value {
        Value::Text(s) => Ok(s),
        other => {
            Err(Error::field(format!("lookup `{field_name}__{lookup}` needs a text value, got {}", other.type_name())))
        }
    };
    let pattern = |at: TextMatch, case_insensitive: bool, value: Value| -> Result<Expr> {
        Ok(Expr::Like { column: column.clone(), pattern: Pattern::Text(text(value)?, at), case_insensitive })
    };
    Ok(match lookup {
        "iexact" => pattern(TextMatch::Exact, true, value)?,
        "contains" => pattern(TextMatch::Contains, false, value)?,
        "icontains" => pattern(TextMatch::Contains, true, value)?,
        "startswith" => pattern(TextMatch::StartsWith, false, value)?,
        "istartswith" => pattern(TextMatch::StartsWith, true, value)?,
        "endswith" => pattern(TextMatch::EndsWith, false, value)?,
        "iendswith" => pattern(TextMatch::EndsWith, true, value)?,
        "in" => match value {
            Value::Array(values) => Expr::In { column, values, negated: false },
            other => {
                return Err(Error::field(format!("lookup `{field_name}__in` needs a list, got {}", other.type_name())))
            }
        },
        "isnull" => match value {
            Value::Bool(is_null) => Expr::IsNull { column, negated: !is_null },
            other => {
                return Err(Error::field(format!(
                    "lookup `{field_name}__isnull` needs true or false, got {}",
                    other.type_name()
                )))
            }
        },
        "range" => match value {
            Value::Array(bounds) if bounds.len() == 2 => {
                let mut bounds = bounds.into_iter();
                let (low, high) = (bounds.next().unwrap_or(Value::Null), bounds.next().unwrap_or(Value::Null));
                Expr::Between { column, low, high }
            }
            _ => return Err(Error::field(format!("lookup `{field_name}__range` needs two values (low, high)"))),
        },
        unknown => {
            return Err(Error::field(format!(
                "unknown lookup `{unknown}` on field `{field_name}` (lookups: {})",
                LOOKUPS.join(", ")
            )))
        }
    })
}

/// An order term from `"field"` (ascending) or `"-field"` (descending).
pub fn order(fields: &[FieldInfo], table: &str, spec: &str) -> Result<Order> {
    let (name, descending) = order_spec(spec);
    Ok(Order { column: field(fields, table, name)?.column.clone(), descending })
}

/// Splits an order spec: `"-name"` → `("name", true)`, `"name"` or `"+name"` →
/// `("name", false)`.
pub fn order_spec(spec: &str) -> (&str, bool) {
    match spec.strip_prefix('-') {
        Some(name) => (name, true),
        None => (spec.strip_prefix('+').unwrap_or(spec), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chakra_service::ErrorKind;

    const FIELDS: &[FieldInfo] =
        &[FieldInfo::new("id", "id", "int8", false), FieldInfo::new("name", "name", "text", false)];

    #[test]
    fn keys_split_only_on_known_lookups() {
        assert_eq!(split_key("name__startswith"), ("name", "startswith"));
        assert_eq!(split_key("name"), ("name", "exact"));
        assert_eq!(split_key("first__name"), ("first__name", "exact"));
    }

    #[test]
    fn unknown_fields_and_lookups_are_named() {
        let e = resolve(FIELDS, "users", "nmae", "exact", Value::from(1_i64)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Field);
        assert!(e.to_string().contains("`nmae`") && e.to_string().contains("id, name"), "{e}");
        let e = resolve(FIELDS, "users", "name", "startswit", Value::from("a")).unwrap_err();
        assert!(e.to_string().contains("`startswit`"), "{e}");
        let e = resolve(FIELDS, "users", "id", "in", Value::from(1_i64)).unwrap_err();
        assert!(e.to_string().contains("needs a list"), "{e}");
    }

    #[test]
    fn only_comparisons_take_columns() {
        let other = Operand::Column("id".into());
        let e = resolve(FIELDS, "users", "name", "startswith", other.clone()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Field);
        assert!(e.to_string().contains("`name__startswith` takes a value"), "{e}");
        let e = resolve(FIELDS, "users", "name", "startswit", other.clone()).unwrap_err();
        assert!(e.to_string().contains("unknown lookup `startswit`"), "{e}");
        let expr = resolve(FIELDS, "users", "id", "lt", other.clone()).unwrap();
        assert_eq!(expr, Expr::Compare { column: "id".into(), op: CompareOp::Lt, value: other });
    }

    #[test]
    fn order_specs_take_a_sign() {
        assert!(order(FIELDS, "users", "-name").unwrap().descending);
        assert!(!order(FIELDS, "users", "id").unwrap().descending);
        assert_eq!(order(FIELDS, "users", "-nope").unwrap_err().kind(), ErrorKind::Field);
    }
}
