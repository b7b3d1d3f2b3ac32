//! The directive words: each mod_tls directive's name and help text, once. The module's directive
//! table registers them with httpd, and `mod_tls-migrate` writes them. The words of values that
//! are written as well as parsed (a protocol floor, a client certificate mode, a cache spec) sit
//! beside their parsers.

use std::ffi::CStr;
use std::fmt;

/// One directive: its name as httpd registers it and the help text httpd shows for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Directive {
    pub name: &'static CStr,
    pub help: &'static CStr,
}

impl Directive {
    /// The name as text (`TLSClientCA`).
    pub const fn word(&self) -> &'static str {
        match self.name.to_str() {
            Ok(word) => word,
            Err(_) => panic!("a directive name is ASCII"),
        }
    }

    /// A configuration line of this directive: its name, a space and `args` (as written).
    pub fn line(&self, args: impl fmt::Display) -> String {
        format!("{} {args}", self.word())
    }
}

impl fmt::Display for Directive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// Defines one constant per directive and [`ALL`], the list of them, from one table.
macro_rules! directives {
    ($($constant:ident: $name:literal, $help:literal;)*) => {
        $(pub const $constant: Directive = Directive { name: $name, help: $help };)*

        /// Every directive, in the order of the module's directive table.
        pub const ALL: &[Directive] = &[$($constant),*];
    };
}

directives! {
    PROXY_ENGINE: c"TLSProxyEngine", c"on|off: mod_tls handles TLS to backends in this scope";
    PROXY_CA: c"TLSProxyCA", c"PEM bundle or directory of PEM files trusted for backend certificates";
    PROXY_PROTOCOL: c"TLSProxyProtocol", c"lowest TLS version towards backends: v1.2+ or v1.3+";
    PROXY_CIPHERS_PREFER: c"TLSProxyCiphersPrefer", c"cipher suites to prefer towards backends";
    PROXY_CIPHERS_SUPPRESS: c"TLSProxyCiphersSuppress", c"cipher suites never to use towards backends";
    PROXY_MACHINE_CERTIFICATE: c"TLSProxyMachineCertificate",
        c"certificate (and key) presented when a backend asks for a client certificate";
    CLIENT_CERTIFICATE: c"TLSClientCertificate", c"required, optional, optional_no_ca or none";
    CLIENT_CA: c"TLSClientCA", c"PEM file of the CAs that issue accepted client certificates";
    CLIENT_CRL: c"TLSClientCRL", c"CRL file (PEM or DER) checked for client certificate chains";
    USER_NAME: c"TLSUserName", c"variable whose value becomes the request's user, e.g. SSL_CLIENT_S_DN_CN";
    SESSION_CACHE: c"TLSSessionCache",
        c"none, or a socache provider and its arguments (shmcb:path(size), memcache:host:port, redis:host:port)";
    SESSION_CACHE_TIMEOUT: c"TLSSessionCacheTimeout",
        c"seconds a session may be resumed, counted from its full handshake (default 300)";
    OPTIONS: c"TLSOptions", c"[+|-]StdEnvVars, [+|-]ExportCertData or Defaults: which TLS variables requests get";
    PASSPHRASE_DIALOG: c"TLSPassPhraseDialog",
        c"exec:/path/to/program that prints the passphrase of an encrypted private key";
    ENGINE: c"TLSEngine", c"[address:]port on which incoming connections use TLS";
    CERTIFICATE: c"TLSCertificate",
        c"certificate chain file (PEM) and, unless it holds the key too, the private key file";
    STRICT_SNI: c"TLSStrictSNI", c"on|off: refuse handshakes whose SNI names no virtual host";
    PROTOCOL: c"TLSProtocol", c"lowest TLS version: v1.2+ or v1.3+";
    CIPHERS_PREFER: c"TLSCiphersPrefer", c"cipher suites to prefer, in order";
    CIPHERS_SUPPRESS: c"TLSCiphersSuppress", c"cipher suites never to use";
    HONOR_CLIENT_ORDER: c"TLSHonorClientOrder", c"on|off: follow the client's cipher order";
}

// The written words of values live beside their parsers; they are named here too, for writers
// of configuration lines (mod_tls-migrate).
pub use super::floor::{FLOOR_TLS12, FLOOR_TLS13, floor_word};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::{CacheSpec, ClientAuth, parse_protocol_floor};

    #[test]
    fn every_directive_is_named_once_with_help() {
        for (i, d) in ALL.iter().enumerate() {
            assert!(d.word().starts_with("TLS") && d.word().is_ascii(), "{d}");
            assert!(!d.help.is_empty(), "{d} has no help");
            assert!(ALL[..i].iter().all(|e| !e.word().eq_ignore_ascii_case(d.word())), "{d} twice");
        }
        assert_eq!(CLIENT_CA.word(), "TLSClientCA");
        assert_eq!(SESSION_CACHE_TIMEOUT.to_string(), "TLSSessionCacheTimeout");
        assert_eq!(CERTIFICATE.line("a.pem b.key"), "TLSCertificate a.pem b.key");
        let default = format!("(default {})", crate::tls::sessions::DEFAULT_LIFETIME_SECS);
        assert!(SESSION_CACHE_TIMEOUT.help.to_str().unwrap().contains(&default), "{:?}", SESSION_CACHE_TIMEOUT.help);
    }

    #[test]
    fn floor_words_read_back() {
        for wire in [FLOOR_TLS12, FLOOR_TLS13] {
            let word = floor_word(wire).unwrap();
            assert_eq!(parse_protocol_floor(PROTOCOL.word(), word), Ok(wire), "{word}");
        }
        assert_eq!(parse_protocol_floor(PROTOCOL.word(), "default"), Ok(FLOOR_TLS12));
        assert_eq!(floor_word(0x0302), None);
    }

    #[test]
    fn cache_specs_read_back() {
        for spec in ["none", "default", "shmcb", "shmcb:tls/cache(512000)", "memcache:127.0.0.1:11211"] {
            let parsed = CacheSpec::parse(spec).unwrap();
            assert_eq!(parsed.to_string(), spec);
            assert_eq!(CacheSpec::parse(&parsed.to_string()), Ok(parsed), "{spec}");
        }
    }

    #[test]
    fn client_auth_words_read_back() {
        for mode in [ClientAuth::None, ClientAuth::Optional, ClientAuth::Required, ClientAuth::OptionalNoCa] {
            assert_eq!(ClientAuth::parse(mode.word()), Ok(mode), "{mode}");
        }
    }
}
