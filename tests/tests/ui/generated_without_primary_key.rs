use chakra::prelude::*;

#[derive(Model)]
struct User {
    #[chakra(primary_key)]
    id: i64,
    #[chakra(generated = true)]
    serial: i64,
}

fn main() {}
