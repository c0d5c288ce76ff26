//! The engine's settings (`[chat]`): prompts, the answer mode and the tool loop,
//! with their validation.

use serde::{Deserialize, Serialize};

pub use crate::tools::prefetch::Mode as PrefetchMode;

/// How the answer after a tool call is produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerMode {
    /// Send the tool calls and `tool` messages back: the model sees the whole conversation.
    #[default]
    ToolMessage,
    /// The classic way: one new user message from `answer_prompt`.
    PromptTemplate,
}

/// `[chat]`: prompts and the tool loop.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// System prompt put before the conversation.
    pub system_prompt: Option<String>,
    /// `tool_message` or `prompt_template`.
    pub answer_mode: AnswerMode,
    /// Template with `{question}` and `{background}` (prompt_template mode).
    pub answer_prompt: String,
    /// Model for the calls after a tool call; defaults to `llm.model`.
    pub answer_model: Option<String>,
    /// Temperature for the calls after a tool call.
    pub answer_temperature: Option<f32>,
    /// Most model calls per answer in the tool loop.
    pub max_steps: u32,
    /// Heading of answers given without a model.
    pub retrieval_only_label: String,
    /// Answer when no model is configured and nothing relevant is found.
    pub no_match_message: String,
    /// `auto` (search the question while the first model call runs, when a
    /// knowledge-base tool and an embeddings provider are configured) or `off`.
    pub prefetch: PrefetchMode,
    /// Character-bigram similarity (0–1) from which the model's query reuses
    /// the prefetched question's vector.
    pub prefetch_similarity: f32,
    /// Heading of the closest questions, offered without a model when no hit is
    /// clearly the answer (`kb::answer::choose`).
    pub did_you_mean_message: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            system_prompt: None,
            answer_mode: AnswerMode::ToolMessage,
            answer_prompt: "Answer the user's question using the background information.\n\
                            Question: {question}\nBackground:\n{background}"
                .into(),
            answer_model: None,
            answer_temperature: None,
            max_steps: 3,
            retrieval_only_label: "[Knowledge-base answer: no language model is configured]".into(),
            no_match_message: "Nothing relevant was found in the knowledge base.".into(),
            prefetch: PrefetchMode::Auto,
            prefetch_similarity: 0.6,
            did_you_mean_message:
                "No single answer stands out. Did you mean one of these questions?".into(),
        }
    }
}

impl Settings {
    /// What is wrong with these settings, one line per problem (keys as in the file).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_steps == 0 {
            problems.push("chat.max_steps must be at least 1".into());
        }
        problems.extend(temperature_problem(
            "chat.answer_temperature",
            self.answer_temperature,
        ));
        if !(0.0..=1.0).contains(&self.prefetch_similarity) {
            problems.push(format!(
                "chat.prefetch_similarity {} must be between 0 and 1",
                self.prefetch_similarity
            ));
        }
        if self.answer_mode == AnswerMode::PromptTemplate {
            for slot in ["{question}", "{background}"] {
                if !self.answer_prompt.contains(slot) {
                    problems.push(format!(
                        "chat.answer_prompt must contain {slot} in prompt_template mode"
                    ));
                }
            }
        }
        problems
    }
}

/// A problem when a sampling temperature is outside the 0–2 that
/// OpenAI-compatible APIs accept.
pub fn temperature_problem(key: &str, value: Option<f32>) -> Option<String> {
    value
        .filter(|t| !(0.0..=2.0).contains(t))
        .map(|t| format!("{key} {t} must be between 0 and 2"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_each_problem_names_its_key() {
        assert!(Settings::default().problems().is_empty());
        let settings = Settings {
            answer_mode: AnswerMode::PromptTemplate,
            answer_prompt: "{question} only".into(),
            max_steps: 0,
            answer_temperature: Some(f32::NAN),
            prefetch_similarity: 1.5,
            ..Settings::default()
        };
        let problems = settings.problems();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("chat.max_steps"));
        assert!(problems[1].starts_with("chat.answer_temperature NaN"));
        assert!(problems[2].starts_with("chat.prefetch_similarity 1.5 must be between 0 and 1"));
        assert!(problems[3].contains("{background}"));
    }
}
