//! One session's script: its Lua state, the callbacks table the script returned, and the calls
//! into it, each under a fresh instruction budget.

use super::api::{self, CallState};
use super::sandbox::{self, BUDGET_ERROR, Budget};
use super::source::ScriptSource;
use crate::config::{OnError, ScriptConfig};
use crate::core::codec::{Data, Target};
use crate::core::{Code, Command, Ctx, PeerId, PlayerInfo, SendTarget, Verdict};
use mlua::{Function, IntoLuaMulti, Lua, Table, Value};
use std::time::Duration;

/// A running session's script.
pub(crate) struct SessionScript {
    lua: Lua,
    callbacks: Table,
    budget: u64,
    on_error: OnError,
    /// Lua errors raised by this session's callbacks.
    pub errors: u64,
}

impl SessionScript {
    /// Builds a state, installs `rt`, runs the main chunk; it must return a table of callbacks.
    pub(crate) fn start(
        source: &ScriptSource,
        config: &ScriptConfig,
        ctx: &Ctx<'_>,
        name: &str,
        server_id: &str,
    ) -> Result<SessionScript, String> {
        let lua = sandbox::new_state(source.folder(), config.memory_limit_bytes)
            .map_err(|e| format!("cannot create a Lua state: {e}"))?;
        let mut state = CallState::new(ctx.session, ctx.now);
        state.wall_us = ctx.wall_us;
        lua.set_app_data(state);
        api::install(&lua, name, server_id).map_err(|e| format!("cannot install rt: {e}"))?;
        if let Some(mut budget) = lua.app_data_mut::<Budget>() {
            budget.remaining = config.instruction_budget as i64;
        }
        let returned: Value = source.load_main(&lua).map_err(|e| describe(&e))?;
        let Value::Table(callbacks) = returned else {
            return Err(format!(
                "{} must return a table of callbacks (got {})",
                source.main_name(),
                returned.type_name()
            ));
        };
        Ok(SessionScript {
            lua,
            callbacks,
            budget: config.instruction_budget,
            on_error: config.on_error,
            errors: 0,
        })
    }

    /// Commands the main chunk recorded while loading (timers armed at top level, say).
    pub(crate) fn drain_into(&self, ctx: &mut Ctx<'_>) {
        if let Some(mut st) = self.lua.app_data_mut::<CallState>() {
            for command in st.commands.drain(..) {
                ctx.out.push(command);
            }
        }
    }

    fn callback(&self, name: &str) -> Option<Function> {
        self.callbacks.get::<Option<Function>>(name).ok().flatten()
    }

    /// Runs `f` as one callback: fresh budget, the context's time, commands handed to the core.
    /// A Lua error is logged and counted; `None` is returned.
    fn call<R>(
        &mut self,
        ctx: &mut Ctx<'_>,
        what: &str,
        f: impl FnOnce(&Lua, &Table) -> mlua::Result<R>,
    ) -> Option<R> {
        if let Some(mut st) = self.lua.app_data_mut::<CallState>() {
            st.now = ctx.now;
            st.wall_us = ctx.wall_us;
        }
        if let Some(mut budget) = self.lua.app_data_mut::<Budget>() {
            budget.remaining = self.budget as i64;
            budget.exhausted = false;
        }
        let result = f(&self.lua, &self.callbacks);
        self.drain_into(ctx);
        match result {
            Ok(r) => Some(r),
            Err(e) => {
                self.fail(ctx, what, &e);
                None
            }
        }
    }

    /// Calls a callback by name if the script defines it.
    fn call_named(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: &str,
        args: impl IntoLuaMulti,
    ) -> Option<Value> {
        let f = self.callback(name)?;
        self.call(ctx, name, |_, _| f.call::<Value>(args))
    }

