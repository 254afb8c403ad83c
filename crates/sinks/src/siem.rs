//! Encoders of the canonical [`Alert`] into the `--alert-format`s of RECORDS.md §4 (canonical,
//! OCSF 1.5 Detection Finding, ECS, CEF, LEEF 2.0, syslog RFC 5424, Suricata EVE), and of a
//! transaction into OCSF HTTP Activity. [`encode`] writes one line ending in `\n` for every
//! format; [`encode_frame`] writes the same bytes without it, for framed transports
//! ([`octet_counted`]). No output contains a raw CR or LF: each format's escaping or
//! replacement is documented on its constant or function below.

use std::fmt;
use std::io::Write;
use std::str::FromStr;

use engine::TxRecord;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::alert::{finding_id, Alert, DetectorKind, Explanation, Level, Lifecycle};

/// One encoding of the alert stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AlertFormat {
    #[default]
    Canonical,
    Ocsf,
    Ecs,
    Cef,
    Leef,
    Syslog,
    Eve,
}

impl AlertFormat {
    pub const ALL: [AlertFormat; 7] = [
        AlertFormat::Canonical,
        AlertFormat::Ocsf,
        AlertFormat::Ecs,
        AlertFormat::Cef,
        AlertFormat::Leef,
        AlertFormat::Syslog,
        AlertFormat::Eve,
    ];

    /// The spelling `--alert-format` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertFormat::Canonical => "canonical",
            AlertFormat::Ocsf => "ocsf",
            AlertFormat::Ecs => "ecs",
            AlertFormat::Cef => "cef",
            AlertFormat::Leef => "leef",
            AlertFormat::Syslog => "syslog",
            AlertFormat::Eve => "eve",
        }
    }

    /// Whether each record is one JSON object.
    pub fn is_json(self) -> bool {
        matches!(
            self,
            AlertFormat::Canonical | AlertFormat::Ocsf | AlertFormat::Ecs | AlertFormat::Eve
        )
    }
}

impl fmt::Display for AlertFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an [`AlertFormat`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownFormat(pub String);

impl fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown alert format {:?}; expected one of ", self.0)?;
        for (i, a) in AlertFormat::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(a.as_str())?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownFormat {}

impl FromStr for AlertFormat {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<AlertFormat, UnknownFormat> {
        AlertFormat::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

/// What the encoders need to know of the sensor itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeContext {
    /// Product version written in OCSF metadata, ECS `observer.version`, the CEF and LEEF
    /// headers.
    pub product_version: &'static str,
    /// Syslog HOSTNAME, ECS `observer.hostname`, CEF `dvchost`.
    pub hostname: String,
    /// Configured sensor name: ECS `observer.name`, EVE `host`, CEF `deviceExternalId`.
    pub sensor_name: String,
}

impl EncodeContext {
    pub fn new(hostname: impl Into<String>, sensor_name: impl Into<String>) -> EncodeContext {
        EncodeContext {
            product_version: env!("CARGO_PKG_VERSION"),
            hostname: hostname.into(),
            sensor_name: sensor_name.into(),
        }
    }
}

/// OCSF schema version written in `metadata.version`: 1.5.0 is the first with
/// `anomaly_analyses` on Detection Finding (and `evidences.uid/name`).
pub const OCSF_VERSION: &str = "1.5.0";
/// ECS version written in `ecs.version`.
pub const ECS_VERSION: &str = "8.11.0";
/// Syslog facility: local0 (16). PRI = facility × 8 + severity.
pub const SYSLOG_FACILITY: u8 = 16;
/// Syslog APP-NAME.
pub const SYSLOG_APP_NAME: &str = "mirador";
/// RFC 5424 SD-ID. 32473 is the private enterprise number RFC 5612 reserves for
/// documentation: replace it with a registered one before others parse it.
pub const SD_ID: &str = "mirador@32473";
/// LEEF 2.0 attribute delimiter, declared in the header as `^`. LEEF has no escaping: in
/// values, the delimiter and control characters (CR, LF, TAB, ...) are replaced by their
/// `%XX` percent-encoding (lossy: a literal `%5E` in a value reads the same as `^`); in
/// header fields `|` is replaced the same way.
pub const LEEF_DELIMITER: char = '^';
/// LEEF `devTimeFormat` (Java `SimpleDateFormat`) of `devTime`, `firstSeen` and `lastSeen`.
pub const LEEF_TIME_FORMAT: &str = "yyyy-MM-dd'T'HH:mm:ss.SSSX";

const VENDOR: &str = "Mirador";
const PRODUCT: &str = "Mirador";

/// Appends one alert as one line ending in `\n` (files, stdout, newline-delimited streams).
pub fn encode(alert: &Alert, format: AlertFormat, ctx: &EncodeContext, out: &mut Vec<u8>) {
    encode_frame(alert, format, ctx, out);
    out.push(b'\n');
}

/// Appends one alert without a line terminator: the frame a datagram or an octet-counted
/// stream carries. Contains no CR or LF.
pub fn encode_frame(alert: &Alert, format: AlertFormat, ctx: &EncodeContext, out: &mut Vec<u8>) {
    match format {
        AlertFormat::Canonical => write_json(out, alert),
        AlertFormat::Ocsf => write_json(out, &ocsf(alert, ctx)),
        AlertFormat::Ecs => write_json(out, &ecs(alert, ctx)),
        AlertFormat::Eve => write_json(out, &eve(alert, ctx)),
        AlertFormat::Cef => cef(alert, ctx, out),
        AlertFormat::Leef => leef(alert, ctx, out),
        AlertFormat::Syslog => syslog(alert, ctx, out),
    }
}

/// RFC 6587 §3.4.1 octet counting (syslog over TCP, and TLS per RFC 5425):
/// `MSG-LEN SP SYSLOG-MSG`, the length in octets, in decimal.
pub fn octet_counted(frame: &[u8], out: &mut Vec<u8>) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(frame.len()).as_bytes());
    out.push(b' ');
    out.extend_from_slice(frame);
}

/// EVE `alert.signature_id` of a detector: 1 000 000 + (first 4 bytes of SHA-256 of the
/// detector id, big-endian) mod 1 000 000, inside the range Suricata and Snort leave to local
/// rules (1 000 000–1 999 999). Stable across runs and versions; distinct detectors collide
/// with probability ~n²/2·10⁻⁶.
pub fn eve_signature_id(detector_id: &str) -> u32 {
    let d = Sha256::digest(detector_id.as_bytes());
    1_000_000 + u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % 1_000_000
}

// ---------------------------------------------------------------------------------------
// Shared helpers

fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    // Serializing a `Value` or an `Alert` into memory cannot fail (string keys only).
    let _ = serde_json::to_writer(&mut *out, v);
}

fn rfc3339(ns: u64) -> String {
    let mut b = Vec::with_capacity(27);
    crate::time::rfc3339_micros(&mut b, wire::Timestamp(ns));
    String::from_utf8(b).unwrap_or_default()
}

fn ms(ns: u64) -> u64 {
    ns / 1_000_000
}

/// A JSON number, whole values without a fraction (as the canonical record writes them).
fn json_num(v: f64) -> Value {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
        json!(v as i64)
    } else {
        json!(v)
    }
}

fn fmt_num(v: f64) -> String {
    match json_num(v) {
        Value::Number(n) => n.to_string(),
        _ => v.to_string(),
    }
}

/// Drops nulls, empty objects and empty arrays, recursively (absent = not written).
fn prune(v: &mut Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => {
            m.retain(|_, x| !prune(x));
            m.is_empty()
        }
        Value::Array(a) => {
            a.retain_mut(|x| !prune(x));
            a.is_empty()
        }
        _ => false,
    }
}

fn nonempty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn pruned(mut v: Value) -> Value {
    prune(&mut v);
    v
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Path and query of a request target, origin- or absolute-form.
fn split_target(target: &str) -> (Option<&str>, Option<&str>) {
    let mut t = target;
    if let Some((scheme, rest)) = t.split_once("://") {
        if !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphabetic()) {
            t = rest.find(['/', '?']).map_or("", |s| &rest[s..]);
        }
    }
    if !t.starts_with('/') && !t.starts_with('?') {
        return (None, None);
    }
    match t.split_once('?') {
        Some((p, q)) => ((!p.is_empty()).then_some(p), Some(q)),
        None => (Some(t), None),
    }
}

fn is_absolute(target: &str) -> bool {
    target
        .split_once("://")
        .is_some_and(|(s, _)| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphabetic()))
}

/// Host and port of a Host header value (`h`, `h:p`, `[v6]:p`): the transaction record's rule.
fn split_host_port(raw: &str) -> (&str, Option<u16>) {
    let (host, port) = crate::ecs::split_host_port(raw.as_bytes());
    // A slice cut at ASCII ':' / '[' / ']' of a str is still UTF-8.
    (std::str::from_utf8(host).unwrap_or(raw), port)
}

/// `host[:port]` for a URL: the port when the host does not carry one and it is not 80.
fn url_authority(host: &str, port: Option<u16>) -> String {
    let (h, has_port) = split_host_port(host);
    let h = if h.contains(':') {
        format!("[{h}]")
    } else {
        h.to_string()
    };
    match has_port.or(port.filter(|&p| p != 80)) {
        Some(p) if p != 80 => format!("{h}:{p}"),
        _ => h,
    }
}

/// The full URL of a request: the target when absolute, else `http://` (the sensor sees
/// cleartext HTTP) + host + target.
fn url_string(target: &str, host: Option<&str>, port: Option<u16>) -> Option<String> {
    if is_absolute(target) {
        return Some(target.to_string());
    }
    let host = host.filter(|h| !h.is_empty())?;
    target
        .starts_with('/')
        .then(|| format!("http://{}{target}", url_authority(host, port)))
}

