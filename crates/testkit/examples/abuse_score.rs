//! Scores canonical alerts (JSON lines, RECORDS.md §2) against `labels.json` of
//! `abuse_traffic`: per kind recall and time to detect, false alerts. Prints a table, then the
//! summary as one JSON document. Always exits 0 (targets are asserted elsewhere).
//!
//! `cargo run --release -p testkit --example abuse_score -- LABELS.json ALERTS.jsonl`

use testkit::abuse::{score, Labels};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [labels, alerts] = args.as_slice() else {
        eprintln!("usage: abuse_score LABELS.json ALERTS.jsonl");
        return;
    };
    let labels = match std::fs::read_to_string(labels)
        .map_err(|e| e.to_string())
        .and_then(|s| Labels::from_json(&s).map_err(|e| e.to_string()))
    {
        Ok(l) => l,
        Err(e) => {
            eprintln!("abuse_score: cannot read labels {labels}: {e}");
            return;
        }
    };
    let text = match std::fs::read_to_string(alerts) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("abuse_score: cannot read alerts {alerts}: {e}; scoring no alerts");
            String::new()
        }
    };
    let mut values = Vec::new();
    let mut bad = 0u64;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) => values.push(v),
            Err(_) => bad += 1,
        }
    }
    if bad > 0 {
        eprintln!("abuse_score: {bad} lines were not JSON");
    }
    let s = score(&labels, &values);
    print!("{}", s.table());
    println!();
    println!("{}", serde_json::to_string(&s).unwrap_or_default());
}