    fn fail(&mut self, ctx: &mut Ctx<'_>, what: &str, e: &mlua::Error) {
        self.errors += 1;
        let exhausted = self
            .lua
            .app_data_ref::<Budget>()
            .is_some_and(|b| b.exhausted);
        let target = format!("script::{}", ctx.session);
        let (fatal, why) = if exhausted {
            (
                true,
                format!("{what} ran past its instruction budget of {}", self.budget),
            )
        } else if is_memory_error(e) {
            (true, format!("{what} ran out of memory (limit reached)"))
        } else {
            (self.on_error == OnError::EndSession, String::new())
        };
        if why.is_empty() {
            log::error!(target: &target, "error in {what}: {}", describe(e));
        } else {
            log::error!(target: &target, "{why}; ending the session");
        }
        if fatal {
            ctx.out.push(Command::EndSession {
                session: ctx.session,
                code: Code::ScriptFailed,
                reason: if why.is_empty() {
                    format!("the session script failed in {what}")
                } else {
                    format!("the session script failed: {why}")
                },
            });
        }
    }

    fn players(&self) -> mlua::Result<Table> {
        self.lua.named_registry_value("moonrt.players")
    }

    fn player(&self, peer: PeerId) -> Option<Table> {
        self.players()
            .ok()?
            .get::<Option<Table>>(peer.0)
            .ok()
            .flatten()
    }

    // ----- the calls the host makes -----

    pub(crate) fn session_start(&mut self, ctx: &mut Ctx<'_>) {
        let Ok(session) = self
            .lua
            .globals()
            .get::<Table>("rt")
            .and_then(|rt| rt.get::<Table>("session"))
        else {
            return;
        };
        self.call_named(ctx, "on_session_start", session);
    }

    /// `on_process_start(args)` in the process-wide state.
    pub(crate) fn process_start(&mut self, ctx: &mut Ctx<'_>, args: &[String]) {
        if let Ok(args) = self
            .lua
            .create_sequence_from(args.iter().map(String::as_str))
        {
            self.call_named(ctx, "on_process_start", args);
        }
    }

    /// `on_process_terminate()` in the process-wide state.
    pub(crate) fn process_terminate(&mut self, ctx: &mut Ctx<'_>) {
        self.call_named(ctx, "on_process_terminate", ());
    }

    /// `on_health_check()`: healthy unless it returns false or fails.
    pub(crate) fn health_check(&mut self, ctx: &mut Ctx<'_>) -> bool {
        if self.callback("on_health_check").is_none() {
            return true;
        }
        self.call_named(ctx, "on_health_check", ())
            .is_some_and(|v| v != Value::Boolean(false))
    }

    pub(crate) fn session_end(&mut self, ctx: &mut Ctx<'_>) {
        self.call_named(ctx, "on_session_end", ());
    }

    /// Creates the player's table, offers it to `on_player_connect`; `Err` refuses the player.
    pub(crate) fn player_connecting(
        &mut self,
        ctx: &mut Ctx<'_>,
        info: PlayerInfo<'_>,
        payload: &[u8],
    ) -> Result<(), String> {
        let player = self
            .new_player(info)
            .map_err(|e| format!("cannot create the player: {e}"))?;
        let Some(f) = self.callback("on_player_connect") else {
            return self.keep_player(info.peer, player);
        };
        let verdict = self.call(ctx, "on_player_connect", |lua, _| {
            let payload = lua.create_string(payload)?;
            f.call::<(Value, Option<String>)>((player.clone(), payload))
        });
        match verdict {
            Some((Value::Boolean(false), reason)) => {
                Err(reason.unwrap_or_else(|| "refused by the session script".into()))
            }
            Some(_) => self.keep_player(info.peer, player),
            None => Err("the session script failed to check this player".into()),
        }
    }

    fn new_player(&self, info: PlayerInfo<'_>) -> mlua::Result<Table> {
        let player = self.lua.create_table()?;
        player.set("peer", info.peer.0)?;
        player.set("id", info.player_id)?;
        player.set("name", info.name)?;
        player.set("udp", false)?;
        player.set("data", self.lua.create_table()?)?;
        Ok(player)
    }

    fn keep_player(&self, peer: PeerId, player: Table) -> Result<(), String> {
        self.players()
            .and_then(|p| p.set(peer.0, player))
            .map_err(|e| format!("cannot record the player: {e}"))
    }

