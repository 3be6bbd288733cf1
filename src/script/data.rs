//! `rt.data`: typed payloads (GameSparks' RTData) for scripts, over [`crate::rtdata`].
//!
//! A data value is a Lua table indexed 1-255. Integers encode as longs, other numbers as
//! doubles, strings as strings, plain tables as nested data; `rt.data.float(x)` and
//! `rt.data.vector(x, y, z, w)` mark the two types Lua cannot tell apart by itself.

use crate::rtdata::{MAX_DEPTH, RtData, RtValue};
use mlua::{Lua, Table, Value};

const VECTOR_MT: &str = "moonrt.rtdata.vector";
const FLOAT_MT: &str = "moonrt.rtdata.float";

/// Installs `rt.data`.
pub(crate) fn table(lua: &Lua) -> mlua::Result<Table> {
    let vector_mt = lua.create_table()?;
    vector_mt.set("__name", "rt.data.vector")?;
    lua.set_named_registry_value(VECTOR_MT, vector_mt)?;
    let float_mt = lua.create_table()?;
    float_mt.set("__name", "rt.data.float")?;
    lua.set_named_registry_value(FLOAT_MT, float_mt)?;

    let data = lua.create_table()?;
    data.set(
        "encode",
        lua.create_function(|lua, t: Table| {
            let d = to_rtdata(lua, &t, 0)?;
            lua.create_string(d.encode())
        })?,
    )?;
    data.set(
        "decode",
        lua.create_function(|lua, bytes: mlua::LuaString| {
            let d = RtData::decode(&bytes.as_bytes())
                .map_err(|e| mlua::Error::runtime(format!("invalid RTData: {e}")))?;
            from_rtdata(lua, &d)
        })?,
    )?;
    data.set(
        "vector",
        lua.create_function(
            |lua, (x, y, z, w): (f64, Option<f64>, Option<f64>, Option<f64>)| {
                vector(lua, &[Some(x), y, z, w])
            },
        )?,
    )?;
    data.set(
        "float",
        lua.create_function(|lua, x: f64| {
            let t = lua.create_table()?;
            t.set(1, x)?;
            t.set_metatable(Some(lua.named_registry_value(FLOAT_MT)?))?;
            Ok(t)
        })?,
    )?;
    Ok(data)
}

fn vector(lua: &Lua, parts: &[Option<f64>]) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    for (name, v) in ["x", "y", "z", "w"].iter().zip(parts) {
        if let Some(v) = v {
            t.set(*name, *v)?;
        }
    }
    t.set_metatable(Some(lua.named_registry_value(VECTOR_MT)?))?;
    Ok(t)
}

fn is(lua: &Lua, t: &Table, mt: &str) -> mlua::Result<bool> {
    let marker: Table = lua.named_registry_value(mt)?;
    Ok(t.metatable().is_some_and(|m| m == marker))
}

fn to_rtdata(lua: &Lua, t: &Table, depth: usize) -> mlua::Result<RtData> {
    if depth > MAX_DEPTH {
        return Err(mlua::Error::runtime(format!(
            "rt.data nests deeper than {MAX_DEPTH}"
        )));
    }
    let mut d = RtData::new();
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        let index = match k {
            Value::Integer(i) if (1..=255).contains(&i) => i as u8,
            other => {
                return Err(mlua::Error::runtime(format!(
                    "rt.data fields are indexed 1-255 (got {})",
                    other
                        .to_string()
                        .unwrap_or_else(|_| other.type_name().into())
                )));
            }
        };
        let value = match v {
            Value::Integer(i) => RtValue::Long(i),
            Value::Number(n) => RtValue::Double(n),
            Value::String(s) => RtValue::String(s.to_str()?.to_string()),
            Value::Table(inner) if is(lua, &inner, FLOAT_MT)? => {
                RtValue::Float(inner.get::<f64>(1)? as f32)
            }
            Value::Table(inner) if is(lua, &inner, VECTOR_MT)? => {
                let mut parts = Vec::new();
                for name in ["x", "y", "z", "w"] {
                    match inner.get::<Option<f64>>(name)? {
                        Some(v) => parts.push(v as f32),
                        None => break,
                    }
                }
                if parts.is_empty() {
                    return Err(mlua::Error::runtime("rt.data.vector needs at least x"));
                }
                RtValue::Vector(parts)
            }
            Value::Table(inner) => RtValue::Data(to_rtdata(lua, &inner, depth + 1)?),
            other => {
                return Err(mlua::Error::runtime(format!(
                    "rt.data field {index} cannot hold a {}",
                    other.type_name()
                )));
            }
        };
        d.set(index, value);
    }
    Ok(d)
}

fn from_rtdata(lua: &Lua, d: &RtData) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    for (index, value) in d.iter() {
        let v = match value {
            RtValue::Long(i) => Value::Integer(*i),
            RtValue::Float(f) => Value::Number(f64::from(*f)),
            RtValue::Double(f) => Value::Number(*f),
            RtValue::String(s) => Value::String(lua.create_string(s)?),
            RtValue::Vector(parts) => {
                let parts: Vec<Option<f64>> = parts.iter().map(|p| Some(f64::from(*p))).collect();
                Value::Table(vector(lua, &parts)?)
            }
            RtValue::Data(inner) => Value::Table(from_rtdata(lua, inner)?),
        };
        t.set(index, v)?;
    }
    Ok(t)
}
