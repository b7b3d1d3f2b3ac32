//! Start-up, once per configuration generation: check_config validates everything and builds
//! every rustls configuration (so `apache2 -t` and every restart fail on a bad file, never the
//! first connection), post_config adds what only exists then (the session cache's shared memory,
//! mod_md's certificates, OCSP stapling), child_init re-attaches the cache's mutex.

use std::path::Path;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::conf::error::{ConfError, ErrorKind};
use crate::conf::{CacheSpec, CertSpec, Located, Origin};
use crate::tls::{certs, engine, policy, sessions};
use httpd::hooks::Startup;
use httpd::log_server;
use httpd::{HTTP_INTERNAL_SERVER_ERROR, HookResult, OK, Pool, Server, compat, log, md, socache};

use super::directives::{PROXY_SCOPES, ProxyScopes};
use super::{TlsModule, built, conf, requests, settle};
use crate::stores::{SocacheSessions, socache_error};

pub fn pre_config(pconf: Pool) -> HookResult {
    socache::register_mutex(pconf);
    if !md::module_loaded(c"mod_ssl.c") {
        // What configurations written for mod_ssl use, where mod_ssl is not there to offer it:
        // the stock `%{SSL_PROTOCOL}x %{SSL_CIPHER}x` log formats and `Require ssl`.
        compat::register_log_handler(pconf, c"x", requests::log_var);
        compat::register_log_handler(pconf, c"c", requests::log_tls_fact);
        compat::register_authz_provider(pconf, c"ssl", requests::require_tls);
        compat::register_authz_provider(pconf, c"ssl-verify-client", requests::require_verified_client);
    }
    OK
}

pub fn child_init(pchild: Pool, main: Server) {
    if let Some(cache) = built(main).session_cache() {
        cache.0.child_init(pchild);
    }
}

/// Validates everything and builds every rustls config. Runs before `apache2 -t` reports, and on
/// every (re)start, so bad files fail there and never at the first connection.
pub fn check_config(st: &Startup) -> HookResult {
    let result = check_and_build(st);
    if result != OK {
        // httpd stops here: what else was found goes out with the errors.
        log_start_notes(st.main);
    }
    result
}

/// Something found while checking the configuration that does not stop start-up (at `level`),
/// logged once the error log is open. httpd opens it after check_config: logged from there, it
/// would reach only the terminal of the first pass, and nothing at all in the pass that serves (a
/// daemon's stderr is /dev/null until then). Logged in post_config instead, it is in the error log
/// once per pass, as mod_ssl's and the C module's warnings are; `apache2 -t` prints it from
/// test_config.
fn note_at_start(main: Server, level: std::ffi::c_int, text: String) {
    let mut notes = built(main).main_only().start_notes.lock().unwrap_or_else(|e| e.into_inner());
    notes.push((level, text));
}

/// A warning about a setting that builds, but not as written (or, if harmless, said at `info`).
fn warn_at_start(main: Server, w: &crate::tls::warning::Warning) {
    note_at_start(main, if w.is_harmless() { log::INFO } else { log::WARNING }, w.to_string());
}

fn log_start_notes(main: Server) {
    let notes = std::mem::take(&mut *built(main).main_only().start_notes.lock().unwrap_or_else(|e| e.into_inner()));
    for (level, text) in notes {
        log_server!(main, level, 0, "mod_tls: {text}");
    }
}

/// `apache2 -t`: what start-up would log once the error log is open.
pub fn test_config(main: Server) {
    log_start_notes(main);
}

