use chakra::prelude::*;

#[derive(Model)]
struct User {
    #[chakra(primary_key)]
    id: i64,
    name: String,
    #[chakra(column = "name")]
    display_name: String,
}

fn main() {}
