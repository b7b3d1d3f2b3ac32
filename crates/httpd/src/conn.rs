//! Connections (`conn_rec`) as a typed handle: what the module reads and sets on them, the
//! module's per-connection slot, protocol negotiation (`Protocols`, mod_http2), name-based vhost
//! lookup, and the socket questions (RTT, readability) the handshake asks.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::net::SocketAddr;
use std::ptr::NonNull;

use crate::brigade::Brigade;
use crate::record::{ConnSlot, Module};
use crate::server::socket_addr;
use crate::{APR_ECONNABORTED, Pool, Server, Status, catch_panic, cstr, read_type, sys};

/// A connection httpd passed to a hook or filter: a client's, one of ours to a proxy backend, or
/// an HTTP/2 stream's secondary connection. Valid until the connection's pool is cleared, which
/// also drops the module's per-connection state (the only place handles are kept). Not `Send`:
/// a connection's own state is only touched on the thread that serves it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Conn(NonNull<sys::conn_rec>);

impl Conn {
    /// # Safety
    /// `c` must be NULL or a live connection, used on the thread httpd called us on.
    pub(crate) unsafe fn from_raw(c: *const sys::conn_rec) -> Option<Conn> {
        NonNull::new(c as *mut sys::conn_rec).map(Conn)
    }

    pub(crate) fn as_ptr(self) -> *mut sys::conn_rec {
        self.0.as_ptr()
    }

    /// The record, for reading a field (httpd changes some of them between our calls, so no
    /// reference to it is kept).
    fn rec(&self) -> &sys::conn_rec {
        // SAFETY: live (type invariant); nothing writes it while we read on its thread.
        unsafe { self.0.as_ref() }
    }

    fn rec_mut(self) -> *mut sys::conn_rec {
        self.0.as_ptr()
    }

    /// An HTTP/2 stream's connection (it rides on a master connection, on another thread).
    pub fn is_secondary(self) -> bool {
        !self.rec().master.is_null()
    }

    /// A connection httpd makes to a backend (mod_proxy).
    pub fn is_outgoing(self) -> bool {
        self.rec().outgoing != 0
    }

    /// The server of the address the connection came in on (its default vhost).
    pub fn base_server(self) -> Server {
        // SAFETY: httpd sets it before any connection hook.
        unsafe { Server::from_raw(self.rec().base_server) }.expect("a connection has a base server")
    }

    pub fn local_addr(self) -> Option<SocketAddr> {
        // SAFETY: the connection's own address record, or NULL.
        unsafe { socket_addr(self.rec().local_addr) }
    }

    pub fn client_ip(self) -> String {
        // SAFETY: a C string of the record.
        unsafe { cstr(self.rec().client_ip) }.into_owned()
    }

    /// Marks the connection aborted: httpd processes nothing more on it and closes it.
    pub fn abort(self) {
        // SAFETY: live; our thread.
        unsafe { (*self.rec_mut()).aborted = 1 };
    }

    pub fn is_aborted(self) -> bool {
        self.rec().aborted != 0
    }

    /// httpd serves no further request on it after the current one.
    pub fn close_after_request(self) {
        // SAFETY: live; our thread.
        unsafe { (*self.rec_mut()).keepalive = sys::ap_conn_keepalive_e_AP_CONN_CLOSE };
    }

    pub fn closes_after_request(self) -> bool {
        self.rec().keepalive == sys::ap_conn_keepalive_e_AP_CONN_CLOSE
    }

    /// A note another module set on the connection (mod_proxy's `proxy-request-hostname`, …).
    pub fn note(self, key: &CStr) -> Option<String> {
        // SAFETY: the connection's notes table; a C string key.
        let v = unsafe { sys::apr_table_get(self.rec().notes, key.as_ptr()) };
        // SAFETY: a C string in the table.
        (!v.is_null()).then(|| unsafe { cstr(v) }.into_owned())
    }

    /// Sets a note on the connection for other modules (a constant value: no copy needed).
    pub fn set_note(self, key: &'static CStr, value: &'static CStr) {
        // SAFETY: the connection's notes table; both strings live for the whole process.
        unsafe { sys::apr_table_setn(self.rec().notes, key.as_ptr(), value.as_ptr()) };
    }

    pub fn pool(self) -> Pool {
        // SAFETY: the connection's pool lives as long as the connection.
        unsafe { Pool::from_raw(self.rec().pool) }
    }

