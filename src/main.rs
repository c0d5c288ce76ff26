//! The `ragstream` binary: parse the command line, set up logs, run.

use std::io::IsTerminal;

use clap::Parser;
use ragstream::cli::{Cli, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() {
    // Before the runtime starts: setting variables is only sound while this
    // is the one thread. A missing .env is normal; a broken one is worth a word.
    let dotenv = ragstream::dotenv::load();
    let cli = Cli::parse();
    init_logs(cli.log_format);
    if let Err(err) = dotenv {
        tracing::warn!("ignoring .env: {err}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            std::process::exit(1);
        }
    };
    let code = match runtime.block_on(ragstream::cli::run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", ragstream::secret::redact(&describe(&err)));
            2
        }
    };
    std::process::exit(code);
}

/// The error and its causes on one line, skipping causes whose text the
/// message already quotes (several error types include their source).
fn describe(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// Logs go to stderr, coloured only on a terminal (and never with `NO_COLOR`).
fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().with_current_span(true).init(),
    }
}
