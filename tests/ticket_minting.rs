//! Join tickets minted the way a game's backend mints them: the README's Node (`jsonwebtoken`)
//! and Python (PyJWT) snippets, run as printed there, and `moonrt ticket`; each ticket gets its
//! player into the session it names.

mod common;

use common::*;
use moonrt::client::{Client, ClientError, Connect};
use moonrt::config::AuthMode;
use moonrt::core::Code;

const SECRET: &str = "backend-and-server-share-this-secret";

/// The README code block of `lang` whose first line carries `mint-ticket`.
fn readme_snippet(lang: &str) -> String {
    let readme = include_str!("../README.md");
    readme
        .split(&format!("```{lang}\n"))
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .find(|block| {
            block
                .lines()
                .next()
                .is_some_and(|l| l.contains("mint-ticket"))
        })
        .unwrap_or_else(|| panic!("README has a {lang} mint-ticket block"))
        .to_owned()
}

/// Whether a tool is here; without it the test is skipped, unless CI requires every tool.
fn have(program: &str, args: &[&str], what: &str) -> bool {
    let ok = std::process::Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("MOONRT_REQUIRE_TOOLS").is_none(),
            "MOONRT_REQUIRE_TOOLS is set but {what} is missing"
        );
        eprintln!("skipped: {what} is not installed (.ci/run installs it)");
    }
    ok
}

fn mint_with(program: &str, args: &[&str], player: &str, session: &str) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .env("PLAYER_ID", player)
        .env("SESSION", session)
        .env("MOONRT_TICKET_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn ticket_server() -> TestServer {
    let mut c = config();
    c.auth.mode = AuthMode::Ticket;
    c.auth.ticket_key = SECRET.into();
    TestServer::start(c)
}

#[test]
fn the_readme_node_snippet_mints_a_ticket_moonrt_accepts() {
    if !have(
        "node",
        &["-e", "require('jsonwebtoken')"],
        "node with jsonwebtoken",
    ) {
        return;
    }
    let server = ticket_server();
    let ticket = mint_with(
        "node",
        &["-e", &readme_snippet("js")],
        "node-player",
        "lobby",
    );
    let mut a =
        Client::connect(server.addr, Connect::join_or_create("lobby").token(&ticket)).unwrap();
    let b = Client::connect(server.addr, Connect::join_or_create("lobby").token(&ticket)).unwrap();
    // The ticket's player and name; the same ticket twice is the same player: the second
    // connection replaces the first.
    assert_eq!(b.session_id(), a.session_id());
    let peer = &b.peers()[0];
    assert_eq!(
        (peer.player_id.as_str(), peer.name.as_str()),
        ("node-player", "Ann")
    );
    assert_eq!(closed_code(&mut a), Code::Replaced.as_u16());
    // The ticket is for "lobby" only.
    match Client::connect(server.addr, Connect::join_or_create("other").token(&ticket)) {
        Err(ClientError::Rejected { code, .. }) => {
            assert_eq!(code, Code::TicketWrongSession.as_u16())
        }
        other => panic!(
            "expected REJECT 19, got {:?}",
            other.map(|c| c.session_id())
        ),
    }
}

#[test]
fn the_readme_python_snippet_mints_a_ticket_moonrt_accepts() {
    if !have("python3", &["-c", "import jwt"], "python3 with PyJWT") {
        return;
    }
    let server = ticket_server();
    let ticket = mint_with(
        "python3",
        &["-c", &readme_snippet("python")],
        "py-player",
        "lobby",
    );
    let first =
        Client::connect(server.addr, Connect::join_or_create("lobby").token(&ticket)).unwrap();
    let other = mint_with(
        "python3",
        &["-c", &readme_snippet("python")],
        "py-player-2",
        "lobby",
    );
    let second =
        Client::connect(server.addr, Connect::join_or_create("lobby").token(&other)).unwrap();
    assert_eq!(second.session_id(), first.session_id());
    let peer = &second.peers()[0];
    assert_eq!(
        (peer.player_id.as_str(), peer.name.as_str()),
        ("py-player", "Ann")
    );
}

#[test]
fn moonrt_ticket_prints_a_ticket_signed_with_the_configs_key() {
    let dir = TempDir::new("mint-cli");
    let config = dir.write(
        "config.toml",
        &format!("[auth]\nmode = \"ticket\"\nticket_key = \"{SECRET}\"\n"),
    );
    let out = run_moonrt(
        &[
            "--config",
            config.to_str().unwrap(),
            "ticket",
            "--player",
            "cli-player",
            "--session",
            "lobby",
            "--name",
            "Cy",
            "--claim",
            "level=7",
        ],
        &dir.0,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ticket = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(ticket.split('.').count(), 3, "a JWT: {ticket}");
    let server = ticket_server();
    let a = Client::connect(server.addr, Connect::join_or_create("lobby").token(&ticket)).unwrap();
    let b = Client::connect(
        server.addr,
        Connect::join_or_create("lobby").token(
            &moonrt::core::auth::mint(
                &{
                    let mut c = moonrt::config::Config::default();
                    c.auth.ticket_key = SECRET.into();
                    c
                },
                None,
                &serde_json::json!({"sub": "x", "session": "lobby", "exp": u32::MAX}),
            )
            .unwrap(),
        ),
    )
    .unwrap();
    assert_eq!(a.session_id(), b.session_id());
    assert_eq!(b.peers()[0].name, "Cy");
    // Without a key, it says what is missing.
    let open = dir.write("open.toml", "");
    let out = run_moonrt(
        &[
            "--config",
            open.to_str().unwrap(),
            "ticket",
            "--player",
            "p",
            "--session",
            "*",
        ],
        &dir.0,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("auth.ticket_key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
