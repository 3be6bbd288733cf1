//! The containment scenario: every case of the hostile-script suite (`tests/fixtures/hostile.lua`)
//! against the real binary, while two bystanders in another session exchange a message every
//! 5 ms. The figure is the longest a bystander waited for its message while the hostile case
//! ran: how long the loop stalled for everyone else. A baseline run with no case comes first.

use crate::procstat;
use crate::report;
use crate::scenarios::Bench;
use moonrt::client::{Client, Connect, Event, To};
use moonrt::core::codec::Intent;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const HOSTILE: &str = include_str!("../../../tests/fixtures/hostile.lua");

/// (case, payload) for each hole; the payload's first word picks the case.
fn cases() -> Vec<(&'static str, Vec<u8>)> {
    let mut trim = b"trim".to_vec();
    trim.extend(std::iter::repeat_n(b' ', 60_000));
    trim.push(b'x');
    let mut out: Vec<(&'static str, Vec<u8>)> = [
        "gc",
        "find",
        "coroutines",
        "send",
        "timers",
        "timer_churn",
        "log",
        "move",
        "sort",
        "collect",
        "rep",
        "concat",
        "reader",
    ]
    .into_iter()
    .map(|c| (c, c.as_bytes().to_vec()))
    .collect();
    out.insert(2, ("trim (client payload)", trim));
    out
}

#[derive(Serialize)]
struct Row {
    case: String,
    closed_with: Option<u16>,
    longest_wait_us: u64,
    bystander_messages: u64,
    bystander_lost: u64,
    peak_rss_bytes: u64,
}

impl Bench {
    /// Runs every hostile case and reports the stall each caused for a bystander session.
    pub fn containment(&self) -> bool {
        println!("\n## containment: the hostile-script suite, bystanders messaging every 5 ms");
        let dir = self.tmp_dir().join("hostile");
        std::fs::create_dir_all(&dir).expect("temp dir is writable");
        let script = dir.join("main.lua");
        std::fs::write(&script, HOSTILE).expect("temp dir is writable");
        let script = script.to_string_lossy().into_owned();
        let mut rows = Vec::new();
        let mut all: Vec<(&str, Vec<u8>)> = vec![("baseline (no case)", Vec::new())];
        all.extend(cases());
        for (case, payload) in all {
            let port = procstat::free_port();
            let config = format!(
                "{}on_error = \"end_session\"\n",
                self.config(port, &script, false)
            );
            let server = procstat::spawn_server(self.server_bin(), self.tmp_dir(), &config, port);
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let Some(row) = run_case(addr, case, &payload, server.pid()) else {
                eprintln!("containment: {case}: could not connect");
                return false;
            };
            rows.push(row);
        }
        report::table(
            "containment: the longest a bystander session waited while each case ran",
            &[
                "case",
                "hostile session closed with",
                "longest bystander wait",
                "bystander messages (lost)",
                "peak RSS",
            ],
            &rows
                .iter()
                .map(|r| {
                    vec![
                        r.case.clone(),
                        r.closed_with.map_or("-".into(), |c| c.to_string()),
                        report::micros(r.longest_wait_us),
                        format!("{} ({})", r.bystander_messages, r.bystander_lost),
                        report::bytes(r.peak_rss_bytes as f64),
                    ]
                })
                .collect::<Vec<_>>(),
        );
        let worst = rows.iter().skip(1).max_by_key(|r| r.longest_wait_us);
        if let Some(w) = worst {
            println!(
                "\nworst stall: {} ({}), baseline {}",
                report::micros(w.longest_wait_us),
                w.case,
                report::micros(rows[0].longest_wait_us)
            );
        }
        #[derive(Serialize)]
        struct Out {
            machine: report::Machine,
            cases: Vec<Row>,
        }
        let ok = rows
            .iter()
            .skip(1)
            .all(|r| r.closed_with.is_some() && r.bystander_lost == 0);
        report::write_json(
            self.out_dir(),
            "containment",
            &Out {
                machine: report::machine(),
                cases: rows,
            },
        );
        ok
    }
}

/// One case: bystanders start, the case is triggered, its close awaited, bystanders stop.
fn run_case(addr: SocketAddr, case: &str, payload: &[u8], pid: u32) -> Option<Row> {
    let mut a = Client::connect(addr, Connect::join_or_create("calm")).ok()?;
    let mut b = Client::connect(addr, Connect::join_or_create("calm")).ok()?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let bystanders = std::thread::spawn(move || {
        let (mut sent, mut received, mut longest) = (0u64, 0u64, Duration::ZERO);
        while !flag.load(Ordering::Relaxed) {
            if a.send(To::AllOthers, 3, Intent::Reliable, b"tick").is_err() {
                break;
            }
            sent += 1;
            let asked = Instant::now();
            match b.wait_for(Duration::from_secs(60), |e| matches!(e, Event::Delivery(_))) {
                Ok(_) => received += 1,
                Err(_) => break,
            }
            longest = longest.max(asked.elapsed());
            std::thread::sleep(Duration::from_millis(5));
        }
        (sent, received, longest)
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut closed_with = None;
    if !payload.is_empty() {
        let mut evil = Client::connect(addr, Connect::join_or_create("evil")).ok()?;
        evil.send(To::Server, 1, Intent::Reliable, payload).ok()?;
        if let Ok(Event::Closed { code, .. }) = evil.wait_for(Duration::from_secs(60), |e| {
            matches!(e, Event::Closed { .. })
        }) {
            closed_with = Some(code);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (sent, received, longest) = bystanders.join().ok()?;
    Some(Row {
        case: case.to_string(),
        closed_with,
        longest_wait_us: longest.as_micros() as u64,
        bystander_messages: sent,
        bystander_lost: sent - received,
        peak_rss_bytes: procstat::peak_rss_bytes(pid),
    })
}
