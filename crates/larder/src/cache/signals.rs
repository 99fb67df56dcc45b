//! Fill announcements: a caller waiting for another process's computation
//! learns of the fill when it happens, not on its next poll.
//!
//! A caller that finds a key's lease held is marked as waiting by the store
//! (in the same atomic step); the holder's fill — or its giving up, or a
//! fill rejected by an invalidation — then publishes the value key on the
//! cache's fill channel. Each cache has one subscriber, made on Larder's
//! I/O runtime and remade when its connection drops; it wakes the callers
//! watching the announced key. A waiter registers its watch **before** it
//! asks the store, so an announcement cannot slip between the two.
//!
//! While the subscriber is down, announcements are lost: waiters then fall
//! back to polling with backoff, and every state change of the subscriber
//! wakes all waiters so that none sleeps through a fill it was not told of.
//!
//! The same subscriber hears the invalidations other instances publish for
//! the local (L1) tier (see `local/`), and pings the server over its own
//! connection twice per ping interval: a ping unanswered for half an
//! interval counts as a lost connection. Whenever the subscription is
//! lost, the local tier empties and stops filling until it is back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{Notify, watch};

use super::local::LocalTier;
use super::local::message::MARK;
use crate::store::Store;

/// The fill channel's subscriber and the callers watching keys.
#[derive(Debug)]
pub(crate) struct FillSignals {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Whether the subscription is up: announcements reach this process.
    listening: AtomicBool,
    /// Whether the first attempt to subscribe has ended, either way.
    tried: AtomicBool,
    /// Woken on every change of `listening`.
    changed: Notify,
    /// The value keys being waited on.
    watches: Mutex<HashMap<String, watch::Sender<()>>>,
    /// Ends the subscriber task (the cache was dropped).
    shutdown: Notify,
    /// The local tier the invalidations heard are for.
    local: Arc<LocalTier>,
}

impl FillSignals {
    /// Starts the subscriber for `channel` on `store`, in the background;
    /// each attempt to subscribe may take at most `timeout`. Invalidations
    /// heard go to `local`; a silent connection is noticed within
    /// `ping_interval`.
    pub(crate) fn start(
        store: Arc<dyn Store>,
        channel: &str,
        timeout: Duration,
        local: Arc<LocalTier>,
        ping_interval: Duration,
    ) -> Self {
        let shared = Arc::new(Shared {
            listening: AtomicBool::new(false),
            tried: AtomicBool::new(false),
            changed: Notify::new(),
            watches: Mutex::default(),
            shutdown: Notify::new(),
            local,
        });
        let task = subscribe(
            Arc::clone(&shared),
            store,
            channel.to_owned(),
            timeout,
            ping_interval,
        );
        crate::runtime::io().spawn(task);
        Self { shared }
    }

    /// Whether announcements reach this process now.
    pub(crate) fn listening(&self) -> bool {
        self.shared.listening.load(Ordering::Acquire)
    }

    /// Waits until the subscription is up, at most `timeout`.
    pub(crate) async fn until_listening(&self, timeout: Duration) {
        let changed = self.shared.changed.notified();
        if self.listening() {
            return;
        }
        let _ = tokio::time::timeout(timeout, changed).await;
    }

    /// Whether the first subscription attempt is still under way: a new
    /// cache's first waiter does better to wait for it than to poll.
    pub(crate) fn starting(&self) -> bool {
        !self.shared.tried.load(Ordering::Acquire)
    }

    /// Watches `value_key`: the returned watch resolves when a fill of it is
    /// announced, or when the subscriber's state changes.
    pub(crate) fn watch(&self, value_key: &str) -> Watch {
        let mut watches = lock(&self.shared.watches);
        let receiver = match watches.get(value_key) {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = watch::channel(());
                watches.insert(value_key.to_owned(), sender);
                receiver
            }
        };
        Watch {
            receiver,
            key: value_key.to_owned(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for FillSignals {
    fn drop(&mut self) {
        // A permit: the task sees it whenever it next looks.
        self.shared.shutdown.notify_one();
    }
}

/// One caller's watch on a value key.
#[derive(Debug)]
pub(crate) struct Watch {
    receiver: watch::Receiver<()>,
    key: String,
    shared: Arc<Shared>,
}

impl Watch {
    /// Waits for an announcement, at most `timeout`.
    pub(crate) async fn wait(mut self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.receiver.changed()).await;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // An announced channel has left the map already (and may have been
        // replaced by a newer watcher's). Otherwise the map holds this
        // watch's channel, and its last watcher removes it.
        if self.receiver.has_changed().unwrap_or(true) {
            return;
        }
        let mut watches = lock(&self.shared.watches);
        if watches
            .get(&self.key)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            watches.remove(&self.key);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn wake(&self, key: &[u8]) {
        let Ok(key) = std::str::from_utf8(key) else {
            return;
        };
        if let Some(sender) = lock(&self.watches).remove(key) {
            sender.send_replace(());
        }
    }

    fn wake_all(&self) {
        for (_, sender) in lock(&self.watches).drain() {
            sender.send_replace(());
        }
    }

    /// Handles one message; `false` if handling it panicked (a value's
    /// `Drop` run by an eviction, say): the subscriber then starts over.
    fn heard(&self, message: &[u8]) -> bool {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if message.first() == Some(&MARK) {
                self.local.apply_message(message);
            } else {
                self.wake(message);
            }
        }))
        .is_ok()
    }

