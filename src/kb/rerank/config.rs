//! The `[kb.rerank]` table: the optional reranking service.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// The most documents one rerank request may carry (Cohere's limit; the others allow as many).
pub const MAX_CANDIDATES: usize = 1000;

/// Settings of the reranking service. Reranking is off while `base_url` is unset.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RerankConfig {
    /// API root; `POST {base_url}/rerank` is called (e.g. `https://api.jina.ai/v1`).
    pub base_url: Option<String>,
    /// Bearer token; never logged (the Debug impl masks it).
    pub api_key: Option<Secret>,
    /// Reranking model, e.g. `jina-reranker-v2-base-multilingual` or `BAAI/bge-reranker-v2-m3`.
    pub model: Option<String>,
    /// Budget of one rerank request, in milliseconds; past it the unreranked order is used.
    pub timeout_ms: u64,
    /// How many search candidates are sent to the reranker (at least `kb.search.top_k`).
    pub candidates: usize,
    /// Hits whose `relevance_score` is below this are dropped (0..=1; 0 keeps every hit).
    pub min_score: f32,
    /// Characters of each candidate sent (title, then answer or text), cut beyond this.
    pub max_document_chars: usize,
}

impl Default for RerankConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            api_key: None,
            model: None,
            timeout_ms: 2_000,
            candidates: 20,
            min_score: 0.0,
            max_document_chars: 2_000,
        }
    }
}

impl RerankConfig {
    /// Whether reranking is configured.
    pub fn enabled(&self) -> bool {
        self.base_url
            .as_deref()
            .is_some_and(|b| !b.trim().is_empty())
    }

    /// What is wrong with these settings, one line each; `top_k` is `kb.search.top_k`.
    pub fn problems(&self, top_k: usize) -> Vec<String> {
        let mut problems = Vec::new();
        if !(0.0..=1.0).contains(&self.min_score) {
            problems.push(format!(
                "kb.rerank.min_score {} must be between 0 and 1",
                self.min_score
            ));
        }
        if !self.enabled() {
            return problems;
        }
        if let Some(base) = &self.base_url {
            match reqwest::Url::parse(base.trim()) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                _ => problems.push(format!(
                    "kb.rerank.base_url {:?} is not an http(s) URL (e.g. https://api.jina.ai/v1; /rerank is appended)",
                    crate::secret::redact(base)
                )),
            }
        }
        if self.model.as_deref().is_none_or(|m| m.trim().is_empty()) {
            problems.push(
                "kb.rerank.model is required when kb.rerank.base_url is set \
                 (e.g. jina-reranker-v2-base-multilingual or BAAI/bge-reranker-v2-m3)"
                    .into(),
            );
        }
        if self.timeout_ms == 0 {
            problems.push("kb.rerank.timeout_ms must be above 0".into());
        }
        if self.candidates < top_k || self.candidates > MAX_CANDIDATES {
            problems.push(format!(
                "kb.rerank.candidates {} must be between kb.search.top_k ({top_k}) and {MAX_CANDIDATES}",
                self.candidates
            ));
        }
        if self.max_document_chars == 0 {
            problems.push("kb.rerank.max_document_chars must be at least 1".into());
        }
        problems
    }
}

impl fmt::Debug for RerankConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RerankConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("model", &self.model)
            .field("timeout_ms", &self.timeout_ms)
            .field("candidates", &self.candidates)
            .field("min_score", &self.min_score)
            .field("max_document_chars", &self.max_document_chars)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> RerankConfig {
        RerankConfig {
            base_url: Some("http://127.0.0.1:9/v1".into()),
            model: Some("bge-reranker-v2-m3".into()),
            ..RerankConfig::default()
        }
    }

    #[test]
    fn off_by_default_and_without_problems() {
        let cfg = RerankConfig::default();
        assert!(!cfg.enabled());
        assert!(cfg.problems(3).is_empty());
        assert!(on().problems(3).is_empty());
    }

    #[test]
    fn every_bad_setting_is_named_with_what_to_do() {
        let cfg = RerankConfig {
            base_url: Some("jina.ai".into()),
            model: None,
            timeout_ms: 0,
            candidates: 2,
            min_score: 1.5,
            max_document_chars: 0,
            ..on()
        };
        let problems = cfg.problems(3).join("\n");
        for expected in [
            "kb.rerank.min_score 1.5 must be between 0 and 1",
            "kb.rerank.base_url \"jina.ai\" is not an http(s) URL",
            "kb.rerank.model is required",
            "kb.rerank.timeout_ms must be above 0",
            "kb.rerank.candidates 2 must be between kb.search.top_k (3) and 1000",
            "kb.rerank.max_document_chars must be at least 1",
        ] {
            assert!(
                problems.contains(expected),
                "missing `{expected}` in:\n{problems}"
            );
        }
    }

    #[test]
    fn debug_output_masks_the_api_key() {
        let cfg = RerankConfig {
            api_key: Some("rr-secret-key-123".into()),
            ..on()
        };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("rr-secret-key-123"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
}
