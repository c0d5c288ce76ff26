//! The `ragstream kb …` commands. The top-level CLI embeds [`KbCommand`] and calls [`run`].

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use super::config::KbConfig;
use super::segment::Segmenter;
use super::{KnowledgeBaseAdmin, SearchParams, Selection, eval, import};

/// Where the store lives; overrides `kb.data_dir` of the config.
#[derive(Debug, Clone, Default, Args)]
pub struct DataDir {
    /// Data directory of the embedded store [default: config `kb.data_dir`, else ./data];
    /// ignored, with a warning, when `kb.store = "postgres"`
    #[arg(long = "data", value_name = "DIR")]
    pub data: Option<PathBuf>,
}

/// Knowledge-base commands.
#[derive(Debug, Clone, Subcommand)]
pub enum KbCommand {
    /// Import JSONL/CSV question-answer files, Markdown and text (directories recursively).
    ///
    /// Re-importing unchanged content adds nothing. The whole import is one transaction:
    /// a bad row, a failing embeddings API or Ctrl-C leaves the store as it was.
    Import {
        /// Files or directories to import (.jsonl, .ndjson, .csv, .md, .markdown, .txt)
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        data: DataDir,
        /// Also remove documents of these files that the files no longer contain
        #[arg(long)]
        replace: bool,
        /// Do not draw a progress bar
        #[arg(long)]
        quiet: bool,
    },
    /// List stored documents (id, kind, title, origin).
    List {
        #[command(flatten)]
        data: DataDir,
        /// Only documents imported from this file
        #[arg(long, value_name = "FILE")]
        origin: Option<PathBuf>,
        /// At most this many documents
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Skip this many documents first
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Print JSON lines instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show document counts, files, vector model and index state.
    Stats {
        #[command(flatten)]
        data: DataDir,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Delete documents by id, by imported file, or all of them.
    Delete {
        #[command(flatten)]
        data: DataDir,
        /// Ids of the documents to delete (see `kb list`)
        #[arg(value_name = "ID", required_unless_present_any = ["origin", "all"])]
        ids: Vec<String>,
        /// Delete everything imported from this file
        #[arg(long, value_name = "FILE", conflicts_with_all = ["ids", "all"])]
        origin: Option<PathBuf>,
        /// Delete every document
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
    /// Search like the model's tool does and print ranked hits with their scores.
    Search {
        #[command(flatten)]
        data: DataDir,
        /// The question
        query: String,
        /// Number of hits [default: config `kb.search.top_k`]
        #[arg(long, short = 'k')]
        top_k: Option<usize>,
        /// Minimum score, 0..1 [default: config `kb.search.min_score`]
        #[arg(long)]
        min_score: Option<f32>,
        /// Print JSON with the full-text, vector and fused ranks
        #[arg(long)]
        json: bool,
        /// Also print how the question was read: homophone slips corrected, and the
        /// terms searched with their synonyms and related words (filler dropped)
        #[arg(long, conflicts_with = "json")]
        terms: bool,
    },
    /// Create what the PostgreSQL store needs and is missing: the pgvector extension, the
    /// table (LangChain's layout), an HNSW index and ragstream's hash and id indexes. Never drops
    /// or rewrites anything; the embedded store needs no migration.
    Migrate,
    /// Measure retrieval quality over a JSONL file of `{"question": …, "expected": [ids]}`
    /// (`"expected": []` marks an out-of-domain question that must get no hit):
    /// recall@1, recall@k, MRR, out-of-domain rejection, and what answers without a
    /// model would have shown.
    Eval {
        #[command(flatten)]
        data: DataDir,
        /// The eval file, e.g. examples/kb/autism-eval.jsonl
        file: PathBuf,
        /// Cut-off rank
        #[arg(short, default_value_t = 3)]
        k: usize,
        /// Minimum score, 0..1 [default: config `kb.search.min_score`]
        #[arg(long)]
        min_score: Option<f32>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

impl KbCommand {
    /// The `--data` override of the command.
    fn data(&self) -> Option<&PathBuf> {
        match self {
            Self::Import { data, .. }
            | Self::List { data, .. }
            | Self::Stats { data, .. }
            | Self::Delete { data, .. }
            | Self::Search { data, .. }
            | Self::Eval { data, .. } => data.data.as_ref(),
            Self::Migrate => None,
        }
    }
}

/// Logs a warning when `--data` was given but the documents live in PostgreSQL, where a
/// data directory means nothing: the command goes on against the database.
pub fn warn_if_data_is_ignored(cfg: &KbConfig, dir: &std::path::Path) {
    if cfg.store == super::config::StoreKind::Postgres {
        tracing::warn!(
            data = %dir.display(),
            "--data is ignored: kb.store is \"postgres\", so the documents are in PostgreSQL \
             (kb.postgres.url or DATABASE_URL); drop --data, or set kb.store = \"embedded\" to use the directory"
        );
    }
}

/// Runs a command, printing to stdout.
pub async fn run(cmd: KbCommand, cfg: &KbConfig) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    run_to(cmd, cfg, &mut out).await
}

/// Runs a command, printing to `out` (tests read it back).
pub async fn run_to(cmd: KbCommand, cfg: &KbConfig, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut cfg = cfg.clone();
    if let Some(dir) = cmd.data() {
        warn_if_data_is_ignored(&cfg, dir);
        cfg.data_dir = dir.clone();
    }
    // The table may not exist yet: migrate connects on its own.
    if let KbCommand::Migrate = cmd {
        return migrate_cmd(&cfg, out).await;
    }
    let store = super::connect(&cfg)
        .await
        .with_context(|| match cfg.store {
            super::config::StoreKind::Embedded => format!(
                "cannot open the knowledge base in {}",
                cfg.data_dir.display()
            ),
            super::config::StoreKind::Postgres => format!(
                "cannot open the knowledge base in PostgreSQL ({}, table {})",
                super::store::postgres::pool::target(&cfg.postgres),
                cfg.postgres.table
            ),
        })?;
    match cmd {
        KbCommand::Migrate => migrate_cmd(&cfg, out).await,
        KbCommand::Import {
            paths,
            replace,
            quiet,
            ..
        } => import_cmd(store.as_ref(), &paths, replace, quiet, out).await,
        KbCommand::List {
            origin,
            limit,
            offset,
            json,
            ..
        } => {
            let origin =
                origin.map(|o| std::fs::canonicalize(&o).unwrap_or(o).display().to_string());
            let listed = store.list(origin, limit, offset).await?;
            for doc in listed {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&doc)?)?;
                } else {
                    let vector = if doc.has_vector { "v" } else { "-" };
                    writeln!(
                        out,
                        "{}\t{}\t{vector}\t{}\t{}:{}",
                        doc.id,
                        doc.kind.as_str(),
                        one_line(&doc.title, 40),
                        doc.origin,
                        doc.line
                    )?;
                }
            }
            Ok(())
        }
        KbCommand::Stats { json, .. } => {
            let stats = store.stats().await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&stats)?)?;
                return Ok(());
            }
            writeln!(
                out,
                "documents: {} ({} question/answer pairs, {} passages)",
                stats.documents, stats.qa_pairs, stats.passages
            )?;
            match (&stats.embedding_model, stats.embedding_dim) {
                (Some(model), Some(dim)) => writeln!(
                    out,
                    "vectors: {} of {} ({model}, {dim} dimensions)",
                    stats.with_vectors, stats.documents
                )?,
                _ if stats.with_vectors > 0 => writeln!(
                    out,
                    "vectors: {} of {} stored, but vector search is off (no \
                     kb.embeddings.provider): full-text search only",
                    stats.with_vectors, stats.documents
                )?,
                _ => writeln!(out, "vectors: none (full-text search only)")?,
            }
            writeln!(
                out,
                "full-text index: {} documents",
                stats.fulltext_documents
            )?;
            for (origin, count) in &stats.origins {
                writeln!(out, "  {count:>6}  {origin}")?;
            }
            Ok(())
        }
        KbCommand::Delete {
            ids, origin, all, ..
        } => {
            let selection = match (all, origin) {
                (true, _) => Selection::All,
                (false, Some(o)) => {
                    Selection::Origin(std::fs::canonicalize(&o).unwrap_or(o).display().to_string())
                }
                (false, None) => Selection::Ids(ids),
            };
            let removed = store.delete(selection).await?;
            writeln!(out, "deleted {removed} documents")?;
            Ok(())
        }
        KbCommand::Search {
            query,
            top_k,
            min_score,
            json,
            terms,
            ..
        } => {
            let mut params = cfg.search_params();
            params.top_k = top_k.unwrap_or(params.top_k);
            params.min_score = min_score.unwrap_or(params.min_score);
            let reader = super::rerank::wrap(store.reader(), &cfg.rerank)?;
            let hits = reader.search_detailed(&query, &params).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&hits)?)?;
                return Ok(());
            }
            if hits.is_empty() {
                writeln!(out, "no hits at or above min_score {}", params.min_score)?;
            }
            for d in hits {
                let reranked = d
                    .reranked_from
                    .map(|f| format!("  reranked from {}. [{:.3}]", f.rank, f.score))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{}. [{:.3}] {}  ({}, {}){reranked}",
                    d.rank, d.hit.score, d.hit.title, d.hit.id, d.hit.source
                )?;
                let body = d.hit.answer.as_deref().unwrap_or(&d.hit.text);
                writeln!(out, "   {}", one_line(body, 120))?;
            }
            if terms {
                write_terms(out, &Segmenter::from_config(&cfg)?, &query)?;
            }
            Ok(())
        }
        KbCommand::Eval {
            file,
            k,
            min_score,
            json,
            ..
        } => {
            let cases = eval::load(&file)?;
            let mut params: SearchParams = cfg.search_params();
            params.min_score = min_score.unwrap_or(params.min_score);
            let reader = super::rerank::wrap(store.reader(), &cfg.rerank)?;
            let report = eval::run(reader.as_ref(), &cases, k, &params).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
                return Ok(());
            }
            write_eval(out, &report, params.min_score)?;
            Ok(())
        }
    }
}

