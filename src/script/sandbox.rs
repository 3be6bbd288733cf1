//! Builds one sandboxed Lua state: safe standard libraries only, `require` confined to the script
//! folder, a memory cap, and an instruction budget per callback that `pcall` cannot swallow.

use super::source::ScriptSource;
use mlua::{HookTriggers, Lua, LuaOptions, StdLib, Table, Value, VmState};
use std::path::{Component, PathBuf};
use std::rc::Rc;

/// How often (in VM instructions) the budget is checked.
const BUDGET_STEP: u32 = 1_000;

/// The per-callback instruction budget, kept as app data in each state.
#[derive(Debug)]
pub(crate) struct Budget {
    /// Instructions left for the running callback.
    pub remaining: i64,
    /// Set once the budget ran out; stays set so the error cannot be caught and ignored.
    pub exhausted: bool,
}

/// The error text a budget overrun raises (checked by the host to end the session).
pub(crate) const BUDGET_ERROR: &str = "instruction budget exceeded";

/// A new sandboxed state. `require` loads modules from `source`'s snapshot; `memory_limit` caps
/// the state.
pub(crate) fn new_state(source: Rc<ScriptSource>, memory_limit: usize) -> mlua::Result<Lua> {
    let libs = StdLib::TABLE
        | StdLib::STRING
        | StdLib::MATH
        | StdLib::UTF8
        | StdLib::COROUTINE
        | StdLib::OS;
    let lua = Lua::new_with(libs, LuaOptions::default())?;
    let globals = lua.globals();

    // os: the clock and dates only; nothing that touches files, processes or the environment.
    let os: Table = globals.get("os")?;
    let safe_os = lua.create_table()?;
    for name in ["time", "clock", "date", "difftime"] {
        safe_os.set(name, os.get::<Value>(name)?)?;
    }
    globals.set("os", safe_os)?;
    // string.dump makes binary chunks, which could bypass the text-only `load`.
    let string: Table = globals.get("string")?;
    string.set("dump", Value::Nil)?;
    for name in ["dofile", "loadfile"] {
        globals.set(name, Value::Nil)?;
    }
    lua.set_app_data(Budget {
        remaining: i64::MAX,
        exhausted: false,
    });
    lua.set_app_data(Modules(source));
    install_guards(&lua)?;
    install_require(&lua)?;
    lua.set_memory_limit(memory_limit)?;
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(BUDGET_STEP),
        |lua, _debug| {
            let mut budget = lua
                .app_data_mut::<Budget>()
                .expect("every state gets a Budget when it is built");
            budget.remaining -= BUDGET_STEP as i64;
            if budget.remaining < 0 || budget.exhausted {
                budget.exhausted = true;
                return Err(mlua::Error::runtime(BUDGET_ERROR));
            }
            Ok(VmState::Continue)
        },
    )?;
    Ok(lua)
}

/// The version whose snapshot `require` reads.
struct Modules(Rc<ScriptSource>);

/// `load` accepts text chunks only; `pcall`/`xpcall` re-raise a budget overrun so a script cannot
/// catch it and keep spinning.
fn install_guards(lua: &Lua) -> mlua::Result<()> {
    let exhausted = lua
        .create_function(|lua, ()| Ok(lua.app_data_ref::<Budget>().is_some_and(|b| b.exhausted)))?;
    lua.load(
        r#"
        local exhausted, raw_load, raw_pcall, raw_xpcall, error, select =
            ...
        local budget_error = "instruction budget exceeded"
        load = function(chunk, name, _mode, env)
            return raw_load(chunk, name, "t", env)
        end
        local function check(ok, ...)
            if not ok and exhausted() then error(budget_error, 0) end
            return ok, ...
        end
        pcall = function(f, ...) return check(raw_pcall(f, ...)) end
        xpcall = function(f, handler, ...) return check(raw_xpcall(f, handler, ...)) end
        "#,
    )
    .set_name("=sandbox")
    .call::<()>((
        exhausted,
        lua.globals().get::<Value>("load")?,
        lua.globals().get::<Value>("pcall")?,
        lua.globals().get::<Value>("xpcall")?,
        lua.globals().get::<Value>("error")?,
        lua.globals().get::<Value>("select")?,
    ))
}

