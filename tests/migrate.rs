//! mod_tls-migrate: configurations written for mod_ssl, converted, and served side by side. Each
//! test runs httpd with mod_ssl on the original and httpd with mod_tls (mod_ssl not loaded) on
//! the conversion, and asks both the same questions with real clients: which certificate and
//! chain, which protocol and suite for each kind of client, which client certificates pass and
//! what the application sees of them, what a proxied backend answers. Any difference fails.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::*;

/// The tool under test; `MOD_TLS_MIGRATE` names another build (an earlier one, to see that a
/// test fails without a fix).
fn tool() -> String {
    std::env::var("MOD_TLS_MIGRATE").unwrap_or_else(|_| {
        // Built beside the module (crates/migrate, a member of the workspace).
        let bin = common::module_path().with_file_name("mod_tls-migrate");
        assert!(bin.exists(), "{} is missing: build the workspace first (make test does)", bin.display());
        bin.display().to_string()
    })
}

/// The tool's exit status when the conversion closed places until edited (documented).
const EXIT_CLOSED: i32 = 3;

/// Runs the tool in `cwd` (or the test's), ending it after 60 s: (exit status, configuration,
/// report on stderr). None for the status: it had to be killed.
fn run_tool(input: &Path, extra: &[&str], cwd: Option<&Path>) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(tool());
    cmd.arg("--module").arg(module_path()).args(extra).arg(input);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let out_dir = tempfile::tempdir().unwrap();
    let (out, err) = (out_dir.path().join("out"), out_dir.path().join("err"));
    let mut child = cmd
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("run mod_tls-migrate");
    let (limit, every) = (std::time::Duration::from_secs(60), std::time::Duration::from_millis(20));
    let status = match poll(limit, every, || child.try_wait().unwrap()) {
        Ok(st) => st.code(),
        Err(_) => {
            child.kill().unwrap();
            child.wait().unwrap();
            None
        }
    };
    let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
    (status, read(&out), read(&err))
}

/// Runs the tool; (converted configuration, report on stderr).
fn migrate(input: &Path, extra: &[&str]) -> (String, String) {
    let (status, conf, report) = run_tool(input, extra, None);
    assert_eq!(status, Some(0), "mod_tls-migrate failed: {report}");
    (conf, report)
}

/// The lines httpd reads (no comments): no mod_ssl directive or module may be left among them.
fn assert_no_mod_ssl_left(conf: &str) {
    // (The tool's guard of the Listen it adds asks for mod_ssl's absence.)
    for l in
        conf.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#') && *l != "<IfModule !ssl_module>")
    {
        let first = l.split_whitespace().next().unwrap_or("");
        assert!(!first.to_ascii_lowercase().starts_with("ssl"), "mod_ssl directive left: {l}\n{conf}");
        assert!(!l.contains("ssl_module") && !l.contains("mod_ssl"), "mod_ssl left: {l}\n{conf}");
    }
}

/// mod_ssl on a site, and mod_tls on its conversion.
struct Pair {
    ssl: Httpd,
    tls: Httpd,
    converted: String,
    report: String,
    /// The original as the converted server's ports have it (what the tool read).
    original: std::path::PathBuf,
}

/// `site(files, own, port)`: the mod_ssl part of a configuration whose certificates and
/// documents are under `files` (the mod_ssl server's root, shared by both), for a server whose
/// own root is `own`, on `port`.
/// `prepare` writes what the site needs into the mod_ssl server's root first.
fn pair(prepare: impl FnOnce(&Httpd), site: impl Fn(&Path, &Path, u16) -> String, tool_args: &[&str]) -> Pair {
    pair_via(prepare, site, |original| migrate(original, tool_args))
}

/// [`pair`], converting with `convert` (the original's path: (configuration, report)).
fn pair_via(
    prepare: impl FnOnce(&Httpd),
    site: impl Fn(&Path, &Path, u16) -> String,
    convert: impl FnOnce(&Path) -> (String, String),
) -> Pair {
    let mut ssl = Httpd::new();
    let mut tls = Httpd::new();
    prepare(&ssl);
    let files = ssl.root.clone();
    ssl.main_conf = Some(format!("{}{}", ssl.plain_conf(), site(&files, &ssl.root, ssl.tls_port)));
    ssl.start();
    let original =
        tls.write("conf/original.conf", format!("{}{}", tls.plain_conf(), site(&files, &tls.root, tls.tls_port)));
    let (converted, report) = convert(&original);
    assert_no_mod_ssl_left(&converted);
    tls.main_conf = Some(converted.clone());
    // apache2 -t on the conversion (a failure shows it: it is the configuration checked).
    assert_configtest_passes(&tls);
    tls.start();
    Pair { ssl, tls, converted, report, original }
}

/// A `<Directory>` for the shared documents, with CGI.
fn docs(files: &Path) -> String {
    format!(
        "<Directory \"{}/htdocs\">\n  Require all granted\n  Options +ExecCGI\n  AddHandler cgi-script .cgi\n</Directory>\n",
        files.display()
    )
}

fn write_env_cgi(h: &Httpd) {
    h.cgi("env.cgi", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nenv\n");
}

/// What a client saw of one server.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Refused,
    Served {
        version: String,
        suite: String,
        /// SHA-256 of the leaf certificate, shortened.
        leaf: String,
        chain_len: usize,
        status: u16,
        /// The TLS variables a CGI saw (when the path is a CGI).
        env: BTreeMap<String, String>,
    },
}

/// The variables compared: those the two modules give the same values (SSL_CIPHER is OpenSSL's
/// name under mod_ssl and the IANA one under mod_tls for TLS 1.2, by design).
const VARS: &[&str] = &[
    "HTTPS",
    "SSL_PROTOCOL",
    "SSL_TLS_SNI",
    "SSL_CLIENT_VERIFY",
    "SSL_CLIENT_S_DN_CN",
    "SSL_CLIENT_I_DN_CN",
    "REMOTE_USER",
    "SSL_SERVER_S_DN_CN",
];

fn probe(port: u16, config: Arc<rustls::ClientConfig>, path: &str) -> Seen {
    let Ok(mut s) = try_tls_connect(port, "localhost", config) else { return Seen::Refused };
    let certs = s.conn.peer_certificates().map(|c| c.to_vec()).unwrap_or_default();
    let version = format!("{:?}", s.conn.protocol_version().unwrap());
    let suite = format!("{:?}", s.conn.negotiated_cipher_suite().unwrap().suite());
    if s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes()).is_err() {
        return Seen::Refused;
    }
    let mut raw = Vec::new();
    if s.read_to_end(&mut raw).is_err() || raw.is_empty() {
        // TLS 1.3: a refused client certificate is answered after the client's last flight.
        return Seen::Refused;
    }
    let r = Response::parse(&raw).0;
    let mut env = BTreeMap::new();
    if path.ends_with(".cgi") {
        for line in r.text().lines() {
            if let Some((k, v)) = line.split_once('=') {
                if VARS.contains(&k) {
                    env.insert(k.to_string(), v.to_string());
                }
                if k == "SSL_CLIENT_CERT" {
                    let value = if v.is_empty() { "empty" } else { "PEM" };
                    env.insert("SSL_CLIENT_CERT (exported)".into(), value.into());
                }
            }
        }
    }
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, certs.first().map(|c| c.as_ref()).unwrap_or(&[]));
    let leaf = digest.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect();
    Seen::Served { version, suite, leaf, chain_len: certs.len(), status: r.status, env }
}

/// Kinds of clients: both versions, each version alone, each suite alone, and each version with
/// its suites in reverse order (which tells whether the server's order or the client's wins).
/// The TLS 1.2 clients offer TLS 1.2 suites only, as clients without TLS 1.3 do (a rustls client
/// limited to TLS 1.2 would still list its TLS 1.3 suites).
fn clients(pki: &Pki) -> Vec<(String, Arc<rustls::ClientConfig>)> {
    let both = &[&rustls::version::TLS13, &rustls::version::TLS12][..];
    let tls12_only = |p: &mut rustls::crypto::CryptoProvider| {
        p.cipher_suites.retain(|s| matches!(s, rustls::SupportedCipherSuite::Tls12(_)))
    };
    let mut out = vec![
        ("default".to_string(), pki.client_config(both)),
        ("TLS 1.2".to_string(), Arc::new(pki.client_config_with(TLS12, tls12_only, |_| {}))),
        ("TLS 1.3".to_string(), pki.client_config(TLS13)),
    ];
    let reversed12 = pki.client_config_with(
        TLS12,
        |p| {
            tls12_only(p);
            p.cipher_suites.reverse()
        },
        |_| {},
    );
    out.push(("TLS 1.2 reversed".to_string(), Arc::new(reversed12)));
    let reversed13 = pki.client_config_with(TLS13, |p| p.cipher_suites.reverse(), |_| {});
    out.push(("TLS 1.3 reversed".to_string(), Arc::new(reversed13)));
    for suite in rustls::crypto::aws_lc_rs::default_provider().cipher_suites {
        let versions = if matches!(suite, rustls::SupportedCipherSuite::Tls13(_)) { TLS13 } else { TLS12 };
        let cfg = pki.client_config_with(versions, |p| p.cipher_suites = vec![suite], |_| {});
        out.push((format!("only {:?}", suite.suite()), Arc::new(cfg)));
    }
    out
}

