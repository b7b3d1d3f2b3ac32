//! Certificates with RSA, ECDSA P-256/P-384 and Ed25519 keys, in PKCS#8, PKCS#1 and SEC1 PEM, with
//! the key in its own file or in the certificate file; certificate chains.

mod common;

use std::process::Command;

use common::*;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

fn openssl(args: &[&str]) {
    let o = Command::new("openssl").args(args).output().unwrap();
    assert!(o.status.success(), "openssl {args:?}: {}", output_text(&o));
}

#[test]
fn key_types_and_formats() {
    let mut h = Httpd::new();
    let dir = h.path("conf");
    let d = |f: &str| dir.join(f).display().to_string();
    let variants: [(&str, &[&str], &str); 5] = [
        ("rsa-pkcs1", &["genrsa", "-traditional", "-out", "KEY", "2048"], "BEGIN RSA PRIVATE KEY"),
        (
            "rsa-pkcs8",
            &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "KEY"],
            "BEGIN PRIVATE KEY",
        ),
        ("p256-sec1", &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "KEY"], "BEGIN EC PRIVATE KEY"),
        (
            "p384-pkcs8",
            &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", "KEY"],
            "BEGIN PRIVATE KEY",
        ),
        ("ed25519", &["genpkey", "-algorithm", "ed25519", "-out", "KEY"], "BEGIN PRIVATE KEY"),
    ];
    let mut ports = Vec::new();
    let mut extra = String::new();
    for (i, (name, gen_args, marker)) in variants.iter().enumerate() {
        let key = d(&format!("{name}.key"));
        let cert = d(&format!("{name}.pem"));
        let args: Vec<&str> = gen_args.iter().map(|a| if *a == "KEY" { key.as_str() } else { a }).collect();
        openssl(&args);
        assert!(std::fs::read_to_string(&key).unwrap().contains(marker), "{name} key is in the intended form");
        openssl(&[
            "req",
            "-new",
            "-x509",
            "-key",
            &key,
            "-out",
            &cert,
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ]);
        let port = free_port();
        // Every other variant keeps the key in the certificate file.
        let directive = if i % 2 == 0 {
            format!("TLSCertificate conf/{name}.pem conf/{name}.key")
        } else {
            let both = format!("{}{}", std::fs::read_to_string(&cert).unwrap(), std::fs::read_to_string(&key).unwrap());
            h.write(&format!("conf/{name}-both.pem"), both);
            format!("TLSCertificate conf/{name}-both.pem")
        };
        extra += &format!(
            "Listen 127.0.0.1:{port}\nTLSEngine 127.0.0.1:{port}\n<VirtualHost 127.0.0.1:{port}>\n  ServerName localhost\n  {directive}\n  \
             Header set X-Alg \"%{{SSL_SERVER_A_SIG}}s %{{SSL_SERVER_A_KEY}}s\"\n</VirtualHost>\n"
        );
        ports.push((name.to_string(), port, cert));
    }
    h.extra = extra;
    h.start();
    for (name, port, cert_file) in ports {
        let cert = CertificateDer::from_pem_file(&cert_file).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.clone()).unwrap();
        for versions in [TLS13, TLS12] {
            let config = rustls::ClientConfig::builder_with_protocol_versions(versions)
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            let mut s = tls_connect(port, "localhost", std::sync::Arc::new(config));
            assert_eq!(s.conn.peer_certificates().unwrap()[0], cert, "{name}: served its own certificate");
            // SSL_SERVER_A_SIG / A_KEY say what mod_ssl says: OpenSSL's names for the algorithms.
            let text = output_text(
                &Command::new("openssl").args(["x509", "-noout", "-text", "-in", &cert_file]).output().unwrap(),
            );
            let field =
                |label: &str| text.lines().find_map(|l| l.trim().strip_prefix(label)).unwrap().trim().to_string();
            let want = format!("{} {}", field("Signature Algorithm:"), field("Public Key Algorithm:"));
            assert_eq!(get_on(&mut s, "/index.html", "localhost").header("X-Alg"), Some(want.as_str()), "{name}");
        }
        // And OpenSSL's client agrees.
        let o = s_client(port).arg("-verify_return_error").ca_file(&cert_file).stdin("\n").run();
        assert!(output_text(&o).contains("Verify return code: 0 (ok)"), "{name}: {}", output_text(&o));
    }
}

#[test]
fn chain_is_sent_whole() {
    let mut h = Httpd::new();
    // Server certificate followed by the CA: the client must receive both.
    let (cert, key) = h.pki.issue(&["localhost"], &rcgen::PKCS_ECDSA_P384_SHA384);
    h.write("conf/chain.pem", format!("{cert}{}", h.pki.ca_pem));
    h.write("conf/chain.key", key);
    h.tls_vhost = Some(h.localhost_vhost("  TLSCertificate conf/chain.pem conf/chain.key"));
    h.start();
    let s = h.tls_connect(TLS13);
    assert_eq!(s.conn.peer_certificates().unwrap().len(), 2);
}

#[test]
fn encrypted_key_with_passphrase_program() {
    use std::os::unix::fs::PermissionsExt;
    let mut h = Httpd::new();
    let plain = h.path("conf/server.key");
    let enc = h.path("conf/encrypted.key");
    openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-passout",
        "pass:Open Sesame 42",
        "-in",
        plain.to_str().unwrap(),
        "-out",
        enc.to_str().unwrap(),
    ]);
    assert!(std::fs::read_to_string(&enc).unwrap().contains("BEGIN ENCRYPTED PRIVATE KEY"));
    let counter = h.path("logs/asked");
    let script = |pass: &str| format!("#!/bin/sh\necho \"$1 $2\" >> {}\necho '{pass}'\n", counter.display());
    h.write("conf/pass.sh", script("Open Sesame 42"));
    std::fs::set_permissions(h.path("conf/pass.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let vhost = h.localhost_vhost("  TLSCertificate conf/server.pem conf/encrypted.key");
    h.tls_vhost = Some(vhost);

    // Without a passphrase source: a clear error.
    assert_configtest_fails(&h, &["TLSPassPhraseDialog exec:"]);

    h.extra = "TLSPassPhraseDialog exec:conf/pass.sh\n".into();
    h.start();
    let (r, _) = h.get("/index.html", TLS13);
    assert_eq!(r.status, 200);
    let asked = std::fs::read_to_string(&counter).unwrap();
    assert_eq!(asked.lines().count(), 1, "asked once for both start-up passes: {asked}");
    assert!(asked.starts_with("localhost:") && asked.contains("encrypted.key"), "{asked}");
    // Nor again at a graceful restart: the passphrase given is remembered by the process.
    h.graceful();
    let (r, _) = h.get("/index.html", TLS13);
    assert_eq!(r.status, 200, "served after the restart");
    let asked = std::fs::read_to_string(&counter).unwrap();
    assert_eq!(asked.lines().count(), 1, "asked once across a graceful restart too: {asked}");
    h.stop();

    // A wrong passphrase fails start-up clearly and never shows up in the output.
    h.write("conf/pass.sh", script("wrong guess"));
    let out = assert_configtest_fails(&h, &["could not be decrypted"]);
    assert!(!out.contains("wrong guess") && !h.error_log().contains("wrong guess"), "{out}");
}
