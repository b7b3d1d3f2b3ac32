//! mod_tls-migrate writes `LoadModule tls_module <LIBEXECDIR>/mod_tls.so` by default: the
//! directory comes from `apxs -q LIBEXECDIR` (the `APXS` environment variable names another apxs).

fn main() {
    println!("cargo::rerun-if-env-changed=APXS");
    let apxs = std::env::var("APXS").unwrap_or_else(|_| "apxs".to_string());
    let dir = std::process::Command::new(&apxs)
        .args(["-q", "LIBEXECDIR"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| {
            let msg = format!(
                "`{apxs} -q LIBEXECDIR` failed: install the httpd development files (Debian: apt-get install apache2-dev) or set APXS=/path/to/apxs"
            );
            println!("cargo::error={msg}");
            std::process::exit(1)
        });
    println!("cargo::rustc-env=MOD_TLS_LIBEXECDIR={dir}");
}
