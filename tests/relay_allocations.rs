//! The relay path allocates nothing per message in steady state, over TCP and over UDP.
//!
//! A counting global allocator watches this thread while eight players exchange messages through
//! the sans-IO core, with the flush loop the transport runs (pending slices, written, sent).

use moonrt::config::Config;
use moonrt::core::codec::{self, ClientMsg, Data, Hello, Intent, JoinMode, ServerMsg, Target};
use moonrt::core::{ConnId, NoScript, Server, WallClock};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Player {
    id: ConnId,
    conn_id: u32,
    secret: u64,
    addr: SocketAddr,
}

fn setup(now: Instant) -> (Server<NoScript>, Vec<Player>) {
    let mut config = Config::default();
    config.limits.max_messages_per_sec = 1_000_000;
    let mut server = Server::new(
        config,
        7777,
        NoScript,
        WallClock {
            at: now,
            unix_us: 0,
        },
        moonrt::core::Entropy::seeded(7),
    );
    let mut players = Vec::new();
    for i in 0..8u16 {
        let addr = SocketAddr::from(([127, 0, 0, 1], 20_000 + i));
        let id = server.handle_accept(now, addr);
        let mut hello = Vec::new();
        ClientMsg::Hello(Hello {
            version: 1,
            mode: JoinMode::JoinOrCreate("bench"),
            token: "",
            player_id: "",
            player_name: "p",
            payload: b"",
            stray_field: None,
        })
        .encode(&mut hello);
        server.handle_tcp_bytes(now, id, &hello);
        let pending = server.tcp_pending(id).to_vec();
        let (body, _) = codec::split_frame(&pending, usize::MAX).unwrap().unwrap();
        let ServerMsg::Welcome(w) = ServerMsg::decode(body).unwrap() else {
            panic!("expected WELCOME");
        };
        players.push(Player {
            id,
            conn_id: w.udp_conn_id,
            secret: w.udp_secret,
            addr,
        });
    }
    (server, players)
}

/// What the transport does each turn: take the dirty list, "write" everything.
fn flush(server: &mut Server<NoScript>, dirty: &mut Vec<ConnId>) -> usize {
    server.take_dirty(dirty);
    let mut bytes = 0;
    for &id in dirty.iter() {
        let n = server.tcp_pending(id).len();
        bytes += n;
        server.tcp_written(id, n);
        let count = server
            .udp_pending(id)
            .map(|(_, d)| d.map(|d| bytes += d.len()).count())
            .unwrap_or(0);
        server.udp_sent(id, count, true);
    }
    bytes
}

fn run_rounds(
    server: &mut Server<NoScript>,
    players: &[Player],
    frames: &[Vec<u8>],
    now: &mut Instant,
    dirty: &mut Vec<ConnId>,
    rounds: usize,
    udp: bool,
) -> usize {
    let mut bytes = 0;
    for _ in 0..rounds {
        *now += Duration::from_millis(1);
        for (p, frame) in players.iter().zip(frames) {
            if udp {
                server.handle_udp_datagram(*now, p.addr, frame);
            } else {
                server.handle_tcp_bytes(*now, p.id, frame);
            }
        }
        bytes += flush(server, dirty);
    }
    bytes
}

#[test]
fn relaying_over_tcp_and_udp_allocates_nothing_in_steady_state() {
    let mut now = Instant::now();
    let (mut server, players) = setup(now);
    let mut dirty = Vec::with_capacity(64);
    let payload = [0x5au8; 64];
    let tcp_frames: Vec<Vec<u8>> = players
        .iter()
        .map(|_| {
            let mut f = Vec::new();
            ClientMsg::Data(Data {
                intent: Intent::Reliable,
                opcode: 1,
                target: Target::AllOthers,
                payload: &payload,
            })
            .encode(&mut f);
            f
        })
        .collect();
    let udp_frames: Vec<Vec<u8>> = players
        .iter()
        .map(|p| {
            let mut d = p.conn_id.to_le_bytes().to_vec();
            d.extend_from_slice(&p.secret.to_le_bytes());
            ClientMsg::Data(Data {
                intent: Intent::Unreliable,
                opcode: 2,
                target: Target::AllOthers,
                payload: &payload,
            })
            .encode(&mut d);
            d
        })
        .collect();
    for p in &players {
        let mut bind = p.conn_id.to_le_bytes().to_vec();
        bind.extend_from_slice(&p.secret.to_le_bytes());
        ClientMsg::UdpBind.encode(&mut bind);
        server.handle_udp_datagram(now, p.addr, &bind);
    }
    flush(&mut server, &mut dirty);
    // Warm up: buffers reach their working size.
    run_rounds(
        &mut server,
        &players,
        &tcp_frames,
        &mut now,
        &mut dirty,
        50,
        false,
    );
    run_rounds(
        &mut server,
        &players,
        &udp_frames,
        &mut now,
        &mut dirty,
        50,
        true,
    );

    let deliveries_before = server.stats().deliveries;
    WATCHING.with(|w| w.set(true));
    let tcp_bytes = run_rounds(
        &mut server,
        &players,
        &tcp_frames,
        &mut now,
        &mut dirty,
        500,
        false,
    );
    let udp_bytes = run_rounds(
        &mut server,
        &players,
        &udp_frames,
        &mut now,
        &mut dirty,
        500,
        true,
    );
    WATCHING.with(|w| w.set(false));

    let relayed = server.stats().deliveries - deliveries_before;
    assert_eq!(
        relayed,
        2 * 500 * 8 * 7,
        "every message reached the 7 others"
    );
    assert_eq!(tcp_bytes, 500 * 8 * 7 * (16 + 64));
    assert_eq!(udp_bytes, 500 * 8 * 7 * (16 + 64));
    assert_eq!(
        ALLOCATIONS.load(Ordering::Relaxed),
        0,
        "allocations while relaying"
    );
}
