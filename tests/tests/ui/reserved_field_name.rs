use chakra::prelude::*;

#[derive(Model)]
struct Job {
    #[chakra(primary_key)]
    id: i64,
    query: String,
    delete: bool,
    update_many: i32,
}

fn main() {}
