//! One TLS connection as a byte pump, independent of httpd: a client's connection to us (read
//! from its ClientHello, [`TlsStream::new`]) or ours to a proxy backend ([`TlsStream::client`]).
//! TLS bytes go in with [`TlsStream::feed`], plaintext comes out of [`TlsStream::plaintext`];
//! plaintext goes in with [`TlsStream::send`], TLS records come out into a [`RecordSink`]
//! (handshake bytes through any `io::Write`). The module's connection filters (`src/tls_filters.rs`
//! of the `mod_tls` crate) move these bytes between
//! bucket brigades and this type; everything protocol-related is here, where it can be tested
//! with an in-memory rustls client. rustls's unbuffered API is used, so that the buffers are ours
//! and an idle connection holds none.

use std::io::{self, Write};
use std::sync::Arc;

use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::pki_types::ServerName;
use rustls::server::{Accepted, Acceptor, ClientHello, ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedConnectionCommon, UnbufferedStatus};
use rustls::{ClientConfig, CommonState, ServerConfig};

use super::lent_stack;

/// Largest plaintext that fits one TLS record: `send` fills records up to this size across the
/// parts it is given.
pub const RECORD_PLAINTEXT: usize = 16 * 1024;

/// Most a record adds to its plaintext: header (5), TLS 1.2 explicit nonce (8), TLS 1.3 inner
/// content type (1), AEAD tag (16).
const RECORD_OVERHEAD: usize = 5 + 8 + 1 + 16;

/// Most TLS bytes we hold for rustls: a whole handshake message (rustls's own cap, 64 KiB, for
/// client certificate chains), a record in progress and one read from the network (32 KiB, see
/// `TLS_READ_CHUNK` in the module's src/tls_filters.rs). Past it the peer is not speaking TLS.
const INCOMING_LIMIT: usize = 64 * 1024 + RECORD_PLAINTEXT + 2048 + 32 * 1024;

/// Where `send` puts records: a writer that can also lend room at its end, so that records are
/// encrypted straight into the memory that goes to the network.
pub trait RecordSink: Write {
    /// Room for `len` bytes at the end of the output, to be followed by `commit`.
    fn room(&mut self, len: usize) -> &mut [u8];
    /// Keeps the first `used` bytes of the room of `lent` bytes last lent.
    fn commit(&mut self, lent: usize, used: usize);
}

impl RecordSink for Vec<u8> {
    fn room(&mut self, len: usize) -> &mut [u8] {
        let start = self.len();
        self.resize(start + len, 0);
        &mut self[start..]
    }

    fn commit(&mut self, lent: usize, used: usize) {
        self.truncate(self.len() - (lent - used));
    }
}

/// Picks the configuration for a connection once its ClientHello is known.
pub trait ConfigChooser {
    fn choose(&mut self, hello: &ClientHello<'_>) -> Result<Arc<ServerConfig>, Refusal>;
}

/// Why a ClientHello was turned away before the handshake continued, with the alert to send.
#[derive(Debug)]
pub struct Refusal {
    pub alert: rustls::AlertDescription,
    pub reason: String,
}

/// Why a connection failed; the alert for the peer (if any) is waiting in the stream's output.
#[derive(Debug)]
pub enum TlsFailure {
    /// The peer broke the protocol or the handshake could not be agreed.
    Protocol(rustls::Error),
    /// The chooser refused the ClientHello (see [`Refusal`]): a policy of ours, such as
    /// `TLSStrictSNI`, not a broken client.
    Refused(Refusal),
    /// More data arrived after the peer had closed, or the stream is already closed.
    Closed,
    /// The peer sent more than a TLS message can hold (see `INCOMING_LIMIT`).
    Oversized,
    /// Early data arrived, which we never accept (rustls's default), so it cannot happen.
    EarlyData,
    /// rustls could not encrypt; the connection is over.
    Encrypt(EncryptError),
    /// The ClientHello's records could not be read.
    UnreadableHello(io::Error),
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsFailure::Protocol(e) => write!(f, "{e}"),
            TlsFailure::Refused(r) => write!(f, "{}", r.reason),
            TlsFailure::Closed => write!(f, "connection already closed"),
            TlsFailure::Oversized => write!(f, "the peer sent more than a TLS message can hold"),
            TlsFailure::EarlyData => write!(f, "unexpected early data"),
            TlsFailure::Encrypt(e) => write!(f, "encrypting: {e}"),
            TlsFailure::UnreadableHello(e) => write!(f, "reading ClientHello: {e}"),
        }
    }
}

