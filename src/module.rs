//! The exported `tls_module` record: directive table, config callbacks and hooks. Each entry point
//! catches panics and translates between httpd's C conventions and the plain-Rust layers.

#![allow(non_upper_case_globals)]

use std::cell::UnsafeCell;
use std::ffi::{c_char, c_int, c_ulong, c_void};
use std::ptr;

use crate::conf::{self, CacheSpec, CertSpec, DirConf, EngineAddr, Located, Origin, ServerConf};
use crate::httpd::server::{describe, servers, socket_addr, vhost_addrs};
use crate::httpd::socache;
use crate::httpd::sys::{self, apr_pool_t, cmd_parms, conn_rec, request_rec, server_rec};
use crate::httpd::{DECLINED, DONE, HOOK_MIDDLE, HTTP_INTERNAL_SERVER_ERROR, OK, catch_panic, cstr, log, pool};
use crate::tls::{ciphers, engine, handshake_wait, vars};
use crate::{filters, log_conn, log_server};

/// httpd writes `module_index` and `next` into the record, so it must be mutable memory.
#[repr(transparent)]
pub struct ModuleRecord(UnsafeCell<sys::module>);
// SAFETY: httpd only writes the record while loading modules, single-threaded.
unsafe impl Sync for ModuleRecord {}

#[repr(transparent)]
struct CommandTable<const N: usize>([sys::command_rec; N]);
// SAFETY: read-only after construction; holds pointers to static strings and functions.
unsafe impl<const N: usize> Sync for CommandTable<N> {}

#[unsafe(no_mangle)]
pub static tls_module: ModuleRecord = ModuleRecord(UnsafeCell::new(sys::module {
    version: sys::MODULE_MAGIC_NUMBER_MAJOR as c_int,
    minor_version: sys::MODULE_MAGIC_NUMBER_MINOR as c_int,
    module_index: -1,
    // Also the name `LogLevel tls:debug` uses.
    name: c"mod_tls.c".as_ptr(),
    dynamic_load_handle: ptr::null_mut(),
    next: ptr::null_mut(),
    magic: sys::MODULE_MAGIC_COOKIE as c_ulong,
    rewrite_args: None,
    create_dir_config: Some(create_dir_config),
    merge_dir_config: Some(merge_dir_config),
    create_server_config: Some(create_server_config),
    merge_server_config: Some(merge_server_config),
    cmds: COMMANDS.0.as_ptr(),
    register_hooks: Some(register_hooks),
    // Merge vhost configs even for vhosts without any TLS directive: they inherit certificates.
    flags: sys::AP_MODULE_FLAG_ALWAYS_MERGE as c_int,
}));

pub fn record() -> *const sys::module {
    tls_module.0.get()
}

const fn take1(
    name: &'static std::ffi::CStr,
    f: unsafe extern "C" fn(*mut cmd_parms, *mut c_void, *const c_char) -> *const c_char,
    req_override: u32,
    help: &'static std::ffi::CStr,
) -> sys::command_rec {
    sys::command_rec {
        name: name.as_ptr(),
        func: sys::cmd_func { take1: Some(f) },
        cmd_data: ptr::null_mut(),
        req_override: req_override as c_int,
        args_how: sys::cmd_how_TAKE1,
        errmsg: help.as_ptr(),
    }
}

const fn take12(
    name: &'static std::ffi::CStr,
    f: unsafe extern "C" fn(*mut cmd_parms, *mut c_void, *const c_char, *const c_char) -> *const c_char,
    req_override: u32,
    help: &'static std::ffi::CStr,
) -> sys::command_rec {
    sys::command_rec {
        name: name.as_ptr(),
        func: sys::cmd_func { take2: Some(f) },
        cmd_data: ptr::null_mut(),
        req_override: req_override as c_int,
        args_how: sys::cmd_how_TAKE12,
        errmsg: help.as_ptr(),
    }
}

const fn flag(
    name: &'static std::ffi::CStr,
    f: unsafe extern "C" fn(*mut cmd_parms, *mut c_void, c_int) -> *const c_char,
    req_override: u32,
    help: &'static std::ffi::CStr,
) -> sys::command_rec {
    sys::command_rec {
        name: name.as_ptr(),
        func: sys::cmd_func { flag: Some(f) },
        cmd_data: ptr::null_mut(),
        req_override: req_override as c_int,
        args_how: sys::cmd_how_FLAG,
        errmsg: help.as_ptr(),
    }
}

/// A directive taking a list of words, each passed to `f` on its own.
const fn iterate(
    name: &'static std::ffi::CStr,
    f: unsafe extern "C" fn(*mut cmd_parms, *mut c_void, *const c_char) -> *const c_char,
    req_override: u32,
    help: &'static std::ffi::CStr,
) -> sys::command_rec {
    let mut c = take1(name, f, req_override, help);
    c.args_how = sys::cmd_how_ITERATE;
    c
}

const END_OF_COMMANDS: sys::command_rec = sys::command_rec {
    name: ptr::null(),
    func: sys::cmd_func { no_args: None },
    cmd_data: ptr::null_mut(),
    req_override: 0,
    args_how: 0,
    errmsg: ptr::null(),
};

/// Where client-authentication directives may appear: the server and vhosts, and (only so that
/// the handler can explain why not) directory sections.
const CLIENT_AUTH_CONTEXT: u32 = sys::RSRC_CONF | sys::ACCESS_CONF;

/// TLSProxy* directives: server, vhost and `<Proxy>` sections.
const PROXY_CONTEXT: u32 = sys::RSRC_CONF | sys::PROXY_CONF;

static COMMANDS: CommandTable<21> = CommandTable([
    flag(c"TLSProxyEngine", set_proxy_engine, PROXY_CONTEXT, c"on|off: mod_tls handles TLS to backends in this scope"),
    take1(
        c"TLSProxyCA",
        set_proxy_ca,
        PROXY_CONTEXT,
        c"PEM bundle or directory of PEM files trusted for backend certificates",
    ),
    take1(
        c"TLSProxyProtocol",
        set_proxy_protocol,
        PROXY_CONTEXT,
        c"lowest TLS version towards backends: v1.2+ or v1.3+",
    ),
    iterate(c"TLSProxyCiphersPrefer", set_proxy_prefer, PROXY_CONTEXT, c"cipher suites to prefer towards backends"),
    iterate(
        c"TLSProxyCiphersSuppress",
        set_proxy_suppress,
        PROXY_CONTEXT,
        c"cipher suites never to use towards backends",
    ),
    take12(
        c"TLSProxyMachineCertificate",
        set_proxy_machine_cert,
        PROXY_CONTEXT,
        c"certificate (and key) presented when a backend asks for a client certificate",
    ),
    take1(c"TLSClientCertificate", set_client_auth, CLIENT_AUTH_CONTEXT, c"required, optional or none"),
    take1(
        c"TLSClientCA",
        set_client_ca,
        CLIENT_AUTH_CONTEXT,
        c"PEM file of the CAs that issue accepted client certificates",
    ),
    take1(
        c"TLSClientCRL",
        set_client_crl,
        CLIENT_AUTH_CONTEXT,
        c"CRL file (PEM or DER) checked for client certificate chains",
    ),
    take1(
        c"TLSUserName",
        set_user_name,
        CLIENT_AUTH_CONTEXT,
        c"variable whose value becomes the request's user, e.g. SSL_CLIENT_S_DN_CN",
    ),
    take1(
        c"TLSSessionCache",
        set_session_cache,
        sys::RSRC_CONF,
        c"none, or a socache provider and its arguments (shmcb:path(size), memcache:host:port, redis:host:port)",
    ),
    iterate(
        c"TLSOptions",
        set_options,
        sys::OR_OPTIONS,
        c"[+|-]StdEnvVars, [+|-]ExportCertData or Defaults: which TLS variables requests get",
    ),
    take1(
        c"TLSPassPhraseDialog",
        set_passphrase_dialog,
        sys::RSRC_CONF,
        c"exec:/path/to/program that prints the passphrase of an encrypted private key",
    ),
    take1(c"TLSEngine", set_engine, sys::RSRC_CONF, c"[address:]port on which incoming connections use TLS"),
    take12(
        c"TLSCertificate",
        set_certificate,
        sys::RSRC_CONF,
        c"certificate chain file (PEM) and, unless it holds the key too, the private key file",
    ),
    flag(c"TLSStrictSNI", set_strict_sni, sys::RSRC_CONF, c"on|off: refuse handshakes whose SNI names no virtual host"),
    take1(c"TLSProtocol", set_protocol, sys::RSRC_CONF, c"lowest TLS version: v1.2+ or v1.3+"),
    iterate(c"TLSCiphersPrefer", set_ciphers_prefer, sys::RSRC_CONF, c"cipher suites to prefer, in order"),
    iterate(c"TLSCiphersSuppress", set_ciphers_suppress, sys::RSRC_CONF, c"cipher suites never to use"),
    flag(c"TLSHonorClientOrder", set_honor_order, sys::RSRC_CONF, c"on|off: follow the client's cipher order"),
    END_OF_COMMANDS,
]);

