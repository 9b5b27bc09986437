//! Every `Value` variant survives a trip to PostgreSQL and back — as `Value` and as the
//! native Rust type — with the statement cache on (server-inferred parameter types) and off
//! (unnamed statements typed from the values themselves).

use chakra::chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chakra::rust_decimal::Decimal;
use chakra::serde_json::{json, Value as Json};
use chakra::uuid::Uuid;
use chakra::{ErrorKind, Pool, Queryable, SqlState, Value};
use chakra_tests::{admin, builder, database_url, unique};

/// One column of the round-trip table: its name, its SQL type, and what goes in.
struct Column {
    name: &'static str,
    sql_type: &'static str,
    value: Value,
}

fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 2, 29).expect("valid date")
}

fn time() -> NaiveTime {
    NaiveTime::from_hms_micro_opt(23, 59, 58, 123_456).expect("valid time")
}

fn json_doc() -> Json {
    json!({"a": [1, 2, {"b": null}], "c": "d"})
}

fn jsonb_doc() -> Json {
    json!({"nested": {"list": [true, false]}, "n": 1.25})
}

fn numeric() -> Decimal {
    "-12345678901234.567890123".parse().expect("valid decimal")
}

fn columns() -> Vec<Column> {
    let column = |name, sql_type, value| Column { name, sql_type, value };
    let (date, time) = (date(), time());
    vec![
        column("b", "bool", Value::Bool(true)),
        column("i2", "int2", Value::I16(-32_768)),
        column("i4", "int4", Value::I32(2_147_483_647)),
        column("i8", "int8", Value::I64(-9_223_372_036_854_775_808)),
        column("f4", "float4", Value::F32(1.5e-7)),
        column("f8", "float8", Value::F64(std::f64::consts::PI)),
        column("tx", "text", Value::Text("naïve ☃ text with 'quotes'".into())),
        column("vc", "varchar(40)", Value::Text("short and varying".into())),
        column("by", "bytea", Value::Bytes(vec![0, 1, 2, 254, 255])),
        column("u", "uuid", Value::Uuid(Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef))),
        column("j", "json", Value::Json(json_doc())),
        column("jb", "jsonb", Value::Json(jsonb_doc())),
        column("d", "date", Value::Date(date)),
        column("tm", "time", Value::Time(time)),
        column("ts", "timestamp", Value::Timestamp(date.and_time(time))),
        column("tstz", "timestamptz", Value::TimestampTz(Utc.from_utc_datetime(&date.and_time(time)))),
        column("n", "numeric", Value::Numeric(numeric())),
        column("ai8", "int8[]", Value::from(vec![Some(1_i64), None, Some(i64::MAX)])),
        column("atx", "text[]", Value::from(vec!["one", "", "three, with a comma"])),
    ]
}

/// Creates the round-trip table, named uniquely; the caller drops it.
async fn create_table(pool: &Pool) -> String {
    let table = unique("values");
    let defs: Vec<String> = columns().iter().map(|c| format!("{} {}", c.name, c.sql_type)).collect();
    pool.execute(&format!("CREATE TABLE {table} (id int4 PRIMARY KEY, {})", defs.join(", ")), vec![])
        .await
        .expect("create table");
    table
}

async fn drop_table(pool: &Pool, table: &str) {
    pool.execute(&format!("DROP TABLE IF EXISTS {table}"), vec![]).await.expect("drop table");
}

async fn pool_with_cache(cache: bool) -> Pool {
    builder(&database_url(), &unique("values")).statement_cache(cache).build().await.expect("connect")
}

