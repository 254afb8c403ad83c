//! Sensitive values found by what they are, wherever they appear, and redacted by value.
//!
//! [`scan`] makes one linear pass that anchors on cheap triggers (the start of a word, `+`, `(`,
//! `-----BEGIN `, `@`, and `=`/`:` after a key) and allocates nothing when it finds nothing. It
//! finds: e-mail addresses; phone numbers (E.164 with `+`, North-American formatted); payment
//! cards (Luhn, issuer prefix and issuer length); IBANs (registry length, mod-97); US SSNs
//! (dashed) and UK NINOs; JWS-compact JWTs whose header decodes with `"alg"`; PEM private key
//! blocks, raw or JSON-escaped; AWS key ids, Google API keys, GitHub, Slack and Stripe live
//! tokens; and secrets named by their key (`password=…`, `"client_secret": "…"`,
//! [`scan_field`]). Findings never overlap; at most [`MAX_FINDINGS`] per [`scan`].
//!
//! Not found: digit runs without `+` or North-American punctuation as phones; national ids other
//! than SSN and NINO; JWE tokens; AWS secret keys not named as such; test-mode Stripe keys;
//! tokens or API keys known only by their key name (`token`, `api_key`: the `auth` module's
//! job); masked values (`****`, `true`, `null`) under secret names; `key: value` lines (YAML,
//! headers pasted in text) unless the key is a quoted JSON key.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use memchr::memmem;

/// Findings appended by one [`scan`] or [`scan_field`] at most; the rest of the input is skipped.
pub const MAX_FINDINGS: usize = 64;

/// A `-----END` further than this from its `-----BEGIN` belongs to another block.
const MAX_PEM_BODY: usize = 64 * 1024;
/// Longest e-mail local part (RFC 5321).
const MAX_LOCAL_LEN: usize = 64;
/// Longest e-mail domain (RFC 1035).
const MAX_DOMAIN_LEN: usize = 253;
/// Longer keys are not field names a person chose.
const MAX_KEY_LEN: usize = 64;
/// Longest quoted form value looked for; past it the quote is not the value's.
const MAX_QUOTED_FORM_VALUE: usize = 1024;
/// JWT header characters decoded at most; `"alg"` comes first in practice.
const MAX_JWT_HEADER: usize = 2048;

const JWT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// What a sensitive value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Kind {
    Email,
    Phone,
    PaymentCard,
    Iban,
    NationalId,
    Jwt,
    PrivateKey,
    CloudKey,
    Password,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Email,
        Kind::Phone,
        Kind::PaymentCard,
        Kind::Iban,
        Kind::NationalId,
        Kind::Jwt,
        Kind::PrivateKey,
        Kind::CloudKey,
        Kind::Password,
    ];

    /// Stable snake_case name used in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::PaymentCard => "payment_card",
            Kind::Iban => "iban",
            Kind::NationalId => "national_id",
            Kind::Jwt => "jwt",
            Kind::PrivateKey => "private_key",
            Kind::CloudKey => "cloud_key",
            Kind::Password => "password",
        }
    }

    pub const fn bit(self) -> u16 {
        1 << self as u8
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of kinds, one bit each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct KindSet(u16);

impl KindSet {
    pub const EMPTY: KindSet = KindSet(0);

    /// Adds `kind`; true when it was not there yet.
    pub fn insert(&mut self, kind: Kind) -> bool {
        let added = !self.contains(kind);
        self.0 |= kind.bit();
        added
    }

    pub fn contains(self, kind: Kind) -> bool {
        self.0 & kind.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn union(self, other: KindSet) -> KindSet {
        KindSet(self.0 | other.0)
    }

    /// Members in [`Kind::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Kind> {
        Kind::ALL
            .into_iter()
            .filter(move |kind| self.contains(*kind))
    }

    /// One bit per kind, bit `kind as u8`.
    pub fn bits(self) -> u16 {
        self.0
    }
}

impl FromIterator<Kind> for KindSet {
    fn from_iter<I: IntoIterator<Item = Kind>>(iter: I) -> Self {
        let mut set = KindSet::EMPTY;
        set.extend(iter);
        set
    }
}

impl Extend<Kind> for KindSet {
    fn extend<I: IntoIterator<Item = Kind>>(&mut self, iter: I) {
        for kind in iter {
            self.insert(kind);
        }
    }
}

/// One sensitive value: its kind and its byte range in the scanned input.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Finding {
    pub kind: Kind,
    pub range: Range<usize>,
}

impl Finding {
    /// The value's bytes in `input` (empty when `input` is not the scanned one).
    pub fn value<'a>(&self, input: &'a [u8]) -> &'a [u8] {
        input.get(self.range.clone()).unwrap_or_default()
    }
}

/// Scans free text, a body or a parameter value; appends at most [`MAX_FINDINGS`] findings,
/// non-overlapping and in input order.
pub fn scan(input: &[u8], out: &mut Vec<Finding>) {
    Scanner::new(input).run(out, MAX_FINDINGS);
}

/// [`scan`] without the bound on findings, for redaction, which must not stop halfway. Still
/// linear in the input.
pub fn scan_all(input: &[u8], out: &mut Vec<Finding>) {
    Scanner::new(input).run(out, usize::MAX);
}

/// A named field (query, form or JSON key, header, cookie) and its value; ranges are in `value`.
///
/// When the name says the field holds a secret (`password`, `passwd`, `pwd`, `pass`, `pin`,
/// `passphrase`, `passcode`, `secret`, `private_key`, with any prefix or suffix word such as
/// `new_password`, `userPassword`, `x-client-secret`) and the value is neither empty nor a mask
/// (`****`, `true`, `null`), the whole value is one finding: a [`Kind::CloudKey`] for a 40
/// character AWS secret under an AWS secret name, the JWT, private key or cloud key kind when the
/// value is exactly one such token, else [`Kind::Password`]. Names that only describe a secret
/// (`password_policy`, `has_password`, `secret_name`) do not count. Any other field has its value
/// scanned as by [`scan`].
pub fn scan_field(name: &[u8], value: &[u8], out: &mut Vec<Finding>) {
    let class = secret_name(name);
    if class != SecretName::No && !is_placeholder(value) {
        out.push(Finding {
            kind: named_value_kind(class, value),
            range: 0..value.len(),
        });
        return;
    }
    scan(value, out);
}

/// Kinds found in `input`.
pub fn kinds(input: &[u8]) -> KindSet {
    let mut findings = Vec::new();
    scan(input, &mut findings);
    findings.iter().map(|f| f.kind).collect()
}

/// Replaces each finding's bytes with `[REDACTED:<kind>]`. Findings should come from scanning
/// `input`; out-of-bounds ones are ignored and overlapping or unordered ones are still covered.
pub fn redact_with(input: &[u8], findings: &[Finding]) -> Vec<u8> {
    let mut sorted;
    let findings = if findings.is_sorted_by_key(|f| f.range.start) {
        findings
    } else {
        sorted = findings.to_vec();
        sorted.sort_by_key(|f| f.range.start);
        &sorted
    };
    let mut out = Vec::with_capacity(input.len() + 16 * findings.len());
    let mut copied = 0;
    for finding in findings {
        let Range { start, end } = finding.range;
        if end > input.len() || end <= copied || start >= end {
            continue;
        }
        out.extend_from_slice(&input[copied..start.max(copied)]);
        out.extend_from_slice(b"[REDACTED:");
        out.extend_from_slice(finding.kind.as_str().as_bytes());
        out.push(b']');
        copied = end;
    }
    out.extend_from_slice(&input[copied..]);
    out
}

/// Scans (without the findings bound) and redacts; borrows when nothing is found.
pub fn redact(input: &str) -> Cow<'_, str> {
    let mut findings = Vec::new();
    scan_all(input.as_bytes(), &mut findings);
    if findings.is_empty() {
        return Cow::Borrowed(input);
    }
    let redacted = redact_with(input.as_bytes(), &findings);
    // Every range edge sits next to an ASCII byte, so this is always valid UTF-8.
    match String::from_utf8(redacted) {
        Ok(text) => Cow::Owned(text),
        Err(err) => Cow::Owned(String::from_utf8_lossy(err.as_bytes()).into_owned()),
    }
}

// ---------------------------------------------------------------------------------------------
// Byte classes

const WORD: u8 = 1;
const B64URL: u8 = 2;
const LOCAL: u8 = 4;
const DOMAIN: u8 = 8;
const FORM_KEY: u8 = 16;
const JSON_KEY: u8 = 32;
/// Lowercase letters and the space: prose, which holds no token (see [`Scanner::run`]).
const PLAIN: u8 = 64;

static CLASSES: [u8; 256] = build_classes();

const fn build_classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let alnum = b.is_ascii_alphanumeric();
        let mut class = 0;
        if alnum || b == b'_' {
            class |= WORD | B64URL | LOCAL | FORM_KEY;
        }
        if b == b'-' {
            class |= B64URL | LOCAL | DOMAIN | FORM_KEY;
        }
        if alnum || b == b'.' {
            class |= DOMAIN;
        }
        if matches!(b, b'.' | b'+') {
            class |= LOCAL;
        }
        if matches!(b, b'.' | b'[' | b']' | b'%') {
            class |= FORM_KEY;
        }
        if matches!(b, 0x20..=0x7e) && !matches!(b, b'"' | b'\\' | b':' | b'{' | b'}' | b',') {
            class |= JSON_KEY;
        }
        if b.is_ascii_lowercase() || b == b' ' {
            class |= PLAIN;
        }
        table[i] = class;
        i += 1;
    }
    table
}

fn has(b: u8, class: u8) -> bool {
    CLASSES[b as usize] & class != 0
}

fn is_word(b: u8) -> bool {
    has(b, WORD)
}

fn is_escape_letter(b: u8) -> bool {
    matches!(b, b'n' | b'r' | b't')
}

/// No word character right before `i`; a JSON escape such as `\n` counts as a separator.
fn boundary_before(s: &[u8], i: usize) -> bool {
    i == 0 || !is_word(s[i - 1]) || (i >= 2 && s[i - 2] == b'\\' && is_escape_letter(s[i - 1]))
}

fn word_after(s: &[u8], end: usize) -> bool {
    s.get(end).is_some_and(|&b| is_word(b))
}

/// A number starts at `i`: not inside a word, nor after `1.` or `1-` (decimals, dashed ids).
fn digit_token_start(s: &[u8], i: usize) -> bool {
    boundary_before(s, i)
        && !(i >= 2 && matches!(s[i - 1], b'.' | b'-') && s[i - 2].is_ascii_digit())
}

/// A number ends at `end`: no word character nor `.1`/`-1` follows.
fn digit_token_end(s: &[u8], end: usize) -> bool {
    match s.get(end) {
        None => true,
        Some(&b) if is_word(b) => false,
        Some(&b) => !(matches!(b, b'.' | b'-') && s.get(end + 1).is_some_and(u8::is_ascii_digit)),
    }
}

