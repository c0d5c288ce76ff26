//! Connections: a deadpool of tokio-postgres clients over rustls (Supabase requires TLS;
//! `sslmode=disable` in the URL connects in plain text, the default `prefer` uses TLS
//! when the server offers it). The server's certificate is checked against the system's
//! roots, or, with libpq's `sslrootcert=/path/ca.crt` in the URL, against that file's
//! certificates only (a self-signed or private-CA server, such as Supabase's).

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use percent_encoding::percent_decode_str;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
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
    let (url_text, root_cert) = split_root_cert(url.expose());
    let mut pg: tokio_postgres::Config = url_text.parse().map_err(|err| {
        Error::Config(format!(
            "kb.postgres.url {} is not a PostgreSQL URL: {err}",
            redact(url.expose())
        ))
    })?;
    pg.connect_timeout(Duration::from_millis(cfg.connect_timeout_ms));
    if pg.get_application_name().is_none() {
        pg.application_name("ragstream");
    }
    let tls = tls_config(root_cert.as_deref())?;
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

/// The URL without libpq's `sslrootcert` parameter (tokio-postgres refuses it), and
/// that parameter's value (percent-decoded), if given.
fn split_root_cert(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut root = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("sslrootcert=") {
            Some(value) => {
                root = Some(percent_decode_str(value).decode_utf8_lossy().into_owned());
                false
            }
            None => true,
        })
        .collect();
    if kept.is_empty() {
        (base.to_owned(), root)
    } else {
        (format!("{base}?{}", kept.join("&")), root)
    }
}

/// rustls for PostgreSQL: the system's roots, or only the certificates in `root_cert`.
fn tls_config(root_cert: Option<&str>) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::store(format!("cannot set up TLS for PostgreSQL: {err}")))?;
    let Some(path) = root_cert else {
        return Ok(builder
            .with_platform_verifier()
            .map_err(|err| Error::store(format!("cannot set up TLS for PostgreSQL: {err}")))?
            .with_no_client_auth());
    };
    let bad = |why: String| {
        Error::Config(format!(
            "kb.postgres.url: sslrootcert={path} {why}; give the PEM file of the CA (or \
             self-signed certificate) that signed the server's certificate"
        ))
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs =
        CertificateDer::pem_file_iter(path).map_err(|err| bad(format!("cannot be read: {err}")))?;
    for cert in certs {
        let cert = cert.map_err(|err| bad(format!("is not a PEM certificate: {err}")))?;
        roots
            .add(cert)
            .map_err(|err| bad(format!("holds an unusable certificate: {err}")))?;
    }
    if roots.is_empty() {
        return Err(bad("holds no certificate".into()));
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// A pooled client, or an error saying the database cannot be reached (and where).
pub async fn client(pool: &Pool, cfg: &PostgresConfig) -> Result<Object, Error> {
    pool.get().await.map_err(|err| {
        let text = redact(&describe(&err)).into_owned();
        let hint = if text.contains("invalid peer certificate") {
            "; the server's TLS certificate is not trusted: add sslrootcert=/path/to/ca.crt \
             (the CA or self-signed certificate that signed it) to kb.postgres.url"
        } else {
            ""
        };
        Error::store(format!(
            "PostgreSQL at {} cannot be reached: {text}{hint}",
            target(cfg),
        ))
    })
}

/// A second pooled client for the same search, only if the pool has one free now (or
/// may open one): a search never waits for a second connection while it holds one, so
/// `pool_size = 1`, or every connection busy, cannot deadlock searches; they then run
/// their statements one after the other on the connection they hold.
pub async fn spare(pool: &Pool) -> Option<Object> {
    let mut timeouts = pool.timeouts();
    timeouts.wait = Some(Duration::ZERO);
    match pool.timeout_get(&timeouts).await {
        Ok(client) => Some(client),
        Err(err) => {
            tracing::debug!(error = %redact(&describe(&err)), "no second PostgreSQL connection: one after the other");
            None
        }
    }
}

/// `host:port/dbname` of the configured URL, without credentials.
pub fn target(cfg: &PostgresConfig) -> String {
    let Some(pg) = cfg.url.as_ref().and_then(|u| {
        split_root_cert(u.expose())
            .0
            .parse::<tokio_postgres::Config>()
            .ok()
    }) else {
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

/// Runs `statement`, prepared once per connection (deadpool's statement cache), so a
/// search's statements cost one round trip each instead of two.
pub async fn cached(
    client: &impl deadpool_postgres::GenericClient,
    statement: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, Error> {
    let prepared = client.prepare_cached(statement).await.map_err(sql)?;
    client.query(&prepared, params).await.map_err(sql)
}

/// A database error as a store error, with its causes and no credentials.
pub fn sql(err: tokio_postgres::Error) -> Error {
    Error::store(format!("postgres: {}", redact(&describe(&err))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslrootcert_is_taken_off_the_url_and_decoded() {
        let (url, root) =
            split_root_cert("postgres://u@h:5432/db?sslmode=require&sslrootcert=%2Ftmp%2Fca.crt");
        assert_eq!(url, "postgres://u@h:5432/db?sslmode=require");
        assert_eq!(root.as_deref(), Some("/tmp/ca.crt"));
        let (url, root) = split_root_cert("postgres://u@h/db?sslrootcert=/a b.pem");
        assert_eq!(
            (url.as_str(), root.as_deref()),
            ("postgres://u@h/db", Some("/a b.pem"))
        );
        assert_eq!(split_root_cert("postgres://h/db").1, None);
    }

    #[test]
    fn a_missing_or_empty_root_certificate_file_says_what_to_give() {
        let err = tls_config(Some("/nonexistent/ca.crt"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sslrootcert=/nonexistent/ca.crt cannot be read"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        let err = tls_config(empty.to_str()).unwrap_err().to_string();
        assert!(err.contains("holds no certificate"), "{err}");
    }
}