/// What a server's module-config slot holds: the directive values, and apart from them what
/// start-up builds from them for this configuration generation (so merging copies only values).
pub struct ServerSlot {
    conf: ServerConf,
    built: Built,
}

/// What start-up builds for one server, once per configuration generation.
#[derive(Default)]
pub struct Built {
    /// mod_reqtimeout bounds this server's handshakes (`RequestReadTimeout handshake=N`): they then
    /// run blocking, where its timer applies, instead of waiting in the event MPM.
    pub reqtimeout_handshake: bool,
    /// No TLSCertificate, but mod_md is loaded: the certificate is asked for in post_config.
    pub md_deferred: bool,
    /// Backend client configs built for this generation (main server only).
    pub proxy_cache: Option<std::sync::Arc<engine::ProxyCache>>,
    /// The cache opened for this configuration generation (main server only).
    pub session_cache: Option<std::sync::Arc<socache::SessionCache>>,
    /// Built in check_config from the settings, for servers that TLSEngine connections can reach.
    pub tls: Option<std::sync::Arc<engine::VhostTls>>,
}

unsafe fn slot_of(s: *const server_rec) -> *mut ServerSlot {
    unsafe { sys::ap_get_module_config((*s).module_config, record()) as *mut ServerSlot }
}

/// The settings of server `s` (merged for vhosts once httpd has merged them), read-only: what
/// connection and request hooks use, on any thread, once start-up is over.
///
/// # Safety
/// `s` must be a valid server_rec whose config vector holds ours.
pub unsafe fn server_conf<'a>(s: *const server_rec) -> &'a ServerConf {
    unsafe { &(*slot_of(s)).conf }
}

/// The settings of server `s`, to change: only while httpd reads its configuration and builds
/// from it (directive handlers, post_config), when no other thread runs.
///
/// # Safety
/// As [`server_conf`], and no reference to the same settings may be alive.
unsafe fn server_conf_mut<'a>(s: *const server_rec) -> &'a mut ServerConf {
    unsafe { &mut (*slot_of(s)).conf }
}

/// What start-up built for server `s`, read-only (connection and request hooks, any thread).
///
/// # Safety
/// As [`server_conf`].
pub unsafe fn built<'a>(s: *const server_rec) -> &'a Built {
    unsafe { &(*slot_of(s)).built }
}

/// What start-up builds for server `s`, while it builds (check_config, post_config).
///
/// # Safety
/// As [`server_conf_mut`], for the built part.
unsafe fn built_mut<'a>(s: *const server_rec) -> &'a mut Built {
    unsafe { &mut (*slot_of(s)).built }
}

// ---- config records ------------------------------------------------------------------------

unsafe extern "C" fn create_server_config(p: *mut apr_pool_t, _s: *mut server_rec) -> *mut c_void {
    catch_panic(
        ptr::null_mut(),
        |_| {},
        || unsafe {
            pool::attach(p, ServerSlot { conf: ServerConf::default(), built: Built::default() }) as *mut c_void
        },
    )
}

unsafe extern "C" fn merge_server_config(p: *mut apr_pool_t, base: *mut c_void, add: *mut c_void) -> *mut c_void {
    catch_panic(
        ptr::null_mut(),
        |_| {},
        || unsafe {
            let (base, add) = (&*(base as *const ServerSlot), &*(add as *const ServerSlot));
            let merged = ServerSlot { conf: ServerConf::merge(&base.conf, &add.conf), built: Built::default() };
            pool::attach(p, merged) as *mut c_void
        },
    )
}

unsafe extern "C" fn create_dir_config(p: *mut apr_pool_t, _dir: *mut c_char) -> *mut c_void {
    catch_panic(ptr::null_mut(), |_| {}, || unsafe { pool::attach(p, DirConf::default()) as *mut c_void })
}

unsafe extern "C" fn merge_dir_config(p: *mut apr_pool_t, base: *mut c_void, add: *mut c_void) -> *mut c_void {
    catch_panic(
        ptr::null_mut(),
        |_| {},
        || unsafe {
            let merged = DirConf::merge(&*(base as *const DirConf), &*(add as *const DirConf));
            pool::attach(p, merged) as *mut c_void
        },
    )
}

// ---- directives ----------------------------------------------------------------------------

/// Runs a directive handler: `Err(sentence)` becomes httpd's syntax error, which httpd prefixes
/// with the file and line.
unsafe fn directive(cmd: *mut cmd_parms, f: impl FnOnce() -> Result<(), String>) -> *const c_char {
    let result = catch_panic(
        Err("internal error in mod_tls while reading this directive".to_string()),
        |m| log_server!(ptr::null::<server_rec>(), log::EMERG, 0, "panic in directive handler: {m}"),
        f,
    );
    match result {
        Ok(()) => ptr::null(),
        Err(msg) => unsafe { pool::pstrdup((*cmd).pool, &msg) },
    }
}

unsafe fn origin(cmd: *const cmd_parms) -> Origin {
    unsafe {
        let d = (*cmd).directive;
        if d.is_null() {
            return Origin { file: "(command line)".into(), line: 0 };
        }
        Origin { file: cstr((*d).filename).into_owned(), line: (*d).line_num.max(0) as u32 }
    }
}

unsafe fn server_relative(cmd: *const cmd_parms, path: *const c_char) -> Result<std::path::PathBuf, String> {
    unsafe {
        let p = sys::ap_server_root_relative((*cmd).pool, path);
        if p.is_null() {
            return Err(format!("invalid file path '{}'", cstr(path)));
        }
        Ok(cstr(p).into_owned().into())
    }
}

unsafe extern "C" fn set_engine(cmd: *mut cmd_parms, _dconf: *mut c_void, arg: *const c_char) -> *const c_char {
    unsafe {
        directive(cmd, || {
            if (*(*cmd).server).is_virtual != 0 {
                return Err("TLSEngine is a global directive: move it out of <VirtualHost> to the top level \
                            (it names the address:port whose virtual hosts all use TLS)"
                    .into());
            }
            let addrs = EngineAddr::parse_all(&cstr(arg))?;
            let conf = server_conf_mut((*cmd).server);
            for a in addrs {
                if !conf.engines.contains(&a) {
                    conf.engines.push(a);
                }
            }
            Ok(())
        })
    }
}

