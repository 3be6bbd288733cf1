//! GameLift Realtime clients (PROTOCOL.md section 17) over WebSocket (`ws://` or `wss://`).
//!
//! Each WebSocket message, both ways, holds exactly one length-prefixed `Packet` (the client
//! reads everything after the length as one packet). The client takes its peer id from the login
//! result's `targetPlayer`. Player ids: `targetPlayer` -1 is the server; `targetGroup` -1 is
//! every player.

use super::ProfileError;
use super::login::Login;
use super::pb::{packets, write_delimited};
use crate::core::Code;
use crate::core::codec::{ClientMsg, Data, Intent, PeerList, ServerMsg, Target};
use prost::Message;

const OP_LOGIN_RESULT: i32 = -1;
const OP_PING_RESULT: i32 = -3;
const OP_GROUP_MEMBERSHIP_UPDATE: i32 = -13;
const OP_PLAYER_CONNECT: i32 = 113;
const OP_PLAYER_DISCONNECT: i32 = 114;
/// The client's limit for a reliable message's payload.
pub const MAX_PAYLOAD_BYTES: usize = 4096;
/// `targetPlayer` of the server.
const SERVER: i32 = -1;

/// The packet (proto3: zero values are not on the wire).
#[derive(Clone, PartialEq, Message)]
pub struct Packet {
    /// Op code (zigzag); 0 is the login.
    #[prost(sint32, tag = "1")]
    pub op_code: i32,
    /// Sequence number.
    #[prost(int32, tag = "2")]
    pub sequence_number: i32,
    /// One receiver (-1: the server); on a login result, the client's own peer id.
    #[prost(int32, tag = "3")]
    pub target_player: i32,
    /// A group (-1: every player).
    #[prost(int32, tag = "4")]
    pub target_group: i32,
    /// Who sent it (set by the server).
    #[prost(int32, tag = "5")]
    pub sender: i32,
    /// Reliable delivery.
    #[prost(bool, tag = "6")]
    pub reliable: bool,
    /// The client's version.
    #[prost(int32, tag = "7")]
    pub client_version: i32,
    /// The message body.
    #[prost(bytes = "vec", tag = "15")]
    pub payload: Vec<u8>,
    /// A command (fields 30-43).
    #[prost(
        oneof = "Command",
        tags = "30, 31, 32, 33, 34, 35, 36, 37, 38, 40, 41, 42, 43"
    )]
    pub command: Option<Command>,
}

/// The commands a packet may carry.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Command {
    /// Client: log in.
    #[prost(message, tag = "30")]
    Login(LoginCommand),
    /// Server: the login's answer.
    #[prost(message, tag = "31")]
    LoginResult(LoginResult),
    /// Client: ping.
    #[prost(message, tag = "32")]
    Ping(Empty),
    /// Server: the ping's answer.
    #[prost(message, tag = "33")]
    PingResult(Empty),
    /// UDP handshake (not supported).
    #[prost(message, tag = "34")]
    UdpConnect(Empty),
    /// Server: a player connected.
    #[prost(message, tag = "35")]
    PlayerConnect(PeerMessage),
    /// Server: a player disconnected.
    #[prost(message, tag = "36")]
    PlayerDisconnect(PeerMessage),
    /// Identity check (not supported).
    #[prost(message, tag = "37")]
    VerifyIdentity(Empty),
    /// Identity check's answer (not supported).
    #[prost(message, tag = "38")]
    VerifyIdentityResult(Empty),
    /// Client: join a group.
    #[prost(message, tag = "40")]
    JoinGroup(GroupMessage),
    /// Client: leave a group.
    #[prost(message, tag = "41")]
    LeaveGroup(GroupMessage),
    /// Client: ask who is in a group.
    #[prost(message, tag = "42")]
    RequestGroupMembership(GroupMessage),
    /// Server: who is in a group.
    #[prost(message, tag = "43")]
    GroupMembershipUpdate(GroupMembershipUpdate),
}

/// An empty message.
#[derive(Clone, PartialEq, Message)]
pub struct Empty {}

