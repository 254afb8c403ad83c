//! Alerts the inventory raises itself: shadow endpoints (served, but not in the reference
//! spec). Canonical alert records (RECORDS.md §2), one per endpoint, created once and then
//! updated when its count grows; deterministic ids, packet times.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::spec::{Spec, Status};
use crate::Inventory;

pub const DETECTOR_ID: &str = "inventory.shadow_endpoint";

/// Remembers what was already raised, so a resend is an update, not a new alert.
#[derive(Debug, Default)]
pub struct ShadowAlerts {
    raised: BTreeMap<String, u64>,
}

impl ShadowAlerts {
    /// Alerts for shadow endpoints that are new (`create`) or have more calls since the last
    /// time (`update`).
    pub fn poll(&mut self, inv: &mut Inventory, spec: &Spec) -> Vec<Value> {
        let mut out = Vec::new();
        let entries: Vec<_> = inv
            .endpoints()
            .into_iter()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        for (key, ep) in entries {
            let (host, method, template) = (&*key.0, &*key.1, &*key.2);
            let status = spec.status_of(spec.find(host, method, template));
            if status != Status::Shadow {
                continue;
            }
            let dedup_key = format!("{DETECTOR_ID}|{host}|{method}|{template}");
            let lifecycle = match self.raised.get(&dedup_key) {
                None => "create",
                Some(&n) if n < ep.calls => "update",
                Some(_) => continue,
            };
            self.raised.insert(dedup_key.clone(), ep.calls);
            let confidence = inv
                .evidence(&key, &ep)
                .map(|l| {
                    features::template::Learnt {
                        hits: l.hits.max(ep.calls),
                        ..l
                    }
                    .confidence()
                })
                .unwrap_or(0.5);
            out.push(alert(
                &dedup_key, lifecycle, host, method, template, &ep, confidence,
            ));
        }
        out
    }
}

fn time(ns: u64) -> String {
    let mut out = Vec::new();
    sinks::time::rfc3339_micros(&mut out, wire::Timestamp(ns));
    String::from_utf8(out).unwrap_or_default()
}

/// Deterministic id of one revision of an alert (same alert, same count → same id).
fn alert_id(dedup_key: &str, count: u64) -> String {
    let mut h = Sha256::new();
    h.update(dedup_key.as_bytes());
    h.update(count.to_be_bytes());
    let d = h.finalize();
    d[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn alert(
    dedup_key: &str,
    lifecycle: &str,
    host: &str,
    method: &str,
    template: &str,
    ep: &crate::endpoint::Endpoint,
    confidence: f64,
) -> Value {
    // Unauthenticated success or sensitive data on an undocumented endpoint is worse.
    let exposed = !ep.sensitive.is_empty();
    let open = ep.unauthenticated_success > 0;
    let score: u64 = 40 + if exposed { 25 } else { 0 } + if open { 15 } else { 0 };
    let level = match score {
        0..=19 => "info",
        20..=39 => "low",
        40..=69 => "medium",
        70..=89 => "high",
        _ => "critical",
    };
    let top_client = ep
        .clients
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(ip, _)| ip.to_string());
    let route = format!("{method} {template}");
    let kinds: Vec<&str> = {
        let mut k: Vec<&str> = ep
            .sensitive
            .keys()
            .map(|(_, _, kind)| kind.as_str())
            .collect();
        k.sort();
        k.dedup();
        k
    };
    let mut summary = format!(
        "{route} on {host} answered {} calls from {} clients between {} and {}, and the reference spec does not document it.",
        ep.calls,
        ep.clients.len() as u64 + u64::from(ep.other_clients > 0),
        time(ep.first_seen),
        time(ep.last_seen),
    );
    if exposed {
        summary.push_str(&format!(
            " It carries sensitive data ({}).",
            kinds.join(", ")
        ));
    }
    if open {
        summary.push_str(&format!(
            " {} successful calls carried no credential.",
            ep.unauthenticated_success
        ));
    }
    json!({
        "alert_id": alert_id(dedup_key, ep.calls),
        "dedup_key": dedup_key,
        "lifecycle": lifecycle,
        "count": ep.calls,
        "time": time(ep.last_seen),
        "first_seen": time(ep.first_seen),
        "last_seen": time(ep.last_seen),
        "detector": {"id": DETECTOR_ID, "name": "Shadow API endpoint", "kind": "rule", "version": 1},
        "severity": {"level": level, "score": score},
        "confidence": (confidence * 100.0).round() / 100.0,
        "title": format!("Undocumented endpoint {route} on {host}"),
        "summary": summary,
        "attack": {"owasp": "API9:2023 Improper Inventory Management", "mitre": "T1190"},
        "client": {"ip": top_client},
        "server": {
            "ip": ep.server.map(|s| s.ip().to_string()),
            "port": ep.server.map(|s| s.port()),
            "host": host,
        },
        "http": {"method": method, "route": route, "url": ep.sample_path_redacted(), "status": ep.statuses.keys().copied().find(|s| (200..300).contains(s))},
        "explanation": {
            "score": score,
            "threshold": 40,
            "baseline": {"scope": "reference_spec", "key": host, "window": "all", "samples": ep.calls},
            "contributions": [
                {"feature": "documented_in_spec", "value": 0, "expected": 1, "share": if exposed || open { 0.5 } else { 1.0 }},
                {"feature": "sensitive_data_kinds", "value": kinds.len(), "expected": 0, "share": if exposed { 0.3 } else { 0.0 }},
                {"feature": "unauthenticated_success", "value": ep.unauthenticated_success, "expected": 0, "share": if open { if exposed { 0.2 } else { 0.5 } } else { 0.0 }},
            ],
        },
        "recommended_action": "Confirm who owns this endpoint; document it in the reference spec, or block it at the gateway and retire it.",
        "evidence": ep.evidence.as_ref().map(|(uid, i)| vec![json!({"flow_uid": &**uid, "tx_index": i})]).unwrap_or_default(),
    })
}
