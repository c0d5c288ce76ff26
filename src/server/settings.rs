//! The `[server]` settings: as written, and validated into [`Limits`].

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::access::settings::RawRateLimit;
use crate::secret::Secret;

/// `[server]`, as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    /// Listen address.
    pub addr: String,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Most messages in one request.
    pub max_messages: usize,
    /// Longest accepted message, in characters.
    pub max_message_chars: usize,
    /// Most answer streams open at once; more get a 503.
    pub max_streams: usize,
    /// How long running streams may go on after a shutdown signal, ms.
    pub shutdown_grace_ms: u64,
    /// How long a client may take to send a request's headers, ms; also how
    /// long an idle keep-alive connection stays open.
    pub header_timeout_ms: u64,
    /// How long a client may take to send a request's body, ms.
    pub body_timeout_ms: u64,
    /// Accept backlog of the listening socket (capped by `net.core.somaxconn`).
    pub backlog: u32,
    /// API keys; when any is set, answering and searching need one
    /// (`RAGSTREAM_API_KEYS`, comma-separated, replaces this list).
    pub api_keys: Vec<Secret>,
    /// `/metrics` answers without a key even when keys are configured.
    pub metrics_public: bool,
    /// Take the client address from the first entry of `X-Forwarded-For`.
    pub trust_forwarded_for: bool,
    /// Origins whose pages may call the API from a browser.
    pub cors_origins: Vec<String>,
    /// Requests per minute per key or client address.
    pub rate_limit: RawRateLimit,
    /// The model id `/v1/models` lists and `/v1/chat/completions` accepts.
    pub model_id: String,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:5328".into(),
            max_body_bytes: 1024 * 1024,
            max_messages: 100,
            max_message_chars: 32_000,
            max_streams: 2048,
            shutdown_grace_ms: 10_000,
            header_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            backlog: 4096,
            api_keys: Vec::new(),
            metrics_public: false,
            trust_forwarded_for: false,
            cors_origins: Vec::new(),
            rate_limit: RawRateLimit::default(),
            model_id: "ragstream".into(),
        }
    }
}

/// The most streams `server.max_streams` may allow: draining waits for all
/// their slots at once, and a semaphore hands out at most `u32::MAX` in one go.
const MOST_STREAMS: usize = 1_000_000;

/// Validated limits on requests and connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body, bytes.
    pub max_body_bytes: usize,
    /// Most messages.
    pub max_messages: usize,
    /// Longest message, characters.
    pub max_message_chars: usize,
    /// Most open answer streams.
    pub max_streams: usize,
    /// Grace period for running streams at shutdown.
    pub shutdown_grace: Duration,
    /// Time allowed for a request's headers (and an idle keep-alive).
    pub header_timeout: Duration,
    /// Time allowed for a request's body.
    pub body_timeout: Duration,
}

impl RawServer {
    /// Validates the settings, adding what is wrong to `problems`; returns the
    /// listen address and the limits (with placeholders where a value is wrong).
    pub fn lift(&self, problems: &mut Vec<String>) -> (SocketAddr, Limits) {
        let addr = self.addr.parse().unwrap_or_else(|_| {
            problems.push(format!(
                "server.addr `{}` is not an address like 127.0.0.1:5328",
                self.addr
            ));
            SocketAddr::from(([127, 0, 0, 1], 5328))
        });
        if self.max_streams == 0 || self.max_streams > MOST_STREAMS {
            problems.push(format!(
                "server.max_streams {} must be between 1 and {MOST_STREAMS}",
                self.max_streams
            ));
        }
        for (name, ms) in [
            ("header_timeout_ms", self.header_timeout_ms),
            ("body_timeout_ms", self.body_timeout_ms),
        ] {
            if ms == 0 {
                problems.push(format!("server.{name} must be above 0"));
            }
        }
        if self.model_id.trim().is_empty() {
            problems.push("server.model_id must not be empty (the default is `ragstream`)".into());
        }
        if self.backlog == 0 {
            problems.push("server.backlog must be at least 1".into());
        }
        let limits = Limits {
            max_body_bytes: self.max_body_bytes,
            max_messages: self.max_messages,
            max_message_chars: self.max_message_chars,
            max_streams: self.max_streams.clamp(1, MOST_STREAMS),
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
            header_timeout: Duration::from_millis(self.header_timeout_ms),
            body_timeout: Duration::from_millis(self.body_timeout_ms),
        };
        (addr, limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        let mut problems = Vec::new();
        let (addr, limits) = RawServer::default().lift(&mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(addr.port(), 5328);
        assert_eq!(limits.header_timeout, Duration::from_secs(10));
        assert_eq!(limits.body_timeout, Duration::from_secs(10));
    }

    #[test]
    fn every_wrong_value_is_reported() {
        let raw = RawServer {
            addr: "nowhere".into(),
            max_streams: 0,
            header_timeout_ms: 0,
            body_timeout_ms: 0,
            model_id: " ".into(),
            ..RawServer::default()
        };
        let mut problems = Vec::new();
        raw.lift(&mut problems);
        let text = problems.join("\n");
        for expected in [
            "server.addr `nowhere`",
            "server.max_streams 0",
            "server.header_timeout_ms",
            "server.body_timeout_ms",
            "server.model_id",
        ] {
            assert!(text.contains(expected), "missing `{expected}` in\n{text}");
        }
    }
}
