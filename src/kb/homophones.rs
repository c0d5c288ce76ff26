//! Homophone slips of domain words in queries: 自闭证 for 自闭症, 刻扳 for 刻板.
//!
//! Chinese is typed through pinyin input methods, so the common typo is not a wrong
//! key but a wrong character with the same sound, picked from the candidate list.
//! Such a slip breaks the word for jieba (自闭证 is cut 自闭/证是), so neither the word
//! nor its bigrams meet the entries that hold the right word.
//!
//! A stretch of a query is read as a slip of a domain word (the user dictionaries and
//! the operator's synonym terms: the words an operator declared important) when:
//! - it has the word's length, every character either the word's own or one with a
//!   common toneless reading (pinyin), and at least half of them the word's own;
//! - it is not a word of jieba's dictionary itself (自惭 stays 自惭, not 自残);
//! - no dictionary word of the query's own cut reaches into it from outside: in
//!   我自上周开始 the stretch 自上 sounds like 自伤, but 上周 is a word, so the query
//!   is left alone. The tokens a slip leaves behind are single characters or words
//!   jieba's HMM invented (证是, 有刻), which are not dictionary words.
//!
//! The matching is ragstream's own (a small index of domain words by length,
//! position and character); readings come from the `pinyin` crate.

use std::collections::HashMap;

use pinyin::ToPinyinMulti;

/// The domain words a query is checked against, indexed for lookup by a character
/// they hold at a position.
#[derive(Debug, Default)]
pub struct Homophones {
    /// The words, as characters.
    words: Vec<Vec<char>>,
    /// `(length, position, character)` → indices into `words`.
    index: HashMap<(usize, usize, char), Vec<usize>>,
    /// The distinct word lengths, longest first.
    lengths: Vec<usize>,
}

/// A stretch of a query read as a slip of a domain word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slip {
    /// The first character of the stretch (an index into the query's characters).
    pub start: usize,
    /// The stretch's length in characters.
    pub len: usize,
    /// The stretch as typed.
    pub typed: String,
    /// The domain word it stands for.
    pub word: String,
}

/// The longest domain word considered: slips of longer phrases are rare, and the
/// scan is per length.
const MAX_LEN: usize = 8;

impl Homophones {
    /// Indexes the words of two to eight Han characters among `words`.
    pub fn new<'a>(words: impl IntoIterator<Item = &'a str>) -> Self {
        let mut out = Self::default();
        for word in words {
            let chars: Vec<char> = word.chars().collect();
            if !(2..=MAX_LEN).contains(&chars.len())
                || !chars.iter().all(|c| super::segment::is_han(*c))
                || out.words.contains(&chars)
            {
                continue;
            }
            let id = out.words.len();
            for (position, c) in chars.iter().enumerate() {
                out.index
                    .entry((chars.len(), position, *c))
                    .or_default()
                    .push(id);
            }
            if !out.lengths.contains(&chars.len()) {
                out.lengths.push(chars.len());
            }
            out.words.push(chars);
        }
        out.lengths.sort_unstable_by(|a, b| b.cmp(a));
        out
    }

    /// The stretches of `query` that are slips of a domain word, in query order, none
    /// overlapping another (longer words are tried first). `is_word` says whether a
    /// text is a dictionary word; `cut` gives the query's own tokens as character
    /// ranges, and is called only once a stretch sounds like a domain word.
    pub fn slips(
        &self,
        query: &str,
        is_word: impl Fn(&str) -> bool,
        cut: impl FnOnce() -> Vec<(usize, usize)>,
    ) -> Vec<Slip> {
        if self.words.is_empty() {
            return Vec::new();
        }
        let chars: Vec<char> = query.chars().collect();
        let mut cut = Some(cut);
        let mut tokens: Vec<(usize, usize)> = Vec::new();
        let mut slips: Vec<Slip> = Vec::new();
        // Characters already read as part of a slip: a stretch never overlaps one.
        let mut taken = vec![false; chars.len()];
        for &len in &self.lengths {
            for start in 0..chars.len().saturating_sub(len - 1) {
                let end = start + len;
                if taken[start..end].iter().any(|&t| t) {
                    continue;
                }
                let Some(word) = self.sounding_like(&chars[start..end]) else {
                    continue;
                };
                if let Some(cut) = cut.take() {
                    tokens = cut();
                }
                let typed: String = chars[start..end].iter().collect();
                let reached_into = tokens.iter().any(|&(from, to)| {
                    from < end && start < to && (from < start || to > end) && to - from > 1 && {
                        let token: String = chars[from..to].iter().collect();
                        is_word(&token)
                    }
                });
                if !reached_into && !is_word(&typed) {
                    taken[start..end].fill(true);
                    slips.push(Slip {
                        start,
                        len,
                        typed,
                        word: self.words[word].iter().collect(),
                    });
                }
            }
        }
        slips.sort_by_key(|s| s.start);
        slips
    }

    /// The domain word `stretch` sounds like, if any: same length, a common reading
    /// for every character, at least half of the characters the same, not all.
    fn sounding_like(&self, stretch: &[char]) -> Option<usize> {
        if !stretch.iter().all(|c| super::segment::is_han(*c)) {
            return None;
        }
        let len = stretch.len();
        let mut seen: Vec<usize> = Vec::new();
        for (position, c) in stretch.iter().enumerate() {
            let Some(ids) = self.index.get(&(len, position, *c)) else {
                continue;
            };
            for &id in ids {
                if seen.contains(&id) {
                    continue;
                }
                seen.push(id);
                let word = &self.words[id];
                let same = word.iter().zip(stretch).filter(|(a, b)| a == b).count();
                if same < len && 2 * same >= len && sounds_alike(word, stretch) {
                    return Some(id);
                }
            }
        }
        None
    }
}

