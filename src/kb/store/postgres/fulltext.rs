//! Chinese full-text ranking for the PostgreSQL store, over ragstream's terms of the
//! table's rows ([`super::terms`]).
//!
//! Search (`PgStore::text_ranking`): candidates read tier by tier, up to
//! [`MAX_CANDIDATES`] rows: the rows holding every query word (or a synonym), then those
//! holding the rarest word and another, then those holding the rarest words
//! (`candidate_tiers`); they are ordered by BM25 (k1 1.2, b 0.75, IDF from the term
//! statistics), then scored with the evidence of [`crate::kb::score`] exactly as the
//! embedded store scores full text. The caller fuses this ranking with the vector ranking
//! ([`crate::kb::fusion`]).

use std::collections::{HashMap, HashSet};

use deadpool_postgres::GenericClient;
use pgvector::Vector;
use serde_json::Value;

use super::pool::{cached, sql};
use super::terms::{df_table, literal, terms_table, totals_table};
use super::{PgStore, rows};
use crate::kb::segment::{QueryTerm, Segmenter};
use crate::kb::{Error, score};

/// BM25 term-frequency saturation.
const K1: f32 = 1.2;
/// BM25 length normalisation.
const B: f32 = 0.75;
/// Weight of a synonym of a query word in the candidates' BM25 (as in the embedded store).
const SYNONYM_BOOST: f32 = 0.6;
/// Weight of a built-in related word in the candidates' BM25 (as in the embedded store).
const RELATED_BOOST: f32 = 0.3;
/// The most rows the candidate query reads, however common the query's words are:
/// reading and unnesting a candidate costs about 10 µs, so this bounds a search's time
/// (BENCHMARKS.md has the measured trade-off between the bound and agreement with the
/// embedded store's ranking).
pub const MAX_CANDIDATES: i64 = 500;

/// BM25 of one document.
fn bm25(terms: &[(usize, f32)], words: f32, avg_words: f32) -> f32 {
    let norm = K1 * (1.0 - B + B * words / avg_words.max(1.0));
    terms
        .iter()
        .map(|&(tf, idf)| idf * (tf as f32 * (K1 + 1.0)) / (tf as f32 + norm))
        .sum()
}

/// One full-text match: the row and the evidence for it.
#[derive(Debug, Clone)]
pub(crate) struct TextMatch {
    /// The row's `id` as text.
    pub id: String,
    /// The full-text score ([`crate::kb::score::ranked`]), 0..=1: the evidence weighed
    /// by the row's BM25 relative to the best, as in the embedded store.
    pub score: f32,
    /// The row's `content`.
    pub content: String,
    /// The row's `metadata`.
    pub metadata: Value,
    /// 1 − cosine distance to the query's vector, when both have one.
    pub cosine: Option<f32>,
}

