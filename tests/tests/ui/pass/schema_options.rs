//! Every `create_table` option, and every `on_delete` value (each must name a variant).
use chakra::prelude::*;

#[derive(Model)]
#[chakra(table = "books")]
struct Book {
    #[chakra(primary_key)]
    id: i64,
    #[chakra(unique, column_type = "varchar(200)")]
    title: String,
    #[chakra(index, references = "authors.id")]
    author: i64,
    #[chakra(references = "shelves.id", on_delete = "no action")]
    shelf: Option<i64>,
    #[chakra(references = "series.id", on_delete = "restrict")]
    series: Option<i64>,
    #[chakra(references = "editors.id", on_delete = "CASCADE")]
    editor: Option<i64>,
    #[chakra(references = "imprints.id", on_delete = "set_null")]
    imprint: Option<i64>,
    #[chakra(references = "languages.id", on_delete = "set default")]
    language: Option<i64>,
    #[chakra(db_default = "now()")]
    added: chakra::chrono::DateTime<chakra::chrono::Utc>,
    #[chakra(check = "pages > 0")]
    pages: i32,
}

fn main() {
    let author = &Book::FIELDS[2];
    assert!(author.index && author.references.as_ref().is_some_and(|k| k.table == "authors" && k.column == "id"));
    assert_eq!(Book::FIELDS[8].default.as_deref(), Some("now()"));
    assert_eq!(Book::FIELDS[9].check.as_deref(), Some("pages > 0"));
    let on_delete: Vec<_> = Book::FIELDS[3..8].iter().map(|f| f.references.as_ref().unwrap().on_delete).collect();
    use chakra::models::OnDelete::*;
    assert_eq!(on_delete, [NoAction, Restrict, Cascade, SetNull, SetDefault]);
}