/// `require "a.b"` loads `<script folder>/a/b.lua` once per state; nothing outside the folder.
fn install_require(lua: &Lua) -> mlua::Result<()> {
    let loaded = lua.create_table()?;
    lua.set_named_registry_value("moonrt.loaded", loaded)?;
    let require = lua.create_function(|lua, name: String| {
        let loaded: Table = lua.named_registry_value("moonrt.loaded")?;
        if let Some(module) = loaded.get::<Option<Value>>(name.as_str())? {
            return Ok(module);
        }
        let relative = module_path(&name).ok_or_else(|| {
            mlua::Error::runtime(format!(
                "module name {name:?} is not allowed: use letters, digits, '_' and '.'"
            ))
        })?;
        let source = lua
            .app_data_ref::<Modules>()
            .and_then(|m| m.0.module(&relative).map(str::to_owned))
            .ok_or_else(|| {
                mlua::Error::runtime(format!(
                    "module {name:?} not found: no {} in the script folder",
                    relative.display()
                ))
            })?;
        let value: Value = lua
            .load(source)
            .set_name(format!("@{}", relative.display()))
            .call(name.as_str())?;
        let value = if value.is_nil() {
            Value::Boolean(true)
        } else {
            value
        };
        loaded.set(name.as_str(), value.clone())?;
        Ok(value)
    })?;
    lua.globals().set("require", require)
}

/// `a.b_c` -> `a/b_c.lua`; `None` for anything that could leave the folder.
fn module_path(name: &str) -> Option<PathBuf> {
    let ok = !name.is_empty()
        && name.split('.').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if !ok {
        return None;
    }
    let path = PathBuf::from(format!("{}.lua", name.replace('.', "/")));
    path.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> Lua {
        let source = ScriptSource::from_text(std::path::Path::new("main.lua"), String::new());
        new_state(Rc::new(source), 4 << 20).unwrap()
    }

    #[test]
    fn dangerous_globals_are_gone() {
        let lua = state();
        for expr in [
            "io",
            "debug",
            "dofile",
            "loadfile",
            "package",
            "os.execute",
            "os.exit",
            "os.getenv",
            "os.remove",
            "string.dump",
        ] {
            let v: Value = lua.load(format!("return {expr}")).eval().unwrap();
            assert!(v.is_nil(), "{expr} is reachable");
        }
        let t: f64 = lua.load("return os.time()").eval().unwrap();
        assert!(t > 1.0e9);
    }

    #[test]
    fn binary_chunks_cannot_be_loaded() {
        let lua = state();
        let (f, err): (Value, String) = lua
            .load(r#"return load("\27Lua\84\0", "x", "b")"#)
            .eval()
            .unwrap();
        assert!(f.is_nil());
        assert!(err.contains("binary"), "{err}");
    }

    #[test]
    fn module_names_cannot_leave_the_folder() {
        assert_eq!(module_path("a.b"), Some(PathBuf::from("a/b.lua")));
        for bad in ["..", "a..b", "/etc/passwd", "a/b", "", "a.", "~root"] {
            assert_eq!(module_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn budget_overrun_cannot_be_caught_by_pcall() {
        let lua = state();
        lua.app_data_mut::<Budget>().unwrap().remaining = 100_000;
        let err = lua
            .load("while true do pcall(function() while true do end end) end")
            .exec()
            .unwrap_err();
        assert!(err.to_string().contains(BUDGET_ERROR), "{err}");
    }

    #[test]
    fn memory_cap_stops_a_growing_state() {
        let lua = state();
        let err = lua
            .load("local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1024) .. i end")
            .exec()
            .unwrap_err();
        assert!(matches!(err, mlua::Error::MemoryError(_)), "{err}");
    }
}
