//! Addresses: `TLSEngine [address:]port` ([`EngineAddr`]), the addresses `<VirtualHost>`s are
//! declared on ([`VhostAddr`]), and which of them a TLS address can reach.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use super::error::{ConfError, ErrorKind};

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
}
