//! Speculative retrieval: the user's question is embedded and searched while the
//! first model call runs, so that a knowledge-base call asking the same thing
//! finds its hits (or at least the query vector) ready.
//!
//! A [`Prefetch`] is one background task per request. It runs once and never
//! retries; dropping the `Prefetch` (the request ended, or the model answered
//! directly) aborts it, which drops its embeddings request mid-flight. When the
//! model calls the tool, [`Prefetch::reuse`] compares the model's query with the
//! question ([`Match`]): the same text after [`normalize`] reuses the hits; a
//! close text (character-bigram Dice similarity at or above the threshold)
//! reuses the vector and reruns full text on the model's words; anything else
//! searches afresh.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use crate::kb::{Hit, KnowledgeBase, SearchParams};

/// Whether speculative retrieval runs (`chat.prefetch`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// On when a knowledge-base tool and an embeddings provider are configured.
    #[default]
    Auto,
    /// Never: every search starts when the model's tool call is complete.
    Off,
}

/// Outcomes of `ragstream_prefetch_total`.
pub const OUTCOMES: &[&str] = &["hit", "partial", "miss", "wasted"];

/// How far the prefetch task has come.
#[derive(Debug, Clone)]
enum Stage {
    /// Embedding the question.
    Embedding,
    /// The question's vector (`None`: no vector within the query budget).
    Embedded(Option<Vec<f32>>),
    /// The vector and the search's outcome.
    Searched {
        /// The question's vector.
        vector: Option<Vec<f32>>,
        /// The hits, or why the search failed.
        hits: Result<Vec<Hit>, String>,
    },
}

/// How the model's query relates to the user's question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// The same text once normalised.
    Same,
    /// Similar enough that the question's vector stands for the query.
    Close,
    /// Something else.
    Different,
}

/// What a knowledge-base call can take from the prefetch.
#[derive(Debug, Clone, PartialEq)]
pub enum Reuse {
    /// The prefetched hits, as they are.
    Hits(Vec<Hit>),
    /// The question's vector, to search with the model's words.
    Vector(Option<Vec<f32>>),
    /// Nothing: search as usual.
    Nothing,
}

/// A running (or finished) speculative search for one request.
#[derive(Debug)]
pub struct Prefetch {
    /// The tool whose store and parameters the search used.
    tool: String,
    /// The question, normalised.
    question: Vec<char>,
    /// Dice similarity from which a query counts as close.
    threshold: f32,
    /// The task's progress.
    stage: watch::Receiver<Stage>,
    /// Aborts the task when the request lets go of the prefetch.
    _task: AbortOnDropHandle<()>,
    /// Some call took the hits or the vector (else the prefetch was wasted).
    used: AtomicBool,
}

impl Prefetch {
    /// Starts embedding and searching `question` in `kb` for `tool`, or `None`
    /// when the question has nothing to search for. Needs a Tokio runtime.
    pub fn start(
        tool: &str,
        kb: Arc<dyn KnowledgeBase>,
        params: SearchParams,
        question: &str,
        threshold: f32,
    ) -> Option<Self> {
        let normalized = normalize(question);
        if normalized.is_empty() {
            return None;
        }
        let question = question.trim().to_owned();
        let (tx, rx) = watch::channel(Stage::Embedding);
        let task = async move {
            // Spawned from the request's task, this would run next on the same worker,
            // before the model request it overlaps with is written: let that go first.
            tokio::task::yield_now().await;
            let vector = kb.embed_query(&question).await;
            tx.send_replace(Stage::Embedded(vector.clone()));
            let hits = kb
                .search_with_vector(&question, vector.clone(), &params)
                .await
                .map(|detailed| detailed.into_iter().map(|d| d.hit).collect())
                .map_err(|err| err.to_string());
            if let Err(err) = &hits {
                tracing::debug!(error = %err, "prefetch search failed");
            }
            tx.send_replace(Stage::Searched { vector, hits });
        };
        let task = tokio::spawn(task.instrument(tracing::Span::current()));
        Some(Self {
            tool: tool.to_owned(),
            question: normalized,
            threshold,
            stage: rx,
            _task: AbortOnDropHandle::new(task),
            used: AtomicBool::new(false),
        })
    }

