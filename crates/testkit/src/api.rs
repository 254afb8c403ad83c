//! Labelled API traffic: a seeded, deterministic capture of a small shop API (`api.shop.test`,
//! `auth.shop.test`) used by clients over keep-alive HTTP/1.1, with the truth about it.
//!
//! - [`Labels::routes`]: every route called, with its template, call count, expected auth
//!   scheme and status against [`ApiTraffic::spec_yaml`]:
//!   - `documented`: in the spec, not deprecated;
//!   - `shadow`: called but absent from the spec;
//!   - `zombie`: in the spec with `deprecated: true` and still served (the `/api/v1` route is
//!     also an older version of an `/api/v2` path, so either rule finds it);
//!   - [`Labels::unused`]: in the spec, never called.
//! - [`Labels::exposures`]: every place sensitive data occurs (route, kind, location, field);
//!   no other request or response carries such values.
//! - 404 probes of non-routes are only counted ([`Labels::probes`]), never routes.

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::{http, merge, write_pcap, Conversation, LinkOpts, Timestamp};

pub const API_HOST: &str = "api.shop.test";
pub const AUTH_HOST: &str = "auth.shop.test";
pub const API_SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 10)), 80);
pub const AUTH_SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 20)), 80);
/// Packet time of the run's start (2026-09-21); connections open within [`RUN_SECS`] of it.
pub const START_SECS: u64 = 1_790_000_000;
pub const RUN_SECS: u64 = 240;
/// Every called route gets at least this many calls.
pub const MIN_CALLS: u64 = 40;
/// The profile route gets more, so that its word-valued segment shows over 64 distinct names.
pub const MIN_PROFILE_CALLS: u64 = 100;

#[derive(Clone, Debug)]
pub struct ApiScenario {
    pub seed: u64,
    /// Distinct client IPs.
    pub clients: usize,
    /// Request/response pairs in total, probes included.
    pub transactions: usize,
    /// Requests to non-existent paths, answered 404.
    pub probes: usize,
}

impl Default for ApiScenario {
    fn default() -> Self {
        ApiScenario {
            seed: 1,
            clients: 40,
            transactions: 4000,
            probes: 100,
        }
    }
}

impl ApiScenario {
    /// Fewest transactions a scenario needs so every route gets its minimum calls.
    pub fn min_transactions(probes: usize) -> usize {
        let routes = ROUTES.iter().filter(|r| r.status != RouteStatus::Unused);
        routes.map(|r| r.min_calls()).sum::<u64>() as usize + probes
    }
}

#[derive(Clone, Debug)]
pub struct ApiTraffic {
    /// Ethernet frames in time order.
    pub frames: Vec<(Timestamp, Vec<u8>)>,
    pub labels: Labels,
    /// The reference OpenAPI 3.1 spec (YAML) of the documented API: documented, zombie and
    /// unused operations, not the shadow ones.
    pub spec_yaml: String,
}

