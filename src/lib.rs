//! ragstream: a stream-first chat server with function calling over a knowledge base.
//!
//! - [`llm`]: the OpenAI-compatible streaming client (SSE, chunks, tool calls).
//! - [`kb`]: knowledge-base stores behind the [`kb::KnowledgeBase`] trait.

pub mod kb;
pub mod llm;
