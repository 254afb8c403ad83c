//! Delivery to HTTP receivers on loopback: HEC with indexer acks, `_bulk` with 409s and
//! per-item retries, webhooks, permanent rejects to the dead-letter file, outages, a full
//! spool, and a receiver that never answers while alerts keep coming.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{ctx, free_port, wait_until, Receiver, TOKEN};
use delivery::synthetic::alert;
use delivery::{OutputConfig, OutputType, Outputs, WhenFull};
use sinks::alert::Alert;

fn alerts(run: &str, n: u64) -> Vec<Alert> {
    (0..n).map(|i| alert(run, i, "rate.client", 75)).collect()
}

fn ids(a: &[Alert]) -> BTreeSet<String> {
    a.iter().map(|a| a.alert_id.clone()).collect()
}

fn hec(url: &str) -> OutputConfig {
    let mut c = OutputConfig::new(OutputType::Hec);
    c.url = Some(url.to_string());
    c.token = Some(TOKEN.to_string());
    c.retry_initial_ms = 20;
    c.retry_max_ms = 200;
    c.timeout_secs = 2;
    c
}

fn bulk(url: &str) -> OutputConfig {
    let mut c = OutputConfig::new(OutputType::Elasticsearch);
    c.url = Some(url.to_string());
    c.retry_initial_ms = 20;
    c.retry_max_ms = 200;
    c.timeout_secs = 2;
    c
}

#[test]
fn hec_with_indexer_acks_gets_every_alert_once() {
    let r = Receiver::start(0);
    r.with(|s| s.ack_delay_polls = 2);
    let mut c = hec(&r.url());
    c.indexer_acks = Some(true);
    c.channel = Some("11111111-2222-4333-8444-555555555555".into());
    c.batch_max = 50;
    let out = Outputs::start(&[c], &ctx()).unwrap();
    let a = alerts("hec", 300);
    out.submit(&a);
    let left = out.finish(Some(Instant::now() + Duration::from_secs(30)));
    let got = r.received();
    assert_eq!(got.len(), 300, "every alert once");
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), ids(&a));
    assert_eq!(left[0].metrics.acked, 300);
    assert_eq!(left[0].pending, 0);
    assert_eq!(r.with(|s| s.malformed), 0);
    assert!(r.with(|s| s.channels.contains("11111111-2222-4333-8444-555555555555")));
}

#[test]
fn bulk_counts_409_as_delivered_retries_only_retriable_items_and_dead_letters_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let r = Receiver::start(0);
    let mut a = alerts("bulk", 200);
    // A few that the cluster will refuse for good.
    for x in a.iter_mut().skip(25).step_by(40) {
        x.detector.id = "bad.mapping".into();
    }
    let rejected: BTreeSet<String> = a
        .iter()
        .filter(|x| x.detector.id == "bad.mapping")
        .map(|x| x.alert_id.clone())
        .collect();
    // Some already delivered (a resend after a crash): 409.
    r.with(|s| {
        s.stored.extend(a[..20].iter().map(|x| x.alert_id.clone()));
        s.flaky_suffixes = vec!['0', '7', 'c'];
        s.reject_detector = Some("bad.mapping".into());
    });
    let mut c = bulk(&r.url());
    c.dead_letter = dir.path().join("dead.jsonl").display().to_string();
    c.batch_max = 64;
    let out = Outputs::start(&[c], &ctx()).unwrap();
    out.submit(&a);
    let left = out.finish(Some(Instant::now() + Duration::from_secs(30)));
    let m = &left[0].metrics;
    let stored = r.with(|s| s.stored.clone());
    let received = r.received();
    // Each accepted document was created exactly once.
    assert_eq!(
        received.len(),
        received.iter().collect::<BTreeSet<_>>().len()
    );
    for x in &a {
        if rejected.contains(&x.alert_id) {
            assert!(!stored.contains(&x.alert_id));
        } else {
            assert!(stored.contains(&x.alert_id), "{} missing", x.alert_id);
        }
    }
    assert_eq!(m.dead_lettered, rejected.len() as u64);
    assert_eq!(m.acked, 200 - rejected.len() as u64);
    assert!(m.retried > 0, "flaky items were retried: {m:?}");
    // Retried items only: no batch was resent whole.
    assert!(m.sent < 200 + 200 / 2, "{m:?}");
    let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
    let dead: Vec<serde_json::Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), rejected.len());
    for d in &dead {
        assert!(rejected.contains(d["alert_id"].as_str().unwrap()));
        assert!(d["reason"]
            .as_str()
            .unwrap()
            .contains("mapper_parsing_exception"));
    }
}

