//! The canonical alert record (RECORDS.md §2): typed, serialized as the canonical JSON that
//! `--alerts` writes by default, and read back by tests and the spool. [`crate::siem`] turns it
//! into SIEM formats. Times are packet time in nanoseconds, written as RFC 3339 with
//! microseconds (so a read-back time is truncated to the microsecond).

use std::net::IpAddr;

use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// One revision of an alert. Field names and nesting are a public interface.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Deterministic id of this revision ([`alert_id`]): a resend carries the same id.
    pub alert_id: String,
    /// One alert per key per window: later revisions update it rather than repeat it.
    pub dedup_key: String,
    pub lifecycle: Lifecycle,
    /// Occurrences folded into this alert so far.
    pub count: u64,
    /// Packet time of this revision, nanoseconds since the Unix epoch.
    #[serde(with = "packet_time")]
    pub time: u64,
    #[serde(with = "packet_time")]
    pub first_seen: u64,
    #[serde(with = "packet_time")]
    pub last_seen: u64,
    pub detector: Detector,
    pub severity: Severity,
    /// 0–1.
    #[serde(serialize_with = "num")]
    pub confidence: f64,
    /// One line a person can act on.
    pub title: String,
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attack: Option<Attack>,
    #[serde(default)]
    pub client: Client,
    #[serde(default)]
    pub server: Server,
    #[serde(default)]
    pub http: Http,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
    /// E.g. rate-limit the client at the gateway, revoke the token, review the endpoint's auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_action: Option<String>,
    /// The transaction records that triggered it.
    #[serde(default)]
    pub evidence: Vec<EvidenceRef>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    Create,
    Update,
    Close,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Create => "create",
            Lifecycle::Update => "update",
            Lifecycle::Close => "close",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detector {
    pub id: String,
    pub name: String,
    pub kind: DetectorKind,
    pub version: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DetectorKind {
    Rule,
    Statistical,
    Ml,
}

impl DetectorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DetectorKind::Rule => "rule",
            DetectorKind::Statistical => "statistical",
            DetectorKind::Ml => "ml",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Severity {
    pub level: Level,
    /// 0–100.
    pub score: u8,
}

impl Severity {
    /// The level of a score by the bands of RECORDS.md §2; scores above 100 count as 100.
    pub fn from_score(score: u8) -> Severity {
        let score = score.min(100);
        Severity {
            level: Level::from_score(score),
            score,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Level {
    /// 0–19 info, 20–39 low, 40–69 medium, 70–89 high, 90–100 critical.
    pub fn from_score(score: u8) -> Level {
        match score {
            0..=19 => Level::Info,
            20..=39 => Level::Low,
            40..=69 => Level::Medium,
            70..=89 => Level::High,
            _ => Level::Critical,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }
}

/// OWASP API Security Top 10 id and MITRE ATT&CK technique, where they apply.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attack {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owasp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mitre: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Keyed hash of the credential or subject (never the secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Host the requests were addressed to (Host header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// The triggering transaction(s).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Http {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Endpoint template, e.g. `GET /api/v1/users/{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Request target, redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// Why: observed against baseline, and the features that weighed most.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    #[serde(serialize_with = "num")]
    pub score: f64,
    #[serde(serialize_with = "num")]
    pub threshold: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
    #[serde(default)]
    pub contributions: Vec<Contribution>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    /// What the baseline is kept for (e.g. `client`, `endpoint`, `reference_spec`).
    pub scope: String,
    pub key: String,
    /// E.g. `1h`, `all`.
    pub window: String,
    pub samples: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    pub feature: String,
    #[serde(serialize_with = "num")]
    pub value: f64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_num"
    )]
    pub expected: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_num"
    )]
    pub p50: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_num"
    )]
    pub p99: Option<f64>,
    /// Share of the score this feature accounts for, 0–1.
    #[serde(serialize_with = "num")]
    pub share: f64,
}

/// A link to a transaction record (`mirador.flow.uid`, `mirador.tx.index`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceRef {
    pub flow_uid: String,
    pub tx_index: u32,
}

