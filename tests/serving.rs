//! HTTP/1.1 over TLS behaves as over plain TCP, through the real httpd.

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn serves_tls13_and_tls12_to_rustls_and_curl() {
    let mut h = Httpd::new();
    h.log_level = "info tls:info".into();
    h.start();
    for (versions, want) in [(TLS13, rustls::ProtocolVersion::TLSv1_3), (TLS12, rustls::ProtocolVersion::TLSv1_2)] {
        let (r, v) = h.get("/index.html", versions);
        assert_eq!(v, want);
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "hello over TLS\n");
    }
    for (flag, max) in [("--tlsv1.3", "1.3"), ("--tlsv1.2", "1.2")] {
        let o = h.curl(&["-v", flag, "--tls-max", max, &h.https_url("/index.html")]);
        assert!(o.status.success(), "{}", output_text(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout), "hello over TLS\n");
        assert!(output_text(&o).contains(&format!("SSL connection using TLSv{max}")), "{}", output_text(&o));
    }
    // openssl s_client as a second, independent TLS stack.
    let o = s_client(h.tls_port)
        .args(["-quiet", "-verify_return_error"])
        .ca_file(h.path("conf/ca.pem"))
        .stdin("GET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .run();
    assert!(String::from_utf8_lossy(&o.stdout).contains("hello over TLS"), "{}", output_text(&o));
    // The start-up line names both versions.
    let log = h.error_log();
    let line = log.lines().find(|l| l.contains("[tls:info]") && l.contains("initialized")).expect("start-up line");
    assert!(line.contains(&format!("mod_tls/{}", env!("CARGO_PKG_VERSION"))), "{line}");
    assert!(line.contains("rustls/0.23."), "{line}");
    h.assert_no_crash();
}

#[test]
fn keep_alive_and_pipelined_requests() {
    let mut h = Httpd::new();
    h.write("htdocs/two.txt", "second\n");
    h.start();
    let mut s = h.tls_connect(TLS13);
    // Two requests one after the other on one connection.
    for (path, body) in [("/index.html", "hello over TLS\n"), ("/two.txt", "second\n")] {
        write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed early");
            raw.extend_from_slice(&buf[..n]);
            if raw.windows(4).any(|w| w == b"\r\n\r\n") && raw.ends_with(body.as_bytes()) {
                break;
            }
        }
        let (r, rest) = Response::parse(&raw);
        assert_eq!((r.status, r.text().as_str(), rest.len()), (200, body, 0));
        assert_eq!(r.header("Connection"), None, "kept alive");
    }
    // Three pipelined requests in one write.
    s.write_all(
        b"GET /two.txt HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /two.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("clean close_notify after the last response");
    let (a, rest) = Response::parse(&raw);
    let (b, rest) = Response::parse(rest);
    let (c, rest) = Response::parse(rest);
    assert_eq!(
        (a.text(), b.text(), c.text(), rest.len()),
        ("second\n".into(), "hello over TLS\n".into(), "second\n".into(), 0)
    );
}

