//! The load: N sessions × M players, each sending at R Hz, measured at the receivers.
//!
//! Players are spread over worker threads; each worker drives its players from one `mio::Poll`
//! and batches like the server does (one TCP write and packed datagrams per player per turn).
//! Every payload starts with the time it was queued (a flush follows in the same turn), its
//! sender and a per-sender sequence number: latency is one-way, queue to receipt, and loss and
//! reordering are counted per sender/receiver pair.

use crate::floor::RawPlayer;
use crate::ws::{ColyseusPlayer, NativeWsPlayer, SessionServerPlayer};
use hdrhistogram::Histogram;
use mio::{Events, Poll, Token};
use moonrt::client::{Client, Connect, Event, To};
use moonrt::core::codec::Intent;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Opcode of the generator's messages (others, e.g. a script's, are not measured).
pub const BENCH_OPCODE: u32 = 7;
/// Bytes of the payload header: scheduled time, sender, sequence number.
pub const PAYLOAD_HEADER: usize = 16;

/// The monotonic zero all payload timestamps count from (all players live in this process).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn since_epoch_ns(t: Instant) -> u64 {
    t.saturating_duration_since(epoch()).as_nanos() as u64
}

/// What to load a server with.
#[derive(Debug, Clone, Serialize)]
pub struct Spec {
    pub sessions: usize,
    pub players_per_session: usize,
    pub rate_hz: f64,
    pub payload_bytes: usize,
    /// "reliable", "unreliable" or "sequenced".
    pub intent: String,
    /// Share of messages sent to one other player instead of all others (0..=1).
    pub peer_share: f64,
    pub warmup_s: f64,
    pub measure_s: f64,
    pub threads: usize,
}

impl Spec {
    fn intent(&self) -> Intent {
        // The CLI checked the name (`Intent::from_str`).
        self.intent.parse().unwrap_or(Intent::Unreliable)
    }

    pub fn players(&self) -> usize {
        self.sessions * self.players_per_session
    }
}

/// Which server the players talk to.
#[derive(Debug, Clone, Copy)]
pub enum Wire {
    /// moonrt's protocol, through `moonrt::client`.
    Moonrt(SocketAddr),
    /// The floor reflector's bare framing (see `floor.rs`).
    Floor(SocketAddr),
    /// moonrt's native frames over WebSocket (`ws.rs`).
    MoonrtWs(SocketAddr),
    /// The npm `sessionserver` JSON protocol over WebSocket, served by moonrt or the package.
    SessionServer(SocketAddr),
    /// Colyseus 0.16's room protocol (matchmaking over HTTP, then WebSocket).
    Colyseus(SocketAddr),
}

/// What one load run measured.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Outcome {
    pub players: usize,
    pub sent: u64,
    pub expected: u64,
    pub delivered: u64,
    pub deliveries_per_sec: f64,
    pub loss: f64,
    pub reordered: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub server_cpu_s: f64,
    /// Server CPU per delivered message, in microseconds.
    pub server_us_per_delivery: f64,
    pub server_rss_bytes: u64,
    pub generator_cpu_s: f64,
    pub failed_joins: u64,
}

/// Where a message goes.
#[derive(Debug, Clone, Copy)]
pub enum Dest {
    AllOthers,
    /// One other player, by its index in the session.
    One(usize),
}

/// A player the generator drives: a moonrt client or a floor client.
pub trait Player: Send {
    fn attach(&mut self, registry: &mio::Registry, token: Token) -> std::io::Result<()>;
    fn queue(&mut self, dest: Dest, intent: Intent, payload: &[u8]);
    /// Sends what was queued, without waiting: what the socket does not take stays queued.
    fn flush(&mut self) -> std::io::Result<()>;
    /// Whether reliable bytes wait for the next flush.
    fn unflushed(&self) -> bool;
    /// Reads what arrived; calls `on` with each measured payload.
    fn receive(&mut self, on: &mut dyn FnMut(&[u8])) -> std::io::Result<()>;
}

