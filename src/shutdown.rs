//! One cancellation token for the whole process, cancelled by Ctrl-C or
//! SIGTERM; a second signal exits at once.

use tokio_util::sync::CancellationToken;

/// Returns a token that is cancelled when the process is asked to stop.
///
/// The first SIGTERM or Ctrl-C cancels the token and the server drains; a
/// second one exits the process at once with status 128 + the signal's
/// number (130 for Ctrl-C, 143 for SIGTERM), as a shell reports a process
/// killed by it.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let mut signals = Signals::new();
        let first = signals.next().await;
        tracing::info!(
            signal = first.name,
            "shutdown requested; send it again to exit at once"
        );
        trigger.cancel();
        let second = signals.next().await;
        tracing::warn!(signal = second.name, "second shutdown signal: exiting now");
        std::process::exit(128 + second.number);
    });
    token
}

/// A signal that asks the process to stop.
#[derive(Debug, Clone, Copy)]
struct Stop {
    /// `SIGINT` or `SIGTERM`.
    name: &'static str,
    /// Its number.
    number: i32,
}

const SIGINT: Stop = Stop {
    name: "SIGINT",
    number: 2,
};

/// The stop signals, listened to from creation on so that none is missed
/// between the first and the second.
struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    #[cfg(unix)]
    fn new() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind, name: &str| {
            signal(kind)
                .inspect_err(|err| tracing::error!(error = %err, "cannot listen for {name}"))
                .ok()
        };
        Self {
            interrupt: listen(SignalKind::interrupt(), "Ctrl-C"),
            terminate: listen(SignalKind::terminate(), "SIGTERM"),
        }
    }

    #[cfg(not(unix))]
    fn new() -> Self {
        Self {}
    }

    #[cfg(unix)]
    async fn next(&mut self) -> Stop {
        async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = recv(&mut self.interrupt) => SIGINT,
            () = recv(&mut self.terminate) => Stop { name: "SIGTERM", number: 15 },
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> Stop {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        SIGINT
    }
}
