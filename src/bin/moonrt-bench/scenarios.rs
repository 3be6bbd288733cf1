//! The scenarios of BENCHMARKS.md, each against moonrt and the floor in one run.

use crate::floor;
use crate::load::{self, Live, Outcome, Spec, Wire};
use crate::procstat::{self, Process, TempDir};
use crate::report::{self, bytes, micros, ratio};
use hdrhistogram::Histogram;
use mio::{Events, Poll, Token};
use moonrt::client::{Client, Connect, Event};
use moonrt::core::codec::{self, ClientMsg, Hello, JoinMode, PROTOCOL_VERSION, ServerMsg};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// p99 latency beyond which a ramp step fails.
const MAX_P99_US: u64 = 10_000;
/// The send interval of the coalesced relay scenario: the 20 Hz tick of its load.
const COALESCE_MS: u64 = 50;
/// Loss beyond which a ramp step fails.
const MAX_LOSS: f64 = 0.01;
const PLAYERS_PER_SESSION: usize = 8;

/// How big each scenario runs.
pub struct Scale {
    name: &'static str,
    ramp: Vec<usize>,
    warmup_s: f64,
    measure_s: f64,
    idle_sessions: usize,
    idle_per_session: usize,
    timer_sessions: usize,
    timer_s: f64,
    reload_edits: usize,
    reload_players: usize,
}

impl Scale {
    pub fn full() -> Scale {
        Scale {
            name: "full",
            ramp: vec![64, 256, 512, 1024, 1536, 1792, 2048, 2560, 3072, 4096],
            warmup_s: 1.0,
            measure_s: 3.0,
            idle_sessions: 1250,
            idle_per_session: 8,
            timer_sessions: 1000,
            timer_s: 5.0,
            reload_edits: 20,
            reload_players: 256,
        }
    }

    /// Seconds, a handful of players: proves every scenario still runs.
    pub fn smoke() -> Scale {
        Scale {
            name: "smoke",
            ramp: vec![8],
            warmup_s: 0.2,
            measure_s: 0.5,
            idle_sessions: 2,
            idle_per_session: 4,
            timer_sessions: 4,
            timer_s: 0.6,
            reload_edits: 2,
            reload_players: 8,
        }
    }
}

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq)]
enum System {
    /// moonrt, with a Lua `on_packet` or not, sending every turn (0) or every `coalesce_ms`.
    Moonrt {
        lua: bool,
        coalesce_ms: u64,
    },
    Floor {
        batched: bool,
    },
    /// moonrt's native frames over WebSocket, every turn (0) or every `coalesce_ms`.
    MoonrtWs {
        coalesce_ms: u64,
    },
    /// moonrt serving the npm sessionserver JSON protocol.
    MoonrtSessionServer,
    /// The npm `sessionserver` package itself, on node.
    NpmSessionServer,
    /// Colyseus 0.16 on node, a raw-bytes broadcast room.
    Colyseus,
}

impl System {
    fn label(self) -> &'static str {
        match self {
            System::Moonrt {
                lua: false,
                coalesce_ms: 0,
            } => "moonrt",
            System::Moonrt {
                lua: true,
                coalesce_ms: 0,
            } => "moonrt + Lua on_packet",
            System::Moonrt {
                lua: false,
                coalesce_ms: COALESCE_MS,
            } => "moonrt (coalesced, 50 ms)",
            System::Moonrt { .. } => "moonrt (other settings)",
            System::Floor { batched: false } => "floor (naive)",
            System::Floor { batched: true } => "floor (batched)",
            System::MoonrtWs { coalesce_ms: 0 } => "moonrt WebSocket",
            System::MoonrtWs { .. } => "moonrt WebSocket (coalesced, 50 ms)",
            System::MoonrtSessionServer => "moonrt (sessionserver JSON)",
            System::NpmSessionServer => "npm sessionserver 0.2.5",
            System::Colyseus => "Colyseus 0.16",
        }
    }

    /// The interval coalescing may hold a message, on top of the latency rule.
    fn hold_ms(self) -> u64 {
        match self {
            System::Moonrt { coalesce_ms, .. } | System::MoonrtWs { coalesce_ms } => coalesce_ms,
            _ => 0,
        }
    }
}

/// One ramp step's result.
#[derive(Debug, Clone, Serialize)]
struct Step {
    system: &'static str,
    spec: Spec,
    outcome: Outcome,
    held: bool,
}

/// Options of `moonrt-bench run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// moonrt, floor-naive, floor-batched, moonrt-ws, moonrt-sessionserver, npm-sessionserver
    /// or colyseus (the last four over WebSocket).
    #[arg(long, default_value = "moonrt")]
    target: String,
    /// A server already running (moonrt or a reflector); default: start one.
    #[arg(long)]
    addr: Option<SocketAddr>,
    #[arg(long, default_value_t = 16)]
    sessions: usize,
    #[arg(long, default_value_t = 8)]
    players: usize,
    /// Messages per second per player.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Payload bytes (at least 16: the measurement header).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// reliable, unreliable or sequenced.
    #[arg(long, default_value = "unreliable", value_parser = intent_name)]
    intent: String,
    /// Share of messages to one other player instead of all others.
    #[arg(long, default_value_t = 0.0)]
    peer_share: f64,
    /// Measured seconds (after one second of warm-up).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Lua script for a started moonrt (default: none, a plain relay).
    #[arg(long)]
    script: Option<PathBuf>,
    /// Generator threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// The benchmark driver: where the server binary is and where results go.
