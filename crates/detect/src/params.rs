//! Per-endpoint, per-parameter models of request values, after Kruegel and Vigna, "Anomaly
//! Detection of Web-based Attacks" (CCS 2003) and Kruegel, Vigna and Robertson, "A multi-model
//! approach to the detection of web-based attacks" (Computer Networks 48(5), 2005):
//!
//! - **length**: mean and variance of the value's length; the Chebyshev bound
//!   P(|X − μ| ≥ |l − μ|) ≤ σ² / (l − μ)² says how surprising a length is;
//! - **character distribution**: the idealised character distribution (relative byte
//!   frequencies, sorted) against the value's, by a χ² statistic over six bins;
//! - **alphabet**: the bytes the parameter has used; a value with bytes it never used (a quote
//!   in a number, `<` in a name) is suspicious;
//! - **enumeration** (the papers' token finder): a parameter that only ever takes a few values
//!   is enumerated, and any other value is an anomaly;
//! - **presence**: the names an endpoint takes; an unseen name, or an endpoint never seen, is
//!   news.
//!
//! Streaming: every statistic is updated in O(value) per value with exponential forgetting (a
//! horizon of [`HORIZON`] samples) so the model follows drift. Bounded: endpoints and names per
//! endpoint are capped ([`ParamLimits`]). The caller decides what is learnt (not what alerted).

use std::cell::OnceCell;

use serde::{Deserialize, Serialize};

use features::entity::key_hash;

use crate::table::Table;

/// Samples after which old ones weigh less than new ones (exponential forgetting).
pub const HORIZON: f64 = 20_000.0;
/// Samples of a parameter before its statistics are trusted.
pub const MIN_SAMPLES: f64 = 8.0;
/// Values remembered for enumeration; past this a parameter is free-form.
const MAX_TOKENS: usize = 24;
/// Distinct byte values are counted until this many uses; one use of a byte is not enough to
/// trust it (a poisoned training sample would teach the alphabet of an attack).
const BYTE_TRUST: u16 = 2;

#[derive(Clone, Copy, Debug)]
pub struct ParamLimits {
    pub max_endpoints: usize,
    pub max_params: usize,
}

impl Default for ParamLimits {
    fn default() -> Self {
        ParamLimits {
            max_endpoints: 10_000,
            max_params: 48,
        }
    }
}

/// What was found odd about one value, each a non-negative score (≈ −ln of a probability).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ValueScore {
    pub length: f64,
    pub characters: f64,
    pub alphabet: f64,
    pub enumeration: f64,
}

impl ValueScore {
    pub fn total(&self) -> f64 {
        self.length + self.characters + self.alphabet + self.enumeration
    }
}

/// The model of one parameter of one endpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ParamModel {
    pub name: Box<str>,
    /// Weighted sample count (saturates near [`HORIZON`]).
    pub n: f64,
    len_mean: f64,
    len_var: f64,
    /// Mean of the sorted relative byte frequencies, six bins.
    icd: [f64; 6],
    /// Uses of each byte value, saturating at [`BYTE_TRUST`].
    #[serde(with = "byte_counts")]
    bytes: [u16; 256],
    /// Hashes of the values seen while few; `None` once the parameter proved free-form.
    tokens: Option<Vec<u64>>,
    /// Learnt values that brought a byte the parameter had not used before: how open its
    /// alphabet still is (a Good-Turing estimate of meeting a new byte).
    #[serde(default)]
    new_byte_values: f64,
}

/// Classes of bytes: a new byte of a class the parameter already uses (another accented
/// letter in a name) says less than a byte of a class it never used (a quote in a number).
fn class_of(b: u8) -> usize {
    match b {
        b'a'..=b'z' | b'A'..=b'Z' => 0,
        b'0'..=b'9' => 1,
        b' ' | b'\t' => 2,
        b'<' | b'>' | b'\'' | b'"' | b';' | b'(' | b')' | b'`' | b'|' | b'&' | b'$' | b'{'
        | b'}' | b'\\' | b'%' | b'*' | b'=' => 3,
        0x80..=0xff => 4,
        0x00..=0x1f | 0x7f => 5,
        _ => 6,
    }
}

/// Six bins of the sorted character distribution, as in the paper: the first byte value, the
/// next three, the next three, the next five, the next four, and the rest.
/// A parameter as scored and learnt: name, decoded value, and where its character distribution
/// is kept between scoring and learning (computed once), if anywhere.
pub type ParamItem<'a> = (&'a str, &'a [u8], Option<&'a OnceCell<[f64; 6]>>);

