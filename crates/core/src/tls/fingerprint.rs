//! What "the same TLS settings" means for two vhosts: [`TlsFingerprint`], the digest that
//! decides whether a request may be served by another vhost than its handshake's, and under which
//! namespace sessions are filed.

use std::sync::Arc;

use rustls::SupportedCipherSuite;
use rustls::sign::CertifiedKey;

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
    pub fn certificates<'k>(&mut self, keys: impl IntoIterator<Item = &'k Arc<CertifiedKey>>) -> &mut Self {
        for k in keys {
            self.part("key", &[]);
            for c in &k.cert {
                self.part("certificate", c);
            }
        }
        self
    }

    /// The parts recorded in `parts`, in their order.
    pub fn parts(&mut self, parts: &FingerprintParts) -> &mut Self {
        for (label, bytes) in &parts.0 {
            self.part(label, bytes);
        }
        self
    }

    pub fn finish(self) -> TlsFingerprint {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        TlsFingerprint(out)
    }
}

/// The parts of a [`TlsFingerprint`] that follow the certificates (the settings: protocol, suites,
/// client authentication), recorded once for all the vhosts with these settings and added to
/// each one's digest after its certificates ([`FingerprintBuilder::parts`]): the digest is the
/// same as if each part were given to the builder in turn.
#[derive(Default, Debug)]
pub struct FingerprintParts(Vec<(&'static str, Vec<u8>)>);

impl FingerprintParts {
    pub fn part(&mut self, label: &'static str, bytes: &[u8]) -> &mut Self {
        self.0.push((label, bytes.to_vec()));
        self
    }

    /// The protocol floor, the suites (in preference order) and whether the client's order wins.
    pub fn protocol(&mut self, floor: u16, suites: &[SupportedCipherSuite], honor_client_order: bool) -> &mut Self {
        let ids: Vec<u8> = suites.iter().flat_map(|s| u16::from(s.suite()).to_be_bytes()).collect();
        self.part("floor", &floor.to_be_bytes())
            .part("suites", &ids)
            .part("honor-client-order", &[u8::from(honor_client_order)])
    }
}

#[cfg(test)]
mod tests {
    use crate::conf::{CertSpec, CipherList, Located, ServerConf};
    use crate::tls::engine::tests::origin;
    use crate::tls::engine::{Providers, build_vhost};

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
                certificates: vec![CertSpec { cert_file: cert.clone(), key_file: None, origin: origin() }].into(),
                ..Default::default()
            };
            edit(&mut conf);
            build_vhost(&conf, None, 0, &mut Providers::default()).unwrap().0.fingerprint
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
        assert_eq!(
            plain,
            fp(&|c| c.certificates.specs_mut()[0].origin.line = 9),
            "where it was written does not matter"
        );
    }
}
