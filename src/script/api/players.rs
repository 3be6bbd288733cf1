//! Players and groups: `rt.players`, `rt.player`, `rt.kick`, `rt.set_player_props`, and
//! `rt.group_add`, `rt.group_remove`, `rt.group_members`, `rt.send_group_members`.

use super::{
    Member, group_id, member_group_id, parse_target, payload_bytes, peer_id, record, state,
};
use crate::core::{ALL_PLAYERS_GROUP, Command, PeerId};
use mlua::{Lua, Table, Value};

/// The members this file makes.
pub(super) const MEMBERS: &[Member] = &[
    ("players", players),
    ("player", player),
    ("kick", kick),
    ("set_player_props", set_player_props),
    ("group_add", group_add),
    ("group_remove", group_remove),
    ("group_members", group_members),
    ("send_group_members", send_group_members),
];

fn players(lua: &Lua) -> mlua::Result<Value> {
    Ok(Value::Function(lua.create_function(|lua, ()| {
        let players: Table = lua.named_registry_value("moonrt.players")?;
        let mut list: Vec<(i64, Table)> =
            players.pairs::<i64, Table>().collect::<mlua::Result<_>>()?;
        list.sort_by_key(|(peer, _)| *peer);
        lua.create_sequence_from(list.into_iter().map(|(_, p)| p))
    })?))
}

fn player(lua: &Lua) -> mlua::Result<Value> {
    Ok(Value::Function(lua.create_function(|lua, peer: i64| {
        let players: Table = lua.named_registry_value("moonrt.players")?;
        players.get::<Value>(peer)
    })?))
}

fn kick(lua: &Lua) -> mlua::Result<Value> {
    Ok(Value::Function(lua.create_function(
        |lua, (peer, reason): (i64, Option<String>)| {
            record(lua, |session| {
                Ok(Command::Kick {
                    session,
                    peer: PeerId(peer_id(peer)?),
                    reason: reason.unwrap_or_else(|| "kicked".into()),
                })
            })
        },
    )?))
}

fn set_player_props(lua: &Lua) -> mlua::Result<Value> {
    Ok(Value::Function(lua.create_function(
        |lua, (peer, props): (i64, Value)| {
            let peer = peer_id(peer)?;
            let bytes = payload_bytes(&props)?;
            let players: Table = lua.named_registry_value("moonrt.players")?;
            if let Some(player) = players.get::<Option<Table>>(peer)? {
                player.raw_set("props", lua.create_string(&bytes)?)?;
            }
            record(lua, |session| {
                Ok(Command::SetProps {
                    session,
                    peer: PeerId(peer),
                    props: bytes,
                })
            })
        },
    )?))
}

fn group_add(lua: &Lua) -> mlua::Result<Value> {
    Ok(Value::Function(lua.create_function(
        |lua, (group, peer): (i64, i64)| {
            record(lua, |session| {
                Ok(Command::GroupAdd {
                    session,
                    group: member_group_id(group)?,
                    peer: PeerId(peer_id(peer)?),
                })
            })
        },
    )?))
}

fn group_remove(lua: &Lua) -> mlua::Result<Value> {
    Ok(Value::Function(lua.create_function(
        |lua, (group, peer): (i64, i64)| {
            record(lua, |session| {
                Ok(Command::GroupRemove {
                    session,
                    group: member_group_id(group)?,
                    peer: PeerId(peer_id(peer)?),
                })
            })
        },
    )?))
}

fn group_members(lua: &Lua) -> mlua::Result<Value> {
    Ok(Value::Function(lua.create_function(
        |lua, group: i64| {
            let group = group_id(group)?;
            if group == ALL_PLAYERS_GROUP {
                let players: Table = lua.named_registry_value("moonrt.players")?;
                let mut peers: Vec<u16> = players
                    .pairs::<u16, Value>()
                    .filter_map(|pair| pair.ok().map(|(peer, _)| peer))
                    .collect();
                peers.sort_unstable();
                return lua.create_sequence_from(peers);
            }
            let members = state(lua)?.groups.get(&group).cloned().unwrap_or_default();
            lua.create_sequence_from(members)
        },
    )?))
}

fn send_group_members(lua: &Lua) -> mlua::Result<Value> {
    Ok(Value::Function(lua.create_function(
        |lua, (group, to): (i64, Value)| {
            let group = group_id(group)?;
            let to = parse_target(&to)?;
            record(lua, |session| {
                Ok(Command::SendGroupMembers { session, group, to })
            })
        },
    )?))
}
