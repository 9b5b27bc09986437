//! Python values to the core's [`Value`] (parameters) and result columns to Python
//! objects (rows). Model fields convert by their declared type, so a wrong-typed value
//! is an error naming the field before any SQL is sent; raw-query parameters convert by
//! their Python type.

use chakra::chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chakra::models::wire;
use chakra::rust_decimal::Decimal;
use chakra::serde_json::{self, Map, Number};
use chakra::uuid::Uuid;
use chakra::{Row, Value};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDate, PyDateAccess, PyDateTime, PyDict, PyFloat, PyInt, PyList, PyMemoryView,
    PyString, PyTime, PyTimeAccess, PyTuple, PyType, PyTzInfoAccess,
};
use pyo3::IntoPyObjectExt;
use tokio_postgres::types::{Kind, Type};

use crate::errors::data_error;

/// How a model field's values are checked and sent: one per field type of `chakra.fields`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldKind {
    SmallInt,
    Int,
    BigInt,
    Text,
    Bool,
    Float,
    Numeric,
    Timestamp,
    TimestampTz,
    Date,
    Time,
    Uuid,
    Json,
    Bytes,
}

impl FieldKind {
    /// The kind of a PostgreSQL type name as `chakra.fields` declares it.
    pub(crate) fn from_sql_type(sql_type: &str) -> Option<FieldKind> {
        Some(match sql_type {
            "int2" => FieldKind::SmallInt,
            "int4" => FieldKind::Int,
            "int8" => FieldKind::BigInt,
            "text" | "varchar" => FieldKind::Text,
            "bool" => FieldKind::Bool,
            "float8" | "float4" => FieldKind::Float,
            "numeric" => FieldKind::Numeric,
            "timestamp" => FieldKind::Timestamp,
            "timestamptz" => FieldKind::TimestampTz,
            "date" => FieldKind::Date,
            "time" => FieldKind::Time,
            "uuid" => FieldKind::Uuid,
            "jsonb" | "json" => FieldKind::Json,
            "bytea" => FieldKind::Bytes,
            _ => return None,
        })
    }

    /// Whether the kind's values are integers.
    pub(crate) fn is_integer(self) -> bool {
        matches!(self, FieldKind::SmallInt | FieldKind::Int | FieldKind::BigInt)
    }

    /// The PostgreSQL type of a number kind's values, to convert a result back to.
    pub(crate) fn sql_type(self) -> Option<&'static str> {
        Some(match self {
            FieldKind::SmallInt => "int2",
            FieldKind::Int => "int4",
            FieldKind::BigInt => "int8",
            FieldKind::Float => "float8",
            FieldKind::Numeric => "numeric",
            _ => return None,
        })
    }

    /// Whether arithmetic applies to the kind's values.
    pub(crate) fn is_numeric(self) -> bool {
        matches!(self, FieldKind::SmallInt | FieldKind::Int | FieldKind::BigInt | FieldKind::Float | FieldKind::Numeric)
    }

    /// Whether `min` and `max` apply: numbers, text, dates and times.
    pub(crate) fn is_ordered(self) -> bool {
        self.is_numeric()
            || matches!(
                self,
                FieldKind::Text | FieldKind::Timestamp | FieldKind::TimestampTz | FieldKind::Date | FieldKind::Time
            )
    }

    /// Whether values of the two kinds compare and assign to each other: the same kind,
    /// or numbers of any kinds.
    pub(crate) fn compatible(self, other: FieldKind) -> bool {
        self == other || (self.is_numeric() && other.is_numeric())
    }

    fn expected(self) -> &'static str {
        match self {
            FieldKind::SmallInt | FieldKind::Int | FieldKind::BigInt => "an int",
            FieldKind::Text => "a str",
            FieldKind::Bool => "a bool",
            FieldKind::Float => "a float",
            FieldKind::Numeric => "a decimal.Decimal, int or float",
            FieldKind::Timestamp => "a naive datetime.datetime",
            FieldKind::TimestampTz => "a timezone-aware datetime.datetime",
            FieldKind::Date => "a datetime.date",
            FieldKind::Time => "a datetime.time",
            FieldKind::Uuid => "a uuid.UUID",
            FieldKind::Json => "JSON data (dict, list, str, int, float, bool or None)",
            FieldKind::Bytes => "bytes",
        }
    }
}

