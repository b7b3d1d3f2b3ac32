//! Session resumption through httpd's socache: across child processes, across servers sharing
//! memcached or redis, never across vhosts with different TLS settings, and through restarts.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rustls::HandshakeKind;

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Logs, per request, the serving process, the client's port and whether the session resumed.
const TLS_LOG: &str = "TLSOptions StdEnvVars\nLogFormat \"%P %{remote}p %{SSL_SESSION_RESUMED}e\" tlslog\nCustomLog logs/tls.log tlslog\n";

/// Connects, makes one request (TLS 1.3 tickets arrive after the handshake, with the first
/// response) and returns how the handshake went.
fn handshake_kind_after_get(port: u16, sni: &str, cfg: &Arc<rustls::ClientConfig>) -> HandshakeKind {
    let mut s = tls_connect(port, sni, cfg.clone());
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("response ends with close_notify");
    assert_eq!(Response::parse(&raw).0.status, 200, "served over the {sni} connection");
    s.conn.handshake_kind().unwrap()
}

/// One keep-alive GET on an open connection.
fn get_keepalive(s: &mut Tls) {
    s.write_all(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !raw.ends_with(b"hello over TLS\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early");
        raw.extend_from_slice(&buf[..n]);
    }
}

/// Makes `n` connections with one client config, keeping each open while the next is made so
/// that they spread over the server's processes. Returns each connection's handshake kind and
/// its client port (which the server logs).
fn connect_held(h: &Httpd, cfg: &Arc<rustls::ClientConfig>, n: usize) -> Vec<(HandshakeKind, u16)> {
    let mut held = Vec::new();
    let mut kinds = Vec::new();
    for _ in 0..n {
        let mut s = tls_connect(h.tls_port, "localhost", cfg.clone());
        get_keepalive(&mut s);
        kinds.push((s.conn.handshake_kind().unwrap(), s.sock.local_addr().unwrap().port()));
        held.push(s);
    }
    kinds
}

/// (pid, client port, resumed) per logged request, waiting until `n` lines are there. Lines are
/// in the order requests ended in the server, which is not always the order of the connections:
/// a process logs a request after its response went out, and the next connection may be served
/// and logged by another process first.
fn tls_log(h: &Httpd, n: usize) -> Vec<(u32, u16, bool)> {
    h.log_when("logs/tls.log", |t| t.lines().count() >= n)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2] == "Resumed")
        })
        .collect()
}

fn resumes_across_processes(mpm: &'static str, tuning: &str) {
    let mut h = Httpd::new();
    h.mpm = mpm;
    h.mpm_tuning = Some(tuning.into());
    h.extra = TLS_LOG.into();
    h.start();
    let mut rounds = Vec::new();
    for versions in [TLS13, TLS12] {
        let cfg = h.pki.client_config(versions);
        let kinds = connect_held(&h, &cfg, 12);
        assert_eq!(kinds[0].0, HandshakeKind::Full);
        assert!(kinds[1..].iter().all(|(k, _)| *k == HandshakeKind::Resumed), "{mpm} {versions:?}: {kinds:?}");
        rounds.push(kinds);
    }
    let log = tls_log(&h, 24);
    assert_eq!(log.len(), 24);
    for round in rounds {
        // What the server logged for each connection of the round, in the order they were made.
        let seen: Vec<(u32, bool)> = round
            .iter()
            .map(|(_, port)| {
                let line = log.iter().find(|(_, p, _)| p == port).unwrap_or_else(|| panic!("no log line for {port}"));
                (line.0, line.2)
            })
            .collect();
        let first_pid = seen[0].0;
        assert!(!seen[0].1, "the first connection is a full handshake: {seen:?}");
        let resumed_pids: HashSet<u32> = seen[1..].iter().filter(|(_, r)| *r).map(|(p, _)| *p).collect();
        assert_eq!(seen[1..].iter().filter(|(_, r)| *r).count(), 11, "server saw every resumption: {seen:?}");
        assert!(resumed_pids.iter().any(|p| *p != first_pid), "resumed in other processes than the first: {seen:?}");
        assert!(resumed_pids.len() >= 2, "{seen:?}");
    }
    h.assert_no_crash();
}

#[test]
fn resumes_across_prefork_children() {
    resumes_across_processes(
        "prefork",
        "StartServers 6\nMinSpareServers 6\nMaxSpareServers 12\nMaxRequestWorkers 20\n",
    );
}

#[test]
fn resumes_across_event_processes() {
    resumes_across_processes(
        "event",
        "StartServers 4\nServerLimit 4\nThreadsPerChild 2\nThreadLimit 2\nMinSpareThreads 2\nMaxSpareThreads 8\n\
         MaxRequestWorkers 8\nAsyncRequestWorkerFactor 1\n",
    );
}

