//! [`LuaHooks`]: the core's session logic, backed by one [`SessionScript`] per session, and the
//! registry of script versions (the current one starts new sessions; running sessions keep
//! theirs).

use super::session::{SessionScript, Setup};
use super::source::ScriptSource;
use super::watcher::Watcher;
use crate::config::{Config, ScriptConfig};
use crate::core::codec::Data;
use crate::core::{
    Code, Ctx, Hooks, LogicStatus, PeerId, PlayerInfo, PropsScope, SessionId, SessionLogic,
    SessionStart, Verdict,
};
use crate::ops::journal;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

/// Runs the session script: a fresh Lua state for each session, dropped when the session ends.
pub struct LuaHooks {
    /// The version new sessions start with.
    current: Rc<ScriptSource>,
    /// The main file, re-read on reload.
    path: PathBuf,
    config: ScriptConfig,
    server_id: String,
    /// The process-wide state: `on_process_start`, `on_process_terminate`, `on_health_check`.
    /// Built from the version loaded at startup.
    process: SessionScript,
    /// What `on_process_start` returned: every session's `rt.process`.
    process_data: Option<serde_json::Value>,
    sessions: HashMap<SessionId, SessionScript>,
    /// Lua errors in sessions that have ended.
    past_errors: u64,
    /// Set by [`LuaHooks::watch`]: tells the loop thread that files changed.
    watcher: Option<Watcher>,
    /// Log swaps prominently (`--dev`).
    dev: bool,
    /// Whether the last reload that found a change made it current.
    last_reload_ok: Option<bool>,
    /// `rt.http`'s worker pool, the answers it sends back, and how it wakes the loop.
    http: Arc<super::http::Pool>,
    http_results: std::sync::mpsc::Receiver<super::http::Outcome>,
    http_wake: super::http::Wake,
    /// Answers received, by session, waiting for `session_woken`.
    http_done: HashMap<SessionId, Vec<super::http::Outcome>>,
}

impl LuaHooks {
    /// Session logic from a script, as generation 1. Starts the process-wide state (which also
    /// proves the script loads) and calls its `on_process_start(args)`.
    pub fn new(mut source: ScriptSource, config: &Config) -> Result<LuaHooks, String> {
        source.generation = 1;
        let path = source.folder().join(source.main_name());
        let current = Rc::new(source);
        let server_id = config.server_id();
        let mut outbox = crate::core::Outbox::default();
        let mut ctx = process_ctx(&mut outbox);
        let http_wake = super::http::Wake::default();
        let (http, http_results) = super::http::Pool::new(&config.script, http_wake.clone());
        let setup = Setup {
            name: "",
            params: None,
            settings: None,
            http: None,
            server_id: &server_id,
            process: None,
        };
        let mut process = SessionScript::start(&current, &config.script, &ctx, &setup)?;
        log_warnings(&path, &process.warnings);
        let process_data = process.process_start(&mut ctx, &config.script.args)?;
        log::info!(
            "script {} is generation 1 ({} files, hash {:016x})",
            path.display(),
            current.files().count(),
            current.hash()
        );
        Ok(LuaHooks {
            current,
            path,
            config: config.script.clone(),
            server_id,
            process,
            process_data,
            sessions: HashMap::new(),
            past_errors: 0,
            watcher: None,
            dev: false,
            last_reload_ok: None,
            http,
            http_results,
            http_wake,
            http_done: HashMap::new(),
        })
    }

    /// Logs every swap at warn level, so an edit shows in the terminal (`--dev`).
    pub fn set_dev(&mut self, dev: bool) {
        self.dev = dev;
    }

    /// Watches the script folder; `wake` is called (from the helper thread, which reads the
    /// files) after a burst of changes settles, and the loop thread then calls
    /// [`Hooks::woken`], which validates what was read and makes it current.
    pub fn watch(&mut self, wake: impl Fn() + Send + 'static) -> Result<(), String> {
        self.start_reader(true, wake)
    }

