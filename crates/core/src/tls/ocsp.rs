//! OCSP stapling, the TLS side: which certificates get a staple ([`prime`]), the config that
//! presents the key with the response mod_md keeps ([`stapled_config`], [`Stapling`]), and what
//! the status page shows
//! of it ([`staple_state`], [`Staple`]). The module only makes the calls to httpd
//! (`ap_ssl_ocsp_prime`, `ap_ssl_ocsp_get_resp`, through the `httpd` crate), passed in here as
//! closures.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::sign::CertifiedKey;

/// OCSP stapling for one certificate: its id (for `ap_ssl_ocsp_*`) and the key carrying the
/// latest response, with the configs presenting it, rebuilt only when the response changes.
pub struct Stapling {
    pub id: [u8; 32],
    current: std::sync::Mutex<Option<Current>>,
}

/// The latest response, the key with it stapled, and the configs presenting that key: one per
/// config of the vhost it was asked for (plain, and per ALPN protocol).
struct Current {
    response: Vec<u8>,
    key: Arc<CertifiedKey>,
    configs: Vec<(Arc<ServerConfig>, Arc<ServerConfig>)>,
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
        Self::current(&mut cur, key, response).key.clone()
    }

    /// `config` (one of the vhost's) presenting `key` with `response` stapled: made once per
    /// response and config, so a handshake costs no copy of the config.
    pub fn config(&self, config: &Arc<ServerConfig>, key: &Arc<CertifiedKey>, response: &[u8]) -> Arc<ServerConfig> {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let current = Self::current(&mut cur, key, response);
        if let Some((_, made)) = current.configs.iter().find(|(from, _)| Arc::ptr_eq(from, config)) {
            return made.clone();
        }
        let made = crate::tls::resolver::presenting(config, current.key.clone());
        current.configs.push((config.clone(), made.clone()));
        made
    }

    /// What `response` makes: the same as before while it is unchanged, else new.
    fn current<'a>(cur: &'a mut Option<Current>, key: &Arc<CertifiedKey>, response: &[u8]) -> &'a mut Current {
        if cur.as_ref().is_none_or(|c| c.response != response) {
            let mut stapled = (**key).clone();
            stapled.ocsp = Some(response.to_vec());
            *cur = Some(Current { response: response.to_vec(), key: Arc::new(stapled), configs: Vec::new() });
        }
        cur.as_mut().expect("set above")
    }
}

/// Registers each of a vhost's `keys` whose chain names its issuer for stapling: `register`
/// gets the certificate's id and its chain as PEM (`ap_ssl_ocsp_prime`) and says whether a
/// provider (mod_md) takes it. The result, per key in the same order, is what
/// `VhostTls::stapling` holds: `None` for a key without issuer or that no provider took (and
/// nothing at all when that is every key).
pub fn prime<'a>(
    keys: impl IntoIterator<Item = &'a Arc<CertifiedKey>>,
    mut register: impl FnMut(&[u8; 32], &str) -> bool,
) -> Vec<Option<Arc<Stapling>>> {
    let staplings: Vec<Option<Arc<Stapling>>> = keys
        .into_iter()
        .map(|key| {
            if key.cert.len() < 2 {
                return None; // no issuer to ask about
            }
            let stapling = Stapling::new(key);
            let pem: String = key.cert.iter().map(|c| crate::tls::certvars::pem(c)).collect();
            register(&stapling.id, &pem).then(|| Arc::new(stapling))
        })
        .collect();
    // No stapling at all (most vhosts): nothing held, as a key past the end reads as `None`.
    if staplings.iter().all(Option::is_none) { Vec::new() } else { staplings }
}

/// `config` (the vhost's, for the connection's ALPN protocol) presenting `key` (one of the
/// vhost's `keys`, as the resolver chose it) with the current OCSP response stapled, when
/// stapling is on for it (`staplings`, per key) and `response` (mod_md, asked by the
/// certificate's id) has one.
pub fn stapled_config(
    keys: &[Arc<CertifiedKey>],
    staplings: Option<&[Option<Arc<Stapling>>]>,
    key: &Arc<CertifiedKey>,
    config: &Arc<ServerConfig>,
    response: impl FnOnce(&[u8; 32]) -> Option<Vec<u8>>,
) -> Option<Arc<ServerConfig>> {
    let index = keys.iter().position(|k| Arc::ptr_eq(k, key))?;
    let stapling = staplings?.get(index)?.as_ref()?;
    let response = response(&stapling.id)?;
    Some(stapling.config(config, key, &response))
}