/// Inserts one row of every type (id 1) and one of NULLs (id 2), then reads both back.
async fn every_type_round_trips(cache: bool) {
    let pool = pool_with_cache(cache).await;
    let table = create_table(&pool).await;
    let cols = columns();
    let names: Vec<&str> = cols.iter().map(|c| c.name).collect();
    let placeholders: Vec<String> = (2..=cols.len() + 1).map(|i| format!("${i}")).collect();
    let insert = format!("INSERT INTO {table} (id, {}) VALUES ($1, {})", names.join(", "), placeholders.join(", "));

    // `id` is int4; an i64 parameter must still fit it in both modes.
    let mut params = vec![Value::I64(1)];
    params.extend(cols.iter().map(|c| c.value.clone()));
    assert_eq!(pool.execute(&insert, params).await.expect("insert every type"), 1);
    let mut nulls = vec![Value::I64(2)];
    nulls.extend(cols.iter().map(|_| Value::Null));
    assert_eq!(pool.execute(&insert, nulls).await.expect("insert NULLs"), 1);

    let select = format!("SELECT {} FROM {table} WHERE id = $1", names.join(", "));
    let row = pool.query_one(&select, vec![Value::I64(1)]).await.expect("read the row back");
    for (i, c) in cols.iter().enumerate() {
        assert_eq!(row.get::<_, Value>(i), c.value, "column {} ({}) as Value", c.name, c.sql_type);
    }

    // The same row, decoded straight into native types.
    let (date, time) = (date(), time());
    assert!(row.get::<_, bool>("b"));
    assert_eq!(row.get::<_, i16>("i2"), -32_768);
    assert_eq!(row.get::<_, i32>("i4"), 2_147_483_647);
    assert_eq!(row.get::<_, i64>("i8"), i64::MIN);
    assert_eq!(row.get::<_, f32>("f4"), 1.5e-7);
    assert_eq!(row.get::<_, f64>("f8"), std::f64::consts::PI);
    assert_eq!(row.get::<_, String>("tx"), "naïve ☃ text with 'quotes'");
    assert_eq!(row.get::<_, &str>("vc"), "short and varying");
    assert_eq!(row.get::<_, Vec<u8>>("by"), [0, 1, 2, 254, 255]);
    assert_eq!(row.get::<_, Uuid>("u").to_string(), "01234567-89ab-cdef-0123-456789abcdef");
    assert_eq!(row.get::<_, Json>("j"), json_doc());
    assert_eq!(row.get::<_, Json>("jb"), jsonb_doc());
    assert_eq!(row.get::<_, NaiveDate>("d"), date);
    assert_eq!(row.get::<_, NaiveTime>("tm"), time);
    assert_eq!(row.get::<_, NaiveDateTime>("ts"), date.and_time(time));
    assert_eq!(row.get::<_, DateTime<Utc>>("tstz"), Utc.from_utc_datetime(&date.and_time(time)));
    assert_eq!(row.get::<_, Decimal>("n"), numeric());
    assert_eq!(row.get::<_, Decimal>("n").to_string(), "-12345678901234.567890123", "scale is kept");
    assert_eq!(row.get::<_, Vec<Option<i64>>>("ai8"), [Some(1), None, Some(i64::MAX)]);
    assert_eq!(row.get::<_, Vec<String>>("atx"), ["one", "", "three, with a comma"]);

    let row = pool.query_one(&select, vec![Value::I64(2)]).await.expect("read the NULL row back");
    for (i, c) in cols.iter().enumerate() {
        assert_eq!(row.get::<_, Value>(i), Value::Null, "NULL in column {} ({})", c.name, c.sql_type);
    }
    assert_eq!(row.get::<_, Option<i32>>("i4"), None);
    assert_eq!(row.get::<_, Option<String>>("tx"), None);
    assert_eq!(row.get::<_, Option<Vec<i64>>>("ai8"), None);

    // What the server stored, seen without chakra: the values were not mangled on the way in.
    let check = admin(&database_url()).await;
    let stored = check
        .query_one(
            &format!("SELECT u::text, j, n::text, ai8::text, tstz = '2024-02-29 23:59:58.123456+00' FROM {table} WHERE id = 1"),
            &[],
        )
        .await
        .expect("read with tokio-postgres");
    assert_eq!(stored.get::<_, &str>(0), "01234567-89ab-cdef-0123-456789abcdef");
    assert_eq!(stored.get::<_, Json>(1), json_doc());
    assert_eq!(stored.get::<_, &str>(2), "-12345678901234.567890123");
    assert_eq!(stored.get::<_, &str>(3), "{1,NULL,9223372036854775807}");
    assert!(stored.get::<_, bool>(4), "timestamptz stored as the same instant");

    drop_table(&pool, &table).await;
}

