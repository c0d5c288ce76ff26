//! Tools the model may call: configured, not coded.
//!
//! A [`Tool`] runs one call; the [`Registry`] finds tools by name, describes
//! them to the model (as [`ToolSpec`]s that `llm` encodes), and turns every failure (unknown
//! name, arguments that are not JSON, a backend error) into a result the model
//! can read, so that a bad call never ends the answer.

pub mod knowledge_base;
pub mod prefetch;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;

use crate::kb::Hit;
use crate::llm::{ToolCall, ToolSpec};
pub use prefetch::Prefetch;

/// Why a tool call produced no output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The model named a tool that is not configured.
    #[error("tool `{name}` does not exist; available tools: {available}")]
    UnknownTool {
        /// The name the model used.
        name: String,
        /// The configured names.
        available: String,
    },
    /// The arguments are not a JSON object.
    #[error(
        "arguments of `{name}` are not a valid JSON object ({reason}); call it again with a JSON object that matches its parameters"
    )]
    InvalidArguments {
        /// The tool called.
        name: String,
        /// The parse error.
        reason: String,
    },
    /// The backend failed.
    #[error("tool `{name}` failed: {reason}")]
    Failed {
        /// The tool called.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// The call ran past the tool's `timeout_ms`.
    #[error(
        "tool `{name}` did not answer within {} ms; answer without its result",
        .after.as_millis()
    )]
    TimedOut {
        /// The tool called.
        name: String,
        /// The tool's timeout.
        after: Duration,
    },
}

/// How a tool is described to the model, and how long it may run.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The function name the model calls.
    pub name: String,
    /// When the model should call it.
    pub description: String,
    /// JSON schema of the arguments.
    pub parameters: Value,
    /// What the client is told while the tool runs.
    pub status_message: String,
    /// Longest a call may run; then the model reads [`Error::TimedOut`].
    pub timeout: Duration,
}

/// What a tool returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Plain text for the model.
    Text(String),
    /// Knowledge-base hits, numbered and rendered by the engine.
    Hits(Vec<Hit>),
}

/// A callable tool.
#[async_trait]
pub trait Tool: Send + Sync {
    /// The tool's description for the model.
    fn spec(&self) -> &Spec;

    /// Runs one call with arguments already parsed as a JSON object.
    async fn call(&self, arguments: &serde_json::Map<String, Value>) -> Result<Output, Error>;

    /// Runs one call, reusing what `prefetch` found when it can (only the
    /// knowledge-base tool can; other tools just [`Tool::call`]).
    async fn call_with(
        &self,
        arguments: &serde_json::Map<String, Value>,
        prefetch: Option<&Prefetch>,
    ) -> Result<Output, Error> {
        let _ = prefetch;
        self.call(arguments).await
    }

    /// Starts a speculative search for `question`, if this tool does them and
    /// they are enabled.
    fn prefetch(&self, question: &str) -> Option<Prefetch> {
        let _ = question;
        None
    }
}

/// The outcome of one call, success or not.
#[derive(Debug, Clone, PartialEq)]
pub struct CallResult {
    /// The call answered.
    pub call: ToolCall,
    /// The output, or the error the model will read.
    pub output: Result<Output, Error>,
    /// How long the tool ran.
    pub elapsed: Duration,
}

/// The configured tools, by name.
#[derive(Clone, Default)]
pub struct Registry {
    /// Tools in configuration order.
    tools: Vec<Arc<dyn Tool>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.tools.iter().map(|t| &t.spec().name))
            .finish()
    }
}

impl Registry {
    /// Builds a registry; names must be unique (checked by the config).
    pub fn new(tools: Vec<Arc<dyn Tool>>) -> Self {
        Self { tools }
    }

