//! `moonrt test`: Lua test files run against a session script with simulated players and a
//! virtual clock, no sockets. Each simulated session is the real sans-IO core with the real Lua
//! host; players are connections fed encoded frames, and what the core queues for them is
//! decoded into events. Time only moves when a test calls `advance`, through every timer due
//! on the way, so a five-minute timeout is tested in microseconds.

use super::host::LuaHooks;
use super::source::ScriptSource;
use crate::config::Config;
use crate::core::auth::SessionSettings;
use crate::core::codec::{
    self, ClientMsg, Data, Hello, Intent, JoinMode, PeerList, ServerMsg, Target,
};
use crate::core::{ConnId, Event, NewSession, Server, SessionId, WallClock};
use mlua::{Function, Lua, LuaSerdeExt, Table, UserData, UserDataMethods, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// One simulated server running one script.
struct Sim {
    server: Server<LuaHooks>,
    now: Instant,
    /// Frames queued for each player, not yet read by the test.
    inbox: HashMap<ConnId, Vec<Vec<u8>>>,
    closed: HashMap<ConnId, bool>,
    next_port: u16,
    session: Option<SessionId>,
}

impl Sim {
    /// Moves everything the core queued into the players' inboxes.
    fn pump(&mut self) {
        let mut dirty = Vec::new();
        loop {
            self.server.take_dirty(&mut dirty);
            let mut any = false;
            for &id in &dirty {
                let pending = self.server.tcp_pending(id).to_vec();
                if !pending.is_empty() {
                    any = true;
                    let mut rest = &pending[..];
                    while let Ok(Some((body, used))) = codec::split_frame(rest, usize::MAX) {
                        self.inbox.entry(id).or_default().push(body.to_vec());
                        rest = &rest[used..];
                    }
                    self.server.tcp_written(id, pending.len());
                }
                if self.server.udp_pending(id).is_some() {
                    self.server.udp_sent(id, usize::MAX, true);
                }
            }
            while let Some(Event::Close(id)) = self.server.poll_event() {
                self.closed.insert(id, true);
                self.server.handle_closed(id);
                any = true;
            }
            if !any {
                return;
            }
        }
    }

    fn feed(&mut self, id: ConnId, msg: ClientMsg<'_>) {
        let mut frame = Vec::new();
        msg.encode(&mut frame);
        self.server.handle_tcp_bytes(self.now, id, &frame);
        self.pump();
    }

    /// Moves the virtual clock forward by `by`, stopping at every deadline on the way.
    fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        // A pass fires only what was due before it (a zero-delay chain runs once per pass, as
        // once per loop turn in the server); this many passes at most, so such a chain cannot
        // hold a test forever.
        let mut passes = 0u32;
        while let Some(next) = self.server.next_timeout() {
            if next > target || passes == 100_000 {
                break;
            }
            passes += 1;
            self.now = self.now.max(next);
            self.server.handle_timeout(self.now);
            self.pump();
        }
        self.now = target;
        self.server.handle_timeout(self.now);
        self.pump();
    }
}

/// A simulated player, as a test holds it.
#[derive(Clone)]
struct Player {
    sim: Rc<RefCell<Sim>>,
    id: ConnId,
    peer: u16,
}

