//! The streaming body of `/v1/chat/completions`: `data:` lines of standard
//! `chat.completion.chunk` JSON, ending with `data: [DONE]`.
//!
//! The first chunk carries `role: "assistant"`; every chunk has `usage: null`
//! except the optional last one (`stream_options.include_usage`), which has
//! `choices: []`. ragstream's own tool calls stay inside: clients would try
//! to run them. Sources travel under the extension key `ragstream`.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

use super::{Answer, OutUsage, error_body, finish_reason};
use crate::engine::{Event, Source};
use crate::error::Code;
use crate::server::encode::Encoder;

/// Renders engine events as OpenAI chunks.
#[derive(Debug)]
pub struct Chunks {
    /// `id`, `created` and `model`, the same on every chunk.
    answer: Answer,
    /// Add a usage chunk before `[DONE]`.
    include_usage: bool,
    /// The role chunk went out.
    started: bool,
    /// Index of the next client tool call.
    next_tool: usize,
}

impl Chunks {
    /// An encoder for one answer.
    pub fn new(answer: Answer, include_usage: bool) -> Self {
        Self {
            answer,
            include_usage,
            started: false,
            next_tool: 0,
        }
    }

    /// Writes one chunk as a `data:` line.
    fn chunk(
        &self,
        buf: &mut BytesMut,
        delta: Delta<'_>,
        finish: Option<&str>,
        sources: Option<&[Source]>,
    ) {
        let chunk = Chunk {
            id: &self.answer.id,
            object: "chat.completion.chunk",
            created: self.answer.created,
            model: &self.answer.model,
            system_fingerprint: None,
            choices: Some([Choice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason: finish,
            }]),
            usage: None,
            ragstream: sources.map(|sources| Extension { sources }),
        };
        data(buf, &chunk);
    }

    /// The role chunk, before anything else.
    fn start(&mut self, buf: &mut BytesMut) {
        if !std::mem::replace(&mut self.started, true) {
            let delta = Delta {
                role: Some("assistant"),
                content: Some(""),
                ..Delta::default()
            };
            self.chunk(buf, delta, None, None);
        }
    }
}

impl Encoder for Chunks {
    const CONTENT_TYPE: &'static str = "text/event-stream";
    /// A comment line, which OpenAI's SDKs skip.
    const KEEP_ALIVE: Option<&'static [u8]> = Some(b": keep-alive\n\n");

    fn event(&mut self, event: Event) -> Option<Bytes> {
        let hint = match &event {
            Event::Delta(text) | Event::Reasoning(text) => text.len(),
            Event::Sources(sources) => 256 * sources.len(),
            _ => 0,
        };
        let mut buf = BytesMut::with_capacity(2 * self.answer.model.len() + hint + hint / 4 + 256);
        self.start(&mut buf);
        match &event {
            Event::Delta(text) => {
                let delta = Delta {
                    content: Some(text),
                    ..Delta::default()
                };
                self.chunk(&mut buf, delta, None, None);
            }
            Event::Reasoning(text) => {
                let delta = Delta {
                    reasoning_content: Some(text),
                    ..Delta::default()
                };
                self.chunk(&mut buf, delta, None, None);
            }
            Event::Sources(sources) => self.chunk(&mut buf, Delta::default(), None, Some(sources)),
            Event::ClientToolCall {
                id,
                name,
                arguments,
            } => {
                let call = ToolCallDelta {
                    index: self.next_tool,
                    id,
                    kind: "function",
                    function: FunctionDelta { name, arguments },
                };
                self.next_tool += 1;
                let delta = Delta {
                    tool_calls: Some([call]),
                    ..Delta::default()
                };
                self.chunk(&mut buf, delta, None, None);
            }
            Event::Done {
                finish_reason: reason,
                usage,
                ..
            } => {
                self.chunk(
                    &mut buf,
                    Delta::default(),
                    Some(finish_reason(reason)),
                    None,
                );
                if self.include_usage {
                    let chunk = Chunk {
                        id: &self.answer.id,
                        object: "chat.completion.chunk",
                        created: self.answer.created,
                        model: &self.answer.model,
                        system_fingerprint: None,
                        choices: None,
                        usage: Some(OutUsage::from(*usage)),
                        ragstream: None,
                    };
                    data(&mut buf, &chunk);
                }
                buf.put_slice(b"data: [DONE]\n\n");
            }
            // Status lines and ragstream's own tool calls are not OpenAI's.
            Event::Status { .. } | Event::ToolCall { .. } | Event::ToolResult { .. } => {}
            Event::Error { code, message } => return Some(self.error(*code, message)),
        }
        (!buf.is_empty()).then(|| buf.freeze())
    }

    /// OpenAI's in-stream error, `data: {"error":{…}}`, then `[DONE]`; the
    /// SDKs raise it as an `APIError`.
    fn error(&mut self, code: Code, message: &str) -> Bytes {
        let mut buf = BytesMut::with_capacity(message.len() + 128);
        data(
            &mut buf,
            &error_body(code.as_str(), message, error_type(code)),
        );
        buf.put_slice(b"data: [DONE]\n\n");
        buf.freeze()
    }
}

