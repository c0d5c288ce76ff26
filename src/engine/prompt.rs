//! Text the engine writes for the model: rendered sources and the answer prompt.

use std::fmt::Write;

use crate::kb::Hit;

/// The hits the model is shown, within a budget of `max_chars` characters of
/// titles and answers/texts (`kb.search.max_context_chars`, per search).
///
/// Hits are whole: they are kept best first while they fit, and the first
/// one that does not fit is dropped with every hit after it. One exception:
/// a best hit longer than the whole budget is cut to it (ending in `…`), so a
/// search that found something never shows the model nothing.
pub fn fit(mut hits: Vec<Hit>, max_chars: usize) -> Vec<Hit> {
    let mut used = 0;
    let keep = hits
        .iter()
        .take_while(|hit| {
            used += cost(hit);
            used <= max_chars
        })
        .count();
    if keep == 0 {
        if let Some(best) = hits.first_mut() {
            let room = max_chars.saturating_sub(best.title.chars().count());
            let body = match &mut best.answer {
                Some(answer) => answer,
                None => &mut best.text,
            };
            let cut: String = body.chars().take(room.saturating_sub(1)).collect();
            *body = format!("{cut}…");
        }
        hits.truncate(1);
    } else {
        hits.truncate(keep);
    }
    hits
}

/// What a hit costs of the budget: its title and its answer (or text).
fn cost(hit: &Hit) -> usize {
    hit.title.chars().count() + hit.answer.as_deref().unwrap_or(&hit.text).chars().count()
}

/// Renders hits numbered from `first_number`. Question/answer documents show
/// the matched question and its answer.
pub fn render_hits(hits: &[Hit], first_number: usize) -> String {
    if hits.is_empty() {
        return "No relevant documents were found in the knowledge base.".to_owned();
    }
    let mut out = String::new();
    for (offset, hit) in hits.iter().enumerate() {
        let n = first_number + offset;
        // Writing to a String cannot fail.
        let _ = match &hit.answer {
            Some(answer) => write!(out, "[{n}] Q: {}\nA: {answer}", hit.title),
            None if hit.title.is_empty() => write!(out, "[{n}] {}", hit.text),
            None => write!(out, "[{n}] {}\n{}", hit.title, hit.text),
        };
        let _ = write!(
            out,
            "\n(source: {}, id: {}, score: {:.3})\n\n",
            hit.source, hit.id, hit.score
        );
    }
    out.truncate(out.trim_end().len());
    out
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
        let text = render_hits(&[hit("a", Some("answer: keep calm")), hit("b", None)], 3);
        assert!(
            text.starts_with("[3] Q: question a\nA: answer: keep calm\n(source: kb.jsonl, id: a"),
            "{text}"
        );
        assert!(text.contains("[4] question b\nchunk text"), "{text}");
    }

    #[test]
    fn the_budget_keeps_whole_hits_and_drops_the_one_that_crosses_it() {
        let long = "很".repeat(300);
        let hits = vec![
            hit("a", Some(&long)),
            hit("b", Some(&long)),
            hit("c", Some("short")),
        ];
        assert_eq!(fit(hits.clone(), 700).len(), 3);
        let shown = fit(hits, 500);
        let ids: Vec<_> = shown.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(
            ids,
            ["a"],
            "c would fit, but comes after a hit that did not"
        );
        assert_eq!(shown[0].answer.as_deref(), Some(long.as_str()));
    }

    #[test]
    fn a_best_hit_longer_than_the_budget_is_cut_to_it() {
        let shown = fit(vec![hit("a", Some(&"很".repeat(300))), hit("b", None)], 100);
        assert_eq!(shown.len(), 1);
        let answer = shown[0].answer.as_deref().unwrap();
        assert!(answer.ends_with('…'), "{answer}");
        assert_eq!(cost(&shown[0]), 100);
        assert!(fit(Vec::new(), 100).is_empty());
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
