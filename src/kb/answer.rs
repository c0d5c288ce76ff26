//! What an answer without a model shows for a list of hits: one answer, a few
//! "did you mean" questions, or nothing.
//!
//! Store-neutral and pure, so the engine's retrieval-only path and `kb eval` agree
//! on what a user would have been told.

use super::Hit;

/// What a retrieval-only answer presents.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Choice<'a> {
    /// No hit at or above `min_score`: the no-match message.
    NoMatch,
    /// The best hit is clearly the one: its answer.
    Answer(&'a Hit),
    /// No hit is clearly ahead: the closest questions, best first ("did you mean").
    Suggest(&'a [Hit]),
}

/// Chooses what to present for `hits` (best first, already above `min_score`).
pub fn choose(hits: &[Hit]) -> Choice<'_> {
    match hits.first() {
        None => Choice::NoMatch,
        Some(best) => Choice::Answer(best),
    }
}
