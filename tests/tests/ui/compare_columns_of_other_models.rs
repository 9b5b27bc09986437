// A column compares with columns of its own model: another table's column is not in the
// statement, so `User::id().eq(Book::id())` would be a query the server refuses.
use chakra::Model;

#[derive(Model)]
#[chakra(table = "users")]
pub struct User {
    #[chakra(primary_key)]
    pub id: i64,
}

#[derive(Model)]
#[chakra(table = "books")]
pub struct Book {
    #[chakra(primary_key)]
    pub id: i64,
}

fn main() {
    let _ = User::id().eq(Book::id());
}