impl PgStore {
    /// The best `limit` full-text matches of `query`, best first, in the transaction
    /// `tx` (which has the statement timeout set), scored as the embedded store scores
    /// full text ([`crate::kb::score`]): per query word, credit for the word in the title,
    /// in the body, a synonym, or a share of its character bigrams, weighted by IDF.
    ///
    /// Candidates are read tier by tier ([`candidate_tiers`]), at most [`MAX_CANDIDATES`]
    /// of them however common the words are; they are ordered by BM25 over the words, their
    /// synonyms and related words, and the best `limit` are scored and reordered by
    /// evidence weighted by BM25, as in the embedded store.
    pub(crate) async fn text_ranking(
        &self,
        tx: &impl GenericClient,
        query: &str,
        vector: Option<&Vector>,
        limit: usize,
        has_stats: bool,
    ) -> Result<Vec<TextMatch>, Error> {
        let segmenter = &self.inner.segmenter;
        let terms = segmenter.analyze(query);
        if terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let mut lexemes: Vec<String> = Vec::new();
        for term in &terms {
            for word in std::iter::once(&term.word)
                .chain(&term.synonyms)
                .chain(&term.related)
            {
                if !lexemes.contains(word) {
                    lexemes.push(word.clone());
                }
            }
        }
        let cfg = &self.inner.config;
        let table = &cfg.postgres.table;
        let side = terms_table(table);
        let literals: Vec<String> = lexemes.iter().map(|w| literal(w)).collect();
        let (total, avg_words, df) = if has_stats {
            // Counted when the side table last changed ([`refresh`]).
            let rows = cached(
                tx,
                &format!(
                    "SELECT t.docs, (t.words::float8 / greatest(t.docs, 1))::float8, \
                         d.lexeme, d.docs FROM {} t LEFT JOIN {} d ON d.lexeme = ANY($1)",
                    totals_table(table),
                    df_table(table)
                ),
                &[&lexemes],
            )
            .await?;
            let mut df: HashMap<String, u64> = HashMap::new();
            for r in &rows {
                if let Some(word) = r.get::<_, Option<String>>(2) {
                    let docs = r.get::<_, Option<i32>>(3).unwrap_or(0);
                    df.insert(word, u64::try_from(docs).unwrap_or(0));
                }
            }
            let total = rows.first().map_or(0, |r| r.get::<_, i64>(0));
            let avg = rows.first().map_or(0.0, |r| r.get::<_, f64>(1));
            (u64::try_from(total).unwrap_or(0), avg as f32, df)
        } else {
            // A side table from before the statistics (until `kb migrate` or an import
            // adds them): count with the GIN index on every search.
            let stats = tx
                .query_one(
                    &format!("SELECT count(*), coalesce(avg(words), 0)::float8 FROM {side}"),
                    &[],
                )
                .await
                .map_err(sql)?;
            let counted = cached(
                tx,
                &format!(
                    "SELECT u.w, (SELECT count(*) FROM {side} f WHERE f.terms @@ u.q::tsquery) \
                         FROM unnest($1::text[], $2::text[]) AS u(w, q)"
                ),
                &[&lexemes, &literals],
            )
            .await?;
            let df: HashMap<String, u64> = counted
                .iter()
                .map(|r| {
                    (
                        r.get::<_, String>(0),
                        u64::try_from(r.get::<_, i64>(1)).unwrap_or(0),
                    )
                })
                .collect();
            (
                u64::try_from(stats.get::<_, i64>(0)).unwrap_or(0),
                stats.get::<_, f64>(1) as f32,
                df,
            )
        };
        let doc_freq = |w: &str| df.get(w).copied().unwrap_or(0);
        let idf = |w: &str| score::idf(doc_freq(w), total);

        let Some(tiers) = candidate_tiers(&terms, &doc_freq, MAX_CANDIDATES as u64) else {
            return Ok(Vec::new());
        };
        // Each tier holds the one before it: its rows were read already.
        let before: Vec<Option<&str>> = std::iter::once(None)
            .chain(tiers.iter().map(|t| Some(t.as_str())))
            .take(tiers.len())
            .collect();
        // Each candidate's term frequencies of the query's words only: `setweight` marks
        // those words and `ts_filter` keeps them, so a row unnests a few words rather than
        // all of its own (about ten times faster). The tiers are read in order and the
        // reading stops at the bound.
        let found = cached(
            tx,
            &format!(
                "SELECT c.id, c.words, u.lexeme, coalesce(cardinality(u.positions), 1) \
                 FROM (SELECT f.id, f.words, f.terms \
                       FROM unnest($1::text[], $4::text[]) AS t(query, before) \
                       CROSS JOIN LATERAL (SELECT id, words, terms FROM {side} \
                                           WHERE terms @@ t.query::tsquery AND (t.before IS NULL \
                                                 OR NOT terms @@ t.before::tsquery)) f \
                       LIMIT $3) c \
                 CROSS JOIN LATERAL unnest(ts_filter(setweight(c.terms, 'A', $2), '{{a}}')) u \
                 WHERE u.lexeme = ANY($2)"
            ),
            &[&tiers, &lexemes, &MAX_CANDIDATES, &before],
        )
        .await?;
        // Per document: its length and each query word's frequency.
        let mut docs: HashMap<String, (i32, HashMap<String, usize>)> = HashMap::new();
        for row in &found {
            let (id, len, word, tf): (String, i32, String, i32) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            docs.entry(id)
                .or_insert_with(|| (len, HashMap::new()))
                .1
                .insert(word, usize::try_from(tf).unwrap_or(1));
        }
        let mut ranked: Vec<(String, f32, HashMap<String, usize>)> = docs
            .into_iter()
            .map(|(id, (len, tfs))| {
                let mut weighted = Vec::new();
                for term in &terms {
                    if let Some(tf) = tfs.get(&term.word) {
                        weighted.push((*tf, idf(&term.word)));
                    }
                    for synonym in &term.synonyms {
                        if let Some(tf) = tfs.get(synonym) {
                            weighted.push((*tf, SYNONYM_BOOST * idf(synonym)));
                        }
                    }
                    for related in &term.related {
                        if let Some(tf) = tfs.get(related) {
                            weighted.push((*tf, RELATED_BOOST * idf(related)));
                        }
                    }
                }
                let score = bm25(&weighted, len as f32, avg_words);
                (id, score, tfs)
            })
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked.truncate(limit);
        if ranked.is_empty() {
            return Ok(Vec::new());
        }

        let ids: Vec<&str> = ranked.iter().map(|(id, ..)| id.as_str()).collect();
        let rows = cached(
            tx,
            &format!(
                "SELECT id::text, coalesce(content, ''), coalesce(metadata, 'null'::jsonb), \
                     (1 - (embedding <=> $3::vector))::float8 \
                     FROM {} WHERE id = ANY($1::text[]::{}[]) AND metadata @> $2",
                self.inner.schema.table, self.inner.schema.id_type
            ),
            &[&ids, &cfg.postgres.filter, &vector],
        )
        .await?;
        let mut rows: HashMap<String, (String, Value, Option<f64>)> = rows
            .into_iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
            .collect();
        // A term weighs as much as its concept is rare: the most common of the word, its
        // synonyms and related words decides (宝宝 weighs as little as 孩子), as in the
        // embedded store.
        let idfs: Vec<f32> = terms
            .iter()
            .map(|t| {
                std::iter::once(&t.word)
                    .chain(&t.synonyms)
                    .chain(&t.related)
                    .map(|w| idf(w))
                    .fold(f32::INFINITY, f32::min)
            })
            .collect();
        let best = ranked.first().map_or(0.0, |(_, b, _)| *b);
        let mut matches: Vec<TextMatch> = Vec::with_capacity(ranked.len());
        for (id, bm25, held) in ranked {
            // Rows the filter excludes, or whose terms outlived them, are no match.
            let Some((content, metadata, cosine)) = rows.remove(&id) else {
                continue;
            };
            let f = rows::fields(id.clone(), content.clone(), &metadata);
            let credits = credits(segmenter, &terms, &f.title, &f.body, &held);
            let evidence = score::evidence(idfs.iter().copied().zip(credits));
            matches.push(TextMatch {
                id,
                score: score::ranked(evidence, bm25, best),
                content,
                metadata,
                cosine: cosine.map(|c| c as f32),
            });
        }
        // Ordered by the score (evidence weighted by BM25), so order and scores agree.
        matches.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(matches)
    }
}

