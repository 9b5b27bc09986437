//! What users branch on when something fails: the error's kind, SQLSTATE, constraint and
//! configuration key — and that messages never leak the parameters that caused them.

use bytes::Bytes;
use chakra::{
    copy_pipe, CopyRows, Error, ErrorKind, Mode, Pool, PoolBuilder, Queryable, Request, SqlState, Statement, Value,
    COPY_HEADER, COPY_TRAILER,
};
use chakra_tests::{admin, database_url, pool, unique};

/// A parent table and a child table with named unique, check and foreign-key constraints.
/// Unique constraints are indexes, whose names are schema-wide: they get unique names too.
struct Tables {
    parent: String,
    child: String,
    unique_constraint: String,
}

impl Tables {
    async fn create(pool: &Pool) -> Tables {
        let parent = unique("parent");
        let child = unique("child");
        let unique_constraint = unique("my_named_uq");
        pool.execute(
            &format!(
                "CREATE TABLE {parent} (id int4 PRIMARY KEY, email text NOT NULL, \
                 CONSTRAINT {unique_constraint} UNIQUE (email))"
            ),
            vec![],
        )
        .await
        .expect("create parent");
        pool.execute(
            &format!(
                "CREATE TABLE {child} (id int4 PRIMARY KEY, \
                 parent_id int4 CONSTRAINT child_parent_fk REFERENCES {parent} (id), \
                 qty int4 CONSTRAINT qty_positive CHECK (qty > 0))"
            ),
            vec![],
        )
        .await
        .expect("create child");
        Tables { parent, child, unique_constraint }
    }

    async fn drop(self, pool: &Pool) {
        pool.execute(&format!("DROP TABLE IF EXISTS {}, {}", self.child, self.parent), vec![])
            .await
            .expect("drop tables");
    }
}

#[tokio::test]
async fn unique_violation_names_its_constraint_and_sqlstate() {
    let pool = pool().await;
    let tables = Tables::create(&pool).await;
    let insert = format!("INSERT INTO {} (id, email) VALUES ($1, $2)", tables.parent);
    pool.execute(&insert, vec![1.into(), "alice@example.com".into()]).await.expect("first insert");

    let err = pool.execute(&insert, vec![2.into(), "alice@example.com".into()]).await.expect_err("duplicate email");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err:?}");
    assert_eq!(err.constraint(), Some(tables.unique_constraint.as_str()), "{err:?}");
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION), "{err:?}");
    assert!(err.to_string().contains(&tables.unique_constraint), "the message names the constraint: {err}");

    let err = pool.execute(&insert, vec![1.into(), "bob@example.com".into()]).await.expect_err("duplicate id");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err:?}");
    assert_eq!(err.constraint(), Some(format!("{}_pkey", tables.parent).as_str()), "{err:?}");
    tables.drop(&pool).await;
}

#[tokio::test]
async fn not_null_foreign_key_and_check_violations_are_integrity_errors() {
    let pool = pool().await;
    let tables = Tables::create(&pool).await;

    let err = pool
        .execute(&format!("INSERT INTO {} (id, email) VALUES ($1, $2)", tables.parent), vec![1.into(), Value::Null])
        .await
        .expect_err("NULL email");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err:?}");
    assert_eq!(err.code(), Some(&SqlState::NOT_NULL_VIOLATION), "{err:?}");
    assert!(err.to_string().contains("\"email\""), "the message names the column: {err}");

    let err = pool
        .execute(&format!("INSERT INTO {} (id, parent_id) VALUES ($1, $2)", tables.child), vec![1.into(), 404.into()])
        .await
        .expect_err("a child of no parent");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err:?}");
    assert_eq!(err.code(), Some(&SqlState::FOREIGN_KEY_VIOLATION), "{err:?}");
    assert_eq!(err.constraint(), Some("child_parent_fk"), "{err:?}");

    let err = pool
        .execute(&format!("INSERT INTO {} (id, qty) VALUES ($1, $2)", tables.child), vec![1.into(), 0.into()])
        .await
        .expect_err("a non-positive quantity");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err:?}");
    assert_eq!(err.code(), Some(&SqlState::CHECK_VIOLATION), "{err:?}");
    assert_eq!(err.constraint(), Some("qty_positive"), "{err:?}");

    let count = pool.query_one(&format!("SELECT count(*) FROM {}", tables.child), vec![]).await.expect("count");
    assert_eq!(count.get::<_, i64>(0), 0);
    tables.drop(&pool).await;
}

