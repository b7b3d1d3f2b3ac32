//! The conversion: mod_ssl's directives, scope by scope, into mod_tls's.
//!
//! A configuration is a tree of scopes: the main server, its `<VirtualHost>`s, `<Proxy>`
//! sections, and directory-like sections (`<Directory>`, `<Location>`, `<Files>`, `<If>` …).
//! Conditional sections (`<IfModule>`, `<IfDefine>` …) are looked through. mod_ssl and mod_tls
//! inherit the same way (a vhost's own value, else the main server's), so most directives become
//! their twin in place; the ones that act together (certificate and key, suites and order,
//! protocol and suites) are converted per scope, from the values in effect there.
//!
//! The text is kept: every line that is not mod_ssl's is copied as it is, and each mod_ssl line
//! stays as a comment above what replaces it, so that the result reads as the original did.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mod_tls_core::conf::directives::{
    CERTIFICATE, CIPHERS_PREFER, CIPHERS_SUPPRESS, CLIENT_CA, CLIENT_CERTIFICATE, CLIENT_CRL, ENGINE, FLOOR_TLS12,
    FLOOR_TLS13, HONOR_CLIENT_ORDER, OPTIONS, PASSPHRASE_DIALOG, PROTOCOL, PROXY_CA, PROXY_CIPHERS_PREFER,
    PROXY_CIPHERS_SUPPRESS, PROXY_ENGINE, PROXY_MACHINE_CERTIFICATE, PROXY_PROTOCOL, SESSION_CACHE,
    SESSION_CACHE_TIMEOUT, STRICT_SNI, USER_NAME, floor_word,
};
use mod_tls_core::conf::{CacheSpec, ClientAuth, MAX_SESSION_LIFETIME_SECS, TlsOptions, parse_session_lifetime};
use mod_tls_core::tls::ciphers::{rustls_suite_names, rustls_suites};
use mod_tls_core::tls::sessions::DEFAULT_LIFETIME_SECS;

use crate::ciphers;
use crate::reader::{Kind, Line, Origin, Paths, quote};

/// How a directive fared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fate {
    /// Carried over, with something worth knowing.
    Note,
    /// Left out because mod_tls already behaves so.
    Same,
    /// Not carried over: the converted server behaves differently here; the message says how
    /// and what to do.
    Differs,
    /// Not carried over, and its loss would open something (an access restriction): the place
    /// is closed (`Require all denied`, or a rule nothing meets yet) until an administrator
    /// edits it. The message says what to write.
    Closed,
}

#[derive(Clone, Debug)]
pub struct Finding {
    pub origin: Origin,
    pub directive: String,
    pub fate: Fate,
    pub message: String,
}

pub struct Options {
    /// Written in `LoadModule tls_module …` where the input loads mod_ssl.
    pub module_path: String,
    /// Where combined certificate + chain files are written for `SSLCertificateChainFile`;
    /// without it the chain is reported instead.
    pub chain_dir: Option<PathBuf>,
    /// How the configuration's file names resolve (ServerRoot, `Define`s).
    pub paths: Paths,
    /// The addresses mod_ssl's `Listen` lines outside what is converted opened (Debian's
    /// ports.conf, `<IfModule ssl_module>`): a Listen the tool adds binds these, not every
    /// address of the port.
    pub ssl_listens: Vec<String>,
}

pub struct Conversion {
    pub text: String,
    pub findings: Vec<Finding>,
    /// How many mod_ssl directives were read.
    pub ssl_directives: usize,
    /// Files written (combined chains).
    pub written: Vec<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ctx {
    Main,
    VirtualHost,
    Proxy,
    Directory,
}

struct Scope {
    ctx: Ctx,
    parent: Option<usize>,
    /// `<VirtualHost>` addresses.
    addrs: Vec<String>,
    /// The line that opens it.
    open: Option<usize>,
    /// Its own mod_ssl directives (line indices), in order.
    ssl: Vec<usize>,
}

/// The scopes of a configuration and which scope each line is in.
struct Tree {
    scopes: Vec<Scope>,
    /// `Listen` addresses (`[addr:]port`).
    listens: Vec<String>,
}

fn section_ctx(name: &str) -> Option<Ctx> {
    match name.to_ascii_lowercase().as_str() {
        "virtualhost" => Some(Ctx::VirtualHost),
        "proxy" | "proxymatch" => Some(Ctx::Proxy),
        "directory" | "directorymatch" | "location" | "locationmatch" | "files" | "filesmatch" | "if" | "elseif"
        | "else" | "limit" | "limitexcept" => Some(Ctx::Directory),
        _ => None,
    }
}

fn is_ssl(name: &str) -> bool {
    name.len() > 3 && name[..3].eq_ignore_ascii_case("ssl")
}

fn build_tree(lines: &[Line], paths: &Paths) -> Result<Tree, String> {
    let expand = |a: &String| paths.expand(a).unwrap_or_else(|_| a.clone());
    let mut scopes = vec![Scope { ctx: Ctx::Main, parent: None, addrs: vec![], open: None, ssl: vec![] }];
    let mut listens = Vec::new();
    // (section name, scope it opened or None when looked through, scope in effect before it)
    let mut stack: Vec<(String, Option<usize>)> = Vec::new();
    let mut current = 0usize;
    for (i, line) in lines.iter().enumerate() {
        match &line.kind {
            Kind::Open { name, args } => {
                let opened = section_ctx(name).map(|ctx| {
                    scopes.push(Scope {
                        ctx,
                        parent: Some(current),
                        addrs: if ctx == Ctx::VirtualHost { args.iter().map(expand).collect() } else { vec![] },
                        open: Some(i),
                        ssl: vec![],
                    });
                    scopes.len() - 1
                });
                stack.push((name.clone(), opened.map(|_| current)));
                if let Some(s) = opened {
                    current = s;
                }
            }
            Kind::Close { name } => {
                let Some((open_name, before)) = stack.pop() else {
                    return Err(format!("{}: </{name}> without a matching <{name}>", line.origin));
                };
                if !open_name.eq_ignore_ascii_case(name) {
                    return Err(format!("{}: </{name}> closes <{open_name}>", line.origin));
                }
                if let Some(b) = before {
                    current = b;
                }
            }
            Kind::Directive { name, args } => {
                if is_ssl(name) {
                    scopes[current].ssl.push(i);
                } else if name.eq_ignore_ascii_case("listen") && !args.is_empty() && current == 0 {
                    listens.push(expand(&args[0]));
                }
            }
            _ => {}
        }
    }
    if let Some((name, _)) = stack.last() {
        return Err(format!("<{name}> is never closed"));
    }
    Ok(Tree { scopes, listens })
}

/// The converter's working state: the lines, what replaces some of them, what was found.
struct Converter<'a> {
    lines: &'a [Line],
    tree: Tree,
    opts: &'a Options,
    /// Replacement text per line (comment of the original included).
    replaced: Vec<Option<Vec<String>>>,
    findings: Vec<Finding>,
    /// `TLSEngine` addresses, with the vhost line that asks for each.
    engines: Vec<(String, usize)>,
    written: Vec<PathBuf>,
    /// TLSEngine addresses no `Listen` of the configuration opens.
    unlistened: Vec<String>,
}

pub fn convert(lines: &[Line], opts: &Options) -> Result<Conversion, String> {
    let tree = build_tree(lines, &opts.paths)?;
    let ssl_directives = tree.scopes.iter().map(|s| s.ssl.len()).sum();
    let mut c = Converter {
        lines,
        tree,
        opts,
        replaced: vec![None; lines.len()],
        findings: Vec::new(),
        engines: Vec::new(),
        written: Vec::new(),
        unlistened: Vec::new(),
    };
    c.modules_and_sections();
    for s in 0..c.tree.scopes.len() {
        match c.tree.scopes[s].ctx {
            Ctx::Main | Ctx::VirtualHost => {
                c.certificates(s);
                c.frontend_suites(s);
                c.client_auth(s);
                c.proxy(s);
            }
            Ctx::Proxy => c.proxy(s),
            Ctx::Directory => {}
        }
        c.one_by_one(s);
    }
    c.engines();
    c.default_reach();
    c.findings.sort_by(|a, b| (&a.origin.file, a.origin.line).cmp(&(&b.origin.file, b.origin.line)));
    let text = c.render();
    Ok(Conversion { text, findings: c.findings, ssl_directives, written: c.written })
}

/// `SSLProtocol` words into the set of versions they leave on (mod_ssl's rules: a word without
/// `+`/`-` replaces what came before, `all` is TLS 1.0 to 1.3).
fn protocols(args: &[String]) -> Result<BTreeSet<&'static str>, String> {
    const ALL: [&str; 4] = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"];
    let mut on = BTreeSet::new();
    for w in args {
        let (action, name) = match w.as_bytes().first() {
            Some(b'+') => ('+', &w[1..]),
            Some(b'-') => ('-', &w[1..]),
            _ => (' ', w.as_str()),
        };
        let these: Vec<&'static str> = match name.to_ascii_lowercase().as_str() {
            "all" => ALL.to_vec(),
            "sslv2" => vec![],
            "sslv3" => vec!["SSLv3"],
            "tlsv1" => vec!["TLSv1"],
            "tlsv1.1" => vec!["TLSv1.1"],
            "tlsv1.2" => vec!["TLSv1.2"],
            "tlsv1.3" => vec!["TLSv1.3"],
            _ => return Err(format!("unknown protocol '{w}'")),
        };
        match action {
            '+' => on.extend(these),
            '-' => these.iter().for_each(|t| {
                on.remove(t);
            }),
            _ => on = these.into_iter().collect(),
        }
    }
    Ok(on)
}

/// `SSLCipherSuite [SSL|TLSv1.3] spec`: (is it the TLS 1.3 list, the spec).
fn cipher_args(args: &[String]) -> (bool, String) {
    match args {
        [proto, spec, ..] if proto.eq_ignore_ascii_case("tlsv1.3") => (true, spec.clone()),
        [proto, spec, ..] if proto.eq_ignore_ascii_case("ssl") => (false, spec.clone()),
        [spec, ..] => (false, spec.clone()),
        [] => (false, String::new()),
    }
}

/// What the suites and versions of one scope come to.
struct SuitePlan {
    /// The lowest version ([`FLOOR_TLS12`] or [`FLOOR_TLS13`]), `None` when none is left on.
    floor: Option<u16>,
    prefer: Vec<String>,
    suppress: Vec<String>,
    /// About the protocol line.
    notes: Vec<(Fate, String)>,
    /// About the cipher lines.
    suite_notes: Vec<(Fate, String)>,
}

