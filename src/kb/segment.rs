//! Chinese word segmentation for the full-text index: jieba plus a user dictionary.
//!
//! One [`Segmenter`] serves both sides of the index: tantivy's tokenizer (through
//! [`Segmenter::tokenizer`]) and the query side ([`Segmenter::query_terms`]). Using the
//! same cut on both sides is what makes a query term meet the indexed term.
//!
//! jieba alone cuts 自伤 into 自/伤, so domain words come from the built-in
//! dictionary `examples/kb/userdict.txt` plus an optional file named in the config.
//! Search mode also emits the dictionary words inside a long word (刻板行为 gives
//! 刻板, 行为 and 刻板行为), so a query for 刻板 still meets a document about 刻板行为.

use crate::kb::{ImportError, StoreError};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use jieba_rs::{Jieba, TokenizeMode};
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

use super::Error;
use super::homophones::Homophones;
use super::synonyms::{self, Synonyms};

/// The dictionary compiled into the binary (`examples/kb/userdict.txt`).
pub const BUILTIN_DICTIONARY: &str = include_str!("../../examples/kb/userdict.txt");

/// Function words that carry no topic: dropped from queries and from the index.
const STOP_WORDS: &[&str] = &[
    "的",
    "了",
    "吗",
    "呢",
    "吧",
    "啊",
    "呀",
    "是",
    "在",
    "和",
    "与",
    "及",
    "或",
    "我",
    "你",
    "他",
    "她",
    "它",
    "我们",
    "你们",
    "他们",
    "这",
    "那",
    "这个",
    "那个",
    "有",
    "也",
    "都",
    "就",
    "还",
    "又",
    "被",
    "把",
    "让",
    "给",
    "对",
    "从",
    "要",
    "会",
    "能",
    "可以",
    "该",
    "应该",
    "一个",
    "一些",
    "什么",
    "怎么",
    "怎么办",
    "怎样",
    "如何",
    "为什么",
    "哪些",
    "是否",
    "吗",
    "么",
    "得",
    "地",
    "着",
    "过",
    "个",
    "等",
    "请问",
    "a",
    "an",
    "the",
    "of",
    "to",
    "and",
    "or",
    "is",
    "are",
    "in",
    "on",
    "for",
    "how",
    "what",
    "why",
    "do",
    "does",
    "i",
    "my",
];

/// Words dropped from queries only (not from the index): they say how a question is
/// asked, not what about. Dropped unless nothing else is left. Interrogatives (哪里,
/// 多少, 几个 …) are among them, as 什么, 怎么 and 哪些 are stop words: a question that
/// shares only its question word with an entry (房贷利率是多少) is not about that entry.
const FILLER: &[&str] = &[
    "我家",
    "我们",
    "总是",
    "老是",
    "一直",
    "经常",
    "特别",
    "非常",
    "有点",
    "到底",
    "这种",
    "这样",
    "那样",
    "咋办",
    "咋",
    "啥",
    "怎么样",
    "是不是",
    "有没有",
    "能不能",
    "要不要",
    "会不会",
    "可不可以",
    "一下",
    "哪里",
    "哪儿",
    "哪个",
    "哪种",
    "多少",
    "几",
    "几个",
    "多久",
    "谁",
    "现在",
    "请教",
    "想问",
    "问问",
    "大家",
    "办",
    "好",
    "please",
    "can",
    "should",
];

/// The most synonyms a query word is searched with (operator groups first, then the
/// built-in ones): a word in many synsets (训练 is in six) would otherwise add dozens
/// of clauses to every query, each a posting list to read.
const MAX_SYNONYMS: usize = 8;

/// One word of a query with what may stand in for it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryTerm {
    /// The word, as the index has it.
    pub word: String,
    /// Equivalent words from the operator's synonym groups (`kb.synonyms`).
    pub synonyms: Vec<String>,
    /// Related words from the built-in groups (the Chinese Open Wordnet), weighted below
    /// `synonyms`: a general-language synset mixes senses, so a match through it is less sure.
    pub related: Vec<String>,
    /// The word's character bigrams (none for one-character words).
    pub bigrams: Vec<String>,
    /// The word's Han characters.
    pub unigrams: Vec<String>,
}

