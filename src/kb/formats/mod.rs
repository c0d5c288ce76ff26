//! Reads input files into [`Document`]s, choosing the format by extension.
//!
//! | extension             | format                                                   |
//! |-----------------------|----------------------------------------------------------|
//! | `.jsonl`, `.ndjson`   | one `{"question", "answer", …}` object per line          |
//! | `.csv`                | a header row with `question` and `answer` columns        |
//! | `.md`, `.markdown`    | chunked along headings and paragraphs                    |
//! | `.txt`, `.text`       | `question: … answer: …` pairs if it starts so, else prose |
//!
//! Every error names the file and the one-based line to fix.

mod csv;
mod jsonl;
mod qa_text;

use crate::kb::ImportError;
use std::path::Path;

use serde_json::{Map, Value};

use super::Error;
use super::chunk;
use super::config::ChunkConfig;
use super::document::{Document, Kind};

/// The formats the importer understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON lines of question/answer pairs.
    Jsonl,
    /// CSV of question/answer pairs.
    Csv,
    /// Markdown prose.
    Markdown,
    /// Plain text: prose, or `question: … answer: …` pairs.
    Text,
}

impl Format {
    /// The format for a file name, or `None` for files the importer skips.
    pub fn of(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "jsonl" | "ndjson" => Some(Self::Jsonl),
            "csv" => Some(Self::Csv),
            "md" | "markdown" => Some(Self::Markdown),
            "txt" | "text" => Some(Self::Text),
            _ => None,
        }
    }
}

/// Where the documents of one file come from: names used in ids, citations and errors.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The path as shown in errors and stored for `--replace`.
    pub path: String,
    /// The file name, the default citation.
    pub file_name: String,
    /// The file name without extension, the prefix of derived ids.
    pub stem: String,
}

impl Origin {
    /// Names for `path`.
    pub fn of(path: &Path) -> Self {
        let name = |p: Option<&std::ffi::OsStr>| {
            p.map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        Self {
            path: path.display().to_string(),
            file_name: name(path.file_name()),
            stem: name(path.file_stem()),
        }
    }

    /// A parse error at `line` of this file.
    pub fn error(&self, line: usize, message: impl Into<String>) -> Error {
        Error::Import(ImportError::Parse {
            path: self.path.clone(),
            line,
            message: message.into(),
        })
    }
}

/// Reads and parses one file.
pub fn read(path: &Path, cfg: ChunkConfig) -> Result<Vec<Document>, Error> {
    let origin = Origin::of(path);
    let format = Format::of(path).ok_or_else(|| {
        origin.error(
            1,
            "unsupported file type; use .jsonl, .csv, .md or .txt".to_owned(),
        )
    })?;
    let bytes = std::fs::read(path).map_err(|source| {
        Error::Import(ImportError::Io {
            path: origin.path.clone(),
            source,
        })
    })?;
    let text = String::from_utf8(bytes).map_err(|err| {
        let line = 1 + err.as_bytes()[..err.utf8_error().valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        origin.error(
            line,
            "the file is not UTF-8; convert it (e.g. `iconv -f GBK -t UTF-8`)",
        )
    })?;
    parse(&text, format, &origin, cfg)
}

/// Parses `text` in `format`.
pub fn parse(
    text: &str,
    format: Format,
    origin: &Origin,
    cfg: ChunkConfig,
) -> Result<Vec<Document>, Error> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match format {
        Format::Jsonl => jsonl::parse(text, origin),
        Format::Csv => csv::parse(text, origin),
        Format::Markdown => Ok(passages(chunk::markdown(text, cfg), origin)),
        Format::Text if qa_text::looks_like_qa(text) => qa_text::parse(text, origin),
        Format::Text => Ok(passages(chunk::plain(text, cfg), origin)),
    }
}

/// Turns chunks into passage documents.
fn passages(chunks: Vec<chunk::Chunk>, origin: &Origin) -> Vec<Document> {
    chunks
        .into_iter()
        .map(|c| {
            Document::new(
                None,
                Kind::Passage,
                c.title,
                c.text,
                origin.file_name.clone(),
                &origin.path,
                c.line,
                &origin.stem,
            )
        })
        .collect()
}

/// The fields every question/answer row may carry, already pulled out of the row.
#[derive(Debug, Default)]
struct QaRow {
    /// `id`, if given.
    id: Option<String>,
    /// `question`.
    question: String,
    /// `answer`.
    answer: String,
    /// `source`, if given.
    source: Option<String>,
    /// `tags`.
    tags: Vec<String>,
    /// Every other column or key.
    metadata: Map<String, Value>,
}

impl QaRow {
    /// Validates the row and builds its document.
    fn into_document(self, origin: &Origin, line: usize) -> Result<Document, Error> {
        let question = self.question.trim().to_owned();
        let answer = self.answer.trim().to_owned();
        if question.is_empty() {
            return Err(origin.error(line, "`question` is empty"));
        }
        if answer.is_empty() {
            return Err(origin.error(line, "`answer` is empty"));
        }
        let id = self
            .id
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty());
        let mut doc = Document::new(
            id,
            Kind::Qa,
            question,
            answer,
            self.source
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| origin.file_name.clone()),
            &origin.path,
            line,
            &origin.stem,
        );
        doc.tags = self.tags;
        doc.metadata = self.metadata;
        Ok(doc)
    }
}

/// Splits a tag list written as one string: `a, b；c|d`.
fn split_tags(raw: &str) -> Vec<String> {
    raw.split([',', '，', ';', '；', '|', '、'])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin::of(Path::new("docs/guide.md"))
    }

    #[test]
    fn markdown_chunks_cite_the_file_name_and_keep_the_path_as_origin() {
        let docs = parse(
            "# 标题\n\n正文。\n",
            Format::Markdown,
            &origin(),
            ChunkConfig::default(),
        )
        .unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].kind, Kind::Passage);
        assert_eq!(docs[0].title, "标题");
        assert_eq!(docs[0].source, "guide.md");
        assert_eq!(docs[0].origin, "docs/guide.md");
        assert!(docs[0].id.starts_with("guide-"));
    }

    #[test]
    fn tags_split_on_western_and_chinese_separators() {
        assert_eq!(
            split_tags("睡眠, 饮食；如厕|情绪、社交"),
            ["睡眠", "饮食", "如厕", "情绪", "社交"]
        );
    }

    #[test]
    fn non_utf8_files_are_rejected_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gbk.txt");
        std::fs::write(&path, b"ok\nbad \xff\n").unwrap();
        let err = read(&path, ChunkConfig::default()).unwrap_err().to_string();
        assert!(err.contains("gbk.txt:2:") && err.contains("UTF-8"), "{err}");
    }
}
