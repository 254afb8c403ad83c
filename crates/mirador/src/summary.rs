//! The end-of-run summary on stderr: what was read, what was found, what was lost and why.

use std::io::Write;
use std::time::Duration;

use capture::ReaderStats;
use engine::EngineStats;
use flow::CloseReason;

pub struct Summary {
    pub engine: EngineStats,
    pub reader: ReaderStats,
    pub elapsed: Duration,
    /// Transaction records written, when an output was configured.
    pub written: Option<u64>,
    /// What the analysis stage learnt and dropped, when it ran.
    pub analysis: Option<AnalysisSummary>,
    /// What detection scored and raised, when it ran.
    pub detection: Option<DetectionSummary>,
    /// CPU seconds by stage; `output` is the thread that wrote records and alerts.
    pub cpu: Option<(crate::pipeline::StageCpu, f64)>,
}

/// The detection stage's counters and the model's threshold at the end.
pub struct DetectionSummary {
    pub stats: detect::DetectStats,
    pub threshold: f64,
}

/// The inventory's and the entity tables' counters.
pub struct AnalysisSummary {
    pub endpoints: usize,
    pub hosts: usize,
    pub inventory: inventory::InventoryStats,
    pub catalogue: inventory::catalogue::CatalogueStats,
    pub entities: [(features::entity::EntityKind, features::entity::TableStats); 4],
}

impl AnalysisSummary {
    pub fn of(a: &inventory::Analyzer) -> AnalysisSummary {
        AnalysisSummary {
            endpoints: a.inventory.endpoint_count(),
            hosts: a.inventory.catalogue().hosts(),
            inventory: a.inventory.stats(),
            catalogue: a.inventory.catalogue().stats(),
            entities: a.profiler.stats(),
        }
    }
}

