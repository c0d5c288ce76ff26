//! The body of `POST /v1/chat/completions`, checked into what the engine needs.
//!
//! Lenient where OpenAI is: unknown fields are ignored, content may be a
//! string or an array of text parts, and `system`/`developer`, `tool` and
//! assistant `tool_calls` messages are accepted.

use serde::Deserialize;
use serde_json::Value;

use crate::engine::Options;
use crate::error::Code;
use crate::llm::{Message, Role, ToolCall, ToolSpec};
use crate::server::error::ApiError;
use crate::server::settings::Limits;

/// The request as an OpenAI client sends it; fields ragstream does not use
/// (`n`, `top_p`, `user`, …) are ignored.
#[derive(Debug, Deserialize)]
pub struct CompletionBody {
    /// The model id; must be `server.model_id`.
    #[serde(default)]
    pub model: Option<String>,
    /// The conversation, oldest first.
    #[serde(default)]
    pub messages: Option<Vec<InMessage>>,
    /// Stream chunks (`true`) or answer with one `chat.completion`.
    #[serde(default)]
    pub stream: Option<bool>,
    /// `{"include_usage": true}` adds a usage chunk at the end of a stream.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Overrides `llm.temperature`.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// The older name of `max_completion_tokens`.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Caps the tokens of each model call.
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    /// The client's own tools.
    #[serde(default)]
    pub tools: Option<Vec<InTool>>,
    /// `auto`, `none`, `required` or a named function.
    #[serde(default)]
    pub tool_choice: Option<Value>,
    /// Accepted; the model decides how many calls it makes.
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a final chunk with `usage` and no choices.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// One message as an OpenAI client sends it.
#[derive(Debug, Deserialize)]
pub struct InMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    #[serde(default)]
    pub role: Option<String>,
    /// A string, an array of parts, or `null` (an assistant turn with tool calls).
    #[serde(default)]
    pub content: Option<Value>,
    /// An assistant turn's tool calls.
    #[serde(default)]
    pub tool_calls: Option<Vec<InToolCall>>,
    /// The call a `tool` message answers.
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

/// A tool call in an assistant message.
#[derive(Debug, Deserialize)]
pub struct InToolCall {
    /// Call id.
    #[serde(default)]
    pub id: String,
    /// The function called.
    pub function: InFunctionCall,
}

/// The function of a tool call.
#[derive(Debug, Deserialize)]
pub struct InFunctionCall {
    /// Function name.
    pub name: String,
    /// JSON argument text.
    #[serde(default)]
    pub arguments: String,
}

/// A tool definition `{"type":"function","function":{…}}`.
#[derive(Debug, Deserialize)]
pub struct InTool {
    /// Only `function` is known.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The function.
    pub function: Option<InFunction>,
}

/// A function definition.
#[derive(Debug, Deserialize)]
pub struct InFunction {
    /// Name the model calls.
    pub name: String,
    /// When to call it.
    #[serde(default)]
    pub description: Option<String>,
    /// JSON schema of the arguments.
    #[serde(default)]
    pub parameters: Option<Value>,
}

/// What a checked request asks for.
#[derive(Debug)]
pub struct Completion {
    /// The conversation for the engine.
    pub conversation: Vec<Message>,
    /// The client's tools and sampling settings.
    pub options: Options,
    /// Stream chunks rather than one JSON answer.
    pub stream: bool,
    /// Add the usage chunk at the end of the stream.
    pub include_usage: bool,
}

/// Why a request cannot be answered: a 400, or a 404 for an unknown model.
#[derive(Debug)]
pub enum Rejected {
    /// A 400 with what to fix.
    Invalid(ApiError),
    /// The model id is not `server.model_id`.
    UnknownModel(String),
}

impl From<ApiError> for Rejected {
    fn from(err: ApiError) -> Self {
        Self::Invalid(err)
    }
}

fn invalid(code: Code, message: impl Into<String>) -> Rejected {
    Rejected::Invalid(ApiError::bad_request(code, message))
}

impl CompletionBody {
    /// Checks the body; `has_tool` says which tool names are ragstream's own.
    pub fn check(
        self,
        model_id: &str,
        limits: &Limits,
        has_tool: impl Fn(&str) -> bool,
    ) -> Result<Completion, Rejected> {
        match self.model.as_deref() {
            None => {
                return Err(invalid(
                    Code::InvalidBody,
                    format!("the body needs `model`; this server answers as `{model_id}`"),
                ));
            }
            Some(model) if model != model_id => {
                return Err(Rejected::UnknownModel(model.to_owned()));
            }
            Some(_) => {}
        }
        let Some(messages) = self.messages.filter(|m| !m.is_empty()) else {
            return Err(invalid(
                Code::MissingContent,
                "`messages` is missing or empty",
            ));
        };
        if messages.len() > limits.max_messages {
            return Err(invalid(
                Code::TooManyMessages,
                format!(
                    "{} messages sent, at most {} allowed (server.max_messages): drop older messages",
                    messages.len(),
                    limits.max_messages
                ),
            ));
        }
        let conversation = messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| message(i, m, limits))
            .collect::<Result<Vec<_>, _>>()?;
        if !matches!(
            conversation.last().map(|m| m.role),
            Some(Role::User | Role::Tool)
        ) {
            return Err(invalid(
                Code::InvalidRole,
                "the last message must have role `user` (or `tool`, answering your own tool call)",
            ));
        }
        if let Some(temperature) = self.temperature {
            if !(0.0..=2.0).contains(&temperature) {
                return Err(invalid(
                    Code::InvalidBody,
                    format!("temperature is {temperature}; it must be between 0 and 2"),
                ));
            }
        }
        let choice = tool_choice(self.tool_choice.as_ref())?;
        let client_tools = match choice {
            // The model may not call the client's tools: do not show them.
            Choice::None => Vec::new(),
            Choice::Tools => tools(self.tools.unwrap_or_default(), has_tool)?,
        };
        Ok(Completion {
            conversation,
            options: Options {
                client_tools,
                temperature: self.temperature,
                max_tokens: self.max_completion_tokens.or(self.max_tokens),
            },
            stream: self.stream.unwrap_or(false),
            include_usage: self
                .stream_options
                .and_then(|o| o.include_usage)
                .unwrap_or(false),
        })
    }
}

