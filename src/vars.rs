//! The values of the `SSL_*` variables httpd modules ask for (mod_ssl's names), computed on demand
//! from the connection's state. Plain Rust: the hooks in `module.rs` only convert strings.

use rustls::CommonState;

use crate::certvars;
use crate::ciphers;
use crate::config::version_name;

/// What is known about one TLS connection when a variable is asked for.
pub struct ConnFacts<'a> {
    pub conn: &'a CommonState,
    pub sni: Option<&'a str>,
    /// DER of the certificate we presented.
    pub server_cert: Option<&'a [u8]>,
    /// The client's verified certificate chain (leaf first), if it sent one.
    pub client_chain: Option<&'a [rustls::pki_types::CertificateDer<'static>]>,
    pub now_unix: i64,
}

/// Variables `TLSOptions StdEnvVars` exports besides the certificate fields.
const STD_VARS: &[&str] = &[
    "HTTPS",
    "SSL_TLS_SNI",
    "SSL_PROTOCOL",
    "SSL_CIPHER",
    "SSL_CIPHER_EXPORT",
    "SSL_CIPHER_USEKEYSIZE",
    "SSL_CIPHER_ALGKEYSIZE",
    "SSL_VERSION_INTERFACE",
    "SSL_VERSION_LIBRARY",
    "SSL_SECURE_RENEG",
    "SSL_COMPRESS_METHOD",
    "SSL_CLIENT_VERIFY",
    "SSL_SESSION_RESUMED",
    "SSL_ALPN",
    "SSL_KEY_EXCHANGE",
];

/// Key size of the negotiated suite's bulk cipher, in bits.
fn cipher_bits(suite: &str) -> Option<u32> {
    if suite.contains("AES_128") || suite.contains("AES128") {
        Some(128)
    } else if suite.contains("AES_256") || suite.contains("AES256") || suite.contains("CHACHA20") {
        Some(256)
    } else {
        None
    }
}

impl ConnFacts<'_> {
    fn client_leaf(&self) -> Option<&[u8]> {
        self.client_chain.and_then(|c| c.first()).map(|c| c.as_ref())
    }
}

/// The value of variable `name`, or `None` when it is not ours or has no value.
pub fn lookup(name: &str, f: &ConnFacts<'_>) -> Option<String> {
    let conn = f.conn;
    let suite_name = || {
        let id = u16::from(conn.negotiated_cipher_suite()?.suite());
        Some(ciphers::iana_name(id).map_or_else(|| format!("TLS_CIPHER_0x{id:04x}"), str::to_string))
    };
    let value = match name {
        "HTTPS" => "on".to_string(),
        "SSL_PROTOCOL" => version_name(u16::from(conn.protocol_version()?)),
        "SSL_CIPHER" => suite_name()?,
        "SSL_CIPHER_USEKEYSIZE" | "SSL_CIPHER_ALGKEYSIZE" => cipher_bits(&suite_name()?)?.to_string(),
        "SSL_CIPHER_EXPORT" | "SSL_SECURE_RENEG" => "false".to_string(),
        "SSL_COMPRESS_METHOD" => "NULL".to_string(),
        "SSL_CLIENT_VERIFY" => if f.client_leaf().is_some() { "SUCCESS" } else { "NONE" }.to_string(),
        "SSL_TLS_SNI" => f.sni?.to_string(),
        "SSL_VERSION_INTERFACE" => format!("mod_tls/{}", crate::VERSION),
        "SSL_VERSION_LIBRARY" => format!("rustls/{}", crate::RUSTLS_VERSION),
        "SSL_SESSION_RESUMED" => match conn.handshake_kind()? {
            rustls::HandshakeKind::Resumed => "Resumed".to_string(),
            _ => "Initial".to_string(),
        },
        // Never exposed: it would hand resumption secrets to applications and logs.
        "SSL_SESSION_ID" => String::new(),
        "SSL_ALPN" => String::from_utf8_lossy(conn.alpn_protocol()?).into_owned(),
        "SSL_KEY_EXCHANGE" => format!("{:?}", conn.negotiated_key_exchange_group()?.name()),
        _ => {
            if let Some(suffix) = name.strip_prefix("SSL_SERVER_") {
                certvars::cert_var(f.server_cert?, suffix, f.now_unix)?
            } else if let Some(n) = name.strip_prefix("SSL_CLIENT_CERT_CHAIN_") {
                let n: usize = n.parse().ok()?;
                certvars::pem(f.client_chain?.get(n + 1)?)
            } else {
                let suffix = name.strip_prefix("SSL_CLIENT_")?;
                certvars::cert_var(f.client_leaf()?, suffix, f.now_unix)?
            }
        }
    };
    Some(value)
}

/// What `TLSOptions StdEnvVars` puts into a request's environment (no certificate PEMs).
pub fn std_env_vars(f: &ConnFacts<'_>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        STD_VARS.iter().filter_map(|n| lookup(n, f).map(|v| (n.to_string(), v))).collect();
    if let Some(der) = f.server_cert {
        out.extend(certvars::all_cert_vars(der, f.now_unix).into_iter().map(|(k, v)| (format!("SSL_SERVER_{k}"), v)));
    }
    if let Some(der) = f.client_leaf() {
        out.extend(certvars::all_cert_vars(der, f.now_unix).into_iter().map(|(k, v)| (format!("SSL_CLIENT_{k}"), v)));
    }
    out
}

/// What `TLSOptions ExportCertData` adds.
pub fn cert_data_vars(f: &ConnFacts<'_>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        f.server_cert.map(|der| ("SSL_SERVER_CERT".to_string(), certvars::pem(der))).into_iter().collect();
    if let Some(chain) = f.client_chain {
        for (i, cert) in chain.iter().enumerate() {
            let name = if i == 0 { "SSL_CLIENT_CERT".to_string() } else { format!("SSL_CLIENT_CERT_CHAIN_{}", i - 1) };
            out.push((name, certvars::pem(cert)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_sizes_from_suite_names() {
        assert_eq!(cipher_bits("TLS_AES_128_GCM_SHA256"), Some(128));
        assert_eq!(cipher_bits("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"), Some(256));
        assert_eq!(cipher_bits("TLS_CHACHA20_POLY1305_SHA256"), Some(256));
        assert_eq!(cipher_bits("TLS_NULL_WITH_NULL_NULL"), None);
    }
}
