//! The connection filters: TLS bytes from the network into [`TlsStream`], plaintext up to httpd;
//! plaintext from httpd into records, records down to the network.
//!
//! Both filters share one [`TlsConn`], owned by the connection's pool. The handshake is driven
//! lazily by the first read (as mod_ssl does), so httpd's `Timeout` and mod_reqtimeout's handshake
//! stage (whose filter sits below ours and sees the raw bytes) bound it.

use std::ffi::c_void;
use std::ptr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use rustls::ServerConfig;
use rustls::server::ClientHello;

use crate::httpd::brigade::{self, Brigade, BrigadeWriter};
use crate::httpd::protocol;
use crate::httpd::server::{describe, vhost_for_name};
use crate::httpd::sys::{self, ap_filter_t, apr_bucket_brigade, apr_status_t, conn_rec, server_rec};
use crate::httpd::{APR_EAGAIN, APR_ECONNABORTED, APR_EOF, APR_SUCCESS, catch_panic, log, pool};
use crate::tls::policy::{self, VhostChoice};
use crate::tls::stream::{ConfigChooser, Refusal, TlsFailure, TlsStream};
use crate::{log_conn, module};

/// The most TLS bytes to ask the network for at once: a full record and then some (reads ask
/// for no more than the record being received needs, see `TlsStream::read_size`).
const TLS_READ_CHUNK: usize = 32 * 1024;
/// Pass encrypted output down once this much has accumulated, so a large response streams in
/// bounded memory instead of being encrypted whole.
const OUT_PASS_BYTES: usize = 64 * 1024;
/// Whether the data gathered from a brigade is exactly a response head ([`policy::is_response_head`]).
fn is_response_head(parts: &[(*mut sys::apr_bucket, &[u8])]) -> bool {
    let (Some((_, first)), Some((_, last))) = (parts.first(), parts.last()) else { return false };
    policy::is_response_head(first, last)
}

/// Largest response head held back for coalescing with its body.
const HOLD_BYTES: usize = 8 * 1024;
const APR_ENOTIMPL: apr_status_t = sys::APR_ENOTIMPL as apr_status_t;

static INPUT_FILTER: AtomicPtr<sys::ap_filter_rec_t> = AtomicPtr::new(ptr::null_mut());
static OUTPUT_FILTER: AtomicPtr<sys::ap_filter_rec_t> = AtomicPtr::new(ptr::null_mut());

/// Registers the filter pair (from register_hooks). Between the core/reqtimeout filters below and
/// HTTP above, where mod_ssl sits too.
pub fn register() {
    let ftype = sys::ap_filter_type_AP_FTYPE_CONNECTION + 5;
    unsafe {
        INPUT_FILTER.store(
            sys::ap_register_input_filter(c"TLS_IN".as_ptr(), Some(input_filter), None, ftype),
            Ordering::Release,
        );
        OUTPUT_FILTER.store(
            sys::ap_register_output_filter(c"TLS_OUT".as_ptr(), Some(output_filter), None, ftype),
            Ordering::Release,
        );
    }
}

/// Chooses the vhost, and so the rustls config, from the ClientHello: SNI against the names of the
/// connection address's vhosts, ALPN through httpd's `Protocols` for that vhost.
struct VhostChooser {
    c: *mut conn_rec,
    /// The vhost chosen (the address's default until a ClientHello says otherwise).
    server: *mut server_rec,
    /// The SNI the client sent, if any (moved into the handshake's facts once it completes).
    sni: Option<String>,
    /// The certificate we present (the resolver's choice for this ClientHello; moved into the
    /// handshake's facts once it completes).
    cert: Option<Arc<rustls::sign::CertifiedKey>>,
    /// That certificate with a stapled OCSP response, handed to the resolver once.
    stapled: Option<Arc<rustls::sign::CertifiedKey>>,
}

impl ConfigChooser for VhostChooser {
    fn choose(&mut self, hello: &ClientHello<'_>) -> Result<Arc<ServerConfig>, Refusal> {
        unsafe {
            let base = (*self.c).base_server;
            let strict = module::server_conf(base).strict_sni();
            if let Some(name) = hello.server_name() {
                #[cfg(feature = "test-hooks")]
                crate::test_hooks::panic_if_sni_is(name);
                self.sni = Some(name.to_string());
            }
            let sni = hello.server_name();
            match policy::choose_vhost(sni, sni.and_then(|name| vhost_for_name(self.c, name)), strict) {
                VhostChoice::Named(s) => self.server = s,
                VhostChoice::Default => self.server = base,
                VhostChoice::Refuse => {
                    return Err(Refusal {
                        alert: rustls::AlertDescription::UnrecognisedName,
                        reason: format!(
                            "AH10353: no virtual host on this address is named '{}' (SNI); refused because \
                             TLSStrictSNI is on",
                            sni.unwrap_or_default()
                        ),
                    });
                }
            }
            let Some(tls) = module::built(self.server).tls.clone() else {
                return Err(Refusal {
                    alert: rustls::AlertDescription::InternalError,
                    reason: format!("{} has no TLS configuration", describe(self.server)),
                });
            };
            let key = tls.resolver.choose(hello.signature_schemes(), hello.cipher_suites());
            let offered: Vec<&[u8]> = hello.alpn().map(|it| it.collect()).unwrap_or_default();
            let protocol = protocol::select(self.c, self.server, &offered);
            if protocol.as_deref() == Some(b"acme-tls/1")
                && let Some(name) = hello.server_name()
                && let Some(config) = self.acme_challenge(name)
            {
                return Ok(config);
            }
            self.stapled = self.stapled_key(&tls, &key);
            self.cert = Some(key);
            Ok(tls.for_protocol(protocol.as_deref()))
        }
    }

