//! Builds one sandboxed Lua state: safe standard libraries only, `require` confined to the script
//! folder, a memory cap, and an instruction budget per callback that `pcall` cannot swallow.

use super::source::ScriptSource;
use mlua::{HookTriggers, Lua, LuaOptions, StdLib, Table, Value, VmState};
use std::path::{Component, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often (in VM instructions) the budget and the time limit are checked.
const BUDGET_STEP: u32 = 1_000;
/// What creating a coroutine costs: a new coroutine's instruction count starts afresh, so each
/// is charged one full step up front (nested coroutines that each stop short of a step would
/// otherwise never be counted).
const COROUTINE_COST: i64 = BUDGET_STEP as i64;

/// Why a callback was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overrun {
    /// It ran more VM instructions (plus charged library work) than its budget.
    Instructions,
    /// It ran longer than its wall-clock time limit.
    Time,
}

/// The per-callback instruction budget and time limit, kept as app data in each state.
#[derive(Debug)]
pub(crate) struct Budget {
    /// Instructions left for the running callback.
    pub remaining: i64,
    /// Set once the budget or the time ran out; stays set so the error cannot be caught and
    /// ignored.
    pub exhausted: Option<Overrun>,
    /// When the running callback must have returned.
    pub deadline: Option<Instant>,
}

impl Budget {
    /// Starts a callback: `instructions` to spend, and `time` at most.
    pub(crate) fn reset(&mut self, instructions: u64, time: Duration) {
        self.remaining = instructions as i64;
        self.exhausted = None;
        self.deadline = Some(Instant::now() + time);
    }

    /// Spends `units`; the overrun, if the budget or the time is now gone.
    fn spend(&mut self, units: i64) -> Option<Overrun> {
        self.remaining -= units;
        if self.exhausted.is_none() {
            if self.remaining < 0 {
                self.exhausted = Some(Overrun::Instructions);
            } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
                self.exhausted = Some(Overrun::Time);
            }
        }
        self.exhausted
    }
}

/// The error text a budget overrun raises (checked by the host to end the session).
pub(crate) const BUDGET_ERROR: &str = "instruction budget exceeded";
/// The error text a time-limit overrun raises.
pub(crate) const TIME_ERROR: &str = "callback time limit exceeded";

fn overrun_error(why: Overrun) -> mlua::Error {
    mlua::Error::runtime(match why {
        Overrun::Instructions => BUDGET_ERROR,
        Overrun::Time => TIME_ERROR,
    })
}

/// Charges `units` of work done outside the VM (library functions in C or Rust) to the running
/// callback's budget; errors once the budget or the time limit is gone.
pub(crate) fn charge(lua: &Lua, units: i64) -> mlua::Result<()> {
    let over = lua
        .app_data_mut::<Budget>()
        .and_then(|mut b| b.spend(units.max(0)));
    match over {
        Some(why) => Err(overrun_error(why)),
        None => Ok(()),
    }
}

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
    // Generational collection: a packet's table and payload string die young, and a minor
    // collection touches only the young objects instead of marking the whole state; about a
    // fifth less CPU for an `on_packet` on every packet (BENCHMARKS.md, issue 17).
    lua.gc_set_mode(mlua::state::GcMode::Generational(Default::default()));
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
    super::pattern::install(&lua, &string)?;
    for name in ["dofile", "loadfile"] {
        globals.set(name, Value::Nil)?;
    }
    lua.set_app_data(Budget {
        remaining: i64::MAX,
        exhausted: None,
        deadline: None,
    });
    lua.set_app_data(Modules(source));
    install_guards(&lua)?;
    install_require(&lua)?;
    lua.set_memory_limit(memory_limit)?;
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(BUDGET_STEP),
        |lua, debug| {
            if crate::watchdog::location_wanted() {
                let source = debug.source();
                let place = format!(
                    "{}:{}",
                    source.short_src.as_deref().unwrap_or("?"),
                    debug.current_line().unwrap_or(0)
                );
                crate::watchdog::report_location(place);
            }
            let over = lua
                .app_data_mut::<Budget>()
                .expect("every state gets a Budget when it is built")
                .spend(BUDGET_STEP as i64);
            match over {
                Some(why) => Err(overrun_error(why)),
                None => Ok(VmState::Continue),
            }
        },
    )?;
    Ok(lua)
}

/// The version whose snapshot `require` reads.
struct Modules(Rc<ScriptSource>);

/// Guards written in Lua over the standard library:
/// - `load` accepts text chunks only, and compiling is charged by size;
/// - `pcall`/`xpcall` re-raise a budget or time overrun so a script cannot catch it;
/// - `setmetatable` refuses `__gc`: Lua runs finalizers with hooks off, so a finalizer that loops
///   could never be stopped (and would run even while the state is closed);
/// - `collectgarbage` only counts: a loop of full collections would be C work the hook never sees;
/// - coroutines are charged when created (see [`COROUTINE_COST`]);
/// - library functions whose work grows with their input (table.move/sort/concat/insert/remove/
///   unpack, string.rep/lower/upper/reverse/byte/sub, utf8.*) charge that work before doing it.
fn install_guards(lua: &Lua) -> mlua::Result<()> {
    let exhausted = lua.create_function(|lua, ()| {
        Ok(lua
            .app_data_ref::<Budget>()
            .and_then(|b| b.exhausted)
            .map(|why| match why {
                Overrun::Instructions => BUDGET_ERROR,
                Overrun::Time => TIME_ERROR,
            }))
    })?;
    let charge_fn = lua.create_function(|lua, units: f64| {
        let units = if units.is_finite() {
            units.clamp(0.0, i64::MAX as f64) as i64
        } else {
            i64::MAX
        };
        charge(lua, units)
    })?;
    lua.load(guards_bytecode())
        .set_name("=sandbox")
        .set_mode(mlua::chunk::ChunkMode::Binary)
        .call::<()>((exhausted, charge_fn, COROUTINE_COST))
}

