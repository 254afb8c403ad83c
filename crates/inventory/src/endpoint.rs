//! What one endpoint has been seen to take and return, bounded per endpoint.
//!
//! Every table here has a cap; what does not fit is counted, never stored. Nothing keeps an
//! observed value except the first raw path (internal: it re-keys the entry when the template
//! is learnt later) — parameters keep names and value types, bodies keep schemas.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use features::auth::{IdHash, Scheme};
use features::sensitive::Kind;

use crate::schema::{Schema, SchemaLimits};
use crate::sketch::Sketch;

/// Caps of one endpoint's tables.
#[derive(Debug, Clone, Copy)]
pub struct EndpointLimits {
    /// Names per parameter table (query, header, cookie).
    pub params: usize,
    pub statuses: usize,
    pub content_types: usize,
    /// Clients counted by address; the rest are summed.
    pub clients: usize,
    /// Distinct credentials remembered (by keyed hash).
    pub identities: usize,
    /// Distinct (place, field, kind) sensitive-data tags.
    pub sensitive: usize,
    /// Calls after which a parameter or field never seen before counts as unseen.
    pub warmup: u64,
}

impl Default for EndpointLimits {
    fn default() -> Self {
        EndpointLimits {
            params: 64,
            statuses: 32,
            content_types: 8,
            clients: 64,
            identities: 256,
            sensitive: 64,
            warmup: 32,
        }
    }
}

/// The type of a parameter value, by its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ValueType {
    Integer,
    Number,
    Boolean,
    Uuid,
    Date,
    DateTime,
    Email,
    String,
    Empty,
}

impl ValueType {
    pub const ALL: [ValueType; 9] = [
        ValueType::Integer,
        ValueType::Number,
        ValueType::Boolean,
        ValueType::Uuid,
        ValueType::Date,
        ValueType::DateTime,
        ValueType::Email,
        ValueType::String,
        ValueType::Empty,
    ];

    pub fn of(value: &str) -> ValueType {
        use features::segment::{classify, Shape};
        if value.is_empty() {
            return ValueType::Empty;
        }
        if value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false") {
            return ValueType::Boolean;
        }
        match classify(value) {
            Shape::Integer if value.len() <= 19 => return ValueType::Integer,
            Shape::Uuid => return ValueType::Uuid,
            Shape::Email => return ValueType::Email,
            Shape::Date if value.len() == 10 => return ValueType::Date,
            _ => {}
        }
        if is_number(value) {
            return ValueType::Number;
        }
        if is_date_time(value) {
            return ValueType::DateTime;
        }
        ValueType::String
    }

    /// OpenAPI `type` and `format`.
    pub fn openapi(self) -> (&'static str, Option<&'static str>) {
        match self {
            ValueType::Integer => ("integer", None),
            ValueType::Number => ("number", None),
            ValueType::Boolean => ("boolean", None),
            ValueType::Uuid => ("string", Some("uuid")),
            ValueType::Date => ("string", Some("date")),
            ValueType::DateTime => ("string", Some("date-time")),
            ValueType::Email => ("string", Some("email")),
            ValueType::String | ValueType::Empty => ("string", None),
        }
    }
}

fn is_number(v: &str) -> bool {
    let b = v.strip_prefix('-').unwrap_or(v).as_bytes();
    let dot = b.iter().filter(|&&c| c == b'.').count();
    dot == 1
        && b.len() > 2
        && b.first().is_some_and(u8::is_ascii_digit)
        && b.last().is_some_and(u8::is_ascii_digit)
        && b.iter().all(|c| c.is_ascii_digit() || *c == b'.')
}

fn is_date_time(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() >= 19
        && b.len() <= 40
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b't' || b[10] == b' ')
        && b[13] == b':'
}

/// One parameter name's statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParamStat {
    pub count: u64,
    pub types: [u64; ValueType::ALL.len()],
}

impl ParamStat {
    /// The single type that describes every non-empty value seen.
    pub fn value_type(&self) -> ValueType {
        let seen: Vec<ValueType> = ValueType::ALL
            .iter()
            .copied()
            .filter(|t| *t != ValueType::Empty && self.types[*t as usize] > 0)
            .collect();
        match seen.as_slice() {
            [] => ValueType::String,
            [one] => *one,
            many if many
                .iter()
                .all(|t| matches!(t, ValueType::Integer | ValueType::Number)) =>
            {
                ValueType::Number
            }
            _ => ValueType::String,
        }
    }
}

