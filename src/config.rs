//! Configuration: a TOML file, overridden by environment variables, lifted
//! once into a validated [`Config`].
//!
//! This module composes: each part that owns settings defines and checks them
//! (`[chat]` is [`engine::Settings`]); here they are loaded together, checked
//! together, and every problem is reported at once.
//!
//! Precedence, lowest first: built-in defaults, the `--config` file,
//! `RAGSTREAM_SECTION__KEY` variables (e.g. `RAGSTREAM_LLM__DIALECT=functions`),
//! then `OPENAI_BASE_URL`, `OPENAI_API_KEY`, `OPENAI_MODEL` and
//! `RAGSTREAM_API_KEYS` (comma-separated `server.api_keys`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine;
use crate::kb::KbConfig;
use crate::llm::{Backoff, Dialect, Fallback, Secret, Settings};
use crate::server::access;
use crate::server::settings::{Limits, RawServer};

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file or an environment variable does not parse.
    #[error("configuration: {0}")]
    Load(String),
    /// The values parse but contradict each other or are out of range.
    #[error("configuration has {} problem(s):\n  - {}", .0.len(), .0.join("\n  - "))]
    Invalid(Vec<String>),
}

/// The configuration as written: every field optional or defaulted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// HTTP server settings.
    pub server: RawServer,
    /// Model provider settings.
    pub llm: RawLlm,
    /// Prompts and the tool loop.
    pub chat: engine::Settings,
    /// Tools offered to the model.
    pub tools: Vec<RawTool>,
    /// Knowledge base.
    pub kb: KbConfig,
    /// Warnings about the environment found while loading (not a setting).
    #[serde(skip)]
    pub env_warnings: Vec<String>,
}

/// `[llm]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLlm {
    /// Base URL; with neither this nor a key, no model is used.
    pub base_url: Option<String>,
    /// API key (`OPENAI_API_KEY`).
    pub api_key: Option<Secret>,
    /// Model name.
    pub model: String,
    /// `tools` or `functions`.
    pub dialect: Dialect,
    /// Temperature of the first turn.
    pub temperature: Option<f32>,
    /// Request usage in the last chunk.
    pub include_usage: bool,
    /// TCP connect timeout, ms.
    pub connect_timeout_ms: u64,
    /// Request to first byte, ms.
    pub first_byte_timeout_ms: u64,
    /// Longest silence between chunks, ms.
    pub idle_timeout_ms: u64,
    /// Retries before the first byte.
    pub retries: u32,
    /// First retry delay, ms.
    pub backoff_ms: u64,
    /// Longest retry delay (and `Retry-After` cap), ms.
    pub max_backoff_ms: u64,
    /// Providers tried in order when this one fails before the first byte.
    pub fallbacks: Vec<RawFallback>,
}

/// One `[[llm.fallbacks]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFallback {
    /// Base URL up to `/v1`.
    pub base_url: String,
    /// API key, if the provider needs one.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// Model to ask for there; unset keeps the configured model.
    #[serde(default)]
    pub model: Option<String>,
}

impl Default for RawLlm {
    fn default() -> Self {
        Self {
            base_url: None,
            api_key: None,
            model: "gpt-4o-mini".into(),
            dialect: Dialect::Tools,
            temperature: None,
            include_usage: false,
            connect_timeout_ms: 5_000,
            first_byte_timeout_ms: 60_000,
            idle_timeout_ms: 60_000,
            retries: 2,
            backoff_ms: 250,
            max_backoff_ms: 5_000,
            fallbacks: Vec::new(),
        }
    }
}

/// One `[[tools]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTool {
    /// Function name.
    pub name: String,
    /// When the model should call it.
    pub description: String,
    /// JSON schema of the arguments.
    #[serde(default = "empty_object_schema")]
    pub parameters: Value,
    /// What runs the tool; `knowledge_base` is the one backend today.
    #[serde(default)]
    pub backend: Backend,
    /// The argument that carries the search query.
    #[serde(default = "default_query_argument")]
    pub query_argument: String,
    /// What the client is told while the tool runs.
    #[serde(default = "default_status")]
    pub status_message: String,
    /// Longest a call may run before the model is told it failed, ms.
    #[serde(default = "default_tool_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_tool_timeout_ms() -> u64 {
    10_000
}

