//! Access control over real HTTP (issue 15): API keys, per-key and
//! per-address rate limits, the CORS allow-list, and what logs and metrics
//! show of them.

mod support;

use std::time::Duration;

use ragstream::config::RawConfig;
use ragstream::llm::Secret;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};
use support::process::{self, Process};
use support::{Reply, Server, Upstream, answer, config, metric, start};

const KEY: &str = "rs-test-key-0123456789abcdef";
const OTHER_KEY: &str = "rs-other-key-fedcba9876543210";
/// `printf %s rs-test-key-0123456789abcdef | sha256sum | cut -c1-8`
const KEY_FINGERPRINT: &str = "9a5f40be";

/// The routes that answer or search, with a request each would accept.
const GUARDED: &[(&str, &str)] = &[
    ("POST", "/api/chat"),
    ("POST", "/api/python"),
    ("GET", "/api/kb/search?q=自伤"),
];

fn ask() -> Value {
    json!({"content": "孩子自伤怎么办"})
}

/// A request to `path` with `method`, carrying a question when it posts.
fn request(server: &Server, method: &str, path: &str) -> RequestBuilder {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", server.url);
    match method {
        "POST" => client.post(url).json(&ask()),
        _ => client.get(url),
    }
}

/// A server that needs `KEY` or `OTHER_KEY`, tuned by `tune`.
async fn keyed(upstream: &Upstream, tune: impl FnOnce(&mut RawConfig)) -> Server {
    let mut raw = config(&upstream.base_url);
    raw.server.api_keys = vec![Secret::new(KEY), Secret::new(OTHER_KEY)];
    tune(&mut raw);
    start(raw).await
}

/// Asserts ragstream's JSON error with `code`, and returns its message.
async fn error(response: Response, status: u16, code: &str) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    body["error"]["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn with_no_key_configured_every_route_answers_without_one() {
    let upstream = Upstream::start(vec![Reply::answer(&["好"]), Reply::answer(&["好"])]).await;
    let server = start(config(&upstream.base_url)).await;
    for (method, path) in GUARDED {
        let response = request(&server, method, path)
            .header("authorization", "Bearer whatever-the-client-sends")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{method} {path}");
    }
    let metrics = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
}

#[tokio::test]
async fn every_answering_route_refuses_a_request_without_a_key() {
    let upstream = Upstream::start(vec![]).await;
    let server = keyed(&upstream, |_| {}).await;
    for (method, path) in GUARDED {
        let response = request(&server, method, path).send().await.unwrap();
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let message = error(response, 401, "unauthorized").await;
        assert!(message.contains("Authorization: Bearer"), "{message}");
    }
    assert!(upstream.requests().is_empty(), "the model is never asked");
}

#[tokio::test]
async fn a_wrong_key_is_refused_and_never_echoed() {
    let upstream = Upstream::start(vec![]).await;
    let server = keyed(&upstream, |_| {}).await;
    let wrong = format!("{KEY}x");
    for (method, path) in GUARDED {
        let response = request(&server, method, path)
            .bearer_auth(&wrong)
            .send()
            .await
            .unwrap();
        let message = error(response, 401, "unauthorized").await;
        assert_eq!(message, "the API key is not valid");
    }
    let response = request(&server, "GET", GUARDED[2].1)
        .header("x-api-key", &KEY[..KEY.len() - 1])
        .send()
        .await
        .unwrap();
    error(response, 401, "unauthorized").await;
}

