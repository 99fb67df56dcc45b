#[derive(larder::CachedModel)]
#[larder(prefix = "page")]
struct Page<T> {
    id: u64,
    items: Vec<T>,
}

fn main() {}
