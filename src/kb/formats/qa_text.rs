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
//! Markers are case-insensitive and may use a full-width colon; `q:`/`a:` and
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

/// Marker words, lower-case, without the colon.
const QUESTION_WORDS: &[&str] = &["question", "q", "问题", "问"];
/// Marker words, lower-case, without the colon.
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

/// Splits `… answer: …` written on the question's line.
fn split_inline(rest: &str) -> (&str, Option<&str>) {
    let lower = rest.to_lowercase();
    for needle in [" answer:", " answer：", "answer:", "answer："] {
        if let Some(at) = lower.find(needle) {
            // `to_lowercase` keeps byte offsets for ASCII, and the needle is ASCII up to the colon.
            if rest.is_char_boundary(at) {
                let after = at + needle.len();
                return (rest[..at].trim(), Some(rest[after..].trim()));
            }
        }
    }
    (rest, None)
}

/// The marker a line starts with, and the text after its colon.
fn marker(line: &str) -> Option<(Marker, &str)> {
    let trimmed = line.trim_start();
    let colon = trimmed.find([':', '：'])?;
    let word = trimmed[..colon].trim().to_lowercase();
    let colon_len = trimmed[colon..].chars().next().map_or(1, char::len_utf8);
    let rest = trimmed[colon + colon_len..].trim();
    if QUESTION_WORDS.contains(&word.as_str()) {
        Some((Marker::Question, rest))
    } else if ANSWER_WORDS.contains(&word.as_str()) {
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

    #[test]
    fn prose_is_not_mistaken_for_pairs() {
        assert!(!looks_like_qa("第一段。\nquestion: later\n"));
    }
}
