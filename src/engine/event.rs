//! The typed events an answer is made of; every surface renders these.

use serde::Serialize;

use crate::error::Code;
use crate::kb::Hit;
use crate::llm::Usage;

/// What the engine is doing, for the client's status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// A tool (usually the knowledge-base search) is running.
    Searching,
    /// Tool results are in; the model writes the answer.
    Answering,
    /// No model is configured: the answer comes from the knowledge base.
    RetrievalOnly,
}

/// A source shown to the client, numbered as the model saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Source {
    /// The number the model cites, `[n]`.
    pub n: usize,
    /// Document or chunk id.
    pub id: String,
    /// The matched question or heading.
    pub title: String,
    /// The start of the answer or chunk.
    pub snippet: String,
    /// Relevance score from the store.
    pub score: f32,
    /// The file the document came from.
    pub source: String,
}

impl Source {
    /// Numbers a hit and cuts its text to a snippet.
    pub fn from_hit(n: usize, hit: &Hit) -> Self {
        let body = hit.answer.as_deref().unwrap_or(&hit.text);
        Self {
            n,
            id: hit.id.clone(),
            title: hit.title.clone(),
            snippet: snippet(body, 120),
            score: hit.score,
            source: hit.source.clone(),
        }
    }
}

/// The first `max` characters of `text`, with an ellipsis when cut.
pub fn snippet(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// One step of an answer, in the order the client receives them.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// What is happening now.
    Status {
        /// The stage.
        stage: Stage,
        /// The tool involved, if any.
        tool: Option<String>,
        /// A line for humans.
        message: String,
    },
    /// A piece of the answer.
    Delta(String),
    /// A piece of the model's thinking.
    Reasoning(String),
    /// The model finished a tool call.
    ToolCall {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// The model's arguments, as JSON text.
        arguments: String,
    },
    /// A tool call finished.
    ToolResult {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// The error the model was shown, if the call failed.
        error: Option<String>,
        /// Hits shown to the model (0 for text tools and errors).
        hits: usize,
        /// Run time in milliseconds.
        elapsed_ms: u64,
    },
    /// The model called one of the client's tools ([`super::Options`]);
    /// ragstream does not run it. `Done` with `tool_calls` follows.
    ClientToolCall {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// The model's arguments, as JSON text.
        arguments: String,
    },
    /// Sources handed to the model (or shown, without a model).
    Sources(Vec<Source>),
    /// The answer failed; always the last event.
    Error {
        /// Stable machine-readable code.
        code: Code,
        /// What happened, for humans.
        message: String,
    },
    /// The answer is complete; always the last event.
    Done {
        /// Why the last model turn ended (`stop`, `length`, `retrieval_only`, `no_match`).
        finish_reason: String,
        /// Usage summed over the model calls, when reported.
        usage: Option<Usage>,
        /// Model calls made.
        steps: u32,
    },
}

impl Event {
    /// Whether this event ends the stream.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Error { .. } | Self::Done { .. })
    }
}
