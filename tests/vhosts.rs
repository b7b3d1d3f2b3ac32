//! Name-based virtual hosts on one port and their TLS policies: SNI, strict SNI, 421, protocol
//! floors, cipher preferences, several certificates, certificate compression, ALPN and HTTP/2.

mod common;

use std::sync::Arc;

use common::*;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A server with vhosts a.test (default, first), b.test (+ aliases, TLS 1.3 only), c.test and
/// d.test (same settings), each with its own document root saying its name.
fn vhost_server(extra_a: &str, extra_b: &str) -> Httpd {
    let mut h = Httpd::new();
    let port = h.tls_port;
    let mut blocks = String::new();
    for (name, sans, extra) in [
        ("a.test", &["a.test", "unknown.test", "main.test"][..], extra_a),
        ("b.test", &["b.test", "alias.test", "x.wild.test"][..], extra_b),
    ] {
        let (cert, key) = h.pki.issue(sans, &rcgen::PKCS_ECDSA_P256_SHA256);
        h.write(&format!("conf/{name}.pem"), cert);
        h.write(&format!("conf/{name}.key"), key);
        h.write(&format!("htdocs/{name}/index.html"), format!("{name}\n"));
        let aliases = if name == "b.test" { "  ServerAlias alias.test *.wild.test\n" } else { "" };
        blocks += &vhost_block(
            port,
            name,
            &format!("conf/{name}.pem"),
            &format!("conf/{name}.key"),
            &format!("{aliases}{extra}"),
        );
    }
    let (cert, key) = h.pki.issue(&["c.test", "d.test"], &rcgen::PKCS_ECDSA_P256_SHA256);
    h.write("conf/cd.pem", cert);
    h.write("conf/cd.key", key);
    for name in ["c.test", "d.test"] {
        h.write(&format!("htdocs/{name}/index.html"), format!("{name}\n"));
        blocks += &vhost_block(port, name, "conf/cd.pem", "conf/cd.key", "");
    }
    h.tls_vhost = Some(blocks);
    h
}

fn leaf(h: &Httpd, name: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(h.path(&format!("conf/{name}.pem"))).unwrap()
}

#[test]
fn sni_selects_vhost_by_name_alias_and_wildcard() {
    let mut h = vhost_server("", "");
    h.start();
    let cfg = h.pki.client_config(TLS13);
    for (sni, vhost) in [
        ("a.test", "a.test"),
        ("b.test", "b.test"),
        ("alias.test", "b.test"),
        ("x.wild.test", "b.test"),
        ("c.test", "c.test"),
    ] {
        let mut s = tls_connect(h.tls_port, sni, cfg.clone());
        let cert_name = if vhost == "c.test" { "cd" } else { vhost };
        assert_eq!(s.conn.peer_certificates().unwrap()[0], leaf(&h, cert_name), "SNI {sni}");
        let r = get_on(&mut s, "/", sni);
        assert_eq!(r.text(), format!("{vhost}\n"), "SNI {sni}");
    }
    // Without SNI: the first vhost of the address.
    let no_sni = h.pki.client_config_with(TLS13, |_| {}, |c| c.enable_sni = false);
    let s = tls_connect(h.tls_port, "a.test", Arc::new(no_sni));
    assert_eq!(s.conn.peer_certificates().unwrap()[0], leaf(&h, "a.test"));
}

#[test]
fn strict_sni_refuses_unknown_names_and_off_falls_back() {
    let mut h = vhost_server("", "");
    // The refusal is for the administrator to see at the default level, as in the C module.
    h.log_level = "warn".into();
    h.start();
    let Err(err) = try_tls_connect(h.tls_port, "unknown.test", h.pki.client_config(TLS13)) else { panic!("accepted") };
    assert!(err.to_string().contains("UnrecognisedName"), "{err}");
    let log = h.log_when("logs/error.log", |l| l.contains("AH10353"));
    let line = log.lines().find(|l| l.contains("AH10353")).expect("logged");
    assert!(line.contains("[tls:warn]") && line.contains("'unknown.test'"), "{line}");
    h.stop();

    let mut h = vhost_server("", "");
    h.extra = "TLSStrictSNI off\n".into();
    h.start();
    let mut s = tls_connect(h.tls_port, "unknown.test", h.pki.client_config(TLS13));
    assert_eq!(s.conn.peer_certificates().unwrap()[0], leaf(&h, "a.test"));
    assert_eq!(get_on(&mut s, "/", "a.test").text(), "a.test\n");
}

