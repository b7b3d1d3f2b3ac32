//! The Debian package that `make deb` builds (target/debian/): lintian finds no error and only
//! the warnings explained below, it holds the files and control fields a Debian module package
//! has, its maintainer scripts go through apache2-maintscript-helper, and a Debian-layout
//! configuration made from its files (what `a2enmod tls` and `a2ensite default-tls` link) serves
//! HTTPS, with sessions resuming through the cache its tls.conf sets up.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// The package `make deb` left; `make test` builds it before the tests run.
fn package() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debian");
    let debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}: run `make deb` (make test does) first", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "one package in {}: {debs:?}", dir.display());
    let name = debs[0].file_name().unwrap().to_string_lossy().into_owned();
    let arch = String::from_utf8(Command::new("dpkg").arg("--print-architecture").output().unwrap().stdout).unwrap();
    assert_eq!(name, format!("libapache2-mod-tls-rs_{}_{}.deb", env!("CARGO_PKG_VERSION"), arch.trim()));
    debs[0].clone()
}

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let o = Command::new("dpkg-deb").args(args).arg(deb).output().unwrap();
    assert!(o.status.success(), "dpkg-deb {args:?}: {}", output_text(&o));
    String::from_utf8(o.stdout).unwrap()
}

/// lintian's warnings that this package keeps, each with the reason. (Below warning level, lintian
/// also notes `hardening-no-fortify-functions`: Rust code calls no glibc `*_chk` functions; and
/// `spelling-error-in-binary` for strings inside dependencies.)
const EXPLAINED: &[(&str, &str)] = &[(
    "non-standard-apache2-module-package-name",
    "libapache2-mod-tls would be the name of a package of httpd's C mod_tls; this is the Rust \
     module with the same directives and module name (tls), so it is libapache2-mod-tls-rs and \
     Conflicts with libapache2-mod-tls (both ship mod_tls.so)",
)];

#[test]
fn lintian_finds_no_error_and_every_warning_is_explained() {
    let deb = package();
    let o = Command::new("lintian")
        .args(["--tag-display-limit", "0", "--display-level", ">=warning"])
        .arg(&deb)
        .output()
        .unwrap();
    let text = output_text(&o);
    let tags: Vec<&str> = text.lines().filter(|l| l.starts_with("E: ") || l.starts_with("W: ")).collect();
    for line in &tags {
        assert!(!line.starts_with("E: "), "lintian error: {line}\n{text}");
        let tag = line.split(": ").nth(2).and_then(|t| t.split_whitespace().next()).unwrap_or("");
        assert!(EXPLAINED.iter().any(|(t, _)| *t == tag), "unexplained lintian warning: {line}\n{text}");
    }
}

#[test]
fn files_control_fields_and_maintainer_scripts() {
    let deb = package();
    let files = dpkg_deb(&["-c"], &deb);
    for f in [
        "./usr/lib/apache2/modules/mod_tls.so",
        "./etc/apache2/mods-available/tls.load",
        "./etc/apache2/mods-available/tls.conf",
        "./etc/apache2/sites-available/default-tls.conf",
        "./usr/share/doc/libapache2-mod-tls-rs/copyright",
        "./usr/share/doc/libapache2-mod-tls-rs/changelog.gz",
        "./usr/bin/mod_tls-migrate",
        "./usr/share/man/man1/mod_tls-migrate.1.gz",
    ] {
        assert!(files.lines().any(|l| l.ends_with(f)), "{f} in:\n{files}");
    }
    let field = |name: &str| {
        dpkg_deb(&["-f"], &deb).lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
    };
    assert_eq!(field("Package").as_deref(), Some("libapache2-mod-tls-rs"));
    assert_eq!(field("Version").as_deref(), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(field("Section").as_deref(), Some("httpd"));
    let depends = field("Depends").expect("Depends");
    assert!(depends.contains("apache2-api-20120211"), "the module ABI: {depends}");
    assert!(depends.contains("libc6 (>="), "the libc it was built against: {depends}");
    // Maintainer scripts: a2enmod/a2dismod through apache2-maintscript-helper, as dh_apache2 writes.
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new("dpkg-deb").arg("-e").arg(&deb).arg(dir.path()).output().unwrap();
    assert!(o.status.success(), "{}", output_text(&o));
    let postinst = std::fs::read_to_string(dir.path().join("postinst")).unwrap();
    for script in ["postinst", "prerm", "postrm"] {
        let text = std::fs::read_to_string(dir.path().join(script)).unwrap();
        assert!(text.contains(". /usr/share/apache2/apache2-maintscript-helper"), "{script}:\n{text}");
        assert!(text.contains("for conf in tls "), "{script}:\n{text}");
    }
    assert!(postinst.contains("apache2_invoke enmod $conf"), "{postinst}");
    // The module in the package is stripped (debug information stays out of the package).
    let so = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "dpkg-deb --fsys-tarfile {} | tar -xOf - ./usr/lib/apache2/modules/mod_tls.so | wc -c",
            deb.display()
        ))
        .output()
        .unwrap();
    let size: u64 = String::from_utf8_lossy(&so.stdout).trim().parse().unwrap();
    assert!(size < 16 * 1024 * 1024, "mod_tls.so is {size} bytes");
}

