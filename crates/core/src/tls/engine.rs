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
use crate::tls::fingerprint::{FingerprintBuilder, FingerprintParts, TlsFingerprint};
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

/// Everything a vhost needs at handshake time, built once by start-up: its certificates, what
/// tells it apart (the fingerprint, and with it its sessions' namespace), and the settings it
/// shares with every vhost whose settings are equal but for the certificates ([`SharedTls`]: one
/// rustls config for thousands of vhosts with a certificate each).
///
/// Only read after start-up. What handshakes need to write (the rustls configs, made at the
/// first handshake that needs each; reference counts; parsed keys) is in a [`VhostInProcess`]
/// each process makes for itself: httpd's children share start-up's memory with the parent
/// until one writes to a page, and a write beside each of thousands of vhosts would copy them
/// all into each child.
pub struct VhostTls {
    /// The certificates are mod_md's temporary fallback: requests are answered 503.
    pub fallback: bool,
    /// Per key (same order): OCSP stapling, when mod_md provides responses.
    pub stapling: std::sync::OnceLock<Box<[Option<Arc<Stapling>>]>>,
    /// The settings, with the vhosts that have the same ones.
    shared: Arc<SharedTls>,
    /// Its certificates, in the order the resolver tries them.
    keys: Box<[certs::LoadedKey]>,
    /// What a request's vhost must share with the handshake's (see [`TlsFingerprint`]).
    pub fingerprint: TlsFingerprint,
    /// Its place among the vhost configurations of its generation: where a process keeps its
    /// [`VhostInProcess`] (numbered by whoever builds them, see `build_vhost`).
    pub slot: u32,
}

/// What a process makes of a [`VhostTls`] at the vhost's first handshake there, and writes to:
/// its own copies of the certificates (with the keys parsed), its session store, and its rustls
/// configs, each made at the first handshake that needs it.
pub struct VhostInProcess {
    shared: Arc<SharedTls>,
    resolver: Arc<CertForClient>,
    sessions: Arc<dyn rustls::server::StoresServerSessions>,
    /// One cache of compressed certificates per vhost (its own certificates), shared by its
    /// configs, as when each vhost had a config of its own.
    compression: Arc<rustls::compress::CompressionCache>,
    /// For clients that offer no ALPN protocol we answer (first), then per entry of
    /// [`KNOWN_ALPN`].
    configs: [std::sync::OnceLock<Arc<ServerConfig>>; 1 + KNOWN_ALPN.len()],
}

impl VhostInProcess {
    /// The certificates as this process presents them (same order as the vhost's).
    pub fn resolver(&self) -> &CertForClient {
        &self.resolver
    }

    /// The config that answers ALPN `protocol` (or none).
    pub fn for_protocol(&self, protocol: Option<&[u8]>) -> Arc<ServerConfig> {
        let i = protocol.and_then(|p| KNOWN_ALPN.iter().position(|k| *k == p)).map_or(0, |i| i + 1);
        self.configs[i]
            .get_or_init(|| {
                let mut c = self.shared.template.clone();
                c.cert_resolver = self.resolver.clone();
                c.session_storage = self.sessions.clone();
                c.cert_compression_cache = self.compression.clone();
                if i > 0 {
                    c.alpn_protocols = vec![KNOWN_ALPN[i - 1].to_vec()];
                }
                Arc::new(c)
            })
            .clone()
    }
}

/// What the vhosts whose settings are equal but for the certificates share, built once per
/// start-up pass ([`Providers`]): the rustls config without certificates and session store (each
/// vhost's configs are copies of it), the client certificate verifiers, the TLS 1.2 suite order
/// the resolver follows, and the settings' part of the fingerprint.
pub struct SharedTls {
    /// Presents no certificate of its own: only copied (see [`VhostInProcess::for_protocol`]).
    template: ServerConfig,
    /// `TLSClientCertificate optional_no_ca`: grades the certificates it let through.
    generous: Option<Arc<GenerousVerifier>>,
    client_verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    /// The TLS 1.2 suites in the settings' order, and whether that order decides.
    tls12_order: Arc<[rustls::CipherSuite]>,
    server_order: bool,
    /// The fingerprint's parts after the certificates.
    fingerprint: FingerprintParts,
    lifetime_secs: u64,
    /// Without a session cache.
    no_sessions: Arc<dyn rustls::server::StoresServerSessions>,
    /// What building these settings warned of, given again to each vhost built with them.
    warnings: Vec<Warning>,
}

