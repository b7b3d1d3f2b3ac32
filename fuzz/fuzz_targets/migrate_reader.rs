//! mod_tls-migrate's configuration reader on arbitrary files that include one another: it must
//! end (loops, nesting, sizes), never panic, and refuse what is not a configuration with an error.
//!
//! The input is cut at 0xFF bytes into up to four files, `a.conf` (the one read) to `d.conf`, in
//! a directory that also holds `loop -> .` and `fifo` (a FIFO) for the Includes to reach.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/migrate/src/reader.rs"]
#[allow(dead_code)]
mod reader;

/// The directory of this process's files, with the link loop and the FIFO made once.
fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("mod_tls-fuzz-reader-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let _ = std::os::unix::fs::symlink(".", d.join("loop"));
        let fifo = std::ffi::CString::new(d.join("fifo").to_string_lossy().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) };
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let d = dir();
    let names = ["a.conf", "b.conf", "c.conf", "d.conf"];
    let mut parts = data.split(|&b| b == 0xFF);
    for name in names {
        let _ = std::fs::write(d.join(name), parts.next().unwrap_or_default());
    }
    if let Ok(read) = reader::Reader::new(Some(d.to_path_buf())).read(&d.join("a.conf")) {
        // What was read resolves without panicking too.
        let paths = read.paths();
        for line in &read.lines {
            if let Some((_, args)) = line.directive() {
                args.iter().for_each(|a| drop(paths.resolve(a)));
            }
            let _ = reader::words(&line.raw);
        }
    }
});
