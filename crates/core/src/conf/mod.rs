//! The settings floor: what the directives hold (with where each was written), how their
//! arguments parse, and how a virtual host inherits from the main server. Plain Rust that imports
//! nothing above it, so all of it is unit tested; the directive table in `adapter/directives.rs`
//! only moves strings in and typed errors ([`error::ConfError`]) out.

pub mod directives;
pub mod error;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;

pub use error::Origin;
use error::{ConfError, ErrorKind};

/// One `TLSEngine [address:]port`: the local addresses whose incoming connections we serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineAddr {
    /// `None` matches every local address (`443`, `*:443`).
    pub ip: Option<IpAddr>,
    pub port: u16,
}

impl EngineAddr {
    /// Parses the directive argument. Host names are resolved once, here; each resulting address
    /// becomes its own entry, as if it had been written as a literal.
    pub fn parse_all(arg: &str) -> Result<Vec<EngineAddr>, ConfError> {
        let arg = arg.trim();
        let bad = |why: &str| {
            ConfError::new(
                ErrorKind::BadValue,
                format!(
                    "TLSEngine '{arg}': {why}. Write a port (443) or an address and port \
                     (127.0.0.1:443, [::1]:443, *:443)"
                ),
            )
        };
        let parse_port = |p: &str| -> Result<u16, ConfError> {
            match p.parse::<u16>() {
                Ok(0) | Err(_) => Err(bad(&format!("'{p}' is not a port number between 1 and 65535"))),
                Ok(n) => Ok(n),
            }
        };
        if arg.is_empty() {
            return Err(bad("the value is empty"));
        }
        if arg.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(vec![EngineAddr { ip: None, port: parse_port(arg)? }]);
        }
        let (host, port) = if let Some(rest) = arg.strip_prefix('[') {
            let (h, p) = rest.split_once("]:").ok_or_else(|| bad("an IPv6 address needs the form [addr]:port"))?;
            (h, p)
        } else {
            arg.rsplit_once(':').ok_or_else(|| bad("the port is missing"))?
        };
        let port = parse_port(port)?;
        if host == "*" || host.is_empty() {
            return Ok(vec![EngineAddr { ip: None, port }]);
        }
        if host.contains(':') && !arg.starts_with('[') {
            return Err(bad("an IPv6 address must be written in brackets, as [::1]:443"));
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            // 0.0.0.0 is every IPv4 address, [::] every address (dual-stack), as for `Listen`.
            return Ok(vec![EngineAddr { ip: Some(normalize_ip(ip)), port }]);
        }
        let resolved: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|e| bad(&format!("the host name does not resolve ({e})")))?
            .collect();
        if resolved.is_empty() {
            return Err(bad("the host name does not resolve"));
        }
        let mut out: Vec<EngineAddr> = Vec::new();
        for sa in resolved {
            let e = EngineAddr { ip: Some(normalize_ip(sa.ip())), port };
            if !out.contains(&e) {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Whether some `Listen` address (`listens`, as httpd parsed them) accepts connections this
    /// engine names: the same port, and every address or this one.
    pub fn is_listened(&self, listens: &[SocketAddr]) -> bool {
        listens.iter().any(|l| {
            l.port() == self.port
                && match self.ip {
                    None => true,
                    // Some address of the family (or every address) takes connections.
                    Some(ip) if ip.is_unspecified() => {
                        l.ip().is_unspecified() || ip_covers(Some(ip), normalize_ip(l.ip()))
                    }
                    Some(ip) => ip_covers(Some(normalize_ip(l.ip())), ip),
                }
        })
    }

    /// Whether a connection accepted on `local` is one of ours.
    pub fn matches(&self, local: &SocketAddr) -> bool {
        self.port == local.port() && ip_covers(self.ip, normalize_ip(local.ip()))
    }
}

/// Whether an address written as `pattern` (None: every one; 0.0.0.0: every IPv4 one; [::]:
/// every one, as a dual-stack socket takes IPv4 too) covers `ip` (normalised).
fn ip_covers(pattern: Option<IpAddr>, ip: IpAddr) -> bool {
    match pattern {
        None => true,
        Some(IpAddr::V6(p)) if p.is_unspecified() => true,
        Some(IpAddr::V4(p)) if p.is_unspecified() => ip.is_ipv4(),
        Some(p) => p == ip,
    }
}

impl std::fmt::Display for EngineAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip {
            None => write!(f, "{}", self.port),
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            Some(ip) => write!(f, "{ip}:{}", self.port),
        }
    }
}

/// An IPv4 client on a dual-stack socket shows up as `::ffff:a.b.c.d`; compare it as IPv4.
pub fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The address a `<VirtualHost>` listens on, as httpd records it (`server_addr_rec`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VhostAddr {
    /// `None` for `*` / `_default_`.
    pub ip: Option<IpAddr>,
    /// 0 for `*`.
    pub port: u16,
}

/// Whether connections to `engine` can end up in a vhost declared with `vhost` addresses.
pub fn engine_reaches_vhost(engine: &EngineAddr, vhost: &VhostAddr) -> bool {
    let port_ok = vhost.port == 0 || vhost.port == engine.port;
    let ip_ok = match (engine.ip, vhost.ip) {
        (Some(a), Some(b)) => ip_covers(Some(a), normalize_ip(b)),
        _ => true,
    };
    port_ok && ip_ok
}

/// Whether connections to `engine` can fall through to the main server: httpd only picks the main
/// server when no `<VirtualHost>` address covers the connection's local address and port.
pub fn engine_reaches_main_server(engine: &EngineAddr, vhosts: &[Vec<VhostAddr>]) -> bool {
    let covered = vhosts.iter().flatten().any(|v| {
        let port_ok = v.port == 0 || v.port == engine.port;
        // A vhost bound to one IP only covers an engine bound to the same IP; a wildcard vhost
        // covers every address.
        let ip_ok = match (engine.ip, v.ip) {
            (_, None) => true,
            (Some(a), Some(b)) => !a.is_unspecified() && a == normalize_ip(b),
            (None, Some(_)) => false,
        };
        port_ok && ip_ok
    });
    !covered
}

/// `TLSCertificate cert_file [key_file]`, with paths already made absolute against ServerRoot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertSpec {
    pub cert_file: PathBuf,
    pub key_file: Option<PathBuf>,
    pub origin: Origin,
}