/// Values up to this long are sorted to count their bytes.
const SHORT_VALUE: usize = 64;

const ICD_BINS: [(usize, usize); 6] = [(0, 1), (1, 4), (4, 7), (7, 12), (12, 16), (16, 256)];

fn icd(value: &[u8]) -> [f64; 6] {
    // The counts of the used byte values, sorted descending. A short value (most are) is
    // sorted itself and run-length counted; a long one is counted in a table.
    let mut used = [0u32; 256];
    let mut n = 0;
    if value.len() <= SHORT_VALUE {
        let mut sorted = [0u8; SHORT_VALUE];
        let sorted = &mut sorted[..value.len()];
        sorted.copy_from_slice(value);
        sorted.sort_unstable();
        for run in sorted.chunk_by(|a, b| a == b) {
            used[n] = run.len() as u32;
            n += 1;
        }
    } else {
        let mut counts = [0u32; 256];
        for &b in value {
            counts[usize::from(b)] += 1;
        }
        for &c in counts.iter().filter(|&&c| c > 0) {
            used[n] = c;
            n += 1;
        }
    }
    let used = &mut used[..n];
    // Past the sixteenth largest count only the sum matters: order the top sixteen alone.
    if used.len() > 16 {
        used.select_nth_unstable_by(15, |a, b| b.cmp(a));
        used[..16].sort_unstable_by(|a, b| b.cmp(a));
    } else {
        used.sort_unstable_by(|a, b| b.cmp(a));
    }
    let total = value.len().max(1) as f64;
    let mut out = [0.0; 6];
    for (bin, (from, to)) in ICD_BINS.iter().enumerate() {
        let sum: u32 = used.iter().skip(*from).take(to.saturating_sub(*from)).sum();
        out[bin] = f64::from(sum) / total;
    }
    out
}

impl ParamModel {
    fn new(name: &str) -> Self {
        ParamModel {
            name: name.into(),
            n: 0.0,
            len_mean: 0.0,
            len_var: 0.0,
            icd: [0.0; 6],
            bytes: [0; 256],
            tokens: Some(Vec::new()),
            new_byte_values: 0.0,
        }
    }

    pub fn trusted(&self) -> bool {
        self.n >= MIN_SAMPLES
    }

    /// Learns one value.
    pub fn learn(&mut self, value: &[u8]) {
        self.learn_with(value, &OnceCell::new());
    }

    /// [`learn`](Self::learn) with the value's character distribution held in `dist` (worked
    /// out there if it is not yet).
    pub fn learn_with(&mut self, value: &[u8], dist: &OnceCell<[f64; 6]>) {
        let weight = 1.0 / (self.n + 1.0).min(HORIZON);
        let len = value.len() as f64;
        // Robust update: a length far outside what was seen moves the mean by a bounded step.
        let len = if self.trusted() {
            let sd = self.len_var.sqrt().max(1.0);
            len.clamp(self.len_mean - 6.0 * sd, self.len_mean + 6.0 * sd)
        } else {
            len
        };
        let delta = len - self.len_mean;
        self.len_mean += weight * delta;
        self.len_var = (1.0 - weight) * (self.len_var + weight * delta * delta);
        let dist = *dist.get_or_init(|| icd(value));
        for (m, v) in self.icd.iter_mut().zip(dist) {
            *m += weight * (v - *m);
        }
        let mut brought_new = false;
        for &b in value {
            let c = &mut self.bytes[usize::from(b)];
            brought_new |= *c == 0;
            *c = (*c + 1).min(BYTE_TRUST);
        }
        self.new_byte_values =
            self.new_byte_values * (1.0 - weight) + f64::from(u8::from(brought_new));
        if let Some(tokens) = &mut self.tokens {
            let h = key_hash(value);
            if !tokens.contains(&h) {
                if tokens.len() >= MAX_TOKENS {
                    self.tokens = None;
                } else {
                    tokens.push(h);
                }
            }
        }
        self.n = (self.n + 1.0).min(HORIZON);
    }

    /// How surprising `value` is; all zero until the parameter is trusted.
    pub fn score(&self, value: &[u8]) -> ValueScore {
        self.score_with(value, &OnceCell::new())
    }

