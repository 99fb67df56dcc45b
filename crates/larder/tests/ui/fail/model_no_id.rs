#[derive(larder::CachedModel)]
#[larder(prefix = "product")]
struct Product {
    sku: String,
    name: String,
}

fn main() {}
