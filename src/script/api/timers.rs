//! Time: `rt.set_timeout`, `rt.set_interval`, `rt.clear_timeout` / `rt.clear_interval`,
//! `rt.set_tick_rate` (calls `on_tick`) and `rt.time`.

use super::{Member, TIMER_BYTES, ensure_room, millis, state};
use mlua::{Function, Lua, Value};
use std::time::Duration;

/// The members this file makes.
pub(super) const MEMBERS: &[Member] = &[
    ("set_timeout", set_timeout),
    ("set_interval", set_interval),
    ("clear_timeout", clear_timer),
    ("clear_interval", clear_timer),
    ("set_tick_rate", set_tick_rate),
    ("time", time),
];

fn set_timeout(lua: &Lua) -> mlua::Result<Value> {
    Ok(Value::Function(lua.create_function(
        |lua, (func, ms): (Function, f64)| {
            let after = millis(ms, "the delay")?;
            ensure_room(lua, TIMER_BYTES, "rt.set_timeout")?;
            Ok(state(lua)?.arm(Some(func), after, None))
        },
    )?))
}

fn set_interval(lua: &Lua) -> mlua::Result<Value> {
    Ok(Value::Function(lua.create_function(
        |lua, (func, ms): (Function, f64)| {
            let every = millis(ms, "the interval")?.max(Duration::from_millis(1));
            ensure_room(lua, TIMER_BYTES, "rt.set_interval")?;
            Ok(state(lua)?.arm(Some(func), every, Some(every)))
        },
    )?))
}

fn clear_timer(lua: &Lua) -> mlua::Result<Value> {
    Ok(Value::Function(lua.create_function(
        |lua, id: Option<u64>| {
            if let Some(id) = id {
                state(lua)?.timers.remove(&id);
            }
            Ok(())
        },
    )?))
}

fn set_tick_rate(lua: &Lua) -> mlua::Result<Value> {
    Ok(Value::Function(lua.create_function(|lua, hz: f64| {
        ensure_room(lua, TIMER_BYTES, "rt.set_tick_rate")?;
        let mut st = state(lua)?;
        if let Some(old) = st.tick.take() {
            st.timers.remove(&old);
        }
        if hz > 0.0 && hz.is_finite() {
            let every = Duration::from_secs_f64(1.0 / hz.min(1000.0));
            st.last_tick = Some(st.now);
            let id = st.arm(None, every, Some(every));
            st.tick = Some(id);
        } else if hz != 0.0 {
            return Err(mlua::Error::runtime(
                "the tick rate must be a number of Hz >= 0",
            ));
        }
        Ok(())
    })?))
}

fn time(lua: &Lua) -> mlua::Result<Value> {
    Ok(Value::Function(lua.create_function(|lua, ()| {
        Ok(state(lua)?.wall_us as f64 / 1000.0)
    })?))
}