/// A certificate's OCSP stapling, as the status page shows it.
#[derive(Clone, Debug, PartialEq)]
pub enum Staple {
    Off,
    /// On, and the response mod_md keeps is this many seconds old.
    Age(i64),
    /// On, but mod_md has no response yet (or it does not parse).
    Missing(&'static str),
    /// On; its response is not looked up here (no connection to ask mod_md with).
    On,
}

impl Staple {
    /// Stapling is on, but there is nothing to staple: the certificate needs attention.
    pub fn is_missing(&self) -> bool {
        matches!(self, Staple::Missing(_))
    }
}

impl std::fmt::Display for Staple {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Staple::Off => f.write_str("off"),
            Staple::Age(a) => write!(f, "on, staple_age={a}s"),
            Staple::Missing(why) => write!(f, "on, {why}"),
            Staple::On => f.write_str("on"),
        }
    }
}

/// The stapling of one certificate at `now`, for the status page: off without `stapling`; else
/// how old the response mod_md keeps is, asked through `response` when there is a connection to
/// ask with (`None`: only "on").
pub fn staple_state(
    stapling: Option<&Stapling>,
    response: Option<impl FnOnce(&[u8; 32]) -> Option<Vec<u8>>>,
    now: i64,
) -> Staple {
    match (stapling, response) {
        (Some(st), Some(ask)) => match ask(&st.id) {
            Some(resp) => match ocsp_produced_at(&resp) {
                Some(at) => Staple::Age((now - at).max(0)),
                None => Staple::Missing("staple unreadable"),
            },
            None => Staple::Missing("no response yet"),
        },
        (Some(_), None) => Staple::On,
        (None, _) => Staple::Off,
    }
}