/// Works out the floor and suite lists from a scope's protocol words and cipher lists (each the
/// value in effect there, `None` for mod_ssl's default), and the server-order switch.
fn plan_suites(proto: Option<&[String]>, tls12: Option<&str>, tls13: Option<&str>, ordered: bool) -> SuitePlan {
    let mut notes = Vec::new();
    let mut suite_notes = Vec::new();
    let versions = match proto {
        Some(words) => protocols(words).unwrap_or_else(|e| {
            notes.push((Fate::Differs, format!("{e}: TLS 1.2 and 1.3 kept")));
            ["TLSv1.2", "TLSv1.3"].into_iter().collect()
        }),
        None => ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"].into_iter().collect(),
    };
    let old: Vec<&str> = versions.iter().copied().filter(|v| !matches!(*v, "TLSv1.2" | "TLSv1.3")).collect();
    // OpenSSL 3 allows TLS 1.0 and 1.1 (and SHA-1 signatures) at security level 0 only: a list
    // that sets it made mod_ssl offer them.
    let seclevel0 = tls12.is_some_and(|l| l.to_ascii_uppercase().contains("@SECLEVEL=0"));
    if seclevel0 && !old.is_empty() && versions.contains("TLSv1.2") {
        let lost = format!(
            "{} were offered (the cipher list's @SECLEVEL=0 lets OpenSSL use them): rustls has no TLS below 1.2, \
             so clients without TLS 1.2 lose access",
            old.join(", ")
        );
        // Filed at the protocol line, else at the cipher line that set the level.
        if proto.is_some() { &mut notes } else { &mut suite_notes }.push((Fate::Differs, lost));
    } else if proto.is_some() && !old.is_empty() {
        notes.push((
            Fate::Note,
            format!(
                "{} not offered: rustls has no TLS below 1.2 (nor does OpenSSL at its default security level, \
                 which the cipher list does not lower)",
                old.join(", ")
            ),
        ));
    }
    let sel12 = match ciphers::expand_tls12(tls12.unwrap_or("DEFAULT")) {
        Ok(s) => s,
        Err(e) => {
            suite_notes
                .push((Fate::Differs, format!("cipher list '{}': {e}; rustls's suites kept", tls12.unwrap_or(""))));
            ciphers::Selection::rustls(false)
        }
    };
    let sel13 = match ciphers::expand_tls13(tls13) {
        Ok(s) => s,
        Err(e) => {
            suite_notes
                .push((Fate::Differs, format!("TLS 1.3 list '{}': {e}; rustls's suites kept", tls13.unwrap_or(""))));
            ciphers::Selection::rustls(true)
        }
    };
    let has12 = versions.contains("TLSv1.2");
    let has13 = versions.contains("TLSv1.3");
    let floor = if has12 && !sel12.suites.is_empty() {
        if !has13 {
            notes
                .push((Fate::Differs, "TLS 1.3 is offered too: mod_tls sets a lowest version, no highest".to_string()));
        }
        Some(FLOOR_TLS12)
    } else if has13 {
        if has12 {
            suite_notes.push((
                Fate::Differs,
                "no TLS 1.2 suite rustls has is left by the cipher list (rustls has ECDHE with AES-GCM or \
                 ChaCha20-Poly1305 only): TLS 1.3 only, so clients without TLS 1.3 lose access"
                    .to_string(),
            ));
        }
        Some(FLOOR_TLS13)
    } else {
        notes.push((Fate::Differs, "neither TLS 1.2 nor TLS 1.3 is left on: mod_tls keeps TLS 1.2 and 1.3".into()));
        None
    };
    if tls12.is_some() && sel12.unavailable > 0 {
        suite_notes.push((Fate::Note, lacking_note(&sel12, "the list's")));
    }
    let mut suppress = Vec::new();
    let tls12_on = floor == Some(FLOOR_TLS12);
    if tls12_on {
        suppress.extend(rustls_suite_names(false).into_iter().filter(|s| !sel12.has(s)).map(str::to_string));
    }
    if sel13.suites.is_empty() {
        suite_notes.push((Fate::Differs, "the TLS 1.3 list leaves no suite: TLS 1.3 stays on with rustls's".into()));
    } else {
        suppress.extend(rustls_suite_names(true).into_iter().filter(|s| !sel13.has(s)).map(str::to_string));
    }
    let mut prefer = Vec::new();
    if ordered {
        prefer.extend(sel13.suites.iter().cloned());
        if tls12_on {
            prefer.extend(sel12.suites.iter().cloned());
        }
    }
    SuitePlan { floor, prefer, suppress, notes, suite_notes }
}

/// What a list's TLS 1.2 suites that rustls lacks cost: clients offering only those lose access.
fn lacking_note(sel: &ciphers::Selection, whose: &str) -> String {
    const LISTED: usize = 30;
    let some: Vec<&str> = sel.lacking.iter().take(LISTED).map(String::as_str).collect();
    let more = sel.lacking.len().saturating_sub(LISTED);
    format!(
        "{} of {whose} TLS 1.2 suites are not in rustls (it has ECDHE with AES-GCM or ChaCha20-Poly1305 only): \
         left out, so clients that offer only those lose access: {}{}",
        sel.unavailable,
        some.join(", "),
        if more > 0 { format!(" and {more} more") } else { String::new() }
    )
}

/// `SSLOptions` words into `TLSOptions` words: (kept, dropped).
fn options_words(args: &[String]) -> (Vec<String>, Vec<String>) {
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    let resets = args.iter().any(|w| !w.starts_with(['+', '-']));
    for w in args {
        if is_tls_option(w.trim_start_matches(['+', '-'])) {
            kept.push(w.clone());
        } else {
            dropped.push(w.clone());
        }
    }
    // A bare word starts from nothing: keep that when the bare words were the dropped ones.
    if resets && kept.iter().all(|w| w.starts_with(['+', '-'])) {
        kept.insert(0, "Defaults".to_string());
    }
    (kept, dropped)
}

/// Whether mod_tls's `TLSOptions` has an option of this name (as its parser reads it).
fn is_tls_option(name: &str) -> bool {
    let mut options = TlsOptions::default();
    options.apply_line(name).is_ok() && options.has(u8::MAX)
}

/// `<VirtualHost>` address → `TLSEngine` address, or Err(why not).
fn engine_addr(vhost_addr: &str, listens: &[String]) -> Result<Vec<String>, String> {
    let (host, port) = match vhost_addr.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() => (h, Some(p)),
        _ => (vhost_addr, None),
    };
    let any_host = host == "*" || host.eq_ignore_ascii_case("_default_");
    match port {
        Some(p) if any_host => Ok(vec![p.to_string()]),
        Some(p) => Ok(vec![format!("{host}:{p}")]),
        None if any_host => {
            if listens.is_empty() {
                Err("the address has no port and there is no Listen to take one from".into())
            } else {
                Ok(listens.iter().map(|l| listen_port(l).to_string()).collect())
            }
        }
        None => Err(format!("'{vhost_addr}' has no port: write {ENGINE} {vhost_addr}:PORT for its ports")),
    }
}

/// The `Define` that marks an address as opened by a converted file (or the package's
/// default-tls.conf): `mod_tls_listen_443`, `mod_tls_listen_192_0_2_1_443`. Two Listens of one
/// address stop httpd; different addresses of one port do not.
fn listen_define(addr: &str) -> String {
    let tail: String = addr.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("mod_tls_listen_{}", tail.trim_matches('_'))
}

fn listen_port(listen: &str) -> &str {
    listen.rsplit_once(':').map(|(_, p)| p).unwrap_or(listen)
}

/// The PEM certificate blocks of a text, each ending in a newline; nothing else of it (keys,
/// parameters, comments).
fn pem_certificates(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        let l = line.trim_end();
        if l == "-----BEGIN CERTIFICATE-----" {
            inside = true;
        }
        if inside {
            out.push_str(l);
            out.push('\n');
        }
        if l == "-----END CERTIFICATE-----" {
            inside = false;
        }
    }
    if inside {
        // An unterminated block is no certificate.
        let cut = out.rfind("-----BEGIN CERTIFICATE-----").unwrap_or(0);
        out.truncate(cut);
    }
    out
}

/// Whether a PEM text holds a private key (of any kind, encrypted or not).
fn has_private_key(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("-----BEGIN") && l.contains("PRIVATE KEY"))
}