impl VhostTls {
    /// Its certificates as start-up loaded them (for what reads them: the status page, OCSP,
    /// the fingerprint). Handshakes present [`VhostInProcess::resolver`]'s copies.
    pub fn certified_keys(&self) -> impl ExactSizeIterator<Item = &Arc<CertifiedKey>> {
        self.keys.iter().map(|k| &k.certified)
    }

    /// What this process needs to write for the vhost, made from what start-up built: its own
    /// copies of the certificates, its session store (through `sessions`, without one when
    /// None), no rustls config yet. Start-up's build lives for the configuration generation,
    /// and what is made here borrows from it. With it, what the administrator must hear of (a
    /// key that cannot be used, see [`certs::LoadedKey::for_this_process`]). A certificate that
    /// other configurations present too is copied once per process, in `copies`.
    pub fn in_this_process(
        &'static self,
        sessions: Option<SessionStorageFactory<'_>>,
        copies: &certs::CopiesInProcess,
    ) -> (VhostInProcess, Vec<String>) {
        let mut problems = Vec::new();
        let keys = self
            .keys
            .iter()
            .map(|k| {
                let (key, problem) = k.for_this_process(copies);
                problems.extend(problem);
                key
            })
            .collect();
        let shared = &self.shared;
        let resolver = Arc::new(CertForClient::new(keys).in_order(shared.tls12_order.clone(), shared.server_order));
        let sessions = match sessions {
            Some(make) => make(crate::tls::sessions::SessionPolicy {
                namespace: self.fingerprint.session_namespace(),
                lifetime_secs: shared.lifetime_secs,
                client_verifier: shared.client_verifier.clone(),
            }),
            None => shared.no_sessions.clone(),
        };
        let here = VhostInProcess {
            shared: shared.clone(),
            resolver,
            sessions,
            compression: Arc::new(rustls::compress::CompressionCache::default()),
            configs: Default::default(),
        };
        (here, problems)
    }

    /// `TLSClientCertificate optional_no_ca`: grades the certificates it let through.
    pub fn generous(&self) -> Option<&Arc<GenerousVerifier>> {
        self.shared.generous.as_ref()
    }

    /// Whether `other` was built with the same settings object (the certificates aside).
    pub fn shares_settings_with(&self, other: &VhostTls) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
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
/// What one start-up pass builds once and shares: the crypto providers, by the suites they offer
/// (the vhosts that offer the same suites, with thousands of vhosts nearly all, share one instead
/// of each holding a copy of the provider's tables), and the vhosts' settings apart from their
/// certificates ([`SharedTls`]), by their values and where each was written.
#[derive(Default)]
pub struct Providers {
    base: Option<Arc<CryptoProvider>>,
    by_suites: std::collections::HashMap<Vec<u16>, Arc<CryptoProvider>>,
    shared: std::collections::HashMap<SharedKey, Arc<SharedTls>>,
    /// The certificates read, by a digest of their files' paths: one that many vhosts name (a
    /// wildcard) is read, parsed and held once, whatever else their settings say. A digest, not
    /// the paths: copies of thousands of paths, freed when start-up ends, would leave holes
    /// among what the vhosts keep.
    keys: std::collections::HashMap<[u8; 32], certs::LoadedKey>,
}

/// The settings that make a `SharedTls`, with where each was written. Without settings (most
/// vhosts) it holds nothing on the heap: looking it up costs no allocation.
#[derive(PartialEq, Eq, Hash)]
struct SharedKey {
    protocol_floor: Option<Located<u16>>,
    ciphers_prefer: Vec<Located<u16>>,
    ciphers_suppress: Vec<Located<u16>>,
    honor_client_order: Option<bool>,
    client_auth: Option<Located<crate::conf::ClientAuth>>,
    client_ca: Option<Located<std::path::PathBuf>>,
    client_crls: Vec<Located<std::path::PathBuf>>,
    session_lifetime_secs: Option<u64>,
}

impl Providers {
    /// aws-lc-rs's provider with every suite.
    fn base(&mut self) -> Arc<CryptoProvider> {
        self.base.get_or_insert_with(provider).clone()
    }

