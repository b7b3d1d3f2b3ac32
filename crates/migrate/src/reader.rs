//! Reads an httpd configuration as httpd does: logical lines (a trailing backslash continues a
//! line), `#` comments, `<Section …>` blocks, and `Include`/`IncludeOptional` followed in place,
//! with wildcards and directories expanded in httpd's (alphabetical) order.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a line came from, as a finding names it (`file:line`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// What one logical line is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A comment or an empty line: copied as it is.
    Text,
    /// `Name arg…`
    Directive {
        name: String,
        args: Vec<String>,
    },
    /// `<Name arg…>`
    Open {
        name: String,
        args: Vec<String>,
    },
    /// `</Name>`
    Close {
        name: String,
    },
    /// Marks where an included file starts (`Some`) and ends (`None`) in the flattened list.
    IncludeStart(PathBuf),
    IncludeEnd(PathBuf),
}

/// One logical line: its physical text (continuations kept), what it is, and where it is.
#[derive(Clone, Debug)]
pub struct Line {
    pub raw: String,
    pub kind: Kind,
    pub origin: Origin,
    /// The leading white space, reused for lines written in its place.
    pub indent: String,
}

impl Line {
    pub fn directive(&self) -> Option<(&str, &[String])> {
        match &self.kind {
            Kind::Directive { name, args } => Some((name, args)),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct ReadError(pub String);

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An `Include` the reader did not follow, with why (reported to the administrator).
#[derive(Debug)]
pub struct Unfollowed {
    pub origin: Origin,
    pub why: String,
}

/// httpd's limit on nested includes.
const MAX_DEPTH: usize = 128;

/// The largest configuration file read (httpd's own are a few kilobytes).
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// The most read in all, Includes followed: many files including one another many times (without
/// a loop) could otherwise make the output grow without end.
pub const MAX_TOTAL_BYTES: u64 = 64 << 20;

/// A file's identity, however many names (links, `..`) lead to it.
type FileId = (u64, u64);

/// How paths of the configuration resolve: `${NAME}` from `Define` or the environment, relative
/// paths from the ServerRoot, as httpd resolves them.
#[derive(Clone, Debug, Default)]
pub struct Paths {
    pub root: PathBuf,
    pub defines: HashMap<String, String>,
}

impl Paths {
    /// `${NAME}` expanded, or Err(NAME) for a variable nobody defines.
    pub fn expand(&self, s: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                return Ok(out);
            };
            let name = &after[..end];
            let value = self.defines.get(name).cloned().or_else(|| std::env::var(name).ok()).ok_or(name.to_string())?;
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// A file named in the configuration, where httpd would look for it (unexpandable variables
    /// are left as they are).
    pub fn resolve(&self, s: &str) -> PathBuf {
        let p = PathBuf::from(self.expand(s).unwrap_or_else(|_| s.to_string()));
        if p.is_relative() { self.root.join(p) } else { p }
    }
}

pub struct Reader {
    server_root: Option<PathBuf>,
    /// The directory of the top file: the ServerRoot when none is given.
    fallback_root: PathBuf,
    /// `Define`d variables, looked up before the environment for `${NAME}`.
    defines: HashMap<String, String>,
    pub lines: Vec<Line>,
    pub unfollowed: Vec<Unfollowed>,
    /// The files being read (the top file, the file including the next, …): one reached again
    /// closes a loop.
    reading: Vec<(FileId, PathBuf)>,
    /// Bytes read so far, Includes followed.
    total: u64,
    /// Every file read.
    read_ids: Vec<FileId>,
    /// A file read before the top file, as if the top file began by including it.
    prelude: Option<PathBuf>,
}

impl Reader {
    /// `server_root`: where relative `Include` paths start; `None` until a `ServerRoot` line
    /// says, and then the directory of the top file.
    pub fn new(server_root: Option<PathBuf>) -> Reader {
        Reader {
            server_root,
            fallback_root: PathBuf::new(),
            defines: HashMap::new(),
            lines: Vec::new(),
            unfollowed: Vec::new(),
            reading: Vec::new(),
            total: 0,
            read_ids: Vec::new(),
            prelude: None,
        }
    }

    /// Reads `file` first, as if the top file began with `Include file`.
    pub fn with_prelude(mut self, file: PathBuf) -> Reader {
        self.prelude = Some(file);
        self
    }

    /// Whether `path` was among the files read (by device and inode).
    pub fn has_read(&self, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).is_ok_and(|m| self.read_ids.contains(&(m.dev(), m.ino())))
    }

    pub fn read(mut self, top: &Path) -> Result<Reader, ReadError> {
        self.fallback_root = top.parent().map(Path::to_path_buf).unwrap_or_default();
        if let Some(first) = self.prelude.clone() {
            let origin = Origin { file: top.to_path_buf(), line: 0 };
            let raw = format!("Include {}", first.display());
            let marker = |kind| Line { raw: raw.clone(), kind, origin: origin.clone(), indent: String::new() };
            self.lines.push(marker(Kind::IncludeStart(first.clone())));
            self.read_file(&first, 1)?;
            self.lines.push(marker(Kind::IncludeEnd(first.clone())));
        }
        self.read_file(top, 0)?;
        Ok(self)
    }

    /// `${NAME}` replaced where NAME is Defined so far; other variables left as they are.
    fn expand_defined(&self, s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            let after = &rest[start + 2..];
            let value = after.find('}').and_then(|end| self.defines.get(&after[..end]).map(|v| (end, v)));
            match value {
                Some((end, v)) => {
                    out.push_str(&rest[..start]);
                    out.push_str(v);
                    rest = &after[end + 1..];
                }
                None => {
                    out.push_str(&rest[..start + 2]);
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// How the configuration's paths resolve, as read to its end.
    pub fn paths(&self) -> Paths {
        Paths {
            root: self.server_root.clone().unwrap_or_else(|| self.fallback_root.clone()),
            defines: self.defines.clone(),
        }
    }

    /// A file's text: a regular file (not a FIFO, device or directory) of at most
    /// [`MAX_FILE_BYTES`], and not one being read already (an Include loop).
    fn open_text(&mut self, path: &Path) -> Result<(FileId, String), ReadError> {
        use std::io::Read;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let fail = |why: String| ReadError(format!("{}: {why}", path.display()));
        // O_NONBLOCK: opening a FIFO must not wait for a writer; the type is checked on what
        // was opened, so nothing can be swapped in between.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| fail(format!("cannot read: {e}")))?;
        let meta = file.metadata().map_err(|e| fail(format!("cannot read: {e}")))?;
        if !meta.is_file() {
            let kind = if meta.is_dir() { "a directory" } else { "not a regular file (a FIFO, socket or device)" };
            return Err(fail(format!("{kind}: a configuration file must be a regular file")));
        }
        let id = (meta.dev(), meta.ino());
        if let Some((_, first)) = self.reading.iter().find(|(r, _)| *r == id) {
            let chain: Vec<String> = self.reading.iter().map(|(_, p)| p.display().to_string()).collect();
            return Err(fail(format!(
                "an Include loop: this file is {} again, which is being read already ({} -> {})",
                first.display(),
                chain.join(" -> "),
                path.display()
            )));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(fail(format!("{} bytes: larger than {MAX_FILE_BYTES}, not a configuration file", meta.len())));
        }
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| fail(format!("cannot read: {e}")))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(fail(format!("larger than {MAX_FILE_BYTES} bytes, not a configuration file")));
        }
        self.total += bytes.len() as u64;
        if self.total > MAX_TOTAL_BYTES {
            return Err(fail(format!(
                "the files included come to more than {MAX_TOTAL_BYTES} bytes (the same files included over and over?)"
            )));
        }
        let text = String::from_utf8(bytes).map_err(|_| fail("not UTF-8 text".to_string()))?;
        Ok((id, text))
    }

    fn read_file(&mut self, path: &Path, depth: usize) -> Result<(), ReadError> {
        let (id, text) = self.open_text(path)?;
        self.read_ids.push(id);
        self.reading.push((id, path.to_path_buf()));
        let read = self.read_lines(path, &text, depth);
        self.reading.pop();
        read
    }

    fn read_lines(&mut self, path: &Path, text: &str, depth: usize) -> Result<(), ReadError> {
        for (number, physical) in logical_lines(text) {
            let origin = Origin { file: path.to_path_buf(), line: number };
            let mut kind = classify(&physical).map_err(|e| ReadError(format!("{origin}: {e}")))?;
            // httpd expands `${NAME}` as it reads each line, with the Defines made so far: a
            // later `Define` of the same name does not change this line. (The environment's
            // variables stay as written: they are the same wherever httpd reads them.)
            if let Kind::Directive { args, .. } | Kind::Open { args, .. } = &mut kind {
                for a in args.iter_mut() {
                    *a = self.expand_defined(a);
                }
            }
            let indent: String = physical.chars().take_while(|c| c.is_whitespace()).collect();
            if let Kind::Directive { name, args } = &kind {
                match name.to_ascii_lowercase().as_str() {
                    "serverroot" if args.len() == 1 => self.server_root = Some(PathBuf::from(&args[0])),
                    "define" if !args.is_empty() => {
                        self.defines.insert(args[0].clone(), args.get(1).cloned().unwrap_or_default());
                    }
                    "undefine" if !args.is_empty() => {
                        self.defines.remove(&args[0]);
                    }
                    "include" | "includeoptional" if args.len() == 1 => {
                        let optional = name.eq_ignore_ascii_case("includeoptional");
                        let line = Line { raw: physical.clone(), kind: kind.clone(), origin: origin.clone(), indent };
                        self.include(line, &args[0], optional, depth)?;
                        continue;
                    }
                    _ => {}
                }
            }
            self.lines.push(Line { raw: physical, kind, origin, indent });
        }
        Ok(())
    }

    /// Follows one Include: its files' lines go between markers, in place of the Include line.
    /// An Include that cannot be followed stays as it is, reported: it may sit in a section
    /// httpd skips (`<IfDefine>`, `<IfModule>`), which this reader does not evaluate.
    fn include(&mut self, line: Line, pattern: &str, optional: bool, depth: usize) -> Result<(), ReadError> {
        let origin = line.origin.clone();
        if depth >= MAX_DEPTH {
            return Err(ReadError(format!("{origin}: includes nested more than {MAX_DEPTH} deep (a loop?)")));
        }
        let paths = self.paths();
        let expanded = match paths.expand(pattern) {
            Ok(p) => p,
            Err(var) => {
                let why = format!("${{{var}}} is neither Defined nor in the environment: not followed");
                self.unfollowed.push(Unfollowed { origin, why });
                self.lines.push(line);
                return Ok(());
            }
        };
        let files = files_of(&paths.resolve(&expanded)).map_err(|e| ReadError(format!("{origin}: {e}")))?;
        if files.is_empty() {
            if !optional {
                let why = format!("{expanded}: no such file (httpd stops here if it reads this line)");
                self.unfollowed.push(Unfollowed { origin, why });
                self.lines.push(line);
            } else {
                // Nothing to include, as for httpd; the line stays, as a comment.
                let raw = format!("{}# {}  (matched no file)", line.indent, line.raw.trim());
                self.lines.push(Line { raw, kind: Kind::Text, ..line });
            }
            return Ok(());
        }
        let mut marker = line;
        for file in files {
            marker.kind = Kind::IncludeStart(file.clone());
            self.lines.push(marker.clone());
            self.read_file(&file, depth + 1)?;
            marker.kind = Kind::IncludeEnd(file.clone());
            self.lines.push(marker.clone());
        }
        Ok(())
    }
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The files an Include names: one file, a directory's files (recursively, sorted), or the
/// matches of a wildcard pattern (sorted; directories among them expanded the same way).
fn files_of(path: &Path) -> Result<Vec<PathBuf>, String> {
    files_under(path, &mut Vec::new())
}

/// [`files_of`], with the directories being expanded (by device and inode): one met again
/// inside itself (`x -> .`) closes a loop.
fn files_under(path: &Path, dirs: &mut Vec<(FileId, PathBuf)>) -> Result<Vec<PathBuf>, String> {
    use std::os::unix::fs::MetadataExt;
    // apr_fnmatch has no `**`: it is `*` there.
    let text = path.to_string_lossy().replace("**", "*");
    let mut found = Vec::new();
    if has_wildcard(&text) {
        // httpd matches with APR_FNM_PERIOD: a wildcard does not match a leading dot.
        let options = glob::MatchOptions { require_literal_leading_dot: true, ..Default::default() };
        let matches = glob::glob_with(&text, options).map_err(|e| format!("Include {text}: {e}"))?;
        let mut paths: Vec<PathBuf> = matches.flatten().collect();
        paths.sort();
        for p in paths {
            found.extend(files_under(&p, dirs)?);
        }
    } else if let Some(meta) = std::fs::metadata(path).ok().filter(|m| m.is_dir()) {
        let id = (meta.dev(), meta.ino());
        if let Some((_, first)) = dirs.iter().find(|(d, _)| *d == id) {
            return Err(format!(
                "Include {text}: a directory loop: {text} is {} again, whose files are being listed already",
                first.display()
            ));
        }
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(path).map_err(|e| format!("Include {text}: {e}"))?.flatten().map(|e| e.path()).collect();
        entries.sort();
        dirs.push((id, path.to_path_buf()));
        for p in entries {
            let more = files_under(&p, dirs);
            if more.is_err() {
                dirs.pop();
            }
            found.extend(more?);
        }
        dirs.pop();
    } else if path.exists() {
        found.push(path.to_path_buf());
    }
    Ok(found)
}

/// Physical lines joined where a line ends in a backslash: (first line number, text with the
/// newlines of continuations kept, so that untouched lines are copied exactly).
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let (number, mut acc) = pending.take().unwrap_or((i + 1, String::new()));
        if !acc.is_empty() {
            acc.push('\n');
        }
        acc.push_str(line);
        // httpd 2.4 continues a line when a backslash is its very last character.
        if line.ends_with('\\') {
            pending = Some((number, acc));
        } else {
            out.push((number, acc));
        }
    }
    if let Some(p) = pending {
        out.push(p);
    }
    out
}

/// A logical line as httpd reads it: each continuation's backslash and newline removed, nothing
/// put in their place (`A:\\` then `B` is `A:B`).
fn joined(physical: &str) -> String {
    physical.replace("\\\n", "")
}

/// The words of a logical line as httpd's ap_getword_conf splits them: white space separates,
/// double or single quotes group (a backslash escapes the quote inside).
pub fn words(line: &str) -> Vec<String> {
    let joined = joined(line);
    let mut out = Vec::new();
    let mut chars = joined.trim().chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' || c == '\'' {
            chars.next();
            while let Some(ch) = chars.next() {
                if ch == '\\' && chars.peek() == Some(&c) {
                    word.push(c);
                    chars.next();
                } else if ch == c {
                    break;
                } else {
                    word.push(ch);
                }
            }
        } else {
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() {
                    break;
                }
                word.push(ch);
                chars.next();
            }
        }
        out.push(word);
    }
    out
}

