//! An OCSP responder (`openssl ocsp`) on loopback and a certificate that names it, for the
//! stapling tests (mod_tls-migrate's, and mod_md's in md.rs).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::common::{Daemon, free_port, output_text, poll, poll_until, s_client};

/// In `dir`: `ca.pem`, `server.key` and `chain.pem` (a localhost certificate whose Authority
/// Information Access names the responder, then the CA), with the responder running (killed
/// when the value is dropped).
pub fn pki_with_responder(dir: &Path) -> Daemon {
    std::fs::create_dir_all(dir).unwrap();
    let port = free_port();
    let script = format!(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
         -days 5 -subj '/CN=OCSP Test CA' -addext basicConstraints=critical,CA:TRUE \
         -addext keyUsage=keyCertSign,cRLSign,digitalSignature 2>/dev/null && \
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr \
         -subj /CN=localhost 2>/dev/null && \
         printf 'subjectAltName=DNS:localhost\\nauthorityInfoAccess=OCSP;URI:http://127.0.0.1:{port}/\\n' > ext.cnf && \
         openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 0x1001 -days 4 -extfile ext.cnf \
         -out server.pem 2>/dev/null && cat server.pem ca.pem > chain.pem && \
         printf 'V\\t%s\\t\\t1001\\tunknown\\t/CN=localhost\\n' $(date -u -d '+4 days' +%y%m%d%H%M%SZ) > index.txt"
    );
    let o = Command::new("sh").arg("-c").arg(&script).current_dir(dir).output().unwrap();
    assert!(o.status.success(), "{script}: {}", output_text(&o));
    let responder = Daemon(
        Command::new("openssl")
            .args(["ocsp", "-index", "index.txt", "-port", &port.to_string(), "-rsigner", "ca.pem"])
            .args(["-rkey", "ca.key", "-CA", "ca.pem", "-ignore_err"])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Waits until it listens without connecting: it serves one connection at a time and would
    // wait for ever on an empty probe.
    poll_until(Duration::from_secs(10), "the OCSP responder to listen", || listening(port));
    responder
}

/// Whether something listens on loopback `port`, seen without connecting (`ss`).
pub fn listening(port: u16) -> bool {
    let o = Command::new("ss").args(["-Hltn", &format!("sport = :{port}")]).output().unwrap();
    !o.stdout.is_empty()
}

/// Whether the server on `port` staples a good OCSP response, asked until `within` passes.
pub fn staples(port: u16, ca: &Path, within: Duration) -> (bool, String) {
    let asked = poll(within, Duration::from_millis(500), || {
        let text = output_text(&s_client(port).arg("-status").ca_file(ca).run());
        if text.contains("OCSP Response Status: successful") && text.contains("Cert Status: good") {
            Ok(text)
        } else {
            Err(text)
        }
    });
    match asked {
        Ok(text) => (true, text),
        Err(text) => (false, text.unwrap_or_default()),
    }
}
