// Arithmetic in an update is for numeric columns: adding to a text column is refused.
use chakra::Model;

#[derive(Model)]
#[chakra(table = "users")]
pub struct User {
    #[chakra(primary_key)]
    pub id: i64,
    pub name: String,
}

fn main() {
    let _ = User::name().set(User::name() + 1);
}
