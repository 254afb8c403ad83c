//! [`Inventory`]: one transaction at a time into the catalogue and the endpoint table.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use features::auth::{self, AuthConfig, Credential, Keyer};
use features::sensitive::{self, Finding, Kind, KindSet};
use http::{Body, Head, Transaction};

use crate::catalogue::{Catalogue, CatalogueLimits, RouteSource, Rule};
use crate::endpoint::{Endpoint, EndpointLimits, Place};
use crate::json;
use crate::schema::{self, SchemaLimits};

/// Everything the inventory needs, validated by the binary's config layer.
#[derive(Debug, Clone)]
pub struct InventoryConfig {
    pub catalogue: CatalogueLimits,
    pub rules: Vec<Rule>,
    pub auth: AuthConfig,
    /// Per-deployment key of the credential hashes.
    pub identity_key: Vec<u8>,
    /// Endpoints (host, method, template) kept in all.
    pub max_endpoints: usize,
    pub endpoint: EndpointLimits,
    pub schema: SchemaLimits,
    /// Bodies of each endpoint and direction parsed and scanned in full before sampling.
    pub bodies_in_full: u64,
    /// Then one body in this many,
    pub body_sample_every: u64,
    /// backing off (doubling) up to one in this many while inspections find nothing new.
    pub body_sample_max_every: u64,
    /// Bytes of a non-JSON text body scanned for sensitive data.
    pub text_scan_bytes: usize,
    /// Decoded bytes kept of a sampled body whose coding the analysis stage did not undo
    /// (responses, by default), and the most decompressed before giving up.
    pub decode_keep_bytes: usize,
    pub decode_max_bytes: u64,
    /// Learn new templates (off when scoring with a frozen model: `--no-learn`).
    pub learn_templates: bool,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        InventoryConfig {
            catalogue: CatalogueLimits::default(),
            rules: Vec::new(),
            auth: AuthConfig::default(),
            identity_key: Vec::new(),
            max_endpoints: 5_000,
            endpoint: EndpointLimits::default(),
            schema: SchemaLimits {
                max_depth: 16,
                max_properties: 64,
                max_nodes: 256,
            },
            bodies_in_full: 128,
            body_sample_every: 256,
            body_sample_max_every: 1024,
            text_scan_bytes: 64 * 1024,
            decode_keep_bytes: 64 * 1024,
            decode_max_bytes: 8 << 20,
            learn_templates: true,
        }
    }
}

/// What the inventory learnt of one transaction, for its record and for detection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Annotations {
    /// `METHOD /template`; `None` for requests to routes that do not exist (404 probes).
    /// Interned, not reference-counted: a count bumped and dropped on every transaction was two
    /// locked instructions each, which also held back the loads started ahead of them.
    pub route: Option<engine::Label>,
    /// The route's entity key (`features::entity::key_hash` of its text); 0 without a route.
    pub route_key: u64,
    pub credentials: Vec<std::sync::Arc<Credential>>,
    /// Sensitive data found anywhere in the transaction.
    pub sensitive: KindSet,
    /// Sensitive data found in the response body alone.
    pub response_sensitive: KindSet,
    /// The transaction was in the inspected sample: its bodies were scanned, so no sensitive
    /// kind means none was there.
    pub inspected: bool,
    /// Answered 2xx to a request carrying no credential.
    pub unauthenticated_success: bool,
    /// Query parameters and header names the endpoint had not had after its warm-up.
    pub unseen_params: u32,
    /// JSON fields the endpoint's bodies had not had after its warm-up.
    pub unseen_fields: u32,
    /// Nesting depth of the request's JSON body.
    pub body_depth: u32,
    /// The request target with the values of credential parameters replaced, when the query
    /// carried one.
    pub redacted_target: Option<String>,
    /// Where, in the request target, the value of the template's last parameter is: the
    /// object the request names (for enumeration detection).
    pub object_id: Option<std::ops::Range<usize>>,
}

impl Annotations {
    /// What of this leaves the sensor on the transaction record: hashes, never secrets.
    pub fn notes(&self) -> engine::Notes {
        let mut identity = smallvec::SmallVec::new();
        for c in &self.credentials {
            identity.push(engine::IdentityNote {
                scheme: c.scheme.as_str(),
                location: c.location.as_str(),
                name: c.name.clone(),
                credential: c.secret.0,
                subject: c.subject_hash.map(|h| h.0),
            });
        }
        engine::Notes {
            route: self.route.clone(),
            identity,
            // Most transactions carry none: no walk over the kinds.
            sensitive: if self.sensitive.is_empty() {
                Vec::new()
            } else {
                self.sensitive.iter().map(Kind::as_str).collect()
            },
            redacted_target: self.redacted_target.as_deref().map(Into::into),
            anomaly: None,
        }
    }
}

/// Counters of the whole inventory.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct InventoryStats {
    pub transactions: u64,
    /// Requests to paths that are no learnt route, answered "no such route" (404 and kin).
    pub unrouted: u64,
    /// Transactions of endpoints past `max_endpoints`.
    pub endpoints_over_limit: u64,
    /// Bodies that claimed JSON and did not parse (often cut by the keep limit).
    pub bodies_not_json: u64,
    pub bodies_inspected: u64,
    /// Endpoint entries made (only grows; folding entries into templates does not lower it):
    /// when it changed, there may be a new endpoint.
    pub endpoints_made: u64,
}

