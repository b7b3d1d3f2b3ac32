//! APR pools: tying Rust-owned values to a pool's lifetime, and pool-allocated strings.

use std::ffi::{CString, c_char, c_void};

use super::sys;

unsafe extern "C" fn drop_boxed<T>(data: *mut c_void) -> sys::apr_status_t {
    // A panic in a destructor must not unwind into APR; there is nobody left to tell.
    let _ = std::panic::catch_unwind(|| drop(unsafe { Box::from_raw(data as *mut T) }));
    super::APR_SUCCESS
}

/// Moves `value` into a heap allocation that is dropped when `pool` is cleared or destroyed.
///
/// # Safety
/// `pool` must be a live pool. The returned pointer is valid until that pool's cleanup runs.
pub unsafe fn attach<T>(pool: *mut sys::apr_pool_t, value: T) -> *mut T {
    let ptr = Box::into_raw(Box::new(value));
    unsafe {
        sys::apr_pool_cleanup_register(
            pool,
            ptr as *const c_void,
            Some(drop_boxed::<T>),
            Some(sys::apr_pool_cleanup_null),
        );
    }
    ptr
}

/// Copies `s` into `pool` as a C string (interior NULs are replaced).
///
/// # Safety
/// `pool` must be a live pool.
pub unsafe fn pstrdup(pool: *mut sys::apr_pool_t, s: &str) -> *const c_char {
    let c = CString::new(s.replace('\0', " ")).expect("NULs were replaced");
    unsafe { sys::apr_pstrdup(pool, c.as_ptr()) }
}

/// A value of type `T` stored under `key` in `pool`'s user data, created by `init` on first use and
/// dropped with the pool. With the process pool this lives across configuration reloads, which is
/// what httpd offers modules for state that must survive a restart.
///
/// # Safety
/// `pool` must be live and `key` must always be used with the same `T`.
pub unsafe fn userdata<T>(pool: *mut sys::apr_pool_t, key: &std::ffi::CStr, init: impl FnOnce() -> T) -> *mut T {
    unsafe {
        let mut data: *mut c_void = std::ptr::null_mut();
        sys::apr_pool_userdata_get(&mut data, key.as_ptr(), pool);
        if data.is_null() {
            data = attach(pool, init()) as *mut c_void;
            sys::apr_pool_userdata_set(data, key.as_ptr(), Some(sys::apr_pool_cleanup_null), pool);
        }
        data as *mut T
    }
}
