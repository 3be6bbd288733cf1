//! The sessionserver JSON profile over WebSocket text messages, compared byte for byte with what
//! the npm package `sessionserver` 0.2.5 sends (`tests/fixtures/sessionserver`), plus the error
//! codes only moonrt can produce (1, 3 and 8) and the session script's view of these players.

mod common;

use common::*;
use moonrt::core::Code;
use moonrt::core::codec::{self, ClientMsg, Hello, JoinMode, ServerMsg};
use std::collections::HashMap;
use std::net::{Shutdown, TcpStream};
use std::time::Duration;
use tungstenite::{Message, WebSocket};

/// A browser game speaking the sessionserver protocol.
struct JsonClient {
    ws: WebSocket<TcpStream>,
}

impl JsonClient {
    fn open(server: &TestServer) -> JsonClient {
        let addr = server.ws.expect("WebSocket is on");
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let (ws, _) = tungstenite::client(format!("ws://{addr}/"), stream).unwrap();
        JsonClient { ws }
    }

    fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).unwrap();
    }

    /// The next text message.
    fn next(&mut self) -> String {
        loop {
            match self.ws.read().expect("a message before the timeout") {
                Message::Text(text) => return text.to_string(),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    /// Asserts nothing arrives for `wait`.
    fn assert_quiet(&mut self, wait: Duration) {
        self.ws.get_mut().set_read_timeout(Some(wait)).unwrap();
        match self.ws.read() {
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            other => panic!("expected nothing, got {other:?}"),
        }
        self.ws.get_mut().set_read_timeout(Some(WAIT)).unwrap();
    }

    /// The close frame's code and reason.
    fn closed(&mut self) -> (u16, String) {
        loop {
            match self.ws.read() {
                Ok(Message::Close(Some(frame))) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// Drops the connection without a word, as a crashed browser tab does.
    fn drop_connection(self) {
        let _ = self.ws.get_ref().shutdown(Shutdown::Both);
    }
}

#[test]
fn replays_the_reference_transcript_byte_for_byte() {
    let transcript: serde_json::Value = serde_json::from_str(include_str!(
        "fixtures/sessionserver/reference_transcript.json"
    ))
    .unwrap();
    let server = TestServer::start(config());
    let mut clients: HashMap<String, JsonClient> = HashMap::new();
    let mut compared = 0;
    for (n, step) in transcript["steps"].as_array().unwrap().iter().enumerate() {
        if let Some(name) = step["open"].as_str() {
            clients.insert(name.to_owned(), JsonClient::open(&server));
        } else if let Some(name) = step["send"].as_str() {
            clients
                .get_mut(name)
                .unwrap()
                .send(step["text"].as_str().unwrap());
        } else if let Some(name) = step["drop"].as_str() {
            clients.remove(name).unwrap().drop_connection();
        }
        for (name, expected) in step["received"].as_object().unwrap() {
            let client = clients.get_mut(name).unwrap();
            for want in expected.as_array().unwrap() {
                let got = client.next();
                assert_eq!(
                    got,
                    want.as_str().unwrap(),
                    "step {n} ({step}), client {name}"
                );
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 60, "every recorded message was compared");
    for client in clients.values_mut() {
        client.assert_quiet(Duration::from_millis(200));
    }
}

/// A native player over WebSocket: HELLO in a binary message, then its WELCOME.
fn native_browser(server: &TestServer) -> JsonClient {
    let mut browser = JsonClient::open(server);
    let mut frame = Vec::new();
    ClientMsg::Hello(Hello {
        version: 1,
        mode: JoinMode::JoinOrCreate("native"),
        token: "",
        player_id: "",
        player_name: "n",
        payload: b"",
        stray_field: None,
    })
    .encode(&mut frame);
    browser.ws.send(Message::Binary(frame.into())).unwrap();
    match browser.ws.read().unwrap() {
        Message::Binary(bytes) => {
            let (body, _) = codec::split_frame(&bytes, usize::MAX).unwrap().unwrap();
            assert!(matches!(
                ServerMsg::decode(body).unwrap(),
                ServerMsg::Welcome(_)
            ));
        }
        other => panic!("expected WELCOME, got {other:?}"),
    }
    browser
}

#[test]
fn a_native_player_is_an_unknown_connection_to_sessionserver_commands() {
    let server = TestServer::start(config());
    let mut native = native_browser(&server);
    for (command, answer) in [
        (
            r#"{"command":"updatePlayer","player":{}}"#,
            r#"{"command":"playerUpdate","error":1}"#,
        ),
        (
            r#"{"command":"updateSession","session":{},"player":{}}"#,
            r#"{"command":"sessionUpdate","error":1}"#,
        ),
        (
            r#"{"command":"leaveSession"}"#,
            r#"{"command":"sessionLeave","error":1}"#,
        ),
        (
            r#"{"command":"createSession","session":{},"player":{}}"#,
            r#"{"command":"sessionJoin","error":4}"#,
        ),
        (
            r#"{"command":"joinSession","sessionID":-1}"#,
            r#"{"command":"sessionJoin","error":5}"#,
        ),
    ] {
        native.send(command);
        assert_eq!(native.next(), answer);
    }
}

#[test]
fn a_full_session_answers_join_with_error_8() {
    let mut c = config();
    c.sessions.max_players = 1;
    let server = TestServer::start(c);
    let mut a = JsonClient::open(&server);
    let mut b = JsonClient::open(&server);
    a.send(r#"{"command":"createSession","session":{},"player":{}}"#);
    assert_eq!(
        a.next(),
        r#"{"command":"sessionJoin","error":0,"sessionID":0,"playerID":0,"session":{},"player":{}}"#
    );
    b.send(r#"{"command":"joinSession","sessionID":0}"#);
    assert_eq!(b.next(), r#"{"command":"sessionJoin","error":8}"#);
    a.assert_quiet(Duration::from_millis(100));
}

const SCRIPT: &str = r#"
local M = {}
function M.on_player_connect(player, payload)
  if payload:find("banned", 1, true) then
    return false, "banned players stay out"
  end
end
function M.on_player_join(player)
  rt.log.info("sessionserver player " .. player.id .. " joined as peer " .. player.peer)
end
function M.on_player_props(player, props)
  local data = rt.json.decode(props)
  if data.name == "game over" then
    rt.end_session("game over")
    return true
  end
  if data.name == "rename me" then
    rt.set_player_props(player.peer, '{"name":"renamed by the server"}')
  end
  if data.name == "kick me" then
    rt.kick(player.peer, "asked for it")
  end
  return data.name ~= "cheater"
end
function M.on_player_leave(player, reason)
  rt.set_session_props('{"left":"' .. player.id .. '","reason":"' .. reason .. '"}')
end
return M
"#;

#[test]
fn the_script_refuses_a_joiner_with_error_8_and_refuses_an_update_with_error_4() {
    let (server, _dir) = start_script(config(), SCRIPT);
    let mut a = JsonClient::open(&server);
    a.send(r#"{"command":"createSession","session":{},"player":{"name":""},"note":"banned"}"#);
    assert_eq!(a.next(), r#"{"command":"sessionJoin","error":8}"#);
    // The refused creator's session was discarded: there is nothing to join.
    a.send(r#"{"command":"joinSession","sessionID":-1}"#);
    assert_eq!(a.next(), r#"{"command":"sessionJoin","error":6}"#);
    a.send(r#"{"command":"createSession","session":{},"player":{"name":""}}"#);
    assert_eq!(
        a.next(),
        r#"{"command":"sessionJoin","error":0,"sessionID":1,"playerID":0,"session":{},"player":{"name":""}}"#
    );
    a.send(r#"{"command":"updatePlayer","player":{"name":"cheater"}}"#);
    assert_eq!(a.next(), r#"{"command":"playerUpdate","error":4}"#);
    assert_eq!(
        a.next(),
        r#"{"command":"playerUpdate","error":0,"playerID":0,"player":{"name":""}}"#
    );
}

#[test]
fn a_session_the_script_ends_tells_its_players_sessionleave_error_3_and_frees_them() {
    let (server, _dir) = start_script(config(), SCRIPT);
    let mut a = JsonClient::open(&server);
    let mut b = JsonClient::open(&server);
    a.send(r#"{"command":"createSession","session":{"round":1},"player":{"name":""}}"#);
    a.next();
    b.send(r#"{"command":"joinSession","sessionID":0}"#);
    b.next();
    b.next();
    a.next();
    a.send(r#"{"command":"updatePlayer","player":{"name":"game over"}}"#);
    assert_eq!(a.next(), r#"{"command":"sessionLeave","error":3}"#);
    assert_eq!(b.next(), r#"{"command":"sessionLeave","error":3}"#);
    a.send(r#"{"command":"updatePlayer","player":{"name":"x"}}"#);
    assert_eq!(a.next(), r#"{"command":"playerUpdate","error":2}"#);
    b.send(r#"{"command":"joinSession","sessionID":0}"#);
    assert_eq!(b.next(), r#"{"command":"sessionJoin","error":7}"#);
    b.send(r#"{"command":"createSession","session":{},"player":{}}"#);
    assert_eq!(
        b.next(),
        r#"{"command":"sessionJoin","error":0,"sessionID":1,"playerID":1,"session":{},"player":{}}"#
    );
}

#[test]
fn the_script_sees_players_leave_and_sets_their_data_as_json() {
    let (server, _dir) = start_script(config(), SCRIPT);
    let mut a = JsonClient::open(&server);
    let mut b = JsonClient::open(&server);
    a.send(r#"{"command":"createSession","session":{},"player":{"name":""}}"#);
    a.next();
    b.send(r#"{"command":"joinSession","sessionID":-1}"#);
    b.next();
    b.next();
    a.next();
    // The script answers a rename with its own data, after the player's own update.
    a.send(r#"{"command":"updatePlayer","player":{"name":"rename me"}}"#);
    let renamed = r#"{"command":"playerUpdate","error":0,"playerID":0,"player":{"name":"renamed by the server"}}"#;
    let asked =
        r#"{"command":"playerUpdate","error":0,"playerID":0,"player":{"name":"rename me"}}"#;
    for client in [&mut a, &mut b] {
        assert_eq!(client.next(), renamed);
        assert_eq!(client.next(), asked);
    }
    // A player's leave reaches the script, whose session data change everyone hears.
    b.send(r#"{"command":"leaveSession"}"#);
    assert_eq!(b.next(), r#"{"command":"sessionLeave","error":0}"#);
    assert_eq!(
        a.next(),
        r#"{"command":"playerLeave","error":0,"playerID":1}"#
    );
    assert_eq!(
        a.next(),
        r#"{"command":"sessionUpdate","error":0,"session":{"left":"1","reason":"client_left"},"player":{"name":""}}"#
    );
    // Kicked: the others hear playerLeave; the kicked one gets a close frame with the code.
    b.send(r#"{"command":"joinSession","sessionID":0}"#);
    for _ in 0..2 {
        b.next();
    }
    a.next();
    b.send(r#"{"command":"updatePlayer","player":{"name":"kick me"}}"#);
    assert_eq!(
        b.closed(),
        (4000 + Code::Kicked.as_u16(), "asked for it".to_owned())
    );
    assert_eq!(
        a.next(),
        r#"{"command":"playerLeave","error":0,"playerID":1}"#
    );
}

#[test]
fn a_binary_message_on_a_sessionserver_connection_closes_only_it() {
    let server = TestServer::start(config());
    let mut a = JsonClient::open(&server);
    let mut b = JsonClient::open(&server);
    a.send(r#"{"command":"createSession","session":{},"player":{}}"#);
    a.next();
    b.send(r#"{"command":"joinSession","sessionID":0}"#);
    b.next();
    b.next();
    a.next();
    b.ws.send(Message::Binary(vec![1, 0, 0, 0, 9].into()))
        .unwrap();
    let (code, _) = b.closed();
    assert_eq!(code, 4000 + Code::UnexpectedMessage.as_u16());
    assert_eq!(
        a.next(),
        r#"{"command":"playerLeave","error":0,"playerID":1}"#
    );
    a.send(r#"{"command":"updatePlayer","player":{}}"#);
    assert_eq!(
        a.next(),
        r#"{"command":"playerUpdate","error":0,"playerID":0,"player":{}}"#
    );
}

#[test]
fn a_native_client_cannot_join_a_sessionserver_session_by_its_core_id() {
    let mut c = config();
    // Numbered 1, 2, 3...: the native client below knows the core id without being told.
    c.sessions.sequential_ids = true;
    let server = TestServer::start(c);
    let mut a = JsonClient::open(&server);
    a.send(r#"{"command":"createSession","session":{},"player":{}}"#);
    a.next();
    // The server's first session has core id 1: this one.
    match moonrt::client::Client::connect(server.addr, moonrt::client::Connect::join(1)) {
        Err(moonrt::client::ClientError::Rejected { code, message }) => {
            assert_eq!(code, Code::SessionNotFound.as_u16());
            assert!(message.contains("sessionserver"), "{message}");
        }
        Err(other) => panic!("expected a REJECT, got {other}"),
        Ok(_) => panic!("a native client joined a sessionserver session"),
    }
    a.send(r#"{"command":"updatePlayer","player":{}}"#);
    assert_eq!(
        a.next(),
        r#"{"command":"playerUpdate","error":0,"playerID":0,"player":{}}"#
    );
}

#[test]
fn a_port_probe_that_never_upgrades_takes_no_player_id() {
    let server = TestServer::start(config());
    let addr = server.ws.expect("WebSocket is on");
    // A load balancer's TCP health check, then one that sends a plain HTTP request.
    drop(TcpStream::connect(addr).unwrap());
    {
        use std::io::{Read, Write};
        let mut probe = TcpStream::connect(addr).unwrap();
        probe.set_read_timeout(Some(WAIT)).unwrap();
        probe
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        let _ = probe.read_to_end(&mut answer);
    }
    let mut a = JsonClient::open(&server);
    a.send(r#"{"command":"createSession","session":{},"player":{}}"#);
    assert_eq!(
        a.next(),
        r#"{"command":"sessionJoin","error":0,"sessionID":0,"playerID":0,"session":{},"player":{}}"#,
        "the first WebSocket player is player 0, as with the package"
    );
}