/// Why [`TlsStream::send`] or [`TlsStream::close`] could not write.
#[derive(Debug)]
pub enum SendError {
    /// No connection yet (the ClientHello is being read), or the handshake is not complete.
    NotReady,
    /// The connection failed or close_notify went out: nothing more can be sent.
    Closed,
    /// The output refused the bytes.
    Output(io::Error),
    /// rustls failed while encrypting; its alert went out and the connection is over.
    Tls(TlsFailure),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::NotReady => write!(f, "the TLS handshake is not complete"),
            SendError::Closed => write!(f, "TLS connection is closed"),
            SendError::Output(e) => write!(f, "{e}"),
            SendError::Tls(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for SendError {
    fn from(e: io::Error) -> SendError {
        SendError::Output(e)
    }
}

enum Phase {
    /// Reading the ClientHello; no configuration chosen yet. The bytes are kept as they came, for
    /// the connection that the chosen configuration starts (see `feed_hello`), with the
    /// Acceptor reading them if the hello goes on over several records.
    Hello(Option<Box<Acceptor>>),
    /// Handshaking or established (a server connection, or a client one towards a backend).
    Open(Box<Conn>),
    /// Failed before a connection existed; only the alert in `outgoing` remains to send.
    Failed,
    /// The client spoke plain HTTP to the TLS port: its bytes pass through unencrypted so that
    /// httpd can answer with a readable 400 (as mod_ssl does).
    PlainHttp,
}

/// A rustls connection of the unbuffered kind: it keeps no buffer of its own between calls, so
/// an idle keep-alive connection holds none (rustls's buffered connections keep 4 KiB each).
enum Conn {
    Server(UnbufferedServerConnection),
    Client(UnbufferedClientConnection),
}

impl Conn {
    fn common(&self) -> &CommonState {
        match self {
            Conn::Server(c) => c,
            Conn::Client(c) => c,
        }
    }
}

/// `process_tls_records` of one side of rustls's unbuffered API.
type Process<Data> =
    for<'c, 'i> fn(&'c mut UnbufferedConnectionCommon<Data>, &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Data>;

/// What `send` and `close` do once records may be encrypted.
type EncryptFn<'a> = &'a mut dyn FnMut(&mut dyn Encrypt) -> Result<(), EncryptError>;

/// Where `drive` stopped.
#[derive(Debug, PartialEq)]
enum Stop {
    /// The handshake needs more bytes from the peer.
    NeedData,
    /// The connection is established and everything received so far has been processed: records
    /// may be encrypted (the `encrypt` callback of `drive` ran, if given).
    Traffic,
    /// Both sides have sent close_notify.
    Closed,
}

/// The byte buffers around a connection, all of them empty and without capacity when idle.
#[derive(Default)]
struct Buffers {
    /// TLS bytes received and not yet consumed by rustls.
    incoming: Vec<u8>,
    /// TLS bytes produced outside `send` (handshake, alerts, tickets, close_notify) and not yet
    /// written.
    outgoing: Vec<u8>,
    /// Decrypted bytes not yet handed to httpd, from `plain_in_pos` on.
    plain_in: Vec<u8>,
    /// The peer sent close_notify.
    peer_closed: bool,
}

/// Runs rustls over what `bufs.incoming` holds until it needs more bytes or has nothing more to
/// do: decrypted data goes to `plain_in`, handshake bytes and alerts to `outgoing`. At `Traffic`,
/// `encrypt` (if any) gets to encrypt application data. On an error, the alert rustls queued is
/// in `outgoing` too.
fn drive<Data>(
    conn: &mut UnbufferedConnectionCommon<Data>,
    process: Process<Data>,
    bufs: &mut Buffers,
    mut encrypt: Option<EncryptFn<'_>>,
) -> Result<Stop, TlsFailure> {
    loop {
        let UnbufferedStatus { discard, state } = process(conn, &mut bufs.incoming);
        let stop = match state {
            Err(e) => Err(TlsFailure::Protocol(e)),
            Ok(ConnectionState::ReadTraffic(mut records)) => {
                let mut failed = None;
                while let Some(record) = records.next_record() {
                    match record {
                        Ok(r) => bufs.plain_in.extend_from_slice(r.payload),
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                failed.map_or(Ok(None), |e| Err(TlsFailure::Protocol(e)))
            }
            // We never accept early data (rustls's default), so this cannot happen.
            Ok(ConnectionState::ReadEarlyData(_)) => Err(TlsFailure::EarlyData),
            Ok(ConnectionState::EncodeTlsData(mut tls)) => {
                encode_into(&mut tls, &mut bufs.outgoing);
                Ok(None)
            }
            // Our caller writes `outgoing` before any record that `send` encrypts later.
            Ok(ConnectionState::TransmitTlsData(tls)) => {
                tls.done();
                Ok(None)
            }
            Ok(ConnectionState::BlockedHandshake) => Ok(Some(Stop::NeedData)),
            Ok(ConnectionState::PeerClosed) => {
                bufs.peer_closed = true;
                Ok(None)
            }
            Ok(ConnectionState::Closed) => {
                bufs.peer_closed = true;
                Ok(Some(Stop::Closed))
            }
            Ok(ConnectionState::WriteTraffic(mut traffic)) => match encrypt.take() {
                Some(f) => f(&mut traffic).map(|()| Some(Stop::Traffic)).map_err(TlsFailure::Encrypt),
                None => Ok(Some(Stop::Traffic)),
            },
            Ok(_) => Ok(Some(Stop::NeedData)),
        };
        bufs.incoming.drain(..discard);
        if bufs.peer_closed {
            // rustls reads nothing after close_notify: whatever followed it is dropped.
            bufs.incoming = Vec::new();
        }
        match stop {
            Ok(None) => continue,
            Ok(Some(stop)) => {
                if bufs.incoming.is_empty() {
                    // Idle connections hold no buffer.
                    bufs.incoming = Vec::new();
                }
                return Ok(stop);
            }
            Err(e) => {
                collect_alerts(conn, process, bufs);
                return Err(e);
            }
        }
    }
}

/// After an error: moves the alert rustls queued (if any) to `outgoing`. rustls is given the same
/// buffer as before (its handshake deframer remembers positions in it).
fn collect_alerts<Data>(conn: &mut UnbufferedConnectionCommon<Data>, process: Process<Data>, bufs: &mut Buffers) {
    for _ in 0..8 {
        let UnbufferedStatus { discard, state } = process(conn, &mut bufs.incoming);
        let more = match state {
            Ok(ConnectionState::EncodeTlsData(mut tls)) => {
                encode_into(&mut tls, &mut bufs.outgoing);
                true
            }
            Ok(ConnectionState::TransmitTlsData(tls)) => {
                tls.done();
                false
            }
            _ => false,
        };
        bufs.incoming.drain(..discard);
        if !more {
            break;
        }
    }
    bufs.incoming = Vec::new();
}

/// Tracks TLS record boundaries in a byte stream: which part of which record comes next.
#[derive(Debug, Default)]
struct RecordFraming {
    header: [u8; RECORD_HEADER_LEN],
    header_len: usize,
    body_left: usize,
    /// A header arrived that rustls refuses (see `header_refused`).
    refused: bool,
}

const RECORD_HEADER_LEN: usize = 5;
/// rustls refuses records with a body this large or larger: 2^14 bytes of data plus 2048 of
/// expansion (TLS 1.2).
const MAX_RECORD_BODY: usize = 16384 + 2048;
const APPLICATION_DATA: u8 = 23;

impl RecordFraming {
    /// Room for `received` bytes just taken in and, unless they ended a record (`whole_record`),
    /// the rest of the record they are part of: a record arrives in two reads at least (header,
    /// then body), and one allocation sized at its header holds it instead of one that grows.
    fn room_for(&self, received: usize, whole_record: bool) -> usize {
        received + if whole_record { 0 } else { self.wanted() }
    }

    /// The bytes that complete the current part: the record's body, or the next header.
    fn wanted(&self) -> usize {
        if self.body_left > 0 { self.body_left } else { RECORD_HEADER_LEN - self.header_len }
    }

    /// A record header arrived that rustls refuses (rustls's own checks of a header: a content
    /// type TLS does not have, a version other than 3.x, an empty record other than application
    /// data, a body TLS does not allow). rustls should see it at once: waiting for its body
    /// would leave a peer that is not speaking TLS (an SSLv2 hello, plain HTTP after a blank
    /// line, a backend that speaks first in plain text) waiting for an answer until `Timeout`.
    fn header_refused(&self) -> bool {
        self.refused
    }

    fn refuses(header: &[u8; RECORD_HEADER_LEN]) -> bool {
        let [content_type, major, _, len_hi, len_lo] = *header;
        let len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
        !(20..=24).contains(&content_type)
            || major != 3
            || (len == 0 && content_type != APPLICATION_DATA)
            || len >= MAX_RECORD_BODY
    }

    /// Moves past `data`; true if that completed a record.
    fn advance(&mut self, mut data: &[u8]) -> bool {
        let mut completed = false;
        while !data.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(data.len());
                self.body_left -= n;
                completed |= self.body_left == 0;
                data = &data[n..];
                continue;
            }
            let n = (RECORD_HEADER_LEN - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            data = &data[n..];
            if self.header_len == RECORD_HEADER_LEN {
                self.refused |= Self::refuses(&self.header);
                self.body_left = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                self.header_len = 0;
                completed |= self.body_left == 0;
            }
        }
        completed
    }
}

/// Appends the handshake record rustls has ready to `outgoing`.
fn encode_into<Data>(tls: &mut rustls::unbuffered::EncodeTlsData<'_, Data>, outgoing: &mut Vec<u8>) {
    let required = match tls.encode(&mut []) {
        Err(EncodeError::InsufficientSize(s)) => s.required_size,
        _ => 0,
    };
    let start = outgoing.len();
    outgoing.resize(start + required, 0);
    let written = tls.encode(&mut outgoing[start..]).unwrap_or(0);
    outgoing.truncate(start + written);
}

pub struct TlsStream {
    phase: Phase,
    bufs: Buffers,
    plain_in_pos: usize,
    /// The bytes received while the ClientHello is being read (see `feed_hello`), and how many
    /// of them the kept Acceptor has read.
    hello_bytes: Vec<u8>,
    hello_read: usize,
    /// The transport reached EOF (with or without close_notify).
    transport_eof: bool,
    failed: bool,
    close_notify_sent: bool,
    /// Any byte arrived from the peer yet.
    received_any: bool,
    /// Where the peer's bytes stand in TLS record framing (see `read_size`).
    framing: RecordFraming,
    /// This connection's session lookups (lent to the session store while rustls runs).
    resumption: crate::tls::sessions::Resumption,
}

impl Default for TlsStream {
    fn default() -> Self {
        Self::new()
    }
}

impl TlsStream {
    pub fn new() -> Self {
        TlsStream {
            phase: Phase::Hello(None),
            bufs: Buffers::default(),
            plain_in_pos: 0,
            hello_bytes: Vec::new(),
            hello_read: 0,
            transport_eof: false,
            failed: false,
            close_notify_sent: false,
            received_any: false,
            framing: RecordFraming::default(),
            resumption: Default::default(),
        }
    }

    /// A client-side stream (towards a backend) to `name`: the handshake starts with our
    /// ClientHello, which is ready to write at once. Made on a lent stack (`lent_stack`),
    /// like a server's handshake: the key shares are computed meanwhile.
    pub fn client(config: Arc<ClientConfig>, name: ServerName<'static>) -> Result<Self, rustls::Error> {
        lent_stack::run(|| {
            let conn = UnbufferedClientConnection::new(config, name)?;
            let mut s = Self::new();
            s.phase = Phase::Open(Box::new(Conn::Client(conn)));
            // Producing our ClientHello cannot fail; if it ever did, the first write reports it.
            let _ = s.run_or_fail();
            Ok(s)
        })
    }

    /// Either side's connection state (protocol, suite, peer certificates, ALPN), once the
    /// ClientHello chose a configuration.
    pub fn common(&self) -> Option<&CommonState> {
        match &self.phase {
            Phase::Open(c) => Some(c.common()),
            _ => None,
        }
    }

    /// The server side's connection state (a backend connection has none).
    pub fn connection(&self) -> Option<&CommonState> {
        match &self.phase {
            Phase::Open(c) => match &**c {
                Conn::Server(s) => Some(s),
                Conn::Client(_) => None,
            },
            _ => None,
        }
    }

    /// True until the handshake has completed (and also after a failure during it).
    pub fn is_handshaking(&self) -> bool {
        match &self.phase {
            Phase::Hello(_) | Phase::Failed => true,
            Phase::Open(c) => c.common().is_handshaking(),
            Phase::PlainHttp => false,
        }
    }

    /// A server-side TLS 1.3 handshake has completed: what rustls queues then unasked (session
    /// tickets) need not go out before the next response.
    pub fn completed_tls13_server_handshake(&self) -> bool {
        !self.failed
            && self
                .connection()
                .is_some_and(|c| !c.is_handshaking() && c.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3))
    }

    /// We have answered the peer's last flight and wait for its next one to finish the handshake.
    /// Not for a ClientHello: a client that stalls in it must get httpd's whole `Timeout` (or
    /// mod_reqtimeout's handshake stage) on every MPM, which the integration test
    /// `a_stalled_hello_is_cut_off_by_timeout_or_reqtimeout` holds; waiting for the hello in the
    /// event MPM's poller failed that test intermittently, so the hello is read in the worker.
    pub fn awaits_peer_flight(&self) -> bool {
        !self.failed && matches!(&self.phase, Phase::Open(c) if c.common().is_handshaking()) && !self.wants_write()
    }

    /// How many bytes to ask the network for next: the rest of the record being received, or
    /// the next record's header; at most `max`. Asking for more than the peer has sent makes
    /// httpd's core input filter try another read, which finds nothing: one wasted syscall per
    /// flight from the peer (the ClientHello, the client's Finished, every request).
    pub fn read_size(&self, max: usize) -> usize {
        if self.is_plain_http() { max } else { self.framing.wanted().min(max) }
    }

    /// The client sent plain HTTP instead of a ClientHello.
    pub fn is_plain_http(&self) -> bool {
        matches!(self.phase, Phase::PlainHttp)
    }

    /// What this connection's session lookups did since the last call (for the status page).
    pub fn take_session_events(&mut self) -> crate::tls::sessions::SessionEvents {
        self.resumption.take_events()
    }

    pub fn has_failed(&self) -> bool {
        self.failed
    }

    /// Runs the connection over the bytes received so far (see `drive`), on a lent stack: rustls
    /// and aws-lc go deeper than httpd does, and a worker thread would keep that depth resident
    /// for good (`lent_stack`).
    fn run(&mut self, encrypt: Option<EncryptFn<'_>>) -> Result<Stop, TlsFailure> {
        lent_stack::run(|| self.run_on_this_stack(encrypt))
    }

    fn run_on_this_stack(&mut self, encrypt: Option<EncryptFn<'_>>) -> Result<Stop, TlsFailure> {
        let Phase::Open(conn) = &mut self.phase else { return Ok(Stop::NeedData) };
        let bufs = &mut self.bufs;
        match &mut **conn {
            // The session store learns which connection asks (lookups per hello, the session's
            // origin) from the state lent to it meanwhile.
            Conn::Server(c) => self.resumption.within(|| {
                drive(c, UnbufferedConnectionCommon::<ServerConnectionData>::process_tls_records, bufs, encrypt)
            }),
            Conn::Client(c) => {
                drive(c, UnbufferedConnectionCommon::<ClientConnectionData>::process_tls_records, bufs, encrypt)
            }
        }
    }

    /// `run`, marking the stream failed on an error (the alert is then in `outgoing`).
    fn run_or_fail(&mut self) -> Result<Stop, TlsFailure> {
        let r = self.run(None);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    /// Feeds TLS bytes read from the network. `data` empty means the transport reached EOF.
    pub fn feed(&mut self, data: &[u8], chooser: &mut dyn ConfigChooser) -> Result<(), TlsFailure> {
        if self.failed {
            return Err(TlsFailure::Closed);
        }
        // An empty read is how the transport reports EOF.
        let eof = data.is_empty();
        if eof {
            self.transport_eof = true;
        }
        // A TLS connection starts with a handshake record (0x16); an upper-case letter is the
        // method of a plain HTTP request.
        if matches!(self.phase, Phase::Hello(_))
            && !self.received_any
            && data.first().is_some_and(|b| b.is_ascii_uppercase())
        {
            self.phase = Phase::PlainHttp;
        }
        self.received_any |= !data.is_empty();
        // rustls can only act on whole records (or refuse an oversized one from its header).
        let whole_record = self.framing.advance(data) || self.framing.header_refused() || eof;
        match &mut self.phase {
            Phase::PlainHttp => {
                self.bufs.plain_in.extend_from_slice(data);
                Ok(())
            }
            Phase::Failed => Err(TlsFailure::Closed),
            // The hello's steps run on a lent stack, as every call into rustls does (`run`).
            Phase::Hello(_) => lent_stack::run(|| match self.feed_hello(data, whole_record)? {
                // Each step returns before the next, so that neither's frame (several KiB: the
                // Acceptor's values) lies under the handshake's deepest calls, the signature
                // among them: the lent stacks stay shallower for it.
                Some(accepted) => {
                    self.start_connection(accepted, chooser)?;
                    self.run_or_fail().map(|_| ())
                }
                None => Ok(()),
            }),
            Phase::Open(_) => {
                if self.bufs.peer_closed {
                    // Nothing counts after close_notify.
                    return Ok(());
                }
                if self.bufs.incoming.len() + data.len() > INCOMING_LIMIT {
                    self.failed = true;
                    return Err(TlsFailure::Oversized);
                }
                self.bufs.incoming.reserve(self.framing.room_for(data.len(), whole_record));
                self.bufs.incoming.extend_from_slice(data);
                if !whole_record {
                    return Ok(());
                }
                self.run_or_fail()?;
                if eof && self.is_handshaking() {
                    // The peer went away mid-handshake: nothing more can happen here.
                    self.failed = true;
                    return Err(TlsFailure::Closed);
                }
                Ok(())
            }
        }
    }

    /// `feed` while the ClientHello is being read: the hello, once an Acceptor has all of it.
    /// Not inlined, like `start_connection`, to keep `feed`'s frame small for every later record.
    ///
    /// All bytes wait in `hello_bytes` (the connection that starts reads them again, with
    /// whatever followed the ClientHello), and an Acceptor reads them a whole record at a time
    /// (`whole_record`). A ClientHello is one record in nearly every case: the Acceptor is made
    /// on the stack for it, and kept (boxed, 1.2 KiB) only when the hello goes on in a further
    /// record, which it then reads from where it stopped (reading all bytes again for each record
    /// would let a hello in many tiny records cost time quadratic in its size). Fed a record
    /// header alone (reads ask for just that, see `read_size`), the Acceptor would read the body
    /// into a second buffer twice the size of its first, a transient that left idle connections
    /// ~0.5 KiB larger each through heap fragmentation.
    #[inline(never)]
    #[cold]
    fn feed_hello(&mut self, data: &[u8], whole_record: bool) -> Result<Option<Accepted>, TlsFailure> {
        self.hello_bytes.reserve(self.framing.room_for(data.len(), whole_record));
        self.hello_bytes.extend_from_slice(data);
        if !whole_record {
            return Ok(None);
        }
        let Phase::Hello(kept) = &mut self.phase else {
            unreachable!("feed_hello runs in the hello phase, which only its returns leave")
        };
        let mut acceptor = match kept.take() {
            Some(boxed) => *boxed,
            None => Acceptor::default(),
        };
        loop {
            let mut unread = &self.hello_bytes[self.hello_read..];
            let n = match acceptor.read_tls(&mut unread) {
                Ok(n) => n,
                Err(e) => return Err(self.fail_hello(TlsFailure::UnreadableHello(e))),
            };
            self.hello_read += n;
            match acceptor.accept() {
                Ok(None) => {
                    if n == 0 || self.hello_read == self.hello_bytes.len() {
                        if self.transport_eof {
                            // EOF before a complete ClientHello: nothing to answer.
                            return Err(self.fail_hello(TlsFailure::Closed));
                        }
                        self.phase = Phase::Hello(Some(Box::new(acceptor)));
                        return Ok(None);
                    }
                }
                Ok(Some(accepted)) => return Ok(Some(accepted)),
                Err((e, mut alert)) => {
                    let _ = alert.write_all(&mut self.bufs.outgoing);
                    if self.bufs.outgoing.is_empty() {
                        // rustls answers some broken hellos with silence; say why.
                        self.bufs.outgoing.extend_from_slice(&plaintext_alert(alert_for(&e)));
                    }
                    return Err(self.fail_hello(TlsFailure::Protocol(e)));
                }
            }
        }
    }

    // Not inlined: once per connection, with large rustls values on its frame, which would
    // otherwise enlarge `feed`'s frame for every record.
    #[inline(never)]
    #[cold]
    fn start_connection(&mut self, accepted: Accepted, chooser: &mut dyn ConfigChooser) -> Result<(), TlsFailure> {
        let config = match chooser.choose(&accepted.client_hello()) {
            Ok(c) => c,
            Err(refusal) => {
                self.bufs.outgoing.extend_from_slice(&plaintext_alert(refusal.alert));
                return Err(self.fail_hello(TlsFailure::Refused(refusal)));
            }
        };
        drop(accepted);
        let conn = match UnbufferedServerConnection::new(config) {
            Ok(c) => c,
            Err(e) => {
                self.bufs.outgoing.extend_from_slice(&plaintext_alert(rustls::AlertDescription::InternalError));
                return Err(self.fail_hello(TlsFailure::Protocol(e)));
            }
        };
        self.phase = Phase::Open(Box::new(Conn::Server(conn)));
        // The connection reads the ClientHello again, from the bytes the Acceptor saw (`feed`
        // runs it next).
        self.bufs.incoming = std::mem::take(&mut self.hello_bytes);
        Ok(())
    }

    fn fail_hello(&mut self, f: TlsFailure) -> TlsFailure {
        self.failed = true;
        self.phase = Phase::Failed;
        self.hello_bytes = Vec::new();
        f
    }

    /// Decrypted bytes waiting for httpd.
    pub fn plaintext(&self) -> &[u8] {
        &self.bufs.plain_in[self.plain_in_pos..]
    }

    pub fn consume(&mut self, n: usize) {
        self.plain_in_pos = (self.plain_in_pos + n).min(self.bufs.plain_in.len());
        if self.plain_in_pos == self.bufs.plain_in.len() {
            // Idle connections hold no buffer of ours.
            self.bufs.plain_in = Vec::new();
            self.plain_in_pos = 0;
        }
    }

    /// No plaintext left and none will come: the peer closed (cleanly or not).
    pub fn at_eof(&self) -> bool {
        self.plaintext().is_empty() && (self.bufs.peer_closed || self.transport_eof)
    }

    /// Whether the peer closed with close_notify (as opposed to just dropping the transport).
    pub fn peer_sent_close_notify(&self) -> bool {
        self.bufs.peer_closed
    }

    /// TLS bytes (handshake, alerts, tickets) are waiting to be written.
    pub fn wants_write(&self) -> bool {
        !self.bufs.outgoing.is_empty()
    }

    /// Writes every pending TLS byte to `out`.
    pub fn write_tls(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if !self.bufs.outgoing.is_empty() {
            out.write_all(&self.bufs.outgoing)?;
            self.bufs.outgoing = Vec::new();
        }
        Ok(())
    }

    /// Encrypts `parts` as one stream of application data: records are filled up to 16 KiB across
    /// part boundaries (a response head and its first body bytes share a record) and encrypted
    /// straight into room lent by `out`. Pending handshake bytes (a session ticket) go first.
    pub fn send(&mut self, parts: &[&[u8]], out: &mut dyn RecordSink) -> Result<(), SendError> {
        if !matches!(self.phase, Phase::Open(_)) {
            return Err(SendError::NotReady);
        }
        if self.failed || self.close_notify_sent {
            return Err(SendError::Closed);
        }
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total == 0 {
            return Ok(self.write_tls(out)?);
        }
        // Handshake bytes still pending (a TLS 1.3 ticket held back) go before the records.
        self.write_tls(out)?;
        // Records whose plaintext lies in one part are encrypted from it in place; a record
        // spanning parts is gathered first (at most one record's worth: a response head).
        let spans_parts = parts.iter().filter(|p| !p.is_empty()).count() > 1;
        let mut gather: Vec<u8> = Vec::with_capacity(if spans_parts { total.min(RECORD_PLAINTEXT) } else { 0 });
        let mut encrypt = |t: &mut dyn Encrypt| -> Result<(), EncryptError> {
            let mut pending = parts.iter().copied().filter(|p| !p.is_empty()).peekable();
            let mut current: &[u8] = pending.next().unwrap_or(&[]);
            loop {
                if current.is_empty() {
                    match pending.next() {
                        Some(p) => current = p,
                        None => return Ok(()),
                    }
                }
                let chunk: &[u8] = if current.len() >= RECORD_PLAINTEXT || pending.peek().is_none() {
                    // Whole records from this part (up to the end of the part if it is the last).
                    let take = if pending.peek().is_none() {
                        current.len()
                    } else {
                        current.len() - current.len() % RECORD_PLAINTEXT
                    };
                    let (head, rest) = current.split_at(take);
                    current = rest;
                    head
                } else {
                    gather.clear();
                    while gather.len() < RECORD_PLAINTEXT {
                        if current.is_empty() {
                            match pending.next() {
                                Some(p) => current = p,
                                None => break,
                            }
                        }
                        let take = current.len().min(RECORD_PLAINTEXT - gather.len());
                        gather.extend_from_slice(&current[..take]);
                        current = &current[take..];
                    }
                    &gather
                };
                // Room for the records, and for a key update rustls may put before them.
                let records = chunk.len().div_ceil(RECORD_PLAINTEXT);
                let mut lent = chunk.len() + records * RECORD_OVERHEAD + 64;
                loop {
                    let room = out.room(lent);
                    match t.encrypt(chunk, room) {
                        Ok(n) => {
                            out.commit(lent, n);
                            break;
                        }
                        Err(EncryptError::InsufficientSize(s)) if s.required_size > lent => {
                            out.commit(lent, 0);
                            lent = s.required_size;
                        }
                        Err(e) => {
                            out.commit(lent, 0);
                            return Err(e);
                        }
                    }
                }
            }
        };
        let r = self.run(Some(&mut encrypt));
        // Whatever rustls queued meanwhile (a key update) follows.
        let w = self.write_tls(out);
        match r {
            Ok(Stop::Traffic) => Ok(w?),
            Ok(_) => Err(SendError::NotReady),
            // The alert rustls queued went out with `w` above.
            Err(e) => {
                self.failed = true;
                Err(SendError::Tls(e))
            }
        }
    }

    /// Sends close_notify (once) after everything written so far.
    pub fn close(&mut self, out: &mut dyn Write) -> Result<(), SendError> {
        if !self.failed && !self.close_notify_sent && matches!(self.phase, Phase::Open(_)) {
            let mut notify: Vec<u8> = Vec::new();
            let mut queue = |t: &mut dyn Encrypt| -> Result<(), EncryptError> {
                let mut room = [0u8; 64];
                let n = t.close_notify(&mut room)?;
                notify.extend_from_slice(&room[..n]);
                Ok(())
            };
            if let Ok(Stop::Traffic) = self.run(Some(&mut queue)) {
                self.close_notify_sent = true;
            }
            self.bufs.outgoing.extend_from_slice(&notify);
        }
        Ok(self.write_tls(out)?)
    }
}

/// rustls's `WriteTraffic` of either side, for the closures of `send` and `close`.
trait Encrypt {
    fn encrypt(&mut self, plaintext: &[u8], out: &mut [u8]) -> Result<usize, EncryptError>;
    fn close_notify(&mut self, out: &mut [u8]) -> Result<usize, EncryptError>;
}

impl<Data> Encrypt for rustls::unbuffered::WriteTraffic<'_, Data> {
    fn encrypt(&mut self, plaintext: &[u8], out: &mut [u8]) -> Result<usize, EncryptError> {
        rustls::unbuffered::WriteTraffic::encrypt(self, plaintext, out)
    }

    fn close_notify(&mut self, out: &mut [u8]) -> Result<usize, EncryptError> {
        self.queue_close_notify(out)
    }
}

/// The alert for an error found before a connection existed.
fn alert_for(e: &rustls::Error) -> rustls::AlertDescription {
    use rustls::AlertDescription as A;
    match e {
        rustls::Error::InappropriateMessage { .. } | rustls::Error::InappropriateHandshakeMessage { .. } => {
            A::UnexpectedMessage
        }
        rustls::Error::InvalidMessage(_) => A::DecodeError,
        rustls::Error::PeerIncompatible(_) => A::HandshakeFailure,
        _ => A::InternalError,
    }
}

/// A fatal alert in a plaintext record, for refusals before any connection state exists.
fn plaintext_alert(desc: rustls::AlertDescription) -> [u8; 7] {
    [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, u8::from(desc)]
}

/// Shared with the memory test binary (tests/stream_memory.rs).
#[cfg(test)]
#[path = "../../tests/support/pair.rs"]
mod stream_test_support;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_asks_for_the_rest_of_the_record_or_the_next_header() {
        let mut f = RecordFraming::default();
        assert_eq!(f.wanted(), 5);
        f.advance(&[0x16, 0x03]);
        assert_eq!(f.wanted(), 3, "the rest of the header");
        f.advance(&[0x01, 0x01, 0x02]);
        assert_eq!(f.wanted(), 258, "the body the header announces");
        f.advance(&[0; 200]);
        assert_eq!(f.wanted(), 58);
        // The end of this record, an empty record and most of the next header in one read.
        let mut next = vec![0; 58];
        next.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x00, 0x17, 0x03, 0x03]);
        f.advance(&next);
        assert_eq!(f.wanted(), 2);
        assert!(!f.advance(&[0x40, 0x11, 0xaa]), "no record completed");
        assert_eq!(f.wanted(), 0x4011 - 1);
        assert!(!f.header_refused());
        // One read holding the end of a record and the start of the next completes one.
        let mut tail = vec![0; 0x4011 - 1];
        tail.extend_from_slice(&[0x17, 0x03]);
        assert!(f.advance(&tail));
        assert!(!f.header_refused());
        assert!(!f.advance(&[0x03, 0x47, 0xff]));
        assert!(!f.header_refused(), "the largest record rustls takes");
        let mut f = RecordFraming::default();
        f.advance(&[0x17, 0x03, 0x03, 0x48, 0x00]);
        assert!(f.header_refused(), "a record body of 18 KiB is refused from its header");
        for header in [
            [0x80, 0x2e, 0x01, 0x03, 0x01], // an SSLv2-compatible ClientHello
            [b'\r', b'\n', b'G', b'E', b'T'],
            [b'g', b'e', b't', b' ', b'/'],
            [b'2', b'2', b'0', b' ', b'm'], // an SMTP greeting
            [0x16, 0x02, 0x00, 0x00, 0x10],
            [0x16, 0x03, 0x01, 0x00, 0x00],
        ] {
            let mut f = RecordFraming::default();
            f.advance(&header);
            assert!(f.header_refused(), "{header:?}");
        }
        let mut f = RecordFraming::default();
        f.advance(&[0x17, 0x03, 0x03, 0x00, 0x00]);
        assert!(!f.header_refused(), "empty application data is allowed");
    }