impl Converter<'_> {
    fn line(&self, i: usize) -> &Line {
        &self.lines[i]
    }

    fn name_of(&self, i: usize) -> String {
        self.line(i).directive().map(|(n, _)| n.to_string()).unwrap_or_default()
    }

    fn args_of(&self, i: usize) -> Vec<String> {
        self.line(i).directive().map(|(_, a)| a.to_vec()).unwrap_or_default()
    }

    /// The original line as a comment (continuations joined).
    fn was(&self, i: usize) -> String {
        let l = self.line(i);
        let text: Vec<&str> = l.raw.lines().map(|p| p.trim().trim_end_matches('\\').trim_end()).collect();
        format!("{}# mod_ssl: {}", l.indent, text.join(" "))
    }

    /// Replaces line `i` by its comment and `new` directives (indented as it was).
    fn set(&mut self, i: usize, new: Vec<String>) {
        if new.is_empty() {
            return self.set_comment(i, "nothing to write: mod_tls does this by default");
        }
        let indent = self.line(i).indent.clone();
        let mut out = vec![self.was(i)];
        out.extend(new.into_iter().map(|n| format!("{indent}{n}")));
        self.replaced[i] = Some(out);
    }

    /// Replaces line `i` by its comment with a remark after it.
    fn set_comment(&mut self, i: usize, remark: &str) {
        self.replaced[i] = Some(vec![format!("{}  ({remark})", self.was(i))]);
    }

    fn find(&mut self, i: usize, fate: Fate, message: impl Into<String>) {
        let directive = self.name_of(i);
        let directive = if directive.is_empty() { "section".to_string() } else { directive };
        self.findings.push(Finding { origin: self.line(i).origin.clone(), directive, fate, message: message.into() });
    }

    /// Lines that add `require` to the access rules in effect where line `i` is, as mod_ssl's
    /// access check did: ANDed with them (`AuthMerging And` in an `<If>` that always applies,
    /// merged after the section's own rules and those it inherits), never replacing them.
    fn and_require(&self, i: usize, require: &str) -> Vec<String> {
        let indent = &self.line(i).indent;
        vec![
            format!("{indent}<If \"true\">"),
            format!(
                "{indent}    # mod_tls-migrate: ANDed with the other access rules that apply here, as mod_ssl's check was"
            ),
            format!("{indent}    AuthMerging And"),
            format!("{indent}    {require}"),
            format!("{indent}</If>"),
        ]
    }

    /// Replaces line `i` by its comment and `extra` lines written as they are.
    fn set_raw(&mut self, i: usize, extra: Vec<String>) {
        let mut out = self.replaced[i].take().unwrap_or_else(|| vec![self.was(i)]);
        out.extend(extra);
        self.replaced[i] = Some(out);
    }

    /// Closes the place of line `i` until edited: `Require all denied`, ANDed, with why and what
    /// to write as a comment above it.
    fn close(&mut self, i: usize, why: &str) {
        let indent = self.line(i).indent.clone();
        let mut lines = vec![format!("{indent}# mod_tls-migrate: CLOSED UNTIL EDITED: {why}")];
        lines.extend(self.and_require(i, "Require all denied"));
        self.set_raw(i, lines);
        self.find(i, Fate::Closed, format!("{why}; closed until edited (Require all denied written)"));
    }

    /// The main server or vhost scope a scope is in.
    fn server_scope(&self, mut s: usize) -> usize {
        while !matches!(self.tree.scopes[s].ctx, Ctx::Main | Ctx::VirtualHost) {
            s = self.tree.scopes[s].parent.unwrap_or(0);
        }
        s
    }

    /// The raw text after a directive's name (RAW_ARGS directives such as SSLRequire read it so).
    fn raw_args(&self, i: usize) -> String {
        let joined = self.line(i).raw.replace("\\\n", "");
        let t = joined.trim_start();
        let name_len = t.find(char::is_whitespace).unwrap_or(t.len());
        t[name_len..].trim().to_string()
    }

    /// Drops line `i`: not carried over (`Differs`) or not needed (`Same`), said in both places.
    fn drop_line(&mut self, i: usize, fate: Fate, why: &str) {
        let label = match fate {
            Fate::Same => "not needed",
            Fate::Note => "left out",
            Fate::Differs | Fate::Closed => "not carried over",
        };
        self.set_comment(i, &format!("{label}: {why}"));
        self.find(i, fate, why);
    }

    /// A scope's own directives named `name` (case-insensitive), in order.
    fn own(&self, scope: usize, name: &str) -> Vec<usize> {
        self.tree.scopes[scope].ssl.iter().copied().filter(|&i| self.name_of(i).eq_ignore_ascii_case(name)).collect()
    }

    /// The line of the directive in effect in `scope`: its own last one, else its parents'.
    fn effective(&self, scope: usize, name: &str, filter: impl Fn(&[String]) -> bool + Copy) -> Option<usize> {
        let mut s = Some(scope);
        while let Some(cur) = s {
            if let Some(i) = self.own(cur, name).into_iter().rev().find(|&i| filter(&self.args_of(i))) {
                return Some(i);
            }
            s = self.tree.scopes[cur].parent;
        }
        None
    }

    /// `LoadModule ssl_module` and `<IfModule mod_ssl.c>`, and mod_ssl's mutexes.
    fn modules_and_sections(&mut self) {
        let staples = self.lines.iter().any(|l| {
            l.directive().is_some_and(|(n, a)| {
                n.eq_ignore_ascii_case("sslusestapling") && a.first().is_some_and(|v| v.eq_ignore_ascii_case("on"))
            })
        });
        let loads_tls = self.lines.iter().any(|l| {
            l.directive().is_some_and(|(n, a)| {
                n.eq_ignore_ascii_case("loadmodule") && a.first().is_some_and(|m| m == "tls_module")
            })
        });
        for i in 0..self.lines.len() {
            match &self.line(i).kind {
                Kind::Directive { name, args }
                    if name.eq_ignore_ascii_case("loadmodule") && args.first().is_some_and(|m| m == "ssl_module") =>
                {
                    let mut load = Vec::new();
                    if !loads_tls {
                        load.push(format!("LoadModule tls_module {}", quote(&self.opts.module_path)));
                    }
                    // Stapling comes from mod_md: load it from mod_ssl's directory, once.
                    if staples {
                        let ssl_so = args.get(1).cloned().unwrap_or_default();
                        let md_so = match ssl_so.rsplit_once('/') {
                            Some((dir, _)) => format!("{dir}/mod_md.so"),
                            None => "mod_md.so".to_string(),
                        };
                        load.push("<IfModule !md_module>".to_string());
                        load.push(format!("    LoadModule md_module {}", quote(&md_so)));
                        load.push("</IfModule>".to_string());
                    }
                    if load.is_empty() {
                        self.set_comment(i, "mod_tls is loaded above");
                    } else {
                        self.set(i, load);
                    }
                }
                Kind::Directive { name, args } if name.eq_ignore_ascii_case("mutex") && args.len() >= 2 => {
                    let mut kept = vec![args[0].clone()];
                    let mut changed = false;
                    for m in &args[1..] {
                        match m.as_str() {
                            "ssl-cache" => {
                                kept.push("tls-session-cache".into());
                                changed = true;
                            }
                            "ssl-stapling" | "ssl-stapling-refresh" => changed = true,
                            _ => kept.push(m.clone()),
                        }
                    }
                    if changed {
                        if kept.len() == 1 {
                            self.drop_line(i, Fate::Same, "mod_ssl's stapling mutexes: mod_md staples");
                        } else {
                            self.set(i, vec![format!("Mutex {}", kept.join(" "))]);
                        }
                    }
                }
                Kind::Open { name, args } if name.eq_ignore_ascii_case("ifmodule") && args.len() == 1 => {
                    let (neg, m) = match args[0].strip_prefix('!') {
                        Some(m) => ("!", m),
                        None => ("", args[0].as_str()),
                    };
                    if m == "mod_ssl.c" || m == "ssl_module" {
                        let indent = self.line(i).indent.clone();
                        self.replaced[i] = Some(vec![format!("{indent}<IfModule {neg}tls_module>")]);
                    }
                }
                _ => {}
            }
        }
    }

    /// `SSLCertificateFile`/`KeyFile`/`ChainFile` of one scope: one `TLSCertificate` per pair.
    fn certificates(&mut self, s: usize) {
        let certs = self.own(s, "SSLCertificateFile");
        let keys = self.own(s, "SSLCertificateKeyFile");
        let chain = self.own(s, "SSLCertificateChainFile").into_iter().last();
        let chain_file = chain.and_then(|c| self.args_of(c).first().cloned());
        let mut combined_all = !certs.is_empty();
        // mod_ssl merges certificate lists by position: a vhost keeps the main server's entries
        // beyond its own count. mod_tls uses a vhost's own list alone.
        if s != 0 && !certs.is_empty() && self.own(0, "SSLCertificateFile").len() > certs.len() {
            self.find(
                certs[0],
                Fate::Differs,
                format!(
                    "mod_ssl offered this vhost the main server's further certificates too; mod_tls offers a vhost \
                     with {CERTIFICATE} lines of its own only those: repeat the main server's others here if needed"
                ),
            );
        }
        // mod_ssl skips a chain file that is the (first) certificate file itself: that file
        // already holds the chain, and appending it would serve the leaf twice.
        let chain_is_cert = chain_file.as_ref().is_some_and(|ch| {
            certs.first().and_then(|&c| self.args_of(c).first().cloned()).is_some_and(|c| self.same_file(&c, ch))
        });
        for (n, &c) in certs.iter().enumerate() {
            let Some(mut cert) = self.args_of(c).first().cloned() else { continue };
            let mut key = keys.get(n).and_then(|&k| self.args_of(k).first().cloned());
            if let (Some(chain_file), Some(dir), false) = (&chain_file, &self.opts.chain_dir, chain_is_cert) {
                match self.combine(&cert, chain_file, dir) {
                    Ok((combined, key_in_cert)) => {
                        // Only certificates are written: a key the certificate file holds
                        // stays where it is, named as the key file.
                        if key.is_none() && key_in_cert {
                            key = Some(cert.clone());
                        }
                        cert = combined.display().to_string();
                        self.find(
                            c,
                            Fate::Note,
                            format!("certificate and SSLCertificateChainFile combined into {cert}"),
                        );
                    }
                    Err(e) => {
                        combined_all = false;
                        self.find(c, Fate::Differs, e)
                    }
                }
            }
            self.check_key(c, key.as_deref().unwrap_or(&cert));
            let line = match &key {
                Some(k) => CERTIFICATE.line(format!("{} {}", quote(&cert), quote(k))),
                None => CERTIFICATE.line(quote(&cert)),
            };
            self.set(c, vec![line]);
        }
        for (n, &k) in keys.iter().enumerate() {
            if n < certs.len() {
                self.set_comment(k, &format!("in {CERTIFICATE} with its certificate"));
            } else {
                self.drop_line(k, Fate::Differs, "a key without an SSLCertificateFile of its own");
            }
        }
        if let Some(ch) = chain {
            if chain_is_cert {
                self.drop_line(
                    ch,
                    Fate::Same,
                    "the certificate file itself, which mod_ssl skips: it already holds the chain",
                );
            } else if self.opts.chain_dir.is_some() && combined_all {
                self.set_comment(ch, "in the combined certificate files");
            } else {
                let file = chain_file.unwrap_or_default();
                self.drop_line(
                    ch,
                    Fate::Differs,
                    &format!(
                        "mod_tls reads the chain from the certificate file: append {file} to it \
                         (cat CERT {file} > CERT-with-chain.pem, and name that file), or run with --chain-dir DIR"
                    ),
                );
            }
        }
    }

    /// Whether two names of the configuration are one file (by device and inode).
    fn same_file(&self, a: &str, b: &str) -> bool {
        use std::os::unix::fs::MetadataExt;
        let id = |p: &str| std::fs::metadata(self.opts.paths.resolve(p)).ok().map(|m| (m.dev(), m.ino()));
        match (id(a), id(b)) {
            (Some(x), Some(y)) => x == y,
            _ => self.opts.paths.resolve(a) == self.opts.paths.resolve(b),
        }
    }

    /// Writes the certificates of `cert` and then those of `chain` into a new file in `dir`
    /// (named after the certificate file): (its path, whether `cert` holds a private key).
    ///
    /// Certificates only: a private key in either file is never copied (the file is readable
    /// by all). The file is created new (`O_EXCL`, so a link planted at its name is not
    /// followed); an existing file of the same content is reused, else the next free name taken.
    fn combine(&mut self, cert: &str, chain: &str, dir: &Path) -> Result<(PathBuf, bool), String> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let read = |p: &str| {
            std::fs::read_to_string(self.opts.paths.resolve(p))
                .map_err(|e| format!("cannot read {p} to combine it: {e}"))
        };
        let cert_text = read(cert)?;
        let leaf = pem_certificates(&cert_text);
        if leaf.is_empty() {
            return Err(format!(
                "{cert} holds no PEM certificate: cannot append SSLCertificateChainFile {chain} to it"
            ));
        }
        let text = format!("{leaf}{}", pem_certificates(&read(chain)?));
        let stem = Path::new(cert).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or("cert".into());
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        for n in 1..1000 {
            let name = if n == 1 { format!("{stem}-with-chain.pem") } else { format!("{stem}-with-chain-{n}.pem") };
            let target = dir.join(name);
            if self.written.contains(&target) {
                continue;
            }
            let opened = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(&target);
            match opened {
                Ok(mut f) => {
                    f.write_all(text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", target.display()))?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // A run before this one wrote it: reuse a regular file (not a link) that
                    // holds exactly these certificates.
                    let regular = std::fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_file());
                    if !(regular && std::fs::read_to_string(&target).is_ok_and(|t| t == text)) {
                        continue;
                    }
                }
                Err(e) => return Err(format!("cannot create {}: {e}", target.display())),
            }
            self.written.push(target.clone());
            return Ok((target, has_private_key(&cert_text)));
        }
        Err(format!("no free name for {stem}-with-chain.pem in {}", dir.display()))
    }

    /// Key formats rustls does not read, found before httpd would refuse them.
    fn check_key(&mut self, line: usize, key_file: &str) {
        let Ok(text) = std::fs::read_to_string(self.opts.paths.resolve(key_file)) else { return };
        if text.contains("Proc-Type: 4,ENCRYPTED") {
            self.find(
                line,
                Fate::Differs,
                format!(
                    "{key_file} is encrypted in OpenSSL's legacy format: convert it to PKCS#8 \
                     (openssl pkcs8 -topk8 -v2 aes-256-cbc -in {key_file} -out NEW.key) and name NEW.key"
                ),
            );
        } else if text.contains("BEGIN DSA PRIVATE KEY") {
            self.find(
                line,
                Fate::Differs,
                format!("{key_file}: DSA keys are not supported: use RSA, ECDSA or Ed25519"),
            );
        }
    }

    /// The protocol words and the TLS 1.2 and TLS 1.3 cipher lists in effect in `scope` (its
    /// own or inherited; `None`: mod_ssl's default), of `SSLProtocol`/`SSLCipherSuite` or their
    /// `SSLProxy*` twins.
    fn suite_settings(
        &self,
        scope: usize,
        protocol: &str,
        ciphers: &str,
    ) -> (Option<Vec<String>>, Option<String>, Option<String>) {
        let list = |tls13: bool| {
            self.effective(scope, ciphers, |a| cipher_args(a).0 == tls13).map(|i| cipher_args(&self.args_of(i)).1)
        };
        (self.effective(scope, protocol, |_| true).map(|i| self.args_of(i)), list(false), list(true))
    }

    /// `SSLProtocol`, `SSLCipherSuite`, `SSLHonorCipherOrder` of the main server or a vhost.
    fn frontend_suites(&mut self, s: usize) {
        let is13 = |a: &[String]| cipher_args(a).0;
        let is12 = |a: &[String]| !cipher_args(a).0;
        let any = |_: &[String]| true;
        let own_proto = self.own(s, "SSLProtocol").into_iter().last();
        let own12 = self.own(s, "SSLCipherSuite").into_iter().rev().find(|&i| is12(&self.args_of(i)));
        let own13 = self.own(s, "SSLCipherSuite").into_iter().rev().find(|&i| is13(&self.args_of(i)));
        let own_order = self.own(s, "SSLHonorCipherOrder").into_iter().last();
        if own_proto.is_none() && own12.is_none() && own13.is_none() && own_order.is_none() {
            return;
        }
        let (proto, tls12, tls13) = self.suite_settings(s, "SSLProtocol", "SSLCipherSuite");
        let ordered = self
            .effective(s, "SSLHonorCipherOrder", any)
            .is_some_and(|i| self.args_of(i).first().is_some_and(|v| v.eq_ignore_ascii_case("on")));
        let plan = plan_suites(proto.as_deref(), tls12.as_deref(), tls13.as_deref(), ordered);
        // What this scope would inherit in mod_tls: the main server's floor, else v1.2+.
        let inherited_floor = match self.tree.scopes[s].parent {
            Some(_) => {
                let (main_proto, m12, m13) = self.suite_settings(0, "SSLProtocol", "SSLCipherSuite");
                plan_suites(main_proto.as_deref(), m12.as_deref(), m13.as_deref(), false).floor
            }
            None => Some(FLOOR_TLS12),
        };
        let suite_lines: Vec<usize> = [own12, own13, own_order].into_iter().flatten().collect();
        let anchor = suite_lines.iter().copied().min();
        let mut suites_out = Vec::new();
        if !plan.prefer.is_empty() && (own12.is_some() || own13.is_some() || own_order.is_some()) {
            suites_out.push(CIPHERS_PREFER.line(plan.prefer.join(" ")));
        }
        if !plan.suppress.is_empty() {
            suites_out.push(CIPHERS_SUPPRESS.line(plan.suppress.join(" ")));
        } else if s != 0 && (own12.is_some() || own13.is_some()) {
            let (_, main12, main13) = self.suite_settings(0, "SSLProtocol", "SSLCipherSuite");
            let main_plan = plan_suites(None, main12.as_deref(), main13.as_deref(), false);
            if !main_plan.suppress.is_empty() {
                let at = anchor.unwrap_or(s);
                self.find(
                    at,
                    Fate::Differs,
                    format!(
                        "this vhost allows suites the main server's list leaves out, and a vhost cannot take \
                         back a {CIPHERS_SUPPRESS} it inherits: move the main server's SSLCipherSuite into its vhosts"
                    ),
                );
            }
        }
        if let Some(o) = own_order {
            let on = self.args_of(o).first().is_some_and(|v| v.eq_ignore_ascii_case("on"));
            suites_out.push(HONOR_CLIENT_ORDER.line(if on { "off" } else { "on" }));
        }
        let floor_line = plan.floor.and_then(floor_word).map(|f| PROTOCOL.line(f));
        if let Some(p) = own_proto {
            self.set(p, floor_line.clone().into_iter().collect());
        }
        if let Some(a) = anchor {
            if own_proto.is_none() && plan.floor != inherited_floor {
                suites_out.insert(0, floor_line.clone().unwrap_or_default());
            }
            self.set_group(a, &suite_lines, suites_out, "in the TLSCiphers lines above");
        }
        self.file_notes(plan, own_proto, own12.or(own13));
    }

    /// Replaces the first of a group of lines that become one set of directives; the others
    /// become comments pointing to it.
    fn set_group(&mut self, first: usize, group: &[usize], out: Vec<String>, remark: &str) {
        self.set(first, out);
        for &l in group.iter().filter(|&&l| l != first) {
            self.set_comment(l, remark);
        }
    }

    /// A plan's findings: about versions at the protocol line, about suites at the cipher line.
    fn file_notes(&mut self, plan: SuitePlan, proto_line: Option<usize>, suites_line: Option<usize>) {
        if let Some(p) = proto_line {
            plan.notes.into_iter().for_each(|(fate, msg)| self.find(p, fate, msg));
        }
        if let Some(a) = suites_line {
            plan.suite_notes.into_iter().for_each(|(fate, msg)| self.find(a, fate, msg));
        }
    }

    /// Client certificates of the main server or a vhost.
    fn client_auth(&mut self, s: usize) {
        for i in self.own(s, "SSLVerifyClient") {
            let mode = match self.args_of(i).first().map(|v| v.to_ascii_lowercase()).as_deref() {
                Some("require") => ClientAuth::Required,
                Some("optional") => ClientAuth::Optional,
                Some("optional_no_ca") => ClientAuth::OptionalNoCa,
                Some("none") => ClientAuth::None,
                _ => {
                    self.drop_line(i, Fate::Differs, "unknown value");
                    continue;
                }
            };
            self.set(i, vec![CLIENT_CERTIFICATE.line(mode)]);
            if mode != ClientAuth::None && self.effective(s, "SSLVerifyDepth", |_| true).is_none() {
                self.find(
                    i,
                    Fate::Differs,
                    format!(
                        "mod_ssl's default SSLVerifyDepth 1 refused client certificates issued by an intermediate \
                         CA; mod_tls verifies any chain up to a {CLIENT_CA} anchor: to refuse those, name only \
                         CAs that issue client certificates directly, or test %{{SSL_CLIENT_I_DN}} with Require expr"
                    ),
                );
            }
        }
        for i in self.own(s, "SSLCACertificateFile") {
            let f = self.args_of(i).first().cloned().unwrap_or_default();
            self.set(i, vec![CLIENT_CA.line(quote(&f))]);
        }
        for i in self.own(s, "SSLCACertificatePath") {
            let dir = self.args_of(i).first().cloned().unwrap_or_default();
            self.set(i, vec![CLIENT_CA.line(quote(&dir))]);
            self.find(
                i,
                Fate::Note,
                format!("{CLIENT_CA} reads the directory's hash links and .pem/.crt files, each file once"),
            );
        }
        let cas: Vec<usize> =
            self.own(s, "SSLCACertificateFile").into_iter().chain(self.own(s, "SSLCACertificatePath")).collect();
        if cas.len() > 1 {
            self.find(
                cas[1],
                Fate::Differs,
                format!(
                    "mod_tls takes one {CLIENT_CA} (a file or a directory) and uses the last: mod_ssl trusted the CAs \
                     of SSLCACertificateFile and SSLCACertificatePath together: put the file's certificates into the \
                     directory"
                ),
            );
        }
        for i in self.own(s, "SSLCARevocationFile") {
            let f = self.args_of(i).first().cloned().unwrap_or_default();
            self.set(i, vec![CLIENT_CRL.line(quote(&f))]);
        }
        for i in self.own(s, "SSLCARevocationPath") {
            let dir = self.args_of(i).first().cloned().unwrap_or_default();
            self.set(i, vec![CLIENT_CRL.line(quote(&dir))]);
            self.find(
                i,
                Fate::Note,
                format!("{CLIENT_CRL} reads the directory's hash links and .crl/.pem files, each file once"),
            );
        }
        // Revocation as merged: the CRLs a scope has (its own, else the main server's) and the
        // check in effect there. mod_tls checks wherever TLSClientCRL applies.
        let crl_lines = |c: &Self, t: usize| {
            let mut l = c.own(t, "SSLCARevocationFile");
            l.extend(c.own(t, "SSLCARevocationPath"));
            l
        };
        let own_crls = crl_lines(self, s);
        let inherits_crls = own_crls.is_empty() && s != 0 && !crl_lines(self, 0).is_empty();
        let check = self.effective(s, "SSLCARevocationCheck", |_| true);
        let own_check = self.own(s, "SSLCARevocationCheck").into_iter().last();
        for i in self.own(s, "SSLCARevocationCheck") {
            let args: Vec<String> = self.args_of(i).iter().map(|a| a.to_ascii_lowercase()).collect();
            match args.first().map(String::as_str) {
                Some("chain") if args.len() == 1 => self.drop_line(i, Fate::Same, "mod_tls checks the whole chain"),
                Some("none") => self.set_comment(i, &format!("mod_tls checks wherever {CLIENT_CRL} applies")),
                _ => self.drop_line(
                    i,
                    Fate::Differs,
                    &format!(
                        "mod_tls checks the whole chain and refuses a certificate whose issuer has no CRL: \
                         give a {CLIENT_CRL} for each CA"
                    ),
                ),
            }
        }
        let checked = check.is_some_and(|i| self.args_of(i).first().is_some_and(|v| !v.eq_ignore_ascii_case("none")));
        // Reported where the difference is made: at the CRLs of a scope, or at a vhost's own
        // `none` under CRLs it inherits (which mod_tls cannot take back).
        let at = if !own_crls.is_empty() {
            own_crls.iter().copied().min()
        } else if inherits_crls {
            own_check
        } else {
            None
        };
        if let (false, Some(at)) = (checked, at) {
            self.find(
                at,
                Fate::Differs,
                format!(
                    "mod_ssl did not check CRLs here (SSLCARevocationCheck none, its default); mod_tls checks \
                     {CLIENT_CRL} for the whole chain wherever it applies (vhosts inherit the main server's)"
                ),
            );
        }
    }

    /// `SSLVerifyClient require` in a directory: a client certificate verified at the handshake
    /// is required there (mod_ssl asked for one by renegotiating; mod_tls cannot).
    fn directory_client_auth(&mut self, s: usize, i: usize) {
        let server = self.server_scope(s);
        let asked = self.effective(server, "SSLVerifyClient", |_| true).and_then(|v| self.args_of(v).first().cloned());
        let block = self.and_require(i, "Require ssl-verify-client");
        self.set_raw(i, block);
        let asked = asked.map(|a| a.to_ascii_lowercase());
        if matches!(asked.as_deref(), Some("optional" | "require" | "optional_no_ca")) {
            self.find(
                i,
                Fate::Differs,
                format!(
                    "per-directory client authentication needs renegotiation, which TLS 1.3 and rustls do not have: \
                     Require ssl-verify-client written, so only clients that sent a valid certificate at the \
                     handshake ({CLIENT_CERTIFICATE} of the vhost) are let in"
                ),
            );
        } else {
            let optional = CLIENT_CERTIFICATE.line(ClientAuth::Optional);
            let why = format!(
                "per-directory client authentication needs renegotiation, which TLS 1.3 and rustls do not have, \
                 and this vhost asks for no certificate: Require ssl-verify-client, written here, lets nobody \
                 in until the vhost has {optional} (and {CLIENT_CA})"
            );
            self.find(i, Fate::Closed, format!("{why}; closed until edited"));
            let indent = self.line(i).indent.clone();
            let mut out = self.replaced[i].take().unwrap_or_default();
            out.insert(1, format!("{indent}# mod_tls-migrate: CLOSED UNTIL EDITED: {why}"));
            self.replaced[i] = Some(out);
        }
    }

    /// `SSLCipherSuite` in a directory: mod_ssl renegotiated to a suite of that list. Kept only
    /// when every TLS 1.2 suite rustls has is in it; otherwise the place is closed.
    fn directory_suites(&mut self, i: usize) {
        let (tls13, list) = cipher_args(&self.args_of(i));
        let covered = if tls13 {
            ciphers::expand_tls13(Some(&list)).map(|s| s.suites.len() == rustls_suites(true).len())
        } else {
            ciphers::expand_tls12(&list).map(|s| s.suites.len() == rustls_suites(false).len())
        };
        match covered {
            Ok(true) => self.drop_line(
                i,
                Fate::Same,
                "every suite rustls has is in this list: no connection mod_tls accepts falls outside it",
            ),
            Ok(false) => self.close(
                i,
                &format!(
                    "per-directory cipher suites need renegotiation, which TLS 1.3 and rustls do not have: give \
                     this part a vhost of its own with {CIPHERS_SUPPRESS}, or test %{{SSL_CIPHER}} (IANA names) \
                     with Require expr"
                ),
            ),
            Err(e) => self.close(i, &format!("the cipher list '{list}': {e}")),
        }
    }

    /// `SSLProxy*` of the main server, a vhost or a `<Proxy>` section.
    fn proxy(&mut self, s: usize) {
        let is13 = |a: &[String]| cipher_args(a).0;
        let is12 = |a: &[String]| !cipher_args(a).0;
        let own_proto = self.own(s, "SSLProxyProtocol").into_iter().last();
        let own12 = self.own(s, "SSLProxyCipherSuite").into_iter().rev().find(|&i| is12(&self.args_of(i)));
        let own13 = self.own(s, "SSLProxyCipherSuite").into_iter().rev().find(|&i| is13(&self.args_of(i)));
        if own_proto.is_some() || own12.is_some() || own13.is_some() {
            let (proto, tls12, tls13) = self.suite_settings(s, "SSLProxyProtocol", "SSLProxyCipherSuite");
            let plan = plan_suites(proto.as_deref(), tls12.as_deref(), tls13.as_deref(), true);
            let floor = plan.floor.and_then(floor_word).map(|f| PROXY_PROTOCOL.line(f));
            if let Some(p) = own_proto {
                self.set(p, floor.clone().into_iter().collect());
            }
            let suite_lines: Vec<usize> = [own12, own13].into_iter().flatten().collect();
            if let Some(a) = suite_lines.iter().copied().min() {
                let mut out = Vec::new();
                if own_proto.is_none() && plan.floor == Some(FLOOR_TLS13) {
                    out.extend(floor.clone());
                }
                if !plan.prefer.is_empty() {
                    out.push(PROXY_CIPHERS_PREFER.line(plan.prefer.join(" ")));
                }
                if !plan.suppress.is_empty() {
                    out.push(PROXY_CIPHERS_SUPPRESS.line(plan.suppress.join(" ")));
                }
                self.set_group(a, &suite_lines, out, "in the TLSProxyCiphers lines above");
            }
            self.file_notes(plan, own_proto, own12.or(own13));
        }
    }

    /// Every other mod_ssl directive of a scope, each on its own.
    fn one_by_one(&mut self, s: usize) {
        let ctx = self.tree.scopes[s].ctx;
        let per_dir = ctx == Ctx::Directory;
        for i in self.tree.scopes[s].ssl.clone() {
            if self.replaced[i].is_some() {
                continue;
            }
            let name = self.name_of(i);
            let args = self.args_of(i);
            let first = args.first().map(|a| a.to_ascii_lowercase()).unwrap_or_default();
            let joined = args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ");
            match name.to_ascii_lowercase().as_str() {
                "sslengine" => self.engine(s, i, &first),
                "ssloptions" => {
                    let (kept, dropped) = options_words(&args);
                    if kept.is_empty() {
                        self.set_comment(i, "no option mod_tls has");
                    } else {
                        self.set(i, vec![OPTIONS.line(kept.join(" "))]);
                    }
                    for d in dropped {
                        let word = d.trim_start_matches(['+', '-']).to_ascii_lowercase();
                        if word == "fakebasicauth" && !d.starts_with('-') {
                            // Without mod_ssl nothing refuses a Basic login forged with a
                            // client's DN as user name and FakeBasicAuth's fixed password.
                            self.close(
                                i,
                                &format!(
                                    "SSLOptions +FakeBasicAuth has no twin, and without it a client could log in \
                                     with Authorization: Basic for a DN user of the password file and \
                                     FakeBasicAuth's password: authenticate by certificate with {USER_NAME} \
                                     SSL_CLIENT_S_DN and Require expr on %{{SSL_CLIENT_S_DN…}} (or Require \
                                     ssl-verify-client) instead of the password file, then remove this block"
                                ),
                            );
                            continue;
                        }
                        let fake_basic_auth = format!(
                            "FakeBasicAuth has no twin: authenticate with Require expr on %{{SSL_CLIENT_S_DN…}}, or \
                             {USER_NAME}"
                        );
                        let why = match word.as_str() {
                            "fakebasicauth" => fake_basic_auth.as_str(),
                            "strictrequire" => "StrictRequire: SSLRequire lines become Require rules, which Satisfy Any does not bypass",
                            "optrenegotiate" => "OptRenegotiate has no twin: mod_tls never renegotiates",
                            "legacydnstringformat" => "LegacyDNStringFormat has no twin: DNs are RFC 2253 strings",
                            _ => "an option mod_tls does not know",
                        };
                        let fate = if d.starts_with('-') || word == "strictrequire" { Fate::Same } else { Fate::Differs };
                        self.find(i, fate, format!("SSLOptions {d}: {why}"));
                    }
                }
                "sslusername" if !per_dir => self.set(i, vec![USER_NAME.line(&joined)]),
                "sslusername" => self.drop_line(
                    i,
                    Fate::Differs,
                    &format!("{USER_NAME} is set per virtual host: move it to the vhost if all of it may take the user so"),
                ),
                "sslrenegbuffersize" => self.drop_line(i, Fate::Same, "mod_tls never renegotiates, so buffers nothing"),
                "sslverifyclient" if per_dir && first == "require" => self.directory_client_auth(s, i),
                "sslciphersuite" if per_dir => self.directory_suites(i),
                "sslverifyclient" | "sslverifydepth" if per_dir =>
                {
                    self.drop_line(
                        i,
                        Fate::Differs,
                        "per-directory TLS settings need renegotiation, which TLS 1.3 and rustls do not have: \
                         set it for the whole vhost (a vhost of its own for this part, if need be)",
                    )
                }
                "sslverifydepth" => {
                    self.drop_line(i, Fate::Differs, &format!("no depth limit: the whole chain is verified up to a {CLIENT_CA} anchor"))
                }
                "sslsessioncache" => {
                    let spec = match first.as_str() {
                        "none" | "nonenotnull" => CacheSpec::None.to_string(),
                        _ => joined.clone(),
                    };
                    self.set(i, vec![SESSION_CACHE.line(spec)]);
                }
                "sslsessioncachetimeout" => match (parse_session_lifetime(&first), first.parse::<u64>()) {
                    (Ok(n), _) => {
                        self.set(i, vec![SESSION_CACHE_TIMEOUT.line(n)]);
                        self.find(
                            i,
                            Fate::Note,
                            format!("{SESSION_CACHE_TIMEOUT} counts from the full handshake: resumptions do not extend it"),
                        );
                    }
                    (Err(_), Ok(n)) if n > MAX_SESSION_LIFETIME_SECS => {
                        self.set(i, vec![SESSION_CACHE_TIMEOUT.line(MAX_SESSION_LIFETIME_SECS)]);
                        self.find(i, Fate::Differs, format!("{n} seconds: TLS 1.3 sessions live 7 days at most"));
                    }
                    _ => self.drop_line(
                        i,
                        Fate::Differs,
                        &format!(
                            "not a number of seconds from 1 up: mod_tls's default of {DEFAULT_LIFETIME_SECS} seconds applies"
                        ),
                    ),
                },
                "sslsessiontickets" => {
                    let why = "TLS 1.3 tickets are stateful entries in the session cache: no ticket keys to share or leak";
                    self.drop_line(i, Fate::Same, why)
                }
                "sslsessionticketkeyfile" => {
                    self.drop_line(i, Fate::Same, "no ticket keys: tickets are stateful entries in the session cache")
                }
                "sslpassphrasedialog" if first.starts_with("exec:") => {
                    self.set(i, vec![PASSPHRASE_DIALOG.line(&joined)]);
                    self.find(
                        i,
                        Fate::Note,
                        "the program's second argument is the key file (mod_ssl gave the key type); \
                         legacy `Proc-Type: 4,ENCRYPTED` keys must be converted to PKCS#8",
                    );
                }
                "sslpassphrasedialog" if first == "builtin" => {
                    self.drop_line(i, Fate::Same, &format!("no terminal prompt: unencrypted keys need none; for encrypted ones use {PASSPHRASE_DIALOG} exec:PROGRAM"))
                }
                "sslrandomseed" => self.drop_line(i, Fate::Same, "rustls takes its randomness from the operating system"),
                // The last of each in a scope was converted with its group: these came before it.
                "sslhonorcipherorder" | "sslprotocol" | "sslciphersuite" | "sslproxyprotocol" | "sslproxyciphersuite" => {
                    self.set_comment(i, "overridden by a later line of this scope")
                }
                "sslstrictsnivhostcheck" if first == "on" => self.drop_line(
                    i,
                    Fate::Differs,
                    "mod_ssl refused clients without SNI the vhosts other than the default one; mod_tls serves \
                     them the default vhost and answers 421 for a vhost with other TLS settings",
                ),
                "sslstrictsnivhostcheck" => self.drop_line(
                    i,
                    Fate::Same,
                    &format!("mod_tls serves clients without SNI as mod_ssl did (and {STRICT_SNI} off keeps serving unknown names)"),
                ),
                "sslcompression" | "sslinsecurerenegotiation" if first == "off" => {
                    self.drop_line(i, Fate::Same, "rustls has neither")
                }
                "sslcompression" => self.drop_line(i, Fate::Differs, "TLS compression is insecure (CRIME) and rustls has none"),
                "sslinsecurerenegotiation" => self.drop_line(i, Fate::Differs, "rustls never renegotiates"),
                "sslrequiressl" => {
                    let block = self.and_require(i, "Require ssl");
                    self.set_raw(i, block);
                    self.find(i, Fate::Note, "an access restriction: Require ssl, ANDed with the other Require rules here");
                }
                "sslrequire" => match crate::expr::translate(&self.raw_args(i)) {
                    Ok(e) => {
                        let block = self.and_require(i, &format!("Require expr ({e})"));
                        self.set_raw(i, block);
                        self.find(
                            i,
                            Fate::Note,
                            "an access restriction: Require expr, ANDed with the other Require rules here",
                        );
                    }
                    Err(why) => self.close(
                        i,
                        &format!("SSLRequire is not translated ({why}): write the condition as Require expr (ap_expr), \
                                  inside this block in place of Require all denied"),
                    ),
                },
                "sslusestapling" if first == "off" => self.drop_line(i, Fate::Same, "mod_tls staples only through mod_md"),
                "sslusestapling" => {
                    self.set(i, vec!["MDStapling on".to_string()]);
                    self.find(
                        i,
                        Fate::Note,
                        "OCSP stapling comes from mod_md: MDStapling on (its MDStapleOthers, on by default, staples \
                         certificates it does not manage); mod_md must be loaded (Debian: a2enmod md; a LoadModule \
                         is written where mod_ssl was loaded)",
                    );
                }
                "sslstaplingforceurl" => self.drop_line(
                    i,
                    Fate::Differs,
                    "mod_md asks the OCSP responder the certificate names (its Authority Information Access)",
                ),
                n if n.starts_with("sslstapling") => self.drop_line(
                    i,
                    Fate::Same,
                    "mod_md fetches, keeps (MDStoreDir) and renews OCSP responses itself (MDStapling* directives)",
                ),
                "sslocspenable"
                    if first != "off"
                        && self.effective(s, "SSLCARevocationFile", |_| true).is_none()
                        && self.effective(s, "SSLCARevocationPath", |_| true).is_none() =>
                {
                    // Without it, and without CRLs, a client certificate revoked at its CA passes.
                    self.close(
                        i,
                        &format!(
                            "client certificates are not checked by OCSP, and no CRL applies here, so a revoked \
                             certificate would be accepted: give the CAs' CRLs with {CLIENT_CRL} (kept current), then \
                             remove this block"
                        ),
                    )
                }
                n if n.starts_with("sslocsp") => self.drop_line(
                    i,
                    Fate::Differs,
                    &format!("client certificates are not checked by OCSP: give the CAs' CRLs with {CLIENT_CRL}"),
                ),
                "sslcadnrequestfile" | "sslcadnrequestpath" => self.drop_line(
                    i,
                    Fate::Differs,
                    &format!("the acceptable issuers sent to clients are the {CLIENT_CA} certificates' names"),
                ),
                "sslopensslconfcmd"
                    if matches!(first.as_str(), "groups" | "curves") && args.len() > 1 =>
                {
                    let lacking = ciphers::groups_lacking(args[1].split(':'));
                    let lost = if lacking.is_empty() {
                        String::new()
                    } else {
                        format!(": {} were offered and are not now, so clients that offer only those lose access", lacking.join(", "))
                    };
                    let why = format!(
                        "OpenSSL's own setting: rustls offers its own key exchange groups ({}){lost}",
                        ciphers::rustls_groups().join(", ")
                    );
                    self.drop_line(i, Fate::Differs, &why)
                }
                "sslopensslconfcmd" => self.drop_line(i, Fate::Differs, "OpenSSL's own setting: rustls has no such knob"),
                "sslcryptodevice" if first == "builtin" => self.drop_line(i, Fate::Same, "OpenSSL's default engine"),
                "sslfips" | "sslcryptodevice" => self.drop_line(i, Fate::Differs, "OpenSSL's own setting"),
                n if n.starts_with("sslsrp") => self.drop_line(i, Fate::Differs, "rustls has no SRP"),
                "sslproxyengine" => {
                    self.set(i, vec![PROXY_ENGINE.line(&joined)]);
                    let verify = self
                        .effective(s, "SSLProxyVerify", |_| true)
                        .and_then(|v| self.args_of(v).first().map(|a| a.to_ascii_lowercase()));
                    // An explicit `SSLProxyVerify none` is reported on its own line.
                    if first == "on" && verify.is_none() {
                        self.find(
                            i,
                            Fate::Differs,
                            format!(
                                "mod_ssl did not verify backend certificates here (SSLProxyVerify none is its \
                                 default); mod_tls always does, against {PROXY_CA} (else the Mozilla roots): name the \
                                 backends' CA with {PROXY_CA}"
                            ),
                        );
                    }
                }
                "sslproxycacertificatefile" => self.set(i, vec![PROXY_CA.line(&joined)]),
                "sslproxycacertificatepath" => {
                    self.set(i, vec![PROXY_CA.line(&joined)]);
                    self.find(i, Fate::Note, format!("{PROXY_CA} reads the directory's hash links and .pem/.crt files, each file once"));
                }
                "sslproxymachinecertificatefile" => {
                    self.set(i, vec![PROXY_MACHINE_CERTIFICATE.line(&joined)]);
                    self.find(i, Fate::Note, format!("the file must hold one certificate (chain) and its key; several pairs need one {PROXY_MACHINE_CERTIFICATE} each"));
                }
                "sslproxymachinecertificatepath" | "sslproxymachinecertificatechainfile" => self.drop_line(
                    i,
                    Fate::Differs,
                    &format!("name each certificate (with its chain and key) on a {PROXY_MACHINE_CERTIFICATE} line"),
                ),
                "sslproxyverify" if first == "none" || first == "optional_no_ca" => self.drop_line(
                    i,
                    Fate::Differs,
                    &format!(
                        "mod_ssl did not verify backend certificates here; mod_tls always does, against {PROXY_CA} \
                         (else the Mozilla roots): name the backends' CA with {PROXY_CA}"
                    ),
                ),
                "sslproxyverify" | "sslproxyverifydepth" => {
                    self.drop_line(i, Fate::Same, "backend certificates are always verified, up to a trusted root")
                }
                "sslproxycheckpeerexpire" if first == "off" => self.drop_line(
                    i,
                    Fate::Differs,
                    "always on in mod_tls: a backend certificate past its validity period (expired or not yet \
                     valid) is refused",
                ),
                "sslproxycheckpeername" | "sslproxycheckpeercn" if first == "off" => self.drop_line(
                    i,
                    Fate::Differs,
                    "always on in mod_tls: the backend's certificate must be valid for the name mod_proxy connects to",
                ),
                "sslproxycheckpeername" | "sslproxycheckpeercn" | "sslproxycheckpeerexpire" => {
                    self.drop_line(i, Fate::Same, "always on in mod_tls")
                }
                n if n.starts_with("sslproxycarevocation") => {
                    self.drop_line(i, Fate::Differs, "backend certificates are not checked against CRLs")
                }
                _ if per_dir && !matches!(ctx, Ctx::Main | Ctx::VirtualHost) => {
                    self.drop_line(i, Fate::Differs, "mod_tls has no twin for it here")
                }
                _ => self.drop_line(i, Fate::Differs, "mod_tls has no twin for it"),
            }
        }
    }

    /// What OpenSSL's defaults gave clients that rustls does not, filed once at the first vhost
    /// that takes TLS: the default cipher list where no SSLCipherSuite applies, and the default
    /// key exchange groups where no `SSLOpenSSLConfCmd Groups`/`Curves` sets them.
    fn default_reach(&mut self) {
        let tls_scopes: Vec<usize> = self.engines.iter().map(|&(_, at)| at).collect();
        let is12 = |a: &[String]| !cipher_args(a).0;
        let scope_of = |c: &Self, line: usize| {
            (0..c.tree.scopes.len()).rev().find(|&s| c.tree.scopes[s].open.is_some_and(|o| o <= line)).unwrap_or(0)
        };
        let mut defaulted = None;
        for &at in &tls_scopes {
            let s = if self.line(at).directive().is_some() { 0 } else { scope_of(self, at) };
            if self.effective(s, "SSLCipherSuite", is12).is_none() {
                defaulted = Some(at);
                break;
            }
        }
        if let Some(at) = defaulted
            && let Ok(sel) = ciphers::expand_tls12("DEFAULT")
            && sel.unavailable > 0
        {
            let note = lacking_note(&sel, "OpenSSL's default (no SSLCipherSuite applies here)");
            self.find(at, Fate::Note, note);
        }
        let sets_groups = self.lines.iter().any(|l| {
            l.directive().is_some_and(|(n, a)| {
                n.eq_ignore_ascii_case("sslopensslconfcmd")
                    && a.first().is_some_and(|k| k.eq_ignore_ascii_case("groups") || k.eq_ignore_ascii_case("curves"))
            })
        });
        let lacking = ciphers::groups_lacking(ciphers::OPENSSL_DEFAULT_GROUPS.iter().copied());
        if let (Some(&at), false, false) = (tls_scopes.first(), sets_groups, lacking.is_empty()) {
            self.find(
                at,
                Fate::Note,
                format!(
                    "OpenSSL's default key exchange groups {} are not in rustls (it has {}): clients that offer \
                     only those lose access",
                    lacking.join(", "),
                    ciphers::rustls_groups().join(", ")
                ),
            );
        }
    }

    /// `SSLEngine` in the main server or a vhost.
    fn engine(&mut self, s: usize, i: usize, value: &str) {
        let scope = &self.tree.scopes[s];
        match (scope.ctx, value) {
            (_, "off") => self.set_comment(i, &format!("this vhost stays plain unless a {ENGINE} address reaches it")),
            (_, "optional") => self.drop_line(
                i,
                Fate::Differs,
                "upgrading a plain connection to TLS (RFC 2817) has no twin: give TLS its own address",
            ),
            (Ctx::VirtualHost, "on") => self.set_comment(i, &format!("{ENGINE} for this vhost's address at the end")),
            (Ctx::Main, "on") => self.set_comment(i, &format!("{ENGINE} for the main server's addresses at the end")),
            (Ctx::Main, _) => {
                // SSLEngine addr:port …: those addresses take TLS.
                for a in self.args_of(i) {
                    match engine_addr(&a, &self.tree.listens) {
                        Ok(addrs) => self.engines.extend(addrs.into_iter().map(|x| (x, i))),
                        Err(e) => self.find(i, Fate::Differs, e),
                    }
                }
                self.set_comment(i, &format!("{ENGINE} for these addresses at the end"));
            }
            _ => self.drop_line(i, Fate::Differs, "unknown value"),
        }
    }

    /// TLSEngine addresses: each vhost where SSLEngine is on (its own or the main server's).
    fn engines(&mut self) {
        let is_on = |c: &Self, i: usize| c.args_of(i).first().is_some_and(|v| v.eq_ignore_ascii_case("on"));
        let main_on = self.effective(0, "SSLEngine", |_| true).is_some_and(|i| is_on(self, i));
        let mut plain_vhosts = Vec::new();
        for s in 1..self.tree.scopes.len() {
            if self.tree.scopes[s].ctx != Ctx::VirtualHost {
                continue;
            }
            let open = self.tree.scopes[s].open.unwrap_or(0);
            let on = match self.own(s, "SSLEngine").into_iter().last() {
                Some(i) => is_on(self, i),
                None => main_on,
            };
            if !on {
                plain_vhosts.push(s);
                continue;
            }
            for a in self.tree.scopes[s].addrs.clone() {
                match engine_addr(&a, &self.tree.listens) {
                    Ok(addrs) => self.engines.extend(addrs.into_iter().map(|x| (x, open))),
                    Err(e) => self.find(open, Fate::Differs, e),
                }
            }
        }
        if main_on {
            let vhost_ports: BTreeSet<String> = (1..self.tree.scopes.len())
                .filter(|&s| self.tree.scopes[s].ctx == Ctx::VirtualHost)
                .flat_map(|s| self.tree.scopes[s].addrs.clone())
                .map(|a| listen_port(&a).to_string())
                .collect();
            let at = self.effective(0, "SSLEngine", |_| true).unwrap_or(0);
            for l in self.tree.listens.clone() {
                if !vhost_ports.contains(listen_port(&l)) {
                    self.engines.push((l, at));
                }
            }
        }
        // A port for every address makes the single addresses of that port redundant.
        let ports: BTreeSet<String> =
            self.engines.iter().filter(|(a, _)| !a.contains(':')).map(|(a, _)| a.clone()).collect();
        let mut seen = BTreeSet::new();
        self.engines.retain(|(a, _)| {
            let covered = a.contains(':') && ports.contains(listen_port(a));
            !covered && seen.insert(a.clone())
        });
        // Debian's ports.conf opens 443 only `<IfModule ssl_module>`: converting a site file alone
        // leaves its port unopened once mod_ssl is gone.
        for (a, at) in self.engines.clone() {
            let port = listen_port(&a);
            if !self.tree.listens.iter().any(|l| listen_port(l) == port) {
                // The address mod_ssl's own Listen bound, where one is known; else the vhost's.
                let known: Vec<String> = self
                    .opts
                    .ssl_listens
                    .iter()
                    .filter(|l| listen_port(l) == port && (!a.contains(':') || **l == a))
                    .cloned()
                    .collect();
                let (binds, from) = if known.is_empty() {
                    (vec![a.clone()], "the vhost's address".to_string())
                } else {
                    (known, "as mod_ssl's Listen in ports.conf did".to_string())
                };
                self.find(
                    at,
                    Fate::Note,
                    format!(
                        "no Listen in what was converted opens port {port}: Listen {} is added at the end ({from}), \
                         for when mod_ssl is not loaded (Debian's ports.conf opens 443 only for mod_ssl); remove it \
                         if another file opens the port",
                        binds.join(", ")
                    ),
                );
                for b in binds {
                    if !self.unlistened.contains(&b) {
                        self.unlistened.push(b);
                    }
                }
            }
        }
        let main_has_cert = !self.own(0, "SSLCertificateFile").is_empty();
        for s in plain_vhosts {
            let open = self.tree.scopes[s].open.unwrap_or(0);
            let Some(a) = self.tree.scopes[s]
                .addrs
                .iter()
                .find(|a| {
                    let port = listen_port(a);
                    self.engines.iter().any(|(e, _)| e == port || e == *a)
                })
                .cloned()
            else {
                continue;
            };
            self.find(
                open,
                Fate::Differs,
                format!(
                    "this vhost has no SSLEngine on, but others on {a} do: mod_tls serves TLS by address, so it \
                     will be served over TLS too (give it an address of its own to keep it plain)"
                ),
            );
            if main_has_cert || !self.own(s, "SSLCertificateFile").is_empty() {
                continue;
            }
            // It needs a certificate to start: the one mod_ssl's handshake showed for its name,
            // that of the first TLS vhost of the address.
            let port = listen_port(&a).to_string();
            let first = (1..self.tree.scopes.len()).find(|&t| {
                t != s
                    && self.tree.scopes[t].ctx == Ctx::VirtualHost
                    && self.tree.scopes[t].addrs.iter().any(|b| listen_port(b) == port)
                    && !self.own(t, "SSLCertificateFile").is_empty()
            });
            let Some(first) = first else { continue };
            let certs: Vec<String> = self
                .own(first, "SSLCertificateFile")
                .into_iter()
                .filter_map(|c| self.replaced[c].as_ref())
                .flat_map(|lines| lines.iter().filter(|l| l.trim_start().starts_with(CERTIFICATE.word())).cloned())
                .map(|l| l.trim().to_string())
                .collect();
            let indent = format!("{}  ", self.line(open).indent);
            let mut out = vec![self.line(open).raw.clone()];
            out.push(format!(
                "{indent}# mod_tls-migrate: served over TLS at {a}, with the certificate mod_ssl showed there"
            ));
            out.extend(certs.into_iter().map(|c| format!("{indent}{c}")));
            self.replaced[open] = Some(out);
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (i, line) in self.lines.iter().enumerate() {
            match (&self.replaced[i], &line.kind) {
                (Some(lines), _) => lines.iter().for_each(|l| {
                    out.push_str(l);
                    out.push('\n');
                }),
                (None, Kind::IncludeStart(file)) => {
                    let raw = line.raw.trim();
                    out.push_str(&format!("{}# {raw} -- {} follows\n", line.indent, file.display()));
                }
                (None, Kind::IncludeEnd(file)) => {
                    out.push_str(&format!("{}# -- end of {}\n", line.indent, file.display()));
                }
                (None, _) => {
                    out.push_str(&line.raw);
                    out.push('\n');
                }
            }
        }
        // What the tool adds sits inside <IfModule tls_module>: with the module disabled or
        // removed, the site degrades as a mod_ssl site does without mod_ssl (no unknown
        // directive stops httpd, no port stays open without TLS).
        if !self.engines.is_empty() || !self.unlistened.is_empty() {
            out.push_str("\n<IfModule tls_module>\n");
        }
        if !self.engines.is_empty() {
            out.push_str(
                "# mod_tls serves TLS by address: these are the addresses of the vhosts that had SSLEngine on.\n",
            );
            for (a, _) in &self.engines {
                out.push_str(&format!("{ENGINE} {a}\n"));
            }
            out.push_str(&format!(
                "# mod_ssl served names no vhost knows from the address's first vhost; mod_tls refuses them\n\
                 # unless {STRICT_SNI} is off.\n{STRICT_SNI} off\n",
            ));
        }
        if !self.unlistened.is_empty() {
            // One Listen per port, whichever converted file (or the package's default-tls.conf)
            // comes first: a second Listen of the same port would stop httpd.
            out.push_str(
                "# No Listen opened these in the converted files (mod_ssl's did, e.g. Debian's ports.conf):\n",
            );
            out.push_str("<IfModule !ssl_module>\n");
            for a in &self.unlistened {
                let var = listen_define(a);
                out.push_str(&format!(
                    "    <IfDefine !{var}>\n        Define {var}\n        Listen {a}\n    </IfDefine>\n"
                ));
            }
            out.push_str("</IfModule>\n");
        }
        if !self.engines.is_empty() || !self.unlistened.is_empty() {
            out.push_str("</IfModule>\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn protocol_words_follow_mod_ssls_rules() {
        let p = |s: &str| protocols(&words(s)).unwrap().into_iter().collect::<Vec<_>>();
        assert_eq!(p("all -SSLv3"), ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]);
        assert_eq!(p("all -SSLv3 -TLSv1 -TLSv1.1"), ["TLSv1.2", "TLSv1.3"]);
        assert_eq!(p("-all +TLSv1.3"), ["TLSv1.3"]);
        assert_eq!(p("TLSv1.2"), ["TLSv1.2"]);
        assert_eq!(p("+TLSv1.2 +TLSv1.3"), ["TLSv1.2", "TLSv1.3"]);
        assert!(protocols(&words("TLSv9")).is_err());
    }

    #[test]
    fn suites_and_floor_from_protocols_and_lists() {
        let modern = plan_suites(Some(&words("-all +TLSv1.3")), None, None, false);
        assert_eq!(modern.floor.and_then(floor_word), Some("v1.3+"));
        let rsa = plan_suites(None, Some("ECDHE+aRSA+AESGCM"), None, true);
        assert_eq!(rsa.floor.and_then(floor_word), Some("v1.2+"));
        assert_eq!(rsa.suppress.len(), 4, "{:?}", rsa.suppress);
        assert_eq!(
            rsa.prefer[..3],
            ["TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256"]
        );
        assert_eq!(rsa.prefer[3], "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384");
        // A list with nothing rustls has for TLS 1.2 leaves TLS 1.3 only.
        let cbc = plan_suites(None, Some("AES256-SHA"), None, false);
        assert_eq!(cbc.floor.and_then(floor_word), Some("v1.3+"));
        assert!(cbc.suite_notes.iter().any(|(f, m)| *f == Fate::Differs && m.contains("lose access")));
        assert!(cbc.suppress.is_empty());
        let only12 = plan_suites(Some(&words("TLSv1.2")), None, None, false);
        assert!(only12.notes.iter().any(|(f, m)| *f == Fate::Differs && m.contains("no highest")));
    }

    #[test]
    fn options_keep_what_mod_tls_has_and_the_reset() {
        assert_eq!(
            options_words(&words("+StdEnvVars +FakeBasicAuth")),
            (words("+StdEnvVars"), words("+FakeBasicAuth"))
        );
        assert_eq!(options_words(&words("FakeBasicAuth +ExportCertData")).0, words("Defaults +ExportCertData"));
        assert_eq!(options_words(&words("StdEnvVars StrictRequire")).0, words("StdEnvVars"));
    }

    fn convert_text(text: &str) -> Conversion {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("site.conf");
        std::fs::write(&file, text).unwrap();
        let read = crate::reader::Reader::new(None).read(&file).unwrap();
        let paths = read.paths();
        let opts = Options { module_path: "/m/mod_tls.so".into(), chain_dir: None, paths, ssl_listens: Vec::new() };
        convert(&read.lines, &opts).unwrap()
    }

    #[test]
    fn a_site_file_without_listen_gets_one_for_when_mod_ssl_is_gone() {
        let site = "<VirtualHost *:443>\n  SSLEngine on\n  SSLCertificateFile /c.pem\n</VirtualHost>\n";
        let c = convert_text(site);
        let sni = "TLSEngine 443\n# mod_ssl served names no vhost knows from the address's first vhost; mod_tls refuses \
                   them\n# unless TLSStrictSNI is off.\nTLSStrictSNI off\n";
        let listen = "# No Listen opened these in the converted files (mod_ssl's did, e.g. Debian's ports.conf):\n\
                      <IfModule !ssl_module>\n    <IfDefine !mod_tls_listen_443>\n        Define mod_tls_listen_443\n        \
                      Listen 443\n    </IfDefine>\n</IfModule>\n";
        // Inside <IfModule tls_module>: without the module the site degrades as a mod_ssl site does.
        let head = "\n<IfModule tls_module>\n# mod_tls serves TLS by address: these are the addresses of the vhosts that \
                    had SSLEngine on.\n";
        assert!(c.text.ends_with(&format!("{head}{sni}{listen}</IfModule>\n")), "{}", c.text);
        assert!(c.text.contains("  TLSCertificate /c.pem\n"), "{}", c.text);
        let with_listen = convert_text(&format!("Listen 443\n{site}"));
        assert!(with_listen.text.ends_with(&format!("{head}{sni}</IfModule>\n")), "{}", with_listen.text);
    }

    /// Every mod_tls line the converter writes names a directive of the module and holds a value
    /// the module's own parsers read.
    #[test]
    fn every_line_written_reads_with_the_modules_parsers() {
        use mod_tls_core::conf::directives::ALL;
        use mod_tls_core::conf::{EngineAddr, parse_protocol_floor};
        use mod_tls_core::tls::ciphers::parse_list;
        let c = convert_text(
            "SSLSessionCache shmcb:/run/ssl_scache(512000)\nSSLSessionCacheTimeout 900000\n\
             <VirtualHost 127.0.0.1:443>\n  SSLEngine on\n  SSLCertificateFile /c.pem\n  SSLCertificateKeyFile /k.pem\n\
             SSLProtocol -all +TLSv1.3\n  SSLHonorCipherOrder on\n  SSLCipherSuite ECDHE+aRSA+AESGCM\n\
             SSLVerifyClient optional_no_ca\n  SSLCACertificateFile /ca.pem\n  SSLCARevocationFile /crl.pem\n\
             SSLOptions +StdEnvVars -ExportCertData +StrictRequire\n  SSLUserName SSL_CLIENT_S_DN_CN\n\
             SSLProxyEngine on\n  SSLProxyProtocol TLSv1.2\n  SSLProxyCipherSuite ECDHE+AESGCM\n\
             SSLProxyCACertificateFile /pca.pem\n</VirtualHost>\n\
             <VirtualHost 127.0.0.1:8443>\n  SSLEngine on\n  SSLSessionCacheTimeout 60\n\
             SSLCipherSuite ECDHE-ECDSA-AES256-GCM-SHA384\n</VirtualHost>\n",
        );
        let mut seen = BTreeSet::new();
        for line in c.text.lines().map(str::trim).filter(|l| l.starts_with("TLS")) {
            let (word, value) = line.split_once(' ').unwrap_or_else(|| panic!("{line}: no value"));
            let d = ALL.iter().find(|d| d.word() == word).unwrap_or_else(|| panic!("{line}: no such directive"));
            let suites = [CIPHERS_PREFER, CIPHERS_SUPPRESS, PROXY_CIPHERS_PREFER, PROXY_CIPHERS_SUPPRESS];
            let read = if [PROTOCOL, PROXY_PROTOCOL].contains(d) {
                parse_protocol_floor(word, value).map(drop)
            } else if *d == CLIENT_CERTIFICATE {
                ClientAuth::parse(value).map(drop)
            } else if *d == OPTIONS {
                TlsOptions::default().apply_line(value)
            } else if *d == SESSION_CACHE_TIMEOUT {
                parse_session_lifetime(value).map(drop)
            } else if *d == SESSION_CACHE {
                CacheSpec::parse(value).map(drop)
            } else if suites.contains(d) {
                value.split(' ').try_for_each(|s| parse_list(s).map(drop))
            } else if *d == ENGINE {
                EngineAddr::parse_all(value).map(drop)
            } else {
                Ok(())
            };
            assert!(read.is_ok(), "{line}: {read:?}\n{}", c.text);
            seen.insert(word);
        }
        for d in [
            PROTOCOL,
            PROXY_PROTOCOL,
            CLIENT_CERTIFICATE,
            OPTIONS,
            SESSION_CACHE,
            SESSION_CACHE_TIMEOUT,
            CIPHERS_PREFER,
            CIPHERS_SUPPRESS,
            PROXY_CIPHERS_SUPPRESS,
            ENGINE,
        ] {
            assert!(seen.contains(d.word()), "no {d} line written:\n{}", c.text);
        }
        assert!(c.text.contains("\n  TLSSessionCacheTimeout 60\n"), "{}", c.text);
        assert!(c.text.contains(&format!("\nTLSSessionCacheTimeout {MAX_SESSION_LIFETIME_SECS}\n")), "{}", c.text);
    }

    /// The lines httpd would read that are still mod_ssl's (there must be none).
    fn ssl_left(text: &str) -> Vec<&str> {
        text.lines().map(str::trim).filter(|l| l.len() > 3 && l[..3].eq_ignore_ascii_case("ssl")).collect()
    }

    fn differs(c: &Conversion, line: usize, says: &str) -> bool {
        c.findings.iter().any(|f| f.origin.line == line && f.fate == Fate::Differs && f.message.contains(says))
    }

    #[test]
    fn later_lines_override_earlier_ones_of_a_scope() {
        // certbot's options-ssl-apache.conf, then the site's own choices after it.
        let c = convert_text(
            "<VirtualHost *:443>\n  SSLEngine on\n  SSLCertificateFile /c.pem\n\
             SSLProtocol all -SSLv2 -SSLv3 -TLSv1 -TLSv1.1\n  SSLHonorCipherOrder off\n\
             SSLCipherSuite ECDHE-ECDSA-AES128-GCM-SHA256\n  SSLProtocol -all +TLSv1.3\n  SSLHonorCipherOrder on\n\
             SSLCipherSuite ECDHE-ECDSA-AES256-GCM-SHA384\n</VirtualHost>\n",
        );
        assert!(ssl_left(&c.text).is_empty(), "{:?}\n{}", ssl_left(&c.text), c.text);
        assert!(c.text.contains("  TLSProtocol v1.3+\n"), "{}", c.text);
        assert!(c.text.contains("  TLSHonorClientOrder off\n"), "{}", c.text);
        assert!(c.text.contains("overridden by a later line of this scope"), "{}", c.text);
        // A continuation joins without a space, as httpd reads it: both suites are in the list.
        let c = convert_text("SSLCipherSuite ECDHE-ECDSA-AES256-GCM-SHA384:\\\nECDHE-RSA-AES256-GCM-SHA384\n");
        let suppress = c.text.lines().find(|l| l.starts_with("TLSCiphersSuppress")).unwrap_or_default();
        assert_eq!(suppress.split_whitespace().count(), 1 + 4, "{}", c.text);
        assert!(!suppress.contains("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"), "{}", c.text);
        // A backslash followed by a space continues nothing: the next line is read on its own.
        let c = convert_text("# old \\ \nSSLCertificateFile /c.pem\n");
        assert!(ssl_left(&c.text).is_empty() && c.text.contains("TLSCertificate /c.pem"), "{}", c.text);
    }

    #[test]
    fn what_mod_ssl_did_not_check_is_reported() {
        // Backends: mod_ssl's SSLProxyVerify none (its default) did not verify them.
        let c = convert_text("SSLProxyEngine on\n");
        assert!(differs(&c, 1, "did not verify backend certificates"), "{:?}", c.findings);
        let c = convert_text("SSLProxyEngine on\nSSLProxyVerify require\nSSLProxyCACertificateFile /ca.pem\n");
        assert!(!c.findings.iter().any(|f| f.fate == Fate::Differs), "{:?}", c.findings);
        let c = convert_text(
            "SSLProxyEngine on\nSSLProxyVerify require\n<VirtualHost *:443>\n  SSLProxyVerify none\n</VirtualHost>\n",
        );
        assert!(differs(&c, 4, "did not verify backend certificates"), "{:?}", c.findings);
        // CRLs: checked in the main server, not in a vhost that inherits them.
        let c = convert_text(
            "SSLCARevocationFile /crl.pem\nSSLCARevocationCheck chain\n\
             <VirtualHost *:443>\n  SSLCARevocationCheck none\n</VirtualHost>\n",
        );
        assert!(differs(&c, 4, "did not check CRLs here"), "{:?}", c.findings);
        assert!(!differs(&c, 1, "did not check CRLs here"), "{:?}", c.findings);
        // Unchecked in the main server (the default), checked in a vhost.
        let c = convert_text(
            "SSLCARevocationFile /crl.pem\n<VirtualHost *:443>\n  SSLCARevocationCheck chain\n</VirtualHost>\n",
        );
        assert!(differs(&c, 1, "did not check CRLs here"), "{:?}", c.findings);
    }

    #[test]
    fn files_are_read_from_the_server_root_and_chains_combined() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("conf")).unwrap();
        let block = |b: &str| format!("-----BEGIN CERTIFICATE-----\n{b}\n-----END CERTIFICATE-----\n");
        let key = "-----BEGIN PRIVATE KEY-----\nSECRET\n-----END PRIVATE KEY-----\n";
        std::fs::write(root.join("conf/leaf.pem"), format!("{}{key}", block("LEAF"))).unwrap();
        std::fs::write(root.join("conf/chain.pem"), block("CHAIN")).unwrap();
        let file = root.join("site.conf");
        std::fs::write(
            &file,
            format!(
                "ServerRoot {}\nDefine PORT 8443\n<VirtualHost *:${{PORT}}>\n  SSLEngine on\n\
                 SSLCertificateFile conf/leaf.pem\n  SSLCertificateChainFile conf/chain.pem\n</VirtualHost>\n",
                root.display()
            ),
        )
        .unwrap();
        let read = crate::reader::Reader::new(None).read(&file).unwrap();
        let chains = root.join("chains");
        let opts = Options {
            module_path: "/m".into(),
            chain_dir: Some(chains.clone()),
            paths: read.paths(),
            ssl_listens: Vec::new(),
        };
        let c = convert(&read.lines, &opts).unwrap();
        // Certificates only: the key the certificate file holds is named from where it is.
        let written = std::fs::read_to_string(chains.join("leaf-with-chain.pem")).unwrap();
        assert_eq!(written, format!("{}{}", block("LEAF"), block("CHAIN")));
        assert!(
            c.text.contains(&format!("TLSCertificate {} conf/leaf.pem", chains.join("leaf-with-chain.pem").display())),
            "{}",
            c.text
        );
        assert!(c.text.contains("\nTLSEngine 8443\n"), "{}", c.text);
    }

    #[test]
    fn each_address_without_listen_is_opened_once() {
        let site =
            |a: &str| format!("<VirtualHost {a}:443>\n  SSLEngine on\n  SSLCertificateFile /c.pem\n</VirtualHost>\n");
        let c = convert_text(&format!("{}{}", site("192.0.2.1"), site("192.0.2.2")));
        for define in ["mod_tls_listen_192_0_2_1_443", "mod_tls_listen_192_0_2_2_443"] {
            assert!(c.text.contains(&format!("<IfDefine !{define}>\n        Define {define}\n")), "{}", c.text);
        }
    }

    #[test]
    fn vhost_addresses_become_tlsengine_addresses() {
        let l = vec!["443".to_string(), "127.0.0.1:8443".to_string()];
        assert_eq!(engine_addr("_default_:443", &l).unwrap(), ["443"]);
        assert_eq!(engine_addr("*:443", &l).unwrap(), ["443"]);
        assert_eq!(engine_addr("192.0.2.1:443", &l).unwrap(), ["192.0.2.1:443"]);
        assert_eq!(engine_addr("[::1]:443", &l).unwrap(), ["[::1]:443"]);
        assert_eq!(engine_addr("*", &l).unwrap(), ["443", "8443"]);
        assert!(engine_addr("www.example.net", &l).is_err());
    }
}
