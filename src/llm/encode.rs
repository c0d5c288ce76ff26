//! Encodes a provider-neutral [`Request`] as a `POST /chat/completions` body
//! in the provider's function-calling dialect.
//!
//! - `tools`: definitions under `tools` (`{"type":"function","function":…}`),
//!   `tool_choice`, assistant `tool_calls`, and `tool` messages with `tool_call_id`;
//! - `functions`: definitions under `functions`, `function_call` for the choice,
//!   one assistant `function_call` per call, each followed by its `function`
//!   message with the function's `name`.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Value, json};

use super::assemble::ToolCall;
use super::request::{Message, Request, Role, ToolChoice, ToolSpec};
use super::settings::Dialect;

/// The tool definitions of `specs` in `dialect`.
pub fn definitions(specs: &[ToolSpec], dialect: Dialect) -> Vec<Value> {
    specs
        .iter()
        .map(|spec| {
            let function = json!({
                "name": spec.name,
                "description": spec.description,
                "parameters": spec.parameters,
            });
            match dialect {
                Dialect::Tools => json!({"type": "function", "function": function}),
                Dialect::Functions => function,
            }
        })
        .collect()
}

/// A request body ready to serialize.
pub struct Body<'a> {
    /// What to send.
    pub request: &'a Request<'a>,
    /// How to spell tools.
    pub dialect: Dialect,
    /// The model to ask for (a fallback may override the request's).
    pub model: &'a str,
    /// Ask for usage in the last chunk.
    pub include_usage: bool,
}

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let request = self.request;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("model", self.model)?;
        map.serialize_entry("messages", &messages(request.messages, self.dialect))?;
        map.serialize_entry("stream", &true)?;
        if let Some(temperature) = request.temperature {
            map.serialize_entry("temperature", &temperature)?;
        }
        if let Some(max_tokens) = request.max_tokens {
            map.serialize_entry("max_tokens", &max_tokens)?;
        }
        if let Some(tools) = request.tools {
            let choice = match request.tool_choice {
                ToolChoice::Auto => "auto",
                ToolChoice::None => "none",
            };
            let (tools_key, choice_key) = match self.dialect {
                Dialect::Tools => ("tools", "tool_choice"),
                Dialect::Functions => ("functions", "function_call"),
            };
            map.serialize_entry(tools_key, &tools.json)?;
            map.serialize_entry(choice_key, choice)?;
        }
        if self.include_usage {
            map.serialize_entry("stream_options", &json!({"include_usage": true}))?;
        }
        map.end()
    }
}

/// One message on the wire.
#[derive(Serialize)]
struct WireMessage<'a> {
    /// `system`, `user`, `assistant`, `tool` or `function`.
    role: &'static str,
    /// Text; `null` on an assistant turn that only calls tools.
    content: Option<&'a str>,
    /// The assistant's thinking (DeepSeek rejects tool results whose turn lost it).
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    /// Modern tool calls.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tool_calls: &'a [ToolCall],
    /// The call a `tool` message answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
    /// A legacy function call.
    #[serde(skip_serializing_if = "Option::is_none")]
    function_call: Option<Function<'a>>,
    /// The function a legacy `function` message comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

/// A function name with its JSON argument text.
#[derive(Serialize)]
struct Function<'a> {
    name: &'a str,
    arguments: &'a str,
}

impl Serialize for ToolCall {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("type", "function")?;
        map.serialize_entry(
            "function",
            &Function {
                name: &self.name,
                arguments: &self.arguments,
            },
        )?;
        map.end()
    }
}

impl<'a> WireMessage<'a> {
    fn plain(role: &'static str, message: &'a Message) -> Self {
        Self {
            role,
            content: message.content.as_deref(),
            reasoning_content: message.reasoning_content.as_deref(),
            tool_calls: &[],
            tool_call_id: None,
            function_call: None,
            name: None,
        }
    }

    /// A legacy assistant turn calling `call`.
    fn function_call(assistant: &'a Message, call: &'a ToolCall) -> Self {
        Self {
            function_call: Some(Function {
                name: &call.name,
                arguments: &call.arguments,
            }),
            ..Self::plain("assistant", assistant)
        }
    }
}