/// A shared jieba instance with the user dictionaries loaded.
///
/// Cloning is cheap: the dictionary lives behind an [`Arc`], which matters because
/// tantivy clones its tokenizer for every indexing thread and segment.
///
/// jieba's dictionary takes about 35 MiB and 80 ms to load, so it is loaded on
/// the first cut, not when the store opens: a server that only relays direct
/// answers never pays for it. The user dictionaries are read and checked up
/// front, so a bad line still fails at start-up.
#[derive(Clone)]
pub struct Segmenter {
    /// The dictionary, loaded on first use.
    jieba: Arc<OnceLock<Jieba>>,
    /// The user words, checked, waiting to be added on load.
    user_words: Arc<Vec<UserWord>>,
    /// The operator's synonym groups (`kb.synonyms`) for query expansion.
    synonyms: Arc<Synonyms>,
    /// Whether queries are also expanded with the built-in groups ([`synonyms::builtin`]).
    builtin_synonyms: bool,
    /// The user words and synonym terms, for reading homophone slips in queries.
    homophones: Arc<Homophones>,
}

/// One `WORD [FREQ] [TAG]` line of a user dictionary.
#[derive(Debug, Clone)]
struct UserWord {
    /// The word.
    word: String,
    /// Its frequency, if given.
    freq: Option<usize>,
    /// Its part-of-speech tag, if given.
    tag: Option<String>,
}

impl std::fmt::Debug for Segmenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segmenter").finish_non_exhaustive()
    }
}

impl Segmenter {
    /// Reads the built-in domain words and `extra`, if given; jieba's own
    /// dictionary is loaded on the first cut.
    pub fn new(extra: Option<&Path>) -> Result<Self, Error> {
        Self::with_synonyms(extra, Synonyms::default())
    }

    /// [`Segmenter::new`] with an operator's synonym groups for queries, on top of the
    /// built-in ones; their terms are kept whole (the built-in terms are not added to the
    /// dictionary: they would change how every indexed text is cut).
    pub fn with_synonyms(extra: Option<&Path>, synonyms: Synonyms) -> Result<Self, Error> {
        let mut user_words = parse_words(BUILTIN_DICTIONARY, "built-in user dictionary")?;
        if let Some(path) = extra {
            let text = std::fs::read_to_string(path).map_err(|source| {
                Error::Store(StoreError::Io {
                    path: path.display().to_string(),
                    source,
                })
            })?;
            user_words.extend(parse_words(&text, &path.display().to_string())?);
        }
        for term in synonyms.terms() {
            if term.chars().count() > 1 && !user_words.iter().any(|w| w.word == term) {
                user_words.push(UserWord {
                    word: term.to_owned(),
                    freq: None,
                    tag: None,
                });
            }
        }
        let homophones = Homophones::new(
            user_words
                .iter()
                .map(|w| w.word.as_str())
                .chain(synonyms.terms()),
        );
        Ok(Self {
            jieba: Arc::new(OnceLock::new()),
            homophones: Arc::new(homophones),
            user_words: Arc::new(user_words),
            synonyms: Arc::new(synonyms),
            builtin_synonyms: true,
        })
    }

    /// The segmenter a store uses under `cfg`: its user dictionary (`kb.user_dictionary`),
    /// synonym groups (`kb.synonyms`) and built-in groups (`kb.builtin_synonyms`).
    pub fn from_config(cfg: &super::config::KbConfig) -> Result<Self, Error> {
        let synonyms = Synonyms::load(cfg.synonyms.as_deref())?;
        Ok(
            Self::with_synonyms(cfg.user_dictionary.as_deref(), synonyms)?
                .builtin_synonyms(cfg.builtin_synonyms),
        )
    }

