use chakra::prelude::*;

#[derive(Model)]
enum Status {
    Active,
    Banned,
}

fn main() {}
