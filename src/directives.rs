//! The directive table: one row per directive (name, argument shape, where it may be written,
//! help), and for each a handler that parses its argument with [`crate::conf`] and stores the
//! value. Errors name what to fix; httpd prints them after the file and line.

use crate::conf::error::{ConfError, ErrorKind};
use crate::conf::{self, CacheSpec, CertSpec, CipherList, EngineAddr, Located, ProxyCa, ServerConf};
use crate::tls::ciphers;
use httpd::command::{Cmd, CommandTable, Scope, flag, iterate, raw_args, take1, take12};
use httpd::record::DirRef;

use super::TlsModule;

pub static COMMANDS: CommandTable<21> = CommandTable::new([
    flag(
        c"TLSProxyEngine",
        proxy_engine,
        Scope::SERVER_OR_PROXY,
        c"on|off: mod_tls handles TLS to backends in this scope",
    ),
    take1(
        c"TLSProxyCA",
        proxy_ca,
        Scope::SERVER_OR_PROXY,
        c"PEM bundle or directory of PEM files trusted for backend certificates",
    ),
    take1(
        c"TLSProxyProtocol",
        proxy_protocol,
        Scope::SERVER_OR_PROXY,
        c"lowest TLS version towards backends: v1.2+ or v1.3+",
    ),
    iterate(
        c"TLSProxyCiphersPrefer",
        proxy_ciphers_prefer,
        Scope::SERVER_OR_PROXY,
        c"cipher suites to prefer towards backends",
    ),
    iterate(
        c"TLSProxyCiphersSuppress",
        proxy_ciphers_suppress,
        Scope::SERVER_OR_PROXY,
        c"cipher suites never to use towards backends",
    ),
    take12(
        c"TLSProxyMachineCertificate",
        proxy_machine_certificate,
        Scope::SERVER_OR_PROXY,
        c"certificate (and key) presented when a backend asks for a client certificate",
    ),
    take1(
        c"TLSClientCertificate",
        client_certificate,
        Scope::SERVER_OR_DIRECTORY,
        c"required, optional, optional_no_ca or none",
    ),
    take1(
        c"TLSClientCA",
        client_ca,
        Scope::SERVER_OR_DIRECTORY,
        c"PEM file of the CAs that issue accepted client certificates",
    ),
    take1(
        c"TLSClientCRL",
        client_crl,
        Scope::SERVER_OR_DIRECTORY,
        c"CRL file (PEM or DER) checked for client certificate chains",
    ),
    take1(
        c"TLSUserName",
        user_name,
        Scope::SERVER_OR_DIRECTORY,
        c"variable whose value becomes the request's user, e.g. SSL_CLIENT_S_DN_CN",
    ),
    take1(
        c"TLSSessionCache",
        session_cache,
        Scope::SERVER,
        c"none, or a socache provider and its arguments (shmcb:path(size), memcache:host:port, redis:host:port)",
    ),
    take1(
        c"TLSSessionCacheTimeout",
        session_cache_timeout,
        Scope::SERVER,
        c"seconds a session may be resumed, counted from its full handshake (default 300)",
    ),
    raw_args(
        c"TLSOptions",
        options,
        Scope::OPTIONS,
        c"[+|-]StdEnvVars, [+|-]ExportCertData or Defaults: which TLS variables requests get",
    ),
    take1(
        c"TLSPassPhraseDialog",
        passphrase_dialog,
        Scope::SERVER,
        c"exec:/path/to/program that prints the passphrase of an encrypted private key",
    ),
    take1(c"TLSEngine", engine, Scope::SERVER, c"[address:]port on which incoming connections use TLS"),
    take12(
        c"TLSCertificate",
        certificate,
        Scope::SERVER,
        c"certificate chain file (PEM) and, unless it holds the key too, the private key file",
    ),
    flag(c"TLSStrictSNI", strict_sni, Scope::SERVER, c"on|off: refuse handshakes whose SNI names no virtual host"),
    take1(c"TLSProtocol", protocol, Scope::SERVER, c"lowest TLS version: v1.2+ or v1.3+"),
    iterate(c"TLSCiphersPrefer", ciphers_prefer, Scope::SERVER, c"cipher suites to prefer, in order"),
    iterate(c"TLSCiphersSuppress", ciphers_suppress, Scope::SERVER, c"cipher suites never to use"),
    flag(c"TLSHonorClientOrder", honor_client_order, Scope::SERVER, c"on|off: follow the client's cipher order"),
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
    global_only(cmd, "TLSEngine", " to the top level (it names the address:port whose virtual hosts all use TLS)")?;
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
    let certificates = &mut server_conf(cmd).certificates;
    certificates.push(CertSpec { cert_file, key_file, origin });
    // Usually one or two per vhost, held for the whole generation: no spare room, times
    // thousands of vhosts.
    certificates.shrink_to_fit();
    Ok(())
}

fn strict_sni(cmd: &mut Cmd, on: bool) -> Result<(), ConfError> {
    global_only(cmd, "TLSStrictSNI", " to the top level")?;
    server_conf(cmd).strict_sni = Some(on);
    Ok(())
}

fn protocol(cmd: &mut Cmd, arg: &str) -> Result<(), ConfError> {
    let value = conf::parse_protocol_floor("TLSProtocol", arg)?;
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
    let which = if prefer { "TLSCiphersPrefer" } else { "TLSCiphersSuppress" };
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
    not_in_directory(cmd, "TLSClientCertificate")?;
    let value = conf::ClientAuth::parse(arg)?;
    let origin = origin(cmd);
    server_conf(cmd).client_auth = Some(Located { value, origin });
    Ok(())
}

fn client_ca(cmd: &mut Cmd, arg: &str) -> Result<(), ConfError> {
    not_in_directory(cmd, "TLSClientCA")?;
    let value = server_relative(cmd, arg)?;
    let origin = origin(cmd);
    server_conf(cmd).client_ca = Some(Located { value, origin });
    Ok(())
}

fn client_crl(cmd: &mut Cmd, arg: &str) -> Result<(), ConfError> {
    not_in_directory(cmd, "TLSClientCRL")?;
    let value = server_relative(cmd, arg)?;
    let origin = origin(cmd);
    server_conf(cmd).client_crls.push(Located { value, origin });
    Ok(())
}

fn user_name(cmd: &mut Cmd, arg: &str) -> Result<(), ConfError> {
    not_in_directory(cmd, "TLSUserName")?;
    if !arg.starts_with("SSL_") {
        return Err(ConfError::new(
            ErrorKind::BadValue,
            format!("TLSUserName '{arg}': name a TLS variable such as SSL_CLIENT_S_DN_CN"),
        ));
    }
    server_conf(cmd).user_name_var = Some(arg.to_string());
    Ok(())
}

fn session_cache(cmd: &mut Cmd, arg: &str) -> Result<(), ConfError> {
    global_only(cmd, "TLSSessionCache", "")?;
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
    global_only(cmd, "TLSPassPhraseDialog", "")?;
    let Some(program) = arg.strip_prefix("exec:") else {
        return Err(ConfError::new(
            ErrorKind::BadValue,
            format!("TLSPassPhraseDialog '{arg}': write exec:/path/to/program (the program prints the passphrase)"),
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
                    "TLSPassPhraseDialog: {} is not an executable file: give the program that prints the passphrase",
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
    set(&mut cmd.dir_config::<TlsModule>().proxy, origin);
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
    let value = conf::parse_protocol_floor("TLSProxyProtocol", arg)?;
    proxy_setting(cmd, |p, origin| p.floor = Some(Located { value, origin }))
}

fn add_proxy_ciphers(cmd: &mut Cmd, arg: &str, prefer: bool) -> Result<(), ConfError> {
    let which = if prefer { "TLSProxyCiphersPrefer" } else { "TLSProxyCiphersSuppress" };
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

/// Where the directive being read is written.
fn origin(cmd: &Cmd) -> conf::Origin {
    let w = cmd.written();
    conf::Origin { file: w.file, line: w.line }
}

/// `path` relative to the ServerRoot (absolute paths stay as they are).
fn server_relative(cmd: &Cmd, path: &str) -> Result<std::path::PathBuf, ConfError> {
    cmd.server_relative(path).map_err(|_| ConfError::new(ErrorKind::BadValue, format!("invalid file path '{path}'")))
}
