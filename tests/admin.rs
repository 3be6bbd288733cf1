//! The admin listener against a running server with real clients: health and readiness,
//! Prometheus metrics (checked by `promtool`), the sessions API, ending a session, reload,
//! the token, drain (in process and with the real binary and SIGUSR2), and the dashboard in a
//! real headless Chromium.

mod common;

use common::*;
use moonrt::client::{Client, ClientError, Connect, To};
use moonrt::config::Config;
use moonrt::core::Code;
use moonrt::core::codec::Intent;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What the admin listener answered.
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

fn agent() -> ureq::Agent {
    http_agent()
}

fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Answer {
    let mut request = agent().get(format!("http://{addr}{path}"));
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let mut response = request.call().unwrap();
    Answer {
        status: response.status().as_u16(),
        body: response.body_mut().read_to_string().unwrap(),
    }
}

/// A POST as curl or a backend sends it: with a JSON content type (the admin listener refuses
/// writes without one, which a page on another site could send).
fn post(addr: SocketAddr, path: &str) -> Answer {
    let mut response = agent()
        .post(format!("http://{addr}{path}"))
        .header("Content-Type", "application/json")
        .send_empty()
        .unwrap();
    Answer {
        status: response.status().as_u16(),
        body: response.body_mut().read_to_string().unwrap(),
    }
}

fn admin_config() -> Config {
    let mut c = config();
    c.admin.listen = "127.0.0.1:0".into();
    c
}

/// A server with the admin listener and a script; its admin address.
fn start(config: Config, script: &str) -> (TestServer, TempDir, SocketAddr) {
    start_script_with_admin(config, script)
}

const SCRIPT: &str = r#"
local healthy = true
return {
  on_player_join = function(p) rt.session.data[p.peer] = string.rep("x", 1000) end,
  on_packet = function(packet) if packet.opcode == 66 then error("boom on purpose") end end,
  on_health_check = function() return rt.process == nil end,
}
"#;