    /// Whether no tool is configured.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// The tool called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.iter().find(|t| t.spec().name == name)
    }

    /// The tools as the model is told about them (`llm` encodes them).
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools
            .iter()
            .map(|tool| {
                let spec = tool.spec();
                ToolSpec {
                    name: spec.name.clone(),
                    description: spec.description.clone(),
                    parameters: spec.parameters.clone(),
                }
            })
            .collect()
    }

    /// What the client is told while `name` runs.
    pub fn status_message(&self, name: &str) -> String {
        match self.get(name) {
            Some(tool) => tool.spec().status_message.clone(),
            None => format!("calling `{name}`…"),
        }
    }

    /// Starts the speculative search of the first tool that does them.
    pub fn prefetch(&self, question: &str) -> Option<Prefetch> {
        self.tools.iter().find_map(|tool| tool.prefetch(question))
    }

    /// Runs one call; every failure becomes an `Err` output, logged here.
    pub async fn run(&self, call: ToolCall) -> CallResult {
        self.run_with(call, None).await
    }

    /// [`Registry::run`], reusing what `prefetch` found when the call allows.
    pub async fn run_with(&self, call: ToolCall, prefetch: Option<&Prefetch>) -> CallResult {
        let result = self.execute(call, prefetch).await;
        self.record(&result);
        result
    }

    /// Runs one call without counting it: for calls started speculatively,
    /// which are [recorded](Registry::record) only if their result is used.
    pub async fn execute(&self, call: ToolCall, prefetch: Option<&Prefetch>) -> CallResult {
        let started = Instant::now();
        let output = self.dispatch(&call, prefetch).await;
        CallResult {
            call,
            output,
            elapsed: started.elapsed(),
        }
    }

    /// Logs a failed call and counts the call in `ragstream_tool_calls_total`.
    pub fn record(&self, result: &CallResult) {
        let call = &result.call;
        let outcome = match &result.output {
            Ok(_) => "ok",
            Err(err) => {
                tracing::warn!(tool = %call.name, id = %call.id, error = %err, "tool call failed");
                "error"
            }
        };
        // Label by configured name only, so a model inventing names cannot grow the series.
        let tool = if self.get(&call.name).is_some() {
            call.name.clone()
        } else {
            "unknown".into()
        };
        metrics::counter!(crate::telemetry::TOOL_CALLS, "tool" => tool, "outcome" => outcome)
            .increment(1);
    }

    async fn dispatch(
        &self,
        call: &ToolCall,
        prefetch: Option<&Prefetch>,
    ) -> Result<Output, Error> {
        let tool = self.get(&call.name).ok_or_else(|| Error::UnknownTool {
            name: call.name.clone(),
            available: self
                .tools
                .iter()
                .map(|t| t.spec().name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        let arguments = match serde_json::from_str::<Value>(&call.arguments) {
            Ok(Value::Object(map)) => map,
            Ok(other) => {
                return Err(Error::InvalidArguments {
                    name: call.name.clone(),
                    reason: format!("got {}", kind_of(&other)),
                });
            }
            Err(err) => {
                return Err(Error::InvalidArguments {
                    name: call.name.clone(),
                    reason: err.to_string(),
                });
            }
        };
        // A hung backend must not hang the answer; dropping the call cancels
        // what it awaits (work in a blocking thread runs to its end unseen).
        let limit = tool.spec().timeout;
        tokio::time::timeout(limit, tool.call_with(&arguments, prefetch))
            .await
            .unwrap_or_else(|_| {
                Err(Error::TimedOut {
                    name: call.name.clone(),
                    after: limit,
                })
            })
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Echo(Spec);

    #[async_trait]
    impl Tool for Echo {
        fn spec(&self) -> &Spec {
            &self.0
        }
        async fn call(&self, arguments: &serde_json::Map<String, Value>) -> Result<Output, Error> {
            Ok(Output::Text(Value::Object(arguments.clone()).to_string()))
        }
    }

    /// A backend that never answers.
    struct Hung(Spec);

    #[async_trait]
    impl Tool for Hung {
        fn spec(&self) -> &Spec {
            &self.0
        }
        async fn call(&self, _: &serde_json::Map<String, Value>) -> Result<Output, Error> {
            std::future::pending().await
        }
    }

    fn spec(name: &str) -> Spec {
        Spec {
            name: name.into(),
            description: "repeats".into(),
            parameters: json!({"type": "object"}),
            status_message: "echoing…".into(),
            timeout: Duration::from_secs(10),
        }
    }

    fn registry() -> Registry {
        Registry::new(vec![
            Arc::new(Echo(spec("echo"))),
            Arc::new(Hung(spec("hung"))),
        ])
    }

    /// Issue 10: a hung tool hung the whole answer.
    #[tokio::test(start_paused = true)]
    async fn a_hung_tool_ends_in_an_error_the_model_reads() {
        let result = registry().run(call("hung", "{}")).await;
        assert_eq!(
            result.output,
            Err(Error::TimedOut {
                name: "hung".into(),
                after: Duration::from_secs(10)
            })
        );
        assert_eq!(
            result.output.unwrap_err().to_string(),
            "tool `hung` did not answer within 10000 ms; answer without its result"
        );
    }

    fn call(name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: "c".into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    #[tokio::test]
    async fn the_models_arguments_reach_the_tool() {
        let result = registry().run(call("echo", r#"{"question":"自伤"}"#)).await;
        assert_eq!(
            result.output,
            Ok(Output::Text(r#"{"question":"自伤"}"#.into()))
        );
    }

    #[tokio::test]
    async fn unknown_tools_and_bad_arguments_become_errors_for_the_model() {
        let unknown = registry().run(call("nope", "{}")).await.output.unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "tool `nope` does not exist; available tools: echo, hung"
        );
        let broken = registry()
            .run(call("echo", r#"{"question": "#))
            .await
            .output
            .unwrap_err();
        assert!(matches!(broken, Error::InvalidArguments { .. }), "{broken}");
        let array = registry()
            .run(call("echo", "[1]"))
            .await
            .output
            .unwrap_err();
        assert!(array.to_string().contains("got an array"), "{array}");
    }

    #[test]
    fn specs_describe_every_tool() {
        let specs = registry().specs();
        assert_eq!(specs[0].name, "echo");
        assert_eq!(specs[0].description, "repeats");
        assert_eq!(specs[0].parameters, json!({"type": "object"}));
    }
}