/// Asks both servers as each client; fails with the whole table if any answer differs.
/// Returns what mod_tls answered, for the caller's own checks.
fn compare(p: &Pair, path: &str, clients: &[(String, Arc<rustls::ClientConfig>)]) -> BTreeMap<String, Seen> {
    let mut table = String::new();
    let mut differ = false;
    let mut ours = BTreeMap::new();
    for (label, cfg) in clients {
        let a = probe(p.ssl.tls_port, cfg.clone(), path);
        let b = probe(p.tls.tls_port, cfg.clone(), path);
        differ |= a != b;
        table.push_str(&format!("{label} {path}:\n  mod_ssl: {a:?}\n  mod_tls: {b:?}\n"));
        ours.insert(label.clone(), b);
    }
    assert!(!differ, "mod_ssl and the converted mod_tls differ:\n{table}\nconverted:\n{}", p.converted);
    ours
}

fn served(s: &Seen) -> bool {
    matches!(s, Seen::Served { status: 200, .. })
}

/// The line number of the first line of `file` containing `needle`.
fn line_of(file: &Path, needle: &str) -> usize {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle} not in {}", file.display())) + 1
}

#[test]
fn debians_default_ssl_site_and_global_settings() {
    let site_file = "/etc/apache2/sites-available/default-ssl.conf";
    let global_file = "/etc/apache2/mods-available/ssl.conf";
    let site_text = std::fs::read_to_string(site_file).expect("Debian's default-ssl.conf (package apache2)");
    let global_text = std::fs::read_to_string(global_file).expect("Debian's mods-available/ssl.conf");
    // Debian's files as they are, but for the test's certificates, documents and ports.
    let site = |files: &Path, own: &Path, port: u16| {
        let f = files.display();
        let mut text = site_text.clone();
        for (from, to) in [
            ("*:443", format!("127.0.0.1:{port}")),
            ("/etc/ssl/certs/ssl-cert-snakeoil.pem", format!("{f}/conf/server.pem")),
            ("/etc/ssl/private/ssl-cert-snakeoil.key", format!("{f}/conf/server.key")),
            ("/var/www/html", format!("{f}/htdocs")),
        ] {
            assert!(text.contains(from), "Debian's default-ssl.conf no longer has {from}");
            text = text.replace(from, &to);
        }
        let own_site = own.join(format!("conf/default-ssl-{port}.conf"));
        std::fs::write(&own_site, text).unwrap();
        format!(
            "Define APACHE_LOG_DIR {own}/logs\nDefine APACHE_RUN_DIR {own}/run\n\
             LoadModule ssl_module {MODDIR}/mod_ssl.so\nListen 127.0.0.1:{port}\n{docs}\
             Include {global_file}\nInclude {site}\n",
            own = own.display(),
            docs = docs(files),
            site = own_site.display()
        )
    };
    let p = pair(write_env_cgi, site, &[]);
    assert!(!global_text.is_empty());

    let ours = compare(&p, "/", &clients(&p.ssl.pki));
    assert!(served(&ours["default"]) && served(&ours["TLS 1.2"]), "{ours:?}");
    // The .cgi FilesMatch section's +StdEnvVars.
    let env = compare(&p, "/env.cgi", &clients(&p.ssl.pki)[..3]);
    let Seen::Served { env, .. } = &env["default"] else { panic!("{env:?}") };
    assert_eq!(env.get("HTTPS").map(String::as_str), Some("on"), "{env:?}");
    assert_eq!(env.get("SSL_PROTOCOL").map(String::as_str), Some("TLSv1.3"), "{env:?}");

    // What the conversion says about Debian's global settings, with their lines.
    let g = Path::new(global_file);
    for (needle, says) in [
        ("SSLRandomSeed startup builtin", "SSLRandomSeed: not needed"),
        ("SSLSessionTickets", "SSLSessionTickets: not needed"),
        ("SSLProtocol", "SSLProtocol: note: TLSv1, TLSv1.1 not offered"),
    ] {
        let want = format!("{global_file}:{}: {says}", line_of(g, needle));
        assert!(p.report.contains(&want), "report lacks {want}:\n{}", p.report);
    }
    assert!(p.report.contains("0 not carried over"), "{}", p.report);
    for want in ["TLSSessionCache shmcb:", "TLSProtocol v1.2+", "TLSOptions +StdEnvVars", "TLSPassPhraseDialog exec:"] {
        assert!(p.converted.contains(want), "{want}:\n{}", p.converted);
    }
    assert!(p.converted.contains(&format!("TLSEngine 127.0.0.1:{}\n", p.tls.tls_port)), "{}", p.converted);
    p.tls.assert_no_crash();
}

/// An equivalent of httpd's stock conf/extra/httpd-ssl.conf (written for this test): global
/// suites with the server's order, protocols, the builtin passphrase dialog, a session cache,
/// and a `_default_` vhost with an RSA certificate, CGI variables and mod_ssl's request log.
fn stock_site(files: &Path, own: &Path, port: u16) -> String {
    let f = files.display();
    let o = own.display();
    format!(
        r#"LoadModule ssl_module {MODDIR}/mod_ssl.so
LoadModule setenvif_module {MODDIR}/mod_setenvif.so
Listen 127.0.0.1:{port}
{docs}
SSLCipherSuite HIGH:MEDIUM:!MD5:!RC4:!3DES
SSLProxyCipherSuite HIGH:MEDIUM:!MD5:!RC4:!3DES
SSLHonorCipherOrder on
SSLProtocol all -SSLv3
SSLProxyProtocol all -SSLv3
SSLPassPhraseDialog  builtin
SSLSessionCache        "shmcb:{o}/run/ssl_scache(512000)"
SSLSessionCacheTimeout  300

<VirtualHost _default_:{port}>
DocumentRoot "{f}/htdocs"
ServerName localhost:{port}
ServerAdmin you@example.com
ErrorLog "{o}/logs/error_log"
TransferLog "{o}/logs/access_log"
SSLEngine on
SSLCertificateFile "{f}/conf/rsa.pem"
SSLCertificateKeyFile "{f}/conf/rsa.key"
<FilesMatch "\.(cgi|shtml|phtml|php)$">
    SSLOptions +StdEnvVars
</FilesMatch>
<Directory "{f}/cgi-bin">
    SSLOptions +StdEnvVars
</Directory>
BrowserMatch "MSIE [2-5]" \
         nokeepalive ssl-unclean-shutdown \
         downgrade-1.0 force-response-1.0
CustomLog "{o}/logs/ssl_request_log" \
          "%t %h %{{SSL_PROTOCOL}}x %{{SSL_CIPHER}}x \"%r\" %b"
</VirtualHost>
"#,
        docs = docs(files)
    )
}

#[test]
fn an_equivalent_of_httpds_stock_httpd_ssl_conf() {
    // The stock file names an RSA certificate: one of the mod_ssl server's CA, which the clients trust.
    let prepare = |h: &Httpd| {
        let (cert, key) = h.pki.issue(&["localhost", "127.0.0.1"], &rcgen::PKCS_RSA_SHA256);
        h.write("conf/rsa.pem", cert);
        h.write("conf/rsa.key", key);
        write_env_cgi(h);
    };
    let p = pair(prepare, stock_site, &[]);
    let all = clients(&p.ssl.pki);
    let ours = compare(&p, "/", &all);
    // The server's order wins, as SSLHonorCipherOrder on made it under mod_ssl.
    for label in ["default", "TLS 1.2", "TLS 1.3 reversed", "only TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"] {
        assert!(served(&ours[label]), "{label}: {:?}", ours[label]);
    }
    let Seen::Served { suite, .. } = &ours["TLS 1.2 reversed"] else { unreachable!() };
    assert_eq!(suite, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "the server's (OpenSSL's HIGH) order");
    assert!(matches!(ours["only TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"], Seen::Refused), "RSA certificate only");
    compare(&p, "/env.cgi", &all[..3]);
    // mod_ssl's request log format, served by mod_tls's %{…}x handlers.
    let log = p.tls.log_when("logs/ssl_request_log", |l| l.lines().count() >= all.len());
    assert!(log.contains(" TLSv1.3 TLS_AES_256_GCM_SHA384 \"GET / HTTP/1.1\""), "{log}");
    assert!(log.contains(" TLSv1.2 TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 \"GET / HTTP/1.1\""), "{log}");

    assert!(p.converted.contains("TLSHonorClientOrder off"), "{}", p.converted);
    assert!(p.converted.contains(&format!("\nTLSEngine {}\n", p.tls.tls_port)), "{}", p.converted);
    let o = p.original.display();
    let line = |n: &str| line_of(&p.original, n);
    for want in [
        format!("{o}:{}: SSLPassPhraseDialog: not needed", line("SSLPassPhraseDialog")),
        format!("{o}:{}: SSLSessionCacheTimeout: note", line("SSLSessionCacheTimeout")),
        format!("{o}:{}: SSLCipherSuite: note: ", line("SSLCipherSuite HIGH")),
        format!("{o}:{}: SSLProxyProtocol: note: TLSv1, TLSv1.1 not offered", line("SSLProxyProtocol")),
    ] {
        assert!(p.report.contains(&want), "report lacks {want}:\n{}", p.report);
    }
    p.tls.assert_no_crash();
}

