#[derive(larder::CachedModel)]
#[larder(prefix = "product")]
struct Product {
    #[larder(id)]
    id: u64,
    #[larder(id)]
    sku: String,
}

fn main() {}
