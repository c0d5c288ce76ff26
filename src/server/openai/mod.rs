//! ragstream as an OpenAI model: `POST /v1/chat/completions` (streaming and
//! not) and `GET /v1/models`, with OpenAI-shaped errors
//! `{"error":{"message","type","param","code"}}`.
//!
//! `request` checks the body, `chunk` encodes the stream, `complete` gathers
//! a non-streaming answer; all three read the engine's events only.

pub mod chunk;
pub mod complete;
pub mod request;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::AppState;
use super::encode::Encoded;
use super::error::{ApiError, Cause};
use crate::error::Code;
use crate::llm::Usage;
use chunk::Chunks;
use complete::{Failed, complete};
use request::{CompletionBody, Rejected};

/// What every chunk of one answer repeats.
#[derive(Debug, Clone)]
pub struct Answer {
    /// `chatcmpl-…`, unique per answer.
    pub id: String,
    /// Unix seconds when the answer started.
    pub created: u64,
    /// `server.model_id`.
    pub model: String,
}

impl Answer {
    /// A fresh id and timestamp for `model`.
    pub fn new(model: &str) -> Self {
        Self {
            id: format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            model: model.to_owned(),
        }
    }
}

/// OpenAI's usage object: counts the provider did not report are 0.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct OutUsage {
    /// Tokens in the prompts, summed over model calls.
    prompt_tokens: u64,
    /// Tokens written.
    completion_tokens: u64,
    /// Their sum.
    total_tokens: u64,
}

impl From<Option<Usage>> for OutUsage {
    fn from(usage: Option<Usage>) -> Self {
        let usage = usage.unwrap_or_default();
        let prompt_tokens = usage.prompt_tokens.unwrap_or(0);
        let completion_tokens = usage.completion_tokens.unwrap_or(0);
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: usage
                .total_tokens
                .unwrap_or(prompt_tokens + completion_tokens),
        }
    }
}

/// The standard finish reason of an engine one: answers from the knowledge
/// base alone (`retrieval_only`, `no_match`) simply `stop`.
pub fn finish_reason(reason: &str) -> &str {
    match reason {
        "length" | "tool_calls" | "content_filter" | "function_call" => reason,
        _ => "stop",
    }
}

/// `{"error":{"message","type","param","code"}}`.
pub fn error_body(code: &str, message: &str, kind: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// The `type` OpenAI gives errors of this status: `requests` for a request
/// rate limit, `server_error` for its own faults, `invalid_request_error`
/// for the rest (a wrong API key included).
fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        429 => "requests",
        500.. => "server_error",
        _ => "invalid_request_error",
    }
}

/// An OpenAI-shaped error response, for every error on `/v1` (401 and 429
/// of access control included). 503s carry `Retry-After: 1`.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let mut response =
        (status, Json(error_body(code, message, error_type(status)))).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// An [`ApiError`] in OpenAI's shape, keeping its cause for the request log.
pub fn api_error(err: ApiError) -> Response {
    let mut response = error_response(err.status, err.code.as_str(), &err.message);
    if let Some(cause) = err.cause {
        response.extensions_mut().insert(Cause(cause));
    }
    response
}

/// The 404 for a model id other than `server.model_id`.
fn model_not_found(model: &str) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "model_not_found",
        &format!(
            "The model `{model}` does not exist; this server answers as the model listed at /v1/models"
        ),
    )
}

/// The status of an answer that failed before anything was sent.
fn failed_status(code: Code) -> StatusCode {
    match code {
        Code::UpstreamRateLimited => StatusCode::TOO_MANY_REQUESTS,
        Code::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        Code::UpstreamUnreachable
        | Code::UpstreamUnavailable
        | Code::UpstreamRejected
        | Code::UpstreamInterrupted
        | Code::UpstreamProtocol
        | Code::UpstreamError => StatusCode::BAD_GATEWAY,
        Code::ShuttingDown | Code::NotConfigured | Code::Overloaded => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(app): State<AppState>,
    body: Result<Json<CompletionBody>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(body) => body,
        Err(rejection) => return api_error(ApiError::from(rejection)),
    };
    let engine = &app.engine;
    let completion = match body.check(&app.model_id, &app.limits, |name| engine.has_tool(name)) {
        Ok(completion) => completion,
        Err(Rejected::Invalid(err)) => return api_error(err),
        Err(Rejected::UnknownModel(model)) => return model_not_found(&model),
    };
    let events = match super::answer(&app, completion.conversation, completion.options).await {
        Ok(events) => events,
        Err(err) => return api_error(err),
    };
    let answer = Answer::new(&app.model_id);
    if completion.stream {
        return Encoded::new(events, Chunks::new(answer, completion.include_usage)).into_response();
    }
    match complete(&answer, events).await {
        Ok(body) => Json(body).into_response(),
        Err(Failed { code, message }) => {
            error_response(failed_status(code), code.as_str(), &message)
        }
    }
}

/// The one model, as `/v1/models` lists it.
fn model(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "ragstream"})
}

/// `GET /v1/models`: `server.model_id`, the only model.
pub async fn models(State(app): State<AppState>) -> Json<Value> {
    Json(json!({"object": "list", "data": [model(&app.model_id)]}))
}

/// `GET /v1/models/{id}`: the model, or 404 `model_not_found`.
pub async fn get_model(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    if id == *app.model_id {
        Json(model(&id)).into_response()
    } else {
        model_not_found(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knowledge_base_answers_stop_and_standard_reasons_pass() {
        assert_eq!(finish_reason("retrieval_only"), "stop");
        assert_eq!(finish_reason("no_match"), "stop");
        assert_eq!(finish_reason("length"), "length");
        assert_eq!(finish_reason("tool_calls"), "tool_calls");
    }

    #[test]
    fn a_failed_answer_gets_the_status_of_its_cause() {
        assert_eq!(failed_status(Code::UpstreamRateLimited), 429);
        assert_eq!(failed_status(Code::UpstreamTimeout), 504);
        assert_eq!(failed_status(Code::UpstreamInterrupted), 502);
        assert_eq!(failed_status(Code::ShuttingDown), 503);
        assert_eq!(failed_status(Code::KbError), 500);
    }

    #[test]
    fn errors_have_openais_four_fields_and_a_type_for_the_status() {
        let response = error_response(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "slow down");
        assert_eq!(response.status(), 429);
        assert_eq!(
            error_body("c", "m", error_type(StatusCode::UNAUTHORIZED)),
            json!({"error": {"message": "m", "type": "invalid_request_error", "param": null, "code": "c"}})
        );
        assert_eq!(error_type(StatusCode::TOO_MANY_REQUESTS), "requests");
        assert_eq!(error_type(StatusCode::BAD_GATEWAY), "server_error");
    }
}
