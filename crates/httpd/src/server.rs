//! Servers (`server_rec`: the main server and each `<VirtualHost>`) as a typed handle, and the
//! address and name questions the module asks of them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ptr::NonNull;

use crate::record::Module;
use crate::{Pool, cstr, sys};

/// A server record. httpd creates them while reading the configuration and only reads them
/// afterwards, for the whole configuration generation: a handle stays valid that long, and may be
/// read from any thread once start-up is over.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Server(NonNull<sys::server_rec>);

// SAFETY: server records are immutable after start-up (see above); during start-up only httpd's
// single configuration thread exists.
unsafe impl Send for Server {}
unsafe impl Sync for Server {}

impl Server {
    /// # Safety
    /// `s` must be NULL or a server record of the current configuration generation.
    pub(crate) unsafe fn from_raw(s: *const sys::server_rec) -> Option<Server> {
        NonNull::new(s as *mut sys::server_rec).map(Server)
    }

    pub(crate) fn as_ptr(self) -> *mut sys::server_rec {
        self.0.as_ptr()
    }

    fn rec(&self) -> &sys::server_rec {
        // SAFETY: valid for the generation (type invariant); httpd no longer writes it.
        unsafe { self.0.as_ref() }
    }

    /// The main server of the running configuration (`ap_server_conf`).
    pub fn main() -> Server {
        // SAFETY: set by httpd before any module hook runs that could ask.
        unsafe { Server::from_raw(sys::ap_server_conf) }.expect("ap_server_conf is set once httpd runs")
    }

    /// This server and every one configured after it: from the main server, all of them in
    /// configuration order.
    pub fn and_following(self) -> impl Iterator<Item = Server> {
        let mut next = Some(self);
        std::iter::from_fn(move || {
            let s = next?;
            // SAFETY: `next` links server records of the same generation.
            next = unsafe { Server::from_raw(s.rec().next) };
            Some(s)
        })
    }

    pub fn is_virtual(self) -> bool {
        self.rec().is_virtual != 0
    }

    /// `ServerName` (empty when not set).
    pub fn hostname(self) -> String {
        // SAFETY: a C string of the server record, or NULL.
        unsafe { cstr(self.rec().server_hostname) }.into_owned()
    }

    pub fn port(self) -> u16 {
        self.rec().port
    }

    /// `ServerPath`, if set.
    pub fn server_path(self) -> Option<String> {
        let path = self.rec().path;
        // SAFETY: a C string of the server record.
        (!path.is_null()).then(|| unsafe { cstr(path) }.into_owned())
    }

    /// Where its `<VirtualHost>` was written (file, line); for the main server, whatever httpd
    /// recorded (no vhost).
    pub fn defined_at(self) -> (String, i32) {
        // SAFETY: a C string of the server record, or NULL.
        (unsafe { cstr(self.rec().defn_name) }.into_owned(), self.rec().defn_line_number as i32)
    }

    /// A human name for messages: "<VirtualHost> name (file:line)" or "the main server".
    pub fn describe(self) -> String {
        if !self.is_virtual() {
            return "the main server".to_string();
        }
        let name = self.hostname();
        let (file, line) = self.defined_at();
        format!("<VirtualHost> {} ({file}:{line})", if name.is_empty() { "(no ServerName)" } else { &name })
    }

    /// The `<VirtualHost>` addresses (empty for the main server): the IP (None for `*`) and port
    /// (0 for any).
    pub fn vhost_addrs(self) -> Vec<(Option<std::net::IpAddr>, u16)> {
        let mut out = Vec::new();
        if !self.is_virtual() {
            return out;
        }
        let mut a = self.rec().addrs;
        while !a.is_null() {
            // SAFETY: the server's address list, of the same generation.
            unsafe {
                let ip = socket_addr((*a).host_addr).map(|sa| sa.ip()).filter(|ip| !ip.is_unspecified());
                out.push((ip, (*a).host_port));
                a = (*a).next;
            }
        }
        out
    }

    /// Each of its names, without copying them: `f` gets the ServerName and the ServerAlias
    /// names with `false`, the wildcard aliases with `true`.
    pub fn each_name(self, mut f: impl FnMut(&str, bool)) {
        // SAFETY: C strings (or NULL) and arrays of C strings (or NULL) of the server record,
        // of the same generation, read for the duration of the call.
        unsafe {
            f(&cstr(self.rec().server_hostname), false);
            for (arr, wild) in [(self.rec().names, false), (self.rec().wild_names, true)] {
                c_strings(arr).for_each(|name| f(&name, wild));
            }
        }
    }

    /// The process pool: lives across configuration reloads (start-up only: see `Startup`).
    pub(crate) fn process_pool(self) -> Pool {
        // SAFETY: the process record outlives every configuration.
        unsafe { Pool::from_raw((*self.rec().process).pool) }
    }

