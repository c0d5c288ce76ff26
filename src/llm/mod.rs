//! The OpenAI-compatible model client.
//!
//! The engine builds a provider-neutral [`Request`] (`request`); `encode`
//! alone turns it into the provider's dialect (`tools` or `functions`).
//! Bytes come back up one layer at a time: `sse` frames bytes, `wire` types the
//! JSON, `turn` and `assemble` turn chunks into events and tool calls, and
//! `client` does the HTTP with retries and timeouts.

pub mod assemble;
pub mod client;
pub mod encode;
pub mod request;
pub mod settings;
pub mod sse;
pub mod turn;
pub mod wire;

pub use assemble::ToolCall;
pub use client::{Client, Error, TurnStream};
pub use request::{Message, Request, Role, ToolChoice, ToolSpec, Tools};
pub use settings::{Backoff, Dialect, Fallback, Secret, Settings};
pub use turn::{Turn, TurnEvent};
pub use wire::Usage;
