//! httpd's shared object cache (socache: shmcb, dbm, memcache, redis, …) as the
//! [`SessionStore`] behind TLS sessions (see `crate::tls::sessions`), so that a session made by one
//! child — or by another server of a fleet sharing memcached/redis — resumes in any other.

use std::cell::Cell;
use std::ffi::{CString, c_char};
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use crate::conf::CacheSpec;
use crate::conf::error::{ConfError, ErrorKind};
use crate::httpd::hooks::StatusFlags;
use crate::httpd::sys::{self, ap_socache_instance_t, ap_socache_provider_t, apr_pool_t, server_rec};
use crate::httpd::{APR_SUCCESS, Pool, Request, Server, cstr};
use crate::tls::sessions::SessionStore;

/// The mutex type name, for the `Mutex` directive (`Mutex file:/run/lock tls-session-cache`).
pub const MUTEX_TYPE: &std::ffi::CStr = c"tls-session-cache";

/// How long entries live: the ticket lifetime rustls advertises for stateful tickets (24 hours),
/// used for TLS 1.2 session ids too. Caches evict older entries when full.
pub const LIFETIME_SECS: i64 = 24 * 60 * 60;

/// Largest session we read back (a session carries the client's certificate chain, if any).
const MAX_SESSION_BYTES: usize = 64 * 1024;
/// What a session without client certificates fits in (they take ~150 bytes): the buffer of a
/// first lookup, small enough for the allocator's per-thread cache. Larger sessions are found by
/// a second lookup with room for `MAX_SESSION_BYTES` (a provider reports a value that does not
/// fit as not found, or as an error).
const SMALL_SESSION_BYTES: usize = 1024;

thread_local! {
    /// The pool of the connection being served on this thread: socache providers allocate from
    /// the pool they are given, and rustls calls us without any httpd context.
    static CONN_POOL: Cell<*mut apr_pool_t> = const { Cell::new(ptr::null_mut()) };
}

/// Runs `f` with `pool` as the pool for cache calls made on this thread meanwhile.
/// The previous pool is restored even if `f` unwinds: a pointer left behind would have the next
/// connection on this thread allocate from a pool that is gone.
pub fn with_conn_pool<R>(pool: Pool, f: impl FnOnce() -> R) -> R {
    struct Restore(*mut apr_pool_t);
    impl Drop for Restore {
        fn drop(&mut self) {
            CONN_POOL.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CONN_POOL.with(|c| c.replace(pool.as_ptr())));
    f()
}

/// One opened socache for a configuration generation.
pub struct SessionCache {
    provider: *const ap_socache_provider_t,
    instance: *mut ap_socache_instance_t,
    pub spec: String,
    server: *mut server_rec,
    mutex: AtomicPtr<sys::apr_global_mutex_t>,
    ready: AtomicBool,
}

// SAFETY: the provider and instance are only used through the socache API, which is MT-safe
// (or serialised by our global mutex when the provider says it is not).
unsafe impl Send for SessionCache {}
unsafe impl Sync for SessionCache {}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionCache({})", self.spec)
    }
}

impl SessionCache {
    /// Looks the provider up and lets it parse its arguments (no shared memory is created yet).
    pub fn create(
        name: &str,
        args: &str,
        main: Server,
        pconf: Pool,
        ptemp: Pool,
    ) -> Result<Arc<SessionCache>, ConfError> {
        let bad = |message: String| ConfError::new(ErrorKind::SessionCache, message);
        let c_name = CString::new(name).map_err(|_| bad("invalid provider name".to_string()))?;
        let c_args = CString::new(args).map_err(|_| bad("invalid provider arguments".to_string()))?;
        let (main, pconf, ptemp) = (main.as_ptr(), pconf.as_ptr(), ptemp.as_ptr());
        // SAFETY: start-up, with live pools and server; the provider API as socache documents it.
        unsafe {
            let provider = sys::ap_lookup_provider(
                sys::AP_SOCACHE_PROVIDER_GROUP.as_ptr().cast(),
                c_name.as_ptr(),
                sys::AP_SOCACHE_PROVIDER_VERSION.as_ptr().cast(),
            ) as *const ap_socache_provider_t;
            if provider.is_null() {
                return Err(bad(format!(
                    "the session cache type '{name}' is not available: load its module ({})",
                    CacheSpec::module_for(name)
                )));
            }
            let mut instance: *mut ap_socache_instance_t = ptr::null_mut();
            let err = ((*provider).create.expect("socache create"))(&mut instance, c_args.as_ptr(), ptemp, pconf);
            if !err.is_null() {
                return Err(bad(format!("'{name}:{args}': {}", cstr(err))));
            }
            Ok(Arc::new(SessionCache {
                provider,
                instance,
                spec: format!("{name}:{args}"),
                server: main,
                mutex: AtomicPtr::new(ptr::null_mut()),
                ready: AtomicBool::new(false),
            }))
        }
    }

