//! Decisions start-up and the connection and request hooks make, as plain functions with unit
//! tests: the module crate gathers the facts from httpd and acts on the answer.

use crate::tls::fingerprint::TlsFingerprint;

/// Whether the data gathered from one output brigade (its first and last pieces) is exactly an
/// HTTP/1.x response head, and not an interim 1xx one, after which the connection may change
/// hands (101 Switching Protocols). Such a head is held back to share a record with the body.
pub fn is_response_head(first: &[u8], last: &[u8]) -> bool {
    first.starts_with(b"HTTP/1.") && first.get(9..10).is_none_or(|d| d != b"1") && last.ends_with(b"\r\n\r\n")
}

/// Whether a request for a vhost must be refused with 421 because its TLS settings differ from
/// those of the vhost the connection's handshake ran with (chosen by SNI, or the address's
/// default without SNI). A vhost without a built configuration matches nothing but itself.
pub fn misdirected(same_vhost: bool, request: Option<&TlsFingerprint>, handshake: Option<&TlsFingerprint>) -> bool {
    if same_vhost {
        return false;
    }
    !matches!((request, handshake), (Some(r), Some(h)) if r == h)
}

/// What a ClientHello's SNI selects, given the vhost of the address it names (if any).
#[derive(Debug, PartialEq, Eq)]
pub enum VhostChoice<S> {
    /// The named vhost.
    Named(S),
    /// The address's default vhost: no SNI, or an unknown name with `TLSStrictSNI off`.
    Default,
    /// An unknown name with `TLSStrictSNI on`: refuse with `unrecognized_name`.
    Refuse,
}

/// What a ClientHello's SNI names among the servers of the connection's address.
#[derive(Debug, PartialEq, Eq)]
pub enum SniNames<S> {
    /// A name-based vhost of the address (ServerName, ServerAlias).
    Vhost(S),
    /// No vhost, but the main server's ServerName: httpd would serve a request with that Host from
    /// the address's default vhost, so the handshake does too (the C module accepts it).
    MainServer,
    /// No vhost has the name, but the address has only one vhost: it serves every name, as
    /// mod_ssl's does (a package's default site answers `localhost`, the machine's names and
    /// addresses). Strict SNI protects addresses where an unknown name could reach the wrong
    /// one of several vhosts; with one there is no other to reach.
    SoleVhost,
    /// Nothing configured.
    Nothing,
}

/// The vhost a ClientHello selects: `sni` is what its SNI names, `None` without SNI.
pub fn choose_vhost<S>(sni: Option<SniNames<S>>, strict_sni: bool) -> VhostChoice<S> {
    match sni {
        None | Some(SniNames::MainServer | SniNames::SoleVhost) => VhostChoice::Default,
        Some(SniNames::Vhost(s)) => VhostChoice::Named(s),
        Some(SniNames::Nothing) if strict_sni => VhostChoice::Refuse,
        Some(SniNames::Nothing) => VhostChoice::Default,
    }
}

/// httpd's core output filter sets aside less than this much in-memory data instead of writing it
/// (its THRESHOLD_MIN_WRITE).
pub const CORE_MIN_WRITE: usize = 4096;

/// Whether to FLUSH at the end of a response: the core output filter would keep `pending` bytes
/// (under [`CORE_MIN_WRITE`]) for later, while the client waits for them before sending its next
/// request on a connection that stays open. A closing connection writes them with its
/// close_notify anyway.
pub fn flush_at_end_of_response(connection_closes: bool, pending: usize) -> bool {
    !connection_closes && pending > 0 && pending < CORE_MIN_WRITE
}

/// Where a `RequestReadTimeout` line stands: at the top level, or in the `<VirtualHost>` that
/// begins at this file and line.
pub type ReqtimeoutScope = Option<(String, i32)>;

