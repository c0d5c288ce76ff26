//! The accept loop: hyper's HTTP/1 server with a header read timeout, which
//! `axum::serve` cannot set.

use std::future::Future;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use super::settings::Limits;

/// Serves `router` on `listener` until `stop` resolves; then stops accepting,
/// closes idle connections, lets each busy one finish its response, and
/// returns when every connection is closed.
///
/// Each request carries its connection's peer address as
/// `ConnectInfo<SocketAddr>` (what rate limits per client address read).
///
/// A connection that does not send a complete request head within
/// `limits.header_timeout` is closed without an answer; that includes an idle
/// keep-alive connection.
pub async fn serve(
    mut listener: TcpListener,
    router: Router,
    limits: &Limits,
    stop: impl Future<Output = ()>,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    // Dropped when the server stops: every connection task then shuts down.
    let (stopping, stopped) = watch::channel(());
    // Each connection task holds a receiver; `closed()` waits for all of them.
    let (open, _) = watch::channel(());
    let mut stop = std::pin::pin!(stop);
    loop {
        // `Listener::accept` retries failed accepts (e.g. out of file descriptors).
        let (tcp, peer) = tokio::select! {
            accepted = Listener::accept(&mut listener) => accepted,
            () = &mut stop => break,
        };
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        let service = router
            .clone()
            .map_request(move |mut request: axum::http::Request<_>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection =
            builder.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service));
        let mut stopped = stopped.clone();
        let open = open.subscribe();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => log_end(result),
                _ = stopped.changed() => {
                    connection.as_mut().graceful_shutdown();
                    log_end(connection.await);
                }
            }
            drop(open);
        });
    }
    drop(listener);
    drop(stopping);
    open.closed().await;
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(err) = result {
        tracing::debug!(error = %err, "connection ended with an error");
    }
}
