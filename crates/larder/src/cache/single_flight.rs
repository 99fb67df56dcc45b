//! In-process single-flight: concurrent misses on one key share one
//! computation.
//!
//! The first caller for a key becomes the leader and gets a [`LeaderGuard`];
//! later callers get a receiver and wait. The leader publishes the encoded
//! envelope, so waiters need nothing beyond `DeserializeOwned`. If the
//! leader's future is dropped (cancelled) or panics, the guard's `Drop`
//! marks the flight abandoned and the waiters try again: one of them leads.

use std::collections::HashMap;
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
    Abandoned,
    /// The leader's result may not be stored (say, a response that sets a
    /// cookie): each waiter computes its own, at once.
    Passed,
}

type Flights = Mutex<HashMap<String, Arc<watch::Sender<FlightState>>>>;

#[derive(Debug, Default)]
pub(crate) struct SingleFlight {
    flights: Arc<Flights>,
}

pub(crate) enum Role {
    Leader(LeaderGuard),
    Waiter(watch::Receiver<FlightState>),
}

impl SingleFlight {
    /// Joins the flight for `key`, starting it if there is none.
    pub(crate) fn join(&self, key: &str) -> Role {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = flights.get(key) {
            return Role::Waiter(sender.subscribe());
        }
        let sender = Arc::new(watch::Sender::new(FlightState::Running));
        flights.insert(key.to_owned(), Arc::clone(&sender));
        Role::Leader(LeaderGuard {
            key: key.to_owned(),
            sender,
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
            .map_or(0, |sender| sender.receiver_count())
    }
}

/// Held by the computing caller; ends the flight on completion or drop.
pub(crate) struct LeaderGuard {
    key: String,
    sender: Arc<watch::Sender<FlightState>>,
    flights: Arc<Flights>,
}

impl LeaderGuard {
    /// Hands `envelope` to every waiter and ends the flight.
    pub(crate) fn complete(self, envelope: Bytes) {
        self.finish(FlightState::Done(envelope));
    }

    /// Tells every waiter to compute its own value, uncached.
    pub(crate) fn pass(self) {
        self.finish(FlightState::Passed);
    }

    fn finish(&self, state: FlightState) {
        // Remove first: a caller arriving after this point starts afresh.
        // Only this flight: an invalidation may have detached it, and a newer
        // flight for the key may be running.
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if flights
            .get(&self.key)
            .is_some_and(|current| Arc::ptr_eq(current, &self.sender))
        {
            flights.remove(&self.key);
        }
        drop(flights);
        self.sender.send_replace(state);
    }
}

impl Drop for LeaderGuard {
    fn drop(&mut self) {
        if matches!(*self.sender.borrow(), FlightState::Running) {
            self.finish(FlightState::Abandoned);
        }
    }
}

/// Waits until the flight ends; a vanished leader counts as abandoned.
pub(crate) async fn wait(mut receiver: watch::Receiver<FlightState>) -> FlightState {
    match receiver
        .wait_for(|state| !matches!(state, FlightState::Running))
        .await
    {
        Ok(state) => state.clone(),
        Err(_) => FlightState::Abandoned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_get_the_leaders_result() {
        let flights = SingleFlight::default();
        let Role::Leader(guard) = flights.join("k") else {
            panic!("first caller leads")
        };
        let Role::Waiter(rx) = flights.join("k") else {
            panic!("second caller waits")
        };
        guard.complete(Bytes::from_static(b"v"));
        assert!(matches!(wait(rx).await, FlightState::Done(b) if b == "v"));
        assert_eq!(flights.in_flight(), 0);
    }

    #[tokio::test]
    async fn dropped_leader_releases_waiters() {
        let flights = SingleFlight::default();
        let Role::Leader(guard) = flights.join("k") else {
            panic!()
        };
        let Role::Waiter(rx) = flights.join("k") else {
            panic!()
        };
        drop(guard);
        assert!(matches!(wait(rx).await, FlightState::Abandoned));
        assert!(matches!(flights.join("k"), Role::Leader(_)));
    }
}
