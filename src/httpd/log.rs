//! Logging through httpd's error log with this module's index, so that `LogLevel tls:debug` works.
//! Use the `log_server!` / `log_conn!` macros: they check the level before formatting and record
//! the caller's file and line.

use std::ffi::{CString, c_int};

use super::sys;

pub const EMERG: c_int = sys::APLOG_EMERG as c_int;
pub const ERR: c_int = sys::APLOG_ERR as c_int;
pub const WARNING: c_int = sys::APLOG_WARNING as c_int;
pub const INFO: c_int = sys::APLOG_INFO as c_int;
pub const DEBUG: c_int = sys::APLOG_DEBUG as c_int;
pub const TRACE1: c_int = sys::APLOG_TRACE1 as c_int;
pub const TRACE2: c_int = sys::APLOG_TRACE2 as c_int;

fn level_of(log: &sys::ap_logconf, module_index: c_int) -> c_int {
    if !log.module_levels.is_null() && module_index >= 0 {
        let l = unsafe { *log.module_levels.add(module_index as usize) };
        if l >= 0 {
            return l as c_int;
        }
    }
    log.level
}

/// Whether a message at `level` for server `s` would be written.
///
/// # Safety
/// `s` must be NULL or a valid server_rec.
pub unsafe fn server_enabled(s: *const sys::server_rec, module_index: c_int, level: c_int) -> bool {
    if s.is_null() {
        return level <= WARNING;
    }
    level <= level_of(unsafe { &(*s).log }, module_index)
}

/// # Safety
/// `c` must be a valid conn_rec.
pub unsafe fn conn_enabled(c: *const sys::conn_rec, module_index: c_int, level: c_int) -> bool {
    unsafe {
        if !(*c).log.is_null() {
            level <= level_of(&*(*c).log, module_index)
        } else {
            server_enabled((*c).base_server, module_index, level)
        }
    }
}

fn c_message(msg: &str) -> CString {
    CString::new(msg.replace('\0', " ")).expect("NULs were replaced")
}

/// # Safety
/// `s` must be NULL or a valid server_rec; `file` NUL-terminated.
pub unsafe fn server(
    file: &'static str,
    line: u32,
    module_index: c_int,
    level: c_int,
    status: sys::apr_status_t,
    s: *const sys::server_rec,
    msg: &str,
) {
    let m = c_message(msg);
    unsafe {
        sys::ap_log_error_(
            file.as_ptr().cast(),
            line as c_int,
            module_index,
            level,
            status,
            s,
            c"%s".as_ptr(),
            m.as_ptr(),
        )
    }
}

/// # Safety
/// `c` must be a valid conn_rec; `file` NUL-terminated.
pub unsafe fn conn(
    file: &'static str,
    line: u32,
    module_index: c_int,
    level: c_int,
    status: sys::apr_status_t,
    c: *const sys::conn_rec,
    msg: &str,
) {
    let m = c_message(msg);
    unsafe {
        sys::ap_log_cerror_(
            file.as_ptr().cast(),
            line as c_int,
            module_index,
            level,
            status,
            c,
            c"%s".as_ptr(),
            m.as_ptr(),
        )
    }
}

/// `log_server!(s, level, status, "fmt", args…)` with `s: *const server_rec` (may be NULL).
#[macro_export]
macro_rules! log_server {
    ($s:expr, $level:expr, $status:expr, $($arg:tt)+) => {{
        let s = $s as *const $crate::httpd::sys::server_rec;
        let level: std::ffi::c_int = $level;
        let status: $crate::httpd::sys::apr_status_t = $status;
        let index = $crate::httpd::module_index();
        // SAFETY: callers pass a valid (or NULL) server_rec.
        #[allow(unused_unsafe)]
        let enabled = unsafe { $crate::httpd::log::server_enabled(s, index, level) };
        if enabled {
            let msg = format!($($arg)+);
            let (file, line) = (concat!(file!(), "\0"), line!());
            #[allow(unused_unsafe)]
            unsafe {
                $crate::httpd::log::server(file, line, index, level, status, s, &msg)
            }
        }
    }};
}

/// `log_conn!(c, level, status, "fmt", args…)` with `c: *const conn_rec`.
#[macro_export]
macro_rules! log_conn {
    ($c:expr, $level:expr, $status:expr, $($arg:tt)+) => {{
        let c = $c as *const $crate::httpd::sys::conn_rec;
        let level: std::ffi::c_int = $level;
        let status: $crate::httpd::sys::apr_status_t = $status;
        let index = $crate::httpd::module_index();
        // SAFETY: callers pass a valid conn_rec.
        #[allow(unused_unsafe)]
        let enabled = unsafe { $crate::httpd::log::conn_enabled(c, index, level) };
        if enabled {
            let msg = format!($($arg)+);
            let (file, line) = (concat!(file!(), "\0"), line!());
            #[allow(unused_unsafe)]
            unsafe {
                $crate::httpd::log::conn(file, line, index, level, status, c, &msg)
            }
        }
    }};
}
