//! Wires a validated [`Config`] into a running engine and server.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Backend, Config};
use crate::engine::Engine;
use crate::kb::KnowledgeBase;
use crate::kb::memory::MemoryStore;
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

/// Opens the knowledge base named by the config, if any.
pub fn open_kb(config: &Config) -> Result<Option<Arc<dyn KnowledgeBase>>, Error> {
    let Some(path) = &config.kb.jsonl else {
        return Ok(None);
    };
    let store = MemoryStore::load(path)?;
    tracing::info!(path = %path.display(), documents = store.len(), "knowledge base loaded");
    Ok(Some(Arc::new(store)))
}

/// Builds the engine: model client, tools and knowledge base.
pub fn engine(config: &Config) -> Result<Arc<Engine>, Error> {
    let kb = open_kb(config)?;
    let llm = config
        .llm
        .clone()
        .map(crate::llm::Client::new)
        .transpose()?;
    let tools = config
        .tools
        .iter()
        .filter_map(|raw| {
            let spec = Spec {
                name: raw.name.clone(),
                description: raw.description.clone(),
                parameters: raw.parameters.clone(),
                status_message: raw.status_message.clone(),
            };
            match raw.backend {
                Backend::KnowledgeBase => kb.clone().map(|kb| {
                    Arc::new(KnowledgeBaseTool::new(
                        spec,
                        kb,
                        config.kb.search,
                        raw.query_argument.clone(),
                    )) as Arc<dyn Tool>
                }),
            }
        })
        .collect();
    Ok(Arc::new(Engine::new(
        llm,
        Registry::new(tools),
        kb,
        config.chat.clone(),
        config.kb.search,
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

/// Serves on `listener` until `shutdown` is cancelled.
pub async fn serve(
    config: &Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    use axum::serve::ListenerExt;
    let state = AppState {
        engine: engine(config)?,
        limits: config.limits,
    };
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, server::app(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(Error::Serve)
}
