//! Core behaviour with a fake clock: no sockets, no sleeps. `Sim` plays the transport.

use super::codec::{
    self, ClientMsg, Data, Hello, Intent, JoinMode, PeerList, ServerMsg, Target, UDP_HEADER,
};
use super::*;
use crate::config::Config;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// An owned copy of what the server sent, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Welcome {
        peer: u16,
        session: u64,
        peers: Vec<u16>,
        secret: u64,
        conn_id: u32,
    },
    Reject(u16),
    Delivery {
        opcode: u32,
        sender: u16,
        seq: u32,
        payload: Vec<u8>,
    },
    Joined(u16, String),
    Left(u16, u16),
    Members(u16, Vec<u16>),
    Pong(u64, u64),
    Close(u16),
    Error(u16),
    UdpBound,
    PlayerProps(u16, Vec<u8>),
    SessionProps(u16, Vec<u8>),
    Away(u16),
    Back(u16),
    FrameSync(bool),
    Frame(u32),
}

fn own(msg: ServerMsg<'_>) -> Got {
    match msg {
        ServerMsg::Welcome(w) => Got::Welcome {
            peer: w.peer,
            session: w.session_id,
            peers: w.peers.iter().map(|p| p.peer).collect(),
            secret: w.udp_secret,
            conn_id: w.udp_conn_id,
        },
        ServerMsg::Reject { code, .. } => Got::Reject(code),
        ServerMsg::Delivery {
            opcode,
            sender,
            seq,
            payload,
            ..
        } => Got::Delivery {
            opcode,
            sender,
            seq,
            payload: payload.to_vec(),
        },
        ServerMsg::PlayerJoined(p) => Got::Joined(p.peer, p.name.to_owned()),
        ServerMsg::PlayerLeft { peer, reason } => Got::Left(peer, reason),
        ServerMsg::GroupMembers { group, members } => Got::Members(group, members.iter().collect()),
        ServerMsg::Pong {
            client_time,
            server_time_us,
        } => Got::Pong(client_time, server_time_us),
        ServerMsg::Close { code, .. } => Got::Close(code),
        ServerMsg::Error { code, .. } => Got::Error(code),
        ServerMsg::UdpBound => Got::UdpBound,
        ServerMsg::PlayerProps { peer, props } => Got::PlayerProps(peer, props.to_vec()),
        ServerMsg::SessionProps { by, props } => Got::SessionProps(by, props.to_vec()),
        ServerMsg::PlayerAway { peer } => Got::Away(peer),
        ServerMsg::PlayerBack { peer } => Got::Back(peer),
        ServerMsg::FrameSyncState { on, .. } => Got::FrameSync(on),
        ServerMsg::Frame { number, .. } => Got::Frame(number),
    }
}

fn frames(mut bytes: &[u8]) -> Vec<Got> {
    let mut out = Vec::new();
    while let Some((body, n)) = codec::split_frame(bytes, usize::MAX).unwrap() {
        out.push(own(ServerMsg::decode(body).unwrap()));
        bytes = &bytes[n..];
    }
    assert!(bytes.is_empty(), "a partial frame was left");
    out
}

struct Sim<H: Hooks> {
    server: Server<H>,
    now: Instant,
    closed: Vec<ConnId>,
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn config() -> Config {
    let mut c = Config::default();
    c.sessions.empty_session_linger_ms = 10_000;
    c
}

fn sim(config: Config) -> Sim<NoScript> {
    sim_with(config, NoScript)
}

fn sim_with<H: Hooks>(config: Config, hooks: H) -> Sim<H> {
    let now = Instant::now();
    Sim {
        server: Server::new(
            config,
            7777,
            hooks,
            WallClock {
                at: now,
                unix_us: 1_000_000,
            },
            crate::core::Entropy::seeded(7),
        ),
        now,
        closed: Vec::new(),
    }
}

impl<H: Hooks> Sim<H> {
    fn advance(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
        self.server.handle_timeout(self.now);
        self.pump_events();
    }

    fn pump_events(&mut self) {
        while let Some(Event::Close(id)) = self.server.poll_event() {
            self.closed.push(id);
        }
    }

    fn send(&mut self, id: ConnId, msg: ClientMsg<'_>) {
        let mut buf = Vec::new();
        msg.encode(&mut buf);
        self.server.handle_tcp_bytes(self.now, id, &buf);
        self.pump_events();
    }

    fn hello(&mut self, mode: JoinMode<'_>, name: &str) -> ConnId {
        let id = self.server.handle_accept(self.now, addr(40_000));
        self.send(
            id,
            ClientMsg::Hello(Hello {
                version: 1,
                mode,
                token: "",
                player_id: "",
                player_name: name,
                payload: b"",
                stray_field: None,
            }),
        );
        id
    }

    fn join(&mut self, room: &str, name: &str) -> ConnId {
        self.hello(JoinMode::JoinOrCreate(room), name)
    }

    /// Everything pending on a connection's TCP stream, marked written.
    fn recv(&mut self, id: ConnId) -> Vec<Got> {
        let bytes = self.server.tcp_pending(id).to_vec();
        self.server.tcp_written(id, bytes.len());
        frames(&bytes)
    }

