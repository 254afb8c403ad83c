//! Message heads: finding where a head ends, parsing it (httparse first, a lenient parser
//! for what real peers send that httparse rejects), and reading the framing headers.

use std::mem::MaybeUninit;
use std::ops::Range;

use crate::types::{Anomalies, Coding, Field, Head, HttpAnomaly, Version};

/// Where a head ends, found incrementally. `scanned` lets a search resume where it stopped.
#[derive(Default, Debug)]
pub(crate) struct HeadScan {
    scanned: usize,
    /// Start of the line being scanned (just after the last LF seen).
    line_start: usize,
    /// End of the first line, once seen.
    pub first_line_end: Option<usize>,
    /// The first line carries no `HTTP/` version (a simple, HTTP/0.9-style request line).
    pub simple: bool,
    pub bare_lf: bool,
}

impl HeadScan {
    /// Returns the length of the head (through its terminating empty line) if complete.
    pub fn find_end(&mut self, buf: &[u8]) -> Option<usize> {
        let mut from = self.scanned;
        while let Some(pos) = memchr::memchr(b'\n', &buf[from..]) {
            let nl = from + pos;
            if nl == 0 || buf[nl - 1] != b'\r' {
                self.bare_lf = true;
            }
            if self.first_line_end.is_none() {
                self.first_line_end = Some(nl + 1);
                self.simple = !contains_version(&buf[..nl]);
            }
            // An empty line: "\n\n" or "\n\r\n".
            let line = &buf[self.line_start..nl];
            if (line.is_empty() || line == b"\r") && self.line_start > 0 {
                self.scanned = nl + 1;
                return Some(nl + 1);
            }
            self.line_start = nl + 1;
            from = nl + 1;
        }
        self.scanned = buf.len();
        None
    }
}

/// Whether a start line mentions `HTTP/` (any case). A plain scan: start lines are short and
/// building a substring searcher per line costs more than it saves.
fn contains_version(line: &[u8]) -> bool {
    memchr::memchr2_iter(b'H', b'h', line).any(|p| {
        line.get(p..p + 5)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"HTTP/"))
    })
}

pub(crate) struct RequestHead {
    pub head: Head,
    pub method: Range<u32>,
    pub target: Range<u32>,
    pub version: Version,
}

pub(crate) struct ResponseHead {
    pub head: Head,
    pub version: Version,
    pub status: u16,
    pub reason: Range<u32>,
}

fn range_of(base: &[u8], part: &[u8]) -> Range<u32> {
    let start = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
    if start > base.len() {
        return 0..0;
    }
    start as u32..(start + part.len()) as u32
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r'] = s {
        s = rest;
    }
    s
}

const STACK_HEADERS: usize = 48;

/// What httparse made of a complete, well-formed head in `bytes`: ranges into `bytes` and
/// the head's length.
struct Strict<T> {
    start: T,
    fields: Vec<Field>,
    len: usize,
}

/// Request line parts: method, target, version.
type RequestLine = (Range<u32>, Range<u32>, Version);
/// Status line parts: version, status, reason.
type StatusLine = (Version, u16, Range<u32>);

