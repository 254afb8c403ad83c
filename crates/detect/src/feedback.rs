//! What operators say about alerts: suppression rules (never alert on this), allow rules (this
//! is normal: learn it), and false-positive marks on alerts already raised (by dedup key: the
//! episode's traffic is learnt as normal and the alert is not raised again).
//!
//! A rule is `key=value` pairs separated by `;`, every pair must match:
//! `detector=detect.scraping; client=10.1.2.0/24; route=GET /api/v1/products/{sku}; identity=3fa4…`
//! (`detector` may end in `*`; `identity` is the hex hash on alerts, or a prefix of it).

use std::collections::BTreeSet;
use std::net::IpAddr;

use sinks::alert::Alert;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher {
    detector: Option<String>,
    client: Option<(IpAddr, u8)>,
    route: Option<String>,
    identity: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RuleError {
    #[error("{0:?} is not key=value (keys: detector, client, route, identity)")]
    NotAPair(String),
    #[error("unknown key {0:?} (keys: detector, client, route, identity)")]
    UnknownKey(String),
    #[error("{0:?} is not an address or CIDR block (e.g. 10.1.2.0/24)")]
    BadClient(String),
    #[error("a rule needs at least one of detector, client, route, identity")]
    Empty,
}

impl std::str::FromStr for Matcher {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, RuleError> {
        let mut m = Matcher {
            detector: None,
            client: None,
            route: None,
            identity: None,
        };
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| RuleError::NotAPair(part.to_string()))?;
            let v = v.trim().to_string();
            match k.trim() {
                "detector" => m.detector = Some(v),
                "route" => m.route = Some(v),
                "identity" => m.identity = Some(v.to_ascii_lowercase()),
                "client" => m.client = Some(parse_cidr(&v).ok_or(RuleError::BadClient(v))?),
                other => return Err(RuleError::UnknownKey(other.to_string())),
            }
        }
        if m == (Matcher {
            detector: None,
            client: None,
            route: None,
            identity: None,
        }) {
            return Err(RuleError::Empty);
        }
        Ok(m)
    }
}

fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip.parse::<IpAddr>().ok()?, len.parse::<u8>().ok()?),
        None => {
            let ip = s.parse::<IpAddr>().ok()?;
            (ip, if ip.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((ip, len))
}

fn in_block(ip: IpAddr, (net, len): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

impl Matcher {
    pub fn matches(&self, a: &Alert) -> bool {
        let detector = self
            .detector
            .as_ref()
            .is_none_or(|d| match d.strip_suffix('*') {
                Some(prefix) => a.detector.id.starts_with(prefix),
                None => a.detector.id == *d,
            });
        let client = self
            .client
            .is_none_or(|block| a.client.ip.is_some_and(|ip| in_block(ip, block)));
        let route = self
            .route
            .as_ref()
            .is_none_or(|r| a.http.route.as_deref() == Some(r.as_str()));
        let identity = self.identity.as_ref().is_none_or(|i| {
            a.client
                .identity
                .as_deref()
                .is_some_and(|id| id.starts_with(i.as_str()))
        });
        detector && client && route && identity
    }
}

/// What to do with a detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Raise,
    /// Not raised; its traffic is still not learnt as normal.
    Suppress,
    /// Not raised, and its traffic is normal: learn it.
    Allow,
}

#[derive(Clone, Debug, Default)]
pub struct Feedback {
    pub suppress: Vec<Matcher>,
    pub allow: Vec<Matcher>,
    /// Dedup keys marked false positive.
    pub false_positives: BTreeSet<String>,
    pub suppressed: u64,
    pub allowed: u64,
}

impl Feedback {
    pub fn decide(&mut self, a: &Alert) -> Decision {
        if self.false_positives.contains(&a.dedup_key) || self.allow.iter().any(|m| m.matches(a)) {
            self.allowed += 1;
            Decision::Allow
        } else if self.suppress.iter().any(|m| m.matches(a)) {
            self.suppressed += 1;
            Decision::Suppress
        } else {
            Decision::Raise
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(detector: &str, ip: &str, route: &str) -> Alert {
        let mut a: Alert = serde_json::from_str(
            r#"{"alert_id":"x","dedup_key":"k","lifecycle":"create","count":1,
            "time":"2026-01-01T00:00:00Z","first_seen":"2026-01-01T00:00:00Z",
            "last_seen":"2026-01-01T00:00:00Z",
            "detector":{"id":"d","name":"n","kind":"rule","version":1},
            "severity":{"level":"low","score":20},"confidence":0.5,"title":"t","summary":"s"}"#,
        )
        .unwrap();
        a.detector.id = detector.into();
        a.client.ip = Some(ip.parse().unwrap());
        a.client.identity = Some("abcdef0123".into());
        a.http.route = Some(route.into());
        a
    }

    #[test]
    fn rules_match_every_pair() {
        let m: Matcher = "detector=detect.scr*; client=10.1.2.0/24; route=GET /p/{sku}"
            .parse()
            .unwrap();
        assert!(m.matches(&alert("detect.scraping", "10.1.2.77", "GET /p/{sku}")));
        assert!(!m.matches(&alert("detect.scraping", "10.1.3.77", "GET /p/{sku}")));
        assert!(!m.matches(&alert("detect.injection", "10.1.2.77", "GET /p/{sku}")));
        let id: Matcher = "identity=ABCDEF".parse().unwrap();
        assert!(id.matches(&alert("x", "::1", "r")));
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        assert_eq!("".parse::<Matcher>(), Err(RuleError::Empty));
        assert_eq!(
            "clinet=1.2.3.4".parse::<Matcher>(),
            Err(RuleError::UnknownKey("clinet".into()))
        );
        assert_eq!(
            "client=1.2.3.4/40".parse::<Matcher>(),
            Err(RuleError::BadClient("1.2.3.4/40".into()))
        );
        assert!(matches!(
            "detector".parse::<Matcher>(),
            Err(RuleError::NotAPair(_))
        ));
    }

    #[test]
    fn false_positives_and_allow_win_over_suppress() {
        let mut f = Feedback {
            suppress: vec!["detector=d".parse().unwrap()],
            ..Default::default()
        };
        let a = alert("d", "1.2.3.4", "r");
        assert_eq!(f.decide(&a), Decision::Suppress);
        f.false_positives.insert("k".into());
        assert_eq!(f.decide(&a), Decision::Allow);
        assert_eq!((f.suppressed, f.allowed), (1, 1));
    }
}
