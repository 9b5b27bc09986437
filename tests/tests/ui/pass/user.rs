// The model from the docs, with a generated `i64` key and a nullable column; `main`
// proves the generated API type-checks.
use chakra::prelude::*;

#[derive(Model, Debug, Clone)]
#[chakra(table = "users")]
pub struct User {
    #[chakra(primary_key)]
    pub id: i64,
    pub name: String,
    pub email: Option<String>,
    pub is_active: bool,
}

fn main() {
    let _query: Query<User> = User::query().filter(User::is_active().eq(true));
    let _by_email: chakra::Expr = User::email().is_null();
    let _id: chakra::Column<User, i64> = User::id();
    assert_eq!(User::TABLE, "users");
    assert_eq!(User::FIELDS[User::PRIMARY_KEY].name, "id");
    assert!(User::FIELDS[User::PRIMARY_KEY].generated);
    // Updates computed from the row, on numeric columns, with values and columns.
    let _set: chakra::models::Assignment = User::id().set(User::id() * 2 - User::id() / 3 + 1_i64);
    // Comparisons with other columns: of the same type, or a nullable column with a
    // column of its inner type; with arithmetic on them.
    let _same: chakra::Expr = User::email().eq(User::name());
    let _computed: chakra::Expr = User::id().gt(User::id() * 2 - 1_i64);
    let _nullable: chakra::models::Assignment = User::email().set(User::name());
    // Typed projections.
    let _pairs: chakra::models::Selected<User, _> = User::query().select((User::id(), User::email())).distinct();
}