/// The API seen so far.
pub struct Inventory {
    cfg: InventoryConfig,
    catalogue: Catalogue,
    keyer: Keyer,
    /// `cfg.auth` ready for matching.
    auth: auth::AuthMatcher,
    endpoints: Vec<Endpoint>,
    /// `host NUL method NUL template` → slot in `endpoints` (one string: one hash, no
    /// allocation to look up).
    index: HashMap<Box<str>, usize, ahash::RandomState>,
    key: String,
    /// Raw `host NUL method NUL path` → its endpoint, valid for one catalogue generation.
    routes: RouteCache,
    probe: Vec<u8>,
    stats: InventoryStats,
    findings: Vec<Finding>,
    decoders: http::Decoders,
}

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inventory")
            .field("endpoints", &self.index.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Sets of the route cache (two entries each: 2 MiB).
const ROUTE_SETS: usize = 1 << 15;

/// Where recently seen raw paths went: two-way set-associative over a hash of the path, so a
/// lookup reads one cache line (a hash map's control bytes and bucket were two misses per
/// transaction). Entries keep no key: a second, independently seeded hash is checked instead
/// (with the set's bits, over 75 bits tell keys apart). Fixed size: a spray of paths only
/// turns entries over.
struct RouteCache {
    sets: Vec<RouteSet>,
}

/// The route cache's hash of a route key ([`write_route_key`]), with fixed seeds so that a
/// flow worker computes it as the analysis stage would ([`crate::Preparer`]). Colliding keys
/// cost cache misses, nothing more: an entry is checked against the whole hash and replaced.
const ROUTE_HASH: ahash::RandomState = ahash::RandomState::with_seeds(
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
);

fn route_hash(key: &[u8]) -> u64 {
    ROUTE_HASH.hash_one(key)
}

/// The route cache's hash of a request, its key written into the scratch `key`.
pub(crate) fn request_route_hash(
    key: &mut Vec<u8>,
    host_header: Option<&[u8]>,
    server_ip: IpAddr,
    method: &str,
    path: &[u8],
) -> u64 {
    write_route_key(key, host_header, server_ip, method, path);
    route_hash(key)
}

/// The route cache's key of a request: host (the Host header, else the server's address),
/// method and path.
fn write_route_key(
    key: &mut Vec<u8>,
    host_header: Option<&[u8]>,
    server_ip: IpAddr,
    method: &str,
    path: &[u8],
) {
    key.clear();
    match host_header {
        Some(h) => key.extend_from_slice(h),
        None => {
            use std::io::Write;
            let _ = write!(key, "{server_ip}");
        }
    }
    for part in [&b"\0"[..], method.as_bytes(), b"\0", path] {
        key.extend_from_slice(part);
    }
}

#[derive(Clone, Copy, Default)]
#[repr(align(64))]
struct RouteSet([CachedRoute; 2]);

#[derive(Clone, Copy, Default)]
struct CachedRoute {
    /// Never 0 for a real entry (its low bit is set).
    check: u64,
    generation: u64,
    slot: usize,
}

/// A path's place in the route cache.
#[derive(Clone, Copy, Debug)]
struct RouteProbe {
    set: usize,
    check: u64,
}

impl RouteProbe {
    /// The set from the hash's high bits; the whole hash (odd, so never an empty entry's 0) is
    /// what an entry is checked against.
    fn of(hash: u64) -> Self {
        RouteProbe {
            set: (hash >> 32) as usize & (ROUTE_SETS - 1),
            check: hash | 1,
        }
    }
}

impl RouteCache {
    fn new() -> Self {
        RouteCache {
            sets: vec![RouteSet::default(); ROUTE_SETS],
        }
    }

    fn get(&mut self, p: RouteProbe, generation: u64) -> Option<usize> {
        let set = &mut self.sets[p.set].0;
        let hit = |e: &CachedRoute| e.check == p.check && e.generation == generation;
        if hit(&set[0]) {
            return Some(set[0].slot);
        }
        if hit(&set[1]) {
            // The more recently used stays; the other goes first.
            set.swap(0, 1);
            return Some(set[0].slot);
        }
        None
    }

    fn insert(&mut self, p: RouteProbe, generation: u64, slot: usize) {
        let set = &mut self.sets[p.set].0;
        set[1] = set[0];
        set[0] = CachedRoute {
            check: p.check,
            generation,
            slot,
        };
    }

    fn clear(&mut self) {
        self.sets.fill(RouteSet::default());
    }
}

/// What [`Inventory::prefetch`] read of a transaction ahead of observing it: its route probe
/// (the cache entry's load started) and the parts of its request line, so they are parsed once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ahead<'t> {
    probe: RouteProbe,
    /// The flow worker's credential hint, if it made one.
    auth: Option<auth::AuthHint>,
    method: &'t str,
    target: TargetParts<'t>,
}

/// (host, method, template).
pub type EndpointKey = (Box<str>, Box<str>, Box<str>);

/// Answers that say the route does not exist: never learnt as endpoints.
fn names_no_route(status: u16) -> bool {
    matches!(status, 400 | 404 | 405 | 414 | 431 | 501)
}

impl Inventory {
    pub fn new(cfg: InventoryConfig) -> Self {
        Inventory {
            catalogue: Catalogue::new(cfg.catalogue, cfg.rules.clone()),
            keyer: Keyer::new(&cfg.identity_key),
            auth: auth::AuthMatcher::new(&cfg.auth),
            endpoints: Vec::new(),
            index: HashMap::default(),
            key: String::new(),
            routes: RouteCache::new(),
            probe: Vec::new(),
            stats: InventoryStats::default(),
            findings: Vec::new(),
            decoders: http::Decoders::default(),
            cfg,
        }
    }

    pub fn stats(&self) -> InventoryStats {
        self.stats
    }

    /// Endpoints kept (before entries made ahead of their template are folded together).
    pub fn endpoint_count(&self) -> usize {
        self.index.len()
    }

    /// Takes the templates of a snapshot ([`crate::catalogue::Catalogue::snapshot`]).
    pub fn restore_catalogue(&mut self, v: serde_json::Value) -> Result<(), String> {
        self.catalogue.restore(v)?;
        self.routes.clear();
        Ok(())
    }

