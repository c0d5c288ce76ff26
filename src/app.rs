//! Wires a validated [`Config`] into a running engine and server.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Backend, Config};
use crate::engine::Engine;
use crate::kb::{KnowledgeBase, SharedStore};
use crate::server::settings::Limits;
use crate::server::{self, AppState};
use crate::tools::knowledge_base::KnowledgeBaseTool;
use crate::tools::{Registry, Spec, Tool};

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The knowledge base could not be opened.
    #[error(transparent)]
    Kb(#[from] crate::kb::Error),
    /// The model client could not be built.
    #[error(transparent)]
    Llm(#[from] crate::llm::Error),
    /// The listen address is unusable.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Opens the configured knowledge base and, for the embedded store, seeds it with the
/// sample if it never held a document.
pub async fn open_kb(config: &Config) -> Result<SharedStore, Error> {
    let store = crate::kb::connect(&config.kb).await?;
    // A shared database is never seeded with the sample: it is the team's.
    if config.kb.store == crate::kb::config::StoreKind::Embedded {
        // Logs what it imported itself.
        crate::kb::seed_if_empty(store.as_ref(), &config.kb.sample).await?;
    }
    Ok(store)
}

/// Builds the engine over an open store: model client, tools, knowledge base.
pub fn engine(config: &Config, kb: &Arc<dyn KnowledgeBase>) -> Result<Arc<Engine>, Error> {
    let search = config.kb.search_params();
    // Without vectors a prefetch would only save a full-text search.
    let prefetch = (config.chat.prefetch == crate::engine::PrefetchMode::Auto
        && config.kb.embeddings.provider != crate::kb::config::Provider::None)
        .then_some(config.chat.prefetch_similarity);
    let llm = config
        .llm
        .clone()
        .map(crate::llm::Client::new)
        .transpose()?;
    let tools = config
        .tools
        .iter()
        .map(|raw| {
            let spec = Spec {
                name: raw.name.clone(),
                description: raw.description.clone(),
                parameters: raw.parameters.clone(),
                status_message: raw.status_message.clone(),
                timeout: std::time::Duration::from_millis(raw.timeout_ms),
            };
            match raw.backend {
                Backend::KnowledgeBase => {
                    let tool = KnowledgeBaseTool::new(
                        spec,
                        Arc::clone(kb),
                        search,
                        raw.query_argument.clone(),
                    );
                    let tool = match prefetch {
                        Some(threshold) => tool.with_prefetch(threshold),
                        None => tool,
                    };
                    Arc::new(tool) as Arc<dyn Tool>
                }
            }
        })
        .collect();
    Ok(Arc::new(Engine::new(
        llm,
        Registry::new(tools),
        Some(Arc::clone(kb)),
        config.chat.clone(),
        search,
    )))
}

/// Binds the listen address with the configured accept backlog
/// (`server.backlog`).
///
/// `TcpListener::bind` listens with a backlog of 128: when a thousand clients
/// connect at once, SYNs past the queue are dropped and those clients wait a
/// second for the retransmit. The kernel caps the value at
/// `net.core.somaxconn`.
pub async fn bind(config: &Config) -> Result<TcpListener, Error> {
    let addr = config.addr;
    let listen = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // As std and mio do on Unix: a restart can bind while old
        // connections sit in TIME_WAIT.
        #[cfg(unix)]
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(config.backlog)
    };
    listen().map_err(|source| Error::Bind { addr, source })
}

/// What `serve` needs once the knowledge base is open and the engine built.
pub struct App {
    /// Answers questions.
    engine: Arc<Engine>,
    /// The knowledge base's read side, for the hit-test endpoint.
    kb: Arc<dyn KnowledgeBase>,
    /// Search parameters from the config.
    search: crate::kb::SearchParams,
    /// Request limits.
    limits: Limits,
    /// API keys, rate limits, CORS.
    access: crate::server::access::Settings,
    /// The id `/v1` clients ask for.
    model_id: Arc<str>,
    /// Configured tool names, for metrics that exist from the start.
    tools: Vec<String>,
}

/// Opens the knowledge base and builds the engine: everything that can fail
/// before the server binds and says it is listening.
pub async fn prepare(config: &Config) -> Result<App, Error> {
    let kb = crate::kb::rerank::wrap(open_kb(config).await?.reader(), &config.kb.rerank)?;
    Ok(App {
        engine: engine(config, &kb)?,
        kb,
        search: config.kb.search_params(),
        limits: config.limits,
        access: config.access.clone(),
        model_id: config.model_id.as_str().into(),
        tools: config.tools.iter().map(|t| t.name.clone()).collect(),
    })
}

/// [`prepare`], then [`App::serve`].
pub async fn serve(
    config: &Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    prepare(config).await?.serve(listener, shutdown).await
}

/// How long after the grace deadline draining waits for the streams that
/// ended there to write their last event and let go of their slots.
const DRAIN_MARGIN: Duration = Duration::from_secs(1);

/// How long after the grace deadline connections may take to close before
/// the server stops anyway.
const HARD_STOP_MARGIN: Duration = Duration::from_secs(5);

impl App {
    /// Serves on `listener` until `shutdown` is cancelled, then drains: new
    /// connections are still accepted, `/readyz` answers 503 `draining` and
    /// new questions 503 `shutting_down`, while running streams go on for up
    /// to `server.shutdown_grace_ms` (those still running then end with an
    /// error event). When the last stream has ended the server stops
    /// accepting, closes idle connections and returns.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        let metrics = crate::telemetry::install();
        crate::telemetry::register(server::ENDPOINTS, &self.tools);
        let access = Arc::new(crate::server::access::Access::new(&self.access));
        let upkeep = metrics.clone();
        let upkeep_access = Arc::clone(&access);
        let upkeep_stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        upkeep.run_upkeep();
                        upkeep_access.upkeep();
                    }
                    () = upkeep_stop.cancelled() => break,
                }
            }
        });
        let limits = self.limits;
        let streams = Arc::new(tokio::sync::Semaphore::new(limits.max_streams));
        let state = AppState {
            engine: self.engine,
            kb: self.kb,
            search: self.search,
            limits,
            model_id: self.model_id,
            streams: Arc::clone(&streams),
            shutdown: shutdown.clone(),
            grace: limits.shutdown_grace,
            metrics,
            access,
        };
        let drained = {
            let shutdown = shutdown.clone();
            let every_slot = u32::try_from(limits.max_streams).unwrap_or(u32::MAX);
            async move {
                shutdown.cancelled().await;
                // Holding every slot means no stream is running; none can
                // start either, since new questions are refused while draining.
                let all_ended = streams.acquire_many(every_slot);
                if tokio::time::timeout(limits.shutdown_grace + DRAIN_MARGIN, all_ended)
                    .await
                    .is_err()
                {
                    tracing::warn!("streams still running after the grace period");
                }
                tracing::info!("draining done; closing connections");
            }
        };
        let server = server::listen::serve(listener, server::app(state), &limits, drained);
        // Streams end themselves at the grace deadline; this bound covers
        // connections that would still not close after that.
        let hard_stop = async {
            shutdown.cancelled().await;
            tokio::time::sleep(limits.shutdown_grace + HARD_STOP_MARGIN).await;
        };
        tokio::select! {
            () = server => {}
            () = hard_stop => tracing::warn!("connections still open after the grace period; closing them"),
        }
        tracing::info!("server stopped");
        Ok(())
    }
}
