//! The seam with httpd: raw bindings plus thin, safe-ish wrappers (pools, brigades, logging,
//! directive table, server and address records). Code above this layer never touches a raw
//! `apr_*`/`ap_*` call except through these helpers.

pub mod bindings;
pub mod brigade;
pub mod log;
pub mod pool;
pub mod protocol;
pub mod server;
pub mod socache;

pub use bindings as sys;

use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The status values httpd's C API expects; the header constants have mixed types.
pub const OK: i32 = sys::OK as i32;
pub const DECLINED: i32 = sys::DECLINED;
pub const DONE: i32 = sys::DONE;
pub const HOOK_MIDDLE: i32 = sys::APR_HOOK_MIDDLE as i32;
pub const APR_SUCCESS: sys::apr_status_t = 0;
pub const APR_EOF: sys::apr_status_t = sys::APR_EOF as sys::apr_status_t;
pub const APR_EAGAIN: sys::apr_status_t = sys::APR_EAGAIN as sys::apr_status_t;
pub const APR_ECONNABORTED: sys::apr_status_t = sys::APR_ECONNABORTED as sys::apr_status_t;
pub const HTTP_INTERNAL_SERVER_ERROR: i32 = sys::HTTP_INTERNAL_SERVER_ERROR as i32;

/// This module's record (httpd fills in its index when it loads the module), registered once by
/// the adapter: the per-module log level and config lookups need its index, and this layer does
/// not name the layer above it. A process-wide constant, not per-configuration state.
static MODULE: std::sync::atomic::AtomicPtr<sys::module> = std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

/// Registers this module's record (from register_hooks, before anything is logged).
pub fn set_module(record: *mut sys::module) {
    MODULE.store(record, std::sync::atomic::Ordering::Release);
}

/// Our index into config vectors and per-module log levels (-1 until registered and loaded).
pub fn module_index() -> std::ffi::c_int {
    let m = MODULE.load(std::sync::atomic::Ordering::Acquire);
    if m.is_null() { -1 } else { unsafe { (*m).module_index } }
}

/// Runs `f`, turning a panic into `on_panic(message)` and `fallback`: a panic must never unwind
/// into httpd (it would abort the whole child, or the parent during start-up).
pub fn catch_panic<R>(fallback: R, on_panic: impl FnOnce(&str), f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            // The payload's drop and `on_panic` (logging, marking the connection) run inside a
            // guard too: a second panic there must not unwind into httpd either. A payload whose
            // drop panics is leaked rather than dropped again.
            if let Err(second) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
                std::mem::forget(second);
            }
            if let Err(second) = catch_unwind(AssertUnwindSafe(|| on_panic(&msg))) {
                std::mem::forget(second);
            }
            fallback
        }
    }
}

/// A C string from httpd as `&str` (lossy for invalid UTF-8); empty for NULL.
///
/// # Safety
/// `p` must be NULL or a NUL-terminated string that outlives the returned value's use.
pub unsafe fn cstr<'a>(p: *const c_char) -> std::borrow::Cow<'a, str> {
    if p.is_null() {
        return "".into();
    }
    unsafe { CStr::from_ptr(p) }.to_string_lossy()
}

/// The connection's socket as an OS descriptor.
///
/// # Safety
/// `c` must be a live connection.
unsafe fn conn_fd(c: *mut sys::conn_rec) -> Option<libc::c_int> {
    unsafe {
        let sock = sys::ap_get_conn_socket(c);
        if sock.is_null() {
            return None;
        }
        let mut fd: sys::apr_os_sock_t = -1;
        (sys::apr_os_sock_get(&mut fd, sock) == APR_SUCCESS && fd >= 0).then_some(fd)
    }
}

/// The kernel's smoothed round-trip time estimate for the connection, in microseconds (known
/// from the TCP handshake on).
///
/// # Safety
/// `c` must be a live connection.
pub unsafe fn tcp_rtt_us(c: *mut sys::conn_rec) -> Option<u32> {
    unsafe {
        let fd = conn_fd(c)?;
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let rv = libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, (&raw mut info).cast(), &mut len);
        (rv == 0).then_some(info.tcpi_rtt)
    }
}

/// Sends the ACK for what the connection has received now instead of after the kernel's delayed-ACK
/// timer (TCP_QUICKACK), for when we have nothing to send that could carry it.
///
/// # Safety
/// `c` must be a live connection.
pub unsafe fn ack_now(c: *mut sys::conn_rec) {
    unsafe {
        if let Some(fd) = conn_fd(c) {
            let on: libc::c_int = 1;
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

/// Waits up to `timeout_ms` for the connection's socket to become readable (or to report EOF or
/// an error, which the next read reveals). False on timeout or when the socket is unavailable.
///
/// # Safety
/// `c` must be a live connection with a socket (not a secondary HTTP/2 one).
pub unsafe fn wait_readable(c: *mut sys::conn_rec, timeout_ms: i32) -> bool {
    unsafe {
        let Some(fd) = conn_fd(c) else { return false };
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        loop {
            match libc::poll(&mut pfd, 1, timeout_ms) {
                n if n > 0 => return true,
                0 => return false,
                _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => continue,
                _ => return false,
            }
        }
    }
}
