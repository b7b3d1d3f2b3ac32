//! What mod_status's page shows of TLS: the counters (handshakes by version, suite and key
//! exchange group, full or resumed; failures by reason; 421 answers; backend handshakes), where
//! each one sits in a flat array of counters that all processes add to, and the page's text.
//! Plain Rust: the storage (shared memory, `httpd::shm::SharedCounters` behind the module's
//! `ShmCounters` in src/stores.rs) and the hooks that count are the module's.

use rustls::{CipherSuite, NamedGroup, ProtocolVersion};

use crate::tls::ocsp::Staple;

/// The suites counted one by one (what the aws-lc-rs provider offers), in the page's order.
const SUITES: [CipherSuite; 9] = [
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS13_AES_128_GCM_SHA256,
    CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// The key-exchange groups counted one by one (X25519MLKEM768 is the post-quantum hybrid).
const GROUPS: [NamedGroup; 4] =
    [NamedGroup::X25519MLKEM768, NamedGroup::X25519, NamedGroup::secp256r1, NamedGroup::secp384r1];

/// Why a client's handshake failed, as the page counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// We sent an alert (the client broke the protocol, or nothing could be agreed).
    AlertSent,
    /// The client sent an alert (it refused our certificate, …).
    AlertReceived,
    /// Refused under `TLSStrictSNI` (AH10353).
    SniRefused,
    /// The client stalled until the handshake's time ran out.
    Timeout,
    /// The client closed or reset the connection in the middle of the handshake (after its
    /// hello), perhaps refusing our certificate without saying so.
    ClientClosed,
    /// The client spoke plain HTTP to the TLS port.
    PlainHttp,
    /// A client certificate from an unknown CA.
    ClientCertUnknownCa,
    /// An expired (or not yet valid) client certificate.
    ClientCertExpired,
    /// A revoked client certificate.
    ClientCertRevoked,
    /// No client certificate where one is required, or another reason to refuse it.
    ClientCertOther,
}

const FAILURES: [(Failure, &str); 10] = [
    (Failure::AlertSent, "AlertSent"),
    (Failure::AlertReceived, "AlertReceived"),
    (Failure::SniRefused, "SNIRefused"),
    (Failure::Timeout, "Timeout"),
    (Failure::ClientClosed, "ClientClosed"),
    (Failure::PlainHttp, "PlainHTTP"),
    (Failure::ClientCertUnknownCa, "ClientCertUnknownCA"),
    (Failure::ClientCertExpired, "ClientCertExpired"),
    (Failure::ClientCertRevoked, "ClientCertRevoked"),
    (Failure::ClientCertOther, "ClientCertRefused"),
];

impl Failure {
    /// The reason of a rustls error that ended a client's handshake.
    pub fn of_error(e: &rustls::Error) -> Failure {
        use rustls::CertificateError as C;
        match e {
            rustls::Error::AlertReceived(_) => Failure::AlertReceived,
            rustls::Error::InvalidCertificate(C::UnknownIssuer) => Failure::ClientCertUnknownCa,
            rustls::Error::InvalidCertificate(
                C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
            ) => Failure::ClientCertExpired,
            rustls::Error::InvalidCertificate(C::Revoked) => Failure::ClientCertRevoked,
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => Failure::ClientCertOther,
            _ => Failure::AlertSent,
        }
    }
}

// The layout of the counters: fixed slots first, then one per suite, group and failure reason.
const FULL: usize = 0;
const RESUMED: usize = 1;
const TLS12: usize = 2;
const TLS13: usize = 3;
const SUITE_OTHER: usize = 4;
const GROUP_OTHER: usize = 5;
const MISDIRECTED: usize = 6;
const BACKEND_FULL: usize = 7;
const BACKEND_RESUMED: usize = 8;
const BACKEND_FAILED: usize = 9;
const SUITE_BASE: usize = 10;
const GROUP_BASE: usize = SUITE_BASE + SUITES.len();
const FAILURE_BASE: usize = GROUP_BASE + GROUPS.len();
const SESSION_LOOKUPS: usize = FAILURE_BASE + FAILURES.len();
const SESSION_LOOKUPS_CAPPED: usize = SESSION_LOOKUPS + 1;
const RESUMPTION_REFUSED_CERT: usize = SESSION_LOOKUPS + 2;
const RESUMPTION_EXPIRED: usize = SESSION_LOOKUPS + 3;
const PANICS: usize = SESSION_LOOKUPS + 4;
/// How many counters there are.
pub const COUNTERS: usize = PANICS + 1;