#[tokio::test]
async fn every_type_round_trips_with_the_statement_cache() {
    every_type_round_trips(true).await;
}

#[tokio::test]
async fn every_type_round_trips_without_the_statement_cache() {
    every_type_round_trips(false).await;
}

/// An `i64` compared to (or stored in) an `int4` column, and a uuid given as text.
async fn natural_parameters_work(cache: bool) {
    let pool = pool_with_cache(cache).await;
    let table = unique("values");
    pool.execute(&format!("CREATE TABLE {table} (id int4 PRIMARY KEY, u uuid, label text)"), vec![])
        .await
        .expect("create table");
    let id = "0f0e0d0c-0b0a-0908-0706-050403020100";
    pool.execute(
        &format!("INSERT INTO {table} (id, u, label) VALUES ($1, $2::uuid, $3)"),
        vec![Value::I64(7), Value::Text(id.into()), "seven".into()],
    )
    .await
    .expect("insert with a text uuid cast in SQL");

    let found = pool
        .query_opt(&format!("SELECT label FROM {table} WHERE id = $1"), vec![Value::I64(7)])
        .await
        .expect("select by an i64 id");
    assert_eq!(found.map(|r| r.get::<_, String>(0)).as_deref(), Some("seven"));
    let by_uuid = pool
        .query(&format!("SELECT id FROM {table} WHERE u = $1::uuid"), vec![Value::Text(id.into())])
        .await
        .expect("select by a text uuid");
    assert_eq!(by_uuid.iter().map(|r| r.get::<_, Value>(0)).collect::<Vec<_>>(), [Value::I32(7)]);
    let updated = pool
        .execute(&format!("UPDATE {table} SET label = $1 WHERE id = $2"), vec!["SEVEN".into(), Value::I16(7)])
        .await
        .expect("update by an i16 id");
    assert_eq!(updated, 1);

    drop_table(&pool, &table).await;
}

#[tokio::test]
async fn integer_and_text_parameters_fit_their_columns_with_the_statement_cache() {
    natural_parameters_work(true).await;
}

#[tokio::test]
async fn integer_and_text_parameters_fit_their_columns_without_the_statement_cache() {
    natural_parameters_work(false).await;
}

#[tokio::test]
async fn text_goes_into_a_uuid_column_without_a_cast_when_the_server_infers_types() {
    let pool = pool_with_cache(true).await;
    let table = unique("values");
    pool.execute(&format!("CREATE TABLE {table} (u uuid)"), vec![]).await.expect("create table");
    let id = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
    pool.execute(&format!("INSERT INTO {table} (u) VALUES ($1)"), vec![id.into()]).await.expect("insert text as uuid");
    let row = pool.query_one(&format!("SELECT u FROM {table}"), vec![]).await.expect("read back");
    assert_eq!(row.get::<_, Value>(0), Value::Uuid(Uuid::parse_str(id).expect("valid uuid")));
    drop_table(&pool, &table).await;
}

