//! `Value`: one dynamically typed SQL value, the currency of statement parameters.
//!
//! Front-ends that know their types at compile time (the Rust models) decode rows
//! straight into their fields; `Value` exists for parameters, for run-time typed
//! front-ends (Python), and for raw queries whose shape is not known in advance.

use std::error::Error as StdError;
use std::fmt;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use fallible_iterator::FallibleIterator;
use postgres_protocol::types as wire;
use rust_decimal::Decimal;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, Kind, ToSql, Type};
use uuid::Uuid;

type BoxError = Box<dyn StdError + Sync + Send>;

/// A SQL value of any supported type, including `NULL` and one-dimensional arrays.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    I16(i16),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    Text(String),
    Bytes(Vec<u8>),
    Uuid(Uuid),
    Json(serde_json::Value),
    Date(NaiveDate),
    Time(NaiveTime),
    /// `timestamp` (without time zone).
    Timestamp(NaiveDateTime),
    /// `timestamptz`, always normalised to UTC.
    TimestampTz(DateTime<Utc>),
    /// `numeric`. Values `Decimal` cannot hold exactly (more than 28 significant digits,
    /// `NaN`, infinities) decode as [`Value::Text`] with every digit.
    Numeric(Decimal),
    Array(Vec<Value>),
    /// A value already in PostgreSQL's binary format (see [`Encoded`]).
    Encoded(Encoded),
}

/// The hashable form of a key's value, to match rows with keys: integers of any width
/// compare equal (a key given as an `i32` matches the `int8` it was read back as). Only
/// the types a key can sensibly have: integers, text, uuid and bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Int(i64),
    Text(String),
    Uuid(Uuid),
    Bytes(Vec<u8>),
}

impl Key {
    /// `value`'s key; `None` for `NULL` and for the types keys cannot have.
    pub fn of(value: &Value) -> Option<Key> {
        Some(match value {
            Value::I16(v) => Key::Int((*v).into()),
            Value::I32(v) => Key::Int((*v).into()),
            Value::I64(v) => Key::Int(*v),
            Value::Text(v) => Key::Text(v.clone()),
            Value::Uuid(v) => Key::Uuid(*v),
            Value::Bytes(v) => Key::Bytes(v.clone()),
            _ => return None,
        })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Int(v) => write!(f, "{v}"),
            Key::Text(v) => write!(f, "{v:?}"),
            Key::Uuid(v) => write!(f, "{v}"),
            Key::Bytes(v) => write!(f, "{} bytes", v.len()),
        }
    }
}

impl From<Key> for Value {
    fn from(key: Key) -> Value {
        match key {
            Key::Int(v) => Value::I64(v),
            Key::Text(v) => Value::Text(v),
            Key::Uuid(v) => Value::Uuid(v),
            Key::Bytes(v) => Value::Bytes(v),
        }
    }
}

/// A parameter encoded ahead of time for one PostgreSQL type. Bulk inserts encode each
/// column's array straight from the rows' borrowed fields, instead of copying every field
/// into a [`Value`] first; clones share the bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    ty: Type,
    bytes: Bytes,
}

impl Encoded {
    /// Encodes `value` as `ty` (an error if `T` cannot be sent as `ty`), reserving
    /// `size_hint` bytes up front (an estimate; the buffer grows past it as needed).
    pub fn new<T: ToSql + ?Sized>(value: &T, ty: Type, size_hint: usize) -> Result<Encoded, BoxError> {
        let mut out = BytesMut::with_capacity(size_hint);
        match value.to_sql_checked(&ty, &mut out)? {
            IsNull::No => Ok(Encoded { ty, bytes: out.freeze() }),
            IsNull::Yes => Err("an encoded parameter cannot be NULL; send Value::Null".into()),
        }
    }

    /// Bytes already in `ty`'s binary format, taken as they are.
    pub(crate) fn from_parts(ty: Type, bytes: Bytes) -> Encoded {
        Encoded { ty, bytes }
    }

