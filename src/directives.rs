//! The directive table: one row per directive (name, argument shape, where it may be written,
//! help; name and help from [`crate::conf::directives`], which `mod_tls-migrate` writes from too),
//! and for each a handler that parses its argument with [`crate::conf`] and stores the
//! value. Errors name what to fix; httpd prints them after the file and line.

use crate::conf::directives as d;
use crate::conf::error::{ConfError, ErrorKind};
use crate::conf::{self, CacheSpec, CertSpec, CipherList, EngineAddr, Located, ProxyCa, ServerConf};
use crate::tls::ciphers;
use httpd::command::{Cmd, CommandTable, Scope, flag, iterate, raw_args, take1, take12};
use httpd::record::DirRef;

use super::TlsModule;

pub static COMMANDS: CommandTable<{ d::ALL.len() }> = CommandTable::new([
    flag(d::PROXY_ENGINE.name, proxy_engine, Scope::SERVER_OR_PROXY, d::PROXY_ENGINE.help),
    take1(d::PROXY_CA.name, proxy_ca, Scope::SERVER_OR_PROXY, d::PROXY_CA.help),
    take1(d::PROXY_PROTOCOL.name, proxy_protocol, Scope::SERVER_OR_PROXY, d::PROXY_PROTOCOL.help),
    iterate(d::PROXY_CIPHERS_PREFER.name, proxy_ciphers_prefer, Scope::SERVER_OR_PROXY, d::PROXY_CIPHERS_PREFER.help),
    iterate(
        d::PROXY_CIPHERS_SUPPRESS.name,
        proxy_ciphers_suppress,
        Scope::SERVER_OR_PROXY,
        d::PROXY_CIPHERS_SUPPRESS.help,
    ),
    take12(
        d::PROXY_MACHINE_CERTIFICATE.name,
        proxy_machine_certificate,
        Scope::SERVER_OR_PROXY,
        d::PROXY_MACHINE_CERTIFICATE.help,
    ),
    take1(d::CLIENT_CERTIFICATE.name, client_certificate, Scope::SERVER_OR_DIRECTORY, d::CLIENT_CERTIFICATE.help),
    take1(d::CLIENT_CA.name, client_ca, Scope::SERVER_OR_DIRECTORY, d::CLIENT_CA.help),
    take1(d::CLIENT_CRL.name, client_crl, Scope::SERVER_OR_DIRECTORY, d::CLIENT_CRL.help),
    take1(d::USER_NAME.name, user_name, Scope::SERVER_OR_DIRECTORY, d::USER_NAME.help),
    take1(d::SESSION_CACHE.name, session_cache, Scope::SERVER, d::SESSION_CACHE.help),
    take1(d::SESSION_CACHE_TIMEOUT.name, session_cache_timeout, Scope::SERVER, d::SESSION_CACHE_TIMEOUT.help),
    raw_args(d::OPTIONS.name, options, Scope::OPTIONS, d::OPTIONS.help),
    take1(d::PASSPHRASE_DIALOG.name, passphrase_dialog, Scope::SERVER, d::PASSPHRASE_DIALOG.help),
    take1(d::ENGINE.name, engine, Scope::SERVER, d::ENGINE.help),
    take12(d::CERTIFICATE.name, certificate, Scope::SERVER, d::CERTIFICATE.help),
    flag(d::STRICT_SNI.name, strict_sni, Scope::SERVER, d::STRICT_SNI.help),
    take1(d::PROTOCOL.name, protocol, Scope::SERVER, d::PROTOCOL.help),
    iterate(d::CIPHERS_PREFER.name, ciphers_prefer, Scope::SERVER, d::CIPHERS_PREFER.help),
    iterate(d::CIPHERS_SUPPRESS.name, ciphers_suppress, Scope::SERVER, d::CIPHERS_SUPPRESS.help),
    flag(d::HONOR_CLIENT_ORDER.name, honor_client_order, Scope::SERVER, d::HONOR_CLIENT_ORDER.help),
]);

