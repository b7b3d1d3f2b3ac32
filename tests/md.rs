//! mod_md integration: OCSP stapling of responses mod_md fetches from a real `openssl ocsp`
//! responder, and ACME certificates from a real pebble with the tls-alpn-01 challenge.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

#[allow(dead_code)]
#[path = "migrate_support/ocsp.rs"]
mod ocsp;

/// A rustls verifier that records the OCSP response the server stapled.
#[derive(Debug)]
struct RecordOcsp {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl rustls::client::danger::ServerCertVerifier for RecordOcsp {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap() = ocsp_response.to_vec();
        self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[test]
fn ocsp_responses_from_mod_md_are_stapled() {
    let mut h = Httpd::new();
    let d = h.path("ocsp");
    // A CA, a server certificate pointing at our responder, and the responder, listening.
    let responder = ocsp::pki_with_responder(&d);
    h.extra = format!(
        "LoadModule md_module {MODDIR}/mod_md.so\nMDStoreDir md\nMDStapling on\nMDStapleOthers on\n\
         MDCertificateAgreement accepted\nLoadModule status_module {MODDIR}/mod_status.so\n\
         <Location /server-status>\n  SetHandler server-status\n</Location>\n"
    );
    h.tls_vhost = Some(h.localhost_vhost("  TLSCertificate ocsp/chain.pem ocsp/server.key"));
    h.log_level = "info md:debug tls:debug".into();
    h.start();
    let text = poll_until_every(Duration::from_secs(40), Duration::from_millis(500), "a stapled response", || {
        let text = output_text(&s_client(h.tls_port).arg("-status").ca_file(d.join("ca.pem")).stdin("\n").run());
        if text.contains("OCSP Response Status: successful") {
            Ok(text)
        } else {
            Err(format!("{text}\n{}", h.error_log()))
        }
    });
    assert!(text.contains("Cert Status: good"), "{text}");
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    // The status page says the certificate is stapled, and how old the response is.
    let o = h.curl(&["-s", &format!("http://127.0.0.1:{}/server-status?auto", h.plain_port)]);
    let page = output_text(&o);
    let line = page.lines().find(|l| l.starts_with("TLSCertificate") && l.contains("CN=localhost")).unwrap_or_default();
    let age: u64 = line
        .split("staple_age=")
        .nth(1)
        .and_then(|rest| rest.trim_end_matches('s').parse().ok())
        .unwrap_or_else(|| panic!("no staple age in: {page}"));
    assert!(age < 600, "{line}");

    // A rustls client receives the same stapled response.
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    roots.add(rustls::pki_types::CertificateDer::from_pem_file(d.join("ca.pem")).unwrap()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let verifier = RecordOcsp {
        inner: rustls::client::WebPkiServerVerifier::builder(Arc::new(roots)).build().unwrap(),
        seen: seen.clone(),
    };
    let cfg = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let mut s = tls_connect(h.tls_port, "localhost", Arc::new(cfg));
    s.write_all(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let response = seen.lock().unwrap().clone();
    assert!(response.len() > 100 && response[0] == 0x30, "a DER OCSP response was stapled ({} bytes)", response.len());
    drop(responder);
    h.assert_no_crash();
}

#[test]
fn acme_certificate_through_tls_alpn_01_with_pebble() {
    acme_with_pebble(false);
}

/// mod_md is asked first, as the C module does: an MDomain vhost that inherits a global
/// `TLSCertificate` is served with it until mod_md has the domain's certificate, then with
/// mod_md's.
#[test]
fn mod_md_is_asked_first_even_with_a_global_certificate() {
    acme_with_pebble(true);
}

fn acme_with_pebble(global_certificate: bool) {
    let mut h = Httpd::new();
    let (acme_port, mgmt_port, dns_port, dns_mgmt) = (free_port(), free_port(), free_port(), free_port());
    // Pebble's own HTTPS certificate, from the harness CA that mod_md is told to trust.
    let (cert, key) = h.pki.issue(&["localhost", "127.0.0.1"], &rcgen::PKCS_ECDSA_P256_SHA256);
    h.write("pebble/cert.pem", cert);
    h.write("pebble/key.pem", key);
    h.write(
        "pebble/config.json",
        format!(
            r#"{{"pebble": {{"listenAddress": "127.0.0.1:{acme_port}", "managementListenAddress": "127.0.0.1:{mgmt_port}",
               "certificate": "cert.pem", "privateKey": "key.pem", "httpPort": {http}, "tlsPort": {tls},
               "ocspResponderURL": "", "externalAccountBindingRequired": false}}}}"#,
            http = h.plain_port,
            tls = h.tls_port
        ),
    );
    // Every name resolves to 127.0.0.1 through the challenge test server's DNS.
    let _dns = Daemon(
        Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns_port}"), "-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_mgmt}"), "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _pebble = Daemon(
        Command::new("pebble")
            .args(["-config", "config.json", "-dnsserver", &format!("127.0.0.1:{dns_port}")])
            .current_dir(h.path("pebble"))
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(std::fs::File::create(h.path("logs/pebble.log")).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    poll_until(Duration::from_secs(10), "pebble and its challenge test server to listen", || {
        [acme_port, mgmt_port, dns_mgmt].iter().all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())
    });
    let name = "www.mod-tls.test";
    h.extra = format!(
        "LoadModule md_module {MODDIR}/mod_md.so\nMDStoreDir md\nMDCertificateAgreement accepted\n\
         MDCertificateAuthority https://127.0.0.1:{acme_port}/dir\nMDCACertificateFile {ca}\n\
         MDCAChallenges tls-alpn-01\nMDContactEmail admin@mod-tls.test\nMDPortMap https:{tls} http:{http}\nMDRenewViaARI off\nMDomain {name}\n",
        tls = h.tls_port,
        http = h.plain_port,
        ca = h.path("conf/ca.pem").display()
    );
    if global_certificate {
        h.extra += "TLSCertificate conf/server.pem conf/server.key\n";
    }
    h.write("htdocs/acme/index.html", "managed\n");
    h.tls_vhost = Some(format!(
        "<VirtualHost 127.0.0.1:{}>\n  ServerName {name}\n  DocumentRoot htdocs/acme\n  Protocols http/1.1 acme-tls/1\n</VirtualHost>\n",
        h.tls_port
    ));
    h.log_level = "info md:debug".into();
    h.start();
    // Until mod_md has a certificate, the vhost answers 503 with mod_md's stand-in.
    let probe = |h: &Httpd| {
        let request = format!("GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
        output_text(&s_client(h.tls_port).servername(name).arg("-ign_eof").stdin(request).run())
    };
    let first = probe(&h);
    if global_certificate {
        // Until then the inherited certificate serves: no stand-in, no 503.
        assert!(first.contains("HTTP/1.1 200") && first.contains("managed") && !first.contains("Pebble"), "{first}");
    } else {
        assert!(first.contains("HTTP/1.1 503"), "fallback certificate answers 503:\n{first}");
    }
    // mod_md drives the ACME order; pebble validates through our tls-alpn-01 answer.
    poll_until_every(Duration::from_secs(60), Duration::from_millis(300), "a certificate from pebble", || {
        let log = h.error_log();
        if log.contains("has been setup and changes will be activated") {
            Ok(())
        } else {
            Err(format!("{log}\n{}", std::fs::read_to_string(h.path("logs/pebble.log")).unwrap_or_default()))
        }
    });
    assert!(h.error_log().contains("answering the ACME tls-alpn-01 challenge"), "{}", h.error_log());
    h.graceful();
    let what = "the ACME certificate served after a graceful restart";
    poll_until_every(Duration::from_secs(20), Duration::from_millis(300), what, || {
        let text = probe(&h);
        if text.contains("Pebble") && text.contains("HTTP/1.1 200") && text.contains("managed") {
            Ok(())
        } else {
            Err(text)
        }
    });
    // The managed vhost resumes sessions like any other.
    let o = s_client(h.tls_port).servername(name).args(["-tls1_2", "-reconnect"]).stdin("\n").run();
    assert_eq!(output_text(&o).matches("Reused, TLSv1.2").count(), 5, "{}", output_text(&o));
    h.assert_no_crash();
}
