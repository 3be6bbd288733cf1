//! The Lua host: one sandboxed Lua 5.4 state per session, running the session script.
//!
//! - `sandbox.rs` builds a state: safe libraries only, `require` confined to the script folder,
//!   a memory cap, a per-callback instruction budget and time limit, no `__gc` finalizers, and
//!   library work (sorting, moving, repeating) charged to the budget.
//! - `guards.rs` holds the library guards the sandbox installs (`load`, `pcall`, `setmetatable`,
//!   the charged table, string and utf8 functions), as C functions that cost a state no memory.
//! - `lazy_libs.rs` opens `string`, `table`, `math`, `utf8`, `coroutine` and `os` the first time
//!   a script reads their names (`string` also on a string's first method call or arithmetic),
//!   so a state pays only for the libraries its script uses.
//! - `members.rs` makes the functions written in Rust (`rt`'s, `rt.log`'s, the pattern
//!   functions, `print`, `require`) when a script first reads them.
//! - `pattern.rs` is Lua's pattern matcher (`string.find/match/gmatch/gsub`) with its work
//!   charged to the budget, since C code runs where the instruction hook cannot see it.
//! - `api.rs` is the `rt` table scripts call; it records commands, never touching the core.
//! - `data.rs` is `rt.data`, typed payloads (GameSparks' RTData) over [`crate::rtdata`].
//! - `callbacks.rs` copies the callbacks a script returns into a table the host owns and warns
//!   about keys that are not callbacks (vendor names such as `onMessage`).
//! - `session.rs` is one session's script and every call into it.
//! - `host.rs` is [`LuaHooks`], the core's session logic, one script per session.
//! - `source.rs` is a script version: a snapshot of the main file and its modules.
//! - `watcher.rs` watches the folder on its own thread and wakes the loop after edits settle.
//!
//! The scripting guide is SCRIPTING.md; editor type stubs are in `lua/types/rt.lua`.

mod api;
mod callbacks;
mod data;
mod guards;
mod host;
mod http;
mod lazy_libs;
mod members;
mod pattern;
mod sandbox;
mod session;
mod source;
pub mod testing;
mod watcher;

pub use host::{LuaHooks, check};
pub use source::ScriptSource;

/// What a script can call and be called with, from the registries the host uses: the names of
/// `rt`'s functions and tables, of `rt.log`'s functions, and of the callbacks the host calls.
/// SCRIPTING.md and the editor stubs must cover each (`tests/scripting_doc.rs`).
pub fn api_names() -> ApiNames {
    ApiNames {
        rt: api::member_names().collect(),
        log: api::log::LEVELS.iter().map(|(name, _)| *name).collect(),
        callbacks: callbacks::KNOWN.to_vec(),
    }
}

/// See [`api_names`].
#[derive(Debug, Clone)]
pub struct ApiNames {
    /// `rt.NAME`: functions and tables (the test-only ones of debug builds included).
    pub rt: Vec<&'static str>,
    /// `rt.log.NAME`.
    pub log: Vec<&'static str>,
    /// Callbacks a script may return.
    pub callbacks: Vec<&'static str>,
}