/// Runs `promtool check metrics` on the text; `None` if promtool is not installed.
fn promtool(text: &str) -> Option<(bool, String)> {
    use std::io::Write;
    let mut child = match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(_) => {
            assert!(
                std::env::var_os("MOONRT_REQUIRE_TOOLS").is_none(),
                "MOONRT_REQUIRE_TOOLS is set but promtool is not installed"
            );
            eprintln!("skipped promtool: not installed (.ci/run installs prometheus)");
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Some((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
}

#[test]
fn health_metrics_and_sessions_describe_the_live_server() {
    let (server, _dir, admin) = start(admin_config(), SCRIPT);
    let mut ann = Client::connect(
        server.addr,
        Connect::join_or_create("arena").name("ann").player_id("u1"),
    )
    .unwrap();
    ann.bind_udp().unwrap();
    let mut bo = server.connect("arena", "bo");
    for _ in 0..5 {
        ann.send(To::AllOthers, 7, Intent::Reliable, b"hello")
            .unwrap();
        next_delivery(&mut bo);
    }
    // A script error, recorded for the dashboard.
    ann.send(To::AllOthers, 66, Intent::Reliable, b"x").unwrap();
    ann.send(To::AllOthers, 7, Intent::Reliable, b"after")
        .unwrap();
    next_delivery(&mut bo);

    let health = get(admin, "/healthz", None);
    assert_eq!(
        (health.status, health.json()["status"].as_str()),
        (200, Some("ok"))
    );
    assert_eq!(get(admin, "/readyz", None).status, 200);

    let metrics = get(admin, "/metrics", None);
    assert_eq!(metrics.status, 200);
    let text = metrics.body;
    assert_eq!(metric(&text, "moonrt_sessions "), 1.0);
    assert_eq!(metric(&text, "moonrt_players "), 2.0);
    assert_eq!(metric(&text, "moonrt_connections{transport=\"tcp\"}"), 2.0);
    assert_eq!(metric(&text, "moonrt_messages_received_total "), 7.0);
    assert_eq!(metric(&text, "moonrt_deliveries_total "), 6.0);
    assert_eq!(metric(&text, "moonrt_script_errors_total "), 1.0);
    assert_eq!(metric(&text, "moonrt_script_generation "), 1.0);
    assert!(metric(&text, "moonrt_script_memory_bytes ") > 2000.0);
    assert!(metric(&text, "moonrt_sent_bytes_total ") > 0.0);
    assert!(metric(&text, "moonrt_script_callback_seconds_count ") >= 7.0);
    assert!(metric(&text, "moonrt_loop_turn_seconds_count ") > 0.0);
    if let Some((ok, report)) = promtool(&text) {
        assert!(ok, "promtool refused /metrics: {report}\n{text}");
    }

    let sessions = get(admin, "/api/sessions", None).json();
    let session = &sessions[0];
    assert_eq!(session["name"], "arena");
    assert_eq!(session["id"], ann.session_id());
    // Routed: the one whose on_packet failed was dropped.
    assert_eq!(session["messages"], 6);
    assert_eq!(session["script_generation"], 1);
    let players = session["players"].as_array().unwrap();
    assert_eq!(players.len(), 2);
    assert_eq!(players[0]["name"], "ann");
    assert_eq!(players[0]["id"], "u1");
    assert_eq!(players[0]["transport"], "tcp");
    assert_eq!(players[0]["udp_bound"], true);
    assert_eq!(players[1]["udp_bound"], false);
    assert!(
        players[0]["address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    let one = get(admin, &format!("/api/sessions/{}", ann.session_id()), None);
    assert_eq!(one.json()["name"], "arena");
    assert_eq!(get(admin, "/api/sessions/12345", None).status, 404);
    assert_eq!(get(admin, "/nope", None).status, 404);

    let overview = get(admin, "/api/overview", None).json();
    let events = overview["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "script_error" && e["text"].as_str().unwrap().contains("boom")),
        "{events:?}"
    );

    // Ending a session from the API: its players are told why.
    assert_eq!(post(admin, "/api/sessions/12345/end").status, 404);
    assert_eq!(
        get(
            admin,
            &format!("/api/sessions/{}/end", ann.session_id()),
            None
        )
        .status,
        405
    );
    let ended = post(admin, &format!("/api/sessions/{}/end", ann.session_id()));
    assert_eq!(ended.status, 200);
    assert_eq!(closed_code(&mut ann), Code::SessionEnded.as_u16());
    assert_eq!(closed_code(&mut bo), Code::SessionEnded.as_u16());
    let text = get(admin, "/metrics", None).body;
    assert_eq!(metric(&text, "moonrt_sessions "), 0.0);
    assert_eq!(
        metric(
            &text,
            "moonrt_closes_total{code=\"23\",reason=\"session_ended\"}"
        ),
        2.0
    );
}

#[test]
fn a_script_that_reports_unhealthy_turns_healthz_503_and_reload_is_reported() {
    let (server, dir, admin) = start(
        admin_config(),
        "return { on_health_check = function() return false end }",
    );
    let health = get(admin, "/healthz", None);
    assert_eq!(health.status, 503);
    assert!(
        health.json()["reason"]
            .as_str()
            .unwrap()
            .contains("on_health_check")
    );
    // A reload through the API: the new generation shows in the metrics.
    dir.write("main.lua", "return { }");
    assert_eq!(post(admin, "/api/reload").status, 202);
    let deadline = Instant::now() + WAIT;
    loop {
        let text = get(admin, "/metrics", None).body;
        if metric(&text, "moonrt_script_generation ") == 2.0 {
            assert_eq!(metric(&text, "moonrt_script_last_reload_success "), 1.0);
            break;
        }
        assert!(Instant::now() < deadline, "reload never showed:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(server);
}

#[test]
fn the_admin_token_guards_everything_but_the_probes() {
    let mut c = admin_config();
    c.admin.token = "ops-secret".into();
    let (_server, _dir, admin) = start(c, "return {}");
    assert_eq!(get(admin, "/healthz", None).status, 200);
    assert_eq!(get(admin, "/readyz", None).status, 200);
    for path in ["/metrics", "/api/sessions", "/api/overview"] {
        assert_eq!(get(admin, path, None).status, 401, "{path}");
        assert_eq!(get(admin, path, Some("wrong")).status, 401, "{path}");
        assert_eq!(get(admin, path, Some("ops-secret")).status, 200, "{path}");
    }
    // The dashboard's page holds no data (it asks for the token and sends it itself).
    let page = get(admin, "/", None);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<title>"), "{}", page.body);
    // A token in the URL stays in history and proxy logs: it is not accepted.
    let in_url = get(admin, "/metrics?token=ops-secret", None);
    assert_eq!(in_url.status, 401);
    assert!(in_url.body.contains("not accepted"), "{}", in_url.body);
    assert_eq!(post(admin, "/api/drain").status, 401);
    assert_eq!(get(admin, "/readyz", None).status, 200, "not drained");
    let metrics = get(admin, "/metrics", Some("ops-secret")).body;
    assert_eq!(
        metric(&metrics, "moonrt_admin_refused_total{reason=\"token\"}"),
        8.0
    );
}

#[test]
fn a_drain_lets_running_sessions_finish_and_refuses_new_ones() {
    let (server, _dir, admin) = start(admin_config(), "return {}");
    let mut ann = server.connect("match-1", "ann");
    let mut bo = server.connect("match-1", "bo");
    let drained = post(admin, "/api/drain");
    assert_eq!(drained.status, 202);
    assert_eq!(drained.json()["sessions"], 1);
    let ready = get(admin, "/readyz", None);
    assert_eq!(ready.status, 503);
    assert!(
        ready.json()["reason"]
            .as_str()
            .unwrap()
            .contains("draining")
    );
    // A new session is refused with 22; the running match goes on, and takes a reconnect.
    match Client::connect(server.addr, Connect::join_or_create("match-2")) {
        Err(ClientError::Rejected { code, message }) => {
            assert_eq!(code, Code::ShuttingDown.as_u16());
            assert!(message.contains("draining"), "{message}");
        }
        other => panic!(
            "expected REJECT 22, got {:?}",
            other.map(|c| c.session_id())
        ),
    }
    let mut cy = server.connect("match-1", "cy");
    ann.send(To::AllOthers, 1, Intent::Reliable, b"gg").unwrap();
    assert_eq!(next_delivery(&mut bo).payload, b"gg");
    assert_eq!(next_delivery(&mut cy).payload, b"gg");
    // When the match ends, the server stops by itself.
    for c in [&mut ann, &mut bo, &mut cy] {
        c.leave().unwrap();
    }
    let stats = server
        .join_within(WAIT)
        .expect("the server stopped after the drain");
    assert_eq!(stats.sessions_created, 1);
}

#[test]
fn sigusr2_drains_the_real_binary_which_exits_0_when_its_sessions_end() {
    let dir = TempDir::new("drain-bin");
    let config = dir.write(
        "config.toml",
        "[server]\nlisten = \"127.0.0.1:0\"\nws_listen = \"\"\n[sessions]\n\
         empty_session_linger_ms = 0\n[script]\npath = \"\"\n[admin]\nlisten = \"127.0.0.1:0\"\n",
    );
    let (mut child, addr, log) = spawn_binary(&config);
    let mut ann = Client::connect(addr.as_str(), Connect::join_or_create("m").name("ann")).unwrap();
    let mut bo = Client::connect(addr.as_str(), Connect::join_or_create("m").name("bo")).unwrap();
    // SAFETY: kill only sends a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGUSR2) };
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "still running while its session plays"
    );
    match Client::connect(addr.as_str(), Connect::join_or_create("other")) {
        Err(ClientError::Rejected { code, .. }) => assert_eq!(code, Code::ShuttingDown.as_u16()),
        other => panic!(
            "expected REJECT 22, got {:?}",
            other.map(|c| c.session_id())
        ),
    }
    ann.send(To::AllOthers, 3, Intent::Reliable, b"still playing")
        .unwrap();
    assert_eq!(next_delivery(&mut bo).payload, b"still playing");
    ann.leave().unwrap();
    bo.leave().unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "did not exit after the drain");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let log = log.join().unwrap().join("\n");
    assert!(log.contains("draining"), "{log}");
}

#[test]
fn the_dashboard_shows_the_live_session_and_its_players_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        return;
    };
    let mut c = admin_config();
    c.admin.token = "dash-token".into();
    let (server, dir, admin) = start(c, SCRIPT);
    let mut ann = server.connect("dash-room", "ann-the-first");
    let mut bo = server.connect("dash-room", "bo-the-second");
    ann.send(To::AllOthers, 66, Intent::Reliable, b"x").unwrap();
    ann.send(To::AllOthers, 7, Intent::Reliable, b"y").unwrap();
    next_delivery(&mut bo);
    // The token rides in the fragment, which the browser never sends to the server.
    let url = format!("http://{admin}/#token=dash-token");
    let artifacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("dashboard.png");
    let run = |extra: &[String]| {
        let profile = dir.0.join(format!("profile-{}", extra.len()));
        std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1280,900",
                // Let the page's fetches and first renders happen before the capture.
                "--virtual-time-budget=4000",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(&url)
            .output()
            .unwrap()
    };
    let dom = run(&["--dump-dom".to_string()]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    for expected in [
        "dash-room",
        "ann-the-first",
        "bo-the-second",
        "boom on purpose",
    ] {
        assert!(
            dom.contains(expected),
            "the dashboard lacks {expected:?}:\n{dom}"
        );
    }
    let shot = run(&[format!("--screenshot={}", screenshot.display())]);
    assert!(
        screenshot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&shot.stderr)
    );
    eprintln!("dashboard screenshot: {}", screenshot.display());
}
