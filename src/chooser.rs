//! The vhost, and so the rustls config, a ClientHello selects: SNI against the names of the
//! connection address's vhosts, ALPN through httpd's `Protocols` for that vhost, the ACME
//! tls-alpn-01 challenge, and the stapled OCSP response of the certificate chosen.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::ClientHello;
use rustls::sign::CertifiedKey;

use crate::tls::engine::{self, VhostInProcess, VhostTls};
use crate::tls::ocsp;
use crate::tls::policy::{self, SniNames, VhostChoice};
use crate::tls::stream::{ConfigChooser, Refusal};
use httpd::log_conn;
use httpd::{APR_SUCCESS, Conn, Server, log, md};

use super::{built, conf};

pub struct VhostChooser {
    c: Conn,
    /// The vhost chosen (the address's default until a ClientHello says otherwise).
    pub server: Server,
    /// The SNI the client sent, if any (moved into the handshake's facts once it completes).
    pub sni: Option<String>,
    /// The certificate we present (the resolver's choice for this ClientHello; moved into the
    /// handshake's facts once it completes).
    pub cert: Option<Arc<CertifiedKey>>,
    /// The vhost the SNI named, when it owns its names: httpd's `Host` matching may look at it
    /// first (see `Conn::match_hosts_first_against`).
    pub sni_owner: Option<Server>,
}

impl VhostChooser {
    pub fn new(c: Conn) -> VhostChooser {
        VhostChooser { c, server: c.base_server(), sni: None, cert: None, sni_owner: None }
    }

    /// An ACME tls-alpn-01 validation (RFC 8737): the protocol is switched to `acme-tls/1` first
    /// (that is how mod_md learns of it), then mod_md gives the challenge certificate.
    fn acme_challenge(&mut self, name: &str) -> Option<Arc<ServerConfig>> {
        if self.c.switch_protocol(self.server, b"acme-tls/1") != APR_SUCCESS {
            return None;
        }
        let (cert_pem, key_pem) = md::answer_challenge(self.c, name)?;
        let key_pem = key_pem.unwrap_or_else(|| cert_pem.clone());
        match engine::challenge_config(&cert_pem, &key_pem) {
            Ok(c) => {
                log_conn!(self.c, log::INFO, 0, "answering the ACME tls-alpn-01 challenge for {name}");
                Some(c)
            }
            Err(e) => {
                log_conn!(self.c, log::ERR, 0, "ACME challenge for {name}: {e}");
                None
            }
        }
    }

    /// `config` presenting the chosen key with mod_md's current OCSP response stapled, when
    /// stapling is on for it.
    fn stapled_config(
        &self,
        tls: &VhostTls,
        here: &VhostInProcess,
        key: &Arc<CertifiedKey>,
        config: &Arc<ServerConfig>,
    ) -> Option<Arc<ServerConfig>> {
        let staplings = tls.stapling.get().map(|all| &all[..]);
        let response = |id: &[u8; 32]| md::ocsp_response(self.c, self.server, id);
        ocsp::stapled_config(here.resolver().keys(), staplings, key, config, response)
    }
}

impl ConfigChooser for VhostChooser {
    fn choose(&mut self, hello: &ClientHello<'_>) -> Result<Arc<ServerConfig>, Refusal> {
        let base = self.c.base_server();
        let strict = conf(base).strict_sni();
        if let Some(name) = hello.server_name() {
            #[cfg(feature = "test-hooks")]
            crate::test_hooks::panic_if_sni_is(name);
            self.sni = Some(name.to_string());
        }
        let sni = hello.server_name();
        self.sni_owner = None;
        let names = sni.map(|name| match super::vhost_named(self.c, name) {
            Some((s, owns_its_names)) => {
                self.sni_owner = owns_its_names.then_some(s);
                SniNames::Vhost(s)
            }
            // The main server's own name: served by it where it takes TLS connections itself
            // (the C module does so), else by the address's default vhost, as httpd serves a
            // request naming it.
            None if super::has_name(Server::main(), name) => match built(Server::main()).tls() {
                Some(_) => SniNames::Vhost(Server::main()),
                None => SniNames::MainServer,
            },
            None if strict && self.c.address_vhost_list().is_none() => SniNames::SoleVhost,
            None => SniNames::Nothing,
        });
        match policy::choose_vhost(names, strict) {
            VhostChoice::Named(s) => self.server = s,
            VhostChoice::Default => self.server = base,
            VhostChoice::Refuse => {
                return Err(Refusal {
                    alert: rustls::AlertDescription::UnrecognisedName,
                    reason: format!(
                        "AH10353: no virtual host on this address is named '{}' (SNI); refused because \
                         TLSStrictSNI is on",
                        sni.unwrap_or_default()
                    ),
                });
            }
        }
        // Borrowed, not cloned: start-up's objects are only read here (see `VhostInProcess`).
        let Some(tls) = built(self.server).tls() else {
            return Err(Refusal {
                alert: rustls::AlertDescription::InternalError,
                reason: format!("{} has no TLS configuration", self.server.describe()),
            });
        };
        let here = super::in_this_process(self.server, tls);
        let key = here.resolver().choose(hello.signature_schemes(), hello.cipher_suites());
        let offered: Vec<&[u8]> = hello.alpn().map(|it| it.collect()).unwrap_or_default();
        let protocol = self.c.select_protocol(self.server, &offered);
        if protocol.as_deref() == Some(b"acme-tls/1")
            && let Some(name) = hello.server_name()
            && let Some(config) = self.acme_challenge(name)
        {
            return Ok(config);
        }
        let config = here.for_protocol(protocol.as_deref());
        let config = self.stapled_config(tls, &here, &key, &config).unwrap_or(config);
        self.cert = Some(key);
        Ok(config)
    }
}
