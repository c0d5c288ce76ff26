//! The stream-first turn loop.
//!
//! [`Engine::answer`] returns a stream of [`Event`]s that is polled directly
//! by the HTTP response body: no task, no channel. A direct answer's deltas go
//! out the moment their chunk is parsed, and when the client goes away the
//! stream is dropped, which drops the upstream request with it.

mod early;
pub mod event;
pub mod prompt;
pub mod settings;

use std::sync::Arc;

use futures::Stream;
use tracing::Instrument;

pub use event::{Event, Source, Stage};
pub use settings::{AnswerMode, PrefetchMode, Settings};

use crate::error::Code;
use crate::kb::answer::{Choice, choose};
use crate::kb::{KnowledgeBase, SearchParams};
use crate::llm::{
    self, Message, Request, Role, ToolCall, ToolChoice, ToolSpec, Tools, Turn, TurnEvent, Usage,
};
use crate::tools::{CallResult, Output, Registry};

/// What a client adds to its conversation: tools it runs itself and
/// sampling settings. The default adds nothing.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Tools the client runs itself, offered to the model beside ragstream's
    /// own. A turn that calls one ends the answer with
    /// [`Event::ClientToolCall`]s; ragstream's own calls of that turn are
    /// dropped (docs/protocol.md, "Client tools").
    pub client_tools: Vec<ToolSpec>,
    /// Overrides `llm.temperature` for every model call of the answer.
    pub temperature: Option<f32>,
    /// Caps the tokens each model call may write.
    pub max_tokens: Option<u32>,
}

/// Everything an answer needs; cheap to share.
pub struct Engine {
    /// The model provider, or `None` for retrieval-only answers.
    llm: Option<llm::Client>,
    /// Tools offered to the model.
    tools: Registry,
    /// The store used when no model is configured.
    kb: Option<Arc<dyn KnowledgeBase>>,
    /// Prompts and loop settings.
    chat: Settings,
    /// Search parameters (also the context budget for rendering).
    search: SearchParams,
    /// The tools encoded for the provider once, not per request.
    tool_definitions: Option<Tools>,
}

impl Engine {
    /// Assembles an engine from its parts.
    pub fn new(
        llm: Option<llm::Client>,
        tools: Registry,
        kb: Option<Arc<dyn KnowledgeBase>>,
        chat: Settings,
        search: SearchParams,
    ) -> Self {
        let tool_definitions = llm
            .as_ref()
            .filter(|_| !tools.is_empty())
            .map(|client| client.encode_tools(&tools.specs()));
        Self {
            llm,
            tools,
            kb,
            chat,
            search,
            tool_definitions,
        }
    }

    /// Whether answers come from a model (false: retrieval only).
    pub fn has_model(&self) -> bool {
        self.llm.is_some()
    }

    /// The knowledge base, if one is configured.
    pub fn knowledge_base(&self) -> Option<&Arc<dyn KnowledgeBase>> {
        self.kb.as_ref()
    }