    /// An empty brigade of the connection, living as long as it.
    pub fn new_brigade(self) -> Brigade<'static> {
        // SAFETY: the connection's pool and bucket allocator.
        unsafe { Brigade::create(self.rec().pool, self.rec().bucket_alloc) }
    }

    fn slot<M: Module>(self) -> Option<&'static ConnSlot<M>> {
        // SAFETY: our slot holds NULL or what `attach::<M>` stored, owned by the connection's pool.
        unsafe {
            let p = sys::ap_get_module_config(self.rec().conn_config, M::record().as_ptr()) as *const ConnSlot<M>;
            p.as_ref()
        }
    }

    /// Module `M`'s state of this connection that any thread may read; an HTTP/2 stream's is
    /// its master connection's.
    pub fn shared<M: Module>(self) -> Option<&'static M::ConnShared> {
        let c = match NonNull::new(self.rec().master) {
            Some(master) => Conn(master),
            None => self,
        };
        c.slot::<M>().map(|s| &s.shared)
    }

    /// Module `M`'s state of this connection that only its own thread uses; none for HTTP/2
    /// streams, which run on other threads.
    pub fn local<M: Module>(self) -> Option<&'static RefCell<M::ConnLocal>> {
        if self.is_secondary() {
            return None;
        }
        self.slot::<M>().map(|s| &s.local)
    }

    /// Gives the connection module `M`'s state, owned by the connection's pool.
    pub fn attach<M: Module>(self, shared: M::ConnShared, local: M::ConnLocal) -> &'static ConnSlot<M> {
        let slot = self.pool().attach(ConnSlot::<M> { shared, local: RefCell::new(local) });
        // SAFETY: our slot of the connection's config vector; the pointer lives as long as it.
        unsafe {
            sys::ap_set_module_config(self.rec().conn_config, M::record().as_ptr(), slot.cast());
            &*slot
        }
    }

    /// One read through the whole input filter chain in AP_MODE_INIT: what process_connection
    /// does to run a handshake through the filters (mod_reqtimeout's included).
    pub fn read_init(self, bb: Brigade<'_>, block: bool) -> Status {
        // SAFETY: the connection's filter chain and a brigade of it.
        Status::from(unsafe {
            sys::ap_get_brigade(
                self.rec().input_filters,
                bb.as_ptr(),
                sys::ap_input_mode_t_AP_MODE_INIT,
                read_type(block),
                0,
            )
        })
    }

    /// Whether the MPM gave the connection an async state (event), so it can wait for it.
    pub fn has_async_state(self) -> bool {
        !self.rec().cs.is_null()
    }

    /// Hands the connection back to the MPM until it is readable (`CONN_STATE_ASYNC_WAITIO`),
    /// holding no worker meanwhile. Only where [`has_async_state`](Self::has_async_state).
    pub fn wait_in_mpm_for_read(self) {
        let cs = self.rec().cs;
        assert!(!cs.is_null(), "only connections with an async state wait in the MPM");
        // SAFETY: the connection's state record, ours to set in process_connection.
        unsafe {
            (*cs).sense = sys::conn_sense_e_CONN_SENSE_WANT_READ;
            (*cs).state = sys::conn_state_e_CONN_STATE_ASYNC_WAITIO;
        }
    }

    /// The connection's socket as an OS descriptor.
    fn fd(self) -> Option<libc::c_int> {
        // SAFETY: the connection's socket (NULL for secondary connections).
        unsafe {
            let sock = sys::ap_get_conn_socket(self.rec_mut());
            if sock.is_null() {
                return None;
            }
            let mut fd: sys::apr_os_sock_t = -1;
            (Status::from(sys::apr_os_sock_get(&mut fd, sock)).is_success() && fd >= 0).then_some(fd)
        }
    }

    /// The kernel's smoothed round-trip time estimate, in microseconds (known from the TCP
    /// handshake on).
    pub fn tcp_rtt_us(self) -> Option<u32> {
        let fd = self.fd()?;
        // SAFETY: a zeroed tcp_info is valid; getsockopt writes at most `len` bytes.
        unsafe {
            let mut info: libc::tcp_info = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
            let rv = libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, (&raw mut info).cast(), &mut len);
            (rv == 0).then_some(info.tcpi_rtt)
        }
    }

    /// Sends the ACK for what has been received now instead of after the kernel's delayed-ACK
    /// timer (TCP_QUICKACK), for when we have nothing to send that could carry it.
    pub fn ack_now(self) {
        if let Some(fd) = self.fd() {
            let on: libc::c_int = 1;
            // SAFETY: a socket option of the connection's own socket.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_QUICKACK,
                    (&raw const on).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
    }

    /// Waits up to `timeout_ms` for the socket to become readable (or to report EOF or an error,
    /// which the next read reveals). False on timeout or when there is no socket.
    pub fn wait_readable(self, timeout_ms: i32) -> bool {
        let Some(fd) = self.fd() else { return false };
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        loop {
            // SAFETY: one pollfd.
            match unsafe { libc::poll(&mut pfd, 1, timeout_ms) } {
                n if n > 0 => return true,
                0 => return false,
                _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => continue,
                _ => return false,
            }
        }
    }

    /// Asks httpd which of the client's ALPN `offered` protocols server `s` should speak here
    /// (`Protocols`). Only one the client offered is returned.
    pub fn select_protocol(self, s: Server, offered: &[&[u8]]) -> Option<Vec<u8>> {
        if offered.is_empty() {
            return None;
        }
        // SAFETY: an array of C strings in the connection's pool, as ap_select_protocol takes.
        unsafe {
            let pool = self.rec().pool;
            let arr = sys::apr_array_make(pool, offered.len() as i32, std::mem::size_of::<*const c_char>() as i32);
            for p in offered {
                let Ok(name) = CString::new(*p) else { continue };
                let slot = sys::apr_array_push(arr) as *mut *const c_char;
                *slot = sys::apr_pstrdup(pool, name.as_ptr());
            }
            let chosen = sys::ap_select_protocol(self.rec_mut(), std::ptr::null_mut(), s.as_ptr(), arr);
            if chosen.is_null() {
                return None;
            }
            let chosen = CStr::from_ptr(chosen).to_bytes();
            offered.iter().find(|p| **p == chosen).map(|p| p.to_vec())
        }
    }

    /// The protocol the connection speaks ("http/1.1" unless switched).
    pub fn protocol(self) -> Vec<u8> {
        // SAFETY: ap_get_protocol returns a static or pool string.
        unsafe { CStr::from_ptr(sys::ap_get_protocol(self.rec_mut())).to_bytes().to_vec() }
    }

    /// Hands the connection to the module that speaks `protocol` (mod_http2 for "h2").
    pub fn switch_protocol(self, s: Server, protocol: &[u8]) -> Status {
        let Ok(p) = CString::new(protocol) else { return APR_ECONNABORTED };
        // SAFETY: live connection and server; a C string.
        Status::from(unsafe { sys::ap_switch_protocol(self.rec_mut(), std::ptr::null_mut(), s.as_ptr(), p.as_ptr()) })
    }
}

