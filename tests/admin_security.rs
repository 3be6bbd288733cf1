//! The admin listener as an attacker's web page and a rebound DNS name see it: cross-site writes
//! (forms, `fetch` in `no-cors` mode) change nothing, a request sent to a name the listener does
//! not answer to reads nothing, probes included. Tried with raw HTTP and in a real headless
//! Chromium that loads a page from another local origin.

mod common;

use common::*;
use moonrt::config::Config;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn admin_config() -> Config {
    let mut c = config();
    c.admin.listen = "127.0.0.1:0".into();
    c
}

/// Sends `head` (request line and headers, without the blank line) and `body` over a fresh
/// connection; the status and the body of the answer.
fn raw(admin: SocketAddr, head: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(admin).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let request = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

fn get_json(admin: SocketAddr, path: &str) -> serde_json::Value {
    let (status, body) = raw(
        admin,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1"),
        "",
    );
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn metric(admin: SocketAddr, line_start: &str) -> f64 {
    let (_, text) = raw(admin, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1", "");
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// What the server would show if a forged write had gone through.
fn assert_untouched(admin: SocketAddr) {
    assert_eq!(get_json(admin, "/api/sessions"), serde_json::json!([]));
    assert_eq!(get_json(admin, "/readyz")["ready"], true, "not drained");
    assert_eq!(
        get_json(admin, "/api/overview")["script_generation"],
        1,
        "not reloaded"
    );
}

#[test]
fn a_rebound_dns_name_reads_nothing_from_any_endpoint() {
    let (server, _dir, admin) = start_script_with_admin(admin_config(), "return {}");
    let _ann = server.connect("secret-room", "ann");
    for path in [
        "/api/sessions",
        "/api/overview",
        "/metrics",
        "/healthz",
        "/readyz",
        "/",
    ] {
        let (status, body) = raw(
            admin,
            &format!("GET {path} HTTP/1.1\r\nHost: evil.example:{}", admin.port()),
            "",
        );
        assert_eq!(status, 403, "{path}: {body}");
        assert!(!body.contains("secret-room"), "{path} leaked: {body}");
        assert!(body.contains("allowed_hosts"), "{path}: {body}");
    }
    // The names it does answer to.
    for host in ["127.0.0.1", "localhost:1", "[::1]"] {
        let (status, body) = raw(
            admin,
            &format!("GET /api/sessions HTTP/1.1\r\nHost: {host}"),
            "",
        );
        assert_eq!(status, 200, "{host}");
        assert!(body.contains("secret-room"), "{body}");
    }
    assert_eq!(
        metric(admin, "moonrt_admin_refused_total{reason=\"host\"}"),
        6.0
    );
}

#[test]
fn a_name_listed_in_allowed_hosts_is_answered() {
    let mut c = admin_config();
    c.admin.allowed_hosts = vec!["admin.example.com".into()];
    let (_server, _dir, admin) = start_script_with_admin(c, "return {}");
    let (status, _) = raw(
        admin,
        "GET /readyz HTTP/1.1\r\nHost: Admin.Example.COM:443",
        "",
    );
    assert_eq!(status, 200);
    let (status, _) = raw(admin, "GET /readyz HTTP/1.1\r\nHost: example.com", "");
    assert_eq!(status, 403);
}

#[test]
fn cross_site_writes_are_refused_and_change_nothing() {
    let mut c = admin_config();
    // A session made ahead of its players waits for them this long.
    c.sessions.empty_session_linger_ms = 60_000;
    let (_server, _dir, admin) = start_script_with_admin(c, "return {}");
    let own = format!("127.0.0.1:{}", admin.port());
    let session = r#"{"name": "forged"}"#;
    // What a page on another site can send without a preflight: no content type, text/plain,
    // a form; and JSON from a foreign Origin (which a browser sends only after a preflight this
    // listener never approves, so only a non-browser could, and it gets refused too).
    let attempts = [
        ("/api/sessions", "", session),
        ("/api/sessions", "Content-Type: text/plain\r\n", session),
        (
            "/api/sessions",
            "Content-Type: application/x-www-form-urlencoded\r\n",
            "name=forged",
        ),
        ("/api/drain", "Origin: http://evil.example\r\n", ""),
        (
            "/api/drain",
            "Origin: http://evil.example\r\nContent-Type: application/json\r\n",
            "",
        ),
        (
            "/api/reload",
            "Origin: http://127.0.0.1:8000\r\nContent-Type: application/json\r\n",
            "",
        ),
        (
            "/api/sessions",
            "Origin: null\r\nContent-Type: application/json\r\n",
            session,
        ),
    ];
    for (path, headers, body) in attempts {
        let (status, answer) = raw(
            admin,
            format!("POST {path} HTTP/1.1\r\nHost: {own}\r\n{headers}").trim_end(),
            body,
        );
        assert_eq!(status, 403, "{path} with {headers:?}: {answer}");
        assert!(
            answer.contains("Content-Type: application/json") || answer.contains("cross-origin"),
            "{answer}"
        );
    }
    assert_untouched(admin);
    assert_eq!(
        metric(admin, "moonrt_admin_refused_total{reason=\"cross_site\"}"),
        attempts.len() as f64
    );
    // The dashboard's own write (same origin, JSON) and curl's are obeyed.
    let (status, answer) = raw(
        admin,
        &format!(
            "POST /api/sessions HTTP/1.1\r\nHost: {own}\r\nOrigin: http://{own}\r\n\
             Content-Type: application/json"
        ),
        session,
    );
    assert_eq!(status, 201, "{answer}");
    assert_eq!(get_json(admin, "/api/sessions")[0]["name"], "forged");
}

/// Serves `page` to every request on a listener of its own (another origin than the admin
/// listener's) until `until`; how many requests it served.
fn serve_page(listener: TcpListener, page: String, until: Instant) -> std::thread::JoinHandle<u32> {
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let mut served = 0;
        while Instant::now() < until {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream
                        .set_read_timeout(Some(Duration::from_secs(2)))
                        .unwrap();
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf);
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n{page}",
                        page.len()
                    );
                    let _ = stream.write_all(answer.as_bytes());
                    served += 1;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        served
    })
}

#[test]
fn a_page_from_another_origin_cannot_create_drain_or_reload_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        return;
    };
    let (_server, dir, admin) = start_script_with_admin(admin_config(), "return {}");
    let base = format!("http://127.0.0.1:{}", admin.port());
    // Five fetches in no-cors mode (the JSON content type is dropped by the browser in that
    // mode) and two forms, each into an iframe so the page stays.
    let page = format!(
        r#"<!doctype html><html><body>
<iframe name="sink1"></iframe><iframe name="sink2"></iframe>
<form id="plain" method="POST" action="{base}/api/sessions" enctype="text/plain" target="sink1">
  <input name='{{"name": "forged-form", "x": "' value='"}}'></form>
<form id="drain" method="POST" action="{base}/api/drain" target="sink2">
  <input name="really" value="yes"></form>
<script>
(async () => {{
  const tries = [
    ["/api/sessions", {{ body: '{{"name": "forged-fetch"}}' }}],
    ["/api/sessions", {{ body: '{{"name": "forged-json"}}', headers: {{ "Content-Type": "application/json" }} }}],
    ["/api/reload", {{}}],
    ["/api/drain", {{}}],
    ["/api/drain", {{ headers: {{ "Content-Type": "application/json" }} }}],
  ];
  for (const [path, extra] of tries) {{
    try {{ await fetch("{base}" + path, {{ method: "POST", mode: "no-cors", ...extra }}); }} catch (e) {{}}
  }}
  document.getElementById("plain").submit();
  document.getElementById("drain").submit();
  document.title = "attack sent";
}})();
</script></body></html>"#
    );
    let attacker = TcpListener::bind("127.0.0.1:0").unwrap();
    let attacker_url = format!("http://{}/", attacker.local_addr().unwrap());
    let served = serve_page(attacker, page, Instant::now() + Duration::from_secs(30));
    let output = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.0.join("profile").display()
        ))
        .arg(&attacker_url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        dom.contains("attack sent"),
        "the page did not run: {dom}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Let the forms' requests land before looking.
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(admin, "moonrt_admin_refused_total{reason=\"cross_site\"}") < 7.0 {
        assert!(
            Instant::now() < deadline,
            "the browser's requests never reached the admin listener"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_untouched(admin);
    assert_eq!(
        metric(admin, "moonrt_admin_refused_total{reason=\"cross_site\"}"),
        7.0,
        "five fetches and two forms, each refused"
    );
    drop(served);
}

#[test]
fn a_page_on_a_rebound_name_reads_nothing_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        return;
    };
    let (server, dir, admin) = start_script_with_admin(admin_config(), "return {}");
    let _ann = server.connect("secret-room", "ann-with-an-ip");
    // The browser resolves the attacker's name to the admin listener, as a rebinding DNS
    // server would make it do.
    let output = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=3000",
            "--host-resolver-rules=MAP rebound.example 127.0.0.1",
            "--dump-dom",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.0.join("profile").display()
        ))
        .arg(format!(
            "http://rebound.example:{}/api/sessions",
            admin.port()
        ))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(dom.contains("allowed_hosts"), "not the refusal: {dom}");
    assert!(!dom.contains("secret-room"), "the sessions leaked: {dom}");
    assert!(!dom.contains("ann-with-an-ip"), "a player leaked: {dom}");
}

