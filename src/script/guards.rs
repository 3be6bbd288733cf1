//! The sandbox's guards over the standard library, written as plain C functions.
//!
//! Each guard checks or charges its call and then runs the library's own function on the same
//! stack, so arguments, results, error values and messages are exactly the library's. A C
//! function without upvalues is a value Lua stores without allocating, so these guards cost an
//! idle session nothing (written as Lua closures they took about 10 KB of every session's heap;
//! BENCHMARKS.md, issue 17).
//!
//! What they guard:
//! - `load` accepts text chunks only, and compiling is charged by size (a reader's pieces too);
//! - `pcall`/`xpcall` re-raise a budget or time overrun so a script cannot catch it, also when
//!   the protected call yields and resumes;
//! - `setmetatable` refuses `__gc`: Lua runs finalizers with hooks off, so a finalizer that loops
//!   could never be stopped (and would run even while the state is closed);
//! - `getmetatable` and `setmetatable` on the globals table first open the libraries not opened
//!   yet ([`super::lazy_libs::settle`]);
//! - `collectgarbage` only counts: a loop of full collections would be C work the hook never sees;
//! - coroutines are charged when created ([`COROUTINE_COST`]);
//! - library functions whose work grows with their input (table.move/sort/concat/insert/remove/
//!   unpack, string.rep/lower/upper/reverse/byte/sub, utf8.len/codepoint/offset) charge that work
//!   before doing it.
//!
//! # Safety
//!
//! These functions are called by Lua only. They raise errors with `lua_error`, which unwinds by
//! `longjmp`: no Rust value that needs dropping is alive in their frames when they raise or call
//! into Lua.

use super::sandbox::{Budget, COROUTINE_COST};
use mlua::Lua;
use mlua::ffi::{self, lua_CFunction, lua_KContext, lua_State};
use std::ffi::{CStr, c_int};
use std::sync::OnceLock;

/// Where each state keeps a pointer to its [`Budget`] (a light userdata in the registry).
pub(crate) const BUDGET_KEY: &CStr = c"moonrt.budget";

/// Declares every guard over a library function once: the [`Originals`] it runs after its
/// checks, where it goes ([`LIBRARY_GUARDS`]), and where the original is read.
macro_rules! guarded {
    ($($lib:literal . $function:literal => $guard:ident),* $(,)?) => {
        /// The library functions the guards run after their checks. They are the same C
        /// functions in every state of the process, so they are read once, from the first state
        /// built.
        struct Originals {
            $($guard: lua_CFunction,)*
        }

        /// Each guard with the library (`_G` for the base functions) and name it replaces.
        const LIBRARY_GUARDS: &[(&CStr, &CStr, lua_CFunction)] =
            &[$(($lib, $function, $guard as lua_CFunction)),*];

        /// Reads the original functions from `l`, before any guard is in place.
        unsafe fn read_originals(l: *mut lua_State) -> Originals {
            unsafe { Originals { $($guard: original(l, $lib, $function),)* } }
        }
    };
}

guarded!(
    c"_G" . c"load" => load,
    c"_G" . c"setmetatable" => setmetatable,
    c"_G" . c"getmetatable" => getmetatable,
    c"_G" . c"collectgarbage" => collectgarbage,
    c"coroutine" . c"create" => co_create,
    c"coroutine" . c"wrap" => co_wrap,
    c"table" . c"move" => t_move,
    c"table" . c"sort" => t_sort,
    c"table" . c"concat" => t_concat,
    c"table" . c"insert" => t_insert,
    c"table" . c"remove" => t_remove,
    c"table" . c"unpack" => t_unpack,
    c"string" . c"rep" => s_rep,
    c"string" . c"lower" => s_lower,
    c"string" . c"upper" => s_upper,
    c"string" . c"reverse" => s_reverse,
    c"string" . c"byte" => s_byte,
    c"string" . c"sub" => s_sub,
    c"utf8" . c"len" => u_len,
    c"utf8" . c"codepoint" => u_codepoint,
    c"utf8" . c"offset" => u_offset,
);

static ORIGINALS: OnceLock<Originals> = OnceLock::new();

fn originals() -> &'static Originals {
    ORIGINALS
        .get()
        .expect("the guards are installed before any script runs")
}

