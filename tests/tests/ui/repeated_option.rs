use chakra::prelude::*;

#[derive(Model)]
#[chakra(table = "users")]
#[chakra(table = "people")]
struct User {
    #[chakra(primary_key, primary_key)]
    id: i64,
}

fn main() {}
