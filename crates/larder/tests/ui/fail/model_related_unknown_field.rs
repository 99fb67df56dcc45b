#[derive(larder::CachedModel)]
#[larder(prefix = "product", related(categories))]
struct Product {
    id: u64,
    category: u64,
}

fn main() {}