/// Guards `lua`'s base functions; `string`, `table`, `utf8` and `coroutine` are guarded by
/// [`guard_library`] when [`super::lazy_libs`] opens them. The state's [`Budget`]
/// must be in its app data already, where it stays for the state's life.
pub(crate) fn install(lua: &Lua) -> mlua::Result<()> {
    let budget: *const Budget = &*lua
        .app_data_ref::<Budget>()
        .ok_or_else(|| mlua::Error::runtime("the sandbox's budget is set before its guards"))?;
    lua.set_named_registry_value(
        BUDGET_KEY.to_str().expect("ASCII"),
        mlua::LightUserData(budget as *mut std::ffi::c_void),
    )?;
    // SAFETY: `exec_raw` runs the closure in protected mode with a checked stack; every push is
    // popped again.
    unsafe {
        lua.exec_raw::<()>((), |l| {
            if ORIGINALS.get().is_none() {
                let _ = ORIGINALS.set(read_originals(l));
            }
            ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, ffi::LUA_RIDX_GLOBALS);
            guard_library(l, c"_G", -1);
            // pcall and xpcall are rewritten whole (they need their own continuation).
            for (name, guard) in [(c"pcall", pcall as lua_CFunction), (c"xpcall", xpcall)] {
                ffi::lua_pushcfunction(l, guard);
                ffi::lua_setfield(l, -2, name.as_ptr());
            }
            ffi::lua_pop(l, 1);
        })
    }
}

/// Puts the guards of library `lib` into its table at stack index `table`.
pub(crate) unsafe fn guard_library(l: *mut lua_State, lib: &CStr, table: c_int) {
    unsafe {
        let table = ffi::lua_absindex(l, table);
        for &(_, name, guard) in LIBRARY_GUARDS.iter().filter(|(of, ..)| *of == lib) {
            ffi::lua_pushcfunction(l, guard);
            ffi::lua_setfield(l, table, name.as_ptr());
        }
    }
}

/// `lib.name`'s original C function: `_G` as the state has it (no guard is in place yet), the
/// others from a copy of their library opened for the purpose. Opening `string` sets the
/// strings' metatable; the one they had is put back, so the unguarded copy is never reachable
/// from the state's strings.
unsafe fn original(l: *mut lua_State, lib: &CStr, name: &CStr) -> lua_CFunction {
    unsafe {
        ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, ffi::LUA_RIDX_GLOBALS);
        match lib.to_bytes() {
            b"_G" => {}
            _ => {
                ffi::lua_pop(l, 1);
                let open = super::lazy_libs::opener(lib)
                    .unwrap_or_else(|| panic!("{lib:?} is a standard library"));
                ffi::lua_pushstring(l, c"".as_ptr());
                if ffi::lua_getmetatable(l, -1) == 0 {
                    ffi::lua_pushnil(l);
                }
                ffi::lua_pushcfunction(l, open);
                ffi::lua_call(l, 0, 1);
                // [.., "", metatable before, library] -> [.., library]
                ffi::lua_insert(l, -3);
                ffi::lua_setmetatable(l, -2);
                ffi::lua_pop(l, 1);
            }
        }
        ffi::lua_getfield(l, -1, name.as_ptr());
        let found = ffi::lua_tocfunction(l, -1)
            .unwrap_or_else(|| panic!("{lib:?}.{name:?} is a C function of the standard library"));
        ffi::lua_pop(l, 2);
        found
    }
}

/// The running state's budget.
unsafe fn budget<'a>(l: *mut lua_State) -> Option<&'a Budget> {
    unsafe {
        ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, BUDGET_KEY.as_ptr());
        let budget = ffi::lua_touserdata(l, -1) as *const Budget;
        ffi::lua_pop(l, 1);
        // SAFETY: the pointer was taken from the state's own app data, which outlives any call.
        budget.as_ref()
    }
}

/// Raises `message` as a plain string error, without position.
unsafe fn raise(l: *mut lua_State, message: &str) -> ! {
    unsafe {
        ffi::lua_pushlstring(l, message.as_ptr().cast(), message.len());
        ffi::lua_error(l)
    }
}

/// Raises `message` with the calling Lua line in front, as `error(message, 2)` would.
unsafe fn raise_here(l: *mut lua_State, message: &str) -> ! {
    unsafe {
        ffi::luaL_where(l, 1);
        ffi::lua_pushlstring(l, message.as_ptr().cast(), message.len());
        ffi::lua_concat(l, 2);
        ffi::lua_error(l)
    }
}

