//! The harness of the response-cache tests: one client that sends a request
//! either through `oneshot` or over a real socket with reqwest (HTTP/1.1,
//! or HTTP/2 with prior knowledge). Over HTTP/1.1, a target reqwest would
//! rewrite (absolute-form, dot segments) goes out verbatim through hyper's
//! own client connection.
//!
//! Beside it: [`origin`] (a scripted origin behind a shared-mode layer),
//! [`clock`] (a clock per test), [`hooked`] (a store that fails on cue),
//! [`eventually`] and [`serve`].

#![allow(dead_code)]

pub mod clock;
pub mod hooked;
pub mod origin;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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
    /// A real socket, HTTP/2 with prior knowledge: a target
    /// `http://name/path` is sent with `:authority: name` (resolved to the
    /// app's socket).
    Http2,
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
            Transport::Socket | Transport::Http2 => {
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
        self.send_with_body(method, uri, headers, Body::Empty).await
    }

    /// Sends `uri` (origin-form `/path`, or absolute-form `http://host/path`)
    /// with `body`.
    pub async fn send_with_body(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Reply {
        match self.transport {
            Transport::Oneshot => {
                let mut request = Request::builder().method(method).uri(uri);
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                let body = match body {
                    Body::Empty => axum::body::Body::empty(),
                    Body::Sized(text) => axum::body::Body::from(text),
                    Body::Streamed(text) => {
                        axum::body::Body::from_stream(futures::stream::once(async move {
                            Ok::<_, std::io::Error>(text)
                        }))
                    }
                };
                let response = self
                    .app
                    .clone()
                    .oneshot(request.body(body).unwrap())
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
            Transport::Socket if !uri.starts_with('/') || rewritten_by_reqwest(uri) => {
                self.send_verbatim(method, uri, headers, body).await
            }
            Transport::Socket | Transport::Http2 => {
                let (client, url) = match self.transport {
                    Transport::Http2 => self.http2(uri),
                    _ => (self.http.clone(), format!("{}{uri}", self.base)),
                };
                let mut request = client.request(method.parse().unwrap(), url);
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                request = match body {
                    Body::Empty => request,
                    Body::Sized(text) => request.body(text),
                    Body::Streamed(text) => {
                        // hyper sends a GET's body of unknown length only
                        // when told to chunk it.
                        let request = request.header("transfer-encoding", "chunked");
                        let frame =
                            http_body::Frame::data(bytes::Bytes::from_static(text.as_bytes()));
                        let frames = futures::stream::iter([Ok::<_, std::io::Error>(frame)]);
                        request.body(reqwest::Body::wrap(http_body_util::StreamBody::new(frames)))
                    }
                };
                let response = request.send().await.unwrap();
                let (status, headers) = (response.status(), response.headers().clone());
                let body = response.text().await.unwrap();
                reply(status, headers, body)
            }
        }
    }

    /// An HTTP/2 client for `uri` and the URL to ask it for: an absolute
    /// `uri`'s host resolves to the app's socket.
    fn http2(&self, uri: &str) -> (reqwest::Client, String) {
        let addr: std::net::SocketAddr = self.base["http://".len()..].parse().unwrap();
        let mut builder = reqwest::Client::builder().http2_prior_knowledge();
        let url = if uri.starts_with('/') {
            format!("{}{uri}", self.base)
        } else {
            let url = reqwest::Url::parse(uri).unwrap();
            builder = builder.resolve(url.host_str().unwrap(), addr);
            uri.to_owned()
        };
        (builder.build().unwrap(), url)
    }

    /// HTTP/1.1 over a fresh connection with hyper's client, `uri` as the
    /// request target exactly as given; `Host` is the app's address unless
    /// `headers` name one.
    async fn send_verbatim(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Reply {
        let stream = tokio::net::TcpStream::connect(&self.base["http://".len()..])
            .await
            .unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        let mut request = Request::builder().method(method).uri(uri);
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            request = request.header("host", &self.base["http://".len()..]);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = match body {
            Body::Empty => http_body_util::Full::new(bytes::Bytes::new()),
            Body::Sized(text) | Body::Streamed(text) => {
                request = request.header("content-length", text.len());
                http_body_util::Full::new(bytes::Bytes::from_static(text.as_bytes()))
            }
        };
        let response = sender
            .send_request(request.body(body).unwrap())
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

    pub async fn get(&self, uri: &str) -> Reply {
        self.send("GET", uri, &[]).await
    }
}

/// A request body.
#[derive(Clone, Copy, Debug)]
pub enum Body {
    Empty,
    /// Of known length (`Content-Length` over a socket).
    Sized(&'static str),
    /// Of unknown length (chunked over HTTP/1.1).
    Streamed(&'static str),
}

/// Whether reqwest's URL parser would send another target than `uri`
/// (it resolves `.`/`..` segments and their `%2e` spellings).
fn rewritten_by_reqwest(uri: &str) -> bool {
    let url = reqwest::Url::parse(&format!("http://x{uri}")).unwrap();
    let sent = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    sent != uri
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

/// Polls `condition` (bounded by `within`): for outcomes of background
/// work that gives no signal.
pub async fn eventually(what: &str, within: Duration, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Serves `app` on a local port; its base URL.
pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
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
