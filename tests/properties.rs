//! Property tests of the byte-level layers: framing and tool-call assembly
//! give the same result however the network splits the bytes, and garbage
//! never panics.

use proptest::prelude::*;
use ragstream::llm::assemble::{ToolCall, ToolCallAccumulator};
use ragstream::llm::sse::Decoder;
use ragstream::llm::turn::{Payload, TurnState, parse_frame};
use ragstream::llm::wire::{FunctionDelta, ToolCallDelta};

/// An event as the decoder should report it.
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    event: String,
    data: String,
}

/// SSE line text: no CR or LF inside a line.
fn line_text() -> impl Strategy<Value = String> {
    "[^\r\n]{0,24}"
}

fn expected_event() -> impl Strategy<Value = Expected> {
    (
        prop_oneof![Just(String::new()), "[a-z_]{1,8}"],
        prop::collection::vec(line_text(), 1..4),
    )
        .prop_map(|(event, lines)| Expected {
            event,
            data: lines.join("\n"),
        })
}

/// Encodes events with a random line ending per line and comment lines mixed in.
fn encode(events: &[Expected], endings: &[u8], comments: &[bool]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut n = 0;
    let mut end = |out: &mut Vec<u8>| {
        let style = endings[n % endings.len()] % 3;
        n += 1;
        // A CR followed by an LF is one line end by definition: after a lone
        // CR, an LF-only ending would merge with it, so write CRLF instead.
        let after_cr = out.last() == Some(&b'\r');
        out.extend_from_slice(match style {
            0 if !after_cr => b"\n",
            0 | 1 => b"\r\n",
            _ => b"\r",
        });
    };
    for (i, event) in events.iter().enumerate() {
        if comments[i % comments.len()] {
            out.extend_from_slice(b": keep-alive");
            end(&mut out);
        }
        if !event.event.is_empty() {
            out.extend_from_slice(format!("event: {}", event.event).as_bytes());
            end(&mut out);
        }
        for line in event.data.split('\n') {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(line.as_bytes());
            end(&mut out);
        }
        end(&mut out);
    }
    out
}

/// Feeds `bytes` cut at `cuts` and collects frames.
fn decode(bytes: &[u8], cuts: &[usize]) -> Vec<Expected> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    let own = |event: &[u8], data: &[u8]| Expected {
        event: String::from_utf8(event.to_vec()).unwrap(),
        data: String::from_utf8(data.to_vec()).unwrap(),
    };
    for pair in points.windows(2) {
        decoder.feed(&bytes[pair[0]..pair[1]]);
        while let Some(frame) = decoder.next_frame().unwrap() {
            out.push(own(frame.event, frame.data));
        }
    }
    if let Some(frame) = decoder.finish().unwrap() {
        out.push(own(frame.event, frame.data));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_split_of_any_stream_yields_the_same_events(
        events in prop::collection::vec(expected_event(), 0..8),
        endings in prop::collection::vec(any::<u8>(), 1..8),
        comments in prop::collection::vec(any::<bool>(), 1..4),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let bytes = encode(&events, &endings, &comments);
        prop_assert_eq!(decode(&bytes, &cuts), events);
    }

    #[test]
    fn byte_garbage_never_panics_and_bad_payloads_are_errors(
        garbage in prop::collection::vec(any::<u8>(), 0..512),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (garbage.len() + 1)).collect();
        points.extend([0, garbage.len()]);
        points.sort_unstable();
        let mut decoder = Decoder::new();
        let mut state = TurnState::default();
        let mut events = Vec::new();
        for pair in points.windows(2) {
            decoder.feed(&garbage[pair[0]..pair[1]]);
            while let Ok(Some(frame)) = decoder.next_frame() {
                let valid_json = serde_json::from_slice::<serde_json::Value>(frame.data).is_ok();
                match parse_frame(frame.event, frame.data) {
                    Ok(Payload::Chunk(chunk)) => { let _ = state.apply(chunk, &mut events); }
                    Ok(Payload::Done) => {}
                    Err(_) => {}
                }
                if !valid_json && frame.data != b"[DONE]" {
                    prop_assert!(parse_frame(frame.event, frame.data).is_err());
                }
            }
        }
        let _ = decoder.finish();
        let _ = state.finish();
    }

    #[test]
    fn interleaved_split_tool_calls_assemble_to_the_originals(
        calls in prop::collection::vec(("[a-z_]{1,12}", "\\PC{0,40}"), 1..4),
        splits in prop::collection::vec(1usize..6, 1..8),
        order in prop::collection::vec(any::<prop::sample::Index>(), 0..64),
    ) {
        // Each call: a first fragment with id and name, then its arguments in pieces.
        let mut queues: Vec<Vec<ToolCallDelta>> = calls
            .iter()
            .enumerate()
            .map(|(index, (name, args))| {
                let chars: Vec<char> = args.chars().collect();
                let mut fragments = vec![ToolCallDelta {
                    index: Some(index),
                    id: Some(format!("call_{index}")),
                    function: Some(FunctionDelta { name: Some(name.clone()), arguments: Some(String::new()) }),
                }];
                let mut at = 0;
                let mut k = 0;
                while at < chars.len() {
                    let len = splits[k % splits.len()].min(chars.len() - at);
                    fragments.push(ToolCallDelta {
                        index: Some(index),
                        id: None,
                        function: Some(FunctionDelta { name: None, arguments: Some(chars[at..at + len].iter().collect()) }),
                    });
                    at += len;
                    k += 1;
                }
                fragments.reverse();
                fragments
            })
            .collect();
        // Calls start in order (as providers do); their later fragments interleave at random.
        let mut acc = ToolCallAccumulator::default();
        for queue in &mut queues {
            acc.apply(queue.pop().unwrap());
        }
        let mut picks = order.iter();
        while queues.iter().any(|q| !q.is_empty()) {
            let live: Vec<usize> = (0..queues.len()).filter(|&i| !queues[i].is_empty()).collect();
            let pick = picks.next().map_or(live[0], |ix| live[ix.index(live.len())]);
            acc.apply(queues[pick].pop().unwrap());
        }
        let expected: Vec<ToolCall> = calls
            .iter()
            .enumerate()
            .map(|(i, (name, args))| ToolCall {
                id: format!("call_{i}"),
                name: name.clone(),
                arguments: if args.trim().is_empty() { "{}".into() } else { args.clone() },
            })
            .collect();
        prop_assert_eq!(acc.finish().unwrap(), expected);
    }
}
