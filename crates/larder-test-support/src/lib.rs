//! Test harness for Larder: private `redis-server` processes.
//!
//! Every [`RedisServer`] is its own `redis-server` child process, listening
//! on `127.0.0.1` on a free port, with its own temporary working directory
//! and persistence disabled. Tests therefore never touch a shared Redis
//! (such as the one on port 6379) and never see each other's data.
//! [`RedisCluster`] starts several such servers in cluster mode and joins
//! them into a local Redis Cluster (masters only).
//!
//! The API is blocking, so it can be used from plain `#[test]`s as well as
//! from `#[tokio::test]`s. Failures panic with a descriptive message
//! (including the server's log): a test that needs Redis fails, it never
//! silently skips.
//!
//! The binary is `redis-server` from `PATH`, unless the environment variable
//! [`REDIS_SERVER_ENV`] (`LARDER_REDIS_SERVER`) names another path.
//!
//! ```no_run
//! use larder_test_support::RedisServer;
//!
//! let server = RedisServer::builder().arg("--maxmemory").arg("10mb").spawn();
//! let mut con = server.connection();
//! let pong: String = redis::cmd("PING").query(&mut con).unwrap();
//! assert_eq!(pong, "PONG");
//! ```

mod builder;
mod cluster;
mod port;
mod process;
mod server;

pub use builder::RedisServerBuilder;
pub use cluster::RedisCluster;
pub use process::REDIS_SERVER_ENV;
pub use server::RedisServer;
