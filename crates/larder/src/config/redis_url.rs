use std::fmt;

use crate::{Error, Result};

/// A Redis connection URL whose `Debug` and `Display` hide the password.
///
/// Accepts `redis://`, `rediss://` (TLS), `redis+unix://` and `unix://`,
/// with an optional ACL user and password: `redis://app:secret@host:6379/0`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// Checks that `url` is a Redis URL that this build can connect to.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) when the scheme or the
    /// syntax is wrong; the message shows the URL without its password.
    pub fn parse(url: &str) -> Result<Self> {
        let candidate = RedisUrl(url.to_owned());
        if url.starts_with("rediss://") && !cfg!(feature = "tls") {
            return Err(Error::config(format!(
                "REDIS_URL `{candidate}` asks for TLS; enable larder's `tls` feature"
            )));
        }
        match redis::Client::open(url) {
            Ok(_) => Ok(candidate),
            Err(err) => {
                let hint = if userinfo(url).is_some_and(|u| u.contains(['/', '?', '#', '@'])) {
                    "; percent-encode `/`, `?`, `#` and `@` in the user name and password \
                     (`/` is `%2F`)"
                } else {
                    ""
                };
                // The parser's message may quote any part of the URL: it
                // is kept only if it holds nothing secret.
                let detail = err.to_string();
                let detail = if secrets(url).any(|secret| detail.contains(secret)) {
                    "the parser's message is withheld: it quotes the password".to_owned()
                } else {
                    detail
                };
                Err(Error::config(format!(
                    "REDIS_URL `{candidate}` is not a usable Redis URL; expected \
                     redis://[user[:password]@]host[:port][/db] or rediss://…{hint}"
                ))
                .with_source(Box::<dyn std::error::Error + Send + Sync>::from(detail)))
            }
        }
    }

    /// The URL with its password, for connecting.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

/// The user-info of `url` (`user:password` in `redis://user:password@host`),
/// taken up to the **last** `@`: a password may hold unencoded `/`, `?`,
/// `#` or `@` (a pasted base64 secret), and cutting at the first of those
/// would print the rest of it.
fn userinfo(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    if rest.starts_with('/') {
        // `unix:///path?…`: no authority, so no user-info; an `@` is in
        // the path or the query.
        return None;
    }
    Some(&rest[..rest.rfind('@')?])
}

/// Every secret `url` holds: its user-info, the password in it, and
/// `pass`/`password` query values (`unix:///redis.sock?pass=secret`).
fn secrets(url: &str) -> impl Iterator<Item = &str> {
    let info = userinfo(url).filter(|info| !info.is_empty());
    let password = info.and_then(|info| info.split_once(':')).map(|(_, p)| p);
    let query = url
        .split_once('?')
        .map(|(_, query)| query)
        .into_iter()
        .flat_map(|query| query.split('&'))
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, _)| is_password_parameter(name))
        .map(|(_, value)| value);
    info.into_iter()
        .chain(password)
        .chain(query)
        .filter(|secret| !secret.is_empty())
}

/// Whether a query parameter named `name` carries a password, however it
/// is spelled: the client decodes `p%61ss` to `pass` before reading it.
fn is_password_parameter(name: &str) -> bool {
    let mut decoded = Vec::with_capacity(name.len());
    let mut bytes = name.bytes();
    while let Some(byte) = bytes.next() {
        let hex = |b: Option<u8>| b.and_then(|b| char::from(b).to_digit(16));
        decoded.push(match byte {
            b'%' => match (hex(bytes.next()), hex(bytes.next())) {
                (Some(hi), Some(lo)) => u8::try_from(hi * 16 + lo).unwrap_or(0),
                // Not an escape we can read: treat it as secret.
                _ => return true,
            },
            b'+' => b' ',
            byte => byte,
        });
    }
    let decoded = String::from_utf8_lossy(&decoded).to_ascii_lowercase();
    ["pass", "password"].contains(&decoded.trim())
}

/// `url` with every secret replaced by `***`: the user-info keeps only the
/// user name (`redis://app:***@host`, or `***` alone for a bare token,
/// which Redis treats as a password), and `pass`/`password` query values
/// become `***`. Works on URLs that do not parse, too.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        // Not a URL (`host:6379`): whatever precedes an `@` is secret.
        return match url.rfind('@') {
            Some(at) => format!("***{}", &url[at..]),
            None => url.to_owned(),
        };
    };
    let rest = &url[scheme_end..];
    let (info, after) = match userinfo(url).map(str::len) {
        Some(at) => {
            let info = &rest[..at];
            let user = match info.split_once(':') {
                Some((user, _)) if !user.contains(['/', '?', '#']) => format!("{user}:***"),
                _ => "***".to_owned(),
            };
            (user + "@", &rest[at + 1..])
        }
        None => (String::new(), rest),
    };
    let mut out = format!("{}{info}", &url[..scheme_end]);
    match after.split_once('?') {
        Some((base, query)) => {
            out.push_str(base);
            out.push('?');
            let params: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) if is_password_parameter(name) => format!("{name}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
        None => out.push_str(after),
    }
    out
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({})", redact(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_never_printed() {
        let url = RedisUrl::parse("redis://app:s3cret@cache.internal:6380/2").unwrap();
        assert_eq!(url.to_string(), "redis://app:***@cache.internal:6380/2");
        assert!(!format!("{url:?}").contains("s3cret"));
        let bare = RedisUrl::parse("redis://:s3cret@host/").unwrap();
        assert_eq!(bare.to_string(), "redis://:***@host/");
        assert_eq!(
            RedisUrl::parse("redis://host:1/").unwrap().to_string(),
            "redis://host:1/"
        );
    }

    #[test]
    fn unix_socket_passwords_are_hidden() {
        let url = RedisUrl::parse("unix:///run/redis.sock?db=1&pass=s3cret").unwrap();
        assert_eq!(url.to_string(), "unix:///run/redis.sock?db=1&pass=***");
        assert!(!format!("{url:?}").contains("s3cret"));
    }

    #[test]
    fn tls_urls_need_the_tls_feature() {
        let parsed = RedisUrl::parse("rediss://app:s3cret@host:6380/");
        if cfg!(feature = "tls") {
            assert_eq!(parsed.unwrap().to_string(), "rediss://app:***@host:6380/");
        } else {
            let err = parsed.unwrap_err();
            assert!(err.to_string().contains("`tls` feature"), "{err}");
            assert!(!err.to_string().contains("s3cret"));
        }
    }

    #[test]
    fn bad_url_is_a_config_error_without_password() {
        let err = RedisUrl::parse("http://u:s3cret@host/").unwrap_err();
        assert!(err.is_config());
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