unsafe extern "C" fn set_certificate(
    cmd: *mut cmd_parms,
    _dconf: *mut c_void,
    cert: *const c_char,
    key: *const c_char,
) -> *const c_char {
    unsafe {
        directive(cmd, || {
            let cert_file = server_relative(cmd, cert)?;
            let key_file = if key.is_null() { None } else { Some(server_relative(cmd, key)?) };
            server_conf_mut((*cmd).server).certificates.push(CertSpec { cert_file, key_file, origin: origin(cmd) });
            Ok(())
        })
    }
}

/// Proxy scopes whose TLSProxy* settings were written in this configuration (their DirConf), so
/// that check_config can build and validate their client configs before any child starts.
type ProxyScopes = Vec<usize>;

unsafe fn proxy_directive(
    cmd: *mut cmd_parms,
    dconf: *mut c_void,
    f: impl FnOnce(&mut conf::ProxyConf, Origin) -> Result<(), String>,
) -> *const c_char {
    unsafe {
        directive(cmd, || {
            let scopes = &mut *pool::userdata((*cmd).pool, c"mod_tls proxy scopes", ProxyScopes::new);
            if !scopes.contains(&(dconf as usize)) {
                scopes.push(dconf as usize);
            }
            f(&mut (*(dconf as *mut DirConf)).proxy, origin(cmd))
        })
    }
}

unsafe extern "C" fn set_proxy_engine(cmd: *mut cmd_parms, d: *mut c_void, on: c_int) -> *const c_char {
    unsafe {
        proxy_directive(cmd, d, |p, _| {
            p.engine = Some(on != 0);
            Ok(())
        })
    }
}

unsafe extern "C" fn set_proxy_ca(cmd: *mut cmd_parms, d: *mut c_void, arg: *const c_char) -> *const c_char {
    unsafe {
        let path = server_relative(cmd, arg);
        proxy_directive(cmd, d, |p, origin| {
            p.ca = Some(Located { value: path?, origin });
            Ok(())
        })
    }
}

unsafe extern "C" fn set_proxy_protocol(cmd: *mut cmd_parms, d: *mut c_void, arg: *const c_char) -> *const c_char {
    unsafe {
        let value = conf::parse_protocol_floor("TLSProxyProtocol", &cstr(arg)).map_err(String::from);
        proxy_directive(cmd, d, |p, origin| {
            p.floor = Some(Located { value: value?, origin });
            Ok(())
        })
    }
}

unsafe fn add_proxy_ciphers(cmd: *mut cmd_parms, d: *mut c_void, arg: *const c_char, prefer: bool) -> *const c_char {
    unsafe {
        let which = if prefer { "TLSProxyCiphersPrefer" } else { "TLSProxyCiphersSuppress" };
        let ids = ciphers::parse_list(&cstr(arg)).map_err(|e| format!("{which}: {e}"));
        proxy_directive(cmd, d, |p, origin| {
            let list = if prefer { &mut p.prefer } else { &mut p.suppress };
            list.extend(ids?.into_iter().map(|value| Located { value, origin: origin.clone() }));
            Ok(())
        })
    }
}

unsafe extern "C" fn set_proxy_prefer(cmd: *mut cmd_parms, d: *mut c_void, arg: *const c_char) -> *const c_char {
    unsafe { add_proxy_ciphers(cmd, d, arg, true) }
}

unsafe extern "C" fn set_proxy_suppress(cmd: *mut cmd_parms, d: *mut c_void, arg: *const c_char) -> *const c_char {
    unsafe { add_proxy_ciphers(cmd, d, arg, false) }
}

unsafe extern "C" fn set_proxy_machine_cert(
    cmd: *mut cmd_parms,
    d: *mut c_void,
    cert: *const c_char,
    key: *const c_char,
) -> *const c_char {
    unsafe {
        let cert_file = server_relative(cmd, cert);
        let key_file = if key.is_null() { Ok(None) } else { server_relative(cmd, key).map(Some) };
        proxy_directive(cmd, d, |p, origin| {
            p.machine_certs.push(CertSpec { cert_file: cert_file?, key_file: key_file?, origin });
            Ok(())
        })
    }
}

/// Builds (and so validates) the backend client configs for every proxy scope: each server's own
/// settings, and each `<Proxy>` section as it applies within each server.
unsafe fn build_proxy_configs(main: *mut server_rec, pconf: *mut apr_pool_t) -> bool {
    unsafe {
        let cache = std::sync::Arc::new(engine::ProxyCache::default());
        built_mut(main).proxy_cache = Some(cache.clone());
        let scopes = (*pool::userdata(pconf, c"mod_tls proxy scopes", ProxyScopes::new)).clone();
        let mut ok = true;
        for s in servers(main) {
            let server_proxy = &(*(sys::ap_get_module_config((*s).lookup_defaults, record()) as *const DirConf)).proxy;
            let candidates = std::iter::once(server_proxy.clone())
                .chain(scopes.iter().map(|d| conf::ProxyConf::merge(server_proxy, &(*(*d as *const DirConf)).proxy)));
            for p in candidates.filter(|p| p.enabled()) {
                let key = p.key();
                if cache.lock().unwrap().contains_key(&key) {
                    continue;
                }
                match engine::build_proxy(&p) {
                    Ok((tls, warnings)) => {
                        for w in warnings {
                            log_server!(main, log::WARNING, 0, "mod_tls: {w}");
                        }
                        cache.lock().unwrap().insert(key, std::sync::Arc::new(tls));
                    }
                    Err(e) => {
                        log_server!(main, log::EMERG, 0, "mod_tls: {}", e.located());
                        ok = false;
                    }
                }
            }
        }
        ok
    }
}

/// mod_proxy asks who does TLS for a backend connection: we do where TLSProxyEngine is on for the
/// scope (the request's or the worker's merged configuration).
unsafe extern "C" fn bind_outgoing(c: *mut conn_rec, dir_conf: *mut sys::ap_conf_vector_t, enable: c_int) -> c_int {
    catch_panic(
        DECLINED,
        |m| log_conn!(c, log::ERR, 0, "internal error (panic) binding a backend connection: {m}"),
        || unsafe {
            if enable == 0 {
                return DECLINED;
            }
            if filters::conn_state(c).is_some() {
                // mod_proxy binds a kept-alive backend connection again when it releases it (with
                // the worker's section config, possibly none): it stays ours, with its config.
                return OK;
            }
            let vector = if dir_conf.is_null() { (*(*c).base_server).lookup_defaults } else { dir_conf };
            let dconf = sys::ap_get_module_config(vector, record()) as *const DirConf;
            if dconf.is_null() || !(*dconf).proxy.enabled() {
                return DECLINED;
            }
            let proxy = &(*dconf).proxy;
            let Some(cache) = built(sys::ap_server_conf).proxy_cache.clone() else { return DECLINED };
            let key = proxy.key();
            let found = cache.lock().unwrap().get(&key).cloned();
            let tls = match found {
                Some(t) => t,
                None => match engine::build_proxy(proxy) {
                    // A combination of scopes not seen at start-up: built once, then shared.
                    Ok((t, _)) => {
                        let t = std::sync::Arc::new(t);
                        cache.lock().unwrap().insert(key, t.clone());
                        t
                    }
                    Err(e) => {
                        log_conn!(c, log::ERR, 0, "TLS to backend: {}", e.located());
                        return DECLINED;
                    }
                },
            };
            filters::attach_backend(c, tls);
            OK
        },
    )
}

