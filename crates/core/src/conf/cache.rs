//! `TLSSessionCache` ([`CacheSpec`]) and `TLSSessionCacheTimeout`: where sessions are kept and
//! for how long they resume.

use super::error::{ConfError, ErrorKind};

/// `TLSSessionCache`: where TLS session state is kept so that any child (or any server of a
/// fleet sharing memcached/redis) can resume a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheSpec {
    /// `none`: no server-side session state (no resumption).
    None,
    /// `default`: the cache used when nothing is configured (see [`DEFAULT_CACHE_ARGS`]).
    Default,
    /// An httpd socache provider (`shmcb`, `dbm`, `memcache`, `redis`, …) and its arguments.
    Provider { name: String, args: String },
}

/// The cache used when `TLSSessionCache` is not configured: shared memory under the runtime
/// directory, as the C module does.
pub const DEFAULT_CACHE_ARGS: &str = "tls/session-cache(512000)";

impl CacheSpec {
    pub fn parse(arg: &str) -> Result<CacheSpec, ConfError> {
        let arg = arg.trim();
        if arg.eq_ignore_ascii_case("none") {
            return Ok(CacheSpec::None);
        }
        if arg.eq_ignore_ascii_case("default") {
            return Ok(CacheSpec::Default);
        }
        let (name, args) = arg.split_once(':').unwrap_or((arg, ""));
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(ConfError::new(
                ErrorKind::BadValue,
                format!(
                    "TLSSessionCache '{arg}': write none, default or provider:arguments, e.g. \
                     shmcb:tls/cache(512000), memcache:host:11211 or redis:host:6379"
                ),
            ));
        }
        Ok(CacheSpec::Provider { name: name.to_ascii_lowercase(), args: args.to_string() })
    }

    /// The module that provides a socache type, for "load it" messages.
    pub fn module_for(provider: &str) -> String {
        format!("LoadModule socache_{provider}_module modules/mod_socache_{provider}.so")
    }
}

/// The longest `TLSSessionCacheTimeout`: the longest lifetime TLS 1.3 allows a ticket (RFC 8446,
/// 4.6.1).
pub const MAX_SESSION_LIFETIME_SECS: u64 = 7 * 24 * 60 * 60;

/// `TLSSessionCacheTimeout seconds` (as mod_ssl's `SSLSessionCacheTimeout`).
pub fn parse_session_lifetime(arg: &str) -> Result<u64, ConfError> {
    match arg.parse::<u64>() {
        Ok(n) if (1..=MAX_SESSION_LIFETIME_SECS).contains(&n) => Ok(n),
        _ => Err(ConfError::new(
            ErrorKind::BadValue,
            format!(
                "TLSSessionCacheTimeout '{arg}': write how many seconds a session may be resumed after its full \
                 handshake, from 1 to {MAX_SESSION_LIFETIME_SECS} (7 days), e.g. 300"
            ),
        )),
    }
}

impl std::fmt::Display for CacheSpec {
    /// The `TLSSessionCache` value, as [`CacheSpec::parse`] reads it back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheSpec::None => f.write_str("none"),
            CacheSpec::Default => f.write_str("default"),
            CacheSpec::Provider { name, args } if args.is_empty() => f.write_str(name),
            CacheSpec::Provider { name, args } => write!(f, "{name}:{args}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_lifetimes() {
        assert_eq!(parse_session_lifetime("300"), Ok(300));
        assert_eq!(parse_session_lifetime("604800"), Ok(604800));
        for bad in ["0", "-1", "5m", "", "604801"] {
            let e = parse_session_lifetime(bad).unwrap_err();
            assert!(e.to_string().contains("from 1 to 604800"), "{bad}: {e}");
        }
    }

    #[test]
    fn session_cache_specs() {
        assert_eq!(CacheSpec::parse("none"), Ok(CacheSpec::None));
        assert_eq!(
            CacheSpec::parse("shmcb:tls/cache(512000)"),
            Ok(CacheSpec::Provider { name: "shmcb".into(), args: "tls/cache(512000)".into() })
        );
        assert_eq!(
            CacheSpec::parse("memcache:127.0.0.1:11211,127.0.0.2:11211"),
            Ok(CacheSpec::Provider { name: "memcache".into(), args: "127.0.0.1:11211,127.0.0.2:11211".into() })
        );
        assert_eq!(CacheSpec::parse("shmcb"), Ok(CacheSpec::Provider { name: "shmcb".into(), args: "".into() }));
        for bad in ["", ":x", "shm cb:x", "../x:y"] {
            assert!(CacheSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
