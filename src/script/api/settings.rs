//! The session and its settings: `rt.end_session`, `rt.set_session_props`,
//! `rt.configure_session` and `rt.frame_sync`.

use super::{Member, payload_bytes, record, state};
use crate::core::{Code, Command, PeerId};
use mlua::{Lua, Table, Value};

/// The members this file makes.
pub(super) const MEMBERS: &[Member] = &[
    ("end_session", end_session),
    ("set_session_props", set_session_props),
    ("configure_session", configure_session),
    ("frame_sync", frame_sync),
];

fn end_session(lua: &Lua) -> mlua::Result<Value> {
    Ok(Value::Function(lua.create_function(
        |lua, reason: Option<String>| {
            record(lua, |session| {
                Ok(Command::EndSession {
                    session,
                    code: Code::SessionEnded,
                    reason: reason.unwrap_or_else(|| "the session ended".into()),
                })
            })
        },
    )?))
}

fn set_session_props(lua: &Lua) -> mlua::Result<Value> {
    Ok(Value::Function(lua.create_function(
        |lua, props: Value| {
            let bytes = payload_bytes(&props)?;
            let session: Table = lua.named_registry_value("moonrt.session")?;
            session.raw_set("props", lua.create_string(&bytes)?)?;
            record(lua, |session| {
                Ok(Command::SetProps {
                    session,
                    peer: PeerId::SERVER,
                    props: bytes,
                })
            })
        },
    )?))
}

fn configure_session(lua: &Lua) -> mlua::Result<Value> {
    Ok(Value::Function(lua.create_function(
        |lua, settings: Table| {
            let Some((max, linger)) = state(lua)?.session_limits else {
                return Err(mlua::Error::runtime(
                    "rt.configure_session works in a session's callbacks only",
                ));
            };
            for pair in settings.pairs::<Value, Value>() {
                let (key, _) = pair?;
                let name = match &key {
                    Value::String(s) => s.to_str().map(|s| s.to_owned()).ok(),
                    _ => None,
                };
                match name.as_deref() {
                    Some("max_players" | "linger_ms" | "open" | "send_interval_ms") => {}
                    _ => {
                        return Err(mlua::Error::runtime(format!(
                            "rt.configure_session: {key:?} is not a setting (max_players, \
                         linger_ms, open, send_interval_ms)"
                        )));
                    }
                }
            }
            let max_players: Option<i64> = settings.get("max_players")?;
            let linger_ms: Option<i64> = settings.get("linger_ms")?;
            let send_interval_ms: Option<i64> = settings.get("send_interval_ms")?;
            let most = crate::config::MAX_SEND_INTERVAL_MS as i64;
            if let Some(ms) = send_interval_ms
                && !(0..=most).contains(&ms)
            {
                return Err(mlua::Error::runtime(format!(
                    "rt.configure_session: send_interval_ms {ms} is not within 0 to {most}"
                )));
            }
            let open = match settings.get::<Value>("open")? {
                Value::Nil => None,
                Value::Boolean(b) => Some(b),
                other => {
                    return Err(mlua::Error::runtime(format!(
                        "rt.configure_session: open must be true or false, not a {}",
                        other.type_name()
                    )));
                }
            };
            if let Some(n) = max_players
                && !(1..=max as i64).contains(&n)
            {
                return Err(mlua::Error::runtime(format!(
                    "rt.configure_session: max_players {n} is not within 1 to {max} \
                 (sessions.max_players)"
                )));
            }
            if let Some(ms) = linger_ms
                && !(0..=linger as i64).contains(&ms)
            {
                return Err(mlua::Error::runtime(format!(
                    "rt.configure_session: linger_ms {ms} is not within 0 to {linger} \
                 (sessions.empty_session_linger_ms)"
                )));
            }
            let session: Table = lua.named_registry_value("moonrt.session")?;
            if let Some(n) = max_players {
                session.raw_set("max_players", n)?;
            }
            if let Some(ms) = linger_ms {
                session.raw_set("linger_ms", ms)?;
            }
            if let Some(open) = open {
                session.raw_set("open", open)?;
            }
            if let Some(ms) = send_interval_ms {
                session.raw_set("send_interval_ms", ms)?;
            }
            record(lua, |session| {
                Ok(Command::Configure {
                    session,
                    max_players: max_players.map(|n| n as usize),
                    linger_ms: linger_ms.map(|ms| ms as u64),
                    open,
                    send_interval_ms: send_interval_ms.map(|ms| ms as u64),
                })
            })
        },
    )?))
}

fn frame_sync(lua: &Lua) -> mlua::Result<Value> {
    let frame_sync = lua.create_table()?;
    frame_sync.set(
        "start",
        lua.create_function(|lua, rate: i64| {
            if !(1..=60).contains(&rate) {
                return Err(mlua::Error::runtime(
                    "rt.frame_sync.start(rate): 1 to 60 frames per second",
                ));
            }
            record(lua, |session| {
                Ok(Command::FrameSync {
                    session,
                    on: true,
                    rate: rate as u8,
                })
            })
        })?,
    )?;
    frame_sync.set(
        "stop",
        lua.create_function(|lua, ()| {
            record(lua, |session| {
                Ok(Command::FrameSync {
                    session,
                    on: false,
                    rate: 0,
                })
            })
        })?,
    )?;
    Ok(Value::Table(frame_sync))
}
