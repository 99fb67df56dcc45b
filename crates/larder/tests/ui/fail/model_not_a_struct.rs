#[derive(larder::CachedModel)]
#[larder(prefix = "shape")]
enum Shape {
    Circle { id: u64 },
}

#[derive(larder::CachedModel)]
#[larder(prefix = "pair")]
struct Pair(u64, String);

#[derive(larder::CachedModel)]
#[larder(prefix = "unit")]
struct Unit;

#[derive(larder::CachedModel)]
#[larder(prefix = "bits")]
union Bits {
    id: u64,
}

fn main() {}
