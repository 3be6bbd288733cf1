//! The floor: a reflector with no protocol logic, to measure what this machine can do at all.
//!
//! It receives a message and sends it to the other members of the sender's session; nothing
//! else (no handshake, no validation, no timers). Two syscall patterns:
//! - **naive**: one `write` per message per TCP receiver, one `send_to` per message per UDP
//!   receiver;
//! - **batched**: what moonrt does: per receiver, one TCP write per loop turn, and messages
//!   packed into datagrams of up to 1200 bytes.
//!
//! Its framing, shared with [`RawPlayer`]:
//! - TCP: `u32 len | u32 session | u32 sender | u32 target | payload`, `len` counting what
//!   follows it;
//! - UDP: datagrams of records `u16 len | u32 session | u32 sender | u32 target | payload`.
//!
//! `target` is a player id, [`ALL`] (everyone else in the session) or [`REGISTER`] (the first
//! message of each socket: it tells the reflector who is there).

use crate::load::{Dest, Player};
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use moonrt::core::codec::Intent;
use slab::Slab;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

/// Target: everyone else in the session.
pub const ALL: u32 = u32::MAX - 1;
/// Target: a registration, not forwarded.
pub const REGISTER: u32 = u32::MAX;
const HEADER: usize = 12;
const MTU: usize = 1200;

/// A player speaking the reflector's framing.
pub struct RawPlayer {
    session: u32,
    id: u32,
    per_session: u32,
    tcp: TcpStream,
    udp: UdpSocket,
    tcp_out: Vec<u8>,
    udp_out: Vec<u8>,
    rx: Vec<u8>,
    buf: Vec<u8>,
}

fn record_header(out: &mut Vec<u8>, session: u32, sender: u32, target: u32) {
    out.extend_from_slice(&session.to_le_bytes());
    out.extend_from_slice(&sender.to_le_bytes());
    out.extend_from_slice(&target.to_le_bytes());
}

impl RawPlayer {
    pub fn connect(
        addr: SocketAddr,
        session: u32,
        id: u32,
        per_session: u32,
    ) -> io::Result<RawPlayer> {
        let mut std_tcp = std::net::TcpStream::connect(addr)?;
        std_tcp.set_nodelay(true)?;
        let mut frame = Vec::new();
        frame.extend_from_slice(&(HEADER as u32).to_le_bytes());
        record_header(&mut frame, session, id, REGISTER);
        std_tcp.write_all(&frame)?;
        std_tcp.set_nonblocking(true)?;
        let std_udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
        std_udp.connect(addr)?;
        let mut datagram = Vec::new();
        datagram.extend_from_slice(&(HEADER as u16).to_le_bytes());
        record_header(&mut datagram, session, id, REGISTER);
        std_udp.send(&datagram)?;
        std_udp.set_nonblocking(true)?;
        Ok(RawPlayer {
            session,
            id,
            per_session,
            tcp: TcpStream::from_std(std_tcp),
            udp: UdpSocket::from_std(std_udp),
            tcp_out: Vec::new(),
            udp_out: Vec::new(),
            rx: Vec::new(),
            buf: vec![0; 64 * 1024],
        })
    }
}

impl Player for RawPlayer {
    fn attach(&mut self, registry: &mio::Registry, token: Token) -> io::Result<()> {
        registry.register(&mut self.tcp, token, Interest::READABLE)?;
        registry.register(&mut self.udp, token, Interest::READABLE)
    }

