//! The values of the `SSL_*` variables httpd modules ask for (mod_ssl's names), computed on demand
//! from what the handshake established. Plain Rust: the request hooks in the module's `src/requests.rs`
//! only convert strings.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;
use rustls::{CommonState, HandshakeKind, NamedGroup, ProtocolVersion};

use crate::conf::version_name;
use crate::tls::certvars;
use crate::tls::ciphers;

/// What one TLS connection's handshake established, taken once when it completed and never
/// changed afterwards: request threads (HTTP/2 streams run on other threads than their
/// connection) share it read-only instead of reading the live rustls connection, which the
/// connection's own thread keeps using.
#[derive(Debug, Default)]
pub struct HandshakeFacts {
    pub protocol: Option<ProtocolVersion>,
    pub suite: Option<u16>,
    pub kind: Option<HandshakeKind>,
    pub alpn: Option<Vec<u8>>,
    pub key_exchange: Option<NamedGroup>,
    pub sni: Option<String>,
    /// The certificate we presented (shared with the vhost's configuration, not copied).
    pub server_key: Option<Arc<CertifiedKey>>,
    /// The peer's certificate chain (leaf first), if it sent one.
    pub peer_chain: Option<Vec<CertificateDer<'static>>>,
    /// `SSL_CLIENT_VERIFY` when the handshake accepted certificates it did not verify
    /// (`optional_no_ca`); otherwise a chain that is here was verified.
    pub client_verify: Option<String>,
    /// From our first flight to the peer's last (`SSL_HANDSHAKE_RTT`): one round trip plus the
    /// peer's processing, in microseconds.
    pub handshake_rtt_us: Option<u64>,
}