/// Charges `units` of library work to the running callback; raises the overrun, if any.
unsafe fn charge(l: *mut lua_State, units: f64) {
    let units = if units.is_finite() {
        units.clamp(0.0, i64::MAX as f64) as i64
    } else {
        i64::MAX
    };
    unsafe {
        if let Some(why) = budget(l).and_then(|b| b.spend(units)) {
            raise(l, why.message());
        }
    }
}

/// Raises the overrun if the running callback's budget or time is gone.
unsafe fn reraise_overrun(l: *mut lua_State) {
    unsafe {
        if let Some(why) = budget(l).and_then(Budget::exhausted) {
            raise(l, why.message());
        }
    }
}

/// Argument `idx` if it is a number, else `default` (`num` in the Lua guards' terms).
unsafe fn num(l: *mut lua_State, idx: c_int, default: f64) -> f64 {
    unsafe {
        if ffi::lua_type(l, idx) == ffi::LUA_TNUMBER {
            ffi::lua_tonumberx(l, idx, std::ptr::null_mut())
        } else {
            default
        }
    }
}

/// `#t` for a table argument (its `__len` included), else 0.
unsafe fn len(l: *mut lua_State, idx: c_int) -> f64 {
    unsafe {
        if ffi::lua_type(l, idx) != ffi::LUA_TTABLE {
            return 0.0;
        }
        ffi::lua_len(l, idx);
        let n = ffi::lua_tonumberx(l, -1, std::ptr::null_mut());
        ffi::lua_pop(l, 1);
        n
    }
}

/// The byte length of a string argument, else 0.
unsafe fn str_len(l: *mut lua_State, idx: c_int) -> f64 {
    unsafe {
        if ffi::lua_type(l, idx) == ffi::LUA_TSTRING {
            ffi::lua_rawlen(l, idx) as f64
        } else {
            0.0
        }
    }
}

/// Whether argument `idx` was passed and is not nil.
unsafe fn given(l: *mut lua_State, idx: c_int) -> bool {
    unsafe { ffi::lua_type(l, idx) > ffi::LUA_TNIL }
}

/// The length of `s:sub(i, j)` / `s:byte(i, j)`, negative positions counted from the end.
unsafe fn span(l: *mut lua_State) -> f64 {
    unsafe {
        if ffi::lua_type(l, 1) != ffi::LUA_TSTRING {
            return 0.0;
        }
        let n = ffi::lua_rawlen(l, 1) as f64;
        let (mut a, mut b) = (num(l, 2, 1.0), num(l, 3, n));
        if a < 0.0 {
            a += n + 1.0;
        }
        if b < 0.0 {
            b += n + 1.0;
        }
        b.min(n) - a.max(1.0) + 1.0
    }
}