/// A model field as the converters see it.
#[derive(Debug, Clone)]
pub(crate) struct FieldType {
    pub kind: FieldKind,
    /// `String(n)`'s `n`.
    pub max_length: Option<usize>,
}

fn describe(obj: &Bound<'_, PyAny>) -> String {
    let type_name = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
    let mut shown = obj.repr().map(|r| r.to_string()).unwrap_or_default();
    if shown.chars().count() > 60 {
        shown = shown.chars().take(57).collect::<String>() + "...";
    }
    format!("{type_name} {shown}")
}

/// Converts `obj` for a field of type `ty`; `label` (`User.age`) names it in errors.
pub(crate) fn to_value(obj: &Bound<'_, PyAny>, ty: &FieldType, label: &str) -> PyResult<Value> {
    let py = obj.py();
    if obj.is_none() {
        return Ok(Value::Null);
    }
    let wrong = || data_error(py, format!("{label} expects {}, got {}", ty.kind.expected(), describe(obj)));
    let is_int = obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>();
    Ok(match ty.kind {
        FieldKind::SmallInt | FieldKind::Int | FieldKind::BigInt => {
            if !is_int {
                return Err(wrong());
            }
            let (min, max) = match ty.kind {
                FieldKind::SmallInt => (i16::MIN as i64, i16::MAX as i64),
                FieldKind::Int => (i32::MIN as i64, i32::MAX as i64),
                _ => (i64::MIN, i64::MAX),
            };
            match obj.extract::<i64>() {
                Ok(v) if (min..=max).contains(&v) => Value::I64(v),
                _ => return Err(data_error(py, format!("{label}: {} is out of range ({min} to {max})", describe(obj)))),
            }
        }
        FieldKind::Text => {
            let s = obj.cast::<PyString>().map_err(|_| wrong())?.to_str()?;
            if let Some(max) = ty.max_length {
                let len = s.chars().count();
                if len > max {
                    return Err(data_error(py, format!("{label} is at most {max} characters, got {len}")));
                }
            }
            Value::Text(s.to_owned())
        }
        FieldKind::Bool => Value::Bool(obj.cast::<PyBool>().map_err(|_| wrong())?.is_true()),
        FieldKind::Float => {
            if is_int || obj.is_instance_of::<PyFloat>() {
                Value::F64(obj.extract::<f64>()?)
            } else {
                return Err(wrong());
            }
        }
        FieldKind::Numeric => {
            if is_int {
                Value::Numeric(Decimal::from(obj.extract::<i64>().map_err(|_| wrong())?))
            } else if obj.is_instance_of::<PyFloat>() {
                Value::F64(obj.extract::<f64>()?)
            } else if obj.is_instance(decimal_class(py)?)? {
                match decimal_value(obj)? {
                    // The core sends numerics as `rust_decimal` (28 significant digits).
                    Value::Text(_) => {
                        return Err(data_error(py, format!("{label}: {} has more digits than can be sent exactly (at most 28)", describe(obj))))
                    }
                    v => v,
                }
            } else {
                return Err(wrong());
            }
        }
        FieldKind::Timestamp => match datetime_value(obj).ok_or_else(wrong)? {
            v @ Value::Timestamp(_) => v,
            _ => return Err(data_error(py, format!("{label} stores naive datetimes (DateTime()), got an aware one: {}; use DateTime(timezone=True) or drop the tzinfo", describe(obj)))),
        },
        FieldKind::TimestampTz => match datetime_value(obj).ok_or_else(wrong)? {
            v @ Value::TimestampTz(_) => v,
            _ => return Err(data_error(py, format!("{label} stores timezone-aware datetimes, got a naive one: {}; attach a tzinfo (e.g. datetime.timezone.utc)", describe(obj)))),
        },
        FieldKind::Date => {
            if obj.is_instance_of::<PyDateTime>() || !obj.is_instance_of::<PyDate>() {
                return Err(wrong());
            }
            Value::Date(obj.extract::<NaiveDate>()?)
        }
        FieldKind::Time => {
            let time = obj.cast::<PyTime>().map_err(|_| wrong())?;
            if time.get_tzinfo().is_some() {
                return Err(data_error(py, format!("{label} stores times without a time zone, got {}", describe(obj))));
            }
            Value::Time(obj.extract::<NaiveTime>()?)
        }
        FieldKind::Uuid => {
            if obj.is_instance(uuid_class(py)?)? {
                Value::Uuid(obj.extract::<Uuid>()?)
            } else if let Ok(s) = obj.cast::<PyString>() {
                Value::Uuid(Uuid::parse_str(s.to_str()?).map_err(|e| data_error(py, format!("{label}: {} is not a UUID ({e})", describe(obj))))?)
            } else {
                return Err(wrong());
            }
        }
        FieldKind::Json => Value::Json(json_value(obj).map_err(|msg| data_error(py, format!("{label}: {msg}")))?),
        FieldKind::Bytes => bytes_value(obj).ok_or_else(wrong)?,
    })
}

