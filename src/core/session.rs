//! A session (room): its members with their peer ids, and its groups.

use super::ids::{ConnId, PeerId};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::Instant;

/// A player in a session.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// Peer id in this session.
    pub peer: PeerId,
    /// Its connection.
    pub conn: ConnId,
    /// The game's id for the player.
    pub player_id: String,
    /// Display name.
    pub name: String,
    /// Custom properties set with SET_PLAYER_PROPS (opaque).
    pub props: Vec<u8>,
}

/// The group id that means "every player in the session" (PROTOCOL.md section 6): usable as a
/// DATA target and in GROUP_QUERY, never joined or left.
pub const ALL_PLAYERS_GROUP: u16 = u16::MAX;

/// One session.
#[derive(Debug)]
pub(crate) struct Session {
    /// Unique name, or empty.
    pub name: String,
    /// Members sorted by peer id.
    members: Vec<Member>,
    /// Groups by id; each holds (peer, conn) sorted by peer, never empty.
    groups: BTreeMap<u16, Vec<(PeerId, ConnId)>>,
    /// Peer id to try next.
    next_peer: u16,
    /// Counts the times the session became empty; a linger timer carries it to know it is current.
    pub empty_epoch: u64,
    /// Sequence number for the next server-originated message.
    pub server_seq: u32,
    /// Set while the session is being ended.
    pub ending: bool,
    /// Custom properties set with SET_SESSION_PROPS (opaque), and who set them last.
    pub props: Vec<u8>,
    /// Peer that set `props` last (0 = the server).
    pub props_by: u16,
    /// Whether its players speak a text profile (sessionserver JSON), which keeps the
    /// session's data (`crate::profiles::sessionserver`).
    pub text: bool,
    /// When it was created.
    pub created: Option<Instant>,
    /// Players it holds at most (at most `sessions.max_players`).
    pub max_players: usize,
    /// How long it stays once empty (at most `sessions.empty_session_linger_ms`).
    pub linger: std::time::Duration,
    /// DATA messages routed in it (players' and the script's). A `Cell` so routing counts while
    /// it holds the session borrowed.
    pub messages: Cell<u64>,
    /// Deliveries queued to its players.
    pub deliveries: Cell<u64>,
    /// Frame sync, while it runs.
    pub frame_sync: Option<Box<super::frames::FrameSync>>,
    /// The parameters it was created with (an object), which seat searches match on.
    pub params: Option<serde_json::Value>,
    /// Whether HELLO join mode 5 may place players in it (created by mode 5, or by the admin
    /// API with `"listed": true`).
    pub listed: bool,
    /// Whether it takes new players; the script closes it with `rt.configure_session`.
    pub open: bool,
    /// Coalesced sending: its players' deliveries leave together once per this interval
    /// (zero: at the end of every loop turn).
    pub send_interval: std::time::Duration,
    /// Counts send-interval changes, so a flush timer of an older interval does nothing.
    pub flush_epoch: u64,
}

impl Session {
    pub(crate) fn new(name: String) -> Session {
        Session {
            name,
            members: Vec::new(),
            groups: BTreeMap::new(),
            next_peer: 1,
            empty_epoch: 0,
            server_seq: 1,
            ending: false,
            props: Vec::new(),
            props_by: 0,
            text: false,
            created: None,
            max_players: usize::MAX,
            linger: std::time::Duration::ZERO,
            messages: Cell::new(0),
            deliveries: Cell::new(0),
            frame_sync: None,
            params: None,
            listed: false,
            open: true,
            send_interval: std::time::Duration::ZERO,
            flush_epoch: 0,
        }
    }

    /// Seats a newcomer could take now: 0 while it is closed, ending, or a sessionserver
    /// session (whose players speak only JSON).
    pub(crate) fn free_seats(&self) -> usize {
        if !self.open || self.ending || self.text {
            return 0;
        }
        self.max_players.saturating_sub(self.len())
    }

    /// Peer ids of every member, ascending (the all-players group).
    pub(crate) fn all_peers(&self) -> Vec<(PeerId, ConnId)> {
        self.members.iter().map(|m| (m.peer, m.conn)).collect()
    }

    /// Groups and their members, by group id.
    pub(crate) fn groups(&self) -> impl Iterator<Item = (u16, &[(PeerId, ConnId)])> {
        self.groups.iter().map(|(g, m)| (*g, &m[..]))
    }

    /// Members, sorted by peer id.
    pub(crate) fn members(&self) -> &[Member] {
        &self.members
    }

