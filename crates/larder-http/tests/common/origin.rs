//! A scripted origin behind a shared-mode layer: it answers from a script
//! (each answer possibly held until a gate opens) and records each
//! request it gets.
//!
//! ```ignore
//! let (origin, clock, client) = setup().await;
//! origin.then(answer(200, &[("cache-control", "max-age=60")], "v1"));
//! client.get("/page").await;
//! clock.advance_secs(61);
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use larder::Cache;
use larder_http::{CacheMode, ResponseCacheLayer};

use super::clock::Clock;
use super::{Client, Transport};

/// One scripted answer of the origin.
pub struct Canned {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: &'static str,
    /// Answered only once the gate opens.
    gate: Option<tokio::sync::watch::Receiver<bool>>,
}

/// An answer of `status` with `headers` and `body`, at once.
pub fn answer(status: u16, headers: &[(&'static str, &str)], body: &'static str) -> Canned {
    Canned {
        status,
        headers: headers.iter().map(|(n, v)| (*n, (*v).to_owned())).collect(),
        body,
        gate: None,
    }
}

/// A gate: closed until `true` is sent on the sender.
pub fn gate() -> (
    tokio::sync::watch::Sender<bool>,
    tokio::sync::watch::Receiver<bool>,
) {
    tokio::sync::watch::channel(false)
}

impl Canned {
    /// This answer, given only once `gate` opens.
    pub fn held(mut self, gate: tokio::sync::watch::Receiver<bool>) -> Self {
        self.gate = Some(gate);
        self
    }
}

/// An origin that answers from a script and records each request's
/// headers. An unscripted call answers 599, which no test expects.
#[derive(Clone)]
pub struct Origin {
    script: Arc<Mutex<VecDeque<Canned>>>,
    seen: Arc<Mutex<Vec<(String, HeaderMap)>>>,
    /// The number of calls so far, for waiting on a background one.
    counted: Arc<tokio::sync::watch::Sender<usize>>,
}

impl Default for Origin {
    fn default() -> Self {
        Self {
            script: Arc::default(),
            seen: Arc::default(),
            counted: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }
}

impl Origin {
    /// Adds `canned` to the script.
    pub fn then(&self, canned: Canned) -> &Self {
        self.script.lock().unwrap().push_back(canned);
        self
    }

    /// Whether every scripted answer has been taken.
    pub fn script_is_spent(&self) -> bool {
        self.script.lock().unwrap().is_empty()
    }

    /// The calls so far.
    pub fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Waits (at most 10 s) until the origin has been called `n` times.
    pub async fn wait_for_calls(&self, n: usize) {
        let mut counted = self.counted.subscribe();
        tokio::time::timeout(Duration::from_secs(10), counted.wait_for(|c| *c >= n))
            .await
            .expect("the origin was called in time")
            .expect("the origin lives");
    }

    /// The headers of the `n`th request (from 1).
    pub fn request(&self, n: usize) -> HeaderMap {
        self.seen.lock().unwrap()[n - 1].1.clone()
    }
}

/// The origin's handler.
pub async fn origin(
    State(origin): State<Origin>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    // The call takes its answer before it is counted: a test that waits
    // for the count and then makes the next call knows which answer each
    // of them got.
    let canned = origin.script.lock().unwrap().pop_front();
    origin
        .seen
        .lock()
        .unwrap()
        .push((format!("{method} {uri}"), headers));
    origin.counted.send_modify(|c| *c += 1);
    let Some(canned) = canned else {
        return (StatusCode::from_u16(599).unwrap(), "unscripted").into_response();
    };
    if let Some(mut gate) = canned.gate {
        let _ = gate.wait_for(|open| *open).await;
    }
    let mut response = canned.body.into_response();
    *response.status_mut() = StatusCode::from_u16(canned.status).unwrap();
    for (name, value) in canned.headers {
        response.headers_mut().append(
            HeaderName::from_static(name),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    response
}

/// A shared-mode layer on `cache`.
pub fn shared(cache: Cache) -> ResponseCacheLayer {
    ResponseCacheLayer::new(cache).mode(CacheMode::Shared)
}

/// `origin` behind `layer`.
pub fn app_with(origin: &Origin, layer: ResponseCacheLayer) -> Router {
    Router::new()
        .fallback(self::origin)
        .layer(layer)
        .with_state(origin.clone())
}

/// A scripted origin behind a shared-mode layer on an in-process cache
/// with a clock of its own, reached through `transport`.
pub async fn setup_over(transport: Transport) -> (Origin, Clock, Client) {
    let origin = Origin::default();
    let (clock, read) = Clock::new();
    let client = Client::new(
        app_with(&origin, shared(Cache::in_memory()).clock(read)),
        transport,
    )
    .await;
    (origin, clock, client)
}

/// [`setup_over`] through `oneshot`.
pub async fn setup() -> (Origin, Clock, Client) {
    setup_over(Transport::Oneshot).await
}
