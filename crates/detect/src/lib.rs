//! Detection (issue 5): behavioural detectors and a streaming anomaly model over each
//! transaction, what the inventory learnt of it and the behaviour of its entities; explained
//! alerts with a lifecycle. Deterministic: packet time only, no I/O (snapshots are bytes; the
//! binary reads and writes them).
//!
//! [`Detect::observe`] takes one transaction after the inventory: it extracts the request's
//! parameters ([`request`]), scans them for injection payloads, scores the transaction with the
//! [`model`] (per-parameter value models, Half-Space Trees, hard evidence) against an adaptive
//! [`threshold`], runs the [`rules`], filters what they found through operator [`feedback`],
//! and folds it into alert episodes ([`lifecycle`]). What it raised waits in an outbox for the
//! binary to deliver ([`Detect::take_alerts`]). Every per-key structure is bounded ([`table`]).

pub mod feedback;
pub mod hst;
pub mod lifecycle;
pub mod model;
pub mod params;
pub mod peers;
pub mod request;
pub mod rules;
pub mod table;
pub mod threshold;

use features::entity::{client_network, ip_key, key_hash};
use features::injection::{self, Detection};
use serde::{Deserialize, Serialize};
use sinks::alert::{Alert, Attack, Baseline, Contribution, Explanation};

use crate::feedback::{Decision, Feedback};
use crate::lifecycle::{Episodes, LifecycleConfig, LifecycleStats};
use crate::model::{Model, ModelConfig, DIMS};
use crate::request::Params;
use crate::rules::{round3, Ctx, RuleConfig, Rules, MODEL};
use crate::table::Table;
use crate::threshold::Persistence;

const NS: u64 = 1_000_000_000;
/// Snapshot format; bumped when a saved structure changes meaning.
pub const SNAPSHOT_VERSION: u32 = 1;

#[derive(Clone, Debug)]
pub struct DetectConfig {
    pub model: ModelConfig,
    pub rules: RuleConfig,
    pub lifecycle: LifecycleConfig,
    /// The anomaly model alerts a client when `k` of its last `n` scores crossed the
    /// threshold, or at once for a score twice the threshold.
    pub persistence_k: u32,
    pub persistence_n: u32,
    /// Update baselines and the model (`--no-learn` turns it off).
    pub learn: bool,
    /// Raise alerts (`--learn-only` turns it off).
    pub alert: bool,
    pub suppress: Vec<feedback::Matcher>,
    pub allow: Vec<feedback::Matcher>,
    /// Dedup keys marked false positive.
    pub false_positives: Vec<String>,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            model: ModelConfig::default(),
            rules: RuleConfig::default(),
            lifecycle: LifecycleConfig::default(),
            persistence_k: 2,
            persistence_n: 8,
            learn: true,
            alert: true,
            suppress: Vec::new(),
            allow: Vec::new(),
            false_positives: Vec::new(),
        }
    }
}

/// The model's word on one transaction (`mirador.anomaly.score`, `mirador.anomaly.alerted`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    pub score: f64,
    /// The transaction contributed to an alert.
    pub alerted: bool,
}

/// Counters for the summary and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DetectStats {
    pub scored: u64,
    pub learnt: u64,
    pub crossed: u64,
    pub alerted_transactions: u64,
    pub injections: u64,
    /// Successful responses scanned here for sensitive data (the exposure detector's sample).
    pub responses_scanned: u64,
    pub lifecycle: LifecycleStats,
    pub suppressed: u64,
    pub allowed: u64,
    pub evicted: u64,
}

/// What a snapshot holds: everything learnt, nothing of the short windows.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    model: Model,
    rules: Rules,
    /// The inventory's learnt templates, which the model's endpoints are keyed by.
    #[serde(default)]
    catalogue: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a Mirador model snapshot (or corrupt): {0}")]
    Format(String),
    #[error("model snapshot version {0}, this sensor reads version {SNAPSHOT_VERSION}: relearn with --model-out")]
    Version(u32),
}

