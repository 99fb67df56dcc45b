use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode, response};
use serde::{Deserialize, Serialize};

/// A response as stored: status, end-to-end headers, body, when it was
/// stored and its strong validator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredResponse {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, Bytes)>,
    pub(crate) body: Bytes,
    pub(crate) stored_at_ms: u64,
    pub(crate) etag: String,
    /// `must-revalidate`, `proxy-revalidate` or `s-maxage`: never served
    /// after its TTL.
    #[serde(default)]
    pub(crate) stale_forbidden: bool,
    /// The `Age` it arrived with (seconds): it was that old when stored.
    #[serde(default)]
    pub(crate) initial_age_secs: u64,
    /// Shared-cache mode only: how long the response is fresh and what
    /// else its headers say about reusing it.
    #[serde(default)]
    pub(crate) shared: Option<super::freshness::Lifetime>,
    /// Shared-cache mode only: the header names the response's `Vary`
    /// lists (lowercase) with the values the request that fetched it sent
    /// (`None`: absent); a request sending other values is a miss.
    #[serde(default)]
    pub(crate) vary: Vec<(String, Option<Bytes>)>,
}

/// Hop-by-hop and proxy headers, and the ones this layer sets itself: never
/// stored.
const NOT_STORED: [HeaderName; 11] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::AGE,
    HeaderName::from_static("x-cache"),
    header::CONTENT_LENGTH,
];

impl StoredResponse {
    pub(crate) fn new(parts: &response::Parts, body: Bytes, stored_at_ms: u64) -> Self {
        // Headers the Connection header lists are hop-by-hop too.
        let listed: Vec<String> = parts
            .headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|n| n.trim().to_ascii_lowercase())
            .collect();
        let headers = parts
            .headers
            .iter()
            .filter(|(name, _)| {
                !NOT_STORED.contains(name) && !listed.iter().any(|l| l == name.as_str())
            })
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    Bytes::copy_from_slice(value.as_bytes()),
                )
            })
            .collect();
        let etag = match parts
            .headers
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
        {
            Some(etag) => etag.to_owned(),
            None => {
                let hash = blake3::hash(&body);
                format!("\"{}\"", &hash.to_hex()[..32])
            }
        };
        Self {
            status: parts.status.as_u16(),
            headers,
            body,
            stored_at_ms,
            etag,
            stale_forbidden: !super::policy::CacheControl::parse(&parts.headers).allows_stale(),
            initial_age_secs: super::policy::current_age_secs(
                &parts.headers,
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(stored_at_ms),
            ),
            shared: None,
            vary: Vec::new(),
        }
    }

    /// The stored value of header `name`, if any.
    pub(crate) fn header(&self, name: &str) -> Option<&Bytes> {
        self.headers
            .iter()
            .find(|(stored, _)| stored.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// The stored headers as a map.
    pub(crate) fn header_map(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::from_bytes(value),
            ) {
                headers.append(name, value);
            }
        }
        headers
    }

    /// The response to send: `Age` from `now_ms`, `X-Cache`, the `ETag`;
    /// `with_body: false` for HEAD and 304.
    pub(crate) fn to_response(
        &self,
        now_ms: u64,
        x_cache: &'static str,
        not_modified: bool,
    ) -> Response<Option<Bytes>> {
        let mut headers = self.header_map();
        if let Ok(etag) = HeaderValue::from_str(&self.etag) {
            headers.insert(header::ETAG, etag);
        }
        let age = self
            .initial_age_secs
            .saturating_add(now_ms.saturating_sub(self.stored_at_ms) / 1000);
        headers.insert(header::AGE, HeaderValue::from(age));
        headers.insert(
            HeaderName::from_static("x-cache"),
            HeaderValue::from_static(x_cache),
        );
        let (status, body) = if not_modified {
            for name in [
                header::CONTENT_TYPE,
                header::CONTENT_ENCODING,
                header::CONTENT_LANGUAGE,
            ] {
                headers.remove(name);
            }
            (StatusCode::NOT_MODIFIED, None)
        } else {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(self.body.len()));
            (
                StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK),
                Some(self.body.clone()),
            )
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }

    /// Whether `If-None-Match` matches this response's validator, by weak
    /// comparison (RFC 9110 §13.1.2).
    pub(crate) fn matches(&self, if_none_match: &HeaderMap) -> bool {
        if_none_match
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .any(|tag| tag == "*" || weak(tag) == weak(&self.etag))
    }
}

/// An entity tag without its weakness indicator.
fn weak(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}