impl Conn {
    /// Which list of name-based vhosts httpd keeps for the connection's address (IP and port):
    /// the same value for every connection to that address in this configuration generation,
    /// None where the address has a single vhost (no name-based list).
    pub fn address_vhost_list(self) -> Option<std::num::NonZeroUsize> {
        std::num::NonZeroUsize::new(self.address_name_chain() as usize)
    }

    /// The address's name-based vhost list as httpd made it for the connection, whether or not
    /// [`Conn::match_hosts_first_against`] put a vhost before it.
    fn address_name_chain(self) -> *mut NameChain {
        // SAFETY: a field of the live connection, set by httpd when it chose the base server.
        let head = unsafe { (*self.as_ptr()).vhost_lookup_data } as *mut NameChain;
        // SAFETY: a non-NULL list is httpd's (or ours, recognised by its marker, which points
        // on to httpd's).
        match unsafe { head.as_ref() } {
            Some(node) if is_ours(node) => node.next,
            _ => head,
        }
    }

    /// The vhosts of the connection's address, in configuration order (what
    /// `ap_vhost_iterate_given_conn` walks; the base server alone without a name-based list).
    pub fn address_vhosts(self) -> Vec<Server> {
        let mut all: Vec<Server> = Vec::new();
        // The walk goes over httpd's own list even where a vhost was put before it.
        // SAFETY: fields of the live connection, on its thread: the list is restored before
        // anything else can look at it.
        let installed = unsafe { (*self.as_ptr()).vhost_lookup_data };
        unsafe { (*self.rec_mut()).vhost_lookup_data = self.address_name_chain().cast() };
        // SAFETY: the callback gets our vector back for the duration of the call.
        unsafe {
            sys::ap_vhost_iterate_given_conn(
                self.rec_mut(),
                Some(collect_vhost),
                &mut all as *mut Vec<Server> as *mut std::ffi::c_void,
            );
            (*self.rec_mut()).vhost_lookup_data = installed;
        }
        all
    }

