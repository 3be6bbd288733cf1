//! The `rt` table scripts call. Every function either reads state kept in the Lua state itself
//! or records a [`Command`] in the state's [`CallState`]; the host hands those to the core after
//! the callback returns. Nothing here reaches into the core while Lua runs.

use super::session::Setup;
use crate::core::codec::Intent;
use crate::core::{ALL_PLAYERS_GROUP, Code, Command, PeerId, SendTarget, SessionId};
use mlua::{Function, Lua, Table, Value, Variadic};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// A timer armed by the script.
pub(crate) struct Timer {
    /// What to call; `None` for the tick timer (calls `on_tick`).
    pub func: Option<Function>,
    /// Repeat period, for intervals and the tick.
    pub every: Option<Duration>,
    /// When it is due next.
    pub due: Instant,
}

/// Per-state data the API reads and writes during a callback.
pub(crate) struct CallState {
    /// The session this state belongs to.
    pub session: SessionId,
    /// The core's `now` for the running callback.
    pub now: Instant,
    /// Wall clock for the running callback, µs since the Unix epoch.
    pub wall_us: u64,
    /// Commands recorded by the running callback.
    pub commands: Vec<Command>,
    /// Armed timers by id.
    pub timers: HashMap<u64, Timer>,
    /// Next timer id.
    pub next_timer: u64,
    /// The tick timer's id, if a tick rate is set.
    pub tick: Option<u64>,
    /// When `on_tick` last ran.
    pub last_tick: Option<Instant>,
    /// Handlers registered with `rt.on_packet(opcode, fn)`.
    pub packet_handlers: HashMap<u32, Function>,
    /// Group membership as last reported by the core.
    pub groups: BTreeMap<u16, Vec<u16>>,
    /// The log target, `script::session#N`.
    pub log_target: String,
    /// Bytes held by the commands recorded in the running callback (payloads, reasons).
    pub outbox_bytes: usize,
    /// Timers the core holds for this session that have not fired yet (cleared ones included:
    /// the core forgets them only when they come due).
    pub outstanding_timers: usize,
    /// `rt.http`'s pool (`None` in the process-wide state and checks).
    pub http: Option<std::sync::Arc<super::http::Pool>>,
    /// `rt.http` callbacks waiting for their answers, by request id.
    pub http_pending: HashMap<u64, Function>,
    /// The next `rt.http` request id.
    pub next_http: u64,
    /// The server-wide limits of `rt.configure_session`: max players, linger ms (`None` in the
    /// process-wide state).
    pub session_limits: Option<(usize, u64)>,
    /// The session's memory limit: Lua heap + outbox + timers together.
    pub memory_limit: usize,
    /// Script log lines allowed per second, and the bucket that enforces it.
    pub log: LogLimit,
}

/// What one armed timer costs the process, in bytes (the script's entry, the core's heap entry,
/// the function reference), counted against the session's memory limit.
const TIMER_BYTES: usize = 160;
/// What one recorded command costs besides its payload.
const COMMAND_BYTES: usize = 64;
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

impl CallState {
    pub(crate) fn new(session: SessionId, now: Instant) -> CallState {
        CallState {
            session,
            now,
            wall_us: 0,
            commands: Vec::new(),
            timers: HashMap::new(),
            next_timer: 1,
            tick: None,
            last_tick: None,
            packet_handlers: HashMap::new(),
            groups: BTreeMap::new(),
            log_target: format!("script::{session}"),
            outbox_bytes: 0,
            outstanding_timers: 0,
            memory_limit: usize::MAX,
            session_limits: None,
            http: None,
            http_pending: HashMap::new(),
            next_http: 1,
            log: LogLimit::new(u32::MAX),
        }
    }

    /// Records a command, counting what it holds against the memory limit.
    pub(crate) fn push(&mut self, command: Command) {
        self.outbox_bytes += command_bytes(&command);
        self.commands.push(command);
    }