/// Field 30.
#[derive(Clone, PartialEq, Message)]
pub struct LoginCommand {
    /// The player session id: here, a join ticket or a login token (PROTOCOL.md section 17).
    #[prost(string, tag = "1")]
    pub player_session_id: String,
    /// 2.
    #[prost(int32, tag = "2")]
    pub client_version: i32,
}

/// Field 31.
#[derive(Clone, PartialEq, Message)]
pub struct LoginResult {
    /// Whether the player is in.
    #[prost(bool, tag = "1")]
    pub success: bool,
    /// Unused here.
    #[prost(string, tag = "2")]
    pub reconnect_token: String,
    /// The player's peer id.
    #[prost(int32, tag = "3")]
    pub peer_id: i32,
    /// No UDP: 0.
    #[prost(int32, tag = "4")]
    pub fast_port: i32,
    /// Unused.
    #[prost(bytes = "vec", tag = "5")]
    pub ca_cert: Vec<u8>,
    /// Unused here.
    #[prost(string, tag = "6")]
    pub connect_token: String,
}

/// Fields 35 and 36.
#[derive(Clone, PartialEq, Message)]
pub struct PeerMessage {
    /// The player.
    #[prost(int32, tag = "1")]
    pub peer_id: i32,
}

/// Fields 40-42.
#[derive(Clone, PartialEq, Message)]
pub struct GroupMessage {
    /// The group.
    #[prost(int32, tag = "1")]
    pub group: i32,
}

/// Field 43.
#[derive(Clone, PartialEq, Message)]
pub struct GroupMembershipUpdate {
    /// The group.
    #[prost(int32, tag = "1")]
    pub group: i32,
    /// Its players (packed).
    #[prost(int32, repeated, tag = "2")]
    pub players: Vec<i32>,
}

/// Whether a first message is a GameLift login (a packet with the login command).
pub(crate) fn is_login(message: &[u8]) -> bool {
    let Ok(list) = packets(message) else {
        return false;
    };
    matches!(
        list.first().map(|b| Packet::decode(*b)),
        Some(Ok(Packet {
            command: Some(Command::Login(_)),
            ..
        }))
    )
}

/// One GameLift connection's translation state.
#[derive(Debug, Default)]
pub struct Adapter {
    logged_in: bool,
    peer: u16,
}

