//! Wire protocol v1: framing and every message, both directions, byte for byte as in PROTOCOL.md.
//!
//! All integers are little-endian. A frame is `u32 len` followed by `len` bytes: one type byte and
//! the message body. A string is `u16 byte length` + UTF-8. A "rest" field takes every byte left in
//! the frame, so payloads need no length of their own. Decoding borrows from the input buffer: the
//! relay path never copies or interprets payload bytes.
//!
//! Messages without a rest field may grow new trailing fields in later minor versions; decoders
//! ignore bytes after the fields they know.

use super::codes::Code;

/// The protocol version this build speaks (HELLO and WELCOME carry it).
pub const PROTOCOL_VERSION: u16 = 1;
/// Bytes in a frame's length prefix.
pub const LEN_PREFIX: usize = 4;
/// Bytes in the header of a client-to-server UDP datagram: `u32 conn_id` + `u64 secret`.
pub const UDP_HEADER: usize = 12;
/// Bytes of a DELIVERY frame before its payload (length prefix included).
pub const DELIVERY_HEADER: usize = LEN_PREFIX + 12;
/// Longest string the server accepts in a HELLO (session name, player id, player name).
pub const MAX_NAME_BYTES: usize = 128;
/// Longest access token the server accepts.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Largest player or session properties the server keeps.
pub const MAX_PROPS_BYTES: usize = 4096;

/// Message type bytes. Client-to-server types are 0x01..=0x7F, server-to-client 0x81..=0xFF.
pub mod msg_type {
    /// Client: handshake.
    pub const HELLO: u8 = 0x01;
    /// Client: a message to relay.
    pub const DATA: u8 = 0x02;
    /// Client: join a group.
    pub const GROUP_JOIN: u8 = 0x03;
    /// Client: leave a group.
    pub const GROUP_LEAVE: u8 = 0x04;
    /// Client: ask for a group's members.
    pub const GROUP_QUERY: u8 = 0x05;
    /// Client: ping with the client's timestamp.
    pub const PING: u8 = 0x06;
    /// Client: leave the session and close.
    pub const LEAVE: u8 = 0x07;
    /// Client (UDP only): bind this datagram's source address to the connection.
    pub const UDP_BIND: u8 = 0x08;
    /// Client: set this player's custom properties (opaque bytes).
    pub const SET_PLAYER_PROPS: u8 = 0x09;
    /// Client: set the session's custom properties (opaque bytes).
    pub const SET_SESSION_PROPS: u8 = 0x0A;
    /// Client: ask to start or stop frame sync (lockstep).
    pub const FRAME_SYNC: u8 = 0x0B;
    /// Client: this player's input for the current frame.
    pub const FRAME_INPUT: u8 = 0x0C;
    /// Client: send frames again from a number (missed ones).
    pub const FRAME_REQUEST: u8 = 0x0D;
    /// Server: handshake accepted.
    pub const WELCOME: u8 = 0x81;
    /// Server: handshake refused; the connection closes.
    pub const REJECT: u8 = 0x82;
    /// Server: a relayed or server-originated message.
    pub const DELIVERY: u8 = 0x83;
    /// Server: a player joined the session.
    pub const PLAYER_JOINED: u8 = 0x84;
    /// Server: a player left the session.
    pub const PLAYER_LEFT: u8 = 0x85;
    /// Server: a group's current members.
    pub const GROUP_MEMBERS: u8 = 0x86;
    /// Server: answer to PING.
    pub const PONG: u8 = 0x87;
    /// Server: the connection is closing, with a reason.
    pub const CLOSE: u8 = 0x88;
    /// Server: a non-fatal error about something the client sent.
    pub const ERROR: u8 = 0x89;
    /// Server (UDP only): the UDP address is bound.
    pub const UDP_BOUND: u8 = 0x8A;
    /// Server: a player's custom properties.
    pub const PLAYER_PROPS: u8 = 0x8B;
    /// Server: the session's custom properties.
    pub const SESSION_PROPS: u8 = 0x8C;
    /// Server: a player's connection dropped; its seat is held for it.
    pub const PLAYER_AWAY: u8 = 0x8D;
    /// Server: a player whose seat was held is back.
    pub const PLAYER_BACK: u8 = 0x8E;
    /// Server: frame sync started or stopped.
    pub const FRAME_SYNC_STATE: u8 = 0x8F;
    /// Server: one frame of collected inputs.
    pub const FRAME: u8 = 0x90;
}