    fn key_override(&mut self) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.stapled.take()
    }
}

/// A panic (allocation failure) leaves the response empty: the handshake goes on without staple.
unsafe extern "C" fn copy_ocsp_response(der: *const u8, len: sys::apr_size_t, userdata: *mut c_void) {
    catch_panic(
        (),
        |_| {},
        || {
            if !der.is_null() && len > 0 {
                let out = unsafe { &mut *(userdata as *mut Vec<u8>) };
                out.extend_from_slice(unsafe { std::slice::from_raw_parts(der, len) });
            }
        },
    )
}

impl VhostChooser {
    /// An ACME tls-alpn-01 validation (RFC 8737): the protocol is switched to `acme-tls/1` first
    /// (that is how mod_md learns of it), then mod_md gives the challenge certificate.
    fn acme_challenge(&mut self, name: &str) -> Option<Arc<ServerConfig>> {
        unsafe {
            if protocol::switch(self.c, self.server, b"acme-tls/1") != APR_SUCCESS {
                return None;
            }
            let c_name = std::ffi::CString::new(name).ok()?;
            let (mut cert, mut key): (*const std::ffi::c_char, *const std::ffi::c_char) = (ptr::null(), ptr::null());
            if sys::ap_ssl_answer_challenge(self.c, c_name.as_ptr(), &mut cert, &mut key) == 0 || cert.is_null() {
                return None;
            }
            let cert_pem = crate::httpd::cstr(cert).into_owned();
            let key_pem = if key.is_null() { cert_pem.clone() } else { crate::httpd::cstr(key).into_owned() };
            match crate::tls::engine::challenge_config(&cert_pem, &key_pem) {
                Ok(c) => {
                    log_conn!(self.c, log::INFO, 0, "answering the ACME tls-alpn-01 challenge for {name}");
                    Some(c)
                }
                Err(e) => {
                    log_conn!(self.c, log::ERR, 0, "ACME challenge for {name}: {e}");
                    None
                }
            }
        }
    }

    /// The chosen key with mod_md's current OCSP response stapled, when stapling is on for it.
    fn stapled_key(
        &self,
        tls: &crate::tls::engine::VhostTls,
        key: &Arc<rustls::sign::CertifiedKey>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let index = tls.resolver.keys().iter().position(|k| Arc::ptr_eq(k, key))?;
        let stapling = tls.stapling.get()?.get(index)?.as_ref()?;
        let mut response: Vec<u8> = Vec::new();
        let rv = unsafe {
            sys::ap_ssl_ocsp_get_resp(
                self.server,
                self.c,
                stapling.id.as_ptr().cast(),
                stapling.id.len(),
                Some(copy_ocsp_response),
                &mut response as *mut Vec<u8> as *mut c_void,
            )
        };
        (rv == APR_SUCCESS && !response.is_empty()).then(|| stapling.with_response(key, &response))
    }
}

/// What request-time hooks see of a connection. They may run on other threads than the
/// connection's own (HTTP/2 streams), so this is kept apart from [`TlsConn`], which only the
/// connection's own thread touches: written once by that thread, then only read.
pub struct ConnShared {
    /// Set when the handshake completes, before any request can exist.
    established: OnceLock<Established>,
    /// The client spoke plain HTTP to the TLS port.
    plain_http: AtomicBool,
}

/// What a completed handshake settled.
pub struct Established {
    /// The vhost the handshake ran with (chosen by SNI, or the address's default).
    pub server: *mut server_rec,
    pub facts: Arc<crate::tls::vars::HandshakeFacts>,
}

// SAFETY: `server` points to a server_rec, which httpd only reads after start-up, for the whole
// configuration generation that this connection belongs to.
unsafe impl Send for Established {}
unsafe impl Sync for Established {}

impl ConnShared {
    pub fn established(&self) -> Option<&Established> {
        self.established.get()
    }

    /// The client spoke plain HTTP to the TLS port.
    pub fn is_plain_http(&self) -> bool {
        self.plain_http.load(Ordering::Acquire)
    }
}

/// What `c->conn_config` holds for us: the shared view and the connection's own state, in two
/// allocations so that a reference to one never covers the other.
struct ConnSlot {
    shared: ConnShared,
    state: *mut TlsConn,
}

/// Which side of TLS a connection of ours is.
enum Role {
    /// A client's connection: we are the TLS server; the chooser picks the vhost from the hello.
    Server(VhostChooser),
    /// Our connection to a proxy backend: we are the TLS client.
    Backend(Backend),
}

enum Backend {
    /// Claimed in bind_outgoing: the handshake starts at the first read or write, once mod_proxy
    /// has noted the backend's name and ALPN protocols, with one of these configs.
    Pending(Arc<crate::tls::engine::ProxyTls>),
    /// The handshake started towards this host (the name its certificate is verified against).
    Started { host: String },
}

/// The chooser of a backend connection's stream, which never sees a ClientHello.
struct NoClientHello;

impl ConfigChooser for NoClientHello {
    fn choose(&mut self, _hello: &ClientHello<'_>) -> Result<Arc<ServerConfig>, Refusal> {
        Err(Refusal {
            alert: rustls::AlertDescription::UnexpectedMessage,
            reason: "a ClientHello on a connection to a backend".into(),
        })
    }
}