/// The package's files as dpkg would install them, under `h`'s root, and a Debian-style
/// apache2.conf there with mods-enabled/ and sites-enabled/ as `a2enmod tls` (with its
/// `Depends: socache_shmcb`) and `a2ensite SITE…` make them. Returns /etc/apache2's stand-in.
fn debian_layout(h: &mut Httpd, sites: &[&str]) -> PathBuf {
    let deb = package();
    let o = Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&h.root).output().unwrap();
    assert!(o.status.success(), "{}", output_text(&o));
    let etc = h.path("etc/apache2");
    let module = h.path("usr/lib/apache2/modules/mod_tls.so");
    let load = std::fs::read_to_string(etc.join("mods-available/tls.load")).unwrap();
    assert!(load.contains("# Depends: socache_shmcb"), "{load}");
    std::fs::write(
        etc.join("mods-available/tls.load"),
        load.replace("/usr/lib/apache2/modules/mod_tls.so", &module.display().to_string()),
    )
    .unwrap();
    std::fs::create_dir_all(etc.join("mods-enabled")).unwrap();
    std::fs::create_dir_all(etc.join("sites-enabled")).unwrap();
    std::fs::copy("/etc/apache2/mods-available/socache_shmcb.load", etc.join("mods-available/socache_shmcb.load"))
        .unwrap();
    let mut links: Vec<(String, String)> = ["socache_shmcb.load", "tls.load", "tls.conf"]
        .iter()
        .map(|m| (format!("mods-enabled/{m}"), format!("../mods-available/{m}")))
        .collect();
    links.extend(sites.iter().map(|s| (format!("sites-enabled/{s}"), format!("../sites-available/{s}"))));
    for (link, target) in links {
        std::os::unix::fs::symlink(target, etc.join(link)).unwrap();
    }
    let root = h.root.display().to_string();
    let user = if is_root() { "User www-data\nGroup www-data\n" } else { "" };
    // Debian's apache2.conf in short: envvars' variables, then mods-enabled and sites-enabled.
    // Like Debian's ports.conf without mod_ssl, it opens no TLS port: the sites do.
    h.main_conf = Some(format!(
        "Define APACHE_RUN_DIR {root}/run\nDefine APACHE_LOG_DIR {root}/logs\n\
         ServerRoot \"{}\"\nPidFile {root}/run/httpd.pid\nMutex file:{root}/run default\n\
         ErrorLog {root}/logs/error.log\nLogLevel warn\n{user}\
         LoadModule mpm_event_module {MODDIR}/mod_mpm_event.so\n\
         LoadModule authz_core_module {MODDIR}/mod_authz_core.so\n\
         LoadModule mime_module {MODDIR}/mod_mime.so\nLoadModule dir_module {MODDIR}/mod_dir.so\n\
         ServerName localhost\nTypesConfig /etc/mime.types\nDirectoryIndex index.html\n\
         LogFormat \"%h %l %u %t \\\"%r\\\" %>s %O \\\"%{{Referer}}i\\\" \\\"%{{User-Agent}}i\\\"\" combined\n\
         <Directory {root}/htdocs>\n  Require all granted\n</Directory>\n\
         Listen 127.0.0.1:{}\n\
         IncludeOptional mods-enabled/*.load\nIncludeOptional mods-enabled/*.conf\nIncludeOptional sites-enabled/*.conf\n",
        etc.display(),
        h.plain_port,
    ));
    etc
}