    /// The certificate and key of `spec`, read once per pass (a failure is not kept: each vhost
    /// that names the files gets the error, with where it names them).
    fn certified_key(
        &mut self,
        spec: &crate::conf::CertSpec,
        ask: Option<certs::PassphraseSource<'_>>,
    ) -> Result<certs::LoadedKey, BuildError> {
        let files = spec.files_id();
        if let Some(key) = self.keys.get(&files) {
            key.named_again();
            return Ok(key.clone());
        }
        let base = self.base();
        let key = certs::load_key_pair(spec, &base, ask)?;
        self.keys.insert(files, key.clone());
        Ok(key)
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

    /// The settings of `conf` apart from its certificates, built once per pass for all the vhosts
    /// that have them. The key holds where each setting was written too, so the warnings and
    /// errors name the lines they do when each vhost builds its own; a failure is not kept (each
    /// vhost that has these settings gets the error, as before).
    fn shared(&mut self, conf: &ServerConf) -> Result<Arc<SharedTls>, BuildError> {
        let key = SharedKey {
            protocol_floor: conf.protocol_floor.clone(),
            ciphers_prefer: conf.ciphers_prefer.ids().to_vec(),
            ciphers_suppress: conf.ciphers_suppress.ids().to_vec(),
            honor_client_order: conf.honor_client_order,
            client_auth: conf.client_auth.clone(),
            client_ca: conf.client_ca.clone(),
            client_crls: conf.client_crls.clone(),
            session_lifetime_secs: conf.session_lifetime_secs,
        };
        if let Some(shared) = self.shared.get(&key) {
            return Ok(shared.clone());
        }
        let shared = Arc::new(self.build_shared(conf)?);
        self.shared.insert(key, shared.clone());
        Ok(shared)
    }

    fn build_shared(&mut self, conf: &ServerConf) -> Result<SharedTls, BuildError> {
        let base = self.base();
        let (suites, warnings) =
            select_suites(&base.cipher_suites, conf.ciphers_prefer.ids(), conf.ciphers_suppress.ids());
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
        let mut fingerprint = FingerprintParts::default();
        fingerprint.protocol(floor, &suites, honor);
        let tls12_order: Vec<rustls::CipherSuite> =
            suites.iter().filter(|s| matches!(s, rustls::SupportedCipherSuite::Tls12(_))).map(|s| s.suite()).collect();
        let provider = self.with_suites(suites);
        let ClientAuthBuild { verifier, generous, warnings: auth_warnings } =
            client_verifier(conf, &provider, &mut fingerprint)?;
        let mut warnings = warnings;
        warnings.extend(auth_warnings);
        let builder = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| err_at(ErrorKind::Build, None, format!("cannot build the TLS configuration: {e}")))?;
        let builder = match verifier.clone() {
            Some(v) => builder.with_client_cert_verifier(v),
            None => builder.with_no_client_auth(),
        };
        let no_sessions: Arc<dyn rustls::server::StoresServerSessions> =
            Arc::new(rustls::server::NoServerSessionStorage {});
        // Each vhost's copies present its own certificates (see `VhostTls::for_protocol`).
        let mut template = builder.with_cert_resolver(Arc::new(NoCertificate));
        template.ignore_client_order = !honor;
        template.session_storage = no_sessions.clone();
        // Each full handshake stores one TLS 1.3 ticket (stateful: its state lives in the shared
        // cache, so any child or fleet member can resume it); each resumption replaces it.
        template.send_tls13_tickets = 1;
        Ok(SharedTls {
            template,
            generous,
            client_verifier: verifier,
            tls12_order: tls12_order.into(),
            server_order: !honor,
            fingerprint,
            lifetime_secs: conf.session_lifetime_secs(),
            no_sessions,
            warnings,
        })
    }
}

/// The shared config's resolver: never used to answer a client (each vhost's copy has its own).
#[derive(Debug)]
struct NoCertificate;

impl rustls::server::ResolvesServerCert for NoCertificate {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        None
    }
}

