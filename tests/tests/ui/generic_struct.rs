use chakra::prelude::*;

#[derive(Model)]
struct Tagged<T> {
    #[chakra(primary_key)]
    id: i64,
    tag: T,
}

fn main() {}
