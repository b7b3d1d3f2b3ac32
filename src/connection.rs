//! Taking connections: a client's on a `TLSEngine` address (pre_connection), a backend's when
//! mod_proxy asks (bind_outgoing), and the handshake step of process_connection.

use crate::tls::handshake_wait;
use httpd::log_conn;
use httpd::record::ConfVector;
use httpd::{APR_EAGAIN, APR_SUCCESS, Conn, DECLINED, DONE, HookResult, OK, Server, log, mpm};

use super::conn_view::shared;
use super::tls_filters::{self, TlsConn};
use super::{TlsModule, built, conf};

/// `ap_ssl_conn_is_ssl`: connections we secure (not plain HTTP spoken to our port).
pub fn is_ours(c: Conn) -> bool {
    shared(c).is_some_and(|s| !s.is_plain_http())
}

/// A connection we cannot set up is marked aborted and handed on (DECLINED), as mod_ssl does: core's
/// own pre_connection, which runs after ours, must still record the socket and add the core
/// filters, or the MPM's lingering close finds no socket. An aborted connection is never
/// processed, so nothing is served in plaintext on a TLS port.
pub fn pre_connection(c: Conn) -> HookResult {
    if c.is_secondary() {
        return DECLINED; // HTTP/2 streams ride on the already-secured master connection
    }
    if c.is_outgoing() {
        // A backend connection: ours if bind_outgoing claimed it.
        return if tls_filters::add_backend_filters(c) { OK } else { DECLINED };
    }
    let s = c.base_server();
    let Some(local) = c.local_addr() else { return DECLINED };
    if !conf(s).engines.iter().any(|e| e.matches(&local)) {
        return DECLINED;
    }
    #[cfg(feature = "test-hooks")]
    crate::test_hooks::panic_in_pre_connection_on(local.port());
    if built(s).tls().is_none() {
        log_conn!(c, log::ERR, 0, "no TLS configuration for {} on {local}; closing", s.describe());
        c.abort();
        return DECLINED;
    }
    tls_filters::attach(c);
    OK
}

/// mod_proxy asks who does TLS for a backend connection: we do where TLSProxyEngine is on for the
/// scope (the request's or the worker's merged configuration).
pub fn bind_outgoing(c: Conn, dir: Option<ConfVector>, enable: bool) -> HookResult {
    if !enable {
        return DECLINED;
    }
    if c.local::<TlsModule>().is_some() {
        // mod_proxy binds a kept-alive backend connection again when it releases it (with the
        // worker's section config, possibly none): it stays ours, with its config.
        return OK;
    }
    let dconf = match dir {
        Some(v) => v.dir::<TlsModule>(),
        None => Some(c.base_server().dir_defaults::<TlsModule>()),
    };
    let Some(proxy) = dconf.map(|d| d.proxy()) else { return DECLINED };
    if !proxy.enabled() {
        return DECLINED;
    }
    let Some(cache) = built(Server::main()).proxy_cache() else { return DECLINED };
    // Built at start-up; a combination of sections not seen then is built once from the files
    // read then (no file is read here), and shared.
    match cache.get_or_build(proxy) {
        Ok((tls, _)) => {
            tls_filters::attach_backend(c, tls);
            OK
        }
        Err(e) => {
            log_conn!(c, log::ERR, 0, "TLS to backend: {}", e.located());
            DECLINED
        }
    }
}

/// Runs the handshake before any protocol module reads (as mod_ssl does), so that SNI and ALPN
/// have chosen the vhost and protocol when mod_http2 (APR_HOOK_LAST) and the HTTP/1.1 core
/// (REALLY_LAST) look at the connection.
///
/// On an MPM that can wait for I/O itself (event, httpd 2.4.71+), the handshake reads
/// non-blocking: while the client owes bytes, the connection goes back to the MPM in
/// `CONN_STATE_ASYNC_WAITIO` and holds no worker thread (bounded by `Timeout`); the MPM calls us
/// again when bytes arrive. Stalled or slow clients then cannot exhaust the workers. Nearby
/// clients are first waited for in the worker, within the bounds of [`handshake_wait`].
pub fn process_connection(c: Conn) -> HookResult {
    if c.is_secondary() {
        return DECLINED;
    }
    let Some(state) = c.local::<TlsModule>() else { return DECLINED };
    if !state.borrow().is_handshaking() {
        return DECLINED;
    }
    let async_ok = c.has_async_state() && !built(c.base_server()).reqtimeout_handshake() && mpm::can_wait_io();
    let step = || TlsConn::drive_handshake(c, !async_ok);
    let mut rv = step();
    if rv == APR_EAGAIN
        && async_ok
        && state.borrow().awaits_client_flight()
        && let Some(_slot) = may_wait_in_worker(c)
        && c.wait_readable(handshake_wait::GRACE_MS)
    {
        rv = step();
    }
    if rv == APR_EAGAIN && async_ok {
        c.wait_in_mpm_for_read();
        return OK;
    }
    if rv != APR_SUCCESS {
        // The handshake failed or the client went away; the filter has logged why.
        c.close_after_request();
        return DONE;
    }
    DECLINED
}

/// Permission to wait for the client in this worker (see [`handshake_wait::may_wait`]).
fn may_wait_in_worker(c: Conn) -> Option<handshake_wait::Slot> {
    let threads = mpm::threads_per_child();
    handshake_wait::may_wait(c.tcp_rtt_us(), threads, |enough| mpm::idle_workers_of_this_child(threads, enough))
}
