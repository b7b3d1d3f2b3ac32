//! Hook registration (the `ap_hook_*` macros done by hand) with a generic thunk per hook: the
//! module's hook is a plain Rust function over typed handles; the thunk converts httpd's
//! pointers, catches a panic (which must never unwind into httpd) and answers what httpd expects
//! when one happens.

use std::ffi::{c_char, c_int, c_void};
use std::ptr;

use crate::record::ConfVector;
use crate::{
    Conn, DECLINED, DONE, HTTP_INTERNAL_SERVER_ERROR, HookResult, OK, Pool, Request, Server, catch_panic, cstr, log,
    sys,
};

/// Where among the other modules' functions a hook runs.
#[derive(Clone, Copy)]
pub enum Order {
    First,
    Middle,
}

impl Order {
    fn value(self) -> c_int {
        match self {
            Order::First => sys::APR_HOOK_FIRST as c_int,
            Order::Middle => sys::APR_HOOK_MIDDLE as c_int,
        }
    }
}

/// What the start-up hooks (check_config, post_config) get: the pools and the main server, while
/// httpd's single configuration thread runs them.
pub struct Startup {
    pub pconf: Pool,
    pub ptemp: Pool,
    pub main: Server,
}

impl Startup {
    /// A value kept in the configuration pool under `key` for this configuration generation
    /// (what directive handlers noted with [`Cmd::config_userdata`](crate::command::Cmd::config_userdata)).
    pub fn config_userdata<T: 'static>(
        &self,
        key: &'static std::ffi::CStr,
        init: impl FnOnce() -> T,
    ) -> &std::cell::RefCell<T> {
        self.pconf.userdata(key, init)
    }

    /// A string remembered in the process pool under `key`: it outlives configuration reloads
    /// (and the module's own code, which httpd may unload and load again at another address, so
    /// nothing but plain bytes is kept there).
    pub fn process_note(&self, key: &str) -> Option<String> {
        self.main.process_pool().get_string(key)
    }

    /// Remembers `value` under `key` in the process pool (see [`process_note`](Self::process_note)).
    pub fn set_process_note(&self, key: &str, value: &str) {
        self.main.process_pool().set_string(key, value)
    }

    /// The first of httpd's two start-up passes, which only checks the configuration (the
    /// second one serves).
    pub fn is_first_pass(&self) -> bool {
        // SAFETY: a plain query of httpd's state.
        unsafe { sys::ap_state_query(sys::AP_SQ_MAIN_STATE as c_int) == sys::AP_SQ_MS_CREATE_PRE_CONFIG as c_int }
    }
}

/// The hook function a thunk was instantiated for (see `command::handler`: hooks too are fn
/// items, zero-sized, so their type names them).
fn hook<F: Copy>() -> F {
    const { assert!(std::mem::size_of::<F>() == 0, "a hook must be a fn item, not a pointer or closure with captures") };
    // SAFETY: a zero-sized type without invariants has one value, made of no bytes.
    unsafe { std::mem::zeroed() }
}

const NONE: *const *const c_char = ptr::null();

pub fn pre_config<F: Fn(Pool) -> HookResult + Copy>(_f: F, order: Order) {
    unsafe extern "C" fn thunk<F: Fn(Pool) -> HookResult + Copy>(
        pconf: *mut sys::apr_pool_t,
        _plog: *mut sys::apr_pool_t,
        _ptemp: *mut sys::apr_pool_t,
    ) -> c_int {
        // SAFETY: httpd passes the configuration pool.
        catch_panic(
            HTTP_INTERNAL_SERVER_ERROR,
            |m| crate::log_panic("before reading the configuration", m),
            || hook::<F>()(unsafe { Pool::from_raw(pconf) }),
        )
        .code()
    }
    // SAFETY: registering a hook with its signature.
    unsafe { sys::ap_hook_pre_config(Some(thunk::<F>), NONE, NONE, order.value()) };
}

type StartupFn = unsafe extern "C" fn(
    *mut sys::apr_pool_t,
    *mut sys::apr_pool_t,
    *mut sys::apr_pool_t,
    *mut sys::server_rec,
) -> c_int;

