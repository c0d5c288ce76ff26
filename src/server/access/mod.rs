//! Access control, as layers a route group opts into: API keys
//! ([`keys`]), rate limits ([`rate_limit`]) and CORS ([`cors`]).
//!
//! A route group wraps itself in a [`Guard`] and says which JSON error shape
//! its rejections take (a [`Shape`]): ragstream's own on `/api/*`
//! ([`ragstream_shape`]), OpenAI's on OpenAI-compatible routes. The guard
//! adds the headers every shape shares (`WWW-Authenticate`, `Retry-After`)
//! and counts each rejection by reason. A new group of answering routes is
//! wired in [`crate::server::app`] as
//!
//! ```text
//! let v1 = state.access.answering(openai_shape).protect(v1_routes);
//! ```
//!
//! with [`openai_shape`] (or any [`Shape`] rendering [`Rejection::status`]
//! and [`Rejection::message`] as that wire format's error). Pages and their
//! assets stay outside every guard.

pub mod cors;
pub mod keys;
pub mod rate_limit;
pub mod settings;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use crate::error::Code;
use crate::server::error::ApiError;
use crate::telemetry;
use keys::Keys;
use rate_limit::{Client, Limiter};
pub use settings::{RateLimit, Settings};

/// Why a request was turned away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Keys are configured and the request carries none.
    MissingKey,
    /// The request carries a key that is not configured.
    WrongKey,
    /// The key or client address is over its budget.
    RateLimited {
        /// When the next request would be allowed.
        retry_after: Duration,
        /// The limit it is over.
        limit: RateLimit,
        /// Whether the budget is a key's (else an address's).
        per_key: bool,
    },
}

impl Rejection {
    /// 401 or 429.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingKey | Self::WrongKey => StatusCode::UNAUTHORIZED,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The metrics label and error code: `unauthorized` or `rate_limited`.
    pub fn reason(&self) -> Code {
        match self {
            Self::MissingKey | Self::WrongKey => Code::Unauthorized,
            Self::RateLimited { .. } => Code::RateLimited,
        }
    }

    /// What to do about it, for humans.
    pub fn message(&self) -> String {
        match self {
            Self::MissingKey => {
                "this endpoint needs an API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`".into()
            }
            Self::WrongKey => "the API key is not valid".into(),
            Self::RateLimited {
                retry_after,
                limit,
                per_key,
            } => format!(
                "rate limit exceeded: {} requests per minute (bursts of {}) per {}; retry in {} s",
                limit.per_minute,
                limit.burst,
                if *per_key { "API key" } else { "client address" },
                retry_after_secs(*retry_after)
            ),
        }
    }

    /// The `Retry-After` value, in whole seconds (at least 1).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(retry_after_secs(*retry_after)),
            _ => None,
        }
    }
}

fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Renders a [`Rejection`] as a route group's JSON error: its status and body.
pub type Shape = fn(&Rejection) -> Response;

/// ragstream's own shape, `{"error":{"code","message"}}`.
pub fn ragstream_shape(rejection: &Rejection) -> Response {
    ApiError::new(rejection.status(), rejection.reason(), rejection.message()).into_response()
}

/// OpenAI's shape, `{"error":{"message","type","param","code"}}`, for
/// OpenAI-compatible routes: their SDKs read the status (401
/// `AuthenticationError`, 429 `RateLimitError`) and show `message`.
pub fn openai_shape(rejection: &Rejection) -> Response {
    let code = match rejection {
        Rejection::MissingKey | Rejection::WrongKey => "invalid_api_key",
        Rejection::RateLimited { .. } => "rate_limit_exceeded",
    };
    super::openai::error_response(rejection.status(), code, &rejection.message())
}

/// The access rules of one server instance, built once from [`Settings`].
pub struct Access {
    /// The configured keys.
    keys: Keys,
    /// The rate limiters, if a limit is configured.
    limiter: Option<Limiter>,
    /// Whether `X-Forwarded-For` names the client.
    trust_forwarded_for: bool,
    /// Whether `/metrics` stays open when keys are configured.
    metrics_public: bool,
    /// Origins whose pages may call from a browser.
    cors_origins: Vec<HeaderValue>,
}

impl Access {
    /// The rules `settings` describe.
    pub fn new(settings: &Settings) -> Self {
        Self {
            keys: Keys::new(&settings.api_keys),
            limiter: settings.rate_limit.map(Limiter::new),
            trust_forwarded_for: settings.trust_forwarded_for,
            metrics_public: settings.metrics_public,
            cors_origins: settings.cors_origins.clone(),
        }
    }

    /// The CORS layer for the whole router; `None` when no origin is configured.
    pub fn cors(&self) -> Option<tower_http::cors::CorsLayer> {
        cors::layer(&self.cors_origins)
    }

