//! One alert per episode: detections under one dedup key fold into an open alert that is
//! created once, updated as it grows (at count doublings, or after a quiet interval of packet
//! time with new occurrences), and closed when it has been idle long enough. An alert budget
//! caps how many new alerts open per hour of packet time; what it holds back is counted.
//! Bounded: at most `max_open` episodes; the stalest is closed early to make room.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sinks::alert::{Alert, EvidenceRef, Lifecycle};

const NS: u64 = 1_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LifecycleConfig {
    /// An open alert idle this long (packet time) is closed.
    pub close_after_secs: u64,
    /// Updates are sent at most this often for one alert, besides count doublings.
    pub update_every_secs: u64,
    /// New alerts per hour of packet time, across detectors; 0 for no budget.
    pub budget_per_hour: u32,
    pub max_open: usize,
    /// Evidence links kept per alert.
    pub max_evidence: usize,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            close_after_secs: 900,
            update_every_secs: 300,
            budget_per_hour: 200,
            max_open: 10_000,
            max_evidence: 10,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Episode {
    /// The latest revision's content; ids and counts are set when emitted.
    alert: Alert,
    revision: u64,
    emitted_count: u64,
    emitted_at: u64,
}

impl Episode {
    /// An update is sent when the count doubled since the last revision sent, or after a quiet
    /// interval with new occurrences.
    fn update_due(&self, count: u64, now_ns: u64, cfg: &LifecycleConfig) -> bool {
        count >= self.emitted_count.saturating_mul(2)
            || now_ns.saturating_sub(self.emitted_at) >= cfg.update_every_secs * NS
    }
}

/// Counters of the alert lifecycle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleStats {
    pub created: u64,
    pub updated: u64,
    pub closed: u64,
    /// New alerts the budget held back.
    pub over_budget: u64,
    /// Episodes closed early because `max_open` was reached.
    pub closed_early: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Episodes {
    cfg: LifecycleConfig,
    /// Open episodes by the hash of their dedup key ([`dedup_hash`]).
    open: BTreeMap<u64, Episode>,
    budget_hour: u64,
    budget_used: u32,
    /// Keys the budget held back this hour: not built again until the next.
    #[serde(skip)]
    refused: BTreeMap<u64, u64>,
    /// The last [`Episodes::admit`] folded a detection into an open alert.
    #[serde(skip)]
    folded: bool,
    pub stats: LifecycleStats,
}

/// The hash an episode is kept under: of the detector, the scope and the key's parts, with
/// separators (no allocation; the same parts give the same hash on every run).
pub fn dedup_hash(detector: &str, scope: &str, parts: &[&[u8]]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        h = (h ^ 0x1ff).wrapping_mul(0x100_0000_01b3);
    };
    eat(detector.as_bytes());
    eat(scope.as_bytes());
    for p in parts {
        eat(p);
    }
    h
}

impl Episodes {
    pub fn new(cfg: LifecycleConfig) -> Self {
        Episodes {
            cfg,
            open: BTreeMap::new(),
            budget_hour: 0,
            budget_used: 0,
            refused: BTreeMap::new(),
            folded: false,
            stats: LifecycleStats::default(),
        }
    }

    pub fn set_config(&mut self, cfg: LifecycleConfig) {
        self.cfg = cfg;
    }

    pub fn open(&self) -> usize {
        self.open.len()
    }

    /// Whether a detection under `key` needs its alert built: a new episode, or an open one
    /// due for an update. Otherwise the detection is folded into its open alert here (counted,
    /// `last_seen` moved), which is what makes repeated detections cheap; and a key the
    /// budget refused this hour is dropped.
    pub fn admit(&mut self, key: u64, now_ns: u64) -> bool {
        self.folded = false;
        if let Some(ep) = self.open.get_mut(&key) {
            let count = ep.alert.count + 1;
            if ep.update_due(count, now_ns, &self.cfg) {
                return true;
            }
            ep.alert.count = count;
            ep.alert.last_seen = ep.alert.last_seen.max(now_ns);
            self.folded = true;
            return false;
        }
        let hour = now_ns / (3600 * NS);
        !matches!(self.refused.get(&key), Some(&h) if h == hour)
    }

