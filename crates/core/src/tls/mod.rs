//! The TLS floor, in plain Rust over [`crate::conf`]: the rustls server configurations built from a
//! vhost's settings ([`engine`]) with the certificate a client is shown ([`resolver`]), client
//! certificate checks ([`verifiers`]), the settings' fingerprint ([`fingerprint`]), the configs
//! towards proxy backends ([`backend`]), OCSP stapling ([`ocsp`]), certificates and keys
//! ([`certs`]), cipher-suite names ([`ciphers`]), the byte pump between TLS records and plaintext
//! ([`stream`]), sessions over a storage trait ([`sessions`]), the `SSL_*` variable values
//! ([`vars`], [`certvars`]), the status page's figures ([`stats`]), the clock and UTC dates
//! ([`time`]), start-up warnings ([`warning`]), the per-address name index ([`names`]), and the
//! decisions the hooks act on ([`policy`], [`handshake_wait`], [`conn_state`]: a connection's
//! phase and how a failed handshake is counted and logged). Nothing here calls httpd: it is all
//! unit tested, and the module crate (over the `httpd` crate) only gathers facts and acts on the
//! answers.

pub mod backend;
pub mod certs;
pub mod certvars;
mod cipher_table;
pub mod ciphers;
pub mod conn_state;
pub mod engine;
pub mod fingerprint;
pub mod handshake_wait;
pub mod lent_stack;
pub mod names;
pub mod ocsp;
pub mod policy;
pub mod resolver;
pub mod sessions;
pub mod stats;
pub mod stream;
pub mod time;
pub mod vars;
pub mod verifiers;
pub mod warning;
