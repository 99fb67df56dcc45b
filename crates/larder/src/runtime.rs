//! Larder's own I/O runtime: one background thread on which every Redis
//! connection is made and driven.
//!
//! redis-rs spawns a connection's driver task, and registers its socket,
//! with whatever Tokio runtime happens to make the connection. A cache that
//! outlives that runtime — a global cache used from several
//! `#[tokio::test]`s, or a sync caller blocking a current-thread runtime —
//! would then lose its connection or stall. Connections made here live as
//! long as the process; callers on any runtime (or none) talk to them over
//! channels, which work across runtimes.

use std::cell::Cell;
use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle};

static IO: OnceLock<Handle> = OnceLock::new();

/// The handle of the I/O runtime, started on first use.
pub(crate) fn io() -> &'static Handle {
    IO.get_or_init(|| {
        let runtime = Builder::new_current_thread()
            .enable_all()
            .thread_name("larder-io")
            .build()
            .expect("larder cannot start its I/O runtime (out of threads or file descriptors?)");
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("larder-io".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .expect("larder cannot start its I/O thread (out of threads?)");
        handle
    })
}

/// Runs a Larder future to completion on the calling thread, for sync code
/// (batch jobs, sync functions): inside or outside a Tokio runtime, without
/// panicking and without deadlocking.
///
/// Timers the future creates belong to Larder's I/O runtime, and its Redis
/// calls use a connection driven by Larder's I/O thread, so nothing it waits
/// for depends on the runtime (if any) that the calling thread may be
/// blocking. The calling thread is blocked meanwhile, as with any blocking
/// call: from async code prefer the async API or `spawn_blocking`.
///
/// ```
/// use std::time::Duration;
///
/// let cache = larder::Cache::in_memory();
/// larder::block_on(cache.set("job:1", &"done", Duration::from_secs(60)))?;
/// let state: Option<String> = larder::block_on(cache.get("job:1"))?;
/// assert_eq!(state.as_deref(), Some("done"));
/// # Ok::<(), larder::Error>(())
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Blocking(bool);
    impl Drop for Blocking {
        fn drop(&mut self) {
            BLOCKING.set(self.0);
        }
    }
    let _context = io().enter();
    let _blocking = Blocking(BLOCKING.replace(true));
    futures::executor::block_on(future)
}

thread_local! {
    static BLOCKING: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread is inside [`block_on`]: its store calls must not
/// need the runtime it may be blocking.
pub(crate) fn is_blocking() -> bool {
    BLOCKING.get()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn blocks_outside_a_runtime() {
        let slept = block_on(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            7
        });
        assert_eq!(slept, 7);
    }

    #[test]
    fn blocks_inside_a_current_thread_runtime() {
        let runtime = Builder::new_current_thread().enable_all().build().unwrap();
        let value = runtime.block_on(async {
            block_on(async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                8
            })
        });
        assert_eq!(value, 8);
    }
}