pub struct Bench {
    server_bin: PathBuf,
    out: PathBuf,
    tmp: TempDir,
    runs: AtomicU64,
}

impl Bench {
    pub fn new(server_bin: PathBuf, out: PathBuf) -> Bench {
        Bench {
            server_bin,
            out,
            tmp: TempDir::new("run"),
            runs: AtomicU64::new(0),
        }
    }

    /// The moonrt binary under test.
    pub(crate) fn server_bin(&self) -> &std::path::Path {
        &self.server_bin
    }

    /// Scratch space for configs and scripts.
    pub(crate) fn tmp_dir(&self) -> &std::path::Path {
        &self.tmp.0
    }

    /// Where JSON results go.
    pub(crate) fn out_dir(&self) -> &std::path::Path {
        &self.out
    }

    /// A config for `moonrt` on `port`; `[script]` is its last section.
    pub(crate) fn config(&self, port: u16, script: &str, watch: bool) -> String {
        format!(
            r#"[server]
listen = "127.0.0.1:{port}"
ws_listen = ""
max_connections = 19000
max_sessions = 5000
handshake_timeout_ms = 30000
idle_timeout_ms = 600000
[limits]
max_messages_per_sec = 100000
[sessions]
max_players = 16
empty_session_linger_ms = 0
[script]
path = {script:?}
watch = {watch}
"#
        )
    }

    fn write_script(&self, name: &str, text: &str) -> String {
        let path = self.tmp.0.join(name);
        std::fs::write(&path, text).expect("temp dir is writable");
        path.to_string_lossy().into_owned()
    }

    /// Starts a system on a free port.
    fn start(&self, system: System) -> (Process, Wire) {
        self.try_start(system)
            .unwrap_or_else(|e| panic!("{}: {e}", system.label()))
    }

    /// Starts a system on a free port, or says why it cannot run here.
    fn try_start(&self, system: System) -> Result<(Process, Wire), String> {
        let port = procstat::free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        Ok(match system {
            System::MoonrtWs { coalesce_ms } => {
                let ws_port = procstat::free_port();
                let config = self
                    .config(port, "", false)
                    .replace(
                        "ws_listen = \"\"",
                        &format!("ws_listen = \"127.0.0.1:{ws_port}\""),
                    )
                    .replace(
                        "[sessions]\n",
                        &format!("[sessions]\nsend_interval_ms = {coalesce_ms}\n"),
                    );
                let p = procstat::spawn_server(&self.server_bin, &self.tmp.0, &config, port);
                (p, Wire::MoonrtWs(([127, 0, 0, 1], ws_port).into()))
            }
            System::MoonrtSessionServer => {
                let ws_port = procstat::free_port();
                let config = self.config(port, "", false).replace(
                    "ws_listen = \"\"",
                    &format!("ws_listen = \"127.0.0.1:{ws_port}\""),
                );
                let p = procstat::spawn_server(&self.server_bin, &self.tmp.0, &config, port);
                (p, Wire::SessionServer(([127, 0, 0, 1], ws_port).into()))
            }
            System::Colyseus => {
                let dir = self.tmp.0.join("colyseus");
                procstat::install_colyseus(&dir)
                    .map_err(|e| format!("could not install Colyseus: {e}"))?;
                (procstat::spawn_colyseus(&dir, port), Wire::Colyseus(addr))
            }
            System::NpmSessionServer => {
                let dir = self.tmp.0.join("sessionserver");
                let module = procstat::install_sessionserver(&dir)
                    .map_err(|e| format!("could not install the npm package: {e}"))?;
                let p = procstat::spawn_sessionserver(&dir, &module, port);
                (p, Wire::SessionServer(addr))
            }
            _ => return Ok(self.start_native(system, port, addr)),
        })
    }

    fn start_native(&self, system: System, port: u16, addr: SocketAddr) -> (Process, Wire) {
        match system {
            System::Moonrt { lua, coalesce_ms } => {
                let script = if lua {
                    let dir = self.tmp.0.join("intercept");
                    std::fs::create_dir_all(&dir).expect("temp dir is writable");
                    let path = dir.join("main.lua");
                    std::fs::write(&path, LUA_INTERCEPT).expect("temp dir is writable");
                    path.to_string_lossy().into_owned()
                } else {
                    String::new()
                };
                let config = self.config(port, &script, false).replace(
                    "[sessions]\n",
                    &format!("[sessions]\nsend_interval_ms = {coalesce_ms}\n"),
                );
                let p = procstat::spawn_server(&self.server_bin, &self.tmp.0, &config, port);
                (p, Wire::Moonrt(addr))
            }
            System::Floor { batched } => {
                (procstat::spawn_reflector(port, batched), Wire::Floor(addr))
            }
            other => unreachable!("{} is started by try_start", other.label()),
        }
    }

