//! Builds a vhost's rustls server configurations ([`VhostTls`]), once per configuration
//! generation, from its settings: the crypto provider ([`provider`], [`Providers`]), the suites
//! in their order, the protocol versions, and the parts built elsewhere (the certificate
//! [`resolver`](crate::tls::resolver), the client certificate [`verifiers`](crate::tls::verifiers),
//! the [`fingerprint`](crate::tls::fingerprint)). Backend configs are [`backend`](crate::tls::backend)'s.

use std::fmt;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SupportedCipherSuite};

use crate::conf::error::{ConfError, ErrorKind};
use crate::conf::{Located, Origin, ServerConf, version_name};
use crate::tls::certs;
use crate::tls::fingerprint::{FingerprintBuilder, TlsFingerprint};
use crate::tls::ocsp::Stapling;
use crate::tls::resolver::CertForClient;
use crate::tls::verifiers::{ClientAuthBuild, GenerousVerifier, client_verifier};
use crate::tls::warning::Warning;

// Moved to their own modules; the old paths stay for code written against them.
pub use crate::tls::backend::{ProxyCache, ProxyTls};

/// A one-off config answering an ACME tls-alpn-01 challenge with the certificate mod_md gives.
pub fn challenge_config(cert_pem: &str, key_pem: &str) -> Result<Arc<ServerConfig>, ConfError> {
    use rustls_pki_types::pem::PemObject;
    let bad =
        |what: &str, e: &dyn fmt::Display| ConfError::new(ErrorKind::KeyMaterial, format!("challenge {what}: {e}"));
    let chain: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| bad("certificate", &e))?;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| bad("key", &e))?;
    let provider = provider();
    let signing_key = provider.key_provider.load_private_key(key).map_err(|e| bad("key", &e))?;
    // Not through `with_single_cert`: its consistency check parses the certificate with webpki,
    // which rejects the critical acmeIdentifier extension every challenge certificate carries.
    let resolver = CertForClient::new(vec![Arc::new(CertifiedKey::new(chain, signing_key))]);
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| ConfError::new(ErrorKind::Build, e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"acme-tls/1".to_vec()];
    Ok(Arc::new(config))
}

/// ALPN protocols we prepare a config variant for. httpd decides per connection which one (if
/// any) to answer (`ap_select_protocol`); the variants are built here so no config is built then.
pub const KNOWN_ALPN: &[&[u8]] = &[b"h2", b"http/1.1", b"acme-tls/1"];

/// The crypto provider every config starts from: aws-lc-rs, with its default (post-quantum hybrid
/// first) key exchange groups and suites.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A problem with one directive, found while building; reported with its origin.
pub type BuildError = ConfError;

/// An error of kind `kind` in the directive written at `origin`, if known.
pub(crate) fn err_at(kind: ErrorKind, origin: Option<&Origin>, message: impl Into<String>) -> ConfError {
    let e = ConfError::new(kind, message);
    match origin {
        Some(o) => e.at(o),
        None => e,
    }
}

/// Everything a vhost needs at handshake time, built once.
pub struct VhostTls {
    /// The certificates are mod_md's temporary fallback: requests are answered 503.
    pub fallback: bool,
    /// Per key of the resolver (same order): OCSP stapling, when mod_md provides responses.
    pub stapling: std::sync::OnceLock<Vec<Option<Arc<Stapling>>>>,
    /// For clients that offer no ALPN protocol we answer.
    pub plain: Arc<ServerConfig>,
    /// The same config answering one ALPN protocol, per entry of [`KNOWN_ALPN`]: made at the
    /// first handshake that negotiates it (most of thousands of vhosts never need all of them).
    by_alpn: [std::sync::OnceLock<Arc<ServerConfig>>; KNOWN_ALPN.len()],
    pub resolver: Arc<CertForClient>,
    /// What a request's vhost must share with the handshake's (see [`TlsFingerprint`]).
    pub fingerprint: TlsFingerprint,
    /// `TLSClientCertificate optional_no_ca`: grades the certificates it let through.
    pub generous: Option<Arc<GenerousVerifier>>,
    /// What the status page shows of each key's certificate (same order as the resolver's),
    /// read from the certificates at the page's first request, not at start-up.
    pub summaries: std::sync::OnceLock<Vec<crate::tls::stats::CertSummary>>,
}

