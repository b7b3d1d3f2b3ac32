//! A rustls client and a server config for `a.test`, and a pump between the client and a server
//! side: shared by the stream's unit tests and the memory test binary (tests/stream_memory.rs).
#![allow(dead_code)] // each user takes what it needs

use std::sync::Arc;

use mod_tls_core::tls::stream::{ConfigChooser, Refusal};
use rustls::pki_types::ServerName;
use rustls::server::{ClientHello, ServerConfig};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

/// Chooses the same config for every hello.
pub struct Fixed(pub Arc<ServerConfig>);

impl ConfigChooser for Fixed {
    fn choose(&mut self, _hello: &ClientHello<'_>) -> Result<Arc<ServerConfig>, Refusal> {
        Ok(self.0.clone())
    }
}

pub fn pair(versions: &[&'static rustls::SupportedProtocolVersion]) -> (Fixed, ClientConnection) {
    pair_with(versions, mod_tls_core::tls::engine::provider())
}

/// As `pair`, with a client that offers only X25519 (as OpenSSL 3.0 clients do).
pub fn pair_x25519(versions: &[&'static rustls::SupportedProtocolVersion]) -> (Fixed, ClientConnection) {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
    pair_with(versions, Arc::new(provider))
}

pub fn pair_with(
    versions: &[&'static rustls::SupportedProtocolVersion],
    client_provider: Arc<rustls::crypto::CryptoProvider>,
) -> (Fixed, ClientConnection) {
    let x25519_only_like_openssl = client_provider.kx_groups.len() == 1;
    let key = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
    let der = rustls::pki_types::PrivateKeyDer::try_from(key.signing_key.serialize_der()).unwrap();
    let server = ServerConfig::builder_with_provider(mod_tls_core::tls::engine::provider())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![key.cert.der().clone()], der)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(key.cert.der().clone()).unwrap();
    let mut client = ClientConfig::builder_with_provider(client_provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    if x25519_only_like_openssl {
        // OpenSSL 3.0 clients offer neither hybrid key exchange nor certificate compression.
        client.cert_decompressors = vec![];
    }
    let conn = ClientConnection::new(Arc::new(client), ServerName::try_from("a.test").unwrap()).unwrap();
    (Fixed(Arc::new(server)), conn)
}

/// Moves bytes both ways until neither side has anything to say, with the server side given as
/// two closures: feed it TLS bytes, take its output.
pub fn pump_with(client: &mut ClientConnection, feed: &mut dyn FnMut(&[u8]), take: &mut dyn FnMut(&mut Vec<u8>)) {
    for _ in 0..20 {
        let mut to_server = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut to_server).unwrap();
        }
        if !to_server.is_empty() {
            feed(&to_server);
        }
        let mut to_client = Vec::new();
        take(&mut to_client);
        if !to_client.is_empty() {
            client.read_tls(&mut &to_client[..]).unwrap();
            client.process_new_packets().unwrap();
        }
        if to_server.is_empty() && to_client.is_empty() {
            return;
        }
    }
}