/// When an OCSP response was produced (`producedAt`, seconds since the epoch): how old a
/// stapled response is.
pub fn ocsp_produced_at(der: &[u8]) -> Option<i64> {
    use x509_parser::der_parser::ber::BerObjectContent as C;
    use x509_parser::der_parser::der::parse_der;
    // OCSPResponse ::= SEQUENCE { status, [0] EXPLICIT ResponseBytes }
    let (_, response) = parse_der(der).ok()?;
    let C::Unknown(explicit) = &response.as_sequence().ok()?.get(1)?.content else { return None };
    // ResponseBytes ::= SEQUENCE { responseType OID, response OCTET STRING (BasicOCSPResponse) }
    let (_, bytes) = parse_der(explicit.data).ok()?;
    let (_, basic) = parse_der(bytes.as_sequence().ok()?.get(1)?.as_slice().ok()?).ok()?;
    // BasicOCSPResponse ::= SEQUENCE { ResponseData ::= SEQUENCE { [0] version?, responderID,
    // producedAt GeneralizedTime, … }, … }
    let data = basic.as_sequence().ok()?.first()?;
    data.as_sequence().ok()?.iter().find_map(|item| match &item.content {
        C::GeneralizedTime(t) => Some(crate::tls::time::unix_time(
            t.year as i64,
            t.month.into(),
            t.day.into(),
            t.hour.into(),
            t.minute.into(),
            t.second.into(),
        )),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed key, and one whose chain names an issuer (a leaf and its CA).
    fn keys() -> (Arc<CertifiedKey>, Arc<CertifiedKey>) {
        let p = crate::tls::certs::tests::provider();
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.clone().self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["x.test".into()])
            .unwrap()
            .signed_by(&leaf_key, &rcgen::Issuer::new(ca_params, &ca_key))
            .unwrap();
        let der = |k: &rcgen::KeyPair| rustls_pki_types::PrivateKeyDer::try_from(k.serialize_der()).unwrap();
        let alone = CertifiedKey::from_der(vec![ca.der().clone()], der(&ca_key), &p).unwrap();
        let chained = CertifiedKey::from_der(vec![leaf.der().clone(), ca.der().clone()], der(&leaf_key), &p).unwrap();
        (Arc::new(alone), Arc::new(chained))
    }

    /// DER: a tag and its contents (short or one-byte long length).
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if content.len() >= 0x80 {
            out.push(0x81);
        }
        out.push(content.len() as u8);
        out.extend_from_slice(content);
        out
    }

    /// A successful OCSP response produced at `produced_at` (GeneralizedTime text), reduced to
    /// what `ocsp_produced_at` reads.
    fn response(produced_at: &str) -> Vec<u8> {
        let data = tlv(0x30, &[tlv(0xa1, &tlv(0x30, &[])), tlv(0x18, produced_at.as_bytes())].concat());
        let basic = tlv(0x30, &data);
        let oid = [0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01]; // id-pkix-ocsp-basic
        let bytes = tlv(0x30, &[&oid[..], &tlv(0x04, &basic)].concat());
        tlv(0x30, &[tlv(0x0a, &[0]), tlv(0xa0, &bytes)].concat())
    }

    #[test]
    fn only_keys_with_an_issuer_that_a_provider_takes_are_stapled() {
        let (alone, chained) = keys();
        let mut asked = Vec::new();
        let staplings = prime(&[alone.clone(), chained.clone(), chained.clone()], |id, pem| {
            asked.push((*id, pem.matches("BEGIN CERTIFICATE").count()));
            asked.len() == 1
        });
        assert!(staplings[0].is_none(), "no issuer to ask about");
        assert_eq!(staplings[1].as_ref().map(|s| s.id), Some(Stapling::new(&chained).id));
        assert!(staplings[2].is_none(), "no provider took it");
        assert_eq!(asked.len(), 2, "the self-signed key is not registered");
        assert_eq!(asked[0].1, 2, "the whole chain, as PEM");
        assert!(prime(&[alone.clone(), chained.clone()], |_, _| false).is_empty(), "no stapling: nothing held");
    }

    /// A vhost's TLS 1.3 config over `keys` that takes X25519 only: a client whose first key
    /// share is for another group gets a HelloRetryRequest.
    fn vhost_config(keys: &[Arc<CertifiedKey>]) -> Arc<ServerConfig> {
        let provider = rustls::crypto::CryptoProvider {
            kx_groups: vec![rustls::crypto::aws_lc_rs::kx_group::X25519],
            ..rustls::crypto::aws_lc_rs::default_provider()
        };
        let resolver = crate::tls::resolver::CertForClient::new(keys.to_vec());
        let config = ServerConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        Arc::new(config)
    }

    /// A client's verifier that accepts any certificate and keeps the chain and the stapled
    /// OCSP response it was shown.
    #[derive(Debug)]
    struct Shown(std::sync::Mutex<(usize, Vec<u8>)>, rustls::crypto::WebPkiSupportedAlgorithms);

    impl rustls::client::danger::ServerCertVerifier for Shown {
        fn verify_server_cert(
            &self,
            _end_entity: &rustls::pki_types::CertificateDer<'_>,
            intermediates: &[rustls::pki_types::CertificateDer<'_>],
            _server_name: &rustls::pki_types::ServerName<'_>,
            ocsp_response: &[u8],
            _now: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            *self.0.lock().unwrap() = (1 + intermediates.len(), ocsp_response.to_vec());
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.1)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.1)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.1.supported_schemes()
        }
    }

    /// What a client is shown over `config` after a HelloRetryRequest (its first key share is
    /// for P-384): how many certificates, and the stapled OCSP response.
    fn shown_after_hello_retry(config: Arc<ServerConfig>) -> (usize, Vec<u8>) {
        let provider = rustls::crypto::CryptoProvider {
            kx_groups: vec![
                rustls::crypto::aws_lc_rs::kx_group::SECP384R1,
                rustls::crypto::aws_lc_rs::kx_group::X25519,
            ],
            ..rustls::crypto::aws_lc_rs::default_provider()
        };
        let shown = Arc::new(Shown(Default::default(), provider.signature_verification_algorithms));
        let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(shown.clone())
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("x.test").unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(client_config), name).unwrap();
        let mut server = rustls::ServerConnection::new(config).unwrap();
        for _ in 0..10 {
            let mut bytes = Vec::new();
            client.write_tls(&mut bytes).unwrap();
            let mut rd = &bytes[..];
            while !rd.is_empty() {
                server.read_tls(&mut rd).unwrap();
            }
            server.process_new_packets().unwrap();
            bytes.clear();
            server.write_tls(&mut bytes).unwrap();
            let mut rd = &bytes[..];
            while !rd.is_empty() {
                client.read_tls(&mut rd).unwrap();
            }
            client.process_new_packets().unwrap();
        }
        assert!(!client.is_handshaking() && !server.is_handshaking(), "the handshake completed");
        assert_eq!(server.handshake_kind(), Some(rustls::HandshakeKind::FullWithHelloRetryRequest));
        shown.0.lock().unwrap().clone()
    }

    #[test]
    fn the_chosen_key_is_presented_with_the_current_response() {
        let (alone, chained) = keys();
        let keys = [alone.clone(), chained.clone()];
        let staplings = prime(&keys, |_, _| true);
        let vhost = vhost_config(std::slice::from_ref(&chained));
        let stapled = |key: &Arc<CertifiedKey>, config: &Arc<ServerConfig>, r: Option<&[u8]>| {
            stapled_config(&keys, Some(&staplings), key, config, |_| r.map(<[u8]>::to_vec))
        };
        let first = stapled(&chained, &vhost, Some(b"one")).unwrap();
        assert_eq!(shown_after_hello_retry(first.clone()), (2, b"one".to_vec()), "also after a HelloRetryRequest");
        assert_eq!(shown_after_hello_retry(vhost.clone()), (2, Vec::new()), "the vhost's own config staples nothing");
        let again = stapled(&chained, &vhost, Some(b"one")).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "made once per response and config");
        let h2 = Arc::new((*vhost).clone());
        assert!(!Arc::ptr_eq(&stapled(&chained, &h2, Some(b"one")).unwrap(), &first), "per config");
        let next = stapled(&chained, &vhost, Some(b"two")).unwrap();
        assert_eq!(shown_after_hello_retry(next).1, b"two");
        assert_eq!(staplings[1].as_ref().unwrap().with_response(&chained, b"two").ocsp.as_deref(), Some(&b"two"[..]));
        assert!(stapled(&chained, &vhost, None).is_none(), "no response yet");
        let not_asked = |key: &Arc<CertifiedKey>, staplings: Option<&[Option<Arc<Stapling>>]>| {
            stapled_config(&keys, staplings, key, &vhost, |_| panic!("not asked"))
        };
        assert!(not_asked(&alone, Some(&staplings)).is_none(), "not stapled");
        assert!(not_asked(&chained, None).is_none(), "not primed");
        assert!(not_asked(&Arc::new((*chained).clone()), Some(&staplings)).is_none(), "not a key of ours");
    }

    #[test]
    fn the_status_page_shows_how_old_the_staple_is() {
        let (_, chained) = keys();
        let st = Stapling::new(&chained);
        let produced = crate::tls::time::unix_time(2026, 12, 6, 5, 57, 21);
        assert_eq!(ocsp_produced_at(&response("20261206055721Z")), Some(produced));
        let want = st.id;
        let ask = |r: Option<Vec<u8>>| {
            Some(move |id: &[u8; 32]| -> Option<Vec<u8>> {
                assert_eq!(*id, want);
                r
            })
        };
        assert_eq!(staple_state(Some(&st), ask(Some(response("20261206055721Z"))), produced + 90), Staple::Age(90));
        assert_eq!(staple_state(Some(&st), ask(Some(response("20261206055721Z"))), produced - 5), Staple::Age(0));
        assert_eq!(staple_state(Some(&st), ask(None), produced), Staple::Missing("no response yet"));
        assert_eq!(
            staple_state(Some(&st), ask(Some(b"not der".to_vec())), produced),
            Staple::Missing("staple unreadable")
        );
        assert_eq!(staple_state(Some(&st), None::<fn(&[u8; 32]) -> Option<Vec<u8>>>, produced), Staple::On);
        assert_eq!(staple_state(None, ask(None), produced), Staple::Off);
        assert!(Staple::Missing("no response yet").is_missing() && !Staple::Age(1).is_missing());
        assert_eq!(Staple::Age(30).to_string(), "on, staple_age=30s");
        assert_eq!(Staple::Missing("no response yet").to_string(), "on, no response yet");
    }

    #[test]
    fn ocsp_produced_at_reads_nothing_from_garbage() {
        assert_eq!(ocsp_produced_at(b"not der"), None);
    }
}
