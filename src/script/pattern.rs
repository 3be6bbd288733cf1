//! Lua 5.4's pattern matching (`string.find`, `match`, `gmatch`, `gsub`) with its work counted.
//!
//! Lua's own matcher is C code the instruction hook never sees, and it backtracks: a pattern such
//! as `^%s*(.-)%s*$` on 60 kB of spaces runs for seconds, an `a*a*a*a*b` on 300 bytes for
//! minutes. This is a line-by-line port of `lstrlib.c` (same semantics, same error messages)
//! whose every matching step is charged to the callback's instruction budget and checked
//! against its time limit, so a pattern can cost a callback its budget but never stall the loop.
//! Plain searches use a linear-time substring search (`memchr::memmem`).

use super::sandbox::charge;
use mlua::{Function, Lua, LuaString, MultiValue, Value};

/// Steps between two charges to the budget.
const CHARGE_EVERY: u32 = 1_024;
/// Lua's `MAXCCALLS` for patterns: how deep the matcher may recurse.
const MAX_DEPTH: u32 = 200;
/// Lua's `LUA_MAXCAPTURES`.
const MAX_CAPTURES: usize = 32;
const ESCAPE: u8 = b'%';
const SPECIALS: &[u8] = b"^$*+?.([%-";

/// A capture: where it starts, and its length, or a position capture, or still open.
#[derive(Clone, Copy)]
enum CapLen {
    Open,
    Position,
    Len(usize),
}

struct MatchState<'a> {
    lua: &'a Lua,
    src: &'a [u8],
    pat: &'a [u8],
    level: usize,
    depth: u32,
    capture: [(usize, CapLen); MAX_CAPTURES],
    /// Steps not yet charged.
    steps: u32,
}

type MResult<T> = mlua::Result<T>;

fn err<T>(msg: impl Into<String>) -> MResult<T> {
    Err(mlua::Error::runtime(msg.into()))
}

