//! Reconnection: a player whose TCP connection is cut mid-game keeps its seat for
//! `sessions.reconnect_grace_ms`: the Rust client takes it back by itself, with the same peer
//! id, groups and props, and the reliable messages sent meanwhile; the others see PLAYER_AWAY
//! and PLAYER_BACK; the script sees on_player_disconnect and on_player_reconnect. A seat not
//! taken back in time is given up (PLAYER_LEFT 26), and a wrong secret takes nothing.

mod common;

use common::*;
use moonrt::client::{Client, Connect, Event, To};
use moonrt::core::Code;
use moonrt::core::codec::{self, ClientMsg, Hello, Intent, JoinMode, ServerMsg};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const SCRIPT: &str = r#"
return {
  on_player_disconnect = function(p)
    rt.send("all", 900, "away " .. p.peer .. " " .. tostring(p.connected))
  end,
  on_player_reconnect = function(p)
    rt.send("all", 901, "back " .. p.peer .. " " .. tostring(p.connected))
  end,
}
"#;

fn grace(ms: u64) -> moonrt::config::Config {
    let mut c = config();
    c.sessions.reconnect_grace_ms = ms;
    c
}

fn wait_for(client: &mut Client, wanted: impl FnMut(&Event) -> bool) -> Event {
    client.wait_for(WAIT, wanted).expect("the event")
}

/// Sends one raw HELLO and returns the first frame's decoded type and REJECT code (if any).
fn raw_hello(addr: std::net::SocketAddr, mode: JoinMode<'_>, payload: &[u8]) -> (u8, u16, u16) {
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let mut frame = Vec::new();
    ClientMsg::Hello(Hello {
        version: 1,
        mode,
        token: "",
        player_id: "",
        player_name: "",
        payload,
        stray_field: None,
    })
    .encode(&mut frame);
    sock.write_all(&frame).unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    loop {
        if let Ok(Some((body, _))) = codec::split_frame(&got, usize::MAX) {
            return match ServerMsg::decode(body).unwrap() {
                ServerMsg::Welcome(w) => (0x81, 0, w.peer),
                ServerMsg::Reject { code, .. } => (0x82, code, 0),
                other => panic!("unexpected {other:?}"),
            };
        }
        let n = sock.read(&mut buf).unwrap();
        assert!(n > 0, "closed without an answer");
        got.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn a_cut_connection_comes_back_with_its_seat_groups_and_missed_messages() {
    let (server, _dir) = start_script(grace(5000), SCRIPT);
    let mut a = Client::connect(server.addr, Connect::join_or_create("game").name("a")).unwrap();
    let mut b = Client::connect(server.addr, Connect::join_or_create("game").name("b")).unwrap();
    assert_ne!(a.reconnect_secret(), 0);
    a.join_group(5).unwrap();
    a.set_player_props(b"ready").unwrap();
    wait_for(&mut b, |e| matches!(e, Event::PlayerProps { .. }));
    let peer = a.peer_id();

    // The network drops: the server holds the seat and tells the others.
    a.sever();
    wait_for(
        &mut b,
        |e| matches!(e, Event::PlayerAway { peer: p } if *p == peer),
    );
    assert_eq!(text_on(&mut b, 900), format!("away {peer} false"));
    // Meanwhile: two reliable messages (kept for it) and an unreliable one (dropped).
    b.send(To::Peers(vec![peer]), 10, Intent::Reliable, b"missed 1")
        .unwrap();
    b.send(To::Group(5), 11, Intent::Reliable, b"missed 2")
        .unwrap();
    b.send(To::Peers(vec![peer]), 12, Intent::Unreliable, b"stale")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));

    // The client notices and takes its seat back by itself.
    let back = wait_for(&mut a, |e| matches!(e, Event::Reconnected { .. }));
    assert_eq!(back, Event::Reconnected { peer });
    assert_eq!(a.peer_id(), peer);
    // (The script's own "away" notice to everyone was kept for it too.)
    let mut game = || loop {
        let d = next_delivery(&mut a);
        if d.opcode < 900 {
            return d;
        }
    };
    let first = game();
    let second = game();
    assert_eq!(
        (
            first.opcode,
            &first.payload[..],
            second.opcode,
            &second.payload[..]
        ),
        (10, &b"missed 1"[..], 11, &b"missed 2"[..])
    );
    // The unreliable one was not kept.
    while let Some(event) = a.next_event(Duration::from_millis(150)).unwrap() {
        assert!(
            !matches!(&event, Event::Delivery(d) if d.opcode == 12),
            "a stale unreliable message was replayed"
        );
    }
    wait_for(
        &mut b,
        |e| matches!(e, Event::PlayerBack { peer: p } if *p == peer),
    );
    assert_eq!(text_on(&mut b, 901), format!("back {peer} true"));
    // Still in its group, and the session goes on both ways.
    b.send(To::Group(5), 13, Intent::Reliable, b"team").unwrap();
    assert_eq!(next_delivery(&mut a).payload, b"team");
    a.send(To::AllOthers, 14, Intent::Reliable, b"i am back")
        .unwrap();
    let d = next_delivery(&mut b);
    assert_eq!((d.sender, &d.payload[..]), (peer, &b"i am back"[..]));
    let stats = server.stop();
    assert_eq!(stats.sessions_created, 1);
}

