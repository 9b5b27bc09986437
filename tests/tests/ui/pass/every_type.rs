// Every supported field type, a uuid key the application assigns, a field stored in a
// column with another name, the default (snake case) table name, a private field, and a
// facade path given with `crate = "..."`.
use chakra::chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chakra::prelude::*;
use chakra::rust_decimal::Decimal;
use chakra::uuid::Uuid;

mod app {
    pub use chakra as orm;
}

#[derive(Model, Debug, Clone)]
#[chakra(crate = "app::orm")]
pub struct EveryType {
    #[chakra(primary_key)]
    pub id: Uuid,
    pub small: i16,
    pub int: i32,
    pub big: i64,
    pub real: f32,
    pub double: f64,
    pub flag: bool,
    pub text: String,
    pub bytes: Vec<u8>,
    pub day: NaiveDate,
    pub time_of_day: NaiveTime,
    pub local_time: NaiveDateTime,
    pub instant: DateTime<Utc>,
    pub document: chakra::serde_json::Value,
    pub amount: Decimal,
    pub maybe_text: Option<String>,
    pub maybe_amount: Option<Decimal>,
    #[chakra(column = "order")]
    pub sort_order: i32,
    secret: Option<Vec<u8>>,
}

#[derive(Model)]
struct Counter {
    #[chakra(primary_key, generated = false)]
    id: i32,
    r#type: String,
}

fn main() {
    assert_eq!(EveryType::TABLE, "every_type");
    let key = &EveryType::FIELDS[EveryType::PRIMARY_KEY];
    assert_eq!((key.sql_type.as_ref(), key.primary_key, key.generated), ("uuid", true, false));
    assert_eq!(EveryType::sort_order().name(), "order");
    assert!(EveryType::FIELDS.iter().any(|f| f.name == "sort_order" && f.column == "order"));
    let maybe = EveryType::FIELDS.iter().find(|f| f.name == "maybe_amount").unwrap();
    assert_eq!((maybe.sql_type.as_ref(), maybe.nullable), ("numeric", true));
    let _order = EveryType::query().filter(EveryType::amount().gt(Decimal::ONE)).order_by(EveryType::instant().desc());

    assert!(!Counter::FIELDS[Counter::PRIMARY_KEY].generated);
    assert_eq!(Counter::r#type().name(), "type");
    assert_eq!(Counter::FIELDS[1].name, "type");
}