/// Per-connection state, owned by `c->pool`; only the connection's own thread uses it.
pub struct TlsConn {
    c: *mut conn_rec,
    /// The shared view of this connection (in its [`ConnSlot`]).
    shared: *const ConnShared,
    stream: TlsStream,
    /// A client's connection to us, or ours to a proxy backend.
    role: Role,
    /// The handshake completed and we acted on it (protocol switch).
    established: bool,
    in_filter: *mut ap_filter_t,
    out_filter: *mut ap_filter_t,
    /// TLS bytes read from below, being fed to rustls.
    raw_in: Brigade,
    /// TLS records on their way down.
    out: Brigade,
    /// For the handshake reads of process_connection (AP_MODE_INIT), reused for every step.
    init: Brigade,
    /// EOC seen or the connection failed: nothing more goes out.
    closed: bool,
    /// Our filters are in place.
    filters_added: bool,
    /// A small tail of response data held back (copied) until more data or a metadata bucket
    /// follows, so that a response head passed on its own shares a record with the body. Empty,
    /// and without capacity, between responses.
    held: Vec<u8>,
    /// Encrypted bytes passed down since our last FLUSH. The core output filter keeps a small
    /// amount of in-memory data (under `policy::CORE_MIN_WRITE`) for later instead of writing it, and the
    /// event MPM only writes it after httpd has looked for the next request on the connection:
    /// that look then finds nothing (the client has no response yet), and every keep-alive
    /// request costs a trip through the MPM's poller. Plain HTTP does not pay this because its
    /// file buckets are written at once; we flush small responses at their end (EOR) instead.
    unflushed: usize,
    /// A TLS 1.3 session ticket waits in rustls for the first response (see `fill`).
    ticket_deferred: bool,
}

/// Takes over connection `c` for TLS: installs the filters and the state.
///
/// # Safety
/// `c` must be a live connection in pre_connection.
pub unsafe fn attach(c: *mut conn_rec) {
    unsafe {
        let tc = new_state(c, None);
        add_filters(c, tc);
    }
}

/// Claims outgoing (proxy) connection `c` for TLS to a backend with `tls`; the filters follow in
/// pre_connection, the handshake at the first read or write.
///
/// # Safety
/// `c` must be a live outgoing connection.
pub unsafe fn attach_backend(c: *mut conn_rec, tls: Arc<crate::tls::engine::ProxyTls>) {
    unsafe {
        new_state(c, Some(tls));
    }
}

/// Adds our filters to a claimed backend connection (from pre_connection).
///
/// # Safety
/// `c` must be a live connection.
pub unsafe fn add_backend_filters(c: *mut conn_rec) -> bool {
    unsafe {
        match conn_state(c) {
            Some(tc) if matches!(tc.role, Role::Backend(_)) && !tc.filters_added => {
                add_filters(c, tc);
                true
            }
            _ => false,
        }
    }
}

unsafe fn add_filters(c: *mut conn_rec, tc: *mut TlsConn) {
    unsafe {
        (*tc).in_filter = sys::ap_add_input_filter_handle(
            INPUT_FILTER.load(Ordering::Acquire),
            tc as *mut c_void,
            ptr::null_mut(),
            c,
        );
        (*tc).out_filter = sys::ap_add_output_filter_handle(
            OUTPUT_FILTER.load(Ordering::Acquire),
            tc as *mut c_void,
            ptr::null_mut(),
            c,
        );
        (*tc).filters_added = true;
    }
}

unsafe fn new_state(c: *mut conn_rec, backend: Option<Arc<crate::tls::engine::ProxyTls>>) -> *mut TlsConn {
    unsafe {
        let pool = (*c).pool;
        let alloc = (*c).bucket_alloc;
        let slot = pool::attach(
            pool,
            ConnSlot {
                shared: ConnShared { established: OnceLock::new(), plain_http: AtomicBool::new(false) },
                state: ptr::null_mut(),
            },
        );
        let state = TlsConn {
            c,
            shared: ptr::addr_of!((*slot).shared),
            stream: TlsStream::new(),
            role: match backend {
                Some(tls) => Role::Backend(Backend::Pending(tls)),
                None => {
                    Role::Server(VhostChooser { c, server: (*c).base_server, sni: None, cert: None, stapled: None })
                }
            },
            established: false,
            in_filter: ptr::null_mut(),
            out_filter: ptr::null_mut(),
            raw_in: Brigade::create(pool, alloc),
            out: Brigade::create(pool, alloc),
            init: Brigade::create(pool, alloc),
            closed: false,
            filters_added: false,
            held: Vec::new(),
            unflushed: 0,
            ticket_deferred: false,
        };
        let tc = pool::attach(pool, state);
        (*slot).state = tc;
        sys::ap_set_module_config((*c).conn_config, module::record(), slot as *mut c_void);
        tc
    }
}

/// One step of the handshake from process_connection: reads through the filter chain in
/// AP_MODE_INIT (so that the filters below ours, mod_reqtimeout's included, see it), with the
/// connection's own brigade.
///
/// # Safety
/// `c` must be a live connection whose TLS state is ours.
pub unsafe fn drive_handshake(c: *mut conn_rec, block: sys::apr_read_type_e) -> apr_status_t {
    unsafe {
        let Some(tc) = conn_state(c) else { return APR_ECONNABORTED };
        let bb = tc.init;
        let rv = sys::ap_get_brigade((*c).input_filters, bb.0, sys::ap_input_mode_t_AP_MODE_INIT, block, 0);
        bb.clear();
        rv
    }
}

