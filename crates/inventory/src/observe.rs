//! [`Inventory`]: one transaction at a time into the catalogue and the endpoint table.

use std::collections::HashMap;
use std::net::IpAddr;

use features::auth::{self, AuthConfig, Credential, Keyer};
use features::sensitive::{self, Finding, Kind, KindSet};
use http::{Body, Head, Transaction};

use crate::catalogue::{Catalogue, CatalogueLimits, RouteSource, Rule};
use crate::endpoint::{Endpoint, EndpointLimits, Place};
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
    /// Then one body in this many.
    pub body_sample_every: u64,
    /// Bytes of a non-JSON text body scanned for sensitive data.
    pub text_scan_bytes: usize,
    /// Decoded bytes kept of a sampled body whose coding the analysis stage did not undo
    /// (responses, by default), and the most decompressed before giving up.
    pub decode_keep_bytes: usize,
    pub decode_max_bytes: u64,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        InventoryConfig {
            catalogue: CatalogueLimits::default(),
            rules: Vec::new(),
            auth: AuthConfig::default(),
            identity_key: Vec::new(),
            max_endpoints: 10_000,
            endpoint: EndpointLimits::default(),
            schema: SchemaLimits {
                max_depth: 16,
                max_properties: 128,
                max_nodes: 1024,
            },
            bodies_in_full: 256,
            body_sample_every: 16,
            text_scan_bytes: 64 * 1024,
            decode_keep_bytes: 64 * 1024,
            decode_max_bytes: 8 << 20,
        }
    }
}

/// What the inventory learnt of one transaction, for its record and for detection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Annotations {
    /// `METHOD /template`; `None` for requests to routes that do not exist (404 probes).
    pub route: Option<String>,
    pub host: String,
    pub credentials: Vec<Credential>,
    /// Sensitive data found anywhere in the transaction.
    pub sensitive: KindSet,
    /// Answered 2xx to a request carrying no credential.
    pub unauthenticated_success: bool,
    /// Query parameters and header names the endpoint had not had after its warm-up.
    pub unseen_params: u32,
    /// JSON fields the endpoint's bodies had not had after its warm-up.
    pub unseen_fields: u32,
    /// Nesting depth of the request's JSON body.
    pub body_depth: u32,
    /// The path's parameter values that are object ids (for enumeration detection).
    pub object_id: Option<String>,
}

impl Annotations {
    /// What of this leaves the sensor on the transaction record: hashes, never secrets.
    pub fn notes(&self) -> engine::Notes {
        engine::Notes {
            route: self.route.as_deref().map(Into::into),
            identity: self
                .credentials
                .iter()
                .map(|c| engine::IdentityNote {
                    scheme: c.scheme.as_str(),
                    location: c.location.as_str(),
                    name: c.name.as_str().into(),
                    credential: c.secret.to_hex(),
                    subject: c.subject_hash.map(|h| h.to_hex()),
                })
                .collect(),
            sensitive: self.sensitive.iter().map(Kind::as_str).collect(),
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
}

/// The API seen so far.
pub struct Inventory {
    cfg: InventoryConfig,
    catalogue: Catalogue,
    keyer: Keyer,
    endpoints: HashMap<EndpointKey, Endpoint>,
    stats: InventoryStats,
    credentials: Vec<Credential>,
    findings: Vec<Finding>,
    decoders: http::Decoders,
}

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inventory")
            .field("endpoints", &self.endpoints.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
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
            endpoints: HashMap::new(),
            stats: InventoryStats::default(),
            credentials: Vec::new(),
            findings: Vec::new(),
            decoders: http::Decoders::default(),
            cfg,
        }
    }