/// Converts a raw-query parameter by its Python type.
pub(crate) fn to_value_untyped(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    let py = obj.py();
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        return obj
            .extract::<i64>()
            .map(Value::I64)
            .map_err(|_| data_error(py, format!("{} does not fit a 64-bit integer", describe(obj))));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Value::F64(f.value()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::Text(s.to_str()?.to_owned()));
    }
    if let Some(v) = bytes_value(obj) {
        return Ok(v);
    }
    if let Some(v) = datetime_value(obj) {
        return Ok(v);
    }
    if obj.is_instance_of::<PyDate>() {
        return Ok(Value::Date(obj.extract()?));
    }
    if obj.is_instance_of::<PyTime>() {
        return Ok(Value::Time(obj.extract()?));
    }
    if obj.is_instance(uuid_class(py)?)? {
        return Ok(Value::Uuid(obj.extract()?));
    }
    if obj.is_instance(decimal_class(py)?)? {
        return decimal_value(obj);
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let items = obj.try_iter()?.map(|item| to_value_untyped(&item?)).collect::<PyResult<Vec<_>>>()?;
        return Ok(Value::Array(items));
    }
    if obj.is_instance_of::<PyDict>() {
        return json_value(obj).map(Value::Json).map_err(|msg| data_error(py, msg));
    }
    Err(data_error(py, format!("cannot send {} as a query parameter", describe(obj))))
}

fn bytes_value(obj: &Bound<'_, PyAny>) -> Option<Value> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Some(Value::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Some(Value::Bytes(b.to_vec()));
    }
    if obj.is_instance_of::<PyMemoryView>() {
        return obj.call_method0("tobytes").ok()?.cast::<PyBytes>().ok().map(|b| Value::Bytes(b.as_bytes().to_vec()));
    }
    None
}

/// A `datetime.datetime` as `Timestamp` (naive) or `TimestampTz` (aware, normalised to UTC).
fn datetime_value(obj: &Bound<'_, PyAny>) -> Option<Value> {
    let dt = obj.cast::<PyDateTime>().ok()?;
    if dt.get_tzinfo().is_none() {
        return naive(dt).map(Value::Timestamp);
    }
    let utc = dt.call_method1("astimezone", (utc(obj.py()).ok()?,)).ok()?;
    naive(utc.cast::<PyDateTime>().ok()?)
        .map(|n| Value::TimestampTz(DateTime::<Utc>::from_naive_utc_and_offset(n, Utc)))
}

fn naive(dt: &Bound<'_, PyDateTime>) -> Option<NaiveDateTime> {
    let date = NaiveDate::from_ymd_opt(dt.get_year(), dt.get_month().into(), dt.get_day().into())?;
    let time = NaiveTime::from_hms_micro_opt(
        dt.get_hour().into(),
        dt.get_minute().into(),
        dt.get_second().into(),
        dt.get_microsecond(),
    )?;
    Some(NaiveDateTime::new(date, time))
}

fn decimal_value(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    // Positional notation: `str(Decimal("1e-28"))` is `1E-28`, which the parser refuses.
    let text = obj.call_method1("__format__", ("f",))?.str()?.to_string();
    // What `Decimal` cannot hold exactly (NaN, more than 28 digits) travels as text and
    // the server parses it.
    Ok(match Decimal::from_str_exact(&text) {
        Ok(d) => Value::Numeric(d),
        Err(_) => Value::Text(text),
    })
}

