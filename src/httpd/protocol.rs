//! httpd's protocol negotiation (`Protocols` directive, mod_http2): ALPN answers and switching.

use std::ffi::{CString, c_char};

use super::sys::{self, conn_rec, server_rec};

/// Asks httpd which of the client's ALPN `offered` protocols server `s` should speak on `c`.
/// Returns it only when it is one the client offered.
///
/// # Safety
/// `c` and `s` must be valid.
pub unsafe fn select(c: *mut conn_rec, s: *mut server_rec, offered: &[&[u8]]) -> Option<Vec<u8>> {
    if offered.is_empty() {
        return None;
    }
    unsafe {
        let pool = (*c).pool;
        let arr = sys::apr_array_make(pool, offered.len() as i32, std::mem::size_of::<*const c_char>() as i32);
        for p in offered {
            let Ok(name) = CString::new(*p) else { continue };
            let slot = sys::apr_array_push(arr) as *mut *const c_char;
            *slot = sys::apr_pstrdup(pool, name.as_ptr());
        }
        let chosen = sys::ap_select_protocol(c, std::ptr::null_mut(), s, arr);
        if chosen.is_null() {
            return None;
        }
        let chosen = std::ffi::CStr::from_ptr(chosen).to_bytes();
        offered.iter().find(|p| **p == chosen).map(|p| p.to_vec())
    }
}

/// The protocol `c` currently speaks ("http/1.1" unless switched).
///
/// # Safety
/// `c` must be valid.
pub unsafe fn current(c: *mut conn_rec) -> Vec<u8> {
    unsafe { std::ffi::CStr::from_ptr(sys::ap_get_protocol(c)).to_bytes().to_vec() }
}

/// Hands connection `c` to the module that speaks `protocol` (mod_http2 for "h2").
///
/// # Safety
/// `c` and `s` must be valid.
pub unsafe fn switch(c: *mut conn_rec, s: *mut server_rec, protocol: &[u8]) -> sys::apr_status_t {
    let Ok(p) = CString::new(protocol) else { return super::APR_ECONNABORTED };
    unsafe { sys::ap_switch_protocol(c, std::ptr::null_mut(), s, p.as_ptr()) }
}
