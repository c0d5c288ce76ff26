//! Chinese full text for the PostgreSQL store. PostgreSQL's parsers do not segment
//! Chinese, so ragstream keeps its own side table `<table>_ragstream_terms`
//! (`id text primary key` = the row's id as text, `terms tsvector` of jieba-segmented
//! words with positions, `words int` = the text's length in words) with a GIN index.
//! LangChain's columns are never touched. `kb import` fills it for ragstream's rows,
//! `kb migrate` for every row that has none (rows written by other tools).
//!
//! Search: candidates by `terms @@ 'w1' | 'w2' …`, ranked here by BM25 (k1 1.2, b 0.75,
//! IDF from the candidates' document frequencies), scored as the embedded store scores
//! full text: BM25 divided by the sum of the IDFs of the query's known words, capped at 1.

use std::collections::{BTreeMap, HashMap};

use deadpool_postgres::GenericClient;
use serde_json::Value;

use super::config::quoted;
use super::pool::sql;
use super::{PgStore, rows};
use crate::kb::segment::Segmenter;
use crate::kb::{DetailedHit, Error, SearchParams};

/// BM25 term-frequency saturation.
const K1: f32 = 1.2;
/// BM25 length normalisation.
const B: f32 = 0.75;

/// The side table's name (quoted, in the table's schema) for `kb.postgres.table`.
pub fn terms_table(table: &str) -> String {
    quoted(&format!("{table}_ragstream_terms"))
}

/// Creates the side table and its GIN index if missing; true when it created the table.
pub async fn ensure(client: &impl GenericClient, table_name: &str) -> Result<bool, Error> {
    let terms = terms_table(table_name);
    let exists = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&terms])
        .await
        .map_err(sql)?
        .get::<_, bool>(0);
    if exists {
        return Ok(false);
    }
    let name = table_name.rsplit('.').next().unwrap_or(table_name);
    let index = quoted(&format!("{name}_ragstream_terms_gin"));
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {terms} (id text PRIMARY KEY, terms tsvector NOT NULL, \
             words int NOT NULL); \
             CREATE INDEX IF NOT EXISTS {index} ON {terms} USING gin (terms)"
        ))
        .await
        .map_err(sql)?;
    Ok(true)
}

/// Stores (or replaces) the segmented terms of row `id`.
pub async fn write(
    client: &impl GenericClient,
    table_name: &str,
    segmenter: &Segmenter,
    id: &str,
    content: &str,
) -> Result<(), Error> {
    let (vector, words) = tsvector(&segmenter.words(content));
    client
        .execute(
            &format!(
                "INSERT INTO {} (id, terms, words) VALUES ($1, $2::text::tsvector, $3) \
                 ON CONFLICT (id) DO UPDATE SET terms = EXCLUDED.terms, words = EXCLUDED.words",
                terms_table(table_name)
            ),
            &[&id, &vector, &words],
        )
        .await
        .map_err(sql)?;
    Ok(())
}

/// Segments every row of `table_name` (`kb.postgres.table`) that has no terms yet;
/// returns how many.
pub async fn backfill(
    client: &impl GenericClient,
    table_name: &str,
    segmenter: &Segmenter,
) -> Result<usize, Error> {
    let missing = client
        .query(
            &format!(
                "SELECT t.id::text, coalesce(t.content, '') FROM {} t WHERE NOT EXISTS \
                 (SELECT 1 FROM {} f WHERE f.id = t.id::text)",
                quoted(table_name),
                terms_table(table_name)
            ),
            &[],
        )
        .await
        .map_err(sql)?;
    for row in &missing {
        let (id, content): (String, String) = (row.get(0), row.get(1));
        write(client, table_name, segmenter, &id, &content).await?;
    }
    Ok(missing.len())
}

/// A `tsvector` literal of `words` with positions (PostgreSQL keeps at most 256
/// positions per word, each at most 16383), and the number of words.
fn tsvector(words: &[String]) -> (String, i32) {
    let mut positions: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, w) in words.iter().enumerate() {
        let p = positions.entry(w.as_str()).or_default();
        if p.len() < 256 {
            p.push((i + 1).min(16383));
        }
    }
    let mut out = String::new();
    for (w, p) in positions {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&literal(w));
        out.push(':');
        let p: Vec<String> = p.iter().map(usize::to_string).collect();
        out.push_str(&p.join(","));
    }
    (out, i32::try_from(words.len()).unwrap_or(i32::MAX))
}

/// A quoted lexeme for `tsvector`/`tsquery` input.
fn literal(word: &str) -> String {
    format!("'{}'", word.replace('\\', "\\\\").replace('\'', "''"))
}

/// BM25 of one document.
fn bm25(terms: &[(usize, f32)], words: f32, avg_words: f32) -> f32 {
    let norm = K1 * (1.0 - B + B * words / avg_words.max(1.0));
    terms
        .iter()
        .map(|&(tf, idf)| idf * (tf as f32 * (K1 + 1.0)) / (tf as f32 + norm))
        .sum()
}

