//! Secrets: a string that never prints, and the one redaction step that every
//! message leaving the process goes through.
//!
//! Providers echo keys in their error text ("Incorrect API key provided:
//! sk-…"), and URLs may carry credentials (`https://user:pass@host`). Rather
//! than wiring a list of keys into every module that renders an error, each
//! [`Secret`] registers its value when it is created (from the config file,
//! the environment, or code), so [`redact`] knows every configured key: LLM
//! keys and their fallbacks, embeddings keys, and whatever is held in a
//! `Secret` next. [`redact`] is applied where a provider's or the network's
//! text enters an error (`llm::client`, `llm::turn`, `kb::embed`), so events,
//! logs, CLI output and HTTP error bodies all carry the redacted text.

use std::borrow::Cow;
use std::fmt;
use std::sync::RwLock;

use serde::{Deserialize, Deserializer, Serialize};

/// What a redacted secret or URL credential is replaced with.
pub const MASK: &str = "***";

/// Secrets shorter than this are not searched for in messages: they would
/// match ordinary words. Real API keys are 20 characters or more.
pub const MIN_REDACTED_CHARS: usize = 6;

/// Every secret value created in this process, longest first.
static KNOWN: RwLock<Vec<Box<str>>> = RwLock::new(Vec::new());

/// A secret string that never prints.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret and registers it for [`redact`].
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        register(&value);
        Self(value)
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A masked form for display: the first three characters and the length.
    pub fn masked(&self) -> String {
        let prefix: String = self.0.chars().take(3).collect();
        format!("{prefix}*** ({} chars)", self.0.chars().count())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

/// Remembers `value` for [`redact`]; short and repeated values are skipped.
fn register(value: &str) {
    let value = value.trim();
    if value.chars().count() < MIN_REDACTED_CHARS {
        return;
    }
    let known = KNOWN
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if known.iter().any(|k| &**k == value) {
        return;
    }
    drop(known);
    let mut known = KNOWN
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !known.iter().any(|k| &**k == value) {
        known.push(value.into());
        known.sort_by_key(|k| std::cmp::Reverse(k.len()));
    }
}

/// `text` with every known secret and every URL's credentials replaced by
/// [`MASK`]. Borrowed when there was nothing to replace.
///
/// Meant for error paths (a provider's error body, a network error): it scans
/// the text once per known secret.
pub fn redact(text: &str) -> Cow<'_, str> {
    let known = KNOWN
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    redact_with(text, &known)
}

/// [`redact`] with the secrets given.
fn redact_with<'a>(text: &'a str, secrets: &[Box<str>]) -> Cow<'a, str> {
    let mut out = strip_url_credentials(text);
    for secret in secrets {
        if out.contains(&**secret) {
            out = Cow::Owned(out.replace(&**secret, MASK));
        }
    }
    out
}

/// Replaces the `user:password@` part of every URL in `text` by `***@`.
pub fn strip_url_credentials(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = text[search..].find("://") {
        let start = search + found + 3;
        let authority_len = text[start..]
            .find(|c: char| {
                matches!(
                    c,
                    '/' | '?' | '#' | '"' | '\'' | '`' | '<' | '>' | '(' | ')'
                ) || c.is_whitespace()
            })
            .unwrap_or(text.len() - start);
        let authority = &text[start..start + authority_len];
        if let Some(at) = authority.rfind('@') {
            out.push_str(&text[copied..start]);
            out.push_str(MASK);
            copied = start + at;
        }
        search = start + authority_len;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("sk-very-secret-key");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        let json = serde_json::to_string(&secret).unwrap();
        assert!(!json.contains("very-secret"), "{json}");
        assert_eq!(secret.masked(), "sk-*** (18 chars)");
    }

    #[test]
    fn every_created_secret_is_redacted_from_any_text() {
        let key = Secret::new("sk-redact-me-please-0123");
        let from_config: Secret = serde_json::from_str("\"gsk-from-a-config-file-42\"").unwrap();
        let text = format!(
            "Incorrect API key provided: {}; other key {}.",
            key.expose(),
            from_config.expose()
        );
        assert_eq!(
            redact(&text),
            "Incorrect API key provided: ***; other key ***."
        );
        assert!(matches!(redact("nothing secret here"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_longest_secret_wins_when_one_contains_another() {
        let secrets: Vec<Box<str>> = vec!["abcdef-long".into(), "abcdef".into()];
        assert_eq!(
            redact_with("x abcdef-long y abcdef", &secrets),
            "x *** y ***"
        );
    }

    #[test]
    fn short_secrets_are_not_searched_for() {
        let _short = Secret::new("key");
        assert_eq!(redact("a key and a monkey"), "a key and a monkey");
    }

    #[test]
    fn url_credentials_are_stripped() {
        assert_eq!(
            strip_url_credentials(
                "cannot reach https://user:pa55@api.example.com/v1/chat (and http://h:1/x)"
            ),
            "cannot reach https://***@api.example.com/v1/chat (and http://h:1/x)"
        );
        assert_eq!(
            strip_url_credentials("`postgres://app:pw@db:5432/kb` and wss://tok@h"),
            "`postgres://***@db:5432/kb` and wss://***@h"
        );
        assert!(matches!(
            strip_url_credentials("http://127.0.0.1:5328/v1 and mail a@b"),
            Cow::Borrowed(_)
        ));
        assert_eq!(strip_url_credentials("://@"), "://***@");
    }
}
