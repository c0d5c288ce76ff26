//! CSV with a header row: `question` and `answer` columns, optional `id`, `source`, `tags`;
//! every other column is kept as metadata. Header names are matched case-insensitively.

use serde_json::Value;

use super::{Origin, QaRow, split_tags};
use crate::kb::Error;
use crate::kb::document::Document;

/// Parses the rows; blank rows are skipped.
pub(super) fn parse(text: &str, origin: &Origin) -> Result<Vec<Document>, Error> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|err| origin.error(1, format!("cannot read the header row: {err}")))?
        .iter()
        .map(|h| h.trim().to_lowercase())
        .collect();
    for required in ["question", "answer"] {
        if !headers.iter().any(|h| h == required) {
            return Err(origin.error(
                1,
                format!(
                    "the header row has no `{required}` column (found: {})",
                    headers.join(", ")
                ),
            ));
        }
    }

    let mut docs = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|err| {
            let line = err.position().map_or(0, |p| line_at(text, p.byte()));
            origin.error(line, format!("malformed CSV row: {err}"))
        })?;
        let line = record.position().map_or(0, |p| line_at(text, p.byte()));
        if record.iter().all(|field| field.trim().is_empty()) {
            continue;
        }
        let mut row = QaRow::default();
        for (header, field) in headers.iter().zip(record.iter()) {
            match header.as_str() {
                "id" => row.id = Some(field.to_owned()),
                "question" => row.question = field.to_owned(),
                "answer" => row.answer = field.to_owned(),
                "source" => row.source = Some(field.to_owned()),
                "tags" => row.tags = split_tags(field),
                _ if field.is_empty() => {}
                _ => {
                    row.metadata
                        .insert(header.clone(), Value::String(field.to_owned()));
                }
            }
        }
        docs.push(row.into_document(origin, line)?);
    }
    Ok(docs)
}

/// The one-based line of a byte offset. The csv crate's own line count skips blank
/// lines, which would point users at the wrong line.
fn line_at(text: &str, byte: u64) -> usize {
    let bytes = text.as_bytes();
    let mut end = usize::try_from(byte).unwrap_or(usize::MAX).min(text.len());
    // The reported offset may sit before the blank lines the reader skipped.
    while end < bytes.len() && matches!(bytes[end], b'\n' | b'\r') {
        end += 1;
    }
    1 + text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn origin() -> Origin {
        Origin::of(Path::new("faq.csv"))
    }

    #[test]
    fn columns_map_to_fields_and_extras_to_metadata() {
        let text = "ID,Question,Answer,Tags,Age\nq1,\"孩子不说话，怎么办？\",\"先做语言评估。\n再干预。\",\"语言;评估\",2-3\n";
        let docs = parse(text, &origin()).unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].id, "q1");
        assert_eq!(docs[0].title, "孩子不说话，怎么办？");
        assert_eq!(docs[0].body, "先做语言评估。\n再干预。");
        assert_eq!(docs[0].tags, ["语言", "评估"]);
        assert_eq!(docs[0].metadata["age"], "2-3");
        assert_eq!(docs[0].source, "faq.csv");
    }

    #[test]
    fn a_missing_column_is_reported_on_line_one() {
        let err = parse("q,a\nx,y\n", &origin()).unwrap_err().to_string();
        assert_eq!(
            err,
            "faq.csv:1: the header row has no `question` column (found: q, a)"
        );
    }

    #[test]
    fn a_bad_row_names_its_line() {
        let text = "question,answer\n问1,答1\n\n问2,\n";
        let err = parse(text, &origin()).unwrap_err().to_string();
        assert_eq!(err, "faq.csv:4: `answer` is empty");
    }

    #[test]
    fn a_row_with_the_wrong_number_of_fields_is_reported() {
        let err = parse("question,answer\n问,答,多余\n", &origin())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("faq.csv:2: malformed CSV row"), "{err}");
    }
}
