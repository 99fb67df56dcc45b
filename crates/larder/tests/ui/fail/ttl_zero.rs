#[larder::cached(namespace = "user_data", ttl = 0)]
async fn get_user_data(user_id: u64) -> u64 {
    user_id
}

#[larder::cached(ttl = 60, cache_none = true, none_ttl = 0)]
async fn find_user(user_id: u64) -> Option<u64> {
    Some(user_id)
}

fn main() {}