    pub(crate) fn player_joined(&mut self, ctx: &mut Ctx<'_>, peer: PeerId) {
        if let Some(player) = self.player(peer) {
            self.call_named(ctx, "on_player_join", player);
        }
    }

    pub(crate) fn player_left(&mut self, ctx: &mut Ctx<'_>, peer: PeerId, reason: Code) {
        let Some(player) = self.player(peer) else {
            return;
        };
        self.call_named(ctx, "on_player_leave", (player, reason.name()));
        if let Ok(players) = self.players() {
            let _ = players.set(peer.0, Value::Nil);
        }
    }

    pub(crate) fn udp_bound(&mut self, ctx: &mut Ctx<'_>, peer: PeerId) {
        if let Some(player) = self.player(peer) {
            let _ = player.set("udp", true);
            self.call_named(ctx, "on_network_change", (player, "udp_bound"));
        }
    }

    /// `on_group_join` / `on_group_leave`: `false` refuses a player's own group request.
    pub(crate) fn group_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: PeerId,
        group: u16,
        joining: bool,
    ) -> bool {
        let name = if joining {
            "on_group_join"
        } else {
            "on_group_leave"
        };
        let (Some(_), Some(player)) = (self.callback(name), self.player(peer)) else {
            return true;
        };
        // An error in the check refuses: membership stays as it was.
        self.call_named(ctx, name, (player, group))
            .is_some_and(|v| v != Value::Boolean(false))
    }

    pub(crate) fn group_changed(&mut self, ctx: &mut Ctx<'_>, group: u16, members: &[PeerId]) {
        if let Some(mut st) = self.lua.app_data_mut::<CallState>() {
            if members.is_empty() {
                st.groups.remove(&group);
            } else {
                st.groups
                    .insert(group, members.iter().map(|p| p.0).collect());
            }
        }
        if self.callback("on_group_change").is_some() {
            let list: Vec<u16> = members.iter().map(|p| p.0).collect();
            let Ok(list) = self.lua.create_sequence_from(list) else {
                return;
            };
            self.call_named(ctx, "on_group_change", (group, list));
        }
    }

    /// Offers a player's packet to `rt.on_packet(opcode)` or `on_packet`.
    pub(crate) fn packet(&mut self, ctx: &mut Ctx<'_>, sender: PeerId, data: &Data<'_>) -> Verdict {
        let handler = self
            .lua
            .app_data_ref::<CallState>()
            .and_then(|st| st.packet_handlers.get(&data.opcode).cloned())
            .or_else(|| self.callback("on_packet"));
        let has_filters = || {
            self.callback("on_send_to_player").is_some()
                || self.callback("on_send_to_group").is_some()
        };
        if handler.is_none() && !has_filters() {
            return Verdict::Forward;
        }
        let player = self.player(sender);
        // GameLift's send filters run after the packet handler, by the kind of target.
        let filter = match data.target {
            Target::Peers(_) => self.callback("on_send_to_player"),
            Target::Group(_) => self.callback("on_send_to_group"),
            _ => None,
        };
        let outcome = self.call(ctx, "on_packet", |lua, _| {
            let packet = packet_table(lua, sender, player, data)?;
            for f in handler.iter().chain(filter.iter()) {
                let keep: Value = f.call(packet.clone())?;
                if keep == Value::Boolean(false) {
                    return Ok(Verdict::Drop);
                }
            }
            read_rewrite(&packet, data)
        });
        // A failed handler drops the packet: a half-applied rewrite must not leak out.
        outcome.unwrap_or(Verdict::Drop)
    }

    /// Offers a message addressed to the server to `on_message`.
    pub(crate) fn server_message(
        &mut self,
        ctx: &mut Ctx<'_>,
        sender: PeerId,
        data: &Data<'_>,
    ) -> bool {
        let Some(f) = self.callback("on_message") else {
            return false;
        };
        let player = self.player(sender);
        self.call(ctx, "on_message", |lua, _| {
            f.call::<()>(packet_table(lua, sender, player, data)?)
        });
        true
    }

    /// A timer is due: run it, re-arm intervals and the tick.
    pub(crate) fn timer(&mut self, ctx: &mut Ctx<'_>, id: u64) {
        let (func, is_tick, dt) = {
            let Some(mut st) = self.lua.app_data_mut::<CallState>() else {
                return;
            };
            st.now = ctx.now;
            let Some(timer) = st.timers.get_mut(&id) else {
                return; // cleared
            };
            let func = timer.func.clone();
            if let Some(every) = timer.every {
                timer.due += every;
                if timer.due <= ctx.now {
                    // Fell behind (a long callback): skip missed runs rather than burst.
                    timer.due = ctx.now + every;
                }
                let due = timer.due;
                let session = st.session;
                st.commands.push(Command::SetTimer {
                    session,
                    timer: id,
                    at: due,
                });
            } else {
                st.timers.remove(&id);
            }
            let is_tick = st.tick == Some(id);
            let dt = if is_tick {
                let last = st.last_tick.replace(ctx.now).unwrap_or(ctx.now);
                ctx.now.saturating_duration_since(last)
            } else {
                Duration::ZERO
            };
            (func, is_tick, dt)
        };
        if is_tick {
            self.call_named(ctx, "on_tick", dt.as_secs_f64() * 1000.0);
        } else if let Some(f) = func {
            self.call(ctx, "a timer", |_, _| f.call::<()>(()));
        }
    }
}

