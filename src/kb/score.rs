//! Relevance scores in [0, 1] with one meaning for every store.
//!
//! A score answers "how much of what the question asks does this hit contain?":
//!
//! - each query term weighs its IDF, `ln(1 + (N − n + 0.5) / (n + 0.5))` over the
//!   store's N documents, n of which contain it; a term no document contains weighs
//!   the most, so a hit that matches only the common words of a question scores low;
//! - a hit earns, per term, a credit: [`EXACT`] when its title (the stored question
//!   or heading) contains the word, [`BODY`] when only its answer or text does,
//!   [`SYNONYM`] when it contains only a synonym from the operator's groups,
//!   [`RELATED`] when it contains only a related word from the built-in groups, and
//!   [`CHARS`] × the share of the word's character bigrams it contains otherwise;
//! - n is the document frequency of the term's concept: the largest of the word's own
//!   and its synonyms' and related words', so 宝宝 weighs as little as 孩子 when 孩子
//!   stands in for it (else a hit earning partial credit through a common synonym
//!   would weigh like one holding a rare word);
//! - the **evidence** is the IDF-weighted mean credit (1 only when every term occurs);
//! - the **full-text score** weighs the evidence by the match's BM25 relative to the
//!   best match's ([`ranked`]: from [`RANK_FLOOR`] for a BM25 near 0 up to 1 for the
//!   best), so a hit whose words recur and fill a short text beats one that mentions
//!   them once in a long answer; the full-text ranking is in this order;
//! - in hybrid mode a vector match is evidence only above `kb.search.vector_floor`
//!   ([`vector_evidence`]), and the hit's evidence is the larger of the two;
//! - the **score** is that times the hit's fused rank value relative to the best hit's
//!   ([`combine`]): hits further down get less, so different hits get different
//!   scores; hits are returned in the order of their scores.
//!
//! Any store computes the same numbers from document frequencies, term presence and BM25,
//! so `min_score` means the same thing whichever store is configured.

/// Credit for a term the hit contains as a word.
pub const EXACT: f32 = 1.0;
/// Credit for a term the hit contains as a word in its body only: a stored question
/// that asks about the word is better evidence than an answer that mentions it.
pub const BODY: f32 = 0.75;
/// Credit for a term of which the hit contains only a synonym (operator's groups).
pub const SYNONYM: f32 = 0.6;
/// Credit for a term of which the hit contains only a related word from the built-in
/// groups (Chinese Open Wordnet). A general-language synset mixes senses (训练 is also
/// 运用), so such a match is weaker evidence than an operator's synonym. 0.3 is the largest
/// credit at which the sample eval's out-of-domain rejection stays where it was without
/// the built-in groups (docs/knowledge-base.md, "Choosing the constants").
pub const RELATED: f32 = 0.3;
/// Credit for a term whose every character bigram the hit contains (scaled by the share).
pub const CHARS: f32 = 0.5;

/// What a full-text match's evidence keeps, at least, when its BM25 is far below the best
/// match's ([`ranked`]). Hits are returned in the order of their scores, so this sets how
/// much BM25 (term frequency, text length) orders matches of equal evidence: 0.6 is the
/// value at which ordering by the score keeps the sample eval's figures (recall@1 0.902,
/// recall@3 1.000, rejection 0.533; 0.25, the value that ordered the full-text ranking
/// before, drops recall@3 to 0.980, 1.0 (evidence alone) drops recall@1 to 0.863;
/// docs/knowledge-base.md, "Choosing the constants").
pub const RANK_FLOOR: f32 = 0.6;

/// BM25's IDF of a term found in `doc_freq` of `total` documents.
pub fn idf(doc_freq: u64, total: u64) -> f32 {
    let doc_freq = doc_freq.min(total) as f32;
    (1.0 + ((total as f32 - doc_freq) + 0.5) / (doc_freq + 0.5)).ln()
}

