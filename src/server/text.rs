//! The classic plain-text body of `/api/python`: the answer text alone.

use bytes::Bytes;

use super::encode::Encoder;
use crate::engine::Event;
use crate::error::Code;

/// Renders answer text only, and a visible note if the answer fails, so a
/// page that appends chunks shows it.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainText;

impl Encoder for PlainText {
    const CONTENT_TYPE: &'static str = "text/plain; charset=utf-8";
    const KEEP_ALIVE: Option<&'static [u8]> = None;

    fn event(&mut self, event: Event) -> Option<Bytes> {
        match event {
            // The text's own buffer becomes the chunk: no copy.
            Event::Delta(text) => Some(Bytes::from(text)),
            _ => None,
        }
    }

    fn error(&mut self, _code: Code, message: &str) -> Bytes {
        Bytes::from(format!("\n\n[error: {message}]"))
    }
}