fn group_id(group: i32) -> Result<u16, ProfileError> {
    u16::try_from(group)
        .ok()
        .filter(|g| *g != 0)
        .ok_or_else(|| {
            ProfileError::malformed(format!("group {group} is not a group id (1-65535)"))
        })
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
                .map_err(|e| ProfileError::malformed(format!("not a GameLift packet: {e}")))?;
            if let Some(Command::Login(login)) = &p.command {
                if self.logged_in {
                    return Err(ProfileError::new(
                        Code::UnexpectedMessage,
                        "logged in already",
                    ));
                }
                Login::parse(&login.player_session_id)?.hello(&p.payload, to_core);
                self.logged_in = true;
                continue;
            }
            if !self.logged_in {
                return Err(ProfileError::new(
                    Code::UnexpectedMessage,
                    "the first packet must be the login",
                ));
            }
            match &p.command {
                Some(Command::Ping(_)) => ClientMsg::Ping { client_time: 0 }.encode(to_core),
                Some(Command::JoinGroup(g)) => {
                    ClientMsg::GroupJoin(group_id(g.group)?).encode(to_core)
                }
                Some(Command::LeaveGroup(g)) => {
                    ClientMsg::GroupLeave(group_id(g.group)?).encode(to_core)
                }
                Some(Command::RequestGroupMembership(g)) => {
                    ClientMsg::GroupQuery(group_id(g.group)?).encode(to_core)
                }
                Some(other) => {
                    log::debug!("GameLift client sent an unsupported command {other:?}; ignored");
                    ignored += 1;
                }
                None if p.op_code > 0 => self.message(&p, to_core)?,
                None => {
                    log::debug!("GameLift client sent op code {}; ignored", p.op_code);
                    ignored += 1;
                }
            }
        }
        Ok(ignored)
    }

    /// A game message: DATA to one player, the server, a group, or everyone.
    fn message(&self, p: &Packet, to_core: &mut Vec<u8>) -> Result<(), ProfileError> {
        if p.payload.len() > MAX_PAYLOAD_BYTES {
            return Err(ProfileError::new(
                Code::FrameTooLarge,
                format!(
                    "a payload of {} bytes; GameLift clients send at most {MAX_PAYLOAD_BYTES}",
                    p.payload.len()
                ),
            ));
        }
        let one;
        let target = match (p.target_player, p.target_group) {
            (SERVER, _) => Target::Server,
            (player, _) if player > 0 => {
                let peer = u16::try_from(player).map_err(|_| {
                    ProfileError::malformed(format!("target player {player} is not a peer id"))
                })?;
                one = peer.to_le_bytes();
                Target::Peers(PeerList::from_wire(&one))
            }
            (_, group) if group > 0 => Target::Group(group_id(group)?),
            _ => Target::AllOthers,
        };
        ClientMsg::Data(Data {
            intent: if p.reliable {
                Intent::Reliable
            } else {
                Intent::Unreliable
            },
            opcode: p.op_code as u32,
            target,
            payload: &p.payload,
        })
        .encode(to_core);
        Ok(())
    }

    pub(super) fn write_for_client(&mut self, msg: &ServerMsg<'_>, out: &mut Vec<u8>) {
        let packet = match msg {
            ServerMsg::Welcome(w) => {
                self.peer = w.peer;
                Packet {
                    op_code: OP_LOGIN_RESULT,
                    target_player: w.peer.into(),
                    reliable: true,
                    command: Some(Command::LoginResult(LoginResult {
                        success: true,
                        peer_id: w.peer.into(),
                        ..LoginResult::default()
                    })),
                    ..Packet::default()
                }
            }
            // The client reads `success`; the WebSocket close with the code follows.
            ServerMsg::Reject { .. } => Packet {
                op_code: OP_LOGIN_RESULT,
                reliable: true,
                command: Some(Command::LoginResult(LoginResult::default())),
                ..Packet::default()
            },
            ServerMsg::PlayerJoined(info) => Packet {
                op_code: OP_PLAYER_CONNECT,
                target_player: self.peer.into(),
                reliable: true,
                command: Some(Command::PlayerConnect(PeerMessage {
                    peer_id: info.peer.into(),
                })),
                ..Packet::default()
            },
            ServerMsg::PlayerLeft { peer, .. } => Packet {
                op_code: OP_PLAYER_DISCONNECT,
                target_player: self.peer.into(),
                reliable: true,
                command: Some(Command::PlayerDisconnect(PeerMessage {
                    peer_id: (*peer).into(),
                })),
                ..Packet::default()
            },
            ServerMsg::GroupMembers { group, members } => Packet {
                op_code: OP_GROUP_MEMBERSHIP_UPDATE,
                target_player: self.peer.into(),
                reliable: true,
                command: Some(Command::GroupMembershipUpdate(GroupMembershipUpdate {
                    group: (*group).into(),
                    players: members.iter().map(i32::from).collect(),
                })),
                ..Packet::default()
            },
            ServerMsg::Pong { .. } => Packet {
                op_code: OP_PING_RESULT,
                target_player: self.peer.into(),
                reliable: true,
                command: Some(Command::PingResult(Empty {})),
                ..Packet::default()
            },
            ServerMsg::Delivery {
                intent,
                opcode,
                sender,
                seq,
                payload,
            } => {
                let Ok(op_code) = i32::try_from(*opcode) else {
                    return; // beyond an int32 op code
                };
                Packet {
                    op_code,
                    sequence_number: *seq as i32,
                    target_player: self.peer.into(),
                    sender: (*sender).into(),
                    reliable: *intent == Intent::Reliable,
                    payload: payload.to_vec(),
                    ..Packet::default()
                }
            }
            _ => return,
        };
        write_delimited(&packet, out);
    }
}