    /// Arms a timer and records the command that makes the core call back.
    pub(crate) fn arm(
        &mut self,
        func: Option<Function>,
        after: Duration,
        every: Option<Duration>,
    ) -> u64 {
        let id = self.next_timer;
        self.next_timer += 1;
        let due = self.now + after;
        self.timers.insert(id, Timer { func, every, due });
        self.outstanding_timers += 1;
        self.commands.push(Command::SetTimer {
            session: self.session,
            timer: id,
            at: due,
        });
        id
    }
}

/// What a recorded command holds, in bytes.
fn command_bytes(command: &Command) -> usize {
    COMMAND_BYTES
        + match command {
            Command::Send { to, payload, .. } => {
                payload.len()
                    + match to {
                        SendTarget::Peers(p) => 2 * p.len(),
                        _ => 0,
                    }
            }
            Command::SetProps { props, .. } => props.len(),
            Command::Kick { reason, .. } | Command::EndSession { reason, .. } => reason.len(),
            _ => 0,
        }
}

/// Refuses work that would take the session past its memory limit: the Lua heap, the commands
/// recorded in this callback, the timers the core holds, and `more` bytes about to be added.
fn ensure_room(lua: &Lua, more: usize, what: &str) -> mlua::Result<()> {
    let st = state(lua)?;
    let held = st.outbox_bytes + st.outstanding_timers * TIMER_BYTES;
    let total = lua.used_memory() + held + more;
    if total > st.memory_limit {
        return Err(mlua::Error::MemoryError(format!(
            "{what} would take the session past its memory limit of {} bytes (Lua heap {} + \
             {} bytes queued by this callback + {} timers)",
            st.memory_limit,
            lua.used_memory(),
            st.outbox_bytes,
            st.outstanding_timers
        )));
    }
    Ok(())
}

fn state(lua: &Lua) -> mlua::Result<mlua::AppDataRefMut<'_, CallState>> {
    lua.app_data_mut::<CallState>()
        .ok_or_else(|| mlua::Error::runtime("rt is only usable inside a moonrt session"))
}

/// Records a command for the running callback's session.
fn record(lua: &Lua, make: impl FnOnce(SessionId) -> mlua::Result<Command>) -> mlua::Result<()> {
    let session = state(lua)?.session;
    let command = make(session)?;
    ensure_room(lua, command_bytes(&command), "this command")?;
    state(lua)?.push(command);
    Ok(())
}

/// Parses an intent name; `nil` is reliable.
pub(crate) fn parse_intent(value: &Value) -> mlua::Result<Intent> {
    match value {
        Value::Nil => Ok(Intent::Reliable),
        Value::String(s) => s.to_str()?.parse().map_err(mlua::Error::runtime),
        other => Err(mlua::Error::runtime(format!(
            "intent must be a string (got {})",
            other.type_name()
        ))),
    }
}

/// Parses a target: `"all"`, a peer id, a list of peer ids, or `{group = g}`.
pub(crate) fn parse_target(value: &Value) -> mlua::Result<SendTarget> {
    match value {
        Value::String(s) if &*s.to_str()? == "all" => Ok(SendTarget::All),
        Value::Integer(peer) => Ok(SendTarget::Peers(vec![peer_id(*peer)?])),
        Value::Number(peer) if peer.fract() == 0.0 => {
            Ok(SendTarget::Peers(vec![peer_id(*peer as i64)?]))
        }
        Value::Table(t) => {
            if let Some(group) = t.get::<Option<i64>>("group")? {
                return Ok(SendTarget::Group(group_id(group)?));
            }
            let peers = t
                .sequence_values::<i64>()
                .map(|p| p.and_then(peer_id))
                .collect::<mlua::Result<Vec<u16>>>()?;
            if peers.is_empty() {
                // MGOBE and GameSparks read an empty list as "everyone"; silence would hide it.
                return Err(mlua::Error::runtime(
                    "the target list is empty, so the message would reach nobody; use \"all\" to \
                     send to every player",
                ));
            }
            Ok(SendTarget::Peers(peers))
        }
        other => Err(mlua::Error::runtime(format!(
            "target must be \"all\", a peer id, a list of peer ids or {{group = id}} (got {})",
            match other {
                Value::String(_) => "another string",
                v => v.type_name(),
            }
        ))),
    }
}

fn peer_id(v: i64) -> mlua::Result<u16> {
    u16::try_from(v).map_err(|_| mlua::Error::runtime(format!("{v} is not a peer id (0-65535)")))
}

