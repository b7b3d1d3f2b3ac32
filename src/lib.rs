//! mod_tls: TLS 1.2 and 1.3 for Apache httpd through rustls — the module httpd loads.
//!
//! This crate is the wiring: the exported `tls_module` record with its typed configuration
//! ([`TlsModule`]), its hooks and filters, over the safe handles of the `httpd` crate (the only
//! crate with `unsafe`) and the decisions of `mod_tls_core` (settings and TLS, unit-tested without
//! httpd). One file per concern, as mod_ssl splits its engine:
//!
//! - [`directives`]: the directive table, one row per directive, and what each one sets;
//! - [`startup`]: building and checking everything once per configuration generation
//!   (check_config, post_config: rustls configs, session cache, backend configs, mod_md, OCSP);
//! - [`connection`]: taking connections (pre_connection, mod_proxy's bind_outgoing) and the
//!   handshake step of process_connection; [`conn_view`]: what request threads may read of a
//!   connection;
//! - [`tls_filters`]: the connection filters that pump bytes between httpd and the TLS stream,
//!   and the vhost choice from a ClientHello ([`chooser`]);
//! - [`requests`]: the request hooks (400/421/503, the user name, variables, scheme, status);
//! - [`stores`]: httpd's socache, shared memory and brigades behind the TLS layer's session
//!   store, counters and record sink.

#![forbid(unsafe_code)]
#![allow(non_upper_case_globals)]

mod chooser;
mod conn_view;
mod connection;
mod directives;
mod requests;
mod startup;
mod stores;
#[cfg(feature = "test-hooks")]
mod test_hooks;
mod tls_filters;

// The settings and TLS layer, under the names the module's files use.
use mod_tls_core::{conf, tls};

use std::sync::{Arc, OnceLock};

use crate::conf::{DirConf, ServerConf};
use crate::tls::engine;
use httpd::Server;
use httpd::record::{Module, ModuleRecord};

httpd::export_module!(tls_module, TlsModule, c"mod_tls.c", directives::COMMANDS.list());

/// mod_tls as httpd sees it: its configuration types and hooks.
pub struct TlsModule;

impl Module for TlsModule {
    type Server = ServerSlot;
    type Dir = DirConf;
    type ConnShared = conn_view::ConnShared;
    type ConnLocal = tls_filters::TlsConn;

    fn record() -> &'static ModuleRecord {
        &tls_module
    }

    fn create_server() -> ServerSlot {
        ServerSlot { conf: ServerConf::default(), built: Built::default() }
    }

    fn merge_server(base: &ServerSlot, add: &ServerSlot) -> ServerSlot {
        #[cfg(feature = "test-hooks")]
        crate::test_hooks::panic_in_merge_server();
        ServerSlot { conf: ServerConf::merge(&base.conf, &add.conf), built: Built::default() }
    }

    fn create_dir() -> DirConf {
        DirConf::default()
    }

    fn merge_dir(base: &DirConf, add: &DirConf) -> DirConf {
        DirConf::merge(base, add)
    }

    fn dir_adds_nothing(add: &DirConf) -> bool {
        add.adds_nothing()
    }

    fn register_hooks() {
        use httpd::hooks::{self, Order};
        // Every caught panic is counted on the status page (TLSPanics).
        httpd::observe_panics(|| {
            if let Some(st) = stats() {
                crate::tls::stats::count_panic(st);
            }
        });
        hooks::pre_config(startup::pre_config, Order::Middle);
        hooks::check_config(startup::check_config, Order::Middle);
        hooks::child_init(startup::child_init, Order::Middle);
        hooks::status(requests::status, Order::Middle);
        hooks::test_config(startup::test_config, Order::Middle);
        hooks::post_config(startup::post_config, Order::Middle);
        hooks::pre_connection(connection::pre_connection, Order::Middle);
        hooks::process_connection(connection::process_connection, Order::Middle);
        hooks::pre_close_connection(tls_filters::TlsConn::note_close, Order::Middle);
        hooks::ssl_conn_is_ssl(connection::is_ours, Order::Middle);
        // Before mod_ssl's, which answers HTTPS=off and SSL_VERSION_* for every connection; we
        // answer only for ours.
        hooks::ssl_var_lookup(requests::var_lookup, Order::First);
        hooks::ssl_bind_outgoing(connection::bind_outgoing, Order::Middle);
        hooks::ssl_expr_vars(Order::First);
        hooks::post_read_request(requests::post_read_request, Order::Middle);
        hooks::https_scheme(requests::is_ours, Order::Middle);
        hooks::fixups(requests::fixups, Order::Middle);
        tls_filters::register();
    }
}

