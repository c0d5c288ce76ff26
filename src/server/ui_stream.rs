//! The body of `/api/ui/chat`: the Vercel AI SDK's UI message stream, v1
//! (`x-vercel-ai-ui-message-stream: v1`), as `useChat` reads it.
//!
//! Only fields `ai@5.0.0` knows are written (its schema rejects others), in
//! the order its client requires: a text or reasoning part is started before
//! its deltas and ended before another part begins; a tool's input comes
//! before its output. The knowledge-base tool is shown as run by the server
//! (`providerExecuted`), so `useChat` never tries to run it.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde_json::{Value, json};

use super::encode::Encoder;
use crate::engine::{Event, Source};
use crate::error::Code;

/// The response header that names the protocol.
pub const HEADER: (&str, &str) = ("x-vercel-ai-ui-message-stream", "v1");

/// Renders engine events as UI message chunks.
#[derive(Debug, Default)]
pub struct UiStream {
    /// `start` went out.
    started: bool,
    /// The open text part's id, if one is open.
    text: Option<String>,
    /// The open reasoning part's id, if one is open.
    reasoning: Option<String>,
    /// Parts opened so far, for unique ids.
    parts: usize,
    /// The assistant message's id.
    message_id: String,
}

impl UiStream {
    /// An encoder whose `start` chunk names the assistant message `message_id`.
    pub fn new(message_id: String) -> Self {
        Self {
            message_id,
            ..Self::default()
        }
    }

    fn start(&mut self, buf: &mut BytesMut) {
        if !std::mem::replace(&mut self.started, true) {
            data(buf, &json!({"type": "start", "messageId": self.message_id}));
        }
    }

    /// Ends the open text part, if any.
    fn end_text(&mut self, buf: &mut BytesMut) {
        if let Some(id) = self.text.take() {
            data(
                buf,
                &Part {
                    kind: "text-end",
                    id: &id,
                },
            );
        }
    }

    /// Ends the open reasoning part, if any.
    fn end_reasoning(&mut self, buf: &mut BytesMut) {
        if let Some(id) = self.reasoning.take() {
            data(
                buf,
                &Part {
                    kind: "reasoning-end",
                    id: &id,
                },
            );
        }
    }

    fn end_parts(&mut self, buf: &mut BytesMut) {
        self.end_text(buf);
        self.end_reasoning(buf);
    }

    fn new_id(&mut self, prefix: &str) -> String {
        self.parts += 1;
        format!("{prefix}-{}", self.parts)
    }
}

impl Encoder for UiStream {
    const CONTENT_TYPE: &'static str = "text/event-stream";
    /// A comment line, which the SDK's SSE parser skips.
    const KEEP_ALIVE: Option<&'static [u8]> = Some(b": keep-alive\n\n");

    fn event(&mut self, event: Event) -> Option<Bytes> {
        let hint = match &event {
            Event::Delta(text) | Event::Reasoning(text) => text.len(),
            Event::Sources(sources) => 200 * sources.len(),
            _ => 0,
        };
        let mut buf = BytesMut::with_capacity(hint + hint / 4 + 96);
        self.start(&mut buf);
        match event {
            Event::Delta(text) => {
                self.end_reasoning(&mut buf);
                let id = match &self.text {
                    Some(id) => id.clone(),
                    None => {
                        let id = self.new_id("text");
                        data(
                            &mut buf,
                            &Part {
                                kind: "text-start",
                                id: &id,
                            },
                        );
                        self.text = Some(id.clone());
                        id
                    }
                };
                data(
                    &mut buf,
                    &Delta {
                        kind: "text-delta",
                        id: &id,
                        delta: &text,
                    },
                );
            }
            Event::Reasoning(text) => {
                self.end_text(&mut buf);
                let id = match &self.reasoning {
                    Some(id) => id.clone(),
                    None => {
                        let id = self.new_id("reasoning");
                        data(
                            &mut buf,
                            &Part {
                                kind: "reasoning-start",
                                id: &id,
                            },
                        );
                        self.reasoning = Some(id.clone());
                        id
                    }
                };
                data(
                    &mut buf,
                    &Delta {
                        kind: "reasoning-delta",
                        id: &id,
                        delta: &text,
                    },
                );
            }
            Event::Status {
                stage,
                tool,
                message,
            } => data(
                &mut buf,
                &json!({
                    "type": "data-status", "transient": true,
                    "data": {"stage": stage, "tool": tool, "message": message},
                }),
            ),
            Event::ToolCall {
                id,
                name,
                arguments,
            } => {
                self.end_parts(&mut buf);
                // The arguments are JSON text; show them parsed when they are JSON.
                let input =
                    serde_json::from_str::<Value>(&arguments).unwrap_or(Value::String(arguments));
                data(
                    &mut buf,
                    &json!({
                        "type": "tool-input-available", "toolCallId": id, "toolName": name,
                        "input": input, "providerExecuted": true,
                    }),
                );
            }
            Event::ToolResult {
                id,
                error,
                hits,
                elapsed_ms,
                ..
            } => {
                let chunk = match error {
                    Some(error) => json!({
                        "type": "tool-output-error", "toolCallId": id, "errorText": error,
                        "providerExecuted": true,
                    }),
                    None => json!({
                        "type": "tool-output-available", "toolCallId": id,
                        "output": {"hits": hits, "elapsed_ms": elapsed_ms}, "providerExecuted": true,
                    }),
                };
                data(&mut buf, &chunk);
            }
            Event::Sources(sources) => {
                for source in &sources {
                    data(&mut buf, &source_chunk(source));
                }
            }
            // The UI endpoint takes no client tools.
            Event::ClientToolCall { .. } => {}
            Event::Done { .. } => {
                self.end_parts(&mut buf);
                data(&mut buf, &json!({"type": "finish"}));
                buf.put_slice(b"data: [DONE]\n\n");
            }
            Event::Error { code, message } => return Some(self.error(code, &message)),
        }
        (!buf.is_empty()).then(|| buf.freeze())
    }

