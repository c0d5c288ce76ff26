//! The `text/event-stream` body of `/api/chat`: named events with JSON data.
//!
//! Hand-rolled rather than `axum::response::Sse` to keep the per-chunk path
//! to one allocation: each event is written once into a buffer sized for it,
//! and the keep-alive (in [`super::encode`]) is a fixed interval that costs a
//! flag per event, where axum's resets a timer on every event.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde_json::json;

use super::encode::Encoder;
use crate::engine::{Event, Source};
use crate::error::Code;

/// Named SSE events (`docs/protocol.md`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sse;

impl Encoder for Sse {
    const CONTENT_TYPE: &'static str = "text/event-stream";
    /// A comment line, which clients ignore.
    const KEEP_ALIVE: Option<&'static [u8]> = Some(b": keep-alive\n\n");

    fn event(&mut self, event: Event) -> Option<Bytes> {
        // `/api/chat` takes no client tools, so their calls never reach it.
        (!matches!(event, Event::ClientToolCall { .. })).then(|| encode(&event))
    }

    fn error(&mut self, code: Code, message: &str) -> Bytes {
        frame(
            "error",
            message.len(),
            &json!({"code": code, "message": message}),
        )
    }
}

/// The payload of `delta` and `reasoning` events, borrowed to avoid a copy.
#[derive(Serialize)]
struct Text<'a> {
    /// The text piece.
    text: &'a str,
}

/// The payload of `sources` events; typed so that f32 scores print as written.
#[derive(Serialize)]
struct Sources<'a> {
    /// Numbered sources.
    sources: &'a [Source],
}

/// Encodes an event as `event: NAME\ndata: JSON\n\n` (`docs/protocol.md`).
/// JSON text never holds a raw newline, so one `data:` line always suffices.
pub fn encode(event: &Event) -> Bytes {
    match event {
        Event::Delta(text) => frame("delta", text.len(), &Text { text }),
        Event::Reasoning(text) => frame("reasoning", text.len(), &Text { text }),
        Event::Status {
            stage,
            tool,
            message,
        } => frame(
            "status",
            message.len(),
            &json!({"stage": stage, "tool": tool, "message": message}),
        ),
        Event::ToolCall {
            id,
            name,
            arguments,
        }
        | Event::ClientToolCall {
            id,
            name,
            arguments,
        } => frame(
            "tool_call",
            arguments.len(),
            &json!({"id": id, "name": name, "arguments": arguments}),
        ),
        Event::ToolResult {
            id,
            name,
            error,
            hits,
            elapsed_ms,
        } => frame(
            "tool_result",
            64,
            &json!({
                "id": id, "name": name, "ok": error.is_none(), "error": error,
                "hits": hits, "elapsed_ms": elapsed_ms,
            }),
        ),
        Event::Sources(sources) => frame("sources", 256 * sources.len(), &Sources { sources }),
        Event::Error { code, message } => frame(
            "error",
            message.len(),
            &json!({"code": code, "message": message}),
        ),
        Event::Done {
            finish_reason,
            usage,
            steps,
        } => frame(
            "done",
            96,
            &json!({"finish_reason": finish_reason, "usage": usage, "steps": steps}),
        ),
    }
}

/// Writes one frame into a buffer sized for it.
fn frame(name: &str, payload_hint: usize, data: &impl Serialize) -> Bytes {
    // Room for the field names, the JSON punctuation and some escaping.
    let mut buf = BytesMut::with_capacity(name.len() + payload_hint + payload_hint / 4 + 32);
    buf.put_slice(b"event: ");
    buf.put_slice(name.as_bytes());
    buf.put_slice(b"\ndata: ");
    let mut writer = buf.writer();
    serde_json::to_writer(&mut writer, data).expect("event payloads always serialize to JSON");
    let mut buf = writer.into_inner();
    buf.put_slice(b"\n\n");
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_is_one_event_with_escaped_json() {
        let bytes = encode(&Event::Delta("第一行\n\"引号\"".into()));
        assert_eq!(
            &bytes[..],
            "event: delta\ndata: {\"text\":\"第一行\\n\\\"引号\\\"\"}\n\n".as_bytes()
        );
    }

    #[test]
    fn scores_print_as_written() {
        let source = Source {
            n: 1,
            id: "a".into(),
            title: "t".into(),
            snippet: "s".into(),
            score: 0.8,
            source: "f".into(),
        };
        let text = String::from_utf8(encode(&Event::Sources(vec![source])).to_vec()).unwrap();
        assert!(text.contains("\"score\":0.8,"), "{text}");
    }
}
