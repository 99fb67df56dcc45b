mod connection;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use redis::aio::MultiplexedConnection;

use self::connection::{Connection, Home};
use super::{Lease, LeaseKeys, LeaseRead, Store, StoreEntry, StoreFuture, Subscription};
use crate::config::RedisUrl;
use crate::runtime;
use crate::{Error, ErrorKind, Result};

/// Sets every key with its own TTL in one command (`KEYS` = keys, `ARGV` =
/// value, ttl-ms pairs).
/// `KEYS`: the values' keys, then leases to void; `ARGV`: value, ttl-ms
/// pairs. The leases go in the same step as the writes, so no computation
/// that began before this write can fill over it.
const SET_MANY: &str = r"
local n = #ARGV / 2
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[2 * i - 1], 'PX', ARGV[2 * i])
end
for i = n + 1, #KEYS do
  redis.call('DEL', KEYS[i])
end
return n
";

/// `KEYS`: value, lease, epoch. `ARGV`: token, lease ms. Returns
/// `{1, value}`, `{2, epoch}` (granted) or `{3}` (held).
/// A lease from an older epoch (voided by a pattern invalidation) counts as
/// free.
const GET_OR_LEASE: &str = r"
local value = redis.call('GET', KEYS[1])
if value then return {1, value} end
local epoch = redis.call('GET', KEYS[3]) or '0'
local held = redis.call('GET', KEYS[2])
if held and string.match(held, ':(%d+)$') == epoch then return {3} end
redis.call('SET', KEYS[2], ARGV[1] .. ':' .. epoch, 'PX', ARGV[2])
return {2, epoch}
";

/// `KEYS`: lease, epoch. `ARGV`: token, lease ms, force (`1`/`0`). Returns
/// the epoch, or nil if held and not forced.
const TAKE_LEASE: &str = r"
local epoch = redis.call('GET', KEYS[2]) or '0'
if ARGV[3] ~= '1' then
  local held = redis.call('GET', KEYS[1])
  if held and string.match(held, ':(%d+)$') == epoch then return false end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. epoch, 'PX', ARGV[2])
return epoch
";

/// `KEYS`: value, lease, epoch. `ARGV`: token, epoch, value, ttl ms. Stores
/// only for the lease holder of a current epoch; returns 1 if it stored.
const FILL_LEASED: &str = r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] .. ':' .. ARGV[2] then return 0 end
if (redis.call('GET', KEYS[3]) or '0') ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
redis.call('DEL', KEYS[2])
return 1
";

/// `KEYS`: lease. `ARGV`: `token:epoch`. Deletes the lease if it is still
/// that one.
const RELEASE_LEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
";

/// The scripts, loaded once per store.
struct Scripts {
    release_lease: redis::Script,
    set_many: redis::Script,
    get_or_lease: redis::Script,
    take_lease: redis::Script,
    fill_leased: redis::Script,
}

