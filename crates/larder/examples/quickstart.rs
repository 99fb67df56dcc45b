//! Larder in one screen: the Django original's function caching, invalidation and
//! version examples on the embedded default (or on Redis when `REDIS_URL`
//! is set).
//!
//! ```sh
//! cargo run --example quickstart                         # in-process store
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run --example quickstart
//! ```

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserData {
    id: u64,
    name: String,
    email: String,
}

/// The "expensive database query" of the Django original's `get_user_data`.
async fn load_user_from_database(user_id: u64) -> UserData {
    tokio::time::sleep(Duration::from_millis(50)).await;
    UserData {
        id: user_id,
        name: format!("User {user_id}"),
        email: format!("user{user_id}@example.com"),
    }
}

/// The Django original's `@cache_function(namespace='user_data', ttl=3600)`.
#[larder::cached(namespace = "user_data", ttl = 3600)]
async fn get_user_data(user_id: u64) -> UserData {
    load_user_from_database(user_id).await
}

#[tokio::main]
async fn main() -> larder::Result<()> {
    // Shows Larder's start-up line: which store it uses.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    // REDIS_URL, LARDER_PREFIX, LARDER_VERSION, … (see the README).
    let cache = larder::init_from_env().await?;
    println!("cache: {cache:?}");

    for round in 1..=2 {
        let started = Instant::now();
        let user = get_user_data(42).await;
        println!(
            "round {round}: {} <{}> in {:?}",
            user.name,
            user.email,
            started.elapsed()
        );
    }

    // Invalidation, as the Django original writes it.
    larder::set("product:1", &"Teapot", Duration::from_secs(86_400)).await?;
    larder::set("product:2", &"Kettle", Duration::from_secs(86_400)).await?;
    larder::set("user:123:profile", &"Ada", Duration::from_secs(600)).await?;
    println!(
        "delete_cached_data(\"product:1\") -> {}",
        larder::delete_cached_data("product:1").await?
    );
    println!(
        "invalidate_cache_pattern(\"product:*\") -> {} removed",
        larder::invalidate_cache_pattern("product:*").await?
    );
    println!(
        "invalidate_cache_pattern(\"user:123:*\") -> {} removed",
        larder::invalidate_cache_pattern("user:123:*").await?
    );
    get_user_data_invalidate(42).await?;
    Ok(())
}
