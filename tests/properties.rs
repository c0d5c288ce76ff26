//! Property tests of the byte-level layers: framing and tool-call assembly
//! give the same result however the network splits the bytes, and garbage
//! never panics; and of the importers: any text in any format gives documents
//! or a `file:line` error, and chunks cover their text within their limits.
//!
//! Failures are recorded in `properties.proptest-regressions` and replayed first.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use ragstream::kb::chunk::{self, Chunk};
use ragstream::kb::config::ChunkConfig;
use ragstream::kb::document::Kind;
use ragstream::kb::formats::{Format, Origin, parse};
use ragstream::llm::assemble::{ToolCall, ToolCallAccumulator};
use ragstream::llm::sse::Decoder;
use ragstream::llm::turn::{Payload, TurnEvent, TurnState, parse_frame};
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

/// `cases` cases per property; failures are saved to, and replayed from,
/// `properties.proptest-regressions` beside this file.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

// Issue 10: with `failure_persistence: None` the regressions file was never read.
#[test]
fn recorded_failures_are_replayed() {
    let seeds = config(1)
        .failure_persistence
        .expect("failures are persisted")
        .load_persisted_failures2(Some(file!()));
    assert!(
        !seeds.is_empty(),
        "tests/properties.proptest-regressions is not read"
    );
}

proptest! {
    #![proptest_config(config(512))]

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

    /// Valid content frames followed by garbage, split anywhere: the valid answer
    /// always arrives intact and first; a bad payload is an error, never a panic; and
    /// a turn that finishes holds exactly the text its events delivered.
    #[test]
    fn byte_garbage_never_panics_and_bad_payloads_are_errors(
        texts in prop::collection::vec("[a-z自闭症 ]{1,8}", 0..6),
        garbage in prop::collection::vec(any::<u8>(), 0..512),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut bytes = Vec::new();
        for text in &texts {
            let chunk = serde_json::json!({"choices": [{"index": 0, "delta": {"content": text}}]});
            bytes.extend_from_slice(format!("data: {chunk}\n\n").as_bytes());
        }
        bytes.extend_from_slice(&garbage);
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        points.extend([0, bytes.len()]);
        points.sort_unstable();
        let mut decoder = Decoder::new();
        let mut state = TurnState::default();
        let mut events = Vec::new();
        let mut failed = false;
        'feed: for pair in points.windows(2) {
            decoder.feed(&bytes[pair[0]..pair[1]]);
            loop {
                let frame = match decoder.next_frame() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(_) => { failed = true; break 'feed; }
                };
                let valid_json = serde_json::from_slice::<serde_json::Value>(frame.data).is_ok();
                let payload = parse_frame(frame.event, frame.data);
                if !valid_json && frame.data != b"[DONE]" {
                    prop_assert!(payload.is_err());
                }
                match payload {
                    Ok(Payload::Chunk(chunk)) => {
                        if state.apply(chunk, &mut events).is_err() { failed = true; break 'feed; }
                    }
                    Ok(Payload::Done) => {}
                    Err(_) => { failed = true; break 'feed; }
                }
            }
        }
        let delivered: String = events.iter().filter_map(|e| match e {
            TurnEvent::Content(text) => Some(text.as_str()),
            _ => None,
        }).collect();
        prop_assert!(delivered.starts_with(&texts.concat()), "{delivered:?} vs {texts:?}");
        if !failed && decoder.finish().is_ok() {
            if let Ok(turn) = state.finish() {
                prop_assert_eq!(turn.content, delivered);
                let started = events.iter().filter(|e| matches!(e, TurnEvent::ToolCallStarted(_))).count();
                prop_assert_eq!(turn.tool_calls.len(), started);
            }
        }
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
                    id: Some(format!("call_{index}").into()),
                    function: Some(FunctionDelta { name: Some(name.clone().into()), arguments: Some("".into()) }),
                }];
                let mut at = 0;
                let mut k = 0;
                while at < chars.len() {
                    let len = splits[k % splits.len()].min(chars.len() - at);
                    fragments.push(ToolCallDelta {
                        index: Some(index),
                        id: None,
                        function: Some(FunctionDelta { name: None, arguments: Some(chars[at..at + len].iter().collect::<String>().into()) }),
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

/// A line that is likely to mean something to one of the importers, or nothing at all.
fn kb_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[ \t]{0,3}",
        "\\PC{0,30}",
        "#{1,7} ?[a-z自伤 ]{0,12}",
        "```",
        "(question|Question|QUESTION|q|问题|问|answer|A|答|回答) ?[:：] ?[^\r\n]{0,20}",
        "question: [^\r\n]{0,10} ?(answer|ANSWER|Answer)[:：][^\r\n]{0,10}",
        r#"\{ ?"question": ?"[^"\\]{0,8}", ?"answer": ?"[^"\\]{0,8}"(, ?"(id|tags|source|x)": ?("[a-z]{0,3}"|[0-9]|\[\]|null))?\}"#,
        "(question|answer|id|tags|source|x)(,(question|answer|id|tags|source|x)){0,4}",
        "\"?[^\"\r\n]{0,8}\"?(,\"?[^\"\r\n]{0,8}\"?){0,3}",
        "[孩子自伤怎么办。！？!?；; a-zẞȺ\u{212A}]{0,90}",
    ]
}

/// Lines joined with LF or CRLF, sometimes led by a question so that the text reads as pairs.
fn kb_text() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop::collection::vec(kb_line(), 0..16),
        any::<bool>(),
    )
        .prop_map(|(qa, lines, crlf)| {
            let text = lines.join(if crlf { "\r\n" } else { "\n" });
            if qa {
                format!("question: {text}")
            } else {
                text
            }
        })
}

