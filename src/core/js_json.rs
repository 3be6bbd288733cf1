//! JSON the way JavaScript's `JSON.parse` and `JSON.stringify` see it, for the sessionserver
//! profile, whose clients compare server messages as strings.
//!
//! Three things differ from serde_json's defaults and matter for byte compatibility:
//! - **Key order.** A JavaScript object lists integer-like keys ("0", "15") first, ascending,
//!   then the other keys in the order they were first written. [`parse`] reorders objects the
//!   same way; a repeated key keeps its first position and its last value, as in JavaScript.
//! - **Numbers.** Every number is a double, written as `Number.prototype.toString` writes it:
//!   `14.0` is `14`, `1e21` is `1e+21`, `12345678901234567890` is `12345678901234567000`
//!   (`ryu-js` implements exactly that algorithm).
//! - **Strings.** Only `"`, `\` and control characters are escaped; control characters other
//!   than `\b \f \n \r \t` as `\u00xx` with lowercase hex. `/` and non-ASCII stay as they are.
//!
//! [`deep_keys`] and [`assign_copy`] reproduce the two helpers the reference server builds its
//! rules on: the player-data shape check and `Object.assign({}, value)`.

use serde_json::{Map, Value};

/// Parses like `JSON.parse`, with objects in JavaScript's key order. Numbers beyond the double
/// range and unpaired surrogate escapes, which JavaScript accepts, are errors here.
pub(crate) fn parse(text: &str) -> Result<Value, serde_json::Error> {
    let mut value: Value = serde_json::from_str(text)?;
    reorder(&mut value);
    Ok(value)
}

/// Whether `key` is an array index (a canonical integer below 2^32 - 1), which JavaScript
/// lists before every other key of an object.
fn array_index(key: &str) -> Option<u32> {
    if key.is_empty() || key.len() > 10 || (key.len() > 1 && key.starts_with('0')) {
        return None;
    }
    if !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse::<u64>()
        .ok()
        .filter(|&n| n < u32::MAX as u64)
        .map(|n| n as u32)
}

fn reorder(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(reorder),
        Value::Object(map) => {
            map.values_mut().for_each(reorder);
            if map.keys().any(|k| array_index(k).is_some()) {
                let old = std::mem::take(map);
                let (mut indexed, named): (Vec<_>, Vec<_>) =
                    old.into_iter().partition(|(k, _)| array_index(k).is_some());
                indexed.sort_by_key(|(k, _)| array_index(k));
                map.extend(indexed);
                map.extend(named);
            }
        }
        _ => {}
    }
}

/// Appends `value` as `JSON.stringify` writes it (no spaces).
pub(crate) fn stringify(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => number(n.as_f64().unwrap_or(f64::NAN), out),
        Value::String(s) => string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                stringify(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(k, out);
                out.push(':');
                stringify(v, out);
            }
            out.push('}');
        }
    }
}

/// A number as JavaScript writes it; JSON has no NaN or infinities, so those are `null`.
pub(crate) fn number(n: f64, out: &mut String) {
    if n.is_finite() {
        out.push_str(ryu_js::Buffer::new().format(n));
    } else {
        out.push_str("null");
    }
}

/// A number as JavaScript's `String(n)` writes it: like [`number`], but `NaN`, `Infinity` and
/// `-Infinity` for the values JSON has no form for.
pub(crate) fn number_text(n: f64) -> String {
    if n.is_nan() {
        "NaN".into()
    } else if n.is_infinite() {
        if n > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        ryu_js::Buffer::new().format(n).to_owned()
    }
}

/// A string literal as `JSON.stringify` quotes it.
pub(crate) fn string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The reference's `deepKeys`: the keys of every leaf, depth first, nested objects flattened
/// (arrays are leaves), each `.` escaped as `\.`. `None` where JavaScript throws (`null` or a
/// missing value), which makes the reference drop the command.
pub(crate) fn deep_keys(value: Option<&Value>) -> Option<Vec<String>> {
    let mut keys = Vec::new();
    match value? {
        Value::Null => return None,
        Value::Bool(_) | Value::Number(_) => {}
        // Object.keys of a string: one index per UTF-16 code unit.
        Value::String(s) => keys.extend((0..s.encode_utf16().count()).map(|i| i.to_string())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::Object(map) => collect_keys(map, &mut keys),
                    _ => keys.push(i.to_string()),
                }
            }
        }
        Value::Object(map) => collect_keys(map, &mut keys),
    }
    Some(keys)
}