/// [`GUARDS`] compiled once per process and stripped of debug information: every session's
/// state holds these functions, so their size is paid per session (about 8 KB less each).
/// Binary chunks are loaded by the host only; scripts' `load` stays text-only.
fn guards_bytecode() -> &'static [u8] {
    static BYTECODE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTECODE.get_or_init(|| {
        let lua = Lua::new();
        lua.load(GUARDS)
            .set_name("=sandbox")
            .into_function()
            .expect("the sandbox guards compile")
            .dump(true)
    })
}

const GUARDS: &str = r##"
local exhausted, charge, coroutine_cost = ...
local error, select, type, rawget, tostring = error, select, type, rawget, tostring
local raw_load, raw_pcall, raw_xpcall, raw_setmetatable = load, pcall, xpcall, setmetatable
local raw_collect = collectgarbage
load = function(chunk, name, _mode, env)
  if type(chunk) == "string" then
    charge(#chunk / 2)
  elseif type(chunk) == "function" then
    -- A reader may hand the compiler the same megabytes again and again in a few instructions.
    local reader = chunk
    chunk = function()
      local piece = reader()
      if type(piece) == "string" then charge(#piece / 2) end
      return piece
    end
  end
  local f, err = raw_load(chunk, name, "t", env)
  local why = exhausted()
  if why then error(why, 0) end -- the reader's overrun, which load would return as a message
  return f, err
end
local function check(ok, ...)
  if not ok then
    local why = exhausted()
    if why then error(why, 0) end
  end
  return ok, ...
end
pcall = function(f, ...) return check(raw_pcall(f, ...)) end
xpcall = function(f, handler, ...) return check(raw_xpcall(f, handler, ...)) end
setmetatable = function(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("__gc finalizers are not allowed in moonrt scripts (they would run outside " ..
          "the instruction budget); use on_session_end for cleanup", 2)
  end
  return raw_setmetatable(t, mt)
end
collectgarbage = function(opt, ...)
  if opt == nil or opt == "count" then return raw_collect("count") end
  error("collectgarbage(" .. tostring(opt) .. ") is not available in moonrt scripts; " ..
        'only collectgarbage("count")', 2)
end

local co_create, co_wrap = coroutine.create, coroutine.wrap
coroutine.create = function(f) charge(coroutine_cost) return co_create(f) end
coroutine.wrap = function(f) charge(coroutine_cost) return co_wrap(f) end

local function len(t) if type(t) == "table" then return #t end return 0 end
local function num(v, default) if type(v) == "number" then return v end return default end
local t_move, t_sort, t_concat, t_insert, t_remove, t_unpack =
  table.move, table.sort, table.concat, table.insert, table.remove, table.unpack
table.move = function(a1, f, e, t, a2)
  charge(num(e, 0) - num(f, 0) + 1)
  return t_move(a1, f, e, t, a2)
end
table.sort = function(t, comp)
  local n = len(t)
  if n > 1 then charge(n * math.log(n, 2)) end
  return t_sort(t, comp)
end
table.concat = function(t, sep, i, j)
  local n = num(j, len(t)) - num(i, 1) + 1
  charge(n * (1 + (type(sep) == "string" and #sep / 4 or 0)))
  return t_concat(t, sep, i, j)
end
table.insert = function(t, pos, ...)
  if select("#", ...) > 0 then charge(len(t) - num(pos, 0)) end
  return t_insert(t, pos, ...)
end
table.remove = function(t, pos)
  if pos ~= nil then charge(len(t) - num(pos, 0)) end
  return t_remove(t, pos)
end
table.unpack = function(t, i, j)
  charge(num(j, len(t)) - num(i, 1) + 1)
  return t_unpack(t, i, j)
end
unpack = nil

local function by_length(f, per)
  return function(s, ...)
    if type(s) == "string" then charge(#s / per) end
    return f(s, ...)
  end
end
local s_rep = string.rep
string.rep = function(s, n, sep)
  if type(n) == "number" and n > 0 then
    charge((#tostring(s) + (sep and #tostring(sep) or 0)) * n / 4)
  end
  return s_rep(s, n, sep)
end
string.lower = by_length(string.lower, 8)
string.upper = by_length(string.upper, 8)
string.reverse = by_length(string.reverse, 8)
-- The length of s:sub(i, j) / s:byte(i, j), negative positions counted from the end.
local function span(s, i, j)
  if type(s) ~= "string" then return 0 end
  local n = #s
  local a, b = num(i, 1), num(j, n)
  if a < 0 then a = n + a + 1 end
  if b < 0 then b = n + b + 1 end
  if a < 1 then a = 1 end
  if b > n then b = n end
  return b - a + 1
end
local s_byte, s_sub = string.byte, string.sub
string.byte = function(s, i, j)
  if j ~= nil then charge(span(s, i, j)) end
  return s_byte(s, i, j)
end
string.sub = function(s, i, j)
  charge(span(s, i, j) / 8)
  return s_sub(s, i, j)
end
for _, name in ipairs({ "len", "codepoint", "offset" }) do
  utf8[name] = by_length(utf8[name], 16)
end
"##;

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
        lua.app_data_mut::<Budget>().unwrap().deadline = None;
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
