//! The directive table (`AP_INIT_*` done by hand): one row per directive — name, argument shape,
//! where it may be written, help — whose handler is a plain Rust function. A generic thunk per
//! argument shape converts httpd's C arguments, catches panics, and turns the handler's error
//! (any `Display`) into the sentence httpd prints after the file and line.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::fmt::Display;
use std::path::PathBuf;
use std::ptr;

use crate::record::{CommandList, DirRef, Module};
use crate::{Pool, Server, catch_panic, cstr, sys};

/// Where a directive is written: its file and line (`(command line)`, 0 for `-C`/`-c`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub file: String,
    pub line: u32,
}

/// A path `ap_server_root_relative` could not make (a NUL byte in it, or no memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPath;

/// Where a directive may be written (httpd's `req_override`).
#[derive(Clone, Copy)]
pub struct Scope(u32);

impl Scope {
    /// The top level and `<VirtualHost>`.
    pub const SERVER: Scope = Scope(sys::RSRC_CONF);
    /// As `SERVER`, plus directory sections (so that the handler can say why not there).
    pub const SERVER_OR_DIRECTORY: Scope = Scope(sys::RSRC_CONF | sys::ACCESS_CONF);
    /// As `SERVER`, plus `<Proxy>` sections.
    pub const SERVER_OR_PROXY: Scope = Scope(sys::RSRC_CONF | sys::PROXY_CONF);
    /// Anywhere `Options` may be, `.htaccess` with `AllowOverride Options` included.
    pub const OPTIONS: Scope = Scope(sys::OR_OPTIONS);
}

/// The directive being read: where it was written and the configuration it changes.
pub struct Cmd {
    raw: *mut sys::cmd_parms,
    /// The section's per-directory configuration (`mconfig`).
    dir: *mut c_void,
}

impl Cmd {
    fn parms(&self) -> &sys::cmd_parms {
        // SAFETY: httpd passes a live cmd_parms for the handler's call, which a `Cmd` never outlives.
        unsafe { &*self.raw }
    }

    /// The file and line of the directive.
    pub fn written(&self) -> Written {
        let d = self.parms().directive;
        if d.is_null() {
            return Written { file: "(command line)".into(), line: 0 };
        }
        // SAFETY: the directive node being read.
        unsafe { Written { file: cstr((*d).filename).into_owned(), line: (*d).line_num.max(0) as u32 } }
    }

    /// The server (main or `<VirtualHost>`) the directive is written in.
    pub fn server(&self) -> Server {
        // SAFETY: httpd sets the server being configured.
        unsafe { Server::from_raw(self.parms().server) }.expect("a directive belongs to a server")
    }

    /// Inside `<Directory>`, `<Location>`, `<Files>` or `.htaccess` (not a server's top level).
    pub fn in_directory(&self) -> bool {
        !self.parms().path.is_null()
    }

    /// The configuration pool.
    fn pool(&self) -> Pool {
        // SAFETY: the pool of the configuration being read.
        unsafe { Pool::from_raw(self.parms().pool) }
    }

