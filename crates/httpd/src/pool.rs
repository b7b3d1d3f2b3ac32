//! APR pools as a typed handle: tying Rust-owned values to a pool's lifetime, pool-allocated
//! strings, and per-pool user data.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_void};
use std::ptr::NonNull;

use crate::sys;

/// A pool httpd gave us (configuration, process, connection, request or child pool). The handle
/// is valid as long as the pool: for the call it was passed to, or — for the pools of the
/// configuration and the process — for the configuration generation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Pool(NonNull<sys::apr_pool_t>);

impl Pool {
    /// # Safety
    /// `p` must be a live pool for as long as the handle is used.
    pub(crate) unsafe fn from_raw(p: *mut sys::apr_pool_t) -> Pool {
        Pool(NonNull::new(p).expect("httpd passes live pools"))
    }

    pub(crate) fn as_ptr(self) -> *mut sys::apr_pool_t {
        self.0.as_ptr()
    }

    /// Moves `value` into a heap allocation dropped when the pool is cleared or destroyed, and
    /// returns a pointer to it (valid until then).
    pub(crate) fn attach<T>(self, value: T) -> *mut T {
        // SAFETY: the pool is live (type invariant).
        unsafe { attach(self.as_ptr(), value) }
    }

    /// Copies `s` into the pool as a C string (interior NULs are replaced).
    pub(crate) fn strdup(self, s: &str) -> *const c_char {
        // SAFETY: the pool is live (type invariant).
        unsafe { pstrdup(self.as_ptr(), s) }
    }

    /// A value stored under `key` in the pool's user data, created by `init` on first use and
    /// dropped with the pool. Only for the configuration pool during start-up (one thread; the
    /// module's code outlives that pool); a key used with another type panics.
    pub(crate) fn userdata<'p, T: 'static>(self, key: &'static CStr, init: impl FnOnce() -> T) -> &'p RefCell<T> {
        // SAFETY: the pool is live; the data under our keys is always a `Box<dyn Any>` we
        // attached to the same pool, dropped with it.
        unsafe {
            let mut data: *mut c_void = std::ptr::null_mut();
            sys::apr_pool_userdata_get(&mut data, key.as_ptr(), self.as_ptr());
            if data.is_null() {
                let boxed: Box<dyn Any> = Box::new(RefCell::new(init()));
                data = self.attach(boxed) as *mut c_void;
                sys::apr_pool_userdata_set(data, key.as_ptr(), Some(sys::apr_pool_cleanup_null), self.as_ptr());
            }
            (*(data as *const Box<dyn Any>)).downcast_ref::<RefCell<T>>().expect("one type per pool user-data key")
        }
    }
}

impl Pool {
    /// The string stored under `key` in the pool's user data (see [`set_string`](Self::set_string)).
    pub(crate) fn get_string(self, key: &str) -> Option<String> {
        let key = CString::new(key.replace('\0', " ")).expect("NULs were replaced");
        let mut data: *mut c_void = std::ptr::null_mut();
        // SAFETY: a live pool; data under these keys is always a C string (set_string).
        unsafe {
            sys::apr_pool_userdata_get(&mut data, key.as_ptr(), self.as_ptr());
            (!data.is_null()).then(|| crate::cstr(data as *const c_char).into_owned())
        }
    }

    /// Stores a copy of `value` under `key` in the pool's user data: plain bytes in the pool, no
    /// cleanup (nothing that points into the module's code).
    pub(crate) fn set_string(self, key: &str, value: &str) {
        let (key, value) = (self.strdup(key), self.strdup(value));
        // SAFETY: both strings live in this pool, as long as the entry.
        unsafe { sys::apr_pool_userdata_set(value as *const c_void, key, None, self.as_ptr()) };
    }
}

unsafe extern "C" fn drop_boxed<T>(data: *mut c_void) -> sys::apr_status_t {
    // A panic in a destructor must not unwind into APR; there is nobody left to tell.
    let _ = std::panic::catch_unwind(|| drop(unsafe { Box::from_raw(data as *mut T) }));
    crate::APR_SUCCESS.code()
}

/// Moves `value` into a heap allocation that is dropped when `pool` is cleared or destroyed.
///
/// # Safety
/// `pool` must be a live pool. The returned pointer is valid until that pool's cleanup runs.
pub(crate) unsafe fn attach<T>(pool: *mut sys::apr_pool_t, value: T) -> *mut T {
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
pub(crate) unsafe fn pstrdup(pool: *mut sys::apr_pool_t, s: &str) -> *const c_char {
    // Straight into the pool, without a CString on the heap first (this runs for every variable
    // of every request).
    // SAFETY: apr_pstrmemdup copies `s.len()` bytes from `s` and terminates them with a NUL; the
    // copy is ours to change until it is returned.
    unsafe {
        let copy = sys::apr_pstrmemdup(pool, s.as_ptr().cast(), s.len());
        if s.as_bytes().contains(&0) {
            for b in std::slice::from_raw_parts_mut(copy.cast::<u8>(), s.len()) {
                if *b == 0 {
                    *b = b' ';
                }
            }
        }
        copy
    }
}