    /// Turns expansion with the built-in synonym groups on or off (`kb.builtin_synonyms`).
    pub fn builtin_synonyms(mut self, on: bool) -> Self {
        self.builtin_synonyms = on;
        self
    }

    /// The words that may stand in for `word`: the operator's synonyms and the built-in
    /// related words, without repeats or words of the query itself, at most
    /// [`MAX_SYNONYMS`] together (the operator's first).
    fn synonyms_of(&self, word: &str, query: &[String]) -> (Vec<String>, Vec<String>) {
        let fresh = |s: &str, taken: &[String]| {
            !query.iter().any(|w| w == s) && !taken.iter().any(|o| o == s)
        };
        let mut synonyms: Vec<String> = Vec::new();
        for s in self.synonyms.of(word) {
            if synonyms.len() < MAX_SYNONYMS && fresh(s, &synonyms) {
                synonyms.push(s.to_owned());
            }
        }
        let mut related: Vec<String> = Vec::new();
        if self.builtin_synonyms {
            for s in synonyms::builtin().of(word) {
                if synonyms.len() + related.len() < MAX_SYNONYMS
                    && fresh(s, &synonyms)
                    && fresh(s, &related)
                {
                    related.push(s.to_owned());
                }
            }
        }
        (synonyms, related)
    }

    /// The dictionary, loading it on first use.
    fn jieba(&self) -> &Jieba {
        self.jieba.get_or_init(|| {
            let started = std::time::Instant::now();
            let mut jieba = Jieba::new();
            for word in self.user_words.iter() {
                jieba.add_word(&word.word, word.freq, word.tag.as_deref());
            }
            tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "jieba dictionary loaded"
            );
            jieba
        })
    }

    /// The index-side words of `text`, in order, lower-cased, stop words and punctuation removed.
    pub fn words(&self, text: &str) -> Vec<String> {
        self.jieba()
            .tokenize(text, TokenizeMode::Search, true)
            .into_iter()
            .filter_map(|token| normalize(token.word))
            .collect()
    }

    /// The distinct words of a query, in first-seen order.
    pub fn query_terms(&self, query: &str) -> Vec<String> {
        let mut terms: Vec<String> = Vec::new();
        for word in self.words(query) {
            if !terms.contains(&word) {
                terms.push(word);
            }
        }
        terms
    }

    /// The words of a query with their synonyms and characters: [`Segmenter::query_terms`]
    /// without filler (请问, 我家, 怎么办, 总是 …), unless filler is all there is.
    /// Homophone slips of domain words are read as the words they stand for first
    /// ([`Segmenter::corrected`]).
    pub fn analyze(&self, query: &str) -> Vec<QueryTerm> {
        let query = self.corrected(query);
        let words = self.query_terms(&query);
        let content: Vec<&String> = words
            .iter()
            .filter(|w| !FILLER.contains(&w.as_str()))
            .collect();
        let kept: Vec<&String> = if content.is_empty() {
            words.iter().collect()
        } else {
            content
        };
        // Search mode also yields the dictionary words inside a long word (自闭 in
        // 自闭症); as query terms they would count the same evidence twice.
        let kept: Vec<&String> = kept
            .iter()
            .filter(|w| {
                !kept
                    .iter()
                    .any(|o| o.len() > w.len() && o.contains(w.as_str()))
            })
            .copied()
            .collect();
        kept.into_iter()
            .map(|word| {
                let chars: Vec<char> = word.chars().filter(|c| is_han(*c)).collect();
                let (synonyms, related) = self.synonyms_of(word, &words);
                QueryTerm {
                    synonyms,
                    related,
                    bigrams: chars.windows(2).map(|p| p.iter().collect()).collect(),
                    unigrams: chars.iter().map(char::to_string).collect(),
                    word: word.clone(),
                }
            })
            .collect()
    }

    /// `query` with each homophone slip of a domain word (自闭证, 刻扳) replaced by the
    /// word (自闭症, 刻板); see [`crate::kb::homophones`]. Borrowed when there is none.
    pub fn corrected<'q>(&self, query: &'q str) -> std::borrow::Cow<'q, str> {
        let jieba = self.jieba();
        let slips = self.homophones.slips(
            query,
            |word| jieba.has_word(word),
            || {
                let mut at = 0;
                jieba
                    .cut(query, true)
                    .iter()
                    .map(|token| {
                        let from = at;
                        at += token.word.chars().count();
                        (from, at)
                    })
                    .collect()
            },
        );
        if slips.is_empty() {
            return std::borrow::Cow::Borrowed(query);
        }
        let mut out = String::with_capacity(query.len());
        let mut slips = slips.iter().peekable();
        let mut skip = 0;
        for (i, c) in query.chars().enumerate() {
            if let Some(slip) = slips.next_if(|s| s.start == i) {
                tracing::debug!(typed = %slip.typed, word = %slip.word, "query: homophone slip read as a domain word");
                out.push_str(&slip.word);
                skip = slip.len;
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            out.push(c);
        }
        std::borrow::Cow::Owned(out)
    }

    /// A tantivy tokenizer that cuts exactly as [`Segmenter::words`] does.
    pub fn tokenizer(&self) -> JiebaTokenizer {
        JiebaTokenizer {
            segmenter: self.clone(),
        }
    }
}