fn collect_keys(map: &Map<String, Value>, keys: &mut Vec<String>) {
    for (k, v) in map {
        match v {
            Value::Object(inner) => collect_keys(inner, keys),
            _ => keys.push(k.replace('.', "\\.")),
        }
    }
}

/// `Object.assign({}, value)`: an object stays as it is; an array or string becomes an object
/// of its indices; anything else (and a missing value) is `{}`.
pub(crate) fn assign_copy(value: Option<&Value>) -> Value {
    let mut map = Map::new();
    match value {
        Some(Value::Object(m)) => return Value::Object(m.clone()),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                map.insert(i.to_string(), item.clone());
            }
        }
        Some(Value::String(s)) => {
            let mut i = 0;
            for c in s.chars() {
                map.insert(i.to_string(), Value::String(c.to_string()));
                i += c.len_utf16();
            }
        }
        _ => {}
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(text: &str) -> String {
        let mut out = String::new();
        stringify(&parse(text).expect("valid JSON"), &mut out);
        out
    }

    #[test]
    fn numbers_are_written_as_javascript_writes_them() {
        for (input, js) in [
            ("14.0", "14"),
            ("1.000000000001", "1.000000000001"),
            ("-27.123", "-27.123"),
            ("1e21", "1e+21"),
            ("123456789012345678901", "123456789012345680000"),
            ("12345678901234567890", "12345678901234567000"),
            ("0.0000001", "1e-7"),
            ("0.000001", "0.000001"),
            ("-0", "0"),
            ("-0.0", "0"),
            ("5e-324", "5e-324"),
            ("0.1", "0.1"),
            ("1E2", "100"),
        ] {
            assert_eq!(roundtrip(input), js, "{input}");
        }
    }

    #[test]
    fn integer_like_keys_come_first_then_keys_in_insertion_order() {
        assert_eq!(
            roundtrip(r#"{"b":1,"a":2,"10":3,"2":4,"01":5,"-1":6,"4294967295":7}"#),
            r#"{"2":4,"10":3,"b":1,"a":2,"01":5,"-1":6,"4294967295":7}"#
        );
        assert_eq!(
            roundtrip(r#"{"a":1,"b":2,"a":3}"#),
            r#"{"a":3,"b":2}"#,
            "a repeated key keeps its first place and its last value"
        );
        assert_eq!(
            roundtrip(r#"{"o":{"z":1,"0":[{"y":1,"1":2}]}}"#),
            r#"{"o":{"0":[{"1":2,"y":1}],"z":1}}"#
        );
    }

    #[test]
    fn strings_escape_only_what_json_stringify_escapes() {
        assert_eq!(
            roundtrip(r#"" \" \\ \/ \b\f\n\r\t \u0001 \u001F é 😀 \u007f""#),
            "\" \\\" \\\\ / \\b\\f\\n\\r\\t \\u0001 \\u001f é 😀 \u{7f}\""
        );
    }

    #[test]
    fn deep_keys_flattens_nested_objects_and_treats_arrays_as_leaves() {
        let v =
            parse(r#"{"name":"x","pos":{"x":0,"y":{"z":1}},"tags":[{"q":1}],"a.b":null}"#).unwrap();
        assert_eq!(
            deep_keys(Some(&v)).unwrap(),
            ["name", "x", "z", "tags", "a\\.b"]
        );
        assert_eq!(deep_keys(None), None);
        assert_eq!(deep_keys(Some(&Value::Null)), None);
        assert_eq!(
            deep_keys(Some(&parse("5").unwrap())).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            deep_keys(Some(&parse(r#""ab""#).unwrap())).unwrap(),
            ["0", "1"]
        );
    }

    #[test]
    fn assign_copy_makes_an_object_of_anything() {
        let copy = |t: &str| {
            let mut out = String::new();
            stringify(&assign_copy(Some(&parse(t).unwrap())), &mut out);
            out
        };
        assert_eq!(copy(r#"{"b":1,"a":2}"#), r#"{"b":1,"a":2}"#);
        assert_eq!(copy("[1,2]"), r#"{"0":1,"1":2}"#);
        assert_eq!(copy(r#""hi""#), r#"{"0":"h","1":"i"}"#);
        assert_eq!(copy("7"), "{}");
        assert_eq!(copy("null"), "{}");
        assert_eq!(assign_copy(None), Value::Object(Map::new()));
    }
}
