//! The `[detect]` section: switches, the anomaly model, thresholds of every detector, the
//! alert lifecycle and operator feedback; validated here and turned into a `DetectConfig`.

use serde::{Deserialize, Serialize};

use super::{check, in_range, Kind, BOOL, STR, U32, U64, USIZE};

const F64: Kind = Kind::Float;

/// Behavioural detectors and the streaming anomaly model (issue 5).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectSection {
    pub enabled: bool,
    pub false_alarm_rate: f64,
    pub score_floor: f64,
    pub learning_transactions: u64,
    pub persistence_k: u32,
    pub persistence_n: u32,
    pub model_trees: usize,
    pub model_depth: u32,
    pub model_window: u32,
    pub model_path: String,
    pub snapshot_interval_secs: u64,
    pub feedback_file: String,
    pub suppress: Vec<String>,
    pub allow: Vec<String>,
    pub close_after_secs: u64,
    pub update_every_secs: u64,
    pub budget_per_hour: u32,
    pub max_open_alerts: usize,
    pub login_paths: Vec<String>,
    pub client_login_failures: f64,
    pub client_distinct_users: f64,
    pub network_login_failures: f64,
    pub network_distinct_users: f64,
    pub global_login_failures: f64,
    pub global_failure_factor: f64,
    pub global_distinct_sources: f64,
    pub global_distinct_users: f64,
    pub sharing_addresses: f64,
    pub sharing_networks: f64,
    pub enumeration_objects: f64,
    pub enumeration_error_ratio: f64,
    pub enumeration_sequential_ratio: f64,
    pub scraping_objects: f64,
    pub spike_min_per_minute: f64,
    pub spike_factor: f64,
    pub spike_learning_minutes: u32,
    pub exposure_learning_responses: u64,
    pub exposure_sample_every: u64,
    pub bulk_min_bytes_per_minute: f64,
    pub bulk_response_bytes: f64,
    pub bulk_factor: f64,
    pub auth_learning_calls: u64,
    pub auth_learning_secs: u64,
    pub auth_required_ratio: f64,
    pub token_expiry_skew_secs: u64,
    pub off_hours_share: f64,
    pub off_hours_requests: u32,
    pub off_hours_learning_hours: u64,
    pub utc_offset: String,
    pub evasion_anomalies: Vec<String>,
    pub max_clients: usize,
    pub max_identities: usize,
    pub max_pairs: usize,
    pub max_endpoints: usize,
}

impl Default for DetectSection {
    fn default() -> Self {
        let d = detect::DetectConfig::default();
        let (m, r, l) = (&d.model, &d.rules, &d.lifecycle);
        DetectSection {
            enabled: true,
            false_alarm_rate: m.false_alarm_rate,
            score_floor: m.score_floor,
            learning_transactions: m.learning_transactions,
            persistence_k: d.persistence_k,
            persistence_n: d.persistence_n,
            model_trees: m.hst.trees,
            model_depth: m.hst.depth,
            model_window: m.hst.window,
            model_path: String::new(),
            snapshot_interval_secs: 300,
            feedback_file: String::new(),
            suppress: Vec::new(),
            allow: Vec::new(),
            close_after_secs: l.close_after_secs,
            update_every_secs: l.update_every_secs,
            budget_per_hour: l.budget_per_hour,
            max_open_alerts: l.max_open,
            login_paths: r.login_paths.clone(),
            client_login_failures: r.client_login_failures,
            client_distinct_users: r.client_distinct_users,
            network_login_failures: r.network_login_failures,
            network_distinct_users: r.network_distinct_users,
            global_login_failures: r.global_login_failures,
            global_failure_factor: r.global_failure_factor,
            global_distinct_sources: r.global_distinct_sources,
            global_distinct_users: r.global_distinct_users,
            sharing_addresses: r.sharing_addresses,
            sharing_networks: r.sharing_networks,
            enumeration_objects: r.enumeration_objects,
            enumeration_error_ratio: r.enumeration_error_ratio,
            enumeration_sequential_ratio: r.enumeration_sequential_ratio,
            scraping_objects: r.scraping_objects,
            spike_min_per_minute: r.spike_min_per_minute,
            spike_factor: r.spike_factor,
            spike_learning_minutes: r.spike_learning_minutes,
            exposure_learning_responses: r.exposure_learning_responses,
            exposure_sample_every: r.exposure_sample_every,
            bulk_min_bytes_per_minute: r.bulk_min_bytes_per_minute,
            bulk_response_bytes: r.bulk_response_bytes,
            bulk_factor: r.bulk_factor,
            auth_learning_calls: r.auth_learning_calls,
            auth_learning_secs: r.auth_learning_secs,
            auth_required_ratio: r.auth_required_ratio,
            token_expiry_skew_secs: r.token_expiry_skew_secs as u64,
            off_hours_share: r.off_hours_share,
            off_hours_requests: r.off_hours_requests,
            off_hours_learning_hours: r.off_hours_learning_hours,
            utc_offset: "+00:00".to_string(),
            evasion_anomalies: r.evasion_anomalies.clone(),
            max_clients: r.max_clients,
            max_identities: r.max_identities,
            max_pairs: r.max_pairs,
            max_endpoints: r.max_endpoints,
        }
    }
}

