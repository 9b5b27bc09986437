// sum and avg apply to numeric columns, min and max to ordered ones: both are checked
// when the program is compiled.
use chakra::prelude::*;

#[derive(Model)]
#[chakra(table = "users")]
pub struct User {
    #[chakra(primary_key)]
    pub id: i64,
    pub name: String,
    pub active: bool,
}

async fn totals(pool: &Pool) {
    let _ = User::query().sum(pool, User::name()).await;
    let _ = User::query().max(pool, User::active()).await;
}

fn main() {}
