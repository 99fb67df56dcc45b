#[derive(larder::CachedModel)]
#[larder(prefix = "product")]
struct Product {
    #[larder(key)]
    id: u64,
}

fn main() {}
