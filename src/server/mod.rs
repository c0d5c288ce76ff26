//! The HTTP surfaces: axum routes over one shared [`Engine`].

pub mod access;
pub mod encode;
pub mod error;
pub mod guard;
pub mod limits;
pub mod listen;
pub mod openai;
pub mod request;
pub mod settings;
pub mod sse;
pub mod text;
pub mod ui_body;
pub mod ui_stream;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, State};
use axum::http::{Request, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tracing::Instrument;

use crate::engine::{Engine, Event, Options};
use crate::error::Code;
use crate::kb::{KnowledgeBase, SearchParams};
use crate::telemetry;
use encode::{Encoded, Encoder};
use error::{ApiError, Cause};
use guard::Guarded;
use request::ChatBody;
use settings::Limits;
use sse::Sse;
use text::PlainText;

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// Answers questions.
    pub engine: Arc<Engine>,
    /// The knowledge base's read side, for the hit-test endpoint.
    pub kb: Arc<dyn KnowledgeBase>,
    /// Search parameters from the config.
    pub search: SearchParams,
    /// Request limits.
    pub limits: Limits,
    /// The model id of the OpenAI-compatible endpoints (`server.model_id`).
    pub model_id: Arc<str>,
    /// One permit per open answer stream (`server.max_streams`).
    pub streams: Arc<Semaphore>,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// How long running streams may go on after shutdown starts.
    pub grace: Duration,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// API keys, rate limits and CORS.
    pub access: Arc<access::Access>,
}

/// A JSON body whose rejections become [`ApiError`]s.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct AppJson<T>(pub T);

/// The routes, for metrics that exist before the first request.
pub const ENDPOINTS: &[&str] = &[
    "/api/chat",
    "/api/python",
    "/api/kb/search",
    "/api/ui/chat",
    "/v1/chat/completions",
    "/v1/models",
    "/v1/models/{id}",
    "/healthz",
    "/readyz",
    "/metrics",
];

/// The router with every route and middleware.
///
/// Routes come in groups by who may call them: answering and searching need
/// a key when keys are configured and are rate limited; `/metrics` needs a
/// key unless `server.metrics_public`; probes are always open.
pub fn app(state: AppState) -> Router {
    let request_id = header::HeaderName::from_static(limits::REQUEST_ID);
    let answering = state.access.answering(access::ragstream_shape).protect(
        Router::new()
            .route("/api/chat", post(chat))
            .route("/api/python", post(python))
            .route("/api/kb/search", get(kb_search))
            .route("/api/ui/chat", post(ui_chat)),
    );
    let openai = state.access.answering(access::openai_shape).protect(
        Router::new()
            .route("/v1/chat/completions", post(openai::chat_completions))
            .route("/v1/models", get(openai::models))
            .route("/v1/models/{id}", get(openai::get_model)),
    );
    let scraping = Router::new().route("/metrics", get(metrics));
    let scraping = match state.access.metrics() {
        Some(guard) => guard.protect(scraping),
        None => scraping,
    };
    let router = Router::new()
        .merge(answering)
        .merge(openai)
        .merge(scraping)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(crate::web::router())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.limits, limits::check))
        .layer(middleware::from_fn(observe))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, limits::MakeRequestId))
        .layer(middleware::from_fn(limits::bound_request_id));
    // Outermost, so preflights are answered before any key is asked for and
    // rejections carry the CORS headers a page needs to read them.
    let router = match state.access.cors() {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.with_state(state)
}

/// `POST /api/chat`: named SSE events, ending with `done` or `error`.
async fn chat(
    State(app): State<AppState>,
    AppJson(body): AppJson<ChatBody>,
) -> Result<Response, ApiError> {
    stream(&app, body, Sse).await
}

/// `POST /api/python`: the classic contract, the answer as plain text chunks.
async fn python(
    State(app): State<AppState>,
    AppJson(body): AppJson<ChatBody>,
) -> Result<Response, ApiError> {
    stream(&app, body, PlainText).await
}

/// `POST /api/ui/chat`: the AI SDK UI message stream, for `useChat`.
async fn ui_chat(
    State(app): State<AppState>,
    AppJson(body): AppJson<ui_body::UiBody>,
) -> Result<Response, ApiError> {
    let conversation = body.into_conversation(&app.limits)?;
    let message_id = format!("msg-{}", uuid::Uuid::new_v4().simple());
    let events = answer(&app, conversation, Options::default()).await?;
    let mut response = Encoded::new(events, ui_stream::UiStream::new(message_id)).into_response();
    let (name, value) = ui_stream::HEADER;
    response.headers_mut().insert(
        header::HeaderName::from_static(name),
        header::HeaderValue::from_static(value),
    );
    Ok(response)
}

/// Starts the answer and streams it in `encoder`'s format.
async fn stream<E: Encoder>(
    app: &AppState,
    body: ChatBody,
    encoder: E,
) -> Result<Response, ApiError> {
    let conversation = body.into_conversation(&app.limits)?;
    Ok(Encoded::new(
        answer(app, conversation, Options::default()).await?,
        encoder,
    )
    .into_response())
}

