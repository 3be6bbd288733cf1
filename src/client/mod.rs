//! A small blocking-style Rust client for moonrt, used by tests, examples and the load generator.
//!
//! ```no_run
//! use moonrt::client::{Client, Connect, To};
//! use moonrt::core::codec::Intent;
//! use std::time::Duration;
//!
//! let mut alice = Client::connect("127.0.0.1:7777", Connect::join_or_create("lobby").name("alice"))?;
//! alice.bind_udp()?;
//! alice.send(To::AllOthers, 7, Intent::Unreliable, b"hello")?;
//! while let Some(event) = alice.next_event(Duration::from_secs(1))? {
//!     println!("{event:?}");
//! }
//! # Ok::<(), moonrt::client::ClientError>(())
//! ```
//!
//! One connection is one `mio::Poll` over its TCP stream and UDP socket; [`Client::next_event`]
//! waits on both. Unreliable sends go over UDP once [`Client::bind_udp`] succeeded, TCP before.
//! Stale unreliable-sequenced deliveries are dropped here, as the protocol asks of clients.
//!
//! Many clients on one thread (a load generator, a bot host): [`Client::attach`] moves a
//! client's sockets to a shared `mio::Poll`; on readiness call [`Client::receive`] and drain
//! [`Client::pop_event`]. [`Client::queue`] + [`Client::flush`] batch sends like the server does:
//! one TCP write, and small unreliable messages packed into datagrams up to [`UDP_BATCH_BYTES`].

use crate::core::codec::{
    self, ClientMsg, Data, Hello, Intent, JoinMode, PROTOCOL_VERSION, PeerList, ServerMsg, Target,
};
use crate::tls::Stream;
use mio::net::{TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TCP: Token = Token(0);
thread_local! {
    /// One receive buffer per thread, shared by its clients: a client costs no 64 KiB of its
    /// own, and a read does not clear a fresh buffer first.
    static RECV_BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 65_536]);
}
const UDP: Token = Token(1);
/// How long `connect` waits for WELCOME, and `bind_udp` for UDP_BOUND, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Frames [`Client::queue`] packs into one datagram at most (the server's default `udp_mtu`,
/// less the UDP header).
pub const UDP_BATCH_BYTES: usize = 1200 - codec::UDP_HEADER;

/// Which session to enter, and as whom.
#[derive(Debug, Clone)]
pub struct Connect {
    mode: Mode,
    token: String,
    player_id: String,
    name: String,
    payload: Vec<u8>,
    timeout: Duration,
    tls: Option<(std::sync::Arc<rustls::ClientConfig>, String)>,
    reconnect: bool,
}

#[derive(Debug, Clone)]
enum Mode {
    Create(String),
    Join(u64),
    JoinOrCreate(String),
    JoinAny(String),
}

impl Connect {
    fn with(mode: Mode) -> Connect {
        Connect {
            mode,
            token: String::new(),
            player_id: String::new(),
            name: String::new(),
            payload: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            tls: None,
            reconnect: true,
        }
    }
    /// Create a new unnamed session.
    pub fn create() -> Connect {
        Connect::with(Mode::Create(String::new()))
    }
    /// Create a new session with a unique name.
    pub fn create_named(name: &str) -> Connect {
        Connect::with(Mode::Create(name.to_owned()))
    }
    /// Join the session with this id.
    pub fn join(session_id: u64) -> Connect {
        Connect::with(Mode::Join(session_id))
    }
    /// Join the session with this name, creating it if needed.
    pub fn join_or_create(name: &str) -> Connect {
        Connect::with(Mode::JoinOrCreate(name.to_owned()))
    }
    /// Join any listed session with a free seat whose parameters match `params` (`key=value`
    /// pairs, e.g. `[("mode", "duel")]`), else create one with them (HELLO mode 5).
    pub fn join_any(params: &[(&str, &str)]) -> Connect {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        Connect::with(Mode::JoinAny(query))
    }
    /// Display name.
    pub fn name(mut self, name: &str) -> Connect {
        self.name = name.to_owned();
        self
    }
    /// The game's id for the player.
    pub fn player_id(mut self, id: &str) -> Connect {
        self.player_id = id.to_owned();
        self
    }
    /// Access token.
    pub fn token(mut self, token: &str) -> Connect {
        self.token = token.to_owned();
        self
    }
    /// Opaque connect payload.
    pub fn payload(mut self, payload: &[u8]) -> Connect {
        self.payload = payload.to_owned();
        self
    }
    /// How long to wait for WELCOME.
    pub fn timeout(mut self, timeout: Duration) -> Connect {
        self.timeout = timeout;
        self
    }
    /// Whether to take the seat back by itself when the connection drops (default true; works
    /// when the server holds seats, `sessions.reconnect_grace_ms`). The client then emits
    /// [`Event::Reconnected`], or [`Event::Closed`] if the seat is gone.
    pub fn reconnect(mut self, on: bool) -> Connect {
        self.reconnect = on;
        self
    }
    /// Connect over TLS (to the server's `tls.listen` port), checking that the certificate is
    /// valid for `server_name` under `config`'s roots (see [`crate::tls::client_config`]).
    pub fn tls(
        mut self,
        config: std::sync::Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> Connect {
        self.tls = Some((config, server_name.to_owned()));
        self
    }
}

/// Receivers of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum To {
    /// Every other player.
    AllOthers,
    /// These peers (0 = the server).
    Peers(Vec<u16>),
    /// Every other member of a group.
    Group(u16),
    /// The server only.
    Server,
}

