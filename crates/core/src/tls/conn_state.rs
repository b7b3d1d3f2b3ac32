//! A connection's life as the module tracks it — handshaking, established, closed — and the two
//! decisions a failure needs: what the status page counts for a handshake that did not complete
//! (once per connection, whichever way it ended) and how loudly the failure is logged. Plain
//! values: the connection filters report what happened and act on the answers.

use rustls::AlertDescription;

use crate::tls::stats::Failure;
use crate::tls::stream::TlsFailure;

/// Which end of the TLS connection we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A client's connection to us.
    Server,
    /// Ours to a proxy backend.
    Backend,
}

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The handshake runs (or has not started).
    Handshaking,
    /// The handshake completed and the module acted on it (protocol switch, snapshot).
    Established,
    /// Nothing more goes out: the connection ended (EOC) or failed.
    Closed {
        /// It had been established before.
        was_established: bool,
    },
}

/// What the status page counts for a handshake that did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    /// A client's handshake failed, for this reason.
    Failed(Failure),
    /// Our handshake with a backend failed.
    BackendFailed,
}

/// How loudly a failure is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loudness {
    /// A client that left before its handshake: routine.
    Debug,
    /// A client's own failure: the client's business, not the administrator's.
    Info,
    /// A handshake we refused by policy (`TLSStrictSNI`, AH10353): the administrator's business.
    Warning,
    /// A backend's failure: why the proxy answers 500, as with mod_ssl.
    Error,
}

/// How the network ended a read or write (not a TLS failure, which [`ConnState::tls_failed`]
/// takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkEnd {
    /// The time ran out (httpd's `Timeout`, mod_reqtimeout).
    TimedOut,
    /// A reset, or another error of the network or of the filters below.
    Failed,
}

/// A connection's state, one per TLS connection.
#[derive(Debug)]
pub struct ConnState {
    side: Side,
    phase: Phase,
    /// The handshake's outcome is settled: counted (success or failure), or deliberately not.
    settled: bool,
    /// TLS bytes received (whether the client said anything before it left).
    bytes_in: usize,
}

impl ConnState {
    pub fn new(side: Side) -> ConnState {
        ConnState { side, phase: Phase::Handshaking, settled: false, bytes_in: 0 }
    }

    pub fn side(&self) -> Side {
        self.side
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed { .. })
    }

    pub fn is_established(&self) -> bool {
        self.phase == Phase::Established
    }

    /// Established now or before it closed.
    pub fn was_established(&self) -> bool {
        matches!(self.phase, Phase::Established | Phase::Closed { was_established: true })
    }

    /// `n` TLS bytes came from the peer.
    pub fn received(&mut self, n: usize) {
        self.bytes_in = self.bytes_in.saturating_add(n);
    }

    /// The handshake completed: true the first time (the caller counts it and acts on it), false
    /// when the connection is already established or closed.
    pub fn establish(&mut self) -> bool {
        if self.phase != Phase::Handshaking {
            return false;
        }
        self.phase = Phase::Established;
        self.settled = true;
        true
    }

    /// Nothing more goes out (EOC, or an error already handled). Settles nothing: a handshake
    /// that never completed is still counted by what ends the connection.
    pub fn close(&mut self) {
        self.phase = Phase::Closed { was_established: self.was_established() };
    }

    /// A TLS failure closes the connection. Returns what to count: only for a handshake that had
    /// neither completed (also not in the same read, `completed_in_same_read`) nor been counted.
    pub fn tls_failed(&mut self, failure: &TlsFailure, completed_in_same_read: bool) -> Option<Tally> {
        let counts = self.phase == Phase::Handshaking && !self.settled && !completed_in_same_read;
        self.close();
        if !counts {
            return None;
        }
        self.settled = true;
        classify_failure(self.side, failure, self.bytes_in)
    }

    /// A read or write ended with an error of the network or of the filters below, during the
    /// handshake: what to count (once). The connection stays as it is: httpd closes it.
    pub fn network_ended(&mut self, end: NetworkEnd) -> Option<Tally> {
        if self.settled || self.was_established() {
            return None;
        }
        self.settled = true;
        match (self.side, end) {
            (Side::Backend, _) => Some(Tally::BackendFailed),
            (Side::Server, NetworkEnd::TimedOut) => Some(Tally::Failed(Failure::Timeout)),
            (Side::Server, NetworkEnd::Failed) if self.bytes_in > 0 => Some(Tally::Failed(Failure::ClientClosed)),
            (Side::Server, NetworkEnd::Failed) => None,
        }
    }

    /// The client spoke plain HTTP to the TLS port (httpd answers it with a 400): counted once.
    pub fn plain_http(&mut self) -> Option<Tally> {
        if self.settled {
            return None;
        }
        self.settled = true;
        Some(Tally::Failed(Failure::PlainHttp))
    }

    /// The connection is being closed: a client's handshake that ended with neither success nor
    /// a failure of its own ran out of time (the MPM, httpd's `Timeout` or mod_reqtimeout closed
    /// the connection first).
    pub fn closing(&mut self) -> Option<Tally> {
        if self.settled || self.was_established() || self.side != Side::Server {
            return None;
        }
        self.settled = true;
        Some(Tally::Failed(Failure::Timeout))
    }
}