/// What a server's module-config slot holds: the directive values, and apart from them what
/// start-up builds from them for this configuration generation (so merging copies only values).
pub struct ServerSlot {
    pub conf: ServerConf,
    pub built: Built,
}

/// What start-up builds for one server, once per configuration generation. Each reading of the
/// configuration makes fresh server slots, so each of these is settled once (by check_config or
/// post_config, single-threaded) and only read afterwards, from any thread.
#[derive(Default)]
pub struct Built {
    /// mod_reqtimeout bounds this server's handshakes (`RequestReadTimeout handshake=N`): they then
    /// run blocking, where its timer applies, instead of waiting in the event MPM.
    reqtimeout_handshake: OnceLock<bool>,
    /// No TLSCertificate, but mod_md is loaded: the certificate is asked for in post_config.
    md_deferred: OnceLock<bool>,
    /// What only the main server has: made for it alone, so that each vhost's two slots (its own
    /// and the merged one) do not carry it.
    main: OnceLock<Box<MainBuilt>>,
    /// The vhost's rustls configs, for servers that TLSEngine connections can reach.
    tls: OnceLock<Arc<engine::VhostTls>>,
    /// The same with mod_md's certificate, where mod_md manages the server's name (asked first,
    /// in post_config, as the C module does): it replaces `tls`.
    managed_tls: OnceLock<Arc<engine::VhostTls>>,
}

/// What start-up builds for the main server only (see [`Built::main_only`]).
#[derive(Default)]
pub struct MainBuilt {
    /// Backend client configs built for this generation.
    proxy_cache: OnceLock<Arc<crate::tls::backend::ProxyCache>>,
    /// The cache opened for this configuration generation.
    session_cache: OnceLock<Arc<stores::SocacheSessions>>,
    /// What check_config found that does not stop start-up, with its log level: logged in
    /// post_config, once the error log is open (see `startup::note_at_start`).
    start_notes: std::sync::Mutex<Vec<(std::ffi::c_int, String)>>,
    /// The status page's counters, in memory all children of the generation share (main server
    /// only).
    stats: OnceLock<stores::ShmCounters>,
    /// Each address's vhosts by name (main server only), made in each child at the first
    /// handshake on the address (see [`vhost_named`]).
    name_indexes: std::sync::RwLock<std::collections::HashMap<usize, Arc<crate::tls::names::NameIndex<Server>>>>,
    /// Every certificate of every vhost in the status page's order, with its expiry (main server
    /// only): its server, its place in the vhost's list, notAfter. Read in each child at the
    /// page's first request and kept here, in one allocation of the child's own, not beside each
    /// vhost's configuration: writing there would copy a page the parent shares for every vhost
    /// (13 MB per child at 10,000 vhosts).
    status_certificates: OnceLock<Box<[StatusCertificate]>>,
    /// How many vhost configurations start-up built: each has its place (`VhostTls::slot`) in
    /// `in_process`.
    vhost_slots: std::sync::atomic::AtomicU32,
    /// What this process made for each vhost configuration at its first handshake here (see
    /// [`engine::VhostInProcess`]), in memory of its own: made in each child at its first
    /// handshake, with a place for every vhost configuration. What it holds borrows from the
    /// vhosts' `VhostTls` of the same generation (the certificates' bytes); it is dropped with
    /// the generation, possibly after some of them (the slots go in the configuration pool's
    /// order), which dropping it allows: dropping reads none of those bytes.
    in_process: OnceLock<Box<[OnceLock<Box<engine::VhostInProcess>>]>>,
    /// The certificates this process copied for several vhost configurations at once (see
    /// [`tls::certs::CopiesInProcess`]), dropped with `in_process`.
    copies_in_process: tls::certs::CopiesInProcess,
}

