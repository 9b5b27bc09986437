//! Requests through real routers (`tower::ServiceExt::oneshot`) against a real PostgreSQL
//! (`DATABASE_URL`, default `postgresql://postgres@127.0.0.1:5432/test`): the status and
//! body a client gets for each kind of failure, and what the database keeps afterwards.
//! Each test works on a table of its own, dropped at the end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::http::{header, Request, StatusCode};
use axum::response::{Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chakra::{ErrorKind, Pool, Queryable};
use chakra_axum::{DbSession, Error, TransactionLayer, Tx};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".to_owned())
}

fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn pool() -> Pool {
    Pool::connect(&database_url()).await.expect("connect to the test database")
}

/// The router state of these tests: a pool (reached through `FromRef`) and the test's table.
#[derive(Clone)]
struct App {
    pool: Pool,
    table: Arc<str>,
}

impl FromRef<App> for Pool {
    fn from_ref(app: &App) -> Pool {
        app.pool.clone()
    }
}

impl App {
    /// A new table `(id int8 PRIMARY KEY, email text UNIQUE <unique_clause>)`, whose
    /// unique constraint is named `<table>_email_key`.
    async fn new(prefix: &str, pool: Pool, unique_clause: &str) -> App {
        let table = unique(prefix);
        pool.execute(&format!("CREATE TABLE {table} (id int8 PRIMARY KEY, email text UNIQUE {unique_clause})"), vec![])
            .await
            .expect("create the test table");
        App { pool, table: table.into() }
    }

    async fn ids(&self) -> Vec<i64> {
        let rows = pool().await.query(&format!("SELECT id FROM {} ORDER BY id", self.table), vec![]).await.unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    }

    /// `routes` with a transaction per request and this app as state.
    fn transactional(&self, routes: Router<App>) -> Router {
        routes.layer(TransactionLayer::new(self.pool.clone())).with_state(self.clone())
    }

    async fn drop_table(self) {
        pool().await.execute(&format!("DROP TABLE {}", self.table), vec![]).await.unwrap();
    }
}

async fn insert(q: &impl Queryable, app: &App, id: i64, email: &str) -> chakra::Result<u64> {
    q.execute(&format!("INSERT INTO {} (id, email) VALUES ($1, $2)", app.table), vec![id.into(), email.into()]).await
}

async fn send(router: Router, method: &str, uri: &str) -> (Response<()>, String) {
    let request = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
    let (parts, body) = router.oneshot(request).await.unwrap().into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (Response::from_parts(parts, ()), String::from_utf8(bytes.to_vec()).unwrap())
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{body:?} is not JSON: {e}"))
}

#[tokio::test]
async fn pool_serves_as_state_directly_and_through_from_ref() {
    async fn answer(State(pool): State<Pool>) -> Result<String, Error> {
        let row = pool.query_one("SELECT $1::int8 + 1", vec![41_i64.into()]).await?;
        Ok(row.get::<_, i64>(0).to_string())
    }
    let pool = pool().await;

    let direct = Router::new().route("/", get(answer)).with_state(pool.clone());
    let (response, body) = send(direct, "GET", "/").await;
    assert_eq!((response.status(), body.as_str()), (StatusCode::OK, "42"));

    let app = App { pool, table: "unused".into() };
    let from_ref = Router::new().route("/", get(answer)).with_state(app);
    let (response, body) = send(from_ref, "GET", "/").await;
    assert_eq!((response.status(), body.as_str()), (StatusCode::OK, "42"));
}

#[tokio::test]
async fn query_one_without_a_row_is_404() {
    async fn find(State(app): State<App>) -> Result<String, Error> {
        let row =
            app.pool.query_one(&format!("SELECT email FROM {} WHERE id = $1", app.table), vec![7_i64.into()]).await?;
        Ok(row.get(0))
    }
    let app = App::new("axum_not_found", pool().await, "").await;

    let (response, body) = send(Router::new().route("/", get(find)).with_state(app.clone()), "GET", "/").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_of(&body), json!({ "error": "not_found" }));
    app.drop_table().await;
}

#[tokio::test]
async fn unique_violation_is_409_naming_the_constraint_but_not_the_value() {
    async fn sign_up(State(app): State<App>) -> Result<StatusCode, Error> {
        insert(&app.pool, &app, 2, "taken@example.com").await?;
        Ok(StatusCode::CREATED)
    }
    let app = App::new("axum_conflict", pool().await, "").await;
    insert(&app.pool, &app, 1, "taken@example.com").await.unwrap();

    let (response, body) = send(Router::new().route("/", post(sign_up)).with_state(app.clone()), "POST", "/").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(json_of(&body), json!({ "error": "conflict", "constraint": format!("{}_email_key", app.table) }));
    // PostgreSQL's message says "Key (email)=(taken@example.com) already exists".
    assert!(!body.contains("taken@example.com") && !body.contains("INSERT"), "{body}");
    app.drop_table().await;
}