/// Client certificates: required or optional, a CA and the CRLs of the whole chain, checked
/// for the chain; what the application sees (+StdEnvVars +ExportCertData, SSLUserName), and the
/// server certificate's chain from SSLCertificateChainFile (combined with --chain-dir).
fn client_auth_site(mode: &'static str) -> impl Fn(&Path, &Path, u16) -> String {
    move |files: &Path, _own: &Path, port: u16| {
        let f = files.display();
        format!(
            r#"LoadModule ssl_module {MODDIR}/mod_ssl.so
Listen 127.0.0.1:{port}
{docs}
<VirtualHost 127.0.0.1:{port}>
  ServerName localhost
  DocumentRoot "{f}/htdocs"
  SSLEngine on
  SSLCertificateFile {f}/conf/server.pem
  SSLCertificateKeyFile {f}/conf/server.key
  SSLCertificateChainFile {f}/conf/ca.pem
  SSLVerifyClient {mode}
  SSLVerifyDepth 5
  SSLCACertificateFile {f}/conf/client/clientca.pem
  SSLCARevocationFile {f}/conf/client/crls.pem
  SSLCARevocationCheck chain
  SSLOptions +StdEnvVars +ExportCertData
  SSLUserName SSL_CLIENT_S_DN_CN
  <Location /admin>
    SSLVerifyClient require
  </Location>
</VirtualHost>
"#,
            docs = docs(files)
        )
    }
}

fn who_clients(h: &Httpd) -> Vec<(String, Arc<rustls::ClientConfig>)> {
    let mut out = Vec::new();
    for who in [None, Some("alice"), Some("bob"), Some("eve"), Some("mallory"), Some("carol")] {
        for (v, versions) in [("1.3", TLS13), ("1.2", TLS12)] {
            out.push((format!("{} TLS {v}", who.unwrap_or("anonymous")), client_config(h, who, versions)));
        }
    }
    out
}

#[test]
fn client_certificates_with_revocation_and_a_chain_file() {
    for mode in ["optional", "require"] {
        let chains = tempfile::tempdir().unwrap();
        let chain_arg = chains.path().display().to_string();
        let prepare = |h: &Httpd| {
            ClientPki::new().install(h);
            let crls = ["root.crl", "inter.crl"]
                .map(|n| std::fs::read_to_string(h.path(&format!("conf/client/{n}"))).unwrap());
            h.write("conf/client/crls.pem", crls.concat());
            write_env_cgi(h);
        };
        let p = pair(prepare, client_auth_site(mode), &["--chain-dir", &chain_arg]);

        let ours = compare(&p, "/env.cgi", &who_clients(&p.ssl));
        // Not vacuous: alice is served and seen, bob (revoked) and mallory (unknown CA) are not.
        let Seen::Served { env, chain_len, .. } = &ours["alice TLS 1.3"] else { panic!("{mode}: {ours:?}") };
        assert_eq!(env.get("SSL_CLIENT_VERIFY").map(String::as_str), Some("SUCCESS"), "{env:?}");
        assert_eq!(env.get("REMOTE_USER").map(String::as_str), Some("alice"), "{env:?}");
        assert!(env.contains_key("SSL_CLIENT_CERT (exported)"), "{env:?}");
        assert_eq!(*chain_len, 2, "the leaf and SSLCertificateChainFile's certificate");
        assert!(served(&ours["carol TLS 1.2"]), "{ours:?}");
        for refused in ["bob TLS 1.3", "bob TLS 1.2", "mallory TLS 1.3", "eve TLS 1.2"] {
            assert_eq!(ours[refused], Seen::Refused, "{mode}: {refused}");
        }
        assert_eq!(served(&ours["anonymous TLS 1.3"]), mode == "optional", "{mode}: {:?}", ours["anonymous TLS 1.3"]);

        let combined = chains.path().join("server-with-chain.pem");
        assert!(p.converted.contains(&format!("TLSCertificate {} ", combined.display())), "{}", p.converted);
        let o = p.original.display();
        let line = |n: &str| line_of(&p.original, n);
        for want in [
            format!("{o}:{}: SSLVerifyDepth: not carried over: no depth limit", line("SSLVerifyDepth")),
            format!("{o}:{}: SSLVerifyClient: not carried over: per-directory", line("    SSLVerifyClient require")),
            format!(
                "{o}:{}: SSLCertificateFile: note: certificate and SSLCertificateChainFile combined",
                line("SSLCertificateFile")
            ),
        ] {
            assert!(p.report.contains(&want), "report lacks {want}:\n{}", p.report);
        }
        p.tls.assert_no_crash();
    }
}

/// A backend for the proxy test: mod_tls with its own CA, serving `body`; `extra` inside its vhost.
fn backend(body: &str, vhost_extra: &str) -> Httpd {
    let mut b = Httpd::new();
    b.tls_vhost = Some(b.localhost_vhost(&format!("  TLSCertificate conf/server.pem conf/server.key\n{vhost_extra}")));
    b.write("htdocs/index.html", body);
    b
}

#[test]
fn a_reverse_proxy_to_tls_backends() {
    // b1: trusted; b2: trusted, wants a client certificate from the front's CA; b3: untrusted.
    let mut b1 = backend("backend one\n", "");
    b1.start();
    let mut b2 = backend("backend two\n", "  TLSClientCertificate required\n  TLSClientCA conf/front-ca.pem\n");
    // b2 has b1's certificate: the test CAs share one name, and OpenSSL looks issuers up by name.
    for f in ["conf/server.pem", "conf/server.key"] {
        std::fs::copy(b1.path(f), b2.path(f)).unwrap();
    }
    let mut b3 = backend("backend three\n", "");
    b3.start();
    // b4: accepts and closes at once, in the middle of our handshake (a network failure).
    let closer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p4 = closer.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in closer.incoming() {
            drop(conn);
        }
    });
    let ports = (b1.tls_port, b2.tls_port, b3.tls_port, p4);
    let cas = b1.pki.ca_pem.clone();
    let prepare = |h: &Httpd| {
        h.write("conf/backend-cas.pem", &cas);
        std::fs::copy(h.path("conf/ca.pem"), b2.path("conf/front-ca.pem")).unwrap();
        let (cert, key) = h.pki.issue(&["front.test"], &rcgen::PKCS_ECDSA_P256_SHA256);
        h.write("conf/machine.pem", format!("{cert}{key}"));
        // b2 reads the front's CA, which exists once the mod_ssl side's root is made.
        b2.start();
    };
    let site = move |files: &Path, _own: &Path, port: u16| {
        let f = files.display();
        let (p1, p2, p3, p4) = ports;
        format!(
            r#"LoadModule ssl_module {MODDIR}/mod_ssl.so
LoadModule proxy_module {MODDIR}/mod_proxy.so
LoadModule proxy_http_module {MODDIR}/mod_proxy_http.so
Listen 127.0.0.1:{port}
SSLProxyEngine on
SSLProxyCACertificateFile {f}/conf/backend-cas.pem
SSLProxyProtocol all -SSLv3 -TLSv1 -TLSv1.1
SSLProxyCipherSuite HIGH:!aNULL
SSLProxyVerify require
SSLProxyCheckPeerName on
<VirtualHost 127.0.0.1:{port}>
  ServerName localhost
  SSLEngine on
  SSLCertificateFile {f}/conf/server.pem
  SSLCertificateKeyFile {f}/conf/server.key
  ProxyPass /b1/ https://localhost:{p1}/
  ProxyPass /b2/ https://localhost:{p2}/
  ProxyPass /b3/ https://localhost:{p3}/
  ProxyPass /b4/ https://localhost:{p4}/
  <Proxy "https://localhost:{p2}/">
    SSLProxyMachineCertificateFile {f}/conf/machine.pem
  </Proxy>
</VirtualHost>
"#
        )
    };
    let p = pair(prepare, site, &[]);
    let client = p.ssl.pki.client_config(TLS13);
    let mut seen = Vec::new();
    for path in ["/b1/index.html", "/b2/index.html", "/b3/index.html", "/b4/index.html"] {
        let get = |port: u16| {
            let mut s = tls_connect(port, "localhost", client.clone());
            let r = get_on(&mut s, path, "localhost");
            (r.status, r.text())
        };
        let (a, b) = (get(p.ssl.tls_port), get(p.tls.tls_port));
        assert_eq!(a, b, "{path}: mod_ssl answered {a:?}, the converted mod_tls {b:?}\n{}", p.converted);
        seen.push(b);
    }
    assert_eq!(seen[0], (200, "backend one\n".to_string()));
    assert_eq!(seen[1], (200, "backend two\n".to_string()), "the machine certificate was presented");
    assert_eq!(seen[2].0, 500, "an untrusted backend: 500 Error during SSL Handshake, as with mod_ssl");
    assert_eq!(seen[3].0, 500, "a backend that hangs up during the handshake: the same");
    for want in ["TLSProxyEngine on", "TLSProxyProtocol v1.2+", "TLSProxyCA ", "TLSProxyMachineCertificate "] {
        assert!(p.converted.contains(want), "{want}:\n{}", p.converted);
    }
    let o = p.original.display();
    for (needle, says) in [
        ("SSLProxyVerify", "SSLProxyVerify: not needed"),
        ("SSLProxyCheckPeerName", "SSLProxyCheckPeerName: not needed"),
    ] {
        let want = format!("{o}:{}: {says}", line_of(&p.original, needle));
        assert!(p.report.contains(&want), "report lacks {want}:\n{}", p.report);
    }
    p.tls.assert_no_crash();
}