impl MainBuilt {
    /// The place of the next vhost configuration start-up builds.
    pub fn next_vhost_slot(&self) -> u32 {
        self.vhost_slots.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

/// A vhost configuration's [`engine::VhostInProcess`]: the one this process keeps, or, for a
/// configuration without a place (none is expected), one made for the handshake.
pub enum InProcess {
    Kept(&'static engine::VhostInProcess),
    Made(Box<engine::VhostInProcess>),
}

impl std::ops::Deref for InProcess {
    type Target = engine::VhostInProcess;
    fn deref(&self) -> &engine::VhostInProcess {
        match self {
            InProcess::Kept(v) => v,
            InProcess::Made(v) => v,
        }
    }
}

/// What this process has made for `tls` (the configuration of `server`), made at its first
/// handshake here.
fn in_this_process(server: Server, tls: &'static engine::VhostTls) -> InProcess {
    let main = built(Server::main()).main_only();
    let places = main.in_process.get_or_init(|| {
        let n = main.vhost_slots.load(std::sync::atomic::Ordering::Relaxed);
        (0..n).map(|_| OnceLock::new()).collect()
    });
    let make = || {
        let factory = main.session_cache.get().map(|cache| tls::sessions::VhostSessions::factory(cache.clone()));
        let (here, problems) = tls
            .in_this_process(factory.as_ref().map(|f| f as engine::SessionStorageFactory<'_>), &main.copies_in_process);
        for problem in problems {
            httpd::log_server!(server, httpd::log::ERR, 0, "mod_tls: {}: {problem}", server.describe());
        }
        Box::new(here)
    };
    match places.get(tls.slot as usize) {
        Some(place) => InProcess::Kept(place.get_or_init(make)),
        None => InProcess::Made(make()),
    }
}

impl Built {
    pub fn reqtimeout_handshake(&self) -> bool {
        self.reqtimeout_handshake.get() == Some(&true)
    }

    pub fn md_deferred(&self) -> bool {
        self.md_deferred.get() == Some(&true)
    }

    pub fn proxy_cache(&self) -> Option<&Arc<crate::tls::backend::ProxyCache>> {
        self.main.get()?.proxy_cache.get()
    }

    pub fn session_cache(&self) -> Option<&Arc<stores::SocacheSessions>> {
        self.main.get()?.session_cache.get()
    }

    /// The main server's own products (made at the first use; only asked of the main server).
    pub fn main_only(&self) -> &MainBuilt {
        self.main.get_or_init(Default::default)
    }

    pub fn tls(&self) -> Option<&Arc<engine::VhostTls>> {
        self.managed_tls.get().or(self.tls.get())
    }
}

/// A certificate the status page covers: its server, its place in the vhost's list, and when it
/// expires (notAfter, seconds since the epoch; None: unreadable).
type StatusCertificate = (Server, u32, Option<i64>);

/// The status page's counters of the running generation, if they could be made.
fn stats() -> Option<&'static stores::ShmCounters> {
    built(Server::main()).main_only().stats.get()
}

/// The vhost of `c`'s address that `host` (an SNI) names: the first in configuration order whose
/// names match, as httpd's walk of the address's vhosts finds it, in constant time; and whether
/// it owns its names (see `NameIndex::find_owner`). Each address's index is made once per child,
/// at its first handshake (the walk, once).
fn vhost_named(c: httpd::Conn, host: &str) -> Option<(Server, bool)> {
    let Some(list) = c.address_vhost_list() else {
        // One vhost on the address: nothing to index (and no walk to spare).
        let s = c.base_server();
        return has_name(s, host).then_some((s, false));
    };
    let indexes = &built(Server::main()).main_only().name_indexes;
    let known = indexes.read().unwrap_or_else(|e| e.into_inner()).get(&list.get()).cloned();
    let index = known.unwrap_or_else(|| {
        let made = Arc::new(crate::tls::names::NameIndex::new(c.address_vhosts(), |s, each| s.each_name(each)));
        indexes.write().unwrap_or_else(|e| e.into_inner()).entry(list.get()).or_insert(made).clone()
    });
    index.find_owner(host, |s| has_name(s, host))
}

/// Whether `host` names server `s` (ServerName, ServerAlias, wildcard aliases), as httpd matches;
/// asked at every SNI lookup, so the names are read where they are, not copied.
fn has_name(s: Server, host: &str) -> bool {
    let mut named = false;
    s.each_name(|name, wild| named |= crate::conf::name_matches(host, name, wild));
    named
}

/// The `<VirtualHost>` addresses of `s` (empty for the main server).
fn vhost_addrs(s: Server) -> Vec<conf::VhostAddr> {
    s.vhost_addrs().into_iter().map(|(ip, port)| conf::VhostAddr { ip, port }).collect()
}

/// Settles one product of start-up (see [`Built`]): a second value for the same slot would be a
/// bug in start-up's order, and the first one stays.
fn settle<T>(cell: &OnceLock<T>, value: T) {
    let settled = cell.set(value).is_ok();
    debug_assert!(settled, "a start-up product was built twice");
}

/// The directive values of server `s` (merged for vhosts), read-only after start-up.
fn conf(s: Server) -> &'static ServerConf {
    &s.config::<TlsModule>().conf
}

/// What start-up built for server `s`, read-only after start-up.
fn built(s: Server) -> &'static Built {
    &s.config::<TlsModule>().built
}
