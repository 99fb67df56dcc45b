#[derive(larder::CachedModel)]
#[larder(prefix = "a", timeout = 0)]
struct Zero {
    id: u64,
}

#[derive(larder::CachedModel)]
#[larder(prefix = "b", timeout = "1d")]
struct NotSeconds {
    id: u64,
}

fn main() {}
