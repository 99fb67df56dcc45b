#[larder::cached(namespace = "product_data")]
async fn get_product_data(product_id: u64, ttl: String) -> String {
    format!("{product_id}{ttl}")
}

fn main() {}
