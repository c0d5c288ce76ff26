//! The `text/event-stream` body of `/api/chat`: event encoding and keep-alive.
//!
//! Hand-rolled rather than `axum::response::Sse` to keep the per-chunk path
//! to one allocation: each event is written once into a buffer sized for it,
//! and the keep-alive is a fixed interval that costs a flag per event, where
//! axum's resets a timer on every event.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::Stream;
use pin_project_lite::pin_project;
use serde::Serialize;
use serde_json::json;
use tokio::time::{Interval, MissedTickBehavior};

use crate::engine::{Event, Source};

/// How often an idle stream gets a comment line, so proxies keep it open.
pub const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(15);

/// The comment sent on an idle stream.
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

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

pin_project! {
    /// Encodes events and adds a keep-alive comment to a stream that has been
    /// quiet for a whole interval.
    pub struct EventStream<S> {
        #[pin]
        events: S,
        // Ticks every KEEP_ALIVE_EVERY.
        interval: Interval,
        // Something was sent since the last tick.
        sent: bool,
    }
}

impl<S> EventStream<S> {
    /// Wraps an event stream.
    pub fn new(events: S) -> Self {
        Self::with_interval(events, KEEP_ALIVE_EVERY)
    }

    /// Wraps an event stream with a keep-alive every `every`.
    pub fn with_interval(events: S, every: Duration) -> Self {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            events,
            interval,
            sent: false,
        }
    }
}

impl<S: Stream<Item = Event>> Stream for EventStream<S> {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        match this.events.poll_next(cx) {
            Poll::Ready(Some(event)) => {
                *this.sent = true;
                return Poll::Ready(Some(Ok(encode(&event))));
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        while this.interval.poll_tick(cx).is_ready() {
            if !std::mem::replace(this.sent, false) {
                return Poll::Ready(Some(Ok(Bytes::from_static(KEEP_ALIVE))));
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

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

    #[tokio::test(start_paused = true)]
    async fn only_a_quiet_stream_gets_keep_alives() {
        let events = async_stream::stream! {
            tokio::time::sleep(Duration::from_secs(35)).await;
            yield Event::Delta("late".into());
        };
        let frames: Vec<Bytes> = EventStream::new(events).map(Result::unwrap).collect().await;
        assert_eq!(frames.len(), 3, "{frames:?}");
        assert_eq!(&frames[0][..], KEEP_ALIVE);
        assert_eq!(&frames[1][..], KEEP_ALIVE);
        assert!(frames[2].starts_with(b"event: delta"));

        let busy = futures::stream::iter((0..100).map(|i| Event::Delta(i.to_string())));
        let frames: Vec<Bytes> = EventStream::new(busy).map(Result::unwrap).collect().await;
        assert!(frames.iter().all(|f| f.starts_with(b"event: delta")));
    }
}
