// Text functions take text, and rounding the types PostgreSQL rounds to their own type.
use chakra::models::func;
use chakra::Model;

#[derive(Model)]
#[chakra(table = "users")]
pub struct User {
    #[chakra(primary_key)]
    pub id: i64,
    pub score: i32,
}

fn main() {
    let _ = func::lower(User::id());
    let _ = func::round(User::score());
}
