//! Hybrid search: full-text (BM25) and vector rankings fused by reciprocal rank fusion.
//!
//! Order: each ranking contributes its best `search.candidates` rows; a row's fused
//! value is `Σ 1 / (rrf_k + rank)` over the rankings it appears in (rank from 1).
//! With provider `none` there is one ranking, so the order is plain BM25.
//!
//! Score (what `min_score` compares against, 0..=1, see [`crate::kb::score`]):
//! - full-text evidence: the IDF-weighted share of the query's words the hit contains
//!   (synonyms and shared character bigrams earn part credit);
//! - vector evidence: cosine similarity of the query and hit vectors (negative is 0);
//! - `Hit.score` is the evidence (full text alone, or in hybrid mode the larger of the
//!   two) times the hit's fused value relative to the best hit's.

use super::Store;
use super::db::{self, Row};
use super::vectors::VectorIndex;
use crate::kb::document::Kind;
use crate::kb::{DetailedHit, Error, Hit, SearchParams};
use crate::kb::{StoreError, score};

/// One fused candidate.
#[derive(Debug, Clone, PartialEq)]
struct Candidate {
    /// SQLite rowid.
    rowid: i64,
    /// Full-text rank and score.
    fulltext: Option<(usize, f32)>,
    /// Vector rank, if in the vector ranking.
    vector_rank: Option<usize>,
    /// Cosine similarity, if known.
    vector_score: Option<f32>,
    /// Fused value.
    rrf: f32,
}

impl Candidate {
    /// The evidence for the hit: the better of full text and vector.
    fn evidence(&self) -> f32 {
        let text = self.fulltext.map_or(0.0, |(_, s)| s);
        let vector = self.vector_score.unwrap_or(0.0).max(0.0);
        text.max(vector)
    }

    /// The score `min_score` compares against, given the best fused value.
    fn score(&self, best_rrf: f32) -> f32 {
        score::combine(self.evidence(), self.rrf, best_rrf)
    }
}

impl Store {
    /// Embeds the query when a provider is configured. A failing or slow embeddings
    /// API is not an error: the search falls back to full text, with a warning.
    /// (Whether the store holds vectors is only known after the blocking refresh, and a
    /// store imported with a provider always does, so the question is not asked here.)
    pub(crate) async fn query_vector(&self, query: &str) -> Option<Vec<f32>> {
        let embeddings = self.embeddings()?;
        match embeddings.embed_query(query).await {
            Ok(vector) => Some(vector),
            Err(err) => {
                tracing::warn!(%err, "query embedding failed; answering from full text only");
                None
            }
        }
    }

    /// [`Store::search_blocking`] on a blocking thread.
    pub(crate) async fn search_in_background(
        &self,
        query: &str,
        vector: Option<Vec<f32>>,
        params: &SearchParams,
    ) -> Result<Vec<DetailedHit>, Error> {
        let store = self.clone();
        let query = query.to_owned();
        let params = *params;
        tokio::task::spawn_blocking(move || {
            store.search_blocking(&query, vector.as_deref(), &params)
        })
        .await
        .map_err(|err| Error::store(format!("search task failed: {err}")))?
    }

    /// The synchronous search core: full text, plus vectors when `vector` is given.
    pub fn search_blocking(
        &self,
        query: &str,
        vector: Option<&[f32]>,
        params: &SearchParams,
    ) -> Result<Vec<DetailedHit>, Error> {
        if params.top_k == 0 {
            return Ok(Vec::new());
        }
        let cfg = self.config().search;
        let limit = cfg.candidates.max(params.top_k);
        let text = self.inner.fulltext.search(query, limit)?;

        let index = self.vectors()?;
        let vector = match vector {
            Some(v) if !index.is_empty() => {
                if v.len() != index.dim() {
                    let (stored_model, stored_dim) = self
                        .read(db::vector_model)?
                        .unwrap_or_else(|| ("unknown".to_owned(), index.dim()));
                    return Err(Error::Store(StoreError::DimensionMismatch {
                        data_dir: self.data_dir().display().to_string(),
                        stored_dim,
                        stored_model,
                        model: self.embeddings().map_or("?", |e| e.model()).to_owned(),
                        got: format!("returns {}-dimension vectors", v.len()),
                    }));
                }
                Some(VectorIndex::normalized(v))
            }
            _ => None,
        };
        let near = vector
            .as_deref()
            .map(|v| index.search(v, limit))
            .unwrap_or_default();

        let mut candidates = fuse(&text, &near, cfg.rrf_k);
        if let Some(v) = vector.as_deref() {
            for c in &mut candidates {
                if c.vector_score.is_none() {
                    c.vector_score = index.cosine(v, c.rowid);
                }
            }
        }
        let best_rrf = candidates.first().map_or(0.0, |c| c.rrf);
        // A candidate with no evidence (it shares single characters only) is no hit.
        candidates.retain(|c| c.evidence() > 0.0 && c.score(best_rrf) >= params.min_score);
        candidates.truncate(params.top_k);

        let rowids: Vec<i64> = candidates.iter().map(|c| c.rowid).collect();
        let rows = self.read(|conn| db::rows_by_rowid(conn, &rowids))?;
        let mut hits = Vec::with_capacity(rows.len());
        for (candidate, row) in candidates
            .iter()
            .filter_map(|c| rows.iter().find(|r| r.rowid == c.rowid).map(|r| (c, r)))
        {
            hits.push(detailed(candidate, row.clone(), hits.len() + 1, best_rrf));
        }
        Ok(hits)
    }
}