unsafe extern "C" fn startup_thunk<F: Fn(&Startup) -> HookResult + Copy>(
    pconf: *mut sys::apr_pool_t,
    _plog: *mut sys::apr_pool_t,
    ptemp: *mut sys::apr_pool_t,
    s: *mut sys::server_rec,
) -> c_int {
    // SAFETY: httpd passes live pools and the main server.
    let (pconf, ptemp, main) = unsafe { (Pool::from_raw(pconf), Pool::from_raw(ptemp), Server::from_raw(s)) };
    let Some(main) = main else { return HTTP_INTERNAL_SERVER_ERROR.code() };
    catch_panic(
        HTTP_INTERNAL_SERVER_ERROR,
        |m| crate::log_server!(main, log::EMERG, 0, "mod_tls: internal error while starting: {m}"),
        || hook::<F>()(&Startup { pconf, ptemp, main }),
    )
    .code()
}

/// Runs before `apache2 -t` reports, and on every (re)start.
pub fn check_config<F: Fn(&Startup) -> HookResult + Copy>(_f: F, order: Order) {
    let thunk: StartupFn = startup_thunk::<F>;
    // SAFETY: registering a hook with its signature.
    unsafe { sys::ap_hook_check_config(Some(thunk), NONE, NONE, order.value()) };
}

/// Runs twice at start-up (see [`Startup::is_first_pass`]), and on every restart.
pub fn post_config<F: Fn(&Startup) -> HookResult + Copy>(_f: F, order: Order) {
    let thunk: StartupFn = startup_thunk::<F>;
    // SAFETY: registering a hook with its signature.
    unsafe { sys::ap_hook_post_config(Some(thunk), NONE, NONE, order.value()) };
}

/// Runs only for `apache2 -t` (and `-DDUMP_*`), after check_config: what start-up would log once
/// the error log is open (in post_config) is said here instead, on the terminal.
pub fn test_config<F: Fn(Server) + Copy>(_f: F, order: Order) {
    unsafe extern "C" fn thunk<F: Fn(Server) + Copy>(_pconf: *mut sys::apr_pool_t, s: *mut sys::server_rec) {
        catch_panic(
            (),
            |m| crate::log_panic("checking the configuration", m),
            || {
                // SAFETY: httpd passes the main server.
                if let Some(s) = unsafe { Server::from_raw(s) } {
                    hook::<F>()(s)
                }
            },
        )
    }
    // SAFETY: registering a hook with its signature.
    unsafe { sys::ap_hook_test_config(Some(thunk::<F>), NONE, NONE, order.value()) };
}

pub fn child_init<F: Fn(Pool, Server) + Copy>(_f: F, order: Order) {
    unsafe extern "C" fn thunk<F: Fn(Pool, Server) + Copy>(pchild: *mut sys::apr_pool_t, s: *mut sys::server_rec) {
        catch_panic(
            (),
            |m| crate::log_panic("starting a child process", m),
            || {
                // SAFETY: httpd passes the child's pool and the main server.
                if let Some(s) = unsafe { Server::from_raw(s) } {
                    hook::<F>()(unsafe { Pool::from_raw(pchild) }, s)
                }
            },
        )
    }
    // SAFETY: registering a hook with its signature.
    unsafe { sys::ap_hook_child_init(Some(thunk::<F>), NONE, NONE, order.value()) };
}

/// A connection hook that panicked: the connection is closed (marked aborted), never served.
fn abort_on_panic(c: Conn, what: &str, m: &str) {
    c.abort();
    crate::log_conn!(c, log::ERR, 0, "internal error (panic) {what}, closing this connection: {m}");
}

/// A panic answers DECLINED with the connection marked aborted: core's own pre_connection, which
/// runs after ours, must still record the socket and add the core filters, or the MPM's lingering
/// close finds no socket.
pub fn pre_connection<F: Fn(Conn) -> HookResult + Copy>(_f: F, order: Order) {
    unsafe extern "C" fn thunk<F: Fn(Conn) -> HookResult + Copy>(c: *mut sys::conn_rec, _csd: *mut c_void) -> c_int {
        // SAFETY: httpd passes a live connection, on its thread.
        let Some(c) = (unsafe { Conn::from_raw(c) }) else { return DECLINED.code() };
        catch_panic(DECLINED, |m| abort_on_panic(c, "setting up TLS", m), || hook::<F>()(c)).code()
    }
    // SAFETY: registering a hook with its signature.
    unsafe { sys::ap_hook_pre_connection(Some(thunk::<F>), NONE, NONE, order.value()) };
}

