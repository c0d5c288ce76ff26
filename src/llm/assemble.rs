//! Assembles tool calls from the fragments a streamed turn delivers.
//!
//! Upstreams differ, and this accumulator holds every rule for it:
//! - fragments normally carry an `index`; the `id` and `name` come once, in the
//!   first fragment, and `arguments` arrive in pieces;
//! - some providers omit `index` and repeat the `id` on every fragment, or send
//!   neither after the first one: such fragments belong to the call with that
//!   id, or else to the last call;
//! - some reuse an `index` for a second call; a fragment with a new `id` *and* a
//!   name starts a new call even at a known index;
//! - the name may arrive after the first fragment, and may be repeated;
//! - legacy `function_call` deltas form one call.
//!
//! Nothing is validated per fragment; [`ToolCallAccumulator::finish`] checks the
//! whole calls when the turn ends.
//!
//! A call is *ready* (can be started before the turn ends) once it has a name
//! and its arguments are complete: their JSON object closed, or the turn's
//! `finish_reason` arrived. The next call beginning is no such sign: some
//! providers interleave the fragments of parallel calls (fixture
//! `parallel_tool_calls.sse`), so a call may still be empty when the next begins.
//! [`ToolCallAccumulator::take_ready`] hands each call out once; since more
//! fragments may still follow, the caller compares the ready call with the
//! finished one before using what it started.

use super::wire::{FunctionDelta, ToolCallDelta};

/// A tool call as the model finished it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The provider's id, or `call_{n}` when it sent none.
    pub id: String,
    /// The function name.
    pub name: String,
    /// The argument text; `{}` when the model sent none.
    pub arguments: String,
}

/// A tool call whose name just became known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// Position of the call in the turn.
    pub position: usize,
    /// The function name.
    pub name: String,
}

/// A tool call whose arguments are complete before the turn ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// Position of the call in the turn.
    pub position: usize,
    /// The call as it stands (its id is `call_{n}` when the provider sent none yet).
    pub call: ToolCall,
}

/// Follows the argument text just far enough to see its top-level JSON object close.
#[derive(Debug, Default, Clone, Copy)]
struct JsonScan {
    /// Open braces and brackets outside strings.
    depth: u32,
    /// Inside a string.
    in_string: bool,
    /// The previous character was a backslash inside a string.
    escaped: bool,
    /// The first non-blank character was `{`.
    opened: bool,
    /// The object closed; or the text does not start as an object (never closes).
    settled: bool,
}

impl JsonScan {
    /// Reads more argument text.
    fn feed(&mut self, text: &str) {
        for byte in text.bytes() {
            if self.settled {
                return;
            }
            if !self.opened {
                match byte {
                    b' ' | b'\t' | b'\n' | b'\r' => {}
                    b'{' => {
                        self.opened = true;
                        self.depth = 1;
                    }
                    _ => self.settled = true,
                }
                continue;
            }
            if self.in_string {
                match byte {
                    _ if self.escaped => self.escaped = false,
                    b'\\' => self.escaped = true,
                    b'"' => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match byte {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        self.settled = true;
                    }
                }
                _ => {}
            }
        }
    }

    /// Whether the top-level object closed.
    fn closed(&self) -> bool {
        self.opened && self.settled && self.depth == 0
    }
}

/// A call being assembled.
#[derive(Debug, Default)]
struct PartialCall {
    /// The provider's `index`, when it sent one.
    index: Option<usize>,
    /// The provider's id, when known.
    id: Option<String>,
    /// The name assembled so far.
    name: String,
    /// The argument text assembled so far.
    arguments: String,
    /// How far the argument text is known to be complete.
    scan: JsonScan,
    /// Handed out by [`ToolCallAccumulator::take_ready`].
    ready: bool,
}

impl PartialCall {
    /// The call as it would finish now, as position `n`.
    fn snapshot(&self, n: usize) -> ToolCall {
        ToolCall {
            id: self.id.clone().unwrap_or_else(|| format!("call_{n}")),
            name: self.name.clone(),
            arguments: if self.arguments.trim().is_empty() {
                "{}".to_owned()
            } else {
                self.arguments.clone()
            },
        }
    }
}

/// Collects tool-call fragments in arrival order.
#[derive(Debug, Default)]
pub struct ToolCallAccumulator {
    /// Calls in the order they started.
    calls: Vec<PartialCall>,
}

impl ToolCallAccumulator {
    /// Whether any call fragment arrived.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Applies one modern fragment; returns the call whose name it made known.
    pub fn apply(&mut self, delta: ToolCallDelta<'_>) -> Option<Started> {
        let position = self.position_for(&delta);
        let call = &mut self.calls[position];
        if let Some(id) = delta.id.filter(|id| !id.is_empty()) {
            call.id.get_or_insert_with(|| id.into_owned());
        }
        match delta.function {
            Some(function) => merge(call, function).then(|| Started {
                position,
                name: call.name.clone(),
            }),
            None => None,
        }
    }

