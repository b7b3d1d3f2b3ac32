//! The values of the `SSL_*` variables httpd modules ask for (mod_ssl's names), computed on demand
//! from the connection's state. Plain Rust: the hook in `module.rs` only converts strings.

use rustls::ServerConnection;

use crate::ciphers;
use crate::config::version_name;

/// What is known about one TLS connection when a variable is asked for.
pub struct ConnFacts<'a> {
    pub conn: &'a ServerConnection,
    pub sni: Option<&'a str>,
}

/// The value of variable `name`, or `None` when it is not ours or has no value.
pub fn lookup(name: &str, f: &ConnFacts<'_>) -> Option<String> {
    let conn = f.conn;
    let suite = || conn.negotiated_cipher_suite();
    let value = match name {
        "HTTPS" => "on".to_string(),
        "SSL_PROTOCOL" => version_name(u16::from(conn.protocol_version()?)),
        "SSL_CIPHER" => {
            let id = u16::from(suite()?.suite());
            ciphers::iana_name(id).map_or_else(|| format!("TLS_CIPHER_0x{id:04x}"), str::to_string)
        }
        "SSL_TLS_SNI" => f.sni?.to_string(),
        "SSL_VERSION_INTERFACE" => format!("mod_tls/{}", crate::VERSION),
        "SSL_VERSION_LIBRARY" => format!("rustls/{}", crate::RUSTLS_VERSION),
        "SSL_ALPN" => String::from_utf8_lossy(conn.alpn_protocol()?).into_owned(),
        _ => return None,
    };
    Some(value)
}