fn check_and_build(st: &Startup) -> HookResult {
    // A create/merge callback that panicked (logged) left a server without its configuration:
    // nothing of it could be checked, so start-up stops here rather than serve it unchecked.
    if let Some(s) = st.main.and_following().find(|s| s.try_config::<TlsModule>().is_none()) {
        log_server!(
            st.main,
            log::EMERG,
            0,
            "mod_tls: the configuration of {} could not be made (the internal error is logged above); \
             httpd does not start with it. Please report this as a bug",
            s.describe()
        );
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    note_reqtimeout_handshakes(st);
    if !build_proxy_configs(st) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    let main = st.main;
    // An address no `Listen` opens gets no connection: as the C module, that only warns (a
    // listened TLS address without a certificate still fails below).
    let listens = httpd::server::listen_addrs();
    let (engines, unheard): (Vec<_>, Vec<_>) =
        conf(main).engines.iter().cloned().partition(|e| listens.is_empty() || e.is_listened(&listens));
    for e in unheard {
        // A notice, logged whatever LogLevel says, not a warning: the C module says nothing (its
        // test suite counts warnings), yet an administrator whose `Listen 443` sits in an
        // `<IfModule ssl_module>` should learn why nothing is served.
        note_at_start(
            main,
            log::NOTICE,
            format!(
                "TLSEngine {e}: no Listen directive opens this address, so no connection arrives there; \
                 add 'Listen {e}' or remove the TLSEngine line"
            ),
        );
    }
    if engines.is_empty() {
        return OK;
    }
    let all_vhost_addrs: Vec<_> = main.and_following().map(super::vhost_addrs).filter(|a| !a.is_empty()).collect();
    let mut failed = false;
    let cache = match open_session_cache(st) {
        Ok(cache) => cache,
        Err(()) => {
            failed = true;
            None
        }
    };
    if let Some(cache) = &cache {
        settle(&built(main).main_only().session_cache, cache.clone());
    }
    let passphrase_program = conf(main).passphrase_program.clone();
    let mod_ssl_servers = servers_with_mod_ssl_engine(main);
    // Sized once for every server: growing would leave the smaller tables behind, freed but
    // touched, among the vhosts' allocations.
    let mut built_already: std::collections::HashMap<[u8; 32], Option<Arc<engine::VhostTls>>> =
        std::collections::HashMap::with_capacity(main.and_following().count());
    let mut providers = engine::Providers::default();
    for s in main.and_following() {
        let own_addrs = s.is_virtual().then(|| super::vhost_addrs(s));
        let conf = conf(s);
        let facts = policy::ServerFacts {
            vhost_addrs: own_addrs.as_deref(),
            mod_ssl_engine: mod_ssl_servers.contains(&s),
            has_certificates: !conf.certificates.is_empty(),
            mod_md_loaded: md::mod_md_loaded(),
        };
        let plan = policy::plan_server(&engines, &all_vhost_addrs, &facts);
        if let Some(why) = plan.refusal(&s.describe()) {
            log_server!(main, log::EMERG, 0, "mod_tls: {why}");
            failed = true;
            continue;
        }
        let md_deferred = match plan {
            policy::ServerPlan::NotServed => {
                // Nothing of it is built, yet a wrong path fails start-up here too, as mod_ssl
                // and the C module check the files a directive names wherever it is written.
                // Inherited certificates are the main server's, checked where it comes.
                if !conf.certificates_inherited {
                    for spec in conf.certificates.specs().iter() {
                        if let Err(e) = certs::check_present(spec) {
                            let e = e.within("TLSCertificate").at(&spec.origin);
                            log_server!(main, log::EMERG, 0, "mod_tls: {}", e.located());
                            failed = true;
                        }
                    }
                }
                continue;
            }
            policy::ServerPlan::AskModMd => true,
            _ => false,
        };
        if !md_deferred {
            let mut ask = |key: &Path, retry: bool| ask_passphrase(st, s, passphrase_program.as_deref(), key, retry);
            let ask: Option<crate::tls::certs::PassphraseSource<'_>> =
                if passphrase_program.is_some() { Some(&mut ask) } else { None };
            // Vhosts with the same settings share one configuration (and a bad file is
            // reported once, not once per vhost that names it).
            let key = conf.tls_build_id();
            let built_here = !built_already.contains_key(&key);
            let tls = built_already.entry(key).or_insert_with(|| {
                match engine::build_vhost(conf, ask, built(main).main_only().next_vhost_slot(), &mut providers) {
                    Ok((tls, warnings)) => {
                        for w in &warnings {
                            warn_at_start(main, w);
                        }
                        Some(Arc::new(tls))
                    }
                    Err(e) => {
                        log_server!(main, log::EMERG, 0, "mod_tls: {}", e.located());
                        None
                    }
                }
            });
            match tls {
                Some(tls) => settle(&built(s).tls, tls.clone()),
                None => failed = true,
            }
            // Built: what named the certificates is needed no more (see `Certificates`), where
            // the vhost built a configuration of its own. Released here, one vhost at a time, so
            // that the next vhosts' configurations fill the room it leaves: left empty (freed
            // after start-up, or by vhosts that share a configuration and so build nothing to
            // fill it), it is holes all over the memory the children share, each a page that
            // the first allocation landing in it copies.
            if built_here {
                conf.certificates.release();
            }
        }
        settle(&built(s).md_deferred, md_deferred);
    }
    if failed { HTTP_INTERNAL_SERVER_ERROR } else { OK }
}

/// The servers in which mod_ssl is switched on (`SSLEngine on`), when mod_ssl is loaded: read
/// from the configuration tree, as mod_ssl's own settings are not ours to look into. A vhost's
/// last `SSLEngine` line counts; without one, the top level's (mod_ssl merges it into vhosts).
fn servers_with_mod_ssl_engine(main: Server) -> Vec<Server> {
    if !md::module_loaded(c"mod_ssl.c") {
        return Vec::new();
    }
    let lines = httpd::server::directives_named("SSLEngine");
    let last_in = |scope: &Option<(String, i32)>| {
        lines.iter().rev().find(|(_, vhost)| vhost == scope).map(|(args, _)| args.trim().eq_ignore_ascii_case("on"))
    };
    let top_level = last_in(&None).unwrap_or(false);
    main.and_following()
        .filter(|s| {
            let own = if s.is_virtual() { last_in(&Some(s.defined_at())) } else { None };
            own.unwrap_or(top_level)
        })
        .collect()
}

/// Notes which servers have a mod_reqtimeout handshake stage, from the configuration tree
/// (`RequestReadTimeout` at the top level applies to every vhost that does not set its own).
fn note_reqtimeout_handshakes(st: &Startup) {
    let found: Vec<_> = httpd::server::directives_named("RequestReadTimeout")
        .into_iter()
        .filter_map(|(args, vhost)| conf::reqtimeout_handshake(&args).map(|on| (vhost, on)))
        .collect();
    for s in st.main.and_following() {
        let (file, line) = s.defined_at();
        let vhost = s.is_virtual().then_some((file.as_str(), line));
        settle(&built(s).reqtimeout_handshake, policy::reqtimeout_handshake_applies(&found, vhost));
    }
}

/// Builds (and so validates) the backend client configs for every proxy scope: each server's own
/// settings, and each `<Proxy>` section as it applies within each server.
fn build_proxy_configs(st: &Startup) -> bool {
    let main = st.main;
    let scopes = st.config_userdata(PROXY_SCOPES, ProxyScopes::new).borrow().clone();
    // Each section as written (mod_proxy hands a worker's own section to bind_outgoing), and
    // merged over each server's defaults (a request's merged configuration).
    let mut candidates: Vec<conf::ProxyConf> = scopes.iter().map(|d| d.get().proxy().clone()).collect();
    for s in main.and_following() {
        let server_proxy = s.dir_defaults::<TlsModule>().proxy();
        candidates.push(server_proxy.clone());
        candidates.extend(scopes.iter().map(|d| conf::ProxyConf::merge(server_proxy, d.get().proxy())));
    }
    // Every file first, also of sections that only add to others (a bad one fails start-up),
    // then the configs from what was read.
    let mut cache = crate::tls::backend::ProxyCache::default();
    let mut ok = true;
    for p in &candidates {
        if let Err(e) = cache.load_files(p) {
            log_server!(main, log::EMERG, 0, "mod_tls: {}", e.located());
            ok = false;
        }
    }
    if ok {
        for p in candidates.iter().filter(|p| p.enabled()) {
            match cache.get_or_build(p) {
                Ok((_, warnings)) => {
                    for w in &warnings {
                        warn_at_start(main, w);
                    }
                }
                Err(e) => {
                    log_server!(main, log::EMERG, 0, "mod_tls: {}", e.located());
                    ok = false;
                }
            }
        }
    }
    settle(&built(main).main_only().proxy_cache, Arc::new(cache));
    ok
}

/// Opens the `TLSSessionCache` (or the default shared-memory one) for this generation. A broken
/// configured cache fails start-up; the default one only warns when unavailable.
fn open_session_cache(st: &Startup) -> Result<Option<Arc<SocacheSessions>>, ()> {
    let main = st.main;
    let (name, args, origin) = match &conf(main).session_cache_spec {
        Some(Located { value: CacheSpec::None, .. }) => return Ok(None),
        Some(Located { value: CacheSpec::Provider { name, args }, origin }) => {
            (name.clone(), args.clone(), Some(origin))
        }
        None | Some(Located { value: CacheSpec::Default, .. }) => {
            ("shmcb".to_string(), conf::DEFAULT_CACHE_ARGS.to_string(), None)
        }
    };
    match socache::SessionCache::create(&name, &args, main, st.pconf, st.ptemp) {
        Ok(c) => Ok(Some(Arc::new(SocacheSessions(c)))),
        Err(e) => match origin {
            Some(o) => {
                log_server!(
                    main,
                    log::EMERG,
                    0,
                    "mod_tls: {}",
                    socache_error(e).within("TLSSessionCache").at(o).located()
                );
                Err(())
            }
            None => {
                note_at_start(
                    main,
                    log::WARNING,
                    format!("no TLS session cache, sessions will not resume across processes: {}", socache_error(e)),
                );
                Ok(None)
            }
        },
    }
}

/// Runs `TLSPassPhraseDialog exec:program server:port keyfile` for an encrypted key, or answers
/// with the passphrase it gave before for that key file: kept in the process's memory (as mod_ssl
/// keeps them), so that the second start-up pass and graceful restarts do not run the program
/// again. The passphrase is never logged.
fn ask_passphrase(
    st: &Startup,
    s: Server,
    program: Option<&Path>,
    key: &Path,
    retry: bool,
) -> Result<Zeroizing<String>, ConfError> {
    let failed = |message: String| ConfError::new(ErrorKind::Passphrase, message);
    let remembered = format!("mod_tls passphrase for {}", key.display());
    if !retry && let Some(p) = st.process_note(&remembered) {
        return Ok(Zeroizing::new(p));
    }
    let program = program.expect("only asked when configured");
    let who = format!("{}:{}", s.hostname(), s.port());
    let out = std::process::Command::new(program)
        .arg(&who)
        .arg(key)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| failed(format!("TLSPassPhraseDialog: cannot run {}: {e}", program.display())))?;
    if !out.status.success() {
        return Err(failed(format!(
            "TLSPassPhraseDialog: {} failed ({}) for {}",
            program.display(),
            out.status,
            key.display()
        )));
    }
    let stdout = Zeroizing::new(out.stdout);
    let text = Zeroizing::new(String::from_utf8_lossy(&stdout).into_owned());
    let passphrase = Zeroizing::new(text.trim_end_matches(['\r', '\n']).to_string());
    st.set_process_note(&remembered, &passphrase);
    Ok(passphrase)
}

