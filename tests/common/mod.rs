//! Integration harness: a real Debian httpd (`/usr/sbin/apache2`) with the freshly built module, in
//! a temporary ServerRoot, on free loopback ports, with certificates generated for the test. The
//! server is always stopped when the `Httpd` value is dropped, also when a test fails.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod client_pki;
#[allow(unused_imports)]
pub use client_pki::{Ca, ClientPki, client_config};

pub const HTTPD: &str = "/usr/sbin/apache2";
pub const MODDIR: &str = "/usr/lib/apache2/modules";

/// The module under test: the cdylib next to this test executable (target/<profile>/).
pub fn module_path() -> PathBuf {
    if let Ok(p) = std::env::var("MOD_TLS_SO") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let so = profile_dir.join("libmod_tls.so");
    assert!(so.exists(), "{} is missing: build the module first (make test does)", so.display());
    so
}

/// A port nobody listens on right now (the kernel picks it).
/// A loopback port no other server of this test process was given. The kernel may hand a port
/// just released to the next bind(0), and the tests of one file run in parallel: without the
/// record, two servers (one shutting down, one starting) could share a port, and a client of one
/// would talk to the other.
pub fn free_port() -> u16 {
    static ISSUED: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if ISSUED.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

/// Whether the tests run as root (the owner of this process's `/proc/self`).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").expect("/proc/self").uid() == 0
}

/// Sends signal `sig` to process `pid` (a negative `pid`: to its process group). No error when
/// the process is gone already.
pub fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe { libc::kill(pid, sig) };
}

/// What [`poll_until`] accepts from its check: `true`, or `Some(value)`, or `Ok(value)` when the
/// awaited condition holds; `Err(seen)` says what was seen instead (shown if the wait times out).
pub trait Awaited {
    type Out;
    fn ready(self) -> Result<Self::Out, Option<String>>;
}

