//! Frame sync (lockstep) over real sockets: every player receives the same frames, numbered
//! without gaps, with the same seed and the inputs sent during each; the script sees and
//! amends each frame and may refuse a request; missed frames can be asked for again.

mod common;

use common::*;
use moonrt::client::{Client, Event};
use moonrt::core::Code;

const SCRIPT: &str = r#"
return {
  on_frame_sync = function(player, on, rate)
    return player.name ~= "mallory"
  end,
  on_frame = function(frame)
    if frame.number % 5 == 0 then
      table.insert(frame.inputs, { peer = 0, payload = "tick " .. frame.number })
    end
  end,
}
"#;

type Frame = (u32, u32, Vec<(u16, Vec<u8>)>);

/// Frames `1..=last` as a client received them.
fn frames_until(client: &mut Client, last: u32) -> Vec<Frame> {
    let mut got = Vec::new();
    while got.last().is_none_or(|(n, _, _)| *n < last) {
        match client
            .wait_for(WAIT, |e| matches!(e, Event::Frame { .. }))
            .expect("a frame")
        {
            Event::Frame {
                number,
                seed,
                inputs,
            } => got.push((number, seed, inputs)),
            _ => unreachable!(),
        }
    }
    got
}

#[test]
fn every_player_gets_the_same_frames_in_the_same_order() {
    let (server, _dir) = start_script(config(), SCRIPT);
    let mut a = server.connect("lockstep", "a");
    let mut b = server.connect("lockstep", "b");
    let mut c = server.connect("lockstep", "c");
    a.frame_sync(true, 30).unwrap();
    for client in [&mut a, &mut b, &mut c] {
        let state = client
            .wait_for(WAIT, |e| matches!(e, Event::FrameSyncState { .. }))
            .unwrap();
        assert!(
            matches!(
                state,
                Event::FrameSyncState {
                    on: true,
                    rate: 30,
                    ..
                }
            ),
            "{state:?}"
        );
    }
    a.frame_input(b"a-left").unwrap();
    b.frame_input(b"b-jump").unwrap();
    let seen = [
        frames_until(&mut a, 12),
        frames_until(&mut b, 12),
        frames_until(&mut c, 12),
    ];
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[1], seen[2]);
    let numbers: Vec<u32> = seen[0].iter().map(|f| f.0).collect();
    assert_eq!(numbers, (1..=12).collect::<Vec<_>>(), "no gaps");
    assert!(seen[0].iter().all(|f| f.1 == seen[0][0].1), "one seed");
    let all_inputs: Vec<&(u16, Vec<u8>)> = seen[0].iter().flat_map(|f| &f.2).collect();
    assert!(all_inputs.contains(&&(a.peer_id(), b"a-left".to_vec())));
    assert!(all_inputs.contains(&&(b.peer_id(), b"b-jump".to_vec())));
    // The script amended frames 5 and 10.
    assert_eq!(seen[0][4].2.last(), Some(&(0, b"tick 5".to_vec())));
    assert_eq!(seen[0][9].2.last(), Some(&(0, b"tick 10".to_vec())));

    // Missed frames are sent again, as they were.
    c.request_frames(2, 3).unwrap();
    for expected in &seen[2][1..4] {
        // Live frames (13, 14, ...) keep coming; the copies of 2-4 are among them.
        match c
            .wait_for(
                WAIT,
                |e| matches!(e, Event::Frame { number, .. } if (2..=4).contains(number)),
            )
            .unwrap()
        {
            Event::Frame {
                number,
                seed,
                inputs,
            } => assert_eq!(&(number, seed, inputs), expected),
            _ => unreachable!(),
        }
    }

    // A late joiner is told frame sync runs.
    let mut d = server.connect("lockstep", "d");
    let state = d
        .wait_for(WAIT, |e| matches!(e, Event::FrameSyncState { .. }))
        .unwrap();
    assert!(matches!(state, Event::FrameSyncState { on: true, .. }));

    // The script refuses mallory's request; stopping works for others.
    let mut mallory = server.connect("lockstep", "mallory");
    mallory.frame_sync(false, 0).unwrap();
    let refused = mallory
        .wait_for(WAIT, |e| matches!(e, Event::Error { .. }))
        .unwrap();
    assert!(
        matches!(refused, Event::Error { code, .. } if code == Code::FrameSyncRefused.as_u16()),
        "{refused:?}"
    );
    b.frame_sync(false, 0).unwrap();
    let off = d
        .wait_for(WAIT, |e| {
            matches!(e, Event::FrameSyncState { on: false, .. })
        })
        .unwrap();
    assert!(matches!(off, Event::FrameSyncState { on: false, .. }));
    a.frame_input(b"too late").unwrap();
    let err = a
        .wait_for(WAIT, |e| matches!(e, Event::Error { .. }))
        .unwrap();
    assert!(
        matches!(err, Event::Error { code, .. } if code == Code::NotInFrameSync.as_u16()),
        "{err:?}"
    );
}

