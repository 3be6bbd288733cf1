//! Quick loopback figures for one machine, side by side in one run: relay throughput of one
//! 8-player session over TCP and over UDP, with no script and with a Lua `on_packet` handler on
//! every packet; resident memory per idle connection, and per idle session running the default
//! script. Not a test: it measures.
//!
//! Run: `cargo run --release --example loopback_relay [rounds]`
//!
//! The server runs on its own thread in this process (its loop is single-threaded, as in the
//! binary); the eight clients share a second thread, so on a 2-core machine the figures are a
//! floor set by client and server together. The full load generator is `moonrt-bench`
//! (BENCHMARKS.md).

use moonrt::client::{Client, Connect, Event, To};
use moonrt::config::Config;
use moonrt::core::codec::{ClientMsg, Hello, Intent, JoinMode};
use moonrt::core::{Hooks, NoScript};
use moonrt::net::{NetServer, ServerHandle};

use moonrt::script::{LuaHooks, ScriptSource};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const PLAYERS: usize = 8;
const PAYLOAD: usize = 64;

fn config() -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.ws_listen = "127.0.0.1:0".into();
    config.server.max_connections = 20_000;
    config.server.max_sessions = 20_000;
    config.limits.max_messages_per_sec = 1_000_000;
    config.sessions.empty_session_linger_ms = 0;
    config
}

/// Starts a server on its own thread; hooks are built there (Lua states stay on one thread).
fn spawn<H: Hooks + 'static>(build: impl FnOnce() -> H + Send + 'static) -> Server {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let server = NetServer::bind(config(), build()).unwrap();
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        tx.send((server.local_addr(), server.handle(), tid))
            .unwrap();
        server.run().unwrap();
    });
    let (addr, handle, tid) = rx.recv().unwrap();
    Server {
        addr,
        handle,
        thread,
        tid,
    }
}

/// A server under measurement.
struct Server {
    addr: SocketAddr,
    handle: ServerHandle,
    thread: std::thread::JoinHandle<()>,
    tid: i32,
}

impl Server {
    /// CPU time the server's loop thread has used, in nanoseconds.
    fn cpu_ns(&self) -> u64 {
        let path = format!("/proc/self/task/{}/schedstat", self.tid);
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    fn stop(self) {
        self.handle.shutdown();
        self.thread.join().unwrap();
    }
}

fn lua(text: &str) -> impl FnOnce() -> LuaHooks + Send + 'static {
    let source = ScriptSource::from_text(std::path::Path::new("lua/bench.lua"), text.to_owned());
    move || LuaHooks::new(source, &config()).unwrap()
}

/// ns per relayed message through the sans-IO core alone (8 players, each message to the 7
/// others, output "written" by discarding it): the cost of the server's own work, no syscalls.
fn core_ns_per_message<H: Hooks>(hooks: H, rounds: usize) -> f64 {
    use moonrt::core::codec::{Data, Target};
    use moonrt::core::{Server as Core, WallClock};
    let mut now = Instant::now();
    let mut core = Core::new(
        config(),
        0,
        hooks,
        WallClock {
            at: now,
            unix_us: 0,
        },
        moonrt::core::Entropy::seeded(7),
    );
    let mut ids = Vec::new();
    for i in 0..PLAYERS {
        let id = core.handle_accept(now, SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16)));
        let mut hello = Vec::new();
        ClientMsg::Hello(Hello {
            version: 1,
            mode: JoinMode::JoinOrCreate("core"),
            token: "",
            player_id: "",
            player_name: "p",
            payload: b"",
            stray_field: None,
        })
        .encode(&mut hello);
        core.handle_tcp_bytes(now, id, &hello);
        ids.push(id);
    }
    let mut frame = Vec::new();
    ClientMsg::Data(Data {
        intent: Intent::Reliable,
        opcode: 1,
        target: Target::AllOthers,
        payload: &[7u8; PAYLOAD],
    })
    .encode(&mut frame);
    let mut dirty = Vec::new();
    let mut run = |core: &mut Core<H>, now: &mut Instant, rounds: usize| {
        for _ in 0..rounds {
            *now += Duration::from_micros(50);
            for &id in &ids {
                core.handle_tcp_bytes(*now, id, &frame);
            }
            core.take_dirty(&mut dirty);
            for &id in &dirty {
                let n = core.tcp_pending(id).len();
                core.tcp_written(id, n);
            }
        }
    };
    run(&mut core, &mut now, rounds / 10);
    let start = Instant::now();
    run(&mut core, &mut now, rounds);
    start.elapsed().as_nanos() as f64 / (rounds * PLAYERS) as f64
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);

    println!(
        "core only (no sockets), 8 players, each message relayed to 7, {PAYLOAD}-byte payloads:"
    );
    let mut plain_ns = f64::MAX;
    let mut lua_ns = f64::MAX;
    for _ in 0..3 {
        plain_ns = plain_ns.min(core_ns_per_message(NoScript, rounds * 5));
        lua_ns = lua_ns.min(core_ns_per_message(
            lua("return { on_packet = function(packet) return true end }")(),
            rounds * 5,
        ));
    }
    println!(
        "  no script {plain_ns:.0} ns/message, Lua on_packet returning true {lua_ns:.0} ns/message: \
         ratio {:.2} (best of 3, alternated)",
        lua_ns / plain_ns
    );
    if std::env::args().nth(2).as_deref() == Some("core") {
        return;
    }
    let plain = spawn(|| NoScript);
    let scripted = spawn(lua(
        "return { on_packet = function(packet) return true end }",
    ));

    println!(
        "8-player session, {PAYLOAD}-byte payloads to all others, {rounds} rounds per server:"
    );
    println!(
        "  (server ns/delivery is the server thread's own CPU time; the ratio compares those)"
    );
    for intent in [Intent::Reliable, Intent::Unreliable] {
        // Alternate the two servers so drift on a shared machine hits both alike.
        let mut runs = [(0.0f64, 0u64, 0u64, 0.0f64); 2];
        for _ in 0..2 {
            for (i, server) in [&plain, &scripted].into_iter().enumerate() {
                let cpu = server.cpu_ns();
                let (rate, delivered, lost) = relay(server.addr, rounds / 2, intent);
                let run = &mut runs[i];
                run.0 += rate / 2.0;
                run.1 += server.cpu_ns() - cpu;
                run.2 += delivered;
                run.3 = run.3.max(lost);
            }
        }
        let per = |r: &(f64, u64, u64, f64)| r.1 as f64 / r.2.max(1) as f64;
        println!(
            "  {intent:?}: no script {:>8.0} deliveries/s, {:>5.0} server ns/delivery (lost {:.2}%) | \
             Lua on_packet {:>8.0} deliveries/s, {:>5.0} server ns/delivery (lost {:.2}%) | \
             cost ratio {:.2}",
            runs[0].0,
            per(&runs[0]),
            runs[0].3,
            runs[1].0,
            per(&runs[1]),
            runs[1].3,
            per(&runs[1]) / per(&runs[0])
        );
    }
    let (per_conn, base) = idle_memory(plain.addr, 2_000, PLAYERS);
    println!(
        "idle, no script: {per_conn:.0} bytes resident per joined connection \
         (2000 in 250 sessions; process baseline {:.1} MiB)",
        base as f64 / (1 << 20) as f64
    );
    plain.stop();
    scripted.stop();

    let default_script =
        std::fs::read_to_string("lua/main.lua").expect("run from the repository root");
    let scripted = spawn(lua(&default_script));
    let (per_session, _) = idle_memory(scripted.addr, 1_000, 1);
    println!(
        "idle, default script: {per_session:.0} bytes resident per session \
         (1000 sessions of one player each, Lua state included)"
    );
    scripted.stop();
}

