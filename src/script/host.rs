//! [`LuaHooks`]: the core's session logic, backed by one [`SessionScript`] per session.

use super::session::SessionScript;
use super::source::ScriptSource;
use crate::config::ScriptConfig;
use crate::core::codec::Data;
use crate::core::{Code, Ctx, Hooks, PeerId, PlayerInfo, SessionId, Verdict};
use std::collections::HashMap;
use std::time::Instant;

/// Runs the session script: a fresh Lua state for each session, dropped when the session ends.
pub struct LuaHooks {
    source: ScriptSource,
    config: ScriptConfig,
    sessions: HashMap<SessionId, SessionScript>,
    /// Lua errors in sessions that have ended.
    past_errors: u64,
}

impl LuaHooks {
    /// Session logic from a script; checks first that it loads and returns a table of callbacks.
    pub fn new(source: ScriptSource, config: ScriptConfig) -> Result<LuaHooks, String> {
        check(&source, &config)?;
        Ok(LuaHooks {
            source,
            config,
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
    let ctx = Ctx {
        session: SessionId(0),
        now: Instant::now(),
        wall_us: 0,
        out: &mut outbox,
    };
    SessionScript::start(source, config, &ctx, "").map(|_| ())
}

impl Hooks for LuaHooks {
    fn session_started(&mut self, ctx: &mut Ctx<'_>, name: &str) -> Result<(), String> {
        let mut script = SessionScript::start(&self.source, &self.config, ctx, name)?;
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
}
