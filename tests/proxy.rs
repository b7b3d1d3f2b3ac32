//! TLS to backends for mod_proxy (TLSProxy*), against real backends on loopback.

mod common;

use std::time::Duration;

use common::*;

fn proxy_modules() -> String {
    format!(
        "LoadModule proxy_module {MODDIR}/mod_proxy.so\nLoadModule proxy_http_module {MODDIR}/mod_proxy_http.so\n\
         LoadModule proxy_http2_module {MODDIR}/mod_proxy_http2.so\n"
    )
}

/// A backend served by this module, logging the protocol, suite and resumption of each request.
fn backend(extra: &str) -> Httpd {
    let mut b = Httpd::new();
    b.write("htdocs/index.html", "backend says hi\n");
    b.extra = format!(
        "TLSOptions StdEnvVars\nLogFormat \"%r|%{{SSL_CIPHER}}e|%{{SSL_SESSION_RESUMED}}e\" blog\nCustomLog logs/backend.log blog\n{extra}"
    );
    b.start();
    b
}

/// The backend's access log once it has at least `lines` lines (see `Httpd::log_when`).
fn backend_log(b: &Httpd, lines: usize) -> Vec<String> {
    b.log_when("logs/backend.log", |t| t.lines().count() >= lines).lines().map(str::to_string).collect()
}

fn front_get(front: &Httpd, path: &str) -> (u16, String) {
    let (r, _) = front.get(path, TLS13);
    (r.status, r.text())
}

#[test]
fn proxies_to_backends_verifying_name_ip_and_ca_and_resuming() {
    let good = backend("");
    let stranger = backend(""); // its certificate comes from another CA
    let mut misnamed = Httpd::new();
    let (cert, key) = misnamed.pki.issue(&["other.test"], &rcgen::PKCS_ECDSA_P256_SHA256);
    misnamed.write("conf/server.pem", cert);
    misnamed.write("conf/server.key", key);
    misnamed.start();
    let mut expired = Httpd::new();
    let (cert, key) = expired.pki.issue_expired(&["localhost"]);
    expired.write("conf/server.pem", cert);
    expired.write("conf/server.key", key);
    expired.start();

    let ca = good.path("conf/ca.pem").display().to_string();
    let (g, s, m, x) = (good.tls_port, stranger.tls_port, misnamed.tls_port, expired.tls_port);
    let mut front = Httpd::new();
    front.extra = format!(
        "{modules}\
         ProxyPass /b/ https://localhost:{g}/ disablereuse=on\n\
         ProxyPass /ip/ https://127.0.0.1:{g}/\n\
         ProxyPass /stranger/ https://localhost:{s}/\n\
         ProxyPass /misnamed/ https://localhost:{m}/\n\
         ProxyPass /expired/ https://localhost:{x}/\n\
         <Proxy \"https://localhost:{g}/\">\n  TLSProxyEngine on\n  TLSProxyCA {ca}\n\
           TLSProxyCiphersSuppress TLS_AES_256_GCM_SHA384 TLS_AES_128_GCM_SHA256\n</Proxy>\n\
         <Proxy \"https://127.0.0.1:{g}/\">\n  TLSProxyEngine on\n  TLSProxyCA {ca}\n</Proxy>\n\
         <Proxy \"https://localhost:{s}/\">\n  TLSProxyEngine on\n  TLSProxyCA {ca}\n</Proxy>\n\
         <Proxy \"https://localhost:{m}/\">\n  TLSProxyEngine on\n  TLSProxyCA {mca}\n</Proxy>\n\
         <Proxy \"https://localhost:{x}/\">\n  TLSProxyEngine on\n  TLSProxyCA {xca}\n</Proxy>\n\
         LoadModule status_module {MODDIR}/mod_status.so\n<Location /server-status>\n  SetHandler server-status\n</Location>\n",
        modules = proxy_modules(),
        mca = misnamed.path("conf/ca.pem").display(),
        xca = expired.path("conf/ca.pem").display(),
    );
    front.start();

    for _ in 0..6 {
        assert_eq!(front_get(&front, "/b/index.html"), (200, "backend says hi\n".into()));
    }
    assert_eq!(front_get(&front, "/ip/index.html"), (200, "backend says hi\n".into()), "IP backend, IP SAN");
    let log = backend_log(&good, 7);
    let via_b: Vec<&String> =
        log.iter().filter(|l| l.starts_with("GET /index.html") && l.contains("CHACHA20")).collect();
    assert!(via_b.len() >= 6, "the section's suite settings were used:\n{log:?}");
    assert!(via_b.iter().filter(|l| l.ends_with("|Resumed")).count() >= 3, "backend sessions resume:\n{log:?}");

    assert_eq!(front_get(&front, "/stranger/index.html").0, 500);
    assert_eq!(front_get(&front, "/misnamed/index.html").0, 500);
    assert_eq!(front_get(&front, "/expired/index.html").0, 500);
    let errors = front.error_log();
    assert!(errors.contains("TLS handshake failed with backend localhost"), "{errors}");
    // The stranger's CA has the same name as the trusted one but not its key.
    assert!(errors.contains("invalid peer certificate: BadSignature"), "untrusted backend explained:\n{errors}");
    assert!(errors.contains("certificate not valid for name \"localhost\""), "wrong name explained:\n{errors}");
    assert!(errors.contains("invalid peer certificate: certificate expired"), "expired backend explained:\n{errors}");
    assert!(!errors.contains("AH01961"), "every bind of a backend connection was taken:\n{errors}");
    // The status page counts the backend handshakes: 6 + 1 made, of which some resumed, 3 failed.
    let o = front.curl(&["-s", &format!("http://127.0.0.1:{}/server-status?auto", front.plain_port)]);
    let page = output_text(&o);
    let v = |k: &str| -> u64 {
        page.lines().find_map(|l| l.strip_prefix(&format!("{k}: "))).and_then(|v| v.parse().ok()).unwrap_or(u64::MAX)
    };
    assert_eq!(v("TLSBackendHandshakes"), 7, "{page}");
    assert!((3..7).contains(&v("TLSBackendHandshakesResumed")), "{page}");
    assert_eq!(v("TLSBackendHandshakeFailures"), 3, "{page}");
    front.assert_no_crash();
}