impl Awaited for bool {
    type Out = ();
    fn ready(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T> Awaited for Option<T> {
    type Out = T;
    fn ready(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T> Awaited for Result<T, String> {
    type Out = T;
    fn ready(self) -> Result<T, Option<String>> {
        self.map_err(Some)
    }
}

/// Asks `check` every `every` until it says the awaited condition holds, for at most `within`:
/// the value it gave, or (timed out) what it saw last.
pub fn poll<R: Awaited>(
    within: Duration,
    every: Duration,
    mut check: impl FnMut() -> R,
) -> Result<R::Out, Option<String>> {
    let deadline = Instant::now() + within;
    loop {
        let seen = check().ready();
        if seen.is_ok() || Instant::now() >= deadline {
            return seen;
        }
        std::thread::sleep(every);
    }
}

/// Waits for `what` (said in the failure message) by asking `check` every 50 ms, for at most
/// `within`; fails the test with `what` and what `check` saw last when it times out.
pub fn poll_until<R: Awaited>(within: Duration, what: impl std::fmt::Display, check: impl FnMut() -> R) -> R::Out {
    poll_until_every(within, Duration::from_millis(50), what, check)
}

/// [`poll_until`], asking every `every` (for checks that cost more than a look at a file).
pub fn poll_until_every<R: Awaited>(
    within: Duration,
    every: Duration,
    what: impl std::fmt::Display,
    check: impl FnMut() -> R,
) -> R::Out {
    match poll(within, every, check) {
        Ok(v) => v,
        Err(None) => panic!("waited {within:?} for {what} in vain"),
        Err(Some(seen)) => panic!("waited {within:?} for {what} in vain; last seen:\n{seen}"),
    }
}

/// Where `apache2 -t` output comes from: a server's configuration (runs `apache2 -t` on it), or
/// the output of an httpd run already made (`-t`, `-k start`, `-k graceful`).
pub trait ConfigCheck {
    fn check_output(&self) -> Output;
    /// What a failure message shows after the output (the configuration checked, when known).
    fn context(&self) -> String {
        String::new()
    }
}

impl ConfigCheck for Httpd {
    fn check_output(&self) -> Output {
        self.configtest()
    }
    fn context(&self) -> String {
        let conf = std::fs::read_to_string(self.path("conf/httpd.conf")).unwrap_or_default();
        format!("\nthe configuration checked:\n{conf}")
    }
}

impl ConfigCheck for Output {
    fn check_output(&self) -> Output {
        self.clone()
    }
}

/// Asserts that httpd refused the configuration and that its output names each of `names`;
/// returns the whole output (stdout and stderr) for further checks.
pub fn assert_configtest_fails(source: &impl ConfigCheck, names: &[&str]) -> String {
    let o = source.check_output();
    let out = output_text(&o);
    let context = || source.context();
    assert!(
        !o.status.success(),
        "httpd accepted a configuration it must refuse (naming {names:?}):\n{out}{}",
        context()
    );
    let missing: Vec<&str> = names.iter().copied().filter(|n| !out.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "httpd refused the configuration without naming {missing:?}; its output:\n{out}{}",
        context()
    );
    out
}

/// Asserts that `apache2 -t` accepts the configuration; returns its whole output.
pub fn assert_configtest_passes(source: &impl ConfigCheck) -> String {
    let o = source.check_output();
    let out = output_text(&o);
    assert!(o.status.success(), "httpd refused the configuration:\n{out}{}", source.context());
    out
}

/// `openssl s_client` to a loopback port, as a second, independent TLS client: see [`s_client`].
pub struct SClient {
    port: u16,
    servername: String,
    args: Vec<std::ffi::OsString>,
    input: Vec<(Duration, Vec<u8>)>,
    timeout: Duration,
}

/// `openssl s_client -connect 127.0.0.1:PORT -servername localhost`, with no standard input
/// until [`SClient::stdin`] gives some, ended after 30 s.
pub fn s_client(port: u16) -> SClient {
    SClient {
        port,
        servername: "localhost".into(),
        args: Vec::new(),
        input: Vec::new(),
        timeout: Duration::from_secs(30),
    }
}

impl SClient {
    pub fn servername(mut self, name: &str) -> Self {
        self.servername = name.to_string();
        self
    }

    /// One more argument (`-cert`, a path, ...).
    pub fn arg(self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.args([arg])
    }

    /// `-CAfile path`: the CA the server's certificate is checked against.
    pub fn ca_file(self, path: impl AsRef<Path>) -> Self {
        self.arg("-CAfile").arg(path.as_ref())
    }

    /// More arguments (`-tls1_2`, `-reconnect`, ...).
    pub fn args<S: AsRef<std::ffi::OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Bytes written to its standard input at once (as `printf ... |` does); standard input is
    /// closed after the last of them.
    pub fn stdin(self, bytes: impl AsRef<[u8]>) -> Self {
        self.stdin_after(Duration::ZERO, bytes)
    }

    /// Bytes written `delay` after the ones before (as a person typing would).
    pub fn stdin_after(mut self, delay: Duration, bytes: impl AsRef<[u8]>) -> Self {
        self.input.push((delay, bytes.as_ref().to_vec()));
        self
    }

    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit;
        self
    }

    /// Runs it; the output holds stdout and stderr in one stream (as `2>&1`), in `stdout`. A run
    /// past the timeout is killed (its status then says so).
    pub fn run(self) -> Output {
        let (mut reader, writer) = std::io::pipe().expect("pipe");
        let mut cmd = Command::new("openssl");
        cmd.arg("s_client")
            .arg("-connect")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("-servername")
            .arg(&self.servername)
            .args(&self.args)
            .stdin(if self.input.is_empty() { Stdio::null() } else { Stdio::piped() })
            .stdout(writer.try_clone().expect("pipe"))
            .stderr(writer);
        let mut child = cmd.spawn().expect("run openssl s_client");
        // The command holds the pipe's write ends: without dropping it, the read never ends.
        drop(cmd);
        let stdin = child.stdin.take();
        let input = self.input;
        let feeder = std::thread::spawn(move || {
            if let Some(mut stdin) = stdin {
                for (delay, bytes) in input {
                    std::thread::sleep(delay);
                    if stdin.write_all(&bytes).is_err() {
                        break;
                    }
                }
            }
        });
        let collector = std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = reader.read_to_end(&mut out);
            out
        });
        let status = match poll(self.timeout, Duration::from_millis(20), || child.try_wait().unwrap()) {
            Ok(status) => status,
            Err(_) => {
                let _ = child.kill();
                child.wait().unwrap()
            }
        };
        feeder.join().unwrap();
        Output { status, stdout: collector.join().unwrap(), stderr: Vec::new() }
    }
}

/// A test CA and certificates issued by it.
pub struct Pki {
    pub ca_pem: String,
    ca_key: rcgen::KeyPair,
    ca_params: rcgen::CertificateParams,
    ca_cert: rcgen::Certificate,
}

impl Pki {
    pub fn new() -> Pki {
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "mod_tls test CA");
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let ca_cert = params.self_signed(&ca_key).unwrap();
        Pki { ca_pem: ca_cert.pem(), ca_key, ca_params: params, ca_cert }
    }

