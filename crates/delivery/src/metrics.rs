//! Counters of one output, shared between intake, spool writer and sender, and a fixed-size
//! log histogram of enqueue → acknowledgement latency in wall time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Histogram buckets: four per power of two of microseconds, up to 2^40 µs (~12 days).
const BUCKETS: usize = 160;

#[derive(Debug)]
pub struct OutputMetrics {
    /// Alerts the filter let through and the intake queue took.
    pub enqueued: AtomicU64,
    /// Alerts sent (each attempt counts).
    pub sent: AtomicU64,
    /// Alerts the receiver acknowledged.
    pub acked: AtomicU64,
    /// Alerts sent again after a retriable failure.
    pub retried: AtomicU64,
    /// Alerts dropped: intake queue full, spool full (by policy), or too large.
    pub dropped: AtomicU64,
    /// Alerts the receiver rejected for good (written to the dead-letter file).
    pub dead_lettered: AtomicU64,
    /// Spool records skipped for a bad checksum or framing.
    pub corrupt: AtomicU64,
    /// Bytes held in the spool (gauge).
    pub spooled_bytes: AtomicU64,
    /// Alerts held and not yet acknowledged (gauge).
    pub pending: AtomicU64,
    latency: [AtomicU64; BUCKETS],
}

impl Default for OutputMetrics {
    fn default() -> Self {
        OutputMetrics {
            enqueued: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
            spooled_bytes: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// A copy of the counters at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub enqueued: u64,
    pub sent: u64,
    pub acked: u64,
    pub retried: u64,
    pub dropped: u64,
    pub dead_lettered: u64,
    pub corrupt: u64,
    pub spooled_bytes: u64,
    pub pending: u64,
    /// Enqueue → acknowledgement, microseconds (bucket upper bounds, so within ~19 %).
    pub latency_p50_us: u64,
    pub latency_p99_us: u64,
}

fn bucket(us: u64) -> usize {
    if us < 2 {
        return 0;
    }
    let log2 = 63 - u64::from(us.leading_zeros());
    // Two bits below the leading one pick the quarter.
    let frac = if log2 >= 2 {
        (us >> (log2 - 2)) & 3
    } else {
        (us << (2 - log2)) & 3
    };
    ((log2 * 4 + frac) as usize).min(BUCKETS - 1)
}

fn upper(b: usize) -> u64 {
    let log2 = (b / 4) as u32;
    let frac = (b % 4) as u64;
    if log2 >= 63 {
        return u64::MAX;
    }
    let base = 1u64 << log2;
    base + (base * (frac + 1)) / 4
}

impl OutputMetrics {
    pub fn record_latency(&self, us: u64, n: u64) {
        self.latency[bucket(us)].fetch_add(n, Relaxed);
    }

    fn quantile(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self.latency.iter().map(|c| c.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return upper(i);
            }
        }
        upper(BUCKETS - 1)
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            enqueued: self.enqueued.load(Relaxed),
            sent: self.sent.load(Relaxed),
            acked: self.acked.load(Relaxed),
            retried: self.retried.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            corrupt: self.corrupt.load(Relaxed),
            spooled_bytes: self.spooled_bytes.load(Relaxed),
            pending: self.pending.load(Relaxed),
            latency_p50_us: self.quantile(0.50),
            latency_p99_us: self.quantile(0.99),
        }
    }
}

/// Prometheus text of every output's counters, labelled `output="<name>"`.
pub fn prometheus(outputs: &[(String, std::sync::Arc<OutputMetrics>)], out: &mut String) {
    use std::fmt::Write;
    if outputs.is_empty() {
        return;
    }
    type Get = fn(&Snapshot) -> u64;
    let rows: [(&str, &str, &str, Get); 9] = [
        (
            "enqueued_total",
            "counter",
            "Alerts taken by the output's intake queue.",
            |s| s.enqueued,
        ),
        (
            "sent_total",
            "counter",
            "Alerts sent, each attempt counted.",
            |s| s.sent,
        ),
        (
            "acked_total",
            "counter",
            "Alerts the receiver acknowledged.",
            |s| s.acked,
        ),
        (
            "retried_total",
            "counter",
            "Alerts sent again after a retriable failure.",
            |s| s.retried,
        ),
        (
            "dropped_total",
            "counter",
            "Alerts dropped: intake queue or spool full.",
            |s| s.dropped,
        ),
        (
            "dead_lettered_total",
            "counter",
            "Alerts refused for good by the receiver.",
            |s| s.dead_lettered,
        ),
        (
            "corrupt_total",
            "counter",
            "Spool records skipped for a bad checksum.",
            |s| s.corrupt,
        ),
        (
            "spooled_bytes",
            "gauge",
            "Bytes held in the output's spool.",
            |s| s.spooled_bytes,
        ),
        (
            "pending",
            "gauge",
            "Alerts held and not yet acknowledged.",
            |s| s.pending,
        ),
    ];
    let snaps: Vec<(&str, Snapshot)> = outputs
        .iter()
        .map(|(n, m)| (n.as_str(), m.snapshot()))
        .collect();
    for (suffix, kind, help, get) in rows {
        let name = format!("mirador_alert_output_{suffix}");
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (o, s) in &snaps {
            let _ = writeln!(out, "{name}{{output=\"{}\"}} {}", label(o), get(s));
        }
    }
    let name = "mirador_alert_output_latency_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Enqueue to acknowledgement, wall time (quantiles within ~19 %).\n# TYPE {name} summary"
    );
    for (o, s) in &snaps {
        for (q, v) in [("0.5", s.latency_p50_us), ("0.99", s.latency_p99_us)] {
            let _ = writeln!(
                out,
                "{name}{{output=\"{}\",quantile=\"{q}\"}} {:.6}",
                label(o),
                v as f64 / 1e6
            );
        }
    }
}

/// A Prometheus label value: `\`, `"` and newlines escaped.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_fall_in_the_right_bucket() {
        let m = OutputMetrics::default();
        m.record_latency(1000, 98);
        m.record_latency(1_000_000, 2);
        let s = m.snapshot();
        assert!((1000..=1250).contains(&s.latency_p50_us), "{s:?}");
        assert!((1_000_000..=1_250_000).contains(&s.latency_p99_us), "{s:?}");
        let mut text = String::new();
        prometheus(
            &[("hec \"a\"".to_string(), std::sync::Arc::new(m))],
            &mut text,
        );
        assert!(
            text.contains("mirador_alert_output_acked_total{output=\"hec \\\"a\\\"\"} 0"),
            "{text}"
        );
        assert!(text.contains("quantile=\"0.99\"} 1.048576"), "{text}");
        for us in [0, 1, 2, 3, 5, 1 << 20, u64::MAX] {
            let b = bucket(us);
            assert!(upper(b) >= us.min(upper(BUCKETS - 1)), "{us} {b}");
        }
    }
}
