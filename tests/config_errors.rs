//! A wrong configuration fails `apache2 -t` (and start-up) with the file, the line and a sentence
//! that says what to fix — never later, at the first connection.

mod common;

use common::*;

/// The 1-based line of the first line containing `needle` in the generated httpd.conf.
fn line_of(h: &Httpd, needle: &str) -> usize {
    let text = h.conf_text();
    let exact = text.lines().position(|l| l.trim() == needle);
    exact.or_else(|| text.lines().position(|l| l.contains(needle))).expect("directive in config") + 1
}

fn assert_fails_at(h: &mut Httpd, body: &str, needle: &str, expect: &[&str]) {
    h.tls_vhost = Some(h.localhost_vhost(body));
    let out = assert_configtest_fails(&*h, expect);
    let (file, line) = (h.path("conf/httpd.conf").display().to_string(), line_of(h, needle));
    // Our own checks say "file:line"; httpd's syntax errors say "line N of file".
    let at = [format!("{file}:{line}"), format!("line {line} of {file}")];
    assert!(at.iter().any(|a| out.contains(a)), "no {at:?} in:\n{out}");
}

#[test]
fn good_configuration_passes() {
    let mut h = Httpd::new();
    let out = assert_configtest_passes(&h);
    assert!(out.contains("Syntax OK"), "{out}");
    h.start();
}

#[test]
fn missing_empty_and_unreadable_files() {
    let mut h = Httpd::new();
    assert_fails_at(
        &mut h,
        "  TLSCertificate conf/nope.pem conf/server.key",
        "nope.pem",
        &["cannot read the certificate file", "nope.pem", "No such file", "relative paths start at ServerRoot"],
    );
    h.write("conf/empty.pem", "");
    assert_fails_at(&mut h, "  TLSCertificate conf/empty.pem conf/server.key", "empty.pem", &["is empty"]);
    assert_fails_at(
        &mut h,
        "  TLSCertificate conf/server.pem conf/nokey.pem",
        "nokey.pem",
        &["cannot read the key file", "nokey.pem"],
    );
    // The key is looked for in the certificate file when no key file is named.
    assert_fails_at(
        &mut h,
        "  TLSCertificate conf/server.pem",
        "TLSCertificate conf/server.pem",
        &["holds no private key"],
    );
}

/// CA and CRL files for client certificates are read even while `TLSClientCertificate` is `none`
/// (as mod_ssl reads its CA and CRL files whatever `SSLVerifyClient` says, and the C module checks
/// that the file exists): a wrong path fails `apache2 -t` now, not the day client authentication
/// is switched on. httpd's own mod_tls tests expect a missing `TLSClientCA` to stop start-up.
#[test]
fn client_ca_and_crl_files_are_checked_with_client_authentication_off() {
    let mut h = Httpd::new();
    let cert = "  TLSCertificate conf/server.pem conf/server.key\n";
    assert_fails_at(
        &mut h,
        &format!("{cert}  TLSClientCA conf/nope-ca.pem"),
        "nope-ca.pem",
        &["TLSClientCA", "nope-ca.pem", "No such file"],
    );
    assert_fails_at(
        &mut h,
        &format!("{cert}  TLSClientCA conf/server.pem\n  TLSClientCRL conf/nope.crl"),
        "nope.crl",
        &["TLSClientCRL", "nope.crl", "No such file"],
    );
    // Files that are there and sound still pass, and the server serves without asking for a
    // client certificate.
    h.tls_vhost = Some(h.localhost_vhost(&format!("{cert}  TLSClientCA conf/server.pem")));
    assert_configtest_passes(&h);
    h.start();
    let (r, _) = h.get("/index.html", TLS13);
    assert_eq!(r.status, 200);
}