macro_rules! guard {
    ($(#[$doc:meta])* $name:ident, |$l:ident| $charge:block) => {
        $(#[$doc])*
        unsafe extern "C-unwind" fn $name($l: *mut lua_State) -> c_int {
            unsafe {
                $charge
                (originals().$name)($l)
            }
        }
    };
}

guard!(
    /// `coroutine.create(f)`: a new coroutine counts its instructions afresh, so it is charged
    /// one step up front.
    co_create, |l| { charge(l, COROUTINE_COST as f64); }
);
guard!(co_wrap, |l| {
    charge(l, COROUTINE_COST as f64);
});
guard!(t_move, |l| {
    charge(l, num(l, 3, 0.0) - num(l, 2, 0.0) + 1.0);
});
guard!(t_sort, |l| {
    let n = len(l, 1);
    if n > 1.0 {
        charge(l, n * n.log2());
    }
});
guard!(t_concat, |l| {
    let j = if ffi::lua_type(l, 4) == ffi::LUA_TNUMBER {
        num(l, 4, 0.0)
    } else {
        len(l, 1)
    };
    let per = 1.0 + str_len(l, 2) / 4.0;
    charge(l, (j - num(l, 3, 1.0) + 1.0) * per);
});
guard!(t_insert, |l| {
    if ffi::lua_gettop(l) >= 3 {
        charge(l, len(l, 1) - num(l, 2, 0.0));
    }
});
guard!(t_remove, |l| {
    if given(l, 2) {
        charge(l, len(l, 1) - num(l, 2, 0.0));
    }
});
guard!(t_unpack, |l| {
    let j = if ffi::lua_type(l, 3) == ffi::LUA_TNUMBER {
        num(l, 3, 0.0)
    } else {
        len(l, 1)
    };
    charge(l, j - num(l, 2, 1.0) + 1.0);
});
guard!(s_rep, |l| {
    let n = num(l, 2, 0.0);
    if n > 0.0 {
        let mut each = tostring_len(l, 1);
        if ffi::lua_toboolean(l, 3) != 0 {
            each += tostring_len(l, 3);
        }
        charge(l, each * n / 4.0);
    }
});
guard!(s_byte, |l| {
    if given(l, 3) {
        charge(l, span(l));
    }
});
guard!(s_sub, |l| {
    charge(l, span(l) / 8.0);
});
/// Guards that charge a unit per `per` bytes of their string argument.
macro_rules! by_length {
    ($($name:ident / $per:literal),* $(,)?) => {
        $(guard!($name, |l| {
            charge(l, str_len(l, 1) / $per);
        });)*
    };
}

by_length!(
    s_lower / 8.0,
    s_upper / 8.0,
    s_reverse / 8.0,
    u_len / 16.0,
    u_codepoint / 16.0,
    u_offset / 16.0,
);

/// `#tostring(v)` for argument `idx` (its `__tostring` included).
unsafe fn tostring_len(l: *mut lua_State, idx: c_int) -> f64 {
    unsafe {
        let mut n = 0usize;
        ffi::luaL_tolstring(l, idx, &mut n);
        ffi::lua_pop(l, 1);
        n as f64
    }
}

/// `load(chunk, name, mode, env)`: text only; compiling is charged half a unit per byte, and a
/// reader's pieces as they come.
unsafe extern "C-unwind" fn load(l: *mut lua_State) -> c_int {
    unsafe {
        match ffi::lua_type(l, 1) {
            ffi::LUA_TSTRING => charge(l, str_len(l, 1) / 2.0),
            ffi::LUA_TFUNCTION => {
                // A reader may hand the compiler the same megabytes again and again in a few
                // instructions: each piece is charged as it is read.
                ffi::lua_pushvalue(l, 1);
                ffi::lua_pushcclosure(l, charged_reader, 1);
                ffi::lua_replace(l, 1);
            }
            _ => {}
        }
        // The mode becomes "t" whatever was asked; whether an environment was passed (even nil)
        // is kept, as `load` tells "no env" from "env = nil" by the argument count.
        if ffi::lua_gettop(l) < 3 {
            ffi::lua_settop(l, 3);
        }
        ffi::lua_pushstring(l, c"t".as_ptr());
        ffi::lua_replace(l, 3);
        let results = (originals().load)(l);
        // A reader's overrun is caught by the compiler and returned as a message: raise it.
        reraise_overrun(l);
        results
    }
}

/// A `load` reader that charges each piece it returns.
unsafe extern "C-unwind" fn charged_reader(l: *mut lua_State) -> c_int {
    unsafe {
        ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
        ffi::lua_call(l, 0, 1);
        charge(l, str_len(l, -1) / 2.0);
        1
    }
}

/// `setmetatable(t, mt)`, refusing a metatable with `__gc`. On the globals table, the libraries
/// not opened yet are opened first ([`super::lazy_libs::settle`]).
unsafe extern "C-unwind" fn setmetatable(l: *mut lua_State) -> c_int {
    unsafe {
        super::lazy_libs::settle(l, 1);
        if ffi::lua_type(l, 2) == ffi::LUA_TTABLE {
            ffi::lua_pushstring(l, c"__gc".as_ptr());
            let has_gc = ffi::lua_rawget(l, 2) != ffi::LUA_TNIL;
            ffi::lua_pop(l, 1);
            if has_gc {
                raise_here(
                    l,
                    "__gc finalizers are not allowed in moonrt scripts (they would run outside \
                     the instruction budget); use on_session_end for cleanup",
                );
            }
        }
        (originals().setmetatable)(l)
    }
}

/// `getmetatable(v)`. On the globals table, the libraries not opened yet are opened first
/// ([`super::lazy_libs::settle`]), so a script sees and changes only its own metatable; on a
/// string, the string library is ([`super::lazy_libs::settle_strings`]).
unsafe extern "C-unwind" fn getmetatable(l: *mut lua_State) -> c_int {
    unsafe {
        super::lazy_libs::settle(l, 1);
        super::lazy_libs::settle_strings(l, 1);
        (originals().getmetatable)(l)
    }
}

/// `collectgarbage()` and `collectgarbage("count")`; every other option is refused.
unsafe extern "C-unwind" fn collectgarbage(l: *mut lua_State) -> c_int {
    unsafe {
        let asked = ffi::lua_type(l, 1);
        let count = asked <= ffi::LUA_TNIL
            || (asked == ffi::LUA_TSTRING
                && CStr::from_ptr(ffi::lua_tolstring(l, 1, std::ptr::null_mut())) == c"count");
        if !count {
            ffi::luaL_where(l, 1);
            ffi::lua_pushstring(l, c"collectgarbage(".as_ptr());
            ffi::luaL_tolstring(l, 1, std::ptr::null_mut());
            ffi::lua_pushstring(
                l,
                c") is not available in moonrt scripts; only collectgarbage(\"count\")".as_ptr(),
            );
            ffi::lua_concat(l, 4);
            ffi::lua_error(l)
        }
        ffi::lua_settop(l, 0);
        ffi::lua_pushstring(l, c"count".as_ptr());
        (originals().collectgarbage)(l)
    }
}

/// The end of a protected call, direct or after a yield: an error becomes `false, error`,
/// unless it is a budget or time overrun, which is raised again.
unsafe extern "C-unwind" fn finish_pcall(
    l: *mut lua_State,
    status: c_int,
    extra: lua_KContext,
) -> c_int {
    unsafe {
        if status != ffi::LUA_OK && status != ffi::LUA_YIELD {
            reraise_overrun(l);
            ffi::lua_pushboolean(l, 0);
            ffi::lua_pushvalue(l, -2);
            return 2;
        }
        ffi::lua_gettop(l) - extra as c_int
    }
}

/// `pcall(f, ...)` as Lua's own, with [`finish_pcall`] as its continuation.
unsafe extern "C-unwind" fn pcall(l: *mut lua_State) -> c_int {
    unsafe {
        ffi::luaL_checkany(l, 1);
        ffi::lua_pushboolean(l, 1);
        ffi::lua_insert(l, 1);
        let status = ffi::lua_pcallk(
            l,
            ffi::lua_gettop(l) - 2,
            ffi::LUA_MULTRET,
            0,
            0,
            Some(finish_pcall),
        );
        finish_pcall(l, status, 0)
    }
}

/// `xpcall(f, handler, ...)` as Lua's own, with [`finish_pcall`] as its continuation.
unsafe extern "C-unwind" fn xpcall(l: *mut lua_State) -> c_int {
    unsafe {
        let n = ffi::lua_gettop(l);
        ffi::luaL_checktype(l, 2, ffi::LUA_TFUNCTION);
        ffi::lua_pushboolean(l, 1);
        ffi::lua_pushvalue(l, 1);
        ffi::lua_rotate(l, 3, 2);
        let status = ffi::lua_pcallk(l, n - 2, ffi::LUA_MULTRET, 2, 2, Some(finish_pcall));
        finish_pcall(l, status, 2)
    }
}

#[cfg(test)]
mod tests {
    use crate::script::sandbox::{BUDGET_ERROR, test_state as state};

    #[test]
    fn reading_the_string_originals_leaves_the_strings_metatable_as_it_was() {
        let lua = mlua::Lua::new_with(mlua::StdLib::NONE, mlua::LuaOptions::default()).unwrap();
        // SAFETY: protected mode, checked stack; `original` leaves the stack as it found it.
        let metatable_is_nil = unsafe {
            lua.exec_raw::<bool>((), |l| {
                let rep = super::original(l, c"string", c"rep");
                assert!(rep as usize != 0);
                mlua::ffi::lua_pushstring(l, c"".as_ptr());
                let has = mlua::ffi::lua_getmetatable(l, -1) != 0;
                mlua::ffi::lua_settop(l, 0);
                mlua::ffi::lua_pushboolean(l, (!has) as i32);
            })
        }
        .unwrap();
        // Else the unguarded copy would be the strings' `__index` until something replaced it.
        assert!(metatable_is_nil);
    }

    #[test]
    fn a_loaded_chunk_without_an_environment_sees_the_globals() {
        let lua = state(1_000_000);
        let seen: String = lua
            .load(r#"return load("return type(print)")()"#)
            .eval()
            .unwrap();
        assert_eq!(seen, "function");
        let with_env: String = lua
            .load(r#"return load("return x", "c", "bt", { x = "from env" })()"#)
            .eval()
            .unwrap();
        assert_eq!(with_env, "from env");
        let nil_env: bool = lua
            .load(r#"return not pcall(load("return print", "c", "t", nil))"#)
            .eval()
            .unwrap();
        assert!(nil_env, "an explicit nil environment has no globals");
    }

    #[test]
    fn an_overrun_after_a_yield_inside_pcall_is_not_caught() {
        let lua = state(200_000);
        let err = lua
            .load(
                r##"
                local co = coroutine.wrap(function()
                  while true do
                    pcall(function() coroutine.yield() while true do end end)
                  end
                end)
                while true do co() end
                "##,
            )
            .exec()
            .unwrap_err();
        assert!(err.to_string().contains(BUDGET_ERROR), "{err}");
    }

    #[test]
    fn pcall_and_xpcall_return_what_lua_returns() {
        let lua = state(1_000_000);
        let out: String = lua
            .load(
                r##"
                local a = table.pack(pcall(function(x, y) return x + y, "two" end, 1, 2))
                local b = table.pack(pcall(error, { code = 7 }))
                local c = table.pack(xpcall(function() error("boom", 0) end,
                                            function(m) return "handled " .. m end))
                local d = table.pack(xpcall(function(...) return select("#", ...) end, print, 1, nil, 3))
                local co = coroutine.wrap(function()
                  return pcall(function() return coroutine.yield("y") + 1 end)
                end)
                local y = co()
                local e = table.pack(co(41))
                return table.concat({ tostring(a[1]), a[2], a[3], tostring(b[1]), b[2].code,
                  tostring(c[1]), c[2], tostring(d[1]), d[2], y, tostring(e[1]), e[2] }, ",")
                "##,
            )
            .eval()
            .unwrap();
        assert_eq!(
            out,
            "true,3,two,false,7,false,handled boom,true,3,y,true,42"
        );
    }

    #[test]
    fn guarded_functions_keep_the_library_errors_and_results() {
        let lua = state(1_000_000);
        let out: String = lua
            .load(
                r##"
                local _, insert = pcall(table.insert, {}, 1, 2, 3)
                local _, gc = pcall(setmetatable, {}, { __gc = print })
                local _, collect = pcall(function() collectgarbage("collect") end)
                local t = setmetatable({}, { __index = { k = "v" } })
                return table.concat({ insert, gc, collect, t.k,
                  table.concat({ 1, 2, 3 }, "-"), ("abc"):rep(2, "|"), ("AbC"):lower(),
                  ("hello"):sub(-3), tostring(utf8.len("hé")), tostring(collectgarbage("count") > 0),
                  tostring(select("#", table.unpack({ 1, 2, 3 }, 2))) }, "\n")
                "##,
            )
            .eval()
            .unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].contains("wrong number of arguments to 'insert'"),
            "{out}"
        );
        assert!(
            lines[1].contains("__gc finalizers are not allowed"),
            "{out}"
        );
        // The calling line comes first, as with `error(message, 2)`.
        assert!(
            lines[2].contains(":4: collectgarbage(collect) is not available"),
            "{out}"
        );
        assert_eq!(
            &lines[3..],
            ["v", "1-2-3", "abc|abc", "abc", "llo", "2", "true", "2"]
        );
    }

    #[test]
    fn library_work_is_charged_before_it_is_done() {
        for expr in [
            r#"string.rep("x", 1e12)"#,
            r#"table.concat({}, ",", 1, 1e12)"#,
            r#"table.unpack({}, 1, 1e12)"#,
            r#"table.move({}, 1, 1e12, 2)"#,
        ] {
            let lua = state(1_000_000);
            let err = lua.load(expr).exec().unwrap_err();
            assert!(err.to_string().contains(BUDGET_ERROR), "{expr}: {err}");
        }
        // A reader that hands the compiler the same megabyte again and again in a few
        // instructions is stopped by what it hands over, not by its instructions.
        let lua = state(1_000_000);
        let err = lua
            .load(
                r#"
                local comment = string.rep("-", 1e6)
                pieces = 0
                load(function() pieces = pieces + 1 return comment end)
                "#,
            )
            .exec()
            .unwrap_err();
        assert!(err.to_string().contains(BUDGET_ERROR), "{err}");
        let pieces: i64 = lua.globals().get("pieces").unwrap();
        assert!(pieces <= 3, "the compiler read {pieces} megabytes first");
    }
}
