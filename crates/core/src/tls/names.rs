//! Finding the vhost an SNI names among an address's vhosts in constant time, with the answer
//! httpd's own walk gives (`ap_vhost_iterate_given_conn` with [`crate::conf::host_matches`]): the
//! first vhost, in configuration order, whose ServerName, ServerAlias or wildcard alias matches.
//!
//! Exact names go into one map, the common wildcard form `*.suffix` into another (looked up
//! with every suffix of the name that follows a dot); other patterns (`www.*`, `?`) are rare and
//! stay in a list that is matched the slow way. Each map keeps the first vhost of a name, and a
//! lookup takes the earliest of what the three offer.

use std::collections::HashMap;

/// One address's vhosts by name.
#[derive(Debug)]
pub struct NameIndex<S> {
    servers: Vec<S>,
    /// Lower-case name (without a trailing dot) → index of the first vhost with it.
    exact: HashMap<Box<str>, u32>,
    /// The lower-case suffix of a `*.suffix` pattern (e.g. `example.net` of `*.example.net`) →
    /// index of the first vhost with it.
    star_dot: HashMap<Box<str>, u32>,
    /// Other patterns, in order: (pattern, vhost index).
    other: Vec<(Box<str>, u32)>,
}

impl<S: Copy> NameIndex<S> {
    /// The index of `vhosts` (in configuration order), each with its ServerName, its aliases and
    /// its wildcard aliases.
    pub fn new(vhosts: impl IntoIterator<Item = (S, String, Vec<String>, Vec<String>)>) -> Self {
        let vhosts = vhosts.into_iter();
        // Sized once for the vhosts (each has a name): growing would leave the smaller tables
        // behind, freed but touched, in each child that makes an index.
        let n = vhosts.size_hint().0;
        let mut index = NameIndex {
            servers: Vec::with_capacity(n),
            exact: HashMap::with_capacity(n),
            star_dot: HashMap::new(),
            other: Vec::new(),
        };
        for (s, server_name, aliases, wild) in vhosts {
            let i = index.servers.len() as u32;
            index.servers.push(s);
            for name in std::iter::once(server_name.as_str()).chain(aliases.iter().map(String::as_str)) {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if !name.is_empty() {
                    index.exact.entry(name.into()).or_insert(i);
                }
            }
            for pattern in wild {
                let lower = pattern.to_ascii_lowercase();
                match lower.strip_prefix("*.") {
                    Some(suffix) if !suffix.contains(['*', '?']) => {
                        index.star_dot.entry(suffix.into()).or_insert(i);
                    }
                    _ => index.other.push((lower.into(), i)),
                }
            }
        }
        index.star_dot.shrink_to_fit();
        index
    }

    /// The first vhost that `host` names, as httpd's walk finds it.
    pub fn find(&self, host: &str) -> Option<S> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let earliest = |best: Option<u32>, i: u32| Some(best.map_or(i, |b| b.min(i)));
        let mut best = self.exact.get(host.as_str()).copied();
        // `*.suffix` matches any name that ends with `.suffix` (the star may span dots).
        for (at, _) in host.match_indices('.') {
            if let Some(&i) = self.star_dot.get(&host[at + 1..]) {
                best = earliest(best, i);
            }
        }
        for (pattern, i) in &self.other {
            if best.is_some_and(|b| b < *i) {
                break;
            }
            if crate::conf::glob_match_ci(pattern.as_bytes(), host.as_bytes()) {
                best = earliest(best, *i);
            }
        }
        best.map(|i| self.servers[i as usize])
    }

    pub fn len(&self) -> usize {
        self.servers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Vhost = (&'static str, &'static [&'static str], &'static [&'static str]);

    /// The walk httpd does: the first vhost whose names match.
    fn walk(vhosts: &[Vhost], host: &str) -> Option<usize> {
        vhosts.iter().position(|(name, aliases, wild)| {
            let aliases: Vec<String> = aliases.iter().map(|a| a.to_string()).collect();
            let wild: Vec<String> = wild.iter().map(|w| w.to_string()).collect();
            crate::conf::host_matches(host, name, &aliases, &wild)
        })
    }

    fn index(vhosts: &[Vhost]) -> NameIndex<usize> {
        NameIndex::new(vhosts.iter().enumerate().map(|(i, (name, aliases, wild))| {
            let aliases = aliases.iter().map(|a| a.to_string()).collect();
            (i, name.to_string(), aliases, wild.iter().map(|w| w.to_string()).collect())
        }))
    }

    #[test]
    fn the_first_vhost_that_matches_wins_as_in_httpds_walk() {
        let vhosts: &[Vhost] = &[
            ("www.example.net", &["example.net"], &[]),
            ("shop.example.net", &[], &["*.shop.example.net"]),
            ("catch.example.net", &[], &["*.example.net"]),
            ("second.example.net", &["www.example.net", "Dup.Example.NET"], &["*.example.net", "*.other.test"]),
            ("pattern.test", &[], &["www.*.test", "h?st.test", "*"]),
            ("last.example.net", &["dup.example.net"], &[]),
        ];
        let idx = index(vhosts);
        let hosts = [
            "www.example.net",
            "WWW.Example.Net.",
            "example.net",
            "shop.example.net",
            "a.shop.example.net",
            "a.b.shop.example.net",
            "other.example.net",
            "x.y.example.net",
            "dup.example.net",
            "a.other.test",
            "www.a.test",
            "host.test",
            "hxst.test",
            "anything.else",
            "",
            ".",
            "net",
            "example.net.evil",
        ];
        for host in hosts {
            assert_eq!(idx.find(host), walk(vhosts, host), "{host:?}");
        }
        assert_eq!(idx.find("dup.example.net"), Some(2), "an earlier vhost's wildcard beats a later exact alias");
        assert_eq!(idx.find("www.example.net"), Some(0), "the first of two exact names");
        assert_eq!(idx.find("a.b.shop.example.net"), Some(1), "the star spans dots, first wins");
    }

    #[test]
    fn many_vhosts_agree_with_the_walk() {
        let names: Vec<String> = (0..2000).map(|i| format!("site{i}.example.net")).collect();
        let aliases: Vec<Vec<String>> = (0..2000).map(|i| vec![format!("alias{}.test", i % 700)]).collect();
        let wild: Vec<Vec<String>> =
            (0..2000).map(|i| if i % 3 == 0 { vec![format!("*.d{}.test", i % 50)] } else { vec![] }).collect();
        let idx = NameIndex::new((0..2000).map(|i| (i, names[i].clone(), aliases[i].clone(), wild[i].clone())));
        let walk = |host: &str| (0..2000).find(|&i| crate::conf::host_matches(host, &names[i], &aliases[i], &wild[i]));
        for host in
            ["site0.example.net", "site1999.example.net", "alias5.test", "alias699.test", "a.d7.test", "x.y.d49.test"]
                .into_iter()
                .chain(["nothing.test", "d7.test"])
        {
            assert_eq!(idx.find(host), walk(host), "{host}");
        }
        assert_eq!(idx.len(), 2000);
    }
}