/// The IDF-weighted mean of the credits, in [0, 1]: `Σ idf·credit / Σ idf`.
/// `terms` pairs each query term's IDF with the hit's credit for it.
pub fn evidence(terms: impl IntoIterator<Item = (f32, f32)>) -> f32 {
    let (mut earned, mut total) = (0.0f32, 0.0f32);
    for (idf, credit) in terms {
        let idf = idf.max(0.0);
        earned += idf * credit.clamp(0.0, 1.0);
        total += idf;
    }
    if total > 0.0 {
        (earned / total).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// The credit of a term that is not in the hit as a word, from its character
/// bigrams: `CHARS` × the share of them the hit contains (0 for one-character terms).
pub fn chars_credit(bigrams: usize, found: usize) -> f32 {
    if bigrams == 0 {
        return 0.0;
    }
    CHARS * found.min(bigrams) as f32 / bigrams as f32
}

/// The evidence of a vector match: how far its cosine similarity rises above
/// `floor`, the similarity unrelated texts reach with the embedding model
/// (`kb.search.vector_floor`): `(cosine − floor) / (1 − floor)`, 0 at or below it.
/// Raw cosines are not evidence: with many models unrelated texts score 0.3 or more.
pub fn vector_evidence(cosine: f32, floor: f32) -> f32 {
    if cosine.is_nan() || cosine <= floor || floor >= 1.0 {
        return 0.0;
    }
    ((cosine - floor) / (1.0 - floor)).clamp(0.0, 1.0)
}

/// A full-text match's score: its `evidence` weighed by its BM25 relative to the best
/// match's (`bm25 / best`), `evidence × (RANK_FLOOR + (1 − RANK_FLOOR) × bm25 / best)`.
pub fn ranked(evidence: f32, bm25: f32, best: f32) -> f32 {
    let relative = if best > 0.0 {
        (bm25 / best).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (evidence * (RANK_FLOOR + (1.0 - RANK_FLOOR) * relative)).clamp(0.0, 1.0)
}

/// The score of a hit: its evidence, scaled by its fused rank value relative to the
/// best hit's (`rrf / best_rrf`, 1 for the best hit).
pub fn combine(evidence: f32, rrf: f32, best_rrf: f32) -> f32 {
    let rank = if best_rrf > 0.0 {
        (rrf / best_rrf).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (evidence * rank).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unseen_terms_weigh_the_most() {
        assert!(idf(0, 47) > idf(1, 47));
        assert!(idf(1, 47) > idf(40, 47));
        assert!(idf(47, 47) > 0.0);
    }

    #[test]
    fn a_hit_with_only_the_common_words_scores_low() {
        // 孩子 in 40 of 47 documents, 咳嗽 in none: the hit has 孩子 only.
        let e = evidence([(idf(40, 47), EXACT), (idf(0, 47), 0.0)]);
        assert!(e < 0.1, "{e}");
        let all = evidence([(idf(40, 47), EXACT), (idf(3, 47), EXACT)]);
        assert_eq!(all, 1.0);
        let synonym = evidence([(idf(40, 47), EXACT), (idf(3, 47), SYNONYM)]);
        assert!(synonym < all && synonym > 0.5, "{synonym}");
    }

    #[test]
    fn lower_ranks_score_lower_and_nothing_leaves_0_to_1() {
        let best = combine(0.9, 1.0 / 61.0, 1.0 / 61.0);
        let second = combine(0.9, 1.0 / 62.0, 1.0 / 61.0);
        assert!((best - 0.9).abs() < 1e-6);
        assert!(second < best && second > 0.85, "{second}");
        assert_eq!(evidence([]), 0.0);
        assert_eq!(evidence([(f32::NAN.max(0.0), 1.0)]), 0.0);
        assert_eq!(combine(1.0, 2.0, 1.0), 1.0);
        assert_eq!(chars_credit(2, 1), CHARS / 2.0);
        assert_eq!(chars_credit(0, 0), 0.0);
    }

    #[test]
    fn a_lower_bm25_weighs_the_evidence_down_to_the_floor() {
        assert_eq!(ranked(0.8, 10.0, 10.0), 0.8);
        let half = ranked(0.8, 5.0, 10.0);
        assert!((half - 0.8 * (RANK_FLOOR + (1.0 - RANK_FLOOR) / 2.0)).abs() < 1e-6);
        assert!((ranked(0.8, 0.0, 10.0) - 0.8 * RANK_FLOOR).abs() < 1e-6);
        assert_eq!(ranked(0.0, 10.0, 10.0), 0.0, "no evidence, no score");
        assert!(ranked(1.0, 3.0, 10.0) > ranked(0.5, 10.0, 10.0));
    }

    #[test]
    fn vector_similarity_counts_only_above_the_floor() {
        assert_eq!(vector_evidence(0.45, 0.5), 0.0);
        assert_eq!(vector_evidence(0.5, 0.5), 0.0);
        assert!((vector_evidence(0.75, 0.5) - 0.5).abs() < 1e-6);
        assert_eq!(vector_evidence(1.0, 0.5), 1.0);
        assert!((vector_evidence(0.8, 0.0) - 0.8).abs() < 1e-6);
        assert_eq!(vector_evidence(-0.2, 0.0), 0.0);
        assert_eq!(vector_evidence(f32::NAN, 0.5), 0.0);
    }
}
