//! What an answer without a model shows for a list of hits: one answer, a few
//! "did you mean" questions, or nothing.
//!
//! Store-neutral and pure, so the engine's retrieval-only path and `kb eval` agree
//! on what a user would have been told.
//!
//! The rule, measured on the sample eval (docs/knowledge-base.md, "Answers without a
//! model"): the best hit is answered only when it scores at least [`ANSWER_MIN`] and
//! the next hit scores at most [`MARGIN`] × the best; otherwise the closest two or
//! [`SUGGESTIONS`] questions are offered instead of a confident wrong answer. A "did you
//! mean" offers a choice, so it needs two questions at least: a single hit too weak to be
//! answered is no match (issue 11: 今天天气怎么样 met one entry, through 今天).

use super::Hit;

/// The least score of a hit answered on its own.
pub const ANSWER_MIN: f32 = 0.25;
/// The most the second hit may score, as a share of the best, for the best to be answered.
pub const MARGIN: f32 = 0.8;
/// How many questions a "did you mean" offers at most.
pub const SUGGESTIONS: usize = 3;

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
    let Some(best) = hits.first() else {
        return Choice::NoMatch;
    };
    let runner_up = hits.get(1).map_or(0.0, |h| h.score);
    if best.score >= ANSWER_MIN && runner_up <= MARGIN * best.score {
        Choice::Answer(best)
    } else if hits.len() >= 2 {
        Choice::Suggest(&hits[..hits.len().min(SUGGESTIONS)])
    } else {
        // One weak hit is no list to choose from, and too weak to be the answer.
        Choice::NoMatch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: &str, score: f32) -> Hit {
        Hit {
            id: id.into(),
            title: id.into(),
            answer: None,
            text: String::new(),
            source: String::new(),
            score,
        }
    }

    #[test]
    fn a_clear_winner_is_answered() {
        let hits = [hit("a", 0.9), hit("b", 0.5)];
        assert_eq!(choose(&hits), Choice::Answer(&hits[0]));
        let alone = [hit("a", 0.3)];
        assert_eq!(choose(&alone), Choice::Answer(&alone[0]));
    }

    #[test]
    fn close_or_weak_hits_become_suggestions() {
        let close = [hit("a", 0.9), hit("b", 0.85), hit("c", 0.8), hit("d", 0.7)];
        assert_eq!(choose(&close), Choice::Suggest(&close[..3]));
        let weak = [hit("a", 0.2), hit("b", 0.05)];
        assert_eq!(choose(&weak), Choice::Suggest(&weak[..]));
        assert_eq!(choose(&[]), Choice::NoMatch);
    }

    // Issue 11: a "did you mean" with a single question is no choice.
    #[test]
    fn a_single_weak_hit_is_no_match_and_a_single_strong_one_the_answer() {
        let weak = [hit("a", 0.167)];
        assert_eq!(choose(&weak), Choice::NoMatch);
        let strong = [hit("a", ANSWER_MIN)];
        assert_eq!(choose(&strong), Choice::Answer(&strong[0]));
    }
}
