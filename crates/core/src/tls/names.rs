//! Finding the vhost an SNI names among an address's vhosts in constant time, with the answer
//! httpd's own walk gives (`ap_vhost_iterate_given_conn` with [`crate::conf::host_matches`]): the
//! first vhost, in configuration order, whose ServerName, ServerAlias or wildcard alias matches.
//!
//! Exact names go into one map, the common wildcard form `*.suffix` into another (looked up
//! with every suffix of the name that follows a dot); other patterns (`www.*`, `?`) are rare and
//! stay in a list that is matched the slow way. Each map keeps the first vhost of a name, and a
//! lookup takes the earliest of what the three offer.
//!
//! The maps hold a 64-bit digest of each name, not the name, in a sorted array: each child
//! makes the index of an address (thousands of names) at its first handshake there, and the
//! vhosts' own records have the names already. A vhost the maps offer is therefore checked
//! against its names (the caller's `matches`); should a digest ever be shared by two names, the
//! check fails and the lookup walks the vhosts in order, as httpd does.
//!
//! The index also knows which vhosts *own* their names ([`NameIndex::find_owner`]): a vhost
//! without wildcard aliases each of whose names the walk answers with that vhost itself (no
//! earlier vhost has the name or a wildcard that matches it). For such a vhost, any `Host` its
//! names match gets it from httpd's walk too, which is what lets the walk look at it first.

use std::hash::{BuildHasher, Hasher, RandomState};

/// One address's vhosts by name.
#[derive(Debug)]
pub struct NameIndex<S> {
    servers: Box<[S]>,
    /// Digests of the lower-case names (without a trailing dot), keyed per index.
    digest: RandomState,
    /// (digest of a name, index of the first vhost with it), by digest.
    exact: Box<[(u64, u32)]>,
    /// (digest of the lower-case suffix of a `*.suffix` pattern, e.g. `example.net` of
    /// `*.example.net`, index of the first vhost with it), by digest.
    star_dot: Box<[(u64, u32)]>,
    /// Other patterns, in order: (pattern, vhost index).
    other: Vec<(Box<str>, u32)>,
    /// One bit per vhost: it owns its names (see the module's documentation).
    owns_names: Box<[u64]>,
}

impl<S: Copy> NameIndex<S> {
    /// The index of `vhosts` (in configuration order); `names_of(s, each)` gives `each` vhost
    /// `s`'s ServerName and aliases (`false`) and its wildcard aliases (`true`).
    pub fn new(vhosts: Vec<S>, names_of: impl Fn(S, &mut dyn FnMut(&str, bool))) -> Self {
        let digest = RandomState::new();
        // Sized once for the vhosts (each has a name): growing would leave the smaller arrays
        // behind, freed but touched, in each child that makes an index.
        let mut exact = Vec::with_capacity(vhosts.len());
        let mut star_dot = Vec::new();
        let mut other = Vec::new();
        for (i, &s) in vhosts.iter().enumerate() {
            let i = i as u32;
            names_of(s, &mut |name, wild| {
                if !wild {
                    let name = name.trim_end_matches('.');
                    if !name.is_empty() {
                        exact.push((digest_of(&digest, name), i));
                    }
                    return;
                }
                match name.strip_prefix("*.") {
                    Some(suffix) if !suffix.contains(['*', '?']) => star_dot.push((digest_of(&digest, suffix), i)),
                    _ => other.push((name.to_ascii_lowercase().into_boxed_str(), i)),
                }
            });
        }
        other.shrink_to_fit();
        let mut index = NameIndex {
            servers: vhosts.into_boxed_slice(),
            digest,
            exact: by_digest(exact),
            star_dot: by_digest(star_dot),
            other,
            owns_names: Box::default(),
        };
        // A digest shared by two names can only make a vhost look like it does not own a name
        // (the map offers the earlier vhost of the two): the answer errs on the side of the walk.
        let mut owns_names = vec![0u64; index.servers.len().div_ceil(64)];
        for (i, &s) in index.servers.iter().enumerate() {
            let (mut owns, mut named) = (true, false);
            names_of(s, &mut |name, wild| {
                let name = name.trim_end_matches('.');
                if wild {
                    owns = false;
                } else if !name.is_empty() {
                    named = true;
                    owns &= index.claimed_by(name) == Some(i as u32);
                }
            });
            if owns && named {
                owns_names[i / 64] |= 1 << (i % 64);
            }
        }
        index.owns_names = owns_names.into_boxed_slice();
        index
    }