    /// A value kept in the configuration pool under `key` for this configuration generation, for
    /// start-up to read (see [`Startup::config_userdata`](crate::hooks::Startup::config_userdata)).
    pub fn config_userdata<T: 'static>(&self, key: &'static CStr, init: impl FnOnce() -> T) -> &std::cell::RefCell<T> {
        self.pool().userdata(key, init)
    }

    /// Module `M`'s configuration of the server the directive is written in.
    pub fn server_config<M: Module>(&mut self) -> &mut M::Server {
        // SAFETY: configuration is read on one thread; this borrow of the handler's `Cmd` is
        // the only reference handed out while it lives.
        unsafe {
            let server = self.parms().server.as_ref().expect("httpd passes the server a directive is in");
            (sys::ap_get_module_config(server.module_config, M::record().as_ptr()) as *mut M::Server)
                .as_mut()
                .expect("this server's mod_tls configuration is missing (a panic while creating it)")
        }
    }

    /// Module `M`'s configuration of the section the directive is written in.
    pub fn dir_config<M: Module>(&mut self) -> &mut M::Dir {
        // SAFETY: `mconfig` is what create_dir_config::<M> made for this section (NULL after a
        // panic there: the directive then fails); as above.
        unsafe { (self.dir as *mut M::Dir).as_mut() }
            .expect("this section's mod_tls configuration is missing (a panic while creating it)")
    }

    /// A reference to that section's configuration, to read again in check_config.
    pub fn dir_ref<M: Module>(&self) -> DirRef<M> {
        DirRef::new(self.dir as *mut M::Dir).expect("httpd passes each section's configuration")
    }

    /// `path` relative to the ServerRoot (absolute paths stay as they are).
    pub fn server_relative(&self, path: &str) -> Result<PathBuf, BadPath> {
        let c_path = std::ffi::CString::new(path).map_err(|_| BadPath)?;
        // In a pool of its own, destroyed once the path is copied: the configuration pool (and
        // the temporary one, until the pass ends) would keep it, with thousands of vhosts two
        // per TLSCertificate; a destroyed pool's memory is what the next one gets.
        let mut own: *mut sys::apr_pool_t = ptr::null_mut();
        // SAFETY: a pool under the configuration pool, live while the directive is read.
        if unsafe { sys::apr_pool_create_ex(&mut own, self.parms().pool, None, ptr::null_mut()) } != 0 {
            return Err(BadPath);
        }
        // SAFETY: the live pool just made; a C string.
        let p = unsafe { sys::ap_server_root_relative(own, c_path.as_ptr()) };
        // SAFETY: a string in that pool, copied before it goes.
        let made = (!p.is_null()).then(|| PathBuf::from(unsafe { cstr(p) }.into_owned()));
        // SAFETY: the pool made above, which nothing else uses.
        unsafe { sys::apr_pool_destroy(own) };
        made.ok_or(BadPath)
    }
}

/// One row of the table.
#[repr(transparent)]
pub struct Directive(sys::command_rec);

/// The rows, followed by the zeroed row httpd stops at.
#[repr(C)]
pub struct CommandTable<const N: usize> {
    rows: [Directive; N],
    end: sys::command_rec,
}

// SAFETY: read-only after construction; holds pointers to static strings and functions.
unsafe impl<const N: usize> Sync for CommandTable<N> {}

impl<const N: usize> CommandTable<N> {
    pub const fn new(rows: [Directive; N]) -> Self {
        CommandTable {
            rows,
            end: sys::command_rec {
                name: ptr::null(),
                func: sys::cmd_func { no_args: None },
                cmd_data: ptr::null_mut(),
                req_override: 0,
                args_how: 0,
                errmsg: ptr::null(),
            },
        }
    }

    /// The table as the module record points to it.
    pub const fn list(&'static self) -> CommandList {
        CommandList(self.rows.as_ptr() as *const sys::command_rec)
    }
}

/// The handler a thunk was instantiated for. Handlers are function items (or closures without
/// captures): zero-sized types with exactly one value, so the type alone names the function and
/// the table needs no pointer to any state.
fn handler<F: Copy>() -> F {
    const {
        assert!(
            std::mem::size_of::<F>() == 0,
            "a directive handler must be a fn item, not a pointer or closure with captures"
        )
    };
    // SAFETY: a zero-sized type without invariants has one value, made of no bytes.
    unsafe { std::mem::zeroed() }
}

const fn row(
    name: &'static CStr,
    func: sys::cmd_func,
    args_how: sys::cmd_how,
    scope: Scope,
    help: &'static CStr,
) -> Directive {
    Directive(sys::command_rec {
        name: name.as_ptr(),
        func,
        cmd_data: ptr::null_mut(),
        req_override: scope.0 as c_int,
        args_how,
        errmsg: help.as_ptr(),
    })
}

/// `Name on|off`.
pub const fn flag<F: Fn(&mut Cmd, bool) -> Result<(), E> + Copy, E: Display>(
    name: &'static CStr,
    _f: F,
    scope: Scope,
    help: &'static CStr,
) -> Directive {
    row(name, sys::cmd_func { flag: Some(flag_thunk::<F, E>) }, sys::cmd_how_FLAG, scope, help)
}