    /// One load run: connect, load, measure server CPU and peak memory, disconnect.
    fn measure(&self, process: &Process, wire: Wire, spec: &Spec, label: &str) -> Outcome {
        let run = format!("run{}", self.runs.fetch_add(1, Ordering::Relaxed));
        let (players, failed) = load::connect_players(wire, spec, &run);
        let live = Arc::new(Live::default());
        let done = Arc::new(AtomicBool::new(false));
        let progress = load::progress(
            format!("{label}, {} players", spec.players()),
            live.clone(),
            done.clone(),
        );
        let pid = process.pid();
        let peak = Arc::new(AtomicU64::new(0));
        let sampler = {
            let (peak, done) = (peak.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    peak.fetch_max(procstat::rss_bytes(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(250));
                }
            })
        };
        let cpu_before = process.cpu_secs();
        let mut outcome = load::run(players, spec, live.clone());
        let cpu = process.cpu_secs() - cpu_before;
        done.store(true, Ordering::Relaxed);
        let _ = progress.join();
        let _ = sampler.join();
        let all_deliveries = live.delivered.load(Ordering::Relaxed).max(1);
        outcome.server_cpu_s = cpu;
        outcome.server_us_per_delivery = cpu * 1e6 / all_deliveries as f64;
        outcome.server_rss_bytes = peak.load(Ordering::Relaxed);
        outcome.failed_joins = failed;
        // Let the server see the players go before the next step.
        std::thread::sleep(Duration::from_millis(300));
        outcome
    }

    /// Ramps `system` through `scale.ramp` players until a step fails.
    fn ramp(&self, system: System, intent: &str, scale: &Scale) -> Vec<Step> {
        let (process, wire) = match self.try_start(system) {
            Ok(started) => started,
            Err(e) => {
                eprintln!("  {}: not run: {e}", system.label());
                println!("\n{} was not run: {e}", system.label());
                return Vec::new();
            }
        };
        let mut steps = Vec::new();
        for &players in &scale.ramp {
            let spec = Spec {
                sessions: players.div_ceil(PLAYERS_PER_SESSION),
                players_per_session: PLAYERS_PER_SESSION.min(players),
                rate_hz: 20.0,
                payload_bytes: 64,
                intent: intent.into(),
                peer_share: 0.0,
                warmup_s: scale.warmup_s,
                measure_s: scale.measure_s,
                threads: 1,
            };
            let outcome = self.measure(&process, wire, &spec, system.label());
            // Coalesced sending holds messages up to one interval by design.
            let allowed = MAX_P99_US + system.hold_ms() * 1000;
            let held = outcome.p99_us <= allowed
                && outcome.loss <= MAX_LOSS
                && outcome.failed_joins == 0
                && outcome.delivered > 0;
            eprintln!(
                "  {}: {players} players: p99 {} loss {:.2}% {}",
                system.label(),
                micros(outcome.p99_us),
                outcome.loss * 100.0,
                if held { "held" } else { "NOT held" }
            );
            steps.push(Step {
                system: system.label(),
                spec,
                outcome,
                held,
            });
            if !held {
                break;
            }
        }
        steps
    }

    /// relay-udp / relay-tcp (and the body of lua-intercept).
    fn ramps(&self, name: &str, systems: &[System], intent: &str, scale: &Scale) -> bool {
        println!(
            "\n## {name} ({} scale): 8-player sessions, 20 Hz, 64-byte {intent} broadcasts",
            scale.name
        );
        let steps: Vec<Step> = systems
            .iter()
            .flat_map(|&s| self.ramp(s, intent, scale))
            .collect();
        let rows: Vec<Vec<String>> = steps
            .iter()
            .map(|s| {
                let o = &s.outcome;
                vec![
                    s.system.into(),
                    o.players.to_string(),
                    format!("{:.0}", o.deliveries_per_sec),
                    micros(o.p50_us),
                    micros(o.p99_us),
                    micros(o.p999_us),
                    format!("{:.2}%", o.loss * 100.0),
                    o.reordered.to_string(),
                    format!("{:.2}", o.server_us_per_delivery),
                    bytes(o.server_rss_bytes as f64),
                    format!(
                        "{:.0}%",
                        o.generator_cpu_s * 100.0 / (s.spec.warmup_s + s.spec.measure_s + 0.5)
                    ),
                    if s.held { "yes" } else { "no" }.into(),
                ]
            })
            .collect();
        report::table(
            &format!("{name}: every step"),
            &[
                "system",
                "players",
                "deliveries/s",
                "p50",
                "p99",
                "p99.9",
                "loss",
                "reordered",
                "server CPU µs/delivery",
                "server RSS",
                "generator CPU",
                "held",
            ],
            &rows,
        );
        let held = |label: &str| {
            steps
                .iter()
                .filter(|s| s.system == label && s.held)
                .map(|s| s.outcome.players)
                .max()
                .unwrap_or(0)
        };
        // CPU per delivery compared at the largest load every system that ran held.
        let ran: Vec<System> = systems
            .iter()
            .copied()
            .filter(|s| steps.iter().any(|step| step.system == s.label()))
            .collect();
        let systems = &ran[..];
        let common = systems.iter().map(|s| held(s.label())).min().unwrap_or(0);
        let cpu_at = |label: &str| {
            steps
                .iter()
                .find(|s| s.system == label && s.outcome.players == common)
                .map_or(f64::NAN, |s| s.outcome.server_us_per_delivery)
        };
        let Some(base) = systems.first().map(|s| s.label()) else {
            return false;
        };
        let summary: Vec<Vec<String>> = systems
            .iter()
            .map(|s| {
                vec![
                    s.label().into(),
                    held(s.label()).to_string(),
                    ratio(held(base) as f64, held(s.label()) as f64),
                    format!("{:.2}", cpu_at(s.label())),
                    ratio(cpu_at(base), cpu_at(s.label())),
                ]
            })
            .collect();
        report::table(
            &format!("{name}: summary (CPU compared at {common} players)"),
            &[
                "system",
                "most players held",
                &format!("{base} ÷ this (players)"),
                "server CPU µs/delivery",
                &format!("{base} ÷ this (CPU)"),
            ],
            &summary,
        );
        #[derive(Serialize)]
        struct Out<'a> {
            scenario: &'a str,
            machine: report::Machine,
            steps: &'a [Step],
        }
        report::write_json(
            &self.out,
            name,
            &Out {
                scenario: name,
                machine: report::machine(),
                steps: &steps,
            },
        );
        steps
            .iter()
            .filter(|s| s.outcome.players == scale.ramp[0])
            .all(|s| s.outcome.delivered > 0)
    }

    pub fn relay(&self, scale: &Scale, tcp: bool) -> bool {
        let systems = [
            System::Moonrt {
                lua: false,
                coalesce_ms: 0,
            },
            System::Floor { batched: false },
            System::Floor { batched: true },
        ];
        if tcp {
            self.ramps("relay-tcp", &systems, "reliable", scale)
        } else {
            self.ramps("relay-udp", &systems, "unreliable", scale)
        }
    }

    /// relay-udp with coalesced sending (every 50 ms, the load's tick) beside every-turn sending
    /// and the batched floor: the ceiling may pass 10 ms p99 by the interval.
    pub fn relay_coalesced(&self, scale: &Scale) -> bool {
        let systems = [
            System::Moonrt {
                lua: false,
                coalesce_ms: COALESCE_MS,
            },
            System::Moonrt {
                lua: false,
                coalesce_ms: 0,
            },
            System::Floor { batched: true },
        ];
        self.ramps("relay-coalesced", &systems, "unreliable", scale)
    }

    /// The relay load over WebSocket: moonrt's native frames coalesced and every turn, moonrt's
    /// sessionserver profile, and the npm `sessionserver` package (if it can be installed).
    pub fn relay_ws(&self, scale: &Scale) -> bool {
        let systems = [
            System::MoonrtWs {
                coalesce_ms: COALESCE_MS,
            },
            System::MoonrtWs { coalesce_ms: 0 },
            System::MoonrtSessionServer,
            System::NpmSessionServer,
            System::Colyseus,
        ];
        self.ramps("relay-ws", &systems, "reliable", scale)
    }

    pub fn lua_intercept(&self, scale: &Scale) -> bool {
        let systems = [
            System::Moonrt {
                lua: true,
                coalesce_ms: 0,
            },
            System::Moonrt {
                lua: false,
                coalesce_ms: 0,
            },
            System::Floor { batched: true },
        ];
        self.ramps("lua-intercept", &systems, "unreliable", scale)
    }

    pub fn idle_memory(&self, scale: &Scale) -> bool {
        let (sessions, per) = (scale.idle_sessions, scale.idle_per_session);
        println!(
            "\n## idle-memory ({} scale): {} idle connections in {sessions} sessions",
            scale.name,
            sessions * per
        );
        let script = default_script();
        let port = procstat::free_port();
        let config = self.config(port, &script, false);
        let server = procstat::spawn_server(&self.server_bin, &self.tmp.0, &config, port);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let moonrt = idle_fill(&server, sessions, per, |s, i| {
            let _ = i;
            hello(addr, &format!("idle-{s}"))
        });
        drop(server);
        let (reflector, wire) = self.start(System::Floor { batched: true });
        let Wire::Floor(faddr) = wire else {
            unreachable!("a floor")
        };
        let floor = idle_fill(&reflector, sessions, per, |s, i| {
            floor_register(faddr, s as u32, (s * per + i) as u32)
        });
        drop(reflector);
        let rows = [("moonrt (default script)", &moonrt), ("floor", &floor)]
            .iter()
            .map(|(label, m)| {
                vec![
                    label.to_string(),
                    bytes(m.baseline as f64),
                    bytes(m.per_connection),
                    bytes(m.per_session),
                    bytes(m.total_per_connection),
                    m.failed.to_string(),
                ]
            })
            .collect::<Vec<_>>();
        report::table(
            "idle-memory",
            &[
                "system",
                "RSS before",
                "per extra connection",
                "per session (its first player included)",
                "per connection, all in",
                "failed joins",
            ],
            &rows,
        );
        println!(
            "\nmoonrt ÷ floor, per connection all in: {}",
            ratio(moonrt.total_per_connection, floor.total_per_connection)
        );
        #[derive(Serialize)]
        struct Out {
            machine: report::Machine,
            moonrt: IdleMemory,
            floor: IdleMemory,
        }
        // Every join succeeded (a few connections may fit in memory freed at startup, so the
        // growth itself is not a check).
        let ok = moonrt.failed == 0 && floor.failed == 0;
        report::write_json(
            &self.out,
            "idle-memory",
            &Out {
                machine: report::machine(),
                moonrt,
                floor,
            },
        );
        ok
    }

    pub fn timers(&self, scale: &Scale) -> bool {
        println!(
            "\n## timers ({} scale): {} sessions, each with a 50 ms rt.set_interval",
            scale.name, scale.timer_sessions
        );
        let script = self.write_script("timers.lua", LUA_TIMERS);
        let port = procstat::free_port();
        let config = self.config(port, &script, false);
        let server = procstat::spawn_server(&self.server_bin, &self.tmp.0, &config, port);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut clients = Vec::new();
        let mut failed = 0;
        for s in 0..scale.timer_sessions {
            match Client::connect(addr, Connect::join_or_create(&format!("timers-{s}"))) {
                Ok(c) => clients.push(c),
                Err(_) => failed += 1,
            }
        }
        let cpu_before = server.cpu_secs();
        let lateness = collect_lateness(&mut clients, scale.timer_s);
        let cpu = server.cpu_secs() - cpu_before;
        drop(clients);
        drop(server);
        let floor = floor_timers(scale.timer_sessions, scale.timer_s);
        let fires_expected = scale.timer_sessions as f64 * scale.timer_s / 0.05;
        let row = |label: &str, h: &Histogram<u64>, cpu: f64| {
            vec![
                label.to_string(),
                h.len().to_string(),
                micros(h.value_at_quantile(0.5)),
                micros(h.value_at_quantile(0.99)),
                micros(h.value_at_quantile(0.999)),
                micros(h.max()),
                format!("{:.1}%", cpu * 100.0 / scale.timer_s),
            ]
        };
        report::table(
            "timers: lateness of each firing",
            &["system", "firings", "p50", "p99", "p99.9", "max", "CPU"],
            &[
                row("moonrt (Lua set_interval)", &lateness, cpu),
                row("floor (bare timer heap on epoll)", &floor.0, floor.1),
            ],
        );
        let p99 = lateness.value_at_quantile(0.99) as f64;
        let floor_p99 = floor.0.value_at_quantile(0.99) as f64;
        println!(
            "\nmoonrt ÷ floor, p99 lateness: {} (expected about {fires_expected:.0} firings)",
            ratio(p99, floor_p99)
        );
        #[derive(Serialize)]
        struct Out {
            machine: report::Machine,
            sessions: usize,
            failed_joins: u64,
            firings: u64,
            p50_us: u64,
            p99_us: u64,
            p999_us: u64,
            max_us: u64,
            server_cpu_s: f64,
            floor_p99_us: u64,
            floor_max_us: u64,
        }
        report::write_json(
            &self.out,
            "timers",
            &Out {
                machine: report::machine(),
                sessions: scale.timer_sessions,
                failed_joins: failed,
                firings: lateness.len(),
                p50_us: lateness.value_at_quantile(0.5),
                p99_us: lateness.value_at_quantile(0.99),
                p999_us: lateness.value_at_quantile(0.999),
                max_us: lateness.max(),
                server_cpu_s: cpu,
                floor_p99_us: floor.0.value_at_quantile(0.99),
                floor_max_us: floor.0.max(),
            },
        );
        failed == 0 && !lateness.is_empty()
    }

    pub fn reload(&self, scale: &Scale) -> bool {
        println!(
            "\n## reload ({} scale): {} script edits under relay-udp load ({} players)",
            scale.name, scale.reload_edits, scale.reload_players
        );
        let dir = self.tmp.0.join("reload");
        std::fs::create_dir_all(&dir).expect("temp dir is writable");
        let path = dir.join("main.lua");
        std::fs::write(&path, lua_version(0)).expect("temp dir is writable");
        let port = procstat::free_port();
        let config = self.config(port, &path.to_string_lossy(), true);
        let server = procstat::spawn_server(&self.server_bin, &self.tmp.0, &config, port);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        // The background load runs as long as the edits take, at most.
        let spec = Spec {
            sessions: scale.reload_players.div_ceil(PLAYERS_PER_SESSION),
            players_per_session: PLAYERS_PER_SESSION.min(scale.reload_players),
            rate_hz: 20.0,
            payload_bytes: 64,
            intent: "unreliable".into(),
            peer_share: 0.0,
            warmup_s: 0.5,
            measure_s: 1.0 + scale.reload_edits as f64 * 0.5,
            threads: 1,
        };
        let (players, load_failed) = load::connect_players(Wire::Moonrt(addr), &spec, "reload");
        let live = Arc::new(Live::default());
        let load = {
            let (spec, live) = (spec.clone(), live.clone());
            std::thread::spawn(move || load::run(players, &spec, live))
        };
        std::thread::sleep(Duration::from_millis(700));
        let mut edit_ms = Vec::new();
        let (mut joins, mut failed) = (0u64, 0u64);
        for version in 1..=scale.reload_edits {
            std::fs::write(&path, lua_version(version)).expect("temp dir is writable");
            let written = Instant::now();
            loop {
                joins += 1;
                match probe_version(addr, &format!("probe-{version}-{joins}")) {
                    Ok(v) if v == version => {
                        edit_ms.push(written.elapsed().as_secs_f64() * 1000.0);
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        failed += 1;
                        eprintln!("probe join failed: {e}");
                    }
                }
                if written.elapsed() > Duration::from_secs(10) {
                    eprintln!("version {version} never became current");
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let outcome = load.join().expect("load finished");
        drop(server);
        let floor_ms = notify_latency(&dir, scale.reload_edits);
        let stats = |v: &[f64]| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            let median = v.get(v.len() / 2).copied().unwrap_or(f64::NAN);
            let worst = v.last().copied().unwrap_or(f64::NAN);
            (median, worst)
        };
        let (median, worst) = stats(&edit_ms);
        let (floor_median, floor_worst) = stats(&floor_ms);
        report::table(
            "reload: file written → new sessions run the new version",
            &[
                "system",
                "edits",
                "median",
                "worst",
                "joins",
                "failed joins",
                "load loss",
            ],
            &[
                vec![
                    "moonrt (watcher, 150 ms debounce, validation)".into(),
                    edit_ms.len().to_string(),
                    format!("{median:.1} ms"),
                    format!("{worst:.1} ms"),
                    joins.to_string(),
                    (failed + load_failed + outcome.failed_joins).to_string(),
                    format!("{:.2}%", outcome.loss * 100.0),
                ],
                vec![
                    "floor (a bare inotify watch sees the write)".into(),
                    floor_ms.len().to_string(),
                    format!("{floor_median:.2} ms"),
                    format!("{floor_worst:.2} ms"),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ],
            ],
        );
        println!(
            "\nmoonrt ÷ floor, median: {}; load during the swaps: {} delivered, p99 {}",
            ratio(median, floor_median),
            outcome.delivered,
            micros(outcome.p99_us)
        );
        #[derive(Serialize)]
        struct Out {
            machine: report::Machine,
            edits: usize,
            edit_to_current_ms: Vec<f64>,
            median_ms: f64,
            worst_ms: f64,
            probe_joins: u64,
            failed_joins: u64,
            load: Outcome,
            floor_notify_ms: Vec<f64>,
        }
        let ok = failed == 0 && load_failed == 0 && edit_ms.len() == scale.reload_edits;
        report::write_json(
            &self.out,
            "reload",
            &Out {
                machine: report::machine(),
                edits: scale.reload_edits,
                edit_to_current_ms: edit_ms,
                median_ms: median,
                worst_ms: worst,
                probe_joins: joins,
                failed_joins: failed + load_failed,
                load: outcome,
                floor_notify_ms: floor_ms,
            },
        );
        ok
    }

    pub fn all(&self, scale: &Scale) -> bool {
        let m = report::machine();
        println!(
            "# moonrt-bench, {} scale\n\nMachine: {} CPUs ({}), {} GiB, Linux {}",
            scale.name, m.cpus, m.cpu_model, m.memory_gib, m.kernel
        );
        let results = [
            ("relay-udp", self.relay(scale, false)),
            ("relay-tcp", self.relay(scale, true)),
            ("lua-intercept", self.lua_intercept(scale)),
            ("relay-coalesced", self.relay_coalesced(scale)),
            ("relay-ws", self.relay_ws(scale)),
            ("idle-memory", self.idle_memory(scale)),
            ("timers", self.timers(scale)),
            ("reload", self.reload(scale)),
            ("containment", self.containment()),
        ];
        let failed: Vec<&str> = results.iter().filter(|r| !r.1).map(|r| r.0).collect();
        if failed.is_empty() {
            println!("\nall scenarios ran");
            true
        } else {
            eprintln!(
                "\nscenarios that did not produce results: {}",
                failed.join(", ")
            );
            false
        }
    }

    pub fn run(&self, args: &RunArgs) -> bool {
        let system = match args.target.as_str() {
            "moonrt" => System::Moonrt {
                lua: false,
                coalesce_ms: 0,
            },
            "floor-naive" => System::Floor { batched: false },
            "floor-batched" => System::Floor { batched: true },
            "moonrt-ws" => System::MoonrtWs { coalesce_ms: 0 },
            "moonrt-sessionserver" => System::MoonrtSessionServer,
            "npm-sessionserver" => System::NpmSessionServer,
            "colyseus" => System::Colyseus,
            other => {
                eprintln!(
                    "unknown --target {other}: moonrt, floor-naive, floor-batched, moonrt-ws, \
                     moonrt-sessionserver, npm-sessionserver or colyseus"
                );
                return false;
            }
        };
        let spec = Spec {
            sessions: args.sessions,
            players_per_session: args.players,
            rate_hz: args.rate,
            payload_bytes: args.payload,
            intent: args.intent.clone(),
            peer_share: args.peer_share,
            warmup_s: 1.0,
            measure_s: args.duration,
            threads: args.threads,
        };
        let outcome = if let Some(addr) = args.addr {
            let wire = match system {
                System::Moonrt { .. } => Wire::Moonrt(addr),
                System::Floor { .. } => Wire::Floor(addr),
                System::MoonrtWs { .. } => Wire::MoonrtWs(addr),
                System::MoonrtSessionServer | System::NpmSessionServer => Wire::SessionServer(addr),
                System::Colyseus => Wire::Colyseus(addr),
            };
            let (players, failed) = load::connect_players(wire, &spec, "run");
            let mut o = load::run(players, &spec, Arc::new(Live::default()));
            o.failed_joins = failed;
            o
        } else if let (System::Moonrt { .. }, Some(script)) = (system, &args.script) {
            let port = procstat::free_port();
            let config = self.config(port, &script.to_string_lossy(), false);
            let p = procstat::spawn_server(&self.server_bin, &self.tmp.0, &config, port);
            self.measure(
                &p,
                Wire::Moonrt(([127, 0, 0, 1], port).into()),
                &spec,
                "run",
            )
        } else {
            let (p, wire) = self.start(system);
            self.measure(&p, wire, &spec, system.label())
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&outcome).unwrap_or_default()
        );
        report::write_json(&self.out, "run", &outcome);
        outcome.delivered > 0
    }
}

