//! Request hooks: refusing what must not be served on a connection (plain HTTP on the TLS port,
//! mod_md's stand-in certificate, a vhost with other TLS settings than the handshake's), the
//! user name from a certificate, the `SSL_*` variables, the scheme, and the status page.

use crate::tls::time::now_unix;
use crate::tls::{ocsp, policy, stats, vars};
use httpd::hooks::StatusFlags;
use httpd::{
    Conn, DECLINED, HTTP_BAD_REQUEST, HTTP_MISDIRECTED_REQUEST, HTTP_SERVICE_UNAVAILABLE, HookResult, Request, Server,
    log,
};
use httpd::{log_conn, log_server};

use super::conn_view::{handshake_facts, shared};
use super::{TlsModule, built, conf};

/// Answers `ap_ssl_var_lookup` (mod_rewrite's %{SSL:..}, mod_headers, ap_expr, mod_http2, CGI).
pub fn var_lookup(c: Conn, name: &str) -> Option<String> {
    vars::lookup(name, &vars::ConnFacts::now(handshake_facts(c)?))
}

/// LogFormat `%{VAR}x` (registered when mod_ssl, which has it too, is not loaded): a TLS variable
/// of the request's connection.
pub fn log_var(r: Request<'_>, name: &str) -> Option<String> {
    match var_lookup(r.conn()?, name) {
        // As mod_ssl logs it for a connection without TLS.
        None if name == "HTTPS" => Some("off".into()),
        v => v,
    }
}

/// LogFormat `%{name}c`, mod_ssl's short names (`errcode`/`errstr` log `-`).
pub fn log_tls_fact(r: Request<'_>, name: &str) -> Option<String> {
    let var = match name {
        "version" => "SSL_PROTOCOL",
        "cipher" => "SSL_CIPHER",
        "subjectdn" | "clientcert" => "SSL_CLIENT_S_DN",
        "issuerdn" | "cacert" => "SSL_CLIENT_I_DN",
        _ => return None,
    };
    log_var(r, var)
}

/// `Require ssl` (when mod_ssl is not loaded): the request came over TLS.
pub fn require_tls(r: Request<'_>) -> bool {
    r.conn().is_some_and(super::connection::is_ours)
}

/// `Require ssl-verify-client`: the request came over TLS with a client certificate that was
/// verified.
pub fn require_verified_client(r: Request<'_>) -> bool {
    log_var(r, "SSL_CLIENT_VERIFY").as_deref() == Some("SUCCESS")
}

/// Requests on connections we secure get the `https` scheme and port 443 by default.
pub fn is_ours(r: Request<'_>) -> bool {
    r.conn().and_then(shared).is_some()
}

