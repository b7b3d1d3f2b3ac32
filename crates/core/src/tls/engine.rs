//! Builds the rustls configurations, once per configuration generation, from the module config.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SignatureAlgorithm, SupportedCipherSuite};

use crate::conf::error::{ConfError, ErrorKind};
use crate::conf::{Located, Origin, ProxyCa, ProxyConf, ServerConf, version_name};
use crate::tls::certs;
use crate::tls::ciphers;

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

/// Picks the certificate OpenSSL (so mod_ssl) would present to this client, among a vhost's
/// certificates (e.g. RSA and ECDSA):
/// - TLS 1.3: the one that signs with the first signature scheme in the deciding order: the
///   client's list, or with the server's order (`TLSHonorClientOrder off`) ECDSA, Ed25519, RSA
///   (OpenSSL's own order of schemes);
/// - TLS 1.2: the one whose key type the first cipher suite in the deciding order needs (ECDSA
///   or Ed25519 keys for ECDHE_ECDSA suites, RSA for ECDHE_RSA), among the suites both sides
///   have: the client's order, or the vhost's.
///
/// rustls then picks the same suite, being bound by the same order. A client that lists TLS 1.3
/// suites is taken to speak TLS 1.3 (rustls shows the resolver no supported_versions; clients
/// without TLS 1.3 do not list its suites). A key must sign with a scheme
/// the client offered. When no certificate fits, the first one, so that the client fails with its
/// own error rather than our `access_denied` (DESIGN.md).
pub struct CertForClient {
    keys: Vec<Arc<CertifiedKey>>,
    /// The vhost's TLS 1.2 suites, in its order of preference.
    tls12_suites: Vec<rustls::CipherSuite>,
    /// The vhost's order decides, not the client's.
    server_order: bool,
}

impl fmt::Debug for CertForClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertForClient({} keys)", self.keys.len())
    }
}

/// The key type a TLS 1.2 suite needs.
fn suite_key_type(suite: rustls::CipherSuite) -> Option<SignatureAlgorithm> {
    let name = suite.as_str()?;
    if name.contains("_ECDSA_WITH_") {
        Some(SignatureAlgorithm::ECDSA)
    } else if name.contains("_RSA_WITH_") {
        Some(SignatureAlgorithm::RSA)
    } else {
        None
    }
}

/// The signature schemes TLS 1.3 allows (RFC 8446 4.2.3: no PKCS#1 v1.5, no SHA-1).
fn usable_in_tls13(s: &rustls::SignatureScheme) -> bool {
    use rustls::SignatureScheme as S;
    matches!(
        s,
        S::ECDSA_NISTP256_SHA256
            | S::ECDSA_NISTP384_SHA384
            | S::ECDSA_NISTP521_SHA512
            | S::ED25519
            | S::ED448
            | S::RSA_PSS_SHA256
            | S::RSA_PSS_SHA384
            | S::RSA_PSS_SHA512
    )
}

/// Whether a key of type `key` serves a suite needing `needed` (Ed25519 keys use ECDSA suites).
fn key_fits(key: SignatureAlgorithm, needed: SignatureAlgorithm) -> bool {
    key == needed || (key == SignatureAlgorithm::ED25519 && needed == SignatureAlgorithm::ECDSA)
}

impl CertForClient {
    /// With the client's order deciding (the suites are used for TLS 1.2 clients: give them with
    /// [`in_order`](Self::in_order)).
    pub fn new(keys: Vec<Arc<CertifiedKey>>) -> Self {
        assert!(!keys.is_empty(), "a certificate resolver needs at least one key");
        CertForClient { keys, tls12_suites: Vec::new(), server_order: false }
    }

    /// The vhost's TLS 1.2 suites in its order, and whether that order decides.
    pub fn in_order(mut self, tls12_suites: Vec<rustls::CipherSuite>, server_order: bool) -> Self {
        self.tls12_suites = tls12_suites;
        self.server_order = server_order;
        self
    }

    pub fn keys(&self) -> &[Arc<CertifiedKey>] {
        &self.keys
    }

