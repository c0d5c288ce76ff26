//! A throwaway PostgreSQL cluster for the tests of the PostgreSQL store.
//!
//! One cluster per test binary: `initdb` in a temporary directory (as user `postgres`
//! when the tests run as root: initdb refuses root), started on a free loopback port,
//! stopped when the test binary exits. Each test gets its own database with pgvector.
//! Missing binaries or extension fail the test with "run scripts/setup".
//! The cluster also speaks TLS (`ssl=on`) with a certificate for 127.0.0.1 signed by a
//! self-signed CA, both made by `openssl` at start ([`certificate`] is the CA);
//! [`url`] connects in plain text.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The running cluster.
struct Cluster {
    /// Data directory (inside `_dir`).
    data: PathBuf,
    /// pg_ctl and friends.
    bin: PathBuf,
    /// Loopback port.
    port: u16,
    /// Keeps the temporary directory alive.
    _dir: tempfile::TempDir,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// Where PostgreSQL 15's server binaries are, or a panic saying to run scripts/setup.
fn bin_dir() -> PathBuf {
    let dir = PathBuf::from("/usr/lib/postgresql/15/bin");
    assert!(
        dir.join("initdb").is_file() && dir.join("pg_ctl").is_file(),
        "PostgreSQL 15 is not installed ({} has no initdb/pg_ctl): run scripts/setup",
        dir.display()
    );
    assert!(
        Path::new("/usr/share/postgresql/15/extension/vector.control").is_file(),
        "pgvector is not installed for PostgreSQL 15: run scripts/setup"
    );
    dir
}

/// Runs `cmd` as user `postgres` when we are root.
fn as_postgres(program: &Path) -> Command {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// Stops the cluster when the test binary exits.
extern "C" fn stop_cluster() {
    if let Some(c) = CLUSTER.get() {
        let _ = as_postgres(&c.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&c.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        // Statics are never dropped: remove the directory here (again if the exiting
        // server removed a file under our feet).
        for _ in 0..5 {
            if std::fs::remove_dir_all(c._dir.path()).is_ok() || !c._dir.path().exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// Runs `openssl` with `args` in `dir`, or panics saying what failed.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is not installed: run scripts/setup");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed CA (`ca.crt` in `dir`) and the server's certificate for 127.0.0.1
/// signed by it (`cert`, `key`): the layout `sslrootcert` expects, as with a private CA.
fn make_certificates(dir: &Path, cert: &Path, key: &Path) {
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ]
        .into_iter()
        .chain([
            "-subj",
            "/CN=ragstream test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ])
        .collect::<Vec<_>>(),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
        ]
        .into_iter()
        .chain(["-keyout", key.to_str().unwrap(), "-out", "server.csr"])
        .collect::<Vec<_>>(),
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
        ]
        .into_iter()
        .chain(["-CAcreateserial", "-days", "2", "-extfile", "san.ext"])
        .chain(["-out", cert.to_str().unwrap()])
        .collect::<Vec<_>>(),
    );
}

/// A free loopback port (bound and released; the server log is checked after start).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn start() -> Cluster {
    let bin = bin_dir();
    let dir = tempfile::Builder::new()
        .prefix("ragstream-pg-")
        .tempdir()
        .unwrap();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "chown of the cluster directory failed");
    }
    let data = dir.path().join("data");
    let cert = dir.path().join("server.crt");
    let key = dir.path().join("server.key");
    make_certificates(dir.path(), &cert, &key);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&cert)
            .arg(&key)
            .status()
            .unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = as_postgres(&bin.join("initdb"))
        .args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
            "-D",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = dir.path().join("server.log");
    for _ in 0..5 {
        let port = free_port();
        let out = as_postgres(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(format!(
                "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c ssl=on \
                 -c ssl_cert_file={} -c ssl_key_file={}",
                dir.path().display(),
                cert.display(),
                key.display()
            ))
            .args(["-w", "-t", "60", "start"])
            .output()
            .unwrap();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if out.status.success() && !text.contains("could not bind") {
            return Cluster {
                data,
                bin,
                port,
                _dir: dir,
            };
        }
        assert!(
            text.contains("already in use") || text.contains("could not bind"),
            "PostgreSQL did not start: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = as_postgres(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
    panic!("no free loopback port for PostgreSQL after 5 tries");
}

fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        let cluster = start();
        // SAFETY: registering a plain extern "C" fn with no captured state.
        unsafe { libc::atexit(stop_cluster) };
        cluster
    })
}

/// The URL of database `name` on the cluster.
pub fn url(name: &str) -> String {
    let c = cluster();
    format!(
        "postgres://postgres@127.0.0.1:{}/{name}?sslmode=disable",
        c.port
    )
}

/// The self-signed CA (PEM) that signed the cluster's TLS certificate, for `sslrootcert`.
pub fn certificate() -> PathBuf {
    cluster()._dir.path().join("ca.crt")
}

/// The URL of database `name` with the connection parameters `params` (`sslmode=…`).
pub fn url_with(name: &str, params: &str) -> String {
    format!(
        "postgres://postgres@127.0.0.1:{}/{name}?{params}",
        cluster().port
    )
}

/// A client on database `name`.
pub async fn client(name: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&url(name), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// A new empty database with the `vector` extension; returns its name.
pub async fn database() -> String {
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    let admin = client("postgres").await;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    client(&name)
        .await
        .batch_execute("CREATE EXTENSION vector")
        .await
        .unwrap();
    name
}

/// LangChain JS's SupabaseVectorStore schema (docs: integrations/vectorstores/supabase),
/// with `dim`-dimension vectors.
pub fn langchain_js_sql(dim: usize) -> String {
    format!(
        "create table documents (
  id bigserial primary key,
  content text, -- corresponds to Document.pageContent
  metadata jsonb, -- corresponds to Document.metadata
  embedding vector({dim}) -- 1536 works for OpenAI embeddings, change if needed
);
create function match_documents (
  query_embedding vector({dim}),
  match_count int DEFAULT null,
  filter jsonb DEFAULT '{{}}'
) returns table (
  id bigint,
  content text,
  metadata jsonb,
  embedding jsonb,
  similarity float
)
language plpgsql
as $$
#variable_conflict use_column
begin
  return query
  select
    id,
    content,
    metadata,
    (embedding::text)::jsonb as embedding,
    1 - (documents.embedding <=> query_embedding) as similarity
  from documents
  where metadata @> filter
  order by documents.embedding <=> query_embedding
  limit match_count;
end;
$$;"
    )
}

/// LangChain Python's SupabaseVectorStore schema (langchain_community docs), with
/// `dim`-dimension vectors: `id uuid` without default, no `match_count`.
pub fn langchain_python_sql(dim: usize) -> String {
    format!(
        "create table
  documents (
    id uuid primary key,
    content text, -- corresponds to Document.pageContent
    metadata jsonb, -- corresponds to Document.metadata
    embedding vector ({dim}) -- 1536 works for OpenAI embeddings, change if needed
  );
create function match_documents (
  query_embedding vector ({dim}),
  filter jsonb default '{{}}'
) returns table (
  id uuid,
  content text,
  metadata jsonb,
  similarity float
) language plpgsql as $$
#variable_conflict use_column
begin
  return query
  select
    id,
    content,
    metadata,
    1 - (documents.embedding <=> query_embedding) as similarity
  from documents
  where metadata @> filter
  order by documents.embedding <=> query_embedding;
end;
$$;"
    )
}
