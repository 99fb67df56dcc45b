fn ttl_from_settings() -> u64 {
    3600
}

#[larder::cached(ttl = ttl_from_settings())]
async fn get_user_data(user_id: u64) -> u64 {
    user_id
}

fn main() {}
