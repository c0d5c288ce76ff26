//! `ragstream kb migrate`: creates what the PostgreSQL store needs and is missing —
//! the `vector` extension, LangChain's table (JS layout: `id bigserial`), an HNSW index
//! on `embedding` (cosine), ragstream's unique index on its content hash and its index
//! on its document id, and its
//! full-text side table, filled for every row that has no terms yet, and its term
//! statistics (see `terms`). It never
//! drops, alters or rewrites what is there; running it again changes nothing.

use serde::Serialize;

use super::config::quoted;
use super::pool::{self, sql};
use super::rows::KEY;
use super::term_stats::TermDelta;
use crate::kb::Error;
use crate::kb::config::KbConfig;
use crate::kb::embed::Embeddings;

/// What `kb migrate` created (each false when it was already there).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Migrated {
    /// `CREATE EXTENSION vector`.
    pub extension: bool,
    /// The table, with this vector size.
    pub table: Option<usize>,
    /// An HNSW index on `embedding` (none existed, HNSW or IVFFlat).
    pub hnsw_index: bool,
    /// The partial unique index on ragstream's content hash.
    pub hash_index: bool,
    /// The partial index on ragstream's document id.
    pub id_index: bool,
    /// LangChain JS's `match_documents` (under `kb.postgres.query_function`'s name).
    pub function: bool,
    /// ragstream's full-text side table `<table>_ragstream_terms` with its GIN index.
    pub terms_table: bool,
    /// ragstream's full-text statistics `<table>_ragstream_df` and `<table>_ragstream_totals`.
    pub term_stats: bool,
    /// Terms removed because their rows were deleted by another tool.
    pub pruned: u64,
    /// Rows given their jieba-segmented terms (those written by other tools).
    pub segmented: usize,
}

/// Runs the migration in one transaction.
///
/// The vector size of a new table is `kb.embeddings.dimensions`, or what the configured
/// model returns for a probe text.
pub async fn migrate(cfg: &KbConfig) -> Result<Migrated, Error> {
    let pg = &cfg.postgres;
    let pool = pool::build(pg)?;
    let mut client = pool::client(&pool, pg).await?;
    let table = quoted(&pg.table);
    let (_, name) = pg.table_parts();
    let mut done = Migrated::default();
    let tx = client.transaction().await.map_err(sql)?;

    let has_vector = tx
        .query_opt("SELECT 1 FROM pg_extension WHERE extname = 'vector'", &[])
        .await
        .map_err(sql)?
        .is_some();
    if !has_vector {
        tx.batch_execute("CREATE EXTENSION IF NOT EXISTS vector")
            .await
            .map_err(|err| {
                Error::store(format!(
                    "cannot create the pgvector extension ({}); install pgvector on the server \
                     (on Supabase: Database → Extensions → vector)",
                    pool::describe(&err)
                ))
            })?;
        done.extension = true;
    }

    let exists = tx
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .map_err(sql)?
        .get::<_, bool>(0);
    if !exists {
        let dim = dimensions(cfg).await?;
        tx.batch_execute(&format!(
            "CREATE TABLE {table} (\n  id bigserial primary key,\n  content text,\n  \
             metadata jsonb,\n  embedding vector({dim})\n)"
        ))
        .await
        .map_err(sql)?;
        done.table = Some(dim);
    }

    let vector_index = tx
        .query_opt(
            "SELECT 1 FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam \
             WHERE i.indrelid = to_regclass($1) AND a.amname IN ('hnsw', 'ivfflat')",
            &[&table],
        )
        .await
        .map_err(sql)?
        .is_some();
    if !vector_index {
        let index = quoted(&format!("{name}_embedding_hnsw"));
        tx.batch_execute(&format!(
            "CREATE INDEX {index} ON {table} USING hnsw (embedding vector_cosine_ops)"
        ))
        .await
        .map_err(|err| {
            Error::store(format!(
                "cannot create the HNSW index on {}.embedding ({}); the column needs a size, \
                 e.g. vector(1536)",
                pg.table,
                pool::describe(&err)
            ))
        })?;
        done.hnsw_index = true;
    }

    if !has_index(&tx, &table, &format!("{name}_ragstream_hash")).await? {
        let index = quoted(&format!("{name}_ragstream_hash"));
        tx.batch_execute(&format!(
            "CREATE UNIQUE INDEX {index} ON {table} ((metadata->'{KEY}'->>'hash')) \
             WHERE metadata ? '{KEY}'"
        ))
        .await
        .map_err(sql)?;
        done.hash_index = true;
    }
    // Not unique: ragstream keeps one row per id, but rows written meanwhile by two
    // imports of different content under one id must not make the index impossible.
    if !has_index(&tx, &table, &format!("{name}_ragstream_id")).await? {
        let index = quoted(&format!("{name}_ragstream_id"));
        tx.batch_execute(&format!(
            "CREATE INDEX {index} ON {table} ((metadata->'{KEY}'->>'id')) \
             WHERE metadata ? '{KEY}'"
        ))
        .await
        .map_err(sql)?;
        done.id_index = true;
    }

    if !pg.query_function.is_empty() {
        let (schema, fname) = pg.function_parts();
        let has_function = tx
            .query_opt(
                "SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
                 WHERE p.proname = $1 AND (CASE WHEN $2::text IS NULL \
                 THEN pg_function_is_visible(p.oid) ELSE n.nspname = $2::text END)",
                &[&fname, &schema],
            )
            .await
            .map_err(sql)?
            .is_some();
        if !has_function {
            let types = tx
                .query_one(
                    "SELECT (SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
                             WHERE attrelid = to_regclass($1) AND attname = 'id'), \
                            (SELECT atttypmod FROM pg_attribute \
                             WHERE attrelid = to_regclass($1) AND attname = 'embedding')",
                    &[&table],
                )
                .await
                .map_err(sql)?;
            let id_type: Option<String> = types.get(0);
            let dim: Option<i32> = types.get(1);
            let (Some(id_type), Some(dim)) = (id_type, dim) else {
                return Err(Error::store(format!(
                    "table {} has no id or embedding column; ragstream reads LangChain's layout",
                    pg.table
                )));
            };
            tx.batch_execute(&match_documents(
                &quoted(&pg.query_function),
                &table,
                &id_type,
                dim,
            ))
            .await
            .map_err(sql)?;
            done.function = true;
        }
    }
    let ensured = super::terms::ensure(&tx, &pg.table).await?;
    done.terms_table = ensured.terms;
    done.term_stats = ensured.stats;
    let segmenter = crate::kb::segment::Segmenter::new(cfg.user_dictionary.as_deref())?;
    let mut terms = TermDelta::default();
    done.pruned = super::terms::prune(&tx, &pg.table, &mut terms).await?;
    done.segmented = super::terms::backfill(&tx, &pg.table, &segmenter, &mut terms).await?;
    super::term_stats::apply(&tx, &pg.table, &terms).await?;
    if done.hnsw_index || done.segmented > 0 {
        // Statistics for the planner at once, rather than at autovacuum's next round:
        // without them it guesses `metadata @> '{}'` keeps 1% of the rows and scans
        // every vector instead of the HNSW index (LangChain's `match_documents`).
        tx.batch_execute(&format!(
            "ANALYZE {table}; ANALYZE {}",
            super::terms::terms_table(&pg.table)
        ))
        .await
        .map_err(sql)?;
    }
    tx.commit().await.map_err(sql)?;
    Ok(done)
}

