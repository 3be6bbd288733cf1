//! Functions written in Rust that a state gets only when its script first reads them: `rt`'s
//! functions and tables, `rt.log`'s functions, `string.find/match/gmatch/gsub` (the charged
//! pattern matcher), `print` and `require`.
//!
//! Each Rust function costs a state about 280 bytes (mlua keeps the closure in a userdata), and
//! an idle session uses few of them (BENCHMARKS.md, issue 17). One `__index` function per state,
//! [`index`], makes a missing member when it is first read and stores it in its table, where
//! later reads find it as an ordinary field. The table's metatable says which makers serve it:
//! its protected `__metatable` names them (`"rt"`, `"rt.log"`, `"string"`). The globals
//! (`print`, `require`) are served through [`super::lazy_libs`], which calls [`index`] from its
//! own `__index`.
//!
//! What a script can notice (SCRIPTING.md): `pairs(rt)`, `pairs(rt.log)` and `pairs(string)`
//! list such a member only once it was read, and a member set to nil with `rawset` is made again
//! on the next read.

use mlua::{Function, Lua, Table, Value};

/// Where each state keeps [`index`] (the globals' C `__index` calls it from there).
pub(crate) const INDEX_KEY: &str = "moonrt.members";

/// What making one member is charged to the running callback's budget.
const MEMBER_COST: i64 = 1_000;

/// What makes the members of one kind of table: `nil` for a name it does not have.
type Maker = fn(&Lua, &str) -> mlua::Result<Value>;

/// The makers, by the name in their tables' `__metatable` (`_G` for the globals).
const MAKERS: [(&str, Maker); 4] = [
    ("rt", super::api::member),
    ("rt.log", super::api::log_member),
    ("string", super::pattern::member),
    ("_G", global),
];

/// Gives `table` a protected metatable named `kind` whose `__index` makes its members.
pub(crate) fn make_on_first_use(lua: &Lua, table: &Table, kind: &'static str) -> mlua::Result<()> {
    let meta = lua.create_table_with_capacity(0, 2)?;
    meta.raw_set("__index", index_function(lua)?)?;
    meta.raw_set("__metatable", kind)?;
    table.set_metatable(Some(meta))
}

/// The state's [`index`], made the first time it is asked for.
pub(crate) fn index_function(lua: &Lua) -> mlua::Result<Function> {
    if let Some(index) = lua.named_registry_value::<Option<Function>>(INDEX_KEY)? {
        return Ok(index);
    }
    let index = lua.create_function(index)?;
    lua.set_named_registry_value(INDEX_KEY, &index)?;
    Ok(index)
}

/// `__index(table, key)`: makes member `key` of `table`, stores it there (raw) and returns it.
fn index(lua: &Lua, (table, key): (Table, Value)) -> mlua::Result<Value> {
    let Value::String(name) = &key else {
        return Ok(Value::Nil);
    };
    let Ok(name) = name.to_str() else {
        return Ok(Value::Nil);
    };
    let kind = match table.metatable().map(|m| m.raw_get::<Value>("__metatable")) {
        Some(Ok(Value::String(kind))) => kind.to_string_lossy(),
        _ if table == lua.globals() => "_G".to_owned(),
        _ => return Ok(Value::Nil),
    };
    let Some((_, make)) = MAKERS.iter().find(|(of, _)| *of == kind) else {
        return Ok(Value::Nil);
    };
    let value = make(lua, &name)?;
    if !value.is_nil() {
        // A script that removes a member with `rawset` and reads it again, in a loop, makes a
        // function per turn: charged like the work of a thousand instructions. Reading a name
        // the table does not have makes nothing and costs nothing more than the call.
        super::sandbox::charge(lua, MEMBER_COST)?;
        table.raw_set(key, &value)?;
    }
    Ok(value)
}

/// The globals written in Rust.
fn global(lua: &Lua, name: &str) -> mlua::Result<Value> {
    Ok(match name {
        "print" => Value::Function(super::api::log_function(lua, log::Level::Info)?),
        "require" => Value::Function(super::sandbox::require_function(lua)?),
        _ => Value::Nil,
    })
}

#[cfg(test)]
mod tests {
    use crate::script::sandbox::{BUDGET_ERROR, test_state as state};

    #[test]
    fn a_rust_function_is_made_when_first_read_and_kept() {
        let lua = state(1_000_000);
        let seen: String = lua
            .load(
                r#"
                local before = tostring(rawget(string, "find")) .. " " .. tostring(rawget(_G, "require"))
                local found = ("moonrt"):find("rt", 1, true)
                local same = string.find == string.find and rawget(string, "find") ~= nil
                return table.concat({
                  before, tostring(found), tostring(same), getmetatable(string),
                  type(require), type(print),
                  tostring(select(2, pcall(require, "nope"))):match("module .- folder"),
                }, " | ")
                "#,
            )
            .eval()
            .unwrap();
        assert_eq!(
            seen,
            "nil nil | 5 | true | string | function | function | \
             module \"nope\" not found: no nope.lua in the script folder"
        );
    }

    #[test]
    fn an_unread_rust_function_costs_the_state_nothing() {
        let lua = state(1_000_000);
        lua.gc_collect().unwrap();
        let idle = lua.used_memory();
        lua.load("local _ = string.gsub, string.gmatch")
            .exec()
            .unwrap();
        lua.gc_collect().unwrap();
        let used = lua.used_memory();
        assert!(
            used > idle + 300,
            "two functions made: {idle} -> {used} bytes"
        );
    }

    #[test]
    fn reading_a_name_that_is_not_there_is_not_charged() {
        let lua = state(1_000_000);
        let missing: bool = lua
            .load("local n = 0 for i = 1, 5000 do if rt_like == nil and string.nope == nil then n = n + 1 end end return n == 5000")
            .eval()
            .unwrap();
        assert!(
            missing,
            "5,000 reads of a missing member stay within a 1,000,000 budget"
        );
    }

    #[test]
    fn remaking_a_removed_member_in_a_loop_is_charged() {
        // A few instructions per turn, but a function made in Rust each time.
        let lua = state(1_000_000);
        let err = lua
            .load("for i = 1, 2000 do rawset(string, 'find', nil) local _ = string.find end")
            .exec()
            .unwrap_err()
            .to_string();
        assert!(err.contains(BUDGET_ERROR), "{err}");
    }
}
