#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Sku(u64);

#[derive(larder::CachedModel)]
#[larder(prefix = "product")]
struct Product {
    id: Sku,
}

fn main() {}
