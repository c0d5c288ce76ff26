//! Renders engine events as the classic plain-text body (SSE lives in `sse`).

use std::convert::Infallible;

use bytes::Bytes;

use crate::engine::Event;

/// Renders an event for the classic plain-text body: answer text only, and a
/// visible note if the answer fails, so a page that appends chunks shows it.
pub fn to_text(event: Event) -> Option<Result<Bytes, Infallible>> {
    match event {
        Event::Delta(text) => Some(Ok(Bytes::from(text))),
        Event::Error { message, .. } => Some(Ok(Bytes::from(format!("\n\n[error: {message}]")))),
        _ => None,
    }
}