#[test]
fn permanent_http_errors_go_to_the_dead_letter_file_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let r = Receiver::start(0);
    let mut c = hec(&r.url());
    c.token = Some("wrong".into());
    c.spool_dir = dir.path().join("spool").display().to_string();
    let out = Outputs::start(&[c], &ctx()).unwrap();
    out.submit(&alerts("dl", 10));
    let left = out.finish(Some(Instant::now() + Duration::from_secs(10)));
    assert_eq!(left[0].metrics.dead_lettered, 10);
    assert_eq!(left[0].metrics.retried, 0, "401 is not retried");
    assert_eq!(left[0].pending, 0);
    let dead = std::fs::read_to_string(dir.path().join("spool/dead-letter.jsonl")).unwrap();
    assert_eq!(dead.lines().count(), 10);
    assert!(dead.contains("HTTP 401"), "{dead}");
    // The payload is kept, with secrets masked.
    assert!(!dead.contains("access_token=abc"), "{dead}");
}

#[test]
fn a_request_too_large_is_sent_again_in_halves_and_only_a_record_too_large_alone_is_dead_lettered()
{
    let dir = tempfile::tempdir().unwrap();
    let r = Receiver::start(0);
    r.with(|s| s.max_body = Some(16 * 1024));
    let mut c = hec(&r.url());
    c.batch_max = 64;
    c.spool_dir = dir.path().join("spool").display().to_string();
    let out = Outputs::start(&[c], &ctx()).unwrap();
    let mut a = alerts("split", 60);
    let big = a[37].alert_id.clone();
    a[37].summary = "x".repeat(40 * 1024);
    out.submit(&a);
    let left = out.finish(Some(Instant::now() + Duration::from_secs(20)));
    let got: BTreeSet<String> = r.received().into_iter().collect();
    let mut rest = ids(&a);
    rest.remove(&big);
    assert_eq!(got, rest, "every alert but the oversized one arrives");
    assert_eq!(left[0].metrics.dead_lettered, 1);
    assert_eq!(left[0].metrics.acked, 59);
    assert_eq!(left[0].metrics.retried, 0, "a split is not a retry");
    assert_eq!(left[0].pending, 0);
    assert!(r.with(|s| s.requests) > 4, "the batch was split");
    let dead = std::fs::read_to_string(dir.path().join("spool/dead-letter.jsonl")).unwrap();
    assert_eq!(dead.lines().count(), 1, "{dead}");
    assert!(dead.contains("HTTP 413") && dead.contains(&big), "{dead}");
}

#[test]
fn the_dead_letter_file_is_bounded_keeping_the_newest_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let r = Receiver::start(0);
    let mut c = hec(&r.url());
    c.token = Some("wrong".into());
    c.spool_dir = dir.path().join("spool").display().to_string();
    c.dead_letter_max_bytes = 64 << 10;
    let out = Outputs::start(&[c], &ctx()).unwrap();
    let a = alerts("dlmax", 400);
    out.submit(&a);
    let left = out.finish(Some(Instant::now() + Duration::from_secs(20)));
    assert_eq!(left[0].metrics.dead_lettered, 400);
    let current = dir.path().join("spool/dead-letter.jsonl");
    let previous = dir.path().join("spool/dead-letter.jsonl.1");
    let (now, before) = (
        std::fs::read_to_string(&current).unwrap(),
        std::fs::read_to_string(&previous).unwrap(),
    );
    for (name, text) in [("current", &now), ("previous", &before)] {
        assert!(text.len() <= 64 << 10, "{name}: {} bytes", text.len());
        assert!(
            text.lines().all(|l| l.contains("HTTP 401")),
            "{name}: whole lines only"
        );
    }
    assert!(
        now.lines().count() + before.lines().count() < 400,
        "older rejects were dropped"
    );
    assert!(now.contains(&a[399].alert_id), "the newest reject is kept");
}

#[test]
fn webhook_posts_json_arrays() {
    let r = Receiver::start(0);
    let mut c = OutputConfig::new(OutputType::Webhook);
    c.url = Some(format!("{}/hook", r.url()));
    c.batch_max = 7;
    let out = Outputs::start(&[c], &ctx()).unwrap();
    let a = alerts("hook", 50);
    out.submit(&a);
    let left = out.finish(Some(Instant::now() + Duration::from_secs(10)));
    assert_eq!(left[0].metrics.acked, 50);
    assert_eq!(r.received().into_iter().collect::<BTreeSet<_>>(), ids(&a));
    assert_eq!(r.with(|s| s.malformed), 0);
}