#[test]
fn server_sends_close_notify_when_it_closes() {
    let mut h = Httpd::new();
    h.start();
    for versions in [TLS13, TLS12] {
        let mut s = h.tls_connect(versions);
        s.write_all(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        // rustls reports a TCP close without close_notify as UnexpectedEof.
        s.read_to_end(&mut raw).expect("the server ended with close_notify");
        assert!(raw.ends_with(b"hello over TLS\n"));
    }
}

#[test]
fn large_file_is_byte_identical_and_streamed_in_bounded_memory() {
    let mut h = Httpd::new();
    let src = h.path("htdocs/big.bin");
    random_file(&src, 100 * 1024 * 1024);
    h.start();
    for (flag, max) in [("--tlsv1.3", "1.3"), ("--tlsv1.2", "1.2")] {
        let out = h.path(&format!("got-{max}.bin"));
        let mut curl = Command::new("curl")
            .args(["-sS", "--max-time", "300", "--cacert"])
            .arg(h.path("conf/ca.pem"))
            .args([flag, "--tls-max", max, "-o"])
            .arg(&out)
            .arg(h.https_url("/big.bin"))
            .spawn()
            .unwrap();
        // While it streams, no child may hold anywhere near the file in anonymous memory.
        let mut peak_kib = 0;
        let status = poll_until_every(Duration::from_secs(310), Duration::from_millis(20), "curl to finish", || {
            for pid in h.children() {
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                if let Some(l) = status.lines().find(|l| l.starts_with("RssAnon:")) {
                    let kib: u64 = l.split_whitespace().nth(1).unwrap().parse().unwrap();
                    peak_kib = peak_kib.max(kib);
                }
            }
            curl.try_wait().unwrap()
        });
        assert!(status.success(), "curl TLSv{max} failed");
        assert!(files_equal(&src, &out), "TLSv{max}: downloaded file differs");
        assert!(peak_kib < 48 * 1024, "TLSv{max}: a child reached {peak_kib} KiB anonymous memory");
        std::fs::remove_file(out).unwrap();
    }
    h.assert_no_crash();
}

#[test]
fn request_bodies_and_chunked_responses_through_cgi() {
    let mut h = Httpd::new();
    h.cgi("sum.cgi", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nsha256sum | cut -d' ' -f1\n");
    h.cgi(
        "stream.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nfor i in $(seq 1 2000); do echo \"line $i of a streamed response\"; done\n",
    );
    let body = h.path("post.bin");
    random_file(&body, 10 * 1024 * 1024);
    h.start();
    let want = Command::new("sha256sum").arg(&body).output().unwrap();
    let want = String::from_utf8_lossy(&want.stdout).split_whitespace().next().unwrap().to_string();
    let o = h.curl(&["--data-binary", &format!("@{}", body.display()), &h.https_url("/sum.cgi")]);
    assert!(o.status.success(), "{}", output_text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), want, "the CGI saw the 10 MiB body intact");

    let mut s = h.tls_connect(TLS13);
    s.write_all(b"GET /stream.cgi HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let (r, _) = Response::parse(&raw);
    assert_eq!(r.header("Transfer-Encoding"), Some("chunked"));
    let text = r.text();
    assert_eq!(text.lines().count(), 2000);
    assert!(text.ends_with("line 2000 of a streamed response\n"));
}

#[test]
fn client_vanishing_mid_response_costs_only_its_connection() {
    let mut h = Httpd::new();
    random_file(&h.path("htdocs/big.bin"), 50 * 1024 * 1024);
    h.start();
    let children_before = h.children();
    for _ in 0..5 {
        let mut s = h.tls_connect(TLS13);
        s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let mut got = 0;
        let mut buf = vec![0u8; 65536];
        while got < 1024 * 1024 {
            got += s.read(&mut buf).unwrap();
        }
        // Drop the socket with a reset, no close_notify.
        let sock = s.sock;
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        unsafe {
            use std::os::fd::AsRawFd;
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as u32,
            );
        }
        drop(sock);
    }
    let start = Instant::now();
    let (r, _) = h.get("/index.html", TLS13);
    assert_eq!(r.status, 200);
    assert!(start.elapsed() < Duration::from_secs(2));
    // A fixed wait: a child that died of it has no event to wait for.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(h.children(), children_before, "no child process died");
    h.assert_no_crash();
}

#[test]
fn https_is_known_to_rewrite_cgi_and_redirects() {
    let mut h = Httpd::new();
    h.write("htdocs/sub/index.html", "sub\n");
    h.cgi("env.cgi", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\necho \"HTTPS=$HTTPS\"\necho \"SCHEME=$REQUEST_SCHEME\"\n");
    h.extra = "RewriteEngine on\n\
               RewriteCond %{HTTPS} =on\n\
               RewriteRule ^/scheme$ /secure.txt [R=302,L]\n\
               RewriteRule ^/scheme$ /insecure.txt [R=302,L]\n"
        .into();
    h.tls_vhost = Some(h.localhost_vhost(
        "  TLSCertificate conf/server.pem conf/server.key\n  RewriteEngine on\n  RewriteOptions Inherit",
    ));
    h.start();

    let (r, _) = h.get("/env.cgi", TLS13);
    assert!(r.text().contains("HTTPS=on"), "{}", r.text());
    assert!(r.text().contains("SCHEME=https"), "{}", r.text());

    let (r, _) = h.get("/scheme", TLS13);
    assert_eq!(r.status, 302);
    assert_eq!(r.header("Location"), Some(format!("https://localhost:{}/secure.txt", h.tls_port).as_str()));

    // mod_dir's trailing-slash redirect is built by httpd itself from the scheme hook.
    let (r, _) = h.get("/sub", TLS13);
    assert_eq!(r.status, 301);
    assert_eq!(r.header("Location"), Some(format!("https://localhost:{}/sub/", h.tls_port).as_str()));

    // The plain port stays plain, with plain answers.
    let o = Command::new("curl")
        .args(["-sS", "-D", "-", &format!("http://127.0.0.1:{}/scheme", h.plain_port)])
        .output()
        .unwrap();
    let text = output_text(&o);
    assert!(text.contains(&format!("Location: http://127.0.0.1:{}/insecure.txt", h.plain_port)), "{text}");
    let o = Command::new("curl").args(["-sS", &format!("http://127.0.0.1:{}/env.cgi", h.plain_port)]).output().unwrap();
    assert!(!String::from_utf8_lossy(&o.stdout).contains("HTTPS=on"));
}

#[test]
fn mod_ssl_serves_its_own_port_beside_us() {
    let mut h = Httpd::new();
    let ssl_port = free_port();
    h.extra = format!(
        "LoadModule ssl_module {MODDIR}/mod_ssl.so\n\
         Listen 127.0.0.1:{ssl_port}\n\
         <VirtualHost 127.0.0.1:{ssl_port}>\n  ServerName localhost\n  SSLEngine on\n  \
         SSLCertificateFile conf/server.pem\n  SSLCertificateKeyFile conf/server.key\n  \
         Header set X-Served-By mod_ssl\n</VirtualHost>\n"
    );
    h.start();
    let o = h.curl(&["-D", "-", &format!("https://localhost:{ssl_port}/index.html")]);
    let text = output_text(&o);
    assert!(o.status.success() && text.contains("hello over TLS") && text.contains("X-Served-By: mod_ssl"), "{text}");
    let (r, _) = h.get("/index.html", TLS13);
    assert_eq!((r.status, r.header("X-Served-By")), (200, None));
    h.assert_no_crash();
}

#[test]
fn graceful_restart_keeps_serving_with_new_config() {
    let mut h = Httpd::new();
    h.start();
    let (r, _) = h.get("/index.html", TLS13);
    assert_eq!(r.status, 200);
    // Swap the certificate, then a graceful restart (SIGUSR1) must serve the new one.
    let (cert, key) = h.pki.issue(&["localhost"], &rcgen::PKCS_ECDSA_P384_SHA384);
    h.write("conf/server.pem", &cert);
    h.write("conf/server.key", key);
    h.graceful();
    use rustls::pki_types::pem::PemObject;
    let want = rustls::pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
    poll_until_every(
        Duration::from_secs(10),
        Duration::from_millis(100),
        "the new certificate served after the graceful restart (the old one still is)",
        || h.tls_connect(TLS13).conn.peer_certificates().unwrap()[0] == want,
    );
    let (r, _) = h.get("/index.html", TLS12);
    assert_eq!(r.status, 200);
    h.assert_no_crash();
}

/// (content type, length) of each TLS record in `wire`.
fn records(wire: &[u8]) -> Vec<(u8, usize)> {
    let mut out = Vec::new();
    let mut rest = wire;
    while rest.len() >= 5 {
        let len = u16::from_be_bytes([rest[3], rest[4]]) as usize;
        out.push((rest[0], len));
        rest = &rest[(5 + len).min(rest.len())..];
    }
    out
}

#[test]
fn responses_go_out_in_full_records() {
    let mut h = Httpd::new();
    random_file(&h.path("htdocs/100k.bin"), 100 * 1024);
    h.start();
    // TLS 1.2: no post-handshake messages share the record layer with the response.
    // The third case: four small pieces of a file between part headers (multipart/byteranges)
    // still share one record with the head, as HTTP/2 DATA frames of several files do.
    for (path, range, len) in [
        ("/index.html", "", 15usize),
        ("/100k.bin", "", 100 * 1024),
        ("/100k.bin", "Range: bytes=0-99,200-299,400-499,600-699\r\n", 400),
    ] {
        let sock = std::net::TcpStream::connect(("127.0.0.1", h.tls_port)).unwrap();
        let mut io = Recording { inner: sock, seen: Vec::new() };
        let mut conn =
            rustls::ClientConnection::new(h.pki.client_config(TLS12), "localhost".try_into().unwrap()).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut io).unwrap();
        }
        io.seen.clear();
        let mut s = rustls::Stream::new(&mut conn, &mut io);
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{range}Connection: close\r\n\r\n").as_bytes())
            .unwrap();
        let mut body = Vec::new();
        s.read_to_end(&mut body).unwrap();
        assert!(body.len() > len);
        let recs = records(&io.seen);
        let data: Vec<usize> = recs.iter().filter(|(t, _)| *t == 0x17).map(|(_, l)| *l).collect();
        assert_eq!(recs.last().map(|r| r.0), Some(0x15), "ends with the close_notify alert");
        if len < 1000 {
            assert_eq!(data.len(), 1, "head and body in one record: {recs:?}");
        } else {
            let full = data[0];
            assert!(full > 16 * 1024, "first record is full: {data:?}");
            assert!(data[..data.len() - 1].iter().all(|l| *l == full), "all records but the last are full: {data:?}");
            assert_eq!(data.len(), body.len().div_ceil(16 * 1024), "{data:?}");
        }
    }
}