/// Parameter names of one place (query, header or cookie), capped.
#[derive(Debug, Clone, Default)]
pub struct ParamTable {
    pub names: BTreeMap<Box<str>, ParamStat>,
    /// Occurrences of names that did not fit.
    pub dropped: u64,
    /// Names and (name, value type) pairs seen for the first time, so far.
    pub(crate) news: u64,
}

impl ParamTable {
    /// Counts one occurrence; true when the name is new to this table.
    fn add(&mut self, name: &str, value: &str, cap: usize) -> bool {
        let kind = ValueType::of(value);
        if let Some(stat) = self.names.get_mut(name) {
            stat.count += 1;
            self.news += u64::from(stat.types[kind as usize] == 0);
            stat.types[kind as usize] += 1;
            return false;
        }
        if self.names.len() >= cap {
            self.dropped += 1;
            return false;
        }
        self.news += 1;
        let mut stat = ParamStat {
            count: 1,
            ..Default::default()
        };
        stat.types[kind as usize] = 1;
        self.names.insert(name.into(), stat);
        true
    }

    fn merge(&mut self, other: &ParamTable, cap: usize) {
        self.dropped += other.dropped;
        for (name, s) in &other.names {
            let len = self.names.len();
            match self.names.get_mut(name) {
                Some(mine) => {
                    mine.count += s.count;
                    for (a, b) in mine.types.iter_mut().zip(s.types) {
                        *a += b;
                    }
                }
                None if len < cap => {
                    self.names.insert(name.clone(), s.clone());
                }
                None => self.dropped += s.count,
            }
        }
    }
}

/// Where a sensitive value was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Place {
    Path,
    Query,
    Header,
    RequestBody,
    ResponseBody,
}

impl Place {
    pub fn as_str(self) -> &'static str {
        match self {
            Place::Path => "path",
            Place::Query => "query",
            Place::Header => "header",
            Place::RequestBody => "request_body",
            Place::ResponseBody => "response_body",
        }
    }
}

/// A JSON body's schema, per content kind seen.
#[derive(Debug, Clone)]
pub struct BodyStats {
    pub schema: Schema,
    pub content_types: BTreeMap<Box<str>, u64>,
    pub sizes: Sketch,
    /// Bodies looked into (parsed, scanned): all of the first ones, then a sample.
    pub inspected: u64,
}

impl BodyStats {
    fn new(limits: SchemaLimits) -> Self {
        BodyStats {
            schema: Schema::new(limits),
            content_types: BTreeMap::new(),
            sizes: Sketch::new(),
            inspected: 0,
        }
    }
}

/// Which of an endpoint's calls past its first bodies get their parameters, headers and bodies
/// looked into: one in `every`, on calls that are multiples of the base rate. `every` doubles,
/// up to a cap, after an inspection that taught the endpoint nothing, and falls back to the
/// base rate after one that did: a settled API costs few inspections, a changing one is
/// followed closely. With the cap at the base rate it is a fixed one-in-`base` sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BodySampling {
    every: u64,
    /// The call to inspect next; 0 before the first sampled call is set.
    next: u64,
}

impl BodySampling {
    /// Whether call number `calls` (past the first `in_full`) is inspected.
    pub(crate) fn due(&mut self, calls: u64, in_full: u64, base: u64) -> bool {
        if self.next == 0 {
            self.every = base.max(1);
            self.next = (in_full / self.every + 1).saturating_mul(self.every);
        }
        calls >= self.next
    }

    /// After inspecting call `calls`: whether it taught the endpoint anything.
    pub(crate) fn inspected(&mut self, calls: u64, taught: bool, base: u64, cap: u64) {
        let base = base.max(1);
        self.every = if taught {
            base
        } else {
            self.every.saturating_mul(2).clamp(base, cap.max(base))
        };
        // Kept on multiples of `every` (a multiple of the base), as a fixed sample would be.
        self.next = (calls / self.every + 1).saturating_mul(self.every);
    }
}

/// A credential's scheme, location (`header`, `query`, `cookie`) and name.
pub type AuthKey = (Scheme, &'static str, Box<str>);

/// Distinct identities as a HyperLogLog of 256 registers (standard error about 6.5 %). The
/// identities are keyed hashes already, so their bytes are the hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentitySketch {
    registers: Box<[u8; 256]>,
}

impl Default for IdentitySketch {
    fn default() -> Self {
        IdentitySketch {
            registers: Box::new([0; 256]),
        }
    }
}

