//! Decisions the connection and request hooks make, as plain functions with unit tests: the glue
//! in `adapter/` gathers the facts from httpd and acts on the answer.

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
