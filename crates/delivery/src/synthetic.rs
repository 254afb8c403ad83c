//! Synthetic alerts of realistic size, for the bench binary and the tests.

use sinks::alert::{
    alert_id, Alert, Attack, Baseline, Client, Contribution, Detector, DetectorKind, EvidenceRef,
    Explanation, Http, Lifecycle, Server, Severity,
};

/// Alert number `i` of a run tagged `run` (so alert ids differ between runs): detector
/// `detector`, score `score`.
pub fn alert(run: &str, i: u64, detector: &str, score: u8) -> Alert {
    let dedup_key = format!("{run}|{detector}|client-{}", i % 997);
    let t = 1_700_000_000_000_000_000 + i * 1_000_000;
    Alert {
        alert_id: alert_id(&dedup_key, i),
        dedup_key,
        lifecycle: Lifecycle::Create,
        count: 1,
        time: t,
        first_seen: t - 5_000_000_000,
        last_seen: t,
        detector: Detector {
            id: detector.to_string(),
            name: "Synthetic detector".to_string(),
            kind: DetectorKind::Statistical,
            version: 1,
        },
        severity: Severity::from_score(score),
        confidence: 0.87,
        title: format!("Request rate of client 10.0.{}.{} far above its baseline", i % 250, i % 200),
        summary: format!(
            "Client sent {} requests to GET /api/v1/users/{{id}} in 60 s against a baseline of 12; token=secret{i} seen in the query.",
            100 + i % 900
        ),
        attack: Some(Attack {
            owasp: Some("API4:2023".to_string()),
            mitre: Some("T1499".to_string()),
        }),
        client: Client {
            ip: Some(std::net::IpAddr::from([10, 0, (i % 250) as u8, (i % 200) as u8])),
            port: Some(40_000 + (i % 20_000) as u16),
            identity: Some(format!("{:032x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15))),
            user_agent: Some("python-requests/2.31".to_string()),
        },
        server: Server {
            ip: Some(std::net::IpAddr::from([10, 1, 0, 1])),
            port: Some(443),
            host: Some("api.example.com".to_string()),
        },
        http: Http {
            method: Some("GET".to_string()),
            route: Some("/api/v1/users/{id}".to_string()),
            url: Some(format!("/api/v1/users/{i}?access_token=abc{i}")),
            status: Some(200),
        },
        explanation: Some(Explanation {
            score: 0.93,
            threshold: 0.8,
            baseline: Some(Baseline {
                scope: "client".to_string(),
                key: format!("10.0.{}.{}", i % 250, i % 200),
                window: "1h".to_string(),
                samples: 3600,
            }),
            contributions: vec![Contribution {
                feature: "request_rate_1m".to_string(),
                value: 140.0,
                expected: Some(12.0),
                p50: Some(10.0),
                p99: Some(30.0),
                share: 0.8,
            }],
        }),
        recommended_action: Some("Rate-limit the client at the gateway.".to_string()),
        evidence: vec![EvidenceRef {
            flow_uid: format!("C{i:016x}"),
            tx_index: 0,
        }],
    }
}
