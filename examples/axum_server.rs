//! The spec's Axum example, as written (axum 0.6's `axum::Server`).

use chakra::prelude::*;
use chakra_examples::User;

use axum::{extract::State, routing::get, Router, Json};

async fn list_users(State(pool): State<Pool>) -> Json<Vec<User>> {
    let users = User::query()
        .filter(User::is_active().eq(true))
        .all(&pool)
        .await
        .unwrap();

    Json(users)
}

#[tokio::main]
async fn main() {
    let pool = chakra::connect("postgresql://localhost/db").await.unwrap();

    let app = Router::new()
        .route("/users", get(list_users))
        .with_state(pool);

    axum::Server::bind(&"0.0.0.0:3000".parse().unwrap())
        .serve(app.into_make_service())
        .await
        .unwrap();
}
