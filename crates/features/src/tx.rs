//! Features of one transaction: sizes, counts, the character make-up of its query and body
//! prefix, status and latency, as a fixed array indexed by [`TxFeature`].
//!
//! [`extract`] does O(input) work and no allocation; the character statistics read the query and
//! at most [`BODY_SAMPLE`] bytes of the request body.

use std::ops::{Index, IndexMut};

/// Bytes of the request body read for the character statistics: an injection sits near the
/// start of a parameter, and a fixed cap keeps the cost per transaction bounded.
pub const BODY_SAMPLE: usize = 512;

/// What the caller knows of one transaction, borrowed (this crate does not depend on the HTTP
/// parser).
#[derive(Clone, Copy, Debug, Default)]
pub struct TxInput<'a> {
    pub method: &'a [u8],
    pub path: &'a [u8],
    /// Raw query, after `?`, not percent-decoded.
    pub query: &'a [u8],
    pub request_headers: usize,
    pub request_head_bytes: u64,
    /// Decoded request content, possibly truncated.
    pub request_body: &'a [u8],
    /// Full request body length, however much of it `request_body` holds.
    pub request_body_len: u64,
    pub response_body_len: u64,
    pub status: Option<u16>,
    pub latency_ns: Option<u64>,
    /// JSON nesting depth of the request body, computed by the caller.
    pub body_depth: u32,
    pub cookies: usize,
    /// Parameters the endpoint never had before, from the inventory.
    pub unseen_params: u32,
    /// Body fields the endpoint never had before, from the inventory.
    pub unseen_fields: u32,
}

/// The per-transaction feature schema; `feature as usize` indexes [`TxFeatures`].
///
/// The character shares (`Letters` to `NonAscii`) partition the sample (query and body prefix):
/// they sum to 1 unless it is empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum TxFeature {
    PathLen,
    QueryLen,
    /// Non-empty `/`-separated path segments.
    PathSegments,
    /// Non-empty `&`-separated query parameters.
    QueryParams,
    RequestHeaders,
    RequestHeadBytes,
    RequestBodyLen,
    ResponseBodyLen,
    Cookies,
    /// Share of ASCII letters in the sample.
    Letters,
    /// Share of ASCII digits.
    Digits,
    /// Share of space, tab, CR, LF, VT and FF.
    Whitespace,
    /// Share of other printable ASCII punctuation (`=`, `-`, `.`, `/`, …).
    Punctuation,
    /// Share of the injection alphabet ``< > ' " ; ( ) ` | & $ { } \ %`` and control bytes.
    Special,
    /// Share of bytes ≥ 0x80.
    NonAscii,
    /// Shannon entropy of the sample, bits per byte (0 to 8).
    Entropy,
    /// Share of characters, after decoding, that were written as a `%XX` triple.
    PercentEncoded,
    BodyDepth,
    /// 1 to 5 for a status of 100 to 599; 0 for none or out of range.
    StatusClass,
    /// 1 for a 4xx or 5xx status, else 0.
    IsError,
    /// 0 when unknown.
    LatencyMs,
    UnseenParams,
    UnseenFields,
}

impl TxFeature {
    /// Every feature in discriminant order.
    pub const ALL: [TxFeature; 23] = [
        TxFeature::PathLen,
        TxFeature::QueryLen,
        TxFeature::PathSegments,
        TxFeature::QueryParams,
        TxFeature::RequestHeaders,
        TxFeature::RequestHeadBytes,
        TxFeature::RequestBodyLen,
        TxFeature::ResponseBodyLen,
        TxFeature::Cookies,
        TxFeature::Letters,
        TxFeature::Digits,
        TxFeature::Whitespace,
        TxFeature::Punctuation,
        TxFeature::Special,
        TxFeature::NonAscii,
        TxFeature::Entropy,
        TxFeature::PercentEncoded,
        TxFeature::BodyDepth,
        TxFeature::StatusClass,
        TxFeature::IsError,
        TxFeature::LatencyMs,
        TxFeature::UnseenParams,
        TxFeature::UnseenFields,
    ];
    pub const COUNT: usize = Self::ALL.len();