impl VhostTls {
    /// The config that answers ALPN `protocol` (or none).
    pub fn for_protocol(&self, protocol: Option<&[u8]>) -> Arc<ServerConfig> {
        let Some(i) = protocol.and_then(|p| KNOWN_ALPN.iter().position(|k| *k == p)) else {
            return self.plain.clone();
        };
        self.by_alpn[i]
            .get_or_init(|| {
                let mut c = (*self.plain).clone();
                c.alpn_protocols = vec![KNOWN_ALPN[i].to_vec()];
                Arc::new(c)
            })
            .clone()
    }
}

/// Orders and filters the provider's suites by `TLSCiphersPrefer` / `TLSCiphersSuppress`. Names
/// rustls does not implement are returned as warnings (the C module's AH10319 for preferred ones).
pub(crate) fn select_suites(
    available: &[SupportedCipherSuite],
    prefer: &[Located<u16>],
    suppress: &[Located<u16>],
) -> (Vec<SupportedCipherSuite>, Vec<Warning>) {
    let mut warnings = Vec::new();
    let by_id = |id: u16| available.iter().find(|s| u16::from(s.suite()) == id).copied();
    let suppressed = |s: &SupportedCipherSuite| suppress.iter().any(|l| l.value == u16::from(s.suite()));
    let mut out: Vec<SupportedCipherSuite> = Vec::new();
    for p in prefer {
        match by_id(p.value) {
            Some(s) if !suppressed(&s) && !out.contains(&s) => out.push(s),
            Some(_) => {}
            None => warnings.push(Warning::PreferredSuiteUnsupported { origin: p.origin.clone(), suite: p.value }),
        }
    }
    for s in suppress {
        if by_id(s.value).is_none() {
            warnings.push(Warning::SuppressedSuiteUnsupported { origin: s.origin.clone(), suite: s.value });
        }
    }
    for s in available {
        if !suppressed(s) && !out.contains(s) {
            out.push(*s);
        }
    }
    (out, warnings)
}

/// Where a vhost keeps its sessions: given how they are kept and checked (its namespace,
/// [`TlsFingerprint::session_namespace`], lifetime and client certificate verifier).
pub type SessionStorageFactory<'a> =
    &'a dyn Fn(crate::tls::sessions::SessionPolicy) -> Arc<dyn rustls::server::StoresServerSessions>;
/// The crypto providers of one start-up pass, by the suites they offer: the vhosts that offer
/// the same suites (with thousands of vhosts, nearly all) share one, instead of each holding a
/// copy of the provider's tables.
#[derive(Default)]
pub struct Providers {
    base: Option<Arc<CryptoProvider>>,
    by_suites: std::collections::HashMap<Vec<u16>, Arc<CryptoProvider>>,
}

impl Providers {
    /// aws-lc-rs's provider with every suite.
    fn base(&mut self) -> Arc<CryptoProvider> {
        self.base.get_or_insert_with(provider).clone()
    }

    /// The provider offering exactly `suites`, in that order.
    fn with_suites(&mut self, suites: Vec<SupportedCipherSuite>) -> Arc<CryptoProvider> {
        let ids: Vec<u16> = suites.iter().map(|s| u16::from(s.suite())).collect();
        let base = self.base();
        self.by_suites
            .entry(ids)
            .or_insert_with(|| Arc::new(CryptoProvider { cipher_suites: suites, ..(*base).clone() }))
            .clone()
    }
}

