//! GameSparks Real-Time clients (PROTOCOL.md section 16): the JavaScript SDK over WebSocket.
//!
//! Each WebSocket message from the client is one length-prefixed `Packet`; each message to it
//! may hold several. Reserved op codes: 0 login, -1 login result, -7 player ready, -101 player
//! connect, -103 player disconnect. RTData (field 14) is translated to and from the native RTData
//! encoding (PROTOCOL.md section 11), so scripts read it with `rt.data.decode`.

use super::ProfileError;
use super::login::Login;
use super::pb::{packets, write_delimited};
use crate::core::Code;
use crate::core::codec::{ClientMsg, Data, Intent, PeerList, ServerMsg, Target};
use crate::rtdata::{RtData, RtValue};
use prost::Message;
use std::collections::BTreeSet;

const OP_LOGIN: i32 = 0;
const OP_LOGIN_RESULT: i32 = -1;
const OP_PING: i32 = -2;
const OP_PLAYER_READY: i32 = -7;
const OP_PLAYER_CONNECT: i32 = -101;
const OP_PLAYER_DISCONNECT: i32 = -103;

/// Deepest RTData nesting translated.
const MAX_DEPTH: usize = 16;

/// The packet (field numbers as the SDK writes them).
#[derive(Clone, PartialEq, Message)]
pub struct Packet {
    /// Op code (zigzag).
    #[prost(sint32, optional, tag = "1")]
    pub op_code: Option<i32>,
    /// For unreliable sequenced packets.
    #[prost(uint64, optional, tag = "2")]
    pub sequence_number: Option<u64>,
    /// Unused by clients.
    #[prost(uint64, optional, tag = "3")]
    pub request_id: Option<u64>,
    /// Receivers; none: every other player.
    #[prost(uint64, repeated, packed = "false", tag = "4")]
    pub target_players: Vec<u64>,
    /// Who sent it (set by the server).
    #[prost(uint64, optional, tag = "5")]
    pub sender: Option<u64>,
    /// Absent: reliable.
    #[prost(bool, optional, tag = "6")]
    pub reliable: Option<bool>,
    /// RTData entries.
    #[prost(bytes = "vec", optional, tag = "14")]
    pub data: Option<Vec<u8>>,
    /// Raw bytes, or a reserved op code's message.
    #[prost(bytes = "vec", optional, tag = "15")]
    pub payload: Option<Vec<u8>>,
}

/// Op 0's payload.
#[derive(Clone, PartialEq, Message)]
pub struct LoginCommand {
    /// The connect token.
    #[prost(string, optional, tag = "1")]
    pub token: Option<String>,
    /// 2 for the JavaScript SDK.
    #[prost(int32, optional, tag = "2")]
    pub client_version: Option<i32>,
}

/// Op -1's payload.
#[derive(Clone, PartialEq, Message)]
pub struct LoginResult {
    /// Always true (a refused login is a closed connection: the SDK ignores this field).
    #[prost(bool, optional, tag = "1")]
    pub success: Option<bool>,
    /// What the client logs in with if it reconnects.
    #[prost(string, optional, tag = "2")]
    pub reconnect_token: Option<String>,
    /// The client's peer id.
    #[prost(uint64, optional, tag = "3")]
    pub peer_id: Option<u64>,
    /// The other players.
    #[prost(uint64, repeated, packed = "false", tag = "4")]
    pub active_peers: Vec<u64>,
    /// No UDP: never set.
    #[prost(uint64, optional, tag = "5")]
    pub fast_port: Option<u64>,
}

/// Ops -101 and -103's payload.
#[derive(Clone, PartialEq, Message)]
pub struct PlayerMessage {
    /// Who connected or disconnected.
    #[prost(uint64, optional, tag = "1")]
    pub peer_id: Option<u64>,
    /// Every player now in the session.
    #[prost(uint64, repeated, packed = "false", tag = "4")]
    pub active_peers: Vec<u64>,
}

/// Whether a first message is a GameSparks login (op 0 with a LoginCommand carrying a token).
pub(crate) fn is_login(message: &[u8]) -> bool {
    let Ok(list) = packets(message) else {
        return false;
    };
    let Some(Ok(p)) = list.first().map(|b| Packet::decode(*b)) else {
        return false;
    };
    p.op_code == Some(OP_LOGIN)
        && p.payload
            .as_deref()
            .and_then(|b| LoginCommand::decode(b).ok())
            .is_some_and(|l| l.token.is_some())
}