impl IdentitySketch {
    pub fn insert(&mut self, id: &IdHash) {
        // The second half of the hash: entity tables key identities by the first.
        let h = u64::from_le_bytes(id.0[8..16].try_into().unwrap_or_default());
        let register = &mut self.registers[(h >> 56) as usize];
        let rank = ((h << 8).leading_zeros() + 1).min(57) as u8;
        *register = (*register).max(rank);
    }

    pub fn merge(&mut self, other: &IdentitySketch) {
        for (mine, theirs) in self.registers.iter_mut().zip(other.registers.iter()) {
            *mine = (*mine).max(*theirs);
        }
    }

    pub fn estimate(&self) -> u64 {
        let sum: f64 = self.registers.iter().map(|&r| (-f64::from(r)).exp2()).sum();
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        features::entity::hyperloglog_estimate(self.registers.len(), sum, zeros).round() as u64
    }
}

/// Everything known of one endpoint (host, method, template).
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The first path seen under this entry; internal only (it may hold an identifier).
    pub(crate) sample_path: Box<str>,
    /// `METHOD /template`, shared with every record of the endpoint.
    pub route: engine::Label,
    /// Of the route, for every transaction: its entity key (`key_hash` of the text) and which
    /// '/'-separated part of a path holds its last parameter (the object a request names).
    pub(crate) route_key: u64,
    pub(crate) object_part: Option<usize>,
    pub first_seen: u64,
    pub last_seen: u64,
    pub calls: u64,
    pub statuses: BTreeMap<u16, u64>,
    /// Transactions with no response.
    pub unanswered: u64,
    pub query: ParamTable,
    pub headers: ParamTable,
    pub cookies: ParamTable,
    pub request: BodyStats,
    pub response: BodyStats,
    /// Request first byte → response last byte, nanoseconds.
    pub latency: Sketch,
    pub clients: BTreeMap<IpAddr, u64>,
    /// Calls from clients past the `clients` cap.
    pub other_clients: u64,
    /// (scheme, where, name) → requests carrying it.
    pub auth: BTreeMap<AuthKey, u64>,
    /// Successful (2xx) answers to requests that carried no credential.
    pub unauthenticated_success: u64,
    pub success: u64,
    /// The identities seen, exactly, up to the `identities` cap.
    pub identities: BTreeSet<IdHash>,
    /// Every identity seen, as a sketch: the count once the exact set is full.
    pub identity_sketch: IdentitySketch,
    /// The exact set filled up: [`Endpoint::identity_count`] is the sketch's estimate.
    pub identities_capped: bool,
    last_identity: Option<IdHash>,
    /// (place, field, kind) → times found.
    pub sensitive: BTreeMap<(Place, Box<str>, Kind), u64>,
    pub sensitive_dropped: u64,
    /// JWTs signed with `alg: none` (or not signed) seen on this endpoint.
    pub unsigned_tokens: u64,
    /// The first transaction seen (flow uid, index on the flow), for alerts to point at.
    pub evidence: Option<(Box<str>, u32)>,
    /// The server address of that first transaction.
    pub server: Option<std::net::SocketAddr>,
    pub(crate) sampling: BodySampling,
}

impl Endpoint {
    /// Names the endpoint `METHOD /template`.
    pub(crate) fn set_route(&mut self, route: engine::Label) {
        self.route_key = features::entity::key_hash(route.as_bytes());
        let template = route.split_once(' ').map_or("", |(_, t)| t);
        self.object_part = memchr::memrchr(b'{', template.as_bytes())
            .map(|brace| memchr::memchr_iter(b'/', &template.as_bytes()[..brace]).count());
        self.route = route;
    }

    pub(crate) fn new(sample_path: &str, now: u64, schema: SchemaLimits) -> Self {
        Endpoint {
            sample_path: sample_path.into(),
            route: engine::Label::default(),
            route_key: 0,
            object_part: None,
            first_seen: now,
            last_seen: now,
            calls: 0,
            statuses: BTreeMap::new(),
            unanswered: 0,
            query: ParamTable::default(),
            headers: ParamTable::default(),
            cookies: ParamTable::default(),
            request: BodyStats::new(schema),
            response: BodyStats::new(schema),
            latency: Sketch::new(),
            clients: BTreeMap::new(),
            other_clients: 0,
            auth: BTreeMap::new(),
            unauthenticated_success: 0,
            success: 0,
            identities: BTreeSet::new(),
            identity_sketch: IdentitySketch::default(),
            identities_capped: false,
            last_identity: None,
            sensitive: BTreeMap::new(),
            sensitive_dropped: 0,
            unsigned_tokens: 0,
            evidence: None,
            server: None,
            sampling: BodySampling::default(),
        }
    }