    /// Creates the cache itself (shared memory, connections) in post_config, and its mutex when
    /// the provider needs one. Destroyed with `pconf`.
    pub fn init(self: &Arc<Self>, pconf: Pool) -> Result<(), ConfError> {
        let bad = |message: String| ConfError::new(ErrorKind::SessionCache, message);
        let pconf = pconf.as_ptr();
        // SAFETY: post_config, with the configuration pool; the provider API as socache documents it.
        unsafe {
            if (*self.provider).flags & sys::AP_SOCACHE_FLAG_NOTMPSAFE != 0 {
                let mut m: *mut sys::apr_global_mutex_t = ptr::null_mut();
                let rv = sys::ap_global_mutex_create(
                    &mut m,
                    ptr::null_mut(),
                    MUTEX_TYPE.as_ptr(),
                    ptr::null(),
                    self.server,
                    pconf,
                    0,
                );
                if rv != APR_SUCCESS {
                    return Err(bad(format!("cannot create the session cache mutex (error {rv})")));
                }
                self.mutex.store(m, Ordering::Release);
            }
            let hints =
                sys::ap_socache_hints { avg_id_len: 40, avg_obj_size: 300, expiry_interval: LIFETIME_SECS * 1_000_000 };
            let rv = ((*self.provider).init.expect("socache init"))(
                self.instance,
                c"mod_tls-sessions".as_ptr(),
                &hints,
                self.server,
                pconf,
            );
            if rv != APR_SUCCESS {
                return Err(bad(format!("the session cache {} could not be initialised (error {rv})", self.spec)));
            }
            // Destroy it with the configuration; the pool holds its own reference.
            let holder = crate::httpd::pool::attach(pconf, DestroyOnDrop(self.clone()));
            let _ = holder;
            self.ready.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Re-attaches the mutex in a freshly started child (child_init).
    pub fn child_init(&self, pchild: Pool) {
        let mut m = self.mutex.load(Ordering::Acquire);
        if !m.is_null() {
            // SAFETY: our mutex, created in the parent; the child's pool.
            unsafe {
                let lockfile = sys::apr_global_mutex_lockfile(m);
                sys::apr_global_mutex_child_init(&mut m, lockfile, pchild.as_ptr());
            }
            self.mutex.store(m, Ordering::Release);
        }
    }

    /// Prints the provider's status (for mod_status's server-status page).
    pub fn status(&self, r: Request<'_>, flags: StatusFlags) {
        if !self.is_ready() {
            return;
        }
        let flags = flags.raw();
        // SAFETY: a ready instance of this provider; the live status request.
        unsafe {
            if let Some(f) = (*self.provider).status {
                self.locked(|| f(self.instance, r.as_ptr(), flags));
            }
        }
    }

    fn locked<R>(&self, f: impl FnOnce() -> R) -> R {
        let m = self.mutex.load(Ordering::Acquire);
        if m.is_null() {
            return f();
        }
        unsafe { sys::apr_global_mutex_lock(m) };
        let r = f();
        unsafe { sys::apr_global_mutex_unlock(m) };
        r
    }

    /// Runs `f` with a pool for the provider: the current connection's, or a short-lived one.
    fn with_pool<R>(&self, f: impl FnOnce(*mut apr_pool_t) -> R) -> R {
        let pool = CONN_POOL.with(|c| c.get());
        if !pool.is_null() {
            return f(pool);
        }
        unsafe {
            let mut tmp: *mut apr_pool_t = ptr::null_mut();
            sys::apr_pool_create_unmanaged_ex(&mut tmp, None, ptr::null_mut());
            let r = f(tmp);
            sys::apr_pool_destroy(tmp);
            r
        }
    }

    fn retrieve_into(&self, key: &[u8], capacity: usize) -> Option<Vec<u8>> {
        // Not zeroed first: the provider writes the value, and only what it wrote is kept.
        let mut buf: Vec<u8> = Vec::with_capacity(capacity);
        let mut len = capacity as u32;
        let rv = self.with_pool(|pool| {
            self.locked(|| unsafe {
                ((*self.provider).retrieve.expect("socache retrieve"))(
                    self.instance,
                    self.server,
                    key.as_ptr(),
                    key.len() as u32,
                    buf.as_mut_ptr(),
                    &mut len,
                    pool,
                )
            })
        });
        if rv != APR_SUCCESS || len as usize > capacity {
            return None;
        }
        // SAFETY: the provider wrote `len` bytes (at most `capacity`) at the buffer's start.
        unsafe { buf.set_len(len as usize) };
        Some(buf)
    }
}

impl SessionStore for SessionCache {
    fn store(&self, key: &[u8], value: &mut [u8]) -> bool {
        if !self.is_ready() {
            return false;
        }
        let expiry = unsafe { sys::apr_time_now() } + LIFETIME_SECS * 1_000_000;
        let rv = self.with_pool(|pool| {
            self.locked(|| unsafe {
                ((*self.provider).store.expect("socache store"))(
                    self.instance,
                    self.server,
                    key.as_ptr(),
                    key.len() as u32,
                    expiry,
                    value.as_mut_ptr(),
                    value.len() as u32,
                    pool,
                )
            })
        });
        rv == APR_SUCCESS
    }

    fn retrieve(&self, key: &[u8]) -> Option<Vec<u8>> {
        if !self.is_ready() {
            return None;
        }
        self.retrieve_into(key, SMALL_SESSION_BYTES).or_else(|| self.retrieve_into(key, MAX_SESSION_BYTES))
    }

    fn remove(&self, key: &[u8]) {
        if !self.is_ready() {
            return;
        }
        self.with_pool(|pool| {
            self.locked(|| unsafe {
                ((*self.provider).remove.expect("socache remove"))(
                    self.instance,
                    self.server,
                    key.as_ptr(),
                    key.len() as u32,
                    pool,
                )
            })
        });
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// Owned by `pconf`: destroys the cache (shared memory, connections) with the configuration.
struct DestroyOnDrop(Arc<SessionCache>);

impl Drop for DestroyOnDrop {
    fn drop(&mut self) {
        let c = &self.0;
        if c.ready.swap(false, Ordering::AcqRel) {
            unsafe { ((*c.provider).destroy.expect("socache destroy"))(c.instance, c.server) };
        }
    }
}

/// Lets administrators configure the cache's lock with `Mutex ... tls-session-cache` (pre_config).
pub fn register_mutex(pconf: Pool) {
    // SAFETY: registering a mutex type name (static) in the configuration pool.
    unsafe {
        sys::ap_mutex_register(
            pconf.as_ptr(),
            MUTEX_TYPE.as_ptr(),
            ptr::null(),
            sys::apr_lockmech_e_APR_LOCK_DEFAULT,
            0,
        );
    }
}

/// Creates the `<runtime dir>/tls` directory the default cache lives in.
pub fn ensure_default_dir(p: Pool) {
    // SAFETY: a live pool; the result is a C string in it (or NULL).
    unsafe {
        let dir = sys::ap_runtime_dir_relative(p.as_ptr(), c"tls".as_ptr());
        if !dir.is_null() {
            let _ = std::fs::create_dir_all(cstr(dir as *const c_char).as_ref());
        }
    }
}
