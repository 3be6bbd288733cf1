//! GameSparks Real-Time and GameLift Realtime clients, driven by code that follows the public
//! client sources (the byte layouts in PROTOCOL.md sections 16 and 17, written here with our own
//! small protobuf encoder, not the server's), log in over WebSocket, exchange messages with
//! native players in the same session, see players connect and disconnect, use groups and ping;
//! bad packets cost only their sender.

mod common;

use common::vendor::*;
use common::*;
use moonrt::client::{Client, Connect, Event, To};
use moonrt::core::codec::Intent;
use moonrt::rtdata::{RtData, RtValue};
use std::time::{Duration, Instant};
use tungstenite::Message;

const RT_DATA_ECHO: &str = r#"
return {
  on_packet = function(packet)
    if packet.opcode == 5 then
      local d = rt.data.decode(packet.payload)
      rt.send(packet.sender, 50, rt.data.encode{ d[1] * 2, d[2] .. "!" })
    end
  end,
}
"#;

#[test]
fn a_gamesparks_client_logs_in_and_trades_rtdata_with_a_native_player_and_the_script() {
    let (server, _dir) = start_script(config(), RT_DATA_ECHO);
    let mut native = server.connect("match-1", "native");
    let (mut gs, peer, active) = gs_join(&server, "match-1");
    assert_eq!((peer, active), (2, vec![1]), "peer 2, and peer 1 is in");
    let joined = native
        .wait_for(WAIT, |e| matches!(e, Event::PlayerJoined { .. }))
        .unwrap();
    assert!(matches!(joined, Event::PlayerJoined { peer: 2, .. }));

    // RTData from GameSparks (long 42 at 1, string "hi" at 2) reaches the native player as
    // native RTData, and the script reads it with rt.data.
    let mut gs_data = vec![0x08];
    varint(84, &mut gs_data); // zigzag(42)
    gs_data.extend_from_slice(&[0x12, 0x04, 0x0a, 0x02, b'h', b'i']);
    gs.send(gs_packet(5, &[], true, Some(&gs_data), None));
    let d = next_delivery(&mut native);
    assert_eq!((d.opcode, d.sender), (5, 2));
    let data = RtData::decode(&d.payload).unwrap();
    assert_eq!(
        (data.get_long(1), data.get_string(2)),
        (Some(42), Some("hi"))
    );
    let echo = gs_custom(&mut gs);
    assert_eq!(unzigzag(get_int(&echo, 1).unwrap()), 50);
    assert_eq!(get_int(&echo, 5), Some(0), "sender: the server");
    let echoed = fields(get_bytes(&echo, 14).expect("RTData in field 14"));
    assert_eq!(unzigzag(get_int(&echoed, 1).unwrap()), 84);

    // Native RTData reaches GameSparks as RTData (double 1.5 at 1); raw bytes as a payload.
    let mut double = RtData::new();
    double.set(1, RtValue::Double(1.5));
    native
        .send(To::AllOthers, 6, Intent::Reliable, &double.encode())
        .unwrap();
    let got = gs_custom(&mut gs);
    assert_eq!(unzigzag(get_int(&got, 1).unwrap()), 6);
    assert_eq!(get_int(&got, 5), Some(1), "sender: peer 1");
    let mut expected = vec![0x09];
    expected.extend_from_slice(&1.5f64.to_le_bytes());
    assert_eq!(get_bytes(&got, 14), Some(&expected[..]));
    native
        .send(To::AllOthers, 7, Intent::Reliable, b"\xffraw")
        .unwrap();
    let got = gs_custom(&mut gs);
    assert_eq!(get_bytes(&got, 15), Some(&b"\xffraw"[..]));
    assert_eq!(get_bytes(&got, 14), None);

    // Bytes from GameSparks to one peer, unreliable: the native player gets them as sent.
    gs.send(gs_packet(8, &[1], false, None, Some(b"ping")));
    let d = next_delivery(&mut native);
    assert_eq!((d.opcode, d.payload.as_slice()), (8, &b"ping"[..]));

    // The native player leaves: PLAYER_DISCONNECT with the complete list of who is left.
    native.leave().unwrap();
    let (op, msg) = loop {
        let p = gs.packets().unwrap().remove(0);
        let (op, msg) = gs_reserved(&p);
        if op < 0 {
            break (op, msg);
        }
    };
    assert_eq!(op, -103);
    assert_eq!(get_int(&msg, 1), Some(1));
    assert_eq!(all_ints(&msg, 4), vec![2]);
}

