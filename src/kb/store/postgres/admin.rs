//! `kb list`, `kb stats`, `kb count`, `kb delete` on PostgreSQL. Counts and lists cover
//! every row of the table; deletes touch ragstream's own rows only.

use serde_json::Value;

use super::PgStore;
use super::pool::sql;
use super::rows::{self, KEY};
use super::term_stats::TermDelta;
use crate::kb::{Error, Listed, Selection, Stats};

impl PgStore {
    /// Rows in the table (ragstream's and others').
    pub(crate) async fn count_rows(&self) -> Result<u64, Error> {
        let client = self.client().await?;
        let table = &self.inner.schema.table;
        let row = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .map_err(sql)?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    /// Rows by imported file and line (foreign rows last, by id).
    pub(crate) async fn list_rows(
        &self,
        origin: Option<String>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<Listed>, Error> {
        let client = self.client().await?;
        let table = &self.inner.schema.table;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let found = client
            .query(
                &format!(
                    "SELECT id::text, content, metadata, embedding IS NOT NULL FROM {table} \
                     WHERE $1::text IS NULL OR metadata->'{KEY}'->>'origin' = $1::text \
                     ORDER BY metadata->'{KEY}'->>'origin' NULLS LAST, \
                              (metadata->'{KEY}'->>'line')::bigint, id::text \
                     LIMIT $2 OFFSET $3"
                ),
                &[&origin, &limit, &offset],
            )
            .await
            .map_err(sql)?;
        Ok(found
            .into_iter()
            .map(|row| {
                let meta: Option<Value> = row.get(2);
                let f = rows::fields(
                    row.get::<_, Option<String>>(0).unwrap_or_default(),
                    row.get::<_, Option<String>>(1).unwrap_or_default(),
                    meta.as_ref().unwrap_or(&Value::Null),
                );
                Listed {
                    id: f.id,
                    kind: f.kind,
                    title: f.title,
                    source: f.source,
                    origin: f.origin,
                    line: f.line,
                    has_vector: row.get(3),
                }
            })
            .collect())
    }

    /// What `kb stats` prints. There is no write generation (0) and no separate
    /// full-text index (`fulltext_documents` is 0).
    pub(crate) async fn stats_rows(&self) -> Result<Stats, Error> {
        let client = self.client().await?;
        let table = &self.inner.schema.table;
        let totals = client
            .query_one(
                &format!(
                    "SELECT count(*), \
                            count(*) FILTER (WHERE metadata->'{KEY}'->>'kind' = 'qa'), \
                            count(embedding) FROM {table}"
                ),
                &[],
            )
            .await
            .map_err(sql)?;
        let origins = client
            .query(
                &format!(
                    "SELECT coalesce(metadata->'{KEY}'->>'origin', '(other writers)'), count(*) \
                     FROM {table} GROUP BY 1 ORDER BY 2 DESC, 1"
                ),
                &[],
            )
            .await
            .map_err(sql)?;
        let side = super::terms::terms_table(&self.inner.config.postgres.table);
        let has_terms: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&side])
            .await
            .map_err(sql)?
            .get(0);
        let fulltext: i64 = if has_terms {
            client
                .query_one(&format!("SELECT count(*) FROM {side}"), &[])
                .await
                .map_err(sql)?
                .get(0)
        } else {
            0
        };
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        let documents = n(totals.get(0));
        let qa_pairs = n(totals.get(1));
        let with_vectors = n(totals.get(2));
        Ok(Stats {
            documents,
            qa_pairs,
            passages: documents - qa_pairs,
            with_vectors,
            embedding_model: self
                .inner
                .embeddings
                .as_ref()
                .filter(|_| with_vectors > 0)
                .map(|e| e.model().to_owned()),
            embedding_dim: self.inner.schema.dim.filter(|_| with_vectors > 0),
            origins: origins
                .iter()
                .map(|r| (r.get::<_, String>(0), n(r.get(1))))
                .collect(),
            fulltext_documents: n(fulltext),
            generation: 0,
        })
    }

    /// Deletes ragstream's selected rows in one transaction; other writers' rows stay.
    /// An unknown id, or a file with no documents, deletes nothing and says so (as the
    /// embedded store does).
    pub(crate) async fn delete_rows(&self, selection: Selection) -> Result<usize, Error> {
        let mut client = self.client().await?;
        let table = &self.inner.schema.table;
        let own = format!("DELETE FROM {table} WHERE metadata ? '{KEY}'");
        // Each delete returns the row ids, so their full-text terms go in the same
        // transaction.
        let returning = "RETURNING id::text";
        let tx = client.transaction().await.map_err(sql)?;
        let deleted = match selection {
            Selection::Ids(ids) => {
                let found: Vec<String> = tx
                    .query(
                        &format!(
                            "SELECT metadata->'{KEY}'->>'id' FROM {table} WHERE {}",
                            rows::with_ids("$1")
                        ),
                        &[&ids],
                    )
                    .await
                    .map_err(sql)?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                if let Some(missing) = ids.iter().find(|id| !found.contains(id)) {
                    return Err(Error::store(format!(
                        "no document with id `{missing}` imported by ragstream; nothing was deleted \
                         (see `kb list`; rows other tools wrote are never deleted)"
                    )));
                }
                tx.query(
                    &format!(
                        "DELETE FROM {table} WHERE {} {returning}",
                        rows::with_ids("$1")
                    ),
                    &[&ids],
                )
                .await
            }
            Selection::Origin(origin) => {
                let n = tx
                    .query(
                        &format!("{own} AND metadata->'{KEY}'->>'origin' = $1 {returning}"),
                        &[&origin],
                    )
                    .await
                    .map_err(sql)?;
                if n.is_empty() {
                    return Err(Error::store(format!(
                        "no documents were imported from `{origin}`; nothing was deleted (see `kb stats`)"
                    )));
                }
                Ok(n)
            }
            Selection::All => tx.query(&format!("{own} {returning}"), &[]).await,
        };
        let deleted: Vec<String> = deleted.map_err(sql)?.iter().map(|r| r.get(0)).collect();
        let table = &self.inner.config.postgres.table;
        let mut terms = TermDelta::default();
        super::terms::forget(&tx, table, &deleted, &mut terms).await?;
        super::term_stats::apply(&tx, table, &terms).await?;
        tx.commit().await.map_err(sql)?;
        Ok(deleted.len())
    }
}
