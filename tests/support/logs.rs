//! Captures what ragstream logs during a test, to check what an operator sees.
//!
//! One global subscriber is installed once per test binary and writes to the
//! buffer of the test running on the current thread: `#[tokio::test]` runs
//! the test and the server's tasks on one thread. (Scoped subscribers lose
//! events when tests on other threads register the same callsites first.)

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, Once};

/// Log lines written on this thread while the guard lives.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

/// Stops capturing when dropped.
pub struct Capture(());

thread_local! {
    static CURRENT: RefCell<Option<Logs>> = const { RefCell::new(None) };
}

impl Logs {
    /// Starts capturing at debug level on this thread.
    pub fn capture() -> (Self, Capture) {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_ansi(false)
                .with_writer(|| Sink)
                .init();
        });
        let logs = Self::default();
        CURRENT.with(|current| *current.borrow_mut() = Some(logs.clone()));
        (logs, Capture(()))
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        CURRENT.with(|current| *current.borrow_mut() = None);
    }
}

/// Writes to the current thread's capture, if any.
struct Sink;

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CURRENT.with(|current| {
            if let Some(logs) = &*current.borrow() {
                logs.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
