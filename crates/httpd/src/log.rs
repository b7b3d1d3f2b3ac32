//! Logging through httpd's error log with this module's index, so that `LogLevel tls:debug` works.
//! Use the `log_server!` / `log_conn!` macros: they check the level before formatting and record
//! the caller's file and line.

use std::ffi::{CString, c_int};

use crate::{Conn, Server, Status, sys};

pub const EMERG: c_int = sys::APLOG_EMERG as c_int;
pub const ERR: c_int = sys::APLOG_ERR as c_int;
pub const WARNING: c_int = sys::APLOG_WARNING as c_int;
/// Logged whatever `LogLevel` says, as httpd logs its own start-up and shutdown notices.
pub const NOTICE: c_int = sys::APLOG_NOTICE as c_int;
pub const INFO: c_int = sys::APLOG_INFO as c_int;
pub const DEBUG: c_int = sys::APLOG_DEBUG as c_int;
pub const TRACE1: c_int = sys::APLOG_TRACE1 as c_int;
pub const TRACE2: c_int = sys::APLOG_TRACE2 as c_int;

fn level_of(log: &sys::ap_logconf, module_index: c_int) -> c_int {
    if !log.module_levels.is_null() && module_index >= 0 {
        // SAFETY: httpd sizes module_levels for every loaded module's index.
        let l = unsafe { *log.module_levels.add(module_index as usize) };
        if l >= 0 {
            return l as c_int;
        }
    }
    log.level
}

fn c_message(msg: &str) -> CString {
    CString::new(msg.replace('\0', " ")).expect("NULs were replaced")
}

/// What a message is logged for: a server (its error log and level), a connection (its
/// per-connection level, client address in the line), or nothing known yet (start-up).
pub trait LogTarget {
    fn enabled(&self, level: c_int) -> bool;
    fn write(&self, file: &'static str, line: u32, level: c_int, status: Status, msg: &str);
}

impl LogTarget for Option<Server> {
    fn enabled(&self, level: c_int) -> bool {
        match self {
            // SAFETY: a server record of the generation.
            Some(s) => level == NOTICE || level <= level_of(unsafe { &(*s.as_ptr()).log }, crate::module_index()),
            None => level == NOTICE || level <= WARNING,
        }
    }

    fn write(&self, file: &'static str, line: u32, level: c_int, status: Status, msg: &str) {
        let m = c_message(msg);
        let s = self.map_or(std::ptr::null_mut(), |s| s.as_ptr());
        // SAFETY: `file` is NUL-terminated (the macros add it); a format with one string.
        unsafe {
            sys::ap_log_error_(
                file.as_ptr().cast(),
                line as c_int,
                crate::module_index(),
                level,
                status.code(),
                s,
                c"%s".as_ptr(),
                m.as_ptr(),
            )
        }
    }
}

impl LogTarget for Server {
    fn enabled(&self, level: c_int) -> bool {
        Some(*self).enabled(level)
    }

    fn write(&self, file: &'static str, line: u32, level: c_int, status: Status, msg: &str) {
        Some(*self).write(file, line, level, status, msg)
    }
}

impl LogTarget for Conn {
    fn enabled(&self, level: c_int) -> bool {
        // SAFETY: a live connection; its log config, when set, is httpd's.
        unsafe {
            let log = (*self.as_ptr()).log;
            if log.is_null() {
                self.base_server().enabled(level)
            } else {
                level <= level_of(&*log, crate::module_index())
            }
        }
    }

    fn write(&self, file: &'static str, line: u32, level: c_int, status: Status, msg: &str) {
        let m = c_message(msg);
        // SAFETY: `file` is NUL-terminated (the macros add it); a format with one string.
        unsafe {
            sys::ap_log_cerror_(
                file.as_ptr().cast(),
                line as c_int,
                crate::module_index(),
                level,
                status.code(),
                self.as_ptr(),
                c"%s".as_ptr(),
                m.as_ptr(),
            )
        }
    }
}

/// Formats and writes the message only when `level` is enabled for `target`.
pub fn emit(
    target: &impl LogTarget,
    level: c_int,
    status: impl Into<Status>,
    file: &'static str,
    line: u32,
    msg: impl FnOnce() -> String,
) {
    if target.enabled(level) {
        target.write(file, line, level, status.into(), &msg());
    }
}

/// `log_server!(s, level, status, "fmt", args…)` with `s` a [`Server`] or `Option<Server>`.
#[macro_export]
macro_rules! log_server {
    ($s:expr, $level:expr, $status:expr, $($arg:tt)+) => {
        $crate::log::emit(&$s, $level, $status, concat!(file!(), "\0"), line!(), || format!($($arg)+))
    };
}

/// `log_conn!(c, level, status, "fmt", args…)` with `c` a [`Conn`].
#[macro_export]
macro_rules! log_conn {
    ($c:expr, $level:expr, $status:expr, $($arg:tt)+) => {
        $crate::log::emit(&$c, $level, $status, concat!(file!(), "\0"), line!(), || format!($($arg)+))
    };
}
