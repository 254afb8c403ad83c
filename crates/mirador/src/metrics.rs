//! Counters every stage updates with relaxed atomics (no locks on the packet path), rendered
//! in the Prometheus text format for `/metrics`. Stage latencies are summaries (sum and count
//! of seconds): queue waits and processing time per stage.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Time spent in one stage: total and number of observations (a Prometheus summary without
/// quantiles), so the average latency is `sum / count` over any interval.
#[derive(Debug, Default)]
pub struct Latency {
    nanos: AtomicU64,
    count: AtomicU64,
}

impl Latency {
    pub fn record(&self, d: std::time::Duration) {
        self.nanos.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    pub kernel_dropped: AtomicU64,
    /// Capture → worker batches dropped because a worker queue was full (live mode).
    pub queue_dropped_batches: AtomicU64,
    pub queue_dropped_segments: AtomicU64,
    /// Records dropped because the analysis queue was full (live mode).
    pub analysis_dropped: AtomicU64,
    pub decode_anomalies: AtomicU64,
    pub transactions: AtomicU64,
    /// Gauge: flows in the workers' tables.
    pub flows_active: AtomicU64,
    /// Flows evicted to stay within `flow.max_flows`.
    pub flows_evicted: AtomicU64,
    /// Typed HTTP and reassembly anomalies on transactions.
    pub http_anomalies: AtomicU64,
    /// Alerts raised (no detector raises any before issue 5's detectors).
    pub alerts: AtomicU64,
    pub records_written: AtomicU64,
    /// Records the output could not take in time (delivery queue full, write failed).
    pub output_dropped: AtomicU64,
    /// Gauge: record batches waiting for the output stage.
    pub output_backlog: AtomicU64,
    /// Capture → worker queue wait per batch.
    pub capture_queue: Latency,
    /// Worker processing per batch.
    pub worker: Latency,
    /// Worker → analysis queue wait per batch.
    pub analysis_queue: Latency,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    /// Counters of each alert output (`delivery`), by output name.
    pub alert_outputs: std::sync::Mutex<Vec<(String, std::sync::Arc<::delivery::OutputMetrics>)>>,
}

impl Metrics {
    /// The Prometheus text exposition of every counter and gauge.
    pub fn render(&self) -> String {
        let rows: [(&str, &str, &str, &AtomicU64); 17] = [
            (
                "mirador_packets_total",
                "counter",
                "Packets read from the sources.",
                &self.packets,
            ),
            (
                "mirador_bytes_total",
                "counter",
                "Captured bytes read from the sources.",
                &self.bytes,
            ),
            (
                "mirador_kernel_dropped_packets_total",
                "counter",
                "Packets the kernel dropped before capture (pcap stats).",
                &self.kernel_dropped,
            ),
            (
                "mirador_queue_dropped_batches_total",
                "counter",
                "Capture to worker batches dropped: worker queue full.",
                &self.queue_dropped_batches,
            ),
            (
                "mirador_queue_dropped_segments_total",
                "counter",
                "TCP segments in those dropped batches.",
                &self.queue_dropped_segments,
            ),
            (
                "mirador_analysis_dropped_records_total",
                "counter",
                "Transactions dropped: analysis queue full.",
                &self.analysis_dropped,
            ),
            (
                "mirador_decode_anomalies_total",
                "counter",
                "Malformed or unsupported frames.",
                &self.decode_anomalies,
            ),
            (
                "mirador_transactions_total",
                "counter",
                "HTTP transactions completed by the workers.",
                &self.transactions,
            ),
            (
                "mirador_flows_active",
                "gauge",
                "Flows in the workers' flow tables.",
                &self.flows_active,
            ),
            (
                "mirador_flows_evicted_total",
                "counter",
                "Flows evicted to stay within flow.max_flows.",
                &self.flows_evicted,
            ),
            (
                "mirador_anomalies_total",
                "counter",
                "Typed HTTP and reassembly anomalies on transactions.",
                &self.http_anomalies,
            ),
            (
                "mirador_alerts_total",
                "counter",
                "Alerts raised.",
                &self.alerts,
            ),
            (
                "mirador_records_written_total",
                "counter",
                "Transaction records written by the output.",
                &self.records_written,
            ),
            (
                "mirador_output_backlog_batches",
                "gauge",
                "Record batches waiting for the output stage.",
                &self.output_backlog,
            ),
            (
                "mirador_output_dropped_records_total",
                "counter",
                "Transaction records dropped: the output did not keep up.",
                &self.output_dropped,
            ),
            (
                "mirador_reloads_total",
                "counter",
                "Configuration reloads applied.",
                &self.reloads,
            ),
            (
                "mirador_reload_failures_total",
                "counter",
                "Configuration reloads refused.",
                &self.reload_failures,
            ),
        ];
        let mut out = String::with_capacity(4096);
        for (name, kind, help, v) in rows {
            let value = v.load(Ordering::Relaxed);
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        }
        // Per-stage latency, one summary with a `stage` label.
        let name = "mirador_stage_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time batches spend per stage: queue waits and worker processing.\n# TYPE {name} summary"
        );
        for (stage, l) in [
            ("capture_queue", &self.capture_queue),
            ("worker", &self.worker),
            ("analysis_queue", &self.analysis_queue),
        ] {
            let secs = l.nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "{name}_sum{{stage=\"{stage}\"}} {secs:.6}");
            let _ = writeln!(
                out,
                "{name}_count{{stage=\"{stage}\"}} {}",
                l.count.load(Ordering::Relaxed)
            );
        }
        if let Ok(outputs) = self.alert_outputs.lock() {
            ::delivery::metrics::prometheus(&outputs, &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_with_help_type_and_value() {
        let m = Metrics::default();
        m.packets.store(42, Ordering::Relaxed);
        m.worker.record(std::time::Duration::from_millis(1500));
        m.worker.record(std::time::Duration::from_millis(500));
        let text = m.render();
        assert!(text.contains("# TYPE mirador_packets_total counter\nmirador_packets_total 42\n"));
        assert!(text.contains("mirador_stage_latency_seconds_sum{stage=\"worker\"} 2.000000\n"));
        assert!(text.contains("mirador_stage_latency_seconds_count{stage=\"worker\"} 2\n"));
        assert!(text.contains("mirador_stage_latency_seconds_count{stage=\"capture_queue\"} 0\n"));
        assert!(text.contains("# TYPE mirador_flows_active gauge\n"));
        assert_eq!(text.lines().filter(|l| l.starts_with("# HELP")).count(), 18);
    }
}