    /// Makes the credential hints this inventory takes ([`auth::extract_hinted`]).
    pub fn hinter(&self) -> auth::Hinter {
        self.keyer.hinter(&self.auth)
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    pub fn config(&self) -> &InventoryConfig {
        &self.cfg
    }

    /// Learns from one transaction of `flow`. The server address names the host when the
    /// request has no Host.
    ///
    /// Every transaction updates its endpoint's counters, auth and sketches; parameters are
    /// typed, and parameters, headers and bodies scanned for sensitive data, on all of an
    /// endpoint's first `bodies_in_full` calls and then on a sample: one in
    /// `body_sample_every`, backing off to one in `body_sample_max_every` while inspections
    /// teach the endpoint nothing new ([`crate::endpoint::BodySampling`]).
    pub fn observe(&mut self, flow: &engine::FlowIds, tx: &Transaction) -> Option<Annotations> {
        let mut notes = Annotations::default();
        self.observe_into(flow, tx, None, &mut notes)
            .then_some(notes)
    }

    /// Where `tx`'s path sits in the route cache, with a load of that entry started: called a
    /// few transactions before [`Inventory::observe_into`] of the same one, the miss is over
    /// by then.
    /// `prepared` is what the flow worker made of `tx`, if it did.
    pub(crate) fn prefetch<'t>(
        &mut self,
        flow: &engine::FlowIds,
        tx: &'t Transaction,
        prepared: Option<&engine::Prepared>,
    ) -> Option<Ahead<'t>> {
        let req = tx.request.as_ref()?;
        let method = method_name(req.method());
        let target = prepared
            .and_then(|p| p.target.as_ref())
            .and_then(|cuts| TargetParts::at(req.target(), cuts))
            .unwrap_or_else(|| split_target(req.target()));
        let probe = match prepared {
            Some(p) => RouteProbe::of(p.route_hash),
            None => {
                let host_header = req.head.get("host").or(target.authority);
                self.route_probe(host_header, flow.server.ip(), method, target.path)
            }
        };
        features::prefetch::read(&self.routes.sets[probe.set]);
        Some(Ahead {
            probe,
            auth: prepared.and_then(|p| p.auth),
            method,
            target,
        })
    }

    fn route_probe(
        &mut self,
        host_header: Option<&[u8]>,
        server_ip: std::net::IpAddr,
        method: &str,
        path: &[u8],
    ) -> RouteProbe {
        RouteProbe::of(request_route_hash(
            &mut self.probe,
            host_header,
            server_ip,
            method,
            path,
        ))
    }

    /// [`Inventory::observe`], with the route probe [`Inventory::prefetch`] made for `tx`.
    pub(crate) fn observe_into<'t>(
        &mut self,
        flow: &engine::FlowIds,
        tx: &'t Transaction,
        ahead: Option<Ahead<'t>>,
        notes: &mut Annotations,
    ) -> bool {
        let Some(req) = tx.request.as_ref() else {
            return false;
        };
        let (client, server_ip) = (flow.client.ip(), flow.server.ip());
        self.stats.transactions += 1;
        let (method, target) = match &ahead {
            Some(a) => (a.method, a.target),
            None => (method_name(req.method()), split_target(req.target())),
        };
        let (authority, path) = (target.authority, target.path);
        // Only a route-cache miss (or a caller that made no probe) needs the host.
        let host_header = || req.head.get("host").or(authority);
        let status = tx.response.as_ref().map(|r| r.status);
        let now = tx.start().as_nanos();

        // The credentials' vector is kept for the next transaction, and with it the previous
        // transaction's credentials, which this one's replace (most often by the same ones).
        let credentials = std::mem::take(&mut notes.credentials);
        *notes = Annotations {
            credentials,
            ..Annotations::default()
        };
        let hinted = ahead
            .and_then(|a| a.auth)
            .is_some_and(|hint| auth::extract_hinted(hint, &self.keyer, &mut notes.credentials));
        if !hinted {
            auth::extract_replacing(
                req.head.iter(),
                target.query,
                &self.auth,
                &self.keyer,
                &mut notes.credentials,
            );
        }
        let success = status.is_some_and(|s| (200..300).contains(&s));
        notes.unauthenticated_success = success && notes.credentials.is_empty();
        if notes
            .credentials
            .iter()
            .any(|c| c.location == auth::Location::Query)
        {
            notes.redacted_target =
                Some(redact_query_credentials(req.target(), &notes.credentials));
        }
        let learn =
            self.cfg.learn_templates && status.is_some_and(|s| s >= 100 && !names_no_route(s));

        // The same path comes back again and again: remember where it went until the
        // catalogue changes.
        let probe = match ahead {
            Some(a) => a.probe,
            None => self.route_probe(host_header(), server_ip, method, path),
        };
        let generation = self.catalogue.generation();
        let slot = match self.routes.get(probe, generation) {
            Some(slot) => slot,
            None => {
                let host = host_name(host_header(), server_ip);
                let path = target.path_str();
                let routed = self.catalogue.route(&host, method, path, learn);
                if !learn && routed.source == RouteSource::Learnt(false) {
                    // A request to a route that does not exist: counted, not an endpoint.
                    self.stats.unrouted += 1;
                    return true;
                }
                self.key.clear();
                for part in [&*host, "\0", method, "\0", &routed.template] {
                    self.key.push_str(part);
                }
                let slot = match self.index.get(self.key.as_str()) {
                    Some(&slot) => slot,
                    None if self.endpoints.len() >= self.cfg.max_endpoints => {
                        self.stats.endpoints_over_limit += 1;
                        // Past the limit (a spray, most likely): not interned.
                        let route = engine::Label::owned(&format!("{method} {}", routed.template));
                        notes.route_key = features::entity::key_hash(route.as_bytes());
                        notes.route = Some(route);
                        return true;
                    }
                    None => {
                        let mut e = Endpoint::new(path, now, self.cfg.schema);
                        e.set_route(engine::Label::interned(&format!(
                            "{method} {}",
                            routed.template
                        )));
                        e.evidence = Some((flow.uid.as_str().into(), tx.index));
                        e.server = Some(flow.server);
                        self.endpoints.push(e);
                        self.stats.endpoints_made += 1;
                        self.index
                            .insert(self.key.as_str().into(), self.endpoints.len() - 1);
                        self.endpoints.len() - 1
                    }
                };
                if routed.source != RouteSource::Unlearned {
                    self.routes.insert(probe, self.catalogue.generation(), slot);
                }
                slot
            }
        };
        let limits = self.cfg.endpoint;
        let ep = &mut self.endpoints[slot];
        notes.route = Some(ep.route.clone());
        notes.route_key = ep.route_key;
        // Only when the value lies in the target itself (not a stand-in path like "/").
        let sent = req.target().as_ptr_range();
        notes.object_id = ep
            .object_part
            .and_then(|part| path_part(path, part))
            .filter(|v| sent.contains(&v.as_ptr()) && v.as_ptr_range().end <= sent.end)
            .map(|v| {
                let start = v.as_ptr() as usize - sent.start as usize;
                start..start + v.len()
            });
        let warm = ep.warmed_up(&limits);
        ep.calls += 1;
        ep.first_seen = ep.first_seen.min(now);
        ep.last_seen = ep.last_seen.max(now);
        ep.add_client(client, &limits);
        match &tx.response {
            Some(r) => {
                ep.add_status(r.status, &limits);
                ep.latency.add(r.end.since(req.start) as f64);
                if success {
                    ep.success += 1;
                }
            }
            None => ep.unanswered += 1,
        }
        for c in &notes.credentials {
            ep.add_auth(c.scheme, c.location.as_str(), &c.name);
            ep.add_identity(c.subject_hash.unwrap_or(c.secret), &limits);
            if c.jwt.as_ref().is_some_and(|j| j.unsigned) {
                ep.unsigned_tokens += 1;
            }
        }
        if notes.unauthenticated_success {
            ep.unauthenticated_success += 1;
        }
        let sampled = ep.calls > self.cfg.bodies_in_full;
        let inspect = !sampled
            || ep.sampling.due(
                ep.calls,
                self.cfg.bodies_in_full,
                self.cfg.body_sample_every,
            );
        let news_before = (sampled && inspect).then(|| ep.news());

        // Parameters: names always (a new one is news), types and values on the sample.
        let findings = &mut self.findings;
        let query = target.query_str();
        if !inspect && warm && !query.is_empty() {
            // Off the sample only the names count: values are not decoded.
            for name in query_names(query) {
                if !ep.query.names.contains_key(&*name) {
                    notes.unseen_params += 1;
                }
            }
        }
        // Most requests have no query: no iterator is built for them.
        if inspect && !query.is_empty() {
            for (name, value) in query_pairs(query) {
                if ep.add_param(Place::Query, &name, &value, &limits) && warm {
                    notes.unseen_params += 1;
                }
                findings.clear();
                sensitive::scan_field(name.as_bytes(), value.as_bytes(), findings);
                for f in findings.iter() {
                    ep.add_sensitive(Place::Query, &name, f.kind, &limits);
                    notes.sensitive.insert(f.kind);
                }
            }
        }
        let mut lower = [0u8; 64];
        // Header names and cookies on the sample only: each costs a lowercase copy and lookups,
        // and new ones still show on the next sampled call.
        let headers = if inspect { req.head.fields.len() } else { 0 };
        for (name, value) in req.head.iter().take(headers) {
            if name.len() > lower.len() {
                continue;
            }
            let name = {
                let l = &mut lower[..name.len()];
                l.copy_from_slice(name);
                l.make_ascii_lowercase();
                match std::str::from_utf8(l) {
                    Ok(n) => n,
                    Err(_) => continue,
                }
            };
            if name == "cookie" {
                for c in value.split(|&b| b == b';') {
                    let n = c.split(|&b| b == b'=').next().unwrap_or(c).trim_ascii();
                    let Ok(n) = std::str::from_utf8(n) else {
                        continue;
                    };
                    if n.is_empty() {
                        continue;
                    }
                    let new = if inspect {
                        ep.add_cookie(n, &limits)
                    } else {
                        !ep.cookies.names.contains_key(n)
                    };
                    if new && warm {
                        notes.unseen_params += 1;
                    }
                }
                continue;
            }
            if is_standard_header(name) {
                continue;
            }
            if !inspect {
                if warm && !ep.headers.names.contains_key(name) {
                    notes.unseen_params += 1;
                }
                continue;
            }
            let value = String::from_utf8_lossy(value);
            if ep.add_param(Place::Header, name, &value, &limits) && warm {
                notes.unseen_params += 1;
            }
            if self.auth.is_api_key_header(name.as_bytes()) {
                continue;
            }
            findings.clear();
            sensitive::scan_field(name.as_bytes(), value.as_bytes(), findings);
            for f in findings.iter() {
                ep.add_sensitive(Place::Header, name, f.kind, &limits);
                notes.sensitive.insert(f.kind);
            }
        }

        // Bodies: sizes and content types always, content on the sample.
        let mut scratch = Scratch {
            cfg: &self.cfg,
            warm: warm && inspect,
            inspect,
            stats: &mut self.stats,
            findings,
            decoders: &mut self.decoders,
        };
        let mut body_notes = BodyNotes::default();
        inspect_body(
            &mut scratch,
            ep,
            &req.head,
            &req.body,
            Place::RequestBody,
            &mut body_notes,
        );
        notes.body_depth = body_notes.depth;
        if let Some(r) = &tx.response {
            let request_kinds = body_notes.sensitive;
            body_notes.sensitive = KindSet::default();
            inspect_body(
                &mut scratch,
                ep,
                &r.head,
                &r.body,
                Place::ResponseBody,
                &mut body_notes,
            );
            notes.response_sensitive = body_notes.sensitive;
            body_notes.sensitive = body_notes.sensitive.union(request_kinds);
        }
        notes.inspected = inspect;
        notes.unseen_fields = body_notes.unseen_fields;
        notes.sensitive = notes.sensitive.union(body_notes.sensitive);
        if let Some(before) = news_before {
            let taught = ep.news() != before;
            ep.sampling.inspected(
                ep.calls,
                taught,
                self.cfg.body_sample_every,
                self.cfg.body_sample_max_every,
            );
        }
        true
    }

    /// Endpoints with every entry made before its template was learnt folded in, sorted.
    pub fn endpoints(&mut self) -> Vec<(EndpointKey, &Endpoint)> {
        self.consolidate();
        let mut all: Vec<_> = self
            .index
            .iter()
            .map(|(k, &slot)| (split_key(k), &self.endpoints[slot]))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The learnt evidence of an endpoint's template (confidence, parameter shapes).
    pub fn evidence(&self, key: &EndpointKey, ep: &Endpoint) -> Option<features::template::Learnt> {
        self.provenance(key, ep).1
    }

    /// Where an endpoint's template comes from: `rule` (an operator's force rule), `learnt`
    /// (this host's traffic), `shared` (another host's traffic, see
    /// [`Catalogue::generalize`]) or `shape` (never learnt: bounds hit), with the evidence.
    pub fn provenance(
        &self,
        key: &EndpointKey,
        ep: &Endpoint,
    ) -> (&'static str, Option<features::template::Learnt>) {
        let (host, method, template) = (&*key.0, &*key.1, &*key.2);
        match self.catalogue.current(host, method, &ep.sample_path) {
            Some((_, None)) => return ("rule", None),
            Some((t, Some(l))) if t == template => return ("learnt", Some(l)),
            _ => {}
        }
        let shared = self
            .catalogue
            .other_hosts_evidence(host, method, &ep.sample_path, template);
        match shared {
            Some(l) => ("shared", Some(l)),
            None => ("shape", None),
        }
    }

    /// Re-keys entries whose paths now fall under a learnt template (a position became a
    /// parameter after they were made) and merges them into it.
    fn consolidate(&mut self) {
        let limits = self.cfg.endpoint;
        let mut moves: Vec<(Box<str>, Box<str>, String)> = self
            .index
            .iter()
            .filter_map(|(key, &slot)| {
                let (host, method, template) = split_key(key);
                let path = &self.endpoints[slot].sample_path;
                let current = self.catalogue.current(&host, &method, path).map(|c| c.0);
                let here = current.as_deref().unwrap_or(&template);
                let now = self
                    .catalogue
                    .generalize(&host, &method, path, here)
                    .or(current)?;
                (*now != *template).then(|| {
                    let to: Box<str> = format!("{host}\0{method}\0{now}").into();
                    (key.clone(), to, format!("{method} {now}"))
                })
            })
            .collect();
        if moves.is_empty() {
            return;
        }
        moves.sort();
        let mut entries: HashMap<Box<str>, Endpoint, ahash::RandomState> = self
            .index
            .drain()
            .map(|(k, slot)| {
                (
                    k,
                    std::mem::replace(
                        &mut self.endpoints[slot],
                        Endpoint::new("", 0, self.cfg.schema),
                    ),
                )
            })
            .collect();
        for (from, to, route) in moves {
            let Some(mut ep) = entries.remove(&from) else {
                continue;
            };
            match entries.get_mut(&to) {
                Some(target) => target.merge(ep, &limits),
                None => {
                    ep.set_route(engine::Label::interned(&route));
                    entries.insert(to, ep);
                }
            }
        }
        self.endpoints.clear();
        self.routes.clear();
        let mut keys: Vec<Box<str>> = entries.keys().cloned().collect();
        keys.sort();
        for k in keys {
            if let Some(ep) = entries.remove(&k) {
                self.endpoints.push(ep);
                self.index.insert(k, self.endpoints.len() - 1);
            }
        }
    }
}

