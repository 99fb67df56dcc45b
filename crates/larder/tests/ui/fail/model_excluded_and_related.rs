#[derive(larder::CachedModel)]
#[larder(prefix = "category")]
struct Category {
    id: u64,
}

#[derive(larder::CachedModel)]
#[larder(prefix = "product", related(category), exclude(category))]
struct Product {
    id: u64,
    category: Category,
}

fn main() {}