/// LangChain JS's `match_documents` (its Supabase integration docs), over `table`.
/// `id_type` is the table's (`bigint` in LangChain JS's table).
pub fn match_documents(function: &str, table: &str, id_type: &str, dim: i32) -> String {
    format!(
        "CREATE FUNCTION {function} (
  query_embedding vector({dim}),
  match_count int DEFAULT null,
  filter jsonb DEFAULT '{{}}'
) RETURNS TABLE (
  id {id_type},
  content text,
  metadata jsonb,
  embedding jsonb,
  similarity float
)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  SELECT
    id,
    content,
    metadata,
    (embedding::text)::jsonb AS embedding,
    1 - ({table}.embedding <=> query_embedding) AS similarity
  FROM {table}
  WHERE metadata @> filter
  ORDER BY {table}.embedding <=> query_embedding
  LIMIT match_count;
END;
$$"
    )
}

/// Whether `table` has an index named `index`.
async fn has_index(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    index: &str,
) -> Result<bool, Error> {
    tx.query_opt(
        "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE i.indrelid = to_regclass($1) AND c.relname = $2",
        &[&table, &index],
    )
    .await
    .map(|row| row.is_some())
    .map_err(sql)
}

/// The vector size for a new table: configured, or measured on the model.
async fn dimensions(cfg: &KbConfig) -> Result<usize, Error> {
    if let Some(dim) = cfg.embeddings.dimensions {
        return Ok(dim);
    }
    let embeddings = Embeddings::from_config(&cfg.embeddings)?.ok_or_else(|| {
        Error::Config(
            "kb migrate creates the table with the embedding model's vector size: set \
             kb.embeddings.provider (or kb.embeddings.dimensions)"
                .into(),
        )
    })?;
    Ok(embeddings.embed_query("dimension probe").await?.len())
}
