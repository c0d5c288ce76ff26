//! The knowledge-base tool: searches a store with the model's own query.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::prefetch::{Prefetch, Reuse};
use super::{Error, Output, Spec, Tool};
use crate::kb::{KnowledgeBase, SearchParams};

/// Searches the knowledge base with one argument of the call.
pub struct KnowledgeBaseTool {
    /// Name, description, schema.
    spec: Spec,
    /// The store searched.
    kb: Arc<dyn KnowledgeBase>,
    /// Hit count and thresholds.
    params: SearchParams,
    /// The argument that carries the query (e.g. `question`).
    query_argument: String,
    /// Similarity threshold of speculative searches; `None`: they are off.
    prefetch: Option<f32>,
}

impl KnowledgeBaseTool {
    /// A tool that searches `kb` with the argument named `query_argument`.
    pub fn new(
        spec: Spec,
        kb: Arc<dyn KnowledgeBase>,
        params: SearchParams,
        query_argument: String,
    ) -> Self {
        Self {
            spec,
            kb,
            params,
            query_argument,
            prefetch: None,
        }
    }

    /// Enables speculative searches of the user's question (see
    /// [`super::prefetch`]); a query whose bigram similarity to the question
    /// reaches `threshold` reuses the question's vector.
    pub fn with_prefetch(mut self, threshold: f32) -> Self {
        self.prefetch = Some(threshold);
        self
    }

    fn failed(&self, err: crate::kb::Error) -> Error {
        Error::Failed {
            name: self.spec.name.clone(),
            reason: err.to_string(),
        }
    }

    /// The query: the configured argument, else the only string argument.
    fn query<'a>(&self, arguments: &'a serde_json::Map<String, Value>) -> Result<&'a str, Error> {
        let named = arguments.get(&self.query_argument).and_then(Value::as_str);
        let mut strings = arguments.values().filter_map(Value::as_str);
        let fallback = match (strings.next(), strings.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        };
        named
            .or(fallback)
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .ok_or_else(|| Error::InvalidArguments {
                name: self.spec.name.clone(),
                reason: format!(
                    "the string argument `{}` is missing or empty",
                    self.query_argument
                ),
            })
    }
}

#[async_trait]
impl Tool for KnowledgeBaseTool {
    fn spec(&self) -> &Spec {
        &self.spec
    }

    async fn call(&self, arguments: &serde_json::Map<String, Value>) -> Result<Output, Error> {
        self.call_with(arguments, None).await
    }

    async fn call_with(
        &self,
        arguments: &serde_json::Map<String, Value>,
        prefetch: Option<&Prefetch>,
    ) -> Result<Output, Error> {
        let query = self.query(arguments)?;
        let reuse = match prefetch {
            Some(prefetch) => prefetch.reuse(&self.spec.name, query).await,
            None => Reuse::Nothing,
        };
        let hits = match reuse {
            Reuse::Hits(hits) => hits,
            Reuse::Vector(vector) => {
                let started = std::time::Instant::now();
                let detailed = self
                    .kb
                    .search_with_vector(query, vector, &self.params)
                    .await;
                metrics::histogram!(crate::telemetry::KB_SEARCH)
                    .record(started.elapsed().as_secs_f64());
                detailed
                    .map_err(|err| self.failed(err))?
                    .into_iter()
                    .map(|d| d.hit)
                    .collect()
            }
            Reuse::Nothing => crate::kb::timed_search(self.kb.as_ref(), query, &self.params)
                .await
                .map_err(|err| self.failed(err))?,
        };
        tracing::debug!(tool = %self.spec.name, query, hits = hits.len(), "knowledge base searched");
        Ok(Output::Hits(hits))
    }

    fn prefetch(&self, question: &str) -> Option<Prefetch> {
        let threshold = self.prefetch?;
        Prefetch::start(
            &self.spec.name,
            Arc::clone(&self.kb),
            self.params,
            question,
            threshold,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The tool over a real store holding one question (the directory lives as long
    /// as the tool is used).
    async fn tool() -> (tempfile::TempDir, KnowledgeBaseTool) {
        let (dir, store) = crate::kb::store::temporary(
            r#"{"id":"a","question":"孩子自伤怎么办","answer":"先保证安全"}"#,
        )
        .await;
        let tool = KnowledgeBaseTool::new(
            Spec {
                name: "autism_expert".into(),
                description: String::new(),
                parameters: json!({}),
                status_message: String::new(),
                timeout: std::time::Duration::from_secs(10),
            },
            Arc::new(store),
            SearchParams::default(),
            "question".into(),
        );
        (dir, tool)
    }

    fn args(value: Value) -> serde_json::Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[tokio::test]
    async fn searches_with_the_models_question() {
        let (_dir, tool) = tool().await;
        let Output::Hits(hits) = tool
            .call(&args(json!({"question": "自伤怎么办"})))
            .await
            .unwrap()
        else {
            panic!("expected hits")
        };
        assert_eq!(hits[0].id, "a");
    }

    #[tokio::test]
    async fn a_single_string_argument_under_another_name_is_used() {
        let (_dir, tool) = tool().await;
        let output = tool.call(&args(json!({"query": "自伤"}))).await.unwrap();
        assert!(matches!(output, Output::Hits(h) if h.len() == 1));
    }

    #[tokio::test]
    async fn a_missing_query_is_an_error_the_model_can_fix() {
        let (_dir, tool) = tool().await;
        let err = tool
            .call(&args(json!({"question": "  "})))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("`question` is missing or empty"),
            "{err}"
        );
    }
}