fn empty_object_schema() -> Value {
    serde_json::json!({"type": "object", "properties": {}})
}

fn default_query_argument() -> String {
    "question".into()
}

fn default_status() -> String {
    "searching the knowledge base…".into()
}

/// Which backend runs a tool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// Search the knowledge base.
    #[default]
    KnowledgeBase,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub addr: SocketAddr,
    /// Accept backlog of the listening socket.
    pub backlog: u32,
    /// Request limits.
    pub limits: Limits,
    /// API keys, rate limits, CORS.
    pub access: access::Settings,
    /// The id clients of `/v1` ask for (`server.model_id`).
    pub model_id: String,
    /// The model provider; `None` means retrieval-only answers.
    pub llm: Option<Settings>,
    /// Prompts and the tool loop.
    pub chat: engine::Settings,
    /// Tools offered to the model.
    pub tools: Vec<RawTool>,
    /// The knowledge base: store, embeddings, search parameters.
    pub kb: KbConfig,
    /// The raw form, for `check-config`.
    pub raw: RawConfig,
    /// Things that work but deserve a look.
    pub warnings: Vec<String>,
}

impl RawConfig {
    /// Loads defaults, then `file`, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, Error> {
        let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(Error::Load(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(
            Env::prefixed("RAGSTREAM_")
                .filter(|key| key.as_str().contains("__"))
                .split("__"),
        );
        for (var, key) in [
            ("OPENAI_BASE_URL", "llm.base_url"),
            ("OPENAI_API_KEY", "llm.api_key"),
            ("OPENAI_MODEL", "llm.model"),
        ] {
            if let Some(value) = std::env::var(var).ok().filter(|v| !v.trim().is_empty()) {
                figment = figment.merge(Serialized::default(key, value.trim()));
            }
        }
        let mut raw: Self = figment
            .extract()
            .map_err(|err| Error::Load(err.to_string()))?;
        if let Some(keys) = std::env::var(API_KEYS_VAR)
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            let keys = split_keys(&keys);
            // "," would otherwise open a server the file closes.
            if keys.is_empty() {
                return Err(Error::Load(format!(
                    "{API_KEYS_VAR} holds no key: list keys separated by commas, or unset it"
                )));
            }
            raw.server.api_keys = keys;
        }
        // MINIMAX_API_KEY / MINIMAX_GROUP_ID, as the classic back end read them.
        raw.kb.apply_env();
        raw.env_warnings = ignored_variables(std::env::vars_os().map(|(key, _)| key));
        Ok(raw)
    }

    /// Validates and lifts into a [`Config`].
    pub fn lift(self) -> Result<Config, Error> {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        let (addr, limits) = self.server.lift(&mut problems);
        let access = access::Settings::lift(&self.server, &mut problems);
        if !addr.ip().is_loopback() && !access.keys_required() {
            warnings.push(format!(
                "server.addr {addr} is reachable from other machines and no API key is configured: \
                 anyone who reaches it can spend the model budget (set {API_KEYS_VAR} or server.api_keys)"
            ));
        }
        let llm = self.lift_llm(&mut problems);
        if llm.is_none() {
            warnings.push(
                "no language model is configured (set OPENAI_API_KEY, or llm.base_url for a local server): \
                 answers come from the knowledge base alone"
                    .into(),
            );
        }
        warnings.extend(self.env_warnings.iter().cloned());
        problems.extend(engine::settings::temperature_problem(
            "llm.temperature",
            self.llm.temperature,
        ));
        problems.extend(self.chat.problems());
        self.check_tools(&mut problems);
        problems.extend(self.kb.problems());
        if !problems.is_empty() {
            return Err(Error::Invalid(problems));
        }
        Ok(Config {
            addr,
            backlog: self.server.backlog,
            limits,
            access,
            model_id: self.server.model_id.clone(),
            llm,
            chat: self.chat.clone(),
            tools: self.tools.clone(),
            kb: self.kb.clone(),
            warnings,
            raw: self,
        })
    }

