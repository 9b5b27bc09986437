use chakra::prelude::*;

#[derive(Model)]
struct UserId(i64, String);

fn main() {}
