//! httpd's module API for Rust, and the only crate of mod_tls with `unsafe`: the raw bindings
//! (bindgen, from the installed headers), and over them typed handles for what httpd passes
//! modules (servers, connections, requests, pools, brigades and buckets, filters, configuration
//! vectors), the module record with its typed configuration slots ([`export_module!`]), the
//! directive table and hook registration with a generic thunk per shape (each catches panics),
//! typed outcomes at the boundary ([`Status`] for APR statuses, [`HookResult`] for hooks),
//! logging, the socache, shared memory, the MPM and scoreboard, and mod_md/OCSP through
//! `ap_ssl_*`. It knows nothing of TLS: the module crate (`mod_tls`) ties these handles to the
//! TLS types of `mod_tls_core`, in safe Rust (`#![forbid(unsafe_code)]`).

pub mod bindings;
pub mod brigade;
pub mod command;
pub mod compat;
pub mod conn;
pub mod filter;
pub mod hooks;
pub mod log;
pub mod md;
pub mod mpm;
pub mod pool;
pub mod record;
pub mod request;
pub mod server;
pub mod shm;
pub mod socache;

pub use bindings as sys;
pub use conn::Conn;
pub use pool::Pool;
pub use request::Request;
pub use server::Server;

/// An APR status (`apr_status_t`): what filters and APR calls answer. The cases the module acts on
/// are named constants ([`APR_SUCCESS`], [`APR_EAGAIN`], …); any other is an APR or errno code,
/// kept as it is for the log.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(transparent)]
pub struct Status(sys::apr_status_t);

impl Status {
    /// The raw code, for the log (`log_conn!`'s status argument) and for httpd.
    pub const fn code(self) -> sys::apr_status_t {
        self.0
    }

    pub const fn is_success(self) -> bool {
        self.0 == 0
    }
}

/// Any APR or errno code (what an APR call returned).
impl From<sys::apr_status_t> for Status {
    fn from(code: sys::apr_status_t) -> Status {
        Status(code)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a hook answers httpd: OK, DECLINED, DONE or an HTTP status (an error that ends the
/// request, or start-up). The cases are named constants ([`OK`], [`DECLINED`], …).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(transparent)]
pub struct HookResult(std::ffi::c_int);

impl HookResult {
    pub(crate) const fn code(self) -> std::ffi::c_int {
        self.0
    }
}

use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

// The header constants have mixed types; these are the cases the module uses.
pub const OK: HookResult = HookResult(sys::OK as std::ffi::c_int);
pub const DECLINED: HookResult = HookResult(sys::DECLINED);
pub const DONE: HookResult = HookResult(sys::DONE);
pub const HTTP_INTERNAL_SERVER_ERROR: HookResult = HookResult(sys::HTTP_INTERNAL_SERVER_ERROR as std::ffi::c_int);
pub const HTTP_BAD_REQUEST: HookResult = HookResult(sys::HTTP_BAD_REQUEST as std::ffi::c_int);
pub const HTTP_MISDIRECTED_REQUEST: HookResult = HookResult(sys::HTTP_MISDIRECTED_REQUEST as std::ffi::c_int);
pub const HTTP_SERVICE_UNAVAILABLE: HookResult = HookResult(sys::HTTP_SERVICE_UNAVAILABLE as std::ffi::c_int);
pub const APR_SUCCESS: Status = Status(0);
pub const APR_EOF: Status = Status(sys::APR_EOF as sys::apr_status_t);
pub const APR_EAGAIN: Status = Status(sys::APR_EAGAIN as sys::apr_status_t);
pub const APR_ECONNABORTED: Status = Status(sys::APR_ECONNABORTED as sys::apr_status_t);
pub const APR_ENOTIMPL: Status = Status(sys::APR_ENOTIMPL as sys::apr_status_t);
pub const APR_TIMEUP: Status = Status(sys::APR_TIMEUP as sys::apr_status_t);
/// `APR_NOTFOUND`: what socache providers answer for a key they do not have.
pub const APR_NOTFOUND: Status = Status(sys::APR_NOTFOUND as sys::apr_status_t);

/// This module's record (httpd fills in its index when it loads the module), registered once by
/// the module crate: the per-module log level and config lookups need its index, and this layer does
/// not name the layer above it. A process-wide constant, not per-configuration state.
static MODULE: std::sync::atomic::AtomicPtr<sys::module> = std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

/// Registers this module's record (from register_hooks, before anything is logged).
fn set_module(record: *mut sys::module) {
    MODULE.store(record, std::sync::atomic::Ordering::Release);
}

/// Our index into config vectors and per-module log levels (-1 until registered and loaded).
pub fn module_index() -> std::ffi::c_int {
    let m = MODULE.load(std::sync::atomic::Ordering::Acquire);
    if m.is_null() { -1 } else { unsafe { (*m).module_index } }
}

/// What every caught panic also does, besides its own `on_panic` (the module counts them for the
/// status page). A plain function set once at registration: nothing per configuration.
static PANIC_OBSERVER: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Sets what every caught panic also does (see [`catch_panic`]); the first call wins.
pub fn observe_panics(f: fn()) {
    PANIC_OBSERVER.get_or_init(|| f);
}

/// Logs a caught panic at `error` where no more specific target is known: the running
/// configuration's main server, or stderr before there is one.
pub(crate) fn log_panic(what: &str, m: &str) {
    // SAFETY: ap_server_conf is NULL or the main server of the running configuration.
    let s = unsafe { Server::from_raw(sys::ap_server_conf) };
    crate::log_server!(s, log::ERR, 0, "mod_tls: internal error (panic) {what}: {m}");
}

/// Runs `f`, turning a panic into `on_panic(message)` and `fallback`: a panic must never unwind
/// into httpd (it would abort the whole child, or the parent during start-up). `on_panic` says
/// what failed (log it: every panic is a bug someone must hear about); the fallback must fail
/// closed (a refused request or connection, never a check passed by default).
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
            if let Some(observe) = PANIC_OBSERVER.get()
                && let Err(second) = catch_unwind(AssertUnwindSafe(observe))
            {
                std::mem::forget(second);
            }
            fallback
        }
    }
}

/// Hands the heap's free pages back to the kernel (glibc's `malloc_trim`). Each reading of the
/// configuration builds every vhost's TLS configuration and frees the previous one (the dry pass
/// at start-up, the old generation at a graceful restart): with thousands of vhosts that leaves
/// megabytes of free but resident heap in the parent, which every child forked from it would
/// carry.
pub fn release_free_memory() {
    // SAFETY: a plain libc call without arguments that point anywhere.
    unsafe { libc::malloc_trim(0) };
}

/// httpd's blocking mode for a read.
pub(crate) fn read_type(block: bool) -> sys::apr_read_type_e {
    if block { sys::apr_read_type_e_APR_BLOCK_READ } else { sys::apr_read_type_e_APR_NONBLOCK_READ }
}

/// A C string from httpd as `&str` (lossy for invalid UTF-8); empty for NULL.
///
/// # Safety
/// `p` must be NULL or a NUL-terminated string that outlives the returned value's use.
pub(crate) unsafe fn cstr<'a>(p: *const c_char) -> std::borrow::Cow<'a, str> {
    if p.is_null() {
        return "".into();
    }
    unsafe { CStr::from_ptr(p) }.to_string_lossy()
}