    /// [`score`](Self::score) with the value's character distribution held in `dist`.
    pub fn score_with(&self, value: &[u8], dist: &OnceCell<[f64; 6]>) -> ValueScore {
        if !self.trusted() {
            return ValueScore::default();
        }
        let len = value.len() as f64;
        // Chebyshev: P ≤ σ²/(l − μ)². The variance gets a floor so a parameter that always had
        // one length does not make a length one longer impossible.
        let var = self.len_var + 0.25 * self.len_mean + 1.0;
        let dev = len - self.len_mean;
        let length = if dev * dev > var {
            (dev * dev / var).ln() * if dev > 0.0 { 1.0 } else { 0.5 }
        } else {
            0.0
        };

        // χ² of the value's sorted distribution against the idealised one, in counts.
        let observed = *dist.get_or_init(|| icd(value));
        let mut chi2 = 0.0;
        for (o, e) in observed.iter().zip(self.icd) {
            let (o, e) = (o * len, e * len);
            if e > 0.0 {
                chi2 += (o - e) * (o - e) / e;
            } else if o > 0.0 {
                chi2 += o * o;
            }
        }
        // 11.07 is the 95th percentile of χ² with five degrees of freedom. A short value has
        // too few characters for the test to say much: its weight grows with the length.
        let characters = ((chi2 - 11.07) / 8.0).clamp(0.0, 4.0) * (len / 24.0).min(1.0);

        // −ln of the chance that a normal value brings a new byte, per new byte (a few count
        // for more, with diminishing weight); a class never used weighs double.
        let mut alphabet = 0.0;
        let mut novel_bytes = 0u32;
        let mut novel = [0u64; 4];
        // Worked out at the first new byte: most values bring none.
        let mut context: Option<([bool; 7], f64)> = None;
        for &b in value {
            let (word, bit) = (usize::from(b >> 6), 1u64 << (b & 63));
            if self.bytes[usize::from(b)] < BYTE_TRUST && novel[word] & bit == 0 {
                novel[word] |= bit;
                let (classes_used, surprise) = *context.get_or_insert_with(|| {
                    let mut classes_used = [false; 7];
                    for (b, &c) in self.bytes.iter().enumerate() {
                        if c >= BYTE_TRUST {
                            classes_used[class_of(b as u8)] = true;
                        }
                    }
                    let p_new = (self.new_byte_values + 0.5) / (self.n + 1.0);
                    (classes_used, -p_new.ln())
                });
                // Another letter or digit where letters or digits are used is no news; other
                // punctuation where some is used is some.
                let class = class_of(b);
                let weight = match (classes_used[class], class) {
                    (false, _) => 1.0,
                    (true, 0 | 1 | 4) => 0.1,
                    (true, _) => 0.5,
                };
                alphabet += weight * surprise / f64::from(1 + novel_bytes);
                novel_bytes += 1;
            }
        }

        // A parameter that took a few values many times is an enumeration; one that only ever
        // took one value is a constant that may well change (a date, a version): not news.
        let enumeration = match &self.tokens {
            Some(tokens) if tokens.len() >= 2 && self.n >= 4.0 * tokens.len() as f64 + 16.0 => {
                if tokens.contains(&key_hash(value)) {
                    0.0
                } else {
                    3.0
                }
            }
            _ => 0.0,
        };
        ValueScore {
            length,
            characters,
            alphabet,
            enumeration,
        }
    }
}

mod byte_counts {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[u16; 256], s: S) -> Result<S::Ok, S::Error> {
        v.as_slice().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u16; 256], D::Error> {
        let v = Vec::<u16>::deserialize(d)?;
        let mut out = [0u16; 256];
        for (o, x) in out.iter_mut().zip(v) {
            *o = x;
        }
        Ok(out)
    }
}

/// The model of one endpoint: its parameters and how often it was seen.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EndpointModel {
    pub samples: f64,
    pub params: Vec<ParamModel>,
    /// Names past the per-endpoint cap, counted.
    pub overflow: u64,
}

impl EndpointModel {
    fn find(&self, name: &str) -> Option<&ParamModel> {
        self.params.iter().find(|p| &*p.name == name)
    }
}

/// One parameter's contribution to a request's score.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamFinding {
    pub name: String,
    pub score: ValueScore,
    /// The parameter was never seen on this endpoint.
    pub unseen: bool,
}

