//! Reads the script off the loop thread: a helper thread reads the files (size-capped, regular
//! files only) after a burst of file events has settled or when asked (SIGHUP), and hands the
//! result to the loop thread through a slot and the mio waker. No Lua runs here.
//!
//! Editors save in many ways (write in place, truncate then write, write a temp file and rename
//! it over the original); each is a burst of events. Waiting for [`QUIET`] without events before
//! reading means the reload reads the finished file, and a half-written one that slips through
//! fails validation and is followed by the event of its completion.

use super::source::ScriptSource;
use notify::{RecursiveMode, Watcher as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the folder must be quiet before a reload.
pub(crate) const QUIET: Duration = Duration::from_millis(150);

/// What the helper thread is told.
enum Msg {
    /// A file event in the folder.
    Changed,
    /// Read now (SIGHUP).
    ReadNow,
}

/// A script version read by the helper thread, or why it could not be read.
pub(crate) type ReadResult = Result<ScriptSource, String>;

/// A running helper; stops when dropped.
pub(crate) struct Watcher {
    tx: mpsc::Sender<Msg>,
    ready: Arc<Mutex<Option<ReadResult>>>,
    // Dropping the notify watcher drops its sender; `tx` above is the other one.
    _inner: Option<notify::RecommendedWatcher>,
}

impl Watcher {
    /// Starts the helper for the script at `main`. With `watch`, file events in its folder
    /// (recursively) trigger a read; either way [`Watcher::request_read`] does. `wake` runs on
    /// the helper thread when a read is ready.
    pub(crate) fn start(
        main: &Path,
        folder: &Path,
        watch: bool,
        wake: impl Fn() + Send + 'static,
    ) -> Result<Watcher, String> {
        let (tx, rx) = mpsc::channel::<Msg>();
        let inner = if watch {
            let events = tx.clone();
            let mut inner =
                notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                    let relevant = match &event {
                        Ok(e) => !matches!(e.kind, notify::EventKind::Access(_)),
                        Err(_) => true,
                    };
                    if relevant {
                        let _ = events.send(Msg::Changed);
                    }
                })
                .map_err(|e| format!("cannot watch {}: {e}", folder.display()))?;
            inner
                .watch(folder, RecursiveMode::Recursive)
                .map_err(|e| format!("cannot watch {}: {e}", folder.display()))?;
            Some(inner)
        } else {
            None
        };
        let ready = Arc::new(Mutex::new(None));
        let slot = ready.clone();
        let main: PathBuf = main.to_path_buf();
        std::thread::Builder::new()
            .name("moonrt-script-reader".into())
            .spawn(move || {
                while let Ok(msg) = rx.recv() {
                    if let Msg::Changed = msg {
                        // One burst: the first event, then until QUIET passes without one.
                        loop {
                            match rx.recv_timeout(QUIET) {
                                Ok(_) => {}
                                Err(mpsc::RecvTimeoutError::Timeout) => break,
                                Err(mpsc::RecvTimeoutError::Disconnected) => return,
                            }
                        }
                    }
                    let read = ScriptSource::read(&main);
                    if let Ok(mut slot) = slot.lock() {
                        *slot = Some(read);
                    }
                    wake();
                }
            })
            .map_err(|e| format!("cannot start the script reader thread: {e}"))?;
        if watch {
            log::info!("watching {} for script changes", folder.display());
        }
        Ok(Watcher {
            tx,
            ready,
            _inner: inner,
        })
    }

    /// Asks the helper to read the script now; the result arrives like a file change's.
    pub(crate) fn request_read(&self) {
        let _ = self.tx.send(Msg::ReadNow);
    }

    /// The version read since the last call, if any.
    pub(crate) fn take_read(&self) -> Option<ReadResult> {
        self.ready.lock().ok()?.take()
    }
}