fn group_id(v: i64) -> mlua::Result<u16> {
    match u16::try_from(v) {
        Ok(g) if g != 0 => Ok(g),
        _ => Err(mlua::Error::runtime(format!(
            "{v} is not a group id (1-65535)"
        ))),
    }
}

/// A group a player can be put in or taken out of: any but the all-players group.
fn member_group_id(v: i64) -> mlua::Result<u16> {
    match group_id(v)? {
        ALL_PLAYERS_GROUP => Err(mlua::Error::runtime(
            "group 65535 (rt.ALL_PLAYERS) is every player: nobody is added to or removed from it",
        )),
        g => Ok(g),
    }
}

fn opcode(v: i64) -> mlua::Result<u32> {
    match u32::try_from(v) {
        Ok(op) if op != 0 => Ok(op),
        _ => Err(mlua::Error::runtime(format!(
            "{v} is not an opcode (1-4294967295; 0 is reserved)"
        ))),
    }
}

/// Bytes of a payload argument: a string (any bytes) or nil (empty).
pub(crate) fn payload_bytes(value: &Value) -> mlua::Result<Vec<u8>> {
    match value {
        Value::Nil => Ok(Vec::new()),
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        other => Err(mlua::Error::runtime(format!(
            "payload must be a string (got {}); use rt.json.encode for tables",
            other.type_name()
        ))),
    }
}

