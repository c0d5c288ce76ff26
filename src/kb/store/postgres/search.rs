//! One search: the full-text ranking of the side table ([`super::fulltext`] over [`super::terms`]) and, when
//! the query has a vector, the vector ranking through the configured function with the
//! named arguments it has (LangChain's `match_documents`) or on the table with
//! `ORDER BY embedding <=> $1`, fused by [`crate::kb::fusion`] with the scores of
//! [`crate::kb::score`], as the embedded store fuses its own.
//!
//! The two rankings run at the same time on two pooled connections, each in its own short
//! transaction with its own `SET LOCAL statement_timeout` (and, for the vector ranking,
//! `SET LOCAL hnsw.ef_search`), so a hybrid search takes about as long as the slower
//! ranking rather than both. A search never waits for its second connection: when the
//! pool has none free (`pool_size = 1`, or every connection busy) both rankings run on
//! the one connection, in one transaction, one after the other.
//!
//! `hnsw.ef_search` is at least the candidate count: pgvector's default 40 silently caps
//! an HNSW scan at 40 rows. Vector evidence = similarity = 1 − cosine distance.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use deadpool_postgres::Transaction;
use pgvector::Vector;
use serde_json::Value;
use tokio_postgres::SimpleQueryMessage;

use super::pool::{self, cached, sql};
use super::terms::{df_table, terms_table, totals_table};
use super::{PgStore, rows};
use crate::kb::fusion::{Candidate, fuse, select};
use crate::kb::{DetailedHit, Error, SearchParams};

/// A row of the vector ranking.
struct Near {
    /// `id` as text.
    id: String,
    /// `content`.
    content: String,
    /// `metadata`.
    metadata: Value,
    /// 1 − cosine distance.
    similarity: f32,
}

