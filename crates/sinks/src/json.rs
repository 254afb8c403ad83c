//! A small JSON writer for hot output paths: no intermediate values, deterministic key
//! order, and a faithful rendering of bytes that are not UTF-8.

/// Appends `bytes` as a JSON string. Valid UTF-8 is kept as is; each byte of an invalid
/// sequence is written as the four characters `\xNN` (as Zeek does) so nothing is lost and the
/// output stays valid JSON.
pub fn string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    // Fast path: the common plain-ASCII run with nothing to escape is copied as is.
    let plain = plain_prefix(bytes);
    out.extend_from_slice(&bytes[..plain]);
    let mut rest = &bytes[plain..];
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                escape_str(out, s);
                break;
            }
            Err(e) => {
                let good = e.valid_up_to();
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

/// Length of the leading run of printable ASCII other than `"` and `\\`, sixteen bytes at a
/// time: the test of a block is written so the compiler makes it one vector compare.
fn plain_prefix(b: &[u8]) -> usize {
    let mut blocks = b.chunks_exact(16);
    let mut i = 0;
    for block in &mut blocks {
        let special = block.iter().fold(false, |any, &c| {
            any | !(0x20..0x7f).contains(&c) | (c == b'"') | (c == b'\\')
        });
        if special {
            break;
        }
        i += 16;
    }
    while i < b.len() && b[i] < 0x80 && !NEEDS_ESCAPE[b[i] as usize] {
        i += 1;
    }
    i
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Bytes that need escaping in a JSON string: quote, backslash, control characters and DEL.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[0x7f] = true;
    t
};

fn escape_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if !NEEDS_ESCAPE[c as usize] {
            continue;
        }
        out.extend_from_slice(&b[start..i]);
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c >> 4) as usize]);
                out.push(HEX[(c & 15) as usize]);
            }
        }
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
    #[inline(always)]
    pub fn new(out: &'a mut Vec<u8>) -> Obj<'a> {
        out.push(b'{');
        Obj { out, first: true }
    }
    // Inlined so that each key, a literal, is copied by a few moves of known length rather than
    // a call to memcpy: a record is some forty keys, and their writing was a fifth of the
    // output stage.
    #[inline(always)]
    pub fn key(&mut self, k: &str) -> &mut Vec<u8> {
        let out = &mut *self.out;
        out.reserve(k.len() + 4);
        if !self.first {
            out.push(b',');
        }
        self.first = false;
        out.push(b'"');
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"\":");
        out
    }
    #[inline(always)]
    pub fn str(&mut self, k: &str, v: &[u8]) {
        string(self.key(k), v);
    }
    #[inline(always)]
    pub fn uint(&mut self, k: &str, v: u64) {
        uint(self.key(k), v);
    }
    /// Appends already-encoded members (`"a":1,"b":2`) as if written one by one.
    pub fn members(&mut self, encoded: &[u8]) {
        if encoded.is_empty() {
            return;
        }
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.extend_from_slice(encoded);
    }
    #[inline(always)]
    pub fn raw(&mut self, k: &str, v: &[u8]) {
        self.key(k).extend_from_slice(v);
    }
    /// A nested object; `f` fills it.
    #[inline(always)]
    pub fn obj(&mut self, k: &str, f: impl FnOnce(&mut Obj<'_>)) {
        let out = self.key(k);
        let mut o = Obj::new(out);
        f(&mut o);
        o.end();
    }
    #[inline(always)]
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

    #[test]
    fn plain_prefix_stops_at_the_first_special_byte_in_any_lane() {
        let base = b"abcdefghijklmnopqrstuvwxyz0123456789".to_vec();
        assert_eq!(plain_prefix(&base), base.len());
        for at in 0..base.len() {
            for special in [b'"', b'\\', 0x00, 0x1f, 0x7f, 0x80, 0xff] {
                let mut v = base.clone();
                v[at] = special;
                assert_eq!(plain_prefix(&v), at, "byte {special:#x} at {at}");
            }
        }
        // Bytes just outside the special ranges are plain.
        assert_eq!(plain_prefix(b" !#[]~~~~ !#[]~"), 15);
    }

    #[test]
    fn plain_prefix_is_the_first_special_byte_at_every_length() {
        for len in 0..50 {
            let plain: Vec<u8> = (0..len).map(|i| b"a~ 0/#["[i % 7]).collect();
            assert_eq!(plain_prefix(&plain), len, "plain, {len} bytes");
            for at in 0..len {
                for special in [b'"', b'\\', 0x00, 0x1f, 0x7f, 0x80, 0xff] {
                    let mut v = plain.clone();
                    v[at] = special;
                    assert_eq!(plain_prefix(&v), at, "{len} bytes, {special:#x} at {at}");
                }
            }
        }
    }

    #[test]
    fn plain_prefix_matches_a_byte_by_byte_scan() {
        let naive = |b: &[u8]| {
            b.iter()
                .position(|&c| c >= 0x80 || NEEDS_ESCAPE[c as usize])
                .unwrap_or(b.len())
        };
        // Every byte value at every place of a short string, in a plain run.
        for len in 1..20 {
            for at in 0..len {
                for byte in 0..=255u8 {
                    let mut v = vec![b'm'; len];
                    v[at] = byte;
                    assert_eq!(plain_prefix(&v), naive(&v), "{byte:#x} at {at} of {len}");
                }
            }
        }
        // Mixes of plain bytes and the bytes either side of the plain range's edges.
        let edges = [
            0x00, 0x01, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x5b, 0x5c, 0x5d, 0x7e, 0x7f, 0x80, 0xfe,
            0xff, b'a',
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..50_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 40) as usize;
            let v: Vec<u8> = (0..len)
                .map(|i| {
                    let pick = (state >> (i % 60)) as usize;
                    // Mostly plain, so that the first special byte lands anywhere.
                    if pick.is_multiple_of(5) {
                        edges[pick / 5 % edges.len()]
                    } else {
                        b'a' + (pick % 26) as u8
                    }
                })
                .collect();
            assert_eq!(plain_prefix(&v), naive(&v), "{v:?}");
        }
    }

    #[test]
    fn strings_round_trip_through_a_json_parser() {
        let cases: [&[u8]; 6] = [
            b"",
            b"plain ascii text longer than eight",
            b"tab\there",
            b"\xe2\x82\xac euro",
            b"\xc3",
            b"quote\" and \\ slash",
        ];
        for c in cases {
            let mut out = Vec::new();
            string(&mut out, c);
            let v: serde_json_check::Value =
                serde_json_check::from_slice(&out).expect("valid json");
            let expected = match std::str::from_utf8(c) {
                Ok(s) => s.to_string(),
                Err(_) => "\\xc3".to_string(),
            };
            assert_eq!(v.as_str(), Some(expected.as_str()));
        }
    }
}
