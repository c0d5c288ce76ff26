//! Asks the configured model provider whether it is there, for `check-config`.
//!
//! One `GET {base_url}/models` with a short timeout. What it finds is advice,
//! never a failure: some providers have no `/models`, and a provider may be
//! down for a moment while the configuration is right.

use std::time::Duration;

use crate::llm::Settings;

/// The longest the probe waits, connect included.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The provider answered with a success status.
    Reachable,
    /// Something to look at, as one line for humans.
    Warning(String),
}

/// Probes the provider of `settings`.
pub async fn provider(settings: &Settings) -> Finding {
    let base = settings.base_url.trim_end_matches('/');
    let shown = crate::secret::strip_url_credentials(base);
    let client = match reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout.min(TIMEOUT))
        .timeout(TIMEOUT)
        .user_agent(concat!("ragstream/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(err) => return Finding::Warning(format!("cannot probe the model provider: {err}")),
    };
    let mut request = client.get(format!("{base}/models"));
    if let Some(key) = &settings.api_key {
        request = request.bearer_auth(key.expose());
    }
    let status = match request.send().await {
        Ok(response) => response.status(),
        Err(err) => {
            return Finding::Warning(format!(
                "the model provider at {shown} is unreachable: {}",
                reason(err)
            ));
        }
    };
    match status.as_u16() {
        200..=299 => Finding::Reachable,
        401 | 403 => Finding::Warning(format!(
            "the model provider at {shown} refused the key (HTTP {}): check OPENAI_API_KEY or llm.api_key",
            status.as_u16()
        )),
        404 => Finding::Warning(format!(
            "the model provider answered HTTP 404 to GET {shown}/models: the base URL may be wrong; \
             most providers need it to end in /v1 (e.g. https://host/v1). \
             Some providers have no /models: if answers work, ignore this"
        )),
        code => Finding::Warning(format!(
            "the model provider at {shown} answered HTTP {code} to GET /models"
        )),
    }
}

/// The error and its causes, without the URL (which may carry credentials).
fn reason(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