/// A Debian site file on a test port, with the test's certificate for the snakeoil one and the
/// test's documents for /var/www/html (each of which the file must have).
fn localize(h: &Httpd, site: &str, port: u16) -> String {
    for shipped in
        ["/etc/ssl/certs/ssl-cert-snakeoil.pem", "/etc/ssl/private/ssl-cert-snakeoil.key", "443", "/var/www/html"]
    {
        assert!(site.contains(shipped), "{shipped} in:\n{site}");
    }
    site.replace("/etc/ssl/certs/ssl-cert-snakeoil.pem", &h.path("conf/server.pem").display().to_string())
        .replace("/etc/ssl/private/ssl-cert-snakeoil.key", &h.path("conf/server.key").display().to_string())
        .replace("Listen 443", &format!("Listen 127.0.0.1:{port}"))
        .replace("*:443", &format!("127.0.0.1:{port}"))
        .replace("_default_:443", &format!("_default_:{port}"))
        .replace("TLSEngine 443", &format!("TLSEngine {port}"))
        // The guard's name follows the address, as mod_tls-migrate names it.
        .replace("mod_tls_listen_443", &format!("mod_tls_listen_127_0_0_1_{port}"))
        .replace("/var/www/html", &h.path("htdocs").display().to_string())
}

/// Full and resumed handshakes with TLS 1.3 and 1.2 get the page, with nothing logged.
fn serves_and_resumes(h: &Httpd, port: u16) {
    for versions in [TLS13, TLS12] {
        let cfg = h.pki.client_config(versions);
        for kind in [rustls::HandshakeKind::Full, rustls::HandshakeKind::Resumed] {
            let mut s = tls_connect(port, "localhost", cfg.clone());
            let r = get_on(&mut s, "/index.html", "localhost");
            assert_eq!((r.status, r.text().as_str()), (200, "hello over TLS\n"));
            assert_eq!(s.conn.handshake_kind(), Some(kind), "{versions:?}: tls.conf's session cache");
        }
    }
    let log = h.error_log();
    assert!(!log.contains(":warn]") && !log.contains(":error]"), "{log}");
    h.assert_no_crash();
}

#[test]
fn a_debian_layout_made_from_the_package_serves_https() {
    let mut h = Httpd::new();
    h.tls_port = free_port();
    let etc = debian_layout(&mut h, &["default-tls.conf"]);
    let site = std::fs::read_to_string(etc.join("sites-available/default-tls.conf")).unwrap();
    std::fs::write(etc.join("sites-available/default-tls.conf"), localize(&h, &site, h.tls_port)).unwrap();
    assert_configtest_passes(&h);
    h.start();
    serves_and_resumes(&h, h.tls_port);
}

/// The man page's example: the packaged mod_tls-migrate converts Debian's default-ssl.conf
/// (mod_ssl's site) into a site that a2ensite enables beside mod_tls, without mod_ssl; enabled
/// next to the package's default-tls.conf, the two open port 443 once between them.
#[test]
fn the_packaged_migrate_tool_converts_debians_default_ssl_site() {
    let mut h = Httpd::new();
    h.tls_port = free_port();
    let etc = debian_layout(&mut h, &["default-ssl-migrated.conf", "default-tls.conf"]);
    let packaged = std::fs::read_to_string(etc.join("sites-available/default-tls.conf")).unwrap();
    std::fs::write(etc.join("sites-available/default-tls.conf"), localize(&h, &packaged, h.tls_port)).unwrap();
    let debian_site = std::fs::read_to_string("/etc/apache2/sites-available/default-ssl.conf").unwrap();
    let original = etc.join("sites-available/default-ssl.conf");
    std::fs::write(&original, localize(&h, &debian_site, h.tls_port)).unwrap();
    let o = Command::new(h.path("usr/bin/mod_tls-migrate"))
        .arg(&original)
        .arg("-o")
        .arg(etc.join("sites-available/default-ssl-migrated.conf"))
        .output()
        .unwrap();
    let report = output_text(&o);
    assert!(o.status.success(), "{report}");
    assert!(report.contains("0 not carried over"), "{report}");
    assert_configtest_passes(&h);
    h.start();
    serves_and_resumes(&h, h.tls_port);
}

/// Runs a command of the machine's Debian system; its output, or a panic saying what failed.
fn system(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd).args(args).env("DEBIAN_FRONTEND", "noninteractive").output().unwrap();
    assert!(o.status.success(), "{cmd} {args:?}: {}", output_text(&o));
    output_text(&o)
}

