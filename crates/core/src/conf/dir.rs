//! Per-directory settings ([`DirConf`]): `TLSOptions` and the `TLSProxy*` settings of a scope.

use super::ProxyConf;
use super::error::{ConfError, ErrorKind};

/// `TLSOptions StdEnvVars`: the TLS variables go into every request's environment.
pub const OPT_STD_ENV_VARS: u8 = 1;
/// `TLSOptions ExportCertData`: the certificate PEMs too.
pub const OPT_EXPORT_CERT_DATA: u8 = 2;

/// `TLSOptions`, inherited as the C module and mod_ssl's `SSLOptions` do: a line of only `+`/`-`
/// options changes what the enclosing scope has; a line with any option without `+`/`-` (or with
/// `Defaults`) starts from nothing, so nothing is inherited.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct TlsOptions {
    /// A line without `+`/`-` was given: nothing is inherited.
    reset: bool,
    add: u8,
    del: u8,
}

impl TlsOptions {
    /// Applies one `TLSOptions` line (its words as written).
    pub fn apply_line(&mut self, line: &str) -> Result<(), ConfError> {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            return Err(ConfError::new(ErrorKind::BadValue, "TLSOptions: name at least one option"));
        }
        if words.iter().any(|w| !w.starts_with(['+', '-'])) {
            *self = TlsOptions { reset: true, add: 0, del: 0 };
        }
        words.into_iter().try_for_each(|w| self.apply(w))
    }

    /// Applies one word of a line (see [`apply_line`](Self::apply_line), which resets first).
    fn apply(&mut self, word: &str) -> Result<(), ConfError> {
        let (action, name) = match word.as_bytes().first() {
            Some(b'+') => ('+', &word[1..]),
            Some(b'-') => ('-', &word[1..]),
            _ => (' ', word),
        };
        let option = match name.to_ascii_lowercase().as_str() {
            "defaults" if action == ' ' => return Ok(()),
            "stdenvvars" => OPT_STD_ENV_VARS,
            "exportcertdata" => OPT_EXPORT_CERT_DATA,
            _ => {
                return Err(ConfError::new(
                    ErrorKind::BadValue,
                    format!(
                        "TLSOptions: unknown option '{word}': use StdEnvVars, ExportCertData (each with an \
                         optional + or -) or Defaults"
                    ),
                ));
            }
        };
        if action == '-' {
            self.add &= !option;
            self.del |= option;
        } else {
            self.add |= option;
            self.del &= !option;
        }
        Ok(())
    }

    /// `add` (an inner section) on top of `base` (the enclosing one).
    pub fn merge(base: &TlsOptions, add: &TlsOptions) -> TlsOptions {
        if add.reset {
            return add.clone();
        }
        TlsOptions { reset: base.reset, add: (base.add & !add.del) | add.add, del: (base.del & !add.add) | add.del }
    }

    pub fn has(&self, option: u8) -> bool {
        self.add & !self.del & option != 0
    }
}

/// Per-directory settings (also the server's and vhost's defaults for their requests, and the
/// `<Proxy>` sections').
#[derive(Default, Clone)]
pub struct DirConf {
    pub options: TlsOptions,
    /// The `TLSProxy*` settings. httpd keeps two per-directory records per vhost (its defaults
    /// and the merged ones) for the whole generation, and few scopes set any of these: they are
    /// held apart, shared (not copied) by the scopes that inherit them, absent where nothing
    /// sets them.
    proxy: Option<std::sync::Arc<ProxyConf>>,
}

/// What a scope without `TLSProxy*` settings reads.
static NO_PROXY: std::sync::LazyLock<ProxyConf> = std::sync::LazyLock::new(ProxyConf::default);

impl DirConf {
    pub fn merge(base: &DirConf, add: &DirConf) -> DirConf {
        let proxy = match (&base.proxy, &add.proxy) {
            (_, None) => base.proxy.clone(),
            (None, Some(_)) => add.proxy.clone(),
            (Some(b), Some(a)) => Some(std::sync::Arc::new(ProxyConf::merge(b, a))),
        };
        DirConf { options: TlsOptions::merge(&base.options, &add.options), proxy }
    }

