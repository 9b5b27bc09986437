// A column compares with columns of its own type: an id is never compared with a name.
use chakra::Model;

#[derive(Model)]
#[chakra(table = "users")]
pub struct User {
    #[chakra(primary_key)]
    pub id: i64,
    pub name: String,
}

fn main() {
    let _ = User::id().eq(User::name());
}
