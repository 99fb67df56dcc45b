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
            Err(err) => Err(Error::config(format!(
                "REDIS_URL `{candidate}` is not a usable Redis URL; expected \
                 redis://[user[:password]@]host[:port][/db] or rediss://…"
            ))
            .with_source(Box::<dyn std::error::Error + Send + Sync>::from(
                err.to_string().replace(url, &candidate.to_string()),
            ))),
        }
    }

    /// The URL with its password, for connecting.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    fn redacted(&self) -> String {
        let url = &self.0;
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (url.as_str(), None),
        };
        let mut out = redact_userinfo(base);
        if let Some(query) = query {
            // `unix:///redis.sock?user=app&pass=secret`
            let params: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) if ["pass", "password"].contains(&name) => {
                        format!("{name}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            out.push('?');
            out.push_str(&params.join("&"));
        }
        out
    }
}

/// `scheme://user:password@host/…` with the password (or a lone user-info
/// token, which Redis treats as a password) replaced by `***`.
fn redact_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    let user = match userinfo.find(':') {
        Some(colon) => format!("{}:***", &userinfo[..colon]),
        None => "***".to_owned(),
    };
    format!("{}{}{}", &url[..scheme_end], user, &rest[at..])
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({})", self.redacted())
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