/// `TLSProtocol version+` (and `TLSProxyProtocol`, named by `directive` in the error): the lowest
/// TLS version accepted (as its wire value, 0x0303 = TLS 1.2).
pub fn parse_protocol_floor(directive: &str, arg: &str) -> Result<u16, ConfError> {
    let bad = || {
        ConfError::new(
            ErrorKind::BadValue,
            format!(
                "{directive} '{arg}' is not a version floor: write default, v1.2+, v1.3+, TLSv1.2+, TLSv1.3+ \
                 or TLSv0x0303+ (mod_tls sets the lowest version; there is no maximum)"
            ),
        )
    };
    // Keywords and versions in any case (`tlsv1.2+`, `V1.3+`), as the C module reads them.
    let a = arg.trim().to_ascii_lowercase();
    if a == "default" {
        return Ok(0x0303);
    }
    let v = a.strip_suffix('+').ok_or_else(bad)?;
    let v = v.strip_prefix("tlsv").or_else(|| v.strip_prefix('v')).ok_or_else(bad)?;
    let wire = match v {
        "1.2" => 0x0303,
        "1.3" => 0x0304,
        _ => {
            let hex = v.strip_prefix("0x").ok_or_else(bad)?;
            u16::from_str_radix(hex, 16).map_err(|_| bad())?
        }
    };
    match wire {
        // Older versions are not available at all: a lower floor means "everything we have".
        0x0300..=0x0303 => Ok(0x0303),
        0x0304 => Ok(0x0304),
        _ => Err(ConfError::new(
            ErrorKind::BadValue,
            format!("{directive} '{arg}': rustls has no TLS version 0x{wire:04x}; use v1.2+ or v1.3+"),
        )),
    }
}

/// The human name of a wire version (0x0304 → "TLSv1.3").
pub fn version_name(wire: u16) -> String {
    match wire {
        0x0303 => "TLSv1.2".into(),
        0x0304 => "TLSv1.3".into(),
        v => format!("TLSv0x{v:04x}"),
    }
}

/// Whether `host` (from SNI) is named by a server's ServerName, ServerAlias or wildcard aliases.
pub fn host_matches(host: &str, server_name: &str, aliases: &[String], wild_aliases: &[String]) -> bool {
    let host = host.trim_end_matches('.');
    host.eq_ignore_ascii_case(server_name.trim_end_matches('.'))
        || aliases.iter().any(|a| host.eq_ignore_ascii_case(a.trim_end_matches('.')))
        || wild_aliases.iter().any(|w| glob_match_ci(w.as_bytes(), host.as_bytes()))
}

/// Shell-style `*` and `?` matching, ASCII case-insensitive (as httpd's ap_strcasecmp_match).
pub fn glob_match_ci(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p].eq_ignore_ascii_case(&text[t])) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// `TLSSessionCache`: where TLS session state is kept so that any child (or any server of a
/// fleet sharing memcached/redis) can resume a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheSpec {
    /// `none`: no server-side session state (no resumption).
    None,
    /// `default`: the cache used when nothing is configured (see [`DEFAULT_CACHE_ARGS`]).
    Default,
    /// An httpd socache provider (`shmcb`, `dbm`, `memcache`, `redis`, …) and its arguments.
    Provider { name: String, args: String },
}

/// The cache used when `TLSSessionCache` is not configured: shared memory under the runtime
/// directory, as the C module does.
pub const DEFAULT_CACHE_ARGS: &str = "tls/session-cache(512000)";

impl CacheSpec {
    pub fn parse(arg: &str) -> Result<CacheSpec, ConfError> {
        let arg = arg.trim();
        if arg.eq_ignore_ascii_case("none") {
            return Ok(CacheSpec::None);
        }
        if arg.eq_ignore_ascii_case("default") {
            return Ok(CacheSpec::Default);
        }
        let (name, args) = arg.split_once(':').unwrap_or((arg, ""));
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(ConfError::new(
                ErrorKind::BadValue,
                format!(
                    "TLSSessionCache '{arg}': write none, default or provider:arguments, e.g. \
                     shmcb:tls/cache(512000), memcache:host:11211 or redis:host:6379"
                ),
            ));
        }
        Ok(CacheSpec::Provider { name: name.to_ascii_lowercase(), args: args.to_string() })
    }

    /// The module that provides a socache type, for "load it" messages.
    pub fn module_for(provider: &str) -> String {
        format!("LoadModule socache_{provider}_module modules/mod_socache_{provider}.so")
    }
}

/// Whether a `RequestReadTimeout` line sets mod_reqtimeout's handshake stage: `Some(true)` for
/// `handshake=N` with N > 0, `Some(false)` for `handshake=0`, `None` when the line leaves it alone.
pub fn reqtimeout_handshake(args: &str) -> Option<bool> {
    args.split_whitespace().find_map(|word| {
        let (key, value) = word.split_once('=')?;
        if !key.eq_ignore_ascii_case("handshake") {
            return None;
        }
        let first = value.split([',', '-']).next()?;
        Some(first.trim_matches('"').parse::<u32>().is_ok_and(|n| n > 0))
    })
}

