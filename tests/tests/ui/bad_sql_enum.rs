use chakra::SqlEnum;

#[derive(SqlEnum, Clone)]
enum Shape {
    Dot,
    Circle(f64),
    #[chakra(value = "dot")]
    Point,
    #[chakra(vaule = "x")]
    Other,
}

#[derive(SqlEnum, Clone)]
struct NotAnEnum {
    x: i32,
}

fn main() {}