/// The section's keys, in the order of the struct.
pub(super) const KEYS: &[(&str, Kind)] = &[
    ("enabled", BOOL),
    ("false_alarm_rate", F64),
    ("score_floor", F64),
    ("learning_transactions", U64),
    ("persistence_k", U32),
    ("persistence_n", U32),
    ("model_trees", USIZE),
    ("model_depth", U32),
    ("model_window", U32),
    ("model_path", STR),
    ("snapshot_interval_secs", U64),
    ("feedback_file", STR),
    ("suppress", Kind::StrList),
    ("allow", Kind::StrList),
    ("close_after_secs", U64),
    ("update_every_secs", U64),
    ("budget_per_hour", U32),
    ("max_open_alerts", USIZE),
    ("login_paths", Kind::StrList),
    ("client_login_failures", F64),
    ("client_distinct_users", F64),
    ("network_login_failures", F64),
    ("network_distinct_users", F64),
    ("global_login_failures", F64),
    ("global_failure_factor", F64),
    ("global_distinct_sources", F64),
    ("global_distinct_users", F64),
    ("sharing_addresses", F64),
    ("sharing_networks", F64),
    ("enumeration_objects", F64),
    ("enumeration_error_ratio", F64),
    ("enumeration_sequential_ratio", F64),
    ("scraping_objects", F64),
    ("spike_min_per_minute", F64),
    ("spike_factor", F64),
    ("spike_learning_minutes", U32),
    ("exposure_learning_responses", U64),
    ("exposure_sample_every", U64),
    ("bulk_min_bytes_per_minute", F64),
    ("bulk_response_bytes", F64),
    ("bulk_factor", F64),
    ("auth_learning_calls", U64),
    ("auth_learning_secs", U64),
    ("auth_required_ratio", F64),
    ("token_expiry_skew_secs", U64),
    ("off_hours_share", F64),
    ("off_hours_requests", U32),
    ("off_hours_learning_hours", U64),
    ("utc_offset", STR),
    ("evasion_anomalies", Kind::StrList),
    ("max_clients", USIZE),
    ("max_identities", USIZE),
    ("max_pairs", USIZE),
    ("max_endpoints", USIZE),
];

/// `+HH:MM` / `-HH:MM` as minutes east of UTC.
fn parse_offset(s: &str) -> Option<i64> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m) = (h.parse::<i64>().ok()?, m.parse::<i64>().ok()?);
    ((0..=14).contains(&h) && (0..60).contains(&m) && h.to_string().len() <= 2)
        .then_some(sign * (h * 60 + m))
}

