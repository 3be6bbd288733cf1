//! One door into a session. Every wire (native TCP, UDP and WebSocket, the sessionserver JSON
//! profile, the GameSparks and GameLift profiles, which speak native HELLO underneath) seats a
//! player through [`Server::seat`], which applies the seat rules once, in one order:
//!
//! 1. the ticket, if any, has not expired (a connection may outlive its ticket),
//! 2. the session is still there and open (`rt.configure_session{ open = false }`),
//! 3. it has a free seat (`max_players`; a player replacing its own older connection in the
//!    same session takes that one's seat),
//! 4. the script's `on_player_connect` lets the player in,
//! 5. then the seat is taken: the connection joins, and its player id becomes its identity (an
//!    older connection with that identity is closed with code 27 once the newcomer is welcomed).
//!
//! Before the door, a wire checks its credentials (`Auth::check`, in the core too) and finds or
//! creates the session (`Server::create_session` applies draining and `max_sessions`); after
//! it, the wire tells the player in its own terms, then calls [`Server::seated`]. A refusal is a
//! `(Code, reason)`: the wire turns it into its own refusal (REJECT, a WebSocket close status
//! 4000 + code, a sessionserver error).
//!
//! The native HELLO's own path (checks, identity, placement by join mode, WELCOME) is here too.

use super::Server;
use super::auth::{Grant, Ticket, TicketSession};
use super::codec::ServerMsg;
use super::codec::{Hello, JoinMode, MAX_NAME_BYTES, MAX_TOKEN_BYTES, PROTOCOL_VERSION, PeerInfo};
use super::codes::Code;
use super::conn::Phase;
use super::hooks::{Hooks, PlayerInfo};
use super::ids::{ConnId, PeerId, SessionId};
use super::session::Session;
use std::time::Instant;

/// A refusal: the code the wire reports and the reason.
pub type Refusal = (Code, String);

/// A player asking for a seat in a session it has found (or just created).
#[derive(Debug, Clone, Copy)]
pub struct SeatRequest<'a> {
    /// The connection asking.
    pub conn: ConnId,
    /// The session.
    pub session: SessionId,
    /// Whether this request created the session: a refusal then ends it while it is empty.
    pub created: bool,
    /// The player id the script sees (`player.id`).
    pub player_id: &'a str,
    /// The player's identity across connections: a newer connection with the same identity
    /// replaces an older one. `None` for players that have none (an anonymous sessionserver
    /// player, whose id is only its connection's number).
    pub identity: Option<&'a str>,
    /// The display name.
    pub player_name: &'a str,
    /// The verified ticket the player came with, if any.
    pub ticket: Option<&'a Ticket>,
    /// What the player sent with its request, for `on_player_connect`.
    pub payload: &'a [u8],
}

impl SeatRequest<'_> {
    fn info(&self, peer: PeerId) -> PlayerInfo<'_> {
        PlayerInfo {
            peer,
            player_id: self.player_id,
            name: self.player_name,
            claims: self.ticket.map(|t| &t.claims),
        }
    }
}

/// A seat taken: the player is a member of `session` as `peer`. The wire welcomes it, then
/// calls [`Server::seated`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a seat must be finished with Server::seated"]
pub struct Seat {
    /// The session.
    pub session: SessionId,
    /// The player's peer id in it.
    pub peer: PeerId,
    /// An older connection of the same player, closed once the newcomer is welcomed.
    replaces: Option<ConnId>,
}

