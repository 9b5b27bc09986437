//! Lookups by name, resolved at run time against a model's fields: `("name", "startswith")`
//! the way Django spells them. The Python front-end and dynamic Rust code build their
//! conditions here; an unknown field or lookup is a `Field` error before any SQL exists.

use chakra_service::{Error, Result, Value};

use crate::ast::{CompareOp, DatePart, Expr, JsonTest, Operand, Order, Pattern, Scalar, TextMatch, TruncUnit};
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
    "regex",
    "iregex",
    "search",
    "has_key",
    "has_keys",
    "has_any_keys",
    "contained_by",
];

/// The lookups of a `jsonb` column or a key within it.
pub const JSON_LOOKUPS: &[&str] = &[
    "exact",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "isnull",
    "has_key",
    "has_keys",
    "has_any_keys",
    "contains",
    "contained_by",
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
/// `filter(balance__lt=F("limit"))`; the other lookups take a value. A field named with
/// a part of it (`created__year`) compares that part (see [`resolve_part`]).
pub fn resolve(
    fields: &[FieldInfo],
    table: &str,
    field_name: &str,
    lookup: &str,
    value: impl Into<Operand>,
) -> Result<Expr> {
    let field = match field(fields, table, field_name) {
        Ok(field) => field,
        Err(unknown) => {
            if let Some((name, path)) = split_json(fields, field_name) {
                return match value.into() {
                    Operand::Value(value) => resolve_json(fields, table, name, &path, lookup, value),
                    _ => Err(Error::field(format!("`{field_name}__{lookup}`: a JSON key is compared with values"))),
                };
            }
            let Some((name, part)) = split_part(fields, field_name) else {
                return Err(unknown);
            };
            return match value.into() {
                Operand::Value(value) => resolve_part(fields, table, name, part, lookup, value),
                _ => Err(Error::field(format!(
                    "`{field_name}__{lookup}`: a part of a date or time is compared with values, not columns"
                ))),
            };
        }
    };
    let column = field.column.clone();
    if field.sql_type == "jsonb"
        && matches!(lookup, "has_key" | "has_keys" | "has_any_keys" | "contains" | "contained_by")
    {
        return match value.into() {
            Operand::Value(value) => resolve_json(fields, table, field_name, &[], lookup, value),
            _ => Err(Error::field(format!("lookup `{field_name}__{lookup}` takes a value, not a column expression"))),
        };
    }
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
        "regex" | "iregex" => {
            Expr::Like { column, pattern: Pattern::Regex(text(value)?), case_insensitive: lookup == "iregex" }
        }
        "search" => Expr::Like { column, pattern: Pattern::Search(text(value)?), case_insensitive: false },
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
            let parts = parts_of(&field.sql_type);
            let parts = if parts.starts_with("none") { String::new() } else { format!("; parts: {parts}") };
            return Err(Error::field(format!(
                "unknown lookup `{unknown}` on field `{field_name}` (lookups: {}{parts})",
                LOOKUPS.join(", ")
            )));
        }
    })
}

/// `data__owner__name`: the `jsonb` field a key starts with and the path of keys after
/// it, when it names one of `fields` followed by keys.
pub fn split_json<'n>(fields: &[FieldInfo], name: &'n str) -> Option<(&'n str, Vec<&'n str>)> {
    let mut keys = name.split("__");
    let field = keys.next()?;
    let path: Vec<&str> = keys.collect();
    let json = fields.iter().any(|f| f.name == field && f.sql_type == "jsonb");
    (json && !path.is_empty()).then_some((field, path))
}

