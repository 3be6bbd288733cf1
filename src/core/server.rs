//! The sans-IO server: connections, handshakes, sessions, timers and closing.
//!
//! Inputs come in through `handle_*` methods stamped with `now`; nothing here reads a clock or
//! touches a socket. After any input, the transport drains the outputs, in this order:
//! 1. [`Server::poll_event`] until `None` (connections to close once flushed),
//! 2. [`Server::take_dirty`] and, for each id, [`Server::tcp_pending`] / [`Server::tcp_written`]
//!    and [`Server::udp_pending`] / [`Server::udp_sent`],
//! 3. [`Server::next_timeout`] to know when to call [`Server::handle_timeout`].
//!
//! Routing of DATA, groups and pings is in `router.rs`; UDP datagrams in `udp.rs`.

use super::auth::{Auth, SessionSettings};
use super::codec::{self, ClientMsg, Hello, PROTOCOL_VERSION, PeerInfo, ServerMsg, Welcome};
use super::codes::Code;
use super::conn::{ConnTable, Phase};
use super::hooks::{Ctx, Hooks, Outbox, PropsScope, SessionStart};
use super::ids::{ConnId, Entropy, PeerId, SessionId};
use super::session::Session;
use super::stats::Stats;
use super::timer::{TimerKey, Timers};
use crate::config::Config;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Maps the monotonic `now` the core is given to wall-clock time for clients.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    /// A monotonic instant...
    pub at: Instant,
    /// ...and the wall clock at that instant, microseconds since the Unix epoch.
    pub unix_us: u64,
}

impl WallClock {
    /// Wall-clock microseconds at `now`.
    pub fn wall_us(&self, now: Instant) -> u64 {
        self.unix_us + now.saturating_duration_since(self.at).as_micros() as u64
    }
}

/// Something the transport must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Flush what the connection has pending, then close it and call [`Server::handle_closed`].
    Close(ConnId),
}

/// Which transport a frame arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// The connection's TCP stream.
    Tcp,
    /// A UDP datagram from this address.
    Udp(SocketAddr),
}

/// The sans-IO server. `H` is the session logic offered every packet (see `hooks.rs`).
pub struct Server<H: Hooks> {
    pub(super) config: Config,
    udp_port: u16,
    pub(super) hooks: H,
    pub(super) outbox: Outbox,
    pub(super) conns: ConnTable,
    pub(super) sessions: HashMap<SessionId, Session>,
    pub(super) session_names: HashMap<String, SessionId>,
    /// Each player identity's connection (see `admission.rs`).
    pub(super) players: HashMap<String, ConnId>,
    next_session: u64,
    pub(super) timers: Timers,
    /// Script timers fired per session in the current pass (kept to reuse its allocation).
    timers_fired: Vec<(SessionId, u32)>,
    events: VecDeque<Event>,
    pub(super) stats: Stats,
    pub(super) clock: WallClock,
    /// Session ids and secrets.
    pub(super) entropy: Entropy,
    shutting_down: bool,
    /// Draining: no new sessions; running ones go on until they end.
    draining: bool,
    /// Counts frame sync runs, so a stopped run's timers do nothing.
    pub(super) frame_epoch: u64,
    /// Total time the loop reported itself stalled; rate limits forgive it (see `RateLimit`).
    pub(super) stall_credit: Duration,
    /// How the most recently ended session ended, so a join that ended it can say why.
    pub(super) last_end: Option<(SessionId, Code, String)>,
    /// What happened to text-profile players, for that profile (`text.rs`).
    pub(super) text_events: Vec<super::text::TextEvent>,
    /// Who may join.
    pub(super) auth: Auth,
}

impl<H: Hooks> Server<H> {
    /// A server with no connections. `udp_port` is announced in WELCOME (0 = no UDP); `clock`
    /// maps `now` to wall-clock time and `entropy` gives session ids and secrets.
    pub fn new(
        config: Config,
        udp_port: u16,
        hooks: H,
        clock: WallClock,
        entropy: Entropy,
    ) -> Server<H> {
        let conns = ConnTable::new(config.limits.max_output_buffer_bytes, config.limits.udp_mtu);
        // The transport checks the key before it builds a server; a core built without that
        // check refuses everyone rather than admit anyone.
        let auth = Auth::from_config(&config).unwrap_or_else(Auth::Broken);
        Server {
            auth,
            config,
            udp_port,
            hooks,
            outbox: Outbox::default(),
            conns,
            sessions: HashMap::new(),
            session_names: HashMap::new(),
            players: HashMap::new(),
            next_session: 1,
            timers: Timers::default(),
            timers_fired: Vec::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            clock,
            entropy,
            shutting_down: false,
            draining: false,
            frame_epoch: 0,
            stall_credit: Duration::ZERO,
            last_end: None,
            text_events: Vec::new(),
        }
    }

    /// A secret or id from the entropy the shell gave (never 0: 0 means "none" on the wire).
    pub(super) fn random_secret(&mut self) -> u64 {
        loop {
            let n = self.entropy.next_u64();
            if n != 0 {
                return n;
            }
        }
    }

    // ----- getters -----

    /// The configuration it runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters since start.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Connections held, closing ones included.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Sessions alive.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Whether the process is healthy: asks the session logic (a script's `on_health_check`).
    pub fn health_check(&mut self) -> bool {
        self.hooks.healthy()
    }

    /// The session logic, to reload it or hand it a waker.
    pub fn hooks_mut(&mut self) -> &mut H {
        &mut self.hooks
    }

    /// The session logic, to inspect it.
    pub fn hooks(&self) -> &H {
        &self.hooks
    }