/// The directive values of the server the directive is written in.
fn server_conf(cmd: &mut Cmd) -> &mut ServerConf {
    &mut cmd.server_config::<TlsModule>().conf
}

fn placement(message: String) -> ConfError {
    ConfError::new(ErrorKind::Placement, message)
}

/// Directives that name something for the whole server (an address, the cache, a program).
fn global_only(cmd: &Cmd, name: &str, hint: &str) -> Result<(), ConfError> {
    if cmd.server().is_virtual() {
        return Err(placement(format!("{name} is a global directive: move it out of <VirtualHost>{hint}")));
    }
    Ok(())
}

/// Client authentication is part of the handshake, before any request: it cannot differ per
/// location (that would need renegotiation, which TLS 1.3 and rustls do not have).
fn not_in_directory(cmd: &Cmd, name: &str) -> Result<(), ConfError> {
    if !cmd.in_directory() {
        return Ok(());
    }
    Err(placement(format!(
        "{name} cannot be used in <Location>, <Directory> or <Files>: client certificates are asked for \
         during the handshake, before any request, and changing that per location would need TLS \
         renegotiation, which TLS 1.3 and rustls do not have. Set it for the whole <VirtualHost> (a \
         separate name-based vhost, chosen by SNI, can have its own setting)"
    )))
}

fn engine(cmd: &mut Cmd, arg: &str) -> Result<(), ConfError> {
    global_only(
        cmd,
        d::ENGINE.word(),
        " to the top level (it names the address:port whose virtual hosts all use TLS)",
    )?;
    let addrs = EngineAddr::parse_all(arg)?;
    let conf = server_conf(cmd);
    for a in addrs {
        if !conf.engines.contains(&a) {
            conf.engines.push(a);
        }
    }
    Ok(())
}

fn certificate(cmd: &mut Cmd, cert: &str, key: Option<&str>) -> Result<(), ConfError> {
    let cert_file = server_relative(cmd, cert)?;
    let key_file = key.map(|k| server_relative(cmd, k)).transpose()?;
    let origin = origin(cmd);
    // Usually one or two per vhost, held for the whole generation: no spare room, times
    // thousands of vhosts (and shared with the vhost's merged settings).
    server_conf(cmd).certificates.push(CertSpec { cert_file, key_file, origin });
    Ok(())
}

fn strict_sni(cmd: &mut Cmd, on: bool) -> Result<(), ConfError> {
    global_only(cmd, d::STRICT_SNI.word(), " to the top level")?;
    server_conf(cmd).strict_sni = Some(on);
    Ok(())
}

fn protocol(cmd: &mut Cmd, arg: &str) -> Result<(), ConfError> {
    let value = conf::parse_protocol_floor(d::PROTOCOL.word(), arg)?;
    let origin = origin(cmd);
    server_conf(cmd).protocol_floor = Some(Located { value, origin });
    Ok(())
}

/// The suites one word of a cipher directive names: none for `default`/`none`.
fn cipher_word(word: &str, directive: &str) -> Result<Vec<u16>, ConfError> {
    if CipherList::is_keyword(word) {
        return Ok(Vec::new());
    }
    ciphers::parse_list(word).map_err(|e| e.within(directive))
}

fn add_ciphers(cmd: &mut Cmd, arg: &str, prefer: bool) -> Result<(), ConfError> {
    let which = if prefer { d::CIPHERS_PREFER.word() } else { d::CIPHERS_SUPPRESS.word() };
    let ids = cipher_word(arg, which)?;
    let origin = origin(cmd);
    let conf = server_conf(cmd);
    let list = if prefer { &mut conf.ciphers_prefer } else { &mut conf.ciphers_suppress };
    list.add(ids, &origin);
    Ok(())
}

fn ciphers_prefer(cmd: &mut Cmd, arg: &str) -> Result<(), ConfError> {
    add_ciphers(cmd, arg, true)
}