pub fn post_config(st: &Startup) -> HookResult {
    let main = st.main;
    log_start_notes(main);
    if let Some(cache) = built(main).session_cache().cloned() {
        // A configured provider that fails stops start-up; the default one only warns.
        let configured =
            conf(main).session_cache_spec.as_ref().filter(|l| matches!(l.value, CacheSpec::Provider { .. }));
        if configured.is_none() {
            socache::ensure_default_dir(st.pconf);
        }
        if let Err(e) = cache.0.init(st.pconf, sessions::DEFAULT_LIFETIME_SECS as u32).map_err(socache_error) {
            match configured {
                Some(o) => {
                    log_server!(
                        main,
                        log::EMERG,
                        0,
                        "mod_tls: {}",
                        e.within("TLSSessionCache").at(&o.origin).located()
                    );
                    return HTTP_INTERNAL_SERVER_ERROR;
                }
                None => log_server!(main, log::WARNING, 0, "mod_tls: running without a session cache: {e}"),
            }
        }
    }
    if !certificates_from_mod_md(st) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    // Made here, before the children of this generation are forked, so that they share them.
    match httpd::shm::SharedCounters::create(st.pconf, crate::tls::stats::COUNTERS, crate::tls::time::now_unix()) {
        Some(counters) => settle(&built(main).main_only().stats, crate::stores::ShmCounters(counters)),
        None => log_server!(main, log::WARNING, 0, "mod_tls: no shared memory for the status page's counters"),
    }
    prime_ocsp_stapling(st);
    // Before the children are forked: what the dry pass or the previous generation left free
    // goes back to the kernel rather than into every child.
    httpd::release_free_memory();
    // post_config runs twice at start-up; say hello on the pass that serves.
    if !st.is_first_pass() {
        log_server!(
            main,
            log::INFO,
            0,
            "mod_tls/{} (rustls/{}) initialized",
            mod_tls_core::VERSION,
            mod_tls_core::RUSTLS_VERSION
        );
    }
    OK
}

