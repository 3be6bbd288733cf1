//! Routing: DATA to its receivers (after session logic has seen it), groups, pings.

use super::codec::{self, Data, PeerList, ServerMsg, Target};
use super::codes::Code;
use super::conn::Delivered;
use super::hooks::{Hooks, SendTarget, Verdict};
use super::ids::{ConnId, PeerId, SessionId};
use super::server::{Server, Via};
use super::session::ALL_PLAYERS_GROUP;
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
        // Refused messages take no sequence number: receivers see no gap.
        if data.opcode == 0 {
            self.send_error(
                from,
                Code::InvalidOpcode,
                0,
                "opcode 0 is reserved; message dropped",
            );
            return;
        }
        match data.target {
            Target::Peers(list) if list.is_empty() => {
                self.send_error(
                    from,
                    Code::NoTargets,
                    0,
                    "DATA to a peer list of 0 peers reaches nobody; message dropped",
                );
                return;
            }
            Target::Group(0) => {
                self.send_error(
                    from,
                    Code::InvalidGroup,
                    0,
                    "group 0 is reserved; message dropped",
                );
                return;
            }
            _ => {}
        }
        let Some(conn) = self.conns.get_mut(from) else {
            return;
        };
        let seq = conn.next_seq;
        conn.next_seq = conn.next_seq.wrapping_add(1);
        // The seam for session logic: it sees the packet before anyone else does.
        match self.call_hook(now, sid, |h, ctx| h.on_packet(ctx, sender, data)) {
            Verdict::Forward => self.route(now, Some(from), sid, sender, seq, data),
            Verdict::Drop => {}
            Verdict::Rewrite { payload, to } => {
                let wire;
                let target = match &to {
                    None => data.target,
                    Some(SendTarget::All) => Target::AllOthers,
                    Some(SendTarget::Group(g)) => Target::Group(*g),
                    Some(SendTarget::Peers(peers)) => {
                        wire = codec::encode_peer_list(peers);
                        Target::Peers(PeerList::from_wire(&wire))
                    }
                };
                let rewritten = Data {
                    target,
                    payload: payload.as_deref().unwrap_or(data.payload),
                    ..*data
                };
                self.route(now, Some(from), sid, sender, seq, &rewritten);
            }
        }
    }

    /// Delivers `data` from `sender` to its target. `from` is the sender's connection when a
    /// player sent it (it gets ERROR for unknown peers); `None` for server-originated messages.
    pub(crate) fn route(
        &mut self,
        now: Instant,
        from: Option<ConnId>,
        sid: SessionId,
        sender: PeerId,
        seq: u32,
        data: &Data<'_>,
    ) {
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
            // The all-players group: everyone but the sender, as "all others".
            Target::Group(ALL_PLAYERS_GROUP) => {
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
        session.messages.set(session.messages.get() + 1);
        session.deliveries.set(session.deliveries.get() + delivered);
        self.stats.deliveries += delivered;
        self.stats.deliveries_dropped += dropped;
        if to_server && sender != PeerId::SERVER {
            self.stats.to_server += 1;
            if !self.call_hook(now, sid, |h, ctx| h.on_server_message(ctx, sender, data)) {
                self.stats.to_server_unhandled += 1;
            }
        }
        if let (Some(p), Some(from)) = (unknown, from) {
            self.send_error(
                from,
                Code::UnknownPeer,
                p.into(),
                &format!("peer {p} is not in the session; the other targets got the message"),
            );
        }
    }

    /// Sends a non-fatal ERROR to a connection; `detail` is the value it is about (PROTOCOL.md).
    pub(crate) fn send_error(&mut self, id: ConnId, code: Code, detail: u32, message: &str) {
        let msg = ServerMsg::Error {
            code: code.as_u16(),
            message,
            detail,
        };
        self.conns.send_tcp(id, |buf| msg.encode(buf));
    }

    /// A client's GROUP_JOIN (`joining`) or GROUP_LEAVE: checked, offered to session logic,
    /// applied. Members (and a leaver) get GROUP_MEMBERS; a request that changes nothing is
    /// answered like GROUP_QUERY.
    pub(crate) fn group_request(
        &mut self,
        now: Instant,
        id: ConnId,
        sid: SessionId,
        peer: PeerId,
        g: u16,
        joining: bool,
    ) {
        if g == 0 {
            self.send_error(id, Code::InvalidGroup, 0, "group 0 is reserved");
            return;
        }
        if g == ALL_PLAYERS_GROUP {
            self.send_error(
                id,
                Code::InvalidGroup,
                u32::from(g),
                "group 65535 is every player in the session: it cannot be joined or left",
            );
            return;
        }
        if self.group_refused(now, id, sid, peer, g, joining) {
            return;
        }
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        let changed = if joining {
            session.join_group(g, peer, id)
        } else {
            session.leave_group(g, peer)
        };
        if changed {
            // A leaver is no longer a member, so it is told explicitly.
            self.group_changed(now, sid, g, (!joining).then_some(id));
        } else {
            self.group_query(id, sid, g);
        }
    }

    /// Asks session logic about a client's group request; true (and ERROR 33 sent) if refused.
    fn group_refused(
        &mut self,
        now: Instant,
        id: ConnId,
        sid: SessionId,
        peer: PeerId,
        g: u16,
        joining: bool,
    ) -> bool {
        let allowed = self.call_hook(now, sid, |h, ctx| h.group_request(ctx, peer, g, joining));
        if !allowed {
            let verb = if joining { "join" } else { "leave" };
            self.send_error(
                id,
                Code::GroupRefused,
                g.into(),
                &format!("the session script refused to let you {verb} group {g}"),
            );
        }
        !allowed
    }

    /// Answers GROUP_QUERY (and requests that change nothing) with the group's members.
    pub(crate) fn group_query(&mut self, id: ConnId, sid: SessionId, g: u16) {
        if g == 0 {
            self.send_error(id, Code::InvalidGroup, 0, "group 0 is reserved");
            return;
        }
        self.send_group_members(sid, g, &[id]);
    }

    /// Sends a group's membership (GROUP_MEMBERS) to these connections. The all-players group's
    /// members are everyone in the session.
    pub(crate) fn send_group_members(&mut self, sid: SessionId, g: u16, to: &[ConnId]) {
        let Some(session) = self.sessions.get(&sid) else {
            return;
        };
        let wire = if g == ALL_PLAYERS_GROUP {
            member_list(&session.all_peers())
        } else {
            member_list(session.group(g))
        };
        let msg = ServerMsg::GroupMembers {
            group: g,
            members: PeerList::from_wire(&wire),
        };
        for &id in to {
            self.conns.send_tcp(id, |buf| msg.encode(buf));
        }
    }

    /// A group's membership changed: its members (and `also`, if given) get GROUP_MEMBERS, and
    /// session logic is told.
    pub(crate) fn group_changed(
        &mut self,
        now: Instant,
        sid: SessionId,
        g: u16,
        also: Option<ConnId>,
    ) {
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
        let peers: Vec<PeerId> = members.iter().map(|&(p, _)| p).collect();
        self.call_hook(now, sid, |h, ctx| h.group_changed(ctx, g, &peers));
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
}

/// A group's peer ids in wire form.
fn member_list(members: &[(PeerId, ConnId)]) -> Vec<u8> {
    members
        .iter()
        .flat_map(|(p, _)| p.0.to_le_bytes())
        .collect()
}
