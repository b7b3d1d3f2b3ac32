//! server_rec and address helpers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::sys;
use crate::conf::VhostAddr;

/// Iterates the main server and every virtual host, in configuration order.
pub fn servers(main: *mut sys::server_rec) -> impl Iterator<Item = *mut sys::server_rec> {
    let mut next = main;
    std::iter::from_fn(move || {
        if next.is_null() {
            return None;
        }
        let s = next;
        next = unsafe { (*s).next };
        Some(s)
    })
}

/// The IP and port of an APR socket address.
///
/// # Safety
/// `sa` must be NULL or a valid apr_sockaddr_t.
pub unsafe fn socket_addr(sa: *const sys::apr_sockaddr_t) -> Option<SocketAddr> {
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

/// The `<VirtualHost>` addresses of a server (empty for the main server).
///
/// # Safety
/// `s` must be a valid server_rec.
pub unsafe fn vhost_addrs(s: *const sys::server_rec) -> Vec<VhostAddr> {
    let mut out = Vec::new();
    unsafe {
        if (*s).is_virtual == 0 {
            return out;
        }
        let mut a = (*s).addrs;
        while !a.is_null() {
            let ip = socket_addr((*a).host_addr).map(|sa| sa.ip()).filter(|ip| !ip.is_unspecified());
            out.push(VhostAddr { ip, port: (*a).host_port });
            a = (*a).next;
        }
    }
    out
}

/// A human name for a server in messages: "vhost name (file:line)" or "the main server".
///
/// # Safety
/// `s` must be a valid server_rec.
pub unsafe fn describe(s: *const sys::server_rec) -> String {
    unsafe {
        if (*s).is_virtual == 0 {
            return "the main server".to_string();
        }
        let name = super::cstr((*s).server_hostname);
        let file = super::cstr((*s).defn_name);
        format!(
            "<VirtualHost> {} ({}:{})",
            if name.is_empty() { "(no ServerName)".into() } else { name },
            file,
            (*s).defn_line_number
        )
    }
}

/// Strings of an APR array of `char *`.
///
/// # Safety
/// `arr` must be NULL or an array whose elements are C strings.
unsafe fn string_array(arr: *const sys::apr_array_header_t) -> Vec<String> {
    if arr.is_null() {
        return Vec::new();
    }
    unsafe {
        let elts = (*arr).elts as *const *const std::ffi::c_char;
        (0..(*arr).nelts.max(0) as usize).map(|i| super::cstr(*elts.add(i)).into_owned()).collect()
    }
}

/// Whether `host` names server `s` (ServerName, ServerAlias, wildcard aliases).
///
/// # Safety
/// `s` must be a valid server_rec.
pub unsafe fn server_has_name(s: *const sys::server_rec, host: &str) -> bool {
    unsafe {
        let name = super::cstr((*s).server_hostname);
        crate::conf::host_matches(host, &name, &string_array((*s).names), &string_array((*s).wild_names))
    }
}

struct NameSearch<'a> {
    host: &'a str,
    found: *mut sys::server_rec,
}

/// A panic stops the walk with nothing found (the caller then treats the name as unknown).
unsafe extern "C" fn match_vhost(baton: *mut std::ffi::c_void, _c: *mut sys::conn_rec, s: *mut sys::server_rec) -> i32 {
    super::catch_panic(
        1,
        |_| {},
        || {
            let search = unsafe { &mut *(baton as *mut NameSearch) };
            if unsafe { server_has_name(s, search.host) } {
                search.found = s;
                1
            } else {
                0
            }
        },
    )
}

/// The name-based vhost of connection `c`'s address that `host` names, as httpd would pick it from
/// a Host header.
///
/// # Safety
/// `c` must be a valid conn_rec.
pub unsafe fn vhost_for_name(c: *mut sys::conn_rec, host: &str) -> Option<*mut sys::server_rec> {
    let mut search = NameSearch { host, found: std::ptr::null_mut() };
    unsafe {
        sys::ap_vhost_iterate_given_conn(c, Some(match_vhost), &mut search as *mut NameSearch as *mut std::ffi::c_void);
    }
    (!search.found.is_null()).then_some(search.found)
}

/// How many of this child process's first `threads` worker slots the scoreboard shows idle
/// (`SERVER_READY`); `None` when the process has no scoreboard slot.
///
/// # Safety
/// Must run in a child process after the scoreboard is attached (any connection hook).
pub unsafe fn idle_workers_of_this_child(threads: usize) -> Option<usize> {
    unsafe {
        let mut me = sys::apr_proc_t { pid: libc::getpid(), ..Default::default() };
        let child = sys::ap_find_child_by_pid(&mut me);
        if child < 0 {
            return None;
        }
        let idle = (0..threads as i32)
            .filter(|&t| {
                let w = sys::ap_get_scoreboard_worker_from_indexes(child, t);
                !w.is_null() && u32::from((*w).status) == sys::SERVER_READY
            })
            .count();
        Some(idle)
    }
}