    /// A server certificate for `names` (DNS names or IP addresses): (cert PEM, key PEM).
    pub fn issue(&self, names: &[&str], alg: &'static rcgen::SignatureAlgorithm) -> (String, String) {
        self.issue_with(names, alg, |_| {})
    }

    /// A server certificate whose validity ended in 2020.
    pub fn issue_expired(&self, names: &[&str]) -> (String, String) {
        self.issue_with(names, &rcgen::PKCS_ECDSA_P256_SHA256, |p| {
            p.not_before = rcgen::date_time_ymd(2019, 1, 1);
            p.not_after = rcgen::date_time_ymd(2020, 1, 1);
        })
    }

    fn issue_with(
        &self,
        names: &[&str],
        alg: &'static rcgen::SignatureAlgorithm,
        adjust: impl FnOnce(&mut rcgen::CertificateParams),
    ) -> (String, String) {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, names[0]);
        adjust(&mut params);
        let issuer = rcgen::Issuer::new(self.ca_params.clone(), &self.ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    pub fn client_config(&self, versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<rustls::ClientConfig> {
        Arc::new(self.client_config_with(versions, |_| {}, |_| {}))
    }

    /// A client config trusting this CA, with the provider and the config adjusted by the callers.
    pub fn client_config_with(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
        provider: impl FnOnce(&mut rustls::crypto::CryptoProvider),
        config: impl FnOnce(&mut rustls::ClientConfig),
    ) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_cert.der().clone()).unwrap();
        let mut p = rustls::crypto::aws_lc_rs::default_provider();
        provider(&mut p);
        let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(p))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config(&mut c);
        c
    }
}

pub struct Httpd {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub tls_port: u16,
    pub plain_port: u16,
    pub pki: Pki,
    pub mpm: &'static str,
    /// Directives appended to the generated httpd.conf.
    pub extra: String,
    /// Replaces the default `<VirtualHost>` on the TLS port when set.
    pub tls_vhost: Option<String>,
    /// `LogLevel`: httpd's default (`warn`) unless a test needs to see more.
    pub log_level: String,
    /// Replaces the MPM tuning lines when set.
    pub mpm_tuning: Option<String>,
    /// Extra environment for the httpd process.
    pub env: Vec<(String, String)>,
    /// Leave mod_socache_shmcb out (the default session cache then is unavailable).
    pub without_shmcb: bool,
    /// A whole httpd.conf of the test's own, written instead of the generated one.
    pub main_conf: Option<String>,
    child: Option<Child>,
}

impl Default for Httpd {
    fn default() -> Self {
        Self::new()
    }
}

