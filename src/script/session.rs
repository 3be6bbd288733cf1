//! One session's script: its Lua state, the callbacks table the script returned, and the calls
//! into it, each under a fresh instruction budget.

use super::api::{self, CallState};
use super::callbacks::{self, Callbacks};
use super::sandbox::{self, BUDGET_ERROR, Budget, Overrun, TIME_ERROR};
use super::source::ScriptSource;
use crate::config::{OnError, ScriptConfig};
use crate::core::codec::{Data, Intent, Target};
use crate::core::{Code, Command, Ctx, PeerId, PlayerInfo, PropsScope, SendTarget, Verdict};
use mlua::{Function, IntoLuaMulti, Lua, Table, Value};
use std::rc::Rc;
use std::time::Duration;

/// A running session's script.
pub(crate) struct SessionScript {
    lua: Lua,
    callbacks: Table,
    /// The packet callbacks, read once when the state is built.
    fast: FastPath,
    /// The per-packet machinery (see `DISPATCH`), made when the first packet reaches Lua: an
    /// idle session, or one whose script never sees packets, does not pay for it (about 1.3 KB).
    dispatcher: Option<Dispatcher>,
    budget: u64,
    /// Wall-clock time one callback may run, and all of the session's timers in one loop turn.
    time_limit: Duration,
    /// The pass (its `now`) the last timer ran in, and the time the session's timers took in it.
    timer_pass: Option<(std::time::Instant, Duration)>,
    on_error: OnError,
    /// The script generation this state was built from.
    pub generation: u64,
    /// Lua errors raised by this session's callbacks.
    pub errors: u64,
    /// Keys of the returned table that are not moonrt callbacks (see `callbacks.rs`).
    pub warnings: Vec<String>,
}

/// What a state is started with besides its script version and limits.
pub(crate) struct Setup<'a> {
    /// The session's name (`rt.session.name`).
    pub name: &'a str,
    /// `rt.session.params`: the creation parameters of the ticket that created the session.
    pub params: Option<&'a serde_json::Value>,
    /// The session's settings and their limits (`rt.session.max_players`, ...); `None` for the
    /// process-wide state and checks.
    pub settings: Option<crate::core::SessionStart<'a>>,
    /// `rt.http`'s pool (sessions only).
    pub http: Option<std::sync::Arc<super::http::Pool>>,
    /// `rt.server_id`.
    pub server_id: &'a str,
    /// What the process-wide `on_process_start` returned, shared read-only as `rt.process`.
    pub process: Option<&'a serde_json::Value>,
}

impl SessionScript {
    /// Builds a state, installs `rt`, runs the main chunk; it must return a table of callbacks.
    pub(crate) fn start(
        source: &Rc<ScriptSource>,
        config: &ScriptConfig,
        ctx: &Ctx<'_>,
        setup: &Setup<'_>,
    ) -> Result<SessionScript, String> {
        let lua = sandbox::new_state(source.clone(), config.memory_limit_bytes)
            .map_err(|e| format!("cannot create a Lua state: {e}"))?;
        let mut state = CallState::new(ctx.session, ctx.now);
        state.wall_us = ctx.wall_us;
        state.memory_limit = config.memory_limit_bytes;
        state.log = api::LogLimit::new(config.log_lines_per_sec);
        lua.set_app_data(state);
        api::install(&lua, setup).map_err(|e| format!("cannot install rt: {e}"))?;
        let time_limit = Duration::from_millis(config.callback_time_limit_ms);
        if let Some(budget) = lua.app_data_ref::<Budget>() {
            budget.reset(config.instruction_budget, time_limit);
        }
        crate::watchdog::enter_callback(ctx.session.0, "the script's top level");
        let returned = source.load_main(&lua);
        crate::watchdog::leave_callback();
        let returned: Value = returned.map_err(|e| describe_load(&lua, &e))?;
        let Value::Table(callbacks) = returned else {
            return Err(format!(
                "{} must return a table of callbacks (got {})",
                source.main_name(),
                returned.type_name()
            ));
        };
        let Callbacks {
            table: callbacks,
            warnings,
        } = callbacks::collect(&lua, &callbacks).map_err(|e| describe(&e))?;
        let fast = FastPath::new(&callbacks).map_err(|e| describe(&e))?;
        // Building the state leaves garbage (the os table replaced, the loaders' temporaries):
        // collect it now, so an idle session holds only what it uses (about 5 KB less each).
        let _ = lua.gc_collect();
        Ok(SessionScript {
            lua,
            callbacks,
            fast,
            dispatcher: None,
            timer_pass: None,
            budget: config.instruction_budget,
            time_limit,
            on_error: config.on_error,
            generation: source.generation,
            errors: 0,
            warnings,
        })
    }

