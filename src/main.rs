//! The `ragstream` binary: parse the command line, set up logs, run.

use clap::Parser;
use ragstream::cli::{Cli, LogFormat};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    // A missing .env is normal; a broken one is worth a word.
    let dotenv = dotenvy::dotenv();
    let cli = Cli::parse();
    init_logs(cli.log_format);
    if let Err(err) = dotenv {
        if !err.not_found() {
            tracing::warn!(error = %err, "ignoring unreadable .env");
        }
    }
    let code = match ragstream::cli::run(cli).await {
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

fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().with_current_span(true).init(),
    }
}