#[tokio::test]
async fn exhausted_pool_is_503_with_retry_after() {
    async fn with_session(session: DbSession) -> Result<(), Error> {
        session.execute("SELECT 1", vec![]).await?;
        Ok(())
    }
    async fn with_pool(State(pool): State<Pool>) -> Result<(), Error> {
        pool.execute("SELECT 1", vec![]).await?;
        Ok(())
    }
    let pool = Pool::builder()
        .url(&database_url())
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let router =
        Router::new().route("/session", get(with_session)).route("/pool", get(with_pool)).with_state(pool.clone());
    let holder = pool.session().await.unwrap();

    for uri in ["/session", "/pool"] {
        let (response, body) = send(router.clone(), "GET", uri).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        assert_eq!(response.headers()[header::RETRY_AFTER], "1", "{uri}");
        assert_eq!(json_of(&body), json!({ "error": "unavailable" }), "{uri}");
    }

    drop(holder);
    let (response, _) = send(router, "GET", "/session").await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn statement_timeout_is_504() {
    async fn slow(State(pool): State<Pool>) -> Result<(), Error> {
        pool.execute("SELECT pg_sleep(5)", vec![]).await?;
        Ok(())
    }
    let pool = Pool::builder().url(&database_url()).query_timeout(Duration::from_millis(100)).build().await.unwrap();

    let started = Instant::now();
    let (response, body) = send(Router::new().route("/", get(slow)).with_state(pool), "GET", "/").await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(json_of(&body), json!({ "error": "timeout" }));
    assert!(started.elapsed() < Duration::from_secs(4), "answered after {:?}", started.elapsed());
}

#[tokio::test]
async fn bad_sql_is_500_without_sql_names_or_values_in_the_body() {
    async fn broken(State(app): State<App>) -> Result<(), Error> {
        let sql = format!("SELECT no_such_column FROM {} WHERE id = $1", app.table);
        app.pool.query(&sql, vec![987_654_321_i64.into()]).await?;
        Ok(())
    }
    let app = App::new("axum_bad_sql", pool().await, "").await;

    let (response, body) = send(Router::new().route("/", get(broken)).with_state(app.clone()), "GET", "/").await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(json_of(&body), json!({ "error": "internal" }));
    for secret in ["SELECT", "no_such_column", &app.table, "987654321"] {
        assert!(!body.contains(secret), "body {body:?} leaks {secret:?}");
    }
    // The whole error stays available server-side, for logging middleware.
    let error = response.extensions().get::<chakra::Error>().expect("the chakra::Error in the response extensions");
    assert_eq!(error.kind(), ErrorKind::Query);
    assert!(error.to_string().contains("no_such_column"), "{error}");
    app.drop_table().await;
}

#[tokio::test]
async fn tx_commits_when_the_handler_answers_2xx_or_3xx() {
    async fn create(tx: Tx, State(app): State<App>) -> Result<StatusCode, Error> {
        insert(&tx, &app, 1, "a@example.com").await?;
        Ok(StatusCode::CREATED)
    }
    async fn create_and_redirect(tx: Tx, State(app): State<App>) -> Result<Redirect, Error> {
        insert(&tx, &app, 2, "b@example.com").await?;
        Ok(Redirect::to("/users/2"))
    }
    let app = App::new("axum_tx_commit", pool().await, "").await;
    let router =
        app.transactional(Router::new().route("/created", post(create)).route("/redirect", post(create_and_redirect)));

    let (response, _) = send(router.clone(), "POST", "/created").await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let (response, _) = send(router, "POST", "/redirect").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.ids().await, [1, 2]);
    app.drop_table().await;
}

#[tokio::test]
async fn tx_rolls_back_when_the_handler_answers_an_error_status() {
    async fn invalid(tx: Tx, State(app): State<App>) -> Result<StatusCode, Error> {
        insert(&tx, &app, 1, "a@example.com").await?;
        Ok(StatusCode::UNPROCESSABLE_ENTITY)
    }
    async fn second_insert_fails(tx: Tx, State(app): State<App>) -> Result<StatusCode, Error> {
        insert(&tx, &app, 2, "b@example.com").await?;
        insert(&tx, &app, 3, "b@example.com").await?;
        Ok(StatusCode::CREATED)
    }
    let app = App::new("axum_tx_rollback", pool().await, "").await;
    let router =
        app.transactional(Router::new().route("/invalid", post(invalid)).route("/conflict", post(second_insert_fails)));

    let (response, _) = send(router.clone(), "POST", "/invalid").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (response, _) = send(router, "POST", "/conflict").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(app.ids().await, Vec::<i64>::new());
    app.drop_table().await;
}

#[tokio::test]
async fn tx_commit_failure_replaces_the_success_response() {
    async fn duplicate(tx: Tx, State(app): State<App>) -> Result<StatusCode, Error> {
        // The constraint is deferred: both inserts succeed and COMMIT fails.
        insert(&tx, &app, 1, "same@example.com").await?;
        insert(&tx, &app, 2, "same@example.com").await?;
        Ok(StatusCode::CREATED)
    }
    let app = App::new("axum_tx_commit_fails", pool().await, "DEFERRABLE INITIALLY DEFERRED").await;
    let router = app.transactional(Router::new().route("/", post(duplicate)));

    let (response, body) = send(router, "POST", "/").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(json_of(&body), json!({ "error": "conflict", "constraint": format!("{}_email_key", app.table) }));
    assert_eq!(app.ids().await, Vec::<i64>::new());
    app.drop_table().await;
}