/// What `tool_choice` allows for the client's tools.
enum Choice {
    /// `none`: the client's tools are not offered.
    None,
    /// `auto`, `required` or a named function: they are offered and the model decides.
    Tools,
}

fn tool_choice(value: Option<&Value>) -> Result<Choice, Rejected> {
    match value {
        None | Some(Value::Null) => Ok(Choice::Tools),
        Some(Value::String(s)) if s == "none" => Ok(Choice::None),
        Some(Value::String(s)) if s == "auto" || s == "required" => Ok(Choice::Tools),
        Some(Value::Object(o)) if o.get("type").and_then(Value::as_str) == Some("function") => {
            Ok(Choice::Tools)
        }
        Some(other) => Err(invalid(
            Code::InvalidBody,
            format!(
                "tool_choice is {other}; use \"auto\", \"none\", \"required\" or {{\"type\":\"function\",\"function\":{{\"name\":…}}}}"
            ),
        )),
    }
}

fn tools(tools: Vec<InTool>, has_tool: impl Fn(&str) -> bool) -> Result<Vec<ToolSpec>, Rejected> {
    tools
        .into_iter()
        .enumerate()
        .map(|(i, tool)| {
            let function = match (tool.kind.as_deref(), tool.function) {
                (None | Some("function"), Some(function)) => function,
                (kind, _) => {
                    return Err(invalid(
                        Code::InvalidBody,
                        format!(
                            "tools[{i}] is of type `{}`; only {{\"type\":\"function\",\"function\":{{…}}}} tools are supported",
                            kind.unwrap_or("function")
                        ),
                    ));
                }
            };
            if has_tool(&function.name) {
                return Err(invalid(
                    Code::InvalidBody,
                    format!(
                        "tools[{i}] is named `{}`, which is one of ragstream's own tools: rename it",
                        function.name
                    ),
                ));
            }
            Ok(ToolSpec {
                name: function.name,
                description: function.description.unwrap_or_default(),
                parameters: function
                    .parameters
                    .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
            })
        })
        .collect()
}

fn message(index: usize, m: InMessage, limits: &Limits) -> Result<Message, Rejected> {
    let field = format!("messages[{index}]");
    let role = match m.role.as_deref() {
        Some("system" | "developer") => Role::System,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("tool") => Role::Tool,
        Some(other) => {
            return Err(invalid(
                Code::InvalidRole,
                format!(
                    "{field}.role is `{other}`; use `system`, `developer`, `user`, `assistant` or `tool`"
                ),
            ));
        }
        None => {
            return Err(invalid(
                Code::InvalidRole,
                format!("{field}.role is missing"),
            ));
        }
    };
    let content = match m.content {
        None | Some(Value::Null) => None,
        Some(value) => Some(text(value, &format!("{field}.content"), limits)?),
    };
    let tool_calls: Vec<ToolCall> = m
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .map(|call| ToolCall {
            id: call.id,
            name: call.function.name,
            arguments: call.function.arguments,
        })
        .collect();
    match role {
        Role::Assistant if content.is_none() && tool_calls.is_empty() => {
            return Err(invalid(
                Code::MissingContent,
                format!("{field} has neither content nor tool_calls"),
            ));
        }
        Role::Tool if m.tool_call_id.is_none() => {
            return Err(invalid(
                Code::InvalidBody,
                format!("{field} has role `tool` but no tool_call_id"),
            ));
        }
        Role::System | Role::User | Role::Tool if content.is_none() => {
            return Err(invalid(
                Code::MissingContent,
                format!("{field}.content is missing"),
            ));
        }
        _ => {}
    }
    let mut message = Message::text(role, String::new());
    message.content = content;
    message.tool_calls = tool_calls;
    message.tool_call_id = m.tool_call_id;
    Ok(message)
}

