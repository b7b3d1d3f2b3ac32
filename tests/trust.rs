//! Trust: a client identity never outlives its check (TLSUserName only from a verified
//! certificate, resumption re-checks the certificate and counts the session's life from its full
//! handshake), one ClientHello costs a bounded number of cache lookups, panics fail closed, an
//! h2 connection serves only vhosts that allow h2, and `?auto` names no files.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use rustls::HandshakeKind;

const STATUS: &str = "<Location /server-status>\n  SetHandler server-status\n</Location>\n";

fn status_module() -> String {
    format!("LoadModule status_module {MODDIR}/mod_status.so\n{STATUS}")
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A point in time `secs` after the epoch, as rcgen takes it (its date type is not re-exported).
macro_rules! at {
    ($secs:expr) => {
        rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs($secs)
    };
}

/// A client certificate from `ca` valid until `not_after` (seconds since the epoch): (PEM, key).
fn client_cert(ca: &Ca, cn: &str, serial: u64, not_after: u64) -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    params.serial_number = Some(rcgen::SerialNumber::from(serial));
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = at!(now_unix() - 3600);
    params.not_after = at!(not_after);
    let cert = params.signed_by(&key, &rcgen::Issuer::new(ca.params.clone(), &ca.key)).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A CRL of `ca` revoking nothing, whose nextUpdate is `next_update`.
fn crl_until(ca: &Ca, next_update: u64) -> String {
    let params = rcgen::CertificateRevocationListParams {
        this_update: at!(now_unix() - 3600),
        next_update: at!(next_update),
        crl_number: rcgen::SerialNumber::from(7u64),
        issuing_distribution_point: None,
        revoked_certs: Vec::new(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    params.signed_by(&rcgen::Issuer::new(ca.params.clone(), &ca.key)).unwrap().pem().unwrap()
}

/// GET / with `cfg` on `port`: the status and how the handshake went, or what the client saw.
fn get_kind(port: u16, cfg: &Arc<rustls::ClientConfig>) -> Result<(u16, HandshakeKind), String> {
    let mut s = try_tls_connect(port, "localhost", cfg.clone()).map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    Ok((Response::parse(&raw).0.status, s.conn.handshake_kind().unwrap()))
}

fn vhost_on(port: u16, body: &str) -> String {
    format!(
        "Listen 127.0.0.1:{port}\nTLSEngine 127.0.0.1:{port}\n<VirtualHost 127.0.0.1:{port}>\n  ServerName localhost\n  TLSCertificate conf/server.pem conf/server.key\n{body}</VirtualHost>\n"
    )
}

/// `TLSUserName` names the user only from a certificate that verified: under `optional_no_ca`
/// anyone's self-signed `CN=admin` is GENEROUS, and must not log in as admin.
#[test]
fn tls_user_name_only_from_a_verified_certificate() {
    let mut h = Httpd::new();
    ClientPki::new().install(&h);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "admin");
    let admin = params.self_signed(&key).unwrap();
    h.write("conf/client/admin.pem", admin.pem());
    h.write("conf/client/admin.key", key.serialize_pem());
    h.cgi("env.cgi", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nenv\n");
    h.tls_vhost = Some(h.localhost_vhost(
        "  TLSCertificate conf/server.pem conf/server.key\n  TLSClientCertificate optional_no_ca\n  \
         TLSClientCA conf/client/clientca.pem\n  TLSClientCRL conf/client/root.crl\n  TLSClientCRL conf/client/inter.crl\n  \
         TLSUserName SSL_CLIENT_S_DN_CN\n  TLSOptions +StdEnvVars",
    ));
    h.extra = "LogFormat \"%u %{SSL_CLIENT_VERIFY}x\" userlog\nCustomLog logs/user.log userlog\n".into();
    h.start();
    let env = |who: &str| {
        let mut s = tls_connect(h.tls_port, "localhost", client_config(&h, Some(who), TLS13));
        let r = get_on(&mut s, "/env.cgi", "localhost");
        assert_eq!(r.status, 200, "{who}");
        r.text()
    };
    let admin_env = env("admin");
    assert!(admin_env.contains("SSL_CLIENT_VERIFY=GENEROUS"), "{admin_env}");
    assert!(!admin_env.contains("REMOTE_USER="), "a self-signed certificate is no login: {admin_env}");
    let alice_env = env("alice");
    assert!(alice_env.contains("REMOTE_USER=alice"), "{alice_env}");
    let log = h.log_when("logs/user.log", |l| l.lines().count() >= 2);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines, ["- GENEROUS", "alice SUCCESS"], "%u as the server logged it");
}

/// A session carries the client certificate it was made with: at every resumption the
/// certificate is checked again, as a full handshake would check it now. A certificate that
/// expired, or whose CRL passed its nextUpdate, is refused (never served from the session).
#[test]
fn resumption_checks_the_client_certificate_again() {
    let crl_port = free_port();
    let mut h = Httpd::new();
    let root = Ca::new("Trust Root CA", None);
    let ends = now_unix() + 20;
    let (dana, dana_key) = client_cert(&root, "dana", 21, ends);
    let (erin, erin_key) = client_cert(&root, "erin", 22, now_unix() + 86400);
    for (name, data) in [
        ("ca.pem", root.cert.pem()),
        ("long.crl", crl_until(&root, now_unix() + 86400)),
        ("short.crl", crl_until(&root, ends)),
        ("dana.pem", dana),
        ("dana.key", dana_key),
        ("erin.pem", erin),
        ("erin.key", erin_key),
    ] {
        h.write(&format!("conf/client/{name}"), data);
    }
    let auth = |crl: &str| {
        format!("  TLSClientCertificate required\n  TLSClientCA conf/client/ca.pem\n  TLSClientCRL conf/client/{crl}\n")
    };
    h.tls_vhost =
        Some(h.localhost_vhost(&format!("  TLSCertificate conf/server.pem conf/server.key\n{}", auth("long.crl"))));
    h.extra = format!("{}{}", status_module(), vhost_on(crl_port, &auth("short.crl")));
    h.start();
    // dana's certificate ends in 20 s; erin's CRL on the second port too.
    let cases = [(h.tls_port, "dana"), (crl_port, "erin")];
    let mut clients = Vec::new();
    for versions in [TLS13, TLS12] {
        for (port, who) in cases {
            let cfg = client_config(&h, Some(who), versions);
            assert_eq!(get_kind(port, &cfg), Ok((200, HandshakeKind::Full)), "{who} {versions:?}");
            assert_eq!(get_kind(port, &cfg), Ok((200, HandshakeKind::Resumed)), "{who} {versions:?}: still valid");
            clients.push((port, who, versions, cfg));
        }
    }
    // A wait for the clock, not for the server: the certificate and the CRL must have lapsed.
    while now_unix() <= ends + 1 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let before = h.status_auto();
    for (port, who, versions, cfg) in &clients {
        let outcome = get_kind(*port, cfg);
        assert!(outcome.is_err(), "{who} {versions:?}: refused after the check lapsed, got {outcome:?}");
    }
    let after = h.status_auto();
    let refused = |m: &std::collections::BTreeMap<String, String>| -> u64 {
        m["TLSResumptionsRefused_ClientCert"].parse().unwrap()
    };
    assert_eq!(refused(&after) - refused(&before), 4, "each of the four sessions was refused: {after:?}");
    assert_eq!(before["TLSHandshakesResumed"], after["TLSHandshakesResumed"], "none resumed");
    h.assert_no_crash();
}

/// `TLSSessionCacheTimeout`: a session resumes for that long after its full handshake; the
/// tickets issued at resumptions do not extend it.
#[test]
fn session_lifetime_counts_from_the_full_handshake() {
    let mut h = Httpd::new();
    h.extra = "TLSSessionCacheTimeout 3\n".into();
    h.start();
    for versions in [TLS13, TLS12] {
        let cfg = h.pki.client_config(versions);
        let full = Instant::now();
        assert_eq!(get_kind(h.tls_port, &cfg), Ok((200, HandshakeKind::Full)));
        // Fixed waits: the session's age is what is tested (1.5 s: within the lifetime; then
        // past 3 s from the full handshake).
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(get_kind(h.tls_port, &cfg), Ok((200, HandshakeKind::Resumed)), "{versions:?}");
        std::thread::sleep(Duration::from_secs(3).saturating_sub(full.elapsed()) + Duration::from_millis(500));
        assert_eq!(
            get_kind(h.tls_port, &cfg),
            Ok((200, HandshakeKind::Full)),
            "{versions:?}: 3 s after the full handshake, whatever ticket the resumption gave"
        );
    }
    h.extra = "TLSSessionCacheTimeout 5m\n".into();
    assert_configtest_fails(&h, &["httpd.conf", "from 1 to 604800"]);
}

/// A TLS 1.3 ClientHello for localhost offering `n` pre-shared-key identities (tickets nobody
/// issued), split into records.
fn hello_with_identities(n: usize) -> Vec<u8> {
    fn ext(out: &mut Vec<u8>, kind: u16, body: &[u8]) {
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
    }
    let mut exts = Vec::new();
    let name = b"localhost";
    let mut sni = ((name.len() + 3) as u16).to_be_bytes().to_vec();
    sni.push(0);
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    ext(&mut exts, 0x0000, &sni);
    ext(&mut exts, 0x002b, &[2, 0x03, 0x04]);
    ext(&mut exts, 0x000a, &[0, 2, 0x00, 0x1d]);
    ext(&mut exts, 0x000d, &[0, 4, 0x04, 0x03, 0x08, 0x04]);
    let mut share = vec![0, 36, 0x00, 0x1d, 0, 32];
    share.extend((0..32u8).map(|i| i.wrapping_mul(7).wrapping_add(9)));
    ext(&mut exts, 0x0033, &share);
    ext(&mut exts, 0x002d, &[1, 1]);
    let mut identities = Vec::new();
    let mut binders = Vec::new();
    for i in 0..n as u64 {
        identities.extend_from_slice(&8u16.to_be_bytes());
        identities.extend_from_slice(&i.to_be_bytes());
        identities.extend_from_slice(&0u32.to_be_bytes());
        binders.push(32);
        binders.extend_from_slice(&[0xab; 32]);
    }
    let mut psk = (identities.len() as u16).to_be_bytes().to_vec();
    psk.extend_from_slice(&identities);
    psk.extend_from_slice(&(binders.len() as u16).to_be_bytes());
    psk.extend_from_slice(&binders);
    ext(&mut exts, 0x0029, &psk); // pre_shared_key comes last
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x42; 32]);
    body.push(32);
    body.extend_from_slice(&[0x17; 32]);
    body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut msg = vec![1];
    msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    msg.extend_from_slice(&body);
    let mut out = Vec::new();
    for chunk in msg.chunks(16384) {
        out.extend_from_slice(&[0x16, 0x03, 0x01]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// A hello offering 1,000 identities costs at most four lookups in the session cache; a normal
/// client still resumes.
#[test]
fn one_hello_costs_a_bounded_number_of_lookups() {
    let mut h = Httpd::new();
    h.extra = status_module();
    h.start();
    let value = |m: &std::collections::BTreeMap<String, String>, k: &str| -> u64 { m[k].parse().unwrap() };
    let before = h.status_auto();
    let mut s = TcpStream::connect(("127.0.0.1", h.tls_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&hello_with_identities(1000)).unwrap();
    let mut first = [0u8; 5];
    s.read_exact(&mut first).unwrap();
    assert_eq!(first[0], 0x16, "the server answered with a handshake (a full one)");
    drop(s);
    let after = poll_until(Duration::from_secs(10), "the capped lookups counted", || {
        let now = h.status_auto();
        if value(&now, "TLSSessionLookupsCapped") > value(&before, "TLSSessionLookupsCapped") {
            Ok(now)
        } else {
            Err(format!("{now:?}"))
        }
    });
    assert_eq!(value(&after, "TLSSessionLookups") - value(&before, "TLSSessionLookups"), 4, "{after:?}");
    assert_eq!(value(&after, "TLSSessionLookupsCapped") - value(&before, "TLSSessionLookupsCapped"), 996);
    let cfg = h.pki.client_config(TLS13);
    assert_eq!(get_kind(h.tls_port, &cfg), Ok((200, HandshakeKind::Full)));
    assert_eq!(get_kind(h.tls_port, &cfg), Ok((200, HandshakeKind::Resumed)));
    // What monitoring collects names no file: not the cache's, not the vhost's configuration.
    let page = h.status_auto_all();
    assert_eq!(page["TLSSessionCache"], "shmcb");
    assert!(page.values().all(|v| !v.contains(&h.root.display().to_string())), "{page:?}");
    assert!(page["TLSCertificate0"].starts_with("vhost=localhost;"), "{page:?}");
    h.assert_no_crash();
}

/// A panic in post_read_request (which holds the 421, plain-HTTP and mod_md gates) answers 500
/// with none of the content, logs the panic at error and counts it.
#[test]
fn a_panic_in_a_request_hook_fails_closed() {
    let mut h = Httpd::new();
    ClientPki::new().install(&h);
    h.tls_vhost = Some(h.localhost_vhost(
        "  TLSCertificate conf/server.pem conf/server.key\n  TLSClientCertificate required\n  \
         TLSClientCA conf/client/clientca.pem\n  TLSClientCRL conf/client/root.crl\n  TLSClientCRL conf/client/inter.crl\n",
    ));
    h.extra = status_module();
    h.env.push(("MOD_TLS_TEST_PANIC_REQUEST".into(), "localhost".into()));
    h.start();
    let mut s = tls_connect(h.tls_port, "localhost", client_config(&h, Some("alice"), TLS13));
    let r = get_on(&mut s, "/index.html", "localhost");
    assert_eq!(r.status, 500);
    assert!(!r.text().contains("hello over TLS"), "{}", r.text());
    let log = h.log_when("logs/error.log", |l| l.contains("test panic requested in post_read_request"));
    assert!(log.contains("[tls:error]") && log.contains("answering 500"), "{log}");
    assert_eq!(h.status_auto()["TLSPanics"], "1");
    // The child went on serving: the same client, another request, the same answer.
    let mut s = tls_connect(h.tls_port, "localhost", client_config(&h, Some("alice"), TLS13));
    assert_eq!(get_on(&mut s, "/index.html", "localhost").status, 500);
    let log = h.error_log();
    assert!(!log.contains("exit signal") && !log.contains("Segmentation"), "{log}");
}

/// A panic while merging a vhost's configuration leaves it without one: start-up stops with a
/// message saying so, instead of reading a missing configuration later.
#[test]
fn a_panic_while_merging_stops_start_up() {
    let h = Httpd::new();
    // The configuration itself is fine.
    assert_configtest_passes(&h);
    let o = Command::new(HTTPD)
        .args(["-t", "-f"])
        .arg(h.path("conf/httpd.conf"))
        .env("MOD_TLS_TEST_PANIC_MERGE", "1")
        .output()
        .unwrap();
    let text = assert_configtest_fails(&o, &["could not be made", "test panic requested in merge_server"]);
    assert!(o.status.code().is_some(), "exited, not killed by a signal: {text}");
}

/// An h2 connection made for a vhost that allows h2 does not serve a stream for a vhost with the
/// same TLS settings whose `Protocols` leaves h2 out: 421, as for other TLS settings.
#[test]
fn an_h2_connection_serves_only_vhosts_that_allow_h2() {
    let mut h = Httpd::new();
    let (cert, key) = h.pki.issue(&["a.test", "b.test"], &rcgen::PKCS_ECDSA_P256_SHA256);
    h.write("conf/ab.pem", cert);
    h.write("conf/ab.key", key);
    h.write("htdocs/a.test/index.html", "site a\n");
    h.write("htdocs/b.test/index.html", "site b\n");
    let port = h.tls_port;
    h.tls_vhost = Some(format!(
        "{}{}",
        vhost_block(port, "a.test", "conf/ab.pem", "conf/ab.key", "  Protocols h2 http/1.1"),
        vhost_block(port, "b.test", "conf/ab.pem", "conf/ab.key", "  Protocols http/1.1"),
    ));
    h.extra = format!("LoadModule http2_module {MODDIR}/mod_http2.so\n");
    h.start();
    let resolve = [format!("a.test:{port}:127.0.0.1"), format!("b.test:{port}:127.0.0.1")];
    let ask = |host: &str| {
        let o = h.curl(&[
            "--http2",
            "--resolve",
            &resolve[0],
            "--resolve",
            &resolve[1],
            "-H",
            &format!("Host: {host}"),
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            &format!("https://a.test:{port}/index.html"),
        ]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(ask("a.test"), "2 200", "a allows h2");
    assert_eq!(ask("b.test"), "2 421", "b does not");
    // Over HTTP/1.1 both are served on a connection made for a (same TLS settings).
    let o = h.curl(&[
        "--http1.1",
        "--resolve",
        &resolve[0],
        "-H",
        "Host: b.test",
        &format!("https://a.test:{port}/index.html"),
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "site b\n");
    h.assert_no_crash();
}
