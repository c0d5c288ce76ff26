//! Turns upstream chunks into the events of one model turn.
//! Pure and synchronous: the network lives in `llm::client`.

use super::assemble::{Ready, Started, ToolCall, ToolCallAccumulator};
use super::wire::{Chunk, Usage};

/// What one chunk contributes, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnEvent {
    /// A piece of the answer.
    Content(String),
    /// A piece of the model's thinking, never part of the answer.
    Reasoning(String),
    /// A tool call's name became known: the client can be told at once.
    ToolCallStarted(Started),
    /// A tool call's arguments are complete: it can run before the turn ends.
    ToolCallReady(Ready),
}

/// A finished model turn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Turn {
    /// All answer text of the turn.
    pub content: String,
    /// All thinking text of the turn, if any.
    pub reasoning: Option<String>,
    /// The tool calls the model made.
    pub tool_calls: Vec<ToolCall>,
    /// The provider's finish reason, or one inferred when it sent none.
    pub finish_reason: String,
    /// Token usage, when the provider reported it.
    pub usage: Option<Usage>,
}

/// Why a chunk or a turn is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TurnError {
    /// The provider sent an error object inside the stream.
    #[error("provider reported an error in the stream: {0}")]
    Provider(String),
    /// A `data:` payload that is not a chunk.
    #[error("malformed chunk from provider: {0}")]
    Malformed(String),
    /// The turn ended with a tool call that cannot be run.
    #[error("incomplete tool call: {0}")]
    ToolCall(String),
    /// The bytes cannot be framed as server-sent events.
    #[error(transparent)]
    Framing(#[from] super::sse::Error),
}

/// What a `data:` payload holds.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "boxing the chunk would allocate per chunk; a payload lives on the stack for one call"
)]
pub enum Payload<'a> {
    /// A chunk to apply, borrowing the frame's text.
    Chunk(Chunk<'a>),
    /// `[DONE]`: the turn is over.
    Done,
}

/// Parses one SSE frame of a chat-completion stream.
pub fn parse_frame<'a>(event: &[u8], data: &'a [u8]) -> Result<Payload<'a>, TurnError> {
    if data == b"[DONE]" {
        return Ok(Payload::Done);
    }
    if event == b"error" {
        return Err(TurnError::Provider(describe_error_bytes(data)));
    }
    serde_json::from_slice(data)
        .map(Payload::Chunk)
        .map_err(|err| TurnError::Malformed(format!("{err} in `{}`", excerpt(data))))
}

/// Accumulates one turn and says what each chunk adds.
#[derive(Debug, Default)]
pub struct TurnState {
    /// Answer text so far.
    content: String,
    /// Thinking text so far.
    reasoning: String,
    /// Tool calls so far.
    calls: ToolCallAccumulator,
    /// The last non-empty finish reason.
    finish_reason: Option<String>,
    /// The last usage report.
    usage: Option<Usage>,
}

