//! The rerank API most services share: `POST {base_url}/rerank` with
//! `{"model", "query", "documents": [...], "top_n"}`, answered with
//! `{"results": [{"index", "relevance_score"}, ...]}` (Jina, Cohere-compatible
//! gateways, SiliconFlow, Xinference, vLLM). Other fields of the reply are ignored.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::RerankConfig;
use crate::http_body::{read_capped, show_bytes};
use crate::kb::Error;
use crate::kb::embed::excerpt;
use crate::secret::redact;

/// The most a rerank reply may weigh. Results take about 50 bytes per document;
/// services that echo the documents back (Jina by default) add at most
/// `candidates × max_document_chars` characters, well under this.
pub const MAX_REPLY_BYTES: usize = 4 * 1024 * 1024;

/// How one rerank request failed; the search then keeps its own order.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// No complete answer within `kb.rerank.timeout_ms`.
    #[error("no answer within {ms} ms (kb.rerank.timeout_ms)")]
    Timeout {
        /// The budget.
        ms: u64,
    },
    /// The service could not be reached or the connection broke.
    #[error("request failed: {0}")]
    Unreachable(String),
    /// A non-success HTTP status.
    #[error("{url} returned {status}: {body}{hint}")]
    Status {
        /// The endpoint.
        url: String,
        /// The status.
        status: reqwest::StatusCode,
        /// The start of the body, redacted.
        body: String,
        /// What to check, for statuses that have an obvious cause.
        hint: &'static str,
    },
    /// A success status with a reply that does not fit the documents sent.
    #[error("{url} answered with an unusable body ({reason})")]
    Malformed {
        /// The endpoint.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Failure {
    /// The `outcome` label of `ragstream_kb_rerank_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Timeout { .. } => "timeout",
            Self::Unreachable(_) => "unreachable",
            Self::Status { .. } => "http_error",
            Self::Malformed { .. } => "malformed",
        }
    }
}

/// One document's relevance, as the service judged it.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Scored {
    /// Position of the document in the request.
    pub index: usize,
    /// Relevance in 0..=1, higher is better.
    pub relevance_score: f32,
}

/// The request body.
#[derive(Serialize)]
struct Request<'a> {
    /// Reranking model.
    model: &'a str,
    /// The user's (or the model's) query.
    query: &'a str,
    /// The candidates, in search order.
    documents: &'a [String],
    /// How many results the service returns.
    top_n: usize,
}

/// The parts of the reply that are used.
#[derive(Deserialize)]
struct Reply {
    /// Results, usually best first.
    results: Vec<Scored>,
}

