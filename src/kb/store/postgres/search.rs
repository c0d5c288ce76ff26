//! Vector search: through the configured function with the named arguments it has
//! (LangChain's `match_documents`), or on the table with `ORDER BY embedding <=> $1`.
//! Each search is one transaction with `SET LOCAL statement_timeout` and
//! `SET LOCAL hnsw.ef_search` (at least the candidate count: pgvector's default 40
//! silently caps an HNSW scan at 40 rows). Score = similarity = 1 − cosine distance,
//! clamped to 0..=1.

use pgvector::Vector;
use serde_json::Value;

use super::pool::sql;
use super::{PgStore, rows};
use crate::kb::{DetailedHit, Error, SearchParams};

impl PgStore {
    /// The `top_k` nearest rows to `vector` scoring at least `min_score`.
    pub(crate) async fn search_vector(
        &self,
        vector: Vec<f32>,
        params: &SearchParams,
    ) -> Result<Vec<DetailedHit>, Error> {
        if params.top_k == 0 {
            return Ok(Vec::new());
        }
        self.check_dim(vector.len())?;
        let cfg = &self.inner.config;
        let pg = &cfg.postgres;
        let limit = i64::try_from(params.top_k).unwrap_or(i64::MAX);
        let ef_search = usize::try_from(pg.ef_search)
            .unwrap_or(usize::MAX)
            .max(cfg.search.candidates)
            .max(params.top_k)
            .min(1000);
        let statement = self.search_sql();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(sql)?;
        tx.batch_execute(&format!(
            "SET LOCAL statement_timeout = {}; SET LOCAL hnsw.ef_search = {ef_search}",
            pg.statement_timeout_ms
        ))
        .await
        .map_err(sql)?;
        let query = Vector::from(vector);
        let filter: &Value = &pg.filter;
        let result = match &self.inner.schema.function {
            Some(f) => {
                let count = i32::try_from(params.top_k).unwrap_or(i32::MAX);
                match (f.match_count, f.filter) {
                    (true, true) => tx.query(&statement, &[&query, &count, filter]).await,
                    (true, false) => tx.query(&statement, &[&query, &count]).await,
                    (false, true) => tx.query(&statement, &[&query, filter, &limit]).await,
                    (false, false) => tx.query(&statement, &[&query, &limit]).await,
                }
            }
            None => tx.query(&statement, &[&query, filter, &limit]).await,
        };
        let found = result.map_err(sql)?;
        tx.commit().await.map_err(sql)?;
        let mut hits = Vec::with_capacity(found.len());
        for row in found {
            let similarity = row.try_get::<_, f64>(3).map_err(sql)? as f32;
            if rows::score(similarity, hits.len() + 1, cfg.search.rrf_k) < params.min_score {
                continue;
            }
            let meta: Option<Value> = row.try_get(2).map_err(sql)?;
            let fields = rows::fields(
                row.try_get::<_, Option<String>>(0)
                    .map_err(sql)?
                    .unwrap_or_default(),
                row.try_get::<_, Option<String>>(1)
                    .map_err(sql)?
                    .unwrap_or_default(),
                meta.as_ref().unwrap_or(&Value::Null),
            );
            hits.push(rows::hit(
                fields,
                similarity,
                hits.len() + 1,
                cfg.search.rrf_k,
            ));
            if hits.len() == params.top_k {
                break;
            }
        }
        Ok(hits)
    }

    /// The search statement for the inspected schema.
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
