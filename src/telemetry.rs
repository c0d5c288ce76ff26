//! Prometheus metrics through the `metrics` facade.
//!
//! Every name lives here. Nothing is recorded per chunk: streams record once
//! at their first byte and once at their end. Every series whose labels are
//! known in advance is exported at zero from the start ([`register`]), so a
//! rate or an alert works before the first request.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::Code;

/// HTTP requests by `endpoint` and `status`.
pub const REQUESTS: &str = "ragstream_http_requests_total";
/// Answer streams currently open.
pub const ACTIVE_STREAMS: &str = "ragstream_active_streams";
/// Answer streams ended, by `outcome` (`done`, `error`, `cancelled`, `shutdown`).
pub const STREAMS: &str = "ragstream_streams_total";
/// From the request to the first event of its stream.
pub const TIME_TO_FIRST_BYTE: &str = "ragstream_time_to_first_byte_seconds";
/// From the request to the end of its stream.
pub const STREAM_DURATION: &str = "ragstream_stream_duration_seconds";
/// Tool calls by `tool` and `outcome` (`ok`, `error`).
pub const TOOL_CALLS: &str = "ragstream_tool_calls_total";
/// Failed model-provider attempts by `kind` (the error code), retried or not.
pub const UPSTREAM_ERRORS: &str = "ragstream_upstream_errors_total";
/// Knowledge-base search latency.
pub const KB_SEARCH: &str = "ragstream_kb_search_seconds";
/// Rerank-service latency (reranking on only).
pub const KB_RERANK: &str = "ragstream_kb_rerank_seconds";
/// Rerank requests by `outcome`: `ok`, or why the search order was kept
/// (`timeout`, `unreachable`, `http_error`, `malformed`).
pub const KB_RERANKS: &str = "ragstream_kb_rerank_total";
/// Requests turned away by access control, by `reason` (`unauthorized`, `rate_limited`).
pub const REJECTED: &str = "ragstream_rejected_requests_total";
/// Client addresses the rate limiter tracks.
pub const RATE_LIMIT_CLIENTS: &str = "ragstream_rate_limit_clients";
/// Speculative searches by `outcome`: `hit` (a call reused the hits), `partial`
/// (it reused the vector), `miss` (it searched afresh), `wasted` (a request
/// ended without reusing its prefetch).
pub const PREFETCH: &str = "ragstream_prefetch_total";

/// Reasons of `ragstream_rejected_requests_total`.
pub const REJECTION_REASONS: &[Code] = &[Code::Unauthorized, Code::RateLimited];

/// Outcomes of `ragstream_streams_total`.
pub const STREAM_OUTCOMES: &[&str] = &["done", "error", "cancelled", "shutdown"];
/// Outcomes of `ragstream_tool_calls_total`.
pub const TOOL_OUTCOMES: &[&str] = &["ok", "error"];

/// Latency buckets in seconds, from 1 ms to 2 minutes.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Installs the process-wide recorder once and returns its handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(REQUESTS, "HTTP requests by endpoint and status");
    metrics::describe_gauge!(ACTIVE_STREAMS, "answer streams currently open");
    metrics::describe_counter!(STREAMS, "answer streams ended, by outcome");
    metrics::describe_histogram!(
        TIME_TO_FIRST_BYTE,
        metrics::Unit::Seconds,
        "request to first event"
    );
    metrics::describe_histogram!(
        STREAM_DURATION,
        metrics::Unit::Seconds,
        "request to end of stream"
    );
    metrics::describe_counter!(TOOL_CALLS, "tool calls by tool and outcome");
    metrics::describe_counter!(UPSTREAM_ERRORS, "failed model-provider attempts by kind");
    metrics::describe_counter!(
        PREFETCH,
        "speculative knowledge-base searches by outcome (hit, partial, miss, wasted)"
    );
    metrics::describe_histogram!(
        KB_SEARCH,
        metrics::Unit::Seconds,
        "knowledge-base search latency"
    );
    metrics::describe_histogram!(KB_RERANK, metrics::Unit::Seconds, "rerank-service latency");
    metrics::describe_counter!(
        KB_RERANKS,
        "rerank requests by outcome (ok, timeout, unreachable, http_error, malformed)"
    );
    metrics::describe_counter!(
        REJECTED,
        "requests turned away by access control, by reason"
    );
    metrics::describe_gauge!(
        RATE_LIMIT_CLIENTS,
        "client addresses the rate limiter tracks"
    );
}

/// Creates every series whose labels are known in advance, at zero: requests
/// to each of `endpoints` with status 200, streams by outcome, tool calls of
/// each of `tools` by outcome, upstream errors by kind, prefetches and rerank requests by
/// outcome, the gauge and the histograms, rejections by reason. Registering a series twice is harmless.
pub fn register(endpoints: &[&'static str], tools: &[String]) {
    for &endpoint in endpoints {
        metrics::counter!(REQUESTS, "endpoint" => endpoint, "status" => "200").increment(0);
    }
    metrics::gauge!(ACTIVE_STREAMS).increment(0.0);
    for &outcome in STREAM_OUTCOMES {
        metrics::counter!(STREAMS, "outcome" => outcome).increment(0);
    }
    for tool in tools {
        for &outcome in TOOL_OUTCOMES {
            metrics::counter!(TOOL_CALLS, "tool" => tool.clone(), "outcome" => outcome)
                .increment(0);
        }
    }
    for code in Code::ALL
        .iter()
        .filter(|c| c.as_str().starts_with("upstream_"))
    {
        metrics::counter!(UPSTREAM_ERRORS, "kind" => code.as_str()).increment(0);
    }
    for reason in REJECTION_REASONS {
        metrics::counter!(REJECTED, "reason" => reason.as_str()).increment(0);
    }
    for &outcome in crate::tools::prefetch::OUTCOMES {
        metrics::counter!(PREFETCH, "outcome" => outcome).increment(0);
    }
    for &outcome in crate::kb::rerank::OUTCOMES {
        metrics::counter!(KB_RERANKS, "outcome" => outcome).increment(0);
    }
    for histogram in [TIME_TO_FIRST_BYTE, STREAM_DURATION, KB_SEARCH] {
        let _ = metrics::histogram!(histogram);
    }
}
