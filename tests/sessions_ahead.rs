//! Sessions a game backend creates before players arrive (`POST /api/sessions`), the search
//! for open seats (`GET /api/sessions?free_seats=...`), join mode 5 ("join any listed session
//! with a free seat, else create one"), sessions a script closes to newcomers, and
//! `rt.json.encode` / `rt.format_number` compared with what Node's `JSON.stringify` and
//! `String(n)` write. Real server, real admin HTTP, real clients on 127.0.0.1.

mod common;

use common::*;
use moonrt::client::{Client, ClientError, Connect};
use moonrt::config::{AuthMode, Config};
use moonrt::core::Code;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const SECRET: &str = "the-backend-and-moonrt-share-this";

struct Answer {
    status: u16,
    body: Value,
}

fn agent() -> ureq::Agent {
    http_agent()
}

fn answer(mut response: ureq::http::Response<ureq::Body>) -> Answer {
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    Answer { status, body }
}

fn get(admin: SocketAddr, path: &str) -> Answer {
    answer(agent().get(format!("http://{admin}{path}")).call().unwrap())
}

fn create(admin: SocketAddr, body: &str) -> Answer {
    answer(
        agent()
            .post(format!("http://{admin}/api/sessions"))
            .header("Content-Type", "application/json")
            .send(body)
            .unwrap(),
    )
}

fn ids(answer: &Answer) -> Vec<u64> {
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_u64().unwrap())
        .collect()
}

fn admin_config() -> Config {
    let mut c = config();
    c.admin.listen = "127.0.0.1:0".into();
    c.sessions.empty_session_linger_ms = 60_000;
    c
}

/// A server with a script and the admin listener; its admin address.
fn start(config: Config, script: &str) -> (TestServer, TempDir, SocketAddr) {
    start_script_with_admin(config, script)
}

/// A join ticket for a session id, as a backend signs it.
fn ticket(player: &str, session_id: u64) -> String {
    sign_ticket(SECRET, player, json!({"session_id": session_id}))
}

fn rejected(result: Result<Client, ClientError>) -> u16 {
    match result {
        Err(ClientError::Rejected { code, .. }) => code,
        Err(e) => panic!("expected a REJECT, got {e}"),
        Ok(c) => panic!("expected a REJECT, joined session {}", c.session_id()),
    }
}

/// Records what the session saw when it started, and tells each player on join.
const RACE: &str = r#"
local M = {}
function M.on_session_start(session)
  rt.session.data.players_at_start = #rt.players()
  rt.session.data.track = rt.session.params.track
  rt.session.data.laps = rt.session.params.laps
end
function M.on_player_join(player)
  local d = rt.session.data
  rt.send(player.peer, 1, rt.json.encode({
    players_at_start = d.players_at_start, track = d.track, laps = d.laps,
    max_players = rt.session.max_players, you = player.id,
  }))
end
return M
"#;

