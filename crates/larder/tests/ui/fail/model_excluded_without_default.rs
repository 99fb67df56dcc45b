struct Connection;

#[derive(larder::CachedModel)]
#[larder(prefix = "product", exclude(connection))]
struct Product {
    id: u64,
    connection: Connection,
}

fn main() {}
