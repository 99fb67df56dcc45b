mod cause;
mod connection;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use redis::aio::MultiplexedConnection;

use self::cause::classify;
use self::connection::{Connection, Home};
use super::lease::{STAMP_TTL, parse_stamps};
use super::{Grant, Lease, LeaseKeys, LeaseRead, Store, StoreEntry, StoreFuture, Subscription};
use crate::config::RedisUrl;
use crate::error::Cause;
use crate::runtime;
use crate::{Error, ErrorKind, Result};

/// Functions every lease script starts with.
///
/// - `read(key)`: a key of ours; a value of another type is foreign, and
///   is removed (`false`).
/// - `stamps(first, last, nonce, ttl)`: what the stamps `KEYS[first..=last]`
///   hold, as `|s1|s2…`. A missing or foreign stamp (not 1 to 19 digits)
///   gets `nonce` (a fresh random value) when one is given; without one it
///   voids (`nil`). With a nonce, every stamp is kept at least `ttl` ms
///   (an entry recorded under a stamp must not outlive it).
/// - `index(key, member, ttl)`: adds `member` to the tag index `key`, whose
///   expiry is kept at least `ttl` (a foreign key there is replaced).
/// - `live(key, held, seen)`: the milliseconds left of the lease `held`
///   (`token|s1|s2…`) if it was granted under `seen` and expires; else 0.
/// - `announce(waiters, channel, value)`: tells waiting callers, if any (an
///   ACL user without the channel's permission only leaves them polling).
macro_rules! lease_script {
    ($body:expr) => {
        concat!(
            r"
local function read(key)
  local value = redis.pcall('GET', key)
  if type(value) == 'table' then
    redis.call('DEL', key)
    return false
  end
  return value
end
local function stamps(first, last, nonce, ttl)
  -- Gathered in a table and joined once: concatenating in the loop would
  -- copy the growing string each time (quadratic, seconds for 10k stamps).
  local seen = {''}
  for i = first, last do
    local stamp = read(KEYS[i])
    if not stamp or #stamp > 19 or not string.match(stamp, '^%d+$') then
      if not nonce then return nil end
      stamp = nonce
      redis.call('SET', KEYS[i], stamp, 'PX', ttl)
    elseif nonce and redis.call('PTTL', KEYS[i]) < tonumber(ttl) then
      redis.call('PEXPIRE', KEYS[i], ttl)
    end
    seen[#seen + 1] = stamp
  end
  return table.concat(seen, '|')
end
local function live(key, held, seen)
  if not held or not seen then return 0 end
  local token = string.match(held, '^(%d+)|')
  if not token or held ~= token .. seen then return 0 end
  local left = redis.call('PTTL', key)
  if left > 0 then return left end
  return 0
end
local function index(key, member, ttl)
  if type(redis.pcall('SADD', key, member)) == 'table' then
    redis.call('DEL', key)
    redis.call('SADD', key, member)
  end
  if redis.call('PTTL', key) < tonumber(ttl) then redis.call('PEXPIRE', key, ttl) end
end
local function announce(waiters, channel, value)
  if redis.call('EXISTS', waiters) == 1 then
    redis.call('DEL', waiters)
    redis.pcall('PUBLISH', channel, value)
  end
end
",
            $body
        )
    };
}

/// `KEYS`: value, lease, waiters, stamps…. `ARGV`: token, lease ms, nonce,
/// stamp ms. Returns `{1, value, stamps or false}`, `{2, stamps}` (granted)
/// or `{3, ms left}` (held; the caller is marked as waiting).
const GET_OR_LEASE: &str = lease_script!(
    r"
local value = read(KEYS[1])
if value then return {1, value, stamps(4, #KEYS) or false} end
local seen = stamps(4, #KEYS, ARGV[3], ARGV[4])
local left = live(KEYS[2], read(KEYS[2]), seen)
if left > 0 then
  redis.call('SET', KEYS[3], '1', 'PX', left)
  return {3, left}
end
redis.call('SET', KEYS[2], ARGV[1] .. seen, 'PX', ARGV[2])
return {2, seen}
"
);

/// `KEYS`: lease, stamps…. `ARGV`: token, lease ms, force (`1`/`0`), nonce,
/// stamp ms. Returns the stamps if taken, `false` if held and not forced.
const TAKE_LEASE: &str = lease_script!(
    r"
local seen = stamps(2, #KEYS, ARGV[4], ARGV[5])
if ARGV[3] ~= '1' and live(KEYS[1], read(KEYS[1]), seen) > 0 then return false end
redis.call('SET', KEYS[1], ARGV[1] .. seen, 'PX', ARGV[2])
return seen
"
);

/// The server's clock in microseconds since the Unix epoch (exact in a
/// Lua number until the year 2255).
macro_rules! server_micros {
    () => {
        "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    };
}

/// `KEYS`: markers. `ARGV`: ttl ms. Sets each to the server's time (µs).
const SET_MARKERS: &str = concat!(
    server_micros!(),
    r"
for i = 1, #KEYS do redis.call('SET', KEYS[i], now, 'PX', ARGV[1]) end
return 1
"
);

/// `KEYS`: stamps…, markers…, the lease. `ARGV`: nonce, stamp ms, number
/// of stamps, the lease's TTL ms, the oldest grant that may still check
/// markers (ms). `false` if the lease is gone or older than that (a marker
/// may have expired since), or a marker was set since the lease was
/// granted — dated from its TTL left by the server's clock, 1 ms early
/// (PTTL's whole milliseconds can date it up to 1 ms late), so a marker
/// set just before the grant counts too — or a marker is not a time;
/// else the stamps' values, each created if missing.
const STAMPS_UNLESS: &str = lease_script!(concat!(
    server_micros!(),
    r"
local last = tonumber(ARGV[3])
local left = redis.call('PTTL', KEYS[#KEYS])
if left <= 0 then return false end
local age = tonumber(ARGV[4]) - left
if age > tonumber(ARGV[5]) then return false end
local granted = now - (age + 1) * 1000
for i = last + 1, #KEYS - 1 do
  local ok, set = pcall(redis.call, 'GET', KEYS[i])
  if not ok then return false end
  if set then
    if type(set) ~= 'string' or not string.match(set, '^%d+$') or #set > 17 then return false end
    if tonumber(set) >= granted then return false end
  end
end
return stamps(1, last, ARGV[1], ARGV[2])
"
));

/// `KEYS`: stamps…. `ARGV`: nonce, stamp ms. Returns their values, each
/// created if missing.
const STAMPS: &str = lease_script!(
    r"
return stamps(1, #KEYS, ARGV[1], ARGV[2])
"
);

/// `KEYS`: value, lease, waiters, stamps…, indexes…. `ARGV`: token, value,
/// ttl ms, channel, number of stamps. Stores only for the holder of a
/// lease whose stamps are all unchanged, keeps those stamps at least as
/// long as the value, and indexes what it stored;
/// returns 1 if it stored. Releases the lease either way.
const FILL_LEASED: &str = lease_script!(
    r"
local last = 3 + tonumber(ARGV[5])
local seen = stamps(4, last)
local held = read(KEYS[2])
local filled = 0
if seen and held == ARGV[1] .. seen then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  -- The value records these stamps: none may expire before it.
  for i = 4, last do
    if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
  end
  for i = last + 1, #KEYS do index(KEYS[i], KEYS[1], ARGV[3]) end
  filled = 1
end
if held and string.match(held, '^(%d+)|') == ARGV[1] then redis.call('DEL', KEYS[2]) end
announce(KEYS[3], ARGV[4], KEYS[1])
return filled
"
);

/// `KEYS`: value, lease, waiters. `ARGV`: token, channel. Deletes the lease
/// if it is still that token's, and tells waiters.
const RELEASE_LEASE: &str = lease_script!(
    r"
local held = read(KEYS[2])
if held and string.match(held, '^(%d+)|') == ARGV[1] then redis.call('DEL', KEYS[2]) end
announce(KEYS[3], ARGV[2], KEYS[1])
return 1
"
);

/// `KEYS`: tag indexes. `ARGV`: member, ttl ms. Adds `member` to each,
/// replacing a foreign key there: the repair of a plain write whose `SADD`
/// met one (`WRONGTYPE`).
const INDEX: &str = lease_script!(
    r"
for i = 1, #KEYS do index(KEYS[i], ARGV[1], ARGV[2]) end
return 1
"
);

/// `KEYS`: a value. `ARGV`: the tag stamps' key prefix. Returns `{}`
/// without a value, else `{value, s1, s2, …}`: the current values of the
/// stamps the envelope records (`false` when missing), read under the
/// prefix followed by each recorded tag — a hit on an entry with
/// dependencies in one round trip. An envelope it cannot walk (foreign
/// bytes, a layout it does not know) returns `{value}` alone: the caller
/// checks the stamps itself, and its decode rejects what is corrupt.
/// Reads only. The layout walked: a 32-byte head, a `u16` count, then per
/// stamp a `u16` length, the tag, a `u64` (see `envelope::header`).
const GET_STAMPED: &str = r"
local ok, value = pcall(redis.call, 'GET', KEYS[1])
if not ok or not value then return {} end
local reply = {value}
if #value < 34 or string.sub(value, 1, 2) ~= 'LD' or string.byte(value, 3) ~= 2 then
  return reply
end
local count = string.byte(value, 33) + 256 * string.byte(value, 34)
if count > 4096 then return reply end
local at = 35
for i = 1, count do
  if at + 1 > #value then return {value} end
  local len = string.byte(value, at) + 256 * string.byte(value, at + 1)
  at = at + 2
  if at + len + 7 > #value then return {value} end
  local found, stamp = pcall(redis.call, 'GET', ARGV[1] .. string.sub(value, at, at + len - 1))
  if not found then stamp = false end
  reply[#reply + 1] = stamp
  at = at + len + 8
end
return reply
";

/// The scripts, loaded once per store.
struct Scripts {
    get_stamped: redis::Script,
    stamps: redis::Script,
    stamps_unless: redis::Script,
    set_markers: redis::Script,
    index: redis::Script,
    release_lease: redis::Script,
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

/// Builds a [`RedisStore`]: [`RedisStore::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisStoreBuilder {
    url: RedisUrl,
    connect_timeout: Duration,
    response_timeout: Option<Duration>,
    tcp_nodelay: bool,
}

impl RedisStoreBuilder {
    /// Deadline of each connection attempt (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Deadline of each command, if any (default none).
    /// [`Cache`](crate::Cache) sets none: it bounds every call with its own
    /// deadline, and a second timer per command would only cost CPU on
    /// every hit.
    pub fn response_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// `TCP_NODELAY` on every connection (default on; see
    /// [`ConfigBuilder::tcp_nodelay`](crate::config::ConfigBuilder::tcp_nodelay)).
    pub fn tcp_nodelay(mut self, on: bool) -> Self {
        self.tcp_nodelay = on;
        self
    }

    /// The store; starts connecting in the background at once.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] if the URL cannot be used by this build.
    pub fn build(self) -> Result<RedisStore> {
        RedisStore::open(self)
    }
}

impl RedisStore {
    /// `mset`, with `publish` (a channel and a message) sent in the same
    /// pipeline, after the writes.
    fn write<'a>(
        &'a self,
        entries: &'a [StoreEntry],
        publish: Option<(&'a str, Bytes)>,
    ) -> StoreFuture<'a, ()> {
        async move {
            if entries.is_empty() {
                return Ok(());
            }
            let publish = publish.as_ref();
            // Plain commands in one pipeline, not a script: each is O(1),
            // so no batch size can block Redis. A lease goes before its
            // value, so no fill that began before this write lands after it.
            let mut pipe = redis::pipe();
            for entry in entries {
                if let Some(lease) = &entry.void_lease {
                    pipe.cmd("DEL").arg(lease).ignore();
                }
                pipe.cmd("SET")
                    .arg(&entry.key)
                    .arg(entry.value.as_ref())
                    .arg("PX")
                    .arg(millis(entry.ttl))
                    .ignore();
                for index in &entry.indexes {
                    // An index outlives its members: set an expiry if it
                    // has none, lengthen it if it is shorter.
                    pipe.cmd("SADD").arg(index).arg(&entry.key).ignore();
                    for when in ["NX", "GT"] {
                        pipe.cmd("PEXPIRE")
                            .arg(index)
                            .arg(millis(entry.ttl))
                            .arg(when)
                            .ignore();
                    }
                }
            }
            if let Some((channel, message)) = publish {
                pipe.cmd("PUBLISH")
                    .arg(*channel)
                    .arg(message.as_ref())
                    .ignore();
            }
            let (pipe, index) = (&pipe, &self.scripts.index);
            self.run("SET", |mut conn| async move {
                match pipe.exec_async(&mut conn).await {
                    // Only a `SADD` answers WRONGTYPE here (`SET` replaces
                    // any type), and the pipeline ran on: the values are
                    // stored. A foreign key sits where a tag index goes;
                    // replace it, as the lease scripts do, rather than fail
                    // every write of the tag's members until it is gone.
                    Err(err) if only_wrong_type(&err) => {
                        for entry in entries.iter().filter(|e| !e.indexes.is_empty()) {
                            let mut repair = index.prepare_invoke();
                            repair
                                .key(&entry.indexes)
                                .arg(&entry.key)
                                .arg(millis(entry.ttl));
                            repair.invoke_async::<()>(&mut conn).await?;
                        }
                        Ok(())
                    }
                    done => done,
                }
            })
            .await
        }
        .boxed()
    }

    /// A store for `url`, to configure before it connects.
    pub fn builder(url: &RedisUrl) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.clone(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: None,
            tcp_nodelay: true,
        }
    }

    /// A store for `url` with `TCP_NODELAY` on; starts connecting in the
    /// background at once. `connect_timeout` bounds each connection
    /// attempt and `response_timeout`, if any, each command (see
    /// [`RedisStore::builder`] for the other settings).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] if the URL cannot be used by this build.
    pub fn new(
        url: &RedisUrl,
        connect_timeout: Duration,
        response_timeout: Option<Duration>,
    ) -> Result<Self> {
        Self::builder(url)
            .connect_timeout(connect_timeout)
            .response_timeout(response_timeout)
            .build()
    }

    fn open(settings: RedisStoreBuilder) -> Result<Self> {
        let RedisStoreBuilder {
            url,
            connect_timeout,
            response_timeout,
            tcp_nodelay,
        } = settings;
        let url = &url;
        let unusable = |e| Error::config(format!("cannot use REDIS_URL `{url}`")).with_source(e);
        let info =
            redis::IntoConnectionInfo::into_connection_info(url.expose()).map_err(unusable)?;
        let tcp = info.tcp_settings().clone().set_nodelay(tcp_nodelay);
        let client = redis::Client::open(info.set_tcp_settings(tcp)).map_err(unusable)?;
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
                get_stamped: redis::Script::new(GET_STAMPED),
                stamps: redis::Script::new(STAMPS),
                stamps_unless: redis::Script::new(STAMPS_UNLESS),
                set_markers: redis::Script::new(SET_MARKERS),
                index: redis::Script::new(INDEX),
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

    /// Sends `PING`, waiting for a connection attempt under way. The attempt
    /// and the `PING` are each bounded by the connect timeout.
    ///
    /// # Errors
    /// The store error if Redis cannot be reached or does not answer; its
    /// `is_*` helpers ([`Error::is_auth_failure`], …) tell why, and its
    /// source is the underlying error.
    pub async fn ping(&self) -> Result<()> {
        let timeout = self.connect_timeout;
        self.run("PING", |mut conn| async move {
            let ping = redis::cmd("PING");
            tokio::time::timeout(timeout, ping.exec_async(&mut conn))
                .await
                .unwrap_or_else(|_| Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()))
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
        let cause = classify(&err);
        let kind = if err.is_timeout() {
            ErrorKind::Timeout
        } else if err.is_io_error()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.is_unrecoverable_error()
            // NOAUTH: every command will be refused, as if Redis were down.
            || cause == Cause::Auth
        {
            ErrorKind::Store
        } else {
            // Redis answered: WRONGTYPE, OOM, NOPERM, an out-of-range value…
            ErrorKind::Rejected
        };
        // A timeout here is a command's, not the connect timeout the words
        // of `Cause::Timeout` speak of; the kind says it already.
        let detail = match cause {
            Cause::Other | Cause::Timeout => format!("{what} on {} failed", self.url),
            cause => format!("{what} on {} failed: {}", self.url, cause.describe()),
        };
        Error::new(kind, detail).with_cause(cause).with_source(err)
    }
}

/// Runs one round trip of a pattern or index invalidation under `deadline`.
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

/// A grant of `token` under the stamps `seen` (`|s1|s2…`).
fn grant(token: u64, seen: &str) -> Result<Grant> {
    let stamps = parse_stamps(seen)
        .ok_or_else(|| Error::new(ErrorKind::Store, "unexpected stamps in a lease reply"))?;
    Ok(Grant {
        lease: Lease { token },
        stamps,
    })
}

/// A fresh random stamp value: at most 19 decimal digits (below 2^63, so
/// every stamp the scripts accept parses as a `u64`), never 0.
/// Whether every failure in `err` (one command's, or a pipeline's) is a
/// `WRONGTYPE`.
fn only_wrong_type(err: &redis::RedisError) -> bool {
    err.clone().into_server_errors().is_some_and(|failures| {
        !failures.is_empty() && failures.iter().all(|(_, e)| e.code() == "WRONGTYPE")
    })
}

fn nonce() -> u64 {
    (rand::random::<u64>() >> 1) | 1
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

    fn get_with_ttl<'a>(
        &'a self,
        key: &'a str,
    ) -> StoreFuture<'a, Option<(Bytes, Option<Duration>)>> {
        async move {
            let mut pipe = redis::pipe();
            pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
            let pipe = &pipe;
            let (value, pttl): (Option<Bytes>, i64) = self
                .run("GET/PTTL", |mut conn| async move {
                    pipe.query_async(&mut conn).await
                })
                .await?;
            // -1: no expiry; -2: gone between the two (then GET saw none
            // or the last of it: no time left).
            let ttl = match pttl {
                -1 => None,
                ms => Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
            };
            Ok(value.map(|value| (value, ttl)))
        }
        .boxed()
    }

    fn get_stamped<'a>(
        &'a self,
        key: &'a str,
        stamp_prefix: &'a str,
    ) -> StoreFuture<'a, Option<super::Stamped>> {
        async move {
            let mut invocation = self.scripts.get_stamped.prepare_invoke();
            invocation.key(key).arg(stamp_prefix);
            let invocation = &invocation;
            let mut reply: Vec<Option<Bytes>> = self
                .run("get_stamped script", |mut conn| async move {
                    invocation.invoke_async(&mut conn).await
                })
                .await?;
            if reply.is_empty() {
                return Ok(None);
            }
            let stamps = reply.split_off(1);
            let Some(Some(value)) = reply.pop() else {
                return Err(Error::new(
                    ErrorKind::Store,
                    "unexpected reply of the get_stamped script",
                ));
            };
            Ok(Some((value, Some(stamps))))
        }
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
        self.write(entries, None)
    }

    fn mset_and_publish<'a>(
        &'a self,
        entries: &'a [StoreEntry],
        channel: &'a str,
        message: Bytes,
    ) -> StoreFuture<'a, ()> {
        self.write(entries, Some((channel, message)))
    }

    fn unlink_entries<'a>(
        &'a self,
        values: &'a [String],
        leases: &'a [String],
    ) -> StoreFuture<'a, u64> {
        async move {
            if values.is_empty() || leases.is_empty() {
                self.unlink(leases).await?;
                return self.unlink(values).await;
            }
            let mut pipe = redis::pipe();
            pipe.cmd("UNLINK").arg(leases).ignore();
            pipe.cmd("UNLINK").arg(values);
            let pipe = &pipe;
            let (removed,): (u64,) = self
                .run("UNLINK", |mut conn| async move {
                    pipe.query_async(&mut conn).await
                })
                .await?;
            Ok(removed)
        }
        .boxed()
    }

    fn unlink_entries_and_publish<'a>(
        &'a self,
        values: &'a [String],
        leases: &'a [String],
        channel: &'a str,
        message: Bytes,
    ) -> StoreFuture<'a, u64> {
        async move {
            let mut pipe = redis::pipe();
            if !leases.is_empty() {
                pipe.cmd("UNLINK").arg(leases).ignore();
            }
            if values.is_empty() {
                pipe.cmd("ECHO").arg(0);
            } else {
                pipe.cmd("UNLINK").arg(values);
            }
            pipe.cmd("PUBLISH")
                .arg(channel)
                .arg(message.as_ref())
                .ignore();
            let pipe = &pipe;
            let (removed,): (u64,) = self
                .run("UNLINK/PUBLISH", |mut conn| async move {
                    pipe.query_async(&mut conn).await
                })
                .await?;
            Ok(removed)
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

    fn unlink_index<'a>(
        &'a self,
        index: &'a str,
        batch: usize,
        deadline: Duration,
    ) -> StoreFuture<'a, u64> {
        async move {
            let sscan = |cursor: u64| {
                let mut cmd = redis::cmd("SSCAN");
                cmd.arg(index).arg(cursor).arg("COUNT").arg(batch);
                cmd
            };
            let first = &sscan(0);
            let scanned = bounded(
                deadline,
                index,
                self.run("SSCAN", |mut conn| async move {
                    first.query_async(&mut conn).await
                }),
            )
            .await;
            let (mut cursor, mut members): (u64, Vec<String>) = match scanned {
                // Not a set (foreign bytes): it indexes nothing of ours.
                // Read-time stamps keep the tag's entries out of reach.
                Err(err) if err.kind() == ErrorKind::Rejected => {
                    let foreign = [index.to_owned()];
                    bounded(deadline, index, self.unlink(&foreign)).await?;
                    return Ok(0);
                }
                scanned => scanned?,
            };
            let mut removed = 0_u64;
            loop {
                // This batch's removal and the next batch's scan travel in
                // one round trip. Members leave the index one by one (not
                // the whole index at the end): keys that join it meanwhile
                // stay indexed.
                let mut pipe = redis::pipe();
                if !members.is_empty() {
                    pipe.cmd("UNLINK").arg(&members);
                    pipe.cmd("SREM").arg(index).arg(&members).ignore();
                }
                if cursor != 0 {
                    pipe.add_command(sscan(cursor));
                }
                if members.is_empty() && cursor == 0 {
                    return Ok(removed);
                }
                let pipe = &pipe;
                let replies: Vec<redis::Value> = bounded(
                    deadline,
                    index,
                    self.run("UNLINK/SSCAN", |mut conn| async move {
                        pipe.query_async(&mut conn).await
                    }),
                )
                .await?;
                let mut replies = replies.into_iter();
                if !members.is_empty() {
                    removed += parse::<u64>(replies.next(), "UNLINK")?;
                }
                if cursor == 0 {
                    return Ok(removed);
                }
                (cursor, members) = parse(replies.next(), "SSCAN")?;
            }
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
                .key(keys.waiters)
                .key(keys.stamps)
                .arg(token)
                .arg(millis(ttl))
                .arg(nonce())
                .arg(millis(STAMP_TTL));
            let invocation = &invocation;
            let reply: Vec<redis::Value> = self
                .run("get_or_lease script", |mut conn| async move {
                    invocation.invoke_async(&mut conn).await
                })
                .await?;
            let mut reply = reply.into_iter();
            let tag: u8 = parse(reply.next(), "get_or_lease")?;
            match tag {
                1 => {
                    let value = parse(reply.next(), "get_or_lease")?;
                    let seen: Option<String> = parse(reply.next(), "get_or_lease")?;
                    Ok(LeaseRead::Hit {
                        value,
                        stamps: seen.as_deref().and_then(parse_stamps),
                    })
                }
                2 => {
                    let seen: String = parse(reply.next(), "get_or_lease")?;
                    Ok(LeaseRead::Granted(grant(token, &seen)?))
                }
                _ => {
                    let left: u64 = parse(reply.next(), "get_or_lease")?;
                    Ok(LeaseRead::Held {
                        remaining: Duration::from_millis(left),
                    })
                }
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
    ) -> StoreFuture<'a, Option<Grant>> {
        async move {
            let mut invocation = self.scripts.take_lease.prepare_invoke();
            invocation
                .key(keys.lease)
                .key(keys.stamps)
                .arg(token)
                .arg(millis(ttl))
                .arg(u8::from(force))
                .arg(nonce())
                .arg(millis(STAMP_TTL));
            let invocation = &invocation;
            let seen: Option<String> = self
                .run("take_lease script", |mut conn| async move {
                    invocation.invoke_async(&mut conn).await
                })
                .await?;
            seen.map(|seen| grant(token, &seen)).transpose()
        }
        .boxed()
    }

    fn stamps<'a>(&'a self, stamps: &'a [String], ttl: Duration) -> StoreFuture<'a, Vec<u64>> {
        async move {
            let mut invocation = self.scripts.stamps.prepare_invoke();
            invocation
                .key(stamps)
                .arg(nonce())
                .arg(millis(ttl.max(STAMP_TTL)));
            let invocation = &invocation;
            let seen: String = self
                .run("stamps script", |mut conn| async move {
                    invocation.invoke_async(&mut conn).await
                })
                .await?;
            parse_stamps(&seen)
                .ok_or_else(|| Error::new(ErrorKind::Store, "unexpected stamps reply"))
        }
        .boxed()
    }

    fn set_markers<'a>(&'a self, markers: &'a [String], ttl: Duration) -> StoreFuture<'a, ()> {
        async move {
            if markers.is_empty() {
                return Ok(());
            }
            let mut invocation = self.scripts.set_markers.prepare_invoke();
            invocation.key(markers).arg(millis(ttl));
            let invocation = &invocation;
            self.run("set_markers script", |mut conn| async move {
                invocation.invoke_async::<()>(&mut conn).await
            })
            .await
        }
        .boxed()
    }

    fn stamps_unless<'a>(
        &'a self,
        stamps: &'a [String],
        markers: &'a [String],
        granted: super::Granted<'a>,
        ttl: Duration,
    ) -> StoreFuture<'a, Option<Vec<u64>>> {
        async move {
            let mut invocation = self.scripts.stamps_unless.prepare_invoke();
            invocation
                .key(stamps)
                .key(markers)
                .key(granted.lease)
                .arg(nonce())
                .arg(millis(ttl.max(STAMP_TTL)))
                .arg(stamps.len())
                .arg(millis(granted.ttl))
                .arg(millis(super::MARKERS_LAST));
            let invocation = &invocation;
            let seen: Option<String> = self
                .run("stamps script", |mut conn| async move {
                    invocation.invoke_async(&mut conn).await
                })
                .await?;
            seen.map(|seen| {
                parse_stamps(&seen)
                    .ok_or_else(|| Error::new(ErrorKind::Store, "unexpected stamps reply"))
            })
            .transpose()
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
                .key(keys.waiters)
                .key(keys.stamps)
                .key(keys.indexes)
                .arg(lease.token)
                .arg(value.as_ref())
                .arg(millis(ttl))
                .arg(keys.channel)
                .arg(keys.stamps.len());
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
                .key(keys.value)
                .key(keys.lease)
                .key(keys.waiters)
                .arg(lease.token)
                .arg(keys.channel);
            let invocation = &invocation;
            self.run("release_lease script", |mut conn| async move {
                invocation.invoke_async::<u8>(&mut conn).await.map(drop)
            })
            .await
        }
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
            let (sink, stream) = pubsub.split();
            let messages = stream.map(|msg| Bytes::copy_from_slice(msg.get_payload_bytes()));
            let url = self.url.clone();
            let pinger = move || {
                let mut sink = sink.clone();
                let url = url.clone();
                async move {
                    sink.ping::<redis::Value>().await.map(drop).map_err(|err| {
                        Error::new(
                            ErrorKind::Store,
                            format!("PING on the subscription to {url} failed"),
                        )
                        .with_source(err)
                    })
                }
                .boxed()
            };
            Ok(Subscription::new(channel, messages.boxed()).with_pinger(Box::new(pinger)))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn nodelay(store: &RedisStore) -> bool {
        store.client.get_connection_info().tcp_settings().nodelay()
    }

    #[tokio::test]
    async fn tcp_nodelay_is_on_unless_turned_off() {
        // No server needed: the setting is on the client every connection
        // is made from.
        let url = RedisUrl::parse("redis://127.0.0.1:1/").unwrap();
        assert!(nodelay(
            &RedisStore::new(&url, Duration::from_secs(1), None).unwrap()
        ));
        let off = RedisStore::builder(&url)
            .tcp_nodelay(false)
            .build()
            .unwrap();
        assert!(!nodelay(&off));
    }
}