/// One GameSparks connection's translation state.
#[derive(Debug, Default)]
pub struct Adapter {
    logged_in: bool,
    token: String,
    peer: u16,
    /// Every player in the session, this one included.
    active: BTreeSet<u16>,
}

impl Adapter {
    pub(super) fn take_client_message(
        &mut self,
        message: &[u8],
        to_core: &mut Vec<u8>,
    ) -> Result<usize, ProfileError> {
        let mut ignored = 0;
        for bytes in packets(message)? {
            let p = Packet::decode(bytes)
                .map_err(|e| ProfileError::malformed(format!("not a GameSparks packet: {e}")))?;
            match p.op_code.unwrap_or(0) {
                OP_LOGIN => {
                    if self.logged_in {
                        return Err(ProfileError::new(
                            Code::UnexpectedMessage,
                            "logged in already",
                        ));
                    }
                    let login = p
                        .payload
                        .as_deref()
                        .and_then(|b| LoginCommand::decode(b).ok())
                        .ok_or_else(|| ProfileError::malformed("op 0 without a LoginCommand"))?;
                    self.token = login.token.unwrap_or_default();
                    Login::parse(&self.token)?.hello(&[], to_core);
                    self.logged_in = true;
                }
                // Sent once after the login result; the ping has no answer this SDK survives.
                OP_PLAYER_READY | OP_PING => ignored += 1,
                op if op < 0 => {
                    log::debug!("GameSparks client sent reserved op code {op}; ignored");
                    ignored += 1;
                }
                op => {
                    if !self.logged_in {
                        return Err(ProfileError::new(
                            Code::UnexpectedMessage,
                            "the first packet must be the login (op 0)",
                        ));
                    }
                    self.custom(op as u32, &p, to_core)?;
                }
            }
        }
        Ok(ignored)
    }

    /// A custom packet: DATA to its targets, RTData translated to the native encoding.
    fn custom(
        &mut self,
        opcode: u32,
        p: &Packet,
        to_core: &mut Vec<u8>,
    ) -> Result<(), ProfileError> {
        let intent = match (p.reliable, p.sequence_number) {
            (Some(false), Some(_)) => Intent::UnreliableSequenced,
            (Some(false), None) => Intent::Unreliable,
            _ => Intent::Reliable,
        };
        let mut peers = Vec::with_capacity(p.target_players.len() * 2);
        for &t in &p.target_players {
            let peer = u16::try_from(t).map_err(|_| {
                ProfileError::malformed(format!("target player {t} is not a peer id"))
            })?;
            peers.extend_from_slice(&peer.to_le_bytes());
        }
        if peers.len() > 255 * 2 {
            return Err(ProfileError::malformed("more than 255 target players"));
        }
        let target = if peers.is_empty() {
            Target::AllOthers
        } else {
            Target::Peers(PeerList::from_wire(&peers))
        };
        let native_data;
        let payload: &[u8] = match (&p.data, &p.payload) {
            (Some(entries), _) => {
                native_data = rtdata_from_gamesparks(entries, 0)
                    .map_err(|e| ProfileError::malformed(format!("RTData: {e}")))?
                    .encode();
                if p.payload.is_some() {
                    log::debug!("GameSparks packet with RTData and bytes: the bytes are dropped");
                }
                &native_data
            }
            (None, Some(bytes)) => bytes,
            (None, None) => &[],
        };
        ClientMsg::Data(Data {
            intent,
            opcode,
            target,
            payload,
        })
        .encode(to_core);
        Ok(())
    }