/// MITRE technique and sub-technique of `T1234` / `T1234.001`.
fn mitre_parts(m: &str) -> (&str, Option<&str>) {
    let m = m.trim();
    match m.split_once('.') {
        Some((t, _)) => (t, Some(m)),
        None => (m, None),
    }
}

// ---------------------------------------------------------------------------------------
// OCSF 1.5 Detection Finding (class 2004)

fn ocsf_severity(level: Level) -> (u8, &'static str) {
    match level {
        Level::Info => (1, "Informational"),
        Level::Low => (2, "Low"),
        Level::Medium => (3, "Medium"),
        Level::High => (4, "High"),
        Level::Critical => (5, "Critical"),
    }
}

/// `analytic.type_id`: Rule 1, Statistical 3, Learning (ML/DL) 4.
fn ocsf_analytic_type(kind: DetectorKind) -> (u8, &'static str) {
    match kind {
        DetectorKind::Rule => (1, "Rule"),
        DetectorKind::Statistical => (3, "Statistical"),
        DetectorKind::Ml => (4, "Learning (ML/DL)"),
    }
}

/// `confidence_id` from the 0–1 confidence: below 0.5 Low, below 0.8 Medium, else High.
fn ocsf_confidence(c: f64) -> (u8, &'static str) {
    if c < 0.5 {
        (1, "Low")
    } else if c < 0.8 {
        (2, "Medium")
    } else {
        (3, "High")
    }
}

fn ocsf_metadata(ctx: &EncodeContext, uid: &str) -> Value {
    json!({
        "version": OCSF_VERSION,
        "product": {"name": PRODUCT, "vendor_name": VENDOR, "version": ctx.product_version},
        "uid": uid,
    })
}

fn ocsf_anomaly_analyses(a: &Alert, e: &Explanation) -> Value {
    let target = match (&e.baseline, &a.http.route) {
        (Some(b), _) => json!({"name": b.key, "type": b.scope}),
        (None, Some(r)) => json!({"name": r, "type": "route"}),
        (None, None) => json!({"name": a.detector.id, "type": "detector"}),
    };
    let mut anomalies = vec![json!({
        "observation_parameter": "anomaly_score",
        "observations": [{"value": fmt_num(e.score)}],
        "observed_pattern": format!("above threshold {}", fmt_num(e.threshold)),
    })];
    anomalies.extend(e.contributions.iter().map(|c| {
        json!({
            "observation_parameter": c.feature,
            "observations": [{"value": fmt_num(c.value)}],
        })
    }));
    let baselines: Vec<Value> = e
        .contributions
        .iter()
        .filter_map(|c| {
            let observations: Vec<Value> =
                [("expected", c.expected), ("p50", c.p50), ("p99", c.p99)]
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| json!({"value": format!("{k}={}", fmt_num(v))})))
                    .collect();
            (!observations.is_empty())
                .then(|| json!({"observation_parameter": c.feature, "observations": observations}))
        })
        .collect();
    json!([{"analysis_targets": [target], "anomalies": anomalies, "baselines": baselines}])
}

fn ocsf(a: &Alert, ctx: &EncodeContext) -> Value {
    let (activity_id, activity_name) = match a.lifecycle {
        Lifecycle::Create => (1u32, "Create"),
        Lifecycle::Update => (2, "Update"),
        Lifecycle::Close => (3, "Close"),
    };
    let (severity_id, severity) = ocsf_severity(a.severity.level);
    let (analytic_type_id, analytic_type) = ocsf_analytic_type(a.detector.kind);
    let (confidence_id, confidence) = ocsf_confidence(a.confidence);
    // The sensor closing an alert is not an analyst resolving it: Other, labelled.
    let (status_id, status) = match a.lifecycle {
        Lifecycle::Close => (99, "Closed"),
        _ => (1, "New"),
    };
    let (risk_level_id, risk_level) = match a.severity.level {
        Level::Info => (0, "Info"),
        Level::Low => (1, "Low"),
        Level::Medium => (2, "Medium"),
        Level::High => (3, "High"),
        Level::Critical => (4, "Critical"),
    };
    let attack = a.attack.as_ref();
    let attacks = attack.and_then(|t| t.mitre.as_deref()).map(|m| {
        let (technique, sub) = mitre_parts(m);
        json!([{"technique": {"uid": technique}, "sub_technique": sub.map(|s| json!({"uid": s}))}])
    });
    let (path, query) = a.http.url.as_deref().map_or((None, None), split_target);
    let url = a.http.url.as_deref().map(|u| {
        json!({
            "url_string": url_string(u, a.server.host.as_deref(), a.server.port),
            "hostname": a.server.host.as_deref().map(|h| split_host_port(h).0),
            "path": path,
            "query_string": query,
        })
    });
    let evidence = json!({
        "src_endpoint": {"ip": a.client.ip, "port": a.client.port},
        "dst_endpoint": {
            "ip": a.server.ip,
            "port": a.server.port,
            "hostname": a.server.host.as_deref().map(|h| split_host_port(h).0),
        },
        "http_request": {
            "http_method": a.http.method,
            "url": url,
            "user_agent": a.client.user_agent,
        },
        "http_response": a.http.status.map(|c| json!({"code": c})),
        "user": a.client.identity.as_ref().map(|i| json!({"uid": i})),
        "data": (!a.evidence.is_empty()).then(|| json!({"transactions": to_value(&a.evidence)})),
    });
    pruned(json!({
        "activity_id": activity_id,
        "activity_name": activity_name,
        "category_uid": 2,
        "category_name": "Findings",
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "type_uid": 2004 * 100 + activity_id,
        "type_name": format!("Detection Finding: {activity_name}"),
        "severity_id": severity_id,
        "severity": severity,
        "time": ms(a.time),
        "start_time": ms(a.first_seen),
        "end_time": ms(a.last_seen),
        "count": a.count,
        "message": a.title,
        "status_id": status_id,
        "status": status,
        "is_alert": a.lifecycle != Lifecycle::Close,
        "confidence_id": confidence_id,
        "confidence": confidence,
        "confidence_score": (a.confidence.clamp(0.0, 1.0) * 100.0).round() as u8,
        "risk_score": a.severity.score,
        "risk_level_id": risk_level_id,
        "risk_level": risk_level,
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": PRODUCT, "vendor_name": VENDOR, "version": ctx.product_version},
            // This revision; a resend carries the same uid.
            "uid": a.alert_id,
            // Every revision of the alert shares it.
            "correlation_uid": a.dedup_key,
        },
        "finding_info": {
            // Stable across create/update/close, so consumers update one finding.
            "uid": finding_id(&a.dedup_key),
            "title": a.title,
            "desc": (!a.summary.is_empty()).then_some(&a.summary),
            "analytic": {
                "uid": a.detector.id,
                "name": a.detector.name,
                "type_id": analytic_type_id,
                "type": analytic_type,
                "version": a.detector.version.to_string(),
            },
            "attacks": attacks,
            "types": attack.and_then(|t| t.owasp.as_ref()).map(|o| json!([o])),
            "first_seen_time": ms(a.first_seen),
            "last_seen_time": ms(a.last_seen),
        },
        "evidences": [evidence],
        "anomaly_analyses": a.explanation.as_ref().map(|e| ocsf_anomaly_analyses(a, e)),
        "remediation": a.recommended_action.as_ref().map(|d| json!({"desc": d})),
        "unmapped": {
            "route": a.http.route,
            "explanation": a.explanation.as_ref().map(to_value),
            "sensor": {"name": nonempty(&ctx.sensor_name), "hostname": nonempty(&ctx.hostname)},
        },
    }))
}

// ---------------------------------------------------------------------------------------
// ECS

fn ecs_threat(a: &Alert) -> Value {
    let Some(attack) = &a.attack else {
        return Value::Null;
    };
    if let Some(m) = &attack.mitre {
        let (technique, sub) = mitre_parts(m);
        return json!({
            "framework": "MITRE ATT&CK",
            "technique": {"id": [technique], "subtechnique": sub.map(|s| json!({"id": [s]}))},
        });
    }
    let Some(owasp) = &attack.owasp else {
        return Value::Null;
    };
    // `API4:2023 Unrestricted Resource Consumption` → id and name.
    let technique = match owasp.split_once(' ') {
        Some((id, name)) if id.starts_with("API") && id.contains(':') => {
            json!({"id": [id], "name": [name]})
        }
        _ => json!({"name": [owasp]}),
    };
    json!({"framework": "OWASP API Security Top 10", "technique": technique})
}

fn ecs(a: &Alert, ctx: &EncodeContext) -> Value {
    let event_type = match a.lifecycle {
        Lifecycle::Create => json!(["info", "start"]),
        Lifecycle::Update => json!(["info", "change"]),
        Lifecycle::Close => json!(["info", "end"]),
    };
    let (path, query) = a.http.url.as_deref().map_or((None, None), split_target);
    let domain = a.server.host.as_deref().map(|h| split_host_port(h).0);
    let score = a.severity.score;
    pruned(json!({
        "@timestamp": rfc3339(a.time),
        "ecs": {"version": ECS_VERSION},
        "message": a.title,
        "event": {
            "kind": "alert",
            "category": ["intrusion_detection", "web"],
            "type": event_type,
            "action": a.lifecycle.as_str(),
            "id": a.alert_id,
            "dataset": "mirador.alert",
            "module": "mirador",
            "start": rfc3339(a.first_seen),
            "end": rfc3339(a.last_seen),
            "severity": score,
            "risk_score": score,
            "risk_score_norm": score,
        },
        "rule": {
            "id": a.detector.id,
            "name": a.detector.name,
            "description": (!a.summary.is_empty()).then_some(&a.summary),
            "version": a.detector.version.to_string(),
            "category": a.detector.kind.as_str(),
            "ruleset": "mirador",
        },
        "threat": ecs_threat(a),
        "source": {"ip": a.client.ip, "port": a.client.port},
        "destination": {"ip": a.server.ip, "port": a.server.port, "domain": domain},
        "user": {"id": a.client.identity},
        "user_agent": {"original": a.client.user_agent},
        "http": {
            "request": {"method": a.http.method},
            "response": {"status_code": a.http.status},
        },
        "url": {"original": a.http.url, "path": path, "query": query, "domain": domain},
        "observer": {
            "vendor": VENDOR,
            "product": PRODUCT,
            "version": ctx.product_version,
            "type": "ids",
            "hostname": nonempty(&ctx.hostname),
            "name": nonempty(&ctx.sensor_name),
        },
        "Mirador": {
            "dedup_key": a.dedup_key,
            "lifecycle": a.lifecycle.as_str(),
            "count": a.count,
            "confidence": json_num(a.confidence),
            "severity": a.severity.level.as_str(),
            "route": a.http.route,
            "attack": a.attack.as_ref().map(to_value),
            "anomaly": a.explanation.as_ref().map(to_value),
            "action": a.recommended_action,
            "evidence": to_value(&a.evidence),
        },
    }))
}

