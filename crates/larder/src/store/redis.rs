use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Store, StoreEntry, StoreFuture, Subscription};
use crate::config::RedisUrl;
use crate::{Error, ErrorKind, Result};

/// Sets every key with its own TTL in one command (`KEYS` = keys, `ARGV` =
/// value, ttl-ms pairs).
const SET_MANY: &str = r"
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[2 * i - 1], 'PX', ARGV[2 * i])
end
return #KEYS
";

/// Redis (standalone) through one reconnecting, multiplexed connection.
///
/// The connection is made lazily and remade in the background after a
/// failure, so a Redis that is down at start-up or restarts later is picked
/// up again without restarting the process.
#[derive(Clone)]
pub struct RedisStore {
    url: RedisUrl,
    client: redis::Client,
    connection: ConnectionManager,
    set_many: redis::Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store for `url`; connects on first use. Must be called inside a
    /// Tokio runtime.
    ///
    /// `connect_timeout` bounds each connection attempt and
    /// `response_timeout`, if any, each command. [`Cache`](crate::Cache)
    /// passes `None`: it bounds every call with its own deadline, and a
    /// second timer per command would only cost CPU on every hit.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] if the URL cannot be used by this build.
    pub fn new(
        url: &RedisUrl,
        connect_timeout: Duration,
        response_timeout: Option<Duration>,
    ) -> Result<Self> {
        let client = redis::Client::open(url.expose())
            .map_err(|e| Error::config(format!("cannot use REDIS_URL `{url}`")).with_source(e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(response_timeout)
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| Error::config(format!("cannot use REDIS_URL `{url}`")).with_source(e))?;
        Ok(Self {
            url: url.clone(),
            client,
            connection,
            set_many: redis::Script::new(SET_MANY),
        })
    }

    /// The URL this store talks to (its `Display` hides the password).
    pub fn url(&self) -> &RedisUrl {
        &self.url
    }

    fn failed(&self, what: &'static str) -> impl FnOnce(redis::RedisError) -> Error + '_ {
        move |err| {
            let kind = if err.is_timeout() {
                ErrorKind::Timeout
            } else {
                ErrorKind::Store
            };
            Error::new(kind, format!("{what} on {} failed", self.url)).with_source(err)
        }
    }
}

/// Runs one round trip of a pattern invalidation under `deadline`.
async fn bounded<T>(
    deadline: Duration,
    pattern: &str,
    round_trip: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(deadline, round_trip)
        .await
        .unwrap_or_else(|_| {
            Err(Error::new(
                ErrorKind::Timeout,
                format!("a SCAN/UNLINK round trip for `{pattern}` exceeded {deadline:?}"),
            ))
        })
}

fn malformed(what: &str, err: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::new(ErrorKind::Store, format!("unexpected {what} reply")).with_source(err)
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl Store for RedisStore {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Bytes>> {
        let mut conn = self.connection.clone();
        async move {
            redis::cmd("GET")
                .arg(key)
                .query_async(&mut conn)
                .await
                .map_err(self.failed("GET"))
        }
        .boxed()
    }

    fn mget<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        let mut conn = self.connection.clone();
        async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            redis::cmd("MGET")
                .arg(keys)
                .query_async(&mut conn)
                .await
                .map_err(self.failed("MGET"))
        }
        .boxed()
    }

    fn set<'a>(&'a self, key: &'a str, value: Bytes, ttl: Duration) -> StoreFuture<'a, ()> {
        let mut conn = self.connection.clone();
        async move {
            redis::cmd("SET")
                .arg(key)
                .arg(value.as_ref())
                .arg("PX")
                .arg(millis(ttl))
                .exec_async(&mut conn)
                .await
                .map_err(self.failed("SET"))
        }
        .boxed()
    }

    fn mset<'a>(&'a self, entries: &'a [StoreEntry]) -> StoreFuture<'a, ()> {
        let mut conn = self.connection.clone();
        async move {
            if entries.is_empty() {
                return Ok(());
            }
            let mut invocation = self.set_many.prepare_invoke();
            for entry in entries {
                invocation
                    .key(&entry.key)
                    .arg(entry.value.as_ref())
                    .arg(millis(entry.ttl));
            }
            invocation
                .invoke_async::<u64>(&mut conn)
                .await
                .map(drop)
                .map_err(self.failed("set_many script"))
        }
        .boxed()
    }

    fn unlink<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, u64> {
        let mut conn = self.connection.clone();
        async move {
            if keys.is_empty() {
                return Ok(0);
            }
            redis::cmd("UNLINK")
                .arg(keys)
                .query_async(&mut conn)
                .await
                .map_err(self.failed("UNLINK"))
        }
        .boxed()
    }

    fn unlink_pattern<'a>(
        &'a self,
        pattern: &'a str,
        batch: usize,
        deadline: Duration,
    ) -> StoreFuture<'a, u64> {
        async move {
            let mut conn = self.connection.clone();
            let scan = |cursor: u64| {
                let mut cmd = redis::cmd("SCAN");
                cmd.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(batch);
                cmd
            };
            let mut removed = 0_u64;
            let (mut cursor, mut keys): (u64, Vec<String>) = bounded(deadline, pattern, async {
                scan(0)
                    .query_async(&mut conn)
                    .await
                    .map_err(self.failed("SCAN"))
            })
            .await?;
            loop {
                if cursor == 0 {
                    if !keys.is_empty() {
                        removed += bounded(deadline, pattern, async {
                            redis::cmd("UNLINK")
                                .arg(&keys)
                                .query_async::<u64>(&mut conn)
                                .await
                                .map_err(self.failed("UNLINK"))
                        })
                        .await?;
                    }
                    return Ok(removed);
                }
                // The UNLINK of this batch and the SCAN for the next travel
                // in one round trip.
                let mut pipe = redis::pipe();
                let had_keys = !keys.is_empty();
                if had_keys {
                    pipe.cmd("UNLINK").arg(&keys);
                }
                pipe.add_command(scan(cursor));
                let replies: Vec<redis::Value> = bounded(deadline, pattern, async {
                    pipe.query_async(&mut conn)
                        .await
                        .map_err(self.failed("SCAN/UNLINK"))
                })
                .await?;
                let mut replies = replies.into_iter();
                if had_keys && let Some(reply) = replies.next() {
                    removed += redis::from_redis_value::<u64>(reply)
                        .map_err(|e| malformed("UNLINK", e))?;
                }
                let next = replies
                    .next()
                    .ok_or_else(|| Error::new(ErrorKind::Store, "the SCAN reply is missing"))?;
                (cursor, keys) = redis::from_redis_value(next).map_err(|e| malformed("SCAN", e))?;
            }
        }
        .boxed()
    }

    fn publish<'a>(&'a self, channel: &'a str, message: Bytes) -> StoreFuture<'a, ()> {
        let mut conn = self.connection.clone();
        async move {
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(message.as_ref())
                .exec_async(&mut conn)
                .await
                .map_err(self.failed("PUBLISH"))
        }
        .boxed()
    }

    fn subscribe<'a>(&'a self, channel: &'a str) -> StoreFuture<'a, Subscription> {
        async move {
            let mut pubsub = self
                .client
                .get_async_pubsub()
                .await
                .map_err(self.failed("SUBSCRIBE connection"))?;
            pubsub
                .subscribe(channel)
                .await
                .map_err(self.failed("SUBSCRIBE"))?;
            let messages = pubsub
                .into_on_message()
                .map(|msg| Bytes::copy_from_slice(msg.get_payload_bytes()));
            Ok(Subscription::new(channel, messages.boxed()))
        }
        .boxed()
    }
}

impl RedisStore {
    /// Sends `PING` (used at start-up to log whether Redis answers).
    ///
    /// # Errors
    /// The store error if Redis does not answer.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.connection.clone();
        redis::cmd("PING")
            .exec_async(&mut conn)
            .await
            .map_err(self.failed("PING"))
    }
}