    /// Commands the main chunk recorded while loading (timers armed at top level, say).
    pub(crate) fn drain_into(&self, ctx: &mut Ctx<'_>) {
        if let Some(mut st) = self.lua.app_data_mut::<CallState>() {
            st.outbox_bytes = 0;
            for command in st.commands.drain(..) {
                ctx.out.push(command);
            }
        }
    }

    fn callback(&self, name: &str) -> Option<Function> {
        self.callbacks
            .raw_get::<Option<Function>>(name)
            .ok()
            .flatten()
    }

    /// Runs `f` as one callback: fresh budget, the context's time, commands handed to the core.
    /// A Lua error is logged and counted; `None` is returned.
    fn call<R>(
        &mut self,
        ctx: &mut Ctx<'_>,
        what: &'static str,
        f: impl FnOnce(&Lua, &Table) -> mlua::Result<R>,
    ) -> Option<R> {
        if let Some(mut st) = self.lua.app_data_mut::<CallState>() {
            st.now = ctx.now;
            st.wall_us = ctx.wall_us;
        }
        if let Some(budget) = self.lua.app_data_ref::<Budget>() {
            budget.reset(self.budget, self.time_limit);
        }
        crate::watchdog::enter_callback(ctx.session.0, what);
        let started = std::time::Instant::now();
        let mut result = f(&self.lua, &self.callbacks);
        crate::ops::metrics::CALLBACK.record(started.elapsed());
        crate::watchdog::leave_callback();
        // An overrun swallowed on the way out (by `load`'s reader, by `coroutine.resume`) still
        // ends the session: the limit was passed whoever caught the error.
        let overrun = self
            .lua
            .app_data_ref::<Budget>()
            .and_then(|b| b.exhausted());
        if let (Ok(_), Some(why)) = (&result, overrun) {
            result = Err(mlua::Error::runtime(why.message()));
        }
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
        name: &'static str,
        args: impl IntoLuaMulti,
    ) -> Option<Value> {
        let f = self.callback(name)?;
        self.call(ctx, name, |_, _| f.call::<Value>(args))
    }

