//! Who a player is: signed join tickets (JWT) on every transport (TCP, native WebSocket, the
//! sessionserver JSON mode), the shared token on every transport, and the deadlines every
//! WebSocket connection has. Each refusal is checked by the code a client sees.

mod common;

use common::*;
use moonrt::client::{Client, ClientError, Connect};
use moonrt::config::{AuthMode, Config};
use moonrt::core::Code;
use moonrt::core::codec::{self, ClientMsg, Hello, JoinMode, ServerMsg};
use serde_json::{Value, json};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tungstenite::{Message, WebSocket};

const SECRET: &str = "test-secret-test-secret-test-secret!";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn ticket_config() -> Config {
    let mut c = config();
    c.auth.mode = AuthMode::Ticket;
    c.auth.ticket_key = SECRET.into();
    c
}

/// A ticket signed with the server's key.
fn ticket(claims: Value) -> String {
    moonrt::core::auth::mint(&ticket_config(), None, &claims).unwrap()
}

/// A ticket for `player` to session `session` ("*": any), valid for a minute.
fn ticket_for(player: &str, session: &str) -> String {
    ticket(json!({"sub": player, "session": session, "exp": now() + 60}))
}

/// The ticket with one character of its signature changed.
fn tamper(t: &str) -> String {
    let mut bytes = t.as_bytes().to_vec();
    let i = bytes.len() - 10;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

/// A well-formed ticket signed with another key than the server's.
fn forged(player: &str, session: &str) -> String {
    let mut other = ticket_config();
    other.auth.ticket_key = "another-secret-another-secret-another".into();
    moonrt::core::auth::mint(
        &other,
        None,
        &json!({"sub": player, "session": session, "exp": now() + 60}),
    )
    .unwrap()
}

/// The REJECT code a native TCP client gets.
fn tcp_refusal(server: &TestServer, connect: Connect) -> (u16, String) {
    match Client::connect(server.addr, connect) {
        Err(ClientError::Rejected { code, message }) => (code, message),
        Err(e) => panic!("expected a REJECT, got {e}"),
        Ok(_) => panic!("expected a REJECT, got WELCOME"),
    }
}

/// What the server says to one native HELLO over WebSocket: WELCOME's session id, or the
/// REJECT's code.
fn ws_hello(server: &TestServer, query: &str, room: &str, token: &str) -> Result<u64, u16> {
    let addr = server.ws.unwrap();
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let (mut ws, _) = tungstenite::client(format!("ws://{addr}/{query}"), stream).unwrap();
    let mut frame = Vec::new();
    ClientMsg::Hello(Hello {
        version: 1,
        mode: JoinMode::JoinOrCreate(room),
        token,
        player_id: "",
        player_name: "web",
        payload: b"",
        stray_field: None,
    })
    .encode(&mut frame);
    ws.send(Message::Binary(frame.into())).unwrap();
    loop {
        match ws.read().unwrap() {
            Message::Binary(bytes) => {
                let (body, _) = codec::split_frame(&bytes, usize::MAX).unwrap().unwrap();
                return match ServerMsg::decode(body).unwrap() {
                    ServerMsg::Welcome(w) => Ok(w.session_id),
                    ServerMsg::Reject { code, .. } => Err(code),
                    other => panic!("unexpected {other:?}"),
                };
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// A sessionserver (JSON) connection whose upgrade request carries `query`.
fn json_client(server: &TestServer, query: &str) -> WebSocket<TcpStream> {
    let addr = server.ws.unwrap();
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    tungstenite::client(format!("ws://{addr}/{query}"), stream)
        .unwrap()
        .0
}

/// Reads until the server's close frame; its status code.
fn close_status(ws: &mut WebSocket<TcpStream>) -> u16 {
    loop {
        match ws.read() {
            Ok(Message::Close(Some(frame))) => return u16::from(frame.code),
            Ok(_) => {}
            Err(e) => panic!("expected a close frame, got {e}"),
        }
    }
}

/// The next text message.
fn next_text(ws: &mut WebSocket<TcpStream>) -> String {
    loop {
        match ws.read().unwrap() {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected text, got {other:?}"),
        }
    }
}

#[test]
fn a_ticket_admits_its_player_with_its_name_claims_and_session_params() {
    let (server, _dir) = start_script(
        ticket_config(),
        r#"
        return {
          on_player_join = function(p)
            rt.send(p.peer, 900, table.concat({p.id, p.name, tostring(p.claims.team),
              tostring((p.claims.data or {}).level), tostring(rt.session.params.map)}, "|"))
          end,
        }
        "#,
    );
    let t = ticket(json!({
        "sub": "u-42", "session": "arena", "exp": now() + 60, "name": "Ann",
        "team": "red", "data": {"level": 7}, "params": {"map": "dust"},
    }));
    // HELLO's own name is overridden by the ticket's; its player_id may be empty.
    let mut a = Client::connect(
        server.addr,
        Connect::join_or_create("arena").token(&t).name("Mallory"),
    )
    .unwrap();
    assert_eq!(text_on(&mut a, 900), "u-42|Ann|red|7|dust");
    // A second player's ticket joins the same session; the params were the creator's.
    let t = ticket(json!({"sub": "u-43", "session": "arena", "exp": now() + 60}));
    let mut b = Client::connect(server.addr, Connect::join_or_create("arena").token(&t)).unwrap();
    assert_eq!(b.session_id(), a.session_id());
    assert_eq!(text_on(&mut b, 900), "u-43||nil|nil|dust");
    assert_eq!(b.peers()[0].player_id, "u-42");
}

#[test]
fn forged_expired_tampered_and_misdirected_tickets_are_refused_over_tcp() {
    let server = TestServer::start(ticket_config());
    let join = |t: &str| Connect::join_or_create("arena").token(t);
    // No ticket at all.
    assert_eq!(
        tcp_refusal(&server, Connect::join_or_create("arena")).0,
        Code::InvalidTicket.as_u16()
    );
    // Signed with another key.
    let mut other = ticket_config();
    other.auth.ticket_key = "another-secret-another-secret-another".into();
    let forged = moonrt::core::auth::mint(
        &other,
        None,
        &json!({"sub": "u1", "session": "arena", "exp": now() + 60}),
    )
    .unwrap();
    let (code, why) = tcp_refusal(&server, join(&forged));
    assert_eq!(code, Code::InvalidTicket.as_u16());
    assert!(why.contains("signature"), "{why}");
    // Tampered: the payload of a good ticket swapped for another player's.
    let good = ticket_for("u1", "arena");
    let parts: Vec<&str> = good.split('.').collect();
    let other_payload = ticket_for("admin", "arena");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        other_payload.split('.').nth(1).unwrap(),
        parts[2]
    );
    assert_eq!(
        tcp_refusal(&server, join(&tampered)).0,
        Code::InvalidTicket.as_u16()
    );
    // Expired two minutes ago (beyond the 30 s clock skew).
    let expired = ticket(json!({"sub": "u1", "session": "arena", "exp": now() - 120}));
    let (code, why) = tcp_refusal(&server, join(&expired));
    assert_eq!(code, Code::TicketExpired.as_u16());
    assert!(why.contains("expired"), "{why}");
    // For another session: by name, and when creating.
    let elsewhere = ticket_for("u1", "other-room");
    assert_eq!(
        tcp_refusal(&server, join(&elsewhere)).0,
        Code::TicketWrongSession.as_u16()
    );
    assert_eq!(
        tcp_refusal(&server, Connect::create_named("arena").token(&elsewhere)).0,
        Code::TicketWrongSession.as_u16()
    );
    // HELLO claiming another player than the ticket's.
    let (code, why) = tcp_refusal(&server, join(&good).player_id("admin"));
    assert_eq!(code, Code::InvalidTicket.as_u16());
    assert!(why.contains("admin"), "{why}");
    // The good ticket still works.
    Client::connect(server.addr, join(&good)).unwrap();
}

#[test]
fn a_ticket_for_one_session_cannot_join_another_by_id() {
    let server = TestServer::start(ticket_config());
    let a = Client::connect(
        server.addr,
        Connect::join_or_create("private-room").token(&ticket_for("u1", "private-room")),
    )
    .unwrap();
    let lobby = ticket_for("u2", "lobby");
    assert_eq!(
        tcp_refusal(&server, Connect::join(a.session_id()).token(&lobby)).0,
        Code::TicketWrongSession.as_u16()
    );
    // By id, a ticket naming that id (or that name) gets in.
    let by_id = ticket(json!({"sub": "u2", "session_id": a.session_id(), "exp": now() + 60}));
    Client::connect(server.addr, Connect::join(a.session_id()).token(&by_id)).unwrap();
    let by_name = ticket_for("u3", "private-room");
    Client::connect(server.addr, Connect::join(a.session_id()).token(&by_name)).unwrap();
    // A ticket naming a session id cannot create a session.
    assert_eq!(
        tcp_refusal(&server, Connect::create().token(&by_id)).0,
        Code::TicketWrongSession.as_u16()
    );
}

#[test]
fn session_ids_are_random_unless_configured_sequential() {
    let server = TestServer::start(config());
    let ids: Vec<u64> = (0..4)
        .map(|i| {
            Client::connect(server.addr, Connect::create_named(&format!("r{i}")))
                .unwrap()
                .session_id()
        })
        .collect();
    // Not 1, 2, 3, 4; each exact in a JavaScript number.
    assert_ne!(ids, vec![1, 2, 3, 4]);
    assert!(ids.iter().all(|&id| id > 0 && id < 1 << 53), "{ids:?}");
    let mut c = config();
    c.sessions.sequential_ids = true;
    let server = TestServer::start(c);
    let a = Client::connect(server.addr, Connect::create()).unwrap();
    assert_eq!(a.session_id(), 1);
}

#[test]
fn a_refused_newcomer_never_disconnects_the_holder_of_its_player_id() {
    let server = TestServer::start(ticket_config());
    let mut holder = Client::connect(
        server.addr,
        Connect::join_or_create("arena").token(&ticket_for("u1", "arena")),
    )
    .unwrap();
    // A forged ticket, an expired one, and a valid one for another session, all claiming u1.
    let mut other = ticket_config();
    other.auth.ticket_key = "another-secret-another-secret-another".into();
    let forged = moonrt::core::auth::mint(
        &other,
        None,
        &json!({"sub": "u1", "session": "*", "exp": now() + 60}),
    )
    .unwrap();
    let expired = ticket(json!({"sub": "u1", "session": "*", "exp": now() - 600}));
    let misdirected = ticket_for("u1", "elsewhere");
    for (t, code) in [
        (forged, Code::InvalidTicket),
        (expired, Code::TicketExpired),
        (misdirected, Code::TicketWrongSession),
    ] {
        assert_eq!(
            tcp_refusal(&server, Connect::join_or_create("arena").token(&t)).0,
            code.as_u16()
        );
        // Without a ticket, claiming the id in HELLO is refused too.
        assert_eq!(
            tcp_refusal(&server, Connect::join_or_create("arena").player_id("u1")).0,
            Code::InvalidTicket.as_u16()
        );
    }
    holder.ping().unwrap();
    assert!(
        holder
            .wait_for(WAIT, |e| matches!(e, moonrt::client::Event::Pong { .. }))
            .is_ok(),
        "the holder is still connected"
    );
    // The real player reconnecting with a valid ticket does replace it.
    let _again = Client::connect(
        server.addr,
        Connect::join_or_create("arena").token(&ticket_for("u1", "arena")),
    )
    .unwrap();
    assert_eq!(closed_code(&mut holder), Code::Replaced.as_u16());
}

#[test]
fn tickets_are_checked_on_native_websocket_connections_in_hello_or_the_upgrade_url() {
    let server = TestServer::start(ticket_config());
    let room = "arena";
    let good = ticket_for("w1", "arena");
    assert!(ws_hello(&server, "", room, &good).is_ok());
    assert!(ws_hello(&server, &format!("?ticket={good}"), room, "").is_ok());
    assert_eq!(
        ws_hello(&server, "", room, ""),
        Err(Code::InvalidTicket.as_u16())
    );
    let expired = ticket(json!({"sub": "w1", "session": "arena", "exp": now() - 600}));
    assert_eq!(
        ws_hello(&server, &format!("?ticket={expired}"), room, ""),
        Err(Code::TicketExpired.as_u16())
    );
    assert_eq!(
        ws_hello(&server, "", room, &ticket_for("w1", "other")),
        Err(Code::TicketWrongSession.as_u16())
    );
    let tampered = tamper(&good);
    assert_eq!(
        ws_hello(&server, "", room, &tampered),
        Err(Code::InvalidTicket.as_u16())
    );
    assert_eq!(
        ws_hello(&server, "", room, &forged("w1", "arena")),
        Err(Code::InvalidTicket.as_u16())
    );
}

#[test]
fn sessionserver_connections_carry_their_ticket_on_the_upgrade_url() {
    let server = TestServer::start(ticket_config());
    let create = r#"{"command":"createSession","session":{},"player":{}}"#;
    // No ticket: the first command closes the connection with 4000 + 17.
    let mut ws = json_client(&server, "");
    ws.send(Message::text(create)).unwrap();
    assert_eq!(close_status(&mut ws), 4000 + Code::InvalidTicket.as_u16());
    // Expired: 4018.
    let expired = ticket(json!({"sub": "j1", "session": "*", "exp": now() - 600}));
    let mut ws = json_client(&server, &format!("?ticket={expired}"));
    ws.send(Message::text(create)).unwrap();
    assert_eq!(close_status(&mut ws), 4000 + Code::TicketExpired.as_u16());
    // Tampered: 4017.
    let any = ticket_for("j1", "*");
    let mut ws = json_client(&server, &format!("?ticket={}", tamper(&any)));
    ws.send(Message::text(create)).unwrap();
    assert_eq!(close_status(&mut ws), 4000 + Code::InvalidTicket.as_u16());
    // Signed with another key: 4017.
    let mut ws = json_client(&server, &format!("?ticket={}", forged("j1", "*")));
    ws.send(Message::text(create)).unwrap();
    assert_eq!(close_status(&mut ws), 4000 + Code::InvalidTicket.as_u16());
    // A good one: the package's answer, unchanged.
    let mut a = json_client(&server, &format!("?token={any}"));
    a.send(Message::text(create)).unwrap();
    assert_eq!(
        next_text(&mut a),
        r#"{"command":"sessionJoin","error":0,"sessionID":0,"playerID":4,"session":{},"player":{}}"#
    );
    // A ticket for sessionserver session 5 cannot join session 0: 4019.
    let for_five = ticket(json!({"sub": "j2", "session_id": 5, "exp": now() + 60}));
    let mut b = json_client(&server, &format!("?ticket={for_five}"));
    b.send(Message::text(r#"{"command":"joinSession","sessionID":0}"#))
        .unwrap();
    assert_eq!(
        close_status(&mut b),
        4000 + Code::TicketWrongSession.as_u16()
    );
    // One for session 0 can.
    let for_zero = ticket(json!({"sub": "j3", "session_id": 0, "exp": now() + 60}));
    let mut c = json_client(&server, &format!("?ticket={for_zero}"));
    c.send(Message::text(r#"{"command":"joinSession","sessionID":0}"#))
        .unwrap();
    assert!(next_text(&mut c).starts_with(r#"{"command":"sessionJoin","error":0"#));
}

#[test]
fn the_shared_token_is_required_on_every_transport() {
    let mut c = config();
    c.auth.mode = AuthMode::Token;
    c.auth.token = "s3cret".into();
    let server = TestServer::start(c);
    let room = "arena";
    assert_eq!(
        tcp_refusal(&server, Connect::join_or_create("arena")).0,
        Code::InvalidToken.as_u16()
    );
    Client::connect(
        server.addr,
        Connect::join_or_create("arena").token("s3cret"),
    )
    .unwrap();
    assert_eq!(
        ws_hello(&server, "", room, "wrong"),
        Err(Code::InvalidToken.as_u16())
    );
    assert!(ws_hello(&server, "?token=s3cret", room, "").is_ok());
    let create = r#"{"command":"createSession","session":{},"player":{}}"#;
    let mut ws = json_client(&server, "");
    ws.send(Message::text(create)).unwrap();
    assert_eq!(close_status(&mut ws), 4000 + Code::InvalidToken.as_u16());
    let mut ws = json_client(&server, "?token=s3cre");
    ws.send(Message::text(create)).unwrap();
    assert_eq!(close_status(&mut ws), 4000 + Code::InvalidToken.as_u16());
    let mut ws = json_client(&server, "?token=s3cret");
    ws.send(Message::text(create)).unwrap();
    assert!(next_text(&mut ws).starts_with(r#"{"command":"sessionJoin","error":0"#));
}

#[test]
fn silent_websockets_are_closed_at_the_handshake_deadline_and_cannot_hold_every_slot() {
    let mut c = config();
    c.server.handshake_timeout_ms = 300;
    c.server.max_connections = 4;
    let server = TestServer::start(c);
    let addr = server.ws.unwrap();
    // Four connections that upgrade and then say nothing, as in the slot-exhaustion attack.
    let started = Instant::now();
    let mut silent: Vec<_> = (0..4).map(|_| json_client(&server, "")).collect();
    for ws in &mut silent {
        assert_eq!(close_status(ws), 4000 + Code::HandshakeTimeout.as_u16());
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    // A TCP connection to the WebSocket port that never upgrades is closed too.
    let mut raw = TcpStream::connect(addr).unwrap();
    raw.set_read_timeout(Some(WAIT)).unwrap();
    let mut sink = [0u8; 64];
    let n = std::io::Read::read(&mut raw, &mut sink).unwrap_or(0);
    assert_eq!(n, 0, "closed without a word: no WebSocket to speak on");
    // The slots are free again: a real player gets in.
    assert!(ws_hello(&server, "", "arena", "").is_ok());
}

#[test]
fn a_sessionserver_connection_that_answers_no_ping_is_closed_at_the_idle_timeout() {
    let mut c = config();
    c.server.idle_timeout_ms = 1000;
    let server = TestServer::start(c);
    let create = r#"{"command":"createSession","session":{},"player":{}}"#;
    let mut quiet = json_client(&server, "");
    quiet.send(Message::text(create)).unwrap();
    next_text(&mut quiet);
    let mut alive = json_client(&server, "");
    alive
        .send(Message::text(r#"{"command":"joinSession","sessionID":0}"#))
        .unwrap();
    next_text(&mut alive);
    // `alive` reads (so its WebSocket library answers the server's pings); `quiet` does not
    // read at all, as a dead peer would.
    let until = Instant::now() + Duration::from_millis(2500);
    alive
        .get_mut()
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut pinged = false;
    let mut left = None;
    while Instant::now() < until {
        match alive.read() {
            Ok(Message::Ping(_)) => pinged = true,
            Ok(Message::Text(t)) => left = Some(t.to_string()),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                let _ = alive.flush();
            }
            Err(e) => panic!("the answering connection was closed: {e}"),
        }
    }
    assert!(pinged, "the server pinged a quiet sessionserver connection");
    assert_eq!(
        left.as_deref(),
        Some(r#"{"command":"playerLeave","error":0,"playerID":0}"#),
        "the silent one left its session"
    );
    assert_eq!(close_status(&mut quiet), 4000 + Code::IdleTimeout.as_u16());
}

#[test]
fn a_server_with_an_unusable_ticket_key_does_not_start() {
    let mut c = ticket_config();
    c.auth.ticket_algorithm = moonrt::config::TicketAlgorithm::EdDSA;
    c.auth.ticket_key = "not a pem".into();
    let err = match moonrt::net::NetServer::bind(c, moonrt::core::NoScript) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("started with a broken key"),
    };
    assert!(err.contains("auth.ticket_key"), "{err}");
}
