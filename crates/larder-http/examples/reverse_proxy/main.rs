//! A caching reverse proxy built on [`ResponseCacheLayer`] in shared-cache
//! mode: every request goes to one upstream origin (method, path, query,
//! end-to-end headers and body forwarded as they came, bodies streamed
//! both ways), and what the origin's headers allow is cached by RFC 9111's
//! rules.
//!
//! ```text
//! cargo run -p larder-http --example reverse_proxy -- \
//!     --listen 127.0.0.1:8080 --upstream http://127.0.0.1:8000 [--redis redis://127.0.0.1:6379]
//! ```
//!
//! Without `--redis` the cache lives in the process (`Cache::in_memory`).
//! Proxies for different upstreams may share one Redis: each upstream has
//! its own namespace. The log goes to stderr, at `RUST_LOG`'s level
//! (`error`, `warn`, `info`, `debug` or `trace`; `info` by default); a
//! failed upstream call is logged there, and answered `502 Bad Gateway`
//! without its details.
//!
//! This is the proxy `scripts/cache-tests.sh` runs the HTTP caching
//! conformance suite (http-tests/cache-tests) against; it reads the
//! `listening on http://ADDR` line printed on stdout. Interim (1xx)
//! responses are not relayed: hyper's server does not send them.
//!
//! [`ResponseCacheLayer`]: larder_http::ResponseCacheLayer

mod proxy;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;

use tracing_subscriber::filter::LevelFilter;

/// The command line.
struct Args {
    listen: SocketAddr,
    upstream: String,
    redis: Option<String>,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut listen = None;
        let mut upstream = None;
        let mut redis = None;
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--listen" => {
                    listen = Some(value()?.parse().map_err(|e| format!("--listen: {e}"))?);
                }
                "--upstream" => upstream = Some(value()?),
                "--redis" => redis = Some(value()?),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(Args {
            listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            upstream: upstream.ok_or("--upstream URL is required")?,
            redis,
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|level| level.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(err) => {
            eprintln!("reverse_proxy: {err}");
            eprintln!("usage: reverse_proxy --upstream URL [--listen ADDR] [--redis URL]");
            return ExitCode::from(2);
        }
    };
    let app = match proxy::proxy(&args.upstream, args.redis.as_deref()).await {
        Ok(app) => app,
        Err(err) => {
            eprintln!("reverse_proxy: {err}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("reverse_proxy: cannot listen on {}: {err}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let address = match listener.local_addr() {
        Ok(address) => address,
        Err(err) => {
            eprintln!("reverse_proxy: the listener's address: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on http://{address} (upstream {})", args.upstream);
    if let Err(err) = axum::serve(listener, app).await {
        eprintln!("reverse_proxy: the server stopped: {err}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
