//! A row's `metadata` and ragstream's document fields, both ways.
//!
//! ragstream writes LangChain's layout: `content` is the embedded text (question and
//! answer, or heading and passage), `metadata` holds the document's own keys plus
//! `source` and `title`, and ragstream's bookkeeping under one key, [`KEY`]:
//! `{"id", "hash", "origin", "line", "kind", "tags"}`. Rows without that key were
//! written by someone else (LangChain); they are searched but never changed.

use serde_json::{Map, Value, json};

use crate::kb::DetailedHit;
use crate::kb::document::{Document, Kind};
use crate::kb::fusion::{Candidate, Shown};

/// The metadata key holding ragstream's own fields.
pub const KEY: &str = "ragstream";

/// The condition selecting ragstream's rows whose document id is in the text array
/// `param` (e.g. `"$1"`). It repeats the predicate of the partial index
/// `<table>_ragstream_id` (`metadata ? 'ragstream'`) so that the planner can use it.
pub fn with_ids(param: &str) -> String {
    format!("metadata ? '{KEY}' AND metadata->'{KEY}'->>'id' = ANY({param})")
}

/// The `metadata` ragstream writes for `doc`.
pub fn metadata(doc: &Document) -> Value {
    let mut meta: Map<String, Value> = doc.metadata.clone();
    meta.insert("source".into(), Value::String(doc.source.clone()));
    meta.insert("title".into(), Value::String(doc.title.clone()));
    meta.insert(
        KEY.into(),
        json!({
            "id": doc.id,
            "hash": doc.hash,
            "origin": doc.origin,
            "line": doc.line,
            "kind": doc.kind.as_str(),
            "tags": doc.tags,
        }),
    );
    Value::Object(meta)
}

/// A string field of the metadata, or "".
fn text(meta: &Value, key: &str) -> String {
    match meta.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The fields a hit or a listing shows, for any row.
#[derive(Debug, Clone, PartialEq)]
pub struct Fields {
    /// ragstream's id, or the row's `id` as text for foreign rows.
    pub id: String,
    /// Question/answer pair or passage (foreign rows are passages).
    pub kind: Kind,
    /// `metadata.title`, or "".
    pub title: String,
    /// The answer or passage: `content` without the title line ragstream put in front.
    pub body: String,
    /// `metadata.source`, or "".
    pub source: String,
    /// Imported file ("" for foreign rows).
    pub origin: String,
    /// Line in the imported file (0 for foreign rows).
    pub line: usize,
    /// Tags.
    pub tags: Vec<String>,
}

/// Reads a row's fields from its `id` (as text), `content` and `metadata`.
pub fn fields(row_id: String, content: String, meta: &Value) -> Fields {
    let title = text(meta, "title");
    let source = text(meta, "source");
    let own = meta.get(KEY).filter(|v| v.is_object());
    let Some(own) = own else {
        return Fields {
            id: row_id,
            kind: Kind::Passage,
            title,
            body: content,
            source,
            origin: String::new(),
            line: 0,
            tags: Vec::new(),
        };
    };
    let body = match content.strip_prefix(title.as_str()) {
        Some(rest) if !title.is_empty() => rest.strip_prefix('\n').unwrap_or(rest).to_owned(),
        _ => content,
    };
    let tags = own
        .get("tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Fields {
        id: Some(text(own, "id"))
            .filter(|s| !s.is_empty())
            .unwrap_or(row_id),
        kind: Kind::parse(&text(own, "kind")),
        title,
        body,
        source,
        origin: text(own, "origin"),
        line: own
            .get("line")
            .and_then(Value::as_u64)
            .and_then(|l| usize::try_from(l).ok())
            .unwrap_or(0),
        tags,
    }
}

/// A hit from a row's fields and its fused candidate ([`crate::kb::fusion`]) at `rank`
/// (from 1); the score has the meaning of [`crate::kb::score`], as in the embedded store.
pub fn hit(f: Fields, c: &Candidate<String>, rank: usize, best_rrf: f32) -> DetailedHit {
    let shown = Shown {
        id: f.id,
        kind: f.kind,
        title: f.title,
        body: f.body,
        source: f.source,
        tags: f.tags,
    };
    c.detailed(shown, rank, best_rrf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qa() -> Document {
        let mut doc = Document::new(
            Some("q1".into()),
            Kind::Qa,
            "什么是自闭症？".into(),
            "一种发育障碍。".into(),
            "手册".into(),
            "/kb/a.jsonl",
            3,
            "a",
        );
        doc.tags = vec!["基础".into()];
        doc.metadata.insert("lang".into(), json!("zh"));
        doc
    }

    #[test]
    fn a_written_row_reads_back_as_the_document() {
        let doc = qa();
        let f = fields("17".into(), doc.embedding_text(), &metadata(&doc));
        assert_eq!(f.id, "q1");
        assert_eq!(f.kind, Kind::Qa);
        assert_eq!(f.title, doc.title);
        assert_eq!(f.body, doc.body);
        assert_eq!(f.source, "手册");
        assert_eq!((f.origin.as_str(), f.line), ("/kb/a.jsonl", 3));
        assert_eq!(f.tags, ["基础"]);
    }

    #[test]
    fn the_documents_own_keys_sit_beside_source_and_title_for_langchain() {
        let meta = metadata(&qa());
        assert_eq!(meta["lang"], "zh");
        assert_eq!(meta["source"], "手册");
        assert_eq!(meta["title"], "什么是自闭症？");
        assert_eq!(meta[KEY]["hash"], qa().hash);
    }

    #[test]
    fn a_foreign_row_is_a_passage_with_its_row_id() {
        let f = fields("42".into(), "text".into(), &json!({"source": "blog"}));
        assert_eq!(
            (f.id.as_str(), f.kind, f.body.as_str()),
            ("42", Kind::Passage, "text")
        );
        assert_eq!(f.source, "blog");
    }

    #[test]
    fn a_hit_carries_the_fused_ranks_and_the_shared_score() {
        let fused = crate::kb::fusion::fuse(
            [("7".to_owned(), 0.5)],
            [("9".to_owned(), 0.9), ("7".to_owned(), 0.4)],
            60.0,
            0.0,
        );
        let best = fused[0].rrf;
        let h = hit(
            fields("7".into(), "t".into(), &json!({})),
            &fused[0],
            1,
            best,
        );
        assert_eq!((h.fulltext_rank, h.vector_rank), (Some(1), Some(2)));
        assert_eq!(h.vector_score, Some(0.4));
        // The better evidence (full text 0.5 over cosine 0.4), at the best fused rank.
        assert!((h.hit.score - 0.5).abs() < 1e-6, "{}", h.hit.score);
        let second = hit(
            fields("9".into(), "t".into(), &json!({})),
            &fused[1],
            2,
            best,
        );
        assert!(second.hit.score < 0.9 && second.hit.score > 0.0);
    }
}
