//! The chat page over HTTP: every file it loads is served from the binary
//! with an ETag, a strict Content-Security-Policy and `nosniff`, and
//! revalidates to an empty 304 (issue 13). What the page does is tested in a
//! browser by `tests/web.rs`.

mod support;

use reqwest::StatusCode;
use reqwest::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    X_CONTENT_TYPE_OPTIONS,
};

/// The files `index.html` and the modules load, with their types.
const FILES: &[(&str, &str)] = &[
    ("/", "text/html; charset=utf-8"),
    ("/app.js", "text/javascript; charset=utf-8"),
    ("/chat.js", "text/javascript; charset=utf-8"),
    ("/history.js", "text/javascript; charset=utf-8"),
    ("/i18n.js", "text/javascript; charset=utf-8"),
    ("/markdown.js", "text/javascript; charset=utf-8"),
    ("/store.js", "text/javascript; charset=utf-8"),
    ("/style.css", "text/css; charset=utf-8"),
    ("/icon.svg", "image/svg+xml"),
    ("/vendor/markdown-it.mjs", "text/javascript; charset=utf-8"),
];

async fn server() -> support::Server {
    let upstream = support::Upstream::start(vec![]).await;
    support::start(support::config(&upstream.base_url)).await
}

#[tokio::test]
async fn every_file_of_the_page_is_served_with_a_strict_policy_and_an_etag() {
    let server = server().await;
    let client = reqwest::Client::new();
    for (path, content_type) in FILES {
        let response = client
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        assert_eq!(headers[CONTENT_TYPE], *content_type, "{path}");
        assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        assert_eq!(headers[CACHE_CONTROL], "no-cache", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        let policy = headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            policy.starts_with("default-src 'self';"),
            "{path}: {policy}"
        );
        assert!(
            !policy.contains("unsafe-inline") && !policy.contains("http"),
            "{path}: no inline code, no other origin: {policy}"
        );
        assert!(policy.contains("frame-ancestors 'none'"), "{path}");
        let etag = headers[ETAG].to_str().unwrap();
        assert!(
            etag.starts_with('"') && etag.len() == 34,
            "{path}: a strong ETag, got {etag}"
        );
        assert!(!response.bytes().await.unwrap().is_empty(), "{path}");
    }
}

#[tokio::test]
async fn a_matching_if_none_match_gets_an_empty_304_and_a_stale_one_the_file() {
    let server = server().await;
    let client = reqwest::Client::new();
    let url = format!("{}/app.js", server.url);
    let first = client.get(&url).send().await.unwrap();
    let etag = first.headers()[ETAG].clone();

    let again = client
        .get(&url)
        .header(IF_NONE_MATCH, etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()[ETAG], etag);
    assert!(again.headers().contains_key(CONTENT_SECURITY_POLICY));
    assert!(again.bytes().await.unwrap().is_empty());

    let stale = client
        .get(&url)
        .header(IF_NONE_MATCH, "\"0123456789abcdef0123456789abcdef\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
    assert!(!stale.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn head_answers_with_the_headers_alone() {
    let server = server().await;
    let response = reqwest::Client::new()
        .head(format!("{}/", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key(ETAG));
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_page_loads_only_files_the_server_has() {
    let server = server().await;
    let html = reqwest::get(format!("{}/", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for attribute in ["src=\"", "href=\""] {
        for rest in html.split(attribute).skip(1) {
            let target = &rest[..rest.find('"').unwrap()];
            assert!(
                FILES.iter().any(|(path, _)| *path == target),
                "index.html loads {target}, which is not served"
            );
        }
    }
}

#[tokio::test]
async fn limits_tell_the_page_how_much_history_it_may_send() {
    let upstream = support::Upstream::start(vec![]).await;
    let mut raw = support::config(&upstream.base_url);
    raw.server.max_messages = 7;
    raw.server.max_message_chars = 123;
    let server = support::start(raw).await;
    let limits: serde_json::Value = reqwest::get(format!("{}/api/limits", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        limits,
        serde_json::json!({"max_body_bytes": 1_048_576, "max_messages": 7, "max_message_chars": 123})
    );
}

#[tokio::test]
async fn unknown_paths_are_still_json_404s() {
    let server = server().await;
    let response = reqwest::get(format!("{}/nope.js", server.url))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}