/// The Lua value for one server frame.
fn event_table(lua: &Lua, body: &[u8]) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    let msg = match ServerMsg::decode(body) {
        Ok(msg) => msg,
        Err(_) => return Ok(Value::Nil),
    };
    match msg {
        ServerMsg::Delivery {
            intent,
            opcode,
            sender,
            seq,
            payload,
        } => {
            t.set("type", "delivery")?;
            t.set("opcode", opcode)?;
            t.set("sender", sender)?;
            t.set("seq", seq)?;
            t.set("intent", Intent::name(intent))?;
            t.set("payload", lua.create_string(payload)?)?;
        }
        ServerMsg::PlayerJoined(p) => {
            t.set("type", "joined")?;
            t.set("peer", p.peer)?;
            t.set("id", p.player_id)?;
            t.set("name", p.name)?;
        }
        ServerMsg::PlayerLeft { peer, reason } => {
            t.set("type", "left")?;
            t.set("peer", peer)?;
            t.set("reason", reason)?;
        }
        ServerMsg::PlayerAway { peer } => {
            t.set("type", "away")?;
            t.set("peer", peer)?;
        }
        ServerMsg::PlayerBack { peer } => {
            t.set("type", "back")?;
            t.set("peer", peer)?;
        }
        ServerMsg::GroupMembers { group, members } => {
            t.set("type", "members")?;
            t.set("group", group)?;
            t.set("members", lua.create_sequence_from(members.iter())?)?;
        }
        ServerMsg::PlayerProps { peer, props } => {
            t.set("type", "player_props")?;
            t.set("peer", peer)?;
            t.set("props", lua.create_string(props)?)?;
        }
        ServerMsg::SessionProps { by, props } => {
            t.set("type", "session_props")?;
            t.set("by", by)?;
            t.set("props", lua.create_string(props)?)?;
        }
        ServerMsg::Error {
            code,
            message,
            detail,
        } => {
            t.set("type", "error")?;
            t.set("code", code)?;
            t.set("message", message)?;
            t.set("detail", detail)?;
        }
        ServerMsg::Close { code, message } | ServerMsg::Reject { code, message } => {
            t.set("type", "closed")?;
            t.set("code", code)?;
            t.set("message", message)?;
        }
        ServerMsg::FrameSyncState { on, rate, seed, .. } => {
            t.set("type", "frame_sync")?;
            t.set("on", on)?;
            t.set("rate", rate)?;
            t.set("seed", seed)?;
        }
        ServerMsg::Frame {
            number,
            seed,
            inputs,
        } => {
            t.set("type", "frame")?;
            t.set("number", number)?;
            t.set("seed", seed)?;
            let list = lua.create_table()?;
            for (peer, bytes) in inputs.iter() {
                let input = lua.create_table()?;
                input.set("peer", peer)?;
                input.set("payload", lua.create_string(bytes)?)?;
                list.push(input)?;
            }
            t.set("inputs", list)?;
        }
        ServerMsg::Welcome(_) | ServerMsg::Pong { .. } | ServerMsg::UdpBound => {
            return Ok(Value::Nil);
        }
    }
    Ok(Value::Table(t))
}

fn parse_intent(value: Option<String>) -> mlua::Result<Intent> {
    value.map_or(Ok(Intent::Reliable), |name| {
        name.parse().map_err(mlua::Error::runtime)
    })
}

impl UserData for Player {
    fn add_fields<F: mlua::UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("peer", |_, p| Ok(p.peer));
        fields.add_field_method_get("closed", |_, p| {
            Ok(p.sim.borrow().closed.get(&p.id).copied().unwrap_or(false))
        });
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // player:send(to, opcode, payload, intent): to is "all", "server", a peer, a list of
        // peers, or {group = g}.
        methods.add_method(
            "send",
            |_, p, (to, opcode, payload, intent): (Value, u32, Option<mlua::LuaString>, Option<String>)| {
                let payload = payload.map(|s| s.as_bytes().to_vec()).unwrap_or_default();
                let wire;
                let target = match &to {
                    Value::String(s) if s.to_str()? == "all" => Target::AllOthers,
                    Value::String(s) if s.to_str()? == "server" => Target::Server,
                    Value::Integer(peer) => {
                        wire = codec::encode_peer_list(&[*peer as u16]);
                        Target::Peers(PeerList::from_wire(&wire))
                    }
                    Value::Table(t) => match t.get::<Option<u16>>("group")? {
                        Some(g) => Target::Group(g),
                        None => {
                            let peers: Vec<u16> = t.sequence_values().collect::<mlua::Result<_>>()?;
                            wire = codec::encode_peer_list(&peers);
                            Target::Peers(PeerList::from_wire(&wire))
                        }
                    },
                    other => {
                        return Err(mlua::Error::runtime(format!(
                            "send to {other:?}: \"all\", \"server\", a peer, a list or {{group = g}}"
                        )));
                    }
                };
                let data = Data {
                    intent: parse_intent(intent)?,
                    opcode,
                    target,
                    payload: &payload,
                };
                p.sim.borrow_mut().feed(p.id, ClientMsg::Data(data));
                Ok(())
            },
        );
        methods.add_method("join_group", |_, p, g: u16| {
            p.sim.borrow_mut().feed(p.id, ClientMsg::GroupJoin(g));
            Ok(())
        });
        methods.add_method("leave_group", |_, p, g: u16| {
            p.sim.borrow_mut().feed(p.id, ClientMsg::GroupLeave(g));
            Ok(())
        });
        methods.add_method("set_props", |_, p, props: mlua::LuaString| {
            let bytes = props.as_bytes().to_vec();
            p.sim
                .borrow_mut()
                .feed(p.id, ClientMsg::SetPlayerProps(&bytes));
            Ok(())
        });
        methods.add_method("frame_input", |_, p, input: mlua::LuaString| {
            let bytes = input.as_bytes().to_vec();
            p.sim.borrow_mut().feed(p.id, ClientMsg::FrameInput(&bytes));
            Ok(())
        });
        methods.add_method("frame_sync", |_, p, (on, rate): (bool, Option<u8>)| {
            p.sim.borrow_mut().feed(
                p.id,
                ClientMsg::FrameSync {
                    on,
                    rate: rate.unwrap_or(15),
                },
            );
            Ok(())
        });
        methods.add_method("leave", |_, p, ()| {
            p.sim.borrow_mut().feed(p.id, ClientMsg::Leave);
            Ok(())
        });
        // The connection drops without LEAVE.
        methods.add_method("drop", |_, p, ()| {
            let mut sim = p.sim.borrow_mut();
            let now = sim.now;
            sim.server.handle_disconnect(now, p.id);
            sim.pump();
            Ok(())
        });
        // Everything received since the last call, oldest first (presence, deliveries, ...).
        methods.add_method("received", |lua, p, ()| {
            let frames = p.sim.borrow_mut().inbox.remove(&p.id).unwrap_or_default();
            let out = lua.create_table()?;
            for body in frames {
                if let Value::Table(t) = event_table(lua, &body)? {
                    out.push(t)?;
                }
            }
            Ok(out)
        });
    }
}

