//! `TLSProtocol` / `TLSProxyProtocol`: the lowest TLS version accepted, and versions' names.

use super::error::{ConfError, ErrorKind};

/// The protocol floors (`TLSProtocol`, `TLSProxyProtocol`), as the wire value of their lowest
/// version, which [`parse_protocol_floor`](super::parse_protocol_floor) returns: TLS 1.2 and up.
pub const FLOOR_TLS12: u16 = 0x0303;
/// TLS 1.3 only.
pub const FLOOR_TLS13: u16 = 0x0304;

/// The word of a protocol floor as written (`v1.2+`, `v1.3+`), from its wire value.
pub const fn floor_word(wire: u16) -> Option<&'static str> {
    match wire {
        FLOOR_TLS12 => Some("v1.2+"),
        FLOOR_TLS13 => Some("v1.3+"),
        _ => None,
    }
}

/// `TLSProtocol version+` (and `TLSProxyProtocol`, named by `directive` in the error): the lowest
/// TLS version accepted (as its wire value, 0x0303 = TLS 1.2).
pub fn parse_protocol_floor(directive: &str, arg: &str) -> Result<u16, ConfError> {
    let bad = || {
        ConfError::new(
            ErrorKind::BadValue,
            format!(
                "{directive} '{arg}' is not a version floor: write default, v1.2+, v1.3+, TLSv1.2+, TLSv1.3+ \
                 or TLSv0x0303+ (mod_tls sets the lowest version; there is no maximum)"
            ),
        )
    };
    // Keywords and versions in any case (`tlsv1.2+`, `V1.3+`), as the C module reads them.
    let a = arg.trim().to_ascii_lowercase();
    if a == "default" {
        return Ok(FLOOR_TLS12);
    }
    let v = a.strip_suffix('+').ok_or_else(bad)?;
    let v = v.strip_prefix("tlsv").or_else(|| v.strip_prefix('v')).ok_or_else(bad)?;
    let wire = match v {
        "1.2" => FLOOR_TLS12,
        "1.3" => FLOOR_TLS13,
        _ => {
            let hex = v.strip_prefix("0x").ok_or_else(bad)?;
            u16::from_str_radix(hex, 16).map_err(|_| bad())?
        }
    };
    match wire {
        // Older versions are not available at all: a lower floor means "everything we have".
        0x0300..=FLOOR_TLS12 => Ok(FLOOR_TLS12),
        FLOOR_TLS13 => Ok(FLOOR_TLS13),
        _ => Err(ConfError::new(
            ErrorKind::BadValue,
            format!("{directive} '{arg}': rustls has no TLS version 0x{wire:04x}; use v1.2+ or v1.3+"),
        )),
    }
}

/// The human name of a wire version (0x0304 → "TLSv1.3").
pub fn version_name(wire: u16) -> String {
    match wire {
        0x0303 => "TLSv1.2".into(),
        0x0304 => "TLSv1.3".into(),
        v => format!("TLSv0x{v:04x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::{CacheSpec, OPT_EXPORT_CERT_DATA, OPT_STD_ENV_VARS, TlsOptions};

    #[test]
    fn keywords_and_case() {
        assert_eq!(parse_protocol_floor("TLSProtocol", "tlsv1.3+").unwrap(), 0x0304);
        assert_eq!(parse_protocol_floor("TLSProtocol", "V1.2+").unwrap(), 0x0303);
        assert_eq!(parse_protocol_floor("TLSProtocol", "TLSV0X0304+").unwrap(), 0x0304);
        assert_eq!(parse_protocol_floor("TLSProtocol", "Default").unwrap(), 0x0303);
        assert_eq!(CacheSpec::parse("default").unwrap(), CacheSpec::Default);
        let mut o = TlsOptions::default();
        o.apply_line("+stdenvvars EXPORTCERTDATA").unwrap();
        assert!(o.has(OPT_STD_ENV_VARS) && o.has(OPT_EXPORT_CERT_DATA));
        o.apply_line("defaults").unwrap();
        assert!(!o.has(OPT_STD_ENV_VARS));
    }

    #[test]
    fn protocol_floor_forms() {
        for (s, v) in [
            ("default", 0x0303),
            ("v1.2+", 0x0303),
            ("v1.3+", 0x0304),
            ("TLSv1.2+", 0x0303),
            ("TLSv1.3+", 0x0304),
            ("TLSv0x0303+", 0x0303),
            ("TLSv0x0304+", 0x0304),
            ("TLSv0x0301+", 0x0303),
        ] {
            assert_eq!(parse_protocol_floor("TLSProtocol", s), Ok(v), "{s}");
        }
        for bad in ["v1.3", "1.3+", "TLSv1.4+", "TLSv0x0305+", "SSLv3+", "", "+", "TLSv1.2-"] {
            assert!(parse_protocol_floor("TLSProtocol", bad).is_err(), "{bad}");
        }
        let e = parse_protocol_floor("TLSProxyProtocol", "TLSv1.3").unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadValue);
        assert!(e.message.starts_with("TLSProxyProtocol 'TLSv1.3'") && e.message.contains("v1.3+"), "{e}");
    }
}
