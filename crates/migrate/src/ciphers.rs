//! OpenSSL cipher expressions (`SSLCipherSuite HIGH:!aNULL`) turned into the suites rustls has.
//!
//! The expression is expanded by the `openssl` command of this machine, the same OpenSSL that
//! mod_ssl reads it with, rather than by a parser of our own: OpenSSL's rules (`HIGH`, `@STRENGTH`,
//! `+`, `!`, its order) are its own and change between versions.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{LazyLock, Mutex};

use mod_tls_core::tls::{ciphers::rustls_suite_names, engine};

/// What an expression selects, as OpenSSL orders it (IANA names), with the selected suites
/// rustls does not have kept apart (they are reported, not lost silently).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Selection {
    /// rustls suites selected, in OpenSSL's order.
    pub suites: Vec<String>,
    /// How many selected suites rustls lacks (CBC, DHE, CCM, ARIA, …).
    pub unavailable: usize,
    /// Their IANA names, in OpenSSL's order.
    pub lacking: Vec<String>,
}

impl Selection {
    /// rustls's own suites of one version (what is kept when an expression cannot be read).
    pub fn rustls(tls13: bool) -> Selection {
        Selection { suites: rustls_suite_names(tls13).into_iter().map(str::to_string).collect(), ..Default::default() }
    }

    /// Whether the selection keeps a suite (by IANA name).
    pub fn has(&self, suite: &str) -> bool {
        self.suites.iter().any(|s| s == suite)
    }
}

/// OpenSSL 3's default key exchange groups (TLS 1.3, and ECDHE/DHE in TLS 1.2), for a server
/// without `SSLOpenSSLConfCmd Groups`.
pub const OPENSSL_DEFAULT_GROUPS: &[&str] = &[
    "x25519",
    "secp256r1",
    "x448",
    "secp521r1",
    "secp384r1",
    "ffdhe2048",
    "ffdhe3072",
    "ffdhe4096",
    "ffdhe6144",
    "ffdhe8192",
];

/// The key exchange groups rustls offers, lower case (`x25519mlkem768`, `x25519`, `secp256r1`, …).
pub fn rustls_groups() -> Vec<String> {
    engine::provider().kx_groups.iter().map(|g| format!("{:?}", g.name()).to_ascii_lowercase()).collect()
}

/// Of OpenSSL group names (`P-521`, `secp521r1`, `X448`, …), those rustls lacks.
pub fn groups_lacking<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let ours = rustls_groups();
    names
        .into_iter()
        .map(|n| match n.to_ascii_lowercase().as_str() {
            "p-256" | "prime256v1" => "secp256r1".to_string(),
            "p-384" => "secp384r1".to_string(),
            "p-521" => "secp521r1".to_string(),
            other => other.to_string(),
        })
        .filter(|n| !n.is_empty() && !ours.contains(n))
        .collect()
}

/// Expands a TLS ≤ 1.2 expression; Err with OpenSSL's complaint (or that openssl is missing).
pub fn expand_tls12(expr: &str) -> Result<Selection, String> {
    once((false, Some(expr.to_string())), || {
        // `--` ends openssl's options: a list such as `-provider=/x.so` must be read as a list (and
        // found invalid), never as an option that makes openssl load and run a library.
        // `-s`: the suites a server offers, as its security level (`@SECLEVEL`) and the absence of
        // PSK and SRP set-ups leave them, not every name the expression matches.
        let names = openssl(&["ciphers", "-s", "-stdname", "-tls1_2", "-ciphersuites", "", "--", expr])?;
        Ok(select(&names, false))
    })
}

/// Expands a TLS 1.3 list (`SSLCipherSuite TLSv1.3 …`), or OpenSSL's default list for `None`.
pub fn expand_tls13(list: Option<&str>) -> Result<Selection, String> {
    once((true, list.map(str::to_string)), || {
        let names = match list {
            Some(l) => openssl(&["ciphers", "-stdname", "-s", "-tls1_3", "-ciphersuites", l])?,
            None => openssl(&["ciphers", "-stdname", "-s", "-tls1_3"])?,
        };
        Ok(select(&names, true))
    })
}

/// Each expression is expanded once per run: a vhost's plan also looks at the main server's
/// lists, so the same ones come back for every vhost.
fn once(key: (bool, Option<String>), expand: impl FnOnce() -> Result<Selection, String>) -> Result<Selection, String> {
    type Cache = Mutex<HashMap<(bool, Option<String>), Result<Selection, String>>>;
    static EXPANDED: LazyLock<Cache> = LazyLock::new(Default::default);
    if let Some(done) = EXPANDED.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return done.clone();
    }
    let result = expand();
    EXPANDED.lock().unwrap_or_else(|e| e.into_inner()).insert(key, result.clone());
    result
}

fn select(names: &[String], tls13: bool) -> Selection {
    let ours = rustls_suite_names(tls13);
    let mut sel = Selection::default();
    for n in names {
        // `openssl ciphers -tls1_3` lists the TLS 1.2 suites too: only this version's count.
        let is13 = !n.contains("_WITH_");
        if is13 != tls13 {
            continue;
        }
        if ours.contains(&n.as_str()) {
            if !sel.suites.contains(n) {
                sel.suites.push(n.clone());
            }
        } else {
            sel.unavailable += 1;
            sel.lacking.push(n.clone());
        }
    }
    sel
}

/// The first column (`-stdname`: the IANA name) of each line `openssl` prints.
fn openssl(args: &[&str]) -> Result<Vec<String>, String> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run openssl ({e}): install it (Debian: apt-get install openssl)"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let why = if err.contains("no cipher match") {
            "OpenSSL finds no cipher in it".to_string()
        } else {
            err.lines().next().unwrap_or("openssl failed").to_string()
        };
        return Err(why);
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("TLS_"))
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_rustls_lacks_are_named() {
        assert_eq!(groups_lacking(OPENSSL_DEFAULT_GROUPS.iter().copied())[..2], ["x448", "secp521r1"]);
        assert_eq!(groups_lacking(["X25519", "P-256", "P-521"]), ["secp521r1"]);
    }

    #[test]
    fn rustls_has_three_tls13_and_six_tls12_suites() {
        assert_eq!(rustls_suite_names(true).len(), 3);
        assert_eq!(rustls_suite_names(false).len(), 6);
        assert!(rustls_suite_names(true).contains(&"TLS_AES_256_GCM_SHA384"));
    }

    #[test]
    fn expressions_keep_openssls_order_and_count_what_rustls_lacks() {
        let high = expand_tls12("HIGH:!aNULL").unwrap();
        assert_eq!(high.suites.len(), 6, "{high:?}");
        assert_eq!(high.suites[0], "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");
        assert!(high.unavailable > 10);
        let rsa_only = expand_tls12("ECDHE+aRSA+AESGCM").unwrap();
        assert_eq!(rsa_only.suites, ["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]);
        let cbc = expand_tls12("AES256-SHA:DHE-RSA-AES128-SHA").unwrap();
        assert!(cbc.suites.is_empty() && cbc.unavailable == 2, "{cbc:?}");
        assert!(expand_tls12("NO-SUCH-CIPHER").is_err());
        assert_eq!(
            expand_tls13(None).unwrap().suites,
            ["TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256"]
        );
        assert_eq!(expand_tls13(Some("TLS_AES_128_GCM_SHA256")).unwrap().suites, ["TLS_AES_128_GCM_SHA256"]);
    }
}