#[test]
fn machine_certificate_for_a_mod_ssl_backend_that_requires_one() {
    let mut front = Httpd::new();
    // The backend: mod_ssl, requiring client certificates from the front's CA.
    let mut b = Httpd::new();
    std::fs::copy(front.path("conf/ca.pem"), b.path("conf/front-ca.pem")).unwrap();
    let sslport = free_port();
    b.extra = format!(
        "LoadModule ssl_module {MODDIR}/mod_ssl.so\nListen 127.0.0.1:{sslport}\n\
         <VirtualHost 127.0.0.1:{sslport}>\n  ServerName localhost\n  SSLEngine on\n  SSLCertificateFile conf/server.pem\n  \
         SSLCertificateKeyFile conf/server.key\n  SSLVerifyClient require\n  SSLCACertificateFile conf/front-ca.pem\n</VirtualHost>\n"
    );
    b.write("htdocs/index.html", "mod_ssl backend\n");
    b.start();
    let (mcert, mkey) = front.pki.issue(&["front.test"], &rcgen::PKCS_ECDSA_P256_SHA256);
    front.write("conf/machine.pem", mcert);
    front.write("conf/machine.key", mkey);
    let ca = b.path("conf/ca.pem").display().to_string();
    front.extra = format!(
        "{modules}ProxyPass /with/ https://localhost:{sslport}/\nProxyPass /without/ https://127.0.0.1:{sslport}/\n\
         <Proxy \"https://localhost:{sslport}/\">\n  TLSProxyEngine on\n  TLSProxyCA {ca}\n  TLSProxyMachineCertificate conf/machine.pem conf/machine.key\n</Proxy>\n\
         <Proxy \"https://127.0.0.1:{sslport}/\">\n  TLSProxyEngine on\n  TLSProxyCA {ca}\n</Proxy>\n",
        modules = proxy_modules()
    );
    front.start();
    assert_eq!(front_get(&front, "/with/index.html"), (200, "mod_ssl backend\n".into()));
    // TLS 1.3: our handshake completed, the backend refused us afterwards (so mod_ssl's front
    // answers 502 too, not the 500 of a failed handshake).
    assert_eq!(front_get(&front, "/without/index.html").0, 502);
}

#[test]
fn h2_backend_and_mod_ssl_proxying_beside_us() {
    let h2 = backend(&format!("LoadModule http2_module {MODDIR}/mod_http2.so\nProtocols h2 http/1.1\n"));
    let other = backend("");
    let mut front = Httpd::new();
    let (p2, po) = (h2.tls_port, other.tls_port);
    front.extra = format!(
        "{modules}LoadModule ssl_module {MODDIR}/mod_ssl.so\n\
         ProxyPass /h2/ h2://localhost:{p2}/\n\
         ProxyPass /ssl/ https://localhost:{po}/\n\
         <Proxy \"h2://localhost:{p2}/\">\n  TLSProxyEngine on\n  TLSProxyCA {ca2}\n</Proxy>\n\
         <Proxy \"https://localhost:{po}/\">\n  SSLProxyEngine on\n  SSLProxyCACertificateFile {cao}\n</Proxy>\n",
        modules = proxy_modules(),
        ca2 = h2.path("conf/ca.pem").display(),
        cao = other.path("conf/ca.pem").display(),
    );
    front.start();
    assert_eq!(front_get(&front, "/h2/index.html"), (200, "backend says hi\n".into()));
    let log = backend_log(&h2, 1);
    assert!(log.iter().any(|l| l.starts_with("GET /index.html HTTP/2.0")), "{log:?}");
    assert_eq!(front_get(&front, "/ssl/index.html"), (200, "backend says hi\n".into()), "mod_ssl's own backend");
    // mod_ssl's client (OpenSSL) picks AES-256-GCM: it was not us.
    let log = backend_log(&other, 1);
    assert!(log.iter().any(|l| l.contains("TLS_AES_256_GCM_SHA384")), "{log:?}");
    front.assert_no_crash();
}