/// What has no twin is listed with the file and line it is on (Included files too), and the
/// conversion still passes `apache2 -t` with mod_tls alone.
#[test]
fn what_cannot_be_carried_over_is_listed_with_file_and_line() {
    let h = Httpd::new();
    let root = h.root.display().to_string();
    let vhost = h.write(
        "conf/sites/secure.conf",
        format!(
            r#"<VirtualHost 127.0.0.1:{port}>
  ServerName localhost
  SSLEngine on
  SSLCertificateFile conf/server.pem
  SSLCertificateKeyFile conf/server.key
  SSLOpenSSLConfCmd Curves X25519:secp256r1
  SSLCipherSuite TLSv1.3 TLS_AES_256_GCM_SHA384
  SSLCACertificatePath {root}/conf
  SSLOptions +FakeBasicAuth +StdEnvVars
  SSLUseStapling on
  <Location /admin>
    SSLVerifyClient require
    SSLRequireSSL
  </Location>
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
  ServerName plain.localhost
</VirtualHost>
"#,
            port = h.tls_port
        ),
    );
    let main = h.write(
        "conf/original.conf",
        format!(
            "{}LoadModule ssl_module {MODDIR}/mod_ssl.so\nListen 127.0.0.1:{}\n<IfModule mod_ssl.c>\n  SSLProtocol TLSv1.2\n</IfModule>\nIncludeOptional conf/sites/*.conf\n",
            h.plain_conf(),
            h.tls_port
        ),
    );
    let (status, converted, report) = run_tool(&main, &["-d", &root], None);
    // The per-directory SSLVerifyClient (the vhost asks for no certificate) and +FakeBasicAuth
    // leave places closed until edited.
    assert_eq!(status, Some(EXIT_CLOSED), "{report}");
    assert_no_mod_ssl_left(&converted);
    let v = vhost.display();
    let m = main.display();
    let at = |file: &Path, needle: &str| line_of(file, needle);
    for want in [
        format!("{m}:{}: SSLProtocol: not carried over: TLS 1.3 is offered too", at(&main, "SSLProtocol")),
        format!("{v}:{}: SSLOpenSSLConfCmd: not carried over: OpenSSL's own setting", at(&vhost, "SSLOpenSSLConfCmd")),
        format!(
            "{v}:{}: SSLCACertificatePath: note: TLSClientCA reads the directory",
            at(&vhost, "SSLCACertificatePath")
        ),
        format!("{v}:{}: SSLOptions: not carried over: SSLOptions +FakeBasicAuth", at(&vhost, "SSLOptions")),
        format!("{v}:{}: SSLUseStapling: note: OCSP stapling comes from mod_md", at(&vhost, "SSLUseStapling")),
        format!("{v}:{}: SSLVerifyClient: not carried over: per-directory", at(&vhost, "SSLVerifyClient")),
        format!("{v}:{}: SSLRequireSSL: note: an access restriction: Require ssl", at(&vhost, "SSLRequireSSL")),
        format!("{v}:{}: section: not carried over: this vhost has no SSLEngine on", at(&vhost, "plain.localhost") - 1),
    ] {
        assert!(report.contains(&want), "report lacks {want}:\n{report}");
    }
    // The TLS 1.3 list keeps one suite: the others are suppressed.
    assert!(
        converted.contains("TLSCiphersSuppress TLS_CHACHA20_POLY1305_SHA256 TLS_AES_128_GCM_SHA256")
            || converted.contains("TLSCiphersSuppress TLS_AES_128_GCM_SHA256 TLS_CHACHA20_POLY1305_SHA256"),
        "{converted}"
    );
    assert!(converted.contains("<IfModule tls_module>"), "{converted}");
    let mut t = Httpd::new();
    t.main_conf = Some(converted.replace(&root, &t.root.display().to_string()));
    std::fs::create_dir_all(t.path("conf/sites")).unwrap();
    for f in ["server.pem", "server.key"] {
        std::fs::copy(h.path(&format!("conf/{f}")), t.path(&format!("conf/{f}"))).unwrap();
    }
    assert_configtest_passes(&t);
}