fn fields_of(bytes: &[u8], headers: &[httparse::Header<'_>]) -> Vec<Field> {
    headers
        .iter()
        .map(|h| Field {
            name: range_of(bytes, h.name.as_bytes()),
            value: range_of(bytes, h.value),
        })
        .collect()
}

fn version_of(v: Option<u8>) -> Version {
    match v {
        Some(0) => Version::Http10,
        _ => Version::Http11,
    }
}

/// httparse on `bytes`; `Ok(None)` = complete head not here yet, `Err` = not a strict head.
fn strict_request(bytes: &[u8], max_headers: usize) -> Result<Option<Strict<RequestLine>>, ()> {
    // Uninitialised slots: zeroing 48 headers per message costs more than parsing most heads.
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, bytes, &mut stack)
    {
        Ok(httparse::Status::Complete(len)) if req.headers.len() <= max_headers => {
            let method = range_of(bytes, req.method.unwrap_or("").as_bytes());
            let target = range_of(bytes, req.path.unwrap_or("").as_bytes());
            Ok(Some(Strict {
                start: (method, target, version_of(req.version)),
                fields: fields_of(bytes, req.headers),
                len,
            }))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        _ => Err(()),
    }
}

fn strict_response(bytes: &[u8], max_headers: usize) -> Result<Option<Strict<StatusLine>>, ()> {
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, bytes, &mut stack)
    {
        Ok(httparse::Status::Complete(len)) if resp.headers.len() <= max_headers => {
            let reason = range_of(bytes, resp.reason.unwrap_or("").as_bytes());
            let start = (version_of(resp.version), resp.code.unwrap_or(0), reason);
            Ok(Some(Strict {
                start,
                fields: fields_of(bytes, resp.headers),
                len,
            }))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        _ => Err(()),
    }
}

/// Whether any line of a strictly parsed head ends in a bare LF, from the ends httparse
/// reported: after each header value (and its trailing blanks) must come CR; so after the
/// start line and before the final LF. O(lines), not O(bytes).
fn strict_bare_lf(bytes: &[u8], fields: &[Field], len: usize) -> bool {
    let lf_after = |mut i: usize| {
        while matches!(bytes.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        bytes.get(i) == Some(&b'\n')
    };
    let first_lf = memchr::memchr(b'\n', &bytes[..len]).unwrap_or(0);
    (first_lf == 0 || bytes[first_lf - 1] != b'\r')
        || fields.iter().any(|f| lf_after(f.value.end as usize))
        || len < 2
        || bytes[len - 2] != b'\r'
}

/// A head parsed in place, before any copy. `Complete` carries the head (copied once) and
/// its length; `Incomplete` asks for more bytes; `Other` hands it to the scanning path
/// (split heads, lenient forms, simple requests).
pub(crate) enum InPlace<T> {
    Complete { head: T, len: usize, bare_lf: bool },
    Incomplete,
    Other,
}

pub(crate) fn request_in_place(data: &[u8], max_headers: usize) -> InPlace<RequestHead> {
    match strict_request(data, max_headers) {
        Ok(Some(s)) => {
            let bare_lf = strict_bare_lf(data, &s.fields, s.len);
            let (method, target, version) = s.start;
            let head = Head {
                raw: data[..s.len].to_vec(),
                fields: s.fields,
            };
            InPlace::Complete {
                head: RequestHead {
                    head,
                    method,
                    target,
                    version,
                },
                len: s.len,
                bare_lf,
            }
        }
        Ok(None) => InPlace::Incomplete,
        Err(()) => InPlace::Other,
    }
}

pub(crate) fn response_in_place(data: &[u8], max_headers: usize) -> InPlace<ResponseHead> {
    match strict_response(data, max_headers) {
        Ok(Some(s)) => {
            let bare_lf = strict_bare_lf(data, &s.fields, s.len);
            let (version, status, reason) = s.start;
            let head = Head {
                raw: data[..s.len].to_vec(),
                fields: s.fields,
            };
            InPlace::Complete {
                head: ResponseHead {
                    head,
                    version,
                    status,
                    reason,
                },
                len: s.len,
                bare_lf,
            }
        }
        Ok(None) => InPlace::Incomplete,
        Err(()) => InPlace::Other,
    }
}

/// Parses a complete request head (taking ownership: the bytes become the head's copy).
/// `None` when the first line is not a request at all.
pub(crate) fn parse_request(
    owned: Vec<u8>,
    max_headers: usize,
    anomalies: &mut Anomalies,
) -> Option<RequestHead> {
    if let Ok(Some(s)) = strict_request(&owned, max_headers) {
        let (method, target, version) = s.start;
        return Some(RequestHead {
            head: Head {
                raw: owned,
                fields: s.fields,
            },
            method,
            target,
            version,
        });
    }
    parse_request_lenient(&owned, max_headers, anomalies)
}

fn parse_request_lenient(
    bytes: &[u8],
    max_headers: usize,
    anomalies: &mut Anomalies,
) -> Option<RequestHead> {
    let line_end = memchr::memchr(b'\n', bytes).unwrap_or(bytes.len());
    let line = trim(&bytes[..line_end]);
    let sp = line.iter().position(|&b| b == b' ' || b == b'\t')?;
    let method = &line[..sp];
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return None;
    }
    let rest = trim(&line[sp..]);
    // The version is the last word when it starts with `HTTP/`; everything between is the
    // target (real clients send unescaped spaces). A malformed version still marks the line
    // as a versioned request.
    let last = rest.iter().rposition(|&b| b == b' ' || b == b'\t');
    let (target, version) = match last {
        Some(p) if trim(&rest[p..]).starts_with(b"HTTP/") => {
            let v = trim(&rest[p..]);
            let version = Version::parse(v).unwrap_or_else(|| {
                anomalies.insert(HttpAnomaly::InvalidStartLine);
                Version::Http11
            });
            (trim(&rest[..p]), version)
        }
        _ if rest.starts_with(b"HTTP/") => {
            (&rest[..0], Version::parse(rest).unwrap_or(Version::Http11))
        }
        _ => {
            // No version: an HTTP/0.9 simple request. It must name a target and a plausible
            // method (three or more token characters, as Zeek requires); else it is not HTTP.
            if rest.is_empty() || method.len() < 3 {
                return None;
            }
            (rest, Version::Http09)
        }
    };
    let mut raw = bytes.to_vec();
    let method = range_of(bytes, method);
    let target = range_of(bytes, target);
    let fields = parse_fields_lenient(bytes, line_end + 1, max_headers, &mut raw, anomalies);
    Some(RequestHead {
        head: Head { raw, fields },
        method,
        target,
        version,
    })
}

/// Parses a complete response head (taking ownership). `None` when it is not a status line.
pub(crate) fn parse_response(
    owned: Vec<u8>,
    max_headers: usize,
    anomalies: &mut Anomalies,
) -> Option<ResponseHead> {
    if let Ok(Some(s)) = strict_response(&owned, max_headers) {
        let (version, status, reason) = s.start;
        return Some(ResponseHead {
            head: Head {
                raw: owned,
                fields: s.fields,
            },
            version,
            status,
            reason,
        });
    }
    parse_response_lenient(&owned, max_headers, anomalies)
}

fn parse_response_lenient(
    bytes: &[u8],
    max_headers: usize,
    anomalies: &mut Anomalies,
) -> Option<ResponseHead> {
    let line_end = memchr::memchr(b'\n', bytes).unwrap_or(bytes.len());
    let line = trim(&bytes[..line_end]);
    let vend = line
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(line.len());
    let version = match Version::parse(&line[..vend]) {
        Some(v) => v,
        None if line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"HTTP/") => {
            anomalies.insert(HttpAnomaly::InvalidStartLine);
            Version::Http11
        }
        None => return None,
    };
    let rest = trim(&line[vend..]);
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let status = if (1..=3).contains(&digits) {
        rest[..digits]
            .iter()
            .fold(0u16, |a, &d| a * 10 + (d - b'0') as u16)
    } else {
        anomalies.insert(HttpAnomaly::InvalidStartLine);
        0
    };
    let reason = range_of(bytes, trim(&rest[digits..]));
    let mut raw = bytes.to_vec();
    let fields = parse_fields_lenient(bytes, line_end + 1, max_headers, &mut raw, anomalies);
    Some(ResponseHead {
        head: Head { raw, fields },
        version,
        status,
        reason,
    })
}

