//! Watches the script folder on its own thread and tells the loop thread, through a flag and
//! the mio waker, once a burst of file events has settled. No Lua runs here.
//!
//! Editors save in many ways (write in place, truncate then write, write a temp file and rename
//! it over the original); each is a burst of events. Waiting for [`QUIET`] without events before
//! waking the loop means the reload reads the finished file, and a half-written one that slips
//! through fails validation and is followed by the event of its completion.

use notify::{RecursiveMode, Watcher as _};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// How long the folder must be quiet before a reload.
pub(crate) const QUIET: Duration = Duration::from_millis(150);

/// A running watcher; stops when dropped.
pub(crate) struct Watcher {
    changed: Arc<AtomicBool>,
    // Dropping the notify watcher closes the channel, which ends the debounce thread.
    _inner: notify::RecommendedWatcher,
}

impl Watcher {
    /// Starts watching `folder` (recursively). `wake` runs on the watcher thread after changes.
    pub(crate) fn start(
        folder: &Path,
        wake: impl Fn() + Send + 'static,
    ) -> Result<Watcher, String> {
        let (tx, rx) = mpsc::channel::<()>();
        let mut inner = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let relevant = match &event {
                Ok(e) => !matches!(e.kind, notify::EventKind::Access(_)),
                Err(_) => true,
            };
            if relevant {
                let _ = tx.send(());
            }
        })
        .map_err(|e| format!("cannot watch {}: {e}", folder.display()))?;
        inner
            .watch(folder, RecursiveMode::Recursive)
            .map_err(|e| format!("cannot watch {}: {e}", folder.display()))?;
        let changed = Arc::new(AtomicBool::new(false));
        let flag = changed.clone();
        std::thread::Builder::new()
            .name("moonrt-watcher".into())
            .spawn(move || {
                // Each outer turn is one burst: the first event, then until QUIET passes without one.
                while rx.recv().is_ok() {
                    loop {
                        match rx.recv_timeout(QUIET) {
                            Ok(()) => {}
                            Err(mpsc::RecvTimeoutError::Timeout) => break,
                            Err(mpsc::RecvTimeoutError::Disconnected) => return,
                        }
                    }
                    flag.store(true, Ordering::SeqCst);
                    wake();
                }
            })
            .map_err(|e| format!("cannot start the watcher thread: {e}"))?;
        log::info!("watching {} for script changes", folder.display());
        Ok(Watcher {
            changed,
            _inner: inner,
        })
    }

    /// Whether files changed since the last call.
    pub(crate) fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::SeqCst)
    }
}
