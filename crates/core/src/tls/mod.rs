//! The TLS floor, in plain Rust over [`crate::conf`]: the rustls server and client configurations
//! built from a vhost's settings ([`engine`]), certificates and keys ([`certs`]), cipher-suite names
//! ([`ciphers`]), the byte pump between TLS records and plaintext ([`stream`]), sessions over a
//! storage trait ([`sessions`]), the `SSL_*` variable values ([`vars`], [`certvars`]), and the
//! decisions the hooks act on ([`policy`], [`handshake_wait`], [`conn_state`]: a connection's
//! phase and how a failed handshake is counted and logged). Nothing here calls httpd: it is all
//! unit tested, and the module crate (over the `httpd` crate) only gathers facts and acts on the
//! answers.

pub mod certs;
pub mod certvars;
mod cipher_table;
pub mod ciphers;
pub mod conn_state;
pub mod engine;
pub mod handshake_wait;
pub mod names;
pub mod policy;
pub mod sessions;
pub mod stats;
pub mod stream;
pub mod vars;

/// Seconds since the epoch now: what certificate dates, session ages and the status page count in.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
