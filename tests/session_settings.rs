//! Per-session settings (from the creating ticket or the script, within the server-wide
//! limits) and the all-players group, over real sockets.

mod common;

use common::*;
use moonrt::client::{Client, ClientError, Connect, Event, To};
use moonrt::config::AuthMode;
use moonrt::core::codec::Intent;
use moonrt::core::{ALL_PLAYERS_GROUP, Code};
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn refusal(result: Result<Client, ClientError>) -> u16 {
    match result {
        Err(ClientError::Rejected { code, .. }) => code,
        Err(e) => panic!("expected a REJECT, got {e}"),
        Ok(_) => panic!("expected a REJECT, got WELCOME"),
    }
}

#[test]
fn a_creating_ticket_sets_the_sessions_player_limit_within_the_servers() {
    let secret = "settings-secret-settings-secret-32b!";
    let mut c = config();
    c.auth.mode = AuthMode::Ticket;
    c.auth.ticket_key = secret.into();
    let server = TestServer::start(c.clone());
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 60;
    let ticket = |player: &str, settings: serde_json::Value| {
        moonrt::core::auth::mint(
            &c,
            None,
            &json!({"sub": player, "session": "duel", "exp": exp, "settings": settings}),
        )
        .unwrap()
    };
    let join = |t: &str| Client::connect(server.addr, Connect::join_or_create("duel").token(t));
    let _a = join(&ticket("a", json!({"max_players": 2}))).unwrap();
    // Joiners' settings do not change a session that exists.
    let _b = join(&ticket("b", json!({"max_players": 8}))).unwrap();
    assert_eq!(
        refusal(join(&ticket("c", json!(null)))),
        Code::SessionFull.as_u16()
    );
    // Beyond the server's own limit (16): refused, nothing created.
    let over = moonrt::core::auth::mint(
        &c,
        None,
        &json!({"sub": "d", "session": "*", "exp": exp, "settings": {"max_players": 99}}),
    )
    .unwrap();
    let result = Client::connect(server.addr, Connect::create_named("big").token(&over));
    assert_eq!(refusal(result), Code::InvalidTicket.as_u16());
    let odd = moonrt::core::auth::mint(
        &c,
        None,
        &json!({"sub": "d", "session": "*", "exp": exp, "settings": {"tick": 5}}),
    )
    .unwrap();
    let result = Client::connect(server.addr, Connect::create_named("odd").token(&odd));
    assert_eq!(refusal(result), Code::InvalidTicket.as_u16());
}

#[test]
fn the_script_configures_its_session_in_on_session_start() {
    let mut c = config();
    c.sessions.empty_session_linger_ms = 60_000;
    let (server, _dir) = start_script(
        c,
        r#"
        return {
          on_session_start = function()
            rt.configure_session{ max_players = 2, linger_ms = 0 }
          end,
          on_player_join = function(p)
            local ok, err = pcall(rt.configure_session, { max_players = 17 })
            rt.send(p.peer, 900, rt.session.max_players .. " " .. rt.session.linger_ms .. " "
              .. tostring(ok) .. " " .. tostring(err):match("max_players 17 is not within 1 to 16") )
          end,
        }
        "#,
    );
    let mut a = server.connect("room", "a");
    assert_eq!(
        text_on(&mut a, 900),
        "2 0 false max_players 17 is not within 1 to 16"
    );
    let b = server.connect("room", "b");
    assert_eq!(
        refusal(Client::connect(
            server.addr,
            Connect::join_or_create("room")
        )),
        Code::SessionFull.as_u16()
    );
    // Linger 0: the empty session ends at once, though the server would keep it a minute.
    let sid = a.session_id();
    drop(a);
    drop(b);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        refusal(Client::connect(server.addr, Connect::join(sid))),
        Code::SessionNotFound.as_u16()
    );
}

#[test]
fn the_all_players_group_reaches_everyone_and_cannot_be_joined() {
    let (server, _dir) = start_script(
        config(),
        r#"
        return {
          on_message = function(packet)
            rt.send(packet.sender, 901, table.concat(rt.group_members(rt.ALL_PLAYERS), ","))
            rt.send_group_members(5, packet.sender)
            rt.send_group_members(rt.ALL_PLAYERS, "all")
          end,
        }
        "#,
    );
    let mut a = server.connect("g", "a");
    let mut b = server.connect("g", "b");
    let mut c = server.connect("g", "c");
    a.send(
        To::Group(ALL_PLAYERS_GROUP),
        7,
        Intent::Reliable,
        b"to everyone",
    )
    .unwrap();
    assert_eq!(next_delivery(&mut b).payload, b"to everyone");
    assert_eq!(next_delivery(&mut c).payload, b"to everyone");
    a.query_group(ALL_PLAYERS_GROUP).unwrap();
    let members = a
        .wait_for(WAIT, |e| matches!(e, Event::GroupMembers { .. }))
        .unwrap();
    assert!(
        matches!(&members, Event::GroupMembers { group: ALL_PLAYERS_GROUP, members } if members == &vec![1, 2, 3]),
        "{members:?}"
    );
    b.join_group(ALL_PLAYERS_GROUP).unwrap();
    let refused = b
        .wait_for(WAIT, |e| matches!(e, Event::Error { .. }))
        .unwrap();
    assert!(
        matches!(
            refused,
            Event::Error {
                code: 32,
                detail: 65535,
                ..
            }
        ),
        "{refused:?}"
    );
    // The script sees everyone and can send a group's membership to whom it chooses.
    b.join_group(5).unwrap();
    c.send(To::Server, 1, Intent::Reliable, b"").unwrap();
    assert_eq!(text_on(&mut c, 901), "1,2,3");
    let sent = c
        .wait_for(WAIT, |e| matches!(e, Event::GroupMembers { group: 5, .. }))
        .unwrap();
    assert!(
        matches!(&sent, Event::GroupMembers { members, .. } if members == &vec![2]),
        "{sent:?}"
    );
    let everyone = a
        .wait_for(WAIT, |e| {
            matches!(
                e,
                Event::GroupMembers {
                    group: ALL_PLAYERS_GROUP,
                    ..
                }
            )
        })
        .unwrap();
    assert!(matches!(&everyone, Event::GroupMembers { members, .. } if members.len() == 3));
}