/// Memory figures for one system.
#[derive(Debug, Default, Serialize)]
struct IdleMemory {
    baseline: u64,
    after_sessions: u64,
    after: u64,
    per_connection: f64,
    per_session: f64,
    total_per_connection: f64,
    failed: u64,
}

/// Opens `sessions` × `per` idle connections, one per session first, then the rest.
fn idle_fill(
    process: &Process,
    sessions: usize,
    per: usize,
    mut open: impl FnMut(usize, usize) -> std::io::Result<TcpStream>,
) -> IdleMemory {
    let settle = || std::thread::sleep(Duration::from_millis(500));
    settle();
    let mut m = IdleMemory {
        baseline: process.rss_bytes(),
        ..IdleMemory::default()
    };
    let mut held = Vec::with_capacity(sessions * per);
    for i in 0..per {
        for s in 0..sessions {
            match open(s, i) {
                Ok(stream) => held.push(stream),
                Err(e) => {
                    m.failed += 1;
                    if m.failed <= 3 {
                        eprintln!("idle join failed: {e}");
                    }
                }
            }
        }
        if i == 0 {
            settle();
            m.after_sessions = process.rss_bytes();
        }
    }
    settle();
    m.after = process.rss_bytes();
    let extra = (sessions * per.saturating_sub(1)).max(1) as f64;
    m.per_connection = (m.after as f64 - m.after_sessions as f64) / extra;
    m.per_session = (m.after_sessions as f64 - m.baseline as f64) / sessions.max(1) as f64;
    m.total_per_connection = (m.after as f64 - m.baseline as f64) / (sessions * per).max(1) as f64;
    m
}

