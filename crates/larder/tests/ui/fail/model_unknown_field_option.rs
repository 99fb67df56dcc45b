#[derive(larder::CachedModel)]
#[larder(prefix = "product")]
struct Product {
    #[larder(key)]
    sku: u64,
}

fn main() {}
