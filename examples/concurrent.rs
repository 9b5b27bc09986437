//! The spec's "Concurrent Operations" example, as written, with a `main` to run it.

use chakra::prelude::*;
use chakra_examples::{Post, User, UserWithPosts};

use futures::future::try_join_all;

async fn get_users_with_posts(ids: Vec<i64>, pool: &Pool) -> Result<Vec<UserWithPosts>> {
    let futures: Vec<_> = ids.iter().map(|id| async {
        let user = User::get(pool, *id).await?;
        let posts = Post::query()
            .filter(Post::author_id().eq(*id))
            .all(pool)
            .await?;

        Ok(UserWithPosts { user, posts })
    }).collect();

    try_join_all(futures).await
}

#[tokio::main]
async fn main() -> Result<()> {
    let pool = chakra::connect("postgresql://localhost/db").await?;
    let ids = User::query().all(&pool).await?.into_iter().map(|u| u.id).collect();
    for entry in get_users_with_posts(ids, &pool).await? {
        println!("{} wrote {} post(s)", entry.user.name, entry.posts.len());
    }
    Ok(())
}