/// What a failed handshake counts as. A client that leaves before its hello is no failed
/// handshake; after it, it walked away from ours (perhaps refusing our certificate without an
/// alert).
pub fn classify_failure(side: Side, failure: &TlsFailure, bytes_in: usize) -> Option<Tally> {
    Some(match (side, failure) {
        (Side::Backend, _) => Tally::BackendFailed,
        (Side::Server, TlsFailure::Closed) if bytes_in == 0 => return None,
        (Side::Server, TlsFailure::Closed) => Tally::Failed(Failure::ClientClosed),
        (Side::Server, TlsFailure::Refused(r)) if r.alert == AlertDescription::UnrecognisedName => {
            Tally::Failed(Failure::SniRefused)
        }
        (Side::Server, TlsFailure::Refused(_)) => Tally::Failed(Failure::AlertSent),
        (Side::Server, TlsFailure::Protocol(e)) => Tally::Failed(Failure::of_error(e)),
        // The stream's own conditions (an oversized message, early data, an unreadable hello,
        // a failed encryption): we sent the alert.
        (Side::Server, _) => Tally::Failed(Failure::AlertSent),
    })
}

/// How loudly a failure is logged (see [`Loudness`]).
pub fn loudness(side: Side, failure: &TlsFailure) -> Loudness {
    match (side, failure) {
        (Side::Backend, _) => Loudness::Error,
        (Side::Server, TlsFailure::Closed) => Loudness::Debug,
        (Side::Server, TlsFailure::Refused(_)) => Loudness::Warning,
        (Side::Server, _) => Loudness::Info,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::stream::Refusal;

    fn refused(alert: AlertDescription) -> TlsFailure {
        TlsFailure::Refused(Refusal { alert, reason: "policy".into() })
    }

    fn protocol() -> TlsFailure {
        TlsFailure::Protocol(rustls::Error::AlertReceived(AlertDescription::BadCertificate))
    }

    #[test]
    fn a_completed_handshake_counts_no_failure_whatever_follows() {
        let mut s = ConnState::new(Side::Server);
        s.received(300);
        assert!(s.establish());
        assert!(!s.establish(), "established once");
        assert_eq!(s.tls_failed(&protocol(), false), None);
        assert!(s.is_closed() && s.was_established());
        assert_eq!(s.network_ended(NetworkEnd::TimedOut), None);
        assert_eq!(s.closing(), None);
    }

    #[test]
    fn a_failed_handshake_is_counted_once_whatever_follows() {
        let mut s = ConnState::new(Side::Server);
        s.received(300);
        assert_eq!(
            s.tls_failed(&refused(AlertDescription::UnrecognisedName), false),
            Some(Tally::Failed(Failure::SniRefused))
        );
        assert!(s.is_closed() && !s.was_established());
        assert_eq!(s.tls_failed(&protocol(), false), None);
        assert_eq!(s.network_ended(NetworkEnd::TimedOut), None);
        assert_eq!(s.closing(), None);
        assert!(!s.establish(), "a closed connection is not established");
    }

    #[test]
    fn a_failure_in_the_read_that_completed_the_handshake_is_no_failed_handshake() {
        let mut s = ConnState::new(Side::Server);
        s.received(300);
        assert_eq!(s.tls_failed(&protocol(), true), None);
        assert!(s.is_closed());
    }

    #[test]
    fn failures_are_classified_by_what_the_client_did() {
        let server = |f: &TlsFailure, bytes| classify_failure(Side::Server, f, bytes);
        assert_eq!(server(&TlsFailure::Closed, 0), None, "left before its hello");
        assert_eq!(server(&TlsFailure::Closed, 5), Some(Tally::Failed(Failure::ClientClosed)));
        assert_eq!(server(&refused(AlertDescription::UnrecognisedName), 5), Some(Tally::Failed(Failure::SniRefused)));
        assert_eq!(server(&refused(AlertDescription::HandshakeFailure), 5), Some(Tally::Failed(Failure::AlertSent)));
        assert_eq!(server(&protocol(), 5), Some(Tally::Failed(Failure::AlertReceived)));
        assert_eq!(server(&TlsFailure::Oversized, 5), Some(Tally::Failed(Failure::AlertSent)));
        assert_eq!(classify_failure(Side::Backend, &TlsFailure::Closed, 0), Some(Tally::BackendFailed));
    }

    #[test]
    fn the_network_ending_a_handshake_counts_a_timeout_or_a_walk_away() {
        let mut s = ConnState::new(Side::Server);
        s.received(10);
        assert_eq!(s.network_ended(NetworkEnd::TimedOut), Some(Tally::Failed(Failure::Timeout)));
        assert_eq!(s.closing(), None, "counted once");

        let mut s = ConnState::new(Side::Server);
        s.received(10);
        assert_eq!(s.network_ended(NetworkEnd::Failed), Some(Tally::Failed(Failure::ClientClosed)));

        let mut silent = ConnState::new(Side::Server);
        assert_eq!(silent.network_ended(NetworkEnd::Failed), None, "a client that said nothing");
        assert_eq!(silent.closing(), None, "settled: not a timeout either");

        let mut backend = ConnState::new(Side::Backend);
        assert_eq!(backend.network_ended(NetworkEnd::Failed), Some(Tally::BackendFailed));
    }

    #[test]
    fn a_handshake_still_open_at_close_ran_out_of_time() {
        let mut s = ConnState::new(Side::Server);
        s.received(10);
        assert_eq!(s.closing(), Some(Tally::Failed(Failure::Timeout)));
        assert_eq!(s.closing(), None);
        // Closing ourselves (EOC, a handled error) settles nothing.
        let mut s = ConnState::new(Side::Server);
        s.close();
        assert_eq!(s.closing(), Some(Tally::Failed(Failure::Timeout)));
        assert_eq!(ConnState::new(Side::Backend).closing(), None, "backends are counted by their own errors");
    }

    #[test]
    fn plain_http_is_counted_once_and_never_as_a_timeout() {
        let mut s = ConnState::new(Side::Server);
        s.received(20);
        assert_eq!(s.plain_http(), Some(Tally::Failed(Failure::PlainHttp)));
        assert_eq!(s.plain_http(), None);
        assert_eq!(s.closing(), None);
        assert!(!s.was_established());
    }

    #[test]
    fn refusals_by_policy_are_the_administrators_business() {
        assert_eq!(loudness(Side::Server, &TlsFailure::Closed), Loudness::Debug);
        assert_eq!(loudness(Side::Server, &refused(AlertDescription::UnrecognisedName)), Loudness::Warning);
        assert_eq!(loudness(Side::Server, &protocol()), Loudness::Info);
        assert_eq!(loudness(Side::Backend, &TlsFailure::Closed), Loudness::Error);
    }
}