/// Why bytes could not be decoded. `Incomplete` is not here: it is `Ok(None)` from [`split_frame`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The length prefix is 0 (no type byte).
    #[error("empty frame (length 0)")]
    EmptyFrame,
    /// The length prefix is over the allowed maximum.
    #[error("frame of {len} bytes is over the limit of {max}")]
    TooLarge {
        /// Declared length.
        len: usize,
        /// Allowed maximum.
        max: usize,
    },
    /// The type byte is not a message this version knows in this direction.
    #[error("unknown message type 0x{0:02x}")]
    UnknownType(u8),
    /// A field ran past the end of the frame.
    #[error("{0} is truncated")]
    Truncated(&'static str),
    /// A string field is not UTF-8.
    #[error("{0} is not valid UTF-8")]
    BadUtf8(&'static str),
    /// An enum field has a value outside its range.
    #[error("{field} has invalid value {value}")]
    BadValue {
        /// Which field.
        field: &'static str,
        /// The value seen.
        value: u32,
    },
}

impl DecodeError {
    /// The code a server reports for this error.
    pub fn code(&self) -> Code {
        match self {
            DecodeError::TooLarge { .. } => Code::FrameTooLarge,
            DecodeError::UnknownType(_) => Code::UnknownMessageType,
            _ => Code::Malformed,
        }
    }
}

/// Splits the first complete frame off `buf`: `Ok(Some((body, consumed)))` where `body` starts with
/// the type byte, `Ok(None)` when more bytes are needed (an expected condition, not an error).
pub fn split_frame(buf: &[u8], max_frame: usize) -> Result<Option<(&[u8], usize)>, DecodeError> {
    if buf.len() < LEN_PREFIX {
        return Ok(None);
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len == 0 {
        return Err(DecodeError::EmptyFrame);
    }
    if len > max_frame {
        return Err(DecodeError::TooLarge {
            len,
            max: max_frame,
        });
    }
    if buf.len() < LEN_PREFIX + len {
        return Ok(None);
    }
    Ok(Some((&buf[LEN_PREFIX..LEN_PREFIX + len], LEN_PREFIX + len)))
}

/// How a message should travel and what receivers may assume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Intent {
    /// TCP, in order, never lost while the connection lives.
    Reliable = 0,
    /// UDP once bound (TCP before), may be lost or reordered.
    Unreliable = 1,
    /// Like `Unreliable`; receivers drop any that is older than the newest seen from the sender.
    UnreliableSequenced = 2,
}

impl Intent {
    fn from_u8(v: u8) -> Result<Intent, DecodeError> {
        match v {
            0 => Ok(Intent::Reliable),
            1 => Ok(Intent::Unreliable),
            2 => Ok(Intent::UnreliableSequenced),
            _ => Err(DecodeError::BadValue {
                field: "intent",
                value: v.into(),
            }),
        }
    }

    /// Its name where people write intents (scripts, `moonrt test`, the bench's CLI).
    pub fn name(self) -> &'static str {
        match self {
            Intent::Reliable => "reliable",
            Intent::Unreliable => "unreliable",
            Intent::UnreliableSequenced => "sequenced",
        }
    }

    /// Whether this intent prefers UDP.
    pub fn is_unreliable(self) -> bool {
        self != Intent::Reliable
    }
}

impl std::str::FromStr for Intent {
    type Err = String;

    /// `"reliable"`, `"unreliable"` or `"sequenced"`; the error says which names there are.
    fn from_str(name: &str) -> Result<Intent, String> {
        [
            Intent::Reliable,
            Intent::Unreliable,
            Intent::UnreliableSequenced,
        ]
        .into_iter()
        .find(|i| i.name() == name)
        .ok_or_else(|| {
            format!("intent must be \"reliable\", \"unreliable\" or \"sequenced\" (got {name:?})")
        })
    }
}

/// How a HELLO picks its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinMode<'a> {
    /// Create a new session, optionally with a unique name (empty = unnamed).
    Create(&'a str),
    /// Join the session with this id.
    JoinId(u64),
    /// Join the session with this name, creating it if none exists.
    JoinOrCreate(&'a str),
    /// Take back a held seat in the session with this id (the payload carries the peer id and
    /// the reconnect secret from WELCOME).
    Reconnect(u64),
    /// Join any listed session with a free seat whose parameters match these
    /// (`key=value&...`, form-urlencoded; empty matches every listed session), else create one.
    JoinAny(&'a str),
}

impl JoinMode<'_> {
    /// The mode's value on the wire (1 to 5).
    pub fn wire(&self) -> u8 {
        match self {
            JoinMode::Create(_) => 1,
            JoinMode::JoinId(_) => 2,
            JoinMode::JoinOrCreate(_) => 3,
            JoinMode::Reconnect(_) => 4,
            JoinMode::JoinAny(_) => 5,
        }
    }
}

/// A decoded HELLO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello<'a> {
    /// Protocol version the client speaks.
    pub version: u16,
    /// Which session to enter.
    pub mode: JoinMode<'a>,
    /// Access token (empty = none).
    pub token: &'a str,
    /// The game's own id for the player (empty = anonymous).
    pub player_id: &'a str,
    /// Display name shown to other players.
    pub player_name: &'a str,
    /// Opaque bytes for the connect check (a script sees them).
    pub payload: &'a [u8],
    /// The field the join mode says must be empty or 0 but is not (`session_id` in modes 1 and
    /// 3, `session_name` in mode 2); the server refuses such a HELLO with code 7. Never encoded.
    pub stray_field: Option<&'static str>,
}

/// Who a DATA message is for. Peer lists stay in wire form; iterate with [`PeerList::iter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// Every other player in the session.
    AllOthers,
    /// The listed peers (peer 0 means the server).
    Peers(PeerList<'a>),
    /// Every member of a group except the sender.
    Group(u16),
    /// The server (peer 0) only.
    Server,
}

/// A list of u16 peer ids, borrowed in wire form (no allocation to decode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerList<'a>(&'a [u8]);

impl<'a> PeerList<'a> {
    /// Wraps wire bytes (`2 * n` bytes of u16 LE).
    pub fn from_wire(bytes: &'a [u8]) -> PeerList<'a> {
        PeerList(bytes)
    }

    /// The peer ids in order, duplicates included.
    pub fn iter(&self) -> impl Iterator<Item = u16> + 'a {
        self.0
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.0.len() / 2
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `peer` appears before position `index`.
    pub fn seen_before(&self, index: usize, peer: u16) -> bool {
        self.iter().take(index).any(|p| p == peer)
    }
}

/// A decoded DATA message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Data<'a> {
    /// Delivery intent.
    pub intent: Intent,
    /// Game-defined opcode; 0 is invalid.
    pub opcode: u32,
    /// Receivers.
    pub target: Target<'a>,
    /// Opaque payload, never interpreted by the server.
    pub payload: &'a [u8],
}