#[test]
fn openssl_reconnect_keeps_the_tls12_session_id() {
    let mut h = Httpd::new();
    h.mpm = "prefork";
    h.mpm_tuning = Some("StartServers 4\nMinSpareServers 4\nMaxSpareServers 8\nMaxRequestWorkers 20\n".into());
    h.start();
    let o = s_client(h.tls_port).args(["-tls1_2", "-reconnect"]).ca_file(h.path("conf/ca.pem")).stdin("\n").run();
    let text = output_text(&o);
    let ids: Vec<&str> = text.lines().filter_map(|l| l.trim().strip_prefix("Session-ID: ")).collect();
    assert_eq!(ids.len(), 6, "{text}");
    assert!(ids.iter().all(|id| *id == ids[0] && id.len() == 64), "{ids:?}");
    assert_eq!(text.matches("Reused, TLSv1.2").count(), 5, "{text}");
}

fn fleet_resumes_through(provider_module: &str, spec: &str) {
    let mut a = Httpd::new();
    let mut b = Httpd::new();
    // Same certificate on both servers, as behind a load balancer.
    for f in ["conf/server.pem", "conf/server.key"] {
        std::fs::copy(a.path(f), b.path(f)).unwrap();
    }
    for h in [&mut a, &mut b] {
        h.extra = format!("LoadModule {provider_module}\nTLSSessionCache {spec}\n{TLS_LOG}");
        h.start();
    }
    for versions in [TLS13, TLS12] {
        let cfg = a.pki.client_config(versions);
        assert_eq!(handshake_kind_after_get(a.tls_port, "localhost", &cfg), HandshakeKind::Full);
        for _ in 0..3 {
            let mut s = tls_connect(b.tls_port, "localhost", cfg.clone());
            assert_eq!(s.conn.handshake_kind(), Some(HandshakeKind::Resumed), "{spec} {versions:?}");
            get_keepalive(&mut s);
        }
    }
    assert!(tls_log(&b, 6).iter().all(|(_, _, resumed)| *resumed), "server b saw resumed sessions");
    a.assert_no_crash();
    b.assert_no_crash();
}

#[test]
fn fleet_shares_sessions_through_memcached() {
    let (_memcached, port) = start_memcached();
    fleet_resumes_through(
        &format!("socache_memcache_module {MODDIR}/mod_socache_memcache.so"),
        &format!("memcache:127.0.0.1:{port}"),
    );
}

#[test]
fn fleet_shares_sessions_through_redis() {
    let port = free_port();
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
    let _redis = start_daemon(&mut cmd, port);
    fleet_resumes_through(
        &format!("socache_redis_module {MODDIR}/mod_socache_redis.so"),
        &format!("redis:127.0.0.1:{port}"),
    );
}

/// A client session store that files every session under one name, so the client offers a
/// session made with one vhost to another.
#[derive(Debug)]
struct OneName(rustls::client::ClientSessionMemoryCache);

fn shared() -> rustls::pki_types::ServerName<'static> {
    rustls::pki_types::ServerName::try_from("shared.test").unwrap()
}

impl rustls::client::ClientSessionStore for OneName {
    fn set_kx_hint(&self, _: rustls::pki_types::ServerName<'static>, g: rustls::NamedGroup) {
        self.0.set_kx_hint(shared(), g)
    }
    fn kx_hint(&self, _: &rustls::pki_types::ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.0.kx_hint(&shared())
    }
    fn set_tls12_session(&self, _: rustls::pki_types::ServerName<'static>, v: rustls::client::Tls12ClientSessionValue) {
        self.0.set_tls12_session(shared(), v)
    }
    fn tls12_session(&self, _: &rustls::pki_types::ServerName<'_>) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.0.tls12_session(&shared())
    }
    fn remove_tls12_session(&self, _: &rustls::pki_types::ServerName<'static>) {
        self.0.remove_tls12_session(&shared())
    }
    fn insert_tls13_ticket(
        &self,
        _: rustls::pki_types::ServerName<'static>,
        v: rustls::client::Tls13ClientSessionValue,
    ) {
        self.0.insert_tls13_ticket(shared(), v)
    }
    fn take_tls13_ticket(
        &self,
        _: &rustls::pki_types::ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.0.take_tls13_ticket(&shared())
    }
}