/// A string, or the text parts of an array joined by newlines, within the
/// length limit.
fn text(value: Value, field: &str, limits: &Limits) -> Result<String, Rejected> {
    let text = match value {
        Value::String(text) => text,
        Value::Array(parts) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (i, part) in parts.iter().enumerate() {
                match (
                    part.get("type").and_then(Value::as_str),
                    part.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(text)) => texts.push(text),
                    (kind, _) => {
                        return Err(invalid(
                            Code::InvalidContent,
                            format!(
                                "{field}[{i}] is a `{}` part; only {{\"type\":\"text\",\"text\":…}} parts are supported",
                                kind.unwrap_or("untyped")
                            ),
                        ));
                    }
                }
            }
            texts.join("\n")
        }
        _ => {
            return Err(invalid(
                Code::InvalidContent,
                format!("{field} must be a string or an array of text parts"),
            ));
        }
    };
    crate::server::request::within_length(text, field, limits).map_err(Rejected::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_body_bytes: 1024,
        max_messages: 4,
        max_message_chars: 20,
        max_streams: 1,
        shutdown_grace: std::time::Duration::ZERO,
        header_timeout: std::time::Duration::from_secs(1),
        body_timeout: std::time::Duration::from_secs(1),
    };

    fn check(body: Value) -> Result<Completion, Rejected> {
        serde_json::from_value::<CompletionBody>(body)
            .unwrap()
            .check("ragstream", &LIMITS, |name| name == "kb")
    }

    fn message_of(body: Value) -> String {
        match check(body) {
            Err(Rejected::Invalid(err)) => err.message,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn content_arrays_are_joined_and_unknown_fields_ignored() {
        let done = check(serde_json::json!({
            "model": "ragstream", "n": 1, "user": "u", "logit_bias": {},
            "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "name": "x"}
            ]
        }))
        .unwrap();
        assert_eq!(done.conversation[0].role, Role::System);
        assert_eq!(done.conversation[1].content.as_deref(), Some("a\nb"));
        assert!(!done.stream);
    }

    #[test]
    fn an_image_part_is_refused_with_its_position() {
        let message = message_of(serde_json::json!({"model": "ragstream", "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
        ]}));
        assert!(
            message.starts_with("messages[0].content[0] is a `image_url` part"),
            "{message}"
        );
    }

    #[test]
    fn another_model_is_unknown_and_a_missing_one_is_invalid() {
        let body = |model: Value| serde_json::json!({"model": model, "messages": [{"role": "user", "content": "q"}]});
        assert!(
            matches!(check(body("gpt-4o".into())), Err(Rejected::UnknownModel(m)) if m == "gpt-4o")
        );
        assert!(message_of(serde_json::json!({"messages": []})).contains("needs `model`"));
        let hot = serde_json::json!({"model": "ragstream", "temperature": 3, "messages": [{"role": "user", "content": "q"}]});
        assert_eq!(
            message_of(hot),
            "temperature is 3; it must be between 0 and 2"
        );
    }

    #[test]
    fn tool_history_is_kept_and_may_end_the_conversation() {
        let done = check(serde_json::json!({"model": "ragstream", "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
        ]}))
        .unwrap();
        assert_eq!(done.conversation[1].tool_calls[0].name, "weather");
        assert_eq!(done.conversation[2].tool_call_id.as_deref(), Some("c1"));
    }

    #[test]
    fn client_tools_follow_tool_choice_and_may_not_shadow_ours() {
        let body = |choice: Value, name: &str| {
            serde_json::json!({"model": "ragstream", "messages": [{"role": "user", "content": "q"}],
                "tool_choice": choice, "parallel_tool_calls": false, "max_tokens": 7,
                "tools": [{"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}]})
        };
        let done = check(body("auto".into(), "weather")).unwrap();
        assert_eq!(done.options.client_tools[0].name, "weather");
        assert_eq!(done.options.max_tokens, Some(7));
        assert!(
            check(body("none".into(), "weather"))
                .unwrap()
                .options
                .client_tools
                .is_empty()
        );
        assert!(message_of(body("auto".into(), "kb")).contains("ragstream's own tools"));
        assert!(message_of(body("sometimes".into(), "weather")).starts_with("tool_choice is"));
    }

    #[test]
    fn the_last_message_must_be_the_users_or_a_tool_result() {
        let message = message_of(serde_json::json!({"model": "ragstream", "messages": [
            {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}
        ]}));
        assert!(
            message.starts_with("the last message must have role `user`"),
            "{message}"
        );
    }
}
