//! Synonyms for query expansion: groups of equivalent terms, one group a line.
//!
//! Two sources, both in this format:
//! - the built-in groups ([`builtin`]), derived from the Chinese Open Wordnet
//!   (`resources/cow/`, licence and provenance in its README), compiled into the binary
//!   and parsed once, on the first query that needs them, then shared;
//! - an operator's file named with `kb.synonyms` (the sample's is
//!   `examples/kb/synonyms.txt`: 娃/孩子/宝宝, 撞头/撞墙, …), added on top.
//!
//! A query word found in a group is searched for with the group's other words too,
//! weighted below the word itself.

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use crate::kb::{Error, ImportError, StoreError};

/// The built-in groups (`resources/cow/synonyms.txt`, derived from the Chinese Open
/// Wordnet by `scripts/derive-cow-synonyms`).
pub const BUILTIN: &str = include_str!("../../resources/cow/synonyms.txt");

/// The built-in groups, parsed on first use and shared by every store and segmenter
/// (about 11,700 groups; parsing them costs a few milliseconds, once).
pub fn builtin() -> &'static Synonyms {
    static PARSED: OnceLock<Synonyms> = OnceLock::new();
    PARSED.get_or_init(|| {
        let mut synonyms = Synonyms::default();
        // The file is checked by a test; should it ever fail to parse, searching
        // without it beats failing every query.
        if let Err(err) = synonyms.add(BUILTIN, "resources/cow/synonyms.txt") {
            tracing::error!(%err, "built-in synonyms unusable; searching without them");
            synonyms = Synonyms::default();
        }
        synonyms
    })
}

/// Groups of equivalent terms, indexed by term.
#[derive(Debug, Clone, Default)]
pub struct Synonyms {
    /// Each group's terms, lower-cased.
    groups: Vec<Vec<String>>,
    /// Term → the groups it is in.
    by_term: HashMap<String, Vec<usize>>,
}

impl Synonyms {
    /// The groups in `file`, or none.
    pub fn load(file: Option<&Path>) -> Result<Self, Error> {
        let mut synonyms = Self::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| {
                Error::Store(StoreError::Io {
                    path: path.display().to_string(),
                    source,
                })
            })?;
            synonyms.add(&text, &path.display().to_string())?;
        }
        Ok(synonyms)
    }

    /// Adds the groups of `text`: one group a line, terms separated by spaces or
    /// commas, `#` starts a comment line.
    pub fn add(&mut self, text: &str, origin: &str) -> Result<(), Error> {
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut group: Vec<String> = Vec::new();
            for term in line.split(|c: char| c.is_whitespace() || c == ',' || c == '，') {
                let term = term.trim().to_lowercase();
                if !term.is_empty() && !group.contains(&term) {
                    group.push(term);
                }
            }
            if group.len() < 2 {
                return Err(Error::Import(ImportError::Parse {
                    path: origin.to_owned(),
                    line: index + 1,
                    message: format!(
                        "a synonym line needs at least two terms separated by spaces or commas, got `{line}`"
                    ),
                }));
            }
            let id = self.groups.len();
            for term in &group {
                self.by_term.entry(term.clone()).or_default().push(id);
            }
            self.groups.push(group);
        }
        Ok(())
    }

    /// Every term of every group (to keep them whole in segmentation).
    pub fn terms(&self) -> impl Iterator<Item = &str> {
        self.by_term.keys().map(String::as_str)
    }

    /// The other terms equivalent to `term`, without repeats.
    pub fn of(&self, term: &str) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for &id in self.by_term.get(term).into_iter().flatten() {
            for other in &self.groups[id] {
                if other != term && !out.contains(&other.as_str()) {
                    out.push(other);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_term_expands_to_the_rest_of_its_groups() {
        let mut s = Synonyms::default();
        s.add("# comment\n娃 孩子 宝宝\n孩子,儿童\n", "t").unwrap();
        assert_eq!(s.of("娃"), ["孩子", "宝宝"]);
        assert_eq!(s.of("孩子"), ["娃", "宝宝", "儿童"]);
        assert!(s.of("天气").is_empty());
    }

    #[test]
    fn a_line_with_one_term_is_an_error_naming_the_line() {
        let err = Synonyms::default()
            .add("a b\n孤单\n", "my.txt")
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("my.txt") && msg.contains('2'), "{msg}");
    }

    #[test]
    fn the_builtin_groups_parse_and_hold_everyday_equivalents() {
        let cow = builtin();
        assert!(cow.of("孩子").contains(&"小孩"), "{:?}", cow.of("孩子"));
        assert!(cow.of("失眠").contains(&"失眠症"), "{:?}", cow.of("失眠"));
        assert!(cow.of("医生").contains(&"大夫"), "{:?}", cow.of("医生"));
        // Single characters are too ambiguous to stand in for one another.
        assert!(cow.of("打").is_empty(), "{:?}", cow.of("打"));
        assert!(cow.terms().all(|t| t.chars().count() >= 2));
        assert!(std::ptr::eq(cow, builtin()), "parsed once, shared");
    }

    #[test]
    fn the_sample_groups_parse() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kb/synonyms.txt");
        let s = Synonyms::load(Some(&path)).unwrap();
        assert!(s.of("撞墙").contains(&"撞头"), "{:?}", s.of("撞墙"));
        assert!(Synonyms::load(None).unwrap().of("撞墙").is_empty());
    }
}