impl Summary {
    pub fn print(&self, w: &mut dyn Write) {
        let e = &self.engine;
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let r = &self.reader;
        let _ = writeln!(w, "mirador replay summary");
        let _ = writeln!(
            w,
            "  packets            {}  ({} bytes captured)",
            r.packets, r.bytes
        );
        let _ = writeln!(
            w,
            "  decoded            tcp {}  not-tcp {}  fragments {} (reassembled {})  tunnelled {}",
            e.decode.tcp,
            e.decode.not_tcp,
            e.decode.fragments,
            e.decode.reassembled,
            e.decode.tunnelled
        );
        let _ = writeln!(
            w,
            "  flows              {}  (peak concurrent {})",
            e.flow.flows_created, e.flow.flows_peak
        );
        let _ = writeln!(
            w,
            "  transactions       {}  (requests {}, responses {})",
            e.http.transactions, e.http.requests, e.http.responses
        );
        if let Some(n) = self.written {
            let _ = writeln!(w, "  records written    {n}");
        }
        let _ = writeln!(
            w,
            "  reassembly         out-of-order segments {}  retransmitted bytes {}  gaps {} ({} bytes)",
            e.flow.out_of_order_segments, e.flow.retransmitted_bytes, e.flow.gaps, e.flow.gap_bytes
        );
        let mut anomalies: Vec<(String, u64)> = Vec::new();
        anomalies.extend(
            e.decode
                .anomaly_counts()
                .map(|(a, n)| (format!("decode.{}", a.as_str()), n)),
        );
        anomalies.extend(
            e.http
                .anomaly_counts()
                .map(|(a, n)| (format!("http.{}", a.as_str()), n)),
        );
        if e.flow.overlap_mismatches > 0 {
            anomalies.push(("flow.overlap_mismatch".into(), e.flow.overlap_mismatches));
        }
        if anomalies.is_empty() {
            let _ = writeln!(w, "  anomalies          none");
        } else {
            let _ = writeln!(w, "  anomalies");
            for (name, n) in anomalies {
                let _ = writeln!(w, "    {name:<36} {n}");
            }
        }
        if let Some(a) = &self.analysis {
            let _ = writeln!(
                w,
                "  inventory          {} endpoints on {} hosts  requests to no route {}  bodies inspected {}",
                a.endpoints, a.hosts, a.inventory.unrouted, a.inventory.bodies_inspected
            );
            let entities: Vec<String> = a
                .entities
                .iter()
                .map(|(k, t)| format!("{} {}", k.as_str(), t.entities))
                .collect();
            let _ = writeln!(w, "  entities           {}", entities.join("  "));
        }
        if let Some(d) = &self.detection {
            let s = &d.stats;
            let l = &s.lifecycle;
            let _ = writeln!(
                w,
                "  detection          scored {}  learnt {}  over threshold {} (threshold {:.2})  injections {}  alerted transactions {}  responses scanned {}",
                s.scored, s.learnt, s.crossed, d.threshold, s.injections, s.alerted_transactions, s.responses_scanned
            );
            let _ = writeln!(
                w,
                "  alerts             created {}  updated {}  closed {}  over budget {}  suppressed {}  allowed {}",
                l.created, l.updated, l.closed, l.over_budget, s.suppressed, s.allowed
            );
        }
        let _ = writeln!(w, "  drops and evictions");
        if let Some(d) = &self.detection {
            let _ = writeln!(w, "    {:<36} {}", "detect.evicted", d.stats.evicted);
            let _ = writeln!(
                w,
                "    {:<36} {}",
                "detect.alerts_closed_early", d.stats.lifecycle.closed_early
            );
        }
        let rows = [
            ("capture.truncated_records", r.truncated_records),
            ("capture.corrupt_records", r.corrupt_records),
            ("capture.resyncs", r.resyncs),
            ("decode.fragment_evictions", e.decode.fragment_evictions),
            ("decode.fragment_timeouts", e.decode.fragment_timeouts),
            ("flow.evicted_closed", e.flow.evicted_closed),
            ("flow.evicted_embryonic", e.flow.evicted_embryonic),
            ("flow.evicted_established", e.flow.evicted_established),
            ("flow.reassembly_overflow_flushes", e.flow.overflow_flushes),
            ("flow.packets_after_close", e.flow.packets_after_close),
            ("http.not_http_directions", e.http.not_http),
            ("http.tunnels", e.http.tunnels),
        ];
        for (name, n) in rows {
            let _ = writeln!(w, "    {name:<36} {n}");
        }
        if let Some(a) = &self.analysis {
            let rows = [
                (
                    "inventory.endpoints_over_limit",
                    a.inventory.endpoints_over_limit,
                ),
                ("inventory.hosts_over_limit", a.catalogue.hosts_over_limit),
                (
                    "inventory.methods_over_limit",
                    a.catalogue.methods_over_limit,
                ),
                ("inventory.paths_unlearned", a.catalogue.paths_unlearned),
            ];
            for (name, n) in rows {
                let _ = writeln!(w, "    {name:<36} {n}");
            }
            for (kind, t) in &a.entities {
                let name = format!("features.{}_evicted", kind.as_str());
                let _ = writeln!(w, "    {name:<36} {}", t.evicted);
            }
        }
        let closes: Vec<String> = CloseReason::ALL
            .iter()
            .map(|c| format!("{} {}", c.as_str(), e.flow.closed_by(*c)))
            .collect();
        let _ = writeln!(w, "  flow ends          {}", closes.join("  "));
        let gbps = r.bytes as f64 * 8.0 / secs / 1e9;
        let _ = writeln!(
            w,
            "  elapsed            {:.3} s  ({:.2} Gbit/s, {:.0} packets/s, {:.0} transactions/s)",
            secs,
            gbps,
            r.packets as f64 / secs,
            e.http.transactions as f64 / secs
        );
        if let Some((stages, output)) = self.cpu {
            let total = stages.capture + stages.workers + stages.analysis + output;
            let per_cpu_second = |cpu: f64| e.http.transactions as f64 / cpu.max(1e-9);
            let _ = writeln!(
                w,
                "  cpu                {total:.3} s ({:.0} transactions per CPU-second): capture {:.3} s  flow workers {:.3} s  analysis {:.3} s ({:.0} transactions per CPU-second)  output {output:.3} s",
                per_cpu_second(total),
                stages.capture,
                stages.workers,
                stages.analysis,
                per_cpu_second(stages.analysis),
            );
        }
    }
}
