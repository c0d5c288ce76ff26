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
                    let found = postings.seek(doc);
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