pub struct Detect {
    cfg: DetectConfig,
    model: Model,
    rules: Rules,
    episodes: Episodes,
    feedback: Feedback,
    persistence: Table<Persistence>,
    params: Params,
    /// The reference spec, when one is configured: routes it lacks are shadow endpoints.
    spec: Option<std::sync::Arc<inventory::spec::Spec>>,
    spec_status: Table<SpecStatus>,
    decoders: http::Decoders,
    injections: Vec<(String, Detection)>,
    scan: Vec<Detection>,
    found: rules::Found,
    /// Dedup keys the operator's feedback decided (not built again).
    decided: Table<Decision>,
    outbox: Vec<Alert>,
    stats: DetectStats,
    last_ns: u64,
    swept_ns: u64,
}

impl std::fmt::Debug for Detect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detect")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Bytes of a sampled response scanned for sensitive data.
const RESPONSE_SCAN: usize = 16 * 1024;

/// Alerts waiting in the outbox at most; more are dropped and counted (the binary drains it
/// after every batch, so this only bounds a stalled consumer).
const MAX_OUTBOX: usize = 100_000;

impl Detect {
    pub fn new(cfg: DetectConfig) -> Self {
        let model = Model::new(&cfg.model);
        let rules = Rules::new(cfg.rules.clone());
        Self::with_state(cfg, model, rules)
    }

    fn with_state(cfg: DetectConfig, model: Model, rules: Rules) -> Self {
        let feedback = Feedback {
            suppress: cfg.suppress.clone(),
            allow: cfg.allow.clone(),
            false_positives: cfg.false_positives.iter().cloned().collect(),
            ..Default::default()
        };
        Detect {
            episodes: Episodes::new(cfg.lifecycle),
            persistence: Table::new(cfg.rules.max_clients),
            feedback,
            model,
            rules,
            params: Params::default(),
            spec: None,
            spec_status: Table::new(cfg.rules.max_endpoints),
            decoders: http::Decoders::default(),
            injections: Vec::new(),
            scan: Vec::new(),
            found: Vec::new(),
            decided: Table::new(10_000),
            outbox: Vec::new(),
            stats: DetectStats::default(),
            last_ns: 0,
            swept_ns: 0,
            cfg,
        }
    }

    /// The learnt state, with the inventory's templates it is keyed by, as bytes
    /// (gzip-compressed JSON with a version).
    pub fn snapshot(&self, catalogue: &serde_json::Value) -> Vec<u8> {
        use std::io::Write;
        let snap = SnapshotRef {
            version: SNAPSHOT_VERSION,
            model: &self.model,
            rules: &self.rules,
            catalogue,
        };
        let json = serde_json::to_vec(&snap).unwrap_or_default();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        // Writing into a Vec cannot fail.
        let _ = gz.write_all(&json);
        gz.finish().unwrap_or_default()
    }

