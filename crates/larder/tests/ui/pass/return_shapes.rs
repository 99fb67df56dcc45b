use std::time::Duration;

use larder::Expiring;

#[larder::cached(ttl = 60)]
async fn io_result(path: String) -> std::io::Result<usize> {
    Ok(path.len())
}

#[larder::cached(ttl = 60)]
async fn expiring_result(id: u64) -> Result<Expiring<u64>, String> {
    Ok(Expiring::new(id, Duration::from_secs(5)))
}

#[larder::cached(ttl = 60)]
async fn expiring_option(id: u64) -> Option<larder::Expiring<u64>> {
    (id > 0).then(|| Expiring::secs(id, 5))
}

#[larder::cached(ttl = 60, cache_none = true)]
async fn negative(id: u64) -> Option<u64> {
    None.filter(|_: &u64| id > 0)
}

#[larder::cached]
async fn early_return(id: u64) -> Result<u64, String> {
    if id == 0 {
        return Err("zero".into());
    }
    let doubled: u64 = id.checked_mul(2).ok_or("overflow")?;
    Ok(doubled)
}

fn main() {
    larder::init(larder::Cache::in_memory()).unwrap();
    larder::block_on(async {
        let _: std::io::Result<usize> = io_result("a".into()).await;
        let _: Result<u64, String> = expiring_result(1).await;
        let _: Option<u64> = expiring_option(1).await;
        let _: Option<Option<u64>> = negative_peek(1).await.unwrap();
        assert_eq!(early_return(0).await, Err("zero".to_string()));
        assert_eq!(early_return(2).await, Ok(4));
    });
}
