//! What the importers produce and the store keeps: one searchable unit per [`Document`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Whether a document is a question/answer pair or a chunk of prose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `title` is the question, `body` the answer.
    Qa,
    /// `title` is the heading path, `body` the chunk text.
    Passage,
}

impl Kind {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Qa => "qa",
            Self::Passage => "passage",
        }
    }

    /// Parses a stored name; anything unknown reads as a passage.
    pub fn parse(name: &str) -> Self {
        if name == "qa" {
            Self::Qa
        } else {
            Self::Passage
        }
    }
}

/// One searchable unit: a question/answer pair or a chunk of a text file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document {
    /// Stable id: given in the input, or derived from the file name and content hash.
    pub id: String,
    /// Question/answer pair or passage.
    pub kind: Kind,
    /// The question, or the heading path of a passage (may be empty).
    pub title: String,
    /// The answer, or the passage text.
    pub body: String,
    /// What a hit cites: the row's `source`, or the file name.
    pub source: String,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// Extra columns or keys of the input row.
    pub metadata: Map<String, Value>,
    /// The file the document was imported from; `--replace` and `kb delete --origin` key on it.
    pub origin: String,
    /// One-based line in `origin` where the document starts.
    pub line: usize,
    /// Content hash (see [`content_hash`]); re-importing the same content is a no-op.
    pub hash: String,
}

impl Document {
    /// Builds a document, deriving the hash and, when `id` is `None`, the id.
    #[expect(
        clippy::too_many_arguments,
        reason = "a plain constructor for the importers"
    )]
    pub fn new(
        id: Option<String>,
        kind: Kind,
        title: String,
        body: String,
        source: String,
        origin: &str,
        line: usize,
        stem: &str,
    ) -> Self {
        let hash = content_hash(kind, &title, &body);
        let id = id.unwrap_or_else(|| format!("{stem}-{}", &hash[..12]));
        Self {
            id,
            kind,
            title,
            body,
            source,
            tags: Vec::new(),
            metadata: Map::new(),
            origin: origin.to_owned(),
            line,
            hash,
        }
    }

    /// The text sent to the embeddings API: question and answer, or heading and passage.
    pub fn embedding_text(&self) -> String {
        if self.title.is_empty() {
            self.body.clone()
        } else {
            format!("{}\n{}", self.title, self.body)
        }
    }
}

/// Hex BLAKE3 of the kind, title and body, with whitespace runs collapsed so that
/// re-wrapped lines or CRLF endings do not count as new content.
pub fn content_hash(kind: Kind, title: &str, body: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(kind.as_str().as_bytes());
    for part in [title, body] {
        hasher.update(b"\0");
        for (i, word) in part.split_whitespace().enumerate() {
            if i > 0 {
                hasher.update(b" ");
            }
            hasher.update(word.as_bytes());
        }
    }
    hasher.finalize().to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_ignores_whitespace_layout_but_not_words() {
        let a = content_hash(Kind::Qa, "问题", "第一行\n第二行");
        assert_eq!(a, content_hash(Kind::Qa, " 问题 ", "第一行\r\n  第二行\n"));
        assert_ne!(a, content_hash(Kind::Qa, "问题", "第一行 第三行"));
        assert_ne!(a, content_hash(Kind::Passage, "问题", "第一行\n第二行"));
    }

    #[test]
    fn a_missing_id_is_derived_from_the_file_name_and_content() {
        let doc = Document::new(
            None,
            Kind::Qa,
            "q".into(),
            "a".into(),
            "f".into(),
            "f",
            1,
            "faq",
        );
        assert!(
            doc.id.starts_with("faq-") && doc.id.len() == 16,
            "{}",
            doc.id
        );
        let again = Document::new(
            None,
            Kind::Qa,
            "q".into(),
            "a".into(),
            "f".into(),
            "g",
            9,
            "faq",
        );
        assert_eq!(doc.id, again.id);
    }
}
