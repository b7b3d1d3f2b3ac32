//! The module record httpd loads (`STANDARD20_MODULE_STUFF` done by hand), and the typed
//! configuration it carries: a module describes its per-server, per-directory and per-connection
//! types once ([`Module`]), and this layer creates, merges, stores and hands them back, so that
//! the layer above never casts a `void *`.

use std::cell::{RefCell, UnsafeCell};
use std::ffi::{CStr, c_char, c_int, c_ulong, c_void};
use std::ptr;

use crate::{Pool, catch_panic, sys};

/// What a module keeps in httpd's configuration vectors, and its hook registration.
pub trait Module: 'static {
    /// Per-server configuration (one per server record, merged for vhosts).
    type Server: 'static;
    /// Per-directory configuration (sections, `.htaccess`, `<Proxy>`).
    type Dir: 'static;
    /// What any thread may read of a connection the module took (HTTP/2 streams run on other
    /// threads than their connection).
    type ConnShared: Sync + 'static;
    /// What only the connection's own thread uses.
    type ConnLocal: 'static;

    /// The exported record (see [`export_module!`](crate::export_module)).
    fn record() -> &'static ModuleRecord;
    fn create_server() -> Self::Server;
    /// A vhost's record under the main server's: the result takes the place of `add` (httpd
    /// keeps only the merged record of a vhost).
    fn merge_server(base: &Self::Server, add: &Self::Server) -> Self::Server;
    fn create_dir() -> Self::Dir;
    fn merge_dir(base: &Self::Dir, add: &Self::Dir) -> Self::Dir;
    /// Whether `add` changes nothing of whatever it is merged under (`merge_dir(base, add)` would
    /// equal `base`): the merge is then `base` itself, shared instead of copied. httpd merges
    /// each vhost's defaults under the main server's, and each request's sections, this way.
    fn dir_adds_nothing(_add: &Self::Dir) -> bool {
        false
    }
    /// Registers the hooks and filters (after this layer has noted the module's index).
    fn register_hooks();
}

/// A terminated directive table of any length (see `command::CommandTable::list`), for
/// [`ModuleRecord::new`].
#[derive(Clone, Copy)]
pub struct CommandList(pub(crate) *const sys::command_rec);

/// httpd writes `module_index` and `next` into the record, so it must be mutable memory.
#[repr(transparent)]
pub struct ModuleRecord(UnsafeCell<sys::module>);

// SAFETY: httpd only writes the record while loading modules, single-threaded.
unsafe impl Sync for ModuleRecord {}

