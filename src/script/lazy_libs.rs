//! The standard libraries a script may never use, opened the first time it reads their names.
//!
//! `string`, `table`, `math`, `utf8`, `coroutine` and `os` cost a state about 9.5 KB together
//! (their tables and the names of their functions), and an idle session of a script that never
//! calls `math` should not pay for it (BENCHMARKS.md, issue 17). So a state starts with the base
//! functions only, and its globals table gets a metatable whose `__index` opens one of those
//! libraries the first time a script reads its name. The library is then an ordinary global:
//! later reads cost what any global read costs. A library opens at most once: `math = nil` stays
//! nil, also when the script assigns the name before it ever read it (`__newindex`). Libraries
//! come sandboxed and guarded as before: `os` with only its clock and date functions, `string`
//! without `dump` and with moonrt's pattern functions, and the charged `string`, `table`, `utf8`
//! and `coroutine` functions ([`super::guards`]). The globals `print` and `require`, written in
//! Rust, are made the same way, through [`super::members`].
//!
//! `string` is also the strings' metatable (`("x"):upper()`, and `"10" + 1` through its
//! arithmetic metamethods). Until it is opened, strings have a stand-in metatable whose `__index`
//! and arithmetic metamethods open it and then do what the real ones do ([`string_library`]);
//! opening it installs the real metatable, so this costs only the first use. `getmetatable` on a
//! string opens it first, so a script never sees the stand-in.
//!
//! What a script can notice, documented in SCRIPTING.md: `rawget(_G, "math")` and `pairs(_G)`
//! show a library only once it was read. `getmetatable(_G)` and `setmetatable(_G, mt)` first
//! open every library still missing and take the metatable away ([`settle`]), so a strict-mode
//! script that installs its own `__index` on `_G` still finds every library.
//!
//! # Safety
//!
//! As in [`super::guards`]: called by Lua only; errors (out of memory, or the budget when a Rust
//! global is made) unwind by `longjmp` with no Rust value to drop in these frames.

use mlua::Lua;
use mlua::ffi::{self, lua_CFunction, lua_State};
use std::ffi::{CStr, c_int};

/// Where [`super::members::index_function`] keeps the members' `__index`.
const MEMBERS_KEY: &CStr = c"moonrt.members";

/// Where the globals' metatable is kept, to recognise it.
const META_KEY: &CStr = c"moonrt.lazy_libs";

/// Where the string library is kept once it is opened (`nil` before).
const STRING_KEY: &CStr = c"moonrt.string";

/// The libraries opened on first use, and the globals written in Rust, made on first use by
/// [`super::members`].
const LAZY: [&CStr; 8] = [
    c"string",
    c"table",
    c"math",
    c"utf8",
    c"coroutine",
    c"os",
    c"print",
    c"require",
];

/// The `os` functions a script gets: the clock and dates, nothing that touches files,
/// processes or the environment.
const SAFE_OS: [&CStr; 4] = [c"time", c"clock", c"date", c"difftime"];

/// The string functions a sandboxed state does not get from the C library: `dump` (it makes
/// binary chunks, which could bypass the text-only `load`) and the pattern functions, which
/// [`super::members`] makes from moonrt's charged matcher (`super::pattern`) on first use.
const STRING_REMOVED: [&CStr; 5] = [c"dump", c"find", c"match", c"gmatch", c"gsub"];

/// The strings' metamethods: `__index` and the arithmetic ones of Lua 5.4's string library.
const STRING_EVENTS: [(&CStr, lua_CFunction); 9] = [
    (c"__index", string_index),
    (c"__add", string_arith::<1>),
    (c"__sub", string_arith::<2>),
    (c"__mul", string_arith::<3>),
    (c"__mod", string_arith::<4>),
    (c"__pow", string_arith::<5>),
    (c"__div", string_arith::<6>),
    (c"__idiv", string_arith::<7>),
    (c"__unm", string_arith::<8>),
];