/// A FRAME's inputs as they travel: `count: u16`, then per input `peer: u16`, `len: u16` and
/// `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInputs<'a>(pub &'a [u8]);

impl<'a> FrameInputs<'a> {
    /// Encodes inputs for a FRAME (at most 65535 inputs of at most 65535 bytes: the core and
    /// the script host keep within that; anything beyond is left out, never miscounted).
    pub fn encode(inputs: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let kept: Vec<&(u16, Vec<u8>)> = inputs
            .iter()
            .filter(|(_, b)| b.len() <= u16::MAX as usize)
            .take(u16::MAX as usize)
            .collect();
        let mut out = Vec::new();
        out.extend_from_slice(&(kept.len() as u16).to_le_bytes());
        for (peer, bytes) in kept {
            out.extend_from_slice(&peer.to_le_bytes());
            out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            out.extend_from_slice(bytes);
        }
        out
    }

    fn check(wire: &[u8]) -> Result<(), DecodeError> {
        let mut r = Reader { buf: wire };
        let n = r.u16("input count")?;
        for _ in 0..n {
            r.u16("input peer")?;
            let len = r.u16("input length")? as usize;
            r.take(len, "input")?;
        }
        Ok(())
    }

    /// The inputs, in order: (peer, bytes).
    pub fn iter(&self) -> impl Iterator<Item = (u16, &'a [u8])> {
        let mut r = Reader { buf: self.0 };
        let n = r.u16("input count").unwrap_or(0);
        (0..n).map_while(move |_| {
            let peer = r.u16("input peer").ok()?;
            let len = r.u16("input length").ok()? as usize;
            Some((peer, r.take(len, "input").ok()?))
        })
    }
}

/// Every message a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMsg<'a> {
    /// Handshake.
    Hello(Hello<'a>),
    /// A message to route.
    Data(Data<'a>),
    /// Join a group.
    GroupJoin(u16),
    /// Leave a group.
    GroupLeave(u16),
    /// Ask for a group's members.
    GroupQuery(u16),
    /// Ping; the server echoes `client_time`.
    Ping {
        /// Any client timestamp, echoed unchanged.
        client_time: u64,
    },
    /// Leave the session and close.
    Leave,
    /// Bind the UDP source address (UDP only).
    UdpBind,
    /// Set this player's custom properties.
    SetPlayerProps(&'a [u8]),
    /// Set the session's custom properties.
    SetSessionProps(&'a [u8]),
    /// Start (`on`) or stop frame sync, at `rate` frames per second.
    FrameSync {
        /// Start or stop.
        on: bool,
        /// Frames per second (1-60) when starting.
        rate: u8,
    },
    /// This player's input for the current frame.
    FrameInput(&'a [u8]),
    /// Send `count` frames again, from frame `from`.
    FrameRequest {
        /// The first frame wanted.
        from: u32,
        /// How many.
        count: u16,
    },
}

/// A player listed in WELCOME or announced by PLAYER_JOINED.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo<'a> {
    /// Peer id in the session.
    pub peer: u16,
    /// The game's id for the player.
    pub player_id: &'a str,
    /// Display name.
    pub name: &'a str,
}

/// A decoded WELCOME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome<'a> {
    /// Protocol version the server speaks.
    pub version: u16,
    /// The client's peer id.
    pub peer: u16,
    /// The session's id.
    pub session_id: u64,
    /// Connection id to put in UDP datagram headers.
    pub udp_conn_id: u32,
    /// Secret to put in UDP datagram headers.
    pub udp_secret: u64,
    /// UDP port of the server (same host as TCP); 0 if UDP is off.
    pub udp_port: u16,
    /// Server wall clock, microseconds since the Unix epoch.
    pub server_time_us: u64,
    /// The server closes a connection silent for this long; ping more often.
    pub idle_timeout_ms: u32,
    /// Largest frame (type byte + body) the server accepts.
    pub max_frame_bytes: u32,
    /// The session's name (empty if unnamed).
    pub session_name: &'a str,
    /// Players already in the session.
    pub peers: Vec<PeerInfo<'a>>,
    /// The secret that takes this seat back after a dropped connection (HELLO mode 4); 0 when
    /// the server holds no seats (`sessions.reconnect_grace_ms` = 0).
    pub reconnect_secret: u64,
}

/// Every message a server sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMsg<'a> {
    /// Handshake accepted.
    Welcome(Welcome<'a>),
    /// Handshake refused.
    Reject {
        /// Why.
        code: u16,
        /// Human-readable detail.
        message: &'a str,
    },
    /// A message for this client.
    Delivery {
        /// Intent the sender used.
        intent: Intent,
        /// Opcode.
        opcode: u32,
        /// Sender's peer id (0 = server).
        sender: u16,
        /// Per-sender sequence number.
        seq: u32,
        /// Payload bytes as the sender wrote them.
        payload: &'a [u8],
    },
    /// A player joined.
    PlayerJoined(PeerInfo<'a>),
    /// A player left.
    PlayerLeft {
        /// Who.
        peer: u16,
        /// Why (a [`Code`]).
        reason: u16,
    },
    /// A player's connection dropped; its seat is held until it comes back or the grace ends.
    PlayerAway {
        /// Who.
        peer: u16,
    },
    /// A player whose seat was held is back, with the same peer id.
    PlayerBack {
        /// Who.
        peer: u16,
    },
    /// Frame sync started (`on`) or stopped.
    FrameSyncState {
        /// Whether it runs.
        on: bool,
        /// Frames per second.
        rate: u8,
        /// The random seed every frame carries.
        seed: u32,
        /// The number of the next frame.
        next_frame: u32,
    },
    /// One frame: its number, the seed, and the inputs collected during it (peer, bytes),
    /// encoded as on the wire (`count: u16`, then per input `peer: u16`, `len: u16`, bytes).
    Frame {
        /// Its number, from 1.
        number: u32,
        /// The seed of this frame sync.
        seed: u32,
        /// The inputs, as encoded on the wire.
        inputs: FrameInputs<'a>,
    },
    /// A group's members.
    GroupMembers {
        /// Which group.
        group: u16,
        /// Peer ids in the group, wire form.
        members: PeerList<'a>,
    },
    /// Answer to PING.
    Pong {
        /// The PING's `client_time`.
        client_time: u64,
        /// Server wall clock, microseconds since the Unix epoch.
        server_time_us: u64,
    },
    /// The connection closes.
    Close {
        /// Why.
        code: u16,
        /// Human-readable detail.
        message: &'a str,
    },
    /// A non-fatal error about something the client sent.
    Error {
        /// What.
        code: u16,
        /// Human-readable detail.
        message: &'a str,
        /// The value the error is about: the unknown peer id (31), the group id (32, 33), the
        /// opcode (30); 0 otherwise.
        detail: u32,
    },
    /// UDP bound.
    UdpBound,
    /// A player's custom properties.
    PlayerProps {
        /// Whose.
        peer: u16,
        /// The properties, opaque.
        props: &'a [u8],
    },
    /// The session's custom properties.
    SessionProps {
        /// Who set them (0 = the server).
        by: u16,
        /// The properties, opaque.
        props: &'a [u8],
    },
}

/// Reads fields from a frame body.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated(field));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }
    fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        let b = self.take(2, field)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, field)?;
        Ok(u32::from_le_bytes(b.try_into().expect("took 4 bytes")))
    }
    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let b = self.take(8, field)?;
        Ok(u64::from_le_bytes(b.try_into().expect("took 8 bytes")))
    }
    fn str(&mut self, field: &'static str) -> Result<&'a str, DecodeError> {
        let len = self.u16(field)? as usize;
        let bytes = self.take(len, field)?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::BadUtf8(field))
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
}