    /// A detector that continues from a snapshot, with `cfg`'s thresholds and switches, and
    /// the inventory templates saved with it.
    pub fn restore(
        cfg: DetectConfig,
        bytes: &[u8],
    ) -> Result<(Self, serde_json::Value), SnapshotError> {
        use std::io::Read;
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut json)
            .map_err(|e| SnapshotError::Format(e.to_string()))?;
        let version: VersionOnly =
            serde_json::from_slice(&json).map_err(|e| SnapshotError::Format(e.to_string()))?;
        if version.version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version(version.version));
        }
        let snap: Snapshot =
            serde_json::from_slice(&json).map_err(|e| SnapshotError::Format(e.to_string()))?;
        let mut model = snap.model;
        model.hst.refresh();
        model.threshold.alpha = cfg.model.false_alarm_rate.clamp(1e-6, 0.5);
        model.threshold.floor = cfg.model.score_floor;
        model.threshold.refit();
        let mut rules = snap.rules;
        rules.set_config(cfg.rules.clone());
        Ok((Self::with_state(cfg, model, rules), snap.catalogue))
    }

    /// New thresholds, rules and feedback (a reload); what was learnt and the open alerts
    /// stay, and so do the learn and alert switches.
    pub fn reconfigure(&mut self, mut cfg: DetectConfig) {
        cfg.learn = self.cfg.learn;
        cfg.alert = self.cfg.alert;
        self.model.threshold.alpha = cfg.model.false_alarm_rate.clamp(1e-6, 0.5);
        self.model.threshold.floor = cfg.model.score_floor;
        self.model.threshold.refit();
        self.rules.set_config(cfg.rules.clone());
        self.episodes.set_config(cfg.lifecycle);
        self.feedback.suppress = cfg.suppress.clone();
        self.feedback.allow = cfg.allow.clone();
        self.feedback.false_positives = cfg.false_positives.iter().cloned().collect();
        self.decided = Table::new(10_000);
        self.cfg = cfg;
    }

    pub fn stats(&self) -> DetectStats {
        DetectStats {
            lifecycle: self.episodes.stats,
            suppressed: self.feedback.suppressed,
            allowed: self.feedback.allowed,
            evicted: self.rules.stats().evicted
                + self.model.params.evicted()
                + self.persistence.evicted(),
            ..self.stats
        }
    }

    /// Routes the reference spec lacks are alerted as shadow endpoints from now on.
    pub fn set_spec(&mut self, spec: Option<std::sync::Arc<inventory::spec::Spec>>) {
        self.spec = spec;
        self.spec_status = Table::new(self.cfg.rules.max_endpoints);
    }

    /// Transactions the model has learnt (across restores).
    pub fn learnt(&self) -> u64 {
        self.model.learnt
    }

    /// The current alarm threshold of the model (infinite while it learns).
    pub fn threshold(&self) -> f64 {
        self.model.threshold.value()
    }

    /// Alerts raised since the last call, in the order raised.
    pub fn take_alerts(&mut self) -> Vec<Alert> {
        std::mem::take(&mut self.outbox)
    }

    /// Closes every open alert (end of a capture, shutdown).
    pub fn finish(&mut self) {
        self.episodes.close_all(&mut self.outbox);
    }

    /// Scores one transaction and runs the detectors on it.
    pub fn observe(
        &mut self,
        flow: &engine::FlowIds,
        tx: &http::Transaction,
        notes: &inventory::Annotations,
        profile: Option<&inventory::profile::Profile>,
        profiler: &inventory::profile::Profiler,
    ) -> Option<Verdict> {
        let req = tx.request.as_ref()?;
        let now = tx.start().as_nanos();
        self.last_ns = self.last_ns.max(now);
        let target = req.target();
        let path_end = memchr::memchr(b'?', target).unwrap_or(target.len());
        let (path, query) = (
            &target[..path_end],
            target.get(path_end + 1..).unwrap_or(&[]),
        );
        let path = origin_path(path);

        self.params.clear();
        self.params.add_urlencoded("", query);
        // The three headers detection reads, in one pass over the head.
        let (mut content_type, mut host_header, mut user_agent) = (None, None, None);
        for (name, value) in req.head.iter() {
            match name.len() {
                4 if name.eq_ignore_ascii_case(b"host") => {
                    host_header = host_header.or(Some(value))
                }
                10 if name.eq_ignore_ascii_case(b"user-agent") => {
                    user_agent = user_agent.or(Some(value))
                }
                12 if name.eq_ignore_ascii_case(b"content-type") => {
                    content_type = content_type.or(Some(value))
                }
                _ => {}
            }
        }
        let content_type = content_type.unwrap_or(b"");
        let body = req.body.content();
        if !body.is_empty() {
            if contains_ignore_case(content_type, b"x-www-form-urlencoded") {
                self.params.add_urlencoded("", body);
            } else if contains_ignore_case(content_type, b"json") {
                self.params.add_json(body);
            }
        }
        self.injections.clear();
        // A path of plain characters cannot carry a payload: skip scanning it.
        let path_suspect = path.iter().any(|&b| !PLAIN_PATH[usize::from(b)])
            || memchr::memmem::find(path, b"..").is_some();
        let path_value = path_suspect.then_some(("path", path));
        for (name, value) in path_value.into_iter().chain(
            self.params
                .as_slice()
                .iter()
                .map(|p| (p.name.as_str(), p.raw.as_slice())),
        ) {
            if value.iter().all(|&b| PLAIN_VALUE[usize::from(b)]) {
                continue;
            }
            self.scan.clear();
            injection::scan(value, &mut self.scan);
            for d in self.scan.drain(..) {
                self.injections.push((name.to_string(), d));
            }
        }
        let mut evasions = Vec::new();
        for a in tx.anomalies.iter() {
            if self.rules.is_evasion(a.as_str()) {
                evasions.push(a.as_str());
            }
        }

        let host = host_header.and_then(|h| std::str::from_utf8(h).ok());
        let method = std::str::from_utf8(req.method()).unwrap_or("(non-utf8)");
        let route = notes.route.as_deref();
        let endpoint_key = match route {
            Some(r) => key_hash(r.as_bytes()),
            None => {
                let mut k = Vec::with_capacity(64);
                k.extend_from_slice(host.unwrap_or("").as_bytes());
                k.push(0);
                k.extend_from_slice(req.method());
                k.push(0);
                k.extend_from_slice(path);
                key_hash(&k)
            }
        };
        let client_features = profile.and_then(|p| profiler.client(p));
        let raw = match profile {
            Some(p) => model::raw_vector(&p.tx, client_features.as_ref()),
            None => [0.0; DIMS.len()],
        };
        let unit = model::squash(&raw);
        let behaviour = client_features.as_ref().map(peers::vector);
        let mut score = self.model.score(
            endpoint_key,
            self.params.as_slice(),
            &unit,
            self.injections.len(),
            !evasions.is_empty(),
        );
        score.peer = behaviour.map_or(0.0, |b| model::peer_points(self.model.peers.rarity(&b)));
        let total = score.total();
        let threshold = self.model.threshold.value();
        let ready = self.model.ready();
        let crossed = ready && total >= threshold;
        self.stats.scored += 1;
        self.stats.crossed += u64::from(crossed);
        self.stats.injections += u64::from(!self.injections.is_empty());

        let client = flow.client.ip();
        let network = client_network(client);
        let credential = notes.credentials.first();
        let identity = credential.map(|c| {
            let id = c.subject_hash.unwrap_or(c.secret);
            let key = u64::from_le_bytes(id.0[..8].try_into().unwrap_or_default());
            (key, id)
        });
        let jwt = credential.and_then(|c| c.jwt.as_deref());
        let now_secs = (now / NS) as i64;
        let login = self.rules.is_login(endpoint_key, path);
        let login_user = login
            .then(|| login_user(credential, self.params.as_slice()))
            .flatten();
        let status = tx.response.as_ref().map(|r| r.status).filter(|&s| s != 0);
        let mut response_kinds = notes.response_sensitive;
        let mut inspected = notes.inspected;
        if let Some(resp) = tx.response.as_ref() {
            let success = status.is_some_and(|s| (200..300).contains(&s));
            // A body the inventory inspected was scanned there (`notes.response_sensitive`).
            if success
                && resp.body.len > 0
                && self.rules.sample_response(endpoint_key, resp.body.len)
                && !notes.inspected
            {
                let decoded = (resp.body.coding != http::Coding::Identity)
                    .then(|| {
                        resp.body
                            .decode_copy(RESPONSE_SCAN, 8 << 20, &mut self.decoders)
                    })
                    .flatten();
                let content = match &decoded {
                    Some(d) => &d.bytes[..],
                    None if resp.body.coding == http::Coding::Identity
                        || resp.body.decoded.is_some() =>
                    {
                        resp.body.content()
                    }
                    None => &[][..],
                };
                if !content.is_empty() {
                    self.stats.responses_scanned += 1;
                    let content = &content[..content.len().min(RESPONSE_SCAN)];
                    response_kinds = response_kinds.union(features::sensitive::kinds(content));
                    inspected = true;
                }
            }
        }
        let endpoint_objects = || {
            profile.and_then(|p| profiler.endpoint(p)).map_or(0.0, |e| {
                e[features::entity::EntityFeature::DistinctObjects1h]
            })
        };
        // Taken out for the context's lifetime, so the detectors can borrow `self` mutably.
        let injections = std::mem::take(&mut self.injections);
        let ctx = Ctx {
            now_ns: now,
            flow_uid: &flow.uid,
            tx_index: tx.index,
            client,
            client_port: flow.client.port(),
            client_key: ip_key(client),
            network,
            network_key: ip_key(network),
            server: flow.server.ip(),
            server_port: flow.server.port(),
            host,
            method,
            url: std::str::from_utf8(target).unwrap_or("(non-utf8 target)"),
            redacted_target: notes.redacted_target.as_deref(),
            route,
            endpoint_key,
            status,
            user_agent: user_agent.and_then(|u| std::str::from_utf8(u).ok()),
            identity,
            has_credentials: !notes.credentials.is_empty(),
            jwt_unsigned: jwt.is_some_and(|j| j.unsigned),
            jwt_expired_for: jwt
                .filter(|j| j.expired_at(now_secs))
                .and_then(|j| j.exp)
                .map(|exp| now_secs - exp),
            object: notes.object_id.clone().and_then(|r| target.get(r)),
            login,
            login_user,
            injections: &injections,
            evasions,
            response_kinds,
            inspected,
            response_bytes: tx.response.as_ref().map_or(0, |r| r.body.len),
            endpoint_objects: &endpoint_objects,
        };

        // Repeated detections of an open alert are folded by the gate without building an
        // alert; what the operator's feedback already decided is not built again either.
        let mut found = std::mem::take(&mut self.found);
        found.clear();
        let mut folded = false;
        {
            let episodes = &mut self.episodes;
            let decided = &self.decided;
            let mut admit = |key: u64| {
                if decided.get(key).is_some() {
                    return false;
                }
                let build = episodes.admit(key, now);
                folded |= episodes.folded();
                build
            };
            if self.cfg.alert {
                self.rules
                    .observe(&ctx, self.cfg.learn, &mut admit, &mut found);
                if let Some((key, a)) = shadow(&mut self.spec_status, self.spec.as_deref(), &ctx) {
                    if admit(key) {
                        found.push((key, a));
                    }
                }
            }
            let persistence = self.persistence.entry(ctx.client_key, Persistence::default);
            let persistent =
                persistence.push(crossed, self.cfg.persistence_k, self.cfg.persistence_n);
            if self.cfg.alert && crossed && (persistent || total >= 2.0 * threshold) {
                let route = ctx.route.unwrap_or("an unknown route");
                let key = ctx.client_dedup(&MODEL, "client_endpoint", &[route.as_bytes()]);
                if admit(key) {
                    let a = model_alert(&self.model, &ctx, &score, &raw, &unit, total, threshold);
                    found.push((key, a));
                }
            }
        }

        let mut alerted = folded;
        let mut allowed = false;
        for (key, a) in found.drain(..) {
            match self.feedback.decide(&a) {
                Decision::Raise => {
                    if self.outbox.len() >= MAX_OUTBOX {
                        self.outbox.remove(0);
                    }
                    alerted |= self.episodes.report(key, a, now, &mut self.outbox);
                }
                decision => {
                    allowed |= decision == Decision::Allow;
                    self.decided.entry(key, || decision);
                }
            }
        }
        self.found = found;
        self.stats.alerted_transactions += u64::from(alerted);

        // Robust learning: what crossed the threshold, alerted, or carried attack payloads is
        // not learnt as normal, unless an operator said it is.
        let hard_evidence = !injections.is_empty() || !ctx.evasions.is_empty();
        drop(ctx);
        self.injections = injections;
        let normal = allowed || (!crossed && !alerted && !hard_evidence);
        if self.cfg.learn && normal {
            self.model
                .learn(endpoint_key, self.params.as_slice(), &raw, &unit, total);
            // About one transaction in 64 offers its client's behaviour to the peer groups.
            let mix = (ip_key(client) ^ (now / (60 * NS))).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            if let (Some(b), true) = (behaviour, mix >> 58 == 0) {
                self.model.peers.observe(b, mix, now);
            }
            self.stats.learnt += 1;
        }
        if now.saturating_sub(self.swept_ns) >= 60 * NS {
            self.swept_ns = now;
            self.episodes.sweep(now, &mut self.outbox);
        }
        Some(Verdict {
            score: round3(total),
            alerted,
        })
    }
}

