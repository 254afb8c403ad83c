//! Figures per output, printed (no assertions on time): `bench/delivery.sh` runs this with
//! `--ignored --nocapture` in release mode. Receivers on 127.0.0.1 only: the test HTTP
//! receiver (HEC with indexer acks, `_bulk`, webhook), rsyslog (tcp, tcp+TLS, udp), files and
//! Kafka (tansu, in-memory storage, read back with kcat).
//!
//! Per output: alerts/s at full speed (submit to last acknowledgement), delivery latency
//! p50/p99 enqueue → acknowledgement at a steady 500 alerts/s, time to drain 5000 alerts
//! spooled on disk during an outage once the receiver is back, and alerts lost.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::kafka::{Broker, ClientAuth, Security};
use common::rsyslog::{make_certs, tools, Rsyslog};
use common::{ctx, free_port, wait_until, Receiver, TOKEN};
use delivery::synthetic::alert;
use delivery::{Fsync, OutputConfig, OutputType, Outputs};
use sinks::alert::Alert;

const BURST: u64 = 20_000;
const STEADY_RATE: u64 = 500;
const STEADY_SECS: u64 = 4;
const OUTAGE: u64 = 5_000;

fn alerts(run: &str, n: u64) -> Vec<Alert> {
    (0..n).map(|i| alert(run, i, "rate.client", 75)).collect()
}

struct Figures {
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    drain_secs: f64,
    lost: u64,
}