/// A panic answers DONE with the connection aborted.
pub fn process_connection<F: Fn(Conn) -> HookResult + Copy>(_f: F, order: Order) {
    unsafe extern "C" fn thunk<F: Fn(Conn) -> HookResult + Copy>(c: *mut sys::conn_rec) -> c_int {
        // SAFETY: httpd passes a live connection, on its thread.
        let Some(c) = (unsafe { Conn::from_raw(c) }) else { return DECLINED.code() };
        catch_panic(DONE, |m| abort_on_panic(c, "in the TLS handshake", m), || hook::<F>()(c)).code()
    }
    // SAFETY: registering a hook with its signature.
    unsafe { sys::ap_hook_process_connection(Some(thunk::<F>), NONE, NONE, order.value()) };
}

/// Runs when httpd is about to close a connection (after the last request, a failure, or a
/// timeout of the MPM's), on the thread that closes it. A panic is only logged.
pub fn pre_close_connection<F: Fn(Conn) + Copy>(_f: F, order: Order) {
    unsafe extern "C" fn thunk<F: Fn(Conn) + Copy>(c: *mut sys::conn_rec) -> c_int {
        // SAFETY: httpd passes a live connection, which no other thread processes meanwhile.
        let Some(c) = (unsafe { Conn::from_raw(c) }) else { return OK.code() };
        catch_panic(
            (),
            |m| crate::log_conn!(c, log::ERR, 0, "internal error (panic) closing a connection: {m}"),
            || hook::<F>()(c),
        );
        OK.code()
    }
    // SAFETY: registering a hook with its signature.
    unsafe { sys::ap_hook_pre_close_connection(Some(thunk::<F>), NONE, NONE, order.value()) };
}

/// `ap_ssl_conn_is_ssl`: true when the module secures the connection.
pub fn ssl_conn_is_ssl<F: Fn(Conn) -> bool + Copy>(_f: F, order: Order) {
    unsafe extern "C" fn thunk<F: Fn(Conn) -> bool + Copy>(c: *mut sys::conn_rec) -> c_int {
        // SAFETY: httpd passes a live connection (perhaps an HTTP/2 stream's, on its thread).
        let Some(c) = (unsafe { Conn::from_raw(c) }) else { return DECLINED.code() };
        catch_panic(
            DECLINED,
            |m| crate::log_conn!(c, log::ERR, 0, "internal error (panic) asking whether TLS is on: {m}"),
            || if hook::<F>()(c) { OK } else { DECLINED },
        )
        .code()
    }
    // SAFETY: registering a hook with its signature.
    unsafe { sys::ap_hook_ssl_conn_is_ssl(Some(thunk::<F>), NONE, NONE, order.value()) };
}

/// `ap_ssl_var_lookup`: the value of variable `name` on a connection (mod_rewrite's %{SSL:..},
/// mod_headers, ap_expr, mod_http2, CGI); None leaves it to other modules.
pub fn ssl_var_lookup<F: Fn(Conn, &str) -> Option<String> + Copy>(_f: F, order: Order) {
    unsafe extern "C" fn thunk<F: Fn(Conn, &str) -> Option<String> + Copy>(
        p: *mut sys::apr_pool_t,
        _s: *mut sys::server_rec,
        c: *mut sys::conn_rec,
        _r: *mut sys::request_rec,
        name: *const c_char,
    ) -> *const c_char {
        catch_panic(
            ptr::null(),
            |m| crate::log_panic("looking up a TLS variable", m),
            || {
                // SAFETY: httpd passes a live pool and connection (or NULL) and a C string.
                let (Some(c), false) = ((unsafe { Conn::from_raw(c) }), name.is_null()) else { return ptr::null() };
                match hook::<F>()(c, &unsafe { cstr(name) }) {
                    Some(v) => unsafe { Pool::from_raw(p) }.strdup(&v),
                    None => ptr::null(),
                }
            },
        )
    }
    // SAFETY: registering a hook with its signature.
    unsafe { sys::ap_hook_ssl_var_lookup(Some(thunk::<F>), NONE, NONE, order.value()) };
}

