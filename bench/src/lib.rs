//! Shared pieces of the ragstream benchmark harness.
//!
//! - [`script`]: the answer the scripted upstream streams, so the load generator can check
//!   that a relay delivered every byte of it.
//! - [`clock`]: one clock (CLOCK_MONOTONIC) that separate processes on this machine share,
//!   so the upstream can stamp "end of tool call" and the load generator "first answer byte".

pub mod script {
    //! The scripted answer: chunk `i` carries `WORDS[i % WORDS.len()]`.

    /// Token-sized pieces of text. They include Chinese, a quote and a newline so that a
    /// relay has to unescape JSON strings as it would for a real model.
    pub const WORDS: [&str; 12] = [
        " The",
        " relay",
        " should",
        " be",
        " invisible",
        ":",
        " 自闭症",
        "孩子",
        " \"fast\"",
        ",",
        "\n",
        " cheap.",
    ];

    /// In the upstream's `mixed` mode, a first call whose last user message holds this text
    /// gets the tool call; any other question gets the answer at once.
    pub const TOOL_HINT: &str = "（查知识库）";

    /// The text of content chunk `i`.
    pub fn word(i: usize) -> &'static str {
        WORDS[i % WORDS.len()]
    }

    /// The whole answer of `chunks` content chunks, as a relay must deliver it.
    pub fn answer(chunks: usize) -> String {
        (0..chunks).map(word).collect()
    }
}

pub mod clock {
    //! CLOCK_MONOTONIC in nanoseconds: comparable across processes on one machine.

    /// Nanoseconds on CLOCK_MONOTONIC (the clock `std::time::Instant` reads on Linux).
    pub fn now_ns() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec and CLOCK_MONOTONIC always exists on Linux.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }
}

#[cfg(test)]
mod tests {
    use super::script;

    #[test]
    fn answer_concatenates_words_in_order() {
        assert_eq!(script::answer(3), " The relay should");
        assert!(script::answer(24).ends_with("\n cheap."));
    }
}
