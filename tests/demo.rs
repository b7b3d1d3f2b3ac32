//! `make demo`'s script: it serves HTTPS with its embedded configuration, and its log has no
//! warning or error.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

#[test]
fn the_demo_serves_https_without_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    // A checkout that the httpd user cannot read (as root's home is): the module and the working
    // directory are inside a mode-700 directory; the demo's own directory is elsewhere.
    let checkout = tempfile::tempdir().unwrap();
    std::fs::set_permissions(checkout.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let module = checkout.path().join("mod_tls.so");
    std::fs::copy(module_path(), &module).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let demo_dir = dir.path().join("demo");
    let port = free_port();
    let log = dir.path().join("demo.log");
    let mut demo = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/demo.sh"))
        .arg(&module)
        .current_dir(checkout.path())
        .env("DEMO_PORT", port.to_string())
        .env("DEMO_DIR", &demo_dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let ca = demo_dir.join("conf/demo.pem");
    let url = format!("https://localhost:{port}/");
    let page = poll_until_every(Duration::from_secs(20), Duration::from_millis(100), "the demo to serve", || {
        let o = Command::new("curl")
            .args(["-sS", "--max-time", "5", "--resolve", &format!("localhost:{port}:127.0.0.1"), "--cacert"])
            .arg(&ca)
            .arg(&url)
            .output()
            .unwrap();
        if o.status.success() {
            return Ok(String::from_utf8_lossy(&o.stdout).into_owned());
        }
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(status) = demo.try_wait().unwrap() {
            panic!("the demo exited ({status}) and does not serve: {}\n{log}", output_text(&o));
        }
        Err(format!("{}\n{log}", output_text(&o)))
    });
    assert!(page.contains("Hello from Apache httpd with mod_tls"), "{page}");
    signal(demo.id() as i32, libc::SIGWINCH);
    demo.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("mod_tls/"), "the demo's log: {text}");
    for bad in [":warn]", ":error]", ":crit]", ":emerg]"] {
        assert!(!text.contains(bad), "{bad} in the demo's log:\n{text}");
    }
}
