//! TLS sessions shared through a store outside the process (httpd's socache in the module, see
//! `httpd::socache`), so that a session made by one child — or by another server of a fleet —
//! resumes in any other. rustls asks through [`StoresServerSessions`]; stateful TLS 1.2 session
//! ids and TLS 1.3 tickets are filed under the vhost's settings namespace
//! ([`crate::tls::fingerprint::TlsFingerprint::session_namespace`]), so a session never resumes in a vhost
//! with other TLS settings.
//!
//! A session is only as good as the check it was made under, so the store does not simply hand
//! back what it keeps:
//! - its lifetime (`TLSSessionCacheTimeout`) counts from the *full* handshake: rustls issues a new
//!   TLS 1.3 ticket at every resumption, and each new ticket carries the time of the full
//!   handshake it descends from ([`Resumption`] carries it from the ticket taken to the ticket
//!   stored on the same connection);
//! - a session that carries a client certificate chain is checked again, at every resumption,
//!   against the vhost's CAs and CRLs and the current time, as a full handshake would check it:
//!   one that would fail now is not resumed (the client gets a full handshake, which refuses the
//!   certificate with the alert it deserves);
//! - one ClientHello costs at most [`MAX_LOOKUPS_PER_HELLO`] lookups, however many identities
//!   it offers.

use std::cell::RefCell;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::StoresServerSessions;
use rustls::server::danger::ClientCertVerifier;

use crate::tls::time::now_unix;

/// Where sessions live: a key-value store with expiry shared by every process that serves.
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// Stores `value` (which may be read in place) under `key` until `expires_at` (seconds since
    /// the epoch); false when it could not.
    fn store(&self, key: &[u8], value: &mut [u8], expires_at: u64) -> bool;
    fn retrieve(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// Retrieves and removes `key` as one step, so that no two connections get the same value.
    fn take(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// The store is open in this process.
    fn is_ready(&self) -> bool;
}

/// How long a session may be resumed by default (`TLSSessionCacheTimeout`), counted from the
/// full handshake: mod_ssl's default `SSLSessionCacheTimeout`, which configurations written for it
/// assume (docs/directives.md, `TLSSessionCacheTimeout`, gives the trade).
pub const DEFAULT_LIFETIME_SECS: u64 = 300;

/// The most session lookups one ClientHello may cost. A real client offers one ticket (browsers,
/// OpenSSL, rustls, Go), two at most (an external PSK beside a ticket); a TLS 1.3 hello may offer
/// about 1,600 identities in 64 KiB, each a lookup under shmcb's global mutex or a network round
/// trip to memcached/redis before the client has proven anything. Four covers every real client
/// with room, and keeps a hostile hello to four lookups.
pub const MAX_LOOKUPS_PER_HELLO: u32 = 4;

/// How the sessions of one vhost are kept and checked.
#[derive(Clone)]
pub struct SessionPolicy {
    /// The vhost's settings namespace (see the module's description).
    pub namespace: [u8; 8],
    /// How long a session may be resumed, counted from its full handshake.
    pub lifetime_secs: u64,
    /// The vhost's client certificate verifier: a session carrying a chain is checked with it
    /// again at every resumption.
    pub client_verifier: Option<Arc<dyn ClientCertVerifier>>,
}

impl std::fmt::Debug for SessionPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionPolicy")
            .field("lifetime_secs", &self.lifetime_secs)
            .field("checks_client_certificates", &self.client_verifier.is_some())
            .finish()
    }
}

/// What happened to one connection's session lookups, for the status page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionEvents {
    /// Lookups made in the store.
    pub lookups: u32,
    /// Identities not looked up because the hello had used its lookups.
    pub capped: u32,
    /// Sessions found but not resumed: their client certificate would fail a full handshake now.
    pub client_cert_refused: u32,
    /// Sessions found but not resumed: older than the lifetime, counted from the full handshake.
    pub expired: u32,
}

impl SessionEvents {
    pub fn is_empty(&self) -> bool {
        *self == SessionEvents::default()
    }
}

