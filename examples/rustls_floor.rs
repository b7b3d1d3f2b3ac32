//! The floor for the handshake benchmark (`make bench-floor`): the least a rustls server can do
//! per connection. One thread per connection, the same provider (aws-lc-rs) and certificate as
//! httpd is given, one TLS 1.3 ticket per handshake (in memory), one HTTP/1.1 request read and a
//! fixed response written, then close_notify. With `--plain`, the same without TLS, so that
//! "TLS minus plain" is the handshake's own cost, measured as for httpd.
//!
//! ```text
//! rustls_floor PORT CERT.pem KEY.pem [--plain]
//! ```

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const BODY: &[u8] = b"hello over TLS\n";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (port, cert, key) = match &args[..] {
        [_, port, cert, key, ..] => (port.parse::<u16>().expect("PORT"), cert, key),
        _ => {
            eprintln!("usage: rustls_floor PORT CERT.pem KEY.pem [--plain]");
            std::process::exit(2);
        }
    };
    let plain = args.iter().any(|a| a == "--plain");
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(cert).expect("certificate file").map(|c| c.expect("certificate")).collect();
    let key = PrivateKeyDer::from_pem_file(key).expect("key file");
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("certificate and key");
    config.send_tls13_tickets = 1;
    let config = Arc::new(config);
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    for sock in listener.incoming().flatten() {
        let config = config.clone();
        let spawned = std::thread::Builder::new().spawn(move || {
            if plain {
                serve(sock)
            } else if let Ok(conn) = rustls::ServerConnection::new(config) {
                serve(rustls::StreamOwned::new(conn, sock));
            }
        });
        // No thread for this connection (the system's limit): it is dropped, the server goes on.
        if let Err(e) = spawned {
            eprintln!("rustls_floor: no thread for a connection: {e}");
        }
    }
}

trait Closing: Read + Write {
    fn finish(&mut self) {}
}

impl Closing for TcpStream {}

impl Closing for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn finish(&mut self) {
        self.conn.send_close_notify();
        // The close_notify goes out with what is queued; an error means the client left.
        let _sent = self.conn.complete_io(&mut self.sock);
    }
}

/// Reads one request head and answers it.
fn serve(mut s: impl Closing) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        BODY.len()
    );
    if s.write_all(response.as_bytes()).and_then(|()| s.write_all(BODY)).and_then(|()| s.flush()).is_ok() {
        s.finish();
    }
}
