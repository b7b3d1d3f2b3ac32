//! A client PKI for client-certificate tests: root and intermediate CAs with CRLs, and client
//! certificates of every kind (good, revoked, expired, from an unknown CA, with a chain).

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::Httpd;

/// A client PKI: root and intermediate CAs with CRLs, and client certificates of every kind.
pub struct ClientPki {
    pub files: Vec<(String, String)>,
}

pub struct Ca {
    pub params: rcgen::CertificateParams,
    pub key: rcgen::KeyPair,
    pub cert: rcgen::Certificate,
}

impl Ca {
    pub fn new(name: &str, parent: Option<&Ca>) -> Ca {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = match parent {
            None => params.self_signed(&key).unwrap(),
            Some(p) => params.signed_by(&key, &rcgen::Issuer::new(p.params.clone(), &p.key)).unwrap(),
        };
        Ca { params, key, cert }
    }

    /// A client certificate: (cert PEM, key PEM).
    pub fn issue(&self, cn: &str, org: &str, serial: u64, expired: bool) -> (String, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        params.distinguished_name.push(rcgen::DnType::OrganizationName, org);
        params.subject_alt_names.push(rcgen::SanType::Rfc822Name(format!("{cn}@example.net").try_into().unwrap()));
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        if expired {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        }
        let cert = params.signed_by(&key, &rcgen::Issuer::new(self.params.clone(), &self.key)).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    pub fn crl(&self, revoked: &[u64]) -> String {
        let params = rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2025, 1, 1),
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(*s),
                    revocation_time: rcgen::date_time_ymd(2025, 6, 1),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params.signed_by(&rcgen::Issuer::new(self.params.clone(), &self.key)).unwrap().pem().unwrap()
    }
}

impl ClientPki {
    pub fn new() -> ClientPki {
        let root = Ca::new("Client Root CA", None);
        let inter = Ca::new("Client Intermediate CA", Some(&root));
        let stranger = Ca::new("Unknown CA", None);
        let mut files = vec![
            ("clientca.pem".to_string(), root.cert.pem()),
            ("root.crl".to_string(), root.crl(&[66])),
            // The same CA's next CRL, which revokes alice too.
            ("root-alice.crl".to_string(), root.crl(&[66, 11])),
            ("inter.crl".to_string(), inter.crl(&[])),
        ];
        for (name, ca, org, serial, expired) in [
            ("alice", &root, "Example", 11, false),
            ("bob", &root, "Example", 66, false),
            ("eve", &root, "Example", 12, true),
            ("mallory", &stranger, "Example", 13, false),
        ] {
            let (c, k) = ca.issue(name, org, serial, expired);
            files.push((format!("{name}.pem"), c));
            files.push((format!("{name}.key"), k));
        }
        // carol's certificate comes from the intermediate: she sends the chain.
        let (c, k) = inter.issue("carol", "Other", 14, false);
        files.push(("carol.pem".to_string(), format!("{c}{}", inter.cert.pem())));
        files.push(("carol.key".to_string(), k));
        ClientPki { files }
    }

    pub fn install(&self, h: &Httpd) {
        for (name, data) in &self.files {
            h.write(&format!("conf/client/{name}"), data);
        }
    }
}

/// A client trusting `h`'s server CA that presents `who`'s certificate (`conf/client/NAME.pem`
/// and `.key`, as [`ClientPki::install`] writes them), or none.
pub fn client_config(
    h: &Httpd,
    who: Option<&str>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(h.path("conf/ca.pem")).unwrap()).unwrap();
    let b = rustls::ClientConfig::builder_with_protocol_versions(versions).with_root_certificates(roots);
    Arc::new(match who {
        None => b.with_no_client_auth(),
        Some(name) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_file_iter(h.path(&format!("conf/client/{name}.pem")))
                    .unwrap()
                    .map(|c| c.unwrap())
                    .collect();
            let key = PrivateKeyDer::from_pem_file(h.path(&format!("conf/client/{name}.key"))).unwrap();
            b.with_client_auth_cert(chain, key).unwrap()
        }
    })
}
