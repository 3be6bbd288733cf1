//! `rt.http.request`: a call to the game's backend, made by `script::http`'s pool off the loop.

use super::{Member, state};
use mlua::{Function, Lua, Table, Value};
use std::time::Duration;

/// The members this file makes.
pub(super) const MEMBERS: &[Member] = &[("http", http_table)];

fn http_table(lua: &Lua) -> mlua::Result<Value> {
    let http = lua.create_table()?;
    http.set(
        "request",
        lua.create_function(|lua, (opts, callback): (Table, Function)| {
            let request = crate::script::http::Request {
                method: opts
                    .get::<Option<String>>("method")?
                    .unwrap_or_else(|| "GET".into())
                    .to_ascii_uppercase(),
                url: opts
                    .get::<Option<String>>("url")?
                    .ok_or_else(|| mlua::Error::runtime("rt.http.request: give a url"))?,
                headers: match opts.get::<Option<Table>>("headers")? {
                    Some(t) => t
                        .pairs::<String, String>()
                        .collect::<mlua::Result<Vec<_>>>()?,
                    None => Vec::new(),
                },
                body: opts
                    .get::<Option<mlua::LuaString>>("body")?
                    .map(|b| b.as_bytes().to_vec())
                    .unwrap_or_default(),
                timeout: Duration::from_millis(
                    opts.get::<Option<u64>>("timeout_ms")?
                        .unwrap_or(u64::MAX / 2),
                ),
            };
            let mut st = state(lua)?;
            let Some(pool) = st.http.clone() else {
                return Err(mlua::Error::runtime(
                    "rt.http works in a session's callbacks only",
                ));
            };
            pool.check(&request)
                .map_err(|e| mlua::Error::runtime(format!("rt.http.request: {e}")))?;
            if st.http_pending.len() >= pool.per_session {
                return Err(mlua::Error::runtime(format!(
                    "rt.http.request: {} requests are in flight for this session already \
             ([script] http_max_concurrent)",
                    st.http_pending.len()
                )));
            }
            let id = st.next_http;
            st.next_http += 1;
            st.http_pending.insert(id, callback);
            let session = st.session;
            drop(st);
            pool.submit(session, id, request);
            Ok(id)
        })?,
    )?;
    Ok(Value::Table(http))
}