/// Redis (standalone) through one reconnecting, multiplexed connection.
///
/// The connection is made, and remade after a failure, in the background, so
/// a Redis that is down at start-up or restarts later is picked up again
/// without restarting the process. A connection whose runtime shut down is
/// remade on the next caller's runtime and the command retried once, so a
/// cache outlives the runtime that created it. Blocking callers get their
/// own connection on Larder's I/O thread.
#[derive(Clone)]
pub struct RedisStore {
    url: RedisUrl,
    client: redis::Client,
    connect_timeout: Duration,
    response_timeout: Option<Duration>,
    /// For async callers: driven on the caller's runtime.
    connection: Arc<Connection>,
    /// For blocking callers: driven on Larder's I/O thread; made on first
    /// use.
    blocking: Arc<OnceLock<Connection>>,
    scripts: Arc<Scripts>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store for `url`; starts connecting in the background at once.
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
        let connection = Connection::new(
            Home::Caller,
            url.clone(),
            client.clone(),
            connect_timeout,
            response_timeout,
        );
        Ok(Self {
            url: url.clone(),
            client,
            connect_timeout,
            response_timeout,
            connection: Arc::new(connection),
            blocking: Arc::default(),
            scripts: Arc::new(Scripts {
                set_many: redis::Script::new(SET_MANY),
                get_or_lease: redis::Script::new(GET_OR_LEASE),
                take_lease: redis::Script::new(TAKE_LEASE),
                fill_leased: redis::Script::new(FILL_LEASED),
                release_lease: redis::Script::new(RELEASE_LEASE),
            }),
        })
    }

    /// The URL this store talks to (its `Display` hides the password).
    pub fn url(&self) -> &RedisUrl {
        &self.url
    }

    /// Sends `PING`: waits for the first connection attempt.
    ///
    /// # Errors
    /// The store error if Redis does not answer.
    pub async fn ping(&self) -> Result<()> {
        self.run("PING", |mut conn| async move {
            redis::cmd("PING").exec_async(&mut conn).await
        })
        .await
    }

    /// The connection for this caller: blocking callers (inside
    /// [`crate::runtime::block_on`]) use the one on the I/O thread.
    fn connection(&self) -> &Connection {
        if runtime::is_blocking() {
            self.blocking.get_or_init(|| {
                Connection::new(
                    Home::Io,
                    self.url.clone(),
                    self.client.clone(),
                    self.connect_timeout,
                    self.response_timeout,
                )
            })
        } else {
            &self.connection
        }
    }

    /// Runs one command (or pipeline) on the current connection. If the
    /// connection turns out to be gone (its runtime shut down, or Redis
    /// closed it), it is dropped and the command is sent once more on a new
    /// one; a second failure is returned.
    async fn run<T, F, Fut>(&self, what: &'static str, command: F) -> Result<T>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let connection = self.connection();
        let (generation, conn) = connection.get().await?;
        match command(conn).await {
            Ok(value) => Ok(value),
            Err(err) if connection.on_error(generation, &err) => {
                let (generation, conn) = connection.get().await?;
                command(conn).await.map_err(|err| {
                    connection.on_error(generation, &err);
                    self.failed(what, err)
                })
            }
            Err(err) => Err(self.failed(what, err)),
        }
    }

    fn failed(&self, what: &'static str, err: redis::RedisError) -> Error {
        let kind = if err.is_timeout() {
            ErrorKind::Timeout
        } else if err.is_io_error()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.is_unrecoverable_error()
        {
            ErrorKind::Store
        } else {
            // Redis answered: WRONGTYPE, OOM, NOPERM, an out-of-range value…
            ErrorKind::Rejected
        };
        Error::new(kind, format!("{what} on {} failed", self.url)).with_source(err)
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

/// One element of a script's reply.
fn parse<T: redis::FromRedisValue>(value: Option<redis::Value>, what: &str) -> Result<T> {
    let value =
        value.ok_or_else(|| Error::new(ErrorKind::Store, format!("the {what} reply is short")))?;
    redis::from_redis_value(value).map_err(|e| malformed(what, e))
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
        self.run("GET", move |mut conn| async move {
            redis::cmd("GET").arg(key).query_async(&mut conn).await
        })
        .boxed()
    }

    fn mget<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            self.run("MGET", |mut conn| async move {
                redis::cmd("MGET").arg(keys).query_async(&mut conn).await
            })
            .await
        }
        .boxed()
    }

    fn set<'a>(&'a self, key: &'a str, value: Bytes, ttl: Duration) -> StoreFuture<'a, ()> {
        async move {
            let value = &value;
            self.run("SET", move |mut conn| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value.as_ref())
                    .arg("PX")
                    .arg(millis(ttl))
                    .exec_async(&mut conn)
                    .await
            })
            .await
        }
        .boxed()
    }

    fn mset<'a>(&'a self, entries: &'a [StoreEntry]) -> StoreFuture<'a, ()> {
        async move {
            if entries.is_empty() {
                return Ok(());
            }
            let mut invocation = self.scripts.set_many.prepare_invoke();
            for entry in entries {
                invocation
                    .key(&entry.key)
                    .arg(entry.value.as_ref())
                    .arg(millis(entry.ttl));
            }
            for lease in entries.iter().filter_map(|e| e.void_lease.as_ref()) {
                invocation.key(lease);
            }
            let invocation = &invocation;
            self.run("set_many script", |mut conn| async move {
                invocation.invoke_async::<u64>(&mut conn).await.map(drop)
            })
            .await
        }
        .boxed()
    }

    fn unlink<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, u64> {
        async move {
            if keys.is_empty() {
                return Ok(0);
            }
            self.run("UNLINK", |mut conn| async move {
                redis::cmd("UNLINK").arg(keys).query_async(&mut conn).await
            })
            .await
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
            let scan = |cursor: u64| {
                let mut cmd = redis::cmd("SCAN");
                cmd.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(batch);
                cmd
            };
            let first = &scan(0);
            let (mut cursor, mut keys): (u64, Vec<String>) = bounded(
                deadline,
                pattern,
                self.run("SCAN", |mut conn| async move {
                    first.query_async(&mut conn).await
                }),
            )
            .await?;
            let mut removed = 0_u64;
            while cursor != 0 {
                // The UNLINK of this batch and the SCAN for the next travel
                // in one round trip.
                let mut pipe = redis::pipe();
                let had_keys = !keys.is_empty();
                if had_keys {
                    pipe.cmd("UNLINK").arg(&keys);
                }
                pipe.add_command(scan(cursor));
                let pipe = &pipe;
                let replies: Vec<redis::Value> = bounded(
                    deadline,
                    pattern,
                    self.run("SCAN/UNLINK", |mut conn| async move {
                        pipe.query_async(&mut conn).await
                    }),
                )
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
            if !keys.is_empty() {
                let keys = &keys;
                removed += bounded(
                    deadline,
                    pattern,
                    self.run("UNLINK", |mut conn| async move {
                        redis::cmd("UNLINK")
                            .arg(keys)
                            .query_async::<u64>(&mut conn)
                            .await
                    }),
                )
                .await?;
            }
            Ok(removed)
        }
        .boxed()
    }

    fn get_or_lease<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        token: u64,
        ttl: Duration,
    ) -> StoreFuture<'a, LeaseRead> {
        async move {
            let mut invocation = self.scripts.get_or_lease.prepare_invoke();
            invocation
                .key(keys.value)
                .key(keys.lease)
                .key(keys.epoch)
                .arg(token)
                .arg(millis(ttl));
            let invocation = &invocation;
            let reply: Vec<redis::Value> = self
                .run("get_or_lease script", |mut conn| async move {
                    invocation.invoke_async(&mut conn).await
                })
                .await?;
            let mut reply = reply.into_iter();
            let tag: u8 = parse(reply.next(), "get_or_lease")?;
            match tag {
                1 => Ok(LeaseRead::Hit(parse(reply.next(), "get_or_lease")?)),
                2 => {
                    let epoch: u64 = parse(reply.next(), "get_or_lease")?;
                    Ok(LeaseRead::Granted(Lease { token, epoch }))
                }
                _ => Ok(LeaseRead::Held),
            }
        }
        .boxed()
    }

    fn take_lease<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        token: u64,
        ttl: Duration,
        force: bool,
    ) -> StoreFuture<'a, Option<Lease>> {
        async move {
            let mut invocation = self.scripts.take_lease.prepare_invoke();
            invocation
                .key(keys.lease)
                .key(keys.epoch)
                .arg(token)
                .arg(millis(ttl))
                .arg(u8::from(force));
            let invocation = &invocation;
            let epoch: Option<u64> = self
                .run("take_lease script", |mut conn| async move {
                    invocation.invoke_async(&mut conn).await
                })
                .await?;
            Ok(epoch.map(|epoch| Lease { token, epoch }))
        }
        .boxed()
    }

    fn fill_leased<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        lease: Lease,
        value: Bytes,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        async move {
            let mut invocation = self.scripts.fill_leased.prepare_invoke();
            invocation
                .key(keys.value)
                .key(keys.lease)
                .key(keys.epoch)
                .arg(lease.token)
                .arg(lease.epoch)
                .arg(value.as_ref())
                .arg(millis(ttl));
            let invocation = &invocation;
            let stored: u8 = self
                .run("fill_leased script", |mut conn| async move {
                    invocation.invoke_async(&mut conn).await
                })
                .await?;
            Ok(stored == 1)
        }
        .boxed()
    }

    fn release_lease<'a>(&'a self, keys: LeaseKeys<'a>, lease: Lease) -> StoreFuture<'a, ()> {
        async move {
            let mut invocation = self.scripts.release_lease.prepare_invoke();
            invocation
                .key(keys.lease)
                .arg(Lease::encoded(lease.token, lease.epoch));
            let invocation = &invocation;
            self.run("release_lease script", |mut conn| async move {
                invocation.invoke_async::<u8>(&mut conn).await.map(drop)
            })
            .await
        }
        .boxed()
    }

    fn bump_epoch<'a>(&'a self, epoch_key: &'a str) -> StoreFuture<'a, ()> {
        self.run("INCR", move |mut conn| async move {
            redis::cmd("INCR")
                .arg(epoch_key)
                .exec_async(&mut conn)
                .await
        })
        .boxed()
    }

    fn publish<'a>(&'a self, channel: &'a str, message: Bytes) -> StoreFuture<'a, ()> {
        async move {
            let message = &message;
            self.run("PUBLISH", move |mut conn| async move {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(message.as_ref())
                    .exec_async(&mut conn)
                    .await
            })
            .await
        }
        .boxed()
    }

    fn subscribe<'a>(&'a self, channel: &'a str) -> StoreFuture<'a, Subscription> {
        let client = self.client.clone();
        let name = channel.to_owned();
        async move {
            // Made on the I/O runtime, so the subscription outlives the
            // caller's runtime like every other connection.
            let deadline = self.connect_timeout;
            let connected = runtime::io()
                .spawn(async move {
                    tokio::time::timeout(deadline, async {
                        let mut pubsub = client.get_async_pubsub().await?;
                        pubsub.subscribe(&name).await?;
                        Ok::<_, redis::RedisError>(pubsub)
                    })
                    .await
                })
                .await
                .map_err(|e| {
                    Error::new(ErrorKind::Store, "the SUBSCRIBE task failed").with_source(e)
                })?;
            let pubsub = connected
                .map_err(|_| {
                    Error::new(
                        ErrorKind::Timeout,
                        format!("SUBSCRIBE on {} exceeded the connect timeout", self.url),
                    )
                })?
                .map_err(|err| self.failed("SUBSCRIBE", err))?;
            let messages = pubsub
                .into_on_message()
                .map(|msg| Bytes::copy_from_slice(msg.get_payload_bytes()));
            Ok(Subscription::new(channel, messages.boxed()))
        }
        .boxed()
    }

    fn reset(&self) {
        self.connection.reset();
        if let Some(blocking) = self.blocking.get() {
            blocking.reset();
        }
    }
}