    fn data(
        &mut self,
        id: ConnId,
        intent: Intent,
        opcode: u32,
        target: Target<'_>,
        payload: &[u8],
    ) {
        self.send(
            id,
            ClientMsg::Data(Data {
                intent,
                opcode,
                target,
                payload,
            }),
        );
    }

    fn udp(&mut self, from: SocketAddr, conn_id: u32, secret: u64, msg: ClientMsg<'_>) {
        let mut d = Vec::new();
        d.extend_from_slice(&conn_id.to_le_bytes());
        d.extend_from_slice(&secret.to_le_bytes());
        msg.encode(&mut d);
        self.server.handle_udp_datagram(self.now, from, &d);
        self.pump_events();
    }

    fn udp_datagrams(&mut self, id: ConnId) -> Vec<Vec<u8>> {
        let out: Vec<Vec<u8>> = match self.server.udp_pending(id) {
            Some((_, d)) => d.map(|d| d.to_vec()).collect(),
            None => Vec::new(),
        };
        self.server.udp_sent(id, out.len(), true);
        out
    }
}

fn welcome_of(got: &[Got]) -> (u16, u64, Vec<u16>, u64, u32) {
    match &got[0] {
        Got::Welcome {
            peer,
            session,
            peers,
            secret,
            conn_id,
        } => (*peer, *session, peers.clone(), *secret, *conn_id),
        other => panic!("expected WELCOME, got {other:?}"),
    }
}

#[test]
fn third_player_is_welcomed_with_the_two_already_there_and_they_hear_of_it() {
    let mut s = sim(config());
    let a = s.join("lobby", "ann");
    let b = s.join("lobby", "bo");
    s.recv(a);
    s.recv(b);
    let c = s.join("lobby", "cy");
    let got = s.recv(c);
    let (peer, _, peers, _, _) = welcome_of(&got);
    assert_eq!(peer, 3);
    assert_eq!(peers, vec![1, 2]);
    assert_eq!(s.recv(a), vec![Got::Joined(3, "cy".into())]);
    assert_eq!(s.recv(b), vec![Got::Joined(3, "cy".into())]);
}

#[test]
fn data_to_all_others_reaches_everyone_but_the_sender_with_sender_and_sequence() {
    let mut s = sim(config());
    let ids: Vec<ConnId> = ["a", "b", "c"].iter().map(|n| s.join("r", n)).collect();
    for &id in &ids {
        s.recv(id);
    }
    s.data(ids[0], Intent::Reliable, 9, Target::AllOthers, b"move");
    s.data(ids[0], Intent::Reliable, 9, Target::AllOthers, b"move2");
    assert!(s.recv(ids[0]).is_empty(), "the sender hears nothing back");
    for &id in &ids[1..] {
        assert_eq!(
            s.recv(id),
            vec![
                Got::Delivery {
                    opcode: 9,
                    sender: 1,
                    seq: 1,
                    payload: b"move".to_vec()
                },
                Got::Delivery {
                    opcode: 9,
                    sender: 1,
                    seq: 2,
                    payload: b"move2".to_vec()
                },
            ]
        );
    }
}

#[test]
fn peer_list_delivers_once_each_and_reports_an_unknown_peer() {
    let mut s = sim(config());
    let ids: Vec<ConnId> = ["a", "b", "c"].iter().map(|n| s.join("r", n)).collect();
    for &id in &ids {
        s.recv(id);
    }
    let list = codec::encode_peer_list(&[2, 2, 9]);
    s.data(
        ids[0],
        Intent::Reliable,
        4,
        Target::Peers(PeerList::from_wire(&list)),
        b"x",
    );
    assert_eq!(s.recv(ids[1]).len(), 1, "a duplicate id delivers once");
    assert!(s.recv(ids[2]).is_empty());
    assert_eq!(s.recv(ids[0]), vec![Got::Error(Code::UnknownPeer.as_u16())]);
}

#[test]
fn group_messages_reach_only_other_members_and_membership_is_announced() {
    let mut s = sim(config());
    let ids: Vec<ConnId> = ["a", "b", "c"].iter().map(|n| s.join("r", n)).collect();
    for &id in &ids {
        s.recv(id);
    }
    s.send(ids[0], ClientMsg::GroupJoin(5));
    assert_eq!(s.recv(ids[0]), vec![Got::Members(5, vec![1])]);
    s.send(ids[1], ClientMsg::GroupJoin(5));
    assert_eq!(s.recv(ids[0]), vec![Got::Members(5, vec![1, 2])]);
    assert_eq!(s.recv(ids[1]), vec![Got::Members(5, vec![1, 2])]);
    s.data(ids[2], Intent::Reliable, 3, Target::Group(5), b"g");
    assert_eq!(s.recv(ids[0]).len(), 1, "a non-member may send to a group");
    assert_eq!(s.recv(ids[1]).len(), 1);
    assert!(s.recv(ids[2]).is_empty());
    s.send(ids[0], ClientMsg::GroupLeave(5));
    assert_eq!(
        s.recv(ids[0]),
        vec![Got::Members(5, vec![2])],
        "the leaver hears too"
    );
    assert_eq!(s.recv(ids[1]), vec![Got::Members(5, vec![2])]);
    s.send(ids[2], ClientMsg::GroupQuery(5));
    assert_eq!(s.recv(ids[2]), vec![Got::Members(5, vec![2])]);
}

#[test]
fn opcode_zero_is_dropped_with_an_error_to_the_sender_only() {
    let mut s = sim(config());
    let a = s.join("r", "a");
    let b = s.join("r", "b");
    s.recv(a);
    s.recv(b);
    s.data(a, Intent::Reliable, 0, Target::AllOthers, b"x");
    assert_eq!(s.recv(a), vec![Got::Error(Code::InvalidOpcode.as_u16())]);
    assert!(s.recv(b).is_empty());
    assert!(s.closed.is_empty(), "opcode 0 is not fatal");
}

#[test]
fn data_before_hello_is_rejected_and_closed() {
    let mut s = sim(config());
    let id = s.server.handle_accept(s.now, addr(1));
    s.data(id, Intent::Reliable, 1, Target::AllOthers, b"x");
    assert_eq!(
        s.recv(id),
        vec![Got::Reject(Code::UnexpectedMessage.as_u16())]
    );
    assert_eq!(s.closed, vec![id]);
}

#[test]
fn garbage_and_oversized_frames_close_only_their_sender() {
    let mut s = sim(config());
    let a = s.join("r", "a");
    let b = s.join("r", "b");
    s.recv(a);
    s.recv(b);
    s.server
        .handle_tcp_bytes(s.now, a, &[0xff, 0xff, 0xff, 0x7f, 1, 2, 3]);
    s.pump_events();
    assert_eq!(s.recv(a), vec![Got::Close(Code::FrameTooLarge.as_u16())]);
    assert_eq!(s.recv(b), vec![Got::Left(1, Code::FrameTooLarge.as_u16())]);
    let c = s.join("r", "c");
    s.recv(c);
    s.recv(b);
    s.server.handle_tcp_bytes(s.now, c, &[1, 0, 0, 0, 0x42]);
    s.pump_events();
    assert_eq!(
        s.recv(c),
        vec![Got::Close(Code::UnknownMessageType.as_u16())]
    );
    assert_eq!(s.closed, vec![a, c]);
    s.data(b, Intent::Reliable, 1, Target::AllOthers, b"still here");
    assert_eq!(s.server.stats().messages_in, 1);
}

#[test]
fn frame_split_across_reads_is_reassembled() {
    let mut s = sim(config());
    let a = s.join("r", "a");
    let b = s.join("r", "b");
    s.recv(a);
    s.recv(b);
    let mut buf = Vec::new();
    ClientMsg::Data(Data {
        intent: Intent::Reliable,
        opcode: 2,
        target: Target::AllOthers,
        payload: b"split me",
    })
    .encode(&mut buf);
    for byte in &buf {
        s.server
            .handle_tcp_bytes(s.now, a, std::slice::from_ref(byte));
    }
    assert_eq!(
        s.recv(b),
        vec![Got::Delivery {
            opcode: 2,
            sender: 1,
            seq: 1,
            payload: b"split me".to_vec()
        }]
    );
}

#[test]
fn handshake_must_complete_within_the_timeout() {
    let mut s = sim(config());
    let id = s.server.handle_accept(s.now, addr(1));
    s.advance(4_999);
    assert!(s.closed.is_empty());
    s.advance(1);
    assert_eq!(
        s.recv(id),
        vec![Got::Reject(Code::HandshakeTimeout.as_u16())]
    );
    assert_eq!(s.closed, vec![id]);
}

#[test]
fn native_players_carry_no_connection_extras_until_one_is_closed_with_a_reason() {
    let mut s = sim(config());
    let a = s.join("r", "a");
    let b = s.join("r", "b");
    s.data(a, Intent::Reliable, 7, Target::AllOthers, b"hi");
    s.recv(a);
    s.recv(b);
    let extras_made = |s: &Sim<NoScript>, id| s.server.conns.get(id).unwrap().extras().is_some();
    // The WebSocket, sessionserver and vendor state is boxed away: a native player, joined and
    // playing, never makes it (each would cost it about 100 bytes more).
    assert!(!extras_made(&s, a) && !extras_made(&s, b));
    s.advance(20_000);
    s.send(a, ClientMsg::Ping { client_time: 7 });
    s.advance(20_000);
    s.send(a, ClientMsg::Ping { client_time: 8 });
    s.advance(20_000);
    assert_eq!(s.closed, vec![b]);
    // The reason a WebSocket close frame repeats is kept once there is one.
    assert_eq!(
        s.server.close_note(b).map(|(code, _)| code),
        Some(Code::IdleTimeout)
    );
    assert!(!extras_made(&s, a), "a is still playing");
}

#[test]
fn silent_player_is_closed_after_the_idle_timeout_but_pings_keep_it() {
    let mut s = sim(config());
    let a = s.join("r", "a");
    let b = s.join("r", "b");
    s.recv(a);
    s.recv(b);
    for _ in 0..3 {
        s.advance(20_000);
        s.send(a, ClientMsg::Ping { client_time: 7 });
    }
    let got = s.recv(a);
    assert_eq!(
        got.iter()
            .filter(|g| matches!(g, Got::Pong(7, t) if *t > 1_000_000))
            .count(),
        3
    );
    assert!(
        got.contains(&Got::Left(2, Code::IdleTimeout.as_u16())),
        "{got:?}"
    );
    assert_eq!(s.closed, vec![b], "b said nothing for 60 s");
    assert_eq!(s.recv(b), vec![Got::Close(Code::IdleTimeout.as_u16())]);
    s.advance(20_000);
    assert_eq!(s.closed, vec![b], "a pinged 20 s ago");
}

#[test]
fn empty_session_lingers_and_can_be_rejoined_then_ends() {
    let mut s = sim(config());
    let a = s.join("r", "a");
    let (_, sid, _, _, _) = welcome_of(&s.recv(a));
    s.send(a, ClientMsg::Leave);
    assert_eq!(s.recv(a), vec![Got::Close(Code::ClientLeft.as_u16())]);
    s.advance(9_000);
    assert_eq!(s.server.session_count(), 1, "still lingering");
    let b = s.hello(JoinMode::JoinId(sid), "b");
    let (peer, sid2, _, _, _) = welcome_of(&s.recv(b));
    assert_eq!((peer, sid2), (2, sid));
    s.advance(5_000);
    assert_eq!(s.server.session_count(), 1, "the old linger timer is stale");
    s.send(b, ClientMsg::Leave);
    s.advance(10_000);
    assert_eq!(s.server.session_count(), 0);
    let c = s.hello(JoinMode::JoinId(sid), "c");
    assert_eq!(s.recv(c), vec![Got::Reject(Code::SessionNotFound.as_u16())]);
}

#[test]
fn session_and_server_limits_reject_with_their_codes() {
    let mut c = config();
    c.sessions.max_players = 2;
    c.server.max_sessions = 1;
    c.server.max_connections = 4;
    let mut s = sim(c);
    let a = s.join("r", "a");
    let b = s.join("r", "b");
    s.recv(a);
    s.recv(b);
    let full = s.join("r", "c");
    assert_eq!(s.recv(full), vec![Got::Reject(Code::SessionFull.as_u16())]);
    let other = s.join("other", "d");
    assert_eq!(
        s.recv(other),
        vec![Got::Reject(Code::TooManySessions.as_u16())]
    );
    s.closed.clear();
    // Two open, two closing (not yet confirmed by the transport): the next is over the limit.
    let over = s.server.handle_accept(s.now, addr(2));
    s.pump_events();
    assert_eq!(s.recv(over), vec![Got::Reject(Code::ServerFull.as_u16())]);
    for id in [full, other] {
        s.server.handle_closed(id);
    }
    let fits = s.server.handle_accept(s.now, addr(3));
    assert!(
        s.recv(fits).is_empty(),
        "a slot freed by handle_closed is usable"
    );
}

#[test]
fn a_burst_one_write_drains_is_not_a_slow_reader_but_a_backlog_after_the_write_is() {
    let mut c = config();
    c.limits.max_output_buffer_bytes = 4096;
    c.limits.max_frame_bytes = 1024;
    let mut s = sim(c);
    let a = s.join("r", "a");
    let b = s.join("r", "b");
    s.recv(a);
    s.recv(b);
    // One turn queues about 6 KB for b (past the 4 KiB cap), and one write takes it all.
    for _ in 0..12 {
        s.data(a, Intent::Reliable, 1, Target::AllOthers, &[7; 500]);
    }
    assert_eq!(s.recv(b).len(), 12);
    assert!(s.closed.is_empty(), "a drained burst closes nobody");
    // The same burst, but the socket takes only 100 bytes: b reads too slowly.
    for _ in 0..12 {
        s.data(a, Intent::Reliable, 1, Target::AllOthers, &[7; 500]);
    }
    s.server.take_dirty(&mut Vec::new());
    s.server.tcp_written(b, 100);
    s.data(a, Intent::Reliable, 1, Target::AllOthers, b"next turn");
    s.pump_events();
    assert_eq!(s.closed, vec![b]);
    assert_eq!(s.server.stats().output_overflows, 1);
}

#[test]
fn slow_reader_is_disconnected_and_the_others_keep_playing() {
    let mut c = config();
    c.limits.max_output_buffer_bytes = 4096;
    c.limits.max_frame_bytes = 1024;
    let mut s = sim(c);
    let a = s.join("r", "a");
    let slow = s.join("r", "slow");
    let b = s.join("r", "b");
    s.recv(a);
    s.recv(b);
    for _ in 0..20 {
        s.data(a, Intent::Reliable, 1, Target::AllOthers, &[7; 500]);
        s.recv(b);
    }
    assert_eq!(s.closed, vec![slow]);
    let tail = frames(s.server.tcp_pending(slow));
    assert_eq!(
        tail.last(),
        Some(&Got::Close(Code::OutputOverflow.as_u16()))
    );
    let b_got = s.recv(b);
    assert!(b_got.is_empty());
    s.data(a, Intent::Reliable, 1, Target::AllOthers, b"after");
    assert_eq!(s.recv(b).len(), 1);
    assert_eq!(s.server.stats().output_overflows, 1);
}

#[test]
fn udp_binds_with_the_secret_and_packs_unreliable_deliveries_into_one_datagram() {
    let mut s = sim(config());
    let a = s.join("r", "a");
    let b = s.join("r", "b");
    s.recv(a);
    let (_, _, _, secret, conn_id) = welcome_of(&s.recv(b));
    let from = addr(50_000);
    s.udp(from, conn_id, secret ^ 1, ClientMsg::UdpBind);
    assert!(
        s.udp_datagrams(b).is_empty(),
        "a wrong secret gets no answer"
    );
    assert_eq!(s.server.stats().udp_dropped_auth, 1);
    s.udp(from, conn_id, secret, ClientMsg::UdpBind);
    let acks = s.udp_datagrams(b);
    assert_eq!(acks.len(), 1);
    assert_eq!(frames(&acks[0]), vec![Got::UdpBound]);
    for i in 0..20u8 {
        s.data(a, Intent::Unreliable, 5, Target::AllOthers, &[i; 40]);
    }
    let datagrams = s.udp_datagrams(b);
    assert_eq!(
        datagrams.len(),
        1,
        "20 x 56-byte frames fit in one 1200-byte datagram"
    );
    assert_eq!(datagrams[0].len(), 20 * 56);
    assert_eq!(frames(&datagrams[0]).len(), 20);
    s.data(a, Intent::Reliable, 5, Target::AllOthers, b"r");
    assert_eq!(s.recv(b).len(), 1, "reliable still goes over TCP");
}

#[test]
fn udp_from_an_unbound_address_and_reliable_over_udp_are_dropped() {
    let mut s = sim(config());
    let a = s.join("r", "a");
    let b = s.join("r", "b");
    let (_, _, _, secret, conn_id) = welcome_of(&s.recv(a));
    s.recv(b);
    let data = |intent| {
        ClientMsg::Data(Data {
            intent,
            opcode: 1,
            target: Target::AllOthers,
            payload: b"u",
        })
    };
    s.udp(addr(1), conn_id, secret, data(Intent::Unreliable));
    assert_eq!(s.server.stats().udp_dropped_unbound, 1);
    s.udp(addr(2), conn_id, secret, ClientMsg::UdpBind);
    s.udp(addr(2), conn_id, secret, data(Intent::Reliable));
    assert_eq!(s.server.stats().udp_dropped_invalid, 1);
    s.udp(addr(2), conn_id, secret, data(Intent::Unreliable));
    assert_eq!(s.recv(b).len(), 1, "b has no UDP, so it falls back to TCP");
    s.server.handle_udp_datagram(s.now, addr(3), &[1, 2, 3]);
    assert_eq!(s.server.stats().udp_dropped_malformed, 1);
    let mut truncated = conn_id.to_le_bytes().to_vec();
    truncated.extend_from_slice(&secret.to_le_bytes());
    truncated.extend_from_slice(&[50, 0, 0, 0, 2]);
    s.server.handle_udp_datagram(s.now, addr(2), &truncated);
    assert_eq!(s.server.stats().udp_dropped_malformed, 2);
    assert!(s.closed.is_empty(), "bad UDP never closes a connection");
    assert_eq!(UDP_HEADER, 12);
}

#[test]
fn tcp_flood_past_the_rate_limit_closes_the_sender() {
    let mut c = config();
    c.limits.max_messages_per_sec = 50;
    let mut s = sim(c);
    let a = s.join("r", "a");
    let b = s.join("r", "b");
    s.recv(a);
    for _ in 0..60 {
        s.data(a, Intent::Reliable, 1, Target::AllOthers, b"f");
    }
    assert_eq!(s.closed, vec![a]);
    assert_eq!(
        s.recv(a).last(),
        Some(&Got::Close(Code::RateLimited.as_u16()))
    );
    let got = s.recv(b);
    assert_eq!(
        got.iter()
            .filter(|g| matches!(g, Got::Delivery { .. }))
            .count(),
        50
    );
}

#[test]
fn same_player_id_connecting_again_replaces_the_old_connection() {
    let mut s = sim(config());
    let hello = |s: &mut Sim<NoScript>| {
        let id = s.server.handle_accept(s.now, addr(1));
        s.send(
            id,
            ClientMsg::Hello(Hello {
                version: 1,
                mode: JoinMode::JoinOrCreate("r"),
                token: "",
                player_id: "player-42",
                player_name: "p",
                payload: b"",
                stray_field: None,
            }),
        );
        id
    };
    let old = hello(&mut s);
    let new = hello(&mut s);
    assert_eq!(
        s.recv(old).last(),
        Some(&Got::Close(Code::Replaced.as_u16()))
    );
    assert_eq!(welcome_of(&s.recv(new)).0, 2);
}

#[test]
fn wrong_version_and_wrong_token_are_rejected() {
    let mut c = config();
    c.server.access_token = "s3cret".into();
    let mut s = sim(c);
    for (version, token, code) in [
        (2, "s3cret", Code::UnsupportedVersion),
        (1, "nope", Code::InvalidToken),
    ] {
        let id = s.server.handle_accept(s.now, addr(1));
        s.send(
            id,
            ClientMsg::Hello(Hello {
                version,
                mode: JoinMode::Create(""),
                token,
                player_id: "",
                player_name: "",
                payload: b"",
                stray_field: None,
            }),
        );
        assert_eq!(s.recv(id), vec![Got::Reject(code.as_u16())]);
    }
}

#[test]
fn shutdown_tells_every_player_and_ends_every_session() {
    let mut s = sim(config());
    let a = s.join("r", "a");
    let b = s.join("q", "b");
    s.recv(a);
    s.recv(b);
    s.server.begin_shutdown(s.now);
    s.pump_events();
    assert_eq!(s.recv(a), vec![Got::Close(Code::ShuttingDown.as_u16())]);
    assert_eq!(s.recv(b), vec![Got::Close(Code::ShuttingDown.as_u16())]);
    assert_eq!(s.server.session_count(), 0);
}

/// Session logic for the seam tests: drops opcode 13, echoes messages to the server.
struct Echo;

impl Hooks for Echo {
    fn on_packet(&mut self, _: &mut Ctx<'_>, _: PeerId, data: &Data<'_>) -> Verdict {
        match data.opcode {
            13 => Verdict::Drop,
            14 => Verdict::Rewrite {
                payload: Some(b"rewritten".to_vec()),
                to: Some(SendTarget::Peers(vec![3])),
            },
            _ => Verdict::Forward,
        }
    }

