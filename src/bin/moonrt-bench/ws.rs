//! WebSocket players for the `relay-ws` scenario: native frames in binary messages (moonrt's
//! WebSocket port), the npm `sessionserver` package's JSON protocol (text messages), which both
//! moonrt and the package itself serve, and Colyseus 0.16's room protocol (matchmaking over
//! HTTP, then raw-bytes room messages).
//!
//! Each player connects and joins with blocking calls, then switches its socket to non-blocking
//! and is driven by the generator's `mio::Poll` like the other players: one WebSocket message
//! per flush, every message that arrived read per event.

use crate::load::{BENCH_OPCODE, Dest, Player};
use mio::Token;
use mio::unix::SourceFd;
use moonrt::core::codec::{
    self, ClientMsg, Data, Hello, Intent, JoinMode, PeerList, ServerMsg, Target,
};
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<TcpStream>;

/// Opens a WebSocket to `addr` (blocking, with a read timeout for the join that follows).
fn open(addr: SocketAddr) -> Result<Ws, String> {
    open_path(addr, "/")
}

/// [`open`] with a request path (and query).
fn open_path(addr: SocketAddr, path: &str) -> Result<Ws, String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let (ws, _) = tungstenite::client(format!("ws://{addr}{path}"), stream)
        .map_err(|e| format!("WebSocket upgrade to {addr}: {e}"))?;
    Ok(ws)
}

/// After the join: non-blocking, registered with the generator's poll.
fn attach(ws: &mut Ws, registry: &mio::Registry, token: Token) -> io::Result<()> {
    ws.get_mut().set_nonblocking(true)?;
    let fd = ws.get_ref().as_raw_fd();
    registry.register(&mut SourceFd(&fd), token, mio::Interest::READABLE)
}

/// Writes one message and flushes; a full socket keeps the rest in tungstenite (`true`: some
/// bytes wait for the next flush).
fn send(ws: &mut Ws, message: Option<Message>) -> io::Result<bool> {
    let written = match message {
        Some(m) => ws.write(m),
        None => Ok(()),
    };
    match written.and_then(|()| ws.flush()) {
        Ok(()) => Ok(false),
        Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(true),
        Err(e) => Err(io::Error::other(e.to_string())),
    }
}

/// Reads every message waiting; `on` gets each one.
fn read_all(ws: &mut Ws, mut on: impl FnMut(Message) -> io::Result<()>) -> io::Result<()> {
    loop {
        match ws.read() {
            Ok(m) => on(m)?,
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                return Ok(());
            }
            Err(e) => return Err(io::Error::other(e.to_string())),
        }
    }
}

/// A moonrt player over WebSocket: native frames in binary messages.
pub struct NativeWsPlayer {
    ws: Ws,
    /// Frames queued since the last flush; they leave as one binary message.
    out: Vec<u8>,
    waiting: bool,
    /// Peer ids of the session's players, in join order.
    peers: Vec<u16>,
    /// Bytes of a frame cut across messages.
    partial: Vec<u8>,
}

impl NativeWsPlayer {
    pub fn connect(addr: SocketAddr, session: &str) -> Result<NativeWsPlayer, String> {
        let mut ws = open(addr)?;
        let mut hello = Vec::new();
        ClientMsg::Hello(Hello {
            version: 1,
            mode: JoinMode::JoinOrCreate(session),
            token: "",
            player_id: "",
            player_name: "bench",
            payload: b"",
            stray_field: None,
        })
        .encode(&mut hello);
        ws.send(Message::binary(hello))
            .map_err(|e| format!("HELLO: {e}"))?;
        loop {
            let bytes = match ws.read().map_err(|e| format!("waiting for WELCOME: {e}"))? {
                Message::Binary(b) => b,
                _ => continue,
            };
            let mut rest = &bytes[..];
            while let Ok(Some((body, n))) = codec::split_frame(rest, usize::MAX) {
                match ServerMsg::decode(body) {
                    Ok(ServerMsg::Welcome(w)) => {
                        let peers = w.peers.iter().map(|p| p.peer).collect();
                        return Ok(NativeWsPlayer {
                            ws,
                            out: Vec::new(),
                            waiting: false,
                            peers,
                            partial: rest[n..].to_vec(),
                        });
                    }
                    Ok(ServerMsg::Reject { code, message }) => {
                        return Err(format!("REJECT {code}: {message}"));
                    }
                    _ => {}
                }
                rest = &rest[n..];
            }
        }
    }
}

impl Player for NativeWsPlayer {
    fn attach(&mut self, registry: &mio::Registry, token: Token) -> io::Result<()> {
        attach(&mut self.ws, registry, token)
    }

