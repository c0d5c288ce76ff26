//! Renders engine events for each HTTP surface.

use std::convert::Infallible;

use axum::response::sse;
use bytes::Bytes;
use serde::Serialize;
use serde_json::json;

use crate::engine::{Event, Source};

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

/// Renders an event as a named SSE event with a JSON payload (`docs/protocol.md`).
pub fn to_sse(event: Event) -> Result<sse::Event, Infallible> {
    let frame = sse::Event::default();
    let frame = match &event {
        Event::Delta(text) => frame.event("delta").json_data(Text { text }),
        Event::Reasoning(text) => frame.event("reasoning").json_data(Text { text }),
        Event::Status {
            stage,
            tool,
            message,
        } => frame
            .event("status")
            .json_data(json!({"stage": stage, "tool": tool, "message": message})),
        Event::ToolCall {
            id,
            name,
            arguments,
        } => frame
            .event("tool_call")
            .json_data(json!({"id": id, "name": name, "arguments": arguments})),
        Event::ToolResult {
            id,
            name,
            error,
            hits,
            elapsed_ms,
        } => frame.event("tool_result").json_data(json!({
            "id": id, "name": name, "ok": error.is_none(), "error": error,
            "hits": hits, "elapsed_ms": elapsed_ms,
        })),
        Event::Sources(sources) => frame.event("sources").json_data(Sources { sources }),
        Event::Error { code, message } => frame
            .event("error")
            .json_data(json!({"code": code, "message": message})),
        Event::Done {
            finish_reason,
            usage,
            steps,
        } => frame
            .event("done")
            .json_data(json!({"finish_reason": finish_reason, "usage": usage, "steps": steps})),
    };
    Ok(frame.expect("event payloads always serialize to JSON"))
}

/// Renders an event for the classic plain-text body: answer text only, and a
/// visible note if the answer fails, so a page that appends chunks shows it.
pub fn to_text(event: Event) -> Option<Result<Bytes, Infallible>> {
    match event {
        Event::Delta(text) => Some(Ok(Bytes::from(text))),
        Event::Error { message, .. } => Some(Ok(Bytes::from(format!("\n\n[error: {message}]")))),
        _ => None,
    }
}
