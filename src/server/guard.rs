//! Wraps an answer stream with what every stream needs at the edge: its slot
//! in the concurrency limit, its metrics, a shutdown deadline, and a
//! guaranteed final event.
//!
//! Written as a hand-rolled `Stream` rather than with `select!` so the relay
//! path stays one poll of the inner stream: the shutdown token and deadline
//! are only polled when the inner stream is pending.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use pin_project_lite::pin_project;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::engine::Event;
use crate::error::Code;
use crate::telemetry;

pin_project! {
    /// An answer stream under the server's supervision.
    pub struct Guarded<S> {
        #[pin]
        inner: S,
        // The shutdown token, checked with one atomic load per pending poll.
        token: CancellationToken,
        // Registers this stream's waker for the shutdown; polled once.
        shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
        // The waker is registered with `shutdown`.
        watching: bool,
        // How long a running stream may go on after shutdown starts.
        grace: Duration,
        // Set when shutdown starts.
        deadline: Option<Pin<Box<Sleep>>>,
        // When the request arrived.
        started: Instant,
        // Whether an event went out yet.
        first_sent: bool,
        // How the stream ended; `cancelled` until a final event goes out.
        outcome: &'static str,
        // The end was reached; yield nothing more.
        finished: bool,
        // The stream's slot in `server.max_streams`.
        _permit: OwnedSemaphorePermit,
        // The request's span, entered only to log the end.
        span: tracing::Span,
    }

    impl<S> PinnedDrop for Guarded<S> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let elapsed = this.started.elapsed();
            this.span.in_scope(|| {
                tracing::info!(outcome = *this.outcome, duration_ms = elapsed.as_secs_f64() * 1000.0, "stream ended");
            });
            metrics::gauge!(telemetry::ACTIVE_STREAMS).decrement(1.0);
            metrics::counter!(telemetry::STREAMS, "outcome" => *this.outcome).increment(1);
            metrics::histogram!(telemetry::STREAM_DURATION).record(elapsed.as_secs_f64());
        }
    }
}

impl<S> Guarded<S> {
    /// Supervises `inner`, holding `permit` until the stream is dropped.
    /// Create it inside the request's span: it logs the stream's end there.
    pub fn new(
        inner: S,
        permit: OwnedSemaphorePermit,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> Self {
        metrics::gauge!(telemetry::ACTIVE_STREAMS).increment(1.0);
        Self {
            inner,
            shutdown: Box::pin(shutdown.clone().cancelled_owned()),
            token: shutdown,
            watching: false,
            grace,
            deadline: None,
            started: Instant::now(),
            first_sent: false,
            outcome: "cancelled",
            finished: false,
            _permit: permit,
            span: tracing::Span::current(),
        }
    }
}

impl<S: Stream<Item = Event>> Stream for Guarded<S> {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let this = self.project();
        if *this.finished {
            return Poll::Ready(None);
        }
        match this.inner.poll_next(cx) {
            Poll::Ready(Some(event)) => {
                if !*this.first_sent {
                    *this.first_sent = true;
                    metrics::histogram!(telemetry::TIME_TO_FIRST_BYTE)
                        .record(this.started.elapsed().as_secs_f64());
                }
                match &event {
                    Event::Done { .. } => *this.outcome = "done",
                    Event::Error { .. } => *this.outcome = "error",
                    _ => {}
                }
                *this.finished = event.is_final();
                return Poll::Ready(Some(event));
            }
            Poll::Ready(None) => {
                *this.finished = true;
                *this.outcome = "error";
                this.span
                    .in_scope(|| tracing::error!("answer stream ended without a final event"));
                return Poll::Ready(Some(Event::Error {
                    code: Code::Internal,
                    message: "the answer ended unexpectedly".into(),
                }));
            }
            Poll::Pending => {}
        }
        if this.deadline.is_none() {
            // Polling the token's future takes a lock; once registered, the
            // waker stays registered (a body is always polled by its
            // connection's task), so later polls only load the flag.
            let cancelled = if *this.watching {
                this.token.is_cancelled()
            } else {
                *this.watching = true;
                this.shutdown.as_mut().poll(cx).is_ready()
            };
            if cancelled {
                *this.deadline = Some(Box::pin(tokio::time::sleep(*this.grace)));
            }
        }
        if let Some(deadline) = this.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                *this.finished = true;
                *this.outcome = "shutdown";
                return Poll::Ready(Some(Event::Error {
                    code: Code::ShuttingDown,
                    message: "the server is shutting down; ask again in a moment".into(),
                }));
            }
        }
        Poll::Pending
    }
}