    /// The last [`admit`](Self::admit) folded its detection into an open alert.
    pub fn folded(&self) -> bool {
        self.folded
    }

    /// Folds a detection into its episode; the revisions to send go to `out`. Returns whether
    /// the detection belongs to an alert (false when the budget held a new one back).
    ///
    /// `found` carries everything but the lifecycle fields, which this sets: `alert_id`,
    /// `lifecycle`, `count`, `time`, `first_seen` (kept from the create), `last_seen`.
    pub fn report(&mut self, key: u64, found: Alert, now_ns: u64, out: &mut Vec<Alert>) -> bool {
        if let Some(ep) = self.open.get_mut(&key) {
            let first_seen = ep.alert.first_seen;
            let mut evidence = std::mem::take(&mut ep.alert.evidence);
            for e in found.evidence.iter() {
                if evidence.len() < self.cfg.max_evidence && !evidence.contains(e) {
                    evidence.push(e.clone());
                }
            }
            let count = ep.alert.count + found.count.max(1);
            ep.alert = Alert {
                first_seen,
                last_seen: now_ns.max(ep.alert.last_seen),
                count,
                evidence,
                ..found
            };
            if ep.update_due(count, now_ns, &self.cfg) {
                ep.revision += 1;
                ep.emitted_count = count;
                ep.emitted_at = now_ns;
                out.push(revision(&ep.alert, Lifecycle::Update, ep.revision, now_ns));
                self.stats.updated += 1;
            }
            return true;
        }
        let hour = now_ns / (3600 * NS);
        if hour != self.budget_hour {
            self.budget_hour = hour;
            self.budget_used = 0;
            self.refused.clear();
        }
        if self.cfg.budget_per_hour > 0 && self.budget_used >= self.cfg.budget_per_hour {
            self.stats.over_budget += 1;
            if self.refused.len() < self.cfg.max_open {
                self.refused.insert(key, hour);
            }
            return false;
        }
        self.budget_used += 1;
        if self.open.len() >= self.cfg.max_open {
            self.close_stalest(out);
        }
        let mut alert = found;
        alert.first_seen = now_ns;
        alert.last_seen = now_ns;
        alert.count = alert.count.max(1);
        alert.evidence.truncate(self.cfg.max_evidence);
        out.push(revision(&alert, Lifecycle::Create, 0, now_ns));
        self.stats.created += 1;
        self.open.insert(
            key,
            Episode {
                emitted_count: alert.count,
                alert,
                revision: 0,
                emitted_at: now_ns,
            },
        );
        true
    }

    /// Closes the episodes idle past `close_after_secs` at `now_ns`.
    pub fn sweep(&mut self, now_ns: u64, out: &mut Vec<Alert>) {
        let idle = self.cfg.close_after_secs * NS;
        let done: Vec<u64> = self
            .open
            .iter()
            .filter(|(_, e)| now_ns.saturating_sub(e.alert.last_seen) >= idle)
            .map(|(k, _)| *k)
            .collect();
        for key in done {
            self.close(key, out);
        }
    }

    /// Closes every open episode (end of a capture, shutdown).
    pub fn close_all(&mut self, out: &mut Vec<Alert>) {
        let keys: Vec<u64> = self.open.keys().copied().collect();
        for key in keys {
            self.close(key, out);
        }
    }

    fn close_stalest(&mut self, out: &mut Vec<Alert>) {
        let stalest = self
            .open
            .iter()
            .min_by_key(|(k, e)| (e.alert.last_seen, **k))
            .map(|(k, _)| *k);
        if let Some(key) = stalest {
            self.stats.closed_early += 1;
            self.close(key, out);
        }
    }

    /// A close is sent at the time the episode ended, not when the sweep noticed.
    fn close(&mut self, key: u64, out: &mut Vec<Alert>) {
        if let Some(ep) = self.open.remove(&key) {
            let at = ep.alert.last_seen;
            out.push(revision(&ep.alert, Lifecycle::Close, ep.revision + 1, at));
            self.stats.closed += 1;
        }
    }
}

