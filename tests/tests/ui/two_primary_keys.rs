use chakra::prelude::*;

#[derive(Model)]
struct Membership {
    #[chakra(primary_key)]
    user_id: i64,
    #[chakra(primary_key)]
    group_id: i64,
}

fn main() {}