/// Appends fields to an output buffer.
pub(crate) trait Put {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn put_str(&mut self, s: &str);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_str(&mut self, s: &str) {
        // Callers keep strings under 64 KiB (names are capped at MAX_NAME_BYTES, messages are ours).
        let len = s.len().min(u16::MAX as usize);
        self.put_u16(len as u16);
        self.extend_from_slice(&s.as_bytes()[..len]);
    }
}

/// Starts a frame in `buf`: reserves the length prefix and writes the type byte. Returns the
/// frame's start, to pass to [`end_frame`].
pub(crate) fn begin_frame(buf: &mut Vec<u8>, msg_type: u8) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0, 0, 0, 0, msg_type]);
    start
}

/// Finishes a frame started by [`begin_frame`] by filling in its length prefix.
pub(crate) fn end_frame(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start - LEN_PREFIX) as u32;
    buf[start..start + LEN_PREFIX].copy_from_slice(&len.to_le_bytes());
}

/// Builds the 16 bytes that precede a DELIVERY's payload (length prefix included), so one relayed
/// message costs each receiver two `extend_from_slice` calls and nothing else.
pub fn delivery_header(
    intent: Intent,
    opcode: u32,
    sender: u16,
    seq: u32,
    payload_len: usize,
) -> [u8; DELIVERY_HEADER] {
    let mut h = [0u8; DELIVERY_HEADER];
    let len = (DELIVERY_HEADER - LEN_PREFIX + payload_len) as u32;
    h[0..4].copy_from_slice(&len.to_le_bytes());
    h[4] = msg_type::DELIVERY;
    h[5] = intent as u8;
    h[6..10].copy_from_slice(&opcode.to_le_bytes());
    h[10..12].copy_from_slice(&sender.to_le_bytes());
    h[12..16].copy_from_slice(&seq.to_le_bytes());
    h
}

