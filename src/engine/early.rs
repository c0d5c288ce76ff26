//! Tool calls started the moment their arguments are complete
//! ([`TurnEvent::ToolCallReady`](crate::llm::TurnEvent::ToolCallReady)), while
//! the model's turn is still streaming, instead of after it ended.
//!
//! A started call is used only if the finished turn holds the same call at the
//! same position with the same name and arguments; otherwise (fragments came
//! after the JSON closed) it is dropped, which aborts it, and the finished call
//! runs as usual.

use std::sync::Arc;

use futures::future::join_all;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use super::Engine;
use crate::llm::ToolCall;
use crate::llm::assemble::Ready;
use crate::tools::{CallResult, Prefetch};

/// One call started early.
struct Started {
    /// Position of the call in its turn.
    position: usize,
    /// The call as it was when it started.
    call: ToolCall,
    /// The running call; aborted when dropped.
    task: AbortOnDropHandle<CallResult>,
}

/// The calls of one turn started before the turn ended.
#[derive(Default)]
pub(super) struct Early {
    /// In the order they became ready.
    started: Vec<Started>,
}

impl Early {
    /// Starts `ready` in a task of its own, if it names a configured tool
    /// (other names fail at once at the end of the turn; nothing to gain).
    pub(super) fn start(
        &mut self,
        engine: &Arc<Engine>,
        ready: Ready,
        prefetch: Option<Arc<Prefetch>>,
        span: &tracing::Span,
    ) {
        if engine.tools.get(&ready.call.name).is_none() {
            return;
        }
        let engine = Arc::clone(engine);
        let call = ready.call.clone();
        // Counted only if used (`results`), so a discarded start is not counted twice.
        let run = async move { engine.tools.execute(call, prefetch.as_deref()).await };
        self.started.push(Started {
            position: ready.position,
            call: ready.call,
            task: AbortOnDropHandle::new(tokio::spawn(run.instrument(span.clone()))),
        });
    }

    /// The results of the finished turn's `calls`, in order: from the calls
    /// started early where they match, run now otherwise.
    pub(super) async fn results(
        &mut self,
        engine: &Engine,
        calls: &[ToolCall],
        prefetch: Option<&Prefetch>,
    ) -> Vec<CallResult> {
        let mut started = std::mem::take(&mut self.started);
        let runs = calls.iter().enumerate().map(|(n, call)| {
            let early = started
                .iter()
                .position(|s| {
                    s.position == n && s.call.name == call.name && s.call.arguments == call.arguments
                })
                .map(|i| started.swap_remove(i));
            async move {
                if let Some(early) = early {
                    match early.task.await {
                        Ok(mut result) => {
                            // The id may have arrived after the arguments closed.
                            result.call = call.clone();
                            engine.tools.record(&result);
                            return result;
                        }
                        Err(err) => tracing::warn!(error = %err, "an early tool call failed; running it again"),
                    }
                }
                engine.tools.run_with(call.clone(), prefetch).await
            }
        });
        join_all(runs).await
    }
}
