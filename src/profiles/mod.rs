//! Protocol profiles: the wire formats of other vendors' game clients, translated to and from the
//! core's native frames (PROTOCOL.md sections 16 and 17).
//!
//! A profile sits between the transport and the core and owns nothing but the translation and
//! what the translation needs to remember (the connection's peer id, the players it has been
//! told about). The core sees native frames only: sessions, peers, groups, intents and routing
//! are the same for every client, so a GameSparks player, a GameLift player and a native player
//! share a session, and the session's script cannot tell them apart.
//!
//! A packet's way: the WebSocket message arrives (`net::ws`); its first message picks the
//! profile ([`Adapter::detect`]); [`Adapter::take_client_message`] turns each vendor packet into native
//! client frames, which the core handles like bytes from any native client; the core's output
//! for the connection (native server frames) goes through [`Adapter::write_for_client`] on its way
//! back out.
//!
//! The sessionserver JSON profile (`sessionserver.rs`) works differently, since its commands
//! carry session data the native protocol has no word for: it holds that data itself and drives
//! the core's session API (create, add a member, the script's checks, leave), and the core tells
//! it what happened to its players through `core::text` events. It too depends on the core only.
//!
//! Files: `login.rs` (a vendor login token to a native HELLO), `pb.rs` (the protobuf pieces both
//! vendors use: varint length prefixes), `gamesparks.rs` (GameSparks Real-Time, with its RTData),
//! `gamelift.rs` (GameLift Realtime), `sessionserver.rs` (the npm sessionserver package's JSON).

pub mod gamelift;
pub mod gamesparks;
mod login;
mod pb;
pub mod sessionserver;

use crate::core::Code;

/// Why a vendor packet could not be taken: the connection closes with this code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    /// The close code (PROTOCOL.md section 8).
    pub code: Code,
    /// What was wrong, for the log and the WebSocket close reason.
    pub message: String,
}

impl ProfileError {
    pub(crate) fn new(code: Code, message: impl Into<String>) -> ProfileError {
        ProfileError {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn malformed(message: impl Into<String>) -> ProfileError {
        ProfileError::new(Code::Malformed, message)
    }
}

/// A connection's translator.
#[derive(Debug)]
pub enum Adapter {
    /// GameSparks Real-Time clients.
    GameSparks(gamesparks::Adapter),
    /// GameLift Realtime clients.
    GameLift(gamelift::Adapter),
}

/// What the first binary WebSocket message of a connection is.
#[derive(Debug)]
pub enum FirstMessage {
    /// Native frames (PROTOCOL.md section 12).
    Native,
    /// A vendor client's login.
    Vendor(Box<Adapter>),
}

impl Adapter {
    /// Tells a connection's protocol from its first binary message: a native HELLO frame
    /// (`u32` length, type `0x01`), a GameLift login (a packet with the `login` command, field
    /// 30), or a GameSparks login (op code 0 with a LoginCommand payload). Anything else is
    /// taken as native, so the core refuses it with the native codes.
    pub fn detect(first: &[u8]) -> FirstMessage {
        if first.len() >= 5 && first[4] == 0x01 {
            let len = u32::from_le_bytes([first[0], first[1], first[2], first[3]]) as usize;
            if len + 4 <= first.len() {
                return FirstMessage::Native;
            }
        }
        if gamelift::is_login(first) {
            return FirstMessage::Vendor(Box::new(Adapter::GameLift(gamelift::Adapter::default())));
        }
        if gamesparks::is_login(first) {
            return FirstMessage::Vendor(Box::new(Adapter::GameSparks(
                gamesparks::Adapter::default(),
            )));
        }
        FirstMessage::Native
    }

    /// The profile's name, as the admin API shows it.
    pub fn name(&self) -> &'static str {
        match self {
            Adapter::GameSparks(_) => "gamesparks",
            Adapter::GameLift(_) => "gamelift",
        }
    }

    /// Whether every packet must travel in a WebSocket message of its own (the GameLift client
    /// reads one packet per message).
    pub fn one_packet_per_message(&self) -> bool {
        matches!(self, Adapter::GameLift(_))
    }

    /// Translates one WebSocket message from the client into native client frames appended to
    /// `to_core`; returns how many of its packets were ignored (they still count against the
    /// sender's message rate: [`crate::core::Server::handle_ignored`]).
    pub fn take_client_message(
        &mut self,
        message: &[u8],
        to_core: &mut Vec<u8>,
    ) -> Result<usize, ProfileError> {
        match self {
            Adapter::GameSparks(a) => a.take_client_message(message, to_core),
            Adapter::GameLift(a) => a.take_client_message(message, to_core),
        }
    }

    /// Translates the core's native server frames for this connection into vendor packets,
    /// each length-prefixed, appended to `out`; `ends` gets the end offset of each packet.
    /// Frames the client has no use for are left out.
    pub fn write_for_client(&mut self, native: &[u8], out: &mut Vec<u8>, ends: &mut Vec<usize>) {
        let mut rest = native;
        while let Ok(Some((body, used))) = crate::core::codec::split_frame(rest, usize::MAX) {
            rest = &rest[used..];
            let Ok(msg) = crate::core::codec::ServerMsg::decode(body) else {
                continue;
            };
            let before = out.len();
            match self {
                Adapter::GameSparks(a) => a.write_for_client(&msg, out),
                Adapter::GameLift(a) => a.write_for_client(&msg, out),
            }
            if out.len() > before {
                ends.push(out.len());
            }
        }
    }
}