    /// Stable snake_case name, for output and model schemas.
    pub fn name(self) -> &'static str {
        match self {
            TxFeature::PathLen => "path_len",
            TxFeature::QueryLen => "query_len",
            TxFeature::PathSegments => "path_segments",
            TxFeature::QueryParams => "query_params",
            TxFeature::RequestHeaders => "request_headers",
            TxFeature::RequestHeadBytes => "request_head_bytes",
            TxFeature::RequestBodyLen => "request_body_len",
            TxFeature::ResponseBodyLen => "response_body_len",
            TxFeature::Cookies => "cookies",
            TxFeature::Letters => "letters",
            TxFeature::Digits => "digits",
            TxFeature::Whitespace => "whitespace",
            TxFeature::Punctuation => "punctuation",
            TxFeature::Special => "special",
            TxFeature::NonAscii => "non_ascii",
            TxFeature::Entropy => "entropy",
            TxFeature::PercentEncoded => "percent_encoded",
            TxFeature::BodyDepth => "body_depth",
            TxFeature::StatusClass => "status_class",
            TxFeature::IsError => "is_error",
            TxFeature::LatencyMs => "latency_ms",
            TxFeature::UnseenParams => "unseen_params",
            TxFeature::UnseenFields => "unseen_fields",
        }
    }
}

/// Feature values indexed by [`TxFeature`]; every value is finite and ≥ 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TxFeatures(pub [f64; TxFeature::COUNT]);

impl Default for TxFeatures {
    fn default() -> Self {
        TxFeatures([0.0; TxFeature::COUNT])
    }
}

impl TxFeatures {
    /// These features with the three that depend on what the endpoint saw before (body depth,
    /// unseen parameters and fields) set: everything else is known from the transaction alone,
    /// so a flow worker extracts it and the analysis stage adds these.
    pub fn with_history(mut self, body_depth: u32, unseen_params: u32, unseen_fields: u32) -> Self {
        self.set_history(body_depth, unseen_params, unseen_fields);
        self
    }

    /// [`TxFeatures::with_history`] in place.
    pub fn set_history(&mut self, body_depth: u32, unseen_params: u32, unseen_fields: u32) {
        self[TxFeature::BodyDepth] = f64::from(body_depth);
        self[TxFeature::UnseenParams] = f64::from(unseen_params);
        self[TxFeature::UnseenFields] = f64::from(unseen_fields);
    }

    pub fn get(&self, feature: TxFeature) -> f64 {
        self.0[feature as usize]
    }

    pub fn iter(&self) -> impl Iterator<Item = (TxFeature, f64)> + '_ {
        TxFeature::ALL.iter().map(|&f| (f, self.get(f)))
    }
}

impl Index<TxFeature> for TxFeatures {
    type Output = f64;

    fn index(&self, feature: TxFeature) -> &f64 {
        &self.0[feature as usize]
    }
}

impl IndexMut<TxFeature> for TxFeatures {
    fn index_mut(&mut self, feature: TxFeature) -> &mut f64 {
        &mut self.0[feature as usize]
    }
}

/// The character classes, which partition the bytes.
const CLASS_FEATURES: [TxFeature; 6] = [
    TxFeature::Letters,
    TxFeature::Digits,
    TxFeature::Whitespace,
    TxFeature::Punctuation,
    TxFeature::Special,
    TxFeature::NonAscii,
];

/// The class feature each byte counts toward.
const CLASS_OF: [TxFeature; 256] = {
    let mut table = [TxFeature::Punctuation; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = match b as u8 {
            b'a'..=b'z' | b'A'..=b'Z' => TxFeature::Letters,
            b'0'..=b'9' => TxFeature::Digits,
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => TxFeature::Whitespace,
            b'<' | b'>' | b'\'' | b'"' | b';' | b'(' | b')' | b'`' | b'|' | b'&' | b'$' | b'{'
            | b'}' | b'\\' | b'%' => TxFeature::Special,
            0x00..=0x1f | 0x7f => TxFeature::Special,
            0x80..=0xff => TxFeature::NonAscii,
            _ => TxFeature::Punctuation,
        };
        b += 1;
    }
    table
};