/// Every player sends one message to all others per round; everyone drains between rounds.
/// Returns (deliveries per second, deliveries, percent lost).
fn relay(addr: SocketAddr, rounds: usize, intent: Intent) -> (f64, u64, f64) {
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let room = format!(
        "bench-{intent:?}-{}",
        RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let mut clients: Vec<Client> = (0..PLAYERS)
        .map(|i| {
            Client::connect(addr, Connect::join_or_create(&room).name(&format!("p{i}"))).unwrap()
        })
        .collect();
    if intent.is_unreliable() {
        for c in &mut clients {
            c.bind_udp().unwrap();
        }
    }
    // Let every PLAYER_JOINED arrive before timing.
    for c in &mut clients {
        while c.next_event(Duration::from_millis(50)).unwrap().is_some() {}
    }
    let payload = [7u8; PAYLOAD];
    let expected = (rounds * PLAYERS * (PLAYERS - 1)) as u64;
    let mut received = 0u64;
    let start = Instant::now();
    for _ in 0..rounds {
        for c in &mut clients {
            c.send(To::AllOthers, 1, intent, &payload).unwrap();
        }
        for c in &mut clients {
            while let Some(e) = c.next_event(Duration::ZERO).unwrap() {
                if let Event::Closed { code, message } = &e {
                    panic!("closed during the run ({intent:?}, {addr}): {code} {message}");
                }
                if matches!(e, Event::Delivery(_)) {
                    received += 1;
                }
            }
        }
    }
    let drain_deadline = Instant::now() + Duration::from_secs(5);
    while received < expected && Instant::now() < drain_deadline {
        for c in &mut clients {
            while let Some(e) = c.next_event(Duration::from_millis(1)).unwrap() {
                if matches!(e, Event::Delivery(_)) {
                    received += 1;
                }
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    for mut c in clients {
        let _ = c.leave();
    }
    let lost = 100.0 * (expected - received.min(expected)) as f64 / expected as f64;
    (received as f64 / elapsed, received, lost)
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// Opens `n` raw connections in sessions of `per_session` and measures the resident growth.
/// Raw sockets hold no user-space buffers, so the growth is the server's.
fn idle_memory(addr: SocketAddr, n: usize, per_session: usize) -> (f64, u64) {
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_bytes();
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = TcpStream::connect(addr).unwrap();
        let mut hello = Vec::new();
        let room = format!("idle-{}-{}", per_session, i / per_session);
        ClientMsg::Hello(Hello {
            version: 1,
            mode: JoinMode::JoinOrCreate(&room),
            token: "",
            player_id: "",
            player_name: "idle",
            payload: b"",
            stray_field: None,
        })
        .encode(&mut hello);
        s.write_all(&hello).unwrap();
        conns.push(s);
    }
    // Read each WELCOME so every connection is a joined player before measuring.
    for s in &mut conns {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
        s.read_exact(&mut body).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_bytes();
    (after.saturating_sub(before) as f64 / n as f64, before)
}