fn ciphers_suppress(cmd: &mut Cmd, arg: &str) -> Result<(), ConfError> {
    add_ciphers(cmd, arg, false)
}

fn honor_client_order(cmd: &mut Cmd, on: bool) -> Result<(), ConfError> {
    server_conf(cmd).honor_client_order = Some(on);
    Ok(())
}

fn client_certificate(cmd: &mut Cmd, arg: &str) -> Result<(), ConfError> {
    not_in_directory(cmd, d::CLIENT_CERTIFICATE.word())?;
    let value = conf::ClientAuth::parse(arg)?;
    let origin = origin(cmd);
    server_conf(cmd).client_auth = Some(Located { value, origin });
    Ok(())
}

fn client_ca(cmd: &mut Cmd, arg: &str) -> Result<(), ConfError> {
    not_in_directory(cmd, d::CLIENT_CA.word())?;
    let value = server_relative(cmd, arg)?;
    let origin = origin(cmd);
    server_conf(cmd).client_ca = Some(Located { value, origin });
    Ok(())
}

fn client_crl(cmd: &mut Cmd, arg: &str) -> Result<(), ConfError> {
    not_in_directory(cmd, d::CLIENT_CRL.word())?;
    let value = server_relative(cmd, arg)?;
    let origin = origin(cmd);
    server_conf(cmd).client_crls.push(Located { value, origin });
    Ok(())
}

fn user_name(cmd: &mut Cmd, arg: &str) -> Result<(), ConfError> {
    not_in_directory(cmd, d::USER_NAME.word())?;
    if !arg.starts_with("SSL_") {
        return Err(ConfError::new(
            ErrorKind::BadValue,
            format!("{} '{arg}': name a TLS variable such as SSL_CLIENT_S_DN_CN", d::USER_NAME),
        ));
    }
    server_conf(cmd).user_name_var = Some(arg.to_string());
    Ok(())
}

fn session_cache(cmd: &mut Cmd, arg: &str) -> Result<(), ConfError> {
    global_only(cmd, d::SESSION_CACHE.word(), "")?;
    let value = CacheSpec::parse(arg)?;
    let origin = origin(cmd);
    server_conf(cmd).session_cache_spec = Some(Located { value, origin });
    Ok(())
}

fn session_cache_timeout(cmd: &mut Cmd, arg: &str) -> Result<(), ConfError> {
    server_conf(cmd).session_lifetime_secs = Some(conf::parse_session_lifetime(arg)?);
    Ok(())
}

fn options(cmd: &mut Cmd, arg: &str) -> Result<(), ConfError> {
    cmd.dir_config::<TlsModule>().options.apply_line(arg)
}

fn passphrase_dialog(cmd: &mut Cmd, arg: &str) -> Result<(), ConfError> {
    global_only(cmd, d::PASSPHRASE_DIALOG.word(), "")?;
    let Some(program) = arg.strip_prefix("exec:") else {
        return Err(ConfError::new(
            ErrorKind::BadValue,
            format!(
                "{} '{arg}': write exec:/path/to/program (the program prints the passphrase)",
                d::PASSPHRASE_DIALOG
            ),
        ));
    };
    let path = server_relative(cmd, program)?;
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {}
        _ => {
            return Err(ConfError::new(
                ErrorKind::Unreadable,
                format!(
                    "{}: {} is not an executable file: give the program that prints the passphrase",
                    d::PASSPHRASE_DIALOG,
                    path.display()
                ),
            ));
        }
    }
    server_conf(cmd).passphrase_program = Some(path);
    Ok(())
}

// ---- TLSProxy*: in the server, vhosts and <Proxy> sections -----------------------------------

/// The `<Proxy>` sections (and servers) whose TLSProxy* settings were written in this
/// configuration, kept in the configuration pool so that check_config can build and validate
/// their backend configs before any child starts.
pub type ProxyScopes = Vec<DirRef<TlsModule>>;
pub const PROXY_SCOPES: &std::ffi::CStr = c"mod_tls proxy scopes";