impl PgStore {
    /// The `top_k` best rows for `query` (and its `vector`, if any) scoring at least
    /// `min_score`.
    pub(crate) async fn search_fused(
        &self,
        query: &str,
        vector: Option<Vec<f32>>,
        params: &SearchParams,
    ) -> Result<Vec<DetailedHit>, Error> {
        if params.top_k == 0 {
            return Ok(Vec::new());
        }
        if let Some(v) = &vector {
            self.check_dim(v.len())?;
        }
        let cfg = &self.inner.config;
        let pg = &cfg.postgres;
        let limit = cfg.search.candidates.max(params.top_k);
        let ef_search = usize::try_from(pg.ef_search)
            .unwrap_or(usize::MAX)
            .max(limit)
            .min(1000);
        let vector = vector.map(Vector::from);
        // This connection first, then (never waiting for it) a second one for the vector
        // ranking, so that the two rankings run at the same time on the server.
        let mut client = self.client().await?;
        let mut spare = match &vector {
            Some(_) => pool::spare(&self.inner.pool).await,
            None => None,
        };
        let concurrent = spare.is_some();
        let tx = client.transaction().await.map_err(sql)?;
        // The settings and which full-text tables exist, in one round trip. No parallel
        // workers: the full-text candidates are read in order (tier by tier).
        let side = terms_table(&pg.table);
        let exists =
            |name: &str| format!("to_regclass('{}') IS NOT NULL", name.replace('\'', "''"));
        let main_side = async {
            let ef = if concurrent {
                String::new()
            } else {
                format!("SET LOCAL hnsw.ef_search = {ef_search}; ")
            };
            let checked = tx
                .simple_query(&format!(
                    "SET LOCAL statement_timeout = {}; {ef}\
                     SET LOCAL max_parallel_workers_per_gather = 0; \
                     SELECT {}, {} AND {}",
                    pg.statement_timeout_ms,
                    exists(&side),
                    exists(&df_table(&pg.table)),
                    exists(&totals_table(&pg.table)),
                ))
                .await
                .map_err(sql)?;
            let (has_terms, has_stats) = checked
                .iter()
                .find_map(|m| match m {
                    SimpleQueryMessage::Row(r) => {
                        Some((r.get(0) == Some("t"), r.get(1) == Some("t")))
                    }
                    _ => None,
                })
                .unwrap_or((false, false));
            if !has_terms && vector.is_none() {
                return Err(Error::store(format!(
                    "full text needs ragstream's terms table {side}, which does not exist: run \
                     `ragstream kb migrate`"
                )));
            }
            if !has_terms && !self.inner.warned_no_terms.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    table = %pg.table,
                    "no full-text table {side}: searching by vector only; run `ragstream kb migrate`"
                );
            }
            let text = async {
                if has_terms {
                    let v = vector.as_ref();
                    self.text_ranking(&tx, query, v, limit, has_stats).await
                } else {
                    Ok(Vec::new())
                }
            };
            // With one connection, both rankings on it: the client pipelines them.
            let near = async {
                match vector.as_ref().filter(|_| !concurrent) {
                    Some(v) => self.vector_side(&tx, v, limit, has_terms).await,
                    None => Ok((Vec::new(), HashSet::new())),
                }
            };
            let (text, near) = tokio::try_join!(text, near)?;
            Ok::<_, Error>((has_terms, text, near))
        };
        // The vector ranking on the second connection: its own short transaction with its
        // own statement timeout and HNSW candidate list.
        let spare_side = async {
            let (Some(client), Some(v)) = (spare.as_mut(), vector.as_ref()) else {
                return Ok((Vec::new(), HashSet::new()));
            };
            let tx = client.transaction().await.map_err(sql)?;
            let checked = tx
                .simple_query(&format!(
                    "SET LOCAL statement_timeout = {}; SET LOCAL hnsw.ef_search = {ef_search}; \
                     SELECT {}",
                    pg.statement_timeout_ms,
                    exists(&side)
                ))
                .await
                .map_err(sql)?;
            let has_terms = checked
                .iter()
                .any(|m| matches!(m, SimpleQueryMessage::Row(r) if r.get(0) == Some("t")));
            let found = self.vector_side(&tx, v, limit, has_terms).await?;
            tx.commit().await.map_err(sql)?;
            Ok(found)
        };
        // Either side failing drops the other (its transaction rolls back).
        let ((has_terms, text, near), spare_near) = tokio::try_join!(main_side, spare_side)?;
        tx.commit().await.map_err(sql)?;
        drop(spare);
        let (near, segmented) = if concurrent { spare_near } else { near };
        let mut candidates = fuse(
            text.iter().map(|m| (m.id.clone(), m.score)),
            near.iter().map(|n| (n.id.clone(), n.similarity)),
            cfg.search.rrf_k,
            cfg.search.vector_floor,
        );
        if has_terms {
            count_unsegmented_twice(&mut candidates, &segmented, cfg.search.rrf_k);
        }
        // Full-text matches the vector ranking missed still show their cosine.
        let cosines: HashMap<&str, f32> = text
            .iter()
            .filter_map(|m| Some((m.id.as_str(), m.cosine?)))
            .collect();
        for c in &mut candidates {
            if c.vector_score.is_none() {
                if let Some(cosine) = cosines.get(c.key.as_str()) {
                    c.set_cosine(*cosine, cfg.search.vector_floor);
                }
            }
        }

        let (candidates, best_rrf) = select(candidates, params.min_score, params.top_k);
        let mut hits = Vec::with_capacity(candidates.len());
        for c in &candidates {
            let row = text
                .iter()
                .find(|m| m.id == c.key)
                .map(|m| (&m.content, &m.metadata))
                .or_else(|| {
                    near.iter()
                        .find(|n| n.id == c.key)
                        .map(|n| (&n.content, &n.metadata))
                });
            let Some((content, metadata)) = row else {
                continue;
            };
            let fields = rows::fields(c.key.clone(), content.clone(), metadata);
            hits.push(rows::hit(fields, c, hits.len() + 1, best_rrf));
        }
        Ok(hits)
    }

    /// The vector ranking ([`Self::vector_ranking`]) and, when the full-text table exists
    /// (`has_terms`), which of its rows have terms (see [`count_unsegmented_twice`]).
    async fn vector_side(
        &self,
        tx: &Transaction<'_>,
        vector: &Vector,
        limit: usize,
        has_terms: bool,
    ) -> Result<(Vec<Near>, HashSet<String>), Error> {
        let near = self.vector_ranking(tx, vector, limit).await?;
        if !has_terms || near.is_empty() {
            return Ok((near, HashSet::new()));
        }
        let ids: Vec<&str> = near.iter().map(|n| n.id.as_str()).collect();
        let side = terms_table(&self.inner.config.postgres.table);
        let rows = cached(
            tx,
            &format!("SELECT id FROM {side} WHERE id = ANY($1)"),
            &[&ids],
        )
        .await?;
        let segmented = rows.iter().map(|r| r.get::<_, String>(0)).collect();
        Ok((near, segmented))
    }

    /// The `limit` nearest rows to `vector`, nearest first.
    async fn vector_ranking(
        &self,
        tx: &Transaction<'_>,
        vector: &Vector,
        limit: usize,
    ) -> Result<Vec<Near>, Error> {
        let statement = tx.prepare_cached(&self.search_sql()).await.map_err(sql)?;
        let filter: &Value = &self.inner.config.postgres.filter;
        let rows = i64::try_from(limit).unwrap_or(i64::MAX);
        let result = match &self.inner.schema.function {
            Some(f) => {
                let count = i32::try_from(limit).unwrap_or(i32::MAX);
                match (f.match_count, f.filter) {
                    (true, true) => tx.query(&statement, &[vector, &count, filter]).await,
                    (true, false) => tx.query(&statement, &[vector, &count]).await,
                    (false, true) => tx.query(&statement, &[vector, filter, &rows]).await,
                    (false, false) => tx.query(&statement, &[vector, &rows]).await,
                }
            }
            None if unfiltered(filter) => tx.query(&statement, &[vector, &rows]).await,
            None => tx.query(&statement, &[vector, filter, &rows]).await,
        };
        let mut near = Vec::new();
        for row in result.map_err(sql)? {
            let metadata: Option<Value> = row.try_get(2).map_err(sql)?;
            near.push(Near {
                id: row
                    .try_get::<_, Option<String>>(0)
                    .map_err(sql)?
                    .unwrap_or_default(),
                content: row
                    .try_get::<_, Option<String>>(1)
                    .map_err(sql)?
                    .unwrap_or_default(),
                metadata: metadata.unwrap_or(Value::Null),
                similarity: row.try_get::<_, f64>(3).map_err(sql)? as f32,
            });
        }
        Ok(near)
    }

    /// The vector search statement for the inspected schema.
    fn search_sql(&self) -> String {
        let schema = &self.inner.schema;
        let Some(f) = &schema.function else {
            // `metadata @> '{}'` holds for every row with metadata, but the planner
            // guesses it keeps 1% of the rows and then sorts those rather than scan the
            // HNSW index (a full scan of every vector, 150 ms on 20,000 rows): without a
            // filter the statement says what it means.
            let filter = if unfiltered(&self.inner.config.postgres.filter) {
                "metadata IS NOT NULL ORDER BY embedding <=> $1 LIMIT $2"
            } else {
                "metadata @> $2 ORDER BY embedding <=> $1 LIMIT $3"
            };
            return format!(
                "SELECT id::text, content, metadata, (1 - (embedding <=> $1))::float8 \
                 FROM {} WHERE embedding IS NOT NULL AND {filter}",
                schema.table
            );
        };
        // Named arguments, in the order the parameters are bound above.
        let mut args = vec!["query_embedding => $1".to_owned()];
        let mut n = 1;
        if f.match_count {
            n += 1;
            args.push(format!("match_count => ${n}"));
        }
        if f.filter {
            n += 1;
            args.push(format!("filter => ${n}"));
        }
        let limit = if f.match_count {
            String::new()
        } else {
            format!(" LIMIT ${}", n + 1)
        };
        format!(
            "SELECT id::text, content, metadata, similarity::float8 FROM {}({}){limit}",
            f.name,
            args.join(", ")
        )
    }
}

/// True when `filter` (`kb.postgres.filter`) keeps every row with metadata (`{}`).
fn unfiltered(filter: &Value) -> bool {
    filter.as_object().is_some_and(|o| o.is_empty())
}

/// A row another tool wrote since the last `kb migrate` has no terms, so it cannot be in
/// the full-text ranking; rather than lose to every row found by both rankings, its
/// vector rank stands for both (its fused value counts it twice). `segmented`: the rows of
/// the vector ranking that do have terms.
fn count_unsegmented_twice(
    candidates: &mut [Candidate<String>],
    segmented: &HashSet<String>,
    rrf_k: f32,
) {
    for c in candidates.iter_mut() {
        if let (None, Some(rank)) = (c.fulltext, c.vector_rank) {
            if !segmented.contains(&c.key) {
                c.rrf += 1.0 / (rrf_k + rank as f32);
            }
        }
    }
    candidates.sort_by(|a, b| b.rrf.total_cmp(&a.rrf));
}