/// The full-text candidates' queries (`tsquery` text), best first, each holding the one
/// before it; the candidate statement reads them in order, skipping rows read already,
/// until `bound` rows:
/// 1. the rows holding every query term (a term: its word or a synonym; its built-in
///    related words only when neither is in any row, because those groups are large and
///    would make every index scan read tens of thousands of rows);
/// 2. for three terms or more, the rows holding the rarest term and any other;
/// 3. the rows holding any of the rarest terms, as many terms as fit the bound by their
///    document counts (at least the rarest).
///
/// A row holding more of the query, and its rarest term, is read before one holding less:
/// when the rarest term alone is in more rows than the bound, an arbitrary slice of them
/// misses rows that hold two of the query's terms (BENCHMARKS.md measures how far the
/// result agrees with the embedded store's unbounded ranking). `None` when no term is in
/// any row.
fn candidate_tiers(
    terms: &[QueryTerm],
    doc_freq: &impl Fn(&str) -> u64,
    bound: u64,
) -> Option<Vec<String>> {
    // Each term held by some row: its alternatives as one OR group, and the concept's count.
    let mut groups: Vec<(u64, String)> = terms
        .iter()
        .filter_map(|term| {
            let mut held: Vec<&String> = std::iter::once(&term.word)
                .chain(&term.synonyms)
                .filter(|w| doc_freq(w) > 0)
                .collect();
            if held.is_empty() {
                held = term.related.iter().filter(|w| doc_freq(w) > 0).collect();
            }
            let count = held.iter().map(|w| doc_freq(w)).max()?;
            let alternatives: Vec<String> = held.iter().map(|w| literal(w)).collect();
            Some((count, format!("({})", alternatives.join(" | "))))
        })
        .collect();
    let mut seen = HashSet::new();
    groups.retain(|(_, g)| seen.insert(g.clone()));
    groups.sort_by_key(|(count, _)| *count);
    if groups.is_empty() {
        return None;
    }
    let every = groups
        .iter()
        .map(|(_, g)| g.as_str())
        .collect::<Vec<_>>()
        .join(" & ");
    let mut tiers = vec![every];
    if groups.len() >= 3 {
        let others: Vec<&str> = groups[1..].iter().map(|(_, g)| g.as_str()).collect();
        tiers.push(format!("{} & ({})", groups[0].1, others.join(" | ")));
    }
    if groups.len() >= 2 {
        let mut rarest: Vec<&str> = Vec::new();
        let mut covered = 0u64;
        for (count, group) in &groups {
            if !rarest.is_empty() && covered + count > bound {
                break;
            }
            covered += count;
            rarest.push(group);
        }
        tiers.push(rarest.join(" | "));
    }
    Some(tiers)
}