/// Where the counts are added: counters shared by the children (the module's `ShmCounters`), one
/// index each.
pub trait Counters {
    fn add(&self, index: usize);
    fn get(&self, index: usize) -> u64;
}

/// A completed handshake of a client's connection.
pub fn count_handshake(
    c: &impl Counters,
    version: Option<ProtocolVersion>,
    suite: Option<u16>,
    group: Option<NamedGroup>,
    resumed: bool,
) {
    c.add(if resumed { RESUMED } else { FULL });
    match version {
        Some(ProtocolVersion::TLSv1_3) => c.add(TLS13),
        Some(ProtocolVersion::TLSv1_2) => c.add(TLS12),
        _ => {}
    }
    let suite = suite.and_then(|s| SUITES.iter().position(|k| u16::from(*k) == s));
    c.add(suite.map_or(SUITE_OTHER, |i| SUITE_BASE + i));
    // A resumed TLS 1.2 handshake exchanges no key; a group of another kind is "other".
    if let Some(g) = group {
        c.add(GROUPS.iter().position(|k| *k == g).map_or(GROUP_OTHER, |i| GROUP_BASE + i));
    }
}

pub fn count_failure(c: &impl Counters, failure: Failure) {
    let i = FAILURES.iter().position(|(f, _)| *f == failure).expect("every reason has a slot");
    c.add(FAILURE_BASE + i);
}

/// What one connection's session lookups did (see `tls::sessions`).
pub fn count_sessions(c: &impl Counters, e: crate::tls::sessions::SessionEvents) {
    for (index, n) in [
        (SESSION_LOOKUPS, e.lookups),
        (SESSION_LOOKUPS_CAPPED, e.capped),
        (RESUMPTION_REFUSED_CERT, e.client_cert_refused),
        (RESUMPTION_EXPIRED, e.expired),
    ] {
        for _ in 0..n {
            c.add(index);
        }
    }
}

/// A panic caught in one of our hooks or filters (the connection or request failed closed).
pub fn count_panic(c: &impl Counters) {
    c.add(PANICS);
}

pub fn count_misdirected(c: &impl Counters) {
    c.add(MISDIRECTED);
}

/// A handshake with a proxy backend: completed (resumed or not), or failed.
pub fn count_backend(c: &impl Counters, outcome: Option<bool>) {
    c.add(match outcome {
        Some(true) => BACKEND_RESUMED,
        Some(false) => BACKEND_FULL,
        None => BACKEND_FAILED,
    });
}

