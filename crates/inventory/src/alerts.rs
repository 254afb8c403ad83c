//! Alerts the inventory raises itself: shadow endpoints (served, but not in the reference
//! spec). Canonical alert records (RECORDS.md §2), one per endpoint, created once and then
//! updated when its count grows; deterministic ids, packet times.

use std::collections::BTreeMap;

use sinks::alert::{
    Alert, Attack, Baseline, Client, Contribution, Detector, DetectorKind, EvidenceRef,
    Explanation, Http, Lifecycle, Server, Severity,
};

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
    pub fn poll(&mut self, inv: &mut Inventory, spec: &Spec) -> Vec<Alert> {
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
                None => Lifecycle::Create,
                Some(&n) if n < ep.calls => Lifecycle::Update,
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

fn alert(
    dedup_key: &str,
    lifecycle: Lifecycle,
    host: &str,
    method: &str,
    template: &str,
    ep: &crate::endpoint::Endpoint,
    confidence: f64,
) -> Alert {
    // Unauthenticated success or sensitive data on an undocumented endpoint is worse.
    let exposed = !ep.sensitive.is_empty();
    let open = ep.unauthenticated_success > 0;
    let score: u8 = 40 + if exposed { 25 } else { 0 } + if open { 15 } else { 0 };
    let top_client = ep
        .clients
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(ip, _)| *ip);
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
    let contribution = |feature: &str, value: f64, expected: f64, share: f64| Contribution {
        feature: feature.to_string(),
        value,
        expected: Some(expected),
        p50: None,
        p99: None,
        share,
    };
    Alert {
        alert_id: sinks::alert::alert_id(dedup_key, ep.calls),
        dedup_key: dedup_key.to_string(),
        lifecycle,
        count: ep.calls,
        time: ep.last_seen,
        first_seen: ep.first_seen,
        last_seen: ep.last_seen,
        detector: Detector {
            id: DETECTOR_ID.to_string(),
            name: "Shadow API endpoint".to_string(),
            kind: DetectorKind::Rule,
            version: 1,
        },
        severity: Severity::from_score(score),
        confidence: (confidence * 100.0).round() / 100.0,
        title: format!("Undocumented endpoint {route} on {host}"),
        summary,
        attack: Some(Attack {
            owasp: Some("API9:2023 Improper Inventory Management".to_string()),
            mitre: Some("T1190".to_string()),
        }),
        client: Client {
            ip: top_client,
            ..Default::default()
        },
        server: Server {
            ip: ep.server.map(|s| s.ip()),
            port: ep.server.map(|s| s.port()),
            host: Some(host.to_string()),
        },
        http: Http {
            method: Some(method.to_string()),
            route: Some(route.clone()),
            url: Some(ep.sample_path_redacted()),
            status: ep.statuses.keys().copied().find(|s| (200..300).contains(s)),
        },
        explanation: Some(Explanation {
            score: f64::from(score),
            threshold: 40.0,
            baseline: Some(Baseline {
                scope: "reference_spec".to_string(),
                key: host.to_string(),
                window: "all".to_string(),
                samples: ep.calls,
            }),
            contributions: vec![
                contribution(
                    "documented_in_spec",
                    0.0,
                    1.0,
                    if exposed || open { 0.5 } else { 1.0 },
                ),
                contribution(
                    "sensitive_data_kinds",
                    kinds.len() as f64,
                    0.0,
                    if exposed { 0.3 } else { 0.0 },
                ),
                contribution(
                    "unauthenticated_success",
                    ep.unauthenticated_success as f64,
                    0.0,
                    match (open, exposed) {
                        (true, true) => 0.2,
                        (true, false) => 0.5,
                        _ => 0.0,
                    },
                ),
            ],
        }),
        recommended_action: Some(
            "Confirm who owns this endpoint; document it in the reference spec, or block it at the gateway and retire it.".to_string(),
        ),
        evidence: ep
            .evidence
            .as_ref()
            .map(|(uid, i)| {
                vec![EvidenceRef {
                    flow_uid: uid.to_string(),
                    tx_index: *i,
                }]
            })
            .unwrap_or_default(),
    }
}