/// Parameters are user data (passwords, e-mail addresses, tokens): an error message ends
/// up in logs and HTTP responses, so it must not repeat them.
#[tokio::test]
async fn error_messages_do_not_contain_parameter_values() {
    let pool = pool().await;
    let tables = Tables::create(&pool).await;
    let secret = "s3cret-token-4f9a@example.com";
    let insert = format!("INSERT INTO {} (id, email) VALUES ($1, $2)", tables.parent);
    pool.execute(&insert, vec![1.into(), secret.into()]).await.expect("first insert");

    let mut leaks = Vec::new();
    let err = pool.execute(&insert, vec![2.into(), secret.into()]).await.expect_err("duplicate email");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err:?}");
    if format!("{err} {err:?}").contains(secret) {
        leaks.push(format!("unique violation: {err}"));
    }

    let too_big = 1_i64 << 40;
    let err = pool.execute(&insert, vec![Value::I64(too_big), "x".into()]).await.expect_err("an i64 beyond int4");
    assert_eq!(err.kind(), ErrorKind::Decode, "{err:?}");
    if format!("{err} {err:?}").contains(&too_big.to_string()) {
        leaks.push(format!("encode error: {err}"));
    }
    tables.drop(&pool).await;
    assert!(leaks.is_empty(), "error messages repeat parameter values:\n{}", leaks.join("\n"));
}

/// Error reporters (`anyhow`'s `{:?}`, `tracing`'s error fields) print the whole
/// `source()` chain, so the causes must not carry the parameters either.
#[tokio::test]
async fn error_sources_do_not_contain_parameter_values() {
    let pool = pool().await;
    let tables = Tables::create(&pool).await;
    let secret = "s3cret-token-77b1@example.com";
    let insert = format!("INSERT INTO {} (id, email) VALUES ($1, $2)", tables.parent);
    pool.execute(&insert, vec![1.into(), secret.into()]).await.expect("first insert");

    let err = pool.execute(&insert, vec![2.into(), secret.into()]).await.expect_err("duplicate email");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err:?}");
    let mut chain = vec![err.to_string()];
    let mut cause = std::error::Error::source(&err);
    while let Some(e) = cause {
        chain.push(e.to_string());
        cause = e.source();
    }
    let report = chain.join("\n  caused by: ");
    tables.drop(&pool).await;
    assert!(!report.contains(secret), "the error chain repeats the parameter:\n{report}");
}

#[tokio::test]
async fn query_one_distinguishes_no_row_from_several() {
    let pool = pool().await;
    let err = pool.query_one("SELECT 1 WHERE false", vec![]).await.expect_err("no row");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");

    let err = pool.query_one("SELECT g FROM generate_series(1, 2) g", vec![]).await.expect_err("two rows");
    assert_eq!(err.kind(), ErrorKind::MultipleFound, "{err:?}");
    let err = pool.query_opt("SELECT g FROM generate_series(1, 2) g", vec![]).await.expect_err("two rows");
    assert_eq!(err.kind(), ErrorKind::MultipleFound, "{err:?}");

    assert!(pool.query_opt("SELECT 1 WHERE false", vec![]).await.expect("no row is fine").is_none());
    let row = pool.query_one("SELECT $1::int4 + 1", vec![41.into()]).await.expect("one row");
    assert_eq!(row.get::<_, i32>(0), 42);
}

#[tokio::test]
async fn bad_sql_is_a_query_error_with_its_sqlstate() {
    let pool = pool().await;
    let err = pool.query("SELEC 1", vec![]).await.expect_err("a typo");
    assert_eq!(err.kind(), ErrorKind::Query, "{err:?}");
    assert_eq!(err.code(), Some(&SqlState::SYNTAX_ERROR), "{err:?}");
    assert!(err.to_string().contains("42601"), "{err}");

    let missing = unique("no_such_table");
    let err = pool.query(&format!("SELECT * FROM {missing}"), vec![]).await.expect_err("a missing table");
    assert_eq!(err.kind(), ErrorKind::Query, "{err:?}");
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE), "{err:?}");
    assert!(err.to_string().contains(&missing), "the message names the table: {err}");

    // The connection that saw the errors is still good.
    let row = pool.query_one("SELECT 1", vec![]).await.expect("the pool recovers");
    assert_eq!(row.get::<_, i32>(0), 1);
}