    pub fn stats(&self) -> InventoryStats {
        self.stats
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    pub fn config(&self) -> &InventoryConfig {
        &self.cfg
    }

    /// Learns from one transaction of `flow`. The server address names the host when the
    /// request has no Host.
    pub fn observe(&mut self, flow: &engine::FlowIds, tx: &Transaction) -> Option<Annotations> {
        let req = tx.request.as_ref()?;
        let (client, server_ip) = (flow.client.ip(), flow.server.ip());
        self.stats.transactions += 1;
        let method = method_name(req.method());
        let (authority, path, query) = split_target(req.target());
        let host = host_name(req.head.get("host").or(authority), server_ip);
        let status = tx.response.as_ref().map(|r| r.status);
        let now = tx.start().as_nanos();

        let mut notes = Annotations {
            host: host.clone(),
            ..Default::default()
        };
        self.credentials.clear();
        auth::extract(
            &mut req.head.iter(),
            query.as_bytes(),
            &self.cfg.auth,
            &self.keyer,
            &mut self.credentials,
        );
        notes.credentials = self.credentials.clone();
        let success = status.is_some_and(|s| (200..300).contains(&s));
        notes.unauthenticated_success = success && notes.credentials.is_empty();

        let learn = status.is_some_and(|s| s >= 100 && !names_no_route(s));
        let routed = self.catalogue.route(&host, method, path, learn);
        let learnt = match &routed.source {
            RouteSource::Learnt(l) => l.clone(),
            _ => None,
        };
        if !learn && learnt.is_none() && routed.source != crate::catalogue::RouteSource::Forced {
            // A request to a route that does not exist: counted, not an endpoint.
            self.stats.unrouted += 1;
            return Some(notes);
        }
        notes.route = Some(format!("{method} {}", routed.template));
        if let Some(l) = &learnt {
            if let Some(p) = l.params.last() {
                notes.object_id = path
                    .strip_prefix('/')
                    .unwrap_or(path)
                    .split('/')
                    .nth(p.position)
                    .map(str::to_string);
            }
        }

        let key: EndpointKey = (host.into(), method.into(), routed.template.into());
        if !self.endpoints.contains_key(&key) && self.endpoints.len() >= self.cfg.max_endpoints {
            self.stats.endpoints_over_limit += 1;
            return Some(notes);
        }
        let limits = self.cfg.endpoint;
        let schema_limits = self.cfg.schema;
        let ep = self.endpoints.entry(key).or_insert_with(|| {
            let mut e = Endpoint::new(path, now, schema_limits);
            e.evidence = Some((flow.uid.as_str().into(), tx.index));
            e.server = Some(flow.server);
            e
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
            *ep.auth
                .entry((c.scheme, c.location.as_str(), c.name.as_str().into()))
                .or_default() += 1;
            ep.add_identity(c.subject_hash.unwrap_or(c.secret), &limits);
            if c.jwt.as_ref().is_some_and(|j| j.unsigned) {
                ep.unsigned_tokens += 1;
            }
        }
        if notes.unauthenticated_success {
            ep.unauthenticated_success += 1;
        }

        // Parameters.
        let findings = &mut self.findings;
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
        for (name, value) in req.head.iter() {
            if let Some(cookies) = name.eq_ignore_ascii_case(b"cookie").then_some(value) {
                for c in cookies.split(|&b| b == b';') {
                    let n = c.split(|&b| b == b'=').next().unwrap_or(c).trim_ascii();
                    if !n.is_empty() && ep.add_cookie(&String::from_utf8_lossy(n), &limits) && warm
                    {
                        notes.unseen_params += 1;
                    }
                }
                continue;
            }
            if is_standard_header(name) {
                continue;
            }
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            let value = String::from_utf8_lossy(value);
            if ep.add_param(Place::Header, &name, &value, &limits) && warm {
                notes.unseen_params += 1;
            }
            if is_credential_header(&name, &self.cfg.auth) {
                continue;
            }
            findings.clear();
            sensitive::scan_field(name.as_bytes(), value.as_bytes(), findings);
            for f in findings.iter() {
                ep.add_sensitive(Place::Header, &name, f.kind, &limits);
                notes.sensitive.insert(f.kind);
            }
        }

        // Bodies: every one of the first few, then a sample.
        let mut scratch = Scratch {
            cfg: &self.cfg,
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
            warm,
            &mut body_notes,
        );
        notes.body_depth = body_notes.depth;
        if let Some(r) = &tx.response {
            inspect_body(
                &mut scratch,
                ep,
                &r.head,
                &r.body,
                Place::ResponseBody,
                warm,
                &mut body_notes,
            );
        }
        notes.unseen_fields = body_notes.unseen_fields;
        notes.sensitive.union(body_notes.sensitive);
        Some(notes)
    }

    /// Endpoints with every entry made before its template was learnt folded in, sorted.
    pub fn endpoints(&mut self) -> Vec<(&EndpointKey, &Endpoint)> {
        self.consolidate();
        let mut all: Vec<_> = self.endpoints.iter().collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        all
    }

    /// The learnt evidence of an endpoint's template (confidence, parameter shapes).
    pub fn evidence(&self, key: &EndpointKey, ep: &Endpoint) -> Option<features::template::Learnt> {
        match self
            .catalogue
            .current(&key.0, &key.1, &ep.sample_path)?
            .source
        {
            RouteSource::Learnt(l) => l,
            _ => None,
        }
    }

    /// Re-keys entries whose paths now fall under a learnt template (a position became a
    /// parameter after they were made) and merges them into it.
    fn consolidate(&mut self) {
        let limits = self.cfg.endpoint;
        let moves: Vec<(EndpointKey, EndpointKey)> = self
            .endpoints
            .iter()
            .filter_map(|(key, ep)| {
                let now = self.catalogue.current(&key.0, &key.1, &ep.sample_path)?;
                (*now.template != *key.2).then(|| {
                    (
                        key.clone(),
                        (key.0.clone(), key.1.clone(), now.template.into()),
                    )
                })
            })
            .collect();
        let mut moves = moves;
        moves.sort();
        for (from, to) in moves {
            let Some(ep) = self.endpoints.remove(&from) else {
                continue;
            };
            match self.endpoints.get_mut(&to) {
                Some(target) => target.merge(ep, &limits),
                None => {
                    self.endpoints.insert(to, ep);
                }
            }
        }
    }
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
    warm: bool,
    notes: &mut BodyNotes,
) {
    let cfg = scratch.cfg;
    if body.len == 0 {
        return;
    }
    let side = match place {
        Place::RequestBody => &mut ep.request,
        _ => &mut ep.response,
    };
    side.sizes.add(body.len as f64);
    let mime = head.get("content-type").map(media_type);
    if let Some(m) = &mime {
        if let Some(n) = side.content_types.get_mut(m.as_str()) {
            *n += 1;
        } else if side.content_types.len() < cfg.endpoint.content_types {
            side.content_types.insert(m.as_str().into(), 1);
        }
    }
    let seen = side.sizes.count();
    let sampled = seen <= cfg.bodies_in_full || seen % cfg.body_sample_every.max(1) == 0;
    if !sampled {
        return;
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
        match serde_json::from_slice::<serde_json::Value>(content) {
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
                found.push((name.clone(), f.kind));
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

/// The field name of a leaf path: `user.email` → `email`, `tags[]` → `tags`.
fn leaf_key(path: &str) -> &str {
    let mut p = path;
    while let Some(rest) = p.strip_suffix("[]") {
        p = rest;
    }
    p.rsplit('.').next().unwrap_or(p)
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

fn method_name(m: &[u8]) -> &str {
    match std::str::from_utf8(m) {
        Ok(s) if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_graphic()) => s,
        _ => "(invalid)",
    }
}

/// Authority (absolute-form), path, and raw query of a request target.
fn split_target(target: &[u8]) -> (Option<&[u8]>, &str, &str) {
    let text = std::str::from_utf8(target).unwrap_or("/(non-utf8)");
    let (mut authority, mut rest) = (None, text);
    for scheme in ["http://", "https://"] {
        if text.len() > scheme.len() && text[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let after = &text[scheme.len()..];
            let end = after.find(['/', '?']).unwrap_or(after.len());
            authority = Some(&after.as_bytes()[..end]);
            rest = &after[end..];
        }
    }
    let rest = rest.split('#').next().unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = if path.is_empty() { "/" } else { path };
    let path = &path[..floor_char_boundary(path, 2048)];
    (authority, path, query)
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The Host (without port, lowercased), or the server address when there is none usable.
fn host_name(host: Option<&[u8]>, server: IpAddr) -> String {
    let usable = host.map(|h| h.trim_ascii()).filter(|h| {
        !h.is_empty()
            && h.len() <= 255
            && h.iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b))
    });
    let Some(h) = usable else {
        return server.to_string();
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
    without_port.to_ascii_lowercase()
}

/// `name=value` pairs of a query or form body, percent-decoded (`+` as space), bounded.
fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .take(64)
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (decode_component(n, 128), decode_component(v, 4096))
        })
        .filter(|(n, _)| !n.is_empty())
}

fn decode_component(s: &str, max: usize) -> String {
    let b = s.as_bytes();
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
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Headers every HTTP stack sends: not API parameters (OpenAPI also ignores Accept,
/// Content-Type and Authorization as header parameters).
fn is_standard_header(name: &[u8]) -> bool {
    const STANDARD: &[&str] = &[
        "host",
        "user-agent",
        "accept",
        "accept-encoding",
        "accept-language",
        "accept-charset",
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "authorization",
        "proxy-authorization",
        "cookie",
        "cache-control",
        "pragma",
        "te",
        "trailer",
        "upgrade",
        "via",
        "referer",
        "origin",
        "expect",
        "date",
        "dnt",
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
        "if-range",
        "range",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-real-ip",
        "upgrade-insecure-requests",
        "priority",
    ];
    if name.len() > 4 && name[..4].eq_ignore_ascii_case(b"sec-") {
        return true;
    }
    STANDARD
        .iter()
        .any(|s| s.as_bytes().eq_ignore_ascii_case(name))
}

fn is_credential_header(name: &str, cfg: &AuthConfig) -> bool {
    cfg.api_key_headers
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_authority_path_and_query() {
        assert_eq!(split_target(b"/a/b?x=1"), (None, "/a/b", "x=1"));
        assert_eq!(
            split_target(b"http://Example.com:8080/p?q"),
            (Some(&b"Example.com:8080"[..]), "/p", "q")
        );
        assert_eq!(split_target(b"http://h"), (Some(&b"h"[..]), "/", ""));
        assert_eq!(split_target(b"/x#frag"), (None, "/x", ""));
        assert_eq!(split_target(b"\xff\xfe").1, "/(non-utf8)");
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
    fn query_components_decode() {
        let pairs: Vec<_> = query_pairs("a=1&b=x%20y+z&&c&d=%zz&e=%4").collect();
        assert_eq!(
            pairs,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y z".into()),
                ("c".into(), "".into()),
                ("d".into(), "%zz".into()),
                ("e".into(), "%4".into()),
            ]
        );
    }
}