    /// An `error` chunk (`useChat` shows it as the chat's error), then `[DONE]`.
    fn error(&mut self, _code: Code, message: &str) -> Bytes {
        let mut buf = BytesMut::with_capacity(message.len() + 96);
        self.start(&mut buf);
        self.end_parts(&mut buf);
        data(&mut buf, &json!({"type": "error", "errorText": message}));
        buf.put_slice(b"data: [DONE]\n\n");
        buf.freeze()
    }
}

/// `source-url` when the source is a web address, else `source-document`.
fn source_chunk(source: &Source) -> Value {
    if source.source.starts_with("http://") || source.source.starts_with("https://") {
        json!({"type": "source-url", "sourceId": source.id, "url": source.source, "title": source.title})
    } else {
        json!({
            "type": "source-document", "sourceId": source.id, "mediaType": "text/plain",
            "title": source.title, "filename": source.source,
        })
    }
}

/// `text-start`, `text-end` and their reasoning twins.
#[derive(Serialize)]
struct Part<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
}

/// `text-delta` and `reasoning-delta`, borrowed to avoid a copy.
#[derive(Serialize)]
struct Delta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    delta: &'a str,
}

/// Writes `data: JSON\n\n`.
fn data(buf: &mut BytesMut, value: &impl Serialize) {
    buf.put_slice(b"data: ");
    let mut writer = buf.writer();
    serde_json::to_writer(&mut writer, value).expect("UI chunks always serialize to JSON");
    writer.into_inner().put_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Stage;

    fn chunks(events: Vec<Event>) -> Vec<Value> {
        let mut encoder = UiStream::new("msg-1".into());
        let mut out = String::new();
        for event in events {
            if let Some(bytes) = encoder.event(event) {
                out.push_str(std::str::from_utf8(&bytes).unwrap());
            }
        }
        out.split("\n\n")
            .filter(|l| !l.is_empty())
            .map(|l| l.strip_prefix("data: ").unwrap())
            .map(|l| serde_json::from_str(l).unwrap_or(Value::String(l.into())))
            .collect()
    }

    fn types(chunks: &[Value]) -> Vec<&str> {
        chunks
            .iter()
            .map(|c| c["type"].as_str().unwrap_or("[DONE]"))
            .collect()
    }

    #[test]
    fn parts_open_before_their_deltas_and_close_before_the_next_part() {
        let source = Source {
            n: 1,
            id: "self-injury".into(),
            title: "自伤".into(),
            snippet: "s".into(),
            score: 0.9,
            source: "https://example.org/a".into(),
        };
        let chunks = chunks(vec![
            Event::Reasoning("想".into()),
            Event::Status {
                stage: Stage::Searching,
                tool: Some("kb".into()),
                message: "…".into(),
            },
            Event::ToolCall {
                id: "c1".into(),
                name: "kb".into(),
                arguments: "{\"question\":\"q\"}".into(),
            },
            Event::ToolResult {
                id: "c1".into(),
                name: "kb".into(),
                error: None,
                hits: 1,
                elapsed_ms: 3,
            },
            Event::Sources(vec![source]),
            Event::Delta("先".into()),
            Event::Delta("说".into()),
            Event::Done {
                finish_reason: "stop".into(),
                usage: None,
                steps: 2,
            },
        ]);
        assert_eq!(
            types(&chunks),
            [
                "start",
                "reasoning-start",
                "reasoning-delta",
                "data-status",
                "reasoning-end",
                "tool-input-available",
                "tool-output-available",
                "source-url",
                "text-start",
                "text-delta",
                "text-delta",
                "text-end",
                "finish",
                "[DONE]"
            ]
        );
        assert_eq!(chunks[5]["input"], json!({"question": "q"}));
        assert_eq!(chunks[8]["id"], chunks[10]["id"]);
        assert_eq!(chunks[8]["id"], chunks[11]["id"]);
    }

    #[test]
    fn a_failure_closes_the_open_part_then_sends_error_and_done() {
        let mut encoder = UiStream::new("m".into());
        let first = encoder.event(Event::Delta("半".into())).unwrap();
        let error = encoder.error(Code::UpstreamTimeout, "slow");
        assert!(std::str::from_utf8(&first).unwrap().contains("text-start"));
        assert_eq!(
            std::str::from_utf8(&error).unwrap(),
            "data: {\"type\":\"text-end\",\"id\":\"text-1\"}\n\ndata: {\"errorText\":\"slow\",\"type\":\"error\"}\n\ndata: [DONE]\n\n"
        );
    }
}