fn millis(v: f64, what: &str) -> mlua::Result<Duration> {
    if v.is_finite() && v >= 0.0 {
        Ok(Duration::from_secs_f64(v / 1000.0))
    } else {
        Err(mlua::Error::runtime(format!(
            "{what} must be a non-negative number of milliseconds"
        )))
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

/// Makes a deep read-only view of plain data: `rt.process` is shared by every session, so no
/// session may change what another reads.
const FREEZE: &str = r#"
local function freeze(v)
  if type(v) ~= "table" then return v end
  local inner = {}
  for k, x in next, v do inner[k] = freeze(x) end
  return setmetatable({}, {
    __index = inner,
    __newindex = function() error("rt.process is read-only", 2) end,
    __len = function() return #inner end,
    __pairs = function() return next, inner, nil end,
    __metatable = "rt.process is read-only",
  })
end
return freeze
"#;

/// `rt.json`: `encode(value)` and `decode(text)` (also given to `moonrt test` files).
/// `encode` writes JSON as JavaScript's `JSON.stringify` does: `4.0` is `4`, `-0.0` is `0`,
/// `1e21` is `1e+21`, NaN and infinities are `null`.
pub(crate) fn json_table(lua: &Lua) -> mlua::Result<Table> {
    let json = lua.create_table()?;
    json.set(
        "encode",
        lua.create_function(|lua, value: Value| {
            let v: serde_json::Value = mlua::LuaSerdeExt::from_value(lua, value)?;
            let mut out = String::new();
            crate::core::js_json::stringify(&v, &mut out);
            Ok(out)
        })?,
    )?;
    json.set(
        "decode",
        lua.create_function(|lua, text: mlua::LuaString| {
            let v: serde_json::Value = serde_json::from_slice(&text.as_bytes())
                .map_err(|e| mlua::Error::runtime(format!("invalid JSON: {e}")))?;
            mlua::LuaSerdeExt::to_value(lua, &v)
        })?,
    )?;
    Ok(json)
}

/// `rt.format_number(n)`: a number as JavaScript's `String(n)` writes it (`4.0` is `"4"`, `0.1 +
/// 0.2` is `"0.30000000000000004"`), for text a C# or JavaScript client parses.
pub(crate) fn format_number(lua: &Lua) -> mlua::Result<Function> {
    lua.create_function(|_, n: Value| match n {
        Value::Integer(i) => Ok(crate::core::js_json::number_text(i as f64)),
        Value::Number(f) => Ok(crate::core::js_json::number_text(f)),
        other => Err(mlua::Error::runtime(format!(
            "rt.format_number: expected a number, got a {}",
            other.type_name()
        ))),
    })
}

/// Creates the `rt` table in a state whose app data holds a [`CallState`].
pub(crate) fn install(lua: &Lua, setup: &Setup<'_>) -> mlua::Result<Table> {
    let session_name = setup.name;
    let rt = lua.create_table()?;
    rt.set("server_id", setup.server_id)?;
    if let Some(process) = setup.process {
        let value = mlua::LuaSerdeExt::to_value(lua, process)?;
        let freeze: Function = lua.load(FREEZE).set_name("=rt.process").eval()?;
        rt.set("process", freeze.call::<Value>(value)?)?;
    }
    let session_id = state(lua)?.session.0;
    let session = lua.create_table()?;
    session.set("id", session_id)?;
    session.set("name", session_name)?;
    let params = match setup.params {
        Some(params) => mlua::LuaSerdeExt::to_value(lua, params)?,
        None => Value::Table(lua.create_table()?),
    };
    session.set("params", params)?;
    state(lua)?.http = setup.http.clone();
    if let Some(settings) = setup.settings {
        session.set("max_players", settings.max_players)?;
        session.set("linger_ms", settings.linger_ms)?;
        session.set("open", true)?;
        session.set("send_interval_ms", settings.send_interval_ms)?;
        state(lua)?.session_limits = Some(settings.limits);
    }
    session.set("data", lua.create_table()?)?;
    session.set("props", "")?;
    // The host reads and writes it from here, never through globals the script may replace.
    lua.set_named_registry_value("moonrt.session", &session)?;
    rt.set("session", session)?;
    let players = lua.create_table()?;
    lua.set_named_registry_value("moonrt.players", players)?;

    rt.set("ALL_PLAYERS", ALL_PLAYERS_GROUP)?;
    // The functions and tables of `rt` are made on first use (an idle session uses few of them,
    // and each costs its state memory); `member` makes them.
    super::members::make_on_first_use(lua, &rt, "rt")?;
    lua.globals().set("rt", rt.clone())?;
    Ok(rt)
}

/// `rt.log[name]`, made when a script first reads it; `nil` for a name `rt.log` does not have.
pub(crate) fn log_member(lua: &Lua, name: &str) -> mlua::Result<Value> {
    let level = match name {
        "debug" => log::Level::Debug,
        "info" => log::Level::Info,
        "warn" => log::Level::Warn,
        "error" => log::Level::Error,
        _ => return Ok(Value::Nil),
    };
    Ok(Value::Function(log_function(lua, level)?))
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

/// `rt[name]` for a function or library table of `rt`, made when a script first reads it;
/// `nil` for a name `rt` does not have.
pub(crate) fn member(lua: &Lua, name: &str) -> mlua::Result<Value> {
    Ok(match name {
        "send" => Value::Function(lua.create_function(
            |lua, (first, op, payload, intent): (Value, Option<i64>, Value, Value)| {
                let (to, op, payload, intent, from) = match &first {
                    Value::Table(opts) if opts.contains_key("opcode")? => (
                        opts.get::<Value>("to")?,
                        opts.get::<i64>("opcode")?,
                        opts.get::<Value>("payload")?,
                        opts.get::<Value>("intent")?,
                        opts.get::<Option<i64>>("from")?.unwrap_or(0),
                    ),
                    _ => (
                        first.clone(),
                        op.ok_or_else(|| mlua::Error::runtime("rt.send needs an opcode"))?,
                        payload,
                        intent,
                        0,
                    ),
                };
                if let Value::String(p) = &payload {
                    ensure_room(lua, p.as_bytes().len() + COMMAND_BYTES, "rt.send")?;
                }
                let command = Command::Send {
                    session: state(lua)?.session,
                    from: PeerId(peer_id(from)?),
                    to: parse_target(&to)?,
                    opcode: opcode(op)?,
                    intent: parse_intent(&intent)?,
                    payload: payload_bytes(&payload)?,
                };
                ensure_room(lua, command_bytes(&command), "rt.send")?;
                state(lua)?.push(command);
                Ok(())
            },
        )?),
        "on_packet" => Value::Function(lua.create_function(
            |lua, (op, handler): (i64, Option<Function>)| {
                let op = opcode(op)?;
                let mut st = state(lua)?;
                match handler {
                    Some(f) => st.packet_handlers.insert(op, f),
                    None => st.packet_handlers.remove(&op),
                };
                Ok(())
            },
        )?),
        "players" => Value::Function(lua.create_function(|lua, ()| {
            let players: Table = lua.named_registry_value("moonrt.players")?;
            let mut list: Vec<(i64, Table)> =
                players.pairs::<i64, Table>().collect::<mlua::Result<_>>()?;
            list.sort_by_key(|(peer, _)| *peer);
            lua.create_sequence_from(list.into_iter().map(|(_, p)| p))
        })?),
        "player" => Value::Function(lua.create_function(|lua, peer: i64| {
            let players: Table = lua.named_registry_value("moonrt.players")?;
            players.get::<Value>(peer)
        })?),
        "kick" => Value::Function(lua.create_function(
            |lua, (peer, reason): (i64, Option<String>)| {
                record(lua, |session| {
                    Ok(Command::Kick {
                        session,
                        peer: PeerId(peer_id(peer)?),
                        reason: reason.unwrap_or_else(|| "kicked".into()),
                    })
                })
            },
        )?),
        "end_session" => Value::Function(lua.create_function(|lua, reason: Option<String>| {
            record(lua, |session| {
                Ok(Command::EndSession {
                    session,
                    code: Code::SessionEnded,
                    reason: reason.unwrap_or_else(|| "the session ended".into()),
                })
            })
        })?),
        "set_player_props" => {
            Value::Function(lua.create_function(|lua, (peer, props): (i64, Value)| {
                let peer = peer_id(peer)?;
                let bytes = payload_bytes(&props)?;
                let players: Table = lua.named_registry_value("moonrt.players")?;
                if let Some(player) = players.get::<Option<Table>>(peer)? {
                    player.raw_set("props", lua.create_string(&bytes)?)?;
                }
                record(lua, |session| {
                    Ok(Command::SetProps {
                        session,
                        peer: PeerId(peer),
                        props: bytes,
                    })
                })
            })?)
        }
        "set_session_props" => Value::Function(lua.create_function(|lua, props: Value| {
            let bytes = payload_bytes(&props)?;
            let session: Table = lua.named_registry_value("moonrt.session")?;
            session.raw_set("props", lua.create_string(&bytes)?)?;
            record(lua, |session| {
                Ok(Command::SetProps {
                    session,
                    peer: PeerId::SERVER,
                    props: bytes,
                })
            })
        })?),
        "group_add" => Value::Function(lua.create_function(|lua, (group, peer): (i64, i64)| {
            record(lua, |session| {
                Ok(Command::GroupAdd {
                    session,
                    group: member_group_id(group)?,
                    peer: PeerId(peer_id(peer)?),
                })
            })
        })?),
        "group_remove" => {
            Value::Function(lua.create_function(|lua, (group, peer): (i64, i64)| {
                record(lua, |session| {
                    Ok(Command::GroupRemove {
                        session,
                        group: member_group_id(group)?,
                        peer: PeerId(peer_id(peer)?),
                    })
                })
            })?)
        }
        "group_members" => Value::Function(lua.create_function(|lua, group: i64| {
            let group = group_id(group)?;
            if group == ALL_PLAYERS_GROUP {
                let players: Table = lua.named_registry_value("moonrt.players")?;
                let mut peers: Vec<u16> = players
                    .pairs::<u16, Value>()
                    .filter_map(|pair| pair.ok().map(|(peer, _)| peer))
                    .collect();
                peers.sort_unstable();
                return lua.create_sequence_from(peers);
            }
            let members = state(lua)?.groups.get(&group).cloned().unwrap_or_default();
            lua.create_sequence_from(members)
        })?),
        "frame_sync" => {
            let frame_sync = lua.create_table()?;
            frame_sync.set(
                "start",
                lua.create_function(|lua, rate: i64| {
                    if !(1..=60).contains(&rate) {
                        return Err(mlua::Error::runtime(
                            "rt.frame_sync.start(rate): 1 to 60 frames per second",
                        ));
                    }
                    record(lua, |session| {
                        Ok(Command::FrameSync {
                            session,
                            on: true,
                            rate: rate as u8,
                        })
                    })
                })?,
            )?;
            frame_sync.set(
                "stop",
                lua.create_function(|lua, ()| {
                    record(lua, |session| {
                        Ok(Command::FrameSync {
                            session,
                            on: false,
                            rate: 0,
                        })
                    })
                })?,
            )?;
            Value::Table(frame_sync)
        }
        "http" => {
            let http = lua.create_table()?;
            http.set(
                "request",
                lua.create_function(|lua, (opts, callback): (Table, Function)| {
                    let request = super::http::Request {
                        method: opts
                            .get::<Option<String>>("method")?
                            .unwrap_or_else(|| "GET".into())
                            .to_ascii_uppercase(),
                        url: opts
                            .get::<Option<String>>("url")?
                            .ok_or_else(|| mlua::Error::runtime("rt.http.request: give a url"))?,
                        headers: match opts.get::<Option<Table>>("headers")? {
                            Some(t) => t
                                .pairs::<String, String>()
                                .collect::<mlua::Result<Vec<_>>>()?,
                            None => Vec::new(),
                        },
                        body: opts
                            .get::<Option<mlua::LuaString>>("body")?
                            .map(|b| b.as_bytes().to_vec())
                            .unwrap_or_default(),
                        timeout: Duration::from_millis(
                            opts.get::<Option<u64>>("timeout_ms")?
                                .unwrap_or(u64::MAX / 2),
                        ),
                    };
                    let mut st = state(lua)?;
                    let Some(pool) = st.http.clone() else {
                        return Err(mlua::Error::runtime(
                            "rt.http works in a session's callbacks only",
                        ));
                    };
                    pool.check(&request)
                        .map_err(|e| mlua::Error::runtime(format!("rt.http.request: {e}")))?;
                    if st.http_pending.len() >= pool.per_session {
                        return Err(mlua::Error::runtime(format!(
                            "rt.http.request: {} requests are in flight for this session already \
                     ([script] http_max_concurrent)",
                            st.http_pending.len()
                        )));
                    }
                    let id = st.next_http;
                    st.next_http += 1;
                    st.http_pending.insert(id, callback);
                    let session = st.session;
                    drop(st);
                    pool.submit(session, id, request);
                    Ok(id)
                })?,
            )?;
            Value::Table(http)
        }
        "send_group_members" => {
            Value::Function(lua.create_function(|lua, (group, to): (i64, Value)| {
                let group = group_id(group)?;
                let to = parse_target(&to)?;
                record(lua, |session| {
                    Ok(Command::SendGroupMembers { session, group, to })
                })
            })?)
        }
        "configure_session" => Value::Function(lua.create_function(|lua, settings: Table| {
            let Some((max, linger)) = state(lua)?.session_limits else {
                return Err(mlua::Error::runtime(
                    "rt.configure_session works in a session's callbacks only",
                ));
            };
            for pair in settings.pairs::<Value, Value>() {
                let (key, _) = pair?;
                let name = match &key {
                    Value::String(s) => s.to_str().map(|s| s.to_owned()).ok(),
                    _ => None,
                };
                match name.as_deref() {
                    Some("max_players" | "linger_ms" | "open" | "send_interval_ms") => {}
                    _ => {
                        return Err(mlua::Error::runtime(format!(
                            "rt.configure_session: {key:?} is not a setting (max_players, \
                             linger_ms, open, send_interval_ms)"
                        )));
                    }
                }
            }
            let max_players: Option<i64> = settings.get("max_players")?;
            let linger_ms: Option<i64> = settings.get("linger_ms")?;
            let send_interval_ms: Option<i64> = settings.get("send_interval_ms")?;
            let most = crate::config::MAX_SEND_INTERVAL_MS as i64;
            if let Some(ms) = send_interval_ms
                && !(0..=most).contains(&ms)
            {
                return Err(mlua::Error::runtime(format!(
                    "rt.configure_session: send_interval_ms {ms} is not within 0 to {most}"
                )));
            }
            let open = match settings.get::<Value>("open")? {
                Value::Nil => None,
                Value::Boolean(b) => Some(b),
                other => {
                    return Err(mlua::Error::runtime(format!(
                        "rt.configure_session: open must be true or false, not a {}",
                        other.type_name()
                    )));
                }
            };
            if let Some(n) = max_players
                && !(1..=max as i64).contains(&n)
            {
                return Err(mlua::Error::runtime(format!(
                    "rt.configure_session: max_players {n} is not within 1 to {max} \
                     (sessions.max_players)"
                )));
            }
            if let Some(ms) = linger_ms
                && !(0..=linger as i64).contains(&ms)
            {
                return Err(mlua::Error::runtime(format!(
                    "rt.configure_session: linger_ms {ms} is not within 0 to {linger} \
                     (sessions.empty_session_linger_ms)"
                )));
            }
            let session: Table = lua.named_registry_value("moonrt.session")?;
            if let Some(n) = max_players {
                session.raw_set("max_players", n)?;
            }
            if let Some(ms) = linger_ms {
                session.raw_set("linger_ms", ms)?;
            }
            if let Some(open) = open {
                session.raw_set("open", open)?;
            }
            if let Some(ms) = send_interval_ms {
                session.raw_set("send_interval_ms", ms)?;
            }
            record(lua, |session| {
                Ok(Command::Configure {
                    session,
                    max_players: max_players.map(|n| n as usize),
                    linger_ms: linger_ms.map(|ms| ms as u64),
                    open,
                    send_interval_ms: send_interval_ms.map(|ms| ms as u64),
                })
            })
        })?),
        "set_timeout" => {
            Value::Function(lua.create_function(|lua, (func, ms): (Function, f64)| {
                let after = millis(ms, "the delay")?;
                ensure_room(lua, TIMER_BYTES, "rt.set_timeout")?;
                Ok(state(lua)?.arm(Some(func), after, None))
            })?)
        }
        "set_interval" => {
            Value::Function(lua.create_function(|lua, (func, ms): (Function, f64)| {
                let every = millis(ms, "the interval")?.max(Duration::from_millis(1));
                ensure_room(lua, TIMER_BYTES, "rt.set_interval")?;
                Ok(state(lua)?.arm(Some(func), every, Some(every)))
            })?)
        }
        "clear_timeout" | "clear_interval" => {
            Value::Function(lua.create_function(|lua, id: Option<u64>| {
                if let Some(id) = id {
                    state(lua)?.timers.remove(&id);
                }
                Ok(())
            })?)
        }
        "set_tick_rate" => Value::Function(lua.create_function(|lua, hz: f64| {
            ensure_room(lua, TIMER_BYTES, "rt.set_tick_rate")?;
            let mut st = state(lua)?;
            if let Some(old) = st.tick.take() {
                st.timers.remove(&old);
            }
            if hz > 0.0 && hz.is_finite() {
                let every = Duration::from_secs_f64(1.0 / hz.min(1000.0));
                st.last_tick = Some(st.now);
                let id = st.arm(None, every, Some(every));
                st.tick = Some(id);
            } else if hz != 0.0 {
                return Err(mlua::Error::runtime(
                    "the tick rate must be a number of Hz >= 0",
                ));
            }
            Ok(())
        })?),
        "time" => {
            Value::Function(lua.create_function(|lua, ()| Ok(state(lua)?.wall_us as f64 / 1000.0))?)
        }

        "log" => {
            let log = lua.create_table()?;
            super::members::make_on_first_use(lua, &log, "rt.log")?;
            Value::Table(log)
        }

        "json" => Value::Table(json_table(lua)?),
        "format_number" => Value::Function(format_number(lua)?),
        "data" => Value::Table(super::data::table(lua)?),
        // Test-only: a stall no script limit can see (the watchdog's test). Debug builds only
        // (what `cargo test` runs): a release binary never has it, whatever its environment.
        #[cfg(debug_assertions)]
        "test_stall_ms" if std::env::var("MOONRT_TEST_HOOKS").as_deref() == Ok("1") => {
            Value::Function(lua.create_function(|_, ms: u64| {
                std::thread::sleep(Duration::from_millis(ms));
                Ok(())
            })?)
        }
        _ => Value::Nil,
    })
}
