//! CORS: which other origins' pages may call the API from a browser.
//!
//! With no origin configured there is no CORS layer at all: browsers then
//! allow only same-origin pages, which is the safe default.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::keys::X_API_KEY;
use crate::server::limits::REQUEST_ID;

/// How long a browser may cache a preflight answer.
pub const MAX_AGE: Duration = Duration::from_secs(600);

/// A layer that answers preflights from `origins` and marks their responses
/// readable; `None` when no origin is configured.
pub fn layer(origins: &[HeaderValue]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static(X_API_KEY),
                HeaderName::from_static(REQUEST_ID),
            ])
            .expose_headers([HeaderName::from_static(REQUEST_ID), header::RETRY_AFTER])
            .max_age(MAX_AGE),
    )
}
