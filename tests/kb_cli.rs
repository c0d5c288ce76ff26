//! The `kb` commands, run through the same entry point the binary uses.

mod support;

use clap::{CommandFactory, Parser};
use ragstream::kb::cli::{KbCommand, run_to};
use ragstream::kb::{KbConfig, open, seed_if_empty};
use support::kb::{config, sample, sample_eval, write};

/// Stand-in for the top-level CLI: `ragstream kb <command>`.
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    kb: KbCommand,
}

async fn kb(cfg: &KbConfig, args: &[&str]) -> anyhow::Result<String> {
    let cli = Cli::try_parse_from(std::iter::once("kb").chain(args.iter().copied()))?;
    let mut out = Vec::new();
    run_to(cli.kb, cfg, &mut out).await?;
    Ok(String::from_utf8(out).unwrap())
}

#[test]
fn every_command_has_help() {
    Cli::command().debug_assert();
    let mut cmd = Cli::command();
    for name in ["import", "list", "stats", "delete", "search", "eval"] {
        let help = cmd
            .find_subcommand_mut(name)
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(help.contains("--data"), "{name}: {help}");
        assert!(help.len() > 200, "{name}: {help}");
    }
}

#[tokio::test]
async fn import_search_eval_stats_list_delete() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let data = dir.path().join("elsewhere");
    let data = data.to_str().unwrap();
    let sample = sample();

    let out = kb(
        &cfg,
        &[
            "import",
            "--data",
            data,
            "--quiet",
            sample.to_str().unwrap(),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        "imported 1 files: 47 added, 0 updated, 0 unchanged, 0 removed, 0 embedded\n"
    );
    assert!(!cfg.data_dir.exists(), "--data overrides the config");

    let out = kb(
        &cfg,
        &["search", "--data", data, "孩子总是撞头怎么办", "-k", "2"],
    )
    .await
    .unwrap();
    let first = out.lines().next().unwrap();
    assert!(
        first.starts_with("1. [") && first.contains("(self-injury,"),
        "{out}"
    );

    // How the question was read: the slip corrected, filler gone, related words shown.
    let out = kb(
        &cfg,
        &["search", "--data", data, "--terms", "孩子总是自商怎么办"],
    )
    .await
    .unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("(self-injury,"), "{out}");
    assert!(lines.contains(&"read as: 孩子总是自伤怎么办"), "{out}");
    assert!(lines.contains(&"term: 自伤"), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("term: 孩子  related: ") && l.contains("小孩")),
        "{out}"
    );
    assert!(!out.contains("term: 总是"), "{out}");

    let out = kb(&cfg, &["search", "--data", data, "--json", "挑食"])
        .await
        .unwrap();
    let hits: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(hits[0]["id"], "picky-eating");
    assert_eq!(hits[0]["fulltext_rank"], 1);
    assert!(hits[0]["score"].as_f64().unwrap() > 0.0);

    let out = kb(
        &cfg,
        &["eval", "--data", data, sample_eval().to_str().unwrap()],
    )
    .await
    .unwrap();
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("questions: 66 (51 in domain, 15 out of domain)  recall@1: "),
        "{out}"
    );

    let out = kb(&cfg, &["stats", "--data", data]).await.unwrap();
    assert!(
        out.starts_with("documents: 47 (47 question/answer pairs, 0 passages)"),
        "{out}"
    );
    assert!(out.contains("vectors: none"), "{out}");

    let out = kb(&cfg, &["list", "--data", data, "--limit", "2"])
        .await
        .unwrap();
    assert_eq!(out.lines().count(), 2);
    assert!(out.starts_with("what-is-asd\tqa\t-\t"), "{out}");

    let out = kb(&cfg, &["delete", "--data", data, "sleep", "causes"])
        .await
        .unwrap();
    assert_eq!(out, "deleted 2 documents\n");
    let out = kb(
        &cfg,
        &[
            "delete",
            "--data",
            data,
            "--origin",
            sample.to_str().unwrap(),
        ],
    )
    .await
    .unwrap();
    assert_eq!(out, "deleted 45 documents\n");
}

#[tokio::test]
async fn a_failed_import_reports_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let bad = write(dir.path(), "bad.csv", "question,answer\n问,答\n问二,\n");
    let err = kb(&cfg, &["import", "--quiet", bad.to_str().unwrap()])
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").ends_with("bad.csv:3: `answer` is empty"),
        "{err:#}"
    );
}

#[tokio::test]
async fn an_empty_store_is_seeded_once_from_the_sample() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&config(dir.path())).await.unwrap();
    let report = seed_if_empty(&store, &sample()).await.unwrap().unwrap();
    assert_eq!(report.added, 47);
    assert!(seed_if_empty(&store, &sample()).await.unwrap().is_none());
    assert_eq!(store.count().unwrap(), 47);

    let other = tempfile::tempdir().unwrap();
    let store = open(&config(other.path())).await.unwrap();
    assert!(
        seed_if_empty(&store, &other.path().join("missing.jsonl"))
            .await
            .unwrap()
            .is_none()
    );
}

/// Issue 10: an embeddings 401 that echoes the key printed it in `kb import`'s error.
#[tokio::test]
async fn import_never_prints_a_key_the_embeddings_api_echoes() {
    const KEY: &str = "sk-kb-cli-secret-0042";
    let server = support::embed_server::EmbedServer::start(16).await;
    server.push(
        401,
        serde_json::json!({"error": {"message": format!("Incorrect API key provided: {KEY}")}}),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.embeddings.provider = ragstream::kb::config::Provider::Openai;
    cfg.embeddings.base_url = Some(server.base_url());
    cfg.embeddings.api_key = Some(KEY.into());
    let sample = sample();

    let err = kb(&cfg, &["import", "--quiet", sample.to_str().unwrap()])
        .await
        .unwrap_err();

    let shown = format!("{err:#}");
    assert!(shown.contains("Incorrect API key provided: ***"), "{shown}");
    assert!(!shown.contains(KEY), "{shown}");
}