    /// Like [`LuaHooks::watch`] without watching: SIGHUP reloads ([`Hooks::reload`]) read the
    /// files on the helper thread instead of the loop thread.
    pub fn read_off_loop(&mut self, wake: impl Fn() + Send + 'static) -> Result<(), String> {
        self.start_reader(false, wake)
    }

    fn start_reader(
        &mut self,
        watch: bool,
        wake: impl Fn() + Send + 'static,
    ) -> Result<(), String> {
        let folder = self.current.folder();
        self.watcher = Some(Watcher::start(&self.path, folder, watch, wake)?);
        Ok(())
    }

    /// A session's `rt.session.data`, as JSON (for `moonrt test`); `None` if there is no such
    /// session or its data is not plain.
    pub fn session_data(&self, session: SessionId) -> Option<serde_json::Value> {
        self.sessions.get(&session)?.session_data()
    }

    /// The generation new sessions start with.
    pub fn generation(&self) -> u64 {
        self.current.generation
    }

    /// The generation a running session started with.
    pub fn session_generation(&self, session: SessionId) -> Option<u64> {
        self.sessions.get(&session).map(|s| s.generation)
    }

    /// Sessions with a running script.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Lua errors raised in callbacks so far.
    pub fn error_count(&self) -> u64 {
        self.past_errors + self.sessions.values().map(|s| s.errors).sum::<u64>()
    }

    /// Reads the script again and, if it changed and validates, makes it current for new
    /// sessions. Running sessions keep their version. Returns whether a new generation is
    /// current; a broken or missing script keeps the previous one and is reported.
    pub fn reload(&mut self) -> Result<bool, String> {
        let read = ScriptSource::read(&self.path);
        self.apply_read(read)
    }

    /// Validates a version read from disk and, if it changed and loads, makes it current.
    fn apply_read(&mut self, read: Result<ScriptSource, String>) -> Result<bool, String> {
        let started = Instant::now();
        let mut next = match read {
            Ok(next) => next,
            Err(e) => {
                log::warn!(
                    "script reload skipped, generation {} stays current: {e}",
                    self.current.generation
                );
                self.last_reload_ok = Some(false);
                journal::push(journal::Kind::ReloadFailed, None, &e);
                return Err(e);
            }
        };
        if next.hash() == self.current.hash() {
            return Ok(false);
        }
        next.generation = self.current.generation + 1;
        let next = Rc::new(next);
        let mut outbox = crate::core::Outbox::default();
        let ctx = process_ctx(&mut outbox);
        let setup = Setup {
            name: "",
            params: None,
            settings: None,
            http: None,
            server_id: &self.server_id,
            process: self.process_data.as_ref(),
        };
        match SessionScript::start(&next, &self.config, &ctx, &setup) {
            Ok(script) => log_warnings(&self.path, &script.warnings),
            Err(e) => {
                log::error!(
                    "script reload failed, generation {} stays current: {e}",
                    self.current.generation
                );
                self.last_reload_ok = Some(false);
                journal::push(journal::Kind::ReloadFailed, None, &e);
                return Err(e);
            }
        }
        self.current = next;
        let line = format!(
            "script generation {} is current for new sessions ({} files, hash {:016x}, \
             checked in {} ms); {} running session(s) keep theirs",
            self.current.generation,
            self.current.files().count(),
            self.current.hash(),
            started.elapsed().as_millis(),
            self.sessions.len()
        );
        if self.dev {
            log::warn!("*** {line} ***");
        } else {
            log::info!("{line}");
        }
        self.last_reload_ok = Some(true);
        journal::push(journal::Kind::Reload, None, &line);
        Ok(true)
    }

    fn with(&mut self, ctx: &mut Ctx<'_>, f: impl FnOnce(&mut SessionScript, &mut Ctx<'_>)) {
        if let Some(script) = self.sessions.get_mut(&ctx.session) {
            f(script, ctx);
        }
    }
}