#[test]
fn a_seat_not_taken_back_in_time_is_given_up_and_a_late_reconnect_is_refused() {
    let (server, _dir) = start_script(grace(300), SCRIPT);
    let mut a = Client::connect(server.addr, Connect::join_or_create("game").name("a")).unwrap();
    let mut b = Client::connect(server.addr, Connect::join_or_create("game").name("b")).unwrap();
    let peer = a.peer_id();
    a.sever();
    wait_for(&mut b, |e| matches!(e, Event::PlayerAway { .. }));
    assert_player_left(&mut b, peer, Code::ConnectionLost);
    // Too late: the client's own attempt is refused with 8, and it says so.
    let closed = wait_for(&mut a, |e| matches!(e, Event::Closed { .. }));
    assert!(
        matches!(&closed, Event::Closed { code, .. } if *code == Code::ReconnectRefused.as_u16()),
        "{closed:?}"
    );
}

#[test]
fn a_wrong_secret_takes_nothing_and_the_right_one_takes_over_a_live_connection() {
    let server = TestServer::start(grace(5000));
    let mut a = Client::connect(server.addr, Connect::join_or_create("game").name("a")).unwrap();
    let mut b = Client::connect(server.addr, Connect::join_or_create("game").name("b")).unwrap();
    let sid = a.session_id();
    let a_peer = a.peer_id();
    let seat = |secret: u64| {
        let mut p = a_peer.to_le_bytes().to_vec();
        p.extend_from_slice(&secret.to_le_bytes());
        p
    };
    let right = a.reconnect_secret();
    for wrong in [right ^ 1, 0, right.rotate_left(8)] {
        assert_eq!(
            raw_hello(server.addr, JoinMode::Reconnect(sid), &seat(wrong)),
            (0x82, Code::ReconnectRefused.as_u16(), 0)
        );
    }
    assert_eq!(
        raw_hello(server.addr, JoinMode::Reconnect(sid), &[1, 2, 3]).1,
        Code::BadHello.as_u16()
    );
    assert_eq!(
        raw_hello(server.addr, JoinMode::Reconnect(sid ^ 1), &seat(right)).1,
        Code::SessionNotFound.as_u16()
    );
    // Nothing happened to the seat's holder.
    a.send(To::AllOthers, 1, Intent::Reliable, b"still mine")
        .unwrap();
    assert_eq!(next_delivery(&mut b).payload, b"still mine");
    // The right secret while the old connection still looks alive (a phone that switched
    // networks before the server noticed): the new connection takes the seat over.
    let (kind, _, peer) = raw_hello(server.addr, JoinMode::Reconnect(sid), &seat(right));
    assert_eq!((kind, peer), (0x81, a.peer_id()));
    wait_for(&mut b, |e| matches!(e, Event::PlayerBack { .. }));
    // The old client's own attempt with the old secret is refused.
    let closed = wait_for(&mut a, |e| matches!(e, Event::Closed { .. }));
    assert!(
        matches!(closed, Event::Closed { code: 8, .. }),
        "{closed:?}"
    );
}

#[test]
fn without_a_grace_a_drop_is_a_leave_as_before() {
    let server = TestServer::start(config());
    let mut a = Client::connect(server.addr, Connect::join_or_create("game")).unwrap();
    let mut b = Client::connect(server.addr, Connect::join_or_create("game")).unwrap();
    assert_eq!(a.reconnect_secret(), 0);
    let peer = a.peer_id();
    a.sever();
    assert_player_left(&mut b, peer, Code::ConnectionLost);
}