/// The C function that opens standard library `lib` (pushing its table), for the libraries this
/// module opens. Opening `string` also replaces the strings' metatable.
pub(crate) fn opener(lib: &CStr) -> Option<lua_CFunction> {
    Some(match lib.to_bytes() {
        b"string" => ffi::luaopen_string,
        b"table" => ffi::luaopen_table,
        b"math" => ffi::luaopen_math,
        b"utf8" => ffi::luaopen_utf8,
        b"coroutine" => ffi::luaopen_coroutine,
        b"os" => ffi::luaopen_os,
        _ => return None,
    })
}

/// Gives `lua`'s globals the metatable that opens the libraries on first use. The state must
/// have been created without them.
pub(crate) fn install(lua: &Lua) -> mlua::Result<()> {
    debug_assert_eq!(MEMBERS_KEY.to_str(), Ok(super::members::INDEX_KEY));
    // The globals written in Rust are made through the members' `__index`, kept in the registry.
    super::members::index_function(lua)?;
    // SAFETY: `exec_raw` runs the closure in protected mode with a checked stack; every push is
    // popped or consumed again.
    unsafe {
        lua.exec_raw::<()>((), |l| {
            ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, ffi::LUA_RIDX_GLOBALS);
            ffi::lua_createtable(l, 0, 2);
            ffi::lua_pushcfunction(l, index);
            ffi::lua_setfield(l, -2, c"__index".as_ptr());
            ffi::lua_pushcfunction(l, newindex);
            ffi::lua_setfield(l, -2, c"__newindex".as_ptr());
            ffi::lua_pushvalue(l, -1);
            ffi::lua_setfield(l, ffi::LUA_REGISTRYINDEX, META_KEY.as_ptr());
            ffi::lua_setmetatable(l, -2);
            ffi::lua_pop(l, 1);
            // The strings' stand-in metatable (see the module's docs).
            ffi::lua_pushstring(l, c"".as_ptr());
            ffi::lua_createtable(l, 0, STRING_EVENTS.len() as c_int);
            for (event, function) in STRING_EVENTS {
                ffi::lua_pushcfunction(l, function);
                ffi::lua_setfield(l, -2, event.as_ptr());
            }
            ffi::lua_setmetatable(l, -2);
            ffi::lua_pop(l, 1);
        })
    }
}

/// Pushes the string library, opening it first if no script used it yet: sandboxed (no `dump`,
/// moonrt's pattern functions made on first use), guarded ([`super::guards`]), and installed as
/// the strings' metatable's `__index`. The global `string` is the caller's business.
///
/// Opening allocates, so it can fail (the state's memory limit), and a script may catch that
/// error. The strings keep the stand-in until the library is fully sandboxed and guarded: a
/// failure at any step leaves nothing half made that a script could reach (Lua's own `find` or
/// `rep`, which the budget cannot see), and the next use tries again.
unsafe fn string_library(l: *mut lua_State) {
    unsafe {
        if ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, STRING_KEY.as_ptr()) != ffi::LUA_TNIL {
            return;
        }
        ffi::lua_pop(l, 1);
        ffi::lua_pushstring(l, c"".as_ptr());
        let empty = ffi::lua_gettop(l);
        if ffi::lua_getmetatable(l, empty) == 0 {
            ffi::lua_pushnil(l);
        }
        let stand_in = ffi::lua_gettop(l);
        // `luaopen_string` sets the strings' real metatable as its last step, after its last
        // allocation: put the stand-in back at once (setting a metatable allocates nothing).
        ffi::lua_pushcfunction(l, ffi::luaopen_string);
        ffi::lua_call(l, 0, 1);
        let lib = ffi::lua_gettop(l);
        if ffi::lua_getmetatable(l, empty) == 0 {
            ffi::lua_pushnil(l);
        }
        let real = ffi::lua_gettop(l);
        ffi::lua_pushvalue(l, stand_in);
        ffi::lua_setmetatable(l, empty);
        for name in STRING_REMOVED {
            ffi::lua_pushstring(l, name.as_ptr());
            ffi::lua_pushnil(l);
            ffi::lua_rawset(l, lib);
        }
        // What `super::members::make_on_first_use(lua, string, "string")` does, in C.
        ffi::lua_createtable(l, 0, 2);
        ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, MEMBERS_KEY.as_ptr());
        ffi::lua_setfield(l, -2, c"__index".as_ptr());
        ffi::lua_pushstring(l, c"string".as_ptr());
        ffi::lua_setfield(l, -2, c"__metatable".as_ptr());
        ffi::lua_setmetatable(l, lib);
        super::guards::guard_library(l, c"string", lib);
        ffi::lua_pushvalue(l, lib);
        ffi::lua_setfield(l, ffi::LUA_REGISTRYINDEX, STRING_KEY.as_ptr());
        // Done: the real metatable (its `__index` is `lib`) goes in for good.
        ffi::lua_pushvalue(l, real);
        ffi::lua_setmetatable(l, empty);
        ffi::lua_pushvalue(l, lib);
        ffi::lua_replace(l, empty);
        ffi::lua_settop(l, empty);
    }
}