unsafe fn slot(c: *const conn_rec) -> *mut ConnSlot {
    unsafe { sys::ap_get_module_config((*c).conn_config, module::record()) as *mut ConnSlot }
}

/// Our state for connection `c`, if TLS is ours, for the hooks that run on the connection's own
/// thread. HTTP/2 streams get none: they run on other threads, and see [`conn_shared`].
///
/// # Safety
/// `c` must be a valid conn_rec, and this must be its own thread.
pub unsafe fn conn_state<'a>(c: *const conn_rec) -> Option<&'a mut TlsConn> {
    unsafe {
        if !(*c).master.is_null() {
            return None;
        }
        slot(c).as_ref().and_then(|s| s.state.as_mut())
    }
}

/// What request-time hooks may see of `c` (or of its master connection, for an HTTP/2 stream),
/// if TLS is ours: from any thread.
///
/// # Safety
/// `c` must be a valid conn_rec.
pub unsafe fn conn_shared<'a>(c: *const conn_rec) -> Option<&'a ConnShared> {
    unsafe {
        let c = if (*c).master.is_null() { c } else { (*c).master as *const conn_rec };
        slot(c).as_ref().map(|s| &s.shared)
    }
}

impl TlsConn {
    /// Still handshaking (nothing failed yet).
    pub fn is_handshaking(&self) -> bool {
        self.stream.is_handshaking() && !self.closed
    }

    /// The handshake waits for the client's answer to the flight we sent.
    pub fn awaits_client_flight(&self) -> bool {
        !self.closed && self.stream.awaits_peer_flight()
    }

