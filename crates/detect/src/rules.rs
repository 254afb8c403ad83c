//! Behavioural detectors, each over bounded per-entity state in packet time, each threshold
//! from [`RuleConfig`]. A detector looks at one transaction in its [`Ctx`] and, when the
//! behaviour it watches crosses its threshold, reports an [`Alert`] draft; the lifecycle
//! ([`crate::lifecycle`]) folds repeats into one alert per episode.
//!
//! Short windows (damped counts, windowed distinct counts) are not saved in a snapshot; learnt
//! baselines (rates by hour of day, working hours, endpoints' auth and data) are.

use std::net::IpAddr;

use features::entity::{key_hash, Damped, Distinct, Scale};
use features::injection::Detection;
use features::sensitive::KindSet;
use serde::{Deserialize, Serialize};
use sinks::alert::{
    Alert, Attack, Baseline, Client, Contribution, Detector, DetectorKind, Explanation, Http,
    Lifecycle, Server, Severity,
};

use crate::table::Table;

const NS: u64 = 1_000_000_000;

/// Detections whose alerts were built, with the hash of their dedup key.
pub type Found = Vec<(u64, Alert)>;

/// A detector's identity and what to tell the analyst.
#[derive(Clone, Copy, Debug)]
pub struct Det {
    pub id: &'static str,
    pub name: &'static str,
    pub kind: DetectorKind,
    pub owasp: &'static str,
    pub mitre: Option<&'static str>,
    pub action: &'static str,
}

pub const STUFFING: Det = Det {
    id: "detect.credential_stuffing",
    name: "Credential stuffing or brute force",
    kind: DetectorKind::Statistical,
    owasp: "API2:2023 Broken Authentication",
    mitre: Some("T1110"),
    action: "Rate-limit or block the source at the gateway, require MFA or CAPTCHA on login, and check the targeted accounts for takeover.",
};
pub const SHARING: Det = Det {
    id: "detect.credential_sharing",
    name: "Credential used from many places",
    kind: DetectorKind::Statistical,
    owasp: "API2:2023 Broken Authentication",
    mitre: Some("T1078"),
    action: "Revoke the token or key, and ask its owner whether it leaked; bind tokens to clients where possible.",
};
pub const ENUMERATION: Det = Det {
    id: "detect.enumeration",
    name: "Object-ID enumeration (BOLA)",
    kind: DetectorKind::Statistical,
    owasp: "API1:2023 Broken Object Level Authorization",
    mitre: Some("T1087"),
    action: "Check that the endpoint authorizes each object against the caller, block the client, and review which objects were returned.",
};
pub const SCRAPING: Det = Det {
    id: "detect.scraping",
    name: "Scraping",
    kind: DetectorKind::Statistical,
    owasp: "API6:2023 Unrestricted Access to Sensitive Business Flows",
    mitre: Some("T1119"),
    action: "Rate-limit the client at the gateway, and consider bot management for the catalogue.",
};
pub const INJECTION: Det = Det {
    id: "detect.injection",
    name: "Injection payload",
    kind: DetectorKind::Rule,
    owasp: "API8:2023 Security Misconfiguration",
    mitre: Some("T1190"),
    action: "Block the client, check the endpoint's input validation and the server's logs for the request's effect.",
};
pub const RATE_SPIKE: Det = Det {
    id: "detect.rate_spike",
    name: "Request rate spike",
    kind: DetectorKind::Statistical,
    owasp: "API4:2023 Unrestricted Resource Consumption",
    mitre: Some("T1499"),
    action:
        "Rate-limit the client at the gateway and check whether it is compromised or misconfigured.",
};
pub const EXPOSURE: Det = Det {
    id: "detect.data_exposure",
    name: "Sensitive data exposure",
    kind: DetectorKind::Statistical,
    owasp: "API3:2023 Broken Object Property Level Authorization",
    mitre: Some("T1530"),
    action: "Review the endpoint's response fields and filter sensitive properties server-side; check who received them.",
};
pub const BROKEN_AUTH: Det = Det {
    id: "detect.broken_auth",
    name: "Broken authentication",
    kind: DetectorKind::Rule,
    owasp: "API2:2023 Broken Authentication",
    mitre: Some("T1550.001"),
    action:
        "Fix the endpoint's authentication: reject missing, unsigned (alg none) and expired tokens.",
};
pub const OFF_HOURS: Det = Det {
    id: "detect.off_hours",
    name: "Off-hours bulk access",
    kind: DetectorKind::Statistical,
    owasp: "API2:2023 Broken Authentication",
    mitre: Some("T1078"),
    action: "Confirm with the identity's owner; if unexpected, revoke its credentials and review what it accessed.",
};
pub const EVASION: Det = Det {
    id: "detect.protocol_evasion",
    name: "HTTP request smuggling or desync",
    kind: DetectorKind::Rule,
    owasp: "API8:2023 Security Misconfiguration",
    mitre: Some("T1190"),
    action: "Normalise or reject ambiguous framing at the front proxy (Content-Length with Transfer-Encoding, duplicate lengths) and block the client.",
};
pub const MODEL: Det = Det {
    id: "detect.anomaly_model",
    name: "Anomalous request",
    kind: DetectorKind::Ml,
    owasp: "API8:2023 Security Misconfiguration",
    mitre: Some("T1190"),
    action:
        "Review the request against the endpoint's normal use; block the client if it is probing.",
};

/// Every detector this module and the model raise (the inventory raises shadow endpoints).
pub const ALL: [Det; 11] = [
    STUFFING,
    SHARING,
    ENUMERATION,
    SCRAPING,
    INJECTION,
    RATE_SPIKE,
    EXPOSURE,
    BROKEN_AUTH,
    OFF_HOURS,
    EVASION,
    MODEL,
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleConfig {
    /// Path fragments (case-insensitive) of login endpoints.
    pub login_paths: Vec<String>,
    /// Failed logins from one client within ~10 minutes.
    pub client_login_failures: f64,
    /// Distinct user names tried by one client within 10 minutes (stuffing).
    pub client_distinct_users: f64,
    pub network_login_failures: f64,
    pub network_distinct_users: f64,
    /// Failed logins across all clients within 10 minutes, at least, and as a multiple of the
    /// usual 10 minutes; with at least this many distinct sources and user names.
    pub global_login_failures: f64,
    pub global_failure_factor: f64,
    pub global_distinct_sources: f64,
    pub global_distinct_users: f64,
    /// Distinct client addresses and /24 (/64) networks of one identity within an hour.
    pub sharing_addresses: f64,
    pub sharing_networks: f64,
    /// Distinct objects one client reads of one endpoint within 10 minutes, and the share of
    /// 403/404 answers or of sequential ids that makes it enumeration.
    pub enumeration_objects: f64,
    pub enumeration_error_ratio: f64,
    pub enumeration_sequential_ratio: f64,
    /// Distinct objects one client reads within 10 minutes.
    pub scraping_objects: f64,
    /// Requests in one minute, at least, and as a multiple of the client's usual minute at
    /// that hour of day.
    pub spike_min_per_minute: f64,
    pub spike_factor: f64,
    /// Active minutes of a client before its rate baseline is trusted.
    pub spike_learning_minutes: u32,
    /// Inspected responses of an endpoint before a new kind of sensitive data is news.
    pub exposure_learning_responses: u64,
    /// After learning, one successful response in this many is scanned for sensitive data.
    pub exposure_sample_every: u64,
    /// Response bytes of one client in one minute, at least, and over its usual minute.
    pub bulk_min_bytes_per_minute: f64,
    /// One response of at least this many bytes and `bulk_factor` times its endpoint's usual.
    pub bulk_response_bytes: f64,
    pub bulk_factor: f64,
    /// 2xx answers of an endpoint before missing auth is news, and the share that carried
    /// credentials.
    pub auth_learning_calls: u64,
    /// Seconds an endpoint must be known before missing auth is news.
    pub auth_learning_secs: u64,
    pub auth_required_ratio: f64,
    /// Seconds of clock skew allowed on a token's `exp`.
    pub token_expiry_skew_secs: i64,
    /// An hour of day is off-hours for an identity when it had under this share of its requests.
    pub off_hours_share: f64,
    /// Requests within one off-hour that make it bulk access.
    pub off_hours_requests: u32,
    /// Hours an identity must be known before its working hours are trusted.
    pub off_hours_learning_hours: u64,
    /// Offset of local time from UTC in minutes, for hours of day.
    pub utc_offset_minutes: i64,
    /// Parser anomalies that are smuggling or desync signals.
    pub evasion_anomalies: Vec<String>,
    pub max_clients: usize,
    pub max_networks: usize,
    pub max_identities: usize,
    pub max_pairs: usize,
    pub max_endpoints: usize,
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig {
            login_paths: [
                "login", "signin", "sign-in", "sign_in", "auth", "token", "session",
            ]
            .map(String::from)
            .to_vec(),
            client_login_failures: 12.0,
            client_distinct_users: 6.0,
            network_login_failures: 30.0,
            network_distinct_users: 15.0,
            global_login_failures: 12.0,
            global_failure_factor: 4.0,
            global_distinct_sources: 8.0,
            global_distinct_users: 10.0,
            sharing_addresses: 5.0,
            sharing_networks: 3.0,
            enumeration_objects: 15.0,
            enumeration_error_ratio: 0.3,
            enumeration_sequential_ratio: 0.6,
            scraping_objects: 120.0,
            spike_min_per_minute: 20.0,
            spike_factor: 10.0,
            spike_learning_minutes: 20,
            exposure_learning_responses: 20,
            exposure_sample_every: 8,
            bulk_min_bytes_per_minute: 500_000.0,
            bulk_response_bytes: 20_000.0,
            bulk_factor: 10.0,
            auth_learning_calls: 200,
            auth_learning_secs: 6 * 3600,
            auth_required_ratio: 0.98,
            token_expiry_skew_secs: 60,
            off_hours_share: 0.01,
            off_hours_requests: 40,
            off_hours_learning_hours: 18,
            utc_offset_minutes: 0,
            evasion_anomalies: [
                "te_cl_conflict",
                "conflicting_content_length",
                "bad_content_length",
                "bad_transfer_encoding",
                "duplicate_host",
                "obs_fold",
            ]
            .map(String::from)
            .to_vec(),
            max_clients: 100_000,
            max_networks: 20_000,
            max_identities: 100_000,
            max_pairs: 200_000,
            max_endpoints: 10_000,
        }
    }
}