/// The stand-in `__index(s, key)`: opens the string library and reads `key` from it.
unsafe extern "C-unwind" fn string_index(l: *mut lua_State) -> c_int {
    unsafe {
        string_library(l);
        ffi::lua_pushvalue(l, 2);
        ffi::lua_gettable(l, -2);
        1
    }
}

/// A stand-in arithmetic metamethod (`STRING_EVENTS[EVENT]`): opens the string library, which
/// installs the real metatable, and calls the real metamethod with the same operands.
unsafe extern "C-unwind" fn string_arith<const EVENT: usize>(l: *mut lua_State) -> c_int {
    unsafe {
        let operands = ffi::lua_gettop(l);
        string_library(l);
        ffi::lua_pop(l, 1);
        ffi::lua_pushstring(l, c"".as_ptr());
        if ffi::lua_getmetatable(l, -1) == 0 {
            ffi::lua_createtable(l, 0, 0);
        }
        ffi::lua_getfield(l, -1, STRING_EVENTS[EVENT].0.as_ptr());
        ffi::lua_insert(l, 1);
        ffi::lua_pop(l, 2);
        ffi::lua_call(l, operands, 1);
        1
    }
}

/// If the value at `idx` is a string: opens the string library, so `getmetatable` shows the
/// strings' real metatable.
pub(crate) unsafe fn settle_strings(l: *mut lua_State, idx: c_int) {
    unsafe {
        if ffi::lua_type(l, idx) == ffi::LUA_TSTRING {
            string_library(l);
            ffi::lua_pop(l, 1);
        }
    }
}

/// Library `lib` if `key` (at stack index `key`) names one of the lazy libraries.
unsafe fn lazy_name(l: *mut lua_State, key: c_int) -> Option<&'static CStr> {
    unsafe {
        if ffi::lua_type(l, key) != ffi::LUA_TSTRING {
            return None;
        }
        let mut len = 0;
        let key = ffi::lua_tolstring(l, key, &mut len);
        let key = std::slice::from_raw_parts(key.cast::<u8>(), len);
        LAZY.into_iter().find(|lib| lib.to_bytes() == key)
    }
}

/// The globals' `__newindex(globals, key, value)`, called for a global not set yet: a script
/// that assigns a library's name first (`math = nil`, `os = my_os`) keeps what it assigned, as
/// if the library had been opened and then replaced.
unsafe extern "C-unwind" fn newindex(l: *mut lua_State) -> c_int {
    unsafe {
        if let Some(lib) = lazy_name(l, 2)
            && ffi::lua_getmetatable(l, 1) != 0
        {
            ffi::lua_pushboolean(l, 1);
            ffi::lua_setfield(l, -2, lib.as_ptr());
        }
        ffi::lua_settop(l, 3);
        ffi::lua_rawset(l, 1);
        0
    }
}

/// The globals' `__index(globals, key)`: opens library `key` if it is one not opened yet.
unsafe extern "C-unwind" fn index(l: *mut lua_State) -> c_int {
    unsafe {
        let Some(lib) = lazy_name(l, 2) else {
            return 0;
        };
        if ffi::lua_getmetatable(l, 1) == 0 {
            return 0;
        }
        let meta = ffi::lua_gettop(l);
        if ffi::lua_getfield(l, meta, lib.as_ptr()) != ffi::LUA_TNIL {
            return 0;
        }
        ffi::lua_pop(l, 1);
        open_into(l, 1, meta, lib);
        1
    }
}

