//! The `[kb]` table of the app config: where the store lives and how it imports and searches.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::SearchParams;
pub use super::rerank::config::RerankConfig;
pub use super::store::postgres::config::PostgresConfig;
use crate::secret::Secret;

/// Knowledge-base settings. Every key has a default, so an empty `[kb]` table works.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KbConfig {
    /// Which store holds the knowledge base: `embedded` (the data directory) or `postgres`.
    pub store: StoreKind,
    /// Settings of the PostgreSQL store.
    pub postgres: PostgresConfig,
    /// Directory holding the embedded store (`kb.sqlite3` and `fulltext/`).
    pub data_dir: PathBuf,
    /// How documents and queries are turned into vectors.
    pub embeddings: EmbeddingsConfig,
    /// How Markdown and plain text are cut into chunks.
    pub chunk: ChunkConfig,
    /// How many hits a search returns and how much text they carry.
    pub search: SearchConfig,
    /// The optional rerank service that reorders search hits (off while unset).
    pub rerank: RerankConfig,
    /// Extra jieba dictionary (`WORD [FREQ] [TAG]` per line), on top of the built-in one.
    pub user_dictionary: Option<PathBuf>,
    /// Synonym groups for queries (equivalent terms separated by spaces, one group a line),
    /// on top of the built-in ones.
    pub synonyms: Option<PathBuf>,
    /// Whether queries are expanded with the built-in Chinese synonym groups (derived from
    /// the Chinese Open Wordnet, `resources/cow/`).
    pub builtin_synonyms: bool,
    /// Knowledge base imported by `serve` when the store is empty.
    pub sample: PathBuf,
}

impl Default for KbConfig {
    fn default() -> Self {
        Self {
            store: StoreKind::Embedded,
            postgres: PostgresConfig::default(),
            data_dir: PathBuf::from("data"),
            embeddings: EmbeddingsConfig::default(),
            chunk: ChunkConfig::default(),
            search: SearchConfig::default(),
            rerank: RerankConfig::default(),
            user_dictionary: None,
            synonyms: None,
            builtin_synonyms: true,
            sample: PathBuf::from("examples/kb/autism-qa.jsonl"),
        }
    }
}

impl fmt::Debug for KbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KbConfig")
            .field("store", &self.store)
            .field("postgres", &self.postgres)
            .field("data_dir", &self.data_dir)
            .field("embeddings", &self.embeddings)
            .field("chunk", &self.chunk)
            .field("search", &self.search)
            .field("rerank", &self.rerank)
            .field("user_dictionary", &self.user_dictionary)
            .field("synonyms", &self.synonyms)
            .field("builtin_synonyms", &self.builtin_synonyms)
            .field("sample", &self.sample)
            .finish()
    }
}

impl KbConfig {
    /// Fills the MiniMax key and group id from `MINIMAX_API_KEY` and `MINIMAX_GROUP_ID`
    /// (the classic back end's names) when the config leaves them empty.
    pub fn apply_env(&mut self) {
        self.apply_env_from(|name| std::env::var(name).ok());
    }

    /// [`KbConfig::apply_env`] with the environment given as a function, for tests.
    /// `DATABASE_URL` fills `kb.postgres.url` (without selecting the store).
    pub fn apply_env_from(&mut self, var: impl Fn(&str) -> Option<String>) {
        self.postgres.apply_env_from(&var);
        let embeddings = &mut self.embeddings;
        if embeddings.provider != Provider::Minimax {
            return;
        }
        if embeddings.api_key.is_none() {
            embeddings.api_key = var("MINIMAX_API_KEY")
                .filter(|v| !v.is_empty())
                .map(Secret::new);
        }
        if embeddings.group_id.is_none() {
            embeddings.group_id = var("MINIMAX_GROUP_ID").filter(|v| !v.is_empty());
        }
    }

