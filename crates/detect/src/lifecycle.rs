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
    open: BTreeMap<String, Episode>,
    budget_hour: u64,
    budget_used: u32,
    pub stats: LifecycleStats,
}

impl Episodes {
    pub fn new(cfg: LifecycleConfig) -> Self {
        Episodes {
            cfg,
            open: BTreeMap::new(),
            budget_hour: 0,
            budget_used: 0,
            stats: LifecycleStats::default(),
        }
    }

    pub fn set_config(&mut self, cfg: LifecycleConfig) {
        self.cfg = cfg;
    }

    pub fn open(&self) -> usize {
        self.open.len()
    }

    pub fn is_open(&self, dedup_key: &str) -> bool {
        self.open.contains_key(dedup_key)
    }

    /// Folds a detection into its episode; the revisions to send go to `out`. Returns whether
    /// the detection belongs to an alert (false when the budget held a new one back).
    ///
    /// `found` carries everything but the lifecycle fields, which this sets: `alert_id`,
    /// `lifecycle`, `count`, `time`, `first_seen` (kept from the create), `last_seen`.
    pub fn report(&mut self, found: Alert, now_ns: u64, out: &mut Vec<Alert>) -> bool {
        let key = found.dedup_key.clone();
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
                last_seen: now_ns,
                count,
                evidence,
                ..found
            };
            let doubled = count >= ep.emitted_count.saturating_mul(2);
            let quiet = now_ns.saturating_sub(ep.emitted_at) >= self.cfg.update_every_secs * NS;
            if doubled || quiet {
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
        }
        if self.cfg.budget_per_hour > 0 && self.budget_used >= self.cfg.budget_per_hour {
            self.stats.over_budget += 1;
            return false;
        }
        self.budget_used += 1;
        if self.open.len() >= self.cfg.max_open {
            self.close_stalest(now_ns, out);
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
        let done: Vec<String> = self
            .open
            .iter()
            .filter(|(_, e)| now_ns.saturating_sub(e.alert.last_seen) >= idle)
            .map(|(k, _)| k.clone())
            .collect();
        for key in done {
            self.close(&key, now_ns, out);
        }
    }

    /// Closes every open episode (end of a capture, shutdown).
    pub fn close_all(&mut self, now_ns: u64, out: &mut Vec<Alert>) {
        let keys: Vec<String> = self.open.keys().cloned().collect();
        for key in keys {
            self.close(&key, now_ns, out);
        }
    }

    fn close_stalest(&mut self, now_ns: u64, out: &mut Vec<Alert>) {
        let stalest = self
            .open
            .iter()
            .min_by_key(|(k, e)| (e.alert.last_seen, (*k).clone()))
            .map(|(k, _)| k.clone());
        if let Some(key) = stalest {
            self.stats.closed_early += 1;
            self.close(&key, now_ns, out);
        }
    }

    fn close(&mut self, key: &str, now_ns: u64, out: &mut Vec<Alert>) {
        if let Some(ep) = self.open.remove(key) {
            // A close is sent at the time the episode ended, not when the sweep noticed.
            let _ = now_ns;
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
            e.report(found("k"), i * NS, &mut out);
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
        for i in 0..10 {
            e.report(found(&format!("k{i}")), NS, &mut out);
        }
        assert_eq!(out.len(), 3);
        assert_eq!(e.stats.over_budget, 7);
        // A new hour, a new budget.
        assert!(e.report(found("k9"), 3601 * NS, &mut out));
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
            e.report(found(&format!("k{i}")), i * NS, &mut out);
        }
        assert_eq!(e.open(), 4);
        assert_eq!(e.stats.closed_early, 6);
    }
}
