//! Connections whose profile speaks text messages (the sessionserver JSON profile in
//! `crate::profiles::sessionserver`): their output queue, their WebSocket close reason, and the
//! events the core leaves for that profile.
//!
//! The core keeps such a connection's phase, membership and limits like any other, never writes
//! it a native frame, and tells the profile what happened to its players through
//! [`TextEvent`]s, which the profile takes after each input ([`Server::take_text_events`]).

use super::codes::Code;
use super::conn::Phase;
use super::hooks::Hooks;
use super::ids::{ConnId, PeerId, SessionId};
use super::server::Server;
use std::time::Instant;

/// What happened to a text-profile session or player, for the profile to tell its clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TextEvent {
    /// A player left a text session (kicked, closed, left); `ending`: the session is ending.
    Left {
        session: SessionId,
        peer: PeerId,
        ending: bool,
    },
    /// The session a text connection was in ended; the connection stays, between sessions.
    Evicted { conn: ConnId },
    /// A text session is gone.
    Removed { session: SessionId },
    /// The script set a player's (`target` non-zero) or the session's properties.
    Props {
        session: SessionId,
        target: PeerId,
        props: Vec<u8>,
    },
}

impl<H: Hooks> Server<H> {
    /// A WebSocket connection was accepted: like [`Server::handle_accept`].
    pub fn handle_ws_accept(&mut self, now: Instant, addr: std::net::SocketAddr) -> ConnId {
        self.handle_accept(now, addr)
    }

    /// A WebSocket upgrade completed. The connection then waits for its first message, which
    /// picks the protocol: binary (native or a vendor profile) or a text command (sessionserver).
    ///
    /// `credential` is the token or ticket the upgrade request carried (PROTOCOL.md section 13):
    /// a sessionserver connection must bring it there; a native one may, when its HELLO's
    /// `token` is empty.
    pub fn handle_ws_open(&mut self, id: ConnId, credential: Option<String>) {
        if let Some(conn) = self.conns.get_mut(id)
            && conn.phase == Phase::AwaitingHello
        {
            conn.phase = Phase::Lobby;
            if credential.is_some() {
                conn.extras_mut().upgrade_credential = credential;
            }
        }
    }

    /// Whether a connection speaks a text profile.
    pub fn is_json(&self, id: ConnId) -> bool {
        self.conns.get(id).is_some_and(|c| c.json)
    }

    /// The text messages waiting for a connection, oldest first.
    pub fn json_pending(&self, id: ConnId) -> impl Iterator<Item = &str> {
        let mut rest = self.conns.get(id).map_or(&[][..], |c| c.json_out());
        std::iter::from_fn(move || {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let (text, tail) = tail.split_at(u32::from_le_bytes(*len) as usize);
            rest = tail;
            // Only `send_text` writes here, from `&str`.
            std::str::from_utf8(text).ok()
        })
    }

    /// The transport sent every message of [`Server::json_pending`].
    pub fn json_sent(&mut self, id: ConnId) {
        if let Some(extras) = self.conns.get_mut(id).and_then(|c| c.extras_if_made()) {
            extras.json_out.clear();
        }
    }

    /// Why a connection is being closed (for its WebSocket close frame: 4000 + the code).
    pub fn close_note(&self, id: ConnId) -> Option<(Code, &str)> {
        let (code, why) = self.conns.get(id)?.extras()?.close_note.as_ref()?;
        Some((*code, why))
    }

    /// The events for the text profile since the last call, oldest first.
    pub(crate) fn take_text_events(&mut self) -> Vec<TextEvent> {
        std::mem::take(&mut self.text_events)
    }

    /// A text session ends while `id` is in it: the connection goes back between sessions
    /// (it may create or join another), and the profile is told.
    pub(crate) fn evict_text(&mut self, now: Instant, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        let Phase::Joined { session, peer } = conn.phase else {
            return;
        };
        conn.phase = Phase::Lobby;
        self.text_events.push(TextEvent::Evicted { conn: id });
        self.leave_session(now, session, peer, Code::SessionEnded);
    }
}