#[test]
fn the_script_starts_frame_sync_and_a_bad_rate_is_refused() {
    let (server, _dir) = start_script(
        config(),
        "return { on_player_join = function(p) if p.peer == 2 then rt.frame_sync.start(20) end end }",
    );
    let mut a = server.connect("s", "a");
    a.frame_sync(true, 0).unwrap();
    let refused = a
        .wait_for(WAIT, |e| matches!(e, Event::Error { .. }))
        .unwrap();
    assert!(
        matches!(refused, Event::Error { code: 37, .. }),
        "{refused:?}"
    );
    let _b = server.connect("s", "b");
    let state = a
        .wait_for(WAIT, |e| matches!(e, Event::FrameSyncState { .. }))
        .unwrap();
    assert!(matches!(
        state,
        Event::FrameSyncState {
            on: true,
            rate: 20,
            ..
        }
    ));
    let frames = frames_until(&mut a, 3);
    assert_eq!(
        frames.iter().map(|f| f.0).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

#[test]
fn one_player_cannot_fill_a_frame_for_the_others() {
    let (server, _dir) = start_script(config(), "return {}");
    let mut a = server.connect("f", "a");
    let mut b = server.connect("f", "b");
    // One frame a second: the inputs below all land in frame 1.
    a.frame_sync(true, 1).unwrap();
    a.wait_for(WAIT, |e| matches!(e, Event::FrameSyncState { .. }))
        .unwrap();
    // 3 x 4000 bytes (each with its 4-byte header): the third passes the 8192-byte share.
    for _ in 0..3 {
        a.frame_input(&[7u8; 4000]).unwrap();
    }
    let full = a
        .wait_for(WAIT, |e| matches!(e, Event::Error { .. }))
        .unwrap();
    assert!(
        matches!(full, Event::Error { code, .. } if code == Code::NotInFrameSync.as_u16()),
        "{full:?}"
    );
    b.frame_input(b"still room for me").unwrap();
    let frame = frames_until(&mut b, 1).remove(0);
    let sizes: Vec<(u16, usize)> = frame.2.iter().map(|(p, i)| (*p, i.len())).collect();
    assert_eq!(
        sizes,
        vec![(a.peer_id(), 4000), (a.peer_id(), 4000), (b.peer_id(), 17)]
    );
}

#[test]
fn empty_inputs_cost_their_header_so_a_flood_of_them_is_capped() {
    let mut c = config();
    c.limits.max_messages_per_sec = 100_000;
    let (server, _dir) = start_script(c, "return {}");
    let mut a = server.connect("f", "a");
    let mut b = server.connect("f", "b");
    a.frame_sync(true, 1).unwrap();
    a.wait_for(WAIT, |e| matches!(e, Event::FrameSyncState { .. }))
        .unwrap();
    // 3000 empty inputs: only 8192 / 4 = 2048 fit in one player's share of the frame.
    for _ in 0..3000 {
        a.frame_input(b"").unwrap();
    }
    let frame = frames_until(&mut b, 1).remove(0);
    assert_eq!(frame.2.len(), 2048);
}