/// Whether mod_reqtimeout bounds the handshakes of the server defined at `vhost` (None: the
/// main server), given every `RequestReadTimeout` line in configuration order with whether it
/// sets a handshake stage. A vhost's own last line wins; without one, the last top-level line.
pub fn reqtimeout_handshake_applies(lines: &[(ReqtimeoutScope, bool)], vhost: Option<(&str, i32)>) -> bool {
    let last_in = |scope: Option<(&str, i32)>| {
        lines.iter().rev().find(|(s, _)| s.as_ref().map(|(f, l)| (f.as_str(), *l)) == scope).map(|(_, on)| *on)
    };
    vhost.and_then(|v| last_in(Some(v))).or_else(|| last_in(None)).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_heads_are_final_http1_heads_only() {
        assert!(is_response_head(b"HTTP/1.1 200 OK\r\n", b"Content-Length: 3\r\n\r\n"));
        assert!(is_response_head(b"HTTP/1.1 404 Not Found\r\n\r\n", b"HTTP/1.1 404 Not Found\r\n\r\n"));
        assert!(!is_response_head(b"HTTP/1.1 101 Switching Protocols\r\n", b"\r\n\r\n"), "interim");
        assert!(!is_response_head(b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 100 Continue\r\n\r\n"));
        assert!(!is_response_head(b"HTTP/1.1 200 OK\r\n", b"Content-Length: 3\r\n"), "head not complete");
        assert!(!is_response_head(b"hello", b"\r\n\r\n"), "body data");
    }

    #[test]
    fn misdirected_unless_same_vhost_or_same_settings() {
        let fp = |b: u8| {
            let mut f = crate::tls::fingerprint::FingerprintBuilder::default();
            f.part("x", &[b]);
            f.finish()
        };
        let (a, b) = (fp(1), fp(2));
        assert!(!misdirected(true, None, None), "the handshake's own vhost");
        assert!(!misdirected(false, Some(&a), Some(&a.clone())), "identical settings");
        assert!(misdirected(false, Some(&a), Some(&b)), "other settings");
        assert!(misdirected(false, None, Some(&a)), "a vhost without TLS configuration");
        assert!(misdirected(false, Some(&a), None));
    }

    #[test]
    fn sni_chooses_the_named_vhost_or_the_default_or_refuses() {
        assert_eq!(choose_vhost(Some(SniNames::Vhost(1)), true), VhostChoice::Named(1));
        assert_eq!(choose_vhost::<u8>(None, true), VhostChoice::Default, "no SNI");
        assert_eq!(choose_vhost::<u8>(Some(SniNames::Nothing), true), VhostChoice::Refuse);
        assert_eq!(choose_vhost::<u8>(Some(SniNames::Nothing), false), VhostChoice::Default);
        assert_eq!(choose_vhost::<u8>(Some(SniNames::SoleVhost), true), VhostChoice::Default, "one vhost");
        assert_eq!(
            choose_vhost::<u8>(Some(SniNames::MainServer), true),
            VhostChoice::Default,
            "the main server's name is known even under TLSStrictSNI"
        );
    }

    #[test]
    fn small_tails_of_kept_alive_responses_are_flushed() {
        assert!(flush_at_end_of_response(false, 1));
        assert!(flush_at_end_of_response(false, CORE_MIN_WRITE - 1));
        assert!(!flush_at_end_of_response(false, CORE_MIN_WRITE), "core writes this much itself");
        assert!(!flush_at_end_of_response(false, 0), "nothing pending");
        assert!(!flush_at_end_of_response(true, 100), "close_notify goes with it");
    }

    #[test]
    fn reqtimeout_vhost_line_wins_then_the_last_top_level_one() {
        let v = |l: i32| Some(("httpd.conf".to_string(), l));
        let lines = vec![(None, true), (v(10), false), (None, false), (v(20), true), (v(20), false)];
        assert!(!reqtimeout_handshake_applies(&lines, None), "the last top-level line");
        assert!(!reqtimeout_handshake_applies(&lines, Some(("httpd.conf", 10))), "its own line");
        assert!(!reqtimeout_handshake_applies(&lines, Some(("httpd.conf", 20))), "its own last line");
        assert!(!reqtimeout_handshake_applies(&lines, Some(("httpd.conf", 30))), "inherits the top level");
        let lines = vec![(None, true), (v(10), false)];
        assert!(reqtimeout_handshake_applies(&lines, Some(("httpd.conf", 30))));
        assert!(!reqtimeout_handshake_applies(&[], None), "no RequestReadTimeout at all");
    }
}

/// What start-up does with one server record, from where it listens and what it is given.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerPlan<'a> {
    /// No `TLSEngine` address reaches it: not ours.
    NotServed,
    /// mod_ssl is on for it (`SSLEngine on`) although a `TLSEngine` address reaches it: start-up
    /// fails, an address is served by one TLS module.
    ModSslConflict { engine: &'a crate::conf::EngineAddr },
    /// Reached by `TLSEngine` without a certificate, and no mod_md to ask: start-up fails.
    NoCertificate { engine: &'a crate::conf::EngineAddr },
    /// No certificate of its own, but mod_md is loaded: asked for one in post_config.
    AskModMd,
    /// Build its rustls configuration from its certificates.
    Build,
}

/// The facts about one server that start-up's plan for it depends on.
pub struct ServerFacts<'a> {
    /// The `<VirtualHost>` addresses; `None` for the main server.
    pub vhost_addrs: Option<&'a [crate::conf::VhostAddr]>,
    /// mod_ssl is switched on for it.
    pub mod_ssl_engine: bool,
    pub has_certificates: bool,
    pub mod_md_loaded: bool,
}

/// The plan for one server: which `TLSEngine` address (of those a `Listen` opens) reaches it
/// (a vhost through its addresses; the main server where no vhost covers the address), and then
/// what it needs. `all_vhost_addrs`: every vhost's addresses.
pub fn plan_server<'a>(
    engines: &'a [crate::conf::EngineAddr],
    all_vhost_addrs: &[Vec<crate::conf::VhostAddr>],
    server: &ServerFacts<'_>,
) -> ServerPlan<'a> {
    let reached_by = match server.vhost_addrs {
        Some(addrs) => engines.iter().find(|e| addrs.iter().any(|a| crate::conf::engine_reaches_vhost(e, a))),
        None => engines.iter().find(|e| crate::conf::engine_reaches_main_server(e, all_vhost_addrs)),
    };
    let Some(engine) = reached_by else { return ServerPlan::NotServed };
    if server.mod_ssl_engine {
        ServerPlan::ModSslConflict { engine }
    } else if server.has_certificates {
        ServerPlan::Build
    } else if server.mod_md_loaded {
        ServerPlan::AskModMd
    } else {
        ServerPlan::NoCertificate { engine }
    }
}