#[test]
fn a_gamesparks_client_sees_a_player_connect_with_the_complete_list() {
    let server = TestServer::start(config());
    let (mut gs, peer, active) = gs_join(&server, "session=lobby&player=gs-1&name=Gee");
    assert_eq!((peer, active), (1, vec![]));
    let _native = server.connect("lobby", "native");
    let (op, msg) = gs_reserved(&gs.packets().unwrap()[0]);
    assert_eq!(op, -101, "PLAYER_CONNECT");
    assert_eq!(get_int(&msg, 1), Some(2));
    assert_eq!(all_ints(&msg, 4), vec![1, 2]);
}

const CHECK_PAYLOAD: &str = r#"
return {
  on_player_connect = function(player, payload)
    if payload == "deny" then return false, "not today" end
    rt.session.data[player.peer] = payload
    return true
  end,
  on_player_join = function(player)
    rt.send(player.peer, 77, "payload was " .. rt.session.data[player.peer])
  end,
}
"#;

#[test]
fn a_gamelift_client_logs_in_with_its_payload_and_messages_a_native_player() {
    let (server, _dir) = start_script(config(), CHECK_PAYLOAD);
    let mut native = server.connect("race", "native");
    let mut gl = Ws::open(&server);
    gl.send(gl_login("session=race&player=gl-1", b"hello"));
    let result = gl_packet(&mut gl).unwrap();
    assert_eq!(gl_op(&result), -1, "LOGIN_RESULT");
    // The client takes its peer id from targetPlayer.
    assert_eq!(get_int(&result, 3), Some(2));
    let login = fields(get_bytes(&result, 31).expect("loginResult in field 31"));
    assert_eq!(get_int(&login, 1), Some(1), "success");
    // on_player_connect saw GameLift's connect payload.
    let hello = gl_wait(&mut gl, 77);
    assert_eq!(get_bytes(&hello, 15), Some(&b"payload was hello"[..]));

    // To everyone (targetGroup -1), to one player, to the server.
    let _ = text_on(&mut native, 77); // the script's greeting to the native player
    gl.send(gl_message(10, 0, -1, b"hi all"));
    let d = next_delivery(&mut native);
    assert_eq!(
        (d.opcode, d.sender, d.payload.as_slice()),
        (10, 2, &b"hi all"[..])
    );
    gl.send(gl_message(11, 1, -1, b"hi one"));
    let d = next_delivery(&mut native);
    assert_eq!((d.opcode, d.payload.as_slice()), (11, &b"hi one"[..]));
    native
        .send(To::Peers(vec![2]), 12, Intent::Reliable, b"back")
        .unwrap();
    let got = gl_wait(&mut gl, 12);
    assert_eq!(get_int(&got, 5), Some(1), "sender: the native player");
    assert_eq!(get_int(&got, 6), Some(1), "reliable");
    assert_eq!(get_bytes(&got, 15), Some(&b"back"[..]));

    // Groups: join 5, ask who is in it (packed players), a message to the group.
    gl.send(gl_command(40, Some(5)));
    native.join_group(5).unwrap();
    gl.send(gl_command(42, Some(5)));
    let update = loop {
        let p = gl_wait(&mut gl, -13);
        let u = fields(get_bytes(&p, 43).unwrap());
        if get_bytes(&u, 2).is_some_and(|b| b.len() == 2) {
            break u;
        }
    };
    assert_eq!(get_int(&update, 1), Some(5));
    assert_eq!(get_bytes(&update, 2), Some(&[1u8, 2][..]), "packed [1, 2]");
    gl.send(gl_message(13, 0, 5, b"team"));
    let d = next_delivery(&mut native);
    assert_eq!((d.opcode, d.payload.as_slice()), (13, &b"team"[..]));

    // Ping, then the native player leaves: PLAYER_DISCONNECT (114) naming it.
    gl.send(gl_command(32, None));
    let pong = gl_wait(&mut gl, -3);
    assert!(get(&pong, 33).is_some(), "pingResult");
    native.leave().unwrap();
    let left = gl_wait(&mut gl, 114);
    let who = fields(get_bytes(&left, 36).unwrap());
    assert_eq!(get_int(&who, 1), Some(1));
}

#[test]
fn a_gamelift_client_sees_players_connect_and_a_refused_login_reads_success_false() {
    let (server, _dir) = start_script(config(), CHECK_PAYLOAD);
    let mut gl = Ws::open(&server);
    gl.send(gl_login("race", b"ok"));
    assert_eq!(get_int(&gl_packet(&mut gl).unwrap(), 3), Some(1));
    let _native = Client::connect(server.addr, Connect::join_or_create("race").name("n")).unwrap();
    let connect = gl_wait(&mut gl, 113);
    assert_eq!(
        get_int(&fields(get_bytes(&connect, 35).unwrap()), 1),
        Some(2)
    );

    let mut denied = Ws::open(&server);
    denied.send(gl_login("race", b"deny"));
    let result = gl_packet(&mut denied).unwrap();
    assert_eq!(gl_op(&result), -1);
    let login = fields(get_bytes(&result, 31).unwrap_or(&[]));
    assert_eq!(
        get_int(&login, 1),
        None,
        "success false (a proto3 zero is absent)"
    );
    assert_eq!(denied.closed(), 4015, "REJECT 15 as the close status");
}