/// Whether `c` is a CJK ideograph (the characters the character fields index).
pub(crate) fn is_han(c: char) -> bool {
    matches!(c, '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}')
}

/// A tantivy tokenizer emitting every Han character and every pair of adjacent Han
/// characters, so that texts sharing characters but not words (撞墙, 撞头) still
/// share evidence.
#[derive(Clone, Debug, Default)]
pub struct CharTokenizer;

impl Tokenizer for CharTokenizer {
    type TokenStream<'a> = WordStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordStream {
        let mut tokens = Vec::new();
        let mut previous: Option<(usize, char)> = None;
        for (position, (offset, c)) in text.char_indices().enumerate() {
            if !is_han(c) {
                previous = None;
                continue;
            }
            let end = offset + c.len_utf8();
            tokens.push(Token {
                offset_from: offset,
                offset_to: end,
                position,
                text: c.to_string(),
                position_length: 1,
            });
            if let Some((start, p)) = previous {
                tokens.push(Token {
                    offset_from: start,
                    offset_to: end,
                    position,
                    text: [p, c].iter().collect(),
                    position_length: 1,
                });
            }
            previous = Some((offset, c));
        }
        WordStream {
            tokens,
            next: 0,
            current: Token::default(),
        }
    }
}

/// Parses each `WORD [FREQ] [TAG]` line of a jieba user dictionary.
fn parse_words(text: &str, origin: &str) -> Result<Vec<UserWord>, Error> {
    let mut words = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let word = fields.next().unwrap_or_default();
        let freq = match fields.next() {
            None => None,
            Some(raw) => Some(raw.parse::<usize>().map_err(|_| Error::Import(ImportError::Parse {
                path: origin.to_owned(),
                line: index + 1,
                message: format!(
                    "expected `WORD [FREQUENCY] [TAG]`, but frequency `{raw}` is not a whole number"
                ),
            }))?),
        };
        words.push(UserWord {
            word: word.to_owned(),
            freq,
            tag: fields.next().map(str::to_owned),
        });
    }
    Ok(words)
}

/// Lower-cases a word, or drops it when it is a stop word or holds no letter or digit.
fn normalize(word: &str) -> Option<String> {
    if !word.chars().any(char::is_alphanumeric) {
        return None;
    }
    let word = word.to_lowercase();
    if STOP_WORDS.contains(&word.as_str()) {
        return None;
    }
    Some(word)
}

/// The tantivy side of a [`Segmenter`].
#[derive(Clone, Debug)]
pub struct JiebaTokenizer {
    /// The shared segmenter.
    segmenter: Segmenter,
}

