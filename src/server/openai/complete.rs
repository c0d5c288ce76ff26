//! The non-streaming answer of `/v1/chat/completions`: the engine's events
//! gathered into one standard `chat.completion`.

use futures::{Stream, StreamExt};
use serde_json::{Value, json};

use super::{Answer, OutUsage, finish_reason};
use crate::engine::{Event, Source};
use crate::error::Code;

/// Why an answer could not be given.
#[derive(Debug, Clone, PartialEq)]
pub struct Failed {
    /// The engine's code.
    pub code: Code,
    /// What happened.
    pub message: String,
}

/// Gathers `events` into a `chat.completion` body.
pub async fn complete(answer: &Answer, events: impl Stream<Item = Event>) -> Result<Value, Failed> {
    let mut events = std::pin::pin!(events);
    let mut content = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    let mut sources: Vec<Source> = Vec::new();
    while let Some(event) = events.next().await {
        match event {
            Event::Delta(text) => content.push_str(&text),
            Event::Reasoning(text) => reasoning.push_str(&text),
            Event::Sources(more) => sources.extend(more),
            Event::ClientToolCall {
                id,
                name,
                arguments,
            } => tool_calls.push(json!({
                "id": id, "type": "function",
                "function": {"name": name, "arguments": arguments},
            })),
            Event::Status { .. } | Event::ToolCall { .. } | Event::ToolResult { .. } => {}
            Event::Error { code, message } => return Err(Failed { code, message }),
            Event::Done {
                finish_reason: reason,
                usage,
                ..
            } => {
                let mut message = json!({
                    "role": "assistant",
                    "content": if content.is_empty() && !tool_calls.is_empty() { Value::Null } else { Value::String(content) },
                    "refusal": null,
                });
                if !tool_calls.is_empty() {
                    message["tool_calls"] = Value::Array(tool_calls);
                }
                if !reasoning.is_empty() {
                    message["reasoning_content"] = Value::String(reasoning);
                }
                return Ok(json!({
                    "id": answer.id,
                    "object": "chat.completion",
                    "created": answer.created,
                    "model": answer.model,
                    "system_fingerprint": null,
                    "choices": [{
                        "index": 0,
                        "message": message,
                        "logprobs": null,
                        "finish_reason": finish_reason(&reason),
                    }],
                    "usage": OutUsage::from(usage),
                    "ragstream": {"sources": sources},
                }));
            }
        }
    }
    Err(Failed {
        code: Code::Internal,
        message: "the answer ended unexpectedly".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Answer {
        Answer {
            id: "chatcmpl-x".into(),
            created: 1,
            model: "ragstream".into(),
        }
    }

    #[tokio::test]
    async fn a_client_tool_call_ends_with_tool_calls_and_null_content() {
        let events = futures::stream::iter([
            Event::ClientToolCall {
                id: "w".into(),
                name: "weather".into(),
                arguments: "{}".into(),
            },
            Event::Done {
                finish_reason: "tool_calls".into(),
                usage: None,
                steps: 1,
            },
        ]);
        let body = complete(&answer(), events).await.unwrap();
        let choice = &body["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], Value::Null);
        assert_eq!(
            choice["message"]["tool_calls"][0]["function"]["name"],
            "weather"
        );
        assert_eq!(body["usage"]["total_tokens"], 0);
    }

    #[tokio::test]
    async fn an_error_event_fails_the_whole_answer() {
        let events = futures::stream::iter([
            Event::Delta("半".into()),
            Event::Error {
                code: Code::UpstreamTimeout,
                message: "slow".into(),
            },
        ]);
        let failed = complete(&answer(), events).await.unwrap_err();
        assert_eq!(failed.code, Code::UpstreamTimeout);
    }
}