fn json_value(obj: &Bound<'_, PyAny>) -> Result<serde_json::Value, String> {
    if obj.is_none() {
        return Ok(serde_json::Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(serde_json::Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(i.into());
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(u.into());
        }
        return Err(format!("the integer {} is too large for JSON", describe(obj)));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Number::from_f64(f.value())
            .map(serde_json::Value::Number)
            .ok_or_else(|| format!("{} has no JSON representation", describe(obj)));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(serde_json::Value::String(s.to_str().map_err(|e| e.to_string())?.to_owned()));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let items = obj.try_iter().map_err(|e| e.to_string())?;
        return items
            .map(|item| item.map_err(|e| e.to_string()).and_then(|item| json_value(&item)))
            .collect::<Result<Vec<_>, _>>()
            .map(serde_json::Value::Array);
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut map = Map::with_capacity(dict.len());
        for (key, value) in dict.iter() {
            let key =
                key.cast::<PyString>().map_err(|_| format!("JSON object keys must be str, got {}", describe(&key)))?;
            map.insert(key.to_str().map_err(|e| e.to_string())?.to_owned(), json_value(&value)?);
        }
        return Ok(serde_json::Value::Object(map));
    }
    Err(format!("{} is not JSON data", describe(obj)))
}

fn json_to_py<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        serde_json::Value::Null => py.None().into_bound(py),
        serde_json::Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any(),
            (None, Some(u)) => u.into_pyobject(py)?.into_any(),
            _ => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        serde_json::Value::String(s) => PyString::new(py, s).into_any(),
        serde_json::Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        serde_json::Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, json_to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

static UUID: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DECIMAL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static UTC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn uuid_class(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    UUID.import(py, "uuid", "UUID")
}

pub(crate) fn decimal_class(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    DECIMAL.import(py, "decimal", "Decimal")
}

fn utc(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    UTC.get_or_try_init(py, || py.import("datetime")?.getattr("timezone")?.getattr("utc").map(Bound::unbind))
        .map(|u| u.bind(py))
}

/// How one result column becomes a Python object; chosen once per result set.
#[derive(Debug, Clone)]
pub(crate) enum Decoder {
    Bool,
    I16,
    I32,
    I64,
    F32,
    F64,
    Text,
    Bytes,
    Uuid,
    Json,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Numeric,
    /// `void` (what `SELECT pg_sleep(1)` returns): `None`.
    Void,
    /// Arrays, enums, domains, OIDs: through [`Value`].
    Other,
}

impl Decoder {
    pub(crate) fn for_type(ty: &Type) -> Decoder {
        match *ty {
            Type::BOOL => Decoder::Bool,
            Type::INT2 => Decoder::I16,
            Type::INT4 => Decoder::I32,
            Type::INT8 => Decoder::I64,
            Type::FLOAT4 => Decoder::F32,
            Type::FLOAT8 => Decoder::F64,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => Decoder::Text,
            Type::BYTEA => Decoder::Bytes,
            Type::UUID => Decoder::Uuid,
            Type::JSON | Type::JSONB => Decoder::Json,
            Type::DATE => Decoder::Date,
            Type::TIME => Decoder::Time,
            Type::TIMESTAMP => Decoder::Timestamp,
            Type::TIMESTAMPTZ => Decoder::TimestampTz,
            Type::NUMERIC => Decoder::Numeric,
            Type::VOID => Decoder::Void,
            _ if matches!(ty.kind(), Kind::Simple) && ty.name() == "citext" => Decoder::Text,
            _ => Decoder::Other,
        }
    }

    /// The decoders of a result's columns.
    pub(crate) fn for_row(row: &Row) -> Vec<Decoder> {
        row.columns().iter().map(|c| Decoder::for_type(c.type_())).collect()
    }
}

fn opt<'py, T: IntoPyObject<'py>>(py: Python<'py>, value: Option<T>) -> PyResult<Bound<'py, PyAny>> {
    match value {
        Some(v) => v.into_bound_py_any(py),
        None => Ok(py.None().into_bound(py)),
    }
}

/// Decodes column `i` of `row` straight into a Python object.
pub(crate) fn decode<'py>(py: Python<'py>, row: &Row, i: usize, decoder: &Decoder) -> PyResult<Bound<'py, PyAny>> {
    let failed = |e: tokio_postgres::Error| {
        let column = &row.columns()[i];
        data_error(py, format!("cannot read column `{}` ({}): {e}", column.name(), column.type_()))
    };
    match decoder {
        Decoder::Bool => opt(py, row.try_get::<_, Option<bool>>(i).map_err(failed)?),
        Decoder::I16 => opt(py, row.try_get::<_, Option<i16>>(i).map_err(failed)?),
        Decoder::I32 => opt(py, row.try_get::<_, Option<i32>>(i).map_err(failed)?),
        Decoder::I64 => opt(py, row.try_get::<_, Option<i64>>(i).map_err(failed)?),
        Decoder::F32 => opt(py, row.try_get::<_, Option<f32>>(i).map_err(failed)?.map(f64::from)),
        Decoder::F64 => opt(py, row.try_get::<_, Option<f64>>(i).map_err(failed)?),
        Decoder::Text => opt(py, row.try_get::<_, Option<wire::Str>>(i).map_err(failed)?.map(|s| s.0)),
        Decoder::Bytes => match row.try_get::<_, Option<&[u8]>>(i).map_err(failed)? {
            Some(b) => Ok(PyBytes::new(py, b).into_any()),
            None => Ok(py.None().into_bound(py)),
        },
        Decoder::Uuid => opt(py, row.try_get::<_, Option<Uuid>>(i).map_err(failed)?),
        Decoder::Json => match row.try_get::<_, Option<serde_json::Value>>(i).map_err(failed)? {
            Some(v) => json_to_py(py, &v),
            None => Ok(py.None().into_bound(py)),
        },
        Decoder::Date => opt(py, row.try_get::<_, Option<NaiveDate>>(i).map_err(failed)?),
        Decoder::Time => opt(py, row.try_get::<_, Option<NaiveTime>>(i).map_err(failed)?),
        Decoder::Timestamp => opt(py, row.try_get::<_, Option<wire::LocalTimestamp>>(i).map_err(failed)?.map(|t| t.0)),
        Decoder::TimestampTz => opt(py, row.try_get::<_, Option<wire::Timestamptz>>(i).map_err(failed)?.map(|t| t.0)),
        Decoder::Numeric => match row.try_get::<_, Value>(i).map_err(failed)? {
            // NaN, infinities and values with more digits than `Decimal` holds arrive as text.
            Value::Text(text) => decimal_class(py)?.call1((text,)),
            other => value_to_py(py, &other),
        },
        Decoder::Void => Ok(py.None().into_bound(py)),
        Decoder::Other => value_to_py(py, &row.try_get::<_, Value>(i).map_err(failed)?),
    }
}