/// (host, method, template) of an endpoint key.
fn split_key(key: &str) -> EndpointKey {
    let mut parts = key.splitn(3, '\0');
    let mut next = || -> Box<str> { parts.next().unwrap_or_default().into() };
    (next(), next(), next())
}

/// `path.split('/').nth(part)`, a byte at a time: paths are short, and the generic searcher
/// costs more than the walk.
fn path_part(path: &[u8], part: usize) -> Option<&[u8]> {
    let (mut seen, mut start) = (0, 0);
    for (i, &b) in path.iter().enumerate() {
        if b == b'/' {
            if seen == part {
                return Some(&path[start..i]);
            }
            seen += 1;
            start = i + 1;
        }
    }
    (seen == part).then(|| &path[start..])
}

#[derive(Default)]
struct BodyNotes {
    depth: u32,
    unseen_fields: u32,
    sensitive: KindSet,
}

/// What body inspection borrows from the inventory.
struct Scratch<'a> {
    cfg: &'a InventoryConfig,
    /// The endpoint is past its warm-up (new fields are news).
    warm: bool,
    /// This transaction is in the sample whose content is looked into.
    inspect: bool,
    stats: &'a mut InventoryStats,
    findings: &'a mut Vec<Finding>,
    decoders: &'a mut http::Decoders,
}

