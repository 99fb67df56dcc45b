//! Larder in one screen: the Django original's function caching,
//! invalidation and version examples, on the in-process store (or on Redis
//! when `REDIS_URL` is set). It keeps going when Redis is down, saying what
//! it skipped.
//!
//! ```sh
//! cargo run -p larder-quickstart                                     # in-process store
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run -p larder-quickstart   # Redis
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserData {
    id: u64,
    name: String,
    email: String,
}

/// How many times the "database" was asked: a call that did not ask it was
/// answered by the cache.
static DATABASE_QUERIES: AtomicU32 = AtomicU32::new(0);

/// The "expensive database query" of the Django original's `get_user_data`.
async fn load_user_from_database(user_id: u64) -> UserData {
    DATABASE_QUERIES.fetch_add(1, Ordering::SeqCst);
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

/// Who answered a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// The cache.
    Hit,
    /// The database.
    Miss,
}

/// Calls `get_user_data(user_id)` and says who answered and how long it
/// took; returns both.
async fn call(tier: &str, user_id: u64) -> (Answer, Duration) {
    let asked = DATABASE_QUERIES.load(Ordering::SeqCst);
    let started = Instant::now();
    let user = get_user_data(user_id).await;
    let took = started.elapsed();
    let answer = if DATABASE_QUERIES.load(Ordering::SeqCst) > asked {
        Answer::Miss
    } else {
        Answer::Hit
    };
    let answered_by = match answer {
        Answer::Miss => "MISS  the database answered".to_owned(),
        Answer::Hit => format!("HIT   {tier} answered"),
    };
    println!(
        "get_user_data({user_id}) -> {} <{}>: {answered_by} in {:.2} ms",
        user.name,
        user.email,
        took.as_secs_f64() * 1000.0
    );
    (answer, took)
}

/// Prints what an invalidation did, or that it was skipped and why.
fn report<T: std::fmt::Display>(what: &str, result: larder::Result<T>) {
    match result {
        Ok(outcome) => println!("{what} -> {outcome}"),
        Err(err) => println!("{what} -> skipped: {err}"),
    }
}

#[tokio::main]
async fn main() {
    // REDIS_URL, LARDER_PREFIX, LARDER_VERSION, … (see the README).
    let cache = match larder::init_from_env().await {
        Ok(cache) => cache,
        Err(err) => {
            println!("Larder could not start: {err}");
            println!("(nothing else was run: fix the setting above and run again)");
            return;
        }
    };
    let tier = match cache.config().redis_url() {
        Some(url) => format!("Redis at {url}"),
        None => "the in-process store".to_owned(),
    };
    println!(
        "Larder quickstart: caching in {tier}, version {:?}",
        cache.config().version()
    );
    // Reads and writes fail open (a store failure is a miss, logged);
    // invalidations report failures, so one tells whether the store is up.
    let probe = larder::delete_cached_data("quickstart:probe").await;
    let up = probe.is_ok();
    if let Err(err) = probe {
        // The error says why in words: refused, wrong password, unknown
        // database or host, timeout (`Error::is_auth_failure` and its kin
        // tell the cause to code).
        println!("{tier} is not answering: {err}");
        println!(
            "   the database answers every call (Larder fails open); what needs the store is skipped"
        );
    }

    // Function caching: the first call asks the database, the second does not.
    let first = call(&tier, 42).await;
    let second = call(&tier, 42).await;
    if let ((Answer::Miss, miss), (Answer::Hit, hit)) = (first, second) {
        println!(
            "   the cache saved {:.1} ms on the second call",
            miss.saturating_sub(hit).as_secs_f64() * 1000.0
        );
    }
    if !up {
        println!("invalidation and version examples -> skipped: the store is not answering");
        return;
    }

    // Invalidation, as the Django original writes it.
    let day = Duration::from_secs(86_400);
    for (key, value, ttl) in [
        ("product:1", "Teapot", day),
        ("product:2", "Kettle", day),
        ("user:123:profile", "Ada", Duration::from_secs(600)),
    ] {
        report(
            &format!("set({key:?})"),
            larder::set(key, &value, ttl).await.map(|()| "stored"),
        );
    }
    report(
        "delete_cached_data(\"product:1\")",
        larder::delete_cached_data("product:1").await,
    );
    report(
        "invalidate_cache_pattern(\"product:*\")",
        larder::invalidate_cache_pattern("product:*")
            .await
            .map(|n| format!("{n} removed")),
    );
    report(
        "invalidate_cache_pattern(\"user:123:*\")",
        larder::invalidate_cache_pattern("user:123:*")
            .await
            .map(|n| format!("{n} removed")),
    );

    // A version bump (the Django original's CACHE_VERSION): a cache on the
    // same store with another version sees none of the old entries.
    let version = format!("{}-bumped", cache.config().version());
    let bumped = larder::Config::builder()
        .prefix(cache.config().prefix())
        .version(version.clone())
        .build()
        .map(|config| larder::Cache::with_store(config, std::sync::Arc::clone(cache.store())));
    let seen: larder::Result<Option<UserData>> = match (bumped, get_user_data_key(42)) {
        (Ok(bumped), Ok(key)) => bumped.get(&key).await,
        (Err(err), _) | (_, Err(err)) => Err(err),
    };
    report(
        &format!("version {version:?} reads user 42's entry"),
        seen.map(|found| match found {
            Some(_) => "found (unexpected)",
            None => "not found: a version bump makes every old entry a miss, with no scan",
        }),
    );

    // Dropping one function result; the next call asks the database again.
    report(
        "get_user_data_invalidate(42)",
        get_user_data_invalidate(42).await,
    );
    call(&tier, 42).await;
}