    #[test]
    fn what_is_not_tls_is_refused_without_waiting_for_a_body() {
        // An SSLv2-compatible ClientHello announces 769 bytes by TLS framing and sends 48.
        let mut s = TlsStream::new();
        let mut hello = vec![0x80, 0x2e, 0x01, 0x03, 0x01];
        hello.extend_from_slice(&[0; 43]);
        assert!(s.feed(&hello[..5], &mut Refuse).is_err());
        assert!(!s.bufs.outgoing.is_empty(), "an alert is ready");
        // Plain HTTP after a blank line.
        let mut s = TlsStream::new();
        assert!(s.feed(b"\r\nGET", &mut Refuse).is_err());
    }

    #[test]
    fn handshake_and_requests_read_as_read_size_asks() {
        for v in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let (mut chooser, mut client) = pair(&[v]);
            let server = std::cell::RefCell::new(TlsStream::new());
            let mut reads = 0;
            let mut request = b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n".to_vec();
            request.extend(std::iter::repeat_n(b'x', 40_000));
            client.writer().write_all(&request).unwrap();
            pump_with(
                &mut client,
                &mut |mut tls| {
                    while !tls.is_empty() {
                        let n = server.borrow().read_size(32 * 1024).min(tls.len());
                        server.borrow_mut().feed(&tls[..n], &mut chooser).unwrap();
                        tls = &tls[n..];
                        reads += 1;
                    }
                },
                &mut |out| server.borrow_mut().write_tls(out).unwrap(),
            );
            let server = server.into_inner();
            assert!(!server.is_handshaking(), "{v:?}");
            assert_eq!(server.plaintext(), &request[..], "{v:?}");
            // Two reads per record (header, body): the 40 KiB request took three records.
            assert!(reads >= 2 * 3, "{v:?}: {reads} reads");
        }
    }

    #[test]
    fn read_size_follows_the_records_and_not_plain_http() {
        let mut s = TlsStream::new();
        assert_eq!(s.read_size(32768), 5);
        let mut chooser = Refuse;
        s.feed(&[0x16, 0x03, 0x01, 0x02, 0x00], &mut chooser).unwrap();
        assert_eq!(s.read_size(32768), 0x200);
        assert_eq!(s.read_size(100), 100);
        let mut s = TlsStream::new();
        s.feed(b"GET / HTTP/1.1\r\n", &mut chooser).unwrap();
        assert!(s.is_plain_http());
        assert_eq!(s.read_size(32768), 32768);
    }
    use super::stream_test_support::{Fixed, pair, pump_with};
    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ClientConnection, RootCertStore};
    use std::io::Read;

    /// The chooser, a TLS 1.3 client, and the first bytes it sends: its ClientHello record.
    fn tls13_hello() -> (Fixed, rustls::ClientConnection, Vec<u8>) {
        let (chooser, mut client) = pair(&[&rustls::version::TLS13]);
        let mut hello = Vec::new();
        client.write_tls(&mut hello).unwrap();
        (chooser, client, hello)
    }

    struct Refuse;
    impl ConfigChooser for Refuse {
        fn choose(&mut self, _hello: &ClientHello<'_>) -> Result<Arc<ServerConfig>, Refusal> {
            Err(Refusal { alert: rustls::AlertDescription::UnrecognisedName, reason: "no such vhost".into() })
        }
    }

    /// Moves bytes both ways until neither side has anything to say.
    fn pump(client: &mut ClientConnection, server: &mut TlsStream, chooser: &mut dyn ConfigChooser) {
        let server = std::cell::RefCell::new(server);
        pump_with(client, &mut |tls| server.borrow_mut().feed(tls, chooser).unwrap(), &mut |out| {
            server.borrow_mut().write_tls(out).unwrap()
        });
    }

    #[test]
    fn handshake_and_request_both_versions() {
        for v in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let (mut chooser, mut client) = pair(&[v]);
            let mut server = TlsStream::new();
            client.writer().write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
            pump(&mut client, &mut server, &mut chooser);
            assert!(!server.is_handshaking());
            assert_eq!(server.connection().unwrap().protocol_version(), Some(v.version));
            assert_eq!(server.plaintext(), b"GET / HTTP/1.1\r\n\r\n");
            server.consume(4);
            assert_eq!(server.plaintext(), b"/ HTTP/1.1\r\n\r\n");
            server.consume(100);
            assert!(!server.at_eof(), "a complete ClientHello is not the end of the stream");
        }
    }

    #[test]
    fn parts_share_records_and_records_are_full() {
        let (mut chooser, mut client) = pair(&[&rustls::version::TLS13]);
        let mut server = TlsStream::new();
        pump(&mut client, &mut server, &mut chooser);
        let records = |wire: &[u8]| {
            let mut lens = Vec::new();
            let mut rest = wire;
            while !rest.is_empty() {
                assert_eq!(rest[0], 0x17);
                let len = u16::from_be_bytes([rest[3], rest[4]]) as usize;
                lens.push(len);
                rest = &rest[5 + len..];
            }
            lens
        };
        let mut wire = Vec::new();
        server.send(&[b"HTTP/1.1 200 OK\r\n", b"Content-Length: 5\r\n\r\n", b"hello"], &mut wire).unwrap();
        assert_eq!(records(&wire).len(), 1, "head and body in one record");

        let first = wire.len();
        let big = vec![7u8; 3 * RECORD_PLAINTEXT + 10];
        server.send(&[&big[..100], &big[100..]], &mut wire).unwrap();
        let lens = records(&wire[first..]);
        assert_eq!(lens.len(), 4, "three full records and the tail");
        assert!(lens[..3].iter().all(|l| *l == lens[0]) && lens[3] < lens[0], "{lens:?}");
        server.close(&mut wire).unwrap();
        let mut got = Vec::new();
        let mut rest = &wire[..];
        while !rest.is_empty() {
            client.read_tls(&mut rest).unwrap();
            client.process_new_packets().unwrap();
            let _ = client.reader().read_to_end(&mut got);
        }
        assert_eq!(got.len(), 17 + 21 + 5 + 3 * RECORD_PLAINTEXT + 10);
        assert!(client.reader().read_to_end(&mut got).is_ok(), "close_notify arrived");
    }

    #[test]
    fn close_notify_from_peer_ends_the_stream() {
        let (mut chooser, mut client) = pair(&[&rustls::version::TLS13]);
        let mut server = TlsStream::new();
        pump(&mut client, &mut server, &mut chooser);
        client.writer().write_all(b"x").unwrap();
        client.send_close_notify();
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        // Whatever follows close_notify in the same read is not kept.
        wire.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x10]);
        wire.extend_from_slice(&[0u8; 8]);
        server.feed(&wire, &mut chooser).unwrap();
        assert_eq!(server.plaintext(), b"x");
        assert!(!server.at_eof());
        server.consume(1);
        assert!(server.at_eof() && server.peer_sent_close_notify());
        assert_eq!(server.bufs.incoming.capacity(), 0, "nothing is held after close_notify");
    }

    #[test]
    fn garbage_fails_with_an_alert_and_refusal_sends_ours() {
        let mut server = TlsStream::new();
        let mut chooser = Refuse;
        // Application data before any handshake.
        assert!(server.feed(&[0x17, 3, 3, 0, 5, 1, 2, 3, 4, 5], &mut chooser).is_err());
        let mut out = Vec::new();
        server.write_tls(&mut out).unwrap();
        assert_eq!(out[0], 0x15, "an alert record");
        assert!(server.feed(b"more", &mut chooser).is_err());

        let (_, mut client) = pair(&[&rustls::version::TLS13]);
        let mut hello = Vec::new();
        client.write_tls(&mut hello).unwrap();
        let mut server = TlsStream::new();
        match server.feed(&hello, &mut chooser) {
            Err(TlsFailure::Refused(r)) => assert_eq!(r.reason, "no such vhost"),
            other => panic!("{other:?}"),
        }
        let mut out = Vec::new();
        server.write_tls(&mut out).unwrap();
        assert_eq!(out, [0x15, 3, 3, 0, 2, 2, 112]);
    }

    #[test]
    fn plain_http_passes_through_for_a_readable_answer() {
        let mut server = TlsStream::new();
        let (mut chooser, _) = pair(&[&rustls::version::TLS13]);
        server.feed(b"GET / HTTP/1.1\r\n", &mut chooser).unwrap();
        server.feed(b"Host: x\r\n\r\n", &mut chooser).unwrap();
        assert!(server.is_plain_http() && !server.is_handshaking());
        assert_eq!(server.plaintext(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    }

    #[test]
    fn eof_in_the_middle_of_the_handshake_ends_it() {
        let (mut chooser, _, hello) = tls13_hello();
        let mut server = TlsStream::new();
        server.feed(&hello, &mut chooser).unwrap();
        assert!(server.is_handshaking());
        assert!(matches!(server.feed(&[], &mut chooser), Err(TlsFailure::Closed)));
        assert!(server.has_failed(), "no loop waiting for a handshake that cannot finish");
    }

    /// A client certificate of ~40 KiB: its handshake message spans several records, which arrive
    /// in small pieces; the message is joined across them (rustls keeps positions in our buffer
    /// between calls) and the connection then carries a request.
    #[test]
    fn large_client_certificate_in_small_pieces() {
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let ca_key = rcgen::KeyPair::generate().unwrap();
            let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let ca = ca_params.self_signed(&ca_key).unwrap();
            let issuer = rcgen::Issuer::new(ca_params, &ca_key);
            let names: Vec<String> = (0..1500).map(|i| format!("client-{i}.example.net")).collect();
            let client_key = rcgen::KeyPair::generate().unwrap();
            let client_cert = rcgen::CertificateParams::new(names).unwrap().signed_by(&client_key, &issuer).unwrap();
            assert!(client_cert.der().len() > 32 * 1024);

            let mut roots = RootCertStore::empty();
            roots.add(ca.der().clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                crate::tls::engine::provider(),
            )
            .build()
            .unwrap();
            let server_key = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
            let server = ServerConfig::builder_with_provider(crate::tls::engine::provider())
                .with_protocol_versions(&[version])
                .unwrap()
                .with_client_cert_verifier(verifier)
                .with_single_cert(
                    vec![server_key.cert.der().clone()],
                    rustls_pki_types::PrivateKeyDer::try_from(server_key.signing_key.serialize_der()).unwrap(),
                )
                .unwrap();
            let mut server_roots = RootCertStore::empty();
            server_roots.add(server_key.cert.der().clone()).unwrap();
            let client_config = ClientConfig::builder_with_provider(crate::tls::engine::provider())
                .with_protocol_versions(&[version])
                .unwrap()
                .with_root_certificates(server_roots)
                .with_client_auth_cert(
                    vec![client_cert.der().clone()],
                    rustls_pki_types::PrivateKeyDer::try_from(client_key.serialize_der()).unwrap(),
                )
                .unwrap();
            let mut client =
                ClientConnection::new(Arc::new(client_config), ServerName::try_from("a.test").unwrap()).unwrap();
            let mut chooser = Fixed(Arc::new(server));
            let server = std::cell::RefCell::new(TlsStream::new());
            client.writer().write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
            pump_with(
                &mut client,
                &mut |tls| {
                    for piece in tls.chunks(1000) {
                        server.borrow_mut().feed(piece, &mut chooser).unwrap();
                    }
                },
                &mut |out| server.borrow_mut().write_tls(out).unwrap(),
            );
            let server = server.into_inner();
            assert!(!server.is_handshaking(), "{version:?}: the handshake completed");
            assert_eq!(server.plaintext(), b"GET / HTTP/1.1\r\n\r\n", "{version:?}");
        }
    }

    #[test]
    fn hello_split_into_single_bytes() {
        let (mut chooser, _, hello) = tls13_hello();
        let mut server = TlsStream::new();
        for b in &hello {
            server.feed(std::slice::from_ref(b), &mut chooser).unwrap();
        }
        assert!(server.wants_write(), "the server answered the reassembled hello");
    }

    /// A ClientHello fragmented over two handshake records (as TLS allows, and as a hello larger
    /// than one record must be): nothing is answered after the first, the handshake completes
    /// after the second.
    #[test]
    fn hello_spread_over_two_records() {
        let (mut chooser, mut client, hello) = tls13_hello();
        assert_eq!(hello[0], 0x16, "one handshake record");
        let body = &hello[5..];
        let (first, second) = body.split_at(body.len() / 2);
        let record = |part: &[u8]| {
            let mut r = vec![0x16, hello[1], hello[2]];
            r.extend_from_slice(&(part.len() as u16).to_be_bytes());
            r.extend_from_slice(part);
            r
        };
        let mut server = TlsStream::new();
        server.feed(&record(first), &mut chooser).unwrap();
        assert!(!server.wants_write(), "half a hello is not answered");
        assert!(server.common().is_none(), "no configuration is chosen on half a hello");
        server.feed(&record(second), &mut chooser).unwrap();
        let mut flight = Vec::new();
        server.write_tls(&mut flight).unwrap();
        assert!(!flight.is_empty(), "the whole hello is answered");
        client.read_tls(&mut &flight[..]).unwrap();
        client.process_new_packets().unwrap();
        let mut finished = Vec::new();
        client.write_tls(&mut finished).unwrap();
        server.feed(&finished, &mut chooser).unwrap();
        assert!(!server.is_handshaking(), "the handshake completed");
    }

    /// A ClientHello in records of one byte each: each record goes on from where the last one
    /// stopped, and the whole hello is answered.
    #[test]
    fn hello_in_one_byte_records() {
        let (mut chooser, _, hello) = tls13_hello();
        let mut server = TlsStream::new();
        for b in &hello[5..] {
            assert!(!server.wants_write(), "nothing is answered before the whole hello");
            server.feed(&[0x16, hello[1], hello[2], 0, 1, *b], &mut chooser).unwrap();
        }
        assert!(server.wants_write(), "the server answered the hello of {} records", hello.len() - 5);
        assert!(server.common().is_some(), "a configuration was chosen");
    }
}