/// Opens `lib`, sandboxed and guarded, as global `lib` of the table at `globals`, marks it
/// opened in the metatable at `meta`, and leaves the library on the stack.
unsafe fn open_into(l: *mut lua_State, globals: c_int, meta: c_int, lib: &CStr) {
    unsafe {
        if lib == c"string" {
            string_library(l);
            ffi::lua_pushboolean(l, 1);
            ffi::lua_setfield(l, meta, lib.as_ptr());
            ffi::lua_pushstring(l, lib.as_ptr());
            ffi::lua_pushvalue(l, -2);
            ffi::lua_rawset(l, globals);
            return;
        }
        let Some(open) = opener(lib) else {
            // Written in Rust: the state's members `__index` makes it (and stores it raw).
            ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, MEMBERS_KEY.as_ptr());
            ffi::lua_pushvalue(l, globals);
            ffi::lua_pushstring(l, lib.as_ptr());
            ffi::lua_call(l, 2, 1);
            ffi::lua_pushboolean(l, 1);
            ffi::lua_setfield(l, meta, lib.as_ptr());
            return;
        };
        ffi::lua_pushcfunction(l, open);
        ffi::lua_call(l, 0, 1);
        if lib == c"os" {
            ffi::lua_createtable(l, 0, SAFE_OS.len() as c_int);
            for name in SAFE_OS {
                ffi::lua_getfield(l, -2, name.as_ptr());
                ffi::lua_setfield(l, -2, name.as_ptr());
            }
            ffi::lua_remove(l, -2);
        }
        super::guards::guard_library(l, lib, -1);
        ffi::lua_pushboolean(l, 1);
        ffi::lua_setfield(l, meta, lib.as_ptr());
        ffi::lua_pushstring(l, lib.as_ptr());
        ffi::lua_pushvalue(l, -2);
        ffi::lua_rawset(l, globals);
    }
}

/// If the value at `idx` is the globals table with the lazy metatable: opens every library not
/// opened yet whose name is still free, and removes the metatable. `getmetatable` and
/// `setmetatable` call this first, so the globals' metatable a script sees is its own.
pub(crate) unsafe fn settle(l: *mut lua_State, idx: c_int) {
    unsafe {
        if ffi::lua_type(l, idx) != ffi::LUA_TTABLE {
            return;
        }
        let globals = ffi::lua_absindex(l, idx);
        if ffi::lua_getmetatable(l, globals) == 0 {
            return;
        }
        let meta = ffi::lua_gettop(l);
        ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, META_KEY.as_ptr());
        let ours = ffi::lua_rawequal(l, meta, -1) != 0;
        ffi::lua_pop(l, 1);
        if ours {
            for lib in LAZY {
                let opened = ffi::lua_getfield(l, meta, lib.as_ptr()) != ffi::LUA_TNIL;
                ffi::lua_pushstring(l, lib.as_ptr());
                let taken = ffi::lua_rawget(l, globals) != ffi::LUA_TNIL;
                ffi::lua_pop(l, 2);
                if !opened && !taken {
                    open_into(l, globals, meta, lib);
                    ffi::lua_pop(l, 1);
                }
            }
            ffi::lua_pushnil(l);
            ffi::lua_setmetatable(l, globals);
        }
        ffi::lua_pop(l, 1);
    }
}

#[cfg(test)]
mod tests {
    use crate::script::sandbox::{BUDGET_ERROR, test_state as state};

