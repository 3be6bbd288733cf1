//! SCRIPTING.md and the editor stubs cover every `rt` function and every callback the host calls.

mod common;

use common::*;
use std::collections::BTreeSet;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The names a table makes on first use, from the source of its maker `function` in
/// `src/script/api.rs` (`member` for `rt`, `log_member` for `rt.log`).
fn lazy_names(function: &str) -> Vec<String> {
    let source = read("src/script/api.rs");
    let start = source
        .find(&format!("fn {function}("))
        .unwrap_or_else(|| panic!("api.rs has fn {function}"));
    let body = &source[start..];
    let body = &body[..body.find("\n}\n").unwrap_or(body.len())];
    let mut names = Vec::new();
    for line in body.lines() {
        let line = line.trim_start();
        if !line.starts_with('"') || !line.contains("=>") {
            continue;
        }
        for part in line.split("=>").next().unwrap_or("").split('|') {
            if let Some(name) = part.trim().split('"').nth(1) {
                names.push(name.to_owned());
            }
        }
    }
    names
}

/// The keys of `rt` as a running script sees them: the data fields, and every member `rt` and
/// `rt.log` make on first use (each read once, so `pairs` lists it).
fn rt_keys() -> BTreeSet<String> {
    let names = lazy_names("member");
    assert!(names.len() > 20, "{names:?}");
    let log_names = lazy_names("log_member");
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

/// The callback names the host looks up, from its source.
fn callbacks() -> BTreeSet<String> {
    let source = read("src/script/session.rs");
    source
        .split('"')
        .filter(|s| s.starts_with("on_") && s.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(str::to_owned)
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
