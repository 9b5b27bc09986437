use chakra::prelude::*;

#[derive(Model)]
#[chakra(tabel = "users")]
struct User {
    #[chakra(primary_kye)]
    id: i64,
    #[chakra(rename = "full_name", column = "name")]
    name: String,
}

fn main() {}