/// A message delivered to this client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Opcode.
    pub opcode: u32,
    /// Sender's peer id (0 = server).
    pub sender: u16,
    /// Sender's sequence number.
    pub seq: u32,
    /// Intent the sender used.
    pub intent: Intent,
    /// Payload.
    pub payload: Vec<u8>,
    /// Whether it arrived over UDP.
    pub via_udp: bool,
}

/// Something the server told this client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message.
    Delivery(Delivery),
    /// A player joined.
    PlayerJoined {
        /// Peer id.
        peer: u16,
        /// Game's player id.
        player_id: String,
        /// Display name.
        name: String,
    },
    /// A player left, with a reason code.
    PlayerLeft {
        /// Peer id.
        peer: u16,
        /// A [`crate::core::Code`] value.
        reason: u16,
    },
    /// A group's members.
    GroupMembers {
        /// Group id.
        group: u16,
        /// Peer ids.
        members: Vec<u16>,
    },
    /// Answer to [`Client::ping`].
    Pong {
        /// Round-trip time.
        rtt: Duration,
        /// Server clock minus this machine's clock, estimated at the round trip's midpoint.
        offset_us: i64,
    },
    /// A player's custom properties were set (or, after joining, were already set).
    PlayerProps {
        /// Whose.
        peer: u16,
        /// The properties.
        props: Vec<u8>,
    },
    /// The session's custom properties were set (or, after joining, were already set).
    SessionProps {
        /// Who set them (0 = the server).
        by: u16,
        /// The properties.
        props: Vec<u8>,
    },
    /// A non-fatal error about something this client sent.
    Error {
        /// A [`crate::core::Code`] value.
        code: u16,
        /// Detail.
        message: String,
        /// The value the error is about (the unknown peer id for code 31, the group id for 32
        /// and 33); 0 otherwise.
        detail: u32,
    },
    /// A player's connection dropped; the server holds its seat for it.
    PlayerAway {
        /// Peer id.
        peer: u16,
    },
    /// A player whose seat was held is back, with the same peer id.
    PlayerBack {
        /// Peer id.
        peer: u16,
    },
    /// Frame sync started (`on`) or stopped in the session.
    FrameSyncState {
        /// Whether it runs.
        on: bool,
        /// Frames per second.
        rate: u8,
        /// The seed every frame carries.
        seed: u32,
        /// The next frame's number.
        next_frame: u32,
    },
    /// One frame of frame sync: every player gets the same ones, in order.
    Frame {
        /// Its number, from 1.
        number: u32,
        /// The frame sync's seed.
        seed: u32,
        /// The inputs collected during it, in arrival order: (peer, bytes); peer 0 is the
        /// server's script.
        inputs: Vec<(u16, Vec<u8>)>,
    },
    /// This client's connection dropped and it took its seat back (same peer id, groups and
    /// props; the reliable messages sent meanwhile follow). UDP is bound again if it was.
    Reconnected {
        /// Bytes of missed messages the server replayed are delivered as events after this.
        peer: u16,
    },
    /// The server closed the connection (or it was lost: code 26).
    Closed {
        /// A [`crate::core::Code`] value.
        code: u16,
        /// Detail.
        message: String,
    },
}