    /// The key for a client offering `schemes` and `suites` (also used to know, per connection,
    /// which certificate was presented).
    pub fn choose(&self, schemes: &[rustls::SignatureScheme], suites: &[rustls::CipherSuite]) -> Arc<CertifiedKey> {
        if self.keys.len() == 1 {
            return self.keys[0].clone();
        }
        let signs = |k: &&Arc<CertifiedKey>| k.key.choose_scheme(schemes).is_some();
        let tls13 = suites.iter().any(|s| u16::from(*s) >> 8 == 0x13);
        let decided = if tls13 {
            // TLS 1.3 signs with none of the PKCS#1 v1.5 or SHA-1 schemes a client may still list.
            let schemes13: Vec<rustls::SignatureScheme> = schemes.iter().copied().filter(usable_in_tls13).collect();
            if self.server_order {
                [SignatureAlgorithm::ECDSA, SignatureAlgorithm::ED25519, SignatureAlgorithm::RSA].iter().find_map(
                    |alg| {
                        self.keys
                            .iter()
                            .find(|k| k.key.algorithm() == *alg && k.key.choose_scheme(&schemes13).is_some())
                    },
                )
            } else {
                schemes13.iter().find_map(|s| self.keys.iter().find(|k| k.key.choose_scheme(&[*s]).is_some()))
            }
        } else {
            let both: Vec<rustls::CipherSuite> = if self.server_order {
                self.tls12_suites.iter().filter(|s| suites.contains(s)).copied().collect()
            } else {
                suites.iter().filter(|s| self.tls12_suites.contains(s)).copied().collect()
            };
            both.iter()
                .filter_map(|s| suite_key_type(*s))
                .find_map(|needed| self.keys.iter().filter(signs).find(|k| key_fits(k.key.algorithm(), needed)))
        };
        // Undecided (a client we share no suite with, or suites unknown here): the first key
        // that signs for it and fits one of its suites, else the first.
        let fits_tls12 =
            |alg: SignatureAlgorithm| suites.iter().filter_map(|s| suite_key_type(*s)).any(|n| key_fits(alg, n));
        decided
            .or_else(|| self.keys.iter().find(|k| signs(k) && (tls13 || fits_tls12(k.key.algorithm()))))
            .unwrap_or(&self.keys[0])
            .clone()
    }
}

impl ResolvesServerCert for CertForClient {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(key) = KEY_OVERRIDE.with(|k| k.borrow().clone()) {
            return Some(key);
        }
        Some(self.choose(hello.signature_schemes(), hello.cipher_suites()))
    }
}

