#[larder::cached(namspace = "user_data", ttl = 3600)]
async fn get_user_data(user_id: u64) -> String {
    user_id.to_string()
}

fn main() {}