/// A peer listed in WELCOME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Peer id.
    pub peer: u16,
    /// Game's player id.
    pub player_id: String,
    /// Display name.
    pub name: String,
}

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A socket error.
    #[error("io: {0}")]
    Io(#[from] io::Error),
    /// The server refused the HELLO.
    #[error("rejected with code {code}: {message}")]
    Rejected {
        /// A [`crate::core::Code`] value.
        code: u16,
        /// Detail.
        message: String,
    },
    /// Waited too long.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The server sent something this client cannot decode.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
}

/// A connected player.
pub struct Client {
    poll: Poll,
    events: Events,
    tcp: Stream,
    udp: Option<UdpSocket>,
    server: SocketAddr,
    rx: Vec<u8>,
    /// Frames queued for TCP by [`Client::queue`].
    tcp_batch: Vec<u8>,
    /// Frames queued for the next datagram, and datagrams already full.
    udp_batch: Vec<u8>,
    udp_full: Vec<Vec<u8>>,
    queue: VecDeque<Event>,
    peer: u16,
    session_id: u64,
    session_name: String,
    peers: Vec<Peer>,
    udp_conn_id: u32,
    udp_secret: u64,
    udp_port: u16,
    udp_bound: bool,
    idle_timeout: Duration,
    epoch: Instant,
    last_tx: Instant,
    keepalive: bool,
    last_sequenced: HashMap<u16, u32>,
    stale_dropped: u64,
    closed: bool,
    /// How it connected, to reconnect the same way.
    opts: Connect,
    /// From WELCOME: takes the seat back after a drop (0: the server holds no seats).
    reconnect_secret: u64,
    /// Whether the server sent CLOSE (a close it meant is not undone by reconnecting).
    close_received: bool,
}