    /// Answers a conversation (user/assistant messages, last one from the
    /// user). The stream always ends with `Done` or `Error`.
    pub fn answer(
        self: &Arc<Self>,
        conversation: Vec<Message>,
    ) -> impl Stream<Item = Event> + Send + 'static + use<> {
        self.answer_with(conversation, Options::default())
    }

    /// Whether `name` is one of ragstream's own tools.
    pub fn has_tool(&self, name: &str) -> bool {
        self.tools.specs().iter().any(|spec| spec.name == name)
    }

    /// [`Engine::answer`] with what the client adds ([`Options`]).
    pub fn answer_with(
        self: &Arc<Self>,
        conversation: Vec<Message>,
        options: Options,
    ) -> impl Stream<Item = Event> + Send + 'static + use<> {
        let engine = Arc::clone(self);
        // The caller's span (the request's) is entered per model turn and tool
        // round, where logging happens, never per chunk.
        let span = tracing::Span::current();
        async_stream::stream! {
            match &engine.llm {
                None => {
                    for event in engine.retrieval_only(&conversation).instrument(span.clone()).await {
                        yield event;
                    }
                }
                Some(client) => {
                    let mut run = Run::new(&engine, client, conversation, options);
                    // Searches the question while the first model call runs;
                    // aborted when dropped (a direct answer, or the request ends).
                    let mut prefetch = span
                        .in_scope(|| engine.tools.prefetch(&run.question))
                        .map(Arc::new);
                    let mut early = early::Early::default();
                    for step in 1..=engine.chat.max_steps {
                        let last = step == engine.chat.max_steps || run.final_answer;
                        let request = run.request(last);
                        let mut turn = match client.open(&request).instrument(span.clone()).await {
                            Ok(turn) => turn,
                            Err(err) => {
                                yield span.in_scope(|| model_error(&err));
                                return;
                            }
                        };
                        run.steps = step;
                        let mut events = Vec::with_capacity(4);
                        loop {
                            match turn.next_events(&mut events).await {
                                Ok(true) => {
                                    for event in events.drain(..) {
                                        match event {
                                            TurnEvent::ToolCallReady(ready) => {
                                                if !last && !run.is_client_tool(&ready.call.name) {
                                                    early.start(&engine, ready, prefetch.clone(), &span);
                                                }
                                            }
                                            event => {
                                                if let Some(event) = run.relay(event) {
                                                    yield event;
                                                }
                                            }
                                        }
                                    }
                                }
                                Ok(false) => break,
                                Err(err) => {
                                    yield span.in_scope(|| model_error(&err));
                                    return;
                                }
                            }
                        }
                        let turn = match turn.finish() {
                            Ok(turn) => turn,
                            Err(err) => {
                                yield span.in_scope(|| model_error(&err));
                                return;
                            }
                        };
                        run.add_usage(turn.usage);
                        if let Some(calls) = run.client_calls(&turn.tool_calls) {
                            for call in calls {
                                yield call;
                            }
                            yield run.done("tool_calls".into());
                            return;
                        }
                        if turn.tool_calls.is_empty() {
                            drop(prefetch.take());
                            yield run.done(turn.finish_reason);
                            return;
                        }
                        if last {
                            yield Event::Error {
                                code: Code::StepLimit,
                                message: format!(
                                    "the model still called tools after {} steps (chat.max_steps)",
                                    run.steps
                                ),
                            };
                            return;
                        }
                        for call in &turn.tool_calls {
                            yield Event::ToolCall {
                                id: call.id.clone(),
                                name: call.name.clone(),
                                arguments: call.arguments.clone(),
                            };
                        }
                        let results = early
                            .results(&engine, &turn.tool_calls, prefetch.as_deref())
                            .instrument(span.clone())
                            .await;
                        for event in run.absorb(turn, results) {
                            yield event;
                        }
                    }
                }
            }
        }
    }

    /// Answers from the knowledge base alone, clearly labelled: the best match when it
    /// stands out, else the closest questions ("did you mean"), else the no-match message.
    async fn retrieval_only(&self, conversation: &[Message]) -> Vec<Event> {
        let question = last_user_text(conversation).unwrap_or_default();
        let Some(kb) = &self.kb else {
            return vec![Event::Error {
                code: Code::NotConfigured,
                message: "no language model and no knowledge base are configured".into(),
            }];
        };
        let mut events = vec![Event::Status {
            stage: Stage::RetrievalOnly,
            tool: None,
            message: "no language model is configured: answering from the knowledge base".into(),
        }];
        let hits = match crate::kb::timed_search(kb.as_ref(), question, &self.search).await {
            Ok(hits) => hits,
            Err(err) => {
                tracing::error!(error = %err, "knowledge-base search failed");
                events.push(Event::Error {
                    code: Code::KbError,
                    message: format!("knowledge-base search failed: {err}"),
                });
                return events;
            }
        };
        let body = match choose(&hits) {
            Choice::NoMatch => {
                events.push(Event::Delta(self.chat.no_match_message.clone()));
                events.push(done("no_match", None, 0));
                return events;
            }
            Choice::Answer(best) => format!(
                "{}\n\n{}",
                self.chat.retrieval_only_label,
                best.answer.as_deref().unwrap_or(&best.text)
            ),
            Choice::Suggest(closest) => {
                let mut body = format!(
                    "{}\n\n{}",
                    self.chat.retrieval_only_label, self.chat.did_you_mean_message
                );
                for (i, hit) in closest.iter().enumerate() {
                    body.push_str(&format!("\n{}. {}", i + 1, hit.title));
                }
                events.push(Event::Sources(
                    closest
                        .iter()
                        .enumerate()
                        .map(|(i, hit)| Source::from_hit(i + 1, hit))
                        .collect(),
                ));
                events.push(Event::Delta(body));
                events.push(done("did_you_mean", None, 0));
                return events;
            }
        };
        events.push(Event::Sources(
            hits.iter()
                .enumerate()
                .map(|(i, hit)| Source::from_hit(i + 1, hit))
                .collect(),
        ));
        events.push(Event::Delta(body));
        events.push(done("retrieval_only", None, 0));
        events
    }
}