    pub(super) fn write_for_client(&mut self, msg: &ServerMsg<'_>, out: &mut Vec<u8>) {
        match msg {
            ServerMsg::Welcome(w) => {
                self.peer = w.peer;
                self.active = w.peers.iter().map(|p| p.peer).collect();
                let result = LoginResult {
                    success: Some(true),
                    reconnect_token: Some(self.token.clone()),
                    peer_id: Some(w.peer.into()),
                    active_peers: self.active.iter().map(|&p| p.into()).collect(),
                    fast_port: None,
                };
                self.active.insert(w.peer);
                reserved(OP_LOGIN_RESULT, &result, out);
            }
            ServerMsg::PlayerJoined(info) => {
                self.active.insert(info.peer);
                self.presence(OP_PLAYER_CONNECT, info.peer, out);
            }
            ServerMsg::PlayerLeft { peer, .. } => {
                self.active.remove(peer);
                self.presence(OP_PLAYER_DISCONNECT, *peer, out);
            }
            ServerMsg::Delivery {
                intent,
                opcode,
                sender,
                seq,
                payload,
            } => {
                let Ok(op_code) = i32::try_from(*opcode) else {
                    return; // beyond what the SDK's op codes hold
                };
                let mut p = Packet {
                    op_code: Some(op_code),
                    sequence_number: (*intent == Intent::UnreliableSequenced)
                        .then_some(u64::from(*seq)),
                    sender: Some(u64::from(*sender)),
                    ..Packet::default()
                };
                match RtData::decode(payload)
                    .ok()
                    .filter(|_| !payload.is_empty())
                    .and_then(|d| rtdata_to_gamesparks(&d, 0))
                {
                    Some(entries) => p.data = Some(entries),
                    None if !payload.is_empty() => p.payload = Some(payload.to_vec()),
                    None => {}
                }
                write_delimited(&p, out);
            }
            // Refusals and closes end the WebSocket with the code; the rest has no GameSparks
            // form (this SDK crashes on a ping result or a UDP message).
            _ => {}
        }
    }

    fn presence(&self, op: i32, peer: u16, out: &mut Vec<u8>) {
        let msg = PlayerMessage {
            peer_id: Some(peer.into()),
            active_peers: self.active.iter().map(|&p| p.into()).collect(),
        };
        reserved(op, &msg, out);
    }
}

/// A reserved op code's packet: the message in field 15.
fn reserved(op: i32, body: &impl Message, out: &mut Vec<u8>) {
    let p = Packet {
        op_code: Some(op),
        payload: Some(body.encode_to_vec()),
        ..Packet::default()
    };
    write_delimited(&p, out);
}

/// Takes one varint.
fn varint(buf: &mut &[u8]) -> Result<u64, String> {
    prost::encoding::decode_varint(buf).map_err(|e| e.to_string())
}

/// Takes `n` bytes.
fn take<'a>(buf: &mut &'a [u8], n: u64) -> Result<&'a [u8], String> {
    let n = usize::try_from(n).map_err(|_| "length too large".to_string())?;
    if buf.len() < n {
        return Err(format!("{n} bytes announced, {} left", buf.len()));
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Ok(head)
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// GameSparks RTData entries (each keyed `index << 3 | wire type`) as native RTData.
pub fn rtdata_from_gamesparks(entries: &[u8], depth: usize) -> Result<RtData, String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH}"));
    }
    let mut buf = entries;
    let mut data = RtData::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let index = key >> 3;
        if !(1..=127).contains(&index) {
            return Err(format!("field index {index} is outside 1-127"));
        }
        let value = match key & 7 {
            0 => {
                let z = varint(&mut buf)?;
                RtValue::Long(((z >> 1) as i64) ^ -((z & 1) as i64))
            }
            5 => {
                let b = take(&mut buf, 4)?;
                RtValue::Float(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            1 => {
                let b = take(&mut buf, 8)?;
                RtValue::Double(f64::from_le_bytes(b.try_into().expect("8 bytes")))
            }
            2 => {
                let len = varint(&mut buf)?;
                let mut val = take(&mut buf, len)?;
                let inner = varint(&mut val)?;
                let len = varint(&mut val)?;
                let body = take(&mut val, len)?;
                match inner {
                    0x0a => RtValue::String(match std::str::from_utf8(body) {
                        Ok(s) => s.to_owned(),
                        // The JavaScript SDK writes one byte per character code.
                        Err(_) => body.iter().map(|&b| b as char).collect(),
                    }),
                    0x12 => {
                        if body.is_empty() || body.len() > 16 || body.len() % 4 != 0 {
                            return Err(format!("a vector of {} bytes", body.len()));
                        }
                        RtValue::Vector(floats(body))
                    }
                    0x72 => RtValue::Data(rtdata_from_gamesparks(body, depth + 1)?),
                    other => return Err(format!("value kind {other:#x} is not known")),
                }
            }
            wire => return Err(format!("wire type {wire} is not an RTData type")),
        };
        data.set(index as u8, value);
    }
    Ok(data)
}