impl Httpd {
    pub fn new() -> Httpd {
        let dir = tempfile::Builder::new().prefix("mod_tls-test-").tempdir().unwrap();
        let root = dir.path().to_path_buf();
        for d in ["htdocs", "logs", "run", "conf"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let pki = Pki::new();
        let (cert, key) = pki.issue(&["localhost", "127.0.0.1"], &rcgen::PKCS_ECDSA_P256_SHA256);
        std::fs::write(root.join("conf/server.pem"), cert).unwrap();
        std::fs::write(root.join("conf/server.key"), key).unwrap();
        std::fs::write(root.join("conf/ca.pem"), &pki.ca_pem).unwrap();
        std::fs::write(root.join("htdocs/index.html"), "hello over TLS\n").unwrap();
        Httpd {
            _dir: dir,
            root,
            tls_port: free_port(),
            plain_port: free_port(),
            pki,
            mpm: "event",
            extra: String::new(),
            tls_vhost: None,
            log_level: "warn".into(),
            mpm_tuning: None,
            env: Vec::new(),
            without_shmcb: false,
            main_conf: None,
            child: None,
        }
    }

    /// A `<VirtualHost>` named localhost on the TLS port, with `body` (directive lines) inside.
    pub fn localhost_vhost(&self, body: &str) -> String {
        format!("<VirtualHost 127.0.0.1:{}>\n  ServerName localhost\n{body}\n</VirtualHost>\n", self.tls_port)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn write(&self, rel: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        p
    }

    /// Writes an executable CGI script into htdocs.
    pub fn cgi(&self, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let p = self.write(&format!("htdocs/{name}"), body);
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    pub fn conf_text(&self) -> String {
        let vhost = self
            .tls_vhost
            .clone()
            .unwrap_or_else(|| self.localhost_vhost("  TLSCertificate conf/server.pem conf/server.key"));
        format!(
            "{plain}LoadModule tls_module {module}\nListen 127.0.0.1:{tls}\nTLSEngine 127.0.0.1:{tls}\n{vhost}\n{extra}\n",
            plain = self.plain_conf(),
            module = module_path().display(),
            tls = self.tls_port,
            extra = self.extra,
        )
    }

    /// The configuration without any TLS: paths, MPM, the usual modules, the document root and
    /// `Listen` on the plain port. Tests of other TLS set-ups (mod_ssl, converted ones) add theirs.
    pub fn plain_conf(&self) -> String {
        let root = self.root.display();
        let mpm = self.mpm;
        let user = if is_root() { "User www-data\nGroup www-data\n" } else { "" };
        let cgi = if mpm == "prefork" {
            format!("LoadModule cgi_module {MODDIR}/mod_cgi.so\n")
        } else {
            format!("LoadModule cgid_module {MODDIR}/mod_cgid.so\nScriptSock {root}/run/cgid.sock\n")
        };
        let default_tuning = match mpm {
            "prefork" => "StartServers 2\nMinSpareServers 1\nMaxSpareServers 4\nMaxRequestWorkers 20\n",
            _ => {
                "StartServers 2\nServerLimit 4\nThreadsPerChild 16\nThreadLimit 16\nMinSpareThreads 8\nMaxSpareThreads 64\nMaxRequestWorkers 64\n"
            }
        };
        let mpm_tuning = self.mpm_tuning.clone().unwrap_or_else(|| default_tuning.to_string());
        format!(
            r#"ServerRoot "{root}"
PidFile "{root}/run/httpd.pid"
DefaultRuntimeDir "{root}/run"
Mutex file:{root}/run default
ErrorLog "{root}/logs/error.log"
LogLevel {loglevel}
LoadModule mpm_{mpm}_module {MODDIR}/mod_mpm_{mpm}.so
LoadModule authz_core_module {MODDIR}/mod_authz_core.so
LoadModule mime_module {MODDIR}/mod_mime.so
LoadModule dir_module {MODDIR}/mod_dir.so
LoadModule rewrite_module {MODDIR}/mod_rewrite.so
LoadModule headers_module {MODDIR}/mod_headers.so
LoadModule env_module {MODDIR}/mod_env.so
{shmcb}{cgi}{user}{mpm_tuning}ServerName localhost
Timeout 30
GracefulShutdownTimeout 5
LogFormat "%h %l %u %t \"%r\" %>s %b" common
CustomLog "{root}/logs/access.log" common
TypesConfig /etc/mime.types
DocumentRoot "{root}/htdocs"
DirectoryIndex index.html
<Directory "{root}/htdocs">
  Require all granted
  Options +ExecCGI
  AddHandler cgi-script .cgi
</Directory>
Listen 127.0.0.1:{plain}
"#,
            loglevel = self.log_level,
            shmcb = if self.without_shmcb {
                String::new()
            } else {
                format!("LoadModule socache_shmcb_module {MODDIR}/mod_socache_shmcb.so\n")
            },
            plain = self.plain_port,
        )
    }

    fn write_conf(&self) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let conf = self.path("conf/httpd.conf");
        std::fs::write(&conf, self.main_conf.clone().unwrap_or_else(|| self.conf_text())).unwrap();
        // Children run as www-data when we are root: let them read the document tree.
        std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o755)).unwrap();
        if is_root() {
            for dir in ["htdocs", "run"] {
                let chown = Command::new("chown").args(["-R", "www-data:www-data"]).arg(self.path(dir)).status();
                assert!(chown.is_ok_and(|s| s.success()), "chown {dir} to www-data");
            }
        }
        conf
    }

    /// `apache2 -t` on the current configuration.
    pub fn configtest(&self) -> Output {
        let conf = self.write_conf();
        Command::new(HTTPD).arg("-t").arg("-f").arg(&conf).output().expect("run apache2 -t")
    }

