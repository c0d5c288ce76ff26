//! Checks on a request before a handler reads it: the target's length, the
//! declared body size, the time the body may take, and the caller's request id.
//!
//! Headers that never finish are hyper's job (`server.header_timeout_ms`, set
//! in [`super::listen`]); these checks run once the headers are in.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::error::ApiError;
use super::settings::Limits;
use crate::error::Code;

/// The longest request target ragstream reads, in bytes (hyper itself answers
/// an empty 414 above 65,534).
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The longest `X-Request-Id` kept from a caller.
pub const MAX_REQUEST_ID: usize = 128;

/// The header carrying the request id.
pub const REQUEST_ID: &str = "x-request-id";

/// Rejects a target over [`MAX_URI_BYTES`] (414) and a declared body over
/// `server.max_body_bytes` (413) before reading anything more, and gives the
/// body `server.body_timeout_ms` to arrive (then 408).
pub async fn check(State(limits): State<Limits>, request: Request, next: Next) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            Code::UriTooLong,
            format!("the request target has {target} bytes, at most {MAX_URI_BYTES} allowed"),
        )
        .into_response();
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limits.max_body_bytes as u64) {
        return ApiError::body_too_large().into_response();
    }
    let request = if request.body().is_end_stream() {
        request
    } else {
        request.map(|body| Body::new(Deadline::new(body, limits.body_timeout)))
    };
    next.run(request).await
}

/// Drops a caller's `X-Request-Id` that is too long or not visible ASCII, so a
/// fresh id replaces it in the response and the logs.
pub async fn bound_request_id(mut request: Request, next: Next) -> Response {
    let valid = request.headers().get(REQUEST_ID).is_none_or(|id| {
        let id = id.as_bytes();
        !id.is_empty() && id.len() <= MAX_REQUEST_ID && id.iter().all(|b| b.is_ascii_graphic())
    });
    if !valid {
        request.headers_mut().remove(REQUEST_ID);
    }
    next.run(request).await
}

/// Makes the id of a request that brings none: a random (version 4) UUID, as
/// tower-http's `MakeRequestUuid` makes, but drawn from the thread's random
/// generator instead of the operating system, so a request costs no
/// `getrandom` system call (issue 16: per-request work in a burst).
#[derive(Debug, Clone, Copy, Default)]
pub struct MakeRequestId;

impl tower_http::request_id::MakeRequestId for MakeRequestId {
    fn make_request_id<B>(
        &mut self,
        _request: &axum::http::Request<B>,
    ) -> Option<tower_http::request_id::RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut text = uuid::Uuid::encode_buffer();
        let text = id.hyphenated().encode_lower(&mut text);
        axum::http::HeaderValue::from_str(text)
            .ok()
            .map(tower_http::request_id::RequestId::new)
    }
}

/// The body did not arrive within `server.body_timeout_ms`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimeout;

pin_project! {
    /// A request body that fails with [`BodyTimeout`] once its deadline passes.
    struct Deadline {
        #[pin]
        inner: Body,
        #[pin]
        deadline: Sleep,
    }
}

impl Deadline {
    fn new(inner: Body, within: Duration) -> Self {
        Self {
            inner,
            deadline: tokio::time::sleep(within),
        }
    }
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        if this.deadline.poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyTimeout.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use tower_http::request_id::MakeRequestId as _;

    use super::*;

    #[test]
    fn fresh_request_ids_are_distinct_version_4_uuids() {
        let request = axum::http::Request::new(());
        let mut make = MakeRequestId;
        let ids: std::collections::HashSet<String> = (0..1000)
            .map(|_| {
                let id = make.make_request_id(&request).unwrap();
                id.header_value().to_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(ids.len(), 1000, "ids repeat");
        for id in &ids {
            let uuid = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(uuid.get_version_num(), 4, "{id}");
            assert_eq!(
                id,
                &uuid.hyphenated().to_string(),
                "not lower-case hyphenated"
            );
        }
    }
}