    /// Whether this scope sets nothing: merged under any scope, it leaves that scope's
    /// settings as they are (see [`DirConf::merge`]).
    pub fn adds_nothing(&self) -> bool {
        self.options == TlsOptions::default() && self.proxy.is_none()
    }

    /// The `TLSProxy*` settings of this scope.
    pub fn proxy(&self) -> &ProxyConf {
        self.proxy.as_deref().unwrap_or(&NO_PROXY)
    }

    /// The same, to change them (this scope's own copy).
    pub fn proxy_mut(&mut self) -> &mut ProxyConf {
        std::sync::Arc::make_mut(self.proxy.get_or_insert_with(Default::default))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(words: &[&str]) -> TlsOptions {
        let mut o = TlsOptions::default();
        o.apply_line(&words.join(" ")).unwrap();
        o
    }

    /// A scope that sets nothing merges to what it is merged under, which may then be shared.
    #[test]
    fn a_scope_that_sets_nothing_adds_nothing() {
        let mut base = DirConf { options: opts(&["StdEnvVars"]), proxy: None };
        base.proxy_mut().engine = Some(true);
        assert!(DirConf::default().adds_nothing() && !base.adds_nothing());
        let merged = DirConf::merge(&base, &DirConf::default());
        assert_eq!(merged.options, base.options);
        assert!(std::sync::Arc::ptr_eq(merged.proxy.as_ref().unwrap(), base.proxy.as_ref().unwrap()));
        let mut reset = DirConf::default();
        reset.options.apply_line("Defaults").unwrap();
        assert!(!reset.adds_nothing(), "a line that resets what is inherited adds something");
    }

    #[test]
    fn tls_options_inherit_like_ssloptions() {
        let server = opts(&["StdEnvVars"]);
        assert!(server.has(OPT_STD_ENV_VARS) && !server.has(OPT_EXPORT_CERT_DATA));
        // A vhost without TLSOptions inherits; a Directory removes one; a Location adds another.
        let vhost = TlsOptions::merge(&server, &TlsOptions::default());
        assert!(vhost.has(OPT_STD_ENV_VARS));
        let dir = TlsOptions::merge(&vhost, &opts(&["-StdEnvVars"]));
        assert!(!dir.has(OPT_STD_ENV_VARS));
        let loc = TlsOptions::merge(&dir, &opts(&["+ExportCertData"]));
        assert!(!loc.has(OPT_STD_ENV_VARS) && loc.has(OPT_EXPORT_CERT_DATA));
        // A line with a bare option replaces what is inherited, as in the C module and SSLOptions.
        let bare = TlsOptions::merge(&server, &opts(&["ExportCertData"]));
        assert!(!bare.has(OPT_STD_ENV_VARS) && bare.has(OPT_EXPORT_CERT_DATA));
        let mixed = TlsOptions::merge(&server, &opts(&["+ExportCertData", "StdEnvVars"]));
        assert!(mixed.has(OPT_STD_ENV_VARS) && mixed.has(OPT_EXPORT_CERT_DATA), "the whole line applies");
        // Defaults drops the inheritance.
        let reset = TlsOptions::merge(&server, &opts(&["Defaults", "ExportCertData"]));
        assert!(!reset.has(OPT_STD_ENV_VARS) && reset.has(OPT_EXPORT_CERT_DATA));
        // ... and an inner scope below a reset keeps building on it.
        let below = TlsOptions::merge(&reset, &opts(&["+StdEnvVars"]));
        assert!(below.has(OPT_STD_ENV_VARS) && below.has(OPT_EXPORT_CERT_DATA));
        let e = TlsOptions::default().apply_line("+FakeBasicAuth").unwrap_err();
        assert!(e.message.contains("'+FakeBasicAuth'"), "{e}");
        assert!(TlsOptions::default().apply_line("-Defaults").is_err());
    }
}