/// The credit a hit with `title` and `body` earns for each query term, as the embedded
/// store gives it: the word in the title, else in the text, else a synonym, else a
/// built-in related word, else the share of the word's character bigrams the text
/// contains. `held`: the query's words, synonyms and related words among the row's terms
/// (its `content` as segmented), so only the short title is segmented here.
fn credits(
    segmenter: &Segmenter,
    terms: &[QueryTerm],
    title: &str,
    body: &str,
    held: &HashMap<String, usize>,
) -> Vec<f32> {
    let full = format!("{title}\n{body}");
    let title_words: HashSet<String> = segmenter.words(title).into_iter().collect();
    let has = |w: &String| held.contains_key(w) || title_words.contains(w);
    terms
        .iter()
        .map(|term| {
            if title_words.contains(&term.word) {
                score::EXACT
            } else if has(&term.word) {
                score::BODY
            } else if term.synonyms.iter().any(has) {
                score::SYNONYM
            } else if term.related.iter().any(has) {
                score::RELATED
            } else {
                let found = term.bigrams.iter().filter(|b| full.contains(*b)).count();
                score::chars_credit(term.bigrams.len(), found)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(word: &str, synonyms: &[&str], related: &[&str]) -> QueryTerm {
        QueryTerm {
            word: word.to_owned(),
            synonyms: synonyms.iter().map(|w| (*w).to_owned()).collect(),
            related: related.iter().map(|w| (*w).to_owned()).collect(),
            bigrams: Vec::new(),
            unigrams: Vec::new(),
        }
    }

    #[test]
    fn candidates_come_in_tiers_each_holding_the_one_before() {
        let counts: HashMap<&str, u64> = [
            ("撞头", 900),
            ("撞墙", 300),
            ("孩子", 50_000),
            ("宝宝", 8_000),
            ("总是", 20_000),
            ("打人", 600),
        ]
        .into();
        let df = |w: &str| counts.get(w).copied().unwrap_or(0);
        let terms = [
            term("孩子", &["宝宝"], &[]),
            term("撞头", &["撞墙"], &[]),
            term("总是", &[], &["打人"]),
        ];
        let tiers = candidate_tiers(&terms, &df, 500).unwrap();
        assert_eq!(
            tiers,
            [
                "('撞头' | '撞墙') & ('总是') & ('孩子' | '宝宝')",
                "('撞头' | '撞墙') & (('总是') | ('孩子' | '宝宝'))",
                "('撞头' | '撞墙')",
            ],
            "the rarest concept (by its most common word) leads; related words stay out \
             when the word itself is in some row"
        );
        // With a bound that fits them, the next rarest terms join the last tier.
        let wide = candidate_tiers(&terms, &df, 25_000).unwrap();
        assert_eq!(wide[2], "('撞头' | '撞墙') | ('总是')");
        // Two terms: no middle tier. A word in no row stands in by its related words.
        let two = [term("头撞墙", &[], &["撞墙"]), term("孩子", &[], &[])];
        assert_eq!(
            candidate_tiers(&two, &df, 500).unwrap(),
            ["('撞墙') & ('孩子')", "('撞墙')"]
        );
        assert_eq!(candidate_tiers(&[term("天气", &[], &[])], &df, 500), None);
    }

    #[test]
    fn bm25_prefers_more_occurrences_and_shorter_texts() {
        assert!(bm25(&[(2, 1.0)], 10.0, 10.0) > bm25(&[(1, 1.0)], 10.0, 10.0));
        assert!(bm25(&[(1, 1.0)], 5.0, 10.0) > bm25(&[(1, 1.0)], 20.0, 10.0));
    }
}