/// A bare native connection: HELLO (join or create `session`), then WELCOME. One socket, no
/// UDP, so 10,000 fit in the generator's file limit.
fn hello(addr: SocketAddr, session: &str) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut frame = Vec::new();
    ClientMsg::Hello(Hello {
        version: PROTOCOL_VERSION,
        mode: JoinMode::JoinOrCreate(session),
        token: "",
        player_id: "",
        player_name: "idle",
        payload: b"",
        stray_field: None,
    })
    .encode(&mut frame);
    stream.write_all(&frame)?;
    let mut rx = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::other("closed before WELCOME"));
        }
        rx.extend_from_slice(&buf[..n]);
        if let Ok(Some((body, _))) = codec::split_frame(&rx, usize::MAX) {
            return match ServerMsg::decode(body) {
                Ok(ServerMsg::Welcome(_)) => Ok(stream),
                Ok(other) => Err(std::io::Error::other(format!("not welcomed: {other:?}"))),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
        }
    }
}

/// A floor connection that registered and stays idle.
fn floor_register(addr: SocketAddr, session: u32, id: u32) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr)?;
    let mut frame = Vec::new();
    frame.extend_from_slice(&12u32.to_le_bytes());
    frame.extend_from_slice(&session.to_le_bytes());
    frame.extend_from_slice(&id.to_le_bytes());
    frame.extend_from_slice(&floor::REGISTER.to_le_bytes());
    stream.write_all(&frame)?;
    Ok(stream)
}

