//! Client certificates with revocation checking: required/optional, CRLs for the whole chain,
//! variables, `Require expr`, TLSUserName, resumption keeping the identity.

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::sync::Arc;

use common::*;

/// GET `path` as `who`; Ok(response) or Err(what the client saw).
fn request(
    h: &Httpd,
    port: u16,
    who: Option<&str>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    path: &str,
) -> Result<Response, String> {
    let mut s = try_tls_connect(port, "localhost", client_config(h, who, versions)).map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    Ok(Response::parse(&raw).0)
}

fn env_of(r: &Response) -> std::collections::BTreeMap<String, String> {
    r.text().lines().filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))).collect()
}

fn server(optional_port: u16) -> Httpd {
    let mut h = Httpd::new();
    ClientPki::new().install(&h);
    h.cgi("env.cgi", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nenv\n");
    h.write("htdocs/org/index.html", "members only\n");
    let root = h.root.display().to_string();
    let auth = "  TLSClientCA conf/client/clientca.pem\n  TLSClientCRL conf/client/root.crl\n  TLSClientCRL conf/client/inter.crl\n";
    h.tls_vhost = Some(h.localhost_vhost(&format!(
        "  TLSCertificate conf/server.pem conf/server.key\n  TLSClientCertificate required\n{auth}  TLSUserName SSL_CLIENT_S_DN_CN"
    )));
    h.extra = format!(
        "TLSOptions StdEnvVars ExportCertData\n\
         LogFormat \"%u %{{SSL_CLIENT_VERIFY}}e\" authlog\nCustomLog logs/auth.log authlog\n\
         <Directory \"{root}/htdocs/org\">\n  Require expr \"%{{SSL_CLIENT_S_DN_O}} == 'Example'\"\n</Directory>\n\
         Listen 127.0.0.1:{optional_port}\nTLSEngine 127.0.0.1:{optional_port}\n\
         <VirtualHost 127.0.0.1:{optional_port}>\n  ServerName localhost\n  TLSCertificate conf/server.pem conf/server.key\n  \
         TLSClientCertificate optional\n{auth}</VirtualHost>\n"
    );
    h
}

#[test]
fn required_accepts_good_chains_and_refuses_the_rest_with_the_right_alert() {
    let opt = free_port();
    let mut h = server(opt);
    h.start();
    for versions in [TLS13, TLS12] {
        for who in ["alice", "carol"] {
            let r = request(&h, h.tls_port, Some(who), versions, "/env.cgi").unwrap_or_else(|e| panic!("{who}: {e}"));
            assert_eq!(r.status, 200, "{who}");
            let env = env_of(&r);
            assert_eq!(env["SSL_CLIENT_VERIFY"], "SUCCESS");
            assert_eq!(env["SSL_CLIENT_S_DN_CN"], who);
            assert_eq!(env["REMOTE_USER"], who, "TLSUserName");
        }
        for (who, alert) in [
            (None, "CertificateRequired"),
            (Some("mallory"), "UnknownCA"),
            (Some("eve"), "CertificateExpired"),
            (Some("bob"), "CertificateRevoked"),
        ] {
            let err = request(&h, h.tls_port, who, versions, "/env.cgi").expect_err("refused");
            assert!(err.contains(alert), "{who:?} {versions:?}: {err}");
        }
    }
    h.assert_no_crash();
}

#[test]
fn optional_allows_none_but_not_bad_ones() {
    let opt = free_port();
    let mut h = server(opt);
    h.start();
    let r = request(&h, opt, None, TLS13, "/env.cgi").unwrap();
    assert_eq!(env_of(&r)["SSL_CLIENT_VERIFY"], "NONE");
    let r = request(&h, opt, Some("alice"), TLS13, "/env.cgi").unwrap();
    assert_eq!(env_of(&r)["SSL_CLIENT_VERIFY"], "SUCCESS");
    for who in ["mallory", "bob", "eve"] {
        assert!(request(&h, opt, Some(who), TLS13, "/env.cgi").is_err(), "{who} refused");
    }
}

#[test]
fn variables_require_expr_log_and_resumption() {
    let opt = free_port();
    let mut h = server(opt);
    h.start();
    let cfg = client_config(&h, Some("alice"), TLS13);
    let mut s = tls_connect(h.tls_port, "localhost", cfg.clone());
    let env = env_of(&get_on(&mut s, "/env.cgi", "localhost"));
    assert_eq!(env["SSL_CLIENT_S_DN"], "O=Example,CN=alice");
    assert_eq!(env["SSL_CLIENT_I_DN"], "CN=Client Root CA");
    assert_eq!(env["SSL_CLIENT_I_DN_CN"], "Client Root CA");
    assert_eq!(env["SSL_CLIENT_S_DN_O"], "Example");
    assert_eq!(env["SSL_CLIENT_M_SERIAL"], "0B");
    assert_eq!(env["SSL_CLIENT_M_VERSION"], "3");
    assert_eq!(env["SSL_CLIENT_SAN_Email_0"], "alice@example.net");
    assert!(env["SSL_CLIENT_V_START"].ends_with(" GMT") && env["SSL_CLIENT_V_END"].ends_with(" GMT"));
    assert!(env["SSL_CLIENT_V_REMAIN"].parse::<u32>().unwrap() > 300);
    assert!(env["SSL_CLIENT_CERT"].starts_with("-----BEGIN CERTIFICATE-----"));
    // A resumed session keeps the identity of the full handshake.
    let mut s = tls_connect(h.tls_port, "localhost", cfg);
    let env = env_of(&get_on(&mut s, "/env.cgi", "localhost"));
    assert_eq!(s.conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
    assert_eq!((env["SSL_CLIENT_VERIFY"].as_str(), env["SSL_CLIENT_S_DN_CN"].as_str()), ("SUCCESS", "alice"));
    assert_eq!(env["SSL_SESSION_RESUMED"], "Resumed");

    // carol sent her intermediate: it is in the chain variables.
    let r = request(&h, h.tls_port, Some("carol"), TLS13, "/env.cgi").unwrap();
    assert!(env_of(&r)["SSL_CLIENT_CERT_CHAIN_0"].starts_with("-----BEGIN CERTIFICATE-----"));

    assert_eq!(request(&h, h.tls_port, Some("alice"), TLS13, "/org/").unwrap().status, 200);
    assert_eq!(request(&h, h.tls_port, Some("carol"), TLS13, "/org/").unwrap().status, 403);
    let both = |log: &str| log.lines().any(|l| l == "alice SUCCESS") && log.lines().any(|l| l == "carol SUCCESS");
    let log = h.log_when("logs/auth.log", both);
    assert!(both(&log), "{log}");
}

#[test]
fn curl_and_openssl_clients_with_certificates() {
    let opt = free_port();
    let mut h = server(opt);
    h.start();
    let cert = h.path("conf/client/alice.pem");
    let key = h.path("conf/client/alice.key");
    let o = h.curl(&["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap(), &h.https_url("/env.cgi")]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("SSL_CLIENT_S_DN_CN=alice"), "{}", output_text(&o));
    let o = h.curl(&[&h.https_url("/env.cgi")]);
    assert!(!o.status.success(), "curl without a certificate is refused");
    let o = s_client(h.tls_port)
        .arg("-quiet")
        .ca_file(h.path("conf/ca.pem"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin("GET /env.cgi HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .run();
    assert!(String::from_utf8_lossy(&o.stdout).contains("SSL_CLIENT_VERIFY=SUCCESS"), "{}", output_text(&o));
}

#[test]
fn client_auth_configuration_errors() {
    let mut h = Httpd::new();
    h.extra = "<Location /x>\n  TLSClientCertificate required\n</Location>\n".into();
    assert_configtest_fails(&h, &["renegotiation"]);
    h.extra = "TLSClientCertificate required\n".into();
    assert_configtest_fails(&h, &["needs TLSClientCA"]);
    h.extra = "TLSClientCertificate maybe\n".into();
    assert_configtest_fails(&h, &["required, optional, optional_no_ca or none"]);
    h.write("conf/bad.crl", "not a crl");
    h.extra = "TLSClientCertificate required\nTLSClientCA conf/ca.pem\nTLSClientCRL conf/bad.crl\n".into();
    assert_configtest_fails(&h, &["TLSClientCRL"]);
    // OpenSSL's `ca -gencrl` without a crlnumber writes v1 CRLs, which rustls cannot use: say so.
    let root = h.root.display().to_string();
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd {root}/conf && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout v1.key -out v1ca.pem \
             -days 2 -subj /CN=v1 2>/dev/null && touch index.txt && printf '[ca]\\ndefault_ca=d\\n[d]\\ndatabase=index.txt\\ndefault_md=sha256\\ndefault_crl_days=2\\n' > ca.cnf && \
             openssl ca -config ca.cnf -gencrl -keyfile v1.key -cert v1ca.pem -out v1.crl 2>&1"
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", output_text(&o));
    h.extra = "TLSClientCertificate required\nTLSClientCA conf/ca.pem\nTLSClientCRL conf/v1.crl\n".into();
    assert_configtest_fails(&h, &["X.509 v1 CRL"]);
    h.extra = "TLSClientCertificate optional\nTLSClientCA conf/ca.pem\n".into();
    let out = assert_configtest_passes(&h);
    assert!(out.contains("without revocation checking"), "{out}");
}

/// GET / as alice with `cfg` (which keeps her sessions): how the handshake went, or what the
/// client saw.
fn alice_get(port: u16, cfg: &Arc<rustls::ClientConfig>) -> Result<rustls::HandshakeKind, String> {
    let mut s = try_tls_connect(port, "localhost", cfg.clone()).map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    assert_eq!(Response::parse(&raw).0.status, 200);
    Ok(s.conn.handshake_kind().unwrap())
}

fn required_with(crl: &str) -> String {
    format!(
        "  TLSCertificate conf/server.pem conf/server.key\n  TLSClientCertificate required\n  \
         TLSClientCA conf/client/clientca.pem\n  TLSClientCRL conf/client/{crl}\n  TLSClientCRL conf/client/inter.crl\n"
    )
}

/// Two ports with the same name, certificate and CA, each with two CRLs: only the contents of
/// one CRL differ, and on port B it revokes alice. A session alice made on A carries the same
/// SNI to B, so the session's tag (the vhost's settings fingerprint) is all that keeps it out.
#[test]
fn a_session_never_resumes_where_a_crl_revokes_its_client() {
    let b = free_port();
    let mut h = Httpd::new();
    ClientPki::new().install(&h);
    h.tls_vhost = Some(h.localhost_vhost(&required_with("root.crl")));
    h.extra = format!(
        "Listen 127.0.0.1:{b}\nTLSEngine 127.0.0.1:{b}\n<VirtualHost 127.0.0.1:{b}>\n  ServerName localhost\n{}</VirtualHost>\n",
        required_with("root-alice.crl")
    );
    h.start();
    for versions in [TLS13, TLS12] {
        let cfg = client_config(&h, Some("alice"), versions);
        assert_eq!(alice_get(h.tls_port, &cfg), Ok(rustls::HandshakeKind::Full));
        assert_eq!(
            alice_get(h.tls_port, &cfg),
            Ok(rustls::HandshakeKind::Resumed),
            "{versions:?}: offered, valid on A"
        );
        let refused = alice_get(b, &cfg).expect_err("alice is revoked on B");
        assert!(refused.contains("CertificateRevoked"), "{versions:?}: a full handshake on B: {refused}");
    }
    h.assert_no_crash();
}

/// Sessions in memcached outlive a graceful restart. A CRL replaced in place (same path, same
/// count) and reloaded must not let a session checked under the old one resume.
#[test]
fn a_crl_replaced_in_place_ends_sessions_checked_under_the_old_one() {
    let (_memcached, port) = start_memcached();
    let mut h = Httpd::new();
    ClientPki::new().install(&h);
    h.tls_vhost = Some(h.localhost_vhost(&required_with("root.crl")));
    h.extra = format!(
        "LoadModule socache_memcache_module {MODDIR}/mod_socache_memcache.so\nTLSSessionCache memcache:127.0.0.1:{port}\n"
    );
    h.start();
    let graceful = |h: &Httpd| {
        h.graceful();
        wait_until_served(h);
    };
    let tls13 = client_config(&h, Some("alice"), TLS13);
    let tls12 = client_config(&h, Some("alice"), TLS12);
    for cfg in [&tls13, &tls12] {
        assert_eq!(alice_get(h.tls_port, cfg), Ok(rustls::HandshakeKind::Full));
    }
    // Unchanged settings: the sessions resume across the restart (the cache outlived it).
    graceful(&h);
    for cfg in [&tls13, &tls12] {
        assert_eq!(alice_get(h.tls_port, cfg), Ok(rustls::HandshakeKind::Resumed));
    }
    std::fs::copy(h.path("conf/client/root-alice.crl"), h.path("conf/client/root.crl")).unwrap();
    graceful(&h);
    for cfg in [&tls13, &tls12] {
        let refused = alice_get(h.tls_port, cfg).expect_err("alice is revoked now");
        assert!(refused.contains("CertificateRevoked"), "{refused}");
    }
    h.assert_no_crash();
}

/// Waits until the restarted server answers a fresh handshake.
fn wait_until_served(h: &Httpd) {
    poll_until(std::time::Duration::from_secs(10), "serving after the restart", || {
        request(h, h.tls_port, Some("carol"), TLS13, "/").is_ok()
    });
}

/// Sessions made while a vhost asked for no client certificate must not resume once it requires
/// one, even from a cache that outlived the restart.
#[test]
fn sessions_made_without_client_auth_do_not_resume_once_it_is_required() {
    let (_memcached, port) = start_memcached();
    let mut h = Httpd::new();
    ClientPki::new().install(&h);
    h.extra = format!(
        "LoadModule socache_memcache_module {MODDIR}/mod_socache_memcache.so\nTLSSessionCache memcache:127.0.0.1:{port}\n"
    );
    h.start();
    let anonymous = [client_config(&h, None, TLS13), client_config(&h, None, TLS12)];
    for cfg in &anonymous {
        let mut s = tls_connect(h.tls_port, "localhost", cfg.clone());
        assert_eq!(get_on(&mut s, "/", "localhost").status, 200);
    }
    h.tls_vhost = Some(h.localhost_vhost(&required_with("root.crl")));
    std::fs::write(h.path("conf/httpd.conf"), h.conf_text()).unwrap();
    h.graceful();
    wait_until_served(&h);
    for cfg in &anonymous {
        let refused = request_with(h.tls_port, cfg).expect_err("a client certificate is required now");
        assert!(refused.contains("CertificateRequired"), "{refused}");
    }
    h.assert_no_crash();
}

/// GET / with `cfg`; the status, or what the client saw.
fn request_with(port: u16, cfg: &Arc<rustls::ClientConfig>) -> Result<u16, String> {
    let mut s = try_tls_connect(port, "localhost", cfg.clone()).map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    Ok(Response::parse(&raw).0.status)
}

/// Without mod_ssl, what configurations written for it use works with mod_tls: the stock log
/// format's `%{SSL_PROTOCOL}x %{SSL_CIPHER}x`, `%{version}c`, `%{cipher}c`, `%{subjectdn}c`, and
/// the authorization providers `Require ssl` and `Require ssl-verify-client`.
#[test]
fn mod_ssl_log_formats_and_require_providers() {
    let opt = free_port();
    let mut h = server(opt);
    h.log_level = "warn".into();
    h.extra += "LogFormat \"%{SSL_PROTOCOL}x|%{SSL_CIPHER}x|%{version}c|%{cipher}c|%{subjectdn}c|%r\" ssllog\n\
                CustomLog logs/ssl.log ssllog\n\
                <Location /verified>\n  Require ssl-verify-client\n</Location>\n\
                <Location /tls>\n  Require ssl\n</Location>\n";
    h.write("htdocs/verified/index.html", "verified\n");
    h.write("htdocs/tls/index.html", "tls\n");
    h.start();
    assert_eq!(request(&h, opt, None, TLS13, "/verified/").map(|r| r.status), Ok(403), "no certificate");
    assert_eq!(request(&h, opt, Some("alice"), TLS13, "/verified/").map(|r| r.status), Ok(200));
    assert_eq!(request(&h, opt, None, TLS12, "/tls/").map(|r| r.status), Ok(200));
    // Plain HTTP is refused by `Require ssl`.
    let o = h.curl(&["-o", "/dev/null", "-w", "%{http_code}", &format!("http://127.0.0.1:{}/tls/", h.plain_port)]);
    assert_eq!(output_text(&o).trim(), "403", "{}", output_text(&o));

    let log = h.log_when("logs/ssl.log", |l| l.lines().count() >= 4);
    let line =
        |path: &str, nth: usize| log.lines().filter(|l| l.contains(path)).nth(nth).unwrap_or_default().to_string();
    let fields = |l: String| l.split('|').map(String::from).collect::<Vec<_>>();
    let alice = fields(line("/verified/", 1));
    assert_eq!(alice[0], "TLSv1.3", "{log}");
    assert!(alice[1].starts_with("TLS_AES_") && alice[1] == alice[3], "{log}");
    assert_eq!(alice[2], "TLSv1.3", "{log}");
    assert!(alice[4].contains("CN=alice"), "{log}");
    let anonymous = fields(line("/tls/", 0));
    assert_eq!(
        (anonymous[0].as_str(), anonymous[2].as_str(), anonymous[4].as_str()),
        ("TLSv1.2", "TLSv1.2", "-"),
        "{log}"
    );
    let plain = fields(line("/tls/", 1));
    assert_eq!(&plain[..5], ["-", "-", "-", "-", "-"], "{log}");
}

/// `TLSClientCertificate optional_no_ca` (mod_ssl's): a certificate from an unknown issuer is
/// accepted for the application to judge (`SSL_CLIENT_VERIFY=GENEROUS`, its variables as usual);
/// expired or revoked ones are refused as with `optional`, and `required`/`optional` stay
/// fail-closed (the tests above).
#[test]
fn optional_no_ca_lets_the_application_judge() {
    let opt = free_port();
    let generous = free_port();
    let mut h = server(opt);
    h.extra += &format!(
        "Listen 127.0.0.1:{generous}\nTLSEngine 127.0.0.1:{generous}\n\
         <VirtualHost 127.0.0.1:{generous}>\n  ServerName localhost\n  TLSCertificate conf/server.pem conf/server.key\n  \
         TLSClientCertificate optional_no_ca\n  TLSClientCA conf/client/clientca.pem\n  \
         TLSClientCRL conf/client/root.crl\n  TLSClientCRL conf/client/inter.crl\n</VirtualHost>\n"
    );
    h.start();
    for versions in [TLS13, TLS12] {
        let env = |who| env_of(&request(&h, generous, who, versions, "/env.cgi").expect("accepted"));
        assert_eq!(env(None)["SSL_CLIENT_VERIFY"], "NONE");
        assert_eq!(env(Some("alice"))["SSL_CLIENT_VERIFY"], "SUCCESS");
        let carol = env(Some("carol"));
        assert_eq!(carol["SSL_CLIENT_VERIFY"], "SUCCESS", "chain through the intermediate");
        // The intermediate under mod_ssl's name and the C module's; the handshake's round trip;
        // RFC 4523's assertion of the certificate.
        assert!(carol["SSL_CLIENT_CERT_CHAIN_0"].starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(carol["SSL_CLIENT_CHAIN_0"], carol["SSL_CLIENT_CERT_CHAIN_0"]);
        let rtt: u64 = carol["SSL_HANDSHAKE_RTT"].parse().unwrap();
        assert!(rtt > 0 && rtt < 5_000_000, "{rtt} µs");
        assert_eq!(
            carol["SSL_CLIENT_CERT_RFC4523_CEA"],
            "{ serialNumber 14, issuer rdnSequence:\"CN=Client Intermediate CA\" }"
        );
        let mallory = env(Some("mallory"));
        assert_eq!(mallory["SSL_CLIENT_VERIFY"], "GENEROUS", "{versions:?}");
        assert_eq!(mallory["SSL_CLIENT_S_DN_CN"], "mallory");
        assert_eq!(mallory["SSL_CLIENT_I_DN"], "CN=Unknown CA");
        // As mod_ssl: only an unknown issuer is let through; expired or revoked fail as ever.
        for (who, alert) in [("eve", "CertificateExpired"), ("bob", "CertificateRevoked")] {
            let err = request(&h, generous, Some(who), versions, "/env.cgi").map(|r| r.status).unwrap_err();
            assert!(err.contains(alert), "{who} {versions:?}: {err}");
        }
    }
    // The strict modes are unchanged on the same server.
    assert!(request(&h, opt, Some("mallory"), TLS13, "/env.cgi").is_err());
}

/// The status page counts refused client certificates by reason.
#[test]
fn status_page_counts_client_certificate_refusals() {
    let opt = free_port();
    let mut h = server(opt);
    h.extra += &format!(
        "LoadModule status_module {MODDIR}/mod_status.so\n<Location /server-status>\n  SetHandler server-status\n</Location>\n"
    );
    h.start();
    for who in [Some("mallory"), Some("eve"), Some("bob"), None] {
        assert!(request(&h, h.tls_port, who, TLS13, "/").is_err(), "{who:?} refused");
    }
    assert_eq!(request(&h, h.tls_port, Some("alice"), TLS13, "/").map(|r| r.status), Ok(200));
    let o = h.curl(&["-s", &format!("http://127.0.0.1:{}/server-status?auto", h.plain_port)]);
    let page = output_text(&o);
    let v = |k: &str| {
        page.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}: ")))
            .unwrap_or_else(|| panic!("no {k}: {page}"))
            .to_string()
    };
    assert_eq!(v("TLSHandshakeFailures_ClientCertUnknownCA"), "1", "{page}");
    assert_eq!(v("TLSHandshakeFailures_ClientCertExpired"), "1", "{page}");
    assert_eq!(v("TLSHandshakeFailures_ClientCertRevoked"), "1", "{page}");
    assert_eq!(v("TLSHandshakeFailures_ClientCertRefused"), "1", "no certificate where one is required: {page}");
    assert_eq!((v("TLSHandshakeFailures"), v("TLSHandshakes")), ("4".to_string(), "1".to_string()), "{page}");
}