/// Builds the configs for one virtual host. Returns warnings worth logging alongside.
pub fn build_vhost(
    conf: &ServerConf,
    mut ask: Option<certs::PassphraseSource<'_>>,
    sessions: Option<SessionStorageFactory<'_>>,
    providers: &mut Providers,
) -> Result<(VhostTls, Vec<Warning>), BuildError> {
    let base = providers.base();
    let mut keys = Vec::with_capacity(conf.certificates.len());
    for spec in &conf.certificates {
        let ask_once: Option<certs::PassphraseSource<'_>> = match &mut ask {
            Some(f) => Some(&mut **f),
            None => None,
        };
        let key = certs::load_certified_key(spec, &base, ask_once)
            .map_err(|e| e.within("TLSCertificate").at(&spec.origin))?;
        keys.push(key);
    }
    let (suites, warnings) = select_suites(&base.cipher_suites, conf.ciphers_prefer.ids(), conf.ciphers_suppress.ids());
    let floor = conf.floor();
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        rustls::ALL_VERSIONS.iter().copied().filter(|v| u16::from(v.version) >= floor).collect();
    for v in &versions {
        if !suites.iter().any(|s| s.version() == *v) {
            return Err(err_at(
                ErrorKind::Ciphers,
                conf.ciphers_suppress.ids().first().map(|l| &l.origin),
                format!(
                    "TLSCiphersSuppress leaves no cipher suite for {}: keep at least one, or raise the floor \
                     with TLSProtocol",
                    version_name(u16::from(v.version))
                ),
            ));
        }
    }
    let honor = conf.honor_client_order.unwrap_or(true);
    let mut fingerprint = FingerprintBuilder::default();
    fingerprint.certificates(&keys).protocol(floor, &suites, honor);
    let tls12_order: Vec<rustls::CipherSuite> =
        suites.iter().filter(|s| matches!(s, rustls::SupportedCipherSuite::Tls12(_))).map(|s| s.suite()).collect();
    let provider = providers.with_suites(suites);
    let resolver = Arc::new(CertForClient::new(keys).in_order(tls12_order, !honor));
    let ClientAuthBuild { verifier, generous, warnings: auth_warnings } =
        client_verifier(conf, &provider, &mut fingerprint)?;
    let fingerprint = fingerprint.finish();
    let mut warnings = warnings;
    warnings.extend(auth_warnings);
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| err_at(ErrorKind::Build, None, format!("cannot build the TLS configuration: {e}")))?;
    let session_policy = crate::tls::sessions::SessionPolicy {
        namespace: fingerprint.session_namespace(),
        lifetime_secs: conf.session_lifetime_secs(),
        client_verifier: verifier.clone(),
    };
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver.clone());
    config.ignore_client_order = !honor;
    config.session_storage = match sessions {
        Some(make) => make(session_policy),
        None => Arc::new(rustls::server::NoServerSessionStorage {}),
    };
    // Each full handshake stores one TLS 1.3 ticket (stateful: its state lives in the shared
    // cache, so any child or fleet member can resume it); each resumption replaces it.
    config.send_tls13_tickets = 1;
    let plain = Arc::new(config);
    Ok((
        VhostTls {
            fallback: false,
            stapling: std::sync::OnceLock::new(),
            plain,
            by_alpn: Default::default(),
            resolver,
            fingerprint,
            generous,
            summaries: std::sync::OnceLock::new(),
        },
        warnings,
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::conf::CertSpec;

    pub(crate) fn origin() -> Origin {
        Origin { file: "t.conf".into(), line: 3 }
    }

    #[test]
    fn suites_are_ordered_suppressed_and_unsupported_ones_warned() {
        let p = provider();
        let l = |v: u16| Located { value: v, origin: origin() };
        let (suites, warnings) =
            select_suites(&p.cipher_suites, &[l(0xc02c), l(0x0004), l(0x1303)], &[l(0x1301), l(0x0005)]);
        let ids: Vec<u16> = suites.iter().map(|s| u16::from(s.suite())).collect();
        assert_eq!(&ids[..2], &[0xc02c, 0x1303], "preferred first, in the order given");
        assert!(!ids.contains(&0x1301), "suppressed");
        assert!(ids.contains(&0x1302), "the rest stays");
        assert_eq!(warnings.len(), 2);
        let first = warnings[0].to_string();
        assert!(first.starts_with("AH10319: t.conf:3") && first.contains("TLS_RSA_WITH_RC4_128_MD5"));
    }
    #[test]
    fn build_reports_the_directive_origin() {
        let spec = CertSpec { cert_file: "/nonexistent/c.pem".into(), key_file: None, origin: origin() };
        let conf = ServerConf { certificates: vec![spec], ..Default::default() };
        let e = build_vhost(&conf, None, None, &mut Providers::default()).err().unwrap();
        assert_eq!(e.origin.as_ref().map(ToString::to_string).as_deref(), Some("t.conf:3"));
        assert_eq!(e.kind, ErrorKind::Unreadable, "the kind comes from where it was found");
        assert!(e.message.starts_with("TLSCertificate: cannot read"), "{}", e.message);
    }
}