// ----- all three in one session, tickets, bad input -----

#[test]
fn gamesparks_gamelift_and_native_players_share_one_session() {
    let server = TestServer::start(config());
    let mut native = server.connect("mixed", "native");
    let (mut gs, gs_peer, _) = gs_join(&server, "mixed");
    let mut gl = Ws::open(&server);
    gl.send(gl_login("mixed", b""));
    let gl_peer = get_int(&gl_packet(&mut gl).unwrap(), 3).unwrap();
    assert_eq!((gs_peer, gl_peer), (2, 3));
    gs.send(gs_packet(20, &[], true, None, Some(b"from gs")));
    let got = gl_wait(&mut gl, 20);
    assert_eq!(get_int(&got, 5), Some(2));
    assert_eq!(get_bytes(&got, 15), Some(&b"from gs"[..]));
    let d = next_delivery(&mut native);
    assert_eq!((d.opcode, d.payload.as_slice()), (20, &b"from gs"[..]));
    gl.send(gl_message(21, 0, -1, b"from gl"));
    let got = gs_custom(&mut gs);
    assert_eq!(get_int(&got, 5), Some(3));
    assert_eq!(get_bytes(&got, 15), Some(&b"from gl"[..]));
}

#[test]
fn vendor_logins_carry_join_tickets_and_a_forged_one_is_refused() {
    const SECRET: &str = "vendor-secret-shared-with-the-backend";
    let mut c = config();
    c.auth.mode = moonrt::config::AuthMode::Ticket;
    c.auth.ticket_key = SECRET.into();
    let server = TestServer::start(c);
    let ticket =
        |player: &str, key: &str| sign_ticket(key, player, serde_json::json!({"session": "duel"}));
    let (_gs, peer, _) = gs_join(&server, &ticket("ann", SECRET));
    assert_eq!(peer, 1);
    let mut gl = Ws::open(&server);
    gl.send(gl_login(&ticket("bo", SECRET), b""));
    assert_eq!(get_int(&gl_packet(&mut gl).unwrap(), 3), Some(2));
    let mut forged = Ws::open(&server);
    forged.send(gs_login(&ticket(
        "eve",
        "not-the-secret-of-this-server-at-all",
    )));
    assert_eq!(
        forged.closed(),
        4017,
        "REJECT 17: not signed by the configured key"
    );
    let mut plain = Ws::open(&server);
    plain.send(gl_login("duel", b""));
    assert_eq!(plain.closed(), 4017, "no ticket at all");
}

#[test]
fn bad_vendor_packets_close_only_their_sender() {
    let server = TestServer::start(config());
    let mut native = server.connect("room", "native");
    let bad: Vec<(&str, Vec<u8>, u16)> = vec![
        ("a length past the message", vec![0x20, 0x08, 0x02], 4001),
        ("a truncated varint length", vec![0xff], 4001),
        ("not protobuf", delimited(&[0x07, 0x01]), 4001),
        (
            "a packet over 64 KiB",
            {
                let mut v = Vec::new();
                varint(70_000, &mut v);
                v.resize(70_010, 0);
                v
            },
            4002,
        ),
    ];
    for profile in ["gamesparks", "gamelift"] {
        for (what, message, code) in &bad {
            let mut ws = Ws::open(&server);
            if profile == "gamesparks" {
                gs_join_on(&mut ws, "room");
            } else {
                ws.send(gl_login("room", b""));
                gl_packet(&mut ws).unwrap();
            }
            ws.send(message.clone());
            assert_eq!(ws.closed(), *code, "{profile}: {what}");
        }
    }
    // GameLift's own payload limit, and a second login.
    let mut ws = Ws::open(&server);
    ws.send(gl_login("room", b""));
    gl_packet(&mut ws).unwrap();
    ws.send(gl_message(9, 0, -1, &[7u8; 4097]));
    assert_eq!(
        ws.closed(),
        4002,
        "over the client's 4096-byte payload limit"
    );
    let (mut gs, _, _) = gs_join(&server, "room");
    gs.send(gs_login("room"));
    assert_eq!(gs.closed(), 4006, "a second login");
    // Random bytes after a good login: closed or ignored, never the server down.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..40 {
        let mut ws = Ws::open(&server);
        ws.send(gl_login("room", b""));
        gl_packet(&mut ws).unwrap();
        let len = (seed % 40) as usize + 1;
        let mut junk = Vec::with_capacity(len);
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            junk.push(seed as u8);
        }
        let _ = ws.0.send(Message::Binary(junk.into()));
    }
    // The native player was never disturbed.
    native.ping().unwrap();
    native
        .wait_for(WAIT, |e| matches!(e, Event::Pong { .. }))
        .expect("the native player still gets answers");
}