/// One revision of an episode. The id hashes the dedup key with the episode's first time and
/// the revision number: a resend has the same id, a later episode of the same key does not.
fn revision(alert: &Alert, lifecycle: Lifecycle, rev: u64, now_ns: u64) -> Alert {
    let episode = format!("{}@{}", alert.dedup_key, alert.first_seen);
    Alert {
        alert_id: sinks::alert::alert_id(&episode, rev),
        lifecycle,
        time: now_ns,
        ..alert.clone()
    }
}

/// Evidence link of a transaction.
pub fn evidence(flow_uid: &str, tx_index: u32) -> EvidenceRef {
    EvidenceRef {
        flow_uid: flow_uid.to_string(),
        tx_index,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sinks::alert::{Detector, DetectorKind, Severity};

    fn found(key: &str) -> Alert {
        Alert {
            alert_id: String::new(),
            dedup_key: key.into(),
            lifecycle: Lifecycle::Create,
            count: 1,
            time: 0,
            first_seen: 0,
            last_seen: 0,
            detector: Detector {
                id: "detect.test".into(),
                name: "Test".into(),
                kind: DetectorKind::Rule,
                version: 1,
            },
            severity: Severity::from_score(50),
            confidence: 0.5,
            title: "t".into(),
            summary: "s".into(),
            attack: None,
            client: Default::default(),
            server: Default::default(),
            http: Default::default(),
            explanation: None,
            recommended_action: None,
            evidence: vec![evidence("C1", 0)],
        }
    }

    #[test]
    fn one_create_then_updates_at_doublings_then_a_close() {
        let mut e = Episodes::new(LifecycleConfig::default());
        let mut out = Vec::new();
        for i in 0..100u64 {
            let key = dedup_hash("d", "s", &[b"k"]);
            if e.admit(key, i * NS) {
                e.report(key, found("k"), i * NS, &mut out);
            } else {
                assert!(e.folded());
            }
        }
        let kinds: Vec<Lifecycle> = out.iter().map(|a| a.lifecycle).collect();
        assert_eq!(kinds[0], Lifecycle::Create);
        assert_eq!(kinds.iter().filter(|k| **k == Lifecycle::Create).count(), 1);
        // Doublings: 2, 4, 8, 16, 32, 64.
        assert_eq!(kinds.len(), 7, "{kinds:?}");
        let ids: std::collections::HashSet<&str> =
            out.iter().map(|a| a.alert_id.as_str()).collect();
        assert_eq!(ids.len(), out.len(), "every revision has its own id");
        out.clear();
        e.sweep(99 * NS + 899 * NS, &mut out);
        assert!(out.is_empty());
        e.sweep(99 * NS + 900 * NS, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].lifecycle, Lifecycle::Close);
        assert_eq!(out[0].count, 100);
        assert_eq!(out[0].first_seen, 0);
        assert_eq!(out[0].last_seen, 99 * NS);
        assert_eq!(e.open(), 0);
    }

    #[test]
    fn the_budget_holds_back_new_alerts_and_counts_them() {
        let mut e = Episodes::new(LifecycleConfig {
            budget_per_hour: 3,
            ..Default::default()
        });
        let mut out = Vec::new();
        for i in 0..10u64 {
            e.report(i, found(&format!("k{i}")), NS, &mut out);
        }
        assert_eq!(out.len(), 3);
        assert_eq!(e.stats.over_budget, 7);
        // Refused keys are not built again within the hour.
        assert!(!e.admit(9, 2 * NS));
        // A new hour, a new budget.
        assert!(e.admit(9, 3601 * NS));
        assert!(e.report(9, found("k9"), 3601 * NS, &mut out));
    }

    #[test]
    fn open_episodes_are_bounded() {
        let mut e = Episodes::new(LifecycleConfig {
            max_open: 4,
            budget_per_hour: 0,
            ..Default::default()
        });
        let mut out = Vec::new();
        for i in 0..10u64 {
            e.report(i, found(&format!("k{i}")), i * NS, &mut out);
        }
        assert_eq!(e.open(), 4);
        assert_eq!(e.stats.closed_early, 6);
    }
}
