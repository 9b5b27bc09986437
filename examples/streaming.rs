//! The spec's "Streaming Results" example, as written, with a `main` to run it.

use chakra::prelude::*;
use chakra_examples::{process_user, User};

use futures::StreamExt;

async fn process_all_users(pool: &Pool) -> Result<()> {
    let mut stream = User::query()
        .filter(User::is_active().eq(true))
        .stream(pool)
        .await?;

    while let Some(result) = stream.next().await {
        let user = result?;
        process_user(&user).await?;
    }

    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let pool = chakra::connect("postgresql://localhost/db").await?;
    process_all_users(&pool).await
}
