//! Reciprocal rank fusion of a full-text and a vector ranking, for every store.
//!
//! Each ranking contributes its best rows; a row's fused value is
//! `Σ 1 / (rrf_k + rank)` over the rankings it appears in (rank from 1). A hit's
//! score is its evidence (the better of full text and vector) scaled by its fused
//! value relative to the best hit's ([`crate::kb::score::combine`]), so `min_score`
//! means the same whichever store ranked the rows. The hits are the fused candidates in
//! the order of their scores ([`select`]).
//!
//! Rows are named by a key of the store's choosing (a SQLite rowid, a PostgreSQL id as
//! text); the rankings give, per row, its key and its evidence (0..=1 full text, cosine
//! for vectors).
//!
//! A raw cosine is no evidence: embedding models give unrelated texts a similarity well
//! above 0. Vector matches at or below `kb.search.vector_floor` take no part in the
//! fusion, and above it their evidence is [`score::vector_evidence`] (issue 11, item 6).

use crate::kb::document::Kind;
use crate::kb::{DetailedHit, Hit, score};

/// What a hit shows of its row, whichever store the row came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    /// The document's id.
    pub id: String,
    /// Question/answer pair or passage.
    pub kind: Kind,
    /// The question or heading.
    pub title: String,
    /// The answer or passage text.
    pub body: String,
    /// What the hit cites.
    pub source: String,
    /// Tags of the document.
    pub tags: Vec<String>,
}

/// One fused candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate<K> {
    /// The store's key of the row.
    pub key: K,
    /// Full-text rank and score.
    pub fulltext: Option<(usize, f32)>,
    /// Vector rank, if in the vector ranking.
    pub vector_rank: Option<usize>,
    /// Cosine similarity, if known.
    pub vector_score: Option<f32>,
    /// The vector evidence: how far the similarity rises above the floor, 0..=1.
    pub vector_evidence: f32,
    /// Fused value.
    pub rrf: f32,
}

impl<K> Candidate<K> {
    /// The evidence for the hit: the better of full text and vector.
    pub fn evidence(&self) -> f32 {
        let text = self.fulltext.map_or(0.0, |(_, s)| s);
        text.max(self.vector_evidence)
    }

    /// Records the cosine similarity of a row the vector ranking did not list (for
    /// the evidence, and to show it), counted above `floor` as in [`fuse`].
    pub fn set_cosine(&mut self, cosine: f32, floor: f32) {
        self.vector_score = Some(cosine);
        self.vector_evidence = score::vector_evidence(cosine, floor);
    }

    /// The score `min_score` compares against, given the best fused value.
    pub fn score(&self, best_rrf: f32) -> f32 {
        score::combine(self.evidence(), self.rrf, best_rrf)
    }

    /// The hit this candidate makes at `rank` (from 1), showing `row`; its score has
    /// the meaning of [`crate::kb::score`] whichever store ranked it.
    pub fn detailed(&self, row: Shown, rank: usize, best_rrf: f32) -> DetailedHit {
        let (answer, text) = match row.kind {
            Kind::Qa => (Some(row.body), String::new()),
            Kind::Passage => (None, row.body),
        };
        DetailedHit {
            hit: Hit {
                id: row.id,
                title: row.title,
                answer,
                text,
                source: row.source,
                score: self.score(best_rrf),
            },
            rank,
            fulltext_rank: self.fulltext.map(|(r, _)| r),
            fulltext_score: self.fulltext.map(|(_, s)| s),
            vector_rank: self.vector_rank,
            vector_score: self.vector_score,
            rrf_score: self.rrf,
            reranked_from: None,
            tags: row.tags,
        }
    }
}

/// Fuses the rankings (`(key, evidence)`, best first) by reciprocal rank fusion, best
/// first. Vector matches at or below `vector_floor` (the rest of the ranking, since it
/// is best first) take no part.
pub fn fuse<K: PartialEq>(
    text: impl IntoIterator<Item = (K, f32)>,
    near: impl IntoIterator<Item = (K, f32)>,
    k: f32,
    vector_floor: f32,
) -> Vec<Candidate<K>> {
    let mut out: Vec<Candidate<K>> = Vec::new();
    for (i, (key, score)) in text.into_iter().enumerate() {
        out.push(Candidate {
            key,
            fulltext: Some((i + 1, score)),
            vector_rank: None,
            vector_score: None,
            vector_evidence: 0.0,
            rrf: 1.0 / (k + (i + 1) as f32),
        });
    }
    let above = near
        .into_iter()
        .take_while(|(_, cosine)| *cosine > vector_floor);
    for (i, (key, cosine)) in above.enumerate() {
        let rrf = 1.0 / (k + (i + 1) as f32);
        let evidence = score::vector_evidence(cosine, vector_floor);
        match out.iter_mut().find(|c| c.key == key) {
            Some(c) => {
                c.vector_rank = Some(i + 1);
                c.vector_score = Some(cosine);
                c.vector_evidence = evidence;
                c.rrf += rrf;
            }
            None => out.push(Candidate {
                key,
                fulltext: None,
                vector_rank: Some(i + 1),
                vector_score: Some(cosine),
                vector_evidence: evidence,
                rrf,
            }),
        }
    }
    // Stable sort: equal fused values keep the full-text order.
    out.sort_by(|a, b| b.rrf.total_cmp(&a.rrf));
    out
}