/// The state of one answer across model calls.
struct Run<'a> {
    /// The engine's settings and tools.
    engine: &'a Engine,
    /// The provider settings.
    settings: &'a llm::Settings,
    /// The conversation sent upstream, growing with tool exchanges.
    messages: Vec<Message>,
    /// The user's last question (for prompt templates).
    question: String,
    /// Model calls made so far.
    steps: u32,
    /// Usage summed over the calls.
    usage: Option<Usage>,
    /// Sources numbered so far.
    sources_seen: usize,
    /// A tool round has happened: use the answer model and temperature.
    answering: bool,
    /// The next call must answer without tools (prompt_template mode).
    final_answer: bool,
    /// Sampling settings and the client's tools.
    options: Options,
    /// ragstream's tools and the client's, encoded once for this answer;
    /// `None` when the client sent no tools.
    all_tools: Option<Tools>,
}

impl<'a> Run<'a> {
    fn new(
        engine: &'a Engine,
        client: &'a llm::Client,
        conversation: Vec<Message>,
        options: Options,
    ) -> Self {
        let all_tools = (!options.client_tools.is_empty()).then(|| {
            let mut specs = engine.tools.specs();
            specs.extend(options.client_tools.iter().cloned());
            client.encode_tools(&specs)
        });
        let question = last_user_text(&conversation).unwrap_or_default().to_owned();
        let mut messages = Vec::with_capacity(conversation.len() + 3);
        if let Some(system) = &engine.chat.system_prompt {
            messages.push(Message::text(Role::System, system.clone()));
        }
        messages.extend(conversation);
        Self {
            engine,
            settings: client.settings(),
            messages,
            question,
            steps: 0,
            usage: None,
            sources_seen: 0,
            answering: false,
            final_answer: false,
            options,
            all_tools,
        }
    }

    /// The client's tool calls of a finished turn, as events, if it made any.
    /// They end the answer; ragstream's own calls of the same turn are
    /// dropped, because the model cannot go on without the client's results.
    fn client_calls(&self, calls: &[ToolCall]) -> Option<Vec<Event>> {
        let client: Vec<Event> = calls
            .iter()
            .filter(|call| self.is_client_tool(&call.name))
            .map(|call| Event::ClientToolCall {
                id: call.id.clone(),
                name: call.name.clone(),
                arguments: call.arguments.clone(),
            })
            .collect();
        (!client.is_empty()).then_some(client)
    }

    fn is_client_tool(&self, name: &str) -> bool {
        self.options
            .client_tools
            .iter()
            .any(|spec| spec.name == name)
    }

