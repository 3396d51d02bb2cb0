//! plugvisor's Rust kit: the guest ABI (the exports `allocate`, `deallocate`, `execute` and
//! `meta`), the host's functions (`log`, `config`, `host_call`) and a small JSON reader and
//! writer, with the standard library only (no crates). A plugin is one file beside this one
//! that says `mod plugvisor;` and defines `META` and `handle` (see greeter.rs); build it with
//! `rustc --target wasm32-unknown-unknown --crate-type cdylib plugin.rs` (Debian's rustc 1.63
//! works).

// ---- The host's functions (the plugvisor import module) ----

#[link(wasm_import_module = "plugvisor")]
extern "C" {
    #[link_name = "log"]
    fn host_log(level: i32, message: *const u8, length: i32);
    #[link_name = "config_get"]
    fn host_config_get(key: *const u8, key_length: i32, buffer: *mut u8, buffer_length: i32) -> i32;
    #[link_name = "host_call"]
    fn host_host_call(name: *const u8, name_length: i32, input: *const u8, input_length: i32) -> i64;
}

// The levels of `log`.
#[allow(dead_code)]
pub const LOG_DEBUG: i32 = 1;
#[allow(dead_code)]
pub const LOG_INFO: i32 = 2;
#[allow(dead_code)]
pub const LOG_WARNING: i32 = 4;
#[allow(dead_code)]
pub const LOG_ERROR: i32 = 5;

/// A line in the supervisor's log, tagged with the plugin's name.
#[allow(dead_code)]
pub fn log(level: i32, message: &str) {
    unsafe { host_log(level, message.as_ptr(), message.len() as i32) }
}

/// A `config` value from the manifest, or None when the key is absent.
#[allow(dead_code)]
pub fn config(key: &str) -> Option<String> {
    let mut buffer = vec![0u8; 256];
    loop {
        let length = unsafe {
            host_config_get(key.as_ptr(), key.len() as i32, buffer.as_mut_ptr(), buffer.len() as i32)
        };
        if length < 0 {
            return None;
        }
        if length as usize <= buffer.len() {
            buffer.truncate(length as usize);
            return Some(String::from_utf8_lossy(&buffer).into_owned());
        }
        buffer = vec![0u8; length as usize]; // too small: ask again with room for all of it
    }
}

/// Calls `name`, a host function of the program embedding plugvisor that the manifest grants
/// (`host_functions`), with `input`: its answer, or the reason it failed (not granted, not
/// provided, thrown, timed out).
#[allow(dead_code)]
pub fn host_call(name: &str, input: &[u8]) -> Result<Vec<u8>, String> {
    let packed = unsafe { host_host_call(name.as_ptr(), name.len() as i32, input.as_ptr(), input.len() as i32) } as u64;
    // (pointer << 32) | length, in a buffer from our `allocate`; the top bit of the length says
    // the buffer holds the reason it failed.
    let pointer = (packed >> 32) as usize as *mut u8;
    let failed = packed & 0x8000_0000 != 0;
    let length = (packed & 0x7fff_ffff) as usize;
    let bytes = unsafe {
        let bytes = std::slice::from_raw_parts(pointer, length).to_vec();
        deallocate(pointer, length as i32);
        bytes
    };
    if failed {
        Err(String::from_utf8_lossy(&bytes).into_owned())
    } else {
        Ok(bytes)
    }
}

// ---- The exports (the guest ABI) ----

fn layout(size: i32) -> std::alloc::Layout {
    std::alloc::Layout::from_size_align(size.max(1) as usize, 1).unwrap()
}

#[no_mangle]
pub extern "C" fn allocate(size: i32) -> *mut u8 {
    unsafe { std::alloc::alloc(layout(size)) }
}

/// The host frees the context and the answer with the size it was given, as Rust requires.
#[no_mangle]
pub unsafe extern "C" fn deallocate(pointer: *mut u8, size: i32) {
    std::alloc::dealloc(pointer, layout(size))
}

#[no_mangle]
pub unsafe extern "C" fn execute(pointer: *const u8, length: i32) -> i64 {
    let input = std::slice::from_raw_parts(pointer, length as usize);
    let outcome = match std::str::from_utf8(input).map_err(|e| e.to_string()).and_then(Json::parse) {
        Ok(context) => crate::handle(&context),
        Err(reason) => Err(format!("the context is not valid JSON: {}", reason)),
    };
    let answer = match outcome {
        Ok(data) => format!("{{\"success\":true,\"data\":{}}}", data),
        Err(message) => format!("{{\"success\":false,\"error\":{}}}", quote(&message)),
    };
    give_to_host(&answer)
}

/// What the plugin's `META` declares.
pub struct Meta {
    pub name: &'static str,
    pub version: &'static str,
    pub description: &'static str,
}

#[no_mangle]
pub extern "C" fn meta() -> i64 {
    give_to_host(&format!(
        "{{\"name\":{},\"version\":{},\"description\":{}}}",
        quote(crate::META.name),
        quote(crate::META.version),
        quote(crate::META.description)
    ))
}

/// `text` in a buffer the host frees, packed as (pointer << 32) | length. The buffer has exactly
/// the text's length, so that deallocate(pointer, length) matches it.
fn give_to_host(text: &str) -> i64 {
    let buffer = allocate(text.len() as i32);
    unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), buffer, text.len()) };
    ((buffer as i64) << 32) | text.len() as i64
}

// ---- JSON: a small reader (enough for the context) and a string writer ----

