//! The network input path without httpd: arbitrary bytes, in arbitrary pieces, into the stream
//! that feeds rustls and produces plaintext and TLS records. It may fail the connection, never
//! panic or grow without bound.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use mod_tls_core::tls::stream::{ConfigChooser, Refusal, TlsStream};
use rustls::ServerConfig;
use rustls::server::ClientHello;

struct Fixed(Arc<ServerConfig>);

impl ConfigChooser for Fixed {
    fn choose(&mut self, hello: &ClientHello<'_>) -> Result<Arc<ServerConfig>, Refusal> {
        if hello.server_name() == Some("refused.test") {
            return Err(Refusal { alert: rustls::AlertDescription::UnrecognisedName, reason: "refused".into() });
        }
        Ok(self.0.clone())
    }
}

fn config() -> Arc<ServerConfig> {
    static CONFIG: OnceLock<Arc<ServerConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let key = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
            let der = rustls::pki_types::PrivateKeyDer::try_from(key.signing_key.serialize_der()).unwrap();
            Arc::new(
                ServerConfig::builder_with_provider(mod_tls_core::tls::engine::provider())
                    .with_protocol_versions(rustls::ALL_VERSIONS)
                    .unwrap()
                    .with_no_client_auth()
                    .with_single_cert(vec![key.cert.der().clone()], der)
                    .unwrap(),
            )
        })
        .clone()
}

fuzz_target!(|data: &[u8]| {
    let mut chooser = Fixed(config());
    let mut stream = TlsStream::new();
    let mut out = Vec::new();
    let mut rest = data;
    while let Some((&size, tail)) = rest.split_first() {
        let n = (size as usize % 64 + 1).min(tail.len());
        let (piece, tail) = tail.split_at(n);
        rest = tail;
        let fed = stream.feed(piece, &mut chooser);
        let _ = stream.write_tls(&mut out);
        let plain = stream.plaintext().len();
        stream.consume(plain);
        if fed.is_err() {
            break;
        }
        assert!(out.len() < 1 << 20, "output grows without bound");
        out.clear();
    }
    let _ = stream.feed(&[], &mut chooser);
    let _ = stream.write_tls(&mut out);
});
