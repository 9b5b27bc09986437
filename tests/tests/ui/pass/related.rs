// Key columns match when they have one type, or one is the `Option` of the other: a
// nullable reference to a key, and the key read back from its nullable references.
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
    pub author_id: Option<i64>,
    pub editor_id: i64,
}

async fn load(pool: &Pool, books: &[Book], authors: &[Author]) -> Result<()> {
    let _: Vec<Option<Author>> = Author::query().load_one(pool, books, Book::author_id(), Author::id()).await?;
    let _: Vec<Option<Author>> = Author::query().load_one(pool, books, Book::editor_id(), Author::id()).await?;
    let _: Vec<Vec<Book>> = Book::query().load_many(pool, authors, Author::id(), Book::author_id()).await?;
    let _: Vec<Option<Book>> = Book::query().load_one(pool, authors, Author::id(), Book::author_id()).await?;
    let _: Vec<(Book, Option<Author>)> = Book::query().select_related(Book::author_id(), Author::id()).all(pool).await?;
    let _: Option<(Book, Option<Author>)> = Book::query().select_related(Book::editor_id(), Author::id()).first(pool).await?;
    let _: Vec<Book> = Book::query().filter(Book::author_id().is_in_query(Author::query().select(Author::id()))).all(pool).await?;
    let _: Vec<Author> = Author::query().filter(Author::id().is_not_in_query(Book::query().select(Book::author_id()))).all(pool).await?;
    Ok(())
}

fn main() {
    let _ = load;
}
