//! In-process single-flight: concurrent misses on one key share one
//! computation.
//!
//! The first caller for a key becomes the leader and gets a [`LeaderGuard`];
//! later callers get a [`Waiter`] and wait. The leader publishes the encoded
//! envelope, so waiters need nothing beyond `DeserializeOwned`. If the
//! leader's future is dropped (cancelled) or panics, the guard's `Drop`
//! marks the flight abandoned and the waiters try again: one of them leads.
//! If the origin fails, every waiter is released at once: with the
//! leader's failure when it can be shared, else to call the origin itself.
//!
//! When the leader's value is not stored — an invalidation voided its
//! lease, or it had none, or the fill failed — it still answers the
//! waiters that joined **before the leader began** (took its lease, or
//! decided to compute without one): their reads began before any write
//! the computation could have missed, so the value is one they may see.
//! Waiters that joined later may have begun after such a write: they read
//! again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::watch;

/// The physical key a flight is for (refresh and revalidate flights carry a
/// `\0`-separated suffix).
pub(crate) fn flight_of(flight: &str) -> &str {
    flight.split('\0').next().unwrap_or(flight)
}

#[derive(Debug, Clone)]
pub(crate) enum FlightState {
    Running,
    Done(Bytes),
    /// Computed but not stored: an invalidation voided the lease granted
    /// when `granted_at` waiters had joined. Those waiters may take it.
    Voided {
        envelope: Bytes,
        granted_at: u64,
    },
    Abandoned,
    /// The leader's result may not be stored (say, a response that sets a
    /// cookie), or its failure cannot be shared: each waiter computes its
    /// own, at once.
    Passed,
    /// The origin failed; the failure, encoded for the waiters to rebuild.
    Failed(Bytes),
}

/// One flight: its result channel, how many waiters joined it, and the
/// tags its value is filled under (a tag invalidation detaches it).
#[derive(Debug)]
struct Slot {
    sender: watch::Sender<FlightState>,
    joined: AtomicU64,
    tags: Vec<String>,
}

type Flights = Mutex<HashMap<String, Arc<Slot>>>;

#[derive(Debug, Default)]
pub(crate) struct SingleFlight {
    flights: Arc<Flights>,
}

pub(crate) enum Role {
    Leader(LeaderGuard),
    Waiter(Waiter),
}

/// A caller waiting on another's computation.
pub(crate) struct Waiter {
    receiver: watch::Receiver<FlightState>,
    /// How many waiters had joined before this one.
    index: u64,
}

impl SingleFlight {
    /// Joins the flight for `key`, starting it (under `tags`) if there is
    /// none.
    pub(crate) fn join(&self, key: &str, tags: &[String]) -> Role {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = flights.get(key) {
            return Role::Waiter(Waiter {
                receiver: slot.sender.subscribe(),
                index: slot.joined.fetch_add(1, Ordering::Relaxed),
            });
        }
        let slot = Arc::new(Slot {
            sender: watch::Sender::new(FlightState::Running),
            joined: AtomicU64::new(0),
            tags: tags.to_vec(),
        });
        flights.insert(key.to_owned(), Arc::clone(&slot));
        Role::Leader(LeaderGuard {
            key: key.to_owned(),
            slot,
            granted_at: 0,
            flights: Arc::clone(&self.flights),
        })
    }

    /// Detaches the flights whose key satisfies `matches`: callers arriving
    /// after an invalidation must not join a computation that began before
    /// it. The detached flights run on for the callers already waiting.
    pub(crate) fn detach(&self, matches: impl Fn(&str) -> bool) {
        self.flights
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|key, _| !matches(key));
    }

    /// Detaches the flights filled under `tag` (see [`SingleFlight::detach`]).
    pub(crate) fn detach_tagged(&self, tag: &str) {
        self.flights
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, slot| !slot.tags.iter().any(|t| t == tag));
    }

    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.flights.lock().unwrap().len()
    }

    /// How many callers wait on the flight for `key`.
    #[cfg(test)]
    pub(crate) fn waiters(&self, key: &str) -> usize {
        self.flights
            .lock()
            .unwrap()
            .get(key)
            .map_or(0, |slot| slot.sender.receiver_count())
    }
}