/// A pool of one connection: a request after the failure can only succeed if the
/// failed request's connection came back to the pool, rolled back.
async fn one_connection_app(prefix: &str) -> App {
    let pool = Pool::builder()
        .url(&database_url())
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    App::new(prefix, pool, "").await
}

async fn create_second(tx: Tx, State(app): State<App>) -> Result<StatusCode, Error> {
    insert(&tx, &app, 2, "second@example.com").await?;
    Ok(StatusCode::CREATED)
}

#[tokio::test]
async fn tx_rolls_back_when_the_handler_panics() {
    async fn panics(tx: Tx, State(app): State<App>) -> StatusCode {
        insert(&tx, &app, 1, "first@example.com").await.unwrap();
        panic!("handler bug after a write");
    }
    let app = one_connection_app("axum_tx_panic").await;
    let router = app.transactional(Router::new().route("/panic", post(panics)).route("/ok", post(create_second)));

    let outcome = tokio::spawn(send(router.clone(), "POST", "/panic")).await;
    assert!(outcome.expect_err("the handler panicked").is_panic());
    let (response, _) = send(router, "POST", "/ok").await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(app.ids().await, [2]);
    app.drop_table().await;
}

#[tokio::test]
async fn tx_rolls_back_when_the_request_is_dropped() {
    async fn stalls(tx: Tx, State(app): State<App>) -> StatusCode {
        insert(&tx, &app, 1, "first@example.com").await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        StatusCode::CREATED
    }
    let app = one_connection_app("axum_tx_dropped").await;
    let router = app.transactional(Router::new().route("/stall", post(stalls)).route("/ok", post(create_second)));

    // The client goes away while the handler holds the transaction.
    let dropped = tokio::time::timeout(Duration::from_millis(300), send(router.clone(), "POST", "/stall")).await;
    assert!(dropped.is_err(), "the stalled request should not have finished");
    let (response, _) = send(router, "POST", "/ok").await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(app.ids().await, [2]);
    app.drop_table().await;
}

#[tokio::test]
async fn tx_begins_only_when_a_handler_extracts_it() {
    async fn no_tx() -> &'static str {
        "no transaction needed"
    }
    async fn with_tx(_tx: Tx) {}
    let pool = Pool::builder()
        .url(&database_url())
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let router =
        Router::new().route("/plain", get(no_tx)).route("/tx", get(with_tx)).layer(TransactionLayer::new(pool.clone()));
    let _holder = pool.session().await.unwrap();

    let (response, _) = send(router.clone(), "GET", "/plain").await;
    assert_eq!(response.status(), StatusCode::OK, "a route that never extracts Tx must not need a connection");
    let (response, _) = send(router, "GET", "/tx").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
}

#[tokio::test]
async fn tx_extracted_twice_is_one_transaction() {
    async fn twice(first: Tx, second: Tx) -> Result<Json<[i64; 2]>, Error> {
        let sql = "SELECT txid_current()";
        let a = first.query_one(sql, vec![]).await?.get(0);
        let b = second.query_one(sql, vec![]).await?.get(0);
        Ok(Json([a, b]))
    }
    let pool = pool().await;
    let router = Router::new().route("/", get(twice)).layer(TransactionLayer::new(pool));

    let (response, body) = send(router, "GET", "/").await;
    assert_eq!(response.status(), StatusCode::OK);
    let ids: [i64; 2] = serde_json::from_str(&body).unwrap();
    assert_eq!(ids[0], ids[1]);
}

#[tokio::test]
async fn tx_without_the_layer_is_500_naming_the_layer() {
    async fn needs_tx(_tx: Tx) {}
    let router = Router::new().route("/", get(needs_tx));

    let (response, body) = send(router, "GET", "/").await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("TransactionLayer"), "{body}");
}

#[tokio::test]
async fn db_session_runs_every_statement_on_one_connection() {
    async fn pids(session: DbSession, State(pool): State<Pool>) -> Result<Json<[i32; 3]>, Error> {
        let sql = "SELECT pg_backend_pid()";
        let first = session.query_one(sql, vec![]).await?.get(0);
        // While the session holds its connection, the pool must use another one.
        let elsewhere = pool.query_one(sql, vec![]).await?.get(0);
        let second = session.query_one(sql, vec![]).await?.get(0);
        Ok(Json([first, elsewhere, second]))
    }
    let router = Router::new().route("/", get(pids)).with_state(pool().await);

    let (response, body) = send(router, "GET", "/").await;
    assert_eq!(response.status(), StatusCode::OK);
    let [first, elsewhere, second]: [i32; 3] = serde_json::from_str(&body).unwrap();
    assert_eq!(first, second, "both statements of the session on one backend");
    assert_ne!(first, elsewhere);
}