fn gs_join_on(ws: &mut Ws, token: &str) {
    ws.send(gs_login(token));
    let packets = ws.packets().unwrap();
    assert_eq!(gs_reserved(&packets[0]).0, -1);
}

#[test]
fn a_quiet_vendor_client_is_kept_alive_with_websocket_pings() {
    let mut c = config();
    c.server.idle_timeout_ms = 1000;
    let server = TestServer::start(c);
    let (mut gs, _, _) = gs_join(&server, "quiet");
    // The SDK never pings; the server's WebSocket pings (answered by the WebSocket library as
    // it reads) keep it in for three idle timeouts.
    gs.0.get_mut()
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let until = Instant::now() + Duration::from_millis(3000);
    while Instant::now() < until {
        match gs.0.read() {
            Ok(Message::Close(f)) => panic!("closed while quiet: {f:?}"),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let mut native = server.connect("quiet", "n");
    native
        .send(To::AllOthers, 3, Intent::Reliable, b"still there")
        .unwrap();
    gs.0.get_mut().set_read_timeout(Some(WAIT)).unwrap();
    let got = gs_custom(&mut gs);
    assert_eq!(get_bytes(&got, 15), Some(&b"still there"[..]));
}

fn shipped(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/lua/examples/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn the_shipped_examples_run_unchanged_for_vendor_clients() {
    // The GameSparks tutorial script with a GameSparks client and a GameLift client.
    let (server, _dir) = start_script(config(), &shipped("gamesparks.lua"));
    let (mut gs, _, _) = gs_join(&server, "tutorial");
    gs.send(gs_packet(100, &[], true, None, Some(b"x")));
    let pong = gs_custom(&mut gs);
    assert_eq!(unzigzag(get_int(&pong, 1).unwrap()), 101);
    assert_eq!(get_bytes(&pong, 15), Some(&b"pong x"[..]));
    let mut gl = Ws::open(&server);
    gl.send(gl_login("tutorial", b""));
    gl_packet(&mut gl).unwrap();
    // Two players: the script's countdown reaches both, 1 to 10.
    let last = loop {
        let p = gl_wait(&mut gl, 107);
        if get_bytes(&p, 15) == Some(b"10") {
            break p;
        }
    };
    assert_eq!(get_int(&last, 5), None, "sender: the server (0)");
    drop(server);

    // The GameLift example with a GameLift client: accepted, then op 111 to the server is
    // answered to the red team it joined.
    let (server, _dir) = start_script(
        {
            let mut c = config();
            c.sessions.empty_session_linger_ms = 60_000;
            c
        },
        &shipped("gamelift.lua"),
    );
    let mut gl = Ws::open(&server);
    gl.send(gl_login("arena", b""));
    gl_packet(&mut gl).unwrap();
    let accepted = gl_wait(&mut gl, 113);
    assert_eq!(get_bytes(&accepted, 15), Some(&b"Peer 1 accepted"[..]));
    gl.send(gl_command(40, Some(1)));
    gl.send(gl_message(111, -1, 0, b"attack"));
    let reply = gl_wait(&mut gl, 112);
    assert_eq!(get_bytes(&reply, 15), Some(&b"attack"[..]));
}

#[test]
fn a_flood_of_packets_the_server_ignores_still_counts_against_the_rate_limit() {
    let mut c = config();
    c.limits.max_messages_per_sec = 50;
    let server = TestServer::start(c);
    let (mut gs, _, _) = gs_join(&server, "flood");
    // GameSparks pings (op -2) mean nothing to the server, but they are messages.
    let mut ping = Vec::new();
    sint(1, -2, &mut ping);
    for _ in 0..200 {
        if gs.0.send(Message::Binary(delimited(&ping).into())).is_err() {
            break;
        }
    }
    assert_eq!(
        gs.closed(),
        4028,
        "CLOSE 28: more than 50 messages per second"
    );
    let mut gl = Ws::open(&server);
    gl.send(gl_login("flood", b""));
    gl_packet(&mut gl).unwrap();
    for _ in 0..200 {
        // Op code 0 without a command: ignored, counted.
        if gl
            .0
            .send(Message::Binary(delimited(&[0x30, 0x01]).into()))
            .is_err()
        {
            break;
        }
    }
    assert_eq!(gl.closed(), 4028);
}
