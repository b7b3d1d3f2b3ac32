//! What start-up warns about: settings that build, but not as written ([`Warning`]). The module
//! logs each through its `Display`, the sentence an administrator reads.

use std::fmt;

use crate::conf::Origin;
use crate::tls::ciphers;

/// A setting that builds, but not as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warning {
    /// `TLSCiphersPrefer` (or `TLSProxyCiphersPrefer`) names a suite rustls does not implement:
    /// it is ignored (the C module's AH10319).
    PreferredSuiteUnsupported { origin: Origin, suite: u16 },
    /// `TLSCiphersSuppress` (or `TLSProxyCiphersSuppress`) names a suite rustls does not
    /// implement: nothing to suppress.
    SuppressedSuiteUnsupported { origin: Origin, suite: u16 },
    /// `TLSClientCertificate` without `TLSClientCRL`: client certificates are not checked for
    /// revocation.
    NoRevocationCheck { origin: Option<Origin> },
}

impl Warning {
    /// The setting does what it was written for anyway: said at `info` level, not as a warning.
    /// Suppressing a suite rustls never offers changes nothing (the C module says nothing), and
    /// configurations carried over from mod_ssl often name such suites.
    pub fn is_harmless(&self) -> bool {
        matches!(self, Warning::SuppressedSuiteUnsupported { .. })
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |id: u16| ciphers::iana_name(id).unwrap_or("?");
        match self {
            Warning::PreferredSuiteUnsupported { origin, suite } => write!(
                f,
                "AH10319: {origin}: TLSCiphersPrefer names {}, which rustls does not support; it is ignored",
                name(*suite)
            ),
            Warning::SuppressedSuiteUnsupported { origin, suite } => {
                write!(f, "{origin}: TLSCiphersSuppress names {}, which rustls does not support anyway", name(*suite))
            }
            Warning::NoRevocationCheck { origin } => {
                if let Some(o) = origin {
                    write!(f, "{o}: ")?;
                }
                f.write_str("client certificates are accepted without revocation checking: add TLSClientCRL")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_suppressing_a_suite_rustls_lacks_is_harmless() {
        let origin = Origin { file: "t.conf".into(), line: 3 };
        assert!(Warning::SuppressedSuiteUnsupported { origin: origin.clone(), suite: 0x0005 }.is_harmless());
        assert!(!Warning::PreferredSuiteUnsupported { origin: origin.clone(), suite: 0x0004 }.is_harmless());
        assert!(!Warning::NoRevocationCheck { origin: Some(origin) }.is_harmless());
    }

    #[test]
    fn warnings_read_as_the_log_has_them() {
        let origin = Origin { file: "t.conf".into(), line: 3 };
        assert_eq!(
            Warning::PreferredSuiteUnsupported { origin: origin.clone(), suite: 0x0004 }.to_string(),
            "AH10319: t.conf:3: TLSCiphersPrefer names TLS_RSA_WITH_RC4_128_MD5, which rustls does not support; \
             it is ignored"
        );
        assert_eq!(
            Warning::SuppressedSuiteUnsupported { origin: origin.clone(), suite: 0x0005 }.to_string(),
            "t.conf:3: TLSCiphersSuppress names TLS_RSA_WITH_RC4_128_SHA, which rustls does not support anyway"
        );
        assert_eq!(
            Warning::NoRevocationCheck { origin: Some(origin) }.to_string(),
            "t.conf:3: client certificates are accepted without revocation checking: add TLSClientCRL"
        );
        assert_eq!(
            Warning::NoRevocationCheck { origin: None }.to_string(),
            "client certificates are accepted without revocation checking: add TLSClientCRL"
        );
    }
}
