#[larder::cached(namespace = "user")]
struct User;

fn main() {}