/// Held by the computing caller; ends the flight on completion or drop.
pub(crate) struct LeaderGuard {
    key: String,
    slot: Arc<Slot>,
    /// Waiters that had joined when the lease was granted.
    granted_at: u64,
    flights: Arc<Flights>,
}

impl LeaderGuard {
    /// Notes that the leader begins now: its lease is granted, or it
    /// computes without one (see the module docs).
    pub(crate) fn granted(&mut self) {
        self.granted_at = self.slot.joined.load(Ordering::Relaxed);
    }

    /// Hands `envelope` to every waiter and ends the flight.
    pub(crate) fn complete(self, envelope: Bytes) {
        self.finish(FlightState::Done(envelope));
    }

    /// Hands `envelope`, whose fill an invalidation voided, to the waiters
    /// that joined before the lease was granted; the others read again.
    pub(crate) fn complete_voided(self, envelope: Bytes) {
        let granted_at = self.granted_at;
        self.finish(FlightState::Voided {
            envelope,
            granted_at,
        });
    }

    /// Tells every waiter to compute its own value, uncached.
    pub(crate) fn pass(self) {
        self.finish(FlightState::Passed);
    }

    /// Tells every waiter the origin failed.
    pub(crate) fn fail(self, failure: Bytes) {
        self.finish(FlightState::Failed(failure));
    }

    fn finish(&self, state: FlightState) {
        // Remove first: a caller arriving after this point starts afresh.
        // Only this flight: an invalidation may have detached it, and a newer
        // flight for the key may be running.
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if flights
            .get(&self.key)
            .is_some_and(|current| Arc::ptr_eq(current, &self.slot))
        {
            flights.remove(&self.key);
        }
        drop(flights);
        self.slot.sender.send_replace(state);
    }
}

impl Drop for LeaderGuard {
    fn drop(&mut self) {
        if matches!(*self.slot.sender.borrow(), FlightState::Running) {
            self.finish(FlightState::Abandoned);
        }
    }
}

/// Waits until the flight ends; a vanished leader counts as abandoned, and
/// a voided value this waiter may not take as well.
pub(crate) async fn wait(mut waiter: Waiter) -> FlightState {
    let state = match waiter
        .receiver
        .wait_for(|state| !matches!(state, FlightState::Running))
        .await
    {
        Ok(state) => state.clone(),
        Err(_) => FlightState::Abandoned,
    };
    match state {
        FlightState::Voided {
            envelope,
            granted_at,
        } if waiter.index < granted_at => FlightState::Done(envelope),
        FlightState::Voided { .. } => FlightState::Abandoned,
        state => state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_get_the_leaders_result() {
        let flights = SingleFlight::default();
        let Role::Leader(guard) = flights.join("k", &[]) else {
            panic!("first caller leads")
        };
        let Role::Waiter(rx) = flights.join("k", &[]) else {
            panic!("second caller waits")
        };
        guard.complete(Bytes::from_static(b"v"));
        assert!(matches!(wait(rx).await, FlightState::Done(b) if b == "v"));
        assert_eq!(flights.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_voided_value_answers_only_waiters_from_before_the_grant() {
        let flights = SingleFlight::default();
        let Role::Leader(mut guard) = flights.join("k", &[]) else {
            panic!()
        };
        let Role::Waiter(early) = flights.join("k", &[]) else {
            panic!()
        };
        guard.granted();
        let Role::Waiter(late) = flights.join("k", &[]) else {
            panic!()
        };
        guard.complete_voided(Bytes::from_static(b"v"));
        assert!(matches!(wait(early).await, FlightState::Done(b) if b == "v"));
        assert!(matches!(wait(late).await, FlightState::Abandoned));
    }

    #[tokio::test]
    async fn dropped_leader_releases_waiters() {
        let flights = SingleFlight::default();
        let Role::Leader(guard) = flights.join("k", &[]) else {
            panic!()
        };
        let Role::Waiter(rx) = flights.join("k", &[]) else {
            panic!()
        };
        drop(guard);
        assert!(matches!(wait(rx).await, FlightState::Abandoned));
        assert!(matches!(flights.join("k", &[]), Role::Leader(_)));
    }
}