    /// Adds a member with the next free peer id (ids are not reused until the u16 space wraps).
    pub(crate) fn add_member(&mut self, conn: ConnId, player_id: &str, name: &str) -> PeerId {
        let mut candidate = self.next_peer;
        loop {
            if candidate == 0 {
                candidate = 1;
            }
            if self.index_of(PeerId(candidate)).is_err() {
                break;
            }
            candidate = candidate.wrapping_add(1);
        }
        self.next_peer = candidate.wrapping_add(1);
        let peer = PeerId(candidate);
        let at = self.index_of(peer).unwrap_err();
        self.members.insert(
            at,
            Member {
                peer,
                conn,
                player_id: player_id.to_owned(),
                name: name.to_owned(),
                props: Vec::new(),
            },
        );
        peer
    }

    /// Removes a member and its group memberships; returns the member and the groups it left.
    pub(crate) fn remove_member(&mut self, peer: PeerId) -> Option<(Member, Vec<u16>)> {
        let at = self.index_of(peer).ok()?;
        let member = self.members.remove(at);
        let mut left = Vec::new();
        for (&g, members) in self.groups.iter_mut() {
            if let Ok(i) = members.binary_search_by_key(&peer, |m| m.0) {
                members.remove(i);
                left.push(g);
            }
        }
        self.groups.retain(|_, m| !m.is_empty());
        Some((member, left))
    }

    fn index_of(&self, peer: PeerId) -> Result<usize, usize> {
        self.members.binary_search_by_key(&peer, |m| m.peer)
    }

    /// A member by peer id, to change it.
    pub(crate) fn member_mut(&mut self, peer: PeerId) -> Option<&mut Member> {
        let i = self.index_of(peer).ok()?;
        Some(&mut self.members[i])
    }

    /// Moves a peer to another connection (a reconnect), in the member list and its groups.
    pub(crate) fn rebind(&mut self, peer: PeerId, conn: ConnId) {
        if let Some(m) = self.member_mut(peer) {
            m.conn = conn;
        }
        for members in self.groups.values_mut() {
            for entry in members.iter_mut().filter(|(p, _)| *p == peer) {
                entry.1 = conn;
            }
        }
    }

    /// The connection of a peer.
    pub(crate) fn conn_of(&self, peer: PeerId) -> Option<ConnId> {
        self.index_of(peer).ok().map(|i| self.members[i].conn)
    }

    /// Number of players.
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether no player is in the session.
    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Adds `peer` to group `g`; false if it was already there.
    pub(crate) fn join_group(&mut self, g: u16, peer: PeerId, conn: ConnId) -> bool {
        let members = self.groups.entry(g).or_default();
        match members.binary_search_by_key(&peer, |m| m.0) {
            Ok(_) => false,
            Err(i) => {
                members.insert(i, (peer, conn));
                true
            }
        }
    }

    /// Removes `peer` from group `g`; false if it was not there.
    pub(crate) fn leave_group(&mut self, g: u16, peer: PeerId) -> bool {
        let Some(members) = self.groups.get_mut(&g) else {
            return false;
        };
        let Ok(i) = members.binary_search_by_key(&peer, |m| m.0) else {
            return false;
        };
        members.remove(i);
        if members.is_empty() {
            self.groups.remove(&g);
        }
        true
    }

    /// A group's members as (peer, conn), sorted by peer; empty for an unknown group.
    pub(crate) fn group(&self, g: u16) -> &[(PeerId, ConnId)] {
        self.groups.get(&g).map(Vec::as_slice).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_ids_start_at_one_and_are_not_reused_after_leave() {
        let mut s = Session::new(String::new());
        let a = s.add_member(ConnId(10), "a", "A");
        let b = s.add_member(ConnId(11), "b", "B");
        assert_eq!((a, b), (PeerId(1), PeerId(2)));
        s.remove_member(a);
        assert_eq!(s.add_member(ConnId(12), "c", "C"), PeerId(3));
        assert_eq!(s.conn_of(PeerId(3)), Some(ConnId(12)));
        assert_eq!(s.conn_of(PeerId(1)), None);
    }

    #[test]
    fn leaving_the_session_leaves_every_group() {
        let mut s = Session::new(String::new());
        let a = s.add_member(ConnId(1), "", "A");
        let b = s.add_member(ConnId(2), "", "B");
        assert!(s.join_group(5, a, ConnId(1)));
        assert!(
            !s.join_group(5, a, ConnId(1)),
            "joining twice changes nothing"
        );
        s.join_group(5, b, ConnId(2));
        s.join_group(6, a, ConnId(1));
        let (_, left) = s.remove_member(a).unwrap();
        assert_eq!(left, vec![5, 6]);
        assert_eq!(s.group(5), &[(b, ConnId(2))]);
        assert!(s.group(6).is_empty());
    }
}
