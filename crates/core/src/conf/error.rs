//! Errors of the plain-Rust layers, typed: what kind of problem, where the administrator wrote
//! the directive (when known), and the sentence that tells them what to fix.

use std::fmt;

/// Where a directive was written, so that errors found later (in check_config) can still point at it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    /// One allocation per configuration file, shared by every directive written in it.
    pub file: std::sync::Arc<str>,
    pub line: u32,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A directive's argument that is not one of the values it takes.
    BadValue,
    /// A file that cannot be read, or holds nothing.
    Unreadable,
    /// A certificate, key, CRL or trust anchor that does not parse, decrypt or fit.
    KeyMaterial,
    /// A cipher-suite name nobody knows, or a choice that leaves a TLS version without suites.
    Ciphers,
    /// Settings rustls cannot be configured with.
    Build,
    /// A directive written where it does not apply (inside `<VirtualHost>` or a directory section).
    Placement,
    /// The `TLSPassPhraseDialog` program could not be run or did not give a passphrase.
    Passphrase,
    /// The session cache's provider is missing, refuses its arguments or cannot start.
    SessionCache,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfError {
    pub kind: ErrorKind,
    /// Where the directive at fault was written; httpd adds it itself to directive syntax errors.
    pub origin: Option<Origin>,
    pub message: String,
}

impl ConfError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ConfError { kind, origin: None, message: message.into() }
    }

    /// The same error, found in the directive written at `origin`.
    pub fn at(mut self, origin: &Origin) -> Self {
        self.origin = Some(origin.clone());
        self
    }

    /// The same error with `prefix` (usually the directive's name) before its sentence.
    pub fn within(mut self, prefix: &str) -> Self {
        self.message = format!("{prefix}: {}", self.message);
        self
    }

    /// `file:line: sentence`, or the sentence alone when the origin is not known.
    pub fn located(&self) -> String {
        match &self.origin {
            Some(o) => format!("{o}: {}", self.message),
            None => self.message.clone(),
        }
    }
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfError {}

/// Directive handlers hand httpd a sentence; httpd adds the file and line.
impl From<ConfError> for String {
    fn from(e: ConfError) -> String {
        e.message
    }
}
