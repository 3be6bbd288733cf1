//! Connections whose profile speaks text messages (the sessionserver JSON profile in
//! `crate::profiles::sessionserver`): their output queue, their WebSocket close reason, and the
//! events the core leaves for that profile.
//!
//! The core keeps such a connection's phase, membership and limits like any other, never writes
//! it a native frame, and tells the profile what happened to its players through
//! [`TextEvent`]s, which the profile takes after each input ([`Server::take_text_events`]).
//!
//! This is the whole of what a text profile may ask of the core: it reads and writes no table of
//! the core's, and seats its players through the one door (`admission.rs`).

use super::admission::Refusal;
use super::auth::{Grant, Ticket};
use super::codes::Code;
use super::conn::Phase;
use super::hooks::Hooks;
use super::ids::{ConnId, PeerId, SessionId};
use super::server::Server;
use std::time::Instant;

/// Who sent a text message, as [`Server::accept_text`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextSender {
    /// A text-profile connection: the message is the profile's to handle.
    Text,
    /// A connection that speaks the native protocol (its first message was binary).
    Native,
    /// Nobody to answer: the connection is gone or closing, or was closed by this message
    /// (a bad credential on its first text message, a flood).
    Closed,
}

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

    /// A text message of `len` bytes arrived on `id`: counts it, and checks what the core checks
    /// for every message. The first one makes the connection a text-profile connection: the
    /// credential its WebSocket upgrade carried must pass (else it is closed with the code,
    /// status 4000 + code), and it is watched for silence from then on. Every message counts
    /// against `max_messages_per_sec` (a flood is closed with code 28).
    pub fn accept_text(&mut self, now: Instant, id: ConnId, len: usize) -> TextSender {
        self.stats.bytes_in += len as u64;
        let rate = self.config.limits.max_messages_per_sec;
        let wall = self.clock.wall_us(now) / 1_000_000;
        let Some(conn) = self.conns.get_mut(id) else {
            return TextSender::Closed;
        };
        let sender = match conn.phase {
            Phase::Closing => return TextSender::Closed,
            Phase::AwaitingHello | Phase::Lobby if !conn.json => {
                conn.json = true;
                conn.phase = Phase::Lobby;
                log::debug!("{id}: speaks the sessionserver protocol");
                let credential = conn
                    .extras_if_made()
                    .and_then(|x| x.upgrade_credential.take())
                    .unwrap_or_default();
                let serial = conn.serial;
                match self.auth.check(&credential, wall) {
                    Ok(Grant::Ticket(ticket)) => {
                        if let Some(conn) = self.conns.get_mut(id) {
                            conn.extras_mut().ticket = Some(ticket);
                        }
                    }
                    Ok(Grant::Trusted) => {}
                    Err((code, why)) => {
                        self.stats.handshakes_rejected += 1;
                        log::debug!("{id}: sessionserver connection refused: {why}");
                        self.close(now, id, code, &why);
                        return TextSender::Closed;
                    }
                }
                self.schedule_idle(now, id, serial);
                TextSender::Text
            }
            _ if conn.json => TextSender::Text,
            _ => TextSender::Native,
        };
        let Some(conn) = self.conns.get_mut(id) else {
            return TextSender::Closed;
        };
        conn.last_rx = now;
        if !conn.rate.allow(now, rate, self.stall_credit) {
            self.stats.rate_limited += 1;
            let why = format!("more than {rate} messages per second");
            self.close(now, id, Code::RateLimited, &why);
            return TextSender::Closed;
        }
        sender
    }

    /// Closes a connection for a message its protocol does not allow (counted as a protocol
    /// error).
    pub fn close_for_protocol_error(&mut self, now: Instant, id: ConnId, code: Code, why: &str) {
        self.stats.protocol_errors += 1;
        self.close(now, id, code, why);
    }

    /// Queues a text message for a text-profile connection (nothing for a closing one).
    pub fn send_text(&mut self, id: ConnId, text: &str) {
        self.conns.send_text(id, text);
    }

    /// The verified ticket a text-profile connection came with, if any.
    pub fn text_ticket(&self, id: ConnId) -> Option<&Ticket> {
        self.conns.get(id)?.extras()?.ticket.as_deref()
    }

    /// Whether the connection is open and between sessions (upgraded, not in a session).
    pub fn is_between_sessions(&self, id: ConnId) -> bool {
        self.conns.get(id).is_some_and(|c| c.phase == Phase::Lobby)
    }

    /// The session and peer id of a connection that is in a session.
    pub fn membership(&self, id: ConnId) -> Option<(SessionId, PeerId)> {
        match self.conns.get(id)?.phase {
            Phase::Joined { session, peer } => Some((session, peer)),
            _ => None,
        }
    }

    /// Whether the session exists and is not ending.
    pub fn is_session_live(&self, sid: SessionId) -> bool {
        self.sessions.get(&sid).is_some_and(|s| !s.ending)
    }

    /// Creates a session for text-profile players (native players cannot join it) with its
    /// properties: draining and `max_sessions` apply as to every new session.
    pub fn create_text_session(
        &mut self,
        now: Instant,
        params: Option<&serde_json::Value>,
        props: Vec<u8>,
    ) -> Result<SessionId, Refusal> {
        let sid = self.create_session(now, "", params, None, false)?;
        if let Some(session) = self.sessions.get_mut(&sid) {
            session.props = props;
            session.text = true;
        }
        Ok(sid)
    }

    /// Sets a session's properties as its own data (not set by a player).
    pub fn set_session_props(&mut self, sid: SessionId, props: Vec<u8>) {
        if let Some(session) = self.sessions.get_mut(&sid) {
            session.props = props;
            session.props_by = 0;
        }
    }

    /// Sets a player's properties.
    pub fn set_player_props(&mut self, sid: SessionId, peer: PeerId, props: Vec<u8>) {
        if let Some(member) = self.sessions.get_mut(&sid).and_then(|s| s.member_mut(peer)) {
            member.props = props;
        }
    }

    /// A text-profile player leaves its session on its own request: the connection stays,
    /// between sessions, and the others are told as for any leave (code 25).
    pub fn leave_text_session(&mut self, now: Instant, id: ConnId) {
        let Some((sid, peer)) = self.membership(id) else {
            return;
        };
        if let Some(conn) = self.conns.get_mut(id) {
            conn.phase = Phase::Lobby;
        }
        self.leave_session(now, sid, peer, Code::ClientLeft);
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
