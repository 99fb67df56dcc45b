const NO_TTL: u64 = 0;

#[larder::cached(ttl = NO_TTL)]
async fn get_user_data(user_id: u64) -> u64 {
    user_id
}

fn main() {
    let _ = get_user_data(1);
}