    /// Whether a session with this id is alive.
    pub fn has_session(&self, sid: SessionId) -> bool {
        self.sessions.contains_key(&sid)
    }

    /// Whether a connection is closing or gone (the transport stops reading it).
    pub fn is_closing(&self, id: ConnId) -> bool {
        self.conns.get(id).is_none_or(|c| c.phase == Phase::Closing)
    }

    /// Whether [`Server::begin_drain`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Starts a drain: no new sessions (creating one gets REJECT 22, "draining"); running
    /// sessions, and players joining them, go on until the sessions end. The transport stops
    /// the process once [`Server::session_count`] is 0. Whether this call started it (a drain
    /// already under way is not started again).
    pub fn begin_drain(&mut self) -> bool {
        if self.draining {
            return false;
        }
        self.draining = true;
        log::info!(
            "draining: no new sessions; {} running session(s) go on until they end",
            self.sessions.len()
        );
        true
    }

    /// Records how a connection reached the server (for metrics and the admin API).
    pub fn set_transport(&mut self, id: ConnId, transport: super::conn::Transport) {
        if let Some(conn) = self.conns.get_mut(id) {
            conn.transport = transport;
        }
    }

    /// Whether [`Server::begin_shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    // ----- inputs -----

    /// The loop was woken from another thread: session logic picks up what arrived (a reload,
    /// backend answers) and each session with work gets its callback.
    pub fn handle_wake(&mut self, now: Instant) {
        self.hooks.woken();
        for sid in self.hooks.woken_sessions() {
            if self.sessions.contains_key(&sid) {
                self.call_hook(now, sid, |h, ctx| h.session_woken(ctx));
            }
        }
        self.after_input(now);
    }

    /// The transport's loop could not read for `stalled` (a long loop turn). Clients' backlogs
    /// from that time arrive in a burst; rate limits give them that much extra allowance, so a
    /// stall is never charged to clients.
    pub fn handle_loop_stall(&mut self, stalled: Duration) {
        self.stall_credit += stalled;
    }

    /// A TCP connection was accepted. Past `max_connections` it is given a REJECT and closed.
    pub fn handle_accept(&mut self, now: Instant, addr: SocketAddr) -> ConnId {
        let secret = self.random_secret();
        let over = self.conns.len() >= self.config.server.max_connections;
        let id = self
            .conns
            .insert(now, addr, secret, self.config.limits.max_messages_per_sec);
        self.stats.connections_accepted += 1;
        if over || self.shutting_down {
            self.stats.connections_refused += 1;
            let (code, why) = if self.shutting_down {
                (Code::ShuttingDown, "server is shutting down".to_owned())
            } else {
                let max = self.config.server.max_connections;
                (
                    Code::ServerFull,
                    format!("server is full ({max} connections)"),
                )
            };
            self.close(now, id, code, &why);
            return id;
        }
        let serial = self.conns.get(id).map(|c| c.serial).unwrap_or_default();
        self.timers.schedule(
            now + self.config.handshake_timeout(),
            TimerKey::Handshake(id, serial),
        );
        id
    }

