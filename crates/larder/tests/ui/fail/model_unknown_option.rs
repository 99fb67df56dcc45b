#[derive(larder::CachedModel)]
#[larder(prefix = "product", timeot = 60)]
struct Product {
    id: u64,
}

fn main() {}
