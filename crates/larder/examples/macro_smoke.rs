#![allow(missing_docs)]
use std::time::Duration;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UserData { id: u64, name: String }

#[larder::cached(namespace = "user_data", ttl = 3600)]
async fn get_user_data(user_id: u64) -> UserData {
    UserData { id: user_id, name: format!("user {user_id}") }
}

#[larder::cached(namespace = "product_data")]
async fn get_product_data(product_id: u64, ttl: Option<Duration>) -> larder::Expiring<String> {
    let ttl = ttl.unwrap_or(Duration::from_secs(if product_id > 8 { 300 } else { 7200 }));
    larder::Expiring::new(format!("p{product_id}"), ttl)
}

#[larder::cached(namespace = "job_stats", ttl = 3600)]
fn get_job_statistics(job_type: Option<String>) -> Result<u64, String> {
    Ok(job_type.map_or(0, |j| j.len() as u64))
}

#[larder::cached(namespace = "lookup", cache_none = true, none_ttl = 5)]
async fn find(id: u64, #[larder(skip)] _trace: &str) -> Option<u64> {
    (id % 2 == 0).then_some(id)
}

struct Repo { cache: larder::Cache }
impl Repo {
    #[larder::cached(namespace = "repo", ttl = 60, cache = self.cache, key = "{id}")]
    async fn load(&self, id: u64) -> String { format!("row {id}") }
}

#[tokio::main]
async fn main() -> larder::Result<()> {
    larder::init(larder::Cache::in_memory())?;
    println!("{:?}", get_user_data(1).await);
    println!("{:?}", get_user_data_peek(1).await?);
    println!("{:?}", get_product_data(9, None).await);
    println!("{:?}", get_job_statistics(Some("x".into())));
    println!("{:?} {:?}", find(2, "t").await, find(3, "t").await);
    println!("{:?}", find_peek(3).await?);
    let repo = Repo { cache: larder::Cache::in_memory() };
    println!("{:?} {:?}", repo.load(5).await, Repo::load_key(5));
    println!("{:?}", repo.load_peek(5).await?);
    println!("{}", get_user_data_invalidate(1).await?);
    Ok(())
}
