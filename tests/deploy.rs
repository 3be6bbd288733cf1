//! The files that run moonrt in production: the systemd unit passes `systemd-analyze verify`,
//! and `--log-format json` writes one JSON object per line that names the session and peer.

mod common;

use common::*;
use moonrt::client::{Client, Connect};

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let available = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    // The unit as shipped, pointed at the binary this build made (verify checks it exists).
    let unit = include_str!("../deploy/moonrt.service")
        .replace("/usr/local/bin/moonrt", env!("CARGO_BIN_EXE_moonrt"));
    assert!(unit.contains("KillSignal=SIGUSR2"), "stop drains");
    assert!(
        unit.contains("ExecReload=/bin/kill -HUP $MAINPID"),
        "reload is SIGHUP"
    );
    let dir = TempDir::new("unit");
    let path = dir.write("moonrt.service", &unit);
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Only complaints about this unit count (the machine's own units may have their own).
    let ours: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("moonrt.service"))
        .collect();
    assert!(ours.is_empty() && out.status.success(), "{report}");
}

#[test]
fn json_logs_are_one_object_per_line_naming_the_session_and_peer() {
    let dir = TempDir::new("jsonlog");
    let config = dir.write(
        "config.toml",
        "[server]\nlisten = \"127.0.0.1:0\"\nws_listen = \"\"\n[script]\npath = \"\"\n",
    );
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_moonrt"))
        .args(["--log-format", "json", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let addr = loop {
        let line = lines.next().expect("a log line").unwrap();
        let value: serde_json::Value = serde_json::from_str(&line).expect("each line is JSON");
        seen.push(value.clone());
        if let Some(rest) = value["msg"]
            .as_str()
            .unwrap()
            .strip_prefix("listening tcp=")
        {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let client = Client::connect(addr.as_str(), Connect::join_or_create("logged")).unwrap();
    let joined = loop {
        let line = lines.next().expect("a log line").unwrap();
        let value: serde_json::Value = serde_json::from_str(&line).expect("each line is JSON");
        if value["msg"].as_str().unwrap().contains("joined") {
            break value;
        }
    };
    assert_eq!(joined["level"], "INFO");
    assert_eq!(joined["session"], client.session_id());
    assert_eq!(joined["peer"], 1);
    assert!(joined["ts"].as_str().unwrap().ends_with('Z'));
    assert!(seen.iter().all(|v| v["target"].is_string()));
    let _ = child.kill();
    let _ = child.wait();
}
