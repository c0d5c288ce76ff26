//! The full-text index: tantivy with the jieba tokenizer, ranking by BM25.
//!
//! The index is derived from SQLite: it stores no text, only the rowid of each
//! document, and its commit payload records the SQLite generation it reflects. When
//! the two differ (a crash between the SQLite commit and the index commit, or an index
//! deleted by hand) the store rebuilds the index from SQLite.

use crate::kb::StoreError;
use std::path::Path;
use std::time::{Duration, Instant};

use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, INDEXED, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term, doc};

use crate::kb::Error;
use crate::kb::segment::Segmenter;

/// Name the tokenizer is registered under.
const TOKENIZER: &str = "jieba";
/// Weight of a match in the title (question or heading) on top of the match in the full text.
const TITLE_BOOST: f32 = 1.5;
/// Indexing memory budget per writer (tantivy needs at least 15 MB per thread).
const WRITER_MEMORY: usize = 64 * 1024 * 1024;

/// Maps a tantivy error to the store error.
fn ft(err: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Store(StoreError::FullText(Box::new(err)))
}

/// The fields of the schema.
#[derive(Debug, Clone, Copy)]
struct Fields {
    /// SQLite rowid (fast, indexed for deletes).
    rowid: Field,
    /// Question or heading.
    title: Field,
    /// Title and body together.
    text: Field,
}

/// A document as the index needs it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// SQLite rowid.
    pub rowid: i64,
    /// Question or heading.
    pub title: String,
    /// Answer or passage.
    pub body: String,
}

/// One full-text match.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    /// SQLite rowid.
    pub rowid: i64,
    /// BM25 divided by the sum of the IDFs of all query words, capped at 1: about 1 when
    /// every query word occurs once in a text of average length, lower for each word
    /// missing (rare words weigh more; words the base never saw weigh the most).
    pub score: f32,
}

/// The tantivy index of the store.
pub struct FullText {
    /// The index.
    index: Index,
    /// A reader that reloads on commits, also those of other processes.
    reader: IndexReader,
    /// Schema fields.
    fields: Fields,
    /// Query-side segmentation, identical to the index side.
    segmenter: Segmenter,
}

impl std::fmt::Debug for FullText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FullText").finish_non_exhaustive()
    }
}