impl Client {
    /// Connects, sends HELLO and waits for WELCOME (or fails with the REJECT's code).
    pub fn connect(addr: impl ToSocketAddrs, opts: Connect) -> Result<Client, ClientError> {
        let server = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address"))?;
        let std_stream = std::net::TcpStream::connect_timeout(&server, opts.timeout)?;
        std_stream.set_nodelay(true)?;
        std_stream.set_nonblocking(true)?;
        let mut tcp = match &opts.tls {
            None => Stream::Plain(TcpStream::from_std(std_stream)),
            Some((config, name)) => {
                Stream::client(TcpStream::from_std(std_stream), config.clone(), name)?
            }
        };
        let poll = Poll::new()?;
        poll.registry()
            .register(tcp.socket(), TCP, Interest::READABLE | Interest::WRITABLE)?;
        let now = Instant::now();
        let mut client = Client {
            poll,
            events: Events::with_capacity(64),
            tcp,
            udp: None,
            server,
            rx: Vec::new(),
            tcp_batch: Vec::new(),
            udp_batch: Vec::new(),
            udp_full: Vec::new(),
            queue: VecDeque::new(),
            peer: 0,
            session_id: 0,
            session_name: String::new(),
            peers: Vec::new(),
            udp_conn_id: 0,
            udp_secret: 0,
            udp_port: 0,
            udp_bound: false,
            idle_timeout: Duration::from_secs(30),
            epoch: now,
            last_tx: now,
            keepalive: true,
            last_sequenced: HashMap::new(),
            stale_dropped: 0,
            closed: false,
            opts: opts.clone(),
            reconnect_secret: 0,
            close_received: false,
        };
        let mode = match &opts.mode {
            Mode::Create(name) => JoinMode::Create(name),
            Mode::Join(id) => JoinMode::JoinId(*id),
            Mode::JoinOrCreate(name) => JoinMode::JoinOrCreate(name),
            Mode::JoinAny(params) => JoinMode::JoinAny(params),
        };
        let mut frame = Vec::new();
        ClientMsg::Hello(Hello {
            version: PROTOCOL_VERSION,
            mode,
            token: &opts.token,
            player_id: &opts.player_id,
            player_name: &opts.name,
            payload: &opts.payload,
            stray_field: None,
        })
        .encode(&mut frame);
        client.write_tcp(&frame)?;
        let deadline = Instant::now() + opts.timeout;
        loop {
            if client.read_welcome()? {
                // Frames that arrived with WELCOME (a script's greeting, say) are events already.
                client.parse_tcp()?;
                return Ok(client);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout("WELCOME"));
            }
            client.wait(left)?;
        }
    }

    /// After a drop: connects again and takes the seat back (HELLO mode 4), retrying for up to
    /// twice the connect timeout. True once back; false if the seat is gone (a `Closed` event
    /// says why).
    fn take_seat_back(&mut self) -> bool {
        let deadline = Instant::now() + 2 * self.opts.timeout;
        let was_bound = self.udp_bound;
        while Instant::now() < deadline {
            match self.reconnect_once(deadline) {
                Ok(()) => {
                    self.closed = false;
                    self.udp_bound = false;
                    let peer = self.peer;
                    self.queue.push_back(Event::Reconnected { peer });
                    if was_bound {
                        // Best effort: unreliable traffic goes over TCP until it binds again.
                        let _ = self.bind_udp();
                    }
                    return true;
                }
                Err(ClientError::Rejected { code, message }) => {
                    self.queue.push_back(Event::Closed { code, message });
                    self.close_received = true;
                    return false;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        false
    }

    fn reconnect_once(&mut self, deadline: Instant) -> Result<(), ClientError> {
        let left = deadline.saturating_duration_since(Instant::now());
        let std_stream = std::net::TcpStream::connect_timeout(&self.server, left)?;
        std_stream.set_nodelay(true)?;
        std_stream.set_nonblocking(true)?;
        let mut tcp = match &self.opts.tls {
            None => Stream::Plain(TcpStream::from_std(std_stream)),
            Some((config, name)) => {
                Stream::client(TcpStream::from_std(std_stream), config.clone(), name)?
            }
        };
        let _ = self.poll.registry().deregister(self.tcp.socket());
        self.poll.registry().register(
            tcp.socket(),
            TCP,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        std::mem::swap(&mut self.tcp, &mut tcp);
        self.rx.clear();
        self.tcp_batch.clear();
        self.closed = false;
        let mut seat = Vec::with_capacity(10);
        seat.extend_from_slice(&self.peer.to_le_bytes());
        seat.extend_from_slice(&self.reconnect_secret.to_le_bytes());
        let mut frame = Vec::new();
        ClientMsg::Hello(Hello {
            version: PROTOCOL_VERSION,
            mode: JoinMode::Reconnect(self.session_id),
            token: &self.opts.token,
            player_id: &self.opts.player_id,
            player_name: &self.opts.name,
            payload: &seat,
            stray_field: None,
        })
        .encode(&mut frame);
        self.write_tcp(&frame)?;
        loop {
            if self.read_welcome()? {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout("WELCOME after a reconnect"));
            }
            self.wait(left.min(Duration::from_millis(100)))?;
        }
    }

    /// The secret that takes this seat back (0: the server holds no seats).
    pub fn reconnect_secret(&self) -> u64 {
        self.reconnect_secret
    }

    /// Cuts the connection without a word, as a network change does (for tests of reconnection).
    #[doc(hidden)]
    pub fn sever(&mut self) {
        let _ = self.tcp.socket().shutdown(std::net::Shutdown::Both);
    }

    /// Parses WELCOME or REJECT from the receive buffer; true once welcomed.
    fn read_welcome(&mut self) -> Result<bool, ClientError> {
        self.read_tcp()?;
        let Some((body, used)) = codec::split_frame(&self.rx, usize::MAX)
            .map_err(|e| ClientError::Protocol(e.to_string()))?
        else {
            if self.closed {
                return Err(ClientError::Closed);
            }
            return Ok(false);
        };
        match ServerMsg::decode(body).map_err(|e| ClientError::Protocol(e.to_string()))? {
            ServerMsg::Welcome(w) => {
                self.peer = w.peer;
                self.session_id = w.session_id;
                self.session_name = w.session_name.to_owned();
                self.peers = w
                    .peers
                    .iter()
                    .map(|p| Peer {
                        peer: p.peer,
                        player_id: p.player_id.to_owned(),
                        name: p.name.to_owned(),
                    })
                    .collect();
                self.udp_conn_id = w.udp_conn_id;
                self.udp_secret = w.udp_secret;
                self.udp_port = w.udp_port;
                self.idle_timeout = Duration::from_millis(w.idle_timeout_ms.into());
                self.reconnect_secret = w.reconnect_secret;
            }
            ServerMsg::Reject { code, message } => {
                return Err(ClientError::Rejected {
                    code,
                    message: message.to_owned(),
                });
            }
            other => {
                return Err(ClientError::Protocol(format!(
                    "expected WELCOME, got {other:?}"
                )));
            }
        }
        self.rx.drain(..used);
        Ok(true)
    }

    /// This client's peer id.
    pub fn peer_id(&self) -> u16 {
        self.peer
    }
    /// The session's id.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }
    /// The session's name.
    pub fn session_name(&self) -> &str {
        &self.session_name
    }
    /// Players that were in the session when this client joined.
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }
    /// Whether UDP is bound.
    pub fn udp_bound(&self) -> bool {
        self.udp_bound
    }
    /// Unreliable-sequenced deliveries dropped as stale.
    pub fn stale_dropped(&self) -> u64 {
        self.stale_dropped
    }
    /// Turns automatic keepalive pings on or off (on by default).
    pub fn set_keepalive(&mut self, on: bool) {
        self.keepalive = on;
    }

    /// Opens a UDP socket and binds it to this connection; waits for UDP_BOUND, resending.
    pub fn bind_udp(&mut self) -> Result<(), ClientError> {
        if self.udp_port == 0 {
            return Err(ClientError::Protocol(
                "the server has UDP turned off".into(),
            ));
        }
        let server_udp = SocketAddr::new(self.server.ip(), self.udp_port);
        let local: SocketAddr = if server_udp.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        let mut udp = UdpSocket::bind(local)?;
        udp.connect(server_udp)?;
        self.poll
            .registry()
            .register(&mut udp, UDP, Interest::READABLE)?;
        self.udp = Some(udp);
        let deadline = Instant::now() + DEFAULT_TIMEOUT;
        while !self.udp_bound {
            let mut frame = Vec::new();
            ClientMsg::UdpBind.encode(&mut frame);
            self.send_datagram(&frame)?;
            let until = (Instant::now() + Duration::from_millis(100)).min(deadline);
            while !self.udp_bound && Instant::now() < until {
                self.wait(until.saturating_duration_since(Instant::now()))?;
                self.pump()?;
            }
            if Instant::now() >= deadline {
                return Err(ClientError::Timeout("UDP_BOUND"));
            }
        }
        Ok(())
    }

    /// Sends a message now (after anything [`Client::queue`] left unsent). Unreliable intents go
    /// over UDP once bound. Waits for a full TCP socket to drain, up to [`DEFAULT_TIMEOUT`].
    pub fn send(
        &mut self,
        to: To,
        opcode: u32,
        intent: Intent,
        payload: &[u8],
    ) -> Result<(), ClientError> {
        self.queue(to, opcode, intent, payload)?;
        self.send_datagrams()?;
        self.write_tcp_batch()
    }

    /// Queues a message for [`Client::flush`]: reliable ones (and all before UDP is bound) join
    /// one TCP write; unreliable ones are packed into datagrams of at most [`UDP_BATCH_BYTES`].
    pub fn queue(
        &mut self,
        to: To,
        opcode: u32,
        intent: Intent,
        payload: &[u8],
    ) -> Result<(), ClientError> {
        let list;
        let target = match &to {
            To::AllOthers => Target::AllOthers,
            To::Peers(peers) => {
                list = codec::encode_peer_list(peers);
                Target::Peers(PeerList::from_wire(&list))
            }
            To::Group(g) => Target::Group(*g),
            To::Server => Target::Server,
        };
        let msg = ClientMsg::Data(Data {
            intent,
            opcode,
            target,
            payload,
        });
        if intent.is_unreliable() && self.udp_bound {
            let start = self.udp_batch.len();
            msg.encode(&mut self.udp_batch);
            if self.udp_batch.len() > UDP_BATCH_BYTES && start > 0 {
                let frame = self.udp_batch.split_off(start);
                let full = std::mem::replace(&mut self.udp_batch, frame);
                self.udp_full.push(full);
            }
        } else {
            msg.encode(&mut self.tcp_batch);
        }
        Ok(())
    }

    /// Sends what [`Client::queue`] batched: one TCP write and one datagram per full batch.
    /// Never waits: reliable bytes the socket does not take now stay queued, in order, for the
    /// next flush (so one full socket cannot stall a thread driving many clients).
    pub fn flush(&mut self) -> Result<(), ClientError> {
        self.send_datagrams()?;
        let mut written = 0;
        while written < self.tcp_batch.len() {
            match self.tcp.write(&self.tcp_batch[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        if written > 0 {
            self.tcp_batch.drain(..written);
            self.last_tx = Instant::now();
        }
        self.flush_tls()
    }

    /// Sends the datagrams [`Client::queue`] packed.
    fn send_datagrams(&mut self) -> Result<(), ClientError> {
        for datagram in std::mem::take(&mut self.udp_full) {
            self.send_datagram(&datagram)?;
        }
        if !self.udp_batch.is_empty() {
            let mut batch = std::mem::take(&mut self.udp_batch);
            let result = self.send_datagram(&batch);
            batch.clear();
            self.udp_batch = batch;
            result?;
        }
        Ok(())
    }

    /// Bytes [`Client::flush`] could not write yet.
    pub fn unflushed(&self) -> usize {
        self.tcp_batch.len()
    }

    /// Moves this client's sockets to another poll, under `token` (both sockets), so one thread
    /// can drive many clients. Afterwards [`Client::next_event`] no longer waits for input:
    /// call [`Client::receive`] when `token` is ready, then [`Client::pop_event`]. Bind UDP
    /// first. Keepalive pings are no longer sent by themselves: send anything within the
    /// idle timeout.
    pub fn attach(&mut self, registry: &mio::Registry, token: Token) -> io::Result<()> {
        self.poll.registry().deregister(self.tcp.socket())?;
        registry.register(self.tcp.socket(), token, Interest::READABLE)?;
        if let Some(udp) = self.udp.as_mut() {
            self.poll.registry().deregister(udp)?;
            registry.register(udp, token, Interest::READABLE)?;
        }
        Ok(())
    }

    /// Reads everything that has arrived on both sockets into events, without waiting.
    pub fn receive(&mut self) -> Result<(), ClientError> {
        self.pump()
    }

    /// The next event already received, if any.
    pub fn pop_event(&mut self) -> Option<Event> {
        self.queue.pop_front()
    }

    /// Joins a group; the server answers with GROUP_MEMBERS.
    pub fn join_group(&mut self, group: u16) -> Result<(), ClientError> {
        self.send_msg(&ClientMsg::GroupJoin(group))
    }
    /// Leaves a group.
    pub fn leave_group(&mut self, group: u16) -> Result<(), ClientError> {
        self.send_msg(&ClientMsg::GroupLeave(group))
    }
    /// Asks for a group's members.
    pub fn query_group(&mut self, group: u16) -> Result<(), ClientError> {
        self.send_msg(&ClientMsg::GroupQuery(group))
    }
    /// Sets this player's custom properties; everyone gets [`Event::PlayerProps`].
    pub fn set_player_props(&mut self, props: &[u8]) -> Result<(), ClientError> {
        self.send_msg(&ClientMsg::SetPlayerProps(props))
    }
    /// Sets the session's custom properties; everyone gets [`Event::SessionProps`].
    pub fn set_session_props(&mut self, props: &[u8]) -> Result<(), ClientError> {
        self.send_msg(&ClientMsg::SetSessionProps(props))
    }
    /// Sends a PING over TCP; the answer is [`Event::Pong`].
    pub fn ping(&mut self) -> Result<(), ClientError> {
        let client_time = self.epoch.elapsed().as_micros() as u64 + 1;
        self.send_msg(&ClientMsg::Ping { client_time })
    }
    /// Asks the server to start (at `rate` frames per second) or stop frame sync.
    pub fn frame_sync(&mut self, on: bool, rate: u8) -> Result<(), ClientError> {
        self.send_msg(&ClientMsg::FrameSync { on, rate })
    }

    /// Sends this player's input for the current frame.
    pub fn frame_input(&mut self, input: &[u8]) -> Result<(), ClientError> {
        self.send_msg(&ClientMsg::FrameInput(input))
    }

    /// Asks for `count` frames again, from frame `from` (those the server still holds).
    pub fn request_frames(&mut self, from: u32, count: u16) -> Result<(), ClientError> {
        self.send_msg(&ClientMsg::FrameRequest { from, count })
    }

    /// Leaves the session; the server answers with CLOSE.
    pub fn leave(&mut self) -> Result<(), ClientError> {
        self.send_msg(&ClientMsg::Leave)
    }

    /// The next event, waiting up to `timeout`; `None` if nothing came.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Ok(Some(event));
            }
            if self.closed {
                return Err(ClientError::Closed);
            }
            self.keepalive_tick()?;
            let left = deadline.saturating_duration_since(Instant::now());
            // A zero timeout still reads what has already arrived; a long one wakes to ping.
            let wait = if self.keepalive {
                let next_ping = (self.last_tx + self.idle_timeout / 3)
                    .saturating_duration_since(Instant::now());
                left.min(next_ping + Duration::from_millis(1))
            } else {
                left
            };
            self.wait(wait)?;
            self.pump()?;
            if self.queue.is_empty() && !self.closed && Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    /// Waits for the first event that `wanted` accepts, skipping others; fails on timeout.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        mut wanted: impl FnMut(&Event) -> bool,
    ) -> Result<Event, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left)? {
                Some(event) if wanted(&event) => return Ok(event),
                Some(_) => {}
                None => return Err(ClientError::Timeout("the expected event")),
            }
        }
    }

    fn keepalive_tick(&mut self) -> Result<(), ClientError> {
        if self.keepalive && self.last_tx.elapsed() > self.idle_timeout / 3 {
            // Client time 0 marks a keepalive: its PONG is not reported.
            self.send_msg(&ClientMsg::Ping { client_time: 0 })?;
        }
        Ok(())
    }

    /// Sends a control message over TCP now, after anything queued before it.
    fn send_msg(&mut self, msg: &ClientMsg<'_>) -> Result<(), ClientError> {
        msg.encode(&mut self.tcp_batch);
        self.write_tcp_batch()
    }

    /// Writes everything queued for TCP, waiting for a full socket to drain.
    fn write_tcp_batch(&mut self) -> Result<(), ClientError> {
        if self.tcp_batch.is_empty() {
            return Ok(());
        }
        let mut batch = std::mem::take(&mut self.tcp_batch);
        let result = self.write_tcp(&batch);
        batch.clear();
        self.tcp_batch = batch;
        result
    }

    fn send_datagram(&mut self, frames: &[u8]) -> Result<(), ClientError> {
        let udp = self.udp.as_ref().ok_or(ClientError::Closed)?;
        let mut datagram = Vec::with_capacity(codec::UDP_HEADER + frames.len());
        datagram.extend_from_slice(&self.udp_conn_id.to_le_bytes());
        datagram.extend_from_slice(&self.udp_secret.to_le_bytes());
        datagram.extend_from_slice(frames);
        match udp.send(&datagram) {
            Ok(_) => {}
            // Unreliable: a full socket buffer loses the datagram, as the network could.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
        self.last_tx = Instant::now();
        Ok(())
    }

    /// Writes all of `bytes` to TCP, waiting for writability when the socket is full.
    fn write_tcp(&mut self, mut bytes: &[u8]) -> Result<(), ClientError> {
        if self.closed {
            return Err(ClientError::Closed);
        }
        let deadline = Instant::now() + DEFAULT_TIMEOUT;
        while !bytes.is_empty() {
            match self.tcp.write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(ClientError::Timeout("the socket to drain"));
                    }
                    // Read while waiting, so two clients writing to each other cannot deadlock.
                    self.wait(Duration::from_millis(10))?;
                    self.pump()?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.last_tx = Instant::now();
        self.flush_tls()
    }

    /// Sends TLS records still held (a full socket keeps them for the next call).
    fn flush_tls(&mut self) -> Result<(), ClientError> {
        if self.tcp.has_unsent() {
            match self.tcp.flush() {
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }

    fn wait(&mut self, timeout: Duration) -> Result<(), ClientError> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads everything available from both sockets into events.
    fn pump(&mut self) -> Result<(), ClientError> {
        self.flush_tls()?;
        self.read_tcp()?;
        self.parse_tcp()?;
        self.read_udp()
    }

    /// Turns every complete frame in the TCP receive buffer into events.
    fn parse_tcp(&mut self) -> Result<(), ClientError> {
        let rx = std::mem::take(&mut self.rx);
        let mut used = 0;
        let parsed = loop {
            match codec::split_frame(&rx[used..], usize::MAX) {
                Ok(Some((body, n))) => {
                    used += n;
                    if let Err(e) = self.on_frame(body, false) {
                        break Err(e);
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(ClientError::Protocol(e.to_string())),
            }
        };
        self.rx = rx;
        self.rx.drain(..used);
        parsed?;
        if self.closed
            && !self.close_received
            && self.opts.reconnect
            && self.reconnect_secret != 0
            && self.take_seat_back()
        {
            // The replayed messages came with the new WELCOME.
            return self.parse_tcp();
        }
        if self.closed && !self.queue.iter().any(|e| matches!(e, Event::Closed { .. })) {
            self.queue.push_back(Event::Closed {
                code: crate::core::Code::ConnectionLost.as_u16(),
                message: "connection lost".into(),
            });
        }
        Ok(())
    }

    fn read_udp(&mut self) -> Result<(), ClientError> {
        RECV_BUF.with_borrow_mut(|buf| self.read_udp_into(buf))
    }

    fn read_udp_into(&mut self, buf: &mut [u8]) -> Result<(), ClientError> {
        while let Some(udp) = self.udp.as_ref() {
            match udp.recv(buf) {
                Ok(n) => {
                    let mut rest = &buf[..n];
                    while let Ok(Some((body, used))) = codec::split_frame(rest, usize::MAX) {
                        rest = &rest[used..];
                        self.on_frame(body, true)?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ICMP port unreachable and the like: UDP is best effort.
                Err(_) => break,
            }
        }
        Ok(())
    }

    fn read_tcp(&mut self) -> Result<(), ClientError> {
        RECV_BUF.with_borrow_mut(|buf| self.read_tcp_into(buf))
    }

    fn read_tcp_into(&mut self, buf: &mut [u8]) -> Result<(), ClientError> {
        loop {
            match self.tcp.read(buf) {
                Ok(0) => {
                    self.closed = true;
                    return Ok(());
                }
                Ok(n) => self.rx.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.closed = true;
                    return Ok(());
                }
            }
        }
    }

    fn on_frame(&mut self, body: &[u8], via_udp: bool) -> Result<(), ClientError> {
        let msg = match ServerMsg::decode(body) {
            Ok(msg) => msg,
            // Message types from a newer server are skipped, as PROTOCOL.md asks of clients.
            Err(codec::DecodeError::UnknownType(_)) => return Ok(()),
            Err(e) => return Err(ClientError::Protocol(e.to_string())),
        };
        let event = match msg {
            ServerMsg::Delivery {
                intent,
                opcode,
                sender,
                seq,
                payload,
            } => {
                if intent == Intent::UnreliableSequenced {
                    let last = self.last_sequenced.entry(sender).or_insert(0);
                    // Serial-number comparison: survives wrap-around.
                    if *last != 0 && (seq.wrapping_sub(*last) as i32) <= 0 {
                        self.stale_dropped += 1;
                        return Ok(());
                    }
                    *last = seq;
                }
                Event::Delivery(Delivery {
                    opcode,
                    sender,
                    seq,
                    intent,
                    payload: payload.to_vec(),
                    via_udp,
                })
            }
            ServerMsg::PlayerJoined(p) => Event::PlayerJoined {
                peer: p.peer,
                player_id: p.player_id.to_owned(),
                name: p.name.to_owned(),
            },
            ServerMsg::PlayerLeft { peer, reason } => Event::PlayerLeft { peer, reason },
            ServerMsg::PlayerAway { peer } => Event::PlayerAway { peer },
            ServerMsg::FrameSyncState {
                on,
                rate,
                seed,
                next_frame,
            } => Event::FrameSyncState {
                on,
                rate,
                seed,
                next_frame,
            },
            ServerMsg::Frame {
                number,
                seed,
                inputs,
            } => Event::Frame {
                number,
                seed,
                inputs: inputs.iter().map(|(p, b)| (p, b.to_vec())).collect(),
            },
            ServerMsg::PlayerBack { peer } => Event::PlayerBack { peer },
            ServerMsg::GroupMembers { group, members } => Event::GroupMembers {
                group,
                members: members.iter().collect(),
            },
            ServerMsg::Pong {
                client_time,
                server_time_us,
            } => {
                if client_time == 0 {
                    return Ok(());
                }
                let now_us = self.epoch.elapsed().as_micros() as u64 + 1;
                let rtt_us = now_us.saturating_sub(client_time);
                let wall_us = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_micros() as i64)
                    .unwrap_or(0);
                Event::Pong {
                    rtt: Duration::from_micros(rtt_us),
                    offset_us: server_time_us as i64 - (wall_us - rtt_us as i64 / 2),
                }
            }
            ServerMsg::PlayerProps { peer, props } => Event::PlayerProps {
                peer,
                props: props.to_vec(),
            },
            ServerMsg::SessionProps { by, props } => Event::SessionProps {
                by,
                props: props.to_vec(),
            },
            ServerMsg::Error {
                code,
                message,
                detail,
            } => Event::Error {
                code,
                message: message.to_owned(),
                detail,
            },
            ServerMsg::Close { code, message } | ServerMsg::Reject { code, message } => {
                self.close_received = true;
                Event::Closed {
                    code,
                    message: message.to_owned(),
                }
            }
            ServerMsg::UdpBound => {
                self.udp_bound = true;
                return Ok(());
            }
            ServerMsg::Welcome(_) => {
                return Err(ClientError::Protocol("a second WELCOME".into()));
            }
        };
        self.queue.push_back(event);
        Ok(())
    }
}
