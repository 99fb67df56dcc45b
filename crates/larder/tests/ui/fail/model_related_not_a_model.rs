#[derive(serde::Serialize, serde::Deserialize)]
struct Category {
    id: u64,
}

#[derive(larder::CachedModel)]
#[larder(prefix = "product", related(category))]
struct Product {
    id: u64,
    category: Category,
}

fn main() {}