/// A simulated session: `session{script = path}` in a test.
#[derive(Clone)]
struct SimHandle(Rc<RefCell<Sim>>);

impl UserData for SimHandle {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // sim:join(name, {id = ..., room = ..., payload = ...}): a player, or nil, code, message.
        methods.add_method("join", |lua, s, (name, opts): (String, Option<Table>)| {
            let room: String = opts
                .as_ref()
                .and_then(|o| o.get::<Option<String>>("room").ok().flatten())
                .unwrap_or_else(|| "test".into());
            let player_id: String = opts
                .as_ref()
                .and_then(|o| o.get::<Option<String>>("id").ok().flatten())
                .unwrap_or_default();
            let payload: Vec<u8> = opts
                .as_ref()
                .and_then(|o| o.get::<Option<mlua::LuaString>>("payload").ok().flatten())
                .map(|p| p.as_bytes().to_vec())
                .unwrap_or_default();
            let mut sim = s.0.borrow_mut();
            sim.next_port = sim.next_port.wrapping_add(1).max(1024);
            let addr = SocketAddr::from(([127, 0, 0, 1], sim.next_port));
            let now = sim.now;
            let id = sim.server.handle_accept(now, addr);
            sim.feed(
                id,
                ClientMsg::Hello(Hello {
                    version: codec::PROTOCOL_VERSION,
                    mode: JoinMode::JoinOrCreate(&room),
                    token: "",
                    player_id: &player_id,
                    player_name: &name,
                    payload: &payload,
                    stray_field: None,
                }),
            );
            let first = sim
                .inbox
                .get_mut(&id)
                .and_then(|f| (!f.is_empty()).then(|| f.remove(0)));
            match first.as_deref().map(ServerMsg::decode) {
                Some(Ok(ServerMsg::Welcome(w))) => {
                    sim.session = Some(SessionId(w.session_id));
                    let player = Player {
                        sim: s.0.clone(),
                        id,
                        peer: w.peer,
                    };
                    drop(sim);
                    lua.pack_multi(player)
                }
                Some(Ok(ServerMsg::Reject { code, message })) => {
                    lua.pack_multi((Value::Nil, code, message.to_owned()))
                }
                _ => Err(mlua::Error::runtime("the server sent no WELCOME or REJECT")),
            }
        });
        // sim:create{name = "test", params = {...}, max_players = n, linger_ms = ms}: the session
        // created before any player joins (as the admin API's POST /api/sessions does);
        // on_session_start runs now. Returns its id, or nil, code, message.
        methods.add_method("create", |lua, s, opts: Option<Table>| {
            let opts = match opts {
                Some(t) => t,
                None => lua.create_table()?,
            };
            let params: Option<serde_json::Value> = match opts.get::<Value>("params")? {
                Value::Nil => None,
                v => Some(lua.from_value(v)?),
            };
            let new = NewSession {
                name: opts
                    .get::<Option<String>>("name")?
                    .unwrap_or_else(|| "test".into()),
                params,
                settings: SessionSettings {
                    max_players: opts.get("max_players")?,
                    linger_ms: opts.get("linger_ms")?,
                    send_interval_ms: opts.get("send_interval_ms")?,
                },
                listed: opts.get::<Option<bool>>("listed")?.unwrap_or(false),
            };
            let mut sim = s.0.borrow_mut();
            let now = sim.now;
            let created = sim.server.create_session_ahead(now, &new);
            sim.pump();
            match created {
                Ok(sid) => {
                    sim.session = Some(sid);
                    lua.pack_multi(sid.0)
                }
                Err((code, why)) => lua.pack_multi((Value::Nil, code.as_u16(), why)),
            }
        });
        methods.add_method("advance", |_, s, ms: f64| {
            if !(ms.is_finite() && ms >= 0.0) {
                return Err(mlua::Error::runtime("advance(ms): ms >= 0"));
            }
            s.0.borrow_mut()
                .advance(Duration::from_secs_f64(ms / 1000.0));
            Ok(())
        });
        // The session's rt.session.data, copied (plain data only).
        methods.add_method("data", |lua, s, ()| {
            let sim = s.0.borrow();
            let Some(sid) = sim.session else {
                return Ok(Value::Nil);
            };
            match sim.server_hooks().session_data(sid) {
                Some(json) => lua.to_value(&json),
                None => Ok(Value::Nil),
            }
        });
        // Whether the session has ended (or never started).
        methods.add_method("ended", |_, s, ()| {
            let sim = s.0.borrow();
            Ok(sim.session.is_none_or(|sid| !sim.server.has_session(sid)))
        });
    }
}

