//! Hot reload with real files in a temp folder and real clients: new sessions get the newest
//! version that loads; running sessions keep theirs; broken edits change nothing.

mod common;

use common::*;
use moonrt::client::{Client, Connect};
use std::time::{Duration, Instant};

/// A script that greets each joining player with its version tag on opcode 1.
fn script(tag: &str) -> String {
    format!("return {{ on_player_join = function(p) rt.send(p.peer, 1, {tag:?}) end }}\n")
}

/// The version a brand-new session runs.
fn fresh_version(server: &TestServer) -> String {
    static ROOM: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let room = format!(
        "fresh-{}",
        ROOM.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let mut c = server.connect(&room, "probe");
    text_on(&mut c, 1)
}

/// Waits until new sessions run `tag`; fails after a bound.
fn wait_for_version(server: &TestServer, tag: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let seen = fresh_version(server);
        if seen == tag {
            return;
        }
        assert!(Instant::now() < deadline, "still {seen:?}, never {tag:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts new sessions keep running `tag` for a while (longer than the watcher's debounce).
fn assert_stays(server: &TestServer, tag: &str) {
    let until = Instant::now() + Duration::from_millis(600);
    while Instant::now() < until {
        assert_eq!(fresh_version(server), tag);
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn setup(tag: &str) -> (TestServer, TempDir, std::path::PathBuf) {
    let dir = TempDir::new("reload");
    let path = dir.write("main.lua", &script(tag));
    (start_watching(config(), &path), dir, path)
}

#[test]
fn a_session_started_before_an_edit_keeps_its_version_while_new_ones_get_the_edit() {
    let (server, _dir, path) = setup("v1");
    let mut early = server.connect("early", "a");
    assert_eq!(text_on(&mut early, 1), "v1");
    std::fs::write(&path, script("v2")).unwrap();
    wait_for_version(&server, "v2");
    let mut late_joiner = server.connect("early", "b");
    assert_eq!(
        text_on(&mut late_joiner, 1),
        "v1",
        "the running session keeps generation 1"
    );
}

#[test]
fn a_broken_edit_keeps_the_old_version_and_the_next_good_edit_is_picked_up() {
    let (server, _dir, path) = setup("v1");
    std::fs::write(
        &path,
        "return { on_player_join = function(p) rt.send(p.peer, 1, \n",
    )
    .unwrap();
    assert_stays(&server, "v1");
    std::fs::write(&path, "error('boom at load')\n").unwrap();
    assert_stays(&server, "v1");
    std::fs::write(&path, script("v3")).unwrap();
    wait_for_version(&server, "v3");
}

#[test]
fn rapid_successive_saves_end_on_the_last_content() {
    let (server, _dir, path) = setup("v1");
    for i in 2..=9 {
        std::fs::write(&path, script(&format!("v{i}"))).unwrap();
    }
    wait_for_version(&server, "v9");
    assert_stays(&server, "v9");
}

#[test]
fn an_editor_style_save_by_rename_is_picked_up() {
    let (server, dir, path) = setup("v1");
    let temp = dir.write(".main.lua.swp", &script("v2"));
    std::fs::rename(&temp, &path).unwrap();
    wait_for_version(&server, "v2");
}

#[test]
fn a_change_to_a_required_module_is_picked_up() {
    let dir = TempDir::new("module");
    std::fs::create_dir_all(dir.0.join("game")).unwrap();
    dir.write("game/version.lua", "return 'm1'\n");
    let path = dir.write(
        "main.lua",
        "local v = require('game.version')\n\
         return { on_player_join = function(p) rt.send(p.peer, 1, v) end }\n",
    );
    let server = start_watching(config(), &path);
    assert_eq!(fresh_version(&server), "m1");
    let mut early = server.connect("early", "a");
    text_on(&mut early, 1);
    dir.write("game/version.lua", "return 'm2'\n");
    wait_for_version(&server, "m2");
    let mut joiner = server.connect("early", "b");
    assert_eq!(
        text_on(&mut joiner, 1),
        "m1",
        "running sessions keep their modules too"
    );
}

#[test]
fn a_deleted_script_keeps_the_last_version_until_it_is_recreated() {
    let (server, _dir, path) = setup("v1");
    std::fs::remove_file(&path).unwrap();
    assert_stays(&server, "v1");
    std::fs::write(&path, script("v2")).unwrap();
    wait_for_version(&server, "v2");
}

#[test]
fn moonrt_check_exits_zero_for_a_good_script_and_one_with_file_and_line_for_a_bad_one() {
    let dir = TempDir::new("check");
    let good = dir.write("main.lua", &script("v1"));
    let out = run_moonrt(&["check", good.to_str().unwrap()], &dir.0);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
    let bad = dir.write(
        "broken.lua",
        "return {\n  on_packet = function(p)\n    return p.x +\n  end\n}\n",
    );
    let out = run_moonrt(&["check", bad.to_str().unwrap()], &dir.0);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.lua:4:"), "{err}");
    let missing = run_moonrt(&["check", "nope.lua"], &dir.0);
    assert_eq!(missing.status.code(), Some(1));
    let not_a_table = dir.write("num.lua", "return 7\n");
    let out = run_moonrt(&["check", not_a_table.to_str().unwrap()], &dir.0);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must return a table"));
}

#[test]
fn sighup_reloads_the_script_when_watching_is_off() {
    let dir = TempDir::new("sighup");
    let path = dir.write("main.lua", &script("v1"));
    let config = dir.write(
        "config.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nws_listen = \"127.0.0.1:0\"\n[sessions]\nempty_session_linger_ms = 0\n\
             [script]\npath = {:?}\nwatch = false\n",
            path.to_str().unwrap()
        ),
    );
    let (mut child, addr, drain) = spawn_binary(&config);
    let version = |room: &str| {
        let mut c = Client::connect(addr.as_str(), Connect::join_or_create(room)).unwrap();
        text_on(&mut c, 1)
    };
    assert_eq!(version("a"), "v1");
    std::fs::write(&path, script("v2")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(version("b"), "v1", "nothing watches the folder");
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + WAIT;
    while version("c") != "v2" {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let log = drain.join().unwrap().join("\n");
    assert!(log.contains("script generation 2 is current"), "{log}");
}