    fn set_listening(&self, listening: bool) {
        if listening {
            self.local.hear();
        } else {
            self.local.stop();
            // Emptying drops values, which runs their `Drop`.
            let emptied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.local.deafen();
            }));
            if emptied.is_err() {
                tracing::error!("larder: a cached value panicked while the local tier emptied");
            }
        }
        self.listening.store(listening, Ordering::Release);
        self.tried.store(true, Ordering::Release);
        // Waiters that slept on the other assumption look again; then
        // those waiting for the change itself are told.
        self.wake_all();
        self.changed.notify_waiters();
    }
}

/// The subscriber: subscribes, wakes watchers per announcement, and on a
/// lost connection marks itself deaf and subscribes again with backoff.
async fn subscribe(
    shared: Arc<Shared>,
    store: Arc<dyn Store>,
    channel: String,
    timeout: Duration,
    ping_interval: Duration,
) {
    // However this task ends, the local tier stops: nobody hears for it.
    struct Stop(Arc<LocalTier>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.stop();
        }
    }
    let _stop = Stop(Arc::clone(&shared.local));
    let mut backoff = Duration::from_millis(50);
    loop {
        let attempt = tokio::time::timeout(timeout, store.subscribe(&channel));
        let subscribed = tokio::select! {
            () = shared.shutdown.notified() => return,
            subscribed = attempt => subscribed.map_err(|_| ()).and_then(|s| s.map_err(drop)),
        };
        if subscribed.is_err() && !shared.tried.swap(true, Ordering::AcqRel) {
            shared.changed.notify_waiters();
        }
        if let Ok(mut messages) = subscribed {
            backoff = Duration::from_millis(50);
            shared.set_listening(true);
            let mut pings = tokio::time::interval(ping_interval / 2);
            pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            pings.tick().await;
            let mut ping: Option<futures::future::BoxFuture<'static, crate::Result<()>>> = None;
            let lost = loop {
                tokio::select! {
                    () = shared.shutdown.notified() => return,
                    message = messages.next() => match message {
                        Some(message) => if !shared.heard(&message) {
                            break "handling a message panicked";
                        },
                        None => break "the connection closed",
                    },
                    _ = pings.tick() => {
                        if ping.is_some() {
                            break "a ping went unanswered";
                        }
                        ping = Some(messages.ping());
                    }
                    answered = async { ping.as_mut().expect("guarded").await }, if ping.is_some() => {
                        ping = None;
                        if answered.is_err() {
                            break "a ping failed";
                        }
                        shared.local.pong();
                    }
                }
            };
            shared.set_listening(false);
            tracing::warn!(%channel, cause = lost, "larder: the cache's channel was lost; local tier emptied; resubscribing");
        }
        tokio::select! {
            () = shared.shutdown.notified() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn an_announcement_wakes_the_watchers_of_its_key_only() {
        let store = Arc::new(MemoryStore::new(1 << 20));
        let local = Arc::new(LocalTier::new(
            super::super::local::Bounds {
                bytes: 1 << 20,
                entries: 100,
            },
            Duration::from_secs(1),
        ));
        let signals = FillSignals::start(
            store.clone(),
            "fills",
            Duration::from_secs(1),
            local,
            Duration::from_secs(1),
        );
        signals.until_listening(Duration::from_secs(5)).await;
        assert!(signals.listening());
        let woken = signals.watch("k:1");
        let other = signals.watch("k:2");
        store.publish("fills", "k:1".into()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), woken.wait(Duration::from_secs(60)))
            .await
            .expect("the watcher of k:1 was woken");
        assert!(!other.receiver.has_changed().unwrap());
    }
}