/// The longest `TLSSessionCacheTimeout`: the longest lifetime TLS 1.3 allows a ticket (RFC 8446,
/// 4.6.1).
pub const MAX_SESSION_LIFETIME_SECS: u64 = 7 * 24 * 60 * 60;

/// `TLSSessionCacheTimeout seconds` (as mod_ssl's `SSLSessionCacheTimeout`).
pub fn parse_session_lifetime(arg: &str) -> Result<u64, ConfError> {
    match arg.parse::<u64>() {
        Ok(n) if (1..=MAX_SESSION_LIFETIME_SECS).contains(&n) => Ok(n),
        _ => Err(ConfError::new(
            ErrorKind::BadValue,
            format!(
                "TLSSessionCacheTimeout '{arg}': write how many seconds a session may be resumed after its full \
                 handshake, from 1 to {MAX_SESSION_LIFETIME_SECS} (7 days), e.g. 300"
            ),
        )),
    }
}

/// `TLSClientCertificate`: whether clients must, may or cannot present a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClientAuth {
    #[default]
    None,
    Optional,
    Required,
    /// mod_ssl's `optional_no_ca`: any certificate is accepted, for the application to judge by
    /// `SSL_CLIENT_VERIFY` (SUCCESS, GENEROUS or FAILED:reason).
    OptionalNoCa,
}

impl ClientAuth {
    pub fn parse(arg: &str) -> Result<ClientAuth, ConfError> {
        match arg.to_ascii_lowercase().as_str() {
            "none" => Ok(ClientAuth::None),
            "optional" => Ok(ClientAuth::Optional),
            "required" | "require" => Ok(ClientAuth::Required),
            "optional_no_ca" => Ok(ClientAuth::OptionalNoCa),
            _ => Err(ConfError::new(
                ErrorKind::BadValue,
                format!("TLSClientCertificate '{arg}': write required, optional, optional_no_ca or none"),
            )),
        }
    }
}

/// A directive value that remembers where it was set (for messages after the config is read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located<T> {
    pub value: T,
    pub origin: Origin,
}

/// Per-server (main server and each `<VirtualHost>`) settings: the directive values only (what
/// start-up builds from them is kept apart, by the adapter).
///
/// httpd keeps two of these per vhost (its own, as written, and the merged one) for the whole
/// generation, so with thousands of vhosts their size counts: what nearly every vhost has is
/// held here, the rest in [`TlsSettings`], shared (not copied) by the vhosts that inherit all of
/// it and absent where nothing sets it. Its fields read as this struct's own (`Deref`); writing
/// one makes this server's own copy (`DerefMut`).
#[derive(Default, Clone)]
pub struct ServerConf {
    /// Only read from the main server: `TLSEngine` is global.
    pub engines: Vec<EngineAddr>,
    /// `TLSStrictSNI`, global; `None` = default (on).
    pub strict_sni: Option<bool>,
    pub certificates: Vec<CertSpec>,
    /// The certificates are the main server's, inherited by a vhost without its own.
    pub certificates_inherited: bool,
    pub(crate) settings: Option<Arc<TlsSettings>>,
}

/// The settings of a [`ServerConf`] that few vhosts set themselves.
#[derive(Default, Clone)]
pub struct TlsSettings {
    /// `TLSProtocol`: lowest wire version.
    pub protocol_floor: Option<Located<u16>>,
    pub ciphers_prefer: CipherList,
    pub ciphers_suppress: CipherList,
    /// `TLSHonorClientOrder`; `None` = default (on).
    pub honor_client_order: Option<bool>,
    /// `TLSPassPhraseDialog exec:program`, global: asked for the passphrases of encrypted keys.
    pub passphrase_program: Option<PathBuf>,
    /// `TLSClientCertificate`.
    pub client_auth: Option<Located<ClientAuth>>,
    /// `TLSClientCA`: trust anchors for client certificates.
    pub client_ca: Option<Located<PathBuf>>,
    /// `TLSClientCRL`: revocation lists checked for the whole client chain.
    pub client_crls: Vec<Located<PathBuf>>,
    /// `TLSUserName`: the variable whose value becomes the request's user.
    pub user_name_var: Option<String>,
    /// `TLSSessionCache`, global; `None` = the default shared-memory cache.
    pub session_cache_spec: Option<Located<CacheSpec>>,
    /// `TLSSessionCacheTimeout` (server config and virtual host, as mod_ssl's): how long a session may be resumed, counted from its
    /// full handshake; `None` = the default.
    pub session_lifetime_secs: Option<u64>,
}

/// What a server without settings of its own reads.
static NO_SETTINGS: std::sync::LazyLock<TlsSettings> = std::sync::LazyLock::new(TlsSettings::default);

impl std::ops::Deref for ServerConf {
    type Target = TlsSettings;

    fn deref(&self) -> &TlsSettings {
        self.settings.as_deref().unwrap_or(&NO_SETTINGS)
    }
}

impl std::ops::DerefMut for ServerConf {
    fn deref_mut(&mut self) -> &mut TlsSettings {
        Arc::make_mut(self.settings.get_or_insert_with(Default::default))
    }
}

fn inherit<T: Clone>(base: &[T], add: &[T]) -> Vec<T> {
    if add.is_empty() { base.to_vec() } else { add.to_vec() }
}