/// Fuses the rankings by reciprocal rank fusion, best first.
fn fuse(text: &[super::fulltext::Match], near: &[super::vectors::Match], k: f32) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::with_capacity(text.len() + near.len());
    for (i, m) in text.iter().enumerate() {
        out.push(Candidate {
            rowid: m.rowid,
            fulltext: Some((i + 1, m.score)),
            vector_rank: None,
            vector_score: None,
            rrf: 1.0 / (k + (i + 1) as f32),
        });
    }
    for (i, m) in near.iter().enumerate() {
        let rrf = 1.0 / (k + (i + 1) as f32);
        match out.iter_mut().find(|c| c.rowid == m.rowid) {
            Some(c) => {
                c.vector_rank = Some(i + 1);
                c.vector_score = Some(m.score);
                c.rrf += rrf;
            }
            None => out.push(Candidate {
                rowid: m.rowid,
                fulltext: None,
                vector_rank: Some(i + 1),
                vector_score: Some(m.score),
                rrf,
            }),
        }
    }
    // Stable sort: equal fused values keep the full-text order.
    out.sort_by(|a, b| b.rrf.total_cmp(&a.rrf));
    out
}

/// Turns a candidate and its row into a hit.
fn detailed(c: &Candidate, row: Row, rank: usize, best_rrf: f32) -> DetailedHit {
    let doc = row.doc;
    let (answer, text) = match doc.kind {
        Kind::Qa => (Some(doc.body), String::new()),
        Kind::Passage => (None, doc.body),
    };
    DetailedHit {
        hit: Hit {
            id: doc.id,
            title: doc.title,
            answer,
            text,
            source: doc.source,
            score: c.score(best_rrf),
        },
        rank,
        fulltext_rank: c.fulltext.map(|(r, _)| r),
        fulltext_score: c.fulltext.map(|(_, s)| s),
        vector_rank: c.vector_rank,
        vector_score: c.vector_score,
        rrf_score: c.rrf,
        tags: doc.tags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kb::store::{fulltext, vectors};

    fn ft(rowid: i64, score: f32) -> fulltext::Match {
        fulltext::Match { rowid, score }
    }

    fn vm(rowid: i64, score: f32) -> vectors::Match {
        vectors::Match { rowid, score }
    }

    #[test]
    fn rows_in_both_rankings_rise_above_rows_in_one() {
        let fused = fuse(&[ft(1, 0.9), ft(2, 0.8)], &[vm(2, 0.7), vm(3, 0.6)], 60.0);
        let order: Vec<i64> = fused.iter().map(|c| c.rowid).collect();
        assert_eq!(order, [2, 1, 3]);
        assert!((fused[0].rrf - (1.0 / 62.0 + 1.0 / 61.0)).abs() < 1e-6);
        assert_eq!(fused[0].fulltext, Some((2, 0.8)));
        assert_eq!(fused[0].vector_rank, Some(1));
    }

    #[test]
    fn the_score_is_the_better_evidence_scaled_by_the_fused_rank() {
        let fused = fuse(&[ft(1, 0.3), ft(2, 0.9)], &[vm(1, 0.8), vm(3, -0.2)], 60.0);
        let best = fused[0].rrf;
        assert_eq!(fused[0].rowid, 1);
        assert!((fused[0].score(best) - 0.8).abs() < 1e-6);
        // Row 2: evidence 0.9, but second in one ranking only.
        let second = fused[1].score(best);
        assert!(second < 0.9 * 0.6 && second > 0.0, "{second}");
        assert_eq!(fused[2].score(best), 0.0);
    }
}
