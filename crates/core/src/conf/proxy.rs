//! `TLSProxy*`: the settings of TLS towards backends ([`ProxyConf`]), per server, vhost or
//! `<Proxy>` section, and what makes two scopes need different client configs ([`ProxyKey`]).

use std::path::PathBuf;

use super::{CertSpec, CipherList, Located, inherit};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::Origin;

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
}
