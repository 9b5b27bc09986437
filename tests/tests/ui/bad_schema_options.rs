use chakra::prelude::*;

#[derive(Model)]
struct Book {
    #[chakra(primary_key, unique = true)]
    id: i64,
    #[chakra(references = "authors")]
    author: i64,
    #[chakra(references = "editors.id", on_delete = "explode")]
    editor: i64,
    #[chakra(on_delete = "cascade")]
    shelf: i64,
}

fn main() {}
