//! An enum of unit variants as a column type, in a model and as an `Option`.
use chakra::prelude::*;

#[derive(SqlEnum, Clone, Copy, Debug, PartialEq)]
enum Mood {
    Calm,
    VeryAngry,
    #[chakra(value = "meh")]
    Indifferent,
}

#[derive(Model)]
#[chakra(table = "people")]
struct Person {
    #[chakra(primary_key)]
    id: i64,
    mood: Mood,
    was: Option<Mood>,
}

fn main() {
    assert_eq!(Mood::VALUES, ["calm", "very_angry", "meh"]);
    assert_eq!(Mood::Indifferent.as_str(), "meh");
    assert_eq!(Person::FIELDS[1].sql_type, "text");
    assert!(Person::FIELDS[2].nullable);
    let _ = Person::query().filter(Person::mood().eq(Mood::Calm));
}
