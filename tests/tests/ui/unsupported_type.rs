use chakra::prelude::*;

#[derive(Model)]
struct Event {
    #[chakra(primary_key)]
    id: i64,
    attempts: u32,
    address: std::net::IpAddr,
}

fn main() {}