/// Certificates from mod_md (`ap_ssl_add_cert_files`): a vhost whose name mod_md manages gets
/// its certificate instead of the global `TLSCertificate` it would inherit (its own
/// `TLSCertificate` stays first, as in the C module). A server without any `TLSCertificate` gets
/// mod_md's temporary stand-in until mod_md has one (then requests get 503).
fn certificates_from_mod_md(st: &Startup) -> bool {
    if !md::mod_md_loaded() {
        return true;
    }
    let main = st.main;
    let mut ok = true;
    // Same session cache as every other vhost: a managed domain resumes sessions too.
    let mut providers = engine::Providers::default();
    for s in main.and_following() {
        let deferred = built(s).md_deferred();
        if !deferred && (built(s).tls().is_none() || !conf(s).certificates_inherited) {
            continue; // not served with TLS, or with a certificate of its own
        }
        let (certs, keys, fallback) = md::cert_files(s, st.pconf, deferred);
        if certs.is_empty() {
            if deferred {
                log_server!(
                    main,
                    log::EMERG,
                    0,
                    "mod_tls: {} is served with TLS but has no certificate, and mod_md has none for it: add \
                     'TLSCertificate cert.pem key.pem' or an MDomain for its name",
                    s.describe()
                );
                ok = false;
            }
            continue;
        }
        // The settings with mod_md's files: built from a copy, the directive values stay as written.
        let mut settings = conf(s).clone();
        settings.certificates = certs
            .into_iter()
            .enumerate()
            .map(|(i, cert_file)| CertSpec {
                cert_file,
                key_file: keys.get(i).cloned(),
                origin: Origin { file: "mod_md".into(), line: 0 },
            })
            .collect::<Vec<_>>()
            .into();
        let slot = built(st.main).main_only().next_vhost_slot();
        match engine::build_vhost(&settings, None, slot, &mut providers) {
            Ok((mut tls, _)) => {
                tls.fallback = fallback;
                if fallback {
                    log_server!(
                        main,
                        log::WARNING,
                        0,
                        "mod_tls: {} uses mod_md's temporary certificate; answering 503 until mod_md has one",
                        s.describe()
                    );
                }
                if deferred {
                    settle(&built(s).tls, Arc::new(tls));
                } else {
                    log_server!(
                        main,
                        log::INFO,
                        0,
                        "mod_tls: {} uses the certificate mod_md manages for it, not the TLSCertificate it inherits",
                        s.describe()
                    );
                    settle(&built(s).managed_tls, Arc::new(tls));
                }
            }
            Err(e) if !deferred => log_server!(
                main,
                log::WARNING,
                0,
                "mod_tls: {} keeps the TLSCertificate it inherits: mod_md's certificate for it is not usable: {}",
                s.describe(),
                e.message
            ),
            Err(e) => {
                log_server!(
                    main,
                    log::EMERG,
                    0,
                    "mod_tls: certificate from mod_md for {}: {}",
                    s.describe(),
                    e.message
                );
                ok = false;
            }
        }
    }
    ok
}

/// Registers every certificate with an issuer for OCSP stapling (`ap_ssl_ocsp_prime`): mod_md
/// (`MDStapling on`, `MDStapleOthers on`) then keeps a fresh response for it.
fn prime_ocsp_stapling(st: &Startup) {
    for s in st.main.and_following() {
        let Some(tls) = built(s).tls() else { continue };
        if tls.stapling.get().is_some() {
            // Shared with a vhost primed before (same settings), or the second post_config pass.
            continue;
        }
        let stapling = crate::tls::ocsp::prime(tls.certified_keys(), |id, pem| {
            let rv = md::ocsp_prime(s, st.pconf, id, pem);
            log_server!(
                s,
                log::DEBUG,
                rv,
                "OCSP stapling for {}: {}",
                s.describe(),
                if rv.is_success() { "provided" } else { "not provided" }
            );
            rv == httpd::APR_SUCCESS
        });
        settle(&tls.stapling, stapling.into());
    }
}
