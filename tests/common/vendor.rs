//! The vendor clients' wire, written from the public client sources (PROTOCOL.md sections 16
//! and 17) with a small protobuf encoder of our own, not the server's: a WebSocket as the SDKs
//! open it, GameSparks and GameLift logins, packets and readers.

use super::{TestServer, WAIT};
use std::net::TcpStream;
use tungstenite::{Message, WebSocket};

// ----- a protobuf writer and reader, from the wire format's definition -----

pub fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn key(field: u32, wire: u8, out: &mut Vec<u8>) {
    varint(u64::from(field) << 3 | u64::from(wire), out);
}

pub fn int(field: u32, v: i64, out: &mut Vec<u8>) {
    key(field, 0, out);
    varint(v as u64, out);
}

pub fn sint(field: u32, v: i32, out: &mut Vec<u8>) {
    key(field, 0, out);
    varint(((v << 1) ^ (v >> 31)) as u32 as u64, out);
}

pub fn bytes(field: u32, b: &[u8], out: &mut Vec<u8>) {
    key(field, 2, out);
    varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

pub fn delimited(packet: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(packet.len() as u64, &mut out);
    out.extend_from_slice(packet);
    out
}

#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Int(u64),
    Bytes(Vec<u8>),
}

pub fn read_varint(buf: &mut &[u8]) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = buf[0];
        *buf = &buf[1..];
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            break;
        }
    }
    v
}

/// Every field of a message, in order.
pub fn fields(mut buf: &[u8]) -> Vec<(u32, Val)> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let k = read_varint(&mut buf);
        let val = match k & 7 {
            0 => Val::Int(read_varint(&mut buf)),
            2 => {
                let n = read_varint(&mut buf) as usize;
                let v = buf[..n].to_vec();
                buf = &buf[n..];
                Val::Bytes(v)
            }
            w => panic!("wire type {w} in {buf:?}"),
        };
        out.push(((k >> 3) as u32, val));
    }
    out
}

pub fn get(fields: &[(u32, Val)], n: u32) -> Option<&Val> {
    fields.iter().find(|(f, _)| *f == n).map(|(_, v)| v)
}

pub fn get_int(fields: &[(u32, Val)], n: u32) -> Option<u64> {
    match get(fields, n)? {
        Val::Int(v) => Some(*v),
        Val::Bytes(_) => None,
    }
}

pub fn get_bytes(fields: &[(u32, Val)], n: u32) -> Option<&[u8]> {
    match get(fields, n)? {
        Val::Bytes(b) => Some(b),
        Val::Int(_) => None,
    }
}

pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A WebSocket as the vendor SDKs open it.
pub struct Ws(pub WebSocket<TcpStream>);

impl Ws {
    pub fn open(server: &TestServer) -> Ws {
        let addr = server.ws.expect("WebSocket is on");
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let (ws, _) = tungstenite::client(format!("ws://{addr}/"), stream).unwrap();
        Ws(ws)
    }

    pub fn send(&mut self, message: Vec<u8>) {
        self.0.send(Message::Binary(message.into())).unwrap();
    }

    /// The next binary message; `Err` with the close code if the server closed instead.
    pub fn message(&mut self) -> Result<Vec<u8>, u16> {
        loop {
            match self.0.read() {
                Ok(Message::Binary(b)) => return Ok(b.to_vec()),
                Ok(Message::Close(frame)) => {
                    return Err(frame.map_or(0, |f| u16::from(f.code)));
                }
                Ok(_) => {}
                Err(e) => panic!("WebSocket: {e}"),
            }
        }
    }

    /// Every packet of the next message (each length-prefixed).
    pub fn packets(&mut self) -> Result<Vec<Vec<(u32, Val)>>, u16> {
        let message = self.message()?;
        let mut buf = &message[..];
        let mut out = Vec::new();
        while !buf.is_empty() {
            let n = read_varint(&mut buf) as usize;
            out.push(fields(&buf[..n]));
            buf = &buf[n..];
        }
        Ok(out)
    }

    /// The close code the server ends with, skipping messages before it.
    pub fn closed(&mut self) -> u16 {
        loop {
            if let Err(code) = self.message() {
                return code;
            }
        }
    }
}

// ----- GameSparks (PROTOCOL.md section 16) -----

/// The SDK's login: op 0, payload {1: token, 2: client version 2}.
pub fn gs_login(token: &str) -> Vec<u8> {
    let mut login = Vec::new();
    bytes(1, token.as_bytes(), &mut login);
    int(2, 2, &mut login);
    let mut p = Vec::new();
    sint(1, 0, &mut p);
    bytes(15, &login, &mut p);
    delimited(&p)
}