    fn queue(&mut self, dest: Dest, _intent: Intent, payload: &[u8]) {
        let wire;
        let target = match dest {
            Dest::AllOthers => Target::AllOthers,
            Dest::One(i) => match self.peers.get(i % self.peers.len().max(1)) {
                Some(&peer) => {
                    wire = peer.to_le_bytes();
                    Target::Peers(PeerList::from_wire(&wire))
                }
                None => return,
            },
        };
        // A WebSocket is one reliable stream: every message is reliable.
        ClientMsg::Data(Data {
            intent: Intent::Reliable,
            opcode: BENCH_OPCODE,
            target,
            payload,
        })
        .encode(&mut self.out);
    }

    fn flush(&mut self) -> io::Result<()> {
        let message =
            (!self.out.is_empty()).then(|| Message::binary(std::mem::take(&mut self.out)));
        self.waiting = send(&mut self.ws, message)?;
        Ok(())
    }

    fn unflushed(&self) -> bool {
        self.waiting
    }

    fn receive(&mut self, on: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        let (partial, peers) = (&mut self.partial, &mut self.peers);
        read_all(&mut self.ws, |m| {
            let Message::Binary(bytes) = m else {
                return Ok(());
            };
            partial.extend_from_slice(&bytes);
            let mut used = 0;
            while let Ok(Some((body, n))) = codec::split_frame(&partial[used..], usize::MAX) {
                match ServerMsg::decode(body) {
                    Ok(ServerMsg::Delivery {
                        opcode, payload, ..
                    }) if opcode == BENCH_OPCODE => on(payload),
                    Ok(ServerMsg::PlayerJoined(p)) => peers.push(p.peer),
                    Ok(ServerMsg::PlayerLeft { peer, .. }) => peers.retain(|&x| x != peer),
                    Ok(ServerMsg::Close { code, message }) => {
                        return Err(io::Error::other(format!("closed: {code} {message}")));
                    }
                    _ => {}
                }
                used += n;
            }
            partial.drain(..used);
            Ok(())
        })
    }
}

/// A player of the npm `sessionserver` protocol: the payload travels hex-encoded as the
/// player's data (`updatePlayer`), and everyone in the session, the sender included, gets it
/// back as `playerUpdate` (the package has no other way to send to others).
pub struct SessionServerPlayer {
    ws: Ws,
    player_id: i64,
    /// The last payload queued (the protocol carries one state per player, not a queue).
    out: Option<String>,
    waiting: bool,
    decoded: Vec<u8>,
}

/// One sessionserver answer, as far as the bench reads it.
#[derive(serde::Deserialize)]
struct Answer {
    command: String,
    #[serde(default)]
    error: i64,
    #[serde(rename = "sessionID", default)]
    session_id: Option<i64>,
    #[serde(rename = "playerID", default)]
    player_id: Option<i64>,
    #[serde(default)]
    player: Option<serde_json::Value>,
}

impl SessionServerPlayer {
    /// Creates a session (`session` = `None`) or joins one by id; returns the player and the
    /// session id.
    pub fn connect(
        addr: SocketAddr,
        session: Option<i64>,
    ) -> Result<(SessionServerPlayer, i64), String> {
        let mut ws = open(addr)?;
        let command = match session {
            None => r#"{"command":"createSession","session":{},"player":{"m":""}}"#.to_string(),
            Some(id) => format!(r#"{{"command":"joinSession","sessionID":{id}}}"#),
        };
        ws.send(Message::text(command))
            .map_err(|e| format!("join: {e}"))?;
        loop {
            let text = match ws
                .read()
                .map_err(|e| format!("waiting for sessionJoin: {e}"))?
            {
                Message::Text(t) => t,
                _ => continue,
            };
            let answer: Answer =
                serde_json::from_str(text.as_str()).map_err(|e| format!("{e}: {text}"))?;
            if answer.command != "sessionJoin" {
                continue;
            }
            if answer.error != 0 {
                return Err(format!("sessionJoin error {}", answer.error));
            }
            let (Some(sid), Some(pid)) = (answer.session_id, answer.player_id) else {
                return Err(format!("sessionJoin without ids: {text}"));
            };
            return Ok((
                SessionServerPlayer {
                    ws,
                    player_id: pid,
                    out: None,
                    waiting: false,
                    decoded: Vec::new(),
                },
                sid,
            ));
        }
    }
}

impl Player for SessionServerPlayer {
    fn attach(&mut self, registry: &mio::Registry, token: Token) -> io::Result<()> {
        attach(&mut self.ws, registry, token)
    }

    fn queue(&mut self, _dest: Dest, _intent: Intent, payload: &[u8]) {
        use std::fmt::Write;
        // The generator is the limit over WebSocket: no allocation per byte.
        let mut hex = String::with_capacity(payload.len() * 2);
        for b in payload {
            let _ = write!(hex, "{b:02x}");
        }
        self.out = Some(format!(
            r#"{{"command":"updatePlayer","player":{{"m":"{hex}"}}}}"#
        ));
    }

    fn flush(&mut self) -> io::Result<()> {
        let message = self.out.take().map(Message::text);
        self.waiting = send(&mut self.ws, message)?;
        Ok(())
    }

    fn unflushed(&self) -> bool {
        self.waiting
    }