/// Builds the condition `field -> path <lookup> value` on a `jsonb` field (Django's JSON
/// lookups): the comparisons with a JSON value (`data__owner__age__gte=30`; `None` is
/// JSON's `null`), `has_key` with a text, `has_keys` and `has_any_keys` with texts,
/// `contains` and `contained_by` with a JSON value, `isnull` (whether the path leads
/// nowhere). With an empty path, of the whole value.
pub fn resolve_json(
    fields: &[FieldInfo],
    table: &str,
    field_name: &str,
    path: &[&str],
    lookup: &str,
    value: Value,
) -> Result<Expr> {
    let field = field(fields, table, field_name)?;
    let key = [field_name].iter().chain(path).copied().collect::<Vec<_>>().join("__");
    if field.sql_type != "jsonb" {
        return Err(Error::field(format!(
            "`{key}__{lookup}`: `{field_name}` is a `{}` column; keys and JSON lookups need a `jsonb` one",
            field.sql_type
        )));
    }
    let wrong = |needs: &str, value: &Value| {
        Error::field(format!("lookup `{key}__{lookup}` needs {needs}, got {}", value.type_name()))
    };
    let texts =
        |value: &Value| matches!(value, Value::Array(items) if items.iter().all(|i| matches!(i, Value::Text(_))));
    let (test, value) = match (comparison(lookup), lookup, value) {
        (Some(op), _, Value::Null) => (JsonTest::Compare(op), Value::Json(chakra_service::serde_json::Value::Null)),
        (Some(op), _, value @ Value::Json(_)) => (JsonTest::Compare(op), value),
        (_, "has_key", value @ Value::Text(_)) => (JsonTest::HasKey, value),
        (_, "has_keys", value) if texts(&value) => (JsonTest::HasKeys, value),
        (_, "has_any_keys", value) if texts(&value) => (JsonTest::HasAnyKeys, value),
        (_, "contains", value @ Value::Json(_)) => (JsonTest::Contains, value),
        (_, "contained_by", value @ Value::Json(_)) => (JsonTest::ContainedBy, value),
        (_, "isnull", Value::Bool(missing)) => (JsonTest::IsNull { negated: !missing }, Value::Null),
        (Some(_), _, value) => return Err(wrong("a JSON value", &value)),
        (_, "has_key", value) => return Err(wrong("a text", &value)),
        (_, "has_keys" | "has_any_keys", value) => return Err(wrong("a list of texts", &value)),
        (_, "contains" | "contained_by", value) => return Err(wrong("a JSON value", &value)),
        (_, "isnull", value) => return Err(wrong("true or false", &value)),
        _ => {
            return Err(Error::field(format!(
                "lookup `{lookup}` is not one of a JSON value (`{key}`): {}",
                JSON_LOOKUPS.join(", ")
            )))
        }
    };
    let path = path.iter().map(|key| (*key).to_owned()).collect();
    Ok(Expr::Json { column: field.column.clone(), path, test, value })
}

/// `field__year`, `field__date`, …: the field and the part of it a key names, when it
/// ends in a part's name (see [`DatePart`]) after one of `fields`.
pub fn split_part<'n>(fields: &[FieldInfo], name: &'n str) -> Option<(&'n str, DatePart)> {
    let (field, part) = name.rsplit_once("__")?;
    let part = DatePart::named(part)?;
    fields.iter().any(|f| f.name == field).then_some((field, part))
}

/// Builds the condition `field__part <lookup> value` (`created__year__gte=2020`): the
/// comparisons, `in` and `range`, on a part the field's type has; a number for the
/// numbered parts, a date or time for `date` and `time`.
pub fn resolve_part(
    fields: &[FieldInfo],
    table: &str,
    field_name: &str,
    part: DatePart,
    lookup: &str,
    value: Value,
) -> Result<Expr> {
    let scalar = part_of(fields, table, field_name, part)?;
    let key = format!("{field_name}__{}", part.name());
    let expected = match part {
        DatePart::Date => "a date",
        DatePart::Time => "a time",
        _ => "an integer",
    };
    let check = |value: Value| {
        let fits = match part {
            DatePart::Date => matches!(value, Value::Date(_)),
            DatePart::Time => matches!(value, Value::Time(_)),
            _ => matches!(value, Value::I16(_) | Value::I32(_) | Value::I64(_)),
        };
        match fits {
            true => Ok(value),
            false => Err(Error::field(format!("`{key}__{lookup}` needs {expected}, got {}", value.type_name()))),
        }
    };
    let compare = |op, value| -> Result<Expr> {
        Ok(Expr::ScalarCompare { scalar: Box::new(scalar.clone()), op, value: check(value)?.into() })
    };
    Ok(match (comparison(lookup), lookup, value) {
        (Some(op), _, value) => compare(op, value)?,
        (None, "in", Value::Array(values)) => {
            Expr::Or(values.into_iter().map(|v| compare(CompareOp::Eq, v)).collect::<Result<_>>()?)
        }
        (None, "range", Value::Array(bounds)) if bounds.len() == 2 => {
            let mut bounds = bounds.into_iter();
            let (low, high) = (bounds.next().unwrap_or(Value::Null), bounds.next().unwrap_or(Value::Null));
            Expr::And(vec![compare(CompareOp::Gte, low)?, compare(CompareOp::Lte, high)?])
        }
        _ => {
            return Err(Error::field(format!(
                "`{key}__{lookup}`: a part of a date or time takes exact, ne, gt, gte, lt, lte, in (a list) or \
                 range (two values)"
            )))
        }
    })
}