#[test]
fn receiver_down_then_back_gets_every_alert() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut c = hec(&format!("http://127.0.0.1:{port}"));
    c.spool_dir = dir.path().display().to_string();
    let out = Outputs::start(&[c], &ctx()).unwrap();
    let a = alerts("outage", 500);
    out.submit(&a[..250]);
    // Down: connection refused, retried.
    assert!(wait_until(Duration::from_secs(30), || out.metrics()[0]
        .1
        .retried
        > 0));
    assert_eq!(out.metrics()[0].1.acked, 0);
    out.submit(&a[250..]);
    let back = Instant::now();
    let r = Receiver::start(port);
    assert_eq!(r.wait_distinct(500, Duration::from_secs(30)), 500);
    eprintln!(
        "drained 500 alerts {:?} after the receiver came back",
        back.elapsed()
    );
    let left = out.finish(Some(Instant::now() + Duration::from_secs(10)));
    assert_eq!(left[0].pending, 0);
    assert_eq!(left[0].metrics.acked, 500);
    assert_eq!(r.received().into_iter().collect::<BTreeSet<_>>(), ids(&a));
}

#[test]
fn receiver_answering_503_then_recovering_loses_nothing() {
    let r = Receiver::start(0);
    r.with(|s| s.status = Some(503));
    let out = Outputs::start(&[bulk(&r.url())], &ctx()).unwrap();
    let a = alerts("busy", 120);
    out.submit(&a);
    // Some were refused and retried (how many attempts fit in the wait depends on the load).
    assert!(wait_until(Duration::from_secs(30), || out.metrics()[0]
        .1
        .retried
        > 0));
    assert_eq!(
        out.metrics()[0].1.acked,
        0,
        "nothing acknowledged while busy"
    );
    r.with(|s| s.status = None);
    let left = out.finish(Some(Instant::now() + Duration::from_secs(30)));
    assert_eq!(left[0].metrics.acked, 120);
    assert_eq!(r.with(|s| s.stored.clone()), ids(&a));
}

#[test]
fn full_spool_drop_newest_keeps_the_first_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut c = hec(&format!("http://127.0.0.1:{port}"));
    c.spool_dir = dir.path().display().to_string();
    c.spool_max_bytes = 1 << 20;
    c.when_full = WhenFull::DropNewest;
    let out = Outputs::start(&[c], &ctx()).unwrap();
    let a = alerts("full-new", 3000);
    for chunk in a.chunks(100) {
        out.submit(chunk);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(wait_until(Duration::from_secs(30), || {
        let m = &out.metrics()[0].1;
        m.pending + m.dropped == 3000
    }));
    let m = out.metrics()[0].1.clone();
    assert!(m.dropped > 0, "{m:?}");
    assert!(m.spooled_bytes <= 1 << 20, "{m:?}");
    let r = Receiver::start(port);
    let kept = (3000 - m.dropped) as usize;
    assert_eq!(r.wait_distinct(kept, Duration::from_secs(30)), kept);
    let left = out.finish(Some(Instant::now() + Duration::from_secs(10)));
    assert_eq!(left[0].metrics.acked + left[0].metrics.dropped, 3000);
    // drop_newest: what arrived is a prefix of what was submitted.
    let got: BTreeSet<String> = r.received().into_iter().collect();
    let prefix: BTreeSet<String> = a[..kept].iter().map(|x| x.alert_id.clone()).collect();
    assert_eq!(got, prefix);
}

#[test]
fn full_spool_drop_oldest_keeps_the_newest_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut c = hec(&format!("http://127.0.0.1:{port}"));
    c.spool_dir = dir.path().display().to_string();
    c.spool_max_bytes = 1 << 20;
    c.when_full = WhenFull::DropOldest;
    let out = Outputs::start(&[c], &ctx()).unwrap();
    let a = alerts("full-old", 3000);
    for chunk in a.chunks(100) {
        out.submit(chunk);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(wait_until(Duration::from_secs(30), || {
        let m = &out.metrics()[0].1;
        m.pending + m.dropped >= 3000
    }));
    let m = out.metrics()[0].1.clone();
    assert!(m.dropped > 0, "{m:?}");
    let r = Receiver::start(port);
    assert!(wait_until(Duration::from_secs(30), || out.metrics()[0]
        .1
        .pending
        == 0));
    let left = out.finish(Some(Instant::now() + Duration::from_secs(30)));
    let received = r.received();
    let got: BTreeSet<String> = received.iter().cloned().collect();
    assert_eq!(got.len(), received.len(), "no duplicates");
    assert!(got.contains(&a[2999].alert_id), "the newest alert arrived");
    // Kept: the newest, and the batch the sender held while the receiver was down; what
    // went were older alerts not yet read: at most two runs are missing, before and after
    // the held batch.
    let missing: Vec<usize> = (0..3000)
        .filter(|&i| !got.contains(&a[i].alert_id))
        .collect();
    assert!(!missing.is_empty());
    let runs = 1 + missing.windows(2).filter(|w| w[1] != w[0] + 1).count();
    assert!(runs <= 2, "{runs} runs missing");
    assert!(*missing.last().unwrap() < 2999);
    // Every alert is delivered or counted as dropped, never both.
    assert_eq!(
        left[0].metrics.acked + left[0].metrics.dropped,
        3000,
        "{:?}",
        left[0]
    );
    assert_eq!(got.len() as u64, left[0].metrics.acked);
    assert_eq!(left[0].pending, 0);
}