/// Native RTData as GameSparks RTData entries; `None` if a field index is over 127 (GameSparks
/// has 127 slots).
pub fn rtdata_to_gamesparks(data: &RtData, depth: usize) -> Option<Vec<u8>> {
    use prost::encoding::encode_varint;
    if depth > MAX_DEPTH {
        return None;
    }
    let mut out = Vec::new();
    for (index, value) in data.iter() {
        if index > 127 {
            return None;
        }
        let key = |wire: u64| (u64::from(index) << 3) | wire;
        let val = |kind: u8, body: &[u8], out: &mut Vec<u8>| {
            let mut inner = vec![kind];
            encode_varint(body.len() as u64, &mut inner);
            inner.extend_from_slice(body);
            encode_varint(key(2), out);
            encode_varint(inner.len() as u64, out);
            out.extend_from_slice(&inner);
        };
        match value {
            RtValue::Long(v) => {
                encode_varint(key(0), &mut out);
                encode_varint(((v << 1) ^ (v >> 63)) as u64, &mut out);
            }
            RtValue::Float(v) => {
                encode_varint(key(5), &mut out);
                out.extend_from_slice(&v.to_le_bytes());
            }
            RtValue::Double(v) => {
                encode_varint(key(1), &mut out);
                out.extend_from_slice(&v.to_le_bytes());
            }
            RtValue::String(s) => val(0x0a, s.as_bytes(), &mut out),
            RtValue::Vector(v) => {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                val(0x12, &bytes, &mut out);
            }
            RtValue::Data(d) => {
                let nested = rtdata_to_gamesparks(d, depth + 1)?;
                val(0x72, &nested, &mut out);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdks_rtdata_bytes_translate_both_ways_keeping_each_type() {
        // From a test client: long 1234567890123 at 1, string "hello" at 2, float 1.25 at 3,
        // vector (1.5, -2.25, 3) at 4.
        let gs = [
            0x08, 0x96, 0x93, 0xd8, 0x9f, 0xee, 0x47, 0x12, 0x07, 0x0a, 0x05, b'h', b'e', b'l',
            b'l', b'o', 0x1d, 0x00, 0x00, 0xa0, 0x3f, 0x22, 0x0e, 0x12, 0x0c, 0x00, 0x00, 0xc0,
            0x3f, 0x00, 0x00, 0x10, 0xc0, 0x00, 0x00, 0x40, 0x40,
        ];
        let data = rtdata_from_gamesparks(&gs, 0).unwrap();
        assert_eq!(data.get_long(1), Some(1_234_567_890_123));
        assert_eq!(data.get_string(2), Some("hello"));
        assert_eq!(data.get(3), Some(&RtValue::Float(1.25)));
        assert_eq!(data.get(4), Some(&RtValue::Vector(vec![1.5, -2.25, 3.0])));
        assert_eq!(rtdata_to_gamesparks(&data, 0).unwrap(), gs);
    }

    #[test]
    fn bad_rtdata_is_an_error_not_a_panic() {
        for bad in [
            &[0x08][..],                     // truncated varint value
            &[0x00, 0x01],                   // index 0
            &[0x0b, 0x00],                   // wire type 3
            &[0x12, 0x05, 0x0a, 0x09],       // string longer than its value
            &[0x12, 0x03, 0x12, 0x01, 0x00], // vector of 1 byte
        ] {
            assert!(rtdata_from_gamesparks(bad, 0).is_err(), "{bad:?}");
        }
        // Nesting past the limit.
        let mut nested = vec![0x08, 0x02];
        for _ in 0..20 {
            let mut inner = vec![0x72];
            prost::encoding::encode_varint(nested.len() as u64, &mut inner);
            inner.extend_from_slice(&nested);
            let mut outer = vec![0x0a];
            prost::encoding::encode_varint(inner.len() as u64, &mut outer);
            outer.extend_from_slice(&inner);
            nested = outer;
        }
        assert!(rtdata_from_gamesparks(&nested, 0).is_err());
    }
}
