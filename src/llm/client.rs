//! The OpenAI-compatible streaming client: one request per model turn.
//!
//! `Client::open` posts the request and reads on to the turn's first event
//! (content, reasoning or a tool call), retrying connect errors, 429s, 5xxs,
//! silence and broken streams up to that point, then the fallback providers;
//! after it a turn is never retried, because its output may already be on the
//! client's screen.

use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use std::pin::Pin;

use tokio::time::{Instant, Sleep, timeout};

use super::encode::Body;
use super::request::{Request, ToolSpec, Tools};
use super::settings::{Secret, Settings};
use super::sse::Decoder;
use super::turn::{Payload, Turn, TurnError, TurnEvent, TurnState, excerpt, parse_frame};
use crate::error::Code;
use crate::http_body::read_capped;
use crate::secret::redact;

/// How much of an error reply is read for the provider's message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Why a model turn failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No connection could be made.
    #[error("cannot reach the model provider at {url}: {reason}")]
    Connect {
        /// The endpoint tried, without credentials.
        url: String,
        /// What the network stack said.
        reason: String,
    },
    /// The provider answered with an HTTP error.
    #[error("model provider returned HTTP {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The provider's error message.
        message: String,
        /// How long the provider asked us to wait, if it did.
        retry_after: Option<Duration>,
    },
    /// Nothing arrived before the first-byte timeout.
    #[error("model provider sent no answer within {0:?}")]
    FirstByteTimeout(Duration),
    /// The stream went silent mid-turn.
    #[error("model provider stalled: no data for {0:?} mid-stream")]
    IdleTimeout(Duration),
    /// The connection broke mid-turn.
    #[error("model provider stream broke off: {0}")]
    Interrupted(String),
    /// The stream's content was unusable.
    #[error(transparent)]
    Turn(#[from] TurnError),
    /// The client could not be built from the settings.
    #[error("invalid model provider settings: {0}")]
    Settings(String),
}

impl Error {
    /// A stable code for clients and metrics.
    pub fn code(&self) -> Code {
        match self {
            Self::Connect { .. } => Code::UpstreamUnreachable,
            Self::Status { status: 429, .. } => Code::UpstreamRateLimited,
            Self::Status { status, .. } if *status >= 500 => Code::UpstreamUnavailable,
            Self::Status { .. } => Code::UpstreamRejected,
            Self::FirstByteTimeout(_) | Self::IdleTimeout(_) => Code::UpstreamTimeout,
            Self::Interrupted(_) => Code::UpstreamInterrupted,
            Self::Turn(TurnError::Provider(_)) => Code::UpstreamError,
            Self::Turn(_) => Code::UpstreamProtocol,
            Self::Settings(_) => Code::Config,
        }
    }

    /// Whether another attempt may succeed (only before the first byte).
    ///
    /// A connection that breaks, stalls, or carries a provider error before
    /// the turn's first event is retried too: the client has seen nothing.
    fn retryable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::FirstByteTimeout(_) | Self::IdleTimeout(_) => true,
            Self::Interrupted(_) | Self::Turn(TurnError::Provider(_)) => true,
            Self::Status { status, .. } => matches!(status, 408 | 409 | 429) || *status >= 500,
            _ => false,
        }
    }
}

/// One provider endpoint: where to post and how to authenticate.
#[derive(Debug, Clone)]
struct Endpoint {
    /// `{base_url}/chat/completions`.
    url: String,
    /// The URL as messages and logs show it: without credentials.
    shown_url: String,
    /// `Authorization` header, marked sensitive.
    auth: Option<HeaderValue>,
    /// Model override (fallbacks only).
    model: Option<String>,
}

impl Endpoint {
    fn new(base_url: &str, key: Option<&Secret>, model: Option<String>) -> Result<Self, Error> {
        let auth = key
            .map(|key| {
                let mut value =
                    HeaderValue::try_from(format!("Bearer {}", key.expose())).map_err(|_| {
                        Error::Settings(
                            "an API key contains characters not allowed in a header".into(),
                        )
                    })?;
                value.set_sensitive(true);
                Ok::<_, Error>(value)
            })
            .transpose()?;
        let url = format!("{}/chat/completions", base_url.trim_end_matches('/'));
        Ok(Self {
            shown_url: redact(&url).into_owned(),
            url,
            auth,
            model,
        })
    }
}

/// A pooled HTTP client bound to a provider and its fallbacks.
#[derive(Debug, Clone)]
pub struct Client {
    /// The connection pool.
    http: reqwest::Client,
    /// Where and how to call.
    settings: Settings,
    /// The provider first, then its fallbacks.
    endpoints: Vec<Endpoint>,
}

impl Client {
    /// Builds a client; the pool is shared by every clone.
    pub fn new(settings: Settings) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("ragstream/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Settings(e.to_string()))?;
        let mut endpoints = vec![Endpoint::new(
            &settings.base_url,
            settings.api_key.as_ref(),
            None,
        )?];
        for fallback in &settings.fallbacks {
            endpoints.push(Endpoint::new(
                &fallback.base_url,
                fallback.api_key.as_ref(),
                fallback.model.clone(),
            )?);
        }
        Ok(Self {
            http,
            settings,
            endpoints,
        })
    }

