//! Client certificate verification for `TLSClientCertificate`, `TLSClientCA` and `TLSClientCRL`:
//! the verifier rustls runs, and for `optional_no_ca` the [`GenerousVerifier`] that also grades
//! what it let through (`SSL_CLIENT_VERIFY`: SUCCESS, GENEROUS or FAILED).

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

use crate::conf::error::ErrorKind;
use crate::conf::{Located, ServerConf};
use crate::tls::certs;
use crate::tls::engine::{BuildError, err_at};
use crate::tls::fingerprint::FingerprintParts;
use crate::tls::warning::Warning;

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
pub(crate) struct ClientAuthBuild {
    pub(crate) verifier: Option<ClientVerifier>,
    pub(crate) generous: Option<Arc<GenerousVerifier>>,
    pub(crate) warnings: Vec<Warning>,
}

/// The trust anchors `TLSClientCA` names.
fn client_ca_roots(ca: &Located<std::path::PathBuf>) -> Result<rustls::RootCertStore, BuildError> {
    certs::load_roots(&ca.value).map_err(|e| e.within("TLSClientCA").at(&ca.origin))
}

/// Every CRL the `TLSClientCRL` lines name, in order.
fn client_crls(conf: &ServerConf) -> Result<Vec<rustls::pki_types::CertificateRevocationListDer<'static>>, BuildError> {
    let mut crls = Vec::new();
    for l in &conf.client_crls {
        crls.extend(certs::load_crls(&l.value).map_err(|e| e.within("TLSClientCRL").at(&l.origin))?);
    }
    Ok(crls)
}

/// The client certificate verifier for `TLSClientCertificate optional|required|optional_no_ca`:
/// trust anchors from `TLSClientCA`, revocation from `TLSClientCRL` for the whole chain. Secure
/// defaults: a certificate whose issuer has no CRL is refused, and so is one checked against an
/// expired CRL (`optional_no_ca` grades them FAILED instead).
pub(crate) fn client_verifier(
    conf: &ServerConf,
    provider: &Arc<CryptoProvider>,
    fingerprint: &mut FingerprintParts,
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
        // Named but unused: read all the same, as mod_ssl reads its CA and CRL files whatever
        // SSLVerifyClient says (and the C module checks that the file exists), so that a wrong
        // path fails start-up now rather than when client authentication is switched on.
        if let Some(ca) = &conf.client_ca {
            client_ca_roots(ca)?;
        }
        client_crls(conf)?;
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
    let roots = client_ca_roots(ca)?;
    for anchor in &roots.roots {
        fingerprint
            .part("ca-subject", &anchor.subject)
            .part("ca-key", &anchor.subject_public_key_info)
            .part("ca-constraints", anchor.name_constraints.as_deref().unwrap_or_default());
    }
    let crls = client_crls(conf)?;
    for crl in &crls {
        fingerprint.part("crl", crl);
    }
    let mut warnings = Vec::new();
    if crls.is_empty() {
        warnings.push(Warning::NoRevocationCheck { origin: origin.cloned() });
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