/// Loads the script in a throwaway state exactly as a session would, and reports what is wrong:
/// `Err` if the server would refuse it, otherwise the warnings (keys of the returned table that
/// are not moonrt callbacks), which the server also logs when it loads the script.
pub fn check(source: &ScriptSource, config: &ScriptConfig) -> Result<Vec<String>, String> {
    let mut outbox = crate::core::Outbox::default();
    let source = Rc::new(source.clone());
    let setup = Setup {
        name: "",
        params: None,
        settings: None,
        http: None,
        server_id: "check",
        process: None,
    };
    SessionScript::start(&source, config, &process_ctx(&mut outbox), &setup).map(|s| s.warnings)
}

/// Logs a script version's warnings, one line each.
fn log_warnings(path: &std::path::Path, warnings: &[String]) {
    for w in warnings {
        log::warn!("script {}: {w}", path.display());
    }
}

fn wall_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A context for the process-wide state: no session, so session commands go nowhere.
fn process_ctx(outbox: &mut crate::core::Outbox) -> Ctx<'_> {
    Ctx {
        session: SessionId(0),
        now: Instant::now(),
        wall_us: wall_us(),
        out: outbox,
    }
}

#[cfg(test)]
impl LuaHooks {
    /// A running session's script.
    pub(crate) fn session_script(&self, session: SessionId) -> &SessionScript {
        &self.sessions[&session]
    }
}

impl Hooks for LuaHooks {
    fn session_started(
        &mut self,
        ctx: &mut Ctx<'_>,
        start: &SessionStart<'_>,
    ) -> Result<(), String> {
        let setup = Setup {
            name: start.name,
            params: start.params,
            settings: Some(*start),
            http: Some(self.http.clone()),
            server_id: &self.server_id,
            process: self.process_data.as_ref(),
        };
        let mut script = SessionScript::start(&self.current, &self.config, ctx, &setup)?;
        log::info!(
            "{}: runs script generation {}",
            ctx.session,
            script.generation
        );
        script.drain_into(ctx);
        script.session_start(ctx);
        self.sessions.insert(ctx.session, script);
        Ok(())
    }

    fn session_ended(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(mut script) = self.sessions.remove(&ctx.session) {
            script.session_end(ctx);
            self.past_errors += script.errors;
        }
    }

    fn player_connecting(
        &mut self,
        ctx: &mut Ctx<'_>,
        player: PlayerInfo<'_>,
        payload: &[u8],
    ) -> Result<(), String> {
        match self.sessions.get_mut(&ctx.session) {
            Some(script) => script.player_connecting(ctx, player, payload),
            None => Ok(()),
        }
    }

    fn player_joined(&mut self, ctx: &mut Ctx<'_>, player: PlayerInfo<'_>) {
        self.with(ctx, |s, ctx| s.player_joined(ctx, player.peer));
    }

    fn player_left(&mut self, ctx: &mut Ctx<'_>, peer: PeerId, reason: Code) {
        self.with(ctx, |s, ctx| s.player_left(ctx, peer, reason));
    }

    fn frame_sync_request(&mut self, ctx: &mut Ctx<'_>, peer: PeerId, on: bool, rate: u8) -> bool {
        match self.sessions.get_mut(&ctx.session) {
            Some(script) => script.frame_sync_request(ctx, peer, on, rate),
            None => true,
        }
    }

    fn on_frame(&mut self, ctx: &mut Ctx<'_>, frame: &mut crate::core::Frame) {
        self.with(ctx, |s, ctx| s.frame(ctx, frame));
    }

    fn player_disconnected(&mut self, ctx: &mut Ctx<'_>, peer: PeerId) {
        self.with(ctx, |s, ctx| s.player_disconnected(ctx, peer));
    }

    fn player_reconnected(&mut self, ctx: &mut Ctx<'_>, peer: PeerId) {
        self.with(ctx, |s, ctx| s.player_reconnected(ctx, peer));
    }