/// Builds the configs for one virtual host. Returns warnings worth logging alongside.
pub fn build_vhost(
    conf: &ServerConf,
    mut ask: Option<certs::PassphraseSource<'_>>,
    slot: u32,
    providers: &mut Providers,
) -> Result<(VhostTls, Vec<Warning>), BuildError> {
    let specs = conf.certificates.specs();
    let mut keys = Vec::with_capacity(specs.len());
    for spec in &specs {
        let ask_once: Option<certs::PassphraseSource<'_>> = match &mut ask {
            Some(f) => Some(&mut **f),
            None => None,
        };
        let key = providers.certified_key(spec, ask_once).map_err(|e| e.within("TLSCertificate").at(&spec.origin))?;
        keys.push(key);
    }
    let shared = providers.shared(conf)?;
    let mut fingerprint = FingerprintBuilder::default();
    fingerprint.certificates(keys.iter().map(|k| &k.certified)).parts(&shared.fingerprint);
    let fingerprint = fingerprint.finish();
    let warnings = shared.warnings.clone();
    Ok((
        VhostTls {
            fallback: false,
            stapling: std::sync::OnceLock::new(),
            shared,
            keys: keys.into_boxed_slice(),
            fingerprint,
            slot,
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
    /// A CA and `n` vhosts (`site<i>.test`), each with a certificate of its own that the CA
    /// signs, the files in `dir`: the CA's certificate, and each vhost's settings.
    fn vhosts_signed_by_one_ca(
        dir: &std::path::Path,
        n: usize,
    ) -> (rustls_pki_types::CertificateDer<'static>, Vec<ServerConf>) {
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.clone().self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, &ca_key);
        let confs = (0..n)
            .map(|i| {
                let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
                let cert = rcgen::CertificateParams::new(vec![format!("site{i}.test")])
                    .unwrap()
                    .signed_by(&key, &issuer)
                    .unwrap();
                let (c, k) = (dir.join(format!("site{i}.crt")), dir.join(format!("site{i}.key")));
                std::fs::write(&c, cert.pem()).unwrap();
                std::fs::write(&k, key.serialize_pem()).unwrap();
                ServerConf {
                    certificates: vec![CertSpec { cert_file: c, key_file: Some(k), origin: origin() }].into(),
                    ..Default::default()
                }
            })
            .collect();
        (ca.der().clone(), confs)
    }

    /// The certificate `config` presents to a client asking for `name` (a handshake in memory).
    fn presented(
        config: Arc<ServerConfig>,
        ca: &rustls_pki_types::CertificateDer<'static>,
        name: &str,
    ) -> rustls_pki_types::CertificateDer<'static> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut client = rustls::ClientConnection::new(Arc::new(client), name.to_string().try_into().unwrap()).unwrap();
        let mut server = rustls::ServerConnection::new(config).unwrap();
        for _ in 0..10 {
            let mut bytes = Vec::new();
            client.write_tls(&mut bytes).unwrap();
            server.read_tls(&mut &bytes[..]).unwrap();
            server.process_new_packets().unwrap();
            bytes.clear();
            server.write_tls(&mut bytes).unwrap();
            client.read_tls(&mut &bytes[..]).unwrap();
            client.process_new_packets().unwrap();
            if !client.is_handshaking() && !server.is_handshaking() {
                break;
            }
        }
        assert!(!client.is_handshaking(), "the handshake completes");
        client.peer_certificates().unwrap()[0].clone().into_owned()
    }

    /// Thousands of vhosts with a certificate each and the same settings: one rustls config
    /// (built once, copied per vhost at its first handshake), each vhost presenting its own
    /// certificate and keeping its sessions under its own namespace, the 421 decision as when each
    /// vhost had a config of its own.
    #[test]
    fn vhosts_with_equal_settings_share_one_config_and_present_their_own_certificates() {
        use crate::tls::policy::misdirected;
        let dir = tempfile::tempdir().unwrap();
        let (ca, confs) = vhosts_signed_by_one_ca(dir.path(), 3);
        let made = std::cell::RefCell::new(Vec::new());
        let factory = |policy: crate::tls::sessions::SessionPolicy| {
            let store: Arc<dyn rustls::server::StoresServerSessions> =
                Arc::new(rustls::server::NoServerSessionStorage {});
            made.borrow_mut().push((policy.namespace, store.clone()));
            store
        };
        let mut providers = Providers::default();
        let mut build = |conf: &ServerConf| -> &'static VhostTls {
            Box::leak(Box::new(build_vhost(conf, None, 0, &mut providers).unwrap().0))
        };
        let (a, b) = (build(&confs[0]), build(&confs[1]));
        assert!(a.shares_settings_with(b), "one config for equal settings");
        for (i, vhost) in [a, b].into_iter().enumerate() {
            let (here, problems) = vhost.in_this_process(Some(&factory), &Default::default());
            assert!(problems.is_empty());
            let own = &vhost.certified_keys().next().unwrap().cert[0];
            for protocol in [None, Some(&b"h2"[..]), Some(&b"http/1.1"[..])] {
                let config = here.for_protocol(protocol);
                assert_eq!(&presented(config.clone(), &ca, &format!("site{i}.test")), own, "its own certificate");
                assert!(Arc::ptr_eq(&config, &here.for_protocol(protocol)), "made once");
                assert_eq!(config.alpn_protocols, protocol.map(|p| vec![p.to_vec()]).unwrap_or_default());
                // Its sessions, under its own namespace.
                let (namespace, store) = &made.borrow()[i];
                assert_eq!(*namespace, vhost.fingerprint.session_namespace());
                assert!(std::ptr::addr_eq(Arc::as_ptr(&config.session_storage), Arc::as_ptr(store)));
            }
        }
        assert_ne!(a.fingerprint.session_namespace(), b.fingerprint.session_namespace());
        // 421: another certificate is other settings, as before; the same certificate and
        // settings written elsewhere are the same.
        assert_ne!(a.fingerprint, b.fingerprint);
        assert!(misdirected(false, Some(&a.fingerprint), Some(&b.fingerprint)));
        let mut again = confs[0].clone();
        again.certificates.specs_mut()[0].origin.line = 77;
        let again = build(&again);
        assert_eq!(again.fingerprint, a.fingerprint);
        assert!(!misdirected(false, Some(&again.fingerprint), Some(&a.fingerprint)));
        // The digest is the one a vhost with a config of its own had: its certificates, then
        // the settings' parts in turn.
        let mut f = FingerprintBuilder::default();
        let suites: Vec<u8> =
            provider().cipher_suites.iter().flat_map(|s| u16::from(s.suite()).to_be_bytes()).collect();
        f.certificates(a.certified_keys())
            .part("floor", &0x0303u16.to_be_bytes())
            .part("suites", &suites)
            .part("honor-client-order", &[1])
            .part("client-auth", &[0]);
        assert_eq!(f.finish(), a.fingerprint);
        // Other settings: a config of their own.
        let mut other = confs[2].clone();
        other.honor_client_order = Some(false);
        let other = build(&other);
        assert!(!other.shares_settings_with(a));
        let config = |v: &'static VhostTls| v.in_this_process(None, &Default::default()).0.for_protocol(None);
        assert!(config(other).ignore_client_order && !config(a).ignore_client_order);
        assert_eq!(presented(config(other), &ca, "site2.test"), other.certified_keys().next().unwrap().cert[0]);
    }

    /// A certificate that vhosts of different settings name (a wildcard, some of its vhosts
    /// asking for client certificates) is read once at start-up and copied, its key parsed,
    /// once per process for all of them.
    #[test]
    fn a_certificate_named_by_vhosts_of_different_settings_is_copied_once_per_process() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, confs) = vhosts_signed_by_one_ca(dir.path(), 2);
        let mut other = confs[0].clone();
        other.honor_client_order = Some(false);
        let mut providers = Providers::default();
        let mut build = |conf: &ServerConf| -> &'static VhostTls {
            Box::leak(Box::new(build_vhost(conf, None, 0, &mut providers).unwrap().0))
        };
        let (a, b, alone) = (build(&confs[0]), build(&other), build(&confs[1]));
        assert!(!a.shares_settings_with(b));
        assert!(Arc::ptr_eq(a.certified_keys().next().unwrap(), b.certified_keys().next().unwrap()), "read once");
        let copies = certs::CopiesInProcess::default();
        let presented_key = |v: &'static VhostTls| v.in_this_process(None, &copies).0.resolver().keys()[0].clone();
        let (in_a, in_b) = (presented_key(a), presented_key(b));
        assert!(Arc::ptr_eq(&in_a, &in_b), "one copy in this process");
        assert_eq!(presented(b.in_this_process(None, &copies).0.for_protocol(None), &ca, "site0.test"), in_a.cert[0]);
        // Another process makes its own.
        assert!(!Arc::ptr_eq(&b.in_this_process(None, &Default::default()).0.resolver().keys()[0], &in_a));
        // A certificate only one configuration names is not kept for sharing.
        assert!(!Arc::ptr_eq(&presented_key(alone), &presented_key(alone)));
    }

    /// Handshakes in a process write only to what that process made for the vhost: start-up's
    /// certificates are presented as copies (their key parsed in the process), so their
    /// reference counts and the unparsed key never change, and the copy presents the same
    /// certificate.
    #[test]
    fn handshakes_write_nothing_start_up_built() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, confs) = vhosts_signed_by_one_ca(dir.path(), 1);
        let mut providers = Providers::default();
        let vhost: &'static VhostTls = Box::leak(Box::new(build_vhost(&confs[0], None, 0, &mut providers).unwrap().0));
        drop(providers);
        let start_up = vhost.certified_keys().next().unwrap();
        let (count, key_count) = (Arc::strong_count(start_up), Arc::strong_count(&start_up.key));
        let (here, _) = vhost.in_this_process(None, &Default::default());
        for _ in 0..3 {
            assert_eq!(presented(here.for_protocol(None), &ca, "site0.test"), start_up.cert[0]);
        }
        let presented_key = &here.resolver().keys()[0];
        assert!(!Arc::ptr_eq(presented_key, start_up), "a copy is presented");
        assert!(!Arc::ptr_eq(&presented_key.key, &start_up.key), "with its own key");
        assert_eq!((Arc::strong_count(start_up), Arc::strong_count(&start_up.key)), (count, key_count));
    }

    #[test]
    fn build_reports_the_directive_origin() {
        let spec = CertSpec { cert_file: "/nonexistent/c.pem".into(), key_file: None, origin: origin() };
        let conf = ServerConf { certificates: vec![spec].into(), ..Default::default() };
        let e = build_vhost(&conf, None, 0, &mut Providers::default()).err().unwrap();
        assert_eq!(e.origin.as_ref().map(ToString::to_string).as_deref(), Some("t.conf:3"));
        assert_eq!(e.kind, ErrorKind::Unreadable, "the kind comes from where it was found");
        assert!(e.message.starts_with("TLSCertificate: cannot read"), "{}", e.message);
    }
}