impl ServerConf {
    /// A vhost's effective settings: its own where it has any, the main server's otherwise.
    pub fn merge(base: &ServerConf, add: &ServerConf) -> ServerConf {
        let settings = match (&base.settings, &add.settings) {
            // Nothing of its own: the main server's, shared.
            (_, None) => base.settings.clone(),
            (None, Some(_)) => add.settings.clone(),
            (Some(b), Some(a)) => Some(Arc::new(TlsSettings::merge(b, a))),
        };
        ServerConf {
            engines: inherit(&base.engines, &add.engines),
            strict_sni: add.strict_sni.or(base.strict_sni),
            certificates: inherit(&base.certificates, &add.certificates),
            certificates_inherited: add.certificates.is_empty() && !base.certificates.is_empty(),
            settings,
        }
    }
}

impl TlsSettings {
    /// The settings of a vhost that sets some of them (`add`) under the main server's (`base`).
    fn merge(base: &TlsSettings, add: &TlsSettings) -> TlsSettings {
        TlsSettings {
            protocol_floor: add.protocol_floor.clone().or_else(|| base.protocol_floor.clone()),
            ciphers_prefer: CipherList::merge(&base.ciphers_prefer, &add.ciphers_prefer),
            ciphers_suppress: CipherList::merge(&base.ciphers_suppress, &add.ciphers_suppress),
            honor_client_order: add.honor_client_order.or(base.honor_client_order),
            client_auth: add.client_auth.clone().or_else(|| base.client_auth.clone()),
            client_ca: add.client_ca.clone().or_else(|| base.client_ca.clone()),
            client_crls: inherit(&base.client_crls, &add.client_crls),
            user_name_var: add.user_name_var.clone().or_else(|| base.user_name_var.clone()),
            passphrase_program: base.passphrase_program.clone(),
            session_cache_spec: base.session_cache_spec.clone(),
            session_lifetime_secs: add.session_lifetime_secs.or(base.session_lifetime_secs),
        }
    }
}

impl ServerConf {
    /// Everything a vhost's rustls configuration is built from, as values (without where each
    /// was written): vhosts with equal keys get the same configuration, built once. A wildcard
    /// certificate named by a thousand vhosts is then read, parsed and held once.
    pub fn tls_build_key(&self) -> String {
        let certs: Vec<_> = self.certificates.iter().map(|c| (&c.cert_file, &c.key_file)).collect();
        let ids = |l: &CipherList| l.ids().iter().map(|i| i.value).collect::<Vec<u16>>();
        format!(
            "{certs:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
            self.floor(),
            ids(&self.ciphers_prefer),
            ids(&self.ciphers_suppress),
            self.honor_client_order,
            self.client_auth(),
            self.client_ca.as_ref().map(|l| &l.value),
            self.client_crls.iter().map(|l| &l.value).collect::<Vec<_>>(),
            self.session_lifetime_secs(),
        )
    }

    pub fn strict_sni(&self) -> bool {
        self.strict_sni.unwrap_or(true)
    }

    pub fn client_auth(&self) -> ClientAuth {
        self.client_auth.as_ref().map_or(ClientAuth::None, |l| l.value)
    }

    pub fn session_lifetime_secs(&self) -> u64 {
        self.session_lifetime_secs.unwrap_or(crate::tls::sessions::DEFAULT_LIFETIME_SECS)
    }

    pub fn floor(&self) -> u16 {
        self.protocol_floor.as_ref().map_or(0x0303, |l| l.value)
    }
}

/// `TLSOptions StdEnvVars`: the TLS variables go into every request's environment.
pub const OPT_STD_ENV_VARS: u8 = 1;
/// `TLSOptions ExportCertData`: the certificate PEMs too.
pub const OPT_EXPORT_CERT_DATA: u8 = 2;

/// `TLSOptions`, inherited as the C module and mod_ssl's `SSLOptions` do: a line of only `+`/`-`
/// options changes what the enclosing scope has; a line with any option without `+`/`-` (or with
/// `Defaults`) starts from nothing, so nothing is inherited.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct TlsOptions {
    /// A line without `+`/`-` was given: nothing is inherited.
    reset: bool,
    add: u8,
    del: u8,
}

impl TlsOptions {
    /// Applies one `TLSOptions` line (its words as written).
    pub fn apply_line(&mut self, line: &str) -> Result<(), ConfError> {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            return Err(ConfError::new(ErrorKind::BadValue, "TLSOptions: name at least one option"));
        }
        if words.iter().any(|w| !w.starts_with(['+', '-'])) {
            *self = TlsOptions { reset: true, add: 0, del: 0 };
        }
        words.into_iter().try_for_each(|w| self.apply(w))
    }

    /// Applies one word of a line (see [`apply_line`](Self::apply_line), which resets first).
    fn apply(&mut self, word: &str) -> Result<(), ConfError> {
        let (action, name) = match word.as_bytes().first() {
            Some(b'+') => ('+', &word[1..]),
            Some(b'-') => ('-', &word[1..]),
            _ => (' ', word),
        };
        let option = match name.to_ascii_lowercase().as_str() {
            "defaults" if action == ' ' => return Ok(()),
            "stdenvvars" => OPT_STD_ENV_VARS,
            "exportcertdata" => OPT_EXPORT_CERT_DATA,
            _ => {
                return Err(ConfError::new(
                    ErrorKind::BadValue,
                    format!(
                        "TLSOptions: unknown option '{word}': use StdEnvVars, ExportCertData (each with an \
                         optional + or -) or Defaults"
                    ),
                ));
            }
        };
        if action == '-' {
            self.add &= !option;
            self.del |= option;
        } else {
            self.add |= option;
            self.del &= !option;
        }
        Ok(())
    }

    /// `add` (an inner section) on top of `base` (the enclosing one).
    pub fn merge(base: &TlsOptions, add: &TlsOptions) -> TlsOptions {
        if add.reset {
            return add.clone();
        }
        TlsOptions { reset: base.reset, add: (base.add & !add.del) | add.add, del: (base.del & !add.add) | add.del }
    }

    pub fn has(&self, option: u8) -> bool {
        self.add & !self.del & option != 0
    }
}