/// `kb migrate`: what was created, one line each.
async fn migrate_cmd(cfg: &KbConfig, out: &mut dyn Write) -> anyhow::Result<()> {
    if cfg.store == super::config::StoreKind::Embedded {
        writeln!(
            out,
            "kb.store is \"embedded\": the embedded store needs no migration"
        )?;
        return Ok(());
    }
    let done = super::store::postgres::migrate::migrate(cfg)
        .await
        .with_context(|| {
            format!(
                "cannot migrate PostgreSQL ({}, table {})",
                super::store::postgres::pool::target(&cfg.postgres),
                cfg.postgres.table
            )
        })?;
    let table = &cfg.postgres.table;
    let mut said = false;
    if done.extension {
        writeln!(out, "created extension vector")?;
        said = true;
    }
    if let Some(dim) = done.table {
        writeln!(out, "created table {table} (embedding vector({dim}))")?;
        said = true;
    }
    if done.hnsw_index {
        writeln!(out, "created HNSW index on {table}.embedding")?;
        said = true;
    }
    if done.hash_index {
        writeln!(out, "created ragstream's hash index on {table}")?;
        said = true;
    }
    if done.id_index {
        writeln!(out, "created ragstream's document id index on {table}")?;
        said = true;
    }
    if done.function {
        writeln!(
            out,
            "created function {} (LangChain's match_documents)",
            cfg.postgres.query_function
        )?;
        said = true;
    }
    if done.terms_table {
        writeln!(out, "created full-text table {table}_ragstream_terms")?;
        said = true;
    }
    if done.term_stats {
        writeln!(
            out,
            "created full-text statistics {table}_ragstream_df and {table}_ragstream_totals"
        )?;
        said = true;
    }
    if done.pruned > 0 {
        writeln!(
            out,
            "removed the full-text terms of {} deleted rows",
            done.pruned
        )?;
        said = true;
    }
    if done.segmented > 0 {
        writeln!(
            out,
            "segmented {} rows for full text (rows without terms, e.g. LangChain's)",
            done.segmented
        )?;
        said = true;
    }
    if !said {
        writeln!(out, "nothing to do: {table} has everything ragstream needs")?;
    }
    Ok(())
}