/// Computes every feature of one transaction.
pub fn extract(t: &TxInput) -> TxFeatures {
    let mut f = TxFeatures([0.0; TxFeature::COUNT]);
    f[TxFeature::PathLen] = t.path.len() as f64;
    f[TxFeature::QueryLen] = t.query.len() as f64;
    f[TxFeature::PathSegments] = non_empty_parts(t.path, b'/') as f64;
    f[TxFeature::QueryParams] = non_empty_parts(t.query, b'&') as f64;
    f[TxFeature::RequestHeaders] = t.request_headers as f64;
    f[TxFeature::RequestHeadBytes] = t.request_head_bytes as f64;
    f[TxFeature::RequestBodyLen] = t.request_body_len as f64;
    f[TxFeature::ResponseBodyLen] = t.response_body_len as f64;
    f[TxFeature::Cookies] = t.cookies as f64;

    let body = &t.request_body[..t.request_body.len().min(BODY_SAMPLE)];
    // Most requests carry neither a query nor a body: nothing to histogram.
    if !t.query.is_empty() || !body.is_empty() {
        let sample = Sample::of(&[t.query, body]);
        for (class, n) in CLASS_FEATURES.into_iter().zip(sample.classes) {
            f[class] = f64::from(n) / sample.len as f64;
        }
        f[TxFeature::Entropy] = sample.entropy();
        let triples = percent_triples(t.query) + percent_triples(body);
        let decoded_chars = sample.len - 2 * triples;
        if decoded_chars > 0 {
            f[TxFeature::PercentEncoded] = triples as f64 / decoded_chars as f64;
        }
    }

    let class = match t.status {
        Some(s @ 100..=599) => s / 100,
        _ => 0,
    };
    f[TxFeature::StatusClass] = f64::from(class);
    f[TxFeature::IsError] = if class >= 4 { 1.0 } else { 0.0 };
    f[TxFeature::LatencyMs] = t.latency_ns.map_or(0.0, |ns| ns as f64 / 1e6);
    f.with_history(t.body_depth, t.unseen_params, t.unseen_fields)
}

fn non_empty_parts(bytes: &[u8], separator: u8) -> usize {
    // A part starts wherever a non-separator follows a separator (or the start): each pair is
    // compared on its own, a sum of flags the compiler vectorises.
    let Some(&first) = bytes.first() else {
        return 0;
    };
    let starts: u32 = bytes[1..]
        .iter()
        .zip(bytes)
        .map(|(&b, &before)| u32::from((before == separator) & (b != separator)))
        .sum();
    usize::from(first != separator) + starts as usize
}

/// `%XX` triples with two hex digits, not overlapping.
fn percent_triples(bytes: &[u8]) -> usize {
    // memchr finds the rare '%' a vector at a time; most values have none.
    let mut count = 0;
    let mut from = 0;
    while let Some(at) = memchr::memchr(b'%', &bytes[from..]) {
        let i = from + at;
        if i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            count += 1;
            from = i + 3;
        } else {
            from = i + 1;
        }
    }
    count
}

/// Counts whose c·log₂ c is tabulated (a body sample and a typical query fit).
const ENTROPY_TABLE: usize = 2048;

/// What the sampled parts hold: their bytes by character class, and Σ c·log₂ c over the
/// count c of each distinct byte (for the entropy).
struct Sample {
    /// In the order of [`CLASS_FEATURES`].
    classes: [u32; 6],
    sum_c_log2_c: f64,
    len: usize,
}

/// Each byte's class as its position in [`CLASS_FEATURES`].
const CLASS_INDEX: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let mut class = 0;
        while CLASS_FEATURES[class] as u8 != CLASS_OF[b] as u8 {
            class += 1;
        }
        table[b] = class as u8;
        b += 1;
    }
    table
};

/// One in each byte's class lane of the packed class counter (see [`LANE_BITS`]).
const LANE_ONE: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = 1 << (LANE_BITS * CLASS_INDEX[b] as u32);
        b += 1;
    }
    table
};

/// Bits of a class's lane in the packed class counter: a lane holds up to 1023 bytes, so the
/// counter is emptied into the totals every [`LANE_SPAN`] bytes.
const LANE_BITS: u32 = 10;
const LANE_SPAN: usize = (1 << LANE_BITS) - 1;