    /// Bytes arrived on a connection's TCP stream.
    pub fn handle_tcp_bytes(&mut self, now: Instant, id: ConnId, bytes: &[u8]) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if conn.phase == Phase::Closing {
            return;
        }
        conn.last_rx = now;
        self.stats.bytes_in += bytes.len() as u64;
        let mut partial = std::mem::take(&mut conn.rx_partial);
        if partial.is_empty() {
            // Common case: parse frames straight from the transport's read buffer.
            let used = self.handle_stream(now, id, bytes);
            partial.extend_from_slice(&bytes[used..]);
        } else {
            partial.extend_from_slice(bytes);
            let used = self.handle_stream(now, id, &partial);
            partial.drain(..used);
        }
        if let Some(conn) = self.conns.get_mut(id)
            && conn.phase != Phase::Closing
        {
            conn.rx_partial = partial;
        }
        self.after_input(now);
    }

    /// Decodes and handles every complete frame in `buf`; returns the bytes consumed.
    fn handle_stream(&mut self, now: Instant, id: ConnId, buf: &[u8]) -> usize {
        let max = self.config.limits.max_frame_bytes;
        let mut used = 0;
        loop {
            match codec::split_frame(&buf[used..], max) {
                Ok(Some((body, n))) => {
                    used += n;
                    self.handle_frame(now, id, body, Via::Tcp);
                    if self.conns.get(id).is_none_or(|c| c.phase == Phase::Closing) {
                        return buf.len();
                    }
                }
                Ok(None) => return used,
                Err(e) => {
                    self.stats.protocol_errors += 1;
                    self.close(now, id, e.code(), &e.to_string());
                    return buf.len();
                }
            }
        }
    }

    /// One frame from a client, over TCP or (already authenticated) UDP.
    pub(crate) fn handle_frame(&mut self, now: Instant, id: ConnId, body: &[u8], via: Via) {
        let msg = match ClientMsg::decode(body) {
            Ok(msg) => msg,
            Err(e) => {
                if via == Via::Tcp {
                    self.stats.protocol_errors += 1;
                    self.close(now, id, e.code(), &e.to_string());
                } else {
                    self.stats.udp_dropped_malformed += 1;
                }
                return;
            }
        };
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if conn.json && conn.phase != Phase::Closing {
            self.stats.protocol_errors += 1;
            self.close(
                now,
                id,
                Code::UnexpectedMessage,
                "this connection speaks the sessionserver JSON protocol: send text messages",
            );
            return;
        }
        let (session, peer) = match (conn.phase, &msg) {
            // Away: no transport; anything still arriving for it is stale.
            (Phase::Closing | Phase::Away { .. }, _) => return,
            (Phase::AwaitingHello | Phase::Lobby, ClientMsg::Hello(hello)) if via == Via::Tcp => {
                self.handle_hello(now, id, hello);
                return;
            }
            (Phase::AwaitingHello | Phase::Lobby, _) => {
                self.stats.protocol_errors += 1;
                self.close(
                    now,
                    id,
                    Code::UnexpectedMessage,
                    "the first message must be HELLO",
                );
                return;
            }
            (Phase::Joined { .. }, ClientMsg::Hello(_)) => {
                self.stats.protocol_errors += 1;
                self.close(
                    now,
                    id,
                    Code::UnexpectedMessage,
                    "HELLO was already accepted",
                );
                return;
            }
            (Phase::Joined { session, peer }, _) => (session, peer),
        };
        // Every message a player sends counts: PING, GROUP_* and props (each broadcast to the
        // session) could flood as well as DATA.
        if !conn.rate.allow(
            now,
            self.config.limits.max_messages_per_sec,
            self.stall_credit,
        ) {
            self.stats.rate_limited += 1;
            if via == Via::Tcp {
                let rate = self.config.limits.max_messages_per_sec;
                self.close(
                    now,
                    id,
                    Code::RateLimited,
                    &format!("more than {rate} messages per second"),
                );
            }
            return;
        }
        match msg {
            ClientMsg::Hello(_) => {}
            ClientMsg::Data(data) => {
                if let Via::Udp(_) = via
                    && !data.intent.is_unreliable()
                {
                    self.stats.udp_dropped_invalid += 1;
                    return;
                }
                self.route_data(now, id, session, peer, &data);
            }
            ClientMsg::GroupJoin(g) => self.group_request(now, id, session, peer, g, true),
            ClientMsg::GroupLeave(g) => self.group_request(now, id, session, peer, g, false),
            ClientMsg::GroupQuery(g) => self.group_query(id, session, g),
            ClientMsg::Ping { client_time } => self.pong(now, id, client_time, via),
            ClientMsg::Leave => self.close(now, id, Code::ClientLeft, "left"),
            ClientMsg::SetPlayerProps(props) => {
                self.props_request(now, id, session, peer, PropsScope::Player, props)
            }
            ClientMsg::SetSessionProps(props) => {
                self.props_request(now, id, session, peer, PropsScope::Session, props)
            }
            ClientMsg::FrameSync { on, rate } => {
                self.frame_sync_request(now, id, session, peer, on, rate)
            }
            ClientMsg::FrameInput(input) => self.frame_input(id, session, peer, input),
            ClientMsg::FrameRequest { from, count } => self.frame_request(id, session, from, count),
            ClientMsg::UdpBind => {
                // Binding is handled when the datagram is authenticated (udp.rs); over TCP it
                // means nothing.
                if via == Via::Tcp {
                    self.stats.protocol_errors += 1;
                    self.close(now, id, Code::UnexpectedMessage, "UDP_BIND is UDP-only");
                }
            }
        }
    }

    fn handle_hello(&mut self, now: Instant, id: ConnId, hello: &Hello<'_>) {
        match self.admit(now, id, hello) {
            Ok(()) => self.stats.handshakes_ok += 1,
            Err((code, why)) => {
                self.stats.handshakes_rejected += 1;
                log::debug!("{id}: HELLO rejected: {why}");
                self.close(now, id, code, &why);
            }
        }
    }

    pub(crate) fn create_session(
        &mut self,
        now: Instant,
        name: &str,
        params: Option<&serde_json::Value>,
        settings: Option<&SessionSettings>,
        listed: bool,
    ) -> Result<SessionId, (Code, String)> {
        if self.draining {
            return Err((
                Code::ShuttingDown,
                "the server is draining for a restart: it takes no new sessions; try another \
                 server"
                    .into(),
            ));
        }
        let max = self.config.server.max_sessions;
        if self.sessions.len() >= max {
            return Err((
                Code::TooManySessions,
                format!("the server already holds {max} sessions"),
            ));
        }
        let sid = self.new_session_id();
        let mut session = Session::new(name.to_owned());
        session.created = Some(now);
        session.max_players = self.config.sessions.max_players;
        session.linger = self.config.empty_session_linger();
        session.params = params.cloned();
        session.listed = listed;
        if let Some(settings) = settings {
            self.check_settings(settings)?;
            if let Some(max) = settings.max_players {
                session.max_players = max;
            }
            if let Some(ms) = settings.linger_ms {
                session.linger = Duration::from_millis(ms);
            }
        }
        let interval = settings
            .and_then(|s| s.send_interval_ms)
            .unwrap_or(self.config.sessions.send_interval_ms);
        self.sessions.insert(sid, session);
        self.set_send_interval(now, sid, Duration::from_millis(interval));
        if !name.is_empty() {
            self.session_names.insert(name.to_owned(), sid);
        }
        self.stats.sessions_created += 1;
        if name.is_empty() {
            log::info!("{sid}: created");
        } else {
            log::info!("{sid}: created as {name:?}");
        }
        let start = SessionStart {
            name,
            params,
            max_players: self.sessions.get(&sid).map_or(0, |s| s.max_players),
            linger_ms: self
                .sessions
                .get(&sid)
                .map_or(0, |s| s.linger.as_millis() as u64),
            send_interval_ms: interval,
            limits: (
                self.config.sessions.max_players,
                self.config.sessions.empty_session_linger_ms,
            ),
        };
        if let Err(why) = self.call_hook(now, sid, |h, ctx| h.session_started(ctx, &start)) {
            log::warn!("{sid}: session logic failed to start: {why}");
            self.end_session(now, sid, Code::ScriptFailed);
            return Err((Code::ScriptFailed, why));
        }
        if !self.sessions.contains_key(&sid) {
            return Err(self.ended_why(sid));
        }
        Ok(sid)
    }

    /// Whether per-session settings are within the server-wide limits.
    pub(crate) fn check_settings(&self, s: &SessionSettings) -> Result<(), (Code, String)> {
        let max = self.config.sessions.max_players;
        if let Some(n) = s.max_players
            && !(1..=max).contains(&n)
        {
            return Err((
                Code::InvalidTicket,
                format!("settings.max_players {n} is not within 1 to {max} (sessions.max_players)"),
            ));
        }
        let most = crate::config::MAX_SEND_INTERVAL_MS;
        if let Some(ms) = s.send_interval_ms
            && ms > most
        {
            return Err((
                Code::InvalidTicket,
                format!("settings.send_interval_ms {ms} is over {most}"),
            ));
        }
        let linger = self.config.sessions.empty_session_linger_ms;
        if let Some(ms) = s.linger_ms
            && ms > linger
        {
            return Err((
                Code::InvalidTicket,
                format!(
                    "settings.linger_ms {ms} is over {linger} (sessions.empty_session_linger_ms)"
                ),
            ));
        }
        Ok(())
    }

    /// The next session id: 1, 2, 3... with `sessions.sequential_ids`, otherwise a random id
    /// below 2^53 (exact in a JavaScript number) that no live session has.
    fn new_session_id(&mut self) -> SessionId {
        if self.config.sessions.sequential_ids {
            let sid = SessionId(self.next_session);
            self.next_session += 1;
            return sid;
        }
        loop {
            let sid = SessionId(self.random_secret() >> 11);
            if sid.0 != 0 && !self.sessions.contains_key(&sid) {
                return sid;
            }
        }
    }

    /// Why `sid` (which has just ended) ended: its code and reason, for the joiner it refuses.
    pub(super) fn ended_why(&self, sid: SessionId) -> (Code, String) {
        match &self.last_end {
            Some((ended, code, reason)) if *ended == sid => (*code, reason.clone()),
            _ => (Code::SessionEnded, "the session ended".into()),
        }
    }

    /// Ends a session: every member is closed with `code`.
    pub(crate) fn end_session(&mut self, now: Instant, sid: SessionId, code: Code) {
        self.end_session_with(now, sid, code, "the session ended");
    }

    /// Ends a session with a reason its players are shown.
    pub(crate) fn end_session_with(
        &mut self,
        now: Instant,
        sid: SessionId,
        code: Code,
        reason: &str,
    ) {
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        // Its players' departures must not start a linger or end it a second time.
        session.ending = true;
        self.last_end = Some((sid, code, reason.to_owned()));
        let conns: Vec<ConnId> = session.members().iter().map(|m| m.conn).collect();
        for conn in conns {
            if self.conns.get(conn).is_some_and(|c| c.json) && code != Code::ShuttingDown {
                self.evict_text(now, conn);
            } else {
                self.close(now, conn, code, reason);
            }
        }
        if let Some(session) = self.sessions.remove(&sid) {
            if !session.name.is_empty() {
                self.session_names.remove(&session.name);
            }
            if session.text {
                self.text_events
                    .push(super::text::TextEvent::Removed { session: sid });
            }
            self.stats.sessions_ended += 1;
            log::info!("{sid}: ended");
            self.call_hook(now, sid, |h, ctx| h.session_ended(ctx));
        }
    }

    /// Closes a connection with a reason: REJECT before WELCOME, CLOSE after. Its player leaves
    /// the session at once; the transport is told to flush and close.
    pub(crate) fn close(&mut self, now: Instant, id: ConnId, code: Code, message: &str) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        let was = std::mem::replace(&mut conn.phase, Phase::Closing);
        let player_id = std::mem::take(&mut conn.player_id);
        // A WebSocket close frame repeats it (status 4000 + code); TCP ignores it.
        conn.extras_mut().close_note = Some((code, message.to_owned()));
        let frame = match was {
            Phase::Closing => return,
            Phase::AwaitingHello | Phase::Lobby => ServerMsg::Reject {
                code: code.as_u16(),
                message,
            },
            Phase::Joined { .. } | Phase::Away { .. } => ServerMsg::Close {
                code: code.as_u16(),
                message,
            },
        };
        let by_code = match was {
            Phase::Joined { .. } | Phase::Away { .. } => &mut self.stats.closes,
            _ => &mut self.stats.rejects,
        };
        *by_code.entry(code.as_u16()).or_default() += 1;
        self.conns.send_final(id, |buf| frame.encode(buf));
        self.events.push_back(Event::Close(id));
        if !player_id.is_empty() && self.players.get(&player_id) == Some(&id) {
            self.players.remove(&player_id);
        }
        if let Phase::Joined { session, peer } | Phase::Away { session, peer } = was {
            log::info!("{session}: {peer} leaves: {code:?} ({message})");
            self.leave_session(now, session, peer, code);
        }
    }

    /// Removes a player from its session; tells the others and updates its groups.
    pub(crate) fn leave_session(
        &mut self,
        now: Instant,
        sid: SessionId,
        peer: PeerId,
        reason: Code,
    ) {
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        let Some((_, groups)) = session.remove_member(peer) else {
            return;
        };
        let json = session.text;
        if json {
            self.text_events.push(super::text::TextEvent::Left {
                session: sid,
                peer,
                ending: session.ending,
            });
        }
        let Some(session) = self.sessions.get(&sid) else {
            return;
        };
        if !self.shutting_down {
            let left = ServerMsg::PlayerLeft {
                peer: peer.0,
                reason: reason.as_u16(),
            };
            // (Sessionserver players are never sent native frames: `send_tcp` skips them.)
            for m in session.members() {
                self.conns.send_tcp(m.conn, |buf| left.encode(buf));
            }
            for g in groups {
                self.group_changed(now, sid, g, None);
            }
        }
        self.call_hook(now, sid, |h, ctx| h.player_left(ctx, peer, reason));
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        if session.is_empty() && !session.ending {
            // A sessionserver session with nobody left is discarded, as the reference does.
            if session.linger.is_zero() || self.shutting_down || json {
                self.end_session(now, sid, Code::SessionEnded);
            } else {
                self.start_linger(now, sid);
            }
        }
    }

    /// Starts an empty session's linger: it ends after its linger time unless a player joins
    /// first (a join makes this timer stale).
    pub(crate) fn start_linger(&mut self, now: Instant, sid: SessionId) {
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        if !session.is_empty() || session.ending {
            return;
        }
        session.empty_epoch += 1;
        self.timers.schedule(
            now + session.linger,
            TimerKey::Linger(sid, session.empty_epoch),
        );
    }

    /// Sets a session's send interval (coalesced sending): its players' deliveries are held
    /// and flushed together once per `interval`; zero flushes them every loop turn. Control
    /// frames (presence, errors, PONG) are never held, and flush what is held with them.
    pub(crate) fn set_send_interval(&mut self, now: Instant, sid: SessionId, interval: Duration) {
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        // The same interval again changes nothing (a script may set it in every callback).
        if session.send_interval == interval && session.flush_epoch > 0 {
            return;
        }
        session.send_interval = interval;
        session.flush_epoch += 1;
        let epoch = session.flush_epoch;
        let hold = !interval.is_zero();
        for m in session.members() {
            if let Some(conn) = self.conns.get_mut(m.conn) {
                conn.hold = hold;
            }
            // What was held so far leaves now.
            self.conns.wake(m.conn);
        }
        if hold {
            self.timers
                .schedule(now + interval, TimerKey::Flush(sid, epoch));
        }
    }

    /// A session's flush timer: every player's held output is listed for the next flush.
    fn flush_session(&mut self, now: Instant, sid: SessionId, epoch: u64) {
        let Some(session) = self.sessions.get(&sid) else {
            return;
        };
        if session.flush_epoch != epoch || session.send_interval.is_zero() {
            return;
        }
        let next = now + session.send_interval;
        for m in session.members() {
            self.conns.wake_if_pending(m.conn);
        }
        self.timers.schedule(next, TimerKey::Flush(sid, epoch));
    }

    /// The live session with this name, if any.
    pub(crate) fn session_by_name(&self, name: &str) -> Option<SessionId> {
        self.session_names.get(name).copied()
    }

    /// The transport saw input it cannot accept (a WebSocket text message on the native
    /// protocol, an oversized WebSocket message): the connection closes with `code`.
    pub fn handle_protocol_error(&mut self, now: Instant, id: ConnId, code: Code, message: &str) {
        self.stats.protocol_errors += 1;
        self.close(now, id, code, message);
        self.after_input(now);
    }

    /// A profile took `count` messages from the connection that mean nothing to the core (a
    /// vendor client's keepalive or an op code the server ignores): they count against
    /// `max_messages_per_sec` like any message, so a flood of them closes the sender (code 28).
    pub fn handle_ignored(&mut self, now: Instant, id: ConnId, count: usize) {
        let rate = self.config.limits.max_messages_per_sec;
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if conn.phase == Phase::Closing {
            return;
        }
        conn.last_rx = now;
        for _ in 0..count {
            if !conn.rate.allow(now, rate, self.stall_credit) {
                self.stats.rate_limited += 1;
                self.close(
                    now,
                    id,
                    Code::RateLimited,
                    &format!("more than {rate} messages per second"),
                );
                self.after_input(now);
                return;
            }
        }
    }

    /// The transport lost the connection (EOF, reset, error). A player keeps its seat for
    /// `sessions.reconnect_grace_ms` if that is set.
    pub fn handle_disconnect(&mut self, now: Instant, id: ConnId) {
        match self.conns.get(id).map(|c| c.phase) {
            // The seat is held already: the old transport's last news changes nothing.
            Some(Phase::Away { .. }) => {}
            Some(Phase::Joined { .. }) if self.park(now, id) => {}
            _ => self.close(now, id, Code::ConnectionLost, "connection lost"),
        }
        self.after_input(now);
    }

    /// Holds a dropped player's seat: the connection stays (without a transport) so its reliable
    /// output keeps queuing for the replay; the others get PLAYER_AWAY; the script
    /// `on_player_disconnect`. Returns false where seats are not held.
    fn park(&mut self, now: Instant, id: ConnId) -> bool {
        let grace = Duration::from_millis(self.config.sessions.reconnect_grace_ms);
        if grace.is_zero() || self.shutting_down {
            return false;
        }
        let Some(conn) = self.conns.get_mut(id) else {
            return false;
        };
        let Phase::Joined { session, peer } = conn.phase else {
            return false;
        };
        if conn.json || self.sessions.get(&session).is_none_or(|s| s.ending) {
            return false;
        }
        conn.phase = Phase::Away { session, peer };
        conn.udp_addr = None;
        conn.udp_out.consume(usize::MAX);
        conn.rx_partial.clear();
        let serial = conn.serial;
        // The transport drops its socket; `handle_closed` keeps the slot while it is away.
        self.events.push_back(Event::Close(id));
        self.timers
            .schedule(now + grace, TimerKey::Away(id, serial));
        log::info!(
            "{session}: {peer} dropped; its seat is held for {} ms",
            grace.as_millis()
        );
        let away = ServerMsg::PlayerAway { peer: peer.0 };
        if let Some(s) = self.sessions.get(&session) {
            for m in s.members().iter().filter(|m| m.peer != peer) {
                self.conns.send_tcp(m.conn, |buf| away.encode(buf));
            }
        }
        self.call_hook(now, session, |h, ctx| h.player_disconnected(ctx, peer));
        true
    }

    /// The WELCOME frame for `peer` of `sid` on connection `id`: the session as it is now, the
    /// other players, and the secrets for UDP and for a reconnect.
    pub(super) fn welcome_frame(
        &self,
        now: Instant,
        id: ConnId,
        sid: SessionId,
        peer: PeerId,
        udp_secret: u64,
        reconnect_secret: u64,
    ) -> Vec<u8> {
        let mut frame = Vec::new();
        let Some(session) = self.sessions.get(&sid) else {
            return frame;
        };
        ServerMsg::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            peer: peer.0,
            session_id: sid.0,
            udp_conn_id: id.0,
            udp_secret,
            udp_port: self.udp_port,
            server_time_us: self.clock.wall_us(now),
            idle_timeout_ms: self.config.server.idle_timeout_ms as u32,
            max_frame_bytes: self.config.limits.max_frame_bytes as u32,
            session_name: &session.name,
            peers: session
                .members()
                .iter()
                .filter(|m| m.peer != peer)
                .map(|m| PeerInfo {
                    peer: m.peer.0,
                    player_id: &m.player_id,
                    name: &m.name,
                })
                .collect(),
            reconnect_secret,
        })
        .encode(&mut frame);
        frame
    }

    /// HELLO mode 4: takes back a held seat (or one whose old connection the server has not
    /// yet seen drop) with the reconnect secret from WELCOME. The player keeps its peer id,
    /// groups and props; the reliable messages queued for it since are replayed after WELCOME.
    pub(super) fn reconnect(
        &mut self,
        now: Instant,
        id: ConnId,
        sid: SessionId,
        payload: &[u8],
        ticket: Option<&super::auth::Ticket>,
    ) -> Result<(), (Code, String)> {
        let refused = || {
            (
                Code::ReconnectRefused,
                "no seat is held for that peer with that secret (it expired, the player left, \
                 or the server restarted): join again"
                    .to_owned(),
            )
        };
        let Ok(seat) = <[u8; 10]>::try_from(payload) else {
            return Err((
                Code::BadHello,
                "join mode 4's payload is the peer id (u16) and the reconnect secret (u64)".into(),
            ));
        };
        let peer = PeerId(u16::from_le_bytes([seat[0], seat[1]]));
        let secret = u64::from_le_bytes(seat[2..10].try_into().expect("8 bytes"));
        let session = match self.sessions.get(&sid) {
            Some(s) if !s.text => s,
            _ => {
                return Err((
                    Code::SessionNotFound,
                    format!("no session with id {}", sid.0),
                ));
            }
        };
        if let Some(t) = ticket
            && !t.admits(sid.0, &session.name)
        {
            return Err(t.wrong_session());
        }
        let member = session
            .members()
            .iter()
            .find(|m| m.peer == peer)
            .ok_or_else(refused)?;
        let old = member.conn;
        let player_id = member.player_id.clone();
        if let Some(t) = ticket
            && t.player_id != player_id
        {
            return Err((
                Code::InvalidTicket,
                "the ticket is for another player than this seat's".into(),
            ));
        }
        let old_conn = self.conns.get_mut(old).ok_or_else(refused)?;
        let held = matches!(old_conn.phase, Phase::Away { session, peer: p } if session == sid && p == peer)
            || matches!(old_conn.phase, Phase::Joined { session, peer: p } if session == sid && p == peer);
        let matches = old_conn.reconnect_secret != 0
            && (old_conn.reconnect_secret ^ secret) == 0
            && old != id;
        if !held || !matches {
            return Err(refused());
        }
        // The old connection (held, or not yet seen to drop) gives up its slot and its queue.
        let missed = old_conn.tcp_out.take_whole_frames();
        old_conn.phase = Phase::Closing;
        old_conn.extras_mut().close_note = Some((Code::Replaced, "the player reconnected".into()));
        self.events.push_back(Event::Close(old));
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.rebind(peer, id);
        }
        let fresh = self.random_secret();
        let hold = self
            .sessions
            .get(&sid)
            .is_some_and(|s| !s.send_interval.is_zero());
        let conn = self
            .conns
            .get_mut(id)
            .expect("caller checked the connection");
        conn.phase = Phase::Joined { session: sid, peer };
        conn.player_id = player_id.clone();
        conn.reconnect_secret = fresh;
        conn.hold = hold;
        let serial = conn.serial;
        let udp_secret = conn.udp_secret;
        if !player_id.is_empty() {
            self.players.insert(player_id, id);
        }
        let welcome = self.welcome_frame(now, id, sid, peer, udp_secret, fresh);
        self.conns.send_tcp(id, |buf| {
            buf.extend_from_slice(&welcome);
            buf.extend_from_slice(&missed);
        });
        let Some(session) = self.sessions.get(&sid) else {
            return Err((Code::SessionEnded, "the session ended".into()));
        };
        let back = ServerMsg::PlayerBack { peer: peer.0 };
        for m in session.members().iter().filter(|m| m.peer != peer) {
            self.conns.send_tcp(m.conn, |buf| back.encode(buf));
        }
        log::info!(
            "{sid}: {peer} reconnected ({} bytes of missed messages replayed)",
            missed.len()
        );
        self.timers
            .schedule(now + self.config.idle_timeout(), TimerKey::Idle(id, serial));
        self.call_hook(now, sid, |h, ctx| h.player_reconnected(ctx, peer));
        Ok(())
    }

    /// The transport closed the connection after [`Event::Close`]: frees its slot.
    pub fn handle_closed(&mut self, id: ConnId) {
        if self
            .conns
            .get(id)
            .is_some_and(|c| c.phase == Phase::Closing)
        {
            self.conns.remove(id);
        }
    }

    /// Acts on every deadline that is due at `now` and was scheduled before this call: what is
    /// scheduled while deadlines fire (a timer that re-arms itself, even with no delay) waits
    /// for the next call, so one call is one bounded pass and the loop serves sockets between
    /// passes. One session fires at most `SCRIPT_TIMERS_PER_PASS` (256) script timers per pass; the
    /// rest wait for the next.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.timers.begin_pass();
        let mut fired: Vec<(SessionId, u32)> = std::mem::take(&mut self.timers_fired);
        while let Some(key) = self.timers.pop_due(now) {
            match key {
                TimerKey::Handshake(id, serial) => {
                    // A WebSocket connection (upgraded or not) that has not sent its first
                    // message (HELLO or a sessionserver command) is still in its handshake.
                    if self.conns.get(id).is_some_and(|c| {
                        c.serial == serial
                            && (c.phase == Phase::AwaitingHello
                                || (c.phase == Phase::Lobby && !c.json))
                    }) {
                        let ms = self.config.server.handshake_timeout_ms;
                        self.close(
                            now,
                            id,
                            Code::HandshakeTimeout,
                            &format!("no HELLO within {ms} ms"),
                        );
                    }
                }
                TimerKey::Idle(id, serial) => self.idle_check(now, id, serial),
                TimerKey::Frame(sid, epoch) => self.frame_due(now, sid, epoch),
                TimerKey::Away(id, serial) => {
                    if self.conns.get(id).is_some_and(|c| {
                        c.serial == serial && matches!(c.phase, Phase::Away { .. })
                    }) {
                        let ms = self.config.sessions.reconnect_grace_ms;
                        self.close(
                            now,
                            id,
                            Code::ConnectionLost,
                            &format!("did not come back within {ms} ms"),
                        );
                    }
                }
                TimerKey::Script(sid, timer) => {
                    if !self.sessions.contains_key(&sid) {
                        continue;
                    }
                    let count = match fired.iter_mut().find(|(s, _)| *s == sid) {
                        Some((_, n)) => n,
                        None => {
                            fired.push((sid, 0));
                            &mut fired.last_mut().expect("just pushed").1
                        }
                    };
                    if *count >= SCRIPT_TIMERS_PER_PASS {
                        // Still due: the next pass takes it.
                        self.timers.schedule(now, key);
                        continue;
                    }
                    *count += 1;
                    self.call_hook(now, sid, |h, ctx| h.on_timer(ctx, timer));
                }
                TimerKey::Flush(sid, epoch) => self.flush_session(now, sid, epoch),
                TimerKey::Linger(sid, epoch) => {
                    if self
                        .sessions
                        .get(&sid)
                        .is_some_and(|s| s.is_empty() && s.empty_epoch == epoch)
                    {
                        self.end_session(now, sid, Code::SessionEnded);
                    }
                }
            }
        }
        fired.clear();
        self.timers_fired = fired;
        self.timers.end_pass();
        self.after_input(now);
    }

    /// Starts watching a connection for silence. One timer per connection: the check
    /// reschedules itself (at the ping time, then the deadline, for a sessionserver connection).
    pub(crate) fn schedule_idle(&mut self, now: Instant, id: ConnId, serial: u64) {
        let pinged = self
            .conns
            .get(id)
            .is_some_and(|c| c.json || c.profile().is_some());
        let first = if pinged {
            self.config.idle_timeout() / 3
        } else {
            self.config.idle_timeout()
        };
        self.timers
            .schedule(now + first, TimerKey::Idle(id, serial));
    }

    /// A connection's idle check: closed after `idle_timeout_ms` with nothing received. A
    /// sessionserver connection (whose protocol has no ping of its own) is first sent a
    /// WebSocket ping after a third of that; the pong every WebSocket client sends by itself
    /// keeps it open.
    fn idle_check(&mut self, now: Instant, id: ConnId, serial: u64) {
        let idle = self.config.idle_timeout();
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        let watched = matches!(conn.phase, Phase::Joined { .. })
            || (conn.json && conn.phase != Phase::Closing);
        if conn.serial != serial || !watched {
            return;
        }
        let due = conn.last_rx + idle;
        if due <= now {
            let ms = self.config.server.idle_timeout_ms;
            self.close(
                now,
                id,
                Code::IdleTimeout,
                &format!("nothing received for {ms} ms"),
            );
            return;
        }
        let ping_at = conn.last_rx + idle / 3;
        let pinged = conn.json || conn.profile().is_some();
        if pinged && now >= ping_at {
            conn.ws_ping = true;
            self.conns.wake(id);
            self.timers.schedule(due, TimerKey::Idle(id, serial));
        } else if pinged {
            self.timers.schedule(ping_at, TimerKey::Idle(id, serial));
        } else {
            self.timers.schedule(due, TimerKey::Idle(id, serial));
        }
    }

    /// A WebSocket ping arrived: the connection is alive, and its pong (queued by the WebSocket
    /// layer) leaves with this turn's flush.
    pub fn handle_ws_ping(&mut self, now: Instant, id: ConnId) {
        self.handle_ws_pong(now, id);
        self.conns.wake(id);
    }

    /// A WebSocket pong arrived: the client is alive.
    pub fn handle_ws_pong(&mut self, now: Instant, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(id) {
            conn.last_rx = now;
        }
    }

    /// The connection's WebSocket speaks a vendor profile (`crate::profiles`): shown by the
    /// admin API, and kept alive with WebSocket pings (those clients send no ping of their own).
    pub fn set_profile(&mut self, id: ConnId, name: &'static str) {
        if let Some(conn) = self.conns.get_mut(id) {
            conn.extras_mut().profile = Some(name);
        }
    }

    /// Whether the transport should send the connection a WebSocket ping now (asked once).
    pub fn take_ws_ping(&mut self, id: ConnId) -> bool {
        self.conns
            .get_mut(id)
            .is_some_and(|c| std::mem::take(&mut c.ws_ping))
    }

    /// Stops the server: every connection gets CLOSE(SHUTTING_DOWN), every session ends, and new
    /// connections are refused.
    pub fn begin_shutdown(&mut self, now: Instant) {
        self.shutting_down = true;
        self.hooks.server_stopping();
        for id in self.conns.ids() {
            self.close(now, id, Code::ShuttingDown, "server is shutting down");
        }
        let sids: Vec<SessionId> = self.sessions.keys().copied().collect();
        for sid in sids {
            self.end_session(now, sid, Code::ShuttingDown);
        }
    }

    /// Work after any input: close connections whose output passed the cap.
    pub(crate) fn after_input(&mut self, now: Instant) {
        while let Some(id) = self.conns.pop_overflowed() {
            self.stats.output_overflows += 1;
            let max = self.config.limits.max_output_buffer_bytes;
            self.close(
                now,
                id,
                Code::OutputOverflow,
                &format!("client read too slowly: over {max} bytes pending"),
            );
        }
    }

    // ----- outputs -----

    /// The next thing the transport must do.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Server::handle_timeout`] must next be called.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Moves the ids of connections with pending output into `into`.
    pub fn take_dirty(&mut self, into: &mut Vec<ConnId>) {
        self.conns.take_dirty(into);
    }

    /// Bytes waiting to be written to a connection's TCP stream.
    pub fn tcp_pending(&self, id: ConnId) -> &[u8] {
        match self.conns.get(id) {
            // Kept for the replay when the player is back, not for the old socket.
            Some(c) if matches!(c.phase, Phase::Away { .. }) => &[],
            Some(c) => c.tcp_out.pending(),
            None => &[],
        }
    }

    /// The transport wrote `n` bytes of [`Server::tcp_pending`]. If some remain, the connection
    /// stays listed for the next [`Server::take_dirty`].
    /// A backlog still past `max_output_buffer_bytes` after the write marks a slow reader, closed
    /// on the next input or timeout.
    pub fn tcp_written(&mut self, id: ConnId, n: usize) {
        self.stats.bytes_out += n as u64;
        if let Some(conn) = self.conns.get_mut(id) {
            conn.tcp_out.consume(n);
            if conn.tcp_out.len() > 0 {
                self.conns.requeue(id);
                self.conns.check_backlog(id);
            }
        }
    }

    /// The UDP address and datagrams waiting for a connection, if any.
    pub fn udp_pending(&self, id: ConnId) -> Option<(SocketAddr, impl Iterator<Item = &[u8]>)> {
        let conn = self.conns.get(id)?;
        if conn.udp_out.is_empty() {
            return None;
        }
        Some((conn.udp_addr?, conn.udp_out.datagrams()))
    }

    /// The transport made `sends` syscalls that sent datagrams and `recvs` that received some.
    pub fn count_udp_calls(&mut self, sends: u64, recvs: u64) {
        self.stats.udp_send_calls += sends;
        self.stats.udp_recv_calls += recvs;
    }

    /// The transport sent the first `count` datagrams of [`Server::udp_pending`]; or, with
    /// `all_done`, gave up on the rest (unreliable traffic is not retried forever).
    pub fn udp_sent(&mut self, id: ConnId, count: usize, all_done: bool) {
        if let Some(conn) = self.conns.get_mut(id) {
            let sent: usize = conn.udp_out.datagrams().take(count).map(<[u8]>::len).sum();
            self.stats.bytes_out += sent as u64;
            self.stats.udp_out += count as u64;
            conn.udp_out
                .consume(if all_done { usize::MAX } else { count });
            if !conn.udp_out.is_empty() {
                self.conns.requeue(id);
            }
        }
    }

    /// Calls session logic for `sid`, then applies what it asked for.
    pub(crate) fn call_hook<R>(
        &mut self,
        now: Instant,
        sid: SessionId,
        f: impl FnOnce(&mut H, &mut Ctx<'_>) -> R,
    ) -> R {
        let mut ctx = Ctx {
            session: sid,
            now,
            wall_us: self.clock.wall_us(now),
            out: &mut self.outbox,
        };
        let result = f(&mut self.hooks, &mut ctx);
        self.apply_outbox(now);
        result
    }

    /// Applies what session logic recorded in the outbox, including anything the commands' own
    /// hook calls record.
    fn apply_outbox(&mut self, now: Instant) {
        while !self.outbox.commands.is_empty() {
            let batch = std::mem::take(&mut self.outbox.commands);
            for command in batch {
                self.apply_command(now, command);
            }
        }
    }

    /// Schedules a timer armed by session logic.
    pub(crate) fn schedule_script_timer(&mut self, sid: SessionId, timer: u64, at: Instant) {
        self.timers.schedule(at, TimerKey::Script(sid, timer));
    }
}

/// Script timers one session may fire in one pass of [`Server::handle_timeout`] (one loop
/// turn); more that are due wait for the next turn, so a session with thousands of timers due at
/// once cannot hold the loop for all of them.
pub(crate) const SCRIPT_TIMERS_PER_PASS: u32 = 256;
