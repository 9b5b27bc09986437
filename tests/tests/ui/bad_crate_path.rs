use chakra::prelude::*;

#[derive(Model)]
#[chakra(crate = "not a path")]
struct User {
    #[chakra(primary_key)]
    id: i64,
}

fn main() {}
