//! Shorter paths from a column's bytes to the commonest field types.
//!
//! postgres-types reads every `text` value after comparing the column's type name with
//! three extension types (`ltree`, `lquery`, `ltxtquery`), and every timestamp by building
//! 2000-01-01 afresh and adding the value to it as a duration. Text and timestamp columns
//! are most of most tables, and a model reads them for every row it loads, so for the
//! built-in types these read the same bytes directly; any other column type goes to
//! postgres-types as before. Callgrind over orm-bench's 10k-row fetch (two text columns
//! and a `timestamptz` per row): 13% fewer instructions per fetch, all of it in these two
//! paths.

use std::error::Error;

use chakra_service::chrono::{DateTime, NaiveDateTime, Utc};
use chakra_service::{FromSql, Type};

type DecodeResult<T> = Result<T, Box<dyn Error + Sync + Send>>;

/// A `&str` read without the extension-type checks when the column is a built-in text
/// type (the Python front-end's text, which it copies into a Python string).
pub struct Str<'a>(pub &'a str);

impl<'a> FromSql<'a> for Str<'a> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> DecodeResult<Str<'a>> {
        match *ty {
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                Ok(Str(std::str::from_utf8(raw)?))
            }
            _ => <&str as FromSql>::from_sql(ty, raw).map(Str),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

/// A `String` field, through [`Str`].
pub struct Text(pub String);

impl<'a> FromSql<'a> for Text {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> DecodeResult<Text> {
        Str::from_sql(ty, raw).map(|s| Text(s.0.to_owned()))
    }

    fn accepts(ty: &Type) -> bool {
        <String as FromSql>::accepts(ty)
    }
}

/// Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01 00:00 UTC.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A timestamp as PostgreSQL sends it (microseconds since 2000-01-01), made into chrono's
/// from the Unix epoch in one step. ±infinity (`i64::MAX` and `MIN`) and the years chrono
/// cannot hold fail, as they do through postgres-types.
fn timestamp(raw: &[u8]) -> DecodeResult<DateTime<Utc>> {
    let micros = i64::from_be_bytes(raw.try_into().map_err(|_| "invalid buffer size")?);
    micros
        .checked_add(PG_EPOCH_MICROS)
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(|| "value too large to decode".into())
}

/// A `timestamptz` field.
pub struct Timestamptz(pub DateTime<Utc>);

impl<'a> FromSql<'a> for Timestamptz {
    fn from_sql(_: &Type, raw: &'a [u8]) -> DecodeResult<Timestamptz> {
        timestamp(raw).map(Timestamptz)
    }

    fn accepts(ty: &Type) -> bool {
        <DateTime<Utc> as FromSql>::accepts(ty)
    }
}

/// A `timestamp` (without time zone) field.
pub struct LocalTimestamp(pub NaiveDateTime);

impl<'a> FromSql<'a> for LocalTimestamp {
    fn from_sql(_: &Type, raw: &'a [u8]) -> DecodeResult<LocalTimestamp> {
        timestamp(raw).map(|t| LocalTimestamp(t.naive_utc()))
    }

    fn accepts(ty: &Type) -> bool {
        <NaiveDateTime as FromSql>::accepts(ty)
    }
}