/// A moonrt player, through the crate's own client.
pub struct MoonPlayer {
    client: Client,
    /// Peer ids of the session's players, by index in the session (filled as they join).
    peers: Vec<u16>,
}

impl MoonPlayer {
    pub fn connect(addr: SocketAddr, session: &str, udp: bool) -> Result<MoonPlayer, String> {
        let mut client =
            Client::connect(addr, Connect::join_or_create(session)).map_err(|e| e.to_string())?;
        if udp {
            client.bind_udp().map_err(|e| e.to_string())?;
        }
        Ok(MoonPlayer {
            client,
            peers: Vec::new(),
        })
    }
}

impl Player for MoonPlayer {
    fn attach(&mut self, registry: &mio::Registry, token: Token) -> std::io::Result<()> {
        self.client.set_keepalive(false);
        self.peers = self.client.peers().iter().map(|p| p.peer).collect();
        self.client.attach(registry, token)
    }

    fn queue(&mut self, dest: Dest, intent: Intent, payload: &[u8]) {
        let to = match dest {
            Dest::AllOthers => To::AllOthers,
            Dest::One(i) => match self.peers.get(i % self.peers.len().max(1)) {
                Some(&peer) => To::Peers(vec![peer]),
                None => return,
            },
        };
        let _ = self.client.queue(to, BENCH_OPCODE, intent, payload);
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.client.flush().map_err(std::io::Error::other)
    }

    fn unflushed(&self) -> bool {
        self.client.unflushed() > 0
    }

