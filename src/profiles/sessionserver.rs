//! The sessionserver profile: WebSocket text messages speaking the JSON protocol of the npm
//! package `sessionserver` 0.2.x, so games written against it run on moonrt unchanged
//! (PROTOCOL.md section 13).
//!
//! Its sessions are ordinary core sessions: their players are members with peer ids, the
//! session script sees them connect (and may refuse them), join, leave and change their data,
//! and `rt.kick` / `rt.end_session` / `rt.set_*_props` act on them. What the profile adds is the
//! reference's bookkeeping: public ids from two counters, session data, the player-data format
//! every player's data must keep the shape of, and player order (the order messages go out in).
//!
//! Where the reference throws halfway through a command (a missing `player`, say), nothing is
//! sent either; the state it had already changed is changed here too.
//!
//! The profile holds its own state ([`SessionServer`]) beside the core and works through the
//! core's session API; the core tells it what happened to its players with
//! `core::text` events, taken by [`SessionServer::take_events`] after every input.

use crate::core::auth::TicketSession;
use crate::core::codes::Code;
use crate::core::hooks::{Hooks, PropsScope};
use crate::core::ids::{ConnId, PeerId, SessionId};
use crate::core::js_json::{self, assign_copy, deep_keys, stringify};
use crate::core::text::TextEvent;
use crate::core::{SeatRequest, Server, TextSender};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::time::Instant;

/// The sessionserver profile: its process-wide counters, its sessions' data by core session
/// and by public id, and the package's player number of each WebSocket connection.
#[derive(Debug, Default)]
pub struct SessionServer {
    next_player: u64,
    next_session: u64,
    /// Public session id to core session.
    public: HashMap<u64, SessionId>,
    /// Each sessionserver session's data.
    sessions: HashMap<SessionId, JsonSession>,
    /// The package's player number of each upgraded WebSocket connection.
    numbers: HashMap<ConnId, u64>,
}

/// A sessionserver session's data, kept beside the core session.
#[derive(Debug)]
struct JsonSession {
    /// Public id (from 0).
    pub id: u64,
    /// Session data; `None` is JavaScript's `undefined` (the key is left out of messages).
    pub data: Option<Value>,
    /// The player-data format: every joiner's data starts as a copy, and updates must keep
    /// its shape.
    pub default_player: Option<Value>,
    /// Players in the order they joined: the order the reference's `Map` iterates in.
    pub players: Vec<JsonPlayer>,
}

/// A player in a sessionserver session.
#[derive(Debug)]
struct JsonPlayer {
    /// Public player id (per connection, from 0).
    pub id: u64,
    /// Its peer id in the core session.
    pub peer: PeerId,
    /// Its connection.
    pub conn: ConnId,
    /// Its player data.
    pub data: Value,
}

/// The client commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Create,
    Join,
    UpdateSession,
    UpdatePlayer,
    Leave,
}

impl Command {
    fn from_name(name: &str) -> Option<Command> {
        Some(match name {
            "createSession" => Command::Create,
            "joinSession" => Command::Join,
            "updateSession" => Command::UpdateSession,
            "updatePlayer" => Command::UpdatePlayer,
            "leaveSession" => Command::Leave,
            _ => return None,
        })
    }
}

/// Error codes, as the reference numbers them.
mod error {
    pub const UNKNOWN_CONNECTION: u8 = 1;
    pub const NOT_IN_SESSION: u8 = 2;
    pub const SESSION_GONE: u8 = 3;
    pub const ALREADY_IN_SESSION_OR_BAD_SHAPE: u8 = 4;
    pub const ALREADY_IN_SESSION: u8 = 5;
    pub const NO_SESSION_TO_JOIN: u8 = 6;
    pub const NO_SUCH_SESSION: u8 = 7;
    pub const COULD_NOT_ADD: u8 = 8;
}

/// Builds one server message: `{"command":..,"error":..` and then fields, in order.
struct Msg(String);

