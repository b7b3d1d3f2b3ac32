//! Module configuration in plain Rust: what the directives hold, how their arguments parse, and how
//! a virtual host inherits from the main server. Nothing here talks to httpd, so all of it is unit
//! tested; the directive handlers in `module.rs` only move strings in and errors out.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;

/// Where a directive was written, so that errors found later (in check_config) can still point at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub line: u32,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

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
    pub fn parse_all(arg: &str) -> Result<Vec<EngineAddr>, String> {
        let arg = arg.trim();
        let bad = |why: &str| {
            format!(
                "TLSEngine '{arg}': {why}. Write a port (443) or an address and port \
                 (127.0.0.1:443, [::1]:443, *:443)"
            )
        };
        let parse_port = |p: &str| -> Result<u16, String> {
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

    /// Whether a connection accepted on `local` is one of ours.
    pub fn matches(&self, local: &SocketAddr) -> bool {
        self.port == local.port() && self.ip.is_none_or(|ip| ip == normalize_ip(local.ip()))
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
        (Some(a), Some(b)) => a == normalize_ip(b),
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
            (Some(a), Some(b)) => a == normalize_ip(b),
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

/// Per-server (main server and each `<VirtualHost>`) settings.
#[derive(Default)]
pub struct ServerConf {
    /// Only read from the main server: `TLSEngine` is global.
    pub engines: Vec<EngineAddr>,
    pub certificates: Vec<CertSpec>,
    /// Built in check_config from the settings above, once per configuration generation, for
    /// servers that TLSEngine connections can reach.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl ServerConf {
    /// A vhost's effective settings: its own where it has any, the main server's otherwise.
    pub fn merge(base: &ServerConf, add: &ServerConf) -> ServerConf {
        ServerConf {
            engines: if add.engines.is_empty() { base.engines.clone() } else { add.engines.clone() },
            certificates: if add.certificates.is_empty() {
                base.certificates.clone()
            } else {
                add.certificates.clone()
            },
            tls: None,
        }
    }
}

/// Per-directory settings. Nothing per-directory exists yet; the record is there so that
/// `TLSOptions` and friends have a home with the right merge rules.
#[derive(Default, Clone)]
pub struct DirConf {}

impl DirConf {
    pub fn merge(_base: &DirConf, _add: &DirConf) -> DirConf {
        DirConf {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

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
            assert!(e.contains("TLSEngine"), "{bad}: {e}");
            assert!(e.contains("Write a port"), "{bad}: {e}");
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
