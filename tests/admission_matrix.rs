//! One door into a session: every refusal the seat rules make, on every wire, answered with
//! that wire's documented code. Native TCP reads REJECT n; native WebSocket reads REJECT n and
//! the close status 4000 + n; GameSparks and GameLift clients read the close status 4000 + n;
//! a sessionserver client reads `sessionJoin` error 8, or the close status 4000 + n for its
//! credential (PROTOCOL.md sections 8, 12, 13, 16, 17).

mod common;

use common::vendor::*;
use common::*;
use moonrt::client::{Client, ClientError, Connect};
use moonrt::config::AuthMode;
use moonrt::core::codec::{self, ClientMsg, Hello, JoinMode, ServerMsg};
use std::net::{SocketAddr, TcpStream};
use tungstenite::Message;

const KEY: &str = "matrix-secret-shared-with-the-backend-0123";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Wire {
    NativeTcp,
    NativeWs,
    SessionServer,
    GameSparks,
    GameLift,
}

const WIRES: [Wire; 5] = [
    Wire::NativeTcp,
    Wire::NativeWs,
    Wire::SessionServer,
    Wire::GameSparks,
    Wire::GameLift,
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Case {
    Closed,
    Full,
    Draining,
    BadTicket,
    ExpiredTicket,
    OtherSessionsTicket,
    Vetoed,
    TooManySessions,
}

impl Case {
    /// The moonrt code of the refusal (PROTOCOL.md section 8).
    fn code(self) -> u16 {
        match self {
            Case::Closed => 9,
            Case::TooManySessions => 11,
            Case::Full => 12,
            Case::Vetoed => 15,
            Case::BadTicket => 17,
            Case::ExpiredTicket => 18,
            Case::OtherSessionsTicket => 19,
            Case::Draining => 22,
        }
    }

    fn tickets(self) -> bool {
        matches!(
            self,
            Case::BadTicket | Case::ExpiredTicket | Case::OtherSessionsTicket
        )
    }

    /// Whether the joiner asks for a session of its own rather than the host's.
    fn creates(self) -> bool {
        matches!(self, Case::Draining | Case::TooManySessions)
    }
}

/// What a refused joiner saw.
#[derive(Debug, PartialEq)]
enum Answer {
    /// REJECT with this code (native TCP).
    Reject(u16),
    /// REJECT with this code in a binary message, then this close status (native WebSocket).
    RejectThenClose(u16, u16),
    /// The WebSocket closed with this status.
    Closed(u16),
    /// A sessionserver error.
    SessionServerError(u8),
}

fn expected(case: Case, wire: Wire) -> Answer {
    let n = case.code();
    match wire {
        Wire::NativeTcp => Answer::Reject(n),
        Wire::NativeWs => Answer::RejectThenClose(n, 4000 + n),
        Wire::GameSparks | Wire::GameLift => Answer::Closed(4000 + n),
        Wire::SessionServer if case.tickets() => Answer::Closed(4000 + n),
        Wire::SessionServer => Answer::SessionServerError(8),
    }
}

/// A join ticket for `player`, signed with `key`, expiring `ttl_s` from now (negative: past).
fn ticket(key: &str, player: &str, mut claims: serde_json::Value, ttl_s: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    claims["sub"] = player.into();
    claims["exp"] = (now + ttl_s).into();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

/// The joiner's credential for the case (empty when the server is open).
fn joiner_ticket(case: Case, wire: Wire) -> String {
    let own = if wire == Wire::SessionServer {
        serde_json::json!({"session": "*"})
    } else {
        serde_json::json!({"session": "m"})
    };
    match case {
        Case::BadTicket => ticket("a-key-this-server-has-never-seen-at-all-x", "eve", own, 60),
        Case::ExpiredTicket => ticket(KEY, "late", own, -3600),
        Case::OtherSessionsTicket if wire == Wire::SessionServer => {
            ticket(KEY, "lost", serde_json::json!({"session_id": 77}), 60)
        }
        Case::OtherSessionsTicket => {
            ticket(KEY, "lost", serde_json::json!({"session": "elsewhere"}), 60)
        }
        _ => String::new(),
    }
}

fn server_for(case: Case) -> (TestServer, TempDir, SocketAddr) {
    let mut c = config();
    c.admin.listen = "127.0.0.1:0".into();
    match case {
        Case::Full => c.sessions.max_players = 1,
        Case::TooManySessions => c.server.max_sessions = 1,
        _ => {}
    }
    if case.tickets() {
        c.auth.mode = AuthMode::Ticket;
        c.auth.ticket_key = KEY.into();
    }
    let script = match case {
        Case::Closed => {
            "return { on_player_join = function() rt.configure_session{ open = false } end }"
        }
        Case::Vetoed => {
            r#"return { on_player_connect = function()
                 if rt.session.data.host then return false, "vetoed by the script" end
                 rt.session.data.host = true
               end }"#
        }
        _ => "return {}",
    };
    start_script_with_admin(c, script)
}

/// A sessionserver client, its upgrade carrying `ticket` if not empty.
fn json_client(server: &TestServer, ticket: &str) -> Ws {
    let addr = server.ws.expect("WebSocket is on");
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let url = if ticket.is_empty() {
        format!("ws://{addr}/")
    } else {
        format!("ws://{addr}/?ticket={ticket}")
    };
    let (ws, _) = tungstenite::client(url, stream).unwrap();
    Ws(ws)
}

fn json_send(ws: &mut Ws, text: &str) {
    ws.0.send(Message::text(text)).unwrap();
}

/// The next text message, or the close status.
fn json_next(ws: &mut Ws) -> Result<String, u16> {
    loop {
        match ws.0.read() {
            Ok(Message::Text(t)) => return Ok(t.to_string()),
            Ok(Message::Close(f)) => return Err(f.map_or(0, |f| u16::from(f.code))),
            Ok(_) => {}
            Err(e) => panic!("WebSocket: {e}"),
        }
    }
}

/// Puts a first player in: native "m", or sessionserver session 0. Held (never read) while
/// the case runs, so the session stays.
#[allow(dead_code, clippy::large_enum_variant)]
enum Host {
    Native(Client),
    Json(Ws),
}

fn host(server: &TestServer, case: Case, wire: Wire) -> Host {
    let host_ticket = || {
        let claims = if wire == Wire::SessionServer {
            serde_json::json!({"session": "*"})
        } else {
            serde_json::json!({"session": "m"})
        };
        ticket(KEY, "host", claims, 60)
    };
    if wire == Wire::SessionServer {
        let mut ws = json_client(
            server,
            &if case.tickets() {
                host_ticket()
            } else {
                String::new()
            },
        );
        json_send(
            &mut ws,
            r#"{"command":"createSession","session":{},"player":{}}"#,
        );
        let welcome = json_next(&mut ws).unwrap();
        assert!(
            welcome.contains(r#""error":0,"sessionID":0"#),
            "{case:?}: {welcome}"
        );
        return Host::Json(ws);
    }
    let mut opts = Connect::join_or_create("m").name("host");
    if case.tickets() {
        opts = opts.token(&host_ticket());
    }
    Host::Native(Client::connect(server.addr, opts).expect("the host joins"))
}

/// The joiner tries to get in on `wire`; what it was answered.
fn attempt(server: &TestServer, case: Case, wire: Wire) -> Answer {
    let credential = joiner_ticket(case, wire);
    let session = if case.creates() { "fresh" } else { "m" };
    match wire {
        Wire::NativeTcp => {
            let mut opts = Connect::join_or_create(session).name("joiner");
            if !credential.is_empty() {
                opts = opts.token(&credential);
            }
            match Client::connect(server.addr, opts) {
                Err(ClientError::Rejected { code, .. }) => Answer::Reject(code),
                other => panic!(
                    "{case:?}: expected REJECT, got {:?}",
                    other.map(|c| c.session_id())
                ),
            }
        }
        Wire::NativeWs => {
            let mut ws = Ws::open(server);
            let mut frame = Vec::new();
            ClientMsg::Hello(Hello {
                version: 1,
                mode: JoinMode::JoinOrCreate(session),
                token: &credential,
                player_id: "",
                player_name: "joiner",
                payload: b"",
                stray_field: None,
            })
            .encode(&mut frame);
            ws.send(frame);
            let message = ws.message().expect("REJECT before the close");
            let (body, _) = codec::split_frame(&message, usize::MAX).unwrap().unwrap();
            let ServerMsg::Reject { code, .. } = ServerMsg::decode(body).unwrap() else {
                panic!("{case:?}: expected REJECT");
            };
            Answer::RejectThenClose(code, ws.closed())
        }
        Wire::GameSparks => {
            let mut ws = Ws::open(server);
            ws.send(gs_login(&vendor_token(&credential, session)));
            Answer::Closed(ws.closed())
        }
        Wire::GameLift => {
            let mut ws = Ws::open(server);
            ws.send(gl_login(&vendor_token(&credential, session), b""));
            let result = gl_packet(&mut ws).expect("a login result before the close");
            assert_eq!(gl_op(&result), -1, "LOGIN_RESULT");
            let login = fields(get_bytes(&result, 31).unwrap_or(&[]));
            assert_eq!(get_int(&login, 1), None, "{case:?}: success is false");
            Answer::Closed(ws.closed())
        }
        Wire::SessionServer => {
            let mut ws = json_client(server, &credential);
            if case.creates() {
                json_send(
                    &mut ws,
                    r#"{"command":"createSession","session":{},"player":{}}"#,
                );
            } else {
                json_send(&mut ws, r#"{"command":"joinSession","sessionID":0}"#);
            }
            match json_next(&mut ws) {
                Ok(text) if text == r#"{"command":"sessionJoin","error":8}"# => {
                    Answer::SessionServerError(8)
                }
                Ok(text) => panic!("{case:?}: expected error 8, got {text}"),
                Err(status) => Answer::Closed(status),
            }
        }
    }
}

/// A vendor login token for `session` with the case's ticket as its credential.
fn vendor_token(credential: &str, session: &str) -> String {
    if credential.is_empty() {
        session.to_owned()
    } else {
        format!("session={session}&token={credential}")
    }
}

fn drain(admin: SocketAddr) {
    let status = http_agent()
        .post(format!("http://{admin}/api/drain"))
        .header("Content-Type", "application/json")
        .send_empty()
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 202);
}

#[test]
fn every_refusal_is_answered_with_its_code_on_every_wire() {
    let cases = [
        Case::Closed,
        Case::Full,
        Case::Draining,
        Case::BadTicket,
        Case::ExpiredTicket,
        Case::OtherSessionsTicket,
        Case::Vetoed,
        Case::TooManySessions,
    ];
    let mut seen = Vec::new();
    for case in cases {
        for wire in WIRES {
            let (server, _dir, admin) = server_for(case);
            let _host = host(&server, case, wire);
            if case == Case::Draining {
                drain(admin);
            }
            let answer = attempt(&server, case, wire);
            assert_eq!(answer, expected(case, wire), "{case:?} on {wire:?}");
            seen.push((case, wire));
        }
    }
    assert_eq!(seen.len(), 40);
}

#[test]
fn a_closed_session_refuses_a_sessionserver_joiner_as_it_refuses_a_native_one() {
    // The defect this door fixed: after rt.configure_session{ open = false }, a native joiner
    // got REJECT 9 while a sessionserver joiner was seated.
    let (server, _dir, _admin) = server_for(Case::Closed);
    let _host = host(&server, Case::Closed, Wire::SessionServer);
    let mut joiner = json_client(&server, "");
    json_send(&mut joiner, r#"{"command":"joinSession","sessionID":0}"#);
    assert_eq!(
        json_next(&mut joiner).unwrap(),
        r#"{"command":"sessionJoin","error":8}"#
    );
}