/// Part `part` of field `field_name`, if its type has that part.
pub fn part_of(fields: &[FieldInfo], table: &str, field_name: &str, part: DatePart) -> Result<Scalar> {
    let field = field(fields, table, field_name)?;
    if !part.applies_to(&field.sql_type) {
        return Err(Error::field(format!(
            "`{field_name}__{}`: `{field_name}` is a `{}` column, which has no {} (parts: {})",
            part.name(),
            field.sql_type,
            part.name(),
            parts_of(&field.sql_type)
        )));
    }
    Ok(Scalar::Part { part, column: field.column.clone() })
}

/// Field `field_name` cut down to the start of its `unit` (Django's `Trunc`), if its
/// type can be.
pub fn trunc(fields: &[FieldInfo], table: &str, field_name: &str, unit: TruncUnit) -> Result<Scalar> {
    let field = field(fields, table, field_name)?;
    if !unit.applies_to(&field.sql_type) {
        let units =
            names_where(&TruncUnit::ALL, |u| u.applies_to(&field.sql_type), "none: only dates and timestamps are");
        return Err(Error::field(format!(
            "cannot truncate `{field_name}`, a `{}` column, to its {} (units: {units})",
            field.sql_type,
            unit.name()
        )));
    }
    Ok(Scalar::Trunc { unit, column: field.column.clone(), date: field.sql_type == "date" })
}

/// The value a field or a part of one names (`"created"`, `"created__year"`): to sort
/// by, or to read (`values("created__year")`).
pub fn value(fields: &[FieldInfo], table: &str, name: &str) -> Result<Scalar> {
    match (field(fields, table, name), split_part(fields, name)) {
        (Ok(field), _) => Ok(Scalar::Operand(Operand::Column(field.column.clone()))),
        (Err(_), Some((field_name, part))) => part_of(fields, table, field_name, part),
        (Err(unknown), None) => json_path(fields, name, false).ok_or(unknown),
    }
}

/// The value a key path of a `jsonb` field leads to (`"data__owner__name"`): JSON, or
/// its text with `text`; `None` unless `name` names a `jsonb` field and keys.
pub fn json_path(fields: &[FieldInfo], name: &str, text: bool) -> Option<Scalar> {
    let (field_name, path) = split_json(fields, name)?;
    let column = fields.iter().find(|f| f.name == field_name)?.column.clone();
    Some(Scalar::Json { column, path: path.into_iter().map(str::to_owned).collect(), text })
}

/// The parts a column of type `sql_type` has, for messages.
fn parts_of(sql_type: &str) -> String {
    names_where(&DatePart::ALL, |p| p.applies_to(sql_type), "none: only dates, times and timestamps have them")
}

