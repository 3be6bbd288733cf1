//! Carrying out what session logic asked for (see `hooks.rs`), after its call returned.

use super::codec::{self, Data, PeerList, Target};
use super::codes::Code;
use super::hooks::{Command, Hooks, SendTarget};
use super::ids::{PeerId, SessionId};
use super::server::Server;
use std::time::{Duration, Instant};

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
                    && group != super::session::ALL_PLAYERS_GROUP
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
            Command::Configure {
                session,
                max_players,
                linger_ms,
                open,
                send_interval_ms,
            } => {
                let settings = super::auth::SessionSettings {
                    max_players,
                    linger_ms,
                    send_interval_ms,
                };
                // The script checked the limits; a logic that did not is refused here.
                if let Err((_, why)) = self.check_settings(&settings) {
                    log::warn!("{session}: settings refused: {why}");
                    return;
                }
                if let Some(s) = self.sessions.get_mut(&session) {
                    if let Some(n) = max_players {
                        s.max_players = n;
                    }
                    if let Some(ms) = linger_ms {
                        s.linger = std::time::Duration::from_millis(ms);
                    }
                    if let Some(open) = open {
                        s.open = open;
                    }
                }
                if let Some(ms) = send_interval_ms {
                    self.set_send_interval(now, session, Duration::from_millis(ms));
                }
            }
            Command::FrameSync { session, on, rate } => self.set_frame_sync(now, session, on, rate),
            Command::SendGroupMembers { session, group, to } => {
                let Some(s) = self.sessions.get(&session) else {
                    return;
                };
                let conns: Vec<_> = match &to {
                    SendTarget::All => s.members().iter().map(|m| m.conn).collect(),
                    SendTarget::Peers(peers) => {
                        peers.iter().filter_map(|&p| s.conn_of(PeerId(p))).collect()
                    }
                    SendTarget::Group(super::session::ALL_PLAYERS_GROUP) => {
                        s.members().iter().map(|m| m.conn).collect()
                    }
                    SendTarget::Group(g) => s.group(*g).iter().map(|&(_, c)| c).collect(),
                };
                if group != 0 {
                    self.send_group_members(session, group, &conns);
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
