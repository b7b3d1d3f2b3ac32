//! The exact rustls version this build links (from the workspace's Cargo.lock), for the start-up
//! line and `SSL_VERSION_LIBRARY`.

fn main() {
    let lock_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock");
    println!("cargo::rerun-if-changed={lock_path}");
    let lock = std::fs::read_to_string(lock_path).unwrap_or_default();
    let mut lines = lock.lines();
    let mut version = "unknown".to_string();
    while let Some(l) = lines.next() {
        if l.trim() == "name = \"rustls\"" {
            if let Some(v) = lines.next().and_then(|v| v.trim().strip_prefix("version = ")) {
                version = v.trim_matches('"').to_string();
            }
            break;
        }
    }
    println!("cargo::rustc-env=MOD_TLS_RUSTLS_VERSION={version}");
}
