//! Builds the rustls configurations, once per configuration generation, from the module config.

use std::fmt;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::certs;
use crate::config::CertSpec;

/// The crypto provider every config uses: aws-lc-rs, with its default (post-quantum hybrid first)
/// key exchange groups and suites.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Picks the first configured certificate whose key can sign with a scheme the client offered;
/// when none fits, the first one, so that the client gets a clear failure of its own rather than
/// an `access_denied` from us (see DESIGN.md, "Wire behaviour").
pub struct FirstSuitableCert {
    keys: Vec<Arc<CertifiedKey>>,
}

impl fmt::Debug for FirstSuitableCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FirstSuitableCert({} keys)", self.keys.len())
    }
}

impl FirstSuitableCert {
    pub fn new(keys: Vec<Arc<CertifiedKey>>) -> Self {
        assert!(!keys.is_empty(), "a certificate resolver needs at least one key");
        FirstSuitableCert { keys }
    }
}

impl ResolvesServerCert for FirstSuitableCert {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let schemes = hello.signature_schemes();
        self.keys.iter().find(|k| k.key.choose_scheme(schemes).is_some()).or_else(|| self.keys.first()).cloned()
    }
}

/// A problem with one directive, found while building; reported with its origin.
#[derive(Debug)]
pub struct BuildError {
    pub origin: String,
    pub message: String,
}

/// Builds the server config for one virtual host from its `TLSCertificate`s.
pub fn build_server_config(certificates: &[CertSpec]) -> Result<Arc<ServerConfig>, BuildError> {
    let provider = provider();
    let mut keys = Vec::with_capacity(certificates.len());
    for spec in certificates {
        let key = certs::load_certified_key(spec, &provider).map_err(|message| BuildError {
            origin: spec.origin.to_string(),
            message: format!("TLSCertificate: {message}"),
        })?;
        keys.push(key);
    }
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| BuildError { origin: String::new(), message: e.to_string() })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(FirstSuitableCert::new(keys)));
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Origin;

    #[test]
    fn resolver_prefers_first_key_the_client_can_verify() {
        let p = crate::certs::tests::provider();
        let mk = |alg: &'static rcgen::SignatureAlgorithm| {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let cert = rcgen::CertificateParams::new(vec!["x.test".into()]).unwrap().self_signed(&key).unwrap();
            let der = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
            Arc::new(CertifiedKey::from_der(vec![cert.der().clone()], der, &p).unwrap())
        };
        let ed = mk(&rcgen::PKCS_ED25519);
        let ec = mk(&rcgen::PKCS_ECDSA_P256_SHA256);
        let r = FirstSuitableCert::new(vec![ed.clone(), ec.clone()]);
        // Without a ClientHello to hand, check the selection rule the resolver applies.
        let only_ecdsa = [rustls::SignatureScheme::ECDSA_NISTP256_SHA256];
        let chosen = r.keys.iter().find(|k| k.key.choose_scheme(&only_ecdsa).is_some()).unwrap();
        assert!(Arc::ptr_eq(chosen, &ec));
    }

    #[test]
    fn build_reports_the_directive_origin() {
        let spec = CertSpec {
            cert_file: "/nonexistent/c.pem".into(),
            key_file: None,
            origin: Origin { file: "/etc/httpd.conf".into(), line: 7 },
        };
        let e = build_server_config(&[spec]).unwrap_err();
        assert_eq!(e.origin, "/etc/httpd.conf:7");
        assert!(e.message.starts_with("TLSCertificate: cannot read"), "{}", e.message);
    }
}