/// Receives each session's timer reports (a little-endian f64 of milliseconds late).
fn collect_lateness(clients: &mut [Client], secs: f64) -> Histogram<u64> {
    let mut hist = load::latency_histogram();
    let mut poll = Poll::new().expect("epoll is available");
    for (i, c) in clients.iter_mut().enumerate() {
        c.set_keepalive(false);
        let _ = c.attach(poll.registry(), Token(i));
    }
    let mut events = Events::with_capacity(1024);
    let start = Instant::now();
    // The first second lets every interval start; firings after it are measured.
    let measure_from = start + Duration::from_millis(500);
    let end = measure_from + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        let _ = poll.poll(&mut events, Some(Duration::from_millis(10)));
        let counting = Instant::now() >= measure_from;
        for event in events.iter() {
            let Some(c) = clients.get_mut(event.token().0) else {
                continue;
            };
            let _ = c.receive();
            while let Some(e) = c.pop_event() {
                if let Event::Delivery(d) = e
                    && d.opcode == load::BENCH_OPCODE
                    && counting
                    && let Ok(bytes) = <[u8; 8]>::try_from(&d.payload[..])
                {
                    let late_ms = f64::from_le_bytes(bytes);
                    let _ = hist.record(((late_ms * 1000.0).max(0.0) as u64).max(1));
                }
            }
        }
    }
    hist
}