impl DetectSection {
    pub(super) fn check(&self) -> Result<(), super::Invalid> {
        check(
            self.false_alarm_rate > 0.0 && self.false_alarm_rate <= 0.5,
            "detect.false_alarm_rate",
            "must be above 0 and at most 0.5 (e.g. 0.005 for one normal request in 200)",
        )?;
        check(
            self.persistence_k >= 1 && self.persistence_k <= self.persistence_n,
            "detect.persistence_k",
            "must be between 1 and detect.persistence_n",
        )?;
        in_range(self.persistence_n, 1, 64, "detect.persistence_n")?;
        in_range(self.model_trees, 1, 256, "detect.model_trees")?;
        in_range(self.model_depth, 2, 16, "detect.model_depth")?;
        in_range(self.model_window, 64, 10_000_000, "detect.model_window")?;
        in_range(
            self.exposure_sample_every,
            1,
            1_000_000,
            "detect.exposure_sample_every",
        )?;
        in_range(
            self.snapshot_interval_secs,
            1,
            86_400,
            "detect.snapshot_interval_secs",
        )?;
        super::check_output_path("detect.model_path", &self.model_path)?;
        check(
            self.model_path != "-",
            "detect.model_path",
            "must be a file path (the model is rewritten whole), not \"-\"",
        )?;
        check(
            self.feedback_file.is_empty() || std::path::Path::new(&self.feedback_file).is_file(),
            "detect.feedback_file",
            format!(
                "\"{}\" is not a readable file; create it (JSON lines with a dedup_key) or set \"\"",
                self.feedback_file
            ),
        )?;
        for (key, rules) in [
            ("detect.suppress", &self.suppress),
            ("detect.allow", &self.allow),
        ] {
            for r in rules {
                if let Err(e) = r.parse::<detect::feedback::Matcher>() {
                    check(false, key, format!("rule \"{r}\": {e}"))?;
                }
            }
        }
        for (key, v) in [
            (
                "detect.enumeration_error_ratio",
                self.enumeration_error_ratio,
            ),
            (
                "detect.enumeration_sequential_ratio",
                self.enumeration_sequential_ratio,
            ),
            ("detect.auth_required_ratio", self.auth_required_ratio),
            ("detect.off_hours_share", self.off_hours_share),
        ] {
            check(
                (0.0..=1.0).contains(&v),
                key,
                "must be a share between 0 and 1",
            )?;
        }
        for (key, v) in [
            ("detect.score_floor", self.score_floor),
            ("detect.client_login_failures", self.client_login_failures),
            ("detect.client_distinct_users", self.client_distinct_users),
            ("detect.network_login_failures", self.network_login_failures),
            ("detect.network_distinct_users", self.network_distinct_users),
            ("detect.global_login_failures", self.global_login_failures),
            ("detect.global_failure_factor", self.global_failure_factor),
            (
                "detect.global_distinct_sources",
                self.global_distinct_sources,
            ),
            ("detect.global_distinct_users", self.global_distinct_users),
            ("detect.sharing_addresses", self.sharing_addresses),
            ("detect.sharing_networks", self.sharing_networks),
            ("detect.enumeration_objects", self.enumeration_objects),
            ("detect.scraping_objects", self.scraping_objects),
            ("detect.spike_min_per_minute", self.spike_min_per_minute),
            ("detect.spike_factor", self.spike_factor),
            (
                "detect.bulk_min_bytes_per_minute",
                self.bulk_min_bytes_per_minute,
            ),
            ("detect.bulk_response_bytes", self.bulk_response_bytes),
            ("detect.bulk_factor", self.bulk_factor),
        ] {
            check(
                v.is_finite() && v >= 1.0,
                key,
                "must be a number of at least 1",
            )?;
        }
        check(
            parse_offset(&self.utc_offset).is_some(),
            "detect.utc_offset",
            format!(
                "\"{}\" is not an offset from UTC; write it as \"+HH:MM\" or \"-HH:MM\", e.g. \"+01:00\"",
                self.utc_offset
            ),
        )?;
        for a in &self.evasion_anomalies {
            check(
                http::HttpAnomaly::ALL.iter().any(|x| x.as_str() == a),
                "detect.evasion_anomalies",
                format!(
                    "\"{a}\" is not a parser anomaly; known ones: {}",
                    http::HttpAnomaly::ALL
                        .iter()
                        .map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )?;
        }
        for (key, v) in [
            ("detect.max_clients", self.max_clients),
            ("detect.max_identities", self.max_identities),
            ("detect.max_pairs", self.max_pairs),
            ("detect.max_endpoints", self.max_endpoints),
            ("detect.max_open_alerts", self.max_open_alerts),
        ] {
            in_range(v, 1, 100_000_000, key)?;
        }
        Ok(())
    }

    /// The detection stage's configuration (run `check` first); `false_positives` are the
    /// dedup keys read from `feedback_file`.
    pub fn to_config(&self, false_positives: Vec<String>) -> detect::DetectConfig {
        let mut d = detect::DetectConfig::default();
        let m = &mut d.model;
        m.false_alarm_rate = self.false_alarm_rate;
        m.score_floor = self.score_floor;
        m.learning_transactions = self.learning_transactions;
        m.hst.trees = self.model_trees;
        m.hst.depth = self.model_depth;
        m.hst.window = self.model_window;
        d.persistence_k = self.persistence_k;
        d.persistence_n = self.persistence_n;
        d.lifecycle.close_after_secs = self.close_after_secs;
        d.lifecycle.update_every_secs = self.update_every_secs;
        d.lifecycle.budget_per_hour = self.budget_per_hour;
        d.lifecycle.max_open = self.max_open_alerts;
        d.suppress = self
            .suppress
            .iter()
            .filter_map(|r| r.parse().ok())
            .collect();
        d.allow = self.allow.iter().filter_map(|r| r.parse().ok()).collect();
        d.false_positives = false_positives;
        d.rules = detect::rules::RuleConfig {
            login_paths: self.login_paths.clone(),
            client_login_failures: self.client_login_failures,
            client_distinct_users: self.client_distinct_users,
            network_login_failures: self.network_login_failures,
            network_distinct_users: self.network_distinct_users,
            global_login_failures: self.global_login_failures,
            global_failure_factor: self.global_failure_factor,
            global_distinct_sources: self.global_distinct_sources,
            global_distinct_users: self.global_distinct_users,
            sharing_addresses: self.sharing_addresses,
            sharing_networks: self.sharing_networks,
            enumeration_objects: self.enumeration_objects,
            enumeration_error_ratio: self.enumeration_error_ratio,
            enumeration_sequential_ratio: self.enumeration_sequential_ratio,
            scraping_objects: self.scraping_objects,
            spike_min_per_minute: self.spike_min_per_minute,
            spike_factor: self.spike_factor,
            spike_learning_minutes: self.spike_learning_minutes,
            exposure_learning_responses: self.exposure_learning_responses,
            exposure_sample_every: self.exposure_sample_every,
            bulk_min_bytes_per_minute: self.bulk_min_bytes_per_minute,
            bulk_response_bytes: self.bulk_response_bytes,
            bulk_factor: self.bulk_factor,
            auth_learning_calls: self.auth_learning_calls,
            auth_learning_secs: self.auth_learning_secs,
            auth_required_ratio: self.auth_required_ratio,
            token_expiry_skew_secs: self.token_expiry_skew_secs.min(i64::MAX as u64) as i64,
            off_hours_share: self.off_hours_share,
            off_hours_requests: self.off_hours_requests,
            off_hours_learning_hours: self.off_hours_learning_hours,
            utc_offset_minutes: parse_offset(&self.utc_offset).unwrap_or(0),
            evasion_anomalies: self.evasion_anomalies.clone(),
            max_clients: self.max_clients,
            max_networks: self.max_clients.div_ceil(4).max(1),
            max_identities: self.max_identities,
            max_pairs: self.max_pairs,
            max_endpoints: self.max_endpoints,
        };
        d
    }
}

/// The dedup keys marked false positive in a feedback file: JSON lines, each with a
/// `dedup_key` (and optionally `verdict`, which must be `false_positive` when present).
pub fn read_false_positives(text: &str) -> Result<Vec<String>, String> {
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: not JSON ({e})", i + 1))?;
        let verdict = v.get("verdict").and_then(|x| x.as_str());
        if verdict.is_some_and(|x| x != "false_positive") {
            continue;
        }
        match v.get("dedup_key").and_then(|x| x.as_str()) {
            Some(k) => keys.push(k.to_string()),
            None => return Err(format!("line {}: no \"dedup_key\" string", i + 1)),
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        assert_eq!(parse_offset("+00:00"), Some(0));
        assert_eq!(parse_offset("-05:30"), Some(-330));
        assert_eq!(parse_offset("+14:00"), Some(840));
        assert_eq!(parse_offset("05:00"), None);
        assert_eq!(parse_offset("+15:00"), None);
        assert_eq!(parse_offset("+1:60"), None);
    }

    #[test]
    fn feedback_lines() {
        let keys = read_false_positives(
            "# marked by the SOC\n{\"dedup_key\":\"a\",\"verdict\":\"false_positive\"}\n\n{\"dedup_key\":\"b\"}\n{\"dedup_key\":\"c\",\"verdict\":\"true_positive\"}\n",
        )
        .unwrap();
        assert_eq!(keys, vec!["a", "b"]);
        assert!(read_false_positives("{\"x\":1}")
            .unwrap_err()
            .contains("line 1"));
        assert!(read_false_positives("nope")
            .unwrap_err()
            .contains("not JSON"));
    }

    #[test]
    fn bad_values_name_the_key() {
        let bad = DetectSection {
            suppress: vec!["clinet=1.2.3.4".into()],
            ..Default::default()
        };
        let e = bad.check().unwrap_err().to_string();
        assert!(e.contains("detect.suppress") && e.contains("clinet"), "{e}");
        let bad = DetectSection {
            utc_offset: "CET".into(),
            ..Default::default()
        };
        assert!(bad
            .check()
            .unwrap_err()
            .to_string()
            .contains("detect.utc_offset"));
        let bad = DetectSection {
            false_alarm_rate: 0.0,
            ..Default::default()
        };
        assert!(bad
            .check()
            .unwrap_err()
            .to_string()
            .contains("detect.false_alarm_rate"));
        assert!(DetectSection::default().check().is_ok());
    }
}