impl Tokenizer for JiebaTokenizer {
    type TokenStream<'a> = WordStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordStream {
        let tokens = self
            .segmenter
            .jieba()
            .tokenize(text, TokenizeMode::Search, true)
            .into_iter()
            .filter_map(|token| {
                normalize(token.word).map(|word| Token {
                    offset_from: token.byte_start,
                    offset_to: token.byte_end,
                    position: token.start,
                    text: word,
                    position_length: token.end - token.start,
                })
            })
            .collect();
        WordStream {
            tokens,
            next: 0,
            current: Token::default(),
        }
    }
}

/// The words of one text, handed to tantivy one at a time.
#[derive(Debug)]
pub struct WordStream {
    /// All tokens, cut up front.
    tokens: Vec<Token>,
    /// Index of the next token to hand out.
    next: usize,
    /// The token handed out last.
    current: Token,
}

impl TokenStream for WordStream {
    fn advance(&mut self) -> bool {
        match self.tokens.get_mut(self.next) {
            Some(token) => {
                self.current = std::mem::take(token);
                self.next += 1;
                true
            }
            None => false,
        }
    }

    fn token(&self) -> &Token {
        &self.current
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segmenter() -> Segmenter {
        Segmenter::new(None).unwrap()
    }

    #[test]
    fn domain_words_from_the_builtin_dictionary_stay_whole() {
        let words = segmenter().words("自闭症孩子自伤怎么办");
        assert!(words.contains(&"自伤".to_owned()), "{words:?}");
        assert!(words.contains(&"自闭症".to_owned()), "{words:?}");
        assert!(!words.contains(&"伤".to_owned()), "{words:?}");
    }

    #[test]
    fn the_abbreviation_ganshou_stays_whole_inside_a_question() {
        // Without 感统 in the built-in dictionary jieba cuts 上感统课 into 上感/统/课
        // (上感 is a dictionary word), and 感统 meets nothing (issue 11).
        let words = segmenter().words("每周上感统课有用吗");
        assert!(words.contains(&"感统".to_owned()), "{words:?}");
        let words = segmenter().words("感统训练");
        assert!(words.contains(&"感统".to_owned()), "search mode: {words:?}");
    }

    #[test]
    fn han_text_is_cut_into_words_not_one_token_per_run() {
        let words = segmenter().words("孩子有刻板行为");
        assert!(words.contains(&"孩子".to_owned()), "{words:?}");
        assert!(words.contains(&"刻板行为".to_owned()), "{words:?}");
        assert!(
            words.contains(&"刻板".to_owned()),
            "search mode keeps sub-words: {words:?}"
        );
    }

    #[test]
    fn query_terms_drop_stop_words_punctuation_and_repeats() {
        let terms = segmenter().query_terms("孩子的睡眠问题，孩子怎么办？");
        assert_eq!(
            terms.iter().filter(|t| *t == "孩子").count(),
            1,
            "{terms:?}"
        );
        assert!(
            !terms
                .iter()
                .any(|t| t == "的" || t == "，" || t == "怎么办"),
            "{terms:?}"
        );
    }

    #[test]
    fn an_extra_dictionary_adds_words_and_reports_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("words.txt");
        std::fs::write(&good, "# comment\n蓝莓干预法 10 n\n").unwrap();
        let words = Segmenter::new(Some(&good)).unwrap().words("试试蓝莓干预法");
        assert!(words.contains(&"蓝莓干预法".to_owned()), "{words:?}");

        let bad = dir.path().join("bad.txt");
        std::fs::write(&bad, "好词\n坏词 many\n").unwrap();
        let err = Segmenter::new(Some(&bad)).unwrap_err().to_string();
        assert!(err.contains("bad.txt:2:"), "{err}");
    }