    /// This server's configuration of module `M` (merged for vhosts once httpd has merged them).
    pub fn config<M: Module>(self) -> &'static M::Server {
        // A missing configuration is refused at start-up (see `try_config`); should one ever be
        // missing later, this panics inside the hook's panic boundary, which fails closed.
        self.try_config::<M>().expect("this server's mod_tls configuration is missing (a panic while creating it)")
    }

    /// Module `M`'s configuration of this server, or None when creating or merging it panicked
    /// (the callback then returns NULL, and start-up must refuse to go on).
    pub fn try_config<M: Module>(self) -> Option<&'static M::Server> {
        // SAFETY: our slot in the vector holds what `M::create_server`/`merge_server` made (see
        // `record`), or NULL after a panic there; owned by the configuration pool, which outlives
        // the generation's hooks.
        unsafe {
            (sys::ap_get_module_config(self.rec().module_config, M::record().as_ptr()) as *const M::Server).as_ref()
        }
    }

    /// The server's directory defaults for module `M` (what applies outside any section).
    pub fn dir_defaults<M: Module>(self) -> &'static M::Dir {
        // SAFETY: as `try_config`, for the per-directory vector (made by `M::create_dir`/`merge_dir`).
        unsafe {
            (sys::ap_get_module_config(self.rec().lookup_defaults, M::record().as_ptr()) as *const M::Dir).as_ref()
        }
        .expect("this server's mod_tls directory defaults are missing (a panic while creating them)")
    }
}

/// The IP and port of an APR socket address.
///
/// # Safety
/// `sa` must be NULL or a valid apr_sockaddr_t.
pub(crate) unsafe fn socket_addr(sa: *const sys::apr_sockaddr_t) -> Option<SocketAddr> {
    if sa.is_null() {
        return None;
    }
    unsafe {
        let sa = &*sa;
        let ip = match (sa.family, sa.ipaddr_len) {
            (libc::AF_INET, 4) => {
                let b = std::slice::from_raw_parts(sa.ipaddr_ptr as *const u8, 4);
                IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            }
            (libc::AF_INET6, 16) => {
                let mut b = [0u8; 16];
                b.copy_from_slice(std::slice::from_raw_parts(sa.ipaddr_ptr as *const u8, 16));
                IpAddr::V6(Ipv6Addr::from(b))
            }
            _ => return None,
        };
        Some(SocketAddr::new(ip, sa.port))
    }
}

/// The addresses the `Listen` directives of the configuration being read name (parsed by httpd,
/// not yet opened, in check_config).
pub fn listen_addrs() -> Vec<SocketAddr> {
    let mut out = Vec::new();
    // SAFETY: ap_listeners is the list the Listen directives built for this configuration.
    unsafe {
        let mut l = sys::ap_listeners;
        while !l.is_null() {
            if let Some(sa) = socket_addr((*l).bind_addr) {
                out.push(sa);
            }
            l = (*l).next;
        }
    }
    out
}

/// Strings of an APR array of `char *`.
///
/// # Safety
/// `arr` must be NULL or an array whose elements are C strings.
pub(crate) unsafe fn string_array(arr: *const sys::apr_array_header_t) -> Vec<String> {
    // SAFETY: as the caller promises.
    unsafe { c_strings(arr) }.map(std::borrow::Cow::into_owned).collect()
}

/// The strings of an APR array of `char *`, borrowed.
///
/// # Safety
/// `arr` must be NULL or an array whose elements are C strings, which outlive the iteration.
unsafe fn c_strings<'a>(arr: *const sys::apr_array_header_t) -> impl Iterator<Item = std::borrow::Cow<'a, str>> {
    // SAFETY: a NULL array is none; otherwise `nelts` elements, each a C string.
    let (elts, n) = match unsafe { arr.as_ref() } {
        Some(a) => (a.elts as *const *const std::ffi::c_char, a.nelts.max(0) as usize),
        None => (std::ptr::null(), 0),
    };
    // SAFETY: `i` < `n`, within the array.
    (0..n).map(move |i| unsafe { cstr(*elts.add(i)) })
}

/// Every `name` directive in the configuration tree with its arguments, and the `<VirtualHost>`
/// (file, line) it is written in, if any (read in check_config: httpd keeps the tree until then).
pub fn directives_named(name: &str) -> Vec<(String, Option<(String, i32)>)> {
    /// # Safety
    /// `node` must be NULL or a node of httpd's configuration tree.
    unsafe fn walk(
        node: *const sys::ap_directive_t,
        name: &str,
        vhost: Option<(String, i32)>,
        out: &mut Vec<(String, Option<(String, i32)>)>,
    ) {
        let mut n = node;
        while !n.is_null() {
            unsafe {
                let directive = cstr((*n).directive);
                if directive.eq_ignore_ascii_case(name) {
                    out.push((cstr((*n).args).into_owned(), vhost.clone()));
                }
                let child_vhost = if directive.eq_ignore_ascii_case("<VirtualHost") {
                    Some((cstr((*n).filename).into_owned(), (*n).line_num))
                } else {
                    vhost.clone()
                };
                walk((*n).first_child, name, child_vhost, out);
                n = (*n).next;
            }
        }
    }
    let mut found = Vec::new();
    // SAFETY: ap_conftree is the tree httpd has just read (or NULL).
    unsafe { walk(sys::ap_conftree, name, None, &mut found) };
    found
}