    fn on_server_message(&mut self, ctx: &mut Ctx<'_>, sender: PeerId, data: &Data<'_>) -> bool {
        ctx.out.push(Command::Send {
            session: ctx.session,
            from: PeerId::SERVER,
            to: SendTarget::Peers(vec![sender.0]),
            opcode: data.opcode + 1000,
            intent: Intent::Reliable,
            payload: data.payload.to_vec(),
        });
        true
    }
}

#[test]
fn hooks_see_packets_first_and_can_answer_from_peer_zero() {
    let mut s = sim_with(config(), Echo);
    let a = s.join("r", "a");
    let b = s.join("r", "b");
    s.recv(a);
    s.recv(b);
    s.data(a, Intent::Reliable, 13, Target::AllOthers, b"dropped");
    assert!(s.recv(b).is_empty());
    s.data(a, Intent::Reliable, 8, Target::Server, b"hi server");
    assert_eq!(
        s.recv(a),
        vec![Got::Delivery {
            opcode: 1008,
            sender: 0,
            seq: 1,
            payload: b"hi server".to_vec()
        }]
    );
    assert!(s.recv(b).is_empty(), "only the sender was answered");
    let c = s.join("r", "c");
    s.recv(a);
    s.recv(b);
    s.recv(c);
    s.data(a, Intent::Reliable, 14, Target::AllOthers, b"original");
    assert!(s.recv(b).is_empty(), "retargeted away from b");
    assert_eq!(
        s.recv(c),
        vec![Got::Delivery {
            opcode: 14,
            sender: 1,
            seq: 3,
            payload: b"rewritten".to_vec()
        }]
    );
}

#[test]
fn properties_reach_everyone_and_are_replayed_to_late_joiners() {
    let mut s = sim(config());
    let a = s.join("r", "a");
    let b = s.join("r", "b");
    s.recv(a);
    s.recv(b);
    s.send(a, ClientMsg::SetPlayerProps(b"ready"));
    s.send(b, ClientMsg::SetSessionProps(b"map=2"));
    for id in [a, b] {
        assert_eq!(
            s.recv(id),
            vec![
                Got::PlayerProps(1, b"ready".to_vec()),
                Got::SessionProps(2, b"map=2".to_vec())
            ]
        );
    }
    let c = s.join("r", "c");
    let got = s.recv(c);
    assert_eq!(
        &got[1..],
        &[
            Got::SessionProps(2, b"map=2".to_vec()),
            Got::PlayerProps(1, b"ready".to_vec())
        ],
        "after WELCOME, what is already set"
    );
    s.recv(a);
    s.recv(b);
    s.send(a, ClientMsg::SetPlayerProps(&[0; 5000]));
    assert_eq!(s.recv(a), vec![Got::Error(Code::PropsTooLarge.as_u16())]);
    assert!(s.recv(b).iter().all(|g| !matches!(g, Got::PlayerProps(..))));
}

#[test]
fn frame_with_length_zero_is_rejected_as_malformed() {
    let mut s = sim(config());
    let id = s.server.handle_accept(s.now, addr(1));
    s.server.handle_tcp_bytes(s.now, id, &[0, 0, 0, 0]);
    assert_eq!(s.recv(id), vec![Got::Reject(Code::Malformed.as_u16())]);
}

#[test]
fn unknown_type_or_join_mode_as_the_first_frame_is_rejected_with_its_code() {
    let mut s = sim(config());
    let id = s.server.handle_accept(s.now, addr(1));
    s.server.handle_tcp_bytes(s.now, id, &[1, 0, 0, 0, 0x7e]);
    assert_eq!(
        s.recv(id),
        vec![Got::Reject(Code::UnknownMessageType.as_u16())]
    );
    let mut hello = Vec::new();
    ClientMsg::Hello(Hello {
        version: 1,
        mode: JoinMode::Create(""),
        token: "",
        player_id: "",
        player_name: "",
        payload: b"",
        stray_field: None,
    })
    .encode(&mut hello);
    for mode in [0u8, 6, 255] {
        hello[7] = mode;
        let id = s.server.handle_accept(s.now, addr(1));
        s.server.handle_tcp_bytes(s.now, id, &hello);
        assert_eq!(s.recv(id), vec![Got::Reject(Code::Malformed.as_u16())]);
    }
}

#[test]
fn hello_with_a_field_its_join_mode_does_not_use_is_rejected_as_bad_hello() {
    let mut s = sim(config());
    let created = s.join("room", "a");
    let (_, sid, _, _, _) = welcome_of(&s.recv(created));
    // Mode 2 (join by id) with a session name; modes 1 and 3 with a session id.
    let mut join_id = Vec::new();
    ClientMsg::Hello(Hello {
        version: 1,
        mode: JoinMode::JoinId(sid),
        token: "",
        player_id: "",
        player_name: "b",
        payload: b"",
        stray_field: None,
    })
    .encode(&mut join_id);
    let mut with_name = join_id[..16].to_vec();
    with_name.extend_from_slice(&[4, 0, b'r', b'o', b'o', b'm']);
    with_name.extend_from_slice(&join_id[18..]);
    let len = (with_name.len() - 4) as u32;
    with_name[..4].copy_from_slice(&len.to_le_bytes());
    let mut create_with_id = Vec::new();
    ClientMsg::Hello(Hello {
        version: 1,
        mode: JoinMode::JoinOrCreate("room"),
        token: "",
        player_id: "",
        player_name: "c",
        payload: b"",
        stray_field: None,
    })
    .encode(&mut create_with_id);
    create_with_id[8..16].copy_from_slice(&sid.to_le_bytes());
    for bytes in [with_name, create_with_id] {
        let id = s.server.handle_accept(s.now, addr(1));
        s.server.handle_tcp_bytes(s.now, id, &bytes);
        s.pump_events();
        assert_eq!(s.recv(id), vec![Got::Reject(Code::BadHello.as_u16())]);
    }
    assert!(s.recv(created).is_empty(), "nobody joined the room");
}

#[test]
fn group_query_for_group_zero_answers_invalid_group() {
    let mut s = sim(config());
    let a = s.join("r", "a");
    s.recv(a);
    s.send(a, ClientMsg::GroupQuery(0));
    assert_eq!(s.recv(a), vec![Got::Error(Code::InvalidGroup.as_u16())]);
}

#[test]
fn data_to_no_peers_or_to_group_zero_gets_an_error_and_uses_no_sequence_number() {
    let mut s = sim(config());
    let a = s.join("r", "a");
    let b = s.join("r", "b");
    s.recv(a);
    s.recv(b);
    s.data(
        a,
        Intent::Reliable,
        5,
        Target::Peers(PeerList::from_wire(&[])),
        b"x",
    );
    assert_eq!(s.recv(a), vec![Got::Error(Code::NoTargets.as_u16())]);
    s.data(a, Intent::Reliable, 5, Target::Group(0), b"x");
    assert_eq!(s.recv(a), vec![Got::Error(Code::InvalidGroup.as_u16())]);
    s.data(a, Intent::Reliable, 0, Target::AllOthers, b"x");
    assert_eq!(s.recv(a), vec![Got::Error(Code::InvalidOpcode.as_u16())]);
    s.data(a, Intent::Reliable, 5, Target::AllOthers, b"ok");
    assert_eq!(
        s.recv(b),
        vec![Got::Delivery {
            opcode: 5,
            sender: 1,
            seq: 1,
            payload: b"ok".to_vec()
        }],
        "refused messages took no sequence number"
    );
}

#[test]
fn udp_datagram_is_dropped_from_its_first_undecodable_frame_on() {
    let mut s = sim(config());
    let a = s.join("r", "a");
    let b = s.join("r", "b");
    let (_, _, _, secret, conn_id) = welcome_of(&s.recv(a));
    s.recv(b);
    s.udp(addr(2), conn_id, secret, ClientMsg::UdpBind);
    let mut d = conn_id.to_le_bytes().to_vec();
    d.extend_from_slice(&secret.to_le_bytes());
    let data = |payload: &'static [u8]| {
        ClientMsg::Data(Data {
            intent: Intent::Unreliable,
            opcode: 1,
            target: Target::AllOthers,
            payload,
        })
    };
    data(b"first").encode(&mut d);
    d.extend_from_slice(&[3, 0, 0, 0, 2, 9, 9]); // DATA with a bad intent
    data(b"after").encode(&mut d);
    s.server.handle_udp_datagram(s.now, addr(2), &d);
    let got = s.recv(b);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(matches!(&got[0], Got::Delivery { payload, .. } if payload == b"first"));
    assert_eq!(s.server.stats().udp_dropped_malformed, 1);
}