impl PgStore {
    /// Full-text hits: the best `top_k` rows for the query's segmented words.
    pub(crate) async fn search_text(
        &self,
        query: &str,
        params: &SearchParams,
    ) -> Result<Vec<DetailedHit>, Error> {
        let mut words = self.inner.segmenter.query_terms(query);
        words.sort();
        words.dedup();
        if params.top_k == 0 || words.is_empty() {
            return Ok(Vec::new());
        }
        let cfg = &self.inner.config;
        let terms = terms_table(&cfg.postgres.table);
        let tsquery: Vec<String> = words.iter().map(|w| literal(w)).collect();
        let tsquery = tsquery.join(" | ");
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(sql)?;
        tx.batch_execute(&format!(
            "SET LOCAL statement_timeout = {}",
            cfg.postgres.statement_timeout_ms
        ))
        .await
        .map_err(sql)?;
        let stats = tx
            .query_one(
                &format!("SELECT count(*), coalesce(avg(words), 0)::float8 FROM {terms}"),
                &[],
            )
            .await
            .map_err(|err| {
                Error::store(format!(
                    "full text needs ragstream's terms table ({}): run `ragstream kb migrate`",
                    super::pool::describe(&err)
                ))
            })?;
        let n = stats.get::<_, i64>(0) as f32;
        let avg_words = stats.get::<_, f64>(1) as f32;
        let found = tx
            .query(
                &format!(
                    "SELECT f.id, f.words, u.lexeme, coalesce(cardinality(u.positions), 1) \
                     FROM {terms} f CROSS JOIN LATERAL unnest(f.terms) u \
                     WHERE f.terms @@ $1::text::tsquery AND u.lexeme = ANY($2)"
                ),
                &[&tsquery, &words],
            )
            .await
            .map_err(sql)?;
        // Per document: length and (word, tf); per word: document frequency.
        let mut docs: HashMap<String, (i32, Vec<(String, usize)>)> = HashMap::new();
        let mut df: HashMap<String, usize> = HashMap::new();
        for row in &found {
            let (id, len, word, tf): (String, i32, String, i32) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            *df.entry(word.clone()).or_default() += 1;
            docs.entry(id)
                .or_insert_with(|| (len, Vec::new()))
                .1
                .push((word, usize::try_from(tf).unwrap_or(1)));
        }
        let idf = |word: &str| {
            let df = df.get(word).copied().unwrap_or(0) as f32;
            (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
        };
        let known: f32 = df.keys().map(|w| idf(w)).sum();
        let mut ranked: Vec<(String, f32)> = docs
            .into_iter()
            .map(|(id, (len, tfs))| {
                let tfs: Vec<(usize, f32)> = tfs.iter().map(|(w, tf)| (*tf, idf(w))).collect();
                let score = bm25(&tfs, len as f32, avg_words);
                (id, (score / known.max(f32::EPSILON)).min(1.0))
            })
            .filter(|(_, s)| *s >= params.min_score)
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked.truncate(cfg.search.candidates.max(params.top_k));
        let ids: Vec<&str> = ranked.iter().map(|(id, _)| id.as_str()).collect();
        let rows = tx
            .query(
                &format!(
                    "SELECT id::text, content, metadata FROM {} \
                     WHERE id::text = ANY($1) AND metadata @> $2",
                    self.inner.schema.table
                ),
                &[&ids, &cfg.postgres.filter],
            )
            .await
            .map_err(sql)?;
        tx.commit().await.map_err(sql)?;
        let mut hits = Vec::with_capacity(params.top_k);
        for (id, score) in &ranked {
            let Some(row) = rows.iter().find(|r| r.get::<_, String>(0) == *id) else {
                continue;
            };
            let meta: Option<Value> = row.get(2);
            let fields = rows::fields(
                id.clone(),
                row.get::<_, Option<String>>(1).unwrap_or_default(),
                meta.as_ref().unwrap_or(&Value::Null),
            );
            let rank = hits.len() + 1;
            let mut hit = rows::hit(fields, *score, rank, cfg.search.rrf_k);
            hit.vector_rank = None;
            hit.vector_score = None;
            hit.fulltext_rank = Some(rank);
            hit.fulltext_score = Some(*score);
            hits.push(hit);
            if hits.len() == params.top_k {
                break;
            }
        }
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tsvector_literal_counts_repeats_and_escapes_quotes() {
        let words: Vec<String> = ["自伤", "it's", "自伤"].map(String::from).to_vec();
        assert_eq!(tsvector(&words), ("'it''s':2 '自伤':1,3".to_owned(), 3));
    }

    #[test]
    fn bm25_prefers_more_occurrences_and_shorter_texts() {
        assert!(bm25(&[(2, 1.0)], 10.0, 10.0) > bm25(&[(1, 1.0)], 10.0, 10.0));
        assert!(bm25(&[(1, 1.0)], 5.0, 10.0) > bm25(&[(1, 1.0)], 20.0, 10.0));
    }
}