impl ServerPlan<'_> {
    /// Why start-up fails for server `name` (`describe()`d), for the error log; None when it
    /// does not.
    pub fn refusal(&self, name: &str) -> Option<String> {
        match self {
            ServerPlan::ModSslConflict { engine } => Some(format!(
                "{name} has 'SSLEngine on' (mod_ssl) but is reached through 'TLSEngine {engine}' (mod_tls): an \
                 address is served by one TLS module. Remove SSLEngine from it, or move it to an address that no \
                 TLSEngine names"
            )),
            ServerPlan::NoCertificate { engine } => {
                let at = match engine.ip {
                    Some(ip) => format!("{ip}:{}", engine.port),
                    None => format!("port {}", engine.port),
                };
                Some(format!(
                    "{name} is served with TLS (TLSEngine {at}) but has no certificate: add 'TLSCertificate \
                     cert.pem key.pem' to it, or one at the top level for all virtual hosts"
                ))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod plan_tests {
    use super::*;
    use crate::conf::{EngineAddr, VhostAddr};
    use std::net::IpAddr;

    fn engine(ip: Option<&str>, port: u16) -> EngineAddr {
        EngineAddr { ip: ip.map(|i| i.parse::<IpAddr>().unwrap()), port }
    }

    fn vhost(ip: Option<&str>, port: u16) -> VhostAddr {
        VhostAddr { ip: ip.map(|i| i.parse::<IpAddr>().unwrap()), port }
    }

    fn facts(addrs: Option<&[VhostAddr]>, mod_ssl: bool, certs: bool, md: bool) -> ServerFacts<'_> {
        ServerFacts { vhost_addrs: addrs, mod_ssl_engine: mod_ssl, has_certificates: certs, mod_md_loaded: md }
    }

    #[test]
    fn a_vhost_is_served_where_a_tls_engine_reaches_one_of_its_addresses() {
        let engines = [engine(None, 443), engine(Some("127.0.0.1"), 8443)];
        let on_443 = [vhost(None, 443)];
        let on_80 = [vhost(None, 80)];
        let on_8443_other_ip = [vhost(Some("192.0.2.1"), 8443)];
        let all = vec![on_443.to_vec(), on_80.to_vec()];
        assert_eq!(plan_server(&engines, &all, &facts(Some(&on_443), false, true, false)), ServerPlan::Build);
        assert_eq!(plan_server(&engines, &all, &facts(Some(&on_80), false, true, false)), ServerPlan::NotServed);
        assert_eq!(
            plan_server(&engines, &all, &facts(Some(&on_8443_other_ip), false, true, false)),
            ServerPlan::NotServed
        );
    }

    #[test]
    fn the_main_server_is_served_where_no_vhost_covers_the_engine() {
        let engines = [engine(None, 443)];
        let covered = vec![vec![vhost(None, 443)]];
        assert_eq!(plan_server(&engines, &covered, &facts(None, false, true, false)), ServerPlan::NotServed);
        let elsewhere = vec![vec![vhost(None, 80)]];
        assert_eq!(plan_server(&engines, &elsewhere, &facts(None, false, true, false)), ServerPlan::Build);
    }

    #[test]
    fn what_a_served_server_needs_and_why_start_up_refuses() {
        let engines = [engine(Some("127.0.0.1"), 8443)];
        let addrs = [vhost(Some("127.0.0.1"), 8443)];
        let all = vec![addrs.to_vec()];
        let plan = |mod_ssl, certs, md| plan_server(&engines, &all, &facts(Some(&addrs), mod_ssl, certs, md));
        assert_eq!(plan(true, true, true), ServerPlan::ModSslConflict { engine: &engines[0] });
        assert_eq!(plan(false, false, true), ServerPlan::AskModMd);
        assert_eq!(plan(false, true, true), ServerPlan::Build);
        let missing = plan(false, false, false);
        assert_eq!(missing, ServerPlan::NoCertificate { engine: &engines[0] });
        let why = missing.refusal("vhost a.test:8443").unwrap();
        assert!(why.contains("TLSEngine 127.0.0.1:8443") && why.contains("add 'TLSCertificate"), "{why}");
        let conflict = plan(true, false, false).refusal("vhost a.test:8443").unwrap();
        assert!(conflict.contains("'SSLEngine on'") && conflict.contains("TLSEngine 127.0.0.1:8443"), "{conflict}");
        assert_eq!(ServerPlan::Build.refusal("x"), None);
    }
}
