//! The native protocol over WebSocket, as a browser speaks it: binary messages carrying frames.
//! A WebSocket client and a TCP/UDP client share a session and message each other.

mod common;

use common::*;
use moonrt::client::To;
use moonrt::core::Code;
use moonrt::core::codec::{self, ClientMsg, Data, Hello, Intent, JoinMode, ServerMsg, Target};
use std::net::TcpStream;
use tungstenite::{Message, WebSocket};

/// What a browser client would hold: a WebSocket and what it decoded.
struct Browser {
    ws: WebSocket<TcpStream>,
    /// Frames decoded but not yet handed out (one message may hold several).
    queue: std::collections::VecDeque<Got>,
}

/// An owned view of a server message, for assertions.
#[derive(Debug, PartialEq)]
enum Got {
    Welcome(u16),
    Delivery {
        opcode: u32,
        sender: u16,
        payload: Vec<u8>,
    },
    Reject(u16),
    Other(u8),
}

impl Browser {
    fn open(server: &TestServer) -> Browser {
        let addr = server.ws.expect("WebSocket is on");
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let (ws, _) = tungstenite::client(format!("ws://{addr}/"), stream).unwrap();
        Browser {
            ws,
            queue: Default::default(),
        }
    }

    fn send(&mut self, msg: ClientMsg<'_>) {
        let mut frame = Vec::new();
        msg.encode(&mut frame);
        self.ws.send(Message::Binary(frame.into())).unwrap();
    }

    fn hello(&mut self, room: &str) -> u16 {
        self.send(ClientMsg::Hello(Hello {
            version: 1,
            mode: JoinMode::JoinOrCreate(room),
            token: "",
            player_id: "",
            player_name: "browser",
            payload: b"",
            stray_field: None,
        }));
        match self.next() {
            Got::Welcome(peer) => peer,
            other => panic!("expected WELCOME, got {other:?}"),
        }
    }

    /// The next frame; one binary message may hold several, handed out in order.
    fn next(&mut self) -> Got {
        while self.queue.is_empty() {
            let frames = self.next_frames();
            self.queue.extend(frames);
        }
        self.queue.pop_front().unwrap()
    }

