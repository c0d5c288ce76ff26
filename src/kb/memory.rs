//! An in-memory store loaded from a JSONL file of question/answer documents.
//!
//! Scoring is the Dice coefficient of character bigrams between the query and
//! each document's question (answers count at half weight). Bigrams need no word
//! segmentation, so Chinese queries match without a tokenizer; it is meant for
//! small bases and tests, not for ranking thousands of documents.

use std::collections::HashSet;
use std::path::Path;

use async_trait::async_trait;
use serde::Deserialize;

use super::{Error, Hit, KnowledgeBase, SearchParams};

/// One line of the JSONL input.
#[derive(Debug, Deserialize)]
struct Line {
    /// Optional stable id; defaults to the line number.
    id: Option<String>,
    /// The question the document answers.
    question: String,
    /// The answer text.
    answer: String,
    /// Where the pair came from; defaults to the file name.
    source: Option<String>,
}

/// A document with its precomputed bigrams.
#[derive(Debug)]
struct Entry {
    /// What a hit reports.
    hit: Hit,
    /// Bigrams of the question.
    question_grams: HashSet<(char, char)>,
    /// Bigrams of the answer.
    answer_grams: HashSet<(char, char)>,
}

/// Question/answer documents held in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    /// The documents, in file order.
    entries: Vec<Entry>,
}

impl MemoryStore {
    /// Loads a JSONL file with one `{"question", "answer", "id"?, "source"?}` object per line.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Parses JSONL text; `origin` names it in errors and is the default source.
    pub fn parse(text: &str, origin: &str) -> Result<Self, Error> {
        let mut entries = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let line: Line = serde_json::from_str(raw).map_err(|err| Error::Parse {
                path: origin.to_owned(),
                line: index + 1,
                message: format!("expected {{\"question\": …, \"answer\": …}}: {err}"),
            })?;
            entries.push(Entry {
                question_grams: bigrams(&line.question),
                answer_grams: bigrams(&line.answer),
                hit: Hit {
                    id: line.id.unwrap_or_else(|| (index + 1).to_string()),
                    title: line.question,
                    answer: Some(line.answer),
                    text: String::new(),
                    source: line.source.unwrap_or_else(|| origin.to_owned()),
                    score: 0.0,
                },
            });
        }
        Ok(Self { entries })
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the store holds no documents.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Ranks the documents against `query` (synchronous core of [`KnowledgeBase::search`]).
    pub fn rank(&self, query: &str, params: &SearchParams) -> Vec<Hit> {
        let query = bigrams(query);
        if query.is_empty() {
            return Vec::new();
        }
        let mut scored: Vec<(f32, &Entry)> = self
            .entries
            .iter()
            .map(|entry| {
                let score = dice(&query, &entry.question_grams)
                    .max(0.5 * dice(&query, &entry.answer_grams));
                (score, entry)
            })
            .filter(|(score, _)| *score > 0.0 && *score >= params.min_score)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored
            .into_iter()
            .take(params.top_k)
            .map(|(score, entry)| Hit {
                score,
                ..entry.hit.clone()
            })
            .collect()
    }
}

#[async_trait]
impl KnowledgeBase for MemoryStore {
    async fn search(&self, query: &str, params: &SearchParams) -> Result<Vec<Hit>, Error> {
        Ok(self.rank(query, params))
    }
}

/// Character bigrams of the letters and digits of `text`, lower-cased.
fn bigrams(text: &str) -> HashSet<(char, char)> {
    let chars: Vec<char> = text
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    chars.windows(2).map(|pair| (pair[0], pair[1])).collect()
}

/// Dice coefficient of two bigram sets, in 0..=1.
fn dice(a: &HashSet<(char, char)>, b: &HashSet<(char, char)>) -> f32 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let shared = a.intersection(b).count();
    2.0 * shared as f32 / (a.len() + b.len()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"{"id":"self-injury","question":"自闭症孩子自伤怎么办？","answer":"先保证安全，再找出行为的功能。"}
{"id":"speech","question":"孩子三岁还不说话怎么办？","answer":"尽早做语言评估。"}
"#;

    #[test]
    fn the_closest_question_ranks_first() {
        let store = MemoryStore::parse(BASE, "base.jsonl").unwrap();
        let hits = store.rank("孩子总是自伤，怎么办", &SearchParams::default());
        assert_eq!(hits[0].id, "self-injury");
        assert_eq!(
            hits[0].answer.as_deref(),
            Some("先保证安全，再找出行为的功能。")
        );
        assert_eq!(hits[0].source, "base.jsonl");
        assert!(hits[0].score > hits.get(1).map_or(0.0, |h| h.score));
    }

    #[test]
    fn min_score_and_top_k_limit_the_hits() {
        let store = MemoryStore::parse(BASE, "base.jsonl").unwrap();
        let strict = SearchParams {
            min_score: 0.99,
            ..SearchParams::default()
        };
        assert!(store.rank("孩子总是自伤", &strict).is_empty());
        let one = SearchParams {
            top_k: 1,
            ..SearchParams::default()
        };
        assert_eq!(store.rank("孩子怎么办", &one).len(), 1);
    }

    #[test]
    fn unrelated_queries_find_nothing() {
        let store = MemoryStore::parse(BASE, "base.jsonl").unwrap();
        assert!(
            store
                .rank("weather in Paris", &SearchParams::default())
                .is_empty()
        );
    }

    #[test]
    fn a_bad_line_is_reported_with_its_number() {
        let err = MemoryStore::parse(
            "{\"question\":\"q\",\"answer\":\"a\"}\nnot json\n",
            "kb.jsonl",
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("kb.jsonl:2: expected"), "{err}");
    }
}