/// One connection's part in session resumption: the time of the full handshake its session
/// descends from (once a session was resumed), and what its lookups did. Owned by the
/// connection's stream, and lent to the store while rustls runs ([`Resumption::within`]).
#[derive(Debug, Default)]
pub struct Resumption {
    /// When the full handshake that this connection's resumed session descends from was made.
    origin: Option<u64>,
    lookups: u32,
    events: SessionEvents,
}

thread_local! {
    /// The connection whose records rustls is processing on this thread: rustls asks the store
    /// without any connection context (see [`Resumption::within`]).
    static CURRENT: RefCell<Option<Resumption>> = const { RefCell::new(None) };
}

impl Resumption {
    /// Runs `f` (rustls processing this connection's records) with this connection's state
    /// where the store finds it. Put back even if `f` unwinds, so that nothing of one connection
    /// is seen by the next one on this thread.
    pub fn within<R>(&mut self, f: impl FnOnce() -> R) -> R {
        struct Lend<'a>(&'a mut Resumption, Option<Resumption>);
        impl Drop for Lend<'_> {
            fn drop(&mut self) {
                let mine = CURRENT.with(|c| c.replace(self.1.take()));
                *self.0 = mine.unwrap_or_default();
            }
        }
        let mine = std::mem::take(self);
        let before = CURRENT.with(|c| c.replace(Some(mine)));
        let _lend = Lend(self, before);
        f()
    }

    /// What the lookups did since the last call.
    pub fn take_events(&mut self) -> SessionEvents {
        std::mem::take(&mut self.events)
    }

    /// Runs `f` on the current connection's state, if rustls runs for one on this thread.
    fn with_current<R>(f: impl FnOnce(&mut Resumption) -> R) -> Option<R> {
        CURRENT.with(|c| c.borrow_mut().as_mut().map(f))
    }
}

/// Our record around rustls's encoded session: a format byte, then the time of the full
/// handshake (seconds since the epoch, big-endian), then rustls's bytes.
const FORMAT: u8 = 1;
const HEADER_LEN: usize = 9;

/// One vhost's view of the store: its keys are prefixed with the vhost's settings namespace.
#[derive(Debug)]
pub struct VhostSessions<S: SessionStore> {
    store: Arc<S>,
    policy: SessionPolicy,
}

impl<S: SessionStore + 'static> VhostSessions<S> {
    pub fn new(store: Arc<S>, policy: SessionPolicy) -> Self {
        VhostSessions { store, policy }
    }

    /// The session storage of each vhost (by its policy) in `store`.
    pub fn factory(store: Arc<S>) -> impl Fn(SessionPolicy) -> Arc<dyn StoresServerSessions> {
        move |policy| Arc::new(VhostSessions::new(store.clone(), policy))
    }
}

impl<S: SessionStore> StoresServerSessions for VhostSessions<S> {
    fn put(&self, key: Vec<u8>, mut value: Vec<u8>) -> bool {
        let now = now_secs();
        // A ticket issued at a resumption lives no longer than the session it continues.
        let origin = Resumption::with_current(|r| r.origin).flatten().unwrap_or(now).min(now);
        let mut record = Vec::with_capacity(HEADER_LEN + value.len());
        record.push(FORMAT);
        record.extend_from_slice(&origin.to_be_bytes());
        record.extend_from_slice(&value);
        let ok = self.store.store(&self.key_of(&key), &mut record, origin + self.policy.lifetime_secs);
        // The value holds the session's secrets: wipe our copies.
        zeroize::Zeroize::zeroize(&mut value);
        zeroize::Zeroize::zeroize(&mut record);
        ok
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.lookup(key, false)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.lookup(key, true)
    }

    fn can_cache(&self) -> bool {
        self.store.is_ready()
    }
}

impl<S: SessionStore> VhostSessions<S> {
    fn key_of(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(8 + key.len());
        k.extend_from_slice(&self.policy.namespace);
        k.extend_from_slice(key);
        k
    }