fn inspect_body(
    scratch: &mut Scratch<'_>,
    ep: &mut Endpoint,
    head: &Head,
    body: &Body,
    place: Place,
    notes: &mut BodyNotes,
) {
    let (cfg, warm, inspect) = (scratch.cfg, scratch.warm, scratch.inspect);
    if body.len == 0 {
        return;
    }
    let side = match place {
        Place::RequestBody => &mut ep.request,
        _ => &mut ep.response,
    };
    side.sizes.add(body.len as f64);
    if !inspect {
        return;
    }
    let mime = head.get("content-type").map(media_type);
    if let Some(m) = &mime {
        if let Some(n) = side.content_types.get_mut(m.as_str()) {
            *n += 1;
        } else if side.content_types.len() < cfg.endpoint.content_types {
            side.content_types.insert(m.as_str().into(), 1);
        }
    }
    side.inspected += 1;
    scratch.stats.bodies_inspected += 1;
    let findings = &mut *scratch.findings;
    // Only sampled bodies are decoded here; the transaction keeps what it had.
    let private = (body.coding != http::Coding::Identity)
        .then(|| {
            body.decode_copy(
                cfg.decode_keep_bytes,
                cfg.decode_max_bytes,
                scratch.decoders,
            )
        })
        .flatten();
    if body.coding == http::Coding::Unknown
        || (body.coding != http::Coding::Identity && body.decoded.is_none() && private.is_none())
    {
        return;
    }
    let content = private
        .as_ref()
        .map_or_else(|| body.content(), |d| &d.bytes[..]);
    let mime = mime.as_deref().unwrap_or("");
    let looks_json = mime.contains("json")
        || (mime.is_empty()
            && content
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|&b| b == b'{' || b == b'['));
    let mut found: Vec<(String, Kind)> = Vec::new();
    if looks_json {
        match json::Doc::parse(content) {
            Ok(doc) => {
                let obs = side.schema.observe(&doc);
                if warm {
                    notes.unseen_fields += obs.new_fields;
                }
                if place == Place::RequestBody {
                    notes.depth = obs.depth;
                }
                schema::for_each_leaf(&doc, cfg.schema.max_depth, &mut |path, value| {
                    findings.clear();
                    let key = leaf_key(path);
                    sensitive::scan_field(key.as_bytes(), value.as_bytes(), findings);
                    for f in findings.iter() {
                        found.push((path.to_string(), f.kind));
                    }
                });
            }
            Err(_) => {
                scratch.stats.bodies_not_json += 1;
                scan_text(content, cfg.text_scan_bytes, findings, &mut found);
            }
        }
    } else if mime.starts_with("application/x-www-form-urlencoded") {
        let text = String::from_utf8_lossy(&content[..content.len().min(cfg.text_scan_bytes)]);
        for (name, value) in query_pairs(&text) {
            findings.clear();
            sensitive::scan_field(name.as_bytes(), value.as_bytes(), findings);
            for f in findings.iter() {
                found.push((name.to_string(), f.kind));
            }
        }
    } else if is_text(mime) {
        scan_text(content, cfg.text_scan_bytes, findings, &mut found);
    }
    for (field, kind) in found {
        ep.add_sensitive(place, &field, kind, &cfg.endpoint);
        notes.sensitive.insert(kind);
    }
}

/// The target with the value of every query parameter that carried a credential replaced by
/// `REDACTED` (names compared after percent-decoding, as the credential was found).
fn redact_query_credentials(target: &[u8], credentials: &[std::sync::Arc<Credential>]) -> String {
    let text = String::from_utf8_lossy(target);
    let Some((path, query)) = text.split_once('?') else {
        return text.into_owned();
    };
    let secret_names: Vec<&str> = credentials
        .iter()
        .filter(|c| c.location == auth::Location::Query)
        .map(|c| &*c.name)
        .collect();
    let mut out = String::with_capacity(text.len());
    out.push_str(path);
    out.push('?');
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((name, _))
                if secret_names
                    .iter()
                    .any(|s| decode_component(name, 128).eq_ignore_ascii_case(s)) =>
            {
                out.push_str(name);
                out.push_str("=REDACTED");
            }
            _ => out.push_str(pair),
        }
    }
    out
}

/// The field name of a leaf path: `user.email` → `email`, `tags[]` → `tags`.
fn leaf_key(path: &str) -> &str {
    // On bytes: `.`, `[` and `]` are ASCII, so every cut is a char boundary.
    let mut p = path.as_bytes();
    while let [rest @ .., b'[', b']'] = p {
        p = rest;
    }
    let start = memchr::memrchr(b'.', p).map_or(0, |dot| dot + 1);
    &path[start..p.len()]
}

fn scan_text(
    content: &[u8],
    limit: usize,
    findings: &mut Vec<Finding>,
    found: &mut Vec<(String, Kind)>,
) {
    findings.clear();
    sensitive::scan(&content[..content.len().min(limit)], findings);
    for f in findings.iter() {
        found.push((String::new(), f.kind));
    }
}

fn is_text(mime: &str) -> bool {
    mime.starts_with("text/")
        || mime.contains("xml")
        || mime.contains("javascript")
        || mime.is_empty()
}

/// `type/subtype` of a Content-Type, lowercased, parameters dropped.
fn media_type(v: &[u8]) -> String {
    let v = v.split(|&b| b == b';').next().unwrap_or(v).trim_ascii();
    String::from_utf8_lossy(&v[..v.len().min(100)]).to_ascii_lowercase()
}