    /// The first path seen, with sensitive values redacted (for alerts).
    pub fn sample_path_redacted(&self) -> String {
        features::sensitive::redact(&self.sample_path).into_owned()
    }

    /// Grows whenever an inspection teaches the endpoint something: a parameter, header or
    /// cookie name or value type, a content type, a sensitive-data tag, a body schema change.
    pub(crate) fn news(&self) -> u64 {
        self.query.news
            + self.headers.news
            + self.cookies.news
            + self.request.content_types.len() as u64
            + self.response.content_types.len() as u64
            + self.sensitive.len() as u64
            + self.request.schema.changes()
            + self.response.schema.changes()
    }

    pub(crate) fn warmed_up(&self, limits: &EndpointLimits) -> bool {
        self.calls > limits.warmup
    }

    pub(crate) fn add_param(
        &mut self,
        place: Place,
        name: &str,
        value: &str,
        limits: &EndpointLimits,
    ) -> bool {
        let table = match place {
            Place::Header => &mut self.headers,
            Place::Path | Place::Query | Place::RequestBody | Place::ResponseBody => {
                &mut self.query
            }
        };
        table.add(name, value, limits.params)
    }

    pub(crate) fn add_auth(&mut self, scheme: Scheme, location: &'static str, name: &str) {
        // Looked up before inserting: the key owns its name, and the common case is a hit.
        if let Some(n) = self
            .auth
            .iter_mut()
            .find(|((s, l, n), _)| *s == scheme && *l == location && **n == *name)
            .map(|(_, n)| n)
        {
            *n += 1;
        } else if self.auth.len() < 16 {
            self.auth.insert((scheme, location, name.into()), 1);
        }
    }

    pub(crate) fn add_cookie(&mut self, name: &str, limits: &EndpointLimits) -> bool {
        self.cookies.add(name, "", limits.params)
    }

    pub(crate) fn add_sensitive(
        &mut self,
        place: Place,
        field: &str,
        kind: Kind,
        limits: &EndpointLimits,
    ) {
        let key = (place, Box::<str>::from(field), kind);
        if let Some(n) = self.sensitive.get_mut(&key) {
            *n += 1;
        } else if self.sensitive.len() < limits.sensitive {
            self.sensitive.insert(key, 1);
        } else {
            self.sensitive_dropped += 1;
        }
    }

    pub(crate) fn add_client(&mut self, ip: IpAddr, limits: &EndpointLimits) {
        if let Some(n) = self.clients.get_mut(&ip) {
            *n += 1;
        } else if self.clients.len() < limits.clients {
            self.clients.insert(ip, 1);
        } else {
            self.other_clients += 1;
        }
    }

    pub(crate) fn add_identity(&mut self, id: IdHash, limits: &EndpointLimits) {
        // A client sends its token on call after call: the last one is the likely one.
        if self.last_identity == Some(id) {
            return;
        }
        self.last_identity = Some(id);
        self.identity_sketch.insert(&id);
        self.keep_identity(id, limits);
    }

    /// Adds `id` to the exact set while it has room; once it has none, the sketch counts.
    fn keep_identity(&mut self, id: IdHash, limits: &EndpointLimits) {
        if !self.identities_capped && !self.identities.contains(&id) {
            if self.identities.len() < limits.identities {
                self.identities.insert(id);
            } else {
                self.identities_capped = true;
            }
        }
    }

    /// Distinct identities seen: exact while they fit the cap, then estimated (± about 6.5 %),
    /// so an identity that comes back is never counted twice.
    pub fn identity_count(&self) -> u64 {
        let exact = self.identities.len() as u64;
        if self.identities_capped {
            self.identity_sketch.estimate().max(exact + 1)
        } else {
            exact
        }
    }

    pub(crate) fn add_status(&mut self, status: u16, limits: &EndpointLimits) {
        let len = self.statuses.len();
        match self.statuses.get_mut(&status) {
            Some(n) => *n += 1,
            None if len < limits.statuses => {
                self.statuses.insert(status, 1);
            }
            // Past the cap, fold into the class (e.g. 4xx → 499 is not a code; use 0).
            None => *self.statuses.entry(0).or_default() += 1,
        }
    }