    /// Forgets idle client addresses; run every few seconds.
    pub fn upkeep(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.upkeep();
            #[expect(
                clippy::cast_precision_loss,
                reason = "a gauge; counts stay far below 2^52"
            )]
            metrics::gauge!(telemetry::RATE_LIMIT_CLIENTS).set(limiter.tracked_addresses() as f64);
        }
    }

    /// The guard of routes that answer or search: a key when keys are
    /// configured, and the rate limit.
    pub fn answering(self: &Arc<Self>, shape: Shape) -> Guard {
        Guard {
            access: Arc::clone(self),
            shape,
            limited: true,
        }
    }

    /// The guard of `/metrics`, or `None` when it is open to all
    /// (`server.metrics_public`, or no key configured).
    pub fn metrics(self: &Arc<Self>) -> Option<Guard> {
        (!self.metrics_public && !self.keys.is_empty()).then(|| Guard {
            access: Arc::clone(self),
            shape: ragstream_shape,
            limited: false,
        })
    }

    /// Checks one request: `Ok`, or why it is turned away. Whom the request
    /// counts as goes into its span either way: a valid key's fingerprint, or
    /// else the client address.
    fn check(&self, request: &Request, limited: bool) -> Result<(), Rejection> {
        if self.keys.is_empty() && self.limiter.is_none() {
            return Ok(());
        }
        let presented = if self.keys.is_empty() {
            None
        } else {
            keys::presented(request.headers())
        };
        let key = presented.and_then(|key| self.keys.find(key));
        let span = tracing::Span::current();
        let client = match key {
            Some(id) => {
                span.record("key", tracing::field::display(self.keys.fingerprint(id)));
                Client::Key(id)
            }
            None => {
                let address = self.client_address(request);
                span.record("client", tracing::field::display(address));
                Client::Address(address)
            }
        };
        if let (true, Some(limiter)) = (limited, &self.limiter) {
            limiter
                .check(client)
                .map_err(|limited| Rejection::RateLimited {
                    retry_after: limited.retry_after,
                    limit: limiter.limit(),
                    per_key: key.is_some(),
                })?;
        }
        match (self.keys.is_empty(), presented, key) {
            (true, _, _) | (false, _, Some(_)) => Ok(()),
            (false, None, None) => Err(Rejection::MissingKey),
            (false, Some(_), None) => Err(Rejection::WrongKey),
        }
    }

    fn client_address(&self, request: &Request) -> IpAddr {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)), |info| info.0);
        rate_limit::client_address(peer, request.headers(), self.trust_forwarded_for)
    }
}

/// The access check of one route group.
#[derive(Clone)]
pub struct Guard {
    /// The rules.
    access: Arc<Access>,
    /// How rejections look on these routes.
    shape: Shape,
    /// Whether the rate limit applies.
    limited: bool,
}

impl Guard {
    /// `router` with every one of its routes behind this guard (unknown paths
    /// still get their 404 without a key).
    pub fn protect<S: Clone + Send + Sync + 'static>(self, router: Router<S>) -> Router<S> {
        router.route_layer(middleware::from_fn_with_state(self, guard))
    }
}

/// Lets a request through, or answers with the rejection in the group's shape.
async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    match guard.access.check(&request, guard.limited) {
        Ok(()) => next.run(request).await,
        Err(rejection) => {
            metrics::counter!(telemetry::REJECTED, "reason" => rejection.reason().as_str())
                .increment(1);
            let mut response = (guard.shape)(&rejection);
            let headers = response.headers_mut();
            if rejection.status() == StatusCode::UNAUTHORIZED {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            if let Some(seconds) = rejection.retry_after() {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;
    use crate::secret::Secret;

    /// Another wire format's error, as `/v1` would render it.
    fn plain_shape(rejection: &Rejection) -> Response {
        (
            rejection.status(),
            format!("refused: {}", rejection.reason()),
        )
            .into_response()
    }

    #[tokio::test]
    async fn a_route_group_renders_rejections_in_its_own_shape() {
        let access = Arc::new(Access::new(&Settings {
            api_keys: vec![Secret::new("a-key-for-the-shape-test")],
            ..Settings::default()
        }));
        let router = access
            .answering(plain_shape)
            .protect(Router::new().route("/v1/models", get(|| async { "models" })));
        let response = router
            .oneshot(Request::get("/v1/models").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"refused: unauthorized");
    }

    async fn json(response: Response) -> serde_json::Value {
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test]
    async fn the_openai_shape_is_what_openai_sdks_expect() {
        let unauthorized = openai_shape(&Rejection::WrongKey);
        assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            json(unauthorized).await,
            serde_json::json!({"error": {
                "message": "the API key is not valid",
                "type": "invalid_request_error",
                "param": null,
                "code": "invalid_api_key",
            }})
        );
        let limited = openai_shape(&Rejection::RateLimited {
            retry_after: Duration::from_millis(1500),
            limit: RateLimit {
                per_minute: std::num::NonZeroU32::new(60).unwrap(),
                burst: std::num::NonZeroU32::new(5).unwrap(),
                max_clients: 10,
            },
            per_key: true,
        });
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        let body = json(limited).await;
        assert_eq!(body["error"]["code"], "rate_limit_exceeded");
        assert_eq!(
            body["error"]["message"],
            "rate limit exceeded: 60 requests per minute (bursts of 5) per API key; retry in 2 s"
        );
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(59)), 59);
    }
}
