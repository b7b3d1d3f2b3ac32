//! What mod_ssl offers other modules, registered by mod_tls when mod_ssl is not loaded: LogFormat
//! handlers (`%{VAR}x`, `%{name}c`, through mod_log_config) and authorization providers
//! (`Require ssl`, `Require ssl-verify-client`, through mod_authz_core).

use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr;

use crate::{Pool, Request, catch_panic, cstr, sys};

/// The handler a thunk was instantiated for (zero-sized fn items, as in `hooks`).
fn handler<F: Copy>() -> F {
    const { assert!(std::mem::size_of::<F>() == 0, "a handler must be a fn item, not a pointer or closure with captures") };
    // SAFETY: a zero-sized type without invariants has one value, made of no bytes.
    unsafe { std::mem::zeroed() }
}

type LogHandler = unsafe extern "C" fn(*mut sys::request_rec, *mut c_char) -> *const c_char;
type RegisterLogHandler = unsafe extern "C" fn(*mut sys::apr_pool_t, *mut c_char, Option<LogHandler>, c_int);

/// Registers `%{arg}tag` for LogFormat (pre_config, after mod_log_config's): `f(r, arg)` gives
/// the value, None logs `-`. False when mod_log_config is not loaded.
pub fn register_log_handler<F: Fn(Request<'_>, &str) -> Option<String> + Copy>(
    pconf: Pool,
    tag: &'static CStr,
    _f: F,
) -> bool {
    unsafe extern "C" fn thunk<F: Fn(Request<'_>, &str) -> Option<String> + Copy>(
        r: *mut sys::request_rec,
        arg: *mut c_char,
    ) -> *const c_char {
        catch_panic(
            ptr::null(),
            |m| crate::log_panic("in a LogFormat variable", m),
            || {
                // SAFETY: mod_log_config passes the live request and the format's argument.
                let Some(r) = (unsafe { Request::from_raw(r) }) else { return ptr::null() };
                match handler::<F>()(r, &unsafe { cstr(arg) }) {
                    Some(v) if !v.is_empty() => r.pool().strdup(&v),
                    _ => ptr::null(),
                }
            },
        )
    }
    // SAFETY: mod_log_config's optional function, with the signature its header declares.
    unsafe {
        let Some(f) = sys::apr_dynamic_fn_retrieve(c"ap_register_log_handler".as_ptr()) else { return false };
        let register: RegisterLogHandler = std::mem::transmute::<unsafe extern "C" fn(), RegisterLogHandler>(f);
        register(pconf.as_ptr(), tag.as_ptr() as *mut c_char, Some(thunk::<F>), 0);
    }
    true
}

/// Registers the authorization provider `Require name` (pre_config, before httpd reads the
/// `Require` lines): granted where `f(r)` says so, denied elsewhere.
pub fn register_authz_provider<F: Fn(Request<'_>) -> bool + Copy>(pconf: Pool, name: &'static CStr, _f: F) {
    unsafe extern "C" fn check<F: Fn(Request<'_>) -> bool + Copy>(
        r: *mut sys::request_rec,
        _line: *const c_char,
        _parsed: *const c_void,
    ) -> sys::authz_status {
        catch_panic(
            sys::authz_status_AUTHZ_GENERAL_ERROR,
            |m| crate::log_panic("in a Require check (answered as an error, never granted)", m),
            || {
                // SAFETY: mod_authz_core passes the live request.
                match unsafe { Request::from_raw(r) } {
                    Some(r) if handler::<F>()(r) => sys::authz_status_AUTHZ_GRANTED,
                    _ => sys::authz_status_AUTHZ_DENIED,
                }
            },
        )
    }
    let provider =
        pconf.attach(sys::authz_provider { check_authorization: Some(check::<F>), parse_require_line: None });
    // SAFETY: the provider lives in pconf, as long as the registration (removed with pconf).
    unsafe {
        sys::ap_register_auth_provider(
            pconf.as_ptr(),
            c"authz".as_ptr(),
            name.as_ptr(),
            c"0".as_ptr(),
            provider as *const c_void,
            sys::AP_AUTH_INTERNAL_PER_CONF as c_int,
        );
    }
}