/// (c+1)·log₂(c+1) − c·log₂ c for the counts a sample usually reaches: what one more sight of
/// a byte seen c times adds to Σ c·log₂ c, so the sum builds as the bytes go by.
fn c_log2_c_steps() -> &'static [f64; ENTROPY_TABLE] {
    static TABLE: std::sync::OnceLock<[f64; ENTROPY_TABLE]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| std::array::from_fn(c_log2_c_step))
}

/// log₂ n for the sample lengths that are common (a libm call was a sixth of the cost).
fn log2_table() -> &'static [f64] {
    static TABLE: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| (0..ENTROPY_TABLE).map(|n| (n as f64).log2()).collect())
}

fn c_log2_c_step(c: usize) -> f64 {
    let c_log2_c = |c: usize| {
        if c == 0 {
            0.0
        } else {
            c as f64 * (c as f64).log2()
        }
    };
    c_log2_c(c + 1) - c_log2_c(c)
}

impl Sample {
    fn of(parts: &[&[u8]]) -> Sample {
        let steps = c_log2_c_steps();
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len <= ENTROPY_TABLE {
            // No count reaches the table's end (a count before its increment is below `len`):
            // the mask only spares the hot loop a bounds check.
            Sample::of_with(parts, |c| steps[c & (ENTROPY_TABLE - 1)])
        } else {
            Sample::of_with(parts, |c| {
                steps.get(c).copied().unwrap_or_else(|| c_log2_c_step(c))
            })
        }
    }

    /// [`Sample::of`] with `step(c)` = (c+1)·log₂(c+1) − c·log₂ c.
    #[inline(always)]
    fn of_with(parts: &[&[u8]], step: impl Fn(usize) -> f64) -> Sample {
        // One pass, nothing per distinct byte afterwards: each byte adds one to its count, the
        // step that count makes to Σ c·log₂ c (four sums, so the additions overlap), and one
        // to its class's 10-bit lane of a packed counter held in a register.
        let mut counts = [0u32; 256];
        let mut classes = [0u32; 6];
        let (mut s0, mut s1, mut s2, mut s3) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        let mut len = 0;
        let mut sight = |b: u8, lanes: &mut u64| {
            let count = &mut counts[usize::from(b)];
            let c = *count as usize;
            *count += 1;
            *lanes += LANE_ONE[usize::from(b)];
            step(c)
        };
        for part in parts {
            for span in part.chunks(LANE_SPAN) {
                let mut lanes = 0u64;
                let mut quads = span.chunks_exact(4);
                for q in &mut quads {
                    s0 += sight(q[0], &mut lanes);
                    s1 += sight(q[1], &mut lanes);
                    s2 += sight(q[2], &mut lanes);
                    s3 += sight(q[3], &mut lanes);
                }
                for &b in quads.remainder() {
                    s0 += sight(b, &mut lanes);
                }
                for (k, total) in classes.iter_mut().enumerate() {
                    *total += ((lanes >> (LANE_BITS * k as u32)) & LANE_SPAN as u64) as u32;
                }
            }
            len += part.len();
        }
        Sample {
            classes,
            sum_c_log2_c: (s0 + s1) + (s2 + s3),
            len,
        }
    }