impl<H: Hooks> Server<H> {
    /// Seats a player: the rules of the module docs, in their order. On success the connection
    /// is a member; on refusal nothing is left of the attempt (a session it created and left
    /// empty is ended).
    pub fn seat(&mut self, now: Instant, req: &SeatRequest<'_>) -> Result<Seat, Refusal> {
        let sid = req.session;
        let refuse = |server: &mut Self, code: Code, why: String| {
            if req.created && server.sessions.get(&sid).is_some_and(Session::is_empty) {
                server.end_session(now, sid, Code::SessionEnded);
            }
            Err((code, why))
        };
        if let Some(ticket) = req.ticket
            && ticket.expires < self.clock.wall_us(now) / 1_000_000
        {
            let why = "the ticket expired; connect again with a new one".to_owned();
            return refuse(self, Code::TicketExpired, why);
        }
        // A player is in one session at a time: the newest connection wins, but only once it
        // is seated (a refused newcomer must not disconnect the player it claims to be).
        let replaces = req
            .identity
            .filter(|i| !i.is_empty())
            .and_then(|i| self.players.get(i).copied())
            .filter(|&old| old != req.conn);
        let replaced_here = replaces.is_some_and(|old| {
            matches!(self.conns.get(old).map(|c| c.phase),
                Some(Phase::Joined { session, .. }) if session == sid)
        });
        let Some(session) = self.sessions.get_mut(&sid) else {
            return Err((Code::SessionEnded, "the session ended".into()));
        };
        if !session.open && !replaced_here {
            let why = format!("session {} takes no new players", sid.0);
            return refuse(self, Code::SessionClosed, why);
        }
        let max_players = session.max_players;
        if session.len() - usize::from(replaced_here) >= max_players {
            let why = format!("session {} is full ({max_players} players)", sid.0);
            return refuse(self, Code::SessionFull, why);
        }
        // The peer id is taken now so the connect check sees it; a refusal gives the slot back.
        let peer = session.add_member(req.conn, req.player_id, req.player_name);
        let before = self.conns.get(req.conn).map(|c| (c.serial, c.phase));
        let verdict = self.call_hook(now, sid, |h, ctx| {
            h.player_connecting(ctx, req.info(peer), req.payload)
        });
        let Some(session) = self.sessions.get_mut(&sid) else {
            return Err(self.ended_why(sid));
        };
        // The script may have closed the connection meanwhile (`rt.kick` of its new peer id).
        let still_here = self.conns.get(req.conn).map(|c| (c.serial, c.phase)) == before;
        match verdict {
            Err(why) => {
                session.remove_member(peer);
                return refuse(self, Code::RejectedByScript, why);
            }
            Ok(()) if !still_here => {
                session.remove_member(peer);
                let why = "the connection was closed while it was being seated".to_owned();
                return refuse(self, Code::Kicked, why);
            }
            Ok(()) => {}
        }
        let conn = self
            .conns
            .get_mut(req.conn)
            .expect("still_here: the connection is there");
        conn.phase = Phase::Joined { session: sid, peer };
        conn.player_id = req.player_id.to_owned();
        if let Some(identity) = req.identity.filter(|i| !i.is_empty()) {
            self.players.insert(identity.to_owned(), req.conn);
        }
        Ok(Seat {
            session: sid,
            peer,
            replaces,
        })
    }

    /// Finishes a seat once the wire has welcomed the player: the older connection of the same
    /// player is closed (code 27), and the script hears `on_player_join`.
    pub fn seated(&mut self, now: Instant, req: &SeatRequest<'_>, seat: Seat) {
        if let Some(old) = seat.replaces {
            // After the welcome, so the newcomer's first message is still its welcome; it then
            // sees the older connection leave (code 27) if that one was in this session.
            self.close(now, old, Code::Replaced, "the same player connected again");
        }
        let info = req.info(seat.peer);
        self.call_hook(now, seat.session, |h, ctx| h.player_joined(ctx, info));
    }