/// `ap_ssl_bind_outgoing`: mod_proxy asks who does TLS for a backend connection, with the
/// section's configuration (none for some workers) and whether TLS is wanted. A panic declines.
pub fn ssl_bind_outgoing<F: Fn(Conn, Option<ConfVector>, bool) -> HookResult + Copy>(_f: F, order: Order) {
    unsafe extern "C" fn thunk<F: Fn(Conn, Option<ConfVector>, bool) -> HookResult + Copy>(
        c: *mut sys::conn_rec,
        dir: *mut sys::ap_conf_vector_t,
        enable: c_int,
    ) -> c_int {
        // SAFETY: httpd passes a live outgoing connection and a vector of this generation (or NULL).
        let (Some(c), dir) = (unsafe { (Conn::from_raw(c), ConfVector::from_raw(dir)) }) else {
            return DECLINED.code();
        };
        catch_panic(
            DECLINED,
            |m| crate::log_conn!(c, log::ERR, 0, "internal error (panic) binding a backend connection: {m}"),
            || hook::<F>()(c, dir, enable != 0),
        )
        .code()
    }
    // SAFETY: registering a hook with its signature.
    unsafe { sys::ap_hook_ssl_bind_outgoing(Some(thunk::<F>), NONE, NONE, order.value()) };
}

/// `%{SSL_*}` in ap_expr (`Require expr`, `<If>`, mod_headers expressions), resolved at request
/// time through `ap_ssl_var_lookup`, so it works for mod_ssl's connections as well as ours.
pub fn ssl_expr_vars(order: Order) {
    unsafe extern "C" fn lookup_var(ctx: *mut sys::ap_expr_eval_ctx_t, data: *const c_void) -> *const c_char {
        catch_panic(
            ptr::null(),
            |m| crate::log_panic("looking up a TLS variable in an expression", m),
            // SAFETY: httpd passes its evaluation context; `data` is the variable's name.
            || unsafe {
                if (*ctx).c.is_null() {
                    return ptr::null();
                }
                sys::ap_ssl_var_lookup((*ctx).p, (*ctx).s, (*ctx).c, (*ctx).r, data as *const c_char)
            },
        )
    }
    unsafe extern "C" fn thunk(parms: *mut sys::ap_expr_lookup_parms) -> c_int {
        catch_panic(
            DECLINED,
            |m| crate::log_panic("resolving an expression variable", m),
            // SAFETY: httpd passes the lookup's parameters, whose out-pointers we fill.
            || unsafe {
                let p = &mut *parms;
                if p.type_ != sys::AP_EXPR_FUNC_VAR as c_int || p.name.is_null() || !cstr(p.name).starts_with("SSL_") {
                    return DECLINED;
                }
                let f: unsafe extern "C" fn(*mut sys::ap_expr_eval_ctx_t, *const c_void) -> *const c_char = lookup_var;
                *p.func = f as *const c_void;
                *p.data = p.name as *const c_void;
                OK
            },
        )
        .code()
    }
    // SAFETY: registering a hook with its signature.
    unsafe { sys::ap_hook_expr_lookup(Some(thunk), NONE, NONE, order.value()) };
}

type RequestFn = unsafe extern "C" fn(*mut sys::request_rec) -> c_int;

unsafe extern "C" fn request_thunk<F: Fn(Request<'_>) -> HookResult + Copy>(r: *mut sys::request_rec) -> c_int {
    // SAFETY: httpd passes a live request, on its thread.
    let Some(r) = (unsafe { Request::from_raw(r) }) else { return DECLINED.code() };
    catch_panic(
        HTTP_INTERNAL_SERVER_ERROR,
        |m| {
            crate::log_server!(
                r.server(),
                log::ERR,
                0,
                "mod_tls: internal error (panic) checking a request for host '{}', answering 500: {m}",
                r.hostname()
            )
        },
        || hook::<F>()(r),
    )
    .code()
}

