//! Sending: `rt.send` (to a target, with an intent) and `rt.on_packet` (a handler per opcode).

use super::{
    COMMAND_BYTES, Member, command_bytes, ensure_room, opcode, parse_intent, parse_target,
    payload_bytes, peer_id, state,
};
use crate::core::{Command, PeerId};
use mlua::{Function, Lua, Value};

/// The members this file makes.
pub(super) const MEMBERS: &[Member] = &[("send", send), ("on_packet", on_packet)];

fn send(lua: &Lua) -> mlua::Result<Value> {
    Ok(Value::Function(lua.create_function(
        |lua, (first, op, payload, intent): (Value, Option<i64>, Value, Value)| {
            let (to, op, payload, intent, from) = match &first {
                Value::Table(opts) if opts.contains_key("opcode")? => (
                    opts.get::<Value>("to")?,
                    opts.get::<i64>("opcode")?,
                    opts.get::<Value>("payload")?,
                    opts.get::<Value>("intent")?,
                    opts.get::<Option<i64>>("from")?.unwrap_or(0),
                ),
                _ => (
                    first.clone(),
                    op.ok_or_else(|| mlua::Error::runtime("rt.send needs an opcode"))?,
                    payload,
                    intent,
                    0,
                ),
            };
            if let Value::String(p) = &payload {
                ensure_room(lua, p.as_bytes().len() + COMMAND_BYTES, "rt.send")?;
            }
            let command = Command::Send {
                session: state(lua)?.session,
                from: PeerId(peer_id(from)?),
                to: parse_target(&to)?,
                opcode: opcode(op)?,
                intent: parse_intent(&intent)?,
                payload: payload_bytes(&payload)?,
            };
            ensure_room(lua, command_bytes(&command), "rt.send")?;
            state(lua)?.push(command);
            Ok(())
        },
    )?))
}

fn on_packet(lua: &Lua) -> mlua::Result<Value> {
    Ok(Value::Function(lua.create_function(
        |lua, (op, handler): (i64, Option<Function>)| {
            let op = opcode(op)?;
            let mut st = state(lua)?;
            match handler {
                Some(f) => st.packet_handlers.insert(op, f),
                None => st.packet_handlers.remove(&op),
            };
            Ok(())
        },
    )?))
}
