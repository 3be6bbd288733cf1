//! Recent operational events (script errors, reloads, drains) for the admin API and dashboard.
//!
//! A small process-wide ring: whoever notices an event pushes it; the admin listener reads the
//! last ones. Pushing takes a short lock, only on events that are already rare (each one is
//! also a log line).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Events kept; older ones are dropped.
const KEPT: usize = 100;
/// Longest text kept per event.
const MAX_TEXT: usize = 1000;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A Lua error in a session's callback.
    ScriptError,
    /// A new script generation became current.
    Reload,
    /// A reload was refused (the old generation stays).
    ReloadFailed,
    /// The server started draining.
    Drain,
}

/// One event.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What happened.
    pub kind: Kind,
    /// The session it happened in, if any.
    pub session: Option<u64>,
    /// The log line's text (with file:line for script errors).
    pub text: String,
}

static JOURNAL: Mutex<VecDeque<Entry>> = Mutex::new(VecDeque::new());

/// Records an event.
pub fn push(kind: Kind, session: Option<u64>, text: &str) {
    let mut text = text.to_owned();
    if text.len() > MAX_TEXT {
        let mut cut = MAX_TEXT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    let at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut journal = JOURNAL.lock().unwrap_or_else(|e| e.into_inner());
    if journal.len() == KEPT {
        journal.pop_front();
    }
    journal.push_back(Entry {
        at_ms,
        kind,
        session,
        text,
    });
}

/// The most recent events, newest last.
pub fn recent() -> Vec<Entry> {
    JOURNAL
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect()
}
