//! httpd's shared object cache (socache: shmcb, dbm, memcache, redis, …): values under keys with
//! an expiry, shared by every child — or by every server of a fleet sharing memcached/redis.
//! The module stores its sessions here (its session store wraps a [`SessionCache`]).

use std::cell::Cell;
use std::ffi::{CString, c_char};
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use crate::hooks::StatusFlags;
use crate::sys::{self, ap_socache_instance_t, ap_socache_provider_t, apr_pool_t, server_rec};
use crate::{APR_NOTFOUND, APR_SUCCESS, Pool, Request, Server, Status, cstr, log};

/// The mutex type name, for the `Mutex` directive (`Mutex file:/run/lock tls-session-cache`).
pub const MUTEX_TYPE: &std::ffi::CStr = c"tls-session-cache";

/// Why a cache could not be made or started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocacheError {
    /// No provider of that name is registered (its module is not loaded).
    NoProvider { name: String },
    /// A name or arguments with a NUL byte.
    Unwritable,
    /// The provider refused its arguments, in its own words.
    Refused { spec: String, message: String },
    /// The global mutex could not be made (an APR status).
    Mutex(crate::Status),
    /// The provider's init failed (an APR status).
    Init { spec: String, status: crate::Status },
}

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
    /// A failed lock was logged (once per process is enough to tell the administrator).
    lock_failure_logged: AtomicBool,
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
    ) -> Result<Arc<SessionCache>, SocacheError> {
        let c_name = CString::new(name).map_err(|_| SocacheError::Unwritable)?;
        let c_args = CString::new(args).map_err(|_| SocacheError::Unwritable)?;
        let (main, pconf, ptemp) = (main.as_ptr(), pconf.as_ptr(), ptemp.as_ptr());
        // SAFETY: start-up, with live pools and server; the provider API as socache documents it.
        unsafe {
            let provider = sys::ap_lookup_provider(
                sys::AP_SOCACHE_PROVIDER_GROUP.as_ptr().cast(),
                c_name.as_ptr(),
                sys::AP_SOCACHE_PROVIDER_VERSION.as_ptr().cast(),
            ) as *const ap_socache_provider_t;
            if provider.is_null() {
                return Err(SocacheError::NoProvider { name: name.to_string() });
            }
            let mut instance: *mut ap_socache_instance_t = ptr::null_mut();
            let err = ((*provider).create.expect("socache create"))(&mut instance, c_args.as_ptr(), ptemp, pconf);
            if !err.is_null() {
                return Err(SocacheError::Refused { spec: format!("{name}:{args}"), message: cstr(err).into_owned() });
            }
            Ok(Arc::new(SessionCache {
                provider,
                instance,
                spec: format!("{name}:{args}"),
                server: main,
                mutex: AtomicPtr::new(ptr::null_mut()),
                ready: AtomicBool::new(false),
                lock_failure_logged: AtomicBool::new(false),
            }))
        }
    }

    /// Creates the cache itself (shared memory, connections) in post_config, and its mutex when
    /// the provider needs one. Destroyed with `pconf`. `expiry_hint_secs`: how long entries
    /// usually live (each carries its own expiry, see [`store`](Self::store)).
    pub fn init(self: &Arc<Self>, pconf: Pool, expiry_hint_secs: u32) -> Result<(), SocacheError> {
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
                if rv != APR_SUCCESS.code() {
                    return Err(SocacheError::Mutex(rv.into()));
                }
                self.mutex.store(m, Ordering::Release);
            }
            let hints = sys::ap_socache_hints {
                avg_id_len: 40,
                avg_obj_size: 300,
                expiry_interval: i64::from(expiry_hint_secs) * 1_000_000,
            };
            let rv = ((*self.provider).init.expect("socache init"))(
                self.instance,
                c"mod_tls-sessions".as_ptr(),
                &hints,
                self.server,
                pconf,
            );
            if rv != APR_SUCCESS.code() {
                return Err(SocacheError::Init { spec: self.spec.clone(), status: rv.into() });
            }
            // Destroy it with the configuration; the pool holds its own reference.
            let holder = crate::pool::attach(pconf, DestroyOnDrop(self.clone()));
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
                // A lock that cannot be taken was logged; the page shows no cache status then.
                let _shown = self.locked(|| f(self.instance, r.as_ptr(), flags));
            }
        }
    }

    /// Runs `f` holding the cache's global mutex, when the provider needs one. A lock that
    /// cannot be taken means no access at all (shmcb unlocked would corrupt the shared memory
    /// other children use): `None`, a miss for the caller, logged once per process.
    fn locked<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        let m = self.mutex.load(Ordering::Acquire);
        if m.is_null() {
            return Some(f());
        }
        // SAFETY: our mutex, created in post_config and re-attached in child_init.
        let rv = Status::from(unsafe { sys::apr_global_mutex_lock(m) });
        if rv != APR_SUCCESS {
            if !self.lock_failure_logged.swap(true, Ordering::Relaxed) {
                // SAFETY: the main server record of this cache's generation.
                let s = unsafe { Server::from_raw(self.server) };
                crate::log_server!(
                    s,
                    log::ERR,
                    rv,
                    "mod_tls: cannot lock the session cache {} (mutex {}): sessions are not stored or \
                     resumed meanwhile; check the Mutex directive's directory",
                    self.spec,
                    MUTEX_TYPE.to_string_lossy()
                );
            }
            return None;
        }
        /// Unlocks when dropped, also if `f` unwinds.
        struct Unlock(*mut sys::apr_global_mutex_t);
        impl Drop for Unlock {
            fn drop(&mut self) {
                // SAFETY: the mutex this thread locked above.
                unsafe { sys::apr_global_mutex_unlock(self.0) };
            }
        }
        let _unlock = Unlock(m);
        Some(f())
    }

    /// Runs `f` with a pool for the provider: the current connection's, or a short-lived one.
    fn with_pool<R>(&self, f: impl FnOnce(*mut apr_pool_t) -> R) -> R {
        let pool = CONN_POOL.with(|c| c.get());
        if !pool.is_null() {
            return f(pool);
        }
        /// Destroys the short-lived pool, also if `f` unwinds.
        struct Destroy(*mut apr_pool_t);
        impl Drop for Destroy {
            fn drop(&mut self) {
                // SAFETY: the unmanaged pool created below, used by nothing else.
                unsafe { sys::apr_pool_destroy(self.0) };
            }
        }
        let mut tmp: *mut apr_pool_t = ptr::null_mut();
        // SAFETY: creates an unmanaged pool, destroyed by the guard.
        unsafe { sys::apr_pool_create_unmanaged_ex(&mut tmp, None, ptr::null_mut()) };
        let _destroy = Destroy(tmp);
        f(tmp)
    }

    /// One retrieve call with room for `capacity` bytes (the caller holds the lock if any).
    fn retrieve_unlocked(&self, key: &[u8], capacity: usize, pool: *mut apr_pool_t) -> Lookup {
        // Not zeroed first: the provider writes the value, and only what it wrote is kept.
        let mut buf: Vec<u8> = Vec::with_capacity(capacity);
        let mut len = capacity as u32;
        // SAFETY: a ready instance; `buf` has room for `len` bytes, written by the provider.
        let rv = unsafe {
            ((*self.provider).retrieve.expect("socache retrieve"))(
                self.instance,
                self.server,
                key.as_ptr(),
                key.len() as u32,
                buf.as_mut_ptr(),
                &mut len,
                pool,
            )
        };
        match Status::from(rv) {
            APR_SUCCESS if len as usize <= capacity => {
                // SAFETY: the provider wrote `len` bytes (at most `capacity`) at the buffer's start.
                unsafe { buf.set_len(len as usize) };
                Lookup::Found(buf)
            }
            APR_NOTFOUND => Lookup::Missing,
            // Too large for the buffer (providers report it as an error of their own) or
            // another failure: a larger buffer may find it.
            _ => Lookup::Unread,
        }
    }

    /// A lookup, with a second try with room for the largest session only when the first
    /// one found something it could not read into a small buffer (a miss costs one lookup).
    fn retrieve_locked(&self, key: &[u8], pool: *mut apr_pool_t) -> Option<Vec<u8>> {
        match self.retrieve_unlocked(key, SMALL_SESSION_BYTES, pool) {
            Lookup::Found(v) => Some(v),
            Lookup::Missing => None,
            Lookup::Unread => match self.retrieve_unlocked(key, MAX_SESSION_BYTES, pool) {
                Lookup::Found(v) => Some(v),
                _ => None,
            },
        }
    }

    fn remove_unlocked(&self, key: &[u8], pool: *mut apr_pool_t) {
        // SAFETY: a ready instance of this provider.
        unsafe {
            ((*self.provider).remove.expect("socache remove"))(
                self.instance,
                self.server,
                key.as_ptr(),
                key.len() as u32,
                pool,
            )
        };
    }
}