thread_local! {
    /// The key the connection being set up on this thread presents (see [`with_key_override`]).
    static KEY_OVERRIDE: std::cell::RefCell<Option<Arc<CertifiedKey>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` (the handshake step that resolves the certificate) presenting `key` instead of the
/// resolver's choice: rustls asks the resolver without any connection context, and the key with
/// this connection's stapled OCSP response is only known to our connection code.
///
/// The override is cleared even if `f` unwinds: left behind, it would make the next handshake on
/// this thread present this connection's certificate, whichever vhost that handshake is for.
pub fn with_key_override<R>(key: Option<Arc<CertifiedKey>>, f: impl FnOnce() -> R) -> R {
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            KEY_OVERRIDE.with(|k| k.borrow_mut().take());
        }
    }
    if key.is_none() {
        return f();
    }
    KEY_OVERRIDE.with(|k| *k.borrow_mut() = key);
    let _clear = Clear;
    f()
}

/// OCSP stapling for one certificate: its id (for `ap_ssl_ocsp_*`) and the key carrying the
/// latest response, rebuilt only when the response changes.
pub struct Stapling {
    pub id: [u8; 32],
    current: std::sync::Mutex<Option<(Vec<u8>, Arc<CertifiedKey>)>>,
}

impl Stapling {
    pub fn new(key: &CertifiedKey) -> Stapling {
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.cert.first().map_or(&[][..], |c| c.as_ref()));
        let mut id = [0u8; 32];
        id.copy_from_slice(digest.as_ref());
        Stapling { id, current: std::sync::Mutex::new(None) }
    }

    /// `key` with `response` stapled.
    pub fn with_response(&self, key: &Arc<CertifiedKey>, response: &[u8]) -> Arc<CertifiedKey> {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((der, k)) = cur.as_ref()
            && der == response
        {
            return k.clone();
        }
        let mut stapled = (**key).clone();
        stapled.ocsp = Some(response.to_vec());
        let stapled = Arc::new(stapled);
        *cur = Some((response.to_vec(), stapled.clone()));
        stapled
    }
}

/// A problem with one directive, found while building; reported with its origin.
pub type BuildError = ConfError;

/// An error of kind `kind` in the directive written at `origin`, if known.
fn err_at(kind: ErrorKind, origin: Option<&Origin>, message: impl Into<String>) -> ConfError {
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
/// rustls does not implement are returned as warnings (the C module's AH10319).
fn select_suites(
    available: &[SupportedCipherSuite],
    prefer: &[Located<u16>],
    suppress: &[Located<u16>],
) -> (Vec<SupportedCipherSuite>, Vec<String>) {
    let mut warnings = Vec::new();
    let by_id = |id: u16| available.iter().find(|s| u16::from(s.suite()) == id).copied();
    let name = |id: u16| ciphers::iana_name(id).unwrap_or("?").to_string();
    let suppressed = |s: &SupportedCipherSuite| suppress.iter().any(|l| l.value == u16::from(s.suite()));
    let mut out: Vec<SupportedCipherSuite> = Vec::new();
    for p in prefer {
        match by_id(p.value) {
            Some(s) if !suppressed(&s) && !out.contains(&s) => out.push(s),
            Some(_) => {}
            None => warnings.push(format!(
                "AH10319: {}: TLSCiphersPrefer names {}, which rustls does not support; it is ignored",
                p.origin,
                name(p.value)
            )),
        }
    }
    for s in suppress {
        if by_id(s.value).is_none() {
            warnings.push(format!(
                "{}: TLSCiphersSuppress names {}, which rustls does not support anyway",
                s.origin,
                name(s.value)
            ));
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

/// The one definition of "the same TLS settings": a digest of everything that decides who may
/// connect to a vhost and how. The certificates presented, the protocol floor, the suites in
/// their order and whose order wins, the client-certificate mode, and the *contents* of the
/// client CAs and CRLs (not their paths: a CA bundle or CRL replaced in place and reloaded must
/// not look the same, and servers of a fleet with the same files must agree).
///
/// Two uses, one value: a request may only be served by a vhost whose fingerprint equals that of
/// the vhost its handshake ran with (else 421), and sessions are filed under it, so a session
/// never resumes where the settings it was checked under no longer hold.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TlsFingerprint([u8; 32]);

impl TlsFingerprint {
    /// The prefix of this vhost's keys in the session cache.
    pub fn session_namespace(&self) -> [u8; 8] {
        let mut out = [0u8; 8];
        out.copy_from_slice(&self.0[..8]);
        out
    }
}

/// Collects the parts of a [`TlsFingerprint`]; each part is labelled and length-prefixed, so no
/// two different sequences of parts digest alike.
pub struct FingerprintBuilder(aws_lc_rs::digest::Context);

impl Default for FingerprintBuilder {
    fn default() -> Self {
        FingerprintBuilder(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256))
    }
}

impl FingerprintBuilder {
    pub fn part(&mut self, label: &str, bytes: &[u8]) -> &mut Self {
        self.0.update(&(label.len() as u32).to_be_bytes());
        self.0.update(label.as_bytes());
        self.0.update(&(bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
        self
    }

    /// The certificate chains presented, in order.
    pub fn certificates(&mut self, keys: &[Arc<CertifiedKey>]) -> &mut Self {
        for k in keys {
            self.part("key", &[]);
            for c in &k.cert {
                self.part("certificate", c);
            }
        }
        self
    }

    /// The protocol floor, the suites (in preference order) and whether the client's order wins.
    pub fn protocol(&mut self, floor: u16, suites: &[SupportedCipherSuite], honor_client_order: bool) -> &mut Self {
        let ids: Vec<u8> = suites.iter().flat_map(|s| u16::from(s.suite()).to_be_bytes()).collect();
        self.part("floor", &floor.to_be_bytes())
            .part("suites", &ids)
            .part("honor-client-order", &[u8::from(honor_client_order)])
    }

    pub fn finish(self) -> TlsFingerprint {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        TlsFingerprint(out)
    }
}

type ClientVerifier = Arc<dyn rustls::server::danger::ClientCertVerifier>;

/// `TLSClientCertificate optional_no_ca` (mod_ssl's): a client certificate from an unknown issuer
/// is accepted — its signature over the handshake is still checked — for the application to
/// judge by `SSL_CLIENT_VERIFY`; expired, revoked or otherwise invalid ones fail as with
/// `optional`. The verifier of `TLSClientCA`/`TLSClientCRL` decides, and grades ([`grade`](Self::grade)).
#[derive(Debug)]
pub struct GenerousVerifier {
    grader: Option<ClientVerifier>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl GenerousVerifier {
    /// `SSL_CLIENT_VERIFY` for a chain the client sent (leaf first): `SUCCESS` when it verifies,
    /// `GENEROUS` when only its issuer is unknown (or no `TLSClientCA` is given), `FAILED:reason`
    /// otherwise. Checked again at every handshake: a resumed session whose certificate has been
    /// revoked since reads FAILED.
    pub fn grade(&self, chain: &[rustls::pki_types::CertificateDer<'_>]) -> String {
        let Some((leaf, intermediates)) = chain.split_first() else { return "NONE".into() };
        let Some(grader) = &self.grader else { return "GENEROUS".into() };
        match grader.verify_client_cert(leaf, intermediates, rustls::pki_types::UnixTime::now()) {
            Ok(_) => "SUCCESS".into(),
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)) => "GENEROUS".into(),
            Err(e) => format!("FAILED:{e}"),
        }
    }
}

impl rustls::server::danger::ClientCertVerifier for GenerousVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.grader.as_ref().map_or(&[], |g| g.root_hint_subjects())
    }

    /// As mod_ssl's `optional_no_ca`: a certificate whose issuer is unknown passes (GENEROUS);
    /// one that is expired, revoked or otherwise invalid fails the handshake as with `optional`.
    fn verify_client_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let Some(grader) = &self.grader else { return Ok(rustls::server::danger::ClientCertVerified::assertion()) };
        match grader.verify_client_cert(end_entity, intermediates, now) {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)) => {
                Ok(rustls::server::danger::ClientCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What `TLSClientCertificate` builds: the verifier rustls uses, and for `optional_no_ca` the same
/// as a [`GenerousVerifier`] that grades what it let through.
struct ClientAuthBuild {
    verifier: Option<ClientVerifier>,
    generous: Option<Arc<GenerousVerifier>>,
    warnings: Vec<String>,
}

/// The client certificate verifier for `TLSClientCertificate optional|required|optional_no_ca`:
/// trust anchors from `TLSClientCA`, revocation from `TLSClientCRL` for the whole chain. Secure
/// defaults: a certificate whose issuer has no CRL is refused, and so is one checked against an
/// expired CRL (`optional_no_ca` grades them FAILED instead).
fn client_verifier(
    conf: &ServerConf,
    provider: &Arc<CryptoProvider>,
    fingerprint: &mut FingerprintBuilder,
) -> Result<ClientAuthBuild, BuildError> {
    use crate::conf::ClientAuth;
    let mode = conf.client_auth();
    let mode_byte = match mode {
        ClientAuth::None => 0,
        ClientAuth::Optional => 1,
        ClientAuth::Required => 2,
        ClientAuth::OptionalNoCa => 3,
    };
    fingerprint.part("client-auth", &[mode_byte]);
    if mode == ClientAuth::None {
        return Ok(ClientAuthBuild { verifier: None, generous: None, warnings: Vec::new() });
    }
    let origin = conf.client_auth.as_ref().map(|l| &l.origin);
    let generous = |grader: Option<ClientVerifier>| {
        Arc::new(GenerousVerifier { grader, algorithms: provider.signature_verification_algorithms })
    };
    let Some(ca) = &conf.client_ca else {
        if mode == ClientAuth::OptionalNoCa {
            // Nothing to grade against: every certificate is GENEROUS.
            let g = generous(None);
            return Ok(ClientAuthBuild { verifier: Some(g.clone()), generous: Some(g), warnings: Vec::new() });
        }
        return Err(err_at(
            ErrorKind::BadValue,
            origin,
            "TLSClientCertificate needs TLSClientCA: name the PEM file of the CAs whose client certificates \
             are accepted",
        ));
    };
    let roots = certs::load_roots(&ca.value).map_err(|e| e.within("TLSClientCA").at(&ca.origin))?;
    for anchor in &roots.roots {
        fingerprint
            .part("ca-subject", &anchor.subject)
            .part("ca-key", &anchor.subject_public_key_info)
            .part("ca-constraints", anchor.name_constraints.as_deref().unwrap_or_default());
    }
    let mut crls = Vec::new();
    for l in &conf.client_crls {
        crls.extend(certs::load_crls(&l.value).map_err(|e| e.within("TLSClientCRL").at(&l.origin))?);
    }
    for crl in &crls {
        fingerprint.part("crl", crl);
    }
    let mut warnings = Vec::new();
    if crls.is_empty() {
        let at = origin.map(|o| format!("{o}: ")).unwrap_or_default();
        warnings.push(format!("{at}client certificates are accepted without revocation checking: add TLSClientCRL"));
    }
    let mut builder = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls(crls)
        .enforce_revocation_expiration();
    if mode != ClientAuth::Required {
        builder = builder.allow_unauthenticated();
    }
    let strict: ClientVerifier = builder
        .build()
        .map_err(|e| err_at(ErrorKind::Build, origin, format!("cannot verify client certificates: {e}")))?;
    if mode == ClientAuth::OptionalNoCa {
        let g = generous(Some(strict));
        return Ok(ClientAuthBuild { verifier: Some(g.clone()), generous: Some(g), warnings });
    }
    Ok(ClientAuthBuild { verifier: Some(strict), generous: None, warnings })
}

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
) -> Result<(VhostTls, Vec<String>), BuildError> {
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

/// Backend client configs of one configuration generation, by their settings, so that every
/// backend connection of a scope shares one config (and its TLS session cache).
///
/// Every file a backend setting names (CAs, machine certificates) is read at start-up
/// ([`ProxyCache::load_files`]), so that a bad one fails `apache2 -t`. A request whose sections
/// combine settings in a way start-up did not build gets its config built from what was read
/// then: no file is read on a request thread.
#[derive(Default)]
pub struct ProxyCache {
    configs: std::sync::RwLock<std::collections::HashMap<crate::conf::ProxyKey, Arc<ProxyTls>>>,
    roots: std::collections::HashMap<PathBuf, rustls::RootCertStore>,
    machine_keys: std::collections::HashMap<(PathBuf, Option<PathBuf>), Arc<CertifiedKey>>,
}

impl ProxyCache {
    /// Reads the files `conf` names that were not read yet (start-up only).
    pub fn load_files(&mut self, conf: &ProxyConf) -> Result<(), BuildError> {
        if let Some(Located { value: ProxyCa::Path(path), .. }) = &conf.ca
            && !self.roots.contains_key(path)
        {
            self.roots.insert(path.clone(), proxy_roots(conf)?);
        }
        let base = provider();
        for spec in &conf.machine_certs {
            let id = (spec.cert_file.clone(), spec.key_file.clone());
            if let std::collections::hash_map::Entry::Vacant(slot) = self.machine_keys.entry(id) {
                slot.insert(
                    certs::load_certified_key(spec, &base, None)
                        .map_err(|e| e.within("TLSProxyMachineCertificate").at(&spec.origin))?,
                );
            }
        }
        Ok(())
    }

    /// The configs for `conf`: built once, then shared. Poison-tolerant: the map only ever holds
    /// complete entries.
    pub fn get_or_build(&self, conf: &ProxyConf) -> Result<(Arc<ProxyTls>, Vec<String>), BuildError> {
        let key = conf.key();
        let read = self.configs.read().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
        if let Some(tls) = read {
            return Ok((tls, Vec::new()));
        }
        let (tls, warnings) = self.build(conf)?;
        let tls = Arc::new(tls);
        let mut configs = self.configs.write().unwrap_or_else(|e| e.into_inner());
        Ok((configs.entry(key).or_insert(tls).clone(), warnings))
    }

    /// Builds the client configs for one proxy scope (TLSProxy* settings) from the files read
    /// at start-up.
    fn build(&self, conf: &ProxyConf) -> Result<(ProxyTls, Vec<String>), BuildError> {
        let not_read = |what: &str, path: &Path| {
            err_at(ErrorKind::Build, None, format!("{what} {} was not read at start-up", path.display()))
        };
        let roots = match &conf.ca {
            Some(Located { value: ProxyCa::Path(path), .. }) => {
                self.roots.get(path).cloned().ok_or_else(|| not_read("TLSProxyCA", path))?
            }
            _ => rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() },
        };
        let keys = conf
            .machine_certs
            .iter()
            .map(|spec| {
                self.machine_keys
                    .get(&(spec.cert_file.clone(), spec.key_file.clone()))
                    .cloned()
                    .ok_or_else(|| not_read("TLSProxyMachineCertificate", &spec.cert_file))
            })
            .collect::<Result<Vec<_>, _>>()?;
        build_proxy(conf, roots, keys)
    }
}

/// The client configs for one proxy scope: one per ALPN protocol mod_proxy may ask for.
pub struct ProxyTls {
    pub plain: Arc<rustls::ClientConfig>,
    pub by_alpn: Vec<(&'static [u8], Arc<rustls::ClientConfig>)>,
}

impl ProxyTls {
    /// The config offering exactly `protocols` (from mod_proxy's `proxy-request-alpn-protos`).
    pub fn for_protocols(&self, protocols: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        match protocols {
            [one] => self.by_alpn.iter().find(|(p, _)| p == one).map_or_else(|| self.plain.clone(), |(_, c)| c.clone()),
            _ => self.plain.clone(),
        }
    }
}

/// Presents the first machine certificate the backend accepts: one issued by a CA the backend
/// names in its request, else the first whose key can sign with a scheme it offers.
#[derive(Debug)]
struct FirstAcceptedMachineCert {
    keys: Vec<Arc<CertifiedKey>>,
}

impl rustls::client::ResolvesClientCert for FirstAcceptedMachineCert {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let usable = |k: &&Arc<CertifiedKey>| k.key.choose_scheme(sigschemes).is_some();
        let issued_by_hint = |k: &&Arc<CertifiedKey>| {
            k.cert.iter().any(|c| {
                x509_parser::parse_x509_certificate(c)
                    .is_ok_and(|(_, x)| root_hint_subjects.iter().any(|h| *h == x.issuer().as_raw()))
            })
        };
        self.keys.iter().filter(usable).find(issued_by_hint).or_else(|| self.keys.iter().find(usable)).cloned()
    }

    fn has_certs(&self) -> bool {
        !self.keys.is_empty()
    }
}

/// Trust anchors for backends: `TLSProxyCA` (a PEM bundle or a directory of them, hash links
/// included, each file once), else the Mozilla set from webpki-roots.
fn proxy_roots(conf: &ProxyConf) -> Result<rustls::RootCertStore, BuildError> {
    let Some(Located { value: ProxyCa::Path(ca_path), origin }) = &conf.ca else {
        return Ok(rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() });
    };
    certs::load_roots(ca_path).map_err(|e| e.within("TLSProxyCA").at(origin))
}

/// Builds the client configs for one proxy scope (TLSProxy* settings) with its trust anchors and
/// machine certificates.
fn build_proxy(
    conf: &ProxyConf,
    roots: rustls::RootCertStore,
    keys: Vec<Arc<CertifiedKey>>,
) -> Result<(ProxyTls, Vec<String>), BuildError> {
    let base = provider();
    let (suites, warnings) = select_suites(&base.cipher_suites, conf.prefer.ids(), conf.suppress.ids());
    let floor = conf.floor();
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        rustls::ALL_VERSIONS.iter().copied().filter(|v| u16::from(v.version) >= floor).collect();
    let provider = Arc::new(CryptoProvider { cipher_suites: suites, ..(*base).clone() });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| {
            err_at(
                ErrorKind::Build,
                conf.suppress.ids().first().map(|l| &l.origin),
                format!("cannot build the backend TLS configuration: {e}"),
            )
        })?
        .with_root_certificates(roots);
    let config = if keys.is_empty() {
        builder.with_no_client_auth()
    } else {
        builder.with_client_cert_resolver(Arc::new(FirstAcceptedMachineCert { keys }))
    };
    let plain = Arc::new(config);
    let by_alpn = [&b"h2"[..], &b"http/1.1"[..]]
        .into_iter()
        .map(|p| {
            let mut c = (*plain).clone();
            c.alpn_protocols = vec![p.to_vec()];
            (p, Arc::new(c))
        })
        .collect();
    Ok((ProxyTls { plain, by_alpn }, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::{CertSpec, CipherList, Origin};

    fn origin() -> Origin {
        Origin { file: "t.conf".into(), line: 3 }
    }

    fn key(alg: &'static rcgen::SignatureAlgorithm) -> Arc<CertifiedKey> {
        let p = crate::tls::certs::tests::provider();
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x.test".into()]).unwrap().self_signed(&key).unwrap();
        let der = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        Arc::new(CertifiedKey::from_der(vec![cert.der().clone()], der, &p).unwrap())
    }

    #[test]
    fn resolver_picks_first_key_the_client_can_use() {
        use rustls::CipherSuite as C;
        use rustls::SignatureScheme as S;
        let ec = key(&rcgen::PKCS_ECDSA_P256_SHA256);
        let rsa = key(&rcgen::PKCS_RSA_SHA256);
        let r = CertForClient::new(vec![ec.clone(), rsa.clone()]);
        let modern = [S::ECDSA_NISTP256_SHA256, S::RSA_PSS_SHA256];
        assert!(Arc::ptr_eq(&r.choose(&modern, &[C::TLS13_AES_128_GCM_SHA256]), &ec));
        assert!(Arc::ptr_eq(&r.choose(&[S::RSA_PSS_SHA256], &[C::TLS13_AES_128_GCM_SHA256]), &rsa));
        // A TLS 1.2 client offering only ECDHE_RSA suites gets the RSA chain.
        let rsa_suites = [C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256];
        assert!(Arc::ptr_eq(&r.choose(&modern, &rsa_suites), &rsa));
        // Nothing fits: the first one.
        assert!(Arc::ptr_eq(&r.choose(&[S::ED25519], &[C::TLS13_AES_128_GCM_SHA256]), &ec));
    }

    #[test]
    fn resolver_follows_the_deciding_order_as_openssl_does() {
        use rustls::CipherSuite as C;
        use rustls::SignatureScheme as S;
        let ec = key(&rcgen::PKCS_ECDSA_P256_SHA256);
        let rsa = key(&rcgen::PKCS_RSA_SHA256);
        let ours = vec![
            C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ];
        // RSA configured first, as most configurations have it.
        let by_client = CertForClient::new(vec![rsa.clone(), ec.clone()]).in_order(ours.clone(), false);
        let by_server = CertForClient::new(vec![rsa.clone(), ec.clone()]).in_order(ours, true);
        let schemes = [S::ECDSA_NISTP256_SHA256, S::RSA_PSS_SHA256];
        // TLS 1.3: the client's first scheme, or ECDSA first in the server's order.
        let tls13 = [C::TLS13_AES_128_GCM_SHA256];
        assert!(Arc::ptr_eq(&by_client.choose(&schemes, &tls13), &ec));
        assert!(Arc::ptr_eq(&by_client.choose(&[S::RSA_PSS_SHA256, S::ECDSA_NISTP256_SHA256], &tls13), &rsa));
        assert!(Arc::ptr_eq(&by_server.choose(&[S::RSA_PSS_SHA256, S::ECDSA_NISTP256_SHA256], &tls13), &ec));
        // PKCS#1 v1.5 does not sign in TLS 1.3: a client listing it first still gets ECDSA.
        assert!(Arc::ptr_eq(&by_client.choose(&[S::RSA_PKCS1_SHA256, S::ECDSA_NISTP256_SHA256], &tls13), &ec));
        // TLS 1.2: the first suite both have, in the client's order or in ours.
        let rsa_first = [C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384];
        assert!(Arc::ptr_eq(&by_client.choose(&schemes, &rsa_first), &rsa));
        assert!(Arc::ptr_eq(&by_server.choose(&schemes, &rsa_first), &ec));
        // A suite we do not have does not decide.
        let unknown_first = [C::TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384];
        assert!(Arc::ptr_eq(&by_client.choose(&schemes, &unknown_first), &ec));
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
        assert!(warnings[0].starts_with("AH10319: t.conf:3") && warnings[0].contains("TLS_RSA_WITH_RC4_128_MD5"));
    }

    /// A self-signed CA (PEM) and CRLs it signs, revoking the serials given.
    fn ca_with_crl(dir: &std::path::Path) -> (std::path::PathBuf, impl Fn(&str, &[u64]) -> std::path::PathBuf) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let ca = params.self_signed(&key).unwrap();
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, ca.pem()).unwrap();
        let dir = dir.to_path_buf();
        let crl = move |name: &str, revoked: &[u64]| {
            let crl = rcgen::CertificateRevocationListParams {
                this_update: rcgen::date_time_ymd(2025, 1, 1),
                next_update: rcgen::date_time_ymd(2099, 1, 1),
                crl_number: rcgen::SerialNumber::from(1u64),
                issuing_distribution_point: None,
                revoked_certs: revoked
                    .iter()
                    .map(|s| rcgen::RevokedCertParams {
                        serial_number: rcgen::SerialNumber::from(*s),
                        revocation_time: rcgen::date_time_ymd(2025, 6, 1),
                        reason_code: None,
                        invalidity_date: None,
                    })
                    .collect(),
                key_identifier_method: rcgen::KeyIdMethod::Sha256,
            };
            let pem = crl.signed_by(&rcgen::Issuer::new(params.clone(), &key)).unwrap().pem().unwrap();
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        (ca_path, crl)
    }

    #[test]
    fn key_override_is_cleared_when_the_handshake_step_panics() {
        let a = key(&rcgen::PKCS_ECDSA_P256_SHA256);
        let overridden = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            with_key_override(Some(a.clone()), || {
                assert!(KEY_OVERRIDE.with(|k| k.borrow().is_some()));
                panic!("handshake step fails");
            })
        }));
        assert!(overridden.is_err());
        assert!(KEY_OVERRIDE.with(|k| k.borrow().is_none()), "the next handshake on this thread sees no override");
    }

    #[test]
    fn fingerprint_covers_who_may_connect_by_content_not_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x.test".into()]).unwrap().self_signed(&key).unwrap();
        std::fs::write(dir.path().join("c.pem"), cert.pem() + &key.serialize_pem()).unwrap();
        let (ca, crl) = ca_with_crl(dir.path());
        fn l<T>(value: T) -> Located<T> {
            Located { value, origin: origin() }
        }
        let cert = dir.path().join("c.pem");
        // The fingerprint of a vhost with the certificate above, changed by `edit`.
        let fp = |edit: &dyn Fn(&mut ServerConf)| {
            let mut conf = ServerConf {
                certificates: vec![CertSpec { cert_file: cert.clone(), key_file: None, origin: origin() }],
                ..Default::default()
            };
            edit(&mut conf);
            build_vhost(&conf, None, None, &mut Providers::default()).unwrap().0.fingerprint
        };
        use crate::conf::ClientAuth;
        let auth = |mode: ClientAuth, crl_path: std::path::PathBuf| {
            let ca = ca.clone();
            move |c: &mut ServerConf| {
                c.client_auth = Some(l(mode));
                c.client_ca = Some(l(ca.clone()));
                c.client_crls = vec![l(crl_path.clone())];
            }
        };
        let plain = fp(&|_| {});
        assert_eq!(plain, fp(&|_| {}), "stable");
        let a_crl = crl("a.crl", &[]);
        let required = fp(&auth(ClientAuth::Required, a_crl.clone()));
        assert_ne!(plain, required, "client authentication");
        assert_ne!(required, fp(&auth(ClientAuth::Optional, a_crl.clone())), "its mode");
        let copy = dir.path().join("copy.crl");
        std::fs::copy(&a_crl, &copy).unwrap();
        assert_eq!(required, fp(&auth(ClientAuth::Required, copy)), "same CRL elsewhere");
        // One CRL each, same CA: only the CRL's contents tell them apart (the count did not).
        assert_ne!(required, fp(&auth(ClientAuth::Required, crl("b.crl", &[66]))), "another CRL");
        let replaced = fp(&auth(ClientAuth::Required, crl("a.crl", &[66])));
        assert_ne!(required, replaced, "a CRL replaced in place");
        assert_ne!(plain, fp(&|c| c.protocol_floor = Some(l(0x0304))), "protocol floor");
        assert_ne!(plain, fp(&|c| c.ciphers_suppress = CipherList::of(&[0x1301])), "suites");
        assert_ne!(plain, fp(&|c| c.honor_client_order = Some(false)), "whose order wins");
        assert_eq!(plain, fp(&|c| c.certificates[0].origin.line = 9), "where it was written does not matter");
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