/// Any [`Value`] as a Python object.
pub(crate) fn value_to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::I16(v) => v.into_bound_py_any(py)?,
        Value::I32(v) => v.into_bound_py_any(py)?,
        Value::I64(v) => v.into_bound_py_any(py)?,
        Value::F32(v) => f64::from(*v).into_bound_py_any(py)?,
        Value::F64(v) => v.into_bound_py_any(py)?,
        Value::Text(s) => PyString::new(py, s).into_any(),
        Value::Bytes(b) => PyBytes::new(py, b).into_any(),
        Value::Uuid(u) => u.into_bound_py_any(py)?,
        Value::Json(j) => json_to_py(py, j)?,
        Value::Date(d) => d.into_bound_py_any(py)?,
        Value::Time(t) => t.into_bound_py_any(py)?,
        Value::Timestamp(t) => t.into_bound_py_any(py)?,
        Value::TimestampTz(t) => t.into_bound_py_any(py)?,
        // `Decimal(str)` keeps every digit (and NaN/Infinity, which arrive as text).
        Value::Numeric(d) => decimal_class(py)?.call1((d.to_string(),))?,
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(value_to_py(py, item)?)?;
            }
            list.into_any()
        }
        // Only Rust bulk inserts build these, and rows never decode into one.
        Value::Encoded(e) => {
            let message = format!("a parameter pre-encoded as {} has no Python form", e.ty());
            return Err(pyo3::exceptions::PyTypeError::new_err(message));
        }
    })
}
