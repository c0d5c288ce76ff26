//! The chat page: static files compiled into the binary and served with an
//! ETag and a strict Content-Security-Policy.
//!
//! Nothing is read from disk at run time and the page loads nothing from
//! another origin. The files live in `src/web/assets/` as plain ES modules
//! (no build step); `assets/vendor/README.md` records the vendored renderer.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::server::AppState;

/// The page's policy: its own scripts, styles, images and API, nothing
/// inline, nothing from elsewhere, and no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One file of the page.
struct Asset {
    /// The URL path it is served at.
    path: &'static str,
    /// Its `Content-Type`.
    content_type: &'static str,
    /// Its bytes, compiled in.
    bytes: &'static [u8],
}

/// Compiles a file of `assets/` into the binary under its URL path.
macro_rules! asset {
    ($path:literal, $file:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            bytes: include_bytes!(concat!("assets/", $file)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the page.
const ASSETS: &[Asset] = &[
    asset!("/", "index.html", "text/html; charset=utf-8"),
    asset!("/app.js", "app.js", JS),
    asset!("/chat.js", "chat.js", JS),
    asset!("/history.js", "history.js", JS),
    asset!("/i18n.js", "i18n.js", JS),
    asset!("/markdown.js", "markdown.js", JS),
    asset!("/store.js", "store.js", JS),
    asset!("/style.css", "style.css", "text/css; charset=utf-8"),
    asset!("/icon.svg", "icon.svg", "image/svg+xml"),
    asset!("/vendor/markdown-it.mjs", "vendor/markdown-it.mjs", JS),
];

/// Each asset's strong ETag: the first 16 bytes of its BLAKE3 hash, computed
/// once at first use.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let hash = blake3::hash(asset.bytes).to_hex();
            HeaderValue::from_str(&format!("\"{}\"", &hash[..32]))
                .expect("a hex digest is a valid header value")
        })
        .collect()
});

/// The page's routes: every asset (GET and HEAD) and `/api/limits`, none of
/// which needs an API key.
pub fn router() -> Router<AppState> {
    let mut router = Router::new().route("/api/limits", get(limits));
    for asset in ASSETS {
        router = router.route(asset.path, get(serve));
    }
    router
}

/// Serves the asset at the request's path, or 304 when the client's
/// `If-None-Match` already names its ETag.
async fn serve(request: Request) -> Response {
    let path = request.uri().path();
    let Some(index) = ASSETS.iter().position(|asset| asset.path == path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (asset, etag) = (&ASSETS[index], &ETAGS[index]);
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, etag.clone());
    // Revalidate every time: a new binary may serve new files at the same path.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if matches(request.headers(), etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    (headers, asset.bytes).into_response()
}

/// Whether `If-None-Match` names `etag` (weakly, as RFC 9110 asks for GET) or is `*`.
fn matches(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = etag.as_bytes();
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag).as_bytes() == ours)
}

/// `GET /api/limits`: the request limits the page trims its history to.
async fn limits(State(app): State<AppState>) -> impl IntoResponse {
    axum::Json(json!({
        "max_body_bytes": app.limits.max_body_bytes,
        "max_messages": app.limits.max_messages,
        "max_message_chars": app.limits.max_message_chars,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn if_none_match(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        let etag = HeaderValue::from_static("\"abc\"");
        assert!(matches(&if_none_match("\"abc\""), &etag));
        assert!(matches(&if_none_match("\"x\", W/\"abc\""), &etag));
        assert!(matches(&if_none_match("*"), &etag));
        assert!(!matches(&if_none_match("\"abd\""), &etag));
        assert!(!matches(&if_none_match("abc"), &etag));
        assert!(!matches(&HeaderMap::new(), &etag));
    }

    #[test]
    fn etags_differ_between_files() {
        let mut tags: Vec<_> = ETAGS.iter().collect();
        tags.sort_by_key(|tag| tag.as_bytes());
        tags.dedup();
        assert_eq!(tags.len(), ASSETS.len());
    }

    /// The policy forbids inline code, so the page must not contain any: a
    /// `<script>` without `src`, a `style=` attribute, an `on…=` handler or a
    /// `<style>` element would be blocked in the browser.
    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let html = std::str::from_utf8(ASSETS[0].bytes).unwrap();
        for script in html.split("<script").skip(1) {
            let tag = &script[..script.find('>').unwrap()];
            assert!(tag.contains("src="), "inline script: <script{tag}>");
        }
        assert!(!html.contains("<style"), "inline <style>");
        assert!(!html.contains(" style="), "inline style attribute");
        let handler = html.split(" on").skip(1).find(|rest| {
            let name = rest.trim_start_matches(|c: char| c.is_ascii_alphabetic());
            name.len() < rest.len() && name.starts_with('=')
        });
        assert!(handler.is_none(), "inline event handler: on{handler:?}");
        assert!(!html.contains("http"), "a reference to another origin");
    }
}
