//! mod_tls without httpd: everything the module decides and computes, in plain safe Rust that
//! unit tests reach. [`conf`] holds the directive values (parsing, merging, typed errors); [`tls`]
//! builds the rustls configurations from them and runs connections over them (the byte pump, the
//! vhost choice, certificates, CRLs, sessions, variables, status figures). The module crate
//! (`mod_tls`, the cdylib) wires this to httpd through the `httpd` crate; `mod_tls-migrate` reads
//! directive words, values and suite names from here.

#![forbid(unsafe_code)]

// Test code shared with the integration tests names this crate by its name.
#[cfg(test)]
extern crate self as mod_tls_core;

pub mod conf;
pub mod tls;

/// The module's version, as logged at start-up and reported in `SSL_VERSION_INTERFACE`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The rustls version linked in, read from Cargo.lock at build time.
pub const RUSTLS_VERSION: &str = env!("MOD_TLS_RUSTLS_VERSION");