/// The hits of a fused ranking: the candidates with evidence scoring at least
/// `min_score`, in the order of their scores (best first; equal scores keep the fused
/// order), at most `top_k`. Returns them with the best fused value their scores are
/// relative to.
///
/// A score weighs the evidence by the fused rank, so a hit ranked second can score
/// above the first (more of the question's words, fewer BM25 points); ordering by the
/// score keeps what readers see coherent: the first hit is the best scored, and "did
/// you mean" compares the best two scores (issue 11).
pub fn select<K>(
    mut candidates: Vec<Candidate<K>>,
    min_score: f32,
    top_k: usize,
) -> (Vec<Candidate<K>>, f32) {
    let best_rrf = candidates.iter().map(|c| c.rrf).fold(0.0f32, f32::max);
    // A candidate with no evidence (it shares single characters only) is no hit.
    candidates.retain(|c| c.evidence() > 0.0 && c.score(best_rrf) >= min_score);
    // Stable: equal scores keep the fused order.
    candidates.sort_by(|a, b| b.score(best_rrf).total_cmp(&a.score(best_rrf)));
    candidates.truncate(top_k);
    (candidates, best_rrf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_in_both_rankings_rise_above_rows_in_one() {
        let fused = fuse([(1, 0.9), (2, 0.8)], [(2, 0.7), (3, 0.6)], 60.0, 0.0);
        let order: Vec<i64> = fused.iter().map(|c| c.key).collect();
        assert_eq!(order, [2, 1, 3]);
        assert!((fused[0].rrf - (1.0 / 62.0 + 1.0 / 61.0)).abs() < 1e-6);
        assert_eq!(fused[0].fulltext, Some((2, 0.8)));
        assert_eq!(fused[0].vector_rank, Some(1));
    }

    #[test]
    fn the_score_is_the_better_evidence_scaled_by_the_fused_rank() {
        let fused = fuse([(1, 0.3), (2, 0.9)], [(1, 0.8), (3, -0.2)], 60.0, 0.0);
        let best = fused[0].rrf;
        assert_eq!(fused[0].key, 1);
        assert!((fused[0].score(best) - 0.8).abs() < 1e-6);
        // Row 2: evidence 0.9, but second in one ranking only.
        let second = fused[1].score(best);
        assert!(second < 0.9 * 0.6 && second > 0.0, "{second}");
        // Row 3: a negative similarity is no match.
        assert_eq!(fused.len(), 2);
    }

    // Issue 11, item 6: a model's background similarity must not let an unrelated
    // question through, nor reorder the full-text hits.
    #[test]
    fn vector_matches_at_or_below_the_floor_neither_rank_nor_count() {
        let fused = fuse([(1, 0.3), (2, 0.2)], [(2, 0.45), (3, 0.4)], 60.0, 0.5);
        let order: Vec<i64> = fused.iter().map(|c| c.key).collect();
        assert_eq!(order, [1, 2], "the full-text order stands");
        assert_eq!(fused[1].vector_rank, None);
        assert_eq!(fused[1].evidence(), 0.2);

        let mut fused = fuse([(1, 0.3)], [(2, 0.75), (1, 0.45)], 60.0, 0.5);
        assert_eq!(fused[0].key, 1, "ranked equally, full text first");
        assert_eq!(fused[0].vector_rank, None);
        assert_eq!(fused[1].key, 2);
        assert!((fused[1].evidence() - 0.5).abs() < 1e-6);
        fused[0].set_cosine(0.9, 0.5);
        assert!((fused[0].evidence() - 0.8).abs() < 1e-6);
    }

    // Issue 11: hits come in the order of their scores, so the first is the best scored.
    #[test]
    fn hits_are_ordered_by_score_not_by_fused_rank() {
        // Row 1 leads the fused ranking with little evidence; rows 2 and 3 hold more.
        let fused = fuse([(1, 0.3), (2, 0.9), (3, 0.6), (4, 0.0)], [], 60.0, 0.5);
        let (hits, best) = select(fused, 0.1, 2);
        let order: Vec<i64> = hits.iter().map(|c| c.key).collect();
        assert_eq!(order, [2, 3], "row 1 scores 0.3, row 3 above it");
        assert!((best - 1.0 / 61.0).abs() < 1e-9);
        assert!(hits[0].score(best) > hits[1].score(best));
        let (hits, _) = select(fuse([(1, 0.3), (2, 0.05)], [], 60.0, 0.5), 0.1, 5);
        assert_eq!(hits.len(), 1, "below min_score or without evidence: no hit");
    }

    #[test]
    fn keys_of_any_type_fuse_alike() {
        let fused = fuse(
            [("a".to_owned(), 0.5)],
            [("b".to_owned(), 0.9), ("a".to_owned(), 0.4)],
            60.0,
            0.0,
        );
        assert_eq!(fused[0].key, "a");
        assert_eq!(fused[0].vector_rank, Some(2));
    }
}
