//! The basics under each of httpd's MPMs: event (default), worker and prefork.

mod common;

use std::io::{Read, Write};

use common::*;

fn basics(mpm: &'static str) {
    let mut h = Httpd::new();
    h.mpm = mpm;
    h.cgi("echo.cgi", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\necho \"HTTPS=$HTTPS\"\nwc -c\n");
    h.start();
    assert!(h.error_log().contains(&format!("[mpm_{mpm}:notice]")), "running {mpm}");
    // Enough connections to reach every child process.
    for i in 0..30 {
        let versions = if i % 2 == 0 { TLS13 } else { TLS12 };
        let (r, _) = h.get("/index.html", versions);
        assert_eq!((r.status, r.text().as_str()), (200, "hello over TLS\n"));
    }
    let o = h.curl(&["--data-binary", "0123456789", &h.https_url("/echo.cgi")]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).replace(' ', ""), "HTTPS=on\n10\n", "{}", output_text(&o));
    // A keep-alive connection with several requests.
    let mut s = h.tls_connect(TLS13);
    for _ in 0..3 {
        s.write_all(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        while !raw.ends_with(b"hello over TLS\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0);
            raw.extend_from_slice(&buf[..n]);
        }
    }
    h.assert_no_crash();
}

#[test]
fn event_mpm() {
    basics("event");
}

#[test]
fn worker_mpm() {
    basics("worker");
}

#[test]
fn prefork_mpm() {
    basics("prefork");
}