    fn receive(&mut self, on: &mut dyn FnMut(&[u8])) -> std::io::Result<()> {
        self.client.receive().map_err(std::io::Error::other)?;
        while let Some(event) = self.client.pop_event() {
            match event {
                Event::Delivery(d) if d.opcode == BENCH_OPCODE => on(&d.payload),
                Event::PlayerJoined { peer, .. } => self.peers.push(peer),
                Event::PlayerLeft { peer, .. } => self.peers.retain(|&p| p != peer),
                Event::Closed { code, message } => {
                    return Err(std::io::Error::other(format!("closed: {code} {message}")));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Connects every player of `spec` (session by session); returns them and the failures.
pub fn connect_players(wire: Wire, spec: &Spec, run: &str) -> (Vec<Box<dyn Player>>, u64) {
    let udp = spec.intent() != Intent::Reliable;
    let mut players: Vec<Box<dyn Player>> = Vec::with_capacity(spec.players());
    let mut failed = 0;
    for s in 0..spec.sessions {
        // sessionserver sessions have server-chosen ids: the first player creates, the rest join.
        let mut session_id = None;
        for i in 0..spec.players_per_session {
            let result: Result<Box<dyn Player>, String> = match wire {
                Wire::MoonrtWs(addr) => NativeWsPlayer::connect(addr, &format!("{run}-{s}"))
                    .map(|p| Box::new(p) as Box<dyn Player>),
                Wire::Colyseus(addr) => ColyseusPlayer::connect(addr, &format!("{run}-{s}"))
                    .map(|p| Box::new(p) as Box<dyn Player>),
                Wire::SessionServer(addr) => {
                    SessionServerPlayer::connect(addr, session_id).map(|(p, id)| {
                        session_id = Some(id);
                        Box::new(p) as Box<dyn Player>
                    })
                }
                Wire::Moonrt(addr) => MoonPlayer::connect(addr, &format!("{run}-{s}"), udp)
                    .map(|p| Box::new(p) as Box<dyn Player>),
                Wire::Floor(addr) => {
                    let global = (s * spec.players_per_session + i) as u32;
                    RawPlayer::connect(addr, s as u32, global, spec.players_per_session as u32)
                        .map(|p| Box::new(p) as Box<dyn Player>)
                        .map_err(|e| e.to_string())
                }
            };
            match result {
                Ok(p) => players.push(p),
                Err(e) => {
                    failed += 1;
                    if failed <= 3 {
                        eprintln!("join failed: {e}");
                    }
                }
            }
        }
    }
    (players, failed)
}

/// Counters shared with the progress line.
#[derive(Default)]
pub struct Live {
    pub sent: AtomicU64,
    pub delivered: AtomicU64,
}

/// What one worker counted.
struct Tally {
    hist: Histogram<u64>,
    sent_fanout: u64,
    sent: u64,
    delivered: u64,
    reordered: u64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            hist: latency_histogram(),
            sent_fanout: 0,
            sent: 0,
            delivered: 0,
            reordered: 0,
        }
    }
}

/// A histogram of microseconds, from 1 µs to a minute, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// One player as a worker sees it.
struct Slot {
    player: Box<dyn Player>,
    index_in_session: usize,
    next_send: Instant,
    seq: u32,
    /// Last sequence number seen from each sender index in the session.
    last_seen: Vec<u32>,
    broken: bool,
}

/// Runs the load on already connected players (in session order); returns the outcome with the
/// generator's figures filled in (the caller adds the server's).
pub fn run(players: Vec<Box<dyn Player>>, spec: &Spec, live: Arc<Live>) -> Outcome {
    let count = players.len();
    let m = spec.players_per_session.max(1);
    let threads = spec.threads.max(1);
    let start = Instant::now() + Duration::from_millis(200);
    let window = (
        start + Duration::from_secs_f64(spec.warmup_s),
        start + Duration::from_secs_f64(spec.warmup_s + spec.measure_s),
    );
    let interval = Duration::from_secs_f64(1.0 / spec.rate_hz);
    // Whole sessions per worker keep sessions' players on one thread.
    let mut groups: Vec<Vec<Slot>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, player) in players.into_iter().enumerate() {
        let session = i / m;
        // Spread first sends over one interval, deterministically.
        let phase = interval.mul_f64((i as f64 * 0.618_034) % 1.0);
        groups[session % threads].push(Slot {
            player,
            index_in_session: i % m,
            next_send: start + phase,
            seq: 0,
            last_seen: vec![0; m],
            broken: false,
        });
    }
    let cpu_before = crate::procstat::self_cpu_secs();
    let handles: Vec<_> = groups
        .into_iter()
        .map(|slots| {
            let spec = spec.clone();
            let live = live.clone();
            std::thread::spawn(move || worker(slots, &spec, window, interval, &live))
        })
        .collect();
    let mut total = Tally::new();
    for h in handles {
        let t = h.join().expect("worker finished");
        total.hist.add(&t.hist).expect("same bounds");
        total.sent_fanout += t.sent_fanout;
        total.sent += t.sent;
        total.delivered += t.delivered;
        total.reordered += t.reordered;
    }
    let generator_cpu_s = crate::procstat::self_cpu_secs() - cpu_before;
    let h = &total.hist;
    Outcome {
        players: count,
        sent: total.sent,
        expected: total.sent_fanout,
        delivered: total.delivered,
        deliveries_per_sec: total.delivered as f64 / spec.measure_s,
        loss: if total.sent_fanout == 0 {
            0.0
        } else {
            1.0 - (total.delivered as f64 / total.sent_fanout as f64).min(1.0)
        },
        reordered: total.reordered,
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
        generator_cpu_s,
        ..Outcome::default()
    }
}

fn worker(
    mut slots: Vec<Slot>,
    spec: &Spec,
    window: (Instant, Instant),
    interval: Duration,
    live: &Live,
) -> Tally {
    let mut tally = Tally::new();
    let mut poll = Poll::new().expect("epoll is available");
    for (i, slot) in slots.iter_mut().enumerate() {
        if let Err(e) = slot.player.attach(poll.registry(), Token(i)) {
            eprintln!("attach failed: {e}");
            slot.broken = true;
        }
    }
    let intent = spec.intent();
    let m = spec.players_per_session.max(1);
    let (window_start, window_end) = (since_epoch_ns(window.0), since_epoch_ns(window.1));
    let stop_sending = window.1;
    let drain_until = window.1 + Duration::from_millis(300);
    let mut payload = vec![0u8; spec.payload_bytes.max(PAYLOAD_HEADER)];
    let mut events = Events::with_capacity(1024);
    let mut pick = 0x9E37_79B9_7F4A_7C15u64;
    loop {
        let now = Instant::now();
        if now >= drain_until {
            break;
        }
        // Sends that are due, batched per player, then one flush each.
        let mut next_due = drain_until;
        for slot in slots.iter_mut().filter(|s| !s.broken) {
            let mut queued = false;
            while slot.next_send <= now && slot.next_send < stop_sending {
                // Stamped when queued (flushed right after); epoll's millisecond timeouts make
                // that up to 1 ms after the schedule, which is not the server's doing.
                let queued_at = since_epoch_ns(now);
                let counted = (window_start..window_end).contains(&queued_at);
                slot.seq += 1;
                payload[0..8].copy_from_slice(&queued_at.to_le_bytes());
                let sender = slot.index_in_session as u32;
                payload[8..12].copy_from_slice(&sender.to_le_bytes());
                payload[12..16].copy_from_slice(&slot.seq.to_le_bytes());
                // xorshift: a cheap, repeatable choice of target.
                pick ^= pick << 13;
                pick ^= pick >> 7;
                pick ^= pick << 17;
                let to_one = m > 1 && (pick % 1000) as f64 / 1000.0 < spec.peer_share;
                let dest = if to_one {
                    let mut other = (pick as usize >> 10) % (m - 1);
                    if other >= slot.index_in_session {
                        other += 1;
                    }
                    Dest::One(other)
                } else {
                    Dest::AllOthers
                };
                slot.player.queue(dest, intent, &payload);
                if counted {
                    tally.sent += 1;
                    tally.sent_fanout += if to_one { 1 } else { (m - 1) as u64 };
                }
                live.sent.fetch_add(1, Ordering::Relaxed);
                slot.next_send += interval;
                queued = true;
            }
            if (queued || slot.player.unflushed()) && slot.player.flush().is_err() {
                slot.broken = true;
            }
            if slot.next_send < stop_sending {
                next_due = next_due.min(slot.next_send);
            }
        }
        let timeout = next_due
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(1));
        if poll.poll(&mut events, Some(timeout)).is_err() {
            continue;
        }
        let received_at = since_epoch_ns(Instant::now());
        for event in events.iter() {
            let Some(slot) = slots.get_mut(event.token().0) else {
                continue;
            };
            if slot.broken {
                continue;
            }
            let last_seen = &mut slot.last_seen;
            let t = &mut tally;
            let result = slot.player.receive(&mut |p: &[u8]| {
                if p.len() < PAYLOAD_HEADER {
                    return;
                }
                let queued_at = u64::from_le_bytes(p[0..8].try_into().expect("8 bytes"));
                let sender = u32::from_le_bytes(p[8..12].try_into().expect("4 bytes")) as usize;
                let seq = u32::from_le_bytes(p[12..16].try_into().expect("4 bytes"));
                if let Some(last) = last_seen.get_mut(sender) {
                    if seq < *last {
                        t.reordered += 1;
                    } else {
                        *last = seq;
                    }
                }
                if (window_start..window_end).contains(&queued_at) {
                    t.delivered += 1;
                    let us = received_at.saturating_sub(queued_at) / 1000;
                    let _ = t.hist.record(us.max(1));
                }
                live.delivered.fetch_add(1, Ordering::Relaxed);
            });
            if let Err(e) = result {
                eprintln!("player lost: {e}");
                slot.broken = true;
            }
        }
    }
    tally
}

/// Prints a progress line every second until `done` is set.
pub fn progress(
    label: String,
    live: Arc<Live>,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    std::thread::spawn(move || {
        let mut last = (0, 0);
        while !done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1000));
            let now = (
                live.sent.load(Ordering::Relaxed),
                live.delivered.load(Ordering::Relaxed),
            );
            let line = format!(
                "  {label}: {:>9} sent/s {:>10} delivered/s",
                now.0 - last.0,
                now.1 - last.1
            );
            if tty {
                eprint!("\r{line}   ");
            } else {
                eprintln!("{line}");
            }
            last = now;
        }
        if tty {
            eprint!("\r{:>90}\r", "");
        }
    })
}
