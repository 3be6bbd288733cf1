//! UDP over real sockets: fallback to TCP before binding, UDP after, forged datagrams dropped.

mod common;

use common::*;
use moonrt::client::{Event, To};
use moonrt::core::codec::{ClientMsg, Data, Intent, Target};
use std::net::UdpSocket;
use std::time::Duration;

#[test]
fn unreliable_falls_back_to_tcp_before_binding_and_uses_udp_after() {
    let server = TestServer::start(config());
    let mut a = server.connect("room", "a");
    let mut b = server.connect("room", "b");
    a.send(To::AllOthers, 3, Intent::Unreliable, b"early")
        .unwrap();
    let d = next_delivery(&mut b);
    assert_eq!((d.payload.as_slice(), d.via_udp), (&b"early"[..], false));
    a.bind_udp().unwrap();
    b.bind_udp().unwrap();
    a.send(To::AllOthers, 3, Intent::UnreliableSequenced, b"fast")
        .unwrap();
    let d = next_delivery(&mut b);
    assert_eq!(d.payload, b"fast");
    assert!(d.via_udp, "sent and received over UDP once both are bound");
    assert_eq!(d.intent, Intent::UnreliableSequenced);
    a.send(To::AllOthers, 4, Intent::Reliable, b"sure").unwrap();
    let d = next_delivery(&mut b);
    assert_eq!((d.opcode, d.via_udp), (4, false), "reliable stays on TCP");
}

fn datagram(conn_id: u32, secret: u64, msg: ClientMsg<'_>) -> Vec<u8> {
    let mut d = conn_id.to_le_bytes().to_vec();
    d.extend_from_slice(&secret.to_le_bytes());
    msg.encode(&mut d);
    d
}

#[test]
fn forged_and_unbound_datagrams_get_no_answer_and_reach_no_one() {
    let server = TestServer::start(config());
    let mut a = server.connect("room", "a");
    let mut b = server.connect("room", "b");
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    attacker
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let udp = server.udp.unwrap();
    // Guess the first connection id with wrong secrets, including a bind attempt.
    for secret in [0u64, 1, u64::MAX] {
        attacker
            .send_to(&datagram(0, secret, ClientMsg::UdpBind), udp)
            .unwrap();
    }
    attacker.send_to(b"\x00\x01garbage", udp).unwrap();
    let mut buf = [0u8; 1500];
    assert!(
        attacker.recv_from(&mut buf).is_err(),
        "no datagram is ever answered unless authenticated"
    );
    // A datagram with a valid-looking DATA from an address nobody bound.
    let data = ClientMsg::Data(Data {
        intent: Intent::Unreliable,
        opcode: 1,
        target: Target::AllOthers,
        payload: b"spoof",
    });
    attacker.send_to(&datagram(0, 7, data), udp).unwrap();
    assert_no_delivery(&mut b, Duration::from_millis(200));
    // The real players are unaffected.
    a.send(To::AllOthers, 2, Intent::Reliable, b"ok").unwrap();
    assert_eq!(next_delivery(&mut b).payload, b"ok");
    let stats = server.stop();
    assert_eq!(stats.udp_dropped_auth, 4);
    assert_eq!(stats.udp_dropped_malformed, 1);
}

#[test]
fn a_broadcast_to_seven_players_leaves_in_one_send_syscall() {
    let server = TestServer::start(config());
    let mut players: Vec<_> = (0..8)
        .map(|i| server.connect("batch", &format!("p{i}")))
        .collect();
    for p in players.iter_mut() {
        p.bind_udp().unwrap();
    }
    // Everyone has seen everyone join before the broadcasts start.
    for (i, p) in players.iter_mut().enumerate() {
        for _ in i..7 {
            p.wait_for(WAIT, |e| matches!(e, Event::PlayerJoined { .. }))
                .unwrap();
        }
    }
    for round in 0..10u8 {
        players[0]
            .send(To::AllOthers, 3, Intent::Unreliable, &[round])
            .unwrap();
        for p in players[1..].iter_mut() {
            let d = next_delivery(p);
            assert_eq!((d.payload[0], d.via_udp), (round, true));
        }
    }
    drop(players);
    let stats = server.stop();
    // Eight UDP_BOUND answers, then ten rounds of seven datagrams.
    assert_eq!(stats.udp_out, 8 + 70);
    assert!(
        stats.udp_send_calls <= 8 + 10,
        "{} send syscalls for {} datagrams: each round's seven leave in one",
        stats.udp_send_calls,
        stats.udp_out
    );
    assert!(stats.udp_recv_calls >= 1 && stats.udp_recv_calls <= stats.udp_in);
}
