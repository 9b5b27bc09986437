// A part a column's type does not have is a compile error: a time has no year, a date no
// hour, and only timestamps have a date and a time of day. So with cutting one down to a
// unit: a time has no month to cut to, a date no hour.
use chakra::chrono::{NaiveDate, NaiveTime};
use chakra::prelude::*;

#[derive(Model, Clone)]
#[chakra(table = "events")]
pub struct Event {
    #[chakra(primary_key)]
    pub id: i64,
    pub day: NaiveDate,
    pub at: NaiveTime,
}

fn main() {
    let _ = Event::query().filter(Event::at().year().eq(2024));
    let _ = Event::query().filter(Event::day().hour().eq(9));
    let _ = Event::query().filter(Event::day().date().eq(NaiveDate::MIN));
    let _ = Event::query().group_by(Event::at().trunc_month());
    let _ = Event::query().group_by(Event::day().trunc_hour());
}