#[derive(Serialize)]
struct SnapshotRef<'a> {
    version: u32,
    model: &'a Model,
    rules: &'a Rules,
    catalogue: &'a serde_json::Value,
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

/// The path of an absolute-form target (`http://host:port/path` → `/path`); others as they are.
fn origin_path(path: &[u8]) -> &[u8] {
    for scheme in [&b"http://"[..], b"https://"] {
        if path.len() > scheme.len() && path[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let rest = &path[scheme.len()..];
            return match memchr::memchr(b'/', rest) {
                Some(i) => &rest[i..],
                None => b"/",
            };
        }
    }
    path
}

fn model_alert(
    model: &Model,
    ctx: &Ctx,
    score: &model::ModelScore,
    raw: &[f64; DIMS.len()],
    unit: &[f64; DIMS.len()],
    total: f64,
    threshold: f64,
) -> Alert {
    let attribution = model.hst.attribution(unit);
    let parts = score.parts(&attribution);
    let route = ctx.route.unwrap_or("an unknown route");
    let mut a = ctx.alert(
        &MODEL,
        "client_endpoint",
        &format!("{}|{route}", ctx.client),
        (40.0 + 10.0 * (total / threshold.max(1e-9))).min(85.0) as u8,
        (1.0 - threshold / total.max(1e-9) / 2.0).clamp(0.5, 0.95),
    );
    let top: Vec<&str> = parts.iter().take(3).map(|(n, _)| n.as_str()).collect();
    a.title = format!("Anomalous request to {route} from {}", ctx.client);
    a.summary = format!(
        "Anomaly score {:.1} against a threshold of {:.1} learnt from {} normal transactions; it stood out most in {}.",
        total,
        threshold,
        model.learnt,
        top.join(", ")
    );
    let owasp = match parts.first().map(|(n, _)| n.as_str()) {
        Some("endpoint.novelty") => "API9:2023 Improper Inventory Management",
        Some(n) if n.starts_with("client.") => "API4:2023 Unrestricted Resource Consumption",
        _ => "API8:2023 Security Misconfiguration",
    };
    a.attack = Some(Attack {
        owasp: Some(owasp.to_string()),
        mitre: MODEL.mitre.map(String::from),
    });
    let contributions = parts
        .iter()
        .take(5)
        .map(|(name, points)| {
            let dim = DIMS.iter().position(|d| d.name() == *name);
            Contribution {
                feature: name.clone(),
                value: round3(dim.map_or(*points, |i| raw[i])),
                expected: Some(round3(dim.map_or(0.0, |i| model.means[i]))),
                p50: None,
                p99: None,
                share: round3(points / total.max(1e-9)),
            }
        })
        .collect();
    a.explanation = Some(Explanation {
        score: round3(total),
        threshold: round3(threshold),
        baseline: Some(Baseline {
            scope: "endpoint".to_string(),
            key: route.to_string(),
            window: "streaming".to_string(),
            samples: model.learnt,
        }),
        contributions,
    });
    a
}

