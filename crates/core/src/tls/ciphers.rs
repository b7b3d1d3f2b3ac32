//! Cipher-suite names as administrators write them: IANA (`TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384`),
//! OpenSSL (`ECDHE-ECDSA-AES256-GCM-SHA384`, `TLS13_AES_256_GCM_SHA384`) and `TLS_CIPHER_0xc02c`.
//! The whole IANA registry is known (see `cipher_table.rs`), so that a suite rustls does not
//! implement can be told apart from a typo.

use crate::conf::error::{ConfError, ErrorKind};
use crate::tls::cipher_table::CIPHER_SUITES;

/// Looks a suite up by any of its names; returns its IANA value.
pub fn lookup(name: &str) -> Option<u16> {
    if let Some(hex) = name.strip_prefix("TLS_CIPHER_0x").or_else(|| name.strip_prefix("TLS_CIPHER_0X")) {
        let id = u16::from_str_radix(hex, 16).ok()?;
        return CIPHER_SUITES.iter().any(|(v, _, _)| *v == id).then_some(id);
    }
    let iana = match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name.to_string(),
    };
    CIPHER_SUITES
        .iter()
        .find(|(v, i, o)| {
            i.eq_ignore_ascii_case(&iana) && (!name.starts_with("TLS13_") || v >> 8 == 0x13)
                || o.is_some_and(|o| o.eq_ignore_ascii_case(name))
        })
        .map(|(v, _, _)| *v)
}

/// The IANA name of a suite, e.g. for `SSL_CIPHER`.
pub fn iana_name(id: u16) -> Option<&'static str> {
    CIPHER_SUITES.iter().find(|(v, _, _)| *v == id).map(|(_, i, _)| *i)
}

/// Whether a suite is a TLS 1.3 one (they are numbered 0x13xx).
pub fn is_tls13(id: u16) -> bool {
    id >> 8 == 0x13
}

/// A suite's name in status keys (`TLSHandshakesSuite_…`), as rustls spells it: TLS 1.3 suites
/// `TLS13_…` (their IANA names say no version), TLS 1.2 ones their IANA name; a suite outside the
/// registry `TLS_CIPHER_0xNNNN`. Each of these names reads back through [`lookup`].
pub fn status_name(id: u16) -> String {
    match iana_name(id) {
        Some(iana) if is_tls13(id) => match iana.strip_prefix("TLS_") {
            Some(rest) => format!("TLS13_{rest}"),
            None => iana.to_string(),
        },
        Some(iana) => iana.to_string(),
        None => format!("TLS_CIPHER_0x{id:04x}"),
    }
}

/// The suites of one TLS version that rustls has (with the provider of
/// [`engine::provider`](crate::tls::engine::provider)), as IANA values in its order of preference.
pub fn rustls_suites(tls13: bool) -> Vec<u16> {
    crate::tls::engine::provider()
        .cipher_suites
        .iter()
        .map(|s| u16::from(s.suite()))
        .filter(|&id| is_tls13(id) == tls13)
        .collect()
}

/// [`rustls_suites`] by IANA name.
pub fn rustls_suite_names(tls13: bool) -> Vec<&'static str> {
    rustls_suites(tls13).into_iter().filter_map(iana_name).collect()
}