    /// Has httpd's matching of each request's `Host` (and of `ServerPath` without one) look at
    /// vhost `s` before the address's list, which follows unchanged: on an address with
    /// thousands of vhosts, the walk then ends at once when `Host` names the vhost the handshake
    /// chose, instead of after every vhost before it.
    ///
    /// The choice stays httpd's only where `s` owns its names: no wildcard alias, and for each
    /// of its names the walk of the whole list answers `s` (`NameIndex::find_owner` says so),
    /// and it has no `ServerPath`. Then a `Host` that `s` matches gets `s` either way, and any
    /// other `Host` finds nothing in the node put first and walks on as before. The node's
    /// address record has a `virthost` no `Host` can equal (httpd's fallback to the
    /// `<VirtualHost>` address stays with the list), and port 0, as the address's own list was
    /// already chosen by port.
    pub fn match_hosts_first_against(self, s: Server) {
        let list = self.address_name_chain();
        // SAFETY: read from the live connection, on its thread.
        let installed = unsafe { (*self.as_ptr()).vhost_lookup_data };
        // SAFETY: a non-NULL list is httpd's, for this generation.
        if list.is_null() || unsafe { (*list).next.is_null() } || installed != list.cast() || s.server_path().is_some()
        {
            // One vhost on the address (a walk of one step: nothing to spare), a vhost already
            // first, or a ServerPath (which the walk without `Host` tests first).
            return;
        }
        let pool = self.pool();
        // SAFETY: the list's first node and its address record are httpd's, for this
        // generation; ours are allocated in the connection's pool (cleared with the connection,
        // after its last request) and initialised in full before httpd can see them.
        unsafe {
            let sar = sys::apr_palloc(pool.as_ptr(), std::mem::size_of::<sys::server_addr_rec>())
                as *mut sys::server_addr_rec;
            let node = sys::apr_palloc(pool.as_ptr(), std::mem::size_of::<NameChain>()) as *mut NameChain;
            if sar.is_null() || node.is_null() {
                return;
            }
            sar.write(sys::server_addr_rec {
                next: std::ptr::null_mut(),
                virthost: NOT_A_HOST.as_ptr().cast_mut(),
                host_addr: (*(*list).sar).host_addr,
                host_port: 0,
            });
            node.write(NameChain { next: list, sar, server: s.as_ptr() });
            (*self.rec_mut()).vhost_lookup_data = node.cast();
        }
    }
}

/// httpd's `name_chain` (server/vhost.c, unchanged since 1.3; not in its public headers): one
/// node of an address's name-based vhost list, which `conn_rec.vhost_lookup_data` points to.
#[repr(C)]
struct NameChain {
    next: *mut NameChain,
    sar: *mut sys::server_addr_rec,
    server: *mut sys::server_rec,
}

/// The `virthost` of the address record of a node we put first: httpd compares it with the
/// request's `Host` after checking that the `Host` is made of letters, digits, dots, dashes (and
/// an IPv6 literal's characters), so it never matches; its address also marks the node as ours.
static NOT_A_HOST: &CStr = c"\x01 (mod_tls: the vhost the handshake chose, looked at first)";

fn is_ours(node: &NameChain) -> bool {
    // SAFETY: every node of the list has an address record.
    !node.sar.is_null() && unsafe { (*node.sar).virthost }.cast_const() == NOT_A_HOST.as_ptr()
}

/// Collects every vhost of an address (never stops the walk).
unsafe extern "C" fn collect_vhost(
    baton: *mut std::ffi::c_void,
    _c: *mut sys::conn_rec,
    s: *mut sys::server_rec,
) -> i32 {
    catch_panic(
        1,
        |m| crate::log_panic("listing an address's virtual hosts", m),
        || {
            // SAFETY: our vector, for the duration of ap_vhost_iterate_given_conn; httpd walks the
            // server records of the generation.
            let all = unsafe { &mut *(baton as *mut Vec<Server>) };
            all.extend(unsafe { Server::from_raw(s) });
            0
        },
    )
}
