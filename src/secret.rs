//! A string that never prints: API keys in config, logs and errors.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret string that never prints.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
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
}