#[test]
fn a_backend_creates_a_session_over_http_and_ticketed_players_join_it() {
    let mut c = admin_config();
    c.auth.mode = AuthMode::Ticket;
    c.auth.ticket_key = SECRET.into();
    let (server, _dir, admin) = start(c, RACE);

    // GameLift CreateGameSession: properties and a player limit, before any player.
    let created = create(
        admin,
        r#"{"name": "race-7", "params": {"track": "dunes", "laps": 3},
            "settings": {"max_players": 2, "linger_ms": 60000}}"#,
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let sid = created.body["id"].as_u64().unwrap();
    assert_eq!(created.body["name"], "race-7");
    assert_eq!(created.body["players"], json!([]));
    assert_eq!(created.body["free_seats"], 2);
    assert_eq!(created.body["params"], json!({"track": "dunes", "laps": 3}));
    assert_eq!(created.body["join"], json!({"mode": 2, "session_id": sid}));
    let connect = &created.body["connect"];
    assert_eq!(connect["host"], "127.0.0.1");
    assert_eq!(connect["tcp"], server.addr.port());
    assert_eq!(
        connect["ws"],
        format!("ws://127.0.0.1:{}/", server.ws.unwrap().port())
    );
    // The script's on_session_start ran at creation.
    let listed = get(admin, &format!("/api/sessions/{sid}"));
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["script_generation"], 1);

    // CreatePlayerSession: the backend signs a ticket per player for that session id.
    let to = |player: &str| {
        let host: SocketAddr = format!(
            "{}:{}",
            connect["host"].as_str().unwrap(),
            connect["tcp"].as_u64().unwrap()
        )
        .parse()
        .unwrap();
        Client::connect(host, Connect::join(sid).token(&ticket(player, sid)))
    };
    let mut ann = to("ann").expect("ann joins");
    let mut bo = to("bo").expect("bo joins");
    assert_eq!((ann.session_id(), bo.session_id()), (sid, sid));
    for (client, id) in [(&mut ann, "ann"), (&mut bo, "bo")] {
        let seen: Value = serde_json::from_slice(&next_delivery(client).payload).unwrap();
        assert_eq!(
            seen,
            json!({"players_at_start": 0, "track": "dunes", "laps": 3, "max_players": 2, "you": id})
        );
    }
    // The limit from creation holds; a ticket for another session gets nowhere.
    assert_eq!(rejected(to("cy")), Code::SessionFull.as_u16());
    let elsewhere = Client::connect(
        server.addr,
        Connect::join(sid).token(&ticket("cy", sid ^ 1)),
    );
    assert_eq!(rejected(elsewhere), Code::TicketWrongSession.as_u16());
    // The seat search no longer lists it; without a filter it is there, full.
    assert_eq!(
        ids(&get(admin, "/api/sessions?free_seats=1")),
        Vec::<u64>::new()
    );
    let all = get(admin, "/api/sessions");
    assert_eq!(ids(&all), vec![sid]);
    assert_eq!(all.body[0]["free_seats"], 0);
    assert_eq!(all.body[0]["players"].as_array().unwrap().len(), 2);
}