/// An i64 too big for int4 must fail as `Decode` and write nothing.
async fn overflowing_int4_is_a_decode_error(cache: bool) {
    let pool = pool_with_cache(cache).await;
    let table = unique("values");
    pool.execute(&format!("CREATE TABLE {table} (id int4 PRIMARY KEY, small int4)"), vec![])
        .await
        .expect("create table");

    let err = pool
        .execute(&format!("INSERT INTO {table} (id, small) VALUES ($1, $2)"), vec![Value::I64(1), Value::I64(1 << 40)])
        .await
        .expect_err("an i64 beyond int4 must not be stored");
    assert_eq!(err.kind(), ErrorKind::Decode, "{err:?}");
    let message = err.to_string();
    if cache {
        // Chakra refuses to encode it: the message names both sides.
        assert!(message.contains("i64") && message.contains("int4"), "types not named: {message}");
    } else {
        // Sent as int8, the server's assignment cast refuses it.
        assert_eq!(err.code(), Some(&SqlState::NUMERIC_VALUE_OUT_OF_RANGE), "{err:?}");
        assert!(message.contains("integer out of range"), "{message}");
    }
    let count = pool.query_one(&format!("SELECT count(*) FROM {table}"), vec![]).await.expect("count");
    assert_eq!(count.get::<_, i64>(0), 0, "the failed insert wrote a row");

    // The pool is fine afterwards and a fitting value goes in.
    pool.execute(&format!("INSERT INTO {table} (id, small) VALUES ($1, $2)"), vec![Value::I64(1), Value::I64(1 << 30)])
        .await
        .expect("a fitting i64 is stored");
    drop_table(&pool, &table).await;
}

#[tokio::test]
async fn an_i64_overflowing_int4_is_a_decode_error_with_the_statement_cache() {
    overflowing_int4_is_a_decode_error(true).await;
}

#[tokio::test]
async fn an_i64_overflowing_int4_is_a_decode_error_without_the_statement_cache() {
    overflowing_int4_is_a_decode_error(false).await;
}

#[tokio::test]
async fn numeric_beyond_decimal_range_comes_back_as_exact_text() {
    for cache in [true, false] {
        let pool = pool_with_cache(cache).await;
        for (literal, expected) in [
            ("123456789012345678901234567890.5", "123456789012345678901234567890.5"),
            ("-98765432109876543210987654321098765", "-98765432109876543210987654321098765"),
            ("NaN", "NaN"),
            ("Infinity", "Infinity"),
            ("-Infinity", "-Infinity"),
        ] {
            let row = pool
                .query_one(&format!("SELECT '{literal}'::numeric"), vec![])
                .await
                .unwrap_or_else(|e| panic!("select {literal}: {e}"));
            assert_eq!(row.get::<_, Value>(0), Value::Text(expected.into()), "{literal} (statement cache {cache})");
        }
        let inside = pool.query_one("SELECT '79228162514264337593543950335'::numeric", vec![]).await.expect("select");
        assert_eq!(
            inside.get::<_, Value>(0),
            Value::Numeric(Decimal::MAX),
            "the largest Decimal still decodes as Numeric (statement cache {cache})"
        );
    }
}

/// `Value::Numeric` must never silently round: more significant digits than `Decimal`
/// holds (28–29) come back as exact text, as the `Value::Numeric` docs promise.
#[tokio::test]
async fn numeric_with_more_digits_than_decimal_holds_is_not_rounded() {
    let pool = pool_with_cache(true).await;
    let mut rounded = Vec::new();
    for literal in [
        "0.12345678901234567890123456789012",
        "-0.00000000000000000000000000000123",
        "1.000000000000000000000000000000001",
    ] {
        let row = pool.query_one(&format!("SELECT '{literal}'::numeric"), vec![]).await.expect("select");
        let value = row.get::<_, Value>(0);
        let rendered = match &value {
            Value::Numeric(d) => d.to_string(),
            Value::Text(t) => t.clone(),
            other => panic!("{literal} decoded as {other:?}"),
        };
        if rendered != literal {
            rounded.push(format!("{literal} came back as {value:?}"));
        }
    }
    assert!(rounded.is_empty(), "numeric values lost digits:\n{}", rounded.join("\n"));
}
