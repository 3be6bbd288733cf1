//! One client connection's state, and the table of connections with the delivery primitives.

use super::codec::{DELIVERY_HEADER, Intent};
use super::ids::{ConnId, PeerId, SessionId};
use super::outbuf::{DatagramQueue, StreamOut};
use slab::Slab;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How a connection reached the server (for the admin listener; the core treats all alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// Native frames on plain TCP.
    #[default]
    Tcp,
    /// Native frames in TLS.
    Tls,
    /// WebSocket on plain TCP.
    Ws,
    /// WebSocket in TLS (`wss://`).
    Wss,
}

impl Transport {
    /// Its name in metrics and the admin API.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Connected, no HELLO yet.
    AwaitingHello,
    /// A WebSocket connection that is not in a session: upgraded and waiting for its first
    /// message (which picks the protocol), or a sessionserver player between sessions.
    Lobby,
    /// A player whose connection dropped: its seat is held (no transport) until it reconnects
    /// or `sessions.reconnect_grace_ms` passes. Reliable output keeps queuing for the replay.
    Away {
        /// The session.
        session: SessionId,
        /// Its peer id there.
        peer: PeerId,
    },
    /// In a session as a player.
    Joined {
        /// The session.
        session: SessionId,
        /// Its peer id there.
        peer: PeerId,
    },
    /// Told to close; waits for the transport to flush and confirm.
    Closing,
}

/// A token bucket: `rate` messages per second on average, bursts up to `rate`.
///
/// Time the server's loop was stalled is not the client's fault: messages a client sent while
/// the server could not read arrive in one burst afterwards. The server's running total of
/// stalled time (`stall_credit`) lets the bucket grow past `rate` by what the client could have
/// sent during the stalls since it last took a token.
#[derive(Debug)]
pub(crate) struct RateLimit {
    tokens: f64,
    last: Instant,
    stall_seen: Duration,
}

impl RateLimit {
    fn new(now: Instant, rate: u32) -> RateLimit {
        RateLimit {
            tokens: rate as f64,
            last: now,
            stall_seen: Duration::ZERO,
        }
    }