impl TurnState {
    /// Applies a chunk, appending what it adds to `out`.
    ///
    /// The common chunk, one content delta, costs one allocation: the event's text.
    pub fn apply(&mut self, chunk: Chunk<'_>, out: &mut Vec<TurnEvent>) -> Result<(), TurnError> {
        if let Some(error) = chunk.error {
            return Err(TurnError::Provider(describe_error(&error)));
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage);
        }
        // Only choice 0 is followed: ragstream never asks for `n > 1`.
        let Some(choice) = chunk.choice else {
            return Ok(());
        };
        if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
            self.finish_reason = Some(reason.into_owned());
        }
        let Some(delta) = choice.delta else {
            self.take_ready(out);
            return Ok(());
        };
        if let Some(text) = delta
            .reasoning_content
            .or(delta.reasoning)
            .filter(|t| !t.is_empty())
        {
            self.reasoning.push_str(&text);
            out.push(TurnEvent::Reasoning(text.into_owned()));
        }
        if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
            self.content.push_str(&text);
            out.push(TurnEvent::Content(text.into_owned()));
        }
        for call in delta.tool_calls.into_iter().flatten() {
            if let Some(started) = self.calls.apply(call) {
                out.push(TurnEvent::ToolCallStarted(started));
            }
        }
        if let Some(started) = delta.function_call.and_then(|f| self.calls.apply_legacy(f)) {
            out.push(TurnEvent::ToolCallStarted(started));
        }
        self.take_ready(out);
        Ok(())
    }

    /// Announces the tool calls whose arguments just became complete.
    fn take_ready(&mut self, out: &mut Vec<TurnEvent>) {
        if self.calls.is_empty() {
            return;
        }
        let mut ready = Vec::new();
        self.calls
            .take_ready(self.finish_reason.is_some(), &mut ready);
        out.extend(ready.into_iter().map(TurnEvent::ToolCallReady));
    }

    /// Ends the turn and validates its tool calls.
    pub fn finish(self) -> Result<Turn, TurnError> {
        let tool_calls = self.calls.finish().map_err(TurnError::ToolCall)?;
        let finish_reason = self.finish_reason.unwrap_or_else(|| {
            if tool_calls.is_empty() {
                "stop"
            } else {
                "tool_calls"
            }
            .to_owned()
        });
        Ok(Turn {
            content: self.content,
            reasoning: (!self.reasoning.is_empty()).then_some(self.reasoning),
            tool_calls,
            finish_reason,
            usage: self.usage,
        })
    }
}

/// The message of a provider error object, whatever its shape.
fn describe_error(error: &serde_json::Value) -> String {
    let message = error
        .get("message")
        .or_else(|| error.get("error").and_then(|e| e.get("message")))
        .and_then(|m| m.as_str())
        .or_else(|| error.as_str());
    match message {
        Some(message) => excerpt(message.as_bytes()),
        None => excerpt(error.to_string().as_bytes()),
    }
}

fn describe_error_bytes(data: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(value) => describe_error(value.get("error").unwrap_or(&value)),
        Err(_) => excerpt(data),
    }
}