/// RSA and ECDSA certificates on one vhost, RSA named first (as most configurations have them):
/// every kind of client gets the same certificate and suite from both servers.
#[test]
fn rsa_and_ecdsa_certificates_on_one_vhost() {
    for order in ["off", "on"] {
        let prepare = |h: &Httpd| {
            let (cert, key) = h.pki.issue(&["localhost", "127.0.0.1"], &rcgen::PKCS_RSA_SHA256);
            h.write("conf/rsa.pem", cert);
            h.write("conf/rsa.key", key);
        };
        let site = move |files: &Path, _own: &Path, port: u16| {
            let f = files.display();
            format!(
                "LoadModule ssl_module {MODDIR}/mod_ssl.so\nListen 127.0.0.1:{port}\n\
                 <VirtualHost 127.0.0.1:{port}>\n  ServerName localhost\n  SSLEngine on\n  SSLHonorCipherOrder {order}\n\
                 SSLCertificateFile {f}/conf/rsa.pem\n  SSLCertificateKeyFile {f}/conf/rsa.key\n\
                 SSLCertificateFile {f}/conf/server.pem\n  SSLCertificateKeyFile {f}/conf/server.key\n</VirtualHost>\n"
            )
        };
        let p = pair(prepare, site, &[]);
        let ours = compare(&p, "/", &clients(&p.ssl.pki));
        assert!(served(&ours["only TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]), "{ours:?}");
        assert!(served(&ours["only TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]), "{ours:?}");
    }
}

/// A shared library that leaves `marker` behind when anything loads it.
fn marker_library(dir: &Path, marker: &Path) -> std::path::PathBuf {
    let src = dir.join("evil.c");
    std::fs::write(
        &src,
        format!(
            "#include <stdio.h>\n__attribute__((constructor)) static void hit(void) {{\n  \
             FILE *f = fopen(\"{}\", \"w\");\n  if (f) fclose(f);\n}}\n",
            marker.display()
        ),
    )
    .unwrap();
    let lib = dir.join("evil.so");
    let cc = Command::new("cc").args(["-shared", "-fPIC", "-o"]).arg(&lib).arg(&src).output().expect("run cc");
    assert!(cc.status.success(), "cc: {}", output_text(&cc));
    lib
}

/// A cipher list is data: `SSLCipherSuite -provider=/x.so` makes neither mod_ssl nor the tool's
/// `openssl ciphers` load that library; mod_ssl refuses the list, and the tool reports it as invalid.
#[test]
fn a_cipher_list_never_makes_openssl_load_a_library() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("LOADED");
    let lib = marker_library(dir.path(), &marker);
    // The library does run when loaded: the test would see it.
    let probe = Command::new("openssl").arg("list").arg(format!("-provider={}", lib.display())).output().unwrap();
    assert!(marker.exists(), "the marker library left no mark when openssl loaded it: {}", output_text(&probe));
    std::fs::remove_file(&marker).unwrap();

    let evil = format!("-provider={}", lib.display());
    let site = |evil: &str, port: u16| {
        format!(
            "LoadModule ssl_module {MODDIR}/mod_ssl.so\nListen 127.0.0.1:{port}\n\
             <VirtualHost 127.0.0.1:{port}>\n  ServerName localhost\n  SSLEngine on\n\
             SSLCertificateFile conf/server.pem\n  SSLCertificateKeyFile conf/server.key\n  SSLCipherSuite {evil}\n\
             SSLCipherSuite TLSv1.3 {evil}\n  SSLProxyCipherSuite {evil}\n</VirtualHost>\n"
        )
    };
    // mod_ssl: the list is refused, nothing loaded.
    let mut ssl = Httpd::new();
    ssl.main_conf = Some(format!("{}{}", ssl.plain_conf(), site(&evil, ssl.tls_port)));
    let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ssl.start();
    }));
    assert!(started.is_err(), "mod_ssl started with the cipher list {evil}");
    assert!(!marker.exists(), "mod_ssl loaded {}", lib.display());

    let tls = Httpd::new();
    let original = tls.write("conf/original.conf", format!("{}{}", tls.plain_conf(), site(&evil, tls.tls_port)));
    let (status, converted, report) = run_tool(&original, &[], None);
    assert!(!marker.exists(), "mod_tls-migrate made openssl load {}:\n{report}", lib.display());
    assert_eq!(status, Some(0), "{report}");
    assert_no_mod_ssl_left(&converted);
    let o = original.display();
    for (needle, says) in [
        (
            "SSLCipherSuite -",
            format!("SSLCipherSuite: not carried over: cipher list '{evil}': OpenSSL finds no cipher"),
        ),
        // (Both lists' findings are filed at the scope's first cipher line.)
        ("SSLCipherSuite -", format!("SSLCipherSuite: not carried over: TLS 1.3 list '{evil}': OpenSSL finds no")),
        (
            "SSLProxyCipherSuite",
            format!("SSLProxyCipherSuite: not carried over: cipher list '{evil}': OpenSSL finds no"),
        ),
    ] {
        let want = format!("{o}:{}: {says}", line_of(&original, needle));
        assert!(report.contains(&want), "report lacks {want}:\n{report}");
    }
}

/// `--chain-dir` writes certificates only (never the key a certificate file holds too), creates
/// its files new (a link planted at the name is not followed), with absolute names for a relative
/// directory; a chain file that is the certificate file itself is not appended (mod_ssl skips it).
#[test]
fn chain_dir_writes_certificates_only_and_new_files() {
    let prepare = |h: &Httpd| {
        // One vhost's certificate file holds its key (no SSLCertificateKeyFile); the other's is
        // a full chain also named as its chain file.
        let key = std::fs::read_to_string(h.path("conf/server.key")).unwrap();
        let cert = std::fs::read_to_string(h.path("conf/server.pem")).unwrap();
        h.write("conf/with-key.pem", format!("{cert}{key}"));
        let (full, full_key) = h.pki.issue(&["full.localhost"], &rcgen::PKCS_ECDSA_P256_SHA256);
        h.write("conf/fullchain.pem", format!("{full}{}", h.pki.ca_pem));
        h.write("conf/full.key", full_key);
    };
    let site = |files: &Path, _own: &Path, port: u16| {
        let f = files.display();
        format!(
            "LoadModule ssl_module {MODDIR}/mod_ssl.so\nListen 127.0.0.1:{port}\n\
             <VirtualHost 127.0.0.1:{port}>\n  ServerName localhost\n  SSLEngine on\n\
             SSLCertificateFile {f}/conf/with-key.pem\n  SSLCertificateChainFile {f}/conf/ca.pem\n</VirtualHost>\n\
             <VirtualHost 127.0.0.1:{port}>\n  ServerName full.localhost\n  SSLEngine on\n\
             SSLCertificateFile {f}/conf/fullchain.pem\n  SSLCertificateKeyFile {f}/conf/full.key\n\
             SSLCertificateChainFile {f}/conf/fullchain.pem\n</VirtualHost>\n"
        )
    };
    let work = tempfile::tempdir().unwrap();
    let chains = work.path().join("chains");
    std::fs::create_dir(&chains).unwrap();
    // A link planted where the first combined file goes, to a file it must not touch.
    let victim = work.path().join("victim");
    std::fs::write(&victim, "untouched\n").unwrap();
    std::os::unix::fs::symlink(&victim, chains.join("with-key-with-chain.pem")).unwrap();
    let p = pair_via(prepare, site, |original| {
        let (status, conf, report) = run_tool(original, &["--chain-dir", "chains"], Some(work.path()));
        assert_eq!(status, Some(0), "{report}");
        (conf, report)
    });
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched\n", "the planted link was followed");
    let written: Vec<_> = std::fs::read_dir(&chains)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| std::fs::symlink_metadata(p).unwrap().is_file())
        .collect();
    assert_eq!(written.len(), 1, "{written:?}\n{}", p.report);
    let text = std::fs::read_to_string(&written[0]).unwrap();
    assert!(!text.contains("PRIVATE KEY"), "a private key was copied into {}:\n{text}", written[0].display());
    assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 2, "{text}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&written[0]).unwrap().permissions().mode() & 0o777, 0o644);
    // Absolute, though --chain-dir was relative; the key stays in the file that has it.
    assert!(p.converted.contains(&format!("TLSCertificate {} ", written[0].display())), "{}", p.converted);
    // Both vhosts serve the same chains as under mod_ssl (the full chain once, not the leaf twice).
    for name in ["localhost", "full.localhost"] {
        let chain = |port: u16| {
            let cfg = p.ssl.pki.client_config_with(TLS13, |_| {}, |c| c.enable_sni = true);
            let s = try_tls_connect(port, name, Arc::new(cfg)).expect("handshake");
            s.conn.peer_certificates().map(|c| c.len()).unwrap_or(0)
        };
        let (a, b) = (chain(p.ssl.tls_port), chain(p.tls.tls_port));
        assert_eq!(a, b, "{name}: mod_ssl sent {a} certificates, the converted mod_tls {b}\n{}", p.converted);
        assert_eq!(a, 2, "{name}");
    }
    p.tls.assert_no_crash();
}

/// Include loops end, and what is not a configuration file is refused, each with a message
/// naming the file (httpd refuses these configurations too, and the tool must not hang on them).
#[test]
fn include_loops_and_files_that_are_no_configuration_end_with_a_message() {
    let h = Httpd::new();
    let base = format!("{}LoadModule ssl_module {MODDIR}/mod_ssl.so\n", h.plain_conf());
    // A directory holding a link to itself.
    std::fs::create_dir_all(h.path("conf/dir")).unwrap();
    h.write("conf/dir/a.conf", "SSLSessionCacheTimeout 300\n");
    std::os::unix::fs::symlink(".", h.path("conf/dir/x")).unwrap();
    // Two files including each other.
    h.write("conf/one.conf", "Include conf/two.conf\n");
    h.write("conf/two.conf", "Include conf/one.conf\n");
    // A FIFO (nobody writes to it) and a file too large to be a configuration.
    let fifo = h.path("conf/fifo.conf");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let big = h.path("conf/big.conf");
    std::fs::File::create(&big).unwrap().set_len(64 << 20).unwrap();
    for (include, says) in [
        ("conf/dir", "a directory loop"),
        ("conf/one.conf", "an Include loop"),
        ("conf/fifo.conf", "not a regular file"),
        ("/dev/zero", "not a regular file"),
        ("conf/big.conf", "not a configuration file"),
    ] {
        let top = h.write("conf/original.conf", format!("{base}Include {include}\n"));
        // httpd does not start on a loop either.
        if says.contains("loop") {
            assert_configtest_fails(&Command::new(HTTPD).arg("-t").arg("-f").arg(&top).output().unwrap(), &[]);
        }
        let (status, conf, report) = run_tool(&top, &[], None);
        assert_eq!(status, Some(1), "Include {include}: {report}");
        assert!(conf.is_empty(), "Include {include}: output written:\n{conf}");
        assert!(report.contains(says), "Include {include}: report lacks {says}:\n{report}");
    }
}

/// The status of a GET of `path` with `headers`, over TLS with `config` (None: the handshake or
/// the request was refused).
fn status_of(port: u16, config: Arc<rustls::ClientConfig>, path: &str, headers: &str) -> Option<u16> {
    let mut s = try_tls_connect(port, "localhost", config).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    if s.read_to_end(&mut raw).is_err() && raw.is_empty() {
        return None;
    }
    (!raw.is_empty()).then(|| Response::parse(&raw).0.status)
}

/// A plain-HTTP GET's status.
fn plain_status(port: u16, path: &str) -> u16 {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    Response::parse(&raw).0.status
}

/// SSLRequire expressions that translate, each with what it exercises.
const TRANSLATED: &[&str] = &[
    r#"%{SSL_CLIENT_S_DN_O} eq "Example""#,
    r#"%{SSL_CLIENT_S_DN_CN} == "alice" || %{SSL_CLIENT_S_DN_CN} == 'carol'"#,
    r#"%{SSL_CLIENT_S_DN_CN} in {"carol", "dave"}"#,
    r"%{SSL_CLIENT_S_DN_CN} =~ m/^al/ and %{SSL_CLIENT_I_DN_CN} !~ /Intermediate/",
    r#"not (%{SSL_CLIENT_VERIFY} ne "SUCCESS")"#,
    r#"%{SSL_CLIENT_M_VERSION} -eq 3 && %{SSL_CLIENT_S_DN_O} != "Other""#,
    r#"%{SSL_CLIENT_S_DN_O} -ne "Example""#,
    "false",
    r#"%{SSL_PROTOCOL} == "TLSv1.3" and %{SSL_CLIENT_VERIFY} == "SUCCESS""#,
    "( %{SSL_CLIENT_S_DN_O} eq \"Example\" \\\n   and %{SSL_CLIENT_S_DN_CN} in {\"alice\", \"bob\"} ) \\\n   or %{REMOTE_ADDR} =~ m/^192\\.0\\.2\\.[0-9]+$/",
];

/// SSLRequire expressions that do not translate: the place is closed until edited.
const UNTRANSLATED: &[&str] = &[r"%{SSL_CLIENT_V_REMAIN} > 10", r"%{SSL_CIPHER} !~ m/^(EXP|NULL)-/"];

/// Access restrictions of mod_ssl are converted, ANDed with the rules they stood beside, or the
/// place is closed until edited (403, exit status 3): SSLRequireSSL, each SSLRequire operator
/// form, per-directory SSLVerifyClient and SSLCipherSuite, SSLOptions +FakeBasicAuth.
#[test]
fn access_restrictions_are_converted_or_closed() {
    let prepare = |h: &Httpd| {
        ClientPki::new().install(h);
        for n in 0..TRANSLATED.len() + UNTRANSLATED.len() {
            h.write(&format!("htdocs/e{n}.html"), "guarded\n");
        }
        for f in ["tls-only", "admin", "fake", "strong"] {
            h.write(&format!("htdocs/{f}.html"), "guarded\n");
        }
        // FakeBasicAuth's user: the DN, with the fixed password ("password", crypt salt "xx").
        h.write("conf/fake.passwd", "/CN=alice/O=Example:xxj31ZMTZzkVA\n");
    };
    let site = |files: &Path, _own: &Path, port: u16| {
        let f = files.display();
        let mut locations = String::new();
        for (n, e) in TRANSLATED.iter().chain(UNTRANSLATED).enumerate() {
            locations.push_str(&format!("  <Location /e{n}.html>\n    SSLRequire {e}\n  </Location>\n"));
        }
        format!(
            r#"LoadModule ssl_module {MODDIR}/mod_ssl.so
LoadModule auth_basic_module {MODDIR}/mod_auth_basic.so
LoadModule authn_core_module {MODDIR}/mod_authn_core.so
LoadModule authn_file_module {MODDIR}/mod_authn_file.so
LoadModule authz_user_module {MODDIR}/mod_authz_user.so
Listen 127.0.0.1:{port}
{docs}
<Location /tls-only.html>
  SSLRequireSSL
</Location>
<VirtualHost 127.0.0.1:{port}>
  ServerName localhost
  DocumentRoot "{f}/htdocs"
  SSLEngine on
  SSLCertificateFile {f}/conf/server.pem
  SSLCertificateKeyFile {f}/conf/server.key
  SSLVerifyClient optional
  SSLVerifyDepth 2
  SSLCACertificateFile {f}/conf/client/clientca.pem
{locations}  <Location /admin.html>
    SSLVerifyClient require
  </Location>
  <Location /strong.html>
    SSLCipherSuite ECDHE+AESGCM
  </Location>
  <Location /fake.html>
    SSLOptions +FakeBasicAuth
    AuthType Basic
    AuthName certificates
    AuthBasicProvider file
    AuthUserFile {f}/conf/fake.passwd
    Require valid-user
  </Location>
</VirtualHost>
"#,
            docs = docs(files)
        )
    };
    let p = pair_via(prepare, site, |original| {
        let (status, conf, report) = run_tool(original, &[], None);
        assert_eq!(status, Some(EXIT_CLOSED), "places closed until edited make exit status 3:\n{report}\n{conf}");
        (conf, report)
    });
    let who: Vec<(String, Arc<rustls::ClientConfig>)> = [
        ("anonymous TLS 1.3", None, TLS13),
        ("alice TLS 1.3", Some("alice"), TLS13),
        ("carol TLS 1.3", Some("carol"), TLS13),
        ("alice TLS 1.2", Some("alice"), TLS12),
    ]
    .into_iter()
    .map(|(label, w, v)| (label.to_string(), client_config(&p.ssl, w, v)))
    .collect();
    let ask = |port: u16, cfg: &Arc<rustls::ClientConfig>, path: &str, headers: &str| {
        status_of(port, cfg.clone(), path, headers)
    };
    let mut table = String::new();
    let mut differ = Vec::new();
    let mut closed_served = Vec::new();
    let mut ssl_denied = 0;
    let paths: Vec<String> = (0..TRANSLATED.len() + UNTRANSLATED.len()).map(|n| format!("/e{n}.html")).collect();
    for (n, path) in paths.iter().enumerate() {
        for (label, cfg) in &who {
            let (a, b) = (ask(p.ssl.tls_port, cfg, path, ""), ask(p.tls.tls_port, cfg, path, ""));
            table.push_str(&format!("{path} {label}: mod_ssl {a:?}, mod_tls {b:?}\n"));
            ssl_denied += usize::from(a == Some(403));
            if n >= TRANSLATED.len() {
                // Closed until edited: nobody is let in.
                if b != Some(403) {
                    closed_served.push(format!("{path} {label}: {b:?}"));
                }
            } else if a != b {
                differ.push(format!("{path} {label}"));
            }
        }
    }
    // Per-directory SSLVerifyClient require: mod_ssl asks for a certificate after the handshake
    // (TLS 1.3 post-handshake authentication, which `openssl s_client -enable_pha` offers and
    // rustls does not); the converted vhost lets in who sent a valid one at the handshake. Who
    // sent none is refused by both. (mod_ssl refuses alice too: OpenSSL will not ask again for a
    // certificate the handshake brought, "invalid config"; mod_tls lets her in, as the
    // directive means.)
    for who in [None, Some("alice"), Some("carol"), Some("eve")] {
        let admin = |h: &Httpd| {
            let mut client =
                s_client(h.tls_port).args(["-quiet", "-ign_eof", "-enable_pha"]).ca_file(p.ssl.path("conf/ca.pem"));
            if let Some(w) = who {
                client = client.arg("-cert").arg(p.ssl.path(&format!("conf/client/{w}.pem")));
                client = client.arg("-key").arg(p.ssl.path(&format!("conf/client/{w}.key")));
            }
            let out = client.stdin("GET /admin.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").run();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.lines().find(|l| l.starts_with("HTTP/")).unwrap_or("no answer").to_string()
        };
        let (a, b) = (admin(&p.ssl), admin(&p.tls));
        table.push_str(&format!("/admin.html s_client {who:?}: mod_ssl {a}, mod_tls {b}\n"));
        if who == Some("alice") {
            assert_eq!(b, "HTTP/1.1 200 OK", "alice, verified at the handshake\n{table}");
        } else if a != b {
            differ.push(format!("/admin.html s_client {who:?}"));
        }
    }
    assert!(differ.is_empty(), "differ: {differ:?}\n{table}\n{}", p.converted);
    assert!(closed_served.is_empty(), "closed places served: {closed_served:?}\n{table}\n{}", p.converted);
    assert!(ssl_denied > 10, "the restrictions restrict under mod_ssl:\n{table}");

    // SSLRequireSSL: refused over plain HTTP by both, served over TLS by both.
    assert_eq!(plain_status(p.ssl.plain_port, "/tls-only.html"), 403);
    assert_eq!(plain_status(p.tls.plain_port, "/tls-only.html"), 403, "{}", p.converted);
    for (_, cfg) in &who[..2] {
        assert_eq!(ask(p.tls.tls_port, cfg, "/tls-only.html", ""), Some(200));
    }

    // FakeBasicAuth: a forged login (the DN as user name, FakeBasicAuth's password) is refused by
    // both; the converted place is closed for everyone until edited.
    use base64::Engine;
    let forged = base64::engine::general_purpose::STANDARD.encode("/CN=alice/O=Example:password");
    let forged = format!("Authorization: Basic {forged}\r\n");
    let anon = &who[0].1;
    assert_eq!(ask(p.ssl.tls_port, anon, "/fake.html", &forged), Some(403), "mod_ssl refuses the forgery");
    assert_eq!(ask(p.tls.tls_port, anon, "/fake.html", &forged), Some(403), "{}", p.converted);
    assert_eq!(ask(p.ssl.tls_port, &who[1].1, "/fake.html", ""), Some(200), "alice, by certificate");
    assert_eq!(ask(p.tls.tls_port, &who[1].1, "/fake.html", ""), Some(403), "closed until edited");
    // A per-directory cipher list that leaves out suites rustls has: closed.
    for (label, cfg) in &who {
        assert_eq!(ask(p.tls.tls_port, cfg, "/strong.html", ""), Some(403), "{label}");
    }

    let o = p.original.display();
    let line = |n: &str| line_of(&p.original, n);
    for want in [
        format!("{o}:{}: SSLRequireSSL: note: an access restriction: Require ssl", line("SSLRequireSSL")),
        format!("{o}:{}: SSLRequire: note: an access restriction: Require expr", line(TRANSLATED[0])),
        format!("{o}:{}: SSLRequire: not carried over: SSLRequire is not translated", line(UNTRANSLATED[0])),
        format!("{o}:{}: SSLOptions: not carried over: SSLOptions +FakeBasicAuth", line("FakeBasicAuth")),
        format!("{o}:{}: SSLCipherSuite: not carried over: per-directory", line("ECDHE+AESGCM")),
        "closed until edited".to_string(),
    ] {
        assert!(p.report.contains(&want), "report lacks {want}:\n{}", p.report);
    }
    assert!(p.converted.contains("CLOSED UNTIL EDITED"), "{}", p.converted);
    p.tls.assert_no_crash();
}

/// A Debian layout under `h`'s root (`etc/apache2`): ports.conf opening `listen` for mod_ssl
/// only, Debian's own mods-available/ssl.conf with `ssl_conf_edit` applied, and `site` in
/// sites-available. Returns the site's path.
fn debian_site(h: &Httpd, listen: &str, ssl_conf_edit: (&str, &str), site: &str) -> std::path::PathBuf {
    let global = std::fs::read_to_string("/etc/apache2/mods-available/ssl.conf").expect("Debian's ssl.conf");
    assert!(global.contains(ssl_conf_edit.0), "Debian's ssl.conf no longer has {}", ssl_conf_edit.0);
    h.write("etc/apache2/mods-available/ssl.conf", global.replace(ssl_conf_edit.0, ssl_conf_edit.1));
    h.write("etc/apache2/ports.conf", format!("<IfModule ssl_module>\n\tListen {listen}\n</IfModule>\n"));
    h.write("etc/apache2/sites-available/site.conf", site)
}

/// A site converted alone on a Debian layout: the global settings of mods-available/ssl.conf
/// (which `a2dismod ssl` drops) are read and carried over, and the Listen the tool adds binds the
/// address ports.conf opened for mod_ssl (127.0.0.1, not every address: 127.0.0.2 stays closed).
#[test]
fn a_debian_site_keeps_its_global_settings_and_its_listen_address() {
    let mut ssl = Httpd::new();
    let mut tls = Httpd::new();
    // Both serve the mod_ssl server's certificate and documents.
    let files = ssl.root.display().to_string();
    let site = |h: &Httpd| {
        let root = &files;
        let text = format!(
            "<VirtualHost *:{port}>\n\tServerName localhost\n\tDocumentRoot {root}/htdocs\n\tSSLEngine on\n\
             \tSSLCertificateFile {root}/conf/server.pem\n\tSSLCertificateKeyFile {root}/conf/server.key\n</VirtualHost>\n",
            port = h.tls_port
        );
        // An administrator's hardening of the global file: TLS 1.3 only.
        debian_site(
            h,
            &format!("127.0.0.1:{}", h.tls_port),
            ("SSLProtocol all -SSLv3", "SSLProtocol -all +TLSv1.3"),
            &text,
        )
    };
    // Debian's apache2.conf in short: modules, then ports.conf, then mods' .conf files and sites.
    let head = |h: &Httpd, load: &str| {
        format!(
            "{}Define APACHE_RUN_DIR {root}/run\nDefine APACHE_LOG_DIR {root}/logs\n{load}\n\
             Include {root}/etc/apache2/ports.conf\n",
            h.plain_conf(),
            root = h.root.display()
        )
    };
    let ssl_site = site(&ssl);
    let root = ssl.root.display().to_string();
    ssl.main_conf = Some(format!(
        "{}Include {root}/etc/apache2/mods-available/ssl.conf\nInclude {}\n",
        head(&ssl, &format!("LoadModule ssl_module {MODDIR}/mod_ssl.so")),
        ssl_site.display()
    ));
    ssl.start();

    let tls_site = site(&tls);
    let (status, converted, report) = run_tool(&tls_site, &[], None);
    assert_eq!(status, Some(0), "{report}");
    assert_no_mod_ssl_left(&converted);
    let migrated = tls.write("etc/apache2/sites-available/site-migrated.conf", &converted);
    // a2dismod ssl && a2enmod tls: ssl.conf is no longer read.
    tls.main_conf = Some(format!(
        "{}Include {}\n",
        head(&tls, &format!("LoadModule tls_module {}", module_path().display())),
        migrated.display()
    ));
    assert_configtest_passes(&tls);
    tls.start();

    let ssl_conf = tls.path("etc/apache2/mods-available/ssl.conf");
    assert!(report.contains(&format!("Debian layout: read {} first", ssl_conf.display())), "{report}");
    let pair = Pair { ssl, tls, converted, report, original: tls_site };
    let ours = compare(&pair, "/", &clients(&pair.ssl.pki));
    assert!(matches!(ours["TLS 1.2"], Seen::Refused), "TLS 1.3 only, as ssl.conf says: {ours:?}");
    assert!(served(&ours["TLS 1.3"]), "{ours:?}");
    // The address: only 127.0.0.1, as ports.conf had it for mod_ssl.
    for h in [&pair.ssl, &pair.tls] {
        let other = std::net::TcpStream::connect(("127.0.0.2", h.tls_port));
        assert!(other.is_err(), "port {} open on 127.0.0.2:\n{}", h.tls_port, pair.converted);
    }
    assert!(pair.converted.contains(&format!("Listen 127.0.0.1:{}\n", pair.tls.tls_port)), "{}", pair.converted);
    pair.tls.assert_no_crash();
}

/// Hashed CA and CRL directories (`openssl rehash`: links named by hash beside the files) as
/// SSLCACertificatePath and SSLCARevocationPath name them become TLSClientCA and TLSClientCRL
/// with the directory: every kind of client certificate fares as under mod_ssl.
#[test]
fn hashed_ca_and_crl_directories() {
    let prepare = |h: &Httpd| {
        ClientPki::new().install(h);
        for (dir, files) in [("cas", &["clientca.pem"][..]), ("crls", &["root.crl", "inter.crl"][..])] {
            for f in files {
                let data = std::fs::read(h.path(&format!("conf/client/{f}"))).unwrap();
                h.write(&format!("conf/{dir}/{f}"), data);
            }
            let o = Command::new("openssl").arg("rehash").arg(h.path(&format!("conf/{dir}"))).output().unwrap();
            assert!(o.status.success(), "openssl rehash: {}", output_text(&o));
        }
        write_env_cgi(h);
    };
    let site = |files: &Path, _own: &Path, port: u16| {
        let f = files.display();
        format!(
            "LoadModule ssl_module {MODDIR}/mod_ssl.so\nListen 127.0.0.1:{port}\n{docs}\
             <VirtualHost 127.0.0.1:{port}>\n  ServerName localhost\n  DocumentRoot \"{f}/htdocs\"\n  SSLEngine on\n\
             SSLCertificateFile {f}/conf/server.pem\n  SSLCertificateKeyFile {f}/conf/server.key\n\
             SSLVerifyClient require\n  SSLVerifyDepth 5\n  SSLCACertificatePath {f}/conf/cas\n\
             SSLCARevocationPath {f}/conf/crls\n  SSLCARevocationCheck chain\n  SSLOptions +StdEnvVars\n\
             </VirtualHost>\n",
            docs = docs(files)
        )
    };
    let p = pair(prepare, site, &[]);
    let ours = compare(&p, "/env.cgi", &who_clients(&p.ssl));
    assert!(served(&ours["alice TLS 1.3"]) && served(&ours["carol TLS 1.2"]), "{ours:?}");
    for refused in ["anonymous TLS 1.3", "bob TLS 1.3", "mallory TLS 1.2", "eve TLS 1.3"] {
        assert_eq!(ours[refused], Seen::Refused, "{refused}");
    }
    let files = p.ssl.root.display();
    for want in [format!("TLSClientCA {files}/conf/cas\n"), format!("TLSClientCRL {files}/conf/crls\n")] {
        assert_eq!(p.converted.matches(&want).count(), 1, "{want}:\n{}", p.converted);
    }
    p.tls.assert_no_crash();
}

/// Whether `openssl s_client` with `args` completes a handshake with `port`.
fn s_client_connects(port: u16, args: &[&str]) -> bool {
    let o = s_client(port).args(args).run();
    let out = String::from_utf8_lossy(&o.stdout);
    o.status.success() && out.contains("Cipher is ") && !out.contains("Cipher is (NONE)")
}

/// What clients reached under mod_ssl and cannot under the conversion is reported, with the
/// right reason: OpenSSL's default suites and groups where the source names none, and TLS 1.0
/// allowed by the cipher list's @SECLEVEL=0 (not "OpenSSL's default level refuses it").
#[test]
fn lost_tls_reach_is_reported_with_its_reason() {
    let site = |extra: &'static str| {
        move |_files: &Path, _own: &Path, port: u16| {
            format!(
                "LoadModule ssl_module {MODDIR}/mod_ssl.so\nListen 127.0.0.1:{port}\n\
                 <VirtualHost 127.0.0.1:{port}>\n  ServerName localhost\n  SSLEngine on\n\
                 SSLCertificateFile conf/server.pem\n  SSLCertificateKeyFile conf/server.key\n{extra}</VirtualHost>\n"
            )
        }
    };
    let ca = |p: &Pair| p.ssl.path("conf/ca.pem").display().to_string();
    // No SSLCipherSuite: OpenSSL's DEFAULT list and groups applied.
    let p = pair(|_| {}, site(""), &[]);
    let cbc = ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"];
    let p521 = ["-tls1_3", "-groups", "secp521r1"];
    for probe in [&cbc[..], &p521[..]] {
        let mut args = probe.to_vec();
        let ca = ca(&p);
        args.extend(["-CAfile", &ca]);
        assert!(s_client_connects(p.ssl.tls_port, &args), "mod_ssl served {probe:?}");
        assert!(!s_client_connects(p.tls.tls_port, &args), "the converted mod_tls served {probe:?}");
    }
    for want in ["of OpenSSL's default", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "secp521r1", "lose access"] {
        assert!(p.report.contains(want), "report lacks {want}:\n{}", p.report);
    }
    // @SECLEVEL=0 let mod_ssl speak TLS 1.0.
    let p = pair(|_| {}, site("  SSLProtocol all\n  SSLCipherSuite ECDHE+AESGCM:ECDHE+AES:@SECLEVEL=0\n"), &[]);
    let ca = ca(&p);
    let tls10 = ["-tls1", "-cipher", "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0", "-CAfile", &ca];
    assert!(s_client_connects(p.ssl.tls_port, &tls10), "mod_ssl served TLS 1.0");
    assert!(!s_client_connects(p.tls.tls_port, &tls10));
    let want = format!(
        "{}:{}: SSLProtocol: not carried over: TLSv1, TLSv1.1 were offered (the cipher list's @SECLEVEL=0",
        p.original.display(),
        line_of(&p.original, "SSLProtocol")
    );
    assert!(p.report.contains(&want), "report lacks {want}:\n{}", p.report);
    assert!(!p.report.contains("default security level"), "{}", p.report);
    p.tls.assert_no_crash();
}

