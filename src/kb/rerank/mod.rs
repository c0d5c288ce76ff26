//! Optional reranking above the stores: a [`KnowledgeBase`] wrapping another.
//!
//! [`Reranked`] asks the store for `kb.rerank.candidates` hits (its own order and
//! `kb.search.min_score` apply as without reranking), sends them to a rerank service
//! ([`client`]) and returns the best `top_k` in the service's order. It wraps the read
//! trait, so it works for every store, and every caller (the tool, prefetching, the
//! retrieval-only answer, `/api/kb/search`, `kb search`, `kb eval`) sees reranked hits.
//!
//! **What the score means after reranking:** the service's `relevance_score`
//! (0..=1). The order is the service's, and a score has to agree with the order it
//! comes in: the retrieval-only answer compares the first two hits' scores to decide
//! between one answer and "did you mean". Two thresholds apply, each on its own scale:
//! `kb.search.min_score` on the calibrated retrieval score (which candidates the
//! service sees at all, so an out-of-domain question is still rejected before any
//! reranking), then `kb.rerank.min_score` on the relevance score. The retrieval rank
//! and score stay visible in [`DetailedHit::reranked_from`].
//!
//! **Failures never fail the search:** on a timeout, an HTTP error, an unreachable
//! service, or a reply that does not fit the request (an index out of range or twice,
//! a score outside 0..=1, unparsable JSON), the store's own top `top_k` are returned
//! as they would be without reranking; the failure is logged (`warn`) and counted in
//! `ragstream_kb_rerank_total{outcome}`.

pub mod client;
pub mod config;

use std::sync::Arc;

use async_trait::async_trait;

pub use client::Client;
pub use config::RerankConfig;

use super::{DetailedHit, Error, KnowledgeBase, RerankedFrom, SearchParams};
use client::Scored;

/// Outcomes of `ragstream_kb_rerank_total`.
pub const OUTCOMES: &[&str] = &["ok", "timeout", "unreachable", "http_error", "malformed"];

/// `kb` reranked as `cfg` says, or `kb` itself when reranking is off.
pub fn wrap(
    kb: Arc<dyn KnowledgeBase>,
    cfg: &RerankConfig,
) -> Result<Arc<dyn KnowledgeBase>, Error> {
    if !cfg.enabled() {
        return Ok(kb);
    }
    Ok(Arc::new(Reranked {
        inner: kb,
        client: Client::new(cfg)?,
        candidates: cfg.candidates,
        min_score: cfg.min_score,
        max_document_chars: cfg.max_document_chars,
    }))
}

/// A store whose hits are reordered by a rerank service.
pub struct Reranked {
    /// The store searched for candidates.
    inner: Arc<dyn KnowledgeBase>,
    /// The rerank service.
    client: Client,
    /// How many candidates are sent (raised to `top_k` when smaller).
    candidates: usize,
    /// Hits with a lower relevance score are dropped.
    min_score: f32,
    /// Characters of each document sent.
    max_document_chars: usize,
}

#[async_trait]
impl KnowledgeBase for Reranked {
    async fn embed_query(&self, query: &str) -> Option<Vec<f32>> {
        self.inner.embed_query(query).await
    }

    async fn search_with_vector(
        &self,
        query: &str,
        vector: Option<Vec<f32>>,
        params: &SearchParams,
    ) -> Result<Vec<DetailedHit>, Error> {
        let wide = SearchParams {
            top_k: self.candidates.max(params.top_k),
            ..*params
        };
        let mut candidates = self.inner.search_with_vector(query, vector, &wide).await?;
        if candidates.is_empty() || params.top_k == 0 {
            candidates.truncate(params.top_k);
            return Ok(candidates);
        }
        let documents: Vec<String> = candidates
            .iter()
            .map(|d| document(d, self.max_document_chars))
            .collect();
        let top_n = params.top_k.min(documents.len());
        let started = std::time::Instant::now();
        let reply = self.client.rerank(query, &documents, top_n).await;
        metrics::histogram!(crate::telemetry::KB_RERANK).record(started.elapsed().as_secs_f64());
        match reply {
            Ok(results) => {
                metrics::counter!(crate::telemetry::KB_RERANKS, "outcome" => "ok").increment(1);
                Ok(reorder(candidates, &results, params.top_k, self.min_score))
            }
            Err(failure) => {
                metrics::counter!(crate::telemetry::KB_RERANKS, "outcome" => failure.outcome())
                    .increment(1);
                tracing::warn!(outcome = failure.outcome(), error = %failure, "reranking failed; keeping the search order");
                candidates.truncate(params.top_k);
                Ok(candidates)
            }
        }
    }

