// Rows match by columns of one type (or one the `Option` of the other), in related rows,
// joins and subqueries alike: an `int4` reference is not matched with an `int8` key.
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
    pub author_id: Option<i32>,
}

async fn load(pool: &Pool, books: &[Book]) -> Result<Vec<Option<Author>>> {
    Author::query().load_one(pool, books, Book::author_id(), Author::id()).await
}

fn main() {
    let _ = load;
    let _ = Book::query().filter(Book::author_id().is_in_query(Author::query().select(Author::id())));
    let _ = Book::query().select_related(Book::author_id(), Author::id());
}
