#[larder::cached(namespace = "user_data", ttl = "1h")]
async fn get_user_data(user_id: u64) -> String {
    user_id.to_string()
}

fn main() {}
