//! Hostile scripts and payloads against the real binary, one case per known hole in script
//! containment. Each case asserts that the offending session ends with its documented code
//! (CLOSE 29), that a log line names the cause, that a bystander session keeps exchanging
//! messages throughout without losing one, that the process stays under [`MEMORY_BOUND`], and
//! that the server still stops gracefully afterwards.

mod common;

use common::*;
use moonrt::client::{Client, Connect, Event, To};
use moonrt::core::Code;
use moonrt::core::codec::Intent;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Peak resident memory the process may reach in any case (SCRIPTING.md states it).
const MEMORY_BOUND: u64 = 256 << 20;
/// A bystander waiting this long for a message means the loop froze (the holes froze it for
/// 20 s to forever; a contained case costs at most a callback's time limit).
const FROZEN: Duration = Duration::from_secs(2);

/// One `on_message` per hole, picked by the payload's first word.
const HOSTILE: &str = include_str!("fixtures/hostile.lua");

/// The real binary on a hostile script, its log collected as it comes.
struct Hostile {
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
    _dir: TempDir,
}

impl Hostile {
    fn start(script: &str, extra_config: &str, env: &[(&str, &str)]) -> Hostile {
        let dir = TempDir::new("hostile");
        let main = dir.write("main.lua", script);
        let config = dir.write(
            "config.toml",
            &format!(
                "[server]\nlisten = \"127.0.0.1:0\"\nws_listen = \"\"\n\
                 [sessions]\nempty_session_linger_ms = 0\n\
                 [script]\npath = {:?}\non_error = \"end_session\"\n{extra_config}",
                main.to_str().unwrap()
            ),
        );
        let mut child = Command::new(env!("CARGO_BIN_EXE_moonrt"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some(rest) = line.split("listening tcp=").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap().to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the server starts");
        Hostile {
            child,
            addr,
            log,
            _dir: dir,
        }
    }

    fn connect(&self, room: &str) -> Client {
        Client::connect(self.addr.as_str(), Connect::join_or_create(room).name("p")).unwrap()
    }

    /// Waits until a log line contains every one of `parts`.
    fn wait_log(&self, parts: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(line) = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {parts:?}; the log:\n{}",
                self.log.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_bytes(&self) -> usize {
        self.log.lock().unwrap().iter().map(|l| l.len() + 1).sum()
    }

    /// Peak resident memory so far (VmHWM).
    fn peak_memory(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kb * 1024
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill only sends a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits for the process to exit; its status code.
    fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the process did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM after a case: the server must still stop gracefully.
    fn stop(mut self) {
        self.signal(libc::SIGTERM);
        assert_eq!(self.wait_exit(Duration::from_secs(10)), Some(0));
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Two players in another session exchanging a message every 10 ms on their own thread.
struct Bystanders {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u64, u64, Duration)>,
}

impl Bystanders {
    fn start(server: &Hostile) -> Bystanders {
        let mut a = server.connect("calm");
        let mut b = server.connect("calm");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut sent, mut received) = (0u64, 0u64);
            let mut longest = Duration::ZERO;
            while !flag.load(Ordering::Relaxed) {
                a.send(To::AllOthers, 3, Intent::Reliable, b"tick").unwrap();
                sent += 1;
                let asked = Instant::now();
                match b
                    .wait_for(Duration::from_secs(30), |e| matches!(e, Event::Delivery(_)))
                    .expect("the bystander session keeps working")
                {
                    Event::Delivery(_) => received += 1,
                    _ => unreachable!(),
                }
                longest = longest.max(asked.elapsed());
                std::thread::sleep(Duration::from_millis(10));
            }
            (sent, received, longest)
        });
        std::thread::sleep(Duration::from_millis(100));
        Bystanders { stop, thread }
    }

    /// Stops them; asserts nothing was lost and the loop never froze.
    fn finish(self) {
        std::thread::sleep(Duration::from_millis(100));
        self.stop.store(true, Ordering::Relaxed);
        let (sent, received, longest) = self.thread.join().unwrap();
        assert!(sent > 10, "the bystanders barely ran ({sent} messages)");
        assert_eq!(received, sent, "the bystander session lost messages");
        assert!(
            longest < FROZEN,
            "the bystander session waited {longest:?} for a message: the loop froze"
        );
    }
}

/// `main.lua:N` for the line of HOSTILE holding `marker`.
fn at(marker: &str) -> String {
    let n = HOSTILE
        .lines()
        .position(|l| l.contains(marker))
        .expect("marker in the script");
    format!("main.lua:{}", n + 1)
}

/// Runs one case: the hostile session ends with 29 and `cause` is logged; bystanders, memory
/// and a graceful stop are checked.
fn contained(case: &str, payload: &[u8], cause: &[&str]) {
    contained_with(case, payload, cause, "");
}

/// Cases about another limit than time get a time limit no loaded test machine reaches first.
const SLOW_OK: &str = "callback_time_limit_ms = 10000\n";

fn contained_with(case: &str, payload: &[u8], cause: &[&str], script_config: &str) {
    let server = Hostile::start(HOSTILE, script_config, &[]);
    let bystanders = Bystanders::start(&server);
    let mut evil = server.connect("evil");
    evil.send(To::Server, 1, Intent::Reliable, payload).unwrap();
    assert_eq!(
        closed_code(&mut evil),
        Code::ScriptFailed.as_u16(),
        "{case}: the offending session ends with 29"
    );
    server.wait_log(cause);
    bystanders.finish();
    let peak = server.peak_memory();
    assert!(
        peak < MEMORY_BOUND,
        "{case}: peak memory {} MiB",
        peak >> 20
    );
    server.stop();
}

#[test]
fn a_looping_finalizer_is_refused_where_it_is_set() {
    contained(
        "gc",
        b"gc",
        &["__gc finalizers are not allowed", &at("__gc = function")],
    );
}

#[test]
fn a_backtracking_pattern_in_the_script_is_stopped_by_the_budget() {
    contained("find", b"find", &["ran past its", &at("string.find(")]);
}

#[test]
fn a_client_payload_that_makes_the_trim_idiom_backtrack_ends_only_its_session() {
    // Spaces with a word at the end: each start of `(.-)` makes `%s*` run to the word and back.
    let mut payload = b"trim".to_vec();
    payload.extend(std::iter::repeat_n(b' ', 60_000));
    payload.push(b'x');
    contained("trim", &payload, &["ran past its", &at("payload:match(")]);
}

#[test]
fn nested_coroutines_cannot_reset_the_instruction_count() {
    contained("coroutines", b"coroutines", &["ran past its"]);
}

#[test]
fn sends_that_would_pass_the_memory_limit_end_the_session() {
    contained_with(
        "send",
        b"send",
        &["rt.send would take the session past its memory limit"],
        SLOW_OK,
    );
}

#[test]
fn timers_are_counted_against_the_memory_limit() {
    contained_with(
        "timers",
        b"timers",
        &["rt.set_timeout would take the session past its memory limit"],
        SLOW_OK,
    );
}

#[test]
fn cleared_timers_still_held_by_the_core_are_counted() {
    contained_with(
        "timer_churn",
        b"timer_churn",
        &["past its memory limit"],
        SLOW_OK,
    );
}

#[test]
fn a_log_flood_is_cut_and_rate_limited() {
    let server = Hostile::start(HOSTILE, SLOW_OK, &[]);
    let before = server.log_bytes();
    let mut evil = server.connect("evil");
    evil.send(To::Server, 1, Intent::Reliable, b"log").unwrap();
    assert_eq!(closed_code(&mut evil), Code::ScriptFailed.as_u16());
    server.wait_log(&["the flood went through"]);
    let cut = server.wait_log(&["more bytes cut"]);
    assert!(cut.len() < 4096 + 200, "a line of {} bytes", cut.len());
    let written = server.log_bytes() - before;
    assert!(
        written < 512 << 10,
        "a 4 MB line and 100,000 more wrote {written} bytes of log"
    );
    server.stop();
}

#[test]
fn a_move_over_the_whole_integer_range_is_refused_before_it_starts() {
    contained(
        "move",
        b"move",
        &["ran past its instruction budget", &at("table.move(")],
    );
}

#[test]
fn repeated_sorting_is_charged_to_the_budget() {
    contained("sort", b"sort", &["ran past its"]);
}

#[test]
fn full_collections_are_not_available() {
    contained_with(
        "collect",
        b"collect",
        &["collectgarbage(collect) is not available"],
        SLOW_OK,
    );
}

#[test]
fn concatenating_megabyte_strings_in_a_loop_is_stopped_by_the_clock() {
    contained("concat", b"concat", &["ran past its"]);
}

#[test]
fn a_load_reader_that_repeats_megabytes_is_charged_per_piece() {
    contained("reader", b"reader", &["ran past its"]);
}

#[test]
fn repeated_large_string_building_is_charged_to_the_budget() {
    contained("rep", b"rep", &["ran past its"]);
}

/// A `__index` that counts and burns CPU on the table the script returns: the host copies the
/// callbacks raw when the script loads, so it never runs (it used to run on every lookup of a
/// callback the script does not define, before the budget was reset, its errors discarded).
#[test]
fn metamethods_on_the_returned_callbacks_table_never_run() {
    let server = Hostile::start(
        "lookups = 0\n\
         return setmetatable({ on_message = function(p) rt.send(p.sender, 9, tostring(lookups)) end }, \
         { __index = function() lookups = lookups + 1 for _ = 1, 1e6 do end end, \
           __pairs = function() while true do end end })",
        "",
        &[],
    );
    let bystanders = Bystanders::start(&server);
    let mut a = server.connect("evil");
    let mut b = server.connect("evil");
    for _ in 0..20 {
        a.send(To::AllOthers, 4, Intent::Reliable, b"plain relay")
            .unwrap();
        assert_eq!(next_delivery(&mut b).payload, b"plain relay");
    }
    a.send(To::Server, 4, Intent::Reliable, b"count").unwrap();
    assert_eq!(text_on(&mut a, 9), "0", "the __index metamethod ran");
    bystanders.finish();
    assert!(
        !server
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("ERROR")),
        "nothing failed"
    );
    server.stop();
}

#[test]
fn a_fifo_or_a_device_in_the_script_folder_never_blocks_or_fills_memory() {
    let server = Hostile::start("return {}", "watch = true\n", &[]);
    let bystanders = Bystanders::start(&server);
    let folder = Path::new(&server._dir.0);
    let fifo = folder.join("helper.lua");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo only creates a file at a path we own.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
    std::os::unix::fs::symlink("/dev/zero", folder.join("zero.lua")).unwrap();
    std::os::unix::fs::symlink(folder, folder.join("loop")).unwrap();
    server.wait_log(&["helper.lua skipped", "not a regular file"]);
    server.wait_log(&["zero.lua skipped", "not a regular file"]);
    std::fs::write(
        folder.join("main.lua"),
        "return { on_player_join = function() end }",
    )
    .unwrap();
    server.wait_log(&["script generation 2 is current"]);
    bystanders.finish();
    assert!(server.peak_memory() < MEMORY_BOUND);
    server.stop();
}

#[test]
fn a_script_path_that_is_a_device_is_refused_at_startup() {
    let dir = TempDir::new("devzero");
    let config = dir.write(
        "config.toml",
        "[server]\nlisten = \"127.0.0.1:0\"\nws_listen = \"\"\n[script]\npath = \"/dev/zero\"\n",
    );
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_moonrt"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(10));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn moonrt_check_finishes_quickly_on_every_hostile_top_level() {
    let dir = TempDir::new("check-hostile");
    for (name, script) in [
        (
            "gc",
            "setmetatable({}, { __gc = function() while true do end end }) return {}",
        ),
        ("loop", "while true do end"),
        (
            "find",
            "string.find(string.rep('a', 300), 'a*a*a*a*a*a*a*a*b') return {}",
        ),
        (
            "coroutines",
            "while true do coroutine.wrap(function() end)() end",
        ),
        (
            "move",
            "table.move({}, 1, math.maxinteger - 1, 1) return {}",
        ),
        (
            "memory",
            "local t = {} while true do t[#t + 1] = string.rep('x', 4096) end",
        ),
    ] {
        let path = dir.write(&format!("{name}.lua"), script);
        let started = Instant::now();
        let out = run_moonrt(&["check", path.to_str().unwrap()], &dir.0);
        assert_eq!(out.status.code(), Some(1), "{name}: {out:?}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name}: check took {:?}",
            started.elapsed()
        );
    }
}

/// The watchdog's case: a stall no script limit can see (the test-only `rt.test_stall_ms`).
#[test]
fn a_loop_that_never_comes_back_is_logged_then_ends_the_process_with_status_70() {
    let mut server = Hostile::start(
        HOSTILE,
        "[watchdog]\nstall_log_ms = 200\nstall_exit_ms = 1500\n",
        &[("MOONRT_TEST_HOOKS", "1")],
    );
    let mut evil = server.connect("evil");
    evil.send(To::Server, 1, Intent::Reliable, b"stall 600000")
        .unwrap();
    let line = server.wait_log(&["event loop stalled", "session#", "on_message"]);
    assert!(line.contains("WARN"), "{line}");
    assert_eq!(
        server.wait_exit(Duration::from_secs(20)),
        Some(moonrt::watchdog::EXIT_STALLED)
    );
    server.wait_log(&["exiting with status 70"]);
}

#[test]
fn sigterm_stops_the_process_even_while_the_loop_is_stuck() {
    let mut server = Hostile::start(
        HOSTILE,
        "[watchdog]\nstall_exit_ms = 0\n",
        &[("MOONRT_TEST_HOOKS", "1")],
    );
    let mut evil = server.connect("evil");
    evil.send(To::Server, 1, Intent::Reliable, b"stall 600000")
        .unwrap();
    server.wait_log(&["event loop stalled"]);
    server.signal(libc::SIGTERM);
    assert_eq!(
        server.wait_exit(Duration::from_secs(20)),
        Some(moonrt::watchdog::EXIT_FORCED_STOP)
    );
    server.wait_log(&["stop requested", "session#", "on_message"]);
}

#[test]
fn a_stall_is_not_charged_to_clients_that_kept_sending() {
    let server = Hostile::start(
        HOSTILE,
        "[limits]\nmax_messages_per_sec = 50\n",
        &[("MOONRT_TEST_HOOKS", "1")],
    );
    let mut a = server.connect("calm");
    let mut b = server.connect("calm");
    let receiver = std::thread::spawn(move || {
        let mut arrivals = Vec::new();
        for _ in 0..100 {
            next_delivery(&mut b);
            arrivals.push(Instant::now());
        }
        (b, arrivals)
    });
    let mut evil = server.connect("evil");
    evil.send(To::Server, 1, Intent::Reliable, b"stall 2000")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // 40 a second for 2.5 s: under the limit, but all read in one burst after the stall.
    let first_sent = Instant::now();
    for _ in 0..100 {
        a.send(To::AllOthers, 3, Intent::Reliable, b"m").unwrap();
        std::thread::sleep(Duration::from_millis(25));
    }
    let (mut b, arrivals) = receiver.join().unwrap();
    assert!(
        arrivals[0].duration_since(first_sent) >= Duration::from_millis(1500),
        "the loop did not stall, so this case proves nothing"
    );
    a.send(To::AllOthers, 3, Intent::Reliable, b"last").unwrap();
    assert_eq!(
        next_delivery(&mut b).payload,
        b"last",
        "a was not disconnected"
    );
    server.stop();
}

#[test]
fn a_zero_delay_timer_chain_runs_once_per_turn_and_starves_no_session() {
    let server = Hostile::start(HOSTILE, "", &[]);
    let bystanders = Bystanders::start(&server);
    let mut evil = server.connect("evil");
    evil.send(To::Server, 1, Intent::Reliable, b"spin").unwrap();
    // The spinning session still welcomes its players and relays their messages.
    let mut joiner = server.connect("evil");
    joiner
        .send(To::AllOthers, 4, Intent::Reliable, b"still here")
        .unwrap();
    assert_eq!(next_delivery(&mut evil).payload, b"still here");
    let spins = |c: &mut Client| -> u64 {
        c.send(To::Server, 1, Intent::Reliable, b"spins").unwrap();
        String::from_utf8(next_delivery(c).payload)
            .unwrap()
            .parse()
            .unwrap()
    };
    let first = spins(&mut evil);
    std::thread::sleep(Duration::from_millis(300));
    let later = spins(&mut evil);
    assert!(
        later > first,
        "the chain keeps running, once per turn ({first} then {later})"
    );
    bystanders.finish();
    // Nothing stalled: no stall line, and the process stops gracefully (not status 70).
    assert!(
        !server
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("stall")),
        "a stall was logged"
    );
    server.stop();
}

#[test]
fn a_thousand_timers_due_at_once_end_their_session_not_the_loop() {
    contained(
        "timer_storm",
        b"timer_storm",
        &[
            "its timers ran",
            "in one loop turn",
            "callback_time_limit_ms",
        ],
    );
}
