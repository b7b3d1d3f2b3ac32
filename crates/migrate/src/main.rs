//! mod_tls-migrate: reads an httpd configuration written for mod_ssl (following its Includes) and
//! prints the same configuration for mod_tls. Each mod_ssl line stays as a comment above what
//! replaces it; what cannot be carried over is listed on stderr with its file and line, and why.
//!
//! It reads directive words, values and suite names from `mod_tls_core`, the module's own settings
//! layer (no second copy), and needs the `openssl` command (to read OpenSSL cipher expressions as
//! mod_ssl did).

#![forbid(unsafe_code)]

mod ciphers;
mod convert;
mod expr;
mod reader;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use convert::{Fate, Options};

const USAGE: &str = "\
usage: mod_tls-migrate [options] CONFIG

Prints CONFIG (an httpd configuration using mod_ssl, its Include files inlined) converted for
mod_tls. What cannot be carried over is listed on stderr as FILE:LINE: DIRECTIVE: why.

options:
  -o FILE          write the configuration to FILE instead of stdout
  -d SERVERROOT    where relative Include paths start (default: CONFIG's ServerRoot, else its directory)
  --module PATH    the mod_tls.so written in place of LoadModule ssl_module (default: {MODULE})
  --chain-dir DIR  write certificate files with their SSLCertificateChainFile appended into DIR
                   and name those (without it, each chain file is reported)
  -q               list only what is not carried over (no notes)
  -h, --help       this text

exit status:
  0  converted
  1  failed: nothing written (an unreadable or unsafe file, an Include loop, a syntax error)
  2  wrong usage
  3  converted, but closed until edited: an access restriction (SSLRequire, per-directory
     SSLVerifyClient or SSLCipherSuite, SSLOptions +FakeBasicAuth) could not be carried over,
     so the place it guarded answers 403 (Require all denied) until you edit the lines marked
     CLOSED UNTIL EDITED
";

/// Exit statuses (documented in USAGE and the man page).
const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_CLOSED: u8 = 3;

fn default_module() -> String {
    format!("{}/mod_tls.so", env!("MOD_TLS_LIBEXECDIR"))
}

struct Args {
    config: PathBuf,
    output: Option<PathBuf>,
    server_root: Option<PathBuf>,
    module: String,
    chain_dir: Option<PathBuf>,
    quiet: bool,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = std::env::args().skip(1);
    let mut a = Args {
        config: PathBuf::new(),
        output: None,
        server_root: None,
        module: default_module(),
        chain_dir: None,
        quiet: false,
    };
    let mut config = None;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "-o" => a.output = Some(value("-o")?.into()),
            "-d" => a.server_root = Some(value("-d")?.into()),
            "--module" => a.module = value("--module")?,
            "--chain-dir" => a.chain_dir = Some(value("--chain-dir")?.into()),
            "-q" => a.quiet = true,
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s if config.is_none() => config = Some(PathBuf::from(s)),
            s => return Err(format!("one configuration file only (also got {s})")),
        }
    }
    a.config = config.ok_or("name the configuration file to convert")?;
    // The converted configuration names the files written there: relative to this directory,
    // not to the ServerRoot httpd would resolve them against.
    if let Some(dir) = &a.chain_dir {
        a.chain_dir = Some(std::path::absolute(dir).map_err(|e| format!("--chain-dir {}: {e}", dir.display()))?);
    }
    Ok(Some(a))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{}", USAGE.replace("{MODULE}", &default_module()));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("mod_tls-migrate: {e}\n\n{}", USAGE.replace("{MODULE}", &default_module()));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match run(&args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(EXIT_CLOSED),
        Err(e) => {
            eprintln!("mod_tls-migrate: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Converts; Ok(how many places are closed until edited).
/// The Debian layout directory (`/etc/apache2`) a site or configuration snippet is in: its
/// directory is `sites-*` or `conf-*` and the one above holds `mods-available/ssl.conf`.
fn debian_root(config: &std::path::Path) -> Option<PathBuf> {
    let dir = std::path::absolute(config).ok()?.parent()?.to_path_buf();
    let name = dir.file_name()?.to_string_lossy().into_owned();
    let root = dir.parent()?;
    let layout = ["sites-available", "sites-enabled", "conf-available", "conf-enabled"].contains(&name.as_str());
    (layout && root.join("mods-available/ssl.conf").is_file()).then(|| root.to_path_buf())
}

/// The addresses Debian's ports.conf opens for mod_ssl (`Listen` inside `<IfModule ssl_module>`
/// or `<IfModule mod_ssl.c>`).
fn ssl_listens(ports_conf: &std::path::Path) -> Vec<String> {
    let Ok(read) = reader::Reader::new(ports_conf.parent().map(std::path::Path::to_path_buf)).read(ports_conf) else {
        return Vec::new();
    };
    let mut sections: Vec<bool> = Vec::new();
    let mut out = Vec::new();
    for line in &read.lines {
        match &line.kind {
            reader::Kind::Open { name, args } => {
                let ssl = name.eq_ignore_ascii_case("ifmodule")
                    && args.first().is_some_and(|m| m == "ssl_module" || m == "mod_ssl.c");
                sections.push(ssl);
            }
            reader::Kind::Close { .. } => {
                sections.pop();
            }
            reader::Kind::Directive { name, args }
                if name.eq_ignore_ascii_case("listen") && sections.contains(&true) =>
            {
                out.extend(args.first().cloned());
            }
            _ => {}
        }
    }
    out
}

fn run(args: &Args) -> Result<usize, String> {
    let read_with = |prelude: Option<PathBuf>| {
        let r = reader::Reader::new(args.server_root.clone());
        let r = match prelude {
            Some(p) => r.with_prelude(p),
            None => r,
        };
        r.read(&args.config).map_err(|e| e.to_string())
    };
    let mut read = read_with(None)?;
    let mut debian_notes = Vec::new();
    let mut listens = Vec::new();
    if let Some(root) = debian_root(&args.config) {
        // `a2dismod ssl` drops mods-available/ssl.conf (global suites, protocols, session cache)
        // with mod_ssl: a site converted alone must carry them.
        let ssl_conf = root.join("mods-available/ssl.conf");
        if !read.has_read(&ssl_conf) {
            read = read_with(Some(ssl_conf.clone()))?;
            debian_notes.push(format!(
                "read {} first: Debian's global mod_ssl settings (SSLCipherSuite, SSLProtocol, session cache), \
                 which a2dismod ssl drops with mod_ssl, converted at the top of the output",
                ssl_conf.display()
            ));
        }
        listens = ssl_listens(&root.join("ports.conf"));
    }
    let opts = Options {
        module_path: args.module.clone(),
        chain_dir: args.chain_dir.clone(),
        paths: read.paths(),
        ssl_listens: listens,
    };
    let conv = convert::convert(&read.lines, &opts)?;
    let header = format!(
        "# Converted for mod_tls by mod_tls-migrate {} from {}.\n\
         # Each mod_ssl line is kept as a comment (\"# mod_ssl: …\") above what replaces it.\n",
        env!("CARGO_PKG_VERSION"),
        args.config.display()
    );
    let debian: String = debian_notes.iter().map(|n| format!("# Debian layout: {n}.\n")).collect();
    let text = format!("{header}{debian}{}", conv.text);
    match &args.output {
        Some(path) => std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?,
        None => std::io::stdout().write_all(text.as_bytes()).map_err(|e| e.to_string())?,
    }

    let mut err = std::io::stderr().lock();
    for n in &debian_notes {
        let _ = writeln!(err, "mod_tls-migrate: Debian layout: {n}");
    }
    for u in &read.unfollowed {
        let _ = writeln!(err, "{}: Include: {}", u.origin, u.why);
    }
    let mut differs = 0;
    let mut same = 0;
    let mut closed = 0;
    for f in &conv.findings {
        let label = match f.fate {
            Fate::Differs => {
                differs += 1;
                "not carried over"
            }
            Fate::Closed => {
                differs += 1;
                closed += 1;
                "not carried over"
            }
            Fate::Same => {
                same += 1;
                "not needed"
            }
            Fate::Note => "note",
        };
        if matches!(f.fate, Fate::Differs | Fate::Closed) || !args.quiet {
            let _ = writeln!(err, "{}: {}: {label}: {}", f.origin, f.directive, f.message);
        }
    }
    for w in &conv.written {
        let _ = writeln!(err, "wrote {}", w.display());
    }
    if conv.ssl_directives == 0 {
        let _ = writeln!(err, "mod_tls-migrate: no mod_ssl directive found in {}", args.config.display());
    } else {
        let _ = writeln!(
            err,
            "mod_tls-migrate: {} mod_ssl directive(s) read; {differs} not carried over, {same} not needed by mod_tls",
            conv.ssl_directives
        );
    }
    if closed > 0 {
        let _ = writeln!(
            err,
            "mod_tls-migrate: {closed} place(s) CLOSED UNTIL EDITED (Require all denied, or a rule nobody meets yet): \
             edit the lines marked so in the output (exit status {EXIT_CLOSED})"
        );
    }
    Ok(closed)
}
