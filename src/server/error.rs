//! API errors: one JSON shape, `{"error":{"code":…,"message":…}}`, with the
//! codes of [`crate::error::Code`].

use axum::Json;
use axum::extract::Request;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::limits::BodyTimeout;
use crate::error::Code;

/// An error answered before any stream starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: Code,
    /// What to fix, for humans.
    pub message: String,
    /// The internal fault behind a 5xx, for the log only; never sent.
    pub cause: Option<String>,
}

/// The internal fault behind a response, left in its extensions for the
/// request middleware to log inside the request's span.
#[derive(Debug, Clone)]
pub struct Cause(pub String);

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            cause: None,
        }
    }

    /// A 400 with a code and a message.
    pub fn bad_request(code: Code, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A 503 that asks the client to retry.
    pub fn unavailable(code: Code, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// A 413: the body is over `server.max_body_bytes`.
    pub fn body_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::BodyTooLarge,
            "the request body is larger than server.max_body_bytes allows",
        )
    }

    /// A 408: the body stalled.
    pub fn body_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            Code::RequestTimeout,
            "the request body did not arrive within server.body_timeout_ms",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(cause) = self.cause {
            response.extensions_mut().insert(Cause(cause));
        }
        response
    }
}

/// `404 not_found` for a path no route has; under `/v1/` in OpenAI's shape.
pub async fn not_found(request: Request) -> Response {
    let path = request.uri().path();
    let err = ApiError::new(
        StatusCode::NOT_FOUND,
        Code::NotFound,
        format!("no endpoint at {path}; see docs/protocol.md"),
    );
    if path.starts_with("/v1/") {
        super::openai::api_error(err)
    } else {
        err.into_response()
    }
}

/// `405 method_not_allowed` for a route asked with the wrong method (axum
/// adds the `Allow` header).
pub async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::MethodNotAllowed,
        format!(
            "{} does not accept {}; the Allow header lists what it does",
            request.uri().path(),
            request.method()
        ),
    )
}

/// A knowledge-base failure is ragstream's fault: a 500 with a generic
/// message; what went wrong goes to the log.
impl From<crate::kb::Error> for ApiError {
    fn from(err: crate::kb::Error) -> Self {
        Self {
            cause: Some(crate::secret::redact(&err.to_string()).into_owned()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::KbError,
                "the knowledge base failed; the server log has the details",
            )
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Code::UnsupportedMediaType,
                "send the body as JSON with the header `Content-Type: application/json`",
            ),
            JsonRejection::JsonSyntaxError(err) => Self::bad_request(
                Code::InvalidJson,
                format!("the body is not valid JSON: {}", err.body_text()),
            ),
            JsonRejection::JsonDataError(err) => Self::bad_request(
                Code::InvalidBody,
                format!("the body has the wrong shape: {}", err.body_text()),
            ),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::body_too_large(),
            other if caused_by_timeout(&other) => Self::body_timeout(),
            other => Self::new(other.status(), Code::BadBody, other.body_text()),
        }
    }
}

/// Whether the body read failed because [`BodyTimeout`] cut it off.
fn caused_by_timeout(rejection: &JsonRejection) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(err) = cause {
        if err.is::<BodyTimeout>() {
            return true;
        }
        cause = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_knowledge_base_failure_is_a_500_that_keeps_its_cause_for_the_log() {
        let err = ApiError::from(crate::kb::Error::Embedding(
            "401 from https://embed.internal/v1: bad key".into(),
        ));
        assert_eq!(err.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err.code, Code::KbError);
        assert!(!err.message.contains("embed.internal"), "{}", err.message);
        let response = err.into_response();
        let Some(Cause(cause)) = response.extensions().get::<Cause>() else {
            panic!("the cause is left for the request log");
        };
        assert!(cause.contains("embed.internal"), "{cause}");
    }
}