/// Deterministic id of one revision of an alert: hex of the first 16 bytes of
/// SHA-256(`dedup_key` ‖ `revision` as 8 big-endian bytes). The inventory's shadow-endpoint
/// alerts use their call count as the revision.
pub fn alert_id(dedup_key: &str, revision: u64) -> String {
    let mut h = Sha256::new();
    h.update(dedup_key.as_bytes());
    h.update(revision.to_be_bytes());
    hex(&h.finalize()[..16])
}

/// Id of the alert across its revisions: hex of the first 16 bytes of SHA-256(`dedup_key`).
/// Formats that track a finding's lifecycle (OCSF `finding_info.uid`) need an id that an
/// update shares with its create.
pub fn finding_id(dedup_key: &str) -> String {
    hex(&Sha256::digest(dedup_key.as_bytes())[..16])
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Largest magnitude below which every integer is exactly an `f64`.
const EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// Whole numbers are written without a fraction (`40`, not `40.0`), as the inventory's
/// alerts always did; other numbers as the shortest `f64` that reads back the same.
fn num<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < EXACT_INT {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

fn opt_num<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => num(v, s),
        None => s.serialize_none(),
    }
}

/// Packet time as RFC 3339 text.
mod packet_time {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ns: &u64, s: S) -> Result<S::Ok, S::Error> {
        let mut b = Vec::with_capacity(27);
        crate::time::rfc3339_micros(&mut b, wire::Timestamp(*ns));
        s.serialize_str(std::str::from_utf8(&b).unwrap_or_default())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_rfc3339(&s)
            .ok_or_else(|| D::Error::custom(format!("not an RFC 3339 time after 1970: {s:?}")))
    }
}

