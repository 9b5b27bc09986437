//! The spec's Rust examples (`examples/`), run as written: they connect to
//! `postgresql://localhost/db`, so this test prepares that database and runs the compiled
//! example programs against it, Axum server included.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use chakra::Queryable;

const SPEC_URL: &str = "postgresql://localhost/db";

/// `target/<profile>/examples/<name>`, next to this test binary's `deps/` directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    let path = profile_dir.join("examples").join(name);
    if !path.exists() {
        // `cargo test --workspace` builds every example; a narrower run may not have.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status =
            Command::new(cargo).args(["build", "--examples", "-p", "chakra-examples"]).status().expect("run cargo");
        assert!(status.success(), "building the examples failed");
    }
    path
}

/// Creates `db` on the local server if needed and loads the examples' schema and rows.
/// Returns false (the test is skipped) only when no server listens on localhost:5432,
/// where the spec's URL points.
async fn prepare_spec_database() -> bool {
    let admin = match tokio_postgres::connect("postgresql://localhost/postgres", tokio_postgres::NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            client
        }
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: no PostgreSQL on localhost:5432 for the spec's URL ({e})");
            return false;
        }
        Err(e) => panic!("the spec's examples need PostgreSQL on localhost:5432: {e}"),
    };
    let exists = admin.query_opt("SELECT 1 FROM pg_database WHERE datname = 'db'", &[]).await.unwrap().is_some();
    if !exists {
        // Two test runs may race to create it; losing that race is fine.
        let _ = admin.batch_execute("CREATE DATABASE db").await;
    }
    let pool = chakra::connect(SPEC_URL).await.expect("connect with the spec's URL");
    let (client, connection) = tokio_postgres::connect(SPEC_URL, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.batch_execute(chakra_examples::SCHEMA).await.expect("load the examples' schema");
    assert!(pool.query("SELECT 1 FROM users", vec![]).await.is_ok());
    true
}

fn run(name: &str) -> Output {
    let output = Command::new(example(name)).output().expect("run the example");
    assert!(
        output.status.success(),
        "example {name} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[tokio::test]
async fn the_spec_rust_examples_run_as_written() {
    if !prepare_spec_database().await {
        return;
    }
    let stdout = String::from_utf8(run("tokio_main").stdout).unwrap();
    assert!(stdout.lines().any(|l| l == "Alice") && stdout.lines().any(|l| l == "Bob"), "{stdout}");
    assert!(!stdout.contains("Carol"), "an inactive user was listed: {stdout}");

    let stdout = String::from_utf8(run("concurrent").stdout).unwrap();
    assert!(stdout.contains("Alice wrote 1 post(s)"), "{stdout}");

    let stdout = String::from_utf8(run("streaming").stdout).unwrap();
    assert!(stdout.contains("processing Alice <alice@example.com>"), "{stdout}");
    assert!(!stdout.contains("Carol"), "{stdout}");

    the_axum_example_serves_active_users().await;
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", 3000)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// One test with the others: they share the `db` database and its schema.
async fn the_axum_example_serves_active_users() {
    let _server = KillOnDrop(Command::new(example("axum_server")).spawn().expect("start the Axum example"));
    let start = Instant::now();
    let response = loop {
        if let Some(response) = get("/users") {
            break response;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "the Axum example did not start listening on :3000");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""name":"Alice""#) && response.contains(r#""is_active":true"#), "{response}");
    assert!(!response.contains("Carol"), "{response}");
}