/// Whether each pair of characters is the same or shares a toneless reading.
fn sounds_alike(word: &[char], stretch: &[char]) -> bool {
    word.iter()
        .zip(stretch)
        .all(|(a, b)| a == b || share_reading(*a, *b))
}

/// Whether two characters have a toneless pinyin reading in common (heteronyms count
/// every reading: 行 is xing and hang).
fn share_reading(a: char, b: char) -> bool {
    let (Some(a), Some(b)) = (a.to_pinyin_multi(), b.to_pinyin_multi()) else {
        return false;
    };
    a.into_iter()
        .any(|x| b.into_iter().any(|y| x.plain() == y.plain()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain() -> Homophones {
        Homophones::new(["自闭症", "刻板", "刻板行为", "自伤", "自残", "挑食", "感统"])
    }

    /// Tokens by a fixed cut, given as the token texts in order.
    fn ranges(tokens: &[&str]) -> Vec<(usize, usize)> {
        let mut at = 0;
        tokens
            .iter()
            .map(|t| {
                let from = at;
                at += t.chars().count();
                (from, at)
            })
            .collect()
    }

    fn words(list: &'static [&'static str]) -> impl Fn(&str) -> bool {
        move |w| list.contains(&w)
    }

    #[test]
    fn a_homophone_slip_of_a_domain_word_is_found() {
        let slips = domain().slips("自闭证是种啥病", words(&["自闭", "种"]), || {
            ranges(&["自闭", "证是", "种", "啥病"])
        });
        assert_eq!(
            slips,
            vec![Slip {
                start: 0,
                len: 3,
                typed: "自闭证".into(),
                word: "自闭症".into()
            }]
        );
    }

    #[test]
    fn the_longest_domain_word_wins() {
        let slips = domain().slips("有刻扳行为", words(&["行为"]), || {
            ranges(&["有刻", "扳", "行为"])
        });
        assert_eq!(slips.len(), 1, "{slips:?}");
        assert_eq!(slips[0].word, "刻板行为");
        assert_eq!(slips[0].start, 1);
    }

    #[test]
    fn a_dictionary_word_reaching_into_the_stretch_keeps_the_query() {
        // 自上 sounds like 自伤, but 上周 is a word of the query.
        let slips = domain().slips("我自上周开始", words(&["上周", "开始"]), || {
            ranges(&["我", "自", "上周", "开始"])
        });
        assert!(slips.is_empty(), "{slips:?}");
    }

    #[test]
    fn a_dictionary_word_is_not_a_slip() {
        let slips = domain().slips("自惭形秽", words(&["自惭", "形秽"]), || {
            ranges(&["自惭", "形秽"])
        });
        assert!(slips.is_empty(), "{slips:?}");
    }

    #[test]
    fn the_right_word_and_other_sounds_are_left_alone() {
        let d = domain();
        let none = |q: &str| d.slips(q, |_| false, Vec::new).is_empty();
        assert!(none("自闭症是种啥病"));
        // Same sound but no character in common with 挑食: not a slip.
        assert!(none("条实"));
        // One character of two in common but another sound: not a slip.
        assert!(none("刻苦"));
    }
}