fn classify(physical: &str) -> Result<Kind, String> {
    let text = joined(physical);
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(Kind::Text);
    }
    if let Some(rest) = trimmed.strip_prefix("</") {
        let name = rest.trim_end_matches('>').trim();
        return Ok(Kind::Close { name: name.to_string() });
    }
    if let Some(rest) = trimmed.strip_prefix('<') {
        let Some(inner) = rest.trim_end().strip_suffix('>') else {
            return Err(format!("section opening without '>': {trimmed}"));
        };
        let mut w = words(inner);
        if w.is_empty() {
            return Err(format!("empty section: {trimmed}"));
        }
        let name = w.remove(0);
        return Ok(Kind::Open { name, args: w });
    }
    let mut w = words(trimmed);
    let name = w.remove(0);
    Ok(Kind::Directive { name, args: w })
}

/// A word as a configuration file needs it written: quoted when it holds white space or quotes.
pub fn quote(word: &str) -> String {
    if word.is_empty() || word.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
        format!("\"{}\"", word.replace('"', "\\\""))
    } else {
        word.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_follow_httpds_quoting() {
        assert_eq!(words(r#"CustomLog "logs/ssl log" "%t \"%r\"""#), ["CustomLog", "logs/ssl log", r#"%t "%r""#]);
        assert_eq!(words("SSLProtocol  all\t-SSLv3"), ["SSLProtocol", "all", "-SSLv3"]);
        assert_eq!(words("BrowserMatch x \\\n   nokeepalive"), ["BrowserMatch", "x", "nokeepalive"]);
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(quote("/etc/x.pem"), "/etc/x.pem");
    }

    #[test]
    fn continuations_make_one_line_numbered_by_its_first() {
        let l = logical_lines("A\nB x \\\n  y\nC\n");
        assert_eq!(l, vec![(1, "A".into()), (2, "B x \\\n  y".into()), (4, "C".into())]);
        assert_eq!(
            classify("<VirtualHost _default_:443 [::]:443>").unwrap(),
            Kind::Open { name: "VirtualHost".into(), args: vec!["_default_:443".into(), "[::]:443".into()] }
        );
        assert_eq!(classify("  </VirtualHost>").unwrap(), Kind::Close { name: "VirtualHost".into() });
        assert_eq!(classify("   # SSLEngine on").unwrap(), Kind::Text);
    }

    #[test]
    fn defines_expand_with_the_value_they_have_at_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("top.conf");
        std::fs::write(
            &top,
            "Define CERT /a.pem\nX ${CERT} ${HOME_OF_NOBODY}\nDefine CERT /b.pem\n<V ${CERT}>\n</V>\n",
        )
        .unwrap();
        let r = Reader::new(None).read(&top).unwrap();
        assert_eq!(r.lines[1].directive().unwrap().1, ["/a.pem", "${HOME_OF_NOBODY}"]);
        assert_eq!(r.lines[3].kind, Kind::Open { name: "V".into(), args: vec!["/b.pem".into()] });
    }

    #[test]
    fn includes_are_followed_in_place_with_wildcards_sorted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sites")).unwrap();
        std::fs::write(dir.path().join("sites/b.conf"), "B 1\n").unwrap();
        std::fs::write(dir.path().join("sites/a.conf"), "A 1\n").unwrap();
        // A wildcard does not match a leading dot (APR_FNM_PERIOD).
        std::fs::write(dir.path().join("sites/.hidden.conf"), "H 1\n").unwrap();
        std::fs::write(
            dir.path().join("top.conf"),
            "X\nIncludeOptional sites/*.conf\nIncludeOptional none/*.conf\nY\n",
        )
        .unwrap();
        let r = Reader::new(None).read(&dir.path().join("top.conf")).unwrap();
        let names: Vec<String> = r
            .lines
            .iter()
            .map(|l| match &l.kind {
                Kind::Directive { name, .. } => name.clone(),
                Kind::IncludeStart(p) => format!("+{}", p.file_name().unwrap().to_string_lossy()),
                Kind::IncludeEnd(_) => "-".into(),
                _ => "?".into(),
            })
            .collect();
        // IncludeOptional of nothing stays as a comment.
        assert_eq!(names, ["X", "+a.conf", "A", "-", "+b.conf", "B", "-", "?", "Y"]);
        assert!(r.lines[7].raw.contains("# IncludeOptional none/*.conf  (matched no file)"));
        let missing = Reader::new(None).read(&dir.path().join("nope.conf"));
        assert!(missing.is_err());
    }
}
