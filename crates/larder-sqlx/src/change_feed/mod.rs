//! The PostgreSQL change feed: writes that bypass the repository — a bulk
//! `UPDATE products SET price = price * 1.1` in `psql`, another service, a
//! migration — invalidate the cached entries of the rows they touch.
//!
//! Two parts:
//!
//! - [`install_notify_trigger`] puts statement-level triggers on a table
//!   that `NOTIFY` a channel with the ids of the rows each `INSERT`,
//!   `UPDATE` (old and new id) and `DELETE` touched, in JSON chunks under
//!   PostgreSQL's 8000-byte payload limit; a `TRUNCATE` announces the
//!   whole table. The triggers also go on every partition of a
//!   partitioned table (rerun it after attaching one), and fire in
//!   `session_replication_role = replica` sessions too (`ENABLE ALWAYS`).
//! - A [`ChangeFeed`] `LISTEN`s on that channel (sqlx's `PgListener`, on a
//!   connection of its own named in `pg_stat_activity` by its
//!   `application_name`) and invalidates each announced id of every model
//!   that [watches](ChangeFeedBuilder::watch) the table, with
//!   [`invalidate_model_cache_id`](larder::Cache::invalidate_model_cache_id):
//!   the entry, its lease, and every entry embedding it.
//!
//! It is opt-in: nothing listens unless a feed is started. It fails with
//! the crate's one [`Error`](crate::Error): [`ErrorKind::Config`](crate::ErrorKind::Config)
//! for a name PostgreSQL would truncate, [`ErrorKind::Database`](crate::ErrorKind::Database),
//! [`ErrorKind::Cache`](crate::ErrorKind::Cache) from
//! [`caught_up`](ChangeFeed::caught_up) while the cache is down, and
//! [`ErrorKind::Stopped`](crate::ErrorKind::Stopped) once the feed's task
//! has ended.
//!
//! ```no_run
//! use larder::CachedModel;
//! use larder_sqlx::change_feed::{ChangeFeed, install_notify_trigger};
//!
//! #[derive(Debug, Clone, CachedModel)]
//! #[larder(prefix = "product")]
//! struct Product { id: i64, name: String, price_cents: i64 }
//!
//! # async fn run(cache: larder::Cache) -> Result<(), Box<dyn std::error::Error>> {
//! let pool = sqlx::PgPool::connect("postgres://app@db/shop").await?;
//! // Once, at deploy time (idempotent):
//! install_notify_trigger(&pool, "products", "id", "larder_changes").await?;
//!
//! let feed = ChangeFeed::builder(cache.clone(), pool.clone())
//!     .channel("larder_changes")
//!     .watch::<Product>("products")
//!     .start()
//!     .await?;
//!
//! sqlx::query("UPDATE products SET price_cents = price_cents * 11 / 10")
//!     .execute(&pool)
//!     .await?;
//! feed.caught_up().await?; // every product entry cached before is gone
//! # Ok(()) }
//! ```
//!
//! # Why statement-level triggers
//!
//! A row-level trigger sends one notification per row; the statement-level
//! one reads the statement's transition tables and sends the distinct ids
//! in chunks of about 7.9 KB. Measured on PostgreSQL 15 with this crate's
//! tests (debug build, two cores shared with other builds, so ±30%), one
//! `UPDATE` of 10,000 rows:
//!
//! | trigger | `UPDATE` | notifications | commit to last entry invalidated |
//! |---|---|---|---|
//! | none | 26–42 ms | 0 | — |
//! | statement-level (this one) | 48–73 ms | 10 | 0.75–0.8 s |
//! | row-level, one id per `NOTIFY` | 52–75 ms | 10,000 | 4.2 s |
//!
//! The statement costs PostgreSQL about the same either way; the listener
//! is where it shows: each notification is a message to read and a
//! dispatch, and the ids of one notification are invalidated in one
//! batched call
//! ([`invalidate_model_cache_ids`](larder::Cache::invalidate_model_cache_ids)),
//! those of separate notifications one after the other. The ids go as JSON strings, so any id
//! type whose text form its `FromStr` reads back works (integers, `uuid`,
//! `text`).
//!
//! Invalidating a notification's ids costs a round trip for the entries
//! and their leases, one for their stamps (per 1,000 ids), and a scan of
//! each id's dependents' index, 64 in flight. The table's times were
//! measured with one call per id, 64 in flight (40,000 commands); see the
//! closing note of the model caching issue for the batched numbers.
//!
//! # What it guarantees, and what it trades
//!
//! - Ordering: PostgreSQL delivers notifications after the transaction
//!   commits, in commit order, so an entry is invalidated after the write
//!   is visible; a read that refills it sees the new row.
//!   [`ChangeFeed::caught_up`] uses that order: once its marker is back,
//!   every earlier change has been applied.
//! - Fills in flight: the invalidation voids the lease of the entry, so a
//!   read that loaded the old row before the commit and fills through a
//!   lease (the repository's reads, `get_or_compute`; leases are on unless
//!   the cache was built with `leases(false)`) does not store it after
//!   the invalidation. A plain `cache_model` of a row loaded earlier is
//!   not guarded.
//! - One channel per purpose: every payload on the channel that is not the
//!   trigger's or a feed's marker is read as "anything may have changed"
//!   and bumps every watched model. Do not share the channel with other
//!   software.
//! - Latency: between the commit and the invalidation, readers may still
//!   get the old entry (milliseconds; more under load). Writes through the
//!   repository invalidate synchronously; this feed is the safety net for
//!   the others.
//! - Lost connections: notifications sent while the listener is
//!   disconnected are gone — PostgreSQL does not queue them for a listener
//!   that is not there. So on every reconnect, after the new `LISTEN` and
//!   before reading on, the feed bumps the generation of every model it
//!   watches: all their entries, and every entry embedding one of their
//!   instances, become misses. That is the trade: one dropped connection
//!   costs a cold cache for the watched models (a burst of database reads)
//!   instead of stale entries that could live until their timeout. While
//!   the connection is down, entries of rows changed meanwhile are stale
//!   until it is back (reconnects back off from 100 ms to 5 s).
//! - Start-up: changes made while no feed listened are unknown too, so
//!   [`start`](ChangeFeedBuilder::start) bumps as well unless told that
//!   other feeds were listening all along
//!   ([`resync_on_start`](ChangeFeedBuilder::resync_on_start)).
//! - Failing closed: a payload the feed cannot read, or an id that does not
//!   parse as the model's id, bumps the generation of the models concerned;
//!   an invalidation the cache fails bumps its model's generation, and a
//!   failed bump is retried every second until the cache answers.
//!
//! # SQLite
//!
//! SQLite has no equivalent: it has no server that could notify another
//! process, and its update hooks see only the writes made on the same
//! connection. With SQLite, writes must go through the repository (or call
//! `invalidate_model_cache_id` themselves) to invalidate the cache.

mod builder;
mod feed;
mod listener;
mod payload;
mod stats;
mod trigger;
mod watch;

pub use builder::{ChangeFeedBuilder, DEFAULT_APPLICATION_NAME, DEFAULT_CHANNEL};
pub use feed::ChangeFeed;
pub use stats::ChangeFeedStats;
pub use trigger::{NOTIFY_FUNCTION, install_notify_trigger};
