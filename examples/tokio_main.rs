//! The spec's "With Tokio" example, as written.

use chakra_examples::User;

use chakra::prelude::*;
use tokio;

#[tokio::main]
async fn main() -> Result<()> {
    let pool = chakra::connect("postgresql://localhost/db").await?;

    // All operations are async
    let users = User::query()
        .filter(User::is_active().eq(true))
        .all(&pool)
        .await?;

    for user in users {
        println!("{}", user.name);
    }

    Ok(())
}
