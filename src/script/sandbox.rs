//! Builds one sandboxed Lua state: safe standard libraries only, `require` confined to the script
//! folder, a memory cap, and an instruction budget per callback that `pcall` cannot swallow.

use super::source::ScriptSource;
use mlua::{Function, HookTriggers, Lua, LuaOptions, StdLib, Table, Value, VmState};
use std::cell::Cell;
use std::path::{Component, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often (in VM instructions) the budget and the time limit are checked.
const BUDGET_STEP: u32 = 1_000;
/// What creating a coroutine costs: a new coroutine's instruction count starts afresh, so each
/// is charged one full step up front (nested coroutines that each stop short of a step would
/// otherwise never be counted).
pub(crate) const COROUTINE_COST: i64 = BUDGET_STEP as i64;

/// Why a callback was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overrun {
    /// It ran more VM instructions (plus charged library work) than its budget.
    Instructions,
    /// It ran longer than its wall-clock time limit.
    Time,
}

impl Overrun {
    /// The error text the overrun raises (checked by the host to end the session).
    pub(crate) fn message(self) -> &'static str {
        match self {
            Overrun::Instructions => BUDGET_ERROR,
            Overrun::Time => TIME_ERROR,
        }
    }
}

/// The per-callback instruction budget and time limit, kept as app data in each state. Its
/// fields are cells: the hook, Rust library functions and the C guards all charge it through
/// shared references.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    /// Instructions left for the running callback.
    remaining: Cell<i64>,
    /// Set once the budget or the time ran out; stays set so the error cannot be caught and
    /// ignored.
    exhausted: Cell<Option<Overrun>>,
    /// When the running callback must have returned.
    deadline: Cell<Option<Instant>>,
}

impl Budget {
    /// Starts a callback: `instructions` to spend, and `time` at most.
    pub(crate) fn reset(&self, instructions: u64, time: Duration) {
        self.start(instructions, Some(Instant::now() + time));
    }

    /// Starts a callback with `instructions` to spend and an optional deadline.
    pub(crate) fn start(&self, instructions: u64, deadline: Option<Instant>) {
        self.remaining.set(instructions.min(i64::MAX as u64) as i64);
        self.exhausted.set(None);
        self.deadline.set(deadline);
    }

    /// Why the running callback was stopped, if it was.
    pub(crate) fn exhausted(&self) -> Option<Overrun> {
        self.exhausted.get()
    }

    /// Spends `units`; the overrun, if the budget or the time is now gone.
    pub(crate) fn spend(&self, units: i64) -> Option<Overrun> {
        let remaining = self.remaining.get().saturating_sub(units.max(0));
        self.remaining.set(remaining);
        if self.exhausted.get().is_none() {
            if remaining < 0 {
                self.exhausted.set(Some(Overrun::Instructions));
            } else if self.deadline.get().is_some_and(|d| Instant::now() >= d) {
                self.exhausted.set(Some(Overrun::Time));
            }
        }
        self.exhausted.get()
    }
}

/// The error text a budget overrun raises (checked by the host to end the session).
pub(crate) const BUDGET_ERROR: &str = "instruction budget exceeded";
/// The error text a time-limit overrun raises.
pub(crate) const TIME_ERROR: &str = "callback time limit exceeded";

/// Charges `units` of work done outside the VM (library functions in C or Rust) to the running
/// callback's budget; errors once the budget or the time limit is gone.
pub(crate) fn charge(lua: &Lua, units: i64) -> mlua::Result<()> {
    let over = lua.app_data_ref::<Budget>().and_then(|b| b.spend(units));
    match over {
        Some(why) => Err(mlua::Error::runtime(why.message())),
        None => Ok(()),
    }
}

/// A new sandboxed state. `require` loads modules from `source`'s snapshot; `memory_limit` caps
/// the state.
pub(crate) fn new_state(source: Rc<ScriptSource>, memory_limit: usize) -> mlua::Result<Lua> {
    // `string`, `table`, `math`, `utf8`, `coroutine` and `os` are opened on first use, sandboxed
    // there (`lazy_libs.rs`: no `string.dump`, moonrt's pattern functions).
    let lua = Lua::new_with(StdLib::NONE, LuaOptions::default())?;
    // Generational collection: a packet's table and payload string die young, and a minor
    // collection touches only the young objects instead of marking the whole state; about a
    // fifth less CPU for an `on_packet` on every packet (BENCHMARKS.md, issue 17).
    lua.gc_set_mode(mlua::state::GcMode::Generational(Default::default()));
    let globals = lua.globals();
    // `print` is moonrt's (the script's log) and `require` reads the script folder; both are
    // made on first use (`members.rs`).
    for name in ["dofile", "loadfile", "print"] {
        globals.set(name, Value::Nil)?;
    }
    let budget = Budget::default();
    budget.start(u64::MAX, None);
    lua.set_app_data(budget);
    lua.set_app_data(Modules(source));
    super::guards::install(&lua)?;
    super::lazy_libs::install(&lua)?;
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
                .app_data_ref::<Budget>()
                .expect("every state gets a Budget when it is built")
                .spend(BUDGET_STEP as i64);
            match over {
                Some(why) => Err(mlua::Error::runtime(why.message())),
                None => Ok(VmState::Continue),
            }
        },
    )?;
    Ok(lua)
}

/// A sandboxed state for unit tests (an empty script folder), with `budget` instructions for
/// what it runs.
#[cfg(test)]
pub(crate) fn test_state(budget: u64) -> Lua {
    let source = ScriptSource::from_text(std::path::Path::new("main.lua"), String::new());
    let lua = new_state(Rc::new(source), 16 << 20).expect("a sandboxed state");
    lua.app_data_ref::<Budget>()
        .expect("every state gets a Budget")
        .start(budget, None);
    lua
}

/// The version whose snapshot `require` reads.
struct Modules(Rc<ScriptSource>);

/// `require "a.b"` loads `<script folder>/a/b.lua` once per state; nothing outside the folder.
pub(crate) fn require_function(lua: &Lua) -> mlua::Result<Function> {
    lua.create_function(|lua, name: String| {
        let loaded = match lua.named_registry_value::<Option<Table>>(LOADED_KEY)? {
            Some(loaded) => loaded,
            None => {
                let loaded = lua.create_table()?;
                lua.set_named_registry_value(LOADED_KEY, &loaded)?;
                loaded
            }
        };
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
    })
}

/// Where `require` keeps the modules it loaded.
const LOADED_KEY: &str = "moonrt.loaded";

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
        lua.app_data_ref::<Budget>().unwrap().start(100_000, None);
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