    /// Starts httpd in the foreground (its own process group) and waits until it accepts.
    pub fn start(&mut self) -> &mut Self {
        let conf = self.write_conf();
        let child = Command::new(HTTPD)
            .arg("-DFOREGROUND")
            .arg("-f")
            .arg(&conf)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.path("logs/stderr.log")).unwrap())
            .process_group(0)
            .spawn()
            .expect("start apache2");
        self.child = Some(child);
        let (ports, log, stderr) =
            ([self.tls_port, self.plain_port], self.path("logs/error.log"), self.path("logs/stderr.log"));
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let child = self.child.as_mut().unwrap();
        poll_until(Duration::from_secs(20), "httpd to come up", || {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("httpd exited at start-up ({status}):\n{}\n{}", read(&stderr), read(&log));
            }
            let up = ports.iter().all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok());
            let text = read(&log);
            if up && text.contains("resuming normal operations") { Ok(()) } else { Err(text) }
        });
        self
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("started").id()
    }

    /// PIDs of the child processes that serve connections.
    pub fn children(&self) -> Vec<u32> {
        let out = Command::new("pgrep").arg("-P").arg(self.pid().to_string()).output().unwrap();
        String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|s| s.parse().ok()).collect()
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.path("logs/error.log")).unwrap_or_default()
    }

    /// The log file `rel` once `done` accepts its text, or after 10 s. httpd logs a request after
    /// its response went out: a client that has its answer may look before the line is there.
    pub fn log_when(&self, rel: &str, done: impl Fn(&str) -> bool) -> String {
        let read = || std::fs::read_to_string(self.path(rel)).unwrap_or_default();
        poll(Duration::from_secs(10), Duration::from_millis(50), || Some(read()).filter(|t| done(t)))
            .unwrap_or_else(|_| read())
    }

    /// Graceful restart (SIGUSR1); returns once httpd logged that it resumed normal operations
    /// once more than before.
    pub fn graceful(&self) {
        let restarts = || self.error_log().matches("resuming normal operations").count();
        let before = restarts();
        signal(self.pid() as i32, libc::SIGUSR1);
        poll_until(Duration::from_secs(15), "the graceful restart", || {
            if restarts() > before { Ok(()) } else { Err(self.error_log()) }
        });
    }

    /// Asserts that no child crashed and nothing panicked so far.
    pub fn assert_no_crash(&self) {
        let log = self.error_log();
        for bad in ["exit signal", "panic", "Segmentation"] {
            assert!(!log.contains(bad), "error log shows '{bad}':\n{log}");
        }
    }

    /// Stops httpd the way an administrator does: graceful-stop (SIGWINCH), which lets each child
    /// finish its connections (at most `GracefulShutdownTimeout`), then SIGTERM, then SIGKILL.
    /// A bare SIGTERM right after many connections were dropped races the event MPM's own
    /// shutdown (it reads the sockets of connections whose pools may be gone).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id() as i32;
            let exited_within = |child: &mut Child, limit: Duration| {
                poll(limit, Duration::from_millis(20), || child.try_wait().unwrap().is_some()).is_ok()
            };
            signal(pid, libc::SIGWINCH);
            if !exited_within(&mut child, Duration::from_secs(10)) {
                signal(pid, libc::SIGTERM);
                exited_within(&mut child, Duration::from_secs(10));
            }
            signal(-pid, libc::SIGKILL);
            child.wait().expect("reap httpd");
        }
    }

    pub fn https_url(&self, path: &str) -> String {
        format!("https://localhost:{}{}", self.tls_port, path)
    }

    /// curl against this server, trusting its CA, resolving `localhost` to 127.0.0.1.
    pub fn curl(&self, args: &[&str]) -> Output {
        Command::new("curl")
            .args(["-sS", "--max-time", "120", "--cacert"])
            .arg(self.path("conf/ca.pem"))
            .args(args)
            .output()
            .expect("run curl")
    }

    /// mod_status's `?auto` page from the plain port (mod_status and a `/server-status` handler
    /// must be configured), as `Key: value` pairs.
    pub fn status_auto(&self) -> std::collections::BTreeMap<String, String> {
        self.status_page("auto")
    }

    /// `?auto` with a line for every certificate (`?auto&certificates`).
    pub fn status_auto_all(&self) -> std::collections::BTreeMap<String, String> {
        self.status_page("auto&certificates")
    }

    fn status_page(&self, query: &str) -> std::collections::BTreeMap<String, String> {
        let o = self.curl(&["-s", &format!("http://127.0.0.1:{}/server-status?{query}", self.plain_port)]);
        assert!(o.status.success(), "server-status: {}", output_text(&o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split_once(": ").map(|(k, v)| (k.to_string(), v.to_string())))
            .collect()
    }

    /// Opens a rustls connection to the TLS port and completes the handshake.
    pub fn tls_connect(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
        tls_connect(self.tls_port, "localhost", self.pki.client_config(versions))
    }

    /// GET `path` with the rustls client; returns the parsed response and the negotiated version.
    pub fn get(
        &self,
        path: &str,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> (Response, rustls::ProtocolVersion) {
        let mut s = self.tls_connect(versions);
        let v = s.conn.protocol_version().unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n", self.tls_port).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).expect("response ends with close_notify");
        (Response::parse(&raw).0, v)
    }
}

impl Drop for Httpd {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- error log of the failed test's httpd ---\n{}", self.error_log());
        }
    }
}

