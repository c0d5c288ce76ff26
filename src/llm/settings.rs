//! Validated settings of one model provider.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

pub use crate::secret::Secret;

/// Which function-calling form the provider speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// `tools` / `tool_calls` / `tool` messages.
    #[default]
    Tools,
    /// `functions` / `function_call` / `function` messages (older models and gateways).
    Functions,
}

/// Exponential backoff with full jitter: each delay is drawn uniformly from
/// zero to the exponential ceiling.
///
/// Full rather than equal jitter (which keeps a floor of half the ceiling):
/// the retries that matter here are many streams failing together on one
/// provider's 429 or 503, and spreading them over the whole window is what
/// keeps them from arriving as a second wave (see AWS's "Exponential Backoff
/// And Jitter"). A provider that wants a floor says so with `Retry-After`,
/// which is honoured as given.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Backoff {
    /// Delay before the first retry (before jitter).
    pub base: Duration,
    /// The longest delay, also the cap on a provider's `Retry-After`.
    pub max: Duration,
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based). A provider's
    /// `Retry-After` is honoured up to `max`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        self.delay_at(attempt, retry_after, rand::rng().random_range(0.0..=1.0))
    }

    /// [`Backoff::delay`] with the random draw given: `fraction` in `0..=1`
    /// of the ceiling.
    fn delay_at(&self, attempt: u32, retry_after: Option<Duration>, fraction: f64) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max);
        }
        self.ceiling(attempt).mul_f64(fraction.clamp(0.0, 1.0))
    }

    /// The exponential ceiling of retry number `attempt`, capped at `max`.
    fn ceiling(&self, attempt: u32) -> Duration {
        self.base.saturating_mul(1 << attempt.min(16)).min(self.max)
    }
}

/// Where and how to call one OpenAI-compatible provider.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    /// Base URL up to `/v1` (or the provider's equivalent).
    pub base_url: String,
    /// Bearer token; `None` for local servers that need none.
    pub api_key: Option<Secret>,
    /// Model for the first turn of each answer.
    pub model: String,
    /// Function-calling dialect.
    pub dialect: Dialect,
    /// Sampling temperature of the first turn.
    pub temperature: Option<f32>,
    /// Ask for usage in the last chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Longest wait from sending the request to the first body byte.
    pub first_byte_timeout: Duration,
    /// Longest silence between two chunks.
    pub idle_timeout: Duration,
    /// Retries before the first byte (0 = try once).
    pub retries: u32,
    /// Delay between retries.
    pub backoff: Backoff,
    /// Providers tried in order when this one fails before the first byte.
    pub fallbacks: Vec<Fallback>,
}

/// Another provider to try when the main one cannot start a turn.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fallback {
    /// Base URL up to `/v1`.
    pub base_url: String,
    /// Bearer token, if the provider needs one.
    pub api_key: Option<Secret>,
    /// Model to ask for there; `None` keeps the model of the request.
    pub model: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        }
    }

    /// Full jitter: the whole window from zero to the ceiling (issue 10).
    #[test]
    fn jitter_spans_zero_to_the_ceiling() {
        let backoff = backoff();
        assert_eq!(backoff.delay_at(0, None, 0.0), Duration::ZERO);
        assert_eq!(backoff.delay_at(0, None, 1.0), Duration::from_millis(100));
        assert_eq!(backoff.delay_at(2, None, 0.25), Duration::from_millis(100));
        assert_eq!(backoff.delay_at(10, None, 1.0), Duration::from_secs(1));
        assert_eq!(
            backoff.delay_at(u32::MAX, None, 1.0),
            Duration::from_secs(1)
        );
        for attempt in 0..8 {
            let delay = backoff.delay(attempt, None);
            assert!(delay <= backoff.ceiling(attempt), "{delay:?} at {attempt}");
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let backoff = backoff();
        assert!(backoff.delay(0, None) <= Duration::from_millis(100));
        assert!(backoff.delay(10, None) <= Duration::from_secs(1));
        assert_eq!(
            backoff.delay(0, Some(Duration::from_millis(300))),
            Duration::from_millis(300)
        );
        assert_eq!(
            backoff.delay(0, Some(Duration::from_secs(60))),
            Duration::from_secs(1)
        );
    }
}
