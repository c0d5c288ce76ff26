//! The relay path's allocations, counted by a global allocator: the common
//! chunk (one content delta) parses without allocating, and applying it costs
//! the one allocation of the event's text.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ragstream::llm::TurnEvent;
use ragstream::llm::turn::{Payload, TurnState, parse_frame};

/// Counts the allocations of the current thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// A content chunk as OpenAI sends it.
fn chunk(text: &str) -> Vec<u8> {
    format!(
        r#"{{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"fp","choices":[{{"index":0,"delta":{{"content":"{text}"}},"logprobs":null,"finish_reason":null}}]}}"#
    )
    .into_bytes()
}

#[test]
fn a_content_chunk_parses_without_allocating() {
    let data = chunk("孩子的语言发育");
    let before = allocations();
    for _ in 0..100 {
        let payload = parse_frame(b"", &data).unwrap();
        assert!(matches!(payload, Payload::Chunk(_)));
    }
    assert_eq!(allocations() - before, 0);

    // Escapes must be decoded: serde_json's scratch buffer (allocated, then
    // grown), then the owned text the event needs anyway.
    let escaped = chunk(r#"第一行\n\"引号\""#);
    let before = allocations();
    let payload = parse_frame(b"", &escaped).unwrap();
    assert!(allocations() - before <= 3, "{}", allocations() - before);
    drop(payload);
}

#[test]
fn applying_a_content_chunk_allocates_only_the_events_text() {
    let data = chunk("孩子的语言发育");
    let mut state = TurnState::default();
    let mut events = Vec::with_capacity(4);
    let before = allocations();
    for _ in 0..1000 {
        let Payload::Chunk(chunk) = parse_frame(b"", &data).unwrap() else {
            unreachable!()
        };
        state.apply(chunk, &mut events).unwrap();
        assert!(matches!(events.pop(), Some(TurnEvent::Content(_))));
    }
    let spent = allocations() - before;
    // 1,000 event texts, plus the turn's own text growing by doubling.
    assert!(
        (1000..1000 + 20).contains(&spent),
        "{spent} allocations for 1,000 chunks"
    );
}