pub fn tls_connect(
    port: u16,
    name: &str,
    config: Arc<rustls::ClientConfig>,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    try_tls_connect(port, name, config).expect("TLS handshake")
}

/// Connects and handshakes; the error is what the client saw (e.g. an alert from the server).
pub fn try_tls_connect(
    port: u16,
    name: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, std::io::Error> {
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let server_name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(config, server_name).unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// Sends one GET with `host` on an established stream and reads the response to the end.
pub fn get_on(s: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>, path: &str, host: &str) -> Response {
    // One write (one record, one segment), as a real client sends its request.
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("response ends with close_notify");
    Response::parse(&raw).0
}

/// A `<VirtualHost>` block for the TLS port: name, certificate/key files (relative to ServerRoot),
/// and extra lines.
pub fn vhost_block(port: u16, name: &str, cert: &str, key: &str, extra: &str) -> String {
    format!(
        "<VirtualHost 127.0.0.1:{port}>\n  ServerName {name}\n  TLSCertificate {cert} {key}\n  DocumentRoot \"htdocs/{name}\"\n{extra}\n</VirtualHost>\n"
    )
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Parses one response from the front of `raw`; returns it and the bytes that follow it.
    pub fn parse(raw: &[u8]) -> (Response, &[u8]) {
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("complete header block") + 4;
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.trim().to_string(), v.trim().to_string())
            })
            .collect();
        let mut r = Response { status, headers, body: Vec::new() };
        let rest = &raw[end..];
        if let Some(len) = r.header("Content-Length").map(|v| v.parse::<usize>().unwrap()) {
            r.body = rest[..len].to_vec();
            (r, &rest[len..])
        } else if r.header("Transfer-Encoding").is_some_and(|v| v.contains("chunked")) {
            let mut rest = rest;
            loop {
                let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
                let size = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16).unwrap();
                rest = &rest[nl + 2..];
                if size == 0 {
                    rest = &rest[2..];
                    break;
                }
                r.body.extend_from_slice(&rest[..size]);
                rest = &rest[size + 2..];
            }
            (r, rest)
        } else {
            r.body = rest.to_vec();
            (r, &[])
        }
    }
}

/// Writes `len` bytes of incompressible data to `path`.
pub fn random_file(path: &Path, len: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ len as u64;
    let mut left = len;
    let mut buf = [0u8; 8192];
    while left > 0 {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(buf.len());
        f.write_all(&buf[..n]).unwrap();
        left -= n;
    }
    f.flush().unwrap();
}

pub fn files_equal(a: &Path, b: &Path) -> bool {
    Command::new("cmp").arg("-s").arg(a).arg(b).status().unwrap().success()
}

pub fn output_text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

pub const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
pub const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

/// Records the bytes a stream reads.
pub struct Recording<S> {
    pub inner: S,
    pub seen: Vec<u8>,
}
impl<S: Read> Read for Recording<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.seen.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}
impl<S: Write> Write for Recording<S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A server process the test starts on loopback and kills when done.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start_daemon(cmd: &mut Command, port: u16) -> Daemon {
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start cache server");
    let d = Daemon(child);
    poll_until(Duration::from_secs(10), format!("the cache server on {port} to come up"), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    d
}

/// memcached on a free loopback port, for caches that outlive httpd: (daemon, port).
pub fn start_memcached() -> (Daemon, u16) {
    let port = free_port();
    let mut cmd = Command::new("memcached");
    cmd.args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0"]);
    if is_root() {
        cmd.args(["-u", "nobody"]);
    }
    (start_daemon(&mut cmd, port), port)
}