/// What one retrieve call found.
enum Lookup {
    Found(Vec<u8>),
    Missing,
    Unread,
}

impl SessionCache {
    /// Stores `value` under `key` until `expires_at` (seconds since the epoch); false when the
    /// cache is not ready or the provider refused.
    pub fn store(&self, key: &[u8], value: &mut [u8], expires_at: u64) -> bool {
        if !self.is_ready() {
            return false;
        }
        let expiry = i64::try_from(expires_at).unwrap_or(i64::MAX / 1_000_000) * 1_000_000;
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
        rv.map(Status::from) == Some(APR_SUCCESS)
    }

    /// The value under `key`, if any.
    pub fn retrieve(&self, key: &[u8]) -> Option<Vec<u8>> {
        if !self.is_ready() {
            return None;
        }
        self.with_pool(|pool| self.locked(|| self.retrieve_locked(key, pool))).flatten()
    }

    /// With the global mutex (shmcb), retrieving and removing is one step for every process of
    /// the machine. Providers without one (memcache, redis) have no such operation in socache's
    /// API: two servers of a fleet could each redeem the same ticket once.
    pub fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        if !self.is_ready() {
            return None;
        }
        self.with_pool(|pool| {
            self.locked(|| {
                let v = self.retrieve_locked(key, pool)?;
                self.remove_unlocked(key, pool);
                Some(v)
            })
        })
        .flatten()
    }

    /// Whether the cache is started (post_config) and not yet destroyed.
    pub fn is_ready(&self) -> bool {
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