/// Nanoseconds since the Unix epoch of an RFC 3339 date-time (`Z` or a numeric offset, up to
/// nine fraction digits, more are cut); `None` when malformed or before 1970.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let digits = |from: usize, to: usize| -> Option<i64> {
        b.get(from..to)?.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let at = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(at(4, b"-") && at(7, b"-") && at(10, b"Tt") && at(13, b":") && at(16, b":")) {
        return None;
    }
    let (y, mo, d) = (digits(0, 4)?, digits(5, 7)?, digits(8, 10)?);
    let (h, mi, sec) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
    let mut i = 19;
    let mut nanos: u64 = 0;
    if at(i, b".") {
        i += 1;
        let start = i;
        while at(i, b"0123456789") {
            if i - start < 9 {
                nanos = nanos * 10 + u64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        nanos *= 10u64.pow(9 - n.min(9) as u32);
    }
    let offset = if at(i, b"Zz") && b.len() == i + 1 {
        0
    } else if at(i, b"+-") && b.len() == i + 6 && at(i + 3, b":") {
        let (oh, om) = (digits(i + 1, i + 3)?, digits(i + 4, i + 6)?);
        if oh > 23 || om > 59 {
            return None;
        }
        let o = oh * 3600 + om * 60;
        if b[i] == b'-' {
            -o
        } else {
            o
        }
    } else {
        return None;
    };
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d < 1 || d > month_days[(mo - 1) as usize] {
        return None;
    }
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    u64::try_from(secs)
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(nanos)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Alerts the tests of this crate share: a rich one with hostile strings, a minimal one and a
/// closing one.
#[cfg(test)]
pub(crate) mod samples {
    use super::*;

    /// 2023-11-14T22:13:20Z.
    pub const T0: u64 = 1_700_000_000_000_000_000;

    pub fn rich() -> Alert {
        let dedup_key = "model.request_rate|10.0.0.7|GET /api/v1/users/{id}".to_string();
        Alert {
            alert_id: alert_id(&dedup_key, 3),
            dedup_key,
            lifecycle: Lifecycle::Update,
            count: 3,
            time: T0 + 120_123_456_000,
            first_seen: T0 + 1_000,
            last_seen: T0 + 120_123_456_000,
            detector: Detector {
                id: "model.request_rate".into(),
                name: "Request rate | per client=endpoint".into(),
                kind: DetectorKind::Statistical,
                version: 2,
            },
            severity: Severity::from_score(82),
            confidence: 0.87,
            title: "Unusual rate | GET /api/v1/users/{id} = 40x \\ baseline ] \"quoted\" ^caret"
                .into(),
            summary: "Client 10.0.0.7 sent 412 requests in 60 s;\r\nbaseline p99 is 9.\tTab, café ☃ 𝄞 and a bell \u{7}."
                .into(),
            attack: Some(Attack {
                owasp: Some("API4:2023 Unrestricted Resource Consumption".into()),
                mitre: Some("T1499.003".into()),
            }),
            client: Client {
                ip: Some("10.0.0.7".parse().expect("ip")),
                port: Some(51234),
                identity: Some("9f2c1e0a7b3d4c5e6f708192a3b4c5d6".into()),
                user_agent: Some("curl/8 \"x\"\r\nX-Injected: a=b|c\\d]".into()),
            },
            server: Server {
                ip: Some("2001:db8::1".parse().expect("ip")),
                port: Some(8443),
                host: Some("api.example.com:8443".into()),
            },
            http: Http {
                method: Some("GET".into()),
                route: Some("GET /api/v1/users/{id}".into()),
                url: Some("/api/v1/users/12?token=REDACTED&q=a|b=c^d\\e]".into()),
                status: Some(200),
            },
            explanation: Some(Explanation {
                score: 8.25,
                threshold: 4.0,
                baseline: Some(Baseline {
                    scope: "client_endpoint".into(),
                    key: "10.0.0.7|GET /api/v1/users/{id}".into(),
                    window: "1h".into(),
                    samples: 1440,
                }),
                contributions: vec![
                    Contribution {
                        feature: "requests_per_minute".into(),
                        value: 412.0,
                        expected: Some(6.5),
                        p50: Some(5.0),
                        p99: Some(9.0),
                        share: 0.71,
                    },
                    Contribution {
                        feature: "distinct_ids_per_minute".into(),
                        value: 398.0,
                        expected: Some(2.0),
                        p50: Some(1.0),
                        p99: Some(4.0),
                        share: 0.24,
                    },
                    Contribution {
                        feature: "error_ratio".into(),
                        value: 0.02,
                        expected: None,
                        p50: Some(0.0),
                        p99: Some(0.01),
                        share: 0.05,
                    },
                ],
            }),
            recommended_action: Some(
                "Rate-limit 10.0.0.7 at the gateway;\nreview object-level auth = \"BOLA\"".into(),
            ),
            evidence: vec![
                EvidenceRef {
                    flow_uid: "C1a2b3".into(),
                    tx_index: 0,
                },
                EvidenceRef {
                    flow_uid: "C1a2b3".into(),
                    tx_index: 411,
                },
            ],
        }
    }

    pub fn minimal() -> Alert {
        let dedup_key = "rule.te_cl_conflict|192.0.2.1".to_string();
        Alert {
            alert_id: alert_id(&dedup_key, 1),
            dedup_key,
            lifecycle: Lifecycle::Create,
            count: 1,
            time: T0,
            first_seen: T0,
            last_seen: T0,
            detector: Detector {
                id: "rule.te_cl_conflict".into(),
                name: "Request smuggling vector".into(),
                kind: DetectorKind::Rule,
                version: 1,
            },
            severity: Severity::from_score(45),
            confidence: 1.0,
            title: "Transfer-Encoding and Content-Length together".into(),
            summary: String::new(),
            attack: None,
            client: Client::default(),
            server: Server::default(),
            http: Http::default(),
            explanation: None,
            recommended_action: None,
            evidence: Vec::new(),
        }
    }

    pub fn closed() -> Alert {
        let dedup_key = "ml.sequence|user:5e1d|POST /api/v1/orders".to_string();
        Alert {
            alert_id: alert_id(&dedup_key, 17),
            dedup_key,
            lifecycle: Lifecycle::Close,
            count: 17,
            time: T0 + 3_600_000_000_000,
            first_seen: T0 + 60_000_000_000,
            last_seen: T0 + 1_800_000_000_000,
            detector: Detector {
                id: "ml.sequence".into(),
                name: "Unusual call sequence".into(),
                kind: DetectorKind::Ml,
                version: 7,
            },
            severity: Severity::from_score(95),
            confidence: 0.6,
            title: "Order flow out of sequence for one identity".into(),
            summary: "17 orders were posted without the cart and payment calls that precede them."
                .into(),
            attack: Some(Attack {
                owasp: Some("API6:2023 Unrestricted Access to Sensitive Business Flows".into()),
                mitre: None,
            }),
            client: Client {
                ip: Some("198.51.100.20".parse().expect("ip")),
                port: None,
                identity: Some("5e1d00aa".into()),
                user_agent: None,
            },
            server: Server {
                ip: Some("203.0.113.5".parse().expect("ip")),
                port: Some(80),
                host: Some("shop.example".into()),
            },
            http: Http {
                method: Some("POST".into()),
                route: Some("POST /api/v1/orders".into()),
                url: Some("/api/v1/orders".into()),
                status: Some(201),
            },
            explanation: Some(Explanation {
                score: 0.97,
                threshold: 0.9,
                baseline: None,
                contributions: Vec::new(),
            }),
            recommended_action: Some("Review the identity's recent orders.".into()),
            evidence: vec![EvidenceRef {
                flow_uid: "Cff".into(),
                tx_index: 2,
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::samples::*;
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn severity_bands_at_their_boundaries() {
        let cases = [
            (0, Level::Info),
            (19, Level::Info),
            (20, Level::Low),
            (39, Level::Low),
            (40, Level::Medium),
            (69, Level::Medium),
            (70, Level::High),
            (89, Level::High),
            (90, Level::Critical),
            (100, Level::Critical),
        ];
        for (score, level) in cases {
            assert_eq!(Severity::from_score(score).level, level, "score {score}");
            assert_eq!(Severity::from_score(score).score, score);
        }
        assert_eq!(
            Severity::from_score(250),
            Severity {
                level: Level::Critical,
                score: 100
            }
        );
    }

    #[test]
    fn alert_id_is_deterministic_and_agrees_with_the_inventory() {
        let key = "inventory.shadow_endpoint|api.example.com|GET|/api/v1/users/{id}";
        // Reference values computed outside Rust (Python hashlib: sha256(key + pack(">Q", n))).
        assert_eq!(alert_id(key, 7), "ca5e37259d97bcfebf5e6e472e600094");
        assert_eq!(alert_id("k", 0), "d1c5b497e10d67e49af4421b9c62d2c5");
        assert_eq!(alert_id(key, 7), alert_id(key, 7));
        assert_ne!(alert_id(key, 7), alert_id(key, 8));
        // The computation crates/inventory/src/alerts.rs does, written out again.
        let inventory = |k: &str, count: u64| -> String {
            let mut h = Sha256::new();
            h.update(k.as_bytes());
            h.update(count.to_be_bytes());
            let d = h.finalize();
            d[..16].iter().map(|b| format!("{b:02x}")).collect()
        };
        for (k, n) in [(key, 0), (key, 7), ("", u64::MAX), ("é|☃", 12_345)] {
            assert_eq!(alert_id(k, n), inventory(k, n));
        }
        assert_eq!(finding_id(key), "00b1668c2f511298bc9456544e0f7212");
    }

    #[test]
    fn canonical_json_round_trips() {
        for a in [rich(), minimal(), closed()] {
            let text = serde_json::to_string(&a).expect("serialize");
            assert!(!text.contains('\n'));
            let back: Alert = serde_json::from_str(&text).expect("deserialize");
            assert_eq!(back, a);
        }
    }

    #[test]
    fn canonical_fields_are_named_and_written_as_records_md_says() {
        let v = serde_json::to_value(rich()).expect("value");
        assert_eq!(v["lifecycle"], "update");
        assert_eq!(v["time"], "2023-11-14T22:15:20.123456Z");
        assert_eq!(v["first_seen"], "2023-11-14T22:13:20.000001Z");
        assert_eq!(v["detector"]["kind"], "statistical");
        assert_eq!(v["severity"], json!({"level": "high", "score": 82}));
        assert_eq!(v["server"]["ip"], "2001:db8::1");
        assert_eq!(v["explanation"]["threshold"], json!(4));
        assert_eq!(v["explanation"]["score"], json!(8.25));
        assert!(v["explanation"]["contributions"][2]
            .get("expected")
            .is_none());
        assert_eq!(
            v["evidence"][1],
            json!({"flow_uid": "C1a2b3", "tx_index": 411})
        );
        let m = serde_json::to_value(minimal()).expect("value");
        for absent in ["attack", "explanation", "recommended_action"] {
            assert!(m.get(absent).is_none(), "{absent}");
        }
        assert_eq!(m["client"], json!({}));
        assert_eq!(m["confidence"], json!(1));
    }

    fn without_nulls(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.retain(|_, x| !x.is_null());
                m.values_mut().for_each(without_nulls);
            }
            Value::Array(a) => a.iter_mut().for_each(without_nulls),
            _ => {}
        }
    }

    /// The shape crates/inventory/src/alerts.rs builds by hand today (its `json!` literal,
    /// with sample values): it reads as an `Alert` and writes back the same, nulls aside.
    #[test]
    fn the_inventory_shadow_alert_shape_reads_and_writes_back() {
        let key = "inventory.shadow_endpoint|api.example.com|GET|/api/v1/users/{id}";
        for (client_ip, server_ip, status) in [
            (json!("10.0.0.1"), json!("192.0.2.10"), json!(200)),
            (Value::Null, Value::Null, Value::Null),
        ] {
            let original = json!({
                "alert_id": alert_id(key, 7),
                "dedup_key": key,
                "lifecycle": "create",
                "count": 7,
                "time": "2023-11-14T22:13:25.000000Z",
                "first_seen": "2023-11-14T22:13:20.000000Z",
                "last_seen": "2023-11-14T22:13:25.000000Z",
                "detector": {"id": "inventory.shadow_endpoint", "name": "Shadow API endpoint", "kind": "rule", "version": 1},
                "severity": {"level": "high", "score": 80},
                "confidence": 0.85,
                "title": "Undocumented endpoint GET /api/v1/users/{id} on api.example.com",
                "summary": "GET /api/v1/users/{id} on api.example.com answered 7 calls.",
                "attack": {"owasp": "API9:2023 Improper Inventory Management", "mitre": "T1190"},
                "client": {"ip": client_ip},
                "server": {"ip": server_ip, "port": 8080, "host": "api.example.com"},
                "http": {"method": "GET", "route": "GET /api/v1/users/{id}", "url": "/api/v1/users/{id}", "status": status},
                "explanation": {
                    "score": 80,
                    "threshold": 40,
                    "baseline": {"scope": "reference_spec", "key": "api.example.com", "window": "all", "samples": 7},
                    "contributions": [
                        {"feature": "documented_in_spec", "value": 0, "expected": 1, "share": 0.5},
                        {"feature": "sensitive_data_kinds", "value": 2, "expected": 0, "share": 0.3},
                        {"feature": "unauthenticated_success", "value": 3, "expected": 0, "share": 0.2},
                    ],
                },
                "recommended_action": "Confirm who owns this endpoint.",
                "evidence": [{"flow_uid": "Cabc", "tx_index": 4}],
            });
            let alert: Alert = serde_json::from_value(original.clone()).expect("reads");
            let mut expected = original;
            without_nulls(&mut expected);
            assert_eq!(serde_json::to_value(&alert).expect("writes"), expected);
        }
    }

    #[test]
    fn rfc3339_parses_what_the_sensor_writes_and_rejects_the_rest() {
        for ns in [
            0,
            T0,
            T0 + 123_456_000,
            951_782_400_000_001_000,
            4_102_444_799_999_999_000,
        ] {
            let mut b = Vec::new();
            crate::time::rfc3339_micros(&mut b, wire::Timestamp(ns));
            let s = String::from_utf8(b).expect("ascii");
            assert_eq!(parse_rfc3339(&s), Some(ns), "{s}");
        }
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20.5+01:00"),
            Some(T0 + 500_000_000)
        );
        assert_eq!(parse_rfc3339("2023-11-14t22:13:20z"), Some(T0));
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.1234567891Z"),
            Some(T0 + 123_456_789)
        );
        for bad in [
            "",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20Zjunk",
            "1969-12-31T23:59:59Z",
            "2023-11-14T22:13:20+0100",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        let err = serde_json::from_value::<Alert>({
            let mut v = serde_json::to_value(minimal()).expect("value");
            v["time"] = json!("yesterday");
            v
        });
        assert!(err.is_err());
    }
}