/// At most 200 characters of `data`, cut on a character boundary and
/// redacted, for messages: providers echo keys in their error text.
///
/// Redacted before it is cut, so that a key across the cut cannot leave
/// its first half behind.
pub(crate) fn excerpt(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    let text = crate::secret::redact(&text);
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::sse::Decoder;

    /// Replays a recorded stream split at `cut`, returning events and the turn.
    fn replay(stream: &str, cut: usize) -> (Vec<TurnEvent>, Turn) {
        let bytes = stream.as_bytes();
        let mut decoder = Decoder::new();
        let mut state = TurnState::default();
        let mut events = Vec::new();
        for piece in [&bytes[..cut], &bytes[cut..]] {
            decoder.feed(piece);
            while let Some(frame) = decoder.next_frame().unwrap() {
                match parse_frame(frame.event, frame.data).unwrap() {
                    Payload::Chunk(chunk) => state.apply(chunk, &mut events).unwrap(),
                    Payload::Done => {}
                }
            }
        }
        (events, state.finish().unwrap())
    }

    /// Joins consecutive text events so that different splits compare equal.
    fn merged(events: Vec<TurnEvent>) -> Vec<TurnEvent> {
        let mut out: Vec<TurnEvent> = Vec::new();
        for event in events {
            match (out.last_mut(), event) {
                (Some(TurnEvent::Content(a)), TurnEvent::Content(b)) => a.push_str(&b),
                (Some(TurnEvent::Reasoning(a)), TurnEvent::Reasoning(b)) => a.push_str(&b),
                (_, event) => out.push(event),
            }
        }
        out
    }

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Every fixture gives the same events and turn wherever the bytes are cut.
    #[test]
    fn every_fixture_is_split_proof() {
        let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "sse") {
                continue;
            }
            let stream = std::fs::read_to_string(&path).unwrap();
            let (whole_events, whole_turn) = replay(&stream, 0);
            for cut in 1..=stream.len() {
                let (events, turn) = replay(&stream, cut);
                assert_eq!(
                    merged(events),
                    merged(whole_events.clone()),
                    "{path:?} cut at {cut}"
                );
                assert_eq!(turn, whole_turn, "{path:?} cut at {cut}");
            }
            seen += 1;
        }
        assert!(seen >= 6, "expected the recorded fixtures, found {seen}");
    }

    #[test]
    fn direct_answer_streams_content_and_reports_usage() {
        let (events, turn) = replay(&fixture("direct_answer.sse"), 0);
        assert_eq!(
            merged(events),
            [TurnEvent::Content("你好！我是自闭症康复专家。".into())]
        );
        assert_eq!(turn.finish_reason, "stop");
        assert!(turn.tool_calls.is_empty());
        assert_eq!(turn.usage.and_then(|u| u.total_tokens), Some(30));
    }

    #[test]
    fn legacy_function_call_assembles_the_models_question() {
        let (events, turn) = replay(&fixture("legacy_function_call.sse"), 0);
        assert_eq!(
            events,
            [
                TurnEvent::ToolCallStarted(Started {
                    position: 0,
                    name: "autism_expert".into()
                }),
                TurnEvent::ToolCallReady(Ready {
                    position: 0,
                    call: turn.tool_calls[0].clone()
                })
            ]
        );
        let args: serde_json::Value = serde_json::from_str(&turn.tool_calls[0].arguments).unwrap();
        assert_eq!(args["question"], "自闭症孩子自伤怎么办?");
        assert_eq!(turn.finish_reason, "function_call");
    }

    #[test]
    fn parallel_tool_calls_are_announced_and_assembled() {
        let (events, turn) = replay(&fixture("parallel_tool_calls.sse"), 0);
        let started = events
            .iter()
            .filter(|e| matches!(e, TurnEvent::ToolCallStarted(_)))
            .count();
        assert_eq!(started, 2);
        let ready: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                TurnEvent::ToolCallReady(ready) => Some(ready.call.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            ready, turn.tool_calls,
            "both calls start before the turn ends"
        );
        let names: Vec<_> = turn.tool_calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["autism_expert", "autism_expert"]);
        assert_eq!(turn.tool_calls[1].id, "call_b");
        assert!(turn.tool_calls[1].arguments.contains("语言"));
    }

    #[test]
    fn content_then_tool_call_keeps_both() {
        let (events, turn) = replay(&fixture("content_then_tool.sse"), 0);
        assert!(matches!(&events[0], TurnEvent::Content(t) if t.starts_with("让我")));
        assert_eq!(turn.tool_calls.len(), 1);
        assert_eq!(
            turn.finish_reason, "stop",
            "the provider's own reason is kept"
        );
    }

    #[test]
    fn reasoning_is_separate_from_the_answer() {
        let (events, turn) = replay(&fixture("reasoning_then_answer.sse"), 0);
        let events = merged(events);
        assert!(matches!(&events[0], TurnEvent::Reasoning(t) if t.contains("思考")));
        assert_eq!(turn.content, "答案");
        assert!(turn.reasoning.unwrap().contains("思考"));
    }

    #[test]
    fn an_error_object_in_the_stream_is_reported() {
        let chunk: Chunk =
            serde_json::from_str(r#"{"error":{"message":"rate limited","type":"x"}}"#).unwrap();
        let err = TurnState::default()
            .apply(chunk, &mut Vec::new())
            .unwrap_err();
        assert_eq!(err, TurnError::Provider("rate limited".into()));
        let err = parse_frame(b"error", br#"{"error":{"message":"boom"}}"#).unwrap_err();
        assert_eq!(err, TurnError::Provider("boom".into()));
    }

    #[test]
    fn a_malformed_payload_is_an_error_not_a_panic() {
        assert!(matches!(
            parse_frame(b"", b"{\"choices\": [tru"),
            Err(TurnError::Malformed(_))
        ));
        assert!(
            matches!(parse_frame(b"", "ü".repeat(500).as_bytes()), Err(TurnError::Malformed(m)) if m.len() < 600)
        );
    }

    #[test]
    fn choices_other_than_the_first_are_ignored() {
        let chunk: Chunk =
            serde_json::from_str(r#"{"choices":[{"index":1,"delta":{"content":"x"}}]}"#).unwrap();
        let mut out = Vec::new();
        TurnState::default().apply(chunk, &mut out).unwrap();
        assert!(out.is_empty());
    }
}