    /// Applies one legacy `function_call` fragment.
    pub fn apply_legacy(&mut self, function: FunctionDelta<'_>) -> Option<Started> {
        if self.calls.is_empty() {
            self.calls.push(PartialCall::default());
        }
        let call = &mut self.calls[0];
        merge(call, function).then(|| Started {
            position: 0,
            name: call.name.clone(),
        })
    }

    /// Appends the calls that became ready and were not handed out yet;
    /// `finished`: the turn's `finish_reason` arrived, so every named call is.
    pub fn take_ready(&mut self, finished: bool, out: &mut Vec<Ready>) {
        for (n, call) in self.calls.iter_mut().enumerate() {
            if call.ready || call.name.is_empty() {
                continue;
            }
            if finished || call.scan.closed() {
                call.ready = true;
                out.push(Ready {
                    position: n,
                    call: call.snapshot(n),
                });
            }
        }
    }

    /// Ends the turn: the complete calls, or why one is unusable.
    ///
    /// A call without a name cannot be run or answered, so it fails the turn;
    /// arguments that are not JSON are kept as sent, for the tool layer to
    /// report back to the model.
    pub fn finish(self) -> Result<Vec<ToolCall>, String> {
        self.calls
            .into_iter()
            .enumerate()
            .map(|(n, call)| {
                if call.name.is_empty() {
                    return Err(format!("tool call #{n} arrived without a function name"));
                }
                Ok(call.snapshot(n))
            })
            .collect()
    }

    /// Finds or creates the call a fragment belongs to.
    fn position_for(&mut self, delta: &ToolCallDelta<'_>) -> usize {
        let id = delta.id.as_deref().filter(|id| !id.is_empty());
        let names_function = delta
            .function
            .as_ref()
            .and_then(|f| f.name.as_deref())
            .is_some_and(|n| !n.is_empty());
        let found = match (delta.index, id) {
            (Some(index), id) => self
                .calls
                .iter()
                .rposition(|c| c.index == Some(index))
                .filter(|&p| {
                    let other_id =
                        matches!((id, &self.calls[p].id), (Some(new), Some(old)) if new != old);
                    !(other_id && names_function)
                }),
            (None, Some(id)) => self.calls.iter().position(|c| c.id.as_deref() == Some(id)),
            (None, None) => self.calls.len().checked_sub(1),
        };
        found.unwrap_or_else(|| {
            self.calls.push(PartialCall {
                index: delta.index,
                ..PartialCall::default()
            });
            self.calls.len() - 1
        })
    }
}

