//! Command-line interface: `serve`, `ask`, `check-config`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use futures::StreamExt;

use crate::config::{Config, RawConfig};
use crate::engine::Event;
use crate::llm::{Message, Role};

/// Stream-first chat server with function calling over a knowledge base.
///
/// Reads `.env` from the working directory, then the config file, then
/// environment variables (OPENAI_BASE_URL, OPENAI_API_KEY, OPENAI_MODEL and
/// RAGSTREAM_SECTION__KEY, e.g. RAGSTREAM_LLM__DIALECT=functions).
#[derive(Debug, Parser)]
#[command(name = "ragstream", version, about, long_about)]
pub struct Cli {
    /// TOML config file (default: ./ragstream.toml if it exists).
    #[arg(
        long,
        short,
        global = true,
        env = "RAGSTREAM_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (POST /api/chat, POST /api/python, GET /api/kb/search, /healthz, /readyz, /metrics).
    Serve {
        /// Listen address, overriding server.addr.
        #[arg(long, value_name = "HOST:PORT")]
        addr: Option<String>,
    },
    /// Answer one question: the answer on stdout, status and sources on stderr.
    Ask {
        /// The question (not empty).
        #[arg(value_parser = non_blank)]
        question: String,
        /// Where the knowledge base lives.
        #[command(flatten)]
        data: crate::kb::cli::DataDir,
    },
    /// Print the effective configuration (secrets masked) and what is wrong with it.
    ///
    /// Exits 1 when the configuration is invalid, else 0. It also asks the model
    /// provider for `GET {base_url}/models` (5 s at most) and warns when the
    /// provider is unreachable, refuses the key, or answers 404 (the base URL may
    /// need `/v1`): a probe that fails is a warning, not a failure.
    CheckConfig {
        /// Do not contact the model provider.
        #[arg(long)]
        no_probe: bool,
    },
    /// Manage the knowledge base: import, list, stats, delete, search, eval.
    #[command(subcommand)]
    Kb(crate::kb::cli::KbCommand),
}

impl Cli {
    /// The config file to read: `--config`, else `./ragstream.toml` if present.
    pub fn config_path(&self) -> Option<PathBuf> {
        self.config.clone().or_else(|| {
            let default = PathBuf::from("ragstream.toml");
            default.is_file().then_some(default)
        })
    }
}

/// Runs a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let path = cli.config_path();
    match cli.command {
        Command::CheckConfig { no_probe } => check_config(path, !no_probe).await,
        Command::Serve { addr } => {
            let mut raw = RawConfig::load(path.as_deref())?;
            if let Some(addr) = addr {
                raw.server.addr = addr;
            }
            let config = raw.lift()?;
            warn_about(&config);
            // Open the knowledge base first: "listening" means ready to answer.
            let app = crate::app::prepare(&config).await?;
            let listener = crate::app::bind(&config).await?;
            let local = listener.local_addr().context("reading the bound address")?;
            tracing::info!(addr = %local, model = config.llm.as_ref().map(|l| l.model.as_str()).unwrap_or("none (retrieval only)"), "ragstream listening");
            eprintln!("ragstream listening on http://{local}");
            app.serve(listener, crate::shutdown::on_signal()).await?;
            Ok(0)
        }
        Command::Ask { question, data } => ask(path, question, data.data).await,
        Command::Kb(command) => {
            // Only the [kb] table matters here: a broken [llm] must not block imports.
            let raw = RawConfig::load(path.as_deref())?;
            let problems = raw.kb.problems();
            if !problems.is_empty() {
                return Err(crate::config::Error::Invalid(problems).into());
            }
            crate::kb::cli::run(command, &raw.kb).await?;
            Ok(0)
        }
    }
}

fn warn_about(config: &Config) {
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
}

/// Clap's check for the question: something besides whitespace.
fn non_blank(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("the question is empty".into())
    } else {
        Ok(text.to_owned())
    }
}

async fn check_config(path: Option<PathBuf>, probe: bool) -> anyhow::Result<i32> {
    let raw = match RawConfig::load(path.as_deref()) {
        Ok(raw) => raw,
        Err(err) => {
            println!("{err}");
            return Ok(1);
        }
    };
    match &path {
        Some(path) => println!("# config file: {}", path.display()),
        None => println!("# no config file: defaults and environment only"),
    }
    // Keys print masked; URLs may carry credentials.
    let rendered = toml::to_string_pretty(&raw).context("rendering the config")?;
    println!("{}", crate::secret::redact(&rendered));
    match raw.lift() {
        Ok(config) => {
            for warning in &config.warnings {
                println!("warning: {warning}");
            }
            if let (Some(llm), true) = (&config.llm, probe) {
                match crate::probe::provider(llm).await {
                    crate::probe::Finding::Reachable => {
                        println!("ok: the model provider answers");
                    }
                    crate::probe::Finding::Warning(warning) => {
                        println!("warning: {}", crate::secret::redact(&warning));
                    }
                }
            }
            println!("ok: the configuration is valid");
            Ok(0)
        }
        Err(err) => {
            println!("error: {}", crate::secret::redact(&err.to_string()));
            Ok(1)
        }
    }
}

async fn ask(
    path: Option<PathBuf>,
    question: String,
    data: Option<PathBuf>,
) -> anyhow::Result<i32> {
    let mut raw = RawConfig::load(path.as_deref())?;
    if let Some(dir) = &data {
        raw.kb.data_dir = dir.clone();
    }
    let config = raw.lift()?;
    if let Some(dir) = &data {
        crate::kb::cli::warn_if_data_is_ignored(&config.kb, dir);
    }
    warn_about(&config);
    let kb = crate::app::open_kb(&config).await?.reader();
    let engine = crate::app::engine(&config, &kb)?;
    let mut events = std::pin::pin!(engine.answer(vec![Message::text(Role::User, question)]));
    let mut stdout = std::io::stdout();
    let mut code = 0;
    while let Some(event) = events.next().await {
        match event {
            Event::Delta(text) => {
                stdout.write_all(text.as_bytes())?;
                stdout.flush()?;
            }
            Event::Reasoning(_) | Event::ToolCall { .. } | Event::ClientToolCall { .. } => {}
            Event::Status { message, .. } => eprintln!("[{message}]"),
            Event::ToolResult {
                name,
                error: Some(error),
                ..
            } => eprintln!("[{name} failed: {error}]"),
            Event::ToolResult { .. } => {}
            Event::Sources(sources) => {
                for s in sources {
                    eprintln!("[{}] {} ({}, score {:.3})", s.n, s.title, s.source, s.score);
                }
            }
            Event::Error {
                code: kind,
                message,
            } => {
                eprintln!("\nerror ({kind}): {message}");
                code = 1;
            }
            Event::Done { .. } => println!(),
        }
    }
    Ok(code)
}