/// The non-whitespace characters of `text`.
fn ink(text: &str) -> Vec<char> {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Whether `needle` appears in `hay` in order (not necessarily adjacent).
fn is_subsequence(needle: &[char], hay: &[char]) -> bool {
    let mut hay = hay.iter();
    needle.iter().all(|c| hay.any(|h| h == c))
}

/// The invariants every chunking keeps; `body` is the text that chunks must cover.
fn check_chunks(
    chunks: &[Chunk],
    body: &str,
    lines: usize,
    cfg: ChunkConfig,
) -> Result<(), TestCaseError> {
    let overlap = cfg.overlap.min(cfg.size / 2);
    for c in chunks {
        let n = c.text.chars().count();
        prop_assert!(
            n >= 1 && n <= cfg.size.max(1),
            "{} chars, size {}: {:?}",
            n,
            cfg.size,
            c.text
        );
        prop_assert!(!c.text.trim().is_empty(), "a blank chunk: {:?}", c);
        prop_assert!(
            (1..=lines).contains(&c.line),
            "line {} of {}",
            c.line,
            lines
        );
    }
    // Coverage: every character of the text is in the chunks, in order; without
    // overlap nothing else is.
    let joined: String = chunks.iter().map(|c| c.text.as_str()).collect();
    if overlap == 0 {
        prop_assert_eq!(ink(&joined), ink(body));
    } else {
        prop_assert!(
            is_subsequence(&ink(body), &ink(&joined)),
            "text lost: {:?}",
            chunks
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_text_in_any_format_gives_documents_or_a_file_and_line_error(
        text in kb_text(),
        size in 1usize..300,
        overlap in 0usize..150,
    ) {
        let lines = text.lines().count().max(1);
        for (path, format) in [
            ("in/kb.jsonl", Format::Jsonl),
            ("in/kb.csv", Format::Csv),
            ("in/kb.txt", Format::Text),
            ("in/kb.md", Format::Markdown),
        ] {
            let origin = Origin::of(Path::new(path));
            match parse(&text, format, &origin, ChunkConfig { size, overlap }) {
                Ok(docs) => {
                    for doc in docs {
                        prop_assert!(!doc.body.trim().is_empty(), "{}: empty body {:?}", path, doc);
                        if doc.kind == Kind::Qa {
                            prop_assert!(!doc.title.trim().is_empty(), "{}: empty question {:?}", path, doc);
                        }
                        prop_assert!((1..=lines).contains(&doc.line), "{}: line {} of {}", path, doc.line, lines);
                        prop_assert_eq!(&doc.origin, path);
                    }
                }
                Err(err) => {
                    let message = err.to_string();
                    let line = message
                        .strip_prefix(&format!("{path}:"))
                        .and_then(|rest| rest.split_once(": "))
                        .and_then(|(line, _)| line.parse::<usize>().ok());
                    prop_assert!(
                        line.is_some_and(|l| (1..=lines).contains(&l)),
                        "not `{}:LINE: …` with LINE in 1..={}: {}", path, lines, message
                    );
                }
            }
        }
    }

    #[test]
    fn chunks_cover_the_text_within_size_and_overlap(
        text in kb_text(),
        size in 1usize..300,
        overlap in 0usize..150,
    ) {
        let cfg = ChunkConfig { size, overlap };
        let lines = text.lines().count().max(1);
        let plain = chunk::plain(&text, cfg);
        check_chunks(&plain, &text, lines, cfg)?;

        // Each chunk after the first repeats the end of the one before, then a blank
        // line: whole sentences of at most `overlap` characters (when that fits the size).
        let overlap = overlap.min(size / 2);
        for pair in plain.windows(2) {
            let (before, after) = (&pair[0].text, &pair[1].text);
            if overlap == 0 || size < overlap + 3 || before.ends_with(char::is_whitespace) {
                continue;
            }
            let repeated = after.split_once("\n\n").map(|(head, _)| head);
            prop_assert!(
                after.char_indices().any(|(i, _)| {
                    let head = &after[..i];
                    i > 0 && after[i..].starts_with("\n\n") && before.ends_with(head) && head.chars().count() <= overlap
                }),
                "no overlap: {:?} then {:?} (head {:?})", before, after, repeated
            );
        }

        // Markdown: the same, with heading lines (outside code fences) moved into titles.
        let markdown = chunk::markdown(&text, cfg);
        let mut fenced = false;
        let body: String = text
            .lines()
            .filter(|line| {
                let t = line.trim();
                if t.starts_with("```") || t.starts_with("~~~") {
                    fenced = !fenced;
                }
                let hashes = t.chars().take_while(|c| *c == '#').count();
                let heading = !fenced && (1..=6).contains(&hashes) && t[hashes..].chars().next().is_none_or(|c| c == ' ');
                !heading
            })
            .collect::<Vec<_>>()
            .join("\n");
        check_chunks(&markdown, &body, lines, cfg)?;
    }
}
