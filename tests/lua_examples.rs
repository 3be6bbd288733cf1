//! Every script under lua/ works as its comments say, driven by real clients over real sockets.

mod common;

use common::*;
use moonrt::client::{Client, Connect, Event, To};
use moonrt::core::codec::Intent;
use std::time::Duration;

fn example(name: &str) -> String {
    std::fs::read_to_string(format!("{}/lua/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Runs an example with some constants replaced (so timings fit a test).
fn start_example(name: &str, replace: &[(&str, &str)]) -> (TestServer, TempDir) {
    let mut text = example(name);
    for (from, to) in replace {
        assert!(text.contains(from), "{name} has no {from:?}");
        text = text.replace(from, to);
    }
    start_script(config(), &text)
}

#[test]
fn default_script_relays_and_answers_nothing_to_the_server() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lua/main.lua");
    let server = start_script_file(config(), &path);
    let mut a = server.connect("r", "a");
    let mut b = server.connect("r", "b");
    a.send(To::AllOthers, 1, Intent::Reliable, b"plain relay")
        .unwrap();
    assert_eq!(next_delivery(&mut b).payload, b"plain relay");
    a.send(To::Server, 2, Intent::Reliable, b"hello server")
        .unwrap();
    assert_no_delivery(&mut a, Duration::from_millis(100));
    let stats = server.stop();
    assert_eq!(stats.to_server_unhandled, 0, "on_message handled it");
}

#[test]
fn gamelift_example_accepts_replies_to_the_red_team_filters_and_ends_empty_sessions() {
    let mut c = config();
    c.sessions.empty_session_linger_ms = 60_000;
    let text = example("examples/gamelift.lua")
        .replace("local TICK_MS = 1000", "local TICK_MS = 20")
        .replace(
            "local MINIMUM_ELAPSED_S = 120",
            "local MINIMUM_ELAPSED_S = 0",
        );
    let (server, _dir) = start_script(c, &text);
    let mut red = server.connect("match", "red");
    assert_eq!(text_on(&mut red, 113), "Peer 1 accepted");
    let mut blue = server.connect("match", "blue");
    assert_eq!(text_on(&mut blue, 113), "Peer 2 accepted");
    red.join_group(1).unwrap();
    blue.join_group(2).unwrap();
    blue.join_group(7).unwrap();
    let refused = blue
        .wait_for(WAIT, |e| matches!(e, Event::Error { .. }))
        .unwrap();
    assert!(
        matches!(refused, Event::Error { code: 33, .. }),
        "only groups 1 and 2 exist"
    );
    blue.send(To::Server, 111, Intent::Reliable, b"attack")
        .unwrap();
    assert_eq!(
        text_on(&mut red, 112),
        "attack",
        "op 111 is forwarded to the red team"
    );
    blue.send(To::Peers(vec![1]), 5, Intent::Reliable, b"Reject this")
        .unwrap();
    blue.send(To::Peers(vec![1]), 5, Intent::Reliable, b"hello")
        .unwrap();
    assert_eq!(
        text_on(&mut red, 5),
        "hello",
        "the Reject payload was filtered"
    );
    let session = red.session_id();
    drop(blue);
    assert_eq!(text_on(&mut red, 114), "Peer 2 disconnected");
    red.leave().unwrap();
    // The tick loop sees no active players and ends the session long before the linger would.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match Client::connect(server.addr, Connect::join(session)) {
            Err(moonrt::client::ClientError::Rejected { code: 13, .. }) => break,
            Ok(_) | Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            other => panic!("the session did not end: {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn gamesparks_example_intercepts_cancels_syncs_counts_and_times_out() {
    let (server, _dir) = start_example(
        "examples/gamesparks.lua",
        &[("local RECONNECT_MS = 5000", "local RECONNECT_MS = 100")],
    );
    let mut a = Client::connect(
        server.addr,
        Connect::join_or_create("gs").name("ann").player_id("ann-1"),
    )
    .unwrap();
    let mut b = Client::connect(
        server.addr,
        Connect::join_or_create("gs").name("bo").player_id("bo-1"),
    )
    .unwrap();
    // set_interval stops itself after ten runs.
    let counts: Vec<String> = (0..10).map(|_| text_on(&mut a, 107)).collect();
    assert_eq!(counts, (1..=10).map(|i| i.to_string()).collect::<Vec<_>>());
    // Intercept opcode 100 and reply on 101.
    a.send(To::AllOthers, 100, Intent::Reliable, b"7").unwrap();
    assert_eq!(text_on(&mut a, 101), "pong 7");
    // Stale packets are cancelled; fresh ones pass.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    a.send(
        To::AllOthers,
        102,
        Intent::Reliable,
        format!("{} old", now_ms - 60_000).as_bytes(),
    )
    .unwrap();
    a.send(
        To::AllOthers,
        102,
        Intent::Reliable,
        format!("{now_ms} fresh").as_bytes(),
    )
    .unwrap();
    assert!(text_on(&mut b, 102).ends_with("fresh"));
    // Packets from a muted peer are cancelled.
    a.send(To::AllOthers, 104, Intent::Reliable, b"/mute me")
        .unwrap();
    a.send(To::AllOthers, 104, Intent::Reliable, b"can you hear me")
        .unwrap();
    b.send(To::AllOthers, 104, Intent::Reliable, b"bo speaks")
        .unwrap();
    assert_eq!(text_on(&mut a, 104), "bo speaks");
    assert_no_delivery(&mut b, Duration::from_millis(100));
    // Clock sync.
    a.send(To::Server, 105, Intent::Reliable, b"1234").unwrap();
    let reply = text_on(&mut a, 106);
    let (client, server_ms) = reply.split_once(',').unwrap();
    assert_eq!(client, "1234");
    assert!((server_ms.parse::<i128>().unwrap() - now_ms as i128).abs() < 5_000);
    // A player that drops and does not come back in time is announced as gone.
    drop(b);
    assert_eq!(text_on(&mut a, 108), "bo");
}

#[test]
fn mgobe_example_initialises_game_data_and_answers_the_player_list() {
    let (server, _dir) = start_example("examples/mgobe.lua", &[]);
    let mut a = server.connect("room", "ann");
    let mut b = server.connect("room", "bo");
    a.send(To::Server, 200, Intent::Reliable, br#"{"x": 3, "y": 4}"#)
        .unwrap();
    for client in [&mut a, &mut b] {
        let state: serde_json::Value = serde_json::from_str(&text_on(client, 201)).unwrap();
        assert_eq!(state["moves"], 1);
        assert_eq!(
            state["positions"]["ann"],
            serde_json::json!({"x": 3, "y": 4})
        );
    }
    b.send(To::Server, 200, Intent::Reliable, br#"{"x": 1, "y": 1}"#)
        .unwrap();
    let state: serde_json::Value = serde_json::from_str(&text_on(&mut a, 201)).unwrap();
    assert_eq!(state["moves"], 2, "the game data persists across messages");
}

#[test]
fn authoritative_example_moves_players_in_its_tick_loop_and_blocks_direct_messages() {
    let (server, _dir) = start_example("examples/authoritative.lua", &[]);
    let mut a = server.connect("world", "a");
    let mut b = server.connect("world", "b");
    a.send(To::Server, 1, Intent::Reliable, b"1,-1").unwrap();
    let moved = |client: &mut Client| loop {
        let snapshot: serde_json::Value = serde_json::from_str(&text_on(client, 2)).unwrap();
        let x = snapshot["players"]["1"]["x"].as_i64().unwrap();
        if x >= 10 {
            return (
                x,
                snapshot["players"]["1"]["y"].as_i64().unwrap(),
                snapshot["tick"].as_i64().unwrap(),
            );
        }
    };
    let (x, y, tick) = moved(&mut b);
    assert_eq!(y, -x, "moved along (1, -1) every tick");
    assert!(tick >= 2);
    a.send(To::AllOthers, 9, Intent::Reliable, b"cheat")
        .unwrap();
    let got = b
        .wait_for(
            Duration::from_millis(200),
            |e| matches!(e, Event::Delivery(d) if d.opcode == 9),
        )
        .err();
    assert!(got.is_some(), "players cannot message each other directly");
}

#[test]
fn dots_example_colours_players_and_clamps_positions_to_the_field() {
    use moonrt::rtdata::{RtData, RtValue};
    let (server, _dir) = start_example("examples/dots.lua", &[]);
    let mut a = server.connect("dots", "a");
    let colour = a
        .wait_for(WAIT, |e| matches!(e, Event::PlayerProps { .. }))
        .unwrap();
    assert!(
        matches!(&colour, Event::PlayerProps { peer: 1, props } if props == b"#e6194b"),
        "{colour:?}"
    );
    let mut b = server.connect("dots", "b");
    let mut position = RtData::new();
    position
        .set(1, RtValue::Double(5000.0))
        .set(2, RtValue::Double(-3.5));
    a.send(To::AllOthers, 1, Intent::Reliable, &position.encode())
        .unwrap();
    let seen = RtData::decode(&next_delivery(&mut b).payload).unwrap();
    assert_eq!(seen.get(1), Some(&RtValue::Double(800.0)));
    assert_eq!(seen.get(2), Some(&RtValue::Double(0.0)));
    // Not a position: dropped.
    a.send(To::AllOthers, 1, Intent::Reliable, b"garbage")
        .unwrap();
    assert_no_delivery(&mut b, Duration::from_millis(150));
}
