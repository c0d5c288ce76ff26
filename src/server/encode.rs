//! One streaming body for every wire format: an [`Encoder`] turns engine
//! events into bytes, and [`Encoded`] relays them with the encoder's
//! keep-alive. A new format (OpenAI chunks, the AI SDK UI message stream) is a
//! new encoder, not a new loop.
//!
//! Generic rather than `dyn`: the per-chunk path is one inlined call into the
//! encoder, which writes each event once into a buffer sized for it.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::Stream;
use pin_project_lite::pin_project;
use tokio::time::{Interval, MissedTickBehavior};

use crate::engine::Event;
use crate::error::Code;

/// How often an idle stream gets the encoder's keep-alive, so proxies keep it open.
pub const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(15);

/// Renders engine events in one wire format.
pub trait Encoder: Send + 'static {
    /// The response's `Content-Type`.
    const CONTENT_TYPE: &'static str;
    /// Bytes sent when a stream has been quiet for [`KEEP_ALIVE_EVERY`];
    /// `None` sends nothing.
    const KEEP_ALIVE: Option<&'static [u8]>;

    /// Renders one event; `None` leaves it out of this format.
    /// Never called with [`Event::Error`]: see [`Encoder::error`].
    fn event(&mut self, event: Event) -> Option<Bytes>;

    /// Renders the error that ends a stream after its response has started,
    /// when the status can no longer say it: the client must see it.
    fn error(&mut self, code: Code, message: &str) -> Bytes;
}

pin_project! {
    /// An event stream rendered by `E`, with a keep-alive when it is quiet
    /// for a whole interval.
    pub struct Encoded<S, E> {
        #[pin]
        events: S,
        encoder: E,
        // Ticks every KEEP_ALIVE_EVERY; `None` if the format has no keep-alive.
        interval: Option<Interval>,
        // Something was sent since the last tick.
        sent: bool,
    }
}

impl<S, E: Encoder> Encoded<S, E> {
    /// Renders `events` with `encoder`.
    pub fn new(events: S, encoder: E) -> Self {
        Self::with_interval(events, encoder, KEEP_ALIVE_EVERY)
    }

    /// Renders `events` with `encoder` and a keep-alive every `every`.
    pub fn with_interval(events: S, encoder: E, every: Duration) -> Self {
        let interval = E::KEEP_ALIVE.map(|_| {
            let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        Self {
            events,
            encoder,
            interval,
            sent: false,
        }
    }
}

impl<S: Stream<Item = Event> + Send + 'static, E: Encoder> Encoded<S, E> {
    /// The streaming response, with headers that keep caches and proxies
    /// from holding it back.
    pub fn into_response(self) -> Response {
        (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(E::CONTENT_TYPE),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                // nginx buffers responses unless told otherwise.
                (
                    header::HeaderName::from_static("x-accel-buffering"),
                    HeaderValue::from_static("no"),
                ),
            ],
            Body::from_stream(self),
        )
            .into_response()
    }
}

impl<S: Stream<Item = Event>, E: Encoder> Stream for Encoded<S, E> {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            let bytes = match this.events.as_mut().poll_next(cx) {
                Poll::Ready(Some(Event::Error { code, message })) => {
                    this.encoder.error(code, &message)
                }
                Poll::Ready(Some(event)) => match this.encoder.event(event) {
                    Some(bytes) => bytes,
                    None => continue,
                },
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => break,
            };
            *this.sent = true;
            return Poll::Ready(Some(Ok(bytes)));
        }
        if let (Some(interval), Some(keep_alive)) = (this.interval.as_mut(), E::KEEP_ALIVE) {
            while interval.poll_tick(cx).is_ready() {
                if !std::mem::replace(this.sent, false) {
                    return Poll::Ready(Some(Ok(Bytes::from_static(keep_alive))));
                }
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::sse::Sse;
    use crate::server::text::PlainText;
    use futures::StreamExt;

    async fn render<E: Encoder>(events: Vec<Event>, encoder: E) -> Vec<Bytes> {
        Encoded::new(futures::stream::iter(events), encoder)
            .map(Result::unwrap)
            .collect()
            .await
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_quiet_stream_gets_keep_alives() {
        let events = async_stream::stream! {
            tokio::time::sleep(Duration::from_secs(35)).await;
            yield Event::Delta("late".into());
        };
        let frames: Vec<Bytes> = Encoded::new(events, Sse)
            .map(Result::unwrap)
            .collect()
            .await;
        assert_eq!(frames.len(), 3, "{frames:?}");
        assert_eq!(Some(&frames[0][..]), Sse::KEEP_ALIVE);
        assert_eq!(Some(&frames[1][..]), Sse::KEEP_ALIVE);
        assert!(frames[2].starts_with(b"event: delta"));

        let busy = (0..100).map(|i| Event::Delta(i.to_string())).collect();
        let frames = render(busy, Sse).await;
        assert!(frames.iter().all(|f| f.starts_with(b"event: delta")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_format_without_keep_alive_stays_silent() {
        let events = async_stream::stream! {
            tokio::time::sleep(Duration::from_secs(35)).await;
            yield Event::Delta("late".into());
        };
        let frames: Vec<Bytes> = Encoded::new(events, PlainText)
            .map(Result::unwrap)
            .collect()
            .await;
        assert_eq!(frames, [Bytes::from("late")]);
    }

    #[tokio::test]
    async fn each_encoder_renders_a_late_error_its_own_way() {
        let events = || {
            vec![
                Event::Delta("半".into()),
                Event::Error {
                    code: Code::UpstreamInterrupted,
                    message: "broke".into(),
                },
            ]
        };
        let sse = render(events(), Sse).await;
        assert_eq!(
            &sse[1][..],
            b"event: error\ndata: {\"code\":\"upstream_interrupted\",\"message\":\"broke\"}\n\n"
        );
        let text = render(events(), PlainText).await;
        assert_eq!(text, [Bytes::from("半"), Bytes::from("\n\n[error: broke]")]);
    }
}
