//! The seam where session logic (the Lua layer) sees packets before they are routed.
//!
//! The core calls a [`Hooks`] implementation at fixed points and never lets it touch core state
//! directly: what the logic wants done (send a message, ...) goes into an [`Outbox`], which the
//! core applies after the call returns. So a hook cannot re-enter the core or leave it half-updated.
//! [`NoScript`] is the plain relay: every packet forwarded, messages to the server counted only.

use super::codec::{Data, Intent};
use super::ids::{PeerId, SessionId};

/// What to do with a packet offered to [`Hooks::on_packet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Route it as the sender asked.
    Forward,
    /// Drop it silently.
    Drop,
}

/// Receivers of a server-originated message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendTarget {
    /// Every player in the session.
    All,
    /// These peers.
    Peers(Vec<u16>),
    /// Every member of this group.
    Group(u16),
}

/// Something session logic asked the core to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send a message from the server (peer 0).
    Send {
        /// Session to send in.
        session: SessionId,
        /// Receivers.
        to: SendTarget,
        /// Opcode (non-zero).
        opcode: u32,
        /// Intent.
        intent: Intent,
        /// Payload.
        payload: Vec<u8>,
    },
}

/// Commands recorded during a hook call, applied by the core when it returns.
#[derive(Debug, Default)]
pub struct Outbox {
    pub(crate) commands: Vec<Command>,
}

impl Outbox {
    /// Records a command.
    pub fn push(&mut self, command: Command) {
        self.commands.push(command);
    }
}

/// Session logic called by the core. Every method has a do-nothing default.
pub trait Hooks {
    /// Offered every DATA message from a player before it is routed.
    fn on_packet(&mut self, _session: SessionId, _sender: PeerId, _data: &Data<'_>) -> Verdict {
        Verdict::Forward
    }

    /// A DATA message addressed to the server (peer 0). Returns whether anything handled it.
    fn on_server_message(
        &mut self,
        _session: SessionId,
        _sender: PeerId,
        _data: &Data<'_>,
        _out: &mut Outbox,
    ) -> bool {
        false
    }
}

/// No session logic: a plain relay.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoScript;

impl Hooks for NoScript {}
