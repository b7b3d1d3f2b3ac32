//! Certificates and OCSP responses from other modules (mod_md) through httpd's `ap_ssl_*` hooks,
//! and the ACME tls-alpn-01 challenge answer.

use std::ffi::{CString, c_char, c_void};
use std::path::PathBuf;
use std::ptr;

use crate::{APR_SUCCESS, Conn, Pool, Server, Status, catch_panic, cstr, sys};

/// Whether mod_md is loaded (then it may manage certificates of vhosts that name none).
pub fn mod_md_loaded() -> bool {
    module_loaded(c"mod_md.c")
}

/// Whether the module whose source file is `name` (`mod_ssl.c`) is loaded.
pub fn module_loaded(name: &std::ffi::CStr) -> bool {
    // SAFETY: a lookup by name.
    !unsafe { sys::ap_find_linked_module(name.as_ptr()) }.is_null()
}

/// The certificate and key files another module (mod_md) has for server `s`
/// (`ap_ssl_add_cert_files`), or, with `fallback`, its temporary stand-in ones
/// (`ap_ssl_add_fallback_cert_files`, then `true`) until it has real ones. Empty when nobody has any.
pub fn cert_files(s: Server, pconf: Pool, fallback: bool) -> (Vec<PathBuf>, Vec<PathBuf>, bool) {
    let allow_fallback = fallback;
    /// # Safety
    /// `arr` must be an APR array of C strings.
    unsafe fn files(arr: *const sys::apr_array_header_t) -> Vec<PathBuf> {
        unsafe { crate::server::string_array(arr) }.into_iter().map(PathBuf::from).collect()
    }
    let size = std::mem::size_of::<*const c_char>() as i32;
    // SAFETY: arrays of C strings in pconf, which the hooks fill.
    unsafe {
        let (certs, keys) =
            (sys::apr_array_make(pconf.as_ptr(), 2, size), sys::apr_array_make(pconf.as_ptr(), 2, size));
        sys::ap_ssl_add_cert_files(s.as_ptr(), pconf.as_ptr(), certs, keys);
        let mut fallback = false;
        if (*certs).nelts == 0 && allow_fallback {
            sys::ap_ssl_add_fallback_cert_files(s.as_ptr(), pconf.as_ptr(), certs, keys);
            fallback = (*certs).nelts > 0;
        }
        (files(certs), files(keys), fallback)
    }
}

/// Registers certificate `id` (with its chain as PEM) for OCSP stapling (`ap_ssl_ocsp_prime`):
/// mod_md (`MDStapling on`, `MDStapleOthers on`) then keeps a fresh response for it.
pub fn ocsp_prime(s: Server, pconf: Pool, id: &[u8], chain_pem: &str) -> Status {
    let Ok(pem) = CString::new(chain_pem) else { return crate::APR_ECONNABORTED };
    // SAFETY: live server and pool; the id and PEM are copied or used during the call.
    Status::from(unsafe {
        sys::ap_ssl_ocsp_prime(s.as_ptr(), pconf.as_ptr(), id.as_ptr().cast(), id.len(), pem.as_ptr())
    })
}

/// A panic (allocation failure) leaves the response empty: the handshake goes on without staple.
unsafe extern "C" fn copy_ocsp_response(der: *const u8, len: sys::apr_size_t, userdata: *mut c_void) {
    catch_panic(
        (),
        |m| crate::log_panic("copying mod_md's OCSP response", m),
        || {
            if !der.is_null() && len > 0 {
                // SAFETY: our Vec, for the duration of ap_ssl_ocsp_get_resp; the DER bytes it gives.
                let out = unsafe { &mut *(userdata as *mut Vec<u8>) };
                out.extend_from_slice(unsafe { std::slice::from_raw_parts(der, len) });
            }
        },
    )
}

/// The current OCSP response for certificate `id` of server `s`, when one is kept.
pub fn ocsp_response(c: Conn, s: Server, id: &[u8]) -> Option<Vec<u8>> {
    let mut response: Vec<u8> = Vec::new();
    // SAFETY: live server and connection; the callback gets our Vec for the duration of the call.
    let rv = unsafe {
        sys::ap_ssl_ocsp_get_resp(
            s.as_ptr(),
            c.as_ptr(),
            id.as_ptr().cast(),
            id.len(),
            Some(copy_ocsp_response),
            &mut response as *mut Vec<u8> as *mut c_void,
        )
    };
    (rv == APR_SUCCESS.code() && !response.is_empty()).then_some(response)
}

/// The ACME tls-alpn-01 challenge certificate and key (PEM; the key may be in the first) for
/// `name` on connection `c` (`ap_ssl_answer_challenge`), once the connection has been switched
/// to `acme-tls/1`.
pub fn answer_challenge(c: Conn, name: &str) -> Option<(String, Option<String>)> {
    let c_name = CString::new(name).ok()?;
    let (mut cert, mut key): (*const c_char, *const c_char) = (ptr::null(), ptr::null());
    // SAFETY: a live connection; the answers are C strings in its pool.
    unsafe {
        if sys::ap_ssl_answer_challenge(c.as_ptr(), c_name.as_ptr(), &mut cert, &mut key) == 0 || cert.is_null() {
            return None;
        }
        Some((cstr(cert).into_owned(), (!key.is_null()).then(|| cstr(key).into_owned())))
    }
}