/// How long a handler waits for an answer's first event before it sends the
/// response head anyway.
const FIRST_EVENT_WAIT: Duration = Duration::from_secs(1);

/// Takes a stream slot and starts the answer.
///
/// The answer is polled until its first event (or [`FIRST_EVENT_WAIT`])
/// before the response head goes out: the model request is then on its way
/// before ragstream writes anything, and the head and the first event leave
/// in one write.
async fn answer(
    app: &AppState,
    conversation: Vec<crate::llm::Message>,
    options: Options,
) -> Result<impl Stream<Item = Event> + use<>, ApiError> {
    if app.shutdown.is_cancelled() {
        return Err(ApiError::unavailable(
            Code::ShuttingDown,
            "the server is shutting down; ask again in a moment",
        ));
    }
    let permit = Arc::clone(&app.streams).try_acquire_owned().map_err(|_| {
        ApiError::unavailable(
            Code::Overloaded,
            "too many answers are streaming right now (server.max_streams); retry in a moment",
        )
    })?;
    let mut events = Box::pin(Guarded::new(
        app.engine.answer_with(conversation, options),
        permit,
        app.shutdown.clone(),
        app.grace,
    ));
    let first = tokio::time::timeout(FIRST_EVENT_WAIT, events.next())
        .await
        .ok()
        .flatten();
    Ok(futures::stream::iter(first).chain(events))
}

/// Query of `GET /api/kb/search`.
#[derive(Debug, serde::Deserialize)]
pub struct KbQuery {
    /// The question to search for.
    #[serde(default)]
    q: String,
    /// Overrides `kb.search.top_k`.
    top_k: Option<usize>,
    /// Overrides `kb.search.min_score`.
    min_score: Option<f32>,
}

/// The most hits `/api/kb/search` returns.
const MAX_TOP_K: usize = 100;

/// `GET /api/kb/search?q=…`: ranked hits with every score, for tuning.
async fn kb_search(
    State(app): State<AppState>,
    query: Result<axum::extract::Query<KbQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let axum::extract::Query(query) =
        query.map_err(|err| ApiError::bad_request(Code::InvalidQuery, err.body_text()))?;
    let q = query.q.trim();
    if q.is_empty() {
        return Err(ApiError::bad_request(
            Code::MissingQuery,
            "add the question as `?q=…`",
        ));
    }
    let top_k = query.top_k.unwrap_or(app.search.top_k);
    if !(1..=MAX_TOP_K).contains(&top_k) {
        return Err(ApiError::bad_request(
            Code::InvalidQuery,
            format!("top_k is {top_k}; it must be between 1 and {MAX_TOP_K}"),
        ));
    }
    let min_score = query.min_score.unwrap_or(app.search.min_score);
    if !(0.0..=1.0).contains(&min_score) {
        return Err(ApiError::bad_request(
            Code::InvalidQuery,
            format!("min_score is {min_score}; it must be a number between 0 and 1"),
        ));
    }
    let params = SearchParams {
        top_k,
        min_score,
        ..app.search
    };
    let started = std::time::Instant::now();
    let hits = app.kb.search_detailed(q, &params).await?;
    Ok(Json(json!({
        "query": q,
        "top_k": params.top_k,
        "min_score": params.min_score,
        "elapsed_ms": started.elapsed().as_secs_f64() * 1000.0,
        "hits": hits,
    })))
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

/// `GET /readyz`: the knowledge base answers and the server is not draining.
async fn readyz(State(app): State<AppState>) -> Response {
    if app.shutdown.is_cancelled() {
        let body = json!({"status": "draining"});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    let kb = match app.engine.knowledge_base() {
        None => Ok("none"),
        Some(kb) => kb.ready().await.map(|()| "ok"),
    };
    match kb {
        Ok(kb) => Json(json!({"status": "ready", "kb": kb})).into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            let body = json!({"status": "not_ready", "kb": err.to_string()});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
}

/// Logs and counts each request inside a span that carries its id.
///
/// The span covers the handler, which includes the model call's start; the
/// answer stream enters it only per model turn and tool round (see
/// `engine`), never per chunk, which is why this is not tower-http's
/// `TraceLayer`: its body wrapper enters the span on every frame.
async fn observe(request: Request<Body>, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let id = request
        .headers()
        .get(limits::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    // Filled in by the access guard: `key` is the key's fingerprint (never the
    // key), `client` the address of a request without a valid key.
    let span = tracing::info_span!(
        "request",
        id,
        method = %request.method(),
        path = %request.uri().path(),
        key = tracing::field::Empty,
        client = tracing::field::Empty,
    );
    let started = std::time::Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.in_scope(|| {
        if let Some(Cause(cause)) = response.extensions().get::<Cause>() {
            tracing::error!(status, error = %cause, "request failed");
        }
        tracing::info!(
            status,
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "response started"
        );
    });
    metrics::counter!(telemetry::REQUESTS, "endpoint" => endpoint, "status" => status.to_string())
        .increment(1);
    response
}