/// Under TLSStrictSNI, the main server's own ServerName is a known name even when name-based
/// vhosts exist on the address: the handshake (and httpd, for that Host) use the default vhost.
#[test]
fn strict_sni_accepts_the_main_servers_name() {
    let mut h = vhost_server("", "");
    h.log_level = "warn".into();
    h.extra = "ServerName main.test\n".into();
    h.start();
    let mut s = tls_connect(h.tls_port, "main.test", h.pki.client_config(TLS13));
    assert_eq!(s.conn.peer_certificates().unwrap()[0], leaf(&h, "a.test"));
    let r = get_on(&mut s, "/", "main.test");
    assert_eq!((r.status, r.text().as_str()), (200, "a.test\n"));
    assert!(!h.error_log().contains("AH10353"), "{}", h.error_log());
    // Names nobody configured are still refused.
    assert!(try_tls_connect(h.tls_port, "other.test", h.pki.client_config(TLS13)).is_err());
}

#[test]
fn host_header_for_a_vhost_with_other_tls_settings_gets_421() {
    let mut h = vhost_server("", "");
    h.start();
    let cfg = h.pki.client_config(TLS13);
    let mut s = tls_connect(h.tls_port, "a.test", cfg.clone());
    assert_eq!(get_on(&mut s, "/", "b.test").status, 421);
    assert!(h.error_log().contains("AH10345"), "{}", h.error_log());
    // Same certificate and policy: served, as mod_ssl does.
    let mut s = tls_connect(h.tls_port, "c.test", cfg);
    let r = get_on(&mut s, "/", "d.test");
    assert_eq!((r.status, r.text().as_str()), (200, "d.test\n"));
}

