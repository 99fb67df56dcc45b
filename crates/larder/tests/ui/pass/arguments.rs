use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

#[larder::cached(ttl = 60)]
async fn with_duration(id: u64, ttl: Duration) -> u64 {
    id + ttl.as_secs()
}

#[larder::cached(ttl = 60)]
fn with_seconds(id: u64, ttl: Option<u64>) -> u64 {
    id + ttl.unwrap_or(0)
}

#[larder::cached(ttl = 60)]
async fn skipped_and_mut(mut id: u64, #[larder(skip)] trace_id: &str, filters: BTreeMap<String, String>) -> u64 {
    id += filters.len() as u64;
    let _ = trace_id;
    id
}

#[larder::cached(ttl = 60, key = "{user_id}:{section}")]
async fn readable(user_id: u64, section: String) -> String {
    format!("{user_id}/{section}")
}

#[derive(Serialize)]
struct Query<'a> {
    term: &'a str,
}

#[larder::cached(ttl = 60)]
async fn borrowed_args(query: &Query<'_>, tags: &[String]) -> usize {
    query.term.len() + tags.len()
}

#[larder::cached(ttl = 60)]
async fn generic<T: Serialize + Send + Sync>(item: T) -> u64 {
    let _ = item;
    7
}

fn main() {
    larder::init(larder::Cache::in_memory()).unwrap();
    larder::block_on(async {
        assert_eq!(with_duration(1, Duration::from_secs(2)).await, 3);
        assert_eq!(skipped_and_mut(1, "t1", BTreeMap::new()).await, 1);
        assert_eq!(
            readable_key(5, "bio".into()).unwrap(),
            format!("{}.readable:5:bio", module_path!())
        );
        assert_eq!(borrowed_args(&Query { term: "ab" }, &["x".into()]).await, 3);
        assert_eq!(generic("x").await, 7);
    });
    assert_eq!(with_seconds(1, Some(2)), 3);
}
