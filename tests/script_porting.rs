//! Traps for scripts ported from GameLift, GameSparks and MGOBE: vendor callback names are
//! reported, an empty target list is an error, and process-level setup reaches every session.

mod common;

use common::*;
use moonrt::client::{Connect, To};
use moonrt::core::Code;
use moonrt::core::codec::Intent;

/// A GameLift script ported with its callback names unchanged: every one is a no-op here.
const VENDOR_NAMED: &str = r#"
local function init(session) end
return {
  init = init,
  onMessage = function(msg) end,
  onPlayerAccepted = function(player) end,
  onPacket = function(packet) end,
  configuration = { pingIntervalTime = 30000 },
  on_player_join = function(player) end,
}
"#;

#[test]
fn check_warns_about_vendor_callback_names_and_strict_refuses_them() {
    let dir = TempDir::new("porting");
    let path = dir.write("main.lua", VENDOR_NAMED);
    let out = run_moonrt(&["check", path.to_str().unwrap()], &dir.0);
    assert!(out.status.success(), "warnings alone pass: {out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for (vendor, ours) in [
        ("\"onMessage\"", "on_message"),
        ("\"onPlayerAccepted\"", "on_player_join"),
        ("\"onPacket\"", "on_packet"),
        ("\"init\"", "on_session_start"),
        ("\"configuration\"", "idle_timeout_ms"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.starts_with("warning:") && l.contains(vendor) && l.contains(ours)),
            "no warning naming {vendor} and {ours} in:\n{err}"
        );
    }
    assert!(!err.contains("on_player_join\" is not"), "{err}");
    let strict = run_moonrt(&["check", "--strict", path.to_str().unwrap()], &dir.0);
    assert_eq!(strict.status.code(), Some(1), "{strict:?}");
    assert!(String::from_utf8_lossy(&strict.stderr).contains("refused by --strict"));
    let clean = dir.write("clean.lua", "return { on_player_join = function() end }");
    let out = run_moonrt(&["check", "--strict", clean.to_str().unwrap()], &dir.0);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
}

#[test]
fn an_empty_target_list_is_an_error_not_silence() {
    let (server, _dir) = start_script(
        config(),
        r#"
        return {
          on_message = function(packet)
            local ok, err = pcall(rt.send, {}, 5, "to nobody")
            rt.send(packet.sender, 6, ok and "sent" or tostring(err))
          end,
        }
        "#,
    );
    let mut a = server.connect("r", "a");
    a.send(To::Server, 1, Intent::Reliable, b"go").unwrap();
    let answer = text_on(&mut a, 6);
    assert!(
        answer.contains("empty") && answer.contains("\"all\""),
        "{answer}"
    );
}

#[test]
fn what_on_process_start_returns_is_every_sessions_read_only_rt_process() {
    let mut c = config();
    c.script.args = vec!["eu-west".into()];
    let (server, _dir) = start_script(
        c,
        r#"
        return {
          on_process_start = function(args)
            return { region = args[1], maps = { "dust", "ice" } }
          end,
          on_player_join = function(player)
            local ok = pcall(function() rt.process.region = "changed" end)
            local nested = pcall(function() rt.process.maps[1] = "changed" end)
            rt.send(player.peer, 1, string.format("%s %s %d %s %s", rt.process.region,
              rt.process.maps[2], #rt.process.maps, tostring(ok), tostring(nested)))
          end,
        }
        "#,
    );
    let mut a = server.connect("one", "a");
    assert_eq!(text_on(&mut a, 1), "eu-west ice 2 false false");
    let mut b = server.connect("two", "b");
    assert_eq!(
        text_on(&mut b, 1),
        "eu-west ice 2 false false",
        "another session reads the same, unchanged"
    );
}

#[test]
fn on_process_start_returning_false_stops_the_server_from_starting() {
    let dir = TempDir::new("not-ready");
    let path = dir.write(
        "main.lua",
        "return { on_process_start = function() return false end }",
    );
    let source = moonrt::script::ScriptSource::read(&path).unwrap();
    let err = match moonrt::script::LuaHooks::new(source, &config()) {
        Ok(_) => panic!("a script that is not ready was accepted"),
        Err(e) => e,
    };
    assert!(err.contains("not ready"), "{err}");
}

#[test]
fn a_budget_overrun_in_on_session_start_rejects_the_joiner_with_script_failed() {
    let mut c = config();
    c.script.instruction_budget = 100_000;
    let (server, _dir) = start_script(
        c,
        "return { on_session_start = function() while true do end end }",
    );
    let err = moonrt::client::Client::connect(server.addr, Connect::join_or_create("r").name("a"))
        .err()
        .expect("the joiner is refused");
    match err {
        moonrt::client::ClientError::Rejected { code, .. } => {
            assert_eq!(code, Code::ScriptFailed.as_u16())
        }
        other => panic!("expected a REJECT, got {other}"),
    }
}