    /// The first vhost a name with digest `d` leads to in `map`.
    fn lookup(map: &[(u64, u32)], d: u64) -> Option<u32> {
        map.binary_search_by_key(&d, |&(k, _)| k).ok().map(|at| map[at].1)
    }

    /// The first vhost that `host` names, as httpd's walk finds it; `matches` tells whether a
    /// vhost's names match `host` (as the walk asks).
    pub fn find(&self, host: &str, matches: impl Fn(S) -> bool) -> Option<S> {
        self.find_position(host, matches).map(|i| self.servers[i as usize])
    }

    /// The first vhost that `host` names (as [`NameIndex::find`]), and whether it owns its
    /// names: then any `Host` that one of its names matches (as httpd compares: the whole name,
    /// case aside) is answered by httpd's walk with this vhost, wherever the walk starts.
    pub fn find_owner(&self, host: &str, matches: impl Fn(S) -> bool) -> Option<(S, bool)> {
        self.find_position(host, matches).map(|i| {
            let i = i as usize;
            (self.servers[i], self.owns_names.get(i / 64).is_some_and(|bits| bits & (1 << (i % 64)) != 0))
        })
    }

    fn find_position(&self, host: &str, matches: impl Fn(S) -> bool) -> Option<u32> {
        let host = host.trim_end_matches('.');
        let mut best = None;
        for i in self.digest_offers(host) {
            // What the digests offer is checked: a vhost that does not match means two names
            // share a digest, and only the walk knows the answer then.
            if !matches(self.servers[i as usize]) {
                return self.servers.iter().position(|&s| matches(s)).map(|i| i as u32);
            }
            best = earliest(best, i);
        }
        self.with_patterns(best, host)
    }

    /// The first vhost the maps and patterns lead `name` (without a trailing dot) to, digests
    /// unchecked.
    fn claimed_by(&self, name: &str) -> Option<u32> {
        self.with_patterns(self.digest_offers(name).min(), name)
    }

    /// The vhosts the digest maps offer for `host`: its exact name, and `*.suffix` for each
    /// suffix that follows a dot (the star may span dots).
    fn digest_offers<'a>(&'a self, host: &'a str) -> impl Iterator<Item = u32> + 'a {
        let exact = Self::lookup(&self.exact, digest_of(&self.digest, host));
        let stars = host
            .match_indices('.')
            .filter_map(move |(at, _)| Self::lookup(&self.star_dot, digest_of(&self.digest, &host[at + 1..])));
        exact.into_iter().chain(stars)
    }