fn digit_run(s: &[u8], i: usize) -> usize {
    s.get(i..)
        .map_or(0, |t| t.iter().take_while(|b| b.is_ascii_digit()).count())
}

fn class_run(s: &[u8], i: usize, class: u8) -> usize {
    s.get(i..)
        .map_or(0, |t| t.iter().take_while(|&&b| has(b, class)).count())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memmem::find(haystack, needle).is_some()
}

fn longer(a: Option<(Kind, usize)>, b: Option<(Kind, usize)>) -> Option<(Kind, usize)> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y.1 > x.1 { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

// ---------------------------------------------------------------------------------------------
// The pass

struct Scanner<'a> {
    s: &'a [u8],
    /// Pass over words of prose whole (off only to test that it changes nothing).
    skip_prose: bool,
    at_sign: Option<AtSign>,
    /// No `@` at or after this offset.
    no_at_sign_from: usize,
    pem_end: NextMatch,
    /// End of the bytes taken whole so far (findings, skipped named values): a local part may
    /// start there, inside a word, but not before.
    taken: usize,
}

/// The next `@` (or `%40`) ahead of the cursor and where its local part starts.
struct AtSign {
    pos: usize,
    len: usize,
    local_start: Option<usize>,
    /// The `taken` offset `local_start` was worked out from.
    floor: usize,
    tried: bool,
}

/// The next occurrence of a needle, searched again only once the cursor passes it, so all
/// searches together read the input once.
#[derive(Default)]
struct NextMatch {
    searched_from: Option<usize>,
    hit: Option<usize>,
}

impl NextMatch {
    fn at_or_after(&mut self, haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
        if self.searched_from.is_some_and(|searched| searched <= from) {
            match self.hit {
                None => return None,
                Some(hit) if hit >= from => return Some(hit),
                Some(_) => {}
            }
        }
        self.searched_from = Some(from);
        self.hit = haystack
            .get(from..)
            .and_then(|tail| memmem::find(tail, needle))
            .map(|offset| from + offset);
        self.hit
    }
}

enum Named {
    NotSecret,
    /// A secret name with an empty or masked value: resume after the value.
    Skip(usize),
    Found(Kind, Range<usize>),
}

impl<'a> Scanner<'a> {
    fn new(s: &'a [u8]) -> Self {
        Scanner {
            s,
            skip_prose: true,
            at_sign: None,
            no_at_sign_from: usize::MAX,
            pem_end: NextMatch::default(),
            taken: 0,
        }
    }

    fn run(&mut self, out: &mut Vec<Finding>, limit: usize) {
        let s = self.s;
        let n = s.len();
        let stop = out.len().saturating_add(limit);
        let mut i = 0;
        while i < n && out.len() < stop {
            let b = s[i];
            // Prose (lowercase words and spaces) holds no token: every pattern that may start
            // with a lowercase letter needs another byte within its word (`eyJ`, `ghp_`,
            // `xoxb-`, `sk_live_`, an e-mail's `@`), and no token holds a space. So the words
            // of a run that end at a space inside it are passed over whole; its last word (it
            // may go on) is looked at as usual.
            if self.skip_prose && has(b, PLAIN) && boundary_before(s, i) {
                let run = class_run(s, i, PLAIN);
                if let Some(space) = memchr::memrchr(b' ', &s[i..i + run]) {
                    if space > 0 {
                        i += space + 1;
                        continue;
                    }
                }
            }
            let found = if is_word(b) {
                let email_start = self.email_start(i);
                let mut best = self.match_at(i);
                if email_start == Some(i) {
                    best = longer(best, self.email_at(i).map(|end| (Kind::Email, end)));
                }
                if best.is_none() {
                    // Nothing starts inside a word, except an e-mail after a finding ate its head.
                    let mut next = i + 1 + class_run(s, i + 1, WORD);
                    if let Some(start) = email_start.filter(|&start| start > i) {
                        next = next.min(start);
                    }
                    i = next;
                    continue;
                }
                best.map(|(kind, end)| (kind, i..end))
            } else {
                match b {
                    // A JSON escape (`\n`, `\"`, `\\`) is a separator, never a trigger; before
                    // other letters (`C:\Users`) the backslash alone is the separator.
                    b'\\' => {
                        let escape = s
                            .get(i + 1)
                            .is_none_or(|&c| !c.is_ascii_alphanumeric() || is_escape_letter(c));
                        i += if escape { 2 } else { 1 };
                        continue;
                    }
                    b'=' | b':' => match self.named_at(i) {
                        Named::NotSecret => None,
                        Named::Skip(resume) => {
                            i = resume.max(i + 1);
                            self.taken = i;
                            continue;
                        }
                        Named::Found(kind, range) => Some((kind, range)),
                    },
                    b'+' | b'(' | b'-' => self.match_at(i).map(|(kind, end)| (kind, i..end)),
                    _ => None,
                }
            };
            match found {
                Some((kind, range)) => {
                    i = range.end.max(i + 1);
                    self.taken = i;
                    out.push(Finding { kind, range });
                }
                None => i += 1,
            }
        }
    }

    /// The longest token (not e-mail, not named) starting at `i`.
    fn match_at(&mut self, i: usize) -> Option<(Kind, usize)> {
        let s = self.s;
        let tag = |kind: Kind| move |end: usize| (kind, end);
        match s[i] {
            b'0'..=b'9' => longer(
                longer(
                    card_at(s, i).map(tag(Kind::PaymentCard)),
                    ssn_at(s, i).map(tag(Kind::NationalId)),
                ),
                nanp_at(s, i).map(tag(Kind::Phone)),
            ),
            b'A'..=b'Z' => iban_at(s, i)
                .map(tag(Kind::Iban))
                .or_else(|| nino_at(s, i).map(tag(Kind::NationalId)))
                .or_else(|| aws_key_id_at(s, i).map(tag(Kind::CloudKey)))
                .or_else(|| google_key_at(s, i).map(tag(Kind::CloudKey))),
            b'e' => jwt_at(s, i).map(tag(Kind::Jwt)),
            b'g' => github_token_at(s, i).map(tag(Kind::CloudKey)),
            b'x' => slack_token_at(s, i).map(tag(Kind::CloudKey)),
            b's' | b'r' => stripe_key_at(s, i).map(tag(Kind::CloudKey)),
            b'+' => e164_at(s, i).map(tag(Kind::Phone)),
            b'(' => nanp_parenthesized_at(s, i).map(tag(Kind::Phone)),
            b'-' => self.private_key_at(i).map(tag(Kind::PrivateKey)),
            _ => None,
        }
    }

    /// Where the local part of the next `@` starts, when it starts at or after `i` and was not
    /// tried yet. Each `@` is located once and its local part expanded once, plus once more per
    /// finding that swallowed its head.
    fn email_start(&mut self, i: usize) -> Option<usize> {
        if i >= self.no_at_sign_from {
            return None;
        }
        if self.at_sign.as_ref().is_none_or(|at| at.pos < i) {
            match find_at_sign(self.s, i) {
                Some((pos, len)) => {
                    self.at_sign = Some(AtSign {
                        pos,
                        len,
                        local_start: email_local_start(self.s, pos, self.taken),
                        floor: self.taken,
                        tried: false,
                    });
                }
                None => {
                    self.at_sign = None;
                    self.no_at_sign_from = i;
                    return None;
                }
            }
        }
        let s = self.s;
        let at = self.at_sign.as_mut()?;
        if at.tried {
            return None;
        }
        // The floor is what was taken, not where the scan stands, so the answer does not
        // depend on which words the scan looked at (prose passed over or not).
        if at.floor != self.taken {
            at.local_start = email_local_start(s, at.pos, self.taken);
            at.floor = self.taken;
        }
        let start = at.local_start?;
        if start >= i {
            return Some(start);
        }
        at.local_start = email_local_start(s, at.pos, i);
        at.local_start
    }

    fn email_at(&mut self, local_start: usize) -> Option<usize> {
        let at = self.at_sign.as_mut()?;
        at.tried = true;
        email_end(self.s, local_start, at.pos, at.len)
    }

    fn private_key_at(&mut self, i: usize) -> Option<usize> {
        let s = self.s;
        if !s[i..].starts_with(b"-----BEGIN ") {
            return None;
        }
        let label_start = i + b"-----BEGIN ".len();
        let window = &s[label_start..s.len().min(label_start + 64)];
        let label = &window[..memmem::find(window, b"-----")?];
        let is_private = label.ends_with(b"PRIVATE KEY") || label.ends_with(b"PRIVATE KEY BLOCK");
        if !is_private
            || !label
                .iter()
                .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ')
        {
            return None;
        }
        let body_start = label_start + label.len() + 5;
        let end_marker = self
            .pem_end
            .at_or_after(s, b"-----END ", body_start)
            .filter(|&at| at - body_start <= MAX_PEM_BODY);
        let Some(end_marker) = end_marker else {
            return Some(pem_body_end(s, body_start));
        };
        let after = end_marker + b"-----END ".len();
        let tail = &s[after..s.len().min(after + 64)];
        Some(match memmem::find(tail, b"-----") {
            Some(offset) => after + offset + 5,
            None => {
                after
                    + tail
                        .iter()
                        .take_while(|&&b| b.is_ascii_uppercase() || b == b' ')
                        .count()
            }
        })
    }

    /// `key=value` (form, query, cookie) or `"key": "value"` (JSON, also JSON inside a JSON
    /// string) with `s[i]` the `=` or `:`, when the key names a secret.
    fn named_at(&mut self, i: usize) -> Named {
        let s = self.s;
        let parsed = if s[i] == b'=' {
            named_form_value(s, i)
        } else {
            named_json_value(s, i)
        };
        let Some((class, value, resume)) = parsed else {
            return Named::NotSecret;
        };
        let bytes = &s[value.clone()];
        if is_placeholder(bytes) {
            return Named::Skip(resume);
        }
        Named::Found(named_value_kind(class, bytes), value)
    }
}

// ---------------------------------------------------------------------------------------------
// E-mail

fn find_at_sign(s: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut p = from;
    while p < s.len() {
        let hit = p + memchr::memchr2(b'@', b'%', &s[p..])?;
        if s[hit] == b'@' {
            return Some((hit, 1));
        }
        if s.get(hit + 1..hit + 3) == Some(b"40") {
            return Some((hit, 3));
        }
        p = hit + 1;
    }
    None
}

