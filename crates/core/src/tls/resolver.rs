//! Which certificate a vhost presents to a client: the one OpenSSL (so mod_ssl) would choose
//! among the vhost's keys ([`CertForClient`]), or the one the connection code chose for this
//! connection ([`presenting`], e.g. a key with its stapled OCSP response).

use std::fmt;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SignatureAlgorithm};

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
    /// Held for the whole generation, one per vhost: no spare room.
    keys: Box<[Arc<CertifiedKey>]>,
    /// The vhost's TLS 1.2 suites, in its order of preference (shared by the vhosts with the
    /// same settings).
    tls12_suites: Arc<[rustls::CipherSuite]>,
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
        CertForClient { keys: keys.into_boxed_slice(), tls12_suites: Arc::from([]), server_order: false }
    }

    /// The vhost's TLS 1.2 suites in its order, and whether that order decides.
    pub fn in_order(mut self, tls12_suites: impl Into<Arc<[rustls::CipherSuite]>>, server_order: bool) -> Self {
        self.tls12_suites = tls12_suites.into();
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
        Some(self.choose(hello.signature_schemes(), hello.cipher_suites()))
    }
}

/// Presents one key, chosen for one connection before its handshake began.
#[derive(Debug)]
struct Presents(Arc<CertifiedKey>);

impl ResolvesServerCert for Presents {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// `config` presenting `key` instead of its resolver's choice, for the connections it is given
/// to: the key with a connection's stapled OCSP response is only known to the connection code.
///
/// rustls's `ResolvesServerCert::resolve` gets only the `ClientHello`, no connection context,
/// so the key travels in the connection's own `ServerConfig` (the connection code picks one per
/// connection from the ClientHello, rustls's `Acceptor` flow), not in a thread-local side
/// channel set around each handshake step: nothing can be left behind for the next handshake on
/// the thread, and a HelloRetryRequest, after which rustls asks the resolver again for the
/// second ClientHello, gets the same key. Callers keep what this makes (see
/// `ocsp::Stapling::config`): it is a copy of `config`.
pub fn presenting(config: &ServerConfig, key: Arc<CertifiedKey>) -> Arc<ServerConfig> {
    let mut config = config.clone();
    config.cert_resolver = Arc::new(Presents(key));
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