#[test]
fn engine_on_an_ipv6_address_and_port() {
    let mut h = Httpd::new();
    let port = free_port();
    let (cert, key) = h.pki.issue(&["localhost", "::1"], &rcgen::PKCS_ECDSA_P256_SHA256);
    h.write("conf/v6.pem", cert);
    h.write("conf/v6.key", key);
    h.extra = format!(
        "Listen [::1]:{port}\nTLSEngine [::1]:{port}\n<VirtualHost [::1]:{port}>\n  ServerName localhost\n  \
         TLSCertificate conf/v6.pem conf/v6.key\n</VirtualHost>\n"
    );
    h.start();
    let o = h.curl(&["-g", "-6", &format!("https://[::1]:{port}/index.html")]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello over TLS\n", "{}", output_text(&o));
    // The IPv4 TLS port is untouched.
    assert_eq!(h.get("/index.html", TLS13).0.status, 200);
}

/// Static files go out from their file buckets at any offset: single ranges and multipart byte
/// ranges (file pieces between generated part headers) arrive byte-exact, small and large, with
/// `EnableMMAP` on or off.
#[test]
fn byte_ranges_of_files_are_exact() {
    for mmap in ["On", "Off"] {
        byte_ranges_of_files_are_exact_with(mmap);
    }
}

fn byte_ranges_of_files_are_exact_with(mmap: &str) {
    let mut h = Httpd::new();
    h.extra = format!("EnableMMAP {mmap}\n");
    let size = 300 * 1024;
    random_file(&h.path("htdocs/range.bin"), size);
    h.start();
    let file = std::fs::read(h.path("htdocs/range.bin")).unwrap();
    let get_range = |range: &str| {
        let mut s = h.tls_connect(TLS13);
        write!(s, "GET /range.bin HTTP/1.1\r\nHost: localhost\r\nRange: bytes={range}\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).expect("response ends with close_notify");
        Response::parse(&raw).0
    };
    for (from, to) in [(0, 0), (1, 1000), (70_000, 200_000), (size - 10, size - 1), (1001, size - 1), (0, size - 1)] {
        let r = get_range(&format!("{from}-{to}"));
        assert_eq!(r.status, 206, "EnableMMAP {mmap}: bytes={from}-{to}");
        assert_eq!(r.body, &file[from..=to], "EnableMMAP {mmap}: bytes={from}-{to}");
    }
    // Three pieces in one multipart response: each must be the file's bytes at its offset.
    let r = get_range("10-20,65530-131100,299000-");
    assert_eq!(r.status, 206);
    let boundary = r.header("Content-Type").unwrap().split("boundary=").nth(1).unwrap().to_string();
    let body = r.body;
    let found: Vec<usize> =
        body.windows(boundary.len()).enumerate().filter(|(_, w)| *w == boundary.as_bytes()).map(|(i, _)| i).collect();
    assert_eq!(found.len(), 4, "three parts and the closing boundary");
    for (n, (from, to)) in [(10usize, 20usize), (65530, 131100), (299000, size - 1)].into_iter().enumerate() {
        let part = &body[found[n]..found[n + 1]];
        let start = part.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let piece = &part[start..start + (to - from + 1)];
        assert_eq!(piece, &file[from..=to], "part {n}: bytes {from}-{to}");
    }
}

/// A client that leaves Nagle's algorithm on (Python's and many others' default) writes its
/// request right after its Finished; the kernel holds that write back until the Finished is
/// acknowledged. In TLS 1.3 the server owes the client nothing after its Finished (the module
/// holds the session ticket back for the response), so it must acknowledge the Finished at once,
/// or the request waits for a delayed ACK: 40 ms on every connection. (The request must go out
/// in one write, as real clients do: a request written in pieces meets the same 40 ms on its
/// second piece.)
#[test]
fn first_request_of_a_nagle_client_is_not_delayed() {
    let mut h = Httpd::new();
    h.start();
    for versions in [TLS13, TLS12] {
        let mut times = Vec::new();
        for _ in 0..5 {
            let mut s = h.tls_connect(versions);
            assert!(!s.sock.nodelay().unwrap(), "the client keeps Nagle's algorithm on");
            let start = Instant::now();
            let r = get_on(&mut s, "/index.html", "localhost");
            times.push(start.elapsed());
            assert_eq!(r.status, 200);
        }
        // Without the prompt answer every attempt takes 40 ms; the median must be fast.
        times.sort();
        assert!(times[2] < Duration::from_millis(25), "{versions:?}: request to response took {times:?}");
    }
}