/// Start of the local part before the `@` at `at`, not before `floor`.
fn email_local_start(s: &[u8], at: usize, floor: usize) -> Option<usize> {
    // The local part goes on before `j`: a local-part byte that is not the letter of a JSON
    // escape (`\nuser@…` starts at `u`).
    let goes_on = |j: usize| {
        has(s[j - 1], LOCAL) && !(j >= 2 && s[j - 2] == b'\\' && is_escape_letter(s[j - 1]))
    };
    let low = floor.max(at.saturating_sub(MAX_LOCAL_LEN));
    let mut j = at;
    while j > low && goes_on(j) {
        j -= 1;
    }
    // Longer than a local part may be, by the same rule that ends one (so the answer does not
    // depend on where the scan started from).
    if j == low && low > floor && goes_on(low) {
        return None;
    }
    // `%3Djohn%40…`: the two hex digits belong to the escape before the address.
    if j > 0 && s[j - 1] == b'%' && j + 2 < at && s[j..j + 2].iter().all(u8::is_ascii_hexdigit) {
        j += 2;
    }
    while j < at && !is_word(s[j]) {
        j += 1;
    }
    (j < at).then_some(j)
}

/// End of the address whose local part is `s[local_start..at]`, when it is one.
fn email_end(s: &[u8], local_start: usize, at: usize, at_len: usize) -> Option<usize> {
    let local = &s[local_start..at];
    if local.is_empty() || local.len() > MAX_LOCAL_LEN || local.ends_with(b".") {
        return None;
    }
    if contains(local, b"..") {
        return None;
    }
    let domain_start = at + at_len;
    let run = class_run(s, domain_start, DOMAIN);
    if run > MAX_DOMAIN_LEN + 1 {
        return None;
    }
    let mut end = domain_start + run;
    while end > domain_start && matches!(s[end - 1], b'.' | b'-') {
        end -= 1;
    }
    if matches!(s.get(end), Some(b'_' | b'@')) {
        return None;
    }
    let domain = &s[domain_start..end];
    let mut labels = 0;
    let mut first: &[u8] = &[];
    let mut last: &[u8] = &[];
    for label in domain.split(|&b| b == b'.') {
        if label.is_empty()
            || label.len() > 63
            || label[0] == b'-'
            || label[label.len() - 1] == b'-'
        {
            return None;
        }
        if labels == 0 {
            first = label;
        }
        last = label;
        labels += 1;
    }
    let is_tld = last.len() >= 2 && last.iter().all(u8::is_ascii_alphabetic);
    // `icon@2x.png` is an asset name.
    let is_asset = matches!(first, [b'1'..=b'9', b'x' | b'X'])
        || FILE_EXTENSIONS
            .iter()
            .any(|ext| last.eq_ignore_ascii_case(ext));
    (labels >= 2 && is_tld && !is_asset).then_some(end)
}

const FILE_EXTENSIONS: [&[u8]; 14] = [
    b"png", b"jpg", b"jpeg", b"gif", b"svg", b"webp", b"ico", b"js", b"css", b"map", b"json",
    b"xml", b"html", b"txt",
];

// ---------------------------------------------------------------------------------------------
// Phones

/// `+` then 8 to 15 digits; single spaces, dashes, dots or parentheses (two at most in a row)
/// between digits. A last group of one digit is a separate number (`+1 415 555 2671 2`).
fn e164_at(s: &[u8], i: usize) -> Option<usize> {
    if !boundary_before(s, i) || (i > 0 && s[i - 1] == b'+') {
        return None;
    }
    if !matches!(s.get(i + 1), Some(b'1'..=b'9')) {
        return None;
    }
    let mut j = i + 1;
    let mut digits = 0;
    let mut last_group;
    let mut previous_group_end = None;
    loop {
        last_group = digit_run(s, j);
        digits += last_group;
        j += last_group;
        if digits > 15 {
            return None;
        }
        let separators = s[j..]
            .iter()
            .take(3)
            .take_while(|b| matches!(b, b' ' | b'-' | b'.' | b'(' | b')'))
            .count();
        if separators == 0
            || separators > 2
            || !s.get(j + separators).is_some_and(u8::is_ascii_digit)
        {
            break;
        }
        previous_group_end = Some(j);
        j += separators;
    }
    let mut end = j;
    if let (1, Some(previous)) = (last_group, previous_group_end) {
        digits -= 1;
        end = previous;
    }
    (digits >= 8 && !word_after(s, end)).then_some(end)
}

/// `555-123-4567`, `555.123.4567`, optionally after `1-`/`1.`; area code 2–9.
fn nanp_at(s: &[u8], i: usize) -> Option<usize> {
    if !digit_token_start(s, i) {
        return None;
    }
    let mut j = i;
    let mut leading_separator = None;
    if s[i] == b'1' && matches!(s.get(i + 1), Some(b'-' | b'.')) && digit_run(s, i + 2) == 3 {
        leading_separator = Some(s[i + 1]);
        j = i + 2;
    }
    if digit_run(s, j) != 3 || !(b'2'..=b'9').contains(&s[j]) {
        return None;
    }
    let separator = *s.get(j + 3)?;
    if !matches!(separator, b'-' | b'.') || leading_separator.is_some_and(|l| l != separator) {
        return None;
    }
    if digit_run(s, j + 4) != 3 || s.get(j + 7) != Some(&separator) || digit_run(s, j + 8) != 4 {
        return None;
    }
    let end = j + 12;
    digit_token_end(s, end).then_some(end)
}

/// `(555) 123-4567`, `(555)123.4567`; area code 2–9.
fn nanp_parenthesized_at(s: &[u8], i: usize) -> Option<usize> {
    if !boundary_before(s, i) || digit_run(s, i + 1) != 3 || s.get(i + 4) != Some(&b')') {
        return None;
    }
    if !(b'2'..=b'9').contains(&s[i + 1]) {
        return None;
    }
    let mut j = i + 5;
    if s.get(j) == Some(&b' ') {
        j += 1;
    }
    if digit_run(s, j) != 3 || !matches!(s.get(j + 3), Some(b'-' | b'.')) {
        return None;
    }
    if digit_run(s, j + 4) != 4 {
        return None;
    }
    let end = j + 8;
    digit_token_end(s, end).then_some(end)
}

// ---------------------------------------------------------------------------------------------
// Payment cards

/// 13–19 digits, ungrouped or in groups of 4 (the last shorter) or Amex/Diners 4-6-5/4-6-4,
/// separated by single spaces or dashes.
fn card_at(s: &[u8], i: usize) -> Option<usize> {
    if !digit_token_start(s, i) {
        return None;
    }
    let first = digit_run(s, i);
    if first >= 13 {
        let end = i + first;
        return (first <= 19 && digit_token_end(s, end) && is_card_number(&s[i..end]))
            .then_some(end);
    }
    if first != 4 {
        return None;
    }
    let separator = *s.get(i + 4)?;
    if !matches!(separator, b' ' | b'-') {
        return None;
    }
    let mut digits = [0u8; 19];
    digits[..4].copy_from_slice(&s[i..i + 4]);
    let mut groups = [4usize; 6];
    let mut ends = [i + 4; 6];
    let mut count = 1;
    let mut total = 4;
    let mut j = i + 4;
    while count < groups.len() && s.get(j) == Some(&separator) {
        let len = digit_run(s, j + 1);
        if len == 0 || len > 6 || total + len > digits.len() {
            break;
        }
        digits[total..total + len].copy_from_slice(&s[j + 1..j + 1 + len]);
        total += len;
        j += 1 + len;
        groups[count] = len;
        ends[count] = j;
        count += 1;
    }
    // Longest grouping first: a card number may be followed by other numbers after a space.
    let mut len = total;
    for k in (3..=count).rev() {
        let end = ends[k - 1];
        if card_grouping(&groups[..k]) && digit_token_end(s, end) && is_card_number(&digits[..len])
        {
            return Some(end);
        }
        len -= groups[k - 1];
    }
    None
}

fn card_grouping(groups: &[usize]) -> bool {
    let Some((&last, head)) = groups.split_last() else {
        return false;
    };
    matches!(groups, [4, 6, 5] | [4, 6, 4])
        || (head.iter().all(|&g| g == 4) && (1..=4).contains(&last))
}

fn is_card_number(digits: &[u8]) -> bool {
    (13..=19).contains(&digits.len())
        && digits.iter().all(u8::is_ascii_digit)
        && card_issuer_accepts(digits)
        && luhn_valid(digits)
}

fn card_issuer_accepts(digits: &[u8]) -> bool {
    let prefix = |n: usize| {
        digits[..n]
            .iter()
            .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'))
    };
    let len = digits.len();
    let (p2, p3, p4) = (prefix(2), prefix(3), prefix(4));
    let long = (16..=19).contains(&len);
    match digits[0] {
        b'4' => matches!(len, 13 | 16 | 19),
        b'5' => (51..=55).contains(&p2) && len == 16,
        b'2' => (2221..=2720).contains(&p4) && len == 16,
        b'3' => {
            ((p2 == 34 || p2 == 37) && len == 15)
                || ((3528..=3589).contains(&p4) && long)
                || (((300..=305).contains(&p3) || p2 == 36 || p2 == 38) && (14..=19).contains(&len))
        }
        b'6' => (p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 || p2 == 62) && long,
        _ => false,
    }
}

fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(k, &d)| {
            let d = u32::from(d - b'0');
            if k % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

// ---------------------------------------------------------------------------------------------
// IBAN

/// Country, check digits, then the registry's length of uppercase alphanumerics, compact or in
/// space-separated groups of four; mod-97 must be 1.
fn iban_at(s: &[u8], i: usize) -> Option<usize> {
    if !boundary_before(s, i) {
        return None;
    }
    let head = s.get(i..i + 4)?;
    if !(head[0].is_ascii_uppercase()
        && head[1].is_ascii_uppercase()
        && head[2].is_ascii_digit()
        && head[3].is_ascii_digit())
    {
        return None;
    }
    let len = usize::from(iban_length([head[0], head[1]])?);
    let mut iban = [0u8; 34];
    iban[..4].copy_from_slice(head);
    let spaced = s.get(i + 4) == Some(&b' ');
    let mut j = i + 4;
    let mut count = 4;
    while count < len {
        if spaced && count % 4 == 0 {
            if s.get(j) != Some(&b' ') {
                return None;
            }
            j += 1;
        }
        let c = *s.get(j)?;
        if !is_upper_alnum(c) {
            return None;
        }
        iban[count] = c;
        count += 1;
        j += 1;
    }
    (!word_after(s, j) && iban_mod97(&iban[..len]) == 1).then_some(j)
}

fn iban_mod97(iban: &[u8]) -> u32 {
    let (head, tail) = iban.split_at(4);
    tail.iter().chain(head).fold(0u32, |rem, &c| {
        if c.is_ascii_digit() {
            (rem * 10 + u32::from(c - b'0')) % 97
        } else {
            (rem * 100 + u32::from(c - b'A') + 10) % 97
        }
    })
}

/// IBAN length by country (SWIFT IBAN registry); `None` for countries without IBANs.
fn iban_length(country: [u8; 2]) -> Option<u8> {
    Some(match &country {
        b"NO" => 15,
        b"BE" => 16,
        b"DK" | b"FI" | b"FK" | b"FO" | b"GL" | b"NL" | b"SD" => 18,
        b"MK" | b"SI" => 19,
        b"AT" | b"BA" | b"EE" | b"KZ" | b"LT" | b"LU" | b"MN" | b"XK" => 20,
        b"CH" | b"HR" | b"LI" | b"LV" => 21,
        b"BG" | b"BH" | b"CR" | b"DE" | b"GB" | b"GE" | b"IE" | b"ME" | b"RS" | b"VA" => 22,
        b"AE" | b"GI" | b"IL" | b"IQ" | b"OM" | b"SO" | b"TL" => 23,
        b"AD" | b"CZ" | b"ES" | b"MD" | b"PK" | b"RO" | b"SA" | b"SE" | b"SK" | b"TN" | b"VG" => 24,
        b"LY" | b"PT" | b"ST" => 25,
        b"IS" | b"TR" => 26,
        b"BI" | b"DJ" | b"FR" | b"GR" | b"IT" | b"MC" | b"MR" | b"SM" => 27,
        b"AL" | b"AZ" | b"BY" | b"CY" | b"DO" | b"GT" | b"HU" | b"LB" | b"NI" | b"PL" | b"SV" => 28,
        b"BR" | b"EG" | b"PS" | b"QA" | b"UA" => 29,
        b"JO" | b"KW" | b"MU" | b"YE" => 30,
        b"MT" | b"SC" => 31,
        b"LC" => 32,
        b"RU" => 33,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// National ids

/// US SSN `AAA-GG-SSSS`: area not 000, 666 or 9xx, group not 00, serial not 0000.
fn ssn_at(s: &[u8], i: usize) -> Option<usize> {
    if !digit_token_start(s, i) {
        return None;
    }
    let t = s.get(i..i + 11)?;
    let shape = t.iter().enumerate().all(|(k, &b)| {
        if k == 3 || k == 6 {
            b == b'-'
        } else {
            b.is_ascii_digit()
        }
    });
    if !shape || !digit_token_end(s, i + 11) {
        return None;
    }
    let area = &t[0..3];
    let valid = area != b"000"
        && area != b"666"
        && area[0] != b'9'
        && &t[4..6] != b"00"
        && &t[7..11] != b"0000";
    valid.then_some(i + 11)
}

/// UK National Insurance number: two prefix letters (official exclusions), six digits (pairs
/// may be spaced), suffix A–D.
fn nino_at(s: &[u8], i: usize) -> Option<usize> {
    if !boundary_before(s, i) {
        return None;
    }
    let (a, b) = (*s.get(i)?, *s.get(i + 1)?);
    if !a.is_ascii_uppercase() || !b.is_ascii_uppercase() {
        return None;
    }
    if b"DFIQUV".contains(&a) || b"DFIOQUV".contains(&b) {
        return None;
    }
    if matches!(
        &[a, b],
        b"BG" | b"GB" | b"KN" | b"NK" | b"NT" | b"TN" | b"ZZ"
    ) {
        return None;
    }
    let mut j = i + 2;
    for _ in 0..3 {
        if s.get(j) == Some(&b' ') {
            j += 1;
        }
        if digit_run(s, j) < 2 {
            return None;
        }
        j += 2;
    }
    if s.get(j) == Some(&b' ') {
        j += 1;
    }
    if !matches!(s.get(j), Some(b'A'..=b'D')) || word_after(s, j + 1) {
        return None;
    }
    Some(j + 1)
}

// ---------------------------------------------------------------------------------------------
// Tokens

/// `eyJ` header `.` payload `.` signature (may be empty), base64url with optional padding; the
/// header decodes to a JSON object with `"alg"`.
fn jwt_at(s: &[u8], i: usize) -> Option<usize> {
    if !s[i..].starts_with(b"eyJ")
        || !boundary_before(s, i)
        || (i > 0 && matches!(s[i - 1], b'-' | b'.'))
    {
        return None;
    }
    let header_end = i + class_run(s, i, B64URL);
    let mut j = skip_padding(s, header_end);
    if s.get(j) != Some(&b'.') {
        return None;
    }
    let payload_len = class_run(s, j + 1, B64URL);
    if payload_len == 0 {
        return None;
    }
    j = skip_padding(s, j + 1 + payload_len);
    if s.get(j) != Some(&b'.') {
        return None;
    }
    let signature_end = j + 1 + class_run(s, j + 1, B64URL);
    let end = skip_padding(s, signature_end);
    jwt_header_has_alg(&s[i..header_end]).then_some(end)
}

fn skip_padding(s: &[u8], j: usize) -> usize {
    j + s
        .get(j..)
        .map_or(0, |t| t.iter().take(2).take_while(|&&b| b == b'=').count())
}

fn jwt_header_has_alg(header: &[u8]) -> bool {
    let mut decoded = [0u8; MAX_JWT_HEADER / 4 * 3];
    let whole = header.len() <= MAX_JWT_HEADER;
    let encoded = &header[..header.len().min(MAX_JWT_HEADER)];
    let Ok(len) = JWT_BASE64.decode_slice(encoded, &mut decoded) else {
        return false;
    };
    let json = decoded[..len].trim_ascii();
    json.first() == Some(&b'{')
        && (!whole || json.last() == Some(&b'}'))
        && contains(json, b"\"alg\"")
}

/// After a header: the rest of the block when its `-----END` is missing (a truncated capture).
fn pem_body_end(s: &[u8], mut j: usize) -> usize {
    while j < s.len() {
        let b = s[j];
        if b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'+' | b'/' | b'=' | b' ' | b'\t' | b'\r' | b'\n' | b':' | b',' | b'-'
            )
        {
            j += 1;
        } else if b == b'\\' && matches!(s.get(j + 1), Some(b'n' | b'r' | b't' | b'/')) {
            j += 2;
        } else {
            break;
        }
    }
    j.min(s.len())
}

const AWS_KEY_ID_PREFIXES: [&[u8]; 8] = [
    b"AKIA", b"ASIA", b"AGPA", b"AIDA", b"AROA", b"ANPA", b"ANVA", b"AIPA",
];

/// A prefix, then exactly `body_len` bytes of `body`, then no word character.
fn fixed_token(
    s: &[u8],
    i: usize,
    prefix_len: usize,
    body_len: usize,
    body: fn(u8) -> bool,
) -> Option<usize> {
    let end = i + prefix_len + body_len;
    let ok = s.get(i + prefix_len..end)?.iter().all(|&b| body(b)) && !word_after(s, end);
    ok.then_some(end)
}

fn is_upper_alnum(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

fn aws_key_id_at(s: &[u8], i: usize) -> Option<usize> {
    if !boundary_before(s, i) || !AWS_KEY_ID_PREFIXES.iter().any(|p| s[i..].starts_with(p)) {
        return None;
    }
    fixed_token(s, i, 4, 16, is_upper_alnum)
}

fn google_key_at(s: &[u8], i: usize) -> Option<usize> {
    if !boundary_before(s, i) || !s[i..].starts_with(b"AIza") {
        return None;
    }
    fixed_token(s, i, 4, 35, |b| has(b, B64URL)).filter(|&end| s.get(end) != Some(&b'-'))
}

fn github_token_at(s: &[u8], i: usize) -> Option<usize> {
    if !boundary_before(s, i) {
        return None;
    }
    let t = &s[i..];
    if t.starts_with(b"github_pat_") {
        return fixed_token(s, i, 11, 82, is_word);
    }
    if t.len() >= 4 && t.starts_with(b"gh") && b"pousr".contains(&t[2]) && t[3] == b'_' {
        return fixed_token(s, i, 4, 36, |b| b.is_ascii_alphanumeric());
    }
    None
}

fn slack_token_at(s: &[u8], i: usize) -> Option<usize> {
    let t = &s[i..];
    if !boundary_before(s, i)
        || t.len() < 5
        || !t.starts_with(b"xox")
        || !b"baprs".contains(&t[3])
        || t[4] != b'-'
    {
        return None;
    }
    let body = t[5..]
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'-')
        .count();
    let end = i + 5 + body;
    (body >= 10 && !word_after(s, end)).then_some(end)
}

fn stripe_key_at(s: &[u8], i: usize) -> Option<usize> {
    let t = &s[i..];
    if !boundary_before(s, i) || !(t.starts_with(b"sk_live_") || t.starts_with(b"rk_live_")) {
        return None;
    }
    let body = t[8..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    let end = i + 8 + body;
    (body >= 24 && !word_after(s, end)).then_some(end)
}

// ---------------------------------------------------------------------------------------------
// Secrets by name

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SecretName {
    No,
    Secret,
    /// An AWS secret access key's name (`aws_secret_access_key`, `secretAccessKey`).
    AwsSecretKey,
}

/// Words that hold a secret wherever they appear in a name, also glued (`newpassword`).
const SECRET_STEMS: [&[u8]; 6] = [
    b"password",
    b"passwd",
    b"passphrase",
    b"passcode",
    b"passwort",
    b"privatekey",
];
/// Words too common to match inside other words; a secret only as the last word of a name.
const SECRET_SHORT_WORDS: [&[u8]; 4] = [b"pass", b"pwd", b"pw", b"pin"];
/// May follow a short secret word (`pin_code`).
const SHORT_WORD_SUFFIXES: [&[u8]; 3] = [b"code", b"number", b"no"];
/// After a secret word, these make the name describe the secret rather than hold it.
const DESCRIBING_WORDS: [&[u8]; 62] = [
    b"policy",
    b"policies",
    b"expires",
    b"expiry",
    b"expiration",
    b"expired",
    b"expire",
    b"changed",
    b"updated",
    b"created",
    b"modified",
    b"last",
    b"set",
    b"at",
    b"on",
    b"date",
    b"time",
    b"timestamp",
    b"length",
    b"len",
    b"min",
    b"max",
    b"minimum",
    b"maximum",
    b"required",
    b"requirement",
    b"requirements",
    b"strength",
    b"rule",
    b"rules",
    b"hint",
    b"enabled",
    b"disabled",
    b"type",
    b"field",
    b"label",
    b"name",
    b"id",
    b"ids",
    b"count",
    b"attempts",
    b"age",
    b"version",
    b"arn",
    b"status",
    b"mode",
    b"format",
    b"pattern",
    b"regex",
    b"complexity",
    b"url",
    b"uri",
    b"path",
    b"file",
    b"question",
    b"prompt",
    b"placeholder",
    b"error",
    b"message",
    b"exists",
    b"is",
    b"has",
];
/// First words that make the name a flag about a secret (`has_password`, `is_secret`).
const FLAG_WORDS: [&[u8]; 17] = [
    b"has",
    b"is",
    b"show",
    b"hide",
    b"require",
    b"requires",
    b"need",
    b"needs",
    b"enable",
    b"use",
    b"uses",
    b"can",
    b"should",
    b"must",
    b"allow",
    b"forgot",
    b"remember",
];

fn is_one_of(word: &[u8], list: &[&[u8]]) -> bool {
    list.contains(&word)
}

/// Every secret word (`pass…`, `pw…`, `pin`, `secret`, `…key`) holds one of these pairs of
/// letters: most names hold none and are turned away before they are split into words.
fn may_name_secret(name: &[u8]) -> bool {
    name.windows(2).any(|w| {
        matches!(
            (w[0].to_ascii_lowercase(), w[1].to_ascii_lowercase()),
            (b'p', b'a' | b'w' | b'i') | (b's', b'e') | (b'k', b'e')
        )
    })
}

/// Whether a field name says its value is a secret. Words split at non-alphanumerics and
/// camelCase humps, compared in lowercase.
fn secret_name(name: &[u8]) -> SecretName {
    const MAX_WORDS: usize = 12;
    if name.is_empty() || name.len() > MAX_KEY_LEN || !may_name_secret(name) {
        return SecretName::No;
    }
    let mut lower = [0u8; MAX_KEY_LEN];
    for (to, from) in lower.iter_mut().zip(name) {
        *to = from.to_ascii_lowercase();
    }
    let mut words: [&[u8]; MAX_WORDS] = [&[]; MAX_WORDS];
    let mut count = 0;
    let mut start = None;
    for j in 0..=name.len() {
        let b = name.get(j).copied().unwrap_or(b' ');
        let alnum = b.is_ascii_alphanumeric();
        let hump = alnum
            && j > 0
            && b.is_ascii_uppercase()
            && (name[j - 1].is_ascii_lowercase()
                || (name[j - 1].is_ascii_uppercase()
                    && name.get(j + 1).is_some_and(u8::is_ascii_lowercase)));
        if let Some(word_start) = start {
            if !alnum || hump {
                if count < MAX_WORDS {
                    words[count] = &lower[word_start..j];
                    count += 1;
                }
                start = None;
            }
        }
        if alnum && start.is_none() {
            start = Some(j);
        }
    }
    let words = &words[..count];
    let mut secret_at = None;
    for (k, &word) in words.iter().enumerate() {
        let stem = SECRET_STEMS.iter().any(|stem| contains(word, stem)) && !word.ends_with(b"less");
        let secret = contains(word, b"secret") && !contains(word, b"secretar");
        let private_key = word == b"key" && k > 0 && words[k - 1] == b"private";
        let short = is_one_of(word, &SECRET_SHORT_WORDS)
            && words
                .get(k + 1)
                .is_none_or(|next| is_one_of(next, &SHORT_WORD_SUFFIXES));
        if stem || secret || private_key || short || word.ends_with(b"pwd") {
            secret_at = Some(k);
        }
    }
    let Some(at) = secret_at else {
        return SecretName::No;
    };
    if words[at + 1..]
        .iter()
        .any(|w| is_one_of(w, &DESCRIBING_WORDS))
        || (at > 0 && is_one_of(words[0], &FLAG_WORDS))
    {
        return SecretName::No;
    }
    let aws = words.contains(&&b"aws"[..])
        || (words.iter().any(|w| contains(w, b"secret")) && words.contains(&&b"access"[..]));
    if aws {
        SecretName::AwsSecretKey
    } else {
        SecretName::Secret
    }
}

/// A value standing for no secret: empty, a mask, a JSON literal, an earlier redaction.
fn is_placeholder(value: &[u8]) -> bool {
    let t = value.trim_ascii();
    const BULLET: &[u8] = "•".as_bytes();
    t.is_empty()
        || t.iter().all(|&b| b == b'*')
        || (t.len() % BULLET.len() == 0 && t.chunks(BULLET.len()).all(|c| c == BULLET))
        || [
            &b"true"[..],
            b"false",
            b"null",
            b"none",
            b"undefined",
            b"[filtered]",
            b"[redacted]",
        ]
        .iter()
        .any(|literal| t.eq_ignore_ascii_case(literal))
        || t.starts_with(b"[REDACTED:")
}

fn named_value_kind(class: SecretName, value: &[u8]) -> Kind {
    let aws_secret = value.len() == 40
        && value
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    if class == SecretName::AwsSecretKey && aws_secret {
        return Kind::CloudKey;
    }
    whole_secret_token(value).unwrap_or(Kind::Password)
}

/// The kind of a JWT, private key or cloud key that is the whole value (trailing whitespace and
/// escaped newlines aside).
fn whole_secret_token(value: &[u8]) -> Option<Kind> {
    let mut core = value.trim_ascii_end();
    while core.len() >= 2 && core[core.len() - 2] == b'\\' && is_escape_letter(core[core.len() - 1])
    {
        core = core[..core.len() - 2].trim_ascii_end();
    }
    if core.is_empty() {
        return None;
    }
    let (kind, end) = Scanner::new(core).match_at(0)?;
    (end == core.len() && matches!(kind, Kind::Jwt | Kind::PrivateKey | Kind::CloudKey))
        .then_some(kind)
}

fn is_form_value_end(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b'&' | b';' | b',' | b'"' | b'\'' | b'<' | b'>' | b'\\' | b')' | b']' | b'}'
        )
}

/// `key=value`, the key a secret name: its class, the value's range, where to resume.
fn named_form_value(s: &[u8], i: usize) -> Option<(SecretName, Range<usize>, usize)> {
    let mut k = i;
    while k > 0 && i - k <= MAX_KEY_LEN && has(s[k - 1], FORM_KEY) {
        k -= 1;
    }
    if k > 0 && s[k - 1] == b'\\' && k < i && is_escape_letter(s[k]) {
        k += 1;
    }
    if k == i || i - k > MAX_KEY_LEN {
        return None;
    }
    let class = secret_name(&s[k..i]);
    if class == SecretName::No {
        return None;
    }
    let start = i + 1;
    if let Some(&quote @ (b'"' | b'\'')) = s.get(start) {
        let window = &s[start + 1..s.len().min(start + 1 + MAX_QUOTED_FORM_VALUE)];
        if let Some(len) = memchr::memchr(quote, window) {
            let value = start + 1..start + 1 + len;
            let resume = value.end + 1;
            return Some((class, value, resume));
        }
    }
    let len = s[start..]
        .iter()
        .take_while(|&&b| !is_form_value_end(b))
        .count();
    Some((class, start..start + len, start + len))
}

/// `"key": value` (or `\"key\":\"value\"` inside a JSON string), the key a secret name and the
/// value a string or a number: its class, the value's range (inside the quotes), where to resume.
fn named_json_value(s: &[u8], i: usize) -> Option<(SecretName, Range<usize>, usize)> {
    let mut q = i;
    while q > 0 && i - q < 8 && matches!(s[q - 1], b' ' | b'\t') {
        q -= 1;
    }
    if q == 0 || s[q - 1] != b'"' {
        return None;
    }
    let escaped = q >= 2 && s[q - 2] == b'\\';
    let key_end = if escaped { q - 2 } else { q - 1 };
    let mut k = key_end;
    while k > 0 && key_end - k <= MAX_KEY_LEN && has(s[k - 1], JSON_KEY) {
        k -= 1;
    }
    if k == 0 || s[k - 1] != b'"' || (escaped && (k < 2 || s[k - 2] != b'\\')) {
        return None;
    }
    let class = secret_name(&s[k..key_end]);
    if class == SecretName::No {
        return None;
    }
    let mut v = i + 1;
    while v < s.len() && v - i <= 8 && s[v].is_ascii_whitespace() {
        v += 1;
    }
    let quote_len = if escaped { 2 } else { 1 };
    let opens = if escaped {
        s.get(v..v + 2) == Some(b"\\\"")
    } else {
        s.get(v) == Some(&b'"')
    };
    if opens {
        let start = v + quote_len;
        let end = if escaped {
            escaped_string_end(s, start)
        } else {
            json_string_end(s, start)
        };
        return Some((class, start..end, (end + quote_len).min(s.len())));
    }
    let number = s.get(v).is_some_and(u8::is_ascii_digit)
        || (s.get(v) == Some(&b'-') && s.get(v + 1).is_some_and(u8::is_ascii_digit));
    if number {
        let len = s[v..]
            .iter()
            .take_while(|&&b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
            .count();
        return Some((class, v..v + len, v + len));
    }
    None
}

/// The closing quote of a JSON string whose content starts at `start` (end of input if none).
fn json_string_end(s: &[u8], start: usize) -> usize {
    let mut j = start;
    while j < s.len() {
        match memchr::memchr2(b'"', b'\\', &s[j..]) {
            None => return s.len(),
            Some(offset) if s[j + offset] == b'\\' => j += offset + 2,
            Some(offset) => return j + offset,
        }
    }
    s.len()
}

/// The `\"` closing a string inside a JSON string (a `\\\"` inside it is an escaped quote).
fn escaped_string_end(s: &[u8], start: usize) -> usize {
    let mut j = start;
    while let Some(offset) = s.get(j..).and_then(|t| memchr::memchr(b'"', t)) {
        let quote = j + offset;
        if quote > start && s[quote - 1] == b'\\' && (quote < start + 2 || s[quote - 2] != b'\\') {
            return quote - 1;
        }
        j = quote + 1;
    }
    s.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use proptest::prelude::*;

    fn findings(input: &str) -> Vec<(Kind, String)> {
        let mut out = Vec::new();
        scan(input.as_bytes(), &mut out);
        out.iter()
            .map(|f| (f.kind, input[f.range.clone()].to_string()))
            .collect()
    }

    fn scanned(input: &[u8], skip_prose: bool) -> Vec<(Kind, Range<usize>)> {
        let mut out = Vec::new();
        let mut scanner = Scanner::new(input);
        scanner.skip_prose = skip_prose;
        scanner.run(&mut out, usize::MAX);
        out.into_iter().map(|f| (f.kind, f.range)).collect()
    }

    const PROSE_AND_TOKENS: &[&str] = &[
        "alpha ",
        "beta ",
        "gamma",
        " ",
        "  ",
        "e",
        "ey",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
        "sk",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "ghp_",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "xox",
        "xoxb-1234-5678-abcdefgh",
        "jane.doe",
        "@",
        "example.com",
        "user@example.org",
        "4111 1111 1111 1111",
        "4111111111111111",
        "+44 20 7946 0958",
        "(555) 123-4567",
        "GB82 WEST 1234 5698 7654 32",
        "AKIAIOSFODNN7EXAMPLE",
        "password",
        "=",
        ":",
        "\"",
        "\\n",
        "hunter2",
        "123-45-6789",
        "-----BEGIN PRIVATE KEY-----",
        "_",
        ".",
        ",",
        "%40",
    ];

    #[test]
    fn a_local_part_of_the_longest_length_after_an_escape_is_found_from_anywhere() {
        // 64 bytes between the `\n` escape and the `@`: the longest local part there is. A scan
        // from the start once took the escape's `n` for a 65th byte (seen in CI).
        let local = "ghp_eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnhunter2jane.doeuser";
        assert_eq!(local.len(), 64);
        let text = format!("alpha \\n{local}@example.orgpassword");
        let email = vec![(Kind::Email, 8..92)];
        assert_eq!(scanned(text.as_bytes(), true), email);
        assert_eq!(scanned(text.as_bytes(), false), email);
        // One byte more is no local part, whichever way the scan came.
        let longer = format!("alpha \\nx{local}@example.org");
        assert_eq!(scanned(longer.as_bytes(), true), vec![]);
        assert_eq!(scanned(longer.as_bytes(), false), vec![]);
    }

    #[test]
    fn an_address_whose_head_a_finding_took_is_found_whichever_words_were_looked_at() {
        // Too long a local part from the start of its word, a short one after the key that
        // takes the word's head; the word-by-word scan once looked at the address from the
        // start of the text and never again.
        let text = "alpha -----BEGIN PRIVATE KEY-----gammaxoxb-1234-5678-abcdefgh\
                    eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnuser@example.org+44 20 7946 0958";
        let found = scanned(text.as_bytes(), false);
        assert_eq!(found, scanned(text.as_bytes(), true));
        let kinds: Vec<Kind> = found.iter().map(|(kind, _)| *kind).collect();
        assert_eq!(kinds, [Kind::PrivateKey, Kind::Email]);
        assert!(text[found[1].1.clone()].ends_with("user@example.org"));
    }

    proptest! {
        #[test]
        fn passing_over_prose_finds_what_looking_at_every_word_finds(
            parts in proptest::collection::vec(0..PROSE_AND_TOKENS.len(), 0..40)
        ) {
            let text: String = parts.iter().map(|&i| PROSE_AND_TOKENS[i]).collect();
            prop_assert_eq!(
                scanned(text.as_bytes(), true),
                scanned(text.as_bytes(), false),
                "{:?}",
                text
            );
        }
    }

    fn only(input: &str) -> (Kind, String) {
        let found = findings(input);
        assert_eq!(found.len(), 1, "{input:?} gave {found:?}");
        found.into_iter().next().unwrap()
    }

    fn assert_finds(kind: Kind, value: &str, input: &str) {
        assert_eq!(only(input), (kind, value.to_string()), "in {input:?}");
    }

    fn assert_clean(input: &str) {
        assert_eq!(findings(input), vec![], "in {input:?}");
    }

    fn field(name: &str, value: &str) -> Vec<(Kind, String)> {
        let mut out = Vec::new();
        scan_field(name.as_bytes(), value.as_bytes(), &mut out);
        out.iter()
            .map(|f| (f.kind, value[f.range.clone()].to_string()))
            .collect()
    }

    fn jwt(header: &str, payload: &str, signature: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    fn hs256_jwt() -> String {
        jwt(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            r#"{"sub":"1234567890","name":"Jane Roe","iat":1516239022}"#,
            &[0x5a; 32],
        )
    }

    const RSA_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----\n\
        MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n\
        VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n\
        -----END RSA PRIVATE KEY-----";

    #[test]
    fn kind_names_are_stable_and_distinct() {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "email",
                "phone",
                "payment_card",
                "iban",
                "national_id",
                "jwt",
                "private_key",
                "cloud_key",
                "password"
            ]
        );
        for (index, kind) in Kind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, index);
            assert_eq!(kind.to_string(), kind.as_str());
        }
    }

    #[test]
    fn kind_set_behaves_like_a_set() {
        let mut set = KindSet::default();
        assert!(set.is_empty());
        assert!(set.insert(Kind::Jwt));
        assert!(!set.insert(Kind::Jwt));
        assert!(set.insert(Kind::Email));
        assert!(set.contains(Kind::Jwt) && set.contains(Kind::Email));
        assert!(!set.contains(Kind::Password));
        assert_eq!(set.len(), 2);
        assert_eq!(set.iter().collect::<Vec<_>>(), [Kind::Email, Kind::Jwt]);
        let other: KindSet = [Kind::Password, Kind::Email].into_iter().collect();
        let union = set.union(other);
        assert_eq!(
            union.iter().collect::<Vec<_>>(),
            [Kind::Email, Kind::Jwt, Kind::Password]
        );
        assert_eq!(union.bits(), 0b1_0010_0001);
    }

    #[test]
    fn finds_emails() {
        assert_finds(
            Kind::Email,
            "john.doe+tag@example.co.uk",
            "mail john.doe+tag@example.co.uk now",
        );
        assert_finds(
            Kind::Email,
            "jane_roe@mail.example.org",
            r#"{"email":"jane_roe@mail.example.org"}"#,
        );
        assert_finds(Kind::Email, "a@b.io", "<a@b.io>.");
        assert_finds(
            Kind::Email,
            "john%40example.com",
            "?email=john%40example.com&x=1",
        );
        assert_finds(
            Kind::Email,
            "john@example.com",
            r#""text":"hi\njohn@example.com""#,
        );
        assert_finds(Kind::Email, "bob@example.com", "mailto:bob@example.com");
        assert_finds(
            Kind::Email,
            "jane@example.com",
            "GET /users/jane@example.com/profile",
        );
    }

    #[test]
    fn ignores_email_lookalikes() {
        for input in [
            "icon@2x.png",
            "logo@3x.webp",
            "lodash@4.17.21",
            "npm i @scope/pkg@latest",
            "root@localhost",
            "user@host.c",
            "user@192.168.0.1",
            "@handle",
            "a@@b.com",
            "x..y@example.com",
            "image@sha256:abcdef",
        ] {
            assert_clean(input);
        }
    }

    #[test]
    fn finds_phones() {
        assert_finds(
            Kind::Phone,
            "+1 (415) 555-2671",
            "call +1 (415) 555-2671 today",
        );
        assert_finds(Kind::Phone, "+447911123456", r#"{"phone":"+447911123456"}"#);
        assert_finds(Kind::Phone, "+44 20 7946 0958", "tel: +44 20 7946 0958");
        assert_finds(Kind::Phone, "+49-30-901820", "+49-30-901820");
        assert_finds(Kind::Phone, "(555) 123-4567", "office (555) 123-4567");
        assert_finds(Kind::Phone, "555-123-4567", "cell 555-123-4567.");
        assert_finds(Kind::Phone, "555.123.4567", "555.123.4567");
        assert_finds(Kind::Phone, "1-800-555-0199", "toll free 1-800-555-0199");
        assert_finds(Kind::Phone, "+1 415 555 2671", "+1 415 555 2671 2 lines");
    }

    #[test]
    fn ignores_digit_runs_that_are_not_phones() {
        for input in [
            "5551234567",
            "id=14155552671",
            "ts 1700000000",
            "+1234567",
            "x+14155552671",
            "2024-01-15T10:00:00+05:30",
            "1e+10",
            "123-456-7890",
            "555-123-45678",
            "9555-123-4567",
            "192.168.100.200",
            "v10.15.7",
            "+1234567890123456",
            "555-123.4567",
        ] {
            assert_clean(input);
        }
    }

    #[test]
    fn finds_payment_cards() {
        assert_finds(
            Kind::PaymentCard,
            "4111 1111 1111 1111",
            "card 4111 1111 1111 1111 exp 12/30",
        );
        assert_finds(
            Kind::PaymentCard,
            "5500-0000-0000-0004",
            "5500-0000-0000-0004",
        );
        assert_finds(
            Kind::PaymentCard,
            "378282246310005",
            r#"{"pan":"378282246310005"}"#,
        );
        assert_finds(
            Kind::PaymentCard,
            "3782 822463 10005",
            "amex 3782 822463 10005",
        );
        assert_finds(
            Kind::PaymentCard,
            "4111111111111111",
            r#"{"card":4111111111111111}"#,
        );
        assert_finds(
            Kind::PaymentCard,
            "6011111111111117",
            "discover 6011111111111117",
        );
        assert_finds(
            Kind::PaymentCard,
            "3530111333300000",
            "jcb 3530111333300000",
        );
        assert_finds(
            Kind::PaymentCard,
            "2223003122003222",
            "mc2 2223003122003222",
        );
        assert_finds(Kind::PaymentCard, "30569309025904", "diners 30569309025904");
        assert_finds(
            Kind::PaymentCard,
            "6200000000000005",
            "unionpay 6200000000000005",
        );
        assert_finds(Kind::PaymentCard, "4222222222222", "visa13 4222222222222");
    }

    #[test]
    fn ignores_numbers_that_are_not_cards() {
        for input in [
            "4111111111111112",
            "4111 1111 1111 1112",
            "order 1234567890123452",
            "1700000000000000",
            "41111111111111110000",
            "0.4111111111111111",
            "x4111111111111111",
            "4111111111111111x",
            "4111-1111-1111-1111-1111",
            "411 1111 1111 11111",
            "3782822463100003",
            "5500000000000000004",
            "411111111111116",
            "9111111111111110",
        ] {
            assert_clean(input);
        }
        // Luhn-valid all, refused for issuer prefix or issuer length.
        for number in [
            "3782822463100003",
            "5500000000000000004",
            "411111111111116",
            "9111111111111110",
        ] {
            assert!(luhn_valid(number.as_bytes()), "{number}");
        }
    }

    #[test]
    fn finds_ibans() {
        assert_finds(
            Kind::Iban,
            "GB82 WEST 1234 5698 7654 32",
            "pay to GB82 WEST 1234 5698 7654 32 please",
        );
        assert_finds(
            Kind::Iban,
            "DE89370400440532013000",
            r#"{"iban":"DE89370400440532013000"}"#,
        );
        assert_finds(
            Kind::Iban,
            "FR1420041010050500013M02606",
            "FR1420041010050500013M02606",
        );
        assert_finds(Kind::Iban, "NL91ABNA0417164300", "NL91ABNA0417164300");
        assert_finds(Kind::Iban, "BE68539007547034", "iban=BE68539007547034");
    }

    #[test]
    fn ignores_invalid_ibans() {
        for input in [
            "GB83WEST12345698765432",
            "GB82 WEST 1234 5698 7654 33",
            "DE8937040044053201300",
            "DE893704004405320130000",
            "XX89370400440532013000",
            "de89370400440532013000",
            "GB82WEST 1234 5698 7654 32",
        ] {
            assert_clean(input);
        }
    }

    #[test]
    fn finds_national_ids() {
        assert_finds(Kind::NationalId, "123-45-6789", "ssn 123-45-6789");
        assert_finds(Kind::NationalId, "078-05-1120", r#"{"ssn":"078-05-1120"}"#);
        assert_finds(Kind::NationalId, "AB123456C", "NINO AB123456C.");
        assert_finds(Kind::NationalId, "AB 12 34 56 C", "ni: AB 12 34 56 C");
    }

    #[test]
    fn ignores_invalid_national_ids() {
        for input in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "987-65-4321",
            "123-00-6789",
            "123-45-0000",
            "123456789",
            "123-45-67890",
            "1123-45-6789",
            "QQ123456C",
            "AD123456C",
            "GB123456A",
            "AB123456E",
            "AB123456",
            "XAB123456C",
            "AB123456CD",
        ] {
            assert_clean(input);
        }
    }

    #[test]
    fn finds_jwts() {
        let token = hs256_jwt();
        assert_finds(Kind::Jwt, &token, &format!("Authorization: Bearer {token}"));
        assert_finds(Kind::Jwt, &token, &format!(r#"{{"id_token":"{token}"}}"#));
        assert_finds(Kind::Jwt, &token, &format!("token={token}&x=1"));

        let unsigned = jwt(r#"{"alg":"none"}"#, r#"{"sub":"admin"}"#, b"");
        assert!(unsigned.ends_with('.'));
        assert_finds(Kind::Jwt, &unsigned, &format!("t {unsigned} end"));

        let padded = format!(
            "{}.{}.",
            STANDARD
                .encode(r#"{"alg":"none","x":1}"#)
                .replace('+', "-")
                .replace('/', "_"),
            URL_SAFE_NO_PAD.encode(r#"{"a":1}"#)
        );
        assert!(padded.contains("=."), "{padded}");
        assert_finds(Kind::Jwt, &padded, &padded);
    }

    #[test]
    fn ignores_jwt_lookalikes() {
        let no_alg = jwt(r#"{"typ":"JWT"}"#, r#"{"sub":"1"}"#, b"sig");
        let header_only = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#);
        let not_json = format!(
            "eyJ{}.eyJzdWIiOiIxIn0.abc",
            URL_SAFE_NO_PAD.encode([0xffu8, 0xfe, 0x00, 0x01, 0x02, 0x03])
        );
        for input in [
            no_alg,
            header_only.clone(),
            format!("{header_only}.eyJzdWIiOiIxIn0"),
            format!("{header_only}..sig"),
            not_json,
            format!("x{}", hs256_jwt()),
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9XYZ".to_string(),
            "eyJ.eyJ.eyJ".to_string(),
        ] {
            assert_clean(&input);
        }
    }

    #[test]
    fn finds_private_key_blocks() {
        assert_finds(Kind::PrivateKey, RSA_KEY, &format!("key:\n{RSA_KEY}\nrest"));

        let escaped = RSA_KEY.replace('\n', "\\n");
        let body = format!(
            r#"{{"kid":1,"pem":"{escaped}\n","client_email":"svc@proj.iam.gserviceaccount.com"}}"#
        );
        let found = findings(&body);
        assert_eq!(found[0], (Kind::PrivateKey, escaped.clone()));
        assert_eq!(
            found[1],
            (Kind::Email, "svc@proj.iam.gserviceaccount.com".to_string())
        );
        assert_eq!(found.len(), 2);

        let named = format!(r#"{{"private_key": "{escaped}\n"}}"#);
        assert_finds(Kind::PrivateKey, &format!("{escaped}\\n"), &named);

        let openssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----";
        assert_finds(Kind::PrivateKey, openssh, openssh);

        // Truncated capture: the block runs to the end of its body.
        let truncated = r#"{"k":"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49","n":1}"#;
        let (kind, value) = only(truncated);
        assert_eq!(kind, Kind::PrivateKey);
        assert!(
            value.starts_with("-----BEGIN EC PRIVATE KEY-----")
                && value.ends_with("PuoAoGCCqGSM49")
        );
    }

    #[test]
    fn a_private_key_block_wins_over_what_it_contains() {
        let key = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nComment: admin@example.com 4111111111111111\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----";
        assert_finds(Kind::PrivateKey, key, &format!("x {key} y"));
    }

    #[test]
    fn ignores_public_pem_blocks() {
        assert_clean("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1L\n-----END PUBLIC KEY-----");
        assert_clean("-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBa\n-----END CERTIFICATE-----");
        assert_clean("-----BEGIN private key-----");
    }

    #[test]
    fn finds_cloud_keys() {
        assert_finds(
            Kind::CloudKey,
            "AKIAIOSFODNN7EXAMPLE",
            "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
        );
        assert_finds(
            Kind::CloudKey,
            "AKIAIOSFODNN7EXAMPLE",
            r"C:\keys\AKIAIOSFODNN7EXAMPLE",
        );
        assert_finds(
            Kind::CloudKey,
            "AKIAIOSFODNN7EXAMPLE",
            r#"{"log":"key:\nAKIAIOSFODNN7EXAMPLE"}"#,
        );
        assert_finds(
            Kind::CloudKey,
            "ASIAY34FZKBOKMUTVV7A",
            r#"{"AccessKeyId":"ASIAY34FZKBOKMUTVV7A"}"#,
        );
        let google = format!("AIza{}", "SyA-1234567890abcdefghijklmnopqrstu");
        assert_eq!(google.len(), 39);
        assert_finds(Kind::CloudKey, &google, &format!("key={google}&q=x"));
        let github = format!("ghp_{}", "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8");
        assert_finds(Kind::CloudKey, &github, &format!("token {github}"));
        let fine_grained = format!("github_pat_{}_{}", "11ABCDEFG0123456789abc", "x".repeat(59));
        assert_finds(Kind::CloudKey, &fine_grained, &fine_grained);
        assert_finds(
            Kind::CloudKey,
            "xoxb-123456789012-abcdefghijkl",
            "slack xoxb-123456789012-abcdefghijkl",
        );
        let stripe = format!("sk_live_{}", "4eC39HqLyjWDarjtT1zdp7dc");
        assert_finds(Kind::CloudKey, &stripe, &format!("Bearer {stripe}"));
    }

    #[test]
    fn ignores_cloud_key_lookalikes() {
        for input in [
            "xAKIAIOSFODNN7EXAMPLE",
            "AKIAIOSFODNN7EXAMPLEX",
            "AKIAIOSFODNN7EXAMPL",
            "my_AKIAIOSFODNN7EXAMPLE",
            "AKIAiosfodnn7example",
            "AKIBIOSFODNN7EXAMPLE",
            "ghp_short",
            "ghx_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
            "xoxb-123",
            "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
            "sk_live_short",
        ] {
            assert_clean(input);
        }
    }

    #[test]
    fn secret_field_names_flag_the_whole_value() {
        for name in [
            "password",
            "Password",
            "PASSWORD",
            "passwd",
            "pwd",
            "pass",
            "pin",
            "pin_code",
            "passphrase",
            "secret",
            "client_secret",
            "clientSecret",
            "new_password",
            "newPassword",
            "userPassword",
            "password_confirmation",
            "x-password",
            "X-Api-Secret",
            "db_pass",
            "user[password]",
            "newpassword",
            "password_hash",
        ] {
            assert_eq!(
                field(name, "hunter2"),
                [(Kind::Password, "hunter2".to_string())],
                "{name}"
            );
        }
    }

    #[test]
    fn other_field_names_only_scan_the_value() {
        for name in [
            "username",
            "password_policy",
            "password_updated_at",
            "passwordless",
            "has_password",
            "is_secret",
            "secret_name",
            "secretary",
            "passport",
            "compass",
            "spinner",
            "pin_enabled",
            "pass_rate",
            "bypass",
            "private_key_id",
            "",
        ] {
            assert_eq!(field(name, "hunter2"), vec![], "{name}");
        }
        assert_eq!(
            field("email", "x jane@example.com"),
            [(Kind::Email, "jane@example.com".to_string())]
        );
    }

    #[test]
    fn secret_fields_with_masked_or_empty_values_are_not_findings() {
        for value in [
            "",
            "   ",
            "********",
            "•••",
            "null",
            "true",
            "[FILTERED]",
            "[REDACTED:password]",
        ] {
            assert_eq!(field("password", value), vec![], "{value:?}");
        }
    }

    #[test]
    fn secret_fields_take_the_more_specific_secret_kind() {
        let aws_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        for name in ["aws_secret_access_key", "secretAccessKey", "AWS_SECRET_KEY"] {
            assert_eq!(
                field(name, aws_secret),
                [(Kind::CloudKey, aws_secret.to_string())],
                "{name}"
            );
        }
        assert_eq!(
            field("aws_secret_access_key", "short"),
            [(Kind::Password, "short".to_string())]
        );
        assert_eq!(
            field("client_secret", aws_secret),
            [(Kind::Password, aws_secret.to_string())]
        );
        let stripe = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
        assert_eq!(
            field("client_secret", stripe),
            [(Kind::CloudKey, stripe.to_string())]
        );
        assert_eq!(
            field("private_key", RSA_KEY),
            [(Kind::PrivateKey, RSA_KEY.to_string())]
        );
        // A card in a password field is still the password.
        assert_eq!(
            field("password", "4111111111111111"),
            [(Kind::Password, "4111111111111111".to_string())]
        );
    }

    #[test]
    fn finds_named_passwords_in_bodies() {
        assert_finds(
            Kind::Password,
            "hunter2",
            "user=bob&password=hunter2&remember=1",
        );
        assert_finds(Kind::Password, "s3cr%26t", "login?user=bob&pwd=s3cr%26t");
        assert_finds(
            Kind::Password,
            "hunter2",
            r#"{"user":"bob","password":"hunter2"}"#,
        );
        assert_finds(
            Kind::Password,
            "hun\\\"ter2",
            r#"{"password": "hun\"ter2", "x": 1}"#,
        );
        assert_finds(
            Kind::Password,
            "hunter 2",
            "{\n  \"newPassword\" :  \"hunter 2\"\n}",
        );
        assert_finds(Kind::Password, "1234", r#"{"pin": 1234}"#);
        assert_finds(
            Kind::Password,
            "hunter2",
            r#"{"body":"{\"password\":\"hunter2\"}"}"#,
        );
        assert_finds(
            Kind::Password,
            "hunter2",
            "Cookie: session=abc; pwd=hunter2; theme=dark",
        );
        assert_finds(Kind::Password, "hunter2", "password='hunter2' user=x");
        assert_finds(
            Kind::CloudKey,
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            r#"{"aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}"#,
        );
        // The value is the password even when it looks like something else.
        assert_finds(
            Kind::Password,
            "jane@example.com",
            "password=jane@example.com",
        );
    }

    #[test]
    fn named_values_that_are_not_passwords() {
        for input in [
            r#"{"password": null}"#,
            r#"{"password": ""}"#,
            r#"{"password": "********"}"#,
            r#"{"password": true}"#,
            r#"{"password_policy": "min 12 chars"}"#,
            r#"{"has_password": "yes"}"#,
            "password=&user=bob",
            "<input type=\"password\" name=\"password\">",
            "https://example.com/reset-password?step=2",
            "the password is required",
        ] {
            assert_clean(input);
        }
    }

    #[test]
    fn json_body_with_many_kinds_in_order() {
        let token = hs256_jwt();
        let body = format!(
            r#"{{"user":{{"email":"jane.roe@example.org","phone":"+14155552671","card":"4111 1111 1111 1111","iban":"DE89370400440532013000","ssn":"123-45-6789"}},"token":"{token}","aws":"AKIAIOSFODNN7EXAMPLE","password":"hunter2!","id":"3f2504e0-4f89-11d3-9a0c-0305e82c3301","ts":1700000000,"ip":"10.0.0.1","v":"1.2.3"}}"#
        );
        let found = findings(&body);
        let kinds_found: Vec<Kind> = found.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds_found,
            [
                Kind::Email,
                Kind::Phone,
                Kind::PaymentCard,
                Kind::Iban,
                Kind::NationalId,
                Kind::Jwt,
                Kind::CloudKey,
                Kind::Password
            ]
        );
        assert_eq!(found[5].1, token);
        assert_eq!(found[7].1, "hunter2!");
        let set = kinds(body.as_bytes());
        assert_eq!(set.len(), 8);
        assert!(!set.contains(Kind::PrivateKey));
    }

    #[test]
    fn ignores_ordinary_api_traffic() {
        assert_clean(
            r#"{"id":"3f2504e0-4f89-11d3-9a0c-0305e82c3301","order":1234567890123456,"created":1700000000123,"amount":12.99,"ratio":0.30000000000000004,"version":"10.15.7","ip":"192.168.1.254","sha":"da39a3ee5e6b4b0d3255bfef95601890afd80709","date":"2024-03-01","next_page_token":"eyJvZmZzZXQiOjIwfQ","tags":["a","b"]}"#,
        );
        assert_clean("GET /api/v2/users/123456/orders?limit=50&offset=100 HTTP/1.1");
    }

    #[test]
    fn a_jwt_wins_over_an_email_like_tail() {
        let token = hs256_jwt();
        let input = format!("{token}@example.com");
        let found = findings(&input);
        assert_eq!(found[0], (Kind::Jwt, token));
    }

    #[test]
    fn findings_are_bounded_per_scan_but_redaction_is_complete() {
        let input: String = (0..100).map(|k| format!("user{k}@example.com ")).collect();
        let mut out = Vec::new();
        scan(input.as_bytes(), &mut out);
        assert_eq!(out.len(), MAX_FINDINGS);
        let mut all = Vec::new();
        scan_all(input.as_bytes(), &mut all);
        assert_eq!(all.len(), 100);
        let redacted = redact(&input);
        assert!(!redacted.contains("@example.com"));
        assert_eq!(redacted.matches("[REDACTED:email]").count(), 100);
    }

    #[test]
    fn scan_appends_to_existing_findings() {
        let mut out = vec![Finding {
            kind: Kind::Jwt,
            range: 0..1,
        }];
        scan(b"a@example.com", &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[1],
            Finding {
                kind: Kind::Email,
                range: 0..13
            }
        );
    }

    #[test]
    fn redact_replaces_every_secret_by_its_kind() {
        let token = hs256_jwt();
        let input = format!(
            "user jane@example.com card 4111-1111-1111-1111 key AKIAIOSFODNN7EXAMPLE jwt {token} password=hunter2 ssn 123-45-6789"
        );
        let redacted = redact(&input);
        for secret in [
            "jane@example.com",
            "4111-1111-1111-1111",
            "AKIAIOSFODNN7EXAMPLE",
            &token,
            "hunter2",
            "123-45-6789",
        ] {
            assert!(!redacted.contains(secret), "{secret} in {redacted}");
        }
        assert_eq!(
            redacted,
            "user [REDACTED:email] card [REDACTED:payment_card] key [REDACTED:cloud_key] jwt [REDACTED:jwt] password=[REDACTED:password] ssn [REDACTED:national_id]"
        );
        // Redacted text holds nothing left to find.
        assert_clean(&redacted);
    }

    #[test]
    fn redact_borrows_when_nothing_is_found() {
        let clean = "GET /users/123?sort=name 200 OK";
        assert!(matches!(redact(clean), Cow::Borrowed(text) if text == clean));
        assert!(matches!(redact("a@example.com"), Cow::Owned(_)));
    }

    #[test]
    fn redact_with_tolerates_unordered_overlapping_and_foreign_findings() {
        let input = b"0123456789";
        let findings = [
            Finding {
                kind: Kind::Phone,
                range: 6..8,
            },
            Finding {
                kind: Kind::Email,
                range: 1..3,
            },
            Finding {
                kind: Kind::Iban,
                range: 2..5,
            },
            Finding {
                kind: Kind::Jwt,
                range: 9..40,
            },
        ];
        let out = redact_with(input, &findings);
        assert_eq!(out, b"0[REDACTED:email][REDACTED:iban]5[REDACTED:phone]89");
    }

    #[test]
    fn scans_bytes_that_are_not_utf8() {
        let mut input = vec![0xff, 0xfe, b' '];
        input.extend_from_slice(b"4111111111111111");
        input.extend_from_slice(&[b' ', 0xc3, 0x28, b' ']);
        input.extend_from_slice(b"x@example.com\xf0");
        let mut out = Vec::new();
        scan(&input, &mut out);
        assert_eq!(
            out,
            [
                Finding {
                    kind: Kind::PaymentCard,
                    range: 3..19
                },
                Finding {
                    kind: Kind::Email,
                    range: 23..36
                },
            ]
        );
    }

    fn occurrences(haystack: &[u8], needle: &[u8]) -> usize {
        haystack
            .windows(needle.len())
            .filter(|w| *w == needle)
            .count()
    }

    /// Findings are in bounds, ordered, non-overlapping and bounded; after redaction no value
    /// longer than 6 bytes survives except as often as the input also holds it outside findings.
    fn check_invariants(input: &[u8], out: &[Finding]) -> Result<(), TestCaseError> {
        let mut previous_end = 0;
        for finding in out {
            prop_assert!(finding.range.start >= previous_end, "{out:?}");
            prop_assert!(finding.range.start < finding.range.end, "{out:?}");
            prop_assert!(finding.range.end <= input.len(), "{out:?}");
            previous_end = finding.range.end;
        }
        prop_assert!(out.len() <= MAX_FINDINGS);
        let redacted = redact_with(input, out);
        for finding in out.iter().filter(|f| f.range.len() > 6) {
            let value = finding.value(input);
            let outside = (0..=input.len() - value.len())
                .filter(|&at| input[at..].starts_with(value))
                .filter(|&at| {
                    out.iter()
                        .all(|f| f.range.end <= at || f.range.start >= at + value.len())
                })
                .count();
            prop_assert!(
                occurrences(&redacted, value) <= outside,
                "{:?} survived in {:?}",
                String::from_utf8_lossy(value),
                String::from_utf8_lossy(&redacted)
            );
        }
        Ok(())
    }

    fn planted_secret() -> impl Strategy<Value = (Kind, String)> {
        prop_oneof![
            Just((Kind::Email, "jane.roe@example.org".to_string())),
            Just((Kind::Phone, "+1 415-555-2671".to_string())),
            Just((Kind::Phone, "(555) 123-4567".to_string())),
            Just((Kind::PaymentCard, "4111 1111 1111 1111".to_string())),
            Just((Kind::PaymentCard, "378282246310005".to_string())),
            Just((Kind::Iban, "GB82 WEST 1234 5698 7654 32".to_string())),
            Just((Kind::NationalId, "123-45-6789".to_string())),
            Just((Kind::NationalId, "AB123456C".to_string())),
            Just((Kind::Jwt, hs256_jwt())),
            Just((Kind::PrivateKey, RSA_KEY.to_string())),
            Just((Kind::CloudKey, "AKIAIOSFODNN7EXAMPLE".to_string())),
        ]
    }

    fn noise_word() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z]{1,8}",
            "[0-9]{1,6}",
            Just("{\"a\":1}".to_string()),
            Just("v1.2.3".to_string()),
            Just("x-y_z".to_string()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn scan_never_panics_and_findings_are_well_formed(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut out = Vec::new();
            scan(&input, &mut out);
            check_invariants(&input, &out)?;
            let mut again = Vec::new();
            scan(&input, &mut again);
            prop_assert_eq!(&out, &again);
        }

        #[test]
        fn scan_is_well_formed_on_trigger_heavy_input(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("@".to_string()), Just("%40".to_string()), Just("eyJ".to_string()),
                    Just("-----BEGIN RSA PRIVATE KEY-----".to_string()), Just("-----END ".to_string()),
                    Just("\\n".to_string()), Just("password=".to_string()), Just("\"pwd\":\"".to_string()),
                    Just("AKIA".to_string()), Just("+1".to_string()), Just("(".to_string()), Just(".".to_string()),
                    Just("-".to_string()), Just(" ".to_string()), Just("\\\"".to_string()), Just("4111".to_string()),
                    "[A-Za-z0-9._%+-]{1,12}",
                ],
                0..64,
            )
        ) {
            let input = parts.concat();
            let mut out = Vec::new();
            scan(input.as_bytes(), &mut out);
            check_invariants(input.as_bytes(), &out)?;
            let redacted = redact(&input);
            prop_assert!(std::str::from_utf8(redacted.as_bytes()).is_ok());
        }

        #[test]
        fn planted_secrets_between_spaces_are_found_exactly(
            before in proptest::collection::vec(noise_word(), 0..8),
            (kind, secret) in planted_secret(),
            after in proptest::collection::vec(noise_word(), 0..8),
        ) {
            let head = before.join(" ");
            let tail = after.join(" ");
            // Digit groups next to a phone or a card could continue it on either side ("4177 5435
            // 4111 1111 1111 1111" holds another Luhn-valid card): a comma ends it.
            let input = format!("{head}, {secret}, {tail}");
            let start = head.len() + 2;
            let mut out = Vec::new();
            scan(input.as_bytes(), &mut out);
            prop_assert!(
                out.contains(&Finding { kind, range: start..start + secret.len() }),
                "{:?} in {:?}: {:?}", secret, input, out
            );
            let redacted = redact(&input);
            prop_assert!(!redacted.contains(&secret));
            let placeholder = format!("[REDACTED:{kind}]");
            prop_assert!(redacted.contains(&placeholder));
        }

        #[test]
        fn scan_field_ranges_are_in_the_value(
            name in "[a-zA-Z_-]{0,20}",
            value in proptest::collection::vec(any::<u8>(), 0..128),
        ) {
            let mut out = Vec::new();
            scan_field(name.as_bytes(), &value, &mut out);
            check_invariants(&value, &out)?;
        }
    }
}
