//! Routing: DATA to its receivers, groups, pings, and messages the server sends itself.

use super::codec::{self, Data, Intent, PeerList, ServerMsg, Target};
use super::codes::Code;
use super::conn::Delivered;
use super::hooks::{Command, Hooks, SendTarget, Verdict};
use super::ids::{ConnId, PeerId, SessionId};
use super::server::{Server, Via};
use std::time::Instant;

impl<H: Hooks> Server<H> {
    /// Routes one DATA message from a player. The payload is copied into each receiver's buffer
    /// behind a header built once; it is never decoded.
    pub(crate) fn route_data(
        &mut self,
        now: Instant,
        from: ConnId,
        sid: SessionId,
        sender: PeerId,
        data: &Data<'_>,
    ) {
        self.stats.messages_in += 1;
        if data.opcode == 0 {
            self.send_error(
                from,
                Code::InvalidOpcode,
                "opcode 0 is reserved; message dropped",
            );
            return;
        }
        let Some(conn) = self.conns.get_mut(from) else {
            return;
        };
        let seq = conn.next_seq;
        conn.next_seq = conn.next_seq.wrapping_add(1);
        // The seam for session logic: it sees the packet before anyone else does.
        if self.hooks.on_packet(sid, sender, data) == Verdict::Drop {
            return;
        }
        let Some(session) = self.sessions.get(&sid) else {
            return;
        };
        let header =
            codec::delivery_header(data.intent, data.opcode, sender.0, seq, data.payload.len());
        let mut to_server = false;
        let mut unknown: Option<u16> = None;
        let mut delivered = 0u64;
        let mut dropped = 0u64;
        let mut tally = |r: Delivered| match r {
            Delivered::Tcp | Delivered::Udp => delivered += 1,
            Delivered::Dropped => dropped += 1,
            Delivered::Gone => {}
        };
        match data.target {
            Target::AllOthers => {
                for m in session.members().iter().filter(|m| m.peer != sender) {
                    tally(
                        self.conns
                            .deliver(m.conn, &header, data.payload, data.intent),
                    );
                }
            }
            Target::Group(g) => {
                for &(peer, conn) in session.group(g) {
                    if peer != sender {
                        tally(self.conns.deliver(conn, &header, data.payload, data.intent));
                    }
                }
            }
            Target::Peers(list) => {
                for (i, p) in list.iter().enumerate() {
                    if list.seen_before(i, p) {
                        continue;
                    }
                    if p == PeerId::SERVER.0 {
                        to_server = true;
                    } else if let Some(conn) = session.conn_of(PeerId(p)) {
                        tally(self.conns.deliver(conn, &header, data.payload, data.intent));
                    } else {
                        unknown.get_or_insert(p);
                    }
                }
            }
            Target::Server => to_server = true,
        }
        self.stats.deliveries += delivered;
        self.stats.deliveries_dropped += dropped;
        if to_server {
            self.stats.to_server += 1;
            if !self
                .hooks
                .on_server_message(sid, sender, data, &mut self.outbox)
            {
                self.stats.to_server_unhandled += 1;
            }
            self.apply_outbox(now);
        }
        if let Some(p) = unknown {
            self.send_error(
                from,
                Code::UnknownPeer,
                &format!("peer {p} is not in the session; the other targets got the message"),
            );
        }
    }

    /// Sends a non-fatal ERROR to a connection.
    fn send_error(&mut self, id: ConnId, code: Code, message: &str) {
        let msg = ServerMsg::Error {
            code: code.as_u16(),
            message,
        };
        self.conns.send_tcp(id, |buf| msg.encode(buf));
    }

    pub(crate) fn group_join(&mut self, id: ConnId, sid: SessionId, peer: PeerId, g: u16) {
        if g == 0 {
            self.send_error(id, Code::InvalidGroup, "group 0 is reserved");
            return;
        }
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        if session.join_group(g, peer, id) {
            self.send_group_members(sid, g, None);
        } else {
            self.group_query(id, sid, g);
        }
    }

    pub(crate) fn group_leave(&mut self, id: ConnId, sid: SessionId, peer: PeerId, g: u16) {
        if g == 0 {
            self.send_error(id, Code::InvalidGroup, "group 0 is reserved");
            return;
        }
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        session.leave_group(g, peer);
        // The remaining members and the leaver all learn the new membership.
        self.send_group_members(sid, g, Some(id));
    }

    pub(crate) fn group_query(&mut self, id: ConnId, sid: SessionId, g: u16) {
        let Some(session) = self.sessions.get(&sid) else {
            return;
        };
        let wire = member_list(session.group(g));
        let msg = ServerMsg::GroupMembers {
            group: g,
            members: PeerList::from_wire(&wire),
        };
        self.conns.send_tcp(id, |buf| msg.encode(buf));
    }

    /// Sends a group's membership to its members, and to `also` if given.
    pub(crate) fn send_group_members(&mut self, sid: SessionId, g: u16, also: Option<ConnId>) {
        let Some(session) = self.sessions.get(&sid) else {
            return;
        };
        let members = session.group(g);
        let wire = member_list(members);
        let msg = ServerMsg::GroupMembers {
            group: g,
            members: PeerList::from_wire(&wire),
        };
        for &(_, conn) in members {
            self.conns.send_tcp(conn, |buf| msg.encode(buf));
        }
        if let Some(conn) = also
            && !members.iter().any(|&(_, c)| c == conn)
        {
            self.conns.send_tcp(conn, |buf| msg.encode(buf));
        }
    }

    /// Answers a PING on the transport it came by.
    pub(crate) fn pong(&mut self, now: Instant, id: ConnId, client_time: u64, via: Via) {
        let msg = ServerMsg::Pong {
            client_time,
            server_time_us: self.clock.wall_us(now),
        };
        match via {
            Via::Tcp => self.conns.send_tcp(id, |buf| msg.encode(buf)),
            Via::Udp(_) => self.conns.send_udp(id, |buf| msg.encode(buf)),
        }
    }

    /// Carries out one command recorded by session logic.
    pub(crate) fn apply_command(&mut self, _now: Instant, command: Command) {
        match command {
            Command::Send {
                session: sid,
                to,
                opcode,
                intent,
                payload,
            } => self.send_from_server(sid, &to, opcode, intent, &payload),
        }
    }

    /// Delivers a message from the server (sender peer 0) inside a session.
    pub(crate) fn send_from_server(
        &mut self,
        sid: SessionId,
        to: &SendTarget,
        opcode: u32,
        intent: Intent,
        payload: &[u8],
    ) {
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        let seq = session.server_seq;
        session.server_seq = session.server_seq.wrapping_add(1);
        let header = codec::delivery_header(intent, opcode, PeerId::SERVER.0, seq, payload.len());
        let receivers: Vec<ConnId> = match to {
            SendTarget::All => session.members().iter().map(|m| m.conn).collect(),
            SendTarget::Peers(peers) => peers
                .iter()
                .filter_map(|&p| session.conn_of(PeerId(p)))
                .collect(),
            SendTarget::Group(g) => session.group(*g).iter().map(|&(_, c)| c).collect(),
        };
        for conn in receivers {
            if let Delivered::Tcp | Delivered::Udp =
                self.conns.deliver(conn, &header, payload, intent)
            {
                self.stats.deliveries += 1;
            }
        }
    }
}

/// A group's peer ids in wire form.
fn member_list(members: &[(PeerId, ConnId)]) -> Vec<u8> {
    members
        .iter()
        .flat_map(|(p, _)| p.0.to_le_bytes())
        .collect()
}
