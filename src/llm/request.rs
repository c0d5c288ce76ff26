//! The provider-neutral request: messages, tool specs and tool choice.
//!
//! The engine speaks only these types; [`super::encode`] alone knows whether
//! they go on the wire as `tools`/`tool_calls` or `functions`/`function_call`.

use serde_json::Value;
use serde_json::value::RawValue;

use super::assemble::ToolCall;
use super::settings::Dialect;

/// A message of the conversation sent upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// Text; `None` on an assistant turn that only calls tools.
    pub content: Option<String>,
    /// The assistant's thinking, sent back where the provider requires it.
    pub reasoning_content: Option<String>,
    /// Tool calls of an assistant turn.
    pub tool_calls: Vec<ToolCall>,
    /// The call a [`Role::Tool`] message answers.
    pub tool_call_id: Option<String>,
    /// The tool a [`Role::Tool`] message comes from.
    pub name: Option<String>,
}

impl Message {
    /// A message with a role and text only.
    pub fn text(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: Some(content.into()),
            reasoning_content: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }

    /// The result of `call`, as the model is to read it.
    pub fn tool_result(call: ToolCall, content: String) -> Self {
        Self {
            role: Role::Tool,
            content: Some(content),
            reasoning_content: None,
            tool_calls: Vec::new(),
            tool_call_id: Some(call.id),
            name: Some(call.name),
        }
    }
}

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions from the operator.
    System,
    /// The person chatting.
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
}

/// How a tool is described to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// The function name the model calls.
    pub name: String,
    /// When the model should call it.
    pub description: String,
    /// JSON schema of the arguments.
    pub parameters: Value,
}

/// Tool definitions encoded once for a provider's dialect, then sent with
/// every request as they are.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The JSON array of definitions.
    pub(super) json: Box<RawValue>,
}

impl Tools {
    /// Encodes `specs` for `dialect`.
    pub fn encode(specs: &[ToolSpec], dialect: Dialect) -> Self {
        let json = serde_json::value::to_raw_value(&super::encode::definitions(specs, dialect))
            .expect("tool definitions are JSON values");
        Self { json }
    }
}

/// Whether the model may call tools in this turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// The model must answer without tools.
    None,
}

/// One model call, before it is encoded for a provider.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Model name.
    pub model: &'a str,
    /// The conversation.
    pub messages: &'a [Message],
    /// Sampling temperature, if configured.
    pub temperature: Option<f32>,
    /// The tools offered, if any.
    pub tools: Option<&'a Tools>,
    /// Whether the model may call them (sent only with tools).
    pub tool_choice: ToolChoice,
    /// Most tokens the model may write in this call, if the client set it.
    pub max_tokens: Option<u32>,
}
