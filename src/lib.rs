//! ragstream: a stream-first chat server with function calling over a knowledge base.
//!
//! - [`llm`]: the OpenAI-compatible streaming client (SSE, chunks, tool calls).
//! - [`engine`]: the turn loop, turning a conversation into typed [`engine::Event`]s.
//! - [`tools`]: configured tools the model may call.
//! - [`kb`]: knowledge-base stores behind the [`kb::KnowledgeBase`] trait.
//! - [`server`]: the HTTP routes and their wire formats.
//! - [`web`]: the chat page, compiled into the binary.
//! - [`error`]: the error codes shared by HTTP errors and `error` events.
//! - [`config`], [`dotenv`], [`app`], [`cli`], [`probe`], [`shutdown`], [`telemetry`]: loading, `.env`, wiring,
//!   commands, the provider check of `check-config`, signals, metrics.

pub mod app;
pub mod cli;
pub mod config;
pub mod dotenv;
pub mod engine;
pub mod error;
pub mod http_body;
pub mod kb;
pub mod llm;
pub mod probe;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod telemetry;
pub mod tools;
pub mod web;