/// Client authentication is part of the handshake, before any request: it cannot differ per
/// location (that would need renegotiation, which TLS 1.3 and rustls do not have).
unsafe fn not_in_directory(cmd: *const cmd_parms, name: &str) -> Result<(), String> {
    unsafe {
        if (*cmd).path.is_null() {
            return Ok(());
        }
        Err(format!(
            "{name} cannot be used in <Location>, <Directory> or <Files>: client certificates are asked for \
             during the handshake, before any request, and changing that per location would need TLS \
             renegotiation, which TLS 1.3 and rustls do not have. Set it for the whole <VirtualHost> (a \
             separate name-based vhost, chosen by SNI, can have its own setting)"
        ))
    }
}

unsafe extern "C" fn set_client_auth(cmd: *mut cmd_parms, _d: *mut c_void, arg: *const c_char) -> *const c_char {
    unsafe {
        directive(cmd, || {
            not_in_directory(cmd, "TLSClientCertificate")?;
            let value = conf::ClientAuth::parse(&cstr(arg))?;
            server_conf_mut((*cmd).server).client_auth = Some(Located { value, origin: origin(cmd) });
            Ok(())
        })
    }
}

unsafe extern "C" fn set_client_ca(cmd: *mut cmd_parms, _d: *mut c_void, arg: *const c_char) -> *const c_char {
    unsafe {
        directive(cmd, || {
            not_in_directory(cmd, "TLSClientCA")?;
            let value = server_relative(cmd, arg)?;
            server_conf_mut((*cmd).server).client_ca = Some(Located { value, origin: origin(cmd) });
            Ok(())
        })
    }
}

unsafe extern "C" fn set_client_crl(cmd: *mut cmd_parms, _d: *mut c_void, arg: *const c_char) -> *const c_char {
    unsafe {
        directive(cmd, || {
            not_in_directory(cmd, "TLSClientCRL")?;
            let value = server_relative(cmd, arg)?;
            server_conf_mut((*cmd).server).client_crls.push(Located { value, origin: origin(cmd) });
            Ok(())
        })
    }
}

unsafe extern "C" fn set_user_name(cmd: *mut cmd_parms, _d: *mut c_void, arg: *const c_char) -> *const c_char {
    unsafe {
        directive(cmd, || {
            not_in_directory(cmd, "TLSUserName")?;
            let name = cstr(arg).into_owned();
            if !name.starts_with("SSL_") {
                return Err(format!("TLSUserName '{name}': name a TLS variable such as SSL_CLIENT_S_DN_CN"));
            }
            server_conf_mut((*cmd).server).user_name_var = Some(name);
            Ok(())
        })
    }
}

unsafe extern "C" fn set_session_cache(cmd: *mut cmd_parms, _d: *mut c_void, arg: *const c_char) -> *const c_char {
    unsafe {
        directive(cmd, || {
            if (*(*cmd).server).is_virtual != 0 {
                return Err("TLSSessionCache is a global directive: move it out of <VirtualHost>".into());
            }
            let value = CacheSpec::parse(&cstr(arg))?;
            server_conf_mut((*cmd).server).session_cache_spec = Some(Located { value, origin: origin(cmd) });
            Ok(())
        })
    }
}

unsafe extern "C" fn set_options(cmd: *mut cmd_parms, dconf: *mut c_void, arg: *const c_char) -> *const c_char {
    unsafe {
        directive(cmd, || {
            let dconf = &mut *(dconf as *mut DirConf);
            dconf.options.apply(&cstr(arg)).map_err(String::from)
        })
    }
}

unsafe extern "C" fn set_passphrase_dialog(cmd: *mut cmd_parms, _d: *mut c_void, arg: *const c_char) -> *const c_char {
    unsafe {
        directive(cmd, || {
            if (*(*cmd).server).is_virtual != 0 {
                return Err("TLSPassPhraseDialog is a global directive: move it out of <VirtualHost>".into());
            }
            let value = cstr(arg);
            let Some(program) = value.strip_prefix("exec:") else {
                return Err(format!(
                    "TLSPassPhraseDialog '{value}': write exec:/path/to/program (the program prints the passphrase)"
                ));
            };
            let c_program = std::ffi::CString::new(program).map_err(|_| "invalid program path".to_string())?;
            let path = server_relative(cmd, c_program.as_ptr())?;
            use std::os::unix::fs::PermissionsExt;
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {}
                _ => {
                    return Err(format!(
                        "TLSPassPhraseDialog: {} is not an executable file: give the program that prints the passphrase",
                        path.display()
                    ));
                }
            }
            server_conf_mut((*cmd).server).passphrase_program = Some(path);
            Ok(())
        })
    }
}

unsafe extern "C" fn set_strict_sni(cmd: *mut cmd_parms, _dconf: *mut c_void, on: c_int) -> *const c_char {
    unsafe {
        directive(cmd, || {
            if (*(*cmd).server).is_virtual != 0 {
                return Err("TLSStrictSNI is a global directive: move it out of <VirtualHost> to the top level".into());
            }
            server_conf_mut((*cmd).server).strict_sni = Some(on != 0);
            Ok(())
        })
    }
}

unsafe extern "C" fn set_protocol(cmd: *mut cmd_parms, _dconf: *mut c_void, arg: *const c_char) -> *const c_char {
    unsafe {
        directive(cmd, || {
            let value = conf::parse_protocol_floor("TLSProtocol", &cstr(arg))?;
            server_conf_mut((*cmd).server).protocol_floor = Some(Located { value, origin: origin(cmd) });
            Ok(())
        })
    }
}

unsafe fn add_ciphers(cmd: *mut cmd_parms, arg: *const c_char, prefer: bool) -> *const c_char {
    unsafe {
        directive(cmd, || {
            let which = if prefer { "TLSCiphersPrefer" } else { "TLSCiphersSuppress" };
            let ids = ciphers::parse_list(&cstr(arg)).map_err(|e| format!("{which}: {e}"))?;
            let conf = server_conf_mut((*cmd).server);
            let list = if prefer { &mut conf.ciphers_prefer } else { &mut conf.ciphers_suppress };
            list.extend(ids.into_iter().map(|value| Located { value, origin: origin(cmd) }));
            Ok(())
        })
    }
}

unsafe extern "C" fn set_ciphers_prefer(cmd: *mut cmd_parms, _d: *mut c_void, arg: *const c_char) -> *const c_char {
    unsafe { add_ciphers(cmd, arg, true) }
}

unsafe extern "C" fn set_ciphers_suppress(cmd: *mut cmd_parms, _d: *mut c_void, arg: *const c_char) -> *const c_char {
    unsafe { add_ciphers(cmd, arg, false) }
}

unsafe extern "C" fn set_honor_order(cmd: *mut cmd_parms, _dconf: *mut c_void, on: c_int) -> *const c_char {
    unsafe {
        directive(cmd, || {
            server_conf_mut((*cmd).server).honor_client_order = Some(on != 0);
            Ok(())
        })
    }
}

// ---- start-up hooks ------------------------------------------------------------------------

/// Validates everything and builds every rustls config. Runs before `apache2 -t` reports, and on
/// every (re)start, so bad files fail there and never at the first connection.
unsafe extern "C" fn check_config(
    pconf: *mut apr_pool_t,
    _plog: *mut apr_pool_t,
    ptemp: *mut apr_pool_t,
    main: *mut server_rec,
) -> c_int {
    catch_panic(
        HTTP_INTERNAL_SERVER_ERROR,
        |m| log_server!(main, log::EMERG, 0, "mod_tls: internal error while checking the configuration: {m}"),
        || unsafe { build_all(main, pconf, ptemp) },
    )
}