#[test]
fn the_binary_refuses_a_network_admin_listener_without_a_token_and_names_the_fix() {
    let dir = TempDir::new("admin-public");
    dir.write(
        "config.toml",
        "[server]\nlisten = \"127.0.0.1:0\"\nws_listen = \"\"\n[script]\npath = \"\"\n\
         [admin]\nlisten = \"0.0.0.0:0\"\n",
    );
    let out = run_moonrt(&["--config", "config.toml"], &dir.0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it started: {stderr}");
    assert!(stderr.contains("admin.token: must be set"), "{stderr}");
    assert!(stderr.contains("listen on 127.0.0.1"), "{stderr}");
}

#[test]
fn open_joins_on_a_public_game_port_are_warned_about_at_start() {
    let dir = TempDir::new("open-public");
    let config = dir.write(
        "config.toml",
        "[server]\nlisten = \"0.0.0.0:0\"\nws_listen = \"\"\n[script]\npath = \"\"\n",
    );
    let (child, _addr, log) = spawn_binary(&config);
    // SAFETY: kill only sends a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let log = log.join().unwrap().join("\n");
    assert!(
        log.contains("[auth] mode is \"open\" and 0.0.0.0:"),
        "{log}"
    );
    assert!(log.contains("mode = \"ticket\""), "{log}");
}
