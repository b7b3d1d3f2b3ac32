//! TLS variables through `ap_ssl_var_lookup` and `TLSOptions`, and the modules that consume them.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use common::*;

const ENV_CGI: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nenv\n";

fn env_of(r: &Response) -> BTreeMap<String, String> {
    r.text().lines().filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))).collect()
}

fn openssl_x509(h: &Httpd, arg: &[&str]) -> String {
    let o = Command::new("openssl")
        .args(["x509", "-noout", "-in"])
        .arg(h.path("conf/server.pem"))
        .args(arg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).trim().to_string();
    text.split_once('=').map(|(_, v)| v.to_string()).unwrap_or(text)
}

#[test]
fn every_variable_has_its_exact_value_for_tls12_and_tls13() {
    let mut h = Httpd::new();
    h.cgi("env.cgi", ENV_CGI);
    h.extra = "TLSOptions StdEnvVars ExportCertData\nHeader set X-Session-Id \"[%{SSL_SESSION_ID}s]\"\n".into();
    h.start();
    let version = env!("CARGO_PKG_VERSION");
    let rustls_version = {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap();
        let pattern = "name = \"rustls\"\nversion = \"";
        let i = lock.find(pattern).unwrap() + pattern.len();
        lock[i..].split('"').next().unwrap().to_string()
    };
    let server_pem = std::fs::read_to_string(h.path("conf/server.pem")).unwrap();
    // Post-quantum hybrid key exchange exists for TLS 1.3 only.
    for (versions, proto, cipher, group) in [
        (TLS13, "TLSv1.3", "TLS_AES_256_GCM_SHA384", "X25519MLKEM768"),
        (TLS12, "TLSv1.2", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "X25519"),
    ] {
        let cfg = h.pki.client_config(versions);
        let mut s = tls_connect(h.tls_port, "localhost", cfg.clone());
        let r = get_on(&mut s, "/env.cgi", "localhost");
        let env = env_of(&r);
        let want = [
            ("HTTPS", "on"),
            ("SSL_TLS_SNI", "localhost"),
            ("SSL_PROTOCOL", proto),
            ("SSL_CIPHER", cipher),
            ("SSL_CIPHER_USEKEYSIZE", "256"),
            ("SSL_CIPHER_ALGKEYSIZE", "256"),
            ("SSL_CIPHER_EXPORT", "false"),
            ("SSL_SECURE_RENEG", "false"),
            ("SSL_COMPRESS_METHOD", "NULL"),
            ("SSL_CLIENT_VERIFY", "NONE"),
            ("SSL_SESSION_RESUMED", "Initial"),
            ("SSL_VERSION_INTERFACE", &format!("mod_tls/{version}")),
            ("SSL_VERSION_LIBRARY", &format!("rustls/{rustls_version}")),
            ("SSL_KEY_EXCHANGE", group),
            ("SSL_SERVER_S_DN", "CN=localhost"),
            ("SSL_SERVER_S_DN_CN", "localhost"),
            ("SSL_SERVER_I_DN", "CN=mod_tls test CA"),
            ("SSL_SERVER_I_DN_CN", "mod_tls test CA"),
            ("SSL_SERVER_M_VERSION", "3"),
            ("SSL_SERVER_SAN_DNS_0", "localhost"),
            ("SSL_SERVER_SAN_IPaddr_0", "127.0.0.1"),
            ("SSL_SERVER_A_KEY", "id-ecPublicKey"),
            ("SSL_SERVER_A_SIG", "ecdsa-with-SHA256"),
        ];
        for (k, v) in want {
            assert_eq!(env.get(k).map(String::as_str), Some(v), "{proto} {k}");
        }
        // Formats as OpenSSL prints them (what mod_ssl reports).
        assert_eq!(env["SSL_SERVER_S_DN"], openssl_x509(&h, &["-subject", "-nameopt", "RFC2253"]));
        assert_eq!(env["SSL_SERVER_M_SERIAL"], openssl_x509(&h, &["-serial"]));
        assert_eq!(env["SSL_SERVER_V_START"], openssl_x509(&h, &["-startdate"]));
        assert_eq!(env["SSL_SERVER_V_END"], openssl_x509(&h, &["-enddate"]));
        assert!(!env.contains_key("SSL_SESSION_ID"));
        assert!(!env.contains_key("SSL_ALPN"), "no ALPN was offered");
        // The PEM comes with ExportCertData (a CGI's env shows only its first line).
        assert!(env["SSL_SERVER_CERT"].starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(server_pem.starts_with(&env["SSL_SERVER_CERT"]));
        // mod_headers shows an empty value as "(null)": nothing of the session id leaks.
        assert_eq!(r.header("X-Session-Id"), Some("[(null)]"), "SSL_SESSION_ID is never exposed");

        // Reconnect with the same client config: a resumed session.
        let mut s = tls_connect(h.tls_port, "localhost", cfg);
        assert_eq!(s.conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed), "{proto}");
        let env = env_of(&get_on(&mut s, "/env.cgi", "localhost"));
        assert_eq!(env["SSL_SESSION_RESUMED"], "Resumed", "{proto}");
        assert_eq!(env["SSL_SERVER_S_DN"], "CN=localhost", "{proto}: same certificate on resumption");
    }
    // ALPN is reported when negotiated.
    let cfg = h.pki.client_config_with(TLS13, |_| {}, |c| c.alpn_protocols = vec![b"http/1.1".to_vec()]);
    let mut s = tls_connect(h.tls_port, "localhost", Arc::new(cfg));
    assert_eq!(env_of(&get_on(&mut s, "/env.cgi", "localhost"))["SSL_ALPN"], "http/1.1");
}

