#[larder::cached(namespace = "user", cache_none = true)]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