/// Header lines from `start`, tolerating obs-fold (joined into `raw`'s tail), whitespace before
/// the colon and lines without a colon (skipped). Each oddity is an anomaly.
fn parse_fields_lenient(
    bytes: &[u8],
    start: usize,
    max_headers: usize,
    raw: &mut Vec<u8>,
    anomalies: &mut Anomalies,
) -> Vec<Field> {
    let mut fields: Vec<Field> = Vec::new();
    let mut pos = start.min(bytes.len());
    while pos < bytes.len() {
        let end = memchr::memchr(b'\n', &bytes[pos..]).map_or(bytes.len(), |p| pos + p);
        let mut line = &bytes[pos..end];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        let next = end + 1;
        if line.is_empty() {
            break;
        }
        if matches!(line[0], b' ' | b'\t') {
            anomalies.insert(HttpAnomaly::ObsFold);
            if let Some(last) = fields.last_mut() {
                // Join as one value with a single space, in the copy's tail.
                let cont = trim(line);
                let prev = raw[last.value.start as usize..last.value.end as usize].to_vec();
                let new_start = raw.len() as u32;
                raw.extend_from_slice(&prev);
                if !cont.is_empty() {
                    raw.push(b' ');
                    raw.extend_from_slice(cont);
                }
                last.value = new_start..raw.len() as u32;
            }
            pos = next;
            continue;
        }
        match memchr::memchr(b':', line) {
            Some(colon) => {
                let name_raw = &line[..colon];
                let name = trim(name_raw);
                if name.len() != name_raw.len()
                    || name.is_empty()
                    || !name.iter().all(|&b| is_tchar(b))
                {
                    anomalies.insert(HttpAnomaly::InvalidHeader);
                }
                if fields.len() >= max_headers {
                    anomalies.insert(HttpAnomaly::HeaderLimit);
                    break;
                }
                let value = trim(&line[colon + 1..]);
                fields.push(Field {
                    name: range_of(bytes, name),
                    value: range_of(bytes, value),
                });
            }
            None => anomalies.insert(HttpAnomaly::InvalidHeader),
        }
        pos = next;
    }
    fields
}

pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Could these bytes begin a request line? Used to tell requests from other protocols and
/// to find the next message after junk or a gap. `Some(false)` = definitely not,
/// `None` = not enough bytes to tell.
pub(crate) fn looks_like_request_start(b: &[u8]) -> Option<bool> {
    let mut n = 0;
    for &c in b.iter().take(24) {
        if c == b' ' {
            return Some(n > 0 && n <= 20);
        }
        if !is_tchar(c) {
            return Some(false);
        }
        n += 1;
    }
    if n >= 20 {
        Some(false)
    } else {
        None
    }
}

/// A whole request line (CR optional): token, target, `HTTP/1.x`. Used to find the next
/// message in bytes of unknown alignment, where a weaker test would take text for a request.
pub(crate) fn is_request_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(sp) = memchr::memchr(b' ', line) else {
        return false;
    };
    let (method, rest) = (&line[..sp], &line[sp + 1..]);
    !method.is_empty()
        && method.len() <= 20
        && method.iter().all(|&b| is_tchar(b))
        && rest.len() > 9
        && rest[rest.len() - 9..rest.len() - 1].eq_ignore_ascii_case(b" HTTP/1.")
        && rest[rest.len() - 1].is_ascii_digit()
        && !rest.starts_with(b" ")
}

/// A status line: `HTTP/1.x NNN` and an optional reason.
pub(crate) fn is_status_line(line: &[u8]) -> bool {
    line.len() >= 12
        && line[..7].eq_ignore_ascii_case(b"HTTP/1.")
        && line[7].is_ascii_digit()
        && line[8] == b' '
        && line[9..12].iter().all(u8::is_ascii_digit)
        && line.get(12).is_none_or(|&b| matches!(b, b' ' | b'\r'))
}

/// Could these bytes begin a status line?
pub(crate) fn looks_like_response_start(b: &[u8]) -> Option<bool> {
    let n = b.len().min(5);
    if !b[..n].eq_ignore_ascii_case(&b"HTTP/"[..n]) {
        return Some(false);
    }
    if n < 5 {
        None
    } else {
        Some(true)
    }
}

/// Framing and handling facts read from a head.
#[derive(Debug, Default, Clone)]
pub(crate) struct Framing {
    pub content_length: Option<u64>,
    pub content_length_bad: bool,
    pub chunked: bool,
    pub transfer_encoding: bool,
    pub coding: Coding,
    pub close: bool,
    pub keep_alive: bool,
    pub upgrade: bool,
}

