//! Hybrid search: full-text (BM25) and vector rankings fused by reciprocal rank fusion
//! ([`crate::kb::fusion`], shared with the PostgreSQL store).
//!
//! Order: each ranking contributes its best `search.candidates` rows; a row's fused
//! value is `Σ 1 / (rrf_k + rank)` over the rankings it appears in (rank from 1).
//! With provider `none` there is one ranking, so the order is plain BM25.
//!
//! Score (what `min_score` compares against, 0..=1, see [`crate::kb::score`]):
//! - full-text evidence: the IDF-weighted share of the query's words the hit contains
//!   (synonyms and shared character bigrams earn part credit);
//! - vector evidence: how far the cosine similarity of the query and hit vectors rises
//!   above `search.vector_floor` ([`crate::kb::score::vector_evidence`]); vector matches
//!   at or below the floor are not in the vector ranking at all, so a model's background
//!   similarity neither reorders the full-text hits nor lets an unrelated question through;
//! - `Hit.score` is the evidence (full text alone, or in hybrid mode the larger of the
//!   two) times the hit's fused value relative to the best hit's; hits come in the
//!   order of their scores ([`crate::kb::fusion::select`]).

use super::Store;
use super::db;
use super::vectors::VectorIndex;
use crate::kb::StoreError;
use crate::kb::fusion::{Shown, fuse, select};
use crate::kb::{DetailedHit, Error, SearchParams};

impl Store {
    /// Embeds the query when a provider is configured. A failing or slow embeddings
    /// API is not an error: the search falls back to full text, with a warning.
    /// (Whether the store holds vectors is only known after the blocking refresh, and a
    /// store imported with a provider always does, so the question is not asked here.)
    pub(crate) async fn query_vector(&self, query: &str) -> Option<Vec<f32>> {
        let embeddings = self.embeddings()?;
        match embeddings.embed_query(query).await {
            Ok(vector) => Some(vector),
            Err(err) => {
                tracing::warn!(%err, "query embedding failed; answering from full text only");
                None
            }
        }
    }

    /// [`Store::search_blocking`] on a blocking thread.
    pub(crate) async fn search_in_background(
        &self,
        query: &str,
        vector: Option<Vec<f32>>,
        params: &SearchParams,
    ) -> Result<Vec<DetailedHit>, Error> {
        let store = self.clone();
        let query = query.to_owned();
        let params = *params;
        tokio::task::spawn_blocking(move || {
            store.search_blocking(&query, vector.as_deref(), &params)
        })
        .await
        .map_err(|err| Error::store(format!("search task failed: {err}")))?
    }

    /// The synchronous search core: full text, plus vectors when `vector` is given.
    pub fn search_blocking(
        &self,
        query: &str,
        vector: Option<&[f32]>,
        params: &SearchParams,
    ) -> Result<Vec<DetailedHit>, Error> {
        if params.top_k == 0 {
            return Ok(Vec::new());
        }
        let cfg = self.config().search;
        let limit = cfg.candidates.max(params.top_k);
        let index = self.vectors()?;
        let vector = match vector {
            Some(v) if !index.is_empty() => {
                if v.len() != index.dim() {
                    let (stored_model, stored_dim) = self
                        .read(db::vector_model)?
                        .unwrap_or_else(|| ("unknown".to_owned(), index.dim()));
                    return Err(Error::Store(StoreError::DimensionMismatch {
                        data_dir: self.data_dir().display().to_string(),
                        stored_dim,
                        stored_model,
                        model: self.embeddings().map_or("?", |e| e.model()).to_owned(),
                        got: format!("returns {}-dimension vectors", v.len()),
                    }));
                }
                Some(VectorIndex::normalized(v))
            }
            _ => None,
        };
        // The two rankings are independent: in hybrid mode they run side by side on
        // rayon's pool (one thread per core), so a search takes about as long as the
        // slower of the two rather than their sum. Full text alone runs here.
        let (text, near) = match vector.as_deref() {
            Some(v) => rayon::join(
                || self.inner.fulltext.search(query, limit),
                || index.search(v, limit),
            ),
            None => (self.inner.fulltext.search(query, limit), Vec::new()),
        };
        let text = text?;

        let mut candidates = fuse(
            text.iter().map(|m| (m.rowid, m.score)),
            near.iter().map(|m| (m.rowid, m.score)),
            cfg.rrf_k,
            cfg.vector_floor,
        );
        if let Some(v) = vector.as_deref() {
            for c in &mut candidates {
                if c.vector_score.is_none() {
                    if let Some(cosine) = index.cosine(v, c.key) {
                        c.set_cosine(cosine, cfg.vector_floor);
                    }
                }
            }
        }
        let (candidates, best_rrf) = select(candidates, params.min_score, params.top_k);

        let rowids: Vec<i64> = candidates.iter().map(|c| c.key).collect();
        let rows = self.read(|conn| db::rows_by_rowid(conn, &rowids))?;
        let mut hits = Vec::with_capacity(rows.len());
        for (candidate, row) in candidates
            .iter()
            .filter_map(|c| rows.iter().find(|r| r.rowid == c.key).map(|r| (c, r)))
        {
            let doc = row.doc.clone();
            let shown = Shown {
                id: doc.id,
                kind: doc.kind,
                title: doc.title,
                body: doc.body,
                source: doc.source,
                tags: doc.tags,
            };
            hits.push(candidate.detailed(shown, hits.len() + 1, best_rrf));
        }
        Ok(hits)
    }
}