/// The counters as `Key: value` lines, mod_status's `?auto` form.
pub fn auto_lines(c: &impl Counters) -> Vec<(String, String)> {
    let (full, resumed) = (c.get(FULL), c.get(RESUMED));
    let total = full + resumed;
    let rate = if total == 0 { 0.0 } else { resumed as f64 / total as f64 };
    let failures: u64 = (0..FAILURES.len()).map(|i| c.get(FAILURE_BASE + i)).sum();
    let mut out = vec![
        ("TLSHandshakes".to_string(), total.to_string()),
        ("TLSHandshakesFull".to_string(), full.to_string()),
        ("TLSHandshakesResumed".to_string(), resumed.to_string()),
        ("TLSResumptionRate".to_string(), format!("{rate:.3}")),
        // No dots in keys: monitoring tools read them as path separators.
        ("TLSHandshakesTLSv1_3".to_string(), c.get(TLS13).to_string()),
        ("TLSHandshakesTLSv1_2".to_string(), c.get(TLS12).to_string()),
    ];
    for (i, s) in SUITES.iter().enumerate() {
        out.push((format!("TLSHandshakesSuite_{}", suite_name(*s)), c.get(SUITE_BASE + i).to_string()));
    }
    out.push(("TLSHandshakesSuite_other".to_string(), c.get(SUITE_OTHER).to_string()));
    for (i, g) in GROUPS.iter().enumerate() {
        out.push((format!("TLSHandshakesGroup_{g:?}"), c.get(GROUP_BASE + i).to_string()));
    }
    out.push(("TLSHandshakesGroup_other".to_string(), c.get(GROUP_OTHER).to_string()));
    out.push(("TLSHandshakeFailures".to_string(), failures.to_string()));
    for (i, (_, name)) in FAILURES.iter().enumerate() {
        out.push((format!("TLSHandshakeFailures_{name}"), c.get(FAILURE_BASE + i).to_string()));
    }
    out.push(("TLSMisdirected421".to_string(), c.get(MISDIRECTED).to_string()));
    let (bf, br) = (c.get(BACKEND_FULL), c.get(BACKEND_RESUMED));
    out.push(("TLSBackendHandshakes".to_string(), (bf + br).to_string()));
    out.push(("TLSBackendHandshakesResumed".to_string(), br.to_string()));
    out.push(("TLSBackendHandshakeFailures".to_string(), c.get(BACKEND_FAILED).to_string()));
    out.push(("TLSSessionLookups".to_string(), c.get(SESSION_LOOKUPS).to_string()));
    out.push(("TLSSessionLookupsCapped".to_string(), c.get(SESSION_LOOKUPS_CAPPED).to_string()));
    out.push(("TLSResumptionsRefused_ClientCert".to_string(), c.get(RESUMPTION_REFUSED_CERT).to_string()));
    out.push(("TLSResumptionsRefused_Expired".to_string(), c.get(RESUMPTION_EXPIRED).to_string()));
    out.push(("TLSPanics".to_string(), c.get(PANICS).to_string()));
    out
}

/// Certificates with fewer days left need attention (`(renew!)` on the page).
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// When a certificate expires (notAfter, seconds since the epoch; None: unreadable): the one
/// fact of every certificate the page's totals need, kept per child once the page is asked for.
pub fn not_after_of(der: &[u8]) -> Option<i64> {
    use x509_parser::prelude::FromDer;
    x509_parser::certificate::X509Certificate::from_der(der).ok().map(|(_, c)| c.validity().not_after.timestamp())
}

/// What a certificate's line shows besides its expiry, read from the certificate when the line
/// is printed (only lines that need attention in `?auto`): nothing of it is kept.
#[derive(Clone, Debug, PartialEq)]
pub struct CertSummary {
    pub subject: String,
    pub key: String,
}

impl CertSummary {
    pub fn of(der: &[u8]) -> CertSummary {
        let field = |f: &str| crate::tls::certvars::cert_var(der, f, 0).unwrap_or_default();
        CertSummary { subject: field("S_DN"), key: field("A_KEY") }
    }
}

/// One certificate as the totals see it: its expiry and its staple.
#[derive(Clone, Debug, PartialEq)]
pub struct CertState {
    /// notAfter, seconds since the epoch (None: unreadable).
    pub not_after: Option<i64>,
    pub staple: Staple,
}

impl CertState {
    /// Whole days left at `now` (negative once expired).
    pub fn days_left(&self, now: i64) -> Option<i64> {
        self.not_after.map(|t| (t - now).div_euclid(86_400))
    }

    /// Expired, expiring, unreadable or without its staple: listed in `?auto` too.
    pub fn needs_attention(&self, now: i64) -> bool {
        self.days_left(now).is_none_or(|d| d < EXPIRY_WARNING_DAYS) || self.staple.is_missing()
    }