/// Submits `a` (paced at `rate`/s when non-zero) and waits for every acknowledgement.
fn deliver(cfg: &OutputConfig, a: &[Alert], rate: u64) -> (f64, delivery::Snapshot) {
    let out = Outputs::start(std::slice::from_ref(cfg), &ctx()).unwrap();
    let start = Instant::now();
    for (k, chunk) in a.chunks(50).enumerate() {
        out.submit(chunk);
        if rate > 0 {
            let due = Duration::from_secs_f64(((k + 1) * 50) as f64 / rate as f64);
            if let Some(w) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(w);
            }
        } else {
            // Full speed, but within the intake queue.
            while out.metrics()[0].1.enqueued
                - out.metrics()[0].1.acked
                - out.metrics()[0].1.pending
                > 3000
            {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
    let n = a.len() as u64;
    wait_until(Duration::from_secs(120), || {
        let m = &out.metrics()[0].1;
        m.acked + m.dead_lettered + m.dropped >= n
    });
    let took = start.elapsed().as_secs_f64();
    let left = out.finish(Some(Instant::now() + Duration::from_secs(5)));
    (n as f64 / took, left[0].metrics.clone())
}

/// Alerts spooled on disk while the receiver is down; seconds from its return to the last
/// acknowledgement.
fn outage(cfg: &OutputConfig, a: &[Alert], up: impl FnOnce()) -> (f64, delivery::Snapshot) {
    let out = Outputs::start(std::slice::from_ref(cfg), &ctx()).unwrap();
    for chunk in a.chunks(100) {
        out.submit(chunk);
        // Within the intake queue: this measures draining, not intake drops.
        while {
            let m = &out.metrics()[0].1;
            m.enqueued - m.pending - m.acked > 2000
        } {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    wait_until(Duration::from_secs(30), || {
        let m = &out.metrics()[0].1;
        m.pending >= a.len() as u64 && m.retried > 0
    });
    let back = Instant::now();
    up();
    wait_until(Duration::from_secs(120), || {
        out.metrics()[0].1.acked >= a.len() as u64
    });
    let took = back.elapsed().as_secs_f64();
    let left = out.finish(Some(Instant::now() + Duration::from_secs(5)));
    (took, left[0].metrics.clone())
}

fn print(name: &str, f: &Figures) {
    println!(
        "{name:<22} {:>10.0} {:>10.2} {:>10.2} {:>12.2} {:>6}",
        f.per_sec, f.p50_ms, f.p99_ms, f.drain_secs, f.lost
    );
}

fn spooled(mut c: OutputConfig, dir: &std::path::Path, tag: &str) -> OutputConfig {
    c.spool_dir = dir.join(tag).display().to_string();
    c.fsync = Fsync::Batch;
    c.retry_initial_ms = 50;
    c.retry_max_ms = 500;
    c
}

fn http_output(kind: OutputType, url: &str) -> OutputConfig {
    let mut c = OutputConfig::new(kind);
    match kind {
        OutputType::Hec => {
            c.url = Some(url.to_string());
            c.token = Some(TOKEN.to_string());
            c.indexer_acks = Some(true);
        }
        OutputType::Webhook => c.url = Some(format!("{url}/hook")),
        _ => c.url = Some(url.to_string()),
    }
    c
}

#[test]
#[ignore = "bench: bench/delivery.sh"]
fn delivery_figures() {
    let dir = tempfile::tempdir().unwrap();
    println!(
        "{:<22} {:>10} {:>10} {:>10} {:>12} {:>6}",
        "output (disk spool)", "alerts/s", "p50 ms", "p99 ms", "drain 5k s", "lost"
    );
    // HTTP outputs against the test receiver.
    for (kind, name) in [
        (OutputType::Hec, "hec (indexer acks)"),
        (OutputType::Elasticsearch, "elasticsearch _bulk"),
        (OutputType::Webhook, "webhook"),
    ] {
        let r = Receiver::start(0);
        let c = spooled(http_output(kind, &r.url()), dir.path(), name);
        let burst = alerts(&format!("{name}-burst"), BURST);
        let (per_sec, _) = deliver(&c, &burst, 0);
        let steady = alerts(&format!("{name}-steady"), STEADY_RATE * STEADY_SECS);
        let (_, m) = deliver(&c, &steady, STEADY_RATE);
        let port = free_port();
        let c2 = spooled(
            http_output(kind, &format!("http://127.0.0.1:{port}")),
            dir.path(),
            &format!("{name}-outage"),
        );
        let down = alerts(&format!("{name}-outage"), OUTAGE);
        let mut back = None;
        let (drain, _) = outage(&c2, &down, || back = Some(Receiver::start(port)));
        let back = back.unwrap();
        let mut want: BTreeSet<String> = BTreeSet::new();
        for x in burst.iter().chain(&steady) {
            want.insert(x.alert_id.clone());
        }
        let got: BTreeSet<String> = r.received().into_iter().collect();
        let got_back: BTreeSet<String> = back.received().into_iter().collect();
        let lost = want.difference(&got).count()
            + down
                .iter()
                .filter(|x| !got_back.contains(&x.alert_id))
                .count();
        print(
            name,
            &Figures {
                per_sec,
                p50_ms: m.latency_p50_us as f64 / 1000.0,
                p99_ms: m.latency_p99_us as f64 / 1000.0,
                drain_secs: drain,
                lost: lost as u64,
            },
        );
    }
    // File.
    {
        let mut c = OutputConfig::new(OutputType::File);
        c.path = Some(dir.path().join("alerts.json").display().to_string());
        let c = spooled(c, dir.path(), "file");
        let (per_sec, _) = deliver(&c, &alerts("file-burst", BURST), 0);
        let (_, m) = deliver(
            &c,
            &alerts("file-steady", STEADY_RATE * STEADY_SECS),
            STEADY_RATE,
        );
        let text = std::fs::read_to_string(dir.path().join("alerts.json")).unwrap();
        let lines = text.lines().count() as u64;
        print(
            "file",
            &Figures {
                per_sec,
                p50_ms: m.latency_p50_us as f64 / 1000.0,
                p99_ms: m.latency_p99_us as f64 / 1000.0,
                drain_secs: f64::NAN,
                lost: (BURST + STEADY_RATE * STEADY_SECS).saturating_sub(lines),
            },
        );
    }
    // rsyslog: tcp, tcp+TLS.
    if tools(true) {
        let certs = make_certs(dir.path());
        for tls in [false, true] {
            let name = if tls {
                "tcp+tls (rsyslog)"
            } else {
                "tcp (rsyslog)"
            };
            let rdir = dir.path().join(format!("rs-{tls}"));
            std::fs::create_dir_all(&rdir).unwrap();
            let port = free_port();
            let rs = Rsyslog::start(&rdir, port, tls.then_some(&certs));
            let mut c = OutputConfig::new(OutputType::Tcp);
            c.address = Some(format!("127.0.0.1:{port}"));
            if tls {
                c.tls = Some(true);
                c.tls_ca_file = Some(certs.ca.display().to_string());
                c.tls_cert_file = Some(certs.client_cert.display().to_string());
                c.tls_key_file = Some(certs.client_key.display().to_string());
            }
            let c = spooled(c, dir.path(), name);
            let burst = alerts(&format!("{name}-burst"), BURST);
            let (per_sec, _) = deliver(&c, &burst, 0);
            let steady = alerts(&format!("{name}-steady"), STEADY_RATE * STEADY_SECS);
            let (_, m) = deliver(&c, &steady, STEADY_RATE);
            rs.stop();
            let down = alerts(&format!("{name}-outage"), OUTAGE);
            let mut back = None;
            let (drain, _) = outage(&c, &down, || {
                back = Some(Rsyslog::start(&rdir, port, tls.then_some(&certs)))
            });
            let back = back.unwrap();
            let all: Vec<&Alert> = burst.iter().chain(&steady).chain(&down).collect();
            wait_until(Duration::from_secs(20), || back.ids().len() >= all.len());
            let got = back.ids();
            let lost = all.iter().filter(|x| !got.contains(&x.alert_id)).count();
            print(
                name,
                &Figures {
                    per_sec,
                    p50_ms: m.latency_p50_us as f64 / 1000.0,
                    p99_ms: m.latency_p99_us as f64 / 1000.0,
                    drain_secs: drain,
                    lost: lost as u64,
                },
            );
        }
    }
    // Kafka (tansu): acks=all, idempotent producer; what arrived is read back with kcat.
    if common::kafka::tools() {
        let plain = ClientAuth::default();
        let port = free_port();
        let b = Broker::start(dir.path(), port, &Security::default());
        b.create_topic("alerts", 3, &plain);
        let mut c = OutputConfig::new(OutputType::Kafka);
        c.brokers = Some(b.addr());
        c.topic = Some("alerts".to_string());
        let c = spooled(c, dir.path(), "kafka");
        let burst = alerts("kafka-burst", BURST);
        let (per_sec, _) = deliver(&c, &burst, 0);
        let steady = alerts("kafka-steady", STEADY_RATE * STEADY_SECS);
        let (_, m) = deliver(&c, &steady, STEADY_RATE);
        // In-memory storage: read what arrived before the outage empties the broker.
        let id = |m: &common::kafka::Msg| m.headers.get("alert_id").cloned().unwrap_or_default();
        let mut got: BTreeSet<String> = b.read("alerts", &plain).iter().map(id).collect();
        b.stop();
        // Messages time out after 3 × timeout_secs: the outage is noticed within 6 s.
        let mut c2 = spooled(c.clone(), dir.path(), "kafka-outage");
        c2.timeout_secs = 2;
        let down = alerts("kafka-outage", OUTAGE);
        let mut back = None;
        let (drain, _) = outage(&c2, &down, || {
            let b = Broker::start(dir.path(), port, &Security::default());
            b.create_topic("alerts", 3, &plain);
            back = Some(b);
        });
        let back = back.unwrap();
        got.extend(back.read("alerts", &plain).iter().map(id));
        let lost = burst
            .iter()
            .chain(&steady)
            .chain(&down)
            .filter(|x| !got.contains(&x.alert_id))
            .count();
        print(
            "kafka (tansu)",
            &Figures {
                per_sec,
                p50_ms: m.latency_p50_us as f64 / 1000.0,
                p99_ms: m.latency_p99_us as f64 / 1000.0,
                drain_secs: drain,
                lost: lost as u64,
            },
        );
    }
    // Producer side: submit against a receiver that accepts nothing.
    {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut c = http_output(OutputType::Hec, &format!("http://127.0.0.1:{port}"));
        c.timeout_secs = 1;
        let out = Outputs::start(&[c], &ctx()).unwrap();
        let batch = alerts("silent", 100);
        let start = Instant::now();
        let mut calls = Vec::with_capacity(2000);
        for _ in 0..2000 {
            let t = Instant::now();
            out.submit(&batch);
            calls.push(t.elapsed());
        }
        let took = start.elapsed();
        calls.sort();
        let m = out.metrics()[0].1.clone();
        println!(
            "submit(100 alerts) to a silent receiver: {:.0} alerts/s; per call p50 {:?}, p99 {:?}, max {:?}; {} queued, {} dropped (counted)",
            200_000.0 / took.as_secs_f64(),
            calls[1000],
            calls[1980],
            calls[1999],
            m.enqueued,
            m.dropped
        );
        let _ = out.finish(Some(Instant::now() + Duration::from_millis(200)));
        drop(l);
    }
}
