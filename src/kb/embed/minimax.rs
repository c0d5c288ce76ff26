//! MiniMax's native embeddings API, as the classic back end used it.
//!
//! `POST {base_url}/embeddings?GroupId={group_id}` with
//! `{"texts": [...], "model": "embo-01", "type": "db" | "query"}`; the answer is
//! `{"vectors": [[...]], "base_resp": {"status_code": 0, "status_msg": "success"}}`.
//! MiniMax reports most errors with HTTP 200 and a non-zero `base_resp.status_code`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Failure, Provide, Purpose, parse_body, read_reply, retry_after, status_failure};
use crate::kb::Error;
use crate::kb::config::EmbeddingsConfig;

/// Default API root.
pub const DEFAULT_BASE_URL: &str = "https://api.minimax.chat/v1";
/// Default model.
pub const DEFAULT_MODEL: &str = "embo-01";

/// `base_resp` codes worth retrying: unknown error, timeout, rate limit,
/// internal error, token-per-minute limit.
const TRANSIENT_CODES: &[i64] = &[1000, 1001, 1002, 1013, 1039];

/// MiniMax's embeddings endpoint.
pub struct MiniMax {
    /// Shared HTTP client (timeouts set).
    client: reqwest::Client,
    /// `{base_url}/embeddings`, for messages.
    url: String,
    /// `{base_url}/embeddings?GroupId=…`.
    endpoint: reqwest::Url,
    /// Bearer token.
    api_key: String,
    /// Group id, sent as `GroupId`.
    group_id: String,
    /// Model name.
    model: String,
}

impl std::fmt::Debug for MiniMax {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniMax")
            .field("url", &self.url)
            .field("api_key", &"***")
            .field("group_id", &self.group_id)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl MiniMax {
    /// Reads base URL, key, group id and model; key and group id are required.
    pub fn new(client: reqwest::Client, cfg: &EmbeddingsConfig) -> Result<Self, Error> {
        let api_key = cfg
            .api_key
            .as_ref()
            .map(|k| k.expose().to_owned())
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                Error::Config(
                    "provider `minimax` needs `embeddings.api_key` (or MINIMAX_API_KEY)".into(),
                )
            })?;
        let group_id = cfg
            .group_id
            .clone()
            .filter(|g| !g.is_empty())
            .ok_or_else(|| {
                Error::Config(
                    "provider `minimax` needs `embeddings.group_id` (or MINIMAX_GROUP_ID)".into(),
                )
            })?;
        let base = cfg.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let url = format!("{}/embeddings", base.trim_end_matches('/'));
        let endpoint =
            reqwest::Url::parse_with_params(&url, [("GroupId", &group_id)]).map_err(|err| {
                Error::Config(format!(
                    "`embeddings.base_url` {base:?} is not a URL: {err}"
                ))
            })?;
        Ok(Self {
            client,
            url,
            endpoint,
            api_key,
            group_id,
            model: cfg
                .model
                .clone()
                .unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
        })
    }
}

/// The request body.
#[derive(Serialize)]
struct Request<'a> {
    /// Texts to embed.
    texts: &'a [String],
    /// Model name.
    model: &'a str,
    /// `db` for stored documents, `query` for questions.
    #[serde(rename = "type")]
    kind: &'static str,
}

/// The response body.
#[derive(Deserialize)]
struct Response {
    /// One vector per text; `null` on errors.
    vectors: Option<Vec<Vec<f32>>>,
    /// Status, also on HTTP 200.
    base_resp: BaseResp,
}

/// MiniMax's status block.
#[derive(Deserialize)]
struct BaseResp {
    /// 0 on success.
    status_code: i64,
    /// Human-readable status.
    #[serde(default)]
    status_msg: String,
}

#[async_trait]
impl Provide for MiniMax {
    fn model(&self) -> &str {
        &self.model
    }

    async fn embed_batch(
        &self,
        texts: &[String],
        purpose: Purpose,
    ) -> Result<Vec<Vec<f32>>, Failure> {
        let kind = match purpose {
            Purpose::Document => "db",
            Purpose::Query => "query",
        };
        let response = self
            .client
            .post(self.endpoint.clone())
            .bearer_auth(&self.api_key)
            .json(&Request {
                texts,
                model: &self.model,
                kind,
            })
            .send()
            .await
            .map_err(Failure::from_reqwest)?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let body = read_reply(&self.url, response, texts.len()).await?;
        if !status.is_success() {
            return Err(status_failure(&self.url, status, &body, "", wait));
        }
        let parsed: Response = parse_body(&self.url, &body)?;
        let code = parsed.base_resp.status_code;
        if code != 0 {
            let hint = match code {
                1004 => "; check `embeddings.api_key` and `embeddings.group_id`",
                1008 => "; the MiniMax account balance is insufficient",
                _ => "",
            };
            let message = format!(
                "MiniMax returned status {code} ({}){hint}",
                parsed.base_resp.status_msg
            );
            return Err(if TRANSIENT_CODES.contains(&code) {
                Failure::transient(message)
            } else {
                Failure::Fatal(message)
            });
        }
        parsed
            .vectors
            .ok_or_else(|| Failure::Fatal("MiniMax returned success without `vectors`".into()))
    }
}