    /// A backend connection starts its handshake with the name and protocols mod_proxy noted on
    /// the connection (`proxy-request-hostname`, `proxy-request-alpn-protos`).
    fn start_backend_handshake(&mut self) -> apr_status_t {
        let Role::Backend(Backend::Pending(tls)) = &self.role else { return APR_SUCCESS };
        let tls = tls.clone();
        let (host, alpn) = unsafe {
            let notes = (*self.c).notes;
            let note = |k: &std::ffi::CStr| {
                let v = sys::apr_table_get(notes, k.as_ptr());
                (!v.is_null()).then(|| crate::httpd::cstr(v).into_owned())
            };
            let host =
                note(c"proxy-request-hostname").unwrap_or_else(|| crate::httpd::cstr((*self.c).client_ip).into_owned());
            (host, note(c"proxy-request-alpn-protos").unwrap_or_default())
        };
        let protocols: Vec<&[u8]> = alpn.split([',', ' ']).filter(|p| !p.is_empty()).map(str::as_bytes).collect();
        let name = match rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string()) {
            Ok(n) => n,
            Err(e) => {
                log_conn!(self.c, log::ERR, 0, "TLS to backend: '{host}' is not a valid host name ({e})");
                self.closed = true;
                return APR_ECONNABORTED;
            }
        };
        match rustls::client::UnbufferedClientConnection::new(tls.for_protocols(&protocols), name) {
            Ok(conn) => {
                self.stream = TlsStream::client(conn);
                self.role = Role::Backend(Backend::Started { host });
                APR_SUCCESS
            }
            Err(e) => {
                log_conn!(self.c, log::ERR, 0, "TLS to backend {host}: {e}");
                self.closed = true;
                APR_ECONNABORTED
            }
        }
    }

    /// Runs once when the handshake has completed: hands the connection to the module that speaks
    /// the negotiated ALPN protocol (mod_http2 for h2), as mod_ssl does.
    fn on_established(&mut self) -> apr_status_t {
        self.established = true;
        let Some(conn) = self.stream.connection() else { return APR_SUCCESS };
        // The SNI and the certificate move into the snapshot: nothing else needs them any more.
        let (server, sni, cert) = match &mut self.role {
            Role::Server(chooser) => (chooser.server, chooser.sni.take(), chooser.cert.take()),
            Role::Backend(_) => (unsafe { (*self.c).base_server }, None, None),
        };
        let facts = Arc::new(crate::tls::vars::HandshakeFacts::of(conn, sni, cert));
        let established = Established { server, facts: facts.clone() };
        if unsafe { &*self.shared }.established.set(established).is_err() {
            log_conn!(self.c, log::ERR, 0, "internal error: the handshake completed twice");
            self.closed = true;
            return APR_ECONNABORTED;
        }
        log_conn!(
            self.c,
            log::DEBUG,
            0,
            "TLS handshake done: {:?} {:?}, SNI {:?}, ALPN {:?}, {}",
            conn.protocol_version(),
            conn.negotiated_cipher_suite().map(|s| s.suite()),
            facts.sni,
            conn.alpn_protocol().map(String::from_utf8_lossy),
            unsafe { describe(server) }
        );
        if matches!(self.role, Role::Backend(_)) {
            return APR_SUCCESS;
        }
        let Some(alpn) = conn.alpn_protocol().map(<[u8]>::to_vec) else { return APR_SUCCESS };
        unsafe {
            if alpn != protocol::current(self.c) {
                let rv = protocol::switch(self.c, server, &alpn);
                if rv != APR_SUCCESS {
                    log_conn!(self.c, log::ERR, rv, "switching to protocol {} failed", String::from_utf8_lossy(&alpn));
                    self.closed = true;
                    return APR_ECONNABORTED;
                }
            }
        }
        APR_SUCCESS
    }

    /// Writes whatever TLS bytes rustls has queued to the network, with a FLUSH when asked.
    fn send_tls(&mut self, flush: bool) -> apr_status_t {
        self.ticket_deferred = false;
        let mut w = BrigadeWriter::new(self.out);
        if let Err(e) = self.stream.write_tls(&mut w) {
            log_conn!(self.c, log::ERR, 0, "writing TLS records failed: {e}");
            self.out.clear();
            return APR_ECONNABORTED;
        }
        if flush {
            self.out.push_flush();
        }
        self.pass_out()
    }

    fn pass_out(&mut self) -> apr_status_t {
        if self.out.is_empty() {
            return APR_SUCCESS;
        }
        let (flushed, tail) = self.out.bytes_after_flush();
        self.unflushed = if flushed { tail } else { self.unflushed + tail };
        let rv = unsafe { sys::ap_pass_brigade((*self.out_filter).next, self.out.0) };
        self.out.clear();
        rv
    }

    /// A client connection on which httpd serves no further request after the current one.
    fn closes_after_request(&self) -> bool {
        matches!(self.role, Role::Server(_)) && unsafe { (*self.c).keepalive } == sys::ap_conn_keepalive_e_AP_CONN_CLOSE
    }

    /// At the end of a request's output: whether the core output filter would keep what we gave
    /// it (see `unflushed`) although the connection stays open for the next request. Closing
    /// connections skip this: their close_notify goes out in the same write as the response.
    fn should_flush_at_eor(&self) -> bool {
        let pending = self.unflushed + self.out.bytes_after_flush().1;
        crate::tls::policy::flush_at_end_of_response(self.closes_after_request(), pending)
    }

    fn fail(&mut self, failure: TlsFailure) -> apr_status_t {
        let during = if self.stream.common().is_some_and(|c| !c.is_handshaking()) {
            "TLS error"
        } else {
            "TLS handshake failed"
        };
        let backend_host = match &self.role {
            Role::Backend(Backend::Started { host }) => Some(host),
            _ => None,
        };
        match (&failure, backend_host) {
            (TlsFailure::Closed, None) => {
                log_conn!(self.c, log::DEBUG, 0, "client closed the connection before the TLS handshake");
            }
            // One line that says why the proxy answers 502 (mod_proxy does for an aborted backend).
            (other, Some(host)) => {
                log_conn!(self.c, log::ERR, 0, "{during} with backend {host}: {other}");
                unsafe { (*self.c).aborted = 1 };
            }
            (other, None) => log_conn!(self.c, log::INFO, 0, "{during}: {other}"),
        }
        // Deliver the alert before httpd closes the socket.
        let _ = self.send_tls(true);
        self.closed = true;
        if matches!(failure, TlsFailure::Closed) { APR_EOF } else { APR_ECONNABORTED }
    }

    /// Reads TLS bytes from below once and feeds them to rustls; sends whatever rustls answers.
    fn fill(&mut self, blocking: bool) -> apr_status_t {
        if self.stream.wants_write() && !self.ticket_deferred {
            let rv = self.send_tls(true);
            if rv != APR_SUCCESS {
                return rv;
            }
        }
        let was_handshaking = self.stream.is_handshaking();
        let rv = self.read_into_stream(blocking);
        if rv != APR_SUCCESS {
            return rv;
        }
        if was_handshaking && self.stream.completed_tls13_server_handshake() {
            // What rustls queued now is the session ticket, which the client does not wait for:
            // it goes out with the first response instead of in a packet of its own. The
            // client's Finished is acknowledged at once instead (a client with Nagle's algorithm
            // on holds its request back until then; our delayed ACK would cost it 40 ms), unless
            // its request is already here: then the response carries the ACK. Reads stop at the
            // end of the Finished's record, so a request sent with it is still below us: look.
            self.ticket_deferred = true;
            for _ in 0..2 {
                if !self.stream.plaintext().is_empty() {
                    break;
                }
                match self.read_into_stream(false) {
                    APR_SUCCESS => {}
                    // The stream failed (a bad record): the connection is over.
                    rv if self.closed => return rv,
                    // Nothing there yet, or a read error (mod_reqtimeout's deadline, a reset)
                    // that the next read will meet again: the handshake itself is done.
                    _ => break,
                }
            }
            if self.stream.plaintext().is_empty() {
                unsafe { crate::httpd::ack_now(self.c) };
            }
        }
        if self.stream.wants_write() && !self.ticket_deferred {
            let rv = self.send_tls(true);
            if rv != APR_SUCCESS {
                return rv;
            }
        }
        if !self.established && !self.stream.is_handshaking() {
            if self.stream.is_plain_http() {
                // Plain HTTP never completes a handshake: say so to the request hooks.
                unsafe { &*self.shared }.plain_http.store(true, Ordering::Release);
                return APR_SUCCESS;
            }
            return self.on_established();
        }
        APR_SUCCESS
    }

    /// One read from below (no more than the TLS record being received needs), fed to the stream.
    fn read_into_stream(&mut self, blocking: bool) -> apr_status_t {
        let block = if blocking { sys::apr_read_type_e_APR_BLOCK_READ } else { sys::apr_read_type_e_APR_NONBLOCK_READ };
        let rv = unsafe {
            sys::ap_get_brigade(
                (*self.in_filter).next,
                self.raw_in.0,
                sys::ap_input_mode_t_AP_MODE_READBYTES,
                block,
                self.stream.read_size(TLS_READ_CHUNK) as sys::apr_off_t,
            )
        };
        let mut eof = rv == APR_EOF;
        if rv != APR_SUCCESS && !eof {
            self.raw_in.clear();
            return rv;
        }
        if rv == APR_SUCCESS && self.raw_in.is_empty() {
            if !blocking {
                return APR_EAGAIN;
            }
            eof = true;
        }
        while let Some(b) = self.raw_in.first() {
            unsafe {
                if brigade::is_metadata(b) {
                    eof |= brigade::is_eos(b);
                    brigade::delete(b);
                    continue;
                }
                let data = match brigade::read(b, blocking) {
                    Ok(d) => d,
                    Err(rv) => {
                        self.raw_in.clear();
                        return rv;
                    }
                };
                let pool = (*self.c).pool;
                let stream = &mut self.stream;
                let fed = crate::httpd::socache::with_conn_pool(pool, || match &mut self.role {
                    Role::Server(chooser) => stream.feed(data, chooser),
                    Role::Backend(_) => stream.feed(data, &mut NoClientHello),
                });
                brigade::delete(b);
                if let Err(f) = fed {
                    self.raw_in.clear();
                    return self.fail(f);
                }
            }
        }
        let ended = match &mut self.role {
            Role::Server(chooser) if eof => self.stream.feed(&[], chooser),
            Role::Backend(_) if eof => self.stream.feed(&[], &mut NoClientHello),
            _ => Ok(()),
        };
        if let Err(f) = ended {
            return self.fail(f);
        }
        APR_SUCCESS
    }

    fn read(
        &mut self,
        bb: Brigade,
        mode: sys::ap_input_mode_t,
        blocking: bool,
        readbytes: sys::apr_off_t,
    ) -> apr_status_t {
        if self.closed {
            return APR_ECONNABORTED;
        }
        if matches!(self.role, Role::Backend(Backend::Pending(_))) {
            let rv = self.start_backend_handshake();
            if rv != APR_SUCCESS {
                return rv;
            }
        }
        if mode == sys::ap_input_mode_t_AP_MODE_INIT {
            // No early EAGAIN after our flight goes out, even though the read that follows
            // usually finds nothing (one EAGAIN syscall): the client's next bytes may already sit
            // in the core input filter's buffer, read together with its ClientHello, where
            // neither poll() nor the MPM's wait for the socket would ever see them.
            while self.stream.is_handshaking() {
                let rv = self.fill(blocking);
                if rv != APR_SUCCESS {
                    return rv;
                }
            }
            return APR_SUCCESS;
        }
        if mode == sys::ap_input_mode_t_AP_MODE_EATCRLF {
            return APR_ENOTIMPL;
        }
        loop {
            let avail = self.stream.plaintext();
            if !avail.is_empty() {
                let n = match mode {
                    sys::ap_input_mode_t_AP_MODE_GETLINE => {
                        let limit = if readbytes > 0 { readbytes as usize } else { sys::HUGE_STRING_LEN as usize };
                        let window = &avail[..avail.len().min(limit)];
                        window.iter().position(|&b| b == b'\n').map_or(window.len(), |p| p + 1)
                    }
                    sys::ap_input_mode_t_AP_MODE_EXHAUSTIVE => avail.len(),
                    _ if readbytes > 0 => avail.len().min(readbytes as usize),
                    _ => avail.len(),
                };
                bb.push_copy(&avail[..n]);
                log_conn!(
                    self.c,
                    log::TRACE2,
                    0,
                    "TLS input: {n} plaintext bytes up (mode {mode}, readbytes {readbytes})"
                );
                if mode != sys::ap_input_mode_t_AP_MODE_SPECULATIVE {
                    self.stream.consume(n);
                }
                return APR_SUCCESS;
            }
            if self.stream.at_eof() {
                return APR_EOF;
            }
            let rv = self.fill(blocking);
            if rv != APR_SUCCESS {
                return rv;
            }
        }
    }

    fn write(&mut self, bb: Brigade) -> apr_status_t {
        if matches!(self.role, Role::Backend(Backend::Pending(_))) && !self.closed {
            let rv = self.start_backend_handshake();
            if rv != APR_SUCCESS {
                bb.clear();
                return rv;
            }
        }
        log_conn!(self.c, log::TRACE2, 0, "TLS output: brigade in (closed={})", self.closed);
        if self.closed || unsafe { (*self.c).aborted } != 0 {
            bb.clear();
            return APR_ECONNABORTED;
        }
        if self.stream.is_plain_http() {
            // Our answer to a plain-HTTP request goes out as it is.
            return unsafe { sys::ap_pass_brigade((*self.out_filter).next, bb.0) };
        }
        if self.stream.is_handshaking() {
            let has_data = {
                let mut b = bb.first();
                let mut found = false;
                while let Some(x) = b {
                    if x == bb.sentinel_ptr() {
                        break;
                    }
                    if unsafe { !brigade::is_metadata(x) } {
                        found = true;
                        break;
                    }
                    b = Some(unsafe { (*x).link.next });
                }
                found
            };
            if !has_data {
                // A close (FLUSH/EOC) before any handshake: nothing of ours to add. Do not block
                // waiting for a ClientHello that may never come.
                return unsafe { sys::ap_pass_brigade((*self.out_filter).next, bb.0) };
            }
            while self.stream.is_handshaking() {
                let rv = self.fill(true);
                if rv != APR_SUCCESS {
                    bb.clear();
                    return rv;
                }
            }
        }
        // Data buckets are read in place and gathered (left in `bb`) until OUT_PASS_BYTES, so
        // that records fill across bucket boundaries; then encrypted, deleted and passed down.
        let mut gathered: Vec<(*mut sys::apr_bucket, &[u8])> = Vec::new();
        let mut gathered_bytes = 0;
        // File data read for encryption (see `read_file_chunk`); `gathered` may point into it.
        let mut file_buf: Vec<u8> = Vec::new();
        let mut cursor = bb.first();
        while let Some(b) = cursor {
            if b == bb.sentinel_ptr() {
                break;
            }
            unsafe {
                let next = (*b).link.next;
                if brigade::is_metadata(b) {
                    let rv = self.encrypt_gathered(&mut gathered, &mut gathered_bytes);
                    if rv != APR_SUCCESS {
                        bb.clear();
                        return rv;
                    }
                    let eoc = brigade::is_eoc(b);
                    if eoc {
                        let mut w = BrigadeWriter::new(self.out);
                        if let Err(e) = self.stream.close(&mut w) {
                            log_conn!(self.c, log::DEBUG, 0, "TLS close failed: {e}");
                        }
                        // close_notify must reach the wire before httpd closes the socket.
                        self.out.push_flush();
                        self.closed = true;
                    }
                    let eor = brigade::is_eor(b);
                    if eor && self.closes_after_request() {
                        // httpd closes the connection after this response: close_notify can
                        // go out in the same write as the response instead of in one of its own.
                        let mut w = BrigadeWriter::new(self.out);
                        if let Err(e) = self.stream.close(&mut w) {
                            log_conn!(self.c, log::DEBUG, 0, "TLS close failed: {e}");
                        }
                    }
                    let eor_flush = eor && self.should_flush_at_eor();
                    if eor_flush {
                        self.out.push_flush();
                    }
                    let flush = brigade::is_flush(b) || eoc || eor_flush;
                    brigade::remove(b);
                    self.out.push(b);
                    if flush {
                        let rv = self.pass_out();
                        if rv != APR_SUCCESS {
                            bb.clear();
                            return rv;
                        }
                    }
                    cursor = Some(next);
                    continue;
                }
                let read = match brigade::file_extent(b) {
                    Some(extent) => {
                        // File data of this run accumulates in `file_buf`, whose capacity is
                        // fixed at one run, so the slices in `gathered` never move; several
                        // small files (HTTP/2 DATA frames, multipart ranges) share records.
                        if file_buf.capacity() == 0 {
                            // Only as large as the files of this brigade need (a 1 KiB response
                            // leaves a 1 KiB hole in the heap, not a 64 KiB one).
                            file_buf.reserve_exact(file_bytes_from(b, bb.sentinel_ptr()).min(OUT_PASS_BYTES));
                        }
                        let live = file_buf.as_ptr_range();
                        if !gathered.iter().any(|(_, d)| live.contains(&d.as_ptr())) {
                            file_buf.clear();
                        }
                        // Up to a whole run of records, counting a held response head.
                        let mut room = OUT_PASS_BYTES.saturating_sub(gathered_bytes + self.held.len());
                        if room.min(file_buf.capacity() - file_buf.len()) == 0 {
                            let rv = self.encrypt_gathered(&mut gathered, &mut gathered_bytes);
                            if rv != APR_SUCCESS {
                                bb.clear();
                                return rv;
                            }
                            file_buf.clear();
                            room = OUT_PASS_BYTES;
                        }
                        let room = room.min(file_buf.capacity() - file_buf.len());
                        read_file_chunk(b, extent, room, &mut file_buf)
                    }
                    None => brigade::read(b, true),
                };
                let data = match read {
                    Ok(d) => d,
                    Err(rv) => {
                        log_conn!(self.c, log::ERR, rv, "reading response data failed");
                        bb.clear();
                        return rv;
                    }
                };
                // Reading a file bucket splits it: what follows is a new bucket after `b`.
                let next = (*b).link.next;
                gathered.push((b, data));
                gathered_bytes += data.len();
                if gathered_bytes + self.held.len() >= OUT_PASS_BYTES {
                    let rv = self.encrypt_gathered(&mut gathered, &mut gathered_bytes);
                    if rv != APR_SUCCESS {
                        bb.clear();
                        return rv;
                    }
                }
                cursor = Some(next);
            }
        }
        if self.held.is_empty() && gathered_bytes < HOLD_BYTES && is_response_head(&gathered) {
            // httpd passes an HTTP/1.1 response head in a brigade of its own, the body follows at
            // once: keep the head for the body's first record. Nothing else is held back (tunnels
            // and streams rely on data going out when passed).
            for (b, data) in gathered.drain(..) {
                self.held.extend_from_slice(data);
                unsafe { brigade::delete(b) };
            }
            return self.pass_out();
        }
        let rv = self.encrypt_gathered(&mut gathered, &mut gathered_bytes);
        if rv != APR_SUCCESS {
            bb.clear();
            return rv;
        }
        self.pass_out()
    }

    /// Encrypts the gathered bucket data as one run of records, deletes those buckets and passes
    /// the records down.
    fn encrypt_gathered(
        &mut self,
        gathered: &mut Vec<(*mut sys::apr_bucket, &[u8])>,
        bytes: &mut usize,
    ) -> apr_status_t {
        if gathered.is_empty() && self.held.is_empty() {
            return APR_SUCCESS;
        }
        let held = std::mem::take(&mut self.held);
        let parts: Vec<&[u8]> = std::iter::once(&held[..]).chain(gathered.iter().map(|(_, d)| *d)).collect();
        let rv = self.encrypt_and_pass(&parts);
        for (b, _) in gathered.drain(..) {
            unsafe { brigade::delete(b) };
        }
        *bytes = 0;
        rv
    }

    /// Encrypts `parts` in runs of at most OUT_PASS_BYTES, passing each run's records down, so
    /// that a large mmap'ed file chunk streams through bounded memory.
    fn encrypt_and_pass(&mut self, parts: &[&[u8]]) -> apr_status_t {
        let mut run: Vec<&[u8]> = Vec::with_capacity(parts.len());
        let mut run_bytes = 0;
        for part in parts {
            let mut part = *part;
            while !part.is_empty() {
                let take = part.len().min(OUT_PASS_BYTES - run_bytes);
                run.push(&part[..take]);
                run_bytes += take;
                part = &part[take..];
                if run_bytes == OUT_PASS_BYTES {
                    let rv = self.encrypt_run(&run, true);
                    if rv != APR_SUCCESS {
                        return rv;
                    }
                    run.clear();
                    run_bytes = 0;
                }
            }
        }
        // A short last run stays in `out` to go down with what follows (one pass per response).
        self.encrypt_run(&run, false)
    }

    fn encrypt_run(&mut self, run: &[&[u8]], pass: bool) -> apr_status_t {
        self.ticket_deferred = false;
        let mut w = BrigadeWriter::new(self.out);
        if let Err(e) = self.stream.send(run, &mut w) {
            log_conn!(self.c, log::DEBUG, 0, "TLS output failed: {e}");
            self.out.clear();
            return APR_ECONNABORTED;
        }
        if pass { self.pass_out() } else { APR_SUCCESS }
    }
}