/// Opens the `TLSSessionCache` (or the default shared-memory one) for this generation. A broken
/// configured cache fails start-up; the default one only warns when unavailable.
unsafe fn open_session_cache(
    main: *mut server_rec,
    pconf: *mut apr_pool_t,
    ptemp: *mut apr_pool_t,
) -> Result<Option<std::sync::Arc<socache::SessionCache>>, ()> {
    unsafe {
        let spec = server_conf(main).session_cache_spec.clone();
        let (name, args, origin) = match &spec {
            Some(Located { value: CacheSpec::None, .. }) => return Ok(None),
            Some(Located { value: CacheSpec::Provider { name, args }, origin }) => {
                (name.clone(), args.clone(), Some(origin))
            }
            None => ("shmcb".to_string(), conf::DEFAULT_CACHE_ARGS.to_string(), None),
        };
        match socache::SessionCache::create(&name, &args, main, pconf, ptemp) {
            Ok(c) => Ok(Some(c)),
            Err(e) => match origin {
                Some(o) => {
                    log_server!(main, log::EMERG, 0, "mod_tls: {o}: TLSSessionCache: {e}");
                    Err(())
                }
                None => {
                    log_server!(
                        main,
                        log::WARNING,
                        0,
                        "mod_tls: no TLS session cache, sessions will not resume across processes: {e}"
                    );
                    Ok(None)
                }
            },
        }
    }
}

/// Notes which servers have a mod_reqtimeout handshake stage, from the configuration tree
/// (`RequestReadTimeout` at the top level applies to every vhost that does not set its own).
unsafe fn note_reqtimeout_handshakes(main: *mut server_rec) {
    unsafe fn walk(
        node: *const sys::ap_directive_t,
        vhost: Option<(String, i32)>,
        out: &mut Vec<(Option<(String, i32)>, bool)>,
    ) {
        let mut n = node;
        while !n.is_null() {
            unsafe {
                let name = cstr((*n).directive);
                if name.eq_ignore_ascii_case("RequestReadTimeout")
                    && let Some(on) = conf::reqtimeout_handshake(&cstr((*n).args))
                {
                    out.push((vhost.clone(), on));
                }
                let child_vhost = if name.eq_ignore_ascii_case("<VirtualHost") {
                    Some((cstr((*n).filename).into_owned(), (*n).line_num))
                } else {
                    vhost.clone()
                };
                walk((*n).first_child, child_vhost, out);
                n = (*n).next;
            }
        }
    }
    unsafe {
        let mut found = Vec::new();
        walk(sys::ap_conftree, None, &mut found);
        for s in servers(main) {
            let defn = cstr((*s).defn_name);
            let vhost = ((*s).is_virtual != 0).then(|| (&*defn, (*s).defn_line_number as i32));
            built_mut(s).reqtimeout_handshake = crate::tls::policy::reqtimeout_handshake_applies(&found, vhost);
        }
    }
}

