//! TLS towards backends (mod_proxy): the client configs of each `TLSProxy*` scope, built from
//! files read at start-up and shared by every backend connection of the scope ([`ProxyCache`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;

use crate::conf::error::ErrorKind;
use crate::conf::{Located, ProxyCa, ProxyConf};
use crate::tls::certs;
use crate::tls::engine::{BuildError, err_at, provider, select_suites};
use crate::tls::warning::Warning;

/// Backend client configs of one configuration generation, by their settings, so that every
/// backend connection of a scope shares one config (and its TLS session cache).
///
/// Every file a backend setting names (CAs, machine certificates) is read at start-up
/// ([`ProxyCache::load_files`]), so that a bad one fails `apache2 -t`. A request whose sections
/// combine settings in a way start-up did not build gets its config built from what was read
/// then: no file is read on a request thread.
#[derive(Default)]
pub struct ProxyCache {
    configs: std::sync::RwLock<std::collections::HashMap<crate::conf::ProxyKey, Arc<ProxyTls>>>,
    roots: std::collections::HashMap<PathBuf, rustls::RootCertStore>,
    machine_keys: std::collections::HashMap<(PathBuf, Option<PathBuf>), Arc<CertifiedKey>>,
}

impl ProxyCache {
    /// Reads the files `conf` names that were not read yet (start-up only).
    pub fn load_files(&mut self, conf: &ProxyConf) -> Result<(), BuildError> {
        if let Some(Located { value: ProxyCa::Path(path), .. }) = &conf.ca
            && !self.roots.contains_key(path)
        {
            self.roots.insert(path.clone(), proxy_roots(conf)?);
        }
        let base = provider();
        for spec in &conf.machine_certs {
            let id = (spec.cert_file.clone(), spec.key_file.clone());
            if let std::collections::hash_map::Entry::Vacant(slot) = self.machine_keys.entry(id) {
                slot.insert(
                    certs::load_certified_key(spec, &base, None)
                        .map_err(|e| e.within("TLSProxyMachineCertificate").at(&spec.origin))?,
                );
            }
        }
        Ok(())
    }

    /// The configs for `conf`: built once, then shared. Poison-tolerant: the map only ever holds
    /// complete entries.
    pub fn get_or_build(&self, conf: &ProxyConf) -> Result<(Arc<ProxyTls>, Vec<Warning>), BuildError> {
        let key = conf.key();
        let read = self.configs.read().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
        if let Some(tls) = read {
            return Ok((tls, Vec::new()));
        }
        let (tls, warnings) = self.build(conf)?;
        let tls = Arc::new(tls);
        let mut configs = self.configs.write().unwrap_or_else(|e| e.into_inner());
        Ok((configs.entry(key).or_insert(tls).clone(), warnings))
    }

    /// Builds the client configs for one proxy scope (TLSProxy* settings) from the files read
    /// at start-up.
    fn build(&self, conf: &ProxyConf) -> Result<(ProxyTls, Vec<Warning>), BuildError> {
        let not_read = |what: &str, path: &Path| {
            err_at(ErrorKind::Build, None, format!("{what} {} was not read at start-up", path.display()))
        };
        let roots = match &conf.ca {
            Some(Located { value: ProxyCa::Path(path), .. }) => {
                self.roots.get(path).cloned().ok_or_else(|| not_read("TLSProxyCA", path))?
            }
            _ => rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() },
        };
        let keys = conf
            .machine_certs
            .iter()
            .map(|spec| {
                self.machine_keys
                    .get(&(spec.cert_file.clone(), spec.key_file.clone()))
                    .cloned()
                    .ok_or_else(|| not_read("TLSProxyMachineCertificate", &spec.cert_file))
            })
            .collect::<Result<Vec<_>, _>>()?;
        build_proxy(conf, roots, keys)
    }
}

/// The client configs for one proxy scope: one per ALPN protocol mod_proxy may ask for.
pub struct ProxyTls {
    pub plain: Arc<rustls::ClientConfig>,
    pub by_alpn: Vec<(&'static [u8], Arc<rustls::ClientConfig>)>,
}

impl ProxyTls {
    /// The config offering exactly `protocols` (from mod_proxy's `proxy-request-alpn-protos`).
    pub fn for_protocols(&self, protocols: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        match protocols {
            [one] => self.by_alpn.iter().find(|(p, _)| p == one).map_or_else(|| self.plain.clone(), |(_, c)| c.clone()),
            _ => self.plain.clone(),
        }
    }
}

/// Presents the first machine certificate the backend accepts: one issued by a CA the backend
/// names in its request, else the first whose key can sign with a scheme it offers.
#[derive(Debug)]
struct FirstAcceptedMachineCert {
    keys: Vec<Arc<CertifiedKey>>,
}

impl rustls::client::ResolvesClientCert for FirstAcceptedMachineCert {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let usable = |k: &&Arc<CertifiedKey>| k.key.choose_scheme(sigschemes).is_some();
        let issued_by_hint = |k: &&Arc<CertifiedKey>| {
            k.cert.iter().any(|c| {
                x509_parser::parse_x509_certificate(c)
                    .is_ok_and(|(_, x)| root_hint_subjects.iter().any(|h| *h == x.issuer().as_raw()))
            })
        };
        self.keys.iter().filter(usable).find(issued_by_hint).or_else(|| self.keys.iter().find(usable)).cloned()
    }

    fn has_certs(&self) -> bool {
        !self.keys.is_empty()
    }
}

/// Trust anchors for backends: `TLSProxyCA` (a PEM bundle or a directory of them, hash links
/// included, each file once), else the Mozilla set from webpki-roots.
fn proxy_roots(conf: &ProxyConf) -> Result<rustls::RootCertStore, BuildError> {
    let Some(Located { value: ProxyCa::Path(ca_path), origin }) = &conf.ca else {
        return Ok(rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() });
    };
    certs::load_roots(ca_path).map_err(|e| e.within("TLSProxyCA").at(origin))
}

/// Builds the client configs for one proxy scope (TLSProxy* settings) with its trust anchors and
/// machine certificates.
fn build_proxy(
    conf: &ProxyConf,
    roots: rustls::RootCertStore,
    keys: Vec<Arc<CertifiedKey>>,
) -> Result<(ProxyTls, Vec<Warning>), BuildError> {
    let base = provider();
    let (suites, warnings) = select_suites(&base.cipher_suites, conf.prefer.ids(), conf.suppress.ids());
    let floor = conf.floor();
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        rustls::ALL_VERSIONS.iter().copied().filter(|v| u16::from(v.version) >= floor).collect();
    let provider = Arc::new(CryptoProvider { cipher_suites: suites, ..(*base).clone() });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| {
            err_at(
                ErrorKind::Build,
                conf.suppress.ids().first().map(|l| &l.origin),
                format!("cannot build the backend TLS configuration: {e}"),
            )
        })?
        .with_root_certificates(roots);
    let config = if keys.is_empty() {
        builder.with_no_client_auth()
    } else {
        builder.with_client_cert_resolver(Arc::new(FirstAcceptedMachineCert { keys }))
    };
    let plain = Arc::new(config);
    let by_alpn = [&b"h2"[..], &b"http/1.1"[..]]
        .into_iter()
        .map(|p| {
            let mut c = (*plain).clone();
            c.alpn_protocols = vec![p.to_vec()];
            (p, Arc::new(c))
        })
        .collect();
    Ok((ProxyTls { plain, by_alpn }, warnings))
}