    /// Shannon entropy as log₂ n − (1/n) Σ c·log₂ c.
    fn entropy(&self) -> f64 {
        if self.len == 0 {
            return 0.0;
        }
        let n = self.len as f64;
        let log2_n = log2_table()
            .get(self.len)
            .copied()
            .unwrap_or_else(|| n.log2());
        let bits = log2_n - self.sum_c_log2_c / n;
        // Rounding can leave -0.0 or a hair above 8.
        bits.clamp(0.0, 8.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_query(query: &[u8]) -> TxFeatures {
        extract(&TxInput {
            query,
            ..TxInput::default()
        })
    }

    #[test]
    fn names_are_unique_snake_case_and_all_is_in_discriminant_order() {
        let mut names = std::collections::HashSet::new();
        for (i, f) in TxFeature::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i, "{f:?}");
            let name = f.name();
            assert!(names.insert(name), "duplicate {name}");
            assert!(
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
        }
        assert_eq!(TxFeature::COUNT, TxFeature::UnseenFields as usize + 1);
    }

    #[test]
    fn sizes_and_counts() {
        let with_history = |body_depth, unseen_params, unseen_fields| {
            extract(&TxInput {
                method: b"POST",
                path: b"/api//users/123/",
                query: b"a=1&&b=2&",
                request_headers: 7,
                request_head_bytes: 312,
                request_body: b"{\"x\":1}",
                request_body_len: 9000,
                response_body_len: 42,
                status: Some(201),
                latency_ns: Some(2_500_000),
                body_depth,
                cookies: 2,
                unseen_params,
                unseen_fields,
            })
        };
        let f = with_history(3, 1, 4);
        assert_eq!(f[TxFeature::PathLen], 16.0);
        assert_eq!(f[TxFeature::QueryLen], 9.0);
        assert_eq!(f[TxFeature::PathSegments], 3.0);
        assert_eq!(f[TxFeature::QueryParams], 2.0);
        assert_eq!(f[TxFeature::RequestHeaders], 7.0);
        assert_eq!(f[TxFeature::RequestHeadBytes], 312.0);
        assert_eq!(f[TxFeature::RequestBodyLen], 9000.0);
        assert_eq!(f[TxFeature::ResponseBodyLen], 42.0);
        assert_eq!(f[TxFeature::Cookies], 2.0);
        assert_eq!(f[TxFeature::BodyDepth], 3.0);
        assert_eq!(f[TxFeature::StatusClass], 2.0);
        assert_eq!(f[TxFeature::IsError], 0.0);
        assert_eq!(f[TxFeature::LatencyMs], 2.5);
        assert_eq!(f[TxFeature::UnseenParams], 1.0);
        assert_eq!(f[TxFeature::UnseenFields], 4.0);
        assert_eq!(f.get(TxFeature::Cookies), f[TxFeature::Cookies]);
        let listed: Vec<_> = f.iter().map(|(feature, _)| feature).collect();
        assert_eq!(listed, TxFeature::ALL);

        // Without the endpoint's history, then with it: what a worker and the analysis
        // stage compute between them is the whole.
        let partial = with_history(0, 0, 0);
        assert_ne!(partial, f);
        assert_eq!(partial.with_history(3, 1, 4), f);
    }

    #[test]
    fn every_byte_value_once_is_eight_bits_of_entropy() {
        let all: Vec<u8> = (0..=255u8).collect();
        let f = extract(&TxInput {
            query: &all[..128],
            request_body: &all[128..],
            request_body_len: 128,
            ..TxInput::default()
        });
        assert_eq!(f[TxFeature::Entropy], 8.0);
        assert_eq!(f[TxFeature::NonAscii], 0.5);
        let shares: f64 = CLASS_FEATURES.iter().map(|&c| f[c]).sum();
        assert!((shares - 1.0).abs() < 1e-12, "{shares}");
        // Twice over: the spare entry of the distinct list is written and never kept.
        let twice: Vec<u8> = all.iter().chain(&all).copied().collect();
        assert_eq!(with_query(&twice)[TxFeature::Entropy], 8.0);
    }

    #[test]
    fn status_class_and_error() {
        for (status, class, error) in [
            (None, 0.0, 0.0),
            (Some(101), 1.0, 0.0),
            (Some(200), 2.0, 0.0),
            (Some(302), 3.0, 0.0),
            (Some(404), 4.0, 1.0),
            (Some(503), 5.0, 1.0),
            (Some(99), 0.0, 0.0),
            (Some(600), 0.0, 0.0),
        ] {
            let f = extract(&TxInput {
                status,
                ..TxInput::default()
            });
            assert_eq!(f[TxFeature::StatusClass], class, "{status:?}");
            assert_eq!(f[TxFeature::IsError], error, "{status:?}");
        }
    }

    #[test]
    fn sql_injection_is_mostly_special_and_a_plain_query_is_not() {
        let attack = with_query(b"id=1';DROP(users);--%00|`id`");
        let plain = with_query(b"id=123&name=alice&page=2");
        assert!(attack[TxFeature::Special] > 0.3, "{attack:?}");
        assert!(plain[TxFeature::Special] < 0.1, "{plain:?}");
        assert!(plain[TxFeature::Letters] > 0.5);
    }

    #[test]
    fn shares_partition_the_sample() {
        let (query, body) = (b"q=caf\xc3\xa9 %3C\t", b"{\"a\": [1, 2]}\x01");
        let n = (query.len() + body.len()) as f64;
        let f = extract(&TxInput {
            query,
            request_body: body,
            ..TxInput::default()
        });
        let total: f64 = CLASS_FEATURES.iter().map(|&c| f[c]).sum();
        assert!((total - 1.0).abs() < 1e-12, "{total}");
        assert!((f[TxFeature::NonAscii] - 2.0 / n).abs() < 1e-12);
        assert!((f[TxFeature::Whitespace] - 4.0 / n).abs() < 1e-12);
        // Two quotes, two braces, `%` and the control byte.
        assert!((f[TxFeature::Special] - 6.0 / n).abs() < 1e-12);
        let empty = extract(&TxInput::default());
        assert!(CLASS_FEATURES.iter().all(|&c| empty[c] == 0.0));
        assert_eq!(empty[TxFeature::Entropy], 0.0);
        assert_eq!(empty[TxFeature::PercentEncoded], 0.0);
    }

    #[test]
    fn parts_are_counted_between_separators() {
        assert_eq!(non_empty_parts(b"", b'/'), 0);
        assert_eq!(non_empty_parts(b"/", b'/'), 0);
        assert_eq!(non_empty_parts(b"/a", b'/'), 1);
        assert_eq!(non_empty_parts(b"//a//bc/", b'/'), 2);
        assert_eq!(non_empty_parts(b"a=1&&b=2&", b'&'), 2);
    }

    #[test]
    fn body_beyond_the_sample_is_not_read() {
        let mut body = vec![b'a'; BODY_SAMPLE];
        body.extend_from_slice(&[b'<'; 1000]);
        let f = extract(&TxInput {
            request_body: &body,
            request_body_len: body.len() as u64,
            ..TxInput::default()
        });
        assert_eq!(f[TxFeature::Special], 0.0);
        assert_eq!(f[TxFeature::Letters], 1.0);
        assert_eq!(f[TxFeature::RequestBodyLen], (BODY_SAMPLE + 1000) as f64);
    }

    #[test]
    fn entropy_of_a_constant_is_zero_and_of_random_bytes_near_eight() {
        assert_eq!(with_query(b"aaaa")[TxFeature::Entropy], 0.0);
        assert!((with_query(b"abab")[TxFeature::Entropy] - 1.0).abs() < 1e-12);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let random: Vec<u8> = (0..BODY_SAMPLE)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 56) as u8
            })
            .collect();
        let f = extract(&TxInput {
            request_body: &random,
            ..TxInput::default()
        });
        let entropy = f[TxFeature::Entropy];
        // 512 uniform bytes: 8 bits less the small-sample bias, 255/(2·512·ln 2) ≈ 0.36.
        assert!(entropy > 7.5 && entropy <= 8.0, "{entropy}");
    }

    #[test]
    fn entropy_is_the_same_either_side_of_the_step_table_end() {
        // One byte value only: its count runs through the whole table, and past it.
        for n in [ENTROPY_TABLE - 1, ENTROPY_TABLE, ENTROPY_TABLE + 1] {
            assert_eq!(with_query(&vec![b'a'; n])[TxFeature::Entropy], 0.0, "{n}");
        }
        let two = |n: usize| {
            let query: Vec<u8> = (0..n)
                .map(|i| if i % 2 == 0 { b'a' } else { b'b' })
                .collect();
            with_query(&query)[TxFeature::Entropy]
        };
        for n in [ENTROPY_TABLE, ENTROPY_TABLE + 2] {
            assert!((two(n) - 1.0).abs() < 1e-12, "{n}: {}", two(n));
        }
    }

    #[test]
    fn percent_encoded_share_counts_decoded_characters() {
        // Two of the four decoded characters were encoded.
        assert_eq!(with_query(b"%41%42cd")[TxFeature::PercentEncoded], 0.5);
        assert_eq!(with_query(b"%2F%2f")[TxFeature::PercentEncoded], 1.0);
        // Not triples: a bad digit, a truncated one.
        assert_eq!(with_query(b"%zz%4")[TxFeature::PercentEncoded], 0.0);
        assert_eq!(with_query(b"abc")[TxFeature::PercentEncoded], 0.0);
        let f = extract(&TxInput {
            query: b"a=%27",
            request_body: b"b=%3C",
            ..TxInput::default()
        });
        assert!((f[TxFeature::PercentEncoded] - 2.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn class_shares_hold_past_one_packed_counter_span() {
        // Over 1023 bytes of one class: the packed counter is emptied between spans.
        let query: Vec<u8> = (0..5000u32)
            .map(|i| {
                if i % 7 == 0 {
                    b'%'
                } else {
                    b'a' + (i % 26) as u8
                }
            })
            .collect();
        let f = extract(&TxInput {
            query: &query,
            ..TxInput::default()
        });
        let specials = query.iter().filter(|&&b| b == b'%').count() as f64;
        assert_eq!(f[TxFeature::Special], specials / 5000.0);
        assert_eq!(f[TxFeature::Letters], (5000.0 - specials) / 5000.0);
        let want: f64 = {
            let mut counts = [0usize; 256];
            query.iter().for_each(|&b| counts[usize::from(b)] += 1);
            counts
                .iter()
                .filter(|&&c| c > 0)
                .map(|&c| {
                    let p = c as f64 / 5000.0;
                    -p * p.log2()
                })
                .sum()
        };
        assert!((f[TxFeature::Entropy] - want).abs() < 1e-9);
    }

    proptest::proptest! {
        #[test]
        fn extract_is_finite_and_non_negative(
            path in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            query in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..5000),
            numbers in proptest::array::uniform8(proptest::num::u64::ANY),
            status in proptest::option::of(proptest::num::u16::ANY),
            small in proptest::array::uniform3(proptest::num::u32::ANY),
        ) {
            let f = extract(&TxInput {
                method: b"GET",
                path: &path,
                query: &query,
                request_headers: numbers[0] as usize,
                request_head_bytes: numbers[1],
                request_body: &body,
                request_body_len: numbers[2],
                response_body_len: numbers[3],
                status,
                latency_ns: Some(numbers[4]).filter(|n| n % 3 != 0),
                body_depth: small[0],
                cookies: numbers[5] as usize,
                unseen_params: small[1],
                unseen_fields: small[2],
            });
            for (feature, value) in f.iter() {
                proptest::prop_assert!(value.is_finite() && value >= 0.0, "{:?} = {}", feature, value);
            }
            for share in [TxFeature::Letters, TxFeature::Special, TxFeature::NonAscii, TxFeature::PercentEncoded] {
                proptest::prop_assert!(f[share] <= 1.0);
            }
            proptest::prop_assert!(f[TxFeature::Entropy] <= 8.0);
        }

        #[test]
        fn class_shares_and_entropy_equal_a_plain_count(
            // Few distinct bytes and long runs, as well as all 256: repeats are the hard case.
            query in proptest::collection::vec(proptest::sample::select(vec![b'a', b'1', b'%', b' ', 0xc3, b'=']), 0..400),
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..700),
        ) {
            let f = extract(&TxInput { query: &query, request_body: &body, ..TxInput::default() });
            let sample: Vec<u8> = query.iter().chain(body.iter().take(BODY_SAMPLE)).copied().collect();
            if sample.is_empty() {
                return Ok(());
            }
            let mut counts = std::collections::BTreeMap::new();
            for &b in &sample {
                *counts.entry(b).or_insert(0usize) += 1;
            }
            let n = sample.len() as f64;
            for class in CLASS_FEATURES {
                let want = sample.iter().filter(|&&b| CLASS_OF[usize::from(b)] == class).count() as f64 / n;
                proptest::prop_assert_eq!(f[class], want, "{:?}", class);
            }
            let want: f64 = counts.values().map(|&c| { let p = c as f64 / n; -p * p.log2() }).sum();
            proptest::prop_assert!((f[TxFeature::Entropy] - want.clamp(0.0, 8.0)).abs() < 1e-9,
                "{} vs {}", f[TxFeature::Entropy], want);
        }
    }
}
