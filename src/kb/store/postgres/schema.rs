//! What the table and the query function look like, read from the catalog at connect
//! time (`pg_attribute`, `pg_proc`), so LangChain's JS and Python schemas are both used
//! as they are.

use deadpool_postgres::Object;

use super::config::{PostgresConfig, quoted};
use super::pool::sql;
use crate::kb::Error;

/// How rows get their `id` on insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdColumn {
    /// The column has a default (bigserial, identity, `gen_random_uuid()`): omit it.
    Default,
    /// `uuid` without a default (LangChain Python): a UUIDv5 of ragstream's id.
    Uuid,
    /// `text` without a default: ragstream's id itself.
    Text,
    /// Any other type without a default: imports fail with the `ALTER TABLE` to run.
    Unsupported(String),
}

/// The query function's arguments, as `pg_proc` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// Schema-qualified, quoted name.
    pub name: String,
    /// Whether it takes `match_count` (LangChain JS); without it the function sorts the
    /// whole table and the caller cuts with `LIMIT`.
    pub match_count: bool,
    /// Whether it takes `filter`.
    pub filter: bool,
}

/// The table and function as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// Quoted table name.
    pub table: String,
    /// How inserts set `id`.
    pub id: IdColumn,
    /// The `id` column's type as SQL spells it (`bigint`, `uuid`, `text` …), so that
    /// lookups by id compare with the column's own type and use its index.
    pub id_type: String,
    /// Declared size of `embedding` (`vector(N)`), if it has one.
    pub dim: Option<usize>,
    /// Whether `embedding` is `NOT NULL` (then rows cannot be written without vectors).
    pub embedding_required: bool,
    /// The query function, or `None` to query the table directly.
    pub function: Option<Function>,
}

/// Reads the schema; a missing table, column or function is an error saying what to run.
pub async fn inspect(client: &Object, cfg: &PostgresConfig) -> Result<Schema, Error> {
    let table = quoted(&cfg.table);
    let columns = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
                    a.atttypmod, (a.atthasdef OR a.attidentity <> ''), a.attnotnull \
             FROM pg_attribute a \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
            &[&table],
        )
        .await
        .map_err(sql)?;
    if columns.is_empty() {
        return Err(Error::store(format!(
            "table {} does not exist in the database; create it with `ragstream kb migrate` \
             or the SQL in the README (section \"PostgreSQL and Supabase\")",
            cfg.table
        )));
    }
    let column = |name: &str| {
        columns
            .iter()
            .find(|r| r.get::<_, String>(0) == name)
            .map(|r| {
                (
                    r.get::<_, String>(1),
                    r.get::<_, i32>(2),
                    r.get::<_, bool>(3),
                    r.get::<_, bool>(4),
                )
            })
    };
    for needed in ["id", "content", "metadata", "embedding"] {
        if column(needed).is_none() {
            return Err(Error::store(format!(
                "table {} has no `{needed}` column; ragstream reads LangChain's layout \
                 (id, content text, metadata jsonb, embedding vector)",
                cfg.table
            )));
        }
    }
    let (id_type, _, id_default, _) = column("id").expect("checked above");
    let id = match (id_default, id_type.as_str()) {
        (true, _) => IdColumn::Default,
        (false, "uuid") => IdColumn::Uuid,
        (false, "text" | "character varying") => IdColumn::Text,
        (false, other) => IdColumn::Unsupported(other.to_owned()),
    };
    let (embedding_type, typmod, _, embedding_required) =
        column("embedding").expect("checked above");
    if !embedding_type.starts_with("vector") {
        return Err(Error::store(format!(
            "column {}.embedding is {embedding_type}, not a pgvector `vector`",
            cfg.table
        )));
    }
    let dim = usize::try_from(typmod).ok().filter(|d| *d > 0);
    let function = if cfg.query_function.is_empty() {
        None
    } else {
        Some(function(client, cfg).await?)
    };
    Ok(Schema {
        table,
        id,
        id_type,
        dim,
        embedding_required,
        function,
    })
}

/// Finds the query function and its input argument names in `pg_proc`.
async fn function(client: &Object, cfg: &PostgresConfig) -> Result<Function, Error> {
    let (schema, name) = cfg.function_parts();
    let rows = client
        .query(
            "SELECT coalesce(p.proargnames::text[], '{}'), \
                    coalesce(p.proargmodes::text[], '{}'), p.pronargs::int4 \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE p.proname = $1 \
               AND (CASE WHEN $2::text IS NULL THEN pg_function_is_visible(p.oid) \
                         ELSE n.nspname = $2::text END)",
            &[&name, &schema],
        )
        .await
        .map_err(sql)?;
    let mut found = Vec::new();
    for row in rows {
        let names: Vec<String> = row.get(0);
        let modes: Vec<String> = row.get(1);
        let nargs = usize::try_from(row.get::<_, i32>(2)).unwrap_or(0);
        // Without modes every named argument is an input; with them, inputs are i/b/v.
        let inputs: Vec<String> = if modes.is_empty() {
            names.into_iter().take(nargs).collect()
        } else {
            names
                .into_iter()
                .zip(modes)
                .filter(|(_, m)| matches!(m.as_str(), "i" | "b" | "v"))
                .map(|(n, _)| n)
                .collect()
        };
        found.push(inputs);
    }
    let Some(inputs) = found
        .into_iter()
        .find(|inputs| inputs.iter().any(|n| n == "query_embedding"))
    else {
        return Err(Error::store(format!(
            "function {} (kb.postgres.query_function) taking `query_embedding` does not exist; \
             create LangChain's match_documents (README, section \"PostgreSQL and Supabase\") \
             or set query_function = \"\" to query the table directly",
            cfg.query_function
        )));
    };
    Ok(Function {
        name: quoted(&cfg.query_function),
        match_count: inputs.iter().any(|n| n == "match_count"),
        filter: inputs.iter().any(|n| n == "filter"),
    })
}
