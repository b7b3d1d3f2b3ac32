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
}