#[tokio::test]
async fn a_failed_statement_in_a_transaction_leaves_nothing_after_rollback() {
    let pool = pool().await;
    let tables = Tables::create(&pool).await;
    let insert = format!("INSERT INTO {} (id, email) VALUES ($1, $2)", tables.parent);

    let tx = pool.begin().await.expect("begin");
    tx.execute(&insert, vec![1.into(), "a@example.com".into()]).await.expect("first insert");
    let err = tx.execute(&insert, vec![2.into(), "a@example.com".into()]).await.expect_err("duplicate");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err:?}");
    let err =
        tx.execute(&insert, vec![3.into(), "c@example.com".into()]).await.expect_err("the transaction is aborted");
    assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION), "{err:?}");
    tx.rollback().await.expect("rollback");

    // The closure form rolls back when the body fails.
    let outcome = pool
        .transaction(|tx| {
            let insert = insert.clone();
            async move {
                tx.execute(&insert, vec![4.into(), "d@example.com".into()]).await?;
                tx.execute(&insert, vec![5.into(), "d@example.com".into()]).await
            }
        })
        .await;
    assert_eq!(outcome.expect_err("duplicate in the body").kind(), ErrorKind::Integrity);

    let check = admin(&database_url()).await;
    let count: i64 =
        check.query_one(&format!("SELECT count(*) FROM {}", tables.parent), &[]).await.expect("count").get(0);
    assert_eq!(count, 0, "rows of rolled-back transactions are visible");
    tables.drop(&pool).await;
}

#[tokio::test]
async fn a_malformed_url_is_a_config_error_naming_database_url() {
    let err = Pool::builder().url("not a url").build().await.expect_err("not a URL");
    assert_eq!(err.kind(), ErrorKind::Config, "{err:?}");
    assert_eq!(err.key(), Some("database.url"), "{err:?}");
    assert!(err.to_string().contains("database.url"), "{err}");
}

#[tokio::test]
async fn zero_max_connections_is_a_config_error_naming_the_key() {
    let err = Pool::builder().url(&database_url()).max_connections(0).build().await.expect_err("no connections");
    assert_eq!(err.kind(), ErrorKind::Config, "{err:?}");
    assert_eq!(err.key(), Some("pool.max_connections"), "{err:?}");
}

/// A config file under the temp directory, removed when dropped.
struct TempConfig(std::path::PathBuf);