    /// Takes one token; false when the sender is over its rate. `stall_credit` is the server's
    /// total stalled time so far ([`crate::core::Server::handle_loop_stall`]).
    pub(crate) fn allow(&mut self, now: Instant, rate: u32, stall_credit: Duration) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        let stalled = stall_credit.saturating_sub(self.stall_seen).as_secs_f64();
        self.stall_seen = stall_credit;
        let rate = rate as f64;
        let cap = rate * (1.0 + stalled);
        // Credit above `rate` from an earlier stall is kept until it is spent.
        self.tokens = (self.tokens + elapsed * rate).min(cap.max(self.tokens));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One connection.
#[derive(Debug)]
pub(crate) struct Conn {
    /// Unique for the process's life; timers carry it so a reused slot ignores stale timers.
    pub serial: u64,
    /// Remote TCP address.
    pub addr: SocketAddr,
    /// Life stage.
    pub phase: Phase,
    /// Last time any message arrived (TCP or UDP).
    pub last_rx: Instant,
    /// Bytes of a frame whose end has not arrived yet.
    pub rx_partial: Vec<u8>,
    /// Pending TCP output.
    pub tcp_out: StreamOut,
    /// Secret the client puts in UDP headers.
    pub udp_secret: u64,
    /// UDP address bound by UDP_BIND, if any.
    pub udp_addr: Option<SocketAddr>,
    /// Pending UDP output.
    pub udp_out: DatagramQueue,
    /// Sequence number for the next message this connection sends.
    pub next_seq: u32,
    /// Inbound rate limit.
    pub rate: RateLimit,
    /// The player's id from HELLO (empty = anonymous).
    pub player_id: String,
    /// Whether the connection speaks the sessionserver JSON profile: it gets text messages
    /// (`ConnExtras::json_out`) and never a native frame.
    pub json: bool,
    /// What only some connections need, made on first use ([`Conn::extras_mut`]).
    extras: Option<Box<ConnExtras>>,
    /// How it reached the server.
    pub transport: Transport,
    /// The secret that takes this player's seat back after a drop (WELCOME, HELLO mode 4).
    pub reconnect_secret: u64,
    /// The transport should send a WebSocket ping (a quiet sessionserver connection is asked
    /// for a pong before its idle timeout).
    pub ws_ping: bool,
    /// Coalesced sending: deliveries wait in its buffers for the session's flush timer instead
    /// of being flushed at the end of the turn (control frames still go at once).
    pub hold: bool,
    /// Whether the connection is in the dirty list already.
    queued: bool,
    /// Whether the connection is in the overflow list already.
    overflowed: bool,
}

/// What only some connections carry: WebSocket, sessionserver and vendor-profile state, and a
/// close reason. Boxed and made on first use, so a native connection's record stays small
/// (an idle native connection is about 100 bytes smaller; BENCHMARKS.md, "Idle memory").
#[derive(Debug, Default)]
pub(crate) struct ConnExtras {
    /// Pending sessionserver messages, each as `u32 length | UTF-8 JSON`.
    pub json_out: Vec<u8>,
    /// Why the connection was closed, for a WebSocket close frame (4000 + code).
    pub close_note: Option<(super::codes::Code, String)>,
    /// The token or ticket its WebSocket upgrade request carried (`?token=` or an
    /// `Authorization: Bearer` header), checked when its first message picks the protocol.
    pub upgrade_credential: Option<String>,
    /// The ticket that admitted a sessionserver connection (native ones are checked per HELLO).
    pub ticket: Option<Box<super::auth::Ticket>>,
    /// The vendor profile its WebSocket speaks (`crate::profiles`), if any: such clients have
    /// no keepalive of their own, so the server pings them as it does sessionserver ones.
    pub profile: Option<&'static str>,
}

impl Conn {
    /// Its extras, if any were ever made.
    pub(crate) fn extras(&self) -> Option<&ConnExtras> {
        self.extras.as_deref()
    }

    /// Its extras, if any were ever made, to change.
    pub(crate) fn extras_if_made(&mut self) -> Option<&mut ConnExtras> {
        self.extras.as_deref_mut()
    }

    /// Its extras, made now if this is their first use.
    pub(crate) fn extras_mut(&mut self) -> &mut ConnExtras {
        self.extras.get_or_insert_default()
    }

    /// The vendor profile its WebSocket speaks, if any.
    pub(crate) fn profile(&self) -> Option<&'static str> {
        self.extras().and_then(|x| x.profile)
    }

    /// Pending sessionserver messages (see [`ConnExtras::json_out`]).
    pub(crate) fn json_out(&self) -> &[u8] {
        self.extras().map_or(&[], |x| &x.json_out)
    }
}

/// All connections, plus which have output to flush and which overflowed.
#[derive(Debug)]
pub(crate) struct ConnTable {
    slab: Slab<Conn>,
    dirty: Vec<ConnId>,
    overflowed: Vec<ConnId>,
    next_serial: u64,
    /// Pending-output cap per connection.
    pub max_output: usize,
    /// UDP datagram budget.
    pub mtu: usize,
}

/// What happened to one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivered {
    /// Queued for TCP.
    Tcp,
    /// Queued for UDP.
    Udp,
    /// Unreliable and the receiver is backed up: dropped.
    Dropped,
    /// No such connection, or it is closing.
    Gone,
}

impl ConnTable {
    pub(crate) fn new(max_output: usize, mtu: usize) -> ConnTable {
        ConnTable {
            slab: Slab::new(),
            dirty: Vec::new(),
            overflowed: Vec::new(),
            next_serial: 1,
            max_output,
            mtu,
        }
    }

