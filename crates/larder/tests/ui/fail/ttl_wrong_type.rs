use std::time::Duration;

const ONE_HOUR: Duration = Duration::from_secs(3600);
const NEGATIVE_TTL: i32 = 30;

#[larder::cached(ttl = ONE_HOUR)]
async fn by_duration(id: u64) -> u64 {
    id
}

#[larder::cached(cache_none = true, none_ttl = NEGATIVE_TTL)]
async fn by_signed(id: u64) -> Option<u64> {
    Some(id)
}

fn main() {}
