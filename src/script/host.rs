//! [`LuaHooks`]: the core's session logic, backed by one [`SessionScript`] per session.

use super::session::SessionScript;
use super::source::ScriptSource;
use crate::config::{Config, ScriptConfig};
use crate::core::codec::Data;
use crate::core::{Code, Ctx, Hooks, PeerId, PlayerInfo, PropsScope, SessionId, Verdict};
use std::collections::HashMap;
use std::time::Instant;

/// Runs the session script: a fresh Lua state for each session, dropped when the session ends.
pub struct LuaHooks {
    source: ScriptSource,
    config: ScriptConfig,
    server_id: String,
    /// The process-wide state: `on_process_start`, `on_process_terminate`, `on_health_check`.
    process: SessionScript,
    sessions: HashMap<SessionId, SessionScript>,
    /// Lua errors in sessions that have ended.
    past_errors: u64,
}

impl LuaHooks {
    /// Session logic from a script. Starts the process-wide state (which also proves the script
    /// loads) and calls its `on_process_start(args)`.
    pub fn new(source: ScriptSource, config: &Config) -> Result<LuaHooks, String> {
        let server_id = config.server_id();
        let mut outbox = crate::core::Outbox::default();
        let mut ctx = process_ctx(&mut outbox);
        let mut process = SessionScript::start(&source, &config.script, &ctx, "", &server_id)?;
        process.process_start(&mut ctx, &config.script.args);
        Ok(LuaHooks {
            source,
            config: config.script.clone(),
            server_id,
            process,
            sessions: HashMap::new(),
            past_errors: 0,
        })
    }

    /// Sessions with a running script.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Lua errors raised in callbacks so far.
    pub fn error_count(&self) -> u64 {
        self.past_errors + self.sessions.values().map(|s| s.errors).sum::<u64>()
    }

    fn with(&mut self, ctx: &mut Ctx<'_>, f: impl FnOnce(&mut SessionScript, &mut Ctx<'_>)) {
        if let Some(script) = self.sessions.get_mut(&ctx.session) {
            f(script, ctx);
        }
    }
}

/// Loads the script in a throwaway state exactly as a session would, and reports what is wrong.
pub fn check(source: &ScriptSource, config: &ScriptConfig) -> Result<(), String> {
    let mut outbox = crate::core::Outbox::default();
    SessionScript::start(source, config, &process_ctx(&mut outbox), "", "check").map(|_| ())
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

impl Hooks for LuaHooks {
    fn session_started(&mut self, ctx: &mut Ctx<'_>, name: &str) -> Result<(), String> {
        let mut script =
            SessionScript::start(&self.source, &self.config, ctx, name, &self.server_id)?;
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

    fn healthy(&mut self) -> bool {
        let mut outbox = crate::core::Outbox::default();
        self.process.health_check(&mut process_ctx(&mut outbox))
    }
}