    /// Folds another entry of the same endpoint in (used when a later-learnt template
    /// gathers entries made while its paths were still literal).
    pub(crate) fn merge(&mut self, o: Endpoint, limits: &EndpointLimits) {
        let theirs_first = o.first_seen < self.first_seen;
        self.first_seen = self.first_seen.min(o.first_seen);
        self.last_seen = self.last_seen.max(o.last_seen);
        self.calls += o.calls;
        for (s, n) in o.statuses {
            *self.statuses.entry(s).or_default() += n;
        }
        self.unanswered += o.unanswered;
        self.query.merge(&o.query, limits.params);
        self.headers.merge(&o.headers, limits.params);
        self.cookies.merge(&o.cookies, limits.params);
        for (mine, theirs) in [
            (&mut self.request, o.request),
            (&mut self.response, o.response),
        ] {
            mine.schema.merge(&theirs.schema);
            for (t, n) in theirs.content_types {
                *mine.content_types.entry(t).or_default() += n;
            }
            mine.sizes.merge(&theirs.sizes);
            mine.inspected += theirs.inspected;
        }
        self.latency.merge(&o.latency);
        self.other_clients += o.other_clients;
        for (ip, n) in o.clients {
            if let Some(m) = self.clients.get_mut(&ip) {
                *m += n;
            } else if self.clients.len() < limits.clients {
                self.clients.insert(ip, n);
            } else {
                self.other_clients += n;
            }
        }
        for (s, n) in o.auth {
            *self.auth.entry(s).or_default() += n;
        }
        self.unauthenticated_success += o.unauthenticated_success;
        self.success += o.success;
        self.identity_sketch.merge(&o.identity_sketch);
        self.identities_capped |= o.identities_capped;
        for id in o.identities {
            self.keep_identity(id, limits);
        }
        self.sensitive_dropped += o.sensitive_dropped;
        for (k, n) in o.sensitive {
            if let Some(m) = self.sensitive.get_mut(&k) {
                *m += n;
            } else if self.sensitive.len() < limits.sensitive {
                self.sensitive.insert(k, n);
            } else {
                self.sensitive_dropped += n;
            }
        }
        self.unsigned_tokens += o.unsigned_tokens;
        if theirs_first || self.evidence.is_none() {
            self.evidence = o.evidence.or(self.evidence.take());
            self.server = o.server.or(self.server);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A keyed-hash-like identity: SplitMix64 of `i`, both halves.
    fn id(i: u64) -> IdHash {
        let mix = |mut z: u64| {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&mix(i).to_le_bytes());
        bytes[8..].copy_from_slice(&mix(i ^ 0xdead_beef).to_le_bytes());
        IdHash(bytes)
    }

    #[test]
    fn identities_that_come_back_are_counted_once_exactly_then_by_sketch() {
        let limits = EndpointLimits::default();
        let schema = SchemaLimits {
            max_depth: 8,
            max_properties: 16,
            max_nodes: 64,
        };
        // Under the cap: exact, however often each comes back (interleaved, so the
        // last-identity shortcut does not hide the repeats).
        let mut few = Endpoint::new("/a", 0, schema);
        for _ in 0..10 {
            for i in 0..100 {
                few.add_identity(id(i), &limits);
            }
        }
        assert_eq!(few.identity_count(), 100);
        // Past the cap: 5,000 identities seen five times each.
        let mut many = Endpoint::new("/a", 0, schema);
        for _ in 0..5 {
            for i in 0..5_000 {
                many.add_identity(id(i), &limits);
            }
        }
        let n = many.identity_count() as f64;
        assert!((n - 5_000.0).abs() / 5_000.0 < 0.2, "estimated {n} of 5000");
        assert_eq!(
            many.identities.len(),
            limits.identities,
            "the exact set stays bounded"
        );
        // Merging endpoints that share identities counts the union.
        let mut other = Endpoint::new("/a", 0, schema);
        for i in 2_500..7_500 {
            other.add_identity(id(i), &limits);
        }
        many.merge(other, &limits);
        let n = many.identity_count() as f64;
        assert!((n - 7_500.0).abs() / 7_500.0 < 0.2, "estimated {n} of 7500");
        // Small sets merge exactly.
        let mut a = Endpoint::new("/a", 0, schema);
        let mut b = Endpoint::new("/a", 0, schema);
        (0..30).for_each(|i| a.add_identity(id(i), &limits));
        (20..50).for_each(|i| b.add_identity(id(i), &limits));
        a.merge(b, &limits);
        assert_eq!(a.identity_count(), 50);
    }

    #[test]
    fn value_types_by_text() {
        assert_eq!(ValueType::of("42"), ValueType::Integer);
        assert_eq!(ValueType::of("-3.5"), ValueType::Number);
        assert_eq!(ValueType::of("TRUE"), ValueType::Boolean);
        assert_eq!(
            ValueType::of("3f2504e0-4f89-11d3-9a0c-0305e82c3301"),
            ValueType::Uuid
        );
        assert_eq!(ValueType::of("2026-11-22"), ValueType::Date);
        assert_eq!(ValueType::of("2026-11-22T10:00:00Z"), ValueType::DateTime);
        assert_eq!(ValueType::of("a@b.example"), ValueType::Email);
        assert_eq!(ValueType::of("hello"), ValueType::String);
        assert_eq!(ValueType::of("1.2.3"), ValueType::String);
        assert_eq!(ValueType::of(""), ValueType::Empty);
        // Longer than i64: not an OpenAPI integer.
        assert_eq!(ValueType::of("123456789012345678901"), ValueType::String);
    }

    #[test]
    fn param_type_is_the_one_type_that_fits_all_values() {
        let mut t = ParamTable::default();
        for v in ["1", "2", "", "30"] {
            t.add("page", v, 8);
        }
        for v in ["1", "2.5"] {
            t.add("price", v, 8);
        }
        for v in ["1", "abc"] {
            t.add("q", v, 8);
        }
        assert_eq!(t.names["page"].value_type(), ValueType::Integer);
        assert_eq!(t.names["page"].count, 4);
        assert_eq!(t.names["price"].value_type(), ValueType::Number);
        assert_eq!(t.names["q"].value_type(), ValueType::String);
    }

    #[test]
    fn tables_are_capped_and_count_what_did_not_fit() {
        let limits = EndpointLimits {
            params: 2,
            clients: 1,
            sensitive: 1,
            statuses: 1,
            ..Default::default()
        };
        let mut e = Endpoint::new("/x", 0, SchemaLimits::default());
        assert!(e.add_param(Place::Query, "a", "1", &limits));
        assert!(!e.add_param(Place::Query, "a", "1", &limits));
        assert!(e.add_param(Place::Query, "b", "1", &limits));
        assert!(!e.add_param(Place::Query, "c", "1", &limits));
        assert_eq!(e.query.names.len(), 2);
        assert_eq!(e.query.dropped, 1);
        e.add_client("10.0.0.1".parse().unwrap(), &limits);
        e.add_client("10.0.0.2".parse().unwrap(), &limits);
        assert_eq!(e.clients.len(), 1);
        assert_eq!(e.other_clients, 1);
        e.add_sensitive(Place::Query, "email", Kind::Email, &limits);
        e.add_sensitive(Place::Query, "email", Kind::Email, &limits);
        e.add_sensitive(Place::Query, "phone", Kind::Phone, &limits);
        assert_eq!(e.sensitive.len(), 1);
        assert_eq!(e.sensitive_dropped, 1);
        e.add_status(200, &limits);
        e.add_status(500, &limits);
        assert_eq!(e.statuses.get(&200), Some(&1));
        assert_eq!(e.statuses.get(&0), Some(&1));
    }

    #[test]
    fn merging_adds_counts_and_keeps_caps() {
        let limits = EndpointLimits::default();
        let mut a = Endpoint::new("/items/ab1", 10, SchemaLimits::default());
        let mut b = Endpoint::new("/items/ab2", 5, SchemaLimits::default());
        a.calls = 3;
        b.calls = 4;
        b.last_seen = 99;
        a.add_param(Place::Query, "page", "1", &limits);
        b.add_param(Place::Query, "page", "2", &limits);
        b.add_param(Place::Query, "sort", "name", &limits);
        a.add_status(200, &limits);
        b.add_status(200, &limits);
        a.merge(b, &limits);
        assert_eq!(a.calls, 7);
        assert_eq!(a.first_seen, 5);
        assert_eq!(a.last_seen, 99);
        assert_eq!(a.query.names["page"].count, 2);
        assert!(a.query.names.contains_key("sort"));
        assert_eq!(a.statuses[&200], 2);
    }
}