pub(crate) fn method_name(m: &[u8]) -> &str {
    // The common methods without a UTF-8 check: one per transaction.
    match m {
        b"GET" => "GET",
        b"POST" => "POST",
        b"PUT" => "PUT",
        b"DELETE" => "DELETE",
        b"PATCH" => "PATCH",
        b"HEAD" => "HEAD",
        b"OPTIONS" => "OPTIONS",
        _ => match std::str::from_utf8(m) {
            Ok(s) if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_graphic()) => s,
            _ => "(invalid)",
        },
    }
}

/// A request target's authority (absolute-form), path and raw query, as bytes of valid UTF-8:
/// a target that is not UTF-8 has the path `/(non-utf8)` and no authority or query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TargetParts<'t> {
    pub(crate) authority: Option<&'t [u8]>,
    pub(crate) path: &'t [u8],
    pub(crate) query: &'t [u8],
}

const NON_UTF8_PATH: &str = "/(non-utf8)";

impl<'t> TargetParts<'t> {
    /// The path as text (always valid: see [`split_target`]).
    pub(crate) fn path_str(&self) -> &'t str {
        std::str::from_utf8(self.path).unwrap_or(NON_UTF8_PATH)
    }

    /// The raw query as text (always valid: see [`split_target`]).
    pub(crate) fn query_str(&self) -> &'t str {
        if self.query.is_empty() {
            return "";
        }
        std::str::from_utf8(self.query).unwrap_or_default()
    }

    /// Where these parts of `target` lie in it; `None` when one does not (a stand-in path).
    pub(crate) fn cuts(&self, target: &[u8]) -> Option<engine::TargetCuts> {
        let start = target.as_ptr() as usize;
        let within = |part: &[u8]| -> Option<[u32; 2]> {
            // An empty part is the same wherever it is.
            if part.is_empty() {
                return Some([0, 0]);
            }
            let at = (part.as_ptr() as usize).checked_sub(start)?;
            let end = at + part.len();
            if end > target.len() {
                return None;
            }
            Some([u32::try_from(at).ok()?, u32::try_from(end).ok()?])
        };
        Some(engine::TargetCuts {
            authority: match self.authority {
                Some(a) => Some(within(a)?),
                None => None,
            },
            path: within(self.path)?,
            query: within(self.query)?,
        })
    }

    /// The parts at `cuts` of `target`; `None` when a cut does not fit it.
    pub(crate) fn at(target: &'t [u8], cuts: &engine::TargetCuts) -> Option<TargetParts<'t>> {
        let part = |[start, end]: [u32; 2]| target.get(start as usize..end as usize);
        Some(TargetParts {
            authority: match cuts.authority {
                Some(a) => Some(part(a)?),
                None => None,
            },
            path: part(cuts.path)?,
            query: part(cuts.query)?,
        })
    }
}

/// Splits a request target into [`TargetParts`]. Bytes, not text, so that a transaction whose
/// route is cached is never checked as UTF-8 piece by piece: an ASCII target (nearly all) is
/// checked at once, and every cut is at an ASCII byte, so each part of valid UTF-8 is too.
pub(crate) fn split_target(target: &[u8]) -> TargetParts<'_> {
    if !target.is_ascii() && std::str::from_utf8(target).is_err() {
        return TargetParts {
            authority: None,
            path: NON_UTF8_PATH.as_bytes(),
            query: b"",
        };
    }
    let (mut authority, mut rest) = (None, target);
    if !target.starts_with(b"/") {
        for scheme in [&b"http://"[..], b"https://"] {
            if target.len() > scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
                let after = &target[scheme.len()..];
                let end = memchr::memchr2(b'/', b'?', after).unwrap_or(after.len());
                authority = Some(&after[..end]);
                rest = &after[end..];
            }
        }
    }
    // The path ends at the first `?` or `#`; a query, at the first `#` after it.
    let (path, query) = match memchr::memchr2(b'?', b'#', rest) {
        Some(at) if rest[at] == b'?' => {
            let query = &rest[at + 1..];
            let end = memchr::memchr(b'#', query).unwrap_or(query.len());
            (&rest[..at], &query[..end])
        }
        Some(at) => (&rest[..at], &b""[..]),
        None => (rest, &b""[..]),
    };
    let path = if path.is_empty() { &b"/"[..] } else { path };
    TargetParts {
        authority,
        path: &path[..floor_char_boundary(path, 2048)],
        query,
    }
}

/// The largest length at most `max` that ends `s` (UTF-8) on a character boundary.
fn floor_char_boundary(s: &[u8], max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut i = max;
    // A continuation byte (10xxxxxx) is inside a character.
    while s[i] & 0xc0 == 0x80 {
        i -= 1;
    }
    i
}

/// The Host (without port, lowercased), or the server address when there is none usable.
fn host_name(host: Option<&[u8]>, server: IpAddr) -> std::borrow::Cow<'_, str> {
    let usable = host.map(|h| h.trim_ascii()).filter(|h| {
        !h.is_empty()
            && h.len() <= 255
            && h.iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b))
    });
    let Some(h) = usable else {
        return server.to_string().into();
    };
    let h = std::str::from_utf8(h).unwrap_or_default();
    let without_port = if let Some(v6) = h.strip_prefix('[') {
        v6.split(']').next().unwrap_or(v6)
    } else {
        match h.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => h,
        }
    };
    if without_port.bytes().any(|b| b.is_ascii_uppercase()) {
        without_port.to_ascii_lowercase().into()
    } else {
        without_port.into()
    }
}

/// `name=value` pairs of a query or form body, percent-decoded (`+` as space), bounded.
fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> + '_ {
    raw_query_pairs(query)
        .map(|(n, v)| (decode_component(n, 128), decode_component(v, 4096)))
        .filter(|(n, _)| !n.is_empty())
}

/// The names of [`query_pairs`], in the same order, without decoding the values.
fn query_names(query: &str) -> impl Iterator<Item = Cow<'_, str>> + '_ {
    raw_query_pairs(query)
        .map(|(n, _)| decode_component(n, 128))
        .filter(|n| !n.is_empty())
}

/// Undecoded `name=value` pairs of a query, bounded.
fn raw_query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> + '_ {
    split_ascii(query, b'&')
        .filter(|p| !p.is_empty())
        .take(64)
        .map(|p| match memchr::memchr(b'=', p.as_bytes()) {
            Some(eq) => (&p[..eq], &p[eq + 1..]),
            None => (p, ""),
        })
}