impl Sim {
    fn server_hooks(&self) -> &LuaHooks {
        self.server.hooks()
    }
}

/// One failed test: where and why.
pub struct Failure {
    /// `file: test name`.
    pub test: String,
    /// The error, with file:line and a traceback.
    pub message: String,
}

/// What a run found.
pub struct Report {
    /// Tests that ran.
    pub ran: usize,
    /// Those that failed.
    pub failures: Vec<Failure>,
}

/// Runs every `*_test.lua` file under `paths` (files or folders).
pub fn run(
    paths: &[PathBuf],
    config: &Config,
    out: &mut dyn std::io::Write,
) -> Result<Report, String> {
    let mut files = Vec::new();
    for path in paths {
        collect(path, &mut files)?;
    }
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "no *_test.lua files in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut report = Report {
        ran: 0,
        failures: Vec::new(),
    };
    for file in files {
        run_file(&file, config, out, &mut report)?;
    }
    Ok(report)
}

fn collect(path: &Path, files: &mut Vec<PathBuf>) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                collect(&p, files)?;
            } else if p.to_string_lossy().ends_with("_test.lua") {
                files.push(p);
            }
        }
    } else {
        files.push(path.to_owned());
    }
    Ok(())
}

fn run_file(
    file: &Path,
    config: &Config,
    out: &mut dyn std::io::Write,
    report: &mut Report,
) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let lua = Lua::new();
    let tests: Rc<RefCell<Vec<(String, Function)>>> = Rc::default();
    install(&lua, config, tests.clone()).map_err(|e| e.to_string())?;
    let name = file.display().to_string();
    lua.load(&text)
        .set_name(format!("@{name}"))
        .exec()
        .map_err(|e| format!("{name}: {e}"))?;
    let _ = writeln!(out, "{name}");
    let traceback: Function = lua
        .load("return function(e) return tostring(e) end")
        .eval()
        .map_err(|e| e.to_string())?;
    let xpcall: Function = lua.globals().get("xpcall").map_err(|e| e.to_string())?;
    for (test, f) in tests.borrow().iter() {
        report.ran += 1;
        let result: mlua::Result<(bool, Value)> = xpcall.call((f.clone(), traceback.clone()));
        match result {
            Ok((true, _)) => {
                let _ = writeln!(out, "  ok   {test}");
            }
            Ok((false, err)) => {
                let message = match err {
                    Value::String(s) => s.to_string_lossy(),
                    other => format!("{other:?}"),
                };
                let _ = writeln!(out, "  FAIL {test}\n{}", indent(&message));
                report.failures.push(Failure {
                    test: format!("{name}: {test}"),
                    message,
                });
            }
            Err(e) => {
                let _ = writeln!(out, "  FAIL {test}\n{}", indent(&e.to_string()));
                report.failures.push(Failure {
                    test: format!("{name}: {test}"),
                    message: e.to_string(),
                });
            }
        }
    }
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("       {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The test file's globals: `test`, `session`, `expect`, `expect_eq`, and `rt.data`/`rt.json`
/// to build and read payloads.
fn install(
    lua: &Lua,
    config: &Config,
    tests: Rc<RefCell<Vec<(String, Function)>>>,
) -> mlua::Result<()> {
    let g = lua.globals();
    g.set(
        "test",
        lua.create_function(move |_, (name, f): (String, Function)| {
            tests.borrow_mut().push((name, f));
            Ok(())
        })?,
    )?;
    let config = config.clone();
    g.set(
        "session",
        lua.create_function(move |_, opts: Table| {
            let script: String = opts.get("script")?;
            let mut config = config.clone();
            config.script.path = script.clone();
            config.script.watch = false;
            if let Some(ms) = opts.get::<Option<u64>>("linger_ms")? {
                config.sessions.empty_session_linger_ms = ms;
            }
            if let Some(n) = opts.get::<Option<usize>>("max_players")? {
                config.sessions.max_players = n;
            }
            if let Some(ms) = opts.get::<Option<u64>>("reconnect_grace_ms")? {
                config.sessions.reconnect_grace_ms = ms;
            }
            let source = ScriptSource::read(Path::new(&script)).map_err(mlua::Error::runtime)?;
            let hooks = LuaHooks::new(source, &config).map_err(mlua::Error::runtime)?;
            let at = Instant::now();
            let clock = WallClock {
                at,
                unix_us: 1_700_000_000_000_000,
            };
            // Seeded: a script test sees the same session ids and secrets every run.
            let server = Server::new(config, 0, hooks, clock, crate::core::Entropy::seeded(1));
            Ok(SimHandle(Rc::new(RefCell::new(Sim {
                server,
                now: at,
                inbox: HashMap::new(),
                closed: HashMap::new(),
                next_port: 40000,
                session: None,
            }))))
        })?,
    )?;
    let helpers: Function = lua.load(HELPERS).set_name("=moonrt test helpers").eval()?;
    helpers.call::<()>(())?;
    let rt = lua.create_table()?;
    rt.set("data", super::data::table(lua)?)?;
    rt.set("json", super::api::json_table(lua)?)?;
    rt.set("format_number", super::api::format_number(lua)?)?;
    g.set("rt", rt)?;
    Ok(())
}

/// `expect`, `expect_eq` (deep, with the values shown) and `deliveries(events, opcode)`.
const HELPERS: &str = r#"
return function()
  local function show(v)
    if type(v) == "string" then return string.format("%q", v) end
    if type(v) ~= "table" then return tostring(v) end
    local parts = {}
    for k, x in pairs(v) do parts[#parts + 1] = tostring(k) .. "=" .. show(x) end
    table.sort(parts)
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  local function same(a, b)
    if type(a) ~= "table" or type(b) ~= "table" then return a == b end
    for k, v in pairs(a) do if not same(v, b[k]) then return false end end
    for k in pairs(b) do if a[k] == nil then return false end end
    return true
  end
  function expect(ok, message)
    if not ok then error(message or "expectation failed", 2) end
  end
  function expect_eq(actual, expected, message)
    if not same(actual, expected) then
      error((message and message .. ": " or "") .. "expected " .. show(expected) .. ", got " .. show(actual), 2)
    end
  end
  function deliveries(events, opcode)
    local out = {}
    for _, e in ipairs(events) do
      if e.type == "delivery" and (opcode == nil or e.opcode == opcode) then out[#out + 1] = e end
    end
    return out
  end
end
"#;
