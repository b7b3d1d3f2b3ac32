//! The suites a `TLSCiphersPrefer` / `TLSCiphersSuppress` line names in one scope ([`CipherList`]).

use super::{Located, Origin};

/// `TLSCiphersPrefer` / `TLSCiphersSuppress` (and their `TLSProxy*` twins) in one scope: the
/// suites of the last line written here. A later line replaces an earlier one, as the C module and
/// mod_ssl's `SSLCipherSuite` do; the words of one line add up. `default` (or `none`) names no
/// suite; as in the C module, a scope that names none inherits the enclosing scope's.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct CipherList {
    /// Where the line in effect was written; `None` while not written in this scope.
    line: Option<Origin>,
    ids: Vec<Located<u16>>,
}

impl CipherList {
    /// The suites, in the order written.
    pub fn ids(&self) -> &[Located<u16>] {
        &self.ids
    }

    /// Whether `word` is the keyword that names no suite.
    pub fn is_keyword(word: &str) -> bool {
        word.eq_ignore_ascii_case("default") || word.eq_ignore_ascii_case("none")
    }

    /// Adds the suites of one word of the line written at `origin` (none for the keyword): the
    /// first word of a new line replaces what earlier lines set.
    pub fn add(&mut self, ids: Vec<u16>, origin: &Origin) {
        if self.line.as_ref() != Some(origin) {
            self.ids.clear();
            self.line = Some(origin.clone());
        }
        self.ids.extend(ids.into_iter().map(|value| Located { value, origin: origin.clone() }));
    }

    /// `add` (a vhost or section) on top of `base`: its own suites, if it names any.
    pub fn merge(base: &CipherList, add: &CipherList) -> CipherList {
        if add.ids.is_empty() { base.clone() } else { add.clone() }
    }

    #[cfg(test)]
    pub fn of(ids: &[u16]) -> CipherList {
        let origin = Origin { file: "t.conf".into(), line: 1 };
        let mut l = CipherList::default();
        l.add(ids.to_vec(), &origin);
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_cipher_line_replaces_and_the_keyword_names_none() {
        let at = |line| Origin { file: "h.conf".into(), line };
        let ids = |l: &CipherList| l.ids().iter().map(|l| l.value).collect::<Vec<_>>();
        let mut l = CipherList::default();
        l.add(vec![0x1301], &at(1));
        l.add(vec![0x1302], &at(1));
        assert_eq!(ids(&l), [0x1301, 0x1302], "the words of one line add up");
        l.add(vec![0x1303], &at(2));
        assert_eq!(ids(&l), [0x1303], "a later line replaces");
        let base = CipherList::of(&[0x1301]);
        assert_eq!(ids(&CipherList::merge(&base, &CipherList::default())), [0x1301], "inherited");
        let mut none = CipherList::default();
        none.add(Vec::new(), &at(3));
        assert_eq!(ids(&CipherList::merge(&base, &none)), [0x1301], "'default' names none: inherited, as in C");
        l.add(Vec::new(), &at(4));
        assert!(l.ids().is_empty(), "a later 'default' line replaces the earlier lines");
        assert!(CipherList::is_keyword("Default") && CipherList::is_keyword("none"));
    }
}
