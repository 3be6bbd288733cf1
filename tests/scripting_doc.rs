//! SCRIPTING.md and the editor stubs cover every `rt` function and every callback the host calls.

mod common;

use common::*;
use std::collections::BTreeSet;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The keys of `rt` as a running script sees them: the data fields, and every member `rt` and
/// `rt.log` make on first use (each read once, so `pairs` lists it).
fn rt_keys() -> BTreeSet<String> {
    let api = moonrt::script::api_names();
    let names: Vec<String> = api.rt.iter().map(|n| n.to_string()).collect();
    assert!(names.len() > 20, "{names:?}");
    let log_names: Vec<String> = api.log.iter().map(|n| n.to_string()).collect();
    assert_eq!(log_names, ["debug", "info", "warn", "error"]);
    let list = |names: &[String]| -> String {
        let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
        quoted.join(", ")
    };
    let script = r#"
        local names = { NAMES }
        local log_names = { LOG_NAMES }
        return {
          on_player_join = function(player)
            for _, name in ipairs(names) do local _ = rt[name] end
            for _, name in ipairs(log_names) do local _ = rt.log[name] end
            local keys = {}
            for k, v in pairs(rt) do
              if type(v) == "table" and k ~= "session" then
                for sub in pairs(v) do keys[#keys + 1] = k .. "." .. sub end
              else
                keys[#keys + 1] = k
              end
            end
            rt.send(player.peer, 1, table.concat(keys, " "))
          end,
        }
        "#
    .replace("LOG_NAMES", &list(&log_names))
    .replace("NAMES", &list(&names));
    let (server, _dir) = start_script(config(), &script);
    let mut a = server.connect("r", "a");
    text_on(&mut a, 1).split(' ').map(str::to_owned).collect()
}

/// The callback names the host looks up, from its registry.
fn callbacks() -> BTreeSet<String> {
    moonrt::script::api_names()
        .callbacks
        .iter()
        .map(|n| n.to_string())
        .collect()
}

#[test]
fn every_rt_function_is_documented_and_has_a_stub() {
    let guide = read("SCRIPTING.md");
    let stubs = read("lua/types/rt.lua");
    let keys = rt_keys();
    assert!(
        keys.contains("send") && keys.contains("json.encode"),
        "{keys:?}"
    );
    let mut missing = Vec::new();
    for key in &keys {
        if !guide.contains(&format!("rt.{key}")) {
            missing.push(format!("SCRIPTING.md lacks rt.{key}"));
        }
        let stub = match key.split_once('.') {
            Some((table, f)) => format!("function {}.{f}(", capitalize(table)),
            None => format!("rt.{key}"),
        };
        if !stubs.contains(&stub) && !stubs.contains(&format!("---@field {key} ")) {
            missing.push(format!("lua/types/rt.lua lacks {stub}"));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[test]
fn every_callback_is_documented_and_has_a_stub() {
    let guide = read("SCRIPTING.md");
    let stubs = read("lua/types/rt.lua");
    let names = callbacks();
    assert!(
        names.contains("on_player_connect") && names.contains("on_tick"),
        "{names:?}"
    );
    for name in names {
        assert!(
            guide.contains(&format!("`{name}(")),
            "SCRIPTING.md lacks `{name}("
        );
        assert!(
            stubs.contains(&format!("---@field {name} ")),
            "stubs lack {name}"
        );
    }
}