    #[test]
    fn filler_leaves_queries_unless_nothing_else_is_left() {
        let s = segmenter();
        let words: Vec<String> = s
            .analyze("请问我家娃总是撞头怎么办")
            .into_iter()
            .map(|t| t.word)
            .collect();
        assert!(
            words.contains(&"撞头".to_owned()) || words.contains(&"撞".to_owned()),
            "{words:?}"
        );
        assert!(
            !words.iter().any(|w| w == "总是" || w == "我家"),
            "{words:?}"
        );
        let only_filler: Vec<String> = s.analyze("总是这样").into_iter().map(|t| t.word).collect();
        assert!(!only_filler.is_empty());
        // Issue 11: interrogatives say how a question is asked, like 什么 and 哪些.
        for (question, dropped) in [("周末带孩子去哪里玩", "哪里"), ("房贷利率是多少", "多少")]
        {
            let words: Vec<String> = s.analyze(question).into_iter().map(|t| t.word).collect();
            assert!(!words.iter().any(|w| w == dropped), "{question}: {words:?}");
            assert!(!words.is_empty(), "{question}");
        }
        let alone: Vec<String> = s.analyze("多少").into_iter().map(|t| t.word).collect();
        assert_eq!(alone, ["多少"]);
    }

    #[test]
    fn homophone_slips_of_domain_words_are_read_as_the_words() {
        let dir = tempfile::tempdir().unwrap();
        let words = dir.path().join("words.txt");
        std::fs::write(&words, "喘息服务\n").unwrap();
        let mut groups = Synonyms::default();
        groups.add("言语康复 言语治疗\n", "t").unwrap();
        let s = Segmenter::with_synonyms(Some(&words), groups).unwrap();
        // The built-in dictionary, the operator's dictionary and synonym terms.
        assert_eq!(s.corrected("孩子总是自商怎么办"), "孩子总是自伤怎么办");
        assert_eq!(s.corrected("哪里有喘西服务"), "哪里有喘息服务");
        assert_eq!(s.corrected("言语康付多少钱"), "言语康复多少钱");
        assert_eq!(s.analyze("自商")[0].word, "自伤");
        // A dictionary word of the question reaching into the stretch keeps it.
        assert!(matches!(
            s.corrected("我自上周开始失眠"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn query_terms_carry_synonyms_and_characters() {
        let mut groups = Synonyms::default();
        groups.add("撞头 撞墙\n", "t").unwrap();
        let s = Segmenter::with_synonyms(None, groups).unwrap();
        let terms = s.analyze("撞墙");
        assert_eq!(terms.len(), 1, "{terms:?}");
        assert_eq!(terms[0].word, "撞墙");
        assert_eq!(terms[0].synonyms, ["撞头"]);
        assert_eq!(terms[0].bigrams, ["撞墙"]);
        assert_eq!(terms[0].unigrams, ["撞", "墙"]);
    }

    #[test]
    fn builtin_synonyms_expand_queries_after_the_operator_ones_and_can_be_turned_off() {
        let mut groups = Synonyms::default();
        groups.add("医生 医护\n", "t").unwrap();
        let s = Segmenter::with_synonyms(None, groups).unwrap();
        let terms = s.analyze("医生");
        // The operator's synonym, then the Chinese Open Wordnet's related words (医师, 大夫).
        assert_eq!(terms[0].synonyms, ["医护"]);
        assert!(terms[0].related.contains(&"大夫".to_owned()), "{terms:?}");
        // 训练 is in six synsets: the expansion is capped.
        let training = &s.analyze("训练")[0];
        assert_eq!(training.related.len(), MAX_SYNONYMS, "{training:?}");
        let off = s.clone().builtin_synonyms(false);
        let terms = off.analyze("医生");
        assert_eq!(
            (terms[0].synonyms.as_slice(), terms[0].related.len()),
            (&["医护".to_owned()][..], 0)
        );
    }

    #[test]
    fn the_char_tokenizer_emits_characters_and_pairs_within_han_runs() {
        let mut t = CharTokenizer;
        let mut stream = t.token_stream("撞头，ab咬手");
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        assert_eq!(out, ["撞", "头", "撞头", "咬", "手", "咬手"]);
    }

    #[test]
    fn english_words_are_lower_cased() {
        assert_eq!(segmenter().words("ABA Therapy"), ["aba", "therapy"]);
    }
}