unsafe fn build_all(main: *mut server_rec, pconf: *mut apr_pool_t, ptemp: *mut apr_pool_t) -> c_int {
    unsafe {
        note_reqtimeout_handshakes(main);
        if !build_proxy_configs(main, pconf) {
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        let engines = server_conf(main).engines.clone();
        for s in servers(main) {
            built_mut(s).tls = None;
        }
        if engines.is_empty() {
            return OK;
        }
        let all_vhost_addrs: Vec<_> = servers(main).map(|s| vhost_addrs(s)).filter(|a| !a.is_empty()).collect();
        let mut failed = false;
        let cache = match open_session_cache(main, pconf, ptemp) {
            Ok(cache) => cache,
            Err(()) => {
                failed = true;
                None
            }
        };
        built_mut(main).session_cache = cache.clone();
        let make_sessions = cache.clone().map(crate::tls::sessions::VhostSessions::factory);
        for s in servers(main) {
            let reached_by = if (*s).is_virtual != 0 {
                let addrs = vhost_addrs(s);
                engines.iter().find(|e| addrs.iter().any(|a| conf::engine_reaches_vhost(e, a)))
            } else {
                engines.iter().find(|e| conf::engine_reaches_main_server(e, &all_vhost_addrs))
            };
            let Some(engine_addr) = reached_by else { continue };
            let conf = server_conf(s);
            let built = built_mut(s);
            built.md_deferred = false;
            if conf.certificates.is_empty() && !sys::ap_find_linked_module(c"mod_md.c".as_ptr()).is_null() {
                // mod_md may manage it: asked in post_config (ap_ssl_add_cert_files).
                built.md_deferred = true;
                continue;
            }
            if conf.certificates.is_empty() {
                let at = match engine_addr.ip {
                    Some(ip) => format!("{ip}:{}", engine_addr.port),
                    None => format!("port {}", engine_addr.port),
                };
                log_server!(
                    main,
                    log::EMERG,
                    0,
                    "mod_tls: {} is served with TLS (TLSEngine {at}) but has no certificate: add \
                     'TLSCertificate cert.pem key.pem' to it, or one at the top level for all virtual hosts",
                    describe(s)
                );
                failed = true;
                continue;
            }
            let mut ask = |key: &std::path::Path, retry: bool| ask_passphrase(main, s, key, retry);
            let ask: Option<crate::tls::certs::PassphraseSource<'_>> =
                if conf.passphrase_program.is_some() { Some(&mut ask) } else { None };
            let sessions = make_sessions.as_ref().map(|f| f as engine::SessionStorageFactory<'_>);
            match engine::build_vhost(conf, ask, sessions) {
                Ok((tls, warnings)) => {
                    for w in warnings {
                        log_server!(main, log::WARNING, 0, "mod_tls: {w}");
                    }
                    built_mut(s).tls = Some(std::sync::Arc::new(tls));
                }
                Err(e) => {
                    log_server!(main, log::EMERG, 0, "mod_tls: {}", e.located());
                    failed = true;
                }
            }
        }
        if failed { HTTP_INTERNAL_SERVER_ERROR } else { OK }
    }
}

/// Passphrases already given, by key file, kept in the process pool so that the second start-up
/// pass and graceful restarts do not run the program again.
type PassphraseCache = std::collections::HashMap<std::path::PathBuf, zeroize::Zeroizing<String>>;

/// Runs `TLSPassPhraseDialog exec:program server:port keyfile` for an encrypted key (or answers
/// from the cache). The passphrase is never logged.
unsafe fn ask_passphrase(
    main: *mut server_rec,
    s: *mut server_rec,
    key: &std::path::Path,
    retry: bool,
) -> Result<zeroize::Zeroizing<String>, String> {
    unsafe {
        let cache = &mut *pool::userdata((*(*main).process).pool, c"mod_tls passphrases", PassphraseCache::new);
        if !retry && let Some(p) = cache.get(key) {
            return Ok(p.clone());
        }
        let program = server_conf(main).passphrase_program.clone().expect("only asked when configured");
        let who = format!("{}:{}", cstr((*s).server_hostname), (*s).port);
        let out = std::process::Command::new(&program)
            .arg(&who)
            .arg(key)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("TLSPassPhraseDialog: cannot run {}: {e}", program.display()))?;
        if !out.status.success() {
            return Err(format!(
                "TLSPassPhraseDialog: {} failed ({}) for {}",
                program.display(),
                out.status,
                key.display()
            ));
        }
        let stdout = zeroize::Zeroizing::new(out.stdout);
        let text = zeroize::Zeroizing::new(String::from_utf8_lossy(&stdout).into_owned());
        let passphrase = zeroize::Zeroizing::new(text.trim_end_matches(['\r', '\n']).to_string());
        cache.insert(key.to_path_buf(), passphrase.clone());
        Ok(passphrase)
    }
}

/// Certificates for vhosts without TLSCertificate, from mod_md (`ap_ssl_add_cert_files`), or
/// its temporary fallback until it has one (then requests get 503).
unsafe fn certificates_from_mod_md(main: *mut server_rec, pconf: *mut apr_pool_t) -> bool {
    unsafe fn files(arr: *const sys::apr_array_header_t) -> Vec<std::path::PathBuf> {
        unsafe {
            let elts = (*arr).elts as *const *const c_char;
            (0..(*arr).nelts.max(0) as usize).map(|i| cstr(*elts.add(i)).into_owned().into()).collect()
        }
    }
    let mut ok = true;
    unsafe {
        for s in servers(main) {
            if !built(s).md_deferred {
                continue;
            }
            let conf = server_conf_mut(s);
            let size = std::mem::size_of::<*const c_char>() as c_int;
            let (certs, keys) = (sys::apr_array_make(pconf, 2, size), sys::apr_array_make(pconf, 2, size));
            sys::ap_ssl_add_cert_files(s, pconf, certs, keys);
            let mut fallback = false;
            if (*certs).nelts == 0 {
                sys::ap_ssl_add_fallback_cert_files(s, pconf, certs, keys);
                fallback = (*certs).nelts > 0;
            }
            if (*certs).nelts == 0 {
                log_server!(
                    main,
                    log::EMERG,
                    0,
                    "mod_tls: {} is served with TLS but has no certificate, and mod_md has none for it: add \
                     'TLSCertificate cert.pem key.pem' or an MDomain for its name",
                    describe(s)
                );
                ok = false;
                continue;
            }
            let key_files = files(keys);
            conf.certificates = files(certs)
                .into_iter()
                .enumerate()
                .map(|(i, cert_file)| CertSpec {
                    cert_file,
                    key_file: key_files.get(i).cloned(),
                    origin: Origin { file: "mod_md".into(), line: 0 },
                })
                .collect();
            // Same session cache as every other vhost: a managed domain resumes sessions too.
            let make_sessions = built(main).session_cache.clone().map(crate::tls::sessions::VhostSessions::factory);
            let sessions = make_sessions.as_ref().map(|f| f as engine::SessionStorageFactory<'_>);
            match engine::build_vhost(conf, None, sessions) {
                Ok((mut tls, _)) => {
                    tls.fallback = fallback;
                    if fallback {
                        log_server!(
                            main,
                            log::WARNING,
                            0,
                            "mod_tls: {} uses mod_md's temporary certificate; answering 503 until mod_md has one",
                            describe(s)
                        );
                    }
                    built_mut(s).tls = Some(std::sync::Arc::new(tls));
                }
                Err(e) => {
                    log_server!(
                        main,
                        log::EMERG,
                        0,
                        "mod_tls: certificate from mod_md for {}: {}",
                        describe(s),
                        e.message
                    );
                    ok = false;
                }
            }
        }
    }
    ok
}

/// Registers every certificate with an issuer for OCSP stapling (`ap_ssl_ocsp_prime`): mod_md
/// (`MDStapling on`, `MDStapleOthers on`) then keeps a fresh response for it.
unsafe fn prime_ocsp_stapling(main: *mut server_rec, pconf: *mut apr_pool_t) {
    unsafe {
        for s in servers(main) {
            let Some(tls) = built(s).tls.clone() else { continue };
            let stapling: Vec<Option<std::sync::Arc<engine::Stapling>>> = tls
                .resolver
                .keys()
                .iter()
                .map(|key| {
                    if key.cert.len() < 2 {
                        return None; // no issuer to ask about
                    }
                    let st = engine::Stapling::new(key);
                    let pem: String = key.cert.iter().map(|c| crate::tls::certvars::pem(c)).collect();
                    let c_pem = std::ffi::CString::new(pem).ok()?;
                    let rv = sys::ap_ssl_ocsp_prime(s, pconf, st.id.as_ptr().cast(), st.id.len(), c_pem.as_ptr());
                    log_server!(
                        s,
                        log::DEBUG,
                        rv,
                        "OCSP stapling for {}: {}",
                        describe(s),
                        if rv == 0 { "provided" } else { "not provided" }
                    );
                    (rv == crate::httpd::APR_SUCCESS).then(|| std::sync::Arc::new(st))
                })
                .collect();
            let _ = tls.stapling.set(stapling);
        }
    }
}

unsafe extern "C" fn post_config(
    pconf: *mut apr_pool_t,
    _plog: *mut apr_pool_t,
    _ptemp: *mut apr_pool_t,
    main: *mut server_rec,
) -> c_int {
    catch_panic(
        HTTP_INTERNAL_SERVER_ERROR,
        |m| log_server!(main, log::EMERG, 0, "mod_tls: internal error in post_config: {m}"),
        || unsafe {
            // post_config runs twice at start-up; say hello on the pass that serves.
            if let Some(cache) = built(main).session_cache.clone() {
                let configured = server_conf(main).session_cache_spec.clone();
                if configured.is_none() {
                    socache::ensure_default_dir(pconf);
                }
                if let Err(e) = cache.init(pconf) {
                    match configured {
                        Some(o) => {
                            log_server!(main, log::EMERG, 0, "mod_tls: {}: TLSSessionCache: {e}", o.origin);
                            return HTTP_INTERNAL_SERVER_ERROR;
                        }
                        None => log_server!(main, log::WARNING, 0, "mod_tls: running without a session cache: {e}"),
                    }
                }
            }
            if !certificates_from_mod_md(main, pconf) {
                return HTTP_INTERNAL_SERVER_ERROR;
            }
            prime_ocsp_stapling(main, pconf);
            if sys::ap_state_query(sys::AP_SQ_MAIN_STATE as c_int) != sys::AP_SQ_MS_CREATE_PRE_CONFIG as c_int {
                log_server!(
                    main,
                    log::INFO,
                    0,
                    "mod_tls/{} (rustls/{}) initialized",
                    crate::VERSION,
                    crate::RUSTLS_VERSION
                );
            }
            OK
        },
    )
}

// ---- connection and request hooks ----------------------------------------------------------

/// A connection we cannot set up is marked aborted and handed on (DECLINED), as mod_ssl does: core's
/// own pre_connection, which runs after ours, must still record the socket and add the core
/// filters, or the MPM's lingering close finds no socket. An aborted connection is never
/// processed, so nothing is served in plaintext on a TLS port.
unsafe extern "C" fn pre_connection(c: *mut conn_rec, _csd: *mut c_void) -> c_int {
    catch_panic(
        DECLINED,
        |m| unsafe {
            (*c).aborted = 1;
            log_conn!(c, log::ERR, 0, "internal error (panic) setting up TLS, closing this connection: {m}");
        },
        || unsafe {
            if !(*c).master.is_null() {
                return DECLINED; // HTTP/2 streams ride on the already-secured master connection
            }
            if (*c).outgoing != 0 {
                // A backend connection: ours if bind_outgoing claimed it.
                return if filters::add_backend_filters(c) { OK } else { DECLINED };
            }
            let s = (*c).base_server;
            let conf = server_conf(s);
            let Some(local) = socket_addr((*c).local_addr) else { return DECLINED };
            if !conf.engines.iter().any(|e| e.matches(&local)) {
                return DECLINED;
            }
            #[cfg(feature = "test-hooks")]
            crate::test_hooks::panic_in_pre_connection_on(local.port());
            if built(s).tls.is_none() {
                log_conn!(c, log::ERR, 0, "no TLS configuration for {} on {local}; closing", describe(s));
                (*c).aborted = 1;
                return DECLINED;
            }
            filters::attach(c);
            OK
        },
    )
}

/// Answers `ap_ssl_var_lookup` (mod_rewrite's %{SSL:..}, mod_headers, ap_expr, mod_http2, CGI).
unsafe extern "C" fn var_lookup(
    p: *mut apr_pool_t,
    _s: *mut server_rec,
    c: *mut conn_rec,
    _r: *mut request_rec,
    name: *const c_char,
) -> *const c_char {
    catch_panic(
        ptr::null(),
        |_| {},
        || unsafe {
            if c.is_null() || name.is_null() {
                return ptr::null();
            }
            let Some(facts) = handshake_facts(c) else { return ptr::null() };
            match vars::lookup(&cstr(name), &vars::ConnFacts::now(facts)) {
                Some(v) => pool::pstrdup(p, &v),
                None => ptr::null(),
            }
        },
    )
}

/// `%{SSL_*}` in ap_expr (`Require expr`, `<If>`, mod_headers expressions): resolved at request
/// time through `ap_ssl_var_lookup`, so it works for mod_ssl's connections as well as ours.
unsafe extern "C" fn expr_ssl_var(ctx: *mut sys::ap_expr_eval_ctx_t, data: *const c_void) -> *const c_char {
    catch_panic(
        ptr::null(),
        |_| {},
        || unsafe {
            if (*ctx).c.is_null() {
                return ptr::null();
            }
            sys::ap_ssl_var_lookup((*ctx).p, (*ctx).s, (*ctx).c, (*ctx).r, data as *const c_char)
        },
    )
}

unsafe extern "C" fn expr_lookup(parms: *mut sys::ap_expr_lookup_parms) -> c_int {
    catch_panic(
        DECLINED,
        |_| {},
        || unsafe {
            let p = &mut *parms;
            if p.type_ != sys::AP_EXPR_FUNC_VAR as c_int || p.name.is_null() || !cstr(p.name).starts_with("SSL_") {
                return DECLINED;
            }
            let f: unsafe extern "C" fn(*mut sys::ap_expr_eval_ctx_t, *const c_void) -> *const c_char = expr_ssl_var;
            *p.func = f as *const c_void;
            *p.data = p.name as *const c_void;
            OK
        },
    )
}

/// A request whose Host names another vhost than the one its handshake ran with (chosen by SNI,
/// or the address's default without SNI) may only be served when both have the same TLS settings
/// (otherwise the client would get around the other vhost's policy): 421, so that a client that
/// coalesced connections (HTTP/2) or sent no SNI retries on a connection of its own for that name.
unsafe extern "C" fn post_read_request(r: *mut request_rec) -> c_int {
    catch_panic(
        DECLINED,
        |_| {},
        || unsafe {
            let Some(shared) = filters::conn_shared((*r).connection) else { return DECLINED };
            if built((*r).server).tls.as_ref().is_some_and(|t| t.fallback) {
                // mod_md's stand-in certificate: not for serving content.
                return sys::HTTP_SERVICE_UNAVAILABLE as c_int;
            }
            if shared.is_plain_http() {
                // As mod_ssl: a readable answer for someone who typed http:// with the TLS port.
                sys::apr_table_setn(
                    (*r).notes,
                    c"error-notes".as_ptr(),
                    c"Reason: You're speaking plain HTTP to a TLS-enabled server port.<br />\n Instead use the HTTPS scheme to access this URL, please.<br />\n".as_ptr(),
                );
                (*(*r).connection).keepalive = sys::ap_conn_keepalive_e_AP_CONN_CLOSE;
                log_conn!((*r).connection, log::INFO, 0, "plain HTTP request on a TLS port; answering 400");
                return sys::HTTP_BAD_REQUEST as c_int;
            }
            let Some(established) = shared.established() else {
                // Requests only follow a completed handshake; refuse rather than guess.
                log_server!((*r).server, log::ERR, 0, "request on a TLS connection without a completed handshake");
                return sys::HTTP_MISDIRECTED_REQUEST as c_int;
            };
            // Every request, with or without SNI: without it the handshake ran with the address's
            // default vhost, whose policy a Host naming another vhost must not get around.
            let handshake_server = established.server;
            let fingerprint = |s: *const server_rec| built(s).tls.as_ref().map(|t| t.fingerprint);
            if crate::tls::policy::misdirected(
                (*r).server == handshake_server,
                fingerprint((*r).server).as_ref(),
                fingerprint(handshake_server).as_ref(),
            ) {
                let sni =
                    established.facts.sni.as_deref().map_or_else(|| "no SNI".to_string(), |n| format!("SNI '{n}'"));
                log_server!(
                    (*r).server,
                    log::ERR,
                    0,
                    "AH10345: request for host '{}' on a connection whose handshake ran for {} ({sni}): the two \
                     virtual hosts have different TLS settings; answering 421 Misdirected Request",
                    cstr((*r).hostname),
                    describe(handshake_server)
                );
                return sys::HTTP_MISDIRECTED_REQUEST as c_int;
            }
            // Only for a request this vhost serves: a refused one gets no user either.
            if let Some(var) = server_conf((*r).server).user_name_var.as_deref()
                && let Some(user) = vars::lookup(var, &vars::ConnFacts::now(&established.facts))
            {
                (*r).user = pool::pstrdup((*r).pool, &user) as *mut c_char;
            }
            DECLINED
        },
    )
}

/// Runs the handshake before any protocol module reads (as mod_ssl does), so that SNI and ALPN
/// have chosen the vhost and protocol when mod_http2 (APR_HOOK_LAST) and the HTTP/1.1 core
/// (REALLY_LAST) look at the connection.
///
/// On an MPM that can wait for I/O itself (event, httpd 2.4.71+), the handshake reads
/// non-blocking: while the client owes bytes, the connection goes back to the MPM in
/// `CONN_STATE_ASYNC_WAITIO` and holds no worker thread (bounded by `Timeout`); the MPM calls us
/// again when bytes arrive. Stalled or slow clients then cannot exhaust the workers. Nearby
/// clients are first waited for in the worker, within the bounds of [`handshake_wait`].
unsafe extern "C" fn process_connection(c: *mut conn_rec) -> c_int {
    catch_panic(
        DONE,
        |m| unsafe {
            (*c).aborted = 1;
            log_conn!(c, log::ERR, 0, "internal error (panic) in the TLS handshake: {m}");
        },
        || unsafe {
            if !(*c).master.is_null() {
                return DECLINED;
            }
            let Some(tc) = filters::conn_state(c) else { return DECLINED };
            if !tc.is_handshaking() {
                return DECLINED;
            }
            let mut can_waitio: c_int = 0;
            let async_ok = !(*c).cs.is_null()
                && !built((*c).base_server).reqtimeout_handshake
                && sys::ap_mpm_query(sys::AP_MPMQ_CAN_WAITIO as c_int, &mut can_waitio) == crate::httpd::APR_SUCCESS
                && can_waitio != 0;
            let block =
                if async_ok { sys::apr_read_type_e_APR_NONBLOCK_READ } else { sys::apr_read_type_e_APR_BLOCK_READ };
            // One brigade per connection: this runs again for every segment of a slow handshake,
            // and brigades made from `c->pool` would hold their memory until the connection ends.
            let init = || filters::drive_handshake(c, block);
            let mut rv = init();
            if rv == crate::httpd::APR_EAGAIN
                && async_ok
                && filters::conn_state(c).is_some_and(|tc| tc.awaits_client_flight())
                && let Some(_slot) = handshake_wait::may_wait(crate::httpd::tcp_rtt_us(c), workers_of_this_child())
                && crate::httpd::wait_readable(c, handshake_wait::GRACE_MS)
            {
                rv = init();
            }
            if rv == crate::httpd::APR_EAGAIN && async_ok {
                (*(*c).cs).sense = sys::conn_sense_e_CONN_SENSE_WANT_READ;
                (*(*c).cs).state = sys::conn_state_e_CONN_STATE_ASYNC_WAITIO;
                return OK;
            }
            if rv != crate::httpd::APR_SUCCESS {
                // The handshake failed or the client went away; the filter has logged why.
                (*c).keepalive = sys::ap_conn_keepalive_e_AP_CONN_CLOSE;
                return DONE;
            }
            DECLINED
        },
    )
}

/// The worker threads of this child process (1 for prefork), and how many of them the scoreboard
/// shows idle.
unsafe fn workers_of_this_child() -> handshake_wait::Workers {
    let mut threads: c_int = 0;
    let rv = unsafe { sys::ap_mpm_query(sys::AP_MPMQ_MAX_THREADS as c_int, &mut threads) };
    let threads = if rv == crate::httpd::APR_SUCCESS { threads.max(1) as usize } else { 1 };
    handshake_wait::Workers { threads, idle: unsafe { crate::httpd::server::idle_workers_of_this_child(threads) } }
}

unsafe extern "C" fn conn_is_ssl(c: *mut conn_rec) -> c_int {
    catch_panic(
        DECLINED,
        |_| {},
        || unsafe {
            match filters::conn_shared(c) {
                Some(shared) if !shared.is_plain_http() => OK,
                _ => DECLINED,
            }
        },
    )
}

/// The facts of `c`'s completed handshake (its master's, for an HTTP/2 stream), from any thread.
unsafe fn handshake_facts<'a>(c: *const conn_rec) -> Option<&'a vars::HandshakeFacts> {
    unsafe { filters::conn_shared(c)?.established().map(|e| &*e.facts) }
}

unsafe fn request_is_ours(r: *const request_rec) -> bool {
    unsafe { !(*r).connection.is_null() && filters::conn_shared((*r).connection).is_some() }
}

unsafe extern "C" fn http_scheme(r: *const request_rec) -> *const c_char {
    catch_panic(ptr::null(), |_| {}, || unsafe { if request_is_ours(r) { c"https".as_ptr() } else { ptr::null() } })
}

unsafe extern "C" fn default_port(r: *const request_rec) -> sys::apr_port_t {
    catch_panic(0, |_| {}, || unsafe { if request_is_ours(r) { 443 } else { 0 } })
}

/// As mod_ssl: every request on a TLS connection gets `HTTPS=on` for CGI and friends, and the
/// TLS variables when `TLSOptions StdEnvVars` / `ExportCertData` are on for its location.
unsafe extern "C" fn fixups(r: *mut request_rec) -> c_int {
    catch_panic(
        DECLINED,
        |_| {},
        || unsafe {
            if filters::conn_shared((*r).connection).is_none() {
                return DECLINED;
            }
            let env = (*r).subprocess_env;
            sys::apr_table_setn(env, c"HTTPS".as_ptr(), c"on".as_ptr());
            let dconf = &*(sys::ap_get_module_config((*r).per_dir_config, record()) as *const DirConf);
            let std_vars = dconf.options.has(conf::OPT_STD_ENV_VARS);
            let cert_data = dconf.options.has(conf::OPT_EXPORT_CERT_DATA);
            if !std_vars && !cert_data {
                return DECLINED;
            }
            let Some(facts) = handshake_facts((*r).connection) else { return DECLINED };
            let facts = vars::ConnFacts::now(facts);
            let set = |k: &str, v: &str| {
                sys::apr_table_setn(env, pool::pstrdup((*r).pool, k), pool::pstrdup((*r).pool, v));
            };
            if std_vars {
                for (k, v) in vars::std_env_vars(&facts) {
                    set(&k, &v);
                }
            }
            if cert_data {
                for (k, v) in vars::cert_data_vars(&facts) {
                    set(&k, &v);
                }
            }
            DECLINED
        },
    )
}

unsafe extern "C" fn pre_config(pconf: *mut apr_pool_t, _plog: *mut apr_pool_t, _ptemp: *mut apr_pool_t) -> c_int {
    catch_panic(
        HTTP_INTERNAL_SERVER_ERROR,
        |_| {},
        || unsafe {
            // Lets administrators configure the cache's lock with `Mutex ... tls-session-cache`.
            sys::ap_mutex_register(
                pconf,
                socache::MUTEX_TYPE.as_ptr(),
                ptr::null(),
                sys::apr_lockmech_e_APR_LOCK_DEFAULT,
                0,
            );
            OK
        },
    )
}

unsafe extern "C" fn child_init(pchild: *mut apr_pool_t, s: *mut server_rec) {
    catch_panic(
        (),
        |_| {},
        || unsafe {
            if let Some(cache) = built(s).session_cache.as_ref() {
                cache.child_init(pchild);
            }
        },
    )
}

/// mod_status's server-status page: the session cache's own status, as mod_ssl shows its cache.
unsafe extern "C" fn status_hook(r: *mut request_rec, flags: c_int) -> c_int {
    catch_panic(
        OK,
        |_| {},
        || unsafe {
            let Some(cache) = built(sys::ap_server_conf).session_cache.clone() else { return OK };
            let write = |text: &str| {
                sys::ap_rwrite(text.as_ptr().cast(), text.len() as c_int, r);
            };
            if flags & sys::AP_STATUS_SHORT as c_int != 0 {
                write(&format!("TLSSessionCache: {}\n", cache.spec));
                cache.status(r, flags);
            } else {
                write(&format!("<hr>\n<h2>TLS Session Cache Status (mod_tls, {})</h2>\n", cache.spec));
                cache.status(r, flags);
            }
            OK
        },
    )
}

unsafe extern "C" fn register_hooks(_p: *mut apr_pool_t) {
    catch_panic(
        (),
        |_| {},
        || unsafe {
            crate::httpd::set_module(tls_module.0.get());
            let none = ptr::null();
            sys::ap_hook_pre_config(Some(pre_config), none, none, HOOK_MIDDLE);
            sys::ap_hook_check_config(Some(check_config), none, none, HOOK_MIDDLE);
            sys::ap_hook_child_init(Some(child_init), none, none, HOOK_MIDDLE);
            let status: unsafe extern "C" fn(*mut request_rec, c_int) -> c_int = status_hook;
            // SAFETY: apr's optional hooks store a generic function pointer and call it with the
            // hook's real signature (what APR_OPTIONAL_HOOK does in C).
            sys::apr_optional_hook_add(
                c"status_hook".as_ptr(),
                Some(std::mem::transmute::<
                    unsafe extern "C" fn(*mut request_rec, c_int) -> c_int,
                    unsafe extern "C" fn(),
                >(status)),
                none,
                none,
                HOOK_MIDDLE,
            );
            sys::ap_hook_post_config(Some(post_config), none, none, HOOK_MIDDLE);
            sys::ap_hook_pre_connection(Some(pre_connection), none, none, HOOK_MIDDLE);
            sys::ap_hook_process_connection(Some(process_connection), none, none, HOOK_MIDDLE);
            sys::ap_hook_ssl_conn_is_ssl(Some(conn_is_ssl), none, none, HOOK_MIDDLE);
            // Before mod_ssl's, which answers HTTPS=off and SSL_VERSION_* for every connection; we
            // answer only for ours.
            sys::ap_hook_ssl_var_lookup(Some(var_lookup), none, none, sys::APR_HOOK_FIRST as c_int);
            sys::ap_hook_ssl_bind_outgoing(Some(bind_outgoing), none, none, HOOK_MIDDLE);
            sys::ap_hook_expr_lookup(Some(expr_lookup), none, none, sys::APR_HOOK_FIRST as c_int);
            sys::ap_hook_post_read_request(Some(post_read_request), none, none, HOOK_MIDDLE);
            sys::ap_hook_http_scheme(Some(http_scheme), none, none, HOOK_MIDDLE);
            sys::ap_hook_default_port(Some(default_port), none, none, HOOK_MIDDLE);
            sys::ap_hook_fixups(Some(fixups), none, none, HOOK_MIDDLE);
            filters::register();
        },
    )
}