/// What a name resolved to 127.0.0.1 gets from `https://NAME/` on the system's port 443: the
/// HTTP status, or curl's error.
fn curl_443(name: &str) -> Result<String, String> {
    let o = Command::new("curl")
        .args(["-sS", "-k", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}", "--resolve"])
        .arg(format!("{name}:443:127.0.0.1"))
        .arg(format!("https://{name}/"))
        .output()
        .unwrap();
    if o.status.success() { Ok(String::from_utf8_lossy(&o.stdout).into_owned()) } else { Err(output_text(&o)) }
}

/// Stops the system's httpd and purges the package, also when the test fails half-way.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let stop = Command::new("apache2ctl").arg("stop").output();
        let purge = Command::new("dpkg").args(["--purge", "libapache2-mod-tls-rs"]).output();
        if std::thread::panicking() {
            eprintln!("cleanup: stop {stop:?}, purge {purge:?}");
        }
    }
}

/// The package as an administrator meets it, on this machine's own apache2 (as root): installed
/// with dpkg, its default site enabled as the README says, it answers `https://localhost/`, the
/// machine's host name and its address on the first start; strict SNI still refuses unknown
/// names once a named vhost shares the port. Purged, it leaves no link behind and apache2's
/// configuration still passes `configtest`.
#[test]
fn install_enable_serve_purge_on_this_machine() {
    assert!(is_root(), "this test installs the package with dpkg: run it as root");
    let status = Command::new("dpkg").args(["-s", "libapache2-mod-tls-rs"]).output().unwrap();
    assert!(
        !status.status.success(),
        "libapache2-mod-tls-rs is installed on this machine: this test installs and purges it itself; remove it first"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", 443)).is_err(),
        "something already listens on port 443 (this test starts the system's apache2 there)"
    );
    let deb = package();
    let _cleanup = Installed;
    system("dpkg", &["-i", &deb.display().to_string()]);
    if !Path::new("/etc/ssl/certs/ssl-cert-snakeoil.pem").exists() {
        system("make-ssl-cert", &["generate-default-snakeoil"]);
    }
    assert!(Path::new("/etc/apache2/mods-enabled/tls.load").exists(), "the package enabled the module");
    system("a2ensite", &["default-tls"]);
    system("apache2ctl", &["start"]);
    poll_until_every(Duration::from_secs(20), Duration::from_millis(100), "apache2 to listen on 443", || {
        TcpStream::connect(("127.0.0.1", 443)).is_ok()
    });
    let host = system("hostname", &[]).trim().to_string();
    for name in ["localhost", host.as_str(), "127.0.0.1"] {
        assert_eq!(curl_443(name).as_deref(), Ok("200"), "https://{name}/ on the first start");
    }
    // Once a named vhost shares the port, names that no vhost has are refused again.
    let named = "/etc/apache2/sites-available/zz-mod-tls-test-named.conf";
    std::fs::write(
        named,
        "<VirtualHost *:443>\n  ServerName named.test\n  TLSCertificate /etc/ssl/certs/ssl-cert-snakeoil.pem \
         /etc/ssl/private/ssl-cert-snakeoil.key\n</VirtualHost>\n",
    )
    .unwrap();
    system("a2ensite", &["zz-mod-tls-test-named"]);
    system("apache2ctl", &["graceful"]);
    // Until the graceful restart is done, the old generation still serves the name.
    let refused = poll(Duration::from_secs(10), Duration::from_millis(100), || curl_443("unknown.test").err());
    assert!(
        refused.as_ref().is_ok_and(|e| e.contains("unrecognized name")),
        "strict SNI refuses unknown names beside a named vhost: {refused:?}"
    );
    assert_eq!(curl_443("named.test").as_deref(), Ok("200"));
    system("a2dissite", &["zz-mod-tls-test-named"]);
    std::fs::remove_file(named).unwrap();
    system("apache2ctl", &["stop"]);
    system("dpkg", &["--purge", "libapache2-mod-tls-rs"]);
    for link in ["sites-enabled/default-tls.conf", "mods-enabled/tls.load", "mods-enabled/tls.conf"] {
        let p = Path::new("/etc/apache2").join(link);
        assert!(std::fs::symlink_metadata(&p).is_err(), "{} left behind", p.display());
    }
    // The system's configuration still passes after the purge.
    assert_configtest_passes(&Command::new("apache2ctl").arg("configtest").output().unwrap());
}
