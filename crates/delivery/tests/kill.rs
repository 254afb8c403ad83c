//! The process is killed with SIGKILL while it delivers from an on-disk spool, then started
//! again: every alert arrives at least once, duplicates carry the same alert id.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{wait_until, Receiver, TOKEN};

#[test]
fn sigkill_during_delivery_then_restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = Receiver::start(0);
    // Slow enough that the kill lands mid-delivery.
    r.with(|s| s.delay = Duration::from_millis(25));
    let cfg = serde_json::json!([{
        "type": "hec",
        "url": r.url(),
        "token": TOKEN,
        "indexer_acks": true,
        "spool_dir": dir.path().join("spool"),
        "fsync": "always",
        "batch_max": 20,
        "retry_initial_ms": 20,
        "retry_max_ms": 200,
        "timeout_secs": 2
    }]);
    let cfg_path = dir.path().join("outputs.json");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let bin = env!("CARGO_BIN_EXE_delivery-bench");
    let total = 2000usize;
    let mut child = Command::new(bin)
        .args([cfg_path.to_str().unwrap(), &total.to_string(), "0", "kill"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert_eq!(first, "spooled");
    assert!(wait_until(Duration::from_secs(20), || r
        .with(|s| s.received.len())
        >= 200));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = r.with(|s| s.received.iter().cloned().collect::<BTreeSet<_>>().len());
    let received_before = r.with(|s| s.received.len());
    assert!(
        before < total,
        "the kill came after delivery finished; nothing was tested"
    );

    let out = Command::new(bin)
        .args([cfg_path.to_str().unwrap(), "0", "0", "kill"])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let report: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    assert_eq!(report["left"], 0, "{report}");

    let expected: BTreeSet<String> = (0..total as u64)
        .map(|i| delivery::synthetic::alert("kill", i, "rate.client", 75).alert_id)
        .collect();
    let received = r.received();
    let distinct: BTreeSet<String> = received.iter().cloned().collect();
    assert_eq!(distinct, expected, "every alert at least once");
    let dups = received.len() - distinct.len();
    eprintln!(
        "killed after {before} of {total} distinct; after restart all {total} arrived, {dups} duplicates (same alert ids)"
    );
    assert_eq!(
        report["acked"].as_u64().unwrap() as usize,
        received.len() - received_before
    );
}