/// What the detectors know of one transaction. Borrowed from the transaction: nothing is
/// allocated for it until an alert is built.
pub struct Ctx<'a> {
    pub now_ns: u64,
    pub flow_uid: &'a str,
    pub tx_index: u32,
    pub client: IpAddr,
    pub client_port: u16,
    pub client_key: u64,
    pub network: IpAddr,
    pub network_key: u64,
    pub server: IpAddr,
    pub server_port: u16,
    pub host: Option<&'a str>,
    pub method: &'a str,
    /// Request target as sent; `redacted_target` replaces it when the query carried
    /// credentials. Alerts redact sensitive values in it too.
    pub url: &'a str,
    pub redacted_target: Option<&'a str>,
    pub route: Option<&'a str>,
    pub endpoint_key: u64,
    pub status: Option<u16>,
    pub user_agent: Option<&'a str>,
    /// The credential's entity key and keyed hash (of its subject when it names one).
    pub identity: Option<(u64, features::auth::IdHash)>,
    pub has_credentials: bool,
    pub jwt_unsigned: bool,
    /// Seconds since the token's `exp`, when it had expired at the request's time.
    pub jwt_expired_for: Option<i64>,
    pub object: Option<&'a [u8]>,
    pub login: bool,
    /// Keyed hash of the user name a login tried.
    pub login_user: Option<u64>,
    pub injections: &'a [(String, Detection)],
    pub evasions: Vec<&'static str>,
    pub response_kinds: KindSet,
    pub inspected: bool,
    pub response_bytes: u64,
    /// Objects the endpoint served within the hour (its catalogue as seen), computed when a
    /// detector asks.
    pub endpoint_objects: &'a dyn Fn() -> f64,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("now_ns", &self.now_ns)
            .field("client", &self.client)
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

impl Ctx<'_> {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// Hour of day in the configured time zone.
    pub fn hour_of_day(&self, utc_offset_minutes: i64) -> usize {
        let secs = (self.now_ns / NS) as i64 + utc_offset_minutes * 60;
        (secs.rem_euclid(86_400) / 3600) as usize
    }

    /// The hash of a dedup key naming this client and `extra` parts, without formatting one.
    pub fn client_dedup(&self, det: &Det, scope: &str, extra: &[&[u8]]) -> u64 {
        let mut octets = [0u8; 16];
        let len = match self.client {
            IpAddr::V4(v4) => {
                octets[..4].copy_from_slice(&v4.octets());
                4
            }
            IpAddr::V6(v6) => {
                octets.copy_from_slice(&v6.octets());
                16
            }
        };
        let mut parts: [&[u8]; 4] = [&octets[..len], &[], &[], &[]];
        for (slot, part) in parts[1..].iter_mut().zip(extra) {
            *slot = part;
        }
        crate::lifecycle::dedup_hash(det.id, scope, &parts)
    }

    /// The hash of the dedup key `det|scope|key` (what [`Ctx::alert`] writes).
    pub fn dedup(&self, det: &Det, scope: &str, key: &str) -> u64 {
        crate::lifecycle::dedup_hash(det.id, scope, &[key.as_bytes()])
    }

    /// An alert draft of `det` under `scope|key`, about this transaction.
    pub fn alert(&self, det: &Det, scope: &str, key: &str, score: u8, confidence: f64) -> Alert {
        Alert {
            alert_id: String::new(),
            dedup_key: format!("{}|{scope}|{key}", det.id),
            lifecycle: Lifecycle::Create,
            count: 1,
            time: self.now_ns,
            first_seen: self.now_ns,
            last_seen: self.now_ns,
            detector: Detector {
                id: det.id.to_string(),
                name: det.name.to_string(),
                kind: det.kind,
                version: 1,
            },
            severity: Severity::from_score(score),
            confidence,
            title: det.name.to_string(),
            summary: String::new(),
            attack: Some(Attack {
                owasp: Some(det.owasp.to_string()),
                mitre: det.mitre.map(String::from),
            }),
            client: Client {
                ip: Some(self.client),
                port: Some(self.client_port),
                identity: self.identity.map(|(_, id)| id.to_hex()),
                user_agent: self.user_agent.map(String::from),
            },
            server: Server {
                ip: Some(self.server),
                port: Some(self.server_port),
                host: self.host.map(String::from),
            },
            http: Http {
                method: Some(self.method.to_string()),
                route: self.route.map(String::from),
                url: Some(
                    features::sensitive::redact(self.redacted_target.unwrap_or(self.url))
                        .into_owned(),
                ),
                status: self.status,
            },
            explanation: None,
            recommended_action: Some(det.action.to_string()),
            evidence: vec![crate::lifecycle::evidence(self.flow_uid, self.tx_index)],
        }
    }
}

/// An explanation from (feature, observed, expected) rows; shares by how far each is past its
/// expected value.
pub fn explain(
    score: f64,
    threshold: f64,
    baseline: Baseline,
    rows: &[(&str, f64, f64)],
) -> Explanation {
    let excess: Vec<f64> = rows
        .iter()
        .map(|(_, v, e)| (v / e.max(1e-9)).max(1.0).ln().max(0.0) + 1e-9)
        .collect();
    let total: f64 = excess.iter().sum();
    Explanation {
        score: round3(score),
        threshold: round3(threshold),
        baseline: Some(baseline),
        contributions: rows
            .iter()
            .zip(excess)
            .map(|((f, v, e), x)| Contribution {
                feature: (*f).to_string(),
                value: round3(*v),
                expected: Some(round3(*e)),
                p50: None,
                p99: None,
                share: round3(x / total),
            })
            .collect(),
    }
}

pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn baseline(scope: &str, key: &str, window: &str, samples: u64) -> Baseline {
    Baseline {
        scope: scope.to_string(),
        key: key.to_string(),
        window: window.to_string(),
        samples,
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ClientState {
    /// Fingerprint of the last user agent, and whether it is a tool's.
    #[serde(skip)]
    agent: u64,
    #[serde(skip)]
    automated: bool,
    #[serde(skip)]
    login_failures: Damped,
    #[serde(skip)]
    login_users: Distinct,
    #[serde(skip)]
    objects: Distinct,
    first_seen: u64,
    minute: u64,
    minute_requests: f64,
    minute_bytes: f64,
    /// Mean requests per active minute, by hour of day, and over all hours.
    per_minute_by_hour: [f32; 24],
    minutes_by_hour: [u32; 24],
    per_minute: f64,
    bytes_per_minute: f64,
    active_minutes: u32,
    /// The current minute already alerted (not learnt as normal).
    minute_alerted: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct NetworkState {
    #[serde(skip)]
    login_failures: Damped,
    #[serde(skip)]
    login_users: Distinct,
    #[serde(skip)]
    failing_clients: Distinct,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct IdentityState {
    #[serde(skip)]
    addresses: Distinct,
    #[serde(skip)]
    networks: Distinct,
    #[serde(skip)]
    agents: Distinct,
    first_seen: u64,
    /// Requests by hour of day (slowly decayed), and their total.
    by_hour: [f32; 24],
    total: f64,
    hour: u64,
    hour_requests: u32,
    hour_alerted: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct PairState {
    #[serde(skip)]
    objects: Distinct,
    #[serde(skip)]
    requests: Damped,
    #[serde(skip)]
    errors: Damped,
    #[serde(skip)]
    sequential: Damped,
    last_number: Option<i64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct EndpointState {
    /// Successful responses seen (for sampling), and their body size's mean and variance.
    responses: u64,
    size_mean: f64,
    size_var: f64,
    successes: u64,
    authenticated: u64,
    /// Packet time of its first successful answer.
    first_seen: u64,
    /// Whether it is a login endpoint: 0 not known yet, 1 no, 2 yes.
    #[serde(skip)]
    login: u8,
    inspected: u64,
    /// Sensitive kinds its responses normally carry (bits of `KindSet`).
    kinds: u16,
    /// Sightings of each kind after learning; a kind seen this often becomes normal.
    novel_sightings: [u16; 16],
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Global {
    #[serde(skip)]
    login_failures: Damped,
    #[serde(skip)]
    failing_clients: Distinct,
    #[serde(skip)]
    failing_users: Distinct,
    /// Failed logins per 10 minutes, usually; 10-minute windows folded into it.
    usual_failures: f64,
    windows: u64,
    window: u64,
    window_failures: f64,
}

/// Half-life of the damped counts of logins and enumeration: about a 10-minute window.
const WINDOW_HALF_LIFE: u64 = 300 * NS;
/// A novel sensitive kind seen this often after learning is taken as the endpoint's own.
const ABSORB_SIGHTINGS: u16 = 200;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rules {
    pub cfg: RuleConfig,
    #[serde(skip)]
    evasion_set: Vec<&'static str>,
    clients: Table<ClientState>,
    networks: Table<NetworkState>,
    identities: Table<IdentityState>,
    pairs: Table<PairState>,
    endpoints: Table<EndpointState>,
    global: Global,
}

fn pair_key(a: u64, b: u64) -> u64 {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_le_bytes());
    bytes[8..].copy_from_slice(&b.to_le_bytes());
    key_hash(&bytes)
}

/// User agents of libraries, tools and crawlers rather than browsers or apps.
const AUTOMATION: &[&str] = &[
    "curl",
    "wget",
    "python",
    "go-http-client",
    "java/",
    "libwww",
    "scrapy",
    "httpclient",
    "node-fetch",
    "axios",
    "headless",
    "phantomjs",
    "bot",
    "spider",
    "crawler",
    "httpie",
    "postman",
];

pub fn is_automation(user_agent: Option<&str>) -> bool {
    match user_agent {
        None => true,
        Some(ua) => {
            let ua = ua.as_bytes();
            ua.is_empty()
                || AUTOMATION
                    .iter()
                    .any(|a| crate::contains_ignore_case(ua, a.as_bytes()))
        }
    }
}

/// Counters of the rule state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleStats {
    pub clients: usize,
    pub identities: usize,
    pub pairs: usize,
    pub evicted: u64,
}

impl Rules {
    pub fn new(cfg: RuleConfig) -> Self {
        let mut r = Rules {
            clients: Table::new(cfg.max_clients),
            networks: Table::new(cfg.max_networks),
            identities: Table::new(cfg.max_identities),
            pairs: Table::new(cfg.max_pairs),
            endpoints: Table::new(cfg.max_endpoints),
            global: Global::default(),
            evasion_set: Vec::new(),
            cfg,
        };
        r.resolve();
        r
    }

    /// Rebuilds what is derived from the config (after a restore).
    pub fn resolve(&mut self) {
        self.evasion_set = http::HttpAnomaly::ALL
            .iter()
            .map(|a| a.as_str())
            .filter(|a| self.cfg.evasion_anomalies.iter().any(|e| e == a))
            .collect();
    }

    /// Uses a new config's thresholds, keeping what was learnt (login endpoints are decided
    /// again under the new `login_paths`).
    pub fn set_config(&mut self, cfg: RuleConfig) {
        if cfg.login_paths != self.cfg.login_paths {
            self.endpoints.for_each_mut(|e| e.login = 0);
        }
        self.cfg = cfg;
        self.resolve();
    }

    /// Whether detection should scan this successful response of an endpoint for sensitive
    /// data itself: all of them while the endpoint is learnt, then one in
    /// `exposure_sample_every`.
    /// A response larger than usual for its endpoint is always scanned: added fields are how
    /// new data leaks.
    pub fn sample_response(&mut self, endpoint: u64, bytes: u64) -> bool {
        let every = self.cfg.exposure_sample_every.max(1);
        let learning = self.cfg.exposure_learning_responses;
        let ep = self.endpoints.entry(endpoint, EndpointState::default);
        ep.responses += 1;
        let size = bytes as f64;
        let sd = ep.size_var.sqrt();
        let unusual = ep.responses > learning && size > ep.size_mean + 3.0 * sd + 64.0;
        // Robust: a response far past the usual does not move the usual much.
        let clipped = if ep.responses > learning {
            size.min(ep.size_mean + 6.0 * sd + 64.0)
        } else {
            size
        };
        let w = 1.0 / (ep.responses as f64).min(1000.0);
        let d = clipped - ep.size_mean;
        ep.size_mean += w * d;
        ep.size_var = (1.0 - w) * (ep.size_var + w * d * d);
        ep.responses <= learning || unusual || ep.responses % every == 0
    }

    pub fn is_evasion(&self, anomaly: &str) -> bool {
        self.evasion_set.contains(&anomaly)
    }

    pub fn stats(&self) -> RuleStats {
        RuleStats {
            clients: self.clients.len(),
            identities: self.identities.len(),
            pairs: self.pairs.len(),
            evicted: self.clients.evicted()
                + self.networks.evicted()
                + self.identities.evicted()
                + self.pairs.evicted()
                + self.endpoints.evicted(),
        }
    }

    /// Whether a request to this endpoint is a login (its path has a login fragment), cached
    /// per endpoint.
    pub fn is_login(&mut self, endpoint: u64, path: &[u8]) -> bool {
        let paths = &self.cfg.login_paths;
        let ep = self.endpoints.entry(endpoint, EndpointState::default);
        if ep.login == 0 {
            let login = paths.iter().any(|p| {
                let p = p.as_bytes();
                crate::contains_ignore_case(path, p)
            });
            ep.login = if login { 2 } else { 1 };
        }
        ep.login == 2
    }

    /// Runs every detector on one transaction; drafts go to `out`. `learn` says whether the
    /// baselines may learn from it.
    ///
    /// `admit` says whether a detection's alert must be built (see
    /// [`crate::lifecycle::Episodes::admit`]): most repeats are folded without building one.
    pub fn observe(
        &mut self,
        c: &Ctx,
        learn: bool,
        admit: &mut dyn FnMut(u64) -> bool,
        out: &mut Found,
    ) {
        self.logins(c, admit, out);
        self.sharing(c, admit, out);
        self.enumeration(c, admit, out);
        self.injection(c, admit, out);
        self.rates(c, learn, admit, out);
        self.exposure(c, learn, admit, out);
        self.auth(c, learn, admit, out);
        self.off_hours(c, learn, admit, out);
        self.evasion(c, admit, out);
    }

    fn logins(&mut self, c: &Ctx, admit: &mut dyn FnMut(u64) -> bool, out: &mut Found) {
        let cfg = &self.cfg;
        if !c.login {
            return;
        }
        let failed = matches!(c.status, Some(401 | 403));
        let now = c.now_ns;
        // The global baseline: failed logins per 10 minutes, folded window by window.
        let g = &mut self.global;
        let window = now / (600 * NS);
        if window != g.window {
            if g.window != 0 {
                let w = 1.0 / (g.windows as f64 + 1.0).min(48.0);
                g.usual_failures += w
                    * (g.window_failures
                        .min(cfg.global_login_failures.max(g.usual_failures * 2.0))
                        - g.usual_failures);
                g.windows += 1;
                // Idle windows between count as windows without failures.
                let idle = window.saturating_sub(g.window + 1).min(48);
                for _ in 0..idle {
                    let w = 1.0 / (g.windows as f64 + 1.0).min(48.0);
                    g.usual_failures -= w * g.usual_failures;
                    g.windows += 1;
                }
            }
            g.window = window;
            g.window_failures = 0.0;
        }
        let client = self.clients.entry(c.client_key, || ClientState {
            first_seen: now,
            ..Default::default()
        });
        let network = self.networks.entry(c.network_key, NetworkState::default);
        if let Some(user) = c.login_user {
            client.login_users.insert(now, user, Scale::M10);
            if failed {
                network.login_users.insert(now, user, Scale::M10);
                g.failing_users.insert(now, user, Scale::M10);
            }
        }
        if !failed {
            return;
        }
        g.window_failures += 1.0;
        client.login_failures.add(now, 1.0, WINDOW_HALF_LIFE);
        network.login_failures.add(now, 1.0, WINDOW_HALF_LIFE);
        network
            .failing_clients
            .insert(now, c.client_key, Scale::M10);
        g.login_failures.add(now, 1.0, WINDOW_HALF_LIFE);
        g.failing_clients.insert(now, c.client_key, Scale::M10);

        let fails = client.login_failures.value_at(now, WINDOW_HALF_LIFE);
        let users = client.login_users.estimate(now, Scale::M10);
        let route = c.route.unwrap_or("login");
        if fails >= cfg.client_login_failures
            || (users >= cfg.client_distinct_users && fails >= users / 2.0)
        {
            let stuffing = users >= cfg.client_distinct_users;
            let key = c.client_dedup(&STUFFING, "client", &[]);
            if admit(key) {
                let mut a = c.alert(
                    &STUFFING,
                    "client",
                    &c.client.to_string(),
                    if stuffing { 75 } else { 65 },
                    0.9,
                );
                a.title = if stuffing {
                    format!("Credential stuffing from {}", c.client)
                } else {
                    format!("Password brute force from {}", c.client)
                };
                a.summary = format!(
                    "{} had about {:.0} failed logins on {route} in the last 10 minutes, trying about {:.0} distinct user names.",
                    c.client, fails, users
                );
                a.explanation = Some(explain(
                    fails,
                    cfg.client_login_failures,
                    baseline("client", &c.client.to_string(), "10m", fails.round() as u64),
                    &[
                        ("login_failures_10m", fails, cfg.client_login_failures),
                        ("distinct_users_10m", users, cfg.client_distinct_users),
                    ],
                ));
                out.push((key, a));
            }
        }

        let net_fails = network.login_failures.value_at(now, WINDOW_HALF_LIFE);
        let net_users = network.login_users.estimate(now, Scale::M10);
        let net_clients = network.failing_clients.estimate(now, Scale::M10);
        if net_clients >= 3.0
            && (net_fails >= cfg.network_login_failures || net_users >= cfg.network_distinct_users)
        {
            let key = c.dedup(&STUFFING, "network", &c.network.to_string());
            if admit(key) {
                let mut a = c.alert(&STUFFING, "network", &c.network.to_string(), 70, 0.8);
                a.client.ip = None;
                a.client.port = None;
                a.title = format!("Credential stuffing from network {}", c.network);
                a.summary = format!(
                    "About {:.0} clients of {} failed about {:.0} logins on {route} in 10 minutes with {:.0} distinct user names.",
                    net_clients, c.network, net_fails, net_users
                );
                a.explanation = Some(explain(
                    net_fails,
                    cfg.network_login_failures,
                    baseline(
                        "client_network",
                        &c.network.to_string(),
                        "10m",
                        net_fails.round() as u64,
                    ),
                    &[
                        ("login_failures_10m", net_fails, cfg.network_login_failures),
                        ("distinct_users_10m", net_users, cfg.network_distinct_users),
                        ("failing_clients_10m", net_clients, 3.0),
                    ],
                ));
                out.push((key, a));
            }
        }

        let g = &self.global;
        let all = g.login_failures.value_at(now, WINDOW_HALF_LIFE);
        let sources = g.failing_clients.estimate(now, Scale::M10);
        let users = g.failing_users.estimate(now, Scale::M10);
        let usual = g.usual_failures;
        let needed = cfg
            .global_login_failures
            .max(cfg.global_failure_factor * usual);
        if g.windows >= 6
            && all >= needed
            && sources >= cfg.global_distinct_sources
            && users >= cfg.global_distinct_users
        {
            let host = c.host.map_or_else(|| c.server.to_string(), String::from);
            let key = c.dedup(&STUFFING, "global", &format!("{host}|{route}"));
            if admit(key) {
                let mut a = c.alert(&STUFFING, "global", &format!("{host}|{route}"), 70, 0.75);
                a.client = Client::default();
                a.title = format!("Distributed credential stuffing against {host}");
                a.summary = format!(
                    "About {:.0} failed logins on {route} in 10 minutes (usually {:.1}) from about {:.0} sources trying {:.0} user names: a slow attack spread over many addresses.",
                    all, usual, sources, users
                );
                a.explanation = Some(explain(
                    all,
                    needed,
                    baseline("server", &host, "10m", g.windows),
                    &[
                        ("login_failures_10m", all, usual.max(1.0)),
                        ("failing_sources_10m", sources, cfg.global_distinct_sources),
                        ("failing_users_10m", users, cfg.global_distinct_users),
                    ],
                ));
                out.push((key, a));
            }
        }
    }

    fn sharing(&mut self, c: &Ctx, admit: &mut dyn FnMut(u64) -> bool, out: &mut Found) {
        let Some((key, credential)) = &c.identity else {
            return;
        };
        let now = c.now_ns;
        let id = self.identities.entry(*key, || IdentityState {
            first_seen: now,
            ..Default::default()
        });
        id.addresses.insert(now, c.client_key, Scale::H1);
        id.networks.insert(now, c.network_key, Scale::H1);
        if let Some(ua) = c.user_agent {
            id.agents.insert(now, key_hash(ua.as_bytes()), Scale::H1);
        }
        let addresses = id.addresses.estimate(now, Scale::H1);
        let networks = id.networks.estimate(now, Scale::H1);
        let agents = id.agents.estimate(now, Scale::H1);
        let cfg = &self.cfg;
        if addresses >= cfg.sharing_addresses && networks >= cfg.sharing_networks {
            let score = if agents >= 3.0 { 75 } else { 65 };
            let key = crate::lifecycle::dedup_hash(SHARING.id, "identity", &[&credential.0]);
            if admit(key) {
                let hex = &credential.to_hex();
                let mut a = c.alert(&SHARING, "identity", hex, score, 0.8);
                a.title = "One credential used from many addresses".to_string();
                a.summary = format!(
                    "Credential {} was used from about {:.0} addresses in {:.0} networks with {:.0} user agents within the hour; the latest from {}.",
                    &hex[..hex.len().min(12)],
                    addresses,
                    networks,
                    agents,
                    c.client
                );
                a.explanation = Some(explain(
                    addresses,
                    cfg.sharing_addresses,
                    baseline("identity", hex, "1h", addresses.round() as u64),
                    &[
                        ("distinct_addresses_1h", addresses, cfg.sharing_addresses),
                        ("distinct_networks_1h", networks, cfg.sharing_networks),
                        ("distinct_user_agents_1h", agents, 2.0),
                    ],
                ));
                out.push((key, a));
            }
        }
    }

    fn enumeration(&mut self, c: &Ctx, admit: &mut dyn FnMut(u64) -> bool, out: &mut Found) {
        let now = c.now_ns;
        let cfg = &self.cfg;
        let Some(object) = c.object else {
            return;
        };
        let object_hash = key_hash(object);
        // Scraping: distinct objects across endpoints, per client.
        let client = self.clients.entry(c.client_key, || ClientState {
            first_seen: now,
            ..Default::default()
        });
        client
            .objects
            .insert(now, object_hash ^ c.endpoint_key, Scale::M10);
        let objects = client.objects.estimate(now, Scale::M10);
        // Whether the user agent is a tool: cached per client while its user agent stays the
        // same (matching the list costs more than the rest of the detector).
        let fingerprint = c.user_agent.map_or(0, |ua| {
            let b = ua.as_bytes();
            let head = b.iter().take(8).fold(0u64, |h, &x| h << 8 | u64::from(x));
            let tail = b
                .iter()
                .rev()
                .take(8)
                .fold(0u64, |h, &x| h << 8 | u64::from(x));
            (b.len() as u64) ^ head.rotate_left(17) ^ tail.rotate_left(41) ^ 1
        });
        if client.agent != fingerprint || fingerprint == 0 {
            client.agent = fingerprint;
            client.automated = is_automation(c.user_agent);
        }
        let automated = client.automated;
        if objects >= cfg.scraping_objects && (automated || objects >= 3.0 * cfg.scraping_objects) {
            let served = (c.endpoint_objects)();
            let coverage = if served > 0.0 {
                (objects / served).min(1.0)
            } else {
                0.0
            };
            let key = c.client_dedup(&SCRAPING, "client", &[]);
            if admit(key) {
                let mut a = c.alert(
                    &SCRAPING,
                    "client",
                    &c.client.to_string(),
                    if automated { 60 } else { 50 },
                    if automated { 0.8 } else { 0.6 },
                );
                a.title = format!("Scraping by {}", c.client);
                a.summary = format!(
                    "{} read about {:.0} distinct objects in 10 minutes ({:.0}% of what {} served in the hour), user agent {:?}.",
                    c.client,
                    objects,
                    coverage * 100.0,
                    c.route.unwrap_or("the endpoint"),
                    c.user_agent.unwrap_or("(none)")
                );
                a.explanation = Some(explain(
                    objects,
                    cfg.scraping_objects,
                    baseline(
                        "client",
                        &c.client.to_string(),
                        "10m",
                        objects.round() as u64,
                    ),
                    &[
                        ("distinct_objects_10m", objects, cfg.scraping_objects),
                        ("catalogue_coverage", coverage, 0.1),
                        ("automated_user_agent", f64::from(u8::from(automated)), 0.0),
                    ],
                ));
                out.push((key, a));
            }
        }

        // Enumeration: per client (or identity) and endpoint.
        let who = c.identity.as_ref().map_or(c.client_key, |(k, _)| *k);
        let pair = self
            .pairs
            .entry(pair_key(who, c.endpoint_key), PairState::default);
        pair.objects.insert(now, object_hash, Scale::M10);
        pair.requests.add(now, 1.0, WINDOW_HALF_LIFE);
        if matches!(c.status, Some(401 | 403 | 404)) {
            pair.errors.add(now, 1.0, WINDOW_HALF_LIFE);
        }
        let number = std::str::from_utf8(object)
            .ok()
            .and_then(|s| s.parse::<i64>().ok());
        if let (Some(n), Some(last)) = (number, pair.last_number) {
            if n.abs_diff(last) == 1 {
                pair.sequential.add(now, 1.0, WINDOW_HALF_LIFE);
            }
        }
        if number.is_some() {
            pair.last_number = number;
        }
        let objects = pair.objects.estimate(now, Scale::M10);
        let requests = pair.requests.value_at(now, WINDOW_HALF_LIFE).max(1.0);
        let error_ratio = pair.errors.value_at(now, WINDOW_HALF_LIFE) / requests;
        let sequential = pair.sequential.value_at(now, WINDOW_HALF_LIFE) / requests;
        if objects >= cfg.enumeration_objects
            && (error_ratio >= cfg.enumeration_error_ratio
                || (sequential >= cfg.enumeration_sequential_ratio && c.has_credentials))
        {
            let route = c.route.unwrap_or("the endpoint");
            let key = c.client_dedup(&ENUMERATION, "client_endpoint", &[route.as_bytes()]);
            if admit(key) {
                let mut a = c.alert(
                    &ENUMERATION,
                    "client_endpoint",
                    &format!("{}|{route}", c.client),
                    70,
                    0.8,
                );
                a.title = format!("Object enumeration on {route}");
                a.summary = format!(
                    "{} requested about {:.0} distinct objects of {route} in 10 minutes; {:.0}% were refused or not found and {:.0}% of steps were to the next id.",
                    c.client,
                    objects,
                    error_ratio * 100.0,
                    sequential * 100.0
                );
                a.explanation = Some(explain(
                    objects,
                    cfg.enumeration_objects,
                    baseline(
                        "client_endpoint",
                        &format!("{}|{route}", c.client),
                        "10m",
                        requests.round() as u64,
                    ),
                    &[
                        ("distinct_objects_10m", objects, cfg.enumeration_objects),
                        ("error_ratio_10m", error_ratio, cfg.enumeration_error_ratio),
                        (
                            "sequential_ratio_10m",
                            sequential,
                            cfg.enumeration_sequential_ratio,
                        ),
                    ],
                ));
                out.push((key, a));
            }
        }
    }

    fn injection(&mut self, c: &Ctx, admit: &mut dyn FnMut(u64) -> bool, out: &mut Found) {
        for (param, d) in c.injections {
            let class = d.attack.as_str();
            let score = match d.attack {
                features::injection::Attack::Xss => 60,
                _ => 75,
            };
            let key = c.client_dedup(&INJECTION, "client", &[class.as_bytes()]);
            if admit(key) {
                let mut a = c.alert(
                    &INJECTION,
                    "client",
                    &format!("{}|{class}", c.client),
                    score,
                    0.9,
                );
                a.attack = Some(Attack {
                    owasp: Some(d.attack.owasp().to_string()),
                    mitre: Some("T1190".to_string()),
                });
                a.title = format!("{} payload from {}", class_title(class), c.client);
                // The evidence is the detector's own fingerprint or construct, never the value.
                a.summary = format!(
                    "Parameter {param:?} of {} carried {} ({}).",
                    c.route.unwrap_or("a request"),
                    class_title(class),
                    d.evidence
                );
                a.explanation = Some(Explanation {
                    score: 1.0,
                    threshold: 1.0,
                    baseline: None,
                    contributions: vec![Contribution {
                        feature: format!("param.{param}.{class}"),
                        value: 1.0,
                        expected: Some(0.0),
                        p50: None,
                        p99: None,
                        share: 1.0,
                    }],
                });
                out.push((key, a));
            }
        }
    }

    fn rates(&mut self, c: &Ctx, learn: bool, admit: &mut dyn FnMut(u64) -> bool, out: &mut Found) {
        let now = c.now_ns;
        let hour = c.hour_of_day(self.cfg.utc_offset_minutes);
        let cfg = &self.cfg;
        let client = self.clients.entry(c.client_key, || ClientState {
            first_seen: now,
            ..Default::default()
        });
        let minute = now / (60 * NS);
        if minute != client.minute {
            if client.minute != 0 && !client.minute_alerted && learn {
                // Fold the finished minute into the baselines (bounded, so one busy minute
                // cannot drag the baseline far).
                let h = ((client.minute * 60) as i64 + cfg.utc_offset_minutes * 60)
                    .rem_euclid(86_400) as usize
                    / 3600;
                let mature = client.active_minutes >= cfg.spike_learning_minutes;
                let cap = |base: f64| {
                    if mature {
                        base * 3.0 + 1.0
                    } else {
                        f64::INFINITY
                    }
                };
                let reqs = client.minute_requests.min(cap(client.per_minute));
                let w = 1.0 / f64::from(client.active_minutes + 1).min(200.0);
                client.per_minute += w * (reqs - client.per_minute);
                let bytes = client.minute_bytes.min(cap(client.bytes_per_minute));
                client.bytes_per_minute += w * (bytes - client.bytes_per_minute);
                let n = &mut client.minutes_by_hour[h];
                let wh = 1.0 / f64::from(*n + 1).min(100.0);
                let m = &mut client.per_minute_by_hour[h];
                *m += (wh * (reqs - f64::from(*m))) as f32;
                *n = n.saturating_add(1);
                client.active_minutes = client.active_minutes.saturating_add(1);
            }
            client.minute = minute;
            client.minute_requests = 0.0;
            client.minute_bytes = 0.0;
            client.minute_alerted = false;
        }
        client.minute_requests += 1.0;
        client.minute_bytes += c.response_bytes as f64;
        if client.active_minutes < cfg.spike_learning_minutes {
            return;
        }
        let usual = if client.minutes_by_hour[hour] >= 10 {
            f64::from(client.per_minute_by_hour[hour]).max(client.per_minute * 0.25)
        } else {
            client.per_minute
        };
        let needed = cfg.spike_min_per_minute.max(cfg.spike_factor * usual);
        if client.minute_requests >= needed {
            client.minute_alerted = true;
            let key = c.client_dedup(&RATE_SPIKE, "client", &[]);
            if admit(key) {
                let mut a = c.alert(&RATE_SPIKE, "client", &c.client.to_string(), 55, 0.75);
                a.title = format!("Request rate spike from {}", c.client);
                a.summary = format!(
                    "{} sent {:.0} requests this minute; it usually sends {:.1} a minute at this hour ({:02}:00).",
                    c.client, client.minute_requests, usual, hour
                );
                a.explanation = Some(explain(
                    client.minute_requests,
                    needed,
                    baseline(
                        "client",
                        &c.client.to_string(),
                        "1m by hour of day",
                        u64::from(client.active_minutes),
                    ),
                    &[("requests_per_minute", client.minute_requests, usual)],
                ));
                out.push((key, a));
            }
        }
        let needed_bytes = cfg
            .bulk_min_bytes_per_minute
            .max(cfg.bulk_factor * client.bytes_per_minute);
        if client.minute_bytes >= needed_bytes {
            client.minute_alerted = true;
            let key = c.client_dedup(&EXPOSURE, "bulk", &[]);
            if admit(key) {
                let mut a = c.alert(&EXPOSURE, "bulk", &c.client.to_string(), 60, 0.7);
                a.title = format!("Bulk data transfer to {}", c.client);
                a.summary = format!(
                    "{} received {:.1} MB of response bodies this minute; it usually receives {:.2} MB.",
                    c.client,
                    client.minute_bytes / 1e6,
                    client.bytes_per_minute / 1e6
                );
                a.explanation = Some(explain(
                    client.minute_bytes,
                    needed_bytes,
                    baseline(
                        "client",
                        &c.client.to_string(),
                        "1m",
                        u64::from(client.active_minutes),
                    ),
                    &[(
                        "response_bytes_per_minute",
                        client.minute_bytes,
                        client.bytes_per_minute,
                    )],
                ));
                out.push((key, a));
            }
        }
    }

    fn exposure(
        &mut self,
        c: &Ctx,
        learn: bool,
        admit: &mut dyn FnMut(u64) -> bool,
        out: &mut Found,
    ) {
        if !c.success() {
            return;
        }
        let cfg = &self.cfg;
        let ep = self.endpoints.entry(c.endpoint_key, EndpointState::default);
        let usual = ep.size_mean.max(1.0);
        let bulk = cfg.bulk_response_bytes.max(cfg.bulk_factor * usual);
        if ep.responses > cfg.exposure_learning_responses && c.response_bytes as f64 >= bulk {
            let route = c.route.unwrap_or("an endpoint");
            let key = c.client_dedup(&EXPOSURE, "bulk_response", &[route.as_bytes()]);
            if admit(key) {
                let mut a = c.alert(
                    &EXPOSURE,
                    "bulk_response",
                    &format!("{}|{route}", c.client),
                    60,
                    0.75,
                );
                a.title = format!("Bulk response from {route} to {}", c.client);
                a.summary = format!(
                    "{route} returned {:.0} KB to {}; its responses are usually {:.1} KB.",
                    c.response_bytes as f64 / 1e3,
                    c.client,
                    usual / 1e3
                );
                a.explanation = Some(explain(
                    c.response_bytes as f64,
                    bulk,
                    baseline("endpoint", route, "all", ep.responses),
                    &[("response_bytes", c.response_bytes as f64, usual)],
                ));
                out.push((key, a));
            }
        }
        if !c.inspected {
            return;
        }
        ep.inspected += 1;
        let seen = c.response_kinds.bits();
        if ep.inspected <= cfg.exposure_learning_responses {
            if learn {
                ep.kinds |= seen;
            }
            return;
        }
        let novel = seen & !ep.kinds;
        if novel == 0 {
            return;
        }
        let mut names = Vec::new();
        for (i, kind) in features::sensitive::Kind::ALL.iter().enumerate() {
            if novel & kind.bit() != 0 {
                names.push(kind.as_str());
                let s = &mut ep.novel_sightings[i.min(15)];
                *s = s.saturating_add(1);
                if *s >= ABSORB_SIGHTINGS && learn {
                    ep.kinds |= kind.bit();
                }
            }
        }
        let route = c.route.unwrap_or("an endpoint");
        let high = names.iter().any(|n| {
            matches!(
                *n,
                "payment_card" | "national_id" | "private_key" | "cloud_key" | "password" | "iban"
            )
        });
        let key = c.dedup(
            &EXPOSURE,
            "endpoint",
            &format!("{}|{route}|{}", c.host.unwrap_or(""), names.join(",")),
        );
        if admit(key) {
            let mut a = c.alert(
                &EXPOSURE,
                "endpoint",
                &format!("{}|{route}|{}", c.host.unwrap_or(""), names.join(",")),
                if high { 80 } else { 55 },
                0.85,
            );
            a.title = format!("{route} started returning {}", names.join(", "));
            a.summary = format!(
                "{route} returned {} to {}; none of its {} earlier inspected responses carried it.",
                names.join(", "),
                c.client,
                ep.inspected - 1
            );
            a.explanation = Some(explain(
                names.len() as f64,
                1.0,
                baseline("endpoint", route, "all", ep.inspected),
                &names.iter().map(|n| (*n, 1.0, 0.0)).collect::<Vec<_>>(),
            ));
            out.push((key, a));
        }
    }

    fn auth(&mut self, c: &Ctx, learn: bool, admit: &mut dyn FnMut(u64) -> bool, out: &mut Found) {
        if !c.success() {
            return;
        }
        let cfg = &self.cfg;
        let route = c.route.unwrap_or("an endpoint");
        let ep = self.endpoints.entry(c.endpoint_key, EndpointState::default);
        let ratio = ep.authenticated as f64 / ep.successes.max(1) as f64;
        if ep.first_seen == 0 {
            ep.first_seen = c.now_ns;
        }
        // Calls over a few hours at least, so the quiet hours' users are not the only ones seen.
        let known = c.now_ns.saturating_sub(ep.first_seen) >= cfg.auth_learning_secs * NS;
        let established =
            known && ep.successes >= cfg.auth_learning_calls && ratio >= cfg.auth_required_ratio;
        let host = c.host.unwrap_or("");
        if c.has_credentials {
            if learn {
                ep.authenticated += 1;
                ep.successes += 1;
            }
            let (what, kind, score) = if c.jwt_unsigned {
                ("an unsigned JWT (alg none)", "alg_none", 85)
            } else if let Some(secs) = c
                .jwt_expired_for
                .filter(|s| *s > cfg.token_expiry_skew_secs)
            {
                let _ = secs;
                ("an expired JWT", "expired_token", 75)
            } else {
                return;
            };
            let key = c.dedup(&BROKEN_AUTH, "endpoint", &format!("{host}|{route}|{kind}"));
            if admit(key) {
                let mut a = c.alert(
                    &BROKEN_AUTH,
                    "endpoint",
                    &format!("{host}|{route}|{kind}"),
                    score,
                    0.9,
                );
                a.title = format!("{route} accepted {what}");
                let (feature, value, expected) = match c.jwt_expired_for {
                    Some(secs) if kind == "expired_token" => (
                        "token_expired_secs",
                        secs as f64,
                        cfg.token_expiry_skew_secs as f64,
                    ),
                    _ => ("token_unsigned", 1.0, 0.0),
                };
                a.explanation = Some(explain(
                    value,
                    expected,
                    baseline("endpoint", route, "all", ep.successes),
                    &[(feature, value, expected)],
                ));
                a.summary = match c.jwt_expired_for {
                    Some(s) if kind == "expired_token" => format!(
                        "{route} answered {} to {} carrying a JWT that had expired {s} seconds earlier.",
                        c.status.unwrap_or(0),
                        c.client
                    ),
                    _ => format!(
                        "{route} answered {} to {} carrying {what}: anyone can mint such a token.",
                        c.status.unwrap_or(0),
                        c.client
                    ),
                };
                out.push((key, a));
            }
            return;
        }
        if established {
            let key = c.dedup(
                &BROKEN_AUTH,
                "endpoint",
                &format!("{host}|{route}|missing_auth"),
            );
            if admit(key) {
                let mut a = c.alert(
                    &BROKEN_AUTH,
                    "endpoint",
                    &format!("{host}|{route}|missing_auth"),
                    80,
                    0.85,
                );
                a.title = format!("{route} answered without credentials");
                a.summary = format!(
                    "{route} answered {} to {} without any credential, though {:.1}% of its {} earlier successful calls carried one.",
                    c.status.unwrap_or(0),
                    c.client,
                    ratio * 100.0,
                    ep.successes
                );
                a.explanation = Some(explain(
                    1.0 - ratio,
                    1.0 - cfg.auth_required_ratio,
                    baseline("endpoint", route, "all", ep.successes),
                    &[("unauthenticated_success", 1.0, 1.0 - ratio)],
                ));
                out.push((key, a));
            }
            // Unauthenticated success on an authenticated endpoint is not learnt as normal.
            return;
        }
        if learn {
            ep.successes += 1;
        }
    }

    fn off_hours(
        &mut self,
        c: &Ctx,
        learn: bool,
        admit: &mut dyn FnMut(u64) -> bool,
        out: &mut Found,
    ) {
        let Some((key, credential)) = &c.identity else {
            return;
        };
        let cfg = &self.cfg;
        let now = c.now_ns;
        let hour_of_day = c.hour_of_day(cfg.utc_offset_minutes);
        let id = self.identities.entry(*key, || IdentityState {
            first_seen: now,
            ..Default::default()
        });
        let hour = now / (3600 * NS);
        if hour != id.hour {
            if id.hour != 0 && !id.hour_alerted && learn {
                let h = ((id.hour * 3600) as i64 + cfg.utc_offset_minutes * 60).rem_euclid(86_400)
                    as usize
                    / 3600;
                id.by_hour[h] += id.hour_requests as f32;
                id.total += f64::from(id.hour_requests);
                // Fade slowly (about a month of hours) so habits can change.
                if id.total > 10_000.0 {
                    for b in &mut id.by_hour {
                        *b *= 0.5;
                    }
                    id.total *= 0.5;
                }
            }
            id.hour = hour;
            id.hour_requests = 0;
            id.hour_alerted = false;
        }
        id.hour_requests += 1;
        let known_hours = now.saturating_sub(id.first_seen) / (3600 * NS);
        if known_hours < cfg.off_hours_learning_hours || id.total < 100.0 {
            return;
        }
        // The hour and two on each side: a working day that starts or ends an hour or two off
        // is not off-hours.
        let around = |h: usize| f64::from(id.by_hour[h % 24]);
        let share = (hour_of_day + 22..=hour_of_day + 26)
            .map(around)
            .sum::<f64>()
            / id.total.max(1.0);
        let active_hours = id.by_hour.iter().filter(|&&b| b > 0.0).count().max(1);
        let usual_hour = id.total / active_hours as f64;
        let bulk = f64::from(cfg.off_hours_requests).max(usual_hour);
        if share < cfg.off_hours_share && f64::from(id.hour_requests) >= bulk {
            id.hour_alerted = true;
            let key = crate::lifecycle::dedup_hash(OFF_HOURS.id, "identity", &[&credential.0]);
            if admit(key) {
                let hex = &credential.to_hex();
                let mut a = c.alert(&OFF_HOURS, "identity", hex, 60, 0.7);
                a.title =
                    format!("Bulk access at {hour_of_day:02}:00, outside the identity's hours");
                a.summary = format!(
                    "Credential {} made {} requests in the hour from {hour_of_day:02}:00, when it usually makes {:.2}% of its requests; latest from {}.",
                    &hex[..hex.len().min(12)],
                    id.hour_requests,
                    share * 100.0,
                    c.client
                );
                a.explanation = Some(explain(
                    f64::from(id.hour_requests),
                    f64::from(cfg.off_hours_requests),
                    baseline("identity", hex, "by hour of day", id.total as u64),
                    &[
                        (
                            "requests_this_hour",
                            f64::from(id.hour_requests),
                            f64::from(cfg.off_hours_requests),
                        ),
                        ("usual_share_of_hour", share, cfg.off_hours_share),
                    ],
                ));
                out.push((key, a));
            }
        }
    }

    fn evasion(&mut self, c: &Ctx, admit: &mut dyn FnMut(u64) -> bool, out: &mut Found) {
        for anomaly in &c.evasions {
            let key = c.client_dedup(&EVASION, "client", &[anomaly.as_bytes()]);
            if admit(key) {
                let mut a = c.alert(
                    &EVASION,
                    "client",
                    &format!("{}|{anomaly}", c.client),
                    70,
                    0.8,
                );
                a.title = format!("Request smuggling signal ({anomaly}) from {}", c.client);
                a.summary = format!(
                    "A request from {} to {} had ambiguous framing ({anomaly}): front and back ends may read it differently.",
                    c.client,
                    c.route.unwrap_or("the server")
                );
                out.push((key, a));
            }
        }
    }
}

fn class_title(class: &str) -> &'static str {
    match class {
        "sqli" => "SQL injection",
        "xss" => "Cross-site scripting",
        "path_traversal" => "Path traversal",
        "command_injection" => "Command injection",
        "ssrf" => "Server-side request forgery",
        _ => "Injection",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transaction context at `secs` from a client, with what a test sets on top.
    fn ctx(secs: u64, client: &str) -> Ctx<'static> {
        let ip: IpAddr = client.parse().unwrap();
        let network = features::entity::client_network(ip);
        Ctx {
            now_ns: 1_790_000_000 * NS + secs * NS,
            flow_uid: "C1",
            tx_index: 0,
            client: ip,
            client_port: 40000,
            client_key: key_hash(client.as_bytes()),
            network,
            network_key: key_hash(network.to_string().as_bytes()),
            server: "10.0.0.10".parse().unwrap(),
            server_port: 80,
            host: Some("api.test"),
            method: "GET",
            url: "/",
            redacted_target: None,
            route: Some("GET /api/v1/users/{id}"),
            endpoint_key: 7,
            status: Some(200),
            user_agent: Some("Mozilla/5.0"),
            identity: None,
            has_credentials: false,
            jwt_unsigned: false,
            jwt_expired_for: None,
            object: None,
            login: false,
            login_user: None,
            injections: &[],
            evasions: Vec::new(),
            response_kinds: KindSet::default(),
            inspected: false,
            response_bytes: 100,
            endpoint_objects: &|| 0.0,
        }
    }

    /// Runs the detectors with every alert built (no lifecycle in between).
    fn run(r: &mut Rules, c: &Ctx, out: &mut Vec<Alert>) {
        let mut found = Found::new();
        r.observe(c, true, &mut |_| true, &mut found);
        out.extend(found.into_iter().map(|(_, a)| a));
    }

    fn ids(out: &[Alert]) -> Vec<&str> {
        let mut v: Vec<&str> = out.iter().map(|a| a.detector.id.as_str()).collect();
        v.sort();
        v.dedup();
        v
    }

    #[test]
    fn many_user_names_failing_from_one_client_is_stuffing() {
        let mut r = Rules::new(RuleConfig::default());
        let mut out = Vec::new();
        for i in 0..30u64 {
            let mut c = ctx(i, "192.0.2.9");
            c.login = true;
            c.status = Some(401);
            c.login_user = Some(1000 + i);
            run(&mut r, &c, &mut out);
        }
        assert_eq!(ids(&out), vec![STUFFING.id]);
        assert!(out
            .iter()
            .any(|a| a.title.starts_with("Credential stuffing")));
        let e = out[0].explanation.as_ref().expect("explained");
        assert_eq!(e.contributions[0].feature, "login_failures_10m");
        // A few honest typos are not.
        let mut r = Rules::new(RuleConfig::default());
        out.clear();
        for i in 0..3u64 {
            let mut c = ctx(i * 60, "192.0.2.10");
            c.login = true;
            c.status = Some(401);
            c.login_user = Some(5);
            run(&mut r, &c, &mut out);
        }
        assert!(out.is_empty());
    }

    #[test]
    fn one_identity_from_many_networks_is_sharing() {
        let mut r = Rules::new(RuleConfig::default());
        let mut out = Vec::new();
        for i in 0..12u64 {
            let mut c = ctx(i * 10, &format!("198.51.{}.7", 10 + i));
            c.identity = Some((99, features::auth::IdHash([0xab; 16])));
            c.has_credentials = true;
            run(&mut r, &c, &mut out);
        }
        assert_eq!(ids(&out), vec![SHARING.id]);
        assert_eq!(out[0].client.identity.as_deref(), Some(&*"ab".repeat(16)));
    }

    #[test]
    fn a_sequential_walk_with_refusals_is_enumeration_and_own_objects_are_not() {
        let mut r = Rules::new(RuleConfig::default());
        let mut out = Vec::new();
        let objects: Vec<String> = (100..160).map(|i: u64| i.to_string()).collect();
        for (i, o) in objects.iter().enumerate() {
            let mut c = ctx(i as u64, "203.0.113.5");
            c.object = Some(o.as_bytes());
            c.status = Some(if i % 3 == 0 { 200 } else { 403 });
            c.has_credentials = true;
            run(&mut r, &c, &mut out);
        }
        assert_eq!(ids(&out), vec![ENUMERATION.id]);
        let mut r = Rules::new(RuleConfig::default());
        out.clear();
        for i in 0..200u64 {
            let mut c = ctx(i, "203.0.113.6");
            c.object = Some(b"42");
            c.has_credentials = true;
            run(&mut r, &c, &mut out);
        }
        assert!(out.is_empty());
    }

    #[test]
    fn a_tool_walking_the_catalogue_is_scraping() {
        let mut r = Rules::new(RuleConfig::default());
        let mut out = Vec::new();
        let skus: Vec<String> = (0..300).map(|i| format!("SKU-{i:06}")).collect();
        for (i, s) in skus.iter().enumerate() {
            let mut c = ctx(i as u64 / 2, "203.0.113.77");
            c.object = Some(s.as_bytes());
            c.user_agent = Some("python-requests/2.31");
            c.endpoint_objects = &|| 400.0;
            run(&mut r, &c, &mut out);
        }
        assert!(ids(&out).contains(&SCRAPING.id), "{:?}", ids(&out));
        assert!(is_automation(Some("curl/8.5.0")));
        assert!(!is_automation(Some(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15"
        )));
    }

    #[test]
    fn a_burst_against_the_clients_own_pace_is_a_rate_spike() {
        let mut r = Rules::new(RuleConfig::default());
        let mut out = Vec::new();
        // Two requests a minute for an hour, then 80 in one minute.
        for m in 0..60u64 {
            for k in 0..2 {
                run(&mut r, &ctx(m * 60 + k * 20, "192.0.2.50"), &mut out);
            }
        }
        assert!(out.is_empty(), "{:?}", ids(&out));
        for k in 0..80u64 {
            run(&mut r, &ctx(3600 + 60 + k / 2, "192.0.2.50"), &mut out);
        }
        assert_eq!(ids(&out), vec![RATE_SPIKE.id]);
        let e = out[0].explanation.as_ref().expect("explained");
        assert!(e.contributions[0].expected.unwrap_or(0.0) < 3.0, "{e:?}");
    }

    #[test]
    fn a_new_kind_of_sensitive_data_from_an_endpoint_is_exposure() {
        let mut r = Rules::new(RuleConfig::default());
        let mut out = Vec::new();
        let mut emails = KindSet::default();
        emails.insert(features::sensitive::Kind::Email);
        for i in 0..50u64 {
            let mut c = ctx(i, "192.0.2.60");
            c.inspected = true;
            c.response_kinds = emails;
            run(&mut r, &c, &mut out);
        }
        assert!(out.is_empty());
        let mut cards = emails;
        cards.insert(features::sensitive::Kind::PaymentCard);
        let mut c = ctx(60, "192.0.2.60");
        c.inspected = true;
        c.response_kinds = cards;
        run(&mut r, &c, &mut out);
        assert_eq!(ids(&out), vec![EXPOSURE.id]);
        assert!(out[0].title.contains("payment_card"));
        assert_eq!(out[0].severity.level, sinks::alert::Level::High);
    }

    #[test]
    fn broken_auth_missing_unsigned_and_expired() {
        let mut r = Rules::new(RuleConfig::default());
        let mut out = Vec::new();
        // Early on, one anonymous success is no news: the endpoint is not known long enough.
        for i in 0..300u64 {
            let mut c = ctx(i * 100, "192.0.2.70");
            c.has_credentials = true;
            run(&mut r, &c, &mut out);
            if i == 150 {
                run(&mut r, &ctx(i * 100 + 1, "192.0.2.71"), &mut out);
            }
        }
        assert!(out.is_empty(), "{:?}", ids(&out));
        run(&mut r, &ctx(30_000, "192.0.2.71"), &mut out);
        let mut c = ctx(401, "192.0.2.72");
        c.has_credentials = true;
        c.jwt_unsigned = true;
        run(&mut r, &c, &mut out);
        let mut c = ctx(402, "192.0.2.73");
        c.has_credentials = true;
        c.jwt_expired_for = Some(3600);
        run(&mut r, &c, &mut out);
        let keys: Vec<&str> = out.iter().map(|a| a.dedup_key.as_str()).collect();
        assert_eq!(out.len(), 3, "{keys:?}");
        assert!(keys[0].ends_with("missing_auth"));
        assert!(keys[1].ends_with("alg_none"));
        assert!(keys[2].ends_with("expired_token"));
    }

    #[test]
    fn bulk_access_far_from_the_identitys_hours_is_off_hours() {
        let mut r = Rules::new(RuleConfig::default());
        let mut out = Vec::new();
        // Two days of 09:00–17:00, ten requests an hour.
        for day in 0..2u64 {
            for hour in 9..17u64 {
                for k in 0..10u64 {
                    let mut c = ctx(day * 86_400 + hour * 3600 + k * 300, "192.0.2.80");
                    c.identity = Some((5, features::auth::IdHash([0xcd; 16])));
                    run(&mut r, &c, &mut out);
                }
            }
        }
        assert!(out.is_empty(), "{:?}", ids(&out));
        for k in 0..40u64 {
            let mut c = ctx(2 * 86_400 + 3 * 3600 + k * 30, "192.0.2.80");
            c.identity = Some((5, features::auth::IdHash([0xcd; 16])));
            run(&mut r, &c, &mut out);
        }
        assert_eq!(ids(&out), vec![OFF_HOURS.id]);
    }

    #[test]
    fn a_new_login_path_list_applies_to_known_endpoints() {
        let mut r = Rules::new(RuleConfig::default());
        assert!(!r.is_login(9, b"/api/v1/connect"));
        r.set_config(RuleConfig {
            login_paths: vec!["connect".into()],
            ..Default::default()
        });
        assert!(r.is_login(9, b"/api/v1/connect"));
    }

    #[test]
    fn smuggling_anomalies_alert() {
        let mut r = Rules::new(RuleConfig::default());
        assert!(r.is_evasion("te_cl_conflict"));
        assert!(!r.is_evasion("gap"));
        let mut out = Vec::new();
        let mut c = ctx(0, "192.0.2.90");
        c.evasions = vec!["te_cl_conflict"];
        run(&mut r, &c, &mut out);
        assert_eq!(ids(&out), vec![EVASION.id]);
    }

    #[test]
    fn per_entity_state_is_bounded() {
        let cfg = RuleConfig {
            max_clients: 64,
            max_networks: 16,
            max_pairs: 32,
            ..Default::default()
        };
        let mut r = Rules::new(cfg);
        let mut out = Vec::new();
        let objects: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        for (i, o) in objects.iter().enumerate() {
            let mut c = ctx(i as u64, &format!("10.{}.{}.1", i / 256, i % 256));
            c.object = Some(o.as_bytes());
            run(&mut r, &c, &mut out);
        }
        let s = r.stats();
        assert!(s.clients <= 64 && s.pairs <= 32, "{s:?}");
        assert!(s.evicted > 0);
    }
}
