#[larder::cached(namespace = "profile", key = "{user_id}")]
async fn profile(user_id: u64, include_private: bool) -> String {
    format!("{user_id} {include_private}")
}

fn main() {}
