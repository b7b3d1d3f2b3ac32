//! The connection filters: TLS bytes from the network into a [`TlsStream`], plaintext up to httpd;
//! plaintext from httpd into records, records down to the network.
//!
//! Both filters share the connection's [`TlsConn`], owned by its pool. The handshake is driven
//! lazily by the first read (as mod_ssl does), so httpd's `Timeout` and mod_reqtimeout's handshake
//! stage (whose filter sits below ours and sees the raw bytes) bound it.

use std::ffi::CStr;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::ClientHello;

use crate::stores::BrigadeSink;
use crate::tls::conn_state::{self, ConnState, Loudness, NetworkEnd, Side, Tally};
use crate::tls::policy;
use crate::tls::stats;
use crate::tls::stream::{ConfigChooser, Refusal, TlsFailure, TlsStream};
use crate::tls::vars::HandshakeFacts;
use httpd::brigade::{Brigade, BrigadeWriter, BucketKind, Consumed, DataRun, Taken};
use httpd::filter::{Filter, FilterKind, InputFilter, LINE_LIMIT, OutputFilter, ReadMode};
use httpd::log_conn;
use httpd::{APR_EAGAIN, APR_ECONNABORTED, APR_ENOTIMPL, APR_EOF, APR_SUCCESS, APR_TIMEUP, Conn, Status, log, socache};

use super::TlsModule;
use super::chooser::VhostChooser;
use super::conn_view::{ConnShared, Established, shared};

/// The most TLS bytes to ask the network for at once: a full record and then some (reads ask
/// for no more than the record being received needs, see `TlsStream::read_size`).
const TLS_READ_CHUNK: usize = 32 * 1024;
/// Pass encrypted output down once this much has accumulated, so a large response streams in
/// bounded memory instead of being encrypted whole.
const OUT_PASS_BYTES: usize = 64 * 1024;
/// Largest response head held back for coalescing with its body.
const HOLD_BYTES: usize = 8 * 1024;

/// Whether the data gathered from a brigade is exactly a response head ([`policy::is_response_head`]).
fn is_response_head(run: &DataRun) -> bool {
    let (Some(first), Some(last)) = (run.parts().next(), run.parts().last()) else { return false };
    policy::is_response_head(first, last)
}

static TLS_IN: FilterKind = FilterKind::new();
static TLS_OUT: FilterKind = FilterKind::new();

