//! The callbacks table a script returns: copied key by key (raw, so no metamethod of the
//! script's runs outside a callback's budget) into a plain table the host owns, with a warning
//! for every key that is not a moonrt callback, naming the callback it probably means.

use mlua::{Lua, Table, Value};

/// Every callback the host calls, by name.
pub(crate) const KNOWN: [&str; 23] = [
    "on_session_start",
    "on_session_end",
    "on_player_connect",
    "on_player_join",
    "on_player_leave",
    "on_network_change",
    "on_player_disconnect",
    "on_player_reconnect",
    "on_frame_sync",
    "on_frame",
    "on_group_join",
    "on_group_leave",
    "on_player_props",
    "on_session_props",
    "on_group_change",
    "on_packet",
    "on_send_to_player",
    "on_send_to_group",
    "on_message",
    "on_tick",
    "on_process_start",
    "on_process_terminate",
    "on_health_check",
];

/// The seed services' names for callbacks, and what they are in moonrt.
const VENDOR_NAMES: [(&str, &str); 24] = [
    (
        "init",
        "on_session_start (GameLift's init(rtSession): the session is `rt`)",
    ),
    ("onStartGameSession", "on_session_start"),
    ("onProcessStarted", "on_process_start"),
    ("onProcessTerminate", "on_process_terminate"),
    ("onHealthCheck", "on_health_check"),
    (
        "onPlayerConnect",
        "on_player_connect (GameLift: accept or refuse) or on_player_join (GameSparks)",
    ),
    ("onPlayerAccepted", "on_player_join"),
    ("onPlayerDisconnect", "on_player_leave"),
    (
        "onPacket",
        "on_packet, or rt.on_packet(opcode, fn) for one opcode",
    ),
    ("onMessage", "on_message"),
    ("onSendToPlayer", "on_send_to_player"),
    ("onSendToGroup", "on_send_to_group"),
    ("onPlayerJoinGroup", "on_group_join"),
    ("onPlayerLeaveGroup", "on_group_leave"),
    ("onCreateRoom", "on_session_start"),
    ("onInitGameData", "on_session_start"),
    ("onDestroyRoom", "on_session_end"),
    ("onJoinRoom", "on_player_join"),
    ("onLeaveRoom", "on_player_leave"),
    ("onRemovePlayer", "on_player_leave"),
    ("onRecvFromClient", "on_message"),
    ("onChangeCustomPlayerStatus", "on_player_props"),
    ("onChangeRoom", "on_session_props"),
    ("onChangePlayerNetworkState", "on_network_change"),
];

/// The callbacks a script returned, in a table without a metatable, and what looked wrong.
pub(crate) struct Callbacks {
    /// Known names bound to functions, nothing else.
    pub table: Table,
    /// One line per key that is not a moonrt callback, or a callback that is not a function.
    pub warnings: Vec<String>,
}

/// Copies the known callbacks out of `returned` with raw reads and reports the rest.
pub(crate) fn collect(lua: &Lua, returned: &Table) -> mlua::Result<Callbacks> {
    let table = lua.create_table()?;
    let mut warnings = Vec::new();
    // `pairs` on an mlua Table is `lua_next`: raw, no `__pairs` or `__index` runs.
    for pair in returned.pairs::<Value, Value>() {
        let (key, value) = pair?;
        let name = match &key {
            Value::String(s) => s.to_string_lossy(),
            other => {
                warnings.push(format!(
                    "the returned table has a {} key; callbacks are named by strings",
                    other.type_name()
                ));
                continue;
            }
        };
        if KNOWN.contains(&name.as_str()) {
            match value {
                Value::Function(f) => table.raw_set(name.as_str(), f)?,
                other => warnings.push(format!(
                    "{name} is not a function (it is {}): it is never called",
                    other.type_name()
                )),
            }
        } else {
            warnings.push(unknown_key(&name));
        }
    }
    warnings.sort();
    Ok(Callbacks { table, warnings })
}

/// The warning for a key moonrt does not know.
fn unknown_key(name: &str) -> String {
    if name == "configuration" {
        return "\"configuration\" is not a moonrt callback: GameLift's configuration table \
                (pingIntervalTime) maps to [server] idle_timeout_ms in config.toml"
            .into();
    }
    if let Some((_, moonrt)) = VENDOR_NAMES.iter().find(|(vendor, _)| *vendor == name) {
        return format!(
            "{name:?} is not a moonrt callback and is never called: did you mean {moonrt}?"
        );
    }
    let squashed = squash(name);
    if let Some(known) = KNOWN.iter().find(|k| squash(k) == squashed) {
        return format!(
            "{name:?} is not a moonrt callback and is never called: did you mean {known}?"
        );
    }
    format!(
        "{name:?} is not a moonrt callback and is never called (callbacks: {})",
        KNOWN.join(", ")
    )
}

/// Lower case without `_`: `onTick`, `OnTick` and `on_tick` are the same word.
fn squash(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warnings_for(script: &str) -> Vec<String> {
        let lua = Lua::new();
        let returned: Table = lua.load(script).eval().unwrap();
        collect(&lua, &returned).unwrap().warnings
    }

    #[test]
    fn vendor_callback_names_are_named_with_their_moonrt_callback() {
        let w = warnings_for(
            "return { onMessage = function() end, onPlayerAccepted = function() end, \
             onPacket = function() end, configuration = { pingIntervalTime = 30000 } }",
        );
        assert_eq!(w.len(), 4, "{w:?}");
        assert!(
            w.iter()
                .any(|l| l.contains("\"onMessage\"") && l.contains("on_message"))
        );
        assert!(
            w.iter()
                .any(|l| l.contains("onPlayerAccepted") && l.contains("on_player_join"))
        );
        assert!(
            w.iter()
                .any(|l| l.contains("onPacket") && l.contains("on_packet"))
        );
        assert!(
            w.iter()
                .any(|l| l.contains("configuration") && l.contains("idle_timeout_ms"))
        );
    }

    #[test]
    fn a_misspelt_callback_gets_a_suggestion_and_known_ones_no_warning() {
        let w = warnings_for(
            "return { onTick = function() end, on_player_join = function() end, \
             on_message = 5 }",
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w.iter().any(|l| l.contains("on_message is not a function")),
            "{w:?}"
        );
        assert!(
            w.iter()
                .any(|l| l.contains("\"onTick\"") && l.contains("did you mean on_tick")),
            "{w:?}"
        );
    }

    #[test]
    fn metamethods_of_the_returned_table_are_not_run() {
        let lua = Lua::new();
        let returned: Table = lua
            .load(
                "return setmetatable({ on_tick = function() end }, \
                 { __index = function() while true do end end, \
                   __pairs = function() while true do end end })",
            )
            .eval()
            .unwrap();
        let c = collect(&lua, &returned).unwrap();
        assert!(c.table.raw_get::<Value>("on_tick").unwrap().is_function());
        assert!(c.table.metatable().is_none());
        assert!(c.warnings.is_empty());
    }
}
