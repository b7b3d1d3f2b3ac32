//! The settings floor: what the directives hold (with where each was written), how their
//! arguments parse, and how a virtual host inherits from the main server. Plain Rust that imports
//! nothing above it, so all of it is unit tested; the module's directive table (`src/directives.rs`
//! of the `mod_tls` crate, with the names and help of [`directives`]) only moves strings in and
//! typed errors ([`error::ConfError`]) out.
//!
//! One module per concern; everything is re-exported here, so `conf::X` names each of them.

pub mod addr;
pub mod cache;
pub mod cipher_list;
pub mod dir;
pub mod directives;
pub mod error;
pub mod floor;
pub mod hostnames;
pub mod proxy;
pub mod reqtimeout;
pub mod server;

pub use addr::{EngineAddr, VhostAddr, engine_reaches_main_server, engine_reaches_vhost, normalize_ip};
pub use cache::{CacheSpec, DEFAULT_CACHE_ARGS, MAX_SESSION_LIFETIME_SECS, parse_session_lifetime};
pub use cipher_list::CipherList;
pub use dir::{DirConf, OPT_EXPORT_CERT_DATA, OPT_STD_ENV_VARS, TlsOptions};
pub use error::Origin;
pub use floor::{parse_protocol_floor, version_name};
pub use hostnames::{glob_match_ci, host_matches, name_matches};
pub use proxy::{ProxyCa, ProxyConf, ProxyKey};
pub use reqtimeout::reqtimeout_handshake;
pub use server::{CertSpec, Certificates, ClientAuth, ServerConf, SharedList, TlsSettings};

/// A directive value that remembers where it was set (for messages after the config is read).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Located<T> {
    pub value: T,
    pub origin: Origin,
}

/// A list of an inner scope replaces the enclosing scope's, if it has any.
pub(crate) fn inherit<T: Clone>(base: &[T], add: &[T]) -> Vec<T> {
    if add.is_empty() { base.to_vec() } else { add.to_vec() }
}