/// Registers the filter pair (from register_hooks). Between the core/reqtimeout filters below and
/// HTTP above, where mod_ssl sits too.
pub fn register() {
    TLS_IN.register_input::<TlsInput>(c"TLS_IN", 5);
    TLS_OUT.register_output::<TlsOutput>(c"TLS_OUT", 5);
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

/// Per-connection state, owned by the connection's pool; only the connection's own thread uses it.
pub struct TlsConn {
    c: Conn,
    stream: TlsStream,
    /// A client's connection to us, or ours to a proxy backend.
    role: Role,
    /// Handshaking, established or closed, and whether the handshake's outcome was counted.
    state: ConnState,
    /// Our filters in the connection's chains, once added.
    in_filter: Option<Filter>,
    out_filter: Option<Filter>,
    /// TLS bytes read from below, being fed to rustls.
    raw_in: Brigade<'static>,
    /// TLS records on their way down.
    out: Brigade<'static>,
    /// For the handshake reads of process_connection (AP_MODE_INIT), reused for every step: this
    /// runs again for every segment of a slow handshake, and a brigade made from the connection's
    /// pool each time would hold its memory until the connection ends.
    init: Brigade<'static>,
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
    /// When our first handshake flight went out (for `SSL_HANDSHAKE_RTT`).
    flight_sent_at: Option<std::time::Instant>,
}

/// Counts a handshake that did not complete on the status page.
fn count(tally: Tally) {
    let Some(st) = super::stats() else { return };
    match tally {
        Tally::Failed(failure) => stats::count_failure(st, failure),
        Tally::BackendFailed => stats::count_backend(st, None),
    }
}

/// Takes over client connection `c` for TLS (pre_connection): the state and the filters.
pub fn attach(c: Conn) {
    let slot = c.attach::<TlsModule>(ConnShared::default(), TlsConn::new(c, Role::Server(VhostChooser::new(c))));
    slot.local.borrow_mut().add_filters();
}

/// The note mod_ssl sets on a backend connection (`ok`, or `err` when the handshake failed):
/// mod_proxy answers a failed one with `500 Error during SSL Handshake with remote server`, and
/// mod_proxy_http2 reads it too. We set it the same way, so the proxy behaves as with mod_ssl.
const BACKEND_HANDSHAKE_NOTE: &CStr = c"SSL_connect_rv";

/// Claims outgoing (proxy) connection `c` for TLS to a backend with `tls` (bind_outgoing); the
/// filters follow in pre_connection, the handshake at the first read or write.
pub fn attach_backend(c: Conn, tls: Arc<crate::tls::engine::ProxyTls>) {
    c.attach::<TlsModule>(ConnShared::default(), TlsConn::new(c, Role::Backend(Backend::Pending(tls))));
}

/// Adds our filters to a claimed backend connection (pre_connection).
pub fn add_backend_filters(c: Conn) -> bool {
    let Some(state) = c.local::<TlsModule>() else { return false };
    let Ok(mut tc) = state.try_borrow_mut() else { return false };
    if !matches!(tc.role, Role::Backend(_)) || tc.in_filter.is_some() {
        return false;
    }
    tc.add_filters();
    true
}

impl TlsConn {
    fn new(c: Conn, role: Role) -> TlsConn {
        TlsConn {
            c,
            stream: TlsStream::new(),
            state: ConnState::new(match role {
                Role::Server(_) => Side::Server,
                Role::Backend(_) => Side::Backend,
            }),
            role,
            in_filter: None,
            out_filter: None,
            raw_in: c.new_brigade(),
            out: c.new_brigade(),
            init: c.new_brigade(),
            held: Vec::new(),
            unflushed: 0,
            ticket_deferred: false,
            flight_sent_at: None,
        }
    }

    fn add_filters(&mut self) {
        self.in_filter = Some(TLS_IN.add_input(self.c));
        self.out_filter = Some(TLS_OUT.add_output(self.c));
    }

    /// Our input filter: reads go to the filters below it.
    fn below_in(&self) -> Filter {
        self.in_filter.expect("reads come through our filter, which was added")
    }

    /// Our output filter: records are passed to the filters below it.
    fn below_out(&self) -> Filter {
        self.out_filter.expect("writes come through our filter, which was added")
    }

    /// At the connection's close: a client's handshake that ended with neither success nor a
    /// failure of its own ran out of time (the MPM, httpd's `Timeout` or mod_reqtimeout closed
    /// the connection first).
    pub fn note_close(c: Conn) {
        let Some(Ok(mut tc)) = c.local::<TlsModule>().map(|s| s.try_borrow_mut()) else { return };
        if let Some(tally) = tc.state.closing() {
            count(tally);
        }
    }

    /// A read or write that ended the handshake with an error of the network or of the filters
    /// below (not a TLS failure, which `fail` counts): the client's time ran out (`Timeout`,
    /// mod_reqtimeout), or it reset the connection.
    fn note_error(&mut self, rv: Status) {
        if matches!(rv, APR_SUCCESS | APR_EAGAIN) {
            return;
        }
        let end = if rv == APR_TIMEUP { NetworkEnd::TimedOut } else { NetworkEnd::Failed };
        let Some(tally) = self.state.network_ended(end) else { return };
        if tally == Tally::BackendFailed {
            // A backend handshake that the network ended is a failed handshake to mod_proxy too.
            self.backend_handshake_failed();
        }
        count(tally);
    }

    /// One step of the handshake from process_connection: reads through the whole filter chain
    /// in AP_MODE_INIT (so that the filters below ours, mod_reqtimeout's included, see it), with
    /// the connection's own brigade. The state is not borrowed meanwhile: the read comes back to
    /// it through our input filter.
    pub fn drive_handshake(c: Conn, block: bool) -> Status {
        let Some(state) = c.local::<TlsModule>() else { return APR_ECONNABORTED };
        let Ok(bb) = state.try_borrow().map(|tc| tc.init) else { return APR_ECONNABORTED };
        let rv = c.read_init(bb, block);
        bb.clear();
        rv
    }

    /// Still handshaking (nothing failed yet).
    pub fn is_handshaking(&self) -> bool {
        self.stream.is_handshaking() && !self.state.is_closed()
    }

    /// The handshake waits for the client's answer to the flight we sent.
    pub fn awaits_client_flight(&self) -> bool {
        !self.state.is_closed() && self.stream.awaits_peer_flight()
    }

    /// As mod_ssl after a failed `SSL_connect`: the connection is aborted and noted `err`, which
    /// mod_proxy answers with `500 Error during SSL Handshake with remote server` (without the
    /// abort it would not look at the note, and answer 400).
    fn backend_handshake_failed(&self) {
        self.c.set_note(BACKEND_HANDSHAKE_NOTE, c"err");
        self.c.abort();
    }

    /// A backend connection starts its handshake with the name and protocols mod_proxy noted on
    /// the connection (`proxy-request-hostname`, `proxy-request-alpn-protos`).
    fn start_backend_handshake(&mut self) -> Status {
        let Role::Backend(Backend::Pending(tls)) = &self.role else { return APR_SUCCESS };
        let tls = tls.clone();
        let host = self.c.note(c"proxy-request-hostname").unwrap_or_else(|| self.c.client_ip());
        let alpn = self.c.note(c"proxy-request-alpn-protos").unwrap_or_default();
        let protocols: Vec<&[u8]> = alpn.split([',', ' ']).filter(|p| !p.is_empty()).map(str::as_bytes).collect();
        let name = match rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string()) {
            Ok(n) => n,
            Err(e) => {
                log_conn!(self.c, log::ERR, 0, "TLS to backend: '{host}' is not a valid host name ({e})");
                self.backend_handshake_failed();
                self.state.close();
                return APR_ECONNABORTED;
            }
        };
        match TlsStream::client(tls.for_protocols(&protocols), name) {
            Ok(stream) => {
                self.stream = stream;
                self.role = Role::Backend(Backend::Started { host });
                APR_SUCCESS
            }
            Err(e) => {
                log_conn!(self.c, log::ERR, 0, "TLS to backend {host}: {e}");
                self.backend_handshake_failed();
                self.state.close();
                APR_ECONNABORTED
            }
        }
    }

    /// Runs once when the handshake has completed: hands the connection to the module that speaks
    /// the negotiated ALPN protocol (mod_http2 for h2), as mod_ssl does.
    fn on_established(&mut self) -> Status {
        self.state.establish();
        let Role::Server(chooser) = &mut self.role else {
            // A backend connection keeps no snapshot: no request hook asks about it.
            self.c.set_note(BACKEND_HANDSHAKE_NOTE, c"ok");
            if let Some(st) = super::stats() {
                let kind = self.stream.common().and_then(|c| c.handshake_kind());
                stats::count_backend(st, Some(kind == Some(rustls::HandshakeKind::Resumed)));
            }
            return APR_SUCCESS;
        };
        let Some(conn) = self.stream.connection() else { return APR_SUCCESS };
        // The SNI and the certificate move into the snapshot: nothing else needs them any more.
        let (server, sni, cert) = (chooser.server, chooser.sni.take(), chooser.cert.take());
        if chooser.sni_owner == Some(server) {
            // Requests naming the vhost the SNI chose find it without httpd's walk of every
            // vhost before it on the address; any other Host is matched as before.
            self.c.match_hosts_first_against(server);
        }
        let mut facts = HandshakeFacts::of(conn, sni, cert);
        facts.handshake_rtt_us = self.flight_sent_at.map(|t| t.elapsed().as_micros() as u64);
        if let (Some(chain), Some(generous)) =
            (&facts.peer_chain, super::built(server).tls().and_then(|t| t.generous()))
        {
            facts.client_verify = Some(generous.grade(chain));
        }
        if let Some(st) = super::stats() {
            let resumed = facts.kind == Some(rustls::HandshakeKind::Resumed);
            stats::count_handshake(st, facts.protocol, facts.suite, facts.key_exchange, resumed);
        }
        let facts = Arc::new(facts);
        let established = Established { server, facts: facts.clone() };
        if !shared(self.c).is_some_and(|s| s.establish(established)) {
            log_conn!(self.c, log::ERR, 0, "internal error: the handshake completed twice");
            self.state.close();
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
            server.describe()
        );
        let Some(alpn) = conn.alpn_protocol().map(<[u8]>::to_vec) else { return APR_SUCCESS };
        if alpn != self.c.protocol() {
            let rv = self.c.switch_protocol(server, &alpn);
            if rv != APR_SUCCESS {
                log_conn!(self.c, log::ERR, rv, "switching to protocol {} failed", String::from_utf8_lossy(&alpn));
                self.state.close();
                return APR_ECONNABORTED;
            }
        }
        APR_SUCCESS
    }

    /// Writes whatever TLS bytes rustls has queued to the network, with a FLUSH when asked.
    fn send_tls(&mut self, flush: bool) -> Status {
        self.ticket_deferred = false;
        let mut w = BrigadeSink(BrigadeWriter::new(self.out));
        if let Err(e) = self.stream.write_tls(&mut w) {
            log_conn!(self.c, log::ERR, 0, "writing TLS records failed: {e}");
            self.out.clear();
            return APR_ECONNABORTED;
        }
        if self.flight_sent_at.is_none() && self.stream.is_handshaking() && !self.out.is_empty() {
            self.flight_sent_at = Some(std::time::Instant::now());
        }
        if flush {
            self.out.push_flush();
        }
        self.pass_out()
    }

    fn pass_out(&mut self) -> Status {
        if self.out.is_empty() {
            return APR_SUCCESS;
        }
        let (flushed, tail) = self.out.bytes_after_flush();
        self.unflushed = if flushed { tail } else { self.unflushed + tail };
        let rv = self.below_out().pass_down(self.out);
        self.out.clear();
        rv
    }

    /// A client connection on which httpd serves no further request after the current one.
    fn closes_after_request(&self) -> bool {
        matches!(self.role, Role::Server(_)) && self.c.closes_after_request()
    }

    /// At the end of a request's output: whether the core output filter would keep what we gave
    /// it (see `unflushed`) although the connection stays open for the next request. Closing
    /// connections skip this: their close_notify goes out in the same write as the response.
    fn should_flush_at_eor(&self) -> bool {
        let pending = self.unflushed + self.out.bytes_after_flush().1;
        policy::flush_at_end_of_response(self.closes_after_request(), pending)
    }

    fn fail(&mut self, failure: TlsFailure) -> Status {
        // The handshake may have completed in the same read that failed.
        let after_handshake = self.stream.common().is_some_and(|c| !c.is_handshaking());
        let during = if after_handshake { "TLS error" } else { "TLS handshake failed" };
        let backend_host = match &self.role {
            Role::Backend(Backend::Started { host }) => Some(host),
            _ => None,
        };
        match (conn_state::loudness(self.state.side(), &failure), backend_host) {
            // One line that says why the proxy answers 500 "Error during SSL Handshake with
            // remote server", as with mod_ssl: mod_proxy reads that from the note.
            (_, Some(host)) => {
                log_conn!(self.c, log::ERR, 0, "{during} with backend {host}: {failure}");
                if self.state.was_established() || after_handshake {
                    self.c.abort();
                } else {
                    self.backend_handshake_failed();
                }
            }
            (Loudness::Debug, None) => {
                log_conn!(self.c, log::DEBUG, 0, "client closed the connection before the TLS handshake");
            }
            (Loudness::Warning, None) => log_conn!(self.c, log::WARNING, 0, "{during}: {failure}"),
            (Loudness::Error, None) => log_conn!(self.c, log::ERR, 0, "{during}: {failure}"),
            (Loudness::Info, None) => log_conn!(self.c, log::INFO, 0, "{during}: {failure}"),
        }
        // Closes the state; a failure after the handshake completed (in the same read) is no
        // failed handshake.
        if let Some(tally) = self.state.tls_failed(&failure, after_handshake) {
            count(tally);
        }
        // Deliver the alert before httpd closes the socket.
        let _ = self.send_tls(true);
        if matches!(failure, TlsFailure::Closed) { APR_EOF } else { APR_ECONNABORTED }
    }

    /// Reads TLS bytes from below once and feeds them to rustls; sends whatever rustls answers.
    fn fill(&mut self, blocking: bool) -> Status {
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
                    rv if self.state.is_closed() => return rv,
                    // Nothing there yet, or a read error (mod_reqtimeout's deadline, a reset)
                    // that the next read will meet again: the handshake itself is done.
                    _ => break,
                }
            }
            if self.stream.plaintext().is_empty() {
                self.c.ack_now();
            }
        }
        if self.stream.wants_write() && !self.ticket_deferred {
            let rv = self.send_tls(true);
            if rv != APR_SUCCESS {
                return rv;
            }
        }
        if !self.state.was_established() && !self.stream.is_handshaking() {
            if self.stream.is_plain_http() {
                // Plain HTTP never completes a handshake: say so to the request hooks.
                if let Some(s) = shared(self.c) {
                    s.set_plain_http();
                }
                if let Some(tally) = self.state.plain_http() {
                    count(tally);
                }
                return APR_SUCCESS;
            }
            return self.on_established();
        }
        APR_SUCCESS
    }

    /// One read from below (no more than the TLS record being received needs), fed to the stream.
    fn read_into_stream(&mut self, blocking: bool) -> Status {
        let want = self.stream.read_size(TLS_READ_CHUNK) as i64;
        let rv = self.below_in().read_below(self.raw_in, ReadMode::Bytes, blocking, want);
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
        let (stream, role, pool, state) = (&mut self.stream, &mut self.role, self.c.pool(), &mut self.state);
        let consumed = self.raw_in.consume(blocking, |kind, data| {
            eof |= kind == BucketKind::Eos;
            if data.is_empty() {
                return Ok(());
            }
            state.received(data.len());
            socache::with_conn_pool(pool, || match role {
                Role::Server(chooser) => stream.feed(data, chooser),
                Role::Backend(_) => stream.feed(data, &mut NoClientHello),
            })
        });
        let events = self.stream.take_session_events();
        if !events.is_empty()
            && let Some(st) = super::stats()
        {
            stats::count_sessions(st, events);
        }
        match consumed {
            Ok(()) => {}
            Err(Consumed::Read(rv)) => return rv,
            Err(Consumed::Stopped(f)) => return self.fail(f),
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

    fn read(&mut self, bb: Brigade<'_>, mode: ReadMode, blocking: bool, readbytes: i64) -> Status {
        if self.state.is_closed() {
            return APR_ECONNABORTED;
        }
        if matches!(self.role, Role::Backend(Backend::Pending(_))) {
            let rv = self.start_backend_handshake();
            if rv != APR_SUCCESS {
                return rv;
            }
        }
        if mode == ReadMode::Init {
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
        if mode == ReadMode::EatCrlf {
            return APR_ENOTIMPL;
        }
        loop {
            let avail = self.stream.plaintext();
            if !avail.is_empty() {
                let n = match mode {
                    ReadMode::Line => {
                        let limit = if readbytes > 0 { readbytes as usize } else { LINE_LIMIT };
                        let window = &avail[..avail.len().min(limit)];
                        window.iter().position(|&b| b == b'\n').map_or(window.len(), |p| p + 1)
                    }
                    ReadMode::Exhaustive => avail.len(),
                    _ if readbytes > 0 => avail.len().min(readbytes as usize),
                    _ => avail.len(),
                };
                bb.push_copy(&avail[..n]);
                log_conn!(
                    self.c,
                    log::TRACE2,
                    0,
                    "TLS input: {n} plaintext bytes up (mode {mode:?}, readbytes {readbytes})"
                );
                if mode != ReadMode::Speculative {
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

    fn write(&mut self, bb: Brigade<'_>) -> Status {
        if matches!(self.role, Role::Backend(Backend::Pending(_))) && !self.state.is_closed() {
            let rv = self.start_backend_handshake();
            if rv != APR_SUCCESS {
                bb.clear();
                return rv;
            }
        }
        log_conn!(self.c, log::TRACE2, 0, "TLS output: brigade in (closed={})", self.state.is_closed());
        if self.state.is_closed() || self.c.is_aborted() {
            bb.clear();
            return APR_ECONNABORTED;
        }
        if self.stream.is_plain_http() {
            // Our answer to a plain-HTTP request goes out as it is.
            return self.below_out().pass_down(bb);
        }
        if self.stream.is_handshaking() {
            if !bb.has_data() {
                // A close (FLUSH/EOC) before any handshake: nothing of ours to add. Do not block
                // waiting for a ClientHello that may never come.
                return self.below_out().pass_down(bb);
            }
            while self.stream.is_handshaking() {
                let rv = self.fill(true);
                if rv != APR_SUCCESS {
                    bb.clear();
                    return rv;
                }
            }
        }
        // Data buckets are read in place and gathered into a run until OUT_PASS_BYTES, so that
        // records fill across bucket boundaries; then encrypted, deleted and passed down. File
        // data of a run shares one buffer: several small files (HTTP/2 DATA frames, multipart
        // ranges) share records.
        let mut run = DataRun::new(OUT_PASS_BYTES);
        while let Some(kind) = bb.first_kind() {
            if kind.is_metadata() {
                let rv = self.encrypt_gathered(&mut run);
                if rv != APR_SUCCESS {
                    bb.clear();
                    return rv;
                }
                let eoc = kind == BucketKind::Eoc;
                if eoc {
                    let mut w = BrigadeSink(BrigadeWriter::new(self.out));
                    if let Err(e) = self.stream.close(&mut w) {
                        log_conn!(self.c, log::DEBUG, 0, "TLS close failed: {e}");
                    }
                    // close_notify must reach the wire before httpd closes the socket.
                    self.out.push_flush();
                    self.state.close();
                }
                let eor = kind == BucketKind::Eor;
                if eor && self.closes_after_request() {
                    // httpd closes the connection after this response: close_notify can go out
                    // in the same write as the response instead of in one of its own.
                    let mut w = BrigadeSink(BrigadeWriter::new(self.out));
                    if let Err(e) = self.stream.close(&mut w) {
                        log_conn!(self.c, log::DEBUG, 0, "TLS close failed: {e}");
                    }
                }
                let eor_flush = eor && self.should_flush_at_eor();
                if eor_flush {
                    self.out.push_flush();
                }
                let flush = kind == BucketKind::Flush || eoc || eor_flush;
                bb.move_first_to(self.out);
                if flush {
                    let rv = self.pass_out();
                    if rv != APR_SUCCESS {
                        bb.clear();
                        return rv;
                    }
                }
                continue;
            }
            // Up to a whole run of records, counting a held response head.
            let limit = OUT_PASS_BYTES.saturating_sub(run.bytes() + self.held.len());
            let taken = match run.take_first(bb, limit) {
                Ok(Taken::Full) => {
                    let rv = self.encrypt_gathered(&mut run);
                    if rv != APR_SUCCESS {
                        bb.clear();
                        return rv;
                    }
                    continue;
                }
                Ok(Taken::Bytes(n)) => n,
                Err(rv) => {
                    log_conn!(self.c, log::ERR, rv, "reading response data failed");
                    bb.clear();
                    return rv;
                }
            };
            if taken > 0 && run.bytes() + self.held.len() >= OUT_PASS_BYTES {
                let rv = self.encrypt_gathered(&mut run);
                if rv != APR_SUCCESS {
                    bb.clear();
                    return rv;
                }
            }
        }
        if self.held.is_empty() && run.bytes() < HOLD_BYTES && is_response_head(&run) {
            // httpd passes an HTTP/1.1 response head in a brigade of its own, the body follows at
            // once: keep the head for the body's first record. Nothing else is held back (tunnels
            // and streams rely on data going out when passed).
            for part in run.parts() {
                self.held.extend_from_slice(part);
            }
            run.clear();
            return self.pass_out();
        }
        let rv = self.encrypt_gathered(&mut run);
        if rv != APR_SUCCESS {
            bb.clear();
            return rv;
        }
        self.pass_out()
    }

    /// Encrypts the gathered bucket data (after a held response head) as one run of records,
    /// deletes those buckets and passes the records down.
    fn encrypt_gathered(&mut self, run: &mut DataRun) -> Status {
        if run.bytes() == 0 && self.held.is_empty() {
            run.clear();
            return APR_SUCCESS;
        }
        let held = std::mem::take(&mut self.held);
        let parts: Vec<&[u8]> = std::iter::once(&held[..]).chain(run.parts()).collect();
        let rv = self.encrypt_and_pass(&parts);
        drop(parts);
        run.clear();
        rv
    }

    /// Encrypts `parts` in runs of at most OUT_PASS_BYTES, passing each run's records down, so
    /// that a large mmap'ed file chunk streams through bounded memory.
    fn encrypt_and_pass(&mut self, parts: &[&[u8]]) -> Status {
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

    fn encrypt_run(&mut self, run: &[&[u8]], pass: bool) -> Status {
        self.ticket_deferred = false;
        let mut w = BrigadeSink(BrigadeWriter::new(self.out));
        if let Err(e) = self.stream.send(run, &mut w) {
            log_conn!(self.c, log::DEBUG, 0, "TLS output failed: {e}");
            self.out.clear();
            return APR_ECONNABORTED;
        }
        if pass { self.pass_out() } else { APR_SUCCESS }
    }
}

/// The input filter: plaintext up to httpd.
struct TlsInput;

impl InputFilter for TlsInput {
    fn read(c: Conn, _this: Filter, bb: Brigade<'_>, mode: ReadMode, block: bool, readbytes: i64) -> Status {
        match c.local::<TlsModule>().map(|s| s.try_borrow_mut()) {
            Some(Ok(mut tc)) => {
                let rv = tc.read(bb, mode, block, readbytes);
                tc.note_error(rv);
                rv
            }
            _ => {
                log_conn!(c, log::ERR, 0, "internal error: the TLS state of this connection is not available");
                APR_ECONNABORTED
            }
        }
    }

    fn panicked(c: Conn, message: &str) {
        log_conn!(c, log::ERR, 0, "internal error (panic) in the TLS input filter, closing this connection: {message}");
        close_after_panic(c);
    }
}

/// The output filter: records down to the network.
struct TlsOutput;

impl OutputFilter for TlsOutput {
    fn write(c: Conn, _this: Filter, bb: Brigade<'_>) -> Status {
        match c.local::<TlsModule>().map(|s| s.try_borrow_mut()) {
            Some(Ok(mut tc)) => {
                let rv = tc.write(bb);
                tc.note_error(rv);
                rv
            }
            _ => {
                log_conn!(c, log::ERR, 0, "internal error: the TLS state of this connection is not available");
                bb.clear();
                APR_ECONNABORTED
            }
        }
    }

    fn panicked(c: Conn, message: &str) {
        log_conn!(
            c,
            log::ERR,
            0,
            "internal error (panic) in the TLS output filter, closing this connection: {message}"
        );
        close_after_panic(c);
    }
}

/// After a panic in a filter nothing more goes in or out on the connection.
fn close_after_panic(c: Conn) {
    if let Some(Ok(mut tc)) = c.local::<TlsModule>().map(|s| s.try_borrow_mut()) {
        tc.state.close();
    }
}
