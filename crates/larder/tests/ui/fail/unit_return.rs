#[larder::cached(namespace = "notify")]
async fn notify(user_id: u64) {
    let _ = user_id;
}

fn main() {}