/// The length of the FILE buckets from `b` up to `end` (the brigade's sentinel).
///
/// # Safety
/// `b` must be a bucket of the brigade whose sentinel is `end`.
unsafe fn file_bytes_from(mut b: *mut sys::apr_bucket, end: *mut sys::apr_bucket) -> usize {
    let mut total = 0;
    while b != end {
        unsafe {
            if let Some((_, _, len)) = brigade::file_extent(b) {
                total += len;
            }
            b = (*b).link.next;
        }
    }
    total
}

/// Reads the start of FILE bucket `b` (at most `max` bytes) with pread, appending it to `buf`
/// (which must have room for it), and splits the bucket there. This is what apr_bucket_read
/// would do, minus its per-read mmap/munmap (a TLB shoot-down on every CPU) and page faults: the
/// bytes are copied into records right away, so a plain read into a reused buffer is cheaper.
/// The slice is valid until `buf` is cleared.
///
/// # Safety
/// `b` must be a valid FILE bucket whose extent is `extent`.
unsafe fn read_file_chunk<'a>(
    b: *mut sys::apr_bucket,
    (fd, offset, len): (libc::c_int, i64, usize),
    max: usize,
    buf: &mut Vec<u8>,
) -> Result<&'a [u8], apr_status_t> {
    let want = len.min(max.max(1));
    // `gathered` points into `buf`: growing it here would move those bytes under it.
    assert!(buf.capacity() - buf.len() >= want, "the file buffer must not move");
    if want < len {
        let rv = unsafe { brigade::split(b, want) };
        if rv != APR_SUCCESS {
            return Err(rv);
        }
    }
    let start = buf.len();
    let mut got = 0;
    while got < want {
        let at = unsafe { buf.as_mut_ptr().add(start + got) };
        let n = unsafe { libc::pread(fd, at.cast(), want - got, offset + got as i64) };
        match n {
            n if n > 0 => got += n as usize,
            // The file shrank under us: the response cannot be completed.
            0 => return Err(APR_EOF),
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)),
        }
    }
    // SAFETY: pread initialised the `got` bytes after `start`.
    unsafe {
        buf.set_len(start + got);
        Ok(std::slice::from_raw_parts(buf.as_ptr().add(start), got))
    }
}