impl<'a> MatchState<'a> {
    fn new(lua: &'a Lua, src: &'a [u8], pat: &'a [u8]) -> MatchState<'a> {
        MatchState {
            lua,
            src,
            pat,
            level: 0,
            depth: MAX_DEPTH,
            capture: [(0, CapLen::Open); MAX_CAPTURES],
            steps: 0,
        }
    }

    fn reprep(&mut self) {
        self.level = 0;
        self.depth = MAX_DEPTH;
    }

    /// Counts one step of work; every `CHARGE_EVERY` steps they are charged to the budget.
    #[inline]
    fn step(&mut self) -> MResult<()> {
        self.steps += 1;
        if self.steps >= CHARGE_EVERY {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> MResult<()> {
        let n = std::mem::take(&mut self.steps);
        charge(self.lua, n as i64)
    }

    fn check_capture(&self, l: u8) -> MResult<usize> {
        let l = l as i32 - b'1' as i32;
        if l < 0 || l as usize >= self.level || matches!(self.capture[l as usize].1, CapLen::Open) {
            return err(format!("invalid capture index %{}", l + 1));
        }
        Ok(l as usize)
    }

    fn capture_to_close(&self) -> MResult<usize> {
        for level in (0..self.level).rev() {
            if matches!(self.capture[level].1, CapLen::Open) {
                return Ok(level);
            }
        }
        err("invalid pattern capture")
    }

    /// The index just past the single-character class starting at `p`.
    fn class_end(&self, mut p: usize) -> MResult<usize> {
        let pat = self.pat;
        let c = pat[p];
        p += 1;
        if c == ESCAPE {
            if p >= pat.len() {
                return err("malformed pattern (ends with '%')");
            }
            return Ok(p + 1);
        }
        if c == b'[' {
            if pat.get(p) == Some(&b'^') {
                p += 1;
            }
            // Look for a ']'; the first character of the set is never its end.
            loop {
                if p >= pat.len() {
                    return err("malformed pattern (missing ']')");
                }
                let cc = pat[p];
                p += 1;
                if cc == ESCAPE && p < pat.len() {
                    p += 1;
                }
                if p < pat.len() && pat[p] == b']' {
                    return Ok(p + 1);
                }
                if p >= pat.len() {
                    return err("malformed pattern (missing ']')");
                }
            }
        }
        Ok(p)
    }

    fn single_match(&self, s: usize, p: usize, ep: usize) -> bool {
        if s >= self.src.len() {
            return false;
        }
        let c = self.src[s];
        match self.pat[p] {
            b'.' => true,
            ESCAPE => match_class(c, self.pat[p + 1]),
            b'[' => self.match_bracket_class(c, p, ep - 1),
            pc => pc == c,
        }
    }

    /// Whether `c` is in the set `[...]` spanning `p..=ec` (`ec` is the closing `]`).
    fn match_bracket_class(&self, c: u8, mut p: usize, ec: usize) -> bool {
        let pat = self.pat;
        let mut sig = true;
        if pat[p + 1] == b'^' {
            sig = false;
            p += 1;
        }
        p += 1;
        while p < ec {
            if pat[p] == ESCAPE {
                p += 1;
                if match_class(c, pat[p]) {
                    return sig;
                }
                p += 1;
            } else if p + 2 < ec && pat[p + 1] == b'-' {
                if pat[p] <= c && c <= pat[p + 2] {
                    return sig;
                }
                p += 3;
            } else {
                if pat[p] == c {
                    return sig;
                }
                p += 1;
            }
        }
        !sig
    }

    fn match_balance(&mut self, s: usize, p: usize) -> MResult<Option<usize>> {
        if p + 1 >= self.pat.len() {
            return err("malformed pattern (missing arguments to '%b')");
        }
        if s >= self.src.len() || self.src[s] != self.pat[p] {
            return Ok(None);
        }
        let (b, e) = (self.pat[p], self.pat[p + 1]);
        let mut cont = 1;
        let mut s = s + 1;
        while s < self.src.len() {
            self.step()?;
            let c = self.src[s];
            if c == e {
                cont -= 1;
                if cont == 0 {
                    return Ok(Some(s + 1));
                }
            } else if c == b {
                cont += 1;
            }
            s += 1;
        }
        Ok(None)
    }

    fn max_expand(&mut self, s: usize, p: usize, ep: usize) -> MResult<Option<usize>> {
        let mut i = 0usize;
        while self.single_match(s + i, p, ep) {
            self.step()?;
            i += 1;
        }
        // Try with the most repetitions first, then fewer.
        loop {
            self.step()?;
            if let Some(r) = self.do_match(s + i, ep + 1)? {
                return Ok(Some(r));
            }
            if i == 0 {
                return Ok(None);
            }
            i -= 1;
        }
    }

    fn min_expand(&mut self, mut s: usize, p: usize, ep: usize) -> MResult<Option<usize>> {
        loop {
            self.step()?;
            if let Some(r) = self.do_match(s, ep + 1)? {
                return Ok(Some(r));
            }
            if self.single_match(s, p, ep) {
                s += 1;
            } else {
                return Ok(None);
            }
        }
    }

    fn start_capture(&mut self, s: usize, p: usize, what: CapLen) -> MResult<Option<usize>> {
        if self.level >= MAX_CAPTURES {
            return err("too many captures");
        }
        self.capture[self.level] = (s, what);
        self.level += 1;
        let r = self.do_match(s, p)?;
        if r.is_none() {
            self.level -= 1;
        }
        Ok(r)
    }

    fn end_capture(&mut self, s: usize, p: usize) -> MResult<Option<usize>> {
        let l = self.capture_to_close()?;
        let start = self.capture[l].0;
        self.capture[l].1 = CapLen::Len(s - start);
        let r = self.do_match(s, p)?;
        if r.is_none() {
            self.capture[l].1 = CapLen::Open;
        }
        Ok(r)
    }

    fn match_capture(&mut self, s: usize, l: u8) -> MResult<Option<usize>> {
        let l = self.check_capture(l)?;
        let (start, len) = self.capture[l];
        // A position capture has no text: like Lua, it never matches.
        let CapLen::Len(len) = len else {
            return Ok(None);
        };
        // Charged like the comparison it is.
        self.steps += (len / 64) as u32;
        self.step()?;
        if self.src.len() - s >= len && self.src[start..start + len] == self.src[s..s + len] {
            Ok(Some(s + len))
        } else {
            Ok(None)
        }
    }

    /// Matches the pattern from `p` against the subject from `s`; the end of the match if any.
    fn do_match(&mut self, mut s: usize, mut p: usize) -> MResult<Option<usize>> {
        if self.depth == 0 {
            return err("pattern too complex");
        }
        self.depth -= 1;
        self.step()?;
        let result = loop {
            if p >= self.pat.len() {
                break Some(s);
            }
            match self.pat[p] {
                b'(' => {
                    break if self.pat.get(p + 1) == Some(&b')') {
                        self.start_capture(s, p + 2, CapLen::Position)?
                    } else {
                        self.start_capture(s, p + 1, CapLen::Open)?
                    };
                }
                b')' => break self.end_capture(s, p + 1)?,
                b'$' if p + 1 == self.pat.len() => {
                    break (s == self.src.len()).then_some(s);
                }
                ESCAPE if self.pat.get(p + 1) == Some(&b'b') => {
                    match self.match_balance(s, p + 2)? {
                        Some(end) => {
                            s = end;
                            p += 4;
                            continue;
                        }
                        None => break None,
                    }
                }
                ESCAPE if self.pat.get(p + 1) == Some(&b'f') => {
                    p += 2;
                    if self.pat.get(p) != Some(&b'[') {
                        return err("missing '[' after '%f' in pattern");
                    }
                    let ep = self.class_end(p)?;
                    let prev = if s == 0 { 0 } else { self.src[s - 1] };
                    let cur = self.src.get(s).copied().unwrap_or(0);
                    if !self.match_bracket_class(prev, p, ep - 1)
                        && self.match_bracket_class(cur, p, ep - 1)
                    {
                        p = ep;
                        continue;
                    }
                    break None;
                }
                ESCAPE if self.pat.get(p + 1).is_some_and(u8::is_ascii_digit) => {
                    match self.match_capture(s, self.pat[p + 1])? {
                        Some(end) => {
                            s = end;
                            p += 2;
                            continue;
                        }
                        None => break None,
                    }
                }
                _ => {
                    let ep = self.class_end(p)?;
                    let next = self.pat.get(ep).copied();
                    if !self.single_match(s, p, ep) {
                        if matches!(next, Some(b'*' | b'?' | b'-')) {
                            p = ep + 1;
                            continue;
                        }
                        break None;
                    }
                    match next {
                        Some(b'?') => {
                            if let Some(r) = self.do_match(s + 1, ep + 1)? {
                                break Some(r);
                            }
                            p = ep + 1;
                            continue;
                        }
                        Some(b'+') => break self.max_expand(s + 1, p, ep)?,
                        Some(b'*') => break self.max_expand(s, p, ep)?,
                        Some(b'-') => break self.min_expand(s, p, ep)?,
                        _ => {
                            s += 1;
                            p = ep;
                            self.step()?;
                            continue;
                        }
                    }
                }
            }
        };
        self.depth += 1;
        Ok(result)
    }

    /// Capture `i` as a Lua value (the whole match when there are no captures).
    fn get_capture(&self, i: usize, s: usize, e: usize) -> MResult<Value> {
        if i >= self.level {
            if i != 0 {
                return err(format!("invalid capture index %{}", i + 1));
            }
            return Ok(Value::String(self.lua.create_string(&self.src[s..e])?));
        }
        let (start, len) = self.capture[i];
        match len {
            CapLen::Open => err("unfinished capture"),
            CapLen::Position => Ok(Value::Integer(start as i64 + 1)),
            CapLen::Len(len) => Ok(Value::String(
                self.lua.create_string(&self.src[start..start + len])?,
            )),
        }
    }

    /// Every capture (or the whole match), as `find`/`match`/`gmatch` return them.
    fn push_captures(&self, s: usize, e: usize, whole_if_none: bool) -> MResult<MultiValue> {
        let n = if self.level == 0 && whole_if_none {
            1
        } else {
            self.level
        };
        (0..n).map(|i| self.get_capture(i, s, e)).collect()
    }
}

/// `%a`, `%d`, ... for one byte, as C's `<ctype.h>` in the "C" locale; upper case negates.
fn match_class(c: u8, cl: u8) -> bool {
    let res = match cl.to_ascii_lowercase() {
        b'a' => c.is_ascii_alphabetic(),
        b'c' => c.is_ascii_control(),
        b'd' => c.is_ascii_digit(),
        b'g' => c.is_ascii_graphic(),
        b'l' => c.is_ascii_lowercase(),
        b'p' => c.is_ascii_punctuation(),
        b's' => matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c),
        b'u' => c.is_ascii_uppercase(),
        b'w' => c.is_ascii_alphanumeric(),
        b'x' => c.is_ascii_hexdigit(),
        _ => return cl == c,
    };
    if cl.is_ascii_uppercase() { !res } else { res }
}

/// Lua's `posrelatI`: a 1-based start position, negative from the end, clamped.
fn start_index(init: Option<i64>, len: usize) -> usize {
    let len = len as i64;
    let pos = match init.unwrap_or(1) {
        p if p > 0 => p,
        0 => 1,
        p if p < -len => 1,
        p => len + p + 1,
    };
    (pos - 1) as usize
}

fn find_aux(
    lua: &Lua,
    (s, p, init, plain): (LuaString, LuaString, Option<i64>, Option<Value>),
    find: bool,
) -> MResult<MultiValue> {
    let (src, pat) = (s.as_bytes(), p.as_bytes());
    let init = start_index(init, src.len());
    if init > src.len() {
        return Ok(MultiValue::from_iter([Value::Nil]));
    }
    let plain = plain.is_some_and(|v| !matches!(v, Value::Nil | Value::Boolean(false)));
    if find && (plain || !pat.iter().any(|c| SPECIALS.contains(c))) {
        charge(lua, (src.len() - init) as i64 / 16)?;
        return Ok(match memchr::memmem::find(&src[init..], &pat) {
            Some(at) => MultiValue::from_iter([
                Value::Integer((init + at + 1) as i64),
                Value::Integer((init + at + pat.len()) as i64),
            ]),
            None => MultiValue::from_iter([Value::Nil]),
        });
    }
    let (anchor, start_p) = if pat.first() == Some(&b'^') {
        (true, 1)
    } else {
        (false, 0)
    };
    let mut ms = MatchState::new(lua, &src, &pat);
    let mut s1 = init;
    loop {
        ms.reprep();
        if let Some(e) = ms.do_match(s1, start_p)? {
            ms.flush()?;
            if find {
                let mut out = vec![Value::Integer(s1 as i64 + 1), Value::Integer(e as i64)];
                out.extend(ms.push_captures(s1, e, false)?);
                return Ok(MultiValue::from_iter(out));
            }
            return ms.push_captures(s1, e, true);
        }
        s1 += 1;
        if anchor || s1 > src.len() {
            break;
        }
    }
    ms.flush()?;
    Ok(MultiValue::from_iter([Value::Nil]))
}

fn gmatch(lua: &Lua, (s, p, init): (LuaString, LuaString, Option<i64>)) -> MResult<Function> {
    let src = s.as_bytes().to_vec();
    let pat = p.as_bytes().to_vec();
    let mut pos = start_index(init, src.len());
    if pos > src.len() {
        pos = src.len() + 1;
    }
    let mut last: Option<usize> = None;
    lua.create_function_mut(move |lua, ()| {
        let mut ms = MatchState::new(lua, &src, &pat);
        let mut s = pos;
        while s <= src.len() {
            ms.reprep();
            if let Some(e) = ms.do_match(s, 0)?
                && Some(e) != last
            {
                ms.flush()?;
                pos = e;
                last = Some(e);
                return ms.push_captures(s, e, true);
            }
            s += 1;
        }
        ms.flush()?;
        pos = src.len() + 1;
        Ok(MultiValue::from_iter([Value::Nil]))
    })
}

fn add_value(
    ms: &mut MatchState<'_>,
    out: &mut Vec<u8>,
    s: usize,
    e: usize,
    repl: &Value,
) -> MResult<()> {
    let value = match repl {
        Value::String(r) => {
            let r = r.as_bytes();
            let mut i = 0;
            while i < r.len() {
                let c = r[i];
                i += 1;
                if c != ESCAPE {
                    out.push(c);
                    continue;
                }
                let Some(&d) = r.get(i) else {
                    return err("invalid use of '%' in replacement string");
                };
                i += 1;
                if d == ESCAPE {
                    out.push(ESCAPE);
                } else if d.is_ascii_digit() {
                    let v = if d == b'0' {
                        Value::String(ms.lua.create_string(&ms.src[s..e])?)
                    } else {
                        ms.get_capture((d - b'1') as usize, s, e)?
                    };
                    append(out, &v)?;
                } else {
                    return err("invalid use of '%' in replacement string");
                }
            }
            ms.steps += (r.len() / 16) as u32;
            return ms.step();
        }
        Value::Integer(_) | Value::Number(_) => {
            let r = repl.to_string()?;
            return add_value(ms, out, s, e, &Value::String(ms.lua.create_string(&r)?));
        }
        Value::Table(t) => {
            let key = ms.get_capture(0, s, e)?;
            t.get::<Value>(key)?
        }
        Value::Function(f) => {
            let args = ms.push_captures(s, e, true)?;
            ms.flush()?;
            f.call::<Value>(args)?
        }
        other => {
            return err(format!(
                "bad argument #3 to 'gsub' (string/function/table expected, got {})",
                other.type_name()
            ));
        }
    };
    match value {
        Value::Nil | Value::Boolean(false) => out.extend_from_slice(&ms.src[s..e]),
        Value::String(_) | Value::Integer(_) | Value::Number(_) => append(out, &value)?,
        other => {
            return err(format!(
                "invalid replacement value (a {})",
                other.type_name()
            ));
        }
    }
    Ok(())
}

fn append(out: &mut Vec<u8>, v: &Value) -> MResult<()> {
    match v {
        Value::String(s) => out.extend_from_slice(&s.as_bytes()),
        Value::Integer(_) | Value::Number(_) => out.extend_from_slice(v.to_string()?.as_bytes()),
        other => {
            return err(format!("invalid capture value (a {})", other.type_name()));
        }
    }
    Ok(())
}

fn gsub(
    lua: &Lua,
    (s, p, repl, max_n): (LuaString, LuaString, Value, Option<i64>),
) -> MResult<(LuaString, i64)> {
    let (src, pat) = (s.as_bytes(), p.as_bytes());
    if !matches!(
        repl,
        Value::String(_)
            | Value::Integer(_)
            | Value::Number(_)
            | Value::Table(_)
            | Value::Function(_)
    ) {
        return err(format!(
            "bad argument #3 to 'gsub' (string/function/table expected, got {})",
            repl.type_name()
        ));
    }
    let max_n = max_n.unwrap_or(src.len() as i64 + 1);
    let (anchor, start_p) = if pat.first() == Some(&b'^') {
        (true, 1)
    } else {
        (false, 0)
    };
    let mut ms = MatchState::new(lua, &src, &pat);
    let mut out = Vec::new();
    let mut s = 0;
    let mut last: Option<usize> = None;
    let mut n = 0;
    while n < max_n {
        ms.reprep();
        match ms.do_match(s, start_p)? {
            Some(e) if Some(e) != last => {
                n += 1;
                add_value(&mut ms, &mut out, s, e, &repl)?;
                s = e;
                last = Some(e);
            }
            _ if s < src.len() => {
                out.push(src[s]);
                s += 1;
            }
            _ => break,
        }
        if anchor {
            break;
        }
    }
    out.extend_from_slice(&src[s.min(src.len())..]);
    ms.flush()?;
    Ok((lua.create_string(&out)?, n))
}

/// `string[name]` for one of the charged pattern functions; `nil` for any other name. Lua's own
/// are taken out of `string` when it is opened (`super::lazy_libs::string_library`), and these
/// are made when a script first reads them, through [`super::members`].
pub(crate) fn member(lua: &Lua, name: &str) -> mlua::Result<Value> {
    Ok(Value::Function(match name {
        "find" => lua.create_function(|lua, args| find_aux(lua, args, true))?,
        "match" => lua.create_function(|lua, args| find_aux(lua, args, false))?,
        "gmatch" => lua.create_function(gmatch)?,
        "gsub" => lua.create_function(gsub)?,
        _ => return Ok(Value::Nil),
    }))
}

#[cfg(test)]
mod tests {
    use crate::script::sandbox;
    use crate::script::source::ScriptSource;
    use mlua::Lua;
    use std::rc::Rc;

    /// Each expression's results as text, in Lua's own string library and in ours.
    fn both(expr: &str) -> (String, String) {
        let show = format!(
            "local r = table.pack(pcall(function() return {expr} end)) \
             local out = {{}} for i = 1, r.n do out[#out + 1] = tostring(r[i]) end \
             return table.concat(out, ' ')"
        );
        let reference = Lua::new();
        let src = ScriptSource::from_text(std::path::Path::new("main.lua"), String::new());
        let ours = sandbox::new_state(Rc::new(src), 16 << 20).unwrap();
        let a: String = reference.load(&show).eval().unwrap();
        let b: String = ours.load(&show).eval().unwrap();
        (error_text(&a), error_text(&b))
    }

    /// An error result reduced to its message: Lua prefixes `chunk:line:`, mlua adds
    /// "runtime error: " and a traceback.
    fn error_text(result: &str) -> String {
        let Some(message) = result.strip_prefix("false ") else {
            return result.to_owned();
        };
        let line = message.lines().next().unwrap_or("");
        let line = line.strip_prefix("runtime error: ").unwrap_or(line);
        let without_place = match line.split_once(": ") {
            Some((place, rest))
                if place
                    .rsplit(':')
                    .next()
                    .is_some_and(|n| n.parse::<u32>().is_ok()) =>
            {
                rest
            }
            _ => line,
        };
        format!("error: {without_place}")
    }

    #[test]
    fn results_and_errors_match_lua_own_matcher() {
        let cases = [
            r#"string.find("hello world", "o w")"#,
            r#"string.find("hello world", "o", 6)"#,
            r#"string.find("hello", "l+")"#,
            r#"string.find("a.b", ".", 1, true)"#,
            r#"string.find("abc", "", 10)"#,
            r#"string.find("abc", "", 4)"#,
            r#"string.find("abc", "b", -1)"#,
            r#"string.find("abc", "b", -10)"#,
            r#"string.match("key = value", "(%w+)%s*=%s*(%w+)")"#,
            r#"string.match("  trim me  ", "^%s*(.-)%s*$")"#,
            r#"string.match("2024-11-23", "(%d+)-(%d+)-(%d+)")"#,
            r#"string.match("hello", "()ll()")"#,
            r#"string.match("[[x]]", "%[(%b[])%]")"#,
            r#"string.match("THE (quick) fox", "%f[%a]%a+")"#,
            r#"string.match("abc", "^(a)(b)(c)$")"#,
            r#"string.match("aaa", "a-b")"#,
            r#"string.match("xyz", "[^%a]")"#,
            r#"string.match("a]b", "[]]")"#,
            r#"string.match("a-b", "[a%-]+")"#,
            r#"string.match("0x1F", "0[xX](%x+)")"#,
            r#"string.match("hello hello", "(h%a+) %1")"#,
            r#"string.match("abc", "%g%p?%c*%l%u?%w")"#,
            r#"string.gsub("hello world", "o", "0")"#,
            r#"string.gsub("hello world", "(%w+)", "<%1>")"#,
            r#"string.gsub("hello", "", "-")"#,
            r#"string.gsub("abc", "%w", "%0%0", 2)"#,
            r#"string.gsub("$name is $age", "%$(%w+)", { name = "Ann", age = 7 })"#,
            r#"string.gsub("1 2 3", "%d", function(d) return d * 2 end)"#,
            r#"string.gsub("abc", "b", false)"#,
            r#"string.gsub("abc", "^a", "A")"#,
            r#"string.gsub("hello", "l", "%%")"#,
            r#"string.gsub("x", "x", "%2")"#,
            r#"string.gsub("x", "x", "%")"#,
            r#"string.gsub("abc", "(b)", {b = true})"#,
            r#"string.find("abc", "[a")"#,
            r#"string.find("abc", "%")"#,
            r#"string.find("abc", "(()")"#,
            r#"string.find("abc", "%1")"#,
            r#"string.find("abc", "a)")"#,
            r#"string.find("abc", "%f")"#,
            r#"string.find("abc", "%b")"#,
            r#"("x"):rep(3):find("x", 2)"#,
        ];
        for expr in cases {
            let (reference, ours) = both(expr);
            assert_eq!(ours, reference, "{expr}");
        }
        let (reference, ours) = both(
            r#"(function() local t = {} for k, v in string.gmatch("a=1, b=2, c=3", "(%w+)=(%w+)") do t[#t + 1] = k .. v end
               for w in ("one two  three"):gmatch("%a+") do t[#t + 1] = w end
               for e in ("abc"):gmatch("") do t[#t + 1] = "|" end
               for w in ("hello world"):gmatch("%a+", 3) do t[#t + 1] = w end
               return table.concat(t, ",") end)()"#,
        );
        assert_eq!(ours, reference);
    }

    #[test]
    fn catastrophic_backtracking_costs_the_budget_not_minutes() {
        let src = ScriptSource::from_text(std::path::Path::new("main.lua"), String::new());
        let lua = sandbox::new_state(Rc::new(src), 16 << 20).unwrap();
        lua.app_data_ref::<sandbox::Budget>()
            .unwrap()
            .reset(1_000_000, std::time::Duration::from_secs(60));
        let err = lua
            .load(r#"return string.find(string.rep("a", 300), "a*a*a*a*a*a*a*a*b")"#)
            .exec()
            .unwrap_err();
        assert!(err.to_string().contains(sandbox::BUDGET_ERROR), "{err}");
    }
}