/// The human-readable eval report: misses, then one summary block.
fn write_eval(out: &mut dyn Write, report: &eval::Report, min_score: f32) -> anyhow::Result<()> {
    for miss in &report.misses {
        writeln!(
            out,
            "miss: {}  expected {:?}, found {:?}",
            miss.question, miss.expected, miss.found
        )?;
    }
    for hit in &report.false_hits {
        let found: Vec<String> = hit
            .found
            .iter()
            .map(|(id, score)| format!("{id} {score:.3}"))
            .collect();
        writeln!(
            out,
            "out-of-domain hit: {}  found [{}]",
            hit.question,
            found.join(", ")
        )?;
    }
    let a = &report.answers;
    writeln!(
        out,
        "answers without a model (min_score {min_score}): right {:.3}, suggestions with the right one {:.3}, \
         suggestions without {:.3}, no match {:.3}, wrong {:.3}",
        a.right, a.suggested_right, a.suggested_wrong, a.no_match, a.wrong
    )?;
    let rejection = report
        .rejection
        .map_or_else(|| "-".to_owned(), |r| format!("{r:.3}"));
    writeln!(
        out,
        "questions: {} ({} in domain, {} out of domain)  recall@1: {:.3}  recall@{}: {:.3}  MRR@{}: {:.3}  rejection: {rejection}",
        report.questions,
        report.in_domain,
        report.out_of_domain,
        report.recall_at_1,
        report.k,
        report.recall_at_k,
        report.k,
        report.mrr
    )?;
    Ok(())
}