    /// Adds a connection; returns its id.
    pub(crate) fn insert(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        secret: u64,
        rate: u32,
    ) -> ConnId {
        let serial = self.next_serial;
        self.next_serial += 1;
        let key = self.slab.insert(Conn {
            serial,
            addr,
            phase: Phase::AwaitingHello,
            last_rx: now,
            rx_partial: Vec::new(),
            tcp_out: StreamOut::default(),
            udp_secret: secret,
            udp_addr: None,
            udp_out: DatagramQueue::default(),
            next_seq: 1,
            rate: RateLimit::new(now, rate),
            player_id: String::new(),
            json: false,
            extras: None,
            ws_ping: false,
            hold: false,
            transport: Transport::Tcp,
            reconnect_secret: 0,
            queued: false,
            overflowed: false,
        });
        ConnId(key as u32)
    }

    /// Frees a connection's slot.
    pub(crate) fn remove(&mut self, id: ConnId) -> Option<Conn> {
        self.slab.try_remove(id.0 as usize)
    }

    pub(crate) fn get(&self, id: ConnId) -> Option<&Conn> {
        self.slab.get(id.0 as usize)
    }

    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.slab.get_mut(id.0 as usize)
    }

    /// Number of connections, closing ones included.
    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    /// Every connection.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Conn> {
        self.slab.iter().map(|(_, c)| c)
    }

    /// Every connection id.
    pub(crate) fn ids(&self) -> Vec<ConnId> {
        self.slab.iter().map(|(k, _)| ConnId(k as u32)).collect()
    }

    fn mark_dirty(dirty: &mut Vec<ConnId>, conn: &mut Conn, id: ConnId) {
        if !conn.queued {
            conn.queued = true;
            dirty.push(id);
        }
    }

    /// While a turn queues output: past twice the cap, the client is dropped at once (a bound
    /// on memory). The cap itself is checked after each write ([`ConnTable::check_backlog`]):
    /// a burst that one write drains is no sign of a slow reader.
    fn check_overflow(&mut self, id: ConnId) {
        self.check_pending(id, self.max_output.saturating_mul(2));
    }

    /// After a write: output the client has not taken past the cap means it reads too slowly.
    pub(crate) fn check_backlog(&mut self, id: ConnId) {
        self.check_pending(id, self.max_output);
    }

    fn check_pending(&mut self, id: ConnId, max: usize) {
        if let Some(conn) = self.slab.get_mut(id.0 as usize)
            && conn.tcp_out.len() + conn.json_out().len() > max
            && !conn.overflowed
            && conn.phase != Phase::Closing
        {
            conn.overflowed = true;
            self.overflowed.push(id);
        }
    }

    /// Lists a connection for the next flush, with or without output (to send a WebSocket ping).
    pub(crate) fn wake(&mut self, id: ConnId) {
        if let Some(conn) = self.slab.get_mut(id.0 as usize) {
            Self::mark_dirty(&mut self.dirty, conn, id);
        }
    }

    /// Lists a connection for the next flush if it has output waiting (coalesced sending).
    pub(crate) fn wake_if_pending(&mut self, id: ConnId) {
        if let Some(conn) = self.slab.get_mut(id.0 as usize)
            && (conn.tcp_out.len() > 0 || !conn.udp_out.is_empty())
        {
            Self::mark_dirty(&mut self.dirty, conn, id);
        }
    }

    /// Appends a control frame (written by `encode`) to a connection's TCP output.
    pub(crate) fn send_tcp(&mut self, id: ConnId, encode: impl FnOnce(&mut Vec<u8>)) {
        let Some(conn) = self.slab.get_mut(id.0 as usize) else {
            return;
        };
        // A sessionserver player understands only its JSON messages.
        if conn.phase == Phase::Closing || conn.json {
            return;
        }
        encode(conn.tcp_out.buf_mut());
        Self::mark_dirty(&mut self.dirty, conn, id);
        self.check_overflow(id);
    }

    /// Appends a frame to a connection's TCP output even while it closes (the final CLOSE).
    pub(crate) fn send_final(&mut self, id: ConnId, encode: impl FnOnce(&mut Vec<u8>)) {
        if let Some(conn) = self.slab.get_mut(id.0 as usize)
            && !conn.json
        {
            encode(conn.tcp_out.buf_mut());
            Self::mark_dirty(&mut self.dirty, conn, id);
        }
    }

    /// Queues one sessionserver JSON message (a WebSocket text message) for a connection.
    pub(crate) fn send_text(&mut self, id: ConnId, text: &str) {
        let Some(conn) = self.slab.get_mut(id.0 as usize) else {
            return;
        };
        if conn.phase == Phase::Closing {
            return;
        }
        let json_out = &mut conn.extras_mut().json_out;
        json_out.extend_from_slice(&(text.len() as u32).to_le_bytes());
        json_out.extend_from_slice(text.as_bytes());
        Self::mark_dirty(&mut self.dirty, conn, id);
        self.check_overflow(id);
    }

    /// Appends a control frame to a connection's UDP output, to `to`.
    pub(crate) fn send_udp(&mut self, id: ConnId, encode: impl FnOnce(&mut Vec<u8>)) {
        let mtu = self.mtu;
        if let Some(conn) = self.slab.get_mut(id.0 as usize)
            && !conn.json
        {
            conn.udp_out.push_with(mtu, encode);
            Self::mark_dirty(&mut self.dirty, conn, id);
        }
    }

    /// The relay hot path: queues one DELIVERY (prebuilt header + the sender's payload bytes).
    /// Unreliable intents go over UDP when the receiver has bound it; copies, never allocates in
    /// steady state.
    pub(crate) fn deliver(
        &mut self,
        id: ConnId,
        header: &[u8; DELIVERY_HEADER],
        payload: &[u8],
        intent: Intent,
    ) -> Delivered {
        let (max, mtu) = (self.max_output, self.mtu);
        let Some(conn) = self.slab.get_mut(id.0 as usize) else {
            return Delivered::Gone;
        };
        let away = match conn.phase {
            Phase::Joined { .. } => false,
            Phase::Away { .. } => true,
            _ => return Delivered::Gone,
        };
        if conn.json {
            return Delivered::Gone;
        }
        let result = if intent.is_unreliable() && away {
            // Stale by the time the player is back: only reliable messages are replayed.
            Delivered::Dropped
        } else if intent.is_unreliable() {
            if conn.udp_addr.is_some() {
                if conn.udp_out.push(header, payload, mtu, max) {
                    Delivered::Udp
                } else {
                    Delivered::Dropped
                }
            } else if conn.tcp_out.len() + header.len() + payload.len() > max / 2 {
                // Unreliable traffic never pushes a receiver toward disconnection.
                Delivered::Dropped
            } else {
                let buf = conn.tcp_out.buf_mut();
                buf.extend_from_slice(header);
                buf.extend_from_slice(payload);
                Delivered::Tcp
            }
        } else {
            let buf = conn.tcp_out.buf_mut();
            buf.extend_from_slice(header);
            buf.extend_from_slice(payload);
            Delivered::Tcp
        };
        // Held output (coalesced sending) leaves early once it reaches a quarter of the cap: a
        // busy interval must not make a fast reader look slow, nor fill its UDP queue to drops.
        let held = conn.hold && conn.tcp_out.len() + conn.udp_out.len() < max / 4;
        if result != Delivered::Dropped && !held {
            Self::mark_dirty(&mut self.dirty, conn, id);
        }
        if result == Delivered::Tcp {
            self.check_overflow(id);
        }
        result
    }

    /// Moves the ids of connections with pending output into `into` (cleared first).
    pub(crate) fn take_dirty(&mut self, into: &mut Vec<ConnId>) {
        into.clear();
        std::mem::swap(&mut self.dirty, into);
        for id in into.iter() {
            if let Some(conn) = self.slab.get_mut(id.0 as usize) {
                conn.queued = false;
            }
        }
    }

    /// Marks a connection as having output again (after a partial flush).
    pub(crate) fn requeue(&mut self, id: ConnId) {
        if let Some(conn) = self.slab.get_mut(id.0 as usize) {
            Self::mark_dirty(&mut self.dirty, conn, id);
        }
    }

    /// Takes the next connection whose output passed the cap.
    pub(crate) fn pop_overflowed(&mut self) -> Option<ConnId> {
        self.overflowed.pop()
    }
}
