//! The chat request body, checked into a conversation the engine can use.

use serde::Deserialize;
use serde_json::Value;

use super::error::ApiError;
use super::settings::Limits;
use crate::error::Code;
use crate::llm::{Message, Role};

/// `{"messages":[…]}` or the classic `{"content":"…"}`. Other fields (a
/// front end's `model`, `stream`, …) are accepted and ignored.
#[derive(Debug, Deserialize)]
pub struct ChatBody {
    /// The conversation, oldest first.
    #[serde(default)]
    pub messages: Option<Vec<InMessage>>,
    /// A single question (the classic front end's body).
    #[serde(default)]
    pub content: Option<Value>,
}

/// One message as a client sends it.
#[derive(Debug, Deserialize)]
pub struct InMessage {
    /// `user` or `assistant`.
    #[serde(default)]
    pub role: Option<String>,
    /// The text.
    #[serde(default)]
    pub content: Option<Value>,
}

impl ChatBody {
    /// Checks the body against the limits and returns the conversation.
    pub fn into_conversation(self, limits: &Limits) -> Result<Vec<Message>, ApiError> {
        let conversation = match (self.messages, self.content) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    Code::AmbiguousBody,
                    "send either `messages` or `content`, not both",
                ));
            }
            (None, None) => {
                return Err(ApiError::bad_request(
                    Code::MissingContent,
                    "the body needs `content` (a question) or `messages` (a conversation)",
                ));
            }
            (None, Some(content)) => {
                vec![Message::text(Role::User, text(content, "content", limits)?)]
            }
            (Some(messages), None) => messages
                .into_iter()
                .enumerate()
                .map(|(i, m)| message(i, m, limits))
                .collect::<Result<Vec<_>, _>>()?,
        };
        if conversation.is_empty() {
            return Err(ApiError::bad_request(
                Code::MissingContent,
                "`messages` is empty",
            ));
        }
        if conversation.len() > limits.max_messages {
            return Err(ApiError::bad_request(
                Code::TooManyMessages,
                format!(
                    "{} messages sent, at most {} allowed (server.max_messages): drop older messages",
                    conversation.len(),
                    limits.max_messages
                ),
            ));
        }
        if conversation.last().map(|m| m.role) != Some(Role::User) {
            return Err(ApiError::bad_request(
                Code::InvalidRole,
                "the last message must have role `user`",
            ));
        }
        Ok(conversation)
    }
}

fn message(index: usize, message: InMessage, limits: &Limits) -> Result<Message, ApiError> {
    let field = format!("messages[{index}]");
    let role = match message.role.as_deref() {
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some(other) => {
            return Err(ApiError::bad_request(
                Code::InvalidRole,
                format!(
                    "{field}.role is `{other}`; use `user` or `assistant` (the server sets the system prompt)"
                ),
            ));
        }
        None => {
            return Err(ApiError::bad_request(
                Code::InvalidRole,
                format!("{field}.role is missing"),
            ));
        }
    };
    let content = message.content.ok_or_else(|| {
        ApiError::bad_request(Code::MissingContent, format!("{field}.content is missing"))
    })?;
    Ok(Message::text(
        role,
        text(content, &format!("{field}.content"), limits)?,
    ))
}

/// A non-empty string within the length limit.
fn text(value: Value, field: &str, limits: &Limits) -> Result<String, ApiError> {
    let Value::String(text) = value else {
        return Err(ApiError::bad_request(
            Code::InvalidContent,
            format!("{field} must be a string"),
        ));
    };
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(
            Code::EmptyContent,
            format!("{field} is empty"),
        ));
    }
    within_length(text, field, limits)
}

/// `text` if it has at most `server.max_message_chars` characters.
pub(crate) fn within_length(
    text: String,
    field: &str,
    limits: &Limits,
) -> Result<String, ApiError> {
    let chars = text.chars().count();
    if chars > limits.max_message_chars {
        return Err(ApiError::bad_request(
            Code::MessageTooLong,
            format!(
                "{field} has {chars} characters, at most {} allowed (server.max_message_chars)",
                limits.max_message_chars
            ),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_body_bytes: 1024,
        max_messages: 3,
        max_message_chars: 10,
        max_streams: 1,
        shutdown_grace: std::time::Duration::ZERO,
        header_timeout: std::time::Duration::from_secs(1),
        body_timeout: std::time::Duration::from_secs(1),
    };

    fn check(body: &str) -> Result<Vec<Message>, ApiError> {
        serde_json::from_str::<ChatBody>(body)
            .unwrap()
            .into_conversation(&LIMITS)
    }

    fn code(body: &str) -> &'static str {
        check(body).unwrap_err().code.as_str()
    }

    #[test]
    fn classic_and_conversation_bodies_are_accepted() {
        assert_eq!(
            check(r#"{"content":"自伤怎么办"}"#).unwrap()[0]
                .content
                .as_deref(),
            Some("自伤怎么办")
        );
        let conversation = check(
            r#"{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"},{"role":"user","content":"q"}],"model":"x"}"#,
        )
        .unwrap();
        assert_eq!(conversation.len(), 3);
        assert_eq!(conversation[1].role, Role::Assistant);
    }

    #[test]
    fn each_mistake_gets_its_own_code() {
        assert_eq!(code("{}"), "missing_content");
        assert_eq!(code(r#"{"content":"  "}"#), "empty_content");
        assert_eq!(code(r#"{"content":5}"#), "invalid_content");
        assert_eq!(code(r#"{"content":"a","messages":[]}"#), "ambiguous_body");
        assert_eq!(code(r#"{"messages":[]}"#), "missing_content");
        assert_eq!(
            code(r#"{"messages":[{"role":"system","content":"x"}]}"#),
            "invalid_role"
        );
        assert_eq!(code(r#"{"messages":[{"content":"x"}]}"#), "invalid_role");
        assert_eq!(
            code(
                r#"{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":"y"}]}"#
            ),
            "invalid_role"
        );
        assert_eq!(code(r#"{"content":"01234567890"}"#), "message_too_long");
        let four = r#"{"messages":[{"role":"user","content":"a"},{"role":"user","content":"a"},{"role":"user","content":"a"},{"role":"user","content":"a"}]}"#;
        assert_eq!(code(four), "too_many_messages");
    }

    #[test]
    fn messages_say_which_field_to_fix() {
        let err =
            check(r#"{"messages":[{"role":"user","content":"x"},{"role":"tool","content":"y"}]}"#)
                .unwrap_err();
        assert!(
            err.message.starts_with("messages[1].role is `tool`"),
            "{}",
            err.message
        );
    }
}
