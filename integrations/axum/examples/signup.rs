//! A transaction per request: signing up writes a user and an audit row, both or neither.
//!
//! ```sh
//! DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test cargo run -p chakra-axum --example signup
//! curl -i -X POST localhost:3000/users -H 'content-type: application/json' -d '{"email":"ada@example.com"}'
//! curl -i -X POST localhost:3000/users -H 'content-type: application/json' -d '{"email":"ada@example.com"}'  # 409
//! curl -i localhost:3000/users/1
//! ```

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chakra::{Pool, Queryable};
use chakra_axum::{Error, TransactionLayer, Tx};
use serde_json::{json, Value};

/// Both inserts commit together when the handler answers 201; a duplicate email fails the
/// first with `users_email_key`, which `?` turns into a 409 and the layer into a rollback.
async fn sign_up(tx: Tx, Json(body): Json<Value>) -> Result<(StatusCode, Json<Value>), Error> {
    let email = body["email"].as_str().unwrap_or_default().to_owned();
    let row = tx.query_one("INSERT INTO users (email) VALUES ($1) RETURNING id", vec![email.into()]).await?;
    let id: i64 = row.get(0);
    tx.execute("INSERT INTO audit (event, user_id) VALUES ('signup', $1)", vec![id.into()]).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}

/// No transaction needed: `State<Pool>` runs the query on any pooled connection; an
/// unknown id is a 404.
async fn user(State(pool): State<Pool>, Path(id): Path<i64>) -> Result<Json<Value>, Error> {
    let row = pool.query_one("SELECT email FROM users WHERE id = $1", vec![id.into()]).await?;
    Ok(Json(json!({ "id": id, "email": row.get::<_, String>(0) })))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".into());
    let pool = chakra::connect(&url).await?;
    pool.execute("CREATE TABLE IF NOT EXISTS users (id int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL, CONSTRAINT users_email_key UNIQUE (email))", vec![]).await?;
    pool.execute("CREATE TABLE IF NOT EXISTS audit (event text NOT NULL, user_id int8 NOT NULL)", vec![]).await?;

    let app = Router::new()
        .route("/users", post(sign_up))
        .route("/users/{id}", get(user))
        .layer(TransactionLayer::new(pool.clone()))
        .with_state(pool);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