#[test]
fn proxy_configuration_errors() {
    let mut h = Httpd::new();
    h.extra = format!(
        "{}<Proxy \"https://x.test/\">\n  TLSProxyEngine on\n  TLSProxyCA conf/nope.pem\n</Proxy>\n",
        proxy_modules()
    );
    assert_configtest_fails(&h, &["TLSProxyCA", "nope.pem"]);
    h.extra = format!("{}TLSProxyProtocol v1.4+\n", proxy_modules());
    assert_configtest_fails(&h, &["TLSProxyProtocol"]);
    h.extra = format!("{}TLSProxyCiphersPrefer NOPE\n", proxy_modules());
    assert_configtest_fails(&h, &["'NOPE'"]);
    // A directory of PEM files works as TLSProxyCA.
    std::fs::create_dir_all(h.path("conf/cas")).unwrap();
    std::fs::copy(h.path("conf/ca.pem"), h.path("conf/cas/one.pem")).unwrap();
    h.extra = format!("{}TLSProxyEngine on\nTLSProxyCA conf/cas\n", proxy_modules());
    assert_configtest_passes(&h);
}

/// A WebSocket echo server on plain TCP (the innermost backend), one thread per connection.
fn ws_echo_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || ws_echo(stream));
        }
    });
    port
}

fn ws_echo(mut s: std::net::TcpStream) {
    use std::io::{Read, Write};
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let key = head
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ").or_else(|| l.strip_prefix("sec-websocket-key: ")))
        .unwrap_or("")
        .trim()
        .to_string();
    let _ = write!(
        s,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        ws_accept(&key)
    );
    while let Some((opcode, payload)) = ws_read_frame(&mut s) {
        if opcode == 8 {
            let _ = ws_write_frame(&mut s, 8, &[], false);
            return;
        }
        if ws_write_frame(&mut s, opcode, &payload, false).is_err() {
            return;
        }
    }
}

fn ws_accept(key: &str) -> String {
    use base64::Engine;
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

fn ws_read_frame(s: &mut impl std::io::Read) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).ok()?;
    let opcode = h[0] & 0x0f;
    let masked = h[1] & 0x80 != 0;
    let mut len = (h[1] & 0x7f) as u64;
    if len == 126 {
        let mut b = [0u8; 2];
        s.read_exact(&mut b).ok()?;
        len = u16::from_be_bytes(b) as u64;
    } else if len == 127 {
        let mut b = [0u8; 8];
        s.read_exact(&mut b).ok()?;
        len = u64::from_be_bytes(b);
    }
    let mut mask = [0u8; 4];
    if masked {
        s.read_exact(&mut mask).ok()?;
    }
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload).ok()?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Some((opcode, payload))
}

fn ws_write_frame(s: &mut impl std::io::Write, opcode: u8, payload: &[u8], mask: bool) -> std::io::Result<()> {
    let mut frame = vec![0x80 | opcode];
    let m = if mask { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => frame.push(m | n as u8),
        n if n < 65536 => {
            frame.push(m | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(m | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if mask {
        let key = [0x12u8, 0x34, 0x56, 0x78];
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        frame.extend_from_slice(payload);
    }
    s.write_all(&frame)?;
    s.flush()
}

#[test]
fn websockets_through_a_wss_backend_flow_both_ways() {
    use std::io::{Read, Write};
    let echo = ws_echo_server();
    // The TLS backend (this module) proxies to the plain echo server; the front to it over wss://.
    let mut backend = Httpd::new();
    backend.extra = format!("{}ProxyPass /ws ws://127.0.0.1:{echo}/ upgrade=websocket\n", proxy_modules());
    backend.start();
    let mut front = Httpd::new();
    let b = backend.tls_port;
    front.extra = format!(
        "{}ProxyPass /ws wss://localhost:{b}/ws upgrade=websocket\n\
         <Proxy \"wss://localhost:{b}/\">\n  TLSProxyEngine on\n  TLSProxyCA {}\n</Proxy>\n",
        proxy_modules(),
        backend.path("conf/ca.pem").display()
    );
    front.start();
    let mut s = front.tls_connect(TLS13);
    write!(
        s,
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "connection closed during the upgrade");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    // Small messages, a pause (the stream stays up), and 1 MiB each way.
    let big: Vec<u8> = (0..1024 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    for (i, msg) in [b"hello".to_vec(), b"again".to_vec(), big.clone(), b"after".to_vec()].into_iter().enumerate() {
        if i == 1 {
            // A fixed pause: what is tested is that the idle stream stays up.
            std::thread::sleep(Duration::from_secs(2));
        }
        ws_write_frame(&mut s, 2, &msg, true).unwrap();
        let (opcode, echoed) = ws_read_frame(&mut s).expect("echo");
        assert_eq!((opcode, echoed.len()), (2, msg.len()));
        assert!(echoed == msg, "message {i} came back intact");
    }
    ws_write_frame(&mut s, 8, &[], true).unwrap();
    front.assert_no_crash();
    backend.assert_no_crash();
}