    /// What is wrong with these settings, one line each (empty when they can work).
    ///
    /// `serve`, `ask`, `check-config` and every `kb` command refuse a config with problems,
    /// so a setting that cannot work is reported before anything runs.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let search = &self.search;
        if !(0.0..=1.0).contains(&search.min_score) {
            problems.push(format!(
                "kb.search.min_score {} must be between 0 and 1",
                search.min_score
            ));
        }
        if !(0.0..1.0).contains(&search.vector_floor) {
            problems.push(format!(
                "kb.search.vector_floor {} must be at least 0 and below 1",
                search.vector_floor
            ));
        }
        if search.top_k == 0 {
            problems.push("kb.search.top_k must be at least 1".into());
        }
        if self.chunk.overlap >= self.chunk.size {
            problems.push(format!(
                "kb.chunk.overlap ({}) must be smaller than kb.chunk.size ({})",
                self.chunk.overlap, self.chunk.size
            ));
        }
        if let Some(path) = &self.user_dictionary {
            if !path.is_file() {
                problems.push(format!(
                    "kb.user_dictionary: {} is not a file",
                    path.display()
                ));
            }
        }
        problems.extend(self.embeddings.problems());
        problems.extend(self.rerank.problems(search.top_k));
        if self.store == StoreKind::Postgres {
            // Without a provider the store searches full text only (issue 12).
            problems.extend(self.postgres.problems());
        }
        problems
    }

    /// The search limits as the [`KnowledgeBase`](super::KnowledgeBase) trait takes them.
    pub fn search_params(&self) -> SearchParams {
        SearchParams {
            top_k: self.search.top_k,
            min_score: self.search.min_score,
            max_context_chars: self.search.max_context_chars,
        }
    }
}

/// Which store holds the knowledge base.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// SQLite + tantivy in `kb.data_dir`.
    #[default]
    Embedded,
    /// A PostgreSQL table with pgvector (`[kb.postgres]`), e.g. LangChain's on Supabase.
    Postgres,
}

/// Which embeddings API to call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// No vectors: full-text search only.
    #[default]
    None,
    /// Any OpenAI-compatible `POST {base_url}/embeddings` (OpenAI, Ollama, vLLM, TEI, DashScope).
    Openai,
    /// MiniMax's native `POST {base_url}/embeddings?GroupId=…` with `type` `db` / `query`.
    Minimax,
}

/// Settings of the embeddings provider.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddingsConfig {
    /// `none`, `openai` or `minimax`.
    pub provider: Provider,
    /// API root, e.g. `https://api.openai.com/v1`; defaults per provider.
    pub base_url: Option<String>,
    /// Bearer token; never logged (the Debug impl masks it).
    pub api_key: Option<Secret>,
    /// Model name; defaults to `text-embedding-3-small` (openai) or `embo-01` (minimax).
    pub model: Option<String>,
    /// MiniMax group id, sent as the `GroupId` query parameter.
    pub group_id: Option<String>,
    /// Requested vector size (OpenAI `dimensions`); also checked against the store.
    pub dimensions: Option<usize>,
    /// Texts per request.
    pub batch_size: usize,
    /// Retries of a failed request (timeouts, 429, 5xx) before the import fails.
    pub max_retries: u32,
    /// Per-request timeout, in seconds.
    pub timeout_secs: u64,
    /// Budget for embedding a question at search time, retry included, in
    /// milliseconds; past it the search answers from full text alone.
    pub query_timeout_ms: u64,
}

impl Default for EmbeddingsConfig {
    fn default() -> Self {
        Self {
            provider: Provider::None,
            base_url: None,
            api_key: None,
            model: None,
            group_id: None,
            dimensions: None,
            batch_size: 32,
            max_retries: 4,
            timeout_secs: 60,
            query_timeout_ms: 2_000,
        }
    }
}

impl EmbeddingsConfig {
    /// What is wrong with the embeddings settings, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.query_timeout_ms == 0 {
            problems.push("kb.embeddings.query_timeout_ms must be above 0".into());
        }
        if self.provider == Provider::None {
            return problems;
        }
        if self.batch_size == 0 {
            problems.push("kb.embeddings.batch_size must be at least 1".into());
        }
        if self.dimensions == Some(0) {
            problems.push("kb.embeddings.dimensions must be above 0 (or left out)".into());
        }
        if let Some(base) = &self.base_url {
            if reqwest::Url::parse(base).is_err() {
                problems.push(format!(
                    "kb.embeddings.base_url {:?} is not a URL (e.g. https://api.openai.com/v1)",
                    crate::secret::redact(base)
                ));
            }
        }
        if self.provider == Provider::Minimax {
            if self.api_key.as_ref().is_none_or(|k| k.expose().is_empty()) {
                problems.push(
                    "kb.embeddings.provider `minimax` needs kb.embeddings.api_key or MINIMAX_API_KEY"
                        .into(),
                );
            }
            if self.group_id.as_deref().is_none_or(str::is_empty) {
                problems.push(
                    "kb.embeddings.provider `minimax` needs kb.embeddings.group_id or MINIMAX_GROUP_ID"
                        .into(),
                );
            }
        }
        problems
    }
}

