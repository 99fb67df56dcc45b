const NEVER: u64 = 0;

#[derive(larder::CachedModel)]
#[larder(prefix = "c", timeout = NEVER)]
struct ZeroConstant {
    id: u64,
}

fn main() {
    let _ = <ZeroConstant as larder::model::CachedModel>::OPTIONS;
}
