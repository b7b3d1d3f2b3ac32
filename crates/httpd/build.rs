//! Generates the httpd/APR bindings from the installed headers (the workspace's
//! `apache-headers/wrapper.h`).
//!
//! The include directories come from `apxs -q` (the `APXS` environment variable names another apxs,
//! for httpd installs outside Debian's). When apxs or libclang is missing we stop with one sentence
//! that names the package to install, rather than a page of bindgen output.

use std::env;
use std::path::PathBuf;
use std::process::{Command, exit};

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    println!("cargo::error={msg}");
    exit(1);
}

fn apxs_query(apxs: &str, var: &str) -> String {
    let out = Command::new(apxs).args(["-q", var]).output().unwrap_or_else(|_| {
        fail(&format!(
            "`{apxs}` was not found: install the httpd development files (Debian: apt-get install apache2-dev) or set APXS=/path/to/apxs"
        ))
    });
    if !out.status.success() {
        fail(&format!(
            "`{apxs} -q {var}` failed: install the httpd development files (Debian: apt-get install apache2-dev)"
        ));
    }
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn main() {
    println!("cargo::rerun-if-changed=../../apache-headers/wrapper.h");
    println!("cargo::rerun-if-env-changed=APXS");
    let apxs = env::var("APXS").unwrap_or_else(|_| "apxs".to_string());
    let include = apxs_query(&apxs, "INCLUDEDIR");
    let apr_include = apxs_query(&apxs, "APR_INCLUDEDIR");
    let aprutil_include = apxs_query(&apxs, "APU_INCLUDEDIR");

    if let Err(e) = clang_sys_probe() {
        fail(&e);
    }

    let mut builder = bindgen::Builder::default()
        .header("../../apache-headers/wrapper.h")
        .clang_args(["-DLINUX", "-D_REENTRANT", "-D_GNU_SOURCE"])
        .clang_arg(format!("-I{include}"))
        .clang_arg(format!("-I{apr_include}"))
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    if !aprutil_include.is_empty() && aprutil_include != apr_include {
        builder = builder.clang_arg(format!("-I{aprutil_include}"));
    }
    let bindings = builder.generate().unwrap_or_else(|e| {
        fail(&format!("bindgen could not read the httpd headers ({e}): install apache2-dev and libclang-dev"))
    });
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("httpd_bindings.rs");
    bindings.write_to_file(out).unwrap_or_else(|e| fail(&format!("cannot write bindings: {e}")));
}

/// bindgen loads libclang at run time and panics with a long message when it is absent.
fn clang_sys_probe() -> Result<(), String> {
    let candidates = [
        "/usr/lib/llvm-14/lib",
        "/usr/lib/llvm-15/lib",
        "/usr/lib/llvm-16/lib",
        "/usr/lib/llvm-17/lib",
        "/usr/lib/llvm-18/lib",
        "/usr/lib/llvm-19/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
    ];
    if env::var_os("LIBCLANG_PATH").is_some() {
        return Ok(());
    }
    for dir in candidates {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with("libclang") && name.contains(".so") && !name.starts_with("libclang-cpp") {
                    return Ok(());
                }
            }
        }
    }
    Err("libclang was not found: install it (Debian: apt-get install libclang-dev) or set LIBCLANG_PATH".into())
}