/// The floor for timers: `count` 50 ms intervals on one thread, a heap and epoll timeouts.
fn floor_timers(count: usize, secs: f64) -> (Histogram<u64>, f64) {
    let mut hist = load::latency_histogram();
    let mut poll = Poll::new().expect("epoll is available");
    let mut events = Events::with_capacity(16);
    let every = Duration::from_millis(50);
    let start = Instant::now();
    let mut heap: BinaryHeap<Reverse<(Instant, usize)>> = (0..count)
        .map(|i| Reverse((start + every.mul_f64(i as f64 / count as f64), i)))
        .collect();
    let measure_from = start + Duration::from_millis(500);
    let end = measure_from + Duration::from_secs_f64(secs);
    let cpu_before = procstat::self_cpu_secs();
    while let Some(&Reverse((due, i))) = heap.peek() {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if due > now {
            let _ = poll.poll(&mut events, Some(due - now + Duration::from_micros(500)));
            continue;
        }
        heap.pop();
        if now >= measure_from {
            let _ = hist.record(((now - due).as_micros() as u64).max(1));
        }
        let mut next = due + every;
        if next <= now {
            next = now + every;
        }
        heap.push(Reverse((next, i)));
    }
    (hist, procstat::self_cpu_secs() - cpu_before)
}

