use chakra::prelude::*;

#[derive(Model)]
#[chakra(table = 5)]
struct User {
    #[chakra(primary_key, generated = "no")]
    id: i64,
    #[chakra(column)]
    name: String,
}

fn main() {}
