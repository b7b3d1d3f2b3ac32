//! What request hooks, on any thread, may read of a connection of ours ([`ConnShared`]): HTTP/2
//! streams run on other threads than their connection, so this is kept apart from the state only
//! the connection's own thread touches (`tls_filters::TlsConn`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use httpd::{Conn, Server};

use super::TlsModule;

/// What request-time hooks see of a connection: written once by the connection's own thread,
/// then only read.
#[derive(Default)]
pub struct ConnShared {
    /// Set when the handshake completes, before any request can exist.
    established: OnceLock<Established>,
    /// The client spoke plain HTTP to the TLS port.
    plain_http: AtomicBool,
}

/// What a completed handshake settled.
pub struct Established {
    /// The vhost the handshake ran with (chosen by SNI, or the address's default).
    pub server: Server,
    pub facts: Arc<crate::tls::vars::HandshakeFacts>,
}

impl ConnShared {
    pub fn established(&self) -> Option<&Established> {
        self.established.get()
    }

    /// Records the completed handshake; false if one was recorded already.
    pub fn establish(&self, established: Established) -> bool {
        self.established.set(established).is_ok()
    }

    /// The client spoke plain HTTP to the TLS port.
    pub fn is_plain_http(&self) -> bool {
        self.plain_http.load(Ordering::Acquire)
    }

    pub fn set_plain_http(&self) {
        self.plain_http.store(true, Ordering::Release);
    }
}

/// What any thread may read of connection `c` (its master's, for an HTTP/2 stream), if TLS on it
/// is ours.
pub fn shared(c: Conn) -> Option<&'static ConnShared> {
    c.shared::<TlsModule>()
}

/// The facts of `c`'s completed handshake, from any thread.
pub fn handshake_facts(c: Conn) -> Option<&'static crate::tls::vars::HandshakeFacts> {
    shared(c)?.established().map(|e| &*e.facts)
}