    fn udp_bound(&mut self, ctx: &mut Ctx<'_>, peer: PeerId) {
        self.with(ctx, |s, ctx| s.udp_bound(ctx, peer));
    }

    fn group_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: PeerId,
        group: u16,
        joining: bool,
    ) -> bool {
        match self.sessions.get_mut(&ctx.session) {
            Some(script) => script.group_request(ctx, peer, group, joining),
            None => true,
        }
    }

    fn props_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: PeerId,
        scope: PropsScope,
        props: &[u8],
    ) -> bool {
        match self.sessions.get_mut(&ctx.session) {
            Some(script) => script.props_request(ctx, peer, scope, props),
            None => true,
        }
    }

    fn group_changed(&mut self, ctx: &mut Ctx<'_>, group: u16, members: &[PeerId]) {
        self.with(ctx, |s, ctx| s.group_changed(ctx, group, members));
    }

    fn on_packet(&mut self, ctx: &mut Ctx<'_>, sender: PeerId, data: &Data<'_>) -> Verdict {
        match self.sessions.get_mut(&ctx.session) {
            Some(script) => script.packet(ctx, sender, data),
            None => Verdict::Forward,
        }
    }

    fn on_server_message(&mut self, ctx: &mut Ctx<'_>, sender: PeerId, data: &Data<'_>) -> bool {
        match self.sessions.get_mut(&ctx.session) {
            Some(script) => script.server_message(ctx, sender, data),
            None => false,
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_>, timer: u64) {
        self.with(ctx, |s, ctx| s.timer(ctx, timer));
    }

    fn server_stopping(&mut self) {
        let mut outbox = crate::core::Outbox::default();
        self.process
            .process_terminate(&mut process_ctx(&mut outbox));
    }

    fn status(&self) -> LogicStatus {
        LogicStatus {
            generation: self.current.generation,
            last_reload_ok: self.last_reload_ok,
            errors: self.error_count(),
            memory_bytes: self.sessions.values().map(|s| s.memory() as u64).sum(),
        }
    }

    fn session_status(&self, session: SessionId) -> Option<SessionLogic> {
        self.sessions.get(&session).map(|s| SessionLogic {
            generation: s.generation,
            memory_bytes: s.memory() as u64,
        })
    }

    fn healthy(&mut self) -> bool {
        let mut outbox = crate::core::Outbox::default();
        self.process.health_check(&mut process_ctx(&mut outbox))
    }

    fn reload(&mut self) {
        match &self.watcher {
            // The helper reads; `woken` applies.
            Some(watcher) => watcher.request_read(),
            None => {
                let _ = LuaHooks::reload(self);
            }
        }
    }

    fn woken(&mut self) {
        if let Some(read) = self.watcher.as_ref().and_then(Watcher::take_read) {
            let _ = self.apply_read(read);
        }
    }

    fn woken_sessions(&mut self) -> Vec<SessionId> {
        while let Ok(outcome) = self.http_results.try_recv() {
            if self.sessions.contains_key(&outcome.session) {
                self.http_done
                    .entry(outcome.session)
                    .or_default()
                    .push(outcome);
            } else {
                log::debug!(
                    "{}: an rt.http answer came after the session ended; dropped",
                    outcome.session
                );
            }
        }
        self.http_done.keys().copied().collect()
    }

    fn session_woken(&mut self, ctx: &mut Ctx<'_>) {
        let outcomes = self.http_done.remove(&ctx.session).unwrap_or_default();
        self.with(ctx, |s, ctx| {
            for outcome in outcomes {
                s.http_done(ctx, outcome);
            }
        });
    }

    fn set_waker(&mut self, wake: Arc<dyn Fn() + Send + Sync>) {
        *self.http_wake.lock().unwrap_or_else(|e| e.into_inner()) = Some(wake);
    }
}