/// A request whose Host names another vhost than the one its handshake ran with (chosen by SNI,
/// or the address's default without SNI) may only be served when both have the same TLS settings
/// (otherwise the client would get around the other vhost's policy): 421, so that a client that
/// coalesced connections (HTTP/2) or sent no SNI retries on a connection of its own for that name.
pub fn post_read_request(r: Request<'_>) -> HookResult {
    let Some(c) = r.conn() else { return DECLINED };
    let Some(shared) = shared(c) else { return DECLINED };
    #[cfg(feature = "test-hooks")]
    crate::test_hooks::panic_in_request_for(&r.hostname());
    if built(r.server()).tls().is_some_and(|t| t.fallback) {
        // mod_md's stand-in certificate: not for serving content.
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if shared.is_plain_http() {
        // As mod_ssl: a readable answer for someone who typed http:// with the TLS port.
        r.set_note(
            c"error-notes",
            c"Reason: You're speaking plain HTTP to a TLS-enabled server port.<br />\n Instead use the HTTPS scheme to access this URL, please.<br />\n",
        );
        c.close_after_request();
        log_conn!(c, log::INFO, 0, "plain HTTP request on a TLS port; answering 400");
        return HTTP_BAD_REQUEST;
    }
    let Some(established) = shared.established() else {
        // Requests only follow a completed handshake; refuse rather than guess.
        log_server!(r.server(), log::ERR, 0, "request on a TLS connection without a completed handshake");
        if let Some(st) = super::stats() {
            stats::count_misdirected(st);
        }
        return HTTP_MISDIRECTED_REQUEST;
    };
    // Every request, with or without SNI: without it the handshake ran with the address's
    // default vhost, whose policy a Host naming another vhost must not get around.
    let handshake_server = established.server;
    let fingerprint = |s: Server| built(s).tls().map(|t| t.fingerprint);
    if policy::misdirected(
        r.server() == handshake_server,
        fingerprint(r.server()).as_ref(),
        fingerprint(handshake_server).as_ref(),
    ) {
        let sni = established.facts.sni.as_deref().map_or_else(|| "no SNI".to_string(), |n| format!("SNI '{n}'"));
        log_server!(
            r.server(),
            log::ERR,
            0,
            "AH10345: request for host '{}' on a connection whose handshake ran for {} ({sni}): the two \
             virtual hosts have different TLS settings; answering 421 Misdirected Request",
            r.hostname(),
            handshake_server.describe()
        );
        if let Some(st) = super::stats() {
            stats::count_misdirected(st);
        }
        return HTTP_MISDIRECTED_REQUEST;
    }
    // The protocol the handshake negotiated (ALPN) must be one this vhost allows (`Protocols`):
    // the TLS settings may be the same, and an h2 connection made for one vhost must not carry
    // streams for another that does not speak h2 (checked here, whatever mod_http2 checks).
    if r.server() != handshake_server
        && let Some(alpn) = established.facts.alpn.as_deref()
        && let Ok(alpn) = std::str::from_utf8(alpn)
        && !r.vhost_allows_protocol(alpn)
    {
        log_server!(
            r.server(),
            log::ERR,
            0,
            "AH10345: request for host '{}' on a connection that negotiated {alpn} for {}, which '{}' does not \
             allow (Protocols); answering 421 Misdirected Request",
            r.hostname(),
            handshake_server.describe(),
            r.hostname()
        );
        if let Some(st) = super::stats() {
            stats::count_misdirected(st);
        }
        return HTTP_MISDIRECTED_REQUEST;
    }
    // Only for a request this vhost serves (a refused one gets no user either), and only from a
    // certificate that verified (see `vars::user_name`).
    if let Some(var) = conf(r.server()).user_name_var.as_deref()
        && let Some(user) = vars::user_name(var, &vars::ConnFacts::now(&established.facts))
    {
        r.set_user(&user);
    }
    DECLINED
}

/// As mod_ssl: every request on a TLS connection gets `HTTPS=on` for CGI and friends, and the
/// TLS variables when `TLSOptions StdEnvVars` / `ExportCertData` are on for its location.
pub fn fixups(r: Request<'_>) -> HookResult {
    let Some(c) = r.conn() else { return DECLINED };
    if shared(c).is_none() {
        return DECLINED;
    }
    r.set_env("HTTPS", "on");
    let options = &r.dir_config::<TlsModule>().options;
    let std_vars = options.has(conf::OPT_STD_ENV_VARS);
    let cert_data = options.has(conf::OPT_EXPORT_CERT_DATA);
    if !std_vars && !cert_data {
        return DECLINED;
    }
    let Some(facts) = handshake_facts(c) else { return DECLINED };
    let facts = vars::ConnFacts::now(facts);
    if std_vars {
        for (k, v) in vars::std_env_vars(&facts) {
            r.set_env(&k, &v);
        }
    }
    if cert_data {
        for (k, v) in vars::cert_data_vars(&facts) {
            r.set_env(&k, &v);
        }
    }
    DECLINED
}

/// mod_status's server-status page: the handshake and failure counters of every child of the
/// generation, the certificates, and the session cache's own status (as mod_ssl shows its
/// cache). `?auto` gets one `Key: value` line each, and stays small with thousands of vhosts:
/// certificate totals (count, fewest days left, expiring, expired, missing staples) and a line
/// only for each certificate that needs attention; `?auto&certificates` lists every one, as the
/// full page does.
pub fn status(r: Request<'_>, flags: StatusFlags) {
    let short = flags.is_short();
    let every_certificate = !short || r.args().contains("certificates");
    let counters = super::stats();
    let mut lines: Vec<(String, String)> = Vec::new();
    if let Some(c) = counters {
        lines.push(("TLSCountingSince".into(), c.0.since_unix.to_string()));
        lines.extend(stats::auto_lines(c));
    }
    let now = now_unix();
    // Every certificate's expiry and staple for the totals; what a line shows besides is read
    // only for the lines shown (`?auto` lists those that need attention).
    let der_of = |s: Server, i: u32| -> Option<&[u8]> {
        let key = built(s).tls()?.certified_keys().nth(i as usize)?;
        Some(key.cert.first()?.as_ref())
    };
    let all = built(Server::main()).main_only().status_certificates.get_or_init(|| {
        let tls_servers =
            Server::main().and_following().filter_map(|s| Some((s, built(s).tls()?.certified_keys().len())));
        let each = tls_servers.flat_map(|(s, keys)| (0..keys as u32).map(move |i| (s, i)));
        each.map(|(s, i)| (s, i, der_of(s, i).and_then(stats::not_after_of))).collect()
    });
    let cert = |n: usize| {
        let (s, i, not_after) = all[n];
        // The response mod_md keeps for a stapled certificate, and how old it is.
        let stapled = built(s).tls().and_then(|t| t.stapling.get()).and_then(|v| v.get(i as usize)?.as_deref());
        let ask = r.conn().map(|c| move |id: &[u8; 32]| httpd::md::ocsp_response(c, s, id));
        stats::CertState { not_after, staple: ocsp::staple_state(stapled, ask, now) }
    };
    let describe = |n: usize| {
        let (s, i, _) = all[n];
        // `?auto` is what monitoring collects and may pass on: the vhost's name only, never
        // where its configuration file is.
        let vhost = match (short, s.is_virtual()) {
            (false, _) => s.describe(),
            (true, true) => s.hostname(),
            (true, false) => "main server".to_string(),
        };
        (vhost, stats::CertSummary::of(der_of(s, i).unwrap_or_default()))
    };
    let cache = built(Server::main()).session_cache().cloned();
    let form = if short { stats::PageForm::Auto { every_certificate } } else { stats::PageForm::Html };
    let spec = cache.as_ref().map(|c| c.0.spec.as_str());
    let certs = stats::Certificates { count: all.len(), state: cert, describe };
    stats::status_page(form, lines, certs, now, spec, &mut |text| r.write(text));
    if let Some(cache) = cache {
        cache.0.status(r, flags);
    }
}
