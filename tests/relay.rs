//! Three real clients in a session: delivery to all, to one peer, to a group, to the server;
//! join and leave notices.

mod common;

use common::*;
use moonrt::client::{Event, To};
use moonrt::core::Code;
use moonrt::core::codec::Intent;
use std::time::Duration;

#[test]
fn three_players_see_each_other_join_and_leave() {
    let server = TestServer::start(config());
    let mut a = server.connect("room", "ann");
    let mut b = server.connect("room", "bo");
    let c = server.connect("room", "cy");
    assert_eq!(c.peer_id(), 3);
    let names: Vec<&str> = c.peers().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["ann", "bo"]);
    let joined = a
        .wait_for(WAIT, |e| matches!(e, Event::PlayerJoined { peer: 3, .. }))
        .unwrap();
    assert_eq!(
        joined,
        Event::PlayerJoined {
            peer: 3,
            player_id: String::new(),
            name: "cy".into()
        }
    );
    drop(c);
    assert_player_left(&mut b, 3, Code::ConnectionLost);
}

#[test]
fn message_to_all_others_reaches_both_other_players_byte_for_byte() {
    let server = TestServer::start(config());
    let mut a = server.connect("room", "a");
    let mut b = server.connect("room", "b");
    let mut c = server.connect("room", "c");
    let payload: Vec<u8> = (0..=255).collect();
    a.send(To::AllOthers, 42, Intent::Reliable, &payload)
        .unwrap();
    for receiver in [&mut b, &mut c] {
        let d = next_delivery(receiver);
        assert_eq!((d.opcode, d.sender, d.seq), (42, 1, 1));
        assert_eq!(d.payload, payload);
        assert!(!d.via_udp);
    }
    assert_no_delivery(&mut a, Duration::from_millis(100));
}

#[test]
fn message_to_one_peer_reaches_only_that_peer() {
    let server = TestServer::start(config());
    let mut a = server.connect("room", "a");
    let mut b = server.connect("room", "b");
    let mut c = server.connect("room", "c");
    a.send(To::Peers(vec![3]), 7, Intent::Reliable, b"psst")
        .unwrap();
    let d = next_delivery(&mut c);
    assert_eq!((d.sender, d.payload.as_slice()), (1, &b"psst"[..]));
    assert_no_delivery(&mut b, Duration::from_millis(100));
}

#[test]
fn message_to_a_group_reaches_only_its_other_members() {
    let server = TestServer::start(config());
    let mut a = server.connect("room", "a");
    let mut b = server.connect("room", "b");
    let mut c = server.connect("room", "c");
    a.join_group(10).unwrap();
    b.join_group(10).unwrap();
    let update = a
        .wait_for(
            WAIT,
            |e| matches!(e, Event::GroupMembers { members, .. } if members.len() == 2),
        )
        .unwrap();
    assert_eq!(
        update,
        Event::GroupMembers {
            group: 10,
            members: vec![1, 2]
        }
    );
    a.send(To::Group(10), 5, Intent::Reliable, b"team").unwrap();
    assert_eq!(next_delivery(&mut b).payload, b"team");
    assert_no_delivery(&mut c, Duration::from_millis(100));
}

#[test]
fn message_to_the_server_reaches_session_logic_which_answers_as_peer_zero() {
    let server = TestServer::start_with(config(), Reverser);
    let mut a = server.connect("room", "a");
    let mut b = server.connect("room", "b");
    a.send(To::Server, 11, Intent::Reliable, b"abc").unwrap();
    let d = next_delivery(&mut a);
    assert_eq!(
        (d.sender, d.opcode, d.payload.as_slice()),
        (0, 11, &b"cba"[..])
    );
    assert_no_delivery(&mut b, Duration::from_millis(100));
    let stats = server.stop();
    assert_eq!(stats.to_server, 1);
    assert_eq!(stats.to_server_unhandled, 0);
}

#[test]
fn message_to_the_server_without_session_logic_is_counted_not_relayed() {
    let server = TestServer::start(config());
    let mut a = server.connect("room", "a");
    let mut b = server.connect("room", "b");
    a.send(To::Peers(vec![0]), 11, Intent::Reliable, b"x")
        .unwrap();
    a.ping().unwrap();
    a.wait_for(WAIT, |e| matches!(e, Event::Pong { .. }))
        .unwrap();
    assert_no_delivery(&mut b, Duration::from_millis(100));
    let stats = server.stop();
    assert_eq!(stats.to_server_unhandled, 1);
}

#[test]
fn ping_reports_round_trip_and_a_small_clock_offset_on_one_machine() {
    let server = TestServer::start(config());
    let mut a = server.connect("room", "a");
    a.ping().unwrap();
    match a
        .wait_for(WAIT, |e| matches!(e, Event::Pong { .. }))
        .unwrap()
    {
        Event::Pong { rtt, offset_us } => {
            assert!(rtt < WAIT);
            // Same clock on both ends: the offset is within the round trip (plus rounding).
            assert!(
                offset_us.unsigned_abs() <= rtt.as_micros() as u64 + 1_000,
                "{offset_us}"
            );
        }
        _ => unreachable!(),
    }
}

#[test]
fn sessions_by_name_and_id_keep_players_apart() {
    let server = TestServer::start(config());
    let mut a = server.connect("red", "a");
    let mut other = server.connect("blue", "x");
    assert_ne!(a.session_id(), other.session_id());
    let mut b = moonrt::client::Client::connect(
        server.addr,
        moonrt::client::Connect::join(a.session_id()).name("b"),
    )
    .unwrap();
    assert_eq!(b.session_name(), "red");
    a.send(To::AllOthers, 1, Intent::Reliable, b"red only")
        .unwrap();
    assert_eq!(next_delivery(&mut b).payload, b"red only");
    assert_no_delivery(&mut other, Duration::from_millis(100));
}
