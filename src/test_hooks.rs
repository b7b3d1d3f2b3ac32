//! Test-only switches, compiled in with the `test-hooks` feature (`make test`), never into a
//! release build: httpd's environment makes a hook panic, so that the integration tests can show
//! that a panic anywhere costs only its own connection.

use std::sync::OnceLock;

fn env(name: &str, cell: &'static OnceLock<Option<String>>) -> Option<&'static str> {
    cell.get_or_init(|| std::env::var(name).ok()).as_deref()
}

/// `MOD_TLS_TEST_PANIC_SNI=<name>`: a ClientHello for that name panics (while choosing the vhost).
pub fn panic_if_sni_is(sni: &str) {
    static NAME: OnceLock<Option<String>> = OnceLock::new();
    if env("MOD_TLS_TEST_PANIC_SNI", &NAME) == Some(sni) {
        panic!("test panic requested for SNI {sni}");
    }
}

/// `MOD_TLS_TEST_PANIC_PRE_CONNECTION=<port>`: pre_connection panics for connections to that
/// local port.
pub fn panic_in_pre_connection_on(port: u16) {
    static PORT: OnceLock<Option<String>> = OnceLock::new();
    if env("MOD_TLS_TEST_PANIC_PRE_CONNECTION", &PORT) == Some(port.to_string().as_str()) {
        panic!("test panic requested in pre_connection for port {port}");
    }
}

/// `MOD_TLS_TEST_PANIC_MERGE=1`: merging a virtual host's configuration panics (its slot is then
/// missing, which start-up must refuse).
pub fn panic_in_merge_server() {
    static ON: OnceLock<Option<String>> = OnceLock::new();
    if env("MOD_TLS_TEST_PANIC_MERGE", &ON) == Some("1") {
        panic!("test panic requested in merge_server");
    }
}

/// `MOD_TLS_TEST_PANIC_REQUEST=<host>`: post_read_request panics for requests to that host.
pub fn panic_in_request_for(host: &str) {
    static HOST: OnceLock<Option<String>> = OnceLock::new();
    if env("MOD_TLS_TEST_PANIC_REQUEST", &HOST) == Some(host) {
        panic!("test panic requested in post_read_request for {host}");
    }
}