#[tokio::test]
async fn a_configured_key_is_accepted_as_bearer_or_x_api_key() {
    let upstream = Upstream::start(vec![Reply::answer(&["你好"]), Reply::answer(&["再见"])]).await;
    let server = keyed(&upstream, |_| {}).await;

    let chat = request(&server, "POST", "/api/chat")
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    assert_eq!(answer(&support::read_events(chat).await), "你好");

    let python = request(&server, "POST", "/api/python")
        .header("x-api-key", OTHER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(python.status(), 200);
    assert_eq!(python.text().await.unwrap(), "再见");

    let search = request(&server, "GET", "/api/kb/search?q=自伤")
        .header("authorization", format!("bearer {KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(search.status(), 200, "the scheme is case-insensitive");
    let upstream_auth = upstream.headers(0)["authorization"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        upstream_auth, "Bearer sk-test-secret-key",
        "the client's key is not passed on to the provider"
    );
}

#[tokio::test]
async fn the_page_its_files_and_its_limits_stay_open_with_keys_and_limits() {
    let upstream = Upstream::start(vec![]).await;
    let server = keyed(&upstream, |raw| limit(raw, 1, 1)).await;
    for _ in 0..3 {
        for path in ["/", "/app.js", "/style.css", "/api/limits"] {
            let response = reqwest::get(format!("{}{path}", server.url)).await.unwrap();
            assert_eq!(
                response.status(),
                200,
                "{path} needs no key and is not limited"
            );
        }
    }
}

#[tokio::test]
async fn probes_stay_open_and_metrics_need_a_key_unless_public() {
    let upstream = Upstream::start(vec![]).await;
    let server = keyed(&upstream, |_| {}).await;
    let get = |path: &str| reqwest::get(format!("{}{path}", server.url));
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    error(get("/metrics").await.unwrap(), 401, "unauthorized").await;
    let scrape = reqwest::Client::new()
        .get(format!("{}/metrics", server.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), 200);
    assert!(
        scrape
            .text()
            .await
            .unwrap()
            .contains("ragstream_rejected_requests_total")
    );
    let unknown = get("/api/nothing").await.unwrap();
    error(unknown, 404, "not_found").await;

    let public = keyed(&upstream, |raw| raw.server.metrics_public = true).await;
    let scrape = reqwest::get(format!("{}/metrics", public.url))
        .await
        .unwrap();
    assert_eq!(scrape.status(), 200);
}

/// Sends `n` searches with `key` (if any) and `forwarded_for` (if any);
/// returns the statuses.
async fn searches(
    server: &Server,
    n: usize,
    key: Option<&str>,
    forwarded_for: Option<&str>,
) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        let mut builder = request(server, "GET", "/api/kb/search?q=自伤");
        if let Some(key) = key {
            builder = builder.bearer_auth(key);
        }
        if let Some(address) = forwarded_for {
            builder = builder.header("x-forwarded-for", address);
        }
        statuses.push(builder.send().await.unwrap().status().as_u16());
    }
    statuses
}

fn limit(raw: &mut RawConfig, per_minute: u32, burst: u32) {
    raw.server.rate_limit.requests_per_minute = Some(per_minute);
    raw.server.rate_limit.burst = Some(burst);
}

#[tokio::test]
async fn each_key_has_its_own_budget_and_a_429_says_when_to_retry() {
    let upstream = Upstream::start(vec![]).await;
    let server = keyed(&upstream, |raw| limit(raw, 1, 2)).await;
    assert_eq!(searches(&server, 2, Some(KEY), None).await, [200, 200]);

    let over = request(&server, "GET", "/api/kb/search?q=自伤")
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let retry_after: u64 = over.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let message = error(over, 429, "rate_limited").await;
    assert!(
        message.contains("1 requests per minute (bursts of 2) per API key"),
        "{message}"
    );

    let chat = request(&server, "POST", "/api/chat")
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    error(chat, 429, "rate_limited").await;
    assert_eq!(
        searches(&server, 2, Some(OTHER_KEY), None).await,
        [200, 200],
        "another key is not affected"
    );
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn anonymous_clients_are_limited_per_address() {
    let upstream = Upstream::start(vec![]).await;
    let mut raw = config(&upstream.base_url);
    limit(&mut raw, 1, 2);
    let server = start(raw).await;
    assert_eq!(searches(&server, 3, None, None).await, [200, 200, 429]);
    assert_eq!(
        searches(&server, 1, None, Some("203.0.113.9")).await,
        [429],
        "X-Forwarded-For is ignored unless trusted"
    );
    let probe = reqwest::get(format!("{}/healthz", server.url))
        .await
        .unwrap();
    assert_eq!(probe.status(), 200, "probes are not limited");
}

#[tokio::test]
async fn a_trusted_forwarded_for_names_the_client() {
    let upstream = Upstream::start(vec![]).await;
    let mut raw = config(&upstream.base_url);
    limit(&mut raw, 1, 1);
    raw.server.trust_forwarded_for = true;
    let server = start(raw).await;
    assert_eq!(
        searches(&server, 2, None, Some("203.0.113.1, 10.0.0.1")).await,
        [200, 429]
    );
    assert_eq!(
        searches(&server, 1, None, Some("203.0.113.2, 10.0.0.1")).await,
        [200],
        "the first hop is the client"
    );
}

#[tokio::test]
async fn requests_with_a_wrong_key_spend_their_address_budget() {
    let upstream = Upstream::start(vec![]).await;
    let server = keyed(&upstream, |raw| limit(raw, 1, 2)).await;
    let wrong = Some("rs-guessed-key-000000000000");
    assert_eq!(searches(&server, 3, wrong, None).await, [401, 401, 429]);
    assert_eq!(
        searches(&server, 1, Some(KEY), None).await,
        [200],
        "a valid key has its own budget"
    );
}

/// Memory stays bounded: past `max_clients` tracked addresses, new
/// addresses share one overflow budget instead of getting entries.
#[tokio::test]
async fn past_max_clients_new_addresses_share_one_budget() {
    let upstream = Upstream::start(vec![]).await;
    let mut raw = config(&upstream.base_url);
    limit(&mut raw, 1, 2);
    raw.server.rate_limit.max_clients = 3;
    raw.server.trust_forwarded_for = true;
    let server = start(raw).await;
    for n in 1..=3 {
        let address = format!("198.51.100.{n}");
        assert_eq!(searches(&server, 1, None, Some(&address)).await, [200]);
    }
    let mut overflow = Vec::new();
    for n in 4..=40 {
        let address = format!("198.51.100.{n}");
        overflow.extend(searches(&server, 1, None, Some(&address)).await);
    }
    assert_eq!(&overflow[..3], [200, 200, 429], "one shared budget of 2");
    assert!(overflow[2..].iter().all(|&s| s == 429), "{overflow:?}");
    assert_eq!(
        searches(&server, 2, None, Some("198.51.100.1")).await,
        [200, 429],
        "a tracked address keeps its own budget"
    );
}

/// A preflight from `origin` to `/api/chat`.
async fn preflight(server: &Server, origin: &str) -> Response {
    reqwest::Client::new()
        .request(Method::OPTIONS, format!("{}/api/chat", server.url))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_configured_origin_gets_a_full_preflight_answer_even_when_keys_are_needed() {
    let upstream = Upstream::start(vec![]).await;
    let server = keyed(&upstream, |raw| {
        raw.server.cors_origins = vec!["https://app.example".into()];
    })
    .await;
    let answer = preflight(&server, "https://app.example").await;
    assert_eq!(answer.status(), 200);
    let headers = answer.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example"
    );
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    assert!(
        methods.contains("POST") && methods.contains("GET"),
        "{methods}"
    );
    let allowed = headers["access-control-allow-headers"].to_str().unwrap();
    for header in ["authorization", "content-type", "x-api-key", "x-request-id"] {
        assert!(allowed.contains(header), "{header} missing from {allowed}");
    }
    assert_eq!(headers["access-control-max-age"], "600");

    // The 401 itself is readable by the page, so it can tell the user.
    let refused = request(&server, "POST", "/api/chat")
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let exposed = refused.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(
        exposed.contains("x-request-id") && exposed.contains("retry-after"),
        "{exposed}"
    );
}

#[tokio::test]
async fn other_origins_get_no_allow_origin() {
    let upstream = Upstream::start(vec![]).await;
    let mut raw = config(&upstream.base_url);
    raw.server.cors_origins = vec!["https://app.example".into()];
    let configured = start(raw).await;
    let unconfigured = start(config(&upstream.base_url)).await;
    for server in [&configured, &unconfigured] {
        let answer = preflight(server, "https://evil.example").await;
        assert!(
            answer
                .headers()
                .get("access-control-allow-origin")
                .is_none()
        );
        let search = request(server, "GET", "/api/kb/search?q=自伤")
            .header("origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert!(
            search
                .headers()
                .get("access-control-allow-origin")
                .is_none()
        );
    }
    let none_configured = preflight(&unconfigured, "https://app.example").await;
    assert!(
        none_configured
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "by default no origin is allowed"
    );
}

/// The real binary, configured only through the environment: keys from
/// `RAGSTREAM_API_KEYS`, the limit from `RAGSTREAM_SERVER__RATE_LIMIT__*`,
/// origins from `RAGSTREAM_SERVER__CORS_ORIGINS`. A fresh process, so the
/// rejection counters count this test's requests alone.
#[tokio::test]
async fn everything_can_be_set_from_the_environment_and_logs_show_fingerprints_only() {
    let upstream = Upstream::start(vec![]).await;
    let mut command = process::serve(&upstream.base_url);
    command
        .env("RAGSTREAM_API_KEYS", format!(" {KEY} ,{OTHER_KEY}"))
        .env("RAGSTREAM_SERVER__RATE_LIMIT__REQUESTS_PER_MINUTE", "1")
        .env("RAGSTREAM_SERVER__RATE_LIMIT__BURST", "2")
        .env(
            "RAGSTREAM_SERVER__CORS_ORIGINS",
            r#"["https://app.example"]"#,
        )
        .env("RAGSTREAM_SERVER__METRICS_PUBLIC", "true");
    let mut server = Process::start(command).await;
    let client = reqwest::Client::new();
    let search = |key: Option<&str>| {
        let builder = client.get(format!("{}/api/kb/search?q=自伤", server.url));
        match key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    };
    let wrong = "rs-wrong-key-11111111111111";

    assert_eq!(search(None).send().await.unwrap().status(), 401);
    assert_eq!(search(Some(wrong)).send().await.unwrap().status(), 401);
    assert_eq!(search(Some(KEY)).send().await.unwrap().status(), 200);
    assert_eq!(search(Some(KEY)).send().await.unwrap().status(), 200);
    assert_eq!(search(Some(KEY)).send().await.unwrap().status(), 429);
    assert_eq!(search(Some(OTHER_KEY)).send().await.unwrap().status(), 200);
    let cors = client
        .request(Method::OPTIONS, format!("{}/api/chat", server.url))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(
        cors.headers()["access-control-allow-origin"],
        "https://app.example"
    );

    let metrics = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric(
            &metrics,
            "ragstream_rejected_requests_total{reason=\"unauthorized\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &metrics,
            "ragstream_rejected_requests_total{reason=\"rate_limited\"}"
        ),
        1.0
    );

    server.terminate();
    let mut logs = String::new();
    let read = async {
        while let Ok(Some(line)) = server.stderr.next_line().await {
            logs.push_str(&line);
            logs.push('\n');
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("serve exits after SIGTERM");
    let keyed: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains(&format!("key={KEY_FINGERPRINT}}}")))
        .collect();
    assert_eq!(
        keyed.len(),
        3,
        "each request with the key is logged with its fingerprint, the 429 too:\n{logs}"
    );
    assert!(keyed[2].contains("status=429"), "{logs}");
    let anonymous = logs
        .lines()
        .filter(|line| line.contains("client=127.0.0.1}") && line.contains("status=401"))
        .count();
    assert_eq!(
        anonymous, 2,
        "requests without a valid key are logged with their address:\n{logs}"
    );
    for secret in [KEY, OTHER_KEY, wrong] {
        assert!(!logs.contains(secret), "a key in the logs:\n{logs}");
    }
}

#[test]
fn check_config_shows_keys_masked() {
    let (code, stdout) = check_config(&[("RAGSTREAM_API_KEYS", &format!("{KEY},{OTHER_KEY}"))]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("\"rs-*** (28 chars)\",") && stdout.contains("\"rs-*** (29 chars)\","),
        "{stdout}"
    );
    assert!(
        !stdout.contains(&KEY[3..]) && !stdout.contains(&OTHER_KEY[3..]),
        "{stdout}"
    );
}

#[test]
fn check_config_warns_about_an_open_non_loopback_address() {
    let (_, open) = check_config(&[("RAGSTREAM_SERVER__ADDR", "0.0.0.0:5328")]);
    assert!(
        open.contains("warning: server.addr 0.0.0.0:5328 is reachable from other machines and no API key is configured"),
        "{open}"
    );
    let (_, closed) = check_config(&[
        ("RAGSTREAM_SERVER__ADDR", "0.0.0.0:5328"),
        ("RAGSTREAM_API_KEYS", KEY),
    ]);
    assert!(!closed.contains("no API key is configured"), "{closed}");
}

#[test]
fn a_short_key_is_a_configuration_error() {
    let (code, stdout) = check_config(&[("RAGSTREAM_API_KEYS", "short-key")]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("server.api_keys[0] has 9 characters; use at least 16"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("short-key"),
        "the key itself is never shown:\n{stdout}"
    );
}

#[test]
fn a_key_list_of_only_commas_is_an_error_not_an_open_server() {
    let (code, stdout) = check_config(&[("RAGSTREAM_API_KEYS", " , ,")]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("RAGSTREAM_API_KEYS holds no key"),
        "{stdout}"
    );
}

/// `check-config` on the example with extra environment variables: the exit
/// code and what it printed.
fn check_config(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = process::ragstream("warn")
        .args([
            "check-config",
            "--no-probe",
            "--config",
            "examples/autism.toml",
        ])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}