// ---------------------------------------------------------------------------------------
// Suricata EVE

/// Suricata's timestamp: `2023-11-14T22:13:20.123456+0000`.
fn eve_time(ns: u64) -> String {
    let mut s = rfc3339(ns);
    s.pop();
    s.push_str("+0000");
    s
}

/// Suricata alert severity: 1 high (critical, high), 2 medium, 3 low (low, info).
fn eve_severity(level: Level) -> u8 {
    match level {
        Level::Critical | Level::High => 1,
        Level::Medium => 2,
        Level::Low | Level::Info => 3,
    }
}

fn eve(a: &Alert, ctx: &EncodeContext) -> Value {
    let attack = a.attack.as_ref();
    let owasp = attack.and_then(|t| t.owasp.as_ref());
    let mitre = attack.and_then(|t| t.mitre.as_ref());
    pruned(json!({
        "timestamp": eve_time(a.time),
        "event_type": "alert",
        "src_ip": a.client.ip,
        "src_port": a.client.port,
        "dest_ip": a.server.ip,
        "dest_port": a.server.port,
        "proto": "TCP",
        "app_proto": "http",
        "host": nonempty(&ctx.sensor_name),
        "alert": {
            // Passive: nothing was blocked.
            "action": "allowed",
            "gid": 1,
            "signature_id": eve_signature_id(&a.detector.id),
            "rev": a.detector.version,
            "signature": a.title,
            "category": owasp.unwrap_or(&a.detector.name),
            "severity": eve_severity(a.severity.level),
            "metadata": {
                "mitre_technique_id": mitre.map(|m| json!([mitre_parts(m).0])),
                "mitre_subtechnique_id": mitre.and_then(|m| mitre_parts(m).1).map(|s| json!([s])),
                "owasp_api_top10": owasp.map(|o| json!([o])),
            },
        },
        "http": {
            "hostname": a.server.host.as_deref().map(|h| split_host_port(h).0),
            "url": a.http.url,
            "http_method": a.http.method,
            "status": a.http.status,
            "http_user_agent": a.client.user_agent,
        },
        "mirador": {
            "alert_id": a.alert_id,
            "dedup_key": a.dedup_key,
            "lifecycle": a.lifecycle.as_str(),
            "count": a.count,
            "first_seen": rfc3339(a.first_seen),
            "last_seen": rfc3339(a.last_seen),
            "detector": to_value(&a.detector),
            "severity": to_value(&a.severity),
            "confidence": json_num(a.confidence),
            "summary": (!a.summary.is_empty()).then_some(&a.summary),
            "attack": attack.map(to_value),
            "route": a.http.route,
            "identity": a.client.identity,
            "explanation": a.explanation.as_ref().map(to_value),
            "recommended_action": a.recommended_action,
            "evidence": to_value(&a.evidence),
        },
    }))
}

// ---------------------------------------------------------------------------------------
// CEF

/// CEF header field: `\` → `\\`, `|` → `\|`; control characters (which the header may not
/// hold) → space.
fn cef_header(out: &mut Vec<u8>, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.extend_from_slice(b"\\\\"),
            '|' => out.extend_from_slice(b"\\|"),
            c if c.is_control() => out.push(b' '),
            c => push_char(out, c),
        }
    }
}

/// CEF extension value: `\` → `\\`, `=` → `\=`, CR → `\r`, LF → `\n`, other control
/// characters → space. `|` needs no escape here.
fn cef_value(out: &mut Vec<u8>, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.extend_from_slice(b"\\\\"),
            '=' => out.extend_from_slice(b"\\="),
            '\r' => out.extend_from_slice(b"\\r"),
            '\n' => out.extend_from_slice(b"\\n"),
            c if c.is_control() => out.push(b' '),
            c => push_char(out, c),
        }
    }
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut b = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
}

/// Space-separated `key=value` pairs; keys are this file's constants (alphanumeric).
struct CefExt<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl CefExt<'_> {
    fn kv(&mut self, k: &str, v: &str) {
        debug_assert!(k.bytes().all(|b| b.is_ascii_alphanumeric()), "{k}");
        if !self.first {
            self.out.push(b' ');
        }
        self.first = false;
        self.out.extend_from_slice(k.as_bytes());
        self.out.push(b'=');
        cef_value(self.out, v);
    }
    fn opt(&mut self, k: &str, v: Option<impl fmt::Display>) {
        if let Some(v) = v {
            self.kv(k, &v.to_string());
        }
    }
    /// A labelled custom field (`cs1Label=... cs1=...`).
    fn labelled(&mut self, k: &str, label: &str, v: Option<impl fmt::Display>) {
        if let Some(v) = v {
            self.kv(&format!("{k}Label"), label);
            self.kv(k, &v.to_string());
        }
    }
}