/// Runs for every request once its headers are read. These hooks hold security gates (the 421
/// for another vhost's policy, plain HTTP on a TLS port, mod_md's stand-in certificate): a panic
/// fails closed, with 500 and none of the request's content.
pub fn post_read_request<F: Fn(Request<'_>) -> HookResult + Copy>(_f: F, order: Order) {
    let thunk: RequestFn = request_thunk::<F>;
    // SAFETY: registering a hook with its signature.
    unsafe { sys::ap_hook_post_read_request(Some(thunk), NONE, NONE, order.value()) };
}

/// Runs for every request before its handler (a panic answers 500, as for post_read_request).
pub fn fixups<F: Fn(Request<'_>) -> HookResult + Copy>(_f: F, order: Order) {
    let thunk: RequestFn = request_thunk::<F>;
    // SAFETY: registering a hook with its signature.
    unsafe { sys::ap_hook_fixups(Some(thunk), NONE, NONE, order.value()) };
}

/// The scheme (`https`) and default port (443) of requests for which `f` says the module secures
/// their connection: what self-referential URLs and redirects are built with.
pub fn https_scheme<F: Fn(Request<'_>) -> bool + Copy>(_f: F, order: Order) {
    unsafe extern "C" fn scheme<F: Fn(Request<'_>) -> bool + Copy>(r: *const sys::request_rec) -> *const c_char {
        // SAFETY: httpd passes a live request.
        let Some(r) = (unsafe { Request::from_raw(r) }) else { return ptr::null() };
        catch_panic(
            ptr::null(),
            |m| crate::log_panic("choosing the scheme", m),
            || if hook::<F>()(r) { c"https".as_ptr() } else { ptr::null() },
        )
    }
    unsafe extern "C" fn port<F: Fn(Request<'_>) -> bool + Copy>(r: *const sys::request_rec) -> sys::apr_port_t {
        // SAFETY: httpd passes a live request.
        let Some(r) = (unsafe { Request::from_raw(r) }) else { return 0 };
        catch_panic(0, |m| crate::log_panic("choosing the default port", m), || if hook::<F>()(r) { 443 } else { 0 })
    }
    // SAFETY: registering hooks with their signatures.
    unsafe {
        sys::ap_hook_http_scheme(Some(scheme::<F>), NONE, NONE, order.value());
        sys::ap_hook_default_port(Some(port::<F>), NONE, NONE, order.value());
    }
}

/// What mod_status asks of a `status_hook` (`AP_STATUS_*` flags).
#[derive(Clone, Copy)]
pub struct StatusFlags(c_int);

impl StatusFlags {
    /// The machine-readable `?auto` form.
    pub fn is_short(self) -> bool {
        self.0 & sys::AP_STATUS_SHORT as c_int != 0
    }

    pub(crate) fn raw(self) -> c_int {
        self.0
    }
}

/// mod_status's `status_hook` (an optional hook): `f(r, flags)` writes the module's part of the
/// server-status page.
pub fn status<F: Fn(Request<'_>, StatusFlags) + Copy>(_f: F, order: Order) {
    unsafe extern "C" fn thunk<F: Fn(Request<'_>, StatusFlags) + Copy>(
        r: *mut sys::request_rec,
        flags: c_int,
    ) -> c_int {
        // SAFETY: mod_status passes the live status request.
        let Some(r) = (unsafe { Request::from_raw(r) }) else { return OK.code() };
        catch_panic((), |m| crate::log_panic("writing the status page", m), || hook::<F>()(r, StatusFlags(flags)));
        OK.code()
    }
    let f: unsafe extern "C" fn(*mut sys::request_rec, c_int) -> c_int = thunk::<F>;
    // SAFETY: apr's optional hooks store a generic function pointer and call it with the hook's
    // real signature (what APR_OPTIONAL_HOOK does in C).
    unsafe {
        sys::apr_optional_hook_add(
            c"status_hook".as_ptr(),
            Some(std::mem::transmute::<
                unsafe extern "C" fn(*mut sys::request_rec, c_int) -> c_int,
                unsafe extern "C" fn(),
            >(f)),
            NONE,
            NONE,
            order.value(),
        )
    };
}