/// The `type` of an in-stream error: everything that can go wrong once an
/// answer streams is on the server's side.
fn error_type(_code: Code) -> &'static str {
    "server_error"
}

/// Writes `data: JSON\n\n`.
fn data(buf: &mut BytesMut, value: &impl Serialize) {
    buf.put_slice(b"data: ");
    let mut writer = buf.writer();
    serde_json::to_writer(&mut writer, value).expect("chunks always serialize to JSON");
    writer.into_inner().put_slice(b"\n\n");
}

/// One `chat.completion.chunk`.
#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: Option<&'a str>,
    /// `[]` on the usage chunk.
    #[serde(serialize_with = "choices_or_empty")]
    choices: Option<[Choice<'a>; 1]>,
    usage: Option<OutUsage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ragstream: Option<Extension<'a>>,
}

fn choices_or_empty<S: serde::Serializer>(
    choices: &Option<[Choice<'_>; 1]>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match choices {
        Some(choices) => choices.serialize(serializer),
        None => <[Choice<'_>; 0]>::default().serialize(serializer),
    }
}

/// The only choice.
#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

/// What a chunk adds.
#[derive(Default, Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    /// The model's thinking, under the name DeepSeek made common.
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

/// A client tool call, whole in one delta.
#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: usize,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    name: &'a str,
    arguments: &'a str,
}

/// ragstream's extension field.
#[derive(Serialize)]
struct Extension<'a> {
    sources: &'a [Source],
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Usage;
    use serde_json::{Value, json};

    fn lines(encoder: &mut Chunks, events: Vec<Event>) -> Vec<String> {
        let mut out = String::new();
        for event in events {
            let bytes = match event {
                Event::Error { code, message } => encoder.error(code, &message),
                event => match encoder.event(event) {
                    Some(bytes) => bytes,
                    None => continue,
                },
            };
            out.push_str(std::str::from_utf8(&bytes).unwrap());
        }
        out.split("\n\n")
            .filter(|l| !l.is_empty())
            .map(|l| {
                l.strip_prefix("data: ")
                    .expect("only data lines")
                    .to_owned()
            })
            .collect()
    }

    fn json(line: &str) -> Value {
        serde_json::from_str(line).unwrap()
    }

    fn encoder(include_usage: bool) -> Chunks {
        Chunks::new(
            Answer {
                id: "chatcmpl-x".into(),
                created: 1,
                model: "ragstream".into(),
            },
            include_usage,
        )
    }

    #[test]
    fn role_first_usage_null_then_finish_usage_and_done() {
        let usage = Usage {
            prompt_tokens: Some(3),
            completion_tokens: Some(4),
            total_tokens: Some(7),
        };
        let lines = lines(
            &mut encoder(true),
            vec![
                Event::Delta("你好".into()),
                Event::Done {
                    finish_reason: "retrieval_only".into(),
                    usage: Some(usage),
                    steps: 1,
                },
            ],
        );
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert_eq!(
            json(&lines[0])["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        assert_eq!(
            json(&lines[1])["choices"][0]["delta"],
            json!({"content": "你好"})
        );
        assert_eq!(json(&lines[2])["choices"][0]["finish_reason"], "stop");
        for line in &lines[..3] {
            assert_eq!(json(line)["usage"], Value::Null);
            assert_eq!(json(line)["object"], "chat.completion.chunk");
        }
        assert_eq!(json(&lines[3])["choices"], json!([]));
        assert_eq!(
            json(&lines[3])["usage"],
            json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7})
        );
        assert_eq!(lines[4], "[DONE]");
    }

    #[test]
    fn own_tool_calls_stay_inside_and_sources_ride_in_the_extension() {
        let lines = lines(
            &mut encoder(false),
            vec![
                Event::ToolCall {
                    id: "c".into(),
                    name: "kb".into(),
                    arguments: "{}".into(),
                },
                Event::Sources(vec![]),
                Event::ClientToolCall {
                    id: "w".into(),
                    name: "weather".into(),
                    arguments: "{\"city\":\"x\"}".into(),
                },
            ],
        );
        assert!(lines.iter().all(|l| !l.contains("\"kb\"")), "{lines:?}");
        assert_eq!(json(&lines[1])["ragstream"], json!({"sources": []}));
        assert_eq!(
            json(&lines[2])["choices"][0]["delta"]["tool_calls"],
            json!([{"index": 0, "id": "w", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"x\"}"}}])
        );
    }

    #[test]
    fn a_late_error_is_openai_shaped_and_still_ends_with_done() {
        let lines = lines(
            &mut encoder(false),
            vec![
                Event::Delta("半".into()),
                Event::Error {
                    code: Code::UpstreamTimeout,
                    message: "slow".into(),
                },
            ],
        );
        assert_eq!(
            json(&lines[2]),
            json!({"error": {"message": "slow", "type": "server_error", "param": null, "code": "upstream_timeout"}})
        );
        assert_eq!(lines[3], "[DONE]");
    }
}