pub(crate) fn framing(head: &Head, anomalies: &mut Anomalies) -> Framing {
    let mut f = Framing::default();
    let mut host_seen = false;
    for (name, value) in head.iter() {
        // Dispatch on length first: most headers are none of these and cost one compare.
        let interesting = matches!(name.len(), 4 | 10 | 14 | 16 | 17);
        if !interesting {
            continue;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            for part in value.split(|&b| b == b',') {
                let part = trim(part);
                match parse_decimal(part) {
                    Some(n) => match f.content_length {
                        Some(old) if old == n => {
                            anomalies.insert(HttpAnomaly::DuplicateContentLength)
                        }
                        Some(old) => {
                            anomalies.insert(HttpAnomaly::ConflictingContentLength);
                            // The largest claim, so a body is not cut short and misread as heads.
                            f.content_length = Some(old.max(n));
                        }
                        None => f.content_length = Some(n),
                    },
                    None => {
                        anomalies.insert(HttpAnomaly::BadContentLength);
                        f.content_length_bad = true;
                    }
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            f.transfer_encoding = true;
            let codings: Vec<&[u8]> = value
                .split(|&b| b == b',')
                .map(trim)
                .filter(|c| !c.is_empty())
                .collect();
            if codings.iter().any(|c| c.eq_ignore_ascii_case(b"chunked")) {
                if !codings
                    .last()
                    .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"))
                    || f.chunked
                {
                    anomalies.insert(HttpAnomaly::BadTransferEncoding);
                }
                f.chunked = true;
            } else if !codings.iter().all(|c| c.eq_ignore_ascii_case(b"identity")) {
                anomalies.insert(HttpAnomaly::BadTransferEncoding);
            }
        } else if name.eq_ignore_ascii_case(b"content-encoding") {
            f.coding = coding_of(value);
        } else if name.eq_ignore_ascii_case(b"connection") {
            for tok in value.split(|&b| b == b',').map(trim) {
                if tok.eq_ignore_ascii_case(b"close") {
                    f.close = true;
                } else if tok.eq_ignore_ascii_case(b"keep-alive") {
                    f.keep_alive = true;
                } else if tok.eq_ignore_ascii_case(b"upgrade") {
                    f.upgrade = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            if host_seen {
                anomalies.insert(HttpAnomaly::DuplicateHost);
            }
            host_seen = true;
        }
    }
    if f.chunked && (f.content_length.is_some() || f.content_length_bad) {
        anomalies.insert(HttpAnomaly::TeClConflict);
    }
    f
}

fn coding_of(value: &[u8]) -> Coding {
    // The last coding applied is the first to undo; stacked codings are rare enough that only
    // a single one is decoded.
    let codings: Vec<&[u8]> = value
        .split(|&b| b == b',')
        .map(trim)
        .filter(|c| !c.is_empty())
        .collect();
    match codings.as_slice() {
        [] => Coding::Identity,
        [one] => {
            let c = *one;
            if c.eq_ignore_ascii_case(b"gzip") || c.eq_ignore_ascii_case(b"x-gzip") {
                Coding::Gzip
            } else if c.eq_ignore_ascii_case(b"deflate") {
                Coding::Deflate
            } else if c.eq_ignore_ascii_case(b"br") {
                Coding::Brotli
            } else if c.eq_ignore_ascii_case(b"zstd") {
                Coding::Zstd
            } else if c.eq_ignore_ascii_case(b"identity") {
                Coding::Identity
            } else {
                Coding::Unknown
            }
        }
        _ => Coding::Unknown,
    }
}

/// Largest Content-Length taken at face value: lengths past a signed 64-bit integer are not
/// sent by any real peer and are how smuggling probes try to overflow parsers.
const MAX_CONTENT_LENGTH: u64 = i64::MAX as u64;

/// A decimal length: digits only (leading zeros allowed), no sign, no overflow.
pub(crate) fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 40 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add((b - b'0') as u64)?;
    }
    (n <= MAX_CONTENT_LENGTH).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The tests hand over borrowed literals; the parser takes ownership of a copy.
    fn parse_request(b: &[u8], max: usize, a: &mut Anomalies) -> Option<RequestHead> {
        super::parse_request(b.to_vec(), max, a)
    }
    fn parse_response(b: &[u8], max: usize, a: &mut Anomalies) -> Option<ResponseHead> {
        super::parse_response(b.to_vec(), max, a)
    }

    #[test]
    fn head_end_found_across_calls_and_bare_lf_noticed() {
        let mut s = HeadScan::default();
        assert_eq!(s.find_end(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
        let full = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
        assert_eq!(s.find_end(full), Some(full.len() - 4));
        assert!(!s.bare_lf && !s.simple);
        let mut s = HeadScan::default();
        assert_eq!(s.find_end(b"GET / HTTP/1.1\nHost: a\n\nX"), Some(24));
        assert!(s.bare_lf);
    }

    #[test]
    fn simple_request_line_is_a_whole_head() {
        let mut s = HeadScan::default();
        assert_eq!(s.find_end(b"GET /x\r\nmore"), None);
        assert!(s.simple);
        assert_eq!(s.first_line_end, Some(8));
        let mut a = Anomalies::default();
        let r = parse_request(b"GET /x\r\n", 10, &mut a).expect("request");
        assert_eq!(r.version, Version::Http09);
        assert_eq!(
            &r.head.raw[r.target.start as usize..r.target.end as usize],
            b"/x"
        );
    }

    #[test]
    fn lenient_request_keeps_spaces_in_target_and_joins_obs_fold() {
        let mut a = Anomalies::default();
        let bytes = b"GET /a b.html HTTP/1.1\r\nHost: x\r\nX-Long: one\r\n two\r\nbad line\r\n\r\n";
        let r = parse_request(bytes, 10, &mut a).expect("request");
        assert_eq!(r.head.slice(&r.target), b"/a b.html");
        assert_eq!(r.head.get("x-long"), Some(&b"one two"[..]));
        assert_eq!(r.head.get("host"), Some(&b"x"[..]));
        assert!(a.contains(HttpAnomaly::ObsFold));
        assert!(a.contains(HttpAnomaly::InvalidHeader));
    }

    #[test]
    fn framing_flags_smuggling_signals() {
        let mut a = Anomalies::default();
        let r = parse_request(
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n",
            10,
            &mut a,
        )
        .expect("request");
        let f = framing(&r.head, &mut a);
        assert!(f.chunked);
        assert!(a.contains(HttpAnomaly::ConflictingContentLength));
        assert!(a.contains(HttpAnomaly::TeClConflict));
        let mut a = Anomalies::default();
        let r = parse_request(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 10, &mut a)
            .expect("request");
        let f = framing(&r.head, &mut a);
        assert!(f.content_length.is_none() && f.content_length_bad);
        assert!(a.contains(HttpAnomaly::BadContentLength));
        assert_eq!(parse_decimal(b"00042"), Some(42));
        assert_eq!(parse_decimal(b"18446744073709551616"), None);
        assert_eq!(
            parse_decimal(b"18446744073709551615"),
            None,
            "u64::MAX is a smuggling probe"
        );
    }

    #[test]
    fn header_limit_is_enforced() {
        let mut bytes = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..100 {
            bytes.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        let mut a = Anomalies::default();
        let r = parse_response(&bytes, 20, &mut a).expect("response");
        assert_eq!(r.head.fields.len(), 20);
        assert_eq!(r.status, 200);
        assert!(a.contains(HttpAnomaly::HeaderLimit));
    }

    #[test]
    fn request_line_forms() {
        let parse = |b: &[u8]| {
            let mut a = Anomalies::default();
            parse_request(b, 10, &mut a).map(|r| {
                (
                    String::from_utf8_lossy(r.head.slice(&r.target)).into_owned(),
                    r.version,
                    a,
                )
            })
        };
        let (t, v, _) = parse(b"GET /HTTP/1.1\n").expect("0.9");
        assert_eq!((t.as_str(), v), ("/HTTP/1.1", Version::Http09));
        let (t, v, a) = parse(b"GET / HTTP/1.\nHost: x\n\n").expect("bad version still versioned");
        assert_eq!((t.as_str(), v), ("/", Version::Http11));
        assert!(a.contains(HttpAnomaly::InvalidStartLine));
        let (t, _, _) = parse(b"OPTIONS HTTP/1.1\nHost: x\n\n").expect("empty target");
        assert_eq!(t, "");
        assert!(parse(b"T / HTTP\r\n").is_none(), "not a request");
        assert!(
            parse(b"T /zeek.html\r\n").is_none(),
            "0.9 needs a plausible method"
        );
        assert!(parse(b"CCM_POST /x\r\n").is_some());
        assert!(parse(b"GET \r\n").is_none(), "0.9 needs a target");
    }

    #[test]
    fn whole_line_checks_for_resync() {
        assert!(is_request_line(b"GET /a?b=c HTTP/1.1\r"));
        assert!(is_request_line(b"M-SEARCH * HTTP/1.1"));
        assert!(!is_request_line(b"Hello world, this is text"));
        assert!(!is_request_line(b"GET /x"));
        assert!(!is_request_line(b"GET  HTTP/1.1"));
        assert!(is_status_line(b"HTTP/1.1 200 OK\r"));
        assert!(is_status_line(b"HTTP/1.0 404"));
        assert!(!is_status_line(b"HTTP/1.1 is a protocol"));
        assert!(!is_status_line(b"HTTP/2 200"));
    }

    #[test]
    fn start_line_recognition() {
        assert_eq!(looks_like_request_start(b"GET /"), Some(true));
        assert_eq!(looks_like_request_start(b"\x16\x03\x01"), Some(false));
        assert_eq!(
            looks_like_request_start(b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3"),
            Some(false)
        );
        assert_eq!(looks_like_request_start(b"GE"), None);
        assert_eq!(looks_like_response_start(b"HTTP/1.1 200"), Some(true));
        assert_eq!(looks_like_response_start(b"HTT"), None);
        assert_eq!(looks_like_response_start(b"SSH-2.0"), Some(false));
    }

    mod agree {
        use super::*;
        use proptest::prelude::*;

        fn line_end(crlf: bool) -> &'static [u8] {
            if crlf {
                b"\r\n"
            } else {
                b"\n"
            }
        }

        proptest! {
            /// Whatever the line endings and blanks, a head parsed in place equals the same
            /// head found by scanning and then parsed, bare-LF flag included.
            #[test]
            fn in_place_and_scanned_heads_agree(
                response in any::<bool>(),
                ends in proptest::collection::vec(any::<bool>(), 2..12),
                values in proptest::collection::vec("[a-zA-Z0-9 /.=;-]{0,12}", 0..10),
                trailing in proptest::collection::vec(0usize..3, 0..10),
                tail in proptest::collection::vec(any::<u8>(), 0..20),
            ) {
                let mut data = if response { b"HTTP/1.1 200 OK".to_vec() } else { b"GET /x?y=1 HTTP/1.1".to_vec() };
                data.extend_from_slice(line_end(ends[0]));
                for (i, v) in values.iter().enumerate() {
                    data.extend_from_slice(format!("X-H{i}: {v}").as_bytes());
                    data.extend(std::iter::repeat_n(b' ', trailing.get(i).copied().unwrap_or(0)));
                    data.extend_from_slice(line_end(ends[(i + 1) % ends.len()]));
                }
                data.extend_from_slice(line_end(ends[ends.len() - 1]));
                let head_len = data.len();
                data.extend_from_slice(&tail);

                let mut scan = HeadScan::default();
                let end = scan.find_end(&data).expect("a complete head");
                prop_assert_eq!(end, head_len);
                let mut a = Anomalies::default();
                if response {
                    let scanned = super::super::parse_response(data[..end].to_vec(), 64, &mut a).expect("parses");
                    match response_in_place(&data, 64) {
                        InPlace::Complete { head, len, bare_lf } => {
                            prop_assert_eq!(len, end);
                            prop_assert_eq!(bare_lf, scan.bare_lf);
                            prop_assert_eq!(head.head, scanned.head);
                            prop_assert_eq!(head.status, scanned.status);
                        }
                        _ => prop_assert!(false, "not parsed in place"),
                    }
                } else {
                    let scanned = super::super::parse_request(data[..end].to_vec(), 64, &mut a).expect("parses");
                    match request_in_place(&data, 64) {
                        InPlace::Complete { head, len, bare_lf } => {
                            prop_assert_eq!(len, end);
                            prop_assert_eq!(bare_lf, scan.bare_lf);
                            prop_assert_eq!(head.head, scanned.head);
                            prop_assert_eq!(head.target, scanned.target);
                        }
                        _ => prop_assert!(false, "not parsed in place"),
                    }
                }
            }
        }
    }
}
