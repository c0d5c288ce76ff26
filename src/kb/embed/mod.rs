//! Embeddings providers: turn texts into vectors through an HTTP API.
//!
//! [`Embeddings`] wraps one provider ([`openai`] or [`minimax`]) with what every
//! provider needs: batching, retries with exponential backoff on transient failures
//! (timeouts, HTTP 429/5xx, MiniMax rate-limit codes), and checks that every vector
//! has the same, expected size. Provider `none` has no [`Embeddings`] at all.
//!
//! A question embedded at search time has a budget of its own
//! (`embeddings.query_timeout_ms`, one retry at most): a user is waiting, and
//! the search answers from full text alone when the budget runs out.

pub mod minimax;
pub mod openai;

use std::time::Duration;

use async_trait::async_trait;

use super::Error;
use super::config::{EmbeddingsConfig, Provider};
use crate::http_body::{read_capped, show_bytes};
use crate::secret::redact;

/// What a text is embedded for; MiniMax embeds documents and queries differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A document stored in the knowledge base (MiniMax type `db`).
    Document,
    /// A question searched for (MiniMax type `query`).
    Query,
}

/// How one request failed.
#[derive(Debug)]
pub enum Failure {
    /// Worth another try: a timeout, a rate limit, a server error.
    Transient {
        /// What happened.
        message: String,
        /// How long the server asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// Retrying will not help: bad key, bad model, malformed response.
    Fatal(String),
}

impl Failure {
    /// A transient failure without a server-given delay.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::Transient {
            message: message.into(),
            retry_after: None,
        }
    }

    /// Classifies a reqwest error: connection problems and timeouts are transient.
    /// The URL is left out (it may carry credentials); the rest is redacted
    /// when the failure becomes an error.
    pub fn from_reqwest(err: reqwest::Error) -> Self {
        let err = err.without_url();
        if err.is_timeout() || err.is_connect() || err.is_request() {
            Self::transient(format!("request failed: {err}"))
        } else {
            Self::Fatal(format!("request failed: {err}"))
        }
    }
}

/// One embeddings API, called one batch at a time.
#[async_trait]
pub trait Provide: Send + Sync + std::fmt::Debug {
    /// The model name, recorded in the store next to the vectors.
    fn model(&self) -> &str;

    /// Embeds one batch; the result has one vector per text, in order.
    async fn embed_batch(
        &self,
        texts: &[String],
        purpose: Purpose,
    ) -> Result<Vec<Vec<f32>>, Failure>;
}

/// A provider plus batching, retries and size checks.
#[derive(Debug)]
pub struct Embeddings {
    /// The API.
    provider: Box<dyn Provide>,
    /// Texts per request.
    batch_size: usize,
    /// Retries after the first attempt.
    max_retries: u32,
    /// First backoff delay; doubled on each retry.
    backoff: Duration,
    /// Expected vector size, if configured.
    dimensions: Option<usize>,
    /// Budget for embedding one query, retry included.
    query_timeout: Duration,
}

/// Retries of a query embedding: a user is waiting.
const QUERY_RETRIES: u32 = 1;