    async fn ready(&self) -> Result<(), Error> {
        // A reranker that is down costs order, not answers: readiness is the store's.
        self.inner.ready().await
    }
}

/// What the service reads of a hit: its title, then its answer or text, cut to
/// `max_chars` characters.
fn document(d: &DetailedHit, max_chars: usize) -> String {
    let body = d.hit.answer.as_deref().unwrap_or(&d.hit.text);
    let mut text = String::with_capacity(d.hit.title.len() + 1 + body.len());
    text.push_str(&d.hit.title);
    if !body.is_empty() {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(body);
    }
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => {
            text.truncate(cut);
            text
        }
        None => text,
    }
}

/// The candidates the service scored, best first (`results` are checked and sorted),
/// at or above `min_score`, at most `top_k`; each scored by its relevance, with its
/// retrieval rank and score kept.
fn reorder(
    candidates: Vec<DetailedHit>,
    results: &[Scored],
    top_k: usize,
    min_score: f32,
) -> Vec<DetailedHit> {
    let mut slots: Vec<Option<DetailedHit>> = candidates.into_iter().map(Some).collect();
    let mut hits = Vec::with_capacity(top_k.min(results.len()));
    for r in results {
        if hits.len() == top_k || r.relevance_score < min_score {
            break;
        }
        let Some(mut d) = slots.get_mut(r.index).and_then(Option::take) else {
            continue;
        };
        d.reranked_from = Some(RerankedFrom {
            rank: d.rank,
            score: d.hit.score,
        });
        d.hit.score = r.relevance_score;
        d.rank = hits.len() + 1;
        hits.push(d);
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kb::Hit;

    fn candidate(id: &str, rank: usize, score: f32) -> DetailedHit {
        DetailedHit {
            hit: Hit {
                id: id.into(),
                title: format!("{id}?"),
                answer: Some(format!("{id}.")),
                text: String::new(),
                source: String::new(),
                score,
            },
            rank,
            fulltext_rank: Some(rank),
            fulltext_score: Some(score),
            vector_rank: None,
            vector_score: None,
            rrf_score: 0.0,
            reranked_from: None,
            tags: Vec::new(),
        }
    }

    fn scored(index: usize, relevance_score: f32) -> Scored {
        Scored {
            index,
            relevance_score,
        }
    }

    #[test]
    fn the_services_order_and_score_replace_the_search_order() {
        let candidates = vec![
            candidate("a", 1, 0.9),
            candidate("b", 2, 0.5),
            candidate("c", 3, 0.4),
        ];
        let hits = reorder(candidates, &[scored(2, 0.97), scored(0, 0.3)], 3, 0.0);
        let ids: Vec<&str> = hits.iter().map(|d| d.hit.id.as_str()).collect();
        assert_eq!(ids, ["c", "a"]);
        assert_eq!((hits[0].rank, hits[0].hit.score), (1, 0.97));
        assert_eq!(
            hits[0].reranked_from,
            Some(RerankedFrom {
                rank: 3,
                score: 0.4
            })
        );
        assert_eq!(hits[1].rank, 2);
    }

    #[test]
    fn rerank_min_score_and_top_k_cut_the_list() {
        let candidates = vec![
            candidate("a", 1, 0.9),
            candidate("b", 2, 0.5),
            candidate("c", 3, 0.4),
        ];
        let results = [scored(1, 0.8), scored(0, 0.6), scored(2, 0.1)];
        let hits = reorder(candidates.clone(), &results, 3, 0.5);
        assert_eq!(hits.len(), 2);
        let hits = reorder(candidates, &results, 1, 0.0);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].hit.id, "b");
    }

    #[test]
    fn documents_are_the_title_and_the_answer_cut_at_a_character() {
        let d = candidate("自伤", 1, 0.5);
        assert_eq!(document(&d, 100), "自伤?\n自伤.");
        assert_eq!(document(&d, 2), "自伤");
        let mut passage = candidate("x", 1, 0.5);
        passage.hit.answer = None;
        passage.hit.text = "body".into();
        assert_eq!(document(&passage, 100), "x?\nbody");
    }
}
