//! The documentation against the program: the status-page keys listed in `docs/status-page.md`
//! are the keys a running server prints (both ways), the directives in `docs/directives.md`'s
//! table are the module's directive table (both ways), and every `TLS…` name the README, the
//! docs, the configuration examples and the man page mention is one of those.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;

fn repo_file(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The first cell of a Markdown table row (`| a \| b | c |` gives `a \| b`), or None for other
/// lines and for the separator row.
fn first_cell(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix('|')?;
    let bytes = rest.as_bytes();
    let end = (0..bytes.len()).find(|&i| bytes[i] == b'|' && (i == 0 || bytes[i - 1] != b'\\'))?;
    let cell = rest[..end].trim();
    (!cell.is_empty() && !cell.chars().all(|c| c == '-' || c == ':')).then_some(cell)
}

/// The `backticked` spans of a piece of Markdown.
fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The table rows under the heading `heading` (up to the next heading), as their first cells.
fn table_under<'a>(doc: &'a str, heading: &str) -> Vec<&'a str> {
    let mut lines = doc.lines().skip_while(|l| l.trim() != heading);
    assert!(lines.next().is_some(), "no heading '{heading}'");
    let cells: Vec<&str> = lines.take_while(|l| !l.starts_with('#')).filter_map(first_cell).collect();
    assert!(cells.len() > 1, "no table under '{heading}'");
    cells[1..].to_vec() // the header row
}

/// What `docs/status-page.md` lists: concrete keys, and patterns (`TLSCertificate<N>`), each
/// with the concrete examples written in the same row.
struct StatusDoc {
    keys: BTreeSet<String>,
    patterns: Vec<(String, Vec<String>)>,
}

fn documented_status_keys() -> StatusDoc {
    let doc = repo_file("docs/status-page.md");
    let mut keys = BTreeSet::new();
    let mut patterns = Vec::new();
    for cell in table_under(&doc, "## Keys") {
        let spans = code_spans(cell);
        assert!(!spans.is_empty(), "docs/status-page.md: a key row without a `key`: {cell}");
        let (pats, concrete): (Vec<&str>, Vec<&str>) = spans.into_iter().partition(|s| s.contains('<'));
        for p in &pats {
            let examples: Vec<String> =
                concrete.iter().filter(|k| pattern_matches(p, k)).map(|k| k.to_string()).collect();
            assert!(!examples.is_empty(), "docs/status-page.md: `{p}` has no example (e.g. `…0`) in its row");
            patterns.push((p.to_string(), examples));
        }
        keys.extend(concrete.iter().filter(|k| !pats.iter().any(|p| pattern_matches(p, k))).map(|k| k.to_string()));
    }
    for k in keys.iter().chain(patterns.iter().map(|(p, _)| p)) {
        assert!(k.starts_with("TLS") && !k.contains(' '), "docs/status-page.md: '{k}' is not a key");
    }
    StatusDoc { keys, patterns }
}

/// `TLSCertificate<N>` matches `TLSCertificate0`: `<N>` stands for digits, any other `<name>` for
/// a name (letters, digits, `_`).
fn pattern_matches(pattern: &str, key: &str) -> bool {
    let Some((before, rest)) = pattern.split_once('<') else { return pattern == key };
    let Some((what, after)) = rest.split_once('>') else { return false };
    let Some(tail) = key.strip_prefix(before) else { return false };
    let ok = |c: char| if what == "N" { c.is_ascii_digit() } else { c.is_ascii_alphanumeric() || c == '_' };
    (1..=tail.len())
        .any(|n| tail.is_char_boundary(n) && tail[..n].chars().all(ok) && pattern_matches(after, &tail[n..]))
}

impl StatusDoc {
    fn documents(&self, key: &str) -> bool {
        self.keys.contains(key) || self.patterns.iter().any(|(p, _)| pattern_matches(p, key))
    }
}

/// The directive names in the table of `docs/directives.md`.
fn documented_directives() -> BTreeSet<String> {
    let doc = repo_file("docs/directives.md");
    let mut names = BTreeSet::new();
    for cell in table_under(&doc, "## Directive reference") {
        let spans = code_spans(cell);
        assert!(!spans.is_empty(), "docs/directives.md: a directive row without a `Directive`: {cell}");
        for s in spans {
            names.insert(s.split_whitespace().next().unwrap_or_default().to_string());
        }
    }
    names
}