    fn fail(&mut self, ctx: &mut Ctx<'_>, what: &'static str, e: &mlua::Error) {
        self.errors += 1;
        let exhausted = self
            .lua
            .app_data_ref::<Budget>()
            .and_then(|b| b.exhausted());
        let target = format!("script::{}", ctx.session);
        let (fatal, why) = if let Some(overrun) = exhausted {
            let what = match overrun {
                Overrun::Instructions => format!(
                    "{what} ran past its instruction budget of {} (at {})",
                    self.budget,
                    where_of(e)
                ),
                Overrun::Time => format!(
                    "{what} ran past its time limit of {} ms (at {})",
                    self.time_limit.as_millis(),
                    where_of(e)
                ),
            };
            (true, what)
        } else if let Some(detail) = memory_error(e) {
            (true, format!("{what} ran out of memory: {detail}"))
        } else {
            (self.on_error == OnError::EndSession, String::new())
        };
        let line = if why.is_empty() {
            format!("error in {what}: {}", describe(e))
        } else {
            format!("{why}; ending the session")
        };
        log::error!(target: &target, "{line}");
        crate::ops::journal::push(
            crate::ops::journal::Kind::ScriptError,
            Some(ctx.session.0),
            &line,
        );
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

    /// `rt.session.data` as JSON, if it is plain data.
    pub(crate) fn session_data(&self) -> Option<serde_json::Value> {
        let session: Table = self.lua.named_registry_value("moonrt.session").ok()?;
        let data: Value = session.raw_get("data").ok()?;
        mlua::LuaSerdeExt::from_value(&self.lua, data).ok()
    }

    /// Bytes the session's Lua state uses.
    pub(crate) fn memory(&self) -> usize {
        self.lua.used_memory()
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
        let Ok(session) = self.lua.named_registry_value::<Table>("moonrt.session") else {
            return;
        };
        self.call_named(ctx, "on_session_start", session);
    }

    /// `on_process_start(args)` in the process-wide state. What it returns (plain data) is
    /// handed to every session as `rt.process`; `false` or an error means "not ready"
    /// (GameLift's `onProcessStarted` returning false) and the server does not start.
    pub(crate) fn process_start(
        &mut self,
        ctx: &mut Ctx<'_>,
        args: &[String],
    ) -> Result<Option<serde_json::Value>, String> {
        if self.callback("on_process_start").is_none() {
            return Ok(None);
        }
        let args = self
            .lua
            .create_sequence_from(args.iter().map(String::as_str))
            .map_err(|e| e.to_string())?;
        let errors = self.errors;
        let returned = self.call_named(ctx, "on_process_start", args);
        match returned {
            None if self.errors > errors => {
                Err("on_process_start failed (see the error above)".into())
            }
            None | Some(Value::Nil) => Ok(None),
            Some(Value::Boolean(false)) => {
                Err("on_process_start returned false: the script is not ready".into())
            }
            Some(value) => mlua::LuaSerdeExt::from_value::<serde_json::Value>(&self.lua, value)
                .map(Some)
                .map_err(|e| {
                    format!(
                        "on_process_start must return plain data (tables, strings, numbers, \
                         booleans) to share as rt.process: {e}"
                    )
                }),
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
        let claims = match info.claims {
            Some(claims) => mlua::LuaSerdeExt::to_value(&self.lua, claims)?,
            None => Value::Table(self.lua.create_table()?),
        };
        player.set("claims", claims)?;
        player.set("udp", false)?;
        player.set("connected", true)?;
        player.set("props", "")?;
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

    /// An `rt.http` answer: its callback runs with `(response, nil)` or `(nil, error)`.
    pub(crate) fn http_done(&mut self, ctx: &mut Ctx<'_>, outcome: super::http::Outcome) {
        let func = self
            .lua
            .app_data_mut::<CallState>()
            .and_then(|mut st| st.http_pending.remove(&outcome.id));
        let Some(func) = func else {
            return;
        };
        self.call(ctx, "an rt.http callback", |lua, _| match outcome.result {
            Ok(response) => {
                let t = lua.create_table()?;
                t.set("status", response.status)?;
                let headers = lua.create_table()?;
                for (k, v) in response.headers {
                    headers.set(k, v)?;
                }
                t.set("headers", headers)?;
                t.set("body", lua.create_string(&response.body)?)?;
                func.call::<()>((t, Value::Nil))
            }
            Err(why) => func.call::<()>((Value::Nil, why)),
        });
    }

    /// `on_player_disconnect(player)`: its connection dropped; the seat is held.
    pub(crate) fn player_disconnected(&mut self, ctx: &mut Ctx<'_>, peer: PeerId) {
        if let Some(player) = self.player(peer) {
            let _ = player.raw_set("udp", false);
            let _ = player.raw_set("connected", false);
            self.call_named(ctx, "on_player_disconnect", player);
        }
    }

    /// `on_player_reconnect(player)`: back on a new connection, same peer id.
    pub(crate) fn player_reconnected(&mut self, ctx: &mut Ctx<'_>, peer: PeerId) {
        if let Some(player) = self.player(peer) {
            let _ = player.raw_set("connected", true);
            self.call_named(ctx, "on_player_reconnect", player);
        }
    }

    pub(crate) fn udp_bound(&mut self, ctx: &mut Ctx<'_>, peer: PeerId) {
        if let Some(player) = self.player(peer) {
            let _ = player.raw_set("udp", true);
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

    /// `on_frame_sync(player, on, rate)`: `false` (or an error) refuses a player's request.
    pub(crate) fn frame_sync_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: PeerId,
        on: bool,
        rate: u8,
    ) -> bool {
        let (Some(_), Some(player)) = (self.callback("on_frame_sync"), self.player(peer)) else {
            return true;
        };
        self.call_named(ctx, "on_frame_sync", (player, on, rate))
            .is_some_and(|v| v != Value::Boolean(false))
    }

    /// `on_frame(frame)`: the script sees each frame before it goes out and may change
    /// `frame.inputs` (a list of `{peer, payload}`; peer 0 for the server's own).
    pub(crate) fn frame(&mut self, ctx: &mut Ctx<'_>, frame: &mut crate::core::Frame) {
        let Some(f) = self.callback("on_frame") else {
            return;
        };
        let amended = self.call(ctx, "on_frame", |lua, _| {
            let t = lua.create_table()?;
            t.set("number", frame.number)?;
            t.set("seed", frame.seed)?;
            let inputs = lua.create_table()?;
            for (peer, bytes) in &frame.inputs {
                let input = lua.create_table()?;
                input.set("peer", *peer)?;
                input.set("payload", lua.create_string(bytes)?)?;
                inputs.push(input)?;
            }
            t.set("inputs", inputs)?;
            f.call::<()>(t.clone())?;
            let inputs: Table = t.get("inputs")?;
            let mut out = Vec::new();
            for input in inputs.sequence_values::<Table>() {
                let input = input?;
                let peer: u16 = input.get("peer")?;
                let payload = super::api::payload_bytes(&input.get::<Value>("payload")?)?;
                if payload.len() > u16::MAX as usize {
                    return Err(mlua::Error::runtime("a frame input is over 65535 bytes"));
                }
                out.push((peer, payload));
            }
            if out.len() > u16::MAX as usize {
                return Err(mlua::Error::runtime("a frame holds at most 65535 inputs"));
            }
            Ok(out)
        });
        // A failed or broken callback leaves the frame as it was.
        if let Some(inputs) = amended {
            frame.inputs = inputs;
        }
    }

    /// `on_player_props` / `on_session_props`: `false` refuses a player's properties change;
    /// otherwise `player.props` or `rt.session.props` take the new value.
    pub(crate) fn props_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: PeerId,
        scope: PropsScope,
        props: &[u8],
    ) -> bool {
        let Some(player) = self.player(peer) else {
            return true;
        };
        let Ok(value) = self.lua.create_string(props) else {
            return false;
        };
        let name = match scope {
            PropsScope::Player => "on_player_props",
            PropsScope::Session => "on_session_props",
        };
        if self.callback(name).is_some() {
            let verdict = self.call_named(ctx, name, (player.clone(), value.clone()));
            // An error in the check refuses: the properties stay as they were.
            if verdict.is_none_or(|v| v == Value::Boolean(false)) {
                return false;
            }
        }
        let mirrored = match scope {
            // Raw: a metatable the script put on these tables must not run outside a callback.
            PropsScope::Player => player.raw_set("props", value),
            PropsScope::Session => self
                .lua
                .named_registry_value::<Table>("moonrt.session")
                .and_then(|session| session.raw_set("props", value)),
        };
        mirrored.is_ok()
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

    /// Offers a player's packet to `rt.on_packet(opcode)` or `on_packet`, then to the send
    /// filter for its kind of target. Nothing touches Lua when none of them exists.
    pub(crate) fn packet(&mut self, ctx: &mut Ctx<'_>, sender: PeerId, data: &Data<'_>) -> Verdict {
        let handler = self
            .lua
            .app_data_ref::<CallState>()
            .and_then(|st| st.packet_handlers.get(&data.opcode).cloned())
            .or_else(|| self.fast.on_packet.clone());
        // GameLift's send filters run after the packet handler, by the kind of target.
        let filter = match data.target {
            Target::Peers(_) => self.fast.on_send_to_player.clone(),
            Target::Group(_) => self.fast.on_send_to_group.clone(),
            _ => None,
        };
        if handler.is_none() && filter.is_none() {
            return Verdict::Forward;
        }
        // Without the dispatcher (the state is out of memory) the packet is dropped, as when
        // a handler fails.
        self.make_dispatcher(ctx);
        let Some(d) = &self.dispatcher else {
            return Verdict::Drop;
        };
        let dispatch = d.dispatch.clone();
        let intent = d.intent(data.intent);
        let target = d.target(&self.lua, data.target);
        let outcome = self.call(ctx, "on_packet", |lua, _| {
            let (keep, payload, to): (bool, Option<mlua::LuaString>, Value) = dispatch.call((
                handler,
                filter,
                sender.0,
                data.opcode,
                intent,
                lua.create_string(data.payload)?,
                target?,
            ))?;
            if !keep {
                return Ok(Verdict::Drop);
            }
            rewrite(payload, to, data)
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
        let Some(f) = self.fast.on_message.clone() else {
            return false;
        };
        self.make_dispatcher(ctx);
        let Some(d) = &self.dispatcher else {
            return true;
        };
        let dispatch = d.dispatch.clone();
        let intent = d.intent(data.intent);
        let target = d.target(&self.lua, data.target);
        self.call(ctx, "on_message", |lua, _| {
            dispatch.call::<Value>((
                f,
                Value::Nil,
                sender.0,
                data.opcode,
                intent,
                lua.create_string(data.payload)?,
                target?,
            ))
        });
        true
    }

    /// Makes the dispatcher if this is the first packet that reaches Lua. A failure (the
    /// state's memory limit) is logged and counted like a callback's error and leaves it unmade.
    fn make_dispatcher(&mut self, ctx: &mut Ctx<'_>) {
        if self.dispatcher.is_none() {
            self.dispatcher =
                self.call(ctx, "the packet dispatcher", |lua, _| Dispatcher::new(lua));
        }
    }

    /// A timer is due: run it, re-arm intervals and the tick.
    pub(crate) fn timer(&mut self, ctx: &mut Ctx<'_>, id: u64) {
        let (func, is_tick, dt) = {
            let Some(mut st) = self.lua.app_data_mut::<CallState>() else {
                return;
            };
            st.now = ctx.now;
            st.outstanding_timers = st.outstanding_timers.saturating_sub(1);
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
                st.outstanding_timers += 1;
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
        let started = std::time::Instant::now();
        if is_tick {
            self.call_named(ctx, "on_tick", dt.as_secs_f64() * 1000.0);
        } else if let Some(f) = func {
            self.call(ctx, "a timer", |_, _| f.call::<()>(()));
        }
        // One turn's timers together may hold the loop as long as one callback may, no longer:
        // many timers due at once, each within its own limits, would otherwise stall every
        // session on the loop.
        let spent = started.elapsed();
        let in_pass = match self.timer_pass {
            Some((now, before)) if now == ctx.now => before + spent,
            _ => spent,
        };
        self.timer_pass = Some((ctx.now, in_pass));
        if in_pass > self.time_limit {
            self.timer_pass = None;
            self.end_for(
                ctx,
                format!(
                    "its timers ran {} ms in one loop turn, past the time limit of {} ms \
                     (script.callback_time_limit_ms)",
                    in_pass.as_millis(),
                    self.time_limit.as_millis()
                ),
            );
        }
    }

    /// Ends the session for a limit it passed: logged, recorded for the dashboard, code 29.
    fn end_for(&mut self, ctx: &mut Ctx<'_>, why: String) {
        self.errors += 1;
        let target = format!("script::{}", ctx.session);
        let line = format!("{why}; ending the session");
        log::error!(target: &target, "{line}");
        crate::ops::journal::push(
            crate::ops::journal::Kind::ScriptError,
            Some(ctx.session.0),
            &line,
        );
        ctx.out.push(Command::EndSession {
            session: ctx.session,
            code: Code::ScriptFailed,
            reason: format!("the session script failed: {why}"),
        });
    }
}

/// Builds the packet table with constant keys, runs the handler and the filter, and reports
/// what changed: `false` to drop; `true` alone to forward; `true, payload, to` to rewrite.
/// Doing this in Lua costs one call per packet instead of one protected call per field.
const DISPATCH: &str = r#"
local players = ...
return function(handler, filter, sender, opcode, intent, payload, to)
  local packet = { sender = sender, player = players[sender], opcode = opcode,
                   intent = intent, payload = payload, to = to }
  if handler and handler(packet) == false then return false end
  if filter and filter(packet) == false then return false end
  local new_payload, new_to = packet.payload, packet.to
  if new_payload == payload and new_to == to and type(to) ~= "table" then return true end
  return true, new_payload ~= payload and new_payload or nil, new_to
end
"#;

/// The packet callbacks, read once when the session starts.
struct FastPath {
    on_packet: Option<Function>,
    on_send_to_player: Option<Function>,
    on_send_to_group: Option<Function>,
    on_message: Option<Function>,
}

impl FastPath {
    fn new(callbacks: &Table) -> mlua::Result<FastPath> {
        let get = |name: &str| callbacks.get::<Option<Function>>(name);
        Ok(FastPath {
            on_packet: get("on_packet")?,
            on_send_to_player: get("on_send_to_player")?,
            on_send_to_group: get("on_send_to_group")?,
            on_message: get("on_message")?,
        })
    }
}

/// What the per-packet path needs, made once per state when the first packet reaches Lua:
/// the dispatcher and the strings every packet would otherwise create.
struct Dispatcher {
    dispatch: Function,
    reliable: mlua::LuaString,
    unreliable: mlua::LuaString,
    sequenced: mlua::LuaString,
    all: mlua::LuaString,
    server: mlua::LuaString,
}

impl Dispatcher {
    fn new(lua: &Lua) -> mlua::Result<Dispatcher> {
        let players: Table = lua.named_registry_value("moonrt.players")?;
        let dispatch: Function = lua.load(DISPATCH).set_name("=dispatch").call(players)?;
        Ok(Dispatcher {
            dispatch,
            reliable: lua.create_string(Intent::Reliable.name())?,
            unreliable: lua.create_string(Intent::Unreliable.name())?,
            sequenced: lua.create_string(Intent::UnreliableSequenced.name())?,
            all: lua.create_string("all")?,
            server: lua.create_string("server")?,
        })
    }

    fn intent(&self, intent: Intent) -> mlua::LuaString {
        match intent {
            Intent::Reliable => self.reliable.clone(),
            Intent::Unreliable => self.unreliable.clone(),
            Intent::UnreliableSequenced => self.sequenced.clone(),
        }
    }

    fn target(&self, lua: &Lua, target: Target<'_>) -> mlua::Result<Value> {
        Ok(match target {
            Target::AllOthers => Value::String(self.all.clone()),
            Target::Server => Value::String(self.server.clone()),
            Target::Group(g) => {
                let t = lua.create_table_with_capacity(0, 1)?;
                t.raw_set("group", g)?;
                Value::Table(t)
            }
            Target::Peers(list) => Value::Table(lua.create_sequence_from(list.iter())?),
        })
    }
}

/// Turns what the dispatcher reported into a verdict.
fn rewrite(payload: Option<mlua::LuaString>, to: Value, data: &Data<'_>) -> mlua::Result<Verdict> {
    let payload = payload.map(|p| p.as_bytes().to_vec());
    let to = match &to {
        Value::Nil => None,
        Value::String(s) if &*s.to_str()? == "server" => {
            (data.target != Target::Server).then(|| SendTarget::Peers(vec![0]))
        }
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

/// The message of the memory error inside `e`, if it is one: the Lua heap reaching its cap, or
/// `rt` refusing work that would pass the session's memory limit.
fn memory_error(e: &mlua::Error) -> Option<String> {
    match e {
        mlua::Error::MemoryError(m) if m.contains("memory limit") => Some(m.clone()),
        mlua::Error::MemoryError(_) => Some("the Lua heap reached memory_limit_bytes".into()),
        mlua::Error::CallbackError { cause, .. } => memory_error(cause),
        mlua::Error::WithContext { cause, .. } => memory_error(cause),
        _ => None,
    }
}

/// One clear text for a Lua error: message with file:line, then the traceback if any.
pub(crate) fn describe(e: &mlua::Error) -> String {
    let text = e.to_string();
    for overrun in [BUDGET_ERROR, TIME_ERROR] {
        if text.contains(overrun) {
            return format!("{overrun} (at {})", where_of(e));
        }
    }
    text
}

/// A load error, with the limit that stopped the top level if one did.
fn describe_load(lua: &Lua, e: &mlua::Error) -> String {
    match lua.app_data_ref::<Budget>().and_then(|b| b.exhausted()) {
        Some(Overrun::Instructions) => format!(
            "the top level ran past its instruction budget (at {})",
            where_of(e)
        ),
        Some(Overrun::Time) => {
            format!("the top level ran past its time limit (at {})", where_of(e))
        }
        None => describe(e),
    }
}

/// The innermost script `file:line` in an error's traceback, or "an unknown place".
fn where_of(e: &mlua::Error) -> String {
    let text = e.to_string();
    text.lines()
        .map(str::trim)
        .find_map(|line| {
            let (file, rest) = line.split_once(".lua:")?;
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            (!digits.is_empty() && !file.contains('['))
                .then(|| format!("{}.lua:{digits}", file.trim_start_matches("...")))
        })
        .unwrap_or_else(|| "an unknown place".into())
}

#[cfg(test)]
mod tests {
    use super::super::host::LuaHooks;
    use super::super::source::ScriptSource;
    use crate::config::Config;
    use crate::core::codec::{Data, Intent, Target};
    use crate::core::{Ctx, Hooks, Outbox, PeerId, PlayerInfo, SessionId, SessionStart, Verdict};
    use std::time::Instant;

    /// Drops opcode 9, uppercases the rest.
    const SCRIPT: &str = r#"
local M = {}
function M.on_packet(packet)
  if packet.opcode == 9 then return false end
  packet.payload = packet.payload:upper()
end
return M
"#;

    #[test]
    fn the_packet_dispatcher_is_made_by_the_first_packet_and_then_kept() {
        let source = ScriptSource::from_text(std::path::Path::new("main.lua"), SCRIPT.into());
        let mut hooks = LuaHooks::new(source, &Config::default()).expect("the script loads");
        let mut outbox = Outbox::default();
        let session = SessionId(7);
        let mut ctx = Ctx {
            session,
            now: Instant::now(),
            wall_us: 0,
            out: &mut outbox,
        };
        let start = SessionStart {
            name: "",
            params: None,
            max_players: 8,
            limits: (8, 1000),
            linger_ms: 1000,
            send_interval_ms: 0,
        };
        hooks.session_started(&mut ctx, &start).expect("a session");
        let player = PlayerInfo {
            peer: PeerId(1),
            player_id: "",
            name: "a",
            claims: None,
        };
        hooks
            .player_connecting(&mut ctx, player, b"")
            .expect("admitted");
        assert!(
            hooks.session_script(session).dispatcher.is_none(),
            "an idle session has no dispatcher"
        );
        let packet = |opcode| Data {
            intent: Intent::Reliable,
            opcode,
            target: Target::AllOthers,
            payload: b"hi",
        };
        assert!(matches!(
            hooks.on_packet(&mut ctx, PeerId(1), &packet(5)),
            Verdict::Rewrite { payload: Some(p), to: None } if p == b"HI"
        ));
        let dispatcher = |hooks: &LuaHooks| {
            let script = hooks.session_script(session);
            script.dispatcher.as_ref().map(|d| d.dispatch.to_pointer())
        };
        let first = dispatcher(&hooks);
        assert!(first.is_some());
        assert_eq!(
            hooks.on_packet(&mut ctx, PeerId(1), &packet(9)),
            Verdict::Drop
        );
        assert_eq!(dispatcher(&hooks), first, "the second packet reuses it");
        assert_eq!(hooks.session_script(session).errors, 0);
    }
}