    fn next_frames(&mut self) -> Vec<Got> {
        loop {
            match self.ws.read().unwrap() {
                Message::Binary(bytes) => {
                    let mut rest = &bytes[..];
                    let mut out = Vec::new();
                    while let Some((body, n)) = codec::split_frame(rest, usize::MAX).unwrap() {
                        out.push(match ServerMsg::decode(body).unwrap() {
                            ServerMsg::Welcome(w) => Got::Welcome(w.peer),
                            ServerMsg::Delivery {
                                opcode,
                                sender,
                                payload,
                                ..
                            } => Got::Delivery {
                                opcode,
                                sender,
                                payload: payload.to_vec(),
                            },
                            ServerMsg::Reject { code, .. } | ServerMsg::Close { code, .. } => {
                                Got::Reject(code)
                            }
                            _ => Got::Other(body[0]),
                        });
                        rest = &rest[n..];
                    }
                    assert!(rest.is_empty(), "frames never split across messages");
                    return out;
                }
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    fn next_delivery(&mut self) -> Got {
        loop {
            let got = self.next();
            if matches!(got, Got::Delivery { .. }) {
                return got;
            }
        }
    }
}

#[test]
fn a_browser_and_a_udp_client_in_one_session_message_each_other() {
    let server = TestServer::start(config());
    let mut browser = Browser::open(&server);
    assert_eq!(browser.hello("mixed"), 1);
    let mut native = server.connect("mixed", "native");
    native.bind_udp().unwrap();
    browser.send(ClientMsg::Data(Data {
        intent: Intent::Unreliable,
        opcode: 3,
        target: Target::AllOthers,
        payload: b"from the browser",
    }));
    let d = next_delivery(&mut native);
    assert_eq!(
        (d.sender, d.payload.as_slice(), d.via_udp),
        (1, &b"from the browser"[..], true)
    );
    // The browser has no UDP: unreliable traffic to it travels over the WebSocket.
    native
        .send(To::AllOthers, 4, Intent::Unreliable, b"fast")
        .unwrap();
    native
        .send(To::Peers(vec![1]), 5, Intent::Reliable, b"sure")
        .unwrap();
    // The two took different paths from the native client (UDP, TCP): no order between them.
    let mut got = [browser.next_delivery(), browser.next_delivery()];
    got.sort_by_key(|g| match g {
        Got::Delivery { opcode, .. } => *opcode,
        _ => 0,
    });
    assert_eq!(
        got,
        [
            Got::Delivery {
                opcode: 4,
                sender: 2,
                payload: b"fast".to_vec()
            },
            Got::Delivery {
                opcode: 5,
                sender: 2,
                payload: b"sure".to_vec()
            }
        ]
    );
}

#[test]
fn a_stray_text_message_from_a_native_player_closes_only_that_browser_with_a_code() {
    let server = TestServer::start(config());
    let mut a = server.connect("r", "a");
    let mut b = server.connect("r", "b");
    let mut browser = Browser::open(&server);
    browser.hello("r");
    browser
        .ws
        .send(Message::Text("{\"hello\": 1}".into()))
        .unwrap();
    assert_eq!(
        browser.next(),
        Got::Reject(Code::UnexpectedMessage.as_u16())
    );
    a.send(To::AllOthers, 1, Intent::Reliable, b"still fine")
        .unwrap();
    assert_eq!(next_delivery(&mut b).payload, b"still fine");
}

#[test]
fn an_oversized_message_closes_the_browser_with_frame_too_large() {
    let mut c = config();
    c.limits.max_frame_bytes = 1024;
    c.limits.max_output_buffer_bytes = 8192;
    let server = TestServer::start(c);
    let mut browser = Browser::open(&server);
    browser.hello("r");
    browser
        .ws
        .send(Message::Binary(vec![0u8; 5000].into()))
        .unwrap();
    assert_eq!(browser.next(), Got::Reject(Code::FrameTooLarge.as_u16()));
}

#[test]
fn websocket_pings_are_answered_and_native_pings_work_too() {
    let server = TestServer::start(config());
    let mut browser = Browser::open(&server);
    browser.hello("r");
    browser
        .ws
        .send(Message::Ping(b"hi".to_vec().into()))
        .unwrap();
    let pong = loop {
        if let Message::Pong(p) = browser.ws.read().unwrap() {
            break p;
        }
    };
    assert_eq!(&pong[..], b"hi");
    browser.send(ClientMsg::Ping { client_time: 77 });
    assert_eq!(browser.next(), Got::Other(codec::msg_type::PONG));
}

#[test]
fn a_native_close_is_repeated_in_the_websocket_close_status_as_4000_plus_the_code() {
    let server = TestServer::start(config());
    let mut browser = Browser::open(&server);
    browser.hello("r");
    browser.send(ClientMsg::Leave);
    assert_eq!(browser.next(), Got::Reject(Code::ClientLeft.as_u16()));
    let status = loop {
        match browser.ws.read() {
            Ok(Message::Close(Some(frame))) => break u16::from(frame.code),
            Ok(Message::Close(None)) => panic!("a close frame without a status"),
            Ok(_) => {}
            Err(e) => panic!("no close frame: {e}"),
        }
    };
    assert_eq!(status, 4000 + Code::ClientLeft.as_u16());
}

#[test]
fn a_flood_of_websocket_pings_or_empty_messages_is_rate_limited_and_spares_the_others() {
    let mut c = config();
    c.limits.max_messages_per_sec = 100;
    let server = TestServer::start(c);
    let mut native = server.connect("flood", "native");
    for empty in [false, true] {
        let mut browser = Browser::open(&server);
        browser.hello("flood");
        // Neither carries a frame, and each used to cost the server nothing but work.
        for _ in 0..2000 {
            let message = if empty {
                Message::Binary(Vec::new().into())
            } else {
                Message::Ping(b"p".to_vec().into())
            };
            if browser.ws.send(message).is_err() {
                break;
            }
        }
        let code = loop {
            match browser.ws.read() {
                Ok(Message::Close(Some(frame))) => break u16::from(frame.code),
                Ok(_) => {}
                Err(e) => panic!("no close frame: {e}"),
            }
        };
        assert_eq!(code, 4028, "empty={empty}: CLOSE 28 (rate limited)");
    }
    native.ping().unwrap();
    native
        .wait_for(WAIT, |e| matches!(e, moonrt::client::Event::Pong { .. }))
        .expect("the native player still gets answers");
}

#[test]
fn a_connection_that_never_upgrades_is_closed_at_its_handshake_deadline() {
    let mut c = config();
    c.server.handshake_timeout_ms = 300;
    let server = TestServer::start(c);
    for request in [&b""[..], b"GET / HTTP/1.1\r\nHost: x\r\n"] {
        let mut probe = TcpStream::connect(server.ws.unwrap()).unwrap();
        probe
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        std::io::Write::write_all(&mut probe, request).unwrap();
        let started = std::time::Instant::now();
        let mut buf = [0u8; 64];
        // EOF (nothing can be said to a connection that never upgraded), or a reset.
        let read = std::io::Read::read(&mut probe, &mut buf);
        let waited = started.elapsed();
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        // It used to wait for the 2 s close linger on top of the deadline (2.3 s here).
        assert!(
            waited < std::time::Duration::from_millis(1800),
            "closed {waited:?} after connecting, with a 300 ms deadline"
        );
    }
}