#[test]
fn a_session_nobody_joins_ends_when_its_linger_time_from_creation_runs_out() {
    let (_server, _dir, admin) = start(admin_config(), RACE);
    let short = create(admin, r#"{"settings": {"linger_ms": 200}}"#);
    let long = create(admin, r#"{}"#);
    assert_eq!((short.status, long.status), (201, 201));
    let (short, long) = (
        short.body["id"].as_u64().unwrap(),
        long.body["id"].as_u64().unwrap(),
    );
    assert_eq!(get(admin, &format!("/api/sessions/{short}")).status, 200);
    let deadline = Instant::now() + WAIT;
    while get(admin, &format!("/api/sessions/{short}")).status == 200 {
        assert!(Instant::now() < deadline, "the empty session never ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The other keeps the server's 60 s linger.
    assert_eq!(ids(&get(admin, "/api/sessions")), vec![long]);
}

#[test]
fn a_player_joining_before_the_linger_runs_out_keeps_the_session() {
    let (server, _dir, admin) = start(admin_config(), RACE);
    let sid = create(admin, r#"{"settings": {"linger_ms": 300}}"#).body["id"]
        .as_u64()
        .unwrap();
    let ann = Client::connect(server.addr, Connect::join(sid).player_id("ann")).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let session = get(admin, &format!("/api/sessions/{sid}"));
    assert_eq!(
        session.status, 200,
        "the linger from creation did not end a joined session"
    );
    assert_eq!(session.body["players"][0]["id"], "ann");
    assert_eq!(ann.session_id(), sid);
}

#[test]
fn the_seat_search_returns_only_open_sessions_with_free_seats_that_match() {
    let (server, _dir, admin) = start(admin_config(), RACE);
    let new = |body: &str| {
        let a = create(admin, body);
        assert_eq!(a.status, 201, "{}", a.body);
        a.body["id"].as_u64().unwrap()
    };
    let full = new(
        r#"{"name": "duel-a", "params": {"mode": "duel", "map": 4.0}, "settings": {"max_players": 2}}"#,
    );
    let half = new(
        r#"{"name": "duel-b", "params": {"mode": "duel", "map": 4}, "settings": {"max_players": 2}}"#,
    );
    let ffa = new(
        r#"{"name": "ffa-a", "params": {"mode": "ffa", "ranked": true}, "settings": {"max_players": 4}}"#,
    );
    let join = |sid: u64, who: &str| {
        Client::connect(server.addr, Connect::join(sid).player_id(who)).expect("joins")
    };
    let _players = [
        join(full, "a1"),
        join(full, "a2"),
        join(half, "b1"),
        join(ffa, "c1"),
    ];
    assert_eq!(
        ids(&get(admin, "/api/sessions?free_seats=1&param.mode=duel")),
        vec![half]
    );
    // Numbers match as JavaScript writes them: 4.0 is "4".
    assert_eq!(
        ids(&get(admin, "/api/sessions?free_seats=1&param.map=4")),
        vec![half]
    );
    assert_eq!(
        ids(&get(admin, "/api/sessions?param.map=4.0")),
        Vec::<u64>::new()
    );
    assert_eq!(ids(&get(admin, "/api/sessions?free_seats=2")), vec![ffa]);
    assert_eq!(
        ids(&get(admin, "/api/sessions?param.ranked=true")),
        vec![ffa]
    );
    // Placement order: the fullest first.
    assert_eq!(
        ids(&get(admin, "/api/sessions?free_seats=1")),
        vec![half, ffa]
    );
    let mut by_prefix = ids(&get(admin, "/api/sessions?name_prefix=duel-"));
    by_prefix.sort();
    let mut duels = vec![full, half];
    duels.sort();
    assert_eq!(by_prefix, duels);
    // A typo is an error, not a wider search.
    let typo = get(admin, "/api/sessions?freeseats=1");
    assert_eq!(typo.status, 400);
    assert!(typo.body["error"].as_str().unwrap().contains("freeseats"));
}

#[test]
fn join_mode_5_fills_a_listed_session_before_creating_another() {
    let mut c = admin_config();
    c.sessions.max_players = 2;
    let (server, _dir, admin) = start(c, RACE);
    let any = |params: &[(&str, &str)], who: &str| {
        Client::connect(server.addr, Connect::join_any(params).name(who)).expect("placed")
    };
    // A private room made by join-or-create is never chosen.
    let private = server.connect("friends", "f");
    let a = any(&[("mode", "duel")], "a");
    let b = any(&[("mode", "duel")], "b");
    let c = any(&[("mode", "duel")], "c");
    let d = any(&[("mode", "ffa")], "d");
    assert_eq!(a.session_id(), b.session_id(), "b fills a's room");
    assert_ne!(
        c.session_id(),
        a.session_id(),
        "a's room is full: a new one"
    );
    assert_ne!(
        d.session_id(),
        c.session_id(),
        "other parameters: a new one"
    );
    assert_ne!(a.session_id(), private.session_id());
    let mut e = any(&[("mode", "duel")], "e");
    assert_eq!(e.session_id(), c.session_id(), "the room with a free seat");
    // The created session's parameters are the HELLO's, as strings, for the script too.
    let seen: Value = serde_json::from_slice(&next_delivery(&mut e).payload).unwrap();
    assert_eq!(seen["players_at_start"], 0);
    let session = get(admin, &format!("/api/sessions/{}", c.session_id()));
    assert_eq!(session.body["params"], json!({"mode": "duel"}));
    assert_eq!(session.body["listed"], true);

    // A backend-made listed session with numeric parameters is found by their text.
    let made = create(
        admin,
        r#"{"listed": true, "params": {"mode": "duel", "map": 4.0}}"#,
    );
    let made = made.body["id"].as_u64().unwrap();
    let f = any(&[("mode", "duel"), ("map", "4")], "f");
    assert_eq!(f.session_id(), made);
    // Bad parameters are refused with a clear code.
    let repeated = Client::connect(
        server.addr,
        Connect::join_any(&[("mode", "a"), ("mode", "b")]),
    );
    assert_eq!(rejected(repeated), Code::BadHello.as_u16());
}

#[test]
fn a_session_its_script_closed_turns_newcomers_away_with_code_9() {
    const CLOSE_AT_TWO: &str = r#"
local M = {}
function M.on_player_join(player)
  if #rt.players() == 2 then
    rt.configure_session{open = false}
    rt.send(player.peer, 2, tostring(rt.session.open))
  end
end
return M
"#;
    let (server, _dir, admin) = start(admin_config(), CLOSE_AT_TWO);
    let sid = create(admin, r#"{"listed": true, "settings": {"max_players": 4}}"#).body["id"]
        .as_u64()
        .unwrap();
    let _a = Client::connect(server.addr, Connect::join(sid).player_id("a")).unwrap();
    let mut b = Client::connect(server.addr, Connect::join(sid).player_id("b")).unwrap();
    assert_eq!(text_on(&mut b, 2), "false");
    let late = Client::connect(server.addr, Connect::join(sid).player_id("c"));
    assert_eq!(rejected(late), Code::SessionClosed.as_u16());
    let session = get(admin, &format!("/api/sessions/{sid}"));
    assert_eq!(
        (
            session.body["open"].clone(),
            session.body["free_seats"].clone()
        ),
        (json!(false), json!(0))
    );
    assert_eq!(
        ids(&get(admin, "/api/sessions?free_seats=1")),
        Vec::<u64>::new()
    );
    // Join mode 5 passes it by and makes a new room.
    let placed = Client::connect(server.addr, Connect::join_any(&[]).player_id("d")).unwrap();
    assert_ne!(placed.session_id(), sid);
}

#[test]
fn session_creation_refuses_bad_requests_with_a_reason() {
    let (_server, _dir, admin) = start(admin_config(), RACE);
    assert_eq!(create(admin, r#"{"name": "x"}"#).status, 201);
    let cases = [
        (r#"{"name": "x"}"#, 409, "exists"),
        (r#"{"params": [1, 2]}"#, 400, "object"),
        (r#"{"players": 2}"#, 400, "unknown field"),
        (
            r#"{"settings": {"max_players": 100}}"#,
            400,
            "max_players 100",
        ),
        (r#"{"settings": {"linger_ms": 0}}"#, 400, "linger"),
        (r#"not json"#, 400, "not a session"),
    ];
    for (body, status, says) in cases {
        let a = create(admin, body);
        assert_eq!(a.status, status, "{body}: {}", a.body);
        let error = a.body["error"].as_str().unwrap();
        assert!(error.contains(says), "{body}: {error}");
    }
    let huge = format!(r#"{{"name": "{}"}}"#, "n".repeat(70_000));
    assert_eq!(create(admin, &huge).status, 413);
    // Only the first session was made.
    assert_eq!(ids(&get(admin, "/api/sessions")).len(), 1);
}

#[test]
fn session_creation_needs_the_admin_token_and_stops_while_draining() {
    let mut c = admin_config();
    c.admin.token = "ops-secret".into();
    let (_server, _dir, admin) = start(c, RACE);
    let unauthorized = create(admin, "{}");
    assert_eq!(unauthorized.status, 401);
    let with_token = |body: &str| {
        answer(
            agent()
                .post(format!("http://{admin}/api/sessions"))
                .header("Authorization", "Bearer ops-secret")
                .send(body)
                .unwrap(),
        )
    };
    assert_eq!(with_token("{}").status, 201);
    let drain = answer(
        agent()
            .post(format!("http://{admin}/api/drain"))
            .header("Authorization", "Bearer ops-secret")
            .send_empty()
            .unwrap(),
    );
    assert_eq!(drain.status, 202);
    let refused = with_token("{}");
    assert_eq!(refused.status, 503);
    assert_eq!(refused.body["code"], Code::ShuttingDown.as_u16());
}

#[test]
fn a_failing_on_session_start_is_a_500_with_the_scripts_reason() {
    const BROKEN: &str = r#"
local M = {}
function M.on_session_start(session)
  if rt.session.params.explode then error("no track named " .. rt.session.params.track) end
end
return M
"#;
    let mut c = admin_config();
    c.script.on_error = moonrt::config::OnError::EndSession;
    let (_server, _dir, admin) = start(c, BROKEN);
    let failed = create(admin, r#"{"params": {"explode": true, "track": "moon"}}"#);
    assert_eq!(failed.status, 500, "{}", failed.body);
    assert_eq!(failed.body["code"], Code::ScriptFailed.as_u16());
    assert!(
        failed.body["error"]
            .as_str()
            .unwrap()
            .contains("no track named moon"),
        "{}",
        failed.body
    );
    assert!(
        failed.body["error"]
            .as_str()
            .unwrap()
            .contains("no track named moon")
    );
    assert_eq!(ids(&get(admin, "/api/sessions")), Vec::<u64>::new());
    assert_eq!(
        create(admin, r#"{"params": {"track": "moon"}}"#).status,
        201
    );
}

/// Numbers a script puts in JSON or text, written by Lua here and by JavaScript in Node.
const NUMBERS_LUA: &str = "4.0, -0.0, 3, -7, 0.5, 2^53, 2^53 + 2.0, math.maxinteger, \
    1e21, 1.5e300, 1e-7, 1.2e-7, 5e-324, 0.1 + 0.2, 123456789012345680000.0, 1/3, 100.0, 1e20";
const NUMBERS_JS: &str = "4.0, -0.0, 3, -7, 0.5, 2**53, 2**53 + 2, 9223372036854775807, \
    1e21, 1.5e300, 1e-7, 1.2e-7, 5e-324, 0.1 + 0.2, 123456789012345680000, 1/3, 100.0, 1e20";

#[test]
fn rt_json_encode_writes_numbers_as_node_json_stringify_does() {
    let node = std::process::Command::new("node")
        .arg("-e")
        .arg(format!(
            "const v = [{NUMBERS_JS}]; \
             console.log(JSON.stringify(v)); \
             console.log([...v, NaN, Infinity, -Infinity].map(String).join(' '));"
        ))
        .output();
    let node = match node {
        Ok(out) if out.status.success() => String::from_utf8(out.stdout).unwrap(),
        _ => {
            assert!(
                std::env::var_os("MOONRT_REQUIRE_TOOLS").is_none(),
                "MOONRT_REQUIRE_TOOLS is set but node is missing"
            );
            eprintln!("skipped: node is not installed (.ci/run installs it)");
            return;
        }
    };
    let mut lines = node.lines();
    let (json_js, text_js) = (lines.next().unwrap(), lines.next().unwrap());
    let script = format!(
        r#"
local M = {{}}
function M.on_player_join(player)
  local v = {{{NUMBERS_LUA}}}
  rt.send(player.peer, 1, rt.json.encode(v))
  rt.send(player.peer, 2, rt.json.encode({{nan = 0/0, inf = -math.huge, n = {{x = 4.0}}}}))
  local words = {{}}
  for i, n in ipairs(v) do words[i] = rt.format_number(n) end
  for _, n in ipairs({{0/0, math.huge, -math.huge}}) do words[#words + 1] = rt.format_number(n) end
  rt.send(player.peer, 3, table.concat(words, " "))
end
return M
"#
    );
    let (server, _dir) = start_script(config(), &script);
    let mut client = server.connect("numbers", "n");
    // Byte for byte: 4 not 4.0, 0 not -0.0, 1e+21 not 1e21.
    assert_eq!(text_on(&mut client, 1), json_js);
    assert!(
        json_js.starts_with("[4,0,3,-7,0.5,9007199254740992,"),
        "{json_js}"
    );
    // JSON has no NaN or infinities: null, as JSON.stringify writes them; nested numbers too.
    let special = text_on(&mut client, 2);
    assert!(special.contains(r#""n":{"x":4}"#), "{special}");
    let special: Value = serde_json::from_str(&special).unwrap();
    assert_eq!(special, json!({"nan": null, "inf": null, "n": {"x": 4}}));
    assert_eq!(
        text_on(&mut client, 3),
        text_js,
        "rt.format_number vs String(n)"
    );
}

/// A ticket for `session` ("*" for any), as a backend signs it.
fn ticket_for(player: &str, session: &str) -> String {
    sign_ticket(SECRET, player, json!({"session": session}))
}

#[test]
fn join_mode_5_with_tickets_creates_only_for_a_ticket_to_any_session() {
    let mut c = admin_config();
    c.auth.mode = AuthMode::Ticket;
    c.auth.ticket_key = SECRET.into();
    let (server, _dir, admin) = start(c, RACE);
    let any = |player: &str, session: &str| {
        Client::connect(
            server.addr,
            Connect::join_any(&[("mode", "duel")]).token(&ticket_for(player, session)),
        )
    };
    // No listed session yet: a ticket for one named session may not create one.
    assert_eq!(
        rejected(any("ann", "race-7")),
        Code::TicketWrongSession.as_u16()
    );
    let ann = any("ann", "*").expect("a ticket for any session creates one");
    let bo = any("bo", "*").expect("and the next fills it");
    assert_eq!(ann.session_id(), bo.session_id());
    // A backend-made listed session named race-7 is where race-7's ticket may go.
    let made = create(
        admin,
        r#"{"name": "race-7", "listed": true, "params": {"mode": "duel"}}"#,
    );
    assert_eq!(made.status, 201);
    let cy = any("cy", "race-7").expect("placed in race-7");
    assert_eq!(cy.session_id(), made.body["id"].as_u64().unwrap());
}