impl<'a> ClientMsg<'a> {
    /// Decodes a frame body (type byte first) sent by a client.
    pub fn decode(body: &'a [u8]) -> Result<ClientMsg<'a>, DecodeError> {
        let mut r = Reader { buf: body };
        let t = r.u8("type")?;
        Ok(match t {
            msg_type::HELLO => {
                let version = r.u16("version")?;
                let mode_byte = r.u8("join mode")?;
                let session_id = r.u64("session id")?;
                let session_name = r.str("session name")?;
                let stray_field = match mode_byte {
                    1 | 3 | 5 if session_id != 0 => Some("session_id"),
                    2 | 4 if !session_name.is_empty() => Some("session_name"),
                    _ => None,
                };
                let mode = match mode_byte {
                    1 => JoinMode::Create(session_name),
                    2 => JoinMode::JoinId(session_id),
                    3 => JoinMode::JoinOrCreate(session_name),
                    4 => JoinMode::Reconnect(session_id),
                    5 => JoinMode::JoinAny(session_name),
                    v => {
                        return Err(DecodeError::BadValue {
                            field: "join mode",
                            value: v.into(),
                        });
                    }
                };
                ClientMsg::Hello(Hello {
                    version,
                    mode,
                    token: r.str("token")?,
                    player_id: r.str("player id")?,
                    player_name: r.str("player name")?,
                    payload: r.rest(),
                    stray_field,
                })
            }
            msg_type::DATA => {
                let intent = Intent::from_u8(r.u8("intent")?)?;
                let opcode = r.u32("opcode")?;
                let target = match r.u8("target kind")? {
                    0 => Target::AllOthers,
                    1 => {
                        let n = r.u8("peer count")? as usize;
                        Target::Peers(PeerList(r.take(2 * n, "peer list")?))
                    }
                    2 => Target::Group(r.u16("group id")?),
                    3 => Target::Server,
                    v => {
                        return Err(DecodeError::BadValue {
                            field: "target kind",
                            value: v.into(),
                        });
                    }
                };
                ClientMsg::Data(Data {
                    intent,
                    opcode,
                    target,
                    payload: r.rest(),
                })
            }
            msg_type::GROUP_JOIN => ClientMsg::GroupJoin(r.u16("group id")?),
            msg_type::GROUP_LEAVE => ClientMsg::GroupLeave(r.u16("group id")?),
            msg_type::GROUP_QUERY => ClientMsg::GroupQuery(r.u16("group id")?),
            msg_type::PING => ClientMsg::Ping {
                client_time: r.u64("client time")?,
            },
            msg_type::LEAVE => ClientMsg::Leave,
            msg_type::UDP_BIND => ClientMsg::UdpBind,
            msg_type::SET_PLAYER_PROPS => ClientMsg::SetPlayerProps(r.rest()),
            msg_type::SET_SESSION_PROPS => ClientMsg::SetSessionProps(r.rest()),
            msg_type::FRAME_SYNC => ClientMsg::FrameSync {
                on: match r.u8("on")? {
                    0 => false,
                    1 => true,
                    v => {
                        return Err(DecodeError::BadValue {
                            field: "on",
                            value: v.into(),
                        });
                    }
                },
                rate: r.u8("rate")?,
            },
            msg_type::FRAME_INPUT => ClientMsg::FrameInput(r.rest()),
            msg_type::FRAME_REQUEST => ClientMsg::FrameRequest {
                from: r.u32("from")?,
                count: r.u16("count")?,
            },
            other => return Err(DecodeError::UnknownType(other)),
        })
    }

    /// Appends this message as one complete frame.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        match self {
            ClientMsg::Hello(h) => {
                let start = begin_frame(buf, msg_type::HELLO);
                buf.put_u16(h.version);
                let (mode, id, name) = match h.mode {
                    JoinMode::Create(name) => (1, 0, name),
                    JoinMode::JoinId(id) => (2, id, ""),
                    JoinMode::JoinOrCreate(name) => (3, 0, name),
                    JoinMode::Reconnect(id) => (4, id, ""),
                    JoinMode::JoinAny(params) => (5, 0, params),
                };
                buf.put_u8(mode);
                buf.put_u64(id);
                buf.put_str(name);
                buf.put_str(h.token);
                buf.put_str(h.player_id);
                buf.put_str(h.player_name);
                buf.extend_from_slice(h.payload);
                end_frame(buf, start);
            }
            ClientMsg::Data(d) => {
                let start = begin_frame(buf, msg_type::DATA);
                buf.put_u8(d.intent as u8);
                buf.put_u32(d.opcode);
                match d.target {
                    Target::AllOthers => buf.put_u8(0),
                    Target::Peers(list) => {
                        buf.put_u8(1);
                        buf.put_u8(list.len().min(255) as u8);
                        buf.extend_from_slice(&list.0[..list.len().min(255) * 2]);
                    }
                    Target::Group(g) => {
                        buf.put_u8(2);
                        buf.put_u16(g);
                    }
                    Target::Server => buf.put_u8(3),
                }
                buf.extend_from_slice(d.payload);
                end_frame(buf, start);
            }
            ClientMsg::GroupJoin(g) => encode_u16_msg(buf, msg_type::GROUP_JOIN, *g),
            ClientMsg::GroupLeave(g) => encode_u16_msg(buf, msg_type::GROUP_LEAVE, *g),
            ClientMsg::GroupQuery(g) => encode_u16_msg(buf, msg_type::GROUP_QUERY, *g),
            ClientMsg::Ping { client_time } => {
                let start = begin_frame(buf, msg_type::PING);
                buf.put_u64(*client_time);
                end_frame(buf, start);
            }
            ClientMsg::Leave => {
                let start = begin_frame(buf, msg_type::LEAVE);
                end_frame(buf, start);
            }
            ClientMsg::UdpBind => {
                let start = begin_frame(buf, msg_type::UDP_BIND);
                end_frame(buf, start);
            }
            ClientMsg::SetPlayerProps(props) => {
                let start = begin_frame(buf, msg_type::SET_PLAYER_PROPS);
                buf.extend_from_slice(props);
                end_frame(buf, start);
            }
            ClientMsg::SetSessionProps(props) => {
                let start = begin_frame(buf, msg_type::SET_SESSION_PROPS);
                buf.extend_from_slice(props);
                end_frame(buf, start);
            }
            ClientMsg::FrameSync { on, rate } => {
                let start = begin_frame(buf, msg_type::FRAME_SYNC);
                buf.put_u8(u8::from(*on));
                buf.put_u8(*rate);
                end_frame(buf, start);
            }
            ClientMsg::FrameInput(payload) => {
                let start = begin_frame(buf, msg_type::FRAME_INPUT);
                buf.extend_from_slice(payload);
                end_frame(buf, start);
            }
            ClientMsg::FrameRequest { from, count } => {
                let start = begin_frame(buf, msg_type::FRAME_REQUEST);
                buf.put_u32(*from);
                buf.put_u16(*count);
                end_frame(buf, start);
            }
        }
    }
}