/// `text.split(separator as char)` for an ASCII separator, by byte search: a `char` pattern's
/// searcher cost more per piece than these short pieces do. An ASCII byte is never inside a
/// multi-byte character, so every cut is on a character boundary.
fn split_ascii(text: &str, separator: u8) -> impl Iterator<Item = &str> + '_ {
    debug_assert!(separator.is_ascii());
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr::memchr(separator, r.as_bytes()) {
            Some(at) => {
                rest = Some(&r[at + 1..]);
                Some(&r[..at])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// A form-encoded component with `+` and `%XX` undone, at most `max` bytes: borrowed when
/// there is nothing to undo (most names and values), so a request's parameters cost no
/// allocation.
fn decode_component(s: &str, max: usize) -> Cow<'_, str> {
    let b = s.as_bytes();
    if b.len() <= max && memchr::memchr2(b'%', b'+', b).is_none() {
        return Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(b.len().min(max));
    let mut i = 0;
    while i < b.len() && out.len() < max {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(text) => Cow::Owned(text),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Headers every HTTP stack sends: not API parameters (OpenAPI also ignores Accept,
/// Content-Type and Authorization as header parameters). `name` is lowercase.
fn is_standard_header(name: &str) -> bool {
    name.starts_with("sec-")
        || matches!(
            name,
            "host"
                | "user-agent"
                | "accept"
                | "accept-encoding"
                | "accept-language"
                | "accept-charset"
                | "content-type"
                | "content-length"
                | "content-encoding"
                | "transfer-encoding"
                | "connection"
                | "keep-alive"
                | "authorization"
                | "proxy-authorization"
                | "cookie"
                | "cache-control"
                | "pragma"
                | "te"
                | "trailer"
                | "upgrade"
                | "via"
                | "referer"
                | "origin"
                | "expect"
                | "date"
                | "dnt"
                | "if-match"
                | "if-none-match"
                | "if-modified-since"
                | "if-unmodified-since"
                | "if-range"
                | "range"
                | "forwarded"
                | "x-forwarded-for"
                | "x-forwarded-proto"
                | "x-forwarded-host"
                | "x-forwarded-port"
                | "x-real-ip"
                | "upgrade-insecure-requests"
                | "priority"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaf_key_is_the_last_name_of_its_path() {
        for (path, key) in [
            ("user.email", "email"),
            ("tags[]", "tags"),
            ("orders[].items[][]", "items"),
            ("a.b.é", "é"),
            ("[]", ""),
            ("", ""),
            ("plain", "plain"),
            ("x.", ""),
        ] {
            assert_eq!(leaf_key(path), key, "{path}");
        }
    }

    #[test]
    fn the_route_cache_keeps_two_per_set_most_recently_used_first() {
        let mut c = RouteCache::new();
        let p = |set, check| RouteProbe { set, check };
        assert_eq!(c.get(p(7, 3), 1), None, "empty");
        assert_eq!(
            c.get(p(7, 1), 0),
            None,
            "an empty entry never matches a probe"
        );
        c.insert(p(7, 3), 1, 30);
        c.insert(p(7, 5), 1, 50);
        assert_eq!(c.get(p(7, 3), 1), Some(30));
        assert_eq!(c.get(p(7, 3), 2), None, "another generation");
        assert_eq!(c.get(p(8, 3), 1), None, "another set");
        // 3 was used last: a third entry in the set pushes out 5.
        c.insert(p(7, 9), 1, 90);
        assert_eq!(c.get(p(7, 5), 1), None);
        assert_eq!(c.get(p(7, 3), 1), Some(30));
        assert_eq!(c.get(p(7, 9), 1), Some(90));
        c.clear();
        assert_eq!(c.get(p(7, 9), 1), None);
        let probe = |key: &[u8]| RouteProbe::of(route_hash(key));
        let (a, b) = (probe(b"h\0GET\0/a"), probe(b"h\0GET\0/b"));
        assert!(a.check & 1 == 1 && a.set < ROUTE_SETS);
        assert!(a.check != b.check || a.set != b.set);
        // Fixed seeds: a worker's hash is the analysis stage's.
        assert_eq!(route_hash(b"h\0GET\0/a"), route_hash(b"h\0GET\0/a"));
        assert_eq!(probe(b"h\0GET\0/a").set, a.set);
        // Not degenerate (some fixed seeds make ahash hash everything to 0): keys alike but
        // for a number spread over the sets and never share a check.
        let mut checks = std::collections::HashSet::new();
        let mut sets = std::collections::HashSet::new();
        for i in 0..20_000 {
            for key in [
                format!("api.example.com\0GET\0/api/v1/users/{i}.json"),
                format!("api.example.com\0GET\0/api/v1/products/SKU-{i:06}.json"),
            ] {
                let p = probe(key.as_bytes());
                assert!(checks.insert(p.check), "{key}: a check seen before");
                sets.insert(p.set);
            }
        }
        // 40,000 keys thrown at random into 32,768 sets leave e^(-40000/32768), about 30 %,
        // of them empty.
        assert!(
            (ROUTE_SETS * 65 / 100..ROUTE_SETS * 75 / 100).contains(&sets.len()),
            "{} of {ROUTE_SETS} sets used",
            sets.len()
        );
        let mut key = b"left over".to_vec();
        write_route_key(&mut key, None, "10.0.0.1".parse().unwrap(), "GET", b"/a");
        assert_eq!(key, b"10.0.0.1\0GET\0/a");
        write_route_key(
            &mut key,
            Some(b"h"),
            "10.0.0.1".parse().unwrap(),
            "GET",
            b"/a",
        );
        assert_eq!(key, b"h\0GET\0/a");
    }

    #[test]
    fn the_object_id_is_the_path_segment_under_the_last_parameter() {
        let cases = [
            ("/users/{id}", "/users/42"),
            ("/users/{id}/orders", "/users/42/orders"),
            ("/a/{x}/b/{y}", "/a/1/b/2"),
            ("/a/{x}/b/{y}", "/a/1/b/"),
            ("/a/{x}/b/{y}", "/a/1"),
            ("/{id}", "/"),
            ("{id}", "abc/def"),
            ("/static", "/static"),
            ("/users/{id}.json", "//users/7.json"),
        ];
        let object = |template: &str, path: &str| {
            let mut ep = Endpoint::new("/", 0, crate::schema::SchemaLimits::default());
            ep.set_route(engine::Label::owned(&format!("GET {template}")));
            assert_eq!(
                ep.route_key,
                features::entity::key_hash(format!("GET {template}").as_bytes())
            );
            ep.object_part
                .and_then(|part| path_part(path.as_bytes(), part))
                .map(|v| String::from_utf8(v.to_vec()).unwrap())
        };
        for (template, path) in cases {
            let brace = template.rfind('{');
            let expected = brace
                .and_then(|b| path.split('/').nth(template[..b].matches('/').count()))
                .map(str::to_owned);
            assert_eq!(object(template, path), expected, "{template} {path}");
        }
        assert_eq!(object("/users/{id}", "/users/42").as_deref(), Some("42"));
        assert_eq!(object("/a/{x}/b/{y}", "/a/1"), None);
    }

    #[test]
    fn targets_split_into_authority_path_and_query() {
        let parts = |t: &[u8]| {
            let p = split_target(t);
            (
                p.authority.map(|a| String::from_utf8(a.to_vec()).unwrap()),
                p.path_str().to_string(),
                p.query_str().to_string(),
            )
        };
        let some = |a: &str| Some(a.to_string());
        let owned = |(a, p, q): (Option<String>, &str, &str)| (a, p.to_string(), q.to_string());
        for (target, expected) in [
            (&b"/a/b?x=1"[..], (None, "/a/b", "x=1")),
            (
                b"http://Example.com:8080/p?q",
                (some("Example.com:8080"), "/p", "q"),
            ),
            (b"HTTPS://h?x", (some("h"), "/", "x")),
            (b"http://h", (some("h"), "/", "")),
            (b"/x#frag", (None, "/x", "")),
            (b"/x?q=1#frag?no", (None, "/x", "q=1")),
            (b"/x#frag?no", (None, "/x", "")),
            (b"?only", (None, "/", "only")),
            (b"*", (None, "*", "")),
            ("/é/ü?ä=€".as_bytes(), (None, "/é/ü", "ä=€")),
            (b"\xff\xfe?q", (None, "/(non-utf8)", "")),
            (b"/a\xc3", (None, "/(non-utf8)", "")),
        ] {
            assert_eq!(
                parts(target),
                owned(expected),
                "{:?}",
                String::from_utf8_lossy(target)
            );
        }
        // Long paths are cut at 2048 bytes, back to a character boundary.
        let long = format!("/{}", "é".repeat(1500));
        let path = parts(long.as_bytes()).1;
        assert_eq!(path.len(), 2047);
        assert!(long.starts_with(&path));
        let ascii = format!("/{}?q", "a".repeat(3000));
        assert_eq!(parts(ascii.as_bytes()).1.len(), 2048);
    }

    #[test]
    fn a_split_cut_by_a_worker_reads_back_the_same_from_its_target() {
        let targets: [&[u8]; 9] = [
            b"/a/b?x=1",
            b"/a/b",
            b"http://Example.com:8080/p?q",
            b"http://h",
            b"/x?q=1#frag",
            b"?only",
            b"\xff\xfe?q",
            "/é/ü?ä=€".as_bytes(),
            b"",
        ];
        let mut cut = 0;
        for target in targets {
            let parts = split_target(target);
            match parts.cuts(target) {
                Some(cuts) => {
                    cut += 1;
                    // The same bytes, in a copy of the target elsewhere in memory.
                    let copy = target.to_vec();
                    assert_eq!(TargetParts::at(&copy, &cuts), Some(parts), "{target:?}");
                    // Cuts that do not fit a target give nothing, not a panic.
                    assert_eq!(TargetParts::at(b"", &cuts), None, "{target:?}");
                }
                // Only a stand-in path ("/" for an empty one, or the non-UTF-8 one) has none.
                None => assert!(parts.path == b"/" || parts.path == NON_UTF8_PATH.as_bytes()),
            }
        }
        assert_eq!(cut, 5);
    }

    #[test]
    fn common_methods_name_themselves_and_odd_ones_are_checked() {
        for m in [
            "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "PROPFIND",
        ] {
            assert_eq!(method_name(m.as_bytes()), m);
        }
        for odd in [&b""[..], b"G\xffT", b"GE T", &[b'A'; 21]] {
            assert_eq!(method_name(odd), "(invalid)");
        }
    }

    #[test]
    fn ascii_splits_match_the_standard_split() {
        for text in ["", "&", "a", "a&b", "&a&&b&", "é=1&ü=€&x", "name=va&lue=é&"] {
            let ours: Vec<&str> = split_ascii(text, b'&').collect();
            let std: Vec<&str> = text.split('&').collect();
            assert_eq!(ours, std, "{text:?}");
        }
        let pairs: Vec<(String, String)> = query_pairs("a=1&&b&c=x%20y=z&=v&é=ü")
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect();
        let expected = [("a", "1"), ("b", ""), ("c", "x y=z"), ("é", "ü")];
        assert_eq!(pairs, expected.map(|(n, v)| (n.to_string(), v.to_string())));
    }

    #[test]
    fn host_names_lose_port_and_case() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            host_name(Some(b"API.Example.com:8443"), ip),
            "api.example.com"
        );
        assert_eq!(host_name(Some(b"[::1]:80"), ip), "::1");
        assert_eq!(host_name(None, ip), "10.0.0.1");
        assert_eq!(host_name(Some(b"bad host\x01"), ip), "10.0.0.1");
    }

    #[test]
    fn credential_parameters_are_redacted_from_the_target() {
        let keyer = Keyer::new(b"k");
        let mut creds = Vec::new();
        let target = b"/r/2026-01-01?page=2&api%5Fkey=pk_live_abc123&q=x";
        auth::extract(
            &mut std::iter::empty(),
            b"page=2&api%5Fkey=pk_live_abc123&q=x",
            &auth::AuthMatcher::new(&AuthConfig::default()),
            &keyer,
            &mut creds,
        );
        assert_eq!(creds.len(), 1);
        let red = redact_query_credentials(target, &creds);
        assert_eq!(red, "/r/2026-01-01?page=2&api%5Fkey=REDACTED&q=x");
        assert!(!red.contains("pk_live"));
    }

    #[test]
    fn query_names_are_the_names_of_the_pairs() {
        for q in [
            "",
            "a=1&&b&c=x%20y=z&=v&é=ü",
            "%3D=1&+=2&x",
            &"k=v&".repeat(80),
        ] {
            let names: Vec<String> = query_names(q).map(Cow::into_owned).collect();
            let of_pairs: Vec<String> = query_pairs(q).map(|(n, _)| n.into_owned()).collect();
            assert_eq!(names, of_pairs, "{q:?}");
        }
    }

    #[test]
    fn query_components_decode() {
        let pairs: Vec<_> = query_pairs("a=1&b=x%20y+z&&c&d=%zz&e=%4&f=%C3%A9&g=%FF").collect();
        assert_eq!(
            pairs,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y z".into()),
                ("c".into(), "".into()),
                ("d".into(), "%zz".into()),
                ("e".into(), "%4".into()),
                ("f".into(), "é".into()),
                ("g".into(), "\u{FFFD}".into()),
            ]
        );
        assert!(
            matches!(&pairs[0].1, Cow::Borrowed(_)),
            "nothing to undo: no copy"
        );
        let long = "v".repeat(5000);
        assert_eq!(
            decode_component(&long, 4096).len(),
            4096,
            "cut at the bound"
        );
        assert_eq!(
            decode_component("a+b", 1),
            "a",
            "cut at the bound while decoding"
        );
    }
}
