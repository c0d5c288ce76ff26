//! The access settings of `[server]`: API keys, `[server.rate_limit]`, CORS
//! origins, and whom to believe about the client's address; validated into
//! [`Settings`].

use std::num::NonZeroU32;

use axum::http::HeaderValue;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;
use crate::server::settings::RawServer;

/// The shortest API key accepted: shorter keys can be guessed.
pub const MIN_KEY_CHARS: usize = 16;

/// `[server.rate_limit]`, as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRateLimit {
    /// Sustained requests per minute per key (or per client address); unset
    /// turns rate limiting off.
    pub requests_per_minute: Option<u32>,
    /// Requests allowed at once before the per-minute pace applies; unset
    /// means `requests_per_minute`.
    pub burst: Option<u32>,
    /// Most client addresses tracked at once; new addresses past it share one
    /// budget until idle ones are forgotten.
    pub max_clients: usize,
}

impl Default for RawRateLimit {
    fn default() -> Self {
        Self {
            requests_per_minute: None,
            burst: None,
            max_clients: 100_000,
        }
    }
}

/// A validated rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per minute.
    pub per_minute: NonZeroU32,
    /// Requests allowed at once.
    pub burst: NonZeroU32,
    /// Most client addresses tracked at once.
    pub max_clients: usize,
}

/// Validated access settings.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Accepted API keys; empty means no key is needed.
    pub api_keys: Vec<Secret>,
    /// `/metrics` answers without a key even when keys are configured.
    pub metrics_public: bool,
    /// The client address is the first entry of `X-Forwarded-For`.
    pub trust_forwarded_for: bool,
    /// Requests per minute per key or client address; `None` is unlimited.
    pub rate_limit: Option<RateLimit>,
    /// Origins whose pages may call the API from a browser.
    pub cors_origins: Vec<HeaderValue>,
}

impl Settings {
    /// Validates the access settings of `raw`, adding what is wrong to `problems`.
    pub fn lift(raw: &RawServer, problems: &mut Vec<String>) -> Self {
        let mut api_keys: Vec<Secret> = Vec::new();
        for (n, key) in raw.api_keys.iter().enumerate() {
            let text = key.expose();
            if text.chars().count() < MIN_KEY_CHARS {
                problems.push(format!(
                    "server.api_keys[{n}] has {} characters; use at least {MIN_KEY_CHARS} (e.g. `openssl rand -hex 32`)",
                    text.chars().count()
                ));
            } else if !text.bytes().all(|b| b.is_ascii_graphic()) || text.contains(',') {
                problems.push(format!(
                    "server.api_keys[{n}] may only hold visible ASCII characters other than `,` (it is sent in a header)"
                ));
            } else if !api_keys.contains(key) {
                api_keys.push(key.clone());
            }
        }
        Self {
            api_keys,
            metrics_public: raw.metrics_public,
            trust_forwarded_for: raw.trust_forwarded_for,
            rate_limit: lift_rate_limit(&raw.rate_limit, problems),
            cors_origins: raw
                .cors_origins
                .iter()
                .enumerate()
                .filter_map(|(n, origin)| match origin_problem(origin) {
                    Some(problem) => {
                        problems.push(format!(
                            "server.cors_origins[{n}] `{origin}` {problem}; write an origin like https://app.example or http://localhost:3000"
                        ));
                        None
                    }
                    None => HeaderValue::from_str(origin.trim_end_matches('/')).ok(),
                })
                .collect(),
        }
    }

    /// Whether requests must carry a key.
    pub fn keys_required(&self) -> bool {
        !self.api_keys.is_empty()
    }
}

fn lift_rate_limit(raw: &RawRateLimit, problems: &mut Vec<String>) -> Option<RateLimit> {
    let Some(per_minute) = raw.requests_per_minute else {
        if raw.burst.is_some() {
            problems.push(
                "server.rate_limit.burst is set without server.rate_limit.requests_per_minute"
                    .into(),
            );
        }
        return None;
    };
    let Some(per_minute) = NonZeroU32::new(per_minute) else {
        problems.push(
            "server.rate_limit.requests_per_minute must be at least 1 (leave it unset for no limit)"
                .into(),
        );
        return None;
    };
    let burst = match raw.burst.map(NonZeroU32::new) {
        None => per_minute,
        Some(Some(burst)) => burst,
        Some(None) => {
            problems.push("server.rate_limit.burst must be at least 1".into());
            return None;
        }
    };
    if raw.max_clients == 0 {
        problems.push("server.rate_limit.max_clients must be at least 1".into());
        return None;
    }
    Some(RateLimit {
        per_minute,
        burst,
        max_clients: raw.max_clients,
    })
}

/// What is wrong with `origin` as a CORS origin, if anything.
fn origin_problem(origin: &str) -> Option<&'static str> {
    if origin == "*" {
        return Some("is a wildcard, which ragstream does not allow");
    }
    let Ok(url) = reqwest::Url::parse(origin) else {
        return Some("is not a URL");
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Some("is not http or https");
    }
    if url.host_str().is_none() {
        return Some("has no host");
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Some("has a path, a query or a fragment");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Some("carries credentials");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lift(raw: RawServer) -> (Settings, Vec<String>) {
        let mut problems = Vec::new();
        let settings = Settings::lift(&raw, &mut problems);
        (settings, problems)
    }

    #[test]
    fn by_default_nothing_is_required_or_limited() {
        let (settings, problems) = lift(RawServer::default());
        assert!(problems.is_empty(), "{problems:?}");
        assert!(!settings.keys_required());
        assert!(settings.rate_limit.is_none());
        assert!(settings.cors_origins.is_empty());
        assert!(!settings.metrics_public);
    }

    #[test]
    fn burst_defaults_to_the_per_minute_rate() {
        let raw = RawServer {
            rate_limit: RawRateLimit {
                requests_per_minute: Some(30),
                ..RawRateLimit::default()
            },
            ..RawServer::default()
        };
        let limit = lift(raw).0.rate_limit.unwrap();
        assert_eq!((limit.per_minute.get(), limit.burst.get()), (30, 30));
    }

    #[test]
    fn every_wrong_access_value_is_reported() {
        let raw = RawServer {
            api_keys: vec![Secret::new("short"), Secret::new("has a space in the key")],
            cors_origins: vec![
                "*".into(),
                "app.example".into(),
                "https://app.example/path".into(),
                "ftp://app.example".into(),
            ],
            rate_limit: RawRateLimit {
                requests_per_minute: Some(0),
                burst: Some(0),
                max_clients: 0,
            },
            ..RawServer::default()
        };
        let text = lift(raw).1.join("\n");
        for expected in [
            "server.api_keys[0] has 5 characters",
            "server.api_keys[1] may only hold visible ASCII",
            "server.cors_origins[0] `*` is a wildcard",
            "server.cors_origins[1] `app.example` is not a URL",
            "server.cors_origins[2] `https://app.example/path` has a path",
            "server.cors_origins[3] `ftp://app.example` is not http or https",
            "server.rate_limit.requests_per_minute must be at least 1",
        ] {
            assert!(text.contains(expected), "missing `{expected}` in\n{text}");
        }
    }

    #[test]
    fn an_origin_with_a_trailing_slash_is_the_origin() {
        let raw = RawServer {
            cors_origins: vec![
                "https://app.example/".into(),
                "http://localhost:3000".into(),
            ],
            ..RawServer::default()
        };
        let (settings, problems) = lift(raw);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            settings.cors_origins,
            ["https://app.example", "http://localhost:3000"]
        );
    }
}
