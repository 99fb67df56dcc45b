#[derive(larder::CachedModel)]
#[larder(prefix = "product", exclude(id))]
struct Product {
    id: u64,
    name: String,
}

fn main() {}
