//! Requests (`request_rec`) as a typed handle, for the request hooks: what they read of a request
//! and what they set on it.

use std::ffi::CStr;
use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::record::Module;
use crate::{Conn, Pool, Server, cstr, sys};

/// A request httpd passed to a hook, valid for that call (`'r`).
#[derive(Clone, Copy)]
pub struct Request<'r>(NonNull<sys::request_rec>, PhantomData<&'r sys::request_rec>);

impl<'r> Request<'r> {
    /// # Safety
    /// `r` must be NULL or a live request for `'r`, used on the thread httpd called us on.
    pub(crate) unsafe fn from_raw(r: *const sys::request_rec) -> Option<Request<'r>> {
        NonNull::new(r as *mut sys::request_rec).map(|r| Request(r, PhantomData))
    }

    pub(crate) fn as_ptr(self) -> *mut sys::request_rec {
        self.0.as_ptr()
    }

    fn rec(&self) -> &sys::request_rec {
        // SAFETY: live for 'r (type invariant).
        unsafe { self.0.as_ref() }
    }

    /// The connection it came on (for HTTP/2: the stream's secondary connection). Requests
    /// httpd makes up without one (some internal ones) have none.
    pub fn conn(self) -> Option<Conn> {
        // SAFETY: the request's connection, live at least as long as the request.
        unsafe { Conn::from_raw(self.rec().connection) }
    }

    /// The vhost the request is for (chosen from its Host header).
    pub fn server(self) -> Server {
        // SAFETY: httpd sets it for every request.
        unsafe { Server::from_raw(self.rec().server) }.expect("a request has a server")
    }

    /// Whether the vhost the request is for allows `protocol` (its `Protocols` directive), as
    /// `ap_is_allowed_protocol` decides it.
    pub fn vhost_allows_protocol(self, protocol: &str) -> bool {
        let Ok(p) = std::ffi::CString::new(protocol) else { return false };
        // SAFETY: the live request, its connection and vhost; a C string for the call.
        unsafe { sys::ap_is_allowed_protocol(self.rec().connection, self.as_ptr(), self.rec().server, p.as_ptr()) != 0 }
    }

    /// The query string (empty without one).
    pub fn args(self) -> String {
        // SAFETY: a C string of the request, or NULL.
        unsafe { cstr(self.rec().args) }.into_owned()
    }

    /// The host the request names (empty when it names none).
    pub fn hostname(self) -> String {
        // SAFETY: a C string of the request, or NULL.
        unsafe { cstr(self.rec().hostname) }.into_owned()
    }

    pub fn pool(self) -> Pool {
        // SAFETY: the request's pool lives as long as the request.
        unsafe { Pool::from_raw(self.rec().pool) }
    }

    /// Module `M`'s per-directory configuration for the request's location.
    pub fn dir_config<M: Module>(self) -> &'r M::Dir {
        // SAFETY: per-directory vectors hold what M::create_dir/merge_dir made in our slot, or NULL
        // after a panic there: then this panics inside the request hook's boundary (500).
        unsafe {
            (sys::ap_get_module_config(self.rec().per_dir_config, M::record().as_ptr()) as *const M::Dir).as_ref()
        }
        .expect("this location's mod_tls configuration is missing (a panic while merging it)")
    }

    /// Sets the authenticated user (`r->user`, `%u` in logs, `REMOTE_USER`).
    pub fn set_user(self, user: &str) {
        let user = self.pool().strdup(user);
        // SAFETY: live request on its thread; the string lives in its pool.
        unsafe { (*self.as_ptr()).user = user as *mut _ };
    }

    /// Sets a note (`error-notes` is what the error page shows).
    pub fn set_note(self, key: &'static CStr, value: &'static CStr) {
        // SAFETY: static strings outlive the table.
        unsafe { sys::apr_table_setn(self.rec().notes, key.as_ptr(), value.as_ptr()) };
    }

    /// Sets an environment variable for CGI, SSI, logging (`r->subprocess_env`).
    pub fn set_env(self, key: &str, value: &str) {
        let (k, v) = (self.pool().strdup(key), self.pool().strdup(value));
        // SAFETY: strings in the request's pool, which the table lives in.
        unsafe { sys::apr_table_setn(self.rec().subprocess_env, k, v) };
    }

    /// Writes response body text (handlers and mod_status's hooks).
    pub fn write(self, text: &str) {
        // SAFETY: a live request; the bytes are copied by httpd.
        unsafe { sys::ap_rwrite(text.as_ptr().cast(), text.len() as i32, self.as_ptr()) };
    }
}