/// The names, comma-separated, of a name table's values `applies` holds for, or `none`.
fn names_where<T: Copy>(all: &[(&'static str, T)], applies: impl Fn(T) -> bool, none: &str) -> String {
    let names: Vec<&str> = all.iter().filter(|(_, v)| applies(*v)).map(|(n, _)| *n).collect();
    if names.is_empty() {
        none.to_owned()
    } else {
        names.join(", ")
    }
}

/// An order term from `"field"` (ascending) or `"-field"` (descending).
pub fn order(fields: &[FieldInfo], table: &str, spec: &str) -> Result<Order> {
    let (name, descending) = order_spec(spec);
    Ok(match value(fields, table, name)? {
        Scalar::Operand(Operand::Column(column)) => Order::column(column, descending),
        part => Order::computed(name.to_owned(), part, descending),
    })
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
    fn parts_of_dates_and_times_compare_as_numbers_dates_or_times() {
        const DATED: &[FieldInfo] = &[
            FieldInfo::new("at", "created_at", "timestamptz", false),
            FieldInfo::new("day", "day", "date", false),
            FieldInfo::new("name", "name", "text", false),
        ];
        let sql = |expr: Expr| {
            let mut select = crate::ast::Select::new("t", ["id"]);
            select.filter(expr);
            crate::compile::select(&crate::Postgres, &select).sql.to_string()
        };
        assert_eq!(split_part(DATED, "at__year"), Some(("at", DatePart::Year)));
        assert_eq!(split_part(DATED, "at__yeer"), None);
        assert_eq!(split_part(DATED, "when__year"), None);
        let year = resolve_part(DATED, "t", "at", DatePart::Year, "gte", Value::I64(2020)).unwrap();
        assert_eq!(
            sql(year),
            r#"SELECT "id" FROM "t" WHERE CAST(floor(EXTRACT(YEAR FROM "created_at")) AS int8) >= $1"#
        );
        let days =
            resolve_part(DATED, "t", "day", DatePart::WeekDay, "in", Value::Array(vec![Value::I64(1), Value::I64(7)]));
        assert_eq!(
            sql(days.unwrap()),
            r#"SELECT "id" FROM "t" WHERE (CAST(floor(EXTRACT(DOW FROM "day")) + 1 AS int8) = $1 OR CAST(floor(EXTRACT(DOW FROM "day")) + 1 AS int8) = $2)"#
        );
        let date = chakra_service::chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        let on = resolve_part(DATED, "t", "at", DatePart::Date, "exact", Value::Date(date)).unwrap();
        assert_eq!(sql(on), r#"SELECT "id" FROM "t" WHERE CAST("created_at" AS date) = $1"#);
        // Sorted by a part: the value, under the name that asked for it.
        let mut select = crate::ast::Select::new("t", ["id"]);
        select.order = vec![order(DATED, "t", "-at__month").unwrap(), order(DATED, "t", "name").unwrap()];
        assert_eq!(
            crate::compile::select(&crate::Postgres, &select).sql.to_string(),
            r#"SELECT "id" FROM "t" ORDER BY CAST(floor(EXTRACT(MONTH FROM "created_at")) AS int8) DESC, "name" ASC"#
        );
        assert!(order(DATED, "t", "day__hour")
            .unwrap_err()
            .message()
            .contains("`day` is a `date` column, which has no hour"));
        assert!(order(DATED, "t", "at__yeer").unwrap_err().message().contains("unknown field `at__yeer`"));
        // Cut down to a unit: a date stays a date.
        let mut select = crate::ast::Select::new("t", ["id"]);
        select.annotations = [("at", TruncUnit::Month), ("day", TruncUnit::Week)]
            .map(|(field, unit)| crate::ast::Annotation::new(field, trunc(DATED, "t", field, unit).unwrap()))
            .to_vec();
        assert_eq!(
            crate::compile::select(&crate::Postgres, &select).sql.to_string(),
            r#"SELECT "id", date_trunc('month', "created_at") AS "at", CAST(date_trunc('week', "day") AS date) AS "day" FROM "t""#
        );
        let err = trunc(DATED, "t", "day", TruncUnit::Hour).unwrap_err();
        assert_eq!(
            err.message(),
            "cannot truncate `day`, a `date` column, to its hour (units: year, quarter, month, week, day)"
        );
        assert!(trunc(DATED, "t", "name", TruncUnit::Day).unwrap_err().message().contains("units: none"));

        let err = |field, part, lookup, value| {
            resolve_part(DATED, "t", field, part, lookup, value).unwrap_err().message().to_owned()
        };
        assert_eq!(
            err("day", DatePart::Hour, "exact", Value::I64(1)),
            "`day__hour`: `day` is a `date` column, which has no hour (parts: year, iso_year, quarter, month, week, day, week_day, iso_week_day)"
        );
        assert!(
            err("name", DatePart::Year, "exact", Value::I64(1)).contains("only dates, times and timestamps have them")
        );
        assert_eq!(
            err("at", DatePart::Year, "exact", Value::from("2024")),
            "`at__year__exact` needs an integer, got text"
        );
        assert_eq!(err("at", DatePart::Date, "gt", Value::I64(3)), "`at__date__gt` needs a date, got i64");
        assert!(
            err("at", DatePart::Month, "startswith", Value::I64(3)).starts_with("`at__month__startswith`: a part of")
        );
        let unknown = resolve(DATED, "t", "at", "yeer", Value::I64(1)).unwrap_err();
        assert!(unknown.message().ends_with("; parts: year, iso_year, quarter, month, week, day, week_day, iso_week_day, hour, minute, second, date, time)"), "{unknown}");
    }

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

    #[test]
    fn json_key_paths_are_values_to_read_and_sort_by() {
        const DOCS: &[FieldInfo] =
            &[FieldInfo::new("id", "id", "int8", false), FieldInfo::new("data", "doc", "jsonb", true)];
        let by = order(DOCS, "docs", "-data__owner__0").unwrap();
        let mut select = crate::ast::Select::new("docs", ["id"]);
        select.order.push(by);
        let st = crate::compile::select(&crate::Postgres, &select);
        assert!(st.sql.ends_with(r#"ORDER BY ("doc" #> $1::text[]) DESC"#), "{}", st.sql);
        assert_eq!(st.params, vec![Value::Array(vec![Value::from("owner"), Value::from("0")])]);
        let text = json_path(DOCS, "data__owner", true);
        assert_eq!(text, Some(Scalar::Json { column: "doc".into(), path: vec!["owner".into()], text: true }));
        assert_eq!(json_path(DOCS, "id__x", false), None, "only a jsonb field has keys");
        assert_eq!(json_path(DOCS, "data", false), None, "the field itself is no path");
    }
}