    fn lift_llm(&self, problems: &mut Vec<String>) -> Option<Settings> {
        let llm = &self.llm;
        let key = llm
            .api_key
            .clone()
            .filter(|k| !k.expose().trim().is_empty());
        let base_url = match (&llm.base_url, &key) {
            (Some(url), _) if !url.trim().is_empty() => url.trim().trim_end_matches('/').to_owned(),
            (_, Some(_)) => "https://api.openai.com/v1".to_owned(),
            _ => return None,
        };
        match reqwest::Url::parse(&base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => problems.push(format!(
                "llm.base_url `{base_url}` is not an http(s) URL like https://api.openai.com/v1"
            )),
        }
        if llm.model.trim().is_empty() {
            problems.push("llm.model is empty: set OPENAI_MODEL or llm.model".into());
        }
        for (name, ms) in [
            ("connect_timeout_ms", llm.connect_timeout_ms),
            ("first_byte_timeout_ms", llm.first_byte_timeout_ms),
            ("idle_timeout_ms", llm.idle_timeout_ms),
        ] {
            if ms == 0 {
                problems.push(format!("llm.{name} must be above 0"));
            }
        }
        Some(Settings {
            base_url,
            api_key: key,
            model: llm.model.trim().to_owned(),
            dialect: llm.dialect,
            temperature: llm.temperature,
            include_usage: llm.include_usage,
            connect_timeout: Duration::from_millis(llm.connect_timeout_ms),
            first_byte_timeout: Duration::from_millis(llm.first_byte_timeout_ms),
            idle_timeout: Duration::from_millis(llm.idle_timeout_ms),
            retries: llm.retries,
            backoff: Backoff {
                base: Duration::from_millis(llm.backoff_ms),
                max: Duration::from_millis(llm.max_backoff_ms.max(llm.backoff_ms)),
            },
            fallbacks: llm
                .fallbacks
                .iter()
                .enumerate()
                .map(|(n, f)| {
                    if reqwest::Url::parse(&f.base_url).is_err() {
                        problems.push(format!(
                            "llm.fallbacks[{n}].base_url `{}` is not a URL",
                            f.base_url
                        ));
                    }
                    Fallback {
                        base_url: f.base_url.trim().trim_end_matches('/').to_owned(),
                        api_key: f.api_key.clone().filter(|k| !k.expose().trim().is_empty()),
                        model: f.model.clone().filter(|m| !m.trim().is_empty()),
                    }
                })
                .collect(),
        })
    }

    fn check_tools(&self, problems: &mut Vec<String>) {
        for (n, tool) in self.tools.iter().enumerate() {
            let valid_name = !tool.name.is_empty()
                && tool.name.len() <= 64
                && tool
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid_name {
                problems.push(format!(
                    "tools[{n}].name `{}` must be 1-64 characters of a-z, A-Z, 0-9, _ or -",
                    tool.name
                ));
            }
            if self.tools[..n].iter().any(|t| t.name == tool.name) {
                problems.push(format!("tools[{n}].name `{}` is used twice", tool.name));
            }
            if tool.timeout_ms == 0 {
                problems.push(format!("tools[{n}].timeout_ms must be above 0"));
            }
            if tool.parameters.get("type").and_then(Value::as_str) != Some("object") {
                problems.push(format!(
                    "tools[{n}].parameters must be a JSON schema with type = \"object\""
                ));
            }
        }
    }
}

/// The variable holding `server.api_keys`, comma-separated.
pub const API_KEYS_VAR: &str = "RAGSTREAM_API_KEYS";