#[derive(Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(f64),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn parse(text: &str) -> Result<Json, String> {
        let mut reader = Reader { bytes: text.as_bytes(), position: 0 };
        let value = reader.value(0)?;
        reader.skip_whitespace();
        if reader.position < reader.bytes.len() {
            return Err(reader.error("unexpected text after the JSON value"));
        }
        Ok(value)
    }

    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    // Each accessor answers None when the value is of another type; `get` answers None when
    // the key is absent, so `context.get("parameters").and_then(|p| p.get("n"))` tells the two apart.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(text) => Some(text),
            _ => None,
        }
    }

    #[allow(dead_code)] // for your handle
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(number) => Some(*number),
            _ => None,
        }
    }

    #[allow(dead_code)]
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(value) => Some(*value),
            _ => None,
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, reason: &str) -> String {
        format!("{} at byte {}", reason, self.position)
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.bytes.get(self.position), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.position += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        self.skip_whitespace();
        if self.bytes.get(self.position) != Some(&byte) {
            return Err(self.error(&format!("expected '{}'", byte as char)));
        }
        self.position += 1;
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > 128 {
            return Err(self.error("nested deeper than 128 levels"));
        }
        self.skip_whitespace();
        let rest = &self.bytes[self.position..];
        for (word, value) in [("true", Json::Bool(true)), ("false", Json::Bool(false)), ("null", Json::Null)] {
            if rest.starts_with(word.as_bytes()) {
                self.position += word.len();
                return Ok(value);
            }
        }
        match rest.first() {
            Some(b'"') => self.string().map(Json::Str),
            Some(b'[') => {
                self.position += 1;
                let mut items = Vec::new();
                self.skip_whitespace();
                if self.bytes.get(self.position) == Some(&b']') {
                    self.position += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.skip_whitespace();
                    if self.bytes.get(self.position) == Some(&b']') {
                        self.position += 1;
                        return Ok(Json::Array(items));
                    }
                    self.expect(b',')?;
                }
            }
            Some(b'{') => {
                self.position += 1;
                let mut members = Vec::new();
                self.skip_whitespace();
                if self.bytes.get(self.position) == Some(&b'}') {
                    self.position += 1;
                    return Ok(Json::Object(members));
                }
                loop {
                    self.skip_whitespace();
                    if self.bytes.get(self.position) != Some(&b'"') {
                        return Err(self.error("expected a string key"));
                    }
                    let key = self.string()?;
                    self.expect(b':')?;
                    members.push((key, self.value(depth + 1)?));
                    self.skip_whitespace();
                    if self.bytes.get(self.position) == Some(&b'}') {
                        self.position += 1;
                        return Ok(Json::Object(members));
                    }
                    self.expect(b',')?;
                }
            }
            Some(b'-' | b'0'..=b'9') => {
                let start = self.position;
                while matches!(self.bytes.get(self.position), Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')) {
                    self.position += 1;
                }
                let text = std::str::from_utf8(&self.bytes[start..self.position]).unwrap();
                // Rust's float syntax is looser than JSON's ("1.", ".5" and "+1" pass): fine for reading.
                text.parse::<f64>().map(Json::Number).map_err(|_| format!("invalid number at byte {}", start))
            }
            Some(_) => Err(self.error("unexpected character, expected a value")),
            None => Err(self.error("unexpected end, expected a value")),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let start = self.position;
        self.position += 1;
        let mut out = String::new();
        loop {
            let rest = &self.bytes[self.position..];
            // Copy the run of plain characters at once; the input is already valid UTF-8.
            let plain = rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).unwrap_or(rest.len());
            out.push_str(std::str::from_utf8(&rest[..plain]).unwrap());
            self.position += plain;
            match self.bytes.get(self.position) {
                Some(b'"') => {
                    self.position += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let escape = self.bytes.get(self.position + 1).copied();
                    self.position += 2;
                    match escape {
                        Some(b'"') => out.push('"'),
                        Some(b'\\') => out.push('\\'),
                        Some(b'/') => out.push('/'),
                        Some(b'b') => out.push('\u{8}'),
                        Some(b'f') => out.push('\u{c}'),
                        Some(b'n') => out.push('\n'),
                        Some(b'r') => out.push('\r'),
                        Some(b't') => out.push('\t'),
                        Some(b'u') => {
                            let mut units = vec![self.hex4()?];
                            if (0xD800..0xDC00).contains(&units[0]) && self.bytes[self.position..].starts_with(b"\\u") {
                                self.position += 2;
                                units.push(self.hex4()?);
                            }
                            for decoded in char::decode_utf16(units) {
                                out.push(decoded.map_err(|_| self.error("lone surrogate in \\u escape"))?);
                            }
                        }
                        _ => return Err(format!("invalid escape at byte {}", self.position - 2)),
                    }
                }
                Some(_) => return Err(self.error("control character in string (escape it)")),
                None => return Err(format!("unterminated string at byte {}", start)),
            }
        }
    }

    fn hex4(&mut self) -> Result<u16, String> {
        let digits = self.bytes.get(self.position..self.position + 4).filter(|d| d.iter().all(u8::is_ascii_hexdigit));
        let digits = digits.ok_or_else(|| self.error("invalid \\u escape"))?;
        let value = u16::from_str_radix(std::str::from_utf8(digits).unwrap(), 16).unwrap();
        self.position += 4;
        Ok(value)
    }
}

/// `text` as a JSON string: quoted, with quotes, backslashes and control characters escaped.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