#[test]
fn protocol_floor_per_vhost_on_one_port() {
    let mut h = vhost_server("", "  TLSProtocol v1.3+");
    h.start();
    let Err(err) = try_tls_connect(h.tls_port, "b.test", h.pki.client_config(TLS12)) else {
        panic!("TLS 1.2 accepted")
    };
    assert!(err.to_string().contains("ProtocolVersion"), "{err}");
    let s = tls_connect(h.tls_port, "b.test", h.pki.client_config(TLS13));
    assert_eq!(s.conn.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    let s = tls_connect(h.tls_port, "a.test", h.pki.client_config(TLS12));
    assert_eq!(s.conn.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
}

fn negotiated(
    h: &Httpd,
    sni: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
    only: Option<rustls::CipherSuite>,
) -> Result<rustls::CipherSuite, String> {
    let cfg = h.pki.client_config_with(
        versions,
        |p| {
            if let Some(only) = only {
                p.cipher_suites.retain(|s| s.suite() == only);
            }
        },
        |_| {},
    );
    try_tls_connect(h.tls_port, sni, Arc::new(cfg))
        .map(|s| s.conn.negotiated_cipher_suite().unwrap().suite())
        .map_err(|e| e.to_string())
}

#[test]
fn cipher_preference_suppression_and_client_order() {
    use rustls::CipherSuite as C;
    let mut h = vhost_server(
        "  TLSCiphersPrefer TLS_CHACHA20_POLY1305_SHA256:ECDHE-ECDSA-CHACHA20-POLY1305 TLS_RSA_WITH_RC4_128_MD5\n  TLSHonorClientOrder off",
        "  TLSCiphersSuppress TLS13_AES_256_GCM_SHA384 TLS_CIPHER_0xc02c\n  TLSCiphersPrefer TLS_CHACHA20_POLY1305_SHA256",
    );
    h.start();
    // a.test: the server's order wins: ChaCha20 although the client lists AES-GCM first.
    assert_eq!(negotiated(&h, "a.test", TLS13, None), Ok(C::TLS13_CHACHA20_POLY1305_SHA256));
    assert_eq!(negotiated(&h, "a.test", TLS12, None), Ok(C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256));
    // b.test honours the client's order (the default), so its preference does not override it...
    assert_eq!(negotiated(&h, "b.test", TLS13, None), Ok(C::TLS13_AES_128_GCM_SHA256), "AES-256 is suppressed");
    // ...and suppressed suites are never negotiated, even when the client offers nothing else.
    assert!(negotiated(&h, "b.test", TLS13, Some(C::TLS13_AES_256_GCM_SHA384)).is_err());
    assert!(negotiated(&h, "b.test", TLS12, Some(C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)).is_err());
    assert_eq!(
        negotiated(&h, "b.test", TLS12, None),
        Ok(C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
        "the client's first remaining choice"
    );
    // A known suite rustls lacks only warns, with the C module's message number.
    let log = h.error_log();
    assert!(log.contains("AH10319") && log.contains("TLS_RSA_WITH_RC4_128_MD5"), "{log}");
}

/// Keywords and spellings a configuration written for the C module uses: a later line replaces an
/// earlier one; `default`/`none` name no suite (a vhost saying so inherits, as in C); versions and
/// options in any case; `TLSSessionCache default` and `TLSProxyCA default`.
#[test]
fn c_module_keywords_and_spellings() {
    use rustls::CipherSuite as C;
    let mut h = vhost_server("  TLSCiphersSuppress none\n  TLSOptions +stdenvvars", "  TLSProtocol tlsv1.3+");
    h.extra = "TLSCiphersPrefer default\nTLSCiphersSuppress TLS13_AES_256_GCM_SHA384\n\
               TLSCiphersSuppress TLS13_AES_128_GCM_SHA256\nTLSSessionCache default\nTLSProxyCA default\n"
        .into();
    h.start();
    let only = |sni, suite| negotiated(&h, sni, TLS13, Some(suite));
    assert!(only("a.test", C::TLS13_AES_128_GCM_SHA256).is_err(), "none in a vhost inherits the main server's");
    // c.test inherits the main server's setting, whose second line replaced the first.
    assert_eq!(only("c.test", C::TLS13_AES_256_GCM_SHA384), Ok(C::TLS13_AES_256_GCM_SHA384), "replaced");
    assert!(only("c.test", C::TLS13_AES_128_GCM_SHA256).is_err(), "the line in effect");
    assert!(negotiated(&h, "b.test", TLS12, None).is_err(), "tlsv1.3+");
    assert_eq!(negotiated(&h, "b.test", TLS13, None), Ok(C::TLS13_AES_256_GCM_SHA384));
}

#[test]
fn unknown_cipher_and_bad_protocol_fail_configtest() {
    let mut h = Httpd::new();
    h.extra = "TLSCiphersPrefer ECDHE-ECDSA-AES256-GCM-SHA384:NOT-A-CIPHER\n".into();
    assert_configtest_fails(&h, &["'NOT-A-CIPHER'", "TLSCiphersPrefer"]);
    h.extra = "TLSProtocol TLSv1.4+\n".into();
    assert_configtest_fails(&h, &["TLSProtocol"]);
    h.extra = "TLSCiphersSuppress TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256\n".into();
    assert_configtest_fails(&h, &["leaves no cipher suite for TLSv1.3"]);
    h.extra = "TLSHonorClientOrder OFF\nTLSStrictSNI On\n".into();
    assert_configtest_passes(&h);
    h.extra = String::new();
    h.tls_vhost = Some(h.localhost_vhost("  TLSCertificate conf/server.pem conf/server.key\n  TLSStrictSNI off"));
    assert_configtest_fails(&h, &["TLSStrictSNI is a global directive"]);
}

#[test]
fn each_client_gets_the_certificate_openssl_would_give_it() {
    let mut h = Httpd::new();
    let pki = &h.pki;
    let (ec, ec_key) = pki.issue(&["localhost"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let (rsa, rsa_key) = pki.issue(&["localhost"], &rcgen::PKCS_RSA_SHA256);
    h.write("conf/ec.pem", &ec);
    h.write("conf/ec.key", ec_key);
    h.write("conf/rsa.pem", &rsa);
    h.write("conf/rsa.key", rsa_key);
    h.tls_vhost =
        Some(h.localhost_vhost("  TLSCertificate conf/ec.pem conf/ec.key\n  TLSCertificate conf/rsa.pem conf/rsa.key"));
    h.start();
    let ec = CertificateDer::from_pem_slice(ec.as_bytes()).unwrap();
    let rsa = CertificateDer::from_pem_slice(rsa.as_bytes()).unwrap();
    let s = h.tls_connect(TLS13);
    assert_eq!(s.conn.peer_certificates().unwrap()[0], ec, "a modern client gets ECDSA");
    // A client that verifies only RSA signatures.
    let rsa_only = h.pki.client_config_with(
        TLS13,
        |p| {
            let algs = p.signature_verification_algorithms;
            let mapping: Vec<_> =
                algs.mapping.iter().filter(|(s, _)| format!("{s:?}").contains("RSA")).cloned().collect();
            p.signature_verification_algorithms = rustls::crypto::WebPkiSupportedAlgorithms {
                all: algs.all,
                mapping: Box::leak(mapping.into_boxed_slice()),
            };
        },
        |_| {},
    );
    let s = tls_connect(h.tls_port, "localhost", Arc::new(rsa_only));
    assert_eq!(s.conn.peer_certificates().unwrap()[0], rsa, "an RSA-only client gets RSA");
    // A TLS 1.2 client offering only ECDHE_RSA suites.
    let cfg = h.pki.client_config_with(
        TLS12,
        |p| p.cipher_suites.retain(|s| format!("{:?}", s.suite()).contains("_RSA_")),
        |_| {},
    );
    let s = tls_connect(h.tls_port, "localhost", Arc::new(cfg));
    assert_eq!(s.conn.peer_certificates().unwrap()[0], rsa);
}

#[test]
fn certificate_compression_saves_handshake_bytes() {
    let mut h = Httpd::new();
    // A chain of two certificates gives compression something to work with.
    let (cert, key) = h.pki.issue(&["localhost", "www.localhost", "api.localhost"], &rcgen::PKCS_RSA_SHA256);
    h.write("conf/chain.pem", format!("{cert}{}", h.pki.ca_pem));
    h.write("conf/chain.key", key);
    h.tls_vhost = Some(h.localhost_vhost("  TLSCertificate conf/chain.pem conf/chain.key"));
    h.start();
    let handshake_bytes = |decompress: bool| {
        let cfg = h.pki.client_config_with(
            TLS13,
            |_| {},
            |c| {
                if !decompress {
                    c.cert_decompressors = vec![];
                }
            },
        );
        assert_eq!(cfg.cert_decompressors.is_empty(), !decompress);
        let sock = std::net::TcpStream::connect(("127.0.0.1", h.tls_port)).unwrap();
        let mut io = Recording { inner: sock, seen: Vec::new() };
        let mut conn = rustls::ClientConnection::new(Arc::new(cfg), "localhost".try_into().unwrap()).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut io).unwrap();
        }
        io.seen.len()
    };
    let plain = handshake_bytes(false);
    let compressed = handshake_bytes(true);
    assert!(compressed + 100 < plain, "compressed handshake {compressed} bytes vs {plain} uncompressed");
}

#[test]
fn alpn_follows_protocols_and_http2_works() {
    let mut h = Httpd::new();
    random_file(&h.path("htdocs/1k.bin"), 1024);
    h.extra = format!("LoadModule http2_module {MODDIR}/mod_http2.so\nProtocols h2 http/1.1\n");
    // Enough workers for the 16 HTTP/2 clients below: when the event MPM finds all workers busy
    // (16 per child by default here, and a loaded test machine), it closes the keep-alive
    // connections it holds, and an HTTP/2 session between requests is one (GOAWAY "timeout",
    // h2load counts the rest of its requests as failed).
    h.mpm_tuning = Some(
        "StartServers 2\nServerLimit 2\nThreadsPerChild 64\nThreadLimit 64\nMinSpareThreads 32\nMaxSpareThreads 128\nMaxRequestWorkers 128\n"
            .into(),
    );
    h.write("htdocs/h1/index.html", "h1 only\n");
    h.tls_vhost = Some(format!(
        "{}{}",
        vhost_block(h.tls_port, "localhost", "conf/server.pem", "conf/server.key", "  DocumentRoot htdocs"),
        vhost_block(
            h.tls_port,
            "h1.test",
            "conf/h1.pem",
            "conf/h1.key",
            "  Protocols http/1.1\n  DocumentRoot htdocs/h1"
        ),
    ));
    let (cert, key) = h.pki.issue(&["h1.test"], &rcgen::PKCS_ECDSA_P256_SHA256);
    h.write("conf/h1.pem", cert);
    h.write("conf/h1.key", key);
    h.start();
    let alpn = |sni: &str| {
        let cfg =
            h.pki.client_config_with(TLS13, |_| {}, |c| c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        let s = tls_connect(h.tls_port, sni, Arc::new(cfg));
        s.conn.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned())
    };
    assert_eq!(alpn("localhost").as_deref(), Some("h2"));
    assert_eq!(alpn("h1.test").as_deref(), Some("http/1.1"));

    let o = h.curl(&["--http2", "-w", "\n%{http_version}", &h.https_url("/index.html")]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello over TLS\n\n2", "{}", output_text(&o));
    let resolve = format!("h1.test:{}:127.0.0.1", h.tls_port);
    let o = h.curl(&[
        "--http2",
        "--resolve",
        &resolve,
        "-w",
        "\n%{http_version}",
        &format!("https://h1.test:{}/", h.tls_port),
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "h1 only\n\n1.1", "{}", output_text(&o));

    let o = std::process::Command::new("h2load")
        .args(["-n", "2000", "-c", "16", "-m", "10", &h.https_url("/1k.bin")])
        .output()
        .unwrap();
    let text = output_text(&o);
    assert!(text.contains("2000 succeeded, 0 failed, 0 errored, 0 timeout"), "{text}");
    assert!(text.contains("Application protocol: h2"), "{text}");
    h.assert_no_crash();
}

/// One certificate for every name, so that only the vhosts' TLS policies differ: free.test (the
/// address's default), twin.test (identical settings), and one vhost per policy a client without
/// SNI must not get around.
fn boundary_server() -> Httpd {
    let mut h = Httpd::new();
    h.log_level = "warn".into();
    let names = ["free.test", "twin.test", "auth.test", "v13.test", "suites.test"];
    let (cert, key) = h.pki.issue(&names, &rcgen::PKCS_ECDSA_P256_SHA256);
    h.write("conf/all.pem", cert);
    h.write("conf/all.key", key);
    h.write("conf/clientca.pem", &h.pki.ca_pem);
    h.extra = format!("LoadModule http2_module {MODDIR}/mod_http2.so\nProtocols h2 http/1.1\n");
    let mut blocks = String::new();
    for (name, policy) in [
        ("free.test", ""),
        ("twin.test", ""),
        ("auth.test", "  TLSClientCertificate required\n  TLSClientCA conf/clientca.pem"),
        ("v13.test", "  TLSProtocol v1.3+"),
        ("suites.test", "  TLSCiphersSuppress TLS_AES_128_GCM_SHA256"),
    ] {
        h.write(&format!("htdocs/{name}/index.html"), format!("{name}\n"));
        blocks += &vhost_block(h.tls_port, name, "conf/all.pem", "conf/all.key", policy);
    }
    h.tls_vhost = Some(blocks);
    h
}

fn without_sni(h: &Httpd, versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<rustls::ClientConfig> {
    Arc::new(h.pki.client_config_with(versions, |_| {}, |c| c.enable_sni = false))
}

/// One GET on a kept-alive connection: (status, body).
fn get_keep_alive(
    s: &mut rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
    host: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes()).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_lowercase();
            let len: usize =
                head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
            if raw.len() >= end + 4 + len {
                let r = Response::parse(&raw).0;
                return (r.status, r.text());
            }
        }
        let n = s.read(&mut buf).expect("response");
        assert!(n > 0, "connection closed before the response to {host} was complete");
        raw.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn without_sni_a_host_with_other_tls_settings_gets_421() {
    let mut h = boundary_server();
    h.start();
    for versions in [TLS13, TLS12] {
        for (host, status) in
            [("free.test", 200), ("twin.test", 200), ("auth.test", 421), ("v13.test", 421), ("suites.test", 421)]
        {
            // The handshake runs with free.test's settings (the default vhost): no client
            // certificate asked for, TLS 1.2 allowed, all suites.
            let mut s = tls_connect(h.tls_port, "free.test", without_sni(&h, versions));
            let r = get_on(&mut s, "/", host);
            assert_eq!(r.status, status, "no SNI, {versions:?}, Host {host}: {}", r.text());
            if status == 200 {
                assert_eq!(r.text(), format!("{host}\n"));
            } else {
                assert!(!r.text().contains(host), "none of {host}'s content");
            }
        }
    }
    // Logged at error (this server runs at LogLevel warn), with the number and both sides.
    let log = h.log_when("logs/error.log", |l| l.matches("AH10345").count() >= 6);
    let line = log.lines().find(|l| l.contains("AH10345") && l.contains("'auth.test'")).expect("AH10345 for auth.test");
    assert!(line.contains(":error]") && line.contains("no SNI") && line.contains("free.test"), "{line}");
    h.assert_no_crash();
}

#[test]
fn every_request_of_a_keep_alive_connection_is_checked() {
    let mut h = boundary_server();
    h.start();
    for cfg in [without_sni(&h, TLS13), h.pki.client_config(TLS13)] {
        let mut s = tls_connect(h.tls_port, "free.test", cfg);
        assert_eq!(get_keep_alive(&mut s, "free.test"), (200, "free.test\n".into()));
        assert_eq!(get_keep_alive(&mut s, "twin.test"), (200, "twin.test\n".into()));
        // httpd ends the connection after a request refused this early (post_read_request).
        assert_eq!(get_keep_alive(&mut s, "auth.test").0, 421, "third request, other Host");
    }
}

#[test]
fn every_http2_stream_is_checked() {
    let mut h = boundary_server();
    h.start();
    let port = h.tls_port;
    // Streams one after the other on one HTTP/2 connection (curl reuses it: num_connects 0),
    // each with the :authority its Host header gives. To the address (no SNI), and with SNI.
    let resolve = format!("free.test:{port}:127.0.0.1");
    for (url, extra) in [
        (format!("https://127.0.0.1:{port}/"), None),
        (format!("https://free.test:{port}/"), Some(["--resolve", resolve.as_str()])),
    ] {
        let mut args: Vec<String> = Vec::new();
        for (i, host) in ["free.test", "twin.test", "auth.test", "v13.test", "free.test"].iter().enumerate() {
            if i > 0 {
                args.push("--next".into());
            }
            args.extend(["--http2", "-k", "-o", "/dev/null", "-H"].map(String::from));
            args.push(format!("Host: {host}"));
            args.extend(extra.iter().flatten().map(|s| s.to_string()));
            args.extend(["-w", "%{http_version} %{http_code} %{num_connects}\n"].map(String::from));
            args.push(url.clone());
        }
        let o = std::process::Command::new("curl").arg("-sS").args(&args).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "2 200 1\n2 200 0\n2 421 0\n2 421 0\n2 200 0\n",
            "{url}: {}",
            output_text(&o)
        );
    }
    assert!(h.error_log().contains("AH10345"), "{}", h.error_log());
    h.assert_no_crash();
}

/// An address with a single vhost serves every name with it, as mod_ssl does (a package's default
/// site answers `localhost` and the machine's names): strict SNI guards addresses where an
/// unknown name could reach the wrong one of several vhosts.
#[test]
fn an_address_with_one_vhost_serves_every_name() {
    let mut h = Httpd::new();
    h.log_level = "warn".into();
    h.start();
    let port = h.tls_port;
    let o =
        h.curl(&["-k", "--resolve", &format!("other.test:{port}:127.0.0.1"), &format!("https://other.test:{port}/")]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello over TLS\n", "{}", output_text(&o));
    assert!(!h.error_log().contains("AH10353"), "{}", h.error_log());
}

/// One request on a kept-alive connection, TLS or not: (status, body). `host` None sends an
/// HTTP/1.0 request without `Host` (the server then closes the connection).
fn ask<S: std::io::Read + std::io::Write>(s: &mut S, path: &str, host: Option<&str>) -> (u16, String) {
    let request = match host {
        Some(host) => format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        None => format!("GET {path} HTTP/1.0\r\n\r\n"),
    };
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_lowercase();
            let len = head.lines().find_map(|l| l.strip_prefix("content-length:")).map(|v| v.trim().parse().unwrap());
            if len.is_some_and(|len: usize| raw.len() >= end + 4 + len) {
                let r = Response::parse(&raw).0;
                return (r.status, r.text());
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => {
                let r = Response::parse(&raw).0;
                return (r.status, r.text());
            }
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
}

/// The vhost that serves a request over TLS is the one httpd chooses for the same request without
/// TLS, whatever the SNI: the handshake's vhost is looked at first by httpd's `Host` matching only
/// where that cannot change the answer (it owns its names), and every other vhost is as before.
#[test]
fn a_request_gets_the_vhost_httpd_would_choose_whatever_the_sni() {
    let mut h = Httpd::new();
    // The same vhosts, in the same order, on the TLS port and on the plain one.
    let vhosts: &[(&str, &str)] = &[
        ("first.test", ""),
        ("a.test", "ServerAlias shared.test"),
        ("b.test", "ServerAlias shared.test b2.test"),
        ("wild.test", "ServerAlias *.w.test"),
        ("x.w.test", ""),
        ("c.test", "ServerAlias c2.test"),
        ("path.test", "ServerPath /pathed"),
        ("pat.test", "ServerAlias p?.test"),
        ("p1.test", ""),
        ("last.test", ""),
    ];
    let mut sans: Vec<&str> = vhosts.iter().map(|(n, _)| *n).collect();
    sans.extend(["shared.test", "b2.test", "y.w.test", "c2.test", "p2.test"]);
    let (cert, key) = h.pki.issue(&sans, &rcgen::PKCS_ECDSA_P256_SHA256);
    h.write("conf/all.pem", cert);
    h.write("conf/all.key", key);
    let mut blocks = String::new();
    for port in [h.tls_port, h.plain_port] {
        for (name, extra) in vhosts {
            h.write(&format!("htdocs/{name}/index.html"), format!("{name}\n"));
            h.write(&format!("htdocs/{name}/pathed/index.html"), format!("{name} pathed\n"));
            let tls = if port == h.tls_port { "  TLSCertificate conf/all.pem conf/all.key\n" } else { "" };
            blocks += &format!(
                "<VirtualHost 127.0.0.1:{port}>\n  ServerName {name}\n  {extra}\n{tls}  DocumentRoot \"htdocs/{name}\"\n</VirtualHost>\n"
            );
        }
    }
    h.tls_vhost = Some(blocks);
    h.start();
    let hosts = [
        "first.test",
        "a.test",
        "A.TEST",
        "shared.test",
        "b.test",
        "b2.test",
        "wild.test",
        "x.w.test",
        "y.w.test",
        "c.test",
        "c2.test.",
        &format!("c.test:{}", h.tls_port),
        "path.test",
        "p1.test",
        "p2.test",
        "last.test",
        "nothing.test",
        "127.0.0.1",
    ];
    let plain = |path: &str, host: Option<&str>| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", h.plain_port)).unwrap();
        ask(&mut s, path, host)
    };
    let config = h.pki.client_config(&[&rustls::version::TLS13]);
    for (sni, _) in vhosts.iter().chain(&[("shared.test", ""), ("y.w.test", ""), ("c2.test", "")]) {
        // Every Host on one kept-alive connection: the choice is made per request.
        let mut s = tls_connect(h.tls_port, sni, config.clone());
        for host in hosts {
            for path in ["/", "/pathed/"] {
                let plain_host = host.replace(&format!(":{}", h.tls_port), &format!(":{}", h.plain_port));
                let want = plain(path, Some(&plain_host));
                assert_eq!(want.0, 200, "plain httpd serves {plain_host}{path}");
                let got = ask(&mut s, path, Some(host));
                assert_eq!(got, want, "SNI {sni}, Host {host}, {path}: TLS and plain httpd chose different vhosts");
            }
        }
        // Without Host, httpd matches ServerPath instead.
        let mut s = tls_connect(h.tls_port, sni, config.clone());
        let want = plain("/pathed/", None);
        // (httpd serves what follows the ServerPath from the vhost's DocumentRoot.)
        assert_eq!(want, (200, "path.test\n".to_string()), "plain httpd matches ServerPath");
        assert_eq!(ask(&mut s, "/pathed/", None), want, "SNI {sni}, no Host");
    }
    // The owners were served by the vhost their SNI named (the shortcut's own case).
    for name in ["a.test", "c.test", "last.test"] {
        let mut s = tls_connect(h.tls_port, name, config.clone());
        assert_eq!(ask(&mut s, "/", Some(name)), (200, format!("{name}\n")));
    }
    h.assert_no_crash();
}