impl Embeddings {
    /// Builds the configured provider, or `None` for provider `none`.
    pub fn from_config(cfg: &EmbeddingsConfig) -> Result<Option<Self>, Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs.max(1)))
            .build()
            .map_err(|err| Error::Config(format!("cannot build the HTTP client: {err}")))?;
        let provider: Box<dyn Provide> = match cfg.provider {
            Provider::None => return Ok(None),
            Provider::Openai => Box::new(openai::OpenAi::new(client, cfg)?),
            Provider::Minimax => Box::new(minimax::MiniMax::new(client, cfg)?),
        };
        Ok(Some(Self::new(provider, cfg)))
    }

    /// Wraps any provider with the batching and retry settings of `cfg`.
    pub fn new(provider: Box<dyn Provide>, cfg: &EmbeddingsConfig) -> Self {
        Self {
            provider,
            batch_size: cfg.batch_size.max(1),
            max_retries: cfg.max_retries,
            backoff: Duration::from_millis(500),
            dimensions: cfg.dimensions,
            query_timeout: Duration::from_millis(cfg.query_timeout_ms),
        }
    }

    /// Changes the first backoff delay (tests use a few milliseconds).
    pub fn with_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// The model name.
    pub fn model(&self) -> &str {
        self.provider.model()
    }

    /// The configured vector size, if any.
    pub fn dimensions(&self) -> Option<usize> {
        self.dimensions
    }

    /// Embeds one query within `embeddings.query_timeout_ms`, retrying once
    /// at most.
    pub async fn embed_query(&self, query: &str) -> Result<Vec<f32>, Error> {
        let texts = [query.to_owned()];
        let retries = self.max_retries.min(QUERY_RETRIES);
        let embedding = self.embed_with(&texts, Purpose::Query, retries, &|_| {});
        let mut vectors = tokio::time::timeout(self.query_timeout, embedding)
            .await
            .map_err(|_| {
                Error::Embedding(format!(
                    "the question was not embedded within {} ms (embeddings.query_timeout_ms)",
                    self.query_timeout.as_millis()
                ))
            })??;
        vectors
            .pop()
            .ok_or_else(|| Error::Embedding("the API returned no vector for the query".into()))
    }

    /// Embeds `texts` in batches, calling `progress` with the count done after each batch.
    pub async fn embed(
        &self,
        texts: &[String],
        purpose: Purpose,
        progress: &(dyn Fn(usize) + Send + Sync),
    ) -> Result<Vec<Vec<f32>>, Error> {
        self.embed_with(texts, purpose, self.max_retries, progress)
            .await
    }

    /// [`Embeddings::embed`] with `retries` per batch.
    async fn embed_with(
        &self,
        texts: &[String],
        purpose: Purpose,
        retries: u32,
        progress: &(dyn Fn(usize) + Send + Sync),
    ) -> Result<Vec<Vec<f32>>, Error> {
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.batch_size) {
            let got = self.embed_with_retries(batch, purpose, retries).await?;
            if got.len() != batch.len() {
                return Err(Error::Embedding(format!(
                    "model `{}` returned {} vectors for {} texts",
                    self.model(),
                    got.len(),
                    batch.len()
                )));
            }
            for vector in got {
                self.check_size(&vector, vectors.first().map(Vec::len))?;
                vectors.push(vector);
            }
            progress(vectors.len());
        }
        Ok(vectors)
    }

    /// Rejects empty vectors and vectors whose size differs from the config or the batch.
    fn check_size(&self, vector: &[f32], first: Option<usize>) -> Result<(), Error> {
        let expected = self.dimensions.or(first);
        if vector.is_empty() || expected.is_some_and(|n| n != vector.len()) {
            return Err(Error::Embedding(format!(
                "model `{}` returned a {}-dimension vector, expected {}; check `embeddings.dimensions` and `embeddings.model`",
                self.model(),
                vector.len(),
                expected.map_or_else(|| "a non-empty one".to_owned(), |n| n.to_string())
            )));
        }
        if vector.iter().any(|x| !x.is_finite()) {
            return Err(Error::Embedding(format!(
                "model `{}` returned a vector with NaN or infinite values",
                self.model()
            )));
        }
        Ok(())
    }

    /// One batch, retried on transient failures with exponential backoff.
    async fn embed_with_retries(
        &self,
        batch: &[String],
        purpose: Purpose,
        retries: u32,
    ) -> Result<Vec<Vec<f32>>, Error> {
        let mut attempt = 0;
        loop {
            match self.provider.embed_batch(batch, purpose).await {
                Ok(vectors) => return Ok(vectors),
                Err(Failure::Fatal(message)) => {
                    return Err(Error::Embedding(redact(&message).into_owned()));
                }
                Err(Failure::Transient {
                    message,
                    retry_after,
                }) => {
                    let message = redact(&message);
                    if attempt >= retries {
                        return Err(Error::Embedding(format!(
                            "{message} (gave up after {} attempts)",
                            attempt + 1
                        )));
                    }
                    let delay = retry_after
                        .unwrap_or_else(|| self.backoff * 2u32.saturating_pow(attempt))
                        .min(Duration::from_secs(30));
                    tracing::warn!(attempt = attempt + 1, ?delay, %message, "embeddings request failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }
}

/// The first 300 characters of an error body, redacted, for messages.
///
/// Redacted before it is cut, so that a key across the cut cannot leave
/// its first half behind.
pub(crate) fn excerpt(body: &str) -> String {
    let body = redact(body);
    let mut out: String = body.chars().take(300).collect();
    if out.len() < body.len() {
        out.push('…');
    }
    out
}

/// Whether an HTTP status is worth retrying.
/// The failure for a non-success HTTP answer: transient or fatal by status.
pub(crate) fn status_failure(
    url: &str,
    status: reqwest::StatusCode,
    body: &str,
    hint: &str,
    retry_after: Option<Duration>,
) -> Failure {
    let message = format!("{url} returned {status}: {}{hint}", excerpt(body));
    if is_transient(status) {
        Failure::Transient {
            message,
            retry_after,
        }
    } else {
        Failure::Fatal(message)
    }
}

/// The most a reply to a batch of `texts` texts may weigh: 1 MiB plus 256 KiB per
/// text, room for a 4096-dimension vector in JSON (about 90 KiB) with a wide margin.
pub(crate) fn reply_limit(texts: usize) -> usize {
    (1 + texts / 4) * 1024 * 1024
}

/// Reads a reply body up to [`reply_limit`]: a success reply past it is a fatal
/// failure (its vectors would not fit the batch anyway); an error reply is cut there.
pub(crate) async fn read_reply(
    url: &str,
    response: reqwest::Response,
    texts: usize,
) -> Result<String, Failure> {
    let status = response.status();
    let limit = reply_limit(texts);
    let body = read_capped(response, limit)
        .await
        .map_err(Failure::from_reqwest)?;
    if body.truncated && status.is_success() {
        return Err(Failure::Fatal(format!(
            "{url} sent a reply larger than {} for {texts} texts; check `embeddings.base_url` \
             points at an embeddings API",
            show_bytes(limit)
        )));
    }
    Ok(body.text().into_owned())
}

/// Parses a success body, naming the endpoint and quoting the body if it does not fit.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(
    url: &str,
    body: &str,
) -> Result<T, Failure> {
    serde_json::from_str(body).map_err(|err| {
        Failure::Fatal(format!(
            "{url} answered with an unexpected body ({err}): {}",
            excerpt(body)
        ))
    })
}

pub(crate) fn is_transient(status: reqwest::StatusCode) -> bool {
    status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
}

/// The `Retry-After` header in seconds, if present.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Fails with the scripted failures first, then returns one-element vectors.
    #[derive(Debug)]
    struct Scripted {
        failures: Mutex<Vec<Failure>>,
        calls: Mutex<Vec<usize>>,
        dim: usize,
    }

    #[async_trait]
    impl Provide for Scripted {
        fn model(&self) -> &str {
            "scripted"
        }
        async fn embed_batch(
            &self,
            texts: &[String],
            _: Purpose,
        ) -> Result<Vec<Vec<f32>>, Failure> {
            self.calls.lock().unwrap().push(texts.len());
            if let Some(failure) = self.failures.lock().unwrap().pop() {
                return Err(failure);
            }
            Ok(texts.iter().map(|_| vec![1.0; self.dim]).collect())
        }
    }

    fn embeddings(failures: Vec<Failure>, dim: usize, cfg: EmbeddingsConfig) -> Embeddings {
        let provider = Scripted {
            failures: Mutex::new(failures),
            calls: Mutex::new(Vec::new()),
            dim,
        };
        Embeddings::new(Box::new(provider), &cfg).with_backoff(Duration::from_millis(1))
    }

    fn texts(n: usize) -> Vec<String> {
        (0..n).map(|i| i.to_string()).collect()
    }

    #[tokio::test]
    async fn texts_are_sent_in_batches() {
        let cfg = EmbeddingsConfig {
            batch_size: 4,
            ..EmbeddingsConfig::default()
        };
        let e = embeddings(vec![], 3, cfg);
        let vectors = e
            .embed(&texts(10), Purpose::Document, &|_| {})
            .await
            .unwrap();
        assert_eq!(vectors.len(), 10);
        let provider = format!("{:?}", e.provider);
        assert!(
            provider.contains("calls: Mutex { data: [4, 4, 2]"),
            "{provider}"
        );
    }

    #[tokio::test]
    async fn transient_failures_are_retried_then_give_up() {
        let cfg = EmbeddingsConfig {
            max_retries: 2,
            ..EmbeddingsConfig::default()
        };
        let e = embeddings(
            vec![Failure::transient("503"), Failure::transient("429")],
            3,
            cfg.clone(),
        );
        assert!(e.embed(&texts(1), Purpose::Query, &|_| {}).await.is_ok());

        let three = (0..3).map(|_| Failure::transient("503")).collect();
        let err = embeddings(three, 3, cfg)
            .embed(&texts(1), Purpose::Query, &|_| {})
            .await;
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("gave up after 3 attempts")
        );
    }

    #[tokio::test]
    async fn fatal_failures_are_not_retried() {
        let e = embeddings(
            vec![Failure::Fatal("401".into())],
            3,
            EmbeddingsConfig::default(),
        );
        let err = e
            .embed(&texts(1), Purpose::Query, &|_| {})
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "embeddings: 401");
    }

    #[tokio::test]
    async fn vectors_of_the_wrong_size_are_rejected() {
        let cfg = EmbeddingsConfig {
            dimensions: Some(8),
            ..EmbeddingsConfig::default()
        };
        let err = embeddings(vec![], 3, cfg)
            .embed_query("q")
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("returned a 3-dimension vector, expected 8"),
            "{err}"
        );
    }
}