#[test]
fn tls_options_inherit_across_server_vhost_directory_location_and_htaccess() {
    let mut h = Httpd::new();
    for dir in ["", "nostd/", "ht/"] {
        h.cgi(&format!("{dir}env.cgi"), ENV_CGI);
    }
    h.cgi("nostd/withcert.cgi", ENV_CGI);
    h.write("htdocs/ht/.htaccess", "TLSOptions Defaults ExportCertData\n");
    let root = h.root.display().to_string();
    h.extra = format!(
        "TLSOptions StdEnvVars\n\
         <Directory \"{root}/htdocs/nostd\">\n  TLSOptions -StdEnvVars\n</Directory>\n\
         <Location /nostd/withcert.cgi>\n  TLSOptions +ExportCertData\n</Location>\n\
         <Directory \"{root}/htdocs/ht\">\n  AllowOverride Options\n</Directory>\n"
    );
    h.start();
    let get = |path: &str| env_of(&h.get(path, TLS13).0);
    let top = get("/env.cgi");
    assert!(
        top.contains_key("SSL_PROTOCOL") && !top.contains_key("SSL_SERVER_CERT"),
        "server level, inherited by the vhost"
    );
    let nostd = get("/nostd/env.cgi");
    assert!(
        !nostd.contains_key("SSL_PROTOCOL") && !nostd.contains_key("SSL_SERVER_CERT"),
        "-StdEnvVars in <Directory>"
    );
    assert_eq!(nostd.get("HTTPS").map(String::as_str), Some("on"), "HTTPS is always set");
    let loc = get("/nostd/withcert.cgi");
    assert!(!loc.contains_key("SSL_PROTOCOL") && loc.contains_key("SSL_SERVER_CERT"), "+ExportCertData in <Location>");
    let ht = get("/ht/env.cgi");
    assert!(
        !ht.contains_key("SSL_PROTOCOL") && ht.contains_key("SSL_SERVER_CERT"),
        ".htaccess Defaults ExportCertData"
    );

    h.extra = "TLSOptions +StdEnvVars FakeBasicAuth\n".into();
    assert_configtest_fails(&h, &["unknown option 'FakeBasicAuth'"]);
}