#[test]
fn every_kind_of_client_message_counts_against_the_rate_limit() {
    type Make = fn() -> ClientMsg<'static>;
    let kinds: [(&str, Make); 4] = [
        ("ping", || ClientMsg::Ping { client_time: 1 }),
        ("group join", || ClientMsg::GroupJoin(3)),
        ("group query", || ClientMsg::GroupQuery(3)),
        ("player props", || ClientMsg::SetPlayerProps(b"p")),
    ];
    for (what, make) in kinds {
        let mut c = config();
        c.limits.max_messages_per_sec = 20;
        let mut s = sim(c);
        let a = s.join("r", "a");
        s.recv(a);
        for _ in 0..25 {
            s.send(a, make());
        }
        assert_eq!(s.closed, vec![a], "{what} floods were not limited");
        assert_eq!(
            s.recv(a).last(),
            Some(&Got::Close(Code::RateLimited.as_u16())),
            "{what}"
        );
    }
}

#[test]
fn a_loop_stall_is_not_charged_to_a_client_whose_backlog_arrives_at_once() {
    let mut c = config();
    c.limits.max_messages_per_sec = 50;
    let mut s = sim(c);
    let a = s.join("r", "a");
    let b = s.join("r", "b");
    s.recv(a);
    s.recv(b);
    // The loop was stuck for 3 s; a client sending 40 a second has 120 messages waiting.
    s.now += Duration::from_secs(3);
    s.server.handle_loop_stall(Duration::from_secs(3));
    for _ in 0..120 {
        s.data(a, Intent::Reliable, 1, Target::AllOthers, b"m");
    }
    assert!(s.closed.is_empty(), "the stall was charged to the client");
    assert_eq!(s.recv(b).len(), 120);
    // The allowance is the stall's, not a new normal: a flood afterwards is still closed.
    for _ in 0..100 {
        s.data(a, Intent::Reliable, 1, Target::AllOthers, b"m");
    }
    assert_eq!(s.closed, vec![a]);
}