impl HandshakeFacts {
    /// The facts of `conn`, whose handshake has completed.
    pub fn of(conn: &CommonState, sni: Option<String>, server_key: Option<Arc<CertifiedKey>>) -> Self {
        HandshakeFacts {
            protocol: conn.protocol_version(),
            suite: conn.negotiated_cipher_suite().map(|s| u16::from(s.suite())),
            kind: conn.handshake_kind(),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            key_exchange: conn.negotiated_key_exchange_group().map(|g| g.name()),
            sni,
            server_key,
            peer_chain: conn.peer_certificates().map(<[CertificateDer<'static>]>::to_vec),
            client_verify: None,
            handshake_rtt_us: None,
        }
    }
}

/// What is known about one TLS connection when a variable is asked for.
pub struct ConnFacts<'a> {
    pub handshake: &'a HandshakeFacts,
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
    "SSL_HANDSHAKE_RTT",
    "SSL_CLIENT_CERT_RFC4523_CEA",
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

impl<'a> ConnFacts<'a> {
    /// The facts of `handshake` as of now (certificate variables count the days left).
    pub fn now(handshake: &'a HandshakeFacts) -> Self {
        ConnFacts { handshake, now_unix: crate::tls::time::now_unix() }
    }

    fn client_chain(&self) -> Option<&[CertificateDer<'static>]> {
        self.handshake.peer_chain.as_deref()
    }

    fn client_leaf(&self) -> Option<&[u8]> {
        self.client_chain().and_then(|c| c.first()).map(|c| c.as_ref())
    }

    fn server_cert(&self) -> Option<&[u8]> {
        self.handshake.server_key.as_ref().and_then(|k| k.cert.first()).map(|c| c.as_ref())
    }
}

/// The value of variable `name`, or `None` when it is not ours or has no value.
pub fn lookup(name: &str, f: &ConnFacts<'_>) -> Option<String> {
    let hs = f.handshake;
    let suite_name = || {
        let id = hs.suite?;
        Some(ciphers::iana_name(id).map_or_else(|| format!("TLS_CIPHER_0x{id:04x}"), str::to_string))
    };
    let value = match name {
        "HTTPS" => "on".to_string(),
        "SSL_PROTOCOL" => version_name(u16::from(hs.protocol?)),
        "SSL_CIPHER" => suite_name()?,
        "SSL_CIPHER_USEKEYSIZE" | "SSL_CIPHER_ALGKEYSIZE" => cipher_bits(&suite_name()?)?.to_string(),
        "SSL_CIPHER_EXPORT" | "SSL_SECURE_RENEG" => "false".to_string(),
        "SSL_COMPRESS_METHOD" => "NULL".to_string(),
        "SSL_CLIENT_VERIFY" => match (&hs.client_verify, f.client_leaf()) {
            (Some(graded), Some(_)) => graded.clone(),
            (_, Some(_)) => "SUCCESS".to_string(),
            (_, None) => "NONE".to_string(),
        },
        "SSL_TLS_SNI" => hs.sni.clone()?,
        "SSL_VERSION_INTERFACE" => format!("mod_tls/{}", crate::VERSION),
        "SSL_VERSION_LIBRARY" => format!("rustls/{}", crate::RUSTLS_VERSION),
        "SSL_SESSION_RESUMED" => match hs.kind? {
            HandshakeKind::Resumed => "Resumed".to_string(),
            _ => "Initial".to_string(),
        },
        // Never exposed: it would hand resumption secrets to applications and logs.
        "SSL_SESSION_ID" => String::new(),
        "SSL_ALPN" => String::from_utf8_lossy(hs.alpn.as_deref()?).into_owned(),
        "SSL_KEY_EXCHANGE" => format!("{:?}", hs.key_exchange?),
        "SSL_HANDSHAKE_RTT" => hs.handshake_rtt_us?.to_string(),
        _ => {
            if let Some(suffix) = name.strip_prefix("SSL_SERVER_") {
                certvars::cert_var(f.server_cert()?, suffix, f.now_unix)?
            } else if let Some(n) =
                name.strip_prefix("SSL_CLIENT_CERT_CHAIN_").or_else(|| name.strip_prefix("SSL_CLIENT_CHAIN_"))
            {
                // mod_ssl's names, and the C module's for the same certificates.
                let n: usize = n.parse().ok()?;
                certvars::pem(f.client_chain()?.get(n + 1)?)
            } else {
                let suffix = name.strip_prefix("SSL_CLIENT_")?;
                certvars::cert_var(f.client_leaf()?, suffix, f.now_unix)?
            }
        }
    };
    Some(value)
}

/// The request's user under `TLSUserName var`: the variable's value, only for a client certificate
/// that verified (`SUCCESS`). A `GENEROUS` one (`optional_no_ca`, or no `TLSClientCA`) proves only
/// that the client holds some key: anyone can make a self-signed `CN=admin`, so it never becomes
/// a login (mod_ssl's `SSLUserName` does take it; we deliberately differ). `FAILED` and `NONE`
/// give no user either.
pub fn user_name(var: &str, f: &ConnFacts<'_>) -> Option<String> {
    if lookup("SSL_CLIENT_VERIFY", f).as_deref() != Some("SUCCESS") {
        return None;
    }
    lookup(var, f).filter(|v| !v.is_empty())
}

/// What `TLSOptions StdEnvVars` puts into a request's environment (no certificate PEMs).
pub fn std_env_vars(f: &ConnFacts<'_>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        STD_VARS.iter().filter_map(|n| lookup(n, f).map(|v| (n.to_string(), v))).collect();
    if let Some(der) = f.server_cert() {
        out.extend(certvars::all_cert_vars(der, f.now_unix).into_iter().map(|(k, v)| (format!("SSL_SERVER_{k}"), v)));
    }
    if let Some(der) = f.client_leaf() {
        out.extend(certvars::all_cert_vars(der, f.now_unix).into_iter().map(|(k, v)| (format!("SSL_CLIENT_{k}"), v)));
    }
    out
}

/// What `TLSOptions ExportCertData` adds. `SSL_CLIENT_CERT` is set (empty) without a client
/// certificate too, as mod_ssl sets it: scripts written for mod_ssl test it for emptiness.
pub fn cert_data_vars(f: &ConnFacts<'_>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        f.server_cert().map(|der| ("SSL_SERVER_CERT".to_string(), certvars::pem(der))).into_iter().collect();
    match f.client_chain().filter(|c| !c.is_empty()) {
        None => out.push(("SSL_CLIENT_CERT".to_string(), String::new())),
        Some(chain) => {
            for (i, cert) in chain.iter().enumerate() {
                let pem = certvars::pem(cert);
                if i == 0 {
                    out.push(("SSL_CLIENT_CERT".to_string(), pem));
                } else {
                    // mod_ssl's name and the C module's.
                    out.push((format!("SSL_CLIENT_CHAIN_{}", i - 1), pem.clone()));
                    out.push((format!("SSL_CLIENT_CERT_CHAIN_{}", i - 1), pem));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_come_from_the_handshake_snapshot() {
        let hs = HandshakeFacts {
            protocol: Some(ProtocolVersion::TLSv1_3),
            suite: Some(0x1302),
            kind: Some(HandshakeKind::Resumed),
            alpn: Some(b"h2".to_vec()),
            key_exchange: Some(NamedGroup::X25519MLKEM768),
            sni: Some("www.example.net".into()),
            ..Default::default()
        };
        let f = ConnFacts { handshake: &hs, now_unix: 0 };
        let v = |n: &str| lookup(n, &f);
        assert_eq!(v("SSL_PROTOCOL").as_deref(), Some("TLSv1.3"));
        assert_eq!(v("SSL_CIPHER").as_deref(), Some("TLS_AES_256_GCM_SHA384"));
        // No client certificate: SSL_CLIENT_CERT is exported empty, as mod_ssl does.
        assert_eq!(cert_data_vars(&f), [("SSL_CLIENT_CERT".to_string(), String::new())]);
        assert_eq!(v("SSL_CIPHER_USEKEYSIZE").as_deref(), Some("256"));
        assert_eq!(v("SSL_SESSION_RESUMED").as_deref(), Some("Resumed"));
        assert_eq!(v("SSL_ALPN").as_deref(), Some("h2"));
        assert_eq!(v("SSL_KEY_EXCHANGE").as_deref(), Some("X25519MLKEM768"));
        assert_eq!(v("SSL_TLS_SNI").as_deref(), Some("www.example.net"));
        assert_eq!(v("SSL_CLIENT_VERIFY").as_deref(), Some("NONE"));
        assert_eq!(v("SSL_CLIENT_S_DN"), None, "no client certificate");
        assert_eq!(v("SSL_SERVER_S_DN"), None, "no certificate recorded");
        assert_eq!(v("SSL_SESSION_ID").as_deref(), Some(""), "never exposed");
        let names: Vec<String> = std_env_vars(&f).into_iter().map(|(k, _)| k).collect();
        assert!(names.contains(&"SSL_PROTOCOL".to_string()) && !names.contains(&"SSL_SERVER_CERT".to_string()));
    }

    #[test]
    fn only_a_verified_certificate_names_the_user() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "admin");
        let der = params.self_signed(&key).unwrap().der().clone();
        let with = |verify: Option<&str>| HandshakeFacts {
            peer_chain: Some(vec![der.clone()]),
            client_verify: verify.map(str::to_string),
            ..Default::default()
        };
        let user = |hs: &HandshakeFacts| user_name("SSL_CLIENT_S_DN_CN", &ConnFacts { handshake: hs, now_unix: 0 });
        assert_eq!(user(&with(None)).as_deref(), Some("admin"), "verified by the vhost's verifier");
        assert_eq!(user(&with(Some("SUCCESS"))).as_deref(), Some("admin"));
        assert_eq!(user(&with(Some("GENEROUS"))), None, "optional_no_ca: never a login");
        assert_eq!(user(&with(Some("FAILED:expired"))), None);
        assert_eq!(user(&HandshakeFacts::default()), None, "no certificate");
    }

    #[test]
    fn key_sizes_from_suite_names() {
        assert_eq!(cipher_bits("TLS_AES_128_GCM_SHA256"), Some(128));
        assert_eq!(cipher_bits("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"), Some(256));
        assert_eq!(cipher_bits("TLS_CHACHA20_POLY1305_SHA256"), Some(256));
        assert_eq!(cipher_bits("TLS_NULL_WITH_NULL_NULL"), None);
    }
}
