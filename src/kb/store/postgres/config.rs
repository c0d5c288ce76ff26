//! `[kb.postgres]`: where the PostgreSQL store is and how it is searched.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// Settings of the PostgreSQL store (used when `kb.store = "postgres"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// Connection URL (`postgres://user:password@host:5432/db?sslmode=require`);
    /// `DATABASE_URL` overrides it. Masked in logs and errors like API keys.
    pub url: Option<Secret>,
    /// Table holding `id`, `content`, `metadata` (jsonb) and `embedding` (vector).
    pub table: String,
    /// SQL function searched through, as LangChain's `match_documents`; empty queries
    /// the table directly with `ORDER BY embedding <=> $1 LIMIT $n` (index-friendly).
    pub query_function: String,
    /// JSON filter passed to the function's `filter` argument (`metadata @> filter`
    /// when querying the table directly).
    pub filter: serde_json::Value,
    /// Most connections one process keeps open.
    pub pool_size: usize,
    /// Budget for opening one connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// `SET LOCAL statement_timeout` of every search, in milliseconds.
    pub statement_timeout_ms: u64,
    /// `SET LOCAL hnsw.ef_search` of every search; raised to the candidate count when smaller.
    pub ef_search: u32,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: None,
            table: "documents".into(),
            query_function: "match_documents".into(),
            filter: serde_json::Value::Object(serde_json::Map::new()),
            pool_size: 8,
            connect_timeout_ms: 5_000,
            statement_timeout_ms: 5_000,
            ef_search: 100,
        }
    }
}

impl PostgresConfig {
    /// Takes the URL from `DATABASE_URL` when it is set (it never selects the store by itself).
    pub fn apply_env_from(&mut self, var: impl Fn(&str) -> Option<String>) {
        if let Some(url) = var("DATABASE_URL").filter(|v| !v.is_empty()) {
            self.url = Some(Secret::new(url));
        }
    }

    /// What is wrong with these settings, one line each (checked only when the store is postgres).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match &self.url {
            None => problems.push(
                "kb.store = \"postgres\" needs kb.postgres.url or DATABASE_URL \
                 (e.g. postgres://user:password@host:5432/postgres)"
                    .into(),
            ),
            Some(url) if url.expose().parse::<tokio_postgres::Config>().is_err() => {
                problems.push(format!(
                    "kb.postgres.url {} is not a PostgreSQL connection URL \
                     (e.g. postgres://user:password@host:5432/postgres)",
                    crate::secret::redact(url.expose())
                ))
            }
            Some(_) => {}
        }
        if !is_identifier(&self.table, true) {
            problems.push(format!(
                "kb.postgres.table {:?} must be a table name (letters, digits, _; optionally schema.table)",
                self.table
            ));
        }
        if !self.query_function.is_empty() && !is_identifier(&self.query_function, true) {
            problems.push(format!(
                "kb.postgres.query_function {:?} must be a function name, or \"\" to query the table directly",
                self.query_function
            ));
        }
        if !self.filter.is_object() {
            problems.push(format!(
                "kb.postgres.filter must be a table of metadata keys (jsonb object), not {}",
                self.filter
            ));
        }
        if self.pool_size == 0 {
            problems.push("kb.postgres.pool_size must be at least 1".into());
        }
        if self.connect_timeout_ms == 0 {
            problems.push("kb.postgres.connect_timeout_ms must be above 0".into());
        }
        if self.statement_timeout_ms == 0 {
            problems.push("kb.postgres.statement_timeout_ms must be above 0".into());
        }
        if self.ef_search == 0 || self.ef_search > 1000 {
            problems.push(format!(
                "kb.postgres.ef_search {} must be between 1 and 1000",
                self.ef_search
            ));
        }
        problems
    }

    /// The table name split into schema (if given) and name.
    pub fn table_parts(&self) -> (Option<&str>, &str) {
        split(&self.table)
    }

    /// The function name split into schema (if given) and name.
    pub fn function_parts(&self) -> (Option<&str>, &str) {
        split(&self.query_function)
    }
}

/// `schema.name` → (`Some(schema)`, `name`).
fn split(name: &str) -> (Option<&str>, &str) {
    match name.split_once('.') {
        Some((schema, name)) => (Some(schema), name),
        None => (None, name),
    }
}

/// Whether `name` is a plain SQL identifier (optionally schema-qualified), so it can be
/// quoted into SQL without escaping surprises.
fn is_identifier(name: &str, qualified: bool) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 63
            && p.chars().all(|c| c.is_alphanumeric() || c == '_')
            && !p.starts_with(|c: char| c.is_ascii_digit())
    };
    match name.split_once('.') {
        Some((schema, rest)) if qualified => part(schema) && part(rest),
        Some(_) => false,
        None => part(name),
    }
}

/// `name` as a quoted SQL identifier (`"schema"."table"`).
pub fn quoted(name: &str) -> String {
    name.split('.')
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_overrides_the_configured_url() {
        let mut cfg = PostgresConfig {
            url: Some("postgres://a@h/db".into()),
            ..PostgresConfig::default()
        };
        cfg.apply_env_from(|n| (n == "DATABASE_URL").then(|| "postgres://b@h/db".into()));
        assert_eq!(
            cfg.url.as_ref().map(Secret::expose),
            Some("postgres://b@h/db")
        );
    }

    #[test]
    fn a_table_name_with_sql_in_it_is_refused() {
        let cfg = PostgresConfig {
            url: Some("postgres://a@h/db".into()),
            table: "documents; drop table x".into(),
            ..PostgresConfig::default()
        };
        let problems = cfg.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("kb.postgres.table"), "{problems:?}");
    }

    #[test]
    fn a_missing_url_names_both_ways_to_give_it() {
        let problems = PostgresConfig::default().problems();
        assert!(problems[0].contains("DATABASE_URL"), "{problems:?}");
    }

    #[test]
    fn the_debug_output_masks_the_url() {
        let cfg = PostgresConfig {
            url: Some("postgres://user:pw-secret-1234@h/db".into()),
            ..PostgresConfig::default()
        };
        assert!(!format!("{cfg:?}").contains("pw-secret-1234"));
    }
}
