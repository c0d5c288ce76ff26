//! The best `k` documents for a sum of boosted BM25 term scores, computed term at a time.
//!
//! A query has many terms (each word in two fields, its synonyms, its character
//! bigrams and single characters), and the single characters are in most documents.
//! tantivy's Block-WAND keeps every term's cursor sorted at every step, which costs
//! about ten times more than the words alone on 100,000 documents. Here instead:
//!
//! 1. the terms that can make a document a candidate ([`Role::Opens`]: words,
//!    synonyms, bigrams) add their scores to one accumulator per document, each list
//!    read once, block by block;
//! 2. the others ([`Role::Adds`]: single characters, in most documents) only add to
//!    candidates, and only to those that can still reach the `k`-th best score: a
//!    candidate whose sum so far plus the largest score those terms could add stays
//!    below the `k`-th best sum so far cannot enter the top `k`, so it is not looked up.
//!
//! Each term's score is tantivy's own BM25 ([`Bm25Weight`], the same statistics as a
//! `TermQuery`), so the result is the top `k` of the equivalent `BooleanQuery` of
//! should-clauses, restricted to documents that an opening term matches; ties go to
//! the lower document address, as in tantivy's `TopDocs`.

use tantivy::postings::Postings;
use tantivy::query::Bm25Weight;
use tantivy::schema::IndexRecordOption;
use tantivy::{DocAddress, DocId, DocSet, Score, Searcher, SegmentReader, TERMINATED, Term};

use crate::kb::Error;

use super::ft;

/// What a term's matches do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A match makes the document a candidate.
    Opens,
    /// A match only adds to a document an opening term matched.
    Adds,
}

/// One should-clause: a term, its weight, and what its matches do.
#[derive(Debug, Clone)]
pub struct Clause {
    /// Field and text.
    pub term: Term,
    /// Factor on the term's BM25 score.
    pub boost: f32,
    /// Whether a match makes a candidate.
    pub role: Role,
}

/// A clause with its BM25 weight over the whole index.
struct Weighted<'a> {
    /// The clause.
    clause: &'a Clause,
    /// Its BM25 weight, boost included.
    weight: Bm25Weight,
}

/// The best `k` documents by the summed score of `clauses`, best first, among the
/// documents at least one [`Role::Opens`] clause matches. Deleted documents are skipped.
pub fn top_k(
    searcher: &Searcher,
    clauses: &[Clause],
    k: usize,
) -> Result<Vec<(Score, DocAddress)>, Error> {
    if k == 0 {
        return Ok(Vec::new());
    }
    let mut weighted = Vec::with_capacity(clauses.len());
    for clause in clauses.iter().filter(|c| c.boost > 0.0) {
        let weight = Bm25Weight::for_terms(searcher, std::slice::from_ref(&clause.term))
            .map_err(ft)?
            .boost_by(clause.boost);
        weighted.push(Weighted { clause, weight });
    }
    let mut best = Vec::new();
    let mut scratch = Scratch::default();
    for (ord, segment) in searcher.segment_readers().iter().enumerate() {
        for (score, doc) in scratch.segment(segment, &weighted, k)? {
            best.push((score, DocAddress::new(ord as u32, doc)));
        }
    }
    best.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    best.truncate(k);
    Ok(best)
}

/// Buffers reused across the segments of one query.
#[derive(Default)]
struct Scratch {
    /// Score so far, per document of the segment (0: no opening term matched).
    sums: Vec<Score>,
    /// The documents with a non-zero sum, in the order they were first matched.
    candidates: Vec<DocId>,
}

