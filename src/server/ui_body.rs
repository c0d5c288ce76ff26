//! The body `useChat`'s `DefaultChatTransport` sends to `/api/ui/chat`:
//! `{id, messages: [{id, role, parts}], trigger}`, turned into the checked
//! conversation of `/api/chat`.

use serde::Deserialize;
use serde_json::Value;

use super::error::ApiError;
use super::request::{ChatBody, InMessage};
use super::settings::Limits;
use crate::llm::Message;

/// The transport's body; `id`, `trigger`, `messageId` and any fields the
/// app adds are accepted and not needed.
#[derive(Debug, Deserialize)]
pub struct UiBody {
    /// The chat's UI messages, oldest first.
    #[serde(default)]
    pub messages: Vec<UiMessage>,
}

/// One UI message.
#[derive(Debug, Deserialize)]
pub struct UiMessage {
    /// `user`, `assistant` (or `system`, which is refused as on `/api/chat`).
    #[serde(default)]
    pub role: Option<String>,
    /// Text, reasoning, tool, source and file parts.
    #[serde(default)]
    pub parts: Vec<Value>,
}

impl UiBody {
    /// The text parts of each message (joined by newlines) as a conversation,
    /// checked as `/api/chat` checks one. Other parts (reasoning, tools,
    /// sources, step markers) are what ragstream itself sent and are left out;
    /// a message with no text at all is skipped.
    pub fn into_conversation(self, limits: &Limits) -> Result<Vec<Message>, ApiError> {
        let messages = self
            .messages
            .into_iter()
            .filter_map(|message| {
                let texts: Vec<&str> = message
                    .parts
                    .iter()
                    .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect();
                (!texts.is_empty()).then(|| InMessage {
                    role: message.role,
                    content: Some(Value::String(texts.join("\n"))),
                })
            })
            .collect();
        ChatBody {
            messages: Some(messages),
            content: None,
        }
        .into_conversation(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Role;

    const LIMITS: Limits = Limits {
        max_body_bytes: 1024,
        max_messages: 10,
        max_message_chars: 100,
        max_streams: 1,
        shutdown_grace: std::time::Duration::ZERO,
        header_timeout: std::time::Duration::from_secs(1),
        body_timeout: std::time::Duration::from_secs(1),
    };

    #[test]
    fn text_parts_make_the_conversation_and_other_parts_are_left_out() {
        let body: UiBody = serde_json::from_value(serde_json::json!({
            "id": "chat-1", "trigger": "submit-message",
            "messages": [
                {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "自伤"}]},
                {"id": "m2", "role": "assistant", "parts": [
                    {"type": "step-start"},
                    {"type": "tool-autism_expert", "toolCallId": "c", "state": "output-available"},
                    {"type": "text", "text": "先保证", "state": "done"},
                    {"type": "text", "text": "安全"}]},
                {"id": "m3", "role": "assistant", "parts": [{"type": "reasoning", "text": "…"}]},
                {"id": "m4", "role": "user", "parts": [{"type": "text", "text": "然后呢"}]}
            ]
        }))
        .unwrap();
        let conversation = body.into_conversation(&LIMITS).unwrap();
        assert_eq!(conversation.len(), 3);
        assert_eq!(conversation[1].role, Role::Assistant);
        assert_eq!(conversation[1].content.as_deref(), Some("先保证\n安全"));
    }

    #[test]
    fn an_empty_chat_is_refused() {
        let body: UiBody =
            serde_json::from_value(serde_json::json!({"id": "c", "messages": []})).unwrap();
        assert_eq!(
            body.into_conversation(&LIMITS).unwrap_err().code.as_str(),
            "missing_content"
        );
    }
}
