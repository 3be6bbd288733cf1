//! Typed payload data (GameSparks' `RTData`): indexed fields of long, float, double, string,
//! vector and nested data, in a compact encoding scripts and clients share. Optional: payloads
//! stay opaque bytes to the server; this is a convenience format for games that want it.
//!
//! Encoding (PROTOCOL.md section 11): fields in ascending index order, each `u8 index` (1-255),
//! `u8 type`, value. Longs are zigzag LEB128 varints; floats and doubles are little-endian IEEE
//! 754; strings and nested data are a varint byte length then the bytes; a vector is a `u8`
//! count (1-4) then that many `f32`.

use std::collections::BTreeMap;

/// Type tags on the wire.
mod tag {
    pub const LONG: u8 = 1;
    pub const FLOAT: u8 = 2;
    pub const DOUBLE: u8 = 3;
    pub const STRING: u8 = 4;
    pub const VECTOR: u8 = 5;
    pub const DATA: u8 = 6;
}

/// Deepest nesting accepted when decoding (untrusted input must not exhaust the stack).
pub const MAX_DEPTH: usize = 32;

/// One field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum RtValue {
    /// A signed 64-bit integer.
    Long(i64),
    /// A 32-bit float.
    Float(f32),
    /// A 64-bit float.
    Double(f64),
    /// A UTF-8 string.
    String(String),
    /// 1 to 4 floats (x, y, z, w).
    Vector(Vec<f32>),
    /// Nested data.
    Data(RtData),
}

/// Indexed fields, 1-255.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RtData {
    fields: BTreeMap<u8, RtValue>,
}

/// Why bytes are not valid RTData.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtDataError {
    /// The bytes ended inside a field.
    #[error("truncated at byte {0}")]
    Truncated(usize),
    /// Index 0, or indexes not ascending.
    #[error("field index {index} at byte {at} is 0 or not ascending")]
    BadIndex {
        /// The index seen.
        index: u8,
        /// Where.
        at: usize,
    },
    /// A type tag this version does not know.
    #[error("unknown type {tag} at byte {at}")]
    UnknownType {
        /// The tag seen.
        tag: u8,
        /// Where.
        at: usize,
    },
    /// A string that is not UTF-8.
    #[error("string at byte {0} is not UTF-8")]
    BadUtf8(usize),
    /// A vector with 0 or more than 4 components.
    #[error("vector at byte {0} has a count outside 1-4")]
    BadVector(usize),
    /// A varint longer than 10 bytes.
    #[error("varint at byte {0} is too long")]
    BadVarint(usize),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("nested deeper than {MAX_DEPTH}")]
    TooDeep,
}

impl RtData {
    /// Empty data.
    pub fn new() -> RtData {
        RtData::default()
    }

    /// Sets field `index` (1-255; 0 is ignored).
    pub fn set(&mut self, index: u8, value: RtValue) -> &mut RtData {
        if index != 0 {
            self.fields.insert(index, value);
        }
        self
    }

    /// Field `index`, if set.
    pub fn get(&self, index: u8) -> Option<&RtValue> {
        self.fields.get(&index)
    }

    /// A long field.
    pub fn get_long(&self, index: u8) -> Option<i64> {
        match self.get(index)? {
            RtValue::Long(v) => Some(*v),
            _ => None,
        }
    }

    /// A string field.
    pub fn get_string(&self, index: u8) -> Option<&str> {
        match self.get(index)? {
            RtValue::String(v) => Some(v),
            _ => None,
        }
    }