    /// A lookup for rustls (`take` for TLS 1.3 tickets, which are used once): within the hello's
    /// budget, and only a session that may still be resumed.
    fn lookup(&self, key: &[u8], take: bool) -> Option<Vec<u8>> {
        let allowed = Resumption::with_current(|r| {
            if r.lookups >= MAX_LOOKUPS_PER_HELLO {
                r.events.capped += 1;
                return false;
            }
            r.lookups += 1;
            r.events.lookups += 1;
            true
        });
        if allowed == Some(false) {
            return None;
        }
        let k = self.key_of(key);
        let mut record = if take { self.store.take(&k) } else { self.store.retrieve(&k) }?;
        match self.check(&record, now_secs()) {
            Ok(origin) => {
                Resumption::with_current(|r| r.origin = Some(origin));
                // rustls's bytes, in place: no copy of the session's secrets to wipe.
                record.drain(..HEADER_LEN);
                Some(record)
            }
            Err(refused) => {
                Resumption::with_current(|r| match refused {
                    Refused::Expired => r.events.expired += 1,
                    Refused::ClientCertificate => r.events.client_cert_refused += 1,
                    Refused::Unreadable => {}
                });
                zeroize::Zeroize::zeroize(&mut record);
                None
            }
        }
    }

    /// Whether a stored record may be resumed at `now`: its full handshake's time if so.
    fn check(&self, record: &[u8], now: u64) -> Result<u64, Refused> {
        let (header, value) = record.split_at_checked(HEADER_LEN).ok_or(Refused::Unreadable)?;
        if header[0] != FORMAT {
            return Err(Refused::Unreadable);
        }
        let origin = u64::from_be_bytes(header[1..].try_into().map_err(|_| Refused::Unreadable)?);
        if now >= origin.saturating_add(self.policy.lifetime_secs) {
            return Err(Refused::Expired);
        }
        let chain = client_chain(value).ok_or(Refused::Unreadable)?;
        if let Some((leaf, intermediates)) = chain.split_first() {
            // Without a verifier the vhost asks for no certificate: a session with one (made
            // under other settings) cannot be in its namespace; refuse rather than trust it.
            let verifier = self.policy.client_verifier.as_ref().ok_or(Refused::ClientCertificate)?;
            let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(now));
            verifier.verify_client_cert(leaf, intermediates, at).map_err(|_| Refused::ClientCertificate)?;
        }
        Ok(origin)
    }
}

/// Why a stored session is not resumed.
#[derive(Debug, PartialEq)]
enum Refused {
    Expired,
    ClientCertificate,
    /// Not a record of ours, or rustls's encoding changed: a full handshake is always safe.
    Unreadable,
}

/// The client certificate chain in a session as rustls encodes it (`ServerSessionValue`: SNI,
/// version, suite, secret, extended master secret flag, then the optional chain). rustls does
/// not expose the type; the unit test below decodes sessions rustls itself stored, so a change of
/// its encoding fails the build's tests, and at run time an unreadable one is not resumed.
fn client_chain(value: &[u8]) -> Option<Vec<CertificateDer<'static>>> {
    let mut r = Reader(value);
    if r.u8()? == 1 {
        let n = r.u8()? as usize;
        r.bytes(n)?;
    }
    r.bytes(4)?; // version, suite
    let n = r.u8()? as usize;
    r.bytes(n)?; // secret
    r.u8()?; // extended master secret
    let mut chain = Vec::new();
    if r.u8()? == 1 {
        let n = r.u24()?;
        let mut list = Reader(r.bytes(n)?);
        while !list.0.is_empty() {
            let n = list.u24()?;
            chain.push(CertificateDer::from(list.bytes(n)?.to_vec()));
        }
    }
    Some(chain)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }
    fn u24(&mut self) -> Option<usize> {
        self.bytes(3).map(|b| (b[0] as usize) << 16 | (b[1] as usize) << 8 | b[2] as usize)
    }
}