impl TempConfig {
    fn new(contents: &str) -> TempConfig {
        let path = std::env::temp_dir().join(format!("{}.toml", unique("chakra_config")));
        std::fs::write(&path, contents).expect("write temp config");
        TempConfig(path)
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn a_bad_duration_in_a_config_file_names_its_key() {
    let file =
        TempConfig::new(&format!("[database]\nurl = \"{}\"\n[pool]\nacquire_timeout = \"soon\"\n", database_url()));
    let err = PoolBuilder::from_file(&file.0).build().await.expect_err("`soon` is not a duration");
    assert_eq!(err.kind(), ErrorKind::Config, "{err:?}");
    assert_eq!(err.key(), Some("pool.acquire_timeout"), "{err:?}");
    assert!(err.to_string().contains("soon"), "the message shows the bad value: {err}");
}

#[tokio::test]
async fn an_unknown_key_in_a_config_file_is_named() {
    let file = TempConfig::new(&format!("[database]\nurl = \"{}\"\n[pool]\nmax_conections = 3\n", database_url()));
    let err = PoolBuilder::from_file(&file.0).build().await.expect_err("a misspelt key");
    assert_eq!(err.kind(), ErrorKind::Config, "{err:?}");
    assert_eq!(err.key(), Some("pool.max_conections"), "{err:?}");
    assert!(err.to_string().contains("max_connections"), "the message suggests the known keys: {err}");

    // A good file next to it works, so the failure above is about the key.
    let good = TempConfig::new(&format!("[database]\nurl = \"{}\"\n[pool]\nmax_connections = 3\n", database_url()));
    let pool = PoolBuilder::from_file(&good.0).build().await.expect("a good file");
    assert_eq!(pool.status().max_size, 3);
}

#[tokio::test]
async fn a_missing_config_file_is_a_config_error_naming_the_file() {
    let path = std::env::temp_dir().join(format!("{}.toml", unique("no_such_config")));
    let err = PoolBuilder::from_file(&path).build().await.expect_err("no file");
    assert_eq!(err.kind(), ErrorKind::Config, "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

#[tokio::test]
async fn a_closed_port_is_a_connection_error() {
    let url = "postgresql://postgres@127.0.0.1:1/test";
    let outcome = match Pool::builder().url(url).retry_attempts(1).build().await {
        // Building opens no connection by default (min_connections = 0): the first query does.
        Ok(pool) => pool.query("SELECT 1", vec![]).await.map(drop),
        Err(e) => Err(e),
    };
    let err = outcome.expect_err("nothing listens on port 1");
    assert_eq!(err.kind(), ErrorKind::Connection, "{err:?}");

    let err = Pool::builder().url(url).min_connections(1).build().await.expect_err("warm connections fail to open");
    assert_eq!(err.kind(), ErrorKind::Connection, "{err:?}");

    let err = chakra::connect_direct(url).await.expect_err("a direct connection fails too");
    assert_eq!(err.kind(), ErrorKind::Connection, "{err:?}");
}

#[tokio::test]
async fn a_copy_request_without_its_rows_is_a_usage_error_and_writes_nothing() {
    let pool = Pool::builder().url(&database_url()).max_connections(1).build().await.unwrap();
    let tables = Tables::create(&pool).await;
    let copy = format!("COPY {} (id, email) FROM STDIN (FORMAT binary)", tables.parent);
    for params in [vec![], vec![Value::Text("not rows".into())]] {
        let err = pool.run(Request::new(Statement::new(copy.as_str(), params), Mode::CopyIn)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage, "{err}");
        assert!(err.message().contains("CopyRows::into_value"), "{err}");
    }
    // Rows whose columns differ in length are refused before anything is sent.
    let ragged = [Value::Array(vec![Value::I32(1)]), Value::Array(vec![])];
    assert_eq!(CopyRows::from_columns(&ragged).unwrap_err().kind(), ErrorKind::Usage);

    // Well-formed rows go in, on the same (one) connection, which the errors left usable.
    let columns = [Value::Array(vec![Value::I32(1), Value::I32(2)]), Value::Array(vec!["a".into(), "b".into()])];
    let rows = CopyRows::from_columns(&columns).unwrap();
    let written =
        pool.run(Request::new(Statement::new(copy.as_str(), vec![rows.into_value()]), Mode::CopyIn)).await.unwrap();
    assert_eq!(written.rows_affected().unwrap(), 2);
    let count: i64 = pool.query_one(&format!("SELECT count(*) FROM {}", tables.parent), vec![]).await.unwrap().get(0);
    assert_eq!(count, 2);
    tables.drop(&pool).await;
}

#[tokio::test]
async fn a_copy_sent_in_pieces_that_fails_midway_writes_nothing() {
    let pool = Pool::builder().url(&database_url()).max_connections(1).build().await.unwrap();
    let tables = Tables::create(&pool).await;
    let copy = format!("COPY {} (id, email) FROM STDIN (FORMAT binary)", tables.parent);
    let piece = |ids: &[i32]| {
        let emails = ids.iter().map(|id| Value::Text(format!("{id}@example.com"))).collect();
        CopyRows::piece_from_columns(&[
            Value::Array(ids.iter().map(|&id| Value::I32(id)).collect()),
            Value::Array(emails),
        ])
        .unwrap()
        .bytes()
    };
    let count = || async {
        let count: i64 =
            pool.query_one(&format!("SELECT count(*) FROM {}", tables.parent), vec![]).await.unwrap().get(0);
        count
    };

    // Two rows go out, then the maker fails: the COPY is aborted, and its error is the maker's.
    let (mut writer, source) = copy_pipe();
    let request = Request::new(Statement::new(copy.as_str(), vec![]), Mode::CopyIn).copy_from(source);
    let make = async {
        assert!(writer.send(Ok(Bytes::from_static(COPY_HEADER))).await);
        assert!(writer.send(Ok(piece(&[1, 2]))).await);
        writer.send(Err(Error::new(ErrorKind::Decode, "cannot send row 3"))).await;
    };
    let (result, ()) = futures::join!(pool.run(request.clone()), make);
    let err = result.unwrap_err();
    assert_eq!((err.kind(), err.message()), (ErrorKind::Decode, "cannot send row 3"));
    assert_eq!(count().await, 0, "the rows before the failure were written");

    // A request runs once: its pieces went with it.
    let err = pool.run(request).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage, "{err}");
    assert!(err.message().contains("already sent"), "{err}");

    // The one connection is usable, and pieces sent to the end write every row.
    let (mut writer, source) = copy_pipe();
    let request = Request::new(Statement::new(copy.as_str(), vec![]), Mode::CopyIn).copy_from(source);
    let make = async move {
        for piece in [Bytes::from_static(COPY_HEADER), piece(&[1, 2]), piece(&[3]), Bytes::from_static(COPY_TRAILER)] {
            assert!(writer.send(Ok(piece)).await);
        }
    };
    let (result, ()) = futures::join!(pool.run(request), make);
    assert_eq!(result.unwrap().rows_affected().unwrap(), 3);
    assert_eq!(count().await, 3);
    tables.drop(&pool).await;
}
