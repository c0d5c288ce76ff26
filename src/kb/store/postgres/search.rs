//! One search, one transaction (`SET LOCAL statement_timeout`, `SET LOCAL
//! hnsw.ef_search`): the full-text ranking of the side table ([`super::fulltext`]) and,
//! when the query has a vector, the vector ranking through the configured function with
//! the named arguments it has (LangChain's `match_documents`) or on the table with
//! `ORDER BY embedding <=> $1`, fused by [`crate::kb::fusion`] with the scores of
//! [`crate::kb::score`], as the embedded store fuses its own.
//!
//! `hnsw.ef_search` is at least the candidate count: pgvector's default 40 silently caps
//! an HNSW scan at 40 rows. Vector evidence = similarity = 1 − cosine distance.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use deadpool_postgres::Transaction;
use pgvector::Vector;
use serde_json::Value;

use super::fulltext::terms_table;
use super::pool::sql;
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
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(sql)?;
        tx.batch_execute(&format!(
            "SET LOCAL statement_timeout = {}; SET LOCAL hnsw.ef_search = {ef_search}",
            pg.statement_timeout_ms
        ))
        .await
        .map_err(sql)?;
        let side = terms_table(&pg.table);
        let has_terms: bool = tx
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&side])
            .await
            .map_err(sql)?
            .get(0);
        let text = if has_terms {
            self.text_ranking(&tx, query, limit).await?
        } else if vector.is_some() {
            if !self.inner.warned_no_terms.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    table = %pg.table,
                    "no full-text table {side}: searching by vector only; run `ragstream kb migrate`"
                );
            }
            Vec::new()
        } else {
            return Err(Error::store(format!(
                "full text needs ragstream's terms table {side}, which does not exist: run \
                 `ragstream kb migrate`"
            )));
        };
        let vector = vector.map(Vector::from);
        let near = match &vector {
            Some(v) => self.vector_ranking(&tx, v, limit).await?,
            None => Vec::new(),
        };
        let mut candidates = fuse(
            text.iter().map(|m| (m.id.clone(), m.score)),
            near.iter().map(|n| (n.id.clone(), n.similarity)),
            cfg.search.rrf_k,
            cfg.search.vector_floor,
        );
        if has_terms && !near.is_empty() {
            self.count_unsegmented_twice(&tx, &mut candidates, cfg.search.rrf_k)
                .await?;
        }
        if let Some(v) = &vector {
            // Full-text matches the vector ranking missed still show their cosine.
            let missing: Vec<&str> = candidates
                .iter()
                .filter(|c| c.vector_score.is_none())
                .map(|c| c.key.as_str())
                .collect();
            if !missing.is_empty() {
                let cosines: HashMap<String, f64> = tx
                    .query(
                        &format!(
                            "SELECT id::text, (1 - (embedding <=> $1))::float8 FROM {} \
                             WHERE id = ANY($2::text[]::{}[]) AND embedding IS NOT NULL",
                            self.inner.schema.table, self.inner.schema.id_type
                        ),
                        &[v, &missing],
                    )
                    .await
                    .map_err(sql)?
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
                for c in &mut candidates {
                    if c.vector_score.is_none() {
                        if let Some(cosine) = cosines.get(&c.key) {
                            c.set_cosine(*cosine as f32, cfg.search.vector_floor);
                        }
                    }
                }
            }
        }
        tx.commit().await.map_err(sql)?;

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

    /// A row another tool wrote since the last `kb migrate` has no terms, so it cannot be
    /// in the full-text ranking; rather than lose to every row found by both rankings,
    /// its vector rank stands for both (its fused value counts it twice).
    async fn count_unsegmented_twice(
        &self,
        tx: &Transaction<'_>,
        candidates: &mut [Candidate<String>],
        rrf_k: f32,
    ) -> Result<(), Error> {
        let vector_only: Vec<&str> = candidates
            .iter()
            .filter(|c| c.fulltext.is_none())
            .map(|c| c.key.as_str())
            .collect();
        if vector_only.is_empty() {
            return Ok(());
        }
        let side = terms_table(&self.inner.config.postgres.table);
        let segmented: HashSet<String> = tx
            .query(
                &format!("SELECT id FROM {side} WHERE id = ANY($1)"),
                &[&vector_only],
            )
            .await
            .map_err(sql)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for c in candidates.iter_mut() {
            if let (None, Some(rank)) = (c.fulltext, c.vector_rank) {
                if !segmented.contains(&c.key) {
                    c.rrf += 1.0 / (rrf_k + rank as f32);
                }
            }
        }
        candidates.sort_by(|a, b| b.rrf.total_cmp(&a.rrf));
        Ok(())
    }

    /// The `limit` nearest rows to `vector`, nearest first.
    async fn vector_ranking(
        &self,
        tx: &Transaction<'_>,
        vector: &Vector,
        limit: usize,
    ) -> Result<Vec<Near>, Error> {
        let statement = self.search_sql();
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
            return format!(
                "SELECT id::text, content, metadata, (1 - (embedding <=> $1))::float8 \
                 FROM {} WHERE embedding IS NOT NULL AND metadata @> $2 \
                 ORDER BY embedding <=> $1 LIMIT $3",
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