/// Up to three contributions, largest share first: `feature: value (expected e, p50 x, p99 y,
/// share s); ...`.
fn top_contributions(e: &Explanation) -> Option<String> {
    let mut c: Vec<_> = e.contributions.iter().collect();
    c.sort_by(|a, b| b.share.total_cmp(&a.share));
    let parts: Vec<String> = c
        .iter()
        .take(3)
        .map(|c| {
            let mut s = format!("{}: {}", c.feature, fmt_num(c.value));
            let stats: Vec<String> = [("expected", c.expected), ("p50", c.p50), ("p99", c.p99)]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| format!("{k} {}", fmt_num(v))))
                .chain(std::iter::once(format!("share {}", fmt_num(c.share))))
                .collect();
            s.push_str(&format!(" ({})", stats.join(", ")));
            s
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn attack_text(a: &Alert) -> Option<String> {
    let t = a.attack.as_ref()?;
    let parts: Vec<&str> = [t.owasp.as_deref(), t.mitre.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    (!parts.is_empty()).then(|| parts.join(" / "))
}

/// `CEF:0|Mirador|Mirador|version|detector id|title|severity|extensions`, severity 0–10 =
/// score / 10 (which lands the bands on CEF's Low 0–3, Medium 4–6, High 7–8, Very-High 9–10).
/// Times are milliseconds since the epoch. No syslog header: the transport adds one.
fn cef(a: &Alert, ctx: &EncodeContext, out: &mut Vec<u8>) {
    out.extend_from_slice(b"CEF:0|");
    for field in [
        VENDOR,
        PRODUCT,
        ctx.product_version,
        a.detector.id.as_str(),
        a.title.as_str(),
    ] {
        cef_header(out, field);
        out.push(b'|');
    }
    let _ = write!(out, "{}|", a.severity.score.min(100) / 10);
    let mut x = CefExt { out, first: true };
    x.kv("rt", &ms(a.time).to_string());
    x.kv("start", &ms(a.first_seen).to_string());
    x.kv("end", &ms(a.last_seen).to_string());
    x.kv("externalId", &a.alert_id);
    x.kv("cnt", &a.count.to_string());
    x.kv("cat", a.detector.kind.as_str());
    x.opt("src", a.client.ip);
    x.opt("spt", a.client.port);
    x.opt("dst", a.server.ip);
    x.opt("dpt", a.server.port);
    x.opt(
        "dhost",
        a.server.host.as_deref().map(|h| split_host_port(h).0),
    );
    x.opt("suser", a.client.identity.as_deref());
    x.opt("requestMethod", a.http.method.as_deref());
    x.opt("request", a.http.url.as_deref());
    x.opt("requestClientApplication", a.client.user_agent.as_deref());
    x.opt("act", a.recommended_action.as_deref());
    x.opt("msg", (!a.summary.is_empty()).then_some(&a.summary));
    x.labelled("cs1", "dedupKey", Some(&a.dedup_key));
    x.labelled("cs2", "route", a.http.route.as_deref());
    x.labelled("cs3", "lifecycle", Some(a.lifecycle.as_str()));
    x.labelled("cs4", "attack", attack_text(a));
    let e = a.explanation.as_ref();
    x.labelled("cs5", "topContributions", e.and_then(top_contributions));
    x.labelled(
        "cs6",
        "baseline",
        e.and_then(|e| e.baseline.as_ref()).map(|b| {
            format!(
                "scope:{} key:{} window:{} samples:{}",
                b.scope, b.key, b.window, b.samples
            )
        }),
    );
    x.labelled("cn1", "riskScore", Some(a.severity.score));
    x.labelled("cn2", "httpStatus", a.http.status);
    x.labelled("cn3", "detectorVersion", Some(a.detector.version));
    x.labelled("cfp1", "anomalyScore", e.map(|e| fmt_num(e.score)));
    x.labelled("cfp2", "anomalyThreshold", e.map(|e| fmt_num(e.threshold)));
    x.labelled("cfp3", "confidence", Some(fmt_num(a.confidence)));
    x.opt("dvchost", nonempty(&ctx.hostname));
    x.opt("deviceExternalId", nonempty(&ctx.sensor_name));
}

// ---------------------------------------------------------------------------------------
// LEEF 2.0

/// Replaces `special` characters and control characters by their `%XX` percent-encoding.
fn leef_clean(out: &mut Vec<u8>, s: &str, special: char) {
    for c in s.chars() {
        if c == special || c.is_control() {
            let mut b = [0u8; 4];
            for byte in c.encode_utf8(&mut b).bytes() {
                let _ = write!(out, "%{byte:02X}");
            }
        } else {
            push_char(out, c);
        }
    }
}

/// Millisecond UTC time for `devTime` (see [`LEEF_TIME_FORMAT`]).
fn leef_time(ns: u64) -> String {
    let mut s = rfc3339(ns);
    // `...:SS.mmmuuuZ` → `...:SS.mmmZ`
    s.replace_range(s.len() - 4..s.len() - 1, "");
    s
}

/// `LEEF:2.0|Mirador|Mirador|version|detector id|^|key=value^key=value...`; `sev` 1–10 =
/// score / 10, at least 1. No syslog header: the transport adds one.
fn leef(a: &Alert, ctx: &EncodeContext, out: &mut Vec<u8>) {
    out.extend_from_slice(b"LEEF:2.0|");
    for field in [VENDOR, PRODUCT, ctx.product_version, a.detector.id.as_str()] {
        leef_clean(out, field, '|');
        out.push(b'|');
    }
    push_char(out, LEEF_DELIMITER);
    out.push(b'|');
    let mut first = true;
    let mut kv = |k: &str, v: Option<String>| {
        let Some(v) = v else { return };
        if !first {
            push_char(out, LEEF_DELIMITER);
        }
        first = false;
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        leef_clean(out, &v, LEEF_DELIMITER);
    };
    let s = |v: &str| Some(v.to_string());
    let e = a.explanation.as_ref();
    let t = a.attack.as_ref();
    kv("devTime", Some(leef_time(a.time)));
    kv("devTimeFormat", s(LEEF_TIME_FORMAT));
    kv("cat", s(a.detector.kind.as_str()));
    kv(
        "sev",
        Some((a.severity.score.min(100) / 10).max(1).to_string()),
    );
    kv("src", a.client.ip.map(|i| i.to_string()));
    kv("srcPort", a.client.port.map(|p| p.to_string()));
    kv("dst", a.server.ip.map(|i| i.to_string()));
    kv("dstPort", a.server.port.map(|p| p.to_string()));
    kv("proto", s("TCP"));
    kv("usrName", a.client.identity.clone());
    kv("url", a.http.url.clone());
    kv("alertId", s(&a.alert_id));
    kv("dedupKey", s(&a.dedup_key));
    kv("lifecycle", s(a.lifecycle.as_str()));
    kv("count", Some(a.count.to_string()));
    kv("firstSeen", Some(leef_time(a.first_seen)));
    kv("lastSeen", Some(leef_time(a.last_seen)));
    kv("detector", s(&a.detector.id));
    kv("detectorName", s(&a.detector.name));
    kv("detectorVersion", Some(a.detector.version.to_string()));
    kv("severity", s(a.severity.level.as_str()));
    kv("riskScore", Some(a.severity.score.to_string()));
    kv("confidence", Some(fmt_num(a.confidence)));
    kv("title", s(&a.title));
    kv(
        "summary",
        (!a.summary.is_empty()).then(|| a.summary.clone()),
    );
    kv("owasp", t.and_then(|t| t.owasp.clone()));
    kv("mitre", t.and_then(|t| t.mitre.clone()));
    kv("method", a.http.method.clone());
    kv("route", a.http.route.clone());
    kv("host", a.server.host.clone());
    kv("status", a.http.status.map(|c| c.to_string()));
    kv("userAgent", a.client.user_agent.clone());
    kv("anomalyScore", e.map(|e| fmt_num(e.score)));
    kv("threshold", e.map(|e| fmt_num(e.threshold)));
    kv("topContributions", e.and_then(top_contributions));
    kv("action", a.recommended_action.clone());
    kv("sensor", nonempty(&ctx.sensor_name).map(str::to_string));
}

// ---------------------------------------------------------------------------------------
// Syslog RFC 5424

/// Syslog severity: critical → 2 (Critical), high → 3 (Error), medium → 4 (Warning),
/// low → 5 (Notice), info → 6 (Informational).
pub fn syslog_severity(level: Level) -> u8 {
    match level {
        Level::Critical => 2,
        Level::High => 3,
        Level::Medium => 4,
        Level::Low => 5,
        Level::Info => 6,
    }
}

/// A header field: `-` when empty, else printable US-ASCII (others → `_`), cut at `max`.
fn syslog_header_field(out: &mut Vec<u8>, s: &str, max: usize) {
    if s.is_empty() {
        out.push(b'-');
        return;
    }
    out.extend(
        s.chars()
            .map(|c| if c.is_ascii_graphic() { c as u8 } else { b'_' })
            .take(max),
    );
}

/// SD-PARAM value: `"`, `\` and `]` escaped with `\` (RFC 5424 §6.3.3); CR, LF → the two
/// characters `\r`, `\n`; other control characters → space.
fn sd_value(out: &mut Vec<u8>, s: &str) {
    for c in s.chars() {
        match c {
            '"' | '\\' | ']' => {
                out.push(b'\\');
                out.push(c as u8);
            }
            '\r' => out.extend_from_slice(b"\\r"),
            '\n' => out.extend_from_slice(b"\\n"),
            c if c.is_control() => out.push(b' '),
            c => push_char(out, c),
        }
    }
}

/// `<PRI>1 TIMESTAMP HOSTNAME mirador - MSGID [mirador@32473 id="..." ...] MSG`: MSGID is
/// the detector id; MSG is `title: summary`, with CR/LF written as `\r`/`\n` and other control
/// characters as spaces, prefixed with the UTF-8 BOM only when it is not plain ASCII (RFC
/// 5424 §6.4 asks for the BOM on UTF-8; ASCII stays readable by receivers that show it).
fn syslog(a: &Alert, ctx: &EncodeContext, out: &mut Vec<u8>) {
    let pri = u32::from(SYSLOG_FACILITY) * 8 + u32::from(syslog_severity(a.severity.level));
    let _ = write!(out, "<{pri}>1 {} ", rfc3339(a.time));
    syslog_header_field(out, &ctx.hostname, 255);
    out.push(b' ');
    syslog_header_field(out, SYSLOG_APP_NAME, 48);
    out.extend_from_slice(b" - ");
    syslog_header_field(out, &a.detector.id, 32);
    out.push(b' ');
    out.push(b'[');
    out.extend_from_slice(SD_ID.as_bytes());
    let e = a.explanation.as_ref();
    let t = a.attack.as_ref();
    let evidence = (!a.evidence.is_empty()).then(|| {
        a.evidence
            .iter()
            .map(|r| format!("{}:{}", r.flow_uid, r.tx_index))
            .collect::<Vec<_>>()
            .join(",")
    });
    let params = [
        ("id", Some(a.alert_id.clone())),
        ("lifecycle", Some(a.lifecycle.as_str().into())),
        ("count", Some(a.count.to_string())),
        ("dedupKey", Some(a.dedup_key.clone())),
        ("detector", Some(a.detector.id.clone())),
        ("detectorVersion", Some(a.detector.version.to_string())),
        ("severity", Some(a.severity.level.as_str().into())),
        ("score", Some(a.severity.score.to_string())),
        ("confidence", Some(fmt_num(a.confidence))),
        ("firstSeen", Some(rfc3339(a.first_seen))),
        ("lastSeen", Some(rfc3339(a.last_seen))),
        ("owasp", t.and_then(|t| t.owasp.clone())),
        ("mitre", t.and_then(|t| t.mitre.clone())),
        ("route", a.http.route.clone()),
        ("method", a.http.method.clone()),
        ("url", a.http.url.clone()),
        ("status", a.http.status.map(|c| c.to_string())),
        ("src", a.client.ip.map(|i| i.to_string())),
        ("srcPort", a.client.port.map(|p| p.to_string())),
        ("dst", a.server.ip.map(|i| i.to_string())),
        ("dstPort", a.server.port.map(|p| p.to_string())),
        ("host", a.server.host.clone()),
        ("user", a.client.identity.clone()),
        ("anomalyScore", e.map(|e| fmt_num(e.score))),
        ("threshold", e.map(|e| fmt_num(e.threshold))),
        ("action", a.recommended_action.clone()),
        ("evidence", evidence),
    ];
    for (name, value) in params {
        let Some(v) = value else { continue };
        out.push(b' ');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"=\"");
        sd_value(out, &v);
        out.push(b'"');
    }
    out.push(b']');
    let mut msg = a.title.clone();
    if !a.summary.is_empty() {
        msg.push_str(": ");
        msg.push_str(&a.summary);
    }
    out.push(b' ');
    if !msg.is_ascii() {
        out.extend_from_slice("\u{feff}".as_bytes());
    }
    for c in msg.chars() {
        match c {
            '\r' => out.extend_from_slice(b"\\r"),
            '\n' => out.extend_from_slice(b"\\n"),
            c if c.is_control() => out.push(b' '),
            c => push_char(out, c),
        }
    }
}

// ---------------------------------------------------------------------------------------
// OCSF 1.5 HTTP Activity (class 4002) for transactions

/// Bytes as text: valid UTF-8 as is, each byte of an invalid sequence as `\xNN` (as the ECS
/// transaction record writes it).
fn text(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        s.push_str(chunk.valid());
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

fn hex16(b: &[u8; 16]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `activity_id` of a method, matched exactly (methods are case-sensitive).
fn http_activity(method: Option<&str>) -> (u32, &'static str) {
    match method {
        Some("CONNECT") => (1, "Connect"),
        Some("DELETE") => (2, "Delete"),
        Some("GET") => (3, "Get"),
        Some("HEAD") => (4, "Head"),
        Some("OPTIONS") => (5, "Options"),
        Some("POST") => (6, "Post"),
        Some("PUT") => (7, "Put"),
        Some("TRACE") => (8, "Trace"),
        Some(_) => (99, "Other"),
        None => (0, "Unknown"),
    }
}

/// Appends one transaction as an OCSF 1.5 HTTP Activity event and a newline: what the ECS
/// transaction record (RECORDS.md §1) holds, under OCSF names; the Mirador-specific members
/// (flow uid, route, identity hashes, anomalies) go to `unmapped`.
pub fn transaction_ocsf(rec: &TxRecord, ctx: &EncodeContext, out: &mut Vec<u8>) {
    let tx = &rec.tx;
    let req = tx.request.as_ref();
    let resp = tx.response.as_ref();
    let method = req.map(|r| text(r.method()));
    let (activity_id, activity_name) = http_activity(method.as_deref());
    // Credentials in the query leave as hashes, never as sent (as in the ECS record).
    let target = req.map(|r| {
        rec.notes
            .as_ref()
            .and_then(|n| n.redacted_target.as_deref())
            .map_or_else(|| text(r.target()), str::to_string)
    });
    let host_header = req
        .and_then(|r| r.head.get("host"))
        .filter(|h| !h.is_empty())
        .map(text);
    let url = target.as_deref().map(|t| {
        let (path, query) = split_target(t);
        let (host, port) = match &host_header {
            Some(h) => {
                let (h, p) = split_host_port(h);
                (Some(h.to_string()), p)
            }
            None if is_absolute(t) => {
                let rest = t.split_once("://").map_or("", |(_, r)| r);
                let auth = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
                let (h, p) = split_host_port(auth);
                (Some(h.to_string()), p)
            }
            None => (None, None),
        };
        json!({
            "url_string": url_string(t, host_header.as_deref(), None),
            "scheme": "http",
            "hostname": host.filter(|h| !h.is_empty()),
            "port": port,
            "path": path,
            "query_string": query,
        })
    });
    let response = resp.filter(|r| r.status != 0).map(|r| {
        json!({
            "code": r.status,
            "length": r.body.wire_len,
            "body_length": r.body.len,
            "content_type": r.head.get("content-type").map(text),
        })
    });
    let version = req
        .map(|r| r.version)
        .or(resp.map(|r| r.version))
        .map(|v| v.as_str());
    let (start, end) = (tx.start().as_nanos(), tx.end().as_nanos());
    let notes = rec.notes.as_ref();
    let identity: Vec<Value> = notes.map_or(Vec::new(), |n| {
        n.identity
            .iter()
            .map(|id| {
                json!({
                    "scheme": id.scheme,
                    "location": id.location,
                    "name": id.name.as_str(),
                    "credential": hex16(&id.credential),
                    "subject": id.subject.as_ref().map(hex16),
                })
            })
            .collect()
    });
    let anomalies: Vec<&str> = tx.anomalies.iter().map(|a| a.as_str()).collect();
    // `Other` carries the method as sent.
    let activity_label = match &method {
        Some(m) if activity_id == 99 => m.clone(),
        _ => activity_name.to_string(),
    };
    let mut v = json!({
        "activity_id": activity_id,
        "activity_name": activity_label,
        "category_uid": 4,
        "category_name": "Network Activity",
        "class_uid": 4002,
        "class_name": "HTTP Activity",
        "type_uid": 4002 * 100 + activity_id,
        "type_name": format!("HTTP Activity: {activity_name}"),
        "severity_id": 1,
        "severity": "Informational",
        "time": ms(start),
        "start_time": ms(start),
        "end_time": ms(end),
        "duration": ms(end.saturating_sub(start)),
        "metadata": ocsf_metadata(ctx, &format!("{}:{}", rec.flow.uid, tx.index)),
        "src_endpoint": {"ip": rec.flow.client.ip(), "port": rec.flow.client.port()},
        "dst_endpoint": {"ip": rec.flow.server.ip(), "port": rec.flow.server.port()},
        "connection_info": {
            "protocol_name": "tcp",
            "protocol_num": 6,
            "community_uid": rec.flow.community_id,
        },
        "http_request": req.map(|r| json!({
            "http_method": method,
            "url": url,
            "user_agent": r.head.get("user-agent").map(text),
            "version": version,
            "length": r.body.wire_len,
            "body_length": r.body.len,
        })),
        "http_response": response,
        "http_status": resp.filter(|r| r.status != 0).map(|r| r.status),
        "unmapped": {
            "flow_uid": rec.flow.uid,
            "tx_index": tx.index,
            "vlan": rec.flow.vlan,
            "route": notes.and_then(|n| n.route.as_ref()).map(|r| r.as_str()),
            "identity": identity,
            "sensitive": notes.map(|n| n.sensitive.clone()),
            "anomalies": anomalies,
        },
    });
    prune(&mut v);
    write_json(out, &v);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::samples::{closed, minimal, rich};
    use crate::alert::{Attack, Severity};
    use std::path::PathBuf;

    fn ctx() -> EncodeContext {
        EncodeContext {
            product_version: "0.0.0-test",
            hostname: "sensor-1.example".into(),
            sensor_name: "edge-a".into(),
        }
    }

    fn frame(a: &Alert, f: AlertFormat) -> String {
        let mut out = Vec::new();
        encode_frame(a, f, &ctx(), &mut out);
        String::from_utf8(out).expect("utf8")
    }

    fn json_of(a: &Alert, f: AlertFormat) -> Value {
        serde_json::from_str(&frame(a, f)).expect("valid JSON")
    }

    #[test]
    fn format_names_round_trip() {
        for f in AlertFormat::ALL {
            assert_eq!(f.as_str().parse::<AlertFormat>(), Ok(f));
            assert_eq!(f.to_string(), f.as_str());
        }
        let err = "splunk".parse::<AlertFormat>().expect_err("unknown");
        assert!(err
            .to_string()
            .contains("canonical, ocsf, ecs, cef, leef, syslog, eve"));
        assert_eq!(AlertFormat::default(), AlertFormat::Canonical);
    }

    #[test]
    fn every_format_is_one_line_and_json_formats_parse() {
        for a in [rich(), minimal(), closed()] {
            for f in AlertFormat::ALL {
                let mut out = Vec::new();
                encode(&a, f, &ctx(), &mut out);
                assert_eq!(out.last(), Some(&b'\n'), "{f}");
                let body = &out[..out.len() - 1];
                assert!(!body.contains(&b'\n') && !body.contains(&b'\r'), "{f}");
                if f.is_json() {
                    let _: Value = serde_json::from_slice(body).expect("valid JSON");
                }
            }
            let back: Alert =
                serde_json::from_str(&frame(&a, AlertFormat::Canonical)).expect("canonical");
            assert_eq!(back, a);
        }
    }

    // --- OCSF -----------------------------------------------------------------------------

    fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
        v.pointer(path).filter(|x| !x.is_null())
    }

    /// Attributes OCSF 1.5 marks required, checked on every object that is present.
    fn check_ocsf_detection_finding(v: &Value) {
        for p in [
            "/activity_id",
            "/category_uid",
            "/class_uid",
            "/metadata",
            "/metadata/product",
            "/metadata/version",
            "/severity_id",
            "/time",
            "/type_uid",
            "/finding_info",
            "/finding_info/uid",
        ] {
            assert!(get(v, p).is_some(), "required {p} missing in {v}");
        }
        // `title` was required before 1.5; `analytic.type_id` is required when there is one.
        assert!(v["finding_info"]["title"].is_string());
        if let Some(an) = get(v, "/finding_info/analytic") {
            assert!(matches!(an["type_id"].as_u64(), Some(1 | 3 | 4)), "{an}");
        }
        let activity = v["activity_id"].as_u64().expect("int");
        assert!((1..=3).contains(&activity));
        assert_eq!(v["category_uid"], 2);
        assert_eq!(v["class_uid"], 2004);
        assert_eq!(v["type_uid"].as_u64(), Some(2004 * 100 + activity));
        assert!((1..=5).contains(&v["severity_id"].as_u64().expect("int")));
        assert!(matches!(v["status_id"].as_u64(), Some(1 | 99)));
        assert!((1..=3).contains(&v["confidence_id"].as_u64().expect("int")));
        assert!(v["confidence_score"].as_u64().expect("int") <= 100);
        assert!(v["risk_level_id"].as_u64().expect("int") <= 4);
        assert!(v["time"].is_u64() && v["start_time"].is_u64() && v["end_time"].is_u64());
        assert_eq!(v["metadata"]["version"], OCSF_VERSION);
        for ev in v["evidences"].as_array().into_iter().flatten() {
            if let Some(r) = ev.get("http_response") {
                assert!(r["code"].is_u64(), "http_response.code is required");
            }
        }
        if let Some(r) = v.get("remediation") {
            assert!(r["desc"].is_string());
        }
        for at in v["finding_info"]["attacks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert!(at["technique"]["uid"].is_string());
        }
        for aa in v["anomaly_analyses"].as_array().into_iter().flatten() {
            let targets = aa["analysis_targets"].as_array().expect("targets required");
            assert!(!targets.is_empty() && targets.iter().all(|t| t["name"].is_string()));
            let anomalies = aa["anomalies"].as_array().expect("anomalies required");
            assert!(!anomalies.is_empty());
            for x in anomalies
                .iter()
                .chain(aa["baselines"].as_array().into_iter().flatten())
            {
                assert!(x["observation_parameter"].is_string(), "{x}");
                let obs = x["observations"].as_array().expect("observations required");
                assert!(!obs.is_empty() && obs.iter().all(|o| o["value"].is_string()));
            }
        }
    }

    #[test]
    fn ocsf_has_the_required_attributes_and_enums_in_range() {
        for a in [rich(), minimal(), closed()] {
            check_ocsf_detection_finding(&json_of(&a, AlertFormat::Ocsf));
        }
        let v = json_of(&rich(), AlertFormat::Ocsf);
        assert_eq!(v["activity_id"], 2);
        assert_eq!(v["type_uid"], 200402);
        assert_eq!(v["severity_id"], 4);
        assert_eq!(v["time"], 1_700_000_120_123u64);
        assert_eq!(v["metadata"]["uid"], rich().alert_id);
        assert_eq!(v["finding_info"]["analytic"]["type_id"], 3);
        assert_eq!(
            v["finding_info"]["attacks"][0],
            json!({"technique": {"uid": "T1499"}, "sub_technique": {"uid": "T1499.003"}})
        );
        assert_eq!(v["confidence_score"], 87);
        let ev = &v["evidences"][0];
        assert_eq!(ev["dst_endpoint"]["hostname"], "api.example.com");
        assert_eq!(
            ev["http_request"]["url"]["url_string"],
            "http://api.example.com:8443/api/v1/users/12?token=REDACTED&q=a|b=c^d\\e]"
        );
        assert_eq!(ev["http_request"]["url"]["path"], "/api/v1/users/12");
        assert_eq!(ev["http_response"]["code"], 200);
        let aa = &v["anomaly_analyses"][0];
        assert_eq!(aa["analysis_targets"][0]["type"], "client_endpoint");
        assert_eq!(aa["anomalies"].as_array().map(Vec::len), Some(4));
        assert_eq!(
            aa["baselines"][0]["observations"][0]["value"],
            "expected=6.5"
        );
        assert_eq!(v["unmapped"]["explanation"]["baseline"]["samples"], 1440);
        // The finding keeps its uid across revisions; the event uid changes.
        let mut later = rich();
        later.count = 4;
        later.alert_id = crate::alert::alert_id(&later.dedup_key, 4);
        let w = json_of(&later, AlertFormat::Ocsf);
        assert_eq!(w["finding_info"]["uid"], v["finding_info"]["uid"]);
        assert_ne!(w["metadata"]["uid"], v["metadata"]["uid"]);
        let c = json_of(&closed(), AlertFormat::Ocsf);
        assert_eq!(
            (c["activity_id"].as_u64(), c["is_alert"].as_bool()),
            (Some(3), Some(false))
        );
        assert_eq!(c["finding_info"]["analytic"]["type_id"], 4);
        assert_eq!(c["severity_id"], 5);
        assert_eq!(
            c["anomaly_analyses"][0]["analysis_targets"][0]["type"],
            "route"
        );
        let m = json_of(&minimal(), AlertFormat::Ocsf);
        assert!(m.get("evidences").is_none() && m.get("anomaly_analyses").is_none());
    }

    #[test]
    fn levels_map_to_each_formats_severity() {
        let expect = [
            (0, 1, 6, 0, 3),
            (19, 1, 6, 1, 3),
            (20, 2, 5, 2, 3),
            (39, 2, 5, 3, 3),
            (40, 3, 4, 4, 2),
            (69, 3, 4, 6, 2),
            (70, 4, 3, 7, 1),
            (89, 4, 3, 8, 1),
            (90, 5, 2, 9, 1),
            (100, 5, 2, 10, 1),
        ];
        for (score, ocsf_id, syslog_sev, cef_sev, eve_sev) in expect {
            let mut a = minimal();
            a.severity = Severity::from_score(score);
            assert_eq!(json_of(&a, AlertFormat::Ocsf)["severity_id"], ocsf_id);
            assert_eq!(syslog_severity(a.severity.level), syslog_sev);
            let cef = frame(&a, AlertFormat::Cef);
            assert_eq!(
                cef.split('|').nth(6),
                Some(cef_sev.to_string().as_str()),
                "{cef}"
            );
            assert_eq!(json_of(&a, AlertFormat::Eve)["alert"]["severity"], eve_sev);
            let pri: u32 = frame(&a, AlertFormat::Syslog)[1..4].parse().expect("pri");
            assert_eq!(pri, 16 * 8 + syslog_sev as u32);
        }
    }

    // --- ECS / EVE ----------------------------------------------------------------------------

    #[test]
    fn ecs_alert_fields() {
        let v = json_of(&rich(), AlertFormat::Ecs);
        assert_eq!(v["@timestamp"], "2023-11-14T22:15:20.123456Z");
        assert_eq!(v["event"]["kind"], "alert");
        assert_eq!(v["event"]["type"], json!(["info", "change"]));
        assert_eq!(v["event"]["id"], rich().alert_id);
        assert_eq!(v["event"]["start"], "2023-11-14T22:13:20.000001Z");
        assert_eq!(v["rule"]["id"], "model.request_rate");
        assert_eq!(v["threat"]["framework"], "MITRE ATT&CK");
        assert_eq!(
            v["threat"]["technique"]["subtechnique"]["id"],
            json!(["T1499.003"])
        );
        assert_eq!(v["destination"]["domain"], "api.example.com");
        assert_eq!(v["url"]["query"], "token=REDACTED&q=a|b=c^d\\e]");
        assert_eq!(v["user"]["id"], "9f2c1e0a7b3d4c5e6f708192a3b4c5d6");
        assert_eq!(v["Mirador"]["anomaly"]["threshold"], 4);
        assert_eq!(v["Mirador"]["evidence"][1]["tx_index"], 411);
        let c = json_of(&closed(), AlertFormat::Ecs);
        assert_eq!(c["event"]["type"], json!(["info", "end"]));
        assert_eq!(c["threat"]["framework"], "OWASP API Security Top 10");
        assert_eq!(c["threat"]["technique"]["id"], json!(["API6:2023"]));
        let m = json_of(&minimal(), AlertFormat::Ecs);
        assert!(m.get("source").is_none() && m.get("threat").is_none());
        assert_eq!(m["event"]["type"], json!(["info", "start"]));
    }

    #[test]
    fn eve_is_a_suricata_alert() {
        let v = json_of(&rich(), AlertFormat::Eve);
        assert_eq!(v["timestamp"], "2023-11-14T22:15:20.123456+0000");
        assert_eq!(v["event_type"], "alert");
        assert_eq!(v["src_ip"], "10.0.0.7");
        assert_eq!(v["dest_port"], 8443);
        assert_eq!(v["alert"]["gid"], 1);
        assert_eq!(v["alert"]["rev"], 2);
        let sid = v["alert"]["signature_id"].as_u64().expect("sid");
        assert!((1_000_000..2_000_000).contains(&sid));
        assert_eq!(sid, u64::from(eve_signature_id("model.request_rate")));
        assert_eq!(v["http"]["hostname"], "api.example.com");
        assert_eq!(v["mirador"]["alert_id"], rich().alert_id);
        assert_eq!(eve_signature_id("x"), eve_signature_id("x"));
        assert_ne!(eve_signature_id("rule.a"), eve_signature_id("rule.b"));
    }

    // --- CEF ----------------------------------------------------------------------------------

    /// Splits a CEF line into 7 unescaped header fields and the unescaped extensions.
    fn parse_cef(line: &str) -> (Vec<String>, Vec<(String, String)>) {
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut chars = line.chars();
        while fields.len() < 7 {
            match chars.next().expect("7 header fields") {
                '\\' => cur.push(chars.next().expect("escaped char")),
                '|' => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        let ext: String = chars.collect();
        // A key starts after an unescaped space and runs to an unescaped `=`.
        let mut pairs: Vec<(String, String)> = Vec::new();
        let (mut key, mut val, mut in_key) = (String::new(), String::new(), true);
        let mut it = ext.chars().peekable();
        while let Some(c) = it.next() {
            if in_key {
                if c == '=' {
                    in_key = false;
                } else {
                    key.push(c);
                }
                continue;
            }
            match c {
                '\\' => match it.next().expect("escape") {
                    'n' => val.push('\n'),
                    'r' => val.push('\r'),
                    e => val.push(e),
                },
                ' ' if {
                    let rest: String = it.clone().collect();
                    rest.split_once('=').is_some_and(|(k, _)| {
                        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric())
                    })
                } =>
                {
                    pairs.push((std::mem::take(&mut key), std::mem::take(&mut val)));
                    in_key = true;
                }
                c => val.push(c),
            }
        }
        pairs.push((key, val));
        (fields, pairs)
    }

    fn ext<'a>(pairs: &'a [(String, String)], k: &str) -> Option<&'a str> {
        pairs.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn cef_escapes_every_special_character() {
        let mut h = Vec::new();
        cef_header(&mut h, "a|b\\c=d\r\ne\u{7}é");
        assert_eq!(String::from_utf8(h).expect("utf8"), "a\\|b\\\\c=d  e é");
        let mut v = Vec::new();
        cef_value(&mut v, "a|b\\c=d\r\ne\u{7}\tf☃");
        assert_eq!(
            String::from_utf8(v).expect("utf8"),
            "a|b\\\\c\\=d\\r\\ne  f☃"
        );
        let line = frame(&rich(), AlertFormat::Cef);
        let (fields, pairs) = parse_cef(&line);
        assert_eq!(fields[0], "CEF:0");
        assert_eq!(fields[4], "model.request_rate");
        assert_eq!(fields[5], rich().title);
        assert_eq!(fields[6], "8");
        assert_eq!(ext(&pairs, "request"), rich().http.url.as_deref());
        assert_eq!(
            ext(&pairs, "requestClientApplication"),
            rich().client.user_agent.as_deref()
        );
        assert_eq!(ext(&pairs, "act"), rich().recommended_action.as_deref());
        assert_eq!(ext(&pairs, "externalId"), Some(rich().alert_id.as_str()));
        assert_eq!(ext(&pairs, "rt"), Some("1700000120123"));
        assert_eq!(ext(&pairs, "cs1Label"), Some("dedupKey"));
        assert_eq!(ext(&pairs, "cs1"), Some(rich().dedup_key.as_str()));
        assert_eq!(ext(&pairs, "src"), Some("10.0.0.7"));
        // The tab and the bell in the summary became spaces; CR LF survive as escapes.
        assert_eq!(
            ext(&pairs, "msg"),
            Some("Client 10.0.0.7 sent 412 requests in 60 s;\r\nbaseline p99 is 9. Tab, café ☃ 𝄞 and a bell  .")
        );
        for (k, _) in &pairs {
            assert!(k.chars().all(|c| c.is_ascii_alphanumeric()), "{k}");
        }
        // A hostile detector id cannot add header fields.
        let mut a = minimal();
        a.detector.id = "x|y\\|z".into();
        let (fields, _) = parse_cef(&frame(&a, AlertFormat::Cef));
        assert_eq!(fields[4], "x|y\\|z");
        assert_eq!(fields[6], "4");
    }

    // --- LEEF ---------------------------------------------------------------------------------

    fn parse_leef(line: &str) -> (Vec<&str>, Vec<(&str, &str)>) {
        let parts: Vec<&str> = line.splitn(7, '|').collect();
        assert_eq!(parts.len(), 7, "{line}");
        let delim = parts[5];
        assert_eq!(delim, "^");
        let attrs = parts[6]
            .split(delim)
            .map(|kv| kv.split_once('=').expect("key=value"))
            .collect();
        (parts[..6].to_vec(), attrs)
    }

    #[test]
    fn leef_replaces_the_delimiter_and_controls() {
        let mut v = Vec::new();
        leef_clean(&mut v, "a^b|c=d\r\ne\tf\u{7}g☃", LEEF_DELIMITER);
        assert_eq!(
            String::from_utf8(v).expect("utf8"),
            "a%5Eb|c=d%0D%0Ae%09f%07g☃"
        );
        let mut h = Vec::new();
        leef_clean(&mut h, "a|b^c", '|');
        assert_eq!(String::from_utf8(h).expect("utf8"), "a%7Cb^c");
        let line = frame(&rich(), AlertFormat::Leef);
        let (header, attrs) = parse_leef(&line);
        assert_eq!(
            header,
            [
                "LEEF:2.0",
                "Mirador",
                "Mirador",
                "0.0.0-test",
                "model.request_rate",
                "^"
            ]
        );
        let get = |k: &str| attrs.iter().find(|(x, _)| *x == k).map(|(_, v)| *v);
        assert_eq!(get("devTime"), Some("2023-11-14T22:15:20.123Z"));
        assert_eq!(get("devTimeFormat"), Some(LEEF_TIME_FORMAT));
        assert_eq!(get("sev"), Some("8"));
        assert_eq!(get("src"), Some("10.0.0.7"));
        assert_eq!(get("dstPort"), Some("8443"));
        assert_eq!(
            get("url"),
            Some("/api/v1/users/12?token=REDACTED&q=a|b=c%5Ed\\e]")
        );
        assert_eq!(
            get("title"),
            Some("Unusual rate | GET /api/v1/users/{id} = 40x \\ baseline ] \"quoted\" %5Ecaret")
        );
        assert_eq!(get("sensor"), Some("edge-a"));
        let line = frame(&minimal(), AlertFormat::Leef);
        let (_, m) = parse_leef(&line);
        assert!(m.iter().all(|(k, _)| *k != "src" && *k != "summary"));
        assert!(m.iter().any(|(k, v)| *k == "sev" && *v == "4"));
    }

    // --- Syslog -------------------------------------------------------------------------------

    struct Syslog {
        pri: u32,
        version: u32,
        timestamp: String,
        hostname: String,
        app: String,
        procid: String,
        msgid: String,
        sd_id: String,
        params: Vec<(String, String)>,
        msg: Vec<u8>,
    }

    /// A small RFC 5424 parser: header, one SD-ELEMENT, MSG.
    fn parse_syslog(b: &[u8]) -> Syslog {
        let s = std::str::from_utf8(b).expect("utf8");
        let s = s.strip_prefix('<').expect("<");
        let (pri, s) = s.split_once('>').expect(">");
        let mut head = s.splitn(7, ' ');
        let mut next = || head.next().expect("header field").to_string();
        let (version, timestamp, hostname, app, procid, msgid) =
            (next(), next(), next(), next(), next(), next());
        let rest = next();
        for (f, max) in [(&hostname, 255), (&app, 48), (&procid, 128), (&msgid, 32)] {
            assert!(!f.is_empty() && f.len() <= max && f.bytes().all(|c| (33..=126).contains(&c)));
        }
        let mut chars = rest.strip_prefix('[').expect("[").chars().peekable();
        let mut sd_id = String::new();
        while let Some(&c) = chars.peek() {
            if c == ' ' || c == ']' {
                break;
            }
            sd_id.push(c);
            chars.next();
        }
        let mut params = Vec::new();
        loop {
            match chars.next().expect("SD continues") {
                ']' => break,
                ' ' => {}
                c => panic!("unexpected {c:?}"),
            }
            let mut name = String::new();
            for c in chars.by_ref() {
                if c == '=' {
                    break;
                }
                name.push(c);
            }
            assert!(
                name.len() <= 32
                    && name
                        .bytes()
                        .all(|c| (33..=126).contains(&c) && !b"= ]\"".contains(&c))
            );
            assert_eq!(chars.next(), Some('"'));
            let mut value = String::new();
            loop {
                match chars.next().expect("closing quote") {
                    '\\' => {
                        let e = chars.next().expect("escaped");
                        if !matches!(e, '"' | '\\' | ']') {
                            value.push('\\');
                        }
                        value.push(e);
                    }
                    '"' => break,
                    ']' => panic!("unescaped ] in a value"),
                    c => value.push(c),
                }
            }
            params.push((name, value));
            if chars.peek() == Some(&']') {
                chars.next();
                break;
            }
        }
        let after: String = chars.collect();
        let msg = after
            .strip_prefix(' ')
            .unwrap_or(&after)
            .as_bytes()
            .to_vec();
        Syslog {
            pri: pri.parse().expect("pri"),
            version: version.parse().expect("version"),
            timestamp,
            hostname,
            app,
            procid,
            msgid,
            sd_id,
            params,
            msg,
        }
    }

    #[test]
    fn syslog_parses_back() {
        let out = frame(&rich(), AlertFormat::Syslog);
        let p = parse_syslog(out.as_bytes());
        assert_eq!(p.pri, 16 * 8 + 3);
        assert_eq!(p.version, 1);
        assert_eq!(p.timestamp, "2023-11-14T22:15:20.123456Z");
        assert_eq!(p.hostname, "sensor-1.example");
        assert_eq!(p.app, "mirador");
        assert_eq!(p.procid, "-");
        assert_eq!(p.msgid, "model.request_rate");
        assert_eq!(p.sd_id, SD_ID);
        let get = |k: &str| {
            p.params
                .iter()
                .find(|(x, _)| x == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("id"), Some(rich().alert_id.as_str()));
        assert_eq!(get("score"), Some("82"));
        assert_eq!(get("route"), Some("GET /api/v1/users/{id}"));
        assert_eq!(get("url"), rich().http.url.as_deref());
        // CR LF come back as the two-character sequences, as RFC 5424 leaves them.
        assert_eq!(
            get("action"),
            Some("Rate-limit 10.0.0.7 at the gateway;\\nreview object-level auth = \"BOLA\"")
        );
        assert_eq!(get("evidence"), Some("C1a2b3:0,C1a2b3:411"));
        assert!(
            p.msg.starts_with("\u{feff}".as_bytes()),
            "non-ASCII MSG has a BOM"
        );
        let msg = std::str::from_utf8(&p.msg[3..]).expect("utf8");
        assert!(msg.starts_with(&rich().title), "{msg}");
        assert!(msg.contains("60 s;\\r\\nbaseline") && msg.contains("a bell  ."));

        let m = parse_syslog(frame(&minimal(), AlertFormat::Syslog).as_bytes());
        assert_eq!(m.pri, 16 * 8 + 4);
        assert_eq!(m.msg, minimal().title.as_bytes(), "ASCII MSG has no BOM");
        assert!(m.params.iter().all(|(k, _)| k != "src"));

        // Hostile header inputs stay within the grammar.
        let mut a = minimal();
        a.detector.id = "a detector id with spaces that is far too long for MSGID".into();
        let c = EncodeContext {
            hostname: String::new(),
            ..ctx()
        };
        let mut out = Vec::new();
        encode_frame(&a, AlertFormat::Syslog, &c, &mut out);
        let p = parse_syslog(&out);
        assert_eq!(p.hostname, "-");
        assert_eq!(p.msgid, "a_detector_id_with_spaces_that_i");
    }

    #[test]
    fn sd_values_escape_quote_backslash_and_bracket() {
        let mut v = Vec::new();
        sd_value(&mut v, "a\"b\\c]d[e=f\r\ng\u{7}☃");
        assert_eq!(
            String::from_utf8(v).expect("utf8"),
            "a\\\"b\\\\c\\]d[e=f\\r\\ng ☃"
        );
    }

    #[test]
    fn octet_counting_prefixes_the_length_in_octets() {
        let mut out = Vec::new();
        octet_counted(b"", &mut out);
        octet_counted("<134>1 é".as_bytes(), &mut out);
        assert_eq!(out, "0 9 <134>1 é".as_bytes());
        let f = frame(&rich(), AlertFormat::Syslog);
        let mut framed = Vec::new();
        octet_counted(f.as_bytes(), &mut framed);
        let (len, rest) = std::str::from_utf8(&framed)
            .expect("utf8")
            .split_once(' ')
            .expect("SP");
        assert_eq!(len.parse::<usize>().expect("len"), rest.len());
        assert_eq!(rest, f);
    }

    #[test]
    fn url_helpers() {
        assert_eq!(split_target("/a/b?x=1"), (Some("/a/b"), Some("x=1")));
        assert_eq!(split_target("http://h:1/p?q"), (Some("/p"), Some("q")));
        assert_eq!(split_target("http://h"), (None, None));
        assert_eq!(split_target("*"), (None, None));
        assert_eq!(split_host_port("[::1]:80"), ("::1", Some(80)));
        assert_eq!(split_host_port("a.b"), ("a.b", None));
        assert_eq!(url_authority("a.b", Some(8080)), "a.b:8080");
        assert_eq!(url_authority("a.b:81", Some(8080)), "a.b:81");
        assert_eq!(url_authority("a.b", Some(80)), "a.b");
        assert_eq!(url_authority("2001:db8::1", Some(443)), "[2001:db8::1]:443");
        assert_eq!(url_string("/x", None, None), None);
        assert_eq!(
            url_string("https://h/x", None, None).as_deref(),
            Some("https://h/x")
        );
        assert_eq!(
            leef_time(crate::alert::samples::T0 + 1_234_567_000),
            "2023-11-14T22:13:21.234Z"
        );
        assert_eq!(fmt_num(40.0), "40");
        assert_eq!(fmt_num(0.1), "0.1");
        let mut a = minimal();
        a.attack = Some(Attack::default());
        assert_eq!(attack_text(&a), None);
    }

    // --- Transactions -------------------------------------------------------------------------

    fn tx_record(req: &[u8], resp: &[u8]) -> TxRecord {
        use flow::Direction;
        use http::{Connection, HttpConfig, HttpStats};
        use std::sync::Arc;
        use wire::Timestamp;
        let cfg = HttpConfig::default();
        let mut c = Connection::new();
        let mut stats = HttpStats::default();
        let mut txs = Vec::new();
        c.data(
            &cfg,
            Direction::Orig,
            Timestamp::from_secs_nanos(1_700_000_000, 5_000),
            req,
            &mut stats,
            &mut txs,
        );
        c.data(
            &cfg,
            Direction::Resp,
            Timestamp::from_secs_nanos(1_700_000_001, 0),
            resp,
            &mut stats,
            &mut txs,
        );
        c.close(
            &cfg,
            Timestamp::from_secs(1_700_000_002),
            &mut stats,
            &mut txs,
        );
        TxRecord {
            flow: Arc::new(engine::FlowIds {
                uid: "Cabc".into(),
                community_id: "1:x".into(),
                client: "10.0.0.1:40000".parse().expect("addr"),
                server: "[2001:db8::1]:8080".parse().expect("addr"),
                vlan: Some(42),
                encoded: Default::default(),
            }),
            tx: txs.remove(0),
            order: Default::default(),
            origin: 0,
            notes: None,
            prepared: None,
        }
    }

    fn ocsf_tx(rec: &TxRecord) -> Value {
        let mut out = Vec::new();
        transaction_ocsf(rec, &ctx(), &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        serde_json::from_slice(&out).expect("valid JSON")
    }

    fn check_ocsf_http_activity(v: &Value) {
        for p in [
            "/activity_id",
            "/category_uid",
            "/class_uid",
            "/metadata/product",
            "/metadata/version",
            "/severity_id",
            "/time",
            "/type_uid",
        ] {
            assert!(get(v, p).is_some(), "required {p} missing in {v}");
        }
        let activity = v["activity_id"].as_u64().expect("int");
        assert!(matches!(activity, 0..=8 | 99));
        assert_eq!(v["category_uid"], 4);
        assert_eq!(v["class_uid"], 4002);
        assert_eq!(v["type_uid"].as_u64(), Some(4002 * 100 + activity));
        assert!((0..=6).contains(&v["severity_id"].as_u64().expect("int")));
        if let Some(r) = v.get("http_response") {
            assert!(r["code"].is_u64());
        }
    }

    #[test]
    fn transaction_as_ocsf_http_activity() {
        let mut rec = tx_record(
            b"POST /api/v1/users/12?key=secret&y=%20 HTTP/1.1\r\nHost: API.example.com:8443\r\nUser-Agent: curl/8\r\nContent-Length: 2\r\n\r\n{}",
            b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        );
        rec.notes = Some(engine::Notes {
            route: Some("POST /api/v1/users/{id}".into()),
            redacted_target: Some("/api/v1/users/12?key=REDACTED&y=%20".into()),
            ..Default::default()
        });
        let v = ocsf_tx(&rec);
        check_ocsf_http_activity(&v);
        assert_eq!(v["activity_id"], 6);
        assert_eq!(v["type_uid"], 400206);
        assert_eq!(v["time"], 1_700_000_000_000u64);
        assert_eq!(v["src_endpoint"], json!({"ip": "10.0.0.1", "port": 40000}));
        assert_eq!(v["dst_endpoint"]["ip"], "2001:db8::1");
        let url = &v["http_request"]["url"];
        assert_eq!(url["hostname"], "API.example.com");
        assert_eq!(url["port"], 8443);
        assert_eq!(url["path"], "/api/v1/users/12");
        assert_eq!(url["query_string"], "key=REDACTED&y=%20");
        assert_eq!(
            url["url_string"],
            "http://API.example.com:8443/api/v1/users/12?key=REDACTED&y=%20"
        );
        assert!(
            !v.to_string().contains("secret"),
            "the raw target never leaves"
        );
        assert_eq!(v["http_request"]["user_agent"], "curl/8");
        assert_eq!(v["http_request"]["version"], "1.1");
        assert_eq!(v["http_request"]["body_length"], 2);
        assert_eq!(v["http_response"]["code"], 201);
        assert_eq!(v["http_response"]["body_length"], 3);
        assert_eq!(v["http_response"]["content_type"], "text/plain");
        assert_eq!(v["connection_info"]["community_uid"], "1:x");
        assert_eq!(v["unmapped"]["route"], "POST /api/v1/users/{id}");
        assert_eq!(v["unmapped"]["vlan"], 42);
        assert_eq!(v["metadata"]["uid"], "Cabc:0");

        let v = ocsf_tx(&tx_record(
            b"PATCH http://proxy.test:3128/a?q HTTP/1.1\r\n\r\n",
            b"",
        ));
        check_ocsf_http_activity(&v);
        assert_eq!(
            (v["activity_id"].as_u64(), v["activity_name"].as_str()),
            (Some(99), Some("PATCH"))
        );
        assert_eq!(v["http_request"]["url"]["hostname"], "proxy.test");
        assert_eq!(
            v["http_request"]["url"]["url_string"],
            "http://proxy.test:3128/a?q"
        );
        assert!(v.get("http_response").is_none());
        assert_eq!(v["unmapped"]["anomalies"], json!(["missing_response"]));
    }

    // --- Golden files -------------------------------------------------------------------------

    fn golden_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
    }

    fn updating() -> bool {
        std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1")
    }

    fn check_golden(name: &str, actual: &[u8]) {
        let path = golden_dir().join(name);
        if updating() {
            std::fs::create_dir_all(golden_dir()).expect("mkdir");
            std::fs::write(&path, actual).expect("write golden");
            eprintln!("golden: wrote {}", path.display());
            return;
        }
        let expected = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run UPDATE_EXPECT=1 cargo test -p sinks",
                path.display()
            )
        });
        if expected != actual {
            let (e, a) = (
                String::from_utf8_lossy(&expected),
                String::from_utf8_lossy(actual),
            );
            let line = e.lines().zip(a.lines()).position(|(x, y)| x != y);
            panic!(
                "{} differs (line {:?}); after an intended change run UPDATE_EXPECT=1 cargo test -p sinks and review the diff\nexpected: {}\nactual:   {}",
                path.display(),
                line.map(|l| l + 1),
                line.and_then(|l| e.lines().nth(l)).unwrap_or(""),
                line.and_then(|l| a.lines().nth(l)).unwrap_or(""),
            );
        }
    }

    /// One file per format: the rich, minimal and closing alerts, one line each.
    #[test]
    fn golden_alerts_in_every_format() {
        for f in AlertFormat::ALL {
            let mut out = Vec::new();
            for a in [rich(), minimal(), closed()] {
                encode(&a, f, &ctx(), &mut out);
            }
            let ext = if f.is_json() { "jsonl" } else { "log" };
            check_golden(&format!("alerts.{}.{ext}", f.as_str()), &out);
        }
    }

    #[test]
    fn golden_transaction_ocsf() {
        let mut rec = tx_record(
            b"GET /api/v1/users/12?x=1 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: t\xffst\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}",
        );
        rec.notes = Some(engine::Notes {
            route: Some("GET /api/v1/users/{id}".into()),
            identity: [engine::IdentityNote {
                scheme: "bearer",
                location: "header",
                name: "authorization".into(),
                credential: [0xab; 16],
                subject: Some([0x01; 16]),
            }]
            .into_iter()
            .collect(),
            sensitive: vec!["email"],
            redacted_target: None,
            anomaly: Some(engine::AnomalyNote {
                score: 12.5,
                alerted: true,
            }),
        });
        let mut out = Vec::new();
        transaction_ocsf(&rec, &ctx(), &mut out);
        check_ocsf_http_activity(&serde_json::from_slice(&out).expect("json"));
        check_golden("transaction.ocsf.jsonl", &out);
    }
}
