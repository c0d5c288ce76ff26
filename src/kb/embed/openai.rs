//! Any OpenAI-compatible `POST {base_url}/embeddings`: OpenAI, Ollama, vLLM, TEI,
//! DashScope compatible mode.
//!
//! Request `{"model", "input": [...], "encoding_format": "float", "dimensions"?}`;
//! response `{"data": [{"embedding": [...], "index": 0}], ...}`.

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use super::{Failure, Provide, Purpose, parse_body, read_reply, retry_after, status_failure};
use crate::kb::Error;
use crate::kb::config::EmbeddingsConfig;

/// Default API root.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// Default model.
pub const DEFAULT_MODEL: &str = "text-embedding-3-small";

/// An OpenAI-compatible embeddings endpoint.
pub struct OpenAi {
    /// Shared HTTP client (timeouts set).
    client: reqwest::Client,
    /// `{base_url}/embeddings`.
    url: String,
    /// Bearer token, if the server needs one.
    api_key: Option<String>,
    /// Model name.
    model: String,
    /// `dimensions` to request, if configured.
    dimensions: Option<usize>,
}

impl std::fmt::Debug for OpenAi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAi")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl OpenAi {
    /// Reads base URL, key, model and dimensions from the config.
    pub fn new(client: reqwest::Client, cfg: &EmbeddingsConfig) -> Result<Self, Error> {
        let base = cfg.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        Ok(Self {
            client,
            url: format!("{}/embeddings", base.trim_end_matches('/')),
            api_key: cfg
                .api_key
                .as_ref()
                .map(|k| k.expose().to_owned())
                .filter(|k| !k.is_empty()),
            model: cfg
                .model
                .clone()
                .unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
            dimensions: cfg.dimensions,
        })
    }
}

/// The request body.
#[derive(Serialize)]
struct Request<'a> {
    /// Model name.
    model: &'a str,
    /// Texts to embed.
    input: &'a [String],
    /// Always `float`: base64 is not supported by every compatible server.
    encoding_format: &'static str,
    /// Requested size, for models that can shorten their vectors.
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<usize>,
}

/// The response body.
#[derive(Deserialize)]
struct Response {
    /// One entry per input text.
    data: Vec<Datum>,
}

/// One vector.
#[derive(Deserialize)]
struct Datum {
    /// The vector.
    embedding: Vec<f32>,
    /// Position of its text in the request.
    index: usize,
}

#[async_trait]
impl Provide for OpenAi {
    fn model(&self) -> &str {
        &self.model
    }

    async fn embed_batch(
        &self,
        texts: &[String],
        _purpose: Purpose,
    ) -> Result<Vec<Vec<f32>>, Failure> {
        let mut request = self.client.post(&self.url).json(&Request {
            model: &self.model,
            input: texts,
            encoding_format: "float",
            dimensions: self.dimensions,
        });
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(Failure::from_reqwest)?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let body = read_reply(&self.url, response, texts.len()).await?;
        if !status.is_success() {
            let hint = match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "; check `embeddings.api_key`",
                StatusCode::NOT_FOUND => "; check `embeddings.base_url` and `embeddings.model`",
                _ => "",
            };
            return Err(status_failure(&self.url, status, &body, hint, wait));
        }
        let parsed: Response = parse_body(&self.url, &body)?;
        let mut data = parsed.data;
        data.sort_by_key(|d| d.index);
        if data.iter().enumerate().any(|(i, d)| d.index != i) {
            return Err(Failure::Fatal(format!(
                "{} returned vectors with missing or repeated `index` values",
                self.url
            )));
        }
        Ok(data.into_iter().map(|d| d.embedding).collect())
    }
}