/// SSLSessionCacheTimeout carries over: a session resumes at once under both servers, and
/// after the timeout under neither.
#[test]
fn the_session_cache_timeout_carries_over() {
    let site = |files: &Path, own: &Path, port: u16| {
        format!(
            "LoadModule ssl_module {MODDIR}/mod_ssl.so\nListen 127.0.0.1:{port}\n\
             SSLSessionCache shmcb:{}/run/scache(512000)\nSSLSessionCacheTimeout 3\n\
             <VirtualHost 127.0.0.1:{port}>\n  ServerName localhost\n  SSLEngine on\n\
             SSLCertificateFile {f}/conf/server.pem\n  SSLCertificateKeyFile {f}/conf/server.key\n</VirtualHost>\n",
            own.display(),
            f = files.display()
        )
    };
    let p = pair(|_| {}, site, &[]);
    assert!(p.converted.contains("TLSSessionCacheTimeout 3\n"), "{}", p.converted);
    // Each server and version with a client (its own session store): a full handshake, a
    // resumption at once, and after the timeout a full handshake again.
    let clients: Vec<(String, u16, Arc<rustls::ClientConfig>)> = [TLS13, TLS12]
        .into_iter()
        .flat_map(|v| [("mod_ssl", p.ssl.tls_port), ("mod_tls", p.tls.tls_port)].map(|(n, port)| (n, port, v)))
        .map(|(n, port, v)| (format!("{n} {v:?}"), port, p.ssl.pki.client_config(v)))
        .collect();
    let resumed = |port: u16, cfg: &Arc<rustls::ClientConfig>| {
        let mut s = tls_connect(port, "localhost", cfg.clone());
        assert_eq!(get_on(&mut s, "/", "localhost").status, 200);
        s.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    };
    for (label, port, cfg) in &clients {
        assert!(!resumed(*port, cfg), "{label}: first connection");
        assert!(resumed(*port, cfg), "{label}: resumed at once");
    }
    // A fixed wait: the sessions must outlive SSLSessionCacheTimeout (3 s).
    std::thread::sleep(std::time::Duration::from_secs(5));
    for (label, port, cfg) in &clients {
        assert!(!resumed(*port, cfg), "{label}: resumed after the timeout\n{}", p.converted);
    }
    p.tls.assert_no_crash();
}