/// A custom packet as `sendRTData` / `sendBytes` write it.
pub fn gs_packet(
    op: i32,
    targets: &[u64],
    reliable: bool,
    data: Option<&[u8]>,
    payload: Option<&[u8]>,
) -> Vec<u8> {
    let mut p = Vec::new();
    sint(1, op, &mut p);
    for &t in targets {
        int(4, t as i64, &mut p);
    }
    if !reliable {
        int(6, 0, &mut p);
    }
    if let Some(d) = data {
        bytes(14, d, &mut p);
    }
    if let Some(b) = payload {
        bytes(15, b, &mut p);
    }
    delimited(&p)
}

/// A GameSparks client's view of a reserved op's payload (field 15).
pub fn gs_reserved(packet: &[(u32, Val)]) -> (i64, Vec<(u32, Val)>) {
    let op = unzigzag(get_int(packet, 1).unwrap());
    (op, fields(get_bytes(packet, 15).unwrap_or(&[])))
}

pub fn all_ints(fields: &[(u32, Val)], n: u32) -> Vec<u64> {
    fields
        .iter()
        .filter(|(f, _)| *f == n)
        .map(|(_, v)| match v {
            Val::Int(i) => *i,
            Val::Bytes(_) => panic!("field {n} is not a varint"),
        })
        .collect()
}

/// Logs a GameSparks client in; its peer id and the active peers it was told.
pub fn gs_join(server: &TestServer, token: &str) -> (Ws, u64, Vec<u64>) {
    let mut ws = Ws::open(server);
    ws.send(gs_login(token));
    let packets = ws.packets().expect("a login result");
    let (op, result) = gs_reserved(&packets[0]);
    assert_eq!(op, -1, "LOGIN_RESULT");
    assert_eq!(get_int(&result, 1), Some(1), "success");
    assert!(
        get_int(&packets[0], 6).is_none(),
        "no `reliable` field on a WebSocket login"
    );
    // The SDK's PLAYER_READY: bytes 02 08 0d.
    ws.send(vec![0x02, 0x08, 0x0d]);
    (ws, get_int(&result, 3).unwrap(), all_ints(&result, 4))
}

/// The next custom packet (skipping presence).
pub fn gs_custom(ws: &mut Ws) -> Vec<(u32, Val)> {
    loop {
        for p in ws.packets().expect("a packet") {
            if unzigzag(get_int(&p, 1).unwrap()) > 0 {
                return p;
            }
        }
    }
}

// ----- GameLift (PROTOCOL.md section 17) -----

/// The client's login: targetPlayer -1, targetGroup -1, reliable, login {playerSessionId,
/// clientVersion 2}, and the connect payload in field 15.
pub fn gl_login(player_session_id: &str, payload: &[u8]) -> Vec<u8> {
    let mut login = Vec::new();
    bytes(1, player_session_id.as_bytes(), &mut login);
    int(2, 2, &mut login);
    let mut p = Vec::new();
    int(3, -1, &mut p);
    int(4, -1, &mut p);
    int(6, 1, &mut p);
    if !payload.is_empty() {
        bytes(15, payload, &mut p);
    }
    bytes(30, &login, &mut p);
    delimited(&p)
}

/// A message as `newMessage` + `sendMessage` write it.
pub fn gl_message(op: i32, target_player: i64, target_group: i64, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    sint(1, op, &mut p);
    if target_player != 0 {
        int(3, target_player, &mut p);
    }
    if target_group != 0 {
        int(4, target_group, &mut p);
    }
    int(6, 1, &mut p);
    if !payload.is_empty() {
        bytes(15, payload, &mut p);
    }
    delimited(&p)
}

pub fn gl_command(field: u32, group: Option<i64>) -> Vec<u8> {
    let mut body = Vec::new();
    if let Some(g) = group {
        int(1, g, &mut body);
    }
    let mut p = Vec::new();
    int(6, 1, &mut p);
    bytes(field, &body, &mut p);
    delimited(&p)
}

/// The next message: exactly one packet (the client reads one packet per message).
pub fn gl_packet(ws: &mut Ws) -> Result<Vec<(u32, Val)>, u16> {
    let mut packets = ws.packets()?;
    assert_eq!(packets.len(), 1, "one packet per WebSocket message");
    Ok(packets.remove(0))
}

pub fn gl_op(p: &[(u32, Val)]) -> i64 {
    get_int(p, 1).map_or(0, unzigzag)
}

/// Waits for a packet with this op code.
pub fn gl_wait(ws: &mut Ws, op: i64) -> Vec<(u32, Val)> {
    loop {
        let p = gl_packet(ws).expect("a packet");
        if gl_op(&p) == op {
            return p;
        }
    }
}