/// The directive names of the module's table (`COMMANDS` in `src/directives.rs`). Its rows take
/// each directive's name and help from one constant of `mod_tls_core::conf::directives`
/// (`d::CLIENT_CA.name, …, d::CLIENT_CA.help`), whose list `ALL` holds them all.
fn source_directives() -> BTreeSet<String> {
    use mod_tls_core::conf::directives::ALL;
    let src = repo_file("src/directives.rs");
    let start = src.find("pub static COMMANDS").expect("the COMMANDS table in src/directives.rs");
    let table = &src[start..start + src[start..].find("]);").expect("the end of COMMANDS")];
    let rows: Vec<(&str, &str)> = table
        .split("d::")
        .skip(1)
        .filter_map(|s| s.split_once('.'))
        .map(|(constant, rest)| (constant, rest.split(|c: char| !c.is_ascii_alphanumeric()).next().unwrap_or("")))
        .collect();
    let named: BTreeSet<&str> = rows.iter().filter(|(_, field)| *field == "name").map(|(c, _)| *c).collect();
    let helped: BTreeSet<&str> = rows.iter().filter(|(_, field)| *field == "help").map(|(c, _)| *c).collect();
    assert_eq!(named, helped, "each row of COMMANDS takes name and help from one constant");
    assert_eq!(named.len(), ALL.len(), "one row of COMMANDS per directive: {named:?}");
    ALL.iter().map(|d| d.word().to_string()).collect()
}

#[test]
fn the_directive_table_in_the_docs_is_the_modules() {
    let documented = documented_directives();
    let source = source_directives();
    let undocumented: Vec<_> = source.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&source).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "docs/directives.md and src/directives.rs disagree:\n  \
         directives the module has and the docs' table lacks: {undocumented:?}\n  \
         directives the docs' table lists and the module lacks: {unknown:?}"
    );
}

#[test]
fn status_keys_in_the_docs_are_the_keys_the_server_prints() {
    let doc = documented_status_keys();
    let mut h = Httpd::new();
    h.extra = format!(
        "LoadModule status_module {MODDIR}/mod_status.so\n<Location /server-status>\n  SetHandler server-status\n</Location>\n"
    );
    h.start();
    let (response, _) = h.get("/index.html", TLS13);
    assert_eq!(response.status, 200);
    // With every certificate listed (plain `?auto` lists only those that need attention).
    let auto = h.status_auto_all();
    assert_eq!(auto.get("TLSHandshakes").map(String::as_str), Some("1"), "the request's handshake counted: {auto:?}");

    let missing: Vec<&String> = doc.keys.iter().filter(|k| !auto.contains_key(*k)).collect();
    let missing_examples: Vec<&String> =
        doc.patterns.iter().flat_map(|(_, ex)| ex).filter(|k| !auto.contains_key(*k)).collect();
    let undocumented: Vec<&String> = auto.keys().filter(|k| k.starts_with("TLS") && !doc.documents(k)).collect();
    assert!(
        missing.is_empty() && missing_examples.is_empty() && undocumented.is_empty(),
        "docs/status-page.md and the server's ?auto page disagree:\n  \
         documented keys the page lacks: {missing:?}\n  \
         documented examples the page lacks: {missing_examples:?}\n  \
         keys the page prints that are not documented: {undocumented:?}\n?auto: {auto:#?}"
    );

    // The documented example line of a certificate has the fields the server prints, in order.
    let fields = |v: &str| -> Vec<String> {
        v.split("; ").map(|f| f.split('=').next().unwrap_or_default().to_string()).collect()
    };
    let text = repo_file("docs/status-page.md");
    let example = text.lines().find_map(|l| l.strip_prefix("TLSCertificate0: ")).expect("a TLSCertificate0 example");
    assert_eq!(
        fields(example),
        fields(&auto["TLSCertificate0"]),
        "docs: {example}\nserver: {}",
        auto["TLSCertificate0"]
    );
}

/// Names that start like ours and are not: protocol versions and suite names are not `TLS` + a
/// capital letter, so only these are left.
fn is_tls_name_start(text: &str, i: usize) -> bool {
    let b = text.as_bytes();
    text[i..].starts_with("TLS")
        && b.get(i + 3).is_some_and(u8::is_ascii_uppercase)
        && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
}

#[test]
fn every_tls_name_in_the_docs_is_a_directive_or_a_status_key() {
    let directives = source_directives();
    let status = documented_status_keys();
    let mut files = vec!["README.md".to_string(), "man/mod_tls-migrate.1".to_string()];
    for dir in ["docs", "conf-examples"] {
        let mut names: Vec<String> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
            .unwrap()
            .map(|e| format!("{dir}/{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
        names.sort();
        files.extend(names);
    }
    let mut wrong = Vec::new();
    for file in &files {
        let text = repo_file(file);
        for (i, _) in text.match_indices("TLS").filter(|(i, _)| is_tls_name_start(&text, *i)) {
            let len = text[i..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len() - i);
            let name = &text[i..i + len];
            let known = match text[i + len..].chars().next() {
                // `TLSProxy*`: some directive or key starts so; `TLSCertificate<N>`: a documented pattern.
                Some('*') => directives.iter().chain(&status.keys).any(|d| d.starts_with(name)),
                Some('<') => status.patterns.iter().any(|(p, _)| p.starts_with(name)) || directives.contains(name),
                _ => directives.contains(name) || status.documents(name),
            };
            if !known {
                let line = text[..i].matches('\n').count() + 1;
                wrong.push(format!("{file}:{line}: {name}"));
            }
        }
    }
    assert!(wrong.is_empty(), "names that are neither a directive nor a documented status key:\n{}", wrong.join("\n"));
}