/// How surprising a request's endpoint and parameters are.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestScore {
    /// The endpoint was never (or hardly ever) seen.
    pub novel_endpoint: f64,
    pub params: Vec<ParamFinding>,
}

impl RequestScore {
    pub fn params_total(&self) -> f64 {
        self.params
            .iter()
            .map(|p| p.score.total() + if p.unseen { UNSEEN_PARAM } else { 0.0 })
            .sum::<f64>()
            .min(60.0)
    }

    pub fn total(&self) -> f64 {
        self.novel_endpoint + self.params_total()
    }
}

/// Score of a parameter name an established endpoint never took.
pub const UNSEEN_PARAM: f64 = 8.0;
/// Requests to an endpoint before it is established.
const ENDPOINT_MATURE: f64 = 20.0;

/// All endpoints' parameter models.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ParamModels {
    limits_params: usize,
    endpoints: Table<EndpointModel>,
    /// Requests learnt in all.
    pub learnt: u64,
}

impl ParamModels {
    pub fn new(limits: ParamLimits) -> Self {
        ParamModels {
            limits_params: limits.max_params,
            endpoints: Table::new(limits.max_endpoints),
            learnt: 0,
        }
    }

    pub fn endpoints(&self) -> usize {
        self.endpoints.len()
    }

    pub fn evicted(&self) -> u64 {
        self.endpoints.evicted()
    }

    /// Scores a request to `endpoint` (a hash of its route) with `params` (name, decoded value).
    pub fn score<N: AsRef<str>, V: AsRef<[u8]>>(
        &self,
        endpoint: u64,
        params: &[(N, V)],
    ) -> RequestScore {
        self.score_iter(
            endpoint,
            params.iter().map(|(n, v)| (n.as_ref(), v.as_ref(), None)),
        )
    }