/// Connects a fresh session and reads the script version its greeting carries.
fn probe_version(addr: SocketAddr, session: &str) -> Result<usize, String> {
    let mut c =
        Client::connect(addr, Connect::join_or_create(session)).map_err(|e| e.to_string())?;
    let event = c
        .wait_for(
            Duration::from_secs(5),
            |e| matches!(e, Event::Delivery(d) if d.opcode == VERSION_OPCODE),
        )
        .map_err(|e| e.to_string())?;
    let _ = c.leave();
    match event {
        Event::Delivery(d) => String::from_utf8_lossy(&d.payload)
            .parse()
            .map_err(|e| format!("bad version: {e}")),
        _ => Err("no version".into()),
    }
}

/// The floor for reload: how long a bare inotify watch takes to see a write.
fn notify_latency(dir: &std::path::Path, edits: usize) -> Vec<f64> {
    use notify::{RecursiveMode, Watcher};
    let (tx, rx) = std::sync::mpsc::channel();
    let Ok(mut watcher) = notify::recommended_watcher(move |e| {
        let _ = tx.send(e);
    }) else {
        return Vec::new();
    };
    if watcher.watch(dir, RecursiveMode::NonRecursive).is_err() {
        return Vec::new();
    }
    let path = dir.join("floor.lua");
    let mut out = Vec::new();
    for i in 0..edits {
        while rx.try_recv().is_ok() {}
        let written = Instant::now();
        std::fs::write(&path, lua_version(i)).expect("temp dir is writable");
        if rx.recv_timeout(Duration::from_secs(5)).is_ok() {
            out.push(written.elapsed().as_secs_f64() * 1000.0);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    out
}

/// The shipped default script (`lua/main.lua`), for idle memory with a Lua state per session.
fn default_script() -> String {
    let local = std::path::Path::new("lua/main.lua");
    let path = if local.exists() {
        local.to_path_buf()
    } else {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lua/main.lua")
    };
    std::fs::canonicalize(&path)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

const VERSION_OPCODE: u32 = 99;

/// A script that greets each joiner with its version.
fn lua_version(version: usize) -> String {
    format!(
        "local VERSION = {version}\nlocal M = {{}}\nfunction M.on_player_join(player)\n  \
         rt.send({{player.peer}}, {VERSION_OPCODE}, tostring(VERSION))\nend\nreturn M\n"
    )
}

/// lua-intercept's script: a handler on every packet that lets it through.
const LUA_INTERCEPT: &str =
    "local M = {}\nfunction M.on_packet(packet)\n  return true\nend\nreturn M\n";

/// timers' script: one 50 ms interval per session, each firing reports how late it ran.
const LUA_TIMERS: &str = r#"local M = {}
local EVERY = 50
function M.on_player_join(player)
  local due = rt.time() + EVERY
  rt.set_interval(function()
    local now = rt.time()
    rt.send({player.peer}, 7, string.pack("<d", now - due))
    due = due + EVERY
    if due <= now then due = now + EVERY end
  end, EVERY)
end
return M
"#;

/// `--intent`: one of the names `Intent` has.
fn intent_name(name: &str) -> Result<String, String> {
    name.parse::<moonrt::core::codec::Intent>()
        .map(|i| i.name().to_owned())
}