    fn queue(&mut self, dest: Dest, intent: Intent, payload: &[u8]) {
        let target = match dest {
            Dest::AllOthers => ALL,
            Dest::One(i) => self.session * self.per_session + i as u32,
        };
        let len = HEADER + payload.len();
        if intent == Intent::Reliable {
            self.tcp_out.extend_from_slice(&(len as u32).to_le_bytes());
            record_header(&mut self.tcp_out, self.session, self.id, target);
            self.tcp_out.extend_from_slice(payload);
        } else {
            if self.udp_out.len() + 2 + len > MTU && !self.udp_out.is_empty() {
                let _ = self.udp.send(&self.udp_out);
                self.udp_out.clear();
            }
            self.udp_out.extend_from_slice(&(len as u16).to_le_bytes());
            record_header(&mut self.udp_out, self.session, self.id, target);
            self.udp_out.extend_from_slice(payload);
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.udp_out.is_empty() {
            let _ = self.udp.send(&self.udp_out);
            self.udp_out.clear();
        }
        while !self.tcp_out.is_empty() {
            match self.tcp.write(&self.tcp_out) {
                Ok(n) => {
                    self.tcp_out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn unflushed(&self) -> bool {
        !self.tcp_out.is_empty()
    }

    fn receive(&mut self, on: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        loop {
            match self.tcp.read(&mut self.buf) {
                Ok(0) => return Err(io::Error::other("reflector closed")),
                Ok(n) => self.rx.extend_from_slice(&self.buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        let mut at = 0;
        while self.rx.len() - at >= 4 {
            let len = u32::from_le_bytes(self.rx[at..at + 4].try_into().expect("4")) as usize;
            if self.rx.len() - at - 4 < len {
                break;
            }
            on(&self.rx[at + 4 + HEADER..at + 4 + len]);
            at += 4 + len;
        }
        self.rx.drain(..at);
        loop {
            match self.udp.recv(&mut self.buf) {
                Ok(n) => {
                    let mut rest = &self.buf[..n];
                    while rest.len() >= 2 {
                        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
                        if rest.len() < 2 + len || len < HEADER {
                            break;
                        }
                        on(&rest[2 + HEADER..2 + len]);
                        rest = &rest[2 + len..];
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        Ok(())
    }
}

/// A reflector connection.
struct Conn {
    stream: TcpStream,
    rx: Vec<u8>,
    out: Vec<u8>,
    dirty: bool,
}

/// Where a player can be reached.
#[derive(Default, Clone, Copy)]
struct Member {
    conn: Option<usize>,
    udp: Option<SocketAddr>,
}

const LISTENER: Token = Token(usize::MAX - 1);
const UDP: Token = Token(usize::MAX - 2);

/// The reflector's state.
struct Reflector {
    batched: bool,
    conns: Slab<Conn>,
    /// Players by id, and each session's player ids.
    members: HashMap<u32, Member>,
    sessions: HashMap<u32, Vec<u32>>,
    udp: UdpSocket,
    udp_out: HashMap<SocketAddr, Vec<u8>>,
    /// Receivers with a datagram being packed this turn.
    udp_dirty: Vec<SocketAddr>,
    dirty: Vec<usize>,
}

/// Runs the reflector until killed. Prints one line once bound.
pub fn run_reflector(port: u16, batched: bool) -> io::Result<()> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    let mut udp = UdpSocket::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    poll.registry()
        .register(&mut udp, UDP, Interest::READABLE)?;
    println!("reflector listening on {addr}");
    let mut r = Reflector {
        batched,
        conns: Slab::new(),
        members: HashMap::new(),
        sessions: HashMap::new(),
        udp,
        udp_out: HashMap::new(),
        udp_dirty: Vec::new(),
        dirty: Vec::new(),
    };
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        poll.poll(&mut events, None)?;
        for event in events.iter() {
            match event.token() {
                LISTENER => loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let entry = r.conns.vacant_entry();
                            poll.registry().register(
                                &mut stream,
                                Token(entry.key()),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            entry.insert(Conn {
                                stream,
                                rx: Vec::new(),
                                out: Vec::new(),
                                dirty: false,
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => break,
                    }
                },
                UDP => r.read_udp(&mut buf),
                Token(key) => {
                    if event.is_readable() || event.is_read_closed() {
                        r.read_tcp(key, &mut buf, &poll);
                    }
                    if event.is_writable() {
                        r.mark(key);
                    }
                }
            }
        }
        r.flush();
    }
}

impl Reflector {
    fn read_tcp(&mut self, key: usize, buf: &mut [u8], poll: &Poll) {
        let mut closed = false;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        loop {
            match conn.stream.read(buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => conn.rx.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        let rx = std::mem::take(&mut conn.rx);
        let mut at = 0;
        while rx.len() - at >= 4 + HEADER {
            let len = u32::from_le_bytes(rx[at..at + 4].try_into().expect("4")) as usize;
            if rx.len() - at - 4 < len {
                break;
            }
            let frame = &rx[at..at + 4 + len];
            let (session, sender, target) = header(&frame[4..]);
            if target == REGISTER {
                self.register(session, sender).conn = Some(key);
            } else {
                self.fan_out_tcp(session, sender, target, frame);
            }
            at += 4 + len;
        }
        if let Some(conn) = self.conns.get_mut(key) {
            conn.rx = rx;
            conn.rx.drain(..at);
        }
        if closed {
            let mut conn = self.conns.remove(key);
            let _ = poll.registry().deregister(&mut conn.stream);
            for m in self.members.values_mut() {
                if m.conn == Some(key) {
                    m.conn = None;
                }
            }
        }
    }

    fn read_udp(&mut self, buf: &mut [u8]) {
        loop {
            let (n, from) = match self.udp.recv_from(buf) {
                Ok(pair) => pair,
                Err(_) => return,
            };
            let mut rest = &buf[..n];
            while rest.len() >= 2 + HEADER {
                let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
                if rest.len() < 2 + len || len < HEADER {
                    break;
                }
                let record = &rest[..2 + len];
                let (session, sender, target) = header(&record[2..]);
                if target == REGISTER {
                    self.register(session, sender).udp = Some(from);
                } else {
                    self.fan_out_udp(session, sender, target, record);
                }
                rest = &rest[2 + len..];
            }
        }
    }

    fn register(&mut self, session: u32, player: u32) -> &mut Member {
        let ids = self.sessions.entry(session).or_default();
        if !ids.contains(&player) {
            ids.push(player);
        }
        self.members.entry(player).or_default()
    }

    fn fan_out_tcp(&mut self, session: u32, sender: u32, target: u32, frame: &[u8]) {
        let Reflector {
            batched,
            conns,
            members,
            sessions,
            dirty,
            ..
        } = self;
        let ids = receivers(sessions, session, &target);
        for id in ids.iter().filter(|&&id| id != sender) {
            let Some(key) = members.get(id).and_then(|m| m.conn) else {
                continue;
            };
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            if !*batched && conn.out.is_empty() {
                // Naive: one write per message per receiver.
                match conn.stream.write(frame) {
                    Ok(n) if n == frame.len() => continue,
                    Ok(n) => conn.out.extend_from_slice(&frame[n..]),
                    Err(_) => conn.out.extend_from_slice(frame),
                }
            } else {
                conn.out.extend_from_slice(frame);
            }
            if !conn.dirty {
                conn.dirty = true;
                dirty.push(key);
            }
        }
    }

    fn fan_out_udp(&mut self, session: u32, sender: u32, target: u32, record: &[u8]) {
        let Reflector {
            batched,
            members,
            sessions,
            udp,
            udp_out,
            udp_dirty,
            ..
        } = self;
        let ids = receivers(sessions, session, &target);
        for id in ids.iter().filter(|&&id| id != sender) {
            let Some(addr) = members.get(id).and_then(|m| m.udp) else {
                continue;
            };
            if !*batched {
                // Naive: one send_to per message per receiver.
                let _ = udp.send_to(record, addr);
                continue;
            }
            let out = udp_out.entry(addr).or_default();
            if out.is_empty() {
                udp_dirty.push(addr);
            } else if out.len() + record.len() > MTU {
                let _ = udp.send_to(out, addr);
                out.clear();
            }
            out.extend_from_slice(record);
        }
    }

    fn mark(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key)
            && !conn.out.is_empty()
            && !conn.dirty
        {
            conn.dirty = true;
            self.dirty.push(key);
        }
    }

    /// End of a loop turn: one write per dirty connection, one datagram per batched receiver.
    fn flush(&mut self) {
        for key in std::mem::take(&mut self.dirty) {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            conn.dirty = false;
            if let Ok(n) = conn.stream.write(&conn.out) {
                conn.out.drain(..n);
            }
        }
        for addr in std::mem::take(&mut self.udp_dirty) {
            if let Some(out) = self.udp_out.get_mut(&addr)
                && !out.is_empty()
            {
                let _ = self.udp.send_to(out, addr);
                out.clear();
            }
        }
    }
}

/// Who a message goes to: the session's players, or the one targeted (the caller skips the
/// sender).
fn receivers<'a>(sessions: &'a HashMap<u32, Vec<u32>>, session: u32, target: &'a u32) -> &'a [u32] {
    if *target == ALL {
        sessions.get(&session).map_or(&[], |v| v.as_slice())
    } else {
        std::slice::from_ref(target)
    }
}

fn header(bytes: &[u8]) -> (u32, u32, u32) {
    let word = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    (word(0), word(4), word(8))
}