    /// The type it was encoded as: the server must ask for exactly this one.
    pub fn ty(&self) -> &Type {
        &self.ty
    }

    /// The encoded bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
}

impl Value {
    /// Whether this is SQL `NULL`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The PostgreSQL type this value is sent as when the server is not asked to infer it
    /// (unnamed statements, used when the statement cache is off).
    pub fn natural_type(&self) -> Type {
        match self {
            Value::Null => Type::UNKNOWN,
            Value::Bool(_) => Type::BOOL,
            Value::I16(_) => Type::INT2,
            Value::I32(_) => Type::INT4,
            Value::I64(_) => Type::INT8,
            Value::F32(_) => Type::FLOAT4,
            Value::F64(_) => Type::FLOAT8,
            Value::Text(_) => Type::TEXT,
            Value::Bytes(_) => Type::BYTEA,
            Value::Uuid(_) => Type::UUID,
            Value::Json(_) => Type::JSONB,
            Value::Date(_) => Type::DATE,
            Value::Time(_) => Type::TIME,
            Value::Timestamp(_) => Type::TIMESTAMP,
            Value::TimestampTz(_) => Type::TIMESTAMPTZ,
            Value::Numeric(_) => Type::NUMERIC,
            Value::Array(items) => match items.iter().find(|v| !v.is_null()).map(Value::natural_type) {
                Some(t) => array_of(&t).unwrap_or(Type::TEXT_ARRAY),
                None => Type::TEXT_ARRAY,
            },
            Value::Encoded(e) => e.ty.clone(),
        }
    }

    /// A short name of the variant, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::I16(_) => "i16",
            Value::I32(_) => "i32",
            Value::I64(_) => "i64",
            Value::F32(_) => "f32",
            Value::F64(_) => "f64",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
            Value::Uuid(_) => "uuid",
            Value::Json(_) => "json",
            Value::Date(_) => "date",
            Value::Time(_) => "time",
            Value::Timestamp(_) => "timestamp",
            Value::TimestampTz(_) => "timestamptz",
            Value::Numeric(_) => "numeric",
            Value::Array(_) => "array",
            Value::Encoded(_) => "encoded",
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v),
            _ => None,
        }
    }
}

fn array_of(element: &Type) -> Option<Type> {
    Some(match *element {
        Type::BOOL => Type::BOOL_ARRAY,
        Type::INT2 => Type::INT2_ARRAY,
        Type::INT4 => Type::INT4_ARRAY,
        Type::INT8 => Type::INT8_ARRAY,
        Type::FLOAT4 => Type::FLOAT4_ARRAY,
        Type::FLOAT8 => Type::FLOAT8_ARRAY,
        Type::TEXT => Type::TEXT_ARRAY,
        Type::BYTEA => Type::BYTEA_ARRAY,
        Type::UUID => Type::UUID_ARRAY,
        Type::JSONB => Type::JSONB_ARRAY,
        Type::DATE => Type::DATE_ARRAY,
        Type::TIME => Type::TIME_ARRAY,
        Type::TIMESTAMP => Type::TIMESTAMP_ARRAY,
        Type::TIMESTAMPTZ => Type::TIMESTAMPTZ_ARRAY,
        Type::NUMERIC => Type::NUMERIC_ARRAY,
        _ => return None,
    })
}