/// The keys of a comma-separated list, trimmed, without empty entries.
fn split_keys(list: &str) -> Vec<Secret> {
    list.split(',')
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .map(Secret::new)
        .collect()
}

/// The sections a `RAGSTREAM_SECTION__KEY` variable can address, with the
/// tables nested in them.
const SECTIONS: &[(&str, &[&str])] = &[
    ("server", &["rate_limit"]),
    ("llm", &[]),
    ("chat", &[]),
    ("tools", &[]),
    ("kb", &["search", "chunk", "embeddings", "rerank"]),
];

/// A warning for each `RAGSTREAM_` variable that configures nothing because it
/// lacks the double underscore, with the spelling that would.
fn ignored_variables(keys: impl Iterator<Item = std::ffi::OsString>) -> Vec<String> {
    let mut warnings = Vec::new();
    for key in keys {
        let Some(key) = key.to_str() else { continue };
        let Some(rest) = key.strip_prefix("RAGSTREAM_") else {
            continue;
        };
        // RAGSTREAM_CONFIG is the --config flag's variable; API_KEYS is a list.
        if rest.contains("__") || rest == "CONFIG" || rest == "API_KEYS" {
            continue;
        }
        let lower = rest.to_ascii_lowercase();
        let guess = SECTIONS.iter().find_map(|(section, tables)| {
            let key = lower.strip_prefix(section)?.strip_prefix('_')?;
            let key = tables
                .iter()
                .find_map(|table| {
                    let inner = key.strip_prefix(table)?.strip_prefix('_')?;
                    Some(format!("{table}__{inner}"))
                })
                .unwrap_or_else(|| key.to_owned());
            Some(format!("RAGSTREAM_{section}__{key}").to_ascii_uppercase())
        });
        warnings.push(match guess {
            Some(guess) => format!(
                "{key} matches no setting and is ignored: sections and keys are joined by a double underscore (did you mean {guess}?)"
            ),
            None => format!(
                "{key} matches no setting and is ignored: settings are RAGSTREAM_SECTION__KEY, e.g. RAGSTREAM_CHAT__MAX_STEPS"
            ),
        });
    }
    warnings.sort();
    warnings
}