/// Now, as session records count time: whole seconds since the epoch.
fn now_secs() -> u64 {
    now_unix().max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// A value and when it expires.
    type Entry = (Vec<u8>, u64);

    /// A store in memory, standing in for httpd's socache.
    #[derive(Debug, Default)]
    struct MemoryStore(Mutex<HashMap<Vec<u8>, Entry>>);

    impl SessionStore for MemoryStore {
        fn store(&self, key: &[u8], value: &mut [u8], expires_at: u64) -> bool {
            self.0.lock().unwrap().insert(key.to_vec(), (value.to_vec(), expires_at));
            true
        }
        fn retrieve(&self, key: &[u8]) -> Option<Vec<u8>> {
            self.0.lock().unwrap().get(key).map(|v| v.0.clone())
        }
        fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
            self.0.lock().unwrap().remove(key).map(|v| v.0)
        }
        fn is_ready(&self) -> bool {
            true
        }
    }

    fn policy(namespace: [u8; 8]) -> SessionPolicy {
        SessionPolicy { namespace, lifetime_secs: 300, client_verifier: None }
    }

    /// What rustls would store: no SNI, TLS 1.3, a suite, a secret, no chain, …
    const VALUE: &[u8] = &[0, 3, 4, 0x13, 1, 2, 0xaa, 0xbb, 0, 0, 0];

    #[test]
    fn vhosts_with_other_settings_never_see_each_others_sessions() {
        let store = Arc::new(MemoryStore::default());
        let make = VhostSessions::factory(store.clone());
        let (a, b, a_again) = (make(policy([1; 8])), make(policy([2; 8])), make(policy([1; 8])));
        assert!(a.put(b"id".to_vec(), VALUE.to_vec()));
        assert_eq!(b.get(b"id"), None, "another namespace");
        assert_eq!(a_again.get(b"id").as_deref(), Some(VALUE), "same settings, e.g. another child");
        let mut other = VALUE.to_vec();
        other[6] = 0xcc;
        assert!(b.put(b"id".to_vec(), other.clone()));
        assert_eq!(a.get(b"id").as_deref(), Some(VALUE));
        // A TLS 1.3 ticket is taken: used once.
        assert_eq!(a.take(b"id").as_deref(), Some(VALUE));
        assert_eq!(a_again.get(b"id"), None);
        assert_eq!(b.get(b"id").as_deref(), Some(&other[..]), "untouched");
        assert!(a.can_cache());
        let stored = store.0.lock().unwrap();
        let (key, (_, expires)) = stored.iter().next().unwrap();
        assert_eq!(key[..8], [2; 8], "keys carry the namespace");
        assert!(expires.abs_diff(now_secs() + 300) <= 2, "the store expires it with the session");
    }

    #[test]
    fn a_ticket_issued_at_a_resumption_keeps_the_full_handshakes_time() {
        let store = Arc::new(MemoryStore::default());
        let s = VhostSessions::new(store.clone(), policy([1; 8]));
        // A session made by a full handshake 200 s ago (as the store holds it).
        let origin = now_secs() - 200;
        let mut record = vec![FORMAT];
        record.extend_from_slice(&origin.to_be_bytes());
        record.extend_from_slice(VALUE);
        store.store(&s.key_of(b"old"), &mut record, origin + 300);
        let mut conn = Resumption::default();
        conn.within(|| {
            assert_eq!(s.take(b"old").as_deref(), Some(VALUE));
            // Later on the same connection, rustls stores the ticket it issues.
            assert!(s.put(b"new".to_vec(), VALUE.to_vec()));
        });
        let (new, expires) = store.0.lock().unwrap()[&s.key_of(b"new")].clone();
        assert_eq!(new[1..HEADER_LEN], origin.to_be_bytes(), "not extended");
        assert_eq!(expires, origin + 300);
        assert_eq!(conn.take_events(), SessionEvents { lookups: 1, ..Default::default() });
        // Past the lifetime, a session is not resumed, even if the store still has it.
        assert_eq!(s.check(&new, origin + 300), Err(Refused::Expired));
        assert_eq!(s.check(&new, origin + 299), Ok(origin));
        // Another connection's full handshake starts its own clock.
        Resumption::default().within(|| assert!(s.put(b"fresh".to_vec(), VALUE.to_vec())));
        let (fresh, _) = store.0.lock().unwrap()[&s.key_of(b"fresh")].clone();
        assert!(u64::from_be_bytes(fresh[1..HEADER_LEN].try_into().unwrap()) >= now_secs() - 1);
    }

    #[test]
    fn one_hello_costs_a_bounded_number_of_lookups() {
        let s = VhostSessions::new(Arc::new(MemoryStore::default()), policy([1; 8]));
        let mut conn = Resumption::default();
        conn.within(|| {
            for i in 0..1000u32 {
                assert_eq!(s.take(&i.to_be_bytes()), None);
            }
        });
        let events = conn.take_events();
        assert_eq!((events.lookups, events.capped), (MAX_LOOKUPS_PER_HELLO, 1000 - MAX_LOOKUPS_PER_HELLO));
        // Nothing of it is left on the thread for the next connection.
        assert_eq!(Resumption::with_current(|_| ()), None);
    }

    #[test]
    fn records_that_are_not_ours_are_not_resumed() {
        let s = VhostSessions::new(Arc::new(MemoryStore::default()), policy([1; 8]));
        assert_eq!(s.check(&[], now_secs()), Err(Refused::Unreadable));
        assert_eq!(s.check(&[2, 0, 0, 0, 0, 0, 0, 0, 0, 0], now_secs()), Err(Refused::Unreadable));
        let mut truncated = vec![FORMAT];
        truncated.extend_from_slice(&now_secs().to_be_bytes());
        truncated.extend_from_slice(&VALUE[..5]);
        assert_eq!(s.check(&truncated, now_secs()), Err(Refused::Unreadable));
    }

    /// Records what rustls stores, to decode it as the store does.
    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<Vec<u8>>>);

    impl StoresServerSessions for Recorder {
        fn put(&self, _key: Vec<u8>, value: Vec<u8>) -> bool {
            self.0.lock().unwrap().push(value);
            true
        }
        fn get(&self, _key: &[u8]) -> Option<Vec<u8>> {
            None
        }
        fn take(&self, _key: &[u8]) -> Option<Vec<u8>> {
            None
        }
        fn can_cache(&self) -> bool {
            true
        }
    }

    /// The chain in sessions that rustls itself encoded, for both versions, with and without a
    /// client certificate: the decoding follows rustls's format.
    #[test]
    fn client_chains_are_read_from_sessions_rustls_stored() {
        use rustls::pki_types::PrivateKeyDer;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let issue = |name: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap().self_signed(&key).unwrap();
            (cert.der().clone(), PrivateKeyDer::try_from(key.serialize_der()).unwrap())
        };
        let (server_cert, server_key) = issue("server.test");
        let (client_cert, client_key) = issue("client.test");
        let mut client_roots = rustls::RootCertStore::empty();
        client_roots.add(client_cert.clone()).unwrap();
        let mut server_roots = rustls::RootCertStore::empty();
        server_roots.add(server_cert.clone()).unwrap();
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(client_roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .unwrap();
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            for with_cert in [true, false] {
                let recorder = Arc::new(Recorder::default());
                let mut server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
                    .with_protocol_versions(&[version])
                    .unwrap()
                    .with_client_cert_verifier(verifier.clone())
                    .with_single_cert(vec![server_cert.clone()], server_key.clone_key())
                    .unwrap();
                server_config.session_storage = recorder.clone();
                let client = rustls::ClientConfig::builder_with_provider(provider.clone())
                    .with_protocol_versions(&[version])
                    .unwrap()
                    .with_root_certificates(server_roots.clone());
                let client = if with_cert {
                    client.with_client_auth_cert(vec![client_cert.clone()], client_key.clone_key()).unwrap()
                } else {
                    client.with_no_client_auth()
                };
                let mut c = rustls::ClientConnection::new(Arc::new(client), "server.test".try_into().unwrap()).unwrap();
                let mut s = rustls::ServerConnection::new(Arc::new(server_config)).unwrap();
                for _ in 0..10 {
                    let mut buf = Vec::new();
                    c.write_tls(&mut buf).unwrap();
                    s.read_tls(&mut &buf[..]).unwrap();
                    s.process_new_packets().unwrap();
                    let mut buf = Vec::new();
                    s.write_tls(&mut buf).unwrap();
                    c.read_tls(&mut &buf[..]).unwrap();
                    c.process_new_packets().unwrap();
                }
                let stored = recorder.0.lock().unwrap();
                assert!(!stored.is_empty(), "{version:?}: rustls stored a session");
                let expected = if with_cert { vec![client_cert.clone()] } else { vec![] };
                for value in stored.iter() {
                    assert_eq!(client_chain(value), Some(expected.clone()), "{version:?}, certificate: {with_cert}");
                }
            }
        }
    }
}