/// SSLProxyCheckPeerExpire off is reported with what it is about (validity, not the name): an
/// expired backend certificate passed mod_ssl and is refused by the conversion.
#[test]
fn proxy_check_peer_expire_is_reported_as_itself() {
    let mut b = Httpd::new();
    let (cert, key) = b.pki.issue_expired(&["localhost"]);
    b.write("conf/expired.pem", cert);
    b.write("conf/expired.key", key);
    b.tls_vhost = Some(b.localhost_vhost("  TLSCertificate conf/expired.pem conf/expired.key"));
    b.start();
    let (bport, bca) = (b.tls_port, b.pki.ca_pem.clone());
    let prepare = move |h: &Httpd| {
        h.write("conf/backend-ca.pem", &bca);
    };
    let site = move |files: &Path, _own: &Path, port: u16| {
        let f = files.display();
        format!(
            "LoadModule ssl_module {MODDIR}/mod_ssl.so\nLoadModule proxy_module {MODDIR}/mod_proxy.so\n\
             LoadModule proxy_http_module {MODDIR}/mod_proxy_http.so\nListen 127.0.0.1:{port}\n\
             <VirtualHost 127.0.0.1:{port}>\n  ServerName localhost\n  SSLEngine on\n\
             SSLCertificateFile {f}/conf/server.pem\n  SSLCertificateKeyFile {f}/conf/server.key\n\
             SSLProxyEngine on\n  SSLProxyVerify none\n  SSLProxyCACertificateFile {f}/conf/backend-ca.pem\n\
             SSLProxyCheckPeerExpire off\n  ProxyPass /b/ https://localhost:{bport}/\n</VirtualHost>\n"
        )
    };
    let p = pair(prepare, site, &[]);
    let client = p.ssl.pki.client_config(TLS13);
    let get =
        |port: u16| get_on(&mut tls_connect(port, "localhost", client.clone()), "/b/index.html", "localhost").status;
    assert_eq!(get(p.ssl.tls_port), 200, "mod_ssl does not check the backend's validity period");
    assert_eq!(get(p.tls.tls_port), 500, "mod_tls does");
    let want = format!(
        "{}:{}: SSLProxyCheckPeerExpire: not carried over: always on in mod_tls: a backend certificate past its \
         validity period",
        p.original.display(),
        line_of(&p.original, "SSLProxyCheckPeerExpire")
    );
    assert!(p.report.contains(&want), "report lacks {want}:\n{}", p.report);
    assert!(!p.report.contains("SSLProxyCheckPeerExpire: not carried over: always on in mod_tls: the backend's"));
}