/// Parses a directive's list (space- or colon-separated).
pub fn parse_list(arg: &str) -> Result<Vec<u16>, ConfError> {
    let mut out = Vec::new();
    for name in arg.split([':', ' ', '\t', ',']).filter(|s| !s.is_empty()) {
        match lookup(name) {
            Some(id) => out.push(id),
            None => {
                return Err(ConfError::new(
                    ErrorKind::Ciphers,
                    format!(
                        "unknown cipher suite '{name}': use an IANA name (TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384), \
                         an OpenSSL name (ECDHE-ECDSA-AES256-GCM-SHA384, TLS13_AES_256_GCM_SHA384) or \
                         TLS_CIPHER_0xNNNN"
                    ),
                ));
            }
        }
    }
    if out.is_empty() {
        return Err(ConfError::new(ErrorKind::Ciphers, "the list of cipher suites is empty"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_naming_form() {
        for n in [
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "TLS_CIPHER_0xc02c",
            "tls_ecdhe_ecdsa_with_aes_256_gcm_sha384",
        ] {
            assert_eq!(lookup(n), Some(0xc02c), "{n}");
        }
        assert_eq!(lookup("TLS13_AES_256_GCM_SHA384"), Some(0x1302));
        assert_eq!(lookup("TLS_AES_256_GCM_SHA384"), Some(0x1302));
        assert_eq!(lookup("TLS_CHACHA20_POLY1305_SHA256"), Some(0x1303));
        // Known to IANA although no modern library implements it.
        assert_eq!(lookup("TLS_RSA_WITH_RC4_128_MD5"), Some(0x0004));
        assert_eq!(lookup("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384"), Some(0xc024));
        assert_eq!(lookup("ECDHE-ECDSA-AES256-SHA384"), Some(0xc024));
        assert_eq!(lookup("TLS_CIPHER_0xc024"), Some(0xc024));
        assert_eq!(lookup("TLS_GOSTR341112_256_WITH_MAGMA_MGM_S"), Some(0xc106));
    }

    #[test]
    fn unknown_names_are_rejected() {
        assert_eq!(lookup("TLS_NO_SUCH_SUITE"), None);
        assert_eq!(lookup("TLS_CIPHER_0xfff0"), None);
        assert_eq!(lookup("TLS_CIPHER_0xzz"), None);
        assert_eq!(lookup("TLS13_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"), None);
        let e = parse_list("ECDHE-ECDSA-AES256-GCM-SHA384:BOGUS").unwrap_err();
        assert!(e.message.contains("'BOGUS'"), "{e}");
    }

    #[test]
    fn lists_in_any_separator() {
        assert_eq!(
            parse_list("TLS_AES_128_GCM_SHA256:ECDHE-RSA-AES128-GCM-SHA256 TLS_CIPHER_0xcca9").unwrap(),
            vec![0x1301, 0xc02f, 0xcca9]
        );
        assert_eq!(iana_name(0x1302), Some("TLS_AES_256_GCM_SHA384"));
    }

    #[test]
    fn rustls_suites_per_version_in_preference_order() {
        assert_eq!(rustls_suites(true), [0x1302, 0x1301, 0x1303]);
        assert_eq!(rustls_suites(false), [0xc02c, 0xc02b, 0xcca9, 0xc030, 0xc02f, 0xcca8]);
        assert_eq!(
            rustls_suite_names(true),
            ["TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"]
        );
        assert_eq!(rustls_suite_names(false)[0], "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");
        let all = crate::tls::engine::provider().cipher_suites.len();
        assert_eq!(rustls_suites(true).len() + rustls_suites(false).len(), all, "each suite in one version");
    }

    /// Every suite the provider has is named, in both spellings, and each name reads back as it.
    #[test]
    fn every_provider_suite_is_named_and_read_back() {
        for s in crate::tls::engine::provider().cipher_suites.iter() {
            let id = u16::from(s.suite());
            let iana = iana_name(id).unwrap_or_else(|| panic!("0x{id:04x} has no IANA name"));
            assert_eq!(lookup(iana), Some(id), "{iana}");
            let status = status_name(id);
            assert_eq!(lookup(&status), Some(id), "{status}");
            // The status keys (TLSHandshakesSuite_…) keep rustls's spelling.
            assert_eq!(status, format!("{:?}", s.suite()), "0x{id:04x}");
            assert_eq!(is_tls13(id), matches!(s, rustls::SupportedCipherSuite::Tls13(_)), "{iana}");
        }
        assert_eq!(status_name(0x1302), "TLS13_AES_256_GCM_SHA384");
        assert_eq!(status_name(0xc02c), "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");
        assert_eq!(status_name(0xfff0), "TLS_CIPHER_0xfff0");
    }
}
