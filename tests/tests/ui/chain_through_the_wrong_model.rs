// Each step of an aggregate across relations starts at the rows the step before it
// reached: after `through(Review::book_id(), Book::id())`, the next key is a `Book` column.
use chakra::models::agg;
use chakra::prelude::*;

#[derive(Model, Clone)]
#[chakra(table = "authors")]
pub struct Author {
    #[chakra(primary_key)]
    pub id: i64,
}

#[derive(Model, Clone)]
#[chakra(table = "books")]
pub struct Book {
    #[chakra(primary_key)]
    pub id: i64,
    pub author_id: i64,
}

#[derive(Model, Clone)]
#[chakra(table = "reviews")]
pub struct Review {
    #[chakra(primary_key)]
    pub id: i64,
    pub book_id: i64,
}

fn main() {
    let _ = agg::count().through(Review::book_id(), Book::id()).related(Review::book_id(), Author::id());
}