/// A `TLSCertificate` in a vhost that TLS does not serve (no `TLSEngine` for its address) is not
/// built, but a file that is not there still fails `apache2 -t` with the file and line, as
/// mod_ssl's `SSLCertificateFile` and the C module do wherever the directive is written.
#[test]
fn certificate_files_of_a_vhost_tls_does_not_serve_are_checked() {
    let mut h = Httpd::new();
    let plain = h.plain_port;
    let vhost =
        |body: &str| format!("<VirtualHost 127.0.0.1:{plain}>\n  ServerName plain.test\n{body}\n</VirtualHost>\n");
    h.extra = vhost("  TLSCertificate conf/nope.pem conf/server.key");
    let out = assert_configtest_fails(&h, &["cannot read the certificate file", "nope.pem", "TLSCertificate"]);
    let at = format!("{}:{}", h.path("conf/httpd.conf").display(), line_of(&h, "nope.pem"));
    assert!(out.contains(&at), "no {at} in:\n{out}");
    h.extra = vhost("  TLSCertificate conf/server.pem conf/nokey.pem");
    assert_configtest_fails(&h, &["cannot read the key file", "nokey.pem"]);
    // A directory is no certificate file (reading it fails, as for a served vhost).
    h.extra = vhost("  TLSCertificate conf conf/server.key");
    assert_configtest_fails(&h, &["cannot read the certificate file", "Is a directory"]);
    h.write("conf/empty.pem", "");
    h.extra = vhost("  TLSCertificate conf/empty.pem conf/server.key");
    assert_configtest_fails(&h, &["the certificate file", "empty.pem", "is empty"]);
    // Files that are there pass; the vhost stays plain HTTP.
    h.extra = vhost("  TLSCertificate conf/server.pem conf/server.key");
    assert_configtest_passes(&h);
    h.start();
    let o = h.curl(&["-sS", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://127.0.0.1:{plain}/index.html")]);
    assert_eq!(output_text(&o).trim(), "200", "{}", output_text(&o));
}

#[test]
fn key_not_matching_the_certificate() {
    let mut h = Httpd::new();
    let (_, other_key) = h.pki.issue(&["other.test"], &rcgen::PKCS_ECDSA_P256_SHA256);
    h.write("conf/other.key", other_key);
    assert_fails_at(
        &mut h,
        "  TLSCertificate conf/server.pem conf/other.key",
        "other.key",
        &["does not belong to the certificate"],
    );
}

#[test]
fn certificate_that_does_not_parse() {
    let mut h = Httpd::new();
    h.write("conf/junk.pem", "-----BEGIN CERTIFICATE-----\nMIIBAAAAAAAA\n-----END CERTIFICATE-----\n");
    assert_fails_at(&mut h, "  TLSCertificate conf/junk.pem conf/server.key", "junk.pem", &["does not parse as X.509"]);
    h.write("conf/notpem.pem", "this is not a certificate\n");
    assert_fails_at(
        &mut h,
        "  TLSCertificate conf/notpem.pem conf/server.key",
        "notpem.pem",
        &["holds no certificate"],
    );
}

#[test]
fn vhost_on_tls_port_without_certificate() {
    let mut h = Httpd::new();
    h.tls_vhost = Some(h.localhost_vhost("  # no certificate here"));
    let at = format!("{}:{}", h.path("conf/httpd.conf").display(), line_of(&h, "<VirtualHost 127.0.0.1"));
    assert_configtest_fails(&h, &[&at, "has no certificate", "TLSCertificate"]);

    // A global TLSCertificate is inherited and makes it valid.
    h.extra = "TLSCertificate conf/server.pem conf/server.key\n".into();
    assert_configtest_passes(&h);
}

#[test]
fn tls_engine_is_global_and_checked() {
    let mut h = Httpd::new();
    assert_fails_at(
        &mut h,
        "  TLSEngine 8443\n  TLSCertificate conf/server.pem conf/server.key",
        "TLSEngine 8443",
        &["TLSEngine is a global directive", "<VirtualHost>"],
    );
    for bad in ["abc", "127.0.0.1", "70000", "::1:443"] {
        h.extra = format!("TLSEngine {bad}\n");
        h.tls_vhost = None;
        let at =
            format!("line {} of {}", line_of(&h, &format!("TLSEngine {bad}")), h.path("conf/httpd.conf").display());
        assert_configtest_fails(&h, &[&at, "TLSEngine", "Write a port"]);
    }
    h.extra = String::new();
}

/// As the C module: a `TLSEngine` address that no `Listen` opens is no error (no connection can
/// arrive there): start-up notes it (a notice, where the C module says nothing) and serves the
/// others. A listened TLS address without a certificate still fails
/// (`vhost_on_tls_port_without_certificate`).
#[test]
fn tls_engine_without_listen_is_only_noted() {
    let mut h = Httpd::new();
    h.log_level = "warn".into();
    let (a, b, c) = (free_port(), free_port(), free_port());
    h.extra = format!("TLSEngine {a}\nTLSEngine 192.0.2.7:{b}\nTLSEngine [::]:{c}\n");
    let out = assert_configtest_passes(&h);
    for e in [a.to_string(), format!("192.0.2.7:{b}"), format!("[::]:{c}")] {
        assert!(out.contains(&format!("TLSEngine {e}: no Listen directive opens this address")), "{e}: {out}");
    }
    assert_eq!(out.matches("no Listen directive opens").count(), 3, "the listened one is fine: {out}");
    h.start();
    let (r, _) = h.get("/index.html", TLS13);
    assert_eq!(r.status, 200);
}

/// Stops a server started as a daemon (`apache2 -k start`) when the test ends, passed or not.
struct Daemon<'a>(&'a Httpd);

impl Daemon<'_> {
    fn run(&self, action: &str) -> std::process::Output {
        let conf = self.0.path("conf/httpd.conf");
        std::process::Command::new(HTTPD).args(["-k", action, "-f"]).arg(conf).output().unwrap()
    }
}

