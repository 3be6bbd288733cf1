//! Idle timeout, graceful shutdown in-process, and SIGTERM on the real binary.

mod common;

use common::*;
use moonrt::client::{Client, Connect, Event, To};
use moonrt::core::Code;
use moonrt::core::codec::Intent;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn silent_client_is_closed_after_the_idle_timeout_while_a_pinging_one_stays() {
    let mut c = config();
    c.server.idle_timeout_ms = 1_000;
    let server = TestServer::start(c);
    let mut quiet = server.connect("room", "quiet");
    quiet.set_keepalive(false);
    let mut chatty = server.connect("room", "chatty");
    // Serve both: `chatty` pings every third of the idle timeout while it waits for events.
    let started = Instant::now();
    let mut chatty_saw = Vec::new();
    let quiet_code = loop {
        assert!(started.elapsed() < WAIT, "quiet was never closed");
        if let Some(e) = chatty.next_event(Duration::from_millis(20)).unwrap() {
            chatty_saw.push(e);
        }
        if let Some(Event::Closed { code, .. }) = quiet.next_event(Duration::ZERO).unwrap() {
            break code;
        }
    };
    assert_eq!(quiet_code, Code::IdleTimeout.as_u16());
    assert!(started.elapsed() >= Duration::from_millis(900));
    let left = match chatty_saw
        .into_iter()
        .find(|e| matches!(e, Event::PlayerLeft { .. }))
    {
        Some(e) => e,
        None => chatty
            .wait_for(WAIT, |e| matches!(e, Event::PlayerLeft { .. }))
            .unwrap(),
    };
    assert_eq!(
        left,
        Event::PlayerLeft {
            peer: 1,
            reason: Code::IdleTimeout.as_u16()
        }
    );
    // Past another idle timeout and a half, nothing has happened to `chatty`: no CLOSE, no
    // event at all (its pings kept it in).
    assert_eq!(
        chatty.next_event(Duration::from_millis(1_500)).unwrap(),
        None
    );
    let mut late = server.connect("room", "late");
    chatty
        .send(To::AllOthers, 1, Intent::Reliable, b"alive")
        .unwrap();
    assert_eq!(next_delivery(&mut late).payload, b"alive");
}

#[test]
fn graceful_stop_tells_every_client_it_is_shutting_down() {
    let server = TestServer::start(config());
    let mut a = server.connect("one", "a");
    let mut b = server.connect("two", "b");
    let stats = server.stop();
    assert_eq!(closed_code(&mut a), Code::ShuttingDown.as_u16());
    assert_eq!(closed_code(&mut b), Code::ShuttingDown.as_u16());
    assert_eq!(stats.sessions_created, 2);
    assert_eq!(stats.sessions_ended, 2);
}

#[test]
fn binary_logs_its_address_and_exits_zero_on_sigterm_after_closing_clients() {
    let dir = std::env::temp_dir().join(format!("moonrt-sigterm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("config.toml");
    std::fs::write(
        &config_path,
        "[server]\nlisten = \"127.0.0.1:0\"\nws_listen = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let (mut child, addr, drain) = spawn_binary(&config_path);
    let mut client = Client::connect(addr.as_str(), Connect::join_or_create("x")).unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(closed_code(&mut client), Code::ShuttingDown.as_u16());
    let deadline = Instant::now() + WAIT;
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("server did not exit after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "exit status {exit:?}");
    let log = drain.join().unwrap().join("\n");
    assert!(log.contains("stopped"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
