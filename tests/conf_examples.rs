//! The shipped configuration examples are accepted by `apache2 -t`, and the minimal vhost serves.

mod common;

use common::*;

fn example(rel: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf-examples").join(rel)).unwrap()
}

#[test]
fn minimal_vhost_passes_configtest_and_serves() {
    let mut h = Httpd::new();
    let port = free_port();
    let (cert, key) = h.pki.issue(&["www.example.net"], &rcgen::PKCS_ECDSA_P256_SHA256);
    h.write("tls/www.example.net.pem", cert);
    h.write("tls/www.example.net.key", key);
    let root = h.root.display().to_string();
    let conf = example("minimal-vhost.conf")
        .replace("Listen 443", &format!("Listen 127.0.0.1:{port}"))
        .replace("TLSEngine 443", &format!("TLSEngine {port}"))
        .replace("*:443", &format!("*:{port}"))
        .replace("/etc/apache2/", &format!("{root}/"))
        .replace("/var/www/html", &format!("{root}/htdocs"));
    h.write("conf/example.conf", conf);
    h.extra = "Include conf/example.conf\n".into();
    assert_configtest_passes(&h);
    h.start();
    let mut s = tls_connect(port, "www.example.net", h.pki.client_config(TLS13));
    use std::io::{Read, Write};
    s.write_all(b"GET /index.html HTTP/1.1\r\nHost: www.example.net\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    assert!(raw.ends_with(b"hello over TLS\n"));
}

#[test]
fn proxy_and_client_certificate_examples_pass_configtest() {
    let mut h = Httpd::new();
    let root = h.root.display().to_string();
    let (cert, key) = h.pki.issue(&["intranet.example.net"], &rcgen::PKCS_ECDSA_P256_SHA256);
    h.write("tls/intranet.pem", cert);
    h.write("tls/intranet.key", key);
    let (cert, key) = h.pki.issue(&["frontend.example.net"], &rcgen::PKCS_ECDSA_P256_SHA256);
    h.write("tls/frontend.pem", cert);
    h.write("tls/frontend.key", key);
    for f in ["internal-ca.pem", "clients-ca.pem"] {
        std::fs::copy(h.path("conf/ca.pem"), h.path(&format!("tls/{f}"))).unwrap();
    }
    // A CRL from openssl for the clients CA.
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd {root}/tls && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout c.key -out clients-ca.pem \
             -days 2 -subj /CN=clients 2>/dev/null && touch index.txt && echo 01 > crlnumber && printf '[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\ncrlnumber=crlnumber\ndefault_md=sha256\ndefault_crl_days=2\ncrl_extensions=ext\n[ext]\nauthorityKeyIdentifier=keyid:always\n' > ca.cnf && \
             openssl ca -config ca.cnf -gencrl -keyfile c.key -cert clients-ca.pem -out clients-ca.crl 2>&1"
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", output_text(&o));
    let port = free_port();
    let client_auth = example("client-certificates.conf")
        .replace("Listen 443", &format!("Listen 127.0.0.1:{port}"))
        .replace("TLSEngine 443", &format!("TLSEngine {port}"))
        .replace("*:443", &format!("*:{port}"))
        .replace("/etc/apache2/", &format!("{root}/"));
    let proxy = example("reverse-proxy.conf").replace("/etc/apache2/", &format!("{root}/"));
    h.write("conf/client-auth.conf", client_auth);
    h.write("conf/proxy.conf", proxy);
    h.extra = format!(
        "LoadModule proxy_module {MODDIR}/mod_proxy.so\nLoadModule proxy_http_module {MODDIR}/mod_proxy_http.so\n\
         LoadModule proxy_http2_module {MODDIR}/mod_proxy_http2.so\nInclude conf/client-auth.conf\nInclude conf/proxy.conf\n"
    );
    assert_configtest_passes(&h);
    h.start();
}

/// The Debian package's mods-available files (debian/tls.{load,conf}): enabling the module alone,
/// before any site names a TLSEngine address, must leave a server that starts.
#[test]
fn debian_mods_available_pass_configtest() {
    let h = Httpd::new();
    let packaged = |f: &str| {
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("debian").join(f)).unwrap()
    };
    let load =
        packaged("tls.load").replace("/usr/lib/apache2/modules/mod_tls.so", &module_path().display().to_string());
    h.write("mods-available/tls.load", load);
    h.write("mods-available/tls.conf", packaged("tls.conf"));
    // A server configured the Debian way: modules from mods-enabled, no LoadModule of our own.
    let conf = h
        .conf_text()
        .lines()
        .filter(|l| !l.starts_with("LoadModule tls_module") && !l.starts_with("TLSEngine"))
        .filter(|l| !l.contains("TLSCertificate"))
        .collect::<Vec<_>>()
        .join("\n");
    let run = h.path("run");
    let conf = format!(
        "Define APACHE_RUN_DIR {}\n{conf}\nInclude mods-available/tls.load\nInclude mods-available/tls.conf\n",
        run.display()
    );
    std::fs::write(h.path("conf/debian.conf"), conf).unwrap();
    assert_configtest_passes(
        &std::process::Command::new(HTTPD).arg("-t").arg("-f").arg(h.path("conf/debian.conf")).output().unwrap(),
    );
}

/// The status page example: from this machine, `server-status?auto` has the TLS lines, counting
/// the handshake just made and naming the vhost's certificate.
#[test]
fn status_page_example_shows_the_tls_figures() {
    let mut h = Httpd::new();
    // Debian enables mod_status and mod_authz_host (Require local, Require ip) by default.
    h.extra = format!(
        "LoadModule status_module {MODDIR}/mod_status.so\nLoadModule authz_host_module {MODDIR}/mod_authz_host.so\n{}",
        example("status-page.conf")
    );
    assert_configtest_passes(&h);
    h.start();
    let (r, _) = h.get("/index.html", TLS13);
    assert_eq!(r.status, 200);
    let o = h.curl(&["-s", &format!("http://127.0.0.1:{}/server-status?auto", h.plain_port)]);
    let page = String::from_utf8_lossy(&o.stdout).into_owned();
    let value = |key: &str| {
        page.lines().find_map(|l| l.strip_prefix(&format!("{key}: "))).unwrap_or_else(|| panic!("{key} in:\n{page}"))
    };
    assert_eq!(value("TLSHandshakes"), "1", "{page}");
    assert_eq!(value("TLSHandshakesTLSv1_3"), "1", "{page}");
    // A certificate that needs no attention is counted, not listed; `certificates` lists it.
    assert_eq!(value("TLSCertificates"), "1", "{page}");
    assert!(value("TLSCertificateDaysLeftMin").parse::<i64>().unwrap() > 300, "{page}");
    assert!(!page.contains("TLSCertificate0:"), "{page}");
    let all = h.status_auto_all();
    assert!(all["TLSCertificate0"].contains("subject=CN=localhost; key=id-ecPublicKey; days_left="), "{all:?}");
}
