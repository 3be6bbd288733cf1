//! The `rt` table scripts call. Every function either reads state kept in the Lua state itself
//! or records a [`Command`] in the state's [`CallState`]; the host hands those to the core after
//! the callback returns. Nothing here reaches into the core while Lua runs.
//!
//! `rt`'s functions and tables are made on first use (`script::members`), from [`MEMBERS`]: one
//! registry of names, filled by one file per concern, the way mini-redis keeps one command per
//! file: `sending.rs`, `players.rs` (players and groups), `settings.rs` (the session and its
//! settings), `timers.rs`, `json.rs` (JSON, numbers, RTData), `http.rs` (backend calls) and
//! `log.rs`. This file holds what they share: the per-state [`CallState`], the memory
//! accounting, the argument parsers, and `rt`'s data fields (`install`).

mod http;
mod json;
pub(super) mod log;
mod players;
mod sending;
mod settings;
mod timers;

pub(crate) use json::{format_number, json_table};
pub(crate) use log::{LogLimit, log_function, log_member};

use super::session::Setup;
use crate::core::codec::Intent;
use crate::core::{ALL_PLAYERS_GROUP, Command, SendTarget, SessionId};
use mlua::{Function, Lua, Table, Value};
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

/// A member of `rt`: its name, and what makes it when a script first reads it.
type Member = (&'static str, fn(&Lua) -> mlua::Result<Value>);

/// Every member of `rt`, by concern.
const MEMBERS: &[&[Member]] = &[
    sending::MEMBERS,
    players::MEMBERS,
    settings::MEMBERS,
    timers::MEMBERS,
    json::MEMBERS,
    http::MEMBERS,
    log::MEMBERS,
    TEST_MEMBERS,
];

/// Members for moonrt's own tests (debug builds with `MOONRT_TEST_HOOKS=1` only).
#[cfg(debug_assertions)]
const TEST_MEMBERS: &[Member] = &[("test_stall_ms", test_stall_ms)];
#[cfg(not(debug_assertions))]
const TEST_MEMBERS: &[Member] = &[];

/// The names of `rt`'s functions and tables, from the registry (the docs' tests read it).
pub(crate) fn member_names() -> impl Iterator<Item = &'static str> {
    MEMBERS.iter().flat_map(|m| m.iter()).map(|(name, _)| *name)
}

/// `rt[name]` for a function or library table of `rt`, made when a script first reads it;
/// `nil` for a name `rt` does not have.
pub(crate) fn member(lua: &Lua, name: &str) -> mlua::Result<Value> {
    match MEMBERS
        .iter()
        .flat_map(|m| m.iter())
        .find(|(n, _)| *n == name)
    {
        Some((_, make)) => make(lua),
        None => Ok(Value::Nil),
    }
}

/// Test-only: a stall no script limit can see (the watchdog's test). Debug builds only
/// (what `cargo test` runs): a release binary never has it, whatever its environment.
#[cfg(debug_assertions)]
fn test_stall_ms(lua: &Lua) -> mlua::Result<Value> {
    if std::env::var("MOONRT_TEST_HOOKS").as_deref() != Ok("1") {
        return Ok(Value::Nil);
    }
    Ok(Value::Function(lua.create_function(|_, ms: u64| {
        std::thread::sleep(Duration::from_millis(ms));
        Ok(())
    })?))
}