fn encode_u16_msg(buf: &mut Vec<u8>, t: u8, v: u16) {
    let start = begin_frame(buf, t);
    buf.put_u16(v);
    end_frame(buf, start);
}

/// Encodes a peer id list in wire form (for clients building DATA targets).
pub fn encode_peer_list(peers: &[u16]) -> Vec<u8> {
    peers.iter().flat_map(|p| p.to_le_bytes()).collect()
}

impl<'a> ServerMsg<'a> {
    /// Decodes a frame body (type byte first) sent by a server.
    pub fn decode(body: &'a [u8]) -> Result<ServerMsg<'a>, DecodeError> {
        let mut r = Reader { buf: body };
        let t = r.u8("type")?;
        Ok(match t {
            msg_type::WELCOME => {
                let mut w = Welcome {
                    version: r.u16("version")?,
                    peer: r.u16("peer id")?,
                    session_id: r.u64("session id")?,
                    udp_conn_id: r.u32("udp conn id")?,
                    udp_secret: r.u64("udp secret")?,
                    udp_port: r.u16("udp port")?,
                    server_time_us: r.u64("server time")?,
                    idle_timeout_ms: r.u32("idle timeout")?,
                    max_frame_bytes: r.u32("max frame bytes")?,
                    session_name: r.str("session name")?,
                    peers: Vec::new(),
                    reconnect_secret: 0,
                };
                let n = r.u16("peer count")?;
                for _ in 0..n {
                    w.peers.push(PeerInfo {
                        peer: r.u16("peer id")?,
                        player_id: r.str("player id")?,
                        name: r.str("player name")?,
                    });
                }
                // Added after version 1 shipped: a server without it sends nothing here.
                if !r.buf.is_empty() {
                    w.reconnect_secret = r.u64("reconnect secret")?;
                }
                ServerMsg::Welcome(w)
            }
            msg_type::REJECT => ServerMsg::Reject {
                code: r.u16("code")?,
                message: r.str("message")?,
            },
            msg_type::DELIVERY => ServerMsg::Delivery {
                intent: Intent::from_u8(r.u8("intent")?)?,
                opcode: r.u32("opcode")?,
                sender: r.u16("sender")?,
                seq: r.u32("seq")?,
                payload: r.rest(),
            },
            msg_type::PLAYER_JOINED => ServerMsg::PlayerJoined(PeerInfo {
                peer: r.u16("peer id")?,
                player_id: r.str("player id")?,
                name: r.str("player name")?,
            }),
            msg_type::FRAME_SYNC_STATE => ServerMsg::FrameSyncState {
                on: r.u8("on")? != 0,
                rate: r.u8("rate")?,
                seed: r.u32("seed")?,
                next_frame: r.u32("next frame")?,
            },
            msg_type::FRAME => {
                let number = r.u32("frame")?;
                let seed = r.u32("seed")?;
                let wire = r.rest();
                FrameInputs::check(wire)?;
                ServerMsg::Frame {
                    number,
                    seed,
                    inputs: FrameInputs(wire),
                }
            }
            msg_type::PLAYER_AWAY => ServerMsg::PlayerAway {
                peer: r.u16("peer id")?,
            },
            msg_type::PLAYER_BACK => ServerMsg::PlayerBack {
                peer: r.u16("peer id")?,
            },
            msg_type::PLAYER_LEFT => ServerMsg::PlayerLeft {
                peer: r.u16("peer id")?,
                reason: r.u16("reason")?,
            },
            msg_type::GROUP_MEMBERS => {
                let group = r.u16("group id")?;
                let n = r.u16("member count")? as usize;
                ServerMsg::GroupMembers {
                    group,
                    members: PeerList(r.take(2 * n, "members")?),
                }
            }
            msg_type::PONG => ServerMsg::Pong {
                client_time: r.u64("client time")?,
                server_time_us: r.u64("server time")?,
            },
            msg_type::CLOSE => ServerMsg::Close {
                code: r.u16("code")?,
                message: r.str("message")?,
            },
            msg_type::ERROR => ServerMsg::Error {
                code: r.u16("code")?,
                message: r.str("message")?,
                // Servers before the field existed sent none.
                detail: if r.buf.len() >= 4 {
                    r.u32("detail")?
                } else {
                    0
                },
            },
            msg_type::UDP_BOUND => ServerMsg::UdpBound,
            msg_type::PLAYER_PROPS => ServerMsg::PlayerProps {
                peer: r.u16("peer id")?,
                props: r.rest(),
            },
            msg_type::SESSION_PROPS => ServerMsg::SessionProps {
                by: r.u16("set by")?,
                props: r.rest(),
            },
            other => return Err(DecodeError::UnknownType(other)),
        })
    }

    /// Appends this message as one complete frame.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        match self {
            ServerMsg::Welcome(w) => {
                let start = begin_frame(buf, msg_type::WELCOME);
                buf.put_u16(w.version);
                buf.put_u16(w.peer);
                buf.put_u64(w.session_id);
                buf.put_u32(w.udp_conn_id);
                buf.put_u64(w.udp_secret);
                buf.put_u16(w.udp_port);
                buf.put_u64(w.server_time_us);
                buf.put_u32(w.idle_timeout_ms);
                buf.put_u32(w.max_frame_bytes);
                buf.put_str(w.session_name);
                buf.put_u16(w.peers.len() as u16);
                for p in &w.peers {
                    buf.put_u16(p.peer);
                    buf.put_str(p.player_id);
                    buf.put_str(p.name);
                }
                buf.put_u64(w.reconnect_secret);
                end_frame(buf, start);
            }
            ServerMsg::Reject { code, message } => {
                encode_code_msg(buf, msg_type::REJECT, *code, message)
            }
            ServerMsg::Close { code, message } => {
                encode_code_msg(buf, msg_type::CLOSE, *code, message)
            }
            ServerMsg::Error {
                code,
                message,
                detail,
            } => {
                let start = begin_frame(buf, msg_type::ERROR);
                buf.put_u16(*code);
                buf.put_str(message);
                buf.put_u32(*detail);
                end_frame(buf, start);
            }
            ServerMsg::Delivery {
                intent,
                opcode,
                sender,
                seq,
                payload,
            } => {
                buf.extend_from_slice(&delivery_header(
                    *intent,
                    *opcode,
                    *sender,
                    *seq,
                    payload.len(),
                ));
                buf.extend_from_slice(payload);
            }
            ServerMsg::PlayerJoined(p) => {
                let start = begin_frame(buf, msg_type::PLAYER_JOINED);
                buf.put_u16(p.peer);
                buf.put_str(p.player_id);
                buf.put_str(p.name);
                end_frame(buf, start);
            }
            ServerMsg::PlayerLeft { peer, reason } => {
                let start = begin_frame(buf, msg_type::PLAYER_LEFT);
                buf.put_u16(*peer);
                buf.put_u16(*reason);
                end_frame(buf, start);
            }
            ServerMsg::FrameSyncState {
                on,
                rate,
                seed,
                next_frame,
            } => {
                let start = begin_frame(buf, msg_type::FRAME_SYNC_STATE);
                buf.put_u8(u8::from(*on));
                buf.put_u8(*rate);
                buf.put_u32(*seed);
                buf.put_u32(*next_frame);
                end_frame(buf, start);
            }
            ServerMsg::Frame {
                number,
                seed,
                inputs,
            } => {
                let start = begin_frame(buf, msg_type::FRAME);
                buf.put_u32(*number);
                buf.put_u32(*seed);
                buf.extend_from_slice(inputs.0);
                end_frame(buf, start);
            }
            ServerMsg::PlayerAway { peer } => {
                let start = begin_frame(buf, msg_type::PLAYER_AWAY);
                buf.put_u16(*peer);
                end_frame(buf, start);
            }
            ServerMsg::PlayerBack { peer } => {
                let start = begin_frame(buf, msg_type::PLAYER_BACK);
                buf.put_u16(*peer);
                end_frame(buf, start);
            }
            ServerMsg::GroupMembers { group, members } => {
                let start = begin_frame(buf, msg_type::GROUP_MEMBERS);
                buf.put_u16(*group);
                buf.put_u16(members.len() as u16);
                buf.extend_from_slice(members.0);
                end_frame(buf, start);
            }
            ServerMsg::Pong {
                client_time,
                server_time_us,
            } => {
                let start = begin_frame(buf, msg_type::PONG);
                buf.put_u64(*client_time);
                buf.put_u64(*server_time_us);
                end_frame(buf, start);
            }
            ServerMsg::UdpBound => {
                let start = begin_frame(buf, msg_type::UDP_BOUND);
                end_frame(buf, start);
            }
            ServerMsg::PlayerProps { peer, props } => {
                let start = begin_frame(buf, msg_type::PLAYER_PROPS);
                buf.put_u16(*peer);
                buf.extend_from_slice(props);
                end_frame(buf, start);
            }
            ServerMsg::SessionProps { by, props } => {
                let start = begin_frame(buf, msg_type::SESSION_PROPS);
                buf.put_u16(*by);
                buf.extend_from_slice(props);
                end_frame(buf, start);
            }
        }
    }
}

