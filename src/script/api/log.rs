//! Logging: `rt.log.debug/info/warn/error` and `print`, rate-limited per session and cut per
//! line.

use super::{Member, state};
use mlua::{Function, Lua, Value, Variadic};
use std::time::Instant;

/// The members this file makes.
pub(super) const MEMBERS: &[Member] = &[("log", log_table)];

fn log_table(lua: &Lua) -> mlua::Result<Value> {
    let log = lua.create_table()?;
    crate::script::members::make_on_first_use(lua, &log, "rt.log")?;
    Ok(Value::Table(log))
}

/// Longest script log line; the rest is cut.
pub(crate) const MAX_LOG_LINE: usize = 4096;

/// A token bucket for script log lines.
pub(crate) struct LogLimit {
    rate: f64,
    tokens: f64,
    last: Option<Instant>,
    /// Lines dropped since the last one written.
    pub suppressed: u64,
}

impl LogLimit {
    /// `rate` lines a second, bursts up to `rate`.
    pub(crate) fn new(rate: u32) -> LogLimit {
        LogLimit {
            rate: rate as f64,
            tokens: rate as f64,
            last: None,
            suppressed: 0,
        }
    }

    /// Whether a line may be written at `now`.
    fn allow(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }
}

/// Joins log arguments like `print` does, cut at [`MAX_LOG_LINE`] bytes (only that much is
/// copied, however long the arguments).
fn join_args(args: Variadic<Value>) -> mlua::Result<String> {
    let mut out = Vec::new();
    let mut total = 0usize;
    for (i, v) in args.iter().enumerate() {
        if i > 0 {
            total += 1;
            if out.len() < MAX_LOG_LINE {
                out.push(b' ');
            }
        }
        let room = MAX_LOG_LINE.saturating_sub(out.len());
        match v {
            Value::String(s) => {
                let bytes = s.as_bytes();
                total += bytes.len();
                out.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
            other => {
                let text = other.to_string()?;
                total += text.len();
                out.extend_from_slice(&text.as_bytes()[..text.len().min(room)]);
            }
        }
    }
    let mut line = String::from_utf8_lossy(&out).into_owned();
    if total > out.len() {
        line.push_str(&format!(" ... [{} more bytes cut]", total - out.len()));
    }
    Ok(line)
}

/// `rt.log`'s functions: their names and levels.
pub(crate) const LEVELS: [(&str, log::Level); 4] = [
    ("debug", log::Level::Debug),
    ("info", log::Level::Info),
    ("warn", log::Level::Warn),
    ("error", log::Level::Error),
];

/// `rt.log[name]`, made when a script first reads it; `nil` for a name `rt.log` does not have.
pub(crate) fn log_member(lua: &Lua, name: &str) -> mlua::Result<Value> {
    match LEVELS.iter().find(|(n, _)| *n == name) {
        Some(&(_, level)) => Ok(Value::Function(log_function(lua, level)?)),
        None => Ok(Value::Nil),
    }
}

/// A `rt.log` function at `level` (`print` is `info`'s twin).
pub(crate) fn log_function(lua: &Lua, level: log::Level) -> mlua::Result<Function> {
    lua.create_function(move |lua, args: Variadic<Value>| {
        let mut st = state(lua)?;
        let now = st.now;
        let suppressed = st.log.suppressed;
        if !st.log.allow(now) {
            return Ok(());
        }
        st.log.suppressed = 0;
        let target = st.log_target.clone();
        drop(st);
        if suppressed > 0 {
            log::warn!(
                target: &target,
                "{suppressed} script log line(s) suppressed: over script.log_lines_per_sec"
            );
        }
        let line = join_args(args)?;
        log::log!(target: &target, level, "{line}");
        Ok(())
    })
}