impl ApiTraffic {
    /// Classic pcap, Ethernet link type.
    pub fn write_pcap(&self, path: &Path) -> io::Result<()> {
        write_pcap(path, &self.frames, 1)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Labels {
    pub routes: Vec<RouteLabel>,
    pub unused: Vec<RouteLabel>,
    pub exposures: Vec<Exposure>,
    /// 404 probes sent.
    pub probes: u64,
    /// Request/response pairs sent, probes included.
    pub transactions: u64,
    /// The client whose bearer JWT is unsigned (`alg: none`), if there are two clients or more.
    pub alg_none_client: Option<IpAddr>,
}

impl Labels {
    /// The called route with this host and method whose template is [`same_route`] as
    /// `template`.
    pub fn route(&self, host: &str, method: &str, template: &str) -> Option<&RouteLabel> {
        self.routes
            .iter()
            .find(|r| r.host == host && r.method == method && same_route(&r.template, template))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteLabel {
    pub host: String,
    pub method: String,
    /// Placeholders are named as the sensor names shapes (`{id}`, `{uuid}`, `{sku}`, `{date}`,
    /// `{hash}`, `{name}`); compare with [`same_route`].
    pub template: String,
    pub status: RouteStatus,
    pub calls: u64,
    /// "bearer_jwt", "bearer", "basic", "api_key", "session_cookie", or None when the route
    /// takes no credentials.
    pub auth: Option<&'static str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteStatus {
    Documented,
    Shadow,
    Zombie,
    Unused,
}

impl RouteStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteStatus::Documented => "documented",
            RouteStatus::Shadow => "shadow",
            RouteStatus::Zombie => "zombie",
            RouteStatus::Unused => "unused",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exposure {
    pub host: String,
    pub method: String,
    pub template: String,
    /// "email", "phone", "payment_card", "iban", "national_id", "jwt", "private_key",
    /// "cloud_key" or "password".
    pub kind: &'static str,
    /// "response_body", "request_body" or "query".
    pub location: &'static str,
    /// Dotted JSON path (`payment.card_number`, `tokens[].token`) or query parameter name.
    pub field: String,
}

/// Two templates are the same route when equal after replacing every `{...}` with `{}`.
pub fn same_route(a: &str, b: &str) -> bool {
    fn erase(t: &str) -> String {
        let mut out = String::with_capacity(t.len());
        let mut inside = false;
        for c in t.chars() {
            match c {
                '{' => {
                    inside = true;
                    out.push_str("{}");
                }
                '}' if inside => inside = false,
                _ if inside => {}
                _ => out.push(c),
            }
        }
        out
    }
    erase(a) == erase(b)
}

/// Generates the capture, its labels and the spec for `s`. Panics if `s.transactions` is
/// below [`ApiScenario::min_transactions`] or there is no client.
pub fn generate(s: &ApiScenario) -> ApiTraffic {
    build(s).0
}

// ---------------------------------------------------------------------------------------------
// Randomness

/// SplitMix64: small, fast, and the same sequence on every platform.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub(crate) fn word(&mut self, items: &[&'static str]) -> &'static str {
        items[self.below(items.len() as u64) as usize]
    }

    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }

    fn chars(&mut self, len: usize, alphabet: &[u8]) -> String {
        (0..len).map(|_| *self.pick(alphabet) as char).collect()
    }

    pub(crate) fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

const HEX: &[u8] = b"0123456789abcdef";
pub(crate) const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Longest run of digits, not broken by `-` or space: a random identifier with a long one could
/// pass for a card number.
fn longest_digit_run(s: &str) -> usize {
    let (mut best, mut run) = (0, 0);
    for b in s.bytes() {
        match b {
            b'0'..=b'9' => {
                run += 1;
                best = best.max(run);
            }
            b'-' | b' ' => {}
            _ => run = 0,
        }
    }
    best
}

/// Random text that cannot be mistaken for a card number.
pub(crate) fn random_id(rng: &mut Rng, len: usize, alphabet: &[u8]) -> String {
    loop {
        let s = rng.chars(len, alphabet);
        if longest_digit_run(&s) <= 8 {
            return s;
        }
    }
}

pub(crate) fn uuid(rng: &mut Rng) -> String {
    loop {
        let mut h = rng.chars(32, HEX).into_bytes();
        h[12] = b'4';
        h[16] = b"89ab"[rng.below(4) as usize];
        let h = String::from_utf8(h).expect("hex is ASCII");
        let s = format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        );
        if longest_digit_run(&s) <= 8 {
            return s;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Realistic values

const FIRST: &[&str] = &[
    "alice", "bruno", "chen", "dana", "elif", "farah", "gustavo", "hana", "ivan", "jonas", "kofi",
    "lena", "mateo", "nadia", "oscar", "priya", "quentin", "rosa", "samir", "tomas", "uma",
    "viktor", "wen", "yara", "zoe", "amara", "bjorn", "carmen", "dmitri", "esme",
];
pub(crate) const LAST: &[&str] = &[
    "smith", "garcia", "nguyen", "kowalski", "okafor", "rossi", "tanaka", "muller", "silva",
    "haddad", "jensen", "kim", "novak", "obrien", "petrov", "quinn", "reyes", "schmidt", "torres",
    "varga", "walsh", "xu", "young", "zhang", "abbott", "bauer", "costa", "dubois", "evans",
    "fischer",
];
const EMAIL_DOMAINS: &[&str] = &["example.com", "example.org", "example.net"];
pub(crate) const CITIES: &[(&str, &str)] = &[
    ("Amsterdam", "NL"),
    ("Berlin", "DE"),
    ("Lisbon", "PT"),
    ("Lyon", "FR"),
    ("Austin", "US"),
    ("Toronto", "CA"),
    ("Leeds", "GB"),
    ("Krakow", "PL"),
];
pub(crate) const CATEGORIES: &[&str] = &["shoes", "outdoor", "kitchen", "books", "garden", "toys"];
pub(crate) const ADJECTIVES: &[&str] =
    &["Trail", "Classic", "Compact", "Deluxe", "Urban", "Alpine"];
pub(crate) const NOUNS: &[&str] = &[
    "Runner", "Kettle", "Lantern", "Backpack", "Notebook", "Planter",
];
const ROLES: &[&str] = &["customer", "support", "merchant"];
const USER_AGENTS: &[&str] = &[
    "ShopApp/4.12.0 (iOS 17.5; iPhone14,2)",
    "ShopApp/4.11.3 (Android 14; Pixel 8)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "python-requests/2.31.0",
    "okhttp/4.12.0",
];

pub(crate) fn person(rng: &mut Rng) -> (&'static str, &'static str) {
    (rng.word(FIRST), rng.word(LAST))
}

pub(crate) fn capitalized(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

pub(crate) fn display_name(first: &str, last: &str) -> String {
    format!("{} {}", capitalized(first), capitalized(last))
}

fn username(rng: &mut Rng) -> String {
    let (f, l) = person(rng);
    format!("{f}_{l}{}", rng.range(1, 99))
}

pub(crate) fn email(rng: &mut Rng) -> String {
    let (f, l) = person(rng);
    let domain = rng.pick(EMAIL_DOMAINS);
    match rng.below(3) {
        0 => format!("{f}.{l}@{domain}"),
        1 => format!("{f}{}@{domain}", rng.range(1, 999)),
        _ => format!("{}{l}@{domain}", &f[..1]),
    }
}

/// Numbers from the ranges reserved for fiction (NANP 555-01xx, UK 020 7946 0xxx).
fn phone(rng: &mut Rng) -> String {
    if rng.chance(70) {
        format!("+1{}55501{:02}", rng.range(201, 989), rng.below(100))
    } else {
        format!("+4420794600{:02}", rng.below(100))
    }
}

fn luhn_check_digit(payload: &[u8]) -> u8 {
    let sum: u32 = payload
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = d as u32;
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// True for a string of digits that passes the Luhn check.
pub fn luhn_valid(number: &str) -> bool {
    let digits: Vec<u8> = number.bytes().map(|b| b.wrapping_sub(b'0')).collect();
    if digits.len() < 2 || digits.iter().any(|&d| d > 9) {
        return false;
    }
    let (payload, check) = digits.split_at(digits.len() - 1);
    luhn_check_digit(payload) == check[0]
}

/// A Luhn-valid number of a test-card brand: (brand, number).
pub(crate) fn card(rng: &mut Rng) -> (&'static str, String) {
    let (brand, prefix, len): (&str, &[u8], usize) = match rng.below(4) {
        0 => ("visa", &[4], 16),
        1 => ("mastercard", &[5, 1 + rng.below(5) as u8], 16),
        2 => ("amex", &[3, 7], 15),
        _ => ("discover", &[6, 0, 1, 1], 16),
    };
    let mut digits = prefix.to_vec();
    while digits.len() < len - 1 {
        digits.push(rng.below(10) as u8);
    }
    digits.push(luhn_check_digit(&digits));
    let number = digits.iter().map(|d| (b'0' + d) as char).collect();
    (brand, number)
}

fn mod97(alnum: &str) -> u32 {
    alnum.bytes().fold(0u32, |acc, b| match b {
        b'0'..=b'9' => (acc * 10 + (b - b'0') as u32) % 97,
        b'A'..=b'Z' => (acc * 100 + (b - b'A' + 10) as u32) % 97,
        _ => acc,
    })
}

/// True when `iban` has the IBAN layout and its check digits pass mod 97.
pub fn iban_valid(iban: &str) -> bool {
    let b = iban.as_bytes();
    b.len() >= 15
        && b.len() <= 34
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2..4].iter().all(u8::is_ascii_digit)
        && b[4..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && mod97(&format!("{}{}", &iban[4..], &iban[..4])) == 1
}

/// A Dutch IBAN: its BBAN has only ten digits in a row, too few to read as a card number.
fn iban(rng: &mut Rng) -> (String, String) {
    let bank = rng.word(&["ABNA", "INGB", "RABO", "TRIO", "KNAB", "SNSB", "BUNQ"]);
    let account = format!("{:010}", rng.range(100_000_000, 9_999_999_999));
    let check = 98 - mod97(&format!("{bank}{account}NL00"));
    (
        format!("NL{check:02}{bank}{account}"),
        format!("{bank}NL2A"),
    )
}

/// A US social security number with a valid area (not 000, 666 or 900-999), group and serial.
pub(crate) fn ssn(rng: &mut Rng) -> String {
    let area = loop {
        let a = rng.range(1, 899);
        if a != 666 {
            break a;
        }
    };
    format!(
        "{area:03}-{:02}-{:04}",
        rng.range(1, 99),
        rng.range(1, 9999)
    )
}

fn aws_key_id(rng: &mut Rng) -> String {
    format!("AKIA{}", rng.chars(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"))
}

fn private_key_pem(rng: &mut Rng) -> String {
    let mut body = String::from("MIIEpAIBAAKCAQEA");
    body.push_str(&rng.chars(64 * 12 - 16, BASE64));
    let mut pem = String::from("-----BEGIN RSA PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END RSA PRIVATE KEY-----\n");
    pem
}

pub(crate) fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// A compact JWT with real header and claims and a random signature (none for `alg: none`).
fn jwt(rng: &mut Rng, sub: &str, iat: u64, alg_none: bool) -> String {
    let alg = if alg_none { "none" } else { "HS256" };
    let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
    let claims = format!(
        r#"{{"sub":"{sub}","iss":"https://auth.shop.test","exp":{},"iat":{iat}}}"#,
        iat + 3600
    );
    let signature = if alg_none {
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

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

pub(crate) fn iso_date(secs: u64) -> String {
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

pub(crate) fn iso_time(secs: u64) -> String {
    let rem = secs % 86_400;
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        iso_date(secs),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn past_time(rng: &mut Rng, max_days: u64) -> String {
    iso_time(START_SECS - rng.below(max_days * 86_400))
}

fn user_id(rng: &mut Rng) -> u64 {
    rng.range(1, 250_000)
}

fn sku(rng: &mut Rng) -> String {
    format!("SKU-{:06}", rng.range(1, 999_999))
}

fn product_name(rng: &mut Rng) -> String {
    format!("{} {}", rng.pick(ADJECTIVES), rng.pick(NOUNS))
}

fn sha256_hex(rng: &mut Rng) -> String {
    random_id(rng, 64, HEX)
}

fn page_query(rng: &mut Rng, q: &mut Vec<(String, String)>) {
    if rng.chance(60) {
        q.push(("page".into(), rng.range(1, 12).to_string()));
    }
    if rng.chance(50) {
        q.push((
            "limit".into(),
            rng.pick(&["10", "20", "50", "100"]).to_string(),
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// The API

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Host {
    Api,
    Auth,
}

impl Host {
    fn name(self) -> &'static str {
        match self {
            Host::Api => API_HOST,
            Host::Auth => AUTH_HOST,
        }
    }

    fn server(self) -> SocketAddr {
        match self {
            Host::Api => API_SERVER,
            Host::Auth => AUTH_SERVER,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Health,
    Status,
    ListUsers,
    CreateUser,
    GetUser,
    UpdateUser,
    DeleteUser,
    Me,
    SearchUsers,
    UserOrders,
    CreateOrder,
    GetOrder,
    GetOrderItem,
    ListProducts,
    GetProduct,
    GetReport,
    GetFile,
    GetProfile,
    Token,
    UserInfo,
    LegacyProfile,
    V1User,
    Debug,
    AdminExport,
    UserTokens,
    Kyc,
    /// Documented but never called.
    Uncalled,
}

/// Security scheme names of the spec's `components.securitySchemes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    None,
    BearerJwt,
    ApiKeyHeader,
    ApiKeyQuery,
    Basic,
    Session,
    /// Opaque bearer token; only the shadow admin route uses it, so the spec has no scheme.
    OpaqueBearer,
}

impl Scheme {
    fn label(self) -> Option<&'static str> {
        match self {
            Scheme::None => None,
            Scheme::BearerJwt => Some("bearer_jwt"),
            Scheme::ApiKeyHeader | Scheme::ApiKeyQuery => Some("api_key"),
            Scheme::Basic => Some("basic"),
            Scheme::Session => Some("session_cookie"),
            Scheme::OpaqueBearer => Some("bearer"),
        }
    }

    fn spec_name(self) -> Option<&'static str> {
        match self {
            Scheme::BearerJwt => Some("bearerJwt"),
            Scheme::ApiKeyHeader => Some("apiKeyHeader"),
            Scheme::ApiKeyQuery => Some("apiKeyQuery"),
            Scheme::Basic => Some("basicAuth"),
            Scheme::Session => Some("sessionCookie"),
            Scheme::None | Scheme::OpaqueBearer => None,
        }
    }
}

/// How the spec documents one operation.
#[derive(Clone, Copy, Debug)]
struct SpecDoc {
    path: &'static str,
    operation_id: &'static str,
    summary: &'static str,
    /// Names under `components.parameters`.
    query: &'static [&'static str],
    /// (media type, schema name).
    body: Option<(&'static str, &'static str)>,
    /// Success status and its schema name (None: no content).
    ok: (u16, Option<&'static str>),
    errors: &'static [u16],
}

#[derive(Clone, Copy, Debug)]
struct RouteDef {
    op: Op,
    host: Host,
    method: &'static str,
    template: &'static str,
    status: RouteStatus,
    scheme: Scheme,
    /// Share of the calls beyond the minimum.
    weight: u64,
    spec: Option<SpecDoc>,
}

impl RouteDef {
    fn min_calls(&self) -> u64 {
        match self.op {
            Op::Uncalled => 0,
            Op::GetProfile => MIN_PROFILE_CALLS,
            _ => MIN_CALLS,
        }
    }

    fn label(&self, calls: u64) -> RouteLabel {
        RouteLabel {
            host: self.host.name().into(),
            method: self.method.into(),
            template: self.template.into(),
            status: self.status,
            calls,
            auth: self.scheme.label(),
        }
    }
}

const E_AUTH: &[u16] = &[401, 403, 500];
const E_ID: &[u16] = &[401, 403, 404, 500];
const E_BODY: &[u16] = &[400, 401, 403, 500];
const E_ID_BODY: &[u16] = &[400, 401, 403, 404, 500];

const fn doc(
    path: &'static str,
    operation_id: &'static str,
    summary: &'static str,
    ok: (u16, Option<&'static str>),
    errors: &'static [u16],
) -> Option<SpecDoc> {
    Some(SpecDoc {
        path,
        operation_id,
        summary,
        query: &[],
        body: None,
        ok,
        errors,
    })
}

const fn with_query(d: Option<SpecDoc>, query: &'static [&'static str]) -> Option<SpecDoc> {
    match d {
        Some(mut d) => {
            d.query = query;
            Some(d)
        }
        None => None,
    }
}

const fn with_body(
    d: Option<SpecDoc>,
    media: &'static str,
    schema: &'static str,
) -> Option<SpecDoc> {
    match d {
        Some(mut d) => {
            d.body = Some((media, schema));
            Some(d)
        }
        None => None,
    }
}

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

#[allow(clippy::too_many_arguments)]
const fn route(
    op: Op,
    host: Host,
    method: &'static str,
    template: &'static str,
    status: RouteStatus,
    scheme: Scheme,
    weight: u64,
    spec: Option<SpecDoc>,
) -> RouteDef {
    RouteDef {
        op,
        host,
        method,
        template,
        status,
        scheme,
        weight,
        spec,
    }
}

use RouteStatus::{Documented, Shadow, Unused, Zombie};

// One route per line: a table reads better than rustfmt's one argument per line.
#[rustfmt::skip]
const ROUTES: &[RouteDef] = &[
    route(Op::Health, Host::Api, "GET", "/api/v2/health", Documented, Scheme::None, 8,
        doc("/api/v2/health", "getHealth", "Liveness check", (200, Some("Health")), &[])),
    route(Op::Status, Host::Api, "GET", "/api/v2/status", Documented, Scheme::BearerJwt, 3,
        doc("/api/v2/status", "getStatus", "Service status and component health", (200, Some("Status")), E_AUTH)),
    route(Op::ListUsers, Host::Api, "GET", "/api/v2/users", Documented, Scheme::BearerJwt, 4,
        with_query(doc("/api/v2/users", "listUsers", "List users", (200, Some("UserList")), E_AUTH), &["Page", "Limit"])),
    route(Op::CreateUser, Host::Api, "POST", "/api/v2/users", Documented, Scheme::BearerJwt, 2,
        with_body(doc("/api/v2/users", "createUser", "Create a user", (201, Some("UserCreated")), E_BODY), JSON, "UserCreate")),
    route(Op::GetUser, Host::Api, "GET", "/api/v2/users/{id}", Documented, Scheme::BearerJwt, 10,
        doc("/api/v2/users/{userId}", "getUser", "Get a user", (200, Some("User")), E_ID)),
    route(Op::UpdateUser, Host::Api, "PUT", "/api/v2/users/{id}", Documented, Scheme::BearerJwt, 3,
        with_body(doc("/api/v2/users/{userId}", "updateUser", "Update a user", (200, Some("Updated")), E_ID_BODY), JSON, "UserUpdate")),
    route(Op::DeleteUser, Host::Api, "DELETE", "/api/v2/users/{id}", Documented, Scheme::BearerJwt, 1,
        doc("/api/v2/users/{userId}", "deleteUser", "Delete a user", (204, None), E_ID)),
    route(Op::Me, Host::Api, "GET", "/api/v2/users/me", Documented, Scheme::BearerJwt, 6,
        doc("/api/v2/users/me", "getMe", "The calling user", (200, Some("Me")), E_AUTH)),
    route(Op::SearchUsers, Host::Api, "GET", "/api/v2/users/search", Documented, Scheme::BearerJwt, 3,
        with_query(doc("/api/v2/users/search", "searchUsers", "Search users by name or e-mail", (200, Some("SearchResults")), E_AUTH), &["Query", "Limit"])),
    route(Op::UserOrders, Host::Api, "GET", "/api/v2/users/{id}/orders", Documented, Scheme::BearerJwt, 5,
        with_query(doc("/api/v2/users/{userId}/orders", "listUserOrders", "Orders of a user", (200, Some("OrderList")), E_ID), &["Page", "Limit"])),
    route(Op::CreateOrder, Host::Api, "POST", "/api/v2/orders", Documented, Scheme::BearerJwt, 3,
        with_body(doc("/api/v2/orders", "createOrder", "Place an order", (201, Some("OrderCreated")), E_BODY), JSON, "OrderCreate")),
    route(Op::GetOrder, Host::Api, "GET", "/api/v2/orders/{uuid}", Documented, Scheme::BearerJwt, 6,
        doc("/api/v2/orders/{orderId}", "getOrder", "Get an order", (200, Some("Order")), E_ID)),
    route(Op::GetOrderItem, Host::Api, "GET", "/api/v2/orders/{uuid}/items/{id}", Documented, Scheme::BearerJwt, 3,
        doc("/api/v2/orders/{orderId}/items/{itemId}", "getOrderItem", "Get one item of an order", (200, Some("OrderItem")), E_ID)),
    route(Op::ListProducts, Host::Api, "GET", "/api/v2/products", Documented, Scheme::ApiKeyHeader, 6,
        with_query(doc("/api/v2/products", "listProducts", "List products", (200, Some("ProductList")), E_AUTH), &["Page", "Limit", "Category"])),
    route(Op::GetProduct, Host::Api, "GET", "/api/v2/products/{sku}", Documented, Scheme::ApiKeyHeader, 8,
        doc("/api/v2/products/{sku}", "getProduct", "Get a product", (200, Some("Product")), E_ID)),
    route(Op::GetReport, Host::Api, "GET", "/api/v2/reports/{date}", Documented, Scheme::ApiKeyQuery, 2,
        doc("/api/v2/reports/{date}", "getDailyReport", "Sales report of one day", (200, Some("Report")), E_ID)),
    route(Op::GetFile, Host::Api, "GET", "/api/v2/files/{hash}", Documented, Scheme::BearerJwt, 3,
        doc("/api/v2/files/{sha256}", "getFile", "File metadata by content hash", (200, Some("FileMeta")), E_ID)),
    route(Op::GetProfile, Host::Api, "GET", "/api/v2/profiles/{name}", Documented, Scheme::BearerJwt, 5,
        doc("/api/v2/profiles/{username}", "getProfile", "Public profile", (200, Some("Profile")), E_ID)),
    route(Op::Token, Host::Auth, "POST", "/oauth/token", Documented, Scheme::Basic, 3,
        with_body(doc("/oauth/token", "issueToken", "Issue an access token (client credentials)", (200, Some("TokenResponse")), &[400, 401, 500]), FORM, "TokenRequest")),
    route(Op::UserInfo, Host::Auth, "GET", "/oauth/userinfo", Documented, Scheme::BearerJwt, 3,
        doc("/oauth/userinfo", "getUserInfo", "Claims of the token's subject", (200, Some("UserInfo")), E_AUTH)),
    route(Op::LegacyProfile, Host::Api, "GET", "/api/v2/users/{id}/legacy-profile", Zombie, Scheme::BearerJwt, 1,
        doc("/api/v2/users/{userId}/legacy-profile", "getLegacyProfile", "Old profile format (deprecated)", (200, Some("LegacyProfile")), E_ID)),
    route(Op::V1User, Host::Api, "GET", "/api/v1/users/{id}", Zombie, Scheme::Session, 1,
        doc("/api/v1/users/{userId}", "getUserV1", "Get a user (v1, deprecated)", (200, Some("UserV1")), E_ID)),
    route(Op::Debug, Host::Api, "GET", "/api/v2/internal/debug/{id}", Shadow, Scheme::None, 1, None),
    route(Op::AdminExport, Host::Api, "POST", "/api/v2/admin/export", Shadow, Scheme::OpaqueBearer, 1, None),
    route(Op::UserTokens, Host::Api, "GET", "/api/v2/users/{id}/tokens", Shadow, Scheme::BearerJwt, 1, None),
    route(Op::Kyc, Host::Api, "GET", "/api/v2/internal/kyc/{id}", Shadow, Scheme::BearerJwt, 1, None),
    route(Op::Uncalled, Host::Api, "DELETE", "/api/v2/files/{hash}", Unused, Scheme::BearerJwt, 0,
        doc("/api/v2/files/{sha256}", "deleteFile", "Delete a file", (204, None), E_ID)),
    route(Op::Uncalled, Host::Api, "POST", "/api/v2/products", Unused, Scheme::ApiKeyHeader, 0,
        with_body(doc("/api/v2/products", "createProduct", "Create a product", (201, Some("Product")), E_BODY), JSON, "ProductCreate")),
    route(Op::Uncalled, Host::Auth, "POST", "/oauth/revoke", Unused, Scheme::Basic, 0,
        with_body(doc("/oauth/revoke", "revokeToken", "Revoke a token", (200, None), &[400, 401]), FORM, "RevokeRequest")),
];

fn exposure(op: Op, kind: &'static str, location: &'static str, field: &str) -> Exposure {
    let r = ROUTES
        .iter()
        .find(|r| r.op == op)
        .expect("every op has a route");
    Exposure {
        host: r.host.name().into(),
        method: r.method.into(),
        template: r.template.into(),
        kind,
        location,
        field: field.into(),
    }
}

fn exposures() -> Vec<Exposure> {
    const BODY: &str = "response_body";
    vec![
        exposure(Op::GetUser, "email", BODY, "email"),
        exposure(Op::GetUser, "phone", BODY, "phone"),
        exposure(Op::CreateUser, "password", "request_body", "password"),
        exposure(Op::SearchUsers, "email", "query", "q"),
        exposure(Op::GetOrder, "payment_card", BODY, "payment.card_number"),
        exposure(Op::Token, "jwt", BODY, "access_token"),
        exposure(Op::V1User, "email", BODY, "email"),
        exposure(Op::Debug, "private_key", BODY, "tls.private_key"),
        exposure(Op::AdminExport, "cloud_key", BODY, "storage.access_key_id"),
        exposure(Op::UserTokens, "jwt", BODY, "tokens[].token"),
        exposure(Op::Kyc, "national_id", BODY, "ssn"),
        exposure(Op::Kyc, "iban", BODY, "bank.iban"),
    ]
}

// ---------------------------------------------------------------------------------------------
// Clients and exchanges

struct Client {
    ip: Ipv4Addr,
    next_port: u16,
    user_agent: &'static str,
    gzip: bool,
    user: u64,
    jwt: String,
    opaque_token: String,
    api_key: String,
    session_id: String,
    basic: String,
}

impl Client {
    fn new(rng: &mut Rng, index: usize, alg_none: bool) -> Self {
        let user = user_id(rng);
        let iat = START_SECS - rng.range(60, 1800);
        let client_id = format!("shop-{}", random_id(rng, 10, LOWER_ALNUM));
        let secret = random_id(rng, 32, LOWER_ALNUM);
        Client {
            ip: Ipv4Addr::new(192, 168, 1 + (index / 240) as u8, 10 + (index % 240) as u8),
            next_port: rng.range(32_768, 50_000) as u16,
            user_agent: rng.word(USER_AGENTS),
            gzip: rng.chance(75),
            user,
            jwt: jwt(rng, &format!("user-{user}"), iat, alg_none),
            opaque_token: random_id(rng, 40, LOWER_ALNUM),
            api_key: format!("pk_live_{}", random_id(rng, 24, LOWER_ALNUM)),
            session_id: random_id(rng, 32, LOWER_ALNUM),
            basic: STANDARD.encode(format!("{client_id}:{secret}")),
        }
    }

    fn port(&mut self, rng: &mut Rng) -> u16 {
        let p = self.next_port;
        self.next_port = match self.next_port.checked_add(1 + rng.below(5) as u16) {
            Some(n) if n < 60_999 => n,
            _ => 32_768,
        };
        p
    }
}

enum Body {
    None,
    Json(Value),
    Form(String),
}

/// One request to a route and the server's answer, before rendering.
struct Exchange {
    target: String,
    body: Body,
    status: u16,
    response: Option<Value>,
    response_headers: Vec<(&'static str, String)>,
    chunk_percent: u64,
}

/// Draw state that outlives one exchange.
struct Ctx {
    profile_names: Vec<String>,
    profile_calls: usize,
}

fn query_string(q: &[(String, String)]) -> String {
    if q.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("?{}", parts.join("&"))
}

fn pick_status(rng: &mut Rng, r: &RouteDef) -> u16 {
    let ok = r.spec.map_or(200, |d| d.ok.0);
    if r.op == Op::Health {
        return 200;
    }
    let authed = r.scheme != Scheme::None;
    let has_param = r.template.contains('{');
    let has_body = matches!(r.method, "POST" | "PUT");
    let roll = rng.below(1000);
    let mut edge = 0;
    for (status, per_mille, applies) in [
        (401, 30, authed),
        (403, 15, authed && r.scheme != Scheme::Basic),
        (404, 30, has_param),
        (400, 40, has_body),
        (500, 8, true),
    ] {
        if applies {
            edge += per_mille;
            if roll < edge {
                return status;
            }
        }
    }
    ok
}

fn error_body(status: u16, op: Op) -> Value {
    match (status, op) {
        (401, Op::Token) => json!({"error": "invalid_client"}),
        (400, Op::Token) => json!({"error": "invalid_grant"}),
        (400, _) => json!({"error": "invalid_request", "message": "validation failed"}),
        (401, _) => json!({"error": "unauthorized", "message": "token expired or invalid"}),
        (403, _) => json!({"error": "forbidden", "message": "insufficient scope"}),
        (404, _) => json!({"error": "not_found"}),
        _ => json!({"error": "internal", "message": "upstream timeout"}),
    }
}

fn users(rng: &mut Rng, n: u64) -> Vec<Value> {
    (0..n)
        .map(|_| json!({"id": user_id(rng), "username": username(rng), "created_at": past_time(rng, 900)}))
        .collect()
}

fn address(rng: &mut Rng, street: bool) -> Value {
    let (city, country) = *rng.pick(CITIES);
    let mut a =
        json!({"city": city, "zip": format!("{:05}", rng.range(1000, 99_999)), "country": country});
    if street {
        a["street"] = json!(format!(
            "{} {} Street",
            rng.range(1, 250),
            capitalized(rng.word(LAST))
        ));
    }
    a
}

/// Path, body and successful response of one call of `op`.
fn exchange(rng: &mut Rng, ctx: &mut Ctx, r: &RouteDef, client: &Client) -> Exchange {
    let mut q: Vec<(String, String)> = Vec::new();
    let mut body = Body::None;
    let mut response_headers = Vec::new();
    let mut chunk_percent = 3;
    let (path, ok): (String, Value) = match r.op {
        Op::Health => (r.template.into(), json!({"status": "ok"})),
        Op::Status => {
            let components: Vec<Value> = ["db", "cache", "queue", "search"]
                .iter()
                .map(|c| json!({"name": c, "healthy": rng.chance(97), "latency_ms": rng.range(1, 40)}))
                .collect();
            (
                r.template.into(),
                json!({"status": "ok", "version": "2.14.3", "uptime_s": rng.range(1000, 9_000_000), "components": components}),
            )
        }
        Op::ListUsers => {
            page_query(rng, &mut q);
            let n = rng.range(2, 6);
            let list = users(rng, n);
            (
                r.template.into(),
                json!({"page": rng.range(1, 12), "limit": 20, "total": rng.range(500, 90_000), "users": list}),
            )
        }
        Op::CreateUser => {
            let (f, l) = person(rng);
            let name = username(rng);
            let password_len = rng.range(10, 18) as usize;
            let password = rng.chars(
                password_len,
                b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789!#%&*?",
            );
            let mut req = json!({
                "username": name,
                "password": password,
                "profile": {"display_name": display_name(f, l), "locale": rng.pick(&["en-US", "de-DE", "nl-NL", "fr-FR"])},
            });
            if rng.chance(50) {
                req["newsletter"] = json!(rng.chance(40));
            }
            if rng.chance(30) {
                req["referral_code"] =
                    json!(format!("REF-{}", rng.chars(6, b"ABCDEFGHJKLMNPQRSTUVWXYZ")));
            }
            body = Body::Json(req);
            (
                r.template.into(),
                json!({"id": user_id(rng), "username": name, "created_at": iso_time(START_SECS)}),
            )
        }
        Op::GetUser => {
            let id = user_id(rng);
            let (f, l) = person(rng);
            let mut v = json!({
                "id": id,
                "username": username(rng),
                "display_name": display_name(f, l),
                "email": email(rng),
                "phone": phone(rng),
                "created_at": past_time(rng, 1500),
                "roles": [rng.pick(ROLES)],
            });
            if rng.chance(50) {
                v["address"] = address(rng, false);
            }
            (format!("/api/v2/users/{id}"), v)
        }
        Op::UpdateUser => {
            let id = user_id(rng);
            let mut req = json!({});
            let (f, l) = person(rng);
            if rng.chance(50) {
                req["display_name"] = json!(display_name(f, l));
            }
            if rng.chance(50) {
                req["address"] = address(rng, true);
            }
            if rng.chance(50) || req.as_object().is_some_and(|o| o.is_empty()) {
                req["preferences"] = json!({"newsletter": rng.chance(50), "language": rng.pick(&["en", "de", "nl", "fr"])});
            }
            body = Body::Json(req);
            (
                format!("/api/v2/users/{id}"),
                json!({"id": id, "updated_at": iso_time(START_SECS)}),
            )
        }
        Op::DeleteUser => (format!("/api/v2/users/{}", user_id(rng)), Value::Null),
        Op::Me => (
            r.template.into(),
            json!({"id": client.user, "username": username(rng), "roles": [rng.pick(ROLES)], "plan": rng.pick(&["free", "plus", "pro"])}),
        ),
        Op::SearchUsers => {
            let term = if rng.chance(25) {
                let e = email(rng);
                if rng.chance(50) {
                    e.replace('@', "%40")
                } else {
                    e
                }
            } else if rng.chance(50) {
                rng.pick(LAST).to_string()
            } else {
                rng.pick(FIRST)[..3].to_string()
            };
            q.push(("q".into(), term));
            if rng.chance(40) {
                q.push(("limit".into(), "10".into()));
            }
            let n = rng.below(4);
            let results: Vec<Value> = (0..n)
                .map(|_| json!({"id": user_id(rng), "username": username(rng)}))
                .collect();
            (r.template.into(), json!({"results": results, "total": n}))
        }
        Op::UserOrders => {
            let id = user_id(rng);
            page_query(rng, &mut q);
            let orders: Vec<Value> = (0..rng.range(1, 5))
                .map(|_| {
                    json!({"id": uuid(rng), "status": rng.pick(&["pending", "paid", "shipped", "delivered"]),
                           "total_cents": rng.range(500, 90_000), "placed_at": past_time(rng, 400)})
                })
                .collect();
            (
                format!("/api/v2/users/{id}/orders"),
                json!({"user_id": id, "orders": orders}),
            )
        }
        Op::CreateOrder => {
            let items: Vec<Value> = (0..rng.range(1, 4))
                .map(|_| json!({"sku": sku(rng), "qty": rng.range(1, 5)}))
                .collect();
            let mut req = json!({
                "items": items,
                "shipping": {"method": rng.pick(&["standard", "express", "pickup"]), "address": address(rng, true)},
            });
            if rng.chance(50) {
                req["coupon"] = json!(rng.pick(&["SPRING", "WELCOME", "FREESHIP"]));
            }
            if rng.chance(30) {
                req["gift_note"] = json!("Happy birthday!");
            }
            body = Body::Json(req);
            (
                r.template.into(),
                json!({"id": uuid(rng), "status": "pending", "total_cents": rng.range(500, 90_000)}),
            )
        }
        Op::GetOrder => {
            let id = uuid(rng);
            let items: Vec<Value> = (0..rng.range(1, 4))
                .map(|_| json!({"sku": sku(rng), "qty": rng.range(1, 5), "price_cents": rng.range(199, 25_000)}))
                .collect();
            let (brand, number) = card(rng);
            let mut v = json!({
                "id": id,
                "status": rng.pick(&["pending", "paid", "shipped", "delivered"]),
                "items": items,
                "payment": {"method": "card", "brand": brand, "card_number": number,
                            "exp_month": rng.range(1, 12), "exp_year": rng.range(2027, 2031)},
                "placed_at": past_time(rng, 200),
            });
            if rng.chance(50) {
                v["shipping"] = json!({"method": rng.pick(&["standard", "express"]), "address": address(rng, false)});
            }
            (format!("/api/v2/orders/{id}"), v)
        }
        Op::GetOrderItem => {
            let (order, item) = (uuid(rng), rng.range(1, 500));
            (
                format!("/api/v2/orders/{order}/items/{item}"),
                json!({"order_id": order, "item_id": item, "sku": sku(rng), "qty": rng.range(1, 5),
                       "price_cents": rng.range(199, 25_000),
                       "product": {"name": product_name(rng), "category": rng.pick(CATEGORIES)}}),
            )
        }
        Op::ListProducts => {
            page_query(rng, &mut q);
            if rng.chance(40) {
                q.push(("category".into(), rng.pick(CATEGORIES).to_string()));
            }
            chunk_percent = 35;
            let items: Vec<Value> = (0..rng.range(3, 10))
                .map(|_| {
                    let tags: Vec<&str> = (0..rng.below(3)).map(|_| rng.word(&["new", "sale", "eco", "bestseller"])).collect();
                    json!({"sku": sku(rng), "name": product_name(rng), "price_cents": rng.range(199, 25_000), "tags": tags})
                })
                .collect();
            (r.template.into(), json!({"page": 1, "items": items}))
        }
        Op::GetProduct => {
            let code = sku(rng);
            let mut v = json!({"sku": code, "name": product_name(rng), "price_cents": rng.range(199, 25_000),
                               "stock": {"warehouse": rng.pick(&["AMS-01", "FRA-02", "DUB-03"]), "qty": rng.below(400)}});
            if rng.chance(50) {
                v["attributes"] = json!({"color": rng.pick(&["red", "black", "olive"]), "size": rng.pick(&["S", "M", "L"])});
            }
            (format!("/api/v2/products/{code}"), v)
        }
        Op::GetReport => {
            let date = iso_date(START_SECS - rng.below(700) * 86_400);
            q.push(("api_key".into(), client.api_key.clone()));
            if rng.chance(30) {
                q.push(("format".into(), "json".into()));
            }
            chunk_percent = 35;
            let top: Vec<Value> = (0..rng.range(2, 5))
                .map(|_| json!({"sku": sku(rng), "units": rng.range(1, 900)}))
                .collect();
            (
                format!("/api/v2/reports/{date}"),
                json!({"date": date, "orders": rng.range(50, 5000), "revenue_cents": rng.range(100_000, 50_000_000), "top_products": top}),
            )
        }
        Op::GetFile => {
            let hash = sha256_hex(rng);
            chunk_percent = 35;
            let mut v = json!({"sha256": hash, "size": rng.range(100, 40_000_000),
                               "content_type": rng.pick(&["application/pdf", "image/png", "text/csv"]),
                               "uploaded_at": past_time(rng, 300)});
            if rng.chance(50) {
                v["tags"] = json!([rng.pick(&["invoice", "receipt", "avatar", "import"])]);
            }
            (format!("/api/v2/files/{hash}"), v)
        }
        Op::GetProfile => {
            let k = ctx.profile_calls;
            ctx.profile_calls += 1;
            // Distinct names first, so the segment's cardinality shows early; repeats after.
            let name = if k < MIN_PROFILE_CALLS as usize {
                ctx.profile_names[k].clone()
            } else {
                rng.pick(&ctx.profile_names[..300]).clone()
            };
            let (f, l) = name.split_once('-').expect("profile names are first-last");
            let (display, path) = (display_name(f, l), format!("/api/v2/profiles/{name}"));
            let mut v = json!({"username": name, "display_name": display, "followers": rng.below(5000),
                               "avatar_url": format!("https://cdn.shop.test/avatars/{}.png", random_id(rng, 24, HEX))});
            if rng.chance(50) {
                v["bio"] = json!(rng.pick(&[
                    "Trail runner and coffee lover.",
                    "Home cook.",
                    "Collector of old maps."
                ]));
            }
            (path, v)
        }
        Op::Token => {
            let scope = rng.word(&["orders:read", "orders:read profile", "profile"]);
            body = Body::Form(format!(
                "grant_type=client_credentials&scope={}",
                scope.replace(':', "%3A").replace(' ', "+")
            ));
            let token = jwt(rng, &format!("user-{}", client.user), START_SECS, false);
            (
                r.template.into(),
                json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": scope}),
            )
        }
        Op::UserInfo => {
            let (f, l) = person(rng);
            (
                r.template.into(),
                json!({"sub": format!("user-{}", client.user), "name": display_name(f, l),
                       "locale": rng.pick(&["en-US", "de-DE", "nl-NL"]), "email_verified": rng.chance(80)}),
            )
        }
        Op::LegacyProfile => {
            let id = user_id(rng);
            response_headers.push(("Deprecation", "true".into()));
            let mut v =
                json!({"id": id, "username": username(rng), "joined": past_time(rng, 2000)});
            if rng.chance(50) {
                v["bio"] = json!("Member since the beta.");
            }
            (format!("/api/v2/users/{id}/legacy-profile"), v)
        }
        Op::V1User => {
            let id = user_id(rng);
            (
                format!("/api/v1/users/{id}"),
                json!({"id": id, "username": username(rng), "email": email(rng), "created": past_time(rng, 2500)}),
            )
        }
        Op::Debug => {
            let id = rng.range(1, 90_000);
            (
                format!("/api/v2/internal/debug/{id}"),
                json!({"id": id, "node": format!("api-{}", rng.range(1, 12)), "build": random_id(rng, 12, HEX),
                       "env": {"RUST_LOG": "info", "REGION": "eu-west-1", "WORKERS": rng.range(2, 16)},
                       "tls": {"cert_serial": random_id(rng, 16, HEX), "private_key": private_key_pem(rng)}}),
            )
        }
        Op::AdminExport => {
            let mut req = json!({"dataset": rng.pick(&["customers", "orders", "payouts"]), "format": rng.pick(&["csv", "json"])});
            if rng.chance(50) {
                req["since"] = json!(iso_date(START_SECS - rng.below(365) * 86_400));
            }
            body = Body::Json(req);
            let id = uuid(rng);
            (
                r.template.into(),
                json!({"export_id": id, "rows": rng.range(100, 900_000), "url": format!("s3://shop-exports/exports/{id}.csv"),
                       "storage": {"bucket": "shop-exports", "region": "eu-west-1", "access_key_id": aws_key_id(rng)}}),
            )
        }
        Op::UserTokens => {
            let id = user_id(rng);
            let tokens: Vec<Value> = (0..rng.range(1, 3))
                .map(|_| {
                    let iat = START_SECS - rng.below(86_400 * 30);
                    json!({"id": uuid(rng), "token": jwt(rng, &format!("user-{id}"), iat, false), "created_at": iso_time(iat)})
                })
                .collect();
            (
                format!("/api/v2/users/{id}/tokens"),
                json!({"user_id": id, "tokens": tokens}),
            )
        }
        Op::Kyc => {
            let id = user_id(rng);
            let (iban, bic) = iban(rng);
            (
                format!("/api/v2/internal/kyc/{id}"),
                json!({"customer_id": id, "ssn": ssn(rng), "bank": {"iban": iban, "bic": bic}, "verified": rng.chance(70)}),
            )
        }
        Op::Uncalled => unreachable!("unused routes are never scheduled"),
    };
    let status = pick_status(rng, r);
    let response = match status {
        204 => None,
        200 | 201 => Some(ok),
        _ => Some(error_body(status, r.op)),
    };
    if status == 401 {
        let challenge = match r.scheme {
            Scheme::Basic => "Basic realm=\"shop\"",
            _ => "Bearer error=\"invalid_token\"",
        };
        response_headers.push(("WWW-Authenticate", challenge.into()));
    }
    Exchange {
        target: path + &query_string(&q),
        body,
        status,
        response,
        response_headers,
        chunk_percent,
    }
}

fn render_request(
    method: &str,
    target: &str,
    host: Host,
    scheme: Scheme,
    client: &Client,
    body: &Body,
) -> Vec<u8> {
    let mut h: Vec<(&str, String)> = vec![
        ("User-Agent", client.user_agent.into()),
        ("Accept", "application/json".into()),
    ];
    if client.gzip {
        h.push(("Accept-Encoding", "gzip, deflate".into()));
    }
    match scheme {
        Scheme::BearerJwt => h.push(("Authorization", format!("Bearer {}", client.jwt))),
        Scheme::OpaqueBearer => {
            h.push(("Authorization", format!("Bearer {}", client.opaque_token)))
        }
        Scheme::ApiKeyHeader => h.push(("X-API-Key", client.api_key.clone())),
        Scheme::Basic => h.push(("Authorization", format!("Basic {}", client.basic))),
        Scheme::Session => h.push((
            "Cookie",
            format!("sessionid={}; lang=en", client.session_id),
        )),
        Scheme::ApiKeyQuery | Scheme::None => {}
    }
    let bytes = match body {
        Body::None => Vec::new(),
        Body::Json(v) => {
            h.push(("Content-Type", "application/json".into()));
            serde_json::to_vec(v).expect("JSON values serialize")
        }
        Body::Form(f) => {
            h.push(("Content-Type", FORM.into()));
            f.clone().into_bytes()
        }
    };
    let refs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    http::request(method, target, host.name(), &refs, &bytes)
}

fn render_response(
    rng: &mut Rng,
    status: u16,
    body: Option<&[u8]>,
    content_type: &str,
    extra: &[(&'static str, String)],
    gzip_ok: bool,
    chunk_percent: u64,
) -> Vec<u8> {
    let mut h: Vec<(&str, String)> = vec![("Server", "nginx".into())];
    h.extend(extra.iter().cloned());
    let Some(body) = body else {
        let refs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        return http::response(status, &refs, b"");
    };
    h.push(("Content-Type", content_type.into()));
    let mut payload = body.to_vec();
    if gzip_ok && payload.len() >= 200 && rng.chance(70) {
        payload = http::gzip(&payload);
        h.push(("Content-Encoding", "gzip".into()));
        h.push(("Vary", "Accept-Encoding".into()));
    }
    let refs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    if payload.len() >= 8 && rng.chance(chunk_percent) {
        let a = rng.range(1, payload.len() as u64 / 2) as usize;
        let b = rng.range(a as u64 + 1, payload.len() as u64 - 1) as usize;
        let parts = [&payload[..a], &payload[a..b], &payload[b..]];
        return http::chunked_response(status, &refs, &parts);
    }
    http::response(status, &refs, &payload)
}

// ---------------------------------------------------------------------------------------------
// Probes

const PROBE_WORDS: &[&str] = &[
    "nope", "config", "backup", "graphql", "swagger", "actuator", "metrics", "console", "private",
    "tmp", "old", "test", "dev", "staging", "beta",
];
/// Scanner favourites; each is sent at most twice so no probe path repeats more.
const SCANNER_PATHS: &[&str] = &[
    "/.env",
    "/.git/config",
    "/wp-admin/setup-config.php",
    "/wp-login.php",
    "/phpmyadmin/index.php",
    "/cgi-bin/luci",
    "/server-status",
    "/backup.sql",
    "/config.json",
    "/actuator/health",
    "/solr/admin/info/system",
    "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
    "/owa/auth/logon.aspx",
    "/boaform/admin/formLogin",
    "/xmlrpc.php",
];

fn probe(rng: &mut Rng, host: Host, scanner_uses: &mut [u8]) -> (&'static str, String) {
    loop {
        let roll = rng.below(100);
        let path = match (host, roll) {
            (_, 0..=24) => {
                let i = rng.below(SCANNER_PATHS.len() as u64) as usize;
                if scanner_uses[i] >= 2 {
                    continue;
                }
                scanner_uses[i] += 1;
                SCANNER_PATHS[i].to_string()
            }
            (Host::Auth, _) => {
                format!("/oauth/{}/{}", rng.pick(PROBE_WORDS), rng.range(1, 999_999))
            }
            (Host::Api, 25..=59) => {
                format!(
                    "/api/v2/{}/{}",
                    rng.pick(PROBE_WORDS),
                    rng.range(1, 999_999)
                )
            }
            (Host::Api, 60..=74) => format!("/api/v2/{}/{}", rng.pick(PROBE_WORDS), uuid(rng)),
            (Host::Api, 75..=89) => {
                format!("/api/v2/users/{}/../../etc/passwd", rng.range(1, 999_999))
            }
            (Host::Api, _) => {
                let path = format!(
                    "/api/v2/{}/{}",
                    rng.pick(PROBE_WORDS),
                    rng.range(1, 999_999)
                );
                return ("POST", path);
            }
        };
        return ("GET", path);
    }
}

fn probe_exchange(
    rng: &mut Rng,
    host: Host,
    client: &Client,
    uses: &mut [u8],
) -> (Vec<u8>, Vec<u8>) {
    let (method, path) = probe(rng, host, uses);
    let body = if method == "POST" {
        Body::Json(json!({"test": true}))
    } else {
        Body::None
    };
    let scheme = if host == Host::Api && rng.chance(40) {
        Scheme::BearerJwt
    } else {
        Scheme::None
    };
    let req = render_request(method, &path, host, scheme, client, &body);
    let resp = if path.starts_with("/api/") || path.starts_with("/oauth/") {
        render_response(
            rng,
            404,
            Some(br#"{"error":"not_found"}"#),
            JSON,
            &[],
            false,
            0,
        )
    } else {
        let html = b"<html><head><title>404 Not Found</title></head><body><h1>404 Not Found</h1></body></html>";
        render_response(rng, 404, Some(html), "text/html", &[], false, 0)
    };
    (req, resp)
}

// ---------------------------------------------------------------------------------------------
// Assembly

#[derive(Clone, Copy, Debug)]
enum Job {
    Route(usize),
    Probe,
}

/// One request/response pair as sent, for tests that check the labels against the bytes.
#[derive(Clone, Debug)]
#[cfg_attr(not(test), allow(dead_code))]
struct Sent {
    /// Index in [`ROUTES`], None for a probe.
    route: Option<usize>,
    request: Vec<u8>,
    response: Vec<u8>,
}

fn build(s: &ApiScenario) -> (ApiTraffic, Vec<Sent>) {
    assert!(
        (1..=10_000).contains(&s.clients),
        "testkit::api: 1 to 10000 clients"
    );
    let needed = ApiScenario::min_transactions(s.probes);
    assert!(
        s.transactions >= needed,
        "testkit::api: {} transactions cannot give every route its minimum calls (need {needed})",
        s.transactions
    );
    let mut rng = Rng::new(s.seed);

    let mut calls: Vec<u64> = ROUTES.iter().map(RouteDef::min_calls).collect();
    let total_weight: u64 = ROUTES.iter().map(|r| r.weight).sum();
    for _ in needed..s.transactions {
        let mut x = rng.below(total_weight);
        let i = ROUTES
            .iter()
            .position(|r| {
                let hit = x < r.weight;
                x = x.saturating_sub(r.weight);
                hit
            })
            .expect("x is below the total weight");
        calls[i] += 1;
    }

    let alg_none = s.clients >= 2;
    let mut clients: Vec<Client> = (0..s.clients)
        .map(|i| Client::new(&mut rng, i, alg_none && i == s.clients - 1))
        .collect();

    let mut names: Vec<String> = FIRST
        .iter()
        .flat_map(|f| LAST.iter().map(move |l| format!("{f}-{l}")))
        .collect();
    rng.shuffle(&mut names);
    let mut ctx = Ctx {
        profile_names: names,
        profile_calls: 0,
    };

    let mut jobs: [Vec<Job>; 2] = [Vec::new(), Vec::new()];
    for (i, r) in ROUTES.iter().enumerate() {
        let host = r.host as usize;
        jobs[host].extend(std::iter::repeat_n(Job::Route(i), calls[i] as usize));
    }
    for _ in 0..s.probes {
        jobs[if rng.chance(85) { 0 } else { 1 }].push(Job::Probe);
    }

    let mut scanner_uses = vec![0u8; SCANNER_PATHS.len()];
    let mut sent = Vec::with_capacity(s.transactions);
    let mut rendered = Vec::new();
    let link = LinkOpts::default();
    let mut opened = 0;
    for (host, mut queue) in [Host::Api, Host::Auth].into_iter().zip(jobs) {
        rng.shuffle(&mut queue);
        let mut rest = &queue[..];
        while !rest.is_empty() {
            let n = (1 + rng.below(20) as usize).min(rest.len());
            let (conn, tail) = rest.split_at(n);
            rest = tail;
            // Every client opens one connection before any opens a second, so all are seen.
            let ci = if opened < clients.len() {
                opened
            } else {
                rng.below(clients.len() as u64) as usize
            };
            opened += 1;
            let port = clients[ci].port(&mut rng);
            let client = &clients[ci];
            let start =
                Timestamp::from_secs(START_SECS).plus_nanos(rng.below(RUN_SECS * 1_000_000_000));
            let mut c =
                Conversation::new(SocketAddr::new(IpAddr::V4(client.ip), port), host.server())
                    .with_start(start)
                    .with_isn(rng.next_u64() as u32, rng.next_u64() as u32);
            c.handshake();
            for (k, job) in conn.iter().enumerate() {
                let think_ms = if k == 0 {
                    rng.range(1, 20)
                } else {
                    rng.range(5, 1500)
                };
                c.advance(think_ms * 1_000_000);
                let (route, request, response, slow) = match *job {
                    Job::Route(i) => {
                        let r = &ROUTES[i];
                        let ex = exchange(&mut rng, &mut ctx, r, client);
                        let req =
                            render_request(r.method, &ex.target, host, r.scheme, client, &ex.body);
                        let body = ex
                            .response
                            .as_ref()
                            .map(|v| serde_json::to_vec(v).expect("JSON values serialize"));
                        let resp = render_response(
                            &mut rng,
                            ex.status,
                            body.as_deref(),
                            "application/json; charset=utf-8",
                            &ex.response_headers,
                            client.gzip,
                            ex.chunk_percent,
                        );
                        (Some(i), req, resp, ex.status >= 500)
                    }
                    Job::Probe => {
                        let (req, resp) = probe_exchange(&mut rng, host, client, &mut scanner_uses);
                        (None, req, resp, false)
                    }
                };
                c.client(&request);
                let latency_ms = if slow {
                    rng.range(800, 3000)
                } else {
                    rng.range(1, 60)
                };
                c.advance(latency_ms * 1_000_000 + rng.below(1_000_000));
                c.server(&response);
                sent.push(Sent {
                    route,
                    request,
                    response,
                });
            }
            c.advance(rng.range(10, 3000) * 1_000_000);
            c.close();
            rendered.push(c.render(&link));
        }
    }

    let mut labels = Labels {
        routes: Vec::new(),
        unused: Vec::new(),
        exposures: exposures(),
        probes: s.probes as u64,
        transactions: s.transactions as u64,
        alg_none_client: alg_none.then(|| IpAddr::V4(clients[s.clients - 1].ip)),
    };
    for (r, &n) in ROUTES.iter().zip(&calls) {
        match r.status {
            RouteStatus::Unused => labels.unused.push(r.label(0)),
            _ => labels.routes.push(r.label(n)),
        }
    }
    let traffic = ApiTraffic {
        frames: merge(rendered),
        labels,
        spec_yaml: spec_yaml(),
    };
    (traffic, sent)
}

// ---------------------------------------------------------------------------------------------
// The reference spec

fn path_param_schema(name: &str) -> &'static str {
    match name {
        "userId" | "itemId" => "{type: integer, format: int64, minimum: 1}",
        "orderId" => "{type: string, format: uuid}",
        "sku" => "{type: string, pattern: '^SKU-[0-9]{6}$'}",
        "date" => "{type: string, format: date}",
        "sha256" => "{type: string, pattern: '^[0-9a-f]{64}$'}",
        "username" => "{type: string, pattern: '^[a-z]+(-[a-z]+)*$'}",
        _ => "{type: string}",
    }
}

/// Both hosts are top-level servers, so a reader that only looks there knows the spec covers
/// them; each path also names its own host as a path-level server.
fn spec_yaml() -> String {
    let mut y = String::from(SPEC_HEAD);
    let mut paths: Vec<&'static str> = Vec::new();
    for d in ROUTES.iter().filter_map(|r| r.spec) {
        if !paths.contains(&d.path) {
            paths.push(d.path);
        }
    }
    for path in paths {
        let ops: Vec<(&RouteDef, SpecDoc)> = ROUTES
            .iter()
            .filter_map(|r| r.spec.filter(|d| d.path == path).map(|d| (r, d)))
            .collect();
        let _ = writeln!(y, "  {path}:");
        let _ = writeln!(
            y,
            "    servers:\n      - url: http://{}",
            ops[0].0.host.name()
        );
        for (r, d) in ops {
            let _ = writeln!(y, "    {}:", r.method.to_ascii_lowercase());
            let _ = writeln!(y, "      operationId: {}", d.operation_id);
            let _ = writeln!(y, "      summary: {}", d.summary);
            if r.status == RouteStatus::Zombie {
                y.push_str("      deprecated: true\n");
            }
            match r.scheme.spec_name() {
                Some(name) => {
                    let _ = writeln!(y, "      security:\n        - {name}: []");
                }
                None => y.push_str("      security: []\n"),
            }
            let path_params: Vec<&str> = path
                .split('/')
                .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            if !path_params.is_empty() || !d.query.is_empty() {
                y.push_str("      parameters:\n");
                for p in path_params {
                    let _ = writeln!(
                        y,
                        "        - name: {p}\n          in: path\n          required: true\n          schema: {}",
                        path_param_schema(p)
                    );
                }
                for q in d.query {
                    let _ = writeln!(y, "        - $ref: '#/components/parameters/{q}'");
                }
            }
            if let Some((media, schema)) = d.body {
                let _ = writeln!(
                    y,
                    "      requestBody:\n        required: true\n        content:\n          {media}:\n            schema:\n              $ref: '#/components/schemas/{schema}'"
                );
            }
            y.push_str("      responses:\n");
            let (ok, schema) = d.ok;
            let _ = writeln!(
                y,
                "        '{ok}':\n          description: {}",
                http::reason(ok)
            );
            if let Some(schema) = schema {
                let _ = writeln!(
                    y,
                    "          content:\n            application/json:\n              schema:\n                $ref: '#/components/schemas/{schema}'"
                );
            }
            for e in d.errors {
                let _ = writeln!(
                    y,
                    "        '{e}':\n          $ref: '#/components/responses/Error'"
                );
            }
        }
    }
    y.push_str(SPEC_COMPONENTS);
    y
}

const SPEC_HEAD: &str = "openapi: 3.1.0
info:
  title: Shop API
  version: 2.14.3
  description: Public API of the shop (api.shop.test) and its authorization server (auth.shop.test).
servers:
  - url: http://api.shop.test
  - url: http://auth.shop.test
security:
  - bearerJwt: []
paths:
";

const SPEC_COMPONENTS: &str = "components:
  securitySchemes:
    bearerJwt:
      type: http
      scheme: bearer
      bearerFormat: JWT
    apiKeyHeader:
      type: apiKey
      in: header
      name: X-API-Key
    apiKeyQuery:
      type: apiKey
      in: query
      name: api_key
    basicAuth:
      type: http
      scheme: basic
    sessionCookie:
      type: apiKey
      in: cookie
      name: sessionid
  parameters:
    Page:
      name: page
      in: query
      schema: {type: integer, minimum: 1}
    Limit:
      name: limit
      in: query
      schema: {type: integer, minimum: 1, maximum: 100}
    Query:
      name: q
      in: query
      required: true
      schema: {type: string, minLength: 1}
    Category:
      name: category
      in: query
      schema: {type: string}
  responses:
    Error:
      description: Error
      content:
        application/json:
          schema:
            $ref: '#/components/schemas/Error'
  schemas:
    Error:
      type: object
      required: [error]
      properties:
        error: {type: string}
        message: {type: string}
    Health:
      type: object
      required: [status]
      properties:
        status: {type: string}
    Status:
      type: object
      properties:
        status: {type: string}
        version: {type: string}
        uptime_s: {type: integer}
        components:
          type: array
          items:
            type: object
            properties:
              name: {type: string}
              healthy: {type: boolean}
              latency_ms: {type: integer}
    UserSummary:
      type: object
      properties:
        id: {type: integer}
        username: {type: string}
        created_at: {type: string, format: date-time}
    UserList:
      type: object
      properties:
        page: {type: integer}
        limit: {type: integer}
        total: {type: integer}
        users:
          type: array
          items:
            $ref: '#/components/schemas/UserSummary'
    UserCreate:
      type: object
      required: [username, password, profile]
      properties:
        username: {type: string}
        password: {type: string, format: password, writeOnly: true}
        profile:
          type: object
          properties:
            display_name: {type: string}
            locale: {type: string}
        newsletter: {type: boolean}
        referral_code: {type: string}
    UserCreated:
      type: object
      properties:
        id: {type: integer}
        username: {type: string}
        created_at: {type: string, format: date-time}
    Address:
      type: object
      properties:
        street: {type: string}
        city: {type: string}
        zip: {type: string}
        country: {type: string}
    User:
      type: object
      properties:
        id: {type: integer}
        username: {type: string}
        display_name: {type: string}
        email: {type: string, format: email}
        phone: {type: string}
        created_at: {type: string, format: date-time}
        roles:
          type: array
          items: {type: string}
        address:
          $ref: '#/components/schemas/Address'
    UserUpdate:
      type: object
      properties:
        display_name: {type: string}
        address:
          $ref: '#/components/schemas/Address'
        preferences:
          type: object
          properties:
            newsletter: {type: boolean}
            language: {type: string}
    Updated:
      type: object
      properties:
        id: {type: integer}
        updated_at: {type: string, format: date-time}
    Me:
      type: object
      properties:
        id: {type: integer}
        username: {type: string}
        plan: {type: string}
        roles:
          type: array
          items: {type: string}
    SearchResults:
      type: object
      properties:
        total: {type: integer}
        results:
          type: array
          items:
            type: object
            properties:
              id: {type: integer}
              username: {type: string}
    OrderList:
      type: object
      properties:
        user_id: {type: integer}
        orders:
          type: array
          items:
            type: object
            properties:
              id: {type: string, format: uuid}
              status: {type: string}
              total_cents: {type: integer}
              placed_at: {type: string, format: date-time}
    OrderCreate:
      type: object
      required: [items, shipping]
      properties:
        items:
          type: array
          items:
            type: object
            properties:
              sku: {type: string}
              qty: {type: integer}
        shipping:
          type: object
          properties:
            method: {type: string}
            address:
              $ref: '#/components/schemas/Address'
        coupon: {type: string}
        gift_note: {type: string}
    OrderCreated:
      type: object
      properties:
        id: {type: string, format: uuid}
        status: {type: string}
        total_cents: {type: integer}
    Order:
      type: object
      properties:
        id: {type: string, format: uuid}
        status: {type: string}
        placed_at: {type: string, format: date-time}
        items:
          type: array
          items:
            type: object
            properties:
              sku: {type: string}
              qty: {type: integer}
              price_cents: {type: integer}
        payment:
          type: object
          properties:
            method: {type: string}
            brand: {type: string}
            card_number: {type: string}
            exp_month: {type: integer}
            exp_year: {type: integer}
        shipping:
          type: object
          properties:
            method: {type: string}
            address:
              $ref: '#/components/schemas/Address'
    OrderItem:
      type: object
      properties:
        order_id: {type: string, format: uuid}
        item_id: {type: integer}
        sku: {type: string}
        qty: {type: integer}
        price_cents: {type: integer}
        product:
          type: object
          properties:
            name: {type: string}
            category: {type: string}
    Product:
      type: object
      properties:
        sku: {type: string}
        name: {type: string}
        price_cents: {type: integer}
        stock:
          type: object
          properties:
            warehouse: {type: string}
            qty: {type: integer}
        attributes:
          type: object
          additionalProperties: {type: string}
    ProductCreate:
      type: object
      required: [sku, name, price_cents]
      properties:
        sku: {type: string}
        name: {type: string}
        price_cents: {type: integer}
    ProductList:
      type: object
      properties:
        page: {type: integer}
        items:
          type: array
          items:
            type: object
            properties:
              sku: {type: string}
              name: {type: string}
              price_cents: {type: integer}
              tags:
                type: array
                items: {type: string}
    Report:
      type: object
      properties:
        date: {type: string, format: date}
        orders: {type: integer}
        revenue_cents: {type: integer}
        top_products:
          type: array
          items:
            type: object
            properties:
              sku: {type: string}
              units: {type: integer}
    FileMeta:
      type: object
      properties:
        sha256: {type: string}
        size: {type: integer}
        content_type: {type: string}
        uploaded_at: {type: string, format: date-time}
        tags:
          type: array
          items: {type: string}
    Profile:
      type: object
      properties:
        username: {type: string}
        display_name: {type: string}
        bio: {type: string}
        followers: {type: integer}
        avatar_url: {type: string, format: uri}
    TokenRequest:
      type: object
      required: [grant_type]
      properties:
        grant_type: {type: string, enum: [client_credentials]}
        scope: {type: string}
    TokenResponse:
      type: object
      properties:
        access_token: {type: string}
        token_type: {type: string}
        expires_in: {type: integer}
        scope: {type: string}
    RevokeRequest:
      type: object
      required: [token]
      properties:
        token: {type: string}
        token_type_hint: {type: string}
    UserInfo:
      type: object
      properties:
        sub: {type: string}
        name: {type: string}
        locale: {type: string}
        email_verified: {type: boolean}
    LegacyProfile:
      type: object
      properties:
        id: {type: integer}
        username: {type: string}
        bio: {type: string}
        joined: {type: string, format: date-time}
    UserV1:
      type: object
      properties:
        id: {type: integer}
        username: {type: string}
        email: {type: string}
        created: {type: string, format: date-time}
";

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::io::Read as _;
    use std::sync::OnceLock;

    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    use super::*;

    fn default_run() -> &'static (ApiTraffic, Vec<Sent>) {
        static RUN: OnceLock<(ApiTraffic, Vec<Sent>)> = OnceLock::new();
        RUN.get_or_init(|| build(&ApiScenario::default()))
    }

    fn small(seed: u64) -> ApiScenario {
        ApiScenario {
            seed,
            clients: 8,
            transactions: ApiScenario::min_transactions(20) + 50,
            probes: 20,
        }
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
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
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

        fn query(&self) -> Vec<(&str, String)> {
            match self.target().split_once('?') {
                Some((_, q)) => form_pairs(q),
                None => Vec::new(),
            }
        }

        fn status(&self) -> u16 {
            self.start_line.split(' ').nth(1).unwrap().parse().unwrap()
        }
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    fn percent_decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'%' if i + 2 < b.len() => {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn form_pairs(q: &str) -> Vec<(&str, String)> {
        q.split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k, percent_decode(v))
            })
            .collect()
    }

    /// One HTTP/1.1 message at the start of `data` and the bytes it took; panics on anything
    /// malformed (wrong lengths, bad chunking, bad gzip).
    fn parse_message(data: &[u8], response: bool) -> (Msg, usize) {
        let end = find(data, b"\r\n\r\n").expect("end of head");
        let head = std::str::from_utf8(&data[..end]).expect("ASCII head");
        let mut lines = head.split("\r\n");
        let start_line = lines.next().unwrap().to_string();
        let headers: Vec<(String, String)> = lines
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
                    .expect("hex chunk size");
                pos = eol + 2;
                if size == 0 {
                    assert_eq!(&data[pos..pos + 2], b"\r\n", "empty trailer");
                    pos += 2;
                    break;
                }
                msg.body.extend_from_slice(&data[pos..pos + size]);
                pos += size;
                assert_eq!(&data[pos..pos + 2], b"\r\n", "chunk end");
                pos += 2;
            }
        } else if let Some(n) = msg.header("Content-Length") {
            let n: usize = n.parse().unwrap();
            msg.body = data[pos..pos + n].to_vec();
            pos += n;
        } else {
            assert!(
                !response || msg.status() == 204,
                "a response without length: {}",
                msg.start_line
            );
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

    fn parse_stream(mut data: &[u8], response: bool) -> Vec<Msg> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let (m, n) = parse_message(data, response);
            out.push(m);
            data = &data[n..];
        }
        out
    }

    fn parse_one(data: &[u8], response: bool) -> Msg {
        let (m, n) = parse_message(data, response);
        assert_eq!(n, data.len(), "one message exactly");
        m
    }

    /// The called route a request goes to: a template matching segment by segment, literal
    /// segments preferred over parameters (so `/users/me` is not `/users/{id}`).
    fn route_of(host: &str, req: &Msg) -> Option<usize> {
        let segs: Vec<&str> = req.path().split('/').collect();
        ROUTES
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.status != Unused && r.host.name() == host && r.method == req.method()
            })
            .filter_map(|(i, r)| {
                let t: Vec<&str> = r.template.split('/').collect();
                let matches = t.len() == segs.len()
                    && t.iter()
                        .zip(&segs)
                        .all(|(t, s)| t.starts_with('{') && !s.is_empty() || t == s);
                matches.then(|| (t.iter().filter(|t| !t.starts_with('{')).count(), i))
            })
            .max()
            .map(|(_, i)| i)
    }

    fn spec_operations(yaml: &str) -> Vec<(String, String, bool)> {
        let mut ops: Vec<(String, String, bool)> = Vec::new();
        let mut path = String::new();
        let body = &yaml[yaml.find("\npaths:\n").unwrap()..yaml.find("\ncomponents:\n").unwrap()];
        for line in body.lines() {
            if let Some(p) = line.strip_prefix("  /") {
                path = format!("/{}", p.strip_suffix(':').unwrap());
            } else if let Some(m) = line.strip_prefix("    ").and_then(|m| m.strip_suffix(':')) {
                if ["get", "put", "post", "delete", "patch"].contains(&m) {
                    ops.push((m.to_ascii_uppercase(), path.clone(), false));
                }
            } else if line == "      deprecated: true" {
                ops.last_mut().unwrap().2 = true;
            }
        }
        ops
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let a = generate(&small(7));
        let b = generate(&small(7));
        assert_eq!(a.frames, b.frames);
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.spec_yaml, b.spec_yaml);
        let c = generate(&small(8));
        assert_ne!(a.frames, c.frames);
    }

    #[test]
    #[should_panic(expected = "minimum calls")]
    fn too_few_transactions_is_refused() {
        generate(&ApiScenario {
            transactions: 500,
            ..ApiScenario::default()
        });
    }

    #[test]
    fn same_route_ignores_placeholder_names_only() {
        assert!(same_route("/api/v2/users/{id}", "/api/v2/users/{userId}"));
        assert!(same_route(
            "/api/v2/orders/{uuid}/items/{id}",
            "/api/v2/orders/{orderId}/items/{itemId}"
        ));
        assert!(!same_route("/api/v2/users/{id}", "/api/v2/users/me"));
        assert!(!same_route("/api/v2/users/{id}", "/api/v1/users/{id}"));
        assert!(!same_route(
            "/api/v2/users/{id}",
            "/api/v2/users/{id}/orders"
        ));
    }

    #[test]
    fn labels_are_consistent_with_spec_and_sends() {
        let (t, sent) = default_run();
        let l = &t.labels;
        let s = ApiScenario::default();
        assert_eq!(l.transactions, s.transactions as u64);
        assert_eq!(l.probes, s.probes as u64);
        assert_eq!(
            l.routes.iter().map(|r| r.calls).sum::<u64>() + l.probes,
            l.transactions
        );
        assert_eq!(sent.len() as u64, l.transactions);
        assert_eq!(
            sent.iter().filter(|x| x.route.is_none()).count() as u64,
            l.probes
        );
        for r in &l.routes {
            assert!(r.calls >= MIN_CALLS, "{r:?}");
            assert_ne!(r.status, RouteStatus::Unused);
            let i = ROUTES
                .iter()
                .position(|d| d.template == r.template && d.method == r.method)
                .unwrap();
            assert_eq!(
                sent.iter().filter(|x| x.route == Some(i)).count() as u64,
                r.calls,
                "{r:?}"
            );
        }
        let count = |st| l.routes.iter().filter(|r| r.status == st).count();
        assert!((15..=20).contains(&count(Documented)));
        assert!(count(Shadow) >= 3 && count(Zombie) >= 2);
        assert!((2..=3).contains(&l.unused.len()));
        assert!(l.unused.iter().all(|r| r.status == Unused && r.calls == 0));
        let hosts: BTreeSet<&str> = l.routes.iter().map(|r| r.host.as_str()).collect();
        assert_eq!(hosts.len(), 2);

        let ops = spec_operations(&t.spec_yaml);
        let in_spec = |r: &RouteLabel| {
            ops.iter()
                .find(|(m, p, _)| *m == r.method && same_route(p, &r.template))
                .map(|(_, _, deprecated)| *deprecated)
        };
        for r in l.routes.iter().chain(&l.unused) {
            match r.status {
                Shadow => assert_eq!(in_spec(r), None, "{r:?}"),
                Zombie => assert_eq!(in_spec(r), Some(true), "{r:?}"),
                Documented | Unused => assert_eq!(in_spec(r), Some(false), "{r:?}"),
            }
        }
        assert_eq!(ops.len(), l.routes.len() - count(Shadow) + l.unused.len());
        // The old version is an older copy of a current path.
        assert!(ops
            .iter()
            .any(|(m, p, d)| m == "GET" && p == "/api/v1/users/{userId}" && *d));
        assert!(ops
            .iter()
            .any(|(m, p, d)| m == "GET" && p == "/api/v2/users/{userId}" && !*d));
        for e in &l.exposures {
            assert!(l.route(&e.host, &e.method, &e.template).is_some(), "{e:?}");
        }
        let auths: BTreeSet<Option<&str>> = l.routes.iter().map(|r| r.auth).collect();
        for a in [
            None,
            Some("bearer_jwt"),
            Some("bearer"),
            Some("basic"),
            Some("api_key"),
            Some("session_cookie"),
        ] {
            assert!(auths.contains(&a), "{a:?}");
        }
    }

    /// Decodes every frame as Ethernet/IPv4/TCP, reassembles each connection and parses its
    /// HTTP: requests and responses pair up, each request goes to its labelled route, and
    /// parameters take many values.
    #[test]
    fn frames_carry_exactly_the_labelled_traffic() {
        let (t, _) = default_run();
        let l = &t.labels;
        let mut conns: BTreeMap<(SocketAddr, SocketAddr), (Vec<u8>, Vec<u8>)> = BTreeMap::new();
        for w in t.frames.windows(2) {
            assert!(w[0].0 <= w[1].0, "frames in time order");
        }
        let span = t.frames.last().unwrap().0.since(t.frames[0].0);
        assert!((60_000_000_000..900_000_000_000).contains(&span), "{span}");
        for (_, f) in &t.frames {
            let p = SlicedPacket::from_ethernet(f).expect("Ethernet");
            let Some(NetSlice::Ipv4(ip)) = &p.net else {
                panic!("not IPv4")
            };
            let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
                panic!("not TCP")
            };
            let src = SocketAddr::new(ip.header().source_addr().into(), tcp.source_port());
            let dst = SocketAddr::new(
                ip.header().destination_addr().into(),
                tcp.destination_port(),
            );
            let (key, up) = if dst.port() == 80 {
                ((src, dst), true)
            } else {
                ((dst, src), false)
            };
            let e = conns.entry(key).or_default();
            if up { &mut e.0 } else { &mut e.1 }.extend_from_slice(tcp.payload());
        }

        let mut requests = 0u64;
        let mut per_route = vec![0u64; ROUTES.len()];
        let mut unmatched = 0u64;
        let mut values: BTreeMap<(usize, usize), BTreeSet<String>> = BTreeMap::new();
        let mut clients = BTreeSet::new();
        let (mut gzipped, mut chunked, mut alg_none) = (0, 0, 0);
        for ((client, server), (up, down)) in &conns {
            clients.insert(client.ip());
            let reqs = parse_stream(up, false);
            let resps = parse_stream(down, true);
            assert_eq!(reqs.len(), resps.len(), "{client} -> {server}");
            assert!((1..=20).contains(&reqs.len()));
            requests += reqs.len() as u64;
            for (req, resp) in reqs.iter().zip(&resps) {
                let host = req.header("Host").unwrap();
                let expected_server = if host == API_HOST {
                    API_SERVER
                } else {
                    AUTH_SERVER
                };
                assert_eq!(*server, expected_server);
                gzipped += (resp.header("Content-Encoding") == Some("gzip")) as u32;
                chunked += (resp.header("Transfer-Encoding") == Some("chunked")) as u32;
                if let Some(tok) = req
                    .header("Authorization")
                    .and_then(|a| a.strip_prefix("Bearer eyJ"))
                {
                    let header = URL_SAFE_NO_PAD
                        .decode(format!("eyJ{}", tok.split('.').next().unwrap()))
                        .unwrap();
                    if header.windows(12).any(|w| w == br#""alg":"none""#) {
                        assert_eq!(Some(client.ip()), l.alg_none_client);
                        alg_none += 1;
                    }
                }
                let Some(i) = route_of(host, req) else {
                    unmatched += 1;
                    assert_eq!(resp.status(), 404, "{}", req.start_line);
                    continue;
                };
                per_route[i] += 1;
                let d = ROUTES[i].spec;
                if let Some(d) = d {
                    let status = resp.status();
                    assert!(
                        status == d.ok.0 || d.errors.contains(&status),
                        "{status} undocumented on {}",
                        req.start_line
                    );
                }
                for (k, (t, v)) in ROUTES[i]
                    .template
                    .split('/')
                    .zip(req.path().split('/'))
                    .enumerate()
                {
                    if t.starts_with('{') {
                        values.entry((i, k)).or_default().insert(v.to_string());
                    }
                }
            }
        }
        assert_eq!(requests, l.transactions);
        assert_eq!(unmatched, l.probes);
        for r in &l.routes {
            let i = ROUTES
                .iter()
                .position(|d| d.template == r.template && d.method == r.method)
                .unwrap();
            assert_eq!(per_route[i], r.calls, "{r:?}");
        }
        for ((i, k), v) in &values {
            assert!(
                v.len() >= 30,
                "{} segment {k}: {} values",
                ROUTES[*i].template,
                v.len()
            );
            if ROUTES[*i].op == Op::GetProfile {
                assert!(v.len() > 64, "profile names: {}", v.len());
            }
        }
        assert_eq!(clients.len(), ApiScenario::default().clients);
        assert!(
            gzipped > 100 && chunked > 20,
            "gzip {gzipped}, chunked {chunked}"
        );
        assert!(alg_none > 0);
    }

    fn walk<'a>(v: &'a Value, path: &str, out: &mut Vec<(String, &'a Value)>) {
        let join = |k: &str| {
            if path.is_empty() {
                k.to_string()
            } else {
                format!("{path}.{k}")
            }
        };
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| walk(v, &join(k), out)),
            Value::Array(a) => a.iter().for_each(|v| walk(v, &format!("{path}[]"), out)),
            _ => out.push((path.to_string(), v)),
        }
    }

    fn is_email(s: &str) -> bool {
        let Some((local, domain)) = s.split_once('@') else {
            return false;
        };
        !local.is_empty() && domain.contains('.') && !domain.contains('@') && !s.contains(' ')
    }

    fn has_card(s: &str) -> bool {
        let mut digits = String::new();
        let mut prev_sep = false;
        for c in s.chars().chain(std::iter::once('x')) {
            if c.is_ascii_digit() {
                digits.push(c);
                prev_sep = false;
            } else if (c == ' ' || c == '-') && !digits.is_empty() && !prev_sep {
                prev_sep = true;
            } else {
                if (13..=19).contains(&digits.len()) && luhn_valid(&digits) {
                    return true;
                }
                digits.clear();
                prev_sep = false;
            }
        }
        false
    }

    fn has_ssn(s: &str) -> bool {
        let b = s.as_bytes();
        b.windows(11).enumerate().any(|(i, w)| {
            let shape = w.iter().enumerate().all(|(j, c)| {
                if j == 3 || j == 6 {
                    *c == b'-'
                } else {
                    c.is_ascii_digit()
                }
            });
            let bounded = (i == 0 || !b[i - 1].is_ascii_digit())
                && b.get(i + 11).is_none_or(|c| !c.is_ascii_digit());
            shape && bounded
        })
    }

    fn has_aws_key(s: &str) -> bool {
        s.as_bytes().windows(20).any(|w| {
            w.starts_with(b"AKIA")
                && w[4..]
                    .iter()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        })
    }

    fn is_jwt(s: &str) -> bool {
        let parts: Vec<&str> = s.split('.').collect();
        parts.len() == 3 && parts[0].starts_with("eyJ") && parts[1].starts_with("eyJ")
    }

    fn kinds_of(key: &str, value: &Value) -> Vec<&'static str> {
        let s = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut k = Vec::new();
        let leaf = key.rsplit(['.', ']']).next().unwrap_or(key);
        if ["password", "passwd", "pwd", "secret", "client_secret"].contains(&leaf) {
            k.push("password");
        }
        if is_email(&s) {
            k.push("email");
        }
        if s.starts_with('+')
            && (11..=16).contains(&s.len())
            && s[1..].bytes().all(|b| b.is_ascii_digit())
        {
            k.push("phone");
        }
        if has_card(&s) {
            k.push("payment_card");
        }
        if iban_valid(&s) {
            k.push("iban");
        }
        if has_ssn(&s) {
            k.push("national_id");
        }
        if is_jwt(&s) {
            k.push("jwt");
        }
        if s.contains("PRIVATE KEY-----") {
            k.push("private_key");
        }
        if has_aws_key(&s) {
            k.push("cloud_key");
        }
        k
    }

    /// Scans every body and query of the run with simple detectors: what they find is exactly
    /// the labelled exposures, and probes carry nothing.
    #[test]
    fn sensitive_values_occur_exactly_where_labelled() {
        let (t, sent) = default_run();
        type Key = (String, String, String, &'static str, &'static str, String);
        let mut found: BTreeSet<Key> = BTreeSet::new();
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for x in sent {
            let req = parse_one(&x.request, false);
            let resp = parse_one(&x.response, true);
            let mut fields: Vec<(&'static str, String, Value)> = Vec::new();
            for (k, v) in req.query() {
                fields.push(("query", k.to_string(), Value::String(v)));
            }
            match req.header("Content-Type") {
                Some(JSON) => {
                    let v: Value = serde_json::from_slice(&req.body).unwrap();
                    let mut leaves = Vec::new();
                    walk(&v, "", &mut leaves);
                    fields.extend(
                        leaves
                            .into_iter()
                            .map(|(p, v)| ("request_body", p, v.clone())),
                    );
                }
                Some(FORM) => {
                    for (k, v) in form_pairs(std::str::from_utf8(&req.body).unwrap()) {
                        fields.push(("request_body", k.to_string(), Value::String(v)));
                    }
                }
                _ => assert!(req.body.is_empty()),
            }
            if resp
                .header("Content-Type")
                .is_some_and(|c| c.starts_with(JSON))
            {
                let v: Value = serde_json::from_slice(&resp.body).expect("JSON response");
                let mut leaves = Vec::new();
                walk(&v, "", &mut leaves);
                fields.extend(
                    leaves
                        .into_iter()
                        .map(|(p, v)| ("response_body", p, v.clone())),
                );
            }
            for (location, field, value) in fields {
                for kind in kinds_of(&field, &value) {
                    let Some(i) = x.route else {
                        panic!("probe {} carries {kind} in {field}", req.start_line)
                    };
                    let r = &ROUTES[i];
                    found.insert((
                        r.host.name().into(),
                        r.method.into(),
                        r.template.into(),
                        kind,
                        location,
                        field.clone(),
                    ));
                    values
                        .entry(format!("{kind} {field}"))
                        .or_default()
                        .push(value.as_str().unwrap_or_default().to_string());
                }
            }
        }
        let labelled: BTreeSet<Key> = t
            .labels
            .exposures
            .iter()
            .map(|e| {
                (
                    e.host.clone(),
                    e.method.clone(),
                    e.template.clone(),
                    e.kind,
                    e.location,
                    e.field.clone(),
                )
            })
            .collect();
        assert_eq!(found, labelled);
        let cards = &values["payment_card payment.card_number"];
        assert!(cards.iter().all(|c| luhn_valid(c)) && cards.len() >= 30);
        assert!(
            cards.iter().collect::<BTreeSet<_>>().len() >= 30,
            "varied card numbers"
        );
        assert!(values["iban bank.iban"].iter().all(|i| iban_valid(i)));
        for s in &values["national_id ssn"] {
            let area: u32 = s[..3].parse().unwrap();
            assert!(area != 0 && area != 666 && area < 900, "{s}");
        }
    }

    #[test]
    fn probes_are_404s_to_varied_paths() {
        let (_, sent) = default_run();
        let mut paths: BTreeMap<String, u32> = BTreeMap::new();
        for x in sent.iter().filter(|x| x.route.is_none()) {
            let req = parse_one(&x.request, false);
            assert_eq!(parse_one(&x.response, true).status(), 404);
            *paths.entry(req.target().to_string()).or_default() += 1;
        }
        assert!(paths.values().all(|&n| n <= 2), "{paths:?}");
        assert!(paths.len() >= 80);
    }

    #[test]
    fn generated_cards_and_ibans_check_out() {
        assert!(luhn_valid("4111111111111111") && !luhn_valid("4111111111111112"));
        assert!(iban_valid("GB82WEST12345698765432") && !iban_valid("GB82WEST12345698765433"));
        let mut rng = Rng::new(3);
        for _ in 0..1000 {
            let (_, number) = card(&mut rng);
            assert!(
                luhn_valid(&number) && (15..=16).contains(&number.len()),
                "{number}"
            );
            let (iban, _) = iban(&mut rng);
            assert!(iban_valid(&iban) && iban.len() == 18, "{iban}");
            assert!(has_ssn(&ssn(&mut rng)));
            assert!(!has_card(&uuid(&mut rng)) && !has_card(&sha256_hex(&mut rng)));
        }
    }

    #[test]
    fn jwts_are_compact_and_decodable() {
        let mut rng = Rng::new(5);
        for alg_none in [false, true] {
            let t = jwt(&mut rng, "user-42", START_SECS, alg_none);
            let parts: Vec<&str> = t.split('.').collect();
            assert_eq!(parts.len(), 3);
            let header: Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
            let claims: Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
            assert_eq!(header["alg"], if alg_none { "none" } else { "HS256" });
            assert_eq!(claims["sub"], "user-42");
            assert_eq!(claims["exp"].as_u64().unwrap(), START_SECS + 3600);
            assert_eq!(parts[2].is_empty(), alg_none);
        }
    }

    /// Validates the spec with Python's openapi-spec-validator when it is installed.
    #[test]
    fn spec_is_valid_openapi() {
        let (t, _) = default_run();
        assert!(t.spec_yaml.starts_with("openapi: 3.1.0\n"));
        let dir = std::env::temp_dir().join(format!("testkit-api-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("spec.yaml");
        std::fs::write(&file, &t.spec_yaml).unwrap();
        let script = "import sys,yaml\nfrom openapi_spec_validator import validate\nvalidate(yaml.safe_load(open(sys.argv[1])))";
        let have = std::process::Command::new("python3")
            .args(["-c", "import yaml, openapi_spec_validator"])
            .output()
            .is_ok_and(|o| o.status.success());
        if have {
            let out = std::process::Command::new("python3")
                .args(["-c", script])
                .arg(&file)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            eprintln!("openapi-spec-validator not installed: spec not validated");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