impl fmt::Debug for EmbeddingsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddingsConfig")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("model", &self.model)
            .field("group_id", &self.group_id)
            .field("dimensions", &self.dimensions)
            .field("batch_size", &self.batch_size)
            .field("max_retries", &self.max_retries)
            .field("timeout_secs", &self.timeout_secs)
            .field("query_timeout_ms", &self.query_timeout_ms)
            .finish()
    }
}

/// How Markdown and plain text are chunked. Sizes count characters, not bytes or words.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChunkConfig {
    /// Largest chunk, in characters.
    pub size: usize,
    /// Characters repeated from the end of one chunk at the start of the next in a section.
    pub overlap: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        Self {
            size: 800,
            overlap: 100,
        }
    }
}

/// Search limits and fusion settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// The most hits to return.
    pub top_k: usize,
    /// Hits whose score (0..=1, see docs/knowledge-base.md) is below this are dropped.
    pub min_score: f32,
    /// Budget on the characters of context handed to the model, over all hits.
    pub max_context_chars: usize,
    /// The `k` of reciprocal rank fusion: `1 / (k + rank)`.
    pub rrf_k: f32,
    /// How many candidates each ranking (full-text, vector) contributes to the fusion.
    pub candidates: usize,
    /// The cosine similarity unrelated texts reach with the embedding model: vector
    /// matches at or below it are ignored, above it their evidence is
    /// `(cosine − floor) / (1 − floor)` (hybrid mode only).
    pub vector_floor: f32,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            top_k: 3,
            min_score: 0.08,
            max_context_chars: 4000,
            rrf_k: 60.0,
            candidates: 50,
            vector_floor: 0.5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_table_gives_the_defaults() {
        let cfg: KbConfig = toml::from_str("").unwrap();
        assert_eq!(cfg, KbConfig::default());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<KbConfig>("[embeddings]\nprovder = \"openai\"\n").unwrap_err();
        assert!(err.to_string().contains("provder"), "{err}");
    }

    #[test]
    fn debug_output_masks_the_api_key() {
        let mut cfg = KbConfig::default();
        cfg.embeddings.api_key = Some("sk-secret-123".into());
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("sk-secret-123"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }

    #[test]
    fn the_postgres_store_is_chosen_by_config_not_by_database_url() {
        let mut cfg = KbConfig::default();
        cfg.apply_env_from(|n| (n == "DATABASE_URL").then(|| "postgres://u@h/db".into()));
        assert_eq!(cfg.store, StoreKind::Embedded);
        assert!(cfg.postgres.url.is_some());
        let cfg: KbConfig = toml::from_str("store = \"postgres\"\n").unwrap();
        let problems = cfg.problems();
        assert!(
            problems.iter().any(|p| p.contains("DATABASE_URL")),
            "{problems:?}"
        );
        // No embeddings provider is no problem: the store searches full text only.
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    #[test]
    fn minimax_key_and_group_come_from_the_classic_env_names() {
        let mut cfg: KbConfig = toml::from_str("[embeddings]\nprovider = \"minimax\"\n").unwrap();
        cfg.apply_env_from(|name| match name {
            "MINIMAX_API_KEY" => Some("k".into()),
            "MINIMAX_GROUP_ID" => Some("g".into()),
            _ => None,
        });
        assert_eq!(
            cfg.embeddings.api_key.as_ref().map(Secret::expose),
            Some("k")
        );
        assert_eq!(cfg.embeddings.group_id.as_deref(), Some("g"));
    }

    #[test]
    fn configured_values_win_over_the_environment() {
        let mut cfg: KbConfig =
            toml::from_str("[embeddings]\nprovider = \"minimax\"\napi_key = \"mine\"\n").unwrap();
        cfg.apply_env_from(|_| Some("env".into()));
        assert_eq!(
            cfg.embeddings.api_key.as_ref().map(Secret::expose),
            Some("mine")
        );
        assert_eq!(cfg.embeddings.group_id.as_deref(), Some("env"));
    }
}
