//! Whether a host name (from SNI) is one of a server's names: `ServerName`, `ServerAlias` and
//! their wildcards, globbed as httpd does.

/// Whether `host` (from SNI) is named by a server's ServerName, ServerAlias or wildcard aliases.
pub fn host_matches(host: &str, server_name: &str, aliases: &[String], wild_aliases: &[String]) -> bool {
    name_matches(host, server_name, false)
        || aliases.iter().any(|a| name_matches(host, a, false))
        || wild_aliases.iter().any(|w| name_matches(host, w, true))
}

/// Whether `host` (from SNI) is `name`, a ServerName or ServerAlias, or, `wild`, matches the
/// wildcard alias `name`.
pub fn name_matches(host: &str, name: &str, wild: bool) -> bool {
    let host = host.trim_end_matches('.');
    if wild {
        glob_match_ci(name.as_bytes(), host.as_bytes())
    } else {
        host.eq_ignore_ascii_case(name.trim_end_matches('.'))
    }
}

/// Shell-style `*` and `?` matching, ASCII case-insensitive (as httpd's ap_strcasecmp_match).
pub fn glob_match_ci(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p].eq_ignore_ascii_case(&text[t])) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_and_wildcards() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(host_matches("WWW.Example.net", "www.example.net", &[], &[]));
        assert!(host_matches("alias.test", "x", &names(&["alias.test"]), &[]));
        assert!(host_matches("a.wild.test", "x", &[], &names(&["*.wild.test"])));
        assert!(host_matches("a.b.wild.test", "x", &[], &names(&["*.wild.test"])));
        assert!(!host_matches("wild.test", "x", &[], &names(&["*.wild.test"])));
        assert!(host_matches("web7.test", "x", &[], &names(&["web?.test"])));
        assert!(!host_matches("web17.test", "x", &[], &names(&["web?.test"])));
        assert!(!host_matches("other.test", "www.example.net", &names(&["alias.test"]), &names(&["*.wild.test"])));
    }
}