    /// The request of the next model call.
    fn request(&self, last: bool) -> Request<'_> {
        let chat = &self.engine.chat;
        let (model, temperature) = if self.answering {
            (
                chat.answer_model.as_deref().unwrap_or(&self.settings.model),
                chat.answer_temperature.or(self.settings.temperature),
            )
        } else {
            (self.settings.model.as_str(), self.settings.temperature)
        };
        Request {
            model,
            messages: &self.messages,
            temperature: self.options.temperature.or(temperature),
            max_tokens: self.options.max_tokens,
            tools: self
                .all_tools
                .as_ref()
                .or(self.engine.tool_definitions.as_ref())
                .filter(|_| !self.final_answer),
            tool_choice: if last {
                ToolChoice::None
            } else {
                ToolChoice::Auto
            },
        }
    }

    /// Maps a turn event to a client event.
    fn relay(&self, event: TurnEvent) -> Option<Event> {
        match event {
            TurnEvent::Content(text) => Some(Event::Delta(text)),
            TurnEvent::Reasoning(text) => Some(Event::Reasoning(text)),
            // The client runs its own tools: nothing is being searched.
            TurnEvent::ToolCallStarted(started) if self.is_client_tool(&started.name) => None,
            TurnEvent::ToolCallStarted(started) => Some(Event::Status {
                stage: Stage::Searching,
                message: self.engine.tools.status_message(&started.name),
                tool: Some(started.name),
            }),
            // The turn loop starts ready calls; nothing to show.
            TurnEvent::ToolCallReady(_) => None,
        }
    }

    fn add_usage(&mut self, usage: Option<Usage>) {
        let Some(new) = usage else { return };
        let sum = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
        self.usage = Some(match self.usage {
            None => new,
            Some(old) => Usage {
                prompt_tokens: sum(old.prompt_tokens, new.prompt_tokens),
                completion_tokens: sum(old.completion_tokens, new.completion_tokens),
                total_tokens: sum(old.total_tokens, new.total_tokens),
            },
        });
    }

    fn done(&self, finish_reason: String) -> Event {
        done(&finish_reason, self.usage, self.steps)
    }

    /// Records tool results: events for the client, messages for the model.
    ///
    /// The context budget picks the hits each result shows the model
    /// ([`prompt::fit`]); exactly those are numbered, rendered and listed in
    /// `sources`, continuing the numbering of earlier calls and steps.
    fn absorb(&mut self, turn: Turn, results: Vec<CallResult>) -> Vec<Event> {
        let budget = self.engine.search.max_context_chars;
        let mut events = Vec::with_capacity(results.len() + 2);
        let mut sources = Vec::new();
        let mut shown = Vec::with_capacity(results.len());
        for result in results {
            let first = self.sources_seen + 1;
            let elapsed_ms = result.elapsed.as_millis() as u64;
            let (content, hits, error) = match result.output {
                Ok(Output::Text(text)) => (text, 0, None),
                Ok(Output::Hits(hits)) => {
                    let hits = prompt::fit(hits, budget);
                    sources.extend(
                        hits.iter()
                            .enumerate()
                            .map(|(i, hit)| Source::from_hit(first + i, hit)),
                    );
                    self.sources_seen += hits.len();
                    (prompt::render_hits(&hits, first), hits.len(), None)
                }
                Err(err) => (format!("error: {err}"), 0, Some(err.to_string())),
            };
            events.push(Event::ToolResult {
                id: result.call.id.clone(),
                name: result.call.name.clone(),
                error,
                hits,
                elapsed_ms,
            });
            shown.push((result.call, content));
        }
        if !sources.is_empty() {
            events.push(Event::Sources(sources));
        }
        events.push(Event::Status {
            stage: Stage::Answering,
            tool: None,
            message: "writing the answer…".into(),
        });
        self.answering = true;
        match self.engine.chat.answer_mode {
            AnswerMode::ToolMessage => self.append_tool_exchange(turn, shown),
            AnswerMode::PromptTemplate => {
                let question =
                    model_question(&turn.tool_calls).unwrap_or_else(|| self.question.clone());
                let background = shown
                    .iter()
                    .map(|(_, content)| content.as_str())
                    .collect::<Vec<_>>()
                    .join("\n\n");
                let prompt =
                    prompt::fill_template(&self.engine.chat.answer_prompt, &question, &background);
                self.messages.retain(|m| m.role == Role::System);
                self.messages.push(Message::text(Role::User, prompt));
                self.final_answer = true;
            }
        }
        events
    }

    /// Appends the assistant's tool calls and one result message per call.
    fn append_tool_exchange(&mut self, turn: Turn, shown: Vec<(ToolCall, String)>) {
        let mut assistant = Message::text(Role::Assistant, turn.content);
        if assistant.content.as_deref() == Some("") {
            assistant.content = None;
        }
        // DeepSeek's thinking mode rejects tool results whose assistant turn lost its reasoning.
        assistant.reasoning_content = turn.reasoning;
        assistant.tool_calls = turn.tool_calls;
        self.messages.push(assistant);
        for (call, content) in shown {
            self.messages.push(Message::tool_result(call, content));
        }
    }
}

/// The question as the model phrased it in its tool call: the `question`
/// argument, else the call's only string argument.
fn model_question(calls: &[ToolCall]) -> Option<String> {
    calls.iter().find_map(|call| {
        let args: serde_json::Value = serde_json::from_str(&call.arguments).ok()?;
        let object = args.as_object()?;
        let mut strings = object.values().filter_map(|v| v.as_str());
        let only = match (strings.next(), strings.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        };
        let question = object.get("question").and_then(|v| v.as_str()).or(only)?;
        (!question.trim().is_empty()).then(|| question.trim().to_owned())
    })
}

fn last_user_text(conversation: &[Message]) -> Option<&str> {
    conversation
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .and_then(|m| m.content.as_deref())
}

fn done(finish_reason: &str, usage: Option<Usage>, steps: u32) -> Event {
    Event::Done {
        finish_reason: finish_reason.to_owned(),
        usage,
        steps,
    }
}

fn model_error(err: &llm::Error) -> Event {
    tracing::warn!(code = err.code().as_str(), error = %err, "model call failed");
    Event::Error {
        code: err.code(),
        message: err.to_string(),
    }
}
