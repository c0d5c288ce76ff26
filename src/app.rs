//! Wires a validated [`Config`] into a running engine and server.

use std::future::IntoFuture;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Backend, Config};
use crate::engine::Engine;
use crate::kb::{KnowledgeBase, Store};
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
    /// The server stopped with an I/O error.
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// Opens the embedded knowledge base and seeds it with the sample when empty.
pub async fn open_kb(config: &Config) -> Result<Store, Error> {
    let store = crate::kb::open(&config.kb).await?;
    if let Some(report) = crate::kb::seed_if_empty(&store, &config.kb.sample).await? {
        tracing::info!(added = report.added, sample = %config.kb.sample.display(), "knowledge base seeded");
    }
    Ok(store)
}

/// Builds the engine over an open store: model client, tools, knowledge base.
pub fn engine(config: &Config, store: &Store) -> Result<Arc<Engine>, Error> {
    let kb: Arc<dyn KnowledgeBase> = Arc::new(store.clone());
    let search = config.kb.search_params();
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
                Backend::KnowledgeBase => Arc::new(KnowledgeBaseTool::new(
                    spec,
                    Arc::clone(&kb),
                    search,
                    raw.query_argument.clone(),
                )) as Arc<dyn Tool>,
            }
        })
        .collect();
    Ok(Arc::new(Engine::new(
        llm,
        Registry::new(tools),
        Some(kb),
        config.chat.clone(),
        search,
    )))
}

/// Binds the listen address.
pub async fn bind(config: &Config) -> Result<TcpListener, Error> {
    TcpListener::bind(config.addr)
        .await
        .map_err(|source| Error::Bind {
            addr: config.addr,
            source,
        })
}

/// Serves on `listener` until `shutdown` is cancelled: then stops accepting,
/// lets running streams go on for `server.shutdown_grace_ms`, ends the rest
/// with an error event, and returns.
pub async fn serve(
    config: &Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    use axum::serve::ListenerExt;
    let metrics = crate::telemetry::install();
    let upkeep = metrics.clone();
    let upkeep_stop = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tick.tick() => upkeep.run_upkeep(),
                () = upkeep_stop.cancelled() => break,
            }
        }
    });
    let store = open_kb(config).await?;
    let state = AppState {
        engine: engine(config, &store)?,
        store,
        search: config.kb.search_params(),
        limits: config.limits,
        streams: Arc::new(tokio::sync::Semaphore::new(config.limits.max_streams)),
        shutdown: shutdown.clone(),
        grace: config.limits.shutdown_grace,
        metrics,
    };
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, server::app(state))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .into_future();
    // Streams end themselves at the grace deadline; this bound covers
    // connections that would still not close after that.
    let hard_stop = async {
        shutdown.cancelled().await;
        tokio::time::sleep(config.limits.shutdown_grace + std::time::Duration::from_secs(5)).await;
    };
    tokio::select! {
        result = server => result.map_err(Error::Serve)?,
        () = hard_stop => tracing::warn!("connections still open after the grace period; closing them"),
    }
    tracing::info!("server stopped");
    Ok(())
}
