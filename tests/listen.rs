//! The listening socket: its accept backlog is `server.backlog` (issue 10,
//! part 1), not the 128 that `TcpListener::bind` listens with.
//!
//! A burst of a thousand connects overflows a queue of 128: the kernel drops
//! the SYNs past it and those clients wait a second for the retransmit.

#![cfg(target_os = "linux")]

mod support;

use std::os::fd::AsRawFd;

use ragstream::config::RawConfig;
use tokio::net::TcpListener;

/// The accept backlog the kernel applies to a listening socket: Linux
/// reports it in `tcpi_sacked` of `TCP_INFO` for a listener.
fn backlog(listener: &TcpListener) -> u32 {
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` and `len` are valid for writes of `len` bytes; the fd is open.
    let rc = unsafe {
        libc::getsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &raw mut len,
        )
    };
    assert_eq!(
        rc,
        0,
        "getsockopt(TCP_INFO): {}",
        std::io::Error::last_os_error()
    );
    info.tcpi_sacked
}

/// The kernel caps every backlog at `net.core.somaxconn`.
fn somaxconn() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

async fn bind(raw: RawConfig) -> TcpListener {
    let config = raw.lift().expect("valid config");
    ragstream::app::bind(&config).await.unwrap()
}

#[tokio::test]
async fn serve_listens_with_a_backlog_of_4096_by_default() {
    let raw = support::config("http://127.0.0.1:9/v1");
    let listener = bind(raw).await;
    assert!(
        somaxconn() > 128,
        "net.core.somaxconn is {}: this machine cannot tell 4096 from 128",
        somaxconn()
    );
    assert_eq!(backlog(&listener), 4096.min(somaxconn()));
}

#[tokio::test]
async fn the_backlog_comes_from_server_backlog_in_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.toml");
    std::fs::write(&path, "[server]\naddr = \"127.0.0.1:0\"\nbacklog = 100\n").unwrap();
    let raw = RawConfig::load(Some(&path)).unwrap();
    assert_eq!(backlog(&bind(raw).await), 100);
}

#[test]
fn a_backlog_of_zero_is_refused() {
    let mut raw = support::config("http://127.0.0.1:9/v1");
    raw.server.backlog = 0;
    let err = raw.lift().unwrap_err().to_string();
    assert!(err.contains("server.backlog must be at least 1"), "{err}");
}

#[test]
fn check_config_shows_the_backlog_set_in_the_environment() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ragstream"))
        .args(["check-config", "--config", "examples/autism.toml"])
        .env("RAGSTREAM_SERVER__BACKLOG", "777")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("backlog = 777"), "{stdout}");
}