    /// What a call of `tool` searching `query` can reuse, waiting for the task
    /// as long as the reuse needs it (the caller's timeout bounds the wait).
    pub async fn reuse(&self, tool: &str, query: &str) -> Reuse {
        if tool != self.tool {
            return Reuse::Nothing;
        }
        let matched = similarity_match(&self.question, &normalize(query), self.threshold);
        let reuse = match matched {
            Match::Different => Reuse::Nothing,
            Match::Same => self.wait_for_hits().await,
            Match::Close => self.wait_for_vector().await,
        };
        let outcome = match &reuse {
            Reuse::Hits(_) => "hit",
            Reuse::Vector(_) => "partial",
            Reuse::Nothing => "miss",
        };
        if !matches!(reuse, Reuse::Nothing) {
            self.used.store(true, Ordering::Relaxed);
        }
        tracing::debug!(tool, ?matched, outcome, "prefetch consulted");
        metrics::counter!(crate::telemetry::PREFETCH, "outcome" => outcome).increment(1);
        reuse
    }

    /// The prefetched hits; the vector alone when the search failed.
    async fn wait_for_hits(&self) -> Reuse {
        let mut stage = self.stage.clone();
        let Ok(seen) = stage
            .wait_for(|s| matches!(s, Stage::Searched { .. }))
            .await
        else {
            return Reuse::Nothing;
        };
        match &*seen {
            Stage::Searched { hits: Ok(hits), .. } => Reuse::Hits(hits.clone()),
            Stage::Searched { vector, .. } => Reuse::Vector(vector.clone()),
            _ => Reuse::Nothing,
        }
    }

    /// The question's vector, as soon as it is known.
    async fn wait_for_vector(&self) -> Reuse {
        let mut stage = self.stage.clone();
        let Ok(seen) = stage.wait_for(|s| !matches!(s, Stage::Embedding)).await else {
            return Reuse::Nothing;
        };
        match &*seen {
            Stage::Embedded(vector) | Stage::Searched { vector, .. } => {
                Reuse::Vector(vector.clone())
            }
            Stage::Embedding => Reuse::Nothing,
        }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        if !self.used.load(Ordering::Relaxed) {
            metrics::counter!(crate::telemetry::PREFETCH, "outcome" => "wasted").increment(1);
        }
    }
}

/// The letters and digits of `text`, lowercased: punctuation, whitespace and
/// case do not change what a question asks.
pub fn normalize(text: &str) -> Vec<char> {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// How normalised `query` relates to normalised `question`.
pub fn similarity_match(question: &[char], query: &[char], threshold: f32) -> Match {
    if question == query {
        Match::Same
    } else if dice(question, query) >= threshold {
        Match::Close
    } else {
        Match::Different
    }
}

/// Dice coefficient of the two texts' sets of character bigrams (0 to 1).
pub fn dice(a: &[char], b: &[char]) -> f32 {
    let bigrams = |text: &[char]| {
        let mut set: Vec<(char, char)> = text.windows(2).map(|w| (w[0], w[1])).collect();
        set.sort_unstable();
        set.dedup();
        set
    };
    let (a, b) = (bigrams(a), bigrams(b));
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (mut i, mut j, mut shared) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                shared += 1;
                i += 1;
                j += 1;
            }
        }
    }
    (2 * shared) as f32 / (a.len() + b.len()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matched(question: &str, query: &str) -> Match {
        similarity_match(&normalize(question), &normalize(query), 0.6)
    }

    #[test]
    fn punctuation_whitespace_and_case_do_not_change_the_question() {
        assert_eq!(
            matched("孩子自伤怎么办？", " 孩子 自伤，怎么办"),
            Match::Same
        );
        assert_eq!(matched("What is Autism?", "what is autism"), Match::Same);
    }

    #[test]
    fn a_rephrasing_sharing_most_bigrams_is_close_and_another_topic_is_not() {
        assert_eq!(
            matched("我家孩子自伤怎么办", "孩子自伤怎么办"),
            Match::Close
        );
        assert_eq!(
            matched("孩子自伤怎么办", "孩子晚上睡不着"),
            Match::Different
        );
    }

    #[test]
    fn dice_is_one_for_equal_sets_and_zero_without_bigrams() {
        let a = normalize("abcd");
        assert_eq!(dice(&a, &a), 1.0);
        assert_eq!(dice(&normalize("a"), &normalize("a")), 0.0);
        assert!((dice(&normalize("abcd"), &normalize("abxy")) - 1.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn a_question_of_punctuation_alone_is_not_prefetched() {
        assert!(normalize(" ？！ ").is_empty());
    }
}
