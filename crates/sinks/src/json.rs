//! A small JSON writer for hot output paths: no intermediate values, deterministic key
//! order, and a faithful rendering of bytes that are not UTF-8.

/// Appends `bytes` as a JSON string. Valid UTF-8 is kept as is; each byte of an invalid
/// sequence is written as the four characters `\xNN` (as Zeek does) so nothing is lost and the
/// output stays valid JSON.
pub fn string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                escape_str(out, s);
                break;
            }
            Err(e) => {
                let good = e.valid_up_to();
                // SAFETY-free: from_utf8 said these bytes are valid.
                if let Ok(s) = std::str::from_utf8(&rest[..good]) {
                    escape_str(out, s);
                }
                let bad = e.error_len().unwrap_or(rest.len() - good);
                for &b in &rest[good..good + bad] {
                    out.extend_from_slice(b"\\\\x");
                    out.push(HEX[(b >> 4) as usize]);
                    out.push(HEX[(b & 15) as usize]);
                }
                rest = &rest[good + bad..];
            }
        }
    }
    out.push(b'"');
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn escape_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => {
                out.extend_from_slice(&b[start..i]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c >> 4) as usize]);
                out.push(HEX[(c & 15) as usize]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&b[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
}

pub fn uint(out: &mut Vec<u8>, v: u64) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(v).as_bytes());
}

/// Writes `"key":` with a leading comma unless it is the first member of the object.
pub struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Obj<'a> {
        out.push(b'{');
        Obj { out, first: true }
    }
    pub fn key(&mut self, k: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }
    pub fn str(&mut self, k: &str, v: &[u8]) {
        string(self.key(k), v);
    }
    pub fn uint(&mut self, k: &str, v: u64) {
        uint(self.key(k), v);
    }
    pub fn raw(&mut self, k: &str, v: &[u8]) {
        self.key(k).extend_from_slice(v);
    }
    /// A nested object; `f` fills it.
    pub fn obj(&mut self, k: &str, f: impl FnOnce(&mut Obj<'_>)) {
        let out = self.key(k);
        let mut o = Obj::new(out);
        f(&mut o);
        o.end();
    }
    pub fn end(self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_and_keep_invalid_bytes_visible() {
        let mut out = Vec::new();
        string(&mut out, b"a\"b\\c\n\x01\xffz\xc3\xa9");
        let s = String::from_utf8(out).expect("utf8");
        assert_eq!(s, r#""a\"b\\c\n\u0001\\xffzé""#);
        let v: serde_json_check::Value = serde_json_check::from_str(&s).expect("valid json");
        assert_eq!(v.as_str(), Some("a\"b\\c\n\u{1}\\xffzé"));
    }

    use serde_json as serde_json_check;
}