/// `TLSProxy*`: TLS towards backends, per server, vhost or `<Proxy>` section (a section's
/// settings override the vhost's).
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct ProxyConf {
    pub engine: Option<bool>,
    pub ca: Option<Located<ProxyCa>>,
    pub floor: Option<Located<u16>>,
    pub prefer: CipherList,
    pub suppress: CipherList,
    pub machine_certs: Vec<CertSpec>,
}

/// `TLSProxyCA`: what backend certificates are verified against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxyCa {
    /// `default`: the Mozilla set (webpki-roots), as when nothing is configured.
    Default,
    /// A PEM bundle, or a directory of PEM files.
    Path(PathBuf),
}

/// What makes two proxy scopes need different client configs (where they were written does not).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProxyKey {
    ca: Option<PathBuf>,
    floor: u16,
    prefer: Vec<u16>,
    suppress: Vec<u16>,
    machine_certs: Vec<(PathBuf, Option<PathBuf>)>,
}

impl ProxyConf {
    pub fn merge(base: &ProxyConf, add: &ProxyConf) -> ProxyConf {
        ProxyConf {
            engine: add.engine.or(base.engine),
            ca: add.ca.clone().or_else(|| base.ca.clone()),
            floor: add.floor.clone().or_else(|| base.floor.clone()),
            prefer: CipherList::merge(&base.prefer, &add.prefer),
            suppress: CipherList::merge(&base.suppress, &add.suppress),
            machine_certs: inherit(&base.machine_certs, &add.machine_certs),
        }
    }

    pub fn enabled(&self) -> bool {
        self.engine.unwrap_or(false)
    }

    pub fn floor(&self) -> u16 {
        self.floor.as_ref().map_or(0x0303, |l| l.value)
    }

    pub fn key(&self) -> ProxyKey {
        ProxyKey {
            ca: match &self.ca {
                Some(Located { value: ProxyCa::Path(p), .. }) => Some(p.clone()),
                _ => None,
            },
            floor: self.floor(),
            prefer: self.prefer.ids().iter().map(|l| l.value).collect(),
            suppress: self.suppress.ids().iter().map(|l| l.value).collect(),
            machine_certs: self.machine_certs.iter().map(|c| (c.cert_file.clone(), c.key_file.clone())).collect(),
        }
    }
}

/// `TLSCiphersPrefer` / `TLSCiphersSuppress` (and their `TLSProxy*` twins) in one scope: the
/// suites of the last line written here. A later line replaces an earlier one, as the C module and
/// mod_ssl's `SSLCipherSuite` do; the words of one line add up. `default` (or `none`) names no
/// suite; as in the C module, a scope that names none inherits the enclosing scope's.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct CipherList {
    /// Where the line in effect was written; `None` while not written in this scope.
    line: Option<Origin>,
    ids: Vec<Located<u16>>,
}

impl CipherList {
    /// The suites, in the order written.
    pub fn ids(&self) -> &[Located<u16>] {
        &self.ids
    }

    /// Whether `word` is the keyword that names no suite.
    pub fn is_keyword(word: &str) -> bool {
        word.eq_ignore_ascii_case("default") || word.eq_ignore_ascii_case("none")
    }

    /// Adds the suites of one word of the line written at `origin` (none for the keyword): the
    /// first word of a new line replaces what earlier lines set.
    pub fn add(&mut self, ids: Vec<u16>, origin: &Origin) {
        if self.line.as_ref() != Some(origin) {
            self.ids.clear();
            self.line = Some(origin.clone());
        }
        self.ids.extend(ids.into_iter().map(|value| Located { value, origin: origin.clone() }));
    }

    /// `add` (a vhost or section) on top of `base`: its own suites, if it names any.
    pub fn merge(base: &CipherList, add: &CipherList) -> CipherList {
        if add.ids.is_empty() { base.clone() } else { add.clone() }
    }

    #[cfg(test)]
    pub fn of(ids: &[u16]) -> CipherList {
        let origin = Origin { file: "t.conf".into(), line: 1 };
        let mut l = CipherList::default();
        l.add(ids.to_vec(), &origin);
        l
    }
}

/// Per-directory settings (also the server's and vhost's defaults for their requests, and the
/// `<Proxy>` sections').
#[derive(Default, Clone)]
pub struct DirConf {
    pub options: TlsOptions,
    pub proxy: ProxyConf,
}