unsafe extern "C" fn input_filter(
    f: *mut ap_filter_t,
    bb: *mut apr_bucket_brigade,
    mode: sys::ap_input_mode_t,
    block: sys::apr_read_type_e,
    readbytes: sys::apr_off_t,
) -> apr_status_t {
    unsafe {
        let tc = (*f).ctx as *mut TlsConn;
        let c = (*f).c;
        catch_panic(
            APR_ECONNABORTED,
            |m| {
                log_conn!(
                    c,
                    log::ERR,
                    0,
                    "internal error (panic) in the TLS input filter, closing this connection: {m}"
                );
                (*tc).closed = true;
            },
            || (*tc).read(Brigade(bb), mode, block == sys::apr_read_type_e_APR_BLOCK_READ, readbytes),
        )
    }
}

unsafe extern "C" fn output_filter(f: *mut ap_filter_t, bb: *mut apr_bucket_brigade) -> apr_status_t {
    unsafe {
        let tc = (*f).ctx as *mut TlsConn;
        let c = (*f).c;
        catch_panic(
            APR_ECONNABORTED,
            |m| {
                log_conn!(
                    c,
                    log::ERR,
                    0,
                    "internal error (panic) in the TLS output filter, closing this connection: {m}"
                );
                (*tc).closed = true;
                Brigade(bb).clear();
            },
            || (*tc).write(Brigade(bb)),
        )
    }
}