    /// The provider settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Encodes tool specs for this provider's dialect, once, for every request.
    pub fn encode_tools(&self, specs: &[ToolSpec]) -> Tools {
        Tools::encode(specs, self.settings.dialect)
    }

    /// Starts a turn, retrying failures that happen before the first byte,
    /// then trying each fallback provider in turn.
    pub async fn open(&self, request: &Request<'_>) -> Result<TurnStream, Error> {
        let mut last_error = None;
        for (n, endpoint) in self.endpoints.iter().enumerate() {
            if n > 0 {
                tracing::warn!(url = %endpoint.shown_url, "falling back to the next provider");
            }
            match self.open_at(endpoint, request).await {
                Ok(stream) => return Ok(stream),
                // A malformed request fails the same everywhere.
                Err(
                    err @ Error::Status {
                        status: 400 | 413 | 422,
                        ..
                    },
                ) => return Err(err),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.expect("there is always at least one endpoint"))
    }

    /// Tries one endpoint with retries.
    async fn open_at(
        &self,
        endpoint: &Endpoint,
        request: &Request<'_>,
    ) -> Result<TurnStream, Error> {
        let body = serde_json::to_vec(&Body {
            request,
            dialect: self.settings.dialect,
            model: endpoint.model.as_deref().unwrap_or(request.model),
            include_usage: self.settings.include_usage,
        });
        let body = Bytes::from(body.map_err(|e| Error::Settings(e.to_string()))?);
        let mut attempt = 0;
        loop {
            let result = self.attempt(endpoint, body.clone()).await;
            let err = match result {
                Ok(stream) => return Ok(stream),
                Err(err) => err,
            };
            metrics::counter!(crate::telemetry::UPSTREAM_ERRORS, "kind" => err.code().as_str())
                .increment(1);
            if !err.retryable() || attempt >= self.settings.retries {
                return Err(err);
            }
            let delay = self.settings.backoff.delay(attempt, retry_after(&err));
            tracing::warn!(attempt, error = %err, delay_ms = delay.as_millis() as u64, "retrying model provider");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One try: send, check the status, wait for the first body bytes.
    async fn attempt(&self, endpoint: &Endpoint, body: Bytes) -> Result<TurnStream, Error> {
        let limit = self.settings.first_byte_timeout;
        let started = Instant::now();
        let mut builder = self
            .http
            .post(&endpoint.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .body(body);
        if let Some(auth) = &endpoint.auth {
            builder = builder.header(AUTHORIZATION, auth.clone());
        }
        let response = match timeout(limit, builder.send()).await {
            Err(_) => return Err(Error::FirstByteTimeout(limit)),
            Ok(Err(err)) => return Err(network_error(endpoint, &err)),
            Ok(Ok(response)) => response,
        };
        if !response.status().is_success() {
            return Err(status_error(endpoint, response).await);
        }
        let mut stream = TurnStream {
            response,
            decoder: Decoder::new(),
            state: TurnState::default(),
            idle_timeout: self.settings.idle_timeout,
            idle: Box::pin(tokio::time::sleep(self.settings.idle_timeout)),
            last_read: Instant::now(),
            done: false,
            pending: Vec::new(),
        };
        // Read on to the turn's first event (keep-alive comments and role-only
        // chunks carry none): until then nothing can have reached the client,
        // so a failure is still retried.
        let remaining = limit.saturating_sub(started.elapsed());
        let mut first = Vec::new();
        match timeout(remaining, stream.next_events(&mut first)).await {
            Err(_) => return Err(Error::FirstByteTimeout(limit)),
            Ok(result) => {
                result?;
            }
        }
        stream.pending = first;
        Ok(stream)
    }
}

fn network_error(endpoint: &Endpoint, err: &reqwest::Error) -> Error {
    let reason = error_chain(err);
    if err.is_connect() || err.is_request() && !err.is_body() {
        Error::Connect {
            url: endpoint.shown_url.clone(),
            reason,
        }
    } else {
        Error::Interrupted(reason)
    }
}

async fn status_error(endpoint: &Endpoint, response: reqwest::Response) -> Error {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
    // The provider's message is in the first bytes; an endless error page is cut.
    let body = timeout(
        Duration::from_secs(5),
        read_capped(response, ERROR_BODY_LIMIT),
    )
    .await;
    let body = body
        .ok()
        .and_then(Result::ok)
        .map(|body| body.bytes.freeze())
        .unwrap_or_default();
    let mut message = provider_message(&body).unwrap_or_else(|| {
        status
            .canonical_reason()
            .unwrap_or("no reason given")
            .to_owned()
    });
    if status == StatusCode::NOT_FOUND {
        message.push_str(&format!(
            " (POST {} was not found: check `llm.base_url`, which usually ends in `/v1`)",
            endpoint.shown_url
        ));
    }
    Error::Status {
        status: status.as_u16(),
        message,
        retry_after: retry_after
            .filter(|_| status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()),
    }
}

/// The error and its causes on one line, redacted (reqwest names the URL).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    redact(&text).into_owned()
}

/// A `Retry-After` value: seconds (fractions accepted) or an HTTP date.
///
/// Whatever the provider sends, this never panics: a huge number saturates
/// (the backoff caps it at `max_backoff_ms` anyway), a date in the past is
/// zero, and a negative, NaN or unreadable value is ignored.
fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs >= 0.0).then(|| Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

fn retry_after(err: &Error) -> Option<Duration> {
    match err {
        Error::Status { retry_after, .. } => *retry_after,
        _ => None,
    }
}

/// The `error.message` of an error body, or its first bytes; redacted.
fn provider_message(body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let message = parsed.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.get("message"))
            .or_else(|| v.get("error"))
            .and_then(|m| m.as_str())
            .map(|m| redact(m).into_owned())
    });
    Some(message.unwrap_or_else(|| excerpt(body)))
}

