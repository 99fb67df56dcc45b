#[derive(larder::CachedModel)]
struct NoPrefix {
    id: u64,
}

#[derive(larder::CachedModel)]
#[larder(prefix = "shop:product")]
struct BadPrefix {
    id: u64,
}

fn main() {}