    /// A native HELLO: checks it, finds or creates its session, seats the player through the
    /// door, sends WELCOME and PLAYER_JOINED.
    pub(super) fn admit(
        &mut self,
        now: Instant,
        id: ConnId,
        hello: &Hello<'_>,
    ) -> Result<(), Refusal> {
        check_hello(hello)?;
        // A browser may have put its token or ticket on the WebSocket upgrade request instead.
        let upgrade = self
            .conns
            .get_mut(id)
            .and_then(|c| c.extras_if_made()?.upgrade_credential.take());
        let credential = match (hello.token, &upgrade) {
            ("", Some(upgrade)) => upgrade.as_str(),
            (token, _) => token,
        };
        let grant = self
            .auth
            .check(credential, self.clock.wall_us(now) / 1_000_000)?;
        let ticket = match &grant {
            Grant::Ticket(t) => Some(&**t),
            Grant::Trusted => None,
        };
        let (player_id, player_name) = identify(hello, ticket)?;
        if let JoinMode::Reconnect(sid) = hello.mode {
            return self.reconnect(now, id, SessionId(sid), hello.payload, ticket);
        }
        let (sid, created) = self.place(now, &hello.mode, ticket)?;
        let req = SeatRequest {
            conn: id,
            session: sid,
            created,
            player_id,
            identity: Some(player_id),
            player_name,
            ticket,
            payload: hello.payload,
        };
        let seat = self.seat(now, &req)?;
        self.welcome_native(now, id, &req, seat);
        self.seated(now, &req, seat);
        Ok(())
    }

    /// The session a native HELLO's join mode names, and whether it was created for it; a
    /// ticket may create only the session it names (or any, with `"*"`).
    fn place(
        &mut self,
        now: Instant,
        mode: &JoinMode<'_>,
        ticket: Option<&Ticket>,
    ) -> Result<(SessionId, bool), Refusal> {
        let may_create = |name: &str| {
            ticket.is_none_or(|t| match &t.session {
                TicketSession::Any => true,
                TicketSession::Name(n) => n == name && !name.is_empty(),
                TicketSession::Id(_) => false,
            })
        };
        let wrong = |t: Option<&Ticket>| t.map(Ticket::wrong_session);
        let params = ticket.and_then(|t| t.params.as_ref());
        let settings = ticket.and_then(|t| t.settings.as_ref());
        match *mode {
            JoinMode::Reconnect(_) => Err((Code::BadHello, "join mode 4 is a reconnect".into())),
            JoinMode::JoinId(raw) => {
                let sid = SessionId(raw);
                match self.sessions.get(&sid) {
                    None => Err((Code::SessionNotFound, format!("no session with id {raw}"))),
                    // Its players speak only sessionserver JSON; a native player could not
                    // talk to them.
                    Some(s) if s.text => Err((
                        Code::SessionNotFound,
                        format!("session {raw} is a sessionserver (JSON) session"),
                    )),
                    Some(s) => match ticket {
                        Some(t) if !t.admits(raw, &s.name) => Err(t.wrong_session()),
                        _ => Ok((sid, false)),
                    },
                }
            }
            JoinMode::Create(name) => {
                if !may_create(name) {
                    return Err(wrong(ticket).expect("only a ticket limits creating"));
                }
                if !name.is_empty() && self.session_names.contains_key(name) {
                    return Err((
                        Code::SessionNameTaken,
                        format!("a session named {name:?} exists"),
                    ));
                }
                Ok((
                    self.create_session(now, name, params, settings, false)?,
                    true,
                ))
            }
            JoinMode::JoinAny(query) => {
                let wanted = super::placement::parse_join_params(query)?;
                if let Some(sid) = self.best_listed_session(&wanted, ticket) {
                    return Ok((sid, false));
                }
                if let Some(t) = ticket
                    && t.session != TicketSession::Any
                {
                    return Err(t.wrong_session());
                }
                let params = super::placement::params_object(&wanted);
                Ok((
                    self.create_session(now, "", Some(&params), settings, true)?,
                    true,
                ))
            }
            JoinMode::JoinOrCreate(name) => {
                if name.is_empty() {
                    return Err((Code::BadHello, "join-or-create needs a session name".into()));
                }
                if let Some(&sid) = self.session_names.get(name) {
                    return match ticket {
                        Some(t) if !t.admits(sid.0, name) => Err(t.wrong_session()),
                        _ => Ok((sid, false)),
                    };
                }
                if !may_create(name) {
                    return Err(wrong(ticket).expect("only a ticket limits creating"));
                }
                Ok((
                    self.create_session(now, name, params, settings, false)?,
                    true,
                ))
            }
        }
    }