impl Drop for Daemon<'_> {
    fn drop(&mut self) {
        // Cleanup only: a failure here must not panic again while a failed test unwinds.
        let pid_file = self.0.path("run/httpd.pid");
        if pid_file.exists() {
            if !self.run("stop").status.success() {
                eprintln!("apache2 -k stop failed");
            }
            let gone = || if pid_file.exists() { Err("the pid file is still there".to_string()) } else { Ok(()) };
            if poll(std::time::Duration::from_secs(20), std::time::Duration::from_millis(50), gone).is_err() {
                eprintln!("httpd did not stop within 20 s");
            }
        }
    }
}

/// Warnings found while the configuration is checked reach the error log of a server started as
/// a daemon (`apache2 -k start`, as apache2ctl and systemd start it), once per start-up pass as
/// mod_ssl's and the C module's do, and again at each graceful restart; `apache2 -t` prints
/// them. Logged where they were found, before httpd opens its error log, the pass that serves
/// lost them (a daemon's stderr is /dev/null then) and the first pass put them only on the
/// terminal. The C module's test suite counts its AH10319 warning twice in the error log.
#[test]
fn start_up_warnings_reach_the_error_log_of_a_daemon() {
    let mut h = Httpd::new();
    h.log_level = "warn".into();
    let unheard = free_port();
    h.extra = format!("TLSEngine 192.0.2.7:{unheard}\n");
    h.tls_vhost = Some(h.localhost_vhost(
        "  TLSCertificate conf/server.pem conf/server.key\n  TLSCiphersPrefer TLS_NULL_WITH_NULL_NULL\n  \
         TLSCiphersSuppress TLS_RSA_WITH_RC4_128_MD5",
    ));
    let unsupported = "AH10319";
    let unlistened = format!("TLSEngine 192.0.2.7:{unheard}: no Listen directive opens this address");
    let out = assert_configtest_passes(&h);
    assert_eq!(out.matches(unsupported).count(), 1, "{out}");
    assert_eq!(out.matches(&unlistened).count(), 1, "{out}");
    let daemon = Daemon(&h);
    let started = daemon.run("start");
    assert!(started.status.success(), "{started:?}");
    let log = h.log_when("logs/error.log", |t| t.contains("resuming normal operations"));
    assert!(log.contains("resuming normal operations"), "{log}");
    assert_eq!(log.matches(unsupported).count(), 2, "once per start-up pass:\n{log}");
    assert_eq!(log.matches(&unlistened).count(), 2, "once per start-up pass:\n{log}");
    assert!(log.contains("[tls:warn]") && log.contains("TLS_NULL_WITH_NULL_NULL"), "{log}");
    // The unheard address is a notice (logged whatever LogLevel says; the C module, whose test
    // suite counts warnings, says nothing); suppressing a suite rustls never offers changes
    // nothing, and is said only at LogLevel info (the C module says nothing either).
    let unlistened_line = log.lines().find(|l| l.contains(&unlistened)).unwrap();
    assert!(unlistened_line.contains("[tls:notice]"), "{unlistened_line}");
    assert!(!log.contains("TLS_RSA_WITH_RC4_128_MD5"), "{log}");
    assert_eq!(log.matches("[tls:warn]").count(), 2, "only the preferred suite rustls lacks warns:\n{log}");
    let (r, _) = h.get("/index.html", TLS13);
    assert_eq!(r.status, 200, "the warnings stop nothing");
    assert!(daemon.run("graceful").status.success());
    let log = h.log_when("logs/error.log", |t| t.matches("resuming normal operations").count() == 2);
    assert_eq!(log.matches("resuming normal operations").count(), 2, "{log}");
    assert_eq!(log.matches(unsupported).count(), 3, "once more at the graceful restart:\n{log}");
}