fn role(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

/// In the legacy form, an assistant turn whose calls got no result still
/// says what it called.
fn flush<'a>(out: &mut Vec<WireMessage<'a>>, open: Option<(&'a Message, bool)>) {
    if let Some((assistant, false)) = open {
        out.push(WireMessage::function_call(
            assistant,
            &assistant.tool_calls[0],
        ));
    }
}

/// The conversation in `dialect`.
fn messages(messages: &[Message], dialect: Dialect) -> Vec<WireMessage<'_>> {
    let mut out = Vec::with_capacity(messages.len() + 2);
    match dialect {
        Dialect::Tools => {
            for message in messages {
                out.push(WireMessage {
                    tool_calls: &message.tool_calls,
                    tool_call_id: message.tool_call_id.as_deref(),
                    ..WireMessage::plain(role(message.role), message)
                });
            }
        }
        Dialect::Functions => {
            // The legacy form has one call per assistant turn: each result is
            // preceded by a copy of the assistant turn calling just that function.
            // The assistant turn whose results follow, and whether one did.
            let mut calling: Option<(&Message, bool)> = None;
            for message in messages {
                match message.role {
                    Role::Assistant if !message.tool_calls.is_empty() => {
                        let open = calling.replace((message, false));
                        flush(&mut out, open);
                    }
                    Role::Tool => {
                        if let Some((assistant, answered)) = &mut calling {
                            let call = assistant
                                .tool_calls
                                .iter()
                                .find(|c| Some(c.id.as_str()) == message.tool_call_id.as_deref())
                                .unwrap_or(&assistant.tool_calls[0]);
                            out.push(WireMessage::function_call(assistant, call));
                            *answered = true;
                        }
                        out.push(WireMessage {
                            reasoning_content: None,
                            name: message.name.as_deref(),
                            ..WireMessage::plain("function", message)
                        });
                    }
                    _ => {
                        flush(&mut out, calling.take());
                        out.push(WireMessage::plain(role(message.role), message));
                    }
                }
            }
            flush(&mut out, calling);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: &str, name: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: "{}".into(),
        }
    }

    fn exchange() -> Vec<Message> {
        let mut assistant = Message::text(Role::Assistant, "");
        assistant.content = None;
        assistant.reasoning_content = Some("think".into());
        assistant.tool_calls = vec![call("a", "f"), call("b", "g")];
        vec![
            Message::text(Role::User, "q"),
            assistant,
            Message::tool_result(call("a", "f"), "ra".into()),
            Message::tool_result(call("b", "g"), "rb".into()),
        ]
    }

    fn body(messages: &[Message], dialect: Dialect, tools: Option<&super::super::Tools>) -> Value {
        let request = Request {
            model: "m",
            messages,
            temperature: None,
            tools,
            tool_choice: ToolChoice::Auto,
            max_tokens: None,
        };
        serde_json::to_value(Body {
            request: &request,
            dialect,
            model: "m",
            include_usage: false,
        })
        .unwrap()
    }

    #[test]
    fn the_tools_dialect_sends_tool_calls_and_tool_messages() {
        let json = body(&exchange(), Dialect::Tools, None);
        let messages = json["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 4);
        assert_eq!(messages[1]["content"], Value::Null);
        assert_eq!(messages[1]["tool_calls"][1]["id"], "b");
        assert_eq!(messages[1]["tool_calls"][1]["type"], "function");
        assert_eq!(messages[1]["tool_calls"][1]["function"]["name"], "g");
        assert_eq!(
            messages[3],
            json!({"role": "tool", "content": "rb", "tool_call_id": "b"})
        );
        assert!(json.get("tools").is_none() && json.get("tool_choice").is_none());
    }

    #[test]
    fn the_functions_dialect_pairs_each_call_with_its_result() {
        let json = body(&exchange(), Dialect::Functions, None);
        let messages = json["messages"].as_array().unwrap();
        let roles: Vec<_> = messages
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(
            roles,
            ["user", "assistant", "function", "assistant", "function"]
        );
        assert_eq!(messages[1]["function_call"]["name"], "f");
        assert_eq!(messages[1]["reasoning_content"], "think");
        assert!(messages[1].get("tool_calls").is_none());
        assert_eq!(messages[3]["function_call"]["name"], "g");
        assert_eq!(
            messages[4],
            json!({"role": "function", "content": "rb", "name": "g"})
        );
    }

    #[test]
    fn definitions_and_choice_follow_the_dialect() {
        let specs = [ToolSpec {
            name: "echo".into(),
            description: "repeats".into(),
            parameters: json!({"type": "object"}),
        }];
        let modern = super::super::Tools::encode(&specs, Dialect::Tools);
        let json = body(&[], Dialect::Tools, Some(&modern));
        assert_eq!(json["tools"][0]["type"], "function");
        assert_eq!(json["tools"][0]["function"]["name"], "echo");
        assert_eq!(json["tool_choice"], "auto");
        let legacy = super::super::Tools::encode(&specs, Dialect::Functions);
        let json = body(&[], Dialect::Functions, Some(&legacy));
        assert_eq!(json["functions"][0]["name"], "echo");
        assert!(json["functions"][0].get("type").is_none());
        assert_eq!(json["function_call"], "auto");
        assert!(json.get("tools").is_none());
    }
}