/// A shadow-endpoint alert, with its key's hash, when the reference spec does not document the
/// route: raised on the route's first call (the inventory's own check waits for its export).
fn shadow(
    cache: &mut Table<SpecStatus>,
    spec: Option<&inventory::spec::Spec>,
    ctx: &Ctx,
) -> Option<(u64, Alert)> {
    let spec = spec?;
    let route = ctx.route?;
    let (method, template) = route.split_once(' ')?;
    let host = ctx
        .host
        .map(|h| {
            String::from_utf8_lossy(sinks::ecs::split_host_port(h.as_bytes()).0)
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|| ctx.server.to_string());
    let key = key_hash(format!("{host}\0{route}").as_bytes());
    let status = *cache.entry(key, || {
        match spec.status_of(spec.find(&host, method, template)) {
            inventory::spec::Status::Shadow => SpecStatus::Shadow,
            _ => SpecStatus::Known,
        }
    });
    if status != SpecStatus::Shadow {
        return None;
    }
    let det = rules::Det {
        id: inventory::alerts::DETECTOR_ID,
        name: "Shadow API endpoint",
        kind: sinks::alert::DetectorKind::Rule,
        owasp: "API9:2023 Improper Inventory Management",
        mitre: Some("T1190"),
        action: "Confirm who owns this endpoint; document it in the reference spec, or block it at the gateway and retire it.",
    };
    let exposed = !ctx.response_kinds.is_empty();
    let open = !ctx.has_credentials && ctx.success();
    let score = 40 + if exposed { 25 } else { 0 } + if open { 15 } else { 0 };
    let mut a = ctx.alert(&det, &host, route, score, 0.8);
    // The inventory's key, so both name one endpoint alike.
    a.dedup_key = format!("{}|{host}|{method}|{template}", det.id);
    let hash = key_hash(a.dedup_key.as_bytes());
    a.title = format!("Undocumented endpoint {route} on {host}");
    a.summary = format!(
        "{route} on {host} answered {} to {}, and the reference spec does not document it.{}{}",
        ctx.status.map_or("nothing".to_string(), |s| s.to_string()),
        ctx.client,
        if exposed {
            " It returned sensitive data."
        } else {
            ""
        },
        if open {
            " The call carried no credential."
        } else {
            ""
        },
    );
    a.explanation = Some(Explanation {
        score: f64::from(score),
        threshold: 40.0,
        baseline: Some(Baseline {
            scope: "reference_spec".to_string(),
            key: host.clone(),
            window: "all".to_string(),
            samples: 1,
        }),
        contributions: vec![Contribution {
            feature: "documented_in_spec".to_string(),
            value: 0.0,
            expected: Some(1.0),
            p50: None,
            p99: None,
            share: 1.0,
        }],
    });
    Some((hash, a))
}

/// Letters, digits and `_ - . @`: a value of these alone carries no payload of any class.
const PLAIN_VALUE: [bool; 256] = byte_set(b"_-.@");
/// Bytes of ordinary paths (letters, digits, `/ . - _ ~ + , : @ =`): nothing to scan.
const PLAIN_PATH: [bool; 256] = byte_set(b"/.-_~+,:@=");

/// Letters, digits and `extra`, as a table (values can be long: one load a byte).
const fn byte_set(extra: &[u8]) -> [bool; 256] {
    let mut set = [false; 256];
    let mut b = 0;
    while b < 256 {
        set[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        set[extra[i] as usize] = true;
        i += 1;
    }
    set
}

/// What the reference spec says of a route, cached per host and route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SpecStatus {
    Shadow,
    Known,
}

/// `needle` occurs in `hay`, ASCII case ignored (an empty needle never does).
pub(crate) fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The user name a login tried: the Basic user, else a body or query field named like one.
fn login_user(
    credential: Option<&std::sync::Arc<features::auth::Credential>>,
    params: &[request::Param],
) -> Option<u64> {
    if let Some(h) = credential.and_then(|c| c.subject_hash) {
        return Some(u64::from_le_bytes(h.0[..8].try_into().unwrap_or_default()));
    }
    const NAMES: [&str; 6] = ["username", "user", "email", "login", "user_name", "account"];
    params.iter().find_map(|p| {
        let leaf = p
            .name
            .rsplit('.')
            .next()
            .unwrap_or(&p.name)
            .to_ascii_lowercase();
        (NAMES.contains(&leaf.as_str()) && !p.decoded.is_empty()).then(|| key_hash(&p.decoded))
    })
}