/// mod_ssl and mod_tls may be loaded together, each with its own addresses; `SSLEngine on` in a
/// vhost that a `TLSEngine` address reaches fails start-up, naming both (mod_ssl on a port of its
/// own is in `serving.rs`).
#[test]
fn mod_ssl_on_a_tls_engine_address_fails() {
    let mut h = Httpd::new();
    h.extra = format!("LoadModule ssl_module {MODDIR}/mod_ssl.so\n");
    h.tls_vhost = Some(h.localhost_vhost(
        "  TLSCertificate conf/server.pem conf/server.key\n  SSLEngine on\n  \
         SSLCertificateFile conf/server.pem\n  SSLCertificateKeyFile conf/server.key",
    ));
    let at = format!("{}:{}", h.path("conf/httpd.conf").display(), line_of(&h, "<VirtualHost 127.0.0.1"));
    assert_configtest_fails(&h, &["'SSLEngine on' (mod_ssl)", "TLSEngine", &at]);
    // The same when the vhost inherits it from the top level, as mod_ssl merges it; a vhost
    // that switches it off again is fine.
    h.extra = format!(
        "LoadModule ssl_module {MODDIR}/mod_ssl.so\nSSLEngine on\nSSLCertificateFile conf/server.pem\n\
         SSLCertificateKeyFile conf/server.key\n"
    );
    h.tls_vhost = Some(h.localhost_vhost("  TLSCertificate conf/server.pem conf/server.key"));
    assert_configtest_fails(&h, &["'SSLEngine on' (mod_ssl)"]);
    // Switched off in the vhost.
    h.tls_vhost = Some(h.localhost_vhost("  TLSCertificate conf/server.pem conf/server.key\n  SSLEngine off"));
    assert_configtest_passes(&h);
}

#[test]
fn bad_certificate_also_fails_real_start() {
    let mut h = Httpd::new();
    h.tls_vhost = Some(h.localhost_vhost("  TLSCertificate conf/nope.pem"));
    let o = std::process::Command::new(HTTPD)
        .args(["-k", "start", "-f"])
        .arg({
            h.configtest();
            h.path("conf/httpd.conf")
        })
        .output()
        .unwrap();
    assert_configtest_fails(&o, &["cannot read the certificate file"]);
    assert!(std::net::TcpStream::connect(("127.0.0.1", h.tls_port)).is_err(), "nothing listens");
}

/// A key file that states its certificate's public key but holds another key (only tampering
/// makes one) passes start-up, as with mod_ssl, which compares the public keys too. Its vhost's
/// handshakes then fail, and the error log says why and what to do, in each child that tries.
#[test]
fn a_key_that_states_its_certificates_public_key_but_is_another_is_reported_where_it_fails() {
    use rustls::pki_types::pem::PemObject;
    let mut h = Httpd::new();
    let (cert_pem, key_pem) = h.pki.issue(&["localhost"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let (_, other_pem) = h.pki.issue(&["other.test"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let public_of = |pem: &str| {
        let der = rustls::pki_types::PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap();
        rcgen::KeyPair::try_from(&der).unwrap().public_key_raw().to_vec()
    };
    let (public, other_public) = (public_of(&key_pem), public_of(&other_pem));
    let mut tampered = rustls::pki_types::PrivatePkcs8KeyDer::from_pem_slice(other_pem.as_bytes())
        .unwrap()
        .secret_pkcs8_der()
        .to_vec();
    let at = tampered.windows(other_public.len()).position(|w| w == other_public).expect("the stated public key");
    tampered[at..at + public.len()].copy_from_slice(&public);
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &tampered);
    h.write("conf/site.pem", &cert_pem);
    h.write("conf/tampered.key", format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n"));
    h.tls_vhost = Some(h.localhost_vhost("  TLSCertificate conf/site.pem conf/tampered.key"));
    assert_configtest_passes(&h);
    h.start();
    let attempt = try_tls_connect(h.tls_port, "localhost", h.pki.client_config(&[&rustls::version::TLS13]));
    assert!(attempt.is_err(), "no handshake with a key that cannot sign");
    let log = h.error_log();
    assert!(log.contains("[tls:error]") && log.contains("cannot be used") && log.contains("restart httpd"), "{log}");
}
