//! Connections: a deadpool of tokio-postgres clients over rustls (Supabase requires TLS;
//! `sslmode=disable` in the URL connects in plain text, the default `prefer` uses TLS
//! when the server offers it).

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use rustls_platform_verifier::BuilderVerifierExt;

use super::config::PostgresConfig;
use crate::kb::Error;
use crate::secret::redact;

/// Builds the pool; no connection is opened yet.
pub fn build(cfg: &PostgresConfig) -> Result<Pool, Error> {
    let url = cfg
        .url
        .as_ref()
        .ok_or_else(|| Error::Config("kb.postgres.url (or DATABASE_URL) is not set".into()))?;
    let mut pg: tokio_postgres::Config = url.expose().parse().map_err(|err| {
        Error::Config(format!(
            "kb.postgres.url {} is not a PostgreSQL URL: {err}",
            redact(url.expose())
        ))
    })?;
    pg.connect_timeout(Duration::from_millis(cfg.connect_timeout_ms));
    if pg.get_application_name().is_none() {
        pg.application_name("ragstream");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_platform_verifier())
        .map_err(|err| Error::store(format!("cannot set up TLS for PostgreSQL: {err}")))?
        .with_no_client_auth();
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
    let manager = Manager::from_config(
        pg,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let wait = Duration::from_millis(cfg.connect_timeout_ms);
    Pool::builder(manager)
        .max_size(cfg.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(wait))
        .create_timeout(Some(wait))
        .build()
        .map_err(|err| Error::store(format!("cannot build the PostgreSQL pool: {err}")))
}

/// A pooled client, or an error saying the database cannot be reached (and where).
pub async fn client(pool: &Pool, cfg: &PostgresConfig) -> Result<Object, Error> {
    pool.get().await.map_err(|err| {
        Error::store(format!(
            "PostgreSQL at {} cannot be reached: {}",
            target(cfg),
            redact(&describe(&err))
        ))
    })
}

/// `host:port/dbname` of the configured URL, without credentials.
pub fn target(cfg: &PostgresConfig) -> String {
    let Some(pg) = cfg
        .url
        .as_ref()
        .and_then(|u| u.expose().parse::<tokio_postgres::Config>().ok())
    else {
        return "?".into();
    };
    let host = pg
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", pg.get_dbname().unwrap_or("postgres"))
}

/// An error with its causes, one after another (tokio-postgres hides the cause of
/// "error connecting to server" in `source()`).
pub fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A database error as a store error, with its causes and no credentials.
pub fn sql(err: tokio_postgres::Error) -> Error {
    Error::store(format!("postgres: {}", redact(&describe(&err))))
}