impl Scratch {
    /// The best `k` (score, document) of one segment, best first.
    fn segment(
        &mut self,
        segment: &SegmentReader,
        clauses: &[Weighted<'_>],
        k: usize,
    ) -> Result<Vec<(Score, DocId)>, Error> {
        self.sums.clear();
        self.sums.resize(segment.max_doc() as usize, 0.0);
        self.candidates.clear();
        let alive = segment.alive_bitset();

        for c in clauses.iter().filter(|c| c.clause.role == Role::Opens) {
            let field = c.clause.term.field();
            let index = segment.inverted_index(field).map_err(ft)?;
            let Some(mut block) = index
                .read_block_postings(&c.clause.term, IndexRecordOption::WithFreqs)
                .map_err(ft)?
            else {
                continue;
            };
            let norms = fieldnorms(segment, field)?;
            while block.block_len() > 0 {
                for (i, &doc) in block.docs().iter().enumerate() {
                    if alive.is_some_and(|a| a.is_deleted(doc)) {
                        continue;
                    }
                    let score = c.weight.score(norms.fieldnorm_id(doc), block.freq(i));
                    if score <= 0.0 {
                        continue;
                    }
                    let sum = &mut self.sums[doc as usize];
                    if *sum == 0.0 {
                        self.candidates.push(doc);
                    }
                    *sum += score;
                }
                block.advance();
            }
        }

        let adding: Vec<&Weighted<'_>> = clauses
            .iter()
            .filter(|c| c.clause.role == Role::Adds)
            .collect();
        if !adding.is_empty() && !self.candidates.is_empty() {
            // Nothing below the k-th best sum so far minus what the adding clauses
            // could add at most can reach the top k: leave it out.
            let most: Score = adding.iter().map(|c| c.weight.max_score()).sum();
            let floor = kth_best(&self.sums, &self.candidates, k) - most;
            // Rounding: the bound must never drop a document that could tie.
            let floor = floor - floor.abs() * 1e-4 - 1e-4;
            let sums = &self.sums;
            self.candidates.retain(|&d| sums[d as usize] >= floor);
            self.candidates.sort_unstable();
            for c in adding {
                let field = c.clause.term.field();
                let index = segment.inverted_index(field).map_err(ft)?;
                let Some(mut postings) = index
                    .read_postings(&c.clause.term, IndexRecordOption::WithFreqs)
                    .map_err(ft)?
                else {
                    continue;
                };
                let norms = fieldnorms(segment, field)?;
                for &doc in &self.candidates {
                    let mut found = postings.doc();
                    if found < doc {
                        found = postings.seek(doc);
                    }
                    if found == TERMINATED {
                        break;
                    }
                    if found == doc {
                        self.sums[doc as usize] += c
                            .weight
                            .score(norms.fieldnorm_id(doc), postings.term_freq());
                    }
                }
            }
        }

        let mut scored: Vec<(Score, DocId)> = self
            .candidates
            .iter()
            .map(|&d| (self.sums[d as usize], d))
            .collect();
        let order =
            |a: &(Score, DocId), b: &(Score, DocId)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if scored.len() > k {
            scored.select_nth_unstable_by(k - 1, order);
            scored.truncate(k);
        }
        scored.sort_unstable_by(order);
        Ok(scored)
    }
}

/// The `k`-th largest sum among `docs` (the smallest when there are fewer).
fn kth_best(sums: &[Score], docs: &[DocId], k: usize) -> Score {
    if docs.len() < k {
        return 0.0;
    }
    let mut values: Vec<Score> = docs.iter().map(|&d| sums[d as usize]).collect();
    let (_, kth, _) = values.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    *kth
}

/// The field's length normaliser, or a constant one when the field keeps none
/// (as tantivy's `TermWeight` does).
fn fieldnorms(
    segment: &SegmentReader,
    field: tantivy::schema::Field,
) -> Result<tantivy::fieldnorm::FieldNormReader, Error> {
    Ok(segment
        .fieldnorms_readers()
        .get_field(field)
        .map_err(ft)?
        .unwrap_or_else(|| tantivy::fieldnorm::FieldNormReader::constant(segment.max_doc(), 1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tantivy::collector::{DocSetCollector, TopDocs};
    use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
    use tantivy::schema::{Field, INDEXED, STORED, Schema, TEXT};
    use tantivy::{Index, IndexWriter, TantivyDocument, doc};

    /// Words drawn by a fixed generator, so that scores vary and rarely tie.
    const WORDS: &[&str] = &[
        "alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta", "iota", "kappa",
    ];

    /// An index of `n` generated documents in two fields, in three segments, with
    /// every seventh document deleted.
    fn index(n: u64) -> (Index, Field, Field) {
        let mut schema = Schema::builder();
        let id = schema.add_u64_field("id", INDEXED | STORED);
        let title = schema.add_text_field("title", TEXT);
        let body = schema.add_text_field("body", TEXT);
        let index = Index::create_in_ram(schema.build());
        let mut writer: IndexWriter<TantivyDocument> = index.writer(15_000_000).unwrap();
        let mut seed = 7u64;
        let mut next = |m: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            (seed >> 33) % m
        };
        for i in 0..n {
            // "common" is in almost every body, like a frequent character.
            let mut text = if next(10) < 9 {
                "common ".repeat(1 + next(3) as usize)
            } else {
                String::new()
            };
            for _ in 0..3 + next(12) {
                text.push_str(WORDS[next(WORDS.len() as u64) as usize]);
                text.push(' ');
            }
            let heading = WORDS[next(WORDS.len() as u64) as usize];
            writer
                .add_document(doc!(id => i, title => heading, body => text))
                .unwrap();
            if i % (n / 3) == 0 {
                writer.commit().unwrap();
            }
        }
        for i in (0..n).step_by(7) {
            writer.delete_term(Term::from_field_u64(id, i));
        }
        writer.commit().unwrap();
        (index, title, body)
    }

    fn clause(field: Field, word: &str, boost: f32, role: Role) -> Clause {
        Clause {
            term: Term::from_field_text(field, word),
            boost,
            role,
        }
    }

    fn boolean(clauses: &[Clause]) -> BooleanQuery {
        BooleanQuery::new(
            clauses
                .iter()
                .map(|c| {
                    let term = TermQuery::new(c.term.clone(), IndexRecordOption::WithFreqs);
                    let query: Box<dyn Query> = Box::new(BoostQuery::new(Box::new(term), c.boost));
                    (Occur::Should, query)
                })
                .collect(),
        )
    }

    /// tantivy's own top k of the same should-clauses, among the documents an
    /// opening clause matches.
    fn reference(searcher: &Searcher, clauses: &[Clause], k: usize) -> Vec<(Score, DocAddress)> {
        let opening: Vec<Clause> = clauses
            .iter()
            .filter(|c| c.role == Role::Opens)
            .cloned()
            .collect();
        let matched = searcher
            .search(&boolean(&opening), &DocSetCollector)
            .unwrap();
        let all = searcher
            .search(
                &boolean(clauses),
                &TopDocs::with_limit(100_000).order_by_score(),
            )
            .unwrap();
        all.into_iter()
            .filter(|(_, a)| matched.contains(a))
            .take(k)
            .collect()
    }

    #[test]
    fn the_top_k_is_tantivys_boolean_query_top_k_over_documents_an_opening_term_matches() {
        let (index, title, body) = index(3000);
        let searcher = index.reader().unwrap().searcher();
        assert!(searcher.segment_readers().len() > 1, "several segments");
        let clauses = [
            clause(body, "alpha", 1.0, Role::Opens),
            clause(title, "alpha", 1.5, Role::Opens),
            clause(body, "theta", 1.0, Role::Opens),
            clause(body, "kappa", 0.6, Role::Opens),
            clause(body, "common", 0.1, Role::Adds),
            clause(body, "beta", 0.3, Role::Adds),
        ];
        for k in [1, 5, 50, 5000] {
            let want = reference(&searcher, &clauses, k);
            let got = top_k(&searcher, &clauses, k).unwrap();
            assert_eq!(got.len(), want.len(), "k = {k}");
            let true_score: HashMap<DocAddress, Score> = reference(&searcher, &clauses, 100_000)
                .into_iter()
                .map(|(s, a)| (a, s))
                .collect();
            for ((g, ga), (w, _)) in got.iter().zip(&want) {
                // Same scores in the same order; a document may differ only where two
                // scores tie (sums in another order round differently).
                assert!((g - w).abs() <= 1e-4 * w.abs(), "k = {k}: {g} against {w}");
                let t = true_score[ga];
                assert!(
                    (g - t).abs() <= 1e-4 * t.abs(),
                    "k = {k}: {ga:?} scored {g}, is {t}"
                );
            }
        }
    }

    #[test]
    fn a_document_only_adding_terms_match_is_no_candidate_and_deleted_ones_never_come_back() {
        let (index, title, body) = index(300);
        let searcher = index.reader().unwrap().searcher();
        let clauses = [
            clause(title, "gamma", 1.0, Role::Opens),
            clause(body, "common", 1.0, Role::Adds),
        ];
        let got = top_k(&searcher, &clauses, 1000).unwrap();
        let gamma = searcher
            .search(&boolean(&clauses[..1]), &DocSetCollector)
            .unwrap();
        assert_eq!(got.len(), gamma.len());
        assert!(got.iter().all(|(_, a)| gamma.contains(a)));
        assert!(top_k(&searcher, &clauses, 0).unwrap().is_empty());
        let nothing = [clause(body, "common", 1.0, Role::Adds)];
        assert!(top_k(&searcher, &nothing, 10).unwrap().is_empty());
    }
}
