//! The full-text index: tantivy with the jieba tokenizer, ranking by BM25.
//!
//! The index is derived from SQLite: it stores no text, only the rowid of each
//! document, and its commit payload records the SQLite generation it reflects. When
//! the two differ (a crash between the SQLite commit and the index commit, or an index
//! deleted by hand) the store rebuilds the index from SQLite.

use crate::kb::StoreError;
use std::path::Path;
use std::time::{Duration, Instant};

use tantivy::directory::MmapDirectory;
use tantivy::schema::{
    Field, INDEXED, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::{
    DocAddress, DocId, DocSet, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher,
    TantivyDocument, Term, doc,
};

use crate::kb::Error;
use crate::kb::score;
use crate::kb::segment::{CharTokenizer, QueryTerm, Segmenter};

mod topk;

use topk::{Clause, Role};

/// Name the tokenizer is registered under.
const TOKENIZER: &str = "jieba";
/// Name the character tokenizer is registered under.
const CHAR_TOKENIZER: &str = "han_chars";
/// Weight of a match in the title (question or heading) on top of the match in the full text.
const TITLE_BOOST: f32 = 1.5;
/// Weight of a synonym of a query word, relative to the word itself.
const SYNONYM_BOOST: f32 = 0.6;
/// Weight of a built-in related word (Chinese Open Wordnet), relative to the word itself.
const RELATED_BOOST: f32 = 0.3;
/// Weight of a character bigram of a query word.
const BIGRAM_BOOST: f32 = 0.3;
/// Weight of a single character of a query word.
const UNIGRAM_BOOST: f32 = 0.1;
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
    /// Title and body as Han characters and character bigrams.
    chars: Field,
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
    /// The full-text score (0..=1, [`crate::kb::score::ranked`]): the evidence (the
    /// IDF-weighted share of the query's words the document contains, synonyms and
    /// shared characters earning part credit) weighed by its BM25 relative to the best.
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
        let chars = builder.add_text_field(
            "chars",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(CHAR_TOKENIZER)
                    .set_index_option(IndexRecordOption::WithFreqs),
            ),
        );
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
        index.tokenizers().register(CHAR_TOKENIZER, CharTokenizer);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()
            .map_err(ft)?;
        Ok(Self {
            index,
            reader,
            fields: Fields {
                rowid,
                title,
                text,
                chars,
            },
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
        let full = format!("{}\n{}", entry.title, entry.body);
        writer
            .add_document(doc!(
                f.rowid => entry.rowid as u64,
                f.title => entry.title.as_str(),
                f.chars => full.as_str(),
                f.text => full,
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

    /// The best `limit` matches of `query`, best first: the best `limit` by BM25 over the
    /// query's words (title matches weigh more), their synonyms and, weighted least, their
    /// characters, each scored by its evidence weighed by its BM25
    /// ([`crate::kb::score::ranked`]) and ordered by that score.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<Match>, Error> {
        let terms = self.segmenter.analyze(query);
        if terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        let total: u64 = searcher
            .segment_readers()
            .iter()
            .map(|s| u64::from(s.max_doc()))
            .sum();
        let f = self.fields;
        let mut clauses = Clauses::default();
        let mut idfs = Vec::with_capacity(terms.len());
        for term in &terms {
            // A term weighs as much as the concept it stands for is rare: its own
            // documents or, when a synonym is more common, the synonym's (宝宝 weighs as
            // little as 孩子). A word the base has never seen, with no synonym in it,
            // weighs the most: a hit matching only the common words of a question is weak.
            let mut doc_freq = 0;
            for word in std::iter::once(&term.word)
                .chain(&term.synonyms)
                .chain(&term.related)
            {
                let n = searcher
                    .doc_freq(&Term::from_field_text(f.text, word))
                    .map_err(ft)?;
                doc_freq = doc_freq.max(n);
            }
            idfs.push(score::idf(doc_freq, total));
            clauses.add(f.text, &term.word, 1.0, Role::Opens);
            clauses.add(f.title, &term.word, TITLE_BOOST, Role::Opens);
            for synonym in &term.synonyms {
                clauses.add(f.text, synonym, SYNONYM_BOOST, Role::Opens);
                clauses.add(f.title, synonym, SYNONYM_BOOST * TITLE_BOOST, Role::Opens);
            }
            for related in &term.related {
                clauses.add(f.text, related, RELATED_BOOST, Role::Opens);
                clauses.add(f.title, related, RELATED_BOOST * TITLE_BOOST, Role::Opens);
            }
            for bigram in &term.bigrams {
                clauses.add(f.chars, bigram, BIGRAM_BOOST, Role::Opens);
            }
            // A document sharing single characters only has no evidence (no hit): the
            // characters reorder candidates but make none.
            for unigram in &term.unigrams {
                clauses.add(f.chars, unigram, UNIGRAM_BOOST, Role::Adds);
            }
        }
        let top = topk::top_k(&searcher, &clauses.clauses, limit)?;
        let addresses: Vec<DocAddress> = top.iter().map(|(_, a)| *a).collect();
        let credits = self.credits(&searcher, &terms, &addresses)?;
        let best = top.first().map_or(0.0, |(bm25, _)| *bm25);
        let mut matches = Vec::with_capacity(top.len());
        // The rowid column of a segment, opened at its first hit.
        let mut columns = vec![None; searcher.segment_readers().len()];
        for ((bm25, address), credit) in top.into_iter().zip(credits) {
            let column = match &mut columns[address.segment_ord as usize] {
                Some(column) => column,
                slot => slot.insert(
                    searcher
                        .segment_reader(address.segment_ord)
                        .fast_fields()
                        .u64("rowid")
                        .map_err(ft)?,
                ),
            };
            if let Some(rowid) = column.first(address.doc_id) {
                let evidence = score::evidence(idfs.iter().copied().zip(credit));
                matches.push(Match {
                    rowid: rowid as i64,
                    score: score::ranked(evidence, bm25, best),
                });
            }
        }
        // Ordered by the score (evidence weighted by BM25: term frequency and length), so
        // that the order and the scores agree. Stable: ties keep the BM25 order.
        matches.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(matches)
    }

    /// For each hit, the credit it earns for each query term: the word in the title,
    /// else in the body, else a synonym, else a built-in related word, else the share of
    /// the word's bigrams it contains.
    fn credits(
        &self,
        searcher: &Searcher,
        terms: &[QueryTerm],
        hits: &[DocAddress],
    ) -> Result<Vec<Vec<f32>>, Error> {
        let f = self.fields;
        let has = |field: Field, word: &str| -> Result<Vec<bool>, Error> {
            contains(searcher, &Term::from_field_text(field, word), hits)
        };
        let mut out = vec![vec![0.0f32; terms.len()]; hits.len()];
        for (t, term) in terms.iter().enumerate() {
            let exact = has(f.text, &term.word)?;
            let in_title = has(f.title, &term.word)?;
            let mut synonym = vec![false; hits.len()];
            for s in &term.synonyms {
                for (i, found) in has(f.text, s)?.into_iter().enumerate() {
                    synonym[i] |= found;
                }
            }
            let mut related = vec![false; hits.len()];
            for s in &term.related {
                for (i, found) in has(f.text, s)?.into_iter().enumerate() {
                    related[i] |= found;
                }
            }
            let mut bigrams = vec![0usize; hits.len()];
            for b in &term.bigrams {
                for (i, found) in has(f.chars, b)?.into_iter().enumerate() {
                    bigrams[i] += usize::from(found);
                }
            }
            for (i, credit) in out.iter_mut().enumerate() {
                credit[t] = if in_title[i] {
                    score::EXACT
                } else if exact[i] {
                    score::BODY
                } else if synonym[i] {
                    score::SYNONYM
                } else if related[i] {
                    score::RELATED
                } else {
                    score::chars_credit(term.bigrams.len(), bigrams[i])
                };
            }
        }
        Ok(out)
    }
}

/// The should-clauses of a query, each term once.
#[derive(Default)]
struct Clauses {
    /// The clauses so far.
    clauses: Vec<Clause>,
}

impl Clauses {
    /// Adds `word` in `field` with weight `boost`, unless it is there already.
    fn add(&mut self, field: Field, word: &str, boost: f32, role: Role) {
        let term = Term::from_field_text(field, word);
        if self.clauses.iter().any(|c| c.term == term) {
            return;
        }
        self.clauses.push(Clause { term, boost, role });
    }
}

/// Whether each document in `docs` contains `term`, read from the postings.
fn contains(searcher: &Searcher, term: &Term, docs: &[DocAddress]) -> Result<Vec<bool>, Error> {
    let mut out = vec![false; docs.len()];
    for (ord, segment) in searcher.segment_readers().iter().enumerate() {
        let mut wanted: Vec<(DocId, usize)> = docs
            .iter()
            .enumerate()
            .filter(|(_, a)| a.segment_ord as usize == ord)
            .map(|(i, a)| (a.doc_id, i))
            .collect();
        if wanted.is_empty() {
            continue;
        }
        wanted.sort_unstable();
        let index = segment.inverted_index(term.field()).map_err(ft)?;
        let Some(mut postings) = index
            .read_postings(term, IndexRecordOption::Basic)
            .map_err(ft)?
        else {
            continue;
        };
        for (doc, i) in wanted {
            out[i] = postings.doc() == doc || (postings.doc() < doc && postings.seek(doc) == doc);
        }
    }
    Ok(out)
}
