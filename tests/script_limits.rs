//! A failing, runaway or memory-hungry script costs only its own session.

mod common;

use common::*;
use moonrt::client::{Event, To};
use moonrt::core::Code;
use moonrt::core::codec::Intent;

/// Opcode 1 to the server misbehaves according to the payload; everything else relays.
const SCRIPT: &str = r#"
return {
  on_message = function(packet)
    local what = packet.payload
    if what == "error" then
      local t = nil
      return t.field                     -- a runtime error: logged, the session goes on
    elseif what == "loop" then
      while true do end                  -- stopped by the instruction budget
    elseif what == "memory" then
      local hog = {}
      for i = 1, 1e9 do hog[i] = string.rep("x", 4096) .. i end
    elseif what == "escape" then
      local found = {}
      for _, name in ipairs({"io", "debug", "dofile", "loadfile", "package"}) do
        if _G[name] ~= nil then found[#found + 1] = name end
      end
      if os.execute ~= nil or os.getenv ~= nil then found[#found + 1] = "os" end
      local ok = pcall(require, "../../etc/passwd")
      if ok then found[#found + 1] = "require" end
      rt.send(packet.sender, 2, #found == 0 and "sandboxed" or table.concat(found, ","))
    end
  end,
}
"#;

fn limited() -> moonrt::config::Config {
    let mut c = config();
    c.script.instruction_budget = 1_000_000;
    c.script.memory_limit_bytes = 4 << 20;
    c
}

fn assert_session_relays(a: &mut moonrt::client::Client, b: &mut moonrt::client::Client) {
    a.send(To::AllOthers, 9, Intent::Reliable, b"still here")
        .unwrap();
    assert_eq!(next_delivery(b).payload, b"still here");
}

#[test]
fn a_runtime_error_is_logged_and_the_session_goes_on() {
    let (server, _dir) = start_script(limited(), SCRIPT);
    let mut a = server.connect("r", "a");
    let mut b = server.connect("r", "b");
    a.send(To::Server, 1, Intent::Reliable, b"error").unwrap();
    assert_session_relays(&mut a, &mut b);
}

#[test]
fn the_script_cannot_reach_files_processes_or_the_environment() {
    let (server, _dir) = start_script(limited(), SCRIPT);
    let mut a = server.connect("r", "a");
    a.send(To::Server, 1, Intent::Reliable, b"escape").unwrap();
    assert_eq!(text_on(&mut a, 2), "sandboxed");
}

fn runaway_ends_only_its_session(what: &[u8]) {
    let (server, _dir) = start_script(limited(), SCRIPT);
    let mut bad = server.connect("bad", "x");
    let mut bad_peer = server.connect("bad", "y");
    let mut a = server.connect("good", "a");
    let mut b = server.connect("good", "b");
    bad.send(To::Server, 1, Intent::Reliable, what).unwrap();
    for client in [&mut bad, &mut bad_peer] {
        match client
            .wait_for(WAIT, |e| matches!(e, Event::Closed { .. }))
            .unwrap()
        {
            Event::Closed { code, message } => {
                assert_eq!(code, Code::ScriptFailed.as_u16(), "{message}");
                assert!(message.contains("script failed"), "{message}");
            }
            _ => unreachable!(),
        }
    }
    assert_session_relays(&mut a, &mut b);
    assert_session_relays(&mut b, &mut a);
    let mut again = server.connect("bad", "z");
    assert_eq!(again.peer_id(), 1, "a fresh session with a fresh state");
    again
        .send(To::Server, 1, Intent::Reliable, b"escape")
        .unwrap();
    assert_eq!(text_on(&mut again, 2), "sandboxed");
}

#[test]
fn an_infinite_loop_ends_only_its_own_session() {
    runaway_ends_only_its_session(b"loop");
}

#[test]
fn a_memory_bomb_ends_only_its_own_session() {
    runaway_ends_only_its_session(b"memory");
}

#[test]
fn a_broken_script_is_refused_at_startup_with_file_and_line() {
    let dir = TempDir::new("broken");
    let path = dir.write("main.lua", "local x = \nreturn {}\n");
    let source = moonrt::script::ScriptSource::read(&path).unwrap();
    let err = moonrt::script::check(&source, &config().script).unwrap_err();
    assert!(err.contains("main.lua:2:"), "{err}");
    let path = dir.write("main.lua", "return 42\n");
    let source = moonrt::script::ScriptSource::read(&path).unwrap();
    let err = moonrt::script::check(&source, &config().script).unwrap_err();
    assert_eq!(
        err,
        "main.lua must return a table of callbacks (got integer)"
    );
}