    /// The earlier of `best` and the first vhost whose other patterns match `host`.
    fn with_patterns(&self, mut best: Option<u32>, host: &str) -> Option<u32> {
        if self.other.is_empty() {
            return best;
        }
        let lower = host.to_ascii_lowercase();
        for (pattern, i) in &self.other {
            if best.is_some_and(|b| b < *i) {
                break;
            }
            if crate::conf::glob_match_ci(pattern.as_bytes(), lower.as_bytes()) {
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

/// The earlier of two vhost positions, either possibly none.
fn earliest(best: Option<u32>, i: u32) -> Option<u32> {
    Some(best.map_or(i, |b| b.min(i)))
}

/// The digest of `name` as if lower-case.
fn digest_of(digest: &RandomState, name: &str) -> u64 {
    let mut h = digest.build_hasher();
    for b in name.bytes() {
        h.write_u8(b.to_ascii_lowercase());
    }
    h.finish()
}

/// (digest, vhost index) pairs sorted by digest, each digest once with its first vhost.
fn by_digest(mut pairs: Vec<(u64, u32)>) -> Box<[(u64, u32)]> {
    pairs.sort_unstable();
    pairs.dedup_by_key(|&mut (d, _)| d);
    pairs.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    type Vhost = (&'static str, &'static [&'static str], &'static [&'static str]);

    /// Whether `host` names vhost `i`, as httpd matches.
    fn names(vhosts: &[Vhost], i: usize, host: &str) -> bool {
        let (name, aliases, wild) = vhosts[i];
        let aliases: Vec<String> = aliases.iter().map(|a| a.to_string()).collect();
        let wild: Vec<String> = wild.iter().map(|w| w.to_string()).collect();
        crate::conf::host_matches(host, name, &aliases, &wild)
    }

    /// The walk httpd does: the first vhost whose names match.
    fn walk(vhosts: &[Vhost], host: &str) -> Option<usize> {
        (0..vhosts.len()).find(|&i| names(vhosts, i, host))
    }

    fn index(vhosts: &[Vhost]) -> NameIndex<usize> {
        NameIndex::new((0..vhosts.len()).collect(), |i, each| {
            let (name, aliases, wild) = vhosts[i];
            each(name, false);
            aliases.iter().for_each(|a| each(a, false));
            wild.iter().for_each(|w| each(w, true));
        })
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
        let find = |host: &str| idx.find(host, |i| names(vhosts, i, host));
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
            assert_eq!(find(host), walk(vhosts, host), "{host:?}");
        }
        assert_eq!(find("dup.example.net"), Some(2), "an earlier vhost's wildcard beats a later exact alias");
        assert_eq!(find("www.example.net"), Some(0), "the first of two exact names");
        assert_eq!(find("a.b.shop.example.net"), Some(1), "the star spans dots, first wins");
    }

    #[test]
    fn many_vhosts_agree_with_the_walk() {
        let names: Vec<String> = (0..2000).map(|i| format!("site{i}.example.net")).collect();
        let aliases: Vec<Vec<String>> = (0..2000).map(|i| vec![format!("alias{}.test", i % 700)]).collect();
        let wild: Vec<Vec<String>> =
            (0..2000).map(|i| if i % 3 == 0 { vec![format!("*.d{}.test", i % 50)] } else { vec![] }).collect();
        let idx = NameIndex::new((0..2000).collect(), |i, each| {
            each(&names[i], false);
            aliases[i].iter().for_each(|a| each(a, false));
            wild[i].iter().for_each(|w| each(w, true));
        });
        let named = |i: usize, host: &str| crate::conf::host_matches(host, &names[i], &aliases[i], &wild[i]);
        let walk = |host: &str| (0..2000).find(|&i| named(i, host));
        for host in
            ["site0.example.net", "site1999.example.net", "alias5.test", "alias699.test", "a.d7.test", "x.y.d49.test"]
                .into_iter()
                .chain(["nothing.test", "d7.test"])
        {
            assert_eq!(idx.find(host, |i| named(i, host)), walk(host), "{host}");
        }
        assert_eq!(idx.len(), 2000);
    }

    /// httpd's walk with `first` looked at before the address's list (the list itself unchanged).
    fn walk_from(vhosts: &[Vhost], first: usize, host: &str) -> Option<usize> {
        if names(vhosts, first, host) { Some(first) } else { walk(vhosts, host) }
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
        let owns = |host: &str| idx.find_owner(host, |i| names(vhosts, i, host)).map(|(_, owns)| owns);
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

    /// The maps hold digests: a vhost they offer that does not match (two names sharing a
    /// digest) sends the lookup on the walk, which finds the right one.
    #[test]
    fn a_vhost_offered_that_does_not_match_means_the_walk() {
        let vhosts: &[Vhost] = &[("a.test", &[], &[]), ("b.test", &[], &["*.c.test"]), ("a.test", &[], &[])];
        let idx = index(vhosts);
        // As if vhost 0's name only shared its digest with the host's: not a match.
        assert_eq!(idx.find("a.test", |i| i == 2), Some(2));
        assert_eq!(idx.find("x.c.test", |i| i == 0), Some(0), "the same for a wildcard");
        assert_eq!(idx.find("a.test", |i| names(vhosts, i, "a.test")), Some(0));
        assert_eq!(idx.find("nothing.test", |_| false), None, "nothing offered, nothing walked");
    }
}
