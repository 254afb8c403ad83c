//! The parameters of a request as name/value pairs: the query, a form body, and the leaves of a
//! JSON body (named by their path, `body.user.name`, array indices dropped). Values are kept raw
//! (as sent, for the injection scanners, which decode themselves) and percent-decoded (for the
//! value models). Bounded: at most [`MAX_PARAMS`] parameters and [`MAX_VALUE`] bytes a value.

pub const MAX_PARAMS: usize = 64;
pub const MAX_VALUE: usize = 4096;
/// JSON bodies larger than this are not walked.
const MAX_JSON: usize = 64 * 1024;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Param {
    pub name: String,
    pub raw: Vec<u8>,
    pub decoded: Vec<u8>,
    /// The decoded value's character distribution, worked out once for scoring and learning.
    pub icd: std::cell::OnceCell<[f64; 6]>,
}

/// Reused between requests so extraction allocates only when it grows.
#[derive(Debug, Default)]
pub struct Params {
    pub list: Vec<Param>,
    used: usize,
}

impl Params {
    pub fn clear(&mut self) {
        self.used = 0;
    }

    pub fn as_slice(&self) -> &[Param] {
        &self.list[..self.used]
    }

    fn push(&mut self, name: &str, raw: &[u8], decode: bool) {
        if self.used >= MAX_PARAMS {
            return;
        }
        if self.list.len() == self.used {
            self.list.push(Param::default());
        }
        let p = &mut self.list[self.used];
        self.used += 1;
        p.name.clear();
        p.name.push_str(name);
        let raw = &raw[..raw.len().min(MAX_VALUE)];
        p.raw.clear();
        p.raw.extend_from_slice(raw);
        p.decoded.clear();
        p.icd.take();
        if decode {
            percent_decode(raw, &mut p.decoded);
        } else {
            p.decoded.extend_from_slice(raw);
        }
    }

    /// `a=1&b=2` pairs; names are percent-decoded (lossy UTF-8) and prefixed.
    pub fn add_urlencoded(&mut self, prefix: &str, input: &[u8]) {
        let mut name_buf = Vec::new();
        for pair in input.split(|&b| b == b'&') {
            if pair.is_empty() {
                continue;
            }
            let (name, value) = match memchr::memchr(b'=', pair) {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            name_buf.clear();
            percent_decode(&name[..name.len().min(256)], &mut name_buf);
            let name = String::from_utf8_lossy(&name_buf);
            let full = if prefix.is_empty() {
                name.into_owned()
            } else {
                format!("{prefix}{name}")
            };
            self.push(&full, value, true);
        }
    }

    /// The leaves of a JSON document (strings unquoted, numbers and booleans as text).
    pub fn add_json(&mut self, body: &[u8]) -> bool {
        if body.len() > MAX_JSON {
            return false;
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
            return false;
        };
        let mut path = String::from("body");
        self.walk(&v, &mut path, 0);
        true
    }

    fn walk(&mut self, v: &serde_json::Value, path: &mut String, depth: u32) {
        use serde_json::Value;
        if depth > 16 || self.used >= MAX_PARAMS {
            return;
        }
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    let len = path.len();
                    path.push('.');
                    path.push_str(&k[..k.len().min(64)]);
                    self.walk(child, path, depth + 1);
                    path.truncate(len);
                }
            }
            Value::Array(items) => {
                for child in items.iter().take(8) {
                    self.walk(child, path, depth + 1);
                }
            }
            Value::String(s) => {
                let name = path.clone();
                self.push(&name, s.as_bytes(), false);
            }
            Value::Number(n) => {
                let name = path.clone();
                self.push(&name, n.to_string().as_bytes(), false);
            }
            Value::Bool(b) => {
                let name = path.clone();
                self.push(&name, if *b { b"true" } else { b"false" }, false);
            }
            Value::Null => {}
        }
    }
}

/// `%XX` and `+` decoded; malformed escapes kept as they are.
pub fn percent_decode(input: &[u8], out: &mut Vec<u8>) {
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'%' if i + 2 < input.len() => match (hex(input[i + 1]), hex(input[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_form_and_json_parameters() {
        let mut p = Params::default();
        p.add_urlencoded("", b"id=2%2F&nombre=Jam%F3n+Ib%E9rico&flag&=x");
        p.add_json(br#"{"user":{"name":"ann","tags":["a","b"]},"n":3,"ok":true,"z":null}"#);
        let got: Vec<(&str, &[u8])> = p
            .as_slice()
            .iter()
            .map(|x| (x.name.as_str(), x.decoded.as_slice()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("id", &b"2/"[..]),
                ("nombre", &b"Jam\xf3n Ib\xe9rico"[..]),
                ("flag", &b""[..]),
                ("", &b"x"[..]),
                ("body.n", &b"3"[..]),
                ("body.ok", &b"true"[..]),
                ("body.user.name", &b"ann"[..]),
                ("body.user.tags", &b"a"[..]),
                ("body.user.tags", &b"b"[..]),
            ]
        );
        assert_eq!(p.as_slice()[0].raw, b"2%2F");
        p.clear();
        assert!(p.as_slice().is_empty());
    }

    #[test]
    fn malformed_escapes_and_bounds() {
        let mut out = Vec::new();
        percent_decode(b"%zz%4", &mut out);
        assert_eq!(out, b"%zz%4");
        let mut p = Params::default();
        let many: Vec<u8> = (0..200)
            .flat_map(|i| format!("p{i}=1&").into_bytes())
            .collect();
        p.add_urlencoded("", &many);
        assert_eq!(p.as_slice().len(), MAX_PARAMS);
        assert!(!p.add_json(b"{not json"));
    }
}