/// `Name value`.
pub const fn take1<F: Fn(&mut Cmd, &str) -> Result<(), E> + Copy, E: Display>(
    name: &'static CStr,
    _f: F,
    scope: Scope,
    help: &'static CStr,
) -> Directive {
    row(name, sys::cmd_func { take1: Some(take1_thunk::<F, E>) }, sys::cmd_how_TAKE1, scope, help)
}

/// `Name value [value2]`.
pub const fn take12<F: Fn(&mut Cmd, &str, Option<&str>) -> Result<(), E> + Copy, E: Display>(
    name: &'static CStr,
    _f: F,
    scope: Scope,
    help: &'static CStr,
) -> Directive {
    row(name, sys::cmd_func { take2: Some(take12_thunk::<F, E>) }, sys::cmd_how_TAKE12, scope, help)
}

/// `Name anything…`: the handler gets the whole rest of the line, as written.
pub const fn raw_args<F: Fn(&mut Cmd, &str) -> Result<(), E> + Copy, E: Display>(
    name: &'static CStr,
    _f: F,
    scope: Scope,
    help: &'static CStr,
) -> Directive {
    row(name, sys::cmd_func { take1: Some(take1_thunk::<F, E>) }, sys::cmd_how_RAW_ARGS, scope, help)
}

/// `Name word word …`: the handler runs once per word.
pub const fn iterate<F: Fn(&mut Cmd, &str) -> Result<(), E> + Copy, E: Display>(
    name: &'static CStr,
    _f: F,
    scope: Scope,
    help: &'static CStr,
) -> Directive {
    row(name, sys::cmd_func { take1: Some(take1_thunk::<F, E>) }, sys::cmd_how_ITERATE, scope, help)
}

/// Runs a handler: `Err` becomes httpd's syntax error, which httpd prefixes with file and line.
fn run<E: Display>(
    raw: *mut sys::cmd_parms,
    dir: *mut c_void,
    f: impl FnOnce(&mut Cmd) -> Result<(), E>,
) -> *const c_char {
    let mut cmd = Cmd { raw, dir };
    let result = catch_panic(
        Err("internal error while reading this directive (see the error log)".to_string()),
        |m| crate::log_server!(Option::<Server>::None, crate::log::EMERG, 0, "panic in directive handler: {m}"),
        || f(&mut cmd).map_err(|e| e.to_string()),
    );
    match result {
        Ok(()) => ptr::null(),
        Err(sentence) => cmd.pool().strdup(&sentence),
    }
}

unsafe extern "C" fn flag_thunk<F: Fn(&mut Cmd, bool) -> Result<(), E> + Copy, E: Display>(
    cmd: *mut sys::cmd_parms,
    dir: *mut c_void,
    on: c_int,
) -> *const c_char {
    run(cmd, dir, |c| handler::<F>()(c, on != 0))
}

unsafe extern "C" fn take1_thunk<F: Fn(&mut Cmd, &str) -> Result<(), E> + Copy, E: Display>(
    cmd: *mut sys::cmd_parms,
    dir: *mut c_void,
    arg: *const c_char,
) -> *const c_char {
    // SAFETY: httpd passes the argument as a C string.
    run(cmd, dir, |c| handler::<F>()(c, &unsafe { cstr(arg) }))
}

unsafe extern "C" fn take12_thunk<F: Fn(&mut Cmd, &str, Option<&str>) -> Result<(), E> + Copy, E: Display>(
    cmd: *mut sys::cmd_parms,
    dir: *mut c_void,
    first: *const c_char,
    second: *const c_char,
) -> *const c_char {
    // SAFETY: httpd passes C strings; the second is NULL when not written.
    let (first, second) = unsafe { (cstr(first), (!second.is_null()).then(|| cstr(second))) };
    run(cmd, dir, |c| handler::<F>()(c, &first, second.as_deref()))
}