/// A parameter whose value cannot be sent as the type the server expects.
#[derive(Debug)]
pub(crate) struct Mismatch {
    value: &'static str,
    expected: Type,
    detail: Option<String>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot send a {} value as PostgreSQL type {}", self.value, self.expected)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl StdError for Mismatch {}

fn mismatch(value: &Value, expected: &Type, detail: Option<String>) -> BoxError {
    Box::new(Mismatch { value: value.type_name(), expected: expected.clone(), detail })
}

fn is_text(ty: &Type) -> bool {
    matches!(*ty, Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN) || ty.name() == "citext"
}

impl ToSql for Value {
    /// Values convert to the type the server asks for when the conversion is lossless
    /// (an `i64` into an `int4` column that fits, text into `numeric`, …); anything else is
    /// an error naming both types, raised before the statement is sent.
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        if let (Some(v), true) = (self.as_i64(), matches!(*ty, Type::INT2 | Type::INT4 | Type::INT8)) {
            // The value itself stays out of the message: errors end up in logs and spans.
            let range = |_| mismatch(self, ty, Some("value out of range".into()));
            match *ty {
                Type::INT2 => wire::int2_to_sql(i16::try_from(v).map_err(range)?, out),
                Type::INT4 => wire::int4_to_sql(i32::try_from(v).map_err(range)?, out),
                _ => wire::int8_to_sql(v, out),
            }
            return Ok(IsNull::No);
        }
        match (self, ty) {
            (Value::Null, _) => return Ok(IsNull::Yes),
            (Value::Bool(v), &Type::BOOL) => wire::bool_to_sql(*v, out),
            (Value::F32(v), &Type::FLOAT4) => wire::float4_to_sql(*v, out),
            (Value::F32(v), &Type::FLOAT8) => wire::float8_to_sql(f64::from(*v), out),
            (Value::F64(v), &Type::FLOAT8) => wire::float8_to_sql(*v, out),
            (Value::F64(v), &Type::FLOAT4) => wire::float4_to_sql(*v as f32, out),
            (v @ (Value::I16(_) | Value::I32(_) | Value::I64(_)), &Type::FLOAT8) => {
                wire::float8_to_sql(v.as_i64().unwrap_or_default() as f64, out)
            }
            (v @ (Value::I16(_) | Value::I32(_) | Value::I64(_)), &Type::NUMERIC) => {
                return Decimal::from(v.as_i64().unwrap_or_default()).to_sql(ty, out)
            }
            (Value::F64(f), &Type::NUMERIC) => {
                let d = Decimal::try_from(*f).map_err(|e| mismatch(self, ty, Some(e.to_string())))?;
                return d.to_sql(ty, out);
            }
            (Value::Text(s), t) if is_text(t) => wire::text_to_sql(s, out),
            (Value::Text(s), &Type::NUMERIC) => {
                let d: Decimal = s.parse().map_err(|e: rust_decimal::Error| mismatch(self, ty, Some(e.to_string())))?;
                return d.to_sql(ty, out);
            }
            (Value::Text(s), &Type::UUID) => {
                let u = Uuid::parse_str(s).map_err(|e| mismatch(self, ty, Some(e.to_string())))?;
                return u.to_sql(ty, out);
            }
            (Value::Text(s), &Type::JSON | &Type::JSONB) => {
                let j: serde_json::Value =
                    serde_json::from_str(s).map_err(|e| mismatch(self, ty, Some(e.to_string())))?;
                return j.to_sql(ty, out);
            }
            (Value::Bytes(v), &Type::BYTEA) => wire::bytea_to_sql(v, out),
            (Value::Uuid(v), &Type::UUID) => return v.to_sql(ty, out),
            (Value::Uuid(v), t) if is_text(t) => wire::text_to_sql(&v.to_string(), out),
            (Value::Json(v), &Type::JSON | &Type::JSONB) => return v.to_sql(ty, out),
            (Value::Date(v), &Type::DATE) => return v.to_sql(ty, out),
            (Value::Time(v), &Type::TIME) => return v.to_sql(ty, out),
            (Value::Timestamp(v), &Type::TIMESTAMP) => return v.to_sql(ty, out),
            (Value::TimestampTz(v), &Type::TIMESTAMPTZ) => return v.to_sql(ty, out),
            (Value::Numeric(v), &Type::NUMERIC) => return v.to_sql(ty, out),
            (Value::Numeric(v), &Type::FLOAT8) => {
                let f: f64 = v.to_string().parse().map_err(|_| mismatch(self, ty, None))?;
                wire::float8_to_sql(f, out)
            }
            (Value::Array(items), t) => return array_to_sql(self, items, t, out),
            (Value::Encoded(e), t) if e.ty == *t => out.extend_from_slice(&e.bytes),
            (Value::Encoded(e), t) => {
                return Err(mismatch(self, ty, Some(format!("it was encoded as {}, the statement expects {t}", e.ty))))
            }
            _ => return Err(mismatch(self, ty, None)),
        }
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn array_to_sql(whole: &Value, items: &[Value], ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
    let Kind::Array(member) = ty.kind() else {
        return Err(mismatch(whole, ty, Some("arrays can only be sent to array parameters".into())));
    };
    let dimension = wire::ArrayDimension {
        len: i32::try_from(items.len()).map_err(|_| mismatch(whole, ty, Some("too many elements".into())))?,
        lower_bound: 1,
    };
    wire::array_to_sql(
        Some(dimension),
        member.oid(),
        items.iter(),
        |item, buf| match item.to_sql(member, buf)? {
            IsNull::No => Ok(postgres_protocol::IsNull::No),
            IsNull::Yes => Ok(postgres_protocol::IsNull::Yes),
        },
        out,
    )?;
    Ok(IsNull::No)
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(match *ty {
            Type::BOOL => Value::Bool(wire::bool_from_sql(raw)?),
            Type::INT2 => Value::I16(wire::int2_from_sql(raw)?),
            Type::INT4 => Value::I32(wire::int4_from_sql(raw)?),
            Type::INT8 => Value::I64(wire::int8_from_sql(raw)?),
            Type::OID => Value::I64(wire::oid_from_sql(raw)?.into()),
            Type::FLOAT4 => Value::F32(wire::float4_from_sql(raw)?),
            Type::FLOAT8 => Value::F64(wire::float8_from_sql(raw)?),
            Type::BYTEA => Value::Bytes(wire::bytea_from_sql(raw).to_vec()),
            Type::UUID => Value::Uuid(Uuid::from_sql(ty, raw)?),
            Type::JSON | Type::JSONB => Value::Json(serde_json::Value::from_sql(ty, raw)?),
            Type::DATE => Value::Date(NaiveDate::from_sql(ty, raw)?),
            Type::TIME => Value::Time(NaiveTime::from_sql(ty, raw)?),
            Type::TIMESTAMP => Value::Timestamp(NaiveDateTime::from_sql(ty, raw)?),
            Type::TIMESTAMPTZ => Value::TimestampTz(DateTime::<Utc>::from_sql(ty, raw)?),
            // rust_decimal rounds what it cannot hold; only an exact fit becomes a Decimal.
            Type::NUMERIC => {
                let text = numeric_to_text(raw)?;
                match Decimal::from_str_exact(&text) {
                    Ok(d) => Value::Numeric(d),
                    Err(_) => Value::Text(text),
                }
            }
            _ if is_text(ty) || matches!(ty.kind(), Kind::Enum(_)) => Value::Text(wire::text_from_sql(raw)?.to_owned()),
            _ => match ty.kind() {
                Kind::Array(member) => {
                    let array = wire::array_from_sql(raw)?;
                    if array.dimensions().count()? > 1 {
                        return Err("multi-dimensional arrays are not supported".into());
                    }
                    let mut items = Vec::new();
                    let mut values = array.values();
                    while let Some(raw) = values.next()? {
                        items.push(match raw {
                            Some(raw) => Value::from_sql(member, raw)?,
                            None => Value::Null,
                        });
                    }
                    Value::Array(items)
                }
                Kind::Domain(inner) => Value::from_sql(inner, raw)?,
                _ => return Err(format!("unsupported PostgreSQL type {ty}").into()),
            },
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Value::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Renders a binary `numeric` that does not fit `Decimal` (`NaN`, ±`Infinity`, more than
/// 28 significant digits) as its exact decimal text.
fn numeric_to_text(raw: &[u8]) -> Result<String, BoxError> {
    if raw.len() < 8 {
        return Err("invalid numeric".into());
    }
    let word = |i: usize| u16::from_be_bytes([raw[i], raw[i + 1]]);
    let (ndigits, weight, sign, dscale) = (word(0) as usize, word(2) as i16, word(4), word(6) as usize);
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        _ => {}
    }
    if raw.len() < 8 + 2 * ndigits {
        return Err("invalid numeric".into());
    }
    let digits: Vec<u16> = (0..ndigits).map(|i| word(8 + 2 * i)).collect();
    let mut int_part = String::new();
    for pos in 0..=weight.max(-1) as i32 {
        let d = digits.get(pos as usize).copied().unwrap_or(0);
        if int_part.is_empty() {
            if d != 0 {
                int_part = d.to_string();
            }
        } else {
            int_part.push_str(&format!("{d:04}"));
        }
    }
    if int_part.is_empty() {
        int_part.push('0');
    }
    let mut frac = String::new();
    let first_frac = (weight as i32 + 1).max(0);
    let leading_zero_groups = (-(weight as i32) - 1).max(0);
    for _ in 0..leading_zero_groups {
        frac.push_str("0000");
    }
    for pos in first_frac..ndigits as i32 {
        frac.push_str(&format!("{:04}", digits[pos as usize]));
    }
    while frac.len() < dscale {
        frac.push('0');
    }
    frac.truncate(dscale);
    let sign = if sign == 0x4000 { "-" } else { "" };
    Ok(if frac.is_empty() { format!("{sign}{int_part}") } else { format!("{sign}{int_part}.{frac}") })
}

macro_rules! from_native {
    ($($t:ty => $variant:ident),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::$variant(v.into())
            }
        }
    )*};
}

from_native! {
    bool => Bool, i16 => I16, i32 => I32, i64 => I64, f32 => F32, f64 => F64,
    String => Text, &str => Text, Vec<u8> => Bytes, &[u8] => Bytes, Uuid => Uuid,
    serde_json::Value => Json, NaiveDate => Date, NaiveTime => Time,
    NaiveDateTime => Timestamp, DateTime<Utc> => TimestampTz, Decimal => Numeric,
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Self {
        Value::Array(v.into_iter().map(Into::into).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_narrow_only_when_they_fit() {
        let mut buf = BytesMut::new();
        assert!(matches!(Value::I64(7).to_sql(&Type::INT4, &mut buf), Ok(IsNull::No)));
        let Err(err) = Value::I64(i64::MAX).to_sql(&Type::INT4, &mut buf) else {
            panic!("accepted an overflowing value")
        };
        assert!(err.to_string().contains("out of range"), "{err}");
        assert!(!err.to_string().contains(&i64::MAX.to_string()), "the value leaked: {err}");
    }

    #[test]
    fn wrong_types_name_both_sides() {
        let Err(err) = Value::Bool(true).to_sql(&Type::INT4, &mut BytesMut::new()) else {
            panic!("accepted a bool for int4")
        };
        assert_eq!(err.to_string(), "cannot send a bool value as PostgreSQL type int4");
    }

    #[test]
    fn array_type_follows_first_non_null_element() {
        let v = Value::from(vec![None, Some(3_i64)]);
        assert_eq!(v.natural_type(), Type::INT8_ARRAY);
    }

    #[test]
    fn numeric_out_of_decimal_range_renders_exactly() {
        // 123456789012345678901234567890.5 : ndigits 9, weight 7, positive, dscale 1
        let groups: [u16; 9] = [12, 3456, 7890, 1234, 5678, 9012, 3456, 7890, 5000];
        let mut raw = Vec::new();
        for w in [9u16, 7, 0, 1] {
            raw.extend_from_slice(&w.to_be_bytes());
        }
        for g in groups {
            raw.extend_from_slice(&g.to_be_bytes());
        }
        assert_eq!(numeric_to_text(&raw).unwrap(), "123456789012345678901234567890.5");
        let nan = [0u8, 0, 0, 0, 0xC0, 0, 0, 0];
        assert_eq!(numeric_to_text(&nan).unwrap(), "NaN");
    }
}