fn proxy_setting(cmd: &mut Cmd, set: impl FnOnce(&mut conf::ProxyConf, conf::Origin)) -> Result<(), ConfError> {
    let scope = cmd.dir_ref::<TlsModule>();
    let scopes = cmd.config_userdata(PROXY_SCOPES, ProxyScopes::new);
    if !scopes.borrow().contains(&scope) {
        scopes.borrow_mut().push(scope);
    }
    let origin = origin(cmd);
    set(cmd.dir_config::<TlsModule>().proxy_mut(), origin);
    Ok(())
}

fn proxy_engine(cmd: &mut Cmd, on: bool) -> Result<(), ConfError> {
    proxy_setting(cmd, |p, _| p.engine = Some(on))
}

fn proxy_ca(cmd: &mut Cmd, arg: &str) -> Result<(), ConfError> {
    let value =
        if arg.eq_ignore_ascii_case("default") { ProxyCa::Default } else { ProxyCa::Path(server_relative(cmd, arg)?) };
    proxy_setting(cmd, |p, origin| p.ca = Some(Located { value, origin }))
}

fn proxy_protocol(cmd: &mut Cmd, arg: &str) -> Result<(), ConfError> {
    let value = conf::parse_protocol_floor(d::PROXY_PROTOCOL.word(), arg)?;
    proxy_setting(cmd, |p, origin| p.floor = Some(Located { value, origin }))
}

fn add_proxy_ciphers(cmd: &mut Cmd, arg: &str, prefer: bool) -> Result<(), ConfError> {
    let which = if prefer { d::PROXY_CIPHERS_PREFER.word() } else { d::PROXY_CIPHERS_SUPPRESS.word() };
    let ids = cipher_word(arg, which)?;
    proxy_setting(cmd, |p, origin| {
        let list = if prefer { &mut p.prefer } else { &mut p.suppress };
        list.add(ids, &origin);
    })
}

fn proxy_ciphers_prefer(cmd: &mut Cmd, arg: &str) -> Result<(), ConfError> {
    add_proxy_ciphers(cmd, arg, true)
}

fn proxy_ciphers_suppress(cmd: &mut Cmd, arg: &str) -> Result<(), ConfError> {
    add_proxy_ciphers(cmd, arg, false)
}

fn proxy_machine_certificate(cmd: &mut Cmd, cert: &str, key: Option<&str>) -> Result<(), ConfError> {
    let cert_file = server_relative(cmd, cert)?;
    let key_file = key.map(|k| server_relative(cmd, k)).transpose()?;
    proxy_setting(cmd, |p, origin| p.machine_certs.push(CertSpec { cert_file, key_file, origin }))
}

/// Where the directive being read is written. The file's name is held once per file (the last
/// one named is kept for the next directive): thousands of vhosts each remember where their
/// `TLSCertificate` was written for the whole generation.
fn origin(cmd: &Cmd) -> conf::Origin {
    let w = cmd.written();
    let last = cmd.config_userdata(ORIGIN_FILE, || None::<std::sync::Arc<str>>);
    let mut last = last.borrow_mut();
    let file = match last.as_ref() {
        Some(f) if **f == *w.file => f.clone(),
        _ => last.insert(w.file.into()).clone(),
    };
    conf::Origin { file, line: w.line }
}

/// The configuration pool's note of the file the last directive was written in (see [`origin`]).
const ORIGIN_FILE: &std::ffi::CStr = c"mod_tls origin file";

/// `path` relative to the ServerRoot (absolute paths stay as they are).
fn server_relative(cmd: &Cmd, path: &str) -> Result<std::path::PathBuf, ConfError> {
    cmd.server_relative(path).map_err(|_| ConfError::new(ErrorKind::BadValue, format!("invalid file path '{path}'")))
}
