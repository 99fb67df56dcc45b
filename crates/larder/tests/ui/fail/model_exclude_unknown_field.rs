#[derive(larder::CachedModel)]
#[larder(prefix = "product", exclude(internal_note))]
struct Product {
    id: u64,
    internal_notes: String,
}

fn main() {}