#[test]
fn a_receiver_that_never_answers_never_blocks_submit() {
    // Accepts connections and reads nothing.
    let l = std::net::TcpListener::bind(("127.0.0.1", free_port())).unwrap();
    let port = l.local_addr().unwrap().port();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done2 = done.clone();
    let hold = std::thread::spawn(move || {
        let mut held = Vec::new();
        l.set_nonblocking(true).unwrap();
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end && !done2.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok((s, _)) = l.accept() {
                held.push(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let mut c = hec(&format!("http://127.0.0.1:{port}"));
    c.queue_capacity = 1000;
    c.timeout_secs = 1;
    let out = Outputs::start(&[c], &ctx()).unwrap();
    let total = 50_000u64;
    let batch: Vec<Alert> = alerts("stuck", 100);
    let start = Instant::now();
    let mut worst = Duration::ZERO;
    for _ in 0..total / 100 {
        let t = Instant::now();
        out.submit(&batch);
        worst = worst.max(t.elapsed());
    }
    let took = start.elapsed();
    eprintln!(
        "submitted {total} alerts to a silent receiver in {took:?} ({:.0}/s), slowest call {worst:?}",
        total as f64 / took.as_secs_f64()
    );
    let m = out.metrics()[0].1.clone();
    // Everything was either taken or dropped and counted; nothing acknowledged.
    assert_eq!(m.enqueued + m.dropped, total, "{m:?}");
    assert!(m.dropped > 0, "{m:?}");
    assert_eq!(m.acked, 0);
    let left = out.finish(Some(Instant::now() + Duration::from_millis(500)));
    assert!(left[0].pending > 0);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    hold.join().unwrap();
}

#[test]
fn several_outputs_each_with_its_own_filter_and_format() {
    let r = Receiver::start(0);
    let mut high = bulk(&r.url());
    high.name = "high".into();
    high.min_severity = sinks::alert::Level::High;
    high.format = Some("ecs".into());
    let mut only = OutputConfig::new(OutputType::Webhook);
    only.name = "only-bola".into();
    only.url = Some(format!("{}/hook", r.url()));
    only.detectors = vec!["bola".into()];
    let mut a = Vec::new();
    for i in 0..30 {
        let (det, score) = match i % 3 {
            0 => ("bola", 95),
            1 => ("rate.client", 75),
            _ => ("rate.client", 30),
        };
        a.push(alert("multi", i, det, score));
    }
    let out = Outputs::start(&[high, only], &ctx()).unwrap();
    out.submit(&a);
    let left = out.finish(Some(Instant::now() + Duration::from_secs(10)));
    let by: BTreeMap<String, u64> = left
        .iter()
        .map(|l| (l.name.clone(), l.metrics.acked))
        .collect();
    assert_eq!(by["high"], 20, "critical and high, not low");
    assert_eq!(by["only-bola"], 10);
    // The ECS documents are what _bulk stored (ids from the action line).
    let stored = r.with(|s| s.stored.clone());
    assert_eq!(stored.len(), 20);
}

#[test]
fn a_damaged_spool_record_is_skipped_and_counted_and_the_rest_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut c = hec(&format!("http://127.0.0.1:{port}"));
    c.spool_dir = dir.path().display().to_string();
    c.fsync = delivery::Fsync::Always;
    let a = alerts("damaged", 50);
    let out = Outputs::start(std::slice::from_ref(&c), &ctx()).unwrap();
    out.submit(&a);
    assert!(wait_until(Duration::from_secs(30), || out.metrics()[0]
        .1
        .retried
        > 0));
    let left = out.finish(Some(Instant::now() + Duration::from_secs(2)));
    assert_eq!(left[0].pending, 50);
    assert!(left[0].on_disk);
    // Flip one byte in the body of the 26th record: its checksum fails.
    let seg = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let mut off = 0;
    for _ in 0..25 {
        let len = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
        off += 8 + len;
    }
    bytes[off + 8 + 30] ^= 0x55;
    std::fs::write(&seg, &bytes).unwrap();
    let r = Receiver::start(port);
    let out = Outputs::start(&[c], &ctx()).unwrap();
    let left = out.finish(Some(Instant::now() + Duration::from_secs(20)));
    let m = &left[0].metrics;
    assert_eq!(m.corrupt, 1, "{m:?}");
    assert_eq!(m.acked, 49, "{m:?}");
    assert_eq!(left[0].pending, 0);
    assert_eq!(r.received().len(), 49);
}