    /// The certificate's line: its vhost, what it is, and its state.
    pub fn line(&self, vhost: &str, summary: &CertSummary, now: i64) -> String {
        let days = match self.days_left(now) {
            Some(d) if d < 0 => format!("{d} (expired!)"),
            Some(d) if d < EXPIRY_WARNING_DAYS => format!("{d} (renew!)"),
            Some(d) => d.to_string(),
            None => "unreadable".to_string(),
        };
        format!(
            "vhost={vhost}; subject={}; key={}; days_left={days}; stapling={}",
            summary.subject, summary.key, self.staple
        )
    }
}

/// The certificate figures monitoring polls, whatever the number of vhosts: how many there are,
/// the fewest days left on any (the one expiry figure to alert on), how many expire within
/// [`EXPIRY_WARNING_DAYS`] or have expired, and how many lack their OCSP staple.
pub fn certificate_totals(certs: impl Iterator<Item = CertState>, now: i64) -> Vec<(String, String)> {
    let (mut count, mut min, mut expiring, mut expired, mut unstapled) = (0, None::<i64>, 0, 0, 0);
    for cert in certs {
        count += 1;
        unstapled += usize::from(cert.staple.is_missing());
        if let Some(d) = cert.days_left(now) {
            min = Some(min.map_or(d, |m| m.min(d)));
            expiring += usize::from((0..EXPIRY_WARNING_DAYS).contains(&d));
            expired += usize::from(d < 0);
        }
    }
    let min = min.map_or_else(|| "-".to_string(), |d| d.to_string());
    vec![
        ("TLSCertificates".to_string(), count.to_string()),
        ("TLSCertificateDaysLeftMin".to_string(), min),
        ("TLSCertificatesExpiring".to_string(), expiring.to_string()),
        ("TLSCertificatesExpired".to_string(), expired.to_string()),
        ("TLSCertificatesStapleMissing".to_string(), unstapled.to_string()),
    ]
}

fn suite_name(s: CipherSuite) -> String {
    crate::tls::ciphers::status_name(u16::from(s))
}

/// How the status page is asked for: mod_status's machine-readable `?auto` (every certificate,
/// or only those that need attention) or its HTML page (every certificate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageForm {
    Auto { every_certificate: bool },
    Html,
}

/// The certificates the status page covers: `count` of them, certificate `n`'s state
/// (`state(n)`, for the totals and to know whether its line is shown) and its vhost and summary
/// (`describe(n)`, asked only for the lines shown).
pub struct Certificates<S, D> {
    pub count: usize,
    pub state: S,
    pub describe: D,
}