/// Merges a name/arguments fragment; true when it made the name known.
fn merge(call: &mut PartialCall, function: FunctionDelta<'_>) -> bool {
    let mut named = false;
    if let Some(name) = function.name.filter(|n| !n.is_empty()) {
        if call.name.is_empty() {
            call.name = name.into_owned();
            named = true;
        } else if call.name != name {
            call.name.push_str(&name);
        }
    }
    if let Some(arguments) = function.arguments {
        call.scan.feed(&arguments);
        call.arguments.push_str(&arguments);
    }
    named
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag<'a>(
        index: Option<usize>,
        id: Option<&'a str>,
        name: Option<&'a str>,
        args: Option<&'a str>,
    ) -> ToolCallDelta<'a> {
        ToolCallDelta {
            index,
            id: id.map(Into::into),
            function: Some(FunctionDelta {
                name: name.map(Into::into),
                arguments: args.map(Into::into),
            }),
        }
    }

    fn assemble(fragments: Vec<ToolCallDelta<'_>>) -> Vec<ToolCall> {
        let mut acc = ToolCallAccumulator::default();
        for f in fragments {
            acc.apply(f);
        }
        acc.finish().unwrap()
    }

    fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    #[test]
    fn arguments_split_over_fragments_are_joined() {
        let calls = assemble(vec![
            frag(Some(0), Some("call_a"), Some("kb"), Some("")),
            frag(Some(0), None, None, Some("{\"question\":")),
            frag(Some(0), None, None, Some("\"自伤\"}")),
        ]);
        assert_eq!(calls, [call("call_a", "kb", "{\"question\":\"自伤\"}")]);
    }

    #[test]
    fn interleaved_parallel_calls_are_kept_apart_by_index() {
        let calls = assemble(vec![
            frag(Some(0), Some("a"), Some("kb"), None),
            frag(Some(1), Some("b"), Some("time"), None),
            frag(Some(0), None, None, Some("{\"q\":1}")),
            frag(Some(1), None, None, Some("{}")),
        ]);
        assert_eq!(
            calls,
            [call("a", "kb", "{\"q\":1}"), call("b", "time", "{}")]
        );
    }

    #[test]
    fn reused_index_with_new_id_and_name_starts_a_second_call() {
        let calls = assemble(vec![
            frag(Some(0), Some("a"), Some("kb"), Some("{}")),
            frag(Some(0), Some("b"), Some("time"), Some("{}")),
        ]);
        assert_eq!(calls, [call("a", "kb", "{}"), call("b", "time", "{}")]);
    }

    #[test]
    fn id_per_delta_without_index_stays_one_call() {
        let calls = assemble(vec![
            frag(None, Some("a"), Some("kb"), Some("{\"q\"")),
            frag(None, Some("a"), None, Some(":2}")),
        ]);
        assert_eq!(calls, [call("a", "kb", "{\"q\":2}")]);
    }

    #[test]
    fn fragments_without_index_or_id_extend_the_last_call() {
        let calls = assemble(vec![
            frag(None, None, Some("kb"), None),
            frag(None, None, None, Some("{}")),
        ]);
        assert_eq!(calls, [call("call_0", "kb", "{}")]);
    }

    #[test]
    fn a_name_arriving_late_or_repeated_is_taken_once() {
        let mut acc = ToolCallAccumulator::default();
        assert_eq!(
            acc.apply(frag(Some(0), Some("a"), None, Some("{\"q\":"))),
            None
        );
        let started = acc.apply(frag(Some(0), None, Some("kb"), Some("1}")));
        assert_eq!(
            started,
            Some(Started {
                position: 0,
                name: "kb".into()
            })
        );
        assert_eq!(acc.apply(frag(Some(0), None, Some("kb"), None)), None);
        assert_eq!(acc.finish().unwrap(), [call("a", "kb", "{\"q\":1}")]);
    }

    #[test]
    fn missing_arguments_become_an_empty_object() {
        assert_eq!(
            assemble(vec![frag(Some(0), Some("a"), Some("kb"), None)]),
            [call("a", "kb", "{}")]
        );
    }

    #[test]
    fn a_call_without_a_name_fails_the_turn() {
        let mut acc = ToolCallAccumulator::default();
        acc.apply(frag(Some(0), Some("a"), None, Some("{}")));
        assert!(
            acc.finish()
                .unwrap_err()
                .contains("without a function name")
        );
    }

    fn ready(acc: &mut ToolCallAccumulator, finished: bool) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        acc.take_ready(finished, &mut out);
        out.into_iter()
            .map(|r| (r.position, r.call.arguments))
            .collect()
    }

    #[test]
    fn a_call_is_ready_when_its_json_object_closes_not_before() {
        let mut acc = ToolCallAccumulator::default();
        acc.apply(frag(Some(0), Some("a"), Some("kb"), Some("{\"q\":\"a}")));
        assert_eq!(ready(&mut acc, false), [], "a brace inside a string");
        acc.apply(frag(Some(0), None, None, Some("\\\"{\", \"n\": [1,{}]")));
        assert_eq!(
            ready(&mut acc, false),
            [],
            "nested values closed, not the object"
        );
        acc.apply(frag(Some(0), None, None, Some("}")));
        assert_eq!(
            ready(&mut acc, false),
            [(0, "{\"q\":\"a}\\\"{\", \"n\": [1,{}]}".to_owned())]
        );
        assert_eq!(ready(&mut acc, true), [], "handed out once");
    }

    #[test]
    fn an_unclosed_call_is_ready_only_when_the_turn_finishes() {
        let mut acc = ToolCallAccumulator::default();
        acc.apply(frag(Some(0), Some("a"), Some("time"), None));
        acc.apply(frag(Some(1), Some("b"), Some("kb"), Some("{\"q\":")));
        assert_eq!(
            ready(&mut acc, false),
            [],
            "interleaving providers may still fill call 0"
        );
        assert_eq!(
            ready(&mut acc, true),
            [(0, "{}".to_owned()), (1, "{\"q\":".to_owned())]
        );
    }

    #[test]
    fn a_call_is_not_ready_before_its_name_arrives() {
        let mut acc = ToolCallAccumulator::default();
        acc.apply(frag(Some(0), Some("a"), None, Some("{}")));
        assert_eq!(ready(&mut acc, false), []);
        acc.apply(frag(Some(0), None, Some("kb"), None));
        assert_eq!(ready(&mut acc, false), [(0, "{}".to_owned())]);
    }

    #[test]
    fn legacy_function_call_fragments_form_one_call() {
        let mut acc = ToolCallAccumulator::default();
        let fd = |name: Option<&'static str>, args: &'static str| FunctionDelta {
            name: name.map(Into::into),
            arguments: Some(args.into()),
        };
        assert!(acc.apply_legacy(fd(Some("autism_expert"), "")).is_some());
        acc.apply_legacy(fd(None, "{\n  \"question\": \"自闭症"));
        acc.apply_legacy(fd(None, "孩子自伤怎么办?\"\n}"));
        let calls = acc.finish().unwrap();
        assert_eq!(calls[0].name, "autism_expert");
        assert_eq!(calls[0].id, "call_0");
        let args: serde_json::Value = serde_json::from_str(&calls[0].arguments).unwrap();
        assert_eq!(args["question"], "自闭症孩子自伤怎么办?");
    }
}