impl Config {
    /// Loads and validates in one step.
    pub fn load(file: Option<&Path>) -> Result<Self, Error> {
        RawConfig::load(file)?.lift()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lift(toml: &str) -> Result<Config, Error> {
        let raw: RawConfig = Figment::from(Serialized::defaults(RawConfig::default()))
            .merge(Toml::string(toml))
            .extract()
            .map_err(|e| Error::Load(e.to_string()))?;
        raw.lift()
    }

    const KB: &str = "";

    #[test]
    fn a_key_alone_means_openai() {
        let config = lift(&format!("{KB}[llm]\napi_key = \"sk-test\"\n")).unwrap();
        let llm = config.llm.unwrap();
        assert_eq!(llm.base_url, "https://api.openai.com/v1");
        assert_eq!(llm.api_key.unwrap().expose(), "sk-test");
    }

    #[test]
    fn a_base_url_alone_means_a_local_server_without_key() {
        let config = lift(&format!(
            "{KB}[llm]\nbase_url = \"http://localhost:11434/v1/\"\n"
        ))
        .unwrap();
        let llm = config.llm.unwrap();
        assert_eq!(llm.base_url, "http://localhost:11434/v1");
        assert!(llm.api_key.is_none());
    }

    #[test]
    fn no_model_and_a_knowledge_base_is_retrieval_only() {
        let config = lift(KB).unwrap();
        assert!(config.llm.is_none());
        assert!(config.warnings[0].contains("no language model"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = lift(
            "[llm]\nbase_url = \"ftp://x\"\n[chat]\nmax_steps = 0\nanswer_mode = \"prompt_template\"\nanswer_prompt = \"hi\"\n\
             [[tools]]\nname = \"bad name\"\ndescription = \"d\"\ntimeout_ms = 0\n[kb.chunk]\nsize = 10\noverlap = 20\n\
             [kb.embeddings]\nquery_timeout_ms = 0\n",
        )
        .unwrap_err()
        .to_string();
        for expected in [
            "ftp://x",
            "max_steps",
            "{question}",
            "{background}",
            "bad name",
            "kb.chunk.overlap (20) must be smaller",
            "tools[0].timeout_ms must be above 0",
            "kb.embeddings.query_timeout_ms must be above 0",
        ] {
            assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
        }
    }

    #[test]
    fn single_underscore_variables_get_the_double_underscore_spelling() {
        let warnings = ignored_variables(
            [
                "RAGSTREAM_CHAT_MAX_STEPS",
                "RAGSTREAM_KB_SEARCH_TOP_K",
                "RAGSTREAM_LLM__MODEL",
                "RAGSTREAM_CONFIG",
                "RAGSTREAM_API_KEYS",
                "RAGSTREAM_SERVER_RATE_LIMIT_BURST",
                "RAGSTREAM_WHATEVER",
                "PATH",
            ]
            .into_iter()
            .map(Into::into),
        );
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(warnings[0].contains("did you mean RAGSTREAM_CHAT__MAX_STEPS?"));
        assert!(warnings[1].contains("did you mean RAGSTREAM_KB__SEARCH__TOP_K?"));
        assert!(warnings[2].contains("did you mean RAGSTREAM_SERVER__RATE_LIMIT__BURST?"));
        assert!(warnings[3].starts_with("RAGSTREAM_WHATEVER matches no setting"));
    }

    #[test]
    fn api_keys_are_split_on_commas_and_trimmed() {
        let keys = split_keys(" key-one-0123456789abcdef , ,key-two-0123456789abcdef,");
        let keys: Vec<&str> = keys.iter().map(Secret::expose).collect();
        assert_eq!(
            keys,
            ["key-one-0123456789abcdef", "key-two-0123456789abcdef"]
        );
    }

    #[test]
    fn listening_beyond_loopback_without_keys_is_warned_about() {
        let open = lift(&format!("{KB}[server]\naddr = \"0.0.0.0:5328\"\n")).unwrap();
        assert!(
            open.warnings
                .iter()
                .any(|w| w.contains("no API key is configured")),
            "{:?}",
            open.warnings
        );
        let keyed = lift(&format!(
            "{KB}[server]\naddr = \"0.0.0.0:5328\"\napi_keys = [\"key-0123456789abcdef\"]\n"
        ))
        .unwrap();
        assert!(!keyed.warnings.iter().any(|w| w.contains("API key")));
        let local = lift(KB).unwrap();
        assert!(!local.warnings.iter().any(|w| w.contains("API key")));
    }

    #[test]
    fn temperatures_outside_0_to_2_are_rejected() {
        let err = lift("[llm]\ntemperature = 9.0\n[chat]\nanswer_temperature = -0.5\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("llm.temperature 9 must be between 0 and 2"),
            "{err}"
        );
        assert!(
            err.contains("chat.answer_temperature -0.5 must be"),
            "{err}"
        );
        assert!(lift("[llm]\ntemperature = 2.0\n").is_ok());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = lift("[llm]\nmodle = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("modle"), "{err}");
    }

    #[test]
    fn the_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/autism.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let config = lift(&text.replace(
            "examples/",
            concat!(env!("CARGO_MANIFEST_DIR"), "/examples/"),
        ))
        .unwrap();
        assert_eq!(
            config.chat.system_prompt.as_deref(),
            Some("你是自闭症康复专家")
        );
        let tool = &config.tools[0];
        assert_eq!(tool.name, "autism_expert");
        assert_eq!(tool.description, "当用户咨询自闭症类问题有用");
        assert_eq!(tool.parameters["required"], serde_json::json!(["question"]));
        assert_eq!(
            tool.parameters["properties"]["question"]["description"],
            "用户的问题"
        );
        assert!(
            config
                .chat
                .answer_prompt
                .starts_with("根据用户的问题，参考背景信息，输出回答。")
        );
    }
}