/// `kb import`: Ctrl-C cancels, a bar shows progress on a terminal.
async fn import_cmd(
    store: &dyn KnowledgeBaseAdmin,
    paths: &[PathBuf],
    replace: bool,
    quiet: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    let signal = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    let bar = Bar::new(quiet || !std::io::stderr().is_terminal());
    let result = store
        .import(paths, &import::Options { replace }, &cancel, &bar)
        .await;
    signal.abort();
    let report = result?;
    writeln!(
        out,
        "imported {} files: {} added, {} updated, {} unchanged, {} removed, {} embedded",
        report.files,
        report.added,
        report.updated,
        report.unchanged,
        report.removed,
        report.embedded
    )?;
    Ok(())
}

/// An indicatif bar on stderr (hidden when not a terminal or with `--quiet`).
struct Bar {
    /// The bar.
    bar: ProgressBar,
}

impl Bar {
    /// A bar, or a hidden one.
    fn new(hidden: bool) -> Self {
        let bar = if hidden {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0)
        };
        if let Ok(style) = ProgressStyle::with_template("{msg:>6} [{bar:40}] {pos}/{len} ({eta})") {
            bar.set_style(style.progress_chars("=> "));
        }
        Self { bar }
    }
}

impl import::Progress for Bar {
    fn start(&self, stage: &str, total: u64) {
        self.bar.set_message(stage.to_owned());
        self.bar.set_length(total);
        self.bar.set_position(0);
    }

    fn set(&self, done: u64) {
        self.bar.set_position(done);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// How `query` is read for full-text search: the corrected question when a homophone
/// slip was read as a domain word, then each term with what may stand in for it.
fn write_terms(out: &mut dyn Write, segmenter: &Segmenter, query: &str) -> anyhow::Result<()> {
    let corrected = segmenter.corrected(query);
    if corrected != query {
        writeln!(out, "read as: {corrected}")?;
    }
    let terms = segmenter.analyze(query);
    if terms.is_empty() {
        writeln!(out, "terms: none (only stop words)")?;
    }
    for term in terms {
        let mut line = format!("term: {}", term.word);
        if !term.synonyms.is_empty() {
            line.push_str(&format!("  synonyms: {}", term.synonyms.join(" ")));
        }
        if !term.related.is_empty() {
            line.push_str(&format!("  related: {}", term.related.join(" ")));
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// The first `max` characters of `text` on one line.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let cut: String = flat.chars().take(max).collect();
    format!("{cut}…")
}