#[path = "migrate_support/ocsp.rs"]
mod ocsp;

/// SSLUseStapling carries over to mod_md's stapling (MDStapling, MDStapleOthers): the converted
/// site staples a good OCSP response from the certificate's responder, as mod_ssl did.
#[test]
fn stapling_carries_over_to_mod_md() {
    let responder = std::sync::Mutex::new(None);
    let prepare = |h: &Httpd| {
        *responder.lock().unwrap() = Some(ocsp::pki_with_responder(&h.path("ocsp")));
    };
    let site = |files: &Path, own: &Path, port: u16| {
        let f = files.display();
        format!(
            "LoadModule ssl_module {MODDIR}/mod_ssl.so\nListen 127.0.0.1:{port}\n\
             SSLStaplingCache shmcb:{}/run/ocsp(128000)\n\
             <VirtualHost 127.0.0.1:{port}>\n  ServerName localhost\n  SSLEngine on\n\
             SSLCertificateFile {f}/ocsp/chain.pem\n  SSLCertificateKeyFile {f}/ocsp/server.key\n\
             SSLUseStapling on\n  SSLStaplingResponderTimeout 5\n</VirtualHost>\n",
            own.display()
        )
    };
    let p = pair(prepare, site, &[]);
    let ca = p.ssl.path("ocsp/ca.pem");
    let within = std::time::Duration::from_secs(40);
    let (ssl, text) = ocsp::staples(p.ssl.tls_port, &ca, within);
    assert!(ssl, "mod_ssl staples:\n{text}");
    let (tls, text) = ocsp::staples(p.tls.tls_port, &ca, within);
    assert!(tls, "the converted site staples:\n{text}\n{}\n{}", p.converted, p.tls.error_log());
    assert!(p.converted.lines().any(|l| l.trim() == "MDStapling on"), "{}", p.converted);
    assert!(p.report.contains("SSLUseStapling: note: OCSP stapling comes from mod_md"), "{}", p.report);
    p.tls.assert_no_crash();
}

/// SSLOCSPEnable checked client certificates at their CA's responder; without it and without
/// CRLs a revoked certificate would pass, so the converted vhost is closed until edited. (Here
/// the responder is unreachable: mod_ssl refuses every client certificate, fail-closed.)
#[test]
fn client_certificate_ocsp_without_crls_is_closed() {
    let closed_port = free_port();
    let site = move |files: &Path, _own: &Path, port: u16| {
        let f = files.display();
        format!(
            "LoadModule ssl_module {MODDIR}/mod_ssl.so\nListen 127.0.0.1:{port}\n\
             <VirtualHost 127.0.0.1:{port}>\n  ServerName localhost\n  SSLEngine on\n\
             SSLCertificateFile {f}/conf/server.pem\n  SSLCertificateKeyFile {f}/conf/server.key\n\
             SSLVerifyClient require\n  SSLVerifyDepth 2\n  SSLCACertificateFile {f}/conf/client/clientca.pem\n\
             SSLOCSPEnable leaf\n  SSLOCSPDefaultResponder http://127.0.0.1:{closed_port}/\n\
             SSLOCSPOverrideResponder on\n</VirtualHost>\n"
        )
    };
    let p = pair_via(
        |h| ClientPki::new().install(h),
        site,
        |original| {
            let (status, conf, report) = run_tool(original, &[], None);
            assert_eq!(status, Some(EXIT_CLOSED), "{report}\n{conf}");
            (conf, report)
        },
    );
    for (label, cfg) in who_clients(&p.ssl) {
        let a = status_of(p.ssl.tls_port, cfg.clone(), "/", "");
        let b = status_of(p.tls.tls_port, cfg, "/", "");
        assert_ne!(a, Some(200), "{label}: mod_ssl served");
        assert!(b.is_none() || b == Some(403), "{label}: the converted vhost served {b:?}\n{}", p.converted);
    }
    let want = format!(
        "{}:{}: SSLOCSPEnable: not carried over: client certificates are not checked by OCSP",
        p.original.display(),
        line_of(&p.original, "SSLOCSPEnable")
    );
    assert!(p.report.contains(&want), "report lacks {want}:\n{}", p.report);
}

/// The TLS part of the Mozilla SSL Configuration Generator's Apache profiles (guideline 5.7,
/// OpenSSL 3), as sites copy them: each served by mod_ssl and, converted, by mod_tls, to every
/// kind of client; what differs is only what the report says is lost.
#[test]
fn the_mozilla_generator_profiles() {
    let profiles: [(&str, &str); 3] = [
        (
            "modern",
            "SSLProtocol             -all +TLSv1.3\nSSLOpenSSLConfCmd       Curves X25519:prime256v1:secp384r1\n\
             SSLHonorCipherOrder     off\nSSLSessionTickets       off\n",
        ),
        (
            "intermediate",
            "SSLProtocol             -all +TLSv1.2 +TLSv1.3\nSSLOpenSSLConfCmd       Curves X25519:prime256v1:secp384r1\n\
             SSLCipherSuite          ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:\
             ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:\
             DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305\n\
             SSLHonorCipherOrder     off\nSSLSessionTickets       off\n",
        ),
        (
            "old",
            "SSLProtocol             all -SSLv3\n\
             SSLCipherSuite          @SECLEVEL=0:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
             ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:\
             ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:\
             DHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA:\
             ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:ECDHE-ECDSA-AES256-SHA:\
             ECDHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA256:DHE-RSA-AES256-SHA256:AES128-GCM-SHA256:AES256-GCM-SHA384:\
             AES128-SHA256:AES256-SHA256:AES128-SHA:AES256-SHA:DES-CBC3-SHA\n\
             SSLHonorCipherOrder     on\nSSLSessionTickets       off\n",
        ),
    ];
    for (name, settings) in profiles {
        let site = move |files: &Path, own: &Path, port: u16| {
            let f = files.display();
            format!(
                "LoadModule ssl_module {MODDIR}/mod_ssl.so\nListen 127.0.0.1:{port}\n\
                 # this configuration requires mod_ssl, mod_socache_shmcb, mod_rewrite, and mod_headers\n\
                 <VirtualHost *:{port}>\n    SSLEngine on\n\n\
                 \x20   SSLCertificateFile      {f}/conf/server.pem\n    SSLCertificateKeyFile   {f}/conf/server.key\n\n\
                 \x20   # enable HTTP/2, if available\n    Protocols h2 http/1.1\n\n\
                 \x20   # HTTP Strict Transport Security (mod_headers is required) (63072000 seconds)\n\
                 \x20   Header always set Strict-Transport-Security \"max-age=63072000\"\n</VirtualHost>\n\n\
                 # {name} configuration\n{settings}\n\
                 SSLUseStapling On\nSSLStaplingCache \"shmcb:{}/logs/ssl_stapling(32768)\"\n",
                own.display()
            )
        };
        let p = pair(|_| {}, site, &[]);
        let ours = compare(&p, "/", &clients(&p.ssl.pki));
        assert!(served(&ours["TLS 1.3"]), "{name}: {ours:?}");
        assert!(p.converted.lines().any(|l| l.trim() == "MDStapling on"), "{name}: {}", p.converted);
        if name == "old" {
            for want in ["@SECLEVEL=0 lets OpenSSL use them", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "lose access"]
            {
                assert!(p.report.contains(want), "{name}: report lacks {want}:\n{}", p.report);
            }
        }
        p.tls.assert_no_crash();
    }
}