impl DirConf {
    pub fn merge(base: &DirConf, add: &DirConf) -> DirConf {
        DirConf {
            options: TlsOptions::merge(&base.options, &add.options),
            proxy: ProxyConf::merge(&base.proxy, &add.proxy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn engine_listened_and_displayed() {
        let e = |s: &str| EngineAddr::parse_all(s).unwrap().remove(0);
        let listens: Vec<SocketAddr> = vec!["0.0.0.0:443".parse().unwrap(), "127.0.0.1:8443".parse().unwrap()];
        assert!(e("443").is_listened(&listens));
        assert!(e("192.0.2.7:443").is_listened(&listens), "Listen 443 opens every address");
        assert!(e("127.0.0.1:8443").is_listened(&listens));
        assert!(e("8443").is_listened(&listens));
        assert!(!e("192.0.2.7:8443").is_listened(&listens), "only 127.0.0.1 listens on 8443");
        assert!(!e("9443").is_listened(&listens));
        let local = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(e("[::]:443").matches(&local("192.0.2.1:443")) && e("[::]:443").matches(&local("[2001:db8::1]:443")));
        assert!(e("0.0.0.0:443").matches(&local("[::ffff:192.0.2.1]:443")), "IPv4 on a dual-stack socket");
        assert!(!e("0.0.0.0:443").matches(&local("[2001:db8::1]:443")), "0.0.0.0 is IPv4 only");
        assert!(e("0.0.0.0:443").is_listened(&listens) && !e("0.0.0.0:9443").is_listened(&listens));
        let v6_only: Vec<SocketAddr> = vec!["[2001:db8::1]:443".parse().unwrap()];
        assert!(!e("0.0.0.0:443").is_listened(&v6_only) && e("[::]:443").is_listened(&v6_only));
        assert_eq!(e("[::]:443").to_string(), "[::]:443");
        assert_eq!(e("[::1]:443").to_string(), "[::1]:443");
        assert_eq!(e("127.0.0.1:443").to_string(), "127.0.0.1:443");
        assert_eq!(e("*:443").to_string(), "443");
    }

    #[test]
    fn keywords_and_case() {
        assert_eq!(parse_protocol_floor("TLSProtocol", "tlsv1.3+").unwrap(), 0x0304);
        assert_eq!(parse_protocol_floor("TLSProtocol", "V1.2+").unwrap(), 0x0303);
        assert_eq!(parse_protocol_floor("TLSProtocol", "TLSV0X0304+").unwrap(), 0x0304);
        assert_eq!(parse_protocol_floor("TLSProtocol", "Default").unwrap(), 0x0303);
        assert_eq!(CacheSpec::parse("default").unwrap(), CacheSpec::Default);
        let mut o = TlsOptions::default();
        o.apply_line("+stdenvvars EXPORTCERTDATA").unwrap();
        assert!(o.has(OPT_STD_ENV_VARS) && o.has(OPT_EXPORT_CERT_DATA));
        o.apply_line("defaults").unwrap();
        assert!(!o.has(OPT_STD_ENV_VARS));
    }

    #[test]
    fn a_later_cipher_line_replaces_and_the_keyword_names_none() {
        let at = |line| Origin { file: "h.conf".into(), line };
        let ids = |l: &CipherList| l.ids().iter().map(|l| l.value).collect::<Vec<_>>();
        let mut l = CipherList::default();
        l.add(vec![0x1301], &at(1));
        l.add(vec![0x1302], &at(1));
        assert_eq!(ids(&l), [0x1301, 0x1302], "the words of one line add up");
        l.add(vec![0x1303], &at(2));
        assert_eq!(ids(&l), [0x1303], "a later line replaces");
        let base = CipherList::of(&[0x1301]);
        assert_eq!(ids(&CipherList::merge(&base, &CipherList::default())), [0x1301], "inherited");
        let mut none = CipherList::default();
        none.add(Vec::new(), &at(3));
        assert_eq!(ids(&CipherList::merge(&base, &none)), [0x1301], "'default' names none: inherited, as in C");
        l.add(Vec::new(), &at(4));
        assert!(l.ids().is_empty(), "a later 'default' line replaces the earlier lines");
        assert!(CipherList::is_keyword("Default") && CipherList::is_keyword("none"));
    }

    fn one(s: &str) -> EngineAddr {
        let v = EngineAddr::parse_all(s).unwrap();
        assert_eq!(v.len(), 1, "{s}");
        v.into_iter().next().unwrap()
    }

    #[test]
    fn engine_forms() {
        assert_eq!(one("443"), EngineAddr { ip: None, port: 443 });
        assert_eq!(one("*:443"), EngineAddr { ip: None, port: 443 });
        assert_eq!(one("127.0.0.1:8443"), EngineAddr { ip: Some(Ipv4Addr::LOCALHOST.into()), port: 8443 });
        assert_eq!(one("[::1]:8443"), EngineAddr { ip: Some(Ipv6Addr::LOCALHOST.into()), port: 8443 });
        assert!(!EngineAddr::parse_all("localhost:443").unwrap().is_empty());
    }

    #[test]
    fn engine_errors_say_what_to_write() {
        for bad in ["", "0", "70000", "abc", "127.0.0.1", "127.0.0.1:x", "::1:443", "[::1]443"] {
            let e = EngineAddr::parse_all(bad).unwrap_err();
            assert!(e.message.contains("TLSEngine"), "{bad}: {e}");
            assert!(e.message.contains("Write a port"), "{bad}: {e}");
        }
    }

    #[test]
    fn engine_matches_address_and_port() {
        let any = one("8443");
        let lo = one("127.0.0.1:8443");
        let l: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let other_ip: SocketAddr = "127.0.0.2:8443".parse().unwrap();
        let other_port: SocketAddr = "127.0.0.1:8444".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:8443".parse().unwrap();
        assert!(any.matches(&l) && any.matches(&other_ip) && !any.matches(&other_port));
        assert!(lo.matches(&l) && !lo.matches(&other_ip) && !lo.matches(&other_port));
        assert!(lo.matches(&mapped));
        assert!(!one("[::1]:8443").matches(&l));
    }

    #[test]
    fn reachability_of_vhosts_and_main_server() {
        let wild = VhostAddr { ip: None, port: 8443 };
        let lo = VhostAddr { ip: Some(Ipv4Addr::LOCALHOST.into()), port: 8443 };
        let other = VhostAddr { ip: None, port: 80 };
        let e_any = one("8443");
        let e_lo = one("127.0.0.1:8443");
        assert!(engine_reaches_vhost(&e_any, &wild));
        assert!(engine_reaches_vhost(&e_any, &lo));
        assert!(!engine_reaches_vhost(&e_any, &other));
        assert!(!engine_reaches_vhost(&one("127.0.0.2:8443"), &lo));
        assert!(!engine_reaches_main_server(&e_any, &[vec![wild.clone()]]));
        assert!(engine_reaches_main_server(&e_any, &[vec![lo.clone()]]));
        assert!(!engine_reaches_main_server(&e_lo, &[vec![lo]]));
        assert!(engine_reaches_main_server(&e_lo, &[vec![other]]));
    }

    fn opts(words: &[&str]) -> TlsOptions {
        let mut o = TlsOptions::default();
        o.apply_line(&words.join(" ")).unwrap();
        o
    }

    #[test]
    fn tls_options_inherit_like_ssloptions() {
        let server = opts(&["StdEnvVars"]);
        assert!(server.has(OPT_STD_ENV_VARS) && !server.has(OPT_EXPORT_CERT_DATA));
        // A vhost without TLSOptions inherits; a Directory removes one; a Location adds another.
        let vhost = TlsOptions::merge(&server, &TlsOptions::default());
        assert!(vhost.has(OPT_STD_ENV_VARS));
        let dir = TlsOptions::merge(&vhost, &opts(&["-StdEnvVars"]));
        assert!(!dir.has(OPT_STD_ENV_VARS));
        let loc = TlsOptions::merge(&dir, &opts(&["+ExportCertData"]));
        assert!(!loc.has(OPT_STD_ENV_VARS) && loc.has(OPT_EXPORT_CERT_DATA));
        // A line with a bare option replaces what is inherited, as in the C module and SSLOptions.
        let bare = TlsOptions::merge(&server, &opts(&["ExportCertData"]));
        assert!(!bare.has(OPT_STD_ENV_VARS) && bare.has(OPT_EXPORT_CERT_DATA));
        let mixed = TlsOptions::merge(&server, &opts(&["+ExportCertData", "StdEnvVars"]));
        assert!(mixed.has(OPT_STD_ENV_VARS) && mixed.has(OPT_EXPORT_CERT_DATA), "the whole line applies");
        // Defaults drops the inheritance.
        let reset = TlsOptions::merge(&server, &opts(&["Defaults", "ExportCertData"]));
        assert!(!reset.has(OPT_STD_ENV_VARS) && reset.has(OPT_EXPORT_CERT_DATA));
        // ... and an inner scope below a reset keeps building on it.
        let below = TlsOptions::merge(&reset, &opts(&["+StdEnvVars"]));
        assert!(below.has(OPT_STD_ENV_VARS) && below.has(OPT_EXPORT_CERT_DATA));
        let e = TlsOptions::default().apply_line("+FakeBasicAuth").unwrap_err();
        assert!(e.message.contains("'+FakeBasicAuth'"), "{e}");
        assert!(TlsOptions::default().apply_line("-Defaults").is_err());
    }

    #[test]
    fn proxy_sections_override_the_vhost() {
        let o = Origin { file: "x".into(), line: 1 };
        let vhost = ProxyConf {
            engine: Some(true),
            floor: Some(Located { value: 0x0304, origin: o.clone() }),
            ..Default::default()
        };
        let section =
            ProxyConf { ca: Some(Located { value: ProxyCa::Path("ca.pem".into()), origin: o }), ..Default::default() };
        let m = ProxyConf::merge(&vhost, &section);
        assert!(m.enabled());
        assert_eq!(m.floor(), 0x0304);
        assert_eq!(m.key(), ProxyConf::merge(&vhost, &section).key());
        assert_ne!(m.key(), vhost.key());
        let off = ProxyConf { engine: Some(false), ..Default::default() };
        assert!(!ProxyConf::merge(&vhost, &off).enabled());
    }

    #[test]
    fn client_auth_modes() {
        assert_eq!(ClientAuth::parse("REQUIRED"), Ok(ClientAuth::Required));
        assert_eq!(ClientAuth::parse("optional"), Ok(ClientAuth::Optional));
        assert_eq!(ClientAuth::parse("none"), Ok(ClientAuth::None));
        assert_eq!(ClientAuth::parse("optional_no_ca"), Ok(ClientAuth::OptionalNoCa));
        assert!(ClientAuth::parse("yes").unwrap_err().message.contains("required, optional, optional_no_ca or none"));
    }

    #[test]
    fn reqtimeout_handshake_stage() {
        assert_eq!(reqtimeout_handshake("handshake=5 header=20-40,MinRate=500"), Some(true));
        assert_eq!(reqtimeout_handshake("Handshake=5-10,minrate=500"), Some(true));
        assert_eq!(reqtimeout_handshake("handshake=0"), Some(false));
        assert_eq!(reqtimeout_handshake("header=20-40,MinRate=500 body=20,MinRate=500"), None);
    }

    #[test]
    fn vhosts_with_the_same_values_share_a_build_key() {
        let at = |line| Origin { file: "a.conf".into(), line };
        let conf = |line, key: &str| {
            let mut c = ServerConf {
                certificates: vec![CertSpec {
                    cert_file: "/w/wild.pem".into(),
                    key_file: Some(key.into()),
                    origin: at(line),
                }],
                ..Default::default()
            };
            c.client_auth = Some(Located { value: ClientAuth::Required, origin: at(line) });
            c
        };
        assert_eq!(
            conf(3, "/w/wild.key").tls_build_key(),
            conf(900, "/w/wild.key").tls_build_key(),
            "where: no matter"
        );
        assert_ne!(conf(3, "/w/wild.key").tls_build_key(), conf(3, "/w/other.key").tls_build_key());
        let mut later = conf(3, "/w/wild.key");
        later.session_lifetime_secs = Some(60);
        assert_ne!(later.tls_build_key(), conf(3, "/w/wild.key").tls_build_key());
        let mut optional = conf(3, "/w/wild.key");
        optional.client_auth = Some(Located { value: ClientAuth::Optional, origin: at(3) });
        assert_ne!(optional.tls_build_key(), conf(3, "/w/wild.key").tls_build_key());
    }

    /// A vhost that sets none of the less common settings shares the main server's (one copy for
    /// thousands of vhosts); one that sets some gets its own, merged, and the main server's stay.
    #[test]
    // These fields are TlsSettings', reached through DerefMut: they cannot go into the initializer.
    #[allow(clippy::field_reassign_with_default)]
    fn settings_are_shared_until_a_vhost_sets_its_own() {
        let mut main = ServerConf::default();
        main.protocol_floor = Some(Located { value: 0x0304, origin: Origin { file: "m".into(), line: 1 } });
        let plain_vhost = ServerConf::default();
        let merged = ServerConf::merge(&main, &plain_vhost);
        assert!(Arc::ptr_eq(merged.settings.as_ref().unwrap(), main.settings.as_ref().unwrap()), "shared");
        assert_eq!(merged.floor(), 0x0304);
        let mut own = ServerConf::default();
        own.client_auth = Some(Located { value: ClientAuth::Required, origin: Origin { file: "v".into(), line: 2 } });
        let merged = ServerConf::merge(&main, &own);
        assert_eq!((merged.floor(), merged.client_auth()), (0x0304, ClientAuth::Required));
        assert_eq!(main.client_auth(), ClientAuth::None, "the main server's are untouched");
        assert!(ServerConf::merge(&ServerConf::default(), &ServerConf::default()).settings.is_none(), "nothing held");
        assert_eq!(ServerConf::default().floor(), 0x0303, "defaults read through");
    }

    #[test]
    fn session_lifetimes() {
        assert_eq!(parse_session_lifetime("300"), Ok(300));
        assert_eq!(parse_session_lifetime("604800"), Ok(604800));
        for bad in ["0", "-1", "5m", "", "604801"] {
            let e = parse_session_lifetime(bad).unwrap_err();
            assert!(e.to_string().contains("from 1 to 604800"), "{bad}: {e}");
        }
    }

    #[test]
    fn session_cache_specs() {
        assert_eq!(CacheSpec::parse("none"), Ok(CacheSpec::None));
        assert_eq!(
            CacheSpec::parse("shmcb:tls/cache(512000)"),
            Ok(CacheSpec::Provider { name: "shmcb".into(), args: "tls/cache(512000)".into() })
        );
        assert_eq!(
            CacheSpec::parse("memcache:127.0.0.1:11211,127.0.0.2:11211"),
            Ok(CacheSpec::Provider { name: "memcache".into(), args: "127.0.0.1:11211,127.0.0.2:11211".into() })
        );
        assert_eq!(CacheSpec::parse("shmcb"), Ok(CacheSpec::Provider { name: "shmcb".into(), args: "".into() }));
        for bad in ["", ":x", "shm cb:x", "../x:y"] {
            assert!(CacheSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn protocol_floor_forms() {
        for (s, v) in [
            ("default", 0x0303),
            ("v1.2+", 0x0303),
            ("v1.3+", 0x0304),
            ("TLSv1.2+", 0x0303),
            ("TLSv1.3+", 0x0304),
            ("TLSv0x0303+", 0x0303),
            ("TLSv0x0304+", 0x0304),
            ("TLSv0x0301+", 0x0303),
        ] {
            assert_eq!(parse_protocol_floor("TLSProtocol", s), Ok(v), "{s}");
        }
        for bad in ["v1.3", "1.3+", "TLSv1.4+", "TLSv0x0305+", "SSLv3+", "", "+", "TLSv1.2-"] {
            assert!(parse_protocol_floor("TLSProtocol", bad).is_err(), "{bad}");
        }
        let e = parse_protocol_floor("TLSProxyProtocol", "TLSv1.3").unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadValue);
        assert!(e.message.starts_with("TLSProxyProtocol 'TLSv1.3'") && e.message.contains("v1.3+"), "{e}");
    }

    #[test]
    fn host_names_and_wildcards() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(host_matches("WWW.Example.net", "www.example.net", &[], &[]));
        assert!(host_matches("alias.test", "x", &names(&["alias.test"]), &[]));
        assert!(host_matches("a.wild.test", "x", &[], &names(&["*.wild.test"])));
        assert!(host_matches("a.b.wild.test", "x", &[], &names(&["*.wild.test"])));
        assert!(!host_matches("wild.test", "x", &[], &names(&["*.wild.test"])));
        assert!(host_matches("web7.test", "x", &[], &names(&["web?.test"])));
        assert!(!host_matches("web17.test", "x", &[], &names(&["web?.test"])));
        assert!(!host_matches("other.test", "www.example.net", &names(&["alias.test"]), &names(&["*.wild.test"])));
    }

    #[test]
    fn vhost_inherits_certificates_only_when_it_has_none() {
        let spec =
            |f: &str| CertSpec { cert_file: f.into(), key_file: None, origin: Origin { file: "x".into(), line: 1 } };
        let base = ServerConf { certificates: vec![spec("a")], ..Default::default() };
        let empty = ServerConf::default();
        let own = ServerConf { certificates: vec![spec("b")], ..Default::default() };
        assert_eq!(ServerConf::merge(&base, &empty).certificates, vec![spec("a")]);
        assert_eq!(ServerConf::merge(&base, &own).certificates, vec![spec("b")]);
    }
}
