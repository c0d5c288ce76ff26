//! One error vocabulary: the stable codes that HTTP errors and `error`
//! events carry, listed once (docs/protocol.md, "Error codes", lists the same).

use std::fmt;

use serde::{Serialize, Serializer};

/// Defines [`Code`], its wire names and [`Code::ALL`] from one list, so a new
/// code cannot be left out of any of them.
macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, )+) => {
        /// A stable, machine-readable error code, serialized as its snake_case name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $( $(#[$doc])* $variant, )+
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),+];

            /// The wire name, e.g. `upstream_timeout`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)+
                }
            }
        }
    };
}

codes! {
    // Answered before a stream starts, as an HTTP error.
    /// The body is not JSON.
    InvalidJson = "invalid_json",
    /// A body field has the wrong type.
    InvalidBody = "invalid_body",
    /// The body could not be read for another reason.
    BadBody = "bad_body",
    /// Neither `content` nor a non-empty `messages`.
    MissingContent = "missing_content",
    /// Both `content` and `messages`.
    AmbiguousBody = "ambiguous_body",
    /// A message is blank.
    EmptyContent = "empty_content",
    /// A message is not a string.
    InvalidContent = "invalid_content",
    /// A message is over `server.max_message_chars`.
    MessageTooLong = "message_too_long",
    /// A role other than `user`/`assistant`, or the last message is not the user's.
    InvalidRole = "invalid_role",
    /// More than `server.max_messages`.
    TooManyMessages = "too_many_messages",
    /// The body is over `server.max_body_bytes`.
    BodyTooLarge = "body_too_large",
    /// The body is not sent as JSON.
    UnsupportedMediaType = "unsupported_media_type",
    /// The body did not arrive within `server.body_timeout_ms`.
    RequestTimeout = "request_timeout",
    /// `/api/kb/search` without `q`.
    MissingQuery = "missing_query",
    /// A query parameter is malformed or out of range.
    InvalidQuery = "invalid_query",
    /// No route has this path.
    NotFound = "not_found",
    /// The route exists, the method does not.
    MethodNotAllowed = "method_not_allowed",
    /// The request target is longer than ragstream accepts.
    UriTooLong = "uri_too_long",
    /// Keys are configured and the request has none, or a wrong one.
    Unauthorized = "unauthorized",
    /// The key or client address is over `server.rate_limit`.
    RateLimited = "rate_limited",
    /// All `server.max_streams` slots are taken.
    Overloaded = "overloaded",
    // Both before and inside a stream.
    /// The server is draining.
    ShuttingDown = "shutting_down",
    /// The knowledge base failed.
    KbError = "kb_error",
    /// A fault inside ragstream.
    Internal = "internal",
    // Inside a stream, as an `error` event.
    /// No connection to the provider.
    UpstreamUnreachable = "upstream_unreachable",
    /// The provider answered 429.
    UpstreamRateLimited = "upstream_rate_limited",
    /// The provider answered 5xx.
    UpstreamUnavailable = "upstream_unavailable",
    /// The provider answered another 4xx.
    UpstreamRejected = "upstream_rejected",
    /// The provider was silent too long.
    UpstreamTimeout = "upstream_timeout",
    /// The provider's connection broke.
    UpstreamInterrupted = "upstream_interrupted",
    /// The provider sent something unusable.
    UpstreamProtocol = "upstream_protocol",
    /// The provider put an error object in its stream.
    UpstreamError = "upstream_error",
    /// The model client's settings cannot work.
    Config = "config",
    /// The model still called tools after `chat.max_steps`.
    StepLimit = "step_limit",
    /// Neither a model nor a knowledge base is configured.
    NotConfigured = "not_configured",
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The codes in the two tables under "### Error codes" in docs/protocol.md:
    /// the first cell of each row, several codes separated by ` / `.
    fn documented() -> BTreeSet<String> {
        let doc = include_str!("../docs/protocol.md");
        let start = doc.find("### Error codes").expect("the section exists");
        let section = &doc[start..];
        let section = &section[..section.find("\n## ").unwrap_or(section.len())];
        section
            .lines()
            .filter(|line| line.starts_with("| `"))
            .flat_map(|line| line.split('|').nth(1).unwrap_or("").split('/'))
            .map(|code| code.trim().trim_matches('`').to_owned())
            .collect()
    }

    #[test]
    fn the_protocol_doc_lists_exactly_the_codes_there_are() {
        let documented = documented();
        let defined: BTreeSet<String> = Code::ALL.iter().map(|c| c.as_str().to_owned()).collect();
        let undocumented: Vec<_> = defined.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&defined).collect();
        assert!(
            undocumented.is_empty() && unknown.is_empty(),
            "codes missing from docs/protocol.md: {undocumented:?}; documented but not defined: {unknown:?}"
        );
    }

    #[test]
    fn codes_serialize_as_their_snake_case_names() {
        for code in Code::ALL {
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{code}\""));
            assert!(
                code.as_str()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_'),
                "{code}"
            );
        }
        assert_eq!(Code::UpstreamTimeout.to_string(), "upstream_timeout");
    }
}
