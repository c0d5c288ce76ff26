//! The `question: … answer: …` text that LangChain-era knowledge bases stored.
//!
//! ```text
//! question: 孩子不看人怎么办？
//! answer: 从孩子感兴趣的活动入手……
//! （回答可以有多行）
//!
//! question: …
//! answer: …
//! ```
//!
//! Markers are case-insensitive (ASCII letters only) and may use a full-width colon; `q:`/`a:` and
//! `问题：`/`答案：` (or `问：`/`答：`) also work. A pair may sit on one line:
//! `question: … answer: …`.

use super::{Origin, QaRow};
use crate::kb::Error;
use crate::kb::document::Document;

/// Which marker a line starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    /// Starts a question.
    Question,
    /// Starts an answer.
    Answer,
}

/// Marker words, lower-case, without the colon; matched ignoring ASCII case only.
const QUESTION_WORDS: &[&str] = &["question", "q", "问题", "问"];
/// Marker words, lower-case, without the colon; matched ignoring ASCII case only.
const ANSWER_WORDS: &[&str] = &["answer", "a", "答案", "答", "回答"];

/// Whether the first non-blank line starts with a question marker.
pub(super) fn looks_like_qa(text: &str) -> bool {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .and_then(marker)
        .is_some_and(|(m, _)| m == Marker::Question)
}

/// Parses the pairs; each answer runs until the next question.
pub(super) fn parse(text: &str, origin: &Origin) -> Result<Vec<Document>, Error> {
    let mut docs = Vec::new();
    // (line of the question, question, answer so far)
    let mut open: Option<(usize, String, Option<String>)> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        match marker(line) {
            Some((Marker::Question, rest)) => {
                if let Some(pair) = open.take() {
                    docs.push(finish(pair, origin)?);
                }
                let (question, answer) = split_inline(rest);
                open = Some((number, question.to_owned(), answer.map(str::to_owned)));
            }
            Some((Marker::Answer, rest)) => match &mut open {
                Some((_, _, answer @ None)) => *answer = Some(rest.to_owned()),
                Some((_, _, Some(_))) => {
                    return Err(origin.error(number, "a second `answer:` for the same question"));
                }
                None => return Err(origin.error(number, "`answer:` before any `question:`")),
            },
            None => match &mut open {
                Some((_, _, Some(answer))) => {
                    answer.push('\n');
                    answer.push_str(line);
                }
                Some((_, question, None)) => {
                    question.push('\n');
                    question.push_str(line);
                }
                None if line.trim().is_empty() => {}
                None => return Err(origin.error(number, "text before the first `question:`")),
            },
        }
    }
    if let Some(pair) = open.take() {
        docs.push(finish(pair, origin)?);
    }
    Ok(docs)
}

/// Builds the document of a finished pair.
fn finish(
    (line, question, answer): (usize, String, Option<String>),
    origin: &Origin,
) -> Result<Document, Error> {
    let answer = answer.ok_or_else(|| origin.error(line, "this `question:` has no `answer:`"))?;
    QaRow {
        question,
        answer,
        ..QaRow::default()
    }
    .into_document(origin, line)
}

/// Splits `… answer: …` written on the question's line, at the first `answer` (in any
/// ASCII case) that does not continue a word and is followed by a colon.
///
/// The match runs on `rest` itself: offsets found in a lower-cased copy would not fit
/// the original, since lower-casing changes the length of some letters (`Ⱥ`, `K`).
fn split_inline(rest: &str) -> (&str, Option<&str>) {
    const WORD: &[u8] = b"answer";
    let bytes = rest.as_bytes();
    for (at, _) in rest.match_indices(['a', 'A']) {
        let Some(word) = bytes.get(at..at + WORD.len()) else {
            break;
        };
        if !word.eq_ignore_ascii_case(WORD)
            || bytes[..at].last().is_some_and(u8::is_ascii_alphanumeric)
        {
            continue;
        }
        // The six bytes matched ASCII letters, so the slice starts on a character.
        if let Some(answer) = rest[at + WORD.len()..].strip_prefix([':', '：']) {
            return (rest[..at].trim(), Some(answer.trim()));
        }
    }
    (rest, None)
}