/// A reranking service: one HTTP client with the configured timeout.
pub struct Client {
    /// Shared HTTP client (timeouts set).
    http: reqwest::Client,
    /// `{base_url}/rerank`.
    url: String,
    /// Bearer token, if the service needs one.
    api_key: Option<String>,
    /// Reranking model.
    model: String,
    /// The request budget, for messages.
    timeout_ms: u64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &redact(&self.url))
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// The client for an enabled `cfg`; the whole request (connect, send, read) is
    /// bounded by `timeout_ms`, as the embeddings client bounds its own.
    pub fn new(cfg: &RerankConfig) -> Result<Self, Error> {
        let timeout = Duration::from_millis(cfg.timeout_ms.max(1));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|err| Error::Config(format!("cannot build the HTTP client: {err}")))?;
        let base = cfg.base_url.as_deref().unwrap_or_default().trim();
        Ok(Self {
            http,
            url: format!("{}/rerank", base.trim_end_matches('/')),
            api_key: cfg
                .api_key
                .as_ref()
                .map(|k| k.expose().trim().to_owned())
                .filter(|k| !k.is_empty()),
            model: cfg.model.as_deref().unwrap_or_default().trim().to_owned(),
            timeout_ms: cfg.timeout_ms,
        })
    }

    /// Scores `documents` for `query`; the result has at most `top_n` entries, each
    /// naming a distinct document with a finite score in 0..=1, best first.
    pub async fn rerank(
        &self,
        query: &str,
        documents: &[String],
        top_n: usize,
    ) -> Result<Vec<Scored>, Failure> {
        let mut request = self.http.post(&self.url).json(&Request {
            model: &self.model,
            query,
            documents,
            top_n,
        });
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|err| self.failure(err))?;
        let status = response.status();
        let body = read_capped(response, MAX_REPLY_BYTES)
            .await
            .map_err(|err| self.failure(err))?;
        let truncated = body.truncated;
        let body = body.text();
        if !status.is_success() {
            let hint = match status.as_u16() {
                401 | 403 => "; check kb.rerank.api_key",
                404 => "; check kb.rerank.base_url (/rerank is appended) and kb.rerank.model",
                _ => "",
            };
            return Err(Failure::Status {
                url: redact(&self.url).into_owned(),
                status,
                body: excerpt(&body),
                hint,
            });
        }
        let malformed = |reason: String| Failure::Malformed {
            url: redact(&self.url).into_owned(),
            reason,
        };
        if truncated {
            return Err(malformed(format!(
                "the reply is larger than {}",
                show_bytes(MAX_REPLY_BYTES)
            )));
        }
        let reply: Reply = serde_json::from_str(&body)
            .map_err(|err| malformed(format!("{err}: {}", excerpt(&body))))?;
        check(reply.results, documents.len(), top_n).map_err(malformed)
    }

    /// Classifies a reqwest error; the URL is left out (it may carry credentials).
    fn failure(&self, err: reqwest::Error) -> Failure {
        if err.is_timeout() {
            Failure::Timeout {
                ms: self.timeout_ms,
            }
        } else {
            Failure::Unreachable(redact(&err.without_url().to_string()).into_owned())
        }
    }
}

/// Checks the results against the `sent` documents and sorts them best first.
fn check(mut results: Vec<Scored>, sent: usize, top_n: usize) -> Result<Vec<Scored>, String> {
    let mut seen = vec![false; sent];
    for r in &results {
        match seen.get_mut(r.index) {
            None => {
                return Err(format!(
                    "index {} is out of range for {sent} documents",
                    r.index
                ));
            }
            Some(true) => return Err(format!("index {} is listed twice", r.index)),
            Some(slot) => *slot = true,
        }
        if !(0.0..=1.0).contains(&r.relevance_score) {
            return Err(format!(
                "relevance_score {} of index {} is not between 0 and 1 \
                 (a service returning raw logits must be set to normalise them)",
                r.relevance_score, r.index
            ));
        }
    }
    if results.len() > top_n {
        return Err(format!(
            "{} results where top_n asked for {top_n}",
            results.len()
        ));
    }
    // Ties keep the search order.
    results.sort_by(|a, b| {
        b.relevance_score
            .total_cmp(&a.relevance_score)
            .then(a.index.cmp(&b.index))
    });
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(index: usize, relevance_score: f32) -> Scored {
        Scored {
            index,
            relevance_score,
        }
    }

    #[test]
    fn results_are_sorted_best_first_with_ties_in_search_order() {
        let sorted = check(vec![scored(2, 0.5), scored(0, 0.9), scored(1, 0.5)], 3, 3).unwrap();
        assert_eq!(sorted, [scored(0, 0.9), scored(1, 0.5), scored(2, 0.5)]);
    }

    #[test]
    fn replies_that_do_not_fit_the_request_are_refused() {
        let out_of_range = check(vec![scored(3, 0.5)], 3, 3).unwrap_err();
        assert!(
            out_of_range.contains("index 3 is out of range for 3"),
            "{out_of_range}"
        );
        let twice = check(vec![scored(1, 0.5), scored(1, 0.4)], 3, 3).unwrap_err();
        assert!(twice.contains("index 1 is listed twice"), "{twice}");
        let logit = check(vec![scored(0, 4.2)], 3, 3).unwrap_err();
        assert!(logit.contains("relevance_score 4.2"), "{logit}");
        let nan = check(vec![scored(0, f32::NAN)], 3, 3).unwrap_err();
        assert!(nan.contains("relevance_score NaN"), "{nan}");
        let many = check(vec![scored(0, 0.5), scored(1, 0.4)], 3, 1).unwrap_err();
        assert!(many.contains("2 results where top_n asked for 1"), "{many}");
    }
}