    #[test]
    fn a_library_is_opened_when_first_read_sandboxed_and_guarded() {
        let lua = state(1_000_000);
        let (before, floor, after, os): (bool, i64, bool, String) = lua
            .load(
                r#"
                local before = rawget(_G, "math") == nil
                local floor = math.floor(2.5)
                local names = {}
                for name in pairs(os) do names[#names + 1] = name end
                table.sort(names)
                return before, floor, rawget(_G, "math") == math, table.concat(names, ",")
                "#,
            )
            .eval()
            .unwrap();
        assert!(before, "math is not in the globals before it is read");
        assert_eq!(floor, 2);
        assert!(after, "math is an ordinary global once read");
        assert_eq!(os, "clock,date,difftime,time");
        // The charged functions of a library opened late are the guards, not the originals.
        for attack in [
            "return table.unpack({}, 1, 1e8)",
            "local s = string.rep('a', 1e6) for i = 1, 100 do utf8.len(s) end",
            "for i = 1, 2000 do coroutine.create(print) end",
        ] {
            // Each attack runs a few thousand instructions: only the guards' charges reach the
            // budget.
            let lua = state(1_000_000);
            let err = lua.load(attack).exec().unwrap_err().to_string();
            assert!(err.contains(BUDGET_ERROR), "{attack}: {err}");
        }
    }

    #[test]
    fn an_unused_library_costs_the_state_nothing() {
        let lua = state(1_000_000);
        lua.gc_collect().unwrap();
        let idle = lua.used_memory();
        lua.load("local _ = math.pi").exec().unwrap();
        lua.gc_collect().unwrap();
        let with_math = lua.used_memory();
        assert!(
            with_math > idle + 2_000,
            "reading math made it: {idle} -> {with_math} bytes"
        );
    }

    #[test]
    fn strings_work_before_the_string_library_is_read_and_open_it_sandboxed() {
        let lua = state(1_000_000);
        let (before, upper, sum, neg, idiv, pow, modulo, same, dump, find): (
            bool,
            String,
            i64,
            i64,
            i64,
            f64,
            i64,
            bool,
            bool,
            i64,
        ) = lua
            .load(
                r#"
                local before = rawget(_G, "string") == nil
                -- Arithmetic on strings first, then methods: each opens the library once.
                local sum = "10" + 1
                local neg = -"2"
                local idiv = "7" // "2"
                local pow = "2" ^ "3"
                local modulo = "5" % 3
                local upper = ("abc"):upper()
                local same = getmetatable("").__index == string
                  and getmetatable(string) == "string"
                return before, upper, sum, neg, idiv, pow, modulo, same, string.dump == nil,
                  ("hello"):find("l+")
                "#,
            )
            .eval()
            .unwrap();
        assert!(before, "string is not in the globals before it is read");
        assert_eq!(upper, "ABC");
        assert_eq!((sum, neg, idiv, pow, modulo), (11, -2, 3, 8.0, 2));
        assert!(
            same,
            "the strings' metatable is the real one, its __index the library"
        );
        assert!(dump, "string.dump is not there");
        assert_eq!(find, 3);
        // Opened by a method call, the library's charged functions are still the guards and
        // moonrt's pattern matcher, not Lua's originals.
        for attack in [
            "local _ = ('a'):rep(1e12)",
            "local s = ('a'):rep(300) .. 'c'; local _ = s:find('a*a*a*a*a*a*b')",
            "local s = ('a'):rep(1e6) for i = 1, 100 do local _ = s:upper() end",
        ] {
            let lua = state(1_000_000);
            let result = lua.load(attack).exec();
            assert!(
                result
                    .as_ref()
                    .is_err_and(|e| e.to_string().contains(BUDGET_ERROR)),
                "{attack}: {result:?}"
            );
        }
    }

    #[test]
    fn a_string_library_whose_opening_ran_out_of_memory_is_never_reachable_half_made() {
        // The first string method runs with a little more memory left each time, so opening the
        // library fails at each of its allocations in turn; the script catches the error.
        let mut caught = 0;
        for slack in (0..4_000).step_by(8) {
            let lua = state(1_000_000);
            lua.gc_collect().unwrap();
            lua.set_memory_limit(lua.used_memory() + slack).unwrap();
            let upper = lua
                .load("local ok = pcall(function() return ('a'):upper() end) return ok")
                .eval::<bool>();
            if matches!(upper, Ok(false)) {
                caught += 1;
            }
            lua.set_memory_limit(16 << 20).unwrap();
            // Whatever happened, strings now reach only the sandboxed, guarded library.
            let (dump, find): (bool, bool) = lua
                .load("return ('a').dump == nil, ('a').find ~= nil")
                .eval()
                .unwrap();
            assert!(dump && find, "slack {slack}: dump gone, find made");
            let err = lua.load("local _ = ('a'):rep(1e12)").exec().unwrap_err();
            assert!(
                err.to_string().contains(BUDGET_ERROR),
                "slack {slack}: rep is the guard: {err}"
            );
        }
        assert!(
            caught > 100,
            "the opening failed and was caught {caught} times"
        );
    }

    #[test]
    fn strings_keep_their_methods_when_the_script_took_the_name_string() {
        let lua = state(1_000_000);
        let (gone, rep, meta): (bool, String, bool) = lua
            .load(
                r#"
                string = nil
                return string == nil, ("ab"):rep(2), getmetatable("").__index ~= nil
                "#,
            )
            .eval()
            .unwrap();
        assert!(gone, "string = nil before any read stays nil");
        assert_eq!(rep, "abab");
        assert!(meta);
        // Opening every library on getmetatable(_G) leaves the script's own value alone too.
        let kind: String = lua
            .load("local _ = getmetatable(_G) return type(string)")
            .eval()
            .unwrap();
        assert_eq!(kind, "nil");
    }

    #[test]
    fn an_unused_string_library_costs_the_state_nothing() {
        let lua = state(1_000_000);
        lua.gc_collect().unwrap();
        let idle = lua.used_memory();
        lua.load("local _ = ('x'):upper()").exec().unwrap();
        lua.gc_collect().unwrap();
        let used = lua.used_memory();
        assert!(
            used > idle + 1_000,
            "a string method made the library: {idle} -> {used} bytes"
        );
    }

    #[test]
    fn a_strict_mode_script_still_finds_every_library() {
        let lua = state(1_000_000);
        let (mt, max, joined, time, char, err): (bool, i64, String, bool, String, String) = lua
            .load(
                r#"
                local mt = getmetatable(_G)
                setmetatable(_G, {
                  __index = function(_, k) error("undefined global " .. tostring(k), 2) end,
                })
                local ok, err = pcall(function() return not_defined end)
                return mt == nil, math.max(1, 2), table.concat({"a", "b"}), os.time() > 0,
                  utf8.char(72), err
                "#,
            )
            .eval()
            .unwrap();
        assert!(mt, "getmetatable(_G) is nil, as in plain Lua");
        assert_eq!((max, joined.as_str(), time), (2, "ab", true));
        assert_eq!(char, "H");
        assert!(err.contains("undefined global not_defined"), "{err}");
        assert!(
            lua.load("return coroutine.running() ~= nil")
                .eval::<bool>()
                .unwrap()
        );
    }

    #[test]
    fn libraries_and_rust_globals_first_read_inside_a_coroutine_work() {
        let lua = state(1_000_000);
        let (floor, kind): (i64, String) = lua
            .load(
                r#"
                local co = coroutine.wrap(function()
                  coroutine.yield(math.floor(7.5))
                  return type(require)
                end)
                return co(), co()
                "#,
            )
            .eval()
            .unwrap();
        assert_eq!((floor, kind.as_str()), (7, "function"));
    }

    #[test]
    fn a_library_name_the_script_assigned_keeps_its_value() {
        let lua = state(1_000_000);
        let (math, os, table, utf8): (bool, String, bool, String) = lua
            .load(
                r#"
                math = nil
                os = "mine"
                local _ = getmetatable(_G)
                utf8 = "late"
                return math == nil, os, type(table.insert) == "function", utf8
                "#,
            )
            .eval()
            .unwrap();
        assert!(math, "math = nil before any read stays nil");
        assert_eq!(os, "mine");
        assert!(table, "getmetatable(_G) opened the libraries still missing");
        assert_eq!(utf8, "late");
        let string_ok: bool = lua
            .load("return ('abc'):upper() == 'ABC' and string.rep('x', 2) == 'xx'")
            .eval()
            .unwrap();
        assert!(string_ok);
    }
}