#[test]
fn sessions_never_resume_into_a_vhost_with_other_settings() {
    let mut h = Httpd::new();
    let port = h.tls_port;
    let mut blocks = String::new();
    for name in ["a.test", "b.test"] {
        let (cert, key) = h.pki.issue(&[name], &rcgen::PKCS_ECDSA_P256_SHA256);
        h.write(&format!("conf/{name}.pem"), cert);
        h.write(&format!("conf/{name}.key"), key);
        h.write(&format!("htdocs/{name}/index.html"), "x");
        blocks += &vhost_block(port, name, &format!("conf/{name}.pem"), &format!("conf/{name}.key"), "");
    }
    h.tls_vhost = Some(blocks);
    h.start();
    for versions in [TLS13, TLS12] {
        let store = Arc::new(OneName(rustls::client::ClientSessionMemoryCache::new(32)));
        let cfg = Arc::new(h.pki.client_config_with(
            versions,
            |_| {},
            |c| c.resumption = rustls::client::Resumption::store(store.clone()),
        ));
        let kind = |sni: &str| handshake_kind_after_get(port, sni, &cfg);
        assert_eq!(kind("a.test"), HandshakeKind::Full);
        assert_eq!(kind("a.test"), HandshakeKind::Resumed, "{versions:?}: the session is offered and works for a.test");
        assert_eq!(kind("b.test"), HandshakeKind::Full, "{versions:?}: not resumed in b.test");
    }
}

#[test]
fn graceful_restart_and_kill_9_keep_resumption_working() {
    let mut h = Httpd::new();
    h.start();
    let check = |h: &Httpd| {
        for versions in [TLS13, TLS12] {
            let cfg = h.pki.client_config(versions);
            assert_eq!(handshake_kind_after_get(h.tls_port, "localhost", &cfg), HandshakeKind::Full);
            assert_eq!(handshake_kind_after_get(h.tls_port, "localhost", &cfg), HandshakeKind::Resumed);
        }
    };
    check(&h);
    let old_generation = h.children();
    h.graceful();
    // Only the new generation answers: a session made with an old child would be offered to a
    // new one.
    poll_until(Duration::from_secs(10), "the old generation of children to exit", || {
        let now = h.children();
        !old_generation.iter().any(|p| now.contains(p))
    });
    check(&h);
    // kill -9 of the whole server, then a fresh start on the same ServerRoot.
    signal(-(h.pid() as i32), libc::SIGKILL);
    h.stop();
    std::fs::remove_file(h.path("logs/error.log")).unwrap();
    h.start();
    check(&h);
    let log = h.error_log();
    for bad in [":error]", ":crit]", ":emerg]", "[tls:warn]"] {
        assert!(!log.contains(bad), "{bad} in:\n{log}");
    }
    h.assert_no_crash();
}

#[test]
fn cache_configuration_errors_and_none() {
    let mut h = Httpd::new();
    h.extra = "TLSSessionCache memcache:127.0.0.1:11211\n".into();
    assert_configtest_fails(&h, &["LoadModule socache_memcache_module"]);
    h.extra = "TLSSessionCache bogus spec\n".into();
    assert_configtest_fails(&h, &["TLSSessionCache"]);

    h.extra = "TLSSessionCache none\n".into();
    h.start();
    for versions in [TLS13, TLS12] {
        let cfg = h.pki.client_config(versions);
        handshake_kind_after_get(h.tls_port, "localhost", &cfg);
        assert_eq!(handshake_kind_after_get(h.tls_port, "localhost", &cfg), HandshakeKind::Full, "{versions:?}");
    }
}

#[test]
fn default_cache_is_optional_and_its_mutex_configurable() {
    // Without mod_socache_shmcb the default cache is unavailable: a warning, and the server runs.
    let mut h = Httpd::new();
    h.without_shmcb = true;
    h.start();
    assert!(h.error_log().contains("no TLS session cache"), "{}", h.error_log());
    assert_eq!(h.get("/index.html", TLS13).0.status, 200);
    h.stop();
    // The cache's lock is an httpd mutex that the Mutex directive configures.
    let mut h = Httpd::new();
    h.extra = format!("Mutex file:{} tls-session-cache\n", h.path("run").display());
    h.start();
    let cfg = h.pki.client_config(TLS12);
    assert_eq!(handshake_kind_after_get(h.tls_port, "localhost", &cfg), HandshakeKind::Full);
    assert_eq!(handshake_kind_after_get(h.tls_port, "localhost", &cfg), HandshakeKind::Resumed);
}

#[test]
fn server_status_shows_the_session_cache() {
    let mut h = Httpd::new();
    h.extra = format!(
        "LoadModule status_module {MODDIR}/mod_status.so\n<Location /server-status>\n  SetHandler server-status\n</Location>\n"
    );
    h.start();
    let (r, _) = h.get("/server-status?auto", TLS13);
    let text = r.text();
    // ?auto (what monitoring collects) names the provider, not its file or address.
    assert!(text.contains("TLSSessionCache: shmcb\n"), "{text}");
    assert!(!text.contains("session-cache"), "no path in ?auto: {text}");
    assert!(text.contains("CacheType: SHMCB"), "{text}");
    let (r, _) = h.get("/server-status", TLS13);
    assert!(r.text().contains("TLS Session Cache Status"), "{}", r.text());
    assert!(r.text().contains("(mod_tls, shmcb:"), "the full page has the whole spec: {}", r.text());
}
