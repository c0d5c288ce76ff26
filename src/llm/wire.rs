//! Wire types of the OpenAI-compatible chat-completions API.
//!
//! Response chunks are deliberately lenient: every field is optional, enums
//! are plain strings, and unknown fields are ignored, because real providers
//! send `finish_reason: ""`, `usage: {}`, tool-call deltas without `index`, and
//! fields no client knows yet. Validation happens when a turn ends, not per chunk.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// One `chat.completion.chunk` as sent by any provider.
#[derive(Debug, Default, Deserialize)]
pub struct Chunk {
    /// Choices in this chunk; empty for usage-only chunks. (Keeping only
    /// the first one in a custom visitor was measured: moving the large
    /// `Choice` around cost more than the `Vec`.)
    #[serde(default, deserialize_with = "null_as_default")]
    pub choices: Vec<Choice>,
    /// Token usage, usually in the last chunk.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// An error object some providers put in the stream instead of a chunk.
    #[serde(default)]
    pub error: Option<Value>,
}

/// One choice of a chunk.
#[derive(Debug, Default, Deserialize)]
pub struct Choice {
    /// Which choice this is; we only follow choice 0.
    #[serde(default)]
    pub index: Option<u32>,
    /// What the chunk adds.
    #[serde(default)]
    pub delta: Option<Delta>,
    /// Why the turn ended, when it did.
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// The increment a chunk carries.
#[derive(Debug, Default, Deserialize)]
pub struct Delta {
    /// Answer text.
    #[serde(default)]
    pub content: Option<String>,
    /// Thinking text (DeepSeek, Qwen, Moonshot).
    #[serde(default)]
    pub reasoning_content: Option<String>,
    /// Thinking text under the name vLLM and OpenRouter use.
    #[serde(default)]
    pub reasoning: Option<String>,
    /// Modern tool-call fragments.
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    /// Legacy function-call fragment.
    #[serde(default)]
    pub function_call: Option<FunctionDelta>,
}

/// A fragment of one modern tool call.
#[derive(Debug, Default, Deserialize)]
pub struct ToolCallDelta {
    /// Position of the call in the turn; some providers omit it.
    #[serde(default)]
    pub index: Option<usize>,
    /// The call's id, usually in the first fragment only.
    #[serde(default)]
    pub id: Option<String>,
    /// Name and argument text.
    #[serde(default)]
    pub function: Option<FunctionDelta>,
}

/// A fragment of a function's name and arguments.
#[derive(Debug, Default, Deserialize)]
pub struct FunctionDelta {
    /// The function name (whole, or in pieces on a few gateways).
    #[serde(default)]
    pub name: Option<String>,
    /// A piece of the JSON argument text.
    #[serde(default)]
    pub arguments: Option<String>,
}

/// Token counts reported by the provider.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub struct Usage {
    /// Tokens in the prompt.
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    /// Tokens generated.
    #[serde(default)]
    pub completion_tokens: Option<u64>,
    /// Sum of both.
    #[serde(default)]
    pub total_tokens: Option<u64>,
}

fn null_as_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

/// A message of the conversation sent upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant`, `tool` or `function`.
    pub role: Role,
    /// Text; `null` on an assistant turn that only calls tools.
    pub content: Option<String>,
    /// The assistant's thinking, sent back where the provider requires it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Modern tool calls of an assistant turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<WireToolCall>,
    /// The call a `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Legacy function call of an assistant turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_call: Option<WireFunction>,
    /// Function name of a legacy `function` message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Message {
    /// A message with a role and text only.
    pub fn text(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: Some(content.into()),
            reasoning_content: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
            function_call: None,
            name: None,
        }
    }
}

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions from the operator.
    System,
    /// The person chatting.
    User,
    /// The model.
    Assistant,
    /// A modern tool result.
    Tool,
    /// A legacy function result.
    Function,
}

impl Role {
    /// The role as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::Tool => "tool",
            Self::Function => "function",
        }
    }
}

/// A complete tool call as sent back in the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireToolCall {
    /// The call's id.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Name and arguments.
    pub function: WireFunction,
}

/// A function name with its JSON argument text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireFunction {
    /// Function name.
    pub name: String,
    /// Arguments as JSON text.
    pub arguments: String,
}

/// The body of `POST /chat/completions`.
#[derive(Debug, Clone, Serialize)]
pub struct Request<'a> {
    /// Model name.
    pub model: &'a str,
    /// The conversation.
    pub messages: &'a [Message],
    /// Always true: ragstream only streams.
    pub stream: bool,
    /// Sampling temperature, if configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Modern tool definitions, serialized once when the engine is built.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<&'a RawValue>,
    /// `auto` or `none` for modern tools.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<&'static str>,
    /// Legacy function definitions, serialized once when the engine is built.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub functions: Option<&'a RawValue>,
    /// `auto` or `none` for legacy functions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_call: Option<&'static str>,
    /// Asks for usage in the last chunk, where the provider supports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quirky_chunks_parse() {
        let quirks = [
            r#"{"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":""}],"service_tier":"flex"}"#,
            r#"{"choices":[],"usage":{}}"#,
            r#"{"choices":null,"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"name":"f"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":null},"logprobs":null}]}"#,
            r#"{"error":{"message":"overloaded","code":529}}"#,
        ];
        for text in quirks {
            serde_json::from_str::<Chunk>(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
    }

    #[test]
    fn assistant_tool_turn_serializes_with_null_content() {
        let mut message = Message::text(Role::Assistant, "");
        message.content = None;
        message.tool_calls.push(WireToolCall {
            id: "call_1".into(),
            kind: "function".into(),
            function: WireFunction {
                name: "f".into(),
                arguments: "{}".into(),
            },
        });
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(json["content"], Value::Null);
        assert_eq!(json["tool_calls"][0]["type"], "function");
        assert!(json.get("tool_call_id").is_none());
    }
}