    /// Tells a seated native player it is in: WELCOME to it, PLAYER_JOINED to the others, the
    /// session's properties and frame sync state; its silence is watched from now on.
    fn welcome_native(&mut self, now: Instant, id: ConnId, req: &SeatRequest<'_>, seat: Seat) {
        let (sid, peer) = (seat.session, seat.peer);
        let hold = self
            .sessions
            .get(&sid)
            .is_some_and(|s| !s.send_interval.is_zero());
        let reconnect_secret = if self.config.sessions.reconnect_grace_ms > 0 {
            self.random_secret()
        } else {
            0
        };
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        conn.hold = hold;
        conn.reconnect_secret = reconnect_secret;
        let serial = conn.serial;
        let udp_secret = conn.udp_secret;
        let welcome = self.welcome_frame(now, id, sid, peer, udp_secret, reconnect_secret);
        self.conns
            .send_tcp(id, |buf| buf.extend_from_slice(&welcome));
        let Some(session) = self.sessions.get(&sid) else {
            return;
        };
        let joined = ServerMsg::PlayerJoined(PeerInfo {
            peer: peer.0,
            player_id: req.player_id,
            name: req.player_name,
        });
        for m in session.members().iter().filter(|m| m.peer != peer) {
            self.conns.send_tcp(m.conn, |buf| joined.encode(buf));
        }
        log::info!(
            "{sid}: {peer} joined ({} player{}) from {}",
            session.len(),
            if session.len() == 1 { "" } else { "s" },
            self.conns
                .get(id)
                .map(|c| c.addr.to_string())
                .unwrap_or_default()
        );
        self.schedule_idle(now, id, serial);
        self.replay_props(sid, id, peer);
        self.send_frame_state(sid, id);
    }
}

/// The checks of a HELLO that need no state: version, fields its join mode leaves empty, sizes.
fn check_hello(hello: &Hello<'_>) -> Result<(), Refusal> {
    if hello.version != PROTOCOL_VERSION {
        return Err((
            Code::UnsupportedVersion,
            format!(
                "protocol version {} is not supported; this server speaks {PROTOCOL_VERSION}",
                hello.version
            ),
        ));
    }
    if let Some(field) = hello.stray_field {
        return Err((
            Code::BadHello,
            format!(
                "{field} must be empty (0) in join mode {}",
                hello.mode.wire()
            ),
        ));
    }
    let (name_field, name) = match hello.mode {
        JoinMode::Create(n) | JoinMode::JoinOrCreate(n) => ("session name", n),
        JoinMode::JoinAny(p) => ("join parameters", p),
        JoinMode::JoinId(_) | JoinMode::Reconnect(_) => ("session name", ""),
    };
    for (field, value, max) in [
        (name_field, name, MAX_NAME_BYTES),
        ("player id", hello.player_id, MAX_NAME_BYTES),
        ("player name", hello.player_name, MAX_NAME_BYTES),
        ("token", hello.token, MAX_TOKEN_BYTES),
    ] {
        if value.len() > max {
            return Err((
                Code::BadHello,
                format!("{field} is {} bytes; the limit is {max}", value.len()),
            ));
        }
    }
    Ok(())
}

/// Who a HELLO's player is: with a ticket, the ticket says (a HELLO naming another player id is
/// refused); without one, the HELLO.
fn identify<'a>(
    hello: &Hello<'a>,
    ticket: Option<&'a Ticket>,
) -> Result<(&'a str, &'a str), Refusal> {
    let Some(t) = ticket else {
        return Ok((hello.player_id, hello.player_name));
    };
    if !hello.player_id.is_empty() && hello.player_id != t.player_id {
        return Err((
            Code::InvalidTicket,
            format!(
                "player_id {:?} is not the ticket's player {:?}",
                hello.player_id, t.player_id
            ),
        ));
    }
    Ok((
        t.player_id.as_str(),
        t.name.as_deref().unwrap_or(hello.player_name),
    ))
}
