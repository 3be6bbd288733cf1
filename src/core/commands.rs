//! Carrying out what session logic asked for (see `hooks.rs`), after its call returned.

use super::codec::{self, Data, PeerList, Target};
use super::codes::Code;
use super::hooks::{Command, Hooks, SendTarget};
use super::ids::{PeerId, SessionId};
use super::server::Server;
use std::time::Instant;

impl<H: Hooks> Server<H> {
    /// Carries out one command. Commands for a session that has ended are ignored.
    pub(crate) fn apply_command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Send {
                session,
                from,
                to,
                opcode,
                intent,
                payload,
            } => self.send_from(now, session, from, &to, opcode, intent, &payload),
            Command::Kick {
                session,
                peer,
                reason,
            } => {
                if let Some(conn) = self.sessions.get(&session).and_then(|s| s.conn_of(peer)) {
                    self.close(now, conn, Code::Kicked, &reason);
                }
            }
            Command::EndSession {
                session,
                code,
                reason,
            } => self.end_session_with(now, session, code, &reason),
            Command::GroupAdd {
                session,
                group,
                peer,
            } => {
                let Some(s) = self.sessions.get_mut(&session) else {
                    return;
                };
                if group != 0
                    && let Some(conn) = s.conn_of(peer)
                    && s.join_group(group, peer, conn)
                {
                    self.group_changed(now, session, group, None);
                }
            }
            Command::GroupRemove {
                session,
                group,
                peer,
            } => {
                let Some(s) = self.sessions.get_mut(&session) else {
                    return;
                };
                let conn = s.conn_of(peer);
                if s.leave_group(group, peer) {
                    self.group_changed(now, session, group, conn);
                }
            }
            Command::SetProps {
                session,
                peer,
                props,
            } => self.set_props(session, peer, PeerId::SERVER, &props),
            Command::SetTimer { session, timer, at } => {
                if self.sessions.contains_key(&session) {
                    self.schedule_script_timer(session, timer, at);
                }
            }
        }
    }

    /// Sends a message made by session logic, from the server (peer 0) or on behalf of a player.
    /// It does not pass through `on_packet` again.
    #[allow(clippy::too_many_arguments)]
    fn send_from(
        &mut self,
        now: Instant,
        sid: SessionId,
        from: PeerId,
        to: &SendTarget,
        opcode: u32,
        intent: codec::Intent,
        payload: &[u8],
    ) {
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        let seq = if from == PeerId::SERVER {
            let seq = session.server_seq;
            session.server_seq = seq.wrapping_add(1);
            seq
        } else {
            let Some(conn) = session.conn_of(from).and_then(|c| self.conns.get_mut(c)) else {
                return;
            };
            let seq = conn.next_seq;
            conn.next_seq = seq.wrapping_add(1);
            seq
        };
        let wire;
        let target = match to {
            // From the server, "all" is everyone; `route` skips only the sender, peer 0.
            SendTarget::All => Target::AllOthers,
            SendTarget::Group(g) => Target::Group(*g),
            SendTarget::Peers(peers) => {
                wire = codec::encode_peer_list(peers);
                Target::Peers(PeerList::from_wire(&wire))
            }
        };
        let data = Data {
            intent,
            opcode,
            target,
            payload,
        };
        self.route(now, None, sid, from, seq, &data);
    }
}