    fn receive(&mut self, on: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        let (me, decoded) = (self.player_id, &mut self.decoded);
        read_all(&mut self.ws, |m| {
            let Message::Text(text) = m else {
                return Ok(());
            };
            let Ok(answer) = serde_json::from_str::<Answer>(text.as_str()) else {
                return Ok(());
            };
            // The sender's own echo is not a delivery to another player.
            if answer.command != "playerUpdate" || answer.player_id == Some(me) {
                return Ok(());
            }
            let Some(hex) = answer
                .player
                .as_ref()
                .and_then(|p| p.get("m"))
                .and_then(|m| m.as_str())
            else {
                return Ok(());
            };
            decoded.clear();
            for pair in hex.as_bytes().chunks_exact(2) {
                let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                decoded.push(digit(pair[0]) << 4 | digit(pair[1]));
            }
            on(decoded);
            Ok(())
        })
    }
}

/// Colyseus's message codes (`@colyseus/core` `Protocol`): the join handshake and raw-bytes room
/// messages.
const COLYSEUS_JOIN_ROOM: u8 = 10;
const COLYSEUS_ROOM_DATA_BYTES: u8 = 17;
/// The room message type the bench room relays (a positive fixint in Colyseus's encoding).
const COLYSEUS_TYPE: u8 = 7;

/// A Colyseus 0.16 client of the bench's relay room: `POST /matchmake/joinOrCreate/relay` with
/// the session's tag (the room filters on it, so each generator session is one room), then the
/// WebSocket at `/{processId}/{roomId}?sessionId=...`; the server's JOIN_ROOM is acknowledged
/// with JOIN_ROOM. Each payload is one ROOM_DATA_BYTES message (`[17, 7, payload...]`), and the
/// room broadcasts it to the others unchanged.
pub struct ColyseusPlayer {
    ws: Ws,
    /// Messages queued since the last flush (Colyseus reads one message per WebSocket message).
    out: Vec<Vec<u8>>,
    waiting: bool,
}

impl ColyseusPlayer {
    pub fn connect(addr: SocketAddr, session: &str) -> Result<ColyseusPlayer, String> {
        #[derive(serde::Deserialize)]
        struct Room {
            #[serde(rename = "roomId")]
            room_id: String,
            #[serde(rename = "processId")]
            process_id: String,
        }
        #[derive(serde::Deserialize)]
        struct Reservation {
            room: Room,
            #[serde(rename = "sessionId")]
            session_id: String,
        }
        let body = serde_json::json!({ "session": session }).to_string();
        let text = ureq::post(format!("http://{addr}/matchmake/joinOrCreate/relay"))
            .header("Content-Type", "application/json")
            .send(body)
            .map_err(|e| format!("matchmake: {e}"))?
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("matchmake answer: {e}"))?;
        let seat: Reservation =
            serde_json::from_str(&text).map_err(|e| format!("matchmake answer {text}: {e}"))?;
        let mut ws = open_path(
            addr,
            &format!(
                "/{}/{}?sessionId={}",
                seat.room.process_id, seat.room.room_id, seat.session_id
            ),
        )?;
        loop {
            match ws
                .read()
                .map_err(|e| format!("waiting for JOIN_ROOM: {e}"))?
            {
                Message::Binary(b) if b.first() == Some(&COLYSEUS_JOIN_ROOM) => break,
                _ => {}
            }
        }
        ws.send(Message::binary(vec![COLYSEUS_JOIN_ROOM]))
            .map_err(|e| format!("JOIN_ROOM: {e}"))?;
        Ok(ColyseusPlayer {
            ws,
            out: Vec::new(),
            waiting: false,
        })
    }
}

impl Player for ColyseusPlayer {
    fn attach(&mut self, registry: &mio::Registry, token: Token) -> io::Result<()> {
        attach(&mut self.ws, registry, token)
    }

    fn queue(&mut self, _dest: Dest, _intent: Intent, payload: &[u8]) {
        let mut m = Vec::with_capacity(payload.len() + 2);
        m.extend_from_slice(&[COLYSEUS_ROOM_DATA_BYTES, COLYSEUS_TYPE]);
        m.extend_from_slice(payload);
        self.out.push(m);
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut queued = std::mem::take(&mut self.out).into_iter();
        let last = queued.next_back();
        for m in queued {
            match self.ws.write(Message::binary(m)) {
                Ok(()) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(io::Error::other(e.to_string())),
            }
        }
        self.waiting = send(&mut self.ws, last.map(Message::binary))?;
        Ok(())
    }

    fn unflushed(&self) -> bool {
        self.waiting
    }

    fn receive(&mut self, on: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        read_all(&mut self.ws, |m| {
            if let Message::Binary(b) = m
                && b.len() >= 2
                && b[0] == COLYSEUS_ROOM_DATA_BYTES
                && b[1] == COLYSEUS_TYPE
            {
                on(&b[2..]);
            }
            Ok(())
        })
    }
}
