//! Custom properties: a player's own (MGOBE custom player status) and the session's (MGOBE room
//! properties). Opaque bytes the server keeps, tells everyone in the session about when they
//! change, and replays to each player that joins later.

use super::codec::{MAX_PROPS_BYTES, ServerMsg};
use super::codes::Code;
use super::hooks::{Hooks, PropsScope};
use super::ids::{ConnId, PeerId, SessionId};
use super::server::Server;
use std::time::Instant;

impl<H: Hooks> Server<H> {
    /// A player's SET_PLAYER_PROPS or SET_SESSION_PROPS: checked, offered to session logic, set.
    pub(crate) fn props_request(
        &mut self,
        now: Instant,
        id: ConnId,
        sid: SessionId,
        peer: PeerId,
        scope: PropsScope,
        props: &[u8],
    ) {
        if props.len() > MAX_PROPS_BYTES {
            let why = format!(
                "properties are {} bytes; the limit is {MAX_PROPS_BYTES}",
                props.len()
            );
            self.send_error(id, Code::PropsTooLarge, 0, &why);
            return;
        }
        if !self.call_hook(now, sid, |h, ctx| h.props_request(ctx, peer, scope, props)) {
            self.send_error(
                id,
                Code::PropsRefused,
                0,
                "the session script refused the properties change",
            );
            return;
        }
        let target = match scope {
            PropsScope::Player => peer,
            PropsScope::Session => PeerId::SERVER,
        };
        self.set_props(sid, target, peer, props);
    }

    /// Sets a player's (`target` non-zero) or the session's (`target` 0) properties and tells
    /// everyone in the session. `by` is who set them.
    pub(crate) fn set_props(&mut self, sid: SessionId, target: PeerId, by: PeerId, props: &[u8]) {
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        if session.text {
            self.text_events.push(super::text::TextEvent::Props {
                session: sid,
                target,
                props: props.to_vec(),
            });
            return;
        }
        let msg = if target == PeerId::SERVER {
            session.props.clear();
            session.props.extend_from_slice(props);
            session.props_by = by.0;
            ServerMsg::SessionProps { by: by.0, props }
        } else {
            let Some(member) = session.member_mut(target) else {
                return;
            };
            member.props.clear();
            member.props.extend_from_slice(props);
            ServerMsg::PlayerProps {
                peer: target.0,
                props,
            }
        };
        for m in session.members() {
            self.conns.send_tcp(m.conn, |buf| msg.encode(buf));
        }
    }

    /// Sends a newly joined player the properties already set.
    pub(crate) fn replay_props(&mut self, sid: SessionId, id: ConnId, joiner: PeerId) {
        let Some(session) = self.sessions.get(&sid) else {
            return;
        };
        if !session.props.is_empty() {
            let msg = ServerMsg::SessionProps {
                by: session.props_by,
                props: &session.props,
            };
            self.conns.send_tcp(id, |buf| msg.encode(buf));
        }
        for m in session.members() {
            if m.peer != joiner && !m.props.is_empty() {
                let msg = ServerMsg::PlayerProps {
                    peer: m.peer.0,
                    props: &m.props,
                };
                self.conns.send_tcp(id, |buf| msg.encode(buf));
            }
        }
    }
}
