//! JSON lines: one `{"question", "answer", "id"?, "source"?, "tags"?, …}` object per line.

use serde_json::Value;

use super::{Origin, QaRow, split_tags};
use crate::kb::Error;
use crate::kb::document::Document;

/// Parses every non-blank line; other keys are kept as metadata.
pub(super) fn parse(text: &str, origin: &Origin) -> Result<Vec<Document>, Error> {
    let mut docs = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(raw)
            .map_err(|err| origin.error(line, format!("invalid JSON: {err}")))?;
        let Value::Object(map) = value else {
            return Err(origin.error(line, "expected an object {\"question\": …, \"answer\": …}"));
        };
        docs.push(row(map, origin, line)?.into_document(origin, line)?);
    }
    Ok(docs)
}

/// Pulls the known keys out of one object.
fn row(map: serde_json::Map<String, Value>, origin: &Origin, line: usize) -> Result<QaRow, Error> {
    let mut row = QaRow::default();
    for (key, value) in map {
        match key.as_str() {
            "id" => row.id = Some(scalar(&key, value, origin, line)?),
            "question" => row.question = scalar(&key, value, origin, line)?,
            "answer" => row.answer = scalar(&key, value, origin, line)?,
            "source" => row.source = Some(scalar(&key, value, origin, line)?),
            "tags" => row.tags = tags(value, origin, line)?,
            _ => {
                row.metadata.insert(key, value);
            }
        }
    }
    if row.question.is_empty() {
        return Err(origin.error(line, "missing `question`"));
    }
    if row.answer.is_empty() {
        return Err(origin.error(line, "missing `answer`"));
    }
    Ok(row)
}

/// A string or number field as text.
fn scalar(key: &str, value: Value, origin: &Origin, line: usize) -> Result<String, Error> {
    match value {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(origin.error(line, format!("`{key}` must be a string, found {other}"))),
    }
}

/// `tags` as an array of strings or one separated string.
fn tags(value: Value, origin: &Origin, line: usize) -> Result<Vec<String>, Error> {
    match value {
        Value::String(s) => Ok(split_tags(&s)),
        Value::Array(items) => items
            .into_iter()
            .map(|item| scalar("tags", item, origin, line))
            .collect(),
        Value::Null => Ok(Vec::new()),
        other => Err(origin.error(
            line,
            format!("`tags` must be a list of strings, found {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kb::document::Kind;
    use std::path::Path;

    fn origin() -> Origin {
        Origin::of(Path::new("kb/faq.jsonl"))
    }

    #[test]
    fn rows_keep_id_source_tags_and_extra_keys() {
        let text = r#"{"id":"sleep-1","question":"孩子睡不着？","answer":"固定作息。","source":"指南","tags":["睡眠"],"age":"3-6"}

{"id":7,"question":"挑食？","answer":"逐步加新食物。","tags":"饮食,感觉"}
"#;
        let docs = parse(text, &origin()).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].id, "sleep-1");
        assert_eq!(docs[0].kind, Kind::Qa);
        assert_eq!(docs[0].title, "孩子睡不着？");
        assert_eq!(docs[0].body, "固定作息。");
        assert_eq!(docs[0].source, "指南");
        assert_eq!(docs[0].tags, ["睡眠"]);
        assert_eq!(docs[0].metadata["age"], "3-6");
        assert_eq!(docs[1].id, "7");
        assert_eq!(docs[1].line, 3);
        assert_eq!(docs[1].source, "faq.jsonl");
        assert_eq!(docs[1].tags, ["饮食", "感觉"]);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let text = "{\"question\":\"q\",\"answer\":\"a\"}\n{\"question\":\"q2\"}\n";
        let err = parse(text, &origin()).unwrap_err().to_string();
        assert_eq!(err, "kb/faq.jsonl:2: missing `answer`");

        let err = parse(
            "{\"question\":\"q\",\"answer\":\"a\"}\n\n{oops\n",
            &origin(),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("kb/faq.jsonl:3: invalid JSON"),
            "{err}"
        );
    }
}