impl ModuleRecord {
    /// The record of module `M`, named `name` (also what `LogLevel name:debug` uses, minus `.c`
    /// and `mod_`), with its directive table.
    pub const fn new<M: Module>(name: &'static CStr, commands: CommandList) -> ModuleRecord {
        ModuleRecord(UnsafeCell::new(sys::module {
            version: sys::MODULE_MAGIC_NUMBER_MAJOR as c_int,
            minor_version: sys::MODULE_MAGIC_NUMBER_MINOR as c_int,
            module_index: -1,
            name: name.as_ptr(),
            dynamic_load_handle: ptr::null_mut(),
            next: ptr::null_mut(),
            magic: sys::MODULE_MAGIC_COOKIE as c_ulong,
            rewrite_args: None,
            create_dir_config: Some(create_dir_config::<M>),
            merge_dir_config: Some(merge_dir_config::<M>),
            create_server_config: Some(create_server_config::<M>),
            merge_server_config: Some(merge_server_config::<M>),
            cmds: commands.0,
            register_hooks: Some(register_hooks::<M>),
            // Merge vhost configs even for vhosts without any of the module's directives: they
            // inherit from the main server.
            flags: sys::AP_MODULE_FLAG_ALWAYS_MERGE as c_int,
        }))
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::module {
        self.0.get()
    }
}

/// Exports a module record under the symbol `LoadModule` names:
/// `export_module!(tls_module, TlsModule, c"mod_tls.c", COMMANDS.list());`
#[macro_export]
macro_rules! export_module {
    ($symbol:ident, $module:ty, $name:expr, $commands:expr) => {
        #[unsafe(no_mangle)]
        pub static $symbol: $crate::record::ModuleRecord =
            $crate::record::ModuleRecord::new::<$module>($name, $commands);
    };
}

unsafe extern "C" fn register_hooks<M: Module>(_p: *mut sys::apr_pool_t) {
    catch_panic(
        (),
        |m| crate::log_panic("registering the module's hooks", m),
        || {
            crate::set_module(M::record().as_ptr());
            M::register_hooks();
        },
    )
}

/// A configuration made by `make`, owned by pool `p`, as httpd's create callbacks return it
/// (NULL after a panic).
fn pool_owned<T>(p: *mut sys::apr_pool_t, make: impl FnOnce() -> T) -> *mut c_void {
    // SAFETY: httpd passes a live pool to create and merge callbacks.
    catch_panic(
        ptr::null_mut(),
        |m| crate::log_panic("creating a configuration", m),
        || unsafe { Pool::from_raw(p) }.attach(make()).cast(),
    )
}

/// What httpd's merge callbacks return: `merge` of the two configurations they pass.
///
/// # Safety
/// `base` and `add` must be configurations of type `T` that `pool_owned` made (or NULL).
unsafe fn merged<T>(
    p: *mut sys::apr_pool_t,
    base: *mut c_void,
    add: *mut c_void,
    merge: fn(&T, &T) -> T,
) -> *mut c_void {
    // SAFETY: as documented; NULL when making one of them panicked.
    let (Some(base), Some(add)) = (unsafe { ((base as *const T).as_ref(), (add as *const T).as_ref()) }) else {
        // Missing stays missing: start-up refuses a server without its configuration.
        return ptr::null_mut();
    };
    pool_owned(p, || merge(base, add))
}

unsafe extern "C" fn create_server_config<M: Module>(p: *mut sys::apr_pool_t, _s: *mut sys::server_rec) -> *mut c_void {
    pool_owned(p, M::create_server)
}

/// httpd merges each vhost's record once (`ap_fixup_virtual_hosts`) and from then on holds only
/// the merged one, while the vhost's own stays allocated until the generation ends: so the
/// merged values take the place of the vhost's own, in its allocation, and a vhost holds one
/// record instead of two (with thousands of vhosts, a record and a pool cleanup each).
unsafe extern "C" fn merge_server_config<M: Module>(
    p: *mut sys::apr_pool_t,
    base: *mut c_void,
    add: *mut c_void,
) -> *mut c_void {
    if base == add {
        // Not what httpd does; a new record keeps both intact should it ever.
        // SAFETY: both are what create/merge_server_config::<M> returned.
        return unsafe { merged(p, base, add, M::merge_server) };
    }
    // SAFETY: both are what create/merge_server_config::<M> returned (or NULL), two records;
    // httpd reads no configuration while it merges, and forgets `add` once it has the result.
    let (Some(base), Some(own)) = (unsafe { ((base as *const M::Server).as_ref(), (add as *mut M::Server).as_mut()) })
    else {
        // Missing stays missing: start-up refuses a server without its configuration.
        return ptr::null_mut();
    };
    catch_panic(
        ptr::null_mut(),
        |m| crate::log_panic("merging a configuration", m),
        || {
            // Merged first: a panic leaves the vhost's own record as it was (and NULL in its slot).
            *own = M::merge_server(base, own);
            (own as *mut M::Server).cast()
        },
    )
}

unsafe extern "C" fn create_dir_config<M: Module>(p: *mut sys::apr_pool_t, _dir: *mut c_char) -> *mut c_void {
    pool_owned(p, M::create_dir)
}

unsafe extern "C" fn merge_dir_config<M: Module>(
    p: *mut sys::apr_pool_t,
    base: *mut c_void,
    add: *mut c_void,
) -> *mut c_void {
    // SAFETY: what create/merge_dir_config::<M> returned (or NULL), read only; `base` lives in a
    // pool at least as long as the one the merge is for (an enclosing scope's), and nothing
    // writes a configuration once merged.
    if !base.is_null() && unsafe { (add as *const M::Dir).as_ref() }.is_some_and(M::dir_adds_nothing) {
        return base;
    }
    // SAFETY: both are what create/merge_dir_config::<M> returned.
    unsafe { merged(p, base, add, M::merge_dir) }
}

/// What a connection's slot of module `M` holds: the part any thread may read, and the part only
/// the connection's own thread uses, behind a `RefCell` (filters and hooks of one connection run
/// one at a time on that thread; a re-entrant use is refused, not allowed to alias).
pub struct ConnSlot<M: Module> {
    pub shared: M::ConnShared,
    pub local: RefCell<M::ConnLocal>,
}

/// A per-directory configuration vector (`ap_conf_vector_t`) httpd hands a hook, e.g. the
/// `<Proxy>` section's for a backend connection.
#[derive(Clone, Copy)]
pub struct ConfVector(ptr::NonNull<sys::ap_conf_vector_t>);

impl ConfVector {
    /// # Safety
    /// `v` must be NULL or a per-directory vector of the current configuration generation.
    pub(crate) unsafe fn from_raw(v: *mut sys::ap_conf_vector_t) -> Option<ConfVector> {
        ptr::NonNull::new(v).map(ConfVector)
    }

    /// Module `M`'s directory configuration in this vector (none when creating it failed).
    pub fn dir<M: Module>(self) -> Option<&'static M::Dir> {
        // SAFETY: per-directory vectors hold NULL or what `M::create_dir`/`merge_dir` made in our
        // slot, owned by the configuration pool.
        unsafe { (sys::ap_get_module_config(self.0.as_ptr(), M::record().as_ptr()) as *const M::Dir).as_ref() }
    }
}

/// A section's directory configuration of module `M`, kept from a directive handler for
/// check_config (valid as long as the configuration pool it lives in).
pub struct DirRef<M: Module>(ptr::NonNull<M::Dir>);

impl<M: Module> Clone for DirRef<M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M: Module> Copy for DirRef<M> {}
impl<M: Module> PartialEq for DirRef<M> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<M: Module> DirRef<M> {
    pub(crate) fn new(d: *mut M::Dir) -> Option<DirRef<M>> {
        ptr::NonNull::new(d).map(DirRef)
    }

    /// The configuration, once httpd has read every directive (check_config and later).
    pub fn get(self) -> &'static M::Dir {
        // SAFETY: made by create_dir_config::<M> in the configuration pool, which outlives the
        // generation; directive handlers, the only writers, have all run.
        unsafe { &*self.0.as_ptr() }
    }
}
