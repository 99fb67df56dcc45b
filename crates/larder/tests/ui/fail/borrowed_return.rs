#[larder::cached(namespace = "name")]
fn name(id: &str) -> &str {
    id
}

fn main() {}