#[test]
fn rewrite_headers_expr_and_http2_consume_the_variables() {
    let mut h = Httpd::new();
    h.cgi("env.cgi", ENV_CGI);
    h.write("htdocs/only13/index.html", "thirteen\n");
    let root = h.root.display().to_string();
    h.extra = format!(
        "LoadModule http2_module {MODDIR}/mod_http2.so\nProtocols h2 http/1.1\n\
         RewriteEngine on\n\
         RewriteCond %{{SSL:SSL_PROTOCOL}} =TLSv1.3\n\
         RewriteRule ^/proto$ /v13.txt [R=302,L]\n\
         RewriteRule ^/proto$ /v12.txt [R=302,L]\n\
         RequestHeader set X-TLS \"%{{SSL_PROTOCOL}}s %{{SSL_CIPHER}}s\"\n\
         <Directory \"{root}/htdocs/only13\">\n  Require expr \"%{{SSL_PROTOCOL}} == 'TLSv1.3'\"\n</Directory>\n"
    );
    h.tls_vhost = Some(h.localhost_vhost(
        "  TLSCertificate conf/server.pem conf/server.key\n  RewriteEngine on\n  RewriteOptions Inherit",
    ));
    h.start();
    let (r, _) = h.get("/proto", TLS13);
    assert!(r.header("Location").unwrap().ends_with("/v13.txt"), "{:?}", r.header("Location"));
    let (r, _) = h.get("/proto", TLS12);
    assert!(r.header("Location").unwrap().ends_with("/v12.txt"), "{:?}", r.header("Location"));

    let env = env_of(&h.get("/env.cgi", TLS12).0);
    assert_eq!(env["HTTP_X_TLS"], "TLSv1.2 TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");

    assert_eq!(h.get("/only13/", TLS13).0.status, 200);
    assert_eq!(h.get("/only13/", TLS12).0.status, 403);

    // mod_http2 checks SSL_PROTOCOL and SSL_CIPHER against RFC 7540's rules before it speaks h2;
    // every suite rustls offers is allowed, over TLS 1.2 as over 1.3.
    for (min, max) in [("--tlsv1.2", "1.2"), ("--tlsv1.3", "1.3")] {
        let o = h.curl(&[
            "--http2",
            min,
            "--tls-max",
            max,
            "-w",
            "%{http_version}",
            "-o",
            "/dev/null",
            &h.https_url("/env.cgi"),
        ]);
        assert_eq!(String::from_utf8_lossy(&o.stdout), "2", "TLS {max}: {}", output_text(&o));
    }
    // Over HTTP/2 each request runs on another thread than its connection: the variables come
    // from the handshake's snapshot there, with the same values.
    for _ in 0..3 {
        let o = h.curl(&["--http2", "--tlsv1.3", &h.https_url("/env.cgi"), &h.https_url("/env.cgi")]);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert_eq!(text.matches("HTTP_X_TLS=TLSv1.3 TLS_AES_256_GCM_SHA384\n").count(), 2, "{}", output_text(&o));
        assert_eq!(text.matches("HTTPS=on\n").count(), 2, "{text}");
    }
}

#[test]
fn with_mod_ssl_loaded_each_module_answers_for_its_own_connections() {
    let mut h = Httpd::new();
    h.cgi("env.cgi", ENV_CGI);
    let ssl_port = free_port();
    h.extra = format!(
        "LoadModule ssl_module {MODDIR}/mod_ssl.so\n\
         TLSOptions StdEnvVars\nSSLOptions +StdEnvVars\n\
         Listen 127.0.0.1:{ssl_port}\n\
         <VirtualHost 127.0.0.1:{ssl_port}>\n  ServerName localhost\n  SSLEngine on\n  \
         SSLCertificateFile conf/server.pem\n  SSLCertificateKeyFile conf/server.key\n</VirtualHost>\n"
    );
    h.start();
    let ours = env_of(&h.get("/env.cgi", TLS13).0);
    assert_eq!(ours["HTTPS"], "on");
    assert!(ours["SSL_VERSION_INTERFACE"].starts_with("mod_tls/"), "{ours:?}");
    let o = h.curl(&[&format!("https://localhost:{ssl_port}/env.cgi")]);
    let theirs: BTreeMap<String, String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    assert_eq!(theirs.get("HTTPS").map(String::as_str), Some("on"), "{}", output_text(&o));
    assert!(theirs["SSL_VERSION_INTERFACE"].starts_with("mod_ssl/"), "{theirs:?}");
    assert!(theirs["SSL_VERSION_LIBRARY"].starts_with("OpenSSL/"), "{theirs:?}");
    let o = Command::new("curl").args(["-sS", &format!("http://127.0.0.1:{}/env.cgi", h.plain_port)]).output().unwrap();
    assert!(!String::from_utf8_lossy(&o.stdout).contains("SSL_"), "plain HTTP has no TLS variables");
}