impl Msg {
    fn new(command: &str, error: u8) -> Msg {
        Msg(format!(r#"{{"command":"{command}","error":{error}"#))
    }

    fn id(mut self, key: &str, id: u64) -> Msg {
        self.0.push_str(&format!(r#","{key}":{id}"#));
        self
    }

    /// A user value; `None` (JavaScript's `undefined`) leaves the key out, as `JSON.stringify`.
    fn value(mut self, key: &str, value: Option<&Value>) -> Msg {
        if let Some(value) = value {
            self.0.push_str(&format!(r#","{key}":"#));
            stringify(value, &mut self.0);
        }
        self
    }

    fn done(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// A command's field, under its name or the alias the package's README uses.
fn field<'a>(msg: &'a Map<String, Value>, name: &str, alias: &str) -> Option<&'a Value> {
    msg.get(name).or_else(|| msg.get(alias))
}

fn text_of(value: Option<&Value>) -> String {
    let mut text = String::new();
    if let Some(value) = value {
        stringify(value, &mut text);
    }
    text
}

fn reply<H: Hooks>(core: &mut Server<H>, id: ConnId, command: &str, error: u8) {
    core.send_text(id, &Msg::new(command, error).done());
}

impl SessionServer {
    /// A WebSocket upgrade completed: the connection is given the next player number (the
    /// package numbers WebSocket connections only, so a port probe or a load balancer's health
    /// check that never upgrades takes no number).
    pub fn on_ws_open<H: Hooks>(&mut self, core: &Server<H>, id: ConnId) {
        if core.is_between_sessions(id) {
            self.numbers.insert(id, self.next_player);
            self.next_player += 1;
        }
    }

    /// The connection is gone: its number is forgotten.
    pub fn forget(&mut self, id: ConnId) {
        self.numbers.remove(&id);
    }

    /// A WebSocket text message: a sessionserver command.
    pub fn handle_text<H: Hooks>(
        &mut self,
        core: &mut Server<H>,
        now: Instant,
        id: ConnId,
        text: &str,
    ) {
        self.text_command(core, now, id, text);
        core.after_input(now);
        self.take_events(core, now);
    }

    /// Tells the clients what the core did to their players and sessions since the last call
    /// (players leaving, sessions ending, the script setting data).
    pub fn take_events<H: Hooks>(&mut self, core: &mut Server<H>, now: Instant) {
        loop {
            let events = core.take_text_events();
            if events.is_empty() {
                return;
            }
            for event in events {
                match event {
                    TextEvent::Left {
                        session,
                        peer,
                        ending,
                    } => self.player_left(core, session, peer, ending),
                    TextEvent::Evicted { conn } => {
                        reply(core, conn, "sessionLeave", error::SESSION_GONE)
                    }
                    TextEvent::Removed { session } => {
                        if let Some(json) = self.sessions.remove(&session) {
                            self.public.remove(&json.id);
                        }
                    }
                    TextEvent::Props {
                        session,
                        target,
                        props,
                    } => self.set_props(core, session, target, &props),
                }
            }
            core.after_input(now);
        }
    }

    fn text_command<H: Hooks>(
        &mut self,
        core: &mut Server<H>,
        now: Instant,
        id: ConnId,
        text: &str,
    ) {
        let native_player = match core.accept_text(now, id, text.len()) {
            TextSender::Closed => return,
            TextSender::Native => true,
            TextSender::Text => false,
        };
        let parsed = js_json::parse(text);
        let command = match &parsed {
            Ok(Value::Object(msg)) => match msg.get("command") {
                Some(Value::String(name)) => Command::from_name(name).map(|c| (c, msg)),
                _ => None,
            },
            _ => None,
        };
        let Some((command, msg)) = command else {
            if native_player {
                core.close_for_protocol_error(
                    now,
                    id,
                    Code::UnexpectedMessage,
                    "text WebSocket messages are not the native protocol; send binary",
                );
            } else {
                // The reference ignores what it cannot parse or does not know.
                log::debug!("{id}: ignored a text message that is not a sessionserver command");
            }
            return;
        };
        if native_player {
            // The reference's answers to a connection it does not know as a player.
            let (name, code) = match command {
                Command::Create => ("sessionJoin", error::ALREADY_IN_SESSION_OR_BAD_SHAPE),
                Command::Join => ("sessionJoin", error::ALREADY_IN_SESSION),
                Command::UpdateSession => ("sessionUpdate", error::UNKNOWN_CONNECTION),
                Command::UpdatePlayer => ("playerUpdate", error::UNKNOWN_CONNECTION),
                Command::Leave => ("sessionLeave", error::UNKNOWN_CONNECTION),
            };
            reply(core, id, name, code);
            return;
        }
        match command {
            Command::Create => self.create(core, now, id, msg, text),
            Command::Join => self.join(core, now, id, msg, text),
            Command::UpdateSession => self.update_session(core, now, id, msg),
            Command::UpdatePlayer => self.update_player(core, now, id, msg),
            Command::Leave => self.leave(core, now, id),
        }
    }

    /// Whether the connection's ticket (if any) names sessionserver session `public` (`None`:
    /// a session it would create, which needs `"session": "*"`); if not, it is closed with
    /// code 19. Its expiry is the door's to check (`Server::seat`).
    fn ticket_names<H: Hooks>(
        &self,
        core: &mut Server<H>,
        now: Instant,
        id: ConnId,
        public: Option<u64>,
    ) -> bool {
        let Some(ticket) = core.text_ticket(id) else {
            return true;
        };
        let ok = match (&ticket.session, public) {
            (TicketSession::Any, _) => true,
            (TicketSession::Id(allowed), Some(public)) => *allowed == public,
            _ => false,
        };
        if !ok {
            let (code, why) = ticket.wrong_session();
            core.close(now, id, code, &why);
        }
        ok
    }

    /// The session and peer of a player that must be in a session, or the error it is sent.
    fn membership<H: Hooks>(
        &self,
        core: &mut Server<H>,
        id: ConnId,
        response: &str,
    ) -> Option<(SessionId, PeerId)> {
        match core.membership(id) {
            Some((session, peer)) => {
                if self.sessions.contains_key(&session) && core.has_session(session) {
                    return Some((session, peer));
                }
                reply(core, id, response, error::SESSION_GONE);
            }
            None => reply(core, id, response, error::NOT_IN_SESSION),
        }
        None
    }

    fn create<H: Hooks>(
        &mut self,
        core: &mut Server<H>,
        now: Instant,
        id: ConnId,
        msg: &Map<String, Value>,
        text: &str,
    ) {
        if !core.is_between_sessions(id) {
            reply(
                core,
                id,
                "sessionJoin",
                error::ALREADY_IN_SESSION_OR_BAD_SHAPE,
            );
            return;
        }
        if !self.ticket_names(core, now, id, None) {
            return;
        }
        let params = core.text_ticket(id).and_then(|t| t.params.clone());
        let data = assign_copy(field(msg, "session", "sessionData"));
        let props = text_of(Some(&data)).into_bytes();
        let sid = match core.create_text_session(now, params.as_ref(), props) {
            Ok(sid) => sid,
            Err((_, why)) => {
                log::info!("{id}: could not create a sessionserver session: {why}");
                reply(core, id, "sessionJoin", error::COULD_NOT_ADD);
                return;
            }
        };
        let public = self.next_session;
        self.next_session += 1;
        self.public.insert(public, sid);
        self.sessions.insert(
            sid,
            JsonSession {
                id: public,
                data: Some(data),
                default_player: field(msg, "player", "playerData").cloned(),
                players: Vec::new(),
            },
        );
        log::info!("{sid}: sessionserver session {public}");
        // Refused, the player leaves the new session empty: the door ends it.
        self.add_player(core, now, id, sid, true, text);
    }

    fn join<H: Hooks>(
        &mut self,
        core: &mut Server<H>,
        now: Instant,
        id: ConnId,
        msg: &Map<String, Value>,
        text: &str,
    ) {
        if !core.is_between_sessions(id) {
            reply(core, id, "sessionJoin", error::ALREADY_IN_SESSION);
            return;
        }
        let requested = match msg.get("sessionID") {
            Some(Value::Number(n)) => n.as_f64(),
            _ => None,
        };
        let public = if requested == Some(-1.0) {
            if self.public.is_empty() {
                reply(core, id, "sessionJoin", error::NO_SESSION_TO_JOIN);
                return;
            }
            // The most recently created session, even if it is gone (then: error 7).
            Some(self.next_session.saturating_sub(1))
        } else {
            requested
                .filter(|n| n.fract() == 0.0 && *n >= 0.0 && *n < u64::MAX as f64)
                .map(|n| n as u64)
        };
        let Some(&sid) = public.and_then(|p| self.public.get(&p)) else {
            reply(core, id, "sessionJoin", error::NO_SUCH_SESSION);
            return;
        };
        if !self.ticket_names(core, now, id, public) {
            return;
        }
        self.add_player(core, now, id, sid, false, text);
    }

    /// Puts a connection in a sessionserver session through the core's one door
    /// (`Server::seat`: closed, full, the script's connect check, ... all answer error 8; a
    /// ticket that expired closes the connection with 4018), then `sessionJoin` and the
    /// `playerJoin` pairs.
    fn add_player<H: Hooks>(
        &mut self,
        core: &mut Server<H>,
        now: Instant,
        id: ConnId,
        sid: SessionId,
        created: bool,
        text: &str,
    ) -> bool {
        let Some(&number) = self.numbers.get(&id) else {
            return false;
        };
        // The script sees the ticket's player id and claims; the wire keeps the package's
        // numeric player ids. Without a ticket a player has no identity beyond its connection.
        let ticket = core.text_ticket(id).cloned();
        let number_text = number.to_string();
        let (player_id, identity) = match &ticket {
            Some(t) => (t.player_id.as_str(), Some(t.player_id.as_str())),
            None => (number_text.as_str(), None),
        };
        let req = SeatRequest {
            conn: id,
            session: sid,
            created,
            player_id,
            identity,
            player_name: ticket
                .as_ref()
                .and_then(|t| t.name.as_deref())
                .unwrap_or(""),
            ticket: ticket.as_ref(),
            payload: text.as_bytes(),
        };
        let seated = core.seat(now, &req);
        // What the script did meanwhile reaches the clients first, as it happened.
        self.take_events(core, now);
        let seat = match seated {
            Ok(seat) => seat,
            Err((code, why)) => {
                log::info!("{sid}: {id} refused: {why}");
                if matches!(
                    code,
                    Code::TicketExpired | Code::InvalidTicket | Code::TicketWrongSession
                ) {
                    core.close(now, id, code, &why);
                } else {
                    reply(core, id, "sessionJoin", error::COULD_NOT_ADD);
                }
                return false;
            }
        };
        let peer = seat.peer;
        let Some(json) = self.sessions.get_mut(&sid) else {
            return false;
        };
        let data = assign_copy(json.default_player.as_ref());
        let data_text = text_of(Some(&data));
        let joined = Msg::new("playerJoin", 0)
            .id("playerID", number)
            .value("player", Some(&data))
            .done();
        let welcome = Msg::new("sessionJoin", 0)
            .id("sessionID", json.id)
            .id("playerID", number)
            .value("session", json.data.as_ref())
            .value("player", Some(&data))
            .done();
        core.send_text(id, &welcome);
        for other in &json.players {
            let about = Msg::new("playerJoin", 0)
                .id("playerID", other.id)
                .value("player", Some(&other.data))
                .done();
            core.send_text(id, &about);
            core.send_text(other.conn, &joined);
        }
        json.players.push(JsonPlayer {
            id: number,
            peer,
            conn: id,
            data,
        });
        let players = json.players.len();
        core.set_player_props(sid, peer, data_text.into_bytes());
        log::info!("{sid}: {peer} (sessionserver player {number}) joined ({players} players)");
        core.seated(now, &req, seat);
        self.take_events(core, now);
        true
    }

    fn update_player<H: Hooks>(
        &mut self,
        core: &mut Server<H>,
        now: Instant,
        id: ConnId,
        msg: &Map<String, Value>,
    ) {
        let Some((sid, peer)) = self.membership(core, id, "playerUpdate") else {
            return;
        };
        let new = field(msg, "player", "playerData");
        let Some(json) = self.sessions.get(&sid) else {
            return;
        };
        let (Some(format), Some(shape)) = (deep_keys(json.default_player.as_ref()), deep_keys(new))
        else {
            log::debug!("{sid}: updatePlayer without player data: ignored");
            return;
        };
        let mut accepted = format == shape;
        if accepted {
            let text = text_of(new);
            accepted = core.call_hook(now, sid, |h, ctx| {
                h.props_request(ctx, peer, PropsScope::Player, text.as_bytes())
            });
            self.take_events(core, now);
            if accepted
                && let Some(player) = self
                    .sessions
                    .get_mut(&sid)
                    .and_then(|j| j.players.iter_mut().find(|p| p.peer == peer))
            {
                player.data = new.cloned().unwrap_or_default();
                core.set_player_props(sid, peer, text.into_bytes());
            }
        } else {
            log::debug!("{sid}: {peer}'s player data does not keep the session's format");
        }
        if !accepted {
            reply(
                core,
                id,
                "playerUpdate",
                error::ALREADY_IN_SESSION_OR_BAD_SHAPE,
            );
        }
        // As the reference: everyone hears the player's data, changed or not.
        self.broadcast_player(core, sid, peer);
    }

    /// `playerUpdate` about one player, to everyone in its session.
    fn broadcast_player<H: Hooks>(&self, core: &mut Server<H>, sid: SessionId, peer: PeerId) {
        let Some(json) = self.sessions.get(&sid) else {
            return;
        };
        let Some(player) = json.players.iter().find(|p| p.peer == peer) else {
            return;
        };
        let update = Msg::new("playerUpdate", 0)
            .id("playerID", player.id)
            .value("player", Some(&player.data))
            .done();
        for p in &json.players {
            core.send_text(p.conn, &update);
        }
    }

    fn update_session<H: Hooks>(
        &mut self,
        core: &mut Server<H>,
        now: Instant,
        id: ConnId,
        msg: &Map<String, Value>,
    ) {
        let Some((sid, peer)) = self.membership(core, id, "sessionUpdate") else {
            return;
        };
        let data = field(msg, "session", "sessionData").cloned();
        let format = field(msg, "player", "playerData").cloned();
        let text = text_of(data.as_ref());
        let accepted = core.call_hook(now, sid, |h, ctx| {
            h.props_request(ctx, peer, PropsScope::Session, text.as_bytes())
        });
        self.take_events(core, now);
        if core.membership(id) != Some((sid, peer)) {
            return;
        }
        if !accepted {
            reply(
                core,
                id,
                "sessionUpdate",
                error::ALREADY_IN_SESSION_OR_BAD_SHAPE,
            );
            return;
        }
        self.set_session(core, sid, data, format);
    }

    /// Sets session data and the player-data format, resets every player's data to the format
    /// and sends everyone `sessionUpdate`.
    fn set_session<H: Hooks>(
        &mut self,
        core: &mut Server<H>,
        sid: SessionId,
        data: Option<Value>,
        format: Option<Value>,
    ) {
        if !core.has_session(sid) {
            return;
        }
        core.set_session_props(sid, text_of(data.as_ref()).into_bytes());
        let Some(json) = self.sessions.get_mut(&sid) else {
            return;
        };
        json.data = data;
        json.default_player = format;
        if deep_keys(json.default_player.as_ref()).is_none() {
            // The reference throws here: the data changed, nobody is told.
            log::debug!("{sid}: updateSession without a player format: nobody told");
            return;
        }
        let format = json.default_player.clone().unwrap_or_default();
        let format_text = text_of(Some(&format));
        let update = Msg::new("sessionUpdate", 0)
            .value("session", json.data.as_ref())
            .value("player", Some(&format))
            .done();
        let peers: Vec<(PeerId, ConnId)> = json.players.iter().map(|p| (p.peer, p.conn)).collect();
        for p in &mut json.players {
            p.data = format.clone();
        }
        for (peer, conn) in peers {
            core.set_player_props(sid, peer, format_text.clone().into_bytes());
            core.send_text(conn, &update);
        }
    }

    fn leave<H: Hooks>(&mut self, core: &mut Server<H>, now: Instant, id: ConnId) {
        let Some((sid, peer)) = self.membership(core, id, "sessionLeave") else {
            return;
        };
        reply(core, id, "sessionLeave", 0);
        log::info!("{sid}: {peer} leaves: sessionserver leaveSession");
        core.leave_text_session(now, id);
        self.take_events(core, now);
    }

    /// A player left a sessionserver session: the others get `playerLeave` (not while the
    /// session is ending).
    fn player_left<H: Hooks>(
        &mut self,
        core: &mut Server<H>,
        sid: SessionId,
        peer: PeerId,
        ending: bool,
    ) {
        let Some(json) = self.sessions.get_mut(&sid) else {
            return;
        };
        let Some(at) = json.players.iter().position(|p| p.peer == peer) else {
            return;
        };
        let gone = json.players.remove(at);
        if ending {
            return;
        }
        let left = Msg::new("playerLeave", 0).id("playerID", gone.id).done();
        for p in &json.players {
            core.send_text(p.conn, &left);
        }
    }

    /// `rt.set_player_props` / `rt.set_session_props` in a sessionserver session: the bytes
    /// must be JSON; they become the player's data (`playerUpdate` to everyone) or the session
    /// data (`sessionUpdate`, which resets every player's data to the format, as the reference).
    fn set_props<H: Hooks>(
        &mut self,
        core: &mut Server<H>,
        sid: SessionId,
        target: PeerId,
        props: &[u8],
    ) {
        let value = std::str::from_utf8(props)
            .ok()
            .and_then(|t| js_json::parse(t).ok());
        if !core.is_session_live(sid) {
            return;
        }
        let Some(value) = value else {
            log::warn!(
                "{sid}: properties for a sessionserver session must be JSON text; ignored {} bytes",
                props.len()
            );
            return;
        };
        if target == PeerId::SERVER {
            let format = self
                .sessions
                .get(&sid)
                .and_then(|j| j.default_player.clone());
            self.set_session(core, sid, Some(value), format);
            return;
        }
        let Some(player) = self
            .sessions
            .get_mut(&sid)
            .and_then(|j| j.players.iter_mut().find(|p| p.peer == target))
        else {
            return;
        };
        player.data = value;
        core.set_player_props(sid, target, props.to_vec());
        self.broadcast_player(core, sid, target);
    }
}
