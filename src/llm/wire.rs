//! Wire types of the OpenAI-compatible chat-completions response stream
//! (requests are encoded by `encode`).
//!
//! Response chunks are deliberately lenient: every field is optional, enums
//! are plain strings, and unknown fields are ignored, because real providers
//! send `finish_reason: ""`, `usage: {}`, tool-call deltas without `index`, and
//! fields no client knows yet. Validation happens when a turn ends, not per chunk.

use std::borrow::Cow;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One `chat.completion.chunk` as sent by any provider, borrowing its text
/// from the frame: the common chunk (one content delta without escapes)
/// parses without allocating.
#[derive(Debug, Default, Deserialize)]
pub struct Chunk<'a> {
    /// The first choice with index 0 (ragstream never asks for `n > 1`); `None`
    /// for usage-only chunks. Kept without a `Vec`, so nothing is allocated for it.
    #[serde(default, borrow, rename = "choices", deserialize_with = "first_choice")]
    pub choice: Option<Choice<'a>>,
    /// Token usage, usually in the last chunk.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// An error object some providers put in the stream instead of a chunk.
    #[serde(default)]
    pub error: Option<Value>,
}

/// One choice of a chunk.
#[derive(Debug, Default, Deserialize)]
pub struct Choice<'a> {
    /// Which choice this is; we only follow choice 0.
    #[serde(default)]
    pub index: Option<u32>,
    /// What the chunk adds.
    #[serde(default, borrow)]
    pub delta: Option<Delta<'a>>,
    /// Why the turn ended, when it did.
    #[serde(default, borrow, deserialize_with = "text")]
    pub finish_reason: Option<Cow<'a, str>>,
}

/// The increment a chunk carries.
#[derive(Debug, Default, Deserialize)]
pub struct Delta<'a> {
    /// Answer text.
    #[serde(default, borrow, deserialize_with = "text")]
    pub content: Option<Cow<'a, str>>,
    /// Thinking text (DeepSeek, Qwen, Moonshot).
    #[serde(default, borrow, deserialize_with = "text")]
    pub reasoning_content: Option<Cow<'a, str>>,
    /// Thinking text under the name vLLM and OpenRouter use.
    #[serde(default, borrow, deserialize_with = "text")]
    pub reasoning: Option<Cow<'a, str>>,
    /// Modern tool-call fragments.
    #[serde(default, borrow)]
    pub tool_calls: Option<Vec<ToolCallDelta<'a>>>,
    /// Legacy function-call fragment.
    #[serde(default, borrow)]
    pub function_call: Option<FunctionDelta<'a>>,
}

/// A fragment of one modern tool call.
#[derive(Debug, Default, Deserialize)]
pub struct ToolCallDelta<'a> {
    /// Position of the call in the turn; some providers omit it.
    #[serde(default)]
    pub index: Option<usize>,
    /// The call's id, usually in the first fragment only.
    #[serde(default, borrow, deserialize_with = "text")]
    pub id: Option<Cow<'a, str>>,
    /// Name and argument text.
    #[serde(default, borrow)]
    pub function: Option<FunctionDelta<'a>>,
}

/// A fragment of a function's name and arguments.
#[derive(Debug, Default, Deserialize)]
pub struct FunctionDelta<'a> {
    /// The function name (whole, or in pieces on a few gateways).
    #[serde(default, borrow, deserialize_with = "text")]
    pub name: Option<Cow<'a, str>>,
    /// A piece of the JSON argument text.
    #[serde(default, borrow, deserialize_with = "text")]
    pub arguments: Option<Cow<'a, str>>,
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

/// An optional string, borrowed from the input unless it holds escapes.
/// (`Option<Cow<str>>` alone always copies: serde borrows only a bare `Cow`.)
fn text<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct Text;
    impl<'de> Visitor<'de> for Text {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string or null")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v)))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
            de.deserialize_str(self)
        }
    }
    de.deserialize_option(Text)
}

/// The first choice with index 0 of a `choices` array (or `null`); the others
/// are parsed, then dropped.
fn first_choice<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Choice<'de>>, D::Error> {
    struct First;
    impl<'de> Visitor<'de> for First {
        type Value = Option<Choice<'de>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of choices or null")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
            de.deserialize_seq(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut first = None;
            while let Some(choice) = seq.next_element::<Choice<'de>>()? {
                if first.is_none() && choice.index.unwrap_or(0) == 0 {
                    first = Some(choice);
                }
            }
            Ok(first)
        }
    }
    de.deserialize_option(First)
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
    fn text_is_borrowed_unless_it_has_escapes() {
        let chunk: Chunk =
            serde_json::from_str(r#"{"choices":[{"index":0,"delta":{"content":"你好"}}]}"#)
                .unwrap();
        let content = chunk.choice.unwrap().delta.unwrap().content.unwrap();
        assert!(matches!(content, Cow::Borrowed("你好")), "{content:?}");
        let chunk: Chunk =
            serde_json::from_str(r#"{"choices":[{"delta":{"content":"a\"b\n"}}]}"#).unwrap();
        let content = chunk.choice.unwrap().delta.unwrap().content.unwrap();
        assert!(
            matches!(&content, Cow::Owned(s) if s == "a\"b\n"),
            "{content:?}"
        );
    }

    #[test]
    fn only_the_first_choice_with_index_0_is_kept() {
        let chunk: Chunk = serde_json::from_str(
            r#"{"choices":[{"index":1,"delta":{"content":"x"}},{"index":0,"delta":{"content":"y"}},{"index":0,"delta":{"content":"z"}}]}"#,
        )
        .unwrap();
        let content = chunk.choice.unwrap().delta.unwrap().content.unwrap();
        assert_eq!(content, "y");
        let chunk: Chunk = serde_json::from_str(r#"{"choices":null}"#).unwrap();
        assert!(chunk.choice.is_none());
    }
}
