#[larder::cached(namespace = "user")]
async fn user(id: u64, #[larder(skp)] trace: String) -> u64 {
    let _ = trace;
    id
}

fn main() {}
