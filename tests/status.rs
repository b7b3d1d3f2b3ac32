//! The TLS part of mod_status's server-status page: handshakes by version, suite, group, full or
//! resumed, failures by reason and 421 answers, summed over all children of the generation, and
//! the certificates each vhost serves.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::*;

/// The `?auto` lines with every certificate, asked over plain HTTP so that asking adds no
/// handshake.
fn status(h: &Httpd) -> HashMap<String, String> {
    let o = h.curl(&["-s", &format!("http://127.0.0.1:{}/server-status?auto&certificates", h.plain_port)]);
    output_text(&o).lines().filter_map(|l| l.split_once(": ").map(|(k, v)| (k.to_string(), v.to_string()))).collect()
}

#[test]
fn status_page_counts_handshakes_failures_and_421() {
    let mut h = Httpd::new();
    let port = h.tls_port;
    let (cert, key) = h.pki.issue(&["other.test"], &rcgen::PKCS_ECDSA_P256_SHA256);
    h.write("conf/other.pem", cert);
    h.write("conf/other.key", key);
    h.tls_vhost = Some(format!(
        "{}{}",
        h.localhost_vhost("  TLSCertificate conf/server.pem conf/server.key"),
        vhost_block(port, "other.test", "conf/other.pem", "conf/other.key", "  TLSProtocol v1.3+")
    ));
    h.extra = format!(
        "LoadModule status_module {MODDIR}/mod_status.so\n<Location /server-status>\n  SetHandler server-status\n</Location>\n\
         Timeout 2\n"
    );
    h.start();
    let before = status(&h);
    assert_eq!(before["TLSHandshakes"], "0", "{before:?}");

    // Two full TLS 1.3 handshakes (one then resumed), one full TLS 1.2, one whose request is 421.
    let tls13 = h.pki.client_config(TLS13);
    let mut s = tls_connect(port, "localhost", tls13.clone());
    assert_eq!(get_on(&mut s, "/index.html", "localhost").status, 200);
    let mut s = tls_connect(port, "localhost", tls13);
    assert_eq!(s.conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
    assert_eq!(get_on(&mut s, "/index.html", "localhost").status, 200);
    let mut s = tls_connect(port, "localhost", h.pki.client_config(TLS12));
    assert_eq!(get_on(&mut s, "/index.html", "localhost").status, 200);
    let mut s = tls_connect(port, "localhost", h.pki.client_config(TLS13));
    assert_eq!(get_on(&mut s, "/", "other.test").status, 421);

    // Failures: an SNI nobody serves, a client that refuses our certificate, plain HTTP, and one
    // that stalls after two bytes until httpd's Timeout (2 s) ends it.
    assert!(try_tls_connect(port, "unknown.test", h.pki.client_config(TLS13)).is_err());
    let stranger = Pki::new().client_config(TLS13);
    assert!(try_tls_connect(port, "localhost", stranger).is_err());
    let o = h.curl(&["-s", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://127.0.0.1:{port}/")]);
    assert_eq!(output_text(&o).trim(), "400");
    let mut stall = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stall.write_all(&[0x16, 0x03]).unwrap();
    // One that sends its hello and leaves without a word; and one that leaves before saying anything.
    let hello = {
        let cfg = h.pki.client_config(TLS13);
        let mut c = rustls::ClientConnection::new(cfg, "localhost".try_into().unwrap()).unwrap();
        let mut hello = Vec::new();
        c.write_tls(&mut hello).unwrap();
        hello
    };
    let mut leaver = TcpStream::connect(("127.0.0.1", port)).unwrap();
    leaver.write_all(&hello).unwrap();
    let mut answer = [0u8; 5];
    std::io::Read::read_exact(&mut leaver, &mut answer).unwrap();
    drop(leaver);
    drop(TcpStream::connect(("127.0.0.1", port)).unwrap());
    let st =
        poll_until_every(Duration::from_secs(10), Duration::from_millis(200), "the stalled handshake counted", || {
            let st = status(&h);
            if st.get("TLSHandshakeFailures_Timeout").map(String::as_str) == Some("1") {
                Ok(st)
            } else {
                Err(format!("{st:?}"))
            }
        });
    let v = |k: &str| st.get(k).map(String::as_str).unwrap_or("(missing)");
    assert_eq!((v("TLSHandshakes"), v("TLSHandshakesFull"), v("TLSHandshakesResumed")), ("4", "3", "1"), "{st:?}");
    assert_eq!(v("TLSResumptionRate"), "0.250");
    assert_eq!((v("TLSHandshakesTLSv1_3"), v("TLSHandshakesTLSv1_2")), ("3", "1"));
    assert_eq!(v("TLSHandshakesSuite_TLS13_AES_256_GCM_SHA384"), "3", "{st:?}");
    assert_eq!(v("TLSHandshakesSuite_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"), "1", "{st:?}");
    assert_eq!(v("TLSHandshakesGroup_X25519MLKEM768"), "3", "post-quantum by default in TLS 1.3: {st:?}");
    assert_eq!(v("TLSHandshakesGroup_X25519"), "1", "{st:?}");
    assert_eq!(v("TLSHandshakeFailures"), "5", "a client that leaves before its hello is not counted: {st:?}");
    for k in ["SNIRefused", "AlertReceived", "PlainHTTP", "Timeout", "ClientClosed"] {
        assert_eq!(v(&format!("TLSHandshakeFailures_{k}")), "1", "{k}: {st:?}");
    }
    assert_eq!(v("TLSMisdirected421"), "1");
    assert!(v("TLSCountingSince").parse::<u64>().is_ok());
    // Each vhost's certificate, with its subject, key type and days left.
    let numbered = |k: &str| k.strip_prefix("TLSCertificate").is_some_and(|n| n.parse::<u32>().is_ok());
    let certs: Vec<&String> = st.iter().filter(|(k, _)| numbered(k)).map(|(_, v)| v).collect();
    assert_eq!(certs.len(), 2, "{certs:?}");
    assert!(
        certs.iter().any(|c| c.contains("other.test") && c.contains("key=id-ecPublicKey") && c.contains("days_left=")),
        "{certs:?}"
    );
    assert!(st.contains_key("TLSSessionCache"), "{st:?}");
    drop(stall);

    // The HTML page shows the same.
    let o = h.curl(&["-s", &format!("http://127.0.0.1:{}/server-status", h.plain_port)]);
    let html = output_text(&o);
    assert!(html.contains("<h2>TLS (mod_tls)</h2>") && html.contains("TLSHandshakeFailures_SNIRefused"), "{html}");
}

/// A client that stalls mid-hello is counted once as a timeout under every MPM: the event MPM
/// closes it from its poller, worker and prefork when the blocking read times out.
#[test]
fn stalled_handshakes_count_as_timeouts_under_every_mpm() {
    for mpm in ["event", "worker", "prefork"] {
        let mut h = Httpd::new();
        h.mpm = mpm;
        h.extra = format!(
            "LoadModule status_module {MODDIR}/mod_status.so\n<Location /server-status>\n  SetHandler server-status\n</Location>\n\
             Timeout 1\n"
        );
        h.start();
        let mut stall = TcpStream::connect(("127.0.0.1", h.tls_port)).unwrap();
        stall.write_all(&[0x16, 0x03, 0x01]).unwrap();
        let what = format!("{mpm}: the stalled handshake counted");
        let st = poll_until_every(Duration::from_secs(10), Duration::from_millis(200), what, || {
            let st = status(&h);
            if st.get("TLSHandshakeFailures_Timeout").map(String::as_str) == Some("1") {
                Ok(st)
            } else {
                Err(format!("{st:?}"))
            }
        });
        assert_eq!(st["TLSHandshakeFailures"], "1", "{mpm}: {st:?}");
        drop(stall);
    }
}

/// `?auto` stays small with many vhosts: certificate totals, and a line only for a certificate
/// that needs attention (here one that expires in 10 days); `?auto&certificates` lists all.
#[test]
fn auto_lists_only_certificates_that_need_attention() {
    let mut h = Httpd::new();
    let port = h.tls_port;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["soon.test".to_string()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "soon.test");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    params.not_before = rcgen::date_time_ymd(1970, 1, 1) + (now - Duration::from_secs(86_400));
    params.not_after = rcgen::date_time_ymd(1970, 1, 1) + (now + Duration::from_secs(10 * 86_400 + 3600));
    let cert = params.self_signed(&key).unwrap();
    h.write("conf/soon.pem", cert.pem());
    h.write("conf/soon.key", key.serialize_pem());
    h.tls_vhost = Some(format!(
        "{}{}",
        h.localhost_vhost("  TLSCertificate conf/server.pem conf/server.key"),
        vhost_block(port, "soon.test", "conf/soon.pem", "conf/soon.key", "")
    ));
    h.extra = format!(
        "LoadModule status_module {MODDIR}/mod_status.so\n<Location /server-status>\n  SetHandler server-status\n</Location>\n"
    );
    h.start();
    let auto = h.status_auto();
    assert_eq!(auto["TLSCertificates"], "2", "{auto:?}");
    assert_eq!(auto["TLSCertificateDaysLeftMin"], "10", "{auto:?}");
    assert_eq!((auto["TLSCertificatesExpiring"].as_str(), auto["TLSCertificatesExpired"].as_str()), ("1", "0"));
    let numbered = |m: &std::collections::BTreeMap<String, String>| -> Vec<(String, String)> {
        m.iter()
            .filter(|(k, _)| k.strip_prefix("TLSCertificate").is_some_and(|n| n.parse::<u32>().is_ok()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let listed = numbered(&auto);
    assert_eq!(listed.len(), 1, "localhost's certificate needs nothing: {listed:?}");
    assert!(listed[0].1.starts_with("vhost=soon.test;") && listed[0].1.contains("days_left=10 (renew!)"), "{listed:?}");
    let all = numbered(&h.status_auto_all());
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.iter().any(|(_, v)| v.starts_with("vhost=localhost;")), "{all:?}");
    assert!(all.contains(&listed[0]), "the same number either way: {all:?}");
}
