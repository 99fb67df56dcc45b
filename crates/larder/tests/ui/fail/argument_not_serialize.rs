struct Connection;

#[larder::cached(namespace = "user_data")]
async fn get_user_data(db: &Connection, user_id: u64) -> String {
    let _ = db;
    user_id.to_string()
}

fn main() {}
