//! Finding the vhost an SNI names among an address's vhosts in constant time, with the answer
//! httpd's own walk gives (`ap_vhost_iterate_given_conn` with [`crate::conf::host_matches`]): the
//! first vhost, in configuration order, whose ServerName, ServerAlias or wildcard alias matches.
//!
//! Exact names go into one map, the common wildcard form `*.suffix` into another (looked up
//! with every suffix of the name that follows a dot); other patterns (`www.*`, `?`) are rare and
//! stay in a list that is matched the slow way. Each map keeps the first vhost of a name, and a
//! lookup takes the earliest of what the three offer.
//!
//! The index also knows which vhosts *own* their names ([`NameIndex::find_owner`]): a vhost
//! without wildcard aliases each of whose names the walk answers with that vhost itself (no
//! earlier vhost has the name or a wildcard that matches it). For such a vhost, any `Host` its
//! names match gets it from httpd's walk too, which is what lets the walk look at it first.

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
    /// Per vhost: it owns its names (see the module's documentation).
    owns_names: Vec<bool>,
}

impl<S: Copy> NameIndex<S> {
    /// The index of `vhosts` (in configuration order), each with its ServerName, its aliases and
    /// its wildcard aliases.
    pub fn new(vhosts: impl IntoIterator<Item = (S, String, Vec<String>, Vec<String>)>) -> Self {
        let vhosts: Vec<_> = vhosts.into_iter().collect();
        // Sized once for the vhosts (each has a name): growing would leave the smaller tables
        // behind, freed but touched, in each child that makes an index.
        let n = vhosts.len();
        let mut index = NameIndex {
            servers: Vec::with_capacity(n),
            exact: HashMap::with_capacity(n),
            star_dot: HashMap::new(),
            other: Vec::new(),
            owns_names: Vec::new(),
        };
        let names_of = |server_name: &str, aliases: &[String]| -> Vec<String> {
            std::iter::once(server_name)
                .chain(aliases.iter().map(String::as_str))
                .map(|name| name.trim_end_matches('.').to_ascii_lowercase())
                .filter(|name| !name.is_empty())
                .collect()
        };
        for (s, server_name, aliases, wild) in &vhosts {
            let i = index.servers.len() as u32;
            index.servers.push(*s);
            for name in names_of(server_name, aliases) {
                index.exact.entry(name.into()).or_insert(i);
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
        index.owns_names = vhosts
            .iter()
            .enumerate()
            .map(|(i, (_, server_name, aliases, wild))| {
                let names = names_of(server_name, aliases);
                wild.is_empty()
                    && !names.is_empty()
                    && names.iter().all(|name| index.find_position(name) == Some(i as u32))
            })
            .collect();
        index
    }

    /// The first vhost that `host` names, as httpd's walk finds it.
    pub fn find(&self, host: &str) -> Option<S> {
        self.find_position(host).map(|i| self.servers[i as usize])
    }

    /// The first vhost that `host` names, and whether it owns its names: then any `Host` that
    /// one of its names matches (as httpd compares: the whole name, case aside) is answered by
    /// httpd's walk with this vhost, wherever the walk starts.
    pub fn find_owner(&self, host: &str) -> Option<(S, bool)> {
        self.find_position(host).map(|i| (self.servers[i as usize], self.owns_names[i as usize]))
    }

    fn find_position(&self, host: &str) -> Option<u32> {
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
        best
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

    /// httpd's walk with `first` looked at before the address's list (the list itself unchanged).
    fn walk_from(vhosts: &[Vhost], first: usize, host: &str) -> Option<usize> {
        let matches = |i: usize| {
            let (name, aliases, wild) = vhosts[i];
            let aliases: Vec<String> = aliases.iter().map(|a| a.to_string()).collect();
            let wild: Vec<String> = wild.iter().map(|w| w.to_string()).collect();
            crate::conf::host_matches(host, name, &aliases, &wild)
        };
        if matches(first) { Some(first) } else { (0..vhosts.len()).find(|&i| matches(i)) }
    }

    #[test]
    fn a_vhost_that_owns_its_names_can_be_looked_at_first() {
        let vhosts: &[Vhost] = &[
            ("a.test", &["shared.test"], &[]),
            ("b.test", &["shared.test", "b-alias.test"], &[]),
            ("wild.test", &[], &["*.w.test"]),
            ("x.w.test", &[], &[]),
            ("c.test", &["C-Alias.Test."], &[]),
            ("pattern.test", &[], &["p?.test"]),
            ("p1.test", &[], &[]),
            ("last.test", &[], &[]),
        ];
        let idx = index(vhosts);
        let owns = |host: &str| idx.find_owner(host).map(|(_, owns)| owns);
        assert_eq!(owns("a.test"), Some(true));
        assert_eq!(owns("b.test"), Some(false), "an earlier vhost has its alias shared.test");
        assert_eq!(owns("b-alias.test"), Some(false));
        assert_eq!(owns("y.w.test"), Some(false), "a vhost with a wildcard alias");
        assert_eq!(owns("x.w.test"), Some(false), "an earlier wildcard matches its name");
        assert_eq!(owns("c-alias.test"), Some(true));
        assert_eq!(owns("p1.test"), Some(false), "an earlier pattern matches its name");
        assert_eq!(owns("last.test"), Some(true));
        assert_eq!(owns("nothing.test"), None);
        // The claim itself: for every owner, any Host gets the same vhost whether the walk
        // looks at the owner first or not.
        let hosts = [
            "a.test",
            "A.TEST",
            "shared.test",
            "b.test",
            "b-alias.test",
            "x.w.test",
            "y.w.test",
            "c.test",
            "c-alias.test",
            "p1.test",
            "p2.test",
            "last.test",
            "nothing.test",
            "",
            "127.0.0.1",
        ];
        for (first, (name, _, _)) in vhosts.iter().enumerate() {
            if owns(name) != Some(true) {
                continue;
            }
            for host in hosts {
                assert_eq!(walk_from(vhosts, first, host), walk(vhosts, host), "{name} first, Host {host:?}");
            }
        }
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
