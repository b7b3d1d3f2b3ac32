//! mod_tls: TLS 1.2 and 1.3 for Apache httpd through rustls.
//!
//! Layers, top to bottom (see README.md): `module` is the exported `tls_module` record with its
//! directives and hooks; `filters` pump bytes between httpd's bucket brigades and [`stream`];
//! [`engine`] builds the rustls configurations from [`config`]; [`certs`] loads key material.
//! `httpd` holds the raw bindings and the thin safe wrappers over them. Everything that calls into
//! httpd is compiled out of unit tests (those symbols exist only inside the httpd executable) and is
//! tested through the real server in `tests/`.

pub mod certs;
pub mod certvars;
mod cipher_table;
pub mod ciphers;
pub mod config;
pub mod engine;
pub mod handshake_wait;
pub mod stream;
pub mod vars;

#[cfg(all(feature = "httpd", not(test)))]
mod filters;
#[cfg(all(feature = "httpd", not(test)))]
pub mod httpd;
#[cfg(all(feature = "httpd", not(test)))]
mod module;
#[cfg(all(feature = "httpd", not(test)))]
pub mod session;

/// The module's version, as logged at start-up and reported in `SSL_VERSION_INTERFACE`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The rustls version linked in, read from Cargo.lock at build time.
pub const RUSTLS_VERSION: &str = env!("MOD_TLS_RUSTLS_VERSION");