/// The table a packet handler sees.
fn packet_table(
    lua: &Lua,
    sender: PeerId,
    player: Option<Table>,
    data: &Data<'_>,
) -> mlua::Result<Table> {
    let packet = lua.create_table()?;
    packet.set("sender", sender.0)?;
    packet.set("player", player)?;
    packet.set("opcode", data.opcode)?;
    packet.set("intent", api::intent_name(data.intent))?;
    packet.set("payload", lua.create_string(data.payload)?)?;
    let to: Value = match data.target {
        Target::AllOthers => Value::String(lua.create_string("all")?),
        Target::Server => Value::String(lua.create_string("server")?),
        Target::Group(g) => {
            let t = lua.create_table()?;
            t.set("group", g)?;
            Value::Table(t)
        }
        Target::Peers(list) => Value::Table(lua.create_sequence_from(list.iter())?),
    };
    packet.set("to", to.clone())?;
    packet.set("original_to", to)?;
    Ok(packet)
}

/// What a handler changed: `payload` and/or `to`.
fn read_rewrite(packet: &Table, data: &Data<'_>) -> mlua::Result<Verdict> {
    let payload: Value = packet.get("payload")?;
    let new_payload = api::payload_bytes(&payload)?;
    let payload = (new_payload != data.payload).then_some(new_payload);
    let to: Value = packet.get("to")?;
    let original: Value = packet.get("original_to")?;
    let to = match (&to, &original) {
        (Value::String(a), Value::String(b)) if a == b => None,
        (Value::String(s), _) if &*s.to_str()? == "server" => Some(SendTarget::Peers(vec![0])),
        _ => {
            let target = api::parse_target(&to)?;
            let unchanged = match (&target, data.target) {
                (SendTarget::Group(a), Target::Group(b)) => *a == b,
                (SendTarget::Peers(a), Target::Peers(b)) => a.iter().copied().eq(b.iter()),
                (SendTarget::All, Target::AllOthers) => true,
                _ => false,
            };
            (!unchanged).then_some(target)
        }
    };
    Ok(if payload.is_none() && to.is_none() {
        Verdict::Forward
    } else {
        Verdict::Rewrite { payload, to }
    })
}

fn is_memory_error(e: &mlua::Error) -> bool {
    match e {
        mlua::Error::MemoryError(_) => true,
        mlua::Error::CallbackError { cause, .. } => is_memory_error(cause),
        mlua::Error::WithContext { cause, .. } => is_memory_error(cause),
        _ => false,
    }
}

/// One clear text for a Lua error: message with file:line, then the traceback if any.
pub(crate) fn describe(e: &mlua::Error) -> String {
    let text = e.to_string();
    if text.contains(BUDGET_ERROR) {
        return BUDGET_ERROR.into();
    }
    text
}
