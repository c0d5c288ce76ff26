//! Why ragstream frames SSE with its own decoder: the same recorded stream,
//! split the way TCP splits it, through `llm::sse::Decoder` and through the
//! `eventsource-stream` crate. Both must yield the same events; the figure is
//! the time per event.
//!
//! Run: `cargo bench --bench sse_decoders`

use std::time::Instant;

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use ragstream::llm::sse::Decoder;

/// A realistic stream: `n` content chunks of an OpenAI-style completion.
fn recorded_stream(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let text = [
            "孩子",
            "自伤时，",
            "先保证安全",
            "，再找原因。",
            "\\n第",
            "二步：\\\"记录\\\"",
        ][i % 6];
        out.extend_from_slice(
            format!(
                "data: {{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\
                 \"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}},\
                 \"finish_reason\":null}}]}}\n\n"
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    out
}

/// Cuts the stream into reads of varying size, as a socket delivers it.
fn reads(stream: &[u8]) -> Vec<Bytes> {
    let sizes = [7, 180, 230, 64, 1500, 16384];
    let mut pieces = Vec::new();
    let mut at = 0;
    let mut k = 0;
    while at < stream.len() {
        let end = (at + sizes[k % sizes.len()]).min(stream.len());
        pieces.push(Bytes::copy_from_slice(&stream[at..end]));
        at = end;
        k += 1;
    }
    pieces
}

fn ours(pieces: &[Bytes]) -> (usize, usize) {
    let mut decoder = Decoder::new();
    let (mut events, mut bytes) = (0, 0);
    for piece in pieces {
        decoder.feed(piece);
        while let Ok(Some(frame)) = decoder.next_frame() {
            events += 1;
            bytes += frame.data.len();
        }
    }
    (events, bytes)
}

fn crate_decoder(pieces: &[Bytes]) -> (usize, usize) {
    let input = futures::stream::iter(
        pieces
            .iter()
            .cloned()
            .map(Ok::<_, std::convert::Infallible>),
    );
    futures::executor::block_on(input.eventsource().fold(
        (0, 0),
        |(events, bytes), event| async move {
            let event = event.expect("valid stream");
            (events + 1, bytes + event.data.len())
        },
    ))
}

fn time(name: &str, rounds: usize, pieces: &[Bytes], run: fn(&[Bytes]) -> (usize, usize)) -> f64 {
    let (events, _) = run(pieces);
    let started = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(run(std::hint::black_box(pieces)));
    }
    let per_event = started.elapsed().as_nanos() as f64 / (rounds * events) as f64;
    println!("{name:<22} {per_event:>8.1} ns/event");
    per_event
}

fn main() {
    let stream = recorded_stream(2_000);
    let pieces = reads(&stream);
    let expected = ours(&pieces);
    assert_eq!(
        crate_decoder(&pieces),
        expected,
        "both decoders must yield the same events"
    );
    println!(
        "{} events, {} bytes in {} reads",
        expected.0,
        stream.len(),
        pieces.len()
    );
    let rounds = 200;
    let mine = time("ragstream llm::sse", rounds, &pieces, ours);
    let theirs = time("eventsource-stream 0.2", rounds, &pieces, crate_decoder);
    println!(
        "eventsource-stream takes {:.1}× the time per event",
        theirs / mine
    );
}
