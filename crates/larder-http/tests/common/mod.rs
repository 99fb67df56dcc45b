//! The harness of the response-cache tests: one client that sends a request
//! either through `oneshot` or over a real socket with reqwest.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// Counts handler calls.
#[derive(Clone, Default)]
pub struct Calls(pub Arc<AtomicUsize>);

impl Calls {
    /// Calls so far.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    /// Counts one call; returns the count.
    pub fn bump(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// How a request reaches the app.
#[derive(Clone, Copy, Debug)]
pub enum Transport {
    Oneshot,
    Socket,
}

pub struct Reply {
    pub status: StatusCode,
    pub x_cache: String,
    pub headers: HeaderMap,
    pub body: String,
}

pub struct Client {
    app: Router,
    transport: Transport,
    /// `http://127.0.0.1:port` over a socket; empty for `oneshot`.
    pub base: String,
    http: reqwest::Client,
}

impl Client {
    pub async fn new(app: Router, transport: Transport) -> Client {
        let base = match transport {
            Transport::Oneshot => String::new(),
            Transport::Socket => {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let served = app.clone();
                tokio::spawn(async move { axum::serve(listener, served).await.unwrap() });
                format!("http://{addr}")
            }
        };
        Client {
            app,
            transport,
            base,
            http: reqwest::Client::new(),
        }
    }

    pub async fn send(&self, method: &str, uri: &str, headers: &[(&str, &str)]) -> Reply {
        match self.transport {
            Transport::Oneshot => {
                let mut request = Request::builder().method(method).uri(uri);
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                let response = self
                    .app
                    .clone()
                    .oneshot(request.body(axum::body::Body::empty()).unwrap())
                    .await
                    .unwrap();
                let (parts, body) = response.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                reply(
                    parts.status,
                    parts.headers,
                    String::from_utf8_lossy(&body).into_owned(),
                )
            }
            Transport::Socket => {
                let mut request = self
                    .http
                    .request(method.parse().unwrap(), format!("{}{uri}", self.base));
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                let response = request.send().await.unwrap();
                let (status, headers) = (response.status(), response.headers().clone());
                let body = response.text().await.unwrap();
                reply(status, headers, body)
            }
        }
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.send("GET", uri, &[]).await
    }
}

fn reply(status: StatusCode, headers: HeaderMap, body: String) -> Reply {
    let x_cache = headers
        .get("x-cache")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    Reply {
        status,
        x_cache,
        headers,
        body,
    }
}

/// Runs each named `async fn(Transport)` as a test, once per transport.
macro_rules! both_transports {
    ($($name:ident),* $(,)?) => {
        mod oneshot {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name(super::Transport::Oneshot).await; } )*
        }
        mod socket {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name(super::Transport::Socket).await; } )*
        }
    };
}
