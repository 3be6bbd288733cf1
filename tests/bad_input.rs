//! Each kind of bad input gets its documented reaction and costs only its sender.

mod common;

use common::*;
use moonrt::client::{Client, Connect, Event, To};
use moonrt::core::Code;
use moonrt::core::codec::{self, ClientMsg, Hello, Intent, JoinMode, ServerMsg};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

/// A raw TCP connection, for sending what a well-behaved client never would.
fn raw(server: &TestServer) -> TcpStream {
    let s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// A HELLO that joins (or creates) `room` as `name`.
fn hello(room: &str, name: &str) -> Vec<u8> {
    let mut hello = Vec::new();
    ClientMsg::Hello(Hello {
        version: 1,
        mode: JoinMode::JoinOrCreate(room),
        token: "",
        player_id: "",
        player_name: name,
        payload: b"",
        stray_field: None,
    })
    .encode(&mut hello);
    hello
}

fn raw_joined(server: &TestServer, room: &str) -> TcpStream {
    let mut s = raw(server);
    s.write_all(&hello(room, "raw")).unwrap();
    s
}

/// Reads until the server closes; returns (type, code) of every frame, code 0 if none.
fn frames_until_close(s: &mut TcpStream) -> Vec<(u8, u16)> {
    let mut bytes = Vec::new();
    let _ = s.read_to_end(&mut bytes);
    let mut out = Vec::new();
    let mut rest = &bytes[..];
    while let Ok(Some((body, n))) = codec::split_frame(rest, usize::MAX) {
        let code = match ServerMsg::decode(body).unwrap() {
            ServerMsg::Reject { code, .. } | ServerMsg::Close { code, .. } => code,
            _ => 0,
        };
        out.push((body[0], code));
        rest = &rest[n..];
    }
    out
}

/// The last frame before close: (type, code).
fn final_frame(s: &mut TcpStream) -> (u8, u16) {
    *frames_until_close(s).last().expect("a final frame")
}

/// Two honest players still talk after whatever happened.
fn assert_others_fine(a: &mut Client, b: &mut Client) {
    a.send(To::AllOthers, 1, Intent::Reliable, b"still fine")
        .unwrap();
    assert_eq!(next_delivery(b).payload, b"still fine");
}

#[test]
fn http_request_instead_of_hello_is_rejected_as_oversized_frame() {
    let server = TestServer::start(config());
    let mut a = server.connect("room", "a");
    let mut b = server.connect("room", "b");
    let mut s = raw(&server);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(
        final_frame(&mut s),
        (codec::msg_type::REJECT, Code::FrameTooLarge.as_u16())
    );
    assert_others_fine(&mut a, &mut b);
}

#[test]
fn frame_over_the_limit_closes_the_sender_and_others_hear_why() {
    let mut c = config();
    c.limits.max_frame_bytes = 1024;
    c.limits.max_output_buffer_bytes = 4096;
    let server = TestServer::start(c);
    let mut a = server.connect("room", "a");
    let mut s = raw_joined(&server, "room");
    let mut frame = 2000u32.to_le_bytes().to_vec();
    frame.extend_from_slice(&[codec::msg_type::DATA; 2000]);
    s.write_all(&frame).unwrap();
    assert_eq!(
        final_frame(&mut s),
        (codec::msg_type::CLOSE, Code::FrameTooLarge.as_u16())
    );
    assert_player_left(&mut a, 2, Code::FrameTooLarge);
}

#[test]
fn truncated_frame_then_hangup_is_a_lost_connection_for_the_others() {
    let server = TestServer::start(config());
    let mut a = server.connect("room", "a");
    let mut b = server.connect("room", "b");
    let mut s = raw_joined(&server, "room");
    s.write_all(&[20, 0, 0, 0, codec::msg_type::DATA, 0])
        .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let left = a
        .wait_for(WAIT, |e| matches!(e, Event::PlayerLeft { peer: 3, .. }))
        .unwrap();
    assert_eq!(
        left,
        Event::PlayerLeft {
            peer: 3,
            reason: Code::ConnectionLost.as_u16()
        }
    );
    assert_others_fine(&mut a, &mut b);
}

#[test]
fn unknown_message_type_closes_with_its_code() {
    let server = TestServer::start(config());
    let mut s = raw_joined(&server, "room");
    s.write_all(&[1, 0, 0, 0, 0x5a]).unwrap();
    assert_eq!(
        final_frame(&mut s),
        (codec::msg_type::CLOSE, Code::UnknownMessageType.as_u16())
    );
}

#[test]
fn data_before_the_handshake_is_rejected() {
    let server = TestServer::start(config());
    let mut s = raw(&server);
    let mut data = Vec::new();
    ClientMsg::Ping { client_time: 1 }.encode(&mut data);
    s.write_all(&data).unwrap();
    assert_eq!(
        final_frame(&mut s),
        (codec::msg_type::REJECT, Code::UnexpectedMessage.as_u16())
    );
}

#[test]
fn opcode_zero_gets_a_non_fatal_error_and_nothing_is_relayed() {
    let server = TestServer::start(config());
    let mut a = server.connect("room", "a");
    let mut b = server.connect("room", "b");
    a.send(To::AllOthers, 0, Intent::Reliable, b"zero").unwrap();
    let err = a
        .wait_for(WAIT, |e| matches!(e, Event::Error { .. }))
        .unwrap();
    assert!(matches!(err, Event::Error { code, .. } if code == Code::InvalidOpcode.as_u16()));
    assert_no_delivery(&mut b, Duration::from_millis(100));
    assert_others_fine(&mut a, &mut b);
}

#[test]
fn unknown_target_peer_gets_an_error_and_the_known_ones_still_receive() {
    let server = TestServer::start(config());
    let mut a = server.connect("room", "a");
    let mut b = server.connect("room", "b");
    a.send(To::Peers(vec![2, 77]), 6, Intent::Reliable, b"hi")
        .unwrap();
    assert_eq!(next_delivery(&mut b).payload, b"hi");
    let err = a
        .wait_for(WAIT, |e| matches!(e, Event::Error { .. }))
        .unwrap();
    assert!(matches!(err, Event::Error { code, ref message, detail }
        if code == Code::UnknownPeer.as_u16() && message.contains("77") && detail == 77));
}

#[test]
fn client_that_never_says_hello_is_rejected_after_the_handshake_timeout() {
    let mut c = config();
    c.server.handshake_timeout_ms = 200;
    let server = TestServer::start(c);
    let mut s = raw(&server);
    assert_eq!(
        final_frame(&mut s),
        (codec::msg_type::REJECT, Code::HandshakeTimeout.as_u16())
    );
}

#[test]
fn connections_past_max_connections_are_refused_with_server_full() {
    let mut c = config();
    c.server.max_connections = 2;
    let server = TestServer::start(c);
    let mut a = server.connect("room", "a");
    let mut b = server.connect("room", "b");
    let refused = Client::connect(server.addr, Connect::join_or_create("room")).err();
    assert!(
        matches!(refused, Some(moonrt::client::ClientError::Rejected { code, .. })
            if code == Code::ServerFull.as_u16()),
        "{refused:?}"
    );
    assert_others_fine(&mut a, &mut b);
}

#[test]
fn slow_reader_is_disconnected_with_output_overflow_and_the_rest_play_on() {
    let mut c = config();
    c.limits.max_frame_bytes = 16 * 1024;
    c.limits.max_output_buffer_bytes = 64 * 1024;
    c.limits.max_messages_per_sec = 100_000;
    let server = TestServer::start(c);
    let mut a = server.connect("room", "a");
    let mut b = server.connect("room", "b");
    // Joins, then never reads: the kernel buffers fill, then the server's cap is passed.
    let mut slow = raw_joined(&server, "room");
    let payload = vec![9u8; 8 * 1024];
    for _ in 0..2000 {
        a.send(To::Peers(vec![3]), 1, Intent::Reliable, &payload)
            .unwrap();
        if let Some(Event::PlayerLeft { .. }) = a.next_event(Duration::ZERO).unwrap() {
            break;
        }
    }
    assert_player_left(&mut b, 3, Code::OutputOverflow);
    assert_others_fine(&mut a, &mut b);
    slow.set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let _ = slow.read(&mut [0u8; 16]);
}

#[test]
fn a_client_still_sending_when_closed_reads_the_close_frame_not_a_reset() {
    let server = TestServer::start(config());
    let mut a = server.connect("room", "a");
    // A client with a tiny receive window that has not read for a while: the server's last
    // bytes wait in its socket while the client is still busy sending.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let mut s: TcpStream = socket.into();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(&hello("room", "busy")).unwrap();
    a.wait_for(WAIT, |e| matches!(e, Event::PlayerJoined { .. }))
        .expect("the busy client joins");
    for _ in 0..6 {
        a.send(To::Peers(vec![2]), 1, Intent::Reliable, &[5u8; 1000])
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    // A frame of an unknown type, then 200 KB more: the server closes it mid-stream, and
    // closing a socket with unread input would make the kernel reset the connection, throwing
    // away the CLOSE frame the client has not read yet.
    let mut bad = vec![1, 0, 0, 0, 0x5a];
    bad.extend(std::iter::repeat_n(0u8, 200 * 1024));
    let _ = s.write_all(&bad);
    std::thread::sleep(Duration::from_millis(100));
    let mut bytes = Vec::new();
    let read = s.read_to_end(&mut bytes);
    assert!(read.is_ok(), "the connection ends with a FIN, not {read:?}");
    let mut rest = &bytes[..];
    let mut last = None;
    while let Ok(Some((body, n))) = codec::split_frame(rest, usize::MAX) {
        last = Some(match ServerMsg::decode(body).unwrap() {
            ServerMsg::Close { code, .. } => Some(code),
            _ => None,
        });
        rest = &rest[n..];
    }
    assert_eq!(last, Some(Some(Code::UnknownMessageType.as_u16())));
}