fn encode_code_msg(buf: &mut Vec<u8>, t: u8, code: u16, message: &str) {
    let start = begin_frame(buf, t);
    buf.put_u16(code);
    buf.put_str(message);
    end_frame(buf, start);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_of(msg: &ClientMsg<'_>) -> Vec<u8> {
        let mut buf = Vec::new();
        msg.encode(&mut buf);
        buf
    }

    #[test]
    fn every_client_message_round_trips() {
        let peers = encode_peer_list(&[2, 3]);
        let msgs = [
            ClientMsg::Hello(Hello {
                version: 1,
                mode: JoinMode::JoinOrCreate("lobby"),
                token: "tok",
                player_id: "p-1",
                player_name: "Ann",
                payload: b"\x01\x02",
                stray_field: None,
            }),
            ClientMsg::Hello(Hello {
                version: 1,
                mode: JoinMode::JoinId(42),
                token: "",
                player_id: "",
                player_name: "",
                payload: b"",
                stray_field: None,
            }),
            ClientMsg::Data(Data {
                intent: Intent::UnreliableSequenced,
                opcode: 7,
                target: Target::Peers(PeerList::from_wire(&peers)),
                payload: b"hello",
            }),
            ClientMsg::Data(Data {
                intent: Intent::Reliable,
                opcode: 1,
                target: Target::Group(9),
                payload: b"",
            }),
            ClientMsg::GroupJoin(5),
            ClientMsg::GroupLeave(5),
            ClientMsg::GroupQuery(5),
            ClientMsg::Ping { client_time: 99 },
            ClientMsg::Leave,
            ClientMsg::UdpBind,
            ClientMsg::SetPlayerProps(b"ready"),
            ClientMsg::FrameSync { on: true, rate: 20 },
            ClientMsg::FrameSync { on: false, rate: 0 },
            ClientMsg::FrameInput(b"left"),
            ClientMsg::FrameRequest { from: 9, count: 3 },
            ClientMsg::SetSessionProps(b""),
        ];
        for msg in msgs {
            let buf = frame_of(&msg);
            let (body, used) = split_frame(&buf, 1 << 16).unwrap().unwrap();
            assert_eq!(used, buf.len());
            assert_eq!(ClientMsg::decode(body).unwrap(), msg);
        }
    }

    #[test]
    fn every_server_message_round_trips() {
        let members = encode_peer_list(&[1, 4]);
        let frame_inputs = FrameInputs::encode(&[(1, b"up".to_vec()), (0, Vec::new())]);
        let msgs = [
            ServerMsg::Welcome(Welcome {
                version: 1,
                peer: 3,
                session_id: 77,
                udp_conn_id: 5,
                udp_secret: 0xdead_beef,
                udp_port: 7777,
                server_time_us: 1_700_000_000_000_000,
                idle_timeout_ms: 30_000,
                max_frame_bytes: 65_536,
                session_name: "lobby",
                peers: vec![PeerInfo {
                    peer: 1,
                    player_id: "p1",
                    name: "Ann",
                }],
                reconnect_secret: 0x0102_0304,
            }),
            ServerMsg::PlayerAway { peer: 2 },
            ServerMsg::PlayerBack { peer: 2 },
            ServerMsg::FrameSyncState {
                on: true,
                rate: 15,
                seed: 0xabcd,
                next_frame: 3,
            },
            ServerMsg::Frame {
                number: 7,
                seed: 0xabcd,
                inputs: FrameInputs(&frame_inputs),
            },
            ServerMsg::Reject {
                code: 12,
                message: "full",
            },
            ServerMsg::Delivery {
                intent: Intent::Unreliable,
                opcode: 7,
                sender: 2,
                seq: 11,
                payload: b"xyz",
            },
            ServerMsg::PlayerJoined(PeerInfo {
                peer: 2,
                player_id: "",
                name: "Bo",
            }),
            ServerMsg::PlayerLeft {
                peer: 2,
                reason: 25,
            },
            ServerMsg::GroupMembers {
                group: 3,
                members: PeerList::from_wire(&members),
            },
            ServerMsg::Pong {
                client_time: 5,
                server_time_us: 6,
            },
            ServerMsg::Close {
                code: 22,
                message: "bye",
            },
            ServerMsg::Error {
                code: 30,
                message: "opcode 0",
                detail: 7,
            },
            ServerMsg::UdpBound,
            ServerMsg::PlayerProps {
                peer: 2,
                props: b"ready",
            },
            ServerMsg::SessionProps {
                by: 0,
                props: b"map=2",
            },
        ];
        for msg in msgs {
            let mut buf = Vec::new();
            msg.encode(&mut buf);
            let (body, used) = split_frame(&buf, 1 << 16).unwrap().unwrap();
            assert_eq!(used, buf.len());
            assert_eq!(ServerMsg::decode(body).unwrap(), msg);
        }
    }

    #[test]
    fn partial_frame_is_incomplete_not_an_error() {
        let buf = frame_of(&ClientMsg::Ping { client_time: 1 });
        for cut in 0..buf.len() {
            assert_eq!(split_frame(&buf[..cut], 1024), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn oversized_and_empty_frames_are_invalid() {
        let big = 70_000u32.to_le_bytes();
        assert_eq!(
            split_frame(&big, 65_536),
            Err(DecodeError::TooLarge {
                len: 70_000,
                max: 65_536
            })
        );
        assert_eq!(split_frame(&[0, 0, 0, 0], 10), Err(DecodeError::EmptyFrame));
    }

    #[test]
    fn truncated_fields_and_bad_values_are_named() {
        assert_eq!(
            ClientMsg::decode(&[msg_type::PING, 1, 2]),
            Err(DecodeError::Truncated("client time"))
        );
        assert_eq!(
            ClientMsg::decode(&[msg_type::DATA, 9, 1, 0, 0, 0, 0]),
            Err(DecodeError::BadValue {
                field: "intent",
                value: 9
            })
        );
        assert_eq!(
            ClientMsg::decode(&[0x55]),
            Err(DecodeError::UnknownType(0x55))
        );
        assert_eq!(
            ClientMsg::decode(&[msg_type::GROUP_JOIN, 1, 0, 0xff]).unwrap(),
            ClientMsg::GroupJoin(1),
            "trailing bytes after known fields are ignored"
        );
    }

    #[test]
    fn delivery_header_matches_documented_bytes() {
        // PROTOCOL.md worked example: unreliable, opcode 7, sender 2, seq 1, payload "hi".
        let h = delivery_header(Intent::Unreliable, 7, 2, 1, 2);
        assert_eq!(
            h,
            [
                0x0e, 0, 0, 0, 0x83, 0x01, 0x07, 0, 0, 0, 0x02, 0, 0x01, 0, 0, 0
            ]
        );
    }
}