/// The body of a turn that has started: yields events as chunks arrive.
#[derive(Debug)]
pub struct TurnStream {
    /// The streaming HTTP response.
    response: reqwest::Response,
    /// SSE framing state.
    decoder: Decoder,
    /// Turn accumulation state.
    state: TurnState,
    /// The longest allowed silence between chunks.
    idle_timeout: Duration,
    /// Fires at the earliest moment the stream could have been idle too long.
    idle: Pin<Box<Sleep>>,
    /// When bytes last arrived.
    last_read: Instant,
    /// `[DONE]` or end of body was seen.
    done: bool,
    /// Events read while opening the turn, not yet handed out.
    pending: Vec<TurnEvent>,
}

impl TurnStream {
    /// Appends the next events to `out`, reading from the network as needed.
    /// Returns `false` once the turn is over and `out` got nothing more.
    pub async fn next_events(&mut self, out: &mut Vec<TurnEvent>) -> Result<bool, Error> {
        if !self.pending.is_empty() {
            out.append(&mut self.pending);
            return Ok(true);
        }
        loop {
            self.drain(out)?;
            if !out.is_empty() {
                return Ok(true);
            }
            if self.done {
                return Ok(false);
            }
            match self.read().await? {
                Some(bytes) => self.decoder.feed(&bytes),
                None => {
                    self.done = true;
                    if let Some(frame) = self.decoder.finish().map_err(TurnError::Framing)? {
                        apply_frame(&mut self.state, frame.event, frame.data, out)?;
                    }
                }
            }
        }
    }

    /// Reads the next body bytes, failing after `idle_timeout` of silence.
    ///
    /// The idle timer is one `Sleep` for the whole turn, pushed forward only
    /// when it fires early: a `timeout()` per read would insert and remove a
    /// timer-wheel entry for every chunk.
    async fn read(&mut self) -> Result<Option<Bytes>, Error> {
        let read = self.response.chunk();
        tokio::pin!(read);
        loop {
            tokio::select! {
                biased;
                result = &mut read => {
                    self.last_read = Instant::now();
                    return result.map_err(|err| Error::Interrupted(error_chain(&err)));
                }
                () = self.idle.as_mut() => {
                    let deadline = self.last_read + self.idle_timeout;
                    if Instant::now() >= deadline {
                        return Err(Error::IdleTimeout(self.idle_timeout));
                    }
                    self.idle.as_mut().reset(deadline);
                }
            }
        }
    }

    /// Ends the turn; call after `next_events` returned `false`.
    pub fn finish(self) -> Result<Turn, Error> {
        Ok(self.state.finish()?)
    }

    /// Applies every complete frame buffered so far.
    fn drain(&mut self, out: &mut Vec<TurnEvent>) -> Result<(), Error> {
        while !self.done {
            let Some(frame) = self.decoder.next_frame().map_err(TurnError::Framing)? else {
                break;
            };
            if apply_frame(&mut self.state, frame.event, frame.data, out)? {
                self.done = true;
            }
        }
        Ok(())
    }
}

/// Applies one frame; true on `[DONE]`.
fn apply_frame(
    state: &mut TurnState,
    event: &[u8],
    data: &[u8],
    out: &mut Vec<TurnEvent>,
) -> Result<bool, Error> {
    match parse_frame(event, data)? {
        Payload::Done => Ok(true),
        Payload::Chunk(chunk) => {
            state.apply(chunk, out)?;
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    /// A provider's `Retry-After` can never panic the stream (issue 10).
    #[test]
    fn any_retry_after_value_parses_without_panicking() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let parse = |v: &str| parse_retry_after(v, now);
        assert_eq!(parse("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse(" 0.25 "), Some(Duration::from_millis(250)));
        assert_eq!(parse("1e20"), Some(Duration::MAX));
        assert_eq!(parse("inf"), Some(Duration::MAX));
        assert_eq!(parse("-1"), None);
        assert_eq!(parse("NaN"), None);
        assert_eq!(parse("soon"), None);
        let later = now + Duration::from_secs(30);
        assert_eq!(
            parse(&httpdate::fmt_http_date(later)),
            Some(Duration::from_secs(30))
        );
        let earlier = now - Duration::from_secs(30);
        assert_eq!(
            parse(&httpdate::fmt_http_date(earlier)),
            Some(Duration::ZERO)
        );
    }
}
