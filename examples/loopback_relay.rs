//! Quick loopback figures for one machine: relay throughput of one 8-player session over TCP
//! and over UDP, and resident memory per idle connection. Not a test: it measures.
//!
//! Run: `cargo run --release --example loopback_relay [rounds]`
//!
//! The server runs on its own thread in this process (its loop is single-threaded, as in the
//! binary); the eight clients share a second thread, so on a 2-core machine the figures are a
//! floor set by client and server together. The full load generator is `moonrt-bench` (later).

use moonrt::client::{Client, Connect, Event, To};
use moonrt::config::Config;
use moonrt::core::NoScript;
use moonrt::core::codec::{ClientMsg, Hello, Intent, JoinMode};
use moonrt::net::NetServer;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const PLAYERS: usize = 8;
const PAYLOAD: usize = 64;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.max_connections = 20_000;
    config.limits.max_messages_per_sec = 1_000_000;
    config.sessions.empty_session_linger_ms = 0;
    let server = NetServer::bind(config, NoScript).unwrap();
    let addr = server.local_addr();
    let handle = server.handle();
    let thread = std::thread::spawn(move || server.run().unwrap());

    let (tcp_rate, tcp_loss) = relay(addr, rounds, Intent::Reliable);
    let (udp_rate, udp_loss) = relay(addr, rounds, Intent::Unreliable);
    println!("8-player session, {PAYLOAD}-byte payloads to all others, {rounds} rounds:");
    println!("  tcp reliable:   {tcp_rate:>10.0} deliveries/s  (lost {tcp_loss:.2}%)");
    println!("  udp unreliable: {udp_rate:>10.0} deliveries/s  (lost {udp_loss:.2}%)");
    println!("  udp/tcp ratio:  {:>10.2}", udp_rate / tcp_rate);

    let (per_conn, base) = idle_memory(addr, 2_000);
    println!(
        "idle: {per_conn:.0} bytes resident per joined connection (2000 in 250 sessions; \
         process baseline {:.1} MiB)",
        base as f64 / (1 << 20) as f64
    );
    handle.shutdown();
    let stats = thread.join().unwrap();
    println!("server stats: {} deliveries", stats.deliveries);
}

/// Every player sends one message to all others per round; everyone drains between rounds.
/// Returns (deliveries per second, percent lost).
fn relay(addr: SocketAddr, rounds: usize, intent: Intent) -> (f64, f64) {
    let room = format!("bench-{intent:?}");
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
    (received as f64 / elapsed, lost)
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

/// Opens `n` raw connections in sessions of eight and measures the resident growth.
/// Raw sockets hold no user-space buffers, so the growth is the server's.
fn idle_memory(addr: SocketAddr, n: usize) -> (f64, u64) {
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_bytes();
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = TcpStream::connect(addr).unwrap();
        let mut hello = Vec::new();
        let room = format!("idle-{}", i / PLAYERS);
        ClientMsg::Hello(Hello {
            version: 1,
            mode: JoinMode::JoinOrCreate(&room),
            token: "",
            player_id: "",
            player_name: "idle",
            payload: b"",
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