    /// [`score`](Self::score) over any sequence of (name, decoded value, where to keep its
    /// character distribution for [`learn_iter`](Self::learn_iter)).
    pub fn score_iter<'a>(
        &self,
        endpoint: u64,
        params: impl Iterator<Item = ParamItem<'a>>,
    ) -> RequestScore {
        let mut out = RequestScore::default();
        let model = self.endpoints.get(endpoint);
        let samples = model.map_or(0.0, |m| m.samples);
        // An endpoint nobody used in a mature model is news; a young model knows little.
        if self.learnt >= 200 && samples < 3.0 {
            out.novel_endpoint = if samples == 0.0 { 8.0 } else { 5.0 };
        }
        let Some(model) = model else {
            return out;
        };
        for (name, value, dist) in params {
            match model.find(name) {
                Some(p) => {
                    let score = match dist {
                        Some(d) => p.score_with(value, d),
                        None => p.score(value),
                    };
                    if score.total() > 0.0 {
                        out.params.push(ParamFinding {
                            name: name.to_string(),
                            score,
                            unseen: false,
                        });
                    }
                }
                None if model.samples >= ENDPOINT_MATURE
                    && model.params.len() < self.limits_params =>
                {
                    out.params.push(ParamFinding {
                        name: name.to_string(),
                        score: ValueScore::default(),
                        unseen: true,
                    });
                }
                None => {}
            }
        }
        out
    }

    pub fn learn<N: AsRef<str>, V: AsRef<[u8]>>(&mut self, endpoint: u64, params: &[(N, V)]) {
        self.learn_iter(
            endpoint,
            params.iter().map(|(n, v)| (n.as_ref(), v.as_ref(), None)),
        );
    }

    /// [`learn`](Self::learn) over any sequence of (name, decoded value).
    pub fn learn_iter<'a>(&mut self, endpoint: u64, params: impl Iterator<Item = ParamItem<'a>>) {
        self.learnt += 1;
        let max = self.limits_params;
        let model = self.endpoints.entry(endpoint, EndpointModel::default);
        model.samples = (model.samples + 1.0).min(HORIZON);
        for (name, value, dist) in params {
            let slot = match model.params.iter().position(|p| &*p.name == name) {
                Some(i) => i,
                None if model.params.len() < max => {
                    model.params.push(ParamModel::new(name));
                    model.params.len() - 1
                }
                None => {
                    model.overflow += 1;
                    continue;
                }
            };
            match dist {
                Some(d) => model.params[slot].learn_with(value, d),
                None => model.params[slot].learn(value),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trained(values: &[&str]) -> ParamModel {
        let mut p = ParamModel::new("x");
        for v in values.iter().cycle().take(200) {
            p.learn(v.as_bytes());
        }
        p
    }

    #[test]
    fn the_character_distribution_matches_a_full_sort_of_the_counts() {
        // Short values are sorted to count their bytes; the counts must be the table's.
        let mut state = 0x1234_5678u64;
        // Few and many distinct bytes (past sixteen only the top sixteen are ordered), short
        // values (sorted) and long ones (counted in a table).
        let alphabets: [&[u8]; 2] = [b"aab0--%'x", b"abcdefghijklmnopqrstuvwxyz0123456789-_%'"];
        for (len, alphabet) in (0..=3 * SHORT_VALUE).flat_map(|l| alphabets.map(|a| (l, a))) {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let value: Vec<u8> = (0..len)
                .map(|i| {
                    let r = state.rotate_left((i % 64) as u32) ^ (i as u64).wrapping_mul(0x9e37);
                    alphabet[r as usize % alphabet.len()]
                })
                .collect();
            let mut counts = [0u32; 256];
            for &b in &value {
                counts[usize::from(b)] += 1;
            }
            let mut used: Vec<u32> = counts.iter().copied().filter(|&c| c > 0).collect();
            used.sort_unstable_by(|a, b| b.cmp(a));
            let mut expected = [0.0; 6];
            for (bin, (from, to)) in ICD_BINS.iter().enumerate() {
                let sum: u32 = used.iter().skip(*from).take(to - from).sum();
                expected[bin] = f64::from(sum) / len.max(1) as f64;
            }
            assert_eq!(icd(&value), expected, "{value:?}");
        }
        let long = vec![b'z'; SHORT_VALUE + 1];
        assert_eq!(icd(&long), [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn a_quote_in_a_number_is_an_alphabet_anomaly() {
        let p = trained(&["12", "7", "130", "42", "9"]);
        assert_eq!(p.score(b"13").alphabet, 0.0);
        // A digit it never used is no news in a number; a quote is.
        assert!(p.score(b"55").alphabet < 1.0);
        assert!(p.score(b"5' or 1=1--").alphabet > 3.0);
    }

    #[test]
    fn a_long_value_is_a_length_anomaly_and_a_usual_one_is_not() {
        let p = trained(&["alice", "bob", "carol", "dave", "eve", "mallory", "trent"]);
        assert_eq!(p.score(b"oscar").length, 0.0);
        let long = "a".repeat(400);
        assert!(p.score(long.as_bytes()).length > 5.0);
    }

    #[test]
    fn an_enumerated_parameter_flags_a_new_value() {
        let p = trained(&["asc", "desc"]);
        assert_eq!(p.score(b"asc").enumeration, 0.0);
        assert!(p.score(b"dsc").enumeration > 0.0);
        // Free-form parameters are not enumerated.
        let names: Vec<String> = (0..100).map(|i| format!("n{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let free = trained(&refs);
        assert_eq!(free.score(b"n1000").enumeration, 0.0);
    }

    #[test]
    fn a_skewed_character_distribution_scores() {
        let p = trained(&[
            "hello world",
            "good morning",
            "kind regards",
            "see you soon",
        ]);
        let normal = p.score(b"many thanks").characters;
        let skewed = p
            .score(b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .characters;
        assert!(skewed > normal, "{skewed} vs {normal}");
    }

    #[test]
    fn unseen_names_and_endpoints_are_news_once_mature() {
        let mut m = ParamModels::new(ParamLimits::default());
        let params = vec![("id".to_string(), b"1".to_vec())];
        for _ in 0..300 {
            m.learn(1, &params);
        }
        let s = m.score(1, &[("id", &b"2"[..]), ("debug", &b"1"[..])]);
        assert_eq!(s.novel_endpoint, 0.0);
        assert!(s.params.iter().any(|p| p.name == "debug" && p.unseen));
        assert!(m.score(2, &params).novel_endpoint > 0.0);
    }

    #[test]
    fn endpoints_and_names_stay_bounded() {
        let mut m = ParamModels::new(ParamLimits {
            max_endpoints: 16,
            max_params: 4,
        });
        for e in 0..100u64 {
            let params: Vec<(String, Vec<u8>)> =
                (0..10).map(|i| (format!("p{i}"), b"v".to_vec())).collect();
            m.learn(e, &params);
        }
        assert_eq!(m.endpoints(), 16);
        assert_eq!(m.evicted(), 84);
    }
}
