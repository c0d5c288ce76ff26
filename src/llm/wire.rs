//! Wire types of the OpenAI-compatible chat-completions response stream
//! (requests are encoded by `encode`).
//!
//! Response chunks are deliberately lenient: every field is optional, enums
//! are plain strings, and unknown fields are ignored, because real providers
//! send `finish_reason: ""`, `usage: {}`, tool-call deltas without `index`, and
//! fields no client knows yet. Validation happens when a turn ends, not per chunk.

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
}