impl FullText {
    /// Opens the index in `dir`, creating it when missing.
    pub fn open(dir: &Path, segmenter: Segmenter) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|source| {
            Error::Store(StoreError::Io {
                path: dir.display().to_string(),
                source,
            })
        })?;
        let mut builder = Schema::builder();
        let rowid = builder.add_u64_field("rowid", NumericOptions::default().set_fast() | INDEXED);
        let text_options = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqs),
        );
        let title = builder.add_text_field("title", text_options.clone());
        let text = builder.add_text_field("text", text_options);
        let schema = builder.build();

        let directory = MmapDirectory::open(dir).map_err(ft)?;
        let index = Index::open_or_create(directory, schema).map_err(|err| {
            Error::store(format!(
                "full-text index in {}: {err}; delete that directory and it will be rebuilt",
                dir.display()
            ))
        })?;
        index
            .tokenizers()
            .register(TOKENIZER, segmenter.tokenizer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()
            .map_err(ft)?;
        Ok(Self {
            index,
            reader,
            fields: Fields { rowid, title, text },
            segmenter,
        })
    }

    /// The SQLite generation the last commit reflected, if any.
    pub fn generation(&self) -> Result<Option<u64>, Error> {
        let metas = self.index.load_metas().map_err(ft)?;
        Ok(metas.payload.and_then(|p| p.parse().ok()))
    }

    /// Number of indexed documents, as the current reader sees them.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Whether the index holds no documents.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the writer lock, waiting up to 30 s for another process to release it.
    fn writer(&self) -> Result<IndexWriter<TantivyDocument>, Error> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.index.writer_with_num_threads(2, 2 * WRITER_MEMORY) {
                Ok(writer) => return Ok(writer),
                Err(tantivy::TantivyError::LockFailure(..)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(err) => return Err(ft(err)),
            }
        }
    }

    /// Removes `deleted`, adds `added`, and commits with `generation` as payload.
    pub fn apply(&self, deleted: &[i64], added: &[Entry], generation: u64) -> Result<(), Error> {
        let writer = self.writer()?;
        for rowid in deleted {
            writer.delete_term(Term::from_field_u64(self.fields.rowid, *rowid as u64));
        }
        self.add_all(&writer, added)?;
        self.commit(writer, generation)
    }

    /// Replaces the whole index with `entries`.
    pub fn rebuild(
        &self,
        entries: impl Iterator<Item = Result<Entry, Error>>,
        generation: u64,
    ) -> Result<(), Error> {
        let writer = self.writer()?;
        writer.delete_all_documents().map_err(ft)?;
        for entry in entries {
            self.add(&writer, &entry?)?;
        }
        self.commit(writer, generation)
    }

    /// Adds entries to the writer.
    fn add_all(
        &self,
        writer: &IndexWriter<TantivyDocument>,
        entries: &[Entry],
    ) -> Result<(), Error> {
        for entry in entries {
            self.add(writer, entry)?;
        }
        Ok(())
    }

    /// Adds one entry.
    fn add(&self, writer: &IndexWriter<TantivyDocument>, entry: &Entry) -> Result<(), Error> {
        let f = self.fields;
        writer
            .add_document(doc!(
                f.rowid => entry.rowid as u64,
                f.title => entry.title.as_str(),
                f.text => format!("{}\n{}", entry.title, entry.body),
            ))
            .map_err(ft)?;
        Ok(())
    }

    /// Commits with the generation as payload, then makes this process see it at once.
    fn commit(
        &self,
        mut writer: IndexWriter<TantivyDocument>,
        generation: u64,
    ) -> Result<(), Error> {
        let mut prepared = writer.prepare_commit().map_err(ft)?;
        prepared.set_payload(&generation.to_string());
        prepared.commit().map_err(ft)?;
        writer.wait_merging_threads().map_err(ft)?;
        self.reader.reload().map_err(ft)
    }

    /// The best `limit` matches of `query`, best first.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<Match>, Error> {
        let terms = self.segmenter.query_terms(query);
        if terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        let total: u64 = searcher
            .segment_readers()
            .iter()
            .map(|s| u64::from(s.max_doc()))
            .sum();
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut idf_sum = 0.0f32;
        for word in &terms {
            let text_term = Term::from_field_text(self.fields.text, word);
            let doc_freq = searcher.doc_freq(&text_term).map_err(ft)?;
            // A word the base has never seen still counts in the denominator: a hit
            // that matches only the common words of a question is a weak hit.
            idf_sum += idf(doc_freq, total);
            if doc_freq == 0 {
                continue;
            }
            let title_term = Term::from_field_text(self.fields.title, word);
            clauses.push((
                Occur::Should,
                Box::new(TermQuery::new(text_term, IndexRecordOption::WithFreqs)),
            ));
            clauses.push((
                Occur::Should,
                Box::new(BoostQuery::new(
                    Box::new(TermQuery::new(title_term, IndexRecordOption::WithFreqs)),
                    TITLE_BOOST,
                )),
            ));
        }
        if clauses.is_empty() {
            return Ok(Vec::new());
        }
        let query = BooleanQuery::new(clauses);
        let top = searcher
            .search(&query, &TopDocs::with_limit(limit).order_by_score())
            .map_err(ft)?;
        let mut matches = Vec::with_capacity(top.len());
        for (score, address) in top {
            let column = searcher
                .segment_reader(address.segment_ord)
                .fast_fields()
                .u64("rowid")
                .map_err(ft)?;
            if let Some(rowid) = column.first(address.doc_id) {
                matches.push(Match {
                    rowid: rowid as i64,
                    score: (score / idf_sum).min(1.0),
                });
            }
        }
        Ok(matches)
    }
}

/// tantivy's BM25 IDF: `ln(1 + (N - n + 0.5) / (n + 0.5))`.
fn idf(doc_freq: u64, total: u64) -> f32 {
    let doc_freq = doc_freq.min(total) as f32;
    (1.0 + ((total as f32 - doc_freq) + 0.5) / (doc_freq + 0.5)).ln()
}
