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
    let o = h.configtest();
    assert!(o.status.success(), "{}", output_text(&o));
    h.start();
    let mut s = tls_connect(port, "www.example.net", h.pki.client_config(TLS13));
    use std::io::{Read, Write};
    s.write_all(b"GET /index.html HTTP/1.1\r\nHost: www.example.net\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    assert!(raw.ends_with(b"hello over TLS\n"));
}

#[test]
fn debian_mods_available_pass_configtest() {
    let h = Httpd::new();
    let load = example("debian/mods-available/tls.load")
        .replace("/usr/lib/apache2/modules/mod_tls.so", &module_path().display().to_string());
    h.write("mods-available/tls.load", load);
    h.write("mods-available/tls.conf", example("debian/mods-available/tls.conf"));
    // A server configured the Debian way: modules from mods-enabled, no LoadModule of our own.
    let conf = h
        .conf_text()
        .lines()
        .filter(|l| !l.starts_with("LoadModule tls_module") && !l.starts_with("TLSEngine"))
        .filter(|l| !l.contains("TLSCertificate"))
        .collect::<Vec<_>>()
        .join("\n");
    let conf = format!("{conf}\nInclude mods-available/tls.load\nInclude mods-available/tls.conf\n");
    std::fs::write(h.path("conf/debian.conf"), conf).unwrap();
    let o = std::process::Command::new(HTTPD).arg("-t").arg("-f").arg(h.path("conf/debian.conf")).output().unwrap();
    assert!(o.status.success(), "{}", output_text(&o));
}