    /// Every field in index order.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &RtValue)> {
        self.fields.iter().map(|(k, v)| (*k, v))
    }

    /// The encoded bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        for (&index, value) in &self.fields {
            out.push(index);
            match value {
                RtValue::Long(v) => {
                    out.push(tag::LONG);
                    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
                }
                RtValue::Float(v) => {
                    out.push(tag::FLOAT);
                    out.extend_from_slice(&v.to_le_bytes());
                }
                RtValue::Double(v) => {
                    out.push(tag::DOUBLE);
                    out.extend_from_slice(&v.to_le_bytes());
                }
                RtValue::String(s) => {
                    out.push(tag::STRING);
                    put_varint(out, s.len() as u64);
                    out.extend_from_slice(s.as_bytes());
                }
                RtValue::Vector(v) => {
                    out.push(tag::VECTOR);
                    let n = v.len().clamp(1, 4);
                    out.push(n as u8);
                    for i in 0..n {
                        out.extend_from_slice(&v.get(i).copied().unwrap_or(0.0).to_le_bytes());
                    }
                }
                RtValue::Data(d) => {
                    out.push(tag::DATA);
                    let inner = d.encode();
                    put_varint(out, inner.len() as u64);
                    out.extend_from_slice(&inner);
                }
            }
        }
    }

    /// Decodes bytes produced by [`RtData::encode`] (or any client following PROTOCOL.md).
    pub fn decode(bytes: &[u8]) -> Result<RtData, RtDataError> {
        decode_at(bytes, 0, 0)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Cursor<'a> {
    fn at(&self) -> usize {
        self.base + self.pos
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], RtDataError> {
        if self.bytes.len() - self.pos < n {
            return Err(RtDataError::Truncated(self.at()));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, RtDataError> {
        Ok(self.take(1)?[0])
    }
    fn varint(&mut self) -> Result<u64, RtDataError> {
        let start = self.at();
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return Err(RtDataError::BadVarint(start));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(RtDataError::BadVarint(start))
    }
    fn len(&mut self) -> Result<usize, RtDataError> {
        let at = self.at();
        let n = self.varint()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.bytes.len() - self.pos)
            .ok_or(RtDataError::Truncated(at))
    }
}

fn decode_at(bytes: &[u8], base: usize, depth: usize) -> Result<RtData, RtDataError> {
    if depth > MAX_DEPTH {
        return Err(RtDataError::TooDeep);
    }
    let mut c = Cursor {
        bytes,
        pos: 0,
        base,
    };
    let mut data = RtData::new();
    let mut last = 0u8;
    while c.pos < bytes.len() {
        let at = c.at();
        let index = c.u8()?;
        if index <= last {
            return Err(RtDataError::BadIndex { index, at });
        }
        last = index;
        let type_at = c.at();
        let value = match c.u8()? {
            tag::LONG => {
                let z = c.varint()?;
                RtValue::Long(((z >> 1) as i64) ^ -((z & 1) as i64))
            }
            tag::FLOAT => RtValue::Float(f32::from_le_bytes(c.take(4)?.try_into().expect("4"))),
            tag::DOUBLE => RtValue::Double(f64::from_le_bytes(c.take(8)?.try_into().expect("8"))),
            tag::STRING => {
                let n = c.len()?;
                let s = c.take(n)?;
                RtValue::String(
                    std::str::from_utf8(s)
                        .map_err(|_| RtDataError::BadUtf8(type_at))?
                        .to_owned(),
                )
            }
            tag::VECTOR => {
                let n = c.u8()? as usize;
                if !(1..=4).contains(&n) {
                    return Err(RtDataError::BadVector(type_at));
                }
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(f32::from_le_bytes(c.take(4)?.try_into().expect("4")));
                }
                RtValue::Vector(v)
            }
            tag::DATA => {
                let n = c.len()?;
                let inner_base = c.at();
                RtValue::Data(decode_at(c.take(n)?, inner_base, depth + 1)?)
            }
            other => {
                return Err(RtDataError::UnknownType {
                    tag: other,
                    at: type_at,
                });
            }
        };
        data.fields.insert(index, value);
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RtData {
        let mut inner = RtData::new();
        inner.set(1, RtValue::String("nested".into()));
        let mut d = RtData::new();
        d.set(1, RtValue::Long(-3))
            .set(2, RtValue::Float(1.5))
            .set(3, RtValue::Double(0.1))
            .set(4, RtValue::String("héllo".into()))
            .set(5, RtValue::Vector(vec![1.0, 2.0, 3.0]))
            .set(9, RtValue::Data(inner))
            .set(255, RtValue::Long(i64::MIN));
        d
    }

    #[test]
    fn every_type_round_trips() {
        let d = sample();
        assert_eq!(RtData::decode(&d.encode()).unwrap(), d);
    }

    #[test]
    fn encoding_matches_the_documented_bytes() {
        // PROTOCOL.md section 11: {1 = long 300, 2 = string "hi"}.
        let mut d = RtData::new();
        d.set(1, RtValue::Long(300))
            .set(2, RtValue::String("hi".into()));
        assert_eq!(
            d.encode(),
            [0x01, 0x01, 0xd8, 0x04, 0x02, 0x04, 0x02, b'h', b'i']
        );
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic() {
        let good = sample().encode();
        for cut in 0..good.len() {
            let _ = RtData::decode(&good[..cut]);
        }
        assert_eq!(
            RtData::decode(&[1, 9]),
            Err(RtDataError::UnknownType { tag: 9, at: 1 })
        );
        assert_eq!(
            RtData::decode(&[2, 1, 0, 1, 1, 0]),
            Err(RtDataError::BadIndex { index: 1, at: 3 })
        );
        assert_eq!(
            RtData::decode(&[1, 4, 5, b'a']),
            Err(RtDataError::Truncated(2))
        );
        let mut deep = Vec::new();
        for _ in 0..100 {
            let mut outer = vec![1, 6];
            put_varint(&mut outer, deep.len() as u64);
            outer.extend_from_slice(&deep);
            deep = outer;
        }
        assert_eq!(RtData::decode(&deep), Err(RtDataError::TooDeep));
    }
}