/// Session logic that refuses players named "impostor".
struct RefuseImpostors;

impl Hooks for RefuseImpostors {
    fn player_connecting(
        &mut self,
        _ctx: &mut Ctx<'_>,
        player: PlayerInfo<'_>,
        _payload: &[u8],
    ) -> Result<(), String> {
        if player.name == "impostor" {
            Err("not you".into())
        } else {
            Ok(())
        }
    }
}

fn hello_as(s: &mut Sim<RefuseImpostors>, room: &str, player_id: &str, name: &str) -> ConnId {
    let id = s.server.handle_accept(s.now, addr(1));
    s.send(
        id,
        ClientMsg::Hello(Hello {
            version: 1,
            mode: JoinMode::JoinOrCreate(room),
            token: "",
            player_id,
            player_name: name,
            payload: b"",
            stray_field: None,
        }),
    );
    id
}

#[test]
fn a_refused_newcomer_with_someone_elses_player_id_does_not_disconnect_them() {
    let mut s = sim_with(config(), RefuseImpostors);
    let holder = hello_as(&mut s, "r", "player-42", "ann");
    s.recv(holder);
    let impostor = hello_as(&mut s, "other", "player-42", "impostor");
    assert_eq!(
        s.recv(impostor),
        vec![Got::Reject(Code::RejectedByScript.as_u16())]
    );
    assert!(s.recv(holder).is_empty(), "the holder heard nothing");
    assert_eq!(s.closed, vec![impostor], "only the impostor was closed");
}

#[test]
fn a_reconnect_to_a_full_session_takes_over_its_own_seat() {
    let mut c = config();
    c.sessions.max_players = 2;
    let mut s = sim_with(c, RefuseImpostors);
    let old = hello_as(&mut s, "r", "player-42", "ann");
    let other = hello_as(&mut s, "r", "player-7", "bo");
    s.recv(old);
    s.recv(other);
    let new = hello_as(&mut s, "r", "player-42", "ann again");
    let got = s.recv(new);
    let (peer, _, peers, _, _) = welcome_of(&got);
    assert_eq!(peer, 3);
    assert_eq!(peers, vec![1, 2], "WELCOME first, listing the old seat");
    assert!(
        got.contains(&Got::Left(1, Code::Replaced.as_u16())),
        "then the old seat leaves: {got:?}"
    );
    assert_eq!(
        s.recv(old).last(),
        Some(&Got::Close(Code::Replaced.as_u16()))
    );
    assert_eq!(
        s.recv(other),
        vec![
            Got::Joined(3, "ann again".into()),
            Got::Left(1, Code::Replaced.as_u16())
        ]
    );
}