/// The TLS part of the status page, written piece by piece to `out` (thousands of certificate
/// lines are never one string or list: a child's heap would keep the peak): `lines` (the
/// counters'), the totals of the certificates, the lines of those this form shows (numbered over
/// all of them), and the session cache. `?auto` is what monitoring collects and may pass on: of the cache, the
/// provider only (its arguments name files and cache servers' addresses).
pub fn status_page(
    form: PageForm,
    mut lines: Vec<(String, String)>,
    certs: Certificates<impl Fn(usize) -> CertState, impl Fn(usize) -> (String, CertSummary)>,
    now: i64,
    cache_spec: Option<&str>,
    out: &mut dyn FnMut(&str),
) {
    let Certificates { count, state, describe } = certs;
    lines.extend(certificate_totals((0..count).map(&state), now));
    let every_certificate = match form {
        PageForm::Auto { every_certificate } => every_certificate,
        PageForm::Html => true,
    };
    let html = form == PageForm::Html;
    if html {
        out("<hr>\n<h2>TLS (mod_tls)</h2>\n<table>\n");
    }
    let mut put = |k: &str, v: &str| {
        if html {
            out(&format!("<tr><th align=\"left\">{}</th><td>{}</td></tr>\n", escape_html(k), escape_html(v)));
        } else {
            out(&format!("{k}: {v}\n"));
        }
    };
    for (k, v) in &lines {
        put(k, v);
    }
    for (n, cert) in (0..count).map(&state).enumerate() {
        if every_certificate || cert.needs_attention(now) {
            let (vhost, summary) = describe(n);
            put(&format!("TLSCertificate{n}"), &cert.line(&vhost, &summary, now));
        }
    }
    match (html, cache_spec) {
        (false, Some(spec)) => out(&format!("TLSSessionCache: {}\n", spec.split(':').next().unwrap_or_default())),
        (false, None) => {}
        (true, spec) => {
            out("</table>\n");
            if let Some(spec) = spec {
                out(&format!("<h2>TLS Session Cache Status (mod_tls, {})</h2>\n", escape_html(spec)));
            }
        }
    }
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod page_tests {
    use super::*;
    use crate::tls::ocsp::Staple;

    const NOW: i64 = 1_800_000_000;

    fn state(days_left: i64) -> CertState {
        CertState { not_after: Some(NOW + days_left * 86_400 + 10), staple: Staple::Off }
    }

    #[test]
    fn auto_lists_only_certificates_that_need_attention_unless_asked() {
        let certs = [state(200), state(3)];
        let asked = std::cell::RefCell::new(Vec::new());
        let describe = |n: usize| {
            asked.borrow_mut().push(n);
            let (vhost, subject) = [("a.test", "CN=a"), ("b.test", "CN=<b>")][n];
            (vhost.to_string(), CertSummary { subject: subject.into(), key: "EC 256".into() })
        };
        let counters = vec![("TLSHandshakes".to_string(), "7".to_string())];
        let page = |form, spec| {
            let mut text = String::new();
            let list = Certificates { count: certs.len(), state: |n: usize| certs[n].clone(), describe };
            status_page(form, counters.clone(), list, NOW, spec, &mut |s: &str| text += s);
            text
        };
        let auto = page(PageForm::Auto { every_certificate: false }, Some("shmcb:/run/secret(512000)"));
        assert_eq!(*asked.borrow(), [1], "only the line shown is read from its certificate");
        assert!(auto.starts_with("TLSHandshakes: 7\n"), "{auto}");
        assert!(auto.contains("TLSCertificateDaysLeftMin: 3\n"), "{auto}");
        assert!(!auto.contains("TLSCertificate0:"), "a fine certificate is not listed: {auto}");
        assert!(auto.contains("TLSCertificate1: vhost=b.test;"), "numbered over all certificates: {auto}");
        assert!(auto.ends_with("TLSSessionCache: shmcb\n"), "the provider only, never its path: {auto}");
        assert!(!auto.contains("/run/secret"));
        let all = page(PageForm::Auto { every_certificate: true }, None);
        assert!(all.contains("TLSCertificate0: vhost=a.test;") && !all.contains("TLSSessionCache"), "{all}");
        let html = page(PageForm::Html, Some("shmcb:/run/x"));
        assert!(html.contains("<th align=\"left\">TLSCertificate0</th>"), "{html}");
        assert!(html.contains("CN=&lt;b&gt;") && !html.contains("CN=<b>"), "escaped: {html}");
        assert!(html.contains("(mod_tls, shmcb:/run/x)"), "{html}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Mem(Vec<AtomicU64>);
    impl Counters for Mem {
        fn add(&self, i: usize) {
            self.0[i].fetch_add(1, Ordering::Relaxed);
        }
        fn get(&self, i: usize) -> u64 {
            self.0[i].load(Ordering::Relaxed)
        }
    }

    #[test]
    fn certificate_lines_and_totals() {
        let now = 1_000_000_000;
        let cert = |days: Option<i64>, staple| CertState { not_after: days.map(|d| now + d * 86_400 + 10), staple };
        let lines = [
            cert(Some(90), Staple::Age(30)),
            cert(Some(90), Staple::Missing("no response yet")),
            cert(Some(5), Staple::Off),
            cert(Some(-2), Staple::Off),
            cert(None, Staple::Off),
            cert(Some(90), Staple::Off),
        ];
        let attention: Vec<bool> = lines.iter().map(|l| l.needs_attention(now)).collect();
        assert_eq!(attention, [false, true, true, true, true, false]);
        let summary = CertSummary { subject: "CN=x".into(), key: "id-ecPublicKey".into() };
        let text = |n: usize| lines[n].line("a.test", &summary, now);
        assert_eq!(
            text(0),
            "vhost=a.test; subject=CN=x; key=id-ecPublicKey; days_left=90; stapling=on, staple_age=30s"
        );
        assert!(text(2).contains("days_left=5 (renew!)"));
        assert!(text(3).contains("days_left=-2 (expired!)"));
        let totals: std::collections::HashMap<_, _> =
            certificate_totals(lines.iter().cloned(), now).into_iter().collect();
        assert_eq!(totals["TLSCertificates"], "6");
        assert_eq!(totals["TLSCertificateDaysLeftMin"], "-2");
        assert_eq!((totals["TLSCertificatesExpiring"].as_str(), totals["TLSCertificatesExpired"].as_str()), ("1", "1"));
        assert_eq!(totals["TLSCertificatesStapleMissing"], "1");
        assert_eq!(certificate_totals(std::iter::empty(), now)[1].1, "-", "no certificate, no minimum");
    }

    #[test]
    fn counts_land_in_their_lines() {
        let m = Mem((0..COUNTERS).map(|_| AtomicU64::new(0)).collect());
        let s13 = u16::from(CipherSuite::TLS13_AES_256_GCM_SHA384);
        count_handshake(&m, Some(ProtocolVersion::TLSv1_3), Some(s13), Some(NamedGroup::X25519MLKEM768), false);
        count_handshake(&m, Some(ProtocolVersion::TLSv1_3), Some(s13), Some(NamedGroup::X25519MLKEM768), true);
        count_handshake(&m, Some(ProtocolVersion::TLSv1_2), Some(0xc0ff), None, true);
        count_failure(&m, Failure::SniRefused);
        count_failure(&m, Failure::of_error(&rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)));
        count_misdirected(&m);
        count_backend(&m, Some(false));
        count_sessions(
            &m,
            crate::tls::sessions::SessionEvents { lookups: 4, capped: 996, client_cert_refused: 1, expired: 2 },
        );
        count_panic(&m);
        let lines: std::collections::HashMap<_, _> = auto_lines(&m).into_iter().collect();
        let v = |k: &str| lines[k].as_str();
        assert_eq!((v("TLSHandshakes"), v("TLSHandshakesFull"), v("TLSHandshakesResumed")), ("3", "1", "2"));
        assert_eq!(v("TLSResumptionRate"), "0.667");
        assert_eq!((v("TLSHandshakesTLSv1_3"), v("TLSHandshakesTLSv1_2")), ("2", "1"));
        assert_eq!(v("TLSHandshakesSuite_TLS13_AES_256_GCM_SHA384"), "2");
        assert_eq!(v("TLSHandshakesSuite_other"), "1");
        assert_eq!(v("TLSHandshakesGroup_X25519MLKEM768"), "2");
        assert_eq!((v("TLSHandshakeFailures"), v("TLSHandshakeFailures_SNIRefused")), ("2", "1"));
        assert_eq!(v("TLSHandshakeFailures_ClientCertRevoked"), "1");
        assert_eq!((v("TLSMisdirected421"), v("TLSBackendHandshakes")), ("1", "1"));
        assert_eq!((v("TLSSessionLookups"), v("TLSSessionLookupsCapped")), ("4", "996"));
        assert_eq!((v("TLSResumptionsRefused_ClientCert"), v("TLSResumptionsRefused_Expired")), ("1", "2"));
        assert_eq!(v("TLSPanics"), "1");
        assert_eq!(lines.len(), auto_lines(&m).len(), "every key once");
    }
}