/// The marker a line starts with, and the text after its colon.
fn marker(line: &str) -> Option<(Marker, &str)> {
    let trimmed = line.trim_start();
    let colon = trimmed.find([':', '：'])?;
    let word = trimmed[..colon].trim();
    let colon_len = trimmed[colon..].chars().next().map_or(1, char::len_utf8);
    let rest = trimmed[colon + colon_len..].trim();
    let one_of = |words: &[&str]| words.iter().any(|w| w.eq_ignore_ascii_case(word));
    if one_of(QUESTION_WORDS) {
        Some((Marker::Question, rest))
    } else if one_of(ANSWER_WORDS) {
        Some((Marker::Answer, rest))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn origin() -> Origin {
        Origin::of(Path::new("legacy.txt"))
    }

    #[test]
    fn pairs_with_multi_line_answers_are_read_whole() {
        let text = "question: 孩子不看人怎么办？\nanswer: 从孩子感兴趣的活动入手。\n多练习共同注意。\n\nQuestion： 挑食怎么办？\nAnswer：逐步引入新食物。\n";
        assert!(looks_like_qa(text));
        let docs = parse(text, &origin()).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].title, "孩子不看人怎么办？");
        assert_eq!(docs[0].body, "从孩子感兴趣的活动入手。\n多练习共同注意。");
        assert_eq!(docs[1].title, "挑食怎么办？");
        assert_eq!(docs[1].line, 5);
    }

    #[test]
    fn a_pair_on_one_line_and_chinese_markers_work() {
        let text = "question: 什么是泛化？ answer: 把学会的技能用到新场景。\n问：如厕训练何时开始？\n答：看准备信号。\n";
        let docs = parse(text, &origin()).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].title, "什么是泛化？");
        assert_eq!(docs[0].body, "把学会的技能用到新场景。");
        assert_eq!(docs[1].body, "看准备信号。");
    }

    #[test]
    fn a_question_without_answer_is_an_error_at_its_line() {
        let text =
            "question: 一？\nanswer: 答一\n\nquestion: 二？\n\nquestion: 三？\nanswer: 答三\n";
        let err = parse(text, &origin()).unwrap_err().to_string();
        assert_eq!(err, "legacy.txt:4: this `question:` has no `answer:`");
    }

    // Issue 10: offsets found in a lower-cased copy were used to slice the original.
    #[test]
    fn letters_that_grow_when_lower_cased_do_not_panic() {
        let docs = parse("question: ȺȺȺȺȺȺȺȺ answer: x\n", &origin()).unwrap();
        assert_eq!(
            (docs[0].title.as_str(), docs[0].body.as_str()),
            ("ȺȺȺȺȺȺȺȺ", "x")
        );
    }

    #[test]
    fn letters_that_shrink_when_lower_cased_do_not_move_the_split() {
        // The Kelvin sign and `ẞ` are three bytes; their lower-case forms are one and two.
        let text = "question: \u{212A}\u{212A}\u{212A} ANSWER: y\nQuestion：ẞẞ Answer：z\n";
        let docs = parse(text, &origin()).unwrap();
        let pairs: Vec<_> = docs
            .iter()
            .map(|d| (d.title.as_str(), d.body.as_str()))
            .collect();
        assert_eq!(pairs, [("\u{212A}\u{212A}\u{212A}", "y"), ("ẞẞ", "z")]);
    }

    #[test]
    fn only_the_ascii_marker_words_match_in_any_case() {
        // `ſ` case-folds to `s`, but `anſwer:` is not the marker `answer:`.
        let text = "QUESTION: 一？ AnSwEr: 答一\nquestion: is an anſwer: no\nAnswer: yes\n";
        let docs = parse(text, &origin()).unwrap();
        assert_eq!(docs[0].title, "一？");
        assert_eq!(docs[0].body, "答一");
        assert_eq!(docs[1].title, "is an anſwer: no");
        assert_eq!(docs[1].body, "yes");
    }

    #[test]
    fn prose_is_not_mistaken_for_pairs() {
        assert!(!looks_like_qa("第一段。\nquestion: later\n"));
    }
}
