//! Text the engine writes for the model: rendered sources and the answer prompt.

use crate::kb::Hit;
use crate::tools::CallResult;
use crate::tools::Output;

/// Renders numbered hits within a character budget. Question/answer documents
/// show the matched question and its whole answer, so the model never works
/// from a fragment.
pub fn render_hits(hits: &[Hit], first_number: usize, budget: usize) -> String {
    if hits.is_empty() {
        return "No relevant documents were found in the knowledge base.".to_owned();
    }
    let mut out = String::new();
    for (offset, hit) in hits.iter().enumerate() {
        let mut entry = match &hit.answer {
            Some(answer) => format!(
                "[{}] Q: {}\nA: {}",
                first_number + offset,
                hit.title,
                answer
            ),
            None if hit.title.is_empty() => format!("[{}] {}", first_number + offset, hit.text),
            None => format!("[{}] {}\n{}", first_number + offset, hit.title, hit.text),
        };
        entry.push_str(&format!(
            "\n(source: {}, id: {}, score: {:.3})\n\n",
            hit.source, hit.id, hit.score
        ));
        let used = out.chars().count();
        if used > 0 && used + entry.chars().count() > budget {
            break;
        }
        out.push_str(&entry);
    }
    out.truncate(out.trim_end().len());
    out
}

/// The text a tool result shows the model.
pub fn render_result(result: &CallResult, first_number: usize, budget: usize) -> String {
    match &result.output {
        Ok(Output::Text(text)) => text.clone(),
        Ok(Output::Hits(hits)) => render_hits(hits, first_number, budget),
        Err(err) => format!("error: {err}"),
    }
}

/// Fills `{question}` and `{background}` of the answer template.
pub fn fill_template(template: &str, question: &str, background: &str) -> String {
    template
        .replace("{question}", question)
        .replace("{background}", background)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: &str, answer: Option<&str>) -> Hit {
        Hit {
            id: id.into(),
            title: format!("question {id}"),
            answer: answer.map(Into::into),
            text: "chunk text".into(),
            source: "kb.jsonl".into(),
            score: 0.5,
        }
    }

    #[test]
    fn qa_hits_show_question_and_whole_answer_numbered() {
        let text = render_hits(
            &[hit("a", Some("answer: keep calm")), hit("b", None)],
            3,
            10_000,
        );
        assert!(
            text.starts_with("[3] Q: question a\nA: answer: keep calm\n(source: kb.jsonl, id: a"),
            "{text}"
        );
        assert!(text.contains("[4] question b\nchunk text"), "{text}");
    }

    #[test]
    fn the_budget_keeps_whole_entries_only() {
        let long = "很".repeat(300);
        let text = render_hits(&[hit("a", Some(&long)), hit("b", Some(&long))], 1, 400);
        assert!(text.contains("[1]") && !text.contains("[2]"), "{text}");
    }

    #[test]
    fn the_template_gets_both_slots_and_keeps_literal_braces() {
        let prompt = fill_template(
            "会用{}来表示。问题：{question}，背景：{background}",
            "自伤",
            "安全第一",
        );
        assert_eq!(prompt, "会用{}来表示。问题：自伤，背景：安全第一");
    }
}
