//! Data formats: `rt.json` (JSON as JavaScript writes it), `rt.format_number` and `rt.data`
//! (typed payloads, `script::data`).

use super::Member;
use mlua::{Function, Lua, Table, Value};

/// The members this file makes.
pub(super) const MEMBERS: &[Member] = &[
    ("json", json_lib),
    ("format_number", format_number_member),
    ("data", data_table),
];

fn json_lib(lua: &Lua) -> mlua::Result<Value> {
    Ok(Value::Table(json_table(lua)?))
}

fn format_number_member(lua: &Lua) -> mlua::Result<Value> {
    Ok(Value::Function(format_number(lua)?))
}

fn data_table(lua: &Lua) -> mlua::Result<Value> {
    Ok(Value::Table(crate::script::data::table(lua)?))
}

/// `rt.json`: `encode(value)` and `decode(text)` (also given to `moonrt test` files).
/// `encode` writes JSON as JavaScript's `JSON.stringify` does: `4.0` is `4`, `-0.0` is `0`,
/// `1e21` is `1e+21`, NaN and infinities are `null`.
pub(crate) fn json_table(lua: &Lua) -> mlua::Result<Table> {
    let json = lua.create_table()?;
    json.set(
        "encode",
        lua.create_function(|lua, value: Value| {
            let v: serde_json::Value = mlua::LuaSerdeExt::from_value(lua, value)?;
            let mut out = String::new();
            crate::core::js_json::stringify(&v, &mut out);
            Ok(out)
        })?,
    )?;
    json.set(
        "decode",
        lua.create_function(|lua, text: mlua::LuaString| {
            let v: serde_json::Value = serde_json::from_slice(&text.as_bytes())
                .map_err(|e| mlua::Error::runtime(format!("invalid JSON: {e}")))?;
            mlua::LuaSerdeExt::to_value(lua, &v)
        })?,
    )?;
    Ok(json)
}

/// `rt.format_number(n)`: a number as JavaScript's `String(n)` writes it (`4.0` is `"4"`, `0.1 +
/// 0.2` is `"0.30000000000000004"`), for text a C# or JavaScript client parses.
pub(crate) fn format_number(lua: &Lua) -> mlua::Result<Function> {
    lua.create_function(|_, n: Value| match n {
        Value::Integer(i) => Ok(crate::core::js_json::number_text(i as f64)),
        Value::Number(f) => Ok(crate::core::js_json::number_text(f)),
        other => Err(mlua::Error::runtime(format!(
            "rt.format_number: expected a number, got a {}",
            other.type_name()
        ))),
    })
}
