//! The HTTP surfaces: axum routes over one shared [`Engine`].

pub mod error;
pub mod request;
pub mod wire;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, State};
use axum::http::{HeaderValue, Request, header};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::json;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::config::Limits;
use crate::engine::Engine;
use error::ApiError;
use request::ChatBody;

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// Answers questions.
    pub engine: Arc<Engine>,
    /// Request limits.
    pub limits: Limits,
}

/// A JSON body whose rejections become [`ApiError`]s.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct AppJson<T>(pub T);

/// The router with every route and middleware.
pub fn app(state: AppState) -> Router {
    let request_id = header::HeaderName::from_static("x-request-id");
    Router::new()
        .route("/api/chat", post(chat))
        .route("/api/python", post(python))
        .route("/healthz", get(healthz))
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<Body>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", id, method = %req.method(), path = %req.uri().path())
            }),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// `POST /api/chat`: named SSE events, ending with `done` or `error`.
async fn chat(
    State(app): State<AppState>,
    AppJson(body): AppJson<ChatBody>,
) -> Result<Response, ApiError> {
    let conversation = body.into_conversation(&app.limits)?;
    let events = app.engine.answer(conversation).map(wire::to_sse);
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    // Tell nginx-style proxies not to buffer the stream.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// `POST /api/python`: the classic contract, the answer as plain text chunks.
async fn python(
    State(app): State<AppState>,
    AppJson(body): AppJson<ChatBody>,
) -> Result<Response, ApiError> {
    let conversation = body.into_conversation(&app.limits)?;
    let chunks = app
        .engine
        .answer(conversation)
        .filter_map(|e| async move { wire::to_text(e) });
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}

/// `GET /healthz`: the process is alive.
async fn healthz(State(app): State<AppState>) -> Json<serde_json::Value> {
    let mode = if app.engine.has_model() {
        "model"
    } else {
        "retrieval_only"
    };
    Json(json!({"status": "ok", "mode": mode}))
}
